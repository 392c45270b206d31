"""The ``http`` check against real loopback HTTP and HTTPS servers (certificates from trustme)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
import trustme
from pydantic import ValidationError

from tests.monitor._servers import http_server, line_server, tls_server_context
from watchkeeper.monitor.checks.http import Config, json_lookup, shared_client
from watchkeeper.monitor.model import CheckContext, CheckResult, State


def make(url: str, **kw: object) -> Config:
    return Config.model_validate({"name": "web", "type": "http", "url": url, **kw})


async def run(url: str, timeout: float = 5.0, resources: dict[str, object] | None = None,
              **kw: object) -> CheckResult:
    return await make(url, **kw).build().run(CheckContext(timeout=timeout,
                                                          resources=resources or {}))


def metric(result: CheckResult, name: str) -> float:
    (value,) = [m.value for m in result.metrics if m.name == name]
    return value


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def test_ok() -> None:
    async with http_server() as srv:
        result = await run(srv.base + "/")
    assert result.state is State.OK
    assert re.fullmatch(r"HTTP 200 in [\d.]+ ms", result.summary), result.summary
    assert metric(result, "watchkeeper_http_status_code") == 200
    assert metric(result, "watchkeeper_http_content_length") == len(b"hello watchkeeper\n")
    assert 0 < metric(result, "watchkeeper_http_duration_seconds") < 1
    assert {m.labels["url"] for m in result.metrics} == {srv.base + "/"}


@pytest.mark.parametrize(
    ("path", "expect", "state", "summary"),
    [
        ("/status/503", None, State.CRITICAL, "expected status 2xx, got 503"),
        ("/status/503", 200, State.CRITICAL, "expected status 200, got 503"),
        ("/status/503", [200, 204], State.CRITICAL, "expected status 200 or 204, got 503"),
        ("/status/404", 404, State.OK, "HTTP 404 in"),
        ("/status/204", None, State.OK, "HTTP 204 in"),
    ],
)
async def test_status(path: str, expect: object, state: State, summary: str) -> None:
    async with http_server() as srv:
        result = await run(srv.base + path, expect_status=expect)
    assert result.state is state
    assert result.summary.startswith(summary)


async def test_redirects() -> None:
    async with http_server() as srv:
        followed = await run(srv.base + "/redirect")
        not_followed = await run(srv.base + "/redirect", follow_redirects=False)
        accepted = await run(srv.base + "/redirect", follow_redirects=False, expect_status=302)
        looping = await run(srv.base + "/loop", max_redirects=3)
    assert followed.state is State.OK
    assert not_followed.summary == "expected status 2xx, got 302"
    assert accepted.state is State.OK
    assert looping.state is State.CRITICAL
    assert looping.summary == f"too many redirects from {srv.base}/loop"


async def test_body_regex() -> None:
    async with http_server() as srv:
        good = await run(srv.base + "/", body_regex=r"hello \w+")
        bad = await run(srv.base + "/", body_regex=r"^goodbye")
    assert good.state is State.OK
    assert bad.state is State.CRITICAL
    assert bad.summary.endswith("; body does not match '^goodbye'")


@pytest.mark.parametrize(
    ("field", "value", "state", "problem"),
    [
        ("status", "ok", State.OK, None),
        ("data.items.0.name", "first", State.OK, None),
        ("data.items.-1.name", "second", State.OK, None),
        ("count", 2, State.OK, None),
        ("data.items.1.name", "first", State.CRITICAL,
         'JSON data.items.1.name is "second", expected "first"'),
        ("data.items.5.name", "x", State.CRITICAL, "JSON has no data.items.5.name"),
        ("status", None, State.CRITICAL, 'JSON status is "ok", expected null'),
    ],
)
async def test_json_field(field: str, value: object, state: State, problem: str | None) -> None:
    async with http_server() as srv:
        result = await run(srv.base + "/json", json_field=field, json_value=value)
    assert result.state is state
    if problem:
        assert result.summary.endswith("; " + problem)


async def test_json_field_presence_and_not_json() -> None:
    async with http_server() as srv:
        present = await run(srv.base + "/json", json_field="data.items")
        not_json = await run(srv.base + "/", json_field="status")
    assert present.state is State.OK
    assert not_json.summary.endswith("; body is not JSON")


def test_json_lookup() -> None:
    doc = {"a": [{"b": 1}], "c": None}
    assert json_lookup(doc, "a.0.b") == 1
    assert json_lookup(doc, "c") is None
    assert json_lookup(doc, "a.x") is not None  # the private "missing" sentinel
    assert json_lookup(doc, "a.x") is json_lookup(doc, "zzz")


async def test_max_latency_warns() -> None:
    async with http_server() as srv:
        result = await run(srv.base + "/slow?s=0.15", max_latency="50ms")
    assert result.state is State.WARNING
    assert re.fullmatch(r"HTTP 200 in \d+ ms; slower than 50 ms", result.summary)


async def test_timeout_is_critical() -> None:
    async with http_server() as srv:
        result = await run(srv.base + "/slow?s=5", timeout=0.4)
    assert result.state is State.CRITICAL
    assert result.summary == f"no response from {srv.base}/slow?s=5 within 0.4s"


async def test_connection_refused() -> None:
    async with line_server(lambda r, w: r.read(1)) as (host, port):
        pass
    result = await run(f"http://{host}:{port}/")
    assert result.state is State.CRITICAL
    assert result.summary == f"connection refused by http://{host}:{port}/"


async def test_post_json_and_headers() -> None:
    async with http_server() as srv:
        result = await run(srv.base + "/echo", method="POST", json_body={"k": 1},
                           headers={"X-Test": "yes"}, json_field="body", json_value='{"k":1}')
        content_type = await run(srv.base + "/echo", method="PUT", body="raw text",
                                 json_field="method", json_value="PUT")
        x_test = await run(srv.base + "/echo", headers={"X-Test": "yes"},
                           json_field="x_test", json_value="yes")
    assert result.state is State.OK, result.summary
    assert content_type.state is State.OK, content_type.summary
    assert x_test.state is State.OK, x_test.summary


async def test_basic_auth() -> None:
    async with http_server() as srv:
        good = await run(srv.base + "/auth",
                         basic_auth={"username": "alice", "password": "s3cret"})
        bad = await run(srv.base + "/auth", basic_auth={"username": "alice", "password": "no"})
    assert good.state is State.OK
    assert bad.summary == "expected status 2xx, got 401"


async def test_https_with_ca_file_reports_cert_days(ca: trustme.CA, ca_file: str) -> None:
    async with http_server(ssl_context=tls_server_context(ca, days=90)) as srv:
        result = await run(srv.base + "/", ca_file=ca_file)
    assert result.state is State.OK, result.summary
    assert 89 < metric(result, "watchkeeper_tls_cert_days_left") < 91
    assert metric(result, "watchkeeper_tls_cert_not_after_timestamp_seconds") > 0


@pytest.mark.parametrize(("days", "state"), [(10, State.WARNING), (3, State.CRITICAL)])
async def test_https_cert_expiring(ca: trustme.CA, ca_file: str, days: int, state: State) -> None:
    async with http_server(ssl_context=tls_server_context(ca, days=days)) as srv:
        result = await run(srv.base + "/", ca_file=ca_file)
    assert result.state is state
    assert result.summary.endswith(f"; certificate expires in {days} days")


async def test_https_untrusted_and_unverified(ca: trustme.CA) -> None:
    async with http_server(ssl_context=tls_server_context(ca, days=90)) as srv:
        untrusted = await run(srv.base + "/")
        unverified = await run(srv.base + "/", verify_tls=False)
    assert untrusted.state is State.CRITICAL
    assert untrusted.summary.startswith(f"TLS verification failed for {srv.base}/: ")
    assert unverified.state is State.OK
    assert 89 < metric(unverified, "watchkeeper_tls_cert_days_left") < 91


async def test_missing_ca_file(tmp_path: Path) -> None:
    result = await run("https://127.0.0.1:1/", ca_file=str(tmp_path / "nope.pem"))
    assert result.state is State.UNKNOWN
    assert result.summary.startswith(f"cannot read ca_file {tmp_path / 'nope.pem'}")


async def test_shared_client_is_reused_and_left_open() -> None:
    client = shared_client(max_connections=4)
    try:
        async with http_server() as srv:
            check = make(srv.base + "/").build()
            ctx = CheckContext(timeout=5, resources={"http_client": client})
            for _ in range(5):
                assert (await check.run(ctx)).state is State.OK
            shared_connections = srv.connections
            own = CheckContext(timeout=5)
            for _ in range(3):
                assert (await check.run(own)).state is State.OK
            own_connections = srv.connections - shared_connections
            assert not client.is_closed
            # a check with its own TLS settings does not use the shared client
            insecure = make(srv.base + "/", verify_tls=False).build()
            assert (await insecure.run(ctx)).state is State.OK
    finally:
        await client.aclose()
    assert shared_connections == 1
    assert own_connections == 3


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"url": "ftp://x/"}, "String should match pattern"),
        ({"expect_status": 700}, "status 700 is not an HTTP status (100..599)"),
        ({"expect_status": []}, "expect_status list must not be empty"),
        ({"body_regex": "("}, "body_regex '(' is not a valid regex"),
        ({"body": "a", "json_body": {"b": 1}}, "give either body or json_body, not both"),
        ({"json_value": 1}, "json_value needs json_field"),
        ({"cert_days_warning": 3}, "cert_days_critical must not exceed cert_days_warning"),
        ({"method": "FETCH"}, "Input should be 'GET', 'HEAD'"),
        ({"max_latency": "fast"}, '"fast" is not a duration'),
        ({"json_field": "a..b"}, "String should match pattern"),
    ],
)
def test_config_errors(kw: dict[str, object], message: str) -> None:
    data = {"name": "web", "type": "http", "url": "http://127.0.0.1/", **kw}
    with pytest.raises(ValidationError) as info:
        Config.model_validate(data)
    assert message in str(info.value)


def test_httpx_is_not_imported_by_the_config_module() -> None:
    import subprocess
    import sys

    code = ("import sys, watchkeeper.config, watchkeeper.monitor.checks.http;"
            "print('httpx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_httpx_version_supported() -> None:
    assert tuple(int(p) for p in httpx.__version__.split(".")[:2]) >= (0, 27)
