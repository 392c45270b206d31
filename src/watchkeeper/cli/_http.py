"""One HTTP/1.1 request over a plain socket, for the command line's timed fast path.

``watchkeeper exec --server`` makes exactly one POST to a server that is normally on
loopback, and that command is timed against Ansible: importing ``http.client`` (it pulls
in the ``email`` package and ``ssl``) costs ~25 ms, more than a warm run through the
server takes to answer for a few hosts, and httpx costs three times that. This speaks
just what that request needs: ``Connection: close``, an answer framed by
``Content-Length``, chunked transfer encoding or the end of the connection. ``https``
URLs get TLS with certificate and host name verification (``ssl`` is imported then).
"""

from __future__ import annotations

import socket

__all__ = ["HTTPFailure", "post"]


class HTTPFailure(Exception):
    """The server could not be reached or its answer was not HTTP. ``str()`` says why."""


class _Reader:
    """Buffered reads from a socket: lines, exact sizes, or everything to the end."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()  # grows in place: a large answer is not copied per read

    def _more(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def _take(self, n: int, skip: int = 0) -> bytes:
        out = bytes(self.buf[:n])
        del self.buf[:n + skip]
        return out

    def line(self) -> bytes:
        while (end := self.buf.find(b"\r\n")) < 0:
            if len(self.buf) > 65536:
                raise HTTPFailure("answer header line too long")
            if not self._more():
                raise HTTPFailure("connection closed before the answer was complete")
        return self._take(end, 2)

    def exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._more():
                raise HTTPFailure("connection closed before the answer was complete")
        return self._take(n)

    def rest(self) -> bytes:
        while self._more():
            pass
        return self._take(len(self.buf))


def post(scheme: str, host: str, port: int | None, path: str, body: bytes,
         headers: dict[str, str], *, connect_timeout: float,
         read_timeout: float | None) -> tuple[int, bytes]:
    """POST ``body`` to ``scheme://host:port/path``; (status code, answer body).

    ``read_timeout`` bounds each wait for the answer after connecting (None: no limit).
    Raises HTTPFailure (cannot connect, TLS fails to verify, time out, not HTTP).
    """
    port = port or (443 if scheme == "https" else 80)
    try:
        sock = socket.create_connection((host, port), timeout=connect_timeout)
    except TimeoutError:
        raise HTTPFailure("timed out connecting") from None
    except OSError as exc:
        raise HTTPFailure(str(exc) or type(exc).__name__) from None
    try:
        if scheme == "https":
            import ssl

            try:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=host)
            except OSError as exc:  # ssl.SSLError (a failed verification) is one
                raise HTTPFailure(str(exc) or type(exc).__name__) from None
        sock.settimeout(read_timeout)
        authority = f"[{host}]" if ":" in host else host
        if port != (443 if scheme == "https" else 80):
            authority += f":{port}"
        lines = [f"POST {path or '/'} HTTP/1.1", f"Host: {authority}",
                 f"Content-Length: {len(body)}", "Connection: close",
                 *(f"{k}: {v}" for k, v in headers.items())]
        try:
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            return _answer(_Reader(sock))
        except TimeoutError:
            raise HTTPFailure("timed out waiting for the answer") from None
        except OSError as exc:
            raise HTTPFailure(str(exc) or type(exc).__name__) from None
    finally:
        sock.close()


def _answer(reader: _Reader) -> tuple[int, bytes]:
    status_line = reader.line()
    parts = status_line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise HTTPFailure(f"not an HTTP answer: {status_line[:80]!r}")
    status = int(parts[1])
    fields: dict[str, str] = {}
    while line := reader.line():
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise HTTPFailure(f"malformed answer header: {line[:80]!r}")
        fields[name.strip().lower()] = value.strip()
    if "chunked" in fields.get("transfer-encoding", "").lower():
        chunks = []
        while True:
            size_text = reader.line().split(b";", 1)[0].strip()
            try:
                size = int(size_text, 16)
            except ValueError:
                raise HTTPFailure(f"malformed chunk size {size_text[:20]!r}") from None
            if size == 0:
                break
            chunks.append(reader.exactly(size))
            reader.line()
        return status, b"".join(chunks)
    length = fields.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise HTTPFailure(f"malformed Content-Length {length[:20]!r}")
        return status, reader.exactly(int(length))
    return status, reader.rest()
