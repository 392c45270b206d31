"""Output capture shared by the executors: a size cap that keeps the head and the tail,
and streaming of decoded text as it arrives."""

from __future__ import annotations

import codecs

from watchkeeper.automation.executors.base import OutputCallback

__all__ = ["Capture", "DEFAULT_OUTPUT_CAP", "truncation_marker"]

DEFAULT_OUTPUT_CAP = 1024 * 1024


def truncation_marker(dropped: int) -> str:
    return f"\n[... {dropped} bytes truncated by watchkeeper ...]\n"


class Capture:
    """One stream's output: at most ``cap`` bytes kept (first half and last half).

    Keeping the tail matters as much as the head: the error that ends a failing
    command is usually in its last lines. ``on_output`` gets every chunk decoded
    (UTF-8, invalid bytes replaced), before capping, so a live view misses nothing.
    """

    def __init__(self, cap: int, host: str, stream: str,
                 on_output: OutputCallback | None = None) -> None:
        self.cap = max(cap, 0)
        self._half = self.cap // 2
        self._head = bytearray()
        self._tail = bytearray()
        self.total = 0
        self._over = False
        self._host = host
        self._stream = stream
        self._on_output = on_output
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace") if on_output else None

    def feed(self, data: bytes) -> None:
        if not data:
            return
        self.total += len(data)
        if self._on_output is not None and self._decoder is not None:
            text = self._decoder.decode(data)
            if text:
                self._on_output(self._host, self._stream, text)
        if not self._over:
            self._head += data
            if len(self._head) <= self.cap:
                return
            # Over the cap from here on: the head keeps the first half, the tail the rest.
            self._over = True
            self._tail = self._head[self._half:]
            del self._head[self._half:]
        else:
            self._tail += data
        keep = self.cap - self._half
        if len(self._tail) > keep:
            del self._tail[:len(self._tail) - keep]

    def finish(self) -> None:
        if self._on_output is not None and self._decoder is not None:
            rest = self._decoder.decode(b"", final=True)
            if rest:
                self._on_output(self._host, self._stream, rest)

    @property
    def truncated(self) -> bool:
        return self.total > self.cap

    def text(self) -> str:
        if not self.truncated:
            return (bytes(self._head) + bytes(self._tail)).decode("utf-8", "replace")
        dropped = self.total - len(self._head) - len(self._tail)
        return (bytes(self._head).decode("utf-8", "replace") + truncation_marker(dropped)
                + bytes(self._tail).decode("utf-8", "replace"))
