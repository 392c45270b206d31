"""Prometheus's ``humanize*`` template functions, and the number conversion they share."""

from __future__ import annotations

import math
from typing import Any

from watchkeeper.alerting._gotemplate.errors import TemplateError
from watchkeeper.alerting._gotemplate.goformat import (
    format_g4,
    go_format_float,
    go_time,
    parse_go_float,
)
from watchkeeper.alerting._gotemplate.values import go_quote, type_name

__all__ = [
    "humanize",
    "humanize1024",
    "humanize_duration",
    "humanize_percentage",
    "humanize_timestamp",
    "to_float",
]


def to_float(v: Any, func: str) -> float:
    """Prometheus's convertToFloat: numbers, and strings that parse as numbers."""
    if isinstance(v, bool):
        raise TemplateError(f"error calling {func}: can't convert bool to float")
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            return parse_go_float(v)
        except ValueError:
            raise TemplateError(f'error calling {func}: strconv.ParseFloat: parsing {go_quote(v)}: '
                                "invalid syntax") from None
    raise TemplateError(f"error calling {func}: can't convert {type_name(v)} to float")


_SI_UP = ("k", "M", "G", "T", "P", "E", "Z", "Y")
_SI_DOWN = ("m", "u", "n", "p", "f", "a", "z", "y")


def humanize(v: Any) -> str:
    """Prometheus's ``humanize``: SI prefixes, 4 significant digits (1234567 -> ``1.235M``)."""
    x = to_float(v, "humanize")
    if x == 0 or math.isnan(x) or math.isinf(x):
        return format_g4(x)
    prefix = ""
    if abs(x) >= 1:
        for p in _SI_UP:
            if abs(x) < 1000:
                break
            prefix = p
            x /= 1000
        return format_g4(x) + prefix
    for p in _SI_DOWN:
        if abs(x) >= 1:
            break
        prefix = p
        x *= 1000
    return format_g4(x) + prefix


def humanize1024(v: Any) -> str:
    """Prometheus's ``humanize1024``: binary prefixes (1048576 -> ``1Mi``)."""
    x = to_float(v, "humanize1024")
    if abs(x) <= 1 or math.isnan(x) or math.isinf(x):
        return format_g4(x)
    prefix = ""
    for p in ("ki", "Mi", "Gi", "Ti", "Pi", "Ei", "Zi", "Yi"):
        if abs(x) < 1024:
            break
        prefix = p
        x /= 1024
    return format_g4(x) + prefix


def humanize_duration(v: Any) -> str:
    """Prometheus's ``humanizeDuration``: seconds as ``1d 2h 3m 4s``, ``1.234s``, ``100ms``."""
    x = to_float(v, "humanizeDuration")
    if math.isnan(x) or math.isinf(x):
        return format_g4(x)
    if x == 0:
        return format_g4(x) + "s"
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
        return f"{sign}{format_g4(x)}s"
    prefix = ""
    for p in _SI_DOWN:
        if abs(x) >= 1:
            break
        prefix = p
        x *= 1000
    return f"{format_g4(x)}{prefix}s"


def humanize_percentage(v: Any) -> str:
    """Prometheus's ``humanizePercentage``: a ratio as a percentage (0.1234567 -> ``12.35%``)."""
    return format_g4(to_float(v, "humanizePercentage") * 100) + "%"


def humanize_timestamp(v: Any) -> str:
    """Prometheus's ``humanizeTimestamp``: Unix seconds as Go prints a UTC time, to the millisecond."""
    x = to_float(v, "humanizeTimestamp")
    if math.isnan(x) or math.isinf(x):
        return format_g4(x)
    ns = x * 1e9
    if not -(2.0**63) <= ns < 2.0**63:
        raise TemplateError(f"error calling humanizeTimestamp: {go_format_float(x)} cannot be "
                            "represented as a nanoseconds timestamp since it overflows int64")
    ms = math.floor(int(ns) / 1_000_000) if int(ns) >= 0 else -((-int(ns)) // 1_000_000)
    return go_time(ms)
