"""Host patterns, resolved the way Ansible resolves them, plus label selectors.

A pattern is a list of terms separated by ``,`` or ``:``::

    all              every host in the inventory (not the implicit localhost)
    web              a group (its hosts and its child groups' hosts) or a host
    web:db  web,db   union
    web:&prod        intersection
    web:!web3        exclusion
    web*  db?.lan    globs (fnmatch; case-sensitive), over group names and host names
    ~web\\d+          a regular expression (``re.match``: anchored at the start only)
    web[0] web[1:3]  subscripts: the first host of web; the second to fourth
    {role=db}        a label selector (watchkeeper's addition): ``{name OP value, ...}``
                     with ``=``, ``!=``, ``=~``, ``!~`` as in Prometheus; values may be
                     quoted (``{env="prod"}``); a missing label reads as ``""``

Order of operations is Ansible's, whatever the order written: first every plain
term (union, in order), then every ``&`` term, then every ``!`` term. A pattern
of only ``&``/``!`` terms starts from ``all``. A plain host name is taken as it
is. ``localhost``, ``127.0.0.1`` and ``::1`` select the implicit local host when
the inventory does not define them.

Where watchkeeper is stricter than Ansible (which only warns): a plain name that
is neither a host nor a group raises :class:`~watchkeeper.errors.InputError`
with a did-you-mean; so does a subscript past the end, a bad regex or selector.
A glob, regex or selector that matches nothing just selects nothing. Ansible
does not split the parts of a comma-separated list further at ``:``;
watchkeeper does (``web:&prod,db``), where Ansible would match nothing.
"""

from __future__ import annotations

import difflib
import fnmatch
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from watchkeeper.errors import InputError

if TYPE_CHECKING:
    from watchkeeper.query.selector import Matcher

__all__ = ["LabelSelector", "PatternSource", "resolve_pattern", "split_pattern", "LOCALHOST_NAMES"]

LOCALHOST_NAMES = ("localhost", "127.0.0.1", "::1")


class PatternSource(Protocol):
    """What pattern resolution reads from an inventory."""

    def host_names(self) -> Sequence[str]:
        """Every host defined by the inventory, in inventory order (no implicit localhost)."""

    def group_names(self) -> Sequence[str]:
        """Every group, in the order it was defined (``all`` and ``ungrouped`` included)."""

    def group_hosts(self, group: str) -> Sequence[str]:
        """A group's hosts in Ansible's order: its own, then its children's, breadth first."""

    def host_labels(self, host: str) -> Mapping[str, str]:
        """A host's labels, for selectors."""

    def implicit_localhost(self) -> str | None:
        """The name of the implicit local host, or None when the inventory defines localhost."""


# -- splitting ---------------------------------------------------------------------------

_SELECTOR_START = re.compile(r"(?:^|[,:])\s*[&!]?\s*(?=\{)")
_COLON_TERMS = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
_MARK = "\x00"


def _protect_selectors(text: str) -> tuple[str, list[str]]:
    """Replace each ``{...}`` that starts a term by a placeholder, so separators inside stay."""
    out: list[str] = []
    selectors: list[str] = []
    i = 0
    while i < len(text):
        m = _SELECTOR_START.match(text, i) if (i == 0 or text[i] in ",:") else None
        if m is None or m.end() >= len(text) or text[m.end()] != "{":
            out.append(text[i])
            i += 1
            continue
        out.append(text[i:m.end()])
        j = m.end()
        quote: str | None = None
        k = j + 1
        while k < len(text):
            ch = text[k]
            if quote:
                if ch == "\\":
                    k += 1
                elif ch == quote:
                    quote = None
            elif ch in "\"'":
                quote = ch
            elif ch == "}":
                break
            k += 1
        if k >= len(text):
            raise InputError(f"label selector {text[j:]!r} is missing its closing '}}'",
                             hint="write a selector as {role=db} or {env=\"prod\", role=~\"web.*\"}")
        selectors.append(text[j:k + 1])
        out.append(f"{_MARK}{len(selectors) - 1}{_MARK}")
        i = k + 1
    return "".join(out), selectors


def _restore(term: str, selectors: list[str]) -> str:
    return re.sub(f"{_MARK}(\\d+){_MARK}", lambda m: selectors[int(m.group(1))], term)


