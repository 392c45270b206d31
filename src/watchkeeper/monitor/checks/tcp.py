"""``tcp``: connect to a port, optionally over TLS, optionally send a line and expect a reply."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Literal

from pydantic import Field, field_validator, model_validator

from watchkeeper.monitor.checks._common import client_ssl_context, fmt_ms, inner_timeout
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult, Sample, State

__all__ = ["Config", "TcpCheck", "unescape"]

_MAX_READ = 65536
_ESCAPES = {"r": "\r", "n": "\n", "t": "\t", "0": "\0", "\\": "\\"}


def unescape(text: str) -> str:
    r"""Turn ``\r``, ``\n``, ``\t``, ``\0``, ``\\`` and ``\xHH`` into the characters they name.

    Raises ValueError naming an unknown escape.
    """
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch != "\\":
            out.append(ch)
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "x" and re.fullmatch(r"[0-9a-fA-F]{2}", text[i + 2:i + 4]):
            out.append(chr(int(text[i + 2:i + 4], 16)))
            i += 4
        else:
            raise ValueError(f"unknown escape \\{nxt} at position {i}; use \\r \\n \\t \\0 \\\\ "
                             "or \\xHH")
    return "".join(out)


class Config(CheckConfig):
    type: Literal["tcp"]
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    send: str | None = Field(None, description=r"text to send; \r \n \t \xHH are understood")
    expect: str | None = Field(None, min_length=1, description="a substring the reply must hold")
    expect_regex: str | None = Field(None, description="a regex (^ and $ match at each line)")
    tls: bool = False
    server_name: str | None = None
    verify_tls: bool = True
    ca_file: str | None = None

    @field_validator("send")
    @classmethod
    def _escapes(cls, value: str | None) -> str | None:
        if value is not None:
            unescape(value)
        return value

    @field_validator("expect_regex")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"expect_regex {value!r} is not a valid regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _one_expectation(self) -> Config:
        if self.expect is not None and self.expect_regex is not None:
            raise ValueError("give either expect or expect_regex, not both")
        return self

    def build(self) -> TcpCheck:
        return TcpCheck(self)


class TcpCheck:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._send = unescape(config.send).encode("latin-1") if config.send else b""
        self._regex = re.compile(config.expect_regex, re.MULTILINE) if config.expect_regex else None
        self._labels = {"host": config.host, "port": str(config.port)}

    def _matches(self, data: bytes) -> bool:
        text = data.decode("utf-8", errors="replace")
        if self._regex is not None:
            return self._regex.search(text) is not None
        return self.config.expect is not None and self.config.expect in text

    async def run(self, ctx: CheckContext) -> CheckResult:
        c = self.config
        where = f"{c.host}:{c.port}"
        started = time.perf_counter()
        stage = "connecting"
        writer: asyncio.StreamWriter | None = None
        data = b""
        try:
            ssl_ctx = client_ssl_context(c.verify_tls, c.ca_file) if c.tls else None
        except OSError as exc:
            return CheckResult(State.UNKNOWN, f"cannot read ca_file {c.ca_file}: "
                               f"{exc.strerror or exc}")
        try:
            async with asyncio.timeout(inner_timeout(ctx)):
                reader, writer = await asyncio.open_connection(
                    c.host, c.port, ssl=ssl_ctx,
                    server_hostname=(c.server_name or c.host) if ssl_ctx else None)
                connect_time = time.perf_counter() - started
                metrics = [Sample("watchkeeper_tcp_connect_duration_seconds", self._labels,
                                  connect_time)]
                if self._send:
                    stage = "sending"
                    writer.write(self._send)
                    await writer.drain()
                if c.expect is not None or self._regex is not None:
                    stage = "waiting for the expected reply"
                    while not self._matches(data) and len(data) < _MAX_READ:
                        chunk = await reader.read(4096)
                        if not chunk:
                            break
                        data += chunk
        except TimeoutError:
            got = f"; got {data[:80].decode('utf-8', errors='replace')!r}" if data else ""
            return CheckResult(State.CRITICAL, f"timed out after {ctx.timeout:g}s {stage} "
                               f"({where}){got}", duration_seconds=time.perf_counter() - started)
        except ConnectionRefusedError:
            return CheckResult(State.CRITICAL, f"connection refused by {where}",
                               duration_seconds=time.perf_counter() - started)
        except OSError as exc:
            return CheckResult(State.CRITICAL, _os_error_text(exc, where, stage),
                               duration_seconds=time.perf_counter() - started)
        finally:
            if writer is not None:
                writer.close()
                try:
                    await writer.wait_closed()
                except (OSError, asyncio.CancelledError):
                    pass
        elapsed = time.perf_counter() - started
        metrics.append(Sample("watchkeeper_tcp_duration_seconds", self._labels, elapsed))
        summary = f"connected to {where}{' over TLS' if c.tls else ''} in {fmt_ms(connect_time)}"
        if (c.expect is not None or self._regex is not None) and not self._matches(data):
            wanted = repr(c.expect) if c.expect is not None else f"/{c.expect_regex}/"
            got = data[:80].decode("utf-8", errors="replace")
            return CheckResult(State.CRITICAL, f"{summary}, but the reply does not contain "
                               f"{wanted}: {got!r}", duration_seconds=elapsed, metrics=metrics)
        return CheckResult(State.OK, summary, duration_seconds=elapsed, metrics=metrics)


def _os_error_text(exc: OSError, where: str, stage: str) -> str:
    import socket
    import ssl

    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {where.rsplit(':', 1)[0]}: {exc.strerror}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS verification failed for {where}: {exc.verify_message}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS handshake with {where} failed: {exc.reason or exc}"
    return f"{stage} {where} failed: {exc.strerror or exc}"
