"""Soft and hard states, and flap detection, as Nagios users know them.

A check starts in hard OK. From a hard OK, a non-OK result starts soft
attempts; after ``max_attempts`` consecutive non-OK results the state becomes
hard (the last result's state). From a hard non-OK state, any change of state
(including recovery to OK) is hard at once, so recoveries and escalations are
never delayed. ``max_attempts: 1`` makes every change hard at once.

Flapping: over the last ``window`` results, the share of results that differ
from their predecessor. Above ``high`` the check starts flapping; below ``low``
it stops.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from watchkeeper.monitor.model import State

__all__ = ["CheckStatus", "Transition", "advance"]


@dataclass(frozen=True)
class CheckStatus:
    name: str
    type: str
    state: State = State.OK
    state_type: str = "HARD"
    hard_state: State = State.OK
    attempt: int = 1
    since: float = 0.0
    last_run: float | None = None
    summary: str = "not run yet"
    duration: float = 0.0
    flapping: bool = False
    recent: tuple[int, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, object]:
        return {"name": self.name, "type": self.type, "state": self.state.name,
                "state_type": self.state_type, "hard_state": self.hard_state.name,
                "attempt": self.attempt, "since": self.since, "last_run": self.last_run,
                "summary": self.summary, "duration_seconds": self.duration,
                "flapping": self.flapping}


@dataclass(frozen=True)
class Transition:
    """What changed with one result: a hard state change and/or a flapping change."""

    hard_changed: bool
    previous_hard: State
    flapping_started: bool = False
    flapping_stopped: bool = False


def _flap_ratio(recent: tuple[int, ...]) -> float:
    if len(recent) < 2:
        return 0.0
    changes = sum(1 for a, b in zip(recent, recent[1:], strict=False) if a != b)
    return changes / (len(recent) - 1)


def advance(status: CheckStatus, state: State, *, now: float, summary: str, duration: float,
            max_attempts: int, window: int = 21, low: float = 0.2, high: float = 0.3
            ) -> tuple[CheckStatus, Transition]:
    """Fold one result into the status; return the new status and what changed."""
    prev_hard = status.hard_state
    if state == status.hard_state:
        new = replace(status, state=state, state_type="HARD", attempt=1)
    elif status.hard_state != State.OK or max_attempts <= 1:
        new = replace(status, state=state, state_type="HARD", hard_state=state, attempt=1, since=now)
    else:
        attempt = status.attempt + 1 if status.state_type == "SOFT" else 1
        if attempt >= max_attempts:
            new = replace(status, state=state, state_type="HARD", hard_state=state, attempt=attempt,
                          since=now)
        else:
            new = replace(status, state=state, state_type="SOFT", attempt=attempt)
    recent = (status.recent + (int(state),))[-window:]
    ratio = _flap_ratio(recent)
    flapping = status.flapping
    started = stopped = False
    if not flapping and len(recent) >= min(window, 3) and ratio > high:
        flapping, started = True, True
    elif flapping and ratio < low:
        flapping, stopped = False, True
    new = replace(new, last_run=now, summary=summary, duration=duration, recent=recent,
                  flapping=flapping)
    return new, Transition(new.hard_state != prev_hard, prev_hard, started, stopped)