def split_pattern(pattern: str | Sequence[str]) -> list[str]:
    """Split a pattern into terms as Ansible's ``split_host_pattern`` does (see the module doc).

    ``"web:&prod:!web3"`` -> ``["web", "&prod", "!web3"]``; an IPv6 address or
    ``host:port`` stays one term; ``[x:y]`` subscripts are not split.
    """
    if not isinstance(pattern, str):
        return [t for p in pattern for t in split_pattern(p)]
    text, selectors = _protect_selectors(pattern)
    if "," in text:
        pieces = [p for p in text.split(",")]
        terms: list[str] = []
        for piece in pieces:
            if ":" in piece and not is_address(piece.strip()):
                terms.extend(_COLON_TERMS.findall(piece))
            else:
                terms.append(piece)
    elif is_address(text):
        terms = [text]
    else:
        terms = _COLON_TERMS.findall(text)
    return [_restore(t.strip(), selectors) for t in terms if t.strip()]


# -- addresses (Ansible's parse_address, used to keep "::1" and "host:22" whole) --------------

_RANGE = r"\[(?:[a-z]:[a-z]|[0-9]+:[0-9]+)(?::[0-9]+)?\]"
_LABEL = rf"(?:\w|{_RANGE})(?:[\w-]|{_RANGE})*(?<![_-])"
_HOSTNAME = re.compile(rf"^{_LABEL}(?:\.{_LABEL})*$", re.I)
_IPV4_PART = r"(?:[01]?[0-9]{1,2}|2[0-4][0-9]|25[0-5]|\[[0-9]+:[0-9]+(?::[0-9]+)?\])"
_IPV4 = re.compile(rf"^(?:{_IPV4_PART}\.){{3}}{_IPV4_PART}$")
_BRACKETED_PORT = re.compile(r"^\[(.+)\]:([0-9]+)$")
_HOST_PORT = re.compile(r"^((?:[^:\[\]]|\[[^\]]*\])*):([0-9]+)$")


def parse_address(text: str) -> tuple[str, int | None] | None:
    """``(host, port)`` when ``text`` is a host name, IPv4 or IPv6 address with an optional port.

    Ranges (``web[01:03]``) are allowed in names. None when it is none of these.
    """
    port: int | None = None
    m = _BRACKETED_PORT.match(text) or _HOST_PORT.match(text)
    if m:
        text, port = m.group(1), int(m.group(2))
    if _IPV4.match(text) or _HOSTNAME.match(text):
        return text, port
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return None
    return text, port


def is_address(text: str) -> bool:
    return parse_address(text) is not None


# -- label selectors --------------------------------------------------------------------------

_SEL_ITEM = re.compile(
    r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=~|!~|!=|=)\s*"
    r"(\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^,}]*?)\s*(,|\})")


@dataclass(frozen=True)
class LabelSelector:
    """``{role=db, env!=dev}``: every matcher must hold for a host's labels."""

    text: str
    matchers: tuple[Matcher, ...]

    @classmethod
    def parse(cls, text: str) -> LabelSelector:
        """Parse ``{name OP value, ...}``; raises InputError (naming the selector) when it does not."""
        from watchkeeper.query.selector import Matcher

        if not (text.startswith("{") and text.endswith("}")):
            raise InputError(f"label selector {text!r} must be written in braces, as {{role=db}}")
        body = text[1:]
        matchers: list[Matcher] = []
        pos = 0
        if body.strip() == "}":
            raise InputError(f"label selector {text!r} is empty; write at least one matcher, as {{role=db}}")
        while pos < len(body):
            m = _SEL_ITEM.match(body, pos)
            if m is None:
                raise InputError(f"label selector {text!r} does not parse at {body[pos:-1].strip()!r}",
                                 hint="write name=value, name!=value, name=~regex or name!~regex, "
                                      "separated by commas, as {role=db, env!=dev}")
            name, op, value, end = m.groups()
            if value[:1] in "\"'" and len(value) >= 2:
                value = re.sub(r"\\(.)", r"\1", value[1:-1])
            matchers.append(Matcher.make(name, op, value))
            pos = m.end()
            if end == "}":
                if body[pos:].strip():
                    raise InputError(f"unexpected text after label selector {text!r}")
                break
        return cls(text, tuple(matchers))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels.get(m.name, "")) for m in self.matchers)


# -- resolution -------------------------------------------------------------------------------

_SUBSCRIPT = re.compile(r"^(.+)\[(?:(-?[0-9]+)|([0-9]+)([:-])([0-9]*))\]$")
_GLOB_CHARS = ("*", "?", "[")


