"""Benchmark the time-series store, side by side with Prometheus's TSDB.

1. ingest: 1,000 series x 1,000 timestamps appended one scrape (1,000 samples)
   per call, as a scraper would; samples/s (goal >= 200,000/s).
2. range query: 24 h of 15 s samples for 100 series (compacted into chunks, the
   last hour in the head), at a 60 s step with 5 min lookback (goal < 100 ms),
   timed two ways, each cold and warm: ``select_columns`` +
   ``SeriesColumns.at_steps`` (the store), and ``QueryEngine.range_json`` plus
   the response envelope (the whole /api/v1/query_range answer but the HTTP
   exchange). Cold is the first query after a start: a fresh TSDB (empty chunk
   cache and series index) and a fresh QueryEngine (no label JSON cached); only
   the process (imports, the SQLAlchemy engine and its compiled statements) is
   already warm. Warm repeats the query on one TSDB and one QueryEngine, as a
   running server does (it keeps both for its lifetime). The same data is
   loaded into Prometheus with ``promtool tsdb create-blocks-from openmetrics``
   and the same query_range is timed over HTTP on a loopback port.
3. instant query over 10,000 series (5 min of 15 s samples in the head):
   ``QueryEngine.instant_json``, cold and warm as above.
4. bytes per sample on disk for the raw, minute and hour tiers (and for
   Prometheus's blocks).

Timings are wall clock on whatever else the machine runs; each figure is the
median of several runs.

Run: ``.venv/bin/python benchmarks/store.py`` (about a minute). Needs the
Debian package ``prometheus`` (``prometheus`` and ``promtool`` on PATH) for the
comparison; without it the watchkeeper figures are still printed.
"""

from __future__ import annotations

import json
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

from watchkeeper.query.selector import parse_selector
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB

DAY = 86400
STEP = 60.0
LOOKBACK = 300.0
N_QUERY_SERIES = 100
INTERVAL = 15
REPEAT = 7


def bench_ingest(root: Path) -> float:
    engine = open_engine(None, root / "ingest")
    try:
        db = TSDB(engine)
        labels = [{"instance": f"host{i // 100}:9100", "job": "node", "cpu": str(i % 100)}
                  for i in range(1000)]
        t0 = 1_700_000_000.0
        started = time.perf_counter()
        total = 0
        for k in range(1000):
            ts = t0 + k * INTERVAL
            total += db.append_rows([("node_cpu_seconds_total", lab, ts, float(k * 7 + i))
                                     for i, lab in enumerate(labels)])
        took = time.perf_counter() - started
    finally:
        engine.dispose()
    rate = total / took
    print(f"ingest: {total:,} samples in {took:.2f} s = {rate:,.0f} samples/s "
          f"(goal >= 200,000/s) {'OK' if rate >= 200_000 else 'MISSED'}")
    return rate


def make_data(end: int) -> list[tuple[dict[str, str], list[float], list[float]]]:
    """100 series over (end - 24h, end]: a third counters, a third gauges, a third slow gauges.

    Scrape timestamps carry a few ms of jitter, as real scrapes do.
    """
    rnd = random.Random(42)
    out = []
    start = end - DAY
    for i in range(N_QUERY_SERIES):
        kind = ("counter", "gauge", "level")[i % 3]
        labels = {"series": str(i), "kind": kind, "instance": f"host{i % 10}:9100"}
        ts: list[float] = []
        vs: list[float] = []
        value = rnd.uniform(0, 1000)
        offset = rnd.randrange(0, INTERVAL * 1000)
        t_ms = start * 1000 + offset
        while t_ms <= end * 1000:
            jitter = rnd.randint(-5, 5)
            ts.append((t_ms + jitter) / 1000)
            if kind == "counter":
                value = float(int(value) + rnd.randint(0, 5000))
            elif kind == "gauge":
                value = round(value + rnd.gauss(0, 5), 2)
            else:
                value = float(rnd.choice((0, 1, 1, 1, 2)))
            vs.append(value)
            t_ms += INTERVAL * 1000
        out.append((labels, ts, vs))
    return out


def load(db: TSDB, data: list[tuple[dict[str, str], list[float], list[float]]]) -> int:
    """Append scrape by scrape (all series at each step), as a server would have."""
    rows = sorted(((ts, i, v) for i, (_, tss, vss) in enumerate(data) for ts, v in zip(tss, vss)))
    total = 0
    for k in range(0, len(rows), N_QUERY_SERIES):
        total += db.append_rows([("bench_metric", data[i][0], ts, v) for ts, i, v in rows[k:k + N_QUERY_SERIES]])
    return total


def query_ours(db: TSDB, start: float, end: float) -> tuple[float, int]:
    """select_columns + at_steps: the store's part of a range query."""
    import numpy as np

    matchers = parse_selector("bench_metric")
    started = time.perf_counter()
    points = 0
    steps = np.arange(round(start * 1000), round(end * 1000) + 1, round(STEP * 1000), dtype=np.int64)
    for s in db.select_columns(matchers, start - LOOKBACK, end):
        which, _ = s.at_steps(steps, round(LOOKBACK * 1000))
        points += len(which)
    return time.perf_counter() - started, points


