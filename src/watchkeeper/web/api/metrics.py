"""/healthz and /metrics (Prometheus text exposition of the newest values)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from watchkeeper import __version__
from watchkeeper.monitor.model import Sample
from watchkeeper.web.state import AppState

router = APIRouter(tags=["server"])

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@router.get("/healthz", response_class=PlainTextResponse)
async def healthz() -> str:
    return "ok\n"


def own_samples(state: AppState) -> list[Sample]:
    mon = state.monitor
    out = [Sample("watchkeeper_build_info", {"version": __version__}, 1.0),
           Sample("watchkeeper_start_time_seconds", {}, state.started)]
    for key, value in mon.counters.items():
        out.append(Sample(f"watchkeeper_{key}_total", {}, float(value)))
    if state.scheduler is not None:
        for job in state.scheduler.jobs.values():
            out.append(Sample("watchkeeper_job_runs_total", {"job": job.key}, float(job.runs)))
            out.append(Sample("watchkeeper_job_skipped_total", {"job": job.key}, float(job.skipped)))
            out.append(Sample("watchkeeper_job_failures_total", {"job": job.key}, float(job.failures)))
    return out


_TYPES = {"watchkeeper_build_info": "gauge", "watchkeeper_job_runs_total": "counter",
          "watchkeeper_job_skipped_total": "counter", "watchkeeper_job_failures_total": "counter"}


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """The newest host metrics, check series and watchkeeper's own, in text format 0.0.4."""
    from prometheus_client import REGISTRY, generate_latest

    from watchkeeper.monitor.exposition import render_text

    state: AppState = request.app.state.wk
    samples: list[Sample] = []
    for group in list(state.monitor.latest.values()):
        samples.extend(Sample(s.name, s.labels, s.value) for s in group)
    samples.extend(own_samples(state))
    body = render_text(samples, types=_TYPES)
    # the process_* and python_* metrics of watchkeeper itself
    body += generate_latest(REGISTRY).decode()
    return Response(body, media_type=CONTENT_TYPE)
