"""Alertmanager's label matchers: ``{severity="critical", instance=~"web.*"}``.

Used by silences, inhibition rules and routes. The semantics are Alertmanager's,
which differ from PromQL's in two small ways: a regex is anchored as
``^(?:RE)$`` *without* the dot-matches-newline flag, and a matcher list may
match everything (``{}`` is allowed where Alertmanager allows it — callers such
as silences add their own "at least one matcher must not match the empty
string" rule). A label that is missing matches as the empty string, so
``team=""`` selects alerts without a ``team`` label and ``team!=""`` those
with one.

Text forms accepted by :func:`parse_matchers`, as Alertmanager 0.27's
"fallback" parser accepts them:

* the UTF-8 form: ``{a="b", c=~"x.*"}``, braces optional, names and values
  either double-quoted (with ``\\"``, ``\\\\``, ``\\n`` escapes) or unquoted
  runs of characters other than whitespace and ``{}!=~,\\"'```;
* the classic form, tried when the first fails: a comma-separated list in
  which each value is everything after the operator up to the next comma
  outside double quotes, trimmed (``alertname=Disk full`` is the value
  ``Disk full``).

Errors are :class:`~watchkeeper.errors.InputError` naming the text and what
was expected.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from watchkeeper.errors import InputError
from watchkeeper.query.selector import Matcher

__all__ = [
    "Matcher",
    "format_matchers",
    "make_matcher",
    "matcher_from_api",
    "matcher_to_api",
    "matchers_from_legacy",
    "matches",
    "parse_matcher",
    "parse_matchers",
]

_OPS = ("=~", "!~", "!=", "=")
_CLASSIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
_CLASSIC_RE = re.compile(r"^\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(=~|=|!=|!~)\s*(.*?)\s*$", re.DOTALL)
_RESERVED = set("{}!=~,\\\"'`")


def make_matcher(name: str, op: str, value: str) -> Matcher:
    """One matcher with Alertmanager's regex anchoring (``^(?:value)$``).

    Raises InputError for an unknown operator, an empty label name or a regex
    that does not compile.
    """
    if op not in _OPS:
        raise InputError(f"unknown matcher operator {op!r}; use one of =, !=, =~, !~")
    if not name:
        raise InputError("a matcher needs a label name")
    regex = None
    if op in ("=~", "!~"):
        try:
            # \Z, not $: Go's $ (without the m flag) matches only at the very end
            regex = re.compile(f"(?:{value})\\Z")
        except re.error as exc:
            raise InputError(f"invalid regular expression {value!r} in matcher for label "
                             f"{name!r}: {exc}") from None
    return Matcher(name, op, value, regex)


def matches(matchers: Iterable[Matcher], labels: Mapping[str, str]) -> bool:
    """True when every matcher accepts ``labels`` (a missing label is the empty string)."""
    return all(m.matches(labels.get(m.name, "")) for m in matchers)


def _quote(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"') + '"'


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """``{a="b",c=~"x.*"}``, as Alertmanager prints a matcher list."""
    parts = []
    for m in matchers:
        name = m.name if _CLASSIC_NAME.match(m.name) else _quote(m.name)
        parts.append(f"{name}{m.op}{_quote(m.value)}")
    return "{" + ",".join(parts) + "}"


# -- the UTF-8 parser ----------------------------------------------------------------------------
class _Fail(Exception):
    pass


def _lex(text: str) -> list[tuple[str, str, int]]:
    """Tokens (kind, text, column from 1): quoted, unquoted, op, '{', '}', ','."""
    out: list[tuple[str, str, int]] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        if ch in "{},":
            out.append((ch, ch, i + 1))
            i += 1
            continue
        op = next((o for o in _OPS if text.startswith(o, i)), None)
        if op is not None:
            out.append(("op", op, i + 1))
            i += len(op)
            continue
        if ch == '"':
            j = i + 1
            buf: list[str] = []
            while j < n and text[j] != '"':
                if text[j] == "\\":
                    j += 1
                    if j >= n:
                        break
                    esc = text[j]
                    if esc == "n":
                        buf.append("\n")
                    elif esc in '"\\':
                        buf.append(esc)
                    else:
                        raise _Fail(f"invalid escape \\{esc} at column {j}")
                else:
                    buf.append(text[j])
                j += 1
            if j >= n:
                raise _Fail(f"unterminated quoted string starting at column {i + 1}")
            out.append(("quoted", "".join(buf), i + 1))
            i = j + 1
            continue
        if ch in _RESERVED:
            raise _Fail(f"unexpected {ch!r} at column {i + 1}")
        j = i
        while j < n and not text[j].isspace() and text[j] not in _RESERVED:
            j += 1
        out.append(("unquoted", text[i:j], i + 1))
        i = j
    return out


def _parse_utf8(text: str) -> list[Matcher]:
    toks = _lex(text)
    pos = 0
    braced = bool(toks) and toks[0][0] == "{"
    if braced:
        pos = 1
    result: list[Matcher] = []

    def expect(*kinds: str, what: str) -> tuple[str, str, int]:
        nonlocal pos
        if pos >= len(toks):
            raise _Fail(f"unexpected end of input: expected {what}")
        tok = toks[pos]
        if tok[0] not in kinds:
            raise _Fail(f"unexpected {tok[1]!r} at column {tok[2]}: expected {what}")
        pos += 1
        return tok

    while pos < len(toks) and toks[pos][0] != "}":
        name = expect("quoted", "unquoted", what="a label name")[1]
        op = expect("op", what="an operator such as '=', '!=', '=~' or '!~'")[1]
        value = expect("quoted", "unquoted", what="a label value")[1]
        result.append(make_matcher(name, op, value))
        if pos < len(toks) and toks[pos][0] == ",":
            pos += 1
        elif pos < len(toks) and toks[pos][0] != "}":
            tok = toks[pos]
            raise _Fail(f"unexpected {tok[1]!r} at column {tok[2]}: expected a comma or "
                        "close brace")
    if braced:
        expect("}", what="a close brace")
    elif pos < len(toks):
        raise _Fail(f"unexpected '}}' at column {toks[pos][2]}: expected an opening brace")
    if pos < len(toks):
        raise _Fail(f"unexpected {toks[pos][1]!r} at column {toks[pos][2]}: expected end of input")
    return result


# -- the classic parser --------------------------------------------------------------------------
def _split_classic(text: str) -> list[str]:
    text = text.removeprefix("{").removesuffix("}")
    tokens: list[str] = []
    buf: list[str] = []
    inside = escaped = False
    for ch in text:
        if ch == "," and not inside:
            tokens.append("".join(buf))
            buf = []
            continue
        if ch == '"':
            if not escaped:
                inside = not inside
            else:
                escaped = False
        elif ch == "\\":
            escaped = not escaped
        else:
            escaped = False
        buf.append(ch)
    last = "".join(buf).strip()
    if last:
        tokens.append(last)
    return tokens


def _parse_classic_one(text: str) -> Matcher:
    m = _CLASSIC_RE.match(text)
    if not m:
        raise _Fail(f"bad matcher format: {text.strip()}")
    name, op, raw = m.group(1), m.group(2), m.group(3)
    quoted = raw.startswith('"')
    if quoted:
        raw = raw[1:]
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "\\" and i < len(raw) - 1:
            nxt = raw[i + 1]
            out.append({"n": "\n", '"': '"', "\\": "\\"}.get(nxt, "\\" + nxt))
            i += 2
            continue
        if ch == '"':
            if not quoted or i < len(raw) - 1:
                raise _Fail(f"matcher value contains unescaped double quote: {m.group(3)}")
            quoted = False
        else:
            out.append(ch)
        i += 1
    if quoted:
        raise _Fail(f"matcher value contains unescaped double quote: {m.group(3)}")
    return make_matcher(name, op, "".join(out))


def parse_matchers(text: str) -> list[Matcher]:
    """Parse a matcher list in Alertmanager's syntax (see the module docstring).

    ``""`` and ``{}`` give an empty list. Raises InputError naming the text and
    the first problem found.
    """
    try:
        return _parse_utf8(text)
    except _Fail as first:
        try:
            return [_parse_classic_one(tok) for tok in _split_classic(text)]
        except _Fail:
            raise InputError(f"invalid matchers {text!r}: {first}",
                             hint='write matchers as name="value", name!="value", '
                                  'name=~"regex" or name!~"regex", separated by commas') from None


def parse_matcher(text: str) -> Matcher:
    """Parse exactly one matcher; InputError when the text holds none or several."""
    found = parse_matchers(text)
    if len(found) != 1:
        raise InputError(f"expected one matcher in {text!r}, found {len(found)}")
    return found[0]


def matchers_from_legacy(match: Mapping[str, str] | None,
                         match_re: Mapping[str, str] | None) -> list[Matcher]:
    """Matchers from Alertmanager's deprecated ``match`` / ``match_re`` maps (sorted by name)."""
    out = [make_matcher(k, "=", v) for k, v in sorted((match or {}).items())]
    out += [make_matcher(k, "=~", v) for k, v in sorted((match_re or {}).items())]
    return out


