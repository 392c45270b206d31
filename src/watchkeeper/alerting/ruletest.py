"""Unit tests for rules in promtool's format: ``watchkeeper rules test FILE``.

A test file is the one ``promtool test rules`` reads::

    rule_files: [host.yaml]           # relative to the test file
    evaluation_interval: 1m           # default 1m
    group_eval_order: [host]          # optional
    tests:
      - interval: 1m                  # between input samples; default evaluation_interval
        name: memory
        external_labels: {site: a}
        input_series:
          - series: 'node_memory_MemAvailable_bytes{instance="h1"}'
            values: '100+0x10 5x20'   # expanding notation, ``_`` (missing), ``stale``
        alert_rule_test:
          - eval_time: 15m
            alertname: HostOutOfMemory
            exp_alerts:
              - exp_labels: {severity: warning, instance: h1}
                exp_annotations: {summary: "..."}
        promql_expr_test:
          - expr: node_memory_MemAvailable_bytes
            eval_time: 1m
            exp_samples:
              - labels: 'node_memory_MemAvailable_bytes{instance="h1"}'
                value: 100

It runs as promtool does: input samples at ``i * interval`` from time 0;
every group evaluated at 0, ``evaluation_interval``, ... up to the latest
``eval_time``; an alert test at ``eval_time`` compares the *firing* alerts
(labels incl. ``alertname``, and annotations) after the evaluation at or
just before it; expression tests query the final data. The report and the
exit code (0 all passed, 1 a test failed) follow promtool's.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchkeeper.alerting.rulefiles import (
    AlertingRule,
    RuleGroup,
    format_prom_duration,
    load_rule_files,
    parse_prom_duration,
)
from watchkeeper.alerting.rules import MemoryAlerts, Row, RuleRunner
from watchkeeper.errors import ConfigIssue, InputError, WatchkeeperError
from watchkeeper.staleness import STALE_NAN, is_stale

__all__ = [
    "STALE_NAN",
    "TestFileResult",
    "expand_series",
    "is_stale",
    "parse_series_labels",
    "run_test_file",
    "run_tests",
]



# -- the series notation ------------------------------------------------------------------------

# no hex here: in series notation ``0x20`` is 0 repeated, as promtool reads it
_NUMBER = r"[+-]?(?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[iI]nf|NaN|nan)"
_ITEM_RE = re.compile(
    rf"^(?:(?P<blank>_)(?:x(?P<bn>\d+))?"
    rf"|(?P<stale>stale)(?:x(?P<sn>\d+))?"
    rf"|(?P<a>{_NUMBER})(?:(?P<b>[+-](?:(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?|[iI]nf))?"
    rf"x(?P<n>\d+))?)$")


def _number(text: str) -> float:
    t = text.lower()
    sign = -1.0 if t.startswith("-") else 1.0
    body = t.lstrip("+-")
    if body == "inf":
        return sign * math.inf
    if body == "nan":
        return math.nan
    return float(t)


def expand_series(text: str) -> list[float | None]:
    """The values of promtool's series notation; None is a missing sample (``_``).

    ``1 2 3``; ``a+bxn`` is a, a+b, ..., a+n*b (n+1 values, added up one step
    at a time as Prometheus does); ``a-bxn`` counts down; ``axn`` is a n+1
    times; ``_`` is missing and ``_xn`` n missing; ``stale`` is a staleness
    marker. Raises InputError naming the item that is not understood.
    """
    out: list[float | None] = []
    for item in text.split():
        m = _ITEM_RE.match(item)
        if not m:
            raise InputError(f"invalid series value {item!r} in {text!r}; use numbers, a+bxn, a-bxn, "
                             "axn, _, _xn or stale")
        if m.group("blank"):
            out.extend([None] * (int(m.group("bn")) if m.group("bn") else 1))
        elif m.group("stale"):
            out.extend([STALE_NAN] * (int(m.group("sn")) + 1 if m.group("sn") else 1))
        else:
            a = _number(m.group("a"))
            n = m.group("n")
            if n is None:
                out.append(a)
                continue
            b = _number(m.group("b")) if m.group("b") else 0.0
            out.append(a)
            for _ in range(int(n)):
                a += b
                out.append(a)
    return out


def parse_series_labels(text: str) -> dict[str, str]:
    """``name{a="b"}`` (or ``{__name__="x", a="b"}``) as a label set. Raises InputError."""
    from watchkeeper.query.selector import parse_selector

    if text.strip() in ("{}", ""):
        return {}
    matchers = parse_selector(text)
    labels: dict[str, str] = {}
    for m in matchers:
        if m.op != "=":
            raise InputError(f"series {text!r}: only = may be used in a series ({m} is not)")
        labels[m.name] = m.value
    return labels


# -- the test file ------------------------------------------------------------------------------

@dataclass
class _Series:
    labels: dict[str, str]
    values: list[float | None]


@dataclass
class _AlertTest:
    eval_time: float
    alertname: str
    exp: list[tuple[dict[str, str], dict[str, str]]]


@dataclass
class _ExprTest:
    expr: str
    eval_time: float
    exp: list[tuple[str, float]]


@dataclass
class _TestGroup:
    name: str
    interval: float
    series: list[_Series]
    alert_tests: list[_AlertTest]
    expr_tests: list[_ExprTest]
    external_labels: dict[str, str]
    external_url: str


@dataclass
class TestFileResult:
    """The outcome of one test file: ``errors`` (promtool's wording) empty when it passed."""

    file: str
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    def report(self) -> str:
        """promtool's report for this file."""
        head = f"Unit Testing:  {self.file}\n"
        if self.ok:
            return head + "  SUCCESS\n"
        return head + "  FAILED:\n" + "\n".join(self.errors) + "\n"


class _Reader:
    """Reads the test file's mapping with strict keys; problems become messages with a key path."""

    def __init__(self, file: str) -> None:
        self.file = file

    def fail(self, path: str, message: str) -> InputError:
        return InputError(str(ConfigIssue(self.file, None, path, message)))

    def mapping(self, value: Any, path: str, allowed: tuple[str, ...]) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping")
        for k in value:
            if k not in allowed:
                raise self.fail(f"{path}.{k}" if path else str(k),
                                f"unknown key {k!r} (allowed: {', '.join(allowed)})")
        return value

    def duration(self, value: Any, path: str, default: float | None = None) -> float:
        if value is None:
            if default is None:
                raise self.fail(path, "required key is missing")
            return default
        try:
            return parse_prom_duration(str(value))
        except ValueError as exc:
            raise self.fail(path, str(exc)) from None

    def strmap(self, value: Any, path: str) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, "must be a mapping of names to strings")
        return {str(k): "" if v is None else (str(v).lower() if isinstance(v, bool) else str(v))
                for k, v in value.items()}

    def float_value(self, value: Any, path: str) -> float:
        if isinstance(value, bool):
            raise self.fail(path, "must be a number")
        if isinstance(value, (int, float)):
            return float(value)
        try:
            return _number(str(value).strip())
        except ValueError:
            raise self.fail(path, f"{value!r} is not a number") from None


