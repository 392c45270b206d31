"""``systemd``: a unit is in the expected state (``active`` unless told otherwise).

Runs ``systemctl show UNIT --property=ActiveState,SubState,LoadState`` (arguments as
a list, never a shell) and parses its ``Key=value`` lines (:func:`parse_show`).
On a host where systemd is not PID 1 the result is UNKNOWN, not CRITICAL: the
unit's state cannot be known there.
"""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from pydantic import Field

from watchkeeper.monitor.checks._common import inner_timeout
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult, Sample, State

__all__ = ["ACTIVE_STATES", "Config", "SystemdCheck", "parse_show"]

ACTIVE_STATES = ("active", "reloading", "inactive", "failed", "activating", "deactivating",
                 "maintenance", "refreshing")
_NO_SYSTEMD = ("not been booted with systemd", "failed to connect to bus",
               "system has not been booted", "host is down")


def parse_show(text: str) -> dict[str, str]:
    """Parse ``systemctl show`` output (``Key=value`` per line) into a dict."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            out[key.strip()] = value.strip()
    return out


class Config(CheckConfig):
    type: Literal["systemd"]
    unit: str = Field(min_length=1, max_length=256, pattern=r"^[A-Za-z0-9:_.\\@][A-Za-z0-9:_.\\@-]*$",
                      description="unit name, e.g. nginx.service (must not start with '-')")
    expect: Literal["active", "reloading", "inactive", "failed", "activating", "deactivating",
                    "maintenance", "refreshing"] = "active"
    systemctl: str = Field("systemctl", min_length=1, description="the systemctl executable")

    def build(self) -> SystemdCheck:
        return SystemdCheck(self)


class SystemdCheck:
    def __init__(self, config: Config) -> None:
        self.config = config

    def argv(self) -> list[str]:
        return [self.config.systemctl, "show", self.config.unit,
                "--property=ActiveState,SubState,LoadState"]

    async def run(self, ctx: CheckContext) -> CheckResult:
        c = self.config
        started = time.perf_counter()
        try:
            proc = await asyncio.create_subprocess_exec(
                *self.argv(), stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        except FileNotFoundError:
            return CheckResult(State.UNKNOWN, f"cannot run {c.systemctl}: not found (is this "
                               "a systemd host?)")
        except PermissionError:
            return CheckResult(State.UNKNOWN, f"cannot run {c.systemctl}: not executable")
        try:
            async with asyncio.timeout(inner_timeout(ctx)):
                out, err = await proc.communicate()
        except TimeoutError:
            proc.kill()
            await proc.wait()
            return CheckResult(State.UNKNOWN, f"systemctl did not answer within {ctx.timeout:g}s",
                               duration_seconds=time.perf_counter() - started)
        finally:
            if proc.returncode is None:  # cancelled from outside
                proc.kill()
                await asyncio.shield(proc.wait())
        return self.judge(proc.returncode or 0, out.decode(errors="replace"),
                          err.decode(errors="replace"), time.perf_counter() - started)

    def judge(self, code: int, out: str, err: str, elapsed: float = 0.0) -> CheckResult:
        """Turn systemctl's exit code and output into a result."""
        c = self.config
        if any(marker in err.lower() for marker in _NO_SYSTEMD):
            return CheckResult(State.UNKNOWN, "systemd is not running on this host",
                               duration_seconds=elapsed, details=err.strip())
        props = parse_show(out)
        if code != 0 or "ActiveState" not in props:
            reason = err.strip().splitlines()[0] if err.strip() else f"exit code {code}"
            return CheckResult(State.UNKNOWN, f"systemctl show {c.unit} failed: {reason}",
                               duration_seconds=elapsed)
        active, sub = props["ActiveState"], props.get("SubState", "")
        load = props.get("LoadState", "")
        labels = {"unit": c.unit}
        metrics = [Sample("watchkeeper_systemd_unit_active", labels,
                          1.0 if active == "active" else 0.0)]
        metrics += [Sample("watchkeeper_systemd_unit_state", {**labels, "state": s},
                           1.0 if s == active else 0.0) for s in ACTIVE_STATES[:6]]
        if load == "not-found":
            return CheckResult(State.CRITICAL, f"unit {c.unit} not found",
                               duration_seconds=elapsed, metrics=metrics)
        state_text = f"{active} ({sub})" if sub else active
        if active != c.expect:
            extra = f", load state {load}" if load and load != "loaded" else ""
            return CheckResult(State.CRITICAL, f"{c.unit} is {state_text}, expected "
                               f"{c.expect}{extra}", duration_seconds=elapsed, metrics=metrics)
        return CheckResult(State.OK, f"{c.unit} is {state_text}", duration_seconds=elapsed,
                           metrics=metrics)
