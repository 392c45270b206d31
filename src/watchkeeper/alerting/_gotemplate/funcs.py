"""The functions templates call: Go's built-ins and Prometheus's template functions.

:data:`FUNCS` maps each name to its callable and whether it needs the
executor (``query``, ``pathPrefix``, ``externalURL``). A function fails with
:class:`~.errors.TemplateError`; the executor adds the position and name.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from watchkeeper.alerting._gotemplate.errors import TemplateError
from watchkeeper.alerting._gotemplate.goformat import go_duration, special_float
from watchkeeper.alerting._gotemplate.humanize import (
    humanize,
    humanize1024,
    humanize_duration,
    humanize_percentage,
    humanize_timestamp,
    to_float,
)
from watchkeeper.alerting._gotemplate.values import (
    MISSING,
    QuerySample,
    format_value,
    go_quote,
    truth,
    type_name,
)

__all__ = ["FUNCS"]


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
                raise TemplateError(f"error calling index: cannot index slice/array with type {type_name(k)}")
            if not 0 <= k < len(v):
                raise TemplateError(f"error calling index: index out of range: {k}")
            v = v[k] if not isinstance(v, str) else ord(v[k])
        else:
            raise TemplateError(f"error calling index: can't index item of type {type_name(v)}")
    return v


def _len(v: Any) -> int:
    if isinstance(v, (str, list, tuple, dict)):
        return len(v.encode() if isinstance(v, str) else v)
    raise TemplateError(f"error calling len: len of type {type_name(v)}")


def _go_print(*args: Any) -> str:
    # fmt.Sprint adds spaces between operands when neither is a string
    out = ""
    for i, a in enumerate(args):
        if i and not isinstance(a, str) and not isinstance(args[i - 1], str):
            out += " "
        out += format_value(a)
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
        out.append("%!(EXTRA " + ", ".join(f"{type_name(a)}={format_value(a)}" for a in extra) + ")")
    return "".join(out)


def _format_one(flags: str, width: str | None, prec: str | None, verb: str, arg: Any) -> str:
    spec = "%" + flags + (width or "") + (f".{prec}" if prec is not None else "")
    if verb in "vs":
        text = format_value(arg)
        if prec is not None and verb == "s":
            text = text[:int(prec)]
        return _pad(text, flags, width)
    if verb == "q" and isinstance(arg, str):
        return _pad(go_quote(arg), flags, width)
    if verb == "t" and isinstance(arg, bool):
        return _pad(format_value(arg), flags, width)
    if verb in "dxXoc" and isinstance(arg, int) and not isinstance(arg, bool):
        return _pad(chr(arg), flags, width) if verb == "c" else (spec + verb) % arg
    if verb == "b" and isinstance(arg, int) and not isinstance(arg, bool):
        return _pad(format(arg, "b"), flags, width)
    if verb in "eEfFgG" and isinstance(arg, (int, float)) and not isinstance(arg, bool):
        x = float(arg)
        special = special_float(x)
        if special is not None:
            return _pad(special, flags, width)
        return (spec + verb) % x
    if verb in "xX" and isinstance(arg, str):
        hexed = arg.encode().hex()
        return _pad(hexed if verb == "x" else hexed.upper(), flags, width)
    return f"%!{verb}({type_name(arg)}={format_value(arg)})"


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
                            f"got {type_name(v)}")
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
                            f"template.queryResult; got {type_name(v)}")
    if not v:
        raise TemplateError("error calling first: first() called on vector with no elements")
    return v[0]


def _sample(v: Any, func: str) -> QuerySample:
    if not isinstance(v, QuerySample):
        raise TemplateError(f"error calling {func}: wrong type for value; expected "
                            f"*template.sample; got {type_name(v)}")
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
#: name -> (callable, needs context). Context functions get the Executor as first argument.
FUNCS: dict[str, tuple[_Func, bool]] = {
    "and": (lambda *a: a, False),  # special-cased (short circuit)
    "or": (lambda *a: a, False),  # special-cased
    "not": (lambda v: not truth(v), False),
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
    "println": (lambda *a: " ".join(format_value(x) for x in a) + "\n", False),
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
    "toDuration": (lambda v: go_duration(to_float(v, "toDuration")), False),
    "toTime": (lambda v: humanize_timestamp(v), False),
    "query": (lambda ex, q: ex.query(q), True),
    "pathPrefix": (lambda ex: urllib.parse.urlsplit(ex.external_url).path, True),
    "externalURL": (lambda ex: ex.external_url, True),
}