def _read_groups(r: _Reader, tests: Any, eval_interval: float) -> list[_TestGroup]:
    if not isinstance(tests, list):
        raise r.fail("tests", "must be a list")
    out = []
    for i, raw in enumerate(tests):
        p = f"tests[{i}]"
        tg = r.mapping(raw, p, ("interval", "input_series", "alert_rule_test", "promql_expr_test",
                                "external_labels", "external_url", "name"))
        series = []
        for j, s in enumerate(tg.get("input_series") or []):
            sp = f"{p}.input_series[{j}]"
            s = r.mapping(s, sp, ("series", "values"))
            try:
                labels = parse_series_labels(str(s.get("series", "")))
                values = expand_series(str(s.get("values") or ""))
            except InputError as exc:
                raise r.fail(sp, exc.message) from None
            series.append(_Series(labels, values))
        alerts = []
        for j, a in enumerate(tg.get("alert_rule_test") or []):
            ap = f"{p}.alert_rule_test[{j}]"
            a = r.mapping(a, ap, ("eval_time", "alertname", "exp_alerts"))
            exp = []
            for k, e in enumerate(a.get("exp_alerts") or []):
                e = r.mapping(e, f"{ap}.exp_alerts[{k}]", ("exp_labels", "exp_annotations"))
                exp.append((r.strmap(e.get("exp_labels"), f"{ap}.exp_alerts[{k}].exp_labels"),
                            r.strmap(e.get("exp_annotations"), f"{ap}.exp_alerts[{k}].exp_annotations")))
            alerts.append(_AlertTest(r.duration(a.get("eval_time"), f"{ap}.eval_time", 0.0),
                                     str(a.get("alertname", "")), exp))
        exprs = []
        for j, e in enumerate(tg.get("promql_expr_test") or []):
            ep = f"{p}.promql_expr_test[{j}]"
            e = r.mapping(e, ep, ("expr", "eval_time", "exp_samples"))
            samples = []
            for k, s in enumerate(e.get("exp_samples") or []):
                s = r.mapping(s, f"{ep}.exp_samples[{k}]", ("labels", "value"))
                samples.append((str(s.get("labels") or ""),
                                r.float_value(s.get("value", 0), f"{ep}.exp_samples[{k}].value")))
            exprs.append(_ExprTest(str(e.get("expr", "")),
                                   r.duration(e.get("eval_time"), f"{ep}.eval_time", 0.0), samples))
        out.append(_TestGroup(str(tg.get("name") or ""),
                              r.duration(tg.get("interval"), f"{p}.interval", eval_interval),
                              series, alerts, exprs, r.strmap(tg.get("external_labels"), f"{p}.external_labels"),
                              str(tg.get("external_url") or "")))
    return out


