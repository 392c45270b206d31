"""LocalExecutor against real subprocesses; output capture; the secret store; ad-hoc fan-out."""

from __future__ import annotations

import asyncio
import os
import stat
import time
from pathlib import Path

import pytest

from watchkeeper.automation.adhoc import Progress, run_adhoc
from watchkeeper.automation.command import Command, Masked, Quoted, Raw
from watchkeeper.automation.executors import Executors, LocalExecutor
from watchkeeper.automation.executors._capture import Capture
from watchkeeper.automation.executors._shell import BECOME_PROMPT, PID_TAG, StderrFilter
from watchkeeper.automation.hosts import Host
from watchkeeper.automation.secrets import SecretStore
from watchkeeper.errors import InputError, NotFoundError, StorageError

LOCAL = Host(name="localhost", connection="local")


async def test_ok_failed_and_streams_are_separate() -> None:
    ex = LocalExecutor()
    ok = await ex.run(LOCAL, Command.shell("echo out; echo err >&2"))
    assert (ok.status, ok.exit_code, ok.stdout, ok.stderr) == ("ok", 0, "out\n", "err\n")
    bad = await ex.run(LOCAL, Command.shell("exit 7"))
    assert (bad.status, bad.exit_code, bad.error) == ("failed", 7, None)


async def test_quoted_values_cannot_inject() -> None:
    evil = "x; echo INJECTED"
    r = await LocalExecutor().run(LOCAL, Command.of("echo", evil))
    assert r.stdout == "x; echo INJECTED\n"


async def test_env_and_stdin() -> None:
    r = await LocalExecutor().run(LOCAL, Command.shell('echo "$GREETING"; cat'),
                                  env={"GREETING": "it's me"}, stdin=b"from stdin\n")
    assert r.stdout == "it's me\nfrom stdin\n"
    with pytest.raises(ValueError, match="invalid environment variable name"):
        await LocalExecutor().run(LOCAL, Command.shell("true"), env={"A B": "x"})


async def test_timeout_kills_the_whole_process_group(tmp_path: Path) -> None:
    marker = tmp_path / "child.pid"
    cmd = Command([Raw("sleep 30 & echo $! > "), Quoted(str(marker)), Raw("; wait")])
    t0 = time.monotonic()
    r = await LocalExecutor().run(LOCAL, cmd, timeout=0.3)
    assert time.monotonic() - t0 < 5
    assert r.status == "timeout" and r.exit_code is None
    assert "did not finish within 0.3s and was killed" in (r.error or "")
    child = int(marker.read_text())
    for _ in range(50):
        if not _alive(child):
            break
        await asyncio.sleep(0.02)
    assert not _alive(child), "the background child survived the timeout"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except FileNotFoundError:
        return False
    return state != "Z"


async def test_output_cap_keeps_head_and_tail_with_a_marker() -> None:
    ex = LocalExecutor(output_cap=1000)
    r = await ex.run(LOCAL, Command.shell("printf 'HEAD'; head -c 100000 /dev/zero | tr '\\0' x; "
                                          "printf 'TAIL'"))
    assert r.truncated
    assert r.stdout.startswith("HEAD") and r.stdout.endswith("TAIL")
    assert "[... 99008 bytes truncated by watchkeeper ...]" in r.stdout
    assert len(r.stdout.encode()) < 1100


def test_capture_boundaries() -> None:
    c = Capture(10, "h", "stdout")
    for chunk in (b"0123", b"4567", b"89"):
        c.feed(chunk)
    assert (c.text(), c.truncated) == ("0123456789", False)
    c.feed(b"ABCDE")
    assert c.truncated and c.text() == "01234" + "\n[... 5 bytes truncated by watchkeeper ...]\n" + "ABCDE"


async def test_streaming_callback_gets_output_as_it_arrives() -> None:
    seen: list[tuple[str, str, str, float]] = []
    t0 = time.monotonic()
    r = await LocalExecutor().run(
        LOCAL, Command.shell("echo one; sleep 0.3; echo two >&2"),
        on_output=lambda h, s, t: seen.append((h, s, t, time.monotonic() - t0)))
    assert r.ok
    assert [(h, s, t) for h, s, t, _ in seen] == [("localhost", "stdout", "one\n"),
                                                  ("localhost", "stderr", "two\n")]
    assert seen[0][3] < 0.25 <= seen[1][3]


