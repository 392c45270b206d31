"""Run one check under its timeout, whatever it does, and turn the outcome into a result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any

from watchkeeper.errors import WatchkeeperError
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import Check, CheckContext, CheckResult, Sample, State

__all__ = ["execute", "result_samples", "SUMMARY_LIMIT"]

SUMMARY_LIMIT = 1000
DETAILS_LIMIT = 64 * 1024


def _clip(text: str, limit: int) -> str:
    text = text if isinstance(text, str) else str(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


async def execute(config: CheckConfig, check: Check | None = None, *,
                  resources: Mapping[str, Any] | None = None) -> CheckResult:
    """Run ``config``'s check once. Never raises, except CancelledError.

    A check that overruns its timeout is cut off and CRITICAL ("timed out after
    5s"); one that raises is UNKNOWN with the error as its summary; one that
    returns something that is not a CheckResult is UNKNOWN too.
    """
    started = time.perf_counter()
    try:
        if check is None:
            check = config.build()
        ctx = CheckContext(timeout=config.timeout, resources=resources or {})
        # a small grace period lets a check report its own timeout with detail
        async with asyncio.timeout(config.timeout + 0.25):
            result = await check.run(ctx)
        if not isinstance(result, CheckResult):
            result = CheckResult(State.UNKNOWN, f"check returned {type(result).__name__}, not a result")
    except TimeoutError:
        result = CheckResult(State.CRITICAL, f"timed out after {config.timeout:g}s")
    except asyncio.CancelledError:
        raise
    except WatchkeeperError as exc:
        result = CheckResult(State.UNKNOWN, str(exc).splitlines()[0])
    except Exception as exc:  # a broken check must never take the server down
        result = CheckResult(State.UNKNOWN, f"check failed: {type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - started
    if not result.duration_seconds:
        result.duration_seconds = elapsed
    result.summary = _clip(result.summary.splitlines()[0] if result.summary else "", SUMMARY_LIMIT)
    result.details = _clip(result.details or "", DETAILS_LIMIT)
    return result


def result_samples(config: CheckConfig, result: CheckResult, ts: float) -> list[Sample]:
    """The series a check result becomes: the ``watchkeeper_check_*`` ones and its own metrics.

    ``watchkeeper_check_up`` is 1 when the state is OK or WARNING (the service
    answers), 0 otherwise. A check's own metrics get ``check`` (and the check's
    configured labels) added unless they already carry them; a scrape keeps
    its ``job``/``instance`` labels as Prometheus would.
    """
    base = {"check": config.name, "type": config.type, **config.labels}
    out = [
        Sample("watchkeeper_check_up", base, 1.0 if result.state in (State.OK, State.WARNING) else 0.0, ts),
        Sample("watchkeeper_check_state", base, float(int(result.state)), ts),
        Sample("watchkeeper_check_duration_seconds", base, float(result.duration_seconds), ts),
    ]
    for m in result.metrics:
        labels = dict(m.labels)
        if config.type != "scrape":
            labels.setdefault("check", config.name)
        for k, v in config.labels.items():
            labels.setdefault(k, v)
        out.append(Sample(m.name, labels, m.value, m.timestamp if m.timestamp is not None else ts))
    return out
