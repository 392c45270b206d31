"""PromQL functions over instant vectors and scalars, evaluated over all steps at once.

Each entry of :data:`FUNCTIONS` takes the evaluator, the call node and the step
times (int64 ms) and returns a Block or a float64 array (a scalar per step).
Functions that compute a new value drop the metric name; ``label_replace``,
``label_join``, ``sort`` and ``sort_desc`` keep it, as in Prometheus.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from watchkeeper.errors import QueryError
from watchkeeper.query.promql.ast import Call, Expr, MatrixSelector, VectorSelector
from watchkeeper.query.promql.values import Block

if TYPE_CHECKING:
    from watchkeeper.query.promql.evaluator import Evaluator

__all__ = ["FUNCTIONS", "absent_labels", "bucket_quantile", "timestamp_of_samples"]

Function = Callable[["Evaluator", Call, np.ndarray], "Block | np.ndarray"]
FUNCTIONS: dict[str, Function] = {}
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")


def _finish(block: Block) -> Block:
    from watchkeeper.query.promql.evaluator import finish

    return finish(block)


def _drop(labels: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in labels.items() if k != "__name__"} if "__name__" in labels else labels


def _apply(block: Block, values: np.ndarray) -> Block:
    """``block`` with new values and without metric names (duplicates refused per step)."""
    return _finish(Block([_drop(lb) for lb in block.labels], values, block.present))


def _register(name: str) -> Callable[[Function], Function]:
    def deco(fn: Function) -> Function:
        FUNCTIONS[name] = fn
        return fn
    return deco


def _vector(ev: Evaluator, node: Call, steps: np.ndarray, i: int = 0) -> Block:
    if len(node.args) <= i:
        raise QueryError(f"missing argument {i + 1} in call to function {node.func!r}")
    return ev.vector_arg(node.args[i], steps, f"as argument {i + 1} of {node.func}()")


def _scalar(ev: Evaluator, node: Call, steps: np.ndarray, i: int) -> np.ndarray:
    return ev.scalar_arg(node.args[i], steps, f"as argument {i + 1} of {node.func}()")


def _string(ev: Evaluator, node: Call, steps: np.ndarray, i: int) -> str:
    v = ev.eval(node.args[i], steps)
    if not isinstance(v, str):
        raise QueryError(f"expected a string as argument {i + 1} of {node.func}()")
    return v


def _simple(name: str, fn: Callable[[np.ndarray], np.ndarray]) -> None:
    def run(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
        block = _vector(ev, node, steps)
        return _apply(block, fn(block.values))
    FUNCTIONS[name] = run


for _name, _fn in {
    "abs": np.abs, "ceil": np.ceil, "floor": np.floor, "exp": np.exp, "sqrt": np.sqrt,
    "ln": np.log, "log2": np.log2, "log10": np.log10, "sgn": np.sign,
    "sin": np.sin, "cos": np.cos, "tan": np.tan, "asin": np.arcsin, "acos": np.arccos,
    "atan": np.arctan, "sinh": np.sinh, "cosh": np.cosh, "tanh": np.tanh, "asinh": np.arcsinh,
    "acosh": np.arccosh, "atanh": np.arctanh, "deg": np.degrees, "rad": np.radians,
}.items():
    _simple(_name, _fn)


@_register("round")
def _round(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    block = _vector(ev, node, steps)
    to = _scalar(ev, node, steps, 1) if len(node.args) > 1 else np.ones(len(steps))
    inv = 1.0 / to
    return _apply(block, np.floor(block.values * inv[None, :] + 0.5) / inv[None, :])


@_register("clamp")
def _clamp(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    block = _vector(ev, node, steps)
    lo = _scalar(ev, node, steps, 1)[None, :]
    hi = _scalar(ev, node, steps, 2)[None, :]
    out = _apply(block, np.maximum(lo, np.minimum(hi, block.values)))
    out.present = out.present & ~(hi < lo)  # min > max: an empty result
    return out


@_register("clamp_min")
def _clamp_min(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    block = _vector(ev, node, steps)
    return _apply(block, np.maximum(block.values, _scalar(ev, node, steps, 1)[None, :]))


@_register("clamp_max")
def _clamp_max(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    block = _vector(ev, node, steps)
    return _apply(block, np.minimum(block.values, _scalar(ev, node, steps, 1)[None, :]))


@_register("time")
def _time(ev: Evaluator, node: Call, steps: np.ndarray) -> np.ndarray:
    return steps / 1000.0


@_register("pi")
def _pi(ev: Evaluator, node: Call, steps: np.ndarray) -> np.ndarray:
    return np.full(len(steps), math.pi)


@_register("vector")
def _vector_fn(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    v = _scalar(ev, node, steps, 0)
    return Block([{}], v[None, :].copy(), np.ones((1, len(steps)), dtype=bool))


@_register("scalar")
def _scalar_fn(ev: Evaluator, node: Call, steps: np.ndarray) -> np.ndarray:
    block = _vector(ev, node, steps)
    if not len(block):
        return np.full(len(steps), np.nan)
    one = block.present.sum(axis=0) == 1
    which = np.argmax(block.present, axis=0)
    vals = block.values[which, np.arange(len(steps))]
    return np.where(one, vals, np.nan)


def timestamp_of_samples(block: Block) -> Block:
    """``timestamp(selector)``: each sample's own time in seconds."""
    assert block.ts is not None
    return _apply(block, block.ts / 1000.0)


