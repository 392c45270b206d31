"""The encoding of chunk blobs: columns of timestamps, counts and float64 values.

A chunk holds the samples of one series over one time window, stored column by
column. Every column is fixed width and *byte-shuffled* (all first bytes, then
all second bytes, ...) before the whole body goes through zlib: the high bytes
of timestamps deltas and of slowly changing floats repeat, so shuffled they
form long runs that zlib squeezes to almost nothing, and decoding stays in C
(slicing, ``array.frombytes``, ``itertools.accumulate``) — which is what
keeps a 24 h query over a hundred series fast in pure Python.

Layout (little endian)::

    header  "<BBBxIq"  format version, kind, flags, pad, sample count n, first timestamp (ms)
    body    zlib(  n-1 timestamp deltas  (uint32, or uint64 when flag 1 is set; only the
                                          first one when flag 2 says they are all equal)
                 [ n counts              (uint32)                  aggregate kind only ]
                   k float64 columns     (raw: value; aggregate: sum, min, max, last) )

Floats are stored bit for bit, so NaN (with its payload), ±Inf, -0.0 and
subnormals round-trip exactly. Timestamps are integer milliseconds, sorted
ascending and unique.

Reads decode many chunks at once with :func:`decode_raw_many`: the per-chunk
work is one ``zlib.decompress`` and a few byte-slice copies; the prefix sum of
the timestamp deltas and the float conversion run once, vectorised by NumPy,
over every chunk of a query.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise

import numpy as np

from watchkeeper.errors import StorageError

__all__ = [
    "KIND_AGGREGATE",
    "KIND_RAW",
    "Aggregates",
    "chunk_kind",
    "decode_aggregates",
    "decode_raw",
    "decode_raw_array",
    "decode_raw_many",
    "encode_aggregates",
    "encode_raw",
]

KIND_RAW = 0
KIND_AGGREGATE = 1

_VERSION = 1
_FLAG_WIDE_DELTAS = 1
_FLAG_REGULAR = 2
_HEADER = struct.Struct("<BBBxIq")
_BIG_ENDIAN = sys.byteorder == "big"
_ZLIB_LEVEL = 6


def _typecode(kind: str, size: int) -> str:
    for code in kind:
        if array(code).itemsize == size:
            return code
    raise RuntimeError(f"no array typecode of {size} bytes among {kind!r}")  # pragma: no cover


_U32 = _typecode("ILH", 4)
_U64 = _typecode("QL", 8)


@dataclass(slots=True)
class Aggregates:
    """Per-bucket aggregates of one series; ``timestamps`` are bucket ends in ms.

    Each bucket covers ``(end - width, end]``; ``last`` is the value of the
    newest sample in it, ``min``/``max`` ignore NaN unless every sample was NaN,
    ``sum`` is NaN when any sample was.
    """

    timestamps: list[int]
    count: list[int]
    sum: list[float]
    min: list[float]
    max: list[float]
    last: list[float]

    def __len__(self) -> int:
        return len(self.timestamps)


def _to_le(arr: array) -> bytes:  # type: ignore[type-arg]
    if _BIG_ENDIAN:  # pragma: no cover - only on big-endian hosts
        arr = array(arr.typecode, arr)
        arr.byteswap()
    return arr.tobytes()


def _shuffle(raw: bytes, width: int) -> bytes:
    return b"".join(raw[k::width] for k in range(width))


def _unshuffle(body: memoryview, offset: int, n: int, width: int) -> bytearray:
    out = bytearray(n * width)
    for k in range(width):
        out[k::width] = body[offset + k * n: offset + (k + 1) * n]
    return out


def _column(body: memoryview, offset: int, n: int, typecode: str) -> tuple[array, int]:  # type: ignore[type-arg]
    width = array(typecode).itemsize
    arr = array(typecode)
    arr.frombytes(_unshuffle(body, offset, n, width))
    if _BIG_ENDIAN:  # pragma: no cover
        arr.byteswap()
    return arr, offset + n * width


def _encode(kind: int, timestamps: Sequence[int], counts: Sequence[int] | None,
            floats: Sequence[Sequence[float]]) -> bytes:
    n = len(timestamps)
    if n == 0:
        raise ValueError("a chunk needs at least one sample")
    for col in floats:
        if len(col) != n:
            raise ValueError(f"column of {len(col)} values for {n} timestamps")
    deltas = [b - a for a, b in pairwise(timestamps)]
    if deltas and min(deltas) <= 0:
        raise ValueError("chunk timestamps must be strictly increasing")
    flags = 0
    if len(deltas) > 1 and min(deltas) == max(deltas):
        # Scheduled scrapes are often exactly periodic: store the step once.
        flags |= _FLAG_REGULAR
        deltas = deltas[:1]
    if deltas and max(deltas) >= 1 << 32:
        flags |= _FLAG_WIDE_DELTAS
        parts = [_shuffle(_to_le(array(_U64, deltas)), 8)]
    else:
        parts = [_shuffle(_to_le(array(_U32, deltas)), 4)]
    if counts is not None:
        if len(counts) != n:
            raise ValueError(f"{len(counts)} counts for {n} timestamps")
        parts.append(_shuffle(_to_le(array(_U32, counts)), 4))
    for col in floats:
        parts.append(_shuffle(_to_le(array("d", col)), 8))
    header = _HEADER.pack(_VERSION, kind, flags, n, timestamps[0])
    return header + zlib.compress(b"".join(parts), _ZLIB_LEVEL)


def _decode(blob: bytes, kind: int, columns: int) -> tuple[list[int], list[int] | None, list[array]]:  # type: ignore[type-arg]
    try:
        version, got_kind, flags, n, first = _HEADER.unpack_from(blob)
        if version != _VERSION:
            raise StorageError(f"chunk format version {version} is not supported (expected {_VERSION})",
                               hint="the database was written by a newer watchkeeper; upgrade")
        if got_kind != kind:
            raise StorageError(f"chunk holds kind {got_kind}, expected {kind}")
        body = memoryview(zlib.decompress(blob[_HEADER.size:]))
    except (struct.error, zlib.error) as exc:
        raise StorageError(f"corrupt chunk: {exc}") from None
    wide = flags & _FLAG_WIDE_DELTAS
    if flags & _FLAG_REGULAR:
        deltas, offset = _column(body, 0, 1, _U64 if wide else _U32)
        timestamps = list(range(first, first + n * deltas[0], deltas[0]))
    else:
        deltas, offset = _column(body, 0, n - 1, _U64 if wide else _U32)
        timestamps = list(accumulate(deltas, initial=first))
    counts: list[int] | None = None
    if kind == KIND_AGGREGATE:
        arr, offset = _column(body, offset, n, _U32)
        counts = arr.tolist()
    floats = []
    for _ in range(columns):
        arr, offset = _column(body, offset, n, "d")
        floats.append(arr)
    if offset != len(body):
        raise StorageError(f"corrupt chunk: {len(body) - offset} bytes left over after {n} samples")
    return timestamps, counts, floats


def encode_raw(timestamps: Sequence[int], values: Sequence[float]) -> bytes:
    """Encode raw samples: ``timestamps`` in ms, strictly increasing; one value each.

    Raises ValueError for an empty chunk, unsorted timestamps or mismatched lengths.
    """
    return _encode(KIND_RAW, timestamps, None, [values])


def decode_raw(blob: bytes) -> tuple[list[int], list[float]]:
    """Decode a raw chunk into (timestamps in ms, values). Raises StorageError when corrupt."""
    timestamps, _, floats = _decode(blob, KIND_RAW, 1)
    return timestamps, floats[0].tolist()


def decode_raw_array(blob: bytes) -> tuple[list[int], array]:  # type: ignore[type-arg]
    """Like :func:`decode_raw`, with the values as an ``array('d')`` (cheaper to keep)."""
    timestamps, _, floats = _decode(blob, KIND_RAW, 1)
    return timestamps, floats[0]


_U32_LE = np.dtype("<u4")
_F64_LE = np.dtype("<f8")
_ZERO_DELTA = bytes(4)


def decode_raw_many(blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Decode raw chunks in one pass: (timestamps int64 ms, values float64, sample counts).

    The arrays hold every chunk's samples one chunk after the other, in the
    order given; ``counts[i]`` says how many belong to ``blobs[i]``. Bit-exact
    like :func:`decode_raw`. Raises StorageError when a chunk is corrupt or not
    a raw chunk.
    """
    delta_parts: list[bytes | bytearray] = []
    value_parts: list[bytearray] = []
    firsts: list[int] = []
    counts: list[int] = []
    wide: list[tuple[int, list[int]]] = []  # (position, timestamps) of chunks with 64-bit deltas
    position = 0
    for blob in blobs:
        try:
            version, kind, flags, n, first = _HEADER.unpack_from(blob)
            if version != _VERSION:
                raise StorageError(f"chunk format version {version} is not supported (expected {_VERSION})",
                                   hint="the database was written by a newer watchkeeper; upgrade")
            if kind != KIND_RAW:
                raise StorageError(f"chunk holds kind {kind}, expected {KIND_RAW}")
            body = memoryview(zlib.decompress(memoryview(blob)[_HEADER.size:]))
        except (struct.error, zlib.error) as exc:
            raise StorageError(f"corrupt chunk: {exc}") from None
        width = 8 if flags & _FLAG_WIDE_DELTAS else 4
        stored = (1 if n > 1 else 0) if flags & _FLAG_REGULAR else n - 1
        offset = stored * width
        if n < 1 or len(body) != offset + 8 * n:
            raise StorageError(f"corrupt chunk: {len(body)} bytes do not hold {n} samples")
        if width == 8:  # deltas of 49 days and more: never in the windows the store writes
            wide.append((position, _decode(blob, KIND_RAW, 1)[0]))
            delta_parts.append(bytes(4 * n))
        else:
            deltas = _unshuffle(body, 0, stored, 4)
            if flags & _FLAG_REGULAR and n > 1:
                deltas = deltas * (n - 1)
            delta_parts.append(_ZERO_DELTA)
            delta_parts.append(deltas)
        value_parts.append(_unshuffle(body, offset, n, 8))
        firsts.append(first)
        counts.append(n)
        position += n
    deltas_all = np.frombuffer(b"".join(delta_parts), dtype=_U32_LE).astype(np.int64)
    values = np.frombuffer(b"".join(value_parts), dtype=_F64_LE)
    if values.dtype.byteorder not in ("=", "|"):  # pragma: no cover - big-endian hosts
        values = values.astype(np.float64)
    # One prefix sum over all chunks, then rebase every chunk on its own first timestamp
    # (each chunk's first delta is 0, so cumsum at a chunk start is that chunk's base).
    sums = np.cumsum(deltas_all)
    starts = np.zeros(len(counts), dtype=np.int64)
    if len(counts) > 1:
        np.cumsum(counts[:-1], out=starts[1:])
    timestamps = sums + np.repeat(np.asarray(firsts, dtype=np.int64) - sums[starts], counts)
    for pos, ts in wide:
        timestamps[pos:pos + len(ts)] = ts
    return timestamps, values, counts


def encode_aggregates(agg: Aggregates) -> bytes:
    """Encode per-bucket aggregates (counts must fit in 32 bits)."""
    return _encode(KIND_AGGREGATE, agg.timestamps, agg.count, [agg.sum, agg.min, agg.max, agg.last])


def decode_aggregates(blob: bytes) -> Aggregates:
    """Decode an aggregate chunk. Raises StorageError when corrupt."""
    timestamps, counts, floats = _decode(blob, KIND_AGGREGATE, 4)
    if counts is None:  # pragma: no cover - _decode always reads counts for this kind
        raise StorageError("corrupt chunk: aggregate chunk without counts")
    return Aggregates(timestamps, counts, *(f.tolist() for f in floats))


def chunk_kind(blob: bytes) -> int:
    """KIND_RAW or KIND_AGGREGATE, read from the header."""
    if len(blob) < _HEADER.size:
        raise StorageError(f"corrupt chunk: {len(blob)} bytes is shorter than its header")
    return blob[1]
