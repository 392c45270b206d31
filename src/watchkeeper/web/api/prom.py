"""Prometheus's HTTP API: /api/v1/query, /query_range, /series, /labels, /label/NAME/values.

Answers use Prometheus's envelope (``{"status": "success", "data": ...}``), so
Grafana's Prometheus data source and other clients work unchanged. Parameters
may come in the query string or as a form body (GET and POST, as Prometheus);
as in Go's ``Request.FormValue``, a form value wins over the query string and
the first of repeated values counts. Parameters are checked in Prometheus's
order and refused with its messages (HTTP 400, ``errorType: bad_data``).
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request, Response

from watchkeeper.errors import QueryError
from watchkeeper.query.selector import Matcher, parse_selector
from watchkeeper.web.api.params import parse_step, parse_time
from watchkeeper.web.state import AppState

router = APIRouter(tags=["prometheus"])

MAX_FORM_BYTES = 10 * 1024 * 1024  # as Go's ParseForm: a larger body is refused
MAX_POINTS = 11_000
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_SERIES_START = -86400 * 365 * 10  # /series without start: ten years back


async def _form_body(request: Request) -> list[tuple[str, str]]:
    """The urlencoded form body of a POST (other content types carry no parameters)."""
    ctype = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if request.method != "POST" or ctype != "application/x-www-form-urlencoded":
        return []
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_FORM_BYTES:
            raise QueryError(f"error parsing form values: the request body is larger than "
                             f"{MAX_FORM_BYTES // (1024 * 1024)} MiB")
        chunks.append(chunk)
    # invalid UTF-8 becomes U+FFFD, which the query parser then refuses with its position
    text = b"".join(chunks).decode("utf-8", errors="replace")
    return parse_qsl(text, keep_blank_values=True, errors="replace")


async def _params(request: Request) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for k, v in await _form_body(request):
        out.setdefault(k, []).append(v)
    for k, v in request.query_params.multi_items():
        out.setdefault(k, []).append(v)
    return out


def _one(params: dict[str, list[str]], key: str) -> str | None:
    vals = params.get(key)
    return vals[0] if vals else None


def _ok(data: Any) -> dict[str, Any]:
    return {"status": "success", "data": data}


def _ok_json(data: bytes) -> Response:
    """The success envelope around a ``data`` object the query engine already serialised."""
    return Response(b'{"status":"success","data":' + data + b"}", media_type="application/json")


def _bad_param(name: str, exc: QueryError) -> QueryError:
    """``exc`` as Prometheus words an error in a parameter: ``invalid parameter "query": ...``."""
    if exc.message.startswith("invalid parameter "):
        return exc
    err = QueryError(f'invalid parameter "{name}": {exc.message}', hint=exc.hint)
    err.error_type = exc.error_type
    return err


async def _evaluate(name: str, func: Any, *args: Any) -> Any:
    """Run an engine call in a thread; its bad-input errors name parameter ``name``."""
    try:
        return await asyncio.to_thread(func, *args)
    except QueryError as exc:
        if exc.error_type != "bad_data":
            raise
        raise _bad_param(name, exc) from None


def _matchers(params: dict[str, list[str]]) -> list[list[Matcher]]:
    out = []
    for text in params.get("match[]", []):
        try:
            out.append(parse_selector(text))
        except QueryError as exc:
            raise _bad_param("match[]", exc) from None
    return out


@router.get("/query")
@router.post("/query")
async def query(request: Request) -> Response:
    """An instant query: ``query``, ``time`` (default now)."""
    state: AppState = request.app.state.wk
    p = await _params(request)
    t = parse_time(_one(p, "time"), state.clock.time())
    expr = _one(p, "query") or ""
    if not expr.strip():
        raise QueryError('invalid parameter "query": no expression found in input')
    return _ok_json(await _evaluate("query", state.query.instant_json, expr, t))


@router.get("/query_range")
@router.post("/query_range")
async def query_range(request: Request) -> Response:
    """A range query: ``query``, ``start``, ``end``, ``step`` (seconds or a duration)."""
    state: AppState = request.app.state.wk
    p = await _params(request)
    start = parse_time(_one(p, "start"), None, "start")
    end = parse_time(_one(p, "end"), None, "end")
    if end < start:
        raise QueryError('invalid parameter "end": end timestamp must not be before start time')
    step = parse_step(_one(p, "step"))
    if round(step * 1000) <= 0:  # times are milliseconds: a shorter step is no step
        raise QueryError('invalid parameter "step": zero or negative query resolution step widths '
                         "are not accepted. Try a positive integer")
    # Prometheus divides durations in integer nanoseconds: 11,000.5 steps are 11,000 points
    if round((end - start) * 1e9) // round(step * 1e9) > MAX_POINTS:
        raise QueryError("exceeded maximum resolution of 11,000 points per timeseries. "
                         "Try decreasing the query resolution (?step=XX)")
    expr = _one(p, "query") or ""
    if not expr.strip():
        raise QueryError('invalid parameter "query": no expression found in input')
    return _ok_json(await _evaluate("query", state.query.range_json, expr, start, end, step))


@router.get("/series")
@router.post("/series")
async def series(request: Request) -> dict[str, Any]:
    """The label sets of the series any ``match[]`` selects (with samples in ``start``..``end``)."""
    state: AppState = request.app.state.wk
    p = await _params(request)
    if not p.get("match[]"):
        raise QueryError("no match[] parameter provided")
    now = state.clock.time()
    start = parse_time(_one(p, "start"), now + _SERIES_START, "start")
    end = parse_time(_one(p, "end"), now, "end")
    _matchers(p)  # refuse a bad selector with its parameter's name before the engine runs
    return _ok(await _evaluate("match[]", state.query.series, p["match[]"], start, end))


@router.get("/labels")
@router.post("/labels")
async def labels(request: Request) -> dict[str, Any]:
    """Every label name, or those of the series ``match[]`` selects."""
    state: AppState = request.app.state.wk
    p = await _params(request)
    matchers = _matchers(p) or None
    return _ok(sorted(await asyncio.to_thread(state.tsdb.label_names, matchers)))


@router.get("/label/{name}/values")
async def label_values(name: str, request: Request) -> dict[str, Any]:
    """Every value of label ``name`` (``__name__``: metric names), optionally within ``match[]``."""
    state: AppState = request.app.state.wk
    if not _LABEL_NAME_RE.fullmatch(name):
        raise QueryError(f"invalid label name: {json.dumps(name, ensure_ascii=False)}")
    p = await _params(request)
    matchers = _matchers(p) or None
    return _ok(sorted(await asyncio.to_thread(state.tsdb.label_values, name, matchers)))


@router.get("/status/buildinfo")
async def buildinfo() -> dict[str, Any]:
    """As Prometheus answers, so clients such as Grafana can tell what they talk to."""
    from watchkeeper import __version__

    return _ok({"version": "2.42.0", "revision": "watchkeeper-" + __version__, "branch": "",
                "buildUser": "", "buildDate": "", "goVersion": "", "application": "watchkeeper"})


@router.get("/metadata")
async def metadata(request: Request, metric: str | None = None,
                   limit: int | None = None) -> dict[str, Any]:
    """Metric metadata, as far as the store knows it: every metric name, type unknown."""
    state: AppState = request.app.state.wk
    names = await asyncio.to_thread(state.tsdb.label_values, "__name__")
    if metric is not None:
        names = [n for n in names if n == metric]
    if limit is not None and limit >= 0:
        names = names[:limit]
    return _ok({n: [{"type": "unknown", "help": "", "unit": ""}] for n in names})
