"""Loading Prometheus rule files: every problem with file, line, key path and expression column."""

from __future__ import annotations

from pathlib import Path

import pytest

from watchkeeper.alerting.builtin import builtin_names, builtin_rules
from watchkeeper.alerting.rulefiles import (
    AlertingRule,
    RecordingRule,
    format_prom_duration,
    load_rule_files,
    load_rules_text,
    parse_prom_duration,
)
from watchkeeper.errors import ConfigError, InputError

FIXTURES = Path(__file__).parent.parent / "fixtures" / "rules"


def issues(text: str) -> list[str]:
    return [str(i) for i in load_rules_text(text, "r.yaml").issues]


def test_community_rule_files_load() -> None:
    rs = load_rule_files([FIXTURES / "host.yaml", FIXTURES / "blackbox.yaml"])
    assert rs.issues == []
    assert [g.name for g in rs.groups] == ["host-memory", "host-cpu", "host-disk", "host-systemd", "blackbox"]
    oom = rs.groups[0].rules[0]
    assert isinstance(oom, AlertingRule)
    assert (oom.name, oom.for_, oom.labels, oom.line) == ("HostOutOfMemory", 120.0, {"severity": "warning"}, 7)
    assert oom.annotations["summary"] == "Host out of memory ({{ $labels.instance }})"
    rec = rs.groups[1].rules[0]
    assert isinstance(rec, RecordingRule) and rec.record == "instance:node_cpu_utilisation:rate5m"
    assert str(rec.expr) == ' 1 - avg without (cpu, mode) (rate(node_cpu_seconds_total{mode="idle"}[5m]))'.strip()


def test_syntax_error_names_file_line_and_column_and_other_files_still_load() -> None:
    rs = load_rule_files([FIXTURES / "bad.yaml", FIXTURES / "host.yaml"])
    assert [str(i) for i in rs.issues] == [
        f"{FIXTURES / 'bad.yaml'}:9: groups[0].rules[2].expr: unexpected end of input at column 14"]
    assert rs.failed_files == [str(FIXTURES / "bad.yaml")]
    assert {g.file for g in rs.groups} == {str(FIXTURES / "host.yaml")}
    with pytest.raises(ConfigError, match="unexpected end of input at column 14"):
        rs.raise_for_issues()


def test_error_line_inside_a_literal_block_expression() -> None:
    text = """groups:
  - name: g
    rules:
      - alert: A
        expr: |
          sum(rate(x[5m]))
            / on (a) foo )
"""
    # the line of the file where the expression's second line is
    assert issues(text) == ["r.yaml:7: groups[0].rules[0].expr: unexpected right parenthesis ')' at line 2, "
                            "column 16"]


@pytest.mark.parametrize(("rule", "message"), [
    ("{alert: A}", "r.yaml:4: groups[0].rules[0].expr: field 'expr' must be set in rule"),
    ("{expr: up}", "r.yaml:4: groups[0].rules[0]: one of 'record' or 'alert' must be set"),
    ("{alert: A, record: b, expr: up}", "r.yaml:4: groups[0].rules[0]: only one of 'record' and 'alert' "
                                        "must be set"),
    ("{record: b, expr: up, for: 5m}", "r.yaml:4: groups[0].rules[0].for: invalid field 'for' in "
                                       "recording rule"),
    ("{record: b, expr: up, annotations: {a: b}}", "r.yaml:4: groups[0].rules[0].annotations: invalid "
                                                   "field 'annotations' in recording rule"),
    ("{record: 'bad name', expr: up}", "r.yaml:4: groups[0].rules[0].record: invalid recording rule "
                                       "name: bad name"),
    ("{alert: A, expr: up, for: 5 minutes}", 'r.yaml:4: groups[0].rules[0].for: not a valid duration '
                                             'string: "5 minutes"; use forms like 30s, 5m, 1h30m'),
    ("{alert: A, expr: up, labels: {1x: y}}", "r.yaml:4: groups[0].rules[0].labels: invalid label "
                                              "name: '1x'"),
    ("{alert: A, expr: up, fore: 5m}", "r.yaml:4: groups[0].rules[0].fore: unknown key 'fore'; did you "
                                       "mean 'for'? (allowed: record, alert, expr, for, keep_firing_for, "
                                       "labels, annotations)"),
    ("{alert: A, expr: 'rate(up)'}", 'r.yaml:4: groups[0].rules[0].expr: expected type range vector in '
                                     'call to function "rate", got instant vector'),
    ("{alert: A, expr: up, annotations: {s: '{{ $labels.x'}}",
     "r.yaml:4: groups[0].rules[0].annotations.s: template: line 1, column 1: unclosed action"),
    ("{alert: A, expr: up, annotations: {s: '{{ $lables.x }}'}}",
     "r.yaml:4: groups[0].rules[0].annotations.s: template: line 1, column 4: undefined variable: $lables"),
])
def test_rule_problems(rule: str, message: str) -> None:
    got = issues(f"groups:\n  - name: g\n    rules:\n      - {rule}\n")
    if "rate(up)" in rule:  # the parser's wording of type errors may carry the column
        assert got[0].startswith(message.split(" got ")[0]), got
        return
    assert got == [message]


