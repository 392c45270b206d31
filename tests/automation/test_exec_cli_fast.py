"""``watchkeeper exec --server``: the warm path through a running server starts light.

A real ``watchkeeper up`` on loopback (localhost only, commands run locally), the real
command line as a subprocess; a TLS peer with a test CA for https. The point of the
path is what it does *not* import, so that is asserted too.
"""

from __future__ import annotations

import json
import os
import resource
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import trustme

from tests.e2e_helpers import ROOT, config_server, free_port
from watchkeeper.cli._table import render_table, sanitize

TOKEN = "fast-path-token-0123456789"
CLI = [sys.executable, "-m", "watchkeeper"]
HEAVY = ("httpx", "pydantic", "sqlalchemy", "asyncssh", "rich", "typer", "yaml", "http.client",
         "asyncio", "watchkeeper.errors", "watchkeeper.config")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A running server (token in its data dir's file, not in the config): (URL, config)."""
    d = tmp_path_factory.mktemp("fast")
    data = d / "data"
    cfg = d / "watchkeeper.yaml"
    cfg.write_text(f"collectors: {{host: {{enabled: false}}}}\nstorage: {{data_dir: {data}}}\n")
    port = free_port()
    env_token = os.environ.pop("WATCHKEEPER_TOKEN", None)
    try:
        with config_server(cfg, data, port):
            yield f"http://127.0.0.1:{port}", cfg
    finally:
        if env_token is not None:
            os.environ["WATCHKEEPER_TOKEN"] = env_token


def run(args: list[str], *, token: str | None, cwd: Path | None = None,
        extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("WATCHKEEPER_TOKEN", "WATCHKEEPER_CONFIG", "WATCHKEEPER_SERVER")}
    env["NO_COLOR"] = "1"
    if token is not None:
        env["WATCHKEEPER_TOKEN"] = token
    env.update(extra_env or {})
    return subprocess.run([*CLI, *args], capture_output=True, text=True, env=env,
                          cwd=cwd or ROOT, timeout=60)


def data_token(cfg: Path) -> str:
    return (cfg.parent / "data" / "token").read_text().strip()


def test_warm_exec_imports_nothing_heavy(server: tuple[str, Path]) -> None:
    url, cfg = server
    env = {**os.environ, "WATCHKEEPER_TOKEN": data_token(cfg)}
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "watchkeeper", "exec",
                           "localhost", "--server", url, "--json", "--", "echo", "fast"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert json.loads(proc.stdout)[0]["stdout"] == "fast\n"
    imported = {line.rsplit("|", 1)[1].strip() for line in proc.stderr.splitlines()
                if line.startswith("import time:") and "|" in line}
    for heavy in HEAVY:
        assert not {m for m in imported if m == heavy or m.startswith(heavy + ".")}, heavy
    assert "done 1, failed 0, unreachable 0, timeout 0, remaining 0 of 1" in proc.stderr


def test_table_json_and_exit_status_through_the_server(server: tuple[str, Path]) -> None:
    url, cfg = server
    tok = data_token(cfg)
    ok = run(["exec", "localhost", "--server", url, "--", "echo", "hello"], token=tok)
    assert ok.returncode == 0, ok.stderr
    lines = ok.stdout.splitlines()
    assert lines[0].startswith("┏") and lines[-1].startswith("└")
    assert "┃ host " in lines[1] and "│ localhost │ ok     │ 0    │" in lines[3]
    assert lines[3].rstrip().endswith("│ hello  │")
    bad = run(["exec", "localhost", "--server", url + "/", "--json", "--", "exit 3"], token=tok)
    assert bad.returncode == 1
    (res,) = json.loads(bad.stdout)
    assert (res["status"], res["exit_code"]) == ("failed", 3)
    slow = run(["exec", "localhost", "--server", url, "--timeout", "1s", "--json", "--",
                "sleep", "5"], token=tok)
    assert slow.returncode == 1
    assert json.loads(slow.stdout)[0]["status"] == "timeout"


def test_token_comes_from_the_data_dir_when_not_in_the_environment(
        server: tuple[str, Path]) -> None:
    url, cfg = server
    r = run(["exec", "localhost", "--server", url, "--config", str(cfg), "--json", "--",
             "true"], token=None)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)[0]["status"] == "ok"


@pytest.mark.parametrize(
    ("args", "token", "code", "message"),
    [
        (["exec", "localhost", "--server", "{url}", "--", "true"], "wrong", 2,
         "error: {url}: HTTP 401: missing or wrong API token"),
        (["exec", "nosuch", "--server", "{url}", "--", "true"], None, 2,
         "error: {url}: HTTP 400: no host or group named 'nosuch'"),
        (["exec", "localhost", "--server", "http://127.0.0.1:1", "--", "true"], None, 3,
         "error: cannot reach watchkeeper at http://127.0.0.1:1: [Errno 111] Connection refused"
         "\n  hint: start it with `watchkeeper up`, or check --server"),
        (["exec", "localhost", "--server", "ftp://127.0.0.1", "--", "true"], None, 2,
         "error: --server 'ftp://127.0.0.1' is not an http:// or https:// URL"),
        (["exec", "localhost", "--server", "{url}", "--timeout", "soon", "--", "true"], None, 2,
         "error: --timeout 'soon' is not a duration (e.g. 30s, 5m)"),
    ],
)
def test_errors_keep_their_messages_and_exit_codes(server: tuple[str, Path], args: list[str],
                                                   token: str | None, code: int,
                                                   message: str) -> None:
    url, cfg = server
    r = run([a.replace("{url}", url) for a in args], token=token or data_token(cfg))
    assert r.returncode == code, r.stderr
    assert r.stderr.startswith(message.replace("{url}", url)), r.stderr
    assert "Traceback" not in r.stderr


