"""The PromQL parser: trees, precedence, printing, parse-time checks and their messages.

``tests/fixtures/promql_parse/prometheus.json`` holds how a real Prometheus
(2.42) formats or rejects every expression of ``expressions.txt`` (recorded by
``record.py`` in the same directory); the parser must agree with it.
"""

from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.errors import QueryError
from watchkeeper.query.promql.ast import (
    BINARY_PRECEDENCE,
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
    VectorMatching,
    VectorSelector,
)
from watchkeeper.query.promql.parser import PromQLSyntaxError, parse
from watchkeeper.query.promql.signatures import (
    AGGREGATIONS,
    FUNCTIONS,
    Signature,
    value_type,
)
from watchkeeper.query.selector import Matcher

FIXTURES = Path(__file__).parent.parent / "fixtures" / "promql_parse"


def sel(name: str | None, *matchers: tuple[str, str, str], offset: float = 0.0,
        at: float | str | None = None) -> VectorSelector:
    ms = [Matcher.make(*m) for m in matchers]
    if name is not None:
        ms.insert(0, Matcher.make("__name__", "=", name))
    return VectorSelector(name, tuple(ms), offset, at)


def num(v: float) -> NumberLiteral:
    return NumberLiteral(v)


def vv(op: str, lhs: Expr, rhs: Expr, *, return_bool: bool = False,
       matching: VectorMatching | None = None) -> BinaryExpr:
    """A binary expression between two vectors (one-to-one unless told)."""
    if matching is None:
        matching = VectorMatching("many-to-many" if op in ("and", "or", "unless")
                                  else "one-to-one")
    return BinaryExpr(op, lhs, rhs, return_bool, matching)


def sv(op: str, lhs: Expr, rhs: Expr, *, return_bool: bool = False) -> BinaryExpr:
    """A binary expression with a scalar side."""
    return BinaryExpr(op, lhs, rhs, return_bool, None)


a, b, c, d, x = (sel(n) for n in "abcdx")


# ---- trees ------------------------------------------------------------------

