"""Range-vector functions over ALL series of a range selector at once.

:mod:`~watchkeeper.query.promql.functions_range` computes a function for one
series over every step; called once per series, NumPy's per-call overhead
dominates when there are many series and few steps (a rule evaluation is an
instant query: one step). Here the samples of every series are one
concatenated array (:class:`Packed`: ``ms``, ``values`` and each series'
start ``offsets``), the windows of every ``(series, step)`` pair are found
with one ``np.searchsorted`` (each series' timestamps shifted into a band of
its own so the concatenation is sorted), and each function is one vectorized
pass over ``[series, steps]`` arrays.

Results are bit for bit those of the per-series functions: every value is
computed by the same floating-point operations in the same order (counter
resets are added one at a time in sample order, sums use per-series prefix
sums on a padded ``[series, samples]`` matrix, exactly as the per-series
prefix sums). Where that cannot be kept (a sum that may overflow, too uneven
series for the padded matrix, timestamps too far apart for the shifted
bands), :func:`batch` returns None or leaves the series to the caller.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from watchkeeper.query.promql.functions_range import extrapolate, regression_finish, window_deltas

__all__ = ["BATCH_FUNCTIONS", "BATCH_SCALAR_ARGS", "Packed", "batch", "batch_bounds", "pack"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Bool = npt.NDArray[np.bool_]

_MAX_KEY = 1 << 62  # bound on the shifted timestamps (int64 without overflow)
# The padded [series, samples] matrix for sums may hold at most this many times
# the samples (plus a constant) before the sums fall back to the per-series path.
_PAD_FACTOR = 4
_PAD_SLACK = 1 << 16
# Per-series sums of |values| above this may overflow a running sum: the
# per-series path (which replays Prometheus's order) handles those series.
_OVERFLOW_GUARD = 1e299


@dataclass(slots=True)
class Packed:
    """The samples of several series, concatenated: series ``i`` is
    ``ms[offsets[i]:offsets[i + 1]]`` (``offsets`` has one more entry than series)."""

    ms: I64
    values: F64
    offsets: I64

    @property
    def nseries(self) -> int:
        return len(self.offsets) - 1

    def lengths(self) -> I64:
        return np.diff(self.offsets)


def pack(series: Sequence[tuple[object, np.ndarray, np.ndarray]]) -> Packed:
    """Concatenate ``(labels, ms, values)`` triples into a :class:`Packed`."""
    if not series:
        return Packed(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(1, dtype=np.int64))
    lengths = np.fromiter((len(s[1]) for s in series), dtype=np.int64, count=len(series))
    offsets = np.zeros(len(series) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ms = np.concatenate([s[1] for s in series]).astype(np.int64, copy=False)
    values = np.concatenate([s[2] for s in series]).astype(np.float64, copy=False)
    return Packed(ms, values, offsets)


def batch_bounds(p: Packed, times: I64, range_ms: int) -> tuple[I64, I64] | None:
    """``(lo, hi)``, each ``[series, steps]``: the global indices (into ``p.ms``) of the
    samples of series ``i`` in ``(times[j] - range_ms, times[j]]`` are ``lo[i, j]:hi[i, j]``
    — the per-series :func:`~watchkeeper.query.promql.functions_range.window_bounds`
    plus the series' offset. None when the timestamps span too much to shift each
    series into a band of its own in int64."""
    s = p.nseries
    times = np.asarray(times, dtype=np.int64)
    starts = times - range_ms
    if len(p.ms):
        base = min(int(p.ms.min()), int(starts.min()))
        top = max(int(p.ms.max()), int(times.max()))
    else:
        base, top = int(starts.min()), int(times.max())
    width = top - base + 1
    if width <= 0 or width * max(s, 1) >= _MAX_KEY:
        return None
    band = np.arange(s, dtype=np.int64) * width
    seg = np.repeat(band, p.lengths())
    keys = (p.ms - base) + seg
    lo = np.searchsorted(keys, (starts - base)[None, :] + band[:, None], side="right").astype(np.int64)
    hi = np.searchsorted(keys, (times - base)[None, :] + band[:, None], side="right").astype(np.int64)
    return lo, hi


@dataclass(slots=True)
class _Windows:
    p: Packed
    lo: I64  # [series, steps], global indices
    hi: I64
    times: I64  # [steps], window right edges
    range_ms: int
    offset_ms: int = 0  # the selector's offset (times + offset_ms are the evaluation times)
    args: tuple[F64, ...] = ()  # the scalar arguments, one value per step each


BatchFunction = Callable[[_Windows], "tuple[F64, Bool, Bool | None] | None"]


def _zeros(w: _Windows) -> tuple[F64, Bool]:
    return np.zeros(w.lo.shape), np.zeros(w.lo.shape, dtype=np.bool_)


# --- rate, increase, delta -------------------------------------------------------------


def _extrapolated(w: _Windows, is_counter: bool, is_rate: bool) -> tuple[F64, Bool]:
    n = (w.hi - w.lo).astype(np.int64)
    ok = n >= 2
    if not ok.any():
        return _zeros(w)
    first_t, last_t, first_v, result = window_deltas(w.p.ms, w.p.values, w.lo, w.hi, ok, is_counter)
    return extrapolate(result, ok, first_t, last_t, first_v, n, w.times, w.range_ms,
                       is_counter=is_counter, is_rate=is_rate)


def _instant(w: _Windows, is_rate: bool) -> tuple[F64, Bool]:
    ok = (w.hi - w.lo) >= 2
    if not ok.any():
        return _zeros(w)
    li = np.where(ok, w.hi - 1, 1)
    last, prev = w.p.values[li], w.p.values[li - 1]
    if not is_rate:
        return np.where(ok, last - prev, 0.0), ok
    dt = (w.p.ms[li] - w.p.ms[li - 1]).astype(np.float64) / 1000
    out = np.where(last < prev, last, last - prev) / dt
    return np.where(ok, out, 0.0), ok


# --- counts, last, extremes, changes -----------------------------------------------------


def _count(w: _Windows) -> tuple[F64, Bool]:
    n = (w.hi - w.lo).astype(np.int64)
    return n.astype(np.float64), n >= 1


def _present(w: _Windows) -> tuple[F64, Bool]:
    ok = (w.hi - w.lo) >= 1
    return ok.astype(np.float64), ok


def _last(w: _Windows) -> tuple[F64, Bool]:
    ok = (w.hi - w.lo) >= 1
    if not ok.any():
        return _zeros(w)
    return np.where(ok, w.p.values[np.maximum(w.hi - 1, 0)], 0.0), ok


def _extreme(w: _Windows, ufunc: np.ufunc) -> tuple[F64, Bool]:
    ok = (w.hi - w.lo) >= 1
    if not ok.any():
        return _zeros(w)
    padded = np.concatenate((w.p.values, [np.nan]))
    lo, hi = w.lo[ok], w.hi[ok]
    bounds = np.empty(2 * len(lo), dtype=np.int64)
    bounds[0::2] = lo
    bounds[1::2] = hi
    out = np.zeros(w.lo.shape)
    out[ok] = ufunc.reduceat(padded, bounds)[0::2]
    return out, ok


def _pair_counts(w: _Windows, flags: Bool) -> F64:
    """Pairs ``(i-1, i)`` with ``flags[i-1]`` set inside each window (the pairs of a
    window are ``i`` in ``[lo+1, hi)``, never across a series boundary)."""
    p = np.concatenate(([0, 0], np.cumsum(flags, dtype=np.int64)))
    start = np.minimum(w.lo + 1, len(p) - 1)
    return (p[np.maximum(w.hi, start)] - p[start]).astype(np.float64)


def _changes(w: _Windows) -> tuple[F64, Bool]:
    ok = (w.hi - w.lo) >= 1
    if not ok.any():
        return _zeros(w)
    v = w.p.values
    cur, prev = v[1:], v[:-1]
    changed = (cur != prev) & ~(np.isnan(cur) & np.isnan(prev))
    return np.where(ok, _pair_counts(w, changed), 0.0), ok


def _resets(w: _Windows) -> tuple[F64, Bool]:
    ok = (w.hi - w.lo) >= 1
    if not ok.any():
        return _zeros(w)
    v = w.p.values
    return np.where(ok, _pair_counts(w, v[1:] < v[:-1]), 0.0), ok


# --- sums ----------------------------------------------------------------------------------


def _window_sums(w: _Windows) -> tuple[F64, Bool] | None:
    """Per-(series, step) window sums, equal to the per-series ``_window_sums`` (the same
    compensated prefix sums, restarted for each series on a padded matrix), and the
    series that must go to the per-series path (a running sum that may overflow).
    None when the padded matrix would be too large."""
    p = w.p
    s = p.nseries
    lengths = p.lengths()
    width = int(lengths.max()) + 1 if s else 1
    if s * width > _PAD_FACTOR * len(p.values) + _PAD_SLACK:
        return None
    a = p.values
    finite = np.isfinite(a)
    af = np.where(finite, a, 0.0)
    # Row i: 0, then the series' values, then zeros (which leave the prefix as it is).
    seg = np.repeat(np.arange(s, dtype=np.int64), lengths)
    local = np.arange(len(a), dtype=np.int64) - p.offsets[seg]
    mat = np.zeros((s, width))
    mat[seg, local + 1] = af
    # add.accumulate along a row is sequential: the per-series np.cumsum, bit for bit.
    # (column 0 stays 0.0, as the per-series prefix starts; a first -0.0 stays -0.0.)
    cs = np.zeros((s, width))
    np.cumsum(mat[:, 1:], axis=1, out=cs[:, 1:])
    prev, new = cs[:, :-1], cs[:, 1:]
    bv = new - prev
    err = (prev - (new - bv)) + (mat[:, 1:] - bv)
    comp = np.zeros((s, width))
    np.cumsum(err, axis=1, out=comp[:, 1:])
    rows = np.arange(s, dtype=np.int64)[:, None] * width
    start = rows + (w.lo - p.offsets[:-1, None])
    stop = rows + (w.hi - p.offsets[:-1, None])
    csf, compf = cs.reshape(-1), comp.reshape(-1)
    hs, ls = csf[stop], csf[start]
    d = hs - ls
    bv2 = d - hs
    e = (hs - (d - bv2)) + (-ls - bv2)
    out: F64 = d + ((compf[stop] - compf[start]) + e)
    nonfinite = ~finite
    if nonfinite.any():
        def window_count(flags: Bool) -> I64:
            c = np.concatenate(([0], np.cumsum(flags, dtype=np.int64)))
            return c[w.hi] - c[w.lo]
        nan = window_count(np.isnan(a))
        pinf = window_count(a == np.inf)
        ninf = window_count(a == -np.inf)
        # The per-series path takes these corrections only for a series with a
        # non-finite value; a window of a finite series counts none, so they are no-ops there.
        out = np.where(pinf > 0, np.inf, out)
        out = np.where(ninf > 0, -np.inf, out)
        out = np.where((nan > 0) | ((pinf > 0) & (ninf > 0)), np.nan, out)
    absf = np.abs(af)
    big = np.zeros(s)
    nonempty = lengths > 0
    if nonempty.any():
        big[nonempty] = np.add.reduceat(absf, p.offsets[:-1][nonempty])
    return out, big > _OVERFLOW_GUARD


def _sum(w: _Windows) -> tuple[F64, Bool, Bool | None] | None:
    ok = (w.hi - w.lo) >= 1
    if not ok.any():
        return (*_zeros(w), None)
    got = _window_sums(w)
    if got is None:
        return None
    sums, fallback = got
    return np.where(ok, sums, 0.0), ok, fallback


def _avg(w: _Windows) -> tuple[F64, Bool, Bool | None] | None:
    n = (w.hi - w.lo).astype(np.int64)
    ok = n >= 1
    if not ok.any():
        return (*_zeros(w), None)
    got = _window_sums(w)
    if got is None:
        return None
    sums, fallback = got
    return np.where(ok, sums / np.maximum(n, 1), 0.0), ok, fallback


# --- linear regression: deriv, predict_linear ------------------------------------------------


_REGRESSION_PAD = 1 << 20  # at most this many (window, sample) increments are gathered at once


def _kahan_step(s: F64, c: F64, inc: F64, may_overflow: bool) -> None:
    """One ``kahansum.Inc`` (Neumaier) of ``inc`` into sums ``s`` and compensations ``c``,
    in place, elementwise. Without ``may_overflow`` the caller knows no sum becomes
    infinite (where Prometheus resets the compensation)."""
    t = s + inc
    c += np.where(np.abs(s) >= np.abs(inc), (s - t) + inc, (inc - t) + s)
    if may_overflow:
        c[np.isinf(t)] = 0.0
    s[...] = t


def _regression(w: _Windows, icpt: I64) -> tuple[F64, F64, Bool]:
    """Slope and intercept (at ``icpt[i, j]`` ms) of every window with >= 2 samples:
    Prometheus's ``linearRegression`` with its compensated (Kahan) sums, as the
    per-series ``_regression``, vectorized across all (series, step) windows at once.

    Windows are ordered by size, largest first, so those that have a ``j``-th sample
    are a prefix; each sample position is one pass of the same elementwise operations
    in the same order as the per-series code, so the results are bit for bit its.
    """
    n = w.hi - w.lo
    ok = n >= 2
    slope = np.zeros(n.shape)
    intercept = np.zeros(n.shape)
    if not ok.any():
        return slope, intercept, ok
    which = np.flatnonzero(ok.reshape(-1))
    ns_all = n.reshape(-1)[which]
    order = np.argsort(-ns_all, kind="stable")
    which, ns = which[order], ns_all[order]
    lo = w.lo.reshape(-1)[which]
    ic = icpt.reshape(-1)[which]
    rows = len(which)
    ms, vals = w.p.ms, w.p.values
    init_y = vals[lo]
    maxn = int(ns[0])
    # per sample position j, how many windows have a j-th sample (a prefix of the rows)
    counts = np.searchsorted(-ns, -np.arange(maxn), side="left").tolist()
    # The four sums (x, y, x*y, x*x) as the rows of one array: one pass of kahansum.Inc
    # (Neumaier) updates all four, elementwise as the per-series code does each.
    sums = np.zeros((4, rows))
    comp = np.zeros((4, rows))
    if rows * maxn > _REGRESSION_PAD:
        inc = np.empty((4, rows))
        const_y = np.ones(rows, dtype=np.bool_)
        for j, m in enumerate(counts):
            idx = lo[:m] + j
            y = vals[idx]
            if j:
                const_y[:m] &= y == init_y[:m]
            x = (ms[idx] - ic[:m]).astype(np.float64) / 1e3
            d = inc[:, :m]
            d[0], d[1] = x, y
            np.multiply(x, y, out=d[2])
            np.multiply(x, x, out=d[3])
            _kahan_step(sums[:, :m], comp[:, :m], d, True)
    else:
        # every increment gathered up front ([sample position, sum, window]; positions
        # past a window's end are padding no pass reads), then only the sums loop
        pos = np.arange(maxn)[:, None]
        valid = pos < ns[None, :]
        idx = np.where(valid, lo[None, :] + pos, 0)
        y = vals[idx]
        x = (ms[idx] - ic[None, :]).astype(np.float64) / 1e3
        const_y = ~np.any(valid & (pos >= 1) & ~(y == init_y[None, :]), axis=0)
        incs = np.empty((maxn, 4, rows))
        incs[:, 0], incs[:, 1] = x, y
        np.multiply(x, y, out=incs[:, 2])
        np.multiply(x, x, out=incs[:, 3])
        # A running sum can only become infinite with a non-finite increment or a total
        # near the largest float; otherwise the reset of the compensation never happens.
        with np.errstate(over="ignore", invalid="ignore"):
            safe = bool(np.isfinite(np.where(valid[:, None, :], incs, 0.0)).all()) and \
                float(np.abs(np.where(valid[:, None, :], incs, 0.0)).sum(axis=0).max()) < 1e300
        for j, m in enumerate(counts):
            _kahan_step(sums[:, :m], comp[:, :m], incs[j, :, :m], not safe)
    sl, icp = regression_finish((sums[0], sums[1], sums[2], sums[3]),
                                (comp[0], comp[1], comp[2], comp[3]), ns, init_y, const_y)
    slope.reshape(-1)[which] = sl
    intercept.reshape(-1)[which] = icp
    return slope, intercept, ok


def _deriv(w: _Windows) -> tuple[F64, Bool]:
    # The intercept time is the window's first sample (Prometheus avoids large x).
    icpt = w.p.ms[np.minimum(w.lo, max(len(w.p.ms) - 1, 0))] if len(w.p.ms) else \
        np.broadcast_to(w.times[None, :], w.lo.shape)
    slope, _, ok = _regression(w, icpt)
    return np.where(ok, slope, 0.0), ok


def _predict_linear(w: _Windows) -> tuple[F64, Bool]:
    duration = w.args[0][None, :]
    icpt = np.broadcast_to((w.times + w.offset_ms)[None, :], w.lo.shape)
    slope, intercept, ok = _regression(w, icpt)
    return np.where(ok, slope * duration + intercept, 0.0), ok


def _plain(fn: Callable[[_Windows], tuple[F64, Bool]]) -> BatchFunction:
    def wrapped(w: _Windows) -> tuple[F64, Bool, Bool | None]:
        v, p = fn(w)
        return v, p, None
    wrapped.__name__ = fn.__name__
    return wrapped


BATCH_FUNCTIONS: dict[str, BatchFunction] = {
    "rate": _plain(lambda w: _extrapolated(w, True, True)),
    "increase": _plain(lambda w: _extrapolated(w, True, False)),
    "delta": _plain(lambda w: _extrapolated(w, False, False)),
    "irate": _plain(lambda w: _instant(w, True)),
    "idelta": _plain(lambda w: _instant(w, False)),
    "changes": _plain(_changes),
    "resets": _plain(_resets),
    "count_over_time": _plain(_count),
    "last_over_time": _plain(_last),
    "min_over_time": _plain(lambda w: _extreme(w, np.fmin)),
    "max_over_time": _plain(lambda w: _extreme(w, np.fmax)),
    "present_over_time": _plain(_present),
    "sum_over_time": _sum,
    "avg_over_time": _avg,
    "deriv": _plain(_deriv),
    "predict_linear": _plain(_predict_linear),
}
"""Function name -> batched implementation. Only those in :data:`BATCH_SCALAR_ARGS`
take scalar arguments (``_Windows.args``)."""

BATCH_SCALAR_ARGS = frozenset({"predict_linear"})
"""Batched functions that take scalar arguments (one value per step each)."""


def batch(name: str, p: Packed, times: I64, range_ms: int, *, offset_ms: int = 0,
          args: tuple[F64, ...] = ()) -> tuple[F64, Bool, Bool | None] | None:
    """``name`` over every series of ``p`` at every step ``times`` (window right edges;
    ``offset_ms`` the selector's offset, ``args`` the scalar arguments per step):
    ``(values, present, fallback)``, the first two ``[series, steps]``; ``fallback``
    (None or a bool per series) marks series whose rows the caller must compute with
    the per-series function instead. None when ``name`` is not batched or the batch
    cannot be done exactly (the caller then uses the per-series path for all)."""
    fn = BATCH_FUNCTIONS.get(name)
    if fn is None or (args and name not in BATCH_SCALAR_ARGS):
        return None
    bounds = batch_bounds(p, times, range_ms)
    if bounds is None:
        return None
    w = _Windows(p, bounds[0], bounds[1], np.asarray(times, dtype=np.int64), range_ms, offset_ms,
                 tuple(np.asarray(a, dtype=np.float64) for a in args))
    with np.errstate(all="ignore"):
        return fn(w)
