"""The ``tls`` check against real loopback TLS servers with trustme certificates."""

from __future__ import annotations

import asyncio
import re
import ssl
from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from tests.monitor._servers import line_server, tls_server_context
from watchkeeper.monitor.checks.tls import Config
from watchkeeper.monitor.model import CheckContext, CheckResult, State


async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA(organization_name="Watchkeeper Test CA")


@pytest.fixture
def ca_file(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def check(port: int, timeout: float = 5.0, **kw: object) -> CheckResult:
    config = Config.model_validate({"name": "cert", "type": "tls", "host": "127.0.0.1",
                                    "port": port, **kw})
    return await config.build().run(CheckContext(timeout=timeout))


def metric(result: CheckResult, name: str) -> float:
    (value,) = [m.value for m in result.metrics if m.name == name]
    return value


async def test_valid_certificate(ca: trustme.CA, ca_file: str) -> None:
    async with line_server(hold, ssl_context=tls_server_context(ca, days=90)) as (_, port):
        result = await check(port, ca_file=ca_file)
    assert result.state is State.OK, result.summary
    assert re.fullmatch(r"certificate expires in 90 days \(subject .*, issuer .*Watchkeeper "
                        r"Test CA.*\)", result.summary), result.summary
    assert 89.5 < metric(result, "watchkeeper_tls_cert_days_left") < 90.6
    assert metric(result, "watchkeeper_tls_cert_not_after_timestamp_seconds") > 1.7e9
    assert result.metrics[0].labels == {"host": "127.0.0.1", "port": str(port),
                                        "server_name": "127.0.0.1"}
    assert "issuer: " in result.details


@pytest.mark.parametrize(("days", "state"), [(10, State.WARNING), (3, State.CRITICAL)])
async def test_expiring(ca: trustme.CA, ca_file: str, days: int, state: State) -> None:
    async with line_server(hold, ssl_context=tls_server_context(ca, days=days)) as (_, port):
        result = await check(port, ca_file=ca_file)
    assert result.state is state
    assert result.summary.startswith(f"certificate expires in {days} days (")


async def test_expired(ca: trustme.CA, ca_file: str) -> None:
    server = tls_server_context(ca, days=3, expired=True)
    async with line_server(hold, ssl_context=server) as (_, port):
        result = await check(port, ca_file=ca_file)
    assert result.state is State.CRITICAL
    assert result.summary.startswith("certificate expired 3 days ago (")
    assert metric(result, "watchkeeper_tls_cert_days_left") < -2.9


async def test_self_signed(ca: trustme.CA, tmp_path: Path) -> None:
    # The CA's own certificate is self-signed: serve it as the server certificate.
    cert, key = tmp_path / "self.pem", tmp_path / "self.key"
    ca.cert_pem.write_to_path(str(cert))
    ca.private_key_pem.write_to_path(str(key))
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(str(cert), str(key))
    async with line_server(hold, ssl_context=server) as (_, port):
        result = await check(port)
    assert result.state is State.CRITICAL
    assert result.summary.startswith("self-signed certificate; certificate expires in ")


async def test_untrusted_issuer(ca: trustme.CA) -> None:
    async with line_server(hold, ssl_context=tls_server_context(ca)) as (_, port):
        result = await check(port)
    assert result.state is State.CRITICAL
    assert result.summary.startswith("issuer unknown (chain does not lead to a trusted CA); ")


async def test_wrong_hostname(ca: trustme.CA, ca_file: str) -> None:
    async with line_server(hold, ssl_context=tls_server_context(ca)) as (_, port):
        result = await check(port, ca_file=ca_file, server_name="wrong.example")
    assert result.state is State.CRITICAL
    assert result.summary.startswith(
        "hostname mismatch: certificate is not valid for wrong.example; certificate expires in ")


async def test_refused_closed_and_no_handshake() -> None:
    async def mute(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(65536):  # swallow the ClientHello, never answer
            pass

    async with line_server(mute) as (_, port):
        silent = await check(port, timeout=0.4)
    async with line_server(hold) as (_, closing_port):
        closed = await check(closing_port)
    refused = await check(port)
    assert silent.state is State.CRITICAL
    assert silent.summary == f"no TLS handshake with 127.0.0.1:{port} within 0.4s"
    assert closed.summary == (f"connection closed by 127.0.0.1:{closing_port} "
                              "during the TLS handshake")
    assert refused.summary == f"connection refused by 127.0.0.1:{port}"


async def test_not_tls_at_all() -> None:
    async def http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()

    async with line_server(http) as (_, port):
        result = await check(port)
    assert result.state is State.CRITICAL
    assert result.summary.startswith(f"TLS handshake with 127.0.0.1:{port} failed: ")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"port": 0}, "greater than or equal to 1"),
        ({"cert_days_warning": 5, "cert_days_critical": 6},
         "cert_days_critical must not exceed cert_days_warning"),
        ({"server_name": ""}, "at least 1 character"),
        ({"cert_days_warning": -1}, "greater than or equal to 0"),
    ],
)
def test_config_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Config.model_validate({"name": "c", "type": "tls", "host": "127.0.0.1", **kw})
    assert message in str(info.value)
