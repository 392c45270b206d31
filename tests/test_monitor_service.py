"""MonitorService over a real SQLite store: results, states, samples and events written,
restarts that continue where they stopped, reloads, failed writes that lose nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from watchkeeper.clock import SystemClock
from watchkeeper.config import config_model
from watchkeeper.errors import StorageError
from watchkeeper.eventlog import EventLog
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckResult, Sample, State
from watchkeeper.monitor.service import MonitorService, check_history, load_statuses
from watchkeeper.query.engine import QueryEngine
from watchkeeper.scheduler import Scheduler
from watchkeeper.store.engine import open_engine
from watchkeeper.store.models import check_results, check_status
from watchkeeper.store.tsdb import TSDB
from watchkeeper.testing import FakeClock

T0 = 1_700_000_000.0


class FlakyTSDB(TSDB):
    """A real TSDB whose next ``fail`` appends raise as a failing database would."""

    fail = 0

    def append(self, samples: Iterable[Sample], default_timestamp: float) -> int:
        if self.fail:
            self.fail -= 1
            raise StorageError("cannot write samples in database test.db: disk I/O error")
        return super().append(samples, default_timestamp)


class FlakyEventLog(EventLog):
    """A real event log whose append fails once, after ``fail_after`` more appends."""

    fail_after: int | None = None

    def append(self, kind: str, subject: str, data: Any = None, *, actor: str = "watchkeeper") -> Any:
        if self.fail_after is not None:
            if self.fail_after == 0:
                self.fail_after = None
                raise StorageError("cannot write the event log in database test.db: disk I/O error")
            self.fail_after -= 1
        return super().append(kind, subject, data, actor=actor)


@dataclass
class Stack:
    data: Path
    engine: Engine
    clock: FakeClock
    tsdb: FlakyTSDB
    eventlog: FlakyEventLog
    scheduler: Scheduler
    monitor: MonitorService

    def restart(self) -> Stack:
        """A new process on the same data dir: new engine, store, log, scheduler, service."""
        self.engine.dispose()
        return make_stack(self.data, self.clock)


def make_stack(data: Path, clock: FakeClock) -> Stack:
    engine = open_engine(None, data)
    tsdb = FlakyTSDB(engine, clock=clock)
    eventlog = FlakyEventLog(engine, anchor=data / "eventlog.head", clock=clock)
    scheduler = Scheduler(clock=clock)
    monitor = MonitorService(engine, tsdb, eventlog, scheduler, clock=clock)
    return Stack(data, engine, clock, tsdb, eventlog, scheduler, monitor)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    holder = [make_stack(tmp_path / "data", FakeClock(T0))]
    yield holder[0]
    holder[0].engine.dispose()


@pytest.fixture
def restartable(tmp_path: Path) -> Iterator[list[Stack]]:
    """Like ``stack``, in a list the test replaces after a restart (so teardown closes the last)."""
    holder = [make_stack(tmp_path / "data", FakeClock(T0))]
    yield holder
    holder[-1].engine.dispose()


def config(*checks: dict[str, Any], host: bool = False) -> Any:
    return config_model().model_validate({"collectors": {"host": {"enabled": host}},
                                          "checks": list(checks)})


def file_check(name: str, path: Path, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": "file", "path": str(path), **extra}


def cfg_of(conf: Any, name: str) -> CheckConfig:
    return conf.check(name)  # type: ignore[no-any-return]


def result_rows(engine: Engine, name: str) -> list[tuple[float, str, str, int, str]]:
    """(ts, state, state_type, attempt, summary) of every stored result, oldest first."""
    return [(h["ts"], h["state"], h["state_type"], h["attempt"], h["summary"])
            for h in reversed(check_history(engine, name, limit=10_000))]


def count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def events_of(log: EventLog, prefix: str = "check.") -> list[tuple[str, str, dict[str, Any]]]:
    return [(e.kind, e.subject, e.data) for e in log.list(kind=prefix, limit=1000)]


# -- soft and hard states ------------------------------------------------------------------------
def test_soft_then_hard_states_are_stored_with_attempts(stack: Stack) -> None:
    conf = config({"name": "db", "type": "file", "path": "/x", "max_attempts": 3})
    stack.monitor.apply(conf)
    cfg = cfg_of(conf, "db")
    sequence = [(State.CRITICAL, "SOFT", 1), (State.OK, "HARD", 1),  # a soft recovery: no event
                (State.CRITICAL, "SOFT", 1), (State.CRITICAL, "SOFT", 2),
                (State.CRITICAL, "HARD", 3), (State.CRITICAL, "HARD", 1),
                (State.WARNING, "HARD", 1),  # from a hard problem, every change is hard at once
                (State.OK, "HARD", 1)]
    for i, (state, _, _) in enumerate(sequence):
        status = stack.monitor.record(cfg, CheckResult(state, f"result {i}", duration_seconds=0.5))
        stack.clock.advance(10)
    assert (status.state, status.state_type, status.hard_state) == (State.OK, "HARD", State.OK)
    asyncio.run(stack.monitor.flush())

    assert result_rows(stack.engine, "db") == [
        (T0 + 10 * i, state.name, kind, attempt, f"result {i}")
        for i, (state, kind, attempt) in enumerate(sequence)]
    stored = load_statuses(stack.engine)["db"]
    assert stored == stack.monitor.statuses["db"]
    assert (stored.state, stored.state_type, stored.hard_state, stored.attempt) == (
        State.OK, "HARD", State.OK, 1)
    assert stored.since == T0 + 70 and stored.last_run == T0 + 70
    assert stored.summary == "result 7" and stored.duration == 0.5
    assert stored.recent == (2, 0, 2, 2, 2, 2, 1, 0)
    assert events_of(stack.eventlog, "check.state_changed") == [
        ("check.state_changed", "db", {"from": "OK", "to": "CRITICAL", "summary": "result 4"}),
        ("check.state_changed", "db", {"from": "CRITICAL", "to": "WARNING", "summary": "result 6"}),
        ("check.state_changed", "db", {"from": "WARNING", "to": "OK", "summary": "result 7"}),
    ]
    assert stack.monitor.counters["checks_run"] == 8
    assert stack.monitor.counters["flushes"] == 1
    assert not stack.eventlog.verify()


def test_flapping_started_and_stopped_events(stack: Stack) -> None:
    conf = config({"name": "flappy", "type": "file", "path": "/x",
                   "flapping": {"window": 5, "low": 0.2, "high": 0.3}})
    stack.monitor.apply(conf)
    cfg = cfg_of(conf, "flappy")
    flags = []
    for state in ("OK", "CRITICAL", "OK", "OK", "OK", "OK", "OK"):
        flags.append(stack.monitor.record(cfg, CheckResult(State[state], state.lower())).flapping)
        stack.clock.advance(1)
    assert flags == [False, False, True, True, True, True, False]
    asyncio.run(stack.monitor.flush())
    assert events_of(stack.eventlog) == [
        ("check.state_changed", "flappy", {"from": "OK", "to": "CRITICAL", "summary": "critical"}),
        ("check.state_changed", "flappy", {"from": "CRITICAL", "to": "OK", "summary": "ok"}),
        ("check.flapping_started", "flappy", {"summary": "ok"}),
        ("check.flapping_stopped", "flappy", {}),
    ]
    assert load_statuses(stack.engine)["flappy"].flapping is False


# -- samples -----------------------------------------------------------------------------------
def test_flush_writes_check_samples_to_the_store(stack: Stack, tmp_path: Path) -> None:
    target = tmp_path / "payload.bin"
    target.write_bytes(b"x" * 1234)
    conf = config(file_check("payload", target, labels={"team": "db"}),
                  file_check("gone", tmp_path / "gone"))
    stack.monitor.apply(conf)
    for _ in range(2):
        for name in ("payload", "gone"):
            asyncio.run(stack.monitor.run_check(name))
        stack.clock.advance(15)
    assert stack.monitor.counters["samples_written"] == 0  # nothing written before the flush
    asyncio.run(stack.monitor.flush())
    assert stack.monitor.counters["samples_written"] == 2 * (5 + 3)

    q = QueryEngine(stack.tsdb)
    at = T0 + 15
    state = q.instant("watchkeeper_check_state", at)["result"]
    assert [(r["metric"], r["value"]) for r in state] == [
        ({"__name__": "watchkeeper_check_state", "check": "gone", "type": "file"}, [at, "2"]),
        ({"__name__": "watchkeeper_check_state", "check": "payload", "team": "db", "type": "file"},
         [at, "0"]),
    ]
    up = q.range('watchkeeper_check_up{check="payload"}', T0, T0 + 15, 15)["result"]
    assert up == [{"metric": {"__name__": "watchkeeper_check_up", "check": "payload",
                              "team": "db", "type": "file"},
                   "values": [[1700000000, "1"], [1700000015, "1"]]}]
    size = q.instant("watchkeeper_file_size_bytes", at)["result"]
    assert size == [{"metric": {"__name__": "watchkeeper_file_size_bytes", "check": "payload",
                                "path": str(target), "team": "db"}, "value": [at, "1234"]}]
    # the newest samples are also kept for /metrics
    assert {s.name for s in stack.monitor.latest["check:payload"]} == {
        "watchkeeper_check_up", "watchkeeper_check_state", "watchkeeper_check_duration_seconds",
        "watchkeeper_file_size_bytes", "watchkeeper_file_age_seconds"}
    assert count(stack.engine, check_results) == 4


# -- restarts ----------------------------------------------------------------------------------
def test_restart_continues_from_the_stored_status(restartable: list[Stack], tmp_path: Path) -> None:
    conf = config({"name": "api", "type": "file", "path": "/x", "max_attempts": 3},
                  {"name": "disk", "type": "file", "path": "/y", "max_attempts": 2})
    first = restartable[0]
    first.monitor.apply(conf)
    first.monitor.record(cfg_of(conf, "api"), CheckResult(State.CRITICAL, "down 1"))
    first.monitor.record(cfg_of(conf, "api"), CheckResult(State.CRITICAL, "down 2"))
    first.monitor.record(cfg_of(conf, "disk"), CheckResult(State.WARNING, "full 1"))
    first.monitor.record(cfg_of(conf, "disk"), CheckResult(State.WARNING, "full 2"))
    asyncio.run(first.monitor.flush())
    assert len(events_of(first.eventlog)) == 1  # disk went hard WARNING

    first.clock.advance(60)
    second = first.restart()
    restartable.append(second)
    api = second.monitor.statuses["api"]
    assert (api.state, api.state_type, api.hard_state, api.attempt) == (
        State.CRITICAL, "SOFT", State.OK, 2)
    second.monitor.apply(conf)  # the first apply after a restart keeps the loaded status
    assert second.monitor.statuses["api"] == api
    assert second.monitor.statuses["disk"].hard_state == State.WARNING

    # the third CRITICAL in a row is the hard one, across the restart
    new = second.monitor.record(cfg_of(conf, "api"), CheckResult(State.CRITICAL, "down 3"))
    assert (new.state_type, new.attempt, new.hard_state) == ("HARD", 3, State.CRITICAL)
    # still WARNING: no new event for disk
    second.monitor.record(cfg_of(conf, "disk"), CheckResult(State.WARNING, "full 3"))
    asyncio.run(second.monitor.flush())
    assert events_of(second.eventlog) == [
        ("check.state_changed", "disk", {"from": "OK", "to": "WARNING", "summary": "full 2"}),
        ("check.state_changed", "api", {"from": "OK", "to": "CRITICAL", "summary": "down 3"}),
    ]
    assert [r[2:4] for r in result_rows(second.engine, "api")] == [("SOFT", 1), ("SOFT", 2),
                                                                   ("HARD", 3)]
    assert not second.eventlog.verify()


# -- reloads -----------------------------------------------------------------------------------
def test_apply_adds_removes_and_replaces_jobs_keeping_unchanged_status(stack: Stack,
                                                                       tmp_path: Path) -> None:
    a = file_check("a", tmp_path / "a", interval="30s")
    b = file_check("b", tmp_path / "b", interval="30s")
    c = file_check("c", tmp_path / "c", interval="10s")
    off = file_check("off", tmp_path / "off", enabled=False)
    first = config(a, b, off)
    mon = stack.monitor
    mon.apply(first)
    assert set(stack.scheduler.jobs) == {"check:a", "check:b"}
    assert set(mon.configs) == {"a", "b"}
    job_a, job_b = stack.scheduler.jobs["check:a"], stack.scheduler.jobs["check:b"]
    assert job_a.interval == 30.0 and job_a.jitter == 3.0  # 10% of the interval by default
    status_a = mon.record(cfg_of(first, "a"), CheckResult(State.CRITICAL, "a is down"))
    mon.record(cfg_of(first, "b"), CheckResult(State.CRITICAL, "b is down"))
    asyncio.run(mon.run_check("b"))
    assert "check:b" in mon.latest

    second = config(a, {**b, "interval": "1m", "jitter": "0s"}, c, {**off, "enabled": True})
    mon.apply(second)
    assert set(stack.scheduler.jobs) == {"check:a", "check:b", "check:c", "check:off"}
    assert stack.scheduler.jobs["check:a"] is job_a  # unchanged: not rescheduled
    new_b = stack.scheduler.jobs["check:b"]
    assert new_b is not job_b and (new_b.interval, new_b.jitter) == (60.0, 0.0)
    assert new_b.generation == job_b.generation + 1
    assert mon.statuses["a"] == status_a  # unchanged check: status untouched
    assert mon.statuses["b"].summary.endswith("does not exist")  # a changed check keeps its state too
    assert mon.configs["b"].interval == 60.0

    third = config({**b, "interval": "1m", "jitter": "0s"})
    mon.apply(third)
    assert set(stack.scheduler.jobs) == {"check:b"}
    assert set(mon.configs) == {"b"} and set(mon.checks) == {"b"}
    assert "check:a" not in mon.latest


def test_apply_with_a_new_type_starts_a_new_status(stack: Stack, tmp_path: Path) -> None:
    as_file = config(file_check("svc", tmp_path / "svc"))
    stack.monitor.apply(as_file)
    stack.monitor.record(cfg_of(as_file, "svc"), CheckResult(State.CRITICAL, "no file"))
    as_tcp = config({"name": "svc", "type": "tcp", "host": "127.0.0.1", "port": 9})
    stack.monitor.apply(as_tcp)
    status = stack.monitor.statuses["svc"]
    assert (status.type, status.state, status.summary) == ("tcp", State.OK, "not run yet")
    stack.monitor.record(cfg_of(as_tcp, "svc"), CheckResult(State.OK, "connected"))
    asyncio.run(stack.monitor.flush())
    assert load_statuses(stack.engine)["svc"].type == "tcp"


def test_apply_schedules_and_removes_the_host_collector(stack: Stack) -> None:
    stack.monitor.apply(config(host=True))
    assert "collector:host" in stack.scheduler.jobs
    assert stack.monitor.collector is not None
    stack.monitor.apply(config(host=False))
    assert "collector:host" not in stack.scheduler.jobs
    assert stack.monitor.collector is None


# -- failed writes ---------------------------------------------------------------------------------
def test_a_failed_sample_write_keeps_everything_and_duplicates_nothing(stack: Stack) -> None:
    conf = config({"name": "x", "type": "file", "path": "/x"})
    mon = stack.monitor
    mon.apply(conf)
    cfg = cfg_of(conf, "x")
    mon.record(cfg, CheckResult(State.CRITICAL, "first"))
    stack.clock.advance(10)
    stack.tsdb.fail = 1
    with pytest.raises(StorageError, match="disk I/O error"):
        asyncio.run(mon.flush())
    assert mon.counters["flushes"] == 0
    # more results arrive before the next flush
    mon.record(cfg, CheckResult(State.OK, "second"))
    asyncio.run(mon.flush())
    assert [r[1:] for r in result_rows(stack.engine, "x")] == [
        ("CRITICAL", "HARD", 1, "first"), ("OK", "HARD", 1, "second")]
    assert count(stack.engine, check_results) == 2
    assert count(stack.engine, check_status) == 1
    assert load_statuses(stack.engine)["x"].summary == "second"
    values = QueryEngine(stack.tsdb).range("watchkeeper_check_state", T0, T0 + 10, 10)["result"]
    assert values[0]["values"] == [[1700000000, "2"], [1700000010, "0"]]
    assert [e[0] for e in events_of(stack.eventlog)] == ["check.state_changed"] * 2
    assert mon.counters["flushes"] == 1 and mon.counters["samples_written"] == 6
    assert not (mon._results or mon._samples or mon._events or mon._status_rows)


def test_a_failed_event_write_keeps_the_rest_and_writes_each_event_once(stack: Stack) -> None:
    conf = config({"name": "x", "type": "file", "path": "/x"})
    mon = stack.monitor
    mon.apply(conf)
    cfg = cfg_of(conf, "x")
    for state in ("CRITICAL", "OK", "CRITICAL"):
        mon.record(cfg, CheckResult(State[state], state))
        stack.clock.advance(1)
    stack.eventlog.fail_after = 1  # the second event fails
    with pytest.raises(StorageError):
        asyncio.run(mon.flush())
    asyncio.run(mon.flush())
    assert [e[2]["to"] for e in events_of(stack.eventlog, "check.state")] == [
        "CRITICAL", "OK", "CRITICAL"]
    assert [e[0] for e in events_of(stack.eventlog)] == [
        "check.state_changed", "check.state_changed", "check.state_changed", "check.flapping_started"]
    assert count(stack.engine, check_results) == 3
    assert len(QueryEngine(stack.tsdb).range("watchkeeper_check_up", T0, T0 + 2, 1)["result"][0]
               ["values"]) == 3
    assert not stack.eventlog.verify()


def test_flush_with_nothing_queued_writes_nothing(stack: Stack) -> None:
    asyncio.run(stack.monitor.flush())
    assert stack.monitor.counters["flushes"] == 0
    assert count(stack.engine, check_results) == 0


# -- pruning -----------------------------------------------------------------------------------
def test_prune_results_deletes_only_older_rows(stack: Stack) -> None:
    conf = config({"name": "p", "type": "file", "path": "/x"}, {"name": "q", "type": "file",
                                                               "path": "/y"})
    stack.monitor.apply(conf)
    for i in range(10):
        for name in ("p", "q"):
            stack.monitor.record(cfg_of(conf, name), CheckResult(State.OK, f"{name} {i}"))
        stack.clock.advance(100)
    asyncio.run(stack.monitor.flush())
    assert stack.monitor.prune_results(T0 + 450) == 10
    assert [r[0] for r in result_rows(stack.engine, "p")] == [T0 + 100 * i for i in range(5, 10)]
    assert len(result_rows(stack.engine, "q")) == 5
    assert stack.monitor.prune_results(T0 + 450) == 0
    assert stack.monitor.prune_results(T0 + 500) == 0  # "older than": a row at exactly T0+500 stays
    assert stack.monitor.prune_results(T0 + 500.001) == 2
    assert count(stack.engine, check_status) == 2  # statuses are not history


def test_prune_results_in_batches(stack: Stack) -> None:
    conf = config({"name": "many", "type": "file", "path": "/x"})
    stack.monitor.apply(conf)
    cfg = cfg_of(conf, "many")
    for _ in range(12_000):
        stack.monitor.record(cfg, CheckResult(State.OK, "ok"))
        stack.clock.advance(0.01)
    stack.monitor._samples.clear()  # only the results matter here; keep the test quick
    asyncio.run(stack.monitor.flush())
    assert stack.monitor.prune_results(T0 + 110) == 11_000
    assert count(stack.engine, check_results) == 1_000


# -- a real run ----------------------------------------------------------------------------------
async def test_scheduler_runs_a_file_check_every_second(tmp_path: Path) -> None:
    target = tmp_path / "heartbeat"
    target.write_text("beat")
    engine = open_engine(None, tmp_path / "data")
    try:
        clock = SystemClock()
        scheduler = Scheduler(clock=clock)
        eventlog = EventLog(engine, clock=clock)
        mon = MonitorService(engine, TSDB(engine, clock=clock), eventlog, scheduler, clock=clock)
        mon.apply(config(file_check("heartbeat", target, interval="1s", jitter="0s")))
        scheduler.add("store:flush", 1.0, mon.flush, limited=False)
        runner = asyncio.create_task(scheduler.run())
        await asyncio.sleep(2.2)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        await mon.flush()
        history = check_history(engine, "heartbeat")
        assert len(history) >= 2, history
        assert {h["state"] for h in history} == {"OK"}
        assert scheduler.jobs["check:heartbeat"].runs >= 2
        assert scheduler.jobs["check:heartbeat"].failures == 0
        assert scheduler.jobs["store:flush"].failures == 0
        assert load_statuses(engine)["heartbeat"].summary.startswith(f"{target}: 4 B, modified ")
    finally:
        engine.dispose()


class _AlwaysCritical(CheckConfig):
    """A check that fails at once without threads, so the fake clock's autojump stays exact."""

    type: str = "always-critical"

    def build(self) -> Any:
        class Run:
            async def run(self, ctx: Any) -> CheckResult:
                return CheckResult(State.CRITICAL, "down")

        return Run()


