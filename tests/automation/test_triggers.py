"""Schedules (cron + time zone, missed runs reported) and alert triggers (the closed loop).

The alert store, event log, monitor and checks are the real ones over SQLite in tmp_path;
the launcher is the seam the automation service fills with the runbook engine (the full
stack with runbooks and sshd runs in tests/test_automation_e2e.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.alerting.checkalerts import CheckAlerter
from watchkeeper.alerting.model import AlertState
from watchkeeper.alerting.store import ActiveAlert, AlertStore
from watchkeeper.automation.config import TriggerConfig
from watchkeeper.automation.triggers import (
    AlertTriggers,
    RunOutcome,
    RunRequest,
    Schedule,
    Verifier,
    cron_times,
    next_fire,
    remediation_rule,
    render_params,
)
from watchkeeper.errors import InputError, NotFoundError
from watchkeeper.eventlog import EventLog
from watchkeeper.monitor.service import MonitorService
from watchkeeper.scheduler import Scheduler
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB
from watchkeeper.testing.clock import FakeClock

T0 = datetime(2024, 3, 30, 12, 0, tzinfo=UTC).timestamp()  # the day before Europe's DST switch


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[misc]


@dataclass
class Launcher:
    """Records requests; ``fix`` is what "the runbook" does (a real change on disk)."""

    fix: Any = None
    status: str = "ok"
    requests: list[RunRequest] = field(default_factory=list)
    on_failure_runs: list[str] = field(default_factory=list)
    notes: dict[str, list[str]] = field(default_factory=dict)
    hold: asyncio.Event | None = None

    async def launch(self, request: RunRequest) -> RunOutcome:
        self.requests.append(request)
        if self.hold is not None:
            await self.hold.wait()
        if self.fix is not None:
            self.fix(request)
        return RunOutcome(f"run-{len(self.requests)}", self.status, f"{self.status} run")

    async def on_failure(self, run_id: str) -> None:
        self.on_failure_runs.append(run_id)

    def note(self, run_id: str, text: str) -> None:
        self.notes.setdefault(run_id, []).append(text)


@dataclass
class World:
    engine: Any
    clock: FakeClock
    eventlog: EventLog
    store: AlertStore
    monitor: MonitorService


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = FakeClock(T0)
    engine = open_engine(None, tmp_path)
    eventlog = EventLog(engine, clock=clock)
    store = AlertStore(engine, eventlog=eventlog, clock=clock)
    monitor = MonitorService(engine, TSDB(engine, clock=clock), eventlog,
                             Scheduler(clock=clock), clock=clock)
    monitor.on_result = CheckAlerter(store, clock).on_result
    yield World(engine, clock, eventlog, store, monitor)
    engine.dispose()


def trigger(**kw: Any) -> TriggerConfig:
    return TriggerConfig.model_validate({"name": "t", "runbook": "fix-it", **kw})


def kinds(eventlog: EventLog, prefix: str = "") -> list[str]:
    return [e.kind for e in eventlog.list(kind=prefix or None, limit=1000)]


# -- cron --------------------------------------------------------------------------------------
@pytest.mark.parametrize(("expr", "tz", "after", "expected"), [
    ("0 3 * * *", "UTC", T0, utc(2024, 3, 31, 3, 0)),
    # 03:00 in Berlin is 02:00 UTC before the DST switch (CET) and 01:00 UTC after (CEST)
    ("0 3 * * *", "Europe/Berlin", utc(2024, 3, 29, 12), utc(2024, 3, 30, 2, 0)),
    ("0 3 * * *", "Europe/Berlin", utc(2024, 3, 31, 12), utc(2024, 4, 1, 1, 0)),
    ("*/15 * * * *", "UTC", utc(2024, 1, 1, 10, 7), utc(2024, 1, 1, 10, 15)),
    ("30 9 * * 1-5", "America/New_York", utc(2024, 1, 6, 0), utc(2024, 1, 8, 14, 30)),
])
def test_next_fire_in_time_zone(expr: str, tz: str, after: float, expected: float) -> None:
    assert next_fire(expr, tz, after) == expected


def test_cron_times_lists_times_in_range() -> None:
    times = cron_times("0 * * * *", "UTC", utc(2024, 1, 1, 0, 30), utc(2024, 1, 1, 3, 0))
    assert times == [utc(2024, 1, 1, h) for h in (1, 2, 3)]


@pytest.mark.parametrize(("data", "message"), [
    ({"schedule": "61 * * * *"}, "is not a cron expression"),
    ({"schedule": "0 3 * * *", "timezone": "Mars/Olympus"}, "is not a time zone"),
    ({}, "exactly one of 'schedule'"),
    ({"schedule": "0 3 * * *", "alert": {"matchers": ['a="b"']}}, "exactly one of"),
    ({"alert": {"matchers": ["a=~("]}}, "invalid regular expression"),
])
def test_trigger_config_errors(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        trigger(**data)


# -- schedules ---------------------------------------------------------------------------------
async def test_schedule_fires_at_cron_times_with_the_passed_clock(world: World) -> None:
    clock = FakeClock(T0, autojump=True)
    eventlog = EventLog(world.engine, clock=clock)
    launcher = Launcher()
    sched = Schedule(trigger(schedule="*/5 * * * *"), launcher, eventlog, clock)
    task = asyncio.create_task(sched.run())
    await clock.sleep(16 * 60)  # the clock jumps from sleeper to sleeper
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    fired = [e for e in eventlog.list(kind="trigger.fired")]
    assert [e.data["scheduled"] for e in fired] == [
        "2024-03-30T12:05:00.000Z", "2024-03-30T12:10:00.000Z", "2024-03-30T12:15:00.000Z"]
    assert [r.started_by for r in launcher.requests] == ["schedule:t"] * 3
    assert kinds(eventlog, "trigger.") == ["trigger.armed"] + ["trigger.fired"] * 3


def test_missed_runs_are_reported_not_replayed(world: World) -> None:
    launcher = Launcher()
    cfg = trigger(schedule="0 * * * *")
    sched = Schedule(cfg, launcher, world.eventlog, world.clock)
    assert sched.report_missed(world.clock.time()) == []  # first start: armed
    world.clock.advance(5 * 3600 + 60)  # "down" for five hours
    missed = sched.report_missed(world.clock.time())
    assert len(missed) == 5
    (ev,) = world.eventlog.list(kind="trigger.missed")
    assert ev.subject == "trigger/t"
    assert ev.data == {"count": 5, "first": "2024-03-30T13:00:00.000Z",
                       "last": "2024-03-30T17:00:00.000Z", "runbook": "fix-it",
                       "schedule": "0 * * * *", "timezone": "UTC", "replayed": False}
    assert launcher.requests == []  # nothing replayed
    # reported once: another start right after finds nothing new
    assert sched.report_missed(world.clock.time()) == []


async def test_schedule_skips_a_firing_while_the_last_run_goes_on(world: World) -> None:
    clock = FakeClock(T0, autojump=True)
    eventlog = EventLog(world.engine, clock=clock)
    launcher = Launcher(hold=asyncio.Event())
    sched = Schedule(trigger(schedule="* * * * *"), launcher, eventlog, clock)
    task = asyncio.create_task(sched.run())
    await clock.sleep(200)  # fires at 60 s, then 120 s and 180 s find the run still going
    launcher.hold.set()  # type: ignore[union-attr]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(launcher.requests) == 1
    skipped = eventlog.list(kind="trigger.skipped")
    assert skipped[0].data["reason"] == "the previous run is still going"


# -- params ------------------------------------------------------------------------------------
def test_params_render_from_alert_labels_and_stay_typed() -> None:
    ctx = {"labels": {"instance": "web1", "mountpoint": "/var"}, "alert": {"fingerprint": "ab"}}
    out = render_params({"path": "{{ labels.mountpoint }}/log", "keep": 3, "hosts": ["{{ labels.instance }}"],
                         "fp": "{{ alert.fingerprint }}"}, ctx)
    assert out == {"path": "/var/log", "keep": 3, "hosts": ["web1"], "fp": "ab"}


def test_params_with_unknown_label_are_an_error() -> None:
    with pytest.raises(InputError, match=r"params.path: 'dict object' has no attribute 'mountpont'"):
        render_params({"path": "{{ labels.mountpont }}"}, {"labels": {"mountpoint": "/"}})


def test_params_templates_are_sandboxed() -> None:
    with pytest.raises(InputError, match="params.x"):
        render_params({"x": "{{ labels.__class__.__mro__ }}"}, {"labels": {}})


# -- alert triggers: the closed loop -----------------------------------------------------------
def file_check(name: str, path: Path) -> Any:
    from watchkeeper.monitor.checks.file import Config

    return Config.model_validate({"name": name, "type": "file", "path": str(path),
                                  "alert": {"alertname": "FileMissing", "severity": "page"}})


class Cfg:
    def __init__(self, *checks: Any) -> None:
        from watchkeeper.config.models import CollectorsConfig

        self.checks = list(checks)
        self.collectors = CollectorsConfig.model_validate({"host": {"enabled": False}})


async def start(world: World, launcher: Launcher, *triggers: TriggerConfig,
                monitor: bool = True) -> tuple[AlertTriggers, asyncio.Task[None]]:
    verifier = Verifier(world.store, world.clock, monitor=world.monitor if monitor else None)
    at = AlertTriggers(launcher, world.store, verifier, world.eventlog, world.clock,
                       run_url=lambda rid: f"http://127.0.0.1:1/api/v1/runs/{rid}",
                       poll_interval=3600)
    world.store.on_change = at.wake
    at.apply(list(triggers))
    task = asyncio.create_task(at.run())
    await asyncio.sleep(0)
    return at, task


async def settle(at: AlertTriggers, n: int) -> None:
    for _ in range(2000):
        if len(at.outcomes) >= n:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"only {at.outcomes} after waiting")


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_alert_runs_runbook_and_is_recorded_remediated(world: World, tmp_path: Path) -> None:
    target = tmp_path / "flag"
    world.monitor.apply(Cfg(file_check("flag", target)))
    launcher = Launcher(fix=lambda req: target.write_text("ok"))
    at, task = await start(world, launcher, trigger(
        alert={"matchers": ['alertname="FileMissing"']}, params={"path": "{{ labels.check }}"},
        limit="{{ labels.severity }}"))
    await world.monitor.run_check("flag")  # fails -> alert fires -> trigger wakes
    await settle(at, 1)
    await stop(task)
    (req,) = launcher.requests
    assert (req.trigger, req.runbook, req.params, req.limit) == ("alert", "fix-it",
                                                                  {"path": "flag"}, "page")
    assert req.alert is not None and req.alert.name == "FileMissing"
    assert at.outcomes[0][3] == "remediated", [e.data for e in world.eventlog.list(kind="automation.")]
    assert world.store.find("FileMissing") == []  # resolved by the verifying check run
    (ev,) = world.eventlog.list(kind="automation.remediated")
    assert ev.subject == "run/run-1" and ev.data["run_status"] == "ok"
    assert launcher.notes["run-1"][0].startswith("remediated: check flag is OK")
    assert launcher.on_failure_runs == []


async def test_failed_remediation_runs_on_failure_and_escalates(world: World, tmp_path: Path) -> None:
    target = tmp_path / "flag"
    world.monitor.apply(Cfg(file_check("flag", target)))
    launcher = Launcher()  # "fixes" nothing
    at, task = await start(world, launcher, trigger(
        name="fix-flag", alert={"matchers": ['alertname="FileMissing"']},
        verify={"retries": 1}))
    await world.monitor.run_check("flag")
    await settle(at, 1)
    assert at.outcomes[0][3] == "failed"
    assert launcher.on_failure_runs == ["run-1"]
    assert launcher.notes["run-1"][0].startswith("not remediated: check flag is CRITICAL")
    (esc,) = world.store.find("RemediationFailed")
    original = world.store.find("FileMissing")[0]
    assert esc.state == AlertState.FIRING and esc.rule == remediation_rule("fix-flag")
    assert esc.labels == {**original.labels, "alertname": "RemediationFailed",
                          "remediation": "failed", "remediated_alert": "FileMissing",
                          "remediated_fingerprint": original.fingerprint, "trigger": "fix-flag"}
    assert esc.annotations["run_id"] == "run-1"
    assert esc.annotations["run_url"] == "http://127.0.0.1:1/api/v1/runs/run-1"
    assert esc.annotations["run_status"] == "ok"
    assert kinds(world.eventlog, "automation.") == ["automation.remediation_failed",
                                                   "automation.escalated"]
    # the problem is fixed by hand: the alert resolves, and so does the escalation
    target.write_text("fixed")
    await world.monitor.run_check("flag")
    for _ in range(200):
        if not world.store.find("RemediationFailed"):
            break
        await asyncio.sleep(0.005)
    await stop(task)
    assert world.store.find("RemediationFailed") == []
    assert world.store.get(esc.fingerprint).state == AlertState.RESOLVED


async def test_a_failed_run_is_not_rolled_back_twice(world: World, tmp_path: Path) -> None:
    world.monitor.apply(Cfg(file_check("flag", tmp_path / "flag")))
    launcher = Launcher(status="failed")  # the engine ran on_failure itself
    at, task = await start(world, launcher, trigger(alert={"matchers": ['check="flag"']}))
    await world.monitor.run_check("flag")
    await settle(at, 1)
    await stop(task)
    assert launcher.on_failure_runs == []
    (esc,) = world.store.find("RemediationFailed")
    assert esc.annotations["run_status"] == "failed"


async def test_cooldown_per_alert_and_rate_limit_per_trigger(world: World) -> None:
    launcher = Launcher()
    at, task = await start(world, launcher, trigger(
        alert={"matchers": ['alertname="Disk"']}, cooldown="10m",
        rate_limit={"runs": 2, "per": "1h"}, verify={"escalate": False}), monitor=False)

    def fire(*instances: str) -> None:
        world.store.sync_rule("g/Disk", [ActiveAlert({"alertname": "Disk", "instance": i})
                                          for i in instances], world.clock.time(), for_=0.0)

    fire("a")
    await settle(at, 1)
    at.scan()  # still firing, within the cooldown: nothing new
    assert len(launcher.requests) == 1
    world.clock.advance(601)
    at.scan()  # cooldown over, still firing: try again
    await settle(at, 2)
    fire("a", "b")  # the rate limit (2 per hour) is used up
    at.scan()
    await asyncio.sleep(0.01)
    await stop(task)
    assert [r.alert.labels["instance"] for r in launcher.requests] == ["a", "a"]  # type: ignore[union-attr]
    (ev,) = world.eventlog.list(kind="trigger.rate_limited")
    assert ev.data["alert"] == {"alertname": "Disk", "instance": "b"}
    assert ev.data["runs"] == 2


async def test_cooldown_survives_a_restart(world: World) -> None:
    world.store.sync_rule("g/Disk", [ActiveAlert({"alertname": "Disk"})], world.clock.time(), for_=0.0)
    launcher = Launcher()
    cfg = trigger(alert={"matchers": ['alertname="Disk"']}, verify={"escalate": False})
    at, task = await start(world, launcher, cfg, monitor=False)
    await settle(at, 1)
    await stop(task)
    world.clock.advance(60)
    at2, task2 = await start(world, launcher, cfg, monitor=False)  # "restarted"
    at2.scan()
    await asyncio.sleep(0.01)
    await stop(task2)
    assert len(launcher.requests) == 1


async def test_unknown_label_in_params_is_recorded_and_escalated(world: World) -> None:
    launcher = Launcher()
    world.store.sync_rule("g/Disk", [ActiveAlert({"alertname": "Disk"})], world.clock.time(), for_=0.0)
    at, task = await start(world, launcher, trigger(
        alert={"matchers": ['alertname="Disk"']}, params={"p": "{{ labels.nope }}"}),
        monitor=False)
    for _ in range(200):
        if world.store.find("RemediationFailed"):
            break
        await asyncio.sleep(0.005)
    await stop(task)
    assert launcher.requests == []
    (ev,) = world.eventlog.list(kind="trigger.failed")
    assert "params.p" in ev.data["error"] and "nope" in ev.data["error"]
    (esc,) = world.store.find("RemediationFailed")
    assert "could not start" in esc.annotations["description"]


async def test_verify_with_an_unknown_check_is_a_clear_error(world: World) -> None:
    verifier = Verifier(world.store, world.clock, monitor=world.monitor)
    from watchkeeper.alerting.model import Alert

    with pytest.raises(NotFoundError, match="no check named 'nope'"):
        await verifier.once(Alert(labels={"alertname": "X"}), "nope")


def test_config_checks_verify_check_names(tmp_path: Path) -> None:
    from watchkeeper.config import load_config
    from watchkeeper.errors import ConfigError

    p = tmp_path / "w.yaml"
    p.write_text("checks:\n  - {name: disk-root, type: file, path: /}\ntriggers:\n"
                 "  - name: t\n    runbook: r\n    alert: {matchers: ['a=\"b\"']}\n"
                 "    verify: {check: disk-rot}\n")
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value) == (f"{p}:7: triggers[0].verify.check: no check named 'disk-rot'; did you "
                              "mean 'disk-root'? (name one from checks:)")


def test_runbooks_in_the_guide_load(tmp_path: Path) -> None:
    import re

    from watchkeeper.automation.runbook import load_runbook

    doc = (Path(__file__).resolve().parents[2] / "docs" / "automation.md").read_text()
    blocks = re.findall(r"```yaml runbook\n(.*?)```", doc, re.DOTALL)
    assert blocks
    for i, text in enumerate(blocks):
        path = tmp_path / f"guide-{i}.yaml"
        path.write_text(text)
        assert load_runbook(path).name


# -- the automation service: the launcher over the real engine, a local runbook -------------------
async def test_service_runs_the_runbook_for_an_alert_and_records_it(world: World,
                                                                    tmp_path: Path) -> None:
    from watchkeeper.automation.service import AutomationService
    from watchkeeper.config.models import config_model

    target = tmp_path / "flag"
    rbdir = tmp_path / "runbooks"
    rbdir.mkdir()
    (rbdir / "restore.yaml").write_text(
        "name: restore\nparams:\n  path: {type: string, required: true}\ntargets: localhost\n"
        "steps:\n  - name: touch\n    run: touch {{ params.path }}\n")
    cfg = config_model().model_validate({
        "collectors": {"host": {"enabled": False}}, "runbooks": str(rbdir),
        "checks": [{"name": "flag", "type": "file", "path": str(target),
                    "labels": {"flag": str(target)}, "alert": {"alertname": "FlagMissing"}}],
        "triggers": [{"name": "restore", "runbook": "restore",
                      "alert": {"matchers": ['alertname="FlagMissing"']},
                      "params": {"path": "{{ labels.flag }}"}}]})
    world.monitor.apply(cfg)
    svc = AutomationService(world.engine, world.eventlog, world.clock, data_dir=tmp_path,
                            alert_store=world.store, monitor=world.monitor,
                            base_url="http://127.0.0.1:9")
    world.store.on_change = svc.alert_triggers.wake  # type: ignore[union-attr]
    assert svc.apply(cfg, tmp_path) == []
    task = asyncio.create_task(svc.run())
    await asyncio.sleep(0)
    await world.monitor.run_check("flag")
    await settle(svc.alert_triggers, 1)  # type: ignore[arg-type]
    await stop(task)
    assert target.exists()
    (run,) = svc.runs.list()
    assert (run.runbook, run.status, run.trigger, run.started_by) == ("restore", "ok", "alert",
                                                                      "alert:restore")
    assert run.params == {"path": str(target)}
    assert run.alert is not None and run.alert["labels"]["alertname"] == "FlagMissing"
    assert run.summary.startswith(f"1 host: 1 ok; remediated: check flag is OK: {target}: ")
    assert run.summary.endswith("; alert resolved")
    assert world.store.find("FlagMissing") == []


async def test_service_start_rejects_bad_params_before_recording(world: World,
                                                                 tmp_path: Path) -> None:
    from watchkeeper.automation.service import AutomationService
    from watchkeeper.config.models import config_model

    rbdir = tmp_path / "runbooks"
    rbdir.mkdir()
    (rbdir / "n.yaml").write_text("name: n\nparams:\n  count: {type: int, required: true}\n"
                                  "targets: localhost\nsteps:\n  - name: s\n    run: 'true'\n")
    cfg = config_model().model_validate({"runbooks": str(rbdir)})
    svc = AutomationService(world.engine, world.eventlog, world.clock, data_dir=tmp_path)
    svc.apply(cfg, tmp_path)
    with pytest.raises(InputError, match="count"):
        svc.prepare("n", {"count": "many"})
    with pytest.raises(NotFoundError, match="no runbook named 'm'"):
        svc.prepare("m", {})
    assert svc.runs.list() == []


async def test_rule_alert_is_verified_by_evaluating_its_expression(world: World,
                                                                   tmp_path: Path) -> None:
    from watchkeeper.alerting.model import Alert
    from watchkeeper.alerting.service import AlertingService
    from watchkeeper.config.models import config_model
    from watchkeeper.monitor.model import Sample

    (tmp_path / "rules.yaml").write_text(
        "groups:\n  - name: g\n    rules:\n      - alert: QueueLong\n        expr: queue_depth > 5\n")
    tsdb = TSDB(world.engine, clock=world.clock)
    alerting = AlertingService(world.engine, tsdb, world.eventlog, world.clock)
    assert alerting.apply(config_model().model_validate({"rules": ["rules.yaml"]}), tmp_path) == []
    now = world.clock.time()
    tsdb.append([Sample("queue_depth", {"queue": "mail"}, 9.0, now)], now)
    alerting.rules.evaluate_all(now)
    (alert,) = alerting.store.find("QueueLong")
    verifier = Verifier(alerting.store, world.clock, alerting=alerting)
    ok, detail = await verifier.once(alert, None)
    assert (ok, detail) == (False, "rule g/QueueLong: the expression still returns this alert")
    world.clock.advance(15)
    tsdb.append([Sample("queue_depth", {"queue": "mail"}, 1.0, world.clock.time())],
                world.clock.time())
    ok, detail = await verifier.once(alert, None)
    assert (ok, detail) == (True, "rule g/QueueLong: the expression no longer returns this alert")
    # an alert from the API cannot be evaluated here: its state in the store decides
    api = Alert(labels={"alertname": "Remote"}, source="api")
    assert await verifier.once(api, None) == (True, "alert Remote is resolved")


async def test_service_reload_swaps_schedules(world: World, tmp_path: Path) -> None:
    from watchkeeper.automation.service import AutomationService
    from watchkeeper.config.models import config_model

    def cfg(*names: str) -> Any:
        return config_model().model_validate({"triggers": [
            {"name": n, "runbook": "r", "schedule": "0 * * * *", "timezone": "Europe/Berlin"}
            for n in names]})

    svc = AutomationService(world.engine, world.eventlog, world.clock, data_dir=tmp_path)
    svc.apply(cfg("a", "b"), tmp_path)
    task = asyncio.create_task(svc.run())
    for _ in range(100):
        await asyncio.sleep(0)
    assert sorted(svc.schedules) == ["a", "b"]
    assert {t["name"]: t["next"] for t in svc.triggers_info()} == {
        "a": utc(2024, 3, 30, 13), "b": utc(2024, 3, 30, 13)}
    svc.apply(cfg("c"), tmp_path)
    for _ in range(100):
        await asyncio.sleep(0)
    assert sorted(svc.schedules) == ["c"]
    await stop(task)
    armed = [e.subject for e in world.eventlog.list(kind="trigger.armed")]
    assert armed == ["trigger/a", "trigger/b", "trigger/c"]


@pytest.mark.parametrize(("hosts", "line", "message"), [
    ("  web2:\n    address: 10.0.0.2\n    port: 99999\n", 5,
     "hosts.web2.port: must be a port number 1-65535, not 99999"),
    ("  hosts:\n    web2: {port: 0}\n", 4, "hosts.hosts.web2.port: must be a port number"),
])
def test_config_hosts_errors_have_file_and_line(tmp_path: Path, hosts: str, line: int,
                                                message: str) -> None:
    from watchkeeper.config import load_config
    from watchkeeper.errors import ConfigError

    p = tmp_path / "w.yaml"
    p.write_text("collectors: {host: {enabled: false}}\nhosts:\n" + hosts)
    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert str(exc.value).startswith(f"{p}:{line}: {message}")
