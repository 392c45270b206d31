"""Forwarding to a real Alertmanager (Debian's prometheus-alertmanager) on 127.0.0.1."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.alerting._receiver_servers import recorder
from tests.e2e_helpers import terminate, wait_http
from watchkeeper.alerting.config import AlertmanagerConfig
from watchkeeper.alerting.model import Alert, AlertState
from watchkeeper.alerting.notify_templates import build_message
from watchkeeper.alerting.receivers.alertmanager import AlertmanagerReceiver
from watchkeeper.alerting.receivers.base import DeliveryError

BINARY = "prometheus-alertmanager"
CONFIG = """\
route:
  receiver: "null"
receivers:
  - name: "null"
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def alertmanager(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which(BINARY)
    assert exe, f"{BINARY} is missing: apt-get install -y prometheus-alertmanager"
    d = tmp_path_factory.mktemp("am")
    (d / "am.yml").write_text(CONFIG)
    port = _free_port()
    log = (d / "am.log").open("wb")
    proc = subprocess.Popen(
        [exe, f"--config.file={d / 'am.yml'}", f"--storage.path={d / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
         "--log.level=warn"], stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/-/ready", proc, timeout=20, log=d / "am.log")
        yield base
    finally:
        terminate(proc, timeout=10)
        log.close()


def _message(state: AlertState) -> dict[str, Any]:
    now = time.time()
    a = Alert(labels={"alertname": "Forwarded", "instance": "web1", "severity": "warning"},
              annotations={"summary": "from watchkeeper"}, state=state, active_at=now - 120,
              fired_at=now - 60, resolved_at=now - 1 if state == AlertState.RESOLVED else None,
              generator_url="http://wk:8470/alerts")
    return build_message(receiver="up", group_key="{}:{}", group_labels={}, alerts=[a])


async def _alerts(base: str) -> list[dict[str, Any]]:
    async with httpx.AsyncClient() as c:
        resp = await c.get(f"{base}/api/v2/alerts", params={"filter": 'alertname="Forwarded"'})
        resp.raise_for_status()
        return list(resp.json())


async def test_forwarded_alerts_show_in_a_real_alertmanager_and_resolve(alertmanager: str) -> None:
    rcv = AlertmanagerReceiver(AlertmanagerConfig(url=alertmanager + "/"))
    try:
        await rcv.send(_message(AlertState.FIRING))
        [got] = await _alerts(alertmanager)
        assert got["labels"] == {"alertname": "Forwarded", "instance": "web1",
                                 "severity": "warning"}
        assert got["annotations"] == {"summary": "from watchkeeper"}
        assert got["generatorURL"] == "http://wk:8470/alerts"
        assert got["status"]["state"] == "active"
        assert got["receivers"] == [{"name": "null"}]
        # endsAt = now + alert_ttl (20m), so it stays firing between sends
        from watchkeeper.alerting.store import parse_am_time

        ends = parse_am_time(got["endsAt"], "endsAt")
        assert ends is not None and 1190 < ends - time.time() < 1210
        await rcv.send(_message(AlertState.RESOLVED))
        assert await _alerts(alertmanager) == []  # resolved: no longer listed
    finally:
        await rcv.aclose()


async def test_alertmanager_errors_are_classified() -> None:
    async with recorder(status=400, body='{"code":400,"message":"bad alert"}') as srv:
        rcv = AlertmanagerReceiver(AlertmanagerConfig(url=srv.url()))
        try:
            with pytest.raises(DeliveryError) as info:
                await rcv.send(_message(AlertState.FIRING))
        finally:
            await rcv.aclose()
    assert srv.requests[0].path == "/api/v2/alerts"
    assert not info.value.retryable and "HTTP 400" in str(info.value)
