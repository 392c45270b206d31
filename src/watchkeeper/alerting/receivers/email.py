"""Email over SMTP: STARTTLS (or implicit TLS on port 465), AUTH, text + HTML alternative.

The stdlib ``smtplib`` runs in a worker thread (``asyncio.to_thread``). With
``require_tls`` (the default, as in Alertmanager) a server that does not offer
STARTTLS is an error; AUTH is used when ``auth_username`` is set (smtplib picks
CRAM-MD5, PLAIN or LOGIN from what the server offers).
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import time
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.alerting.notify_templates import default_title, email_html, email_text, render
from watchkeeper.alerting.receivers.base import DeliveryError, mask

if TYPE_CHECKING:
    from watchkeeper.alerting.config import EmailConfig, GlobalConfig

__all__ = ["EmailReceiver", "build_email"]

DEFAULT_TIMEOUT = 30.0


def build_email(config: EmailConfig, sender: str, message: dict[str, Any]) -> EmailMessage:
    """The mail for ``message``: headers To/From/Subject/Date/Message-Id (+ configured),
    a text part and an HTML alternative. Raises TemplateError for a bad template."""
    msg = EmailMessage()
    headers = {k.title(): render(v, message, "") for k, v in config.headers.items()}
    msg["From"] = headers.pop("From", sender)
    msg["To"] = headers.pop("To", render(config.to, message, config.to))
    msg["Subject"] = headers.pop("Subject", default_title(message).rstrip())
    msg["Date"] = formatdate(time.time(), localtime=False)
    msg["Message-Id"] = make_msgid(domain=sender.rpartition("@")[2].strip(">") or "watchkeeper")
    for k, v in headers.items():
        msg[k] = v
    msg.set_content(render(config.text, message, email_text(message)))
    msg.add_alternative(render(config.html, message, email_html(message)), subtype="html")
    return msg


class EmailReceiver:
    """``email_configs[]``, with ``global.smtp_*`` as defaults."""

    def __init__(self, config: EmailConfig, global_: GlobalConfig, *,
                 timeout: float = DEFAULT_TIMEOUT) -> None:
        self.config = config
        self.sender = config.from_ or global_.smtp_from or ""
        smarthost = config.smarthost or global_.smtp_smarthost or ""
        host, _, port = smarthost.rpartition(":")
        if not host or not port.isdigit():
            raise DeliveryError(f"email: smarthost {smarthost!r} is not HOST:PORT (set "
                                "smarthost or global.smtp_smarthost)", retryable=False)
        self.host, self.port = host.strip("[]"), int(port)
        self.hello = config.hello or global_.smtp_hello
        self.username = config.auth_username or global_.smtp_auth_username
        pw_file = config.auth_password_file or global_.smtp_auth_password_file
        self._password = (config.auth_password or global_.smtp_auth_password
                          or (Path(pw_file).read_text().strip() if pw_file else None))
        self.require_tls = (config.require_tls if config.require_tls is not None
                            else global_.smtp_require_tls)
        self.timeout = timeout
        if not self.sender:
            raise DeliveryError("email: no sender (set from or global.smtp_from)", retryable=False)

    def _ssl_context(self) -> ssl.SSLContext:
        tls = self.config.tls_config
        ctx = ssl.create_default_context(cafile=tls.ca_file if tls else None)
        if tls and tls.insecure_skip_verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if tls and tls.cert_file:
            ctx.load_cert_chain(tls.cert_file, tls.key_file)
        return ctx

    def _err(self, text: str, *, retryable: bool, code: int | None = None) -> DeliveryError:
        return DeliveryError(mask(f"email via {self.host}:{self.port}: {text}", [self._password]),
                             retryable=retryable, status_code=code)

    def _deliver(self, mail: EmailMessage) -> None:
        ctx = self._ssl_context()
        server_name = (self.config.tls_config.server_name
                       if self.config.tls_config and self.config.tls_config.server_name else None)
        smtp: smtplib.SMTP
        if self.port == 465:
            smtp = smtplib.SMTP_SSL(self.host, self.port, local_hostname=self.hello,
                                    timeout=self.timeout, context=ctx)
        else:
            smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.hello,
                                timeout=self.timeout)
        with smtp:
            smtp.ehlo()
            if self.port != 465:
                if smtp.has_extn("starttls"):
                    if server_name:
                        smtp._host = server_name  # type: ignore[attr-defined]  # the name the cert must match
                    smtp.starttls(context=ctx)
                    smtp.ehlo()
                elif self.require_tls:
                    raise self._err("the server does not offer STARTTLS and require_tls is "
                                    "true", retryable=False)
            if self.username:
                if not smtp.has_extn("auth"):
                    raise self._err("auth_username is set but the server offers no AUTH",
                                    retryable=False)
                smtp.login(self.username, self._password or "")
            rcpts = [addr for _, addr in getaddresses([str(mail["To"])]) if addr]
            smtp.send_message(mail, from_addr=self.sender, to_addrs=rcpts)

    async def send(self, payload: dict[str, Any]) -> None:
        from watchkeeper.alerting.templating import TemplateError

        try:
            mail = build_email(self.config, self.sender, payload)
        except TemplateError as exc:
            raise DeliveryError(f"email: template error: {exc.message}", retryable=False) from None
        try:
            await asyncio.to_thread(self._deliver, mail)
        except DeliveryError:
            raise
        except smtplib.SMTPAuthenticationError as exc:
            raise self._err(f"login refused ({exc.smtp_code})", retryable=False,
                            code=exc.smtp_code) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [c for c, _ in exc.recipients.values()]
            temp = all(400 <= c < 500 for c in codes)
            raise self._err(f"recipients refused: {', '.join(exc.recipients)}", retryable=temp,
                            code=codes[0] if codes else None) from None
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) \
                else str(exc.smtp_error)
            raise self._err(f"{exc.smtp_code} {text}", retryable=400 <= exc.smtp_code < 500,
                            code=exc.smtp_code) from None
        except ssl.SSLCertVerificationError as exc:
            raise self._err(f"TLS certificate not trusted: {exc.verify_message}",
                            retryable=False) from None
        except (smtplib.SMTPException, OSError) as exc:
            raise self._err(f"{type(exc).__name__}: {exc}", retryable=True) from None

    async def aclose(self) -> None:
        return None
