"""A run is marked interrupted at start-up only when its owner is really gone.

Real processes: a ``watchkeeper run`` command line executing a runbook against a data dir
while a server starts on the same data dir (its run is left alone and completes), and one
killed with SIGKILL (its run is marked interrupted at the next start). The store-level
rules (another host's heartbeat, a reused pid, runs recorded before owners) against a
real SQLite file.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e_helpers import config_server, free_port
from watchkeeper.automation.run_owner import RunOwner, owner_alive
from watchkeeper.automation.runs import RunStore
from watchkeeper.eventlog import EventLog
from watchkeeper.store.engine import open_engine
from watchkeeper.testing.clock import FakeClock

CLI = [sys.executable, "-m", "watchkeeper"]


def setup_dir(tmp_path: Path, seconds: int) -> tuple[Path, Path]:
    """A config with a runbook ``slow`` (a ``wait`` of ``seconds`` on localhost): (config, data)."""
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / "slow.yaml").write_text(f"""
name: slow
targets: localhost
steps:
  - name: pause
    wait: {{duration: {seconds}s}}
  - name: after
    run: echo finished
""")
    cfg = tmp_path / "watchkeeper.yaml"
    cfg.write_text("collectors: {host: {enabled: false}}\nrunbooks: runbooks\n")
    return cfg, tmp_path / "data"


@pytest.fixture
def runs_of(tmp_path: Path) -> Iterator[Any]:
    engines: list[Any] = []

    def open_store(data: Path) -> RunStore:
        engine = open_engine(None, data)
        engines.append(engine)
        return RunStore(engine)

    yield open_store
    for e in engines:
        e.dispose()


def start_cli_run(cfg: Path, data: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([*CLI, "run", "slow", "--config", str(cfg), "--data-dir", str(data),
                             "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=cfg.parent, env={k: v for k, v in os.environ.items()
                                                 if not k.startswith("WATCHKEEPER_")})


def wait_running(store: RunStore, proc: subprocess.Popen[str]) -> str:
    """The id of the CLI's run once its first step has started (is recorded as running)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            found = [r for r in store.list(runbook="slow") if r.status == "running"
                     and any(s.status == "running" for s in store.get(r.id).steps)]
        except Exception:  # the CLI is still creating the database
            found = []
        if found:
            return found[0].id
        time.sleep(0.1)
    raise AssertionError("the CLI's run did not start")


def test_a_server_starting_beside_a_cli_run_leaves_it_alone(tmp_path: Path, runs_of: Any) -> None:
    cfg, data = setup_dir(tmp_path, 6)
    proc = start_cli_run(cfg, data)
    try:
        store = runs_of(data)
        run_id = wait_running(store, proc)
        owner = store.get(run_id).owner
        assert owner is not None and owner["pid"] == proc.pid
        assert owner["host"] == socket.gethostname()
        port = free_port()
        with config_server(cfg, data, port):
            rec = httpx.get(f"http://127.0.0.1:{port}/api/v1/runs/{run_id}").json()
            assert rec["status"] == "running", rec
            out, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        final = store.get(run_id)
        assert final.status == "ok", final.summary
        assert [s.status for s in final.steps_for("localhost")] == ["ok", "ok"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_a_run_whose_owner_was_killed_is_marked_interrupted_at_the_next_start(
        tmp_path: Path, runs_of: Any) -> None:
    cfg, data = setup_dir(tmp_path, 60)
    proc = start_cli_run(cfg, data)
    try:
        store = runs_of(data)
        run_id = wait_running(store, proc)
        os.kill(proc.pid, signal.SIGKILL)
        # not reaped yet: a zombie counts as gone
        port = free_port()
        with config_server(cfg, data, port):
            rec = httpx.get(f"http://127.0.0.1:{port}/api/v1/runs/{run_id}").json()
        assert rec["status"] == "interrupted", rec
        assert "interrupted" in rec["summary"]
        assert [s["status"] for s in rec["steps"]] == ["interrupted"]
    finally:
        proc.kill()
        proc.communicate()


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Any]:
    engine = open_engine(None, tmp_path / "data")
    yield engine
    engine.dispose()


