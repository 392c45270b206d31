"""PromQL range functions: hand-computed cases, a per-window reference port of
Prometheus's loops (randomized, bit for bit where Prometheus's order matters),
and the real Prometheus 2.42 as oracle on the same data."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest

from tests.e2e_helpers import prometheus_from_openmetrics
from watchkeeper.query.promql.functions_range import RANGE_FUNCTIONS, RangeSeries, window_bounds

NAMES = sorted(RANGE_FUNCTIONS)
# Prometheus 2.42 has every function here but mad_over_time (3.x).
ORACLE_NAMES = [n for n in NAMES if n != "mad_over_time"]


def _series(ts: list[int], vs: list[float], steps: list[int], range_ms: int,
            offset_ms: int = 0) -> RangeSeries:
    return RangeSeries.build({"s": "x"}, np.array(ts, dtype=np.int64), np.array(vs, dtype=np.float64),
                             np.array(steps, dtype=np.int64), range_ms, offset_ms)


def _run(name: str, rs: RangeSeries, arg: float | None = None) -> list[float | None]:
    args = () if arg is None else (np.full(len(rs.steps_ms), arg),)
    values, present = RANGE_FUNCTIONS[name](rs, args)
    assert values.shape == present.shape == rs.steps_ms.shape
    return [float(v) if p else None for v, p in zip(values, present)]


def _one(name: str, ts: list[int], vs: list[float], t: int, range_ms: int,
         arg: float | None = None) -> float | None:
    return _run(name, _series(ts, vs, [t], range_ms), arg)[0]


# --- a reference port: Prometheus 3's functions, one window at a time ------------------


def _kinc(inc: float, s: float, c: float) -> tuple[float, float]:
    t = s + inc
    if math.isinf(t):
        return t, 0.0
    if abs(s) >= abs(inc):
        return t, c + ((s - t) + inc)
    return t, c + ((inc - t) + s)


def _fdiv(a: float, b: float) -> float:
    return float(np.float64(a) / np.float64(b))


def _ref_rate(ts: list[int], vs: list[float], t: int, range_ms: int, counter: bool,
              is_rate: bool, v242: bool = False) -> float | None:
    if len(vs) < 2:
        return None
    result = vs[-1] - vs[0]
    if counter:
        for i in range(1, len(vs)):
            if vs[i] < vs[i - 1]:
                result += vs[i - 1]
    to_start = (ts[0] - (t - range_ms)) / 1000
    to_end = (t - ts[-1]) / 1000
    sampled = (ts[-1] - ts[0]) / 1000
    avg = sampled / (len(vs) - 1)
    threshold = avg * 1.1
    if v242:  # 2.42 clamps at the zero point before comparing with the threshold
        if counter and result > 0 and vs[0] >= 0:
            to_start = min(to_start, sampled * (vs[0] / result))
        ext = sampled + (to_start if to_start < threshold else avg / 2)
        ext += to_end if to_end < threshold else avg / 2
        out = result * (ext / sampled)
        return out / (range_ms / 1000) if is_rate else out
    if to_start >= threshold:
        to_start = avg / 2
    if counter and result > 0 and vs[0] >= 0:
        to_zero = sampled * (vs[0] / result)
        if to_zero < to_start:
            to_start = to_zero
    if to_end >= threshold:
        to_end = avg / 2
    factor = (sampled + to_start + to_end) / sampled
    if is_rate:
        factor /= range_ms / 1000
    return result * factor


def _ref_regression(ts: list[int], vs: list[float], icpt: int) -> tuple[float, float]:
    n = sx = cx = sy = cy = sxy = cxy = sx2 = cx2 = 0.0
    const = True
    for i, (t, y) in enumerate(zip(ts, vs)):
        if i > 0 and y != vs[0]:
            const = False
        n += 1
        x = (t - icpt) / 1e3
        sx, cx = _kinc(x, sx, cx)
        sy, cy = _kinc(y, sy, cy)
        sxy, cxy = _kinc(x * y, sxy, cxy)
        sx2, cx2 = _kinc(x * x, sx2, cx2)
    if const:
        return (math.nan, math.nan) if math.isinf(vs[0]) else (0.0, vs[0])
    sx, sy, sxy, sx2 = sx + cx, sy + cy, sxy + cxy, sx2 + cx2
    slope = _fdiv(sxy - sx * sy / n, sx2 - sx * sx / n)
    return slope, sy / n - slope * sx / n


def _ref_variance(vs: list[float]) -> float:
    count = mean = cm = aux = ca = 0.0
    for y in vs:
        count += 1
        delta = y - (mean + cm)
        mean, cm = _kinc(delta / count, mean, cm)
        aux, ca = _kinc(delta * (y - (mean + cm)), aux, ca)
    return (aux + ca) / count


def _ref_quantile(q: float, vs: list[float]) -> float:
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    ordered = [v for v in vs if math.isnan(v)] + sorted(v for v in vs if not math.isnan(v))
    n = len(ordered)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return ordered[lower] * (1 - weight) + ordered[upper] * weight


def _ref_sum(vs: list[float]) -> float:
    s = c = 0.0
    for v in vs:
        s, c = _kinc(v, s, c)
    return s if math.isinf(s) else s + c


def _ref_avg(vs: list[float]) -> float:
    total, count, mean, c, incremental = vs[0], 1.0, 0.0, 0.0, False
    for i, v in enumerate(vs[1:]):
        count = float(i + 2)
        if not incremental:
            new, new_c = _kinc(v, total, c)
            if not math.isinf(new):
                total, c = new, new_c
                continue
            incremental = True
            mean = total / (count - 1)
            c /= count - 1
        q = (count - 1) / count
        mean, c = _kinc(v / count, q * mean, q * c)
    return mean + c if incremental else total / count + c / count


def _ref_extreme(vs: list[float], lower: bool) -> float:
    best = vs[0]
    for v in vs:
        if (v < best if lower else v > best) or math.isnan(best):
            best = v
    return best


def _ref(name: str, ts: list[int], vs: list[float], t: int, range_ms: int, arg: float,
         offset_ms: int = 0) -> float | None:
    """Prometheus 3.x's result for one window (``ts``/``vs`` are its samples)."""
    if name in ("rate", "increase", "delta"):
        return _ref_rate(ts, vs, t, range_ms, name != "delta", name == "rate")
    if not vs:
        return None
    if name in ("irate", "idelta"):
        if len(vs) < 2:
            return None
        last, prev = vs[-1], vs[-2]
        if name == "idelta":
            return last - prev
        return (last if last < prev else last - prev) / ((ts[-1] - ts[-2]) / 1000)
    if name == "deriv":
        return _ref_regression(ts, vs, ts[0])[0] if len(vs) >= 2 else None
    if name == "predict_linear":
        if len(vs) < 2:
            return None
        slope, intercept = _ref_regression(ts, vs, t + offset_ms)
        return slope * arg + intercept
    pairs = list(zip(vs, vs[1:]))
    simple: dict[str, Any] = {
        "changes": lambda: float(sum(1 for a, b in pairs if b != a and not (math.isnan(a) and math.isnan(b)))),
        "resets": lambda: float(sum(1 for a, b in pairs if b < a)),
        "count_over_time": lambda: float(len(vs)),
        "last_over_time": lambda: vs[-1],
        "present_over_time": lambda: 1.0,
        "absent_over_time": lambda: 1.0,
        "sum_over_time": lambda: _ref_sum(vs),
        "avg_over_time": lambda: _ref_avg(vs),
        "min_over_time": lambda: _ref_extreme(vs, True),
        "max_over_time": lambda: _ref_extreme(vs, False),
        "stdvar_over_time": lambda: _ref_variance(vs),
        "stddev_over_time": lambda: float(np.sqrt(_ref_variance(vs))),
        "quantile_over_time": lambda: _ref_quantile(arg, vs),
        "mad_over_time": lambda: _ref_quantile(0.5, [abs(v - _ref_quantile(0.5, vs)) for v in vs]),
    }
    return float(simple[name]())


