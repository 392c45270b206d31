"""The ``tcp`` check against real loopback listeners (plain and TLS)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from tests.monitor._servers import line_server, tls_server_context
from watchkeeper.monitor.checks.tcp import Config, unescape
from watchkeeper.monitor.model import CheckContext, CheckResult, State


def make(port: int, **kw: object) -> Config:
    return Config.model_validate({"name": "port", "type": "tcp", "host": "127.0.0.1",
                                  "port": port, **kw})


async def run(port: int, timeout: float = 5.0, **kw: object) -> CheckResult:
    return await make(port, **kw).build().run(CheckContext(timeout=timeout))


async def smtp_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 mail.example ESMTP ready\r\n")
    await writer.drain()
    line = await reader.readline()
    if line == b"QUIT\r\n":
        writer.write(b"221 2.0.0 Bye\r\n")
        await writer.drain()


async def banner_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(b"220 mail.example ESMTP ready\r\n")
    await writer.drain()


async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read(1)


async def test_connect_only() -> None:
    async with line_server(silent) as (_, port):
        result = await run(port)
    assert result.state is State.OK
    assert re.fullmatch(rf"connected to 127\.0\.0\.1:{port} in [\d.]+ ms", result.summary)
    names = {m.name for m in result.metrics}
    assert names == {"watchkeeper_tcp_connect_duration_seconds", "watchkeeper_tcp_duration_seconds"}


async def test_banner_and_send_expect() -> None:
    async with line_server(smtp_like) as (_, smtp_port):
        port = smtp_port
        banner = await run(port, expect="220 ")
        bye = await run(port, send=r"QUIT\r\n", expect_regex=r"^221 .*Bye")
        waiting = await run(port, expect="+OK", timeout=0.3)
    async with line_server(banner_then_close) as (_, port):
        wrong = await run(port, expect="+OK")
    assert waiting.summary == (f"timed out after 0.3s waiting for the expected reply "
                               f"(127.0.0.1:{smtp_port}); "
                               "got '220 mail.example ESMTP ready\\r\\n'")
    assert banner.state is State.OK
    assert bye.state is State.OK, bye.summary
    assert wrong.state is State.CRITICAL
    assert wrong.summary.endswith(
        "but the reply does not contain '+OK': '220 mail.example ESMTP ready\\r\\n'")


async def test_expect_times_out_waiting() -> None:
    async with line_server(silent) as (_, port):
        result = await run(port, expect="hello", timeout=0.3)
    assert result.state is State.CRITICAL
    assert result.summary == f"timed out after 0.3s waiting for the expected reply " \
                             f"(127.0.0.1:{port})"


async def test_refused() -> None:
    async with line_server(silent) as (_, port):
        pass
    result = await run(port)
    assert result.state is State.CRITICAL
    assert result.summary == f"connection refused by 127.0.0.1:{port}"


async def test_tls(tmp_path: Path) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with line_server(smtp_like, ssl_context=tls_server_context(ca)) as (_, port):
        good = await run(port, tls=True, ca_file=str(ca_file), expect="220")
        untrusted = await run(port, tls=True)
        unverified = await run(port, tls=True, verify_tls=False, expect="220")
    assert good.state is State.OK, good.summary
    assert " over TLS in " in good.summary
    assert untrusted.state is State.CRITICAL
    assert untrusted.summary == (f"TLS verification failed for 127.0.0.1:{port}: "
                                 "unable to get local issuer certificate")
    assert unverified.state is State.OK


def test_unescape() -> None:
    assert unescape(r"QUIT\r\n") == "QUIT\r\n"
    assert unescape(r"a\tb\\c\x41\0") == "a\tb\\cA\0"
    with pytest.raises(ValueError, match=r"unknown escape \\q at position 1"):
        unescape(r"a\q")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"port": 0}, "Input should be greater than or equal to 1"),
        ({"port": 70000}, "Input should be less than or equal to 65535"),
        ({"send": r"bad\q"}, "unknown escape"),
        ({"expect": "a", "expect_regex": "b"}, "give either expect or expect_regex, not both"),
        ({"expect_regex": "("}, "expect_regex '(' is not a valid regex"),
        ({"host": ""}, "String should have at least 1 character"),
    ],
)
def test_config_errors(kw: dict[str, object], message: str) -> None:
    data = {"name": "p", "type": "tcp", "host": "127.0.0.1", "port": 22, **kw}
    with pytest.raises(ValidationError) as info:
        Config.model_validate(data)
    assert message in str(info.value)
