"""CPU cost of one host collection: watchkeeper's HostCollector vs prometheus-node-exporter.

In one run: start node_exporter (default collectors) on a loopback port, scrape it K
times and read its CPU seconds (user+system, via psutil) before and after; then run
K HostCollector.collect() calls in this process, each rendered to text with
render_text (node_exporter's cost includes rendering), and read process_time()
before and after (all threads of this process, so the statvfs worker counts too).

    .venv/bin/python benchmarks/collector_overhead.py [-k 200]

Only loopback traffic; bounded to well under two minutes.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import time

import httpx
import psutil

from watchkeeper.monitor.collectors.host import HostCollector
from watchkeeper.monitor.exposition import parse_text, render_text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_exporter_cost(k: int) -> tuple[float, int]:
    """CPU seconds node_exporter spent over k scrapes, and the series of one scrape."""
    exe = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
    if exe is None:
        sys.exit("prometheus-node-exporter is not installed (apt-get install "
                 "prometheus-node-exporter)")
    port = _free_port()
    proc = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    # identity encoding: compare collecting + rendering, not gzip (we do not compress here)
    headers = {"Accept-Encoding": "identity"}
    try:
        with httpx.Client(headers=headers) as client:
            deadline = time.monotonic() + 15
            while True:
                try:
                    client.get(url, timeout=5)
                    break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        sys.exit("node_exporter did not start")
                    time.sleep(0.05)
            for _ in range(5):  # warm up
                body = client.get(url, timeout=10).text
            ps = psutil.Process(proc.pid)
            before = ps.cpu_times()
            for _ in range(k):
                body = client.get(url, timeout=10).text
            after = ps.cpu_times()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    cpu = (after.user - before.user) + (after.system - before.system)
    return cpu, len(parse_text(body))


def watchkeeper_cost(k: int) -> tuple[float, int]:
    """CPU seconds this process spent on k collect()+render_text rounds, and series count."""
    collector = HostCollector()

    async def run() -> tuple[float, int]:
        for _ in range(5):  # warm up (first round reads mounts, uname)
            render_text(await collector.collect())
        start = time.process_time()
        n = 0
        for _ in range(k):
            samples = await collector.collect()
            render_text(samples)
            n = len(samples)
        return time.process_time() - start, n

    try:
        return asyncio.run(run())
    finally:
        collector.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-k", type=int, default=200, help="collections on each side")
    args = parser.parse_args()
    k = args.k
    ne_cpu, ne_series = node_exporter_cost(k)
    wk_cpu, wk_series = watchkeeper_cost(k)
    ne_ms, wk_ms = ne_cpu / k * 1000, wk_cpu / k * 1000
    print(f"collections: {k} each, {psutil.cpu_count()} CPUs")
    print(f"node_exporter  {ne_ms:7.3f} ms CPU per scrape       {ne_series:5d} series "
          f"({ne_ms / ne_series * 1000:.2f} us/series)")
    print(f"watchkeeper    {wk_ms:7.3f} ms CPU per collect+render {wk_series:5d} series "
          f"({wk_ms / wk_series * 1000:.2f} us/series)")
    print(f"ratio watchkeeper/node_exporter per collection: {wk_ms / ne_ms:.2f}")
    print("note: CPU time is sampled at clock-tick resolution (10 ms), so totals over "
          f"{k} rounds are accurate to about +-{10 / k:.2f} ms per round")


if __name__ == "__main__":
    main()
