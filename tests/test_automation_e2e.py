"""Automation end to end: a real server, real sshd, real checks, a real webhook receiver.

The closed loop: a check with ``alert:`` fails -> its alert fires -> an alert trigger runs a
runbook that fixes the problem over SSH -> the check passes -> the alert resolves -> the run is
recorded as remediated. And the failure path: a runbook that cannot fix it -> ``on_failure``
runs over SSH -> ``RemediationFailed`` is routed to a webhook receiver on loopback with the
run attached. Plus the REST API (start with token, SSE events) and a restart that marks a
running run interrupted.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.automation.sshd import SSHDFactory, SSHDFleet
from tests.e2e_helpers import WATCHKEEPER, config_server, free_port, wait_for

pytestmark = pytest.mark.slow

TOKEN = "e2e-automation-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class Hook:
    """A webhook receiver on loopback recording (path, body) of every POST."""

    def __init__(self) -> None:
        self.port = free_port()
        self.posts: list[tuple[str, dict[str, Any]]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                hook.posts.append((self.path, json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Hook:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def fleet() -> Iterator[SSHDFleet]:
    factory = SSHDFactory.create()
    try:
        yield factory.start(1, prefix="web")
    finally:
        factory.close()


def write_setup(tmp: Path, fleet: SSHDFleet, hook_port: int) -> dict[str, Path]:
    host = fleet.hosts[0]
    paths = {"flag": tmp / "flag", "flag2": tmp / "flag2", "marker": tmp / "rolled-back"}
    rb = tmp / "runbooks"
    rb.mkdir()
    (rb / "fix-flag.yaml").write_text("""
name: fix-flag
description: Put the flag file back
params:
  path: {type: string, required: true}
targets: web
steps:
  - name: touch
    run: touch {{ params.path }}
""")
    (rb / "cannot-fix.yaml").write_text("""
name: cannot-fix
description: Looks, changes nothing
params:
  path: {type: string, required: true}
  marker: {type: string, required: true}
targets: web
steps:
  - name: look
    run: ls -l {{ params.path }} || true
on_failure:
  - name: rollback
    run: echo rolled-back > {{ params.marker }}
""")
    (rb / "slow.yaml").write_text("""
name: slow
targets: web
steps:
  - name: wait
    run: sleep 60
""")
    (rb / "gated.yaml").write_text("""
name: gated
targets: web
steps:
  - name: ask
    approval: {role: ops, message: "go ahead?", timeout: 1m}
  - name: after
    run: echo approved
""")
    (rb / "hello.yaml").write_text("""
name: hello
params:
  who: {type: string, default: world}
targets: web
steps:
  - name: greet
    run: echo hello {{ params.who }}
""")
    cfg = tmp / "watchkeeper.yaml"
    cfg.write_text(f"""
server: {{evaluation_interval: 1s, token: {TOKEN}}}
collectors: {{host: {{enabled: false}}}}
hosts:
  {host.name}: {{address: {host.address}, port: {host.port}, user: {host.user},
                 key: {host.key_file}, groups: [web]}}
ssh: {{known_hosts: {fleet.known_hosts}}}
runbooks: runbooks
checks:
  - {{name: flag, type: file, path: "{paths['flag']}", interval: 1s, jitter: 0s,
     labels: {{flagpath: "{paths['flag']}", host: {host.name}}}, alert: {{alertname: FlagMissing}}}}
  - {{name: flag2, type: file, path: "{paths['flag2']}", interval: 1s, jitter: 0s,
     labels: {{flagpath: "{paths['flag2']}"}}, alert: {{alertname: Flag2Missing}}}}
triggers:
  - name: fix-flag
    runbook: fix-flag
    alert: {{matchers: ['alertname="FlagMissing"']}}
    params: {{path: "{{{{ labels.flagpath }}}}"}}
    limit: "{{{{ labels.host }}}}"
  - name: cannot-fix
    runbook: cannot-fix
    alert: {{matchers: ['alertname="Flag2Missing"']}}
    params: {{path: "{{{{ labels.flagpath }}}}", marker: "{paths['marker']}"}}
