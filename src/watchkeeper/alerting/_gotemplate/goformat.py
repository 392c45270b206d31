"""Numbers, times and durations printed and parsed as Go's ``fmt``, ``strconv`` and ``time`` do."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from decimal import Decimal

__all__ = [
    "format_g4",
    "go_duration",
    "go_format_float",
    "go_time",
    "parse_go_float",
    "special_float",
]


def special_float(v: float) -> str | None:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return None


def go_format_float(v: float) -> str:
    """``fmt.Sprint(v)`` for a float64: the shortest digits, %e past exponent 6 or below -4."""
    s = special_float(v)
    if s is not None:
        return s
    if v == 0:
        return "-0" if math.copysign(1.0, v) < 0 else "0"
    sign, digits, exp = Decimal(repr(v)).as_tuple()
    ds = "".join(map(str, digits)).rstrip("0") or "0"
    assert isinstance(exp, int)
    # value = 0.ds * 10**dp
    dp = len(digits) + exp
    x = dp - 1
    out = "-" if sign else ""
    if x < -4 or x >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{out}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{out}0.{'0' * -dp}{ds}"
    if dp >= len(ds):
        return out + ds + "0" * (dp - len(ds))
    return f"{out}{ds[:dp]}.{ds[dp:]}"


def format_g4(v: float) -> str:
    """``fmt.Sprintf("%.4g", v)``."""
    s = special_float(v)
    return s if s is not None else f"{v:.4g}"


def parse_go_float(text: str) -> float:
    t = text.strip() if text != text.strip() else text
    low = t.lower().lstrip("+-")
    if low in ("inf", "infinity", "nan"):
        return float(t)
    if not re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?0[xX][0-9a-fA-F]+", t):
        raise ValueError(text)
    if "x" in t.lower():
        return float(int(t, 16))
    return float(t)


def go_time(ms: int) -> str:
    """``fmt.Sprint(time.Time)`` in UTC: ``2015-06-23 13:19:44.128 +0000 UTC``."""
    secs, frac = divmod(ms, 1000)
    dt = datetime.fromtimestamp(secs, UTC)
    text = dt.strftime("%Y-%m-%d %H:%M:%S")
    if frac:
        text += "." + f"{frac:03d}".rstrip("0")
    return text + " +0000 UTC"


def go_duration(seconds: float) -> str:
    """``time.Duration.String()``: ``1h2m3s``, ``1.5s``, ``300ms``, ``0s``."""
    ns = int(round(seconds * 1e9))
    if ns == 0:
        return "0s"
    sign = "-" if ns < 0 else ""
    ns = abs(ns)
    if ns < 1_000_000_000:
        for unit, size in (("ms", 1_000_000), ("µs", 1000), ("ns", 1)):
            if ns >= size:
                return sign + _trim_frac(ns, size) + unit
    h, rest = divmod(ns, 3_600_000_000_000)
    m, rest = divmod(rest, 60_000_000_000)
    out = sign
    if h:
        out += f"{h}h"
    if h or m:
        out += f"{m}m"
    return out + _trim_frac(rest, 1_000_000_000) + "s"


def _trim_frac(n: int, size: int) -> str:
    whole, frac = divmod(n, size)
    if not frac:
        return str(whole)
    width = len(str(size)) - 1
    return f"{whole}." + f"{frac:0{width}d}".rstrip("0")
