"""The step-wise PromQL evaluator on in-memory series: semantics that the oracle corpus
does not reach (edge cases, errors, per-step matching), checked by hand."""

from __future__ import annotations

import math
import struct

import numpy as np
import pytest

from watchkeeper.errors import QueryError
from watchkeeper.query.promql.evaluator import Evaluator
from watchkeeper.query.promql.functions_instant import bucket_quantile
from watchkeeper.query.promql.source import MemorySource
from watchkeeper.query.promql.values import Sample, Scalar, Series, String

T = 1_700_000_000.0


def _src() -> MemorySource:
    src = MemorySource()
    for i in range(20):
        t = T + 15 * i
        src.append({"__name__": "g", "host": "a"}, t, float(i))
        src.append({"__name__": "g", "host": "b"}, t, float(100 + i))
        src.append({"__name__": "c_total", "host": "a"}, t, 10.0 * i)
    return src


def values(v: object) -> dict[tuple[tuple[str, str], ...], float]:
    assert isinstance(v, list)
    return {tuple(sorted(s.labels.items())): s.value for s in v}


def test_lookback_is_open_on_the_left_and_closed_on_the_right() -> None:
    ev = Evaluator(_src())
    assert values(ev.instant('g{host="a"}', T + 19 * 15 + 299.999)) == {(("__name__", "g"), ("host", "a")): 19.0}
    assert ev.instant('g{host="a"}', T + 19 * 15 + 300) == []
    assert ev.instant('g{host="a"}', T - 0.001) == []
    assert ev.instant('g{host="a"}', T) == [Sample({"__name__": "g", "host": "a"}, 0.0, T)]


def test_offset_and_at_shift_the_selector_not_the_result_time() -> None:
    ev = Evaluator(_src())
    got = ev.instant('g{host="a"} offset 1m', T + 150)
    assert got == [Sample({"__name__": "g", "host": "a"}, 6.0, T + 150)]
    assert values(ev.instant(f'g{{host="a"}} @ {T + 30}', T + 1000)) == {(("__name__", "g"), ("host", "a")): 2.0}
    series = ev.range('g{host="a"} @ end()', T, T + 60, 30)
    assert series == [Series({"__name__": "g", "host": "a"}, [T, T + 30, T + 60], [4.0, 4.0, 4.0])]


def test_range_windows_are_left_open() -> None:
    ev = Evaluator(_src())
    # samples at T, T+15, T+30: (T+30-30, T+30] holds two of them
    assert values(ev.instant('count_over_time(g{host="a"}[30s])', T + 30)) == {(("host", "a"),): 2.0}
    got = ev.instant('g{host="a"}[30s]', T + 30)
    assert got == [Series({"__name__": "g", "host": "a"}, [T + 15, T + 30], [1.0, 2.0])]


def test_subquery_steps_are_multiples_of_the_step_inside_the_window() -> None:
    src = MemorySource([({"__name__": "x"}, [T - 600 + 10 * i for i in range(100)], list(range(100)))])
    ev = Evaluator(src)
    got = ev.instant("x[1m:20s]", T + 5)
    assert isinstance(got, list) and len(got) == 1
    assert got[0].timestamps == [T - 40, T - 20, T]  # 1700000000 is a multiple of 20 s
    # the default step is the evaluator's default_subquery_step; T - 50 is a multiple of 30 s
    got = Evaluator(src, default_subquery_step=30).instant("x[1m:]", T + 5)
    assert isinstance(got, list) and got[0].timestamps == [T - 50, T - 20]


def test_scalars_strings_and_scalar_range_results() -> None:
    ev = Evaluator(_src())
    assert ev.instant("1 + 2 * 3", T) == Scalar(7.0)
    assert ev.instant("2 ^ 3 ^ 2", T) == Scalar(512.0)
    assert ev.instant('"hi"', T) == String("hi")
    assert ev.range("time()", T, T + 20, 10) == [Series({}, [T, T + 10, T + 20], [T, T + 10, T + 20])]
    with pytest.raises(QueryError, match='invalid expression type "string" for range query'):
        ev.range('"hi"', T, T + 20, 10)
    with pytest.raises(QueryError, match='invalid expression type "range vector" for range query'):
        ev.range("g[1m]", T, T + 20, 10)


