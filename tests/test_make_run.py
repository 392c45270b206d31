"""``make run``, the README's first command: it starts watchkeeper on the embedded SQLite
default in the XDG data dir, serving host metrics on ``/metrics`` and in
``/api/v1/query_range`` within 30 s."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e_helpers import ROOT, free_port, wait_for, wait_http

pytestmark = pytest.mark.slow


def test_make_run_serves_host_metrics_within_30_seconds(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "make-run.log"
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "xdg")}  # the default data dir, here
    with open(log, "wb") as out:
        # its own session: make and the server it starts are stopped together
        proc = subprocess.Popen(["make", "--no-print-directory", "run", f"ARGS=--listen 127.0.0.1:{port}"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        # the first run may install the package into the venv first (make's stamp)
        wait_http(f"{base}/healthz", proc, timeout=300, log=log)
        started = time.monotonic()
        wait_for(lambda: "node_cpu_seconds_total{" in httpx.get(f"{base}/metrics").text, 30,
                 "host metrics on /metrics")

        def stored() -> bool:
            now = time.time()
            r = httpx.get(f"{base}/api/v1/query_range", params={
                "query": "node_memory_MemAvailable_bytes", "start": now - 60, "end": now, "step": "1s"})
            return bool(r.status_code == 200 and r.json()["data"]["result"])

        wait_for(stored, 30, "host metrics in /api/v1/query_range")
        assert time.monotonic() - started < 30
    finally:
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C, to the group this test started
        proc.wait(30)
    output = log.read_text()
    assert "INFO watchkeeper: watchkeeper stopped: everything queued is stored" in output, output
    assert "Traceback" not in output
    assert (tmp_path / "xdg" / "watchkeeper" / "watchkeeper.db").is_file()
