"""The PromQL syntax tree. The parser builds it; the evaluator walks it.

Every node records ``pos``, the 0-based offset of its first character in the
query text, so errors found after parsing can still name a column.
``str(node)`` renders the expression back as PromQL (normalized, as
Prometheus's ``String()`` does), which ``rules check`` and the API use.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from enum import StrEnum

from watchkeeper.query.promql.lexer import format_duration, quote_string
from watchkeeper.query.selector import Matcher

__all__ = [
    "BINARY_PRECEDENCE",
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
    "format_number",
]


class ValueType(StrEnum):
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

    def __str__(self) -> str:
        return format_number(self.value)


@dataclass(frozen=True)
class StringLiteral(Expr):
    value: str

    def __str__(self) -> str:
        return quote_string(self.value)


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

    def __str__(self) -> str:
        return _selector_str(self) + _modifiers_str(self.at, self.offset)


@dataclass(frozen=True)
class MatrixSelector(Expr):
    """``selector[range]``; ``range`` in seconds."""

    selector: VectorSelector
    range: float

    def __str__(self) -> str:
        sel = self.selector
        return (f"{_selector_str(sel)}[{format_duration(self.range)}]"
                f"{_modifiers_str(sel.at, sel.offset)}")


@dataclass(frozen=True)
class SubqueryExpr(Expr):
    """``expr[range:step]``; ``step`` None means the rule/global evaluation interval (default 1m)."""

    expr: Expr
    range: float
    step: float | None
    offset: float = 0.0
    at: float | str | None = None

    def __str__(self) -> str:
        inner = _wrap(self.expr, not _is_postfixable(self.expr))
        step = format_duration(self.step) if self.step is not None else ""
        return (f"{inner}[{format_duration(self.range)}:{step}]"
                f"{_modifiers_str(self.at, self.offset)}")


@dataclass(frozen=True)
class Call(Expr):
    """A function call; ``func`` is the name (validated against the function table)."""

    func: str
    args: tuple[Expr, ...]

    def __str__(self) -> str:
        return f"{self.func}({', '.join(str(a) for a in self.args)})"


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

    def __str__(self) -> str:
        out = self.op
        if self.without:
            out += f" without ({_labels_str(self.grouping)}) "
        elif self.grouping:
            out += f" by ({_labels_str(self.grouping)}) "
        args = f"{self.param}, {self.expr}" if self.param is not None else str(self.expr)
        return f"{out}({args})"


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

    def __str__(self) -> str:
        return _binary_str(self)


@dataclass(frozen=True)
class UnaryExpr(Expr):
    """``-expr`` or ``+expr``."""

    op: str
    expr: Expr

    def __str__(self) -> str:
        return _unary_str(self)


@dataclass(frozen=True)
class ParenExpr(Expr):
    expr: Expr

    def __str__(self) -> str:
        return f"({self.expr})"


# ---- printing -------------------------------------------------------------

#: binding strength of the binary operators (higher binds tighter); ``^`` is right-associative
BINARY_PRECEDENCE: dict[str, int] = {
    "or": 1,
    "and": 2, "unless": 2,
    "==": 3, "!=": 3, "<=": 3, "<": 3, ">=": 3, ">": 3,
    "+": 4, "-": 4,
    "*": 5, "/": 5, "%": 5, "atan2": 5,
    "^": 6,
}
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_METRIC_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
#: words that cannot stand as a bare metric name (the parser reads them as keywords)
_RESERVED = frozenset("on ignoring group_left group_right bool atan2 inf nan".split())


def format_number(value: float) -> str:
    """A float as PromQL reads it back: ``1000``, ``0.5``, ``1e-05``, ``+Inf``, ``-Inf``, ``NaN``."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def _label_str(name: str) -> str:
    return name if _LABEL_RE.match(name) else quote_string(name)


def _labels_str(names: tuple[str, ...]) -> str:
    return ", ".join(_label_str(n) for n in names)


def _matcher_str(m: Matcher) -> str:
    return f"{_label_str(m.name)}{m.op}{quote_string(m.value)}"


def _selector_str(sel: VectorSelector) -> str:
    """The selector without its modifiers: ``name{a="b"}``, ``{"name.with.dots"}``, ``{a=~"x"}``."""
    matchers = list(sel.matchers)
    name = sel.name
    if name is not None:
        for i, m in enumerate(matchers):
            if m.name == "__name__" and m.op == "=" and m.value == name:
                del matchers[i]
                break
        body = ",".join(_matcher_str(m) for m in matchers)
        if _METRIC_RE.match(name) and name.lower() not in _RESERVED:
            return f"{name}{{{body}}}" if body else name
        return f"{{{quote_string(name)},{body}}}" if body else f"{{{quote_string(name)}}}"
    return "{" + ",".join(_matcher_str(m) for m in matchers) + "}"


def _modifiers_str(at: float | str | None, offset: float) -> str:
    out = ""
    if isinstance(at, str):
        out += f" @ {at}()"
    elif at is not None:
        out += f" @ {at:.3f}"
    if offset:
        out += f" offset {format_duration(offset)}"
    return out


def _is_postfixable(expr: Expr) -> bool:
    """True when ``expr`` prints as one operand that ``[..]``/``offset`` may follow without parentheses."""
    return isinstance(expr, VectorSelector | MatrixSelector | SubqueryExpr | Call | Aggregation
                      | ParenExpr | StringLiteral) or (
        isinstance(expr, NumberLiteral) and str(expr)[0] not in "+-")


def _wrap(expr: Expr, needed: bool) -> str:
    return f"({expr})" if needed else str(expr)


def _binary_str(b: BinaryExpr) -> str:
    prec = BINARY_PRECEDENCE[b.op]
    right_assoc = b.op == "^"
    lhs, rhs = b.lhs, b.rhs
    # parentheses only where the tree could not be read back otherwise; trees from
    # the parser carry their ParenExpr nodes and never need them
    lwrap = (isinstance(lhs, BinaryExpr) and (BINARY_PRECEDENCE[lhs.op] < prec or (
        BINARY_PRECEDENCE[lhs.op] == prec and right_assoc))) or (
        right_assoc and (isinstance(lhs, UnaryExpr) or (
            isinstance(lhs, NumberLiteral) and str(lhs)[0] in "+-")))
    rwrap = isinstance(rhs, BinaryExpr) and (BINARY_PRECEDENCE[rhs.op] < prec or (
        BINARY_PRECEDENCE[rhs.op] == prec and not right_assoc))
    out = f"{_wrap(lhs, lwrap)} {b.op}"
    if b.return_bool:
        out += " bool"
    vm = b.matching
    if vm is not None and (vm.on or vm.labels or vm.card in ("many-to-one", "one-to-many")):
        out += f" {'on' if vm.on else 'ignoring'} ({_labels_str(vm.labels)})"
        if vm.card == "many-to-one":
            out += f" group_left ({_labels_str(vm.include)})"
        elif vm.card == "one-to-many":
            out += f" group_right ({_labels_str(vm.include)})"
    return f"{out} {_wrap(rhs, rwrap)}"


def _unary_str(u: UnaryExpr) -> str:
    operand = u.expr
    # a sign directly on a number would be folded into the number when read back
    wrap = (isinstance(operand, BinaryExpr) and operand.op != "^") or isinstance(
        operand, NumberLiteral)
    return f"{u.op}{_wrap(operand, wrap)}"
