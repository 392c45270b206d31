"""Aggregation operators over steps: sum avg min max count group stddev stdvar topk bottomk
quantile count_values, with ``by``/``without``.

Series are put in groups by their grouping labels (``by``: only those;
``without``: all but those and the metric name), groups in order of first
appearance as in Prometheus. Simple aggregations reduce the rows of each group
with NumPy (``reduceat`` over rows sorted by group) for all steps at once; the
selecting ones (topk, bottomk, quantile) sort each group's rows per step.
Absent samples never count; NaN samples do (min/max skip NaN unless all are NaN,
as Prometheus's ``if group.value > s.V || isNaN(group.value)``).
"""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING

import numpy as np

from watchkeeper.errors import QueryError
from watchkeeper.query.promql.ast import Aggregation
from watchkeeper.query.promql.values import Block

if TYPE_CHECKING:
    from watchkeeper.query.promql.evaluator import Evaluator

__all__ = ["AGGREGATIONS", "evaluate", "format_float_f"]

AGGREGATIONS = frozenset({"sum", "avg", "min", "max", "count", "group", "stddev", "stdvar",
                          "topk", "bottomk", "quantile", "count_values"})
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def format_float_f(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, never an exponent."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    if "e" in text:
        from decimal import Decimal

        text = format(Decimal(text), "f")
    return text.removesuffix(".0")


def _go_float(value: float) -> str:
    """A float as Go's ``%v`` prints it (``NaN``, ``+Inf``, ``1e+20``)."""
    if value != value:
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value).removesuffix(".0")
    if "e" in text:
        mant, exp = text.split("e")
        text = f"{mant}e{'-' if exp.startswith('-') else '+'}{exp.lstrip('+-').zfill(2)}"
    return text


def _group_labels(labels: dict[str, str], grouping: tuple[str, ...], without: bool) -> dict[str, str]:
    if without:
        return {k: v for k, v in labels.items() if k not in grouping and k != "__name__"}
    return {k: v for k, v in labels.items() if k in grouping}


def _groups(block: Block, grouping: tuple[str, ...], without: bool) -> tuple[list[dict[str, str]], np.ndarray]:
    index: dict[tuple[tuple[str, str], ...], int] = {}
    out: list[dict[str, str]] = []
    gidx = np.empty(len(block.labels), dtype=np.int64)
    for i, lb in enumerate(block.labels):
        g = _group_labels(lb, grouping, without)
        key = tuple(sorted(g.items()))
        k = index.get(key)
        if k is None:
            k = index[key] = len(out)
            out.append(g)
        gidx[i] = k
    return out, gidx


def evaluate(ev: Evaluator, node: Aggregation, steps: np.ndarray) -> Block:
    """Evaluate the aggregation ``node`` at ``steps``. Raises QueryError."""
    op = node.op
    if op not in AGGREGATIONS:
        raise QueryError(f"unknown aggregation {op!r}")
    param: np.ndarray | str | None = None
    if op in ("topk", "bottomk", "quantile"):
        if node.param is None:
            raise QueryError(f"{op} needs a parameter")
        param = ev.scalar_arg(node.param, steps, f"parameter of {op}")
    elif op == "count_values":
        p = ev.eval(node.param, steps) if node.param is not None else None
        if not isinstance(p, str):
            raise QueryError("count_values needs a string parameter")
        param = p
    block = ev.vector_arg(node.expr, steps, f"in aggregation {op!r}")
    n = len(steps)
    if op == "count_values":
        assert isinstance(param, str)
        return _count_values(block, param, node.grouping, node.without, n)
    if not len(block):
        return Block.empty(n)
    if op in ("topk", "bottomk"):
        assert isinstance(param, np.ndarray)
        return _topk(block, param, node.grouping, node.without, op == "topk")
    labels, gidx = _groups(block, node.grouping, node.without)
    if op == "quantile":
        assert isinstance(param, np.ndarray)
        return _quantile(block, param, labels, gidx)
    order = np.argsort(gidx, kind="stable")
    g_sorted = gidx[order]
    starts = np.flatnonzero(np.r_[True, g_sorted[1:] != g_sorted[:-1]])
    pres = block.present[order]
    vals = block.values[order]
    count = np.add.reduceat(pres.astype(np.float64), starts, axis=0)
    present = count > 0
    if op == "count":
        values = count
    elif op == "group":
        values = np.ones_like(count)
    elif op in ("sum", "avg"):
        total = np.add.reduceat(np.where(pres, vals, 0.0), starts, axis=0)
        values = total if op == "sum" else total / count
    elif op in ("min", "max"):
        filled = np.where(pres, vals, np.nan)
        values = (np.fmin if op == "min" else np.fmax).reduceat(filled, starts, axis=0)
    else:  # stddev, stdvar: population variance around the mean
        total = np.add.reduceat(np.where(pres, vals, 0.0), starts, axis=0)
        mean = total / count
        dev = np.where(pres, vals - mean[g_sorted], 0.0)
        var = np.add.reduceat(dev * dev, starts, axis=0) / count
        values = np.sqrt(var) if op == "stddev" else var
    return Block(labels, np.where(present, values, 0.0), present)


