"""GET /api/v1/notifications: the outbox, newest first, with every delivery attempt."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from fastapi import APIRouter, Query, Request
from sqlalchemy import select

from watchkeeper.errors import InputError
from watchkeeper.store.models import notification_attempts, outbox
from watchkeeper.web.state import AppState

router = APIRouter(tags=["alerts"])

STATUSES = ("pending", "sent", "dead")


def _list(state: AppState, status: str | None, receiver: str | None, limit: int) -> list[dict[str, Any]]:
    q = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if status:
        q = q.where(outbox.c.status == status)
    if receiver:
        q = q.where(outbox.c.receiver == receiver)
    with state.engine.connect() as conn:
        rows = conn.execute(q).all()
        ids = [r.id for r in rows]
        tries = conn.execute(select(notification_attempts)
                             .where(notification_attempts.c.outbox_id.in_(ids))
                             .order_by(notification_attempts.c.id)).all() if ids else []
    by_row: dict[int, list[dict[str, Any]]] = {}
    for t in tries:
        by_row.setdefault(t.outbox_id, []).append({
            "ts": t.ts, "ok": bool(t.ok), "duration_seconds": t.duration,
            "status_code": t.status_code, "error": t.error})
    out = []
    for r in rows:
        payload = json.loads(r.payload)
        out.append({
            "id": r.id, "receiver": r.receiver, "integration": r.integration,
            "group_key": r.group_key, "status": r.status, "created_at": r.created_at,
            "sent_at": r.sent_at, "next_attempt_at": r.next_attempt_at, "last_error": r.last_error,
            "alert_status": payload.get("status") if isinstance(payload, dict) else None,
            "alerts": len(payload.get("alerts", [])) if isinstance(payload, dict) else None,
            "attempts": by_row.get(r.id, []),
        })
    return out


@router.get("/notifications")
async def notifications(request: Request, status: str | None = None, receiver: str | None = None,
                        limit: int = Query(100, ge=1, le=10000)) -> dict[str, Any]:
    """Notifications in the outbox (newest first) with every delivery attempt."""
    if status is not None and status not in STATUSES:
        raise InputError(f"status {status!r} is not one of {', '.join(STATUSES)}")
    state: AppState = request.app.state.wk
    return {"notifications": await asyncio.to_thread(_list, state, status, receiver, limit)}
