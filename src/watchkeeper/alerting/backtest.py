"""When would each alerting rule have fired? Replay rules over stored history.

:func:`backtest` evaluates every alerting rule's expression as a range query
over ``[start, end]`` at ``step`` (one query per rule, all steps at once),
then applies ``for`` and ``keep_firing_for`` per label set as the rule
evaluator would, and reports each firing interval. Recording rules are not
re-run: their stored output is what later rules read, as in production.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.alerting.rulefiles import AlertingRule, RuleSet
from watchkeeper.alerting.rules import rule_ids
from watchkeeper.errors import WatchkeeperError

__all__ = ["BacktestResult", "FiringInterval", "backtest"]


@dataclass(frozen=True)
class FiringInterval:
    """One alert (label set) firing from ``start`` until ``end`` (None: still firing at the end)."""

    labels: dict[str, str]
    start: float
    end: float | None


@dataclass
class BacktestResult:
    """One alerting rule's firing intervals (or the error that stopped its query)."""

    rule: str
    name: str
    file: str
    intervals: list[FiringInterval] = field(default_factory=list)
    error: str = ""

    @property
    def spans(self) -> list[tuple[float, float | None]]:
        return [(i.start, i.end) for i in self.intervals]


def _alert_labels(rule: AlertingRule, labels: dict[str, str]) -> dict[str, str]:
    out = {k: v for k, v in labels.items() if k != "__name__"}
    for k, v in rule.labels.items():
        if "{{" not in v:  # templated labels depend on values; they are left out here
            out[k] = v
    out["alertname"] = rule.name
    return {k: v for k, v in out.items() if v != ""}


def _intervals(rule: AlertingRule, times: list[float], active: list[bool], labels: dict[str, str],
               end: float) -> list[FiringInterval]:
    """Run Prometheus's pending -> firing -> resolved rules over one label set's active steps."""
    out: list[FiringInterval] = []
    active_at: float | None = None
    fired_at: float | None = None
    keep_since: float | None = None
    for t, on in zip(times, active, strict=True):
        if on:
            keep_since = None
            if active_at is None:
                active_at = t
            if fired_at is None and t - active_at >= rule.for_:
                fired_at = t
            continue
        if active_at is None:
            continue
        if fired_at is not None and rule.keep_firing_for > 0:
            if keep_since is None:
                keep_since = t
            if t - keep_since < rule.keep_firing_for:
                continue
        if fired_at is not None:
            out.append(FiringInterval(labels, fired_at, t))
        active_at = fired_at = keep_since = None
    if fired_at is not None:
        out.append(FiringInterval(labels, fired_at, None))
    return out


def backtest(ruleset: RuleSet, source: Any, start: float, end: float, step: float, *,
             lookback: float = 300.0) -> list[BacktestResult]:
    """Each alerting rule's firing intervals over ``[start, end]`` evaluated every ``step`` seconds.

    ``source`` is a PromQL source (the TSDB, a MemorySource). A rule whose
    query fails gets its ``error`` set; the others go on. Raises nothing for
    bad rules; InputError-style problems of the range itself come from the
    evaluator (a non-positive step).
    """
    from watchkeeper.query.promql.evaluator import Evaluator

    evaluator = Evaluator(source, lookback=lookback, default_subquery_step=step)
    ids = rule_ids(ruleset.groups)
    out: list[BacktestResult] = []
    for group in ruleset.groups:
        for rule in group.rules:
            if not isinstance(rule, AlertingRule):
                continue
            res = BacktestResult(ids[id(rule)], rule.name, rule.file)
            out.append(res)
            try:
                matrix = evaluator.range(rule.expr, start, end, step)
            except WatchkeeperError as exc:
                res.error = exc.message
                continue
            n = int(math.floor((end - start) / step + 1e-9)) + 1
            times = [start + i * step for i in range(n)]
            merged: dict[tuple[tuple[str, str], ...], tuple[dict[str, str], set[int]]] = {}
            for series in matrix:
                labels = _alert_labels(rule, dict(series.labels))
                key = tuple(sorted(labels.items()))
                entry = merged.setdefault(key, (labels, set()))
                for ts in series.timestamps:
                    entry[1].add(int(round((ts - start) / step)))
            for key in sorted(merged):
                labels, on_steps = merged[key]
                active = [i in on_steps for i in range(n)]
                res.intervals.extend(_intervals(rule, times, active, labels, end))
            res.intervals.sort(key=lambda i: (i.start, sorted(i.labels.items())))
    return out
