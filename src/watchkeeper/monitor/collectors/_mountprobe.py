"""statvfs with a per-mount timeout, so a hung mount (dead NFS server) never stalls collection.

The calls run in order on one daemon worker thread (one handoff per collection,
not one thread per mount). If a call outlives ``timeout``, its mount is reported
hung and remembered; the worker is abandoned with it (it exits when the call
finally returns) and the remaining mounts go to a fresh worker. A mount that hung
is not probed again while its old call is still stuck, so a dead server never
piles up threads: at most one stuck thread per hung mount.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["HUNG", "MountProber"]


class _Hung:
    def __repr__(self) -> str:
        return "HUNG"


HUNG: Any = _Hung()
"""Result for a mount whose statvfs did not return within the timeout (or still has not)."""


class _Job:
    __slots__ = ("abandoned", "cond", "index", "paths", "results", "started")

    def __init__(self, paths: list[str]) -> None:
        self.paths = paths
        self.results: dict[str, Any] = {}
        self.index = 0  # number of calls that have returned
        self.started = time.monotonic()  # when the current call began
        self.abandoned = False
        self.cond = threading.Condition(threading.Lock())


class MountProber:
    """Run ``statvfs(path)`` for many paths, each bounded by ``timeout`` seconds.

    ``statvfs`` is injectable (tests pass one that blocks). Results are the statvfs
    result, the exception it raised, or :data:`HUNG`.
    """

    def __init__(self, statvfs: Callable[[str], Any] = os.statvfs, timeout: float = 2.0) -> None:
        self.statvfs = statvfs
        self.timeout = timeout
        self._stuck: dict[str, tuple[_Job, int]] = {}
        self._queue: queue.SimpleQueue[_Job | None] | None = None
        self._lock = threading.Lock()  # one probe round at a time

    @property
    def stuck(self) -> list[str]:
        """Paths whose statvfs call has hung and not returned yet."""
        return [p for p, (job, i) in self._stuck.items() if job.index <= i]

    def _worker(self, q: queue.SimpleQueue[_Job | None]) -> None:
        statvfs = self.statvfs
        while True:
            job = q.get()
            if job is None:
                return
            for i, path in enumerate(job.paths):
                try:
                    result: Any = statvfs(path)
                except Exception as exc:
                    result = exc
                with job.cond:
                    job.index = i + 1
                    if job.abandoned:
                        return  # the caller gave up on us; a new worker serves the queue
                    job.results[path] = result
                    job.started = time.monotonic()
                    job.cond.notify()

    def _submit(self, job: _Job) -> None:
        if self._queue is None:
            q: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
            threading.Thread(target=self._worker, args=(q,), name="watchkeeper-statvfs",
                             daemon=True).start()
            self._queue = q
        self._queue.put(job)

    def probe(self, paths: Sequence[str]) -> dict[str, Any]:
        """statvfs each path; blocks at most ``timeout`` per newly hung path."""
        with self._lock:
            results: dict[str, Any] = {}
            todo: list[str] = []
            for path in paths:
                stuck = self._stuck.get(path)
                if stuck is not None:
                    job, i = stuck
                    if job.index <= i:
                        results[path] = HUNG
                        continue
                    del self._stuck[path]
                todo.append(path)
            timeout = self.timeout
            while todo:
                job = _Job(todo)
                self._submit(job)
                with job.cond:
                    while job.index < len(todo):
                        remaining = job.started + timeout - time.monotonic()
                        if remaining <= 0:
                            break
                        job.cond.wait(remaining)
                    results.update(job.results)
                    if job.index >= len(todo):
                        break
                    hung = job.index
                    job.abandoned = True
                self._queue = None  # the worker is stuck in the hung call
                self._stuck[todo[hung]] = (job, hung)
                results[todo[hung]] = HUNG
                todo = todo[hung + 1:]
            return results

    def close(self) -> None:
        """Let the idle worker thread exit (a stuck one exits when its call returns)."""
        with self._lock:
            if self._queue is not None:
                self._queue.put(None)
                self._queue = None
