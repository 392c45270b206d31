"""What checks and collectors produce: states, samples and results, and their Protocols."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Protocol, runtime_checkable

__all__ = ["State", "Sample", "CheckResult", "Check", "Collector", "CheckContext"]


class State(IntEnum):
    """A check's outcome, numbered as Nagios plugins number their exit codes."""

    OK = 0
    WARNING = 1
    CRITICAL = 2
    UNKNOWN = 3

    @classmethod
    def from_exit_code(cls, code: int) -> State:
        """Map a plugin exit code to a state; anything outside 0-3 is UNKNOWN."""
        return cls(code) if 0 <= code <= 3 else cls.UNKNOWN

    def worse(self, other: State) -> State:
        """The worse of two states, ordered OK < WARNING < UNKNOWN < CRITICAL."""
        order = {State.OK: 0, State.WARNING: 1, State.UNKNOWN: 2, State.CRITICAL: 3}
        return self if order[self] >= order[other] else other


@dataclass(frozen=True, slots=True)
class Sample:
    """One value on a labelled series. ``labels`` excludes ``__name__``.

    ``timestamp`` is seconds since the epoch; None means "when it was collected".
    """

    name: str
    labels: Mapping[str, str]
    value: float
    timestamp: float | None = None


@dataclass(slots=True)
class CheckResult:
    """What one run of a check found.

    ``summary`` is one line for tables and notifications; ``details`` holds any
    further lines (a plugin's long output). ``metrics`` are extra samples the
    check measured (latency, certificate days left, perfdata); the runner adds
    ``watchkeeper_check_*`` series itself.
    """

    state: State
    summary: str
    duration_seconds: float = 0.0
    metrics: list[Sample] = field(default_factory=list)
    details: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.name,
            "summary": self.summary,
            "details": self.details,
            "duration_seconds": self.duration_seconds,
            "metrics": [
                {"name": m.name, "labels": dict(m.labels), "value": m.value} for m in self.metrics
            ],
        }


@dataclass(frozen=True, slots=True)
class CheckContext:
    """What the world gives a check run: its deadline and the shared resources.

    ``timeout`` is the seconds the check may take; the runner also enforces it
    from outside with ``asyncio.timeout`` so a check that ignores it is still cut off.
    """

    timeout: float
    proc_root: str = "/proc"
    resources: Mapping[str, Any] = field(default_factory=dict)


@runtime_checkable
class Check(Protocol):
    """A check type. One module per type under ``monitor/checks/``.

    ``run`` never raises for a failing target: it returns CRITICAL (or WARNING,
    UNKNOWN) with a summary that says what was wrong. It may raise
    ``CheckExecutionError`` when the check cannot run at all; the runner turns
    that and any other exception into UNKNOWN.
    """

    async def run(self, ctx: CheckContext) -> CheckResult: ...


@runtime_checkable
class Collector(Protocol):
    """Something that produces samples on each tick (the host collector, a scrape)."""

    name: str

    async def collect(self) -> Sequence[Sample]: ...
