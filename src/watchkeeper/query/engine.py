"""Evaluate queries over the store and shape the answers as Prometheus's HTTP API does.

For now an expression is a series selector; PromQL grows on top of this.
An instant query at ``t`` takes, per series, the newest sample in
``(t - lookback, t]`` (Prometheus's 5-minute lookback).
"""

from __future__ import annotations

import math
from bisect import bisect_right
from dataclasses import dataclass
from typing import Any

from watchkeeper.errors import QueryError
from watchkeeper.query.selector import parse_selector

__all__ = ["QueryEngine", "format_value", "LOOKBACK", "MAX_POINTS"]

LOOKBACK = 300.0
MAX_POINTS = 11000  # as Prometheus: more points per series than this is refused


def format_value(value: float) -> str:
    """A sample value as Prometheus renders it in JSON (``"NaN"``, ``"+Inf"``, shortest repr)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _ts(t: float) -> float | int:
    r = round(t, 3)
    return int(r) if r == int(r) else r


@dataclass
class QueryEngine:
    tsdb: Any
    lookback: float = LOOKBACK

    def instant(self, expr: str, t: float) -> dict[str, Any]:
        """The ``data`` object of ``/api/v1/query``."""
        matchers = parse_selector(expr)
        result = []
        for s in self.tsdb.select(matchers, t - self.lookback, t):
            i = bisect_right(s.timestamps, t) - 1
            if i < 0 or s.timestamps[i] <= t - self.lookback:
                continue
            result.append({"metric": dict(s.labels), "value": [_ts(t), format_value(s.values[i])]})
        result.sort(key=lambda r: sorted(r["metric"].items()))
        return {"resultType": "vector", "result": result}

    def range(self, expr: str, start: float, end: float, step: float) -> dict[str, Any]:
        """The ``data`` object of ``/api/v1/query_range``."""
        if step <= 0:
            raise QueryError("zero or negative query resolution step widths are not accepted. "
                             "Try a positive integer")
        if end < start:
            raise QueryError("end timestamp must not be before start time")
        if (end - start) / step > MAX_POINTS:
            raise QueryError("exceeded maximum resolution of 11,000 points per timeseries. "
                             "Try decreasing the query resolution (?step=XX)")
        matchers = parse_selector(expr)
        result = []
        for s in self.tsdb.select(matchers, start - self.lookback, end):
            times, values = s.at_steps(start, end, step, self.lookback)
            if times:
                result.append({"metric": dict(s.labels),
                               "values": [[_ts(t), format_value(v)] for t, v in zip(times, values, strict=True)]})
        result.sort(key=lambda r: sorted(r["metric"].items()))
        return {"resultType": "matrix", "result": result}

    def series(self, selectors: list[str], start: float, end: float) -> list[dict[str, str]]:
        if not selectors:
            raise QueryError("no match[] parameter provided")
        return list(self.tsdb.series([parse_selector(s) for s in selectors], start, end))
