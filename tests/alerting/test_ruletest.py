"""promtool's unit-test format: the series notation, the runner, and agreement with real promtool."""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from watchkeeper.alerting.ruletest import (
    expand_series,
    is_stale,
    parse_series_labels,
    run_test_file,
    run_tests,
)
from watchkeeper.cli.rules_cmd import app
from watchkeeper.errors import InputError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "rules"
COMMUNITY_TESTS = [FIXTURES / "host_test.yaml", FIXTURES / "blackbox_test.yaml"]
PROMTOOL = "/usr/bin/promtool"


@pytest.mark.parametrize(("text", "want"), [
    ("1 2 3", [1, 2, 3]),
    ("0+10x3", [0, 10, 20, 30]),
    ("1-1x3", [1, 0, -1, -2]),
    ("-2+4x3", [-2, 2, 6, 10]),
    ("1-2x4", [1, -1, -3, -5, -7]),
    ("1x4", [1, 1, 1, 1, 1]),
    ("0x3", [0, 0, 0, 0]),  # not hex: zero, repeated
    ("1 _x3 4", [1, None, None, None, 4]),
    ("_ 1 _", [None, 1, None]),
    ("1.5e3 -Inf +Inf", [1500, -math.inf, math.inf]),
    ("0.1+0.1x2", [0.1, 0.2, 0.30000000000000004]),  # added step by step, as Prometheus does
    ("", []),
])
def test_series_notation(text: str, want: list[float | None]) -> None:
    assert expand_series(text) == want


def test_stale_and_nan() -> None:
    values = expand_series("1 stale NaN")
    assert values[0] == 1
    assert values[1] is not None and is_stale(values[1])
    assert values[2] is not None and math.isnan(values[2]) and not is_stale(values[2])


@pytest.mark.parametrize("text", ["1+x3", "abc", "1x", "1+1x-3", "stale+1x2"])
def test_bad_series_notation(text: str) -> None:
    with pytest.raises(InputError, match="invalid series value"):
        expand_series(text)


def test_series_labels() -> None:
    assert parse_series_labels('up{job="a", instance="b:1"}') == {"__name__": "up", "job": "a",
                                                                 "instance": "b:1"}
    assert parse_series_labels('{__name__="x", a="1"}') == {"__name__": "x", "a": "1"}
    assert parse_series_labels("{}") == {}
    with pytest.raises(InputError, match="only = may be used"):
        parse_series_labels('up{job=~"a.*"}')


def test_community_rule_tests_pass() -> None:
    code, text = run_tests(COMMUNITY_TESTS)
    assert text == "".join(f"Unit Testing:  {p}\n  SUCCESS\n" + ("\n" if p != COMMUNITY_TESTS[-1] else "")
                           for p in COMMUNITY_TESTS)
    assert code == 0


def test_cli_rules_test_and_check() -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["test", *map(str, COMMUNITY_TESTS)])
    assert res.exit_code == 0, res.output
    assert res.output.count("  SUCCESS") == 2
    res = runner.invoke(app, ["check", str(FIXTURES / "host.yaml"), str(FIXTURES / "blackbox.yaml")])
    assert res.exit_code == 0
    assert res.output == (f"Checking {FIXTURES / 'host.yaml'}\n  SUCCESS: 8 rules found\n\n"
                          f"Checking {FIXTURES / 'blackbox.yaml'}\n  SUCCESS: 6 rules found\n\n")
    res = runner.invoke(app, ["check", str(FIXTURES / "bad.yaml")])
    assert res.exit_code == 1
    assert f"{FIXTURES / 'bad.yaml'}:9: groups[0].rules[2].expr: unexpected end of input at column 14" \
        in res.output


FAILING = """rule_files: [{rules}]
tests:
  - name: wrong expectations
    interval: 1m
    input_series:
      - series: 'probe_success{{job="blackbox", instance="x"}}'
        values: '0x5'
    alert_rule_test:
      - eval_time: 3m
        alertname: BlackboxProbeFailed
        exp_alerts:
          - exp_labels: {{severity: warning, job: blackbox, instance: x}}
    promql_expr_test:
      - expr: probe_success
        eval_time: 1m
        exp_samples:
          - labels: 'probe_success{{job="blackbox", instance="x"}}'
            value: 1
"""


