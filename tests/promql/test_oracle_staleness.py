"""Staleness against a real Prometheus 2.42 that writes its own staleness markers.

OpenMetrics cannot carry a staleness marker, so blocks made by promtool hold none.
Instead a throwaway Prometheus on loopback scrapes a small target whose series
disappear (and whose scrape fails once, then comes back empty) every second, and
evaluates a recording and an alerting rule every second: Prometheus itself writes
the markers. ``promtool tsdb dump`` then gives every sample it stored (markers
print as NaN; the target never exposes NaN, so every NaN is a marker), and:

1. the dump is loaded into a watchkeeper store and queries are compared with
   Prometheus's answers at times between the samples (instant and range);
2. watchkeeper's rule runner evaluates the same rules over the dumped scrape data
   at Prometheus's evaluation times: the recording, ALERTS and ALERTS_FOR_STATE
   samples — markers included — must be those Prometheus wrote;
3. watchkeeper's scrape check, driven through the same target sequence at
   Prometheus's scrape times, must write the same samples and markers.

About 15 s, bounded by deadlines.
"""

from __future__ import annotations

import http.server
import math
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_helpers import free_port, terminate
from tests.promql.test_oracle import Oracle, assert_same
from watchkeeper.alerting.rulefiles import load_rules_text
from watchkeeper.alerting.rules import MemoryAlerts, RuleRunner
from watchkeeper.config import config_model
from watchkeeper.eventlog import EventLog
from watchkeeper.monitor.service import MonitorService
from watchkeeper.query.engine import QueryEngine
from watchkeeper.query.promql.evaluator import Evaluator
from watchkeeper.query.promql.source import MemorySource
from watchkeeper.query.selector import Matcher
from watchkeeper.scheduler import Scheduler
from watchkeeper.staleness import STALE_NAN, is_stale
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB
from watchkeeper.testing import FakeClock

RULES = """groups:
  - name: g
    interval: 1s
    rules:
      - record: rec
        expr: a * 2
      - alert: AHigh
        expr: a > 2
        for: 2s
"""
SCRAPES = 13  # scrapes 10.. expose nothing: every series ends
QUERIES = [
    "a", "b", "rec", "ALERTS", "ALERTS_FOR_STATE", 'ALERTS{alertstate="pending"}', "sum(a)", "a * 2",
    "timestamp(a)", "absent(b)", "absent(a)", "count_over_time(a[3s])", "last_over_time(a[3s])",
    "rate(a[4s])", "max_over_time(a[3s:500ms])", "count_over_time(rec[2s:250ms])", "a offset 2s",
    "absent_over_time(b[2s])", 'a or on() vector(-1)', "changes(a[5s])",
]


def body(i: int) -> tuple[int, str]:
    """The target's answer to its ``i``-th scrape: (status, body)."""
    if i == 6:
        return 500, "broken\n"
    out = ""
    if i < 10:
        out += f'a{{k="1"}} {i}\n'
        if i < 4 or i >= 7:
            out += f'a{{k="2"}} {2 * i}\n'
        if i < 4:
            out += "b 100\n"
    return 200, out


class _Target(http.server.BaseHTTPRequestHandler):
    served: list[int]

    def do_GET(self) -> None:
        i = len(self.served)
        self.served.append(i)
        status, text = body(i)
        data = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


class Target:
    """The scrape target in a thread on loopback; counts the scrapes it answered."""

    def __init__(self) -> None:
        self.served: list[int] = []
        handler = type("Handler", (_Target,), {"served": self.served})
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


Key = tuple[tuple[str, str], ...]
_LINE = re.compile(r"^\{(?P<labels>.*)\} (?P<value>\S+) (?P<ts>-?\d+)$")
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_dump(text: str) -> dict[Key, list[tuple[int, float]]]:
    """``promtool tsdb dump`` output: per label set, (ms, value) with NaN read as a marker."""
    out: dict[Key, list[tuple[int, float]]] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        assert m, line
        labels = tuple(sorted(_LABEL.findall(m.group("labels"))))
        value = float(m.group("value"))
        out.setdefault(labels, []).append((int(m.group("ts")), STALE_NAN if math.isnan(value) else value))
    for samples in out.values():
        samples.sort()
    return out


@dataclass
class Run:
    oracle: Oracle
    dump: dict[Key, list[tuple[int, float]]]
    answers: dict[tuple[str, float], Any]
    range_answers: dict[str, Any]
    times: list[float]
    span: tuple[float, float]