@pytest.mark.parametrize("text,tree", [
    # precedence and associativity
    ("-2^2", UnaryExpr("-", sv("^", num(2), num(2)))),
    ("2^3^2", sv("^", num(2), sv("^", num(3), num(2)))),
    ("-2^-2", UnaryExpr("-", sv("^", num(2), num(-2)))),
    ("a - b - c", vv("-", vv("-", a, b), c)),
    ("a / b * c", vv("*", vv("/", a, b), c)),
    ("a + b * c", vv("+", a, vv("*", b, c))),
    ("(a + b) * c", vv("*", ParenExpr(vv("+", a, b)), c)),
    ("a or b and c", vv("or", a, vv("and", b, c))),
    ("a and b or c", vv("or", vv("and", a, b), c)),
    ("a unless b and c", vv("and", vv("unless", a, b), c)),
    ("a or b unless c", vv("or", a, vv("unless", b, c))),
    ("a > b == c", vv("==", vv(">", a, b), c)),
    ("a + b > c - d", vv(">", vv("+", a, b), vv("-", c, d))),
    ("a atan2 b * c", vv("*", vv("atan2", a, b), c)),
    ("-a * 2", sv("*", UnaryExpr("-", a), num(2))),
    ("2 * -a", sv("*", num(2), UnaryExpr("-", a))),
    ("-a ^ 2", UnaryExpr("-", sv("^", a, num(2)))),
    ("a ^ -b ^ c", vv("^", a, UnaryExpr("-", vv("^", b, c)))),
    ("a + -b * c", vv("+", a, vv("*", UnaryExpr("-", b), c))),
    ("--a", UnaryExpr("-", UnaryExpr("-", a))),
    ("+a", UnaryExpr("+", a)),
    ("- - 1", num(1)),
    ("-(1)", UnaryExpr("-", ParenExpr(num(1)))),
    ("1 + 2 * 3", sv("+", num(1), sv("*", num(2), num(3)))),
    ("sum(x) by (a) > bool 3",
     sv(">", Aggregation("sum", x, None, ("a",)), num(3), return_bool=True)),
    ("x AND y", vv("and", x, sel("y"))),
    # modifiers
    ("a * on(x, y) group_left(z) b",
     vv("*", a, b, matching=VectorMatching("many-to-one", True, ("x", "y"), ("z",)))),
    ("a * ignoring(x) group_right b",
     vv("*", a, b, matching=VectorMatching("one-to-many", False, ("x",), ()))),
    ("a == bool on() b", vv("==", a, b, return_bool=True,
                           matching=VectorMatching("one-to-one", True, (), ()))),
    ("a and on(x) b", vv("and", a, b, matching=VectorMatching("many-to-many", True, ("x",)))),
    ("a + on() 1", sv("+", a, num(1))),  # empty matching with a scalar is dropped
    # selectors
    ('foo{a="b", c!="d", e=~"f.*", g!~"h|i",}',
     sel("foo", ("a", "=", "b"), ("c", "!=", "d"), ("e", "=~", "f.*"), ("g", "!~", "h|i"))),
    ('{__name__=~"node_.*"}', sel(None, ("__name__", "=~", "node_.*"))),
    ('{"my.metric", "a.b"="c"}', sel("my.metric", ("a.b", "=", "c"))),
    ("foo offset -5m", sel("foo", offset=-300)),
    ("foo offset 1h30m @ 1700000000.1234", sel("foo", offset=5400, at=1700000000.123)),
    ("foo @ start()", sel("foo", at="start")),
    ("foo @ END()", sel("foo", at="end")),
    ("foo @ -1e3", sel("foo", at=-1000.0)),
    ("foo[5m] offset 1w", MatrixSelector(sel("foo", offset=604800), 300)),
    ("foo[90]", MatrixSelector(sel("foo"), 90)),
    ("foo[1.5]", MatrixSelector(sel("foo"), 1.5)),
    ("foo[5m:1m]", SubqueryExpr(sel("foo"), 300, 60)),
    ("foo[5m:]", SubqueryExpr(sel("foo"), 300, None)),
    ("foo offset 5m[10m:]", SubqueryExpr(sel("foo", offset=300), 600, None)),
    ("rate(foo[5m])[30m:1m] offset 5m @ end()",
     SubqueryExpr(Call("rate", (MatrixSelector(sel("foo"), 300),)), 1800, 60, 300, "end")),
    ("by + offset", vv("+", sel("by"), sel("offset"))),  # keywords as metric names
    ("sum", sel("sum")),
    ("count > 1", sv(">", sel("count"), num(1))),
    # numbers and strings
    ("0x1f", num(31)), ("1e3", num(1000)), (".5", num(0.5)), ("010", num(8)),
    ("-Inf", num(-math.inf)), ("+inf", num(math.inf)),
    (r'"a\tb"', StringLiteral("a\tb")), ("'x'", StringLiteral("x")), ("`\\d`", StringLiteral("\\d")),
    # aggregations
    ("sum by (a) (x)", Aggregation("sum", x, None, ("a",))),
    ("sum(x) without (a, b,)", Aggregation("sum", x, None, ("a", "b"), True)),
    ("SUM BY (on, by) (x)", Aggregation("sum", x, None, ("on", "by"))),
    ('count_values by (a) ("v", x)', Aggregation("count_values", x, StringLiteral("v"), ("a",))),
    ("topk(3, x)", Aggregation("topk", x, num(3))),
    ("quantile(0.9, x)", Aggregation("quantile", x, num(0.9))),
    # calls
    ("round(x)", Call("round", (x,))),
    ("round(x, 0.5)", Call("round", (x, num(0.5)))),
    ("minute()", Call("minute", ())),
    ('label_join(x, "d", ",")', Call("label_join", (x, StringLiteral("d"), StringLiteral(",")))),
    ("time() - 1", sv("-", Call("time", ()), num(1))),
    ("# comment\n x # trailing", x),
])
def test_trees(text: str, tree: Expr) -> None:
    assert parse(text) == tree


