"""POSTing JSON for the HTTP integrations, with http_config auth/TLS and error translation."""

from __future__ import annotations

import json
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, Any

from watchkeeper.alerting.receivers.base import DeliveryError, classify_status, mask, redact_url

if TYPE_CHECKING:
    import httpx

    from watchkeeper.alerting.config import HTTPConfig

__all__ = ["HTTPPoster", "USER_AGENT"]

USER_AGENT = "watchkeeper-alerting/0.1"
DEFAULT_TIMEOUT = 30.0


def _read(path: str | None) -> str | None:
    return Path(path).read_text().strip() if path else None


def _ssl_context(cfg: HTTPConfig | None) -> ssl.SSLContext | bool:
    tls = cfg.tls_config if cfg else None
    if tls is None:
        return True
    ctx = ssl.create_default_context(cafile=tls.ca_file)
    if tls.insecure_skip_verify:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if tls.cert_file:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    return ctx


class HTTPPoster:
    """POSTs JSON to one URL. Uses ``client`` (shared) unless http_config needs its own TLS/proxy.

    ``what`` names the integration in errors (``webhook``, ``slack``...).
    """

    def __init__(self, url: str, http_config: HTTPConfig | None, *, what: str,
                 client: httpx.AsyncClient | None = None, timeout: float = DEFAULT_TIMEOUT,
                 extra_secrets: tuple[str | None, ...] = ()) -> None:
        import httpx

        self.url = url
        self.what = what
        self.timeout = timeout
        cfg = http_config
        self.headers = {"User-Agent": USER_AGENT, "Content-Type": "application/json"}
        self.auth: httpx.BasicAuth | None = None
        secrets: list[str | None] = [url, *extra_secrets]
        if cfg is not None:
            if cfg.basic_auth is not None:
                password = cfg.basic_auth.password or _read(cfg.basic_auth.password_file) or ""
                self.auth = httpx.BasicAuth(cfg.basic_auth.username, password)
                secrets.append(password)
            token = None
            kind = "Bearer"
            if cfg.authorization is not None:
                token = cfg.authorization.credentials or _read(cfg.authorization.credentials_file)
                kind = cfg.authorization.type
            elif cfg.bearer_token or cfg.bearer_token_file:
                token = cfg.bearer_token or _read(cfg.bearer_token_file)
            if token:
                self.headers["Authorization"] = f"{kind} {token}"
                secrets.append(token)
        self._secrets = tuple(secrets)
        own = cfg is not None and (cfg.tls_config is not None or cfg.proxy_url is not None
                                   or not cfg.follow_redirects)
        if client is None or own:
            self.client = httpx.AsyncClient(
                verify=_ssl_context(cfg), proxy=cfg.proxy_url if cfg else None,
                follow_redirects=cfg.follow_redirects if cfg else True, trust_env=False)
            self._owns = True
        else:
            self.client = client
            self._owns = False

    async def aclose(self) -> None:
        if self._owns:
            await self.client.aclose()

    def _err(self, text: str, *, retryable: bool, status: int | None = None) -> DeliveryError:
        return DeliveryError(mask(f"{self.what} {redact_url(self.url)}: {text}", self._secrets),
                             retryable=retryable, status_code=status)

    async def post(self, body: Any) -> httpx.Response:
        """POST ``body`` as JSON; raise DeliveryError unless the answer is 2xx."""
        import httpx

        data = json.dumps(body, separators=(",", ":")).encode()
        try:
            resp = await self.client.post(self.url, content=data, headers=self.headers,
                                          auth=self.auth if self.auth else httpx.USE_CLIENT_DEFAULT,
                                          timeout=self.timeout)
        except httpx.TimeoutException:
            raise self._err(f"no answer within {self.timeout:g}s", retryable=True) from None
        except httpx.RemoteProtocolError as exc:
            raise self._err(f"connection dropped ({type(exc).__name__}: {exc})",
                            retryable=True) from None
        except httpx.ConnectError as exc:
            raise self._err(f"cannot connect: {exc}", retryable=True) from None
        except (httpx.HTTPError, ssl.SSLError, OSError) as exc:
            raise self._err(f"{type(exc).__name__}: {exc}", retryable=True) from None
        retry = classify_status(resp.status_code)
        if retry is not None:
            snippet = resp.text[:200].strip()
            detail = f"HTTP {resp.status_code}" + (f": {snippet}" if snippet else "")
            raise self._err(detail, retryable=retry, status=resp.status_code)
        return resp
