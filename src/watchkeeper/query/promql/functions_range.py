"""PromQL's range-vector functions (``rate``, ``*_over_time``, ...) over all steps at once.

The evaluator loads a series' raw samples once and hands them here as a
:class:`RangeSeries`: the samples plus, for every evaluation step ``i``, the index
range ``[lo[i], hi[i])`` of the samples in that step's window ``(t - range, t]``
(left-open, as Prometheus 3.x; :func:`window_bounds` computes it). Every function
in :data:`RANGE_FUNCTIONS` returns one value per step and a mask of the steps that
have a result (a window with too few samples has none).

Results equal Prometheus 3.x's, bit for bit where Prometheus's arithmetic is
ill-conditioned: ``deriv``, ``predict_linear``, ``stddev_over_time`` and
``stdvar_over_time`` replay Prometheus's Kahan-compensated loops in its order
(vectorized across steps, one numpy pass per sample position in the window);
``rate``/``increase`` add counter-reset corrections in Prometheus's order; sums
and means use compensated prefix sums, as accurate as Prometheus's Kahan sum.
Native histograms are not stored, so only float samples are handled; stale
markers must not be in the samples (Prometheus drops them from range windows).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from watchkeeper.query.promql.deadline import check as check_deadline

__all__ = ["RANGE_FUNCTIONS", "RangeFunction", "RangeSeries", "window_bounds"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

# With at most this many steps, the Kahan replays run as plain Python loops per
# step: numpy's per-call overhead only pays off across many steps at once.
_SCALAR_STEPS = 8
# Bound on the cells of one (steps x window) gather matrix, for quantiles.
_GATHER_CELLS = 1 << 20


@dataclass(slots=True)
class RangeSeries:
    """One series' samples and its per-step windows.

    ``ms`` (int64 ms, ascending, unique) and ``values`` (float64) are the samples;
    the samples of step ``i`` are ``ms[lo[i]:hi[i]]``, those in ``(t - range_ms, t]``
    for ``t = steps_ms[i]``, the window's right edge (the evaluation time minus any
    ``offset``). ``offset_ms`` is that offset: ``predict_linear`` takes its intercept
    at the evaluation time ``steps_ms + offset_ms``, as Prometheus does.
    """

    labels: dict[str, str]
    ms: I64
    values: F64
    lo: I64
    hi: I64
    steps_ms: I64
    range_ms: int
    offset_ms: int = 0

    @classmethod
    def build(cls, labels: dict[str, str], ms: I64, values: F64, steps_ms: I64,
              range_ms: int, offset_ms: int = 0) -> RangeSeries:
        """The series with the windows of ``steps_ms`` computed by :func:`window_bounds`."""
        lo, hi = window_bounds(ms, steps_ms, range_ms)
        return cls(labels, ms, values, lo, hi, steps_ms, range_ms, offset_ms)


RangeFunction = Callable[[RangeSeries, tuple[F64, ...]], tuple[F64, Bool]]


def window_bounds(ms: I64, steps_ms: I64, range_ms: int) -> tuple[I64, I64]:
    """``(lo, hi)``: for each step ``t``, the samples in ``(t - range_ms, t]`` are
    ``ms[lo:hi]`` (left-open window, Prometheus 3.x)."""
    steps = np.asarray(steps_ms, dtype=np.int64)
    lo = np.searchsorted(ms, steps - range_ms, side="right").astype(np.int64)
    hi = np.searchsorted(ms, steps, side="right").astype(np.int64)
    return lo, hi


# --- helpers -----------------------------------------------------------------------


def _empty(rs: RangeSeries) -> tuple[F64, Bool]:
    k = len(rs.steps_ms)
    return np.zeros(k, dtype=np.float64), np.zeros(k, dtype=np.bool_)


def _counts(rs: RangeSeries) -> I64:
    return (rs.hi - rs.lo).astype(np.int64)


def _kinc(inc: F64, s: F64, c: F64) -> tuple[F64, F64]:
    """Prometheus's ``kahansum.Inc`` (Neumaier), elementwise."""
    t = s + inc
    c = c + np.where(np.abs(s) >= np.abs(inc), (s - t) + inc, (inc - t) + s)
    return t, np.where(np.isinf(t), 0.0, c)


