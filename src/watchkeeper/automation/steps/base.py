"""What every step kind gets (a :class:`StepContext`) and gives back (a :class:`StepOutcome`).

A step kind is one module exposing ``async def execute(step, ctx) -> StepOutcome``.
Steps never raise for a failing command or an unreachable host (that is an
outcome); a :class:`~watchkeeper.automation.templates.TemplateError` from
rendering is turned into a failed outcome by the engine.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from watchkeeper.automation.executors.base import ExecResult, Executor, OutputCallback
from watchkeeper.automation.hosts import Host
from watchkeeper.automation.templates import masked_text
from watchkeeper.clock import Clock

__all__ = ["CheckRunner", "StepContext", "StepOutcome", "outcome_from_exec"]

CheckRunner = Callable[[str], Awaitable[Any]]
"""``await check_runner(name) -> CheckResult``: run a watchkeeper check by name, now."""


@dataclass
class StepContext:
    """Where and how one step runs: the host, its executor, the template context, the mode."""

    host: Host
    executor: Executor
    template: dict[str, Any]
    check_mode: bool
    run_id: str
    clock: Clock
    base_dir: Any
    secrets: list[str] = field(default_factory=list)
    timeout: float | None = None
    on_output: OutputCallback | None = None
    check_runner: CheckRunner | None = None
    http_transport: Any = None
    engine: Any = None
    phase: str = "steps"

    def mask(self, text: str) -> str:
        return masked_text(text, self.secrets)


@dataclass
class StepOutcome:
    """What a step did on a host.

    ``status``: ok, failed, unreachable, timeout, skipped, check (dry run: nothing ran),
    rejected (an approval said no). ``command`` is masked; ``detail`` holds a diff, an
    HTTP status, a check summary or the reason for a failure; ``data`` extra fields
    registered under ``steps.NAME`` (``status_code``, ``json``, ``child_run``...).
    """

    status: str
    changed: bool = False
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    command: str = ""
    detail: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status in ("ok", "check", "skipped")


def outcome_from_exec(res: ExecResult, ctx: StepContext, command: str, *,
                      changed: bool = True) -> StepOutcome:
    """An executor's result as a step outcome (secret values masked in the output)."""
    detail = res.error or ""
    if res.truncated:
        detail = (detail + "; " if detail else "") + "output truncated"
    return StepOutcome(status=res.status, changed=changed and res.status == "ok",
                       exit_code=res.exit_code, stdout=ctx.mask(res.stdout),
                       stderr=ctx.mask(res.stderr), command=command, detail=ctx.mask(detail))
