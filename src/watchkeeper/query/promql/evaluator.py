"""Evaluate a PromQL syntax tree over a :class:`~watchkeeper.query.promql.source.Source`.

Every node is evaluated over ALL evaluation steps at once with NumPy: an
instant query is a range query of one step. A selector loads the raw samples
of each series once (the whole range plus the lookback or window) and finds
each step's sample with ``np.searchsorted``; operators and aggregations then
work on ``[series, steps]`` arrays (:class:`~watchkeeper.query.promql.values.Block`).

Semantics follow Prometheus 3.x: an instant selector takes the newest sample
in ``(t - lookback, t]``; a range selector's window is ``(t - range, t]``
(open on the left); a subquery's steps are the multiples of its step inside
``(t - range, t]``.

Staleness (Prometheus's "Staleness" in the querying basics): when the newest
sample of a series in ``(t - lookback, t]`` is a staleness marker
(:mod:`watchkeeper.staleness`), the instant selector returns nothing for that
series at ``t`` — it does not fall back to an older sample. Range windows
(and so every ``*_over_time``, ``rate``, ...) leave markers out. Everything
built on instant selectors (``timestamp()``, ``absent()``, subqueries,
operators) follows from those two rules.

Errors are QueryError: ``bad_data`` for wrong input, ``execution`` (HTTP 422,
as Prometheus) for errors found while evaluating (duplicate label sets,
many-to-many matching).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from watchkeeper.errors import QueryError
from watchkeeper.query.promql import aggregations, binops, functions_instant
from watchkeeper.query.promql.ast import (
    Aggregation,
    BinaryExpr,
    Call,
    Expr,
    MatrixSelector,
    NumberLiteral,
    ParenExpr,
    StringLiteral,
    SubqueryExpr,
    UnaryExpr,
    VectorSelector,
)
from watchkeeper.query.promql.deadline import check as check_deadline
from watchkeeper.query.promql.functions_batch import (
    BATCH_FUNCTIONS,
    BATCH_SCALAR_ARGS,
    Packed,
    batch,
    batch_bounds,
    pack,
)
from watchkeeper.query.promql.source import Source
from watchkeeper.query.promql.values import (
    Block,
    Matrix,
    Sample,
    Scalar,
    Series,
    String,
    Value,
    label_key,
)
from watchkeeper.staleness import stale_mask

__all__ = ["Evaluator", "RangeValue", "StepResult", "execution_error", "finish", "drop_name"]

_KEEP_NAME_RANGE = frozenset({"last_over_time", "first_over_time"})
MAX_SUBQUERY_STEPS = 10_000_000  # refuse a subquery that would evaluate more steps than this
# Range functions run over all series at once (functions_batch) up to this many steps:
# that saves NumPy's per-call overhead per series, which dominates with few steps (rule
# evaluation: one); with many steps the per-series windows are the faster (cache-friendly) way.
BATCH_MAX_STEPS = 32


def execution_error(message: str) -> QueryError:
    """A QueryError for a problem found while evaluating (Prometheus: errorType execution, 422)."""
    err = QueryError(message)
    err.error_type = "execution"
    err.http_status = 422
    return err


def drop_name(labels: dict[str, str]) -> dict[str, str]:
    if "__name__" not in labels:
        return labels
    out = dict(labels)
    del out["__name__"]
    return out


def finish(block: Block, *, per_step: bool = True) -> Block:
    """Rows with the same label set merged into one; raise when two of them hold a sample at
    the same step (``per_step``, as Prometheus's step-wise check) or at all (``per_step``
    False: its check over a whole function result)."""
    groups: dict[tuple[tuple[str, str], ...], list[int]] = {}
    for i, labels in enumerate(block.labels):
        groups.setdefault(label_key(labels), []).append(i)
    if len(groups) == len(block.labels):
        return block
    rows = []
    for idx in groups.values():
        if len(idx) == 1:
            rows.append(idx[0])
            continue
        pres = block.present[idx]
        if per_step:
            clash = bool((pres.sum(axis=0) > 1).any())
        else:
            clash = int(pres.any(axis=1).sum()) > 1
        if clash:
            raise execution_error("vector cannot contain metrics with the same labelset")
    if len(rows) == len(groups):  # pragma: no cover - only reached when nothing clashed
        return block
    labels_out, vals, pres_out = [], [], []
    for idx in groups.values():
        labels_out.append(block.labels[idx[0]])
        if len(idx) == 1:
            vals.append(block.values[idx[0]])
            pres_out.append(block.present[idx[0]])
            continue
        p = block.present[idx]
        v = np.where(p, block.values[idx], 0.0)
        which = np.argmax(p, axis=0)
        vals.append(np.take_along_axis(v, which[None, :], axis=0)[0])
        pres_out.append(p.any(axis=0))
    return Block(labels_out, np.array(vals).reshape(len(labels_out), block.nsteps),
                 np.array(pres_out, dtype=bool).reshape(len(labels_out), block.nsteps))


@dataclass(slots=True)
class RangeValue:
    """A range vector over steps: per series its samples, and per step the window end
    ``times`` (ms, after offset and ``@``) and length ``range_ms``."""

    series: list[tuple[dict[str, str], np.ndarray, np.ndarray]]
    times: np.ndarray
    range_ms: int
    offset_ms: int = 0
    packed: Packed | None = None  # the series' samples concatenated (range selectors)

    def bounds(self, ms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per step, the slice ``[lo, hi)`` of ``ms`` in the window ``(t - range, t]``."""
        lo = np.searchsorted(ms, self.times - self.range_ms, side="right")
        hi = np.searchsorted(ms, self.times, side="right")
        return lo, hi


