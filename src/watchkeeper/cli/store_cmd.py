"""``watchkeeper query`` reads the store; ``watchkeeper import`` backfills it from OpenMetrics."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from watchkeeper.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    ServerOpt,
    http_get,
    open_store,
    parse_when,
    print_json,
)


def query(expr: Annotated[str, typer.Argument(help="Series selector, e.g. node_load1{instance=\"a\"}.")],
          time_: Annotated[str | None, typer.Option("--time", help="Evaluation time (now, -1h, Unix, RFC 3339).")] = None,
          start: Annotated[str | None, typer.Option(help="Range start.")] = None,
          end: Annotated[str | None, typer.Option(help="Range end (default now).")] = None,
          step: Annotated[str | None, typer.Option(help="Range step (default: 250 points).")] = None,
          config: ConfigOpt = None, data_dir: DataDirOpt = None, server: ServerOpt = None,
          json_: JsonOpt = False) -> None:
    """Query the store; --json prints the Prometheus HTTP API ``data`` object."""
    from watchkeeper.errors import InputError
    from watchkeeper.units import parse_duration

    now = time.time()
    if start is not None or end is not None or step is not None:
        if time_ is not None:
            raise InputError("give either --time or --start/--end/--step, not both")
        s = parse_when(start if start is not None else "-1h", now)
        e = parse_when(end, now)
        try:
            st = parse_duration(step) if step else max((e - s) / 250, 1.0)
        except ValueError:
            raise InputError(f"--step {step!r} is not a duration (e.g. 15s, 1m)") from None
        if server:
            data = http_get(server.rstrip("/"), "/api/v1/query_range",
                            {"query": expr, "start": s, "end": e, "step": st})["data"]
        else:
            data = _engine(config, data_dir).range(expr, s, e, st)
    else:
        t = parse_when(time_, now)
        if server:
            data = http_get(server.rstrip("/"), "/api/v1/query", {"query": expr, "time": t})["data"]
        else:
            data = _engine(config, data_dir).instant(expr, t)
    if json_:
        print_json(data)
        return
    _print(data)


def _engine(config: str | None, data_dir: str | None):  # type: ignore[no-untyped-def]
    from watchkeeper.query.engine import QueryEngine

    _, tsdb, _ = open_store(config, data_dir)
    return QueryEngine(tsdb)


def _labels(metric: dict[str, str]) -> str:
    name = metric.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(metric.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def _print(data: dict) -> None:  # type: ignore[type-arg]
    if not data["result"] and data["resultType"] in ("vector", "matrix"):
        typer.echo("no data")
        return
    if data["resultType"] in ("scalar", "string"):
        t, v = data["result"]
        typer.echo(f"{v} @{t}")
        return
    if data["resultType"] == "vector":
        for r in data["result"]:
            typer.echo(f"{_labels(r['metric'])} => {r['value'][1]} @{r['value'][0]}")
    else:
        for r in data["result"]:
            typer.echo(_labels(r["metric"]))
            for t, v in r["values"]:
                typer.echo(f"  {v} @{t}")


def import_(path: Annotated[str, typer.Argument(help="OpenMetrics text file with timestamps.")],
            config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Backfill the store from OpenMetrics text (what promtool create-blocks-from openmetrics reads)."""
    import os

    from watchkeeper.errors import InputError
    from watchkeeper.monitor.exposition import iter_openmetrics_file

    if not os.path.isfile(path):
        raise InputError(f"{path}: no such file")
    _, tsdb, ddir = open_store(config, data_dir)
    total = 0
    started = time.perf_counter()
    for batch in iter_openmetrics_file(path):
        total += tsdb.append(batch, default_timestamp=time.time())
    tsdb.compact(time.time())
    took = time.perf_counter() - started
    typer.echo(f"imported {total} samples from {path} into {ddir} in {took:.1f}s")
