"""Prometheus rule files: load, validate, and report every problem with its place.

A rule file is Prometheus's format, unchanged::

    groups:
      - name: host
        interval: 30s          # optional; the global evaluation interval otherwise
        limit: 0               # optional; 0 = no limit on alerts/series per rule
        rules:
          - alert: HostOutOfMemory
            expr: node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.1
            for: 5m
            keep_firing_for: 1m
            labels: {severity: warning}
            annotations: {summary: "{{ $labels.instance }} is out of memory"}
          - record: instance:node_cpu:rate5m
            expr: sum by (instance) (rate(node_cpu_seconds_total{mode!="idle"}[5m]))

Problems are :class:`~watchkeeper.errors.ConfigIssue` s that name the file,
the line and the key path, and for expressions the column inside the
expression: ``rules.yaml:7: groups[0].rules[2].expr: unexpected end of input
at column 14``. A file with problems contributes no groups; the other files
still load (:class:`RuleSet` holds both the good groups and the issues), so a
reload can keep running the last good version of a broken file.
"""

from __future__ import annotations

import glob
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from watchkeeper.errors import ConfigError, ConfigIssue, QueryError

__all__ = [
    "AlertingRule",
    "RecordingRule",
    "Rule",
    "RuleGroup",
    "RuleSet",
    "format_prom_duration",
    "load_rule_files",
    "load_rules_text",
    "parse_prom_duration",
]

_METRIC_NAME_RE = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL_NAME_RE = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_PROM_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$")
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_prom_duration(text: str) -> float:
    """Seconds of a Prometheus duration (``5m``, ``1h30m``, ``500ms``, ``0``).

    Prometheus accepts integers with units from largest to smallest only;
    raises ValueError with its wording otherwise.
    """
    if text == "":
        raise ValueError("empty duration string")
    if text == "0":
        return 0.0
    m = _PROM_DURATION_RE.match(text)
    if not m or not any(m.groups()):
        raise ValueError(f'not a valid duration string: "{text}"')
    return float(sum(int(g) * u for g, u in zip(m.groups(), _DURATION_UNITS, strict=True) if g))


def format_prom_duration(seconds: float) -> str:
    """Render seconds as Prometheus prints a duration (``5m``, ``1h30m``, ``1d``, ``0s``)."""
    ms = int(round(seconds * 1000))
    if ms == 0:
        return "0s"
    out = ""
    for unit, size in (("y", 365 * 86400_000), ("w", 7 * 86400_000), ("d", 86400_000),
                       ("h", 3600_000), ("m", 60_000), ("s", 1000), ("ms", 1)):
        if ms >= size:
            out += f"{ms // size}{unit}"
            ms %= size
    return out


@dataclass(frozen=True, eq=False)
class AlertingRule:
    """``alert:`` rule. ``expr`` is the parsed expression, ``expr_text`` as written."""

    name: str
    expr: Any
    expr_text: str
    for_: float = 0.0
    keep_firing_for: float = 0.0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    file: str = ""
    line: int | None = None
    group: str = ""

    kind = "alerting"


@dataclass(frozen=True, eq=False)
class RecordingRule:
    """``record:`` rule: its result is stored as the series ``record`` with ``labels`` set."""

    record: str
    expr: Any
    expr_text: str
    labels: dict[str, str] = field(default_factory=dict)
    file: str = ""
    line: int | None = None
    group: str = ""

    kind = "recording"

    @property
    def name(self) -> str:
        return self.record


Rule = AlertingRule | RecordingRule


@dataclass(frozen=True, eq=False)
class RuleGroup:
    """A group: its rules run in order, every ``interval`` seconds (None: the global default)."""

    name: str
    file: str
    rules: tuple[Rule, ...]
    interval: float | None = None
    limit: int = 0
    query_offset: float | None = None
    labels: dict[str, str] = field(default_factory=dict)
    line: int | None = None

    @property
    def key(self) -> tuple[str, str]:
        """Prometheus identifies a group by its file and name."""
        return (self.file, self.name)


@dataclass
class RuleSet:
    """What loading found: the groups of every good file, and every problem."""

    groups: list[RuleGroup] = field(default_factory=list)
    issues: list[ConfigIssue] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    #: files with problems (their groups are left out)
    failed_files: list[str] = field(default_factory=list)

    @property
    def rules(self) -> list[Rule]:
        return [r for g in self.groups for r in g.rules]

    def raise_for_issues(self) -> None:
        """Raise ConfigError listing every issue, if there are any."""
        if self.issues:
            raise ConfigError(self.issues)

    def extend(self, other: RuleSet) -> None:
        self.groups.extend(other.groups)
        self.issues.extend(other.issues)
        self.files.extend(other.files)
        self.failed_files.extend(other.failed_files)


