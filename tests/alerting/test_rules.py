"""RuleEvaluator over a real SQLite store: recording rules, alert lifecycle, ALERTS, errors, the API shape."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.alerting.model import AlertState
from watchkeeper.alerting.rulefiles import load_rules_text
from watchkeeper.alerting.rules import MemoryAlerts, RuleEvaluator, go_format_float_e
from watchkeeper.alerting.store import ActiveAlert, AlertStore
from watchkeeper.query.promql.evaluator import Evaluator
from watchkeeper.query.selector import parse_selector
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB
from watchkeeper.testing.clock import FakeClock

T0 = 1_700_000_000.0

RULES = """groups:
  - name: g
    interval: 1m
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
      - alert: JobDown
        expr: job:up:sum == 0
        for: 2m
        labels:
          severity: page
          summary_label: "{{ $labels.job }} down"
        annotations:
          summary: "{{ $labels.job }} has {{ $value }} targets up"
      - alert: Broken
        expr: up + on (job) group_left up
"""


@pytest.fixture
def world(tmp_path: Path) -> Any:
    engine = open_engine(None, tmp_path)
    clock = FakeClock(T0)
    tsdb = TSDB(engine, clock=clock)
    store = AlertStore(engine, clock=clock)
    rs = load_rules_text(RULES, "rules.yaml")
    assert rs.issues == []
    ev = RuleEvaluator(Evaluator(tsdb), tsdb, store, clock, {"site": "fra"}, ruleset=rs, in_thread=False)
    yield tsdb, store, ev, clock, engine
    engine.dispose()


def write_up(tsdb: TSDB, t: float, values: dict[str, float]) -> None:
    tsdb.append_rows([("up", {"job": "api", "instance": inst}, t, v) for inst, v in values.items()])


def series(tsdb: TSDB, selector: str, t: float) -> list[tuple[dict[str, str], float]]:
    cols = tsdb.select_columns(parse_selector(selector), t - 1, t + 1)
    return sorted(((dict(c.labels), float(c.values[-1])) for c in cols), key=lambda x: sorted(x[0].items()))


def test_recording_alerting_and_alerts_series(world: Any) -> None:
    tsdb, store, ev, _, _ = world
    # t0: both targets up; t0+60: both down; for 2m -> firing at t0+180
    write_up(tsdb, T0, {"a": 1, "b": 1})
    ev.evaluate_all(T0)
    assert series(tsdb, "job:up:sum", T0) == [({"__name__": "job:up:sum", "job": "api"}, 2.0)]
    for i in range(1, 5):
        write_up(tsdb, T0 + 60 * i, {"a": 0, "b": 0})
        ev.evaluate_all(T0 + 60 * i)
        alerts = [a for a in store.current() if a.labels["alertname"] == "JobDown"]
        assert len(alerts) == 1
        want = AlertState.PENDING if i < 3 else AlertState.FIRING
        assert alerts[0].state == want, i
    a = alerts[0]
    assert a.labels == {"alertname": "JobDown", "job": "api", "severity": "page", "summary_label": "api down"}
    assert a.annotations == {"summary": "api has 0 targets up"}
    assert a.active_at == T0 + 60 and a.fired_at == T0 + 180
    t = T0 + 240
    assert series(tsdb, "ALERTS", t) == [({"__name__": "ALERTS", **a.labels, "alertstate": "firing"}, 1.0)]
    assert series(tsdb, "ALERTS_FOR_STATE", t) == [({"__name__": "ALERTS_FOR_STATE", **a.labels}, T0 + 60)]
    # recovery resolves
    write_up(tsdb, T0 + 300, {"a": 1, "b": 0})
    ev.evaluate_all(T0 + 300)
    assert [x for x in store.current() if x.labels["alertname"] == "JobDown"] == []


def test_one_broken_rule_does_not_stop_the_others_and_rules_api(world: Any) -> None:
    tsdb, _, ev, _, _ = world
    write_up(tsdb, T0, {"a": 1, "b": 1})
    ev.evaluate_all(T0)
    api = ev.rules_api()
    g = api["groups"][0]
    assert (g["name"], g["file"], g["interval"], g["limit"]) == ("g", "rules.yaml", 60.0, 0)
    rec, down, broken = g["rules"]
    assert rec["type"] == "recording" and rec["health"] == "ok" and rec["query"] == "sum by (job) (up)"
    assert "lastError" not in rec
    assert down["type"] == "alerting" and down["state"] == "inactive" and down["duration"] == 120.0
    assert down["health"] == "ok" and down["alerts"] == []
    assert broken["health"] == "err"
    assert "many" in broken["lastError"]  # many-to-many matching: both sides have two series per job
    assert series(tsdb, "job:up:sum", T0)  # the recording rule ran
    assert [x["name"] for x in ev.rules_api(type_="record")["groups"][0]["rules"]] == ["job:up:sum"]


def test_limit_and_duplicate_label_sets(tmp_path: Path) -> None:
    engine = open_engine(None, tmp_path)
    try:
        clock = FakeClock(T0)
        tsdb = TSDB(engine, clock=clock)
        store = AlertStore(engine, clock=clock)
        rs = load_rules_text("""groups:
  - name: limited
    limit: 1
    rules:
      - alert: Many
        expr: up
      - record: many
        expr: up
  - name: dup
    rules:
      - alert: Same
        expr: up
        labels: {instance: x}
