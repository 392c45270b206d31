"""The run engine against real local processes (LocalExecutor): steps, controls, strategies,
check mode, approvals, cancel, child runs. SSH fleets are in test_engine_ssh.py."""

from __future__ import annotations

import asyncio
import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.automation.engine import RunEngine, target_pattern
from watchkeeper.automation.executors.local import LocalExecutor
from watchkeeper.automation.hosts import Host
from watchkeeper.automation.runbook import ParamError, RunbookLibrary, load_runbook
from watchkeeper.automation.runs import RunStore
from watchkeeper.eventlog import EventLog
from watchkeeper.monitor.checks.file import Config as FileCheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult
from watchkeeper.store.engine import open_engine
from watchkeeper.testing.clock import FakeClock

LOCAL = Host(name="localhost", connection="local")


def local_hosts(n: int) -> list[Host]:
    return [Host(name=f"node{i}", connection="local", vars={"idx": i}) for i in range(1, n + 1)]


@pytest.fixture
def db(tmp_path: Path) -> Any:
    engine = open_engine(None, tmp_path / "data")
    yield engine
    engine.dispose()


@pytest.fixture
def eventlog(db: Any) -> EventLog:
    return EventLog(db)


@pytest.fixture
def store(db: Any, eventlog: EventLog) -> RunStore:
    return RunStore(db, FakeClock(), eventlog=eventlog, poll_interval=0.05)


@pytest.fixture
async def engine(store: RunStore) -> Any:
    ex = LocalExecutor()
    yield RunEngine(ex, store, FakeClock(autojump=True))
    await ex.close()


def write_runbook(tmp_path: Path, text: str, name: str = "rb.yaml") -> Path:
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


async def test_param_value_cannot_inject_a_command(tmp_path: Path, engine: RunEngine) -> None:
    pwned = tmp_path / "pwned"
    rb = load_runbook(write_runbook(tmp_path, """
        name: echo
        params:
          x: {type: string, required: true}
        steps:
          - name: say
            run: echo {{ params.x }}
    """))
    value = f"x; touch {pwned}"
    for evil in (value, f"$(touch {pwned})", f"`touch {pwned}`", f"'; touch {pwned}; '"):
        rec = await engine.run(rb, {"x": evil}, [LOCAL])
        assert rec.status == "ok"
        step = rec.steps_for("localhost")[0]
        assert step.stdout == evil + "\n"
        assert not pwned.exists()
    assert step.command.startswith("echo '")


async def test_retries_when_register_and_changed_when(tmp_path: Path, engine: RunEngine,
                                                      store: RunStore) -> None:
    counter = tmp_path / "count"
    rb = load_runbook(write_runbook(tmp_path, f"""
        name: flaky
        params:
          force: {{type: bool, default: false}}
        steps:
          - name: flaky
            run: n=$(cat {counter} 2>/dev/null || echo 0); n=$((n+1)); echo $n > {counter}; [ $n -ge 3 ]
            retries: 3
            delay: 2s
          - name: read
            run: cat {counter}
            register: count
            changed_when: false
          - name: only when forced
            run: echo forced
            when: params.force
          - name: uses registered
            run: echo got {{{{ steps.count.stdout | trim }}}}
            when: steps.count.stdout | int == 3
          - name: not an error
            run: exit 3
            failed_when: result.rc not in [0, 3]
    """))
    rec = await engine.run(rb, {}, [LOCAL])
    assert rec.status == "ok", rec.to_dict()
    steps = {s.step: s for s in rec.steps_for("localhost")}
    assert steps["flaky"].status == "ok"
    assert "succeeded on attempt 3 of 4" in steps["flaky"].detail
    assert steps["read"].changed is False and steps["read"].stdout == "3\n"
    assert steps["only when forced"].status == "skipped"
    assert steps["uses registered"].stdout == "got 3\n"
    assert steps["not an error"].status == "ok" and steps["not an error"].exit_code == 3
    assert rec.hosts == {"localhost": "ok"}


