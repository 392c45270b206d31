"""Binary operators over steps: arithmetic, comparisons (with ``bool``), set operators,
and the vector matching of ``on``/``ignoring`` with ``group_left``/``group_right``.

Vector matching follows Prometheus's ``VectorBinop``, step by step: each side's
series are keyed by their matching signature; the "one" side must hold at most
one sample per signature at a step, and in one-to-one matching two results of
the same signature at a step are refused as many-to-one. The metric name is
dropped by arithmetic and by ``bool`` comparisons; filtering comparisons keep
the left-hand side's sample.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import numpy as np

from watchkeeper.errors import QueryError
from watchkeeper.query.promql.ast import BinaryExpr, VectorMatching
from watchkeeper.query.promql.values import Block, label_key

__all__ = ["ARITHMETIC", "COMPARISON", "SET_OPS", "evaluate"]

ARITHMETIC: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "+": np.add,
    "-": np.subtract,
    "*": np.multiply,
    "/": np.divide,
    "%": np.fmod,  # Go's math.Mod: the sign of the dividend
    "^": np.power,
    "atan2": np.arctan2,
}
COMPARISON: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "==": np.equal,
    "!=": np.not_equal,
    ">": np.greater,
    "<": np.less,
    ">=": np.greater_equal,
    "<=": np.less_equal,
}
SET_OPS = frozenset({"and", "or", "unless"})

Signature = tuple[object, ...]


def _labels_string(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={json.dumps(v, ensure_ascii=False)}" for k, v in sorted(labels.items())) + "}"


def _signature_fn(matching: VectorMatching) -> Callable[[dict[str, str]], Signature]:
    names = matching.labels
    if matching.on:
        return lambda lb: tuple(lb.get(n, "") for n in names)
    drop = frozenset(names) | {"__name__"}
    return lambda lb: tuple(sorted((k, v) for k, v in lb.items() if k not in drop))


def _match_labels(labels: dict[str, str], matching: VectorMatching) -> dict[str, str]:
    if matching.on:
        return {k: v for k, v in labels.items() if k in matching.labels}
    return {k: v for k, v in labels.items() if k not in matching.labels and k != "__name__"}


def evaluate(node: BinaryExpr, lhs: object, rhs: object) -> Block | np.ndarray:
    """``lhs op rhs`` where each side is a Block (instant vector) or a float64 array (scalar)."""
    op = node.op
    if isinstance(lhs, str) or isinstance(rhs, str) or not isinstance(lhs, (Block, np.ndarray)) \
            or not isinstance(rhs, (Block, np.ndarray)):
        raise QueryError("binary expression must contain only scalar and instant vector types")
    if op in SET_OPS:
        if not (isinstance(lhs, Block) and isinstance(rhs, Block)):
            raise QueryError(f"set operator {op!r} not allowed in binary scalar expression")
        return _set_op(op, lhs, rhs, node.matching or VectorMatching(card="many-to-many"))
    if isinstance(lhs, np.ndarray) and isinstance(rhs, np.ndarray):
        if op in COMPARISON:
            if not node.return_bool:
                raise QueryError("comparisons between scalars must use BOOL modifier")
            return COMPARISON[op](lhs, rhs).astype(np.float64)
        return ARITHMETIC[op](lhs, rhs)
    if isinstance(lhs, Block) and isinstance(rhs, Block):
        return _vector_vector(node, lhs, rhs)
    if isinstance(lhs, Block):
        return _vector_scalar(op, lhs, rhs, node.return_bool, swap=False)  # type: ignore[arg-type]
    return _vector_scalar(op, rhs, lhs, node.return_bool, swap=True)  # type: ignore[arg-type]


def _drop(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != "__name__"} if "__name__" in labels else labels


def _vector_scalar(op: str, vec: Block, scalar: np.ndarray, return_bool: bool, *, swap: bool) -> Block:
    from watchkeeper.query.promql.evaluator import finish

    s = scalar[None, :]
    v = vec.values
    if op in COMPARISON:
        keep = COMPARISON[op](s, v) if swap else COMPARISON[op](v, s)
        if return_bool:
            values, present = keep.astype(np.float64), vec.present
        else:
            values, present = v, vec.present & keep
        labels = [_drop(lb) for lb in vec.labels] if return_bool else vec.labels
    else:
        values = ARITHMETIC[op](s, v) if swap else ARITHMETIC[op](v, s)
        present = vec.present
        labels = [_drop(lb) for lb in vec.labels]
    out = Block(labels, values, present)
    return finish(out) if labels is not vec.labels else out


def _set_op(op: str, lhs: Block, rhs: Block, matching: VectorMatching) -> Block:
    sig = _signature_fn(matching)
    n = lhs.nsteps
    rhs_sigs: dict[Signature, np.ndarray] = {}
    for i, lb in enumerate(rhs.labels):
        k = sig(lb)
        prev = rhs_sigs.get(k)
        rhs_sigs[k] = rhs.present[i] if prev is None else (prev | rhs.present[i])
    none = np.zeros(n, dtype=bool)
    if op in ("and", "unless"):
        present = lhs.present.copy()
        for i, lb in enumerate(lhs.labels):
            other = rhs_sigs.get(sig(lb), none)
            present[i] &= other if op == "and" else ~other
        return Block(lhs.labels, lhs.values, present)
    lhs_sigs: dict[Signature, np.ndarray] = {}
    for i, lb in enumerate(lhs.labels):
        k = sig(lb)
        prev = lhs_sigs.get(k)
        lhs_sigs[k] = lhs.present[i] if prev is None else (prev | lhs.present[i])
    rpres = rhs.present.copy()
    for i, lb in enumerate(rhs.labels):
        rpres[i] &= ~lhs_sigs.get(sig(lb), none)
    from watchkeeper.query.promql.evaluator import finish

    # a label set can come from both sides at different steps: one series in a range result
    return finish(Block(lhs.labels + rhs.labels, np.concatenate([lhs.values, rhs.values]),
                        np.concatenate([lhs.present, rpres])))


def _vector_vector(node: BinaryExpr, lhs: Block, rhs: Block) -> Block:
    from watchkeeper.query.promql.evaluator import execution_error, finish

    op = node.op
    matching = node.matching or VectorMatching()
    card = matching.card
    many, one = (rhs, lhs) if card == "one-to-many" else (lhs, rhs)
    sig = _signature_fn(matching)
    one_by_sig: dict[Signature, list[int]] = {}
    for j, lb in enumerate(one.labels):
        one_by_sig.setdefault(sig(lb), []).append(j)
    for rows in one_by_sig.values():
        if len(rows) > 1:
            counts = one.present[rows].sum(axis=0)
            if (counts > 1).any():
                step = int(np.argmax(counts > 1))
                a, b = [r for r in rows if one.present[r, step]][:2]
                side = "left" if card == "one-to-many" else "right"
                raise execution_error(
                    f"found duplicate series for the match group "
                    f"{_labels_string(_match_labels(one.labels[a], matching))} on the {side} hand-side "
                    f"of the operation: [{_labels_string(one.labels[b])}, {_labels_string(one.labels[a])}]"
                    ";many-to-many matching not allowed: matching labels must be unique on one side")
    is_cmp = op in COMPARISON
    drop_name = not is_cmp or node.return_bool
    fn = COMPARISON[op] if is_cmp else ARITHMETIC[op]
    out_labels: list[dict[str, str]] = []
    out_values: list[np.ndarray] = []
    out_present: list[np.ndarray] = []
    out_sig: list[Signature] = []
    for i, lb in enumerate(many.labels):
        k = sig(lb)
        for j in one_by_sig.get(k, ()):
            matched = many.present[i] & one.present[j]
            if not matched.any():
                continue
            vl, vr = (one.values[j], many.values[i]) if card == "one-to-many" else (many.values[i], one.values[j])
            if is_cmp:
                keep = fn(vl, vr)
                if node.return_bool:
                    values, present = keep.astype(np.float64), matched
                else:
                    values, present = vl, matched & keep
            else:
                values, present = fn(vl, vr), matched
            out_labels.append(_result_labels(lb, one.labels[j], matching, drop_name))
            out_values.append(values)
            out_present.append(present)
            out_sig.append(k)
    n = lhs.nsteps
    if not out_labels:
        return Block.empty(n)
    values_arr = np.array(out_values, dtype=np.float64).reshape(len(out_labels), n)
    present_arr = np.array(out_present, dtype=bool).reshape(len(out_labels), n)
    groups: dict[object, list[int]] = {}
    one_to_one = card == "one-to-one"
    for r, k in enumerate(out_sig):
        groups.setdefault(k if one_to_one else (k, label_key(out_labels[r])), []).append(r)
    for rows in groups.values():
        if len(rows) > 1 and (present_arr[rows].sum(axis=0) > 1).any():
            if one_to_one:
                raise execution_error("multiple matches for labels: many-to-one matching must be explicit "
                                      "(group_left/group_right)")
            raise execution_error("multiple matches for labels: grouping labels must ensure unique matches")
    return finish(Block(out_labels, values_arr, present_arr))


def _result_labels(many: dict[str, str], one: dict[str, str], matching: VectorMatching,
                   drop_name: bool) -> dict[str, str]:
    out = dict(many)
    if drop_name:
        out.pop("__name__", None)
    if matching.card == "one-to-one":
        if matching.on:
            out = {k: v for k, v in out.items() if k in matching.labels}
        else:
            for name in matching.labels:
                out.pop(name, None)
    for name in matching.include:
        value = one.get(name, "")
        if value:
            out[name] = value
        else:
            out.pop(name, None)
    return out
