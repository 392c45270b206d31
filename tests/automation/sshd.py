"""Real OpenSSH servers on loopback for the automation tests (and benchmarks/exec.py).

Usage from a test (fixtures live in tests/automation/conftest.py)::

    def test_something(sshd_hosts):
        fleet = sshd_hosts(3)                 # 3 sshd, each on its own 127.0.0.x and port
        fleet.hosts                           # [Host(name="h10", address="127.0.0.10", port=..., user="root",
                                              #       key_file=fleet.client_key), ...]
        fleet.known_hosts                     # Path: a known_hosts file trusting all of them
        fleet.client_key                      # Path: the private key every server accepts
        fleet.servers[0].accepted()           # how many logins that sshd has accepted so far
        fleet.servers[0].log()                # its log text (sshd -D -e writes it to a file)

    # options: sshd_hosts(n, extra_config="MaxStartups 2:100:2", user="wkbecome",
    #                     fresh_host_key=True, known=False, prefix="web")

``sshd_hosts`` is session-scoped: every server it starts runs until the session ends
and is stopped then, by PID. ``sshd_session`` (also session-scoped) is the
:class:`SSHDFactory` itself, for tests that want ``factory.start(...)`` / ``server.stop()``.

What each server is: ``/usr/sbin/sshd -D -e -f CONFIG`` bound to one loopback address
(127.0.0.10, .11, ...; then 127.0.1.x) on a free port, with an ed25519 host key made by
``ssh-keygen`` once per session (or per server with ``fresh_host_key=True``),
``AuthorizedKeysFile`` pointing at the session's generated client key (so any local user
can log in with it), ``UsePAM no``, ``StrictModes no``, password login off, the PID file
and log in the session's tmp dir. sshd needs ``/run/sshd`` (privilege separation
directory); it is created when missing. Tests run as root in CI; as a non-root user sshd
still runs (it can then only log in as that user).

Requires Debian ``openssh-server`` (``/usr/sbin/sshd``) and ``ssh-keygen``; a missing
binary is a loud failure, never a skip.
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from watchkeeper.automation.hosts import Host

SSHD = "/usr/sbin/sshd"
FIRST_ADDRESS = ipaddress.IPv4Address("127.0.0.10")


def keygen(path: Path, comment: str = "watchkeeper-test") -> Path:
    """An ed25519 key pair at ``path`` / ``path.pub`` made by ssh-keygen (no passphrase)."""
    exe = shutil.which("ssh-keygen")
    if exe is None:
        raise RuntimeError("ssh-keygen not found: install Debian openssh-client")
    subprocess.run([exe, "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
                   check=True)
    return path


def free_port(address: str) -> int:
    with socket.socket() as s:
        s.bind((address, 0))
        return int(s.getsockname()[1])


@dataclass
class SSHDServer:
    """One running sshd."""

    name: str
    address: str
    port: int
    host_key: Path
    config: Path
    log_path: Path
    pid_file: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def accepted(self) -> int:
        """How many logins this sshd accepted (``Accepted publickey`` lines in its log)."""
        return sum(1 for line in self.log().splitlines()
                   if re.match(r"Accepted \S+ for ", line))

    def host_key_line(self) -> str:
        """This server's known_hosts line."""
        pub = Path(str(self.host_key) + ".pub").read_text().split()
        target = self.address if self.port == 22 else f"[{self.address}]:{self.port}"
        return f"{target} {pub[0]} {pub[1]}"

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL if it lingers. Idempotent."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


@dataclass
class SSHDFleet:
    """Servers started together, with Host objects that reach them."""

    servers: list[SSHDServer]
    hosts: list[Host]
    known_hosts: Path
    client_key: Path
    user: str

    def stop(self) -> None:
        for s in self.servers:
            s.stop()