def make_store(db: Any, clock: FakeClock, owner: RunOwner | None = None) -> RunStore:
    return RunStore(db, clock, eventlog=EventLog(db, clock=clock), owner=owner)


def new_running(store: RunStore) -> str:
    run_id = store.create("rb", trigger="cli", started_by="t", params={}, targets=["h"])
    store.set_status(run_id, "running")
    return run_id


def test_owners_on_other_hosts_are_judged_by_their_heartbeat(db: Any) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    here = make_store(db, clock)
    fresh_owner = make_store(db, clock, RunOwner("other-host", 4242, 1.0))
    stale_owner = make_store(db, clock, RunOwner("third-host", 4243, 2.0))
    stale = new_running(stale_owner)
    clock.advance(50)
    fresh = new_running(fresh_owner)
    clock.advance(50)  # stale's heartbeat is 100 s old, fresh's 50 s (limit 60 s)
    assert here.mark_interrupted() == [stale]
    assert here.status(fresh) == "running"
    clock.advance(50)
    assert fresh_owner.heartbeat() == 1  # the owner keeps beating: still alive
    clock.advance(50)
    assert here.mark_interrupted() == []
    clock.advance(20)
    assert here.mark_interrupted() == [fresh]
    assert fresh_owner.heartbeat() == 0
    for s in (here, fresh_owner, stale_owner):
        s.close()


def test_this_hosts_owners_are_judged_by_their_process(db: Any) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    me = RunOwner.current()
    here = make_store(db, clock)
    alive = new_running(here)
    reused = new_running(make_store(db, clock, RunOwner(me.host, me.pid, me.started - 100)))
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = new_running(make_store(db, clock, RunOwner(me.host, dead.pid, 5.0)))
    assert sorted(here.mark_interrupted()) == sorted([reused, gone])
    assert here.status(alive) == "running"
    assert here.get(alive).to_dict()["owner"]["pid"] == os.getpid()
    here.close()


def test_runs_recorded_before_owners_count_as_gone(db: Any) -> None:
    from sqlalchemy import update

    from watchkeeper.store.models import runs

    clock = FakeClock(start=1_700_000_000.0)
    store = make_store(db, clock)
    legacy = new_running(store)
    with db.begin() as conn:
        conn.execute(update(runs).where(runs.c.id == legacy).values(
            owner_host=None, owner_pid=None, owner_started=None, heartbeat_at=None))
    assert store.get(legacy).owner is None
    assert store.mark_interrupted() == [legacy]
    store.close()


def test_owner_alive_rules() -> None:
    me = RunOwner.current()
    assert owner_alive(me, None, now=0, stale_after=60)
    assert not owner_alive(None, 100.0, now=100.0, stale_after=60)
    assert not owner_alive(RunOwner(me.host, me.pid, me.started + 3), None, now=0,
                           stale_after=60)
    assert owner_alive(RunOwner("elsewhere", 1, 1.0), 100.0, now=150.0, stale_after=60)
    assert not owner_alive(RunOwner("elsewhere", 1, 1.0), None, now=150.0, stale_after=60)


def test_the_heartbeat_thread_refreshes_and_stops_by_itself(db: Any) -> None:
    clock = FakeClock(start=1_700_000_000.0)
    store = RunStore(db, clock, heartbeat_interval=0.05)
    run_id = new_running(store)
    clock.advance(30)
    deadline = time.monotonic() + 10
    while (store.get(run_id).owner or {}).get("heartbeat_at") != clock.time():
        assert time.monotonic() < deadline, "no heartbeat"
        time.sleep(0.02)
    store.set_status(run_id, "ok")
    deadline = time.monotonic() + 10
    while store._beat_thread is not None:
        assert time.monotonic() < deadline, "the heartbeat thread did not stop"
        time.sleep(0.02)
    store.close()

