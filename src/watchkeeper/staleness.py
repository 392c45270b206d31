"""Prometheus's staleness marker: the NaN that says "this series ended here".

A scrape writes one for every series that was in the previous scrape of the
target but not in this one (and for all of them when the scrape fails); a
rule group writes one for every series a rule produced at its previous
evaluation but not at this one. An instant selector that finds a marker as
the newest sample in its lookback returns nothing for that series, so the
series disappears at once instead of lingering for the 5-minute lookback;
range windows ignore markers. See "Staleness" in Prometheus's querying basics.

The marker is the float64 with bit pattern ``0x7ff0000000000002``: a NaN, so
only the exact bits tell it from an ordinary NaN sample. Copying a float
keeps the bits; arithmetic does not, so never compute with a marker.

No imports beyond the standard library: scrape checks and the CLI use this.
"""

from __future__ import annotations

import struct
from typing import Any

__all__ = ["STALE_NAN", "STALE_NAN_BITS", "is_stale", "stale_mask"]

#: The bit pattern of the marker (Prometheus's ``value.StaleNaN``).
STALE_NAN_BITS = 0x7FF0000000000002
#: The marker as a Python float.
STALE_NAN: float = struct.unpack("<d", struct.pack("<Q", STALE_NAN_BITS))[0]
_STALE_BYTES = struct.pack("<d", STALE_NAN)


def is_stale(value: float) -> bool:
    """True for the staleness marker, False for every other value (ordinary NaNs included)."""
    return value != value and struct.pack("<d", value) == _STALE_BYTES


def stale_mask(values: Any) -> Any:
    """For a NumPy float64 array, a bool array: True where the value is the marker."""
    return values.view("u8") == STALE_NAN_BITS
