"""The automation subsystem of a running server: inventory, executors, runbooks, runs, triggers.

:class:`AutomationService` composes the parts for ``watchkeeper up``:

* the inventory (``inventory:`` files and the config's ``hosts:``), the runbook
  library (``runbooks:``), the executors (local, and SSH with ``ssh:``), the
  :class:`~watchkeeper.automation.engine.RunEngine` and the
  :class:`~watchkeeper.automation.runs.RunStore`;
* schedules and alert triggers (:mod:`watchkeeper.automation.triggers`), for which it
  is the :class:`~watchkeeper.automation.triggers.Launcher`;
* runs started over the API (:meth:`AutomationService.start`), owned by the service's
  TaskGroup so a shutdown cancels them and records them ``cancelled``.

On start :meth:`startup` marks runs a previous process left running as
``interrupted`` -- only those whose owner process is gone (a ``watchkeeper run`` still
executing against the same data dir keeps its run; see ``automation/run_owner.py``). A reload (:meth:`apply`) swaps inventory, library and triggers; an
inventory that fails to load keeps the last good one and reports its problems.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from watchkeeper.automation.triggers import (
    AlertTriggers,
    RunOutcome,
    RunRequest,
    Schedule,
    Verifier,
)
from watchkeeper.clock import Clock
from watchkeeper.errors import ConfigError, ConfigIssue, EnvironmentError_, NotFoundError
from watchkeeper.eventlog import EventLog

__all__ = ["AutomationService"]

log = logging.getLogger(__name__)

KEEP_PREPARED = 256  # alert runs kept for a later on_failure (verification comes after the run)


class AutomationService:
    """Everything automation in one server process. ``run()`` is owned by the server's TaskGroup.

    ``alert_store``/``alerting``/``monitor`` are the alerting and monitoring services'
    parts (alert triggers watch the store, verification re-runs checks and rules, the
    engine's ``check`` steps run checks); each may be None when not running.
    """

    def __init__(self, engine: Engine, eventlog: EventLog, clock: Clock, *, data_dir: Path,
                 alert_store: Any = None, alerting: Any = None, monitor: Any = None,
                 base_url: str = "") -> None:
        from watchkeeper.automation.inventory import Inventory
        from watchkeeper.automation.runbook import RunbookLibrary
        from watchkeeper.automation.runs import RunStore

        self.engine = engine
        self.eventlog = eventlog
        self.clock = clock
        self.data_dir = Path(data_dir)
        self.monitor = monitor
        self.base_url = base_url.rstrip("/")
        self.runs = RunStore(engine, clock, eventlog=eventlog)
        self.inventory: Any = Inventory.from_config({})
        self.library: Any = RunbookLibrary(None)
        self.executors: Any = None
        self.run_engine: Any = None
        self._ssh_key: Any = None
        self._retired: list[Any] = []
        self.schedules: dict[str, Schedule] = {}
        self.trigger_configs: list[Any] = []
        self.alert_triggers: AlertTriggers | None = None
        if alert_store is not None:
            verifier = Verifier(alert_store, clock, monitor=monitor, alerting=alerting)
            self.alert_triggers = AlertTriggers(self, alert_store, verifier, eventlog, clock,
                                                run_url=self.run_url)
            if alerting is not None and hasattr(alerting, "listeners"):
                alerting.listeners.append(self.alert_triggers.wake)
        self._prepared: OrderedDict[str, Any] = OrderedDict()
        self._running: set[str] = set()  # runs executing in this process
        self._tg: asyncio.TaskGroup | None = None
        self._restart: asyncio.Event | None = None

    # -- configuration -------------------------------------------------------------------
    def startup(self) -> list[str]:
        """Mark runs a stopped process left unfinished ``interrupted`` (their owner is gone;
        runs of a live owner are left to it); returns their ids."""
        ids: list[str] = self.runs.mark_interrupted()
        if ids:
            log.warning("%d run(s) were interrupted by the last shutdown: %s", len(ids),
                        ", ".join(i[:8] for i in ids))
        return ids

    def apply(self, config: Any, base_dir: Path | None = None, *,
              config_file: str = "watchkeeper.yaml") -> list[ConfigIssue]:
        """Use ``config`` (first start and reloads). Returns inventory problems; the last
        good inventory stays in use when the new one does not load."""
        from watchkeeper.automation.engine import RunEngine
        from watchkeeper.automation.inventory import load_inventory
        from watchkeeper.automation.runbook import RunbookLibrary

        base = base_dir or Path.cwd()
        issues: list[ConfigIssue] = []
        sources = [p if os.path.isabs(os.path.expanduser(p)) or "," in p
                   else str(base / p) for p in config.inventory]
        try:
            self.inventory = load_inventory(sources, config=config.hosts or None,
                                            config_file=config_file)
        except ConfigError as exc:
            issues.extend(exc.issues)
            for issue in exc.issues:
                log.error("inventory: %s", issue)
        rb_dir = None
        if config.runbooks:
            rb_dir = Path(os.path.expanduser(config.runbooks))
            if not rb_dir.is_absolute():
                rb_dir = base / rb_dir
        self.library = RunbookLibrary(rb_dir)
        self._executors(config.ssh)
        check_runner = self.monitor.run_check if self.monitor is not None else None
        self.run_engine = RunEngine(self.executors, self.runs, self.clock,
                                    check_runner=check_runner, library=self.library)
        self.trigger_configs = [t for t in config.triggers if t.enabled]
        if self.alert_triggers is not None:
            self.alert_triggers.apply(self.trigger_configs)
        if self._restart is not None:
            self._restart.set()  # the schedules loop rebuilds its schedules
        return issues

    def _executors(self, ssh: Any) -> None:
        from watchkeeper.automation.executors.local import LocalExecutor
        from watchkeeper.automation.executors.router import Executors
        from watchkeeper.automation.secrets import SecretStore

        key = ssh.model_dump_json()
        if self.executors is not None and key == self._ssh_key:
            return
        if self.executors is not None:
            self._retired.append(self.executors)  # closed on shutdown: runs may still use it
        secrets = SecretStore(self.data_dir)

        def make_ssh() -> Any:
            from watchkeeper.automation.executors.ssh import SSHExecutor

            if ssh.insecure:
                log.warning("ssh.insecure is on: host keys are NOT checked")
            return SSHExecutor(known_hosts=ssh.known_hosts, insecure=ssh.insecure,
                               client_keys=list(ssh.client_keys) or None,
                               connect_timeout=ssh.connect_timeout, output_cap=ssh.output_cap,
                               forks=ssh.forks, secrets=secrets, clock=self.clock)

        self.executors = Executors(LocalExecutor(self.clock, ssh.output_cap, secrets=secrets),
                                   ssh_factory=make_ssh)
        self._ssh_key = key

    def run_url(self, run_id: str) -> str:
        return f"{self.base_url}/api/v1/runs/{run_id}"

    # -- running -------------------------------------------------------------------------
    async def run(self) -> None:
        """Own triggers and API-started runs until cancelled; close executors at the end."""
        self._restart = asyncio.Event()
        try:
            async with asyncio.TaskGroup() as tg:
                self._tg = tg
                if self.alert_triggers is not None:
                    tg.create_task(self.alert_triggers.run(), name="automation:alert-triggers")
                tg.create_task(self._schedules_loop(), name="automation:schedules")
        finally:
            self._tg = None
            await self.close()

    async def _schedules_loop(self) -> None:
        assert self._restart is not None
        while True:
            self._restart.clear()
            self.schedules = {t.name: Schedule(t, self, self.eventlog, self.clock)
                              for t in self.trigger_configs if t.schedule is not None}
            if not self.schedules:
                await self._restart.wait()
                continue
            async with asyncio.TaskGroup() as tg:
                tasks = [tg.create_task(s.run(), name=f"schedule:{n}")
                         for n, s in self.schedules.items()]
                await self._restart.wait()
                for task in tasks:
                    task.cancel()

    async def close(self) -> None:
        for ex in [self.executors, *self._retired]:
            if ex is not None:
                try:
                    await ex.close()
                except Exception:  # closing must not hide the reason we stop
                    log.exception("closing executors failed")
        self._retired.clear()
        self.runs.close()  # no more heartbeats: this process stops owning runs

    # -- starting runs ---------------------------------------------------------------------
    def prepare(self, runbook: str, params: Mapping[str, Any], *, limit: str | None = None,
                check_mode: bool = False, trigger: str = "api", started_by: str = "api",
                alert: Mapping[str, Any] | None = None) -> Any:
        """Resolve the runbook and hosts, check params and record the run (``pending``).

        Raises NotFoundError (runbook), ConfigError (runbook file), ParamError (params),
        InputError (pattern, no hosts) before anything is recorded.
        """
        from watchkeeper.automation.engine import target_pattern

        if self.run_engine is None:
            raise EnvironmentError_("automation is not configured yet")
        rb = self.library.get(runbook)
        hosts = self.inventory.select(target_pattern(rb, params))
        if limit:
            allowed = set(self.inventory.select_names(limit))
            hosts = [h for h in hosts if h.name in allowed]
        return self.run_engine.prepare(rb, params, hosts, trigger=trigger, started_by=started_by,
                                       check_mode=check_mode, alert=alert)

    def start(self, runbook: str, params: Mapping[str, Any], *, limit: str | None = None,
              check_mode: bool = False, trigger: str = "api", started_by: str = "api") -> str:
        """Record a run and execute it in the background (owned by :meth:`run`); its id."""
        if self._tg is None:
            raise EnvironmentError_("automation is not running in this server")
        prep = self.prepare(runbook, params, limit=limit, check_mode=check_mode, trigger=trigger,
                            started_by=started_by)
        self._tg.create_task(self._execute(prep), name=f"run:{prep.run_id[:8]}")
        return str(prep.run_id)

    async def _execute(self, prep: Any) -> None:
        self._running.add(prep.run_id)
        try:
            await self.run_engine.execute(prep)
        except Exception:  # recorded as failed by the engine; one run never stops the others
            log.exception("run %s failed", prep.run_id)
        finally:
            self._running.discard(prep.run_id)

    def interrupt_running(self) -> list[str]:
        """Record the runs executing here as ``interrupted`` (the server is stopping: nobody
        cancelled them). Call before cancelling :meth:`run`; returns their ids."""
        ids = sorted(self._running)
        for run_id in ids:
            try:
                if self.runs.status(run_id) in ("ok", "failed", "cancelled", "rejected",
                                                "interrupted"):
                    continue
                self.runs.set_status(run_id, "interrupted", summary="interrupted: watchkeeper "
                                     "stopped while the run was in progress")
                self.eventlog.append("run.interrupted", f"run:{run_id}", {"reason": "shutdown"})
            except Exception:  # stopping goes on; startup marks what is left
                log.exception("cannot mark run %s interrupted", run_id)
        return ids

    # -- Launcher (for triggers) -------------------------------------------------------------
    async def launch(self, request: RunRequest) -> RunOutcome:
        alert = request.alert.to_webhook() if request.alert is not None else None
        prep = self.prepare(request.runbook, request.params, limit=request.limit,
                            trigger=request.trigger, started_by=request.started_by, alert=alert)
        if request.alert is not None:
            self._prepared[prep.run_id] = prep
            while len(self._prepared) > KEEP_PREPARED:
                self._prepared.popitem(last=False)
        self._running.add(prep.run_id)
        try:
            rec = await self.run_engine.execute(prep)
        finally:
            self._running.discard(prep.run_id)
        on_failure_ran = rec.status != "ok" and bool(prep.runbook.on_failure)
        return RunOutcome(rec.id, rec.status, rec.summary, on_failure_ran)

    async def on_failure(self, run_id: str) -> None:
        """Run the runbook's ``on_failure`` steps on every host of the run (verification
        after a successful run found the problem still there); recorded on the same run."""
        prep = self._prepared.pop(run_id, None)
        if prep is None:
            raise NotFoundError(f"run {run_id} is not one this server can roll back")
        rb = prep.runbook
        if not rb.on_failure:
            return
        failure = {"phase": "remediation", "step": "verify", "status": "failed",
                   "detail": "the problem was still there after the run"}
        status = await self.run_engine.run_on_failure(prep, failure)
        self.eventlog.append("automation.on_failure", f"run/{run_id}",
                             {"runbook": rb.name, "status": status})

    def note(self, run_id: str, text: str) -> None:
        """Append ``text`` to the run's summary (the run is finished by now)."""
        if text.startswith("remediated"):
            self._prepared.pop(run_id, None)
        rec = self.runs.get(run_id)
        summary = f"{rec.summary}; {text}" if rec.summary else text
        self.runs.set_status(run_id, rec.status, summary=summary)

    # -- reading (API) -----------------------------------------------------------------------
    def triggers_info(self) -> list[dict[str, Any]]:
        """The configured (enabled) triggers with their state, for ``GET /api/v1/triggers``
        and ``watchkeeper triggers``: what the config says (``trigger_summary``), then
        ``last_fired`` (the newest ``trigger.fired`` event), ``last_run`` (the newest run
        the trigger started: id, status, times, summary); a schedule's ``next`` as its
        loop has it and ``running``; an alert trigger's cooldown and rate-limit state
        (:meth:`AlertTriggers.state`)."""
        from watchkeeper.automation.triggers import trigger_summary

        now = self.clock.time()
        out = []
        for t in self.trigger_configs:
            item = trigger_summary(t, now=now)
            if t.schedule is not None:
                s = self.schedules.get(t.name)
                if s is not None and s.next_at is not None:
                    item["next"] = s.next_at
                item["running"] = bool(s is not None and s.running is not None
                                       and not s.running.done())
            elif self.alert_triggers is not None:
                item.update(self.alert_triggers.state(t.name, now) or {})
            fired = self.eventlog.list(kind="trigger.fired", subject=f"trigger/{t.name}",
                                       limit=1)
            item["last_fired"] = fired[-1].ts if fired else None
            last = self.runs.list(limit=1, started_by=f"{t.kind}:{t.name}")
            item["last_run"] = None if not last else {
                "id": last[0].id, "status": last[0].status, "created_at": last[0].created_at,
                "finished_at": last[0].finished_at, "summary": last[0].summary}
            out.append(item)
        return out
