"""Slack (and Slack-compatible: Mattermost, Rocket.Chat) incoming webhooks.

The body is Slack's incoming-webhook JSON with one attachment, as Alertmanager
sends it: ``{"channel", "username", "attachments": [{"title", "text", "color",
"fallback", ...}]}``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.alerting.notify_templates import alerts_text, default_title, render
from watchkeeper.alerting.receivers._http import HTTPPoster
from watchkeeper.alerting.receivers.base import DeliveryError

if TYPE_CHECKING:
    import httpx

    from watchkeeper.alerting.config import SlackConfig

__all__ = ["SlackReceiver", "slack_body"]


def slack_body(config: SlackConfig, message: dict[str, Any]) -> dict[str, Any]:
    """The JSON posted to Slack for ``message``. Raises TemplateError for a bad template."""
    title = render(config.title, message, default_title(message))
    color_default = "danger" if message["status"] == "firing" else "good"
    attachment: dict[str, Any] = {
        "title": title,
        "title_link": render(config.title_link, message, message.get("externalURL", "")),
        "text": render(config.text, message, alerts_text(message).rstrip()),
        "fallback": render(config.fallback, message, title),
        "color": render(config.color, message, color_default),
        "mrkdwn_in": config.mrkdwn_in or ["fallback", "pretext", "text"],
    }
    if config.pretext is not None:
        attachment["pretext"] = render(config.pretext, message, "")
    if config.footer is not None:
        attachment["footer"] = render(config.footer, message, "")
    body: dict[str, Any] = {"attachments": [attachment]}
    for key in ("channel", "username", "icon_emoji", "icon_url"):
        value = getattr(config, key)
        if value is not None:
            body[key] = render(value, message, "")
    if config.link_names:
        body["link_names"] = True
    return body


class SlackReceiver:
    """``slack_configs[]``. ``api_url`` falls back to ``global.slack_api_url``."""

    def __init__(self, config: SlackConfig, *, api_url: str | None = None,
                 client: httpx.AsyncClient | None = None) -> None:
        self.config = config
        url = config.api_url or (Path(config.api_url_file).read_text().strip()
                                 if config.api_url_file else api_url)
        if not url:
            raise DeliveryError("slack: no api_url (set it on the integration or "
                                "global.slack_api_url)", retryable=False)
        self._http = HTTPPoster(url, config.http_config, what="slack", client=client)

    async def send(self, payload: dict[str, Any]) -> None:
        from watchkeeper.alerting.templating import TemplateError

        try:
            body = slack_body(self.config, payload)
        except TemplateError as exc:
            raise DeliveryError(f"slack: template error: {exc.message}", retryable=False) from None
        await self._http.post(body)

    async def aclose(self) -> None:
        await self._http.aclose()
