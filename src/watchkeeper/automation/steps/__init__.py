"""Step kinds: one module each, exposing ``async def execute(step, ctx) -> StepOutcome``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from watchkeeper.automation.runbook import Step
from watchkeeper.automation.steps import (
                                          approval,
                                          check,
                                          copy,
                                          http,
                                          run,
                                          runbook_call,
                                          script,
                                          wait,
)
from watchkeeper.automation.steps.base import CheckRunner, StepContext, StepOutcome

__all__ = ["CheckRunner", "EXECUTORS", "StepContext", "StepOutcome"]

EXECUTORS: dict[str, Callable[[Step, StepContext], Awaitable[StepOutcome]]] = {
    "run": run.execute,
    "script": script.execute,
    "copy": copy.execute,
    "http": http.execute,
    "wait": wait.execute,
    "check": check.execute,
    "approval": approval.execute,
    "runbook": runbook_call.execute,
}
