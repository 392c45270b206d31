"""Evaluating again whether an alert's problem is gone (the check in the closed loop).

A check's alert (rule ``check/NAME``) runs that check now, which also updates the alert;
a rule's alert evaluates the rule's expression now; an alert from the API can only be
judged by its state in the store; ``verify: {check: NAME}`` runs that check instead.
"""

from __future__ import annotations

import asyncio
from typing import Any

from watchkeeper.alerting.model import Alert, AlertState
from watchkeeper.automation.config import VerifyConfig
from watchkeeper.clock import Clock
from watchkeeper.errors import NotFoundError

__all__ = ["Verifier"]


class Verifier:
    """Evaluates again whether an alert's problem is gone.

    ``monitor``: the MonitorService (``run_check(name)``); ``alerting``: the
    AlertingService (``rules`` and ``evaluator`` for rule alerts); ``alert_store``
    for the alert's current state.
    """

    def __init__(self, alert_store: Any, clock: Clock, *, monitor: Any = None,
                 alerting: Any = None) -> None:
        self.alert_store = alert_store
        self.clock = clock
        self.monitor = monitor
        self.alerting = alerting

    async def verify(self, alert: Alert, cfg: VerifyConfig) -> tuple[bool, str]:
        """(resolved, what was found): ``1 + retries`` attempts, each after ``delay``."""
        detail = ""
        for _attempt in range(cfg.retries + 1):
            if cfg.delay:
                await self.clock.sleep(cfg.delay)
            ok, detail = await self.once(alert, cfg.check)
            if ok:
                return True, detail
        return False, detail

    async def once(self, alert: Alert, check: str | None) -> tuple[bool, str]:
        if check is not None:
            result = await self._run_check(check)
            ok = int(result.state) == 0
            return ok, f"check {check} is {result.state.name}: {result.summary}"
        rule = alert.rule or ""
        if alert.source != "api" and rule.startswith("check/"):  # a check's alert: block
            name = rule[len("check/"):]
            result = await self._run_check(name)
            state = self._state(alert)
            return state == AlertState.RESOLVED, (
                f"check {name} is {result.state.name}: {result.summary}; alert {state.value}")
        if alert.source != "api" and self.alerting is not None:
            found = self._find_rule(rule)
            if found is not None:
                active = await asyncio.to_thread(self._rule_active, found, alert)
                return not active, (f"rule {rule}: the expression still returns this alert"
                                    if active else f"rule {rule}: the expression no longer "
                                    "returns this alert")
        state = self._state(alert)
        return state == AlertState.RESOLVED, f"alert {alert.name} is {state.value}"

    async def _run_check(self, name: str) -> Any:
        if self.monitor is None or name not in self.monitor.configs:
            raise NotFoundError(f"no check named {name!r} to verify with",
                                hint="name a check from the config's checks: in verify.check")
        return await self.monitor.run_check(name)

    def _state(self, alert: Alert) -> AlertState:
        try:
            state: AlertState = self.alert_store.get(alert.fingerprint).state
        except NotFoundError:
            return AlertState.RESOLVED
        return state

    def _find_rule(self, rule_id: str) -> Any:
        runner = self.alerting.rules.runner
        for g in self.alerting.rules.groups:
            for r in g.rules:
                if runner.rule_id(r) == rule_id:
                    return r
        return None

    def _rule_active(self, rule: Any, alert: Alert) -> bool:
        """True when the rule's expression, evaluated now, still returns the alert's series."""
        from watchkeeper.query.promql.values import Scalar

        result = self.alerting.evaluator.instant(rule.expr, self.clock.time())
        if isinstance(result, Scalar):
            return True
        for s in result:
            labels = {k: v for k, v in dict(s.labels).items() if k != "__name__"}
            if all(alert.labels.get(k) == v for k, v in labels.items()):
                return True
        return False
