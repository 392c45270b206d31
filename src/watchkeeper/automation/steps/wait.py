"""``wait:``: until a TCP port accepts, an HTTP status comes back, a check passes, or a duration.

Probes are made every ``interval`` until ``timeout`` (the step's ``timeout`` wins when
given). From watchkeeper by default: ``tcp: PORT`` means the target host's address.
With ``from: target`` (tcp and http) the probing runs on the target host, through its
executor, as one remote loop (see :mod:`._target_probe`): ``tcp: PORT`` means
127.0.0.1 there, so a service bound to the target's loopback or behind its firewall
can be waited for. Either way the outcome reads the same: ok with the number of
probes, or timeout with the last probe's error.
"""

from __future__ import annotations

import asyncio

from watchkeeper.automation.runbook import Step, WaitSpec
from watchkeeper.automation.steps import _target_probe as remote
from watchkeeper.automation.steps.base import StepContext, StepOutcome
from watchkeeper.automation.steps.check import run_check
from watchkeeper.automation.steps.http import client
from watchkeeper.automation.templates import render_text
from watchkeeper.units import format_duration

__all__ = ["execute"]


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
    if spec.from_ == "target":
        return await _from_target(spec, ctx, what, timeout)
    if spec.tcp is not None:
        try:
            host, port = remote.split_tcp(render_text(spec.tcp, ctx.template, what=what),
                                          ctx.host.target)
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
            err = await _tcp(host, port, _tcp_timeout(spec))
            if err is None:
                return StepOutcome("ok", command=shown, detail=f"open after {attempts} probe(s)")
            last = err
        elif spec.http is not None:
            import httpx

            try:
                async with client(ctx, _http_timeout(spec), verify=spec.verify) as http:
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


def _tcp_timeout(spec: WaitSpec) -> float:
    return max(0.1, min(spec.interval, 5.0))


def _http_timeout(spec: WaitSpec) -> float:
    return max(0.5, min(spec.interval * 2, 10.0))


async def _from_target(spec: WaitSpec, ctx: StepContext, what: str, timeout: float) -> StepOutcome:
    """Poll from the target host: one script, one remote loop, ``timeout`` long."""
    budget = timeout
    on = ctx.host.name
    try:
        if spec.tcp is not None:
            target = render_text(spec.tcp, ctx.template, what=what)
            try:
                host, port = remote.split_tcp(target, "127.0.0.1")
            except ValueError:
                return StepOutcome("failed", detail=f"{what}: tcp wants PORT or HOST:PORT, "
                                                    f"not {target!r}")
            probe_timeout = _tcp_timeout(spec)
            title = f"wait for tcp {ctx.mask(host)}:{port} on {on} (from the target)"
            script = remote.tcp_script(host, port, budget=budget, interval=spec.interval,
                                       probe_timeout=probe_timeout, title=title,
                                       secrets=ctx.secrets)
        else:
            assert spec.http is not None
            url = render_text(spec.http, ctx.template, what=what)
            probe_timeout = _http_timeout(spec)
            title = (f"wait for {ctx.mask(url)} to answer {', '.join(map(str, spec.status))} "
                     f"on {on} (from the target)")
            script = remote.http_script(url, verify=spec.verify, wanted=spec.status,
                                        budget=budget, interval=spec.interval,
                                        probe_timeout=probe_timeout, title=title,
                                        secrets=ctx.secrets)
    except ValueError as exc:
        return StepOutcome("failed", detail=f"{what}: {ctx.mask(str(exc))}")
    shown = script.masked()
    if ctx.check_mode:
        return StepOutcome("check", command=shown,
                           detail=f"would run on {on} and wait up to {format_duration(timeout)}")
    res = await remote.run_probe(ctx, script, budget=budget, probe_timeout=probe_timeout)
    log = ctx.mask(res.log)
    if res.status == "ok":
        what_came = ctx.mask(res.summary) + (" open" if spec.tcp is not None else "")
        return StepOutcome("ok", command=shown, stdout=log,
                           detail=f"{what_came} after {res.attempts} probe(s) from {on}")
    if res.status == "gave-up":
        return StepOutcome("timeout", command=shown, stdout=log,
                           detail=f"gave up after {format_duration(timeout)} ({res.attempts} "
                                  f"probes from {on}); last: {ctx.mask(res.last)}")
    status = res.status if res.status in ("unreachable", "timeout") else "failed"
    return StepOutcome(status, command=shown, stdout=log, detail=ctx.mask(res.detail))
