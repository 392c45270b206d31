"""The ``scrape`` check against real exporters and a misbehaving server on loopback."""

from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server
from pydantic import ValidationError

from watchkeeper.monitor.checks import check_types
from watchkeeper.monitor.checks.scrape import Config
from watchkeeper.monitor.model import CheckContext, CheckResult, State


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(url: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 15
    while True:
        try:
            with httpx.Client() as c:
                c.get(url, timeout=1.0)
            return
        except httpx.TransportError:
            assert proc.poll() is None, "the exporter exited at start"
            assert time.monotonic() < deadline, "the exporter did not start listening"
            time.sleep(0.05)


@pytest.fixture(scope="module")
def node_exporter_url() -> Iterator[str]:
    """prometheus-node-exporter on an ephemeral loopback port, stopped afterwards."""
    exe = shutil.which("prometheus-node-exporter")
    assert exe, "prometheus-node-exporter (Debian package) is needed for this test"
    port = _free_port()
    proc = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        _wait_listening(url, proc)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture(scope="module")
def client_python_url() -> Iterator[str]:
    """A prometheus_client registry served by its own start_http_server on 127.0.0.1."""
    registry = CollectorRegistry()
    Counter("orders", "Orders taken.", ["shop"], registry=registry).labels("north").inc(4)
    Gauge("queue_depth", "Depth.", ["job"], registry=registry).labels("exporter-job").set(9)
    server, thread = start_http_server(0, addr="127.0.0.1", registry=registry)
    try:
        yield f"http://127.0.0.1:{server.server_port}/metrics"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


class _Handler(BaseHTTPRequestHandler):
    routes: ClassVar[dict[str, tuple[int, str, str]]] = {
        "/garbage": (200, "text/plain; version=0.0.4", "<html>not metrics</html>\n{{{\n"),
        "/half": (200, "text/plain; version=0.0.4", "ok_metric 1\nbroken_metric abc\nok2 2\n"),
        "/error": (500, "text/plain", "boom\n"),
        "/many": (200, "text/plain; version=0.0.4",
                  "".join(f'many{{i="{i}"}} {i}\n' for i in range(120))),
        "/om": (200, "application/openmetrics-text; version=1.0.0; charset=utf-8",
                "# TYPE c counter\nc_total{a=\"1\"} 3 1700000000.5 # {t=\"x\"} 1\n# EOF\n"),
        "/empty": (200, "text/plain; version=0.0.4", ""),
    }

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        if parts.path == "/slow":
            time.sleep(1.0)
            status, ctype, body = 200, "text/plain", "late 1\n"
        elif parts.path == "/echo":
            q = parse_qs(parts.query)
            status, ctype = 200, "text/plain; version=0.0.4"
            body = (f'echo{{accept="{self.headers["Accept"]}",token="{self.headers["X-Token"]}",'
                    f'module="{",".join(q.get("module", []))}",job="scraped",'
                    f'instance="orig"}} 1 1600000000000\n')
        else:
            status, ctype, body = self.routes.get(parts.path, (404, "text/plain", "no\n"))
        data = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the check gave up waiting (the /slow route)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def odd_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


async def _run(timeout: float = 5.0, client: httpx.AsyncClient | None = None,
               **config: object) -> CheckResult:
    cfg = Config.model_validate({"name": "scrape1", "type": "scrape", **config})
    resources = {"http_client": client} if client is not None else {}
    return await cfg.build().run(CheckContext(timeout=timeout, resources=resources))


def test_registered_as_a_check_type() -> None:
    assert check_types()["scrape"] is Config


async def test_node_exporter(node_exporter_url: str) -> None:
    result = await _run(url=node_exporter_url)
    assert result.state is State.OK, result.summary
    assert result.summary.startswith("scraped ") and result.summary.endswith(" ms")
    port = urlsplit(node_exporter_url).port
    target = {"job": "scrape1", "instance": f"127.0.0.1:{port}"}
    load = [m for m in result.metrics if m.name == "node_load1"]
    assert len(load) == 1 and dict(load[0].labels) == target
    cpu = [m for m in result.metrics if m.name == "node_cpu_seconds_total"]
    assert cpu and all({"cpu", "mode", "job", "instance"} == set(m.labels) for m in cpu)
    meta = {m.name: m for m in result.metrics if m.name.startswith("scrape_")}
    n = int(result.summary.split()[1])
    assert meta["scrape_samples_scraped"].value == n
    assert dict(meta["scrape_samples_scraped"].labels) == target
    assert 0 < meta["scrape_duration_seconds"].value < 5
    assert len(result.metrics) == n + 3  # + scraped, duration, invalid lines (0)


async def test_client_python_server_and_honor_labels(client_python_url: str) -> None:
    result = await _run(url=client_python_url, labels={"team": "ops"})
    assert result.state is State.OK, result.summary
    depth = next(m for m in result.metrics if m.name == "queue_depth")
    # the exporter's own job label is kept as exported_job; the target's wins
    assert depth.labels["job"] == "scrape1" and depth.labels["exported_job"] == "exporter-job"
    assert depth.labels["team"] == "ops" and depth.value == 9
    orders = next(m for m in result.metrics if m.name == "orders_total")
    assert orders.labels["shop"] == "north" and orders.value == 4

    honored = await _run(url=client_python_url, honor_labels=True)
    depth = next(m for m in honored.metrics if m.name == "queue_depth")
    assert depth.labels["job"] == "exporter-job" and "exported_job" not in depth.labels


async def test_accept_header_params_headers_and_timestamps(odd_server: str) -> None:
    result = await _run(url=f"{odd_server}/echo", params={"module": ["a", "b"]},
                        headers={"X-Token": "s3cret"})
    assert result.state is State.OK, result.summary
    echo = next(m for m in result.metrics if m.name == "echo")
    assert echo.labels["accept"] == (
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5")
    assert echo.labels["token"] == "s3cret" and echo.labels["module"] == "a,b"
    assert echo.timestamp == 1600000000.0
    assert echo.labels["exported_instance"] == "orig"
    plain = await _run(url=f"{odd_server}/echo", honor_timestamps=False)
    assert next(m for m in plain.metrics if m.name == "echo").timestamp is None


async def test_openmetrics_body(odd_server: str) -> None:
    result = await _run(url=f"{odd_server}/om")
    assert result.state is State.OK, result.summary
    c = next(m for m in result.metrics if m.name == "c_total")
    assert (c.value, c.timestamp) == (3.0, 1700000000.5)


@pytest.mark.parametrize(("path", "state", "summary"), [
    ("/error", State.CRITICAL, "HTTP 500 Internal Server Error"),
    ("/garbage", State.CRITICAL, "no valid samples, 2 bad lines (line 1: invalid metric name"),
    ("/half", State.WARNING, "scraped 2 samples in"),
    ("/nothing-here", State.CRITICAL, "HTTP 404 Not Found"),
    ("/empty", State.OK, "scraped 0 samples in"),
])
async def test_bad_answers(odd_server: str, path: str, state: State, summary: str) -> None:
    result = await _run(url=f"{odd_server}{path}")
    assert result.state is state, result.summary
    assert summary in result.summary
    meta = {m.name: m.value for m in result.metrics if m.name.startswith(("scrape_", "watch"))}
    assert "scrape_duration_seconds" in meta
    if path == "/half":
        assert "skipped 1 bad lines (line 2: invalid value 'abc' for metric broken_metric)" in (
            result.summary)
        assert meta["watchkeeper_scrape_invalid_lines"] == 1
        assert {m.name for m in result.metrics} >= {"ok_metric", "ok2"}
    if path == "/garbage":
        assert not any(m.name not in meta for m in result.metrics)


async def test_sample_limit(odd_server: str) -> None:
    result = await _run(url=f"{odd_server}/many", sample_limit=100)
    assert result.state is State.CRITICAL
    assert "120 samples exceed sample_limit 100; none stored" in result.summary
    assert {m.name for m in result.metrics} == {
        "scrape_samples_scraped", "scrape_duration_seconds", "watchkeeper_scrape_invalid_lines"}
    ok = await _run(url=f"{odd_server}/many", sample_limit=0)
    assert ok.state is State.OK and len(ok.metrics) == 123


async def test_connection_refused_and_timeout(odd_server: str) -> None:
    port = _free_port()
    refused = await _run(url=f"http://127.0.0.1:{port}/metrics")
    assert refused.state is State.CRITICAL
    assert refused.summary.startswith(f"http://127.0.0.1:{port}/metrics: ")
    assert "refused" in refused.summary.lower()
    start = time.monotonic()
    slow = await _run(url=f"{odd_server}/slow", timeout=0.3)
    assert time.monotonic() - start < 0.9
    assert slow.state is State.CRITICAL
    assert slow.summary == f"{odd_server}/slow: no answer within 0.3s"


async def test_body_size_limit(odd_server: str) -> None:
    result = await _run(url=f"{odd_server}/many", body_size_limit="100B")
    assert result.state is State.CRITICAL
    assert "body larger than body_size_limit (100 B)" in result.summary


async def test_reuses_shared_http_client(client_python_url: str) -> None:
    async with httpx.AsyncClient() as client:
        first = await _run(url=client_python_url, client=client)
        second = await _run(url=client_python_url, client=client)
        assert not client.is_closed
    assert first.state is second.state is State.OK


@pytest.mark.parametrize(("url", "instance"), [
    ("http://example.test/metrics", "example.test:80"),
    ("https://example.test/metrics", "example.test:443"),
    ("http://[::1]:9100/metrics", "[::1]:9100"),
])
def test_instance_label(url: str, instance: str) -> None:
    from watchkeeper.monitor.checks.scrape import target_labels

    cfg = Config(name="web", type="scrape", url=url, labels={"env": "prod"})
    assert target_labels(cfg) == {"job": "web", "instance": instance, "env": "prod"}


@pytest.mark.parametrize("url", ["ftp://x/metrics", "localhost:9100", "http://h:99999/"])
def test_rejects_non_http_urls(url: str) -> None:
    with pytest.raises(ValidationError, match="URL like http|invalid port"):
        Config(name="x", type="scrape", url=url)
