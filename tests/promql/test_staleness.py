"""Staleness markers in PromQL, hand-computed from Prometheus's rules ("Staleness" in
the querying basics, and the engine's code paths the docs describe):

1. An instant selector at ``t`` takes the newest sample in ``(t - 5m, t]``; when that
   sample is a staleness marker the series has no value at ``t`` — no older sample
   stands in for it. A sample written after the marker brings the series back.
2. Range selectors (``x[1m]``) leave markers out: every range function sees only
   real samples, so its answer equals the answer over the series without markers.
3. Everything built on instant selectors follows: operators, aggregations,
   ``timestamp()``, ``absent()``, and subqueries (whose inner steps use rule 1).
4. An ordinary NaN sample is a value, not a marker.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from watchkeeper.query.promql.evaluator import Evaluator
from watchkeeper.query.promql.source import MemorySource
from watchkeeper.query.promql.values import Scalar
from watchkeeper.staleness import STALE_NAN

T = 1_700_000_040.0  # a multiple of 60 s, so subquery steps fall on the samples' grid


def _source() -> MemorySource:
    return MemorySource([
        # s: 1 at T, 2 at T+15, a marker at T+30, back with 4 at T+60
        ({"__name__": "s", "job": "a"}, [T, T + 15, T + 30, T + 60, T + 75], [1.0, 2.0, STALE_NAN, 4.0, 5.0]),
        # ends with a marker and stays ended
        ({"__name__": "s", "job": "b"}, [T, T + 15, T + 30], [10.0, 20.0, STALE_NAN]),
        # an ordinary NaN sample is a value
        ({"__name__": "n"}, [T, T + 15], [1.0, math.nan]),
        # a counter with a marker in the middle
        ({"__name__": "c"}, [T, T + 15, T + 30, T + 45, T + 60], [0.0, 15.0, STALE_NAN, 45.0, 60.0]),
    ])


def at(expr: str, t: float) -> dict[tuple[tuple[str, str], ...], float] | float:
    got: Any = Evaluator(_source()).instant(expr, t)
    if isinstance(got, Scalar):
        return got.value
    return {tuple(sorted(s.labels.items())): s.value for s in got}


def a(**labels: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


@pytest.mark.parametrize(("t", "want"), [
    (T + 29, {a(__name__="s", job="a"): 2.0, a(__name__="s", job="b"): 20.0}),
    (T + 30, {}),               # the marker at t itself ends both
    (T + 59, {}),               # 2 at T+15 is inside the lookback, but the marker is newer
    (T + 60, {a(__name__="s", job="a"): 4.0}),  # a new sample brings job="a" back
    (T + 374, {a(__name__="s", job="a"): 5.0}),
    (T + 376, {}),               # no marker after T+75, but the 5-minute lookback ran out
])
def test_instant_selector_ends_at_a_marker(t: float, want: dict[Any, float]) -> None:
    assert at("s", t) == want


def test_an_ordinary_nan_is_a_value() -> None:
    got = at("n", T + 20)
    assert isinstance(got, dict) and math.isnan(got[a(__name__="n")])


def test_range_query_steps_skip_the_stale_stretch() -> None:
    rows = Evaluator(_source()).range('s{job="a"}', T, T + 90, 15)
    assert [(r.timestamps, r.values) for r in rows] == [
        ([T, T + 15, T + 60, T + 75, T + 90], [1.0, 2.0, 4.0, 5.0, 5.0])]


@pytest.mark.parametrize(("expr", "t", "want"), [
    ('s{job="a"} * 2', T + 45, {}),
    ("sum(s)", T + 45, {}),
    ('s{job="a"} or vector(7)', T + 45, {(): 7.0}),
    ("count(s)", T + 20, {(): 2.0}),
    ('timestamp(s{job="a"})', T + 20, {a(job="a"): T + 15}),
    ('timestamp(s{job="a"})', T + 45, {}),
    ('absent(s{job="a"})', T + 45, {a(job="a"): 1.0}),
    ('absent(s{job="a"})', T + 20, {}),
    # the window (T-15, T+45] still holds real samples: not absent
    ('absent_over_time(s{job="a"}[1m])', T + 45, {}),
    ('present_over_time(s{job="a"}[1m])', T + 45, {a(job="a"): 1.0}),
    ('count_over_time(s{job="a"}[1m])', T + 70, {a(job="a"): 2.0}),  # T+15 and T+60
    ('last_over_time(s{job="b"}[1m])', T + 45, {a(__name__="s", job="b"): 20.0}),
    # subquery steps in (T-1, T+59]: T, T+15, T+30, T+45 -> 1, 2, -, -
    ('count_over_time(s{job="a"}[1m:15s])', T + 59, {a(job="a"): 2.0}),
    ('min_over_time(s{job="a"}[1m:15s])', T + 59, {a(job="a"): 1.0}),
    # steps (T+15, T+75]: T+30, T+45 stale; T+60, T+75 -> 4, 5
    ('max_over_time(s{job="a"}[1m:15s])', T + 75, {a(job="a"): 5.0}),
    ('count_over_time(s{job="b"}[1m:15s])', T + 75, {}),
])
def test_functions_and_operators_follow_the_selector(expr: str, t: float, want: Any) -> None:
    assert at(expr, t) == want


@pytest.mark.parametrize("fn", [
    "rate", "irate", "increase", "delta", "idelta", "deriv", "changes", "resets", "avg_over_time",
    "min_over_time", "max_over_time", "sum_over_time", "count_over_time", "last_over_time",
    "stddev_over_time", "stdvar_over_time", "present_over_time",
])
@pytest.mark.parametrize("t", [T + 44, T + 50, T + 65, T + 100])
def test_range_functions_see_no_markers(fn: str, t: float) -> None:
    without = MemorySource([({"__name__": "c"}, [T, T + 15, T + 45, T + 60], [0.0, 15.0, 45.0, 60.0])])
    want = Evaluator(without).instant(f"{fn}(c[1m])", t)
    got = Evaluator(_source()).instant(f"{fn}(c[1m])", t)
    assert got == want


def test_instant_range_vector_result_leaves_markers_out() -> None:
    got: Any = Evaluator(_source()).instant("c[1m]", T + 50)
    assert [(s.timestamps, s.values) for s in got] == [([T, T + 15, T + 45], [0.0, 15.0, 45.0])]
