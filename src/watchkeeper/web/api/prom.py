"""Prometheus's HTTP API for queries: /api/v1/query, /query_range, /query_exemplars,
/series, /labels, /label/NAME/values, /format_query, /parse_query.

Answers use Prometheus's envelope, so Grafana's Prometheus data source and other
clients work unchanged. Parameters may come in the query string or as a form body
(urlencoded or multipart, GET and POST, as Prometheus; see
:mod:`~watchkeeper.web.api.promhttp`). Parameters are checked in Prometheus's
order and refused with its messages (HTTP 400, ``errorType: bad_data``); a query
that runs past its ``timeout`` answers 503 ``timeout``.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import fields
from typing import Any

from fastapi import APIRouter, Request, Response

from watchkeeper.errors import QueryError
from watchkeeper.query.engine import QueryEngine
from watchkeeper.query.promql.deadline import deadline, timeout_error
from watchkeeper.query.selector import Matcher, parse_selector
from watchkeeper.web.api.params import MAX_TIME, MIN_TIME, parse_step, parse_time
from watchkeeper.web.api.promhttp import (
    TRUNCATED,
    Params,
    PrometheusRoute,
    bad_param,
    limit_param,
    ok,
    ok_raw,
    one,
    request_params,
    unescape_name,
)
from watchkeeper.web.state import AppState

router = APIRouter(tags=["prometheus"], route_class=PrometheusRoute)

MAX_POINTS = 11_000
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


async def _evaluate(name: str, timeout: float, func: Any, *args: Any) -> Any:
    """Run an engine call in a thread; its bad-input errors name parameter ``name``.

    After ``timeout`` seconds the answer is a 503 ``timeout`` error, and the evaluation
    stops at its next check of the deadline (query/promql/deadline.py).
    """
    try:
        if timeout <= 0:
            raise timeout_error()
        try:
            with deadline(timeout):
                async with asyncio.timeout(timeout):
                    return await asyncio.to_thread(func, *args)
        except TimeoutError:
            raise timeout_error() from None
    except QueryError as exc:
        if exc.error_type != "bad_data":
            raise
        raise bad_param(name, exc) from None


def _matchers(params: Params) -> list[list[Matcher]]:
    out = []
    for text in params.get("match[]", []):
        try:
            out.append(parse_selector(text))
        except QueryError as exc:
            raise bad_param("match[]", exc) from None
    return out


def _timeout(state: AppState, params: Params) -> float:
    """The request's ``timeout``, at most the server's ``query_timeout``."""
    text = one(params, "timeout")
    if text is None or text == "":
        return state.query_timeout
    return min(parse_step(text, "timeout"), state.query_timeout)


def _engine(state: AppState, params: Params) -> QueryEngine:
    """The server's engine, or one with this request's ``lookback_delta`` (0 or less: the default)."""
    text = one(params, "lookback_delta")
    if text is None or text == "":
        return state.query
    try:
        delta = parse_step(text, "lookback_delta")
    except QueryError as exc:
        raise QueryError("error parsing lookback delta duration: "
                         + exc.message.removeprefix('invalid parameter "lookback_delta": ')) from None
    if delta <= 0 or round(delta * 1000) == round(state.query.lookback * 1000):
        return state.query
    return QueryEngine(state.tsdb, lookback=delta)


def _expression(params: Params) -> str:
    expr = one(params, "query") or ""
    if not expr.strip():
        raise QueryError('invalid parameter "query": no expression found in input')
    return expr


def _truncated(data: dict[str, Any], limit: int | None) -> tuple[dict[str, Any], list[str]]:
    """``data`` with at most ``limit`` series (scalars and strings are left alone), and the
    warning Prometheus adds when it cut some."""
    result = data["result"]
    if limit is None or data["resultType"] not in ("vector", "matrix") or len(result) <= limit:
        return data, []
    return {"resultType": data["resultType"], "result": result[:limit]}, [TRUNCATED]


@router.get("/query")
@router.post("/query")
async def query(request: Request) -> Response:
    """An instant query: ``query``, ``time`` (default now), ``timeout``, ``limit``, ``lookback_delta``."""
    state: AppState = request.app.state.wk
    p = await request_params(request)
    limit = limit_param(p)
    t = parse_time(one(p, "time"), state.clock.time())
    timeout = _timeout(state, p)
    engine = _engine(state, p)
    expr = _expression(p)
    if limit is None:
        return ok_raw(await _evaluate("query", timeout, engine.instant_json, expr, t))
    data, warnings = _truncated(await _evaluate("query", timeout, engine.instant, expr, t), limit)
    return ok(data, warnings)


@router.get("/query_range")
@router.post("/query_range")
async def query_range(request: Request) -> Response:
    """A range query: ``query``, ``start``, ``end``, ``step`` (seconds or a duration), and the
    options of ``/query``."""
    state: AppState = request.app.state.wk
    p = await request_params(request)
    limit = limit_param(p)
    start = parse_time(one(p, "start"), None, "start")
    end = parse_time(one(p, "end"), None, "end")
    if end < start:
        raise QueryError('invalid parameter "end": end timestamp must not be before start time')
    step = parse_step(one(p, "step"))
    if round(step * 1000) <= 0:  # times are milliseconds: a shorter step is no step
        raise QueryError('invalid parameter "step": zero or negative query resolution step widths '
                         "are not accepted. Try a positive integer")
    # Prometheus divides durations in integer nanoseconds: 11,000.5 steps are 11,000 points
    if round((end - start) * 1e9) // round(step * 1e9) > MAX_POINTS:
        raise QueryError("exceeded maximum resolution of 11,000 points per timeseries. "
                         "Try decreasing the query resolution (?step=XX)")
    timeout = _timeout(state, p)
    engine = _engine(state, p)
    expr = _expression(p)
    if limit is None:
        return ok_raw(await _evaluate("query", timeout, engine.range_json, expr, start, end, step))
    data = await _evaluate("query", timeout, engine.range, expr, start, end, step)
    data, warnings = _truncated(data, limit)
    return ok(data, warnings)


def _selectors(node: Any) -> list[Any]:
    """Every vector selector in a syntax tree (those inside range selectors too)."""
    from watchkeeper.query.promql.ast import Expr, VectorSelector

    if isinstance(node, VectorSelector):
        return [node]
    out: list[Any] = []
    if isinstance(node, Expr):
        for f in fields(node):
            value = getattr(node, f.name)
            for child in value if isinstance(value, tuple) else (value,):
                out.extend(_selectors(child))
    return out


@router.get("/query_exemplars")
@router.post("/query_exemplars")
async def query_exemplars(request: Request) -> Response:
    """Exemplars of the series ``query`` selects in ``start``..``end``: the store keeps none,
    so a valid request gets an empty list (or, as Prometheus, 204 when the query selects nothing)."""
    from watchkeeper.query.promql.parser import parse

    p = await request_params(request)
    start = parse_time(one(p, "start"), MIN_TIME, "start")
    end = parse_time(one(p, "end"), MAX_TIME, "end")
    if end < start:
        raise QueryError("end timestamp must not be before start timestamp")
    node = parse(one(p, "query") or "")
    if not _selectors(node):
        return Response(status_code=204)
    return ok([])


def _range(state: AppState, p: Params) -> tuple[float | None, float | None]:
    """``start`` and ``end`` of a metadata request; None where absent (all of time, as Prometheus)."""
    start = parse_time(one(p, "start"), MIN_TIME, "start")
    end = parse_time(one(p, "end"), MAX_TIME, "end")
    return (None if start == MIN_TIME else start), (None if end == MAX_TIME else end)


def _cut(items: list[Any], limit: int | None) -> tuple[list[Any], list[str]]:
    if limit is not None and len(items) > limit:
        return items[:limit], [TRUNCATED]
    return items, []


@router.get("/series")
@router.post("/series")
async def series(request: Request) -> Response:
    """The label sets of the series any ``match[]`` selects (with samples in ``start``..``end``)."""
    state: AppState = request.app.state.wk
    p = await request_params(request)
    if not p.get("match[]"):
        raise QueryError("no match[] parameter provided")
    start, end = _range(state, p)
    matchers = _matchers(p)
    limit = limit_param(p)
    found = await _evaluate("match[]", state.query_timeout, state.tsdb.series, matchers, start, end)
    return ok(*_cut(found, limit))


@router.get("/labels")
@router.post("/labels")
async def labels(request: Request) -> Response:
    """Every label name, or those of the series ``match[]`` selects; with ``start``/``end``
    only of series with samples then."""
    state: AppState = request.app.state.wk
    p = await request_params(request)
    start, end = _range(state, p)
    matchers = _matchers(p) or None
    limit = limit_param(p)
    names = await asyncio.to_thread(state.tsdb.label_names, matchers, start, end)
    return ok(*_cut(sorted(names), limit))


def _label_name(raw: str) -> str:
    """The label name of a ``/label/NAME/values`` path: a classic name, or any UTF-8 name
    in Prometheus 3's ``U__`` escaping (as Grafana sends one with dots or dashes)."""
    name = unescape_name(raw)
    if name != raw and name and "\ufffd" not in name:
        return name
    if not _LABEL_NAME_RE.fullmatch(raw):
        raise QueryError(f"invalid label name: {json.dumps(raw, ensure_ascii=False)}")
    return raw


