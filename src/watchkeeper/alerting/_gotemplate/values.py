"""What templates see, and how Go prints, compares for truth and names it.

:class:`QuerySample` is an element of a ``query`` result, ``_Data`` the
alert data Prometheus passes (``.Labels .ExternalLabels .ExternalURL .Value``),
:data:`MISSING` Go's invalid value (``<no value>``). :func:`format_value` is
``fmt``'s ``%v``, :func:`truth` Go's template truth, :func:`type_name` the Go
type name error messages use.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from watchkeeper.alerting._gotemplate.goformat import go_format_float

__all__ = [
    "MISSING",
    "QueryFunc",
    "QuerySample",
    "format_value",
    "go_quote",
    "truth",
    "type_name",
]


@dataclass
class QuerySample:
    """One element of a ``query`` result, as templates see it: ``.Labels`` and ``.Value``."""

    Labels: dict[str, str]
    Value: float


QueryFunc = Callable[[str], Sequence[QuerySample]]
"""Runs a PromQL instant query at the rule's evaluation time (for ``{{ query "..." }}``)."""


# Named _Data because type_name() prints the class name in errors
# ("can't evaluate field X in type _Data").
@dataclass
class _Data:
    """Prometheus's alert template data: ``.Labels .ExternalLabels .ExternalURL .Value``."""

    Labels: dict[str, str]
    ExternalLabels: dict[str, str]
    ExternalURL: str
    Value: Any


class _Missing:
    """Go's invalid reflect.Value: prints ``<no value>``."""

    def __repr__(self) -> str:
        return "<no value>"


MISSING = _Missing()


def type_name(v: Any) -> str:
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


def format_value(v: Any) -> str:
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
        return "map[" + " ".join(f"{k}:{format_value(v[k])}" for k in sorted(v)) + "]"
    if isinstance(v, (list, tuple)):
        return "[" + " ".join(format_value(x) for x in v) + "]"
    if isinstance(v, QuerySample):
        return "&{" + format_value(v.Labels) + " " + format_value(v.Value) + "}"
    return str(v)


def truth(v: Any) -> bool:
    if v is None or v is MISSING:
        return False
    if isinstance(v, (bool, int, float, str, list, tuple, dict)):
        return bool(v)
    return True


def go_quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
