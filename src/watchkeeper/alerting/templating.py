"""Go ``text/template``, the subset Prometheus alert labels and annotations use.

Rule files written for Prometheus template their labels and annotations
with Go templates: ``{{ $labels.instance }}``, ``{{ $value | humanize }}``,
``{{ if gt $value 90.0 }}...{{ end }}``, ``{{ with query "up" }}...{{ end }}``.
This module parses and runs them with Prometheus's semantics: the data is
``.Labels``, ``.ExternalLabels``, ``.ExternalURL`` and ``.Value``, the variables
``$labels``, ``$externalLabels``, ``$externalURL`` and ``$value`` are
predefined, a missing map key is the empty string (``missingkey=zero``), and
numbers print as Go prints them (``1e+06``, ``0.5``, ``NaN``, ``+Inf``).

Supported: text with ``{{- -}}`` trim markers and ``{{/* comments */}}``;
pipelines with ``|``, parenthesised pipelines, ``$var :=``/``$var =``;
``if``/``else if``/``else``, ``range`` (with ``$i, $e :=`` and ``else``),
``with`` (and ``else with``), ``define``/``template``; Go's ``and or not eq ne
lt le gt ge len index print printf println html js urlquery``; Prometheus's
``humanize humanize1024 humanizeDuration humanizePercentage humanizeTimestamp
title toUpper toLower reReplaceAll match query first label value strvalue
sortByLabel args safeHtml pathPrefix externalURL graphLink tableLink
parseDuration toTime toDuration``.

Errors are :class:`TemplateError` (an InputError) whose message names the
line and column in the template text, as ``line 1, column 12: ...``.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any

from watchkeeper.errors import InputError

__all__ = [
    "QueryFunc",
    "QuerySample",
    "Template",
    "TemplateError",
    "expand",
    "go_format_float",
    "humanize",
    "humanize1024",
    "humanize_duration",
    "humanize_percentage",
    "humanize_timestamp",
    "parse_template",
]


class TemplateError(InputError):
    """A template does not parse, or fails while it runs. ``line``/``column`` are 1-based."""

    def __init__(self, message: str, *, line: int | None = None, column: int | None = None) -> None:
        self.line = line
        self.column = column
        where = ""
        if line is not None:
            where = f"line {line}, column {column}: " if column is not None else f"line {line}: "
        self.detail = message
        super().__init__(where + message)


@dataclass
class QuerySample:
    """One element of a ``query`` result, as templates see it: ``.Labels`` and ``.Value``."""

    Labels: dict[str, str]
    Value: float


QueryFunc = Callable[[str], Sequence[QuerySample]]
"""Runs a PromQL instant query at the rule's evaluation time (for ``{{ query "..." }}``)."""


# -- Go number formatting ---------------------------------------------------------------------

def _special(v: float) -> str | None:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return None


def go_format_float(v: float) -> str:
    """``fmt.Sprint(v)`` for a float64: the shortest digits, %e past exponent 6 or below -4."""
    s = _special(v)
    if s is not None:
        return s
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digits, exp = Decimal(repr(v)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exp, int)
    # value = 0.ds * 10**dp
    dp = len(digits) + exp
    x = dp - 1
    out = "-" if sign else ""
    if x < -4 or x >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{out}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{out}0.{'0' * -dp}{ds}"
    if dp >= len(ds):
        return out + ds + "0" * (dp - len(ds))
    return f"{out}{ds[:dp]}.{ds[dp:]}"


def _g4(v: float) -> str:
    """``fmt.Sprintf("%.4g", v)``."""
    s = _special(v)
    return s if s is not None else f"{v:.4g}"


def _to_float(v: Any, func: str) -> float:
    """Prometheus's convertToFloat: numbers, and strings that parse as numbers."""
    if isinstance(v, bool):
        raise TemplateError(f"error calling {func}: can't convert bool to float")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return _parse_go_float(v)
        except ValueError:
            raise TemplateError(f'error calling {func}: strconv.ParseFloat: parsing {_quote(v)}: '
                                "invalid syntax") from None
    raise TemplateError(f"error calling {func}: can't convert {_type_name(v)} to float")


def _parse_go_float(text: str) -> float:
    t = text.strip() if text != text.strip() else text
    low = t.lower().lstrip("+-")
    if low in ("inf", "infinity", "nan"):
        return float(t)
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?0[xX][0-9a-fA-F]+", t):
        raise ValueError(text)
    if "x" in t.lower():
        return float(int(t, 16))
    return float(t)


_SI_UP = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_SI_DOWN = ("m", "u", "n", "p", "f", "a", "z", "y")


def humanize(v: Any) -> str:
    """Prometheus's ``humanize``: SI prefixes, 4 significant digits (1234567 -> ``1.235M``)."""
    x = _to_float(v, "humanize")
    if x == 0 or math.isnan(x) or math.isinf(x):
        return _g4(x)
    prefix = ""
    if abs(x) >= 1:
        for p in _SI_UP:
            if abs(x) < 1000:
                break
            prefix = p
            x /= 1000
        return _g4(x) + prefix
    for p in _SI_DOWN:
        if abs(x) >= 1:
            break
        prefix = p
        x *= 1000
    return _g4(x) + prefix


def humanize1024(v: Any) -> str:
    """Prometheus's ``humanize1024``: binary prefixes (1048576 -> ``1Mi``)."""
    x = _to_float(v, "humanize1024")
    if abs(x) <= 1 or math.isnan(x) or math.isinf(x):
        return _g4(x)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(x) < 1024:
            break
        prefix = p
        x /= 1024
    return _g4(x) + prefix


