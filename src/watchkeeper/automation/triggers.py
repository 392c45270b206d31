"""Triggers: runbooks started by a schedule or by an alert, and the closed loop after an alert's run.

**Schedules** fire at the times of a cron expression in a time zone (croniter).
Times missed while the server was down (or asleep) are *reported*, never replayed:
on start each schedule finds its last recorded firing in the event log and, if fire
times passed since, appends one ``trigger.missed`` event (how many, first and last)
and logs a warning. A firing whose previous run is still going is skipped
(``trigger.skipped``), so a slow runbook never piles up.

**Alert triggers** watch the alert store (woken by the alerting service's listener
hook, and a poll as a safety net). A firing alert whose labels match a trigger's
matchers starts the trigger's runbook with params rendered from the alert
(``{{ labels.instance }}``), unless the same alert (by fingerprint) was handled
within ``cooldown`` or the trigger used up its ``rate_limit``. After the run the
problem is evaluated again (:class:`Verifier`):

* resolved -> ``automation.remediated`` event and a note on the run;
* still failing -> the runbook's ``on_failure`` steps run (when the run itself had
  not failed, which ran them already), ``automation.remediation_failed`` is recorded,
  and the alert is escalated through routing: an alert ``RemediationFailed`` with the
  original labels plus ``remediation="failed"``, ``remediated_alert`` and ``trigger``,
  and annotations naming the run (``run_id``, ``run_url``, ``run_status``), kept
  under the rule ``remediation/<trigger>`` until the original alert resolves.

The work itself (loading the runbook, choosing hosts, running the engine) is the
:class:`Launcher`'s: :class:`~watchkeeper.automation.service.AutomationService`
implements it over the runbook engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from watchkeeper.alerting.model import Alert, AlertState
from watchkeeper.automation.config import TriggerConfig
from watchkeeper.automation.verify import Verifier
from watchkeeper.clock import Clock, sleep_or_wake
from watchkeeper.errors import InputError, WatchkeeperError
from watchkeeper.eventlog import EventLog

__all__ = ["AlertTriggers", "Launcher", "RunOutcome", "RunRequest", "Schedule", "Verifier",
           "cron_times", "next_fire", "remediation_rule", "render_params", "trigger_summary"]

log = logging.getLogger(__name__)

REMEDIATION_ALERT = "RemediationFailed"
POLL_INTERVAL = 5.0
MISSED_SCAN_LIMIT = 100_000


def remediation_rule(trigger: str) -> str:
    """The alert-store rule id under which a trigger's escalations live."""
    return f"remediation/{trigger}"


@dataclass
class RunRequest:
    """What a trigger asks the launcher to run."""

    trigger: str  # "schedule" or "alert" (the runs table's ``trigger``)
    trigger_name: str
    runbook: str
    params: dict[str, Any]
    limit: str | None = None
    alert: Alert | None = None

    @property
    def started_by(self) -> str:
        return f"{self.trigger}:{self.trigger_name}"


@dataclass
class RunOutcome:
    """How a run ended: ``status`` as the runs table writes it (ok, failed, cancelled...)."""

    run_id: str
    status: str
    summary: str = ""
    on_failure_ran: bool = False


class Launcher(Protocol):
    """Starts runs for triggers; the automation service implements it over the engine."""

    async def launch(self, request: RunRequest) -> RunOutcome:
        """Run the request's runbook to the end. Raises WatchkeeperError when it cannot start
        (unknown runbook, bad params, no hosts)."""
        ...

    async def on_failure(self, run_id: str) -> None:
        """Run the ``on_failure`` steps of the run's runbook (verification failed after it)."""
        ...

    def note(self, run_id: str, text: str) -> None:
        """Attach a line of text to the run's record."""
        ...