def _topk(block: Block, param: np.ndarray, grouping: tuple[str, ...], without: bool, top: bool) -> Block:
    labels, gidx = _groups(block, grouping, without)
    n = block.nsteps
    ok = (param >= -(2.0 ** 63)) & (param <= 2.0 ** 63)
    if not ok.all():
        from watchkeeper.query.promql.evaluator import execution_error

        bad = float(param[np.argmin(ok)])
        raise execution_error(f"Scalar value {_go_float(bad)} overflows int64")
    k = np.minimum(np.trunc(param), 2.0 ** 62).astype(np.int64)
    keep = np.zeros_like(block.present)
    for g in range(len(labels)):
        rows = np.flatnonzero(gidx == g)
        v = block.values[rows]
        p = block.present[rows]
        nan = np.isnan(v)
        cls = np.where(p, np.where(nan, 1, 0), 2)  # real values first, then NaN, then absent
        key = np.where(nan | ~p, 0.0, -v if top else v)
        # per step (column): order rows by (cls, key); row position in the input breaks ties
        order = np.lexsort((np.broadcast_to(np.arange(len(rows))[:, None], v.shape), key, cls), axis=0)
        rank = np.empty_like(order)
        np.put_along_axis(rank, order, np.arange(len(rows))[:, None].repeat(n, axis=1), axis=0)
        keep[rows] = p & (rank < k[None, :])
    return Block(block.labels, block.values, keep)


def _quantile(block: Block, param: np.ndarray, labels: list[dict[str, str]], gidx: np.ndarray) -> Block:
    n = block.nsteps
    out_v = np.zeros((len(labels), n))
    out_p = np.zeros((len(labels), n), dtype=bool)
    for g in range(len(labels)):
        rows = np.flatnonzero(gidx == g)
        v = block.values[rows]
        p = block.present[rows]
        nan = np.isnan(v)
        cls = np.where(p, np.where(nan, 0, 1), 2)  # Prometheus sorts NaN first
        order = np.lexsort((np.where(nan | ~p, 0.0, v), cls), axis=0)
        srt = np.take_along_axis(v, order, axis=0)
        cnt = p.sum(axis=0)
        have = cnt > 0
        q = param
        rank = q * (cnt - 1)
        lower = np.clip(np.floor(np.nan_to_num(rank, nan=0.0)), 0, None).astype(np.int64)
        upper = np.minimum(cnt - 1, lower + 1).clip(0)
        lower = np.minimum(lower, np.maximum(cnt - 1, 0))
        weight = rank - np.floor(rank)
        cols = np.arange(n)
        lv = srt[lower, cols]
        uv = srt[upper, cols]
        res = lv * (1 - weight) + uv * weight
        res = np.where(np.isnan(q), np.nan, np.where(q < 0, -np.inf, np.where(q > 1, np.inf, res)))
        out_v[g] = res
        out_p[g] = have
    return Block(labels, out_v, out_p)


def _count_values(block: Block, label: str, grouping: tuple[str, ...], without: bool, n: int) -> Block:
    if not _LABEL_NAME.match(label):
        raise QueryError(f"invalid label name {label!r}")
    grouping_eff = grouping if without else (*grouping, label)
    counts: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], np.ndarray]] = {}
    for i, lb in enumerate(block.labels):
        p = block.present[i]
        if not p.any():
            continue
        vals = block.values[i]
        nan = np.isnan(vals) & p
        distinct = np.unique(vals[p & ~nan]).tolist() + ([math.nan] if nan.any() else [])
        for value in distinct:
            hit = nan if value != value else (p & (vals == value))
            if not hit.any():
                continue
            labels = dict(lb)
            labels[label] = format_float_f(value)
            g = _group_labels(labels, grouping_eff, without)
            key = tuple(sorted(g.items()))
            entry = counts.get(key)
            if entry is None:
                counts[key] = (g, hit.astype(np.float64))
            else:
                entry[1][:] += hit
    if not counts:
        return Block.empty(n)
    labels_out = [g for g, _ in counts.values()]
    values = np.array([c for _, c in counts.values()]).reshape(len(labels_out), n)
    return Block(labels_out, values, values > 0)
