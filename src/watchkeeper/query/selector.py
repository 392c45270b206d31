"""Series selectors: ``name{label="value", other=~"re.*"}`` and the matchers they hold."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from watchkeeper.errors import QueryError

__all__ = ["Matcher", "parse_selector", "matches_all"]

_OPS = ("=~", "!~", "!=", "=")
_NAME_RE = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclass(frozen=True)
class Matcher:
    """One label matcher. Regexes are anchored at both ends, as in Prometheus."""

    name: str
    op: str
    value: str
    _regex: re.Pattern[str] | None = field(default=None, compare=False, repr=False)

    @classmethod
    def make(cls, name: str, op: str, value: str) -> Matcher:
        if op not in _OPS:
            raise QueryError(f"unknown matcher operator {op!r}; use one of =, !=, =~, !~")
        regex = None
        if op in ("=~", "!~"):
            try:
                regex = re.compile(f"(?:{value})\\Z", re.DOTALL)
            except re.error as exc:
                raise QueryError(f"invalid regular expression {value!r} for label {name}: {exc}") from None
        return cls(name, op, value, regex)

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self._regex is not None
        hit = self._regex.match(value) is not None
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'{self.name}{self.op}"{escaped}"'


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher accepts the labels (a missing label counts as empty)."""
    return all(m.matches(labels.get(m.name, "")) for m in matchers)


def _unquote(text: str, pos: int) -> tuple[str, int]:
    quote = text[pos]
    if quote not in "\"'`":
        raise QueryError(f"expected a quoted string at column {pos + 1}")
    out = []
    i = pos + 1
    escapes = {"n": "\n", "t": "\t", "\\": "\\", '"': '"', "'": "'", "r": "\r"}
    while i < len(text):
        ch = text[i]
        if ch == quote:
            return "".join(out), i + 1
        if ch == "\\" and quote != "`":
            i += 1
            if i >= len(text):
                break
            out.append(escapes.get(text[i], "\\" + text[i]))
        else:
            out.append(ch)
        i += 1
    raise QueryError(f"unterminated string starting at column {pos + 1}")


def parse_selector(text: str) -> list[Matcher]:
    """Parse ``name{a="b"}``, ``{__name__=~"x.*"}`` or ``name`` into matchers.

    Raises QueryError naming the column when the text is not a selector, and
    when no matcher would restrict the series (Prometheus refuses ``{}``).
    """
    s = text.strip()
    pos = 0
    matchers: list[Matcher] = []
    m = _NAME_RE.match(s, pos)
    if m:
        matchers.append(Matcher.make("__name__", "=", m.group(0)))
        pos = m.end()
    while pos < len(s) and s[pos].isspace():
        pos += 1
    if pos < len(s):
        if s[pos] != "{":
            raise QueryError(f"unexpected {s[pos]!r} at column {pos + 1} in selector {text!r}")
        pos += 1
        while True:
            while pos < len(s) and s[pos] in " \t\n,":
                pos += 1
            if pos < len(s) and s[pos] == "}":
                pos += 1
                break
            lm = _LABEL_RE.match(s, pos)
            if not lm:
                raise QueryError(f"expected a label name at column {pos + 1} in selector {text!r}")
            pos = lm.end()
            while pos < len(s) and s[pos].isspace():
                pos += 1
            op = next((o for o in _OPS if s.startswith(o, pos)), None)
            if op is None:
                raise QueryError(f"expected one of =, !=, =~, !~ at column {pos + 1} in selector {text!r}")
            pos += len(op)
            while pos < len(s) and s[pos].isspace():
                pos += 1
            if pos >= len(s):
                raise QueryError(f"unexpected end of input at column {pos + 1} in selector {text!r}")
            value, pos = _unquote(s, pos)
            matchers.append(Matcher.make(lm.group(0), op, value))
        if s[pos:].strip():
            raise QueryError(f"unexpected {s[pos:].strip()[:1]!r} at column {pos + 1} in selector {text!r}")
    if not matchers:
        raise QueryError(f"{text!r} is not a series selector")
    if all(mt.matches("") for mt in matchers):
        raise QueryError(f"selector {text!r} must contain at least one matcher that does not match the empty string")
    return matchers