def test_stderr_filter_takes_out_pid_and_prompts_split_across_chunks() -> None:
    f = StderrFilter(expect_pid=True, expect_prompt=True)
    text = PID_TAG + b"4242\nwarn\n" + BECOME_PROMPT + b"after\n"
    out = b"".join(f.feed(text[i:i + 3]) for i in range(0, len(text), 3)) + f.feed(b"", final=True)
    assert (f.pid, f.prompts, out) == (4242, 1, b"warn\nafter\n")


async def test_put_writes_atomically_with_mode(tmp_path: Path) -> None:
    target = tmp_path / "sub dir" / "file.conf"
    target.parent.mkdir()
    r = await LocalExecutor().put(LOCAL, b"key = 1\n", str(target), mode=0o640)
    assert r.ok, r
    assert target.read_bytes() == b"key = 1\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert [p.name for p in target.parent.iterdir()] == ["file.conf"]
    missing = await LocalExecutor().put(LOCAL, b"x", str(tmp_path / "nope" / "f"))
    assert missing.status == "failed" and not (tmp_path / "nope").exists()


def test_secret_store_round_trip_and_file_modes(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "data")
    store.set("web-sudo", "s3cret pw")
    assert store.get("web-sudo") == "s3cret pw"
    assert store.names() == ["web-sudo"]
    assert stat.S_IMODE(store.key_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert "s3cret" not in store.path.read_text()
    assert repr(store.masked("web-sudo")) == "Masked('***')"
    assert str(Command.of("echo", store.masked("web-sudo"))) == "echo ***"
    with pytest.raises(NotFoundError, match="secret 'other' is not in the secret store"):
        store.get("other")
    with pytest.raises(InputError, match="invalid secret name"):
        store.set("bad name", "x")
    store.key_path.write_bytes(b"Zm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyZm9vYmFyMTI=\n")
    with pytest.raises(StorageError, match="cannot be decrypted") as info:
        store.get("web-sudo")
    assert "s3cret" not in str(info.value)
    store.delete("web-sudo")
    assert store.names() == []


async def test_become_password_secret_missing_is_a_clear_failure(tmp_path: Path) -> None:
    host = Host(name="localhost", connection="local", become=True, become_password_secret="nope")
    r = await LocalExecutor(secrets=SecretStore(tmp_path)).run(host, Command.shell("true"))
    assert r.status == "failed" and "secret 'nope' is not in the secret store" in (r.error or "")


async def test_adhoc_forks_limit_and_progress() -> None:
    hosts = [Host(name=f"l{i}", connection="local") for i in range(6)]
    seen: list[tuple[int, int]] = []
    running_max = 0

    def progress(p: Progress, result: object) -> None:
        nonlocal running_max
        running_max = max(running_max, len(p.running))
        seen.append((p.finished, p.remaining))

    t0 = time.monotonic()
    results = await run_adhoc(hosts, Command.shell("sleep 0.2; echo $PPID"), Executors(),
                              forks=2, on_progress=progress)
    elapsed = time.monotonic() - t0
    assert [r.host for r in results] == [h.name for h in hosts]
    assert all(r.ok for r in results)
    assert running_max == 2
    assert elapsed >= 0.55  # 6 hosts, 2 at a time, 0.2 s each
    assert seen[-1] == (6, 0)
    with pytest.raises(InputError, match="--forks must be at least 1"):
        await run_adhoc(hosts, Command.shell("true"), Executors(), forks=0)


async def test_masked_secret_reaches_the_command_but_not_the_error() -> None:
    cmd = Command([Raw("test "), Masked("hunter2"), Raw(" != '' && sleep 5")])
    r = await LocalExecutor().run(LOCAL, cmd, timeout=0.2)
    assert r.status == "timeout"
    assert "hunter2" not in (r.error or "") and "***" in (r.error or "")


def test_local_executor_module_does_not_import_asyncssh() -> None:
    import subprocess
    import sys

    code = ("import sys, watchkeeper.automation.executors, watchkeeper.automation.adhoc; "
            "print('asyncssh' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**os.environ}, check=True).stdout
    assert out.strip() == "False"