def query_ours_json(qe: Any, start: float, end: float) -> tuple[float, bytes]:
    """The same through the query engine, as /api/v1/query_range answers (the body's bytes)."""
    started = time.perf_counter()
    body = b'{"status":"success","data":' + qe.range_json("bench_metric", start, end, STEP) + b"}"
    return time.perf_counter() - started, body


def bench_instant(root: Path) -> list[float]:
    """An instant query over 10,000 series with 5 min of 15 s samples each: three cold
    (a fresh TSDB and QueryEngine each), then a warm-up and three warm."""
    from watchkeeper.query.engine import QueryEngine

    engine = open_engine(None, root / "instant")
    try:
        db = TSDB(engine)
        t0 = 1_700_000_000.0
        labels = [{"instance": f"host{i // 100}:9100", "cpu": str(i % 100)} for i in range(10_000)]
        for k in range(21):
            db.append_rows([("node_cpu_seconds_total", lab, t0 + 15 * k, float(k * 7 + i))
                            for i, lab in enumerate(labels)])
        times = []
        warm = QueryEngine(db)  # one engine for the repeated queries, as the server keeps it
        for fresh in (True, True, True, False, False, False, False):
            qe = QueryEngine(TSDB(engine)) if fresh else warm
            started = time.perf_counter()
            body = qe.instant_json("node_cpu_seconds_total", t0 + 300)
            times.append(time.perf_counter() - started)
            assert body.count(b'"metric"') == 10_000
    finally:
        engine.dispose()
    return times


def bytes_per_sample(db: TSDB, end: int, raw_samples: int) -> dict[str, float]:
    out = {}
    db.compact(end + DAY)
    st = db.stats()["tiers"]
    out["raw"] = st["raw"]["bytes"] / st["raw"]["samples"]
    db.apply_retention(end + 9 * DAY)
    st = db.stats()["tiers"]
    out["minute"] = st["minute"]["bytes"] / st["minute"]["samples"]
    out["minute_per_raw"] = st["minute"]["bytes"] / raw_samples
    db.apply_retention(end + 100 * DAY)
    st = db.stats()["tiers"]
    out["hour"] = st["hour"]["bytes"] / st["hour"]["samples"]
    out["hour_per_raw"] = st["hour"]["bytes"] / raw_samples
    return out