async def test_soft_state_is_rechecked_at_the_retry_interval(tmp_path: Path) -> None:
    """A failing check (max_attempts 3) reruns every retry_interval until hard, then every interval."""
    clock = FakeClock(T0, autojump=True)
    stack = make_stack(tmp_path / "data", clock)
    try:
        mon, sched = stack.monitor, stack.scheduler
        cfg = _AlwaysCritical(name="down", interval=60, max_attempts=3, retry_interval=5)
        mon.configs["down"] = cfg
        mon.checks["down"] = cfg.build()
        sched.add("check:down", cfg.interval, mon._job("down"))
        runs: list[tuple[float, str, int]] = []
        original = mon.record

        def spy(c: Any, result: Any) -> Any:
            status = original(c, result)
            runs.append((clock.monotonic(), status.state_type, status.attempt))
            return status

        mon.record = spy  # type: ignore[method-assign]
        runner = asyncio.create_task(sched.run())
        await clock.sleep(200.0)
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner
        # first run at 0 (soft 1), retries at 5 (soft 2) and 10 (hard), then the 60 s interval
        # resumes from the last retry: 70, 130, 190
        assert runs == [(0.0, "SOFT", 1), (5.0, "SOFT", 2), (10.0, "HARD", 3),
                        (70.0, "HARD", 1), (130.0, "HARD", 1), (190.0, "HARD", 1)]
    finally:
        stack.engine.dispose()
