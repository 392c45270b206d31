"""Parsing of time and duration parameters as Prometheus's HTTP API accepts them.

Errors use Prometheus's wording (``invalid parameter "start": cannot parse "x"
to a valid timestamp``), so clients that show them read the same text.
"""

from __future__ import annotations

import math
from datetime import datetime

from watchkeeper.errors import QueryError
from watchkeeper.units import parse_duration

__all__ = ["MAX_TIME", "MIN_TIME", "parse_step", "parse_time"]

# Prometheus's bounds (its minTime/maxTime): times in milliseconds fit in an int64
MIN_TIME = -9_223_309_901_257_974.0
MAX_TIME = 9_223_309_901_257_974.0
_MAX_STEP = (2**63 - 1) / 1e9  # a step is an int64 of nanoseconds


def parse_time(text: str | None, default: float | None, name: str = "time") -> float:
    """Unix seconds (``1700000000.5``) or RFC 3339 (``2024-01-01T00:00:00Z``).

    A missing or empty value gives ``default``; with ``default`` None the
    parameter is required. Times beyond Prometheus's range (about ±292 million
    years) are clamped to it, so that in milliseconds they still fit the store's
    integers. Raises QueryError for text that is neither form, and for a
    date-time without a UTC offset (RFC 3339 requires one; guessing the
    server's local zone would shift the answer silently).
    """
    if text is None or text == "":
        if default is None:
            raise QueryError(f'invalid parameter "{name}": cannot parse "" to a valid timestamp')
        return default
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if math.isfinite(value):
            return min(max(value, MIN_TIME), MAX_TIME)
        raise QueryError(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp')
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise QueryError(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp')
    return min(max(parsed.timestamp(), MIN_TIME), MAX_TIME)


def parse_step(text: str | None, name: str = "step") -> float:
    """Seconds as a float (``15``, ``0.5``, also ``0`` and negatives, which the caller
    refuses with Prometheus's own message), or a duration such as ``15s`` / ``1m30s``.

    Raises QueryError when the parameter is missing, is neither form, or is more
    nanoseconds than an int64 holds (as Prometheus).
    """
    if text is None or text == "":
        raise QueryError(f'invalid parameter "{name}": cannot parse "" to a valid duration')
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if abs(value) > _MAX_STEP:
            raise QueryError(f'invalid parameter "{name}": cannot parse "{text}" to a valid '
                             "duration. It overflows int64")
        if math.isfinite(value):
            return value
        raise QueryError(f'invalid parameter "{name}": cannot parse "{text}" to a valid duration')
    try:
        return parse_duration(text)
    except ValueError:
        raise QueryError(f'invalid parameter "{name}": cannot parse "{text}" to a valid duration') from None