def humanize_duration(v: Any) -> str:
    """Prometheus's ``humanizeDuration``: seconds as ``1d 2h 3m 4s``, ``1.234s``, ``100ms``."""
    x = _to_float(v, "humanizeDuration")
    if math.isnan(x) or math.isinf(x):
        return _g4(x)
    if x == 0:
        return _g4(x) + "s"
    if abs(x) >= 1:
        sign = ""
        if x < 0:
            sign, x = "-", -x
        whole = int(x)
        seconds, minutes = whole % 60, (whole // 60) % 60
        hours, days = (whole // 3600) % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(x)}s"
    prefix = ""
    for p in _SI_DOWN:
        if abs(x) >= 1:
            break
        prefix = p
        x *= 1000
    return f"{_g4(x)}{prefix}s"


def humanize_percentage(v: Any) -> str:
    """Prometheus's ``humanizePercentage``: a ratio as a percentage (0.1234567 -> ``12.35%``)."""
    return _g4(_to_float(v, "humanizePercentage") * 100) + "%"


def humanize_timestamp(v: Any) -> str:
    """Prometheus's ``humanizeTimestamp``: Unix seconds as Go prints a UTC time, to the millisecond."""
    x = _to_float(v, "humanizeTimestamp")
    if math.isnan(x) or math.isinf(x):
        return _g4(x)
    ns = x * 1e9
    if not -(2.0**63) <= ns < 2.0**63:
        raise TemplateError(f"error calling humanizeTimestamp: {go_format_float(x)} cannot be "
                            "represented as a nanoseconds timestamp since it overflows int64")
    ms = math.floor(int(ns) / 1_000_000) if int(ns) >= 0 else -((-int(ns)) // 1_000_000)
    return _go_time(ms)


def _go_time(ms: int) -> str:
    """``fmt.Sprint(time.Time)`` in UTC: ``2015-06-23 13:19:44.128 +0000 UTC``."""
    secs, frac = divmod(ms, 1000)
    dt = datetime.fromtimestamp(secs, UTC)
    text = dt.strftime("%Y-%m-%d %H:%M:%S")
    if frac:
        text += "." + f"{frac:03d}".rstrip("0")
    return text + " +0000 UTC"


def _go_duration(seconds: float) -> str:
    """``time.Duration.String()``: ``1h2m3s``, ``1.5s``, ``300ms``, ``0s``."""
    ns = int(round(seconds * 1e9))
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1000), ("ns", 1)):
            if ns >= size:
                return sign + _trim_frac(ns, size) + unit
    h, rest = divmod(ns, 3_600_000_000_000)
    m, rest = divmod(rest, 60_000_000_000)
    out = sign
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    return out + _trim_frac(rest, 1_000_000_000) + "s"


def _trim_frac(n: int, size: int) -> str:
    whole, frac = divmod(n, size)
    if not frac:
        return str(whole)
    width = len(str(size)) - 1
    return f"{whole}." + f"{frac:0{width}d}".rstrip("0")


# -- lexer ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Tok:
    kind: str  # text, ident, field, var, string, number, char, bool, nil, pipe, lparen, rparen,
    # declare, assign, comma, dot, keyword, end (of action)
    value: Any
    pos: int


_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
_NUM_RE = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|"
                     r"(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d+)?)(i)?")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class _Lexer:
    def __init__(self, text: str) -> None:
        self.text = text

    def where(self, pos: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return line, col

    def error(self, pos: int, message: str) -> TemplateError:
        line, col = self.where(pos)
        return TemplateError(message, line=line, column=col)

    def tokens(self) -> list[_Tok]:
        text = self.text
        out: list[_Tok] = []
        pos = 0
        trim_next = False
        while pos < len(text):
            start = text.find("{{", pos)
            chunk_end = len(text) if start < 0 else start
            chunk = text[pos:chunk_end]
            if trim_next:
                chunk = chunk.lstrip(" \t\r\n")
            trim_left = start >= 0 and text.startswith("{{- ", start) or (
                start >= 0 and len(text) > start + 3 and text[start + 2] == "-"
                and text[start + 3] in " \t\r\n")
            if trim_left:
                chunk = chunk.rstrip(" \t\r\n")
            if chunk:
                out.append(_Tok("text", chunk, pos))
            if start < 0:
                break
            pos = start + (4 if trim_left else 2)
            pos, trim_next = self._action(pos, start, out)
        return out

    def _action(self, pos: int, open_pos: int, out: list[_Tok]) -> tuple[int, bool]:
        text = self.text
        # comments: {{/* ... */}}
        rest = text[pos:].lstrip(" \t\r\n") if text[pos - 1] != "{" else text[pos:]
        if rest.startswith("/*"):
            cstart = len(text) - len(rest)
            cend = text.find("*/", cstart + 2)
            if cend < 0:
                raise self.error(open_pos, "unclosed comment")
            after = cend + 2
            m = re.compile(r"[ \t\r\n]*(-?)}}").match(text, after)
            if m is None or (m.group(1) and not text[after:m.start(1)]):
                raise self.error(open_pos, "comment ends before closing delimiter")
            return m.end(), bool(m.group(1))
        toks: list[_Tok] = [_Tok("open", None, open_pos)]
        depth = 0
        while True:
            if pos >= len(text):
                raise self.error(open_pos, "unclosed action")
            ch = text[pos]
            if ch in " \t\r":
                pos += 1
                continue
            if ch == "\n":
                if depth == 0:
                    # Go allows newlines inside actions only within parentheses (since 1.16 anywhere)
                    pos += 1
                    continue
                pos += 1
                continue
            if text.startswith("-}}", pos) and text[pos - 1] in " \t\r\n":
                toks.append(_Tok("end", None, pos))
                out.extend(toks)
                return pos + 3, True
            if text.startswith("}}", pos):
                toks.append(_Tok("end", None, pos))
                out.extend(toks)
                return pos + 2, False
            if ch == "|":
                toks.append(_Tok("pipe", None, pos))
                pos += 1
            elif ch == "(":
                depth += 1
                toks.append(_Tok("lparen", None, pos))
                pos += 1
            elif ch == ")":
                depth -= 1
                if depth < 0:
                    raise self.error(pos, "unexpected right paren")
                toks.append(_Tok("rparen", None, pos))
                pos += 1
            elif text.startswith(":=", pos):
                toks.append(_Tok("declare", None, pos))
                pos += 2
            elif ch == "=":
                toks.append(_Tok("assign", None, pos))
                pos += 1
            elif ch == ",":
                toks.append(_Tok("comma", None, pos))
                pos += 1
            elif ch in "\"`":
                value, end = self._string(pos)
                toks.append(_Tok("string", value, pos))
                pos = end
            elif ch == "'":
                m = re.compile(r"'(\\.|[^\\'])+'").match(text, pos)
                if not m:
                    raise self.error(pos, "unterminated character constant")
                value, _ = self._string_body(m.group(0)[1:-1], pos)
                toks.append(_Tok("number", ord(value), pos))
                pos = m.end()
            elif ch == "$":
                m = re.compile(r"\$[A-Za-z0-9_]*").match(text, pos)
                assert m is not None
                toks.append(_Tok("var", m.group(0), pos))
                pos = m.end()
            elif ch == "." and (pos + 1 >= len(text) or not text[pos + 1].isdigit()):
                m = _IDENT_RE.match(text, pos + 1)
                if m:
                    toks.append(_Tok("field", m.group(0), pos))
                    pos = m.end()
                else:
                    toks.append(_Tok("dot", None, pos))
                    pos += 1
            elif ch.isdigit() or ch == "." or (ch in "+-" and pos + 1 < len(text)
                                                and (text[pos + 1].isdigit() or text[pos + 1] == ".")):
                m = _NUM_RE.match(text, pos)
                if not m:
                    raise self.error(pos, f"bad number syntax: {text[pos:pos + 10]!r}")
                toks.append(_Tok("number", self._number(m.group(0), pos), pos))
                pos = m.end()
            elif ch.isalpha() or ch == "_":
                m = _IDENT_RE.match(text, pos)
                assert m is not None
                word = m.group(0)
                if word in ("true", "false"):
                    toks.append(_Tok("bool", word == "true", pos))
                elif word == "nil":
                    toks.append(_Tok("nil", None, pos))
                elif word in _KEYWORDS:
                    toks.append(_Tok("keyword", word, pos))
                else:
                    toks.append(_Tok("ident", word, pos))
                pos = m.end()
            else:
                raise self.error(pos, f"unrecognized character in action: {ch!r}")

    def _number(self, text: str, pos: int) -> int | float:
        clean = text.replace("_", "")
        if clean.endswith("i"):
            raise self.error(pos, "complex numbers are not supported")
        low = clean.lower().lstrip("+-")
        neg = clean.startswith("-")
        if low.startswith(("0x", "0b", "0o")):
            n = int(low, 0)
            return -n if neg else n
        if re.fullmatch(r"\d+", low):
            n = int(low, 8) if len(low) > 1 and low.startswith("0") else int(low)
            return -n if neg else n
        return float(clean)

    def _string(self, pos: int) -> tuple[str, int]:
        text = self.text
        if text[pos] == "`":
            end = text.find("`", pos + 1)
            if end < 0:
                raise self.error(pos, "unterminated raw quoted string")
            return text[pos + 1:end], end + 1
        i = pos + 1
        while i < len(text):
            if text[i] == "\\":
                i += 2
                continue
            if text[i] == '"':
                body, _ = self._string_body(text[pos + 1:i], pos)
                return body, i + 1
            if text[i] == "\n":
                break
            i += 1
        raise self.error(pos, "unterminated quoted string")

    def _string_body(self, body: str, pos: int) -> tuple[str, int]:
        out = []
        i = 0
        simple = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", '"': '"', "'": "'", "a": "\a",
                  "b": "\b", "f": "\f", "v": "\v"}
        while i < len(body):
            c = body[i]
            if c != "\\":
                out.append(c)
                i += 1
                continue
            nxt = body[i + 1] if i + 1 < len(body) else ""
            if nxt in simple:
                out.append(simple[nxt])
                i += 2
            elif nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", body[i + 2:i + 4]):
                out.append(chr(int(body[i + 2:i + 4], 16)))
                i += 4
            elif nxt == "u" and re.fullmatch(r"[0-9a-fA-F]{4}", body[i + 2:i + 6]):
                out.append(chr(int(body[i + 2:i + 6], 16)))
                i += 6
            else:
                raise self.error(pos, f"invalid escape sequence \\{nxt} in string")
        return "".join(out), i