def _close(a: float | None, b: float | None, rel: float) -> bool:
    if a is None or b is None:
        return a is b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    return abs(a - b) <= rel * max(abs(a), abs(b))


# --- hand-computed cases -----------------------------------------------------------------


def test_windows_are_open_on_the_left() -> None:
    ms = np.array([0, 10_000, 20_000, 30_000], dtype=np.int64)
    lo, hi = window_bounds(ms, np.array([30_000, 29_999, 40_000]), 20_000)
    # (10s, 30s] holds 20s and 30s; (9.999s, 29.999s] holds 10s and 20s; (20s, 40s] holds 30s.
    assert lo.tolist() == [2, 1, 3]
    assert hi.tolist() == [4, 3, 4]


def test_rate_extrapolates_to_the_window_edges() -> None:
    # Samples 10 s apart, window (0, 60]: 5 s to the start and 5 s to the end are
    # under 1.1 intervals, so the 40 s of samples extrapolate to the whole 50 s... 60 s.
    ts = [5_000, 15_000, 25_000, 35_000, 45_000, 55_000]
    vs = [100.0, 110.0, 120.0, 130.0, 140.0, 150.0]
    assert _one("increase", ts, vs, 60_000, 60_000) == pytest.approx(50.0 * 60 / 50)
    assert _one("rate", ts, vs, 60_000, 60_000) == pytest.approx(1.0)
    assert _one("delta", ts, vs, 60_000, 60_000) == pytest.approx(60.0)


