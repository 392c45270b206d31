"""Parsing of time and duration parameters as Prometheus's HTTP API accepts them."""

from __future__ import annotations

import math
from datetime import datetime

from watchkeeper.errors import QueryError
from watchkeeper.units import parse_duration

__all__ = ["parse_time", "parse_step"]


def parse_time(text: str | None, default: float, name: str = "time") -> float:
    """Unix seconds (``1700000000.5``) or RFC 3339 (``2024-01-01T00:00:00Z``)."""
    if text is None or text == "":
        return default
    try:
        value = float(text)
        if math.isnan(value) or math.isinf(value):
            raise ValueError
        return value
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise QueryError(f'invalid parameter "{name}": cannot parse "{text}" to a valid timestamp') from None


def parse_step(text: str | None, name: str = "step") -> float:
    """Seconds as a float, or a duration such as ``15s`` / ``1m``."""
    if text is None or text == "":
        raise QueryError(f'invalid parameter "{name}": missing')
    try:
        return parse_duration(text)
    except ValueError:
        raise QueryError(f'invalid parameter "{name}": cannot parse "{text}" to a valid duration') from None