def matcher_to_api(m: Matcher) -> dict[str, Any]:
    """Alertmanager API v2's matcher object: ``{name, value, isRegex, isEqual}``."""
    return {"name": m.name, "value": m.value, "isRegex": m.op in ("=~", "!~"),
            "isEqual": m.op in ("=", "=~")}


def matcher_from_api(obj: Any, where: str = "matcher") -> Matcher:
    """The inverse of :func:`matcher_to_api`; ``isEqual`` defaults to true as in Alertmanager.

    Raises InputError naming ``where`` and the field at fault.
    """
    if not isinstance(obj, Mapping):
        raise InputError(f"{where}: must be an object with name, value, isRegex")
    name, value = obj.get("name"), obj.get("value")
    if not isinstance(name, str) or not name:
        raise InputError(f"{where}.name: must be a non-empty string")
    if not isinstance(value, str):
        raise InputError(f"{where}.value: must be a string")
    is_regex, is_equal = obj.get("isRegex", False), obj.get("isEqual", True)
    for field_name, flag in (("isRegex", is_regex), ("isEqual", is_equal)):
        if not isinstance(flag, bool):
            raise InputError(f"{where}.{field_name}: must be true or false")
    op = ("=~" if is_equal else "!~") if is_regex else ("=" if is_equal else "!=")
    try:
        return make_matcher(name, op, value)
    except InputError as exc:
        raise InputError(f"{where}.value: {exc.message}") from None
