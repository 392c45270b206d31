"""``wait`` and ``http`` steps with ``from: target``: the probe runs ON the target host through
its executor, against real sshd on 127.0.0.x and the local executor.

Every "target" is this machine, so "only reachable from the target" is shown with
addresses: the sshd hosts listen on 127.0.0.10+, the services the tests open listen on
127.0.0.1 only, and ``tcp: PORT`` means the host's address from watchkeeper but
127.0.0.1 from the target.

The tool fallbacks run on a "minimal" target: an sshd whose login user has ``/bin/sh``
(no rc files) and whose ``SetEnv PATH=`` names a directory the test fills with symlinks
to exactly the tools it wants there (curl only, wget only, nc only, bash only, none).
That user is the become tests' unprivileged one (``sudo_user`` creates it; needs root, as
CI runs).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.automation.sshd import SSHDFleet, free_port
from tests.monitor._servers import Request, Response, http_server, tls_server_context
from watchkeeper.automation.engine import RunEngine
from watchkeeper.automation.executors.local import LocalExecutor
from watchkeeper.automation.executors.router import Executors
from watchkeeper.automation.executors.ssh import SSHExecutor
from watchkeeper.automation.hosts import Host
from watchkeeper.automation.runbook import load_runbook
from watchkeeper.automation.runs import RunRecord, RunStore
from watchkeeper.errors import ConfigError
from watchkeeper.eventlog import EventLog
from watchkeeper.store.engine import open_engine
from watchkeeper.testing.clock import FakeClock

LOCAL = Host(name="localhost", connection="local")
BASE_TOOLS = ("date", "sleep", "tr", "sed", "tail", "dd", "wc", "mktemp", "rm", "cat")


# ---------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def fleet(sshd_hosts: Callable[..., SSHDFleet]) -> SSHDFleet:
    """A full target: the login user's PATH has python3."""
    return sshd_hosts(1, prefix="tgt")


@pytest.fixture(scope="module")
def bindir() -> Iterator[Path]:
    """The minimal target's whole PATH (world-readable: its login user is not root)."""
    d = Path(tempfile.mkdtemp(prefix="wk-probe-bin-"))
    d.chmod(0o755)
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def minimal(sshd_hosts: Callable[..., SSHDFleet], sudo_user: tuple[str, str],
            bindir: Path) -> SSHDFleet:
    return sshd_hosts(1, prefix="min", user=sudo_user[0], extra_config=f"SetEnv PATH={bindir}")


def toolbox(bindir: Path, *tools: str) -> Path:
    """Make ``bindir`` hold the basic tools plus ``tools``, nothing else (no python3)."""
    for entry in bindir.iterdir():
        entry.unlink()
    for name in (*BASE_TOOLS, *tools):
        found = shutil.which(name, path="/usr/bin:/bin")
        if found is None:
            raise RuntimeError(f"{name} not found: install it (Debian: curl, wget, "
                               "netcat-openbsd, bash, coreutils)")
        (bindir / name).symlink_to(found)
    return bindir


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    db = open_engine(None, tmp_path / "data")
    yield RunStore(db, eventlog=EventLog(db), poll_interval=0.05)
    db.dispose()


@pytest.fixture
async def engine(fleet: SSHDFleet, store: RunStore) -> Any:
    executors = Executors(LocalExecutor(), SSHExecutor(known_hosts=str(fleet.known_hosts)))
    yield RunEngine(executors, store, FakeClock(autojump=True))
    await executors.close()


@pytest.fixture
async def min_engine(minimal: SSHDFleet, store: RunStore) -> Any:
    executors = Executors(LocalExecutor(), SSHExecutor(known_hosts=str(minimal.known_hosts)))
    yield RunEngine(executors, store, FakeClock(autojump=True))
    await executors.close()


