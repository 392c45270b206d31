"""``check:``: run a watchkeeper check by name as verification; ok when it is OK."""

from __future__ import annotations

from watchkeeper.automation.runbook import Step
from watchkeeper.automation.steps.base import StepContext, StepOutcome
from watchkeeper.automation.templates import render_text
from watchkeeper.errors import WatchkeeperError

__all__ = ["execute", "run_check"]


async def run_check(name: str, ctx: StepContext) -> StepOutcome:
    """One run of the check ``name`` through the engine's check runner."""
    if ctx.check_runner is None:
        return StepOutcome("failed", command=f"check {name}",
                           detail="check steps need the monitor: run them from `watchkeeper up` "
                                  "(or give RunEngine a check_runner)")
    try:
        result = await ctx.check_runner(name)
    except WatchkeeperError as exc:
        return StepOutcome("failed", command=f"check {name}", detail=str(exc))
    state = getattr(result.state, "name", str(result.state))
    ok = state == "OK"
    return StepOutcome("ok" if ok else "failed", command=f"check {name}",
                       stdout=result.summary, detail=f"{state}: {result.summary}",
                       data={"state": state, "summary": result.summary})


async def execute(step: Step, ctx: StepContext) -> StepOutcome:
    assert step.check is not None
    name = render_text(step.check, ctx.template, what=f"step {step.name!r}: check")
    if ctx.check_mode:
        return StepOutcome("check", command=f"check {name}", detail="would run the check")
    return await run_check(name, ctx)
