"""The PromQL parser: text -> :mod:`~watchkeeper.query.promql.ast` tree, type-checked.

A recursive-descent parser with precedence climbing for the binary operators,
following Prometheus 3.x's grammar (``promql/parser/generated_parser.y``):

* precedence, loosest first: ``or``; ``and unless``; ``== != <= < >= >``;
  ``+ -``; ``* / % atan2``; ``^`` (right-associative). Unary ``-``/``+`` bind
  like ``*`` on their left and looser than ``^`` on their right, so
  ``-2 ^ 2`` is ``-(2 ^ 2)``; a sign directly on a number is folded into it.
* ``[range]``, ``[range:step]``, ``offset`` and ``@`` bind tightest, to the
  operand just before them.
* keywords and aggregation names are case-insensitive; function names are not.

The same checks as Prometheus's ``checkAST`` run while parsing (argument types
and counts, ``bool`` only on comparisons, set operators only between vectors,
...). Every error is a :class:`PromQLSyntaxError` whose message ends with the
column (``unexpected end of input at column 14``).
"""

from __future__ import annotations

import math
import re
from dataclasses import replace

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
from watchkeeper.query.promql.lexer import (
    DURATION,
    EOF,
    IDENT,
    NUMBER,
    OP,
    STRING,
    PromQLSyntaxError,
    Token,
    quote_string,
    tokenize,
)
from watchkeeper.query.promql.signatures import (
    AGGREGATIONS,
    FUNCTIONS,
    PARAM_AGGREGATIONS,
    describe_type,
    value_type,
)
from watchkeeper.query.selector import Matcher

__all__ = ["PromQLSyntaxError", "parse"]

_S = ValueType.SCALAR
_V = ValueType.VECTOR
_M = ValueType.MATRIX
_STR = ValueType.STRING

_KEYWORD_OPS = frozenset(("and", "or", "unless", "atan2"))
_COMPARISONS = frozenset(("==", "!=", "<=", "<", ">=", ">"))
_SET_OPS = frozenset(("and", "or", "unless"))
#: words that can never be a bare metric name (``by``, ``offset``, ``and``, ``sum``... can,
#: as in Prometheus: where an operand is expected they are read as one)
_NOT_A_NAME = frozenset(("on", "ignoring", "group_left", "group_right", "bool", "atan2"))
_KEYWORDS = frozenset(("by", "without", "on", "ignoring", "group_left", "group_right", "bool",
                       "offset", "start", "end"))
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_MATCH_OPS = frozenset(("=", "!=", "=~", "!~"))
_CLOSERS = {"(": ")", "[": "]", "{": "}"}
_OPENER_NAMES = {"(": "left parenthesis", "[": "left bracket", "{": "left brace"}


def parse(text: str) -> Expr:
    """Parse a PromQL expression into a type-checked tree.

    Raises PromQLSyntaxError (a QueryError) with ``.position``, ``.line`` and
    ``.column`` for syntax errors, unknown functions, wrong argument counts or
    types, and the other errors Prometheus reports when parsing.
    """
    return _Parser(text).parse()


def _describe(tok: Token) -> str:
    """A token the way Prometheus names it in ``unexpected ...`` messages."""
    if tok.kind == EOF:
        return "end of input"
    if tok.kind == IDENT:
        low = tok.text.lower()
        if low in _KEYWORD_OPS:
            return f"<op:{low}>"
        if low in AGGREGATIONS:
            return f"<aggr:{low}>"
        if low in _KEYWORDS:
            return f"<{low}>"
        kind = "metric identifier" if ":" in tok.text else "identifier"
        return f'{kind} "{tok.text}"'
    if tok.kind == NUMBER:
        return f'number "{tok.text}"'
    if tok.kind == DURATION:
        return f'duration "{tok.text}"'
    if tok.kind == STRING:
        return f"string {quote_string(tok.text)}"
    if tok.text in BINARY_PRECEDENCE or tok.text in ("=", "=~", "!~"):
        return f"<op:{tok.text}>"
    return f'"{tok.text}"'


