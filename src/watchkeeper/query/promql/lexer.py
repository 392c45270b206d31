"""The PromQL lexer: text -> tokens, each with its 0-based offset.

The lexer knows nothing of context: identifiers are returned as ``IDENT``
whatever they spell (``sum``, ``by``, ``offset``, ``inf``), and the parser
decides whether a word is a keyword where it stands (inside braces ``by`` is a
label name, after ``@`` ``start`` is a keyword, elsewhere a metric name).
Keywords are matched case-insensitively, as Prometheus does.

Errors are :class:`PromQLSyntaxError` (a :class:`~watchkeeper.errors.QueryError`)
carrying the offset, the line and the 1-based column.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from watchkeeper.errors import QueryError

__all__ = [
    "DURATION_UNITS",
    "PromQLSyntaxError",
    "Token",
    "format_duration",
    "parse_duration_ms",
    "quote_string",
    "tokenize",
]

# token kinds
IDENT = "IDENT"
NUMBER = "NUMBER"
DURATION = "DURATION"
STRING = "STRING"
OP = "OP"  # every punctuation and operator symbol; ``text`` tells which
EOF = "EOF"

#: milliseconds per duration unit, largest first (the order units must appear in)
DURATION_UNITS: dict[str, int] = {
    "y": 365 * 24 * 3600 * 1000,
    "w": 7 * 24 * 3600 * 1000,
    "d": 24 * 3600 * 1000,
    "h": 3600 * 1000,
    "m": 60 * 1000,
    "s": 1000,
    "ms": 1,
}
_UNIT_RANK = {u: i for i, u in enumerate(DURATION_UNITS)}


class PromQLSyntaxError(QueryError):
    """A PromQL expression does not parse or does not type-check.

    ``message`` ends with the place: ``... at column 14`` (or ``at line 2,
    column 5`` when the text has several lines). ``position`` is the 0-based
    offset in the text, ``line`` the 1-based line and ``column`` the 1-based
    column within that line (for one-line text, ``column == position + 1``);
    ``detail`` is the message without the place.
    """

    def __init__(self, detail: str, text: str, position: int) -> None:
        position = max(0, min(position, len(text)))
        line = text.count("\n", 0, position) + 1
        column = position - (text.rfind("\n", 0, position) + 1) + 1
        where = f"column {column}" if line == 1 else f"line {line}, column {column}"
        super().__init__(f"{detail} at {where}")
        self.detail = detail
        self.position = position
        self.line = line
        self.column = column


class Token(NamedTuple):
    kind: str
    text: str
    pos: int
    #: the unescaped value of a STRING, the float of a NUMBER, the milliseconds of a DURATION
    value: object = None


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>[ \t\r\n]+|\#[^\n]*)
  | (?P<dur>\d+(?:ms|[smhdwy])(?:\d+(?:ms|[smhdwy]))*)(?![a-zA-Z0-9_.])
  | (?P<num>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>==|!=|=~|!~|<=|>=|[-+*/%^<>=(){}\[\],:@])
  | (?P<str>["'`])
    """,
    re.VERBOSE,
)
_DUR_PART_RE = re.compile(r"(\d+)(ms|[smhdwy])")
_ALNUM = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.")
_SIMPLE_ESCAPES = {
    "a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\",
}


def parse_duration_ms(text: str, source: str = "", pos: int = 0) -> int:
    """``1h30m`` -> 5400000. Units must come largest first and only once.

    Raises PromQLSyntaxError (located at ``pos`` in ``source``) otherwise.
    """
    total = 0
    last = -1
    for m in _DUR_PART_RE.finditer(text):
        rank = _UNIT_RANK[m.group(2)]
        if rank <= last:
            raise PromQLSyntaxError(f'not a valid duration string: "{text}"', source or text, pos)
        last = rank
        total += int(m.group(1)) * DURATION_UNITS[m.group(2)]
    return total


def format_duration(seconds: float) -> str:
    """Seconds -> a PromQL duration (``90`` -> ``1m30s``), the way Prometheus prints them.

    Years and weeks are used only when they divide the rest exactly (``90d``,
    not ``12w6d``). A value that is not a whole number of milliseconds is
    printed as a number of seconds (PromQL 3 accepts those in ranges).
    """
    if seconds < 0:
        return "-" + format_duration(-seconds)
    ms = round(seconds * 1000)
    if abs(ms - seconds * 1000) > 1e-6 * max(1.0, abs(seconds * 1000)) or ms > 2**62:
        return repr(float(seconds))
    if ms == 0:
        return "0s"
    out: list[str] = []
    for unit, mult in DURATION_UNITS.items():
        if unit in ("y", "w") and ms % mult:
            continue
        count, ms = divmod(ms, mult)
        if count:
            out.append(f"{count}{unit}")
    return "".join(out)


def quote_string(value: str) -> str:
    """Quote a string the way Go's ``strconv.Quote`` does, so PromQL reads it back unchanged."""
    out = ['"']
    for ch in value:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch.isprintable():
            out.append(ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                        "\t": "\\t", "\v": "\\v"}[ch])
        else:
            code = ord(ch)
            if code < 0x80:
                out.append(f"\\x{code:02x}")
            elif code < 0x10000:
                out.append(f"\\u{code:04x}")
            else:
                out.append(f"\\U{code:08x}")
    out.append('"')
    return "".join(out)