def test_nan_literal() -> None:
    tree = parse("NaN")
    assert isinstance(tree, NumberLiteral) and math.isnan(tree.value)


def test_positions_are_recorded() -> None:
    tree = parse("sum(rate(foo[5m])) > bool  -1")
    assert isinstance(tree, BinaryExpr)
    assert tree.pos == 0 and tree.rhs.pos == 27
    assert isinstance(tree.lhs, Aggregation)
    call = tree.lhs.expr
    assert isinstance(call, Call) and call.pos == 4 and call.args[0].pos == 9


# ---- printing ---------------------------------------------------------------

@pytest.mark.parametrize("text,printed", [
    ("sum(rate(x[5m])) by (a) > bool 3", "sum by (a) (rate(x[5m])) > bool 3"),
    ("foo{a='b',c=~\"d\"}", 'foo{a="b",c=~"d"}'),
    ("foo @ 100 offset 5m", "foo @ 100.000 offset 5m"),
    ("foo offset 5m @ 100", "foo @ 100.000 offset 5m"),
    ("foo[1w2d]", "foo[9d]"),
    ("foo[90s]", "foo[1m30s]"),
    ("foo[86400]", "foo[1d]"),
    ("a * on(x) group_left b", "a * on (x) group_left () b"),
    ("a AND b", "a and b"),
    ("topk(5, x) by (a)", "topk by (a) (5, x)"),
    ("sum by () (x)", "sum(x)"),
    ("sum without () (x)", "sum without () (x)"),
    ("Inf + -inf + NaN", "+Inf + -Inf + NaN"),
    ("1e3 + 0x10 + 1e-5 + 1e21", "1000 + 16 + 1e-05 + 1e+21"),
    ('{"my.metric", "a.b"="c"}', '{"my.metric","a.b"="c"}'),
    ('{"on"}', '{"on"}'),
    ('{__name__="on"}', '{__name__="on"}'),
    ("x @ start() offset -1w", "x @ start() offset -1w"),
    ("(-2) ^ 2", "(-2) ^ 2"),
    ('"\\u00e9\\x00"', '"é\\x00"'),
])
def test_printing(text: str, printed: str) -> None:
    tree = parse(text)
    assert str(tree) == printed
    assert parse(printed) == tree


def test_printing_adds_parentheses_a_built_tree_needs() -> None:
    tree = vv("*", vv("+", a, b), vv("-", c, d))
    assert str(tree) == "(a + b) * (c - d)"
    assert str(vv("^", vv("^", a, b), c)) == "(a ^ b) ^ c"
    assert str(vv("^", UnaryExpr("-", a), b)) == "(-a) ^ b"
    assert str(sv("^", num(-2), num(2))) == "(-2) ^ 2"
    assert str(UnaryExpr("-", vv("+", a, b))) == "-(a + b)"
    assert str(SubqueryExpr(vv("+", a, b), 300, None)) == "(a + b)[5m:]"


# ---- errors -----------------------------------------------------------------

