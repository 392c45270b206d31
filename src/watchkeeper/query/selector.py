"""Series selectors: ``name{label="value", other=~"re.*"}`` and the matchers they hold."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from watchkeeper.errors import QueryError

__all__ = ["Matcher", "go_regex", "matches_all", "parse_selector"]

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
                regex = re.compile(go_regex(value), re.DOTALL)
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


_POSIX_CLASSES = {
    "alpha": "a-zA-Z", "digit": "0-9", "alnum": "a-zA-Z0-9", "upper": "A-Z", "lower": "a-z",
    "space": r"\s", "xdigit": "0-9A-Fa-f", "word": r"\w", "punct": r"!-/:-@\[-`{-~",
    "blank": r" \t", "cntrl": r"\x00-\x1f\x7f", "print": r" -~", "graph": r"!-~", "ascii": r"\x00-\x7f",
}
_LEADING_FLAGS = re.compile(r"^\(\?([imsU]+)\)")


def go_regex(value: str) -> str:
    """Translate an RE2 (Go) pattern, as Prometheus and Alertmanager read it, to an anchored
    Python pattern: leading ``(?i)`` flags stay in front, ``[[:alpha:]]`` classes are expanded,
    and the whole pattern must match (``^(?:...)$``)."""
    flags = ""
    m = _LEADING_FLAGS.match(value)
    if m:
        flags = "".join(f for f in m.group(1) if f in "ims")
        value = value[m.end():]
    value = re.sub(r"\[:(\^?)([a-z]+):\]",
                   lambda mm: (("^" if mm.group(1) else "") + _POSIX_CLASSES[mm.group(2)])
                   if mm.group(2) in _POSIX_CLASSES else mm.group(0), value)
    value = value.replace(r"\z", r"\Z")
    return (f"(?{flags})" if flags else "") + f"(?:{value})\\Z"


def matches_all(matchers: list[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher accepts the labels (a missing label counts as empty)."""
    return all(m.matches(labels.get(m.name, "")) for m in matchers)


def _unquote(text: str, pos: int, where: str = "", lead: int = 0) -> tuple[str, int]:
    """The string quoted at ``text[pos]`` and the position after it; columns in errors
    are shifted by ``lead`` (whitespace stripped from the caller's text)."""
    quote = text[pos]
    if quote not in "\"'`":
        raise QueryError(f"expected a quoted string at column {lead + pos + 1}{where}")
    out: list[str] = []
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
    raise QueryError(f"unterminated string starting at column {lead + pos + 1}{where}")


def parse_selector(text: str) -> list[Matcher]:
    """Parse ``name{a="b"}``, ``{__name__=~"x.*"}`` or ``name`` into matchers.

    Raises QueryError naming the column (counted in ``text`` as given, from 1)
    when the text is not a selector, and when no matcher would restrict the
    series (Prometheus refuses ``{}``).
    """
    where = f" in selector {text!r}"
    lead = len(text) - len(text.lstrip())
    s = text.strip()

    def col(i: int) -> int:
        return lead + i + 1

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
            raise QueryError(f"unexpected {s[pos]!r} at column {col(pos)}{where}")
        pos += 1
        while True:
            while pos < len(s) and s[pos].isspace():
                pos += 1
            if pos < len(s) and s[pos] == "}":
                pos += 1
                break
            label_at = pos
            if pos < len(s) and s[pos] in "\"'`":
                # Prometheus 3: a quoted label name, or alone a quoted metric name
                label, pos = _unquote(s, pos, where, lead)
            else:
                lm = _LABEL_RE.match(s, pos)
                if not lm:
                    found = "end of input" if pos >= len(s) else repr(s[pos])
                    raise QueryError(f"expected a label name or '}}' at column {col(pos)}{where}, "
                                     f"found {found}")
                label, pos = lm.group(0), lm.end()
            while pos < len(s) and s[pos].isspace():
                pos += 1
            op = next((o for o in _OPS if s.startswith(o, pos)), None)
            if op is None and s[label_at] in "\"'`" and pos < len(s) and s[pos] in ",}":
                if any(mt.name == "__name__" and mt.op == "=" for mt in matchers):
                    raise QueryError(f"metric name given twice at column {col(label_at)}{where}")
                matchers.append(Matcher.make("__name__", "=", label))
                if s[pos] == ",":
                    pos += 1
                continue
            if op is None:
                raise QueryError(f"expected one of =, !=, =~, !~ at column {col(pos)}{where}")
            pos += len(op)
            while pos < len(s) and s[pos].isspace():
                pos += 1
            if pos >= len(s):
                raise QueryError(f"unexpected end of input at column {col(pos)}{where}")
            value, pos = _unquote(s, pos, where, lead)
            matchers.append(Matcher.make(label, op, value))
            # matchers are separated by commas (a trailing one is allowed)
            while pos < len(s) and s[pos].isspace():
                pos += 1
            if pos < len(s) and s[pos] == ",":
                pos += 1
            elif pos >= len(s) or s[pos] != "}":
                found = "end of input" if pos >= len(s) else repr(s[pos])
                raise QueryError(f"expected ',' or '}}' at column {col(pos)}{where}, "
                                 f"found {found}")
        while pos < len(s) and s[pos].isspace():
            pos += 1
        if pos < len(s):
            raise QueryError(f"unexpected {s[pos]!r} at column {col(pos)}{where}")
    if not matchers:
        raise QueryError(f"{text!r} is not a series selector")
    if all(mt.matches("") for mt in matchers):
        raise QueryError(f"selector {text!r} must contain at least one matcher that does not "
                         "match the empty string")
    return matchers

