"""Chunk formats: format 2 (offset-coded timestamps, decimal-scaled values) round-trips bit
for bit, and format 1 chunks written by earlier releases still decode, alone, in bulk
and inside a store."""

from __future__ import annotations

import json
import math
import random
import struct
from itertools import accumulate
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from watchkeeper.errors import StorageError
from watchkeeper.query.selector import parse_selector
from watchkeeper.staleness import STALE_NAN, is_stale
from watchkeeper.store import chunks as enc
from watchkeeper.store.engine import open_engine
from watchkeeper.store.models import chunks, series
from watchkeeper.store.retention import RetentionPolicy
from watchkeeper.store.tsdb import TSDB

FIXTURE = Path(__file__).parent.parent / "fixtures" / "store" / "raw_chunks_v1.json"
HOUR_MS = 3_600_000
T0_MS = 1_699_999_200_000  # an hour boundary


def bits(values: Any) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


def fixture_chunks() -> list[dict[str, Any]]:
    return list(json.loads(FIXTURE.read_text())["chunks"])


def expected(case: dict[str, Any]) -> tuple[list[int], list[bytes]]:
    return case["timestamps"], [bytes.fromhex(h) for h in case["value_bits"]]


def header(blob: bytes) -> dict[str, int]:
    version, kind, tw, vmode, vw, k, flags, n = struct.unpack_from("<BBBBBbBxI", blob)
    return {"version": version, "tw": tw, "vmode": vmode, "vw": vw, "k": k, "flags": flags, "n": n}


# -- format 1 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("case", fixture_chunks(), ids=lambda c: c["case"])
def test_format_1_chunks_from_an_earlier_release_decode(case: dict[str, Any]) -> None:
    blob = bytes.fromhex(case["blob"])
    assert blob[0] == 1
    ts, value_bits = expected(case)
    got_ts, got_values = enc.decode_raw(blob)
    assert got_ts == ts and bits(got_values) == value_bits
    arr_ts, arr_values = enc.decode_raw_array(blob)
    assert arr_ts == ts and bits(arr_values) == value_bits
    ((many_ts, many_values),) = enc.decode_raw_chunks([blob])
    assert many_ts.tolist() == ts and bits(many_values.tolist()) == value_bits


def test_format_1_and_2_decode_together_in_one_batch() -> None:
    cases = fixture_chunks()
    v1 = [bytes.fromhex(c["blob"]) for c in cases]
    v2 = [enc.encode_raw(*enc.decode_raw(b)) for b in v1]
    assert {b[0] for b in v2} == {2}
    mixed = [b for pair in zip(v1, v2, strict=True) for b in pair]
    decoded = enc.decode_raw_chunks(mixed)
    for i, case in enumerate(cases):
        ts, value_bits = expected(case)
        for ms, values in decoded[2 * i: 2 * i + 2]:
            assert ms.dtype == np.int64 and values.dtype == np.float64
            assert ms.tolist() == ts and bits(values.tolist()) == value_bits
    all_ts, all_values, counts = enc.decode_raw_many(mixed)
    assert counts == [len(expected(c)[0]) for c in cases for _ in range(2)]
    assert all_ts.tolist() == [t for c in cases for _ in range(2) for t in expected(c)[0]]
    assert len(all_values) == sum(counts)


def test_format_1_is_still_written_for_aggregates_and_read_by_kind() -> None:
    agg = enc.Aggregates([60_000, 120_000], [2, 1], [3.0, 1.0], [1.0, 1.0], [2.0, 1.0], [2.0, 1.0])
    blob = enc.encode_aggregates(agg)
    assert blob[0] == 1 and enc.chunk_kind(blob) == enc.KIND_AGGREGATE
    with pytest.raises(StorageError, match="kind 1, expected 0"):
        enc.decode_raw_chunks([blob])


# -- format 2 ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("values", "vmode", "k"), [
    ([float(i * 1234) for i in range(240)], 1, 0),                   # a counter
    ([round(500 + math.sin(i) * 40, 2) for i in range(240)], 1, 2),  # a gauge of two decimals
    ([0.5, 0.25, 0.125, 0.0625], 1, 4),
    ([1e-9, 2e-9, 3.7e-8], 1, 9),
    ([float(2**51), -float(2**51)], 1, 0),
    ([float(2**53), 1.0], 0, 0),                                     # too large to scale
    ([1e-10, 1.0], 0, 0),                                            # more than nine decimals
    ([0.30000000000000004, 0.1], 0, 0),
    ([1.0, -0.0, 2.0], 0, 0),                                        # -0.0 keeps its sign bit
    ([1.0, math.nan, 2.0], 0, 0),
    ([1.0, STALE_NAN], 0, 0),
    ([math.inf, 1.0], 0, 0),
    ([7.0], 1, 0),
    ([7.0] * 100, 1, 0),                                             # constant: no value bytes
])
def test_format_2_picks_the_value_coding_and_round_trips(values: list[float], vmode: int, k: int) -> None:
    ts = [T0_MS + i * 15_000 + (i * 7) % 5 for i in range(len(values))]
    blob = enc.encode_raw(ts, values)
    h = header(blob)
    assert (h["version"], h["vmode"], h["k"]) == (2, vmode, k)
    got_ts, got_values = enc.decode_raw(blob)
    assert got_ts == ts and bits(got_values) == bits(values)
    if any(is_stale(v) for v in values):
        assert is_stale(got_values[values.index(STALE_NAN)])


