"""Health, status, the event log, and (with a token) reload."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Query, Request

from watchkeeper import __version__
from watchkeeper.errors import InputError
from watchkeeper.web.state import AppState

router = APIRouter(tags=["server"])
mutating = APIRouter(tags=["server"])


@router.get("/status")
async def status(request: Request) -> dict[str, Any]:
    """A summary of the running server: uptime, checks by state, store size."""
    state: AppState = request.app.state.wk
    counts: dict[str, int] = {"OK": 0, "WARNING": 0, "CRITICAL": 0, "UNKNOWN": 0}
    for name in state.monitor.configs:
        st = state.monitor.statuses.get(name)
        if st is not None:
            counts[st.hard_state.name] += 1
    stats = await asyncio.to_thread(state.tsdb.stats)
    return {
        "version": __version__,
        "uptime_seconds": state.clock.time() - state.started,
        "config": state.config_path,
        "checks": {"total": len(state.monitor.configs), "by_state": counts},
        "collector": state.monitor.collector is not None,
        "store": stats,
        "counters": dict(state.monitor.counters),
        "events": await asyncio.to_thread(state.eventlog.count),
    }


@router.get("/events")
async def events(request: Request, kind: str | None = None,
                 limit: int = Query(100, ge=1, le=10000)) -> dict[str, Any]:
    state: AppState = request.app.state.wk
    items = await asyncio.to_thread(state.eventlog.list, kind=kind, limit=limit)
    return {"events": [e.to_dict() for e in items]}


@mutating.post("/reload")
async def reload(request: Request) -> dict[str, Any]:
    """Re-read the config; an invalid one is refused (422, with its errors) and the old one stays."""
    state: AppState = request.app.state.wk
    if state.reload is None:
        raise InputError("this server cannot reload: it was started without a reload hook",
                         hint="restart it to apply a new config")
    return await state.reload("api")
