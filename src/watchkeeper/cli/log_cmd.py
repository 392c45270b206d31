"""``watchkeeper log`` lists the event log; ``watchkeeper log verify`` proves it is intact."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import typer

from watchkeeper.cli.common import ConfigOpt, DataDirOpt, JsonOpt, print_json

app = typer.Typer(help="The append-only, hash-chained event log.", invoke_without_command=True)


def _open(config: str | None, data_dir: str | None):  # type: ignore[no-untyped-def]
    from watchkeeper.cli.common import load
    from watchkeeper.eventlog import EventLog
    from watchkeeper.server import resolve_data_dir
    from watchkeeper.store.engine import open_engine

    cfg = load(config).config
    ddir = resolve_data_dir(data_dir, cfg)
    return EventLog(open_engine(cfg.storage.url, ddir), anchor=ddir / "eventlog.head")


@app.callback()
def list_(ctx: typer.Context, config: ConfigOpt = None, data_dir: DataDirOpt = None,
          kind: Annotated[str | None, typer.Option(help="Only kinds starting with this.")] = None,
          limit: Annotated[int, typer.Option(min=1)] = 50, json_: JsonOpt = False) -> None:
    """List the newest events (oldest first)."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (config, data_dir)
        return
    entries = _open(config, data_dir).list(kind=kind, limit=limit)
    if json_:
        print_json([e.to_dict() for e in entries])
        return
    for e in entries:
        when = datetime.fromtimestamp(e.ts, UTC).strftime("%Y-%m-%d %H:%M:%S")
        detail = " ".join(f"{k}={v}" for k, v in e.data.items())
        typer.echo(f"{e.seq:>6}  {when}  {e.kind:<24} {e.subject:<24} {e.actor:<12} {detail}")


@app.command()
def verify(ctx: typer.Context, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Check the hash chain: exit 0 when intact, 1 naming each edited or deleted entry."""
    parent = ctx.obj or (None, None)
    log = _open(config or parent[0], data_dir or parent[1])
    problems = log.verify()
    if problems:
        for p in problems:
            typer.echo(str(p), err=True)
        typer.echo(f"event log is NOT intact: {len(problems)} problem(s)", err=True)
        raise typer.Exit(1)
    typer.echo(f"event log intact: {log.count()} entries")
