"""``runbook:``: run another runbook on the current host, recorded as a child run."""

from __future__ import annotations

from typing import Any

from watchkeeper.automation.runbook import Step
from watchkeeper.automation.steps.base import StepContext, StepOutcome
from watchkeeper.automation.templates import render_text

__all__ = ["execute"]


def _render(value: Any, ctx: StepContext, what: str) -> Any:
    if isinstance(value, str):
        return render_text(value, ctx.template, what=what)
    if isinstance(value, list):
        return [_render(v, ctx, what) for v in value]
    if isinstance(value, dict):
        return {k: _render(v, ctx, what) for k, v in value.items()}
    return value


async def execute(step: Step, ctx: StepContext) -> StepOutcome:
    spec = step.runbook
    assert spec is not None
    what = f"step {step.name!r}: runbook"
    name = render_text(spec.name, ctx.template, what=what)
    params = {k: _render(v, ctx, what) for k, v in spec.params.items()}
    outcome: StepOutcome = await ctx.engine.call_runbook(name, params, ctx)
    return outcome