@pytest.mark.parametrize("text,message", [
    ("rate(x[5m]) +", "unexpected end of input at column 14"),
    ("", "no expression found in input at column 1"),
    ("  # nothing", "no expression found in input at column 1"),
    ("foo(", "unclosed left parenthesis at column 5"),
    ("(foo", "unclosed left parenthesis at column 5"),
    ("foo[5m", "unclosed left bracket at column 7"),
    ("sum(rate(x[5m])", "unclosed left parenthesis at column 16"),
    ("foo()", 'unknown function with name "foo" at column 1'),
    ("Rate(x[5m])", 'unknown function with name "Rate" at column 1'),
    ("rate(foo)",
     'expected type range vector in call to function "rate", got instant vector at column 6'),
    ("rate(foo[5m], 1)", 'expected 1 argument(s) in call to "rate", got 2 at column 1'),
    ('label_join(foo, "a")',
     'expected at least 3 argument(s) in call to "label_join", got 2 at column 1'),
    ("round(foo, 1, 2)", 'expected at most 2 argument(s) in call to "round", got 3 at column 1'),
    ("time(1)", 'expected 0 argument(s) in call to "time", got 1 at column 1'),
    ('vector("a")', 'expected type scalar in call to function "vector", got string at column 8'),
    ('label_replace(x, "a", "b", "c", 1)',
     'expected type string in call to function "label_replace", got scalar at column 33'),
    ("rate(foo[5m],)", "trailing commas not allowed in function call args at column 13"),
    ("sum()", "no arguments for aggregate expression provided at column 1"),
    ("sum(foo, bar)", "wrong number of arguments for aggregate expression provided, "
                      "expected 1, got 2 at column 1"),
    ("topk(foo)", "wrong number of arguments for aggregate expression provided, "
                  "expected 2, got 1 at column 1"),
    ('topk("a", foo)', "expected type scalar in aggregation parameter, got string at column 6"),
    ("count_values(1, foo)",
     "expected type string in aggregation parameter, got scalar at column 14"),
    ("sum(foo[5m])",
     "expected type instant vector in aggregation expression, got range vector at column 5"),
    ("sum by (a) (foo) by (b)", "aggregation must only contain one grouping clause at column 18"),
    ("sum by (a (foo)", 'unexpected "(" in grouping opts, expected "," or ")" at column 11'),
    ("sum by (1) (foo)", 'unexpected number "1" in grouping opts, expected label at column 9'),
    ("{}", "vector selector must contain at least one non-empty matcher at column 1"),
    ('{a=~".*", b!="x"}',
     "vector selector must contain at least one non-empty matcher at column 1"),
    ('foo{__name__="bar"}', 'metric name must not be set twice: "foo" or "bar" at column 1'),
    ('{"a", "b"}', 'metric name must not be set twice: "a" or "b" at column 7'),
    ('foo{a="b"', "unexpected end of input inside braces at column 10"),
    ("foo{a}", 'unexpected "}" in label matching, expected label matching operator at column 6'),
    ("foo{a=b}", 'unexpected identifier "b" in label matching, expected string at column 7'),
    ('foo{a="b" c="d"}',
     'unexpected identifier "c" in label matching, expected "," or "}" at column 11'),
    ('foo{a:b="c"}', 'invalid label name "a:b" at column 5'),
    ('foo{a=~"("}', "invalid regular expression '(' for label a: missing ), unterminated "
                    "subpattern at position 0 at column 8"),
    ("foo[-5m]", "unexpected <op:-> in range, expected duration at column 5"),
    ("foo[0s]", "duration must be greater than 0 at column 5"),
    ("foo[5m:0s]", "duration must be greater than 0 at column 8"),
    ("foo offset 0s", "duration must be greater than 0 at column 12"),
    ("foo offset", "unexpected end of input in offset, expected duration at column 11"),
    ("foo offset 1m offset 2m", "offset may not be set multiple times at column 15"),
    ("foo[5m] offset 1m offset 2m", "offset may not be set multiple times at column 19"),
    ("foo @ 1 @ 2", "@ <timestamp> may not be set multiple times at column 9"),
    ("foo @ Inf", "timestamp out of bounds for @ modifier: +Inf at column 7"),
    ("foo @ start", 'unexpected end of input in @ modifier, expected "(" at column 12'),
    ("foo offset 1m[5m]", "no offset modifiers allowed before range at column 14"),
    ("sum(foo) offset 5m", "offset modifier must be preceded by an instant vector selector or "
                           "range vector selector or a subquery at column 10"),
    ("time() @ 100", "@ modifier must be preceded by an instant vector selector or range "
                     "vector selector or a subquery at column 8"),
    ("(foo)[5m]", "ranges only allowed for vector selectors at column 6"),
    ("rate(foo[5m])[5m]", "ranges only allowed for vector selectors at column 14"),
    ("foo[5m][5m:]", "subquery is only allowed on instant vector, got range vector at column 1"),
    ("1 > 2", "comparisons between scalars must use BOOL modifier at column 3"),
    ("a + bool b", "bool modifier can only be used on comparison operators at column 3"),
    ("a and 1", 'set operator "and" not allowed in binary scalar expression at column 3'),
    ("1 + on(x) a", "vector matching only allowed between instant vectors at column 3"),
    ("a * group_left b", "unexpected <group_left> at column 5"),
    ("a + on(x) group_left(x) b",
     'label "x" must not occur in ON and GROUP clause at once at column 3'),
    ("a and on(x) group_left b", 'no grouping allowed for "and" operation at column 13'),
    ('"a" + 1', "binary expression must contain only scalar and instant vector types, "
                "got string at column 1"),
    ("1 + foo[5m]", "binary expression must contain only scalar and instant vector types, "
                    "got range vector at column 5"),
    ("-foo[5m]", "unary expression only allowed on expressions of type scalar or instant "
                 "vector, got range vector at column 1"),
    ("5m", 'unexpected duration "5m" at column 1'),
    ("foo bar", 'unexpected identifier "bar" at column 5'),
    ("foo +* bar", "unexpected <op:*> at column 6"),
    ("foo)", "unexpected right parenthesis ')' at column 4"),
    ("foo]", "unexpected right bracket ']' at column 4"),
    ("bool", "unexpected <bool> at column 1"),
    ("x\n  + (y", "unclosed left parenthesis at line 2, column 7"),
    ("sum by (a)\n  (rate(x[5m]) +)", 'unexpected ")" at line 2, column 17'),
])
def test_errors(text: str, message: str) -> None:
    with pytest.raises(QueryError) as err:
        parse(text)
    assert str(err.value) == message


