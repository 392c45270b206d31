"""The real server as a subprocess: the example config, the API, reload, SIGTERM, restart."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.e2e_helpers import ROOT, WATCHKEEPER, demo_services, free_port, server, wait_for

pytestmark = pytest.mark.slow

EXAMPLE_CHECKS = {"self-http", "self-port", "app-dns", "demo-tls", "root-disk", "load", "self-scrape"}


def _wait_checks(base: str, names: set[str], timeout: float = 40.0) -> dict[str, dict]:
    deadline = time.monotonic() + timeout
    while True:
        checks = {c["name"]: c for c in httpx.get(f"{base}/api/v1/checks").json()["checks"]}
        if all(checks.get(n, {}).get("last_run") for n in names) or time.monotonic() > deadline:
            return checks
        time.sleep(0.3)


def test_example_config_runs_every_check_and_serves_history(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    with demo_services(tmp_path) as env:
        env = {**env, "WK_LISTEN": f"127.0.0.1:{port}", "WK_PORT": str(port)}
        with server(["--config", "examples/watchkeeper.yaml", "--data-dir", str(data)], env,
                    port=port):
            checks = _wait_checks(base, EXAMPLE_CHECKS)
            assert set(checks) == EXAMPLE_CHECKS
            # each passes (a first run on a loaded CI machine may time out; the next one counts)
            want = ("self-http", "self-port", "app-dns", "demo-tls", "self-scrape", "root-disk")
            deadline = time.monotonic() + 60
            while True:
                checks = {c["name"]: c for c in httpx.get(f"{base}/api/v1/checks").json()["checks"]}
                states = {n: (c["state"], c["summary"]) for n, c in checks.items()}
                if all(states[n][0] == "OK" for n in want) or time.monotonic() > deadline:
                    break
                time.sleep(0.5)
            for name in want:
                assert states[name][0] == "OK", states
            detail = httpx.get(f"{base}/api/v1/checks/app-dns").json()
            assert detail["history"] and detail["history"][0]["state"] == "OK"
            # host metrics with node_exporter's names, in /metrics and in the store
            metrics = httpx.get(f"{base}/metrics").text
            assert "node_cpu_seconds_total{" in metrics
            assert 'watchkeeper_check_up{check="self-http"' in metrics
            def load_range() -> dict | None:  # the writer flushes every second
                now = time.time()
                r = httpx.get(f"{base}/api/v1/query_range", params={
                    "query": "node_load1", "start": now - 60, "end": now, "step": "5s"}).json()
                assert r["status"] == "success" and r["data"]["resultType"] == "matrix"
                return r if r["data"]["result"] else None

            wait_for(load_range, 20, "node_load1 in the store")
            # app-dns may have passed a moment ago (its state is stored with the next flush)
            def dns_state() -> list | None:
                r = httpx.get(f"{base}/api/v1/query",
                              params={"query": 'watchkeeper_check_state{check="app-dns"}'}).json()
                result = r["data"]["result"]
                return result if result and result[0]["value"][1] == "0" else None

            wait_for(dns_state, 20, "app-dns's OK state in the store")
            # the scrape check stored watchkeeper's own series under job/instance
            # (stored with the writer's next flush after the scrape: the API shows the check
            # as OK a moment before)
            wait_for(lambda: httpx.get(f"{base}/api/v1/series", params={
                "match[]": 'watchkeeper_build_info{job="self-scrape"}'}).json()["data"], 20,
                "the scraped series in the store")


def test_no_config_monitors_the_local_host_and_survives_restart(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    cwd = tmp_path / "empty"
    cwd.mkdir()
    with server(["--data-dir", str(data)], port=port, cwd=cwd):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = httpx.get(f"{base}/api/v1/query", params={"query": "node_memory_MemAvailable_bytes"}).json()
            if r["data"]["result"]:
                break
            time.sleep(0.5)
        assert r["data"]["result"], "host metrics did not reach the store within 30s"
        first = r["data"]["result"][0]["value"]
        assert float(first[1]) > 0
        status = httpx.get(f"{base}/api/v1/status").json()
        assert status["collector"] is True
    # SIGTERM flushed everything: the same sample is there after a restart
    with server(["--data-dir", str(data)], port=port, cwd=cwd):
        r = httpx.get(f"{base}/api/v1/query", params={"query": "node_memory_MemAvailable_bytes",
                                                      "time": first[0]}).json()
        assert r["data"]["result"][0]["value"] == first
    log = subprocess.run([*WATCHKEEPER, "log", "--data-dir", str(data), "--json"],
                         capture_output=True, text=True, cwd=cwd, check=True)
    kinds = [e["kind"] for e in json.loads(log.stdout)]
    assert kinds.count("server.started") == 2 and kinds.count("server.stopped") == 2
    verify = subprocess.run([*WATCHKEEPER, "log", "verify", "--data-dir", str(data)],
                            capture_output=True, text=True, cwd=cwd)
    assert verify.returncode == 0, verify.stderr


def test_reload_refuses_bad_config_and_keeps_running(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    cfg = tmp_path / "watchkeeper.yaml"
    good = ("collectors: {host: {enabled: false}}\n"
            "checks:\n  - {name: hosts-file, type: file, path: /etc/hosts, interval: 1s}\n")
    cfg.write_text(good)
    data = tmp_path / "data"
    with server(["--config", str(cfg), "--data-dir", str(data)], port=port) as proc:
        token = (data / "token").read_text().strip()
        auth = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{base}/api/v1/reload").status_code == 401
        cfg.write_text(good + "  - {name: bad, type: file, path: /x, interval: 0s}\n")
        r = httpx.post(f"{base}/api/v1/reload", headers=auth)
        assert r.status_code == 422
        assert r.json()["issues"] == [f'{cfg}:4: checks[1].interval: "0s" must be at least 1s']
        assert [c["name"] for c in httpx.get(f"{base}/api/v1/checks").json()["checks"]] == ["hosts-file"]
        cfg.write_text(good + "  - {name: passwd, type: file, path: /etc/passwd, interval: 1s}\n")
        r = httpx.post(f"{base}/api/v1/reload", headers=auth)
        assert r.status_code == 200, r.text
        assert r.json()["checks"] == ["hosts-file", "passwd"]
        # SIGHUP reloads too
        cfg.write_text(good)
        import signal as _signal

        proc.send_signal(_signal.SIGHUP)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            names = [c["name"] for c in httpx.get(f"{base}/api/v1/checks").json()["checks"]]
            if names == ["hosts-file"]:
                break
            time.sleep(0.2)
        assert names == ["hosts-file"]
    kinds = subprocess.run([*WATCHKEEPER, "log", "--data-dir", str(data), "--kind", "config",
                            "--json"], capture_output=True, text=True, check=True, cwd=ROOT)
    assert [e["kind"] for e in json.loads(kinds.stdout)] == [
        "config.reload_refused", "config.reloaded", "config.reloaded"]


def test_cli_check_json_and_exit_code(tmp_path: Path) -> None:
    cfg = tmp_path / "w.yaml"
    cfg.write_text("checks:\n"
                   "  - {name: ok, type: file, path: /etc/hosts}\n"
                   "  - {name: gone, type: file, path: /nonexistent/file}\n")
    out = subprocess.run([*WATCHKEEPER, "check", "--config", str(cfg), "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 2, out.stderr
    results = {r["name"]: r for r in json.loads(out.stdout)}
    assert results["ok"]["state"] == "OK" and results["gone"]["state"] == "CRITICAL"
    for r in results.values():
        assert {"name", "type", "state", "summary", "duration_seconds", "metrics"} <= set(r)
    out = subprocess.run([*WATCHKEEPER, "check", "ok", "--config", str(cfg)],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "OK" in out.stdout
    out = subprocess.run([*WATCHKEEPER, "check", "nope", "--config", str(cfg)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "no check named 'nope'" in out.stderr


def test_import_then_query_from_the_data_dir(tmp_path: Path) -> None:
    om = tmp_path / "backfill.om"
    lines = ["# TYPE temp gauge"]
    for i in range(10):
        lines.append(f'temp{{room="a"}} {20 + i} {1_700_000_000 + 60 * i}')
    lines.append("# EOF")
    om.write_text("\n".join(lines) + "\n")
    data = tmp_path / "data"
    imp = subprocess.run([*WATCHKEEPER, "import", str(om), "--data-dir", str(data)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert imp.returncode == 0, imp.stderr
    assert "imported 10 samples" in imp.stdout
    q = subprocess.run([*WATCHKEEPER, "query", 'temp{room="a"}', "--data-dir", str(data),
                        "--start", "1700000000", "--end", "1700000540", "--step", "60s", "--json"],
                       capture_output=True, text=True, cwd=tmp_path)
    assert q.returncode == 0, q.stderr
    data_obj = json.loads(q.stdout)
    assert data_obj["resultType"] == "matrix"
    assert [v[1] for v in data_obj["result"][0]["values"]] == [str(20 + i) for i in range(10)]
    bad = subprocess.run([*WATCHKEEPER, "query", 'temp{room=}', "--data-dir", str(data)],
                         capture_output=True, text=True, cwd=tmp_path)
    assert bad.returncode == 2 and "column" in bad.stderr


def test_taken_port_is_a_clear_error_not_a_traceback(tmp_path: Path) -> None:
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        out = subprocess.run([*WATCHKEEPER, "up", "--data-dir", str(tmp_path), "--listen",
                              f"127.0.0.1:{port}"], capture_output=True, text=True, cwd=tmp_path,
                             timeout=30)
    assert out.returncode == 3
    assert out.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}: Address already in use")
    assert "Traceback" not in out.stderr


def test_sigterm_exits_zero_and_flushes(tmp_path: Path) -> None:
    import signal

    port = free_port()
    data = tmp_path / "data"
    proc = subprocess.Popen([*WATCHKEEPER, "up", "--data-dir", str(data), "--listen",
                             f"127.0.0.1:{port}"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    from tests.e2e_helpers import wait_http

    wait_http(f"http://127.0.0.1:{port}/healthz", proc)
    deadline = time.monotonic() + 10
    while "node_load1 " not in httpx.get(f"http://127.0.0.1:{port}/metrics").text:
        assert time.monotonic() < deadline, "the host collector did not run"
        time.sleep(0.05)
    # collected but (most likely) not yet written by the 1 s writer: SIGTERM must flush it
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    assert proc.stdout is not None
    output = proc.stdout.read().decode()
    proc.stdout.close()
    assert "Traceback" not in output
    assert f"INFO watchkeeper: watchkeeper listening on http://127.0.0.1:{port}" in output
    assert "INFO watchkeeper: watchkeeper stopped: everything queued is stored" in output
    import sqlite3

    with sqlite3.connect(data / "watchkeeper.db") as db:
        n = db.execute("SELECT count(*) FROM samples").fetchone()[0]
        kinds = [r[0] for r in db.execute("SELECT kind FROM events ORDER BY seq")]
    db.close()
    assert n > 100  # the host collector's first tick, flushed on SIGTERM
    assert kinds == ["server.started", "server.stopped"]


def test_log_level_is_checked_and_quiets_the_start_line(tmp_path: Path) -> None:
    out = subprocess.run([*WATCHKEEPER, "up", "--data-dir", str(tmp_path), "--log-level", "loud"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=30)
    assert out.returncode == 2
    assert out.stderr.startswith("error: --log-level 'loud' is not a level; use one of debug, info, "
                                 "warning, error")
    from tests.e2e_helpers import wait_http

    port = free_port()
    proc = subprocess.Popen([*WATCHKEEPER, "up", "--data-dir", str(tmp_path / "data"), "--listen",
                             f"127.0.0.1:{port}"], cwd=tmp_path, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, env={**os.environ, "WATCHKEEPER_LOG_LEVEL": "warning"})
    assert proc.stdout is not None
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        output = proc.stdout.read().decode()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    assert "listening on" not in output and "Traceback" not in output
