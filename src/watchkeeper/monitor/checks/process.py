"""``process``: the right number of matching processes run, within CPU and memory limits.

Processes are selected by ``process_name`` (the exact process name, as ``ps -o comm``
shows it), ``cmdline`` (a regex searched in the command line joined with spaces)
and/or ``pidfile``; every selector given must match. CPU percent is measured
over the time since the previous run of the same check (over a short sample
on the first run), the way ``top`` does, and summed over the matches (100 = one
full core).
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from watchkeeper.config.types import Size
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult, Sample, State

__all__ = ["Config", "ProcessCheck"]

_FIRST_SAMPLE = 0.2  # seconds of CPU sampling on a check's first run


class Config(CheckConfig):
    type: Literal["process"]
    process_name: str | None = Field(None, min_length=1, description="exact process name "
                                     "(comm); ``name`` is the check's own name")
    cmdline: str | None = None
    pidfile: str | None = None
    min_count: int = Field(1, ge=0)
    max_count: int | None = Field(None, ge=0)
    max_cpu_percent: float | None = Field(None, gt=0)
    max_memory: Size | None = Field(None, description="summed resident memory (RSS)")

    @field_validator("cmdline")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"cmdline {value!r} is not a valid regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _selector(self) -> Config:
        if self.process_name is None and self.cmdline is None and self.pidfile is None:
            raise ValueError("select processes with process_name, cmdline or pidfile")
        if self.max_count is not None and self.max_count < self.min_count:
            raise ValueError("max_count must not be below min_count")
        return self

    def build(self) -> ProcessCheck:
        return ProcessCheck(self)


class ProcessCheck:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._regex = re.compile(config.cmdline) if config.cmdline else None
        # pid -> (create_time, cpu seconds, monotonic time) from the previous run
        self._last: dict[int, tuple[float, float, float]] = {}
        what = [f"process_name={config.process_name}" if config.process_name else "",
                f"cmdline=/{config.cmdline}/" if config.cmdline else "",
                f"pidfile={config.pidfile}" if config.pidfile else ""]
        self._what = " ".join(w for w in what if w)
        self._labels = {"selector": self._what}

    def _select(self) -> tuple[list[Any], str | None]:
        import psutil

        c = self.config
        wanted_pid: int | None = None
        if c.pidfile is not None:
            try:
                with open(c.pidfile) as f:
                    wanted_pid = int(f.read().split()[0])
            except FileNotFoundError:
                return [], f"pidfile {c.pidfile} does not exist"
            except (OSError, ValueError, IndexError):
                return [], f"pidfile {c.pidfile} does not hold a process id"
        candidates = ([psutil.Process(wanted_pid)] if psutil.pid_exists(wanted_pid) else []) \
            if wanted_pid is not None else psutil.process_iter()
        out = []
        for proc in candidates:
            try:
                if c.process_name is not None and proc.name() != c.process_name:
                    continue
                if self._regex is not None and not self._regex.search(" ".join(proc.cmdline())):
                    continue
                if proc.status() == psutil.STATUS_ZOMBIE:
                    continue
                out.append(proc)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return out, None

    def _usage(self, procs: list[Any], first_wait: float) -> tuple[float, int, int]:
        """(CPU percent summed, RSS bytes summed, processes still alive) of ``procs``."""
        import psutil

        now = time.monotonic()
        samples: dict[int, tuple[float, float, float]] = {}
        rss = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    t = proc.cpu_times()
                    samples[proc.pid] = (proc.create_time(), t.user + t.system, now)
                    rss += proc.memory_info().rss
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        known = {pid for pid, s in samples.items()
                 if pid in self._last and self._last[pid][0] == s[0]}
        if not known and samples and first_wait > 0:
            self._last = samples
            time.sleep(first_wait)
            return self._usage(procs, 0.0)
        cpu = 0.0
        for pid in known:
            _, cpu_then, at = self._last[pid]
            span = samples[pid][2] - at
            if span > 0:
                cpu += (samples[pid][1] - cpu_then) / span * 100
        self._last = samples
        return cpu, rss, len(samples)

    def _check(self, wait: float) -> CheckResult:
        c = self.config
        procs, problem = self._select()
        if problem is not None and c.min_count > 0:
            return CheckResult(State.CRITICAL, problem)
        cpu, rss, count = self._usage(procs, wait)
        metrics = [Sample("watchkeeper_process_count", self._labels, float(count)),
                   Sample("watchkeeper_process_cpu_percent", self._labels, cpu),
                   Sample("watchkeeper_process_resident_memory_bytes", self._labels, float(rss))]
        problems = []
        if count < c.min_count:
            problems.append(f"{count} running, expected at least {c.min_count}")
        if c.max_count is not None and count > c.max_count:
            problems.append(f"{count} running, expected at most {c.max_count}")
        if c.max_cpu_percent is not None and cpu > c.max_cpu_percent:
            problems.append(f"CPU {cpu:.0f}% above {c.max_cpu_percent:g}%")
        if c.max_memory is not None and rss > c.max_memory:
            problems.append(f"memory {_mib(rss)} above {_mib(c.max_memory)}")
        if problems:
            return CheckResult(State.CRITICAL, f"{self._what}: " + "; ".join(problems),
                               metrics=metrics)
        return CheckResult(State.OK, f"{self._what}: {count} running, CPU {cpu:.0f}%, "
                           f"memory {_mib(rss)}", metrics=metrics)

    async def run(self, ctx: CheckContext) -> CheckResult:
        wait = min(_FIRST_SAMPLE, ctx.timeout / 4)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(ctx.timeout * 0.9):
                result = await asyncio.to_thread(self._check, wait)
        except TimeoutError:
            return CheckResult(State.UNKNOWN, f"listing processes took over {ctx.timeout:g}s")
        result.duration_seconds = time.perf_counter() - started
        return result


def _mib(n: int) -> str:
    return f"{n / 1048576:.1f} MiB"
