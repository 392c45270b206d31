"""``script:``: upload a script (a file next to the runbook, or inline) and run it once.

The script goes to a private temp path, runs under its interpreter with the
(quoted) ``args``, and is removed whatever its exit status.
"""

from __future__ import annotations

import secrets as _random
from pathlib import Path

from watchkeeper.automation.command import Command, Masked, Quoted, Raw
from watchkeeper.automation.runbook import Step
from watchkeeper.automation.steps.base import StepContext, StepOutcome, outcome_from_exec
from watchkeeper.automation.templates import render_command

__all__ = ["execute"]


async def execute(step: Step, ctx: StepContext) -> StepOutcome:
    spec = step.script
    assert spec is not None
    if spec.src is not None:
        path = Path(ctx.base_dir) / spec.src
        try:
            data = path.read_bytes()
        except OSError as exc:
            return StepOutcome("failed", detail=f"cannot read script {path}: {exc.strerror or exc}")
        label = spec.src
    else:
        data = (spec.content or "").encode()
        label = "inline script"
    args = render_command(spec.args, ctx.template, what=f"step {step.name!r}: script args")
    ctx.secrets.extend(args.secrets())
    remote = f"/tmp/.watchkeeper-{ctx.run_id[:8]}-{_random.token_hex(6)}"
    parts: list[Raw | Quoted | Masked] = [Raw(spec.interpreter + " "), Quoted(remote)]
    if args.parts:
        parts += [Raw(" "), *args.parts]
    parts += [Raw("; rc=$?; rm -f -- "), Quoted(remote), Raw("; exit $rc")]
    cmd = Command(parts)
    shown = f"{spec.interpreter} <{label}>" + (f" {args.masked()}" if args.parts else "")
    if ctx.check_mode:
        return StepOutcome("check", command=shown,
                           detail=f"would upload {label} ({len(data)} bytes) and run it")
    put = await ctx.executor.put(ctx.host, data, remote, mode=0o700, timeout=ctx.timeout)
    if not put.ok:
        out = outcome_from_exec(put, ctx, shown)
        out.detail = f"upload failed: {out.detail or out.stderr.strip()}"
        return out
    res = await ctx.executor.run(ctx.host, cmd, timeout=ctx.timeout, on_output=ctx.on_output)
    return outcome_from_exec(res, ctx, shown)
