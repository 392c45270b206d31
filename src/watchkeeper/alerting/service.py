"""The alerting subsystem of a running server: rules, alert state, routing, delivery.

It owns four long-running tasks under one TaskGroup: the rule evaluator, the
dispatcher (routing and grouping), the delivery workers (the outbox) and a
housekeeping loop (expiring API alerts, purging old history). A reload
rebuilds the dispatcher and the receivers from the new ``alerting:`` section
and swaps the rule groups; a rule file that fails to load on reload keeps its
last good version running.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from watchkeeper.alerting.checkalerts import CheckAlerter, check_rule_name
from watchkeeper.alerting.config import AlertingConfig
from watchkeeper.alerting.rulefiles import AlertingRule, RuleGroup, RuleSet, load_rule_files
from watchkeeper.alerting.store import AlertStore
from watchkeeper.clock import Clock
from watchkeeper.errors import ConfigIssue, InputError
from watchkeeper.eventlog import EventLog

__all__ = ["AlertingService", "load_rules"]

log = logging.getLogger(__name__)

BUILTIN_PREFIX = "builtin:"
REMEDIATION_PREFIX = "remediation/"
HISTORY_KEEP = 90 * 86400.0
RESOLVED_KEEP = 7 * 86400.0


def load_rules(patterns: list[str], base_dir: Path | None) -> RuleSet:
    """Load rule files (globs relative to ``base_dir``) and ``builtin:NAME`` groups."""
    from watchkeeper.alerting.builtin import builtin_rules

    files = [p for p in patterns if not p.startswith(BUILTIN_PREFIX)]
    names = [p[len(BUILTIN_PREFIX):] for p in patterns if p.startswith(BUILTIN_PREFIX)]
    ruleset = load_rule_files(files, base_dir=base_dir) if files else RuleSet()
    if names:
        try:
            ruleset.extend(builtin_rules(names))
        except InputError as exc:
            ruleset.issues.append(ConfigIssue("<config>", None, "rules", exc.message))
    return ruleset


class AlertingService:
    """Everything alerting, wired together. ``run()`` is owned by the server's TaskGroup."""

    def __init__(self, engine: Engine, tsdb: Any, eventlog: EventLog, clock: Clock, *,
                 http_client: Any = None) -> None:
        from watchkeeper.alerting.outbox import Outbox
        from watchkeeper.alerting.rules import RuleEvaluator
        from watchkeeper.alerting.silences import Silences
        from watchkeeper.query.promql.evaluator import Evaluator

        self.engine = engine
        self.tsdb = tsdb
        self.eventlog = eventlog
        self.clock = clock
        self.http_client = http_client
        self.dispatcher: Any = None
        self.delivery: Any = None
        self.receivers: Any = None
        self.muter: Any = None
        self.config: AlertingConfig | None = None
        self.store = AlertStore(engine, eventlog=eventlog, clock=clock, on_change=self._changed)
        self.silences = Silences(engine, clock, eventlog=eventlog)
        self.outbox = Outbox(engine, clock)
        self.evaluator = Evaluator(tsdb)
        self.rules = RuleEvaluator(self.evaluator, tsdb, self.store, clock)
        self.check_alerter = CheckAlerter(self.store, clock)
        self._restart = asyncio.Event()
        # called (from any thread) whenever an alert starts firing or resolves:
        # automation's alert triggers subscribe here
        self.listeners: list[Callable[[], None]] = []

    def _changed(self) -> None:
        if self.dispatcher is not None:
            self.dispatcher.wake()
        for listener in list(self.listeners):
            try:
                listener()
            except Exception:  # a listener's trouble must not stop alerting
                log.exception("alert listener failed")

    # -- configuration ---------------------------------------------------------------------
    def apply(self, config: Any, base_dir: Path | None) -> list[ConfigIssue]:
        """Use ``config`` (first start and reloads). Returns rule-file problems, which are
        reported but do not stop the other files (or an earlier good version) from running."""
        from watchkeeper.alerting.inhibit import Inhibitor
        from watchkeeper.alerting.mute import AlertMuter

        srv = config.server
        self.rules.default_interval = srv.evaluation_interval
        self.rules.runner.external_labels = dict(srv.external_labels)
        self.rules.runner.external_url = srv.external_url or ""
        ruleset = load_rules(list(config.rules), base_dir)
        kept = [g for g in self.rules.groups if g.file in set(ruleset.failed_files)]
        groups: list[RuleGroup] = list(ruleset.groups) + kept
        self.rules.load(groups)
        self.store.retire_rules(
            {self.rules.runner.rule_id(r) for g in groups for r in g.rules
             if isinstance(r, AlertingRule)}
            | {check_rule_name(c.name) for c in config.checks if c.alert}
            # escalations of failed remediations (automation's alert triggers)
            | {f"{REMEDIATION_PREFIX}{t.name}" for t in getattr(config, "triggers", [])
               if t.alert is not None},
            self.clock.time())
        self.config = config.alerting
        inhibitor = Inhibitor(self.config.inhibit_rules if self.config else [])
        self.muter = AlertMuter(self.silences, inhibitor, self.store)
        self._restart.set()  # rebuild the dispatcher and receivers
        if ruleset.issues:
            for issue in ruleset.issues:
                log.error("rules: %s", issue)
        return list(ruleset.issues)

    def receivers_for(self, labels: dict[str, str]) -> list[str]:
        """The receiver names an alert with ``labels`` routes to (for the API)."""
        d = self.dispatcher
        if d is None or d.root is None:
            return []
        return sorted({r.receiver for r in d.root.match(labels)})

    # -- running ---------------------------------------------------------------------------
    async def run(self) -> None:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.rules.run(), name="rules")
            tg.create_task(self._housekeeping(), name="alerts:housekeeping")
            tg.create_task(self._notify_loop(), name="alerts:notify")

    async def _notify_loop(self) -> None:
        """Run dispatcher + delivery for the current config; rebuild them on each reload."""
        while True:
            self._restart.clear()
            cfg = self.config
            if cfg is None or cfg.route is None:
                self.dispatcher = None
                await self._restart.wait()
                continue
            await self._run_notifications(cfg)

    async def _run_notifications(self, cfg: AlertingConfig) -> None:
        from watchkeeper.alerting.dispatch import Dispatcher
        from watchkeeper.alerting.outbox import DeliveryService
        from watchkeeper.alerting.receivers import build_receivers
        from watchkeeper.alerting.timeintervals import TimeIntervals

        receivers = build_receivers(cfg, client=self.http_client, clock=self.clock)
        self.receivers = receivers
        self.dispatcher = Dispatcher(
            self.engine, config=cfg,
            alerts=lambda: self.store.current(resolved_since=self.clock.time() - 3600),
            muter=self.muter, time_intervals=TimeIntervals(cfg.all_time_intervals()),
            outbox=self.outbox, clock=self.clock)
        self.delivery = DeliveryService(self.outbox, receivers, self.clock)
        try:
            async with asyncio.TaskGroup() as tg:
                dispatch = tg.create_task(self.dispatcher.run(), name="alerts:dispatch")
                deliver = tg.create_task(self.delivery.run(), name="alerts:deliver")
                await self._restart.wait()
                dispatch.cancel()
                deliver.cancel()
        finally:
            await receivers.aclose()

    async def _housekeeping(self) -> None:
        while True:
            now = self.clock.time()
            try:
                await asyncio.to_thread(self._tidy, now)
            except Exception:  # housekeeping never takes alerting down
                log.exception("alert housekeeping failed")
            await self.clock.sleep(15.0)

    def _tidy(self, now: float) -> None:
        self.store.expire(now)
        self.store.purge_resolved(now - RESOLVED_KEEP)
        self.store.purge_history(now - HISTORY_KEEP)
        self.silences.gc(now)