# -- syntax tree --------------------------------------------------------------------------------

@dataclass
class _Text:
    text: str


@dataclass
class _Node:
    """An operand: kind is const, dot, field, var, ident (function), pipe (parenthesised)."""

    kind: str
    value: Any
    pos: int
    fields: tuple[str, ...] = ()


@dataclass
class _Command:
    args: list[_Node]
    pos: int


@dataclass
class _Pipe:
    decl: list[str]
    assign: bool  # ``=`` rather than ``:=``
    cmds: list[_Command]
    pos: int


@dataclass
class _Action:
    pipe: _Pipe


@dataclass
class _Branch:
    kind: str  # if, range, with
    pipe: _Pipe
    body: list[Any]
    else_: list[Any] | None


@dataclass
class _TemplateCall:
    name: str
    pipe: _Pipe | None
    pos: int


@dataclass
class _Loop:
    kind: str  # break / continue
    pos: int


class _Parser:
    def __init__(self, lexer: _Lexer, toks: list[_Tok], variables: Sequence[str] = ()) -> None:
        self.lexer = lexer
        self.toks = toks
        self.vars: list[str] = ["$", *variables]  # in scope here, as Go checks them when parsing
        self.i = 0
        self.defines: dict[str, list[Any]] = {}
        self.range_depth = 0

    def error(self, pos: int, message: str) -> TemplateError:
        return self.lexer.error(pos, message)

    def peek(self, k: int = 0) -> _Tok | None:
        j = self.i + k
        return self.toks[j] if j < len(self.toks) else None

    def take(self) -> _Tok:
        tok = self.toks[self.i]
        self.i += 1
        return tok

    def parse(self) -> list[Any]:
        body, stop = self.list_until(set())
        if stop is not None:
            raise self.error(stop.pos, f"unexpected {{{{{stop.value}}}}}")
        return body

    def list_until(self, stops: set[str]) -> tuple[list[Any], _Tok | None]:
        """Parse nodes until ``{{end}}``/``{{else}}`` (when in ``stops``); returns the keyword token."""
        out: list[Any] = []
        while self.i < len(self.toks):
            tok = self.take()
            if tok.kind == "text":
                out.append(_Text(tok.value))
                continue
            # tok is "open"
            nxt = self.peek()
            if nxt is None:
                raise self.error(tok.pos, "unclosed action")
            if nxt.kind == "keyword":
                kw = nxt.value
                if kw in ("end", "else"):
                    if kw not in stops:
                        raise self.error(nxt.pos, f"unexpected {{{{{kw}}}}}")
                    self.take()
                    if kw == "end":
                        self.expect_end()
                    return out, nxt
                self.take()
                out.append(self.keyword(kw, nxt))
                continue
            if nxt.kind == "end":
                raise self.error(nxt.pos, "missing value for command")
            pipe = self.pipeline(allow_decl=True)
            self.expect_end()
            out.append(_Action(pipe))
        if stops:
            raise self.error(len(self.lexer.text), "unexpected EOF")
        return out, None

    def expect_end(self) -> None:
        tok = self.peek()
        if tok is None or tok.kind != "end":
            pos = tok.pos if tok else len(self.lexer.text)
            what = _describe(tok)
            raise self.error(pos, f"unexpected {what} in command")
        self.take()

    def keyword(self, kw: str, tok: _Tok) -> Any:
        if kw in ("if", "with", "range"):
            return self.branch(kw, tok)
        if kw in ("break", "continue"):
            if self.range_depth == 0:
                raise self.error(tok.pos, f"{{{{{kw}}}}} outside {{{{range}}}}")
            self.expect_end()
            return _Loop(kw, tok.pos)
        if kw in ("define", "template", "block"):
            name_tok = self.peek()
            if name_tok is None or name_tok.kind != "string":
                raise self.error(tok.pos, f"expected a quoted template name in {{{{{kw}}}}}")
            self.take()
            if kw == "define":
                self.expect_end()
                saved, self.vars = self.vars, ["$"]
                body, _ = self.list_until({"end"})
                self.vars = saved
                self.defines[name_tok.value] = body
                return _Text("")
            pipe = None
            if self.peek() is not None and self.peek().kind != "end":  # type: ignore[union-attr]
                pipe = self.pipeline(allow_decl=False)
            self.expect_end()
            if kw == "block":
                body, _ = self.list_until({"end"})
                self.defines[name_tok.value] = body
            return _TemplateCall(name_tok.value, pipe, tok.pos)
        raise self.error(tok.pos, f"unexpected keyword {kw}")

    def branch(self, kw: str, tok: _Tok) -> _Branch:
        mark = len(self.vars)
        try:
            return self._branch(kw, tok)
        finally:
            del self.vars[mark:]

    def _branch(self, kw: str, tok: _Tok) -> _Branch:
        pipe = self.pipeline(allow_decl=True, range_=kw == "range")
        self.expect_end()
        if kw == "range":
            self.range_depth += 1
        body, stop = self.list_until({"end", "else"})
        if kw == "range":
            self.range_depth -= 1
        else_: list[Any] | None = None
        if stop is not None and stop.value == "else":
            nxt = self.peek()
            if nxt is not None and nxt.kind == "keyword" and nxt.value in ("if", "with") and kw != "range":
                # ``{{else if ...}}`` is ``{{else}}{{if ...}}...{{end}}`` sharing our end
                self.take()
                else_ = [self.branch(nxt.value, nxt)]
            else:
                self.expect_end()
                else_, stop2 = self.list_until({"end"})
        else:
            pass
        return _Branch(kw, pipe, body, else_)

    def pipeline(self, *, allow_decl: bool, range_: bool = False) -> _Pipe:
        start = self.peek()
        pos = start.pos if start else len(self.lexer.text)
        decl: list[str] = []
        assign = False
        if allow_decl and start is not None and start.kind == "var":
            nxt = self.peek(1)
            if nxt is not None and nxt.kind in ("declare", "assign"):
                decl = [start.value]
                assign = nxt.kind == "assign"
                self.i += 2
            elif range_ and nxt is not None and nxt.kind == "comma":
                third, fourth = self.peek(2), self.peek(3)
                if third is not None and third.kind == "var" and fourth is not None and \
                        fourth.kind in ("declare", "assign"):
                    decl = [start.value, third.value]
                    assign = fourth.kind == "assign"
                    self.i += 4
        if assign:
            for name in decl:
                if name not in self.vars:
                    raise self.error(pos, f"undefined variable: {name}")
        cmds: list[_Command] = []
        while True:
            cmds.append(self.command())
            tok = self.peek()
            if tok is not None and tok.kind == "pipe":
                self.take()
                continue
            break
        for cmd in cmds[1:]:
            first = cmd.args[0]
            if first.kind not in ("ident", "field", "var", "dot", "pipe") or \
                    (first.kind == "const"):
                raise self.error(first.pos, "non executable command in pipeline stage")
        if not assign:
            self.vars.extend(decl)
        return _Pipe(decl, assign, cmds, pos)

    def command(self) -> _Command:
        args: list[_Node] = []
        start = self.peek()
        while True:
            tok = self.peek()
            if tok is None or tok.kind in ("end", "pipe", "rparen"):
                break
            args.append(self.operand())
        if not args:
            pos = start.pos if start else len(self.lexer.text)
            raise self.error(pos, "missing value for command")
        return _Command(args, args[0].pos)

    def operand(self) -> _Node:
        tok = self.take()
        node: _Node
        if tok.kind in ("string", "number", "bool", "nil"):
            node = _Node("const", tok.value, tok.pos)
        elif tok.kind == "dot":
            node = _Node("dot", None, tok.pos)
        elif tok.kind == "field":
            node = _Node("field", None, tok.pos, (tok.value,))
        elif tok.kind == "var":
            if tok.value not in self.vars:
                raise self.error(tok.pos, f"undefined variable: {tok.value}")
            node = _Node("var", tok.value, tok.pos)
        elif tok.kind == "ident":
            if tok.value not in _FUNCS:
                raise self.error(tok.pos, f'function "{tok.value}" not defined')
            node = _Node("ident", tok.value, tok.pos)
        elif tok.kind == "lparen":
            pipe = self.pipeline(allow_decl=True)
            close = self.peek()
            if close is None or close.kind != "rparen":
                raise self.error(tok.pos, "unclosed left paren")
            self.take()
            node = _Node("pipe", pipe, tok.pos)
        else:
            raise self.error(tok.pos, f"unexpected {_describe(tok)} in operand")
        fields = list(node.fields)
        while True:
            nxt = self.peek()
            if nxt is not None and nxt.kind == "field" and self._adjacent(nxt):
                self.take()
                fields.append(nxt.value)
                continue
            break
        if fields and node.kind in ("ident",):
            raise self.error(node.pos, f"unexpected . after term {node.value!r}")
        if node.kind == "const" and fields:
            raise self.error(node.pos, "unexpected field access on a constant")
        node.fields = tuple(fields)
        return node

    def _adjacent(self, tok: _Tok) -> bool:
        prev = self.toks[self.i - 1]
        end = prev.pos
        # a field chains when it follows the previous token with no space
        text = self.lexer.text
        j = tok.pos - 1
        return j >= end and text[j] not in " \t\r\n"


