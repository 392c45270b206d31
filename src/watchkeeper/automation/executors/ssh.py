"""Run commands over SSH (asyncssh): pooled connections, host key checking, jump hosts,
become via sudo, timeouts that kill the remote process group, and backoff when sshd
refuses connections (``MaxStartups``).

asyncssh is imported on first use, never at module import, so the CLI starts fast.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from watchkeeper.automation.command import Command
from watchkeeper.automation.executors._asyncssh import import_asyncssh
from watchkeeper.automation.executors._capture import DEFAULT_OUTPUT_CAP, Capture
from watchkeeper.automation.executors._shell import (
    StderrFilter,
    build,
    kill_group_command,
    put_command,
)
from watchkeeper.automation.executors._stream import pump
from watchkeeper.automation.executors.base import ExecResult, OutputCallback
from watchkeeper.automation.executors.local import _become_password
from watchkeeper.automation.executors.pool import ConnectionPool, PooledConnection
from watchkeeper.automation.hosts import Host
from watchkeeper.automation.secrets import SecretSource
from watchkeeper.clock import Clock, SystemClock
from watchkeeper.errors import HostKeyError, HostUnreachableError, InputError

__all__ = ["DEFAULT_KNOWN_HOSTS", "SSHExecutor", "parse_jump", "trust_host"]

DEFAULT_KNOWN_HOSTS = "~/.ssh/known_hosts"
PREFERRED_KEX = ("curve25519-sha256", "curve25519-sha256@libssh.org")
PREFERRED_HOST_KEY_ALGS = ("ssh-ed25519",)
# AES-GCM first: asyncssh does it in one OpenSSL call per packet (AES-NI), where its
# chacha20-poly1305 builds three cipher contexts per packet in Python
PREFERRED_CIPHERS = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
                     "chacha20-poly1305@openssh.com")


def _where(host: Host) -> str:
    return f"{host.name} ({host.target}:{host.port})"


def _trust_hint(host: Host) -> str:
    return f"run `watchkeeper hosts trust {host.name}` to accept it"


def parse_jump(spec: str, via: Host) -> Host:
    """``[user@]host[:port]`` (as ProxyJump writes it) as a Host; user and key default to ``via``'s."""
    user = via.user
    rest = spec.strip()
    if "@" in rest:
        user, rest = rest.rsplit("@", 1)
    port = 22
    if rest.startswith("["):
        addr, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = int(tail[1:])
    elif rest.count(":") == 1:
        addr, p = rest.split(":")
        port = int(p)
    else:
        addr = rest
    if not addr:
        raise InputError(f"{via.name}: jump host {spec!r} names no host")
    return Host(name=f"{addr}:{port}" if port != 22 else addr, address=addr, port=port,
                user=user, key_file=via.key_file)


def _kex_algs() -> list[str]:
    import_asyncssh()
    from asyncssh.kex import get_default_kex_algs

    rest = [a.decode() for a in get_default_kex_algs()]
    return [*PREFERRED_KEX, *(a for a in rest if a not in PREFERRED_KEX and not a.startswith("gss-"))]


def _encryption_algs() -> list[str]:
    import_asyncssh()
    from asyncssh.encryption import get_default_encryption_algs

    rest = [a.decode() for a in get_default_encryption_algs()]
    return [*(a for a in PREFERRED_CIPHERS if a in rest),
            *(a for a in rest if a not in PREFERRED_CIPHERS)]


def _host_key_algs() -> list[str]:
    import_asyncssh()
    from asyncssh.public_key import get_default_public_key_algs

    rest = [a.decode() for a in get_default_public_key_algs()]
    return [*PREFERRED_HOST_KEY_ALGS, *(a for a in rest if a not in PREFERRED_HOST_KEY_ALGS)]