def test_error_carries_position_and_column() -> None:
    with pytest.raises(PromQLSyntaxError) as err:
        parse("rate(x[5m]) +")
    assert (err.value.position, err.value.column, err.value.line) == (13, 14, 1)
    assert err.value.detail == "unexpected end of input"
    with pytest.raises(PromQLSyntaxError) as err:
        parse("sum(\n  rate(x)\n)")
    assert (err.value.position, err.value.line, err.value.column) == (12, 2, 8)


# ---- against a real Prometheus ---------------------------------------------

_RECORDED = json.loads((FIXTURES / "prometheus.json").read_text())["results"]


@pytest.mark.parametrize("rec", [r for r in _RECORDED if "formatted" in r],
                         ids=lambda r: r["expr"])
def test_prints_what_prometheus_prints(rec: dict[str, str]) -> None:
    tree = parse(rec["expr"])
    assert str(tree) == rec["formatted"]
    assert parse(rec["formatted"]) == tree


@pytest.mark.parametrize("rec", [r for r in _RECORDED if "error" in r], ids=lambda r: r["expr"])
def test_rejects_what_prometheus_rejects(rec: dict[str, str]) -> None:
    with pytest.raises(QueryError) as err:
        parse(rec["expr"])
    # the error names the same line as Prometheus's "LINE:COL: parse error: ..."
    m = re.search(r"(\d+):(\d+): parse error", rec["error"])
    assert m is not None
    assert isinstance(err.value, PromQLSyntaxError) and err.value.line == int(m.group(1))


def _rule_exprs() -> list[str]:
    data: Any = yaml.safe_load((FIXTURES / "community_rules.yaml").read_text())
    return [r["expr"] for g in data["groups"] for r in g["rules"]]


@pytest.mark.parametrize("expr", _rule_exprs())
def test_community_rule_expressions_parse_and_print_back(expr: str) -> None:
    tree = parse(expr)
    assert value_type(tree) == ValueType.VECTOR
    assert parse(str(tree)) == tree


def test_community_rule_corpus_size() -> None:
    assert len(_rule_exprs()) >= 50


def test_parsing_a_thousand_rule_expressions_is_fast() -> None:
    exprs = (_rule_exprs() * 20)[:1000]
    start = time.process_time()  # this process's CPU: other work on the machine does not count
    for e in exprs:
        parse(e)
    # typically ~0.05 s; the bound only catches an accidental quadratic slowdown
    assert time.process_time() - start < 1.0