def test_rate_extrapolates_half_an_interval_where_the_series_starts() -> None:
    # The series starts 30 s into the window (3 intervals > 1.1): extrapolate by
    # half an interval (5 s) at the start only; 5 s at the end is under 1.1 intervals.
    ts = [30_000, 40_000, 50_000]
    vs = [100.0, 110.0, 120.0]
    assert _one("delta", ts, vs, 55_000, 60_000) == pytest.approx(20.0 * (20 + 5 + 5) / 20)


def test_counter_is_not_extrapolated_below_zero() -> None:
    # 1 -> 21 over 20 s in (0.5 s, 30.5 s]: extrapolating 9.5 s back would go below 0; the zero point is
    # 1 s before the first sample (3.x: the threshold first, then the zero clamp).
    ts = [10_000, 20_000, 30_000]
    vs = [1.0, 11.0, 21.0]
    assert _one("increase", ts, vs, 30_500, 30_000) == pytest.approx(20.0 * (20 + 1 + 0.5) / 20)
    assert _one("delta", ts, vs, 30_500, 30_000) == pytest.approx(20.0 * (20 + 9.5 + 0.5) / 20)


def test_zero_clamp_follows_the_threshold_as_in_prometheus_3() -> None:
    # The window starts 40 s before the first sample (>= 1.1 intervals: half an
    # interval, 5 s); the zero point is 8 s back. 3.x takes min(5, 8) = 5 s;
    # 2.42 took the zero point first (8 s < 40 s) and then kept it (8 s < 11 s).
    ts = [40_000, 50_000, 60_000]
    vs = [8.0, 18.0, 28.0]
    assert _one("increase", ts, vs, 60_500, 60_000) == pytest.approx(20.0 * (20 + 5 + 0.5) / 20)
    assert _ref_rate(ts, vs, 60_500, 60_000, True, False, v242=True) == pytest.approx(20.0 * (20 + 8 + 0.5) / 20)