@dataclass(slots=True)
class StepResult:
    """What an expression evaluated to over ``steps`` (int64 ms): a Block, a float64 array
    (a scalar per step), a str, or a RangeValue."""

    steps: np.ndarray
    value: Block | np.ndarray | str | RangeValue


def _unwrap(expr: Expr) -> Expr:
    while isinstance(expr, ParenExpr):
        expr = expr.expr
    return expr


def _drop_stale(ms: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    nan = np.isnan(values)
    if not nan.any():
        return ms, values
    stale = nan & stale_mask(values)
    if not stale.any():
        return ms, values
    return ms[~stale], values[~stale]


def _pack_columns(cols: list[Any]) -> tuple[Packed, list[tuple[dict[str, str], np.ndarray, np.ndarray]]]:
    """The samples of ``cols`` without staleness markers, concatenated, and per series
    with samples left its (labels, ms, values) as views into the concatenation."""
    if not cols:
        return pack([]), []
    lengths = np.fromiter((len(c.ms) for c in cols), dtype=np.int64, count=len(cols))
    offsets = np.zeros(len(cols) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    ms = np.concatenate([c.ms for c in cols]).astype(np.int64, copy=False)
    values = np.concatenate([c.values for c in cols]).astype(np.float64, copy=False)
    nan = np.isnan(values)
    if nan.any():
        stale = nan & stale_mask(values)
        if stale.any():
            keep = ~stale
            kept = np.zeros(len(keep) + 1, dtype=np.int64)
            np.cumsum(keep, out=kept[1:])
            offsets = kept[offsets]
            ms, values = ms[keep], values[keep]
    bounds = offsets.tolist()
    series = []
    starts = []
    for i, col in enumerate(cols):
        a, b = bounds[i], bounds[i + 1]
        if b > a:
            series.append((col.labels, ms[a:b], values[a:b]))
            starts.append(a)
    starts.append(bounds[-1])
    return Packed(ms, values, np.array(starts, dtype=np.int64)), series


class Evaluator:
    """PromQL over a source of samples.

    ``lookback`` is how far back an instant selector looks (seconds, Prometheus's
    ``--query.lookback-delta``); ``default_subquery_step`` is the step of
    ``x[1h:]`` (the rule group's interval in rules). ``range_functions`` replaces
    the table of range-vector functions (name -> function over
    :class:`~watchkeeper.query.promql.functions_range.RangeSeries`).
    """

    def __init__(self, source: Source, *, lookback: float = 300.0, default_subquery_step: float = 60.0,
                 range_functions: Mapping[str, Callable[..., tuple[np.ndarray, np.ndarray]]] | None = None) -> None:
        self.source = source
        self.lookback_ms = round(lookback * 1000)
        self.default_subquery_step_ms = round(default_subquery_step * 1000)
        self._range_functions = range_functions
        self._start_ms = 0
        self._end_ms = 0

    def with_source(self, source: Source) -> Evaluator:
        """An evaluator with the same settings reading from ``source`` (e.g. a
        :class:`~watchkeeper.query.promql.source.ReadCache` over this one's source)."""
        return Evaluator(source, lookback=self.lookback_ms / 1000,
                         default_subquery_step=self.default_subquery_step_ms / 1000,
                         range_functions=self._range_functions)

    # -- public API -------------------------------------------------------------------------
    @staticmethod
    def parse(expr: Expr | str) -> Expr:
        if isinstance(expr, Expr):
            return expr
        from watchkeeper.query.promql.parser import parse

        return parse(expr)

    def evaluate(self, expr: Expr | str, start_ms: int, end_ms: int, step_ms: int) -> StepResult:
        """Evaluate at ``start_ms, start_ms + step_ms, ... <= end_ms``. Raises QueryError."""
        node = self.parse(expr)
        if step_ms <= 0:
            raise QueryError("zero or negative query resolution step widths are not accepted. "
                             "Try a positive integer")
        steps = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
        self._start_ms, self._end_ms = start_ms, end_ms
        with np.errstate(all="ignore"):
            value = self.eval(node, steps)
        return StepResult(steps, value)

    def instant(self, expr: Expr | str, t: float) -> Value:
        """The value of ``expr`` at ``t`` (seconds): Scalar, String, Vector, or Matrix for a
        range-vector expression. Raises QueryError."""
        t_ms = round(t * 1000)
        res = self.evaluate(expr, t_ms, t_ms, 1)
        v = res.value
        ts = t_ms / 1000
        if isinstance(v, str):
            return String(v)
        if isinstance(v, np.ndarray):
            return Scalar(float(v[0]))
        if isinstance(v, RangeValue):
            out: Matrix = []
            for labels, ms, vals in v.series:
                lo, hi = v.bounds(ms)
                if hi[0] > lo[0]:
                    out.append(Series(dict(labels), (ms[lo[0]:hi[0]] / 1000).tolist(),
                                      vals[lo[0]:hi[0]].tolist()))
            return out
        return [Sample(dict(v.labels[i]), float(v.values[i, 0]), ts)
                for i in np.flatnonzero(v.present[:, 0]).tolist()]

    def range(self, expr: Expr | str, start: float, end: float, step: float) -> Matrix:
        """The value of ``expr`` at each step, as series sorted by label set. Raises QueryError
        (also for an expression that is not a scalar or instant vector)."""
        res = self.evaluate(expr, round(start * 1000), round(end * 1000), round(step * 1000))
        secs = (res.steps / 1000).tolist()
        out: Matrix = []
        for labels, which, vals in range_rows(res):
            out.append(Series(dict(labels), [secs[i] for i in which.tolist()], vals.tolist()))
        return out

    # -- evaluation -------------------------------------------------------------------------
    def eval(self, node: Expr, steps: np.ndarray) -> Block | np.ndarray | str | RangeValue:
        """Evaluate ``node`` at ``steps`` (int64 ms); stops past the query's deadline."""
        check_deadline()
        if isinstance(node, NumberLiteral):
            return np.full(len(steps), node.value, dtype=np.float64)
        if isinstance(node, StringLiteral):
            return node.value
        if isinstance(node, ParenExpr):
            return self.eval(node.expr, steps)
        if isinstance(node, VectorSelector):
            return self.select(node, steps)
        if isinstance(node, MatrixSelector):
            return self.select_range(node, steps)
        if isinstance(node, SubqueryExpr):
            return self.subquery(node, steps)
        if isinstance(node, UnaryExpr):
            return self._unary(node, steps)
        if isinstance(node, BinaryExpr):
            lhs = self.eval(node.lhs, steps)
            rhs = self.eval(node.rhs, steps)
            return binops.evaluate(node, lhs, rhs)
        if isinstance(node, Aggregation):
            return aggregations.evaluate(self, node, steps)
        if isinstance(node, Call):
            return self._call(node, steps)
        raise QueryError(f"cannot evaluate {type(node).__name__}")

    def scalar_arg(self, node: Expr, steps: np.ndarray, what: str) -> np.ndarray:
        v = self.eval(node, steps)
        if not isinstance(v, np.ndarray):
            raise QueryError(f"expected a scalar {what}")
        return v

    def vector_arg(self, node: Expr, steps: np.ndarray, what: str) -> Block:
        v = self.eval(node, steps)
        if not isinstance(v, Block):
            raise QueryError(f"expected an instant vector {what}")
        return v

    def _unary(self, node: UnaryExpr, steps: np.ndarray) -> Block | np.ndarray:
        v = self.eval(node.expr, steps)
        if node.op == "+":
            if isinstance(v, (Block, np.ndarray)):
                return v
        elif isinstance(v, np.ndarray):
            return -v
        elif isinstance(v, Block):
            out = Block([drop_name(lb) for lb in v.labels], -v.values, v.present)
            return finish(out, per_step=False)
        raise QueryError("unary expression only allowed on expressions of type scalar or instant vector")

    def _times(self, steps: np.ndarray, offset: float, at: float | str | None) -> np.ndarray:
        offset_ms = round(offset * 1000)
        if at is None:
            return steps - offset_ms if offset_ms else steps
        if at == "start":
            at_ms = self._start_ms
        elif at == "end":
            at_ms = self._end_ms
        else:
            at_ms = round(float(at) * 1000)
        return np.full(len(steps), at_ms - offset_ms, dtype=np.int64)

    def _load(self, node: VectorSelector, lo_ms: int, hi_ms: int) -> list[Any]:
        cols = list(self.source.select_columns(list(node.matchers), lo_ms / 1000, hi_ms / 1000))
        cols.sort(key=lambda c: label_key(c.labels))
        return cols

    def select(self, node: VectorSelector, steps: np.ndarray, *, want_ts: bool = False) -> Block:
        """The instant vector ``node`` at every step: per series the newest sample in the lookback."""
        times = self._times(steps, node.offset, node.at)
        n = len(steps)
        cols = self._load(node, int(times.min()) - self.lookback_ms, int(times.max()))
        if cols and n <= BATCH_MAX_STEPS:
            block = self._select_batch(cols, times, want_ts)
            if block is not None:
                return block
        values = np.empty((len(cols), n), dtype=np.float64)
        present = np.empty((len(cols), n), dtype=bool)
        ts = np.zeros((len(cols), n), dtype=np.int64) if want_ts else None
        oldest = times - self.lookback_ms
        labels = []
        for i, col in enumerate(cols):
            ms, vals = col.ms, col.values
            labels.append(col.labels)
            if not len(ms):
                present[i] = False
                values[i] = 0.0
                continue
            idx = np.searchsorted(ms, times, side="right") - 1
            np.maximum(idx, 0, out=idx)
            sample_ms = ms[idx]
            present[i] = (sample_ms <= times) & (sample_ms > oldest)
            values[i] = vals[idx]
            nan = np.isnan(values[i])
            if nan.any():
                # the newest sample is a staleness marker: the series has ended, no older
                # sample stands in for it
                present[i] &= ~(nan & stale_mask(values[i]))
            if ts is not None:
                ts[i] = sample_ms
        return Block(labels, values, present, ts)

    def _select_batch(self, cols: list[Any], times: np.ndarray, want_ts: bool) -> Block | None:
        """:meth:`select` for all series at once (the same samples, picked with one
        ``np.searchsorted`` over the concatenated series); None when it cannot be batched."""
        packed = pack([(None, c.ms, c.values) for c in cols])
        if not len(packed.ms):
            return None
        bounds = batch_bounds(packed, times, self.lookback_ms)
        if bounds is None:
            return None
        starts = packed.offsets[:-1, None]
        idx = np.maximum(bounds[1] - 1, starts)  # the newest sample at or before t, if any
        np.minimum(idx, len(packed.ms) - 1, out=idx)  # (empty series, masked below)
        sample_ms = packed.ms[idx]
        values = packed.values[idx]
        present = (sample_ms <= times) & (sample_ms > times - self.lookback_ms)
        # a staleness marker as the newest sample: the series has ended
        present &= ~stale_mask(values)
        empty = packed.lengths() == 0
        if empty.any():
            present[empty] = False
            values[empty] = 0.0
            sample_ms[empty] = 0
        return Block([c.labels for c in cols], values, present, sample_ms if want_ts else None)

    def select_range(self, node: MatrixSelector, steps: np.ndarray) -> RangeValue:
        sel = node.selector
        times = self._times(steps, sel.offset, sel.at)
        range_ms = round(node.range * 1000)
        cols = self._load(sel, int(times.min()) - range_ms, int(times.max()))
        if len(times) <= BATCH_MAX_STEPS:
            packed, series = _pack_columns(cols)
            return RangeValue(series, times, range_ms, round(sel.offset * 1000), packed)
        series = []
        for col in cols:
            ms, vals = _drop_stale(col.ms, col.values)
            if len(ms):
                series.append((col.labels, ms, vals))
        return RangeValue(series, times, range_ms, round(sel.offset * 1000))

    def subquery(self, node: SubqueryExpr, steps: np.ndarray) -> RangeValue:
        """``expr[range:step]``: ``expr`` at the multiples of ``step`` inside each window."""
        times = self._times(steps, node.offset, node.at)
        range_ms = round(node.range * 1000)
        step_ms = round(node.step * 1000) if node.step else self.default_subquery_step_ms
        if step_ms <= 0:
            raise QueryError("subquery step must be positive")
        first = int(times.min()) - range_ms
        first = (first // step_ms + 1) * step_ms  # the first multiple of step after the window start
        last = int(times.max())
        if last < first:
            return RangeValue([], times, range_ms, round(node.offset * 1000))
        count = (last - first) // step_ms + 1
        if count > MAX_SUBQUERY_STEPS:
            raise execution_error(f"subquery would evaluate {count} steps; use a larger step")
        substeps = np.arange(first, last + 1, step_ms, dtype=np.int64)
        inner = self.eval(node.expr, substeps)
        series: list[tuple[dict[str, str], np.ndarray, np.ndarray]] = []
        if isinstance(inner, np.ndarray):
            series.append(({}, substeps, inner))
        elif isinstance(inner, Block):
            for i, labels in enumerate(inner.labels):
                p = inner.present[i]
                if p.any():
                    series.append((labels, substeps[p], inner.values[i][p]))
        else:
            raise QueryError("subquery is only allowed on instant vector or scalar expressions")
        return RangeValue(series, times, range_ms, round(node.offset * 1000))

    # -- functions --------------------------------------------------------------------------
    def range_functions(self) -> Mapping[str, Callable[..., tuple[np.ndarray, np.ndarray]]]:
        if self._range_functions is None:
            from watchkeeper.query.promql.functions_range import RANGE_FUNCTIONS

            self._range_functions = RANGE_FUNCTIONS
        return self._range_functions

    def _call(self, node: Call, steps: np.ndarray) -> Block | np.ndarray:
        name = node.func
        if name in ("absent_over_time", "present_over_time") or name in self.range_functions():
            return self._range_call(node, steps)
        if name == "timestamp" and node.args:
            arg = _unwrap(node.args[0])
            if isinstance(arg, VectorSelector):
                block = self.select(arg, steps, want_ts=True)
                return functions_instant.timestamp_of_samples(block)
        fn = functions_instant.FUNCTIONS.get(name)
        if fn is None:
            raise QueryError(f"unknown function with name {name!r}")
        return fn(self, node, steps)

    def _range_call(self, node: Call, steps: np.ndarray) -> Block:
        name = node.func
        rng: RangeValue | None = None
        scalars: list[np.ndarray] = []
        range_arg: Expr | None = None
        for arg in node.args:
            v = self.eval(arg, steps)
            if isinstance(v, RangeValue):
                rng, range_arg = v, _unwrap(arg)
            elif isinstance(v, np.ndarray):
                scalars.append(v)
            else:
                raise QueryError(f"expected type range vector in call to function {name!r}")
        if rng is None:
            raise QueryError(f"expected type range vector in call to function {name!r}")
        n = len(steps)
        if name == "absent_over_time":
            seen = np.zeros(n, dtype=bool)
            for _, ms, _ in rng.series:
                lo, hi = rng.bounds(ms)
                seen |= hi > lo
            labels = functions_instant.absent_labels(range_arg)
            return Block([labels], np.ones((1, n)), ~seen[None, :])
        fn = None if name == "present_over_time" else self.range_functions()[name]
        from watchkeeper.query.promql.functions_range import RangeSeries

        args = tuple(scalars)
        keep_name = name in _KEEP_NAME_RANGE
        if ((not scalars or name in BATCH_SCALAR_ARGS) and rng.series and name in BATCH_FUNCTIONS
                and n <= BATCH_MAX_STEPS):
            from watchkeeper.query.promql.functions_range import RANGE_FUNCTIONS

            if fn is None or fn is RANGE_FUNCTIONS.get(name):
                out = self._range_batch(name, fn, rng, keep_name, args)
                if out is not None:
                    return out
        labels_out = []
        values = np.empty((len(rng.series), n), dtype=np.float64)
        present = np.empty((len(rng.series), n), dtype=bool)
        for i, (labels, ms, vals) in enumerate(rng.series):
            lo, hi = rng.bounds(ms)
            if fn is None:
                values[i] = 1.0
                present[i] = hi > lo
            else:
                rs = RangeSeries(labels=labels, ms=ms, values=vals, lo=lo, hi=hi,
                                 steps_ms=rng.times, range_ms=rng.range_ms, offset_ms=rng.offset_ms)
                v, p = fn(rs, args)
                values[i] = v
                present[i] = p
            labels_out.append(labels if keep_name else drop_name(labels))
        out = Block(labels_out, values, present).nonempty()
        return finish(out, per_step=False)

    def _range_batch(self, name: str, fn: Callable[..., tuple[np.ndarray, np.ndarray]] | None,
                     rng: RangeValue, keep_name: bool,
                     args: tuple[np.ndarray, ...] = ()) -> Block | None:
        """``name`` over every series of ``rng`` in one vectorized pass
        (:mod:`~watchkeeper.query.promql.functions_batch`); None when it cannot be batched.
        Rows the batch leaves to the per-series function (sums that may overflow) get it."""
        packed = rng.packed if rng.packed is not None else pack(rng.series)
        res = batch(name, packed, rng.times, rng.range_ms, offset_ms=rng.offset_ms, args=args)
        if res is None:
            return None
        values, present, fallback = res
        if fn is None:  # present_over_time
            values = np.ones(present.shape)
        elif fallback is not None and fallback.any():
            from watchkeeper.query.promql.functions_range import RangeSeries

            for i in np.flatnonzero(fallback).tolist():
                labels, ms, vals = rng.series[i]
                lo, hi = rng.bounds(ms)
                rs = RangeSeries(labels=labels, ms=ms, values=vals, lo=lo, hi=hi,
                                 steps_ms=rng.times, range_ms=rng.range_ms, offset_ms=rng.offset_ms)
                values[i], present[i] = fn(rs, args)
        labels_in = [s[0] for s in rng.series]
        labels_out = labels_in if keep_name else [drop_name(lb) for lb in labels_in]
        out = Block(labels_out, values, present).nonempty()
        # A range selector's series have distinct label sets: with one metric name (or
        # the name kept) they stay distinct, and nothing is left to merge.
        if rng.packed is not None and (keep_name or len({lb.get("__name__") for lb in labels_in}) <= 1):
            return out
        return finish(out, per_step=False)


def range_rows(res: StepResult) -> list[tuple[dict[str, str], np.ndarray, np.ndarray]]:
    """The series of a range query's result, sorted by label set: (labels, indices of the
    steps that have a value, those values). Raises QueryError for strings and range vectors."""
    v = res.value
    if isinstance(v, np.ndarray):
        return [({}, np.arange(len(v)), v)]
    if isinstance(v, str):
        raise QueryError('invalid expression type "string" for range query, must be Scalar or instant Vector')
    if isinstance(v, RangeValue):
        raise QueryError('invalid expression type "range vector" for range query, '
                         "must be Scalar or instant Vector")
    rows = []
    for i in range(len(v.labels)):
        which = np.flatnonzero(v.present[i])
        if len(which):
            rows.append((v.labels[i], which, v.values[i][which]))
    rows.sort(key=lambda r: label_key(r[0]))
    return rows