def _kinc_py(inc: float, s: float, c: float) -> tuple[float, float]:
    t = s + inc
    if math.isinf(t):
        return t, 0.0
    if abs(s) >= abs(inc):
        return t, c + ((s - t) + inc)
    return t, c + ((inc - t) + s)


def _div(a: float, b: float) -> float:
    """IEEE division (Python raises on ``/ 0``; Go and numpy do not)."""
    if b:
        return a / b
    if a == 0 or a != a:
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


def _by_size(rs: RangeSeries, rows: I64) -> tuple[I64, I64]:
    """``rows`` (steps) ordered by window size, largest first, and those sizes."""
    n = (rs.hi - rs.lo)[rows]
    order = np.argsort(-n, kind="stable")
    return rows[order], n[order]


def _columns(rs: RangeSeries, rows: I64, ns: I64,
             step: Callable[[int, I64, int], None]) -> None:
    """Feed the window samples of the steps ``rows`` (from :func:`_by_size`) to
    ``step`` one sample position at a time, vectorized across steps.

    As rows are ordered by window size, those that have a ``j``-th sample are a
    prefix: ``step(m, idx, j)`` gets their count ``m`` and sample indices ``idx``.
    """
    lo = rs.lo[rows]
    neg = -ns
    for j in range(int(ns[0]) if len(ns) else 0):
        m = int(np.searchsorted(neg, -j, side="left"))
        step(m, lo[:m] + j, j)


def _window_sums(a: F64, start: I64, stop: I64) -> F64:
    """``sum(a[start[i]:stop[i]])`` for each ``i``, as accurate as a Kahan sum.

    Prefix sums are compensated (each rounding error of the running sum is kept
    exactly by TwoSum and summed separately), so a window's sum is within an ulp
    or so of the exact one however large the prefix. Non-finite values follow
    IEEE: NaN, or +Inf with -Inf, give NaN; an infinity otherwise wins.
    """
    finite = np.isfinite(a)
    af = a if finite.all() else np.where(finite, a, 0.0)
    s = np.concatenate(([0.0], np.cumsum(af)))
    prev, new = s[:-1], s[1:]
    bv = new - prev
    err = (prev - (new - bv)) + (af - bv)
    comp = np.concatenate(([0.0], np.cumsum(err)))
    hs, ls = s[stop], s[start]
    d = hs - ls
    bv2 = d - hs
    e = (hs - (d - bv2)) + (-ls - bv2)
    out: F64 = d + ((comp[stop] - comp[start]) + e)
    if af is not a:
        def window_count(flags: Bool) -> I64:
            p = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
            return p[stop] - p[start]
        nan = window_count(np.isnan(a))
        pinf = window_count(a == np.inf)
        ninf = window_count(a == -np.inf)
        out = np.where(pinf > 0, np.inf, out)
        out = np.where(ninf > 0, -np.inf, out)
        out = np.where((nan > 0) | ((pinf > 0) & (ninf > 0)), np.nan, out)
    return out


def _may_overflow(values: F64) -> bool:
    """Whether a running sum of the values could leave float64 (then Prometheus's
    result depends on its summation order, and we replay it)."""
    finite = values[np.isfinite(values)]
    return bool(finite.size) and float(np.sum(np.abs(finite))) > 1e300


# --- rate, increase, delta -------------------------------------------------------------


def window_deltas(ms: I64, v: F64, lo: I64, hi: I64, ok: Bool, is_counter: bool
                  ) -> tuple[I64, I64, F64, F64]:
    """Per window ``[lo, hi)`` (arrays of any shape, indices into ``ms``/``v``): the first
    and last sample's timestamps, the first value, and last minus first value; for a
    counter plus the value before each reset (v[i] < v[i-1] adds v[i-1]) inside the
    window, added one reset at a time in Prometheus's order. Windows where ``ok`` is
    false count no resets. The windows of one series never span another's samples
    (pairs start at lo + 1), so resets found over all samples at once serve every series.
    Shared by the per-series and the batched ``rate``/``increase``/``delta``."""
    last_i = len(ms) - 1
    fi = np.minimum(lo, last_i)
    li = np.clip(hi - 1, 0, last_i)
    first_v = v[fi]
    result = v[li] - first_v
    if is_counter and len(v) > 1:
        resets = np.flatnonzero(v[1:] < v[:-1]) + 1
        if len(resets):
            a = np.searchsorted(resets, lo + 1, side="left").reshape(-1)
            b = np.searchsorted(resets, hi, side="left").reshape(-1)
            r = np.where(ok.reshape(-1), b - a, 0)
            flat = result.reshape(-1)  # a view: result is a new contiguous array
            for k in range(int(r.max())):
                rows = np.flatnonzero(r > k)
                flat[rows] += v[resets[a[rows] + k] - 1]
    return ms[fi], ms[li], first_v, result


