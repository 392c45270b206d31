"""The ``process`` check against real ``sleep`` processes the tests start."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import ValidationError

from watchkeeper.monitor.checks.process import Config
from watchkeeper.monitor.model import CheckContext, CheckResult, State


@pytest.fixture
def sleepers() -> Iterator[tuple[str, list[subprocess.Popen[bytes]]]]:
    """Two ``sleep`` processes whose argument is unique to this test."""
    marker = f"{1000 + uuid.uuid4().int % 100000}.{uuid.uuid4().int % 1000:03d}"
    procs = [subprocess.Popen(["sleep", marker]) for _ in range(2)]
    try:
        yield marker, procs
    finally:
        for p in procs:
            p.kill()
            p.wait()


@pytest.fixture
def spinner() -> Iterator[str]:
    """A process burning a full core; yields its distinctive argument."""
    marker = f"wk-spin-{uuid.uuid4().hex}"
    proc = subprocess.Popen([sys.executable, "-c", "while True: pass", marker])
    try:
        yield marker
    finally:
        proc.kill()
        proc.wait()


async def run(timeout: float = 5.0, **kw: object) -> CheckResult:
    config = Config.model_validate({"name": "proc", "type": "process", **kw})
    return await config.build().run(CheckContext(timeout=timeout))


def metric(result: CheckResult, name: str) -> float:
    (value,) = [m.value for m in result.metrics if m.name == name]
    return value


async def test_by_cmdline(sleepers: tuple[str, list[subprocess.Popen[bytes]]]) -> None:
    marker, _ = sleepers
    result = await run(cmdline=rf"^sleep {marker}$", min_count=2, max_count=2)
    assert result.state is State.OK, result.summary
    assert result.summary.startswith(f"cmdline=/^sleep {marker}$/: 2 running, CPU ")
    assert metric(result, "watchkeeper_process_count") == 2
    assert metric(result, "watchkeeper_process_resident_memory_bytes") > 0
    assert 0 <= metric(result, "watchkeeper_process_cpu_percent") < 50


async def test_counts(sleepers: tuple[str, list[subprocess.Popen[bytes]]]) -> None:
    marker, _ = sleepers
    too_few = await run(cmdline=f"sleep {marker}", min_count=3)
    too_many = await run(cmdline=f"sleep {marker}", max_count=1)
    none = await run(cmdline="no-such-process-anywhere-[0-9]{40}")
    none_ok = await run(cmdline="no-such-process-anywhere-[0-9]{40}", min_count=0, max_count=0)
    assert too_few.summary == f"cmdline=/sleep {marker}/: 2 running, expected at least 3"
    assert too_many.summary == f"cmdline=/sleep {marker}/: 2 running, expected at most 1"
    assert none.state is State.CRITICAL
    assert none_ok.state is State.OK


async def test_by_name_and_cmdline(sleepers: tuple[str, list[subprocess.Popen[bytes]]]) -> None:
    marker, _ = sleepers
    both = await run(process_name="sleep", cmdline=marker, min_count=2)
    wrong_name = await run(process_name="bash", cmdline=marker)
    assert both.state is State.OK, both.summary
    assert wrong_name.summary == f"process_name=bash cmdline=/{marker}/: 0 running, " \
                                 "expected at least 1"


async def test_pidfile(sleepers: tuple[str, list[subprocess.Popen[bytes]]],
                       tmp_path: Path) -> None:
    _, procs = sleepers
    pidfile = tmp_path / "sleep.pid"
    pidfile.write_text(f"{procs[0].pid}\n")
    alive = await run(pidfile=str(pidfile), max_count=1)
    procs[0].kill()
    procs[0].wait()
    dead = await run(pidfile=str(pidfile))
    missing = await run(pidfile=str(tmp_path / "none.pid"))
    (tmp_path / "bad.pid").write_text("not a pid")
    bad = await run(pidfile=str(tmp_path / "bad.pid"))
    assert alive.state is State.OK, alive.summary
    assert dead.summary == f"pidfile={pidfile}: 0 running, expected at least 1"
    assert missing.summary == f"pidfile {tmp_path / 'none.pid'} does not exist"
    assert bad.summary == f"pidfile {tmp_path / 'bad.pid'} does not hold a process id"


async def test_memory_and_cpu_limits(sleepers: tuple[str, list[subprocess.Popen[bytes]]],
                                     spinner: str) -> None:
    marker, _ = sleepers
    memory = await run(cmdline=f"sleep {marker}", max_memory="1KB")
    assert memory.state is State.CRITICAL
    assert " above 0.0 MiB" in memory.summary
    busy = await run(cmdline=spinner, max_cpu_percent=10)
    assert busy.state is State.CRITICAL, busy.summary
    assert "CPU " in busy.summary and "above 10%" in busy.summary


async def test_cpu_measured_between_runs(sleepers: tuple[str, list[subprocess.Popen[bytes]]]) -> None:
    marker, _ = sleepers
    config = Config.model_validate({"name": "p", "type": "process", "cmdline": marker})
    check = config.build()
    first = await check.run(CheckContext(timeout=5))
    second = await check.run(CheckContext(timeout=5))
    assert first.state is State.OK and second.state is State.OK
    assert first.duration_seconds >= 0.15  # sampled on the first run
    assert second.duration_seconds < first.duration_seconds  # uses the previous run


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({}, "select processes with process_name, cmdline or pidfile"),
        ({"cmdline": "("}, "cmdline '(' is not a valid regex"),
        ({"cmdline": "x", "min_count": 3, "max_count": 2}, "max_count must not be below min_count"),
        ({"cmdline": "x", "max_memory": "lots"}, '"lots" is not a size'),
        ({"cmdline": "x", "min_count": -1}, "greater than or equal to 0"),
    ],
)
def test_config_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Config.model_validate({"name": "p", "type": "process", **kw})
    assert message in str(info.value)
