"""``tls``: a server's certificate is trusted, matches its name and is not about to expire.

The check does the handshake twice only when the first fails: first with full
verification (chain and hostname, as a client would), and if that fails, again
without verification so it can still report the certificate's subject, issuer and
days left beside the reason it is not trusted.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import Literal

from pydantic import Field, model_validator

from watchkeeper.monitor.checks._common import (
    CertInfo,
    cert_samples,
    cert_state,
    client_ssl_context,
    inner_timeout,
    read_cert,
)
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult, State

__all__ = ["Config", "TlsCheck"]

# OpenSSL verify codes with a plain-words reason
_REASONS = {
    10: "certificate has expired",
    9: "certificate is not yet valid",
    18: "self-signed certificate",
    19: "self-signed certificate in the chain",
    20: "issuer unknown (chain does not lead to a trusted CA)",
    21: "issuer unknown (chain does not lead to a trusted CA)",
    62: "hostname mismatch",
}


class Config(CheckConfig):
    type: Literal["tls"]
    host: str = Field(min_length=1)
    port: int = Field(443, ge=1, le=65535)
    server_name: str | None = Field(None, min_length=1, description="SNI and the name to "
                                    "match; default: host")
    ca_file: str | None = None
    cert_days_warning: float = Field(14, ge=0)
    cert_days_critical: float = Field(7, ge=0)

    @model_validator(mode="after")
    def _days(self) -> Config:
        if self.cert_days_critical > self.cert_days_warning:
            raise ValueError("cert_days_critical must not exceed cert_days_warning")
        return self

    def build(self) -> TlsCheck:
        return TlsCheck(self)


async def _handshake(host: str, port: int, ctx: ssl.SSLContext, name: str) -> bytes:
    """Connect, finish the TLS handshake and return the peer certificate (DER)."""
    _, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname=name)
    try:
        ssl_object = writer.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        return der or b""
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except OSError:
            pass


class TlsCheck:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._name = config.server_name or config.host
        self._labels = {"host": config.host, "port": str(config.port), "server_name": self._name}

    async def run(self, ctx: CheckContext) -> CheckResult:
        c = self.config
        where = f"{c.host}:{c.port}"
        started = time.perf_counter()
        try:
            verifying = client_ssl_context(True, c.ca_file)
        except OSError as exc:
            return CheckResult(State.UNKNOWN, f"cannot read ca_file {c.ca_file}: "
                               f"{exc.strerror or exc}")
        problem: str | None = None
        try:
            async with asyncio.timeout(inner_timeout(ctx)):
                try:
                    der = await _handshake(c.host, c.port, verifying, self._name)
                except ssl.SSLCertVerificationError as exc:
                    problem = self._reason(exc)
                    der = await _handshake(c.host, c.port, client_ssl_context(False, None),
                                           self._name)
        except TimeoutError:
            return CheckResult(State.CRITICAL, f"no TLS handshake with {where} within "
                               f"{ctx.timeout:g}s", duration_seconds=time.perf_counter() - started)
        except ConnectionRefusedError:
            return CheckResult(State.CRITICAL, f"connection refused by {where}",
                               duration_seconds=time.perf_counter() - started)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLEOFError):
            return CheckResult(State.CRITICAL, f"connection closed by {where} during the TLS "
                               "handshake", duration_seconds=time.perf_counter() - started)
        except ssl.SSLError as exc:
            return CheckResult(State.CRITICAL, f"TLS handshake with {where} failed: "
                               f"{exc.reason or exc}", duration_seconds=time.perf_counter() - started)
        except OSError as exc:
            return CheckResult(State.CRITICAL, f"cannot connect to {where}: {exc.strerror or exc}",
                               duration_seconds=time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        try:
            info = read_cert(der)
        except ValueError:
            return CheckResult(State.CRITICAL, f"{where} sent no readable certificate",
                               duration_seconds=elapsed)
        return self._judge(info, problem, elapsed)

    def _reason(self, exc: ssl.SSLCertVerificationError) -> str:
        reason = _REASONS.get(exc.verify_code, exc.verify_message or str(exc))
        if exc.verify_code == 62:
            reason = f"hostname mismatch: certificate is not valid for {self._name}"
        return reason

    def _judge(self, info: CertInfo, problem: str | None, elapsed: float) -> CheckResult:
        c = self.config
        days = info.days_left()
        state, phrase = cert_state(days, c.cert_days_warning, c.cert_days_critical)
        if problem is not None:
            state = State.CRITICAL
            if "expired" in problem and days < 0:
                problem = None  # the expiry phrase says it, with the days
        parts = [problem] if problem else []
        parts.append(phrase)
        details = f"subject: {info.subject}\nissuer: {info.issuer}"
        summary = f"{'; '.join(parts)} (subject {info.subject}, issuer {info.issuer})"
        return CheckResult(state, summary, duration_seconds=elapsed,
                           metrics=cert_samples(self._labels, info), details=details)
