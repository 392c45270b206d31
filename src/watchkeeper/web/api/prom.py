"""Prometheus's HTTP API: /api/v1/query, /query_range, /series, /labels, /label/NAME/values.

Answers use Prometheus's envelope (``{"status": "success", "data": ...}``), so
Grafana's Prometheus data source and other clients work unchanged. Parameters
may come in the query string or as a form body (GET and POST, as Prometheus).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response

from watchkeeper.web.api.params import parse_step, parse_time
from watchkeeper.web.state import AppState

router = APIRouter(tags=["prometheus"])


async def _params(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in request.query_params.multi_items():
        out.setdefault(k, []).append(v)
    if request.method == "POST":
        form = await request.form()
        for k, v in form.multi_items():
            out.setdefault(k, []).append(str(v))
    return out


def _one(params: dict[str, list[str]], key: str) -> str | None:
    vals = params.get(key)
    return vals[-1] if vals else None


def _ok(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


def _ok_json(data: bytes) -> Response:
    """The success envelope around a ``data`` object the query engine already serialised."""
    return Response(b'{"status":"success","data":' + data + b"}", media_type="application/json")


@router.api_route("/query", methods=["GET", "POST"])
async def query(request: Request) -> Response:
    state: AppState = request.app.state.wk
    p = await _params(request)
    expr = _one(p, "query") or ""
    t = parse_time(_one(p, "time"), state.clock.time())
    if not expr:
        from watchkeeper.errors import QueryError

        raise QueryError('invalid parameter "query": missing')
    return _ok_json(await asyncio.to_thread(state.query.instant_json, expr, t))


@router.api_route("/query_range", methods=["GET", "POST"])
async def query_range(request: Request) -> Response:
    state: AppState = request.app.state.wk
    p = await _params(request)
    from watchkeeper.errors import QueryError

    expr = _one(p, "query") or ""
    if not expr:
        raise QueryError('invalid parameter "query": missing')
    if _one(p, "start") is None or _one(p, "end") is None:
        raise QueryError('invalid parameter "start"/"end": both are required')
    start = parse_time(_one(p, "start"), 0, "start")
    end = parse_time(_one(p, "end"), 0, "end")
    step = parse_step(_one(p, "step"))
    return _ok_json(await asyncio.to_thread(state.query.range_json, expr, start, end, step))


@router.api_route("/series", methods=["GET", "POST"])
async def series(request: Request) -> dict[str, Any]:
    state: AppState = request.app.state.wk
    p = await _params(request)
    now = state.clock.time()
    start = parse_time(_one(p, "start"), now - 86400 * 365 * 10, "start")
    end = parse_time(_one(p, "end"), now, "end")
    return _ok(await asyncio.to_thread(state.query.series, p.get("match[]", []), start, end))


@router.api_route("/labels", methods=["GET", "POST"])
async def labels(request: Request) -> dict[str, Any]:
    state: AppState = request.app.state.wk
    return _ok(sorted(await asyncio.to_thread(state.tsdb.label_names)))


@router.get("/label/{name}/values")
async def label_values(name: str, request: Request) -> dict[str, Any]:
    state: AppState = request.app.state.wk
    return _ok(sorted(await asyncio.to_thread(state.tsdb.label_values, name)))
