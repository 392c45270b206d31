"""Alerting end to end with the real server: a crash while an alert fires and the receiver is
down loses nothing and repeats nothing; rules from a file reach the receiver too."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e_helpers import WATCHKEEPER, config_server, free_port, wait_for

pytestmark = pytest.mark.slow


class Hook:
    """A webhook receiver on loopback that records every POST body."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.bodies: list[dict[str, Any]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.bodies.append(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def wait(self, n: int, timeout: float = 30.0) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while len(self.bodies) < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return list(self.bodies)


def _config(tmp: Path, hook_port: int, heartbeat: Path, extra: str = "") -> Path:
    cfg = tmp / "watchkeeper.yaml"
    cfg.write_text(f"""
server: {{evaluation_interval: 1s}}
collectors: {{host: {{enabled: false}}}}
checks:
  - {{name: heartbeat, type: file, path: "{heartbeat}", interval: 1s, jitter: 0s,
     alert: {{after: 1, severity: page}}}}
{extra}
alerting:
  route:
    receiver: ops
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
  receivers:
    - name: ops
      webhook_configs: [{{url: "http://127.0.0.1:{hook_port}/hook", send_resolved: true}}]
""")
    return cfg


def _failed_attempts(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        n = conn.execute("SELECT count(*) FROM notification_attempts WHERE ok = 0").fetchone()[0]
    conn.close()
    return int(n)


def test_crash_while_firing_and_receiver_down_delivers_exactly_once(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    heartbeat.write_text("beat")
    hook_port, port = free_port(), free_port()
    cfg = _config(tmp_path, hook_port, heartbeat)
    data = tmp_path / "data"
    base = f"http://127.0.0.1:{port}"
    with config_server(cfg, data, port) as proc:
        heartbeat.unlink()
        wait_for(lambda: any(a["state"] == "firing" for a in
                              httpx.get(f"{base}/api/v1/alerts").json()["alerts"]),
                  what="the alert to fire")
        # the receiver is down: delivery fails and is retried
        wait_for(lambda: _failed_attempts(data / "watchkeeper.db") >= 1, what="a failed attempt")
        proc.send_signal(signal.SIGKILL)  # a crash, not a clean stop
        proc.wait(10)
    with Hook(hook_port) as hook, config_server(cfg, data, port):
        alerts = httpx.get(f"{base}/api/v1/alerts").json()["alerts"]
        assert [a["state"] for a in alerts] == ["firing"]  # still firing after the crash
        bodies = hook.wait(1)
        assert len(bodies) >= 1
        time.sleep(3)  # room for any duplicate to show up
        heartbeat.write_text("beat")
        bodies = wait_for(lambda: [b for b in hook.bodies if b["status"] == "resolved"] and hook.bodies,
                           what="the resolved notification")
        time.sleep(2)
        bodies = list(hook.bodies)
    firing = [b for b in bodies if b["status"] == "firing"]
    resolved = [b for b in bodies if b["status"] == "resolved"]
    assert len(resolved) == 1, bodies
    assert firing, bodies
    # at most an at-least-once retry, and then with the same group key and alerts
    assert {b["groupKey"] for b in firing} == {resolved[0]["groupKey"]}
    assert len({json.dumps(b["alerts"], sort_keys=True) for b in firing}) == 1
    assert len(firing) <= 2, bodies
    body = firing[0]
    assert body["version"] == "4" and body["receiver"] == "ops"
    assert body["alerts"][0]["labels"] == {"alertname": "CheckFailing", "check": "heartbeat",
                                           "severity": "page", "type": "file"}


def test_rule_file_alerts_reach_the_receiver_and_rules_api(tmp_path: Path) -> None:
    heartbeat = tmp_path / "heartbeat"
    heartbeat.write_text("beat")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "checks.yaml").write_text("""
groups:
  - name: checks
    interval: 1s
    rules:
      - alert: HeartbeatMissing
        expr: watchkeeper_check_up{check="heartbeat"} == 0
        labels: {severity: warning}
        annotations: {summary: "{{ $labels.check }} is down ({{ $value }})"}
      - record: checks:up:sum
        expr: sum(watchkeeper_check_up)
""")
    (tmp_path / "rules" / "broken.yaml").write_text(
        "groups:\n  - name: b\n    rules:\n      - alert: X\n        expr: rate(x[5m]) +\n")
    hook_port, port = free_port(), free_port()
    cfg = _config(tmp_path, hook_port, heartbeat, extra='rules: ["rules/*.yaml"]')
    base = f"http://127.0.0.1:{port}"
    with Hook(hook_port) as hook, config_server(cfg, tmp_path / "data", port):
        groups = httpx.get(f"{base}/api/v1/rules").json()["data"]["groups"]
        assert [g["name"] for g in groups] == ["checks"]  # the broken file did not stop this one
        heartbeat.unlink()
        names = wait_for(lambda: {b["alerts"][0]["labels"]["alertname"] for b in hook.bodies
                                   if b["status"] == "firing"} >= {"HeartbeatMissing", "CheckFailing"}
                          and hook.bodies, what="both alerts at the receiver")
        rule_alert = next(b for b in names if b["alerts"][0]["labels"]["alertname"] == "HeartbeatMissing")
        assert rule_alert["alerts"][0]["annotations"]["summary"] == "heartbeat is down (0)"
        r = httpx.get(f"{base}/api/v1/query", params={"query": "checks:up:sum"}).json()
        assert r["data"]["result"][0]["value"][1] in ("0", "1")
    log = subprocess.run([*WATCHKEEPER, "log", "--data-dir", str(tmp_path / "data"), "--kind",
                          "rules", "--json"], capture_output=True, text=True, check=True)
    errors = json.loads(log.stdout)[0]["data"]["errors"]
    assert errors == [f"{tmp_path / 'rules' / 'broken.yaml'}:5: groups[0].rules[0].expr: "
                      "unexpected end of input at column 14"]