def _extrapolated(rs: RangeSeries, is_counter: bool, is_rate: bool) -> tuple[F64, Bool]:
    """Prometheus's ``extrapolatedRate``: the difference between the first and the
    last sample (plus counter resets), extrapolated to the window's edges when the
    samples come within 1.1 average intervals of them, else by half an interval;
    a counter is never extrapolated below zero. Needs two samples."""
    n = _counts(rs)
    ok = n >= 2
    if not len(rs.ms) or not ok.any():
        return _empty(rs)
    first_t, last_t, first_v, result = window_deltas(rs.ms, rs.values, rs.lo, rs.hi, ok,
                                                     is_counter)
    return extrapolate(result, ok, first_t, last_t, first_v, n, rs.steps_ms, rs.range_ms,
                       is_counter=is_counter, is_rate=is_rate)


def extrapolate(result: Any, ok: Any, first_t: Any, last_t: Any, first_v: Any, n: Any,
                steps_ms: Any, range_ms: int, *, is_counter: bool, is_rate: bool
                ) -> tuple[Any, Any]:
    """Prometheus's extrapolation of a delta to the window's edges (``extrapolatedRate``):
    up to the edge when the gap is under 1.1x the average interval, else half an interval;
    a counter never extrapolated below zero. Shared by the per-series and batched paths."""
    range_start = steps_ms - range_ms
    range_end = steps_ms
    to_start = (first_t - range_start).astype(np.float64) / 1000
    to_end = (range_end - last_t).astype(np.float64) / 1000
    sampled = (last_t - first_t).astype(np.float64) / 1000
    avg = sampled / np.maximum(n - 1, 1).astype(np.float64)
    threshold = avg * 1.1
    to_start = np.where(to_start >= threshold, avg / 2, to_start)
    if is_counter:
        to_zero = np.where((result > 0) & (first_v >= 0), sampled * (first_v / result), to_start)
        to_start = np.where(to_zero < to_start, to_zero, to_start)
    to_end = np.where(to_end >= threshold, avg / 2, to_end)
    factor = (sampled + to_start + to_end) / sampled
    if is_rate:
        factor = factor / (range_ms / 1000)
    return np.where(ok, result * factor, 0.0), ok


