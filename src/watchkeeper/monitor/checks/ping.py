"""``ping``: packet loss and round-trip time, measured by the system ``ping`` (iputils).

``ping`` is run as a subprocess with a list of arguments (never a shell):
``ping -n -c COUNT -i INTERVAL -W WAIT -w DEADLINE HOST``, and its summary lines
are parsed (:func:`parse_ping`)::

    3 packets transmitted, 3 received, 0% packet loss, time 404ms
    rtt min/avg/max/mdev = 0.033/0.036/0.039/0.002 ms
"""

from __future__ import annotations

import asyncio
import math
import re
import time
from dataclasses import dataclass
from typing import Literal

from pydantic import Field, model_validator

from watchkeeper.config.types import Duration
from watchkeeper.monitor.checks._common import fmt_ms, inner_timeout
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult, Sample, State

__all__ = ["Config", "PingCheck", "PingStats", "parse_ping"]

_STATS_RE = re.compile(r"(\d+) packets transmitted, (\d+) (?:packets )?received,"
                       r"(?: \+(\d+) errors,)?(?: \+\d+ duplicates,)? ([\d.]+)% packet loss")
_RTT_RE = re.compile(r"(?:rtt|round-trip) min/avg/max(?:/mdev|/stddev)? = "
                     r"([\d.]+)/([\d.]+)/([\d.]+)(?:/[\d.]+)? ms")
_NO_PERMISSION = ("operation not permitted", "permission denied", "missing cap_net_raw")


@dataclass(frozen=True, slots=True)
class PingStats:
    """What ``ping`` reported; rtt values are seconds, NaN when nothing came back."""

    transmitted: int
    received: int
    loss_percent: float
    rtt_min: float = math.nan
    rtt_avg: float = math.nan
    rtt_max: float = math.nan
    errors: int = 0


def parse_ping(output: str) -> PingStats | None:
    """Parse iputils ``ping`` output; None when it has no statistics line."""
    m = _STATS_RE.search(output)
    if not m:
        return None
    rtt = _RTT_RE.search(output)
    low, avg, high = (float(v) / 1000 for v in rtt.groups()) if rtt else (math.nan,) * 3
    return PingStats(int(m.group(1)), int(m.group(2)), float(m.group(4)), low, avg, high,
                     errors=int(m.group(3) or 0))


class Config(CheckConfig):
    type: Literal["ping"]
    host: str = Field(min_length=1, pattern=r"^[^-\s][^\s]*$",
                      description="host name or address (must not start with '-')")
    count: int = Field(3, ge=1, le=100)
    packet_interval: Duration = Field(0.2, ge=0.2, description="between echo requests")
    loss_warning: float = Field(20.0, ge=0, le=100, description="percent")
    loss_critical: float = Field(60.0, ge=0, le=100, description="percent")
    rtt_warning: Duration | None = None
    rtt_critical: Duration | None = None
    family: Literal["any", "ipv4", "ipv6"] = "any"
    ping: str = Field("ping", min_length=1, description="the ping executable")

    @model_validator(mode="after")
    def _thresholds(self) -> Config:
        if self.loss_critical < self.loss_warning:
            raise ValueError("loss_critical must not be below loss_warning")
        if (self.rtt_warning is not None and self.rtt_critical is not None
                and self.rtt_critical < self.rtt_warning):
            raise ValueError("rtt_critical must not be below rtt_warning")
        return self

    def build(self) -> PingCheck:
        return PingCheck(self)


class PingCheck:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._labels = {"host": config.host}

    def argv(self, budget: float) -> list[str]:
        c = self.config
        wait = max(1, min(10, int(budget)))
        deadline = max(1, int(budget))
        family = {"any": [], "ipv4": ["-4"], "ipv6": ["-6"]}[c.family]
        return [c.ping, *family, "-n", "-c", str(c.count), "-i", f"{c.packet_interval:g}",
                "-W", str(wait), "-w", str(deadline), c.host]

    async def run(self, ctx: CheckContext) -> CheckResult:
        c = self.config
        budget = inner_timeout(ctx)
        started = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(budget), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except FileNotFoundError:
            return CheckResult(State.UNKNOWN, f"cannot run ping: {c.ping} not found",
                               details="hint: apt install iputils-ping")
        except PermissionError:
            return CheckResult(State.UNKNOWN, f"cannot run ping: {c.ping} is not executable")
        try:
            async with asyncio.timeout(budget):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return CheckResult(State.UNKNOWN, f"ping {c.host} did not finish within "
                               f"{ctx.timeout:g}s", duration_seconds=time.perf_counter() - started)
        finally:
            if proc.returncode is None:  # cancelled from outside
                proc.kill()
                await asyncio.shield(proc.wait())
        elapsed = time.perf_counter() - started
        return self.judge(out.decode(errors="replace"), err.decode(errors="replace"), elapsed)

    def judge(self, out: str, err: str, elapsed: float = 0.0) -> CheckResult:
        """Turn ping's output into a result (separate from ``run`` so stored outputs test it)."""
        c = self.config
        stats = parse_ping(out)
        if stats is None:
            text = (err.strip() or out.strip()).splitlines()
            first = text[-1] if text else "no output"
            if any(p in (err + out).lower() for p in _NO_PERMISSION):
                return CheckResult(State.UNKNOWN, f"ping is not permitted to send ICMP here: "
                                   f"{first}", duration_seconds=elapsed,
                                   details="hint: ping needs cap_net_raw or "
                                           "net.ipv4.ping_group_range to include this user")
            return CheckResult(State.UNKNOWN, f"ping {c.host} failed: {first}",
                               duration_seconds=elapsed)
        metrics = [
            Sample("watchkeeper_ping_packet_loss_ratio", self._labels, stats.loss_percent / 100),
            Sample("watchkeeper_ping_packets_sent", self._labels, float(stats.transmitted)),
        ]
        for name, value in (("min", stats.rtt_min), ("avg", stats.rtt_avg),
                            ("max", stats.rtt_max)):
            if not math.isnan(value):
                metrics.append(Sample(f"watchkeeper_ping_rtt_{name}_seconds", self._labels,
                                      value))
        loss = f"{stats.loss_percent:g}% loss"
        if stats.received == 0:
            return CheckResult(State.CRITICAL, f"{c.host}: no reply to {stats.transmitted} "
                               f"pings ({loss})", duration_seconds=elapsed, metrics=metrics)
        state = State.OK
        if stats.loss_percent >= c.loss_critical:
            state = State.CRITICAL
        elif stats.loss_percent >= c.loss_warning:
            state = State.WARNING
        if c.rtt_critical is not None and stats.rtt_avg > c.rtt_critical:
            state = state.worse(State.CRITICAL)
        elif c.rtt_warning is not None and stats.rtt_avg > c.rtt_warning:
            state = state.worse(State.WARNING)
        summary = (f"{c.host}: {loss}, rtt min/avg/max {fmt_ms(stats.rtt_min)}/"
                   f"{fmt_ms(stats.rtt_avg)}/{fmt_ms(stats.rtt_max)}")
        return CheckResult(state, summary, duration_seconds=elapsed, metrics=metrics)
