"""One timer wheel for everything periodic: checks, collectors, compaction, retention.

Jobs are async callables run every ``interval`` seconds (monotonic clock),
first after an optional ``first_delay`` plus jitter. A job still running when
it is due again is skipped (and counted), never piled up. Jobs marked
``limited`` share one concurrency limit (``max_concurrent``).
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from watchkeeper.clock import Clock, SystemClock, sleep_or_wake

__all__ = ["Scheduler", "Job"]

log = logging.getLogger(__name__)


@dataclass
class Job:
    key: str
    interval: float
    func: Callable[[], Awaitable[None]]
    limited: bool = True
    jitter: float = 0.0
    runs: int = 0
    skipped: int = 0
    failures: int = 0
    running: bool = False
    generation: int = 0
    next_due: float = 0.0
    last_error: str | None = field(default=None)


class Scheduler:
    """Run jobs on time under one TaskGroup; ``run()`` returns only when cancelled."""

    def __init__(self, *, clock: Clock | None = None, max_concurrent: int = 100,
                 rng: random.Random | None = None) -> None:
        self.clock = clock or SystemClock()
        self.jobs: dict[str, Job] = {}
        self._heap: list[tuple[float, int, str, int]] = []
        self._seq = 0
        self._limit = asyncio.Semaphore(max_concurrent)
        self._wake = asyncio.Event()
        self._rng = rng or random.Random()
        self._tasks: set[asyncio.Task[None]] = set()

    def add(self, key: str, interval: float, func: Callable[[], Awaitable[None]], *,
            limited: bool = True, jitter: float = 0.0, first_delay: float = 0.0) -> Job:
        """Schedule ``func`` every ``interval`` seconds; replaces a job with the same key.

        Raises ValueError when ``interval`` is not positive (the job would run in a busy loop).
        """
        if not interval > 0:
            raise ValueError(f"job {key}: interval must be greater than 0, got {interval!r}")
        old = self.jobs.get(key)
        job = Job(key, interval, func, limited, jitter,
                  generation=(old.generation + 1) if old else 0)
        self.jobs[key] = job
        delay = first_delay + (self._rng.uniform(0, jitter) if jitter > 0 else 0.0)
        self._push(job, self.clock.monotonic() + delay)
        self._wake.set()
        return job

    def remove(self, key: str) -> None:
        self.jobs.pop(key, None)
        self._wake.set()

    def reschedule(self, key: str, delay: float) -> None:
        """Run ``key`` next in ``delay`` seconds, then every ``interval`` again.

        Used for a check's ``retry_interval`` while its state is soft.
        """
        job = self.jobs.get(key)
        if job is None:
            return
        job.generation += 1  # what is already queued for this job is now stale
        self._push(job, self.clock.monotonic() + max(0.0, delay))
        self._wake.set()

    def _push(self, job: Job, due: float) -> None:
        job.next_due = due
        self._seq += 1
        heapq.heappush(self._heap, (due, self._seq, job.key, job.generation))

    async def _sleep_or_wake(self, seconds: float) -> None:
        self._wake.clear()
        await sleep_or_wake(self.clock, seconds, self._wake)

    async def _run_job(self, job: Job) -> None:
        try:
            if job.limited:
                async with self._limit:
                    await job.func()
            else:
                await job.func()
            job.last_error = None
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a job never takes the scheduler down
            job.failures += 1
            job.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("job %s failed", job.key)
        finally:
            job.runs += 1
            job.running = False

    async def run(self) -> None:
        """Dispatch due jobs until cancelled; cancelling also cancels running jobs."""
        async with asyncio.TaskGroup() as tg:
            while True:
                now = self.clock.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    due, _, key, gen = heapq.heappop(self._heap)
                    job = self.jobs.get(key)
                    if job is None or job.generation != gen:
                        continue
                    # next run keeps the phase; if we fell far behind, skip ahead
                    nxt = due + job.interval
                    if nxt <= now:
                        nxt = now + job.interval
                    self._push(job, nxt)
                    if job.running:
                        job.skipped += 1
                        continue
                    job.running = True
                    tg.create_task(self._run_job(job), name=f"job:{key}")
                delay = (self._heap[0][0] - now) if self._heap else 3600.0
                await self._sleep_or_wake(delay)

    async def run_now(self, key: str) -> None:
        """Run one job at once (outside its schedule), waiting for it."""
        job = self.jobs[key]
        if not job.running:
            job.running = True
            await self._run_job(job)
