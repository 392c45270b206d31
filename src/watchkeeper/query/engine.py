"""Evaluate PromQL over the store and shape the answers as Prometheus's HTTP API does.

Expressions are full PromQL (:mod:`watchkeeper.query.promql`). A plain series
selector (no offset, no ``@``) keeps a fast path: an instant query at ``t``
takes, per series, the newest sample in ``(t - lookback, t]`` (Prometheus's
5-minute lookback), reading only the newest head sample; a range query does the
same at every step ``start, start + step, ... <= end``. Everything else goes
through the step-wise :class:`~watchkeeper.query.promql.evaluator.Evaluator`.
Times are handled in integer milliseconds, as Prometheus does: ``start``,
``end`` and ``step`` are rounded to the millisecond first. Scalar and string
results render as Prometheus's (``{"resultType":"scalar","result":[t,"v"]}``).

Each query comes in two shapes: :meth:`QueryEngine.range` / :meth:`~QueryEngine.instant`
return the ``data`` object as Python lists and dicts; ``range_json`` /
``instant_json`` return the same object already serialised, byte for byte as
Prometheus 2.x writes it (timestamps as ``1700000000.500``, values as
``"1e+21"``, ``"0.000015"``, ``"NaN"``, ``"+Inf"``), which is what the HTTP API
sends. Building that text directly, with the step timestamps rendered once for
all series and values formatted by ``repr`` in bulk, is several times faster
than ``json.dumps`` over nested lists.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from itertools import chain, repeat
from json.encoder import encode_basestring as _quote  # what json.dumps(ensure_ascii=False) uses
from typing import Any

import numpy as np

from watchkeeper.errors import QueryError
from watchkeeper.query.promql.ast import Expr, ParenExpr, VectorSelector
from watchkeeper.query.promql.evaluator import Evaluator, RangeValue, range_rows
from watchkeeper.query.promql.parser import parse
from watchkeeper.query.promql.values import Block, label_key
from watchkeeper.query.selector import Matcher, parse_selector
from watchkeeper.staleness import stale_mask

__all__ = ["LOOKBACK", "MAX_POINTS", "QueryEngine", "format_timestamp", "format_value"]

LOOKBACK = 300.0
MAX_POINTS = 11000  # as Prometheus: more points per series than this is refused
_DISTINCT_MIN = 64  # from this many values on, format each distinct value once when they repeat


def format_value(value: float) -> str:
    """A sample value as Prometheus renders it in JSON.

    Prometheus (``jsonutil.MarshalFloat``) writes Go's shortest round-trip
    digits in fixed notation (``strconv.FormatFloat(v, 'f', -1, 64)``), except
    for magnitudes below 1e-6 or from 1e21 on, which use exponent notation
    (``'e'``: ``1e+21``, ``1.5e-07``); NaN and infinities are ``NaN``,
    ``+Inf``, ``-Inf``. Python's ``repr`` picks the same shortest digits.
    """
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(value)
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        return text  # repr's exponent form is Go's: "1e+21", "1.5e-07", "5e-324"
    if "e" in text:  # repr uses an exponent from 1e16 and below 1e-4; Prometheus does not
        from decimal import Decimal

        return format(Decimal(text), "f")
    return text.removesuffix(".0")


def format_timestamp(ms: int) -> str:
    """Milliseconds as Prometheus writes a timestamp: seconds, and ``.ddd`` when not whole."""
    sign = "-" if ms < 0 else ""
    seconds, frac = divmod(abs(ms), 1000)
    return f"{sign}{seconds}.{frac:03d}" if frac else f"{sign}{seconds}"


def _timestamp_number(ms: int) -> float | int:
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def format_values(values: np.ndarray) -> list[str]:
    """:func:`format_value` of every value of a float64 array, in bulk.

    Integral values print as integers, other values through ``repr`` mapped in C;
    only when a value needs an exponent or is NaN/Inf does each go through the
    exact path. When values repeat (levels, states, booleans), each distinct one
    is formatted once.
    """
    n = len(values)
    if n == 0:
        return []
    magnitude = np.abs(values)
    # repr writes fixed notation exactly where Prometheus does: 1e-4 <= |v| < 1e16 (and 0)
    plain = bool(((magnitude < 1e16) & ((magnitude >= 1e-4) | (magnitude == 0))).all())
    integral = values == np.trunc(values)
    if plain and integral.all() and (magnitude < 1e15).all() and not np.signbit(values[values == 0]).any():
        return list(map(int.__repr__, values.astype(np.int64).tolist()))
    vals: list[float] = values.tolist()
    # (A first look at a few values spares hashing them all when they hardly repeat.)
    if n >= _DISTINCT_MIN and len(set(vals[:_DISTINCT_MIN])) * 2 <= _DISTINCT_MIN:
        distinct = set(vals)
        if len(distinct) * 4 <= n and not (0.0 in distinct and np.signbit(values[values == 0]).any()):
            # (0.0 and -0.0 are one dict key: with a -0.0 among the zeros, do not share.)
            table = {v: format_value(v) for v in distinct}
            return list(map(table.__getitem__, vals))  # NaNs hit: set and list hold the same objects
    if not plain:
        return list(map(format_value, vals))
    if integral.any():
        return list(map(str.removesuffix, map(float.__repr__, vals), repeat(".0")))
    return list(map(float.__repr__, vals))


def _series_order(labels: dict[str, str]) -> list[tuple[str, str]]:
    # Prometheus orders results by label set: label by label, names then values.
    return sorted(labels.items())


#: (labels, labels JSON, sort text or None) of a label set the store keeps
_Known = tuple[dict[str, str], str, str | None]
#: A vector: labels, values and (when known) each labels JSON, in result order
_Vector = tuple[list[dict[str, str]], np.ndarray, list[str] | None]


def _sort_text(items: list[tuple[str, str]]) -> str | None:
    """Names and values joined by NUL: sorts as ``items`` do (NUL is below every other
    character), three times faster. None when a name or value holds a NUL itself."""
    text = "\x00".join(chain.from_iterable(items))
    return text if text.count("\x00") == max(2 * len(items) - 1, 0) else None


def _labels_json(items: list[tuple[str, str]]) -> str:
    """``json.dumps(dict(items), sort_keys=True, separators=(",", ":"), ensure_ascii=False)``
    for items sorted by name, at a third of the cost."""
    quote = _quote
    return "{" + ",".join([f"{quote(k)}:{quote(v)}" for k, v in items]) + "}"


@dataclass
class QueryEngine:
    """Queries over a :class:`~watchkeeper.store.tsdb.TSDB` (anything with ``select_columns``
    and ``series``). Methods raise QueryError for a bad expression or parameters and
    StorageError when the database fails."""

    tsdb: Any
    lookback: float = LOOKBACK
    # labels JSON by label set; label sets are few and never change, so this is small and exact
    _metric_json: dict[tuple[tuple[str, str], ...], str] = field(default_factory=dict, repr=False)
    # labels JSON and sort text by the identity of the store's cached label dicts (kept alive
    # here with them, so an id is not reused while its entry lives). One tuple of strings
    # per label set: few objects for the garbage collector to walk.
    _orders: dict[int, _Known] = field(default_factory=dict, repr=False)
    _evaluator: Evaluator | None = field(default=None, repr=False)

    def _known(self, labels: dict[str, str]) -> _Known:
        """(labels, labels JSON, sort text) of a label dict the store keeps (never modified)."""
        hit = self._orders.get(id(labels))
        if hit is not None and hit[0] is labels:
            return hit
        items = _series_order(labels)
        entry = (labels, _labels_json(items), _sort_text(items))
        if len(self._orders) < 1_000_000:
            self._orders[id(labels)] = entry
        return entry

    def _sorted(self, labels: list[dict[str, str]]) -> tuple[list[int], list[_Known]]:
        """The order of the store's label sets as Prometheus sorts results (indices into
        ``labels``), and their cached entries."""
        entries = list(map(self._known, labels))
        texts: list[Any] = [e[2] for e in entries]  # str, or None (then sorting raises TypeError)
        try:
            order = sorted(range(len(entries)), key=texts.__getitem__)
        except TypeError:  # a label with a NUL in it: no sort text
            order = sorted(range(len(entries)), key=lambda i: _series_order(labels[i]))
        return order, entries

    def _metric(self, key: list[tuple[str, str]], labels: dict[str, str]) -> str:
        k = tuple(key)
        text = self._metric_json.get(k)
        if text is None:
            text = _labels_json(key)
            if len(self._metric_json) < 1_000_000:
                self._metric_json[k] = text
        return text

    def evaluator(self) -> Evaluator:
        """The PromQL evaluator over this engine's store (same lookback)."""
        ev = self._evaluator
        if ev is None:
            ev = self._evaluator = Evaluator(self.tsdb, lookback=self.lookback)
        return ev

    @staticmethod
    def _plain(expr: str) -> tuple[Expr, list[Matcher] | None]:
        """The parsed expression, and its matchers when it is a plain selector (the fast path)."""
        node = parse(expr)
        inner = node
        while isinstance(inner, ParenExpr):
            inner = inner.expr
        if isinstance(inner, VectorSelector) and inner.offset == 0 and inner.at is None:
            return node, list(inner.matchers)
        return node, None

    # -- instant queries ------------------------------------------------------------------
    def _instant_selector(self, matchers: list[Matcher], t_ms: int) -> _Vector:
        lookback_ms = round(self.lookback * 1000)
        start, end = (t_ms - lookback_ms) / 1000, t_ms / 1000
        select_newest = getattr(self.tsdb, "select_newest", None)
        if select_newest is not None:  # the store's own: no object per series
            labels, ms, values = select_newest(matchers, start, end)
        else:
            cols = self.tsdb.select_columns(matchers, start, end, newest=True)
            labels = [s.labels for s in cols]  # select_columns cut the range at t: the newest is last
            ms = np.array([s.ms[-1] for s in cols], dtype=np.int64)
            values = np.array([s.values[-1] for s in cols], dtype=np.float64)
        keep = ms > t_ms - lookback_ms
        nan = np.isnan(values)
        if nan.any():
            keep &= ~(nan & stale_mask(values))  # a marker: the series ended
        if not keep.all():
            labels = [labels[i] for i in np.flatnonzero(keep).tolist()]
            values = values[keep]
        order, entries = self._sorted(labels)
        return [labels[i] for i in order], values[order], [entries[i][1] for i in order]

    def _instant(self, expr: str, t: float) -> tuple[int, str, Any]:
        """(t_ms, result type, payload): payload is a :data:`_Vector` for a vector, a float for
        a scalar, a str for a string, a list of (labels, ms, values) for a matrix."""
        t_ms = round(t * 1000)
        node, matchers = self._plain(expr)
        if matchers is not None:
            return t_ms, "vector", self._instant_selector(matchers, t_ms)
        value = self.evaluator().evaluate(node, t_ms, t_ms, 1).value
        if isinstance(value, str):
            return t_ms, "string", value
        if isinstance(value, np.ndarray):
            return t_ms, "scalar", float(value[0])
        if isinstance(value, RangeValue):
            rows = []
            for labels, ms, vals in value.series:
                lo, hi = value.bounds(ms)
                if hi[0] > lo[0]:
                    rows.append((labels, ms[lo[0]:hi[0]], vals[lo[0]:hi[0]]))
            rows.sort(key=lambda r: label_key(r[0]))
            return t_ms, "matrix", rows
        assert isinstance(value, Block)
        present = np.flatnonzero(value.present[:, 0])
        return t_ms, "vector", ([value.labels[i] for i in present.tolist()],
                                np.ascontiguousarray(value.values[present, 0], dtype=np.float64), None)

    def instant(self, expr: str, t: float) -> dict[str, Any]:
        """The ``data`` object of ``/api/v1/query`` as Python objects."""
        t_ms, kind, found = self._instant(expr, t)
        ts = _timestamp_number(t_ms)
        if kind == "scalar":
            return {"resultType": "scalar", "result": [ts, format_value(found)]}
        if kind == "string":
            return {"resultType": "string", "result": [ts, found]}
        if kind == "matrix":
            return {"resultType": "matrix", "result": [
                {"metric": dict(labels), "values": [[_timestamp_number(m), v] for m, v in
                                                    zip(ms.tolist(), format_values(vals), strict=True)]}
                for labels, ms, vals in found]}
        labels, values, _ = found
        return {"resultType": "vector", "result": [{"metric": dict(lab), "value": [ts, format_value(v)]}
                                                   for lab, v in zip(labels, values.tolist(), strict=True)]}

    def instant_json(self, expr: str, t: float) -> bytes:
        """The ``data`` object of ``/api/v1/query`` as JSON text (UTF-8)."""
        t_ms, kind, found = self._instant(expr, t)
        if kind == "scalar":
            return f'{{"resultType":"scalar","result":[{format_timestamp(t_ms)},"{format_value(found)}"]}}'.encode()
        if kind == "string":
            text = json.dumps(found, ensure_ascii=False)
            return f'{{"resultType":"string","result":[{format_timestamp(t_ms)},{text}]}}'.encode()
        if kind == "matrix":
            out = []
            for labels, ms, vals in found:
                points = ",".join(f'[{format_timestamp(m)},"{v}"]'
                                  for m, v in zip(ms.tolist(), format_values(vals), strict=True))
                out.append('{"metric":' + self._metric(_series_order(labels), labels) + ',"values":[' + points + "]}")
            return ('{"resultType":"matrix","result":[' + ",".join(out) + "]}").encode()
        labels, values, metrics = found
        if not labels:
            return b'{"resultType":"vector","result":[]}'
        if metrics is None:
            metrics = [self._metric(_series_order(lab), lab) for lab in labels]
        middle = f',"value":[{format_timestamp(t_ms)},"'
        parts = [f'{{"metric":{m}{middle}{v}"]}}' for m, v in zip(metrics, format_values(values), strict=True)]
        return ('{"resultType":"vector","result":[' + ",".join(parts) + "]}").encode()

    # -- range queries --------------------------------------------------------------------
    def _range(self, expr: str, start: float, end: float,
               step: float) -> tuple[np.ndarray, list[tuple[str | None, dict[str, str], np.ndarray, np.ndarray]]]:
        """(step times, [(labels JSON when known, labels, step indices, values)]) in result order."""
        if not step > 0:
            raise QueryError("zero or negative query resolution step widths are not accepted. "
                             "Try a positive integer")
        if end < start:
            raise QueryError("end timestamp must not be before start time")
        if (end - start) / step > MAX_POINTS:
            raise QueryError("exceeded maximum resolution of 11,000 points per timeseries. "
                             "Try decreasing the query resolution (?step=XX)")
        node, matchers = self._plain(expr)
        start_ms, end_ms, step_ms = round(start * 1000), round(end * 1000), round(step * 1000)
        if step_ms < 1:
            raise QueryError("zero or negative query resolution step widths are not accepted. "
                             "Try a positive integer")
        if matchers is None:
            res = self.evaluator().evaluate(node, start_ms, end_ms, step_ms)
            return res.steps, [(None, labels, which, values) for labels, which, values in range_rows(res)]
        lookback_ms = round(self.lookback * 1000)
        steps = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
        found: list[tuple[dict[str, str], np.ndarray, np.ndarray]] = []
        for s in self.tsdb.select_columns(matchers, (start_ms - lookback_ms) / 1000, end_ms / 1000):
            which, values = s.at_steps(steps, lookback_ms)
            if len(which):
                found.append((s.labels, which, values))
        order, entries = self._sorted([r[0] for r in found])
        return steps, [(entries[i][1], *found[i]) for i in order]

    def range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        """The ``data`` object of ``/api/v1/query_range`` as Python objects."""
        steps, found = self._range(expr, start, end, step)
        times = [_timestamp_number(ms) for ms in steps.tolist()]
        result = []
        for _, labels, which, values in found:
            at = map(times.__getitem__, which.tolist())
            result.append({"metric": dict(labels),
                           "values": [[t, v] for t, v in zip(at, format_values(values), strict=True)]})
        return {"resultType": "matrix", "result": result}

    def range_json(self, expr: str, start: float, end: float, step: float) -> bytes:
        """The ``data`` object of ``/api/v1/query_range`` as JSON text (UTF-8)."""
        steps, found = self._range(expr, start, end, step)
        if not found:
            return b'{"resultType":"matrix","result":[]}'
        # '"],[<t>,"' before each value; the first point of a series drops the leading '"],'.
        first, step_ms = int(steps[0]), int(steps[1] - steps[0]) if len(steps) > 1 else 1000
        if first % 1000 == 0 and step_ms % 1000 == 0:  # whole seconds: no fraction to write
            before = [f'"],[{sec},"' for sec in range(first // 1000, first // 1000 + len(steps) * (step_ms // 1000),
                                                     step_ms // 1000)]
        else:
            before = [f'"],[{format_timestamp(ms)},"' for ms in steps.tolist()]
        out = []
        for metric, labels, which, values in found:
            texts = format_values(values)
            parts: list[str] = [""] * (2 * len(texts))
            parts[0::2] = before if len(which) == len(before) else list(map(before.__getitem__, which.tolist()))
            parts[1::2] = texts
            parts[0] = parts[0][3:]
            if metric is None:
                metric = self._metric(_series_order(labels), labels)
            out.append('{"metric":' + metric + ',"values":[' + "".join(parts) + '"]]}')
        return ('{"resultType":"matrix","result":[' + ",".join(out) + "]}").encode()

    def series(self, selectors: list[str], start: float, end: float) -> list[dict[str, str]]:
        if not selectors:
            raise QueryError("no match[] parameter provided")
        return list(self.tsdb.series([parse_selector(s) for s in selectors], start, end))
