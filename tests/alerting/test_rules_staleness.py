"""Staleness markers written by the rule evaluator, as Prometheus's rule groups write them:
for recording-rule series that went away and for ALERTS / ALERTS_FOR_STATE series of
alerts that stopped being pending or firing; and ``stale`` in ``rules test`` input,
checked against real promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.alerting.rulefiles import load_rules_text
from watchkeeper.alerting.rules import MemoryAlerts, RuleEvaluator, RuleRunner
from watchkeeper.alerting.ruletest import run_test_file
from watchkeeper.query.promql.evaluator import Evaluator
from watchkeeper.query.promql.source import MemorySource
from watchkeeper.query.selector import parse_selector
from watchkeeper.staleness import is_stale
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB
from watchkeeper.testing.clock import FakeClock

FIXTURES = Path(__file__).parent.parent / "fixtures" / "rules"
T0 = 1_700_000_040.0

RULES = """groups:
  - name: g
    interval: 1m
    rules:
      - record: job:x:sum
        expr: sum by (job) (x)
      - alert: XHigh
        expr: x > 5
        for: 2m
"""


def history(tsdb: TSDB, selector: str) -> dict[tuple[tuple[str, str], ...], list[tuple[float, Any]]]:
    """Every stored sample of the selected series: (seconds, value or "stale")."""
    out = {}
    for c in tsdb.select_columns(parse_selector(selector), 0, 2e9):
        out[tuple(sorted(c.labels.items()))] = [
            (m / 1000, "stale" if is_stale(v) else float(v)) for m, v in zip(c.ms.tolist(), c.values.tolist(),
                                                                              strict=True)]
    return out


@pytest.fixture
def world(tmp_path: Path) -> Any:
    engine = open_engine(None, tmp_path)
    clock = FakeClock(T0)
    tsdb = TSDB(engine, clock=clock)
    rs = load_rules_text(RULES, "rules.yaml")
    assert rs.issues == []
    ev = RuleEvaluator(Evaluator(tsdb), tsdb, MemoryAlerts(), clock, ruleset=rs, in_thread=False)
    yield tsdb, ev
    engine.dispose()


def test_markers_for_recording_and_alert_series(world: Any) -> None:
    tsdb, ev = world
    # x{job="a"} is 1, 2, then gone; x{job="b"} is 10 from 0 to 4m, then gone
    for i in range(7):
        t = T0 + 60 * i
        rows = []
        if i < 2:
            rows.append(("x", {"job": "a"}, t, float(i + 1)))
        if i < 5:
            rows.append(("x", {"job": "b"}, t, 10.0))
        if rows:
            tsdb.append_rows(rows)
        if i == 2:
            tsdb.append_rows([("x", {"job": "a"}, t, float("nan"))])  # an ordinary NaN: still a value
        ev.evaluate_all(t)
    rec = history(tsdb, "job:x:sum")
    # job="a": the NaN at 2m is a value, so the sum is still output (no marker)
    job_a = rec[(("__name__", "job:x:sum"), ("job", "a"))]
    assert job_a[:2] == [(T0, 1.0), (T0 + 60, 2.0)] and all(v != "stale" for _, v in job_a)
    assert rec[(("__name__", "job:x:sum"), ("job", "b"))][-3:] == [
        (T0 + 240, 10.0), (T0 + 300, 10.0), (T0 + 360, 10.0)]  # the lookback keeps x{job="b"} alive
    alerts = history(tsdb, "ALERTS")
    pending = (("__name__", "ALERTS"), ("alertname", "XHigh"), ("alertstate", "pending"), ("job", "b"))
    firing = (("__name__", "ALERTS"), ("alertname", "XHigh"), ("alertstate", "firing"), ("job", "b"))
    # pending at 0 and 1m, firing from 2m: the pending series gets its marker at 2m
    assert alerts[pending] == [(T0, 1.0), (T0 + 60, 1.0), (T0 + 120, "stale")]
    assert alerts[firing][:2] == [(T0 + 120, 1.0), (T0 + 180, 1.0)]


def test_alert_series_end_when_the_alert_resolves(world: Any) -> None:
    tsdb, ev = world
    from watchkeeper.staleness import STALE_NAN

    for i in range(5):
        t = T0 + 60 * i
        tsdb.append_rows([("x", {"job": "b"}, t, 10.0 if i < 4 else STALE_NAN)])
        ev.evaluate_all(t)
    firing = (("__name__", "ALERTS"), ("alertname", "XHigh"), ("alertstate", "firing"), ("job", "b"))
    for_state = (("__name__", "ALERTS_FOR_STATE"), ("alertname", "XHigh"), ("job", "b"))
    rec = (("__name__", "job:x:sum"), ("job", "b"))
    assert history(tsdb, "ALERTS")[firing] == [(T0 + 120, 1.0), (T0 + 180, 1.0), (T0 + 240, "stale")]
    assert history(tsdb, "ALERTS_FOR_STATE")[for_state][-2:] == [(T0 + 180, T0), (T0 + 240, "stale")]
    assert history(tsdb, "job:x:sum")[rec][-1] == (T0 + 240, "stale")
    # and queries see them end at once
    assert Evaluator(tsdb).instant("ALERTS or ALERTS_FOR_STATE or job:x:sum", T0 + 250) == []


def test_a_failing_rule_keeps_its_series_unmarked() -> None:
    source = MemorySource()
    rs = load_rules_text("""groups:
  - name: g
    limit: 1
    rules:
      - record: r
        expr: x
