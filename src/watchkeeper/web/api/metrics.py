"""/healthz and /metrics (Prometheus text exposition of the newest values)."""

from __future__ import annotations

from typing import Any

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


_TYPES = {"watchkeeper_build_info": "gauge", "watchkeeper_start_time_seconds": "gauge",
          "watchkeeper_job_runs_total": "counter", "watchkeeper_job_skipped_total": "counter",
          "watchkeeper_job_failures_total": "counter", "watchkeeper_check_up": "gauge",
          "watchkeeper_check_state": "gauge", "watchkeeper_check_duration_seconds": "gauge"}


_HELP = {
    "watchkeeper_build_info": "The running watchkeeper version (always 1).",
    "watchkeeper_start_time_seconds": "When this watchkeeper started, in Unix seconds.",
    "watchkeeper_job_runs_total": "Runs of each scheduled job.",
    "watchkeeper_job_skipped_total": "Runs of each job skipped because the previous one was still running.",
    "watchkeeper_job_failures_total": "Runs of each job that raised an error.",
    "watchkeeper_check_up": "1 when the check's service answers (state OK or WARNING), else 0.",
    "watchkeeper_check_state": "The check's latest state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.",
    "watchkeeper_check_duration_seconds": "How long the check's latest run took.",
    "watchkeeper_checks_run": "Check results recorded.",
    "watchkeeper_samples_written": "Samples written to the store.",
    "watchkeeper_flushes": "Batched writes to the store.",
}


def registry_samples(registry: Any) -> tuple[list[Sample], dict[str, str], dict[str, str]]:
    """The samples of a prometheus_client registry (watchkeeper's own ``process_*`` and
    ``python_*``) with their families' types and help, keyed by family name."""
    samples: list[Sample] = []
    types: dict[str, str] = {}
    helps: dict[str, str] = {}
    for family in registry.collect():
        types[family.name] = family.type
        helps[family.name] = family.documentation
        for s in family.samples:
            if s.name.endswith("_created") or s.name.endswith("_gsum") or s.name.endswith("_gcount"):
                continue  # OpenMetrics-only series; text format 0.0.4 has no place for them
            samples.append(Sample(s.name, dict(s.labels), float(s.value)))
    return samples, types, helps


_GROUPED = ("_bucket", "_sum", "_count", "_created")


def type_untyped(samples: list[Sample], types: dict[str, str]) -> None:
    """Give each family without a known type an explicit ``untyped`` TYPE line.

    Parsers that read families strictly (prometheus_client's, Go's expfmt) then
    see one family per name; without a TYPE line prometheus_client's parser
    makes each untyped sample a family of its own.
    """
    for name in {s.name for s in samples}:
        if name in types:
            continue
        if name.endswith("_total") and types.get(name[:-6]) == "counter":
            continue
        base = next((name[: -len(x)] for x in _GROUPED if name.endswith(x)), None)
        if base is not None and types.get(base) in ("histogram", "summary", "gaugehistogram"):
            continue
        types[name] = "untyped"


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    """The newest host metrics, check series and watchkeeper's own, in text format 0.0.4.

    Everything is rendered in one pass, so a family appears once even when it
    comes from several places (several checks, or a scrape of another Python or
    Go exporter whose ``process_*`` series share names with watchkeeper's own).
    """
    from prometheus_client import REGISTRY

    from watchkeeper.monitor.exposition import render_text

    state: AppState = request.app.state.wk
    samples: list[Sample] = []
    for group in list(state.monitor.latest.values()):
        samples.extend(Sample(s.name, s.labels, s.value) for s in group)
    samples.extend(own_samples(state))
    # the process_* and python_* metrics of watchkeeper itself
    extra, types, helps = registry_samples(REGISTRY)
    samples.extend(extra)
    types.update(_TYPES)
    helps.update(_HELP)
    types.update((f"watchkeeper_{key}", "counter") for key in state.monitor.counters)
    type_untyped(samples, types)
    body = render_text(samples, types=types, help=helps)
    return Response(body, media_type=CONTENT_TYPE)