@pytest.fixture
def world_writable() -> Iterator[Path]:
    """Where an injected command would leave its mark, whichever user it ran as."""
    d = Path(tempfile.mkdtemp(prefix="wk-probe-pwn-"))
    d.chmod(0o777)
    yield d
    shutil.rmtree(d, ignore_errors=True)


class Recorder:
    """Routes for the HTTP tests, recording every request."""

    def __init__(self, failures_before_ok: int = 0) -> None:
        self.requests: list[Request] = []
        self.failures_before_ok = failures_before_ok

    async def __call__(self, req: Request) -> Response:
        self.requests.append(req)
        if req.path == "/health":
            doc = {"status": "ok", "version": "1.2.3"}
            return Response(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})
        if req.path == "/warming":
            if len([r for r in self.requests if r.path == "/warming"]) <= self.failures_before_ok:
                return Response(503, b"starting\n")
            return Response(200, b"ready\n")
        if req.path == "/echo":
            doc = {"method": req.method, "body": req.body.decode(), "headers": req.headers}
            return Response(201, json.dumps(doc).encode(), {"Content-Type": "application/json"})
        if req.path == "/big":
            return Response(200, b"x" * 100_000)
        return Response(404, f"no route {req.path}\n".encode())


def runbook(tmp_path: Path, text: str) -> Any:
    path = tmp_path / "rb.yaml"
    path.write_text(textwrap.dedent(text))
    return load_runbook(path)


def steps_of(rec: RunRecord, host: str) -> dict[str, Any]:
    return {s.step: s for s in rec.steps_for(host)}