def _describe(tok: _Tok | None) -> str:
    if tok is None:
        return "EOF"
    names = {"end": "}}", "pipe": "|", "lparen": "(", "rparen": ")", "declare": ":=",
             "assign": "=", "comma": ",", "dot": "."}
    if tok.kind in names:
        return f'"{names[tok.kind]}"'
    return f"<{tok.value}>"


# -- values -------------------------------------------------------------------------------------

class _Missing:
    """Go's invalid reflect.Value: prints ``<no value>``."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


def _type_name(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float64"
    if isinstance(v, str):
        return "string"
    if isinstance(v, dict):
        return "map[string]string"
    if isinstance(v, list):
        return "[]interface {}"
    if isinstance(v, QuerySample):
        return "*template.sample"
    if v is None:
        return "nil"
    return type(v).__name__


def _print(v: Any) -> str:
    """How Go's fmt prints a value with %v."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return go_format_float(v)
    if v is None or v is MISSING:
        return "<no value>"
    if isinstance(v, dict):
        return "map[" + " ".join(f"{k}:{_print(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(_print(x) for x in v) + "]"
    if isinstance(v, QuerySample):
        return "&{" + _print(v.Labels) + " " + _print(v.Value) + "}"
    return str(v)


def _truth(v: Any) -> bool:
    if v is None or v is MISSING:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# -- built-in functions -------------------------------------------------------------------------

