"""PagerDuty Events API v2 against a loopback fake of its enqueue endpoint."""

from __future__ import annotations

import json

import pytest

from tests.alerting._receiver_servers import Request, recorder
from tests.alerting.test_receivers_webhook import _message
from watchkeeper.alerting.config import PagerdutyConfig
from watchkeeper.alerting.notify_templates import build_message
from watchkeeper.alerting.receivers.base import DeliveryError
from watchkeeper.alerting.receivers.pagerduty import PagerdutyReceiver, dedup_key

KEY = "0123456789abcdef0123456789abcdef"


def _events_api(req: Request) -> tuple[int, str]:
    """The Events API v2 enqueue endpoint's checks and answers (202 or 400)."""
    if req.path != "/v2/enqueue":
        return 404, "{}"
    ev = req.json()
    errors = []
    if len(ev.get("routing_key", "")) != 32:
        errors.append("'routing_key' must be 32 characters")
    if ev.get("event_action") not in ("trigger", "acknowledge", "resolve"):
        errors.append("'event_action' is invalid")
    if ev.get("event_action") == "trigger":
        p = ev.get("payload") or {}
        for f in ("summary", "source", "severity"):
            if not p.get(f):
                errors.append(f"'payload.{f}' is missing or blank")
        if p.get("severity") not in ("critical", "error", "warning", "info"):
            errors.append("'payload.severity' is invalid")
    elif not ev.get("dedup_key"):
        errors.append("'dedup_key' is required")
    if errors:
        return 400, json.dumps({"status": "invalid event", "message": "Event object is invalid",
                                "errors": errors})
    return 202, json.dumps({"status": "success", "message": "Event processed",
                            "dedup_key": ev.get("dedup_key")})


def _with(msg: dict, **changes: object) -> dict:  # type: ignore[type-arg]
    return {**msg, **changes}


async def test_trigger_acknowledge_resolve_share_one_dedup_key() -> None:
    firing = _message(2, resolved=False)
    ack = _with(firing, watchkeeper={"action": "acknowledge", "acked": True})
    resolved = build_message(receiver="team", group_key=firing["groupKey"],
                             group_labels=firing["groupLabels"], alerts=[])
    resolved["status"] = "resolved"
    async with recorder(handler=_events_api, content_type="application/json") as srv:
        rcv = PagerdutyReceiver(PagerdutyConfig(routing_key=KEY, severity="critical"),
                                url=srv.url("/v2/enqueue"))
        try:
            for m in (firing, ack, resolved):
                await rcv.send(m)
        finally:
            await rcv.aclose()
    events = [r.json() for r in srv.requests]
    assert [e["event_action"] for e in events] == ["trigger", "acknowledge", "resolve"]
    assert {e["dedup_key"] for e in events} == {dedup_key('{}:{alertname="DiskFull"}')}
    assert len(events[0]["dedup_key"]) == 64
    trig = events[0]
    assert trig["routing_key"] == KEY
    assert trig["payload"]["summary"] == "[FIRING:2] DiskFull (node critical)"
    assert trig["payload"]["severity"] == "critical"
    assert trig["payload"]["source"] == "watchkeeper"
    assert trig["payload"]["custom_details"]["num_firing"] == "2"
    assert trig["client_url"] == "http://wk.example:8470"


async def test_templated_description_and_details() -> None:
    cfg = PagerdutyConfig(routing_key=KEY, description="{{ .CommonAnnotations.summary }}",
                          details={"alerts": "{{ len .Alerts }}"}, component="disk")
    async with recorder(handler=_events_api) as srv:
        rcv = PagerdutyReceiver(cfg, url=srv.url("/v2/enqueue"))
        try:
            await rcv.send(_message())
        finally:
            await rcv.aclose()
    ev = srv.requests[0].json()
    assert ev["payload"]["summary"] == "disk <full>"
    assert ev["payload"]["custom_details"] == {"alerts": "3"}
    assert ev["payload"]["component"] == "disk"


async def test_an_invalid_event_is_permanent_and_the_key_stays_secret() -> None:
    bad_key = "short-but-secret"
    async with recorder(handler=_events_api) as srv:
        rcv = PagerdutyReceiver(PagerdutyConfig(routing_key=bad_key), url=srv.url("/v2/enqueue"))
        try:
            with pytest.raises(DeliveryError) as info:
                await rcv.send(_message())
        finally:
            await rcv.aclose()
    assert not info.value.retryable and info.value.status_code == 400
    assert bad_key not in str(info.value)


async def test_rate_limited_is_retryable() -> None:
    async with recorder(status=429, body='{"status":"throttle"}') as srv:
        rcv = PagerdutyReceiver(PagerdutyConfig(routing_key=KEY), url=srv.url("/v2/enqueue"))
        try:
            with pytest.raises(DeliveryError) as info:
                await rcv.send(_message())
        finally:
            await rcv.aclose()
    assert info.value.retryable
