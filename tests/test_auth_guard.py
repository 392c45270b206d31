"""Every endpoint that changes something refuses a request without the API token."""

from __future__ import annotations

import re
from unittest.mock import MagicMock

import httpx
import pytest

from watchkeeper.web.app import create_app


def _app() -> object:
    state = MagicMock()
    state.token = "guard-token-0123456789abcdef"
    state.alert_intake_token = None
    state.alert_intake_loopback = False
    return create_app(state)


# Prometheus's read API takes POST for long queries; it changes nothing
READ_ONLY_POSTS = {"/api/v1/query", "/api/v1/query_range", "/api/v1/series", "/api/v1/labels"}


def _mutating_routes() -> list[tuple[str, str]]:
    schema = _app().openapi()  # type: ignore[attr-defined]
    out = []
    for path, ops in schema["paths"].items():
        for method in ops:
            if method.upper() not in ("GET", "HEAD", "OPTIONS") and path not in READ_ONLY_POSTS:
                out.append((method.upper(), re.sub(r"\{[^}]+\}", "x", path)))
    return sorted(out)


ROUTES = _mutating_routes()


def test_the_api_has_mutating_endpoints_to_guard() -> None:
    paths = {p for _, p in ROUTES}
    assert {"/api/v1/reload", "/api/v1/runs", "/api/v1/exec", "/api/v2/silences",
            "/api/v2/alerts"} <= paths


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_mutating_endpoint_needs_the_token(method: str, path: str) -> None:
    transport = httpx.ASGITransport(app=_app())  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789"}):
            resp = await client.request(method, path, json={}, headers=headers)
            assert resp.status_code == 401, (method, path, resp.status_code, resp.text)
