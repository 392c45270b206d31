"""The config every check type shares, and the base its own config extends."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from watchkeeper.config.types import Duration, StrictModel, duration_at_least
from watchkeeper.units import format_duration, parse_duration

if TYPE_CHECKING:
    from watchkeeper.monitor.model import Check

__all__ = ["CheckAlertConfig", "CheckConfig", "FlappingConfig"]


class FlappingConfig(StrictModel):
    """Flap detection as Nagios does it: the share of state changes over the last ``window`` results."""

    window: int = Field(21, ge=3, le=200)
    low: float = Field(0.2, ge=0.0, le=1.0)
    high: float = Field(0.3, ge=0.0, le=1.0)

    @model_validator(mode="after")
    def _ordered(self) -> FlappingConfig:
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) must not be above high ({self.high:g})")
        return self


class CheckAlertConfig(StrictModel):
    """``alert:`` on a check: raise an alert when it fails ``after`` times in a row.

    The alert is named ``alertname`` (default ``CheckFailing``) and carries the
    labels ``check``, ``type``, ``severity`` and the check's own labels; it
    resolves on the first result that is not failing. ``on`` names the states
    that count as failing.
    """

    after: int = Field(1, ge=1, le=21)
    alertname: str = Field("CheckFailing", pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$")
    severity: str = "critical"
    on: tuple[Literal["WARNING", "CRITICAL", "UNKNOWN"], ...] = ("CRITICAL", "UNKNOWN")
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class CheckConfig(StrictModel):
    """Keys every check has. A check type subclasses this, sets ``type: Literal[...]``
    and implements ``build()``.

    ``max_attempts``: a state other than the current hard state becomes hard only
    after this many consecutive results agree (soft states before that), rechecked
    every ``retry_interval`` meanwhile.
    """

    name: str = Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:/@-]+$")
    type: str
    interval: duration_at_least(1.0) = 30.0  # type: ignore[valid-type]
    timeout: duration_at_least(0.001) = 10.0  # type: ignore[valid-type]
    jitter: Duration | None = None
    retry_interval: duration_at_least(1.0) | None = None  # type: ignore[valid-type]
    max_attempts: int = Field(1, ge=1, le=100)
    flapping: FlappingConfig = FlappingConfig()
    labels: dict[str, str] = Field(default_factory=dict)
    enabled: bool = True
    alert: CheckAlertConfig | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_timeout(cls, data: Any) -> Any:
        """With no ``timeout``, a check gets 10s or its interval, whichever is shorter."""
        if isinstance(data, dict) and data.get("timeout") is None:
            try:
                interval = parse_duration(data.get("interval", 30.0))
            except (TypeError, ValueError):
                return data  # the interval's own error is reported
            if interval >= 1.0:  # a too-short interval is reported on its own
                data = {**data, "timeout": min(10.0, interval)}
        return data

    @field_validator("timeout")
    @classmethod
    def _timeout_within_interval(cls, value: float, info: ValidationInfo) -> float:
        interval = info.data.get("interval")
        if interval is not None and value > interval:
            raise ValueError(
                f"{format_duration(value)} must not exceed the interval ({format_duration(interval)})"
            )
        return value

    def build(self) -> Check:
        """Return the runnable check for this config."""
        raise NotImplementedError