class _TLSPeer:
    """An https endpoint with a test CA's certificate that answers /api/v1/exec with one
    result, chunked (as a TLS-terminating proxy in front of watchkeeper might)."""

    def __init__(self, tmp: Path) -> None:
        ca = trustme.CA()
        self.ca_file = tmp / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        seen: list[dict[str, str]] = []
        self.seen = seen

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                seen.append({"path": self.path, "auth": self.headers.get("Authorization", ""),
                             "body": body.decode()})
                answer = json.dumps({"results": [{"host": "h1", "status": "ok", "exit_code": 0,
                                                  "stdout": "tls\n", "stderr": "",
                                                  "duration_seconds": 0.1, "error": None,
                                                  "truncated": False}]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                for part in (answer[:10], answer[10:]):
                    self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(ctx)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> _TLSPeer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)


def test_https_is_verified(tmp_path: Path) -> None:
    with _TLSPeer(tmp_path) as peer:
        url = f"https://127.0.0.1:{peer.port}/prefix"
        trusted = run(["exec", "web", "--server", url, "--json", "--", "echo", "tls"],
                      token="t0k", extra_env={"SSL_CERT_FILE": str(peer.ca_file)})
        assert trusted.returncode == 0, trusted.stderr
        assert json.loads(trusted.stdout)[0]["stdout"] == "tls\n"
        (req,) = peer.seen
        assert req["path"] == "/prefix/api/v1/exec" and req["auth"] == "Bearer t0k"
        assert json.loads(req["body"]) == {"pattern": "web", "command": "echo tls", "forks": 50,
                                           "timeout": None}
        untrusted = run(["exec", "web", "--server", url, "--", "true"], token="t0k",
                        extra_env={"SSL_CERT_FILE": str(tmp_path / "none.pem")})
        assert untrusted.returncode == 3
        assert "certificate verify failed" in untrusted.stderr
        assert len(peer.seen) == 1


def test_help_stays_fast() -> None:
    """Under 0.3 s of CPU (on an idle machine that is its wall time too; CPU time does not
    grow when other work shares the machine, as wall time does on a busy CI runner)."""
    best = min(_cpu_seconds([*CLI, "--help"]) for _ in range(3))
    assert best < 0.3, f"watchkeeper --help took {best:.2f}s of CPU"


def _cpu_seconds(argv: list[str]) -> float:
    """User + system CPU seconds of running ``argv`` to its end."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(argv, capture_output=True, check=True, timeout=30)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def test_table_folds_to_the_width_and_keeps_control_characters_out() -> None:
    text = render_table(["host", "status", "output"],
                        [["web1", "ok", "x" * 50 + "\n" + "tab\there"],
                         ["web2", "failed", "\x1b[2Jwiped\r"]], width=30)
    lines = text.splitlines()
    assert all(len(line) <= 30 for line in lines), text
    assert "\x1b" not in text and "\r" not in text
    assert "^[[2Jwiped" in text
    output = [line.split("│")[3].strip() for line in lines[3:-1] if "│" in line]
    assert "".join(output[:5]) == "x" * 50 and output[5] == "tab     he"
    coloured = render_table(["h", "status"], [["a", "ok"]], width=80, colours=["green"],
                            colour=True)
    assert "\x1b[32mok\x1b[0m" in coloured and "\x1b[1mh\x1b[0m" in coloured
    assert sanitize("a\x07b\tc") == "a^Gb    c"


@pytest.mark.parametrize("framing", ["length", "close", "chunked"])
def test_raw_http_client_reads_large_answers_in_every_framing(framing: str) -> None:
    """The fast path's one-request client: 8 MB come back whole however they are framed."""
    import socket as _socket

    from watchkeeper.cli._http import post

    payload = bytes(range(256)) * (8 * 4096)
    with _socket.create_server(("127.0.0.1", 0)) as srv:
        port = srv.getsockname()[1]

        def answer() -> None:
            conn, _ = srv.accept()
            with conn:
                request = b""
                while b"\r\n\r\n" not in request:
                    request += conn.recv(65536)
                head = b"HTTP/1.1 200 OK\r\n"
                if framing == "length":
                    conn.sendall(head + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
                elif framing == "close":
                    conn.sendall(head + b"\r\n" + payload)
                else:
                    conn.sendall(head + b"Transfer-Encoding: chunked\r\n\r\n")
                    for i in range(0, len(payload), 1_000_003):
                        part = payload[i:i + 1_000_003]
                        conn.sendall(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                    conn.sendall(b"0\r\n\r\n")

        t = threading.Thread(target=answer)
        t.start()
        status, body = post("http", "127.0.0.1", port, "/x", b"{}", {}, connect_timeout=5,
                            read_timeout=10)
        t.join(10)
    assert status == 200 and body == payload