# -- formatting as promtool does -----------------------------------------------------------------

def _go_quote(s: str) -> str:
    out = []
    for ch in s:
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ord(ch) < 0x20:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _labels_str(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={_go_quote(labels[k])}" for k in sorted(labels)) + "}"


def _indent(text: str, prefix: str) -> str:
    lines = text.split("\n")
    return "\n".join([lines[0]] + [prefix + ln for ln in lines[1:]])


def _alerts_str(alerts: list[tuple[dict[str, str], dict[str, str]]]) -> str:
    if not alerts:
        return "[]"
    parts = []
    for i, (lab, ann) in enumerate(alerts):
        body = "\nLabels:" + _labels_str(lab) + "\nAnnotations:" + _labels_str(ann)
        parts.append(f"{i}:" + _indent(body, "  "))
    return "[\n" + ",\n".join(parts) + "\n]"


def _float_E(v: float) -> str:
    from watchkeeper.alerting.rules import go_format_float_e

    return go_format_float_e(v).upper().replace("INF", "Inf").replace("NAN", "NaN")


def _samples_str(samples: list[tuple[dict[str, str], float]]) -> str:
    return ", ".join(f"{_labels_str(lab)} {_float_E(v)}" for lab, v in samples)


def _sort_key(labels: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(labels.items())


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


# -- running ------------------------------------------------------------------------------------

class _SourceWriter:
    def __init__(self, source: Any) -> None:
        self.source = source

    def __call__(self, rows: list[Row]) -> None:
        for name, labels, t, value in rows:
            self.source.append({**labels, "__name__": name}, t, value)


def _run_group(tg: _TestGroup, groups: list[RuleGroup], eval_interval: float) -> list[str]:
    from watchkeeper.query.promql.evaluator import Evaluator
    from watchkeeper.query.promql.source import MemorySource

    source = MemorySource()
    for s in tg.series:
        times = [i * tg.interval for i, v in enumerate(s.values) if v is not None]
        vs = [v for v in s.values if v is not None]
        if times:
            source.add(s.labels, times, vs)
    evaluator = Evaluator(source, default_subquery_step=eval_interval)
    alerts = MemoryAlerts()
    runner = RuleRunner(evaluator, _SourceWriter(source), alerts, external_labels=tg.external_labels,
                        external_url=tg.external_url)
    runner.set_groups(groups)
    errors: list[str] = []
    name_line = f"    name: {tg.name},\n" if tg.name else ""
    alert_times = sorted({a.eval_time for a in tg.alert_tests})
    max_t = max([a.eval_time for a in tg.alert_tests] + [e.eval_time for e in tg.expr_tests] + [0.0])
    alert_rules: dict[str, list[str]] = {}
    for g in groups:
        for r in g.rules:
            if isinstance(r, AlertingRule):
                alert_rules.setdefault(r.name, []).append(runner.rule_id(r))
    curr = 0
    n = 0
    while True:
        ts = n * eval_interval
        if ts > max_t + 1e-9:
            break
        n += 1
        eval_errors = []
        for g in groups:
            runner.evaluate_group(g, ts)
            for r in g.rules:
                st = runner.status.get(runner.rule_id(r))
                if st is not None and st.health == "err":
                    eval_errors.append(f"    rule: {r.name}, time: {format_prom_duration(ts)}, "
                                       f"err: {st.last_error}")
        if eval_errors:
            return errors + eval_errors
        while curr < len(alert_times) and ts <= alert_times[curr] < ts + eval_interval:
            t = alert_times[curr]
            for test in (a for a in tg.alert_tests if a.eval_time == t):
                got = []
                for rid in alert_rules.get(test.alertname, []):
                    for a in alerts.current(rid):
                        if a.state.value == "firing":
                            got.append((dict(a.labels), dict(a.annotations)))
                exp = [({**lab, "alertname": test.alertname}, ann) for lab, ann in test.exp]
                got.sort(key=lambda la: (_sort_key(la[0]), _sort_key(la[1])))
                exp.sort(key=lambda la: (_sort_key(la[0]), _sort_key(la[1])))
                if got != exp:
                    errors.append(
                        f"{name_line}    alertname: {test.alertname}, time: {format_prom_duration(t)}, \n"
                        f"        exp:{_indent(_alerts_str(exp), '            ')}, \n"
                        f"        got:{_indent(_alerts_str(got), '            ')}")
            curr += 1
    for et in tg.expr_tests:
        where = f"    expr: {_go_quote(et.expr)}, time: {format_prom_duration(et.eval_time)}"
        try:
            got_s = _query(evaluator, et.expr, et.eval_time)
        except WatchkeeperError as exc:
            errors.append(f"{where}, err: {exc.message}")
            continue
        try:
            exp_s = [(parse_series_labels(lab), v) for lab, v in et.exp]
        except InputError as exc:
            errors.append(f"{where}, err: {exc.message}")
            continue
        got_s.sort(key=lambda s: _sort_key(s[0]))
        exp_s.sort(key=lambda s: _sort_key(s[0]))
        same = len(got_s) == len(exp_s) and all(
            g[0] == e[0] and _same(g[1], e[1]) for g, e in zip(got_s, exp_s, strict=True))
        if not same:
            errors.append(f"{where},\n        exp: {_samples_str(exp_s)}\n        got: {_samples_str(got_s)}")
    return errors


def _query(evaluator: Any, expr: str, t: float) -> list[tuple[dict[str, str], float]]:
    from watchkeeper.query.promql.values import Scalar, String

    result = evaluator.instant(expr, t)
    if isinstance(result, Scalar):
        return [({}, float(result.value))]
    if isinstance(result, String):
        raise InputError("string results are not supported in tests")
    return [(dict(s.labels), float(s.value)) for s in result]


def run_test_file(path: str | Path) -> TestFileResult:
    """Run every test group of one promtool-format test file."""
    p = Path(path)
    result = TestFileResult(str(path))
    r = _Reader(str(path))
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except OSError as exc:
        result.errors.append(f"  cannot read: {exc}")
        return result
    except yaml.YAMLError as exc:
        result.errors.append(f"  invalid YAML: {exc}")
        return result
    try:
        top = r.mapping(data, "", ("rule_files", "evaluation_interval", "group_eval_order", "tests"))
        eval_interval = r.duration(top.get("evaluation_interval"), "evaluation_interval", 60.0)
        if eval_interval <= 0:
            raise r.fail("evaluation_interval", "must be greater than 0")
        groups_cfg = _read_groups(r, top.get("tests") or [], eval_interval)
    except InputError as exc:
        result.errors.append(f"  {exc.message}")
        return result
    ruleset = load_rule_files([str(f) for f in top.get("rule_files") or []], base_dir=p.parent)
    if ruleset.issues:
        result.errors.extend(f"  {i}" for i in ruleset.issues)
        return result
    groups = list(ruleset.groups)
    order = [str(x) for x in top.get("group_eval_order") or []]
    if order:
        by_name = {g.name: g for g in groups}
        missing = [name for name in order if name not in by_name]
        if missing:
            result.errors.append(f"  group_eval_order: group {missing[0]!r} is not in the rule files")
            return result
        listed = [by_name[name] for name in order]
        groups = listed + [g for g in groups if g.name not in order]
    for tg in groups_cfg:
        try:
            result.errors.extend(_run_group(tg, groups, eval_interval))
        except WatchkeeperError as exc:
            result.errors.append(f"    {exc.message}")
    return result


def run_tests(paths: list[str | Path]) -> tuple[int, str]:
    """Run test files; returns (exit code as promtool's: 0 passed, 1 failed, report text)."""
    results = [run_test_file(p) for p in paths]
    text = "\n".join(r.report() for r in results)
    return (0 if all(r.ok for r in results) else 1), text
