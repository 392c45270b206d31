"""``run:``: a shell command; every substituted value is shell-quoted (see templates.py)."""

from __future__ import annotations

from watchkeeper.automation.runbook import Step
from watchkeeper.automation.steps.base import StepContext, StepOutcome, outcome_from_exec
from watchkeeper.automation.templates import render_command

__all__ = ["execute"]


async def execute(step: Step, ctx: StepContext) -> StepOutcome:
    assert step.run is not None
    cmd = render_command(step.run, ctx.template, what=f"step {step.name!r}: run")
    ctx.secrets.extend(cmd.secrets())
    shown = cmd.masked()
    if ctx.check_mode:
        return StepOutcome("check", command=shown, detail=f"would run on {ctx.host.name}")
    res = await ctx.executor.run(ctx.host, cmd, timeout=ctx.timeout, on_output=ctx.on_output)
    return outcome_from_exec(res, ctx, shown)
