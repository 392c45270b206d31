"""``wait:``: until a TCP port accepts, an HTTP status comes back, a check passes, or a duration.

Probes are made from watchkeeper every ``interval`` until ``timeout`` (the
step's ``timeout`` wins when given). ``tcp: PORT`` means the target host's address.
"""

from __future__ import annotations

import asyncio

from watchkeeper.automation.runbook import Step
from watchkeeper.automation.steps.base import StepContext, StepOutcome
from watchkeeper.automation.steps.check import run_check
from watchkeeper.automation.steps.http import client
from watchkeeper.automation.templates import render_text
from watchkeeper.units import format_duration

__all__ = ["execute"]


def _split(target: str, default_host: str) -> tuple[str, int]:
    host, sep, port = target.rpartition(":")
    if not sep:
        host, port = default_host, target
    host = host.strip("[]") or default_host
    return host, int(port)


async def _tcp(host: str, port: int, timeout: float) -> str | None:
    try:
        async with asyncio.timeout(timeout):
            _reader, writer = await asyncio.open_connection(host, port)
    except (OSError, TimeoutError) as exc:
        return f"{host}:{port}: {exc.strerror if isinstance(exc, OSError) and exc.strerror else 'no answer'}"
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return None


async def execute(step: Step, ctx: StepContext) -> StepOutcome:
    spec = step.wait
    assert spec is not None
    what = f"step {step.name!r}: wait"
    if spec.duration is not None:
        shown = f"wait {format_duration(spec.duration)}"
        if ctx.check_mode:
            return StepOutcome("check", command=shown, detail="would wait")
        await ctx.clock.sleep(spec.duration)
        return StepOutcome("ok", command=shown)
    timeout = ctx.timeout or spec.timeout
    if spec.tcp is not None:
        try:
            host, port = _split(render_text(spec.tcp, ctx.template, what=what), ctx.host.target)
        except ValueError:
            return StepOutcome("failed", detail=f"{what}: tcp wants PORT or HOST:PORT, not {spec.tcp!r}")
        shown = f"wait for tcp {host}:{port}"
    elif spec.http is not None:
        url = render_text(spec.http, ctx.template, what=what)
        shown = f"wait for {url} to answer {', '.join(map(str, spec.status))}"
    else:
        assert spec.check is not None
        name = render_text(spec.check, ctx.template, what=what)
        shown = f"wait for check {name} to pass"
    if ctx.check_mode:
        return StepOutcome("check", command=shown,
                           detail=f"would wait up to {format_duration(timeout)}")
    deadline = ctx.clock.monotonic() + timeout
    attempts = 0
    last = ""
    while True:
        attempts += 1
        if spec.tcp is not None:
            err = await _tcp(host, port, max(0.1, min(spec.interval, 5.0)))
            if err is None:
                return StepOutcome("ok", command=shown, detail=f"open after {attempts} probe(s)")
            last = err
        elif spec.http is not None:
            import httpx

            try:
                async with client(ctx, max(0.5, min(spec.interval * 2, 10.0))) as http:
                    resp = await http.get(url)
                if resp.status_code in spec.status:
                    return StepOutcome("ok", command=shown,
                                       detail=f"HTTP {resp.status_code} after {attempts} probe(s)")
                last = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
        else:
            res = await run_check(name, ctx)
            if res.status == "ok":
                return StepOutcome("ok", command=shown, detail=f"{res.detail} after {attempts} probe(s)")
            last = res.detail
            if ctx.check_runner is None:
                return StepOutcome("failed", command=shown, detail=last)
        if ctx.clock.monotonic() + spec.interval > deadline:
            return StepOutcome("timeout", command=shown,
                               detail=f"gave up after {format_duration(timeout)} "
                                      f"({attempts} probes); last: {last}")
        await ctx.clock.sleep(spec.interval)
