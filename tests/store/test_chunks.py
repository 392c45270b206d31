"""Chunk encoding: every float bit pattern and any increasing timestamps round-trip."""

from __future__ import annotations

import math
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.errors import StorageError
from watchkeeper.store.chunks import (
    KIND_AGGREGATE,
    KIND_RAW,
    Aggregates,
    chunk_kind,
    decode_aggregates,
    decode_raw,
    decode_raw_array,
    encode_aggregates,
    encode_raw,
)


def bits(values: list[float]) -> list[bytes]:
    return [struct.pack("<d", v) for v in values]


SPECIAL = [0.0, -0.0, math.inf, -math.inf, math.nan, struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0],
           5e-324, -1.7976931348623157e308, 1.7976931348623157e308, -42.5, 1e300]


@st.composite
def series_data(draw: st.DrawFn) -> tuple[list[int], list[float]]:
    first = draw(st.integers(min_value=-(2**50), max_value=2**50))
    deltas = draw(st.lists(st.one_of(st.integers(1, 30_000), st.integers(1, 2**40)), max_size=300))
    ts = [first]
    for d in deltas:
        ts.append(ts[-1] + d)
    values = draw(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.sampled_from(SPECIAL)),
                           min_size=len(ts), max_size=len(ts)))
    return ts, values


@settings(max_examples=200, deadline=None)
@given(series_data())
def test_raw_round_trip_is_bit_exact(data: tuple[list[int], list[float]]) -> None:
    ts, values = data
    blob = encode_raw(ts, values)
    got_ts, got_values = decode_raw(blob)
    assert got_ts == ts
    assert bits(got_values) == bits(values)
    assert chunk_kind(blob) == KIND_RAW
    arr_ts, arr_values = decode_raw_array(blob)
    assert arr_ts == ts and bits(list(arr_values)) == bits(values)


@pytest.mark.parametrize("ts", [
    [1_700_000_000_000 + i * 15_000 for i in range(240)],           # regular scrapes
    [1_700_000_000_000 + i * 15_000 + (i * 7) % 5 for i in range(240)],  # jitter
    [0, 1, 2**33, 2**33 + 5],                                       # a gap wider than 32 bits
    [-5_000, -1_000, 0, 3],                                         # before the epoch
    [1_700_000_000_123],                                            # a single sample
])
def test_irregular_and_wide_timestamps(ts: list[int]) -> None:
    values = [float(i) * -1.5 for i in range(len(ts))]
    assert decode_raw(encode_raw(ts, values)) == (ts, values)


def test_regular_counter_compresses_well() -> None:
    ts = [1_700_000_000_000 + i * 15_000 for i in range(240)]
    values = [float(i * 1234) for i in range(240)]
    blob = encode_raw(ts, values)
    assert len(blob) / 240 < 2.5  # bytes per sample (8 raw)


def test_aggregates_round_trip() -> None:
    agg = Aggregates(timestamps=[60_000, 120_000, 300_000], count=[4, 1, 2**32 - 1],
                     sum=[10.0, math.nan, -math.inf], min=[1.0, math.nan, -1e308],
                     max=[4.0, math.nan, math.inf], last=[4.0, math.nan, 2.5])
    blob = encode_aggregates(agg)
    assert chunk_kind(blob) == KIND_AGGREGATE
    got = decode_aggregates(blob)
    assert got.timestamps == agg.timestamps and got.count == agg.count
    for col in ("sum", "min", "max", "last"):
        assert bits(getattr(got, col)) == bits(getattr(agg, col))


@pytest.mark.parametrize(("ts", "values", "message"), [
    ([], [], "at least one sample"),
    ([2, 1], [0.0, 0.0], "strictly increasing"),
    ([1, 1], [0.0, 0.0], "strictly increasing"),
    ([1, 2], [0.0], "column of 1 values for 2 timestamps"),
])
def test_encode_rejects_bad_input(ts: list[int], values: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        encode_raw(ts, values)


def test_corrupt_or_mismatched_chunks_raise_storage_error() -> None:
    blob = encode_raw([1, 2, 3], [1.0, 2.0, 3.0])
    with pytest.raises(StorageError, match="corrupt chunk"):
        decode_raw(blob[:-3])
    with pytest.raises(StorageError, match="corrupt chunk"):
        decode_raw(b"\x01")
    with pytest.raises(StorageError, match="kind 0, expected 1"):
        decode_aggregates(blob)
    with pytest.raises(StorageError, match="version 9 is not supported"):
        decode_raw(b"\x09" + blob[1:])