@router.get("/label/{name}/values")
async def label_values(name: str, request: Request) -> Response:
    """Every value of label ``name`` (``__name__``: metric names), optionally within ``match[]``
    and ``start``..``end``."""
    state: AppState = request.app.state.wk
    label = _label_name(name)
    p = await request_params(request)
    start, end = _range(state, p)
    matchers = _matchers(p) or None
    limit = limit_param(p)
    values = await asyncio.to_thread(state.tsdb.label_values, label, matchers, start, end)
    return ok(*_cut(sorted(values), limit))


async def _parsed_query(request: Request) -> Any:
    """The request's ``query`` parsed; a 400 naming the parameter when it does not parse."""
    from watchkeeper.query.promql.parser import parse

    p = await request_params(request)
    try:
        return parse(one(p, "query") or "")
    except QueryError as exc:
        raise bad_param("query", exc) from None


@router.get("/format_query")
@router.post("/format_query")
async def format_query(request: Request) -> Response:
    """``query`` pretty-printed as Prometheus prints it (one line up to 100 characters)."""
    from watchkeeper.query.promql.printer import pretty

    return ok(pretty(await _parsed_query(request)))


@router.get("/parse_query")
@router.post("/parse_query")
async def parse_query(request: Request) -> Response:
    """``query``'s syntax tree as JSON, in the shape Prometheus's UI reads."""
    from watchkeeper.query.promql.printer import tree

    return ok(tree(await _parsed_query(request)))
