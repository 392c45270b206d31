"""/api/v1/checks: each check's current state, and its history of results."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request

from watchkeeper.errors import NotFoundError
from watchkeeper.monitor.service import check_history
from watchkeeper.web.state import AppState

router = APIRouter(tags=["checks"])


def _entry(state: AppState, name: str) -> dict[str, Any]:
    mon = state.monitor
    cfg = mon.configs[name]
    status = mon.statuses.get(name)
    out: dict[str, Any] = {"name": name, "type": cfg.type, "interval": cfg.interval,
                           "labels": dict(cfg.labels)}
    if status is not None:
        out.update(status.to_dict())
    job = state.scheduler.jobs.get(f"check:{name}") if state.scheduler else None
    if job is not None:
        out["runs"] = job.runs
        out["skipped"] = job.skipped
    return out


@router.get("/checks")
async def list_checks(request: Request) -> dict[str, Any]:
    """Every configured check with its current (soft and hard) state."""
    state: AppState = request.app.state.wk
    return {"checks": [_entry(state, n) for n in sorted(state.monitor.configs)]}


@router.get("/checks/{name}")
async def get_check(name: str, request: Request,
                    limit: int = Query(100, ge=1, le=10000)) -> dict[str, Any]:
    """One check's state and its newest results (``history``, newest first)."""
    state: AppState = request.app.state.wk
    if name not in state.monitor.configs:
        raise NotFoundError(f"no check named {name!r}",
                            hint="GET /api/v1/checks lists the configured checks")
    out = _entry(state, name)
    # a result queued for the writer is as real as a stored one: the newest come first
    unwritten = state.monitor.unwritten_history(name)
    stored = await asyncio.to_thread(check_history, state.engine, name, limit=limit)
    seen = {(h["ts"], h["summary"]) for h in unwritten}
    out["history"] = (unwritten + [h for h in stored if (h["ts"], h["summary"]) not in seen])[:limit]
    return out
