"""Evaluating rule groups: recording rules write series, alerting rules drive alert state.

Each group runs every ``interval`` seconds (the global default otherwise),
its rules in order, so a recording rule's output is visible to the rules
after it. An alerting rule turns each element of its result into an alert
(labels: the element's, minus ``__name__``, plus the rule's templated labels
and ``alertname``; annotations templated with ``$labels`` and ``$value``) and
hands the set to an alert sink (:class:`~watchkeeper.alerting.store.AlertStore`
in the server, :class:`MemoryAlerts` in ``rules test`` and backtests), whose
pending/firing answer becomes the ``ALERTS`` and ``ALERTS_FOR_STATE`` series,
as Prometheus writes them.

Staleness, as Prometheus's rule groups: every series a rule wrote at its
previous evaluation and not at this one gets a staleness marker at this
evaluation's time — a recording rule's vanished output, and the ``ALERTS`` /
``ALERTS_FOR_STATE`` series of alerts no longer pending or firing (so
``ALERTS{alertstate="pending"}`` ends the moment the alert fires). A rule that
fails keeps its previous series unmarked; a rule removed by a reload has all
its series marked at the next evaluation.

One rule's failure (a query error, a duplicate label set, a ``limit``
exceeded) is kept as that rule's health and last error and never stops the
others; :meth:`RuleEvaluator.rules_api` reports them in the shape of
Prometheus's ``GET /api/v1/rules``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from watchkeeper.alerting.model import Alert, AlertState, fingerprint, format_time
from watchkeeper.alerting.rulefiles import AlertingRule, RecordingRule, Rule, RuleGroup, RuleSet
from watchkeeper.clock import sleep_or_wake
from watchkeeper.errors import WatchkeeperError

__all__ = [
    "ActiveAlertLike",
    "AlertSink",
    "MemoryAlerts",
    "RuleEvaluator",
    "RuleRunner",
    "RuleStatus",
    "go_format_float_e",
    "rule_ids",
]

log = logging.getLogger(__name__)

Row = tuple[str, Mapping[str, str], float, float]
"""(name, labels without ``__name__``, seconds, value): what the TSDB's ``append_rows`` takes."""


class ActiveAlertLike(Protocol):
    labels: dict[str, str]
    annotations: dict[str, str]
    value: float


class AlertSink(Protocol):
    """What keeps alert state: ``AlertStore`` (persisted) or :class:`MemoryAlerts`."""

    def sync_rule(self, rule: str, active: list[Any], now: float, *, for_: float,
                  keep_firing_for: float = 0.0) -> list[Alert]: ...


@dataclass
class _Active:
    """An active alert for :class:`MemoryAlerts` (the same fields as the store's ``ActiveAlert``)."""

    labels: dict[str, str]
    annotations: dict[str, str]
    value: float


def _make_active(labels: dict[str, str], annotations: dict[str, str], value: float) -> Any:
    try:
        from watchkeeper.alerting.store import ActiveAlert
    except ImportError:  # the store's module is optional for in-memory evaluation
        return _Active(labels, annotations, value)
    return ActiveAlert(labels=labels, annotations=annotations, value=value)


