"""The encoding of chunk blobs: columns of timestamps, counts and float64 values.

A chunk holds the samples of one series over one time window, stored column by
column. Every column is fixed width and *byte-shuffled* (all first bytes, then
all second bytes, ...) before the whole body goes through zlib: the high bytes
repeat, so shuffled they form long runs that zlib squeezes to almost nothing.

Two formats exist; readers decode both, writers write raw chunks as format 2
and aggregate chunks as format 1.

Format 2, raw samples (little endian)::

    header  "<BBBBBbBxIqqqq"  version 2, kind 0, tw, vmode, vw, k, flags, pad, n,
                              first timestamp (ms), dmin, m0, vmin
    body    zlib(  n-1 timestamp offsets   (tw bytes each; delta = dmin + offset)
                 [ n float64 values                              vmode 0 ]
                 [ n-1 value offsets       (vw bytes each)       vmode 1 ] )
            (flag 1: the same bytes without zlib)

Timestamps are stored as their deltas minus the smallest delta, in the
narrowest width that holds them (0, 1, 2, 4 or 8 bytes; 0 means every delta
is ``dmin``): scrape jitter of a few ms needs one byte a sample. Values are
stored as float64 bits (vmode 0) unless every one is a decimal with at most
nine fraction digits, ``v == m / 10**k`` exactly for integers ``|m| < 2**52``
(counters, byte counts, gauges like ``523.47``; vmode 1): then the integers
``m`` are stored as offsets of their deltas, ``m[0] = m0``, ``m[i] - m[i-1] =
vmin + offset``, ``vw`` bytes each. The encoder checks the round trip bit for
bit before choosing vmode 1, so decoding ``m / 10**k`` gives back exactly the
floats written. Both codings leave zlib far fewer bytes to inflate, which is
what decoding costs; a body zlib would shrink by less than a fifth (offsets of
noisy values) is stored as it is (flag 1), and reading it costs no inflate.

Format 1 (raw chunks written before format 2, and aggregate chunks)::

    header  "<BBBxIq"  format version, kind, flags, pad, sample count n, first timestamp (ms)
    body    zlib(  n-1 timestamp deltas  (uint32, or uint64 when flag 1 is set; only the
                                          first one when flag 2 says they are all equal)
                 [ n counts              (uint32)                  aggregate kind only ]
                   k float64 columns     (raw: value; aggregate: sum, min, max, last) )

Floats are stored bit for bit (or, in vmode 1, verified to decode to the same
bits), so NaN (with its payload), ±Inf, -0.0 and subnormals round-trip
exactly. Timestamps are integer milliseconds, sorted ascending and unique.

Reads decode many chunks at once with :func:`decode_raw_chunks`: the per-chunk
work is one header unpack and one ``zlib.decompress``; chunks of the same shape
(sample count and widths: hourly chunks of one scrape interval mostly share
one) are then unshuffled, prefix-summed and scaled together by NumPy.
"""

from __future__ import annotations

import struct
import sys
import zlib
from array import array
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate, pairwise
from typing import Any

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
    "decode_raw_chunks",
    "decode_raw_many",
    "encode_aggregates",
    "encode_raw",
]

KIND_RAW = 0
KIND_AGGREGATE = 1

