"""GET /api/v1/rules: rule groups, their health and last errors, in Prometheus's format."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request

from watchkeeper.errors import InputError
from watchkeeper.web.state import AppState

router = APIRouter(tags=["prometheus"])


@router.get("/rules")
async def rules(request: Request, type: str | None = Query(None)) -> dict[str, Any]:
    """As Prometheus's ``/api/v1/rules``; ``type=alert`` or ``type=record`` filters."""
    state: AppState = request.app.state.wk
    if type not in (None, "alert", "record"):
        raise InputError(f'invalid parameter "type": {type!r} is not "alert" or "record"')
    if state.rules is None:
        return {"status": "success", "data": {"groups": []}}
    return {"status": "success", "data": state.rules.rules_api(type_=type)}