class SSHExecutor:
    """The Executor for ``connection: ssh`` hosts.

    ``known_hosts``: the file host keys are checked against (default
    ``~/.ssh/known_hosts``; a missing file trusts nothing). Checking is off only with
    ``insecure=True``; ``known_hosts="ignore"`` is refused. ``client_keys``: private
    key files to offer (a host's ``key_file`` wins); with neither, asyncssh's defaults
    (``~/.ssh/id_*`` and the agent at ``SSH_AUTH_SOCK``). ``forks`` bounds concurrent
    handshakes; ``retry_budget`` is how long a host that drops connections during the
    handshake (sshd ``MaxStartups``) is retried with jittered exponential backoff.
    ``secrets`` supplies become passwords by name.

    Never raises for an unreachable host or a failing command (see ExecResult).
    """

    def __init__(self, *, known_hosts: str | Path | None = None, insecure: bool = False,
                 client_keys: list[str] | None = None, connect_timeout: float = 10.0,
                 output_cap: int = DEFAULT_OUTPUT_CAP, forks: int = 50,
                 secrets: SecretSource | None = None, keepalive: float = 30.0,
                 retry_budget: float = 30.0, max_sessions: int = 10,
                 clock: Clock | None = None) -> None:
        if known_hosts is not None and str(known_hosts).lower() in ("ignore", "none", "off", ""):
            raise InputError(f"known_hosts={str(known_hosts)!r} would turn host key checking off",
                             hint="host keys are always checked; pass insecure=True to turn "
                             "checking off explicitly")
        self.known_hosts_path = Path(os.path.expanduser(str(known_hosts or DEFAULT_KNOWN_HOSTS)))
        self.insecure = insecure
        self.client_keys = client_keys
        self.connect_timeout = connect_timeout
        self.output_cap = output_cap
        self.forks = max(1, forks)
        self.secrets = secrets
        self.keepalive = keepalive
        self.retry_budget = retry_budget
        self.clock = clock or SystemClock()
        self.pool = ConnectionPool(max_sessions)
        self._handshakes: asyncio.Semaphore | None = None
        self._known: Any = None
        self._keys: dict[str, list[Any]] = {}
        self._options: dict[tuple[Any, ...], Any] = {}
        self.connect_attempts = 0

    # -- connections -------------------------------------------------------------------

    def reload_known_hosts(self) -> None:
        """Read the known_hosts file again (after ``trust_host`` changed it)."""
        self._known = None
        self._options.clear()

    def _known_hosts(self) -> Any:
        import_asyncssh()
        import asyncssh

        if self._known is None:
            try:
                self._known = asyncssh.read_known_hosts(str(self.known_hosts_path))
            except FileNotFoundError:
                self._known = asyncssh.import_known_hosts("")
            except (OSError, ValueError) as exc:
                raise InputError(f"cannot read known_hosts {self.known_hosts_path}: {exc}") from None
        return self._known

    def _client_keys(self, host: Host) -> Any:
        import_asyncssh()
        import asyncssh

        files = [host.key_file] if host.key_file else self.client_keys
        if not files:
            return ()
        loaded: list[Any] = []
        for f in files:
            path = os.path.expanduser(f)
            if path not in self._keys:
                try:
                    self._keys[path] = [asyncssh.read_private_key(path)]
                except FileNotFoundError:
                    raise HostUnreachableError(host.name, f"{_where(host)}: private key {path} "
                                               "does not exist") from None
                except (OSError, asyncssh.KeyImportError) as exc:
                    raise HostUnreachableError(host.name, f"{_where(host)}: cannot load private "
                                               f"key {path}: {exc}") from None
            loaded += self._keys[path]
        return loaded

    def _connect_options(self, host: Host) -> Any:
        """Options shared by every connection with the same user and keys (built once)."""
        import_asyncssh()
        import asyncssh

        key = (host.user, host.key_file)
        opts = self._options.get(key)
        if opts is None:
            kwargs: dict[str, Any] = dict(
                known_hosts=None if self.insecure else self._known_hosts(),
                client_keys=self._client_keys(host), connect_timeout=self.connect_timeout,
                keepalive_interval=self.keepalive, keepalive_count_max=3,
                kex_algs=_kex_algs(), encryption_algs=_encryption_algs())
            if self.insecure:
                kwargs["server_host_key_algs"] = _host_key_algs()
            if host.user:
                kwargs["username"] = host.user
            opts = asyncssh.SSHClientConnectionOptions(**kwargs)
            self._options[key] = opts
        return opts

    def _pool_key(self, host: Host) -> tuple[Any, ...]:
        return (host.name, host.target, host.port, host.user, host.key_file, host.jump)

    async def connection(self, host: Host) -> PooledConnection:
        """The pooled connection to ``host`` (opened on first use).

        Raises HostKeyError (unknown/changed key) or HostUnreachableError.
        """
        if self._handshakes is None:
            self._handshakes = asyncio.Semaphore(self.forks)
        return await self.pool.get(self._pool_key(host), lambda: self._open(host))

    async def _open(self, host: Host) -> Any:
        import_asyncssh()
        import asyncssh

        tunnel = None
        if host.jump:
            jump = parse_jump(host.jump, host)
            try:
                tunnel = (await self.connection(jump)).conn
            except HostUnreachableError as exc:
                raise HostUnreachableError(host.name, f"{_where(host)}: via jump host "
                                           f"{jump.name}: {exc.message}", hint=exc.hint) from None
        options = self._connect_options(host)
        assert self._handshakes is not None
        deadline = self.clock.monotonic() + self.retry_budget
        attempt = 0
        while True:
            attempt += 1
            try:
                async with self._handshakes:
                    self.connect_attempts += 1
                    return await asyncssh.connect(host.target, host.port, tunnel=tunnel,
                                                  options=options, config=None)
            except asyncssh.HostKeyNotVerifiable:
                raise self._host_key_error(host) from None
            except asyncssh.PermissionDenied:
                user = host.user or "the current user"
                raise HostUnreachableError(
                    host.name, f"{_where(host)}: authentication failed as {user}",
                    hint="check the user and key (ansible_user, ansible_ssh_private_key_file "
                    "/ key_file) or load the key into ssh-agent") from None
            except ConnectionRefusedError:
                raise HostUnreachableError(host.name, f"{_where(host)}: connection refused "
                                           "(is sshd running on that port?)") from None
            except socket.gaierror as exc:
                raise HostUnreachableError(host.name, f"{_where(host)}: cannot resolve "
                                           f"{host.target}: {exc.strerror}") from None
            except TimeoutError:
                raise HostUnreachableError(host.name, f"{_where(host)}: no SSH handshake "
                                           f"within {self.connect_timeout:g}s") from None
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, ConnectionResetError,
                    BrokenPipeError, asyncio.IncompleteReadError) as exc:
                # sshd drops connections over MaxStartups before its banner: back off, retry.
                wait = min(0.05 * 2 ** (attempt - 1), 2.0) * random.uniform(0.5, 1.5)
                if self.clock.monotonic() + wait > deadline:
                    raise HostUnreachableError(
                        host.name, f"{_where(host)}: connection dropped during the handshake "
                        f"{attempt} times in {self.retry_budget:g}s (last: {exc})",
                        hint="sshd may be overloaded (MaxStartups); lower --forks") from None
                await self.clock.sleep(wait)
            except OSError as exc:
                raise HostUnreachableError(host.name, f"{_where(host)}: "
                                           f"{exc.strerror or exc}") from None

    def _host_key_error(self, host: Host) -> HostKeyError:
        known = self._known_hosts()
        trusted = known.match(host.target, "", host.port)[0]
        if trusted:
            return HostKeyError(
                host.name, f"{_where(host)}: host key changed: the key it presented does not "
                f"match {self.known_hosts_path}; this can be an attack, or the host was "
                "reinstalled", kind="changed",
                hint=f"if the change is expected, {_trust_hint(host)} (replaces the old key)")
        return HostKeyError(
            host.name, f"{_where(host)}: unknown host key: {self.known_hosts_path} has no key "
            f"for {host.target if host.port == 22 else f'[{host.target}]:{host.port}'}",
            kind="unknown", hint=f"{_trust_hint(host)} (or --known-hosts FILE)")

    # -- commands ----------------------------------------------------------------------

    async def run(self, host: Host, command: Command, *, timeout: float | None = None,
                  stdin: bytes | None = None, env: Mapping[str, str] | None = None,
                  on_output: OutputCallback | None = None) -> ExecResult:
        import_asyncssh()
        import asyncssh

        start = self.clock.monotonic()
        password, perr = _become_password(host, self.secrets)
        if perr:
            return ExecResult(host.name, "failed", None, error=perr)
        text = build(host, command, env, report_pid=True)
        reconnected = False
        busy = 0
        while True:
            try:
                entry = await self.connection(host)
            except HostUnreachableError as exc:
                return ExecResult(host.name, "unreachable", None, error=str(exc),
                                  duration_seconds=self.clock.monotonic() - start)
            try:
                async with entry.sessions:
                    return await self._run_on(entry, host, command, text, timeout=timeout,
                                              stdin=stdin, password=password,
                                              on_output=on_output, start=start)
            except asyncssh.ChannelOpenError as exc:
                if not entry.closed and busy < 50:
                    # sshd frees a session slot (MaxSessions) a moment after the channel
                    # closes: the connection is fine, try the channel again shortly.
                    busy += 1
                    await self.clock.sleep(min(0.005 * 2 ** busy, 0.2))
                    continue
                lost: Exception = exc
            except (asyncssh.ConnectionLost, asyncssh.DisconnectError, BrokenPipeError,
                    ConnectionResetError) as exc:
                lost = exc
            # The pooled connection died since its last use: one fresh connection.
            self.pool.discard(self._pool_key(host), entry)
            if reconnected:
                return ExecResult(host.name, "unreachable", None,
                                  error=f"{_where(host)}: connection lost: {lost}",
                                  duration_seconds=self.clock.monotonic() - start)
            reconnected = True

    async def _run_on(self, entry: PooledConnection, host: Host, command: Command, text: str, *,
                      timeout: float | None, stdin: bytes | None, password: str | None,
                      on_output: OutputCallback | None, start: float) -> ExecResult:
        proc = await entry.conn.create_process(text, encoding=None)
        out = Capture(self.output_cap, host.name, "stdout", on_output)
        err = Capture(self.output_cap, host.name, "stderr", on_output)
        filt = StderrFilter(expect_pid=True, expect_prompt=host.become)
        become_error: str | None = None
        try:
            async with asyncio.timeout(timeout):
                become_error = await pump(stdout=proc.stdout, stderr=proc.stderr,
                                          stdin=proc.stdin, data=stdin, become=host.become,
                                          password=password, filt=filt, out=out, err=err,
                                          host=host.name, become_user=host.become_user)
                await proc.wait_closed()
        except TimeoutError:
            await self._kill(entry, filt.pid)
            proc.close()
            return ExecResult(host.name, "timeout", None, out.text(), err.text(),
                              self.clock.monotonic() - start,
                              error=f"{command.masked()!r} on {host.name} did not finish "
                              f"within {timeout:g}s and was killed",
                              truncated=out.truncated or err.truncated)
        finally:
            if proc.exit_status is None and proc.exit_signal is None:
                proc.close()
        code = proc.exit_status
        error = become_error
        if code is None:
            sig = proc.exit_signal
            if sig:
                error = error or f"killed by signal {sig[0]}"
            elif entry.closed:
                error = f"{_where(host)}: connection lost while the command ran"
            else:
                error = error or "the command ended without an exit status"
        status = "ok" if code == 0 and not become_error else "failed"
        return ExecResult(host.name, status, code, out.text(), err.text(),
                          self.clock.monotonic() - start, error=error,
                          truncated=out.truncated or err.truncated)

    async def _kill(self, entry: PooledConnection, pid: int | None) -> None:
        """Kill a timed-out command's process group over a second channel."""
        if pid is None:
            return
        try:
            async with asyncio.timeout(5):
                await entry.conn.run(kill_group_command(pid), check=False)
        except Exception:
            pass

    async def put(self, host: Host, data: bytes, path: str, *, mode: int = 0o644,
                  timeout: float | None = None) -> ExecResult:
        """Write ``data`` to ``path`` atomically with ``mode`` (through sudo if ``become``)."""
        return await self.run(host, put_command(path, mode), timeout=timeout, stdin=data)

    async def close(self) -> None:
        await self.pool.close()


