"""Benchmark rule evaluation side by side with a real Prometheus (Debian ``prometheus``).

The issue's goal: 1,000 alerting rules over 10,000 series every 15 s on under
one core; report CPU per evaluation cycle and the ratio to Prometheus
evaluating the same rules on the same data.

Data: 100 hosts x 100 node_exporter-like series (CPU, memory, filesystem,
network, disk, load, processes, HTTP request counters and latency histograms,
``up``) with one hour of 15 s samples (2.4 M samples) ending "now" when the
run starts. Rules: 1,000 alerting rules in ONE Prometheus rule file (10 groups
of 100, ``interval: 15s``): thresholds on gauges, ``rate()``/``increase()``
over counters, ratios with ``/`` and ``on()``, ``sum by``, ``histogram_quantile``,
``predict_linear``, ``absent``, ``avg_over_time``, ``time() - x``; each with
``for:``, a severity label and templated annotations.

- Prometheus 2.42: blocks made by ``promtool tsdb create-blocks-from
  openmetrics``, the rule file in its config (``evaluation_interval: 15s``), on a
  loopback port. It evaluates at wall-clock time; since the data ends at the
  start of the run, it sees the same "recent hour" watchkeeper sees (the
  newest sample some seconds to a minute old: inside the 5 min lookback).
  After a warm-up, CPU per cycle = its ``process_cpu_seconds_total`` delta over
  a window / the group iterations in that window (so it includes everything
  the process does meanwhile: GC, head maintenance), beside its summed
  ``prometheus_rule_group_last_duration_seconds`` (wall time of one cycle).
- watchkeeper: the same samples appended to a TSDB in a temporary data dir,
  all in the head (head_window 1 h), as a running server has them; the same
  file loaded with ``load_rule_files``; ``RuleEvaluator.evaluate_all`` at
  successive times 15 s apart, after the data end as Prometheus sees it,
  with the real AlertStore (SQLite) and event log; CPU per cycle is
  ``time.process_time()`` (the whole process: evaluation, templates, alert
  state writes, ALERTS series writes). ``evaluate_all`` evaluates every group
  at the same time, so the groups share their reads (one per metric name and
  cycle), as the server runs the groups of one interval. For comparison the
  benchmark also runs the groups one by one at staggered times (each reading
  for itself, as Prometheus schedules groups) and reports that figure too.

Run: ``.venv/bin/python benchmarks/rules.py`` (about 2.5 minutes; ``BENCH_HOSTS=20``
for a quicker, smaller run). Only loopback is used; Prometheus is stopped by PID.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

HOSTS = int(os.environ.get("BENCH_HOSTS", "100"))
RULES = int(os.environ.get("BENCH_RULES", "1000"))
CYCLES = int(os.environ.get("BENCH_CYCLES", "5"))
INTERVAL = 15
HISTORY = 3600
GROUPS = 10
DCS = ("dc1", "dc2", "dc3", "dc4")
ENVS = ("prod", "staging")
MOUNTS = ("/", "/var", "/home", "/boot")
HANDLERS = ("/api", "/login", "/static", "/health")
CODES = ("200", "404", "500")
LE = ("0.05", "0.1", "0.25", "0.5", "1", "+Inf")
MODES = ("idle", "user", "system", "iowait", "irq", "softirq", "steal", "nice")

Series = tuple[str, dict[str, str], str, float, float, float]  # name, labels, kind, start, speed, noise


def host_labels(h: int) -> dict[str, str]:
    return {"instance": f"host{h:03d}:9100", "job": "node", "dc": DCS[h % len(DCS)],
            "env": ENVS[(h // len(DCS)) % len(ENVS)]}


def make_series() -> list[Series]:
    """100 series per host. kind: 'c' counter (grows by speed per s), 'g' gauge around
    start (noise), 'd' gauge drifting by speed per s (filesystems filling)."""
    rnd = random.Random(11)
    out: list[Series] = []
    for h in range(HOSTS):
        base = host_labels(h)

        def add(name: str, kind: str, start: float, speed: float = 0.0, noise: float = 0.0,
                base: dict[str, str] = base, **extra: str) -> None:
            out.append((name, {**base, **extra}, kind, start, speed, noise))

        busy = rnd.uniform(0.05, 0.95)
        for cpu in range(4):
            for mode in MODES:
                share = {"idle": 1 - busy, "user": busy * 0.7, "system": busy * 0.2}.get(mode, busy * 0.02)
                add("node_cpu_seconds_total", "c", rnd.uniform(1e5, 1e6), share, 0.1, cpu=str(cpu), mode=mode)
        total = rnd.choice((8, 16, 32, 64)) * 2**30
        avail = total * rnd.uniform(0.02, 0.9)
        add("node_memory_MemTotal_bytes", "g", total)
        add("node_memory_MemAvailable_bytes", "g", avail, noise=0.02)
        add("node_memory_MemFree_bytes", "g", avail * 0.4, noise=0.05)
        add("node_memory_Cached_bytes", "g", avail * 0.5, noise=0.02)
        add("node_memory_Buffers_bytes", "g", avail * 0.05, noise=0.02)
        add("node_memory_SwapTotal_bytes", "g", 2 * 2**30)
        add("node_memory_SwapFree_bytes", "g", 2 * 2**30 * rnd.uniform(0.3, 1.0), noise=0.01)
        for mnt in MOUNTS:
            size = rnd.choice((10, 50, 200, 1000)) * 2**30
            fs = "ext4" if mnt != "/boot" else "vfat"
            dev = {"mountpoint": mnt, "fstype": fs, "device": f"/dev/sda{MOUNTS.index(mnt) + 1}"}
            add("node_filesystem_size_bytes", "g", size, **dev)
            add("node_filesystem_avail_bytes", "d", size * rnd.uniform(0.01, 0.8),
                -rnd.uniform(0, size * 2e-6), 0.001, **dev)
            add("node_filesystem_files", "g", 6.5e6, **dev)
            add("node_filesystem_files_free", "g", 6.5e6 * rnd.uniform(0.02, 0.99), noise=0.001, **dev)
        for dev in ("eth0", "eth1"):
            add("node_network_receive_bytes_total", "c", rnd.uniform(1e9, 1e12), rnd.uniform(1e3, 1e7), 0.3,
                device=dev)
            add("node_network_transmit_bytes_total", "c", rnd.uniform(1e9, 1e12), rnd.uniform(1e3, 1e7), 0.3,
                device=dev)
            add("node_network_receive_errs_total", "c", rnd.uniform(0, 100), rnd.choice((0, 0, 0, 0.01, 0.5)),
                0.5, device=dev)
            add("node_network_transmit_errs_total", "c", rnd.uniform(0, 100), rnd.choice((0, 0, 0, 0.01, 0.5)),
                0.5, device=dev)
        for dev in ("sda", "sdb"):
            add("node_disk_read_bytes_total", "c", rnd.uniform(1e9, 1e12), rnd.uniform(1e3, 1e8), 0.5, device=dev)
            add("node_disk_written_bytes_total", "c", rnd.uniform(1e9, 1e12), rnd.uniform(1e3, 1e8), 0.5,
                device=dev)
            add("node_disk_io_time_seconds_total", "c", rnd.uniform(1e3, 1e6), rnd.uniform(0.01, 1.0), 0.1,
                device=dev)
        load = busy * 8
        add("node_load1", "g", load, noise=0.3)
        add("node_load5", "g", load, noise=0.1)
        add("node_load15", "g", load, noise=0.05)
        add("node_procs_running", "g", load + 1, noise=0.5)
        add("node_procs_blocked", "g", rnd.uniform(0, 3), noise=0.5)
        add("node_context_switches_total", "c", rnd.uniform(1e8, 1e10), rnd.uniform(1e3, 1e5), 0.2)
        add("node_intr_total", "c", rnd.uniform(1e8, 1e10), rnd.uniform(1e3, 1e5), 0.2)
        add("node_entropy_available_bits", "g", rnd.uniform(100, 4000), noise=0.1)
        add("node_filefd_allocated", "g", rnd.uniform(1e3, 1e5), noise=0.05)
        add("node_boot_time_seconds", "g", 1.7e9 - rnd.uniform(0, 1e7))
        add("up", "g", 1.0 if rnd.random() > 0.02 else 0.0)
        err = rnd.choice((0.0, 0.001, 0.01, 0.05))
        for handler in HANDLERS:
            rps = rnd.uniform(0.1, 50)
            for code in CODES:
                share = {"200": 1 - err - 0.02, "404": 0.02, "500": err}[code]
                add("http_requests_total", "c", rnd.uniform(0, 1e6), rps * share, 0.3, handler=handler, code=code)
        rps = rnd.uniform(1, 50)
        slow = rnd.uniform(0.5, 1.0)
        for i, le in enumerate(LE):
            frac = 1.0 if le == "+Inf" else min(1.0, (i + 1) / len(LE) * slow + 0.1)
            add("http_request_duration_seconds_bucket", "c", 1e5 * frac, rps * frac, 0.0, le=le)
        add("http_request_duration_seconds_sum", "c", 1e4, rps * 0.2, 0.1)
        add("http_request_duration_seconds_count", "c", 1e5, rps, 0.0)
    return out


def samples_of(series: list[Series], end_ms: int) -> list[tuple[int, list[tuple[int, float]]]]:
    """Per series, its (ms, value) samples over the hour up to ``end_ms``; each host scrapes
    with its own offset, as real scrapes do."""
    rnd = random.Random(12)
    n = HISTORY // INTERVAL
    out = []
    for k, (_, labels, kind, start, speed, noise) in enumerate(series):
        jitter = (int(labels["instance"][4:7]) * 97) % (INTERVAL * 1000)
        first = end_ms - (n - 1) * INTERVAL * 1000 - jitter
        v = start
        pts = []
        for i in range(n):
            t = first + i * INTERVAL * 1000
            if kind == "c":
                v += max(0.0, speed * INTERVAL * (1 + rnd.uniform(-noise, noise)))
                val = round(v, 3)
            elif kind == "d":
                v += speed * INTERVAL
                val = round(max(0.0, v * (1 + rnd.uniform(-noise, noise))), 1)
            else:
                val = round(start * (1 + rnd.uniform(-noise, noise)), 6) if noise else start
            pts.append((t, val))
        out.append((k, pts))
    return out


def _sel(**m: str) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in m.items()) + "}"


def make_rules(rnd: random.Random) -> list[dict[str, Any]]:
    """RULES distinct alerting rules: (alert, expr, for, severity, summary)."""
    def scope() -> dict[str, str]:
        r = rnd.random()
        if r < 0.35:
            return {"dc": rnd.choice(DCS)}
        if r < 0.55:
            return {"dc": rnd.choice(DCS), "env": rnd.choice(ENVS)}
        if r < 0.85:
            return {"instance": f"host{rnd.randrange(HOSTS):03d}:9100"}
        return {"env": rnd.choice(ENVS)}

    def hostloadhigh(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((2, 3, 4, 5, 6))
        return "HostLoadHigh", f"node_load5{_sel(**s)} > {x}", "load {{ $value | printf \"%.2f\" }} on {{ $labels.instance }}"

    def cpu(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((50, 70, 80, 90))
        return ("HostCpuBusy",
                f'100 * (1 - avg by (instance) (rate(node_cpu_seconds_total{_sel(mode="idle", **s)}[5m]))) > {x}',
                "CPU {{ $value | humanize }}% busy on {{ $labels.instance }}")

    def memory(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((5, 10, 15, 20))
        return ("HostMemoryLow",
                f"node_memory_MemAvailable_bytes{_sel(**s)} / node_memory_MemTotal_bytes{_sel(**s)} * 100 < {x}",
                "{{ $labels.instance }}: {{ $value | humanize }}% memory available")

    def swap(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((50, 70, 90))
        return ("HostSwapUsed",
                f"(1 - node_memory_SwapFree_bytes{_sel(**s)} / node_memory_SwapTotal_bytes{_sel(**s)}) * 100 > {x}",
                "swap {{ $value | humanize }}% used on {{ $labels.instance }}")

    def disk(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((5, 10, 20))
        m = rnd.choice(MOUNTS)
        return ("HostDiskSpaceLow",
                f"node_filesystem_avail_bytes{_sel(mountpoint=m, **s)} / node_filesystem_size_bytes"
                f"{_sel(mountpoint=m, **s)} * 100 < {x}",
                "{{ $labels.mountpoint }} on {{ $labels.instance }} has {{ $value | humanize }}% left")

    def fills(s: dict[str, str]) -> tuple[str, str, str]:
        h = rnd.choice((4, 12, 24))
        m = rnd.choice(MOUNTS)
        return ("HostDiskWillFill",
                f"predict_linear(node_filesystem_avail_bytes{_sel(mountpoint=m, **s)}[1h], {h} * 3600) < 0",
                f"{{{{ $labels.mountpoint }}}} on {{{{ $labels.instance }}}} fills within {h}h")

    def inodes(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((0.05, 0.1))
        return ("HostInodesLow",
                f"node_filesystem_files_free{_sel(**s)} / on(instance, device, mountpoint) "
                f"node_filesystem_files{_sel(**s)} < {x}",
                "{{ $labels.mountpoint }}: {{ $value | humanizePercentage }} inodes free")

    def net_errors(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((0.01, 0.1, 0.3))
        d = rnd.choice(("receive", "transmit"))
        return (f"HostNetwork{d.title()}Errors", f"rate(node_network_{d}_errs_total{_sel(**s)}[5m]) > {x}",
                "{{ $labels.device }} on {{ $labels.instance }}: {{ $value | humanize }} errors/s")

    def net_increase(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((5, 50, 100))
        return ("HostNetworkErrorBurst", f"increase(node_network_receive_errs_total{_sel(**s)}[15m]) > {x}",
                "{{ $value | humanize }} receive errors in 15m")

    def disk_io(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((0.5, 0.8, 0.9))
        return ("HostDiskBusy", f"rate(node_disk_io_time_seconds_total{_sel(**s)}[5m]) > {x}",
                "{{ $labels.device }} busy {{ $value | humanizePercentage }}")

    def http_errors(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((0.005, 0.01, 0.02, 0.05))
        return ("HttpErrorRateHigh",
                f'sum by (instance) (rate(http_requests_total{_sel(code="500", **s)}[5m])) / on(instance) '
                f"sum by (instance) (rate(http_requests_total{_sel(**s)}[5m])) > {x}",
                "{{ $labels.instance }}: {{ $value | humanizePercentage }} of requests fail")

    def http_latency(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((0.25, 0.5, 1))
        q = rnd.choice((0.9, 0.99))
        return ("HttpLatencyHigh",
                f"histogram_quantile({q}, sum by (le, instance) "
                f"(rate(http_request_duration_seconds_bucket{_sel(**s)}[5m]))) > {x}",
                f"p{int(q * 100)} latency {{{{ $value | humanizeDuration }}}} on {{{{ $labels.instance }}}}")

    def traffic(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((1, 10, 100))
        key = next(iter(s))
        return ("HttpTrafficLow", f"sum by ({key}) (rate(http_requests_total{_sel(**s)}[5m])) < {x}",
                f"traffic {{{{ $value | humanize }}}} req/s in {{{{ $labels.{key} }}}}")

    def down(s: dict[str, str]) -> tuple[str, str, str]:
        return "InstanceDown", f"up{_sel(**s)} == 0", "{{ $labels.instance }} is down"

    def absent(s: dict[str, str]) -> tuple[str, str, str]:
        m = rnd.choice(("up", "node_load1", "node_memory_MemTotal_bytes"))
        return "MetricAbsent", f"absent({m}{_sel(**s)})", f"{m} is missing"

    def blocked(s: dict[str, str]) -> tuple[str, str, str]:
        x = rnd.choice((1, 2, 3))
        return ("HostProcsBlocked", f"avg_over_time(node_procs_blocked{_sel(**s)}[10m]) > {x}",
                "{{ $value | humanize }} blocked processes")

    def rebooted(s: dict[str, str]) -> tuple[str, str, str]:
        return ("HostRebooted", f"time() - node_boot_time_seconds{_sel(**s)} < 600",
                "{{ $labels.instance }} rebooted {{ $value | humanizeDuration }} ago")

    forms = [(hostloadhigh, 8), (cpu, 8), (memory, 8), (swap, 4), (disk, 10), (fills, 8), (inodes, 4),
             (net_errors, 6), (net_increase, 3), (disk_io, 5), (http_errors, 8), (http_latency, 5),
             (traffic, 3), (down, 6), (absent, 4), (blocked, 2), (rebooted, 2)]
    funcs = [f for f, _ in forms]
    weights = [w for _, w in forms]
    seen: set[str] = set()
    out = []
    while len(out) < RULES:
        name, expr, summary = rnd.choices(funcs, weights)[0](scope())
        if expr in seen:
            continue
        seen.add(expr)
        out.append({"alert": name, "expr": expr, "for": rnd.choice(("0s", "1m", "5m", "15m")),
                    "severity": rnd.choice(("warning", "critical")), "summary": summary})
    return out


def rule_file(rules: list[dict[str, Any]]) -> str:
    per = -(-len(rules) // GROUPS)
    lines = ["groups:"]
    for g in range(GROUPS):
        part = rules[g * per:(g + 1) * per]
        if not part:
            break
        lines += [f"  - name: bench-{g}", f"    interval: {INTERVAL}s", "    rules:"]
        for n, r in enumerate(part):
            expr = r["expr"].replace("'", "''")
            summary = r["summary"].replace("'", "''")
            lines += [f"      - alert: {r['alert']}", f"        expr: '{expr}'", f"        for: {r['for']}",
                      "        labels:", f"          severity: {r['severity']}", f"          rule: r{g}-{n}",
                      "          team: '{{ $labels.dc }}-ops'", "        annotations:",
                      f"          summary: '{summary}'",
                      "          description: 'value {{ $value }} at {{ $labels.instance }}'"]
    return "\n".join(lines) + "\n"


def write_openmetrics(path: Path, series: list[Series], data: list[tuple[int, list[tuple[int, float]]]]) -> int:
    total = 0
    by_name: dict[str, list[int]] = {}
    for k, s in enumerate(series):
        by_name.setdefault(s[0], []).append(k)
    with open(path, "w", encoding="utf-8") as f:
        for name, members in by_name.items():
            f.write(f"# TYPE {name} gauge\n")  # every type reads the same in PromQL
            for k in members:
                lab = ",".join(f'{a}="{b}"' for a, b in sorted(series[k][1].items()))
                f.writelines(f"{name}{{{lab}}} {v!r} {t / 1000:.3f}\n" for t, v in data[k][1])
                total += len(data[k][1])
        f.write("# EOF\n")
    return total


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _metric(text: str, name: str) -> float:
    """Sum of every sample of ``name`` in an exposition text."""
    total = 0.0
    pat = re.compile(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$")
    for line in text.splitlines():
        m = pat.match(line)
        if m:
            total += float(m.group(1))
    return total


class PromRun:
    """A Prometheus process evaluating the rule file; stopped by PID."""

    def __init__(self, root: Path, blocks: Path, rules: Path) -> None:
        cfg = root / "prometheus.yml"
        cfg.write_text(f"global:\n  scrape_interval: 1h\n  evaluation_interval: {INTERVAL}s\n"
                       f"rule_files:\n  - {rules}\n")
        self.port = _free_port()
        self.log = open(root / "prometheus.log", "wb")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={blocks}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--storage.tsdb.retention.time=100y"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client.get("/-/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("prometheus did not become ready")
            time.sleep(0.1)

    def metrics(self) -> str:
        r = self.client.get("/metrics")
        r.raise_for_status()
        return r.text

    def alert_counts(self) -> dict[str, int]:
        r = self.client.get("/api/v1/query", params={"query": "count by (alertstate) (ALERTS)"})
        r.raise_for_status()
        return {s["metric"]["alertstate"]: int(s["value"][1]) for s in r.json()["data"]["result"]}

    def rule_health(self) -> tuple[int, list[str]]:
        r = self.client.get("/api/v1/rules")
        r.raise_for_status()
        bad = [f"{rule['name']}: {rule.get('lastError', '')}" for g in r.json()["data"]["groups"]
               for rule in g["rules"] if rule["health"] != "ok"]
        return sum(len(g["rules"]) for g in r.json()["data"]["groups"]), bad

    def stop(self) -> None:
        self.client.close()
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def measure_prometheus(prom: PromRun, cycles: int) -> dict[str, float]:
    """Wait for a new round of iterations to start the window, then for ``cycles`` more."""
    groups = GROUPS

    def snapshot() -> tuple[float, float, float]:
        text = prom.metrics()
        return (_metric(text, "prometheus_rule_group_iterations_total"),
                _metric(text, "process_cpu_seconds_total"),
                _metric(text, "prometheus_rule_group_last_duration_seconds"))

    it0, cpu0, _ = snapshot()
    while True:  # start right after a round of group evaluations has finished
        time.sleep(0.5)
        it, cpu, _ = snapshot()
        if it >= it0 + groups:
            break
    it0, cpu0 = it, cpu
    durations = []
    deadline = time.monotonic() + cycles * INTERVAL + 30
    while it < it0 + cycles * groups and time.monotonic() < deadline:
        time.sleep(1.0)
        it, cpu, last = snapshot()
        durations.append(last)
    rounds = (it - it0) / groups
    return {"cpu_per_cycle": (cpu - cpu0) / rounds if rounds else float("nan"), "rounds": rounds,
            "last_duration": min(durations) if durations else float("nan")}


def run_watchkeeper(root: Path, series: list[Series], data: list[tuple[int, list[tuple[int, float]]]],
                    rules_path: Path, end: float, loaded_hook: Callable[[], None]) -> dict[str, Any]:
    """Load the store, call ``loaded_hook`` (Prometheus is measured then, while its data is
    recent), then time the cycles (on a fake clock: their times do not depend on the wall)."""
    from watchkeeper.alerting.model import AlertState
    from watchkeeper.alerting.rulefiles import load_rule_files
    from watchkeeper.alerting.rules import RuleEvaluator
    from watchkeeper.alerting.store import AlertStore
    from watchkeeper.eventlog import EventLog
    from watchkeeper.query.promql.evaluator import Evaluator
    from watchkeeper.store.engine import open_engine
    from watchkeeper.store.tsdb import TSDB
    from watchkeeper.testing.clock import FakeClock

    engine = open_engine(None, root / "wk")
    try:
        clock = FakeClock(end)
        tsdb = TSDB(engine, clock=clock)
        t0 = time.perf_counter()
        # scrape by scrape, as a server appends
        n = len(data[0][1])
        for i in range(n):
            tsdb.append_rows([(series[k][0], series[k][1], pts[i][0] / 1000, pts[i][1]) for k, pts in data])
        loaded = time.perf_counter() - t0
        ruleset = load_rule_files([rules_path])
        ruleset.raise_for_issues()
        store = AlertStore(engine, eventlog=EventLog(engine, clock=clock), clock=clock)
        rules = RuleEvaluator(Evaluator(tsdb), tsdb, store, clock, in_thread=False, ruleset=ruleset)
        print(f"watchkeeper: appended the samples in {loaded:.1f} s; {len(ruleset.rules)} rules loaded")
        loaded_hook()
        first = end + INTERVAL / 2
        clock.advance(first - clock.time())
        rules.evaluate_all(first)  # the first cycle creates every alert: not what a steady cycle costs
        cpu, wall = [], []
        for c in range(1, CYCLES + 1):
            t = first + c * INTERVAL
            clock.advance(t - clock.time())
            w0, c0 = time.perf_counter(), time.process_time()
            rules.evaluate_all(t)
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        # For comparison: each group at its own time within the interval (staggered, as
        # Prometheus schedules groups), so groups share no reads.
        last = first + CYCLES * INTERVAL
        staggered = []
        for c in range(1, CYCLES + 1):
            c0 = time.process_time()
            for i, g in enumerate(rules.groups):
                t = last + c * INTERVAL + i * INTERVAL / (len(rules.groups) + 1)
                clock.advance(t - clock.time())
                rules.runner.evaluate_group(g, t)
            staggered.append(time.process_time() - c0)
        bad = [f"{rid}: {st.last_error}" for rid, st in rules.runner.status.items() if st.health != "ok"]
        counts: dict[str, int] = {}
        for st in rules.runner.status.values():
            for a in st.alerts:
                if a.state in (AlertState.PENDING, AlertState.FIRING):
                    counts[a.state.value] = counts.get(a.state.value, 0) + 1
        return {"load": loaded, "cpu": cpu, "wall": wall, "bad": bad, "counts": counts,
                "rules": len(ruleset.rules), "staggered": staggered}
    finally:
        engine.dispose()


def main() -> int:
    if not shutil.which("prometheus") or not shutil.which("promtool"):
        print("needs the Debian package prometheus (prometheus and promtool on PATH)")
        return 1
    with tempfile.TemporaryDirectory(prefix="wk-bench-rules-") as tmp:
        root = Path(tmp)
        t0 = time.perf_counter()
        end_ms = int(time.time()) * 1000  # the data's end is "now" at the start of the run
        series = make_series()
        data = samples_of(series, end_ms)
        rules_path = root / "rules.yml"
        rules_path.write_text(rule_file(make_rules(random.Random(13))))
        om = root / "data.om"
        n = write_openmetrics(om, series, data)
        print(f"data: {len(series):,} series, {n:,} samples over {HISTORY // 60} min; "
              f"{RULES} alerting rules in {GROUPS} groups of one file (generated in "
              f"{time.perf_counter() - t0:.1f} s)")
        t = time.perf_counter()
        subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", str(om), str(root / "prom")],
                       check=True, capture_output=True, timeout=120)
        print(f"prometheus: promtool created blocks in {time.perf_counter() - t:.1f} s")
        prom = PromRun(root, root / "prom", rules_path)
        try:
            prom.wait_ready()
            # Prometheus warms up (its first cycles) while watchkeeper loads its store.
            measured: dict[str, Any] = {}

            def measure() -> None:
                measured["p"] = measure_prometheus(prom, min(CYCLES, 4))
                measured["counts"] = prom.alert_counts()
                measured["health"] = prom.rule_health()

            wk = run_watchkeeper(root, series, data, rules_path, end_ms / 1000, measure)
            del data
            p, prom_counts = measured["p"], measured["counts"]
            prom_rules, prom_bad = measured["health"]
        finally:
            prom.stop()
    w = sorted(wk["cpu"])[len(wk["cpu"]) // 2]
    ww = sorted(wk["wall"])[len(wk["wall"]) // 2]
    pc = p["cpu_per_cycle"]
    print(f"\n{RULES} alerting rules over {len(series):,} series, one evaluation cycle every {INTERVAL} s")
    print(f"  watchkeeper: CPU {w * 1000:.0f} ms per cycle (median of {CYCLES}; "
          f"min {min(wk['cpu']) * 1000:.0f}, max {max(wk['cpu']) * 1000:.0f}), wall {ww * 1000:.0f} ms; "
          f"alerts {wk['counts']}; rules with errors: {len(wk['bad'])}")
    for line in wk["bad"][:5]:
        print(f"    {line}")
    print(f"  prometheus:  CPU {pc * 1000:.0f} ms per cycle (process CPU over {p['rounds']:.0f} cycles), "
          f"summed rule group duration {p['last_duration'] * 1000:.0f} ms; alerts {prom_counts}; "
          f"{prom_rules} rules, with errors: {len(prom_bad)}")
    for line in prom_bad[:5]:
        print(f"    {line}")
    ws = sorted(wk["staggered"])[len(wk["staggered"]) // 2]
    print(f"  watchkeeper, groups staggered one by one (as Prometheus schedules them; no shared reads): "
          f"CPU {ws * 1000:.0f} ms per cycle (median of {CYCLES})")
    print(f"  ratio watchkeeper/prometheus CPU per cycle: {w / pc:.1f}x "
          f"(groups staggered: {ws / pc:.1f}x)")
    share = w / INTERVAL
    print(f"  watchkeeper uses {share:.1%} of one core at a {INTERVAL} s interval: "
          f"{'< 1 core: OK' if share < 1 else 'MISSED (>= 1 core)'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