def test_arithmetic_drops_the_name_and_filters_keep_it() -> None:
    ev = Evaluator(_src())
    assert values(ev.instant('g{host="a"} * 2', T + 15)) == {(("host", "a"),): 2.0}
    assert values(ev.instant("g > 50", T + 15)) == {(("__name__", "g"), ("host", "b")): 101.0}
    assert values(ev.instant("g > bool 50", T + 15)) == {(("host", "a"),): 0.0, (("host", "b"),): 1.0}
    assert values(ev.instant("60 < g", T + 15)) == {(("__name__", "g"), ("host", "b")): 101.0}


def test_same_labelset_after_dropping_the_name_is_an_execution_error() -> None:
    src = _src()
    src.append({"__name__": "other", "host": "a"}, T, 1.0)
    ev = Evaluator(src)
    with pytest.raises(QueryError, match="vector cannot contain metrics with the same labelset") as err:
        ev.instant('{__name__=~"g|other", host="a"} + 1', T)
    assert err.value.error_type == "execution" and err.value.http_status == 422
    # at a step where only one of them has a sample, there is no clash
    assert values(ev.instant('{__name__=~"g|other", host="a"} + 1', T + 301)) == {(("host", "a"),): 20.0}


def test_many_to_many_and_many_to_one_errors() -> None:
    src = _src()
    src.append({"__name__": "info", "host": "a", "v": "1"}, T, 1.0)
    src.append({"__name__": "info", "host": "a", "v": "2"}, T, 1.0)
    ev = Evaluator(src)
    with pytest.raises(QueryError, match=r'found duplicate series for the match group \{host="a"\} on the right '
                                         r"hand-side of the operation: .*many-to-many matching not allowed"):
        ev.instant("g * on(host) info", T)
    with pytest.raises(QueryError, match=r"multiple matches for labels: many-to-one matching must be explicit "
                                         r"\(group_left/group_right\)"):
        ev.instant("info * on(host) g", T)
    got = values(ev.instant("info * on(host) group_left g", T))
    assert got == {(("host", "a"), ("v", "1")): 0.0, (("host", "a"), ("v", "2")): 0.0}


def test_group_left_labels_follow_the_one_side_step_by_step() -> None:
    src = MemorySource()
    for i in range(10):
        src.append({"__name__": "m", "host": "a"}, T + 60 * i, 1.0)
    src.add({"__name__": "info", "host": "a", "version": "1"}, [T + 60 * i for i in range(5)], [1.0] * 5)
    src.add({"__name__": "info", "host": "a", "version": "2"}, [T + 300 + 60 * i for i in range(5)], [1.0] * 5)
    ev = Evaluator(src, lookback=30)
    got = ev.range("m * on(host) group_left(version) info", T, T + 540, 60)
    assert [(s.labels["version"], len(s.timestamps)) for s in got] == [("1", 5), ("2", 5)]


def test_or_merges_one_labelset_from_both_sides() -> None:
    ev = Evaluator(_src())
    got = ev.range('sum(g{host="a"} > 10) or vector(0)', T, T + 15 * 19, 15)
    assert len(got) == 1 and got[0].values == [0.0] * 11 + [float(i) for i in range(11, 20)]


def test_aggregations_by_and_without() -> None:
    ev = Evaluator(_src())
    assert values(ev.instant("sum(g)", T + 15)) == {(): 102.0}
    assert values(ev.instant("max by (host) (g)", T + 15)) == {(("host", "a"),): 1.0, (("host", "b"),): 101.0}
    assert values(ev.instant("count without (host) (g)", T)) == {(): 2.0}
    assert values(ev.instant("sum by (__name__) (g)", T)) == {(("__name__", "g"),): 100.0}
    assert values(ev.instant("stddev(g)", T)) == {(): 50.0}
    assert values(ev.instant("quantile(0.25, g)", T)) == {(): 25.0}
    assert values(ev.instant("topk(1, g)", T)) == {(("__name__", "g"), ("host", "b")): 100.0}
    assert values(ev.instant("bottomk(1, g)", T)) == {(("__name__", "g"), ("host", "a")): 0.0}
    assert values(ev.instant('count_values("val", g)', T)) == {(("val", "0"),): 1.0, (("val", "100"),): 1.0}


def test_min_and_max_skip_nan_unless_all_are_nan() -> None:
    src = MemorySource([({"__name__": "n", "i": "1"}, [T], [math.nan]), ({"__name__": "n", "i": "2"}, [T], [3.0])])
    ev = Evaluator(src)
    assert values(ev.instant("min(n)", T)) == {(): 3.0}
    assert math.isnan(values(ev.instant('max(n{i="1"})', T))[()])