class MemoryAlerts:
    """Alert state in memory, with Prometheus's rules: an :class:`AlertSink`.

    A new label set is pending (firing at once when ``for_`` is 0); pending
    for at least ``for_`` -> firing; no longer active -> resolved, unless it
    was firing and ``keep_firing_for`` has not passed since it stopped being
    active; a resolved label set that becomes active again is a new alert.
    Used by ``rules test`` and backtests; the server persists with AlertStore.
    """

    def __init__(self) -> None:
        self._rules: dict[str, dict[str, Alert]] = {}
        #: every alert that was resolved, in order (for backtests)
        self.resolved: list[Alert] = []

    def sync_rule(self, rule: str, active: list[Any], now: float, *, for_: float,
                  keep_firing_for: float = 0.0) -> list[Alert]:
        alerts = self._rules.setdefault(rule, {})
        seen: set[str] = set()
        for a in active:
            fp = fingerprint(a.labels)
            seen.add(fp)
            cur = alerts.get(fp)
            if cur is None or cur.state == AlertState.RESOLVED:
                cur = Alert(labels=dict(a.labels), active_at=now, rule=rule)
                alerts[fp] = cur
            cur.annotations = dict(a.annotations)
            cur.value = a.value
            cur.last_seen = now
            cur.keep_firing_since = None
        for fp, cur in list(alerts.items()):
            if cur.state == AlertState.RESOLVED:
                del alerts[fp]
                continue
            if fp not in seen:
                keep = False
                if cur.state == AlertState.FIRING and keep_firing_for > 0:
                    if cur.keep_firing_since is None:
                        cur.keep_firing_since = now
                    keep = now - cur.keep_firing_since < keep_firing_for
                if not keep:
                    cur.state = AlertState.RESOLVED
                    cur.resolved_at = now
                    self.resolved.append(cur)
                    continue
            if cur.state == AlertState.PENDING and now - cur.active_at >= for_:
                cur.state = AlertState.FIRING
                cur.fired_at = now
        return [a for a in alerts.values() if a.state != AlertState.RESOLVED]

    def current(self, rule: str | None = None) -> list[Alert]:
        """Pending and firing alerts (of one rule, or all)."""
        rules = [rule] if rule is not None else list(self._rules)
        return [a for r in rules for a in self._rules.get(r, {}).values() if a.state != AlertState.RESOLVED]


def go_format_float_e(v: float) -> str:
    """``strconv.FormatFloat(v, 'e', -1, 64)``: how Prometheus's API writes alert values."""
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    if v == 0:
        return "-0e+00" if math.copysign(1, v) < 0 else "0e+00"
    from decimal import Decimal

    sign, digits, exp = Decimal(repr(v)).as_tuple()
    assert isinstance(exp, int)
    ds = "".join(map(str, digits))
    stripped = ds.rstrip("0")
    x = len(ds) + exp - 1
    mant = stripped[0] + ("." + stripped[1:] if len(stripped) > 1 else "")
    return f"{'-' if sign else ''}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"


def rule_ids(groups: Iterable[RuleGroup]) -> dict[int, str]:
    """Stable ids of the rules (``group/name``; ``group/name#2`` for a repeated name), by ``id(rule)``."""
    out: dict[int, str] = {}
    used: dict[str, int] = {}
    for g in groups:
        for r in g.rules:
            base = f"{g.name}/{r.name}"
            n = used.get(base, 0) + 1
            used[base] = n
            out[id(r)] = base if n == 1 else f"{base}#{n}"
    return out


@dataclass
class RuleStatus:
    """The last evaluation of one rule."""

    health: str = "unknown"  # ok, err, unknown
    last_error: str = ""
    last_evaluation: float | None = None
    evaluation_time: float = 0.0
    alerts: list[Alert] = field(default_factory=list)


@dataclass
class GroupStatus:
    last_evaluation: float | None = None
    evaluation_time: float = 0.0


class RuleError(WatchkeeperError):
    """A rule could not be evaluated (its health becomes ``err``); the message is Prometheus's."""


def _vector(result: Any, t: float) -> list[tuple[dict[str, str], float]]:
    """The (labels, value) pairs of an instant query result; a scalar is one element without labels."""
    from watchkeeper.query.promql.values import Scalar, String

    if isinstance(result, Scalar):
        return [({}, float(result.value))]
    if isinstance(result, String):
        raise RuleError("rule result is not a vector or scalar")
    return [(dict(s.labels), float(s.value)) for s in result]


