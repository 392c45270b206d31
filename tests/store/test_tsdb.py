"""The time-series store on a real SQLite file: writes, reads, compaction, series APIs."""

from __future__ import annotations

import math
import struct
import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from watchkeeper.errors import InputError, StorageError
from watchkeeper.monitor.model import Sample
from watchkeeper.query.selector import Matcher, parse_selector
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB, SeriesData

HOUR = 3600.0
T0 = 1_700_000_000 // 3600 * 3600.0  # an hour boundary


@pytest.fixture(params=["fast", "core"])
def db(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A store on a fresh SQLite file, through the DBAPI fast path and through SQLAlchemy Core."""
    engine = open_engine(None, tmp_path)
    yield TSDB(engine, sqlite_fast_path=request.param == "fast", batch_rows=500, batch_chunks=7)
    engine.dispose()


def everything(db: TSDB, selector: str = '{__name__=~".+"}') -> dict[tuple[tuple[str, str], ...], list[tuple[float, bytes]]]:
    """All samples by label set, values as bit patterns so NaN compares equal."""
    return {tuple(sorted(s.labels.items())): [(t, struct.pack("<d", v)) for t, v in zip(s.timestamps, s.values)]
            for s in db.select(parse_selector(selector), -1e12, 1e12)}


def test_append_and_select_round_trip(db: TSDB) -> None:
    n = db.append([Sample("up", {"job": "node", "instance": "a:9100"}, 1.0),
                   Sample("up", {"job": "node", "instance": "b:9100"}, 0.0, timestamp=T0 + 5.5)],
                  default_timestamp=T0 + 1.25)
    assert n == 2
    got = db.select(parse_selector("up"), T0, T0 + 10)
    assert [(s.labels, s.timestamps, s.values) for s in got] == [
        ({"__name__": "up", "instance": "a:9100", "job": "node"}, [T0 + 1.25], [1.0]),
        ({"__name__": "up", "instance": "b:9100", "job": "node"}, [T0 + 5.5], [0.0]),
    ]
    assert db.select(parse_selector("up"), T0 + 2, T0 + 5) == []  # nothing in range
    assert db.select(parse_selector("down"), T0, T0 + 10) == []


@pytest.mark.parametrize(("selector", "instances"), [
    ('m{instance="a"}', ["a"]),
    ('m{instance!="a"}', ["b", "c"]),
    ('m{instance=~"a|c"}', ["a", "c"]),
    ('m{instance!~"a|c"}', ["b"]),
    ('{__name__=~"m|other", instance=~"[bc]"}', ["b", "c"]),
    ('m{missing=""}', ["a", "b", "c"]),  # an absent label matches the empty string
    ('m{instance=~"a.*", zone="eu"}', []),
])
def test_label_matching_operators(db: TSDB, selector: str, instances: list[str]) -> None:
    db.append_rows([("m", {"instance": i}, T0, 1.0) for i in "abc"] + [("other", {"instance": "z"}, T0, 1.0)])
    got = [s.labels["instance"] for s in db.select(parse_selector(selector), T0 - 1, T0 + 1)]
    assert got == instances


def test_duplicates_overwrite_in_head_and_over_chunks(db: TSDB) -> None:
    db.append_rows([("x", {}, T0 + 10, 1.0), ("x", {}, T0 + 20, 2.0)])
    db.append_rows([("x", {}, T0 + 10, 10.0)])
    assert db.select(parse_selector("x"), T0, T0 + HOUR)[0].values == [10.0, 2.0]
    assert db.compact(T0 + 3 * HOUR) == 2
    # A late write for a compacted hour goes to the head and wins over the chunk...
    db.append_rows([("x", {}, T0 + 20, 20.0), ("x", {}, T0 + 30, 3.0)])
    assert db.select(parse_selector("x"), T0, T0 + HOUR)[0].values == [10.0, 20.0, 3.0]
    # ...and after it is compacted into a second chunk for the same hour, the newer chunk wins.
    assert db.compact(T0 + 3 * HOUR) == 2
    assert db.stats()["tiers"]["raw"]["chunks"] == 2
    got = db.select(parse_selector("x"), T0, T0 + HOUR)[0]
    assert (got.timestamps, got.values) == ([T0 + 10, T0 + 20, T0 + 30], [10.0, 20.0, 3.0])


def test_nan_and_infinities_round_trip(db: TSDB) -> None:
    values = [math.nan, math.inf, -math.inf, -0.0, 1e308, -5e-324]
    db.append_rows([("v", {}, T0 + i, v) for i, v in enumerate(values)])
    before = db.select(parse_selector("v"), T0, T0 + 10)[0].values
    db.compact(T0 + 3 * HOUR)
    after = db.select(parse_selector("v"), T0, T0 + 10)[0].values
    for got in (before, after):
        assert math.isnan(got[0]) and got[1:] == values[1:]


def test_compaction_keeps_every_sample(db: TSDB) -> None:
    rows = []
    for i in range(6):  # 6 series, 5 hours of 37 s samples with ms offsets, one series sparse
        step = 37.0 if i else 900.0
        t = T0 + i * 0.001
        while t < T0 + 5 * HOUR:
            rows.append((f"metric_{i % 2}", {"i": str(i)}, t, math.sin(t) * 10**i))
            t += step
    db.append_rows(rows)
    before = everything(db)
    now = T0 + 5 * HOUR + 600
    moved = db.compact(now)
    stats = db.stats()
    assert moved == stats["tiers"]["raw"]["samples"] == len(rows) - stats["head_samples"]
    # Only whole hours older than head_window (1 h) move: the head keeps (T0 + 4h, ...].
    assert stats["head_samples"] == sum(1 for r in rows if r[2] > T0 + 4 * HOUR)
    assert everything(db) == before
    assert db.compact(now) == 0  # idempotent
    assert everything(db) == before


def test_reopened_store_returns_the_same_data(tmp_path: Path) -> None:
    engine = open_engine(None, tmp_path)
    db = TSDB(engine)
    db.append_rows([("r", {"k": str(i % 3)}, T0 + i * 10, float(i)) for i in range(1000)])
    db.compact(T0 + 10 * HOUR)
    db.append_rows([("r", {"k": "0"}, T0 + 9 * HOUR, 99.0)])
    before = everything(db)
    engine.dispose()
    engine2 = open_engine(None, tmp_path)
    try:
        assert everything(TSDB(engine2)) == before
        # the series cache is rebuilt from the database: appends reuse the old series
        TSDB(engine2).append_rows([("r", {"k": "1"}, T0 + 9 * HOUR, 1.0)])
        assert TSDB(engine2).stats()["series"] == 3
    finally:
        engine2.dispose()


def test_at_steps_uses_lookback() -> None:
    s = SeriesData({"__name__": "x"}, [10.0, 20.0, 400.0, 1000.0], [1.0, 2.0, 3.0, 4.0])
    assert s.at_steps(0, 1400, 100, 300) == (
        [100.0, 200.0, 300.0, 400.0, 500.0, 600.0, 1000.0, 1100.0, 1200.0],
        [2.0, 2.0, 2.0, 3.0, 3.0, 3.0, 4.0, 4.0, 4.0])
    assert SeriesData({}, [], []).at_steps(0, 100, 10) == ([], [])
    with pytest.raises(InputError, match="step must be positive"):
        s.at_steps(0, 10, 0)


def test_series_labels_and_values(db: TSDB) -> None:
    db.append_rows([("a", {"job": "x", "env": "prod"}, T0, 1.0), ("a", {"job": "y"}, T0 + 100, 1.0),
                    ("b", {"job": "x", "empty": ""}, T0 + 5000, 1.0)])
    sel = [parse_selector('a{job="x"}'), parse_selector('{job="x"}')]
    assert db.series(sel, T0 - 1, T0 + 1e6) == [{"__name__": "a", "env": "prod", "job": "x"},
                                                {"__name__": "b", "job": "x"}]
    assert db.series(sel, T0 + 1000, T0 + 6000) == [{"__name__": "b", "job": "x"}]
    assert db.series(sel) == db.series(sel, T0 - 1, T0 + 1e6)
    assert db.label_names() == ["__name__", "env", "job"]
    assert db.label_values("job") == ["x", "y"]
    assert db.label_values("__name__") == ["a", "b"]
    assert db.label_values("job", [parse_selector("b")]) == ["x"]
    db.compact(T0 + 10 * HOUR)  # series() also finds data in chunks
    assert db.series(sel, T0 + 1000, T0 + 6000) == [{"__name__": "b", "job": "x"}]


def test_stats_and_delete_series(db: TSDB) -> None:
    db.append_rows([("d", {"i": str(i)}, T0 + k * 60, float(k)) for i in range(3) for k in range(120)])
    db.compact(T0 + 2 * HOUR + 60)  # moves ts <= T0 + 1h: windows (T0 - 1h, T0] and (T0, T0 + 1h]
    st = db.stats()
    assert st["series"] == 3 and st["head_samples"] == 3 * 59
    assert st["tiers"]["raw"]["chunks"] == 6 and st["tiers"]["raw"]["samples"] == 3 * 61
    assert st["tiers"]["raw"]["bytes"] > 0 and st["database_bytes"] > 0
    assert db.delete_series(parse_selector('d{i=~"0|2"}')) == 2
    assert [s.labels["i"] for s in db.select(parse_selector("d"), T0, T0 + 3 * HOUR)] == ["1"]
    st = db.stats()
    assert (st["series"], st["head_samples"], st["tiers"]["raw"]["chunks"]) == (1, 59, 2)
    # a deleted series comes back as a new one when appended again
    db.append_rows([("d", {"i": "0"}, T0, 5.0)])
    assert db.select(parse_selector('d{i="0"}'), T0, T0)[0].values == [5.0]
    with pytest.raises(InputError, match="at least one matcher"):
        db.delete_series([])


@pytest.mark.parametrize("row", [
    ("x", {}, None, 1.0),
    ("x", {}, math.nan, 1.0),
    ("x", {}, 1.0, "not a number"),
    ("x", None, 1.0, 1.0),
])
def test_invalid_rows_roll_back_the_batch(db: TSDB, row: tuple) -> None:  # type: ignore[type-arg]
    with pytest.raises(InputError, match="invalid sample"):
        db.append_rows([("ok", {"new": "series"}, T0, 1.0), row])
    assert db.stats()["head_samples"] == 0
    assert db.append_rows([("ok", {"new": "series"}, T0, 1.0)]) == 1
    assert db.stats()["series"] == 1


def test_database_errors_become_storage_errors(tmp_path: Path) -> None:
    engine = open_engine(None, tmp_path)
    try:
        db = TSDB(engine)
        db.append_rows([("x", {}, T0, 1.0)])
        with engine.begin() as conn:
            conn.execute(text("DROP TABLE samples"))
        with pytest.raises(StorageError, match=r"cannot write samples in database sqlite:///.*watchkeeper.db: "
                                               r"no such table: samples"):
            db.append_rows([("x", {}, T0, 1.0)])
        with pytest.raises(StorageError, match="cannot read samples in database"):
            db.select(parse_selector("x"), T0, T0 + 1)
    finally:
        engine.dispose()


def test_unknown_tier_and_bad_arguments(db: TSDB) -> None:
    db.append_rows([("x", {}, T0, 1.0)])
    with pytest.raises(InputError, match="unknown tier 'daily'"):
        db.select(parse_selector("x"), T0, T0 + 1, tier="daily")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="head_window"):
        TSDB(db.engine, head_window=-1)


def test_concurrent_writers_and_readers(tmp_path: Path) -> None:
    engine = open_engine(None, tmp_path)
    db = TSDB(engine, batch_rows=300)
    errors: list[BaseException] = []

    def writer(w: int) -> None:
        try:
            for k in range(50):
                db.append_rows([("c", {"w": str(w), "s": str(i)}, T0 + k * 15, float(k)) for i in range(20)])
        except Exception as exc:
            errors.append(exc)

    def reader() -> None:
        try:
            for _ in range(30):
                for s in db.select([Matcher.make("__name__", "=", "c")], T0, T0 + HOUR):
                    assert s.timestamps == sorted(set(s.timestamps))
                db.compact(T0 + 5 * HOUR)
        except Exception as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)] + [threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    try:
        assert errors == []
        db.compact(T0 + 5 * HOUR)
        got = db.select(parse_selector("c"), T0, T0 + HOUR)
        assert len(got) == 80 and all(s.values == [float(k) for k in range(50)] for s in got)
    finally:
        engine.dispose()
