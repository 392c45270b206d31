"""The FastAPI application: health, metrics, Prometheus-compatible query API, our REST API."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from watchkeeper import __version__
from watchkeeper.auth import ADMIN_ROLE, UNKNOWN_TOKEN, Identity, identify, require_role
from watchkeeper.errors import AuthenticationError, QueryError, WatchkeeperError
from watchkeeper.web.state import AppState

__all__ = ["create_app", "require_admin", "require_token"]

# answered in Prometheus's error envelope: {"status": "error", "errorType": ..., "error": ...}
_PROMETHEUS_PATHS = ("/api/v1/query", "/api/v1/series", "/api/v1/label")


def require_token(request: Request) -> Identity:
    """Dependency for every mutating endpoint: ``Authorization: Bearer TOKEN``.

    Answers the identity the token stands for (the main token is ``admin``, with every
    role; a named token its name and roles, see watchkeeper.auth), also kept in
    ``request.state.identity``. 401 for a missing, unknown, expired or revoked token.
    """
    state: AppState = request.app.state.wk
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    try:
        if scheme.lower() != "bearer":
            raise AuthenticationError(UNKNOWN_TOKEN)
        identity = identify(given, main_token=state.token, tokens=state.tokens)
    except AuthenticationError as exc:
        raise HTTPException(status_code=401, detail=exc.message,
                            headers={"WWW-Authenticate": "Bearer"}) from None
    request.state.identity = identity
    return identity


def require_admin(identity: Annotated[Identity, Depends(require_token)]) -> Identity:
    """Dependency for token management: the main token, or a token with the role ``admin``
    (403 naming the identity's roles otherwise)."""
    require_role(identity, ADMIN_ROLE, "managing API tokens")
    return identity


def create_app(state: AppState) -> FastAPI:
    app = FastAPI(title="watchkeeper", version=__version__,
                  description="Monitoring, alerting, automation and security for Linux hosts.")
    app.state.wk = state

    @app.exception_handler(WatchkeeperError)
    async def _wk_error(request: Request, exc: WatchkeeperError) -> JSONResponse:
        if request.url.path.startswith(_PROMETHEUS_PATHS):
            kind = getattr(exc, "error_type", "bad_data") if isinstance(exc, QueryError) else (
                "bad_data" if exc.http_status < 500 else "internal")
            return JSONResponse({"status": "error", "errorType": kind, "error": exc.message},
                                status_code=exc.http_status)
        body: dict[str, Any] = {"error": exc.message, "type": type(exc).__name__}
        if exc.hint:
            body["hint"] = exc.hint
        if hasattr(exc, "issues"):
            body["issues"] = [str(i) for i in exc.issues]
        return JSONResponse(body, status_code=exc.http_status)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        if request.url.path.startswith(_PROMETHEUS_PATHS):
            return JSONResponse({"status": "error", "errorType": "bad_data",
                                 "error": "; ".join(problems)}, status_code=400)
        return JSONResponse({"error": "invalid request", "issues": problems}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # 401, 404 (no such route), 405: the same body shape as every other error
        headers = getattr(exc, "headers", None)
        if request.url.path.startswith(_PROMETHEUS_PATHS):
            kind = "bad_data" if exc.status_code < 500 else "internal"
            return JSONResponse({"status": "error", "errorType": kind, "error": str(exc.detail)},
                                status_code=exc.status_code, headers=headers)
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code,
                            headers=headers)

    from watchkeeper.web.api import (
        admin,
        alerts,
        automation,
        checks,
        metrics,
        notifications,
        prom,
        rules,
        status,
        tokens,
    )

    app.include_router(metrics.router)
    app.include_router(prom.router, prefix="/api/v1")
    app.include_router(status.router, prefix="/api/v1")
    app.include_router(checks.router, prefix="/api/v1")
    app.include_router(admin.router, prefix="/api/v1")
    app.include_router(admin.mutating, prefix="/api/v1", dependencies=[Depends(require_token)])
    app.include_router(rules.router, prefix="/api/v1")
    app.include_router(notifications.router, prefix="/api/v1")
    app.include_router(alerts.router, prefix="/api")
    app.include_router(alerts.mutating, prefix="/api", dependencies=[Depends(require_token)])
    app.include_router(automation.router, prefix="/api/v1")
    app.include_router(automation.mutating, prefix="/api/v1", dependencies=[Depends(require_token)])
    app.include_router(tokens.router, prefix="/api/v1", dependencies=[Depends(require_admin)])
    return app
