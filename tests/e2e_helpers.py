"""Start real watchkeeper servers and the example's demo services as subprocesses."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent
WATCHKEEPER = [sys.executable, "-m", "watchkeeper"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 30.0,
              log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200 (a server's ready or health endpoint); fail with
    what the process printed (its piped stdout, else its piped stderr, else ``log``, the
    file it writes to) if it exits or does not answer in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pipe = proc.stdout or proc.stderr
            out = pipe.read().decode(errors="replace") if pipe else ""
            raise AssertionError(f"server exited with {proc.returncode}:\n{out}{_tail(log)}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {timeout}s{_tail(log)}")


def _tail(log: Path | None) -> str:
    return f"\n{log.read_text(errors='replace')[-4000:]}" if log is not None and log.exists() else ""


def _end(proc: subprocess.Popen[bytes], sig: int, timeout: float) -> bool:
    """Send ``sig`` and wait; SIGKILL after ``timeout``. Closes the pipes. False if it
    had to be killed."""
    in_time = True
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            in_time = False
    for pipe in (proc.stdout, proc.stderr):
        if pipe:
            pipe.close()
    return in_time


def stop(proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    """Stop a server under test: it must exit on ``sig`` within ``timeout``."""
    if not _end(proc, sig, timeout):
        raise AssertionError("server did not stop on SIGTERM")
    return proc.returncode


def terminate(proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """End a helper process (a Prometheus, an Alertmanager): SIGTERM, SIGKILL if it lingers."""
    _end(proc, signal.SIGTERM, timeout)


@contextmanager
def prometheus_from_openmetrics(om: Path, root: Path) -> Iterator[str]:
    """A throwaway Prometheus on loopback serving the samples of the OpenMetrics file ``om``
    (made into blocks by ``promtool tsdb create-blocks-from openmetrics`` under ``root``);
    yields its base URL once it is ready, and ends it after."""
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    assert prometheus and promtool, "this test needs Prometheus (Debian package prometheus)"
    done = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(root / "prom")],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\n")
    port, log = free_port(), root / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([prometheus, f"--config.file={root / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={root / 'prom'}", "--storage.tsdb.retention.time=100y",
                                 f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/-/ready", proc, log=log)
        yield f"http://127.0.0.1:{port}"
    finally:
        terminate(proc)


@contextmanager
def server(args: list[str], env: dict[str, str] | None = None, *, port: int,
           cwd: Path | None = None) -> Iterator[subprocess.Popen[bytes]]:
    full_env = {**os.environ, **(env or {})}
    proc = subprocess.Popen([*WATCHKEEPER, "up", "--listen", f"127.0.0.1:{port}", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=full_env,
                            cwd=cwd or ROOT)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        yield proc
    finally:
        stop(proc)


@contextmanager
def config_server(cfg: Path, data: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    """``watchkeeper up`` with a config file and a data dir, run from the config's folder."""
    with server(["--config", str(cfg), "--data-dir", str(data)], port=port,
                cwd=cfg.parent) as proc:
        yield proc


def wait_for(pred: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@contextmanager
def demo_services(tmp: Path) -> Iterator[dict[str, str]]:
    dns_port, tls_port = free_port(), free_port()
    ca = tmp / "demo-ca.pem"
    proc = subprocess.Popen([sys.executable, str(ROOT / "examples" / "demo_services.py"),
                             "--dns-port", str(dns_port), "--tls-port", str(tls_port),
                             "--ca-file", str(ca)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().decode()
        assert "dns on" in line, line
        yield {"WK_DNS_PORT": str(dns_port), "WK_TLS_PORT": str(tls_port), "WK_CA_FILE": str(ca)}
    finally:
        stop(proc)


class ServerThread:
    """uvicorn serving ``app`` on a socket bound before the app is built (so a check can
    point at it), in its own thread and event loop."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.server: uvicorn.Server | None = None
        self.thread: threading.Thread | None = None

    def start(self, app: Any) -> None:
        config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       name="uvicorn", daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise AssertionError("uvicorn did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        if self.server is not None and self.thread is not None:
            self.server.should_exit = True
            self.thread.join(10)
            assert not self.thread.is_alive(), "uvicorn did not stop"
        self.sock.close()
