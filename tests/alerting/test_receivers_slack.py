"""Slack-compatible incoming webhooks against a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import pytest

from tests.alerting._receiver_servers import Request, recorder
from tests.alerting.test_receivers_webhook import _message
from watchkeeper.alerting.config import SlackConfig
from watchkeeper.alerting.receivers.base import DeliveryError
from watchkeeper.alerting.receivers.slack import SlackReceiver


def _slack_like(req: Request) -> tuple[int, str]:
    """What Slack answers: "ok", or 400 "invalid_payload" / "no_text"."""
    try:
        body = req.json()
    except ValueError:
        return 400, "invalid_payload"
    if not body.get("text") and not body.get("attachments"):
        return 400, "no_text"
    return 200, "ok"


async def test_default_message_is_alertmanagers_attachment() -> None:
    async with recorder(handler=_slack_like) as srv:
        rcv = SlackReceiver(SlackConfig(api_url=srv.url("/services/T000/B000/XXXX"),
                                        channel="#ops", username="watchkeeper"))
        try:
            await rcv.send(_message())
        finally:
            await rcv.aclose()
    req = srv.requests[0]
    assert req.path == "/services/T000/B000/XXXX"
    body = req.json()
    assert (body["channel"], body["username"]) == ("#ops", "watchkeeper")
    [att] = body["attachments"]
    assert att["title"] == "[FIRING:2] DiskFull (node critical)"
    assert att["color"] == "danger"
    assert att["title_link"] == "http://wk.example:8470"
    assert att["fallback"] == att["title"]
    assert att["mrkdwn_in"] == ["fallback", "pretext", "text"]
    assert "Alerts Firing:" in att["text"] and "instance = web0" in att["text"]
    assert "Alerts Resolved:" in att["text"] and "instance = db1" in att["text"]


async def test_go_templates_in_title_and_text() -> None:
    cfg = SlackConfig(
        api_url="http://127.0.0.1:1/x",
        title='{{ template "slack.default.title" . }}',
        text='{{ range .Alerts }}{{ .Labels.instance }}={{ .Status }};{{ end }}'
             '{{ .CommonAnnotations.summary }} ({{ len .Alerts }})')
    async with recorder(handler=_slack_like) as srv:
        rcv = SlackReceiver(cfg.model_copy(update={"api_url": srv.url("/s")}))
        try:
            await rcv.send(_message())
        finally:
            await rcv.aclose()
    att = srv.requests[0].json()["attachments"][0]
    assert att["title"] == "[FIRING:2] DiskFull (node critical)"
    assert att["text"] == "db1=resolved;web0=firing;web1=firing;disk <full> (3)"


async def test_slack_errors_are_permanent_and_keep_the_url_secret() -> None:
    async with recorder(status=403, body="invalid_token") as srv:
        rcv = SlackReceiver(SlackConfig(api_url=srv.url("/services/T000/B000/SECRETXYZ")))
        try:
            with pytest.raises(DeliveryError) as info:
                await rcv.send(_message())
        finally:
            await rcv.aclose()
    assert not info.value.retryable
    assert str(info.value) == f"slack http://127.0.0.1:{srv.port}: HTTP 403: invalid_token"


async def test_a_bad_template_is_a_permanent_error() -> None:
    rcv = SlackReceiver(SlackConfig(api_url="http://127.0.0.1:1/x", title="{{ .Status "))
    try:
        with pytest.raises(DeliveryError) as info:
            await rcv.send(_message())
    finally:
        await rcv.aclose()
    assert not info.value.retryable and "template error" in str(info.value)
