"""``http:``: one request; ok when the status is one of ``status`` and the body matches ``match``.

From watchkeeper by default. With ``from: target`` the request is made on the target
host through its executor (python3, else curl, else wget there; see
:mod:`._target_probe`) and the first 64 KiB of the body come back. Either way the
outcome records the status (``detail``, ``data.status_code``), the body (``stdout``,
secrets masked) and, when the body is JSON, ``data.json``.
"""

from __future__ import annotations

import json
import re
from typing import Any

from watchkeeper.automation.runbook import HttpSpec, Step
from watchkeeper.automation.steps import _target_probe as remote
from watchkeeper.automation.steps.base import StepContext, StepOutcome
from watchkeeper.automation.templates import render_text

__all__ = ["execute", "client"]


def client(ctx: StepContext, timeout: float, *, verify: bool = True) -> Any:
    import httpx

    return httpx.AsyncClient(transport=ctx.http_transport, timeout=timeout, trust_env=False,
                             follow_redirects=False, verify=verify)


def _judge(spec: HttpSpec, ctx: StepContext, code: int, text: str, shown: str,
           data: dict[str, Any], *, where: str = "") -> StepOutcome:
    """The outcome for a response: status wanted, body matching."""
    problems = []
    if code not in spec.status:
        problems.append(f"wanted {', '.join(map(str, spec.status))}")
    if spec.match is not None and re.search(spec.match, text) is None:
        problems.append(f"body does not match {spec.match!r}")
    ok = not problems
    return StepOutcome("ok" if ok else "failed", changed=False, command=shown,
                       stdout=ctx.mask(text), exit_code=None,
                       detail=f"HTTP {code}{where}" + ("" if ok else "; " + "; ".join(problems)),
                       data=data)


def _json(text: str) -> dict[str, Any]:
    try:
        return {"json": json.loads(text)}
    except ValueError:
        return {}


async def execute(step: Step, ctx: StepContext) -> StepOutcome:
    spec = step.http
    assert spec is not None
    what = f"step {step.name!r}: http"
    url = render_text(spec.url, ctx.template, what=what)
    body = render_text(spec.body, ctx.template, what=what) if spec.body is not None else None
    headers = {k: render_text(v, ctx.template, what=what) for k, v in spec.headers.items()}
    timeout = ctx.timeout or spec.timeout
    if spec.from_ == "target":
        return await _from_target(spec, ctx, what, url, body, headers, timeout)
    import httpx

    shown = f"{spec.method} {ctx.mask(url)}"
    if ctx.check_mode:
        return StepOutcome("check", command=shown,
                           detail=f"would expect status {', '.join(map(str, spec.status))}")
    try:
        async with client(ctx, timeout, verify=spec.verify) as http:
            resp = await http.request(spec.method, url, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return StepOutcome("failed", command=shown, detail=f"{shown}: {type(exc).__name__}: {exc}")
    text = resp.text
    return _judge(spec, ctx, resp.status_code, text, shown,
                  {"status_code": resp.status_code, **_json(text)})


async def _from_target(spec: HttpSpec, ctx: StepContext, what: str, url: str, body: str | None,
                       headers: dict[str, str], timeout: float) -> StepOutcome:
    """Make the request on the target host: one remote invocation (retries are the step's)."""
    on = ctx.host.name
    probe_timeout = timeout
    try:
        script = remote.http_script(url, method=spec.method, headers=headers, body=body,
                                    verify=spec.verify, probe_timeout=probe_timeout,
                                    body_cap=remote.BODY_CAP, secrets=ctx.secrets,
                                    title=f"{spec.method} {ctx.mask(url)} on {on} (from the target)")
    except ValueError as exc:
        return StepOutcome("failed", detail=f"{what}: {ctx.mask(str(exc))}")
    shown = script.masked()
    if ctx.check_mode:
        return StepOutcome("check", command=shown,
                           detail=f"would run on {on} and expect status "
                                  f"{', '.join(map(str, spec.status))}")
    res = await remote.run_probe(ctx, script, budget=0.0, probe_timeout=probe_timeout)
    code = res.http_status
    if res.status == "ok" and code is not None:
        cut = "(body cut at" in res.summary
        data: dict[str, Any] = {"status_code": code, **({} if cut else _json(res.body))}
        out = _judge(spec, ctx, code, res.body, shown, data, where=f" from {on}")
        if cut:
            out.detail += f"; body cut at {remote.BODY_CAP} bytes"
        return out
    if res.status == "gave-up":
        return StepOutcome("failed", command=shown,
                           detail=f"{spec.method} {ctx.mask(url)} from {on}: {ctx.mask(res.last)}")
    status = res.status if res.status in ("unreachable", "timeout") else "failed"
    return StepOutcome(status, command=shown, detail=ctx.mask(res.detail or res.summary))