def _lex_string(text: str, start: int) -> tuple[str, int]:
    """Read the string literal whose quote is at ``text[start]``; return its value and the end.

    Escapes follow Go: ``\\a \\b \\f \\n \\r \\t \\v \\\\``, the string's own quote,
    ``\\xHH``, ``\\NNN`` (octal), ``\\uHHHH``, ``\\UHHHHHHHH``; raw strings in
    backquotes have none and may span lines.
    """
    quote = text[start]
    i = start + 1
    n = len(text)
    if quote == "`":
        end = text.find("`", i)
        if end < 0:
            raise PromQLSyntaxError("unterminated raw string", text, start)
        return text[i:end], end + 1
    pieces: list[str] = []
    pending = bytearray()  # \x and octal escapes are bytes, decoded as UTF-8 together
    chunk_start = i
    while True:
        if i >= n or text[i] == "\n":
            raise PromQLSyntaxError("unterminated quoted string", text, start)
        ch = text[i]
        if ch == quote:
            break
        if ch != "\\":
            i += 1
            continue
        if i > chunk_start:
            if pending:
                pieces.append(pending.decode("utf-8", "replace"))
                pending.clear()
            pieces.append(text[chunk_start:i])
        esc_pos = i
        i += 1
        if i >= n:
            raise PromQLSyntaxError("unterminated quoted string", text, start)
        e = text[i]
        i += 1
        if e in _SIMPLE_ESCAPES or e == quote:
            if pending:
                pieces.append(pending.decode("utf-8", "replace"))
                pending.clear()
            pieces.append(_SIMPLE_ESCAPES.get(e, e))
        elif e == "x" or e in "01234567":
            digits, base = (text[i:i + 2], 16) if e == "x" else (text[i - 1:i + 2], 8)
            if e == "x":
                i += 2
            else:
                i += 2
            try:
                byte = int(digits, base) if len(digits) == (2 if base == 16 else 3) else -1
            except ValueError:
                byte = -1
            if not 0 <= byte <= 255:
                raise PromQLSyntaxError(f"invalid escape sequence '{text[esc_pos:i]}' in string",
                                        text, esc_pos)
            pending.append(byte)
        elif e in "uU":
            width = 4 if e == "u" else 8
            digits = text[i:i + width]
            i += width
            try:
                code = int(digits, 16) if len(digits) == width else -1
            except ValueError:
                code = -1
            if not (0 <= code <= 0x10FFFF) or 0xD800 <= code <= 0xDFFF:
                raise PromQLSyntaxError(f"invalid escape sequence '{text[esc_pos:i]}' in string",
                                        text, esc_pos)
            if pending:
                pieces.append(pending.decode("utf-8", "replace"))
                pending.clear()
            pieces.append(chr(code))
        else:
            raise PromQLSyntaxError(f"unknown escape sequence '\\{e}' in string", text, esc_pos)
        chunk_start = i
    if pending:
        pieces.append(pending.decode("utf-8", "replace"))
    pieces.append(text[chunk_start:i])
    return "".join(pieces), i + 1


def _number_value(lit: str) -> float:
    """Like Prometheus: integers in Go's base-0 syntax first (``0x1f``, ``010`` octal), else a float."""
    if lit[:2] in ("0x", "0X"):
        return float(int(lit, 16))
    if len(lit) > 1 and lit[0] == "0" and lit.isdigit():
        try:
            return float(int(lit, 8))
        except ValueError:
            pass
    return float(lit)


def tokenize(text: str) -> list[Token]:
    """Split PromQL ``text`` into tokens, ending with an ``EOF`` token at ``len(text)``.

    Raises PromQLSyntaxError for a character that starts no token, an
    unterminated string, a bad escape, a malformed number or duration.
    """
    tokens: list[Token] = []
    append = tokens.append
    match = _TOKEN_RE.match
    pos = 0
    n = len(text)
    brackets = 0  # inside [..] a colon separates range and step; elsewhere it starts a name
    while pos < n:
        if brackets and text[pos] == ":":
            append(Token(OP, ":", pos))
            pos += 1
            continue
        m = match(text, pos)
        if m is None:
            ch = text[pos]
            if ch == "!":
                raise PromQLSyntaxError("unexpected character after '!'", text, pos)
            raise PromQLSyntaxError(f"unexpected character {ch!r}", text, pos)
        kind = m.lastgroup
        end = m.end()
        if kind == "ws":
            pass
        elif kind == "ident":
            append(Token(IDENT, m.group(), pos))
        elif kind == "op":
            sym = m.group()
            if sym == "[":
                brackets += 1
            elif sym == "]" and brackets:
                brackets -= 1
            append(Token(OP, sym, pos))
        elif kind == "num":
            if end < n and text[end] in _ALNUM:
                while end < n and text[end] in _ALNUM:
                    end += 1
                raise PromQLSyntaxError(f'bad number or duration syntax: "{text[pos:end]}"',
                                        text, pos)
            lit = m.group()
            append(Token(NUMBER, lit, pos, _number_value(lit)))
        elif kind == "dur":
            lit = m.group()
            append(Token(DURATION, lit, pos, parse_duration_ms(lit, text, pos)))
        else:  # a string
            value, end = _lex_string(text, pos)
            append(Token(STRING, text[pos:end], pos, value))
        pos = end
    # a duration directly followed by letters (``5mx``) fails the lookahead and lands here
    append(Token(EOF, "", n))
    return tokens