@pytest.mark.parametrize(("ts", "tw"), [
    ([T0_MS + i * 15_000 for i in range(240)], 0),                # regular: no timestamp bytes
    ([T0_MS + i * 15_000 + (i * 7) % 11 for i in range(240)], 1),  # a few ms of jitter
    ([T0_MS + i * 15_000 + (i * 997) % 3000 for i in range(240)], 2),
    ([0, 1, 2**33, 2**33 + 5], 8),                                 # a gap wider than 32 bits
    ([-5_000, -1_000, 0, 3], 2),                                   # before the epoch
    ([T0_MS], 0),
])
def test_format_2_timestamp_widths(ts: list[int], tw: int) -> None:
    values = [float(i) for i in range(len(ts))]
    blob = enc.encode_raw(ts, values)
    assert header(blob)["tw"] == tw
    assert enc.decode_raw(blob) == (ts, values)


def test_noisy_bodies_are_stored_without_zlib_and_smooth_ones_compressed() -> None:
    ts = [T0_MS + i * 15_000 for i in range(240)]
    rnd = random.Random(7)
    noisy = [float(rnd.randrange(30_000)) for _ in range(240)]
    levels = [float(i % 3 == 0) for i in range(240)]
    noisy_blob, level_blob = enc.encode_raw(ts, noisy), enc.encode_raw(ts, levels)
    assert header(noisy_blob)["flags"] == 1 and header(level_blob)["flags"] == 0
    decoded = enc.decode_raw_chunks([noisy_blob, level_blob])
    assert decoded[0][1].tolist() == noisy and decoded[1][1].tolist() == levels


def test_format_2_is_smaller_than_format_1() -> None:
    ts = [T0_MS + i * 15_000 + (i * 7) % 11 - 5 for i in range(240)]
    for values in ([float(1_000_000 + i * 1234 + i % 7) for i in range(240)],
                   [round(500 + math.sin(i / 9) * 40, 2) for i in range(240)]):
        old = enc._encode(enc.KIND_RAW, ts, None, [values])  # what earlier releases wrote
        assert len(enc.encode_raw(ts, values)) < 0.8 * len(old)


SPECIAL = [0.0, -0.0, math.inf, -math.inf, math.nan, STALE_NAN, 5e-324, 1e300, 0.1, 2.0**52, 2.0**53]


@st.composite
def decimal_series(draw: st.DrawFn) -> tuple[list[int], list[float]]:
    n = draw(st.integers(1, 200))
    first = draw(st.integers(-(2**50), 2**50))
    step = draw(st.integers(1, 60_000))
    jitter = draw(st.lists(st.integers(0, draw(st.sampled_from([0, 3, 300, 2**20]))), min_size=n - 1,
                           max_size=n - 1))
    ts = list(accumulate((step + j for j in jitter), initial=first))
    k = draw(st.integers(0, 11))
    bound = draw(st.sampled_from([10, 10**6, 10**15, 2**53]))
    values = [m / 10**k for m in draw(st.lists(st.integers(-bound, bound), min_size=len(ts), max_size=len(ts)))]
    if draw(st.booleans()):
        i = draw(st.integers(0, len(values) - 1))
        values[i] = draw(st.sampled_from(SPECIAL))
    return ts, values


@settings(max_examples=300, deadline=None)
@given(st.lists(decimal_series(), min_size=1, max_size=4))
def test_decimal_values_round_trip_bit_exact_alone_and_in_bulk(batch: list[tuple[list[int], list[float]]]) -> None:
    blobs = [enc.encode_raw(ts, values) for ts, values in batch]
    for blob, (ts, values) in zip(blobs, batch, strict=True):
        got_ts, got_values = enc.decode_raw(blob)
        assert got_ts == ts and bits(got_values) == bits(values)
    for (ms, vals), (ts, values) in zip(enc.decode_raw_chunks(blobs), batch, strict=True):
        assert ms.tolist() == ts and bits(vals.tolist()) == bits(values)


