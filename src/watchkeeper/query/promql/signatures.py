"""The PromQL function table: argument types, result type and optional arguments.

Follows Prometheus 3.x (``promql/parser/functions.go``), plus ``holt_winters``
from 2.x (renamed ``double_exponential_smoothing`` in 3.0). The parser checks
calls against it; the evaluator dispatches on the name.

``variadic``: 0 means exactly ``len(arg_types)`` arguments; ``n > 0`` means the
last argument type may be given 0..n times (``round(v)`` / ``round(v, 1)``);
``-1`` means the last argument type may be repeated without limit, at least 0
times (``label_join(v, "dst", ",")`` / ``label_join(v, "dst", ",", "a", "b")``).
"""

from __future__ import annotations

from typing import NamedTuple

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
    ValueType,
    VectorSelector,
)

__all__ = [
    "AGGREGATIONS",
    "FUNCTIONS",
    "PARAM_AGGREGATIONS",
    "Signature",
    "describe_type",
    "value_type",
]

S = ValueType.SCALAR
V = ValueType.VECTOR
M = ValueType.MATRIX
STR = ValueType.STRING


class Signature(NamedTuple):
    arg_types: tuple[ValueType, ...]
    return_type: ValueType
    variadic: int = 0

    def arity(self) -> tuple[int, int | None]:
        """(minimum, maximum or None for unlimited) number of arguments."""
        n = len(self.arg_types)
        if self.variadic == 0:
            return n, n
        if self.variadic < 0:
            return n - 1, None
        return n - 1, n - 1 + self.variadic


def _same(names: str, sig: Signature) -> dict[str, Signature]:
    return dict.fromkeys(names.split(), sig)


FUNCTIONS: dict[str, Signature] = {
    # instant vector -> instant vector, element-wise
    **_same(
        "abs ceil floor exp ln log2 log10 sqrt sgn deg rad "
        "acos acosh asin asinh atan atanh cos cosh sin sinh tan tanh "
        "timestamp sort sort_desc absent "
        "histogram_count histogram_sum histogram_avg histogram_stddev histogram_stdvar",
        Signature((V,), V),
    ),
    # date functions: the vector is optional (default vector(time()))
    **_same(
        "minute hour day_of_month day_of_week day_of_year days_in_month month year",
        Signature((V,), V, 1),
    ),
    # range vector -> instant vector
    **_same(
        "rate irate increase delta idelta deriv changes resets "
        "avg_over_time min_over_time max_over_time sum_over_time count_over_time "
        "last_over_time stddev_over_time stdvar_over_time mad_over_time "
        "present_over_time absent_over_time",
        Signature((M,), V),
    ),
    "predict_linear": Signature((M, S), V),
    "quantile_over_time": Signature((S, M), V),
    "holt_winters": Signature((M, S, S), V),
    "double_exponential_smoothing": Signature((M, S, S), V),
    "clamp": Signature((V, S, S), V),
    "clamp_min": Signature((V, S), V),
    "clamp_max": Signature((V, S), V),
    "round": Signature((V, S), V, 1),
    "histogram_quantile": Signature((S, V), V),
    "histogram_fraction": Signature((S, S, V), V),
    "label_replace": Signature((V, STR, STR, STR, STR), V),
    "label_join": Signature((V, STR, STR, STR), V, -1),
    "sort_by_label": Signature((V, STR), V, -1),
    "sort_by_label_desc": Signature((V, STR), V, -1),
    "vector": Signature((S,), V),
    "scalar": Signature((V,), S),
    "time": Signature((), S),
    "pi": Signature((), S),
}

#: aggregation operators; those in PARAM_AGGREGATIONS take a parameter first
AGGREGATIONS: frozenset[str] = frozenset(
    "sum avg min max count stddev stdvar group topk bottomk quantile count_values".split()
)
#: the parameter type of each parameterised aggregation
PARAM_AGGREGATIONS: dict[str, ValueType] = {
    "topk": S,
    "bottomk": S,
    "quantile": S,
    "count_values": STR,
}

_DESCRIPTIONS = {S: "scalar", V: "instant vector", M: "range vector", STR: "string"}


def describe_type(t: ValueType) -> str:
    """The name Prometheus uses in messages: ``instant vector``, ``range vector``, ``scalar``, ``string``."""
    return _DESCRIPTIONS[t]


def value_type(expr: Expr) -> ValueType:
    """What ``expr`` evaluates to (for a well-typed tree as the parser returns it)."""
    if isinstance(expr, VectorSelector | Aggregation):
        return V
    if isinstance(expr, MatrixSelector | SubqueryExpr):
        return M
    if isinstance(expr, NumberLiteral):
        return S
    if isinstance(expr, StringLiteral):
        return STR
    if isinstance(expr, Call):
        sig = FUNCTIONS.get(expr.func)
        return sig.return_type if sig else V
    if isinstance(expr, BinaryExpr):
        if value_type(expr.lhs) == S and value_type(expr.rhs) == S:
            return S
        return V
    if isinstance(expr, UnaryExpr | ParenExpr):
        return value_type(expr.expr)
    raise TypeError(f"not a PromQL expression node: {expr!r}")
