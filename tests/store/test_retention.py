"""Downsampling and retention: exact aggregates per minute and hour, deletion by age."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from watchkeeper.errors import InputError
from watchkeeper.query.selector import parse_selector
from watchkeeper.store.chunks import Aggregates
from watchkeeper.store.engine import open_engine
from watchkeeper.store.retention import (
    RetentionPolicy,
    downsample_aggregates,
    downsample_raw,
    window_end,
)
from watchkeeper.store.tsdb import TSDB

DAY = 86400.0
T0 = 1_699_920_000.0  # midnight UTC, a Tuesday
EPOCH_WEEK = 7 * DAY  # hour-tier chunks cover weeks counted from the epoch


@pytest.fixture
def engine(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = open_engine(None, tmp_path)
    yield engine
    engine.dispose()


def test_window_end_is_inclusive_at_the_boundary() -> None:
    assert [window_end(t, 60_000) for t in (-1, 0, 1, 59_999, 60_000, 60_001)] == [
        0, 0, 60_000, 60_000, 60_000, 120_000]


def test_downsample_raw_exact() -> None:
    ts = [1_000, 30_000, 60_000, 60_001, 90_000, 185_000]
    vs = [5.0, -2.0, 7.0, math.nan, 1.0, 3.0]
    agg = downsample_raw(ts, vs, 60_000)
    # (0, 60000] holds 1000, 30000, 60000; (60000, 120000] the NaN and 90000; (180000, 240000] one.
    assert agg.timestamps == [60_000, 120_000, 240_000]
    assert agg.count == [3, 2, 1]
    assert agg.sum[0] == 10.0 and math.isnan(agg.sum[1]) and agg.sum[2] == 3.0
    assert agg.min == [-2.0, 1.0, 3.0] and agg.max == [7.0, 1.0, 3.0]
    assert agg.last == [7.0, 1.0, 3.0]
    all_nan = downsample_raw([5], [math.nan], 60_000)
    assert math.isnan(all_nan.min[0]) and math.isnan(all_nan.max[0]) and all_nan.count == [1]


def test_downsample_aggregates_combines_buckets() -> None:
    minutes = Aggregates(timestamps=[60_000, 3_600_000, 3_660_000], count=[2, 3, 1], sum=[3.0, 6.0, 9.0],
                         min=[1.0, math.nan, 9.0], max=[2.0, math.nan, 9.0], last=[2.0, 4.0, 9.0])
    hours = downsample_aggregates(minutes, 3_600_000)
    assert hours.timestamps == [3_600_000, 7_200_000]
    assert hours.count == [5, 1] and hours.sum == [9.0, 9.0]
    assert hours.min == [1.0, 9.0] and hours.max == [2.0, 9.0] and hours.last == [4.0, 9.0]


@pytest.mark.parametrize("kwargs", [{"raw": -1}, {"minute": math.nan}, {"hour": "1d"}])
def test_retention_policy_validates(kwargs: dict) -> None:  # type: ignore[type-arg]
    with pytest.raises(InputError, match="use seconds >= 0"):
        RetentionPolicy(**kwargs)


def expected(samples: list[tuple[float, float]], width: float) -> dict[float, tuple[int, float, float, float, float]]:
    out: dict[float, list[float]] = {}
    for t, v in samples:
        out.setdefault(math.ceil(t / width) * width, []).append(v)
    return {k: (len(v), math.fsum(v), min(v), max(v), v[-1]) for k, v in out.items()}


def assert_same(got: dict[float, tuple[int, float, float, float, float]],
                want: dict[float, tuple[int, float, float, float, float]]) -> None:
    assert list(got) == sorted(want)
    for k, (count, total, lo, hi, last) in want.items():
        assert got[k][0] == count and got[k][2:] == (lo, hi, last), k
        assert got[k][1] == pytest.approx(total, rel=1e-12, abs=1e-9), k


def aggregates_of(db: TSDB, tier: str) -> dict[float, tuple[int, float, float, float, float]]:
    [got] = db.select_aggregates(parse_selector("g"), -1e12, 1e12, tier=tier)  # type: ignore[arg-type]
    return {t: (c, s, lo, hi, last) for t, c, s, lo, hi, last in
            zip(got.timestamps, got.count, got.sum, got.min, got.max, got.last)}


def test_downsampling_through_the_store(engine) -> None:  # type: ignore[no-untyped-def]
    rnd = random.Random(7)
    samples = []
    t = T0 + 0.25
    while t < T0 + 2 * DAY:
        samples.append((round(t, 3), round(rnd.uniform(-100, 100), 2)))
        t += rnd.choice((7.5, 15.0, 15.0, 31.0))
    db = TSDB(engine, retention=RetentionPolicy(raw=DAY, minute=10 * DAY, hour=0), batch_chunks=5)
    db.append_rows(("g", {"k": "v"}, t, v) for t, v in samples)
    raw_before = db.select(parse_selector("g"), -1e12, 1e12)[0]

    # Day 1 is older than 1 d only once day 2 has ended: at T0 + 2d + 1h raw day 1 downsamples.
    db.compact(T0 + 2 * DAY + 3600)
    assert db.apply_retention(T0 + 2 * DAY + 3600)["raw_downsampled"] == 24
    st = db.stats()["tiers"]
    assert st["minute"]["chunks"] == 1 and st["raw"]["chunks"] == 24
    day1 = [s for s in samples if s[0] <= T0 + DAY]
    day2 = [s for s in samples if s[0] > T0 + DAY]
    assert_same(aggregates_of(db, "minute"), expected(day1, 60))
    # Reading "auto" gives the minute buckets' last values, then the raw samples of day 2.
    got = db.select(parse_selector("g"), -1e12, 1e12)[0]
    want_minutes = expected(day1, 60)
    assert got.timestamps == sorted(want_minutes) + [t for t, _ in day2]
    assert got.values == [want_minutes[k][4] for k in sorted(want_minutes)] + [v for _, v in day2]
    assert raw_before.timestamps == [t for t, _ in samples]

    # Idempotent: nothing more to do at the same time.
    assert db.apply_retention(T0 + 2 * DAY + 3600) == {"raw_downsampled": 0, "minute_downsampled": 0,
                                                       "hour_deleted": 0}
    # Later everything becomes minutes, then hours (the epoch week holding both days must end first).
    db.apply_retention(T0 + 3 * DAY + 1)
    assert_same(aggregates_of(db, "minute"), expected(samples, 60))
    week_end = math.ceil((T0 + 2 * DAY) / EPOCH_WEEK) * EPOCH_WEEK
    assert db.apply_retention(week_end + 10 * DAY)["minute_downsampled"] == 2
    assert_same(aggregates_of(db, "hour"), expected(samples, 3600))
    st = db.stats()["tiers"]
    assert (st["raw"]["chunks"], st["minute"]["chunks"], st["hour"]["chunks"]) == (0, 0, 1)


def test_retention_deletes_only_what_is_out_of_range(engine) -> None:  # type: ignore[no-untyped-def]
    db = TSDB(engine, retention=RetentionPolicy(raw=DAY, minute=7 * DAY, hour=30 * DAY))
    # One sample per hour over 120 days, in two series; downsample and expire step by step.
    hours = [T0 + h * 3600.0 for h in range(120 * 24)]
    db.append_rows(("g", {"s": s}, t, float(i)) for s in "ab" for i, t in enumerate(hours))
    now = T0 + 120 * DAY
    db.maintain(now)
    got = db.select(parse_selector('g{s="a"}'), -1e12, 1e12)[0]
    # Hour data older than 30 days is gone, in whole weeks; nothing younger than 30 days is lost.
    assert got.timestamps[0] > now - 30 * DAY - EPOCH_WEEK
    assert got.timestamps[0] <= now - 30 * DAY
    assert got.timestamps[-1] == hours[-1]
    expect = {t: float(i) for i, t in enumerate(hours) if t >= got.timestamps[0]}
    assert dict(zip(got.timestamps, got.values)) == expect  # hourly samples: every bucket's last is the sample
    st = db.stats()
    assert st["head_samples"] + sum(t["samples"] for t in st["tiers"].values()) == 2 * len(expect)
    # Tiers hold what their age says: raw (incl. head) <= 2 days, minutes <= 7 + 7 days.
    raw = db.select(parse_selector('g{s="b"}'), -1e12, 1e12, tier="raw")[0]
    assert raw.timestamps[0] > now - 2 * DAY
    minute = db.select(parse_selector('g{s="b"}'), -1e12, 1e12, tier="minute")[0]
    assert now - 14 * DAY < minute.timestamps[0] and minute.timestamps[-1] <= now - DAY
    # Keeping forever (0) never deletes.
    db.retention = RetentionPolicy(raw=DAY, minute=7 * DAY, hour=0)
    assert db.apply_retention(now + 365 * DAY)["hour_deleted"] == 0


def test_a_year_of_minute_data_stays_small(engine, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    db = TSDB(engine, retention=RetentionPolicy(raw=7 * DAY, minute=90 * DAY, hour=0))
    rnd = random.Random(1)
    value = 0.0
    rows = []
    start = T0 - 365 * DAY
    for i in range(365 * 1440):
        value += rnd.randint(0, 100)  # a counter
        rows.append(("year", {"host": "a"}, start + i * 60.0, value))
    db.append_rows(rows)
    db.compact(T0)
    raw = db.stats()["tiers"]["raw"]
    db.apply_retention(T0)
    st = db.stats()["tiers"]
    report = {
        "raw": raw["bytes"] / raw["samples"],
        "minute": st["minute"]["bytes"] / st["minute"]["samples"],
        "hour": st["hour"]["bytes"] / st["hour"]["samples"],
    }
    total = sum(t["bytes"] for t in st.values())
    with capsys.disabled():
        print(f"\nyear of 1-minute counter data: bytes/sample raw {report['raw']:.2f}, "
              f"minute {report['minute']:.2f}, hour {report['hour']:.2f}; kept {total / 1024:.0f} KiB "
              f"for {len(rows)} samples")
    assert report["raw"] < 3.5 and report["minute"] < 12 and report["hour"] < 20
    assert total < 400 * 1024
    # what is kept is still exact: the newest raw sample and the hour buckets' last values
    got = db.select(parse_selector("year"), -1e12, 1e12)[0]
    assert got.values[-1] == rows[-1][3] and got.timestamps[-1] == rows[-1][2]