alerting:
  route:
    receiver: ops
    group_by: [alertname]
    group_wait: 0s
    group_interval: 1s
    repeat_interval: 1h
    routes:
      - matchers: ['remediation="failed"']
        receiver: escalation
  receivers:
    - name: ops
      webhook_configs: [{{url: "http://127.0.0.1:{hook_port}/ops"}}]
    - name: escalation
      webhook_configs: [{{url: "http://127.0.0.1:{hook_port}/escalation"}}]
""")
    paths["config"] = cfg
    return paths


def runs(base: str, runbook: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = httpx.get(f"{base}/api/v1/runs", params={"runbook": runbook},
                                          timeout=10).json()["runs"]
    return out


def events(db: Path, kind: str) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT subject, data FROM events WHERE kind = ? ORDER BY seq",
                            (kind,)).fetchall()
    conn.close()
    return [{"subject": s, **json.loads(d)} for s, d in rows]


def test_closed_loop_remediates_and_escalates(tmp_path: Path, fleet: SSHDFleet) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    with Hook() as hook:
        paths = write_setup(tmp_path, fleet, hook.port)
        with config_server(paths["config"], data, port):
            # 1. fixed over SSH, verified, recorded as remediated
            run = wait_for(lambda: [r for r in runs(base, "fix-flag")
                                    if "remediated" in r["summary"]], what="a remediated run")[0]
            assert paths["flag"].exists()
            assert run["trigger"] == "alert" and run["started_by"] == "alert:fix-flag"
            assert run["status"] == "ok" and run["params"] == {"path": str(paths["flag"])}
            assert run["targets"] == [fleet.hosts[0].name]
            assert run["alert"]["labels"]["alertname"] == "FlagMissing"
            alerts = httpx.get(f"{base}/api/v1/alerts").json()["alerts"]
            assert not [a for a in alerts if a["labels"]["alertname"] == "FlagMissing"]
            (ev,) = events(data / "watchkeeper.db", "automation.remediated")
            assert ev["run"] == run["id"] and ev["trigger"] == "fix-flag"

            # 2. cannot fix: on_failure runs over SSH, the escalation reaches the receiver
            def escalated() -> Any:
                return [b for p, b in hook.posts if p == "/escalation"]

            (body, *_) = wait_for(escalated, what="the escalation notification")
            (alert,) = [a for a in body["alerts"] if a["labels"]["alertname"] == "RemediationFailed"]
            (failed,) = runs(base, "cannot-fix")
            assert alert["labels"]["remediation"] == "failed"
            assert alert["labels"]["remediated_alert"] == "Flag2Missing"
            assert alert["labels"]["check"] == "flag2"
            assert alert["annotations"]["run_id"] == failed["id"]
            assert alert["annotations"]["run_url"] == f"{base}/api/v1/runs/{failed['id']}"
            assert paths["marker"].read_text() == "rolled-back\n"
            detail = httpx.get(f"{base}/api/v1/runs/{failed['id']}").json()
            assert [(s["phase"], s["step"], s["status"]) for s in detail["steps"]] == [
                ("steps", "look", "ok"), ("on_failure", "rollback", "ok")]
            assert "not remediated" in detail["summary"]
            assert not [b for p, b in hook.posts if p == "/ops"
                        and any(a["labels"]["alertname"] == "RemediationFailed"
                                for a in b["alerts"])]


def test_api_runs_with_token_sse_and_restart_interrupts(tmp_path: Path, fleet: SSHDFleet) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    with Hook() as hook:
        paths = write_setup(tmp_path, fleet, hook.port)
        paths["flag"].write_text("there")
        paths["flag2"].write_text("there")
        with config_server(paths["config"], data, port):
            hosts = httpx.get(f"{base}/api/v1/hosts", params={"pattern": "web"}).json()["hosts"]
            assert [h["name"] for h in hosts] == [fleet.hosts[0].name]
            names = [r["name"] for r in httpx.get(f"{base}/api/v1/runbooks").json()["runbooks"]]
            assert names == ["cannot-fix", "fix-flag", "gated", "hello", "slow"]
            triggers = httpx.get(f"{base}/api/v1/triggers").json()["triggers"]
            assert [(t["name"], t["kind"], t["cooldown"]) for t in triggers] == [
                ("fix-flag", "alert", 600.0), ("cannot-fix", "alert", 600.0)]
            body = {"runbook": "hello", "params": {"who": "a; touch /tmp/pwned"}}
            assert httpx.post(f"{base}/api/v1/runs", json=body).status_code == 401
            resp = httpx.post(f"{base}/api/v1/runs", json=body, headers=AUTH)
            assert resp.status_code == 202, resp.text
            run_id = resp.json()["id"]
            seen: list[tuple[str, dict[str, Any]]] = []
            with httpx.stream("GET", f"{base}/api/v1/runs/{run_id}/events", timeout=30) as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                kind = ""
                for line in r.iter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: "):
                        seen.append((kind, json.loads(line[6:])))
                        if kind == "end":
                            break
            assert seen[-1][0] == "end"
            assert seen[-2][0] == "run" and seen[-2][1]["status"] == "ok"
            (greet,) = [d for k, d in seen if k == "step" and d["step"] == "greet"
                        and d["status"] == "ok"]
            assert greet["stdout"] == "hello a; touch /tmp/pwned\n"  # quoted, not run
            bad = httpx.post(f"{base}/api/v1/runs", json={"runbook": "hello", "params": {"x": 1}},
                             headers=AUTH)
            assert bad.status_code == 400 and "x" in bad.json()["error"]
            missing = httpx.post(f"{base}/api/v1/runs", json={"runbook": "nope"}, headers=AUTH)
            assert missing.status_code == 404
            # an approval: the wrong role is refused, the CLI approves through the API
            gated = httpx.post(f"{base}/api/v1/runs", json={"runbook": "gated"},
                               headers=AUTH).json()["id"]
            wait_for(lambda: httpx.get(f"{base}/api/v1/runs/{gated}").json()["status"]
                     == "awaiting_approval", what="the approval wait")
            # roles come from named tokens (watchkeeper.auth), never from the request
            claimed = httpx.post(f"{base}/api/v1/runs/{gated}/approve", headers=AUTH,
                                 json={"roles": ["ops"]})
            assert claimed.status_code == 400 and "roles" in claimed.json()["error"]
            eve = httpx.post(f"{base}/api/v1/tokens", headers=AUTH,
                             json={"name": "eve", "roles": ["dev"]}).json()["token"]
            alice = httpx.post(f"{base}/api/v1/tokens", headers=AUTH,
                               json={"name": "alice", "roles": ["ops"]}).json()["token"]
            wrong = httpx.post(f"{base}/api/v1/runs/{gated}/approve",
                               headers={"Authorization": f"Bearer {eve}"}, json={})
            assert wrong.status_code == 403 and "needs the role 'ops'" in wrong.json()["error"]
            cli = subprocess.run([*WATCHKEEPER, "approve", gated[:8], "--server", base,
                                  "-m", "looks fine"],
                                 env={**os.environ, "WATCHKEEPER_TOKEN": alice},
                                 capture_output=True, text=True, timeout=60)
            assert cli.returncode == 0, cli.stderr
            done = wait_for(lambda: (r := httpx.get(f"{base}/api/v1/runs/{gated}").json())[
                "status"] in ("ok", "failed") and r, what="the gated run to finish")
            assert done["status"] == "ok"
            assert [(s["step"], s["status"]) for s in done["steps"]] == [("ask", "ok"),
                                                                         ("after", "ok")]
            listed = subprocess.run([*WATCHKEEPER, "runs", "--server", base, "--json"],
                                    capture_output=True, text=True, timeout=60)
            assert listed.returncode == 0, listed.stderr
            assert gated in [r["id"] for r in json.loads(listed.stdout)]
            slow = httpx.post(f"{base}/api/v1/runs", json={"runbook": "slow"},
                              headers=AUTH).json()["id"]
            wait_for(lambda: httpx.get(f"{base}/api/v1/runs/{slow}").json()["status"] == "running",
                     what="the slow run to start")
        # the server above stopped with SIGTERM during the slow run: recorded interrupted
        with config_server(paths["config"], data, port) as proc:
            rec = httpx.get(f"{base}/api/v1/runs/{slow}").json()
            assert rec["status"] == "interrupted", rec
            assert [s["status"] for s in rec["steps"]] == ["cancelled"]
            slow2 = httpx.post(f"{base}/api/v1/runs", json={"runbook": "slow"},
                               headers=AUTH).json()["id"]
            wait_for(lambda: httpx.get(f"{base}/api/v1/runs/{slow2}").json()["status"] == "running",
                     what="the second slow run to start")
            proc.kill()  # a crash: nothing gets to record the run's end
            proc.wait(10)
        with config_server(paths["config"], data, port):
            rec = httpx.get(f"{base}/api/v1/runs/{slow2}").json()
            assert rec["status"] == "interrupted"
            assert "interrupted" in rec["summary"]


def test_the_guide_example_heals_itself(tmp_path: Path) -> None:
    """docs/automation.md's runnable example, as written (with its directory moved to tmp)."""
    import re

    doc = (Path(__file__).resolve().parent.parent / "docs" / "automation.md").read_text()
    config = re.search(r"```yaml\n(.*?)```", doc, re.DOTALL)
    runbook = re.search(r"```yaml runbook\n(.*?)```", doc, re.DOTALL)
    assert config is not None and runbook is not None
    demo = tmp_path / "wk-demo"
    demo.mkdir()
    (tmp_path / "runbooks").mkdir()
    cfg = tmp_path / "watchkeeper.yaml"
    cfg.write_text(config.group(1).replace("/tmp/wk-demo", str(demo)))
    (tmp_path / "runbooks" / "restore-flag.yaml").write_text(
        runbook.group(1).replace("/tmp/wk-demo", str(demo)))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with config_server(cfg, tmp_path / "data", port):
        (run,) = wait_for(lambda: [r for r in runs(base, "restore-flag")
                                   if "remediated" in r["summary"]], what="the example's run")
    assert (demo / "app.flag").exists()
    assert run["targets"] == ["localhost"] and run["status"] == "ok"
    assert "remediated: check app-flag is OK" in run["summary"]


