"""Routing and grouping: from current alerts to notifications in the outbox, as Alertmanager does.

Each firing (and recently resolved) alert goes through the routing tree; every
route it matches puts it into an aggregation group named by the route and the
alert's ``group_by`` labels. A group is flushed ``group_wait`` after it appears
(at once when its alerts started longer than ``group_wait`` ago, e.g. after a
restart), then every ``group_interval``. At a flush, for each integration of the
route's receiver, the notification log (``notification_log``) decides, with
Alertmanager's rules, whether to notify:

* never notified: only if something is firing;
* a firing alert that was not in the last notification: yes;
* nothing firing any more: yes if the last notification had firing alerts
  (the resolved message; its alerts are sent only with ``send_resolved``);
* ``send_resolved`` and a newly resolved alert: yes;
* every firing alert acknowledged: no repeat (PagerDuty gets one
  ``acknowledge`` event instead);
* otherwise when the last notification is older than ``repeat_interval``.

Silenced and inhibited alerts are left out (``muter.muted``); a route inside
one of its ``mute_time_intervals`` (or outside all its
``active_time_intervals``) sends nothing and logs nothing, so the notification
goes out at the first flush after the interval.

A notification becomes an ``outbox`` row written in the same transaction as
its log entry: after a crash either both exist (the row is delivered, nothing
is re-sent) or neither (the next flush sends it). After a restart, groups whose
alerts are older than ``group_wait`` flush at once and the log holds back all
that was already sent.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import Connection, Engine, delete, select
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from watchkeeper.alerting.config import AlertingConfig
from watchkeeper.alerting.model import Alert, AlertState
from watchkeeper.alerting.notify_templates import build_message
from watchkeeper.alerting.outbox import Outbox
from watchkeeper.alerting.receivers import Integration, integrations
from watchkeeper.alerting.route import Route, build_routes, group_key, group_labels
from watchkeeper.clock import Clock, sleep_or_wake
from watchkeeper.store.models import notification_log

__all__ = ["Dispatcher", "LogEntry", "needs_update"]

log = logging.getLogger("watchkeeper.alerting.dispatch")
_ACK_SUFFIX = "#ack"


class _Muter(Protocol):
    def muted(self, alert: Alert, now: float) -> str | None: ...


class _TimeIntervals(Protocol):
    def active(self, name: str, t: float) -> bool: ...


@dataclass(frozen=True)
class LogEntry:
    """The last notification of a group to one integration."""

    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float


def needs_update(entry: LogEntry | None, firing: set[str], resolved: set[str], *,
                 send_resolved: bool, repeat_interval: float, now: float,
                 all_acked: bool = False, resend_always: bool = False) -> bool:
    """Alertmanager's DedupStage decision, plus acknowledgement (no repeats when all acked)."""
    if entry is None:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    if resend_always:
        return True
    if all_acked:
        return False
    return entry.sent_at < now - repeat_interval


@dataclass(eq=False)
class _Group:
    route: Route
    key: str
    labels: dict[str, str]
    next_flush: float
    flushed: bool = False
    last_flush: float | None = None
    alerts: list[Alert] = field(default_factory=list)


def _upsert_log(conn: Connection, key: str, receiver: str, firing: Sequence[str],
                resolved: Sequence[str], now: float) -> None:
    values = {"group_key": key, "receiver": receiver, "firing": json.dumps(sorted(firing)),
              "resolved": json.dumps(sorted(resolved)), "sent_at": now}
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pstmt = pg_insert(notification_log).values(**values)
        conn.execute(pstmt.on_conflict_do_update(
            index_elements=["group_key", "receiver"],
            set_={k: pstmt.excluded[k] for k in ("firing", "resolved", "sent_at")}))
        return
    stmt = sqlite_insert(notification_log).values(**values)
    conn.execute(stmt.on_conflict_do_update(
        index_elements=["group_key", "receiver"],
        set_={k: stmt.excluded[k] for k in ("firing", "resolved", "sent_at")}))