""", "r.yaml")
        ev = RuleEvaluator(Evaluator(tsdb), tsdb, store, clock, ruleset=rs, in_thread=False)
        write_up(tsdb, T0, {"a": 1, "b": 1})
        ev.evaluate_all(T0)
        rules = [r for g in ev.rules_api()["groups"] for r in g["rules"]]
        assert [(r["name"], r["health"], r.get("lastError")) for r in rules] == [
            ("Many", "err", "exceeded limit of 1 with 2 alerts"),
            ("many", "err", "exceeded limit 1 with 2 series"),
            ("Same", "err", "vector contains metrics with the same labelset after applying alert labels"),
        ]
        assert store.current() == []
    finally:
        engine.dispose()


async def test_scheduled_evaluation_and_restart_keeps_state(tmp_path: Path) -> None:
    engine = open_engine(None, tmp_path)
    try:
        clock = FakeClock(T0, autojump=True)
        tsdb = TSDB(engine, clock=clock)
        rs = load_rules_text(RULES, "rules.yaml")
        write_up(tsdb, T0, {"a": 0, "b": 0})
        for i in range(1, 12):
            write_up(tsdb, T0 + 30 * i, {"a": 0, "b": 0})
        store = AlertStore(engine, clock=clock)
        ev = RuleEvaluator(Evaluator(tsdb), tsdb, store, clock, ruleset=rs, in_thread=False)
        task = asyncio.create_task(ev.run())
        await clock.sleep(100)  # one or two evaluations: pending
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        pending = [a for a in store.current() if a.labels["alertname"] == "JobDown"]
        assert [a.state for a in pending] == [AlertState.PENDING]
        # a new evaluator and store on the same database: the for timer continues
        store2 = AlertStore(engine, clock=clock)
        ev2 = RuleEvaluator(Evaluator(tsdb), tsdb, store2, clock, ruleset=rs, in_thread=False)
        task = asyncio.create_task(ev2.run())
        await clock.sleep(150)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        firing = [a for a in store2.current() if a.labels["alertname"] == "JobDown"]
        assert [a.state for a in firing] == [AlertState.FIRING]
        assert firing[0].active_at == pending[0].active_at
        assert firing[0].fired_at is not None and firing[0].fired_at - firing[0].active_at >= 120
    finally:
        engine.dispose()


async def test_reload_wakes_the_loop_and_drops_removed_groups(world: Any) -> None:
    tsdb, _, ev, clock, _ = world
    clock.autojump = True
    write_up(tsdb, T0, {"a": 1})
    task = asyncio.create_task(ev.run())
    await clock.sleep(61)
    ev.load(load_rules_text("groups:\n  - name: other\n    rules:\n      - record: x\n        expr: up\n",
                            "other.yaml"))
    await clock.sleep(120)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert [g["name"] for g in ev.rules_api()["groups"]] == ["other"]
    assert ev.rules_api()["groups"][0]["rules"][0]["health"] == "ok"


def test_memory_alerts_follow_prometheus_lifecycle() -> None:
    m = MemoryAlerts()
    a = ActiveAlert(labels={"alertname": "A"}, annotations={}, value=1.0)
    assert [x.state for x in m.sync_rule("r", [a], 0, for_=60)] == [AlertState.PENDING]
    assert [x.state for x in m.sync_rule("r", [a], 60, for_=60)] == [AlertState.FIRING]
    # keep_firing_for: stays firing for 2 more minutes after the condition clears
    assert [x.state for x in m.sync_rule("r", [], 120, for_=60, keep_firing_for=120)] == [AlertState.FIRING]
    assert [x.state for x in m.sync_rule("r", [], 180, for_=60, keep_firing_for=120)] == [AlertState.FIRING]
    assert m.sync_rule("r", [], 240, for_=60, keep_firing_for=120) == []
    assert m.resolved[0].resolved_at == 240
    # active again: a new pending alert
    again = m.sync_rule("r", [a], 300, for_=60)
    assert [(x.state, x.active_at) for x in again] == [(AlertState.PENDING, 300)]
    # for 0: firing at once
    assert [x.state for x in m.sync_rule("s", [a], 0, for_=0)] == [AlertState.FIRING]


@pytest.mark.parametrize(("value", "want"), [
    (1.0, "1e+00"), (0.0, "0e+00"), (15.0, "1.5e+01"), (0.001, "1e-03"), (123456789.0, "1.23456789e+08"),
    (-2.5, "-2.5e+00"), (math.inf, "+Inf"), (math.nan, "NaN")])
def test_alert_values_in_the_api_are_formatted_as_prometheus(value: float, want: str) -> None:
    assert go_format_float_e(value) == want