# -- YAML with positions -----------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def _fmt(path: Path_) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


class _Doc:
    """A YAML node tree walked with positions; values are read on demand."""

    def __init__(self, file: str, issues: list[ConfigIssue]) -> None:
        self.file = file
        self.issues = issues

    def issue(self, node: yaml.Node | None, path: Path_, message: str, *, line: int | None = None) -> None:
        if line is None and node is not None:
            line = node.start_mark.line + 1
        self.issues.append(ConfigIssue(self.file, line, _fmt(path), message))

    def mapping(self, node: yaml.Node, path: Path_, allowed: tuple[str, ...]
                ) -> dict[str, tuple[yaml.Node, yaml.Node]] | None:
        if not isinstance(node, yaml.MappingNode):
            self.issue(node, path, f"must be a mapping, not {_kind(node)}")
            return None
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            if key is None:
                self.issue(k, path, "keys must be plain strings")
                continue
            if key in out:
                self.issue(k, path + (key,), f"duplicate key {key!r} (first given on line "
                                              f"{out[key][0].start_mark.line + 1})")
                continue
            if key not in allowed:
                import difflib

                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else ""
                self.issue(k, path + (key,), f"unknown key {key!r}{hint} (allowed: {', '.join(allowed)})")
                continue
            out[key] = (k, v)
        return out

    def string(self, node: yaml.Node, path: Path_) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or node.tag == "tag:yaml.org,2002:null":
            self.issue(node, path, f"must be a string, not {_kind(node)}")
            return None
        return str(node.value)

    def string_map(self, node: yaml.Node, path: Path_, *, what: str) -> dict[str, str] | None:
        if isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return {}
        if not isinstance(node, yaml.MappingNode):
            self.issue(node, path, f"must be a mapping of {what} names to values, not {_kind(node)}")
            return None
        out: dict[str, str] = {}
        ok = True
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            if key is None or not _LABEL_NAME_RE.match(str(key)):
                self.issue(k, path, f"invalid {what} name: {key!r}")
                ok = False
                continue
            if key in out:
                self.issue(k, path + (key,), f"duplicate key {key!r}")
                ok = False
                continue
            if not isinstance(v, yaml.ScalarNode):
                self.issue(v, path + (key,), f"must be a string, not {_kind(v)}")
                ok = False
                continue
            out[key] = "" if v.tag == "tag:yaml.org,2002:null" else str(v.value)
        return out if ok else None

    def duration(self, node: yaml.Node, path: Path_) -> float | None:
        text = self.string(node, path)
        if text is None:
            return None
        try:
            return parse_prom_duration(text)
        except ValueError as exc:
            self.issue(node, path, f"{exc}; use forms like 30s, 5m, 1h30m")
            return None


