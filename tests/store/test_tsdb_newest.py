"""Newest-sample reads (instant queries) and the merged reads they shortcut agree, over the
head's slots, chunks, later writes, staleness markers and the IN-list and whole-span paths."""

from __future__ import annotations

import math
import struct
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.query.selector import parse_selector
from watchkeeper.staleness import STALE_NAN
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB

T0 = 1_699_999_200.0  # an hour boundary; the head's slots are 120 s wide


@pytest.fixture(params=["fast", "core"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    engine = open_engine(None, tmp_path)
    yield TSDB(engine, sqlite_fast_path=request.param == "fast", head_window=1800.0)
    engine.dispose()


def reference(db: TSDB, selector: str, start: float, end: float) -> list[tuple[dict[str, str], int, bytes]]:
    """The newest sample of each series as the full merged read sees it."""
    return [(dict(c.labels), int(c.ms[-1]), struct.pack("<d", c.values[-1]))
            for c in db.select_columns(parse_selector(selector), start, end)]


def newest(db: TSDB, selector: str, start: float, end: float) -> list[tuple[dict[str, str], int, bytes]]:
    labels, ms, values = db.select_newest(parse_selector(selector), start, end)
    assert len(labels) == len(ms) == len(values)
    by_columns = [(dict(c.labels), int(c.ms[-1]), struct.pack("<d", c.values[-1]))
                  for c in db.select_columns(parse_selector(selector), start, end, newest=True)]
    got = [(dict(lab), int(t), struct.pack("<d", v)) for lab, t, v in zip(labels, ms.tolist(), values.tolist(),
                                                                             strict=True)]
    assert got == by_columns
    return got


def load(db: TSDB) -> None:
    rows: list[tuple[str, dict[str, str], float, float]] = []
    for i in range(12):
        lab = {"i": str(i), "kind": "even" if i % 2 == 0 else "odd"}
        stop = 3600 - i * 200  # series end at different times: their newest samples sit in different slots
        rows += [("m", lab, T0 + t, float(i * 1000 + t)) for t in range(0, stop, 15)]
    rows.append(("m", {"i": "3", "kind": "odd"}, T0 + 3000, math.nan))  # a NaN is a value
    rows.append(("m", {"i": "4", "kind": "even"}, T0 + 3000, STALE_NAN))  # a marker ends the series
    rows.append(("other", {"i": "0"}, T0 + 100, 1.0))
    db.append_rows(rows)


@pytest.mark.parametrize("window", [(0, 3600), (3000, 3300), (3550, 3600), (2990, 3001), (100, 130), (5000, 6000)])
def test_newest_agrees_with_the_merged_read_in_the_head(db: TSDB, window: tuple[int, int]) -> None:
    load(db)
    start, end = T0 + window[0], T0 + window[1]
    for selector in ("m", 'm{kind="odd"}', '{__name__=~"m|other"}', 'm{i="4"}', "nothing"):
        assert newest(db, selector, start, end) == reference(db, selector, start, end)


def test_newest_agrees_with_the_merged_read_across_chunks_and_later_writes(db: TSDB) -> None:
    load(db)
    db.compact(T0 + 3600 + 1800)  # every hour before T0 + 3600 becomes chunks
    assert db.stats()["head_samples"] == 0
    # later writes: into a compacted hour (the head wins), and new samples in the head
    db.append_rows([("m", {"i": "0", "kind": "even"}, T0 + 3585, -1.5),
                    ("m", {"i": "1", "kind": "odd"}, T0 + 3700, 2.5),
                    ("m", {"i": "2", "kind": "even"}, T0 + 10, 9.0)])
    for window in [(0, 3600), (3000, 3600), (3500, 4000), (0, 20), (3650, 3700)]:
        start, end = T0 + window[0], T0 + window[1]
        for selector in ("m", 'm{kind="even"}'):
            assert newest(db, selector, start, end) == reference(db, selector, start, end)
    (first,) = [r for r in newest(db, 'm{i="0"}', T0, T0 + 3600)]
    assert first[1] == (T0 + 3585) * 1000 and first[2] == struct.pack("<d", -1.5)


def test_newest_of_many_series_reads_the_whole_span_without_in_lists(tmp_path: Path) -> None:
    """More than 500 series, most of all: the head is grouped slot by slot without IN lists."""
    engine = open_engine(None, tmp_path)
    try:
        db = TSDB(engine)
        rows = []
        for i in range(700):
            last = 300 if i % 7 else 100  # every seventh series stops early: found in an older slot
            rows += [("n", {"i": str(i)}, T0 + t, float(i + t)) for t in range(0, last + 1, 15)]
        rows += [("x", {"i": str(i)}, T0 + 60, 1.0) for i in range(100)]
        db.append_rows(rows)
        for start, end in [(T0, T0 + 300), (T0 + 100, T0 + 300), (T0 - 86_400, T0 + 300)]:
            got = newest(db, "n", start, end)
            assert got == reference(db, "n", start, end)
            assert len(got) == (700 if start <= T0 + 90 else 600)
    finally:
        engine.dispose()
