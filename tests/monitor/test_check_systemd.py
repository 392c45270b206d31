"""The ``systemd`` check: the parser against stored ``systemctl show`` outputs, the real
``systemctl`` of this host (no systemd running here), and a tiny real script standing in
for ``systemctl`` via the ``systemctl`` config key."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
from pydantic import ValidationError

from watchkeeper.monitor.checks.systemd import Config, parse_show
from watchkeeper.monitor.model import CheckContext, CheckResult, State

FIXTURES = Path(__file__).parent.parent / "fixtures" / "systemd"


def make(unit: str = "nginx.service", **kw: object) -> Config:
    return Config.model_validate({"name": "unit", "type": "systemd", "unit": unit, **kw})


async def run(unit: str = "nginx.service", **kw: object) -> CheckResult:
    return await make(unit, **kw).build().run(CheckContext(timeout=5))


def fake_systemctl(tmp_path: Path, fixture: str, code: int = 0) -> str:
    """A real executable that records its arguments and prints a stored output."""
    script = tmp_path / "systemctl"
    args = tmp_path / "args"
    script.write_text(f'#!/bin/sh\necho "$@" > {shlex.quote(str(args))}\n'
                      f"cat {shlex.quote(str(FIXTURES / fixture))}\nexit {code}\n")
    script.chmod(0o755)
    return str(script)


def test_parse_show() -> None:
    assert parse_show((FIXTURES / "active_running.txt").read_text()) == {
        "LoadState": "loaded", "ActiveState": "active", "SubState": "running"}
    assert parse_show("garbage\n=x\nA=b=c\n") == {"A": "b=c"}


async def test_no_systemd_on_this_host() -> None:
    # This container has systemctl but no systemd as PID 1: the real thing says so.
    assert not Path("/run/systemd/system").exists(), "this test expects a host without systemd"
    result = await run("ssh.service")
    assert result.state is State.UNKNOWN
    assert result.summary == "systemd is not running on this host"


def test_no_systemd_stored_stderr() -> None:
    err = (FIXTURES / "no_systemd.stderr.txt").read_text()
    result = make().build().judge(1, "", err)
    assert result.state is State.UNKNOWN
    assert result.summary == "systemd is not running on this host"


@pytest.mark.parametrize(
    ("fixture", "expect", "state", "summary"),
    [
        ("active_running.txt", "active", State.OK, "nginx.service is active (running)"),
        ("failed.txt", "active", State.CRITICAL,
         "nginx.service is failed (failed), expected active"),
        ("inactive.txt", "inactive", State.OK, "nginx.service is inactive (dead)"),
        ("activating.txt", "active", State.CRITICAL,
         "nginx.service is activating (auto-restart), expected active"),
        ("not_found.txt", "active", State.CRITICAL, "unit nginx.service not found"),
    ],
)
async def test_states_through_a_stand_in_systemctl(tmp_path: Path, fixture: str, expect: str,
                                                   state: State, summary: str) -> None:
    result = await run(systemctl=fake_systemctl(tmp_path, fixture), expect=expect)
    assert result.state is state
    assert result.summary == summary
    assert (tmp_path / "args").read_text().split() == [
        "show", "nginx.service", "--property=ActiveState,SubState,LoadState"]
    active = [m.value for m in result.metrics if m.name == "watchkeeper_systemd_unit_active"]
    assert active == [1.0 if "is active" in summary else 0.0]


async def test_systemctl_failure_and_missing(tmp_path: Path) -> None:
    failing = await run(systemctl=fake_systemctl(tmp_path, "does-not-exist.txt", code=1))
    assert failing.state is State.UNKNOWN
    assert failing.summary.startswith("systemctl show nginx.service failed: cat: ")
    missing = await run(systemctl=str(tmp_path / "nope"))
    assert missing.summary == f"cannot run {tmp_path / 'nope'}: not found (is this a systemd host?)"


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"unit": "--all"}, "String should match pattern"),
        ({"unit": "a b"}, "String should match pattern"),
        ({"expect": "running"}, "Input should be 'active', 'reloading', 'inactive'"),
        ({"unit": ""}, "at least 1 character"),
    ],
)
def test_config_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Config.model_validate({"name": "u", "type": "systemd", "unit": "x.service", **kw})
    assert message in str(info.value)
