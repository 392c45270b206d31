"""The FastAPI application: health, metrics, Prometheus-compatible query API, our REST API."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from watchkeeper import __version__
from watchkeeper.errors import QueryError, WatchkeeperError
from watchkeeper.web.state import AppState

__all__ = ["create_app", "require_token"]

# answered in Prometheus's error envelope: {"status": "error", "errorType": ..., "error": ...}
_PROMETHEUS_PATHS = ("/api/v1/query", "/api/v1/series", "/api/v1/label")


def require_token(request: Request) -> str:
    """Dependency for every mutating endpoint: ``Authorization: Bearer TOKEN``."""
    state: AppState = request.app.state.wk
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), state.token.encode()):
        raise HTTPException(status_code=401, detail="missing or wrong API token; send "
                            "'Authorization: Bearer TOKEN' (the token is in the data dir's 'token' "
                            "file, or server.token / WATCHKEEPER_TOKEN)",
                            headers={"WWW-Authenticate": "Bearer"})
    return "api"


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
    )

    app.include_router(metrics.router)
    app.include_router(prom.router, prefix="/api/v1")
    app.include_router(checks.router, prefix="/api/v1")
    app.include_router(admin.router, prefix="/api/v1")
    app.include_router(admin.mutating, prefix="/api/v1", dependencies=[Depends(require_token)])
    app.include_router(rules.router, prefix="/api/v1")
    app.include_router(notifications.router, prefix="/api/v1")
    app.include_router(alerts.router, prefix="/api")
    app.include_router(alerts.mutating, prefix="/api", dependencies=[Depends(require_token)])
    app.include_router(automation.router, prefix="/api/v1")
    app.include_router(automation.mutating, prefix="/api/v1", dependencies=[Depends(require_token)])
    return app
