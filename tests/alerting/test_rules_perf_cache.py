"""Rule groups read through a per-evaluation cache: never stale across times or after writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from watchkeeper.alerting.rulefiles import load_rules_text
from watchkeeper.alerting.rules import MemoryAlerts, RuleEvaluator
from watchkeeper.query.promql.evaluator import Evaluator
from watchkeeper.query.promql.source import ReadCache
from watchkeeper.query.selector import parse_selector
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB
from watchkeeper.testing.clock import FakeClock

T0 = 1_700_000_000.0
RULES = """groups:
  - name: g
    interval: 15s
    rules:
      - record: load:sum
        expr: sum(load)
      - alert: LoadSumHigh
        expr: load:sum{scaled=""} > 5
      - alert: LoadHigh
        expr: load > 2
        annotations:
          summary: "{{ $value }} of {{ with query \\"load:sum\\" }}{{ . | first | value }}{{ end }}"
      - record: load:sum
        expr: sum(load) * 10
        labels:
          scaled: "yes"
      - alert: ScaledHigh
        expr: load:sum{scaled="yes"} > 50
"""


@pytest.fixture
def world(tmp_path: Path) -> Any:
    engine = open_engine(None, tmp_path)
    clock = FakeClock(T0)
    tsdb = TSDB(engine, clock=clock)
    rs = load_rules_text(RULES, "rules.yaml")
    assert rs.issues == []
    alerts = MemoryAlerts()
    ev = RuleEvaluator(Evaluator(tsdb), tsdb, alerts, clock, ruleset=rs, in_thread=False)
    yield tsdb, ev
    engine.dispose()


def firing(ev: RuleEvaluator) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for rid, st in ev.runner.status.items():
        assert st.health == "ok", (rid, st.last_error)
        out[rid.split("/")[1]] = sorted(a.value for a in st.alerts)
    return out


def test_recording_output_is_seen_by_later_rules_and_new_samples_by_later_cycles(world: Any) -> None:
    tsdb, ev = world
    tsdb.append_rows([("load", {"host": h}, T0 - 5, v) for h, v in (("a", 1.0), ("b", 3.0))])
    ev.evaluate_all(T0)
    got = firing(ev)
    # load:sum written by the first rule at T0 is read by the next rules in the same evaluation
    assert got["LoadSumHigh"] == []
    assert got["LoadHigh"] == [3.0]
    assert got["ScaledHigh"] == []
    summary = ev.runner.status["g/LoadHigh"].alerts[0].annotations["summary"]
    assert summary == "3 of 4"
    # new samples before the next time: the next evaluation must see them, not what was read
    tsdb.append_rows([("load", {"host": h}, T0 + 10, v) for h, v in (("a", 4.0), ("b", 3.0))])
    ev.evaluate_all(T0 + 15)
    got = firing(ev)
    assert got["LoadSumHigh"] == [7.0]
    assert got["LoadHigh"] == [3.0, 4.0]
    assert got["ScaledHigh"] == [70.0]
    assert ev.runner.status["g/LoadHigh"].alerts[0].annotations["summary"] in ("3 of 7", "4 of 7")
    sums = tsdb.select_columns(parse_selector('load:sum{scaled=""}'), T0, T0 + 15)
    assert sums[0].values.tolist() == [4.0, 7.0]


def test_group_evaluation_reads_each_name_once_and_drops_the_cache(world: Any, monkeypatch: Any) -> None:
    tsdb, ev = world
    tsdb.append_rows([("load", {"host": "a"}, T0 - 5, 1.0)])
    made: list[ReadCache] = []
    real = ev.runner._cached_evaluator

    def spy(group: Any) -> Any:
        out = real(group)
        made.append(out[1])
        return out

    monkeypatch.setattr(ev.runner, "_cached_evaluator", spy)
    ev.evaluate_all(T0)
    ev.evaluate_all(T0 + 15)
    assert len(made) == 2 and made[0] is not made[1]
    # load once; load:sum after each of the two writes of it; ALERTS never read
    assert made[0].reads == 3
    assert ev.runner._cache is None and ev.runner._ev is None