# ---------------------------------------------------------------- tcp over SSH
async def test_tcp_from_target_reaches_a_port_only_the_target_can_see(
        tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    host = fleet.hosts[0]
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    logins = fleet.servers[0].accepted()
    try:
        rb = runbook(tmp_path, f"""
            name: local-port
            steps:
              - name: from target
                wait: {{tcp: {port}, from: target, timeout: 10s}}
              - name: from watchkeeper
                wait: {{tcp: {port}, timeout: 1s, interval: 200ms}}
                ignore_errors: true
        """)
        rec = await engine.run(rb, {}, [host])
    finally:
        server.close()
        await server.wait_closed()
    steps = steps_of(rec, host.name)
    target, wk = steps["from target"], steps["from watchkeeper"]
    assert target.status == "ok", target
    assert target.detail == f"127.0.0.1:{port} open after 1 probe(s) from {host.name}"
    assert target.command.startswith(f"# watchkeeper: wait for tcp 127.0.0.1:{port} on "
                                     f"{host.name} (from the target)\n")
    # from watchkeeper, PORT alone is the host's own address, where nothing listens
    assert wk.status == "timeout"
    assert f"; last: {host.address}:{port}: Connect call failed" in wk.detail
    # the target-side probe went over SSH (one login at most: connections are pooled)
    assert fleet.servers[0].accepted() <= logins + 1
    assert fleet.servers[0].accepted() >= 1


async def test_tcp_from_target_succeeds_after_the_port_opens_mid_wait(
        tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    host = fleet.hosts[0]
    port = free_port("127.0.0.1")
    opened: list[asyncio.Server] = []

    async def open_later() -> None:
        await asyncio.sleep(1.5)
        opened.append(await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", port))

    rb = runbook(tmp_path, f"""
        name: opens-later
        steps:
          - name: up
            wait: {{tcp: "127.0.0.1:{port}", from: target, timeout: 20s, interval: 300ms}}
    """)
    started = time.monotonic()
    try:
        async with asyncio.TaskGroup() as tg:
            tg.create_task(open_later())
            rec = await engine.run(rb, {}, [host])
    finally:
        for s in opened:
            s.close()
            await s.wait_closed()
    step = steps_of(rec, host.name)["up"]
    assert step.status == "ok", step
    attempts = int(step.detail.split(" after ")[1].split()[0])
    assert attempts >= 3
    assert step.detail == f"127.0.0.1:{port} open after {attempts} probe(s) from {host.name}"
    # one remote loop: every failed probe is a line of the same invocation's output
    lines = step.stdout.splitlines()
    assert len(lines) == attempts - 1
    assert lines[0] == f"probe 1: 127.0.0.1:{port}: Connection refused"
    assert time.monotonic() - started < 10


async def test_tcp_from_target_times_out_with_a_clear_message(
        tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    host = fleet.hosts[0]
    port = free_port("127.0.0.1")
    rb = runbook(tmp_path, f"""
        name: never-opens
        steps:
          - name: up
            wait: {{tcp: {port}, from: target, timeout: 2s, interval: 500ms}}
    """)
    started = time.monotonic()
    rec = await engine.run(rb, {}, [host])
    elapsed = time.monotonic() - started
    step = steps_of(rec, host.name)["up"]
    assert rec.status == "failed"
    assert step.status == "timeout"
    probes = len(step.stdout.splitlines())
    assert probes >= 3
    assert step.detail == (f"gave up after 2s ({probes} probes from {host.name}); "
                           f"last: 127.0.0.1:{port}: Connection refused")
    assert 1.5 < elapsed < 8


async def test_step_timeout_bounds_the_remote_loop_and_keeps_the_message(
        tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    host = fleet.hosts[0]
    port = free_port("127.0.0.1")
    rb = runbook(tmp_path, f"""
        name: step-timeout
        steps:
          - name: up
            wait: {{tcp: {port}, from: target, interval: 200ms}}
            timeout: 3s
    """)
    started = time.monotonic()
    rec = await engine.run(rb, {}, [host])
    step = steps_of(rec, host.name)["up"]
    assert step.status == "timeout"
    assert step.detail.startswith("gave up after 3s (")  # ours, not the engine's cut-off
    assert time.monotonic() - started < 10  # 3 s, the connection, and at most the backstop


# ---------------------------------------------------------------- http over SSH
async def test_http_from_target_checks_status_and_body(
        tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    host = fleet.hosts[0]
    rec_routes = Recorder()
    async with http_server(rec_routes) as srv:
        rb = runbook(tmp_path, f"""
            name: health
            steps:
              - name: healthy
                http: {{url: "{srv.base}/health", from: target, match: '"version": "1\\.2\\.\\d+"'}}
                register: health
              - name: use json
                run: echo {{{{ steps.health.json.version }}}} {{{{ steps.health.status_code }}}}
              - name: post
                http:
                  url: "{srv.base}/echo"
                  method: post
                  headers: {{X-Test: "one two", Content-Type: application/json}}
                  body: '{{"ping": 1}}'
                  status: 201
                  from: target
              - name: wrong body
                http: {{url: "{srv.base}/health", from: target, match: 'degraded'}}
                ignore_errors: true
              - name: wrong status
                http: {{url: "{srv.base}/missing", from: target, status: [200, 204]}}
                ignore_errors: true
              - name: big
                http: {{url: "{srv.base}/big", from: target}}
        """)
        rec = await engine.run(rb, {}, [host])
    steps = steps_of(rec, host.name)
    assert steps["healthy"].status == "ok", steps["healthy"]
    assert steps["healthy"].detail == f"HTTP 200 from {host.name}"
    assert json.loads(steps["healthy"].stdout) == {"status": "ok", "version": "1.2.3"}
    assert steps["use json"].stdout == "1.2.3 200\n"
    assert steps["post"].status == "ok" and steps["post"].detail == f"HTTP 201 from {host.name}"
    echo = json.loads(steps["post"].stdout)
    assert echo["method"] == "POST" and echo["body"] == '{"ping": 1}'
    assert echo["headers"]["x-test"] == "one two"
    assert steps["wrong body"].status == "failed"
    assert steps["wrong body"].detail == (f"HTTP 200 from {host.name}; body does not match "
                                          "'degraded'; error ignored")
    assert steps["wrong status"].detail == (f"HTTP 404 from {host.name}; wanted 200, 204; "
                                            "error ignored")
    assert steps["wrong status"].stdout == "no route /missing\n"
    assert steps["big"].status == "ok"
    assert steps["big"].detail == f"HTTP 200 from {host.name}; body cut at 65536 bytes"
    assert steps["big"].stdout == "x" * 65536


async def test_http_from_target_reports_a_refused_connection(
        tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    host = fleet.hosts[0]
    port = free_port("127.0.0.1")
    rb = runbook(tmp_path, f"""
        name: down
        steps:
          - name: call
            http: {{url: "http://127.0.0.1:{port}/", from: target, timeout: 3s}}
    """)
    rec = await engine.run(rb, {}, [host])
    step = steps_of(rec, host.name)["call"]
    assert step.status == "failed"
    assert step.detail == (f"GET http://127.0.0.1:{port}/ from {host.name}: "
                           f"http://127.0.0.1:{port}/: Connection refused")


async def test_wait_http_from_target_polls_until_the_status_comes(
        tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    host = fleet.hosts[0]
    routes = Recorder(failures_before_ok=3)
    async with http_server(routes) as srv:
        rb = runbook(tmp_path, f"""
            name: warm
            steps:
              - name: ready
                wait: {{http: "{srv.base}/warming", from: target, interval: 200ms, timeout: 20s}}
        """)
        rec = await engine.run(rb, {}, [host])
    step = steps_of(rec, host.name)["ready"]
    assert step.status == "ok", step
    assert step.detail == f"HTTP 200 after 4 probe(s) from {host.name}"
    assert step.stdout.splitlines() == [f"probe {i}: HTTP 503" for i in (1, 2, 3)]


async def test_tls_verification_is_on_unless_turned_off(
        tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    host = fleet.hosts[0]
    ca = trustme.CA()  # not trusted on the target
    async with http_server(Recorder(), ssl_context=tls_server_context(ca)) as srv:
        rb = runbook(tmp_path, f"""
            name: tls
            steps:
              - name: verified
                http: {{url: "{srv.base}/health", from: target}}
                ignore_errors: true
              - name: unverified
                http: {{url: "{srv.base}/health", from: target, verify: false}}
              - name: wait unverified
                wait: {{http: "{srv.base}/health", from: target, verify: false, timeout: 5s}}
        """)
        rec = await engine.run(rb, {}, [host])
    steps = steps_of(rec, host.name)
    assert steps["verified"].status == "failed"
    assert "CERTIFICATE_VERIFY_FAILED" in steps["verified"].detail
    assert steps["unverified"].status == "ok"
    assert steps["wait unverified"].status == "ok"


# ---------------------------------------------------------------- fallbacks (minimal target)
@pytest.mark.parametrize("tool", ["curl", "wget"])
async def test_http_without_python3_falls_back(tool: str, tmp_path: Path, minimal: SSHDFleet,
                                               bindir: Path, min_engine: RunEngine) -> None:
    toolbox(bindir, tool)
    host = minimal.hosts[0]
    routes = Recorder(failures_before_ok=2)
    async with http_server(routes) as srv:
        rb = runbook(tmp_path, f"""
            name: fallback
            steps:
              - name: ready
                wait: {{http: "{srv.base}/warming", from: target, interval: 200ms, timeout: 20s}}
              - name: healthy
                http: {{url: "{srv.base}/health", from: target, match: '"status": "ok"'}}
                register: health
              - name: post
                http:
                  url: "{srv.base}/echo"
                  method: PUT
                  headers: {{X-Test: "a b"}}
                  body: '@/etc/passwd'
                  status: 201
                  from: target
              - name: wrong
                http: {{url: "{srv.base}/missing", from: target}}
                ignore_errors: true
        """)
        rec = await min_engine.run(rb, {}, [host])
    steps = steps_of(rec, host.name)
    assert steps["ready"].status == "ok", steps["ready"]
    assert steps["ready"].detail == f"HTTP 200 after 3 probe(s) from {host.name}"
    assert steps["healthy"].status == "ok", steps["healthy"]
    assert json.loads(steps["healthy"].stdout)["version"] == "1.2.3"
    echo = json.loads(steps["post"].stdout)
    # curl's --data-raw / wget's --body-data: "@file" is sent as it is, never read
    assert (echo["method"], echo["body"], echo["headers"]["x-test"]) == ("PUT", "@/etc/passwd", "a b")
    assert steps["wrong"].detail == f"HTTP 404 from {host.name}; wanted 200; error ignored"
    assert steps["wrong"].stdout == "no route /missing\n"
    ua = routes.requests[-1].headers.get("user-agent", "")
    assert ua.lower().startswith(tool)  # the fallback tool made the requests


@pytest.mark.parametrize("tool", ["nc", "bash"])
async def test_tcp_without_python3_falls_back(tool: str, tmp_path: Path, minimal: SSHDFleet,
                                              bindir: Path, min_engine: RunEngine) -> None:
    toolbox(bindir, tool, *(["timeout"] if tool == "bash" else []))
    host = minimal.hosts[0]
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    closed = free_port("127.0.0.1")
    try:
        rb = runbook(tmp_path, f"""
            name: tcp-fallback
            steps:
              - name: open
                wait: {{tcp: {port}, from: target, timeout: 10s}}
              - name: closed
                wait: {{tcp: {closed}, from: target, timeout: 1s, interval: 300ms}}
                ignore_errors: true
        """)
        rec = await min_engine.run(rb, {}, [host])
    finally:
        server.close()
        await server.wait_closed()
    steps = steps_of(rec, host.name)
    assert steps["open"].status == "ok", steps["open"]
    assert steps["open"].detail == f"127.0.0.1:{port} open after 1 probe(s) from {host.name}"
    assert steps["closed"].status == "timeout"
    assert steps["closed"].detail.startswith("gave up after 1s (")
    assert "Connection refused" in steps["closed"].detail


async def test_a_target_without_any_tool_gets_a_clear_failure(
        tmp_path: Path, minimal: SSHDFleet, bindir: Path, min_engine: RunEngine) -> None:
    toolbox(bindir)
    host = minimal.hosts[0]
    rb = runbook(tmp_path, """
        name: no-tools
        steps:
          - name: tcp
            wait: {tcp: 80, from: target, timeout: 1s}
            ignore_errors: true
          - name: http
            http: {url: "http://127.0.0.1/", from: target}
            ignore_errors: true
    """)
    rec = await min_engine.run(rb, {}, [host])
    steps = steps_of(rec, host.name)
    assert steps["tcp"].status == "failed"
    assert steps["tcp"].detail == (
        "watchkeeper: a tcp probe from the target needs python3, nc or bash on the target's "
        f"PATH ({bindir}); none was found; error ignored")
    assert steps["http"].detail == (
        "watchkeeper: an http probe from the target needs python3, curl or wget on the "
        f"target's PATH ({bindir}); none was found; error ignored")


# ---------------------------------------------------------------- injection
HOSTILE_HEADERS = ["$(touch {d}/header-subst)", "`touch {d}/header-tick`",
                   "'; touch {d}/header-quote; '", "\"; touch {d}/header-dq; \""]


def _hostile_runbook(tmp_path: Path, base: str, d: Path) -> Any:
    headers = {f"X-H{i}": h.format(d=d) for i, h in enumerate(HOSTILE_HEADERS)}
    url = f"{base}/echo?q=';touch {d}/url-quote;'&r=$(touch {d}/url-subst)"
    url = url.replace(" ", "%20")
    return runbook(tmp_path, f"""
        name: hostile
        params:
          url: {{type: string, default: {json.dumps(url)}}}
          body: {{type: string, default: {json.dumps(f"$(touch {d}/body)")}}}
        steps:
          - name: echo
            http:
              url: "{{{{ params.url }}}}"
              method: POST
              headers: {json.dumps(headers)}
              body: "{{{{ params.body }}}}"
              status: 201
              from: target
          - name: wait
            wait: {{http: "{{{{ params.url }}}}", from: target, status: 201, timeout: 5s}}
    """)


def _assert_not_injected(rec: RunRecord, host: str, d: Path, routes: Recorder) -> None:
    steps = steps_of(rec, host)
    assert steps["echo"].status == "ok", steps["echo"]
    assert steps["wait"].status == "ok", steps["wait"]
    assert list(d.iterdir()) == []  # nothing ran a command
    echo = json.loads(steps["echo"].stdout)
    for i, h in enumerate(HOSTILE_HEADERS):
        assert echo["headers"][f"x-h{i}"] == h.format(d=d)
    assert echo["body"] == f"$(touch {d}/body)"
    first = routes.requests[0]
    assert first.query == {"q": [f"';touch {d}/url-quote;'"], "r": [f"$(touch {d}/url-subst)"]}


async def test_hostile_values_reach_the_server_as_data(tmp_path: Path, fleet: SSHDFleet,
                                                       engine: RunEngine,
                                                       world_writable: Path) -> None:
    host = fleet.hosts[0]
    routes = Recorder()
    async with http_server(routes) as srv:
        rec = await engine.run(_hostile_runbook(tmp_path, srv.base, world_writable), {}, [host])
    _assert_not_injected(rec, host.name, world_writable, routes)


@pytest.mark.parametrize("tool", ["curl", "wget"])
async def test_hostile_values_are_data_for_the_fallbacks_too(
        tool: str, tmp_path: Path, minimal: SSHDFleet, bindir: Path, min_engine: RunEngine,
        world_writable: Path) -> None:
    toolbox(bindir, tool)
    host = minimal.hosts[0]
    routes = Recorder()
    async with http_server(routes) as srv:
        rec = await min_engine.run(_hostile_runbook(tmp_path, srv.base, world_writable), {},
                                   [host])
    _assert_not_injected(rec, host.name, world_writable, routes)


async def test_values_that_could_smuggle_are_refused(tmp_path: Path, fleet: SSHDFleet,
                                                     engine: RunEngine,
                                                     world_writable: Path) -> None:
    host = fleet.hosts[0]
    d = world_writable
    rb = runbook(tmp_path, f"""
        name: refused
        params:
          header: {{type: string, default: "x\\r\\nX-Injected: 1"}}
          url: {{type: string, default: "http://127.0.0.1/\\n$(touch {d}/nl)"}}
          host: {{type: string, default: "$(touch {d}/tcp):80"}}
        steps:
          - name: header
            http: {{url: "http://127.0.0.1:1/", headers: {{X-A: "{{{{ params.header }}}}"}}, from: target}}
            ignore_errors: true
          - name: url
            http: {{url: "{{{{ params.url }}}}", from: target}}
            ignore_errors: true
          - name: scheme
            wait: {{http: "file:///etc/passwd", from: target, timeout: 1s}}
            ignore_errors: true
          - name: tcp
            wait: {{tcp: "{{{{ params.host }}}}", from: target, timeout: 1s}}
            ignore_errors: true
          - name: option
            wait: {{tcp: "-oProxyCommand=x:80", from: target, timeout: 1s}}
            ignore_errors: true
    """)
    rec = await engine.run(rb, {}, [host])
    steps = steps_of(rec, host.name)
    assert steps["header"].detail == ("step 'header': http: header 'X-A': the value has a line "
                                      "break or control character; error ignored")
    assert steps["url"].detail.startswith("step 'url': http: 'http://127.0.0.1/\\n$(touch ")
    assert "is not an http:// or https:// URL" in steps["url"].detail
    assert steps["scheme"].detail == ("step 'scheme': wait: 'file:///etc/passwd' is not an "
                                      "http:// or https:// URL without spaces or control "
                                      "characters; error ignored")
    assert steps["tcp"].detail == (f"step 'tcp': wait: '$(touch {d}/tcp)' is not a host name "
                                   "or address; error ignored")
    assert steps["option"].detail == ("step 'option': wait: '-oProxyCommand=x' is not a host "
                                      "name or address; error ignored")
    assert all(s.command == "" for s in rec.steps_for(host.name))  # nothing was sent
    assert list(d.iterdir()) == []


# ---------------------------------------------------------------- check mode, secrets
async def test_check_mode_shows_the_exact_script_and_runs_nothing(
        tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    host = fleet.hosts[0]
    routes = Recorder()
    async with http_server(routes) as srv:
        rb = runbook(tmp_path, f"""
            name: dry
            steps:
              - name: port
                wait: {{tcp: 8080, from: target, timeout: 30s}}
              - name: call
                http: {{url: "{srv.base}/health", from: target, headers: {{X-A: "it's"}}}}
        """)
        rec = await engine.run(rb, {}, [host], check_mode=True)
    steps = steps_of(rec, host.name)
    port, call = steps["port"], steps["call"]
    assert (port.status, call.status) == ("check", "check")
    assert port.detail == f"would run on {host.name} and wait up to 30s"
    assert call.detail == f"would run on {host.name} and expect status 200"
    assert port.command.startswith(f"# watchkeeper: wait for tcp 127.0.0.1:8080 on {host.name} "
                                   "(from the target)\nif command -v python3 >/dev/null 2>&1; "
                                   "then\n  exec python3 -c '")
    assert " tcp 30 1 1 127.0.0.1 8080\nfi\n" in port.command
    assert "nc -z -v -w 1 -- 127.0.0.1 8080 2>&1" in port.command
    assert f"--url {srv.base}/health" in call.command
    assert "-H 'X-A: it'\"'\"'s'" in call.command
    assert routes.requests == []


async def test_the_shown_script_is_what_runs(tmp_path: Path) -> None:
    """The check-mode command, run by hand with sh, does the probe."""
    from watchkeeper.automation.steps import _target_probe as remote

    routes = Recorder()
    async with http_server(routes) as srv:
        script = remote.http_script(f"{srv.base}/health", body_cap=remote.BODY_CAP, title="t")
        proc = await asyncio.create_subprocess_exec("/bin/sh", "-c", script.render(),
                                                    stdout=asyncio.subprocess.PIPE)
        out, _ = await proc.communicate()
    assert proc.returncode == 0
    head, body = out.decode().split("\n", 1)
    assert head == "watchkeeper-probe: ok 1 HTTP 200"
    assert json.loads(body)["status"] == "ok"


async def test_secrets_are_masked_in_the_script_and_the_output(
        tmp_path: Path, fleet: SSHDFleet, engine: RunEngine) -> None:
    host = fleet.hosts[0]
    routes = Recorder()
    async with http_server(routes) as srv:
        rb = runbook(tmp_path, f"""
            name: secret
            params:
              token: {{type: string, secret: true}}
            steps:
              - name: call
                http:
                  url: "{srv.base}/echo"
                  method: POST
                  headers: {{Authorization: "Bearer {{{{ params.token }}}}"}}
                  status: 201
                  from: target
        """)
        rec = await engine.run(rb, {"token": "tok-9f8e7d6c"}, [host])
    step = steps_of(rec, host.name)["call"]
    assert step.status == "ok", step
    assert routes.requests[0].headers["authorization"] == "Bearer tok-9f8e7d6c"
    assert "tok-9f8e7d6c" not in step.command and "tok-9f8e7d6c" not in step.stdout
    assert "***" in step.command and "Bearer ***" in step.stdout


# ---------------------------------------------------------------- the local executor
async def test_localhost_probes_through_the_local_executor(tmp_path: Path,
                                                           engine: RunEngine) -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with http_server(Recorder()) as srv:
            rb = runbook(tmp_path, f"""
                name: local
                targets: localhost
                steps:
                  - name: port
                    wait: {{tcp: {port}, from: target, timeout: 5s}}
                  - name: health
                    http: {{url: "{srv.base}/health", from: target, match: ok}}
            """)
            rec = await engine.run(rb, {}, [LOCAL])
    finally:
        server.close()
        await server.wait_closed()
    steps = steps_of(rec, "localhost")
    assert steps["port"].detail == f"127.0.0.1:{port} open after 1 probe(s) from localhost"
    assert steps["health"].detail == "HTTP 200 from localhost"


async def test_localhost_falls_back_to_curl_without_python3(
        tmp_path: Path, engine: RunEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    bins = Path(tempfile.mkdtemp(prefix="wk-probe-local-"))
    try:
        monkeypatch.setenv("PATH", str(toolbox(bins, "curl")))  # the local executor's PATH
        routes = Recorder()
        async with http_server(routes) as srv:
            rb = runbook(tmp_path, f"""
                name: local-curl
                steps:
                  - name: health
                    http: {{url: "{srv.base}/health", from: target}}
            """)
            rec = await engine.run(rb, {}, [replace(LOCAL)])
    finally:
        shutil.rmtree(bins, ignore_errors=True)
    step = steps_of(rec, "localhost")["health"]
    assert step.status == "ok", step
    assert routes.requests[0].headers["user-agent"].startswith("curl/")


# ---------------------------------------------------------------- the watchkeeper side keeps working
async def test_from_watchkeeper_gets_match_and_verify_too(tmp_path: Path,
                                                          engine: RunEngine) -> None:
    ca = trustme.CA()
    async with http_server(Recorder(), ssl_context=tls_server_context(ca)) as srv:
        rb = runbook(tmp_path, f"""
            name: wk-side
            steps:
              - name: unverified
                http: {{url: "{srv.base}/health", verify: false, match: '"version"'}}
              - name: no match
                http: {{url: "{srv.base}/health", verify: false, match: nope}}
                ignore_errors: true
              - name: wait
                wait: {{http: "{srv.base}/health", verify: false, timeout: 5s}}
        """)
        rec = await engine.run(rb, {}, [LOCAL])
    steps = steps_of(rec, "localhost")
    assert steps["unverified"].status == "ok" and steps["unverified"].detail == "HTTP 200"
    assert steps["no match"].detail == "HTTP 200; body does not match 'nope'; error ignored"
    assert steps["wait"].status == "ok"


# ---------------------------------------------------------------- the model
@pytest.mark.parametrize(("step", "message"), [
    ("wait: {check: disk, from: target}",
     "from: target applies to tcp and http waits, not check"),
    ("wait: {tcp: 80, from: host}", "Input should be 'watchkeeper' or 'target'"),
    ("http: {url: 'http://x/', match: '('}", "is not a regular expression"),
    ("http: {url: 'http://x/', method: 'GET /x'}", "is not an HTTP method"),
])
def test_bad_options_are_load_errors(tmp_path: Path, step: str, message: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(f"name: bad\nsteps:\n  - name: s\n    {step}\n")
    with pytest.raises(ConfigError) as exc:
        load_runbook(path)
    assert message in str(exc.value)
    assert "bad.yaml:4" in str(exc.value)


def test_from_defaults_to_watchkeeper(tmp_path: Path) -> None:
    rb = runbook(tmp_path, """
        name: defaults
        steps:
          - {name: a, wait: {tcp: 80}}
          - {name: b, http: "http://127.0.0.1/"}
    """)
    assert rb.steps[0].wait is not None and rb.steps[0].wait.from_ == "watchkeeper"
    assert rb.steps[1].http is not None and rb.steps[1].http.from_ == "watchkeeper"