def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    return "other"


def _eq(a: Any, *bs: Any) -> bool:
    if not bs:
        raise TemplateError("error calling eq: missing argument for comparison")
    for b in bs:
        ka, kb = _kind(a), _kind(b)
        if ka == "other" or kb == "other":
            if a is None or b is None or a is MISSING or b is MISSING:
                if (a is None or a is MISSING) and (b is None or b is MISSING):
                    return True
                continue
            raise TemplateError("error calling eq: uncomparable type")
        if ka != kb:
            raise TemplateError("error calling eq: incompatible types for comparison")
        if a == b:
            return True
    return False


def _ordered(name: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def cmp(a: Any, b: Any) -> bool:
        ka, kb = _kind(a), _kind(b)
        if ka in ("other", "bool") or kb in ("other", "bool"):
            raise TemplateError(f"error calling {name}: invalid type for comparison")
        if ka != kb:
            raise TemplateError(f"error calling {name}: incompatible types for comparison")
        return op(a, b)

    return cmp


def _index(v: Any, *keys: Any) -> Any:
    for k in keys:
        if isinstance(v, dict):
            v = v.get(k, "")
        elif isinstance(v, (list, tuple, str)):
            if not isinstance(k, int) or isinstance(k, bool):
                raise TemplateError(f"error calling index: cannot index slice/array with type {_type_name(k)}")
            if not 0 <= k < len(v):
                raise TemplateError(f"error calling index: index out of range: {k}")
            v = v[k] if not isinstance(v, str) else ord(v[k])
        else:
            raise TemplateError(f"error calling index: can't index item of type {_type_name(v)}")
    return v


def _len(v: Any) -> int:
    if isinstance(v, (str, list, tuple, dict)):
        return len(v.encode() if isinstance(v, str) else v)
    raise TemplateError(f"error calling len: len of type {_type_name(v)}")


def _go_print(*args: Any) -> str:
    # fmt.Sprint adds spaces between operands when neither is a string
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += _print(a)
    return out


_PRINTF_RE = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+|\*)?)?([a-zA-Z%])")


def _printf(fmt: Any, *args: Any) -> str:
    """``fmt.Sprintf`` for the verbs templates use: %s %v %d %f %e %g %x %X %q %t %c %%."""
    if not isinstance(fmt, str):
        raise TemplateError("error calling printf: format must be a string")
    it = iter(args)
    used = 0
    out: list[str] = []
    pos = 0
    for m in _PRINTF_RE.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.group(1), m.group(2), m.group(3), m.group(4)
        if verb == "%":
            out.append("%")
            continue
        try:
            arg = next(it)
        except StopIteration:
            out.append(f"%!{verb}(MISSING)")
            continue
        used += 1
        out.append(_format_one(flags, width, prec, verb, arg))
    out.append(fmt[pos:])
    extra = list(it)
    if extra:
        out.append("%!(EXTRA " + ", ".join(f"{_type_name(a)}={_print(a)}" for a in extra) + ")")
    return "".join(out)


