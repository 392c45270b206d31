"""Every endpoint that changes something refuses a request without a valid API token.

The routes are walked from the app itself (``app.routes``, so a route left out of the
OpenAPI schema is walked too). Each is sent no token, a wrong one, a named token that was
revoked and one that expired (real tokens in a real SQLite store): 401 every time.
Token management also refuses a valid token without the role ``admin`` (403).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import MagicMock

import httpx
import pytest
from fastapi import APIRouter
from fastapi.routing import APIRoute

from watchkeeper.auth import TokenStore
from watchkeeper.store.engine import open_engine
from watchkeeper.testing import FakeClock
from watchkeeper.web.app import create_app

MAIN = "guard-token-0123456789abcdef"


def _app(tokens: TokenStore | None = None) -> object:
    state = MagicMock()
    state.token = MAIN
    state.tokens = tokens
    state.alert_intake_token = None
    state.alert_intake_loopback = False
    return create_app(state)


# Prometheus's read API takes POST for long queries; it changes nothing
READ_ONLY_POSTS = {"/api/v1/query", "/api/v1/query_range", "/api/v1/query_exemplars",
                   "/api/v1/series", "/api/v1/labels", "/api/v1/format_query",
                   "/api/v1/parse_query"}
# reads that still need a token: who holds which token is for admins only
GUARDED_GETS = {"/api/v1/tokens"}


def _mutating_routes() -> list[tuple[str, str]]:
    schema = _app().openapi()  # type: ignore[attr-defined]
    out = []
    for path, ops in schema["paths"].items():
        for method in ops:
            method = method.upper()
            if method in ("GET", "HEAD", "OPTIONS") and path not in GUARDED_GETS:
                continue
            if path not in READ_ONLY_POSTS:
                out.append((method, re.sub(r"\{[^}]+\}", "1", path)))
    return sorted(out)


ROUTES = _mutating_routes()


def test_the_api_has_mutating_endpoints_to_guard() -> None:
    paths = {p for _, p in ROUTES}
    assert {"/api/v1/reload", "/api/v1/runs", "/api/v1/exec", "/api/v2/silences",
            "/api/v2/alerts", "/api/v1/runs/1/approve", "/api/v1/runs/1/reject",
            "/api/v1/tokens", "/api/v1/tokens/1"} <= paths
    assert ("GET", "/api/v1/tokens") in ROUTES and ("DELETE", "/api/v1/tokens/1") in ROUTES


def test_every_route_is_in_the_schema_walked_above() -> None:
    """The walk reads the OpenAPI schema: no router of web/api may hide a route from it."""
    import importlib
    import pkgutil

    import watchkeeper.web.api as api_pkg

    seen = 0
    for mod in pkgutil.iter_modules(api_pkg.__path__):
        module = importlib.import_module(f"watchkeeper.web.api.{mod.name}")
        for obj in vars(module).values():
            if isinstance(obj, APIRouter):
                for route in obj.routes:
                    assert isinstance(route, APIRoute), (mod.name, route)
                    assert route.include_in_schema, (mod.name, route.path)
                    seen += 1
    schema_ops = sum(len(ops) for ops in _app().openapi()["paths"].values())  # type: ignore[attr-defined]
    assert seen == schema_ops


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TokenStore, dict[str, str]]]:
    engine = open_engine(None, tmp_path_factory.mktemp("guard"))
    clock = FakeClock(1_700_000_000.0)
    store = TokenStore(engine, clock)
    revoked, info = store.create("gone", ["admin", "ops"], created_by="test")
    store.revoke(info.id, by="test")
    expired, _ = store.create("old", ["admin", "ops"], created_by="test", expires_in=60)
    plain, _ = store.create("viewer", ["dev"], created_by="test")
    clock.advance(61)
    try:
        yield store, {"revoked": revoked, "expired": expired, "plain": plain}
    finally:
        engine.dispose()


@pytest.mark.parametrize(("method", "path"), ROUTES, ids=[f"{m} {p}" for m, p in ROUTES])
async def test_mutating_endpoint_needs_the_token(method: str, path: str,
                                                 tokens: tuple[TokenStore, dict[str, str]]) -> None:
    store, made = tokens
    transport = httpx.ASGITransport(app=_app(store))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        for headers, says in (({}, "missing or wrong API token"),
                              ({"Authorization": "Bearer wrong-token-0123456789"},
                               "missing or wrong API token"),
                              ({"Authorization": "Bearer wk_not-a-token-of-ours"},
                               "missing or wrong API token"),
                              ({"Authorization": f"Basic {MAIN}"}, "missing or wrong API token"),
                              ({"Authorization": f"Bearer {made['revoked']}"}, "was revoked at"),
                              ({"Authorization": f"Bearer {made['expired']}"}, "expired at")):
            resp = await client.request(method, path, json={}, headers=headers)
            assert resp.status_code == 401, (method, path, resp.status_code, resp.text)
            if path == "/api/v2/alerts":  # Alertmanager's intake words it for Prometheus users
                says = "alert intake needs 'Authorization: Bearer TOKEN'"
            assert says in resp.json()["error"], (method, path, resp.text)
            assert resp.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(("method", "path"),
                         [("GET", "/api/v1/tokens"), ("POST", "/api/v1/tokens"),
                          ("DELETE", "/api/v1/tokens/1")])
async def test_token_management_needs_the_admin_role(method: str, path: str,
                                                     tokens: tuple[TokenStore, dict[str, str]]
                                                     ) -> None:
    store, made = tokens
    transport = httpx.ASGITransport(app=_app(store))  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as client:
        resp = await client.request(method, path, json={"name": "x"},
                                    headers={"Authorization": f"Bearer {made['plain']}"})
    assert resp.status_code == 403, resp.text
    assert resp.json() == {
        "error": "managing API tokens needs the role 'admin'; viewer has dev",
        "type": "ForbiddenError",
        "hint": "use a token with the role 'admin' (or the main token)"}


async def test_a_wrong_token_hears_the_same_whatever_tokens_exist(
        tokens: tuple[TokenStore, dict[str, str]], tmp_path: Path) -> None:
    """Only a token that matched hears that it expired or was revoked (it knows its own
    name); any other gets the same answer whether or not named tokens exist."""
    store, _ = tokens
    empty_engine = open_engine(None, tmp_path)
    answers = []
    try:
        for app in (_app(store), _app(TokenStore(empty_engine)), _app(None)):
            transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
            async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1") as c:
                for token in ("wk_" + "A" * 43, "nope"):
                    r = await c.post("/api/v1/reload", headers={"Authorization": f"Bearer {token}"})
                    answers.append((r.status_code, r.json()))
    finally:
        empty_engine.dispose()
    assert answers == [(401, {"error": "missing or wrong API token; send 'Authorization: Bearer "
                                       "TOKEN' (the token is in the data dir's 'token' file, or "
                                       "server.token / WATCHKEEPER_TOKEN)"})] * 6