_VERSION = 1  # aggregate chunks, and raw chunks of older releases
_VERSION_RAW = 2  # raw chunks
_FLAG_WIDE_DELTAS = 1
_FLAG_REGULAR = 2
_HEADER = struct.Struct("<BBBxIq")
# version, kind, tw, vmode, vw, k, flags, (pad), n, first, dmin, m0, vmin
_HEADER_RAW = struct.Struct("<BBBBBbBxIqqqq")
_FLAG_STORED = 1  # format 2: the body is not compressed (zlib would save little)
_STORE_RATIO = 0.8  # compress a body only when zlib makes it smaller than this share
_BIG_ENDIAN = sys.byteorder == "big"
_ZLIB_LEVEL = 6
_VMODE_FLOAT = 0
_VMODE_DECIMAL = 1
_WIDTHS = (0, 1, 2, 4, 8)
_UINT: dict[int, np.dtype[Any]] = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}
# Offsets as read back: 8-byte ones as signed (they stay below 2**62), so that adding
# an int64 keeps integer arithmetic (uint64 + int64 would go through float64).
_OFFSET: dict[int, np.dtype[Any]] = {1: np.dtype("<u1"), 2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<i8")}
# Powers of ten as literals (exact doubles), not computed: the encoder's check and
# the decoder must divide by the very same numbers.
_POW10 = np.array([1.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9])
_SCALE_MAX = len(_POW10) - 1
_DECIMAL_LIMIT = float(2**52)  # |m| below this: exact as a double, and rint(v * 10**k) is exact
_PROBE = 16  # values tried for every scale at once before a scale is checked on all


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


# -- format 1 -------------------------------------------------------------------------------
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


def _check_timestamps(timestamps: Sequence[int], floats: Sequence[Sequence[float]]) -> list[int]:
    n = len(timestamps)
    if n == 0:
        raise ValueError("a chunk needs at least one sample")
    for col in floats:
        if len(col) != n:
            raise ValueError(f"column of {len(col)} values for {n} timestamps")
    deltas = [b - a for a, b in pairwise(timestamps)]
    if deltas and min(deltas) <= 0:
        raise ValueError("chunk timestamps must be strictly increasing")
    return deltas


def _encode(kind: int, timestamps: Sequence[int], counts: Sequence[int] | None,
            floats: Sequence[Sequence[float]]) -> bytes:
    """A format 1 chunk (aggregates; raw chunks were written so before format 2)."""
    n = len(timestamps)
    deltas = _check_timestamps(timestamps, floats)
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
    """Decode a format 1 chunk of ``kind``."""
    try:
        version, got_kind, flags, n, first = _HEADER.unpack_from(blob)
        if got_kind != kind:
            raise StorageError(f"chunk holds kind {got_kind}, expected {kind}")
        if version != _VERSION:
            raise StorageError(f"chunk format version {version} is not supported (expected {_VERSION})",
                               hint="the database was written by a newer watchkeeper; upgrade")
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


# -- format 2 (raw) ---------------------------------------------------------------------------
def _width(top: int) -> int:
    """Bytes needed for unsigned offsets up to ``top``: 0, 1, 2, 4 or 8."""
    if top == 0:
        return 0
    for width in (1, 2, 4):
        if top < 1 << (8 * width):
            return width
    return 8


def _offsets(deltas: np.ndarray) -> tuple[int, int, bytes]:
    """(smallest delta, width, shuffled offsets) of int64 ``deltas``, stored as their
    distance from the smallest in the narrowest unsigned width."""
    if not len(deltas):
        return 0, 0, b""
    low = int(deltas.min())
    offsets = deltas - low
    width = _width(int(offsets.max()))
    if width == 0:
        return low, 0, b""
    raw = offsets.astype(_UINT[width]).view(np.uint8).reshape(-1, width)
    return low, width, raw.T.tobytes()


def _decimal_scale(values: np.ndarray) -> tuple[int, np.ndarray] | None:
    """(k, m) with ``m / 10**k`` equal bit for bit to ``values`` (smallest such k <= 9,
    integers ``|m| < 2**52``), or None when the values are not such decimals."""
    with np.errstate(all="ignore"):
        if not np.isfinite(values).all():
            return None
        bits = values.view(np.uint64)
        probe = values[:_PROBE, None]
        # + 0.0 makes -0.0 the +0.0 an integer decodes to, so that -0.0 fails the check
        m = np.rint(probe * _POW10) + 0.0
        ok = ((m / _POW10).view(np.uint64) == bits[:_PROBE, None]).all(axis=0)
        ok &= (np.abs(m) < _DECIMAL_LIMIT).all(axis=0)
        for k in np.flatnonzero(ok).tolist():
            scale = _POW10[k]
            m = np.rint(values * scale) + 0.0
            if (np.abs(m) < _DECIMAL_LIMIT).all() and np.array_equal((m / scale).view(np.uint64), bits):
                return k, m.astype(np.int64)
    return None


def encode_raw(timestamps: Sequence[int], values: Sequence[float]) -> bytes:
    """Encode raw samples: ``timestamps`` in ms, strictly increasing; one value each.

    Raises ValueError for an empty chunk, unsorted timestamps, mismatched
    lengths, or timestamps spanning more than 2**62 ms.
    """
    n = len(timestamps)
    if n == 0:
        raise ValueError("a chunk needs at least one sample")
    if len(values) != n:
        raise ValueError(f"column of {len(values)} values for {n} timestamps")
    if timestamps[-1] - timestamps[0] >= 1 << 62:
        raise ValueError("chunk timestamps span more than 2**62 ms")
    ts = np.asarray(timestamps, dtype=np.int64)
    deltas = np.diff(ts)
    if len(deltas) and int(deltas.min()) <= 0:
        raise ValueError("chunk timestamps must be strictly increasing")
    dmin, tw, ts_part = _offsets(deltas)
    vals = np.asarray(values, dtype=np.float64)
    decimal = _decimal_scale(vals)
    if decimal is None:
        vmode, vw, k, m0, vmin = _VMODE_FLOAT, 8, 0, 0, 0
        value_part = vals.astype("<f8").view(np.uint8).reshape(-1, 8).T.tobytes()
    else:
        vmode, (k, m) = _VMODE_DECIMAL, decimal
        m0 = int(m[0])
        vmin, vw, value_part = _offsets(np.diff(m))
    body = ts_part + value_part
    packed = zlib.compress(body, _ZLIB_LEVEL)
    flags = 0
    if len(packed) >= len(body) * _STORE_RATIO:
        # Offsets of noisy values hardly compress: storing them as they are costs a few
        # bytes and saves reads a zlib call.
        flags, packed = _FLAG_STORED, body
    header = _HEADER_RAW.pack(_VERSION_RAW, KIND_RAW, tw, vmode, vw, k, flags, n, int(ts[0]), dmin, m0, vmin)
    return header + packed


def _unshuffled(section: np.ndarray, count: int, width: int, dtype: np.dtype[Any]) -> np.ndarray:
    """Rows of ``count`` byte-shuffled items of ``width`` bytes (a (g, count * width)
    uint8 array) as a (g, count) array of ``dtype``."""
    g = section.shape[0]
    if width == 1:
        return section.astype(dtype)
    items = np.ascontiguousarray(section.reshape(g, width, count).transpose(0, 2, 1))
    out = items.view(dtype).reshape(g, count)
    if out.dtype.byteorder not in ("=", "|"):  # pragma: no cover - big-endian hosts
        out = out.astype(out.dtype.newbyteorder("="))
    return out


_F64_LE = np.dtype("<f8")


_VALID_RAW = {(tw, _VMODE_DECIMAL, vw) for tw in _WIDTHS for vw in _WIDTHS} | {
    (tw, _VMODE_FLOAT, 8) for tw in _WIDTHS}


def _corrupt(exc: Exception) -> StorageError:
    return StorageError(f"corrupt chunk: {exc}")


def _read_raw(blob: bytes) -> tuple[tuple[int, int, int, int], bytes, int, int, int, int, int]:
    """Header and body of a raw chunk of either format: ((n, tw, vmode, vw), body, first,
    dmin, m0, vmin, k), a format 1 chunk expressed in format 2 terms."""
    try:
        version = blob[0]
        if version == _VERSION_RAW:
            _, kind, tw, vmode, vw, k, flags, n, first, dmin, m0, vmin = _HEADER_RAW.unpack_from(blob)
            if kind != KIND_RAW:
                raise StorageError(f"chunk holds kind {kind}, expected {KIND_RAW}")
            if (tw, vmode, vw) not in _VALID_RAW or not 0 <= k <= _SCALE_MAX or n < 1:
                raise StorageError(f"corrupt chunk: bad header {(tw, vmode, vw, k, n)}")
            size = (n - 1) * (tw + vw) + (8 if vmode == _VMODE_FLOAT else 0)
            if flags & _FLAG_STORED:
                body: bytes = blob[_HEADER_RAW.size:]
            else:
                body = zlib.decompress(memoryview(blob)[_HEADER_RAW.size:], 15, max(size, 1))
        elif version == _VERSION:
            _, kind, flags, n, first = _HEADER.unpack_from(blob)
            if kind != KIND_RAW:
                raise StorageError(f"chunk holds kind {kind}, expected {KIND_RAW}")
            body = zlib.decompress(memoryview(blob)[_HEADER.size:])
            width = 8 if flags & _FLAG_WIDE_DELTAS else 4
            vmode, vw, k, m0, vmin = _VMODE_FLOAT, 8, 0, 0, 0
            if flags & _FLAG_REGULAR and n > 1:  # one delta for all: read it, keep the values
                tw, dmin = 0, int.from_bytes(body[:width], "little")
                body = body[width:]
            else:
                tw, dmin = width, 0
            size = (n - 1) * tw + 8 * n
        else:
            raise StorageError(
                f"chunk format version {version} is not supported (expected {_VERSION} or {_VERSION_RAW})",
                hint="the database was written by a newer watchkeeper; upgrade")
    except (IndexError, struct.error, zlib.error) as exc:
        raise _corrupt(exc) from None
    if n < 1 or len(body) != size:
        raise StorageError(f"corrupt chunk: {len(body)} bytes do not hold {n} samples")
    return (n, tw, vmode, vw), body, first, dmin, m0, vmin, k


def decode_raw_chunks(blobs: Sequence[bytes]) -> list[tuple[np.ndarray, np.ndarray]]:
    """Decode raw chunks (either format) in one pass: per chunk, in the order given,
    (timestamps int64 ms, values float64).

    Chunks of one shape share one buffer (the arrays are views into it). Raises
    StorageError when a chunk is corrupt, not a raw chunk, or of an unknown
    format version.
    """
    shapes: dict[tuple[int, int, int, int], list[tuple[int, bytes, int, int, int, int, int]]] = {}
    for i, blob in enumerate(blobs):
        shape, body, first, dmin, m0, vmin, k = _read_raw(blob)
        got = shapes.get(shape)
        if got is None:
            got = shapes[shape] = []
        got.append((i, body, first, dmin, m0, vmin, k))
    out: list[tuple[np.ndarray, np.ndarray]] = [(np.empty(0, np.int64), np.empty(0))] * len(blobs)
    for (n, tw, vmode, vw), members in shapes.items():
        index, bodies, firsts, dmins, m0s, vmins, scale = zip(*members, strict=True)
        g = len(index)
        buf = np.frombuffer(b"".join(bodies), dtype=np.uint8).reshape(g, len(bodies[0]))
        ts = np.empty((g, n), dtype=np.int64)
        ts[:, 0] = firsts
        pos = (n - 1) * tw
        if n > 1:
            step = np.asarray(dmins, dtype=np.int64)[:, None]
            if tw:
                np.add(_unshuffled(buf[:, :pos], n - 1, tw, _OFFSET[tw]), step, out=ts[:, 1:])
            else:
                ts[:, 1:] = step
            np.cumsum(ts, axis=1, out=ts)
        if vmode == _VMODE_FLOAT:
            values = _unshuffled(buf[:, pos:], n, 8, _F64_LE)
        else:
            m = np.empty((g, n), dtype=np.int64)
            m[:, 0] = m0s
            if n > 1:
                step = np.asarray(vmins, dtype=np.int64)[:, None]
                if vw:
                    np.add(_unshuffled(buf[:, pos:], n - 1, vw, _OFFSET[vw]), step, out=m[:, 1:])
                else:
                    m[:, 1:] = step
                np.cumsum(m, axis=1, out=m)
            values = m.astype(np.float64)
            if any(scale):
                values /= _POW10[list(scale)][:, None]
        for i, t, v in zip(index, ts, values, strict=True):  # iterating yields row views, in C
            out[i] = (t, v)
    return out


def decode_raw_many(blobs: Sequence[bytes]) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """Like :func:`decode_raw_chunks`, as (timestamps, values, sample counts): the arrays
    hold every chunk's samples one chunk after the other; ``counts[i]`` says how many
    belong to ``blobs[i]``."""
    decoded = decode_raw_chunks(blobs)
    if not decoded:
        return np.empty(0, np.int64), np.empty(0), []
    return (np.concatenate([d[0] for d in decoded]), np.concatenate([d[1] for d in decoded]),
            [len(d[0]) for d in decoded])


def decode_raw(blob: bytes) -> tuple[list[int], list[float]]:
    """Decode a raw chunk into (timestamps in ms, values). Raises StorageError when corrupt."""
    ts, values = decode_raw_chunks([blob])[0]
    return ts.tolist(), values.tolist()


def decode_raw_array(blob: bytes) -> tuple[list[int], array]:  # type: ignore[type-arg]
    """Like :func:`decode_raw`, with the values as an ``array('d')`` (cheaper to keep)."""
    ts, values = decode_raw_chunks([blob])[0]
    return ts.tolist(), array("d", values.tobytes())


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
