"""What every receiver integration shares: the Protocol, the delivery error, secret-safe text.

A receiver integration (one entry of a receiver's ``webhook_configs``,
``email_configs``, ...) is an object with ``async send(message) -> None``; the
message is the notification as :func:`watchkeeper.alerting.notify_templates.build_message`
makes it. ``send`` returns when the far side has accepted the notification and
raises :class:`DeliveryError` when it has not, saying whether a retry can help:
connection failures, timeouts, HTTP 429 and 5xx are retryable; other 4xx, a
refused login or a template error are permanent.

Error messages never contain secrets: URLs are shown as scheme, host and port
only (a Slack webhook URL *is* a secret), and known secret strings are masked
in anything quoted from a response.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol, runtime_checkable
from urllib.parse import urlsplit

from watchkeeper.errors import EnvironmentError_

__all__ = ["DeliveryError", "Receiver", "redact_url", "mask", "classify_status"]


class DeliveryError(EnvironmentError_):
    """A notification could not be delivered. ``retryable`` says whether trying again can help."""

    def __init__(self, message: str, *, retryable: bool, status_code: int | None = None,
                 hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.retryable = retryable
        self.status_code = status_code


@runtime_checkable
class Receiver(Protocol):
    """One receiver integration: delivers a notification message or raises DeliveryError."""

    async def send(self, payload: dict[str, Any]) -> None: ...

    async def aclose(self) -> None: ...


def redact_url(url: str) -> str:
    """``https://hooks.example.com:443`` for any URL: paths and queries may hold tokens."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        if ":" in host:
            host = f"[{host}]"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    return f"{parts.scheme}://{host}{port}"


def mask(text: str, secrets: Iterable[str | None]) -> str:
    """``text`` with every (non-trivial) secret replaced by ``<secret>``."""
    for s in secrets:
        if s and len(s) >= 4:
            text = text.replace(s, "<secret>")
    return text


def classify_status(code: int) -> bool | None:
    """None when ``code`` means delivered (2xx), else whether a retry can help (429, 5xx)."""
    if 200 <= code < 300:
        return None
    return code == 429 or code >= 500
