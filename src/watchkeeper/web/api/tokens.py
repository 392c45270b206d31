"""Named API tokens over HTTP (admin only: the main token, or a token with the role ``admin``).

``GET /api/v1/tokens`` lists them (never the secret); ``POST /api/v1/tokens``
(``{"name", "roles", "expires"}``, ``expires`` a duration such as ``90d`` or null) makes
one and answers 201 with the token, the only time it is shown; ``DELETE
/api/v1/tokens/{id}`` revokes one. Each change is recorded in the event log under the
caller's identity.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from watchkeeper.auth import Identity, TokenStore
from watchkeeper.errors import EnvironmentError_, InputError
from watchkeeper.web.app import require_admin

__all__ = ["router"]

router = APIRouter(tags=["tokens"])
Admin = Annotated[Identity, Depends(require_admin)]


def _tokens(request: Request) -> TokenStore:
    store: TokenStore | None = request.app.state.wk.tokens
    if store is None:
        raise EnvironmentError_("named API tokens are not available in this server")
    return store


class NewToken(BaseModel):
    model_config = {"extra": "forbid"}

    name: str = Field(min_length=1, max_length=200)
    roles: list[str] = Field(default_factory=list)
    expires: str | float | None = None  # a duration (90d, 12h) or seconds; None: never


@router.get("/tokens")
async def list_tokens(request: Request, identity: Admin) -> dict[str, Any]:
    store = _tokens(request)
    now = store.clock.time()
    found = await asyncio.to_thread(store.list)
    return {"tokens": [t.to_dict(now) for t in found]}


@router.post("/tokens", status_code=201)
async def create_token(request: Request, body: NewToken, identity: Admin) -> JSONResponse:
    from watchkeeper.units import parse_duration

    store = _tokens(request)
    expires_in = None
    if body.expires is not None:
        try:
            expires_in = parse_duration(body.expires)
        except ValueError as exc:
            raise InputError(f"expires: {exc}") from None
    token, info = await asyncio.to_thread(store.create, body.name, body.roles,
                                          created_by=identity.name, expires_in=expires_in)
    return JSONResponse({"token": token, **info.to_dict(store.clock.time())}, status_code=201)


@router.delete("/tokens/{token_id}")
async def revoke_token(request: Request, token_id: int, identity: Admin) -> dict[str, Any]:
    store = _tokens(request)
    info = await asyncio.to_thread(store.revoke, token_id, by=identity.name)
    return info.to_dict(store.clock.time())