def test_counter_resets_are_corrected() -> None:
    ts = [0, 10_000, 20_000, 30_000, 40_000]
    vs = [10.0, 20.0, 5.0, 15.0, 3.0]  # resets after 20 and after 15
    # raw delta 3 - 10 = -7, plus 20 and 15 = 28, over 40 s; window (−5, 45]: edges 5 s each.
    assert _one("increase", ts, vs, 45_000, 50_000) == pytest.approx(28.0 * 50 / 40)
    assert _one("resets", ts, vs, 45_000, 50_000) == 2.0
    assert _one("changes", ts, vs, 45_000, 50_000) == 4.0
    assert _one("irate", ts, vs, 45_000, 50_000) == pytest.approx(3.0 / 10)
    assert _one("idelta", ts, vs, 45_000, 50_000) == pytest.approx(-12.0)


def test_functions_that_need_two_samples() -> None:
    for name in ("rate", "increase", "delta", "irate", "idelta", "deriv", "predict_linear"):
        assert _one(name, [1_000], [5.0], 2_000, 60_000, 60.0) is None, name
    for name in ("changes", "resets", "count_over_time", "stddev_over_time", "quantile_over_time"):
        assert _one(name, [1_000], [5.0], 2_000, 60_000, 0.5) is not None, name
    # An empty window has no result at all.
    assert all(_one(name, [1_000], [5.0], 90_000, 60_000, 0.5) is None for name in NAMES)


def test_deriv_and_predict_linear_on_a_line() -> None:
    ts = [0, 15_000, 30_000, 45_000]
    vs = [10.0, 40.0, 70.0, 100.0]  # 2 per second
    assert _one("deriv", ts, vs, 50_000, 60_000) == pytest.approx(2.0)
    # At t = 50 s the line is at 110; 60 s later at 230.
    assert _one("predict_linear", ts, vs, 50_000, 60_000, 60.0) == pytest.approx(230.0)
    # With offset 10m the window ends at 50 s but the intercept is at the evaluation time.
    rs = _series(ts, vs, [50_000], 60_000, offset_ms=600_000)
    assert _run("predict_linear", rs, 0.0)[0] == pytest.approx(10.0 + 2 * 650)
    # A constant series: slope 0 (no division by a zero variance).
    assert _one("deriv", ts, [3.0] * 4, 50_000, 60_000) == 0.0
    assert math.isnan(_one("deriv", ts, [math.inf] * 4, 50_000, 60_000) or 0.0)


@pytest.mark.parametrize(("vs", "expected"), [
    ([1.0, 2.0, 3.0, 4.0], {"sum": 10.0, "avg": 2.5, "min": 1.0, "max": 4.0, "stdvar": 1.25}),
    ([math.nan, 2.0, 1.0], {"sum": math.nan, "avg": math.nan, "min": 1.0, "max": 2.0}),
    ([math.nan, math.nan], {"min": math.nan, "max": math.nan, "changes": 0.0}),
    ([math.inf, 1.0], {"sum": math.inf, "avg": math.inf, "stdvar": math.nan, "max": math.inf}),
    ([math.inf, -math.inf], {"sum": math.nan, "avg": math.nan}),
    ([7.0, 7.0, 7.0], {"stdvar": 0.0, "stddev": 0.0, "changes": 0.0}),
    ([-5.0, -1.0, -3.0], {"min": -5.0, "max": -1.0, "last": -3.0, "resets": 1.0, "avg": -3.0}),
    ([1e308, 1e308, -1e308], {"sum": math.inf, "avg": 1e308 / 3}),
])
def test_aggregations_over_time(vs: list[float], expected: dict[str, float]) -> None:
    ts = [i * 10_000 for i in range(len(vs))]
    for short, want in expected.items():
        name = short if short in ("changes", "resets") else f"{short}_over_time"
        got = _one(name, ts, vs, len(vs) * 10_000, 600_000)
        assert got is not None and _close(got, want, 1e-15), (name, got, want)


