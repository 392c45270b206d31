"""Email through a real SMTP server (aiosmtpd) on 127.0.0.1: plain, STARTTLS (trustme), AUTH."""

from __future__ import annotations

import email
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.alerting.test_receivers_webhook import _message
from watchkeeper.alerting.config import EmailConfig, GlobalConfig
from watchkeeper.alerting.receivers.base import DeliveryError
from watchkeeper.alerting.receivers.email import EmailReceiver


@dataclass
class Mailbox:
    mails: list[dict[str, Any]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.mails.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                           "data": envelope.original_content or envelope.content,
                           "tls": session.ssl is not None, "auth": session.authenticated,
                           "login": getattr(session, "auth_data", None)})
        return "250 OK"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Users:
    def __init__(self) -> None:
        self.mechanisms: list[str] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str,
                 auth_data: Any) -> AuthResult:
        self.mechanisms.append(mechanism)
        ok = (isinstance(auth_data, LoginPassword) and auth_data.login == b"alerts"
              and auth_data.password == b"s3cret-pw")
        return AuthResult(success=ok, handled=False)


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def smtp(request: pytest.FixtureRequest, ca: trustme.CA, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """An aiosmtpd server; ``request.param``: tls (STARTTLS offered), auth, exclude (mechanisms)."""
    opts: dict[str, Any] = getattr(request, "param", {})
    box, users = Mailbox(), Users()
    kw: dict[str, Any] = {}
    if opts.get("tls"):
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1", "localhost").configure_cert(ctx)
        kw["tls_context"] = ctx
    if opts.get("auth"):
        kw.update(authenticator=users, auth_require_tls=True,
                  auth_exclude_mechanism=opts.get("exclude", []))
    port = _free_port()
    ctl = Controller(box, hostname="127.0.0.1", port=port, **kw)
    ctl.start()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    try:
        yield {"box": box, "users": users, "port": port, "ca": str(ca_file)}
    finally:
        ctl.stop()


def _receiver(smtp: dict[str, Any], **kw: Any) -> EmailReceiver:
    g = GlobalConfig(smtp_from="Watchkeeper <wk@example.internal>",
                     smtp_smarthost=f"127.0.0.1:{smtp['port']}")
    cfg = EmailConfig.model_validate({"to": "ops@example.internal, oncall@example.internal",
                                      **kw})
    return EmailReceiver(cfg, g, timeout=5.0)


def _parse(mail: dict[str, Any]) -> Message:
    return email.message_from_bytes(mail["data"])


async def test_plain_smtp_multipart_text_and_html_with_headers(smtp: dict[str, Any]) -> None:
    await _receiver(smtp, require_tls=False).send(_message())
    [mail] = smtp["box"].mails
    assert mail["from"] == "wk@example.internal"
    assert mail["to"] == ["ops@example.internal", "oncall@example.internal"]
    assert not mail["tls"]
    msg = _parse(mail)
    assert msg["From"] == "Watchkeeper <wk@example.internal>"
    assert msg["To"] == "ops@example.internal, oncall@example.internal"
    assert msg["Subject"] == "[FIRING:2] DiskFull (node critical)"
    assert msg["Message-Id"] and msg["Date"]
    assert msg.get_content_type() == "multipart/alternative"
    parts = {p.get_content_type(): p.get_payload(decode=True).decode() for p in msg.walk()
             if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html"}
    assert "Alerts Firing:" in parts["text/plain"] and "instance = web1" in parts["text/plain"]
    assert "disk &lt;full&gt;" in parts["text/html"]  # escaped in HTML
    assert "<table" in parts["text/html"]


async def test_require_tls_refuses_a_server_without_starttls(smtp: dict[str, Any]) -> None:
    with pytest.raises(DeliveryError) as info:
        await _receiver(smtp).send(_message())
    assert not info.value.retryable
    assert "does not offer STARTTLS" in str(info.value)
    assert smtp["box"].mails == []


@pytest.mark.parametrize("smtp", [{"tls": True}], indirect=True)
async def test_starttls_with_a_trusted_certificate(smtp: dict[str, Any]) -> None:
    await _receiver(smtp, tls_config={"ca_file": smtp["ca"]}).send(_message())
    assert smtp["box"].mails[0]["tls"] is True


@pytest.mark.parametrize("smtp", [{"tls": True}], indirect=True)
async def test_an_untrusted_certificate_is_refused(smtp: dict[str, Any]) -> None:
    with pytest.raises(DeliveryError) as info:
        await _receiver(smtp).send(_message())
    assert "TLS certificate not trusted" in str(info.value) and not info.value.retryable


@pytest.mark.parametrize(("smtp", "mechanism"), [
    ({"tls": True, "auth": True, "exclude": ["LOGIN"]}, "PLAIN"),
    ({"tls": True, "auth": True, "exclude": ["PLAIN"]}, "LOGIN"),
], indirect=["smtp"])
async def test_auth_after_starttls(smtp: dict[str, Any], mechanism: str) -> None:
    await _receiver(smtp, tls_config={"ca_file": smtp["ca"]}, auth_username="alerts",
                    auth_password="s3cret-pw").send(_message())
    mail = smtp["box"].mails[0]
    assert mail["tls"] and mail["auth"]
    assert smtp["users"].mechanisms == [mechanism]


@pytest.mark.parametrize("smtp", [{"tls": True, "auth": True}], indirect=True)
async def test_a_wrong_password_is_permanent_and_not_shown(smtp: dict[str, Any]) -> None:
    with pytest.raises(DeliveryError) as info:
        await _receiver(smtp, tls_config={"ca_file": smtp["ca"]}, auth_username="alerts",
                        auth_password="wrong-pw-123").send(_message())
    assert not info.value.retryable and info.value.status_code == 535
    assert "wrong-pw-123" not in str(info.value)


async def test_custom_headers_subject_and_templated_text(smtp: dict[str, Any]) -> None:
    await _receiver(smtp, require_tls=False,
                    headers={"Subject": "[{{ .Status }}] {{ .CommonLabels.alertname }}",
                             "X-Team": "ops"},
                    text="{{ range .Alerts }}{{ .Labels.instance }} {{ end }}").send(_message())
    msg = _parse(smtp["box"].mails[0])
    assert msg["Subject"] == "[firing] DiskFull"
    assert msg["X-Team"] == "ops"
    text = next(p for p in msg.walk() if p.get_content_type() == "text/plain")
    assert text.get_payload(decode=True).decode().strip() == "db1 web0 web1"


async def test_nothing_listening_is_retryable() -> None:
    g = GlobalConfig(smtp_from="wk@example.internal", smtp_smarthost=f"127.0.0.1:{_free_port()}")
    with pytest.raises(DeliveryError) as info:
        await EmailReceiver(EmailConfig(to="a@example.internal"), g, timeout=2).send(_message())
    assert info.value.retryable
