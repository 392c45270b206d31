"""A throwaway PostgreSQL cluster for the tests: one per session, a fresh database per test.

The cluster runs Debian's server binaries (``/usr/lib/postgresql/<ver>/bin``) in a
temporary directory, listening on 127.0.0.1 on a free port and on a unix socket in
that directory, with durability off for speed. As root it runs as the ``postgres``
system user (initdb refuses root). ``scripts/test-deps.sh`` installs the binaries.

Fixtures (register with ``pytest_plugins = ["tests.pg"]``):

- ``pg_cluster``: the session's :class:`Cluster`.
- ``pg_url``: a SQLAlchemy URL (``postgresql+psycopg://wk:<password>@127.0.0.1:<port>/<db>``)
  of a new, empty database, dropped after the test.
"""

from __future__ import annotations

import gc
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

USER = "wk"
PASSWORD = "s3cret-pg-pw"  # a password the tests can look for in logs and errors
_INSTALL_HINT = ("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin: "
                 "run scripts/test-deps.sh (it installs the Debian package `postgresql`)")


def find_bindir() -> Path:
    """The newest ``/usr/lib/postgresql/<ver>/bin`` holding ``postgres`` and ``initdb``.

    Raises RuntimeError saying how to install them when there is none.
    """
    found = []
    for path in glob.glob("/usr/lib/postgresql/*/bin"):
        ver = Path(path).parent.name
        if os.path.exists(os.path.join(path, "postgres")) and os.path.exists(os.path.join(path, "initdb")):
            try:
                found.append((float(ver), Path(path)))
            except ValueError:
                continue
    if not found:
        raise RuntimeError(_INSTALL_HINT)
    return max(found)[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running PostgreSQL cluster; ``url(db)`` gives a SQLAlchemy URL for one of its databases."""

    bindir: Path
    root: Path  # the temporary directory holding data/, the socket and the log
    port: int
    pid: int = 0
    _as_postgres: list[str] = field(default_factory=list)
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def log(self) -> Path:
        return self.root / "postgres.log"

    def url(self, db: str = "postgres", *, password: str = PASSWORD, user: str = USER) -> str:
        return f"postgresql+psycopg://{user}:{password}@127.0.0.1:{self.port}/{db}"

    def _run(self, *args: str, timeout: float = 60.0) -> str:
        proc = subprocess.run([*self._as_postgres, *args], capture_output=True, text=True,
                              timeout=timeout, cwd=self.root, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}{proc.stderr}")
        return proc.stdout

    def start(self) -> None:
        """initdb, then start the server and wait until it accepts connections."""
        pwfile = self.root / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(pwfile, "postgres", "postgres")
            self._as_postgres = ["runuser", "-u", "postgres", "--"]
        os.chmod(self.root, 0o700)
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", USER, "-A", "scram-sha-256",
                  f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync", timeout=120)
        opts = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200 "
                "-c shared_buffers=64MB")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", opts,
                  "-w", "-t", "60", "start", timeout=90)
        self.pid = int((self.data / "postmaster.pid").read_text().split()[0])

    def stop(self) -> None:
        """Stop the server (fast shutdown) and check that its process is gone."""
        if not self.pid:
            return
        try:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and _alive(self.pid):
                time.sleep(0.05)
            self.pid = 0

    def admin(self, sql: str) -> None:
        """Run one statement as the superuser in the ``postgres`` database (autocommit)."""
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD,
                             dbname="postgres", autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self) -> str:
        """A new empty database (from template0); returns its name."""
        name = f"wk_test_{os.getpid()}_{next(self._seq)}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return name

    def drop_database(self, name: str) -> None:
        self.admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def start_cluster() -> tuple[Cluster, tempfile.TemporaryDirectory[str]]:
    """Start a throwaway cluster; the caller stops it and cleans up the directory."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        raise RuntimeError("psycopg is not installed: pip install 'watchkeeper[postgres]' "
                           "(or .venv/bin/pip install 'psycopg[binary]>=3.1,<4')") from None
    bindir = find_bindir()
    tmp = tempfile.TemporaryDirectory(prefix="wk-pg-")
    cluster = Cluster(bindir=bindir, root=Path(tmp.name), port=_free_port())
    try:
        cluster.start()
    except BaseException:
        log = cluster.log.read_text() if cluster.log.exists() else ""
        cluster.stop()
        tmp.cleanup()
        if log:
            raise RuntimeError(f"PostgreSQL did not start; its log:\n{log}") from None
        raise
    return cluster, tmp


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    """A PostgreSQL cluster for the whole test session; fails loudly when the binaries are missing."""
    try:
        cluster, tmp = start_cluster()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    try:
        yield cluster
    finally:
        try:
            cluster.stop()
        finally:
            tmp.cleanup()


@pytest.fixture
def pg_url(pg_cluster: Cluster) -> Iterator[str]:
    """The URL of a new, empty PostgreSQL database, dropped after the test."""
    name = pg_cluster.create_database()
    try:
        yield pg_cluster.url(name)
    finally:
        # engines the test left to the garbage collector close their pooled connections
        # now, while the database still exists, not during some later test
        gc.collect()
        pg_cluster.drop_database(name)
