"""Alerts as every part of alerting sees them: rules make them, routing sends them.

An alert is identified by its label set; ``fingerprint`` is a stable hash of
it (16 hex digits), as Alertmanager identifies alerts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

__all__ = ["Alert", "AlertState", "fingerprint", "format_time"]


class AlertState(StrEnum):
    PENDING = "pending"  # active, waiting out its ``for``
    FIRING = "firing"
    RESOLVED = "resolved"  # was firing (or pending) and is no longer active


def fingerprint(labels: Mapping[str, str]) -> str:
    """A stable 16-hex-digit id of a label set (order does not matter)."""
    h = hashlib.sha256()
    for k in sorted(labels):
        h.update(k.encode())
        h.update(b"\xff")
        h.update(str(labels[k]).encode())
        h.update(b"\xff")
    return h.hexdigest()[:16]


def format_time(ts: float | None) -> str:
    """RFC 3339 with milliseconds in UTC, as Alertmanager writes times; "0001-01-01T00:00:00Z" for none."""
    from datetime import UTC, datetime

    if ts is None:
        return "0001-01-01T00:00:00Z"
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Alert:
    """One alert instance.

    ``active_at``: when it became active (pending); ``fired_at``: when it started
    firing (Alertmanager's ``startsAt``); ``resolved_at``: when it stopped
    (``endsAt``); ``ends_at``: for alerts sent to the API, when they expire
    unless sent again. ``source`` is "rule", "check" or "api"; ``rule`` names the
    rule as "group/alertname".
    """

    labels: dict[str, str]
    annotations: dict[str, str] = field(default_factory=dict)
    state: AlertState = AlertState.PENDING
    active_at: float = 0.0
    fired_at: float | None = None
    resolved_at: float | None = None
    last_seen: float = 0.0
    ends_at: float | None = None
    keep_firing_since: float | None = None
    value: float | None = None
    source: str = "rule"
    rule: str | None = None
    generator_url: str = ""
    acked_by: str | None = None
    acked_at: float | None = None
    ack_comment: str | None = None

    @property
    def fingerprint(self) -> str:
        return fingerprint(self.labels)

    @property
    def name(self) -> str:
        return self.labels.get("alertname", "")

    def to_webhook(self) -> dict[str, Any]:
        """This alert in Alertmanager's webhook (version 4) payload form."""
        return {
            "status": "resolved" if self.state == AlertState.RESOLVED else "firing",
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": format_time(self.fired_at if self.fired_at is not None else self.active_at),
            "endsAt": format_time(self.resolved_at if self.state == AlertState.RESOLVED else None),
            "generatorURL": self.generator_url,
            "fingerprint": self.fingerprint,
        }
