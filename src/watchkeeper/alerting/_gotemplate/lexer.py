"""The lexer: template text into text chunks and the tokens of each ``{{ action }}``.

Handles ``{{-``/``-}}`` trim markers and ``{{/* comments */}}``; errors name
the line and column (:meth:`Lexer.error`), which parser and executor reuse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from watchkeeper.alerting._gotemplate.errors import TemplateError

__all__ = ["Lexer", "Token"]


@dataclass(frozen=True)
class Token:
    kind: str  # text, ident, field, var, string, number, char, bool, nil, pipe, lparen, rparen,
    # declare, assign, comma, dot, keyword, end (of action)
    value: Any
    pos: int


_KEYWORDS = {"if", "else", "end", "range", "with", "define", "template", "block", "break", "continue"}
_NUM_RE = re.compile(r"[+-]?(0[xX][0-9a-fA-F_]+|0[bB][01_]+|0[oO][0-7_]+|"
                     r"(\d[\d_]*\.?[\d_]*|\.\d[\d_]*)([eE][+-]?\d+)?)(i)?")
_IDENT_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class Lexer:
    def __init__(self, text: str) -> None:
        self.text = text

    def where(self, pos: int) -> tuple[int, int]:
        line = self.text.count("\n", 0, pos) + 1
        col = pos - (self.text.rfind("\n", 0, pos) + 1) + 1
        return line, col

    def error(self, pos: int, message: str) -> TemplateError:
        line, col = self.where(pos)
        return TemplateError(message, line=line, column=col)

    def tokens(self) -> list[Token]:
        text = self.text
        out: list[Token] = []
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
                out.append(Token("text", chunk, pos))
            if start < 0:
                break
            pos = start + (4 if trim_left else 2)
            pos, trim_next = self._action(pos, start, out)
        return out

    def _action(self, pos: int, open_pos: int, out: list[Token]) -> tuple[int, bool]:
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
        toks: list[Token] = [Token("open", None, open_pos)]
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
                toks.append(Token("end", None, pos))
                out.extend(toks)
                return pos + 3, True
            if text.startswith("}}", pos):
                toks.append(Token("end", None, pos))
                out.extend(toks)
                return pos + 2, False
            if ch == "|":
                toks.append(Token("pipe", None, pos))
                pos += 1
            elif ch == "(":
                depth += 1
                toks.append(Token("lparen", None, pos))
                pos += 1
            elif ch == ")":
                depth -= 1
                if depth < 0:
                    raise self.error(pos, "unexpected right paren")
                toks.append(Token("rparen", None, pos))
                pos += 1
            elif text.startswith(":=", pos):
                toks.append(Token("declare", None, pos))
                pos += 2
            elif ch == "=":
                toks.append(Token("assign", None, pos))
                pos += 1
            elif ch == ",":
                toks.append(Token("comma", None, pos))
                pos += 1
            elif ch in "\"`":
                value, end = self._string(pos)
                toks.append(Token("string", value, pos))
                pos = end
            elif ch == "'":
                m = re.compile(r"'(\\.|[^\\'])+'").match(text, pos)
                if not m:
                    raise self.error(pos, "unterminated character constant")
                value, _ = self._string_body(m.group(0)[1:-1], pos)
                toks.append(Token("number", ord(value), pos))
                pos = m.end()
            elif ch == "$":
                m = re.compile(r"\$[A-Za-z0-9_]*").match(text, pos)
                assert m is not None
                toks.append(Token("var", m.group(0), pos))
                pos = m.end()
            elif ch == "." and (pos + 1 >= len(text) or not text[pos + 1].isdigit()):
                m = _IDENT_RE.match(text, pos + 1)
                if m:
                    toks.append(Token("field", m.group(0), pos))
                    pos = m.end()
                else:
                    toks.append(Token("dot", None, pos))
                    pos += 1
            elif ch.isdigit() or ch == "." or (ch in "+-" and pos + 1 < len(text)
                                                and (text[pos + 1].isdigit() or text[pos + 1] == ".")):
                m = _NUM_RE.match(text, pos)
                if not m:
                    raise self.error(pos, f"bad number syntax: {text[pos:pos + 10]!r}")
                toks.append(Token("number", self._number(m.group(0), pos), pos))
                pos = m.end()
            elif ch.isalpha() or ch == "_":
                m = _IDENT_RE.match(text, pos)
                assert m is not None
                word = m.group(0)
                if word in ("true", "false"):
                    toks.append(Token("bool", word == "true", pos))
                elif word == "nil":
                    toks.append(Token("nil", None, pos))
                elif word in _KEYWORDS:
                    toks.append(Token("keyword", word, pos))
                else:
                    toks.append(Token("ident", word, pos))
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
