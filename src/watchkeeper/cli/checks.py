"""``watchkeeper check`` runs checks once; ``watchkeeper status`` summarizes a running server."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

import typer

from watchkeeper.cli.common import (
    ConfigOpt,
    DataDirOpt,
    JsonOpt,
    ServerOpt,
    http_get,
    load,
    print_json,
    server_url,
)


async def _run_all(configs: list[Any], concurrency: int) -> list[Any]:
    from watchkeeper.monitor.checks.http import shared_client
    from watchkeeper.monitor.runner import execute

    sem = asyncio.Semaphore(concurrency)
    async with shared_client(concurrency) as client:
        async def one(cfg: Any) -> Any:
            async with sem:
                return await execute(cfg, resources={"http_client": client})

        return list(await asyncio.gather(*(one(c) for c in configs)))


def check(names: Annotated[list[str] | None, typer.Argument(help="Checks to run (default: all).")] = None,
          config: ConfigOpt = None, json_: JsonOpt = False) -> None:
    """Run checks once and print their results; the exit code is the worst state, as a plugin's."""
    from watchkeeper.errors import NotFoundError
    from watchkeeper.monitor.model import State

    cfg = load(config).config
    configs = list(cfg.checks)
    if names:
        known = {c.name: c for c in configs}
        missing = [n for n in names if n not in known]
        if missing:
            raise NotFoundError(f"no check named {', '.join(map(repr, missing))}",
                                hint=f"configured: {', '.join(sorted(known)) or 'none'}")
        configs = [known[n] for n in names]
    results = asyncio.run(_run_all(configs, cfg.server.max_concurrent_checks))
    worst = State.OK
    for r in results:
        worst = worst.worse(r.state)
    if json_:
        print_json([{"name": c.name, "type": c.type, **r.to_dict()} for c, r in zip(configs, results, strict=True)])
    else:
        from rich.console import Console
        from rich.table import Table

        colors = {State.OK: "green", State.WARNING: "yellow", State.CRITICAL: "red", State.UNKNOWN: "magenta"}
        table = Table(show_lines=False)
        for col in ("check", "type", "state", "time", "summary"):
            table.add_column(col, overflow="fold")
        for c, r in zip(configs, results, strict=True):
            table.add_row(c.name, c.type, f"[{colors[r.state]}]{r.state.name}[/]",
                          f"{r.duration_seconds * 1000:.0f} ms", r.summary)
        console = Console()
        if configs:
            console.print(table)
        else:
            console.print("no checks configured (add a checks: section to watchkeeper.yaml)")
    raise typer.Exit(int(worst))


def status(server: ServerOpt = None, config: ConfigOpt = None, json_: JsonOpt = False,
           data_dir: DataDirOpt = None) -> None:
    """Summarize a running server: uptime, checks by state, store size."""
    del data_dir  # accepted like the other commands take it; reading needs no token
    url = server_url(server, config)
    data = http_get(url, "/api/v1/status")
    checks = http_get(url, "/api/v1/checks")["checks"]
    if json_:
        print_json({**data, "checks_detail": checks})
        return
    by = data["checks"]["by_state"]
    store = data.get("store", {})
    typer.echo(f"watchkeeper {data['version']} at {url}, up {data['uptime_seconds']:.0f}s")
    typer.echo(f"checks: {data['checks']['total']} ({', '.join(f'{k} {v}' for k, v in by.items())})")
    typer.echo("store: " + ", ".join(f"{k} {v}" for k, v in store.items() if not isinstance(v, dict)))
    for c in checks:
        if c.get("hard_state", "OK") != "OK" or c.get("state", "OK") != "OK":
            typer.echo(f"  {c['name']}: {c['state']} ({c['state_type']}) {c.get('summary', '')}")
