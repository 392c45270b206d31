"""The TSDB's in-memory series index and selector cache never answer with stale series."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from watchkeeper.query.selector import parse_selector
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB

T = 1_700_000_000.0


@pytest.fixture
def two(tmp_path: Path) -> Any:
    """Two TSDB objects on one database: as two processes (a server and a CLI) see it."""
    engine = open_engine(None, tmp_path)
    other = open_engine(None, tmp_path)
    yield TSDB(engine), TSDB(other)
    engine.dispose()
    other.dispose()


def names(db: TSDB, selector: str) -> list[str]:
    return sorted(c.labels["instance"] for c in db.select_columns(parse_selector(selector), T - 60, T + 60))


def test_series_added_after_a_cached_select_are_found(two: Any) -> None:
    db, _ = two
    db.append_rows([("up", {"instance": "a", "job": "x"}, T, 1.0)])
    assert names(db, 'up{job="x"}') == ["a"]
    db.append_rows([("up", {"instance": "b", "job": "x"}, T, 1.0), ("up", {"instance": "c", "job": "y"}, T, 1.0)])
    assert names(db, 'up{job="x"}') == ["a", "b"]
    assert names(db, "up") == ["a", "b", "c"]


def test_series_written_by_another_process_are_found(two: Any) -> None:
    db, other = two
    db.append_rows([("up", {"instance": "a"}, T, 1.0)])
    assert names(db, "up") == ["a"]
    other.append_rows([("up", {"instance": "b"}, T, 1.0)])
    assert names(db, "up") == ["a", "b"]
    assert names(db, '{__name__=~"u.*"}') == ["a", "b"]


def test_deleted_series_leave_the_index(two: Any) -> None:
    db, other = two
    db.append_rows([("up", {"instance": i}, T, 1.0) for i in "abc"])
    assert [s["instance"] for s in db.series([parse_selector("up")])] == ["a", "b", "c"]
    assert other.delete_series(parse_selector('up{instance="b"}')) == 1
    assert [s["instance"] for s in db.series([parse_selector("up")])] == ["a", "c"]
    assert db.delete_series(parse_selector('up{instance="a"}')) == 1
    assert names(db, "up") == ["c"]
    # a deletion and a new series between two reads: the count alone would not change
    other.delete_series(parse_selector('up{instance="c"}'))
    other.append_rows([("up", {"instance": "d"}, T, 1.0)])
    assert names(db, "up") == ["d"]
    assert [s["instance"] for s in db.series([parse_selector("up")])] == ["d"]


def test_selector_cache_is_keyed_by_all_matchers(two: Any) -> None:
    db, _ = two
    db.append_rows([("m", {"instance": i, "dc": d}, T, 1.0) for i, d in (("a", "1"), ("b", "2"), ("c", "1"))])
    assert names(db, 'm{dc="1"}') == ["a", "c"]
    assert names(db, 'm{dc!="1"}') == ["b"]
    assert names(db, 'm{dc=~"1|2",instance!="a"}') == ["b", "c"]
    assert names(db, 'm{dc="1"}') == ["a", "c"]
