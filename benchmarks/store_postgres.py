"""Benchmark the time-series store on PostgreSQL, side by side with SQLite, in one run.

1. ingest: 1,000 series appended one scrape (1,000 samples) per call, as a scraper
   would; samples/s on SQLite (its DBAPI fast path) and on PostgreSQL (SQLAlchemy Core
   over a loopback connection).
2. range query: 24 h of 15 s samples for 100 series (compacted into chunks, the last
   hour in the head), at a 60 s step with 5 min lookback: ``select_columns`` +
   ``at_steps`` (the store) and ``QueryEngine.range_json`` (the whole query_range answer
   but HTTP), each cold (a fresh TSDB, empty chunk cache) and warm (median of 7).

PostgreSQL is a throwaway cluster this script starts (Debian's server binaries in
/usr/lib/postgresql/<ver>/bin; ``scripts/test-deps.sh`` installs them) with fsync off,
as the tests do, so the figures show the store's own cost, not the disk's.

Run: ``.venv/bin/python benchmarks/store_postgres.py`` (about a minute). Needs the
``postgres`` extra (``pip install -e '.[postgres]'``).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from store import make_data  # the benchmark beside this one: the same data

from watchkeeper.query.engine import QueryEngine
from watchkeeper.query.selector import parse_selector
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB

DAY = 86400
STEP = 60.0
LOOKBACK = 300.0
INTERVAL = 15
N_SERIES = 100
REPEAT = 7
T_END = 1_700_000_000


# -- a throwaway PostgreSQL cluster ---------------------------------------------------------
@contextmanager
def postgres(root: Path) -> Iterator[str]:
    """Start a cluster in the empty directory ``root`` (as the ``postgres`` user when run as
    root: initdb refuses root) and yield the URL of its ``postgres`` database; stop it by its
    data dir at the end."""
    bindirs = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not bindirs:
        raise SystemExit("PostgreSQL server binaries not found: run scripts/test-deps.sh "
                         "(it installs the Debian package `postgresql`)")
    bindir = Path(bindirs[-1]).parent
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    as_user: list[str] = []
    pwfile = root / "pw"
    pwfile.write_text("bench\n")
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
        shutil.chown(pwfile, "postgres", "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    data = root / "data"

    def run(*args: str) -> None:
        proc = subprocess.run([*as_user, *args], capture_output=True, text=True, cwd=root, timeout=120,
                              check=False)
        if proc.returncode:
            raise SystemExit(f"{args[0]} failed:\n{proc.stdout}{proc.stderr}")

    run(str(bindir / "initdb"), "-D", str(data), "-U", "wk", "-A", "scram-sha-256",
        f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C", "--no-sync")
    opts = (f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=256MB")
    run(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-o", opts, "-w", "start")
    try:
        yield f"postgresql+psycopg://wk:bench@127.0.0.1:{port}/postgres"
    finally:
        run(str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop")


# -- the measurements -------------------------------------------------------------------------
def new_database(url: str, name: str) -> str:
    """Create database ``name`` in the cluster of ``url`` (a database URL); return its URL."""
    import psycopg
    from sqlalchemy import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, password=u.password,
                         dbname=u.database, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
    return u.set(database=name).render_as_string(hide_password=False)


def bench_ingest(url: str | None, data_dir: Path, scrapes: int) -> float:
    engine = open_engine(url, data_dir)
    try:
        db = TSDB(engine)
        labels = [{"instance": f"host{i // 100}:9100", "job": "node", "cpu": str(i % 100)}
                  for i in range(1000)]
        t0 = 1_700_000_000.0
        total = 0
        started = time.perf_counter()
        for k in range(scrapes):
            total += db.append_rows([("node_cpu_seconds_total", lab, t0 + k * INTERVAL, float(k * 7 + i))
                                     for i, lab in enumerate(labels)])
        return total / (time.perf_counter() - started)
    finally:
        engine.dispose()


def make_rows() -> list[tuple[str, dict[str, str], float, float]]:
    """benchmarks/store.py's 100 series over 24 h at 15 s (scrape jitter included), as rows
    scrape by scrape."""
    rows = [("bench_metric", labels, t, v) for labels, ts, vs in make_data(T_END)
            for t, v in zip(ts, vs, strict=True)]
    rows.sort(key=lambda r: r[2])
    return rows


def timed(fn: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def bench_range(url: str | None, data_dir: Path, rows: list[Any]) -> dict[str, Any]:
    engine = open_engine(url, data_dir)
    try:
        db = TSDB(engine)
        load_s, _ = timed(lambda: [db.append_rows(rows[k:k + N_SERIES]) for k in range(0, len(rows), N_SERIES)])
        db.compact(T_END)  # all but the last hour into chunks
        start, end = T_END - DAY, T_END
        matchers = parse_selector("bench_metric")
        steps = np.arange(start * 1000, end * 1000 + 1, int(STEP * 1000), dtype=np.int64)

        def store_query(tsdb: TSDB) -> int:
            points = 0
            for s in tsdb.select_columns(matchers, start - LOOKBACK, end):
                points += len(s.at_steps(steps, int(LOOKBACK * 1000))[0])
            return points

        out: dict[str, Any] = {"load_rate": len(rows) / load_s}
        out["store_cold"], out["points"] = timed(lambda: store_query(TSDB(engine)))
        out["store_warm"] = statistics.median(timed(lambda: store_query(db))[0] for _ in range(REPEAT))
        out["engine_cold"], body = timed(lambda: QueryEngine(TSDB(engine)).range_json("bench_metric", start,
                                                                                       end, STEP))
        qe = QueryEngine(db)
        out["engine_warm"] = statistics.median(
            timed(lambda: qe.range_json("bench_metric", start, end, STEP))[0] for _ in range(REPEAT))
        out["body"] = body
        return out
    finally:
        engine.dispose()


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="wk-bench-") as tmp, \
            tempfile.TemporaryDirectory(prefix="wk-bench-pg-") as pg_root:
        root = Path(tmp)
        with postgres(Path(pg_root)) as url:
            print("ingest: 1,000 series, one scrape (1,000 samples) per append")
            lite_rate = bench_ingest(None, root / "lite-ingest", 300)
            pg_rate = bench_ingest(new_database(url, "ingest"), root / "pg-ingest", 100)
            print(f"  SQLite      {lite_rate:>10,.0f} samples/s")
            print(f"  PostgreSQL  {pg_rate:>10,.0f} samples/s   (SQLite/PostgreSQL = {lite_rate / pg_rate:.1f}x)")

            rows = make_rows()
            print(f"range query: 24 h of {INTERVAL} s samples x {N_SERIES} series ({len(rows):,} samples), "
                  f"step {STEP:g} s, lookback {LOOKBACK:g} s")
            lite = bench_range(None, root / "lite-range", rows)
            pg = bench_range(new_database(url, "range"), root / "pg-range", rows)
            assert lite["points"] == pg["points"] and lite["body"] == pg["body"], "results differ"
            print(f"  loading (100 samples per append): SQLite {lite['load_rate']:,.0f}/s, "
                  f"PostgreSQL {pg['load_rate']:,.0f}/s")
            print(f"  {'':28}{'SQLite':>10}{'PostgreSQL':>12}{'PG/SQLite':>11}")
            for key, what in (("store_cold", "select_columns+at_steps cold"),
                              ("store_warm", "select_columns+at_steps warm"),
                              ("engine_cold", "range_json cold"), ("engine_warm", "range_json warm")):
                print(f"  {what:<28}{lite[key] * 1000:>8.1f}ms{pg[key] * 1000:>10.1f}ms"
                      f"{pg[key] / lite[key]:>10.2f}x")
            print(f"  same answer on both: {lite['points']:,} points, {len(lite['body']):,} bytes of JSON")


if __name__ == "__main__":
    main()
