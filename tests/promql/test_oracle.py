"""The PromQL evaluator against a real Prometheus 2.42 (Debian package ``prometheus``).

One deterministic data set (counters with resets, gauges with NaN samples and gaps,
classic histograms, info metrics) is written as OpenMetrics, turned into blocks by
``promtool tsdb create-blocks-from openmetrics`` and served by a throwaway
Prometheus on loopback; the same file goes into a watchkeeper store. Every query
of ``tests/fixtures/promql/corpus.promql`` is then asked of both, instant and
range, and the answers compared series by series (relative tolerance 1e-9, NaN
equal to NaN). Evaluation times fall between sample timestamps: Prometheus 2.42
closes range windows on the left where 3.x (and watchkeeper) opens them, and
between samples the two agree.
"""

from __future__ import annotations

import json
import math
import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e_helpers import prometheus_from_openmetrics
from watchkeeper.errors import QueryError
from watchkeeper.monitor.exposition import iter_openmetrics_file
from watchkeeper.query.engine import QueryEngine
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "promql"
TS = 1_699_992_000  # data start, a multiple of 60 (subquery steps fall between samples)
SPAN = 7200  # two hours of samples every 15 s (each 1-3 s after the 15 s grid)
INSTANT_TIMES = [TS + 3607.5, TS + 5407.5, TS + 6502.5, TS + SPAN + 127.5]
RANGE = (TS + 607.5, TS + SPAN + 367.5, 60.0)
RANGE_FINE = (TS + 3007.5, TS + 3907.5, 15.0)


def _corpus() -> dict[str, list[str]]:
    sections: dict[str, list[str]] = {}
    current = ""
    for line in (FIXTURES / "corpus.promql").read_text().splitlines():
        if line.startswith("## "):
            current = line[3:].strip()
        elif line.strip() and not line.startswith("#"):
            sections.setdefault(current, []).append(line)
    return sections


CORPUS = _corpus()


