"""The shell text the executors send: environment, become (sudo), the PID report, file upload.

Two small protocols ride on the command's stderr and are removed from what the user sees:

- ``PID_TAG``: over SSH the login shell first prints its PID (it is the session and
  process-group leader sshd made), so that a timed-out command's whole process group can
  be killed: OpenSSH ignores channel signal requests and leaves the process running when
  the channel closes.
- ``BECOME_PROMPT``: ``sudo -S -p PROMPT``. The become password is written to sudo's stdin
  only when sudo actually asks for it (cached credentials or NOPASSWD rules never see it),
  and a second prompt means it was rejected.
- ``STARTED_TAG``: printed by the shell sudo starts, so stdin meant for the command is
  written only once the command (not sudo) reads it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from watchkeeper.automation.command import Command, Quoted, Raw
from watchkeeper.automation.hosts import Host

__all__ = ["BECOME_PROMPT", "PID_TAG", "STARTED_TAG", "StderrFilter", "build", "kill_group_command",
           "put_command"]

BECOME_PROMPT = b"[watchkeeper-become-prompt]"
PID_TAG = b"\x1ewatchkeeper-pid "
STARTED_TAG = b"\x1ewatchkeeper-started\n"
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _env(env: Mapping[str, str] | None) -> Command:
    parts: list[Raw | Quoted] = []
    for name, value in (env or {}).items():
        if not _ENV_NAME.match(name):
            raise ValueError(f"invalid environment variable name {name!r}")
        parts += [Raw(f"export {name}="), Quoted(value), Raw("; ")]
    return Command(parts)


def build(host: Host, command: Command, env: Mapping[str, str] | None, *,
          report_pid: bool) -> str:
    """The text for the host's shell: ``command`` with ``env``, through sudo if ``host.become``."""
    inner = _env(env) + command
    if host.become:
        inner = Command([Raw("printf '\\036watchkeeper-started\\n' >&2; ")]) + inner
        sudo = Command.of("sudo", "-S", "-p", BECOME_PROMPT.decode(), "-u", host.become_user,
                          "--", "/bin/sh", "-c", inner.render())
        text = "exec " + sudo.render()
    else:
        text = inner.render()
    if report_pid:
        text = "printf '\\036watchkeeper-pid %s\\n' \"$$\" >&2; " + text
    return text


def put_command(path: str, mode: int) -> Command:
    """Write stdin to ``path`` atomically (temp file in the same directory, then rename)."""
    return Command([Raw("umask 077 && t=$(mktemp \"$(dirname -- "), Quoted(path),
                    Raw(")/.watchkeeper.XXXXXX\") && cat > \"$t\" && chmod "),
                    Quoted(f"{mode:o}"), Raw(" \"$t\" && mv -f -- \"$t\" "), Quoted(path),
                    Raw(" || { rc=$?; rm -f -- \"$t\"; exit $rc; }")])


def kill_group_command(pid: int) -> str:
    """Stop a process group: TERM (sudo relays it), then KILL what is left."""
    return (f"kill -TERM -- -{pid} 2>/dev/null; sleep 0.5; "
            f"kill -KILL -- -{pid} 2>/dev/null; true")


class StderrFilter:
    """Takes the PID report and sudo prompts out of a command's stderr.

    ``feed(chunk)`` returns the bytes the user should see and records ``pid``,
    ``prompts`` (how many times sudo asked for the password) and ``started`` (the
    command sudo runs has started).
    """

    def __init__(self, *, expect_pid: bool, expect_prompt: bool) -> None:
        self.pid: int | None = None
        self.prompts = 0
        self.started = False
        self._want_pid = expect_pid
        self._want_prompt = expect_prompt
        self._buf = b""

    def feed(self, data: bytes, final: bool = False) -> bytes:
        buf = self._buf + data
        self._buf = b""
        if self._want_pid:
            nl = buf.find(b"\n")
            if nl < 0 and not final and len(buf) < 64:
                self._buf = buf
                return b""
            self._want_pid = False
            if buf.startswith(PID_TAG) and nl > 0:
                try:
                    self.pid = int(buf[len(PID_TAG):nl])
                except ValueError:
                    self.pid = None
                buf = buf[nl + 1:]
        if not self._want_prompt:
            return buf
        out = bytearray()
        while True:
            hits = [(i, t) for t in (BECOME_PROMPT, STARTED_TAG) if (i := buf.find(t)) >= 0]
            if not hits:
                break
            i, token = min(hits)
            out += buf[:i]
            buf = buf[i + len(token):]
            if token is BECOME_PROMPT:
                self.prompts += 1
            else:
                self.started = True
        if not final:
            # Hold back a tail that could be the start of a token split across chunks.
            for k in range(min(len(BECOME_PROMPT) - 1, len(buf)), 0, -1):
                tail = buf[-k:]
                if BECOME_PROMPT.startswith(tail) or STARTED_TAG.startswith(tail):
                    self._buf = tail
                    buf = buf[:-k]
                    break
        out += buf
        return bytes(out)
