"""Real loopback servers the check tests talk to: a small HTTP/1.1 server (plain or TLS)
and a TCP line server. They run in the test's own event loop on ephemeral ports."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import json
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

import trustme

JSON_DOC = {"status": "ok", "data": {"items": [{"name": "first"}, {"name": "second"}]},
            "count": 2}


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


async def default_routes(req: Request) -> Response:
    """The routes the HTTP check tests use."""
    if req.path == "/":
        return Response(200, b"hello watchkeeper\n", {"Content-Type": "text/plain"})
    if req.path.startswith("/status/"):
        code = int(req.path.rsplit("/", 1)[1])
        return Response(code, f"status {code}\n".encode())
    if req.path == "/json":
        return Response(200, json.dumps(JSON_DOC).encode(), {"Content-Type": "application/json"})
    if req.path == "/redirect":
        return Response(302, b"", {"Location": "/"})
    if req.path == "/loop":
        return Response(302, b"", {"Location": "/loop"})
    if req.path == "/slow":
        await asyncio.sleep(float(req.query.get("s", ["5"])[0]))
        return Response(200, b"slow\n")
    if req.path == "/auth":
        want = "Basic " + base64.b64encode(b"alice:s3cret").decode()
        if req.headers.get("authorization") == want:
            return Response(200, b"welcome alice\n")
        return Response(401, b"who are you\n", {"WWW-Authenticate": 'Basic realm="t"'})
    if req.path == "/echo":
        doc = {"method": req.method, "body": req.body.decode(),
               "content_type": req.headers.get("content-type", ""),
               "x_test": req.headers.get("x-test", "")}
        return Response(200, json.dumps(doc).encode(), {"Content-Type": "application/json"})
    return Response(404, b"not found\n")


Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class RunningServer:
    host: str
    port: int
    scheme: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        return self.counts.get("connections", 0)

    @property
    def base(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


async def _serve_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                      handler: Handler) -> None:
    while True:
        line = await reader.readline()
        if not line:
            return
        method, target, version = line.decode("latin-1").split(" ", 2)
        headers: dict[str, str] = {}
        while (h := await reader.readline()) not in (b"\r\n", b"\n", b""):
            k, _, v = h.decode("latin-1").partition(":")
            headers[k.strip().lower()] = v.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0") or 0))
        parts = urlsplit(target)
        resp = await handler(Request(method, parts.path, parse_qs(parts.query), headers, body))
        head = [f"HTTP/1.1 {resp.status} X", f"Content-Length: {len(resp.body)}"]
        head += [f"{k}: {v}" for k, v in resp.headers.items()]
        payload = b"" if method == "HEAD" else resp.body
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + payload)
        await writer.drain()
        connection = headers.get("connection", "").lower()
        if connection == "close" or (version.strip() == "HTTP/1.0" and connection != "keep-alive"):
            return


@contextlib.asynccontextmanager
async def http_server(handler: Handler = default_routes, *,
                      ssl_context: ssl.SSLContext | None = None,
                      host: str = "127.0.0.1") -> AsyncIterator[RunningServer]:
    """An HTTP/1.1 server with keep-alive on an ephemeral loopback port."""
    counts = {"connections": 0}

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        counts["connections"] += 1
        await _serve_http(reader, writer, handler)

    async with line_server(serve, ssl_context=ssl_context, host=host) as (h, port):
        yield RunningServer(h, port, "https" if ssl_context else "http", counts)


def tls_server_context(ca: trustme.CA, *identities: str, days: float = 365,
                       expired: bool = False) -> ssl.SSLContext:
    """A server SSL context with a leaf certificate from ``ca`` valid for ``days`` from now
    (or one that expired ``days`` ago)."""
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        not_before, not_after = now - datetime.timedelta(days=days + 30), \
            now - datetime.timedelta(days=days)
    else:
        not_before, not_after = now - datetime.timedelta(days=1), \
            now + datetime.timedelta(days=days, hours=12)
    cert = ca.issue_cert(*(identities or ("127.0.0.1", "localhost")), not_before=not_before,
                         not_after=not_after)
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    return ctx


@contextlib.asynccontextmanager
async def line_server(
    serve: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]], *,
    ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1",
) -> AsyncIterator[tuple[str, int]]:
    """A TCP server running ``serve`` per connection; every connection is closed on exit."""
    tasks: set[asyncio.Task[None]] = set()
    writers: set[asyncio.StreamWriter] = set()

    async def on_connect(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        writers.add(writer)
        try:
            await serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
            pass
        finally:
            writers.discard(writer)
            tasks.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    server = await asyncio.start_server(on_connect, host, 0, ssl=ssl_context)
    port = server.sockets[0].getsockname()[1]
    try:
        yield host, port
    finally:
        server.close()
        # End connections from the outside first: cancelling a stream handler task
        # makes asyncio log an error on Python 3.11.
        for w in list(writers):
            w.transport.abort()
        if tasks:
            _, pending = await asyncio.wait(list(tasks), timeout=2)
            for t in pending:
                t.cancel()
        await server.wait_closed()
