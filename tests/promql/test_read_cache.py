"""ReadCache: one read per metric name for a batch of queries, answers equal to the source's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from watchkeeper.query.promql.evaluator import Evaluator
from watchkeeper.query.promql.parser import parse
from watchkeeper.query.promql.source import MemorySource, ReadCache, selector_windows
from watchkeeper.query.selector import parse_selector
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB

T = 1_700_000_000.0
QUERIES = [
    'cpu{mode="idle"}', 'cpu{mode="idle",dc="1"}', 'cpu{mode!="idle"}', 'cpu{dc=~"1|2"}', 'cpu{missing=""}',
    'cpu{missing!=""}', "rate(cpu[5m])", 'sum by (dc) (rate(cpu{mode="user"}[10m]))',
    "predict_linear(cpu[1h], 3600)", "cpu offset 10m", "max_over_time(cpu[20m] offset 5m)",
    'absent(cpu{dc="9"})', "cpu / on(instance, mode, dc) cpu", '{__name__=~"cp.*"}', "count_over_time(cpu[30m:1m])",
]


@pytest.fixture
def tsdb(tmp_path: Path) -> Any:
    engine = open_engine(None, tmp_path)
    db = TSDB(engine)
    rows = []
    for k in range(240):
        t = T - 3600 + k * 15 + 0.25
        for i in range(6):
            for mode in ("idle", "user"):
                rows.append(("cpu", {"instance": f"h{i}", "mode": mode, "dc": str(i % 3)}, t, k * (i + 1.5)))
    db.append_rows(rows)
    yield db
    engine.dispose()


def as_list(v: Any) -> list[tuple[tuple[tuple[str, str], ...], float]]:
    return sorted((tuple(sorted(s.labels.items())), s.value) for s in v)


def test_cached_answers_equal_direct_answers_with_one_read_per_name(tsdb: TSDB) -> None:
    direct = Evaluator(tsdb)
    cache = ReadCache(tsdb, selector_windows([parse(q) for q in QUERIES], 300.0))
    cached = direct.with_source(cache)
    for q in QUERIES:
        assert as_list(cached.instant(q, T)) == as_list(direct.instant(q, T)), q
    # the windows say how far back to read: "cpu" once, the regex selector directly,
    # and the subquery (left to read on demand) is already covered by the 1h + 10m read
    assert cache.reads == 2


def test_a_wider_or_later_window_reads_again(tsdb: TSDB) -> None:
    cache = ReadCache(tsdb)
    sel = parse_selector('cpu{instance="h1"}')
    assert cache.select_columns(sel, T - 60, T)[0].ms.size == 4
    assert cache.reads == 1
    got = cache.select_columns(sel, T - 600, T)
    assert cache.reads == 2
    want = tsdb.select_columns(sel, T - 600, T)
    assert [c.labels for c in got] == [c.labels for c in want]
    for a, b in zip(got, want, strict=True):
        np.testing.assert_array_equal(a.ms, b.ms)
        np.testing.assert_array_equal(a.values, b.values)
    assert len(cache.select_columns(sel, T - 120, T - 60)[0].ms) == 4
    assert cache.reads == 2


def test_invalidate_shows_new_samples_and_a_new_cache_never_sees_old_data(tsdb: TSDB) -> None:
    cache = ReadCache(tsdb)
    sel = parse_selector('cpu{instance="h0",mode="idle"}')
    assert cache.select_columns(sel, T - 60, T)[0].values[-1] == 239 * 1.5
    tsdb.append_rows([("cpu", {"instance": "h0", "mode": "idle", "dc": "0"}, T - 0.1, -1.0),
                      ("cpu", {"instance": "h9", "mode": "idle", "dc": "0"}, T - 0.1, 5.0)])
    assert cache.select_columns(sel, T - 60, T)[0].values[-1] == 239 * 1.5  # what it read
    cache.invalidate(["cpu"])
    assert cache.select_columns(sel, T - 60, T)[0].values[-1] == -1.0
    assert len(ReadCache(tsdb).select_columns(parse_selector('cpu{mode="idle"}'), T - 60, T)) == 7


def test_memory_source_and_missing_names() -> None:
    src = MemorySource([({"__name__": "a", "x": "1"}, [T - 10], [1.0])])
    cache = ReadCache(src)
    assert cache.select_columns(parse_selector("b"), T - 60, T) == []
    assert [c.labels for c in cache.select_columns(parse_selector('a{x="1"}'), T - 60, T)] == [{"__name__": "a", "x": "1"}]
    assert cache.select_columns(parse_selector('a{x="2"}'), T - 60, T) == []
    assert cache.select_columns(parse_selector("a"), T, T - 1) == []


def test_selector_windows() -> None:
    exprs = [parse(q) for q in ("rate(a[5m]) > b offset 2m", "a @ 100", "sum_over_time(c[10m:1m])", "predict_linear(a[1h], 60)")]
    assert selector_windows(exprs, 300.0) == {"a": 3_600_000, "b": 420_000}
