"""Where the evaluator reads samples: the :class:`Source` protocol and an in-memory source.

:class:`~watchkeeper.store.tsdb.TSDB` is a Source. :class:`MemorySource` holds
series in memory (``rules test`` input series, unit tests) and answers the same call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from watchkeeper.query.selector import Matcher, matches_all

__all__ = ["Columns", "MemorySource", "ReadCache", "Source", "selector_windows"]


class Columns(Protocol):
    """One series' samples: ``labels`` (with ``__name__``), ``ms`` int64 ascending, ``values`` float64."""

    labels: dict[str, str]
    ms: np.ndarray
    values: np.ndarray


class Source(Protocol):
    """Anything that returns the samples of the series ``matchers`` select, in ``[start, end]`` seconds."""

    def select_columns(self, matchers: list[Matcher], start: float, end: float) -> Sequence[Columns]: ...


@dataclass(slots=True)
class _MemoryColumns:
    labels: dict[str, str]
    ms: np.ndarray
    values: np.ndarray


class MemorySource:
    """Series held in memory; the same ``select_columns`` as the TSDB.

    Labels with an empty value are dropped (Prometheus treats them as absent);
    a sample written twice for the same millisecond keeps the later value.
    """

    def __init__(self, series: Iterable[tuple[Mapping[str, str], Sequence[float], Sequence[float]]] = ()) -> None:
        self._series: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], dict[int, float]]] = {}
        self._frozen: list[_MemoryColumns] | None = None
        for labels, timestamps, values in series:
            self.add(labels, timestamps, values)

    def add(self, labels: Mapping[str, str], timestamps: Sequence[float], values: Sequence[float]) -> None:
        """Add samples (``timestamps`` in seconds) to the series ``labels``."""
        clean = {str(k): str(v) for k, v in labels.items() if v != ""}
        key = tuple(sorted(clean.items()))
        entry = self._series.setdefault(key, (clean, {}))
        for t, v in zip(timestamps, values, strict=True):
            entry[1][round(t * 1000)] = float(v)
        self._frozen = None

    def append(self, labels: Mapping[str, str], t: float, value: float) -> None:
        """Add one sample at ``t`` seconds."""
        self.add(labels, [t], [value])

    def _columns(self) -> list[_MemoryColumns]:
        if self._frozen is None:
            out = []
            for _, (labels, samples) in sorted(self._series.items()):
                ms = np.array(sorted(samples), dtype=np.int64)
                out.append(_MemoryColumns(labels, ms, np.array([samples[m] for m in ms.tolist()], dtype=np.float64)))
            self._frozen = out
        return self._frozen

    def select_columns(self, matchers: list[Matcher], start: float, end: float,
                       **_: Any) -> list[_MemoryColumns]:
        lo, hi = math.ceil(round(start * 1000, 6)), math.floor(round(end * 1000, 6))
        out = []
        for s in self._columns():
            if not matches_all(matchers, s.labels):
                continue
            a, b = np.searchsorted(s.ms, [lo, hi + 1])
            if b > a:
                out.append(_MemoryColumns(s.labels, s.ms[a:b], s.values[a:b]))
        return out


class _NameEntry:
    """Every series of one metric name read over ``[lo, hi]`` ms, with a label index
    (per label, each series' value code) so matchers are applied with NumPy."""

    __slots__ = ("lo", "hi", "cols", "codes", "values", "hits")

    def __init__(self, lo: int, hi: int, cols: Sequence[Columns]) -> None:
        self.lo, self.hi, self.cols = lo, hi, list(cols)
        self.codes: dict[str, np.ndarray] = {}  # label -> value code per series
        self.values: dict[str, list[str]] = {}  # label -> values by code ("" = missing is code 0)
        self.hits: dict[tuple[Matcher, ...], list[int]] = {}

    def _label(self, name: str) -> tuple[np.ndarray, list[str]]:
        codes = self.codes.get(name)
        if codes is None:
            seen: dict[str, int] = {"": 0}
            codes = np.fromiter((seen.setdefault(c.labels.get(name, ""), len(seen)) for c in self.cols),
                                dtype=np.int64, count=len(self.cols))
            self.codes[name], self.values[name] = codes, list(seen)
        return codes, self.values[name]

    def matching(self, matchers: tuple[Matcher, ...]) -> list[int]:
        hit = self.hits.get(matchers)
        if hit is None:
            mask = np.ones(len(self.cols), dtype=bool)
            for m in matchers:
                codes, values = self._label(m.name)
                ok = np.fromiter((m.matches(v) for v in values), dtype=bool, count=len(values))
                mask &= ok[codes]
            hit = self.hits[matchers] = np.flatnonzero(mask).tolist()
        return hit