def test_topk_with_nan_k_is_an_error() -> None:
    with pytest.raises(QueryError, match="Scalar value NaN overflows int64"):
        Evaluator(_src()).instant("topk(scalar(nothing), g)", T)


def test_absent_labels_come_from_equality_matchers() -> None:
    ev = Evaluator(_src())
    assert values(ev.instant('absent(nope{job="x", a=~"b", c="d", c="e"})', T)) == {(("job", "x"),): 1.0}
    assert ev.instant("absent(g)", T) == []
    assert values(ev.instant('absent_over_time(nope{job="x"}[1m])', T)) == {(("job", "x"),): 1.0}


@pytest.mark.parametrize(("replacement", "expected"), [
    ("$1", "ab"), ("${1}x", "abx"), ("$1x", ""), ("$name-$2", "ab-b"), ("$$1", "$1"), ("${2}", "b"),
])
def test_label_replace_expands_as_go(replacement: str, expected: str) -> None:
    src = MemorySource([({"__name__": "m", "src": "ab"}, [T], [1.0])])
    got = Evaluator(src).instant(f'label_replace(m, "dst", "{replacement}", "src", "(?P<name>a(b))")', T)
    assert isinstance(got, list)
    assert got[0].labels.get("dst", "") == expected


def test_label_replace_errors() -> None:
    ev = Evaluator(_src())
    with pytest.raises(QueryError, match="invalid destination label name in label_replace"):
        ev.instant('label_replace(g, "1x", "", "host", ".*")', T)


@pytest.mark.parametrize(("q", "bounds", "counts", "expected"), [
    (0.5, [1, 2, math.inf], [10, 20, 20], 1.0),
    (0.75, [1, 2, math.inf], [10, 20, 20], 1.5),
    (0.99, [1, 2, math.inf], [10, 10, 20], 2.0),       # the +Inf bucket: the second-highest bound
    (0.1, [-1, 0, math.inf], [5, 6, 6], -1.0),         # the first bucket's bound when it is <= 0
    (0.5, [1, 2], [10, 20], math.nan),                 # no +Inf bucket
    (0.5, [1, math.inf], [0, 0], math.nan),            # no observations
    (0.5, [1, 2, math.inf], [10, 5, 20], 1.0),         # made monotonic: 10, 10, 20
    (-1, [1, math.inf], [1, 1], -math.inf),
    (2, [1, math.inf], [1, 1], math.inf),
])
def test_bucket_quantile(q: float, bounds: list[float], counts: list[float], expected: float) -> None:
    got = bucket_quantile(np.array([q]), np.array(bounds, dtype=float), np.array(counts, dtype=float)[:, None])
    assert got[0] == expected or (math.isnan(expected) and math.isnan(got[0]))


def test_stale_markers_end_a_series() -> None:
    stale = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    src = MemorySource([({"__name__": "s"}, [T, T + 15], [1.0, stale])])
    ev = Evaluator(src)
    assert values(ev.instant("s", T + 10)) == {(("__name__", "s"),): 1.0}
    assert values(ev.instant("s", T + 20)) == {}  # the marker ends the series at once
    assert values(ev.instant("count_over_time(s[1m])", T + 20)) == {(): 1.0}


def test_date_functions_in_utc() -> None:
    ev = Evaluator(_src())
    # 2023-11-14 22:13:20 UTC, a Tuesday
    got = {f: values(ev.instant(f"{f}()", T))[()] for f in
           ("year", "month", "day_of_month", "day_of_week", "day_of_year", "hour", "minute", "days_in_month")}
    assert got == {"year": 2023, "month": 11, "day_of_month": 14, "day_of_week": 2, "day_of_year": 318,
                   "hour": 22, "minute": 13, "days_in_month": 30}


def test_memory_source_selects_by_matchers_and_time() -> None:
    from watchkeeper.query.selector import parse_selector

    src = _src()
    cols = src.select_columns(parse_selector('g{host=~"a|b"}'), T + 15, T + 30)
    assert [(c.labels["host"], c.ms.tolist()) for c in cols] == [
        ("a", [int(T * 1000) + 15000, int(T * 1000) + 30000]), ("b", [int(T * 1000) + 15000, int(T * 1000) + 30000])]