async def test_failure_runs_on_failure_and_skips_verify(tmp_path: Path, engine: RunEngine) -> None:
    rb = load_runbook(write_runbook(tmp_path, """
        name: breaks
        steps:
          - name: ok first
            run: echo one
          - name: ignored
            run: exit 4
            ignore_errors: true
          - name: breaks
            run: echo boom >&2; exit 7
          - name: never
            run: echo never
        verify:
          - name: verify
            run: echo verify
        on_failure:
          - name: report
            run: echo "failed {{ failure.step }} rc={{ failure.exit_code }} {{ failure.stderr | trim }}"
    """))
    rec = await engine.run(rb, {}, [LOCAL])
    assert rec.status == "failed"
    rows = [(s.phase, s.step, s.status) for s in rec.steps_for("localhost")]
    assert rows == [("steps", "ok first", "ok"), ("steps", "ignored", "failed"),
                    ("steps", "breaks", "failed"), ("on_failure", "report", "ok")]
    report = rec.steps_for("localhost")[-1]
    assert report.stdout == "failed breaks rc=7 boom\n"
    assert rec.hosts == {"localhost": "failed"}
    assert "error ignored" in rec.steps_for("localhost")[1].detail


async def test_verify_failure_triggers_on_failure(tmp_path: Path, engine: RunEngine) -> None:
    rb = load_runbook(write_runbook(tmp_path, """
        name: verify-fails
        steps: [{name: change, run: "true"}]
        verify: [{name: check it, run: "false"}]
        on_failure: [{name: rollback, run: "echo rolled back"}]
    """))
    rec = await engine.run(rb, {}, [LOCAL])
    assert [(s.phase, s.step, s.status) for s in rec.steps_for("localhost")] == [
        ("steps", "change", "ok"), ("verify", "check it", "failed"), ("on_failure", "rollback", "ok")]
    assert rec.status == "failed"


async def test_timeout_step(tmp_path: Path, store: RunStore) -> None:
    ex = LocalExecutor()
    eng = RunEngine(ex, store)
    rb = load_runbook(write_runbook(tmp_path, """
        name: slow
        steps: [{name: sleep, run: sleep 20, timeout: 300ms}]
    """))
    rec = await eng.run(rb, {}, [LOCAL])
    step = rec.steps_for("localhost")[0]
    assert step.status == "timeout" and step.exit_code is None
    assert rec.status == "failed"
    assert step.duration_seconds is not None


async def test_check_mode_runs_nothing_and_shows_copy_diff(tmp_path: Path, engine: RunEngine) -> None:
    target = tmp_path / "app.conf"
    target.write_text("port = 80\nname = old\n")
    marker = tmp_path / "ran"
    rb = load_runbook(write_runbook(tmp_path, f"""
        name: deploy
        params:
          name: {{type: string, default: "new; rm -rf /"}}
        steps:
          - name: write config
            copy:
              dest: {target}
              content: |
                port = 80
                name = {{{{ params.name }}}}
              mode: "0600"
          - name: touch
            run: touch {marker} {{{{ params.name }}}}
          - name: script
            script:
              content: "touch {marker}"
    """))
    rec = await engine.run(rb, {}, [LOCAL], check_mode=True)
    assert rec.status == "ok" and rec.check_mode
    assert not marker.exists()
    assert target.read_text() == "port = 80\nname = old\n"
    steps = {s.step: s for s in rec.steps_for("localhost")}
    assert all(s.status == "check" for s in steps.values())
    assert steps["touch"].command == f"touch {marker} 'new; rm -rf /'"
    diff = steps["write config"].detail
    assert diff.startswith("would change: content\n")
    assert "-name = old\n+name = new; rm -rf /\n" in diff
    assert "dry run" in rec.summary


