"""RunStore over a real SQLite file: records, listing, interrupted runs, cancel, follow, approvals."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.automation.run_owner import RunOwner
from watchkeeper.automation.runs import RunStore, cap_output
from watchkeeper.errors import InputError, NotFoundError
from watchkeeper.eventlog import EventLog
from watchkeeper.store.engine import open_engine
from watchkeeper.testing.clock import FakeClock


@pytest.fixture
def db(tmp_path: Path) -> Any:
    engine = open_engine(None, tmp_path / "data")
    yield engine
    engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(start=1_700_000_000.0)


@pytest.fixture
def eventlog(db: Any, clock: FakeClock) -> EventLog:
    return EventLog(db, clock=clock)


@pytest.fixture
def store(db: Any, clock: FakeClock, eventlog: EventLog) -> RunStore:
    return RunStore(db, clock, eventlog=eventlog, output_cap=100, poll_interval=0.02)


def new_run(store: RunStore, **kw: Any) -> str:
    args: dict[str, Any] = {"trigger": "cli", "started_by": "alice", "params": {"service": "nginx"},
                            "targets": ["web1", "web2"]}
    args.update(kw)
    return store.create("restart-service", **args)


def test_a_run_is_recorded_with_steps_hosts_and_durations(store: RunStore, clock: FakeClock,
                                                          eventlog: EventLog) -> None:
    run_id = new_run(store)
    rec = store.get(run_id)
    assert (rec.status, rec.trigger, rec.started_by, rec.params, rec.targets) == (
        "pending", "cli", "alice", {"service": "nginx"}, ["web1", "web2"])
    assert rec.hosts == {"web1": "pending", "web2": "pending"}
    store.set_status(run_id, "running")
    clock.advance(1)
    sid = store.add_step(run_id, phase="steps", step="restart", host="web1", command="systemctl restart nginx")
    clock.advance(2.5)
    store.finish_step(sid, status="failed", exit_code=1, stdout="o" * 500, stderr="boom", changed=False)
    store.record_host(run_id, "web1", "failed")
    store.record_host(run_id, "web2", "skipped", "rollout halted")
    clock.advance(1)
    store.set_status(run_id, "failed", summary="2 hosts: 1 failed, 1 skipped")
    rec = store.get(run_id[:8])
    assert rec.status == "failed" and rec.duration_seconds == 4.5
    assert store.get(run_id[:8].upper()).id == run_id  # as a prefix is often typed
    step = rec.steps_for("web1")[0]
    assert (step.exit_code, step.stderr, step.duration_seconds) == (1, "boom", 2.5)
    assert len(step.stdout) < 200 and "characters dropped" in step.stdout
    assert rec.hosts == {"web1": "failed", "web2": "skipped"}
    assert [r.id for r in store.list()] == [run_id]
    assert store.list(status="ok") == []
    d = rec.to_dict()
    assert d["hosts"] == {"web1": "failed", "web2": "skipped"} and len(d["steps"]) == 1
    kinds = [(e.kind, e.actor, e.subject) for e in eventlog.list()]
    assert kinds == [("run.started", "alice", f"run:{run_id}"), ("run.finished", "alice", f"run:{run_id}")]
    # a final status sticks: a late update from a slow engine does not reopen the run
    store.set_status(run_id, "running")
    assert store.status(run_id) == "failed"


def test_unknown_and_ambiguous_ids(store: RunStore) -> None:
    with pytest.raises(NotFoundError) as err:
        store.get("nope")
    assert str(err.value) == "no run 'nope'\n  hint: list runs with `watchkeeper runs`"


def test_cap_output_keeps_head_and_tail() -> None:
    text = "a" * 50 + "b" * 100 + "c" * 50
    capped = cap_output(text, 40)
    assert capped.startswith("a" * 10) and capped.endswith("c" * 30)
    assert "[... 160 characters dropped ...]" in capped
    assert cap_output("short", 40) == "short"


def test_mark_interrupted_at_start_up(store: RunStore, eventlog: EventLog, db: Any,
                                     clock: FakeClock) -> None:
    # created by a process that is gone (this pid, but another start time: a reused pid);
    # runs of a live owner are left alone (tests/automation/test_run_owner.py)
    gone = RunStore(db, clock, eventlog=eventlog,
                    owner=RunOwner(store.owner.host, store.owner.pid, 1.0))
    running = new_run(gone)
    store.set_status(running, "running")
    sid = store.add_step(running, phase="steps", step="restart", host="web1")
    waiting = new_run(gone)
    store.request_approval(waiting, "ok?", role=None, message="", timeout=60)
    done = new_run(store)
    store.set_status(done, "ok", summary="fine")
    assert sorted(store.mark_interrupted()) == sorted([running, waiting])
    assert store.status(running) == "interrupted" and store.status(done) == "ok"
    rec = store.get(running)
    assert rec.steps[0].id == sid and rec.steps[0].status == "interrupted"
    assert "interrupted" in rec.summary
    assert store.get(waiting).steps[0].status == "interrupted"
    assert [e.kind for e in eventlog.list(kind="run.interrupted")] == ["run.interrupted"] * 2
    assert store.mark_interrupted() == []
    gone.close()


def test_cancel(store: RunStore, eventlog: EventLog) -> None:
    run_id = new_run(store)
    store.set_status(run_id, "running")
    called: list[bool] = []
    store.on_cancel(run_id, lambda: called.append(True))
    rec = store.cancel(run_id, by="bob")
    assert rec.status == "cancelled" and rec.summary == "cancelled by bob" and called == [True]
    with pytest.raises(InputError) as err:
        store.cancel(run_id, by="bob")
    assert str(err.value) == f"run {run_id} already finished (cancelled); nothing to cancel"
    assert ("run.cancelled", "bob") in [(e.kind, e.actor) for e in eventlog.list()]


async def test_subscribe_follows_a_run_to_its_end(store: RunStore) -> None:
    run_id = new_run(store)
    events: list[tuple[str, str]] = []

    async def follow() -> None:
        async for ev in store.subscribe(run_id):
            events.append((ev.kind, ev.data.get("status", "")))

    async def work() -> None:
        await asyncio.sleep(0.01)
        store.set_status(run_id, "running")
        sid = store.add_step(run_id, phase="steps", step="restart", host="web1")
        await asyncio.sleep(0.01)
        store.finish_step(sid, status="ok", exit_code=0)
        await asyncio.sleep(0.01)
        store.set_status(run_id, "ok", summary="done")

    async with asyncio.timeout(5):
        await asyncio.gather(follow(), work())
    assert events[0] == ("run", "pending")
    assert events[-1] == ("run", "ok")
    assert ("step", "ok") in events


async def test_subscribe_sees_changes_made_by_another_process(store: RunStore, db: Any,
                                                              clock: FakeClock) -> None:
    other = RunStore(db, clock, poll_interval=0.02)  # same database, no shared wake-ups
    run_id = new_run(store)
    seen: list[str] = []

    async def follow() -> None:
        async for ev in store.subscribe(run_id):
            if ev.kind == "run":
                seen.append(ev.data["status"])

    async def elsewhere() -> None:
        await asyncio.sleep(0.05)
        other.set_status(run_id, "running")
        await asyncio.sleep(0.05)
        other.set_status(run_id, "ok")

    async with asyncio.timeout(5):
        await asyncio.gather(follow(), elsewhere())
    assert seen == ["pending", "running", "ok"]


async def test_approval_decided_from_another_store_wakes_the_waiter(store: RunStore, db: Any,
                                                                    clock: FakeClock,
                                                                    eventlog: EventLog) -> None:
    run_id = new_run(store)
    store.set_status(run_id, "running")
    sid = store.request_approval(run_id, "go?", role="ops", message="restart web?", timeout=600)
    assert store.status(run_id) == "awaiting_approval"
    cli = RunStore(db, clock, eventlog=eventlog)  # as `watchkeeper approve` against the data dir

    async def approve_later() -> None:
        await asyncio.sleep(0.05)
        cli.approve(run_id[:8], by="carol", comment="ok", roles={"ops", "dev"})

    async with asyncio.timeout(5):
        (decision, info), _ = await asyncio.gather(store.wait_decision(run_id, sid, 600),
                                                   approve_later())
    assert decision == "approved" and info["by"] == "carol" and info["comment"] == "ok"
    kinds = [e.kind for e in eventlog.list(kind="run.")]
    assert kinds == ["run.started", "run.approval_requested", "run.approved"]


async def test_approval_wait_times_out_on_the_clock(store: RunStore, clock: FakeClock) -> None:
    run_id = new_run(store)
    sid = store.request_approval(run_id, "go?", role=None, message="", timeout=30)

    async def later() -> None:
        await asyncio.sleep(0.05)
        clock.advance(31)

    async with asyncio.timeout(5):
        (decision, _), _ = await asyncio.gather(store.wait_decision(run_id, sid, 30), later())
    assert decision == "timeout"
    assert store.get(run_id).steps[0].status == "timeout"
    with pytest.raises(InputError):
        store.reject(run_id, by="late")