# ---- signatures ---------------------------------------------------------------

ISSUE_FUNCTIONS = (
    "rate irate increase delta idelta deriv predict_linear changes resets avg_over_time "
    "min_over_time max_over_time sum_over_time count_over_time last_over_time "
    "quantile_over_time stddev_over_time absent absent_over_time abs ceil floor round clamp "
    "clamp_min clamp_max time timestamp vector scalar histogram_quantile label_replace "
    "label_join sort sort_desc"
).split()
EXTRA_FUNCTIONS = (
    "exp ln log2 log10 sqrt sgn minute hour day_of_month day_of_week day_of_year "
    "days_in_month month year sort_by_label present_over_time pi stdvar_over_time "
    "holt_winters double_exponential_smoothing mad_over_time"
).split()


@pytest.mark.parametrize("name", ISSUE_FUNCTIONS + EXTRA_FUNCTIONS)
def test_function_is_known(name: str) -> None:
    assert name in FUNCTIONS


@pytest.mark.parametrize("name,arity", [
    ("rate", (1, 1)), ("round", (1, 2)), ("minute", (0, 1)), ("label_join", (3, None)),
    ("sort_by_label", (1, None)), ("time", (0, 0)), ("clamp", (3, 3)),
])
def test_function_arity(name: str, arity: tuple[int, int | None]) -> None:
    assert FUNCTIONS[name].arity() == arity


def test_signature_shape() -> None:
    assert FUNCTIONS["quantile_over_time"] == Signature(
        (ValueType.SCALAR, ValueType.MATRIX), ValueType.VECTOR, 0)
    assert FUNCTIONS["scalar"].return_type == ValueType.SCALAR
    assert AGGREGATIONS == frozenset(
        "sum avg min max count stddev stdvar group topk bottomk quantile count_values".split())


@pytest.mark.parametrize("text,vt", [
    ("1", ValueType.SCALAR), ('"s"', ValueType.STRING), ("x", ValueType.VECTOR),
    ("x[5m]", ValueType.MATRIX), ("x[5m:]", ValueType.MATRIX), ("scalar(x)", ValueType.SCALAR),
    ("1 + time()", ValueType.SCALAR), ("1 + x", ValueType.VECTOR), ("-(1)", ValueType.SCALAR),
    ("sum(x)", ValueType.VECTOR), ("(x[5m])", ValueType.MATRIX),
])
def test_value_type(text: str, vt: ValueType) -> None:
    assert value_type(parse(text)) == vt


# ---- round trips over generated trees ------------------------------------------

_LABELS = st.sampled_from(["job", "instance", "mode", "le", "on", "by", "a.b", "__name__"])
_NAMES = st.sampled_from(["up", "node_load1", "job:rate5m:sum", "by", "sum", "offset",
                          "start", "on", "my.metric", "nan"])
_REGEXES = st.sampled_from([".*", "a|b", "x.+", "[0-9]+", "é\\d", "(a)(b)?"])
_MS = st.integers(min_value=1, max_value=10**11)
_ARITH = ["+", "-", "*", "/", "%", "^", "atan2"]
_COMPARE = ["==", "!=", "<", "<=", ">", ">="]
_SETS = ["and", "or", "unless"]


@st.composite
def _matcher(draw: st.DrawFn) -> Matcher:
    op = draw(st.sampled_from(["=", "!=", "=~", "!~"]))
    name = draw(_LABELS.filter(lambda n: n != "__name__"))
    value = draw(_REGEXES if "~" in op else st.text(max_size=8))
    return Matcher.make(name, op, value)