""", "rules.yaml")
    runner = RuleRunner(Evaluator(source), lambda rows: [source.append({**lb, "__name__": n}, t, v)
                                                         for n, lb, t, v in rows], MemoryAlerts())
    runner.set_groups(rs.groups)
    (group,) = rs.groups
    source.append({"__name__": "x", "k": "1"}, T0, 1.0)
    runner.evaluate_group(group, T0)
    source.append({"__name__": "x", "k": "2"}, T0 + 60, 2.0)  # two series: over the limit
    runner.evaluate_group(group, T0 + 60)
    assert runner.status["g/r"].health == "err"
    got = {tuple(sorted(c.labels.items())): c.values.tolist()
           for c in source.select_columns(parse_selector("r"), 0, 2e9)}
    assert list(got.values()) == [[1.0]]  # no marker after the failed evaluation


def test_a_removed_rule_gets_its_series_marked_at_the_next_evaluation() -> None:
    source = MemorySource()
    rows_written: list[Any] = []

    def write(rows: list[Any]) -> None:
        rows_written.extend(rows)
        for n, lb, t, v in rows:
            source.append({**lb, "__name__": n}, t, v)

    both = load_rules_text("""groups:
  - name: g
    rules:
      - record: one
        expr: vector(1)
      - record: two
        expr: vector(2)
""", "rules.yaml")
    runner = RuleRunner(Evaluator(source), write, MemoryAlerts())
    runner.set_groups(both.groups)
    runner.evaluate_group(both.groups[0], T0)
    only = load_rules_text("""groups:
  - name: g
    rules:
      - record: one
        expr: vector(1)
""", "rules.yaml")
    runner.set_groups(only.groups)
    runner.evaluate_group(only.groups[0], T0 + 60)
    later = [(n, t, "stale" if is_stale(v) else v) for n, _, t, v in rows_written[2:]]
    assert later == [("two", T0 + 60, "stale"), ("one", T0 + 60, 1.0)]
    assert Evaluator(source).instant("two", T0 + 61) == []


def test_rules_test_stale_input_and_markers_agree_with_promtool() -> None:
    path = FIXTURES / "staleness_test.yaml"
    promtool = shutil.which("promtool") or "/usr/bin/promtool"
    assert Path(promtool).exists(), "promtool is required (Debian package prometheus)"
    proc = subprocess.run([promtool, "test", "rules", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = run_test_file(path)
    assert result.ok, result.report()
