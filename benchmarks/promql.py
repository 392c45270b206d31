"""Benchmark the PromQL evaluator side by side with a real Prometheus (Debian ``prometheus``).

1. Range query ``sum by (mode) (rate(node_cpu_seconds_total[5m]))`` over 24 h of
   100 CPUs x 8 modes scraped every 15 s (800 series, 4.6 M samples), at a 60 s
   and a 15 s step: watchkeeper's ``QueryEngine.range_json`` over the SQLite
   store (cold: a fresh TSDB, and warm) against Prometheus's ``/api/v1/query_range``
   (HTTP round trip and its own ``evalTotalTime``). Goal: within 3x.
2. Rule-evaluation-like instant queries: 1,000 different simple alert expressions
   over 10,000 series (thresholds, rate, aggregations, absent), each evaluated once
   at the same time; total time per cycle, watchkeeper in-process against
   Prometheus over HTTP (and its summed ``evalTotalTime``).

The same OpenMetrics file feeds ``promtool tsdb create-blocks-from openmetrics``
and the watchkeeper store. Run: ``.venv/bin/python benchmarks/promql.py``
(about 2 minutes; set ``BENCH_CPUS=20`` for a quicker, smaller run).
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from watchkeeper.query.engine import QueryEngine
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB

DAY = 86400
INTERVAL = 15
CPUS = int(os.environ.get("BENCH_CPUS", "100"))
MODES = ("idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice")
END = 1_700_006_400  # data end (a multiple of 60)
START = END - DAY
QUERY = "sum by (mode) (rate(node_cpu_seconds_total[5m]))"
RULE_METRICS = 100  # x 100 instances = 10,000 series for the rule-like queries
RULE_INSTANCES = 100
REPEAT = 5


def cpu_rows() -> list[tuple[dict[str, str], list[int], list[float]]]:
    rnd = random.Random(7)
    out = []
    for cpu in range(CPUS):
        for mode in MODES:
            speed = {"idle": 0.8, "user": 0.1, "system": 0.05}.get(mode, 0.01)
            v = rnd.uniform(0, 1e6)
            ms, vs = [], []
            t = START * 1000 + rnd.randrange(0, INTERVAL * 1000)
            while t <= END * 1000:
                v = round(v + speed * INTERVAL * rnd.uniform(0.5, 1.5), 2)
                ms.append(t)
                vs.append(v)
                t += INTERVAL * 1000
            out.append(({"cpu": str(cpu), "mode": mode, "instance": "host:9100"}, ms, vs))
    return out


def rule_rows() -> list[tuple[str, dict[str, str], list[int], list[float]]]:
    rnd = random.Random(8)
    out = []
    for m in range(RULE_METRICS):
        for i in range(RULE_INSTANCES):
            v = rnd.uniform(0, 100)
            ms, vs = [], []
            for k in range(40):  # the last 10 minutes
                t = (END - 600 + k * INTERVAL) * 1000 + i
                v = round(v + rnd.uniform(0, 3), 3) if m % 2 else round(rnd.uniform(0, 100), 3)
                ms.append(t)
                vs.append(v)
            out.append((f"rule_metric_{m}", {"instance": f"host{i}", "job": f"job{i % 10}"}, ms, vs))
    return out


def rule_queries() -> list[str]:
    rnd = random.Random(9)
    forms = [
        lambda m, i, x: f'rule_metric_{m}{{instance="host{i}"}} > {x}',
        lambda m, i, x: f"rule_metric_{m} > {x}",
        lambda m, i, x: f"rate(rule_metric_{m}[5m]) > {x / 100}",
        lambda m, i, x: f"avg by (job) (rule_metric_{m}) < {x}",
        lambda m, i, x: f'absent(rule_metric_{m}{{instance="host{i}"}})',
        lambda m, i, x: f"max_over_time(rule_metric_{m}[5m]) >= {x}",
        lambda m, i, x: f"sum by (job) (increase(rule_metric_{m}[5m])) > {x}",
        lambda m, i, x: f'(rule_metric_{m}{{job="job{i % 10}"}} / 100) * 100 > {x}',
    ]
    out = set()
    while len(out) < 1000:
        out.add(rnd.choice(forms)(rnd.randrange(RULE_METRICS), rnd.randrange(RULE_INSTANCES), rnd.randint(1, 99)))
    return sorted(out)


def write_openmetrics(path: Path, cpus: list[Any], rules: list[Any]) -> int:
    total = 0
    with open(path, "w", encoding="utf-8") as f:
        f.write("# TYPE node_cpu_seconds_total gauge\n")
        for labels, ms, vs in cpus:
            lab = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            f.writelines(f"node_cpu_seconds_total{{{lab}}} {v!r} {t / 1000:.3f}\n" for t, v in zip(ms, vs))
            total += len(ms)
        by_name: dict[str, list[Any]] = {}
        for name, labels, ms, vs in rules:
            by_name.setdefault(name, []).append((labels, ms, vs))
        for name, members in by_name.items():
            f.write(f"# TYPE {name} gauge\n")
            for labels, ms, vs in members:
                lab = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                f.writelines(f"{name}{{{lab}}} {v!r} {t / 1000:.3f}\n" for t, v in zip(ms, vs))
                total += len(ms)
        f.write("# EOF\n")
    return total


def load_watchkeeper(db: TSDB, cpus: list[Any], rules: list[Any]) -> None:
    rows = [("node_cpu_seconds_total", labels, t / 1000, v) for labels, ms, vs in cpus for t, v in zip(ms, vs)]
    rows += [(name, labels, t / 1000, v) for name, labels, ms, vs in rules for t, v in zip(ms, vs)]
    rows.sort(key=lambda r: r[2])  # scrape by scrape, as a server appends
    for k in range(0, len(rows), 20_000):
        db.append_rows(rows[k:k + 20_000])
    db.compact(END + 3600)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def timed(fn: Any, *args: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - t, out


def main() -> int:
    prom, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prom or not promtool:
        print("needs the Debian package prometheus (prometheus and promtool on PATH)")
        return 1
    with tempfile.TemporaryDirectory(prefix="wk-bench-promql-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        cpus, rules = cpu_rows(), rule_rows()
        om = root / "data.om"
        n = write_openmetrics(om, cpus, rules)
        print(f"data: {len(cpus)} cpu series + {len(rules)} rule series, {n:,} samples "
              f"(generated in {time.perf_counter() - t0:.1f} s)")
        t = time.perf_counter()
        subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(root / "prom")],
                       check=True, capture_output=True, timeout=300)
        print(f"prometheus: promtool created blocks in {time.perf_counter() - t:.1f} s")
        engine = open_engine(None, root / "wk")
        t = time.perf_counter()
        load_watchkeeper(TSDB(engine), cpus, rules)
        print(f"watchkeeper: loaded and compacted in {time.perf_counter() - t:.1f} s")
        del cpus, rules
        (root / "prometheus.yml").write_text("global:\n  scrape_interval: 1h\n")
        port = _free_port()
        log = open(root / "prometheus.log", "wb")
        proc = subprocess.Popen([prom, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'prom'}",
                                 f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=100y"],
                                stdout=log, stderr=subprocess.STDOUT)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                deadline = time.monotonic() + 60
                while True:
                    try:
                        if client.get("/-/ready").status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise RuntimeError("prometheus did not become ready")
                    time.sleep(0.1)
                run_range(client, engine)
                run_rules(client, engine)
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            log.close()
            engine.dispose()
    return 0


def run_range(client: httpx.Client, engine: Any) -> None:
    start, end = START + 600.0, float(END)
    for step in (60.0, 15.0):
        cold, _ = timed(QueryEngine(TSDB(engine)).range_json, QUERY, start, end, step)
        qe = QueryEngine(TSDB(engine))
        qe.range_json(QUERY, start, end, step)
        warm = [timed(qe.range_json, QUERY, start, end, step)[0] for _ in range(REPEAT)]
        ev = qe.evaluator()
        only_eval = [timed(ev.evaluate, QUERY, round(start * 1000), round(end * 1000), round(step * 1000))[0]
                     for _ in range(2)]
        params = {"query": QUERY, "start": start, "end": end, "step": step, "stats": "all"}
        client.get("/api/v1/query_range", params=params).raise_for_status()  # warm-up
        http, evals = [], []
        for _ in range(REPEAT):
            took, r = timed(lambda p=params: client.get("/api/v1/query_range", params=p))
            r.raise_for_status()
            http.append(took)
            evals.append(r.json()["data"]["stats"]["timings"]["evalTotalTime"])
        w, p, pe = statistics.median(warm), statistics.median(http), statistics.median(evals)
        print(f"\n{QUERY}  24h, step {step:g}s ({int((end - start) / step) + 1} steps, {CPUS * 8} series)")
        print(f"  watchkeeper range_json: cold {cold * 1000:.0f} ms, warm median {w * 1000:.0f} ms "
              f"(evaluation alone {min(only_eval) * 1000:.0f} ms)")
        print(f"  prometheus query_range over HTTP: median {p * 1000:.0f} ms (its evalTotalTime {pe * 1000:.0f} ms)")
        print(f"  ratio watchkeeper/prometheus: warm {w / p:.2f}x, cold {cold / p:.2f}x (goal <= 3x)")


def run_rules(client: httpx.Client, engine: Any) -> None:
    queries = rule_queries()
    at = float(END) - 7.5
    qe = QueryEngine(TSDB(engine))
    ev = qe.evaluator()
    for q in queries[:20]:
        ev.instant(q, at)  # warm the store's caches as a running server has them
    cycles = []
    for _ in range(3):
        t = time.perf_counter()
        for q in queries:
            ev.instant(q, at)
        cycles.append(time.perf_counter() - t)
    http_cycles, eval_cycles = [], []
    for _ in range(3):
        t = time.perf_counter()
        evals = 0.0
        for q in queries:
            r = client.get("/api/v1/query", params={"query": q, "time": at, "stats": "all"})
            r.raise_for_status()
            evals += r.json()["data"]["stats"]["timings"]["evalTotalTime"]
        http_cycles.append(time.perf_counter() - t)
        eval_cycles.append(evals)
    w, p, pe = min(cycles), min(http_cycles), min(eval_cycles)
    print(f"\n1,000 alert-like instant queries over {RULE_METRICS * RULE_INSTANCES:,} series (one cycle)")
    print(f"  watchkeeper in-process: {w * 1000:.0f} ms per cycle ({w / len(queries) * 1e6:.0f} us per query)")
    print(f"  prometheus over HTTP: {p * 1000:.0f} ms per cycle; its summed evalTotalTime {pe * 1000:.0f} ms")
    print(f"  ratio watchkeeper/prometheus: {w / p:.2f}x vs HTTP cycle, {w / pe:.2f}x vs evaluation time")


if __name__ == "__main__":
    sys.exit(main())
