"""Alerts from checks' ``alert:`` blocks, raised the moment a result comes in.

These alerts do not wait for a rule evaluation: the monitor calls
:meth:`CheckAlerter.on_result` with each folded-in result, so a failing check
reaches routing within milliseconds. An alert is active while the newest
``after`` results are all in a failing state (``on``).
"""

from __future__ import annotations

from typing import Any

from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckResult, State
from watchkeeper.monitor.statemachine import CheckStatus

__all__ = ["CheckAlerter", "check_rule_name"]


def check_rule_name(check: str) -> str:
    return f"check/{check}"


class CheckAlerter:
    """Turns check results into AlertStore updates for checks that have ``alert:``."""

    def __init__(self, store: Any, clock: Any) -> None:
        self.store = store
        self.clock = clock

    def on_result(self, cfg: CheckConfig, status: CheckStatus, result: CheckResult) -> None:
        from watchkeeper.alerting.store import ActiveAlert

        spec = cfg.alert
        if spec is None:
            return
        failing = {State[name] for name in spec.on}
        tail = status.recent[-spec.after:]
        active = len(tail) >= spec.after and all(State(s) in failing for s in tail)
        alerts = []
        if active:
            labels = {**cfg.labels, **spec.labels, "alertname": spec.alertname, "check": cfg.name,
                      "type": cfg.type, "severity": spec.severity}
            annotations = {
                "summary": f"check {cfg.name} is {result.state.name}",
                "description": result.summary,
                **spec.annotations,
            }
            alerts.append(ActiveAlert(labels=labels, annotations=annotations,
                                      value=float(int(result.state))))
        self.store.sync_rule(check_rule_name(cfg.name), alerts, self.clock.time(), for_=0.0)