def _format_one(flags: str, width: str | None, prec: str | None, verb: str, arg: Any) -> str:
    spec = "%" + flags + (width or "") + (f".{prec}" if prec is not None else "")
    if verb in "vs":
        text = _print(arg)
        if prec is not None and verb == "s":
            text = text[:int(prec)]
        return _pad(text, flags, width)
    if verb == "q" and isinstance(arg, str):
        return _pad(_quote(arg), flags, width)
    if verb == "t" and isinstance(arg, bool):
        return _pad(_print(arg), flags, width)
    if verb in "dxXoc" and isinstance(arg, int) and not isinstance(arg, bool):
        return _pad(chr(arg), flags, width) if verb == "c" else (spec + verb) % arg
    if verb == "b" and isinstance(arg, int) and not isinstance(arg, bool):
        return _pad(format(arg, "b"), flags, width)
    if verb in "eEfFgG" and isinstance(arg, (int, float)) and not isinstance(arg, bool):
        x = float(arg)
        special = _special(x)
        if special is not None:
            return _pad(special, flags, width)
        return (spec + verb) % x
    if verb in "xX" and isinstance(arg, str):
        hexed = arg.encode().hex()
        return _pad(hexed if verb == "x" else hexed.upper(), flags, width)
    return f"%!{verb}({_type_name(arg)}={_print(arg)})"


def _pad(text: str, flags: str, width: str | None) -> str:
    if not width:
        return text
    w = int(width)
    return text.ljust(w) if "-" in flags else text.rjust(w)


def _title(s: Any) -> str:
    text = _str_arg(s, "title")
    out = []
    prev_sep = True
    for ch in text:
        out.append(ch.upper() if prev_sep else ch)
        if ch.isascii():
            prev_sep = not (ch.isalnum() or ch == "_")
        else:
            prev_sep = ch.isspace()
    return "".join(out)


def _str_arg(v: Any, func: str) -> str:
    if not isinstance(v, str):
        raise TemplateError(f"error calling {func}: wrong type for value; expected string; "
                            f"got {_type_name(v)}")
    return v


