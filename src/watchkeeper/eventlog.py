"""The append-only, hash-chained event log: who did what, when.

Each entry's hash is SHA-256 over its predecessor's hash and its own canonical
content, so editing any entry breaks every hash after it. Deleting entries at
the end leaves a shorter, still consistent chain; to catch that, the newest
sequence number and hash are also written to an anchor file in the data dir
(``eventlog.head``), outside the database.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.exc import IntegrityError

from watchkeeper.clock import Clock, SystemClock
from watchkeeper.store.models import events

__all__ = ["Event", "EventLog", "Problem", "GENESIS"]

GENESIS = "0" * 64
_APPEND_TRIES = 20  # an append losing the race for a seq to another process tries again
# PostgreSQL: appends from every process take this transaction lock, so they queue
# instead of racing for the next seq (the number is arbitrary and only has to be fixed)
_PG_APPEND_LOCK = 0x77_6B_65_76  # "wkev"


@dataclass(frozen=True)
class Event:
    seq: int
    ts: float
    kind: str
    actor: str
    subject: str
    data: dict[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "ts": self.ts, "kind": self.kind, "actor": self.actor,
                "subject": self.subject, "data": self.data, "hash": self.hash}


@dataclass(frozen=True)
class Problem:
    """One break in the chain found by :meth:`EventLog.verify`."""

    seq: int
    message: str

    def __str__(self) -> str:
        return f"entry {self.seq}: {self.message}"


def _digest(prev_hash: str, seq: int, ts: float, kind: str, actor: str, subject: str, data: str) -> str:
    body = json.dumps([prev_hash, seq, repr(float(ts)), kind, actor, subject, data],
                      separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(body.encode()).hexdigest()


class EventLog:
    """Append and read events; ``verify`` proves nothing was edited or deleted."""

    def __init__(self, engine: Engine, *, anchor: Path | None = None, clock: Clock | None = None) -> None:
        self.engine = engine
        self.anchor = anchor
        self.clock = clock or SystemClock()
        self._lock = threading.Lock()

    def append(self, kind: str, subject: str, data: Mapping[str, Any] | None = None, *,
               actor: str = "watchkeeper") -> Event:
        """Record one event and return it."""
        payload = json.dumps(dict(data or {}), sort_keys=True, separators=(",", ":"), default=str)
        for attempt in range(_APPEND_TRIES):
            try:
                with self._lock, self.engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_APPEND_LOCK})
                    last = conn.execute(select(events.c.seq, events.c.hash)
                                        .order_by(events.c.seq.desc()).limit(1)).first()
                    seq = (last.seq + 1) if last else 1
                    prev = last.hash if last else GENESIS
                    ts = self.clock.time()
                    digest = _digest(prev, seq, ts, kind, actor, subject, payload)
                    conn.execute(insert(events).values(seq=seq, ts=ts, kind=kind, actor=actor,
                                                       subject=subject, data=payload, prev_hash=prev,
                                                       hash=digest))
                    self._write_anchor(seq, digest)
            except IntegrityError:
                # Another process (a CLI command, a second server on PostgreSQL) appended
                # the same seq first: read its entry and chain after it.
                if attempt == _APPEND_TRIES - 1:
                    raise
                continue
            return Event(seq, ts, kind, actor, subject, json.loads(payload), prev, digest)
        raise AssertionError("unreachable")  # pragma: no cover

    def _write_anchor(self, seq: int, digest: str) -> None:
        if self.anchor is None:
            return
        tmp = self.anchor.with_suffix(".tmp")
        tmp.write_text(f"{seq} {digest}\n")
        os.replace(tmp, self.anchor)

    def list(self, *, kind: str | None = None, since: float | None = None, limit: int = 100,
             subject: str | None = None) -> builtins.list[Event]:
        """The newest ``limit`` events (oldest first), optionally of one kind prefix."""
        q = select(events)
        if kind:
            # a literal, case-sensitive prefix on every database: SQLite's LIKE ignores the
            # case of ASCII letters, PostgreSQL's does not
            q = q.where(func.substr(events.c.kind, 1, len(kind)) == kind)
        if since is not None:
            q = q.where(events.c.ts >= since)
        if subject:
            q = q.where(events.c.subject == subject)
        q = q.order_by(events.c.seq.desc()).limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [self._event(r) for r in reversed(rows)]

    @staticmethod
    def _event(r: Any) -> Event:
        return Event(r.seq, r.ts, r.kind, r.actor, r.subject, json.loads(r.data), r.prev_hash, r.hash)

    def _iter_rows(self, batch: int = 5000) -> Iterator[Any]:
        after = 0
        while True:
            with self.engine.connect() as conn:
                rows = conn.execute(select(events).where(events.c.seq > after)
                                    .order_by(events.c.seq).limit(batch)).all()
            if not rows:
                return
            yield from rows
            after = rows[-1].seq

    def verify(self) -> builtins.list[Problem]:
        """Walk the whole chain; return every problem found (empty when intact)."""
        problems: builtins.list[Problem] = []
        expected_seq = 1
        prev = GENESIS
        last_seq, last_hash = 0, GENESIS
        for r in self._iter_rows():
            if r.seq != expected_seq:
                problems.append(Problem(expected_seq, f"missing (entries {expected_seq}..{r.seq - 1} "
                                                      "were deleted)"))
            if r.prev_hash != prev:
                problems.append(Problem(r.seq, "does not follow its predecessor "
                                               "(an earlier entry was edited or deleted)"))
            digest = _digest(r.prev_hash, r.seq, r.ts, r.kind, r.actor, r.subject, r.data)
            if digest != r.hash:
                problems.append(Problem(r.seq, "was edited after it was written (hash mismatch)"))
            prev = r.hash
            expected_seq = r.seq + 1
            last_seq, last_hash = r.seq, r.hash
        if self.anchor is not None and self.anchor.exists():
            try:
                seq_text, anchor_hash = self.anchor.read_text().split()
                anchor_seq = int(seq_text)
            except ValueError:
                problems.append(Problem(0, f"anchor file {self.anchor} is unreadable"))
            else:
                if anchor_seq > last_seq:
                    problems.append(Problem(last_seq + 1, f"missing (entries {last_seq + 1}.."
                                                          f"{anchor_seq} were deleted from the end)"))
                elif anchor_seq == last_seq and anchor_hash != last_hash:
                    problems.append(Problem(last_seq, "does not match the anchor (it was replaced)"))
        elif self.anchor is not None and last_seq > 0:
            # deleting the tail and the anchor together must not look like an intact log
            problems.append(Problem(0, f"anchor file {self.anchor} is missing; entries at the end "
                                       "may have been deleted"))
        return problems

    def count(self) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(events)).scalar_one())
