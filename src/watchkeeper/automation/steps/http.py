"""``http:``: a request made from watchkeeper; ok when the response status is one of ``status``."""

from __future__ import annotations

import json
from typing import Any

from watchkeeper.automation.runbook import Step
from watchkeeper.automation.steps.base import StepContext, StepOutcome
from watchkeeper.automation.templates import render_text

__all__ = ["execute", "client"]


def client(ctx: StepContext, timeout: float) -> Any:
    import httpx

    return httpx.AsyncClient(transport=ctx.http_transport, timeout=timeout, trust_env=False,
                             follow_redirects=False)


async def execute(step: Step, ctx: StepContext) -> StepOutcome:
    import httpx

    spec = step.http
    assert spec is not None
    what = f"step {step.name!r}: http"
    url = render_text(spec.url, ctx.template, what=what)
    body = render_text(spec.body, ctx.template, what=what) if spec.body is not None else None
    headers = {k: render_text(v, ctx.template, what=what) for k, v in spec.headers.items()}
    shown = f"{spec.method} {ctx.mask(url)}"
    if ctx.check_mode:
        return StepOutcome("check", command=shown,
                           detail=f"would expect status {', '.join(map(str, spec.status))}")
    timeout = ctx.timeout or spec.timeout
    try:
        async with client(ctx, timeout) as http:
            resp = await http.request(spec.method, url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return StepOutcome("failed", command=shown, detail=f"{shown}: {type(exc).__name__}: {exc}")
    data: dict[str, Any] = {"status_code": resp.status_code}
    try:
        data["json"] = resp.json()
    except (ValueError, json.JSONDecodeError):
        pass
    ok = resp.status_code in spec.status
    return StepOutcome("ok" if ok else "failed", changed=False, command=shown,
                       stdout=ctx.mask(resp.text), exit_code=None,
                       detail=f"HTTP {resp.status_code}" + ("" if ok else
                              f"; wanted {', '.join(map(str, spec.status))}"), data=data)
