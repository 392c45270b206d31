"""``dns``: ask one resolver one question and judge the answer.

The query goes straight to one server (``resolver``, or the first nameserver of
``/etc/resolv.conf``) with dnspython, so the response code is seen as sent:
NXDOMAIN, SERVFAIL and REFUSED each get their own summary instead of a resolver
library's retry-and-give-up. A UDP answer that comes back truncated is asked
again over TCP.

Answers are compared as text, normalized: names lose their trailing dot and are
compared case-insensitively; a TXT record is its strings joined without quotes.
"""

from __future__ import annotations

import ipaddress
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from watchkeeper.monitor.checks._common import fmt_ms, inner_timeout
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult, Sample, State

if TYPE_CHECKING:
    import dns.message

__all__ = ["RECORD_TYPES", "Config", "DnsCheck", "normalize_answer"]

RECORD_TYPES = ("A", "AAAA", "CAA", "CNAME", "DNSKEY", "DS", "HTTPS", "MX", "NAPTR", "NS",
                "PTR", "SOA", "SRV", "SSHFP", "SVCB", "TLSA", "TXT")


class Config(CheckConfig):
    type: Literal["dns"]
    query: str = Field(min_length=1, max_length=253)
    record_type: str = "A"
    resolver: str | None = Field(None, description="IP address of the server to ask; "
                                 "default: the first nameserver in /etc/resolv.conf")
    resolver_port: int = Field(53, ge=1, le=65535)
    protocol: Literal["udp", "tcp"] = "udp"
    expect: list[str] | None = Field(None, min_length=1)
    expect_exact: bool = False

    @field_validator("record_type", mode="before")
    @classmethod
    def _record_type(cls, value: Any) -> Any:
        if isinstance(value, str) and value.upper() in RECORD_TYPES:
            return value.upper()
        raise ValueError(f"record_type {value!r} is not supported; use one of "
                         + ", ".join(RECORD_TYPES))

    @field_validator("resolver")
    @classmethod
    def _resolver_ip(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                ipaddress.ip_address(value)
            except ValueError:
                raise ValueError(f"resolver {value!r} is not an IP address") from None
        return value

    def build(self) -> DnsCheck:
        return DnsCheck(self)


def normalize_answer(text: str, record_type: str) -> str:
    """An answer as compared: TXT unquoted and joined, names without trailing dot, lower case."""
    if record_type == "TXT":
        if not text.startswith('"'):
            return text  # written as the plain text it should be
        import shlex

        try:
            return "".join(shlex.split(text))
        except ValueError:
            return text
    return " ".join(tok.rstrip(".") if len(tok) > 1 else tok for tok in text.split()).lower()


def _answer_text(rdata: Any, record_type: str) -> str:
    if record_type == "TXT":
        return b"".join(rdata.strings).decode("utf-8", errors="replace")
    return normalize_answer(rdata.to_text(), record_type)


def _system_nameserver() -> str | None:
    import dns.resolver

    try:
        servers = dns.resolver.Resolver(configure=True).nameservers
    except dns.resolver.NoResolverConfiguration:
        return None
    return str(servers[0]) if servers else None


class DnsCheck:
    def __init__(self, config: Config) -> None:
        self.config = config
        self._expect = {normalize_answer(e, config.record_type) for e in config.expect or []}

    async def run(self, ctx: CheckContext) -> CheckResult:
        import asyncio

        import dns.exception
        import dns.message
        import dns.name
        import dns.rdatatype

        c = self.config
        server = c.resolver or await asyncio.to_thread(_system_nameserver)
        if server is None:
            return CheckResult(State.UNKNOWN, "no resolver given and none in /etc/resolv.conf")
        where = f"{server}#{c.resolver_port}" if c.resolver_port != 53 else server
        question = f"{c.query} {c.record_type}"
        try:
            request = dns.message.make_query(c.query, c.record_type)
        except (dns.exception.DNSException, ValueError) as exc:
            return CheckResult(State.UNKNOWN, f"cannot ask for {question}: {exc}")
        budget = inner_timeout(ctx)
        started = time.perf_counter()
        try:
            async with asyncio.timeout(budget):
                response = await self._send(request, server, budget)
        except TimeoutError:
            return CheckResult(State.CRITICAL, f"no answer from {where} for {question} within "
                               f"{ctx.timeout:g}s", duration_seconds=time.perf_counter() - started)
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            return CheckResult(State.CRITICAL, f"query to {where} failed: {exc}",
                               duration_seconds=time.perf_counter() - started)
        elapsed = time.perf_counter() - started
        return self._judge(response, where, question, elapsed)

    async def _send(self, request: dns.message.Message, server: str,
                    budget: float) -> dns.message.Message:
        import dns.asyncquery
        import dns.flags

        port = self.config.resolver_port
        if self.config.protocol == "tcp":
            return await dns.asyncquery.tcp(request, server, timeout=budget, port=port)
        response = await dns.asyncquery.udp(request, server, timeout=budget, port=port)
        if response.flags & dns.flags.TC:
            response = await dns.asyncquery.tcp(request, server, timeout=budget, port=port)
        return response

    def _judge(self, response: dns.message.Message, where: str, question: str,
               elapsed: float) -> CheckResult:
        import dns.rcode
        import dns.rdatatype

        c = self.config
        labels = {"query": c.query, "record_type": c.record_type}
        metrics = [Sample("watchkeeper_dns_lookup_duration_seconds", labels, elapsed)]
        rcode = response.rcode()
        if rcode == dns.rcode.NXDOMAIN:
            return CheckResult(State.CRITICAL, f"NXDOMAIN: {c.query} does not exist (asked "
                               f"{where})", duration_seconds=elapsed, metrics=metrics)
        if rcode != dns.rcode.NOERROR:
            return CheckResult(State.CRITICAL, f"{dns.rcode.to_text(rcode)} from {where} for "
                               f"{question}", duration_seconds=elapsed, metrics=metrics)
        rdtype = dns.rdatatype.from_text(c.record_type)
        answers = sorted(_answer_text(rd, c.record_type)
                         for rrset in response.answer if rrset.rdtype == rdtype for rd in rrset)
        metrics.append(Sample("watchkeeper_dns_answers", labels, float(len(answers))))
        shown = ", ".join(answers[:5]) + (f" (+{len(answers) - 5} more)" if len(answers) > 5
                                          else "")
        if not answers:
            return CheckResult(State.CRITICAL, f"no {c.record_type} records for {c.query} "
                               f"(asked {where})", duration_seconds=elapsed, metrics=metrics)
        got = set(answers)
        missing = sorted(self._expect - got)
        extra = sorted(got - self._expect) if c.expect_exact else []
        problems = []
        if missing:
            problems.append("missing " + ", ".join(missing))
        if extra:
            problems.append("unexpected " + ", ".join(extra))
        if problems:
            return CheckResult(State.CRITICAL, f"{question}: {'; '.join(problems)} (got {shown})",
                               duration_seconds=elapsed, metrics=metrics)
        return CheckResult(State.OK, f"{question} = {shown} in {fmt_ms(elapsed)}",
                           duration_seconds=elapsed, metrics=metrics, details="\n".join(answers))