def test_exec_through_the_server_reuses_one_connection_per_host(tmp_path: Path,
                                                                 fleet: SSHDFleet) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with Hook() as hook:
        paths = write_setup(tmp_path, fleet, hook.port)
        paths["flag"].write_text("there")
        paths["flag2"].write_text("there")
        with config_server(paths["config"], tmp_path / "data", port):
            body = {"pattern": "web", "command": "echo warm; hostname >/dev/null"}
            assert httpx.post(f"{base}/api/v1/exec", json=body).status_code == 401
            before = fleet.servers[0].accepted()
            for _ in range(3):
                r = httpx.post(f"{base}/api/v1/exec", json=body, headers=AUTH, timeout=60)
                assert r.status_code == 200, r.text
                (res,) = r.json()["results"]
                assert (res["host"], res["status"], res["stdout"]) == (fleet.hosts[0].name, "ok",
                                                                        "warm\n")
            # three calls, at most one new SSH login: the server's pool keeps it open
            assert fleet.servers[0].accepted() - before <= 1
            env = {**os.environ, "WATCHKEEPER_TOKEN": AUTH["Authorization"].split()[1]}
            cli = subprocess.run([*WATCHKEEPER, "exec", "web", "--server", base, "--json", "--",
                                  "echo", "via-cli"], capture_output=True, text=True, env=env,
                                 check=False)
            assert cli.returncode == 0, cli.stderr
            assert json.loads(cli.stdout)[0]["stdout"] == "via-cli\n"
