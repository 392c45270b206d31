"""Real HTTP servers on 127.0.0.1 for receiver tests: record requests, answer per mode.

``HTTPRecorder`` is a small HTTP/1.1 server on an ephemeral loopback port
(asyncio streams, in the test's own event loop). ``mode`` decides the answer:
``"ok"`` (``status`` and ``body``), ``"hang"`` (read the request, never answer),
``"drop"`` (read the request, close the connection without a byte). A
``handler(request) -> (status, body)`` may compute the answer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class HTTPRecorder:
    mode: str = "ok"
    status: int = 200
    body: str = "ok"
    content_type: str = "text/plain"
    handler: Callable[[Request], tuple[int, str]] | None = None
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    port: int = 0

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def start(self) -> HTTPRecorder:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in list(self._writers):
            w.close()
        for w in list(self._writers):
            with contextlib.suppress(Exception):
                await w.wait_closed()
        await self._server.wait_closed()

    async def wait_for(self, n: int, timeout: float = 5.0) -> list[Request]:
        """Until ``n`` requests arrived (TimeoutError otherwise)."""
        async with asyncio.timeout(timeout):
            while len(self.requests) < n:
                self._arrived.clear()
                await self._arrived.wait()
        return self.requests

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.add(writer)
        try:
            while True:
                line = await reader.readline()
                if not line:
                    return
                method, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while True:
                    h = (await reader.readline()).decode()
                    if h in ("\r\n", "\n", ""):
                        break
                    k, _, v = h.partition(":")
                    headers[k.strip().lower()] = v.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                req = Request(method, path, headers, body)
                self.requests.append(req)
                self._arrived.set()
                if self.mode == "hang":
                    await reader.read()  # until the client gives up and closes
                    return
                if self.mode == "drop":
                    return
                status, text = (self.handler(req) if self.handler
                                else (self.status, self.body))
                data = text.encode()
                writer.write(f"HTTP/1.1 {status} X\r\nContent-Type: {self.content_type}\r\n"
                             f"Content-Length: {len(data)}\r\n\r\n".encode() + data)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


@contextlib.asynccontextmanager
async def recorder(**kw: Any):  # type: ignore[no-untyped-def]
    srv = await HTTPRecorder(**kw).start()
    try:
        yield srv
    finally:
        await srv.close()
