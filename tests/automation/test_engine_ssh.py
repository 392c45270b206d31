"""Runbooks over real OpenSSH servers on 127.0.0.x: rolling updates with rollback, halting by
max_fail_percentage, unreachable hosts, check mode, and every example in examples/runbooks/.

The "services" are tiny scripts and state files the tests create; every host is a
separate sshd on this machine, so each gets its own directory through a host var."""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.automation.sshd import SSHDFleet
from watchkeeper.automation.engine import RunEngine
from watchkeeper.automation.executors.local import LocalExecutor
from watchkeeper.automation.executors.router import Executors
from watchkeeper.automation.executors.ssh import SSHExecutor
from watchkeeper.automation.hosts import Host
from watchkeeper.automation.runbook import RunbookLibrary, load_runbook
from watchkeeper.automation.runs import RunStore
from watchkeeper.eventlog import EventLog
from watchkeeper.store.engine import open_engine
from watchkeeper.testing.clock import FakeClock

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "runbooks"


@pytest.fixture(scope="module")
def fleet(sshd_hosts: Callable[..., SSHDFleet]) -> SSHDFleet:
    return sshd_hosts(3, prefix="web")


@pytest.fixture
def store(tmp_path: Path) -> Any:
    db = open_engine(None, tmp_path / "data")
    yield RunStore(db, eventlog=EventLog(db), poll_interval=0.05)
    db.dispose()


@pytest.fixture
async def engine(fleet: SSHDFleet, store: RunStore) -> Any:
    ssh = SSHExecutor(known_hosts=str(fleet.known_hosts))
    executors = Executors(LocalExecutor(), ssh)
    yield RunEngine(executors, store, FakeClock(autojump=True), library=RunbookLibrary(EXAMPLES))
    await executors.close()


def with_vars(hosts: list[Host], make: Callable[[Host], dict[str, Any]]) -> list[Host]:
    return [dataclasses.replace(h, vars={**h.vars, **make(h)}) for h in hosts]


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + textwrap.dedent(body))
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def make_release(app: Path, version: str, *, healthy: bool = True) -> None:
    rel = app / "releases" / version
    script(rel / "bin" / "restart", f"echo {version} > {app}/running\necho restarted {version}\n")
    script(rel / "bin" / "healthcheck",
           f'[ "$(cat {app}/running)" = {version} ]\n' if healthy else "echo unhealthy >&2; exit 1\n")


def prepare_apps(tmp_path: Path, hosts: list[Host], broken: set[str] = frozenset()) -> list[Host]:  # type: ignore[assignment]
    """Each host: releases v1 (running) and v2 (unhealthy on ``broken`` hosts)."""
    for h in hosts:
        app = tmp_path / h.name
        make_release(app, "v1")
        make_release(app, "v2", healthy=h.name not in broken)
        (app / "current").symlink_to(app / "releases" / "v1")
        (app / "running").write_text("v1\n")
    return with_vars(hosts, lambda h: {"app_dir": str(tmp_path / h.name)})


async def test_rolling_update_example_updates_every_host(tmp_path: Path, fleet: SSHDFleet,
                                                         engine: RunEngine) -> None:
    hosts = prepare_apps(tmp_path, fleet.hosts)
    rb = load_runbook(EXAMPLES / "rolling-update.yaml")
    rec = await engine.run(rb, {"version": "v2"}, hosts, started_by="deployer")
    assert rec.status == "ok", rec.to_dict()
    assert rec.hosts == {h.name: "ok" for h in hosts}
    for h in hosts:
        assert os.readlink(tmp_path / h.name / "current") == str(tmp_path / h.name / "releases" / "v2")
        assert (tmp_path / h.name / "running").read_text() == "v2\n"
        names = [(s.phase, s.step) for s in rec.steps_for(h.name)]
        assert names == [("steps", "release present"), ("steps", "previous"), ("steps", "switch"),
                         ("steps", "restart"), ("verify", "healthy")]
    # rolling with batch 1: each host finished its steps before the next one started
    firsts = [min(s.started_at for s in rec.steps_for(h.name)) for h in hosts]  # type: ignore[type-var]
    lasts = [max(s.finished_at for s in rec.steps_for(h.name)) for h in hosts]  # type: ignore[type-var]
    assert lasts[0] <= firsts[1] and lasts[1] <= firsts[2]


