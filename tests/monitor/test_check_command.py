"""The ``command`` check, running the real Debian Monitoring Plugins and small real scripts."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import psutil
import pytest
from pydantic import ValidationError

from tests.monitor._servers import http_server, line_server
from watchkeeper.monitor.checks.command import Config
from watchkeeper.monitor.model import CheckContext, State

PLUGINS = Path("/usr/lib/nagios/plugins")


def make(command: str | list[str], **kw: object) -> Config:
    return Config.model_validate({"name": "cmd", "type": "command", "command": command, **kw})


async def run(command: str | list[str], timeout: float = 10.0, **kw: object):  # type: ignore[no-untyped-def]
    return await make(command, **kw).build().run(CheckContext(timeout=timeout))


def script(tmp_path: Path, body: str, name: str = "plugin.sh") -> str:
    path = tmp_path / name
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return str(path)


def test_plugins_are_installed() -> None:
    for name in ("check_tcp", "check_http", "check_disk", "check_load", "check_dummy"):
        assert (PLUGINS / name).is_file(), f"{name} missing: apt install monitoring-plugins-basic"


async def test_check_tcp_against_a_listener() -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1)

    async with line_server(serve) as (host, port):
        result = await run([str(PLUGINS / "check_tcp"), "-H", host, "-p", str(port)])
    assert result.state is State.OK
    assert result.summary.startswith("TCP OK - ")
    assert f"port {port}" in result.summary
    (value,) = [m for m in result.metrics if m.name == "watchkeeper_plugin_value"]
    assert value.labels == {"check": "cmd", "label": "time", "uom": "s"}
    assert 0 <= value.value < 1


async def test_check_tcp_refused_is_critical() -> None:
    async with line_server(lambda r, w: r.read(1)) as (host, port):
        pass  # the port is now closed
    result = await run(f"check_tcp -H {host} -p {port}")
    assert result.state is State.CRITICAL
    assert result.summary == f"connect to address {host} and port {port}: Connection refused"


async def test_check_http_against_a_loopback_server() -> None:
    async with http_server() as srv:
        ok = await run(f"{PLUGINS}/check_http -H {srv.host} -p {srv.port} -u /")
        missing = await run(f"{PLUGINS}/check_http -H {srv.host} -p {srv.port} -u /status/503")
    assert ok.state is State.OK, ok.summary
    assert ok.summary.startswith("HTTP OK: HTTP/1.1 200")
    labels = {m.labels["label"] for m in ok.metrics}
    assert labels == {"time", "size"}
    size = [m for m in ok.metrics if m.name == "watchkeeper_plugin_value"
            and m.labels["label"] == "size"]
    assert size[0].labels["uom"] == "B"
    assert missing.state is State.CRITICAL
    assert "503" in missing.summary


async def test_check_disk_root() -> None:
    result = await run("check_disk -w 10% -c 5% -p /")
    assert result.state in (State.OK, State.WARNING, State.CRITICAL)
    assert result.summary.startswith("DISK ")
    names = {(m.name, m.labels["label"]) for m in result.metrics}
    assert ("watchkeeper_plugin_value", "/") in names
    assert ("watchkeeper_plugin_max", "/") in names


async def test_check_load() -> None:
    result = await run("check_load -w 1000,1000,1000 -c 2000,2000,2000")
    assert result.state is State.OK
    assert result.summary.startswith("LOAD OK - total load average: ")
    assert {m.labels["label"] for m in result.metrics} == {"load1", "load5", "load15"}


@pytest.mark.parametrize(("code", "state"), [(0, State.OK), (1, State.WARNING),
                                             (2, State.CRITICAL), (3, State.UNKNOWN)])
async def test_exit_codes(code: int, state: State) -> None:
    result = await run(["check_dummy", str(code), "text here"])
    assert result.state is state
    assert result.summary == f"{state.name}: text here"


async def test_exit_code_7_is_unknown(tmp_path: Path) -> None:
    result = await run(script(tmp_path, "echo 'OK - fine | a=1'\nexit 7\n"))
    assert result.state is State.UNKNOWN
    assert result.summary == "plugin.sh exited with code 7: OK - fine"


async def test_killed_by_signal_is_unknown(tmp_path: Path) -> None:
    result = await run(script(tmp_path, "echo partial\nkill -TERM $$\n"))
    assert result.state is State.UNKNOWN
    assert result.summary == "plugin.sh was killed by SIGTERM: partial"


async def test_garbage_output_never_crashes(tmp_path: Path) -> None:
    body = r"printf 'weird \001\002\377 output | x=abc y=1;2;3;4;5;6 ok=5ms\nmore | =3\n'" + "\n"
    result = await run(script(tmp_path, body + "exit 1\n"))
    assert result.state is State.WARNING
    assert result.summary.startswith("weird ")
    assert [m.labels["label"] for m in result.metrics if m.name == "watchkeeper_plugin_value"] \
        == ["ok"]
    assert "ignored malformed perfdata item 'x=abc'" in result.details
    assert "ignored malformed perfdata item '=3': empty label" in result.details


async def test_huge_output_is_capped(tmp_path: Path) -> None:
    # 10 MB of output: the check keeps 64 KiB and still drains the pipe so the plugin ends.
    body = "echo 'OK - big'\nhead -c 10000000 /dev/zero | tr '\\0' 'x'\nexit 0\n"
    started = time.monotonic()
    result = await run(script(tmp_path, body))
    assert time.monotonic() - started < 5
    assert result.state is State.OK
    assert result.summary == "OK - big"
    assert "output cut at 65536 bytes" in result.details
    assert len(result.details) < 70000


async def test_hanging_plugin_is_killed_with_its_children(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    body = f"sleep 300 &\necho $! > {pidfile}\necho 'still working'\nsleep 300\n"
    started = time.monotonic()
    result = await run(script(tmp_path, body), timeout=0.6)
    assert time.monotonic() - started < 2
    assert result.state is State.UNKNOWN
    assert result.summary == "plugin.sh timed out after 0.6s"
    child = int(pidfile.read_text())
    await asyncio.sleep(0.1)
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == psutil.STATUS_ZOMBIE


async def test_timeout_state_critical(tmp_path: Path) -> None:
    result = await run(script(tmp_path, "sleep 300\n"), timeout=0.3, timeout_state="critical")
    assert result.state is State.CRITICAL
    assert result.summary == "plugin.sh timed out after 0.3s"


async def test_cancelled_from_outside_kills_the_plugin(tmp_path: Path) -> None:
    pidfile = tmp_path / "self.pid"
    check = make(script(tmp_path, f"echo $$ > {pidfile}\nsleep 300\n")).build()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await check.run(CheckContext(timeout=10))
    pid = int(pidfile.read_text())
    assert not psutil.pid_exists(pid)


async def test_missing_executable() -> None:
    result = await run("/usr/lib/nagios/plugins/check_nonexistent -w 1")
    assert result.state is State.UNKNOWN
    assert result.summary == "no such file: /usr/lib/nagios/plugins/check_nonexistent"
    assert "apt install monitoring-plugins" in result.details
    bare = await run("check_does_not_exist_anywhere")
    assert bare.summary == "no such file: check_does_not_exist_anywhere"


async def test_not_executable(tmp_path: Path) -> None:
    path = tmp_path / "plain.txt"
    path.write_text("echo hi\n")
    result = await run(str(path))
    assert result.state is State.UNKNOWN
    assert result.summary == f"not executable: {path}"


async def test_string_is_not_run_by_a_shell(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    result = await run(f"check_dummy 0 'safe; touch {marker}' ; touch {marker}")
    assert result.state is State.OK
    assert result.summary == f"OK: safe; touch {marker}"
    assert not marker.exists()


async def test_shell_true_uses_a_shell(tmp_path: Path) -> None:
    result = await run("echo \"OK - $((40 + 2))\" | tr a-z A-Z; exit 1", shell=True)
    assert result.state is State.WARNING
    assert result.summary == "OK - 42"


async def test_env_and_stderr(tmp_path: Path) -> None:
    body = 'echo "value is $WK_TEST" >&2\nexit 2\n'
    result = await run(script(tmp_path, body), env={"WK_TEST": "x1"})
    assert result.state is State.CRITICAL
    assert result.summary == "value is x1"


async def test_no_output(tmp_path: Path) -> None:
    result = await run(script(tmp_path, "exit 0\n"))
    assert result.state is State.OK
    assert result.summary == "plugin.sh printed nothing (exit code 0)"


def test_config_errors() -> None:
    with pytest.raises(ValidationError, match="command must name a program to run"):
        make("")
    with pytest.raises(ValidationError, match="command must name a program to run"):
        make([])
    with pytest.raises(ValidationError, match="cannot split command"):
        make("check_dummy 'unbalanced")
    with pytest.raises(ValidationError, match="timeout_state"):
        make("check_dummy 0", timeout_state="warning")


def _children() -> set[int]:
    return {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)
            if p.status() != psutil.STATUS_ZOMBIE}


@pytest.fixture(scope="module", autouse=True)
def _children_before() -> set[int]:
    """Processes other modules' session fixtures keep running (sshd servers) are not ours."""
    return _children()


def test_no_leftover_processes(_children_before: set[int]) -> None:
    assert _children() - _children_before == set()
