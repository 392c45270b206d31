"""The alert state machine and its persistence: pending -> firing -> resolved, acks, history.

Two kinds of alerts live here:

* **rule alerts** (``source`` "rule" or "check"), driven by :meth:`AlertStore.sync_rule`
  after each evaluation of an alerting rule, with Prometheus's semantics: a new
  label set becomes *pending*, and *firing* once it has been active for ``for``
  (at once when ``for`` is 0); when it is no longer active a firing alert stays
  firing for ``keep_firing_for`` more and is then *resolved*, while a pending
  one simply goes away (Prometheus never sends it; its history keeps an
  ``inactive`` row). A resolved label set that becomes active again is a new
  pending alert.
* **API alerts** (``source`` "api"), posted to ``/api/v2/alerts`` by other
  Prometheus servers, handled by :meth:`AlertStore.receive` with Alertmanager's
  semantics: they fire from ``startsAt`` until ``endsAt`` (``now +
  resolve_timeout`` when not given) and resolve when that passes
  (:meth:`AlertStore.expire`) or when they are posted with an ``endsAt`` in
  the past.

Every alert is a row of the ``alerts`` table keyed by fingerprint; every state
change adds an ``alert_history`` row and (firing, resolved, acked, unacked) an
event-log entry. Pending and firing alerts are also held in memory, so a rule
evaluation that changes nothing touches no table: rows are written only when
state, annotations or acknowledgement change (``value`` and ``last_seen`` are
written with those, not on their own). A new AlertStore on the same database
continues where the last one stopped: pending alerts keep ``active_at`` (their
``for`` goes on counting), firing ones stay firing, and nothing is reported as
new. One process should own the store at a time.

An *ack* marks firing alerts as being handled (routing stops repeating
them); it is cleared when the alert resolves.
"""

from __future__ import annotations

import copy
import json
import math
import re
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, bindparam, delete, insert, select, update

from watchkeeper.alerting.model import Alert, AlertState, fingerprint, format_time
from watchkeeper.clock import Clock
from watchkeeper.errors import InputError, NotFoundError
from watchkeeper.eventlog import EventLog
from watchkeeper.store.models import alert_history, alerts

__all__ = ["ActiveAlert", "AlertStore", "parse_am_time"]

_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
_FP_RE = re.compile(r"[0-9a-f]{16}\Z")
_ZERO_TIME = "0001-01-01T00:00:00Z"


@dataclass(frozen=True)
class ActiveAlert:
    """One label set a rule's expression returned at this evaluation.

    ``labels`` already hold ``alertname`` and the rule's labels; ``annotations``
    are rendered.
    """

    labels: Mapping[str, str]
    annotations: Mapping[str, str] = field(default_factory=dict)
    value: float | None = None


def parse_am_time(value: Any, where: str) -> float | None:
    """An RFC 3339 time as Alertmanager's API sends it, in Unix seconds.

    None, "" and Go's zero time (``0001-01-01T00:00:00Z``) mean "not set".
    Raises InputError naming ``where`` for anything else that is not a time.
    """
    if value is None or value == "" or value == _ZERO_TIME:
        return None
    if not isinstance(value, str):
        raise InputError(f"{where}: must be an RFC 3339 time such as 2024-01-02T15:04:05Z")
    text = value.strip()
    # Go writes up to nine fractional digits; Python reads six
    text = re.sub(r"(\.\d{6})\d+", r"\1", text)
    text = re.sub(r"[zZ]$", "+00:00", text)
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        dt = None
    if dt is None or dt.tzinfo is None or "T" not in text.upper():
        raise InputError(f"{where}: {value!r} is not an RFC 3339 time (like "
                         "2024-01-02T15:04:05Z, with a time zone)")
    if dt.year <= 1:
        return None
    return dt.timestamp()


def _json(d: Mapping[str, Any]) -> str:
    return json.dumps(dict(d), sort_keys=True, separators=(",", ":"))


def _value(v: float | None) -> float | None:
    # SQLite cannot store NaN; NULL stands for "no value" and NaN alike
    return None if v is None or math.isnan(v) else float(v)


