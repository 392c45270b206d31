"""PromQL syntax trees printed for people and for tools.

:func:`pretty` is what Prometheus's ``/api/v1/format_query`` answers: the
expression on one line (``str(node)``, Prometheus's ``String()``) when that
fits in 100 characters, otherwise split node by node, two spaces of indent a
level: an aggregation's or call's arguments on lines of their own, a binary
operator on a line between its operands. Reading the output back gives the
same tree (``parse(pretty(t)) == t``: line breaks and indents are only spaces
to the parser).

:func:`tree` is what ``/api/v1/parse_query`` answers: the tree as JSON objects
in the shape Prometheus's web UI reads (``{"type": "vectorSelector", ...}``).
"""

from __future__ import annotations

import math
from dataclasses import fields, replace
from decimal import Decimal
from typing import Any

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
    _matcher_str,
)

__all__ = ["MAX_LINE", "pretty", "sorted_matchers", "tree"]

MAX_LINE = 100  # Prometheus's maxCharactersPerLine
_INDENT = "  "

_CARD = {"one-to-one": "one-to-one", "many-to-one": "many-to-one", "one-to-many": "one-to-many",
         "many-to-many": "many-to-many"}


def pretty(node: Expr) -> str:
    """``node`` as Prometheus's ``Pretty(0)`` prints it (see the module docstring)."""
    return _pretty(sorted_matchers(node), 0)


def sorted_matchers(node: Expr) -> Expr:
    """``node`` with the matchers of every selector in the order Prometheus prints them (its
    ``String()`` sorts them as text); the meaning is the same."""
    if isinstance(node, VectorSelector):
        return replace(node, matchers=tuple(sorted(node.matchers, key=_matcher_str)))
    if isinstance(node, MatrixSelector):
        sel = node.selector
        return replace(node, selector=replace(sel, matchers=tuple(sorted(sel.matchers, key=_matcher_str))))
    changes: dict[str, Any] = {}
    for f in fields(node):
        value = getattr(node, f.name)
        if isinstance(value, Expr):
            changes[f.name] = sorted_matchers(value)
        elif isinstance(value, tuple) and value and isinstance(value[0], Expr):
            changes[f.name] = tuple(sorted_matchers(v) for v in value)
    return replace(node, **changes) if changes else node


def _split(node: Expr) -> bool:
    return len(str(node)) > MAX_LINE


def _pretty(node: Expr, level: int) -> str:
    pad = _INDENT * level
    if isinstance(node, SubqueryExpr):
        # as Prometheus: an unsplit subquery gets no indent of its own
        if not _split(node):
            return str(node)
        inner = str(node.expr)
        return _pretty(node.expr, level) + str(node)[len(inner):]
    if isinstance(node, UnaryExpr):
        return pad + node.op + _pretty(node.expr, level).strip()
    if not _split(node) or isinstance(node, VectorSelector | MatrixSelector | NumberLiteral
                                      | StringLiteral):
        return pad + str(node)
    if isinstance(node, Aggregation):
        head = node.op
        if node.without:
            head += f" without ({', '.join(node.grouping)}) "
        elif node.grouping:
            head += f" by ({', '.join(node.grouping)}) "
        out = pad + head + "(\n"
        if node.param is not None:
            out += _pretty(node.param, level + 1) + ",\n"
        return out + _pretty(node.expr, level + 1) + "\n" + pad + ")"
    if isinstance(node, BinaryExpr):
        return (_pretty(node.lhs, level + 1) + "\n" + pad + _operator_line(node) + "\n"
                + _pretty(node.rhs, level + 1))
    if isinstance(node, Call):
        args = ",\n".join(_pretty(a, level + 1) for a in node.args)
        return f"{pad}{node.func}(\n{args}\n{pad})"
    if isinstance(node, ParenExpr):
        return f"{pad}(\n{_pretty(node.expr, level + 1)}\n{pad})"
    return pad + str(node)