@st.composite
def _selector(draw: st.DrawFn) -> VectorSelector:
    name = draw(st.none() | _NAMES)
    ms = draw(st.lists(_matcher(), max_size=3))
    if name is None:
        ms.insert(0, Matcher.make("job", "=", draw(st.text(min_size=1, max_size=5))))
    else:
        ms.insert(0, Matcher.make("__name__", "=", name))
    offset = draw(st.just(0.0) | _MS.map(lambda v: v / 1000) | _MS.map(lambda v: -v / 1000))
    at = draw(st.none() | st.sampled_from(["start", "end"])
              | st.integers(-(10**13), 10**13).map(lambda v: v / 1000))
    return VectorSelector(name, tuple(ms), offset, at)


def _canon(e: Expr) -> Expr:
    """Insert the ParenExpr nodes the printer's parentheses will produce when read back."""
    if isinstance(e, BinaryExpr):
        lhs, rhs = _canon(e.lhs), _canon(e.rhs)
        prec = BINARY_PRECEDENCE[e.op]
        right = e.op == "^"
        if (isinstance(lhs, BinaryExpr) and (BINARY_PRECEDENCE[lhs.op] < prec or (
                BINARY_PRECEDENCE[lhs.op] == prec and right))) or (right and (
                isinstance(lhs, UnaryExpr) or (isinstance(lhs, NumberLiteral)
                                               and str(lhs)[0] in "+-"))):
            lhs = ParenExpr(lhs)
        if isinstance(rhs, BinaryExpr) and (BINARY_PRECEDENCE[rhs.op] < prec or (
                BINARY_PRECEDENCE[rhs.op] == prec and not right)):
            rhs = ParenExpr(rhs)
        return BinaryExpr(e.op, lhs, rhs, e.return_bool, e.matching)
    if isinstance(e, UnaryExpr):
        inner = _canon(e.expr)
        if (isinstance(inner, BinaryExpr) and inner.op != "^") or isinstance(inner,
                                                                             NumberLiteral):
            inner = ParenExpr(inner)
        return UnaryExpr(e.op, inner)
    if isinstance(e, SubqueryExpr):
        inner = _canon(e.expr)
        if not isinstance(inner, VectorSelector | Call | Aggregation | ParenExpr):
            inner = ParenExpr(inner)
        return SubqueryExpr(inner, e.range, e.step, e.offset, e.at)
    if isinstance(e, Call):
        return Call(e.func, tuple(_canon(arg) for arg in e.args))
    if isinstance(e, Aggregation):
        param = _canon(e.param) if e.param is not None else None
        return Aggregation(e.op, _canon(e.expr), param, e.grouping, e.without)
    if isinstance(e, ParenExpr):
        return ParenExpr(_canon(e.expr))
    return e


def _numbers() -> st.SearchStrategy[Expr]:
    return st.floats(allow_nan=False).map(NumberLiteral)


@st.composite
def _matrix(draw: st.DrawFn, depth: int) -> Expr:
    rng = draw(_MS) / 1000
    if depth == 0 or draw(st.booleans()):
        return MatrixSelector(draw(_selector()), rng)
    inner = draw(_vector(depth - 1))
    step = draw(st.none() | _MS.map(lambda v: v / 1000))
    offset = draw(st.just(0.0) | _MS.map(lambda v: -v / 1000))
    at = draw(st.none() | st.sampled_from(["start", "end"]))
    return SubqueryExpr(inner, rng, step, offset, at)


@st.composite
def _scalar(draw: st.DrawFn, depth: int) -> Expr:
    kind = draw(st.integers(0, 5 if depth else 1))
    if kind == 0:
        return draw(_numbers())
    if kind == 1:
        return Call(draw(st.sampled_from(["time", "pi"])), ())
    if kind == 2:
        return Call("scalar", (draw(_vector(depth - 1)),))
    if kind == 3:
        op = draw(st.sampled_from(_ARITH + _COMPARE))
        return BinaryExpr(op, draw(_scalar(depth - 1)), draw(_scalar(depth - 1)),
                          op in _COMPARE, None)
    if kind == 4:
        return ParenExpr(draw(_scalar(depth - 1)))
    inner = draw(_scalar(depth - 1))
    return UnaryExpr(draw(st.sampled_from("-+")), inner)


