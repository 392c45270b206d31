"""Helpers the check types share: deadlines, latency text, certificate reading."""

from __future__ import annotations

import ssl
import time
from dataclasses import dataclass
from functools import lru_cache

from watchkeeper.monitor.model import CheckContext, Sample, State

__all__ = [
    "CertInfo",
    "cert_samples",
    "cert_state",
    "client_ssl_context",
    "fmt_ms",
    "inner_timeout",
    "read_cert",
]


def inner_timeout(ctx: CheckContext) -> float:
    """The deadline a check sets for itself: a little inside ``ctx.timeout``.

    The runner enforces ``ctx.timeout`` from outside as well; finishing first lets
    the check say what it was waiting for instead of being cut off anonymously.
    """
    return max(ctx.timeout - min(0.1, ctx.timeout * 0.1), 0.0)


def fmt_ms(seconds: float) -> str:
    """``12 ms``, ``2.4 ms``, ``0.035 ms``, ``1.52 s``: latency as people read it."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    ms = seconds * 1000
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms" if ms >= 1 else f"{ms:.3f} ms"


@dataclass(frozen=True, slots=True)
class CertInfo:
    """What a check reports about a peer certificate."""

    subject: str
    issuer: str
    not_after: float
    self_signed: bool

    def days_left(self, now: float | None = None) -> float:
        return (self.not_after - (time.time() if now is None else now)) / 86400.0


def read_cert(der: bytes) -> CertInfo:
    """Read a DER certificate with cryptography. Raises ValueError when it does not parse."""
    from cryptography import x509

    cert = x509.load_der_x509_certificate(der)
    return CertInfo(
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        not_after=cert.not_valid_after_utc.timestamp(),
        self_signed=cert.subject == cert.issuer,
    )


def cert_state(days_left: float, warning: float, critical: float) -> tuple[State, str]:
    """The state and phrase for a certificate with ``days_left`` before it expires."""
    if days_left < 0:
        return State.CRITICAL, f"certificate expired {-days_left:.0f} days ago"
    text = f"certificate expires in {days_left:.0f} days"
    if days_left < critical:
        return State.CRITICAL, text
    if days_left < warning:
        return State.WARNING, text
    return State.OK, text


def cert_samples(labels: dict[str, str], info: CertInfo, now: float | None = None) -> list[Sample]:
    return [
        Sample("watchkeeper_tls_cert_days_left", labels, info.days_left(now)),
        Sample("watchkeeper_tls_cert_not_after_timestamp_seconds", labels, info.not_after),
    ]


@lru_cache(maxsize=64)
def client_ssl_context(verify: bool = True, ca_file: str | None = None) -> ssl.SSLContext:
    """A client SSL context, built once per setting (loading trust stores is slow).

    ``verify=False`` still completes the handshake so the certificate can be read.
    """
    ctx = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    if not verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