def _operator_line(node: BinaryExpr) -> str:
    """``op bool on (a) group_left (b)``: what stands between the operands in ``str(node)``."""
    lhs, rhs = str(node.lhs), str(node.rhs)
    text = str(node)
    # str() writes "<lhs> <op...> <rhs>" (the parser's trees need no added parentheses)
    if text.startswith(lhs + " ") and text.endswith(" " + rhs):
        return text[len(lhs) + 1:len(text) - len(rhs) - 1]
    return node.op + (" bool" if node.return_bool else "")


# -- the syntax tree as JSON ---------------------------------------------------------------
def _fixed(value: float) -> str:
    """Go's ``strconv.FormatFloat(v, 'f', -1, 64)``: shortest digits, never an exponent."""
    if value != value:
        return "NaN"
    if value in (math.inf, -math.inf):
        return "+Inf" if value > 0 else "-Inf"
    text = format(Decimal(repr(float(value))), "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "-0" if text == "0" and math.copysign(1.0, value) < 0 else text


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _at(at: float | str | None) -> tuple[int | None, str | None]:
    """(``timestamp`` in ms, ``startOrEnd``) of an ``@`` modifier."""
    if isinstance(at, str):
        return None, at
    return (None if at is None else _ms(at)), None


def _matchers(sel: VectorSelector) -> list[dict[str, str]]:
    return [{"name": m.name, "value": m.value, "type": m.op} for m in sel.matchers]


def tree(node: Expr) -> dict[str, Any]:
    """``node`` as Prometheus's ``parse_query`` answers it."""
    from watchkeeper.query.promql.signatures import FUNCTIONS

    if isinstance(node, VectorSelector):
        ts, side = _at(node.at)
        return {"type": "vectorSelector", "name": node.name or "", "offset": _ms(node.offset),
                "matchers": _matchers(node), "timestamp": ts, "startOrEnd": side}
    if isinstance(node, MatrixSelector):
        sel = node.selector
        ts, side = _at(sel.at)
        return {"type": "matrixSelector", "name": sel.name or "", "range": _ms(node.range),
                "offset": _ms(sel.offset), "matchers": _matchers(sel), "timestamp": ts,
                "startOrEnd": side}
    if isinstance(node, SubqueryExpr):
        ts, side = _at(node.at)
        return {"type": "subquery", "expr": tree(node.expr), "range": _ms(node.range),
                "offset": _ms(node.offset), "step": _ms(node.step or 0), "timestamp": ts,
                "startOrEnd": side}
    if isinstance(node, Aggregation):
        return {"type": "aggregation", "op": node.op, "expr": tree(node.expr),
                "param": None if node.param is None else tree(node.param),
                "grouping": list(node.grouping), "without": node.without}
    if isinstance(node, BinaryExpr):
        vm = node.matching
        matching = None if vm is None else {
            "card": _CARD.get(vm.card, vm.card), "labels": list(vm.labels), "on": vm.on,
            "include": list(vm.include)}
        return {"type": "binaryExpr", "op": node.op, "lhs": tree(node.lhs), "rhs": tree(node.rhs),
                "matching": matching, "bool": node.return_bool}
    if isinstance(node, Call):
        sig = FUNCTIONS.get(node.func)
        func: dict[str, Any] = {"name": node.func}
        if sig is not None:
            func.update(argTypes=[str(t) for t in sig.arg_types], variadic=sig.variadic,
                        returnType=str(sig.return_type))
        return {"type": "call", "func": func, "args": [tree(a) for a in node.args]}
    if isinstance(node, NumberLiteral):
        return {"type": "numberLiteral", "val": _fixed(node.value)}
    if isinstance(node, StringLiteral):
        return {"type": "stringLiteral", "val": node.value}
    if isinstance(node, ParenExpr):
        return {"type": "parenExpr", "expr": tree(node.expr)}
    if isinstance(node, UnaryExpr):
        return {"type": "unaryExpr", "op": node.op, "expr": tree(node.expr)}
    raise TypeError(f"no JSON form for {type(node).__name__}")