def _rate(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    return _extrapolated(rs, True, True)


def _increase(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    return _extrapolated(rs, True, False)


def _delta(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    return _extrapolated(rs, False, False)


def _instant(rs: RangeSeries, is_rate: bool) -> tuple[F64, Bool]:
    """``irate``/``idelta``: from the last two samples of the window."""
    ok = _counts(rs) >= 2
    if not ok.any():
        return _empty(rs)
    li = np.where(ok, rs.hi - 1, 1)
    last, prev = rs.values[li], rs.values[li - 1]
    if not is_rate:
        return np.where(ok, last - prev, 0.0), ok
    dt = (rs.ms[li] - rs.ms[li - 1]).astype(np.float64) / 1000
    out = np.where(last < prev, last, last - prev) / dt
    return np.where(ok, out, 0.0), ok


def _irate(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    return _instant(rs, True)


def _idelta(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    return _instant(rs, False)


# --- linear regression: deriv, predict_linear ------------------------------------------


def _regression_py(ts: Any, ys: Any, icpt: int) -> tuple[float, float]:
    """Prometheus's ``linearRegression`` for one window (plain Python floats)."""
    n = sx = cx = sy = cy = sxy = cxy = sx2 = cx2 = 0.0
    init_y = float(ys[0])
    const_y = True
    for i, (t, y) in enumerate(zip(ts.tolist(), ys.tolist())):
        if const_y and i > 0 and y != init_y:
            const_y = False
        n += 1.0
        x = (t - icpt) / 1e3
        sx, cx = _kinc_py(x, sx, cx)
        sy, cy = _kinc_py(y, sy, cy)
        sxy, cxy = _kinc_py(x * y, sxy, cxy)
        sx2, cx2 = _kinc_py(x * x, sx2, cx2)
    if const_y:
        return (math.nan, math.nan) if math.isinf(init_y) else (0.0, init_y)
    sx += cx
    sy += cy
    sxy += cxy
    sx2 += cx2
    cov = sxy - sx * sy / n
    var = sx2 - sx * sx / n
    slope = _div(cov, var)
    return slope, sy / n - slope * sx / n


def _regression(rs: RangeSeries, icpt: I64) -> tuple[F64, F64, Bool]:
    """Slope and intercept (at ``icpt[i]``) of each window with >= 2 samples."""
    k = len(rs.steps_ms)
    ok = _counts(rs) >= 2
    slope = np.zeros(k)
    intercept = np.zeros(k)
    rows = np.flatnonzero(ok)
    if len(rows) <= _SCALAR_STEPS:
        for i in rows.tolist():
            lo, hi = int(rs.lo[i]), int(rs.hi[i])
            slope[i], intercept[i] = _regression_py(rs.ms[lo:hi], rs.values[lo:hi], int(icpt[i]))
        return slope, intercept, ok
    n_rows = len(rows)
    sx, cx, sy, cy, sxy, cxy, sx2, cx2 = (np.zeros(n_rows) for _ in range(8))
    init_y = np.zeros(n_rows)
    const_y = np.ones(n_rows, dtype=np.bool_)
    rows_sorted, ns = _by_size(rs, rows)
    icpt_sorted = icpt[rows_sorted]

    def step(m: int, idx: I64, j: int) -> None:
        y = rs.values[idx]
        if j == 0:
            init_y[:m] = y
        else:
            const_y[:m] &= y == init_y[:m]
        x = (rs.ms[idx] - icpt_sorted[:m]).astype(np.float64) / 1e3
        sx[:m], cx[:m] = _kinc(x, sx[:m], cx[:m])
        sy[:m], cy[:m] = _kinc(y, sy[:m], cy[:m])
        sxy[:m], cxy[:m] = _kinc(x * y, sxy[:m], cxy[:m])
        sx2[:m], cx2[:m] = _kinc(x * x, sx2[:m], cx2[:m])

    _columns(rs, rows_sorted, ns, step)
    sl, ic = regression_finish((sx, sy, sxy, sx2), (cx, cy, cxy, cx2), ns, init_y, const_y)
    slope[rows_sorted] = sl
    intercept[rows_sorted] = ic
    return slope, intercept, ok


def regression_finish(sums: tuple[F64, F64, F64, F64], comp: tuple[F64, F64, F64, F64],
                      ns: I64, init_y: F64, const_y: Bool) -> tuple[F64, F64]:
    """Slope and intercept of least squares from the Kahan sums (x, y, x*y, x*x) and their
    compensations over ``ns`` samples, as Prometheus's linearRegression finishes: a
    window whose values are all equal has slope 0 and that value as intercept (NaN for
    both when the value is infinite). Shared by the per-window and the batched paths."""
    sx, sy, sxy, sx2 = sums
    cx, cy, cxy, cx2 = comp
    cnt = ns.astype(np.float64)
    sxs, sys_ = sx + cx, sy + cy
    cov = (sxy + cxy) - sxs * sys_ / cnt
    var = (sx2 + cx2) - sxs * sxs / cnt
    sl = cov / var
    ic = sys_ / cnt - sl * sxs / cnt
    inf_y = np.isinf(init_y)
    sl = np.where(const_y, np.where(inf_y, np.nan, 0.0), sl)
    ic = np.where(const_y, np.where(inf_y, np.nan, init_y), ic)
    return sl, ic


def _deriv(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    # The intercept time is the window's first sample (Prometheus avoids large x).
    icpt = rs.ms[np.minimum(rs.lo, max(len(rs.ms) - 1, 0))] if len(rs.ms) else rs.steps_ms
    slope, _, ok = _regression(rs, icpt)
    return np.where(ok, slope, 0.0), ok


def _predict_linear(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    duration = args[0]
    slope, intercept, ok = _regression(rs, rs.steps_ms + rs.offset_ms)
    return np.where(ok, slope * duration + intercept, 0.0), ok


# --- aggregations over time --------------------------------------------------------------


def _sum_over_time(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    ok = _counts(rs) >= 1
    if not ok.any():
        return _empty(rs)
    if _may_overflow(rs.values):
        return _replay_sum(rs, ok, mean=False), ok
    return np.where(ok, _window_sums(rs.values, rs.lo, rs.hi), 0.0), ok


def _avg_over_time(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    n = _counts(rs)
    ok = n >= 1
    if not ok.any():
        return _empty(rs)
    if _may_overflow(rs.values):
        return _replay_sum(rs, ok, mean=True), ok
    sums = _window_sums(rs.values, rs.lo, rs.hi)
    return np.where(ok, sums / np.maximum(n, 1), 0.0), ok


def _replay_sum(rs: RangeSeries, ok: Bool, *, mean: bool) -> F64:
    """Prometheus 3's sum (Kahan) or mean (Kahan sum, turning to an incremental
    mean once the sum overflows) replayed in its order: only used when a running
    sum may overflow, where the order decides between a number and an infinity."""
    rows_sorted, ns = _by_size(rs, np.flatnonzero(ok))
    k = len(rows_sorted)
    total = np.zeros(k)
    comp = np.zeros(k)
    avg = np.zeros(k)
    incremental = np.zeros(k, dtype=np.bool_)

    def step(m: int, idx: I64, j: int) -> None:
        y = rs.values[idx]
        if j == 0:
            total[:m] = y if mean else 0.0
            if mean:
                return
        if not mean:
            total[:m], comp[:m] = _kinc(y, total[:m], comp[:m])
            return
        count = float(j + 1)
        new_sum, new_c = _kinc(y, total[:m], comp[:m])
        direct = ~incremental[:m] & ~np.isinf(new_sum)
        switch = ~incremental[:m] & np.isinf(new_sum)
        # Rows whose sum overflows now switch to the incremental mean.
        avg[:m] = np.where(switch, total[:m] / (count - 1), avg[:m])
        comp[:m] = np.where(switch, comp[:m] / (count - 1), comp[:m])
        incremental[:m] |= switch
        q = (count - 1) / count
        inc_mean, inc_c = _kinc(y / count, q * avg[:m], q * comp[:m])
        total[:m] = np.where(direct, new_sum, total[:m])
        comp[:m] = np.where(direct, new_c, np.where(incremental[:m], inc_c, comp[:m]))
        avg[:m] = np.where(incremental[:m], inc_mean, avg[:m])

    _columns(rs, rows_sorted, ns, step)
    if mean:
        cnt = ns.astype(np.float64)
        res = np.where(incremental, avg + comp, total / cnt + comp / cnt)
    else:
        res = np.where(np.isinf(total), total, total + comp)
    out = np.zeros(len(rs.steps_ms))
    out[rows_sorted] = res
    return out


def _variance_py(ys: Any) -> float:
    count = mean = c_mean = aux = c_aux = 0.0
    for y in ys.tolist():
        count += 1
        delta = y - (mean + c_mean)
        mean, c_mean = _kinc_py(delta / count, mean, c_mean)
        aux, c_aux = _kinc_py(delta * (y - (mean + c_mean)), aux, c_aux)
    return (aux + c_aux) / count


def _variance(rs: RangeSeries) -> tuple[F64, Bool]:
    """Prometheus's Welford variance with Kahan-compensated mean and sum, replayed."""
    ok = _counts(rs) >= 1
    out = np.zeros(len(rs.steps_ms))
    rows = np.flatnonzero(ok)
    if len(rows) <= _SCALAR_STEPS:
        for i in rows.tolist():
            out[i] = _variance_py(rs.values[int(rs.lo[i]):int(rs.hi[i])])
        return out, ok
    rows_sorted, ns = _by_size(rs, rows)
    mean, c_mean, aux, c_aux = (np.zeros(len(rows)) for _ in range(4))

    def step(m: int, idx: I64, j: int) -> None:
        y = rs.values[idx]
        count = float(j + 1)
        delta = y - (mean[:m] + c_mean[:m])
        mean[:m], c_mean[:m] = _kinc(delta / count, mean[:m], c_mean[:m])
        aux[:m], c_aux[:m] = _kinc(delta * (y - (mean[:m] + c_mean[:m])), aux[:m], c_aux[:m])

    _columns(rs, rows_sorted, ns, step)
    out[rows_sorted] = (aux + c_aux) / ns.astype(np.float64)
    return out, ok


def _stdvar_over_time(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    return _variance(rs)


def _stddev_over_time(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    var, ok = _variance(rs)
    return np.sqrt(var), ok


def _extreme(rs: RangeSeries, ufunc: np.ufunc) -> tuple[F64, Bool]:
    """min/max over the window skipping NaN unless all are NaN (``np.fmin``/``fmax``,
    which is Prometheus's ``cur < min || isNaN(min)``)."""
    n = _counts(rs)
    ok = n >= 1
    if not ok.any():
        return _empty(rs)
    padded = np.concatenate((rs.values, [np.nan]))
    lo, hi = rs.lo[ok], rs.hi[ok]
    bounds = np.empty(2 * len(lo), dtype=np.int64)
    bounds[0::2] = lo
    bounds[1::2] = hi
    out = np.zeros(len(n))
    out[ok] = ufunc.reduceat(padded, bounds)[0::2]
    return out, ok


def _min_over_time(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    return _extreme(rs, np.fmin)


def _max_over_time(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    return _extreme(rs, np.fmax)


def _count_over_time(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    n = _counts(rs)
    return n.astype(np.float64), n >= 1


def _last_over_time(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    ok = _counts(rs) >= 1
    if not ok.any():
        return _empty(rs)
    return np.where(ok, rs.values[np.maximum(rs.hi - 1, 0)], 0.0), ok


def _present_over_time(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    ok = _counts(rs) >= 1
    return ok.astype(np.float64), ok


def _pair_counts(rs: RangeSeries, flags: Bool) -> F64:
    """How many pairs (i-1, i) inside each window have ``flags[i-1]`` set
    (``flags`` has one entry per pair, len(values) - 1)."""
    p = np.concatenate(([0, 0], np.cumsum(flags, dtype=np.int64)))
    # p[i] = pairs ending before sample i; the window's pairs end at lo+1 .. hi-1.
    start = np.minimum(rs.lo + 1, len(p) - 1)  # empty windows past the end: lo = len
    return (p[np.maximum(rs.hi, start)] - p[start]).astype(np.float64)


def _changes(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    ok = _counts(rs) >= 1
    if not ok.any():
        return _empty(rs)
    v = rs.values
    cur, prev = v[1:], v[:-1]
    changed = (cur != prev) & ~(np.isnan(cur) & np.isnan(prev))
    return np.where(ok, _pair_counts(rs, changed), 0.0), ok


def _resets(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    ok = _counts(rs) >= 1
    if not ok.any():
        return _empty(rs)
    v = rs.values
    return np.where(ok, _pair_counts(rs, v[1:] < v[:-1]), 0.0), ok


# --- quantiles ---------------------------------------------------------------------------


def _sorted_windows(rs: RangeSeries, rows: I64) -> Iterator[tuple[I64, F64, I64, I64]]:
    """Yield (rows, sorted matrix, non-NaN counts, NaN counts) in chunks: each row
    holds its window's non-NaN values ascending, then +Inf padding, then NaNs."""
    n = (rs.hi - rs.lo)[rows]
    width = int(n.max()) if len(n) else 0
    chunk = max(1, _GATHER_CELLS // max(width, 1))
    last = len(rs.values) - 1
    for start in range(0, len(rows), chunk):
        check_deadline()
        sub = rows[start:start + chunk]
        w = int((rs.hi - rs.lo)[sub].max())
        pos = np.arange(w)
        cnt = (rs.hi - rs.lo)[sub]
        idx = np.minimum(rs.lo[sub, None] + pos, last)
        mat = rs.values[idx]
        mat[pos >= cnt[:, None]] = np.inf
        nan = np.isnan(mat).sum(axis=1)
        yield sub, np.sort(mat, axis=1), cnt, nan


def _pick(mat: F64, cnt: I64, nan: I64, index: F64) -> F64:
    """Element ``index`` of each row in Prometheus's order (NaNs first, then
    ascending) — ``mat`` rows are sorted by numpy (NaNs last)."""
    i = index.astype(np.int64)
    real = np.clip(i - nan, 0, mat.shape[1] - 1)
    vals = np.take_along_axis(mat, real[:, None], axis=1)[:, 0]
    return np.where(i < nan, np.nan, vals)


def _quantile_rows(mat: F64, cnt: I64, nan: I64, q: F64) -> F64:
    """Prometheus's ``quantile``: linear interpolation between closest ranks."""
    nf = cnt.astype(np.float64)
    rank = q * (nf - 1)
    fl = np.floor(rank)
    lower = np.maximum(0.0, fl)
    upper = np.minimum(nf - 1, lower + 1)
    weight = rank - fl
    lower = np.where(np.isnan(lower), 0.0, lower)
    upper = np.where(np.isnan(upper), 0.0, upper)
    res = _pick(mat, cnt, nan, lower) * (1 - weight) + _pick(mat, cnt, nan, upper) * weight
    res = np.where(q < 0, -np.inf, res)
    res = np.where(q > 1, np.inf, res)
    return np.where(np.isnan(q), np.nan, res)


def _quantile_over_time(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    q = np.broadcast_to(np.asarray(args[0], dtype=np.float64), rs.steps_ms.shape)
    ok = _counts(rs) >= 1
    out = np.zeros(len(ok))
    for sub, mat, cnt, nan in _sorted_windows(rs, np.flatnonzero(ok)):
        out[sub] = _quantile_rows(mat, cnt, nan, q[sub])
    return out, ok


def _mad_over_time(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
    """Median absolute deviation from the median (Prometheus 3.x)."""
    ok = _counts(rs) >= 1
    out = np.zeros(len(ok))
    for sub, mat, cnt, nan in _sorted_windows(rs, np.flatnonzero(ok)):
        half = np.full(len(sub), 0.5)
        median = _quantile_rows(mat, cnt, nan, half)
        pos = np.arange(mat.shape[1])[None, :]
        real = pos < (cnt - nan)[:, None]
        nans = pos >= (mat.shape[1] - nan)[:, None]
        # |v - median| of the non-NaN values, NaN for the NaN ones, +Inf padding.
        dev = np.where(real, np.abs(mat - median[:, None]), np.where(nans, np.nan, np.inf))
        dnan = np.isnan(dev).sum(axis=1)
        out[sub] = _quantile_rows(np.sort(dev, axis=1), cnt, dnan, half)
    return out, ok


def _errstate(fn: RangeFunction) -> RangeFunction:
    """Run ``fn`` with numpy's floating-point warnings off: Inf - Inf and 0 / 0 are
    meant to give NaN here, as in Go."""
    def wrapped(rs: RangeSeries, args: tuple[F64, ...]) -> tuple[F64, Bool]:
        with np.errstate(all="ignore"):
            return fn(rs, args)
    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


RANGE_FUNCTIONS: dict[str, RangeFunction] = {
    name: _errstate(fn) for name, fn in {
        "rate": _rate,
        "irate": _irate,
        "increase": _increase,
        "delta": _delta,
        "idelta": _idelta,
        "deriv": _deriv,
        "predict_linear": _predict_linear,
        "changes": _changes,
        "resets": _resets,
        "avg_over_time": _avg_over_time,
        "min_over_time": _min_over_time,
        "max_over_time": _max_over_time,
        "sum_over_time": _sum_over_time,
        "count_over_time": _count_over_time,
        "last_over_time": _last_over_time,
        "quantile_over_time": _quantile_over_time,
        "stddev_over_time": _stddev_over_time,
        "stdvar_over_time": _stdvar_over_time,
        "present_over_time": _present_over_time,
        "absent_over_time": _present_over_time,
        "mad_over_time": _mad_over_time,
    }.items()
}
"""Range function name -> implementation. Each takes the series and the per-step
scalar arguments (``predict_linear``'s seconds, ``quantile_over_time``'s q; each a
float64 array, one value per step) and returns (values, present), one per step."""
