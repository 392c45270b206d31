"""Silences: mute alerts matching a set of matchers for a while, as Alertmanager's do.

A silence is *pending* before ``starts_at``, *active* from ``starts_at`` until
``ends_at``, and *expired* from then on (Alertmanager's states; Alertmanager
still calls a silence active at the very instant of its end, which would make
a silence expired "now" look active for that instant: here the end is
exclusive). An
active silence mutes every alert all of whose matchers it matches. Silences
are kept in the ``silences`` table; the ones not yet expired are also held in
memory, since :meth:`Silences.silencing` runs for every alert on every
routing pass.

Creating and updating follow Alertmanager's ``Silences.Set``: a start in the
past becomes now; with an ``id``, the silence is updated in place when only
its end, comment or author change (and, if pending, its start to a time not
in the past); any other change expires the old silence and makes a new one
with a new id. Validation follows Alertmanager too: at least one matcher, at
least one that does not match the empty string, ends not before it starts,
and not in the past.
"""

from __future__ import annotations

import builtins
import json
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

from sqlalchemy import Engine, delete, insert, select, update

from watchkeeper.alerting.matchers import Matcher, matcher_from_api, matcher_to_api, matches
from watchkeeper.alerting.model import format_time
from watchkeeper.clock import Clock
from watchkeeper.errors import InputError, NotFoundError
from watchkeeper.eventlog import EventLog
from watchkeeper.store.models import silences as silences_table

__all__ = ["Silence", "SilenceState", "Silences", "silence_to_api"]

SilenceState = Literal["active", "pending", "expired"]


@dataclass(frozen=True)
class Silence:
    id: str
    matchers: list[Matcher]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    created_at: float = 0.0
    updated_at: float = 0.0

    def state(self, now: float) -> SilenceState:
        if now < self.starts_at:
            return "pending"
        if now >= self.ends_at:
            return "expired"
        return "active"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return matches(self.matchers, labels)


def silence_to_api(s: Silence, now: float) -> dict[str, Any]:
    """Alertmanager API v2's ``gettableSilence``."""
    return {
        "id": s.id,
        "status": {"state": s.state(now)},
        "updatedAt": format_time(s.updated_at),
        "matchers": [matcher_to_api(m) for m in s.matchers],
        "startsAt": format_time(s.starts_at),
        "endsAt": format_time(s.ends_at),
        "createdBy": s.created_by,
        "comment": s.comment,
    }


def _matches_empty(m: Matcher) -> bool:
    # Alertmanager: only = and =~ count; a != or !~ matcher never "matches empty" here
    if m.op == "=":
        return m.value == ""
    if m.op == "=~":
        return m.matches("")
    return False


def _validate(matchers: Sequence[Matcher], starts_at: float, ends_at: float) -> None:
    if not matchers:
        raise InputError("a silence needs at least one matcher")
    if all(_matches_empty(m) for m in matchers):
        raise InputError("at least one matcher must not match the empty string",
                         hint='e.g. alertname="DiskFull"; a matcher like team="" or '
                              'job=~".*" alone would silence everything')
    if ends_at < starts_at:
        raise InputError("a silence cannot end before it starts (endsAt is before startsAt)")


def _row_matchers(text: str) -> list[Matcher]:
    return [matcher_from_api(m) for m in json.loads(text)]