def test_avg_over_time_does_not_overflow() -> None:
    # Prometheus 3 switches to an incremental mean once the sum overflows.
    got = _one("avg_over_time", [0, 1, 2], [1e308, 1e308, 1e308], 5, 60_000)
    assert got == pytest.approx(1e308)


@pytest.mark.parametrize(("q", "expected"), [
    (0.0, 1.0), (0.5, 2.5), (0.9, 3.7), (1.0, 4.0), (-0.1, -math.inf), (1.1, math.inf),
])
def test_quantile_over_time(q: float, expected: float) -> None:
    got = _one("quantile_over_time", [0, 1, 2, 3], [4.0, 1.0, 3.0, 2.0], 10, 60_000, q)
    assert got == pytest.approx(expected)


def test_quantile_and_mad_sort_nan_first() -> None:
    ts = [0, 1, 2, 3]
    vs = [math.nan, 10.0, 1.0, 4.0]  # Prometheus's order: NaN, 1, 4, 10
    assert math.isnan(_one("quantile_over_time", ts, vs, 10, 60_000, 0.0) or 0.0)
    assert _one("quantile_over_time", ts, vs, 10, 60_000, 1.0) == 10.0
    assert _one("quantile_over_time", ts, vs, 10, 60_000, 0.5) == pytest.approx(2.5)
    # median 1..10 of [1, 2, 4, 10] = 3; deviations 2, 1, 1, 7 -> median 1.5
    assert _one("mad_over_time", ts, [1.0, 2.0, 4.0, 10.0], 10, 60_000) == pytest.approx(1.5)


def test_present_and_absent_over_time_mark_windows_with_samples() -> None:
    rs = _series([10_000, 20_000], [1.0, 2.0], [5_000, 15_000, 100_000], 30_000)
    for name in ("present_over_time", "absent_over_time"):
        assert _run(name, rs) == [None, 1.0, None]
    assert _run("count_over_time", rs) == [None, 1.0, None]


def test_empty_series() -> None:
    rs = _series([], [], [1_000, 2_000], 60_000)
    for name in NAMES:
        assert _run(name, rs, 0.5) == [None, None], name


# --- the reference port, randomized --------------------------------------------------------

# Functions that replay Prometheus's own order of operations match it bit for bit;
# sums and means use compensated prefix sums instead (as accurate as Kahan's).
_ULPS_ONLY = {"sum_over_time", "avg_over_time"}


def _random_series(seed: int) -> tuple[list[int], list[float]]:
    rng = np.random.default_rng(seed)
    n = 400
    ts = np.cumsum(rng.integers(1_000, 40_000, n)).tolist()
    kind = seed % 4
    if kind == 0:  # counter with resets
        vs = np.cumsum(rng.random(n) * 50)
        for cut in rng.integers(0, n, 4):
            vs[cut:] -= vs[cut] - rng.random()
    elif kind == 1:  # large gauge, small moves
        vs = 1.234e12 + np.cumsum(rng.normal(0, 3, n))
    elif kind == 2:  # negative gauge with NaN and infinities
        vs = -100 + 40 * np.sin(np.arange(n) / 7) + rng.normal(0, 1, n)
        vs[rng.integers(0, n, 6)] = np.nan
        vs[rng.integers(0, n, 2)] = np.inf
        vs[rng.integers(0, n, 2)] = -np.inf
    elif seed == 7:  # huge values: running sums overflow, Prometheus's order decides
        vs = rng.normal(0, 1, n) * 1e307
    else:  # few distinct values, repeats
        vs = rng.integers(0, 3, n).astype(float) * 1e-3
    return ts, [float(v) for v in vs]


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("nsteps", [3, 120])
def test_matches_the_reference_port(seed: int, nsteps: int) -> None:
    ts, vs = _random_series(seed)
    rng = np.random.default_rng(seed + 100)
    steps = np.sort(rng.integers(ts[0] - 60_000, ts[-1] + 60_000, nsteps)).tolist()
    range_ms = [60_000, 300_000, 1_234_567][seed % 3]
    rs = _series(ts, vs, steps, range_ms, offset_ms=30_000)
    arg = [0.9, 0.0, 1.0, 0.37, 600.0][seed % 5]
    for name in NAMES:
        a = 3600.0 if name == "predict_linear" else arg
        got = _run(name, rs, a)
        for i, t in enumerate(steps):
            lo, hi = int(rs.lo[i]), int(rs.hi[i])
            want = _ref(name, ts[lo:hi], vs[lo:hi], t, range_ms, a, offset_ms=30_000)
            rel = 1e-12 if name in _ULPS_ONLY else 0.0
            assert _close(got[i], want, rel), (name, t, got[i], want)