def test_failures_are_reported_like_promtool(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(FAILING.format(rules=FIXTURES / "blackbox.yaml"))
    result = run_test_file(path)
    assert not result.ok
    SP = " "  # promtool's lines end in a space here
    assert result.report() == f"""Unit Testing:  {path}
  FAILED:
    name: wrong expectations,
    alertname: BlackboxProbeFailed, time: 3m,{SP}
        exp:[
            0:
              Labels:{{alertname="BlackboxProbeFailed", instance="x", job="blackbox", severity="warning"}}
              Annotations:{{}}
            ],{SP}
        got:[
            0:
              Labels:{{alertname="BlackboxProbeFailed", instance="x", job="blackbox", severity="critical"}}
              Annotations:{{description="The blackbox probe of x keeps failing.", summary="Probe failed (x)"}}
            ]
    expr: "probe_success", time: 1m,
        exp: {{__name__="probe_success", instance="x", job="blackbox"}} 1E+00
        got: {{__name__="probe_success", instance="x", job="blackbox"}} 0E+00
"""
    res = CliRunner().invoke(app, ["test", str(path)])
    assert res.exit_code == 1


def test_bad_test_files(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("rule_files: [nope.yaml]\ntests: []\n")
    assert run_test_file(path).errors == [f"  {tmp_path / 'nope.yaml'}: file not found"]
    path.write_text("rule_file: [x]\n")
    assert run_test_file(path).errors == [
        "  t.yaml: rule_file: unknown key 'rule_file' (allowed: rule_files, evaluation_interval, "
        "group_eval_order, tests)".replace("t.yaml", str(path))]
    path.write_text(f"rule_files: [{FIXTURES / 'host.yaml'}]\ngroup_eval_order: [nope]\ntests: []\n")
    assert run_test_file(path).errors == ["  group_eval_order: group 'nope' is not in the rule files"]


def test_rule_errors_stop_the_test_group(tmp_path: Path) -> None:
    (tmp_path / "r.yaml").write_text("""groups:
  - name: g
    rules:
      - alert: Dup
        expr: x
        labels: {instance: same}
""")
    (tmp_path / "t.yaml").write_text("""rule_files: [r.yaml]
tests:
  - input_series:
      - series: 'x{instance="a"}'
        values: '1'
      - series: 'x{instance="b"}'
        values: '1'
    alert_rule_test:
      - eval_time: 0m
        alertname: Dup
""")
    assert run_test_file(tmp_path / "t.yaml").errors == [
        "    rule: Dup, time: 0s, err: vector contains metrics with the same labelset after applying "
        "alert labels"]


def _promtool() -> str:
    path = shutil.which("promtool") or PROMTOOL
    assert Path(path).exists(), "promtool is required (Debian package prometheus)"
    return path


@pytest.mark.parametrize("test_file", COMMUNITY_TESTS, ids=lambda p: p.name)
def test_promtool_agrees_on_the_community_tests(test_file: Path) -> None:
    """Real promtool (2.42) passes the same test files that watchkeeper passes."""
    proc = subprocess.run([_promtool(), "test", "rules", str(test_file)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
    assert run_test_file(test_file).ok


def test_promtool_agrees_on_failures(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text(FAILING.format(rules=FIXTURES / "blackbox.yaml"))
    proc = subprocess.run([_promtool(), "test", "rules", str(path)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 1
    ours = run_test_file(path)
    assert not ours.ok
    # the same failing cases, with the same expected/got text for the alert
    theirs = proc.stdout + proc.stderr
    for line in ours.report().splitlines()[2:]:
        if "Labels:" in line or "alertname:" in line:
            assert line.strip() in theirs, line


def test_promtool_and_watchkeeper_agree_on_rules_check() -> None:
    for name, code in (("host.yaml", 0), ("blackbox.yaml", 0), ("bad.yaml", 1)):
        proc = subprocess.run([_promtool(), "check", "rules", str(FIXTURES / name)], capture_output=True,
                              text=True, timeout=60, check=False)
        assert proc.returncode == code, proc.stdout + proc.stderr
        assert CliRunner().invoke(app, ["check", str(FIXTURES / name)]).exit_code == code