@_register("timestamp")
def _timestamp(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    block = _vector(ev, node, steps)
    if block.ts is not None:
        return timestamp_of_samples(block)
    return _apply(block, np.broadcast_to(steps / 1000.0, block.values.shape).copy())


def absent_labels(expr: Expr | None) -> dict[str, str]:
    """The labels ``absent()`` gives its sample: the selector's ``=`` matchers (not the name),
    without names matched twice or by another operator."""
    if isinstance(expr, MatrixSelector):
        expr = expr.selector
    if not isinstance(expr, VectorSelector):
        return {}
    out: dict[str, str] = {}
    empty: list[str] = []
    for m in expr.matchers:
        if m.name == "__name__":
            continue
        if m.op == "=" and m.name not in out:
            out[m.name] = m.value
        else:
            empty.append(m.name)
    for name in empty:
        out.pop(name, None)
    return {k: v for k, v in out.items() if v != ""}


@_register("absent")
def _absent(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    block = _vector(ev, node, steps)
    seen = np.asarray(block.present.any(axis=0)) if len(block) else np.zeros(len(steps), dtype=bool)
    return Block([absent_labels(node.args[0])], np.ones((1, len(steps))), ~seen[None, :])


@_register("sort")
def _sort(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    return _sorted(_vector(ev, node, steps), descending=False)


@_register("sort_desc")
def _sort_desc(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    return _sorted(_vector(ev, node, steps), descending=True)


def _sorted(block: Block, *, descending: bool) -> Block:
    # Only an instant query's order is visible; a range query's series are sorted by labels.
    if block.nsteps != 1 or not len(block):
        return block
    v = block.values[:, 0]
    nan = np.isnan(v)
    order = np.lexsort((-v if descending else v, nan))  # NaN last
    return block.take(order)


def _go_expand(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``, ``${name}``, ``$$``."""
    out: list[str] = []
    i = 0
    groups = match.re.groupindex
    while i < len(template):
        ch = template[i]
        if ch != "$" or i + 1 >= len(template):
            out.append(ch)
            i += 1
            continue
        nxt = template[i + 1]
        if nxt == "$":
            out.append("$")
            i += 2
            continue
        if nxt == "{":
            end = template.find("}", i + 2)
            name = template[i + 2:end] if end >= 0 else ""
            if end < 0 or not re.fullmatch(r"\w+", name):
                out.append(ch)
                i += 1
                continue
            i = end + 1
        else:
            m = re.match(r"\w+", template[i + 1:])
            if not m:
                out.append(ch)
                i += 1
                continue
            name = m.group(0)
            i += 1 + len(name)
        if name.isdigit():
            idx = int(name)
            if idx <= (match.re.groups or 0):
                out.append(match.group(idx) or "")
        elif name in groups:
            out.append(match.group(name) or "")
    return "".join(out)


@_register("label_replace")
def _label_replace(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    block = _vector(ev, node, steps)
    dst, repl, src, regex = (_string(ev, node, steps, i) for i in range(1, 5))
    try:
        pattern = re.compile(f"^(?:{regex})$", re.DOTALL)
    except re.error as exc:
        raise QueryError(f"invalid regular expression in label_replace(): {regex}: {exc}") from None
    if not _LABEL_NAME.match(dst):
        raise QueryError(f"invalid destination label name in label_replace(): {dst}")
    labels = []
    for lb in block.labels:
        m = pattern.match(lb.get(src, ""))
        if m is None:
            labels.append(lb)
            continue
        value = _go_expand(repl, m)
        out = dict(lb)
        if value:
            out[dst] = value
        else:
            out.pop(dst, None)
        labels.append(out)
    return _finish(Block(labels, block.values, block.present))


@_register("label_join")
def _label_join(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    block = _vector(ev, node, steps)
    dst = _string(ev, node, steps, 1)
    sep = _string(ev, node, steps, 2)
    srcs = [_string(ev, node, steps, i) for i in range(3, len(node.args))]
    if not _LABEL_NAME.match(dst):
        raise QueryError(f"invalid destination label name in label_join(): {dst}")
    for s in srcs:
        if not _LABEL_NAME.match(s):
            raise QueryError(f"invalid source label name in label_join(): {s}")
    labels = []
    for lb in block.labels:
        value = sep.join(lb.get(s, "") for s in srcs)
        out = dict(lb)
        if value:
            out[dst] = value
        else:
            out.pop(dst, None)
        labels.append(out)
    return _finish(Block(labels, block.values, block.present))


# -- histogram_quantile ---------------------------------------------------------------------
def _parse_le(text: str) -> float | None:
    """An ``le`` label as Go's ``strconv.ParseFloat`` reads it, None when it does not parse."""
    t = text.strip()
    if t != text or not t or "_" in t:
        return None
    low = t.lower().lstrip("+-")
    if low in ("inf", "infinity"):
        return -math.inf if t.startswith("-") else math.inf
    if low == "nan":
        return math.nan
    try:
        return float(t) if "x" not in low else float.fromhex(t)
    except ValueError:
        return None


def bucket_quantile(q: np.ndarray, bounds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Prometheus's ``bucketQuantile`` of classic buckets for each column (step).

    ``bounds`` are the upper bounds (ascending, unique); ``counts`` ``[buckets, steps]``
    the cumulative counts. Counts are made monotonic as Prometheus does; the
    quantile interpolates linearly inside the bucket holding the rank, answering
    the second-highest bound for the +Inf bucket and the first bound when it is <= 0.
    """
    with np.errstate(all="ignore"):
        return _bucket_quantile(q, bounds, counts)


def _bucket_quantile(q: np.ndarray, bounds: np.ndarray, counts: np.ndarray) -> np.ndarray:
    nsteps = counts.shape[1]
    out = np.full(nsteps, np.nan)
    k = len(bounds)
    if k >= 2 and math.isinf(bounds[-1]) and bounds[-1] > 0:
        c = counts.copy()
        running = np.fmax.accumulate(c, axis=0)
        c = np.where(np.isnan(c), c, running)
        obs = c[-1]
        rank = q * obs
        ge = c[:-1] >= rank[None, :]
        any_ge = ge.any(axis=0)
        b = np.where(any_ge, np.argmax(ge, axis=0), k - 1)
        cols = np.arange(nsteps)
        prev_count = np.where(b > 0, c[np.maximum(b - 1, 0), cols], 0.0)
        start = np.where(b > 0, bounds[np.maximum(b - 1, 0)], 0.0)
        end = bounds[np.minimum(b, k - 1)]
        count = c[np.minimum(b, k - 1), cols] - prev_count
        value = start + (end - start) * ((rank - prev_count) / count)
        value = np.where(b == k - 1, bounds[k - 2], value)
        value = np.where((b == 0) & (bounds[0] <= 0), bounds[0], value)
        out = np.where(obs == 0, np.nan, value)
    out = np.where(q > 1, np.inf, out)
    out = np.where(q < 0, -np.inf, out)
    return np.where(np.isnan(q), np.nan, out)


@_register("histogram_quantile")
def _histogram_quantile(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
    q = _scalar(ev, node, steps, 0)
    block = _vector(ev, node, steps, 1)
    n = len(steps)
    groups: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], list[tuple[float, int]]]] = {}
    for i, lb in enumerate(block.labels):
        le = _parse_le(lb.get("le", ""))
        if le is None:
            continue
        g = {k: v for k, v in lb.items() if k not in ("le", "__name__")}
        groups.setdefault(tuple(sorted(g.items())), (g, []))[1].append((le, i))
    labels_out = []
    values = np.zeros((len(groups), n))
    present = np.zeros((len(groups), n), dtype=bool)
    for gi, (g, members) in enumerate(groups.values()):
        labels_out.append(g)
        members.sort(key=lambda m: m[0])
        rows = np.array([i for _, i in members], dtype=np.int64)
        les = np.array([le for le, _ in members])
        pres = block.present[rows]
        present[gi] = pres.any(axis=0)
        # steps with the same set of buckets present are computed together
        patterns: dict[bytes, list[int]] = {}
        for col in np.flatnonzero(present[gi]).tolist():
            patterns.setdefault(pres[:, col].tobytes(), []).append(col)
        for cols_list in patterns.values():
            cols = np.array(cols_list, dtype=np.int64)
            use = pres[:, cols[0]]
            b = les[use]
            c = block.values[rows[use]][:, cols]
            ub, inv = np.unique(b, return_inverse=True)  # coalesce equal bounds ("1" and "1.0")
            if len(ub) != len(b):
                merged = np.zeros((len(ub), len(cols)))
                np.add.at(merged, inv, c)
                b, c = ub, merged
            values[gi, cols] = bucket_quantile(q[cols], b, c)
    return Block(labels_out, values, present)


# -- date functions ---------------------------------------------------------------------------
# What Go's time.Unix(int64(v), 0).UTC() answers for a value int64() cannot hold (NaN, ±Inf,
# beyond ±2^63): Go converts those to the smallest int64 (read from Prometheus 2.42).
_GO_MIN_INT64_DATE = {"minute": 30, "hour": 15, "day_of_week": 0, "day_of_month": 4, "day_of_year": 339,
                      "days_in_month": 31, "month": 12, "year": 292277026596}


def _date(name: str, part: Callable[[np.ndarray], np.ndarray]) -> None:
    def run(ev: Evaluator, node: Call, steps: np.ndarray) -> Block:
        if node.args:
            block = _vector(ev, node, steps)
        else:
            block = Block([{}], (steps / 1000.0)[None, :], np.ones((1, len(steps)), dtype=bool))
        v = block.values
        ok = (v > -(2.0 ** 63)) & (v < 2.0 ** 63)
        secs = np.where(ok, np.trunc(np.where(ok, v, 0)), 0).astype(np.int64)
        return _apply(block, np.where(ok, part(secs).astype(np.float64), float(_GO_MIN_INT64_DATE[name])))
    FUNCTIONS[name] = run


def _days(secs: np.ndarray) -> np.ndarray:
    return secs.astype("datetime64[s]").astype("datetime64[D]")


_date("minute", lambda s: (s // 60) % 60)
_date("hour", lambda s: (s // 3600) % 24)
_date("day_of_week", lambda s: ((s // 86400) + 4) % 7)
_date("day_of_month", lambda s: (_days(s) - _days(s).astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64) + 1)
_date("day_of_year", lambda s: (_days(s) - _days(s).astype("datetime64[Y]").astype("datetime64[D]")).astype(np.int64) + 1)
_date("month", lambda s: _days(s).astype("datetime64[M]").astype(np.int64) % 12 + 1)
_date("year", lambda s: _days(s).astype("datetime64[Y]").astype(np.int64) + 1970)
_date("days_in_month", lambda s: ((_days(s).astype("datetime64[M]") + 1).astype("datetime64[D]")
                                  - _days(s).astype("datetime64[M]").astype("datetime64[D]")).astype(np.int64))