async def test_copy_changes_only_when_content_differs(tmp_path: Path, engine: RunEngine) -> None:
    (tmp_path / "motd.j2").write_text("Welcome to {{ host.name }} ({{ params.env }})\n")
    dest = tmp_path / "out" / "motd"
    dest.parent.mkdir()
    rb = load_runbook(write_runbook(tmp_path, f"""
        name: motd
        params:
          env: {{type: choice, choices: [prod, staging], default: prod}}
        steps:
          - name: motd
            copy: {{dest: "{dest}", template: motd.j2, mode: "0640"}}
    """))
    first = await engine.run(rb, {}, [LOCAL])
    s1 = first.steps_for("localhost")[0]
    assert s1.status == "ok" and s1.changed and "created" in s1.detail
    assert dest.read_text() == "Welcome to localhost (prod)\n"
    assert oct(dest.stat().st_mode & 0o777) == "0o640"
    second = await engine.run(rb, {}, [LOCAL])
    s2 = second.steps_for("localhost")[0]
    assert s2.status == "ok" and not s2.changed and s2.detail == "unchanged"
    dest.chmod(0o644)
    third = await engine.run(rb, {}, [LOCAL])
    s3 = third.steps_for("localhost")[0]
    assert s3.changed and s3.detail == "mode 644 -> 640"
    assert oct(dest.stat().st_mode & 0o777) == "0o640"
    fourth = await engine.run(rb, {"env": "staging"}, [LOCAL])
    s4 = fourth.steps_for("localhost")[0]
    assert s4.changed and "-Welcome to localhost (prod)\n+Welcome to localhost (staging)\n" in s4.detail


async def test_script_step_uploads_runs_and_removes(tmp_path: Path, engine: RunEngine) -> None:
    (tmp_path / "hello.sh").write_text('echo "hello $1 from $0"\n')
    rb = load_runbook(write_runbook(tmp_path, """
        name: scripted
        params: {who: {type: string, default: "a b; c"}}
        steps:
          - name: hello
            script: {src: hello.sh, args: "{{ params.who }}"}
    """))
    rec = await engine.run(rb, {}, [LOCAL])
    step = rec.steps_for("localhost")[0]
    assert step.status == "ok", step
    assert step.stdout.startswith("hello a b; c from /tmp/.watchkeeper-")
    script_path = step.stdout.strip().split(" from ")[1]
    assert not os.path.exists(script_path)


async def test_secret_params_are_masked_everywhere(tmp_path: Path, engine: RunEngine,
                                                   eventlog: EventLog) -> None:
    rb = load_runbook(write_runbook(tmp_path, """
        name: secret
        params:
          token: {type: string, secret: true, required: true}
        steps:
          - name: use
            run: echo token={{ params.token }}
    """))
    rec = await engine.run(rb, {"token": "s3cr3t-value"}, [LOCAL])
    step = rec.steps_for("localhost")[0]
    assert rec.params == {"token": "***"}
    assert step.command == "echo token=***"
    assert step.stdout == "token=***\n"
    dumped = json.dumps([e.to_dict() for e in eventlog.list(limit=100)])
    assert "s3cr3t-value" not in dumped
    assert "s3cr3t-value" not in json.dumps(rec.to_dict())


async def test_bad_params_are_rejected_before_anything_is_recorded(tmp_path: Path, engine: RunEngine,
                                                                   store: RunStore) -> None:
    rb = load_runbook(write_runbook(tmp_path, """
        name: typed
        params:
          count: {type: int, min: 1, max: 5, required: true}
          mode: {type: choice, choices: [soft, hard], default: soft}
        steps: [{name: a, run: "true"}]
    """))
    with pytest.raises(ParamError) as err:
        await engine.run(rb, {"count": "many"}, [LOCAL])
    assert str(err.value) == "param 'count': 'many' is not a whole number >= 1 and <= 5"
    with pytest.raises(ParamError) as err:
        await engine.run(rb, {"count": 2, "mode": "hrad"}, [LOCAL])
    assert str(err.value) == "param 'mode': 'hrad' is not one of: soft, hard; did you mean 'hard'?"
    assert store.list() == []