class Dispatcher:
    """Turns the current alerts into outbox rows by the routing tree of ``config``.

    ``alerts()`` returns the alerts to consider: firing ones and those resolved
    recently (e.g. ``store.current(resolved_since=now - 3600)``); pending ones
    are ignored. ``muter.muted(alert, now)`` returns why an alert is muted, or
    None. ``time_intervals.active(name, t)`` answers for the routes' mute/active
    intervals. ``run()`` is owned by the server; ``wake()`` (safe from any
    thread) makes it look at the alerts at once.
    """

    def __init__(self, engine: Engine, *, config: AlertingConfig,
                 alerts: Callable[[], list[Alert]], muter: _Muter | None,
                 time_intervals: _TimeIntervals | None, outbox: Outbox, clock: Clock,
                 external_url: str | None = None) -> None:
        self.engine = engine
        self.config = config
        self.alerts = alerts
        self.muter = muter
        self.time_intervals = time_intervals
        self.outbox = outbox
        self.clock = clock
        self.external_url = external_url if external_url is not None else config.external_url
        self.root: Route | None = build_routes(config.route) if config.route else None
        self._integrations: dict[str, list[Integration]] = {
            r.name: integrations(r) for r in config.receivers}
        self._groups: dict[tuple[str, str], _Group] = {}
        self._event: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._muter_takes_firing = False
        if muter is not None:
            try:
                self._muter_takes_firing = "firing" in inspect.signature(muter.muted).parameters
            except (TypeError, ValueError):
                pass

    # -- waking ------------------------------------------------------------------------------
    def wake(self) -> None:
        """Look at the alerts now (call after they changed). Safe from any thread."""
        if self._event is None or self._loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._event.set()
        elif not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._event.set)

    async def run(self) -> None:
        """Route and flush until cancelled."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        while True:
            self._event.clear()
            try:
                self.tick()
            except Exception:  # a database hiccup must not end notifications for good
                log.exception("alert dispatch failed; retrying in 1s")
                await self.clock.sleep(1.0)
                continue
            deadline = self.next_deadline()
            delay = None if deadline is None else max(0.0, deadline - self.clock.time())
            await self._wait(delay)

    async def _wait(self, seconds: float | None) -> None:
        assert self._event is not None
        if seconds is None:
            await self._event.wait()
            return
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        await sleep_or_wake(self.clock, seconds, self._event)

    def next_deadline(self) -> float | None:
        return min((g.next_flush for g in self._groups.values()), default=None)

    # -- one pass ----------------------------------------------------------------------------
    def tick(self) -> int:
        """Group the current alerts and flush every group that is due. Returns rows enqueued."""
        if self.root is None:
            return 0
        now = self.clock.time()
        current = [a for a in self.alerts()
                   if a.state == AlertState.FIRING
                   or (a.state == AlertState.RESOLVED and a.fired_at is not None)]
        for g in self._groups.values():
            g.alerts = []
        for a in current:
            for route in self.root.match(a.labels):
                gk = group_key(route, a.labels)
                found = self._groups.get((route.id, gk))
                if found is None:
                    found = _Group(route, gk, group_labels(route, a.labels),
                                   next_flush=now + route.group_wait)
                    self._groups[(route.id, gk)] = found
                g = found
                g.alerts.append(a)
                started = a.fired_at if a.fired_at is not None else a.active_at
                if not g.flushed and started + route.group_wait <= now:
                    g.next_flush = min(g.next_flush, now)
        enqueued = 0
        firing = [a for a in current if a.state == AlertState.FIRING]
        for gid, g in list(self._groups.items()):
            if g.next_flush > now + 1e-9:
                continue
            if not g.alerts:
                del self._groups[gid]  # an empty group ends, as in Alertmanager
                continue
            g.next_flush = now + g.route.group_interval
            g.flushed = True
            enqueued += self._flush(g, now, firing)
            g.last_flush = now
        return enqueued

    def _route_muted(self, route: Route, now: float) -> bool:
        ti = self.time_intervals
        if ti is None:
            return False
        if route.mute_time_intervals and any(ti.active(n, now) for n in route.mute_time_intervals):
            return True
        if route.active_time_intervals and not any(ti.active(n, now)
                                                   for n in route.active_time_intervals):
            return True
        return False

    def _muted(self, alert: Alert, now: float, firing: list[Alert]) -> bool:
        if self.muter is None:
            return False
        if self._muter_takes_firing:
            return self.muter.muted(alert, now, firing=firing) is not None  # type: ignore[call-arg]
        return self.muter.muted(alert, now) is not None

    def _entries(self, conn: Connection, key: str) -> dict[str, LogEntry]:
        rows = conn.execute(select(notification_log).where(notification_log.c.group_key == key))
        return {r.receiver: LogEntry(frozenset(json.loads(r.firing)),
                                     frozenset(json.loads(r.resolved)), r.sent_at) for r in rows}

    def _flush(self, g: _Group, now: float, firing_now: list[Alert]) -> int:
        route = g.route
        if self._route_muted(route, now):
            log.debug("group %s: route %s is in a mute time interval", g.key, route.path)
            return 0
        alerts = [a for a in g.alerts if not self._muted(a, now, firing_now)]
        notified: list[str] = []
        with self.engine.begin() as conn:
            entries = self._entries(conn, g.key)
            for integ in self._integrations.get(route.receiver, []):
                if self._flush_one(conn, g, integ, alerts, entries, now):
                    notified.append(integ.key)
        for key in notified:
            self.outbox.notify(key)
        return len(notified)

    def _flush_one(self, conn: Connection, g: _Group, integ: Integration, alerts: list[Alert],
                   entries: dict[str, LogEntry], now: float) -> bool:
        entry = entries.get(integ.key)
        last = max(g.last_flush if g.last_flush is not None else float("-inf"),
                   entry.sent_at if entry else float("-inf"))
        fir = [a for a in alerts if a.state == AlertState.FIRING]
        res = [a for a in alerts if a.state == AlertState.RESOLVED
               and ((entry is not None and a.fingerprint in entry.firing)
                    or (a.resolved_at is not None and a.resolved_at > last))]
        fset = {a.fingerprint for a in fir}
        rset = {a.fingerprint for a in res}
        all_acked = bool(fir) and all(a.acked_by is not None for a in fir)
        extras: dict[str, Any] = {"action": "notify", "acked": all_acked,
                                  "group_interval": g.route.group_interval}
        if needs_update(entry, fset, rset, send_resolved=integ.send_resolved,
                        repeat_interval=g.route.repeat_interval, now=now, all_acked=all_acked,
                        resend_always=integ.resend_always):
            send = fir + (res if integ.send_resolved else [])
            _upsert_log(conn, g.key, integ.key, sorted(fset), sorted(rset), now)
            conn.execute(delete(notification_log).where(
                notification_log.c.group_key == g.key,
                notification_log.c.receiver == integ.key + _ACK_SUFFIX))
            if not send:
                return False  # logged (the group is cleared) but nothing to tell this receiver
            msg = build_message(receiver=integ.receiver, group_key=g.key, group_labels=g.labels,
                                alerts=send, external_url=self.external_url, extras=extras)
            self.outbox.enqueue(conn, key=integ.key, group_key=g.key, payload=msg, now=now)
            return True
        if integ.kind == "pagerduty" and all_acked and entry is not None:
            ack = entries.get(integ.key + _ACK_SUFFIX)
            if ack is None or ack.firing != frozenset(fset):
                _upsert_log(conn, g.key, integ.key + _ACK_SUFFIX, sorted(fset), [], now)
                extras["action"] = "acknowledge"
                msg = build_message(receiver=integ.receiver, group_key=g.key,
                                    group_labels=g.labels, alerts=fir,
                                    external_url=self.external_url, extras=extras)
                self.outbox.enqueue(conn, key=integ.key, group_key=g.key, payload=msg, now=now)
                return True
        return False

    # -- introspection -----------------------------------------------------------------------
    def groups(self) -> list[dict[str, Any]]:
        """The aggregation groups now: key, receiver, route path, alert count, next flush."""
        return [{"groupKey": g.key, "receiver": g.route.receiver, "route": g.route.path,
                 "labels": dict(g.labels), "alerts": len(g.alerts), "next_flush": g.next_flush}
                for g in self._groups.values()]
