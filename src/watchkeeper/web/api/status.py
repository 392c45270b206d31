"""Prometheus's status and metadata endpoints: /api/v1/status/{buildinfo,runtimeinfo,flags,config},
/api/v1/metadata and /api/v1/targets/metadata.

Clients probe these to learn what they talk to: Grafana reads ``buildinfo`` to
pick the Prometheus flavour and version (no ``features`` field: a plain
Prometheus, not Mimir or Cortex) and ``metadata`` for the type and help text it
shows beside metric names. Answers have Prometheus's field names; where
watchkeeper has no counterpart (Go's runtime), the field holds a neutral value.
"""

from __future__ import annotations

import asyncio
import os
import threading
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request, Response

from watchkeeper.errors import QueryError
from watchkeeper.query.selector import parse_selector
from watchkeeper.web.api.promhttp import PrometheusRoute, bad_param, ok, one, request_params
from watchkeeper.web.state import AppState

__all__ = ["PROMETHEUS_VERSION", "router"]

router = APIRouter(tags=["prometheus"], route_class=PrometheusRoute)

#: the Prometheus release whose HTTP API watchkeeper answers (limit on /series, /labels and
#: /label/NAME/values, limit_per_metric on /metadata, format_query): what Grafana reads
PROMETHEUS_VERSION = "2.54.0"


def _rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


@router.get("/status/buildinfo")
async def buildinfo() -> Response:
    """As Prometheus answers, so clients such as Grafana can tell what they talk to."""
    from watchkeeper import __version__

    return ok({"version": PROMETHEUS_VERSION, "revision": "watchkeeper-" + __version__, "branch": "",
               "buildUser": "", "buildDate": "", "goVersion": "", "application": "watchkeeper"})


def _retention(state: AppState) -> str:
    policy = getattr(state.tsdb, "retention", None)
    raw = getattr(policy, "raw", None)
    if isinstance(raw, int | float) and raw > 0:
        from watchkeeper.query.promql.lexer import format_duration

        return format_duration(float(raw))
    return ""


@router.get("/status/runtimeinfo")
async def runtimeinfo(request: Request) -> Response:
    """Start time, working directory and storage retention, in Prometheus's field names."""
    state: AppState = request.app.state.wk
    started = state.started or state.clock.time()
    return ok({"startTime": _rfc3339(started), "CWD": os.getcwd(), "reloadConfigSuccess": True,
               "lastConfigTime": _rfc3339(started), "corruptionCount": 0,
               "goroutineCount": threading.active_count(), "GOMAXPROCS": os.cpu_count() or 1,
               "GOMEMLIMIT": 0, "GOGC": "", "GODEBUG": "", "storageRetention": _retention(state)})


@router.get("/status/flags")
async def flags(request: Request) -> Response:
    """The settings Prometheus has as flags, as far as watchkeeper has them."""
    state: AppState = request.app.state.wk
    return ok({"config.file": state.config_path or "", "query.lookback-delta": "5m",
               "query.max-samples": "", "query.timeout": "", "storage.tsdb.retention.time": _retention(state),
               "web.enable-admin-api": "false", "web.enable-lifecycle": "false"})


def _scrape_jobs(state: AppState) -> list[tuple[str, str, str]]:
    """(job name, target host:port, metrics path) of each scrape check."""
    from urllib.parse import urlsplit

    out = []
    configs = getattr(state.monitor, "configs", None) or {}
    for name, cfg in sorted(configs.items()):
        url = getattr(cfg, "url", None)
        if getattr(cfg, "type", None) != "scrape" or not isinstance(url, str):
            continue
        parts = urlsplit(url)
        out.append((str(name), parts.netloc.rpartition("@")[2], parts.path or "/metrics"))
    return out


@router.get("/status/config")
async def config(request: Request) -> Response:
    """A Prometheus-shaped configuration (YAML text) of what watchkeeper scrapes and evaluates.

    Not watchkeeper.yaml itself: that may hold tokens and passwords, and this endpoint
    needs none (Prometheus masks secrets here for the same reason).
    """
    import yaml

    state: AppState = request.app.state.wk
    jobs = [{"job_name": job, "metrics_path": path, "static_configs": [{"targets": [target]}]}
            for job, target, path in _scrape_jobs(state)]
    doc: dict[str, Any] = {"global": {"evaluation_interval": "1m"}, "scrape_configs": jobs}
    return ok({"yaml": yaml.safe_dump(doc, sort_keys=False)})


def _int_param(p: dict[str, list[str]], key: str, message: str) -> int | None:
    text = one(p, key)
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        raise QueryError(message) from None


@router.get("/metadata")
async def metadata(request: Request) -> Response:
    """Type, help and unit per metric name in the store (``unknown`` where watchkeeper does not
    know them); ``metric`` picks one, ``limit`` caps the metrics, ``limit_per_metric`` the
    entries of each (one here)."""
    from watchkeeper.web.api.metadata import known_metadata

    state: AppState = request.app.state.wk
    p = await request_params(request)
    limit = _int_param(p, "limit", "limit must be a number")
    per_metric = _int_param(p, "limit_per_metric", "limit_per_metric must be a number")
    names = await asyncio.to_thread(state.tsdb.label_values, "__name__")
    metric = one(p, "metric")
    if metric:
        names = [n for n in names if n == metric]
    if limit is not None and limit >= 0:
        names = names[:limit]
    found = known_metadata(names)
    if per_metric is not None and per_metric >= 0:
        found = {name: entries[:per_metric] for name, entries in found.items() if entries[:per_metric]}
    return ok(found)


@router.get("/targets/metadata")
async def targets_metadata(request: Request) -> Response:
    """Metadata per scrape target: the store keeps none of the targets' ``# TYPE`` lines, so the
    list is empty; parameters are still checked as Prometheus checks them."""
    p = await request_params(request)
    _int_param(p, "limit", "limit must be a number")
    target = one(p, "match_target")
    if target:
        try:
            parse_selector(target)
        except QueryError as exc:
            raise bad_param("match_target", exc) from None
    return ok([])