class _Parser:
    __slots__ = ("text", "toks", "i", "open")

    def __init__(self, text: str) -> None:
        self.text = text
        self.toks = tokenize(text)
        self.i = 0
        self.open: list[Token] = []  # the brackets opened and not yet closed

    # ---- helpers ----------------------------------------------------------

    def error(self, detail: str, pos: int) -> PromQLSyntaxError:
        return PromQLSyntaxError(detail, self.text, pos)

    def unexpected(self, tok: Token, context: str = "", expected: str = "") -> PromQLSyntaxError:
        if tok.kind == EOF and self.open and not context:
            opener = self.open[-1]
            return self.error(f"unclosed {_OPENER_NAMES[opener.text]}", tok.pos)
        msg = f"unexpected {_describe(tok)}"
        if context:
            msg += f" {context}"
        if expected:
            msg += f", expected {expected}"
        return self.error(msg, tok.pos)

    def peek(self) -> Token:
        return self.toks[self.i]

    def next(self) -> Token:
        tok = self.toks[self.i]
        if tok.kind != EOF:
            self.i += 1
        return tok

    def is_op(self, text: str) -> bool:
        tok = self.toks[self.i]
        return tok.kind == OP and tok.text == text

    def is_word(self, word: str) -> bool:
        tok = self.toks[self.i]
        return tok.kind == IDENT and tok.text.lower() == word

    def open_(self, text: str, context: str = "") -> Token:
        tok = self.next()
        if tok.kind != OP or tok.text != text:
            raise self.unexpected(tok, context, f'"{text}"')
        self.open.append(tok)
        return tok

    def close(self, context: str = "", expected: str = "") -> Token:
        opener = self.open[-1]
        want = _CLOSERS[opener.text]
        tok = self.next()
        if tok.kind == OP and tok.text == want:
            self.open.pop()
            return tok
        if tok.kind == EOF:
            raise self.error(f"unclosed {_OPENER_NAMES[opener.text]}", tok.pos)
        raise self.unexpected(tok, context, expected or f'"{want}"')

    def expect_type(self, expr: Expr, want: ValueType, context: str) -> None:
        got = value_type(expr)
        if got != want:
            raise self.error(
                f"expected type {describe_type(want)} in {context}, got {describe_type(got)}",
                expr.pos)

    # ---- grammar ----------------------------------------------------------

    def parse(self) -> Expr:
        if self.peek().kind == EOF:
            raise self.error("no expression found in input", 0)
        expr = self.expr(0)
        tok = self.peek()
        if tok.kind != EOF:
            if tok.kind == OP and tok.text in ")]}":
                names = {")": "right parenthesis", "]": "right bracket", "}": "right brace"}
                raise self.error(f"unexpected {names[tok.text]} {tok.text!r}", tok.pos)
            raise self.unexpected(tok)
        return expr

    def binary_op(self) -> str | None:
        """The binary operator at the cursor, lower-cased, or None."""
        tok = self.toks[self.i]
        if tok.kind == OP:
            return tok.text if tok.text in BINARY_PRECEDENCE else None
        if tok.kind == IDENT:
            low = tok.text.lower()
            return low if low in _KEYWORD_OPS else None
        return None

    def expr(self, min_prec: int) -> Expr:
        lhs = self.unary()
        while True:
            op = self.binary_op()
            if op is None:
                return lhs
            prec = BINARY_PRECEDENCE[op]
            if prec < min_prec:
                return lhs
            op_tok = self.next()
            return_bool, matching = self.bin_modifiers(op, op_tok)
            rhs = self.expr(prec if op == "^" else prec + 1)
            lhs = self.check_binary(op, op_tok, lhs, rhs, return_bool, matching)

    def bin_modifiers(self, op: str, op_tok: Token) -> tuple[bool, VectorMatching | None]:
        return_bool = False
        if self.is_word("bool"):
            self.next()
            if op not in _COMPARISONS:
                raise self.error("bool modifier can only be used on comparison operators",
                                 op_tok.pos)
            return_bool = True
        if not (self.is_word("on") or self.is_word("ignoring")):
            if self.is_word("group_left") or self.is_word("group_right"):
                raise self.unexpected(self.peek())
            return return_bool, None
        on = self.next().text.lower() == "on"
        labels = self.label_list("in grouping opts")
        card = "one-to-one"
        include: tuple[str, ...] = ()
        if self.is_word("group_left") or self.is_word("group_right"):
            tok = self.next()
            if op in _SET_OPS:
                raise self.error(f'no grouping allowed for "{op}" operation', tok.pos)
            card = "many-to-one" if tok.text.lower() == "group_left" else "one-to-many"
            if self.is_op("("):
                include = self.label_list("in grouping opts")
            if on:
                for name in include:
                    if name in labels:
                        raise self.error(
                            f'label "{name}" must not occur in ON and GROUP clause at once',
                            op_tok.pos)
        return return_bool, VectorMatching(card=card, on=on, labels=labels, include=include)

    def check_binary(self, op: str, op_tok: Token, lhs: Expr, rhs: Expr, return_bool: bool,
                     matching: VectorMatching | None) -> Expr:
        lt = value_type(lhs)
        rt = value_type(rhs)
        for side, t in ((lhs, lt), (rhs, rt)):
            if t not in (_S, _V):
                raise self.error("binary expression must contain only scalar and instant "
                                 f"vector types, got {describe_type(t)}", side.pos)
        if op in _COMPARISONS and not return_bool and lt == _S and rt == _S:
            raise self.error("comparisons between scalars must use BOOL modifier", op_tok.pos)
        if lt == _S or rt == _S:
            if op in _SET_OPS:
                raise self.error(f'set operator "{op}" not allowed in binary scalar expression',
                                 op_tok.pos)
            if matching is not None and matching.labels:
                raise self.error("vector matching only allowed between instant vectors",
                                 op_tok.pos)
            matching = None
        elif matching is None:
            matching = VectorMatching(card="many-to-many" if op in _SET_OPS else "one-to-one")
        elif op in _SET_OPS:
            matching = replace(matching, card="many-to-many")
        return BinaryExpr(op, lhs, rhs, return_bool, matching, pos=lhs.pos)

    def unary(self) -> Expr:
        tok = self.peek()
        if tok.kind == OP and tok.text in ("-", "+"):
            self.next()
            operand = self.expr(BINARY_PRECEDENCE["^"])
            if isinstance(operand, NumberLiteral):
                value = -operand.value if tok.text == "-" else operand.value
                return NumberLiteral(value, pos=tok.pos)
            t = value_type(operand)
            if t not in (_S, _V):
                raise self.error("unary expression only allowed on expressions of type scalar "
                                 f"or instant vector, got {describe_type(t)}", tok.pos)
            return UnaryExpr(tok.text, operand, pos=tok.pos)
        return self.postfix(self.primary())

    def primary(self) -> Expr:
        tok = self.next()
        kind = tok.kind
        if kind == IDENT:
            low = tok.text.lower()
            if low in AGGREGATIONS and (self.is_op("(") or self.is_word("by")
                                        or self.is_word("without")):
                return self.aggregation(tok, low)
            if low in ("inf", "nan"):
                return NumberLiteral(math.inf if low == "inf" else math.nan, pos=tok.pos)
            if low in _NOT_A_NAME:
                raise self.unexpected(tok)
            if self.is_op("("):
                return self.call(tok)
            return self.selector(tok.text, tok.pos)
        if kind == NUMBER:
            assert isinstance(tok.value, float)
            return NumberLiteral(tok.value, pos=tok.pos)
        if kind == STRING:
            assert isinstance(tok.value, str)
            return StringLiteral(tok.value, pos=tok.pos)
        if kind == OP:
            if tok.text == "(":
                self.open.append(tok)
                inner = self.expr(0)
                self.close("in parenthesized expression", '")" or an operator')
                return ParenExpr(inner, pos=tok.pos)
            if tok.text == "{":
                self.i -= 1
                return self.selector(None, tok.pos)
        raise self.unexpected(tok)

    # ---- selectors --------------------------------------------------------

    def selector(self, name: str | None, pos: int) -> VectorSelector:
        matchers: list[Matcher] = []
        if self.is_op("{"):
            self.open.append(self.next())
            while not self.is_op("}"):
                tok = self.next()
                if tok.kind == STRING and not (self.peek().kind == OP
                                               and self.peek().text in _MATCH_OPS):
                    # a quoted metric name (Prometheus 3): {"my.metric", a="b"}
                    assert isinstance(tok.value, str)
                    if name is not None:
                        raise self.error(f'metric name must not be set twice: "{name}" or '
                                         f'"{tok.value}"', tok.pos)
                    name = tok.value
                elif tok.kind == IDENT or tok.kind == STRING:
                    label = tok.text if tok.kind == IDENT else str(tok.value)
                    if tok.kind == IDENT and not _LABEL_RE.match(label):
                        raise self.error(f'invalid label name "{label}"', tok.pos)
                    op_tok = self.next()
                    if op_tok.kind != OP or op_tok.text not in _MATCH_OPS:
                        if op_tok.kind == EOF:
                            raise self.error("unexpected end of input inside braces",
                                             op_tok.pos)
                        raise self.unexpected(op_tok, "in label matching",
                                              "label matching operator")
                    val_tok = self.next()
                    if val_tok.kind != STRING:
                        if val_tok.kind == EOF:
                            raise self.error("unexpected end of input inside braces",
                                             val_tok.pos)
                        raise self.unexpected(val_tok, "in label matching", "string")
                    assert isinstance(val_tok.value, str)
                    try:
                        matchers.append(Matcher.make(label, op_tok.text, val_tok.value))
                    except QueryError as exc:
                        raise self.error(exc.message, val_tok.pos) from None
                elif tok.kind == EOF:
                    raise self.error("unexpected end of input inside braces", tok.pos)
                else:
                    raise self.unexpected(tok, "in label matching", 'label name or "}"')
                if self.is_op(","):
                    self.next()
                elif not self.is_op("}"):
                    tok = self.peek()
                    if tok.kind == EOF:
                        raise self.error("unexpected end of input inside braces", tok.pos)
                    raise self.unexpected(tok, "in label matching", '"," or "}"')
            self.next()
            self.open.pop()
        if name is not None:
            for m in matchers:
                if m.name == "__name__":
                    raise self.error(
                        f'metric name must not be set twice: "{name}" or "{m.value}"', pos)
            matchers.insert(0, Matcher.make("__name__", "=", name))
        if not any(not m.matches("") for m in matchers):
            raise self.error("vector selector must contain at least one non-empty matcher", pos)
        return VectorSelector(name, tuple(matchers), pos=pos)

    def postfix(self, expr: Expr) -> Expr:
        """Apply ``[range]``, ``[range:step]``, ``offset`` and ``@`` following an operand."""
        while True:
            tok = self.peek()
            if tok.kind == OP and tok.text == "[":
                expr = self.range_or_subquery(expr)
            elif tok.kind == IDENT and tok.text.lower() == "offset":
                self.next()
                offset = self.duration(signed=True, context="offset")
                expr = self.set_modifier(expr, tok, offset=offset)
            elif tok.kind == OP and tok.text == "@":
                self.next()
                expr = self.set_modifier(expr, tok, at=self.at_value())
            else:
                return expr

    def range_or_subquery(self, expr: Expr) -> Expr:
        bracket = self.next()
        self.open.append(bracket)
        rng = self.duration(signed=False, context="range")
        if self.is_op(":"):
            self.next()
            step: float | None = None
            if not self.is_op("]"):
                step = self.duration(signed=False, context="subquery step")
            self.close("in subquery selector", '"]"')
            t = value_type(expr)
            if t != _V:
                raise self.error(
                    f"subquery is only allowed on instant vector, got {describe_type(t)}",
                    expr.pos)
            return SubqueryExpr(expr, rng, step, pos=expr.pos)
        self.close("in range selector", '"]" or ":"')
        if not isinstance(expr, VectorSelector):
            raise self.error("ranges only allowed for vector selectors", bracket.pos)
        if expr.offset or expr.at is not None:
            raise self.error("no offset modifiers allowed before range", bracket.pos)
        return MatrixSelector(expr, rng, pos=expr.pos)

    def duration(self, *, signed: bool, context: str) -> float:
        """A duration (``5m``, ``1h30m``) or a number of seconds; in seconds."""
        sign = 1.0
        tok = self.next()
        if signed and tok.kind == OP and tok.text in ("-", "+"):
            sign = -1.0 if tok.text == "-" else 1.0
            tok = self.next()
        if tok.kind == DURATION:
            assert isinstance(tok.value, int)
            ms = tok.value
        elif tok.kind == NUMBER:  # seconds, as Prometheus 3 allows
            assert isinstance(tok.value, float)
            if not math.isfinite(tok.value) or tok.value > 9e15:
                raise self.error(f"invalid duration {tok.text!r} in {context}", tok.pos)
            ms = round(tok.value * 1000)
        else:
            raise self.unexpected(tok, f"in {context}", "duration")
        if ms <= 0:
            raise self.error("duration must be greater than 0", tok.pos)
        return sign * ms / 1000

    def at_value(self) -> float | str:
        tok = self.next()
        if tok.kind == IDENT and tok.text.lower() in ("start", "end"):
            self.open_("(", "in @ modifier")
            self.close("in @ modifier", '")"')
            return tok.text.lower()
        sign = 1.0
        if tok.kind == OP and tok.text in ("-", "+"):
            sign = -1.0 if tok.text == "-" else 1.0
            tok = self.next()
        if tok.kind == IDENT and tok.text.lower() in ("inf", "nan"):
            raise self.error("timestamp out of bounds for @ modifier: "
                             f"{'NaN' if tok.text.lower() == 'nan' else '+Inf'}", tok.pos)
        if tok.kind != NUMBER:
            raise self.unexpected(tok, "in @ modifier", 'timestamp, "start()" or "end()"')
        assert isinstance(tok.value, float)
        value = sign * tok.value
        if not math.isfinite(value) or abs(value) > 9.2e15:
            raise self.error("timestamp out of bounds for @ modifier", tok.pos)
        return round(value * 1000) / 1000

    def set_modifier(self, expr: Expr, tok: Token, *, offset: float | None = None,
                     at: float | str | None = None) -> Expr:
        what = "offset" if offset is not None else "@"
        target: VectorSelector | SubqueryExpr
        if isinstance(expr, MatrixSelector):
            target = expr.selector
        elif isinstance(expr, VectorSelector | SubqueryExpr):
            target = expr
        else:
            kind = "offset" if what == "offset" else "@"
            raise self.error(f"{kind} modifier must be preceded by an instant vector selector "
                             "or range vector selector or a subquery", tok.pos)
        if offset is not None:
            if target.offset:
                raise self.error("offset may not be set multiple times", tok.pos)
            target = replace(target, offset=offset)
        else:
            if target.at is not None:
                raise self.error("@ <timestamp> may not be set multiple times", tok.pos)
            target = replace(target, at=at)
        if isinstance(expr, MatrixSelector):
            assert isinstance(target, VectorSelector)
            return MatrixSelector(target, expr.range, pos=expr.pos)
        return target

    # ---- calls and aggregations -------------------------------------------

    def call_args(self, context: str) -> list[Expr]:
        self.open_("(", context)
        args: list[Expr] = []
        if self.is_op(")"):
            self.next()
            self.open.pop()
            return args
        while True:
            args.append(self.expr(0))
            if self.is_op(","):
                comma = self.next()
                if self.is_op(")"):
                    raise self.error(f"trailing commas not allowed in {context} args",
                                     comma.pos)
                continue
            self.close(context, '"," or ")"')
            return args

    def call(self, name_tok: Token) -> Expr:
        name = name_tok.text
        args = self.call_args("function call")
        sig = FUNCTIONS.get(name)
        if sig is None:
            raise self.error(f'unknown function with name "{name}"', name_tok.pos)
        lo, hi = sig.arity()
        n = len(args)
        if sig.variadic == 0 and n != lo:
            raise self.error(f'expected {lo} argument(s) in call to "{name}", got {n}',
                             name_tok.pos)
        if n < lo:
            raise self.error(f'expected at least {lo} argument(s) in call to "{name}", got {n}',
                             name_tok.pos)
        if hi is not None and n > hi:
            raise self.error(f'expected at most {hi} argument(s) in call to "{name}", got {n}',
                             name_tok.pos)
        last = len(sig.arg_types) - 1
        for k, arg in enumerate(args):
            self.expect_type(arg, sig.arg_types[min(k, last)], f'call to function "{name}"')
        return Call(name, tuple(args), pos=name_tok.pos)

    def grouping(self) -> tuple[bool, tuple[str, ...]]:
        without = self.next().text.lower() == "without"
        return without, self.label_list("in grouping opts")

    def label_list(self, context: str) -> tuple[str, ...]:
        """``(a, b, "c.d")``: label names, keywords allowed, trailing comma allowed."""
        self.open_("(", context)
        labels: list[str] = []
        while not self.is_op(")"):
            tok = self.next()
            if tok.kind == IDENT and _LABEL_RE.match(tok.text):
                labels.append(tok.text)
            elif tok.kind == STRING:
                assert isinstance(tok.value, str)
                labels.append(tok.value)
            elif tok.kind == EOF:
                raise self.unexpected(tok)
            else:
                raise self.unexpected(tok, context, "label")
            if self.is_op(","):
                self.next()
            elif not self.is_op(")"):
                tok = self.peek()
                if tok.kind == EOF:
                    raise self.unexpected(tok)
                raise self.unexpected(tok, context, '"," or ")"')
        self.next()
        self.open.pop()
        return tuple(labels)

    def aggregation(self, tok: Token, op: str) -> Expr:
        without = False
        grouping: tuple[str, ...] = ()
        have_grouping = False
        if self.is_word("by") or self.is_word("without"):
            without, grouping = self.grouping()
            have_grouping = True
        if not self.is_op("("):
            raise self.unexpected(self.peek(), "in aggregation", '"(" or "by"/"without"')
        args = self.call_args("aggregation")
        if self.is_word("by") or self.is_word("without"):
            if have_grouping:
                raise self.error("aggregation must only contain one grouping clause",
                                 self.peek().pos)
            without, grouping = self.grouping()
        if not args:
            raise self.error("no arguments for aggregate expression provided", tok.pos)
        param_type = PARAM_AGGREGATIONS.get(op)
        want = 2 if param_type is not None else 1
        if len(args) != want:
            raise self.error("wrong number of arguments for aggregate expression provided, "
                             f"expected {want}, got {len(args)}", tok.pos)
        param: Expr | None = None
        if param_type is not None:
            param = args[0]
            self.expect_type(param, param_type, "aggregation parameter")
        expr = args[-1]
        self.expect_type(expr, _V, "aggregation expression")
        return Aggregation(op, expr, param, grouping, without, pos=tok.pos)
