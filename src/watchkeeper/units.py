"""Durations and sizes as people write them in config files (``30s``, ``1h30m``, ``10MiB``)."""

from __future__ import annotations

import math
import re

__all__ = ["parse_duration", "format_duration", "parse_size"]

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0,
                   "w": 7 * 86400.0, "y": 365 * 86400.0}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")


def parse_duration(value: str | int | float) -> float:
    """Return seconds for ``30s``, ``1m``, ``1h30m``, ``500ms``, or a bare number of seconds.

    Raises ValueError with the accepted forms when the text is not a duration.
    """
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; use forms like 500ms, 30s, 5m, 1h30m, 7d")
    if isinstance(value, (int, float)):
        # a number is seconds; like the text forms it cannot be negative, NaN or infinite
        if not 0 <= value < math.inf:
            raise ValueError(f"{value!r} is not a duration; use forms like 500ms, 30s, 5m, "
                             "1h30m, 7d")
        return float(value)
    text = value.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    pos = 0
    total = 0.0
    for m in _DURATION_RE.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _DURATION_UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text) or not text:
        raise ValueError(f"{value!r} is not a duration; use forms like 500ms, 30s, 5m, 1h30m, 7d")
    return total


def format_duration(seconds: float) -> str:
    """Render seconds the way Prometheus does (``1h30m``, ``15s``, ``250ms``)."""
    if seconds == 0:
        return "0s"
    if round(seconds * 1000) < 1000:  # 0.9996 is 1s, not 1000ms
        return f"{round(seconds * 1000)}ms"
    out = []
    rest = int(round(seconds))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            out.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(out)


_SIZE_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2,
               "g": 1000**3, "gb": 1000**3, "t": 1000**4, "tb": 1000**4,
               "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}


def parse_size(value: str | int) -> int:
    """Return bytes for ``512``, ``10MB``, ``1GiB``.

    Raises ValueError with the accepted forms when the value is not a size
    (text in another form, a negative number, a boolean).
    """
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*", value) if isinstance(value, str) else None
    if not m or m.group(2).lower() not in _SIZE_UNITS:
        raise ValueError(f"{value!r} is not a size; use forms like 512, 10MB, 1GiB")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])
