"""``watchkeeper triggers [--json]``: from the config alone, and from a running server with
its state (a real server whose alert trigger fires on a failing check)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e_helpers import config_server, free_port, wait_for
from watchkeeper.automation.triggers import next_fire

CLI = [sys.executable, "-m", "watchkeeper"]

RUNBOOK = """
name: hello
targets: localhost
steps:
  - name: hi
    run: echo hi
"""


def write_config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "runbooks").mkdir(exist_ok=True)
    (tmp_path / "runbooks" / "hello.yaml").write_text(RUNBOOK)
    cfg = tmp_path / "watchkeeper.yaml"
    cfg.write_text(f"""
server: {{evaluation_interval: 1s}}
collectors: {{host: {{enabled: false}}}}
runbooks: runbooks
{extra}
triggers:
  - name: every-minute
    runbook: hello
    schedule: "* * * * *"
    timezone: Europe/Berlin
  - name: on-flag
    runbook: hello
    alert: {{matchers: ['alertname="FlagMissing"']}}
    cooldown: 30m
    rate_limit: {{runs: 5, per: 1h}}
    verify: {{escalate: false}}
  - name: nightly
    runbook: hello
    enabled: false
    schedule: "0 3 * * *"
""")
    return cfg


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    return subprocess.run([*CLI, *args], capture_output=True, text=True, cwd=cwd, env=env,
                          timeout=60)


def test_without_a_server_the_config_tells_names_schedules_and_limits(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    before = time.time()
    r = cli("triggers", "--json", "--config", str(cfg), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    every, on_flag, nightly = json.loads(r.stdout)
    assert (every["name"], every["kind"], every["timezone"]) == ("every-minute", "schedule",
                                                                  "Europe/Berlin")
    assert next_fire("* * * * *", "Europe/Berlin", before) <= every["next"] <= before + 61
    assert on_flag == {"name": "on-flag", "kind": "alert", "runbook": "hello", "enabled": True,
                       "limit": None, "matchers": ['alertname="FlagMissing"'],
                       "cooldown": 1800.0, "rate_limit": {"runs": 5, "per": 3600.0}}
    assert nightly["enabled"] is False and nightly["next"] is None
    text = cli("triggers", "--config", str(cfg), cwd=tmp_path)
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "every-minute  [schedule] -> runbook hello"
    assert lines[1] == "  schedule: * * * * * (Europe/Berlin)"
    assert lines[2].startswith("  next: ") and "(in " in lines[2]
    assert "  cooldown: 30m per alert" in lines and "  rate limit: 5 runs per 1h" in lines
    assert "nightly  [schedule] -> runbook hello  (disabled)" in lines


def test_no_triggers_and_a_bad_config(tmp_path: Path) -> None:
    cfg = tmp_path / "watchkeeper.yaml"
    cfg.write_text("collectors: {host: {enabled: false}}\n")
    r = cli("triggers", "--config", str(cfg), cwd=tmp_path)
    assert (r.returncode, r.stdout.strip()) == (0, f"no triggers configured ({cfg})")
    cfg.write_text("triggers: [{name: x, runbook: y}]\n")
    bad = cli("triggers", "--config", str(cfg), cwd=tmp_path)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
    gone = cli("triggers", "--server", "http://127.0.0.1:1", cwd=tmp_path)
    assert gone.returncode == 3 and "cannot reach watchkeeper at http://127.0.0.1:1" in gone.stderr


def test_from_a_running_server_with_cooldown_rate_limit_and_last_run(tmp_path: Path) -> None:
    flag = tmp_path / "flag"  # missing: the check fails, its alert fires, the trigger runs
    cfg = write_config(tmp_path, extra=f"""
checks:
  - name: flag
    type: file
    path: {flag}
    interval: 1s
    alert: {{alertname: FlagMissing}}
""")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with config_server(cfg, tmp_path / "data", port):
        def fired() -> dict | None:
            r = cli("triggers", "--server", base, "--json", cwd=tmp_path)
            assert r.returncode == 0, r.stderr
            items = {i["name"]: i for i in json.loads(r.stdout)}
            on_flag = items["on-flag"]
            run = on_flag["last_run"]
            return items if run and run["status"] in ("ok", "failed") else None

        items = wait_for(fired, timeout=60, what="the alert trigger's run")
        text = cli("triggers", "--server", base, cwd=tmp_path)
    on_flag, every = items["on-flag"], items["every-minute"]
    assert set(items) == {"on-flag", "every-minute"}  # the server shows enabled triggers
    assert on_flag["last_run"]["status"] == "ok"
    assert on_flag["last_fired"] is not None
    (cooling,) = on_flag["cooling_down"]
    assert abs(cooling["until"] - (on_flag["last_fired"] + 1800)) < 1
    assert on_flag["rate_limit_state"] == {"used": 1, "runs": 5, "per": 3600.0, "remaining": 4,
                                           "resets_at": None}
    assert every["next"] > time.time() - 1 and every["running"] is False
    assert every["last_run"] is None and every["last_fired"] is None
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert "  rate limit: 5 runs per 1h; used 1, 4 left" in lines
    assert any(line.startswith("  cooling down: alert ") for line in lines)
    assert any(line.startswith("  last run: ") and " ok " in line for line in lines)
