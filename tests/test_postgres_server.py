"""``watchkeeper up`` with ``storage.url`` naming a real PostgreSQL: checks, queries, SIGTERM,
restart with the data still there; the password (from ``${WK_DB_PASSWORD}``) in no output."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e_helpers import WATCHKEEPER, free_port, stop, wait_for, wait_http
from tests.pg import PASSWORD, USER, Cluster

pytestmark = pytest.mark.slow

CHECK = "hosts-file"


def _config(tmp_path: Path, cluster: Cluster, db: str) -> Path:
    cfg = tmp_path / "watchkeeper.yaml"
    cfg.write_text(
        "collectors: {host: {enabled: false}}\n"
        "storage:\n"
        f"  url: postgresql+psycopg://{USER}:${{WK_DB_PASSWORD}}@127.0.0.1:{cluster.port}/{db}\n"
        "checks:\n"
        f"  - {{name: {CHECK}, type: file, path: /etc/hosts, interval: 1s}}\n")
    return cfg


@contextmanager
def _up(cfg: Path, data: Path, port: int, password: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """``watchkeeper up`` with its output in ``log`` (read after it stopped)."""
    env = {**os.environ, "WK_DB_PASSWORD": password}
    with open(log, "ab") as out:
        proc = subprocess.Popen([*WATCHKEEPER, "up", "--listen", f"127.0.0.1:{port}", "--config", str(cfg),
                                 "--data-dir", str(data)], stdout=out, stderr=subprocess.STDOUT,
                                env=env, cwd=cfg.parent)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        yield proc
    finally:
        assert stop(proc, signal.SIGTERM) == 0


def _history(base: str) -> list[dict[str, Any]]:
    return list(httpx.get(f"{base}/api/v1/checks/{CHECK}").json().get("history") or [])


def _range(base: str, start: float, end: float) -> list[Any]:
    r = httpx.get(f"{base}/api/v1/query_range", params={
        "query": f'watchkeeper_check_state{{check="{CHECK}"}}', "start": start, "end": end, "step": "1s"})
    body = r.json()
    assert r.status_code == 200 and body["status"] == "success", body
    return list(body["data"]["result"])


def test_server_on_postgresql_keeps_its_data_across_a_restart(pg_cluster: Cluster, tmp_path: Path) -> None:
    db = pg_cluster.create_database()
    try:
        cfg = _config(tmp_path, pg_cluster, db)
        data, log = tmp_path / "data", tmp_path / "server.log"
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        start = time.time() - 1
        with _up(cfg, data, port, PASSWORD, log):
            history = wait_for(lambda: h if len(h := _history(base)) >= 3 else None, 30,
                               "three results of the check")
            assert history[0]["state"] == "OK"
            # a window of the 1 s query steps that holds at least two steps after the first
            # result (the first results may come less than a second apart)
            end = history[-1]["ts"] + 3.0
            time.sleep(max(0.0, end - time.time()))
            # the API shows results at once; the store gets them with the writer's next
            # flush (every second): wait until everything before ``end`` is written
            wait_for(lambda: (r := _range(base, start, end)) and len(r[0]["values"]) >= 3, 20,
                     "check samples in the store")
            time.sleep(1.5)
            first = _range(base, start, end)
            assert first[0]["metric"]["check"] == CHECK and len(first[0]["values"]) >= 3
            status = httpx.get(f"{base}/api/v1/status").json()
            assert status["store"]["database"] == (
                f"postgresql+psycopg://{USER}:***@127.0.0.1:{pg_cluster.port}/{db}")
            assert status["store"]["database_bytes"] > 0
            before = len(_history(base))
        with _up(cfg, data, port, PASSWORD, log):
            assert len(_history(base)) >= before
            assert _range(base, start, end) == first
            wait_for(lambda: len(_history(base)) > before, 30, "a result after the restart")
        env = {**os.environ, "WK_DB_PASSWORD": PASSWORD}
        verify = subprocess.run([*WATCHKEEPER, "log", "verify", "--config", str(cfg), "--data-dir", str(data)],
                                capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        output = log.read_text()
        assert f"database postgresql+psycopg://{USER}:***@127.0.0.1:{pg_cluster.port}/{db}" in output
        assert PASSWORD not in output + verify.stdout + verify.stderr
    finally:
        pg_cluster.drop_database(db)


def test_server_with_a_wrong_password_says_so_without_the_password(pg_cluster: Cluster,
                                                                   tmp_path: Path) -> None:
    wrong = "wrong-pw-31337"
    cfg = _config(tmp_path, pg_cluster, "postgres")
    proc = subprocess.run([*WATCHKEEPER, "up", "--listen", f"127.0.0.1:{free_port()}", "--config", str(cfg),
                           "--data-dir", str(tmp_path / "data")], capture_output=True, text=True,
                          env={**os.environ, "WK_DB_PASSWORD": wrong}, cwd=tmp_path, timeout=60)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output
    assert f"cannot connect to database postgresql+psycopg://{USER}:***@127.0.0.1:{pg_cluster.port}/postgres" \
        in output
    assert "password authentication failed" in output
    assert wrong not in output