def _series() -> Iterator[tuple[str, dict[str, str], list[tuple[float, float]]]]:
    """The data set: (metric name, labels, [(t, value)])."""
    rnd = random.Random(20231114)
    grid = [TS + 15 * k for k in range(SPAN // 15)]

    def times() -> list[float]:
        return [t + rnd.randint(1000, 3000) / 1000 for t in grid]

    for instance in ("a", "b"):
        for cpu in range(3):
            for mode in ("idle", "user", "system"):
                v, out = rnd.uniform(0, 1e5), []
                speed = {"idle": 12.0, "user": 2.5, "system": 0.7}[mode] * rnd.uniform(0.5, 1.5)
                reset_at = rnd.randrange(100, 400) if (cpu, mode) == (1, "user") else -1
                for k, t in enumerate(times()):
                    v = round(v + speed * rnd.uniform(0.2, 1.8) * 15, 3)
                    if k == reset_at:
                        v = round(rnd.uniform(0, 10), 3)
                    out.append((t, v))
                yield "node_cpu_seconds_total", {"cpu": str(cpu), "instance": instance, "mode": mode}, out
        for n, sensor in enumerate(("s0", "s1", "s2", "gap", "nan")):
            v, out = rnd.uniform(15, 25), []
            tie_break = (n + 5 * (instance == "b")) / 1000  # no two series ever hold the same value
            for k, t in enumerate(times()):
                v = round(min(30.0, max(10.0, v + rnd.uniform(-0.4, 0.4))), 2) + tie_break
                if sensor == "gap" and 150 <= k < 230:
                    continue  # twenty minutes without samples: the lookback runs out
                if sensor == "s2" and instance == "b" and k >= 400:
                    continue  # this series ends before the others
                val = math.nan if sensor == "nan" and k % 17 == 3 else v
                out.append((t, val))
            yield "temp_celsius", {"instance": instance, "sensor": sensor}, out
        up_out = [(t, 0.0 if 200 <= k < 215 and instance == "b" else 1.0) for k, t in enumerate(times())]
        yield "up", {"instance": instance, "job": "node"}, up_out
        yield "info_metric", {"instance": instance, "version": f"1.{ord(instance) - 96}"}, [
            (t, 1.0) for t in times()]
    for device in ("sda", "sdb"):
        v, out = rnd.uniform(5e10, 9e10), []
        for t in times():
            v = round(v - rnd.uniform(1e5, 5e6), 0)
            out.append((t, v))
        yield "disk_free_bytes", {"device": device}, out
    for code in ("200", "500"):
        for method in ("get", "post"):
            # counters start high: where a series starts inside a window, 2.42 and 3.x
            # extrapolate rate() differently if the first value is near zero
            v, out = float(rnd.randint(5000, 9000)), []
            for k, t in enumerate(times()):
                v += rnd.randint(0, 40 if code == "200" else 3)
                if code == "500" and method == "post" and k == 300:
                    v = 0.0
                out.append((t, v))
            yield "req_total", {"code": code, "method": method}, out
    bounds = ["0.1", "0.5", "1", "5", "+Inf"]
    for path in ("/a", "/b"):
        counts, total, out_b = [0] * len(bounds), 0.0, {b: [] for b in bounds}
        out_c, out_s = [], []
        for k, t in enumerate(times()):
            for _ in range(rnd.randint(0, 20) + (3000 if k == 0 else 0)):
                x = rnd.expovariate(1.5 if path == "/a" else 0.7)
                total += x
                for i, b in enumerate(bounds):
                    if x <= float(b):
                        counts[i] += 1
            for i, b in enumerate(bounds):
                out_b[b].append((t, float(counts[i])))
            out_c.append((t, float(counts[-1])))
            out_s.append((t, round(total, 6)))
        for b in bounds:
            yield "http_request_duration_seconds_bucket", {"le": b, "path": path}, out_b[b]
        yield "http_request_duration_seconds_count", {"path": path}, out_c
        yield "http_request_duration_seconds_sum", {"path": path}, out_s
    # odd classic histograms: unsorted and duplicate bounds, a decreasing count, a bad le,
    # a group without +Inf, one with a bound <= 0, one with no observations
    t_all = times()
    odd: list[tuple[dict[str, str], float]] = [
        ({"g": "dup", "le": "1"}, 4), ({"g": "dup", "le": "1.0"}, 2), ({"g": "dup", "le": "2"}, 9),
        ({"g": "dup", "le": "+Inf"}, 10),
        ({"g": "nonmono", "le": "1"}, 5), ({"g": "nonmono", "le": "2"}, 3), ({"g": "nonmono", "le": "4"}, 8),
        ({"g": "nonmono", "le": "+Inf"}, 8),
        ({"g": "bad", "le": "abc"}, 3), ({"g": "bad", "le": "1"}, 1), ({"g": "bad", "le": "+Inf"}, 2),
        ({"g": "noinf", "le": "1"}, 1), ({"g": "noinf", "le": "2"}, 2),
        ({"g": "neg", "le": "-1"}, 5), ({"g": "neg", "le": "0"}, 6), ({"g": "neg", "le": "+Inf"}, 6),
        ({"g": "empty", "le": "1"}, 0), ({"g": "empty", "le": "+Inf"}, 0),
        ({"g": "top", "le": "1"}, 1), ({"g": "top", "le": "2"}, 1), ({"g": "top", "le": "+Inf"}, 5),
    ]
    for labels, value in odd:
        yield "odd_bucket", labels, [(t, float(value)) for t in t_all]


def _fmt(v: float) -> str:
    if math.isnan(v):
        return "NaN"
    if math.isinf(v):
        return "+Inf" if v > 0 else "-Inf"
    return repr(v)


def write_openmetrics(path: Path) -> int:
    families: dict[str, list[tuple[dict[str, str], list[tuple[float, float]]]]] = {}
    for name, labels, samples in _series():
        families.setdefault(name, []).append((labels, samples))
    lines, total = [], 0
    for name, members in families.items():
        lines.append(f"# TYPE {name} gauge")
        for labels, samples in members:
            lab = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            for t, v in samples:
                lines.append(f"{name}{{{lab}}} {_fmt(v)} {t:.3f}")
                total += 1
    lines.append("# EOF")
    path.write_text("\n".join(lines) + "\n")
    return total


class Oracle:
    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, timeout=30)

    def ask(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        r = self.http.post(path, data=params)
        body = r.json()
        if body["status"] != "success":
            raise QueryError(body["error"])
        return body["data"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Oracle, QueryEngine]]:
    root = tmp_path_factory.mktemp("oracle")
    om = root / "data.om.txt"
    write_openmetrics(om)
    engine = open_engine(None, root / "wk")
    try:
        tsdb = TSDB(engine)
        for batch in iter_openmetrics_file(om):
            tsdb.append(batch, default_timestamp=time.time())
        tsdb.compact(TS + SPAN + 3600)
        with prometheus_from_openmetrics(om, root) as url:
            oracle = Oracle(url)
            try:
                yield oracle, QueryEngine(tsdb)
            finally:
                oracle.http.close()
    finally:
        engine.dispose()


def _num(text: str) -> float:
    return float(text)


def _close(a: float, b: float) -> bool:
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)