class Silences:
    """The silences of one store. ``eventlog`` records who silenced what."""

    def __init__(self, engine: Engine, clock: Clock, *, eventlog: EventLog | None = None,
                 on_change: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.clock = clock
        self.eventlog = eventlog
        self.on_change = on_change
        self._lock = threading.RLock()
        now = clock.time()
        with engine.connect() as conn:
            rows = conn.execute(select(silences_table)
                                .where(silences_table.c.ends_at > now)).all()
        self._live: dict[str, Silence] = {r.id: self._from_row(r) for r in rows}

    @staticmethod
    def _from_row(r: Any) -> Silence:
        return Silence(r.id, _row_matchers(r.matchers), r.starts_at, r.ends_at, r.created_by,
                       r.comment, r.created_at, r.updated_at)

    def _changed(self, kind: str, s: Silence, actor: str, identity: str | None = None) -> None:
        if self.eventlog is not None:
            data: dict[str, Any] = {
                "matchers": [str(m) for m in s.matchers], "starts_at": s.starts_at,
                "ends_at": s.ends_at, "comment": s.comment, "created_by": s.created_by}
            if identity is not None:
                data["identity"] = identity  # the API token's name (createdBy is the body's)
            self.eventlog.append(kind, f"silence/{s.id}", data, actor=actor)
        if self.on_change is not None:
            self.on_change()

    # -- reading ------------------------------------------------------------------------------
    def get(self, id: str) -> Silence:
        """The silence ``id``; NotFoundError when there is none."""
        with self._lock:
            if id in self._live:
                return self._live[id]
        with self.engine.connect() as conn:
            row = conn.execute(select(silences_table).where(silences_table.c.id == id)).first()
        if row is None:
            raise NotFoundError(f"no silence with id {id!r}",
                                hint="`watchkeeper silence list` shows the silences")
        return self._from_row(row)

    def list(self, *, state: SilenceState | None = None,
             matching: Mapping[str, str] | None = None) -> builtins.list[Silence]:
        """Silences in Alertmanager's order: active (soonest end first), pending (soonest start
        first), then expired (most recently ended first). ``state`` keeps one state only;
        ``matching`` keeps the silences whose matchers match that label set."""
        now = self.clock.time()
        if state in ("active", "pending"):
            with self._lock:
                found = builtins.list(self._live.values())
        else:
            with self.engine.connect() as conn:
                found = [self._from_row(r) for r in conn.execute(select(silences_table)).all()]
        if state is not None:
            found = [s for s in found if s.state(now) == state]
        if matching is not None:
            found = [s for s in found if s.matches(matching)]
        rank = {"active": 0, "pending": 1, "expired": 2}

        def key(s: Silence) -> tuple[int, float, str]:
            st = s.state(now)
            when = s.ends_at if st == "active" else s.starts_at if st == "pending" else -s.ends_at
            return rank[st], when, s.id

        return sorted(found, key=key)

    def silencing(self, labels: Mapping[str, str], now: float) -> builtins.list[str]:
        """Ids of the silences active at ``now`` that match ``labels`` (sorted)."""
        with self._lock:
            live = builtins.list(self._live.values())
        return sorted(s.id for s in live if s.state(now) == "active" and s.matches(labels))

    def to_api(self, s: Silence) -> dict[str, Any]:
        return silence_to_api(s, self.clock.time())

    # -- writing ------------------------------------------------------------------------------
    def add(self, matchers: Sequence[Matcher], *, starts_at: float, ends_at: float,
            created_by: str, comment: str, id: str | None = None,
            identity: str | None = None) -> str:
        """Create a silence (or update silence ``id``) and return its id. ``identity`` (the
        API token's name, when made over HTTP) is recorded in the event log beside
        ``created_by``.

        Raises InputError when the silence is invalid (see the module docstring)
        and NotFoundError when ``id`` names no silence.
        """
        now = self.clock.time()
        matchers = builtins.list(matchers)
        _validate(matchers, starts_at, ends_at)
        if ends_at <= now:
            raise InputError("a silence cannot end in the past (endsAt is not after now)")
        if not created_by.strip():
            raise InputError("a silence needs an author (createdBy)")
        if not comment.strip():
            raise InputError("a silence needs a comment saying why")
        with self._lock:
            prev = self.get(id) if id else None
            if prev is not None and self._can_update(prev, matchers, starts_at, ends_at, now):
                start = prev.starts_at if prev.state(now) == "active" else starts_at
                new = replace(prev, starts_at=start, ends_at=ends_at, created_by=created_by,
                              comment=comment, updated_at=now)
                with self.engine.begin() as conn:
                    conn.execute(update(silences_table).where(silences_table.c.id == new.id)
                                 .values(starts_at=new.starts_at, ends_at=new.ends_at,
                                         created_by=created_by, comment=comment, updated_at=now))
                self._live[new.id] = new
                self._changed("silence.updated", new, created_by, identity)
                return new.id
            if prev is not None and prev.state(now) != "expired":
                self._expire(prev, now, created_by, identity)
            new = Silence(str(uuid.uuid4()), matchers, max(starts_at, now), ends_at, created_by,
                          comment, now, now)
            with self.engine.begin() as conn:
                conn.execute(insert(silences_table).values(
                    id=new.id, matchers=json.dumps([matcher_to_api(m) for m in matchers]),
                    starts_at=new.starts_at, ends_at=new.ends_at, created_by=created_by,
                    comment=comment, created_at=now, updated_at=now))
            self._live[new.id] = new
            self._changed("silence.created", new, created_by, identity)
            return new.id

    @staticmethod
    def _can_update(prev: Silence, matchers: Sequence[Matcher], starts_at: float,
                    ends_at: float, now: float) -> bool:
        if [(m.name, m.op, m.value) for m in prev.matchers] != \
                [(m.name, m.op, m.value) for m in matchers]:
            return False
        st = prev.state(now)
        if st == "active":
            # the API shows times in milliseconds: a start read back from it is the same start
            return abs(starts_at - prev.starts_at) < 0.001 and ends_at > now
        if st == "pending":
            return starts_at >= now
        return False

    def expire(self, id: str, now: float | None = None, *, by: str = "api",
               identity: str | None = None) -> Silence:
        """End silence ``id`` now (a pending one is ended before it starts).

        Raises NotFoundError for an unknown id and InputError when it already expired.
        """
        now = self.clock.time() if now is None else now
        with self._lock:
            s = self.get(id)
            if s.state(now) == "expired":
                raise InputError(f"silence {id} already expired")
            return self._expire(s, now, by, identity)

    def _expire(self, s: Silence, now: float, by: str, identity: str | None = None) -> Silence:
        new = replace(s, starts_at=min(s.starts_at, now), ends_at=now, updated_at=now)
        with self.engine.begin() as conn:
            conn.execute(update(silences_table).where(silences_table.c.id == s.id)
                         .values(starts_at=new.starts_at, ends_at=now, updated_at=now))
        self._live.pop(s.id, None)
        self._changed("silence.expired", new, by, identity)
        return new

    def gc(self, now: float) -> None:
        """Drop silences that have expired from the in-memory set (they stay in the table)."""
        with self._lock:
            for sid in [k for k, s in self._live.items() if s.ends_at <= now]:
                del self._live[sid]

    def purge(self, older_than: float) -> int:
        """Delete silences that ended before ``older_than``; returns how many."""
        with self._lock, self.engine.begin() as conn:
            n = conn.execute(delete(silences_table)
                             .where(silences_table.c.ends_at < older_than)).rowcount
            for sid in [k for k, s in self._live.items() if s.ends_at < older_than]:
                del self._live[sid]
        return int(n or 0)
