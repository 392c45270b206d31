"""Backtesting rules over stored history: when would each alert have fired?"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchkeeper.alerting.backtest import FiringInterval, backtest
from watchkeeper.alerting.rulefiles import load_rules_text
from watchkeeper.cli.rules_cmd import app
from watchkeeper.query.promql.source import MemorySource
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB

RULES = """groups:
  - name: g
    rules:
      - alert: Down
        expr: up == 0
        for: 2m
        labels: {severity: page}
      - alert: DownNow
        expr: up == 0
      - alert: Sticky
        expr: up == 0
        keep_firing_for: 3m
      - alert: Bad
        expr: up + on (job) group_left up
      - record: ignored
        expr: up
"""


def source(values: dict[str, list[float]], step: float = 60.0) -> MemorySource:
    src = MemorySource()
    for inst, vals in values.items():
        src.add({"__name__": "up", "job": "api", "instance": inst}, [i * step for i in range(len(vals))], vals)
    return src


def test_firing_intervals_follow_for_and_keep_firing_for() -> None:
    # a: down from 3m to 7m (5 samples), then up; b: down from 10m to the end
    a = [1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1]
    b = [1] * 10 + [0] * 5
    rs = load_rules_text(RULES, "r.yaml")
    results = {r.rule: r for r in backtest(rs, source({"a": a, "b": b}), 0, 840, 60)}
    assert list(results) == ["g/Down", "g/DownNow", "g/Sticky", "g/Bad"]
    la = {"alertname": "Down", "job": "api", "instance": "a", "severity": "page"}
    lb = {**la, "instance": "b"}
    assert results["g/Down"].intervals == [FiringInterval(la, 300, 480), FiringInterval(lb, 720, None)]
    assert results["g/DownNow"].spans == [(180, 480), (600, None)]
    # keep_firing_for 3m: resolves 3 minutes after the condition cleared (at 8m -> 11m)
    assert results["g/Sticky"].spans == [(180, 660), (600, None)]
    assert results["g/Bad"].intervals == [] and "many" in results["g/Bad"].error


def test_flapping_shorter_than_for_never_fires() -> None:
    rs = load_rules_text(RULES, "r.yaml")
    results = {r.rule: r for r in backtest(rs, source({"a": [1, 0, 1, 0, 0, 1, 0, 1]}), 0, 420, 60)}
    assert results["g/Down"].intervals == []
    assert results["g/DownNow"].spans == [(60, 120), (180, 300), (360, 420)]


def test_cli_backtest_over_the_store(tmp_path: Path) -> None:
    import time

    now = time.time()
    start = now - 3600
    engine = open_engine(None, tmp_path)
    try:
        TSDB(engine).append_rows(
            [("up", {"job": "api", "instance": "a"}, start + 60 * i, 0.0 if 20 <= i < 30 else 1.0)
             for i in range(61)])
    finally:
        engine.dispose()
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("      - alert: Bad\n        expr: up + on (job) group_left up\n", ""))
    config = tmp_path / "watchkeeper.yaml"
    config.write_text("{}\n")
    res = CliRunner().invoke(app, ["backtest", str(rules), "--since", "1h", "--until", str(now),
                                   "--config", str(config), "--data-dir", str(tmp_path), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    by_rule = {r["rule"]: r for r in data["rules"]}
    spans = [(f["start"], f["end"]) for f in by_rule["g/DownNow"]["firing"]]
    assert len(spans) == 1
    fired, ended = spans[0]
    assert fired == pytest.approx(start + 20 * 60, abs=60)
    assert ended == pytest.approx(start + 30 * 60, abs=60)
    text = CliRunner().invoke(app, ["backtest", str(rules), "--since", "1h", "--until", str(now),
                                    "--config", str(config), "--data-dir", str(tmp_path)])
    assert text.exit_code == 0, text.output
    assert "g/DownNow: fired 1 time, 10 min in all" in text.output
    assert "g/Down: fired 1 time, 8 min in all" in text.output
    bad = CliRunner().invoke(app, ["backtest", str(tmp_path / "none.yaml"), "--config", str(config),
                                   "--data-dir", str(tmp_path)])
    assert bad.exit_code != 0
