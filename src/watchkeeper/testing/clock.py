"""A clock that moves only when told to, or jumps ahead when every task is waiting.

With ``autojump=True``, time jumps to the next sleeper's deadline as soon as the
event loop has nothing else to run (every task is waiting), so an interval of
5 minutes passes in microseconds while the order of wake-ups, and the time each
task sees when it wakes, stay exact. As with trio's ``autojump_clock``, a task
waiting on real I/O or a thread counts as waiting: keep such waits out of code
run under an autojumping clock, or advance by hand.
"""

from __future__ import annotations

import asyncio
import heapq

__all__ = ["FakeClock"]


class FakeClock:
    """A :class:`watchkeeper.clock.Clock` for tests: ``monotonic()`` starts at 0, ``time()`` at ``start``."""

    def __init__(self, start: float = 1_700_000_000.0, *, autojump: bool = False) -> None:
        self._wall0 = start
        self._now = 0.0
        self.autojump = autojump
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = 0
        self._jump_pending: asyncio.Handle | None = None
        self._jump_loop: asyncio.AbstractEventLoop | None = None

    def time(self) -> float:
        return self._wall0 + self._now

    def monotonic(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        self._seq += 1
        heapq.heappush(self._sleepers, (self._now + seconds, self._seq, fut))
        if self.autojump:
            self._schedule_jump(loop)
        await fut

    def _schedule_jump(self, loop: asyncio.AbstractEventLoop) -> None:
        # One pending jump at a time: two jumps queued in the same loop iteration
        # would move time past a sleeper that was woken but has not run yet.
        # (A handle left from a loop that has since closed does not count.)
        if self._jump_pending is None or self._jump_loop is not loop:
            self._jump_loop = loop
            self._jump_pending = loop.call_soon(self._jump, loop)

    def _jump(self, loop: asyncio.AbstractEventLoop) -> None:
        self._jump_pending = None
        while self._sleepers and self._sleepers[0][2].done():  # cancelled sleeps
            heapq.heappop(self._sleepers)
        if not self._sleepers:
            return
        if _has_ready_callbacks(loop):
            # some task can still run (and may sleep for less): time stands still
            self._schedule_jump(loop)
            return
        self.advance(max(0.0, self._sleepers[0][0] - self._now))
        # the woken tasks run first; then, if others still sleep, jump again
        self._schedule_jump(loop)

    def advance(self, seconds: float) -> None:
        """Move time forward and wake every sleeper whose time has come."""
        self._now += seconds
        while self._sleepers and self._sleepers[0][0] <= self._now + 1e-12:
            _, _, fut = heapq.heappop(self._sleepers)
            if not fut.done():
                fut.set_result(None)


def _has_ready_callbacks(loop: asyncio.AbstractEventLoop) -> bool:
    """True when the loop has callbacks (task steps) queued besides the one running now.

    asyncio offers no public way to ask whether the loop is idle; the base event
    loop keeps its run queue in ``_ready``. A loop without one (uvloop) is treated
    as idle, which is the behaviour of the plain call_soon jump.
    """
    ready = getattr(loop, "_ready", None)
    return bool(ready)
