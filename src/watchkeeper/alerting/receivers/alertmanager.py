"""Forward alerts to an existing Alertmanager through its ``POST /api/v2/alerts``.

Alerts are sent as Prometheus sends them: firing ones with ``endsAt`` = now +
``alert_ttl`` (so the other Alertmanager keeps them firing until the next
send), resolved ones with their resolution time as ``endsAt``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from watchkeeper.alerting.model import format_time
from watchkeeper.alerting.receivers._http import HTTPPoster
from watchkeeper.clock import Clock, SystemClock

if TYPE_CHECKING:
    import httpx

    from watchkeeper.alerting.config import AlertmanagerConfig

__all__ = ["AlertmanagerReceiver", "postable_alerts"]


def postable_alerts(message: dict[str, Any], now: float, ttl: float) -> list[dict[str, Any]]:
    """Alertmanager API v2 postable alerts for the message's alerts."""
    out = []
    for a in message["alerts"]:
        ends = a["endsAt"] if a["status"] == "resolved" else format_time(now + ttl)
        out.append({"labels": a["labels"], "annotations": a["annotations"],
                    "startsAt": a["startsAt"], "endsAt": ends,
                    "generatorURL": a["generatorURL"]})
    return out


class AlertmanagerReceiver:
    """``alertmanager_configs[]``: ``url`` is the Alertmanager's base URL."""

    def __init__(self, config: AlertmanagerConfig, *, client: httpx.AsyncClient | None = None,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        url = config.url.rstrip("/") + "/api/v2/alerts"
        self._http = HTTPPoster(url, config.http_config, what="alertmanager", client=client)

    async def send(self, payload: dict[str, Any]) -> None:
        await self._http.post(postable_alerts(payload, self.clock.time(), self.config.alert_ttl))

    async def aclose(self) -> None:
        await self._http.aclose()
