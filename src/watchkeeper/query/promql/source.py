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

__all__ = ["Columns", "MemorySource", "Source"]


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