def _order(terms: list[str]) -> list[str]:
    plain = [t for t in terms if t[0] not in "&!"]
    inter = [t for t in terms if t[0] == "&"]
    excl = [t for t in terms if t[0] == "!"]
    return (plain or ["all"]) + inter + excl


def _split_subscript(term: str) -> tuple[str, tuple[int, int | None] | None]:
    if term.startswith("~"):
        return term, None
    m = _SUBSCRIPT.match(term)
    if not m:
        return term, None
    expr, idx, start, _sep, end = m.groups()
    if idx:
        return expr, (int(idx), None)
    return expr, (int(start), int(end) if end else -1)


def _compile(expr: str) -> re.Pattern[str]:
    try:
        return re.compile(expr[1:]) if expr.startswith("~") else re.compile(fnmatch.translate(expr))
    except re.error as exc:
        raise InputError(f"invalid host pattern {expr!r}: {exc}") from None


class _Resolver:
    def __init__(self, source: PatternSource, pattern: str) -> None:
        self.src = source
        self.pattern = pattern
        self.hosts = list(source.host_names())
        self.host_set = set(self.hosts)
        self.groups = list(source.group_names())
        self.cache: dict[str, list[str]] = {}

    def unknown(self, expr: str) -> InputError:
        names = self.groups + self.hosts
        close = difflib.get_close_matches(expr, names, n=3)
        where = f" in pattern {self.pattern!r}" if self.pattern.strip() != expr else ""
        msg = f"no host or group named {expr!r}{where}"
        if close:
            msg += f"; did you mean {' or '.join(repr(c) for c in close)}?"
        return InputError(msg, hint="list what there is with `watchkeeper hosts`; groups: "
                                    + ", ".join(self.groups[:20]) + (" ..." if len(self.groups) > 20 else ""))

    def enumerate(self, expr: str) -> list[str]:
        if expr.startswith("{"):
            sel = LabelSelector.parse(expr)
            return [h for h in self.hosts if sel.matches(self.src.host_labels(h))]
        regex = _compile(expr)
        groups = [g for g in self.groups if regex.match(g)]
        results: list[str] = []
        for g in groups:
            results.extend(self.src.group_hosts(g))
        if not groups or expr.startswith("~") or any(c in expr for c in (".",) + _GLOB_CHARS):
            results.extend(h for h in self.hosts if regex.match(h))
        if not results and expr in LOCALHOST_NAMES:
            local = self.src.implicit_localhost()
            if local is not None:
                results.append(local)
        literal = not expr.startswith("~") and not any(c in expr for c in _GLOB_CHARS)
        if not results and not groups and literal and expr != "all":
            raise self.unknown(expr)
        return results

    def match_one(self, term: str) -> list[str]:
        body = term[1:] if term[0] in "&!" else term
        if body not in self.cache:
            expr, sub = _split_subscript(body)
            hosts = self.enumerate(expr)
            if sub is not None:
                start, end = sub
                try:
                    if end:
                        hosts = hosts[start:(len(hosts) - 1 if end == -1 else end) + 1]
                    else:
                        hosts = [hosts[start]]
                except IndexError:
                    raise InputError(f"no host at subscript [{start}] of {expr!r} "
                                     f"(it has {len(hosts)} host{'s' if len(hosts) != 1 else ''}; "
                                     f"the first is [0])") from None
            self.cache[body] = hosts
        return self.cache[body]

    def resolve(self) -> list[str]:
        out: list[str] = []
        for term in _order(split_pattern(self.pattern)):
            if term in self.host_set:
                out.append(term)
                continue
            that = self.match_one(term)
            if term[0] == "!":
                drop = set(that)
                out = [h for h in out if h not in drop]
            elif term[0] == "&":
                keep = set(that)
                out = [h for h in out if h in keep]
            else:
                seen = set(out)
                out.extend(h for h in that if h not in seen)
        return list(dict.fromkeys(out))


def resolve_pattern(source: PatternSource, pattern: str | Sequence[str]) -> list[str]:
    """The host names ``pattern`` selects from ``source``, in Ansible's order, without duplicates.

    Raises InputError for an unknown plain name (with a did-you-mean), a bad regex
    or label selector, or a subscript past the end.
    """
    text = pattern if isinstance(pattern, str) else ",".join(pattern)
    return _Resolver(source, text).resolve()