class RuleRunner:
    """Evaluates groups once at a given time; the scheduling-free core of rule evaluation.

    ``evaluator`` has ``instant(expr, t)`` (watchkeeper's PromQL Evaluator);
    ``write`` stores rows ``(name, labels, t, value)`` (TSDB.append_rows);
    ``alerts`` is the :class:`AlertSink`.
    """

    def __init__(self, evaluator: Any, write: Callable[[list[Row]], Any], alerts: AlertSink, *,
                 external_labels: Mapping[str, str] | None = None, external_url: str = "",
                 query_offset: float = 0.0) -> None:
        self.evaluator = evaluator
        self.write = write
        self.alerts = alerts
        self.external_labels = dict(external_labels or {})
        self.external_url = external_url
        self.query_offset = query_offset
        self.status: dict[str, RuleStatus] = {}
        self.group_status: dict[tuple[str, str], GroupStatus] = {}
        self.ids: dict[int, str] = {}
        # While a group evaluates: the evaluator over a per-evaluation read cache, and the cache.
        self._ev: Any = None
        self._cache: Any = None
        # While evaluate_groups runs: per query time, the read cache its groups share.
        self._batch: dict[float, Any] | None = None
        self._batch_windows: dict[str, int] = {}
        self._windows: dict[tuple[str, str], tuple[RuleGroup, dict[str, int]]] = {}
        # per rule id, the series its last successful evaluation wrote (for staleness markers)
        self._written: dict[str, dict[_SeriesKey, None]] = {}
        # series of rules a reload removed, marked stale at the next evaluation
        self._orphans: dict[_SeriesKey, None] = {}

    def set_groups(self, groups: Sequence[RuleGroup]) -> None:
        self.ids = rule_ids(groups)
        keep = set(self.ids.values())
        for rid in list(self.status):
            if rid not in keep:
                del self.status[rid]
        for rid in list(self._written):
            if rid not in keep:
                self._orphans.update(self._written.pop(rid))
        self._windows.clear()

    def _cacheable(self) -> bool:
        ev = self.evaluator
        return hasattr(ev, "with_source") and getattr(ev, "source", None) is not None

    def _group_windows(self, group: RuleGroup) -> dict[str, int]:
        """Per metric name, how far back (ms) the group's selectors read (remembered per group)."""
        from watchkeeper.query.promql.source import selector_windows

        known = self._windows.get(group.key)
        if known is None or known[0] is not group:
            lookback = getattr(self.evaluator, "lookback_ms", 300_000) / 1000
            known = (group, selector_windows((r.expr for r in group.rules), lookback))
            self._windows[group.key] = known
        return known[1]

    def _cached_evaluator(self, group: RuleGroup, qt: float | None = None) -> tuple[Any, Any]:
        """An evaluator for one evaluation of ``group`` (at query time ``qt``) that reads each
        metric name once (a :class:`~watchkeeper.query.promql.source.ReadCache`), or the
        plain one when the evaluator cannot be re-pointed at another source. Inside
        :meth:`evaluate_groups` the groups with the same query time share one cache."""
        ev = self.evaluator
        if not self._cacheable():
            return ev, None
        from watchkeeper.query.promql.source import ReadCache

        if self._batch is not None and qt is not None:
            cache = self._batch.get(qt)
            if cache is None:
                cache = self._batch[qt] = ReadCache(ev.source, self._batch_windows)
            return ev.with_source(cache), cache
        cache = ReadCache(ev.source, self._group_windows(group))
        return ev.with_source(cache), cache

    def _write(self, rows: list[Row]) -> None:
        """Store rows; what the group's read cache holds of those names is dropped, so the
        rules after this one see them."""
        self.write(rows)
        if self._cache is not None:
            self._cache.invalidate({r[0] for r in rows})

    def rule_id(self, rule: Rule) -> str:
        rid = self.ids.get(id(rule))
        return rid if rid is not None else f"{rule.group}/{rule.name}"

    def evaluate_groups(self, groups: Sequence[RuleGroup], t: float) -> None:
        """Evaluate ``groups`` one after the other, all at ``t`` (seconds), sharing reads.

        The same as :meth:`evaluate_group` for each, except that groups with the same
        query time read each metric name once between them (one
        :class:`~watchkeeper.query.promql.source.ReadCache` per query time, dropped when
        this returns): what a rule writes is dropped from it, so later rules and groups
        see it, while samples appended by others during the call are not seen by the
        groups after the first read — the batch reads one snapshot, as one group does.
        """
        if not self._cacheable() or len(groups) < 2:
            for g in groups:
                self.evaluate_group(g, t)
            return
        windows: dict[str, int] = {}
        for g in groups:
            for name, ms in self._group_windows(g).items():
                windows[name] = max(windows.get(name, 0), ms)
        self._batch, self._batch_windows = {}, windows
        try:
            for g in groups:
                self.evaluate_group(g, t)
        finally:
            self._batch, self._batch_windows = None, {}

    def evaluate_group(self, group: RuleGroup, t: float) -> None:
        """Evaluate every rule of ``group`` at ``t`` (seconds), in order."""
        started = time.perf_counter()
        offset = group.query_offset if group.query_offset is not None else self.query_offset
        qt = t - offset
        self._ev, self._cache = self._cached_evaluator(group, qt)
        try:
            if self._orphans:
                orphans, self._orphans = self._orphans, {}
                self._write(_stale_rows(orphans, qt))
            self._evaluate_rules(group, t, qt)
        finally:
            self._ev = self._cache = None
        gs = self.group_status.setdefault(group.key, GroupStatus())
        gs.last_evaluation = t
        gs.evaluation_time = time.perf_counter() - started

    def _evaluate_rules(self, group: RuleGroup, t: float, qt: float) -> None:
        for rule in group.rules:
            rid = self.rule_id(rule)
            st = self.status.setdefault(rid, RuleStatus())
            r0 = time.perf_counter()
            try:
                if isinstance(rule, RecordingRule):
                    self._recording(rule, group, qt)
                else:
                    st.alerts = self._alerting(rule, rid, group, qt)
                st.health, st.last_error = "ok", ""
            except WatchkeeperError as exc:
                st.health, st.last_error = "err", exc.message
                log.warning("rule %s (%s): %s", rid, rule.file, exc.message)
            except Exception as exc:  # a bug in one rule's evaluation must not stop the others
                st.health, st.last_error = "err", f"internal error: {exc!r}"
                log.exception("rule %s failed", rid)
            st.last_evaluation = t
            st.evaluation_time = time.perf_counter() - r0

    def _query(self, expr: Any, t: float) -> Any:
        ev = self._ev if self._ev is not None else self.evaluator
        return ev.instant(expr, t)

    def _recording(self, rule: RecordingRule, group: RuleGroup, t: float) -> None:
        vec = _vector(self._query(rule.expr, t), t)
        if group.limit and len(vec) > group.limit:
            raise RuleError(f"exceeded limit {group.limit} with {len(vec)} series")
        rows: list[Row] = []
        seen: set[tuple[tuple[str, str], ...]] = set()
        for labels, value in vec:
            labels.pop("__name__", None)
            labels.update(rule.labels)
            labels = {k: v for k, v in labels.items() if v != ""}
            key = tuple(sorted(labels.items()))
            if key in seen:
                raise RuleError("vector contains metrics with the same labelset after applying rule labels")
            seen.add(key)
            rows.append((rule.record, labels, t, value))
        self._write_tracked(self.rule_id(rule), rows, t)

    def _template_query(self, t: float) -> Callable[[str], list[Any]]:
        from watchkeeper.alerting.templating import QuerySample, TemplateError

        def query(q: str) -> list[Any]:
            try:
                return [QuerySample(labels, value) for labels, value in _vector(self._query(q, t), t)]
            except WatchkeeperError as exc:
                raise TemplateError(str(exc)) from None

        return query

    def _alerting(self, rule: AlertingRule, rid: str, group: RuleGroup, t: float) -> list[Alert]:
        from watchkeeper.alerting.templating import TemplateError, expand

        vec = _vector(self._query(rule.expr, t), t)
        query = self._template_query(t)

        def render(text: str, labels: dict[str, str], value: float) -> str:
            try:
                return expand(text, labels=labels, value=value, external_labels=self.external_labels,
                              external_url=self.external_url, query=query)
            except TemplateError as exc:
                return f"<error expanding template: {exc.message}>"

        active: list[Any] = []
        seen: set[str] = set()
        for labels, value in vec:
            alert_labels = {k: v for k, v in labels.items() if k != "__name__"}
            for k, v in rule.labels.items():
                alert_labels[k] = render(v, labels, value)
            alert_labels["alertname"] = rule.name
            alert_labels = {k: v for k, v in alert_labels.items() if v != ""}
            annotations = {k: render(v, labels, value) for k, v in rule.annotations.items()}
            fp = fingerprint(alert_labels)
            if fp in seen:
                raise RuleError("vector contains metrics with the same labelset after applying alert labels")
            seen.add(fp)
            active.append(_make_active(alert_labels, annotations, value))
        if group.limit and len(active) > group.limit:
            self.alerts.sync_rule(rid, [], t, for_=rule.for_, keep_firing_for=rule.keep_firing_for)
            raise RuleError(f"exceeded limit of {group.limit} with {len(active)} alerts")
        current = self.alerts.sync_rule(rid, active, t, for_=rule.for_,
                                        keep_firing_for=rule.keep_firing_for)
        rows: list[Row] = []
        for a in current:
            if a.state not in (AlertState.PENDING, AlertState.FIRING):
                continue
            rows.append(("ALERTS", {**a.labels, "alertstate": a.state.value}, t, 1.0))
            # whole seconds, as Prometheus writes it (ActiveAt.Unix())
            rows.append(("ALERTS_FOR_STATE", dict(a.labels), t, float(math.floor(a.active_at))))
        self._write_tracked(rid, rows, t)
        return current

    def _write_tracked(self, rid: str, rows: list[Row], t: float) -> None:
        """Write a rule's rows plus staleness markers at ``t`` for the series it wrote last
        time and not now; remember what it wrote."""
        current = {_series_key(name, labels): None for name, labels, _, _ in rows}
        previous = self._written.get(rid, {})
        gone = [key for key in previous if key not in current]
        self._written[rid] = current
        rows = rows + _stale_rows(gone, t)
        if rows:
            self._write(rows)


_SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def _series_key(name: str, labels: Mapping[str, str]) -> _SeriesKey:
    return name, tuple(sorted((k, v) for k, v in labels.items() if v != ""))


def _stale_rows(keys: Iterable[_SeriesKey], t: float) -> list[Row]:
    from watchkeeper.staleness import STALE_NAN

    return [(name, dict(labels), t, STALE_NAN) for name, labels in keys]


def _group_offset(group: RuleGroup, interval: float) -> float:
    """A stable offset within the interval, the same for every group of that interval.

    Prometheus spreads groups over their interval; watchkeeper runs the groups of one
    interval together at one instant instead, so they share their reads of the store
    (one read per metric name for all of them, :meth:`RuleRunner.evaluate_groups`),
    which costs a third of the CPU of separate evaluations. Groups of different
    intervals still get different offsets.
    """
    del group  # the slot belongs to the interval
    h = int.from_bytes(hashlib.sha256(f"interval\0{interval!r}".encode()).digest()[:8], "big")
    return (h % max(1, int(interval * 1000))) / 1000.0


class RuleEvaluator:
    """Runs rule groups on schedule against the store, as Prometheus's rule manager does.

    ``evaluator``: PromQL ``Evaluator`` over the TSDB; ``tsdb``: where recording
    rules and ``ALERTS`` are written (``append_rows``); ``alert_store``: the
    :class:`AlertSink` (``AlertStore``); ``clock``: wall time and sleep.
    ``load(ruleset)`` replaces the groups (also while running): state of
    rules that remain is kept. ``in_thread`` runs each evaluation in a worker
    thread (the default; tests with a fake clock turn it off).
    """

    def __init__(self, evaluator: Any, tsdb: Any, alert_store: AlertSink, clock: Any,
                 external_labels: Mapping[str, str] | None = None, *, default_interval: float = 60.0,
                 external_url: str = "", query_offset: float = 0.0, in_thread: bool = True,
                 ruleset: RuleSet | None = None) -> None:
        self.clock = clock
        self.default_interval = default_interval
        self.in_thread = in_thread
        self.runner = RuleRunner(evaluator, tsdb.append_rows, alert_store, external_labels=external_labels,
                                 external_url=external_url, query_offset=query_offset)
        self.groups: list[RuleGroup] = []
        self._next: dict[tuple[str, str], float] = {}
        self._wake: asyncio.Event | None = None
        if ruleset is not None:
            self.load(ruleset)

    def load(self, ruleset: RuleSet | Sequence[RuleGroup]) -> None:
        """Use these groups from now on (a reload). Groups with problems are not in a RuleSet."""
        groups = list(ruleset.groups if isinstance(ruleset, RuleSet) else ruleset)
        self.groups = groups
        self.runner.set_groups(groups)
        keys = {g.key for g in groups}
        self._next = {k: v for k, v in self._next.items() if k in keys}
        if self._wake is not None:
            self._wake.set()

    def interval(self, group: RuleGroup) -> float:
        return group.interval if group.interval else self.default_interval

    def evaluate_all(self, t: float) -> None:
        """Evaluate every group once at ``t`` (for tests, and ``rules`` commands), sharing
        reads between groups (:meth:`RuleRunner.evaluate_groups`)."""
        self.runner.evaluate_groups(self.groups, t)

    def _due(self, group: RuleGroup, now: float) -> float:
        iv = self.interval(group)
        off = _group_offset(group, iv)
        return math.floor((now - off) / iv) * iv + off + iv

    async def run(self) -> None:
        """Evaluate each group every interval until cancelled (the owner's task)."""
        self._wake = asyncio.Event()
        while True:
            now = self.clock.time()
            for g in self.groups:
                self._next.setdefault(g.key, self._due(g, now))
            due = [g for g in self.groups if self._next[g.key] <= now + 1e-9]
            # groups due at the same time (those of one interval) are evaluated together,
            # sharing their reads; in file order within a batch, earliest batch first
            by_time: dict[float, list[RuleGroup]] = {}
            for g in due:
                by_time.setdefault(self._next[g.key], []).append(g)
            for t, batch in sorted(by_time.items(), key=lambda item: item[0]):
                if self.in_thread:
                    await asyncio.to_thread(self.runner.evaluate_groups, batch, t)
                else:
                    self.runner.evaluate_groups(batch, t)
                for g in batch:
                    # missed iterations (a slow evaluation) are skipped, as Prometheus does
                    self._next[g.key] = self._due(g, max(t, self.clock.time()))
            if due:
                continue
            nxt = min(self._next.values(), default=now + 3600)
            await self._sleep(max(0.0, nxt - now))

    async def _sleep(self, seconds: float) -> None:
        assert self._wake is not None
        self._wake.clear()
        await sleep_or_wake(self.clock, seconds, self._wake)

    # -- reporting --------------------------------------------------------------------------
    def rules_api(self, *, type_: str | None = None) -> dict[str, Any]:
        """The ``data`` of Prometheus's ``GET /api/v1/rules`` (``type_``: "alert" or "record")."""
        out = []
        for g in self.groups:
            rules = []
            for r in g.rules:
                if type_ == "alert" and not isinstance(r, AlertingRule):
                    continue
                if type_ == "record" and not isinstance(r, RecordingRule):
                    continue
                rules.append(self._rule_api(r))
            gs = self.runner.group_status.get(g.key, GroupStatus())
            out.append({
                "name": g.name, "file": g.file, "rules": rules, "interval": self.interval(g),
                "limit": g.limit, "evaluationTime": gs.evaluation_time,
                "lastEvaluation": format_time(gs.last_evaluation) if gs.last_evaluation else
                "0001-01-01T00:00:00Z",
            })
        return {"groups": out}

    def _rule_api(self, r: Rule) -> dict[str, Any]:
        st = self.runner.status.get(self.runner.rule_id(r), RuleStatus())
        query = _expr_string(r)
        common: dict[str, Any] = {"name": r.name, "query": query, "labels": dict(r.labels),
                                  "health": st.health, "evaluationTime": st.evaluation_time,
                                  "lastEvaluation": format_time(st.last_evaluation)
                                  if st.last_evaluation else "0001-01-01T00:00:00Z"}
        if st.last_error:
            common["lastError"] = st.last_error
        if isinstance(r, RecordingRule):
            return {**common, "type": "recording"}
        alerts = [a for a in st.alerts if a.state in (AlertState.PENDING, AlertState.FIRING)]
        state = ("firing" if any(a.state == AlertState.FIRING for a in alerts)
                 else "pending" if alerts else "inactive")
        return {
            "state": state, **common, "duration": r.for_, "keepFiringFor": r.keep_firing_for,
            "annotations": dict(r.annotations),
            "alerts": [{"labels": dict(a.labels), "annotations": dict(a.annotations),
                        "state": a.state.value, "activeAt": format_time(a.active_at),
                        "value": go_format_float_e(a.value if a.value is not None else math.nan)}
                       for a in alerts],
            "type": "alerting",
        }


def _expr_string(rule: Rule) -> str:
    """The expression as Prometheus prints it (normalized), else as written."""
    try:
        text = str(rule.expr)
    except Exception:  # a node without a printer: fall back to the source text
        return rule.expr_text.strip()
    if not text or text.startswith(type(rule.expr).__name__ + "("):
        return rule.expr_text.strip()
    return text