def _between(dump: dict[Key, list[tuple[int, float]]]) -> list[float]:
    stamps = sorted({ms for samples in dump.values() for ms, _ in samples})
    return [((a + b) // 2) / 1000 for a, b in zip(stamps, stamps[1:], strict=False) if b - a >= 2]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    assert prometheus and promtool, "the oracle needs Prometheus (Debian package prometheus)"
    root = tmp_path_factory.mktemp("stale_oracle")
    target = Target()
    (root / "rules.yml").write_text(RULES)
    (root / "prometheus.yml").write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files: [rules.yml]\n"
        "scrape_configs:\n  - job_name: t\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target.port}']\n")
    port = free_port()
    server = subprocess.Popen([prometheus, f"--config.file={root / 'prometheus.yml'}",
                               f"--storage.tsdb.path={root / 'prom'}", f"--web.listen-address=127.0.0.1:{port}",
                               "--log.level=warn"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    oracle = Oracle(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 45
        while len(target.served) < SCRAPES:
            assert server.poll() is None, f"prometheus exited: {server.stderr.read() if server.stderr else ''}"
            assert time.monotonic() < deadline, f"only {len(target.served)} scrapes in 45 s"
            time.sleep(0.1)
        time.sleep(1.5)  # a last rule evaluation after the last scrape
        proc = subprocess.run([promtool, "tsdb", "dump", str(root / "prom")], capture_output=True, text=True,
                              timeout=60, check=False)
        assert proc.returncode == 0, proc.stderr
        dump = parse_dump(proc.stdout)
        times = _between(dump)
        answers = {(q, t): oracle.ask("/api/v1/query", {"query": q, "time": t}) for q in QUERIES for t in times}
        span = (times[0], times[-1])
        range_answers = {q: oracle.ask("/api/v1/query_range", {"query": q, "start": span[0], "end": span[1],
                                                               "step": 0.25}) for q in QUERIES}
        yield Run(oracle, dump, answers, range_answers, times, span)
    finally:
        oracle.http.close()
        target.close()
        terminate(server)


def _series(dump: dict[Key, list[tuple[int, float]]], *names: str) -> dict[Key, list[tuple[int, Any]]]:
    return {k: [(ms, "stale" if is_stale(v) else v) for ms, v in samples]
            for k, samples in dump.items() if dict(k)["__name__"] in names}


def test_prometheus_wrote_markers(run: Run) -> None:
    markers = sum(1 for samples in run.dump.values() for _, v in samples if is_stale(v))
    assert markers >= 8, "Prometheus should have marked the vanished series stale"


def test_queries_over_prometheus_markers_agree(run: Run, tmp_path: Path) -> None:
    engine = open_engine(None, tmp_path)
    try:
        tsdb = TSDB(engine)
        tsdb.append_rows((dict(k)["__name__"], {n: v for n, v in k if n != "__name__"}, ms / 1000, v)
                         for k, samples in run.dump.items() for ms, v in samples)
        qe = QueryEngine(tsdb)
        for q in QUERIES:
            for t in run.times:
                assert_same(f"{q} @ {t}", run.answers[(q, t)], qe.instant(q, t))
            assert_same(f"{q} range", run.range_answers[q], qe.range(q, run.span[0], run.span[1], 0.25))
    finally:
        engine.dispose()


def test_rule_markers_match_prometheus(run: Run) -> None:
    scraped = {k: v for k, v in run.dump.items() if dict(k)["__name__"] in ("a", "b")}
    source = MemorySource((dict(k), [ms / 1000 for ms, _ in s], [v for _, v in s]) for k, s in scraped.items())
    written: dict[Key, list[tuple[int, float]]] = {}

    def write(rows: list[Any]) -> None:
        for name, labels, t, v in rows:
            written.setdefault(tuple(sorted({**labels, "__name__": name}.items())), []).append((round(t * 1000), v))
            source.append({**labels, "__name__": name}, t, v)

    rs = load_rules_text(RULES, "rules.yml")
    runner = RuleRunner(Evaluator(source), write, MemoryAlerts())
    runner.set_groups(rs.groups)
    rule_out = _series(run.dump, "rec", "ALERTS", "ALERTS_FOR_STATE")
    # evaluate when Prometheus wrote something (an evaluation that writes nothing changes
    # no state), so a skipped iteration on a busy machine does not matter
    for ms in sorted({ms for s in rule_out.values() for ms, _ in s}):
        runner.evaluate_group(rs.groups[0], ms / 1000)
    assert _series(written, "rec", "ALERTS", "ALERTS_FOR_STATE") == rule_out


async def test_scrape_markers_match_prometheus(run: Run, tmp_path: Path) -> None:
    prom = {tuple((n, v) for n, v in k if n != "instance"): s
            for k, s in _series(run.dump, "a", "b").items()}
    scrape_ms = [ms for ms, _ in next(s for k, s in run.dump.items()
                                      if dict(k)["__name__"] == "scrape_samples_scraped")]
    target = Target()
    engine = open_engine(None, tmp_path)
    clock = FakeClock(scrape_ms[0] / 1000)
    try:
        tsdb = TSDB(engine, clock=clock)
        monitor = MonitorService(engine, tsdb, EventLog(engine, anchor=tmp_path / "head", clock=clock),
                                 Scheduler(clock=clock), clock=clock)
        monitor.apply(config_model().model_validate({
            "collectors": {"host": {"enabled": False}},
            "checks": [{"name": "t", "type": "scrape", "url": f"http://127.0.0.1:{target.port}/metrics"}]}))
        for ms in scrape_ms:
            clock.advance(ms / 1000 - clock.time())
            await monitor.run_check("t")
        await monitor.flush()
        ours = {}
        for name in ("a", "b"):
            for c in tsdb.select_columns([Matcher("__name__", "=", name)], 0, 4e9):
                key = tuple(sorted((n, v) for n, v in c.labels.items() if n != "instance"))
                ours[key] = [(m, "stale" if is_stale(v) else v)
                             for m, v in zip(c.ms.tolist(), c.values.tolist(), strict=True)]
        assert ours == prom
    finally:
        target.close()
        engine.dispose()