async def test_rolling_strategy_halts_on_max_fail_percentage(tmp_path: Path, engine: RunEngine) -> None:
    order = tmp_path / "order"
    rb = load_runbook(write_runbook(tmp_path, f"""
        name: roll
        targets: all
        strategy: {{rolling: {{batch: 1, max_fail_percentage: 10}}}}
        steps:
          - name: update
            run: echo {{{{ host.name }}}} >> {order}; [ {{{{ vars.idx }}}} -ne 2 ]
        on_failure:
          - name: rollback
            run: echo rollback {{{{ host.name }}}} >> {order}
    """))
    rec = await engine.run(rb, {}, local_hosts(5))
    assert order.read_text().split("\n")[:-1] == ["node1", "node2", "rollback node2"]
    assert rec.hosts == {"node1": "ok", "node2": "failed", "node3": "skipped",
                         "node4": "skipped", "node5": "skipped"}
    assert rec.status == "failed"
    assert "rollout halted: 1 of 5 hosts failed, more than max_fail_percentage 10%" in rec.summary


async def test_rolling_percentage_batches_tolerate_failures_below_threshold(
        tmp_path: Path, engine: RunEngine) -> None:
    rb = load_runbook(write_runbook(tmp_path, """
        name: roll
        strategy: {rolling: {batch: "50%", max_fail_percentage: 50}}
        steps:
          - name: update
            run: "[ {{ vars.idx }} -ne 1 ]"
    """))
    rec = await engine.run(rb, {}, local_hosts(4))
    assert rec.hosts == {"node1": "failed", "node2": "ok", "node3": "ok", "node4": "ok"}
    assert rec.summary == "4 hosts: 3 ok, 1 failed"


async def test_parallel_runs_hosts_concurrently(tmp_path: Path, store: RunStore) -> None:
    ex = LocalExecutor()
    eng = RunEngine(ex, store)
    meet = tmp_path / "meet"
    meet.mkdir()
    # each host waits until all six have arrived: only a concurrent run can finish
    rb = load_runbook(write_runbook(tmp_path, f"""
        name: par
        strategy: parallel
        steps:
          - name: rendezvous
            run: touch {meet}/{{{{ host.name }}}}; until [ $(ls {meet} | wc -l) -ge 6 ]; do sleep 0.02; done
            timeout: 20s
    """))
    rec = await eng.run(rb, {}, local_hosts(6))
    assert rec.status == "ok", rec.to_dict()


async def _wait_status(store: RunStore, run_id: str, status: str) -> None:
    async with asyncio.timeout(10):
        while store.status(run_id) != status:
            await store.wait_change(run_id, 0.02)


APPROVAL = """
    name: guarded
    steps:
      - name: before
        run: echo before
      - name: ok to go?
        approval: {role: ops, message: "restart {{ host.name }}?", timeout: 1h}
      - name: after
        run: echo after
"""


async def test_approval_approved_continues_once_for_all_hosts(tmp_path: Path, engine: RunEngine,
                                                              store: RunStore,
                                                              eventlog: EventLog) -> None:
    rb = load_runbook(write_runbook(tmp_path, APPROVAL))
    prep = engine.prepare(rb, {}, local_hosts(3), started_by="alice")
    task = asyncio.create_task(engine.execute(prep))
    await _wait_status(store, prep.run_id, "awaiting_approval")
    with pytest.raises(Exception) as err:
        store.approve(prep.run_id, by="bob", roles={"dev"})
    assert "needs the role 'ops' to approve; bob has dev" in str(err.value)
    store.approve(prep.run_id, by="carol", comment="go", roles={"ops"})
    rec = await task
    assert rec.status == "ok", rec.to_dict()
    approvals = [s for s in rec.steps if s.host == "*"]
    assert len(approvals) == 1
    info = json.loads(approvals[0].detail)
    assert info["decision"] == "approved" and info["by"] == "carol" and info["role"] == "ops"
    assert all(s.stdout == "after\n" for s in rec.steps if s.step == "after")
    kinds = [e.kind for e in eventlog.list(kind="run.")]
    assert kinds == ["run.started", "run.approval_requested", "run.approved", "run.finished"]


