"""Run commands on this machine: an asyncio subprocess under ``/bin/sh -c``."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import Mapping

from watchkeeper.automation.command import Command
from watchkeeper.automation.executors._capture import DEFAULT_OUTPUT_CAP, Capture
from watchkeeper.automation.executors._shell import StderrFilter, build, put_command
from watchkeeper.automation.executors._stream import pump
from watchkeeper.automation.executors.base import ExecResult, OutputCallback
from watchkeeper.automation.hosts import Host
from watchkeeper.automation.secrets import SecretSource
from watchkeeper.clock import Clock, SystemClock

__all__ = ["LocalExecutor"]


class LocalExecutor:
    """The Executor for ``connection: local`` hosts (``localhost`` by default).

    Each command runs in its own session (process group), so a timeout kills the
    command and everything it started. Output over ``output_cap`` bytes per stream
    keeps its first and last halves with a marker between. ``secrets`` (an object
    with ``get(name) -> str``, e.g. :class:`~watchkeeper.automation.secrets.SecretStore`)
    supplies become passwords.
    """

    def __init__(self, clock: Clock | None = None, output_cap: int = DEFAULT_OUTPUT_CAP, *,
                 secrets: SecretSource | None = None, shell: str = "/bin/sh") -> None:
        self.clock = clock or SystemClock()
        self.output_cap = output_cap
        self.secrets = secrets
        self.shell = shell

    async def run(self, host: Host, command: Command, *, timeout: float | None = None,
                  stdin: bytes | None = None, env: Mapping[str, str] | None = None,
                  on_output: OutputCallback | None = None) -> ExecResult:
        start = self.clock.monotonic()
        password, perr = _become_password(host, self.secrets)
        if perr:
            return ExecResult(host.name, "failed", None, error=perr)
        text = build(host, command, env, report_pid=False)
        spawn = asyncio.ensure_future(asyncio.create_subprocess_exec(
            self.shell, "-c", text, stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True))
        try:
            # shielded: a cancel while the process is being set up must not make asyncio
            # wait for the command to finish; we kill its process group instead
            proc = await asyncio.shield(spawn)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                started = await spawn
                if started.returncode is None:
                    _kill_group(started.pid)
                await started.wait()
            raise
        except OSError as exc:
            return ExecResult(host.name, "failed", None, error=f"{host.name}: cannot start "
                              f"{self.shell}: {exc.strerror or exc}",
                              duration_seconds=self.clock.monotonic() - start)
        assert proc.stdout and proc.stderr and proc.stdin
        out = Capture(self.output_cap, host.name, "stdout", on_output)
        err = Capture(self.output_cap, host.name, "stderr", on_output)
        filt = StderrFilter(expect_pid=False, expect_prompt=host.become)
        become_error: str | None = None
        timed_out = False
        try:
            async with asyncio.timeout(timeout):
                become_error = await pump(stdout=proc.stdout, stderr=proc.stderr,
                                          stdin=proc.stdin, data=stdin, become=host.become,
                                          password=password, filt=filt, out=out, err=err,
                                          host=host.name, become_user=host.become_user)
                await proc.wait()
        except TimeoutError:
            timed_out = True
        finally:
            if proc.returncode is None:
                _kill_group(proc.pid)
                await proc.wait()
            proc.stdin.close()
        duration = self.clock.monotonic() - start
        truncated = out.truncated or err.truncated
        if timed_out:
            return ExecResult(host.name, "timeout", None, out.text(), err.text(), duration,
                              error=f"{command.masked()!r} on {host.name} did not finish "
                              f"within {timeout:g}s and was killed", truncated=truncated)
        code = proc.returncode
        status = "ok" if code == 0 else "failed"
        error = become_error
        if error is None and code is not None and code < 0:
            error = f"killed by signal {-code}"
        return ExecResult(host.name, status, code, out.text(), err.text(), duration,
                          error=error, truncated=truncated)

    async def put(self, host: Host, data: bytes, path: str, *, mode: int = 0o644,
                  timeout: float | None = None) -> ExecResult:
        """Write ``data`` to ``path`` atomically with ``mode`` (through sudo if ``become``)."""
        return await self.run(host, put_command(path, mode), timeout=timeout, stdin=data)

    async def close(self) -> None:
        return None


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _become_password(host: Host, secrets: SecretSource | None) -> tuple[str | None, str | None]:
    """(password, error): the become password from the secret store, if the host names one."""
    name = host.become_password_secret
    if not host.become or not name:
        return None, None
    if secrets is None:
        return None, (f"{host.name}: become password secret {name!r} is set but no secret "
                      "store was given")
    from watchkeeper.errors import WatchkeeperError

    try:
        return secrets.get(name), None
    except WatchkeeperError as exc:
        return None, f"{host.name}: {exc.message}"
