"""The PromQL syntax tree. The parser builds it; the evaluator walks it.

Every node records ``pos``, the 0-based offset of its first character in the
query text, so errors found after parsing can still name a column.
``str(node)`` renders the expression back as PromQL (normalized, as
Prometheus's ``String()`` does), which ``rules check`` and the API use.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from watchkeeper.query.selector import Matcher

__all__ = [
    "Aggregation",
    "BinaryExpr",
    "Call",
    "Expr",
    "MatrixSelector",
    "NumberLiteral",
    "ParenExpr",
    "StringLiteral",
    "SubqueryExpr",
    "UnaryExpr",
    "ValueType",
    "VectorMatching",
    "VectorSelector",
]


class ValueType(str, Enum):
    """What an expression evaluates to."""

    SCALAR = "scalar"
    VECTOR = "vector"  # an instant vector
    MATRIX = "matrix"  # a range vector
    STRING = "string"


@dataclass(frozen=True)
class Expr:
    pos: int = field(default=0, kw_only=True, compare=False)


@dataclass(frozen=True)
class NumberLiteral(Expr):
    value: float


@dataclass(frozen=True)
class StringLiteral(Expr):
    value: str


@dataclass(frozen=True)
class VectorSelector(Expr):
    """``name{matchers} offset 5m @ 1700000000``. ``matchers`` includes the ``__name__`` one.

    ``offset`` is in seconds (negative allowed); ``at`` is a Unix time, or the
    strings ``"start"`` / ``"end"`` for ``@ start()`` / ``@ end()``.
    """

    name: str | None
    matchers: tuple[Matcher, ...]
    offset: float = 0.0
    at: float | str | None = None


@dataclass(frozen=True)
class MatrixSelector(Expr):
    """``selector[range]``; ``range`` in seconds."""

    selector: VectorSelector
    range: float


@dataclass(frozen=True)
class SubqueryExpr(Expr):
    """``expr[range:step]``; ``step`` None means the rule/global evaluation interval (default 1m)."""

    expr: Expr
    range: float
    step: float | None
    offset: float = 0.0
    at: float | str | None = None


@dataclass(frozen=True)
class Call(Expr):
    """A function call; ``func`` is the name (validated against the function table)."""

    func: str
    args: tuple[Expr, ...]


@dataclass(frozen=True)
class Aggregation(Expr):
    """``sum by (a) (expr)``, ``topk(3, expr)``, ``count_values("v", expr)``, ``quantile(0.9, expr)``.

    ``grouping`` holds the label names of ``by``/``without``; ``without`` tells which.
    """

    op: str
    expr: Expr
    param: Expr | None = None
    grouping: tuple[str, ...] = ()
    without: bool = False


@dataclass(frozen=True)
class VectorMatching:
    """How the two sides of a vector binary operation are matched.

    ``card`` is "one-to-one", "many-to-one" (group_left) or "one-to-many"
    (group_right); ``on`` tells whether ``labels`` are the ``on(...)`` labels
    (True) or the ``ignoring(...)`` labels (False); ``include`` holds the
    labels named in ``group_left(...)`` / ``group_right(...)``.
    """

    card: str = "one-to-one"
    on: bool = False
    labels: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class BinaryExpr(Expr):
    """``lhs op rhs``. ``op`` is one of + - * / % ^ atan2 == != > < >= <= and or unless.

    ``return_bool`` is the ``bool`` modifier of comparisons; ``matching`` is None
    when either side is a scalar.
    """

    op: str
    lhs: Expr
    rhs: Expr
    return_bool: bool = False
    matching: VectorMatching | None = None


@dataclass(frozen=True)
class UnaryExpr(Expr):
    """``-expr`` or ``+expr``."""

    op: str
    expr: Expr


@dataclass(frozen=True)
class ParenExpr(Expr):
    expr: Expr
