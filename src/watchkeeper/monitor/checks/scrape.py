"""``scrape``: fetch a Prometheus/OpenMetrics endpoint and keep its samples, as Prometheus does.

Target labels are the check's ``labels`` plus ``job`` (default: the check name) and
``instance`` (``host:port`` of the url). With ``honor_labels: false`` (the default) a
scraped label that clashes with a target label is kept as ``exported_<name>``; with
``true`` the scraped value wins. Besides the scraped samples the result carries
``scrape_samples_scraped`` and ``scrape_duration_seconds`` (and
``watchkeeper_scrape_invalid_lines`` when the exporter wrote lines that do not parse).

States: OK when the body parsed; WARNING when some lines were bad (they are skipped);
CRITICAL for a non-200 answer, a connection or TLS failure, a timeout, a body where no
line parses, or more than ``sample_limit`` samples (none are kept then, like Prometheus).

Staleness, as Prometheus: a series that was in the previous scrape of the check but
not in this one gets a staleness marker at this scrape's time, and a failed scrape
marks every series of the previous one; a removed check marks all its series,
report series included. Series the exporter stamped with its own timestamps are not
tracked. The check itself is stateless: the owner (``MonitorService``) keeps a
:class:`SeriesMemory` per scrape check and writes what it returns.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator

from watchkeeper.config.types import Size
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult, Sample, State

if TYPE_CHECKING:
    import httpx

__all__ = ["REPORT_SERIES", "Config", "ScrapeCheck", "SeriesMemory", "target_labels"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
#: Series a scrape writes about itself (Prometheus's report series): written on every
#: scrape, failed or not, so they never go stale while the check exists.
REPORT_SERIES = frozenset({"scrape_samples_scraped", "scrape_duration_seconds",
                           "watchkeeper_scrape_invalid_lines"})

_Key = tuple[str, tuple[tuple[str, str], ...]]


class Config(CheckConfig):
    type: Literal["scrape"]
    url: str = Field(min_length=1)
    honor_labels: bool = False
    honor_timestamps: bool = True
    params: dict[str, str | list[str]] = Field(default_factory=dict)
    headers: dict[str, str] = Field(default_factory=dict)
    sample_limit: int = Field(50_000, ge=0)
    """More samples than this fail the scrape; 0 means no limit."""
    body_size_limit: Size | None = None
    verify_tls: bool = True

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http(s) URL like http://127.0.0.1:9100/metrics")
        try:
            parts.port  # noqa: B018 - validates the port
        except ValueError:
            raise ValueError(f"{value!r} has an invalid port") from None
        return value

    def build(self) -> ScrapeCheck:
        return ScrapeCheck(self)


def target_labels(config: Config) -> dict[str, str]:
    """The labels Prometheus would attach to this target: ``job``, ``instance`` and ``labels``."""
    parts = urlsplit(config.url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = parts.port or _DEFAULT_PORTS[parts.scheme]
    out = {"job": config.name, "instance": f"{host}:{port}"}
    out.update(config.labels)
    return out


def _merge(labels: dict[str, str], target: dict[str, str], honor: bool) -> dict[str, str]:
    """Add the target labels to a scraped label set (changed in place and returned)."""
    if not labels:
        return dict(target)
    for key, value in target.items():
        if key in labels:
            if honor:
                continue
            labels[f"exported_{key}"] = labels[key]
        labels[key] = value
    return labels


class ScrapeCheck:
    """Runs one scrape; uses ``ctx.resources["http_client"]`` (an httpx.AsyncClient) if given."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.target = target_labels(config)

    async def run(self, ctx: CheckContext) -> CheckResult:
        import httpx

        client: httpx.AsyncClient | None = ctx.resources.get("http_client")
        own = client is None
        if client is None:
            client = httpx.AsyncClient(verify=self.config.verify_tls, trust_env=False)
        start = time.perf_counter()
        try:
            outcome = await self._fetch(client, ctx.timeout)
        finally:
            if own:
                await client.aclose()
        duration = time.perf_counter() - start
        if isinstance(outcome, str):
            return CheckResult(State.CRITICAL, outcome, duration_seconds=duration,
                               metrics=self._meta(0, duration))
        body, content_type = outcome
        return self._evaluate(body, content_type, duration)

    async def _fetch(self, client: httpx.AsyncClient, timeout: float) -> tuple[str, str] | str:
        """The body and its Content-Type, or the reason the scrape failed."""
        import httpx

        from watchkeeper.monitor.exposition import ACCEPT_HEADER

        c = self.config
        headers = {"Accept": ACCEPT_HEADER,
                   "X-Prometheus-Scrape-Timeout-Seconds": f"{timeout:g}"}
        headers.update(c.headers)
        limit = c.body_size_limit
        try:
            async with client.stream("GET", c.url, params=c.params or None, headers=headers,
                                     timeout=timeout) as resp:
                if resp.status_code != 200:
                    return f"{c.url}: HTTP {resp.status_code} {resp.reason_phrase}".rstrip()
                chunks: list[bytes] = []
                size = 0
                async for chunk in resp.aiter_bytes():
                    size += len(chunk)
                    if limit is not None and size > limit:
                        return f"{c.url}: body larger than body_size_limit ({limit} B)"
                    chunks.append(chunk)
                raw = b"".join(chunks)
                content_type = resp.headers.get("content-type", "")
                encoding = resp.charset_encoding or "utf-8"
        except httpx.TimeoutException:
            return f"{c.url}: no answer within {timeout:g}s"
        except httpx.HTTPError as exc:
            return f"{c.url}: {_reason(exc)}"
        try:
            return raw.decode(encoding), content_type
        except (UnicodeDecodeError, LookupError):
            return f"{c.url}: body is not valid {encoding} text"

    def _meta(self, scraped: int, duration: float, invalid: int | None = None) -> list[Sample]:
        out = [
            Sample("scrape_samples_scraped", dict(self.target), float(scraped)),
            Sample("scrape_duration_seconds", dict(self.target), duration),
        ]
        if invalid is not None:
            out.append(Sample("watchkeeper_scrape_invalid_lines", dict(self.target),
                              float(invalid)))
        return out

    def _evaluate(self, body: str, content_type: str, duration: float) -> CheckResult:
        from watchkeeper.monitor.exposition import is_openmetrics_content_type, parse

        c = self.config
        parsed = parse(body, openmetrics=is_openmetrics_content_type(content_type),
                       strict=False, families=False)
        n = len(parsed.samples)
        bad = len(parsed.issues)
        meta = self._meta(n, duration, bad)
        ms = duration * 1000
        if bad and not n:
            return CheckResult(State.CRITICAL,
                               f"{c.url}: no valid samples, {bad} bad lines ({parsed.issues[0]})",
                               duration_seconds=duration, metrics=meta,
                               details=_issue_details(parsed.issues))
        if c.sample_limit and n > c.sample_limit:
            return CheckResult(State.CRITICAL,
                               f"{c.url}: {n} samples exceed sample_limit {c.sample_limit}; "
                               "none stored",
                               duration_seconds=duration, metrics=meta)
        honor_ts = c.honor_timestamps
        target = self.target
        honor = c.honor_labels
        samples = [
            # the parser gives each sample a fresh dict, so it may be extended in place
            Sample(s.name, _merge(s.labels, target, honor),  # type: ignore[arg-type]
                   s.value, s.timestamp if honor_ts else None)
            for s in parsed.samples
        ]
        samples.extend(meta)
        if bad:
            return CheckResult(State.WARNING,
                               f"scraped {n} samples in {ms:.0f} ms; skipped {bad} bad lines "
                               f"({parsed.issues[0]})",
                               duration_seconds=duration, metrics=samples,
                               details=_issue_details(parsed.issues))
        return CheckResult(State.OK, f"scraped {n} samples in {ms:.0f} ms",
                           duration_seconds=duration, metrics=samples)