def test_group_problems() -> None:
    text = """groups:
  - name: g
    rules: []
  - name: g
    interval: 1x
  - rules: []
  - name: h
    limit: -1
    extra: 1
"""
    assert issues(text) == [
        'r.yaml:4: groups[1].name: groupname: "g" is repeated in the same file (first on line 2)',
        'r.yaml:5: groups[1].interval: not a valid duration string: "1x"; use forms like 30s, 5m, 1h30m',
        "r.yaml:6: groups[2].name: Groupname must not be empty",
        "r.yaml:9: groups[3].extra: unknown key 'extra' (allowed: name, interval, limit, query_offset, "
        "labels, rules)",
        "r.yaml:8: groups[3].limit: '-1' is not a limit; use a whole number, 0 for none",
    ]


def test_yaml_errors_and_missing_files(tmp_path: Path) -> None:
    assert issues("groups: [")[0].startswith("r.yaml:1: invalid YAML: ")
    assert issues("groups: 5") == ["r.yaml:1: groups: must be a list of groups, not the value '5'"]
    assert issues("") == []
    rs = load_rule_files([tmp_path / "none.yaml", str(tmp_path / "*.rules")])
    assert [str(i) for i in rs.issues] == [f"{tmp_path / 'none.yaml'}: file not found"]  # a glob may match nothing


def test_globs_group_options_and_group_labels(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("""groups:
  - name: a
    interval: 30s
    limit: 10
    query_offset: 1m
    labels: {team: ops}
    rules:
      - record: job:up:sum
        expr: sum by (job) (up)
        labels: {team: db}
      - alert: Down
        expr: up == 0
        keep_firing_for: 10m
""")
    (tmp_path / "b.yaml").write_text("groups: []\n")
    rs = load_rule_files(["*.yaml"], base_dir=tmp_path)
    assert rs.issues == []
    assert rs.files == [str(tmp_path / "a.yaml"), str(tmp_path / "b.yaml")]
    g = rs.groups[0]
    assert (g.interval, g.limit, g.query_offset) == (30.0, 10, 60.0)
    assert [r.labels for r in g.rules] == [{"team": "db"}, {"team": "ops"}]
    assert g.rules[1].keep_firing_for == 600.0  # type: ignore[union-attr]


@pytest.mark.parametrize(("text", "seconds"), [
    ("0", 0.0), ("5m", 300.0), ("1h30m", 5400.0), ("500ms", 0.5), ("1d", 86400.0), ("2w", 1209600.0),
    ("1y", 31536000.0)])
def test_prometheus_durations(text: str, seconds: float) -> None:
    assert parse_prom_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5", "1.5m", "5m1h", "-5m", "5 m"])
def test_bad_prometheus_durations(text: str) -> None:
    with pytest.raises(ValueError):
        parse_prom_duration(text)


def test_format_prom_duration() -> None:
    assert [format_prom_duration(s) for s in (0, 300, 5400, 0.5, 86400 + 60)] == ["0s", "5m", "1h30m",
                                                                                   "500ms", "1d1m"]


def test_builtin_rules_load_by_name() -> None:
    rs = builtin_rules(["host", "checks", "certificates", "memory"])
    assert rs.issues == []
    assert [g.name for g in rs.groups] == ["builtin-filesystem", "builtin-memory", "builtin-load",
                                           "builtin-checks", "builtin-certificates"]
    assert "predict_linear" in rs.groups[0].rules[0].expr_text
    assert set(builtin_names()) >= {"host", "filesystem", "memory", "load", "checks", "certificates"}
    with pytest.raises(InputError, match="unknown built-in rule group 'cpu'; use one of "):
        builtin_rules(["cpu"])