async def test_failing_host_halts_the_rollout_and_is_rolled_back(tmp_path: Path, fleet: SSHDFleet,
                                                                 engine: RunEngine) -> None:
    broken = fleet.hosts[1].name
    hosts = prepare_apps(tmp_path, fleet.hosts, broken={broken})
    rb = load_runbook(EXAMPLES / "rolling-update.yaml")
    rec = await engine.run(rb, {"version": "v2"}, hosts)
    first, second, third = (h.name for h in hosts)
    assert rec.status == "failed"
    assert rec.hosts == {first: "ok", second: "failed", third: "skipped"}
    assert "rollout halted: 1 of 3 hosts failed, more than max_fail_percentage 0%" in rec.summary
    # the first host stays on v2; the broken one is back on v1; the third was never touched
    assert (tmp_path / first / "running").read_text() == "v2\n"
    assert os.readlink(tmp_path / second / "current") == str(tmp_path / second / "releases" / "v1")
    assert (tmp_path / second / "running").read_text() == "v1\n"
    assert os.readlink(tmp_path / third / "current") == str(tmp_path / third / "releases" / "v1")
    rows = [(s.phase, s.step, s.status) for s in rec.steps_for(second)]
    assert rows[-2:] == [("verify", "healthy", "failed"), ("on_failure", "switch back", "ok")]
    healthy = rec.steps_for(second)[-2]
    assert healthy.stderr == "unhealthy\n" and "failed 4 attempts" in healthy.detail
    assert rec.steps_for(third) == []


async def test_parallel_run_with_an_unreachable_host(tmp_path: Path, fleet: SSHDFleet,
                                                     engine: RunEngine) -> None:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    dead = Host(name="dead", address="127.0.0.1", port=port, user=fleet.user,
                key_file=str(fleet.client_key))
    rb = load_runbook(textwrap_file(tmp_path, """
        name: hello
        strategy: parallel
        steps: [{name: hi, run: "echo hi from {{ host.name }}"}]
    """))
    rec = await engine.run(rb, {}, [*fleet.hosts, dead])
    assert rec.status == "failed"
    assert rec.hosts == {**{h.name: "ok" for h in fleet.hosts}, "dead": "unreachable"}
    for h in fleet.hosts:
        assert rec.steps_for(h.name)[0].stdout == f"hi from {h.name}\n"
    assert "dead" in rec.steps_for("dead")[0].detail