# -- templating ----------------------------------------------------------------------------
def render_params(params: Mapping[str, Any], context: Mapping[str, Any]) -> dict[str, Any]:
    """Render each string param (and list/dict members) as a sandboxed Jinja2 template.

    Undefined names are errors, so ``{{ labels.instanse }}`` is reported instead of
    becoming an empty string. Raises InputError naming the param.
    """
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(undefined=StrictUndefined, autoescape=False)

    def one(value: Any, where: str) -> Any:
        if isinstance(value, str):
            if "{" not in value:
                return value
            try:
                return env.from_string(value).render(**context)
            except TemplateError as exc:
                raise InputError(f"{where}: {exc}") from None
        if isinstance(value, list):
            return [one(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: one(v, f"{where}.{k}") for k, v in value.items()}
        return value

    return {k: one(v, f"params.{k}") for k, v in params.items()}


def alert_context(alert: Alert) -> dict[str, Any]:
    """What an alert trigger's templates see."""
    data = {"labels": dict(alert.labels), "annotations": dict(alert.annotations),
            "fingerprint": alert.fingerprint, "name": alert.name, "value": alert.value,
            "source": alert.source, "rule": alert.rule, "state": alert.state.value}
    return {"alert": data, "labels": data["labels"], "annotations": data["annotations"]}


# -- schedules -----------------------------------------------------------------------------
def next_fire(expr: str, tz: str, after: float) -> float:
    """The first fire time of ``expr`` in time zone ``tz`` strictly after ``after`` (Unix seconds)."""
    from zoneinfo import ZoneInfo

    from croniter import croniter  # type: ignore[import-untyped]

    start = datetime.fromtimestamp(after, ZoneInfo(tz))
    return float(croniter(expr, start).get_next(float))


def cron_times(expr: str, tz: str, after: float, until: float, *,
               limit: int = MISSED_SCAN_LIMIT) -> list[float]:
    """Fire times in ``(after, until]``, at most ``limit`` of them."""
    from zoneinfo import ZoneInfo

    from croniter import croniter

    it = croniter(expr, datetime.fromtimestamp(after, ZoneInfo(tz)))
    out: list[float] = []
    while len(out) < limit:
        t = float(it.get_next(float))
        if t > until:
            break
        out.append(t)
    return out


def trigger_summary(t: TriggerConfig, *, now: float) -> dict[str, Any]:
    """What a config alone tells about a trigger (``watchkeeper triggers`` without a server;
    the server adds its state): name, kind, runbook, enabled, limit; a schedule's cron
    expression, time zone and ``next`` fire time after ``now`` (None when disabled); an
    alert trigger's matchers, cooldown and rate limit (seconds)."""
    item: dict[str, Any] = {"name": t.name, "kind": t.kind, "runbook": t.runbook,
                            "enabled": t.enabled, "limit": t.limit}
    if t.schedule is not None:
        item.update({"schedule": t.schedule, "timezone": t.timezone,
                     "next": next_fire(t.schedule, t.timezone, now) if t.enabled else None})
    else:
        assert t.alert is not None  # the config model requires exactly one of the two
        item.update({"matchers": list(t.alert.matchers), "cooldown": t.cooldown,
                     "rate_limit": t.rate_limit.model_dump() if t.rate_limit else None})
    return item


def _iso(ts: float) -> str:
    from watchkeeper.alerting.model import format_time

    return format_time(ts)


class Schedule:
    """One cron trigger: reports missed times on start, then fires at each time until cancelled."""

    def __init__(self, config: TriggerConfig, launcher: Launcher, eventlog: EventLog,
                 clock: Clock) -> None:
        if config.schedule is None:
            raise ValueError(f"trigger {config.name} has no schedule")
        self.config = config
        self.expr: str = config.schedule
        self.launcher = launcher
        self.eventlog = eventlog
        self.clock = clock
        self.subject = f"trigger/{config.name}"
        self.running: asyncio.Task[None] | None = None
        self.next_at: float | None = None
        self.fired = 0

    def last_seen(self) -> float | None:
        """When this schedule last fired, was armed or had misses reported (from the event log)."""
        found = [e.ts for kind in ("trigger.fired", "trigger.armed", "trigger.missed")
                 for e in self.eventlog.list(kind=kind, subject=self.subject, limit=1)
                 if e.kind == kind]
        return max(found) if found else None

    def report_missed(self, now: float) -> list[float]:
        """Report the fire times that passed while nothing ran them; returns them.

        A schedule seen for the first time is armed (recorded) instead, so that a
        later start can tell what it missed.
        """
        last = self.last_seen()
        if last is None:
            self.eventlog.append("trigger.armed", self.subject, {
                "schedule": self.expr, "timezone": self.config.timezone,
                "runbook": self.config.runbook})
            return []
        missed = cron_times(self.expr, self.config.timezone, last, now)
        if missed:
            log.warning("trigger %s: %d scheduled run(s) of %s missed while not running "
                        "(%s .. %s); they are not replayed", self.config.name, len(missed),
                        self.config.runbook, _iso(missed[0]), _iso(missed[-1]))
            self.eventlog.append("trigger.missed", self.subject, {
                "count": len(missed), "first": _iso(missed[0]), "last": _iso(missed[-1]),
                "runbook": self.config.runbook, "schedule": self.expr,
                "timezone": self.config.timezone, "replayed": False})
        return missed

    async def run(self) -> None:
        """Fire at each scheduled time until cancelled. Runs are owned by this task's group."""
        self.report_missed(self.clock.time())
        async with asyncio.TaskGroup() as tg:
            due = next_fire(self.expr, self.config.timezone, self.clock.time())
            while True:
                self.next_at = due
                now = self.clock.time()
                if now < due:
                    await self.clock.sleep(due - now)
                    continue
                # woken late (a suspended machine, a long stall): fire once, report the rest
                late = cron_times(self.expr, self.config.timezone, due, now)
                if late:
                    self.eventlog.append("trigger.missed", self.subject, {
                        "count": len(late), "first": _iso(late[0]), "last": _iso(late[-1]),
                        "runbook": self.config.runbook, "replayed": False})
                self._fire(tg, due)
                due = next_fire(self.expr, self.config.timezone, max(due, now))

    def _fire(self, tg: asyncio.TaskGroup, due: float) -> None:
        if self.running is not None and not self.running.done():
            self.eventlog.append("trigger.skipped", self.subject, {
                "scheduled": _iso(due), "reason": "the previous run is still going"})
            return
        self.fired += 1
        self.eventlog.append("trigger.fired", self.subject, {
            "scheduled": _iso(due), "runbook": self.config.runbook})
        self.running = tg.create_task(self._launch(due), name=f"trigger:{self.config.name}")

    async def _launch(self, due: float) -> None:
        cfg = self.config
        try:
            params = render_params(cfg.params, {"scheduled": _iso(due), "trigger": cfg.name})
            limit = render_params({"limit": cfg.limit}, {"trigger": cfg.name})["limit"] \
                if cfg.limit else None
            outcome = await self.launcher.launch(RunRequest("schedule", cfg.name, cfg.runbook,
                                                            params, limit))
        except WatchkeeperError as exc:
            log.error("trigger %s: %s", cfg.name, exc)
            self.eventlog.append("trigger.failed", self.subject, {"error": str(exc)})
            return
        except Exception as exc:  # a bug in one run must not stop the schedule
            log.exception("trigger %s failed", cfg.name)
            self.eventlog.append("trigger.failed", self.subject, {"error": repr(exc)})
            return
        log.info("trigger %s: run %s %s", cfg.name, outcome.run_id, outcome.status)


# -- alert triggers ------------------------------------------------------------------------
@dataclass
class _TriggerState:
    config: TriggerConfig
    matchers: list[Any]
    launches: deque[float] = field(default_factory=deque)
    last_by_alert: dict[str, float] = field(default_factory=dict)
    limited_reported: set[str] = field(default_factory=set)
    escalations: dict[str, Any] = field(default_factory=dict)  # original fp -> ActiveAlert


class AlertTriggers:
    """Starts runbooks for firing alerts and closes the loop (see the module docstring)."""

    def __init__(self, launcher: Launcher, alert_store: Any, verifier: Verifier,
                 eventlog: EventLog, clock: Clock, *,
                 run_url: Callable[[str], str] | None = None,
                 poll_interval: float = POLL_INTERVAL) -> None:
        self.launcher = launcher
        self.alert_store = alert_store
        self.verifier = verifier
        self.eventlog = eventlog
        self.clock = clock
        self.run_url = run_url or (lambda run_id: f"/api/v1/runs/{run_id}")
        self.poll_interval = poll_interval
        self.triggers: dict[str, _TriggerState] = {}
        self.in_flight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._tg: asyncio.TaskGroup | None = None
        #: every finished remediation: (trigger, fingerprint, run id, "remediated" | "failed")
        self.outcomes: list[tuple[str, str, str, str]] = []

    def apply(self, triggers: list[TriggerConfig]) -> None:
        """Use these alert triggers (first start and reloads); keeps cooldown state of kept ones."""
        from watchkeeper.alerting.matchers import parse_matchers

        new: dict[str, _TriggerState] = {}
        for t in triggers:
            if t.alert is None or not t.enabled:
                continue
            ms = [m for text in t.alert.matchers for m in parse_matchers(text)]
            old = self.triggers.get(t.name)
            st = _TriggerState(t, ms)
            if old is not None:
                st.launches, st.last_by_alert = old.launches, old.last_by_alert
                st.escalations = old.escalations
            else:
                self._seed(st)
            new[t.name] = st
        self.triggers = new
        self.wake()

    def _seed(self, st: _TriggerState) -> None:
        """Cooldowns and rate limits survive a restart: read recent firings from the event log."""
        now = self.clock.time()
        horizon = max(st.config.cooldown, st.config.rate_limit.per if st.config.rate_limit else 0)
        for ev in self.eventlog.list(kind="trigger.fired", subject=f"trigger/{st.config.name}",
                                     since=now - horizon, limit=10000):
            fp = ev.data.get("fingerprint")
            st.launches.append(ev.ts)
            if isinstance(fp, str):
                st.last_by_alert[fp] = ev.ts
        for a in self.alert_store.current():
            if a.rule == remediation_rule(st.config.name) and "remediated_fingerprint" in a.labels:
                from watchkeeper.alerting.store import ActiveAlert

                st.escalations[a.labels["remediated_fingerprint"]] = ActiveAlert(
                    labels=dict(a.labels), annotations=dict(a.annotations), value=a.value)

    def state(self, name: str, now: float) -> dict[str, Any] | None:
        """A trigger's cooldown and rate-limit state at ``now`` (None: no such alert trigger).

        ``cooling_down``: the alerts (by fingerprint) handled within ``cooldown``, each with
        ``until``; ``rate_limit_state`` (None without a rate limit): ``used`` of ``runs``
        in the last ``per`` seconds, ``remaining``, and ``resets_at`` when none remain;
        ``in_flight``: remediations going on now.
        """
        st = self.triggers.get(name)
        if st is None:
            return None
        cfg = st.config
        cooling = sorted(({"fingerprint": fp, "until": ts + cfg.cooldown}
                          for fp, ts in st.last_by_alert.items() if now - ts < cfg.cooldown),
                         key=lambda c: (c["until"], c["fingerprint"]))
        limit_state: dict[str, Any] | None = None
        if cfg.rate_limit is not None:
            rl = cfg.rate_limit
            recent = sorted(ts for ts in st.launches if now - ts < rl.per)
            limit_state = {"used": len(recent), "runs": rl.runs, "per": rl.per,
                           "remaining": max(0, rl.runs - len(recent)),
                           "resets_at": (recent[len(recent) - rl.runs] + rl.per
                                         if len(recent) >= rl.runs else None)}
        in_flight = sum(1 for (trigger, _fp), task in self.in_flight.items()
                        if trigger == name and not task.done())
        return {"cooling_down": cooling, "rate_limit_state": limit_state, "in_flight": in_flight}

    def wake(self) -> None:
        """Look at the alerts now. Safe to call from any thread (the alert store's hook)."""
        loop, ev = self._loop, self._wake
        if loop is None or ev is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            ev.set()
        else:
            loop.call_soon_threadsafe(ev.set)

    async def run(self) -> None:
        """Scan on every wake and every ``poll_interval`` until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        async with asyncio.TaskGroup() as tg:
            self._tg = tg
            try:
                while True:
                    self._wake.clear()
                    try:
                        self.scan()
                    except Exception:  # one bad scan must not end the triggers
                        log.exception("alert trigger scan failed")
                    await self._sleep(self.poll_interval)
            finally:
                self._tg = None

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        await sleep_or_wake(self.clock, seconds, self._wake)

    def scan(self) -> list[tuple[str, str]]:
        """Start remediations for firing alerts that match; returns (trigger, fingerprint) started."""
        from watchkeeper.alerting.matchers import matches

        alerts = [a for a in self.alert_store.current() if a.state == AlertState.FIRING
                  and not (a.rule or "").startswith("remediation/")]
        firing = {a.fingerprint for a in alerts}
        started: list[tuple[str, str]] = []
        now = self.clock.time()
        for st in self.triggers.values():
            self._tidy_escalations(st, firing, now)
            for a in alerts:
                if not matches(st.matchers, a.labels):
                    continue
                key = (st.config.name, a.fingerprint)
                task = self.in_flight.get(key)
                if task is not None and not task.done():
                    continue
                if not self._admit(st, a, now):
                    continue
                if self._tg is None:
                    continue
                st.launches.append(now)
                st.last_by_alert[a.fingerprint] = now
                self.eventlog.append("trigger.fired", f"trigger/{st.config.name}", {
                    "fingerprint": a.fingerprint, "alert": dict(a.labels),
                    "runbook": st.config.runbook})
                self.in_flight[key] = self._tg.create_task(
                    self.remediate(st.config, a), name=f"remediate:{st.config.name}")
                started.append(key)
        return started

    def _admit(self, st: _TriggerState, a: Alert, now: float) -> bool:
        cfg = st.config
        last = st.last_by_alert.get(a.fingerprint)
        if last is not None and now - last < cfg.cooldown:
            return False  # quietly: the cooldown is the expected case for a still-firing alert
        rl = cfg.rate_limit
        if rl is not None:
            while st.launches and now - st.launches[0] >= rl.per:
                st.launches.popleft()
                st.limited_reported.clear()
            if len(st.launches) >= rl.runs:
                if a.fingerprint not in st.limited_reported:
                    st.limited_reported.add(a.fingerprint)
                    log.warning("trigger %s: rate limit (%d runs per %gs) reached; alert %s "
                                "not remediated", cfg.name, rl.runs, rl.per, a.name)
                    self.eventlog.append("trigger.rate_limited", f"trigger/{cfg.name}", {
                        "fingerprint": a.fingerprint, "alert": dict(a.labels),
                        "runs": rl.runs, "per_seconds": rl.per})
                return False
        return True

    async def remediate(self, cfg: TriggerConfig, alert: Alert) -> None:
        """Run the runbook for ``alert``, verify, then record success or run on_failure and escalate."""
        subject = f"trigger/{cfg.name}"
        ctx = {**alert_context(alert), "trigger": cfg.name}
        try:
            params = render_params(cfg.params, ctx)
            limit = render_params({"limit": cfg.limit}, ctx)["limit"] if cfg.limit else None
            outcome = await self.launcher.launch(RunRequest("alert", cfg.name, cfg.runbook,
                                                            params, limit, alert))
        except WatchkeeperError as exc:
            log.error("trigger %s: cannot remediate %s: %s", cfg.name, alert.name, exc)
            self.eventlog.append("trigger.failed", subject, {
                "fingerprint": alert.fingerprint, "alert": dict(alert.labels), "error": str(exc)})
            if cfg.verify.escalate:
                self._escalate(cfg, alert, None, f"the runbook could not start: {exc.message}")
            return
        try:
            resolved, detail = await self.verifier.verify(alert, cfg.verify)
        except WatchkeeperError as exc:
            resolved, detail = False, f"verification failed: {exc.message}"
        data = {"run": outcome.run_id, "trigger": cfg.name, "runbook": cfg.runbook,
                "fingerprint": alert.fingerprint, "alert": dict(alert.labels),
                "run_status": outcome.status, "verification": detail}
        if resolved:
            self.eventlog.append("automation.remediated", f"run/{outcome.run_id}", data)
            self._note(outcome.run_id, f"remediated: {detail}")
            self.outcomes.append((cfg.name, alert.fingerprint, outcome.run_id, "remediated"))
            st = self.triggers.get(cfg.name)
            if st is not None and st.escalations.pop(alert.fingerprint, None) is not None:
                self._sync_escalations(st, self.clock.time())
            return
        self.eventlog.append("automation.remediation_failed", f"run/{outcome.run_id}", data)
        self._note(outcome.run_id, f"not remediated: {detail}")
        if outcome.status == "ok" and not outcome.on_failure_ran:
            try:
                await self.launcher.on_failure(outcome.run_id)
            except WatchkeeperError as exc:
                log.error("trigger %s: on_failure of run %s: %s", cfg.name, outcome.run_id, exc)
        self.outcomes.append((cfg.name, alert.fingerprint, outcome.run_id, "failed"))
        if cfg.verify.escalate:
            self._escalate(cfg, alert, outcome, detail)

    def _note(self, run_id: str, text: str) -> None:
        try:
            self.launcher.note(run_id, text)
        except WatchkeeperError as exc:
            log.error("cannot note on run %s: %s", run_id, exc)

    # -- escalation ------------------------------------------------------------------------
    def _escalate(self, cfg: TriggerConfig, alert: Alert, outcome: RunOutcome | None,
                  detail: str) -> None:
        from watchkeeper.alerting.store import ActiveAlert

        st = self.triggers.get(cfg.name)
        if st is None:
            return
        labels = {**alert.labels, "alertname": REMEDIATION_ALERT, "remediation": "failed",
                  "remediated_alert": alert.name, "remediated_fingerprint": alert.fingerprint,
                  "trigger": cfg.name}
        annotations = {
            "summary": f"automatic remediation of {alert.name} by runbook {cfg.runbook} failed",
            "description": detail,
            "runbook": cfg.runbook,
        }
        for k, v in alert.annotations.items():
            annotations.setdefault(f"alert_{k}", v)
        if outcome is not None:
            annotations.update({"run_id": outcome.run_id, "run_url": self.run_url(outcome.run_id),
                                "run_status": outcome.status, "run_summary": outcome.summary})
        st.escalations[alert.fingerprint] = ActiveAlert(labels=labels, annotations=annotations,
                                                        value=1.0)
        self.eventlog.append("automation.escalated", f"trigger/{cfg.name}", {
            "fingerprint": alert.fingerprint, "alert": dict(alert.labels),
            "run": outcome.run_id if outcome else None})
        self._sync_escalations(st, self.clock.time())

    def _tidy_escalations(self, st: _TriggerState, firing: set[str], now: float) -> None:
        """An escalation ends when the alert it is about stops firing."""
        gone = [fp for fp in st.escalations if fp not in firing]
        if gone:
            for fp in gone:
                st.escalations.pop(fp)
            self._sync_escalations(st, now)

    def _sync_escalations(self, st: _TriggerState, now: float) -> None:
        self.alert_store.sync_rule(remediation_rule(st.config.name),
                                   list(st.escalations.values()), now, for_=0.0,
                                   source="rule")
