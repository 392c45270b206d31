"""``command``: run a Nagios / Monitoring Plugins plugin and read its exit code and output.

Exit codes 0..3 map to OK, WARNING, CRITICAL, UNKNOWN; anything else, or death by
a signal, is UNKNOWN. The output is parsed per the plugin guidelines
(:mod:`watchkeeper.monitor.nagios`) and its perfdata becomes samples.

The command is never given to a shell unless ``shell: true`` says so: a string is
split with :func:`shlex.split` and run directly. A plugin named without a path
(``check_load``) is looked up on ``PATH`` and then in the usual plugin directories.
The plugin runs in its own process group, so a timeout kills it and its children.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import shutil
import signal
import time
from typing import Literal

from pydantic import Field, field_validator

from watchkeeper.config.types import Size
from watchkeeper.monitor.checks._common import inner_timeout
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult, State

__all__ = ["PLUGIN_DIRS", "CommandCheck", "Config"]

PLUGIN_DIRS = ("/usr/lib/nagios/plugins", "/usr/lib/monitoring-plugins",
               "/usr/lib64/nagios/plugins", "/usr/local/nagios/libexec")
"""Where a plugin named without a path is looked for after ``PATH``."""

_READ_CHUNK = 65536


class Config(CheckConfig):
    type: Literal["command"]
    command: str | list[str] = Field(
        description="the plugin and its arguments; a string is split like a shell would, "
                    "but not run by one unless shell is true")
    shell: bool = False
    timeout_state: Literal["unknown", "critical"] = "unknown"
    env: dict[str, str] = Field(default_factory=dict)
    cwd: str | None = None
    max_output: Size = Field(65536, gt=0)

    @field_validator("command")
    @classmethod
    def _command_not_empty(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, str):
            try:
                parts = shlex.split(value)
            except ValueError as exc:
                raise ValueError(f"cannot split command {value!r}: {exc}") from None
        else:
            parts = value
        if not parts or not parts[0]:
            raise ValueError("command must name a program to run")
        return value

    def build(self) -> CommandCheck:
        return CommandCheck(self)


def _argv(c: Config) -> list[str]:
    if c.shell:
        text = c.command if isinstance(c.command, str) else shlex.join(c.command)
        return ["/bin/sh", "-c", text]
    return shlex.split(c.command) if isinstance(c.command, str) else list(c.command)


def _resolve(program: str) -> str | None:
    """The path to run for ``program``, or None when it exists nowhere we look."""
    if "/" in program:
        return program if os.path.exists(program) else None
    found = shutil.which(program)
    if found:
        return found
    for directory in PLUGIN_DIRS:
        candidate = os.path.join(directory, program)
        if os.path.exists(candidate):
            return candidate
    return None


async def _read_capped(stream: asyncio.StreamReader, limit: int) -> tuple[bytes, bool]:
    """Read a stream to its end, keeping at most ``limit`` bytes; say whether it was cut."""
    kept = bytearray()
    cut = False
    while chunk := await stream.read(_READ_CHUNK):
        room = limit - len(kept)
        if len(chunk) > room:
            cut = True
            kept += chunk[:max(room, 0)]
        else:
            kept += chunk
    return bytes(kept), cut


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


class CommandCheck:
    def __init__(self, config: Config) -> None:
        self.config = config

    async def run(self, ctx: CheckContext) -> CheckResult:
        c = self.config
        argv = _argv(c)
        path = _resolve(argv[0])
        if path is None:
            return CheckResult(
                State.UNKNOWN, f"no such file: {argv[0]}",
                details=("hint: give the full path to the plugin, or install it (Debian: "
                         "apt install monitoring-plugins); looked in PATH and "
                         + ", ".join(PLUGIN_DIRS)))
        env = {**os.environ, **c.env} if c.env else None
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                path, *argv[1:], stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
                start_new_session=True, env=env, cwd=c.cwd)
        except PermissionError:
            return CheckResult(State.UNKNOWN, f"not executable: {path}",
                               details=f"hint: chmod +x {path}")
        except OSError as exc:
            return CheckResult(State.UNKNOWN, f"cannot run {path}: {exc.strerror or exc}")
        assert proc.stdout is not None and proc.stderr is not None
        try:
            async with asyncio.timeout(inner_timeout(ctx)):
                (out, out_cut), (err, _) = await asyncio.gather(
                    _read_capped(proc.stdout, c.max_output),
                    _read_capped(proc.stderr, c.max_output))
                code = await proc.wait()
        except TimeoutError:
            _kill_group(proc)
            await proc.wait()
            state = State.CRITICAL if c.timeout_state == "critical" else State.UNKNOWN
            return CheckResult(state, f"{os.path.basename(path)} timed out after {ctx.timeout:g}s",
                               duration_seconds=time.monotonic() - started)
        finally:
            # Cancelled from outside: kill while the pid is still ours (not yet reaped).
            if proc.returncode is None:
                _kill_group(proc)
                await asyncio.shield(proc.wait())
        return self._result(path, code, out, out_cut, err, time.monotonic() - started)

    def _result(self, path: str, code: int, out: bytes, out_cut: bool, err: bytes,
                duration: float) -> CheckResult:
        from watchkeeper.monitor.nagios import parse_output, perfdata_samples

        text = out.decode("utf-8", errors="replace")
        parsed = parse_output(text)
        summary = parsed.summary
        stderr_text = err.decode("utf-8", errors="replace").strip()
        if not summary and stderr_text:
            summary = stderr_text.splitlines()[0]
        name = os.path.basename(path)
        if code < 0:
            try:
                signame = signal.Signals(-code).name
            except ValueError:
                signame = f"signal {-code}"
            state = State.UNKNOWN
            summary = f"{name} was killed by {signame}" + (f": {summary}" if summary else "")
        elif code > 3:
            state = State.UNKNOWN
            summary = f"{name} exited with code {code}" + (f": {summary}" if summary else "")
        else:
            state = State(code)
            if not summary:
                summary = f"{name} printed nothing (exit code {code})"
        details = [parsed.long_text] if parsed.long_text else []
        if out_cut:
            details.append(f"output cut at {self.config.max_output} bytes")
        details += [f"ignored malformed {w}" for w in parsed.warnings]
        if stderr_text and stderr_text != summary:
            details.append("stderr: " + stderr_text[:2000])
        return CheckResult(state, summary, duration_seconds=duration,
                           metrics=perfdata_samples(self.config.name, parsed.perfdata),
                           details="\n".join(details))
