"""Moving bytes between a running command and the executor: stdout/stderr into captures,
stdin (and the become password, only when sudo asks) into the command."""

from __future__ import annotations

import asyncio
from typing import Protocol

from watchkeeper.automation.executors._capture import Capture
from watchkeeper.automation.executors._shell import StderrFilter

__all__ = ["pump"]

CHUNK = 65536


class _Reader(Protocol):
    async def read(self, n: int = -1) -> bytes: ...


class _Writer(Protocol):
    def write(self, data: bytes) -> None: ...

    async def drain(self) -> None: ...

    def write_eof(self) -> None: ...


async def _send(stdin: _Writer, payload: bytes | None, *, eof: bool) -> None:
    try:
        if payload:
            stdin.write(payload)
            await stdin.drain()
        if eof:
            stdin.write_eof()
    except Exception:
        pass


async def pump(*, stdout: _Reader, stderr: _Reader, stdin: _Writer, data: bytes | None,
               become: bool, password: str | None, filt: StderrFilter, out: Capture,
               err: Capture, host: str, become_user: str) -> str | None:
    """Run the streams to their end. Returns a become error message, or None."""
    error: str | None = None
    sent_password = False
    sent_data = False

    async def read_out() -> None:
        while chunk := await stdout.read(CHUNK):
            out.feed(chunk)
        out.finish()

    async with asyncio.TaskGroup() as tg:
        if not become:
            tg.create_task(_send(stdin, data, eof=True))

        async def read_err() -> None:
            nonlocal error, sent_password, sent_data
            while chunk := await stderr.read(CHUNK):
                err.feed(filt.feed(chunk))
                if not become or sent_data:
                    continue
                if filt.started:
                    sent_data = True
                    tg.create_task(_send(stdin, data, eof=True))
                elif filt.prompts >= 2:
                    error = f"sudo on {host} rejected the become password for {become_user}"
                    sent_data = True
                    tg.create_task(_send(stdin, None, eof=True))
                elif filt.prompts == 1 and not sent_password:
                    sent_password = True
                    if password is None:
                        error = (f"sudo on {host} asks for a password to become {become_user} "
                                 "and the host has no become password (set "
                                 "ansible_become_password / become_password_secret)")
                        sent_data = True
                        tg.create_task(_send(stdin, None, eof=True))
                    else:
                        tg.create_task(_send(stdin, password.encode() + b"\n", eof=False))
            err.feed(filt.feed(b"", final=True))
            err.finish()

        tg.create_task(read_out())
        tg.create_task(read_err())
    return error
