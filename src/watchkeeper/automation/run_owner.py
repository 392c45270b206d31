"""Who executes a run: host name, process id and process start time, and whether it still lives.

A run is recorded with the process that executes it (a server, or a ``watchkeeper run``
command line against the same data dir). When a server starts it marks ``interrupted``
only runs whose owner is gone: on this host, the process with that pid no longer exists,
is a zombie, or is another process that reused the pid (its start time differs); on
another host (several machines sharing one database), the owner's heartbeat -- refreshed
by :class:`~watchkeeper.automation.runs.RunStore` while it has active runs -- is older
than the staleness limit. Runs recorded before owners were (no owner) count as gone.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

__all__ = ["RunOwner", "owner_alive"]

# /proc start times come in clock ticks (1/100 s) on top of a boot time: allow for rounding
_START_TOLERANCE = 0.05


@dataclass(frozen=True)
class RunOwner:
    """A process: ``host`` (its host name), ``pid``, ``started`` (epoch seconds)."""

    host: str
    pid: int
    started: float

    @classmethod
    def current(cls) -> RunOwner:
        """This process."""
        started = _start_time(os.getpid())
        return cls(socket.gethostname(), os.getpid(), started if started is not None else 0.0)

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}"


def _start_time(pid: int) -> float | None:
    """The start time of process ``pid`` (epoch seconds), or None if it is gone or a zombie."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped: gone
            return None
        return float(proc.create_time())
    except psutil.NoSuchProcess:
        return None
    except psutil.AccessDenied:  # exists, but we may not look: assume it is the owner
        return -1.0


def owner_alive(owner: RunOwner | None, heartbeat_at: float | None, *, now: float,
                stale_after: float, this_host: str | None = None) -> bool:
    """Whether the run's owner may still be executing it.

    ``owner`` None (a run recorded before owners were): False. Same host: the process is
    there and started when the owner did. Another host: its heartbeat is newer than
    ``stale_after`` seconds before ``now``.
    """
    if owner is None:
        return False
    host = this_host if this_host is not None else socket.gethostname()
    if owner.host == host:
        started = _start_time(owner.pid)
        if started is None:
            return False
        return started < 0 or abs(started - owner.started) <= _START_TOLERANCE
    return heartbeat_at is not None and now - heartbeat_at <= stale_after
