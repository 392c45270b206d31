"""The run engine: a runbook, its params and hosts in; a recorded run out.

How a run goes:

1. :meth:`RunEngine.prepare` checks the params (types, defaults; a bad one raises
   :class:`~watchkeeper.automation.runbook.ParamError` before anything is recorded
   or run) and records the run (``pending``, event ``run.started``).
2. :meth:`RunEngine.execute` runs it. Hosts go in batches: ``parallel`` is one
   batch of every host; ``rolling`` takes ``batch`` hosts (or a percentage) at a
   time and halts the rollout, before the next batch, once the failed hosts are
   more than ``max_fail_percentage`` of all targets (hosts not reached are
   recorded ``skipped``). On each host the ``steps`` run in order; when they all
   pass, the ``verify`` steps; when either fails, the ``on_failure`` steps run on
   that host (with ``{{ failure.step }}``, ``{{ failure.stderr }}``...).
3. Every step on every host is a ``run_steps`` row (command masked, exit code,
   capped output, diff, duration); each host gets a ``result`` row; the run ends
   ``ok``, ``failed``, ``rejected`` (an approval said no), ``cancelled``, and the
   event log gets ``run.finished``.

Per step: ``when`` (skip unless true), ``retries``/``delay`` (try again after a
failure or timeout; never after unreachable), ``timeout``, ``register`` (results
under ``{{ steps.NAME.stdout }}``, ``.rc``, ``.changed``...; every step is also
registered under its own name), ``ignore_errors``, ``changed_when``,
``failed_when`` (expressions that see the step's result as ``result``).

``check_mode`` (``--check``) renders every command exactly as it would run on each
host and records it with status ``check``; nothing runs except the read-only
probes ``copy`` uses to show its diff.

Cancel: :meth:`RunStore.cancel` stops a run executing here at once, and one
executing in another process within the store's ``poll_interval``.
"""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchkeeper.automation.executors.base import Executor, OutputCallback
from watchkeeper.automation.hosts import Host
from watchkeeper.automation.runbook import (
    Runbook,
    RunbookLibrary,
    Step,
    load_runbook,
    masked_params,
    validate_params,
)
from watchkeeper.automation.runs import RunRecord, RunStore
from watchkeeper.automation.steps import EXECUTORS
from watchkeeper.automation.steps.approval import ask as ask_approval
from watchkeeper.automation.steps.base import CheckRunner, StepContext, StepOutcome
from watchkeeper.automation.templates import SecretValue, TemplateError, evaluate, render_text
from watchkeeper.clock import Clock, SystemClock
from watchkeeper.errors import InputError, WatchkeeperError

__all__ = ["PreparedRun", "RunEngine", "target_pattern"]

FAILING = frozenset({"failed", "unreachable", "timeout", "rejected", "cancelled"})
MAX_DEPTH = 8


def target_pattern(runbook: Runbook, params: Mapping[str, Any]) -> str:
    """The host pattern a runbook targets, rendered with its (validated) params.

    Raises TemplateError when ``targets`` does not render.
    """
    values = validate_params(runbook, params)
    return render_text(runbook.targets, {"params": values}, what=f"{runbook.name}: targets").strip()


def default_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass
class PreparedRun:
    """A recorded run about to execute: what :meth:`RunEngine.prepare` gives back."""

    run_id: str
    runbook: Runbook
    params: dict[str, Any]
    hosts: list[Host]
    trigger: str
    started_by: str
    check_mode: bool
    alert: dict[str, Any] | None
    parent: str | None = None
    depth: int = 0
    secrets: list[str] = field(default_factory=list)


def _cut_off(kind: str, timeout: float) -> float:
    """When the engine stops waiting for a step with ``timeout``. ``wait`` and ``http``
    keep to their timeout themselves (a remote probe loop gets exactly that budget and
    reports what it saw last), so the engine only backs them up, a little later: under
    load the SSH connection before the loop must not turn the step's own answer into
    a bare cut-off."""
    if kind in ("wait", "http"):
        return timeout + min(10.0, max(2.0, timeout * 0.5))
    return timeout