# --- the oracle: a real Prometheus 2.42 on the same data -----------------------------------

T0 = 1_700_000_000_000  # ms; samples on whole seconds, evaluations on half seconds
SPAN = 3_600_000


def _oracle_data() -> dict[str, tuple[list[int], list[float]]]:
    rng = np.random.default_rng(42)

    def times(start: int, lo: int, hi: int, end: int = SPAN) -> list[int]:
        out, t = [], T0 + start
        while t < T0 + end:
            out.append(t)
            t += int(rng.integers(lo, hi + 1)) * 1000
        return out

    data: dict[str, tuple[list[int], list[float]]] = {}
    ts = times(0, 13, 17)
    vs = np.cumsum(rng.random(len(ts)) * 7.3)
    for cut in (40, 41, 150, 151, 152):  # resets, some back to back
        vs[cut:] -= vs[cut] - rng.random() * 3
    data["resets"] = (ts, vs.tolist())
    ts = times(600_000, 5, 40, SPAN - 700_000)  # starts and ends inside the span
    data["irregular"] = (ts, (np.cumsum(rng.random(len(ts)) * 2) + 0.5).tolist())
    ts = times(0, 100, 170)
    data["sparse"] = (ts, np.cumsum(rng.random(len(ts)) * 100).tolist())
    ts = times(0, 15, 15)
    data["large"] = (ts, (987_654_321_012.25 + np.cumsum(rng.normal(0, 2.5, len(ts)))).tolist())
    data["bigcounter"] = (ts, (2.0 ** 50 + np.cumsum(rng.random(len(ts)) * 0.3)).tolist())
    g = -40 + 25 * np.sin(np.arange(len(ts)) / 9) + rng.normal(0, 0.5, len(ts))
    data["negative"] = (ts, g.tolist())
    nan = g.copy()
    nan[[5, 6, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76, 77, 78, 200]] = np.nan
    data["nan"] = (ts, nan.tolist())
    data["steps"] = (ts, np.repeat(rng.integers(0, 4, len(ts) // 10 + 1), 10)[:len(ts)].astype(float).tolist())
    data["const"] = (ts, [42.5] * len(ts))
    return data


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    root = tmp_path_factory.mktemp("prom")
    lines = []
    for name, (ts, vs) in _oracle_data().items():
        lines.append(f"# TYPE t_{name} gauge")
        lines += [f't_{name}{{s="{name}"}} {_fmt(v)} {t / 1000:.3f}' for t, v in zip(ts, vs)]
    (root / "data.om").write_text("\n".join(lines) + "\n# EOF\n")
    with prometheus_from_openmetrics(root / "data.om", root) as url, \
            httpx.Client(base_url=url, timeout=10) as client:
        yield client


def _query_range(client: httpx.Client, query: str, steps: list[int]) -> dict[str, dict[int, float]]:
    step = (steps[1] - steps[0]) / 1000 if len(steps) > 1 else 1
    r = client.get("/api/v1/query_range", params={
        "query": query, "start": steps[0] / 1000, "end": steps[-1] / 1000, "step": step})
    assert r.status_code == 200, (query, r.text)
    out: dict[str, dict[int, float]] = {}
    for series in r.json()["data"]["result"]:
        out[series["metric"].get("s", "")] = {round(t * 1000): float(v) for t, v in series["values"]}
    return out


def _rate_242_differs(name: str, ts: list[int], vs: list[float], t: int, range_ms: int) -> bool:
    """Whether 2.42's rate/increase (zero clamp before the threshold) gives another value."""
    if name not in ("rate", "increase"):
        return False
    a = _ref_rate(ts, vs, t, range_ms, True, name == "rate")
    b = _ref_rate(ts, vs, t, range_ms, True, name == "rate", v242=True)
    return not _close(a, b, 1e-12)


@pytest.mark.parametrize("range_ms", [90_000, 300_000, 1_020_000])
@pytest.mark.parametrize("nsteps", [3, 97])
def test_oracle_prometheus(prometheus: httpx.Client, range_ms: int, nsteps: int) -> None:
    data = _oracle_data()
    step = 37_000 if nsteps > 3 else 1_111_000
    steps = [T0 + 60_500 + i * step for i in range(nsteps)]
    rng_s = f"{range_ms // 1000}s"
    mismatches: list[str] = []
    compared = valued = version_diffs = 0
    for name in ORACLE_NAMES:
        arg: float | None = None
        if name == "quantile_over_time":
            arg = 0.9 if range_ms != 300_000 else 0.5
            query = f"quantile_over_time({arg}, {{__name__=~'t_.+'}}[{rng_s}])"
        elif name == "predict_linear":
            arg = 600.0
            query = f"predict_linear({{__name__=~'t_.+'}}[{rng_s}], 600)"
        elif name == "absent_over_time":
            continue  # below, per series: it answers one series {} where others have none
        else:
            query = f"{name}({{__name__=~'t_.+'}}[{rng_s}])"
        if name == "last_over_time":  # keeps the metric name, which we do not need
            query = f"{name}({{__name__=~'t_.+'}}[{rng_s}]) * 1"
        theirs = _query_range(prometheus, query, steps)
        for label, (ts, vs) in data.items():
            rs = _series(ts, vs, steps, range_ms)
            ours = _run(name, rs, arg)
            got = theirs.get(label, {})
            for i, t in enumerate(steps):
                lo, hi = int(rs.lo[i]), int(rs.hi[i])
                if _rate_242_differs(name, ts[lo:hi], vs[lo:hi], t, range_ms):
                    version_diffs += 1
                    want_242 = _ref_rate(ts[lo:hi], vs[lo:hi], t, range_ms, True, name == "rate", v242=True)
                    if not _close(got.get(t), want_242, 1e-9):
                        mismatches.append(f"{name} {label} @{t}: 2.42 {got.get(t)} vs its rule {want_242}")
                    continue
                compared += 1
                valued += got.get(t) is not None
                if not _close(ours[i], got.get(t), 1e-9):
                    mismatches.append(f"{name} {label} @{t} [{lo}:{hi}]: ours {ours[i]} prometheus {got.get(t)}")
    for label, (ts, vs) in data.items():
        theirs = _query_range(prometheus, f"absent_over_time(t_{label}[{rng_s}])", steps)
        absent = theirs.get("", {})
        ours = _run("absent_over_time", _series(ts, vs, steps, range_ms))
        for i, t in enumerate(steps):
            compared += 1
            if (ours[i] is None) != (t in absent):
                mismatches.append(f"absent_over_time {label} @{t}: ours {ours[i]} prometheus {absent.get(t)}")
    assert not mismatches, f"{len(mismatches)} of {compared}:\n" + "\n".join(mismatches[:40])
    # Most comparisons are of values (not of two absences).
    assert valued > 0.8 * compared, (valued, compared)
    print(f"range {rng_s}, {nsteps} steps: {compared} compared, {valued} with values, "
          f"{version_diffs} where 2.42's rate rule differs from 3.x's (checked against 2.42's)")
