"""HTTP checks per second: watchkeeper's ``http`` check beside prometheus-blackbox-exporter.

Starts a fast loopback HTTP server in a separate process, then

1. runs N watchkeeper ``http`` checks (concurrency C, one shared httpx client passed
   as ``ctx.resources["http_client"]``, as the scheduler does), and
2. starts ``prometheus-blackbox-exporter`` on a loopback port with an ``http_2xx``
   module and sends it the same N probes (``/probe?target=...&module=http_2xx``)
   at concurrency C through httpx,

and prints checks/s, probes/s, their ratio and the CPU seconds each side used.
Everything talks to 127.0.0.1 only; the run is bounded (``--max-seconds``).

Note the blackbox side needs a driver to send it probe requests; that driver is this
Python process, and its CPU time is reported separately.

    .venv/bin/python benchmarks/http_checks.py            # 20,000 checks each side
    .venv/bin/python benchmarks/http_checks.py -n 5000 -c 50
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

BLACKBOX = "/usr/bin/prometheus-blackbox-exporter"
GOAL = 2000.0

# A tiny HTTP/1.1 keep-alive responder, run with ``python -c`` in its own process.
SERVER_CODE = r"""
import asyncio, sys
BODY = b"ok\n"
RESP = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: "
        + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)

class Responder(asyncio.Protocol):
    def connection_made(self, transport):
        self.t = transport
        self.buf = b""
    def data_received(self, data):
        self.buf += data
        n = self.buf.count(b"\r\n\r\n")
        if n:
            self.buf = self.buf[self.buf.rfind(b"\r\n\r\n") + 4:]
            self.t.write(RESP * n)

