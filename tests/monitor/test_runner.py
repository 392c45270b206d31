"""execute(): a check that hangs, raises or lies never escapes its timeout or crashes the caller."""

from __future__ import annotations

import asyncio
import time
from typing import Literal

from watchkeeper.errors import CheckExecutionError
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult, Sample, State
from watchkeeper.monitor.runner import execute, result_samples


class _Behaviour:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    async def run(self, ctx: CheckContext) -> CheckResult:
        if self.kind == "hang":
            await asyncio.sleep(3600)
        if self.kind == "raise":
            raise RuntimeError("boom")
        if self.kind == "env":
            raise CheckExecutionError("plugin not found: /nope", hint="install it")
        if self.kind == "lie":
            return "all good"  # type: ignore[return-value]
        if self.kind == "long":
            return CheckResult(State.WARNING, "first line\nsecond line", details="x" * 200_000)
        return CheckResult(State.OK, "fine", metrics=[Sample("latency_seconds", {}, 0.5)])


class Cfg(CheckConfig):
    type: Literal["fake"] = "fake"
    kind: str = "ok"

    def build(self) -> _Behaviour:
        return _Behaviour(self.kind)


async def test_hanging_check_is_cut_off_at_its_timeout() -> None:
    started = time.monotonic()
    result = await execute(Cfg(name="h", kind="hang", timeout=0.2))
    assert time.monotonic() - started < 2
    assert result.state == State.CRITICAL
    assert result.summary == "timed out after 0.2s"


async def test_exceptions_become_unknown() -> None:
    result = await execute(Cfg(name="r", kind="raise"))
    assert (result.state, result.summary) == (State.UNKNOWN, "check failed: RuntimeError: boom")
    result = await execute(Cfg(name="e", kind="env"))
    assert (result.state, result.summary) == (State.UNKNOWN, "plugin not found: /nope")


async def test_a_check_that_returns_garbage_is_unknown() -> None:
    result = await execute(Cfg(name="l", kind="lie"))
    assert result.state == State.UNKNOWN
    assert result.summary == "check returned str, not a result"


async def test_summary_is_one_line_and_details_are_capped() -> None:
    result = await execute(Cfg(name="x", kind="long"))
    assert result.summary == "first line"
    assert len(result.details) == 64 * 1024


async def test_result_samples_label_and_up() -> None:
    cfg = Cfg(name="svc", labels={"team": "db"})
    result = await execute(cfg)
    samples = {s.name: s for s in result_samples(cfg, result, 100.0)}
    assert samples["watchkeeper_check_up"].value == 1.0
    assert dict(samples["watchkeeper_check_up"].labels) == {"check": "svc", "type": "fake", "team": "db"}
    assert samples["watchkeeper_check_state"].value == 0.0
    assert dict(samples["latency_seconds"].labels) == {"check": "svc", "team": "db"}
    assert samples["latency_seconds"].timestamp == 100.0
    down = result_samples(cfg, CheckResult(State.CRITICAL, "down"), 1.0)
    assert down[0].value == 0.0 and down[1].value == 2.0