_GO_REPL_RE = re.compile(r"\$(\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def _re_replace_all(pattern: Any, repl: Any, text: Any) -> str:
    rx = _compile(_str_arg(pattern, "reReplaceAll"), "reReplaceAll")
    template = _str_arg(repl, "reReplaceAll")

    def expand_one(m: re.Match[str]) -> str:
        def group(g: re.Match[str]) -> str:
            if g.group(1) == "$":
                return "$"
            name = g.group(2) or g.group(3)
            try:
                value = m.group(int(name)) if name.isdigit() else m.group(name)
            except (IndexError, re.error):
                return ""
            return value or ""

        return _GO_REPL_RE.sub(group, template)

    return rx.sub(expand_one, _str_arg(text, "reReplaceAll"))



@lru_cache(maxsize=256)
def _compile_cached(pattern: str) -> re.Pattern[str]:
    # RE2's named groups (?P<n>...) are Python's; (?<n>...) is accepted by RE2 since Go 1.22
    return re.compile(re.sub(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>", r"(?P<\1>", pattern))


def _compile(pattern: str, func: str) -> re.Pattern[str]:
    try:
        return _compile_cached(pattern)
    except re.error as exc:
        raise TemplateError(f"error calling {func}: error parsing regexp: {exc}") from None


def _match(pattern: Any, text: Any) -> bool:
    return _compile(_str_arg(pattern, "match"), "match").search(_str_arg(text, "match")) is not None


def _first(v: Any) -> Any:
    if not isinstance(v, (list, tuple)):
        raise TemplateError(f"error calling first: wrong type for value; expected "
                            f"template.queryResult; got {_type_name(v)}")
    if not v:
        raise TemplateError("error calling first: first() called on vector with no elements")
    return v[0]


def _sample(v: Any, func: str) -> QuerySample:
    if not isinstance(v, QuerySample):
        raise TemplateError(f"error calling {func}: wrong type for value; expected "
                            f"*template.sample; got {_type_name(v)}")
    return v


def _sort_by_label(label: Any, v: Any) -> list[Any]:
    if not isinstance(v, (list, tuple)):
        raise TemplateError("error calling sortByLabel: expected a query result")
    return sorted(v, key=lambda s: s.Labels.get(label, "") if isinstance(s, QuerySample) else "")


def _parse_duration(v: Any) -> float:
    from watchkeeper.units import parse_duration

    try:
        return float(parse_duration(_str_arg(v, "parseDuration")))
    except ValueError as exc:
        raise TemplateError(f"error calling parseDuration: {exc}") from None


def _html_escape(*args: Any) -> str:
    s = _go_print(*args)
    return (s.replace("&", "&amp;").replace("'", "&#39;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&#34;").replace("\x00", "\ufffd"))


def _js_escape(*args: Any) -> str:
    s = _go_print(*args)
    table = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
             "=": "\\u003D", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return "".join(table.get(c, c) for c in s)


def _link(tab: int) -> Callable[[Any], str]:
    def link(expr: Any) -> str:
        q = urllib.parse.quote_plus(_str_arg(expr, "graphLink"))
        return f"/graph?g0.expr={q}&g0.tab={tab}"

    return link


_Func = Callable[..., Any]
#: name -> (callable, needs context). Context functions get the _Exec as first argument.
_FUNCS: dict[str, tuple[_Func, bool]] = {
    "and": (lambda *a: a, False),  # special-cased (short circuit)
    "or": (lambda *a: a, False),  # special-cased
    "not": (lambda v: not _truth(v), False),
    "eq": (_eq, False),
    "ne": (lambda a, b: not _eq(a, b), False),
    "lt": (_ordered("lt", lambda a, b: a < b), False),
    "le": (_ordered("le", lambda a, b: a <= b), False),
    "gt": (_ordered("gt", lambda a, b: a > b), False),
    "ge": (_ordered("ge", lambda a, b: a >= b), False),
    "len": (_len, False),
    "index": (_index, False),
    "print": (_go_print, False),
    "printf": (_printf, False),
    "println": (lambda *a: " ".join(_print(x) for x in a) + "\n", False),
    "html": (_html_escape, False),
    "js": (_js_escape, False),
    "urlquery": (lambda *a: urllib.parse.quote_plus(_go_print(*a)), False),
    "humanize": (humanize, False),
    "humanize1024": (humanize1024, False),
    "humanizeDuration": (humanize_duration, False),
    "humanizePercentage": (humanize_percentage, False),
    "humanizeTimestamp": (humanize_timestamp, False),
    "title": (_title, False),
    "toUpper": (lambda s: _str_arg(s, "toUpper").upper(), False),
    "toLower": (lambda s: _str_arg(s, "toLower").lower(), False),
    "reReplaceAll": (_re_replace_all, False),
    "match": (_match, False),
    "first": (_first, False),
    "label": (lambda name, s: _sample(s, "label").Labels.get(name, ""), False),
    "value": (lambda s: _sample(s, "value").Value, False),
    "strvalue": (lambda s: _sample(s, "strvalue").Labels.get("__value__", ""), False),
    "sortByLabel": (_sort_by_label, False),
    "args": (lambda *a: {f"arg{i}": x for i, x in enumerate(a)}, False),
    "safeHtml": (lambda s: _str_arg(s, "safeHtml"), False),
    "graphLink": (_link(0), False),
    "tableLink": (_link(1), False),
    "parseDuration": (_parse_duration, False),
    "toDuration": (lambda v: _go_duration(_to_float(v, "toDuration")), False),
    "toTime": (lambda v: humanize_timestamp(v), False),
    "query": (lambda ex, q: ex.query(q), True),
    "pathPrefix": (lambda ex: urllib.parse.urlsplit(ex.external_url).path, True),
    "externalURL": (lambda ex: ex.external_url, True),
}


# -- execution ----------------------------------------------------------------------------------

class _Break(Exception):
    pass


class _Continue(Exception):
    pass


@dataclass
class _Exec:
    lexer: _Lexer
    defines: dict[str, list[Any]]
    query_func: QueryFunc | None
    external_url: str
    out: list[str] = field(default_factory=list)
    depth: int = 0

    def query(self, q: Any) -> list[QuerySample]:
        if not isinstance(q, str):
            raise TemplateError("error calling query: the query must be a string")
        if self.query_func is None:
            raise TemplateError("error calling query: queries are not available here")
        return list(self.query_func(q))

    def error(self, pos: int, message: str) -> TemplateError:
        return self.lexer.error(pos, message)

    def run(self, nodes: list[Any], dot: Any, scope: list[tuple[str, Any]]) -> None:
        mark = len(scope)
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                value = self.pipe(node.pipe, dot, scope)
                if not node.pipe.decl:
                    self.out.append(_print(value))
            elif isinstance(node, _Branch):
                self.branch(node, dot, scope)
            elif isinstance(node, _TemplateCall):
                self.call_template(node, dot, scope)
            elif isinstance(node, _Loop):
                raise _Break() if node.kind == "break" else _Continue()
        del scope[mark:]

    def call_template(self, node: _TemplateCall, dot: Any, scope: list[tuple[str, Any]]) -> None:
        body = self.defines.get(node.name)
        if body is None:
            raise self.error(node.pos, f'no such template "{node.name}"')
        self.depth += 1
        if self.depth > 100:
            raise self.error(node.pos, "exceeded maximum template depth (100)")
        new_dot = self.pipe(node.pipe, dot, scope) if node.pipe else None
        self.run(body, new_dot, [("$", new_dot)])
        self.depth -= 1

    def branch(self, node: _Branch, dot: Any, scope: list[tuple[str, Any]]) -> None:
        mark = len(scope)
        if node.kind == "range":
            self.range(node, dot, scope)
            del scope[mark:]
            return
        value = self.pipe(node.pipe, dot, scope)
        if _truth(value):
            self.run(node.body, value if node.kind == "with" else dot, scope)
        elif node.else_ is not None:
            self.run(node.else_, dot, scope)
        del scope[mark:]

    def range(self, node: _Branch, dot: Any, scope: list[tuple[str, Any]]) -> None:
        decl = node.pipe.decl
        pipe = _Pipe([], False, node.pipe.cmds, node.pipe.pos)
        value = self.pipe(pipe, dot, scope)
        if isinstance(value, dict):
            items = [(k, value[k]) for k in sorted(value)]
        elif isinstance(value, (list, tuple)):
            items = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            items = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            items = []
        else:
            raise self.error(node.pipe.pos, f"range can't iterate over {_print(value)}")
        if not items:
            if node.else_ is not None:
                self.run(node.else_, dot, scope)
            return
        mark = len(scope)
        for key, elem in items:
            if len(decl) == 1:
                scope.append((decl[0], elem))
            elif len(decl) == 2:
                scope.append((decl[0], key))
                scope.append((decl[1], elem))
            try:
                self.run(node.body, elem, scope)
            except _Break:
                del scope[mark:]
                break
            except _Continue:
                pass
            del scope[mark:]

    def pipe(self, pipe: _Pipe, dot: Any, scope: list[tuple[str, Any]]) -> Any:
        value: Any = MISSING
        for i, cmd in enumerate(pipe.cmds):
            value = self.command(cmd, dot, scope, value if i else None, i > 0)
        for name in pipe.decl:
            if pipe.assign:
                for j in range(len(scope) - 1, -1, -1):
                    if scope[j][0] == name:
                        scope[j] = (name, value)
                        break
                else:
                    raise self.error(pipe.pos, f"undefined variable: {name}")
            else:
                scope.append((name, value))
        return value

    def command(self, cmd: _Command, dot: Any, scope: list[tuple[str, Any]], final: Any,
                has_final: bool) -> Any:
        first = cmd.args[0]
        if first.kind == "ident":
            return self.call(first, cmd.args[1:], dot, scope, final, has_final)
        if len(cmd.args) > 1 or has_final:
            if first.kind in ("field",) and False:
                pass
            raise self.error(first.pos, f"can't give argument to non-function {self.node_text(first)}")
        return self.operand(first, dot, scope)

    def node_text(self, node: _Node) -> str:
        if node.kind == "const":
            return _quote(node.value) if isinstance(node.value, str) else _print(node.value)
        if node.kind == "var":
            return str(node.value) + "".join("." + f for f in node.fields)
        if node.kind == "field":
            return "".join("." + f for f in node.fields)
        return str(node.value)

    def call(self, fn_node: _Node, args: list[_Node], dot: Any, scope: list[tuple[str, Any]],
             final: Any, has_final: bool) -> Any:
        name = fn_node.value
        func, ctx = _FUNCS[name]
        if name in ("and", "or"):
            nodes: list[Any] = list(args)
            if has_final:
                nodes.append(("final", final))
            if not nodes:
                raise self.error(fn_node.pos, f"wrong number of args for {name}: want at least 1 got 0")
            value: Any = None
            for n in nodes:
                value = n[1] if isinstance(n, tuple) else self.operand(n, dot, scope)
                if _truth(value) != (name == "and"):
                    return value
            return value
        values = [self.operand(a, dot, scope) for a in args]
        if has_final:
            values.append(final)
        try:
            return func(self, *values) if ctx else func(*values)
        except TemplateError as exc:
            raise self.error(fn_node.pos, f'executing at <{name}>: {exc.detail}') from None
        except TypeError:
            raise self.error(fn_node.pos, f"wrong number of args for {name}: got {len(values)}") from None

    def operand(self, node: _Node, dot: Any, scope: list[tuple[str, Any]]) -> Any:
        if node.kind == "const":
            return node.value
        if node.kind == "dot":
            base = dot
        elif node.kind == "field":
            base = dot
        elif node.kind == "var":
            for name, value in reversed(scope):
                if name == node.value:
                    base = value
                    break
            else:
                raise self.error(node.pos, f"undefined variable: {node.value}")
        elif node.kind == "ident":
            func, ctx = _FUNCS[node.value]
            try:
                base = func(self) if ctx else func()
            except TemplateError as exc:
                raise self.error(node.pos, f'executing at <{node.value}>: {exc.detail}') from None
            except TypeError:
                raise self.error(node.pos, f"wrong number of args for {node.value}: want more than 0"
                                 ) from None
        else:  # parenthesised pipeline
            base = self.pipe(node.value, dot, scope)
        for name in node.fields:
            base = self.field(base, name, node)
        return base

    def field(self, base: Any, name: str, node: _Node) -> Any:
        if isinstance(base, dict):
            return base.get(name, "")  # missingkey=zero on map[string]string
        if isinstance(base, (_Data, QuerySample)) and hasattr(base, name) and not name.startswith("_"):
            return getattr(base, name)
        if base is None or base is MISSING:
            raise self.error(node.pos, f"nil pointer evaluating {_type_name(base)}.{name}")
        raise self.error(node.pos, f"can't evaluate field {name} in type {_type_name(base)}")


#: The variables Prometheus defines for alert label and annotation templates.
ALERT_VARIABLES = ("$labels", "$externalLabels", "$externalURL", "$value")


@dataclass
class _Data:
    """Prometheus's alert template data: ``.Labels .ExternalLabels .ExternalURL .Value``."""

    Labels: dict[str, str]
    ExternalLabels: dict[str, str]
    ExternalURL: str
    Value: Any


class Template:
    """A parsed template; :meth:`execute` runs it. Parse errors raise :class:`TemplateError`."""

    def __init__(self, text: str, variables: Sequence[str] = ALERT_VARIABLES) -> None:
        self.text = text
        self._lexer = _Lexer(text)
        parser = _Parser(self._lexer, self._lexer.tokens(), variables)
        self._nodes = parser.parse()
        self._defines = parser.defines

    def execute(self, data: Any, *, variables: Mapping[str, Any] | None = None,
                query: QueryFunc | None = None, external_url: str = "") -> str:
        """Run with ``data`` as dot (and ``$``) and the given predefined variables."""
        ex = _Exec(self._lexer, self._defines, query, external_url)
        scope: list[tuple[str, Any]] = [("$", data)]
        scope.extend((variables or {}).items())
        try:
            ex.run(self._nodes, data, scope)
        except RecursionError:
            raise TemplateError("template nested too deeply") from None
        return "".join(ex.out)


@lru_cache(maxsize=4096)
def parse_template(text: str) -> Template:
    """Parse (and cache) a template. Raises :class:`TemplateError` naming line and column."""
    return Template(text)


def expand(text: str, *, labels: Mapping[str, str], value: float,
           external_labels: Mapping[str, str] | None = None, external_url: str = "",
           query: QueryFunc | None = None) -> str:
    """Expand an alert label or annotation template as Prometheus does.

    ``$labels``/``.Labels`` are the alert's labels, ``$value``/``.Value`` the
    value of the expression for it. Raises :class:`TemplateError` on parse or
    execution errors (Prometheus then shows ``<error expanding template: ...>``;
    :func:`watchkeeper.alerting.rules` does the same).
    """
    if "{{" not in text:
        return text
    tmpl = parse_template(text)
    lab = dict(labels)
    ext = dict(external_labels or {})
    data = _Data(lab, ext, external_url, value)
    variables = {"$labels": lab, "$externalLabels": ext, "$externalURL": external_url,
                 "$value": value}
    return tmpl.execute(data, variables=variables, query=query, external_url=external_url)
