"""The persistent outbox: every notification to deliver, tried until delivered, dead or too old.

The dispatcher writes one row per receiver integration (``outbox``), in the same
transaction as its notification-log entry, so a crash either keeps both or
neither. :class:`DeliveryService` runs one worker per integration: each takes
its oldest pending row, calls the receiver with a per-attempt timeout, records
the attempt (``notification_attempts``) and marks the row ``sent``, or schedules
the next try with exponential backoff (``backoff_initial`` doubling to
``backoff_max``, with jitter), or marks it ``dead`` when the error is permanent
(HTTP 4xx but 429, a refused login) or the row is older than ``max_age``.
Rows of one integration go out in order; a slow or down integration only holds
up its own rows. Pending rows left by a previous run are picked up at start
(at-least-once: a row whose send was cut by a crash is sent again, with the
same group key).

Database work is small single-row statements done on the event loop thread:
a thread hop per statement would cost more than the statement (and would let
a fake autojumping clock run ahead of the database).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, func, insert, select, update

from watchkeeper.alerting.receivers.base import DeliveryError, Receiver
from watchkeeper.clock import Clock, sleep_or_wake
from watchkeeper.store.models import notification_attempts, outbox

__all__ = ["DeliveryService", "Outbox", "OutboxItem", "split_key"]

log = logging.getLogger("watchkeeper.alerting.outbox")
T = TypeVar("T")


def split_key(key: str) -> tuple[str, str]:
    """``"team/webhook[0]"`` -> ``("team", "webhook[0]")`` (receiver names may hold ``/``)."""
    receiver, _, integration = key.rpartition("/")
    return receiver, integration


@dataclass(frozen=True)
class OutboxItem:
    id: int
    receiver: str
    integration: str
    group_key: str
    payload: dict[str, Any]
    created_at: float
    next_attempt_at: float
    attempts: int
    status: str
    last_error: str | None
    sent_at: float | None

    @property
    def key(self) -> str:
        return f"{self.receiver}/{self.integration}"


def _item(row: Any) -> OutboxItem:
    return OutboxItem(row.id, row.receiver, row.integration, row.group_key, json.loads(row.payload),
                      row.created_at, row.next_attempt_at, row.attempts, row.status,
                      row.last_error, row.sent_at)


class Outbox:
    """The ``outbox`` and ``notification_attempts`` tables."""

    def __init__(self, engine: Engine, clock: Clock) -> None:
        self.engine = engine
        self.clock = clock
        self._listeners: list[Callable[[str], None]] = []

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call ``callback(key)`` after a row for integration ``key`` was committed."""
        self._listeners.append(callback)

    def notify(self, key: str) -> None:
        for cb in self._listeners:
            cb(key)

    def enqueue(self, conn: Connection, *, key: str, group_key: str, payload: dict[str, Any],
                now: float) -> int:
        """Insert a pending row inside the caller's transaction; call :meth:`notify` after commit."""
        receiver, integration = split_key(key)
        res = conn.execute(insert(outbox).values(
            receiver=receiver, integration=integration, group_key=group_key,
            payload=json.dumps(payload, sort_keys=True), created_at=now, next_attempt_at=now,
            attempts=0, status="pending"))
        pk = res.inserted_primary_key
        assert pk is not None
        return int(pk[0])

    def add(self, *, key: str, group_key: str, payload: dict[str, Any]) -> int:
        """Enqueue in a transaction of its own and notify (for callers without a transaction)."""
        with self.engine.begin() as conn:
            oid = self.enqueue(conn, key=key, group_key=group_key, payload=payload,
                               now=self.clock.time())
        self.notify(key)
        return oid

    def next_pending(self, key: str) -> OutboxItem | None:
        """The oldest pending row of integration ``key``."""
        receiver, integration = split_key(key)
        with self.engine.connect() as conn:
            row = conn.execute(
                select(outbox).where(outbox.c.status == "pending", outbox.c.receiver == receiver,
                                     outbox.c.integration == integration)
                .order_by(outbox.c.id).limit(1)).first()
        return _item(row) if row else None

    def pending_keys(self) -> set[str]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.receiver, outbox.c.integration)
                                .where(outbox.c.status == "pending").distinct()).all()
        return {f"{r}/{i}" for r, i in rows}

    def items(self, *, status: str | None = None, group_key: str | None = None,
              key: str | None = None) -> list[OutboxItem]:
        """Rows, oldest first, optionally only one status / group / integration."""
        q = select(outbox).order_by(outbox.c.id)
        if status is not None:
            q = q.where(outbox.c.status == status)
        if group_key is not None:
            q = q.where(outbox.c.group_key == group_key)
        if key is not None:
            receiver, integration = split_key(key)
            q = q.where(outbox.c.receiver == receiver, outbox.c.integration == integration)
        with self.engine.connect() as conn:
            return [_item(r) for r in conn.execute(q)]

    def get(self, outbox_id: int) -> OutboxItem:
        with self.engine.connect() as conn:
            row = conn.execute(select(outbox).where(outbox.c.id == outbox_id)).first()
        if row is None:
            from watchkeeper.errors import NotFoundError

            raise NotFoundError(f"no outbox entry {outbox_id}")
        return _item(row)

    def attempts(self, outbox_id: int) -> list[dict[str, Any]]:
        """Every attempt for a row: ts, ok, duration, status_code, error."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(notification_attempts)
                                .where(notification_attempts.c.outbox_id == outbox_id)
                                .order_by(notification_attempts.c.id)).all()
        return [{"ts": r.ts, "ok": r.ok, "duration": r.duration, "status_code": r.status_code,
                 "error": r.error} for r in rows]

    def record(self, item: OutboxItem, *, now: float, ok: bool, duration: float,
               status_code: int | None, error: str | None, status: str,
               next_attempt_at: float | None = None) -> None:
        """Record one attempt and the row's new status in one transaction."""
        with self.engine.begin() as conn:
            conn.execute(insert(notification_attempts).values(
                outbox_id=item.id, ts=now, ok=ok, duration=duration, status_code=status_code,
                error=error))
            values: dict[str, Any] = {"attempts": outbox.c.attempts + 1, "status": status,
                                      "last_error": error}
            if ok:
                values["sent_at"] = now
            if next_attempt_at is not None:
                values["next_attempt_at"] = next_attempt_at
            conn.execute(update(outbox).where(outbox.c.id == item.id).values(**values))

    def kill(self, key: str, reason: str) -> int:
        """Mark every pending row of ``key`` dead (its integration is gone). Returns the count."""
        receiver, integration = split_key(key)
        with self.engine.begin() as conn:
            res = conn.execute(update(outbox).where(
                outbox.c.status == "pending", outbox.c.receiver == receiver,
                outbox.c.integration == integration).values(status="dead", last_error=reason))
        return int(res.rowcount or 0)

    def counts(self) -> dict[str, int]:
        """Rows per status (for /metrics and the API)."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(outbox.c.status, func.count()).group_by(outbox.c.status))
            return {str(s): int(n) for s, n in rows.tuples()}


async def race_timeout(clock: Clock, seconds: float, work: Awaitable[T]) -> T:
    """Await ``work``, cancelling it after ``seconds`` of ``clock`` time (TimeoutError).

    Unlike ``asyncio.timeout`` this follows the given clock, so a fake clock
    decides when a hanging receiver is cut off.
    """
    task = asyncio.ensure_future(work)
    timer = asyncio.ensure_future(clock.sleep(seconds))
    try:
        await asyncio.wait({task, timer}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (task, timer):
            if not t.done():
                t.cancel()
        await asyncio.gather(task, timer, return_exceptions=True)
    if task.cancelled():
        raise TimeoutError(f"no answer within {seconds:g}s")
    return task.result()


class DeliveryService:
    """Delivers outbox rows through ``receivers`` (integration key -> Receiver).

    ``run()`` is owned by the server (a task in its TaskGroup) and runs until
    cancelled; ``attempt_timeout`` cuts off a receiver that hangs.
    """

    def __init__(self, outbox: Outbox, receivers: Mapping[str, Receiver], clock: Clock, *,
                 attempt_timeout: float = 30.0, backoff_initial: float = 1.0,
                 backoff_max: float = 300.0, backoff_factor: float = 2.0, jitter: float = 0.2,
                 max_age: float = 86400.0, rng: random.Random | None = None) -> None:
        self.outbox = outbox
        self.receivers = receivers
        self.clock = clock
        self.attempt_timeout = attempt_timeout
        self.backoff_initial = backoff_initial
        self.backoff_max = backoff_max
        self.backoff_factor = backoff_factor
        self.jitter = jitter
        self.max_age = max_age
        self.rng = rng or random.Random()
        self._events: dict[str, asyncio.Event] = {k: asyncio.Event() for k in receivers}
        outbox.add_listener(self._wake)

    def _wake(self, key: str) -> None:
        ev = self._events.get(key)
        if ev is not None:
            ev.set()

    def backoff(self, attempts: int) -> float:
        """Seconds to wait after the ``attempts``-th failed attempt (1, 2, 4 ... capped, jittered)."""
        base = min(self.backoff_max, self.backoff_initial * self.backoff_factor ** (attempts - 1))
        return base * (1.0 - self.jitter * self.rng.random())

    async def run(self) -> None:
        """Run one worker per integration until cancelled."""
        for key in self.outbox.pending_keys() - set(self.receivers):
            n = self.outbox.kill(key, "the integration is no longer configured")
            log.warning("outbox: %d pending notification(s) for %s dropped: the integration is "
                        "no longer configured", n, key)
        async with asyncio.TaskGroup() as tg:
            for key in self.receivers:
                tg.create_task(self._worker(key), name=f"deliver {key}")

    async def _wait(self, event: asyncio.Event, seconds: float | None) -> None:
        """Until ``event`` is set or ``seconds`` of clock time pass."""
        await sleep_or_wake(self.clock, seconds, event)

    async def _worker(self, key: str) -> None:
        event = self._events[key]
        while True:
            event.clear()
            try:
                item = self.outbox.next_pending(key)
            except Exception:  # the database is briefly unavailable: try again soon
                log.exception("outbox: cannot read pending notifications for %s", key)
                await self.clock.sleep(self.backoff_initial)
                continue
            if item is None:
                await self._wait(event, None)
                continue
            delay = item.next_attempt_at - self.clock.time()
            if delay > 1e-9:
                # a newer row does not overtake the head: rows of one integration stay in order
                await self.clock.sleep(delay)
                continue
            await self.attempt(item)

    async def attempt(self, item: OutboxItem) -> bool:
        """Try ``item`` once, record the attempt; True when delivered."""
        receiver = self.receivers[item.key]
        start = self.clock.monotonic()
        ok, code, error, retryable = False, None, None, True
        try:
            await race_timeout(self.clock, self.attempt_timeout, receiver.send(item.payload))
            ok = True
        except DeliveryError as exc:
            code, error, retryable = exc.status_code, exc.message, exc.retryable
        except TimeoutError:
            error = f"{item.integration}: no answer within {self.attempt_timeout:g}s (attempt cut off)"
        except Exception as exc:  # a bug in a receiver must not stop delivery of the others
            log.exception("outbox: %s failed unexpectedly", item.key)
            error = f"{item.integration}: internal error: {type(exc).__name__}"
        now = self.clock.time()
        duration = self.clock.monotonic() - start
        if ok:
            self.outbox.record(item, now=now, ok=True, duration=duration, status_code=code,
                               error=None, status="sent")
            return True
        attempts = item.attempts + 1
        if not retryable:
            status, nxt = "dead", None
            log.warning("outbox: %s gave up on notification %d: %s", item.key, item.id, error)
        elif now - item.created_at >= self.max_age:
            status, nxt = "dead", None
            error = f"{error} (gave up after {attempts} attempts: older than max age)"
            log.warning("outbox: %s gave up on notification %d after %d attempts: %s",
                        item.key, item.id, attempts, error)
        else:
            status, nxt = "pending", now + self.backoff(attempts)
        self.outbox.record(item, now=now, ok=False, duration=duration, status_code=code,
                           error=error, status=status, next_attempt_at=nxt)
        return False
