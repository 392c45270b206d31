"""One SSH connection per host, opened once and reused by every command and step.

The pool owns the connections: ``get`` opens one on first use (concurrent callers
for the same host wait for the same handshake), ``discard`` forgets a dead one,
``close`` closes them all. Each connection also carries a session limit, because
OpenSSH refuses more than ``MaxSessions`` (default 10) open channels per connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["ConnectionPool", "PooledConnection"]

DEFAULT_MAX_SESSIONS = 10


@dataclass(eq=False)
class PooledConnection:
    """A live connection and the semaphore that bounds its open sessions."""

    conn: Any
    sessions: asyncio.Semaphore
    uses: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def closed(self) -> bool:
        # asyncssh sets the transport to None once the connection is lost or closed.
        return getattr(self.conn, "_transport", None) is None


class ConnectionPool:
    """Connections by key; ``connect(key)`` makes one when there is none.

    ``connect`` raises whatever the transport raises (translated by the caller);
    a failed connect is not cached, so the next ``get`` tries again.
    """

    def __init__(self, max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        self.max_sessions = max_sessions
        self._conns: dict[Hashable, PooledConnection] = {}
        self._pending: dict[Hashable, asyncio.Future[PooledConnection]] = {}
        self.opened = 0

    async def get(self, key: Hashable, connect: Callable[[], Awaitable[Any]]) -> PooledConnection:
        entry = self._conns.get(key)
        if entry is not None and not entry.closed:
            entry.uses += 1
            return entry
        if entry is not None:
            self._conns.pop(key, None)
        pending = self._pending.get(key)
        if pending is not None:
            entry = await asyncio.shield(pending)
            entry.uses += 1
            return entry
        fut: asyncio.Future[PooledConnection] = asyncio.get_running_loop().create_future()
        self._pending[key] = fut
        try:
            conn = await connect()
        except asyncio.CancelledError:
            fut.cancel()
            raise
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # retrieved: waiters re-raise it, nobody else has to
            raise
        finally:
            self._pending.pop(key, None)
        entry = PooledConnection(conn, asyncio.Semaphore(self.max_sessions), uses=1)
        self._conns[key] = entry
        self.opened += 1
        fut.set_result(entry)
        return entry

    def discard(self, key: Hashable, entry: PooledConnection | None = None) -> None:
        """Forget ``key``'s connection (when it died); closes it if still open."""
        current = self._conns.get(key)
        if current is not None and (entry is None or current is entry):
            del self._conns[key]
            current.conn.close()

    def __len__(self) -> int:
        return len(self._conns)

    async def close(self) -> None:
        # Newest first: connections tunnelled through a jump host close before the jump.
        conns = list(reversed(self._conns.values()))
        self._conns.clear()
        for e in conns:
            e.conn.close()
        for e in conns:
            await e.conn.wait_closed()