class RunEngine:
    """Runs runbooks on hosts through executors, recording everything in a :class:`RunStore`.

    ``executors`` is an :class:`~watchkeeper.automation.executors.base.Executor` used for
    every host, or an object with ``executor_for(host) -> Executor`` (local for
    ``connection: local``, SSH otherwise). ``check_runner`` runs a watchkeeper check
    by name (for ``check`` steps and ``wait: {check: ...}``). ``library`` resolves
    ``runbook:`` steps by name (else a path next to the calling runbook).
    ``http_transport`` is handed to httpx (tests may pass one; default: the network).
    """

    def __init__(self, executors: Any, runs: RunStore, clock: Clock | None = None, *,
                 check_runner: CheckRunner | None = None, library: RunbookLibrary | None = None,
                 http_transport: Any = None) -> None:
        self.executors = executors
        self.runs = runs
        self.clock = clock or SystemClock()
        self.check_runner = check_runner
        self.library = library
        self.http_transport = http_transport
        self._gates: dict[tuple[str, str, str], asyncio.Future[StepOutcome]] = {}
        self._active: dict[str, PreparedRun] = {}

    def executor_for(self, host: Host) -> Executor:
        pick = getattr(self.executors, "executor_for", None)
        return pick(host) if pick is not None else self.executors  # type: ignore[no-any-return]

    # ------------------------------------------------------------ public

    def prepare(self, runbook: Runbook, params: Mapping[str, Any], hosts: list[Host], *,
                trigger: str = "cli", started_by: str | None = None, check_mode: bool = False,
                alert: Mapping[str, Any] | None = None, parent: str | None = None,
                depth: int = 0) -> PreparedRun:
        """Validate params and record the run (``pending``). Raises ParamError or InputError
        (no hosts) before anything is recorded."""
        values = validate_params(runbook, params)
        if not hosts:
            raise InputError(f"runbook {runbook.name}: no hosts to run on (targets "
                             f"{runbook.targets!r} selected none)")
        who = started_by or default_user()
        run_id = self.runs.create(runbook.name, trigger=trigger, started_by=who,
                                  params=masked_params(runbook, values),
                                  targets=[h.name for h in hosts], check_mode=check_mode,
                                  alert=alert, parent=parent)
        secrets = [str(v) for k, v in values.items()
                   if v is not None and runbook.params[k].secret]
        return PreparedRun(run_id, runbook, values, list(hosts), trigger, who, check_mode,
                           dict(alert) if alert else None, parent, depth, secrets)

    async def run(self, runbook: Runbook, params: Mapping[str, Any], hosts: list[Host], *,
                  trigger: str = "cli", started_by: str | None = None, check_mode: bool = False,
                  alert: Mapping[str, Any] | None = None, parent: str | None = None,
                  on_output: OutputCallback | None = None) -> RunRecord:
        """Prepare and execute a run; return its record. See :meth:`prepare` for errors."""
        prep = self.prepare(runbook, params, hosts, trigger=trigger, started_by=started_by,
                            check_mode=check_mode, alert=alert, parent=parent)
        return await self.execute(prep, on_output=on_output)

    async def execute(self, prep: PreparedRun, *, on_output: OutputCallback | None = None) -> RunRecord:
        """Execute a prepared run to its end (or until cancelled) and return its record.

        If the calling task is cancelled, the run is recorded ``cancelled`` and the
        cancellation goes on.
        """
        run_id = prep.run_id
        self.runs.set_status(run_id, "running")
        if self.runs.status(run_id) != "running":  # cancelled before it started
            return self.runs.get(run_id)
        self._active[run_id] = prep
        body = asyncio.create_task(self._body(prep, on_output), name=f"run-{run_id[:8]}")
        loop = asyncio.get_running_loop()
        def cancel_body() -> None:
            loop.call_soon_threadsafe(body.cancel)

        self.runs.on_cancel(run_id, cancel_body)
        watcher = asyncio.create_task(self._watch_cancel(run_id, body))
        try:
            await asyncio.wait({body})
        except asyncio.CancelledError:
            body.cancel()
            await asyncio.gather(body, return_exceptions=True)
            self._finish_cancelled(run_id, "cancelled: the task running it was stopped")
            raise
        finally:
            watcher.cancel()
            await asyncio.gather(watcher, return_exceptions=True)
            self.runs.on_cancel(run_id, None)
            self._active.pop(run_id, None)
            for key in [k for k in self._gates if k[0] == run_id]:
                del self._gates[key]
        if body.cancelled():
            self._finish_cancelled(run_id, "cancelled")
        elif body.exception() is not None:
            exc = body.exception()
            self.runs.close_open_steps(run_id, "failed")
            self.runs.set_status(run_id, "failed", summary=f"internal error: {exc!r}")
            raise exc  # type: ignore[misc]
        else:
            status, summary = body.result()
            self.runs.set_status(run_id, status, summary=summary)
        return self.runs.get(run_id)

    async def run_on_failure(self, prep: PreparedRun, failure: Mapping[str, Any],
                             *, on_output: OutputCallback | None = None) -> str:
        """Run the runbook's ``on_failure`` steps on every host of a finished run (the closed
        loop: the run passed but the alert or check still fails). Recorded on the same run
        (phase ``on_failure``); ``{{ failure.* }}`` is ``failure``. Returns "ok" or "failed"."""
        rb = prep.runbook
        if not rb.on_failure:
            return "ok"

        async def one(host: Host) -> str:
            tctx = self._context(prep, host)
            tctx["failure"] = dict(failure)
            status, _ = await self._phase(prep, "on_failure", rb.on_failure, host,
                                          self.executor_for(host), tctx, on_output)
            return status

        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(one(h)) for h in prep.hosts]
        return "ok" if all(t.result() == "ok" for t in tasks) else "failed"

    def _finish_cancelled(self, run_id: str, summary: str) -> None:
        self.runs.close_open_steps(run_id, "cancelled")
        if self.runs.status(run_id) != "cancelled":
            self.runs.set_status(run_id, "cancelled", summary=summary)

    async def _watch_cancel(self, run_id: str, body: asyncio.Task[Any]) -> None:
        """Cancel ``body`` when another process marks the run cancelled."""
        while not body.done():
            await self.runs.wait_change(run_id, self.runs.poll_interval)
            if self.runs.status(run_id) == "cancelled":
                body.cancel()
                return

    # ------------------------------------------------------------ the run

    async def _body(self, prep: PreparedRun, on_output: OutputCallback | None) -> tuple[str, str]:
        rb = prep.runbook
        hosts = prep.hosts
        size = rb.strategy.batch_size(len(hosts))
        batches = [hosts[i:i + size] for i in range(0, len(hosts), size)]
        results: dict[str, str] = {}
        failed = 0
        halted: str | None = None
        for batch in batches:
            if halted:
                for h in batch:
                    results[h.name] = "skipped"
                    self.runs.record_host(prep.run_id, h.name, "skipped", halted)
                continue
            async with asyncio.TaskGroup() as tg:
                tasks = {h.name: tg.create_task(self._host(prep, h, on_output)) for h in batch}
            for name, task in tasks.items():
                results[name] = task.result()
            failed += sum(1 for h in batch if results[h.name] != "ok")
            if any(results[h.name] == "rejected" for h in batch):
                halted = "not run: the approval was rejected"
            elif rb.strategy.kind == "rolling" and failed and \
                    failed * 100 / len(hosts) > rb.strategy.max_fail_percentage:
                halted = (f"rollout halted: {failed} of {len(hosts)} hosts failed, more than "
                          f"max_fail_percentage {rb.strategy.max_fail_percentage:g}%")
        counts: dict[str, int] = {}
        for status in results.values():
            counts[status] = counts.get(status, 0) + 1
        summary = f"{len(hosts)} host{'s' if len(hosts) != 1 else ''}: " + ", ".join(
            f"{n} {s}" for s, n in sorted(counts.items(), key=lambda kv: (kv[0] != "ok", kv[0])))
        if halted and "rollout" in halted:
            summary += f"; {halted}"
        if prep.check_mode:
            summary = "dry run, nothing was changed; " + summary
        if any(s == "rejected" for s in results.values()):
            return "rejected", summary
        return ("ok" if all(s == "ok" for s in results.values()) else "failed"), summary

    def _context(self, prep: PreparedRun, host: Host) -> dict[str, Any]:
        rb = prep.runbook
        params = {k: (SecretValue(str(v)) if v is not None and rb.params[k].secret else v)
                  for k, v in prep.params.items()}
        ctx: dict[str, Any] = {
            "params": params,
            "vars": dict(host.vars),
            "host": {"name": host.name, "address": host.target, "port": host.port,
                     "user": host.user, "groups": sorted(host.groups), "labels": dict(host.labels),
                     "vars": dict(host.vars)},
            "steps": {},
            "alert": prep.alert or {},
            "run": {"id": prep.run_id, "runbook": rb.name, "check_mode": prep.check_mode,
                    "trigger": prep.trigger, "started_by": prep.started_by},
            "failure": {},
        }
        # the runbook's vars win over the host's, and may be templates over params and host
        merged = dict(host.vars)
        for key, value in rb.vars.items():
            merged[key] = (render_text(value, ctx, what=f"vars.{key}")
                           if isinstance(value, str) and ("{{" in value or "{%" in value) else value)
        ctx["vars"] = merged
        return ctx

    async def _host(self, prep: PreparedRun, host: Host, on_output: OutputCallback | None) -> str:
        rb = prep.runbook
        try:
            tctx = self._context(prep, host)
        except TemplateError as exc:
            self.runs.add_step(prep.run_id, phase="steps", step="(vars)", host=host.name,
                               status="failed", detail=str(exc))
            self.runs.record_host(prep.run_id, host.name, "failed", str(exc))
            return "failed"
        executor = self.executor_for(host)
        status, failure = await self._phase(prep, "steps", rb.steps, host, executor, tctx, on_output)
        if status == "ok" and rb.verify:
            status, failure = await self._phase(prep, "verify", rb.verify, host, executor, tctx,
                                                on_output)
        detail = ""
        if failure is not None:
            detail = f"{failure['phase']} {failure['step']!r}: {failure['status']}"
            if failure.get("detail"):
                detail += f" ({failure['detail']})"
        if status in ("failed", "timeout", "unreachable") and rb.on_failure:
            tctx["failure"] = failure or {}
            recovered, _ = await self._phase(prep, "on_failure", rb.on_failure, host, executor,
                                             tctx, on_output)
            detail += "; on_failure " + ("ran" if recovered == "ok" else f"also failed ({recovered})")
        self.runs.record_host(prep.run_id, host.name, status, detail)
        return status

    async def _phase(self, prep: PreparedRun, phase: str, steps: list[Step], host: Host,
                     executor: Executor, tctx: dict[str, Any],
                     on_output: OutputCallback | None) -> tuple[str, dict[str, Any] | None]:
        for step in steps:
            outcome = await self._step(prep, phase, step, host, executor, tctx, on_output)
            if outcome.status in FAILING and not step.ignore_errors:
                return outcome.status, {"phase": phase, "step": step.name, "status": outcome.status,
                                        "exit_code": outcome.exit_code, "stdout": outcome.stdout,
                                        "stderr": outcome.stderr, "detail": outcome.detail}
        return "ok", None

    async def _step(self, prep: PreparedRun, phase: str, step: Step, host: Host,
                    executor: Executor, tctx: dict[str, Any],
                    on_output: OutputCallback | None) -> StepOutcome:
        run_id = prep.run_id
        if step.when is not None:
            try:
                go = bool(evaluate(step.when, tctx, what=f"step {step.name!r}: when"))
            except TemplateError as exc:
                out = StepOutcome("failed", detail=str(exc))
                self.runs.add_step(run_id, phase=phase, step=step.name, host=host.name,
                                   status="failed", detail=out.detail)
                return out
            if not go:
                self.runs.add_step(run_id, phase=phase, step=step.name, host=host.name,
                                   status="skipped", detail=f"when: {step.when} is false")
                out = StepOutcome("skipped", detail="when is false")
                self._register(step, tctx, out)
                return out
        kind = step.kind
        sid: int | None = None
        if kind != "approval":
            sid = self.runs.add_step(run_id, phase=phase, step=step.name, host=host.name)
        attempts = 1 + step.retries
        outcome = StepOutcome("failed")
        tried = 0
        for attempt in range(1, attempts + 1):
            tried = attempt
            ctx = StepContext(host=host, executor=executor, template=tctx,
                              check_mode=prep.check_mode, run_id=run_id, clock=self.clock,
                              base_dir=prep.runbook.base_dir, secrets=list(prep.secrets),
                              timeout=step.timeout, on_output=on_output,
                              check_runner=self.check_runner, http_transport=self.http_transport,
                              engine=self, phase=phase)
            try:
                if step.timeout is not None and kind not in ("run", "script", "copy", "approval",
                                                             "runbook"):
                    async with asyncio.timeout(_cut_off(kind, step.timeout)):
                        outcome = await EXECUTORS[kind](step, ctx)
                else:
                    outcome = await EXECUTORS[kind](step, ctx)
            except TemplateError as exc:
                outcome = StepOutcome("failed", detail=str(exc))
                break
            except TimeoutError:
                outcome = StepOutcome("timeout", detail=f"did not finish within {step.timeout:g}s")
            outcome = self._judge(step, tctx, outcome, prep.check_mode)
            if outcome.status not in ("failed", "timeout"):
                break
            if attempt < attempts:
                await self.clock.sleep(step.delay)
        if attempts > 1 and tried > 1:
            note = (f"succeeded on attempt {tried} of {attempts}" if outcome.status == "ok"
                    else f"failed {tried} attempts")
            outcome.detail = f"{outcome.detail}; {note}" if outcome.detail else note
        if step.ignore_errors and outcome.status in FAILING:
            outcome.detail = (outcome.detail + "; " if outcome.detail else "") + "error ignored"
        if sid is not None:
            self.runs.finish_step(sid, status=outcome.status, exit_code=outcome.exit_code,
                                  stdout=outcome.stdout, stderr=outcome.stderr,
                                  changed=outcome.changed, detail=outcome.detail,
                                  command=outcome.command)
        self._register(step, tctx, outcome)
        return outcome

    def _judge(self, step: Step, tctx: dict[str, Any], outcome: StepOutcome,
               check_mode: bool) -> StepOutcome:
        """Apply failed_when / changed_when to a finished attempt."""
        if check_mode or outcome.status not in ("ok", "failed"):
            return outcome
        if step.failed_when is None and step.changed_when is None:
            return outcome
        scope = {**tctx, "result": self._registered(outcome)}
        try:
            if step.failed_when is not None:
                failed = bool(evaluate(step.failed_when, scope, what=f"step {step.name!r}: failed_when"))
                outcome.status = "failed" if failed else "ok"
            if step.changed_when is not None:
                outcome.changed = bool(evaluate(step.changed_when, scope,
                                                what=f"step {step.name!r}: changed_when"))
        except TemplateError as exc:
            outcome.status = "failed"
            outcome.detail = str(exc)
        if outcome.status != "ok":
            outcome.changed = False
        return outcome

    @staticmethod
    def _registered(outcome: StepOutcome) -> dict[str, Any]:
        return {"stdout": outcome.stdout, "stderr": outcome.stderr, "rc": outcome.exit_code,
                "exit_code": outcome.exit_code, "status": outcome.status,
                "changed": outcome.changed, "ok": outcome.ok,
                "failed": outcome.status in FAILING, "skipped": outcome.status == "skipped",
                "stdout_lines": outcome.stdout.splitlines(), "detail": outcome.detail,
                **outcome.data}

    def _register(self, step: Step, tctx: dict[str, Any], outcome: StepOutcome) -> None:
        reg = self._registered(outcome)
        steps = dict(tctx["steps"])
        steps[step.key] = reg
        steps[step.name] = reg
        tctx["steps"] = steps

    # ------------------------------------------------------------ for step kinds

    async def approval_gate(self, step: Step, ctx: StepContext) -> StepOutcome:
        """Ask for an approval once per run; every host waits for the same decision."""
        key = (ctx.run_id, ctx.phase, step.name)
        fut = self._gates.get(key)
        if fut is not None:
            return await asyncio.shield(fut)
        fut = asyncio.get_running_loop().create_future()
        self._gates[key] = fut
        try:
            outcome = await ask_approval(step, ctx)
        except BaseException:
            fut.cancel()
            raise
        fut.set_result(outcome)
        return outcome

    def _find_runbook(self, name: str, base_dir: Path) -> Runbook:
        local = Path(base_dir) / name
        for candidate in (local, local.with_name(local.name + ".yaml"),
                          local.with_name(local.name + ".yml")):
            if candidate.is_file():
                return load_runbook(candidate)
        if self.library is not None:
            return self.library.get(name)
        raise InputError(f"runbook {name!r} not found next to the calling runbook ({base_dir})")

    async def call_runbook(self, name: str, params: Mapping[str, Any], ctx: StepContext) -> StepOutcome:
        """Run runbook ``name`` on the current host as a child run of this one."""
        parent = self._active.get(ctx.run_id)
        depth = (parent.depth + 1) if parent else 1
        shown = f"runbook {name}"
        if depth > MAX_DEPTH:
            return StepOutcome("failed", command=shown,
                               detail=f"runbooks call each other more than {MAX_DEPTH} deep")
        try:
            rb = self._find_runbook(name, Path(ctx.base_dir))
            prep = self.prepare(rb, params, [ctx.host], trigger="runbook",
                                started_by=parent.started_by if parent else None,
                                check_mode=ctx.check_mode,
                                alert=parent.alert if parent else None, parent=ctx.run_id,
                                depth=depth)
        except WatchkeeperError as exc:
            return StepOutcome("failed", command=shown, detail=str(exc))
        rec = await self.execute(prep, on_output=ctx.on_output)
        changed = any(s.changed for s in rec.steps)
        status = {"ok": "ok", "rejected": "rejected", "cancelled": "cancelled"}.get(rec.status, "failed")
        if ctx.check_mode and status == "ok":
            status = "check"
        return StepOutcome(status, changed=changed, command=shown,
                           detail=f"child run {rec.id}: {rec.status}; {rec.summary}",
                           data={"run_id": rec.id, "run_status": rec.status})
