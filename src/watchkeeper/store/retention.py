"""Retention and downsampling: how long each tier lives and how buckets are computed.

Three tiers hold a series' history: raw samples (tier 0), one-minute
aggregates (tier 1) and one-hour aggregates (tier 2). A bucket of width ``w``
ending at ``e`` covers ``(e - w, e]`` and is stamped with ``e``, so the value a
bucket reports (its last sample) is never newer than its timestamp and
counters keep working for ``rate()``. Chunk windows use the same convention
and nest: minutes inside the hourly raw chunks, hours inside the daily minute
chunks, so downsampling one chunk window never splits a bucket.

This module holds the policy and the pure arithmetic; ``store/tsdb.py`` moves
the chunks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby, pairwise
from typing import TypeVar

from watchkeeper.errors import InputError
from watchkeeper.staleness import is_stale
from watchkeeper.store.chunks import Aggregates

__all__ = [
    "BUCKET_MS",
    "TIER_HOUR",
    "TIER_MINUTE",
    "TIER_NAMES",
    "TIER_RAW",
    "WINDOW_MS",
    "RetentionPolicy",
    "downsample_aggregates",
    "downsample_raw",
    "merge_last_wins",
    "window_end",
]

TIER_RAW = 0
TIER_MINUTE = 1
TIER_HOUR = 2
TIER_NAMES = {TIER_RAW: "raw", TIER_MINUTE: "minute", TIER_HOUR: "hour"}

T = TypeVar("T")

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000

#: Width of one bucket in each tier (raw samples have none).
BUCKET_MS = {TIER_MINUTE: MINUTE_MS, TIER_HOUR: HOUR_MS}
#: Time window one chunk of each tier covers: an hour of raw samples, a day of
#: minutes, a week of hours (weeks counted from the epoch, so they nest days).
WINDOW_MS = {TIER_RAW: HOUR_MS, TIER_MINUTE: DAY_MS, TIER_HOUR: 7 * DAY_MS}


@dataclass(frozen=True)
class RetentionPolicy:
    """Seconds each tier is kept; 0 keeps that tier forever.

    Raw samples older than ``raw`` become one-minute aggregates, those older
    than ``minute`` one-hour aggregates, and those older than ``hour`` are
    deleted. Work happens per chunk window, so a tier keeps data for at least
    its retention and at most its retention plus one window (raw: 1 day,
    minute: 7 days, hour: 7 days) — retention never drops data early.
    """

    raw: float = 7 * 86400.0
    minute: float = 90 * 86400.0
    hour: float = 2 * 365 * 86400.0

    def __post_init__(self) -> None:
        for name in ("raw", "minute", "hour"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value) or value < 0:
                raise InputError(f"retention {name}={value!r} is invalid: use seconds >= 0 (0 keeps forever)")


def window_end(ts: int, width: int) -> int:
    """End of the window ``(end - width, end]`` holding ``ts`` (all in ms)."""
    return -(-ts // width) * width


def _min_max(values: list[float]) -> tuple[float, float]:
    clean = [v for v in values if not math.isnan(v)]
    if not clean:
        return math.nan, math.nan
    return min(clean), max(clean)


def downsample_raw(timestamps: Sequence[int], values: Sequence[float], width: int) -> Aggregates:
    """Aggregate raw samples (sorted, unique ms timestamps) into buckets of ``width`` ms.

    Staleness markers are not values: they count in no aggregate and are never a
    bucket's ``last``; a bucket holding nothing else is left out.
    """
    out = Aggregates([], [], [], [], [], [])
    pairs = [(t, v) for t, v in zip(timestamps, values, strict=True) if not is_stale(v)]
    for end, group in groupby(pairs, key=lambda p: -(-p[0] // width) * width):
        vals = [v for _, v in group]
        lo, hi = _min_max(vals)
        out.timestamps.append(end)
        out.count.append(len(vals))
        out.sum.append(math.nan if any(map(math.isnan, vals)) else math.fsum(vals))
        out.min.append(lo)
        out.max.append(hi)
        out.last.append(vals[-1])
    return out


def downsample_aggregates(agg: Aggregates, width: int) -> Aggregates:
    """Combine finer buckets (sorted, unique) into buckets of ``width`` ms."""
    out = Aggregates([], [], [], [], [], [])
    rows = zip(agg.timestamps, agg.count, agg.sum, agg.min, agg.max, agg.last)
    for end, group in groupby(rows, key=lambda r: -(-r[0] // width) * width):
        items = list(group)
        mins = [r[3] for r in items if not math.isnan(r[3])]
        maxs = [r[4] for r in items if not math.isnan(r[4])]
        sums = [r[2] for r in items]
        out.timestamps.append(end)
        out.count.append(sum(r[1] for r in items))
        out.sum.append(math.nan if any(map(math.isnan, sums)) else math.fsum(sums))
        out.min.append(min(mins) if mins else math.nan)
        out.max.append(max(maxs) if maxs else math.nan)
        out.last.append(items[-1][5])
    return out


def merge_last_wins(pieces: Sequence[tuple[list[int], list[T]]]) -> tuple[list[int], list[T]]:
    """Merge sorted (timestamps, rows) pieces given oldest write first; a later piece wins a tie.

    Pieces that do not overlap are concatenated without touching each element.
    """
    pieces = [p for p in pieces if p[0]]
    if not pieces:
        return [], []
    if len(pieces) == 1:
        return pieces[0]
    ordered = sorted(pieces, key=lambda p: p[0][0])
    if all(a[0][-1] < b[0][0] for a, b in pairwise(ordered)):
        ts: list[int] = []
        rows: list[T] = []
        for p_ts, p_rows in ordered:
            ts += p_ts
            rows += p_rows
        return ts, rows
    merged: dict[int, T] = {}
    for p_ts, p_rows in pieces:
        merged.update(zip(p_ts, p_rows))
    keys = sorted(merged)
    return keys, [merged[k] for k in keys]
