"""From a failure to the webhook receiving the alert: watchkeeper vs Prometheus + Alertmanager.

One loopback "service" exposes ``demo_up 1`` on /metrics and answers /health with
200; flipping it makes /metrics say ``demo_up 0`` and /health answer 500. Then,
in one run:

* watchkeeper, check path: an ``http`` check on /health every 1 s with
  ``alert: {after: 1}``, routed with ``group_wait: 0s`` to a webhook;
* watchkeeper, rule path: a ``scrape`` check of /metrics every 1 s and the rule
  ``demo_up == 0`` evaluated every 1 s;
* Prometheus 2.42 scraping /metrics every 1 s with the same rule every 1 s,
  sending to Alertmanager 0.25 with ``group_wait: 0s`` and the same webhook.

Each is measured ROUNDS times from the flip to the webhook's POST. Loopback
only; every process is stopped by its PID.

    .venv/bin/python benchmarks/alert_latency.py [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Service:
    """The watched service: healthy until flipped."""

    def __init__(self) -> None:
        self.healthy = True
        svc = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.startswith("/metrics"):
                    body = f"# TYPE demo_up gauge\ndemo_up {1 if svc.healthy else 0}\n".encode()
                    code = 200
                else:
                    body, code = (b"ok", 200) if svc.healthy else (b"down", 500)
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


class Hook:
    """The webhook: records (arrival time, alertname, status) of each alert posted."""

    def __init__(self) -> None:
        self.events: list[tuple[float, str, str]] = []
        hook = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                now = time.time()
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                for a in body.get("alerts", []):
                    hook.events.append((now, a["labels"].get("alertname", ""), a["status"]))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, name: str, status: str, after: float, timeout: float = 30.0) -> float | None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            for t, n, s in list(self.events):
                if n == name and s == status and t >= after:
                    return t
            time.sleep(0.005)
        return None


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


RULE = """groups:
  - name: demo
    interval: 1s
    rules:
      - alert: DemoDown
        expr: demo_up == 0
"""


def measure(svc: Service, hook: Hook, names: list[str], rounds: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        time.sleep(1.5)
        flipped = time.time()
        svc.healthy = False
        for n in names:
            t = hook.wait(n, "firing", flipped)
            if t is not None:
                out[n].append(t - flipped)
        svc.healthy = True
        for n in names:
            hook.wait(n, "resolved", flipped, timeout=20)
    return out


def run_watchkeeper(svc: Service, hook: Hook, tmp: Path, rounds: int) -> dict[str, list[float]]:
    port = free_port()
    (tmp / "rules.yaml").write_text(RULE)
    cfg = tmp / "watchkeeper.yaml"
    cfg.write_text(f"""
server: {{listen: "127.0.0.1:{port}", evaluation_interval: 1s}}
collectors: {{host: {{enabled: false}}}}
rules: ["rules.yaml"]
checks:
  - {{name: demo-health, type: http, url: "http://127.0.0.1:{svc.port}/health", interval: 1s,
     timeout: 900ms, jitter: 0s, alert: {{after: 1, alertname: DemoHealthFailing}}}}
  - {{name: demo-scrape, type: scrape, url: "http://127.0.0.1:{svc.port}/metrics", interval: 1s,
     timeout: 900ms, jitter: 0s}}
alerting:
  route: {{receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}
  receivers:
    - name: hook
      webhook_configs: [{{url: "http://127.0.0.1:{hook.port}/", send_resolved: true}}]
""")
    proc = subprocess.Popen([sys.executable, "-m", "watchkeeper", "up", "--config", str(cfg),
                             "--data-dir", str(tmp / "data")], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        time.sleep(3)
        return measure(svc, hook, ["DemoHealthFailing", "DemoDown"], rounds)
    finally:
        stop(proc)


def run_prometheus(svc: Service, hook: Hook, tmp: Path, rounds: int) -> dict[str, list[float]] | None:
    prom, am = shutil.which("prometheus"), shutil.which("prometheus-alertmanager")
    if not prom or not am:
        print("Prometheus or Alertmanager is not installed: only watchkeeper measured")
        return None
    am_port, am_cluster, prom_port = free_port(), free_port(), free_port()
    (tmp / "am.yml").write_text(f"""
route: {{receiver: hook, group_by: [alertname], group_wait: 0s, group_interval: 1s, repeat_interval: 1h}}
receivers:
  - name: hook
    webhook_configs: [{{url: "http://127.0.0.1:{hook.port}/", send_resolved: true}}]
""")
    (tmp / "prom-rules.yaml").write_text(RULE)
    (tmp / "prometheus.yml").write_text(f"""
global: {{scrape_interval: 1s, evaluation_interval: 1s}}
rule_files: ["{tmp / 'prom-rules.yaml'}"]
alerting:
  alertmanagers: [{{static_configs: [{{targets: ["127.0.0.1:{am_port}"]}}]}}]
scrape_configs:
  - job_name: demo
    static_configs: [{{targets: ["127.0.0.1:{svc.port}"]}}]
""")
    amp = subprocess.Popen([am, f"--config.file={tmp / 'am.yml'}", f"--storage.path={tmp / 'am'}",
                            f"--web.listen-address=127.0.0.1:{am_port}",
                            f"--cluster.listen-address=127.0.0.1:{am_cluster}"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pp = subprocess.Popen([prom, f"--config.file={tmp / 'prometheus.yml'}",
                           f"--storage.tsdb.path={tmp / 'prom'}",
                           f"--web.listen-address=127.0.0.1:{prom_port}",
                           "--rules.alert.resend-delay=1s"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_http(f"http://127.0.0.1:{am_port}/-/ready")
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready")
        time.sleep(4)
        return measure(svc, hook, ["DemoDown"], rounds)
    finally:
        stop(pp)
        stop(amp)


def summary(values: list[float]) -> str:
    if not values:
        return "no alert arrived"
    return (f"median {statistics.median(values) * 1000:.0f} ms, max {max(values) * 1000:.0f} ms "
            f"({len(values)} rounds)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()
    os.chdir(ROOT)
    svc, hook = Service(), Hook()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        (tmp / "wk").mkdir()
        (tmp / "pa").mkdir()
        wk = run_watchkeeper(svc, hook, tmp / "wk", args.rounds)
        hook.events.clear()
        pa = run_prometheus(svc, hook, tmp / "pa", args.rounds)
    print("failure -> webhook, 1 s check/scrape and evaluation intervals, group_wait 0s")
    print(f"  watchkeeper, check alert (http check):  {summary(wk['DemoHealthFailing'])}")
    print(f"  watchkeeper, rule on scraped series:    {summary(wk['DemoDown'])}")
    if pa is not None:
        print(f"  Prometheus 2.42 + Alertmanager 0.25:    {summary(pa['DemoDown'])}")
        if wk["DemoHealthFailing"] and pa["DemoDown"]:
            ratio = statistics.median(wk["DemoHealthFailing"]) / statistics.median(pa["DemoDown"])
            print(f"  ratio watchkeeper check path / Prometheus+Alertmanager: {ratio:.2f}x")
    ok = wk["DemoHealthFailing"] and max(wk["DemoHealthFailing"]) < 2.0
    print(f"  goal under 2 s: {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
