"""The ``ping`` check: the real iputils ping against loopback, and its parser against
stored outputs in tests/fixtures/ping/ (ok_*.txt and no_permission.txt captured here;
the loss and error outputs are written in iputils' format, since loopback never loses)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from watchkeeper.monitor.checks.ping import Config, PingStats, parse_ping
from watchkeeper.monitor.model import CheckContext, CheckResult, State

FIXTURES = Path(__file__).parent.parent / "fixtures" / "ping"


def make(host: str = "127.0.0.1", **kw: object) -> Config:
    return Config.model_validate({"name": "ping", "type": "ping", "host": host, **kw})


async def run(host: str = "127.0.0.1", timeout: float = 5.0, **kw: object) -> CheckResult:
    return await make(host, **kw).build().run(CheckContext(timeout=timeout))


def test_ping_is_installed() -> None:
    assert shutil.which("ping"), "ping missing: apt install iputils-ping"


async def test_loopback_ipv4() -> None:
    result = await run(count=3)
    assert result.state is State.OK, result.summary
    assert result.summary.startswith("127.0.0.1: 0% loss, rtt min/avg/max ")
    values = {m.name: m.value for m in result.metrics}
    assert values["watchkeeper_ping_packet_loss_ratio"] == 0
    assert values["watchkeeper_ping_packets_sent"] == 3
    assert 0 < values["watchkeeper_ping_rtt_avg_seconds"] < 0.1


async def test_loopback_ipv6() -> None:
    result = await run("::1", count=1, family="ipv6")
    assert result.state is State.OK, result.summary


async def test_rtt_threshold() -> None:
    # loopback answers in far more than a nanosecond: the threshold trips
    result = await run(count=1, rtt_warning=1e-9)
    assert result.state is State.WARNING
    result = await run(count=1, rtt_warning=1e-9, rtt_critical=2e-9)
    assert result.state is State.CRITICAL


async def test_missing_executable(tmp_path: Path) -> None:
    result = await run(ping=str(tmp_path / "no-ping"))
    assert result.state is State.UNKNOWN
    assert result.summary == f"cannot run ping: {tmp_path / 'no-ping'} not found"


async def test_no_permission_for_real(tmp_path: Path) -> None:
    # A copy of ping loses its cap_net_raw; run it as nobody with no capabilities.
    setpriv = shutil.which("setpriv")
    ping = shutil.which("ping")
    assert setpriv and ping
    copy = tmp_path / "ping-copy"
    shutil.copy(ping, copy)
    copy.chmod(0o755)
    tmp_path.chmod(0o755)
    wrapper = tmp_path / "ping-as-nobody"
    wrapper.write_text(f"#!/bin/sh\nexec {setpriv} --reuid=65534 --regid=65534 --clear-groups "
                       f"--inh-caps=-all --bounding-set=-all {copy} \"$@\"\n")
    wrapper.chmod(0o755)
    result = await run(ping=str(wrapper), count=1)
    assert result.state is State.UNKNOWN
    assert result.summary.startswith("ping is not permitted to send ICMP here: ")
    assert "cap_net_raw" in result.details


async def test_timeout() -> None:
    # 5 pings 0.2 s apart cannot finish in 0.3 s
    result = await run(count=5, timeout=0.3)
    assert result.state is State.UNKNOWN
    assert result.summary == "ping 127.0.0.1 did not finish within 0.3s"


def test_argv_is_a_list_without_shell() -> None:
    check = make("127.0.0.1", count=4, family="ipv4").build()
    assert check.argv(9.9) == ["ping", "-4", "-n", "-c", "4", "-i", "0.2", "-W", "9", "-w", "9",
                               "127.0.0.1"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ok_ipv4", PingStats(3, 3, 0.0, 0.034e-3, 0.037e-3, 0.039e-3)),
        ("ok_ipv6", PingStats(2, 2, 0.0, 0.021e-3, 0.033e-3, 0.046e-3)),
        ("partial_loss", PingStats(4, 2, 50.0, 12.412e-3, 13.655e-3, 14.898e-3)),
        ("total_loss", PingStats(3, 0, 100.0)),
        ("errors", PingStats(3, 0, 100.0, errors=3)),
        ("no_permission", None),
    ],
)
def test_parse_stored_outputs(name: str, expected: PingStats | None) -> None:
    parsed = parse_ping((FIXTURES / f"{name}.txt").read_text())
    if expected is None:
        assert parsed is None
        return
    assert parsed is not None
    for field in ("transmitted", "received", "loss_percent", "errors"):
        assert getattr(parsed, field) == getattr(expected, field)
    for field in ("rtt_min", "rtt_avg", "rtt_max"):
        want = getattr(expected, field)
        got = getattr(parsed, field)
        assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want)


@pytest.mark.parametrize(
    ("name", "state", "summary"),
    [
        ("partial_loss", State.WARNING, "192.0.2.10: 50% loss, rtt min/avg/max 12 ms/14 ms/15 ms"),
        ("total_loss", State.CRITICAL, "192.0.2.10: no reply to 3 pings (100% loss)"),
        ("errors", State.CRITICAL, "192.0.2.10: no reply to 3 pings (100% loss)"),
    ],
)
def test_judge_stored_outputs(name: str, state: State, summary: str) -> None:
    check = make("192.0.2.10", loss_warning=20, loss_critical=60).build()
    result = check.judge((FIXTURES / f"{name}.txt").read_text(), "")
    assert result.state is state
    assert result.summary == summary


def test_judge_no_permission_output() -> None:
    text = (FIXTURES / "no_permission.txt").read_text()
    result = make().build().judge("", text)
    assert result.state is State.UNKNOWN
    assert result.summary.startswith("ping is not permitted to send ICMP here: ")


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"host": "-f"}, "String should match pattern"),
        ({"count": 0}, "greater than or equal to 1"),
        ({"loss_warning": 50, "loss_critical": 10}, "loss_critical must not be below loss_warning"),
        ({"rtt_warning": "1s", "rtt_critical": "10ms"}, "rtt_critical must not be below"),
        ({"packet_interval": "10ms"}, "greater than or equal to 0.2"),
        ({"family": "ipx"}, "Input should be 'any', 'ipv4' or 'ipv6'"),
    ],
)
def test_config_errors(kw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        Config.model_validate({"name": "p", "type": "ping", "host": "127.0.0.1", **kw})
    assert message in str(info.value)