def _key(metric: dict[str, str]) -> str:
    return json.dumps(metric, sort_keys=True)


def assert_same(query: str, want: dict[str, Any], got: dict[str, Any], *, ordered: bool = False) -> None:
    assert got["resultType"] == want["resultType"], (query, want, got)
    kind = want["resultType"]
    if kind in ("scalar", "string"):
        assert float(got["result"][0]) == float(want["result"][0]), query
        if kind == "string":
            assert got["result"][1] == want["result"][1], query
        else:
            assert _close(_num(got["result"][1]), _num(want["result"][1])), (query, want, got)
        return
    field = "value" if kind == "vector" else "values"
    w = {_key(r["metric"]): r[field] for r in want["result"]}
    g = {_key(r["metric"]): r[field] for r in got["result"]}
    assert len(w) == len(want["result"]) and len(g) == len(got["result"]), f"{query}: duplicate series"
    assert sorted(g) == sorted(w), f"{query}: series differ\nwant {sorted(w)}\ngot  {sorted(g)}"
    for k, wv in w.items():
        gv = g[k]
        points_w = [wv] if kind == "vector" else wv
        points_g = [gv] if kind == "vector" else gv
        assert [float(p[0]) for p in points_g] == [float(p[0]) for p in points_w], f"{query} {k}: times differ"
        bad = [(p[0], p[1], q[1]) for p, q in zip(points_w, points_g, strict=True)
               if not _close(_num(q[1]), _num(p[1]))]
        assert not bad, f"{query} {k}: (t, prometheus, watchkeeper) {bad[:5]}"
    if ordered:
        values_w = [_num(r[field][1]) for r in want["result"]]
        values_g = [_num(r[field][1]) for r in got["result"]]
        assert all(_close(a, b) for a, b in zip(values_g, values_w, strict=True)), (query, values_w, values_g)


def _instant(qe: QueryEngine, query: str, t: float) -> dict[str, Any]:
    got = qe.instant(query, t)
    assert json.loads(qe.instant_json(query, t)) == got
    return got


def _range(qe: QueryEngine, query: str, start: float, end: float, step: float) -> dict[str, Any]:
    got = qe.range(query, start, end, step)
    assert json.loads(qe.range_json(query, start, end, step)) == got
    return got


@pytest.mark.parametrize("query", CORPUS["both"])
def test_instant_and_range_agree_with_prometheus(both: tuple[Oracle, QueryEngine], query: str) -> None:
    oracle, qe = both
    for t in INSTANT_TIMES:
        want = _answer(oracle, "/api/v1/query", {"query": query, "time": t})
        if isinstance(want, QueryError):
            with pytest.raises(QueryError):
                qe.instant(query, t)
            continue
        assert_same(f"{query} @ {t}", want, _instant(qe, query, t))
    for start, end, step in (RANGE, RANGE_FINE):
        want = _answer(oracle, "/api/v1/query_range", {"query": query, "start": start, "end": end, "step": step})
        if isinstance(want, QueryError):
            with pytest.raises(QueryError):
                qe.range(query, start, end, step)
            continue
        assert_same(f"{query} [{start}..{end} step {step}]", want, _range(qe, query, start, end, step))


def _answer(oracle: Oracle, path: str, params: dict[str, Any]) -> dict[str, Any] | QueryError:
    try:
        return oracle.ask(path, params)
    except QueryError as exc:
        assert "parse error" not in exc.message, exc  # the corpus holds only valid PromQL
        return exc


@pytest.mark.parametrize("query", CORPUS["instant"])
def test_instant_only_queries_agree_with_prometheus(both: tuple[Oracle, QueryEngine], query: str) -> None:
    oracle, qe = both
    for t in INSTANT_TIMES:
        want = oracle.ask("/api/v1/query", {"query": query, "time": t})
        assert_same(f"{query} @ {t}", want, _instant(qe, query, t), ordered=query.startswith("sort"))


@pytest.mark.parametrize("query", CORPUS["error"])
def test_evaluation_errors_agree_with_prometheus(both: tuple[Oracle, QueryEngine], query: str) -> None:
    oracle, qe = both
    t = INSTANT_TIMES[0]
    with pytest.raises(QueryError) as want:
        oracle.ask("/api/v1/query", {"query": query, "time": t})
    with pytest.raises(QueryError) as got:
        qe.instant(query, t)
    assert got.value.error_type == "execution"
    # the same kind of error: compare the message up to its details
    assert got.value.message.split(":")[0] == want.value.message.split(":")[0], (want.value, got.value)


def test_corpus_is_large_enough() -> None:
    assert sum(len(v) for v in CORPUS.values()) >= 150
