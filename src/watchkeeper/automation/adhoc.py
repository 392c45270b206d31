"""Ad-hoc fan-out: one command on many hosts, at most ``forks`` at a time, with progress.

An unreachable or slow host never holds up the others: every host is its own task,
and the executor turns connection problems into results instead of exceptions.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from watchkeeper.automation.command import Command
from watchkeeper.automation.executors.base import ExecResult, Executor, OutputCallback
from watchkeeper.automation.hosts import Host

__all__ = ["Progress", "ProgressCallback", "run_adhoc"]


@dataclass
class Progress:
    """Counts so far: ``ok`` + ``failed`` + ``unreachable`` + ``timeout`` + ``remaining`` = ``total``."""

    total: int
    ok: int = 0
    failed: int = 0
    unreachable: int = 0
    timeout: int = 0
    running: set[str] = field(default_factory=set)

    @property
    def finished(self) -> int:
        return self.ok + self.failed + self.unreachable + self.timeout

    @property
    def remaining(self) -> int:
        return self.total - self.finished

    def add(self, result: ExecResult) -> None:
        setattr(self, result.status, getattr(self, result.status) + 1)

    def summary(self) -> str:
        return (f"done {self.ok}, failed {self.failed}, unreachable {self.unreachable}, "
                f"timeout {self.timeout}, remaining {self.remaining} of {self.total}")


ProgressCallback = Callable[[Progress, ExecResult | None], None]
"""Called when a host starts (result None) and when it finishes (with its result)."""


async def run_adhoc(hosts: Sequence[Host], command: Command, executor: Executor, *,
                    forks: int = 50, timeout: float | None = None,
                    on_progress: ProgressCallback | None = None,
                    on_output: OutputCallback | None = None) -> list[ExecResult]:
    """Run ``command`` on every host; results in the order of ``hosts``.

    ``forks`` bounds how many hosts run at once; ``timeout`` applies per host.
    Raises InputError for ``forks < 1``.
    """
    if forks < 1:
        from watchkeeper.errors import InputError

        raise InputError(f"--forks must be at least 1, not {forks}")
    progress = Progress(total=len(hosts))
    results: list[ExecResult | None] = [None] * len(hosts)
    gate = asyncio.Semaphore(forks)

    async def one(i: int, host: Host) -> None:
        async with gate:
            progress.running.add(host.name)
            if on_progress:
                on_progress(progress, None)
            result = await executor.run(host, command, timeout=timeout, on_output=on_output)
            progress.running.discard(host.name)
            progress.add(result)
            results[i] = result
            if on_progress:
                on_progress(progress, result)

    async with asyncio.TaskGroup() as tg:
        for i, host in enumerate(hosts):
            tg.create_task(one(i, host))
    return [r for r in results if r is not None]