def test_corrupt_format_2_chunks_raise_storage_error() -> None:
    blob = enc.encode_raw([1, 2, 3], [1.5, 2.5, 3.5])
    bad_width = bytearray(blob)
    bad_width[2] = 3  # no such timestamp width
    with pytest.raises(StorageError, match="corrupt chunk: bad header"):
        enc.decode_raw(bytes(bad_width))
    rnd = random.Random(7)
    noisy = enc.encode_raw(list(range(0, 2400, 10)), [float(rnd.randrange(30_000)) for _ in range(240)])
    assert header(noisy)["flags"] == 1
    with pytest.raises(StorageError, match="do not hold 240 samples"):
        enc.decode_raw(noisy[:-1])
    packed = enc.encode_raw(list(range(240)), [float(i % 3 == 0) for i in range(240)])
    assert header(packed)["flags"] == 0
    with pytest.raises(StorageError, match="corrupt chunk"):
        enc.decode_raw(packed[:-3])
    with pytest.raises(StorageError, match="corrupt chunk"):
        enc.decode_raw(packed[:40])
    with pytest.raises(StorageError, match="corrupt chunk"):
        enc.decode_raw_chunks([b""])


def test_encode_rejects_a_span_beyond_2_62_ms() -> None:
    with pytest.raises(ValueError, match="2\\*\\*62"):
        enc.encode_raw([0, 2**62], [1.0, 2.0])


# -- format 1 chunks inside a store -------------------------------------------------------------
@pytest.fixture(params=["fast", "core"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    engine = open_engine(None, tmp_path)
    yield TSDB(engine, sqlite_fast_path=request.param == "fast",
               retention=RetentionPolicy(raw=86400.0, minute=0, hour=0))
    engine.dispose()


def test_a_store_with_format_1_chunks_reads_and_downsamples_them(db: TSDB) -> None:
    """A database written by an earlier release: its chunks are format 1; new ones are format 2."""
    old_ts = [T0_MS + i * 15_000 for i in range(240)]  # hour 0, written by the earlier release
    old_values = [float(100 + i) for i in range(239)] + [STALE_NAN]
    db.append_rows([("m", {"job": "a"}, (T0_MS + HOUR_MS + 15_000) / 1000, 7.0)])  # hour 1, head
    with db.engine.begin() as conn:
        sid = conn.execute(select(series.c.id)).scalar_one()
        conn.execute(insert(chunks), [{"series_id": sid, "tier": 0, "start_ts": old_ts[0], "end_ts": old_ts[-1],
                                       "count": 240, "data": enc._encode(enc.KIND_RAW, old_ts, None, [old_values])}])
    want_ts = [*old_ts, T0_MS + HOUR_MS + 15_000]
    want_bits = bits([*old_values, 7.0])

    def check(store: TSDB) -> None:
        (col,) = store.select_columns(parse_selector("m"), T0_MS / 1000, (T0_MS + 2 * HOUR_MS) / 1000)
        assert col.ms.tolist() == want_ts and bits(col.values.tolist()) == want_bits
        (s,) = store.select(parse_selector("m"), T0_MS / 1000, (T0_MS + 2 * HOUR_MS) / 1000)
        assert s.values[:3] == [100.0, 101.0, 102.0] and is_stale(s.values[239])
        labels, ms, values = store.select_newest(parse_selector("m"), T0_MS / 1000, (T0_MS + HOUR_MS) / 1000)
        assert labels == [{"__name__": "m", "job": "a"}] and ms.tolist() == [old_ts[-1]]
        assert is_stale(float(values[0]))

    check(db)
    db.compact((T0_MS + 3 * HOUR_MS) / 1000)  # the head sample becomes a format 2 chunk
    blobs = [bytes(b) for b in db.engine.connect().execute(select(chunks.c.data).order_by(chunks.c.id)).scalars()]
    assert [b[0] for b in blobs] == [1, 2]
    check(TSDB(db.engine, sqlite_fast_path=db._fast))  # a fresh store: nothing cached
    db.apply_retention((T0_MS + 3 * 86_400_000) / 1000)  # both hours become minute aggregates
    (agg,) = db.select(parse_selector("m"), T0_MS / 1000, (T0_MS + 2 * HOUR_MS) / 1000)
    assert agg.values[:3] == [100.0, 104.0, 108.0]  # the last value of each minute, (end - 60 s, end]
    assert agg.values[-1] == 7.0


def test_a_small_chunk_cache_evicts_and_reads_stay_exact(tmp_path: Path) -> None:
    engine = open_engine(None, tmp_path)
    try:
        db = TSDB(engine, cache_samples=500)  # two hourly chunks of 240 samples fit, three do not
        db.append_rows([("m", {"i": str(i)}, T0_MS / 1000 + t, float(i * 10_000 + t))
                        for i in range(3) for t in range(0, 3 * 3600, 15)])
        db.compact(T0_MS / 1000 + 5 * 3600)
        start, end = T0_MS / 1000, T0_MS / 1000 + 3 * 3600
        want = [(c.ms.tolist(), c.values.tolist()) for c in TSDB(engine).select_columns(parse_selector("m"), start, end)]
        assert [len(ms) for ms, _ in want] == [720] * 3
        for _ in range(3):
            got = [(c.ms.tolist(), c.values.tolist()) for c in db.select_columns(parse_selector("m"), start, end)]
            assert got == want
            assert db._cache.samples <= 500
    finally:
        engine.dispose()