@dataclass
class SSHDFactory:
    """Starts sshd processes on distinct loopback addresses; ``close()`` stops them all."""

    workdir: Path
    client_key: Path = field(init=False)
    host_key: Path = field(init=False)
    _next: int = 0
    _servers: list[SSHDServer] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not os.path.exists(SSHD):
            raise RuntimeError(f"{SSHD} not found: install Debian openssh-server")
        if not os.path.isdir("/run/sshd"):
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
        self.client_key = keygen(self.workdir / "client_ed25519", "watchkeeper-test-client")
        self.host_key = keygen(self.workdir / "ssh_host_ed25519_key", "watchkeeper-test-host")
        auth = self.workdir / "authorized_keys"
        auth.write_text(Path(str(self.client_key) + ".pub").read_text())
        auth.chmod(0o644)

    @classmethod
    def create(cls, base: Path | None = None) -> SSHDFactory:
        workdir = Path(tempfile.mkdtemp(prefix="wk-sshd-", dir=base))
        workdir.chmod(0o755)  # sshd reads authorized_keys as the login user
        return cls(workdir)

    def _address(self) -> str:
        addr = FIRST_ADDRESS + self._next
        self._next += 1
        return str(addr)

    def start_one(self, *, extra_config: str = "", fresh_host_key: bool = False,
                  name: str | None = None) -> SSHDServer:
        address = self._address()
        port = free_port(address)
        tag = address.replace(".", "_") + f"_{port}"
        d = self.workdir / tag
        d.mkdir()
        host_key = keygen(d / "host_key", f"host-{address}") if fresh_host_key else self.host_key
        config = d / "sshd_config"
        # sshd takes the first value of a keyword: extra_config goes first to win.
        config.write_text("\n".join([
            extra_config,
            f"ListenAddress {address}:{port}",
            f"HostKey {host_key}",
            f"AuthorizedKeysFile {self.workdir / 'authorized_keys'}",
            "UsePAM no",
            "StrictModes no",
            f"PidFile {d / 'sshd.pid'}",
            "PasswordAuthentication no",
            "KbdInteractiveAuthentication no",
            "PermitRootLogin prohibit-password",
            "LogLevel INFO",
            "UseDNS no",
            "",
        ]))
        log_path = d / "sshd.log"
        server = SSHDServer(name=name or f"h{address.rsplit('.', 1)[1]}", address=address,
                            port=port, host_key=host_key, config=config, log_path=log_path,
                            pid_file=d / "sshd.pid")
        with open(log_path, "wb") as log:
            server.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                           stdout=log, stderr=subprocess.STDOUT,
                                           stdin=subprocess.DEVNULL)
        self._servers.append(server)
        return server

    def wait_ready(self, servers: list[SSHDServer], timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        for s in servers:
            while "Server listening on" not in s.log():
                if s.proc is None or s.proc.poll() is not None:
                    raise RuntimeError(f"sshd on {s.address}:{s.port} exited:\n{s.log()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"sshd on {s.address}:{s.port} not listening:\n{s.log()}")
                time.sleep(0.01)

    def start(self, n: int, *, extra_config: str = "", user: str | None = None,
              fresh_host_key: bool = False, known: bool = True, prefix: str = "h") -> SSHDFleet:
        """Start ``n`` servers and return them with Hosts and a known_hosts file.

        ``known=False`` writes an empty known_hosts file (for unknown-key tests).
        """
        servers = [self.start_one(extra_config=extra_config, fresh_host_key=fresh_host_key)
                   for _ in range(n)]
        self.wait_ready(servers)
        for s in servers:
            s.name = f"{prefix}{s.address.replace('127.0.', '').replace('.', '_')}"
        user = user or getpass.getuser()
        kh = self.workdir / f"known_hosts_{servers[0].address}_{servers[0].port}"
        kh.write_text("".join(s.host_key_line() + "\n" for s in servers) if known else "")
        hosts = [Host(name=s.name, address=s.address, port=s.port, user=user,
                      key_file=str(self.client_key)) for s in servers]
        return SSHDFleet(servers=servers, hosts=hosts, known_hosts=kh,
                         client_key=self.client_key, user=user)

    def close(self) -> None:
        for s in self._servers:
            s.stop()
        self._servers.clear()
        shutil.rmtree(self.workdir, ignore_errors=True)
