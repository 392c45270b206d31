"""Range functions over all series at once (functions_batch) against the per-series
functions (functions_range): the same bits, on random series with counter resets,
NaN, +-Inf, staleness markers, empty windows and single samples — directly and
through the evaluator (which batches by default)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from watchkeeper.errors import QueryError
from watchkeeper.query.promql.evaluator import Evaluator
from watchkeeper.query.promql.functions_batch import (
    BATCH_FUNCTIONS,
    BATCH_SCALAR_ARGS,
    batch,
    batch_bounds,
    pack,
)
from watchkeeper.query.promql.functions_range import RANGE_FUNCTIONS, RangeSeries, window_bounds
from watchkeeper.query.promql.source import MemorySource
from watchkeeper.staleness import STALE_NAN, stale_mask

NAMES = sorted(set(BATCH_FUNCTIONS) - BATCH_SCALAR_ARGS)  # without scalar arguments
SPECIAL = [math.nan, math.inf, -math.inf, STALE_NAN, 0.0, -0.0, 1e300, -1e300, 5e-324]

values_st = st.one_of(
    st.integers(-3, 30).map(float),  # small counters: frequent resets and repeats
    st.sampled_from(SPECIAL),
    st.floats(allow_nan=False, allow_infinity=False, width=64),
)


@st.composite
def series_st(draw: Any) -> tuple[list[int], list[float]]:
    ms = sorted(draw(st.lists(st.integers(0, 120), unique=True, max_size=25)))
    vals = [draw(values_st) for _ in ms]
    return [m * 1000 for m in ms], vals


def _bits(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).view("u8")


def _per_series(name: str) -> Any:
    """The stock per-series function under another identity (the evaluator batches only
    the stock functions, so a table of these makes it take the per-series path)."""
    fn = RANGE_FUNCTIONS[name]
    return lambda rs, args: fn(rs, args)


def _assert_same(name: str, got_v: np.ndarray, got_p: np.ndarray, want_v: np.ndarray,
                 want_p: np.ndarray) -> None:
    assert np.array_equal(got_p, want_p), name
    assert np.array_equal(_bits(got_v[want_p]), _bits(want_v[want_p])), (name, got_v, want_v)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series=st.lists(series_st(), max_size=6),
       steps=st.lists(st.integers(-20_000, 160_000), min_size=1, max_size=5),
       range_ms=st.integers(1, 90_000), name=st.sampled_from(NAMES))
def test_batch_equals_per_series(series: list[tuple[list[int], list[float]]], steps: list[int],
                                 range_ms: int, name: str) -> None:
    cleaned = []
    for ms, vals in series:
        m = np.array(ms, dtype=np.int64)
        v = np.array(vals, dtype=np.float64)
        keep = ~stale_mask(v)  # the evaluator leaves markers out of range windows
        cleaned.append(({}, m[keep], v[keep]))
    times = np.array(steps, dtype=np.int64)
    got = batch(name, pack(cleaned), times, range_ms)
    assert got is not None
    values, present, fallback = got
    assert values.shape == present.shape == (len(cleaned), len(times))
    for i, (_, m, v) in enumerate(cleaned):
        if fallback is not None and fallback[i]:
            with np.errstate(over="ignore"):
                assert np.abs(v[np.isfinite(v)]).sum() > 1e299
            continue
        want_v, want_p = RANGE_FUNCTIONS[name](RangeSeries.build({}, m, v, times, range_ms), ())
        _assert_same(name, values[i], present[i], want_v, want_p)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series=st.lists(series_st(), max_size=6),
       steps=st.lists(st.integers(-20_000, 160_000), min_size=1, max_size=5),
       range_ms=st.integers(1, 90_000), offset_ms=st.sampled_from([0, 7000, -3000]),
       duration=st.sampled_from([0.0, 60.0, 14400.0, -30.5, math.inf, math.nan]))
def test_batch_predict_linear_equals_per_series(series: list[tuple[list[int], list[float]]], steps: list[int],
                                                range_ms: int, offset_ms: int, duration: float) -> None:
    """predict_linear (a scalar argument per step, intercept at the evaluation time, that
    is the window end plus the offset) batched: the per-series bits."""
    cleaned = []
    for ms, vals in series:
        m = np.array(ms, dtype=np.int64)
        v = np.array(vals, dtype=np.float64)
        keep = ~stale_mask(v)
        cleaned.append(({}, m[keep], v[keep]))
    times = np.array(steps, dtype=np.int64)
    args = (np.full(len(times), duration),)
    got = batch("predict_linear", pack(cleaned), times, range_ms, offset_ms=offset_ms, args=args)
    assert got is not None
    values, present, fallback = got
    assert fallback is None
    for i, (_, m, v) in enumerate(cleaned):
        rs = RangeSeries.build({}, m, v, times, range_ms, offset_ms)
        want_v, want_p = RANGE_FUNCTIONS["predict_linear"](rs, args)
        _assert_same("predict_linear", values[i], present[i], want_v, want_p)


def test_scalar_arguments_only_for_functions_that_take_them() -> None:
    p = pack([({}, np.array([0, 1000], dtype=np.int64), np.array([1.0, 2.0]))])
    assert batch("rate", p, np.array([1000], dtype=np.int64), 5000, args=(np.array([1.0]),)) is None
    assert BATCH_SCALAR_ARGS <= set(BATCH_FUNCTIONS)


@pytest.mark.parametrize("query", ["predict_linear(m[40s], 3600)", "predict_linear(m[40s] offset 7s, -60)",
                                   "deriv(m[40s])", "predict_linear({__name__=~\"m|n\"}[1m], 10)"])
@pytest.mark.parametrize("gather", [True, False])
def test_evaluator_regression_batch_equals_per_series(query: str, gather: bool, monkeypatch: Any) -> None:
    """deriv and predict_linear through the evaluator, batched and per series, on
    many series with many samples (the rule-evaluation shape) and a few odd ones;
    with the increments gathered up front and (too many of them) one position at a time."""
    if not gather:
        from watchkeeper.query.promql import functions_batch

        monkeypatch.setattr(functions_batch, "_REGRESSION_PAD", 0)
    rnd = np.random.default_rng(5)
    src = MemorySource()
    for i in range(200):
        ms = np.arange(0, 120_000, 5_000) + i * 37
        vals = np.cumsum(rnd.normal(0, 1e3, len(ms))) * (10.0 ** (i % 9 - 4))
        if i % 13 == 0:
            vals[:] = 7.0  # constant
        if i % 17 == 0:
            vals[3] = math.nan
        if i % 19 == 0:
            vals[-2] = math.inf
        src.add({"__name__": "m" if i % 3 else "n", "i": str(i)}, (ms / 1000).tolist(), vals.tolist())
    per_series = {n: _per_series(n) for n in RANGE_FUNCTIONS}
    for t in (100_000, 119_000, 30_000):
        got = Evaluator(src).evaluate(query, t, t, 1).value
        want = Evaluator(src, range_functions=per_series).evaluate(query, t, t, 1).value
        assert got.labels == want.labels and len(got.labels) > 50
        _assert_same(query, got.values, got.present, want.values, want.present)
    # several steps (still batched) against the per-series path
    got = Evaluator(src).evaluate(query, 60_000, 110_000, 10_000).value
    want = Evaluator(src, range_functions=per_series).evaluate(query, 60_000, 110_000, 10_000).value
    assert got.labels == want.labels
    _assert_same(query, got.values, got.present, want.values, want.present)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series=st.lists(series_st(), max_size=5),
       names=st.lists(st.sampled_from(["m", "n"]), min_size=5, max_size=5),
       start=st.integers(0, 130), nsteps=st.integers(1, 4), step=st.integers(1, 40),
       range_s=st.integers(1, 90), offset=st.sampled_from(["", " offset 7s"]),
       both=st.booleans(), name=st.sampled_from(NAMES))
def test_evaluator_batch_equals_per_series(series: list[tuple[list[int], list[float]]], names: list[str],
                                           start: int, nsteps: int, step: int, range_s: int, offset: str,
                                           both: bool, name: str) -> None:
    src = MemorySource()
    for i, (ms, vals) in enumerate(series):
        src.add({"__name__": names[i], "i": str(i)}, [m / 1000 for m in ms], vals)
    sel = '{__name__=~"m|n"}' if both else "m"
    query = f"{name}({sel}[{range_s}s]{offset})"
    per_series = {n: _per_series(n) for n in RANGE_FUNCTIONS}
    args = (start * 1000, (start + (nsteps - 1) * step) * 1000, step * 1000)
    outcomes = []
    for ev in (Evaluator(src), Evaluator(src, range_functions=per_series)):
        try:
            outcomes.append(ev.evaluate(query, *args).value)
        except QueryError as err:
            outcomes.append(str(err))
    got, want = outcomes
    if isinstance(want, str):
        assert got == want
        return
    assert [sorted(lb.items()) for lb in got.labels] == [sorted(lb.items()) for lb in want.labels]
    _assert_same(name, got.values, got.present, want.values, want.present)


def test_instant_query_many_series_matches() -> None:
    """The rule-evaluation shape: one step, many counters (some reset, one stale)."""
    rnd = np.random.default_rng(3)
    src = MemorySource()
    for i in range(300):
        ms = np.arange(0, 600_000, 15_000)
        vals = np.cumsum(rnd.integers(0, 100, len(ms))).astype(float)
        if i % 7 == 0:
            vals[len(vals) // 2:] -= vals[len(vals) // 2]
        if i % 11 == 0:
            vals[-1] = STALE_NAN
        src.add({"__name__": "c", "i": str(i)}, (ms / 1000).tolist(), vals.tolist())
    per_series = {n: _per_series(n) for n in RANGE_FUNCTIONS}
    for name in NAMES:
        q = f"{name}(c[5m])"
        got = Evaluator(src).evaluate(q, 590_000, 590_000, 1).value
        want = Evaluator(src, range_functions=per_series).evaluate(q, 590_000, 590_000, 1).value
        assert len(got.labels) == 300
        assert got.labels == want.labels
        _assert_same(name, got.values, got.present, want.values, want.present)


@pytest.mark.parametrize("name", ["sum_over_time", "avg_over_time"])
def test_sums_that_may_overflow_use_the_per_series_replay(name: str) -> None:
    src = MemorySource([({"__name__": "g", "i": "big"}, [1, 2, 3], [1e308, 1e308, -1e308]),
                        ({"__name__": "g", "i": "small"}, [1, 2, 3], [0.1, 0.2, 0.3])])
    res = Evaluator(src).instant(f"{name}(g[1m])", 3.0)
    by = {s.labels["i"]: s.value for s in res}
    want = RANGE_FUNCTIONS[name](RangeSeries.build(
        {}, np.array([1000, 2000, 3000]), np.array([1e308, 1e308, -1e308]), np.array([3000]), 60_000), ())
    assert by["big"] == float(want[0][0])
    assert by["small"] == pytest.approx(0.6 if name == "sum_over_time" else 0.2)


def test_bounds_equal_per_series_window_bounds() -> None:
    cols = [({}, np.array([0, 5, 9], dtype=np.int64), np.zeros(3)),
            ({}, np.array([3], dtype=np.int64), np.zeros(1)),
            ({}, np.array([1, 2, 8, 20], dtype=np.int64), np.zeros(4))]
    p = pack(cols)
    times = np.array([-5, 0, 4, 9, 30], dtype=np.int64)
    got = batch_bounds(p, times, 5)
    assert got is not None
    for i, (_, ms, _) in enumerate(cols):
        lo, hi = window_bounds(ms, times, 5)
        assert got[0][i].tolist() == (lo + p.offsets[i]).tolist()
        assert got[1][i].tolist() == (hi + p.offsets[i]).tolist()


def test_timestamps_too_far_apart_are_not_batched() -> None:
    p = pack([({}, np.array([0], dtype=np.int64), np.zeros(1)),
              ({}, np.array([1 << 61], dtype=np.int64), np.zeros(1))])
    assert batch_bounds(p, np.array([1 << 61], dtype=np.int64), 10) is None
    assert batch("rate", p, np.array([1 << 61], dtype=np.int64), 10) is None
    assert batch("quantile_over_time", p, np.array([0], dtype=np.int64), 10) is None


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(series=st.lists(series_st(), max_size=5), start=st.integers(-10, 130), step=st.integers(1, 9),
       pick=st.lists(st.integers(0, 39), min_size=1, max_size=4, unique=True),
       query=st.sampled_from(["m", "timestamp(m)", "m offset 3s", "rate(m[20s])", "changes(m[30s])",
                              "max_over_time(m[1m])"]))
def test_few_steps_equal_the_same_steps_of_a_long_range(series: list[tuple[list[int], list[float]]],
                                                        start: int, step: int, pick: list[int],
                                                        query: str) -> None:
    """Few steps (selectors and range functions batched over the series) give, bit for
    bit, the values of the same steps inside a range of many (the per-series path).
    Sums are left out: the per-series compensated prefix sums themselves depend on
    where the loaded samples start (a huge value before the window costs precision),
    and fewer steps load fewer samples; batch and per-series sums over the SAME
    samples are compared above."""
    from watchkeeper.query.promql.evaluator import BATCH_MAX_STEPS

    src = MemorySource()
    for i, (ms, vals) in enumerate(series):
        src.add({"__name__": "m", "i": str(i)}, [m / 1000 for m in ms], vals)
    ev = Evaluator(src, lookback=25)
    nsteps = 40
    assert nsteps > BATCH_MAX_STEPS
    long = ev.evaluate(query, start * 1000, (start + (nsteps - 1) * step) * 1000, step * 1000).value
    for k in pick:
        t = (start + k * step) * 1000
        one = ev.evaluate(query, t, t, 1).value
        assert [lb for lb, p in zip(long.labels, long.present[:, k]) if p] == \
            [lb for lb, p in zip(one.labels, one.present[:, 0]) if p]
        rows = [long.labels.index(lb) for lb, p in zip(one.labels, one.present[:, 0]) if p]
        got, want = one.values[one.present[:, 0], 0], long.values[rows, k]
        assert np.array_equal(_bits(got), _bits(want))
