"""Staleness markers in the store: kept apart from ordinary NaN in the head (SQLite turns
every NaN REAL into NULL), bit-exact through compaction, left out of downsampled buckets,
and honoured by the store's own step reads and the query engine's fast paths."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from watchkeeper.monitor.model import Sample
from watchkeeper.query.engine import QueryEngine
from watchkeeper.query.selector import parse_selector
from watchkeeper.staleness import STALE_NAN, is_stale, stale_mask
from watchkeeper.store.chunks import decode_raw, encode_raw
from watchkeeper.store.engine import open_engine
from watchkeeper.store.retention import RetentionPolicy, downsample_raw
from watchkeeper.store.tsdb import TSDB

T0 = 1_700_000_000 // 3600 * 3600.0  # an hour boundary
NAN_PAYLOAD = struct.unpack("<d", struct.pack("<Q", 0x7FF8000000000001))[0]  # another NaN


@pytest.fixture(params=["fast", "core"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[TSDB]:
    engine = open_engine(None, tmp_path)
    yield TSDB(engine, sqlite_fast_path=request.param == "fast", batch_rows=500, batch_chunks=7,
               retention=RetentionPolicy(raw=86400.0, minute=0, hour=0))
    engine.dispose()


def kinds(values: list[float] | np.ndarray) -> list[str | float]:
    """Each value as "stale", "nan" or itself, so assertions read plainly."""
    return ["stale" if is_stale(v) else "nan" if math.isnan(v) else float(v) for v in values]


def test_marker_constants() -> None:
    assert struct.pack("<Q", 0x7FF0000000000002) == struct.pack("<d", STALE_NAN)
    assert is_stale(STALE_NAN) and not is_stale(math.nan) and not is_stale(NAN_PAYLOAD) and not is_stale(1.0)
    arr = np.array([1.0, STALE_NAN, math.nan, -math.inf])
    assert stale_mask(arr).tolist() == [False, True, False, False]


def test_head_keeps_the_marker_apart_from_nan(db: TSDB) -> None:
    db.append([Sample("m", {}, 1.0, T0 + 1), Sample("m", {}, math.nan, T0 + 2),
               Sample("m", {}, STALE_NAN, T0 + 3), Sample("m", {}, 4.0, T0 + 4)], T0)
    (col,) = db.select_columns(parse_selector("m"), T0, T0 + 10)
    assert kinds(col.values) == [1.0, "nan", "stale", 4.0]
    # the newest-only read of instant queries sees the marker too
    db.append([Sample("m", {}, STALE_NAN, T0 + 5)], T0)
    (col,) = db.select_columns(parse_selector("m"), T0, T0 + 10, newest=True)
    assert int(col.ms[-1]) == (T0 + 5) * 1000 and kinds(col.values[-1:]) == ["stale"]


def test_a_later_write_replaces_a_marker_and_the_reverse(db: TSDB) -> None:
    db.append([Sample("m", {}, STALE_NAN, T0 + 1), Sample("m", {}, 2.0, T0 + 2)], T0)
    db.append([Sample("m", {}, 7.0, T0 + 1), Sample("m", {}, STALE_NAN, T0 + 2)], T0)
    (col,) = db.select_columns(parse_selector("m"), T0, T0 + 10)
    assert kinds(col.values) == [7.0, "stale"]
    db.append([Sample("m", {}, math.nan, T0 + 2)], T0)
    (col,) = db.select_columns(parse_selector("m"), T0, T0 + 10)
    assert kinds(col.values) == [7.0, "nan"]


def test_compaction_keeps_markers_bit_exact(db: TSDB) -> None:
    db.append([Sample("m", {}, float(i), T0 + 10 * i) for i in range(6)]
              + [Sample("m", {}, STALE_NAN, T0 + 65), Sample("m", {}, math.nan, T0 + 75)], T0)
    assert db.compact(T0 + 3 * 3600) == 8
    assert db.stats()["head_samples"] == 0
    (col,) = db.select_columns(parse_selector("m"), T0, T0 + 3600)
    assert kinds(col.values) == [0.0, 1.0, 2.0, 3.0, 4.0, 5.0, "stale", "nan"]


def test_chunk_encoding_round_trips_the_marker() -> None:
    ts, vals = decode_raw(encode_raw([1, 2, 3], [STALE_NAN, math.nan, NAN_PAYLOAD]))
    assert [struct.pack("<d", v) for v in vals] == [struct.pack("<d", v) for v in
                                                    (STALE_NAN, math.nan, NAN_PAYLOAD)]


def test_downsampled_buckets_ignore_markers() -> None:
    agg = downsample_raw([10_000, 20_000, 30_000, 70_000, 130_000], [1.0, 5.0, STALE_NAN, STALE_NAN, 3.0], 60_000)
    # the first bucket's last is 5 (the marker is not a value); the bucket of only a
    # marker is left out
    assert agg.timestamps == [60_000, 180_000]
    assert agg.count == [2, 1] and agg.sum == [6.0, 3.0] and agg.last == [5.0, 3.0]
    assert agg.min == [1.0, 3.0] and agg.max == [5.0, 3.0]


def test_retention_downsamples_around_markers(db: TSDB) -> None:
    day = 86400.0
    start = (T0 // day) * day
    db.append([Sample("m", {}, float(i), start + 20 + 20 * i) for i in range(3)]
              + [Sample("m", {}, STALE_NAN, start + 70)], start)
    db.compact(start + 3 * day)
    done = db.apply_retention(start + 3 * day)
    assert done["raw_downsampled"] == 1
    (col,) = db.select_columns(parse_selector("m"), start, start + day)
    assert kinds(col.values) == [2.0] and int(col.ms[0]) == (start + 60) * 1000
    (agg,) = db.select_aggregates(parse_selector("m"), start, start + day)
    assert agg.count == [3] and agg.last == [2.0]


def test_select_aggregates_leave_markers_out_of_raw_and_head(db: TSDB) -> None:
    db.append([Sample("m", {}, 1.0, T0 + 1), Sample("m", {}, STALE_NAN, T0 + 2)], T0)
    db.append([Sample("m", {}, 3.0, T0 - 7200), Sample("m", {}, STALE_NAN, T0 - 7100)], T0)
    db.compact(T0 + 10)  # the older pair goes into a chunk, the newer stays in the head
    (agg,) = db.select_aggregates(parse_selector("m"), T0 - 9000, T0 + 10)
    assert agg.timestamps == [T0 - 7200, T0 + 1] and agg.last == [3.0, 1.0]


def test_step_reads_end_a_series_at_its_marker(db: TSDB) -> None:
    db.append([Sample("m", {}, 1.0, T0), Sample("m", {}, STALE_NAN, T0 + 30), Sample("m", {}, 2.0, T0 + 90)], T0)
    (data,) = db.select(parse_selector("m"), T0 - 300, T0 + 100)
    assert data.at_steps(T0, T0 + 120, 20) == ([T0, T0 + 20, T0 + 100, T0 + 120], [1.0, 1.0, 2.0, 2.0])
    (col,) = db.select_columns(parse_selector("m"), T0 - 300, T0 + 100)
    steps = (np.arange(T0, T0 + 121, 20) * 1000).astype(np.int64)
    which, values = col.at_steps(steps, 300_000)
    assert which.tolist() == [0, 1, 5, 6] and values.tolist() == [1.0, 1.0, 2.0, 2.0]


def test_query_engine_fast_paths_honour_markers(db: TSDB) -> None:
    db.append([Sample("m", {"a": "x"}, 1.0, T0), Sample("m", {"a": "x"}, STALE_NAN, T0 + 30),
               Sample("m", {"a": "y"}, 5.0, T0)], T0)
    qe = QueryEngine(db)
    got = qe.instant("m", T0 + 60)
    assert [r["metric"]["a"] for r in got["result"]] == ["y"]
    assert b'"x"' not in qe.instant_json("m", T0 + 60)
    rng = qe.range("m", T0, T0 + 60, 20)
    assert {r["metric"]["a"]: [p[0] for p in r["values"]] for r in rng["result"]} == {
        "x": [T0, T0 + 20], "y": [T0, T0 + 20, T0 + 40, T0 + 60]}
    # the same through the evaluator (not a plain selector)
    got = qe.instant("m + 0", T0 + 60)
    assert [r["metric"]["a"] for r in got["result"]] == ["y"]
