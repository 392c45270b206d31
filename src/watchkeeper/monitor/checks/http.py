"""``http``: fetch a URL and judge the status, body, JSON, latency and TLS certificate.

A shared ``httpx.AsyncClient`` may be handed in as ``ctx.resources["http_client"]``
(see :func:`shared_client`); thousands of checks then share one connection pool
instead of each building a client. A check whose TLS settings differ from the
shared client's (``verify_tls: false``, ``ca_file``, other ``max_redirects``)
builds its own client for the run and closes it afterwards.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator, model_validator

from watchkeeper.config.types import Duration, StrictModel
from watchkeeper.monitor.checks._common import (
    CertInfo,
    cert_samples,
    cert_state,
    client_ssl_context,
    fmt_ms,
    inner_timeout,
    read_cert,
)
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult, Sample, State

if TYPE_CHECKING:
    import httpx

__all__ = ["BasicAuth", "Config", "HttpCheck", "json_lookup", "shared_client"]

_MAX_BODY = 4 * 1024 * 1024  # bytes read for body_regex / json_field; the rest is skipped
_MISSING = object()


class BasicAuth(StrictModel):
    username: str
    password: str


class Config(CheckConfig):
    type: Literal["http"]
    url: str = Field(pattern=r"^https?://[^/\s]+", description="http:// or https:// URL")
    method: Literal["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    json_body: Any = None
    expect_status: int | list[int] | None = Field(
        None, description="accepted status codes; default: any 2xx")
    body_regex: str | None = None
    json_field: str | None = Field(None, pattern=r"^[^.\s]+(\.[^.\s]+)*$")
    json_value: Any = None
    max_latency: Duration | None = None
    follow_redirects: bool = True
    max_redirects: int = Field(10, ge=0, le=50)
    verify_tls: bool = True
    ca_file: str | None = None
    cert_days_warning: float = Field(14, ge=0)
    cert_days_critical: float = Field(7, ge=0)
    basic_auth: BasicAuth | None = None

    @field_validator("expect_status")
    @classmethod
    def _status_range(cls, value: int | list[int] | None) -> int | list[int] | None:
        codes = [value] if isinstance(value, int) else (value or [])
        for code in codes:
            if not 100 <= code <= 599:
                raise ValueError(f"status {code} is not an HTTP status (100..599)")
        if isinstance(value, list) and not value:
            raise ValueError("expect_status list must not be empty")
        return value

    @field_validator("body_regex")
    @classmethod
    def _regex_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"body_regex {value!r} is not a valid regex: {exc}") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Config:
        if self.body is not None and self.json_body is not None:
            raise ValueError("give either body or json_body, not both")
        if self.cert_days_critical > self.cert_days_warning:
            raise ValueError("cert_days_critical must not exceed cert_days_warning")
        if "json_value" in self.model_fields_set and self.json_field is None:
            raise ValueError("json_value needs json_field (the dotted path to compare)")
        return self

    def build(self) -> HttpCheck:
        return HttpCheck(self)


def shared_client(max_connections: int = 100) -> httpx.AsyncClient:
    """A client for ``ctx.resources["http_client"]``, sized to the check concurrency.

    It verifies TLS against the system trust store, follows up to 10 redirects when
    a check asks it to, and spreads its connections over small pools (see
    ``_http_transport``) so that it stays fast at high concurrency. The owner
    closes it (``await client.aclose()``).
    """
    import httpx

    from watchkeeper.monitor.checks._http_transport import ShardedTransport

    transport = ShardedTransport(verify=client_ssl_context(), max_connections=max_connections)
    return httpx.AsyncClient(transport=transport, max_redirects=10, trust_env=False)


def json_lookup(doc: Any, path: str) -> Any:
    """Follow a dotted path (``data.items.0.name``) into a JSON document.

    Returns ``_MISSING`` (a private sentinel) when a step does not exist.
    """
    for step in path.split("."):
        if isinstance(doc, dict) and step in doc:
            doc = doc[step]
        elif isinstance(doc, list) and re.fullmatch(r"-?\d+", step) and -len(doc) <= int(
                step) < len(doc):
            doc = doc[int(step)]
        else:
            return _MISSING
    return doc


def _status_ok(expect: int | list[int] | None, status: int) -> bool:
    if expect is None:
        return 200 <= status <= 299
    return status == expect if isinstance(expect, int) else status in expect


def _expected_text(expect: int | list[int] | None) -> str:
    if expect is None:
        return "2xx"
    return str(expect) if isinstance(expect, int) else " or ".join(map(str, expect))


def _root_causes(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def _describe_error(exc: Exception, url: str) -> str:
    """One line saying why a request failed, from the innermost cause that says most."""
    import socket
    import ssl

    import httpx

    if isinstance(exc, httpx.TooManyRedirects):
        return f"too many redirects from {url}"
    for cause in _root_causes(exc):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS verification failed for {url}: {cause.verify_message}"
        if isinstance(cause, ConnectionRefusedError):
            return f"connection refused by {url}"
        if isinstance(cause, socket.gaierror):
            return f"cannot resolve the host of {url}: {cause.strerror}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS handshake with {url} failed: {cause.reason or cause}"
    text = str(exc) or type(exc).__name__
    if isinstance(exc, httpx.RemoteProtocolError):
        return f"bad HTTP response from {url}: {text}"
    return f"request to {url} failed: {text}"


class HttpCheck:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._labels = {"url": config.url}
        self._auth = (config.basic_auth.username, config.basic_auth.password) \
            if config.basic_auth else None
        self._body_re = re.compile(config.body_regex) if config.body_regex else None
        self._needs_body = bool(config.body_regex or config.json_field)
        self._cert_cache: tuple[bytes, CertInfo] | None = None

    def _peer_cert(self, response: httpx.Response) -> CertInfo | None:
        """The certificate of the connection that served ``response`` (parsed once per cert)."""
        stream = response.extensions.get("network_stream")
        ssl_object = stream.get_extra_info("ssl_object") if stream is not None else None
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return None
        if self._cert_cache is None or self._cert_cache[0] != der:
            try:
                self._cert_cache = (der, read_cert(der))
            except ValueError:
                return None
        return self._cert_cache[1]

    def _own_client(self, timeout: float) -> httpx.AsyncClient:
        import httpx

        c = self.config
        return httpx.AsyncClient(verify=client_ssl_context(c.verify_tls, c.ca_file),
                                 max_redirects=c.max_redirects, timeout=timeout, trust_env=False)

    def _can_share(self, client: httpx.AsyncClient) -> bool:
        c = self.config
        return c.verify_tls and c.ca_file is None and client.max_redirects == c.max_redirects

    async def run(self, ctx: CheckContext) -> CheckResult:
        import asyncio

        import httpx

        c = self.config
        budget = inner_timeout(ctx)
        shared = ctx.resources.get("http_client")
        own = None
        if not (isinstance(shared, httpx.AsyncClient) and self._can_share(shared)):
            try:
                own = self._own_client(budget)
            except OSError as exc:
                return CheckResult(State.UNKNOWN, f"cannot read ca_file {c.ca_file}: "
                                   f"{exc.strerror or exc}")
        client = own or shared
        assert isinstance(client, httpx.AsyncClient)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(budget):
                return await self._fetch(client, budget, started)
        except (TimeoutError, httpx.TimeoutException):
            return CheckResult(State.CRITICAL, f"no response from {c.url} within {ctx.timeout:g}s",
                               duration_seconds=time.perf_counter() - started)
        except httpx.HTTPError as exc:
            return CheckResult(State.CRITICAL, _describe_error(exc, c.url),
                               duration_seconds=time.perf_counter() - started)
        except OSError as exc:
            return CheckResult(State.CRITICAL, f"request to {c.url} failed: {exc}",
                               duration_seconds=time.perf_counter() - started)
        finally:
            if own is not None:
                await own.aclose()

    async def _fetch(self, client: httpx.AsyncClient, budget: float,
                     started: float) -> CheckResult:
        c = self.config
        request = client.build_request(
            c.method, c.url, headers=c.headers or None, content=c.body, json=c.json_body,
            timeout=budget)
        if self._auth:
            request.headers["Authorization"] = _basic(*self._auth)
        response = await client.send(request, stream=True, follow_redirects=c.follow_redirects)
        try:
            info = self._peer_cert(response) if response.url.scheme == "https" else None
            chunks: list[bytes] = []
            size = 0
            # Read (and keep only what the checks need) so the connection can be reused.
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if self._needs_body:
                    chunks.append(chunk)
                if size >= _MAX_BODY:
                    break
        finally:
            await response.aclose()
        elapsed = time.perf_counter() - started
        return self._judge(response, b"".join(chunks), size, info, elapsed)

    def _judge(self, response: httpx.Response, body: bytes, size: int, info: CertInfo | None,
               elapsed: float) -> CheckResult:
        c = self.config
        status = response.status_code
        length = response.headers.get("content-length")
        metrics = [
            Sample("watchkeeper_http_status_code", self._labels, float(status)),
            Sample("watchkeeper_http_duration_seconds", self._labels, elapsed),
        ]
        content_length = float(length) if length is not None and length.isdigit() else size
        metrics.append(Sample("watchkeeper_http_content_length", self._labels,
                              float(content_length)))
        state = State.OK
        notes = [f"HTTP {status} in {fmt_ms(elapsed)}"]
        if not _status_ok(c.expect_status, status):
            state = State.CRITICAL
            notes = [f"expected status {_expected_text(c.expect_status)}, got {status}"]
        if self._body_re is not None:
            text = body.decode(response.encoding or "utf-8", errors="replace")
            if not self._body_re.search(text):
                state = State.CRITICAL
                notes.append(f"body does not match {c.body_regex!r}")
        if c.json_field is not None:
            problem = self._json_problem(body)
            if problem:
                state = State.CRITICAL
                notes.append(problem)
        if c.max_latency is not None and elapsed > c.max_latency:
            state = state.worse(State.WARNING)
            notes.append(f"slower than {fmt_ms(c.max_latency)}")
        if info is not None:
            days = info.days_left()
            metrics += cert_samples({"url": c.url}, info)
            cstate, phrase = cert_state(days, c.cert_days_warning, c.cert_days_critical)
            if cstate is not State.OK:
                state = state.worse(cstate)
                notes.append(phrase)
        return CheckResult(state, "; ".join(notes), duration_seconds=elapsed, metrics=metrics)

    def _json_problem(self, body: bytes) -> str | None:
        import json

        c = self.config
        assert c.json_field is not None
        try:
            doc = json.loads(body)
        except ValueError:
            return "body is not JSON"
        found = json_lookup(doc, c.json_field)
        if found is _MISSING:
            return f"JSON has no {c.json_field}"
        if "json_value" in c.model_fields_set and found != c.json_value:
            return f"JSON {c.json_field} is {json.dumps(found)}, expected {json.dumps(c.json_value)}"
        return None


def _basic(user: str, password: str) -> str:
    import base64

    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