@st.composite
def _matching(draw: st.DrawFn, op: str) -> VectorMatching:
    on = draw(st.booleans())
    labels = tuple(draw(st.lists(_LABELS, max_size=3, unique=True)))
    if op in _SETS:
        return VectorMatching("many-to-many", on, labels, ())
    card = draw(st.sampled_from(["one-to-one", "many-to-one", "one-to-many"]))
    include: tuple[str, ...] = ()
    if card != "one-to-one":
        include = tuple(draw(st.lists(_LABELS, max_size=2, unique=True)
                             .filter(lambda ls: not on or not set(ls) & set(labels))))
    return VectorMatching(card, on, labels, include)


@st.composite
def _vector(draw: st.DrawFn, depth: int) -> Expr:
    kind = draw(st.integers(0, 8 if depth else 0))
    if kind == 0:
        return draw(_selector())
    if kind == 1:
        fn = draw(st.sampled_from(["rate", "increase", "avg_over_time", "changes"]))
        return Call(fn, (draw(_matrix(depth - 1)),))
    if kind == 2:
        v = draw(_vector(depth - 1))
        choice = draw(st.integers(0, 4))
        if choice == 0:
            return Call("abs", (v,))
        if choice == 1:
            return Call("round", (v, draw(_scalar(depth - 1))))
        if choice == 2:
            return Call("histogram_quantile", (draw(_scalar(depth - 1)), v))
        if choice == 3:
            return Call("predict_linear", (draw(_matrix(depth - 1)), draw(_scalar(depth - 1))))
        strs = tuple(StringLiteral(draw(st.text(max_size=6))) for _ in range(4))
        return Call("label_replace", (v, *strs))
    if kind == 3:
        op = draw(st.sampled_from(sorted(AGGREGATIONS)))
        param: Expr | None = None
        if op == "count_values":
            param = StringLiteral(draw(st.text(max_size=6)))
        elif op in ("topk", "bottomk", "quantile"):
            param = draw(_scalar(depth - 1))
        grouping = tuple(draw(st.lists(_LABELS, max_size=3)))
        return Aggregation(op, draw(_vector(depth - 1)), param, grouping, draw(st.booleans()))
    if kind == 4:
        op = draw(st.sampled_from(_ARITH + _COMPARE + _SETS))
        return BinaryExpr(op, draw(_vector(depth - 1)), draw(_vector(depth - 1)),
                          op in _COMPARE and draw(st.booleans()), draw(_matching(op)))
    if kind == 5:
        op = draw(st.sampled_from(_ARITH + _COMPARE))
        s, v = draw(_scalar(depth - 1)), draw(_vector(depth - 1))
        lhs, rhs = (s, v) if draw(st.booleans()) else (v, s)
        return BinaryExpr(op, lhs, rhs, op in _COMPARE and draw(st.booleans()), None)
    if kind == 6:
        return UnaryExpr(draw(st.sampled_from("-+")), draw(_vector(depth - 1)))
    if kind == 7:
        return ParenExpr(draw(_vector(depth - 1)))
    return Call("vector", (draw(_scalar(depth - 1)),))


_ANY = st.integers(0, 3).flatmap(
    lambda depth: _vector(depth) | _scalar(depth) | _matrix(depth)
    | st.text(max_size=8).map(StringLiteral))


@settings(max_examples=400, deadline=None)
@given(_ANY)
def test_generated_trees_print_and_parse_back(tree: Expr) -> None:
    canon = _canon(tree)
    text = str(tree)
    assert str(canon) == text
    parsed = parse(text)
    assert parsed == canon, text
    assert str(parsed) == text


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='ab(){}[]"=~!,+-*/^ 0123456789.:@sumbyoffsetrate\n#', max_size=30))
def test_arbitrary_text_parses_or_raises_a_query_error(text: str) -> None:
    try:
        tree = parse(text)
    except PromQLSyntaxError as exc:
        assert 0 <= exc.position <= len(text)
        assert str(exc).endswith(f"column {exc.column}")
    else:
        assert parse(str(tree)) == tree
