"""Field types shared by config models: durations and sizes with readable errors."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from watchkeeper.units import format_duration, parse_duration, parse_size

__all__ = ["Duration", "duration_at_least", "Size", "StrictModel"]

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Base for every config model: unknown keys are errors, values are not coerced loosely."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def _duration(minimum: float | None) -> Any:
    def parse(value: Any) -> float:
        try:
            seconds = parse_duration(value)
        except (ValueError, TypeError):
            raise PydanticCustomError(
                "duration", '"{value}" is not a duration; use forms like 500ms, 30s, 5m, 1h30m, 7d',
                {"value": value},
            ) from None
        if minimum is not None and seconds < minimum:
            raise PydanticCustomError(
                "duration_min", '"{value}" must be at least {minimum}',
                {"value": value, "minimum": format_duration(minimum)},
            )
        return seconds

    return BeforeValidator(parse)


def duration_at_least(minimum: float) -> Any:
    """An ``Annotated`` float of seconds that must be at least ``minimum`` seconds."""
    return Annotated[float, _duration(minimum)]


Duration = Annotated[float, _duration(0.0)]
"""Seconds, written as ``30s``, ``5m``, ``1h30m`` or a bare number."""


def _size(value: Any) -> int:
    try:
        return parse_size(value)
    except (ValueError, TypeError):
        raise PydanticCustomError(
            "size", '"{value}" is not a size; use forms like 512, 10MB, 1GiB', {"value": value}
        ) from None


Size = Annotated[int, BeforeValidator(_size)]