def textwrap_file(tmp_path: Path, text: str, name: str = "rb.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


async def test_no_injection_over_ssh_and_check_mode_diff(tmp_path: Path, fleet: SSHDFleet,
                                                         engine: RunEngine) -> None:
    pwned = tmp_path / "pwned"
    conf = tmp_path / "app.conf"
    conf.write_text("level = info\n")
    rb = load_runbook(textwrap_file(tmp_path, f"""
        name: conf
        params: {{level: {{type: string, required: true}}}}
        steps:
          - name: say
            run: echo {{{{ params.level }}}}
          - name: conf
            copy: {{dest: "{conf}", content: "level = {{{{ params.level }}}}\\n"}}
    """))
    evil = f"x; touch {pwned}"
    dry = await engine.run(rb, {"level": evil}, fleet.hosts[:1], check_mode=True)
    rows = dry.steps_for(fleet.hosts[0].name)
    assert [r.status for r in rows] == ["check", "check"]
    assert rows[0].command == f"echo 'x; touch {pwned}'"
    assert f"-level = info\n+level = x; touch {pwned}\n" in rows[1].detail
    assert conf.read_text() == "level = info\n"
    real = await engine.run(rb, {"level": evil}, fleet.hosts[:1])
    rows = real.steps_for(fleet.hosts[0].name)
    assert rows[0].stdout == evil + "\n"
    assert conf.read_text() == f"level = {evil}\n"
    assert not pwned.exists()


FAKE_SYSTEMCTL = """
    # a stand-in for systemctl: restart NAME | is-active NAME; state files in STATE
    state="{state}/$2"
    case "$1" in
      restart) [ -e "$state.broken" ] && {{ echo "Job for $2 failed" >&2; exit 1; }}
               echo $$ > "$state.pid"; echo active > "$state"; echo "restarted $2" >> "{state}/journal" ;;
      is-active) if [ -e "$state.dead" ]; then echo failed; exit 3; fi; cat "$state" ;;
      *) exit 2 ;;
    esac
"""
FAKE_JOURNALCTL = """
    cat "{state}/journal"; echo "journal for $2"
"""


async def test_restart_service_example(tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    def tools(h: Host) -> dict[str, Any]:
        state = tmp_path / h.name
        state.mkdir()
        return {"systemctl": str(script(state / "systemctl", FAKE_SYSTEMCTL.format(state=state))),
                "journalctl": str(script(state / "journalctl", FAKE_JOURNALCTL.format(state=state)))}

    hosts = with_vars(fleet.hosts, tools)
    rb = load_runbook(EXAMPLES / "restart-service.yaml")
    rec = await engine.run(rb, {"service": "app", "hosts": "web"}, hosts)
    assert rec.status == "ok", rec.to_dict()
    for h in hosts:
        assert (tmp_path / h.name / "app").read_text() == "active\n"
        verify = rec.steps_for(h.name)[-1]
        assert (verify.phase, verify.stdout, verify.changed) == ("verify", "active\n", False)
    # the service does not come back on the second host: verify retries, then the journal
    (tmp_path / hosts[1].name / "app.dead").touch()
    rec = await engine.run(rb, {"service": "app", "hosts": "web"}, hosts)
    assert rec.hosts == {hosts[0].name: "ok", hosts[1].name: "failed", hosts[2].name: "skipped"}
    verify, journal = rec.steps_for(hosts[1].name)[-2:]
    assert verify.status == "failed" and verify.exit_code == 3
    assert "failed 4 attempts" in verify.detail
    assert journal.phase == "on_failure" and "journal for app" in journal.stdout
    assert journal.command.endswith(" -u app -n 50 --no-pager")


async def test_restart_service_rejects_a_bad_unit_name(engine: RunEngine, fleet: SSHDFleet,
                                                       store: RunStore) -> None:
    rb = load_runbook(EXAMPLES / "restart-service.yaml")
    with pytest.raises(Exception) as err:
        await engine.run(rb, {"service": "nginx; reboot"}, fleet.hosts)
    assert str(err.value) == ("param 'service': 'nginx; reboot' is not text matching "
                              "'^[A-Za-z0-9@._-]+$'")
    assert store.list() == []


async def test_rotate_logs_example(tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_text("line 1\nline 2\n")
    (logs / "empty.log").write_text("")
    for i in range(4):  # older rotations, oldest first
        old = logs / f"app.log.2020010{i}000000.gz"
        old.write_bytes(b"old")
        os.utime(old, (time.time() - 86400 * (10 - i),) * 2)
    rb = load_runbook(EXAMPLES / "rotate-logs.yaml")
    host = fleet.hosts[0]
    rec = await engine.run(rb, {"dir": str(logs), "keep": "3", "hosts": host.name}, [host])
    assert rec.status == "ok", rec.to_dict()
    rows = {s.step: s for s in rec.steps_for(host.name)}
    assert rows["rotate"].stdout == "rotated app.log\n" and rows["rotate"].changed
    assert (logs / "app.log").read_text() == ""
    rotated = sorted(p.name for p in logs.iterdir() if p.name.startswith("app.log."))
    assert len(rotated) == 3  # the new one plus the two newest old ones
    assert "app.log.20200100000000.gz" not in rotated and "app.log.20200101000000.gz" not in rotated
    assert rows["prune"].changed and rows["prune"].stdout.count("removed") == 2
    again = await engine.run(rb, {"dir": str(logs), "keep": 3}, [host])
    rows = {s.step: s for s in again.steps_for(host.name)}
    assert not rows["rotate"].changed and not rows["prune"].changed


async def test_disk_cleanup_example_with_params_from_alert_labels(tmp_path: Path, fleet: SSHDFleet,
                                                                  engine: RunEngine) -> None:
    mount = tmp_path / "mnt"
    old_files = [mount / "tmp" / "old.bin", mount / "var" / "tmp" / "old.dat"]
    new_files = [mount / "tmp" / "new.bin"]
    keep = mount / "data" / "old-but-not-scratch.db"
    for f in [*old_files, *new_files, keep]:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(b"x" * 1024)
    for f in [*old_files, keep]:
        os.utime(f, (time.time() - 86400 * 30,) * 2)
    host = fleet.hosts[2]
    alert = {"labels": {"alertname": "DiskWillFillSoon", "mountpoint": str(mount),
                        "instance": host.name, "severity": "warning"}}
    params = {"mountpoint": alert["labels"]["mountpoint"], "hosts": alert["labels"]["instance"],
              "max_used_percent": 100}
    rb = load_runbook(EXAMPLES / "disk-cleanup.yaml")
    rec = await engine.run(rb, params, [host], trigger="alert", started_by="trigger:disk-fill",
                           alert=alert)
    assert rec.status == "ok", rec.to_dict()
    assert rec.alert == alert and rec.trigger == "alert"
    assert not any(f.exists() for f in old_files)
    assert all(f.exists() for f in new_files) and keep.exists()
    rows = {s.step: s for s in rec.steps_for(host.name)}
    assert sorted(rows["delete old files"].stdout.split()) == sorted(map(str, old_files))
    assert rows["usage below limit"].stdout.endswith("% used\n")