class AlertStore:
    """Pending, firing and resolved alerts of one database. See the module docstring."""

    def __init__(self, engine: Engine, *, eventlog: EventLog | None = None, clock: Clock,
                 on_change: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.eventlog = eventlog
        self.clock = clock
        self.on_change = on_change
        self._lock = threading.RLock()
        self._active: dict[str, Alert] = {}
        self._by_rule: dict[str, set[str]] = {}
        with engine.connect() as conn:
            rows = conn.execute(select(alerts).where(alerts.c.state != AlertState.RESOLVED.value)).all()
        for r in rows:
            a = self._from_row(r)
            self._active[a.fingerprint] = a
            if a.source != "api" and a.rule is not None:
                self._by_rule.setdefault(a.rule, set()).add(a.fingerprint)

    # -- rows ---------------------------------------------------------------------------------
    @staticmethod
    def _from_row(r: Any) -> Alert:
        return Alert(labels=json.loads(r.labels), annotations=json.loads(r.annotations),
                     state=AlertState(r.state), active_at=r.active_at, fired_at=r.fired_at,
                     resolved_at=r.resolved_at, last_seen=r.last_seen, ends_at=r.ends_at,
                     keep_firing_since=r.keep_firing_since, value=r.value, source=r.source,
                     rule=r.rule, generator_url=r.generator_url or "", acked_by=r.acked_by,
                     acked_at=r.acked_at, ack_comment=r.ack_comment)

    @staticmethod
    def _to_row(a: Alert) -> dict[str, Any]:
        return {"fingerprint": a.fingerprint, "source": a.source, "rule": a.rule,
                "labels": _json(a.labels), "annotations": _json(a.annotations),
                "state": a.state.value, "active_at": a.active_at, "fired_at": a.fired_at,
                "resolved_at": a.resolved_at, "last_seen": a.last_seen, "ends_at": a.ends_at,
                "keep_firing_since": a.keep_firing_since, "value": _value(a.value),
                "generator_url": a.generator_url, "acked_by": a.acked_by,
                "acked_at": a.acked_at, "ack_comment": a.ack_comment}

    def _commit(self, upserts: Iterable[Alert], deletes: Iterable[str],
                history: Sequence[tuple[Alert, str, float, str]],
                events: Sequence[tuple[str, Alert, dict[str, Any], str]]) -> None:
        """Write changed alerts and history rows in one transaction, then the events."""
        rows = {a.fingerprint: self._to_row(a) for a in upserts}
        dels = list(deletes)
        if rows or dels or history:
            with self.engine.begin() as conn:
                if rows:
                    have: set[str] = set(conn.execute(select(alerts.c.fingerprint)
                                            .where(alerts.c.fingerprint.in_(list(rows)))).scalars())
                    # one executemany each: a rule cycle updates many alerts (their values
                    # and annotations), and a statement per row cost more than the cycle
                    old = [{**row, "_fp": fp} for fp, row in rows.items() if fp in have]
                    new = [row for fp, row in rows.items() if fp not in have]
                    if old:
                        conn.execute(update(alerts).where(alerts.c.fingerprint == bindparam("_fp")), old)
                    if new:
                        conn.execute(insert(alerts), new)
                if dels:
                    conn.execute(delete(alerts).where(alerts.c.fingerprint.in_(dels)))
                if history:
                    conn.execute(insert(alert_history), [
                        {"fingerprint": a.fingerprint, "ts": ts, "state": state,
                         "labels": _json(a.labels), "value": _value(a.value), "detail": detail}
                        for a, state, ts, detail in history])
        # the event log writes in its own transaction: only after ours has committed
        if self.eventlog is not None:
            for kind, a, data, actor in events:
                self.eventlog.append(kind, f"alert/{a.fingerprint}",
                                     {"labels": dict(a.labels), **data}, actor=actor)

    def _changed(self) -> None:
        if self.on_change is not None:
            self.on_change()

    # -- rule alerts --------------------------------------------------------------------------
    def sync_rule(self, rule: str, active: Sequence[ActiveAlert], now: float, *, for_: float,
                  keep_firing_for: float = 0.0, source: str = "rule",
                  generator_url: str = "") -> list[Alert]:
        """Apply one evaluation of the alerting rule ``rule`` ("group/alertname").

        ``active`` are the label sets the expression returned now. Returns the
        rule's pending and firing alerts after the update (copies), sorted by
        labels. A label set listed twice counts once; one already owned by another
        rule or by the API is left to its owner.
        """
        seen: dict[str, ActiveAlert] = {}
        for a in active:
            seen.setdefault(fingerprint(a.labels), a)
        upserts: list[Alert] = []
        deletes: list[str] = []
        history: list[tuple[Alert, str, float, str]] = []
        events: list[tuple[str, Alert, dict[str, Any], str]] = []
        notify = False
        with self._lock:
            mine = self._by_rule.setdefault(rule, set())
            for fp in sorted(mine):
                al = self._active[fp]
                cur = seen.get(fp)
                if cur is not None:
                    dirty = False
                    if al.keep_firing_since is not None:
                        al.keep_firing_since = None
                        dirty = True
                    if al.annotations != dict(cur.annotations):
                        al.annotations = dict(cur.annotations)
                        dirty = True
                    al.value, al.last_seen = cur.value, now
                    if al.state == AlertState.PENDING and now - al.active_at >= for_:
                        al.state, al.fired_at = AlertState.FIRING, now
                        history.append((al, "firing", now, ""))
                        events.append(("alert.firing", al, {"rule": rule, "value": al.value},
                                       "watchkeeper"))
                        dirty = notify = True
                    if dirty:
                        upserts.append(al)
                    continue
                if al.state == AlertState.FIRING and keep_firing_for > 0:
                    if al.keep_firing_since is None:
                        al.keep_firing_since = now
                        upserts.append(al)
                    if now - al.keep_firing_since < keep_firing_for:
                        continue
                mine.discard(fp)
                del self._active[fp]
                if al.state == AlertState.PENDING:
                    deletes.append(fp)
                    history.append((al, "inactive", now, "no longer active before firing"))
                    continue
                self._resolve(al, now, history, events, f"rule {rule}: no longer active")
                upserts.append(al)
                notify = True
            for fp, cur in seen.items():
                if fp in mine or fp in self._active:
                    continue
                al = Alert(labels=dict(cur.labels), annotations=dict(cur.annotations),
                           state=AlertState.PENDING, active_at=now, last_seen=now,
                           value=cur.value, source=source, rule=rule,
                           generator_url=generator_url)
                if for_ <= 0:
                    al.state, al.fired_at = AlertState.FIRING, now
                    events.append(("alert.firing", al, {"rule": rule, "value": al.value},
                                   "watchkeeper"))
                    notify = True
                history.append((al, al.state.value, now, ""))
                self._active[fp] = al
                mine.add(fp)
                upserts.append(al)
            # snapshot before the lock goes: rows and history must see consistent values
            upserts = [copy.copy(a) for a in upserts]
            history = [(copy.copy(a), s, ts, d) for a, s, ts, d in history]
            self._commit(upserts, deletes, history, events)
            result = sorted((copy.copy(self._active[fp]) for fp in mine),
                            key=lambda a: sorted(a.labels.items()))
        if notify:
            self._changed()
        return result

    def _resolve(self, al: Alert, at: float, history: list[tuple[Alert, str, float, str]],
                 events: list[tuple[str, Alert, dict[str, Any], str]], detail: str) -> None:
        al.state, al.resolved_at, al.keep_firing_since = AlertState.RESOLVED, at, None
        if al.acked_by is not None:
            detail += f"; ack by {al.acked_by} cleared"
        al.acked_by = al.acked_at = al.ack_comment = None
        history.append((al, "resolved", at, detail))
        events.append(("alert.resolved", al, {"rule": al.rule, "source": al.source},
                       "watchkeeper"))

    def retire_rules(self, keep: Iterable[str], now: float) -> int:
        """Resolve (or drop, when pending) the alerts of rules not in ``keep``.

        For a reload that removed rules: their alerts would otherwise stay
        active for ever. Returns how many alerts were ended.
        """
        keep = set(keep)
        n = 0
        for rule in [r for r in list(self._by_rule) if r not in keep]:
            n += len(self._by_rule.get(rule, ()))
            self.sync_rule(rule, [], now, for_=0.0)
            self._by_rule.pop(rule, None)
        return n

    # -- API alerts ---------------------------------------------------------------------------
    def receive(self, posted: Any, now: float, *, resolve_timeout: float = 300.0) -> int:
        """Take alerts in Alertmanager API v2's ``postableAlerts`` form; returns how many were valid.

        Each alert has ``labels`` (required, non-empty after dropping empty
        values), ``annotations``, ``startsAt``, ``endsAt`` and ``generatorURL``.
        No ``startsAt`` means ``endsAt`` if given, else now; no ``endsAt`` means
        now + ``resolve_timeout``; an ``endsAt`` not after now resolves the alert.
        As Alertmanager, the valid alerts are taken even when others are not; then
        InputError lists every invalid one by index and field
        (``alerts[2].labels: must not be empty``).
        """
        if not isinstance(posted, list):
            raise InputError("the body must be a JSON array of alerts "
                             '([{"labels": {...}, "annotations": {...}, ...}])')
        problems: list[str] = []
        valid: list[tuple[dict[str, str], dict[str, str], float, float, str]] = []
        for i, item in enumerate(posted):
            try:
                valid.append(self._validate(item, f"alerts[{i}]", now, resolve_timeout))
            except InputError as exc:
                problems.append(exc.message)
        upserts: list[Alert] = []
        history: list[tuple[Alert, str, float, str]] = []
        events: list[tuple[str, Alert, dict[str, Any], str]] = []
        notify = False
        with self._lock:
            for labels, annotations, starts, ends, gen_url in valid:
                fp = fingerprint(labels)
                al = self._active.get(fp)
                if al is not None and al.source != "api":
                    continue  # a rule of ours owns this label set: it decides
                resolved = ends <= now
                if al is None:
                    if resolved:
                        continue  # never seen firing: nothing to resolve
                    al = Alert(labels=labels, annotations=annotations, state=AlertState.FIRING,
                               active_at=starts, fired_at=starts, last_seen=now, ends_at=ends,
                               source="api", generator_url=gen_url)
                    self._active[fp] = al
                    history.append((al, "firing", now, "received from the API"))
                    events.append(("alert.firing", al, {"source": "api"}, "api"))
                    upserts.append(al)
                    notify = True
                    continue
                al.fired_at = min(al.fired_at if al.fired_at is not None else starts, starts)
                al.active_at = min(al.active_at, starts)
                al.annotations, al.ends_at, al.last_seen = annotations, ends, now
                al.generator_url = gen_url or al.generator_url
                if resolved:
                    del self._active[fp]
                    self._resolve(al, ends, history, events, "resolved by the sender")
                    notify = True
                upserts.append(al)
            upserts = [copy.copy(a) for a in upserts]
            history = [(copy.copy(a), s, ts, d) for a, s, ts, d in history]
            self._commit(upserts, [], history, events)
        if notify:
            self._changed()
        if problems:
            n_ok = len(valid)
            raise InputError("; ".join(problems),
                             hint=f"{n_ok} of {len(posted)} alerts were valid and accepted")
        return len(valid)

    @staticmethod
    def _validate(item: Any, where: str, now: float, resolve_timeout: float
                  ) -> tuple[dict[str, str], dict[str, str], float, float, str]:
        if not isinstance(item, Mapping):
            raise InputError(f"{where}: must be an object with labels, annotations, startsAt, "
                             "endsAt, generatorURL")
        unknown = sorted(set(item) - {"labels", "annotations", "startsAt", "endsAt",
                                      "generatorURL"})
        if unknown:
            raise InputError(f"{where}.{unknown[0]}: unknown field (allowed: labels, annotations, "
                             "startsAt, endsAt, generatorURL)")
        maps: list[dict[str, str]] = []
        for key in ("labels", "annotations"):
            raw = item.get(key, {} if key == "annotations" else None)
            if raw is None and key == "annotations":
                raw = {}
            if not isinstance(raw, Mapping):
                raise InputError(f"{where}.{key}: must be an object of string values")
            out: dict[str, str] = {}
            for k, v in raw.items():
                if not isinstance(v, str):
                    raise InputError(f"{where}.{key}.{k}: must be a string")
                if not _LABEL_NAME.match(k):
                    raise InputError(f"{where}.{key}: {k!r} is not a valid label name "
                                     "([a-zA-Z_][a-zA-Z0-9_]*)")
                if key == "labels" and v == "":
                    continue  # Alertmanager drops empty labels
                out[k] = v
            maps.append(out)
        labels, annotations = maps
        if not labels:
            raise InputError(f"{where}.labels: must not be empty")
        starts = parse_am_time(item.get("startsAt"), f"{where}.startsAt")
        ends = parse_am_time(item.get("endsAt"), f"{where}.endsAt")
        if starts is None:
            starts = ends if ends is not None else now
        if ends is None:
            ends = now + resolve_timeout
        elif ends < starts:
            raise InputError(f"{where}.endsAt: must not be before startsAt")
        gen = item.get("generatorURL") or ""
        if not isinstance(gen, str):
            raise InputError(f"{where}.generatorURL: must be a string")
        return labels, annotations, starts, ends, gen

    def expire(self, now: float) -> int:
        """Resolve API alerts whose ``endsAt`` has passed; returns how many."""
        history: list[tuple[Alert, str, float, str]] = []
        events: list[tuple[str, Alert, dict[str, Any], str]] = []
        upserts: list[Alert] = []
        with self._lock:
            for fp, al in list(self._active.items()):
                if al.source == "api" and al.ends_at is not None and al.ends_at <= now:
                    del self._active[fp]
                    self._resolve(al, al.ends_at, history, events,
                                  "not sent again before endsAt")
                    upserts.append(copy.copy(al))
            history = [(copy.copy(a), s, ts, d) for a, s, ts, d in history]
            self._commit(upserts, [], history, events)
        if upserts:
            self._changed()
        return len(upserts)

    # -- reading ------------------------------------------------------------------------------
    def current(self, *, resolved_since: float | None = None) -> list[Alert]:
        """Pending and firing alerts (copies), plus those resolved at or after ``resolved_since``."""
        with self._lock:
            out = [copy.copy(a) for a in self._active.values()]
        if resolved_since is not None:
            with self.engine.connect() as conn:
                rows = conn.execute(select(alerts).where(
                    alerts.c.state == AlertState.RESOLVED.value,
                    alerts.c.resolved_at >= resolved_since)).all()
            out += [self._from_row(r) for r in rows]
        out.sort(key=lambda a: (a.name, sorted(a.labels.items())))
        return out

    def get(self, fp: str) -> Alert:
        """The alert with fingerprint ``fp`` (active or resolved); NotFoundError otherwise."""
        with self._lock:
            if fp in self._active:
                return copy.copy(self._active[fp])
        with self.engine.connect() as conn:
            row = conn.execute(select(alerts).where(alerts.c.fingerprint == fp)).first()
        if row is None:
            raise NotFoundError(f"no alert with fingerprint {fp!r}",
                                hint="`watchkeeper alerts` lists the alerts and their fingerprints")
        return self._from_row(row)

    def find(self, name_or_fingerprint: str) -> list[Alert]:
        """Alerts a user means by ``name_or_fingerprint``.

        A 16-hex-digit fingerprint gives that alert (active or resolved); a
        matcher list (``{alertname="X",instance="a"}``) or an alert name gives
        the pending and firing alerts it matches. Empty when none does.
        """
        key = name_or_fingerprint.strip()
        if _FP_RE.match(key):
            try:
                return [self.get(key)]
            except NotFoundError:
                pass
        if key.startswith("{") or any(op in key for op in ("=", "!~")):
            from watchkeeper.alerting.matchers import matches, parse_matchers

            ms = parse_matchers(key)
            pred: Callable[[Alert], bool] = lambda a: matches(ms, a.labels)  # noqa: E731
        else:
            pred = lambda a: a.name == key  # noqa: E731
        with self._lock:
            found = [copy.copy(a) for a in self._active.values() if pred(a)]
        return sorted(found, key=lambda a: sorted(a.labels.items()))

    def history(self, fingerprint: str | None = None, *, since: float | None = None,
                limit: int = 100) -> list[dict[str, Any]]:
        """State changes, newest first: ``{fingerprint, ts, time, state, labels, value, detail}``.

        ``state`` is pending, firing, resolved, inactive (went away while
        pending), acked or unacked.
        """
        q = select(alert_history)
        if fingerprint is not None:
            q = q.where(alert_history.c.fingerprint == fingerprint)
        if since is not None:
            q = q.where(alert_history.c.ts >= since)
        q = q.order_by(alert_history.c.ts.desc(), alert_history.c.id.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [{"fingerprint": r.fingerprint, "ts": r.ts, "time": format_time(r.ts),
                 "state": r.state, "labels": json.loads(r.labels), "value": r.value,
                 "detail": r.detail} for r in rows]

    # -- acknowledgement ----------------------------------------------------------------------
    def ack(self, name_or_fingerprint: str, by: str, comment: str, now: float, *,
            identity: str | None = None) -> list[Alert]:
        """Acknowledge every firing alert ``name_or_fingerprint`` means (see :meth:`find`).
        ``identity`` (the API token's name, over HTTP) goes into the event log beside ``by``.

        Raises NotFoundError when no firing alert matches.
        """
        return self._set_ack(name_or_fingerprint, by, comment, now, on=True, identity=identity)

    def unack(self, name_or_fingerprint: str, by: str, now: float, *,
              identity: str | None = None) -> list[Alert]:
        """Take the acknowledgement back; NotFoundError when no acked alert matches."""
        return self._set_ack(name_or_fingerprint, by, "", now, on=False, identity=identity)

    def _set_ack(self, key: str, by: str, comment: str, now: float, *, on: bool,
                 identity: str | None = None) -> list[Alert]:
        who = {"identity": identity} if identity is not None else {}
        if on and not by.strip():
            raise InputError("an acknowledgement needs a name (who is handling it)")
        history: list[tuple[Alert, str, float, str]] = []
        events: list[tuple[str, Alert, dict[str, Any], str]] = []
        changed: list[Alert] = []
        with self._lock:
            for found in self.find(key):
                al = self._active.get(found.fingerprint)
                if al is None or al.state != AlertState.FIRING:
                    continue
                if on:
                    al.acked_by, al.acked_at, al.ack_comment = by, now, comment
                    history.append((al, "acked", now, f"{by}: {comment}" if comment else by))
                    events.append(("alert.acked", al, {"comment": comment, **who}, by))
                elif al.acked_by is not None:
                    prev = al.acked_by
                    al.acked_by = al.acked_at = al.ack_comment = None
                    history.append((al, "unacked", now, f"ack by {prev} taken back by {by}"))
                    events.append(("alert.unacked", al, {"was_acked_by": prev, **who}, by))
                else:
                    continue
                changed.append(copy.copy(al))
            if not changed:
                what = "firing" if on else "acknowledged"
                raise NotFoundError(f"no {what} alert matches {key!r}",
                                    hint="`watchkeeper alerts` lists the alerts; give an alert "
                                         "name, a fingerprint or matchers like "
                                         '{alertname="X",instance="web1"}')
            history = [(copy.copy(a), s, ts, d) for a, s, ts, d in history]
            self._commit(changed, [], history, events)
        self._changed()
        return changed

    # -- housekeeping -------------------------------------------------------------------------
    def purge_resolved(self, older_than: float) -> int:
        """Delete resolved alerts that resolved before ``older_than`` (history stays)."""
        with self._lock, self.engine.begin() as conn:
            n = conn.execute(delete(alerts).where(alerts.c.state == AlertState.RESOLVED.value,
                                                  alerts.c.resolved_at < older_than)).rowcount
        return int(n or 0)

    def purge_history(self, older_than: float) -> int:
        """Delete history rows older than ``older_than``."""
        with self._lock, self.engine.begin() as conn:
            n = conn.execute(delete(alert_history).where(alert_history.c.ts < older_than)).rowcount
        return int(n or 0)
