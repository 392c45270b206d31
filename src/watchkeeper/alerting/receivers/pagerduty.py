"""PagerDuty Events API v2: trigger, acknowledge and resolve, one incident per alert group.

``dedup_key`` is the SHA-256 of the group key (as Alertmanager computes it), so
every notification of a group updates the same incident. A notification whose
group has only resolved alerts resolves it; one marked as an acknowledgement
(every firing alert of the group acked) acknowledges it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.alerting.notify_templates import default_title, pagerduty_details, render
from watchkeeper.alerting.receivers._http import HTTPPoster
from watchkeeper.alerting.receivers.base import DeliveryError

if TYPE_CHECKING:
    import httpx

    from watchkeeper.alerting.config import PagerdutyConfig

__all__ = ["PagerdutyReceiver", "dedup_key", "event_for"]

MAX_SUMMARY = 1024


def dedup_key(group_key: str) -> str:
    """The incident key of a group: hex SHA-256 of its group key."""
    return hashlib.sha256(group_key.encode()).hexdigest()


def event_action(message: dict[str, Any]) -> str:
    if message["status"] == "resolved":
        return "resolve"
    if message.get("watchkeeper", {}).get("action") == "acknowledge":
        return "acknowledge"
    return "trigger"


def event_for(config: PagerdutyConfig, routing_key: str, message: dict[str, Any]) -> dict[str, Any]:
    """The Events v2 JSON for ``message``. Raises TemplateError for a bad template."""
    summary = render(config.description, message, default_title(message))
    if len(summary) > MAX_SUMMARY:
        summary = summary[: MAX_SUMMARY - 1] + "…"
    details = pagerduty_details(message)
    if config.details is not None:
        details = {k: render(v, message, "") for k, v in config.details.items()}
    client = render(config.client, message, "watchkeeper")
    payload: dict[str, Any] = {
        "summary": summary,
        "source": render(config.source, message, client),
        "severity": render(config.severity, message, "error"),
        "custom_details": details,
    }
    for key, value in (("class", config.class_), ("component", config.component),
                       ("group", config.group)):
        if value is not None:
            payload[key] = render(value, message, "")
    return {
        "routing_key": routing_key,
        "event_action": event_action(message),
        "dedup_key": dedup_key(message["groupKey"]),
        "payload": payload,
        "client": client,
        "client_url": render(config.client_url, message, message.get("externalURL", "")),
    }


class PagerdutyReceiver:
    """``pagerduty_configs[]``; ``url`` falls back to ``global.pagerduty_url``."""

    def __init__(self, config: PagerdutyConfig, *, url: str,
                 client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        self._key = config.routing_key or Path(config.routing_key_file or "").read_text().strip()
        self._http = HTTPPoster(config.url or url, config.http_config, what="pagerduty",
                                client=client, extra_secrets=(self._key,))

    async def send(self, payload: dict[str, Any]) -> None:
        from watchkeeper.alerting.templating import TemplateError

        try:
            event = event_for(self.config, self._key, payload)
        except TemplateError as exc:
            raise DeliveryError(f"pagerduty: template error: {exc.message}",
                                retryable=False) from None
        await self._http.post(event)

    async def aclose(self) -> None:
        await self._http.aclose()