class ReadCache:
    """A :class:`Source` that reads each metric name once for a batch of queries at one
    time (a rule group's evaluation, or the groups evaluated together at one time), and
    answers every selector of that name from memory.

    The first selector of a name reads all its series over the widest window
    ``windows`` says any selector of that name needs (ms before the query end;
    see :func:`selector_windows`); a later one outside what was read reads again,
    wider. Selectors without an ``=`` matcher on the name, and calls with extra
    options, go to ``source`` directly. The owner must call :meth:`invalidate`
    with the names it writes (a recording rule's output must be visible to the
    next rule) and drop the cache when the batch is done: it never sees
    samples written after it read.
    """

    def __init__(self, source: Source, windows: Mapping[str, int] | None = None) -> None:
        self.source = source
        self.windows = dict(windows or {})
        self._names: dict[str, _NameEntry] = {}
        self.reads = 0  # reads that went to ``source`` (for tests and benchmarks)

    def invalidate(self, names: Iterable[str] | None = None) -> None:
        """Forget what was read of ``names`` (all when None)."""
        if names is None:
            self._names.clear()
            return
        for name in names:
            self._names.pop(name, None)

    def select_columns(self, matchers: list[Matcher], start: float, end: float,
                       **options: Any) -> Sequence[Columns]:
        name = next((m.value for m in matchers if m.name == "__name__" and m.op == "="), None)
        if name is None or options:
            self.reads += 1
            return self.source.select_columns(matchers, start, end, **options)
        lo, hi = math.ceil(round(start * 1000, 6)), math.floor(round(end * 1000, 6))
        if hi < lo:
            return []
        entry = self._names.get(name)
        if entry is None or lo < entry.lo or hi > entry.hi:
            want_lo = min(lo, hi - self.windows.get(name, 0))
            want_hi = hi
            if entry is not None:
                want_lo, want_hi = min(want_lo, entry.lo), max(want_hi, entry.hi)
            self.reads += 1
            entry = _NameEntry(want_lo, want_hi, self.source.select_columns(
                [Matcher("__name__", "=", name)], want_lo / 1000, want_hi / 1000))
            self._names[name] = entry
        rest = tuple(m for m in matchers if not (m.name == "__name__" and m.op == "=" and m.value == name))
        out: list[Columns] = []
        whole = lo <= entry.lo and hi >= entry.hi
        for i in entry.matching(rest):
            col = entry.cols[i]
            if whole:
                out.append(col)
                continue
            a, b = np.searchsorted(col.ms, [lo, hi + 1])
            if b > a:
                out.append(_MemoryColumns(col.labels, col.ms[a:b], col.values[a:b]))
        return out


def selector_windows(exprs: Iterable[Any], lookback: float) -> dict[str, int]:
    """Per metric name, the widest stretch (ms before the evaluation time) a selector of the
    expressions reads: lookback or range, plus offset. Selectors under ``@`` or in subqueries
    are left to read on demand."""
    from watchkeeper.query.promql.ast import MatrixSelector, SubqueryExpr, VectorSelector

    out: dict[str, int] = {}

    def note(sel: VectorSelector, width: float) -> None:
        if sel.at is not None:
            return
        name = next((m.value for m in sel.matchers if m.name == "__name__" and m.op == "="), None)
        if name is not None:
            ms = round((width + max(0.0, sel.offset)) * 1000)
            out[name] = max(out.get(name, 0), ms)

    def walk(node: Any) -> None:
        if isinstance(node, MatrixSelector):
            note(node.selector, node.range)
        elif isinstance(node, VectorSelector):
            note(node, lookback)
        elif isinstance(node, SubqueryExpr):
            return
        elif hasattr(node, "__dataclass_fields__"):
            for f in node.__dataclass_fields__:
                child = getattr(node, f)
                if isinstance(child, (list, tuple)):
                    for c in child:
                        walk(c)
                else:
                    walk(child)

    for expr in exprs:
        walk(expr)
    return out
