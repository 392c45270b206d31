"""The ``dns`` check against a real DNS server on 127.0.0.1 (UDP and TCP, ephemeral port),
written with dnspython's message API and run in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import AsyncIterator

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest
from pydantic import ValidationError

from watchkeeper.monitor.checks.dns import RECORD_TYPES, Config, normalize_answer
from watchkeeper.monitor.model import CheckContext, CheckResult, State

ZONE: dict[tuple[str, str], list[str]] = {
    ("www.example.test.", "A"): ["192.0.2.1", "192.0.2.2"],
    ("www.example.test.", "AAAA"): ["2001:db8::1"],
    ("alias.example.test.", "CNAME"): ["www.example.test."],
    ("example.test.", "MX"): ["10 mail.example.test.", "20 Backup.Example.Test."],
    ("example.test.", "TXT"): ['"v=spf1 -all"', '"hello" "world"'],
    ("example.test.", "SOA"): ["ns1.example.test. admin.example.test. 1 3600 600 86400 60"],
    ("_ldap._tcp.example.test.", "SRV"): ["0 5 389 ldap.example.test."],
    ("1.2.0.192.in-addr.arpa.", "PTR"): ["www.example.test."],
    ("big.example.test.", "TXT"): [f'"{"x" * 200} {i}"' for i in range(6)],
    ("empty.example.test.", "MX"): [],
}
RCODES = {"servfail.example.test.": dns.rcode.SERVFAIL, "refused.example.test.": dns.rcode.REFUSED}


class DnsServer:
    def __init__(self) -> None:
        self.port = 0
        self.tcp_queries = 0

    def answer(self, wire: bytes) -> bytes | None:
        query = dns.message.from_wire(wire)
        q = query.question[0]
        name, rdtype = q.name.to_text().lower(), dns.rdatatype.to_text(q.rdtype)
        response = dns.message.make_response(query)
        if name.startswith("slow."):
            return None
        if name in RCODES:
            response.set_rcode(RCODES[name])
            return response.to_wire()
        known = {n for n, _ in ZONE}
        if name not in known:
            response.set_rcode(dns.rcode.NXDOMAIN)
            return response.to_wire()
        if (name, "CNAME") in ZONE and rdtype != "CNAME":
            (target,) = ZONE[(name, "CNAME")]
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "CNAME", target))
            name = target
        records = ZONE.get((name, rdtype), [])
        if records:
            response.answer.append(dns.rrset.from_text_list(name, 60, "IN", rdtype, records))
        return response.to_wire()

    def udp_answer(self, wire: bytes) -> bytes | None:
        out = self.answer(wire)
        if out is not None and len(out) > 512:
            response = dns.message.make_response(dns.message.from_wire(wire))
            response.flags |= dns.flags.TC
            return response.to_wire()
        return out


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: DnsServer) -> None:
        self.server = server

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        out = self.server.udp_answer(data)
        if out is not None:
            self.transport.sendto(out, addr)  # type: ignore[attr-defined]


@contextlib.asynccontextmanager
async def dns_server() -> AsyncIterator[DnsServer]:
    """UDP and TCP on the same ephemeral port of 127.0.0.1."""
    server = DnsServer()

    async def tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                (size,) = struct.unpack("!H", await reader.readexactly(2))
                server.tcp_queries += 1
                out = server.answer(await reader.readexactly(size))
                if out is None:
                    await reader.read()
                    return
                writer.write(struct.pack("!H", len(out)) + out)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    loop = asyncio.get_running_loop()
    tcp_server = await asyncio.start_server(tcp, "127.0.0.1", 0)
    server.port = tcp_server.sockets[0].getsockname()[1]
    transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(server),
                                                       local_addr=("127.0.0.1", server.port))
    try:
        yield server
    finally:
        transport.close()
        tcp_server.close()
        await tcp_server.wait_closed()


async def check(server: DnsServer, query: str, timeout: float = 3.0,
                **kw: object) -> CheckResult:
    config = Config.model_validate({"name": "dns", "type": "dns", "query": query,
                                    "resolver": "127.0.0.1", "resolver_port": server.port, **kw})
    return await config.build().run(CheckContext(timeout=timeout))


@pytest.fixture
async def server() -> AsyncIterator[DnsServer]:
    async with dns_server() as s:
        yield s


async def test_a_records(server: DnsServer) -> None:
    result = await check(server, "www.example.test", expect=["192.0.2.1"])
    assert result.state is State.OK
    assert result.summary.startswith("www.example.test A = 192.0.2.1, 192.0.2.2 in ")
    names = {m.name: m.value for m in result.metrics}
    assert names["watchkeeper_dns_answers"] == 2
    assert 0 < names["watchkeeper_dns_lookup_duration_seconds"] < 1


@pytest.mark.parametrize(
    ("query", "rtype", "expect"),
    [
        ("www.example.test", "aaaa", ["2001:db8::1"]),
        ("alias.example.test", "A", ["192.0.2.2"]),
        ("alias.example.test", "CNAME", ["www.example.test."]),
        ("example.test", "MX", ["10 mail.example.test", "20 backup.example.test."]),
        ("example.test", "TXT", ["v=spf1 -all", "helloworld"]),
        ("example.test", "SOA", ["ns1.example.test admin.example.test 1 3600 600 86400 60"]),
        ("_ldap._tcp.example.test", "SRV", ["0 5 389 ldap.example.test"]),
        ("1.2.0.192.in-addr.arpa", "PTR", ["www.example.test"]),
    ],
)
async def test_record_types(server: DnsServer, query: str, rtype: str, expect: list[str]) -> None:
    result = await check(server, query, record_type=rtype, expect=expect)
    assert result.state is State.OK, result.summary


async def test_expect_missing_and_exact(server: DnsServer) -> None:
    missing = await check(server, "www.example.test", expect=["192.0.2.9"])
    exact = await check(server, "www.example.test", expect=["192.0.2.1"], expect_exact=True)
    exact_ok = await check(server, "www.example.test", expect=["192.0.2.2", "192.0.2.1"],
                           expect_exact=True)
    assert missing.state is State.CRITICAL
    assert missing.summary == "www.example.test A: missing 192.0.2.9 (got 192.0.2.1, 192.0.2.2)"
    assert exact.summary == "www.example.test A: unexpected 192.0.2.2 (got 192.0.2.1, 192.0.2.2)"
    assert exact_ok.state is State.OK


async def test_nxdomain_servfail_refused_empty(server: DnsServer) -> None:
    where = f"127.0.0.1#{server.port}"
    nx = await check(server, "nope.example.test")
    servfail = await check(server, "servfail.example.test")
    refused = await check(server, "refused.example.test")
    empty = await check(server, "empty.example.test", record_type="MX")
    assert nx.state is State.CRITICAL
    assert nx.summary == f"NXDOMAIN: nope.example.test does not exist (asked {where})"
    assert servfail.summary == f"SERVFAIL from {where} for servfail.example.test A"
    assert refused.summary == f"REFUSED from {where} for refused.example.test A"
    assert empty.summary == f"no MX records for empty.example.test (asked {where})"


async def test_timeout(server: DnsServer) -> None:
    result = await check(server, "slow.example.test", timeout=0.3)
    assert result.state is State.CRITICAL
    assert result.summary == (f"no answer from 127.0.0.1#{server.port} for slow.example.test A "
                              "within 0.3s")


async def test_tcp_and_truncation(server: DnsServer) -> None:
    over_tcp = await check(server, "www.example.test", protocol="tcp")
    assert over_tcp.state is State.OK
    assert server.tcp_queries == 1
    big = await check(server, "big.example.test", record_type="TXT")
    assert big.state is State.OK
    assert server.tcp_queries == 2  # truncated over UDP, asked again over TCP
    assert "(+1 more)" in big.summary


async def test_nothing_listening() -> None:
    async with dns_server() as gone:
        pass
    result = await check(gone, "www.example.test", timeout=0.5)
    assert result.state is State.CRITICAL


def test_normalize_answer() -> None:
    assert normalize_answer("10 Mail.Example.COM.", "MX") == "10 mail.example.com"
    assert normalize_answer('"a b" "c"', "TXT") == "a bc"
    assert normalize_answer(".", "NS") == "."


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"record_type": "BOGUS"}, "record_type 'BOGUS' is not supported; use one of A, AAAA, "),
        ({"resolver": "dns.google"}, "resolver 'dns.google' is not an IP address"),
        ({"resolver_port": 0}, "greater than or equal to 1"),
        ({"protocol": "doh"}, "Input should be 'udp' or 'tcp'"),
        ({"expect": []}, "List should have at least 1 item"),
        ({"query": ""}, "at least 1 character"),
    ],
)
def test_config_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Config.model_validate({"name": "d", "type": "dns", "query": "example.test", **kw})
    assert message in str(info.value)


def test_record_types_listed() -> None:
    for name in ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SOA", "PTR", "SRV"):
        assert name in RECORD_TYPES
