"""The values a PromQL expression evaluates to, as callers see them and as the evaluator works.

Callers (the HTTP API, ``rules``) get the light result types: :class:`Scalar`,
:class:`String`, a ``Vector`` (``list[Sample]``) or a ``Matrix``
(``list[Series]``). Inside, the evaluator computes every node over all
evaluation steps at once: an instant vector over steps is a :class:`Block`,
one row per series, with a ``present`` mask telling "no sample at this step"
apart from a NaN sample; a scalar over steps is a float64 array.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Block", "Matrix", "Sample", "Scalar", "Series", "String", "Value", "Vector", "label_key"]


@dataclass(slots=True)
class Scalar:
    """A number (``1 + 1``, ``scalar(x)``, ``time()``)."""

    value: float


@dataclass(slots=True)
class String:
    """A string literal at the top of an expression."""

    value: str


@dataclass(slots=True)
class Sample:
    """One element of an instant vector: ``t`` is the evaluation time in seconds."""

    labels: dict[str, str]
    value: float
    t: float


@dataclass(slots=True)
class Series:
    """One series of a matrix: ascending ``timestamps`` (seconds) with a value each."""

    labels: dict[str, str]
    timestamps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


Vector = list[Sample]
Matrix = list[Series]
Value = Scalar | String | Vector | Matrix


def label_key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """A hashable identity of a label set, ordered as Prometheus orders label sets."""
    return tuple(sorted(labels.items()))


@dataclass(slots=True)
class Block:
    """An instant vector over ``nsteps`` evaluation steps.

    ``labels[i]`` names row ``i``; ``values`` and ``present`` are ``[nseries, nsteps]``
    (float64, bool). A value where ``present`` is False means nothing. ``ts``, when
    set, holds each present sample's own timestamp in ms (what ``timestamp()`` of a
    selector reports).
    """

    labels: list[dict[str, str]]
    values: np.ndarray
    present: np.ndarray
    ts: np.ndarray | None = None

    @classmethod
    def empty(cls, nsteps: int) -> Block:
        return cls([], np.zeros((0, nsteps)), np.zeros((0, nsteps), dtype=bool))

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def nsteps(self) -> int:
        return int(self.values.shape[1])

    def take(self, rows: np.ndarray | list[int]) -> Block:
        """The block of the given rows (in that order)."""
        idx = np.asarray(rows, dtype=np.int64)
        return Block([self.labels[i] for i in idx.tolist()], self.values[idx], self.present[idx],
                     None if self.ts is None else self.ts[idx])

    def nonempty(self) -> Block:
        """Without the rows that are present at no step."""
        keep = self.present.any(axis=1)
        if keep.all():
            return self
        return self.take(np.flatnonzero(keep))
