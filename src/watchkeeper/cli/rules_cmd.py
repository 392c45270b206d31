"""``watchkeeper rules check|test|backtest``: Prometheus rule files from the command line."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from watchkeeper.cli.common import ConfigOpt, DataDirOpt, JsonOpt

app = typer.Typer(no_args_is_help=True, help="Check, unit-test and backtest Prometheus rule files.")

FilesArg = Annotated[list[str], typer.Argument(help="Rule files (globs allowed).")]


@app.command("check")
def check(files: FilesArg) -> None:
    """Validate rule files as ``promtool check rules`` does: exit 0 when all are valid, else 1."""
    from watchkeeper.alerting.rulefiles import load_rule_files

    failed = False
    for pattern in files:
        ruleset = load_rule_files([pattern])
        names = ruleset.files or [pattern]
        for name in names:
            typer.echo(f"Checking {name}")
            issues = [i for i in ruleset.issues if i.file == name]
            if issues:
                failed = True
                typer.echo("  FAILED:", err=True)
                for issue in issues:
                    typer.echo(str(issue), err=True)
            else:
                n = sum(len(g.rules) for g in ruleset.groups if g.file == name)
                typer.echo(f"  SUCCESS: {n} rules found")
            typer.echo("")
        for issue in ruleset.issues:
            if issue.file not in names:  # a path that does not exist
                failed = True
                typer.echo(f"Checking {issue.file}")
                typer.echo("  FAILED:", err=True)
                typer.echo(str(issue), err=True)
                typer.echo("")
    raise typer.Exit(1 if failed else 0)


@app.command("test")
def test(files: Annotated[list[str], typer.Argument(help="Test files in promtool's format.")]) -> None:
    """Run rule unit tests (promtool's test format): exit 0 when all pass, else 1."""
    from watchkeeper.alerting.ruletest import run_tests

    code, text = run_tests(list(files))
    typer.echo(text, nl=False, err=code != 0)
    raise typer.Exit(code)


def _fmt_time(t: float | None) -> str:
    from datetime import UTC, datetime

    if t is None:
        return "(still firing)"
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _label_text(labels: dict[str, str]) -> str:
    rest = {k: v for k, v in labels.items() if k != "alertname"}
    return "{" + ", ".join(f'{k}="{rest[k]}"' for k in sorted(rest)) + "}"


@app.command("backtest")
def backtest(files: FilesArg,
             since: Annotated[str, typer.Option("--since", help="How far back to start (7d, 24h).")] = "7d",
             until: Annotated[str | None, typer.Option("--until", help="End: now, -1h, Unix seconds or "
                                                       "RFC 3339.")] = None,
             step: Annotated[str, typer.Option("--step", help="Evaluation interval.")] = "1m",
             config: ConfigOpt = None, data_dir: DataDirOpt = None, json_out: JsonOpt = False) -> None:
    """Say when each alerting rule would have fired over stored history."""
    from watchkeeper.alerting.backtest import backtest as run_backtest
    from watchkeeper.alerting.rulefiles import load_rule_files
    from watchkeeper.cli.common import open_store, parse_when, print_json
    from watchkeeper.errors import ConfigError, InputError
    from watchkeeper.units import parse_duration

    ruleset = load_rule_files(files)
    if ruleset.issues:
        raise ConfigError(ruleset.issues)
    try:
        span = parse_duration(since)
        step_s = parse_duration(step)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if step_s <= 0:
        raise InputError("--step must be positive")
    end = parse_when(until, time.time())
    start = end - span
    engine, tsdb, _ = open_store(config, data_dir)
    try:
        results = run_backtest(ruleset, tsdb, start, end, step_s)
    finally:
        engine.dispose()
    if json_out:
        data: list[dict[str, Any]] = [
            {"rule": r.rule, "alertname": r.name, "file": r.file, "error": r.error or None,
             "firing": [{"labels": i.labels, "start": i.start, "end": i.end} for i in r.intervals]}
            for r in results]
        print_json({"start": start, "end": end, "step": step_s, "rules": data})
        return
    typer.echo(f"Backtest from {_fmt_time(start)} to {_fmt_time(end)} UTC, every {step}")
    for r in results:
        if r.error:
            typer.echo(f"{r.rule}: error: {r.error}")
            continue
        if not r.intervals:
            typer.echo(f"{r.rule}: never fired")
            continue
        total = sum((i.end if i.end is not None else end) - i.start for i in r.intervals)
        typer.echo(f"{r.rule}: fired {len(r.intervals)} time{'s' if len(r.intervals) != 1 else ''}, "
                   f"{total / 60:.0f} min in all")
        for i in r.intervals:
            typer.echo(f"  {_fmt_time(i.start)} -> {_fmt_time(i.end)}  {_label_text(i.labels)}")
