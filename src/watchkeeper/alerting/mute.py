"""Whether an alert is muted right now: by a silence, or by inhibition.

Routing asks :meth:`AlertMuter.muted` for each alert before notifying; the API
asks :meth:`AlertMuter.status` to show Alertmanager's ``silencedBy`` /
``inhibitedBy``. Silences are checked first, as Alertmanager does. Mute time
intervals belong to routes, not to alerts, and are the router's business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from watchkeeper.alerting.inhibit import Inhibitor
from watchkeeper.alerting.model import Alert, AlertState
from watchkeeper.alerting.silences import Silences

__all__ = ["AlertMuter", "MuteStatus"]


class _AlertSource(Protocol):
    def current(self, *, resolved_since: float | None = None) -> list[Alert]: ...


@dataclass
class MuteStatus:
    silenced_by: list[str] = field(default_factory=list)
    inhibited_by: list[str] = field(default_factory=list)

    @property
    def muted(self) -> bool:
        return bool(self.silenced_by or self.inhibited_by)


class AlertMuter:
    """Silences plus inhibition over the firing alerts of ``store``."""

    def __init__(self, silences: Silences, inhibitor: Inhibitor | None,
                 store: _AlertSource) -> None:
        self.silences = silences
        self.inhibitor = inhibitor or Inhibitor([])
        self.store = store

    def _firing(self, firing: Sequence[Alert] | None) -> Sequence[Alert]:
        if firing is not None:
            return firing
        if not self.inhibitor.rules:
            return []
        return [a for a in self.store.current() if a.state == AlertState.FIRING]

    def status(self, alert: Alert, now: float, *, firing: Sequence[Alert] | None = None
               ) -> MuteStatus:
        """Every silence muting ``alert`` and the alert inhibiting it, if any.

        ``firing`` (the firing alerts now) saves reading them again when many
        alerts are asked about in one pass.
        """
        st = MuteStatus(silenced_by=self.silences.silencing(alert.labels, now))
        src = self.inhibitor.inhibited_by(alert, self._firing(firing))
        if src is not None:
            st.inhibited_by.append(src)
        return st

    def muted(self, alert: Alert, now: float, *, firing: Sequence[Alert] | None = None
              ) -> str | None:
        """"silenced by ID", "inhibited by FINGERPRINT", or None when the alert may be sent."""
        ids = self.silences.silencing(alert.labels, now)
        if ids:
            return f"silenced by {ids[0]}"
        src = self.inhibitor.inhibited_by(alert, self._firing(firing))
        if src is not None:
            return f"inhibited by {src}"
        return None
