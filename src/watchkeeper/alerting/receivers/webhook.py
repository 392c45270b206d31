"""Webhook: POST Alertmanager's version 4 JSON, so every Alertmanager webhook consumer works."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.alerting.notify_templates import strip_extras
from watchkeeper.alerting.receivers._http import HTTPPoster

if TYPE_CHECKING:
    import httpx

    from watchkeeper.alerting.config import WebhookConfig

__all__ = ["WebhookReceiver", "truncate"]


def truncate(message: dict[str, Any], max_alerts: int) -> dict[str, Any]:
    """Keep the first ``max_alerts`` alerts (0: all) and count the rest in ``truncatedAlerts``."""
    body = strip_extras(message)
    alerts = body["alerts"]
    if max_alerts and len(alerts) > max_alerts:
        body["alerts"] = alerts[:max_alerts]
        body["truncatedAlerts"] = len(alerts) - max_alerts
    return body


class WebhookReceiver:
    """``webhook_configs[]``. Raises DeliveryError (see receivers.base) when not accepted."""

    def __init__(self, config: WebhookConfig, *, client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        url = config.url or Path(config.url_file or "").read_text().strip()
        kw: dict[str, Any] = {"timeout": config.timeout} if config.timeout else {}
        self._http = HTTPPoster(url, config.http_config, what="webhook", client=client, **kw)

    async def send(self, payload: dict[str, Any]) -> None:
        await self._http.post(truncate(payload, self.config.max_alerts))

    async def aclose(self) -> None:
        await self._http.aclose()