async def test_approval_rejected_stops_the_run(tmp_path: Path, engine: RunEngine,
                                               store: RunStore) -> None:
    rb = load_runbook(write_runbook(tmp_path, APPROVAL))
    prep = engine.prepare(rb, {}, [LOCAL])
    task = asyncio.create_task(engine.execute(prep))
    await _wait_status(store, prep.run_id, "awaiting_approval")
    store.reject(prep.run_id, by="dave", comment="not now")
    rec = await task
    assert rec.status == "rejected"
    assert [s.step for s in rec.steps_for("localhost")] == ["before"]
    assert rec.hosts == {"localhost": "rejected"}
    with pytest.raises(Exception, match="is not waiting for an approval"):
        store.approve(prep.run_id, by="dave")


async def test_approval_times_out(tmp_path: Path, db: Any) -> None:
    clock = FakeClock()
    store = RunStore(db, clock, poll_interval=0.02)
    ex = LocalExecutor()
    eng = RunEngine(ex, store, clock)
    rb = load_runbook(write_runbook(tmp_path, APPROVAL))
    prep = eng.prepare(rb, {}, [LOCAL])
    task = asyncio.create_task(eng.execute(prep))
    await _wait_status(store, prep.run_id, "awaiting_approval")
    clock.advance(3601)
    rec = await task
    assert rec.status == "failed"
    assert rec.hosts == {"localhost": "timeout"}
    assert [s.status for s in rec.steps if s.host == "*"] == ["timeout"]


async def test_cancel_stops_a_running_command(tmp_path: Path, store: RunStore) -> None:
    ex = LocalExecutor()
    eng = RunEngine(ex, store)
    rb = load_runbook(write_runbook(tmp_path, """
        name: long
        steps: [{name: sleep, run: "echo started; sleep 30"}, {name: after, run: echo after}]
    """))
    prep = eng.prepare(rb, {}, [LOCAL])
    streaming = asyncio.Event()  # output arrives: the command runs and is being read
    task = asyncio.create_task(eng.execute(prep, on_output=lambda host, stream, text: streaming.set()))
    async with asyncio.timeout(10):
        await streaming.wait()
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    store.cancel(prep.run_id, by="erin")
    rec = await task
    assert loop.time() - t0 < 10  # not the 30 s of the command
    assert rec.status == "cancelled" and rec.summary == "cancelled by erin"
    assert [(s.step, s.status) for s in rec.steps] == [("sleep", "cancelled")]


async def test_child_runbook_is_recorded_as_child_run(tmp_path: Path, engine: RunEngine,
                                                      store: RunStore) -> None:
    write_runbook(tmp_path, """
        name: child
        params: {word: {type: string, required: true}}
        steps: [{name: say, run: "echo child {{ params.word }}"}]
    """, name="child.yaml")
    rb = load_runbook(write_runbook(tmp_path, """
        name: parent
        steps:
          - name: call
            runbook: {name: child, params: {word: "{{ host.name }}"}}
            register: sub
          - name: after
            run: echo {{ steps.sub.run_status }}
    """))
    rec = await engine.run(rb, {}, [LOCAL])
    assert rec.status == "ok"
    children = store.list(parent=rec.id)
    assert len(children) == 1 and children[0].runbook == "child" and children[0].trigger == "runbook"
    child = store.get(children[0].id)
    assert child.steps_for("localhost")[0].stdout == "child localhost\n"
    assert rec.steps_for("localhost")[1].stdout == "ok\n"
    assert children[0].id in rec.steps_for("localhost")[0].detail


