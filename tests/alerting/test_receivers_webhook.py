"""Webhook and Slack receivers against real HTTP servers on 127.0.0.1."""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import pytest

from tests.alerting._receiver_servers import recorder
from watchkeeper.alerting.config import WebhookConfig
from watchkeeper.alerting.model import Alert, AlertState
from watchkeeper.alerting.notify_templates import build_message
from watchkeeper.alerting.receivers.base import DeliveryError
from watchkeeper.alerting.receivers.webhook import WebhookReceiver

T = 1_700_000_000.0


def _message(n_firing: int = 2, resolved: bool = True) -> dict[str, Any]:
    alerts = [Alert(labels={"alertname": "DiskFull", "instance": f"web{i}", "severity": "critical",
                            "job": "node"},
                    annotations={"summary": "disk <full>", "runbook": f"https://rb/{i}"},
                    state=AlertState.FIRING, active_at=T, fired_at=T + 60,
                    generator_url="http://wk:8470/graph?g0.expr=x")
              for i in range(n_firing)]
    if resolved:
        alerts.append(Alert(labels={"alertname": "DiskFull", "instance": "db1",
                                    "severity": "critical", "job": "node"},
                            annotations={"summary": "disk <full>"}, state=AlertState.RESOLVED,
                            active_at=T, fired_at=T + 60, resolved_at=T + 600))
    return build_message(receiver="team", group_key='{}:{alertname="DiskFull"}',
                         group_labels={"alertname": "DiskFull"}, alerts=alerts,
                         external_url="http://wk.example:8470", extras={"action": "notify"})


def _rfc3339(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


async def test_webhook_payload_is_alertmanagers_version_4_field_by_field() -> None:
    async with recorder() as srv:
        rcv = WebhookReceiver(WebhookConfig(url=srv.url("/am")))
        try:
            await rcv.send(_message())
        finally:
            await rcv.aclose()
    req = srv.requests[0]
    assert (req.method, req.path, req.headers["content-type"]) == ("POST", "/am",
                                                                   "application/json")
    body = req.json()
    # https://prometheus.io/docs/alerting/latest/configuration/#webhook_config
    assert set(body) == {"version", "groupKey", "truncatedAlerts", "status", "receiver",
                         "groupLabels", "commonLabels", "commonAnnotations", "externalURL",
                         "alerts"}
    assert body["version"] == "4"
    assert body["groupKey"] == '{}:{alertname="DiskFull"}'
    assert body["truncatedAlerts"] == 0
    assert body["status"] == "firing"
    assert body["receiver"] == "team"
    assert body["groupLabels"] == {"alertname": "DiskFull"}
    assert body["commonLabels"] == {"alertname": "DiskFull", "job": "node", "severity": "critical"}
    assert body["commonAnnotations"] == {"summary": "disk <full>"}
    assert body["externalURL"] == "http://wk.example:8470"
    assert [a["labels"]["instance"] for a in body["alerts"]] == ["db1", "web0", "web1"]
    for a in body["alerts"]:
        assert set(a) == {"status", "labels", "annotations", "startsAt", "endsAt", "generatorURL",
                          "fingerprint"}
        assert len(a["fingerprint"]) == 16
        assert _rfc3339(a["startsAt"]) == T + 60
    db1, web0 = body["alerts"][0], body["alerts"][1]
    assert (db1["status"], _rfc3339(db1["endsAt"])) == ("resolved", T + 600)
    assert (web0["status"], web0["endsAt"]) == ("firing", "0001-01-01T00:00:00Z")
    assert web0["generatorURL"] == "http://wk:8470/graph?g0.expr=x"
    assert web0["startsAt"] == "2023-11-14T22:14:20.000Z"


async def test_max_alerts_truncates_and_counts() -> None:
    async with recorder() as srv:
        rcv = WebhookReceiver(WebhookConfig(url=srv.url(), max_alerts=1))
        try:
            await rcv.send(_message(3, resolved=False))
        finally:
            await rcv.aclose()
    body = srv.requests[0].json()
    assert (len(body["alerts"]), body["truncatedAlerts"]) == (1, 2)


@pytest.mark.parametrize(("http_config", "expected"), [
    ({"basic_auth": {"username": "am", "password": "pw-secret"}},
     "Basic " + base64.b64encode(b"am:pw-secret").decode()),
    ({"authorization": {"credentials": "tok-secret"}}, "Bearer tok-secret"),
    ({"bearer_token": "tok-legacy"}, "Bearer tok-legacy"),
])
async def test_http_config_auth(http_config: dict[str, Any], expected: str) -> None:
    async with recorder() as srv:
        rcv = WebhookReceiver(WebhookConfig.model_validate({"url": srv.url(),
                                                           "http_config": http_config}))
        try:
            await rcv.send(_message())
        finally:
            await rcv.aclose()
    assert srv.requests[0].headers["authorization"] == expected


@pytest.mark.parametrize(("kw", "retryable", "status", "text"), [
    ({"status": 500, "body": "internal"}, True, 500, "HTTP 500: internal"),
    ({"status": 429, "body": "slow down"}, True, 429, "HTTP 429: slow down"),
    ({"status": 400, "body": "bad"}, False, 400, "HTTP 400: bad"),
    ({"status": 404, "body": ""}, False, 404, "HTTP 404"),
    ({"mode": "drop"}, True, None, "connection dropped"),
])
async def test_failures_are_classified_and_never_show_the_url_path(
        kw: dict[str, Any], retryable: bool, status: int | None, text: str) -> None:
    async with recorder(**kw) as srv:
        rcv = WebhookReceiver(WebhookConfig(url=srv.url("/hooks/T0/secret-token?key=abc"),
                                            http_config={"bearer_token": "tok-secret"}))
        try:
            with pytest.raises(DeliveryError) as info:
                await rcv.send(_message())
        finally:
            await rcv.aclose()
    err = info.value
    assert (err.retryable, err.status_code) == (retryable, status)
    assert str(err).startswith(f"webhook http://127.0.0.1:{srv.port}: {text}")
    for secret in ("secret-token", "abc", "tok-secret"):
        assert secret not in str(err)


async def test_a_hanging_server_times_out_as_retryable() -> None:
    async with recorder(mode="hang") as srv:
        rcv = WebhookReceiver(WebhookConfig(url=srv.url(), timeout=0.3))
        try:
            with pytest.raises(DeliveryError) as info:
                await rcv.send(_message())
        finally:
            await rcv.aclose()
    assert info.value.retryable and "no answer within 0.3s" in str(info.value)


async def test_nothing_listening_is_retryable() -> None:
    async with recorder() as srv:
        url = srv.url()
    rcv = WebhookReceiver(WebhookConfig(url=url))
    try:
        with pytest.raises(DeliveryError) as info:
            await rcv.send(_message())
    finally:
        await rcv.aclose()
    assert info.value.retryable and "cannot connect" in str(info.value)
