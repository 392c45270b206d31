"""``Executors``: one object that sends each host to the right executor (local or SSH)."""

from __future__ import annotations

from collections.abc import Mapping

from watchkeeper.automation.command import Command
from watchkeeper.automation.executors.base import ExecResult, Executor, OutputCallback
from watchkeeper.automation.executors.local import LocalExecutor
from watchkeeper.automation.hosts import Host

__all__ = ["Executors"]


class Executors:
    """Routes ``connection: local`` hosts to ``local`` and the rest to ``ssh``.

    Itself an Executor, so the ad-hoc runner and the runbook engine take one object.
    ``ssh`` is created on first need (``ssh_factory()``) so local-only work never
    imports asyncssh.
    """

    def __init__(self, local: Executor | None = None, ssh: Executor | None = None, *,
                 ssh_factory: object | None = None) -> None:
        self.local: Executor = local or LocalExecutor()
        self._ssh = ssh
        self._ssh_factory = ssh_factory

    @property
    def ssh(self) -> Executor:
        if self._ssh is None:
            if callable(self._ssh_factory):
                self._ssh = self._ssh_factory()
            else:
                from watchkeeper.automation.executors.ssh import SSHExecutor

                self._ssh = SSHExecutor()
        assert self._ssh is not None
        return self._ssh

    def executor_for(self, host: Host) -> Executor:
        return self.local if host.connection == "local" else self.ssh

    async def run(self, host: Host, command: Command, *, timeout: float | None = None,
                  stdin: bytes | None = None, env: Mapping[str, str] | None = None,
                  on_output: OutputCallback | None = None) -> ExecResult:
        return await self.executor_for(host).run(host, command, timeout=timeout, stdin=stdin,
                                                 env=env, on_output=on_output)

    async def put(self, host: Host, data: bytes, path: str, *, mode: int = 0o644,
                  timeout: float | None = None) -> ExecResult:
        return await self.executor_for(host).put(host, data, path, mode=mode, timeout=timeout)

    async def close(self) -> None:
        await self.local.close()
        if self._ssh is not None:
            await self._ssh.close()