class SeriesMemory:
    """The series of one scrape check's previous scrape, for staleness markers.

    :meth:`observe` takes each scrape's series and returns markers for the ones
    that went away; :meth:`end` returns markers for everything remembered (the
    check was removed). Markers are samples without a timestamp whose value is
    :data:`~watchkeeper.staleness.STALE_NAN`: the writer stamps them with the
    scrape's time, like the scraped samples.
    """

    def __init__(self) -> None:
        self._scraped: dict[_Key, None] = {}
        self._report: dict[_Key, None] = {}

    @staticmethod
    def _key(name: str, labels: Mapping[str, str]) -> _Key:
        return name, tuple(sorted((k, v) for k, v in labels.items() if v != ""))

    @staticmethod
    def _markers(keys: Iterable[_Key]) -> list[Sample]:
        from watchkeeper.staleness import STALE_NAN

        return [Sample(name, dict(labels), STALE_NAN) for name, labels in keys]

    def observe(self, scraped: Iterable[Sample], report: Iterable[Sample] = (), *,
                extra_labels: Mapping[str, str] | None = None) -> list[Sample]:
        """Remember this scrape's series and return markers for the previous scrape's
        series missing from it. ``scraped``: the scraped samples (those with their own
        timestamp are ignored), stored with ``extra_labels`` added where missing;
        ``report``: the series written about the scrape itself, which only :meth:`end`
        marks stale."""
        key = self._key
        if extra_labels:
            current = {key(s.name, {**extra_labels, **s.labels}): None
                       for s in scraped if s.timestamp is None}
        else:
            current = {key(s.name, s.labels): None for s in scraped if s.timestamp is None}
        gone = [key for key in self._scraped if key not in current]
        self._scraped = current
        self._report = {self._key(s.name, s.labels): None for s in report}
        return self._markers(gone)

    def end(self) -> list[Sample]:
        """Markers for every remembered series; the memory is empty afterwards."""
        keys = {**self._scraped, **self._report}
        self._scraped, self._report = {}, {}
        return self._markers(keys)

    def __len__(self) -> int:
        return len(self._scraped)


def _reason(exc: BaseException) -> str:
    """The most telling words for a failed request: the OS error underneath if any
    ("Connection refused"), else httpx's message."""
    import ssl

    seen = exc
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, OSError):
            seen = cause
        cause = cause.__cause__ or cause.__context__
    if isinstance(seen, OSError):
        if seen.errno and not isinstance(seen, ssl.SSLError):
            return os.strerror(seen.errno)
        return str(seen) or type(seen).__name__
    return str(exc) or type(exc).__name__


def _issue_details(issues: list[Any], limit: int = 20) -> str:
    lines = [str(i) for i in issues[:limit]]
    if len(issues) > limit:
        lines.append(f"... and {len(issues) - limit} more")
    return "\n".join(lines)