class _Handler:
    """A tiny real HTTP server on 127.0.0.1 answering /ok 200 and anything else 503."""

    def __init__(self) -> None:
        self.hits = 0

    async def __call__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        line = await reader.readline()
        if not line:  # a TCP probe: connect and close
            writer.close()
            return
        while (await reader.readline()) not in (b"\r\n", b""):
            pass
        self.hits += 1
        path = line.split()[1].decode()
        code, body = (200, b'{"healthy": true}') if path == "/ok" else (503, b"down")
        writer.write(b"HTTP/1.1 %d X\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                     % (code, len(body), body))
        await writer.drain()
        writer.close()


async def test_http_and_wait_steps_against_a_real_server(tmp_path: Path, engine: RunEngine) -> None:
    handler = _Handler()
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        rb = load_runbook(write_runbook(tmp_path, f"""
            name: web
            steps:
              - name: port open
                wait: {{tcp: "127.0.0.1:{port}", timeout: 5s}}
              - name: healthy
                wait: {{http: "http://127.0.0.1:{port}/ok", timeout: 5s}}
              - name: status
                http: http://127.0.0.1:{port}/ok
                register: health
              - name: use json
                run: echo {{{{ steps.health.json.healthy }}}}
              - name: broken
                http: {{url: "http://127.0.0.1:{port}/broken", status: [200, 204]}}
        """))
        rec = await engine.run(rb, {}, [LOCAL])
    finally:
        server.close()
        await server.wait_closed()
    steps = {s.step: s for s in rec.steps_for("localhost")}
    assert steps["port open"].status == "ok"
    assert steps["healthy"].status == "ok"
    assert steps["status"].detail == "HTTP 200"
    assert steps["use json"].stdout == "true\n"
    assert steps["broken"].status == "failed" and steps["broken"].detail == "HTTP 503; wanted 200, 204"


async def test_wait_tcp_times_out_on_a_closed_port(tmp_path: Path, engine: RunEngine) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    rb = load_runbook(write_runbook(tmp_path, f"""
        name: w
        steps: [{{name: port, wait: {{tcp: "127.0.0.1:{port}", timeout: 3s, interval: 1s}}}}]
    """))
    rec = await engine.run(rb, {}, [LOCAL])
    step = rec.steps_for("localhost")[0]
    assert step.status == "timeout" and "gave up after 3s" in step.detail


async def test_check_step_uses_a_real_watchkeeper_check(tmp_path: Path, store: RunStore) -> None:
    flag = tmp_path / "healthy"
    checks = {"app-healthy": FileCheckConfig(type="file", name="app-healthy", path=str(flag)).build()}

    async def check_runner(name: str) -> CheckResult:
        return await checks[name].run(CheckContext(timeout=5))

    ex = LocalExecutor()
    eng = RunEngine(ex, store, FakeClock(autojump=True), check_runner=check_runner)
    rb = load_runbook(write_runbook(tmp_path, f"""
        name: heal
        steps:
          - name: fix
            run: touch {flag}
        verify:
          - name: app healthy
            check: app-healthy
    """))
    rec = await eng.run(rb, {}, [LOCAL])
    assert rec.status == "ok"
    verify = rec.steps_for("localhost")[-1]
    assert verify.phase == "verify" and verify.detail.startswith("OK: ")
    flag.unlink()
    rb2 = load_runbook(write_runbook(tmp_path, """
        name: verify-only
        steps: [{name: noop, run: "true"}]
        verify: [{name: app healthy, check: app-healthy, retries: 2, delay: 1s}]
    """, name="v.yaml"))
    rec2 = await eng.run(rb2, {}, [LOCAL])
    assert rec2.status == "failed"
    assert "CRITICAL" in rec2.steps_for("localhost")[-1].detail


async def test_target_pattern_renders_params(tmp_path: Path) -> None:
    rb = load_runbook(write_runbook(tmp_path, """
        name: t
        params: {hosts: {type: hosts, default: "web:!web3"}}
        targets: "{{ params.hosts }}"
        steps: [{name: a, run: "true"}]
    """))
    assert target_pattern(rb, {}) == "web:!web3"
    assert target_pattern(rb, {"hosts": "db"}) == "db"


async def test_library_finds_by_name_and_suggests(tmp_path: Path) -> None:
    write_runbook(tmp_path, """
        name: restart-service
        steps: [{name: a, run: "true"}]
    """, name="restart.yaml")
    lib = RunbookLibrary(tmp_path)
    assert lib.get("restart-service").name == "restart-service"
    assert lib.get(str(tmp_path / "restart.yaml")).name == "restart-service"
    with pytest.raises(Exception) as err:
        lib.get("restart-servce")
    assert "did you mean 'restart-service'?" in str(err.value)
