"""The clock, passed in so that tests can move time by hand."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol

__all__ = ["Clock", "SystemClock", "sleep_or_wake"]


class Clock(Protocol):
    """What watchkeeper needs from time: wall time for samples, monotonic time and sleep."""

    def time(self) -> float: ...

    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def sleep_or_wake(clock: Clock, seconds: float | None, event: asyncio.Event) -> None:
    """Return when ``event`` is set or after ``seconds`` of ``clock`` time (``None``: only
    the event). Used by every loop that sleeps until its next deadline unless woken early."""
    if seconds is None:
        await event.wait()
        return
    sleeper = asyncio.ensure_future(clock.sleep(max(0.0, seconds)))
    waiter = asyncio.ensure_future(event.wait())
    try:
        await asyncio.wait({sleeper, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, waiter):
            if not task.done():
                task.cancel()
        await asyncio.gather(sleeper, waiter, return_exceptions=True)