async def main():
    server = await asyncio.get_running_loop().create_server(
        Responder, "127.0.0.1", 0, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


def cpu_seconds(proc: psutil.Process) -> float:
    t = proc.cpu_times()
    return t.user + t.system


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def run_watchkeeper(base: str, n: int, concurrency: int) -> tuple[float, int]:
    """Run n http checks; return (seconds, failures)."""
    from watchkeeper.monitor.checks.http import Config, shared_client
    from watchkeeper.monitor.model import CheckContext, State

    # A realistic fleet: many distinct checks, each run in turn.
    checks = [Config.model_validate({"name": f"web{i}", "type": "http",
                                     "url": f"{base}/c/{i}"}).build()
              for i in range(min(n, 1000))]
    client = shared_client(max_connections=concurrency)
    ctx = CheckContext(timeout=10.0, resources={"http_client": client})
    failures = 0
    next_index = 0

    async def worker() -> None:
        nonlocal failures, next_index
        while next_index < n:
            i = next_index
            next_index += 1
            result = await checks[i % len(checks)].run(ctx)
            if result.state is not State.OK:
                failures += 1

    try:
        started = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(concurrency):
                tg.create_task(worker())
        return time.perf_counter() - started, failures
    finally:
        await client.aclose()


async def run_blackbox(bb_port: int, target: str, n: int, concurrency: int) -> tuple[float, int]:
    """Send n probes to blackbox_exporter; return (seconds, failures)."""
    from watchkeeper.monitor.checks._http_transport import ShardedTransport

    # The driver uses the same sharded pools as watchkeeper, so it is not the bottleneck
    # that one large httpcore pool would be.
    transport = ShardedTransport(max_connections=concurrency)
    url = f"http://127.0.0.1:{bb_port}/probe"
    params = {"target": target, "module": "http_2xx"}
    failures = 0
    next_index = 0
    async with httpx.AsyncClient(transport=transport, timeout=10.0, trust_env=False) as client:
        async def worker() -> None:
            nonlocal failures, next_index
            while next_index < n:
                next_index += 1
                r = await client.get(url, params=params)
                if r.status_code != 200 or "\nprobe_success 1" not in r.text:
                    failures += 1

        started = time.perf_counter()
        async with asyncio.TaskGroup() as tg:
            for _ in range(concurrency):
                tg.create_task(worker())
        return time.perf_counter() - started, failures


def wait_for_port(port: int, deadline: float) -> None:
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"blackbox_exporter did not listen on 127.0.0.1:{port}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--checks", type=int, default=20_000, help="checks per side")
    parser.add_argument("-c", "--concurrency", type=int, default=100)
    parser.add_argument("--max-seconds", type=float, default=110.0,
                        help="give up after this long in total")
    parser.add_argument("--profile", action="store_true",
                        help="profile the watchkeeper side with cProfile and print the top")
    args = parser.parse_args()
    if not Path(BLACKBOX).exists():
        print(f"{BLACKBOX} not found: apt install prometheus-blackbox-exporter", file=sys.stderr)
        return 2

    me = psutil.Process()
    server = subprocess.Popen([sys.executable, "-c", SERVER_CODE], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    bb: subprocess.Popen[bytes] | None = None
    try:
        assert server.stdout is not None
        port = int(server.stdout.readline())
        base = f"http://127.0.0.1:{port}"
        server_ps = psutil.Process(server.pid)

        # --- watchkeeper
        srv0, me0 = cpu_seconds(server_ps), cpu_seconds(me)
        if args.profile:
            import cProfile
            import pstats

            prof = cProfile.Profile()
            prof.enable()
        wk_seconds, wk_fail = asyncio.run(asyncio.wait_for(
            run_watchkeeper(base, args.checks, args.concurrency), args.max_seconds / 2))
        if args.profile:
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
        wk_cpu, wk_srv_cpu = cpu_seconds(me) - me0, cpu_seconds(server_ps) - srv0

        # --- blackbox_exporter
        with tempfile.TemporaryDirectory() as tmp:
            cfg = Path(tmp) / "blackbox.yml"
            cfg.write_text("modules:\n  http_2xx:\n    prober: http\n    timeout: 10s\n"
                           "    http:\n      preferred_ip_protocol: ip4\n")
            bb_port = free_port()
            bb = subprocess.Popen(
                [BLACKBOX, f"--config.file={cfg}", f"--web.listen-address=127.0.0.1:{bb_port}",
                 "--log.level=error"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            wait_for_port(bb_port, time.monotonic() + 10)
            bb_ps = psutil.Process(bb.pid)
            bb0, srv0, me0 = cpu_seconds(bb_ps), cpu_seconds(server_ps), cpu_seconds(me)
            bb_seconds, bb_fail = asyncio.run(asyncio.wait_for(
                run_blackbox(bb_port, base + "/", args.checks, args.concurrency),
                args.max_seconds / 2))
            bb_cpu = cpu_seconds(bb_ps) - bb0
            bb_srv_cpu = cpu_seconds(server_ps) - srv0
            driver_cpu = cpu_seconds(me) - me0
    finally:
        for proc in (bb, server):
            if proc is not None and proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        if server.stdin:
            server.stdin.close()
        if server.stdout:
            server.stdout.close()

    n = args.checks
    wk_rate, bb_rate = n / wk_seconds, n / bb_seconds
    print(f"HTTP checks, n={n}, concurrency={args.concurrency}, {os.cpu_count()} CPUs, "
          f"target server: python asyncio in its own process")
    print(f"  watchkeeper http check : {wk_rate:9.0f} checks/s  ({wk_seconds:.2f} s, "
          f"{wk_fail} failed)  cpu {wk_cpu:.2f} s watchkeeper + {wk_srv_cpu:.2f} s target")
    print(f"  blackbox_exporter      : {bb_rate:9.0f} probes/s  ({bb_seconds:.2f} s, "
          f"{bb_fail} failed)  cpu {bb_cpu:.2f} s exporter + {driver_cpu:.2f} s python driver "
          f"+ {bb_srv_cpu:.2f} s target")
    print(f"  ratio watchkeeper / blackbox_exporter: {wk_rate / bb_rate:.2f}x throughput, "
          f"cpu per check {wk_cpu / n * 1e6:.0f} us vs {bb_cpu / n * 1e6:.0f} us (exporter only)")
    print(f"  goal >= {GOAL:.0f} checks/s: {'met' if wk_rate >= GOAL else 'NOT met'}")
    return 0 if wk_fail == 0 and bb_fail == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