def _kind(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == "tag:yaml.org,2002:null":
        return "empty"
    return f"the value {node.value!r}"


# -- loading -----------------------------------------------------------------------------------

_GROUP_KEYS = ("name", "interval", "limit", "query_offset", "labels", "rules")
_RULE_KEYS = ("record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations")


def _parse_expr(doc: _Doc, node: yaml.Node, path: Path_) -> tuple[Any, str] | None:
    from watchkeeper.query.promql.parser import parse

    text = doc.string(node, path)
    if text is None:
        return None
    if not text.strip():
        doc.issue(node, path, "field 'expr' must be set in rule")
        return None
    try:
        return parse(text), text
    except QueryError as exc:
        line = node.start_mark.line + 1
        pos = getattr(exc, "position", None)
        if isinstance(node, yaml.ScalarNode) and node.style == "|" and isinstance(pos, int):
            # a literal block: line i of the expression is line i after the ``|``
            line += 1 + text.count("\n", 0, pos)
        doc.issue(node, path, exc.message, line=line)
        return None


def _check_templates(doc: _Doc, values: dict[str, str], node: yaml.Node, path: Path_) -> bool:
    from watchkeeper.alerting.templating import TemplateError, parse_template

    ok = True
    for key, text in values.items():
        if "{{" not in text:
            continue
        try:
            parse_template(text)
        except TemplateError as exc:
            where = node
            if isinstance(node, yaml.MappingNode):
                where = next((v for k, v in node.value if getattr(k, "value", None) == key), node)
            doc.issue(where, path + (key,), f"template: {exc.message}")
            ok = False
    return ok


def _load_rule(doc: _Doc, node: yaml.Node, path: Path_, group: str) -> Rule | None:
    fields = doc.mapping(node, path, _RULE_KEYS)
    if fields is None:
        return None
    n_before = len(doc.issues)
    line = node.start_mark.line + 1
    record = alert = None
    if "record" in fields:
        record = doc.string(fields["record"][1], path + ("record",))
    if "alert" in fields:
        alert = doc.string(fields["alert"][1], path + ("alert",))
    if "record" in fields and "alert" in fields:
        doc.issue(node, path, "only one of 'record' and 'alert' must be set")
        return None
    if "record" not in fields and "alert" not in fields:
        doc.issue(node, path, "one of 'record' or 'alert' must be set")
        return None
    if "expr" not in fields:
        doc.issue(node, path + ("expr",), "field 'expr' must be set in rule")
        parsed = None
    else:
        parsed = _parse_expr(doc, fields["expr"][1], path + ("expr",))
    labels: dict[str, str] | None = {}
    if "labels" in fields:
        labels = doc.string_map(fields["labels"][1], path + ("labels",), what="label")
        if labels is not None and "__name__" in labels:
            doc.issue(fields["labels"][1], path + ("labels", "__name__"), "invalid label name: __name__")
    if "record" in fields:
        for bad in ("for", "keep_firing_for", "annotations"):
            if bad in fields:
                doc.issue(fields[bad][0], path + (bad,), f"invalid field '{bad}' in recording rule")
        if record is not None and not _METRIC_NAME_RE.match(record):
            doc.issue(fields["record"][1], path + ("record",), f"invalid recording rule name: {record}")
        if len(doc.issues) > n_before or parsed is None or labels is None or record is None:
            return None
        return RecordingRule(record, parsed[0], parsed[1], labels, doc.file, line, group)
    if alert is not None and not alert.strip():
        doc.issue(fields["alert"][1], path + ("alert",), "alert name must not be empty")
    for_ = keep = 0.0
    if "for" in fields:
        for_ = doc.duration(fields["for"][1], path + ("for",)) or 0.0
    if "keep_firing_for" in fields:
        keep = doc.duration(fields["keep_firing_for"][1], path + ("keep_firing_for",)) or 0.0
    annotations: dict[str, str] | None = {}
    if "annotations" in fields:
        annotations = doc.string_map(fields["annotations"][1], path + ("annotations",), what="annotation")
    if labels:
        _check_templates(doc, labels, fields["labels"][1], path + ("labels",))
    if annotations:
        _check_templates(doc, annotations, fields["annotations"][1], path + ("annotations",))
    if len(doc.issues) > n_before or parsed is None or labels is None or annotations is None \
            or alert is None:
        return None
    return AlertingRule(alert, parsed[0], parsed[1], for_, keep, labels, annotations, doc.file, line, group)


def _load_group(doc: _Doc, node: yaml.Node, path: Path_, names: dict[str, int]) -> RuleGroup | None:
    fields = doc.mapping(node, path, _GROUP_KEYS)
    if fields is None:
        return None
    n_before = len(doc.issues)
    name = None
    if "name" not in fields:
        doc.issue(node, path + ("name",), "Groupname must not be empty")
    else:
        name = doc.string(fields["name"][1], path + ("name",))
        if name is not None and not name:
            doc.issue(fields["name"][1], path + ("name",), "Groupname must not be empty")
        elif name is not None:
            if name in names:
                doc.issue(fields["name"][1], path + ("name",),
                          f'groupname: "{name}" is repeated in the same file (first on line {names[name]})')
            else:
                names[name] = fields["name"][1].start_mark.line + 1
    interval = query_offset = None
    if "interval" in fields:
        interval = doc.duration(fields["interval"][1], path + ("interval",))
        if interval is not None and interval <= 0:
            doc.issue(fields["interval"][1], path + ("interval",), "interval must be greater than 0")
    if "query_offset" in fields:
        query_offset = doc.duration(fields["query_offset"][1], path + ("query_offset",))
    limit = 0
    if "limit" in fields:
        text = doc.string(fields["limit"][1], path + ("limit",))
        if text is not None:
            if not re.fullmatch(r"\d+", text):
                doc.issue(fields["limit"][1], path + ("limit",),
                          f"{text!r} is not a limit; use a whole number, 0 for none")
            else:
                limit = int(text)
    group_labels: dict[str, str] | None = {}
    if "labels" in fields:
        group_labels = doc.string_map(fields["labels"][1], path + ("labels",), what="label")
    rules: list[Rule] = []
    rules_node = fields.get("rules", (None, None))[1]
    if rules_node is not None and not (isinstance(rules_node, yaml.ScalarNode)
                                       and rules_node.tag == "tag:yaml.org,2002:null"):
        if not isinstance(rules_node, yaml.SequenceNode):
            doc.issue(rules_node, path + ("rules",), f"must be a list of rules, not {_kind(rules_node)}")
        else:
            for i, item in enumerate(rules_node.value):
                rule = _load_rule(doc, item, path + ("rules", i), name or "")
                if rule is not None:
                    rules.append(rule)
    if len(doc.issues) > n_before or name is None or group_labels is None:
        return None
    if group_labels:
        # Prometheus 3: group labels are added to every rule (the rule's own win)
        rules = [_with_group_labels(r, group_labels) for r in rules]
    return RuleGroup(name, doc.file, tuple(rules), interval, limit, query_offset, group_labels,
                     node.start_mark.line + 1)


def _with_group_labels(rule: Rule, labels: dict[str, str]) -> Rule:
    merged = {**labels, **rule.labels}
    if isinstance(rule, AlertingRule):
        return AlertingRule(rule.name, rule.expr, rule.expr_text, rule.for_, rule.keep_firing_for, merged,
                            rule.annotations, rule.file, rule.line, rule.group)
    return RecordingRule(rule.record, rule.expr, rule.expr_text, merged, rule.file, rule.line, rule.group)


def load_rules_text(text: str, file: str = "<rules>") -> RuleSet:
    """Load one rule file's content; ``file`` names it in issues."""
    out = RuleSet(files=[file])
    issues: list[ConfigIssue] = []
    doc = _Doc(file, issues)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        issues.append(ConfigIssue(file, mark.line + 1 if mark else None, "",
                                  f"invalid YAML: {exc.problem or exc}"))
        root = None
    except yaml.YAMLError as exc:
        issues.append(ConfigIssue(file, None, "", f"invalid YAML: {exc}"))
        root = None
    if root is not None and not (isinstance(root, yaml.ScalarNode) and root.tag == "tag:yaml.org,2002:null"):
        fields = doc.mapping(root, (), ("groups",))
        if fields is not None and "groups" in fields:
            gnode = fields["groups"][1]
            if isinstance(gnode, yaml.SequenceNode):
                names: dict[str, int] = {}
                for i, item in enumerate(gnode.value):
                    group = _load_group(doc, item, ("groups", i), names)
                    if group is not None:
                        out.groups.append(group)
            elif not (isinstance(gnode, yaml.ScalarNode) and gnode.tag == "tag:yaml.org,2002:null"):
                doc.issue(gnode, ("groups",), f"must be a list of groups, not {_kind(gnode)}")
    if issues:
        out.groups = []
        out.issues = issues
        out.failed_files = [file]
    return out


def _expand(patterns: Iterable[str | Path], base_dir: Path | None) -> tuple[list[Path], list[ConfigIssue]]:
    files: list[Path] = []
    issues: list[ConfigIssue] = []
    seen: set[Path] = set()
    for pattern in patterns:
        p = Path(pattern)
        if base_dir is not None and not p.is_absolute():
            p = base_dir / p
        text = str(p)
        if glob.has_magic(text):
            matches = sorted(Path(m) for m in glob.glob(text))  # a glob matching nothing is fine
        else:
            if not p.exists():
                issues.append(ConfigIssue(text, None, "", "file not found"))
                continue
            matches = [p]
        for m in matches:
            if m.is_file() and m.resolve() not in seen:
                seen.add(m.resolve())
                files.append(m)
    return files, issues


def load_rule_files(paths_or_globs: Iterable[str | Path], *, base_dir: str | Path | None = None) -> RuleSet:
    """Load every rule file the paths and globs name (relative ones from ``base_dir``).

    Never raises for bad content: every problem becomes an issue in the
    returned :class:`RuleSet`, and a file with problems contributes no groups
    while the others load. Call :meth:`RuleSet.raise_for_issues` to fail on any.
    """
    files, issues = _expand(paths_or_globs, Path(base_dir) if base_dir is not None else None)
    out = RuleSet(issues=list(issues), failed_files=[i.file for i in issues])
    for path in files:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            out.issues.append(ConfigIssue(str(path), None, "", f"cannot read: {exc}"))
            out.failed_files.append(str(path))
            continue
        out.extend(load_rules_text(text, str(path)))
    return out