async def trust_host(host: Host, known_hosts: str | Path | None = None, *,
                     connect_timeout: float = 10.0) -> str:
    """Fetch ``host``'s SSH host key and write it to ``known_hosts`` (replacing old entries).

    Returns the key's fingerprint (``SHA256:...``) for the user to compare. A jump host
    must itself be trusted already. Raises HostUnreachableError.
    """
    import_asyncssh()
    import asyncssh

    path = _expand(known_hosts or DEFAULT_KNOWN_HOSTS)
    tunnel_exec: SSHExecutor | None = None
    tunnel = None
    try:
        if host.jump:
            tunnel_exec = SSHExecutor(known_hosts=path, connect_timeout=connect_timeout)
            tunnel = (await tunnel_exec.connection(parse_jump(host.jump, host))).conn
        try:
            key = await asyncssh.get_server_host_key(
                host.target, host.port, tunnel=tunnel, kex_algs=_kex_algs(),
                server_host_key_algs=_host_key_algs())
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            raise HostUnreachableError(host.name, f"{_where(host)}: cannot fetch its host key: "
                                       f"{exc}") from None
    finally:
        if tunnel_exec is not None:
            await tunnel_exec.close()
    if key is None:
        raise HostUnreachableError(host.name, f"{_where(host)}: presented no host key")
    target = host.target if host.port == 22 else f"[{host.target}]:{host.port}"
    keytype, blob = key.export_public_key("openssh").decode().split()[:2]
    await asyncio.to_thread(_replace_known_host, path, target, f"{keytype} {blob}")
    return str(key.get_fingerprint("sha256"))


def _expand(path: str | Path) -> Path:
    return Path(os.path.expanduser(str(path)))


def _replace_known_host(path: Path, target: str, key: str) -> None:
    """Drop ``target``'s lines from the known_hosts file at ``path`` and add ``target key``."""
    lines = path.read_text().splitlines() if path.exists() else []
    kept = [ln for ln in lines if not ln.strip() or ln.lstrip().startswith("#")
            or target not in ln.split()[0].split(",")]
    kept.append(f"{target} {key}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(kept) + "\n")
