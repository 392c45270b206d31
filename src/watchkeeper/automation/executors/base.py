"""The Executor protocol: run a command on a host, put a file there. Local and SSH implement it;
a distributed task engine can implement it later."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from watchkeeper.automation.command import Command
from watchkeeper.automation.hosts import Host

__all__ = ["ExecResult", "Executor", "OutputCallback", "STATUSES"]

STATUSES = ("ok", "failed", "unreachable", "timeout")

OutputCallback = Callable[[str, str, str], None]
"""Called as output arrives: (host name, "stdout" | "stderr", text)."""


@dataclass
class ExecResult:
    """What running one command on one host gave.

    ``status``: "ok" (exit 0), "failed" (ran, non-zero exit), "unreachable"
    (could not connect or authenticate; ``error`` says why and how to fix it),
    "timeout" (cut off; ``exit_code`` None). ``truncated`` is True when output
    went over the executor's cap and the middle was dropped.
    """

    host: str
    status: str
    exit_code: int | None
    stdout: str = ""
    stderr: str = ""
    duration_seconds: float = 0.0
    error: str | None = None
    truncated: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, object]:
        return {"host": self.host, "status": self.status, "exit_code": self.exit_code,
                "stdout": self.stdout, "stderr": self.stderr,
                "duration_seconds": self.duration_seconds, "error": self.error,
                "truncated": self.truncated}


@runtime_checkable
class Executor(Protocol):
    """Runs commands on hosts. Never raises for a failing command or an unreachable host:
    that is an ExecResult. Raises only for bugs and cancellation."""

    async def run(self, host: Host, command: Command, *, timeout: float | None = None,
                  stdin: bytes | None = None, env: Mapping[str, str] | None = None,
                  on_output: OutputCallback | None = None) -> ExecResult: ...

    async def put(self, host: Host, data: bytes, path: str, *, mode: int = 0o644,
                  timeout: float | None = None) -> ExecResult: ...

    async def close(self) -> None: ...
