"""``approval:``: pause the run until someone with the role approves or rejects it (or timeout).

An approval is asked once per run, whatever the number of hosts: the first host
to reach the step asks, and every host waits for the same answer. Approve or
reject with ``watchkeeper approve|reject RUN`` or the API; the decision, who
made it and the required role are recorded in the run and the event log.
"""

from __future__ import annotations

from watchkeeper.automation.runbook import Step
from watchkeeper.automation.steps.base import StepContext, StepOutcome
from watchkeeper.automation.templates import render_text
from watchkeeper.units import format_duration

__all__ = ["execute", "ask"]


async def ask(step: Step, ctx: StepContext) -> StepOutcome:
    """Record the request, wait for the decision, and say what it was (run once per run)."""
    spec = step.approval
    assert spec is not None
    message = render_text(spec.message, ctx.template, what=f"step {step.name!r}: approval message")
    role = spec.role
    shown = f"approval by {role or 'anyone'}" + (f": {message}" if message else "")
    if ctx.check_mode:
        return StepOutcome("check", command=shown,
                           detail=f"would wait up to {format_duration(spec.timeout)} for approval")
    store = ctx.engine.runs
    sid = store.request_approval(ctx.run_id, step.name, phase=ctx.phase, role=role,
                                 message=message, timeout=spec.timeout)
    decision, info = await store.wait_decision(ctx.run_id, sid, spec.timeout)
    if decision == "approved":
        store.set_status(ctx.run_id, "running")
        return StepOutcome("ok", command=shown,
                           detail=f"approved by {info.get('by')}"
                                  + (f": {info['comment']}" if info.get("comment") else ""))
    if decision == "rejected":
        return StepOutcome("rejected", command=shown,
                           detail=f"rejected by {info.get('by')}"
                                  + (f": {info['comment']}" if info.get("comment") else ""))
    if decision == "timeout":
        store.set_status(ctx.run_id, "running")
        return StepOutcome("timeout", command=shown,
                           detail=f"no approval within {format_duration(spec.timeout)}")
    return StepOutcome("cancelled", command=shown, detail="the run was cancelled")


async def execute(step: Step, ctx: StepContext) -> StepOutcome:
    outcome: StepOutcome = await ctx.engine.approval_gate(step, ctx)
    return outcome
