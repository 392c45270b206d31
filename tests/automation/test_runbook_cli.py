"""The CLI of runbooks and runs (cli/run_cmd.py) against a data dir, in-process and across
processes (a run waiting for approval in one process, approved from another)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from watchkeeper.auth import TokenStore
from watchkeeper.automation.runs import RunStore
from watchkeeper.cli import run_cmd
from watchkeeper.errors import WatchkeeperError
from watchkeeper.store.engine import open_engine

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "runbooks"
ROOT = Path(__file__).resolve().parents[2]

APP_SOURCE = """
import sys, typer
from watchkeeper.cli import run_cmd
app = typer.Typer()
app.command("run")(run_cmd.run)
app.add_typer(run_cmd.runbooks_app, name="runbooks")
app.add_typer(run_cmd.runs_app, name="runs")
app.command("approve")(run_cmd.approve)
app.command("reject")(run_cmd.reject)
"""


def make_app() -> typer.Typer:
    app = typer.Typer()
    app.command("run")(run_cmd.run)
    app.add_typer(run_cmd.runbooks_app, name="runbooks")
    app.add_typer(run_cmd.runs_app, name="runs")
    app.command("approve")(run_cmd.approve)
    app.command("reject")(run_cmd.reject)
    return app


@pytest.fixture
def books(tmp_path: Path) -> Path:
    d = tmp_path / "runbooks"
    d.mkdir()
    (d / "hello.yaml").write_text(textwrap.dedent("""
        name: hello
        description: Say hello
        params:
          who: {type: string, required: true}
          times: {type: int, default: 1, min: 1}
        targets: localhost
        steps:
          - name: greet
            run: for i in $(seq {{ params.times }}); do echo hello {{ params.who }}; done
          - name: conf
            copy: {dest: "%s", content: "who = {{ params.who }}\\n"}
    """ % (tmp_path / "hello.conf")))
    (d / "gated.yaml").write_text(textwrap.dedent(f"""
        name: gated
        targets: localhost
        steps:
          - name: ask
            approval: {{role: ops, message: please, timeout: 60s}}
          - name: act
            run: touch {tmp_path / "acted"}
    """))
    return d


def invoke(*args: str) -> tuple[int, str, str, BaseException | None]:
    result = CliRunner().invoke(make_app(), list(args))
    exc = result.exception if not isinstance(result.exception, SystemExit) else None
    return result.exit_code, result.stdout, result.stderr, exc


def test_run_follows_and_records(tmp_path: Path, books: Path) -> None:
    data = str(tmp_path / "data")
    code, out, err, exc = invoke("run", "hello", "-p", "who=x; touch pwned", "-p", "times=2",
                                 "--dir", str(books), "--data-dir", data, "--as", "alice")
    assert exc is None and code == 0, (out, err, exc)
    assert "localhost        greet" in err and "ok changed" in err
    assert out.startswith("ok: 1 host: 1 ok")
    assert (tmp_path / "hello.conf").read_text() == "who = x; touch pwned\n"
    assert not (Path.cwd() / "pwned").exists()
    code, out, _, _ = invoke("runs", "--json", "--data-dir", data)
    runs = json.loads(out)
    assert [(r["runbook"], r["status"], r["started_by"], r["params"]) for r in runs] == [
        ("hello", "ok", "alice", {"who": "x; touch pwned", "times": 2})]
    code, out, _, _ = invoke("runs", "show", runs[0]["id"][:8], "--data-dir", data)
    assert code == 0 and f"run {runs[0]['id']}  hello  ok" in out and "hosts: localhost=ok" in out
    code, out, _, _ = invoke("runs", "--data-dir", data)
    assert out.splitlines()[1].startswith(runs[0]["id"][:8] + "  hello")


def test_check_mode_shows_commands_and_diffs(tmp_path: Path, books: Path) -> None:
    (tmp_path / "hello.conf").write_text("who = old\n")
    code, out, err, exc = invoke("run", "hello", "-p", "who=new", "--check", "--dir", str(books),
                                 "--data-dir", str(tmp_path / "data"))
    assert exc is None and code == 0
    assert "$ for i in $(seq 1); do echo hello new; done" in err
    assert "-who = old" in err and "+who = new" in err
    assert (tmp_path / "hello.conf").read_text() == "who = old\n"
    assert out.startswith("ok: dry run, nothing was changed")


def test_json_output_and_a_failing_run(tmp_path: Path, books: Path) -> None:
    (books / "fails.yaml").write_text("name: fails\nsteps: [{name: f, run: 'echo no >&2; exit 3'}]\n")
    code, out, _, _ = invoke("run", str(books / "fails.yaml"), "--json",
                             "--data-dir", str(tmp_path / "data"))
    assert code == 1
    rec = json.loads(out)
    assert rec["status"] == "failed" and rec["steps"][0]["exit_code"] == 3
    assert rec["steps"][0]["stderr"] == "no\n"


@pytest.mark.parametrize("args, message", [
    (["run", "helo"], "no runbook named 'helo'"),
    (["run", "hello", "-p", "times=many", "-p", "who=a"],
     "param 'times': 'many' is not a whole number >= 1"),
    (["run", "hello", "-p", "who"], "-p 'who': write parameters as KEY=VALUE"),
    (["run", "hello", "-p", "who=a", "--limit", "nosuchhost"], "nosuchhost"),
])
def test_bad_input_is_a_clear_error(tmp_path: Path, books: Path, args: list[str],
                                    message: str) -> None:
    code, out, err, exc = invoke(*args, "--dir", str(books), "--data-dir", str(tmp_path / "data"))
    assert isinstance(exc, WatchkeeperError) and exc.exit_code == 2
    assert message in str(exc)
    engine = open_engine(None, tmp_path / "data")
    try:
        assert RunStore(engine).list() == []  # nothing half-run, nothing recorded
    finally:
        engine.dispose()


def test_runbooks_list_and_validate(tmp_path: Path) -> None:
    code, out, _, _ = invoke("runbooks", "--dir", str(EXAMPLES))
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == [
        "disk-cleanup", "restart-service", "rolling-update", "rotate-logs"]
    code, out, _, _ = invoke("runbooks", "validate", "--dir", str(EXAMPLES))
    assert code == 0 and out == "4 runbook files OK\n"
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nsteps:\n  - name: a\n    run: x\n    retries: many\n")
    code, _, err, _ = invoke("runbooks", "validate", str(bad))
    assert code == 2
    assert err == (f"{bad}:5: steps[0].retries: 'many': Input should be a valid integer, "
                   "unable to parse string as an integer\n")


def _spawn(args: list[str], data: Path) -> subprocess.Popen[str]:
    open_engine(None, data).dispose()  # migrate first: two processes must not race to create it
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen([sys.executable, "-c", APP_SOURCE + "\napp()\n", *args], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def _wait_for(data: Path, status: str) -> str:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        engine = open_engine(None, data, migrate_schema=False)
        try:
            runs = RunStore(engine).list()
        finally:
            engine.dispose()
        if runs and runs[0].status == status:
            return runs[0].id
        time.sleep(0.05)
    raise AssertionError(f"no run reached {status}")


@pytest.mark.parametrize("decision", ["approve", "reject"])
def test_approval_from_another_process(tmp_path: Path, books: Path, decision: str) -> None:
    data = tmp_path / "data"
    proc = _spawn(["run", "gated", "--dir", str(books), "--data-dir", str(data)], data)
    try:
        run_id = _wait_for(data, "awaiting_approval")
        engine = open_engine(None, data)
        try:  # roles come from API tokens (watchkeeper.auth), here named tokens in the data dir
            dev, _ = TokenStore(engine).create("bob", ["dev"], created_by="test")
            ops, _ = TokenStore(engine).create("carol", ["ops"], created_by="test")
        finally:
            engine.dispose()
        code, _, _, exc = invoke(decision, run_id[:8], "--data-dir", str(data), "--role", "ops")
        assert isinstance(exc, WatchkeeperError) and "roles are those of their API token" in str(exc)
        code, _, _, exc = invoke(decision, run_id[:8], "--data-dir", str(data), "--token", dev)
        assert isinstance(exc, WatchkeeperError)
        assert "needs the role 'ops'" in str(exc) and "bob has dev" in str(exc)
        code, out, _, exc = invoke(decision, run_id[:8], "--data-dir", str(data), "--token", ops,
                                   "-m", "checked")
        assert exc is None and code == 0
        verb = {"approve": "approved", "reject": "rejected"}[decision]
        assert out == f"run {run_id} (gated): {verb}\n"
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert "waiting for approval: `watchkeeper approve" in stderr
    if decision == "approve":
        assert proc.returncode == 0, stderr
        assert (tmp_path / "acted").exists()
        assert stdout.startswith("ok:")
    else:
        assert proc.returncode == 1
        assert not (tmp_path / "acted").exists()
        assert stdout.startswith("rejected:")


def test_cancel_from_another_process(tmp_path: Path, books: Path) -> None:
    started = tmp_path / "started"
    (books / "slow.yaml").write_text(f"name: slow\nsteps: [{{name: s, run: 'touch {started}; "
                                     "sleep 8'}, {name: t, run: 'true'}]\n")
    data = tmp_path / "data"
    proc = _spawn(["run", "slow", "--dir", str(books), "--data-dir", str(data)], data)
    try:
        run_id = _wait_for(data, "running")
        while not started.exists():
            time.sleep(0.02)
        code, out, _, exc = invoke("runs", "cancel", run_id, "--data-dir", str(data), "--as", "bob")
        assert exc is None and out == f"run {run_id} (slow): cancelled\n"
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1
    engine = open_engine(None, data)
    try:
        assert [s.step for s in RunStore(engine).get(run_id).steps] == ["s"]  # t never ran
    finally:
        engine.dispose()
    code, _, _, exc = invoke("runs", "cancel", run_id, "--data-dir", str(data))
    assert isinstance(exc, WatchkeeperError) and "already finished (cancelled)" in str(exc)


def test_run_list_show_against_a_running_server(tmp_path: Path, books: Path) -> None:
    from tests.e2e_helpers import free_port, server

    cfg = tmp_path / "watchkeeper.yaml"
    cfg.write_text(f"runbooks: {books}\ncollectors: {{host: {{enabled: false}}}}\n")
    data = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with server(["--config", str(cfg), "--data-dir", str(data)], port=port):
        code, out, err, exc = invoke("run", "hello", "-p", "who=srv", "--server", url,
                                     "--data-dir", str(data), "--as", "remote")
        assert isinstance(exc, WatchkeeperError) and "who acts is the name of your API token" in str(exc)
        engine = open_engine(None, data)
        try:  # who started it is the name of the API token it was started with
            remote, _ = TokenStore(engine).create("remote", [], created_by="test")
        finally:
            engine.dispose()
        code, out, err, exc = invoke("run", "hello", "-p", "who=srv", "--server", url,
                                     "--token", remote)
        assert exc is None and code == 0, (out, err, exc)
        assert "greet" in err and out.startswith("ok: 1 host: 1 ok")
        code, out, _, exc = invoke("runs", "--json", "--server", url)
        runs = json.loads(out)
        assert [(r["runbook"], r["status"], r["trigger"], r["started_by"]) for r in runs] == [
            ("hello", "ok", "api", "remote")]
        code, out, _, _ = invoke("runs", "show", runs[0]["id"], "--server", url)
        assert "hosts: localhost=ok" in out
        code, out, err, exc = invoke("run", "hello", "--server", url, "--data-dir", str(data))
        assert isinstance(exc, WatchkeeperError) and "param 'who' is required" in str(exc)