def write_openmetrics(path: Path, data: list[tuple[dict[str, str], list[float], list[float]]]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write("# TYPE bench_metric gauge\n")
        for labels, ts, vs in data:
            lab = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
            f.writelines(f"bench_metric{{{lab}}} {v!r} {t:.3f}\n" for t, v in zip(ts, vs))
        f.write("# EOF\n")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dir_bytes(path: Path, pattern: str) -> int:
    return sum(p.stat().st_size for p in path.rglob(pattern) if p.is_file())


def bench_prometheus(root: Path, data: list[tuple[dict[str, str], list[float], list[float]]],
                     start: float, end: float, n_samples: int) -> dict[str, Any] | None:
    prom, promtool = shutil.which("prometheus"), shutil.which("promtool")
    if not prom or not promtool:
        print("prometheus: not installed (apt-get install prometheus) - no comparison")
        return None
    import httpx

    om = root / "bench.om"
    write_openmetrics(om, data)
    tsdb_dir = root / "prom-data"
    started = time.perf_counter()
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), str(tsdb_dir)],
                   check=True, capture_output=True, timeout=120)
    print(f"prometheus: promtool created blocks in {time.perf_counter() - started:.1f} s")
    config = root / "prometheus.yml"
    config.write_text("global:\n  scrape_interval: 15s\nscrape_configs: []\n")
    port = _free_port()
    log = open(root / "prometheus.log", "wb")
    proc = subprocess.Popen([prom, f"--config.file={config}", f"--storage.tsdb.path={tsdb_dir}",
                             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=30d"],
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        with httpx.Client(base_url=base, timeout=30.0) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if client.get("/-/ready").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise RuntimeError(f"prometheus did not become ready; see {root / 'prometheus.log'}")
                time.sleep(0.1)
            params = {"query": "bench_metric", "start": f"{start:.3f}", "end": f"{end:.3f}",
                      "step": str(int(STEP)), "stats": "all"}
            times, evals = [], []
            for i in range(REPEAT + 1):
                t = time.perf_counter()
                r = client.get("/api/v1/query_range", params=params)
                elapsed = time.perf_counter() - t
                r.raise_for_status()
                body = r.json()
                if i == 0:
                    series_n = len(body["data"]["result"])
                    points = sum(len(s["values"]) for s in body["data"]["result"])
                    continue  # warm-up: page cache, chunk mmaps
                times.append(elapsed)
                timings = (body["data"].get("stats") or {}).get("timings") or {}
                if "evalTotalTime" in timings:
                    evals.append(timings["evalTotalTime"])
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
    chunk_bytes = _dir_bytes(tsdb_dir, "chunks/*")
    return {"http": times, "eval": evals, "series": series_n, "points": points,
            "bytes_per_sample": chunk_bytes / n_samples,
            "block_bytes_per_sample": _dir_bytes(tsdb_dir, "*") / n_samples}


def main() -> int:
    root = Path(tempfile.mkdtemp(prefix="wk-bench-store-"))
    try:
        print("== 1. ingest")
        bench_ingest(root)

        print("== 2. 24 h range query, 100 series, 15 s samples, 60 s step, 5 min lookback")
        end = int(time.time()) // 3600 * 3600
        start = float(end - DAY)
        data = make_data(end)
        engine = open_engine(None, root / "query")
        db = TSDB(engine)
        t = time.perf_counter()
        n_samples = load(db, data)
        loaded = time.perf_counter() - t
        t = time.perf_counter()
        db.compact(end)  # everything but the last hour into chunks, as a running server has it
        compacted = time.perf_counter() - t
        st = db.stats()
        print(f"loaded {n_samples:,} samples in {loaded:.1f} s, compacted in {compacted:.1f} s: "
              f"{st['tiers']['raw']['chunks']} chunks, {st['head_samples']:,} samples in the head")
        from watchkeeper.query.engine import QueryEngine

        cold = []
        cold_json = []
        for _ in range(5):  # a fresh TSDB has an empty chunk cache: the first query after a start
            took, _ = query_ours(TSDB(engine), start, end)
            cold.append(took)
            took, body = query_ours_json(QueryEngine(TSDB(engine)), start, end)
            cold_json.append(took)
        query_ours(db, start, end)  # warm-up
        ours = []
        for _ in range(REPEAT):
            took, points = query_ours(db, start, end)
            ours.append(took)
        qe = QueryEngine(db)
        query_ours_json(qe, start, end)  # warm-up
        ours_json = [query_ours_json(qe, start, end)[0] for _ in range(REPEAT)]
        answer = json.loads(body)["data"]["result"]
        med, med_cold = statistics.median(ours), statistics.median(cold)
        med_json, med_cold_json = statistics.median(ours_json), statistics.median(cold_json)

        def verdict(x: float) -> str:
            return "OK" if x < 0.1 else "MISSED"

        print(f"watchkeeper select_columns + at_steps: cold median {med_cold * 1000:.1f} ms "
              f"{verdict(med_cold)}, warm median {med * 1000:.1f} ms {verdict(med)} "
              f"({points:,} points; goal < 100 ms)")
        print(f"watchkeeper API path (QueryEngine.range_json + envelope, {len(body) / 1e6:.1f} MB): cold median "
              f"{med_cold_json * 1000:.1f} ms {verdict(med_cold_json)}, warm median {med_json * 1000:.1f} ms "
              f"{verdict(med_json)} ({len(answer)} series, "
              f"{sum(len(r['values']) for r in answer):,} points)")

        prom = bench_prometheus(root, data, start, end, n_samples)
        if prom is not None:
            pmed = statistics.median(prom["http"])
            print(f"prometheus query_range over HTTP: median {pmed * 1000:.1f} ms, best "
                  f"{min(prom['http']) * 1000:.1f} ms ({prom['series']} series, {prom['points']:,} points)")
            if prom["eval"]:
                pev = statistics.median(prom["eval"])
                print(f"prometheus evalTotalTime: median {pev * 1000:.1f} ms; ratio watchkeeper "
                      f"select+at_steps / prometheus eval: warm {med / pev:.1f}x, "
                      f"cold {statistics.median(cold) / pev:.1f}x")
            print(f"ratio watchkeeper/prometheus HTTP (lower is better for watchkeeper): "
                  f"store cold {med_cold / pmed:.2f}x, warm {med / pmed:.2f}x; "
                  f"API path (no HTTP exchange) cold {med_cold_json / pmed:.2f}x, warm {med_json / pmed:.2f}x")

        print("== 3. instant query over 10,000 series")
        inst = bench_instant(root)
        print(f"watchkeeper QueryEngine.instant_json: cold median {statistics.median(inst[:3]) * 1000:.1f} ms, "
              f"warm median {statistics.median(inst[4:]) * 1000:.1f} ms")

        print("== 4. bytes per sample")
        bps = bytes_per_sample(db, end, n_samples)
        engine.dispose()
        print(f"watchkeeper raw tier:    {bps['raw']:.2f} bytes/sample (chunk blobs)")
        print(f"watchkeeper minute tier: {bps['minute']:.2f} bytes per 1-minute bucket "
              f"= {bps['minute_per_raw']:.2f} bytes per original sample")
        print(f"watchkeeper hour tier:   {bps['hour']:.2f} bytes per 1-hour bucket "
              f"= {bps['hour_per_raw']:.3f} bytes per original sample")
        if prom is not None:
            print(f"prometheus blocks:       {prom['bytes_per_sample']:.2f} bytes/sample (chunks), "
                  f"{prom['block_bytes_per_sample']:.2f} with index and metadata; "
                  f"ratio raw {bps['raw'] / prom['bytes_per_sample']:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
