"""``watchkeeper config check PATH``."""

from __future__ import annotations

from typing import Annotated

import typer

app = typer.Typer(no_args_is_help=True, help="Validate configuration.")


@app.command("check")
def check(path: Annotated[str, typer.Argument(help="Path to watchkeeper.yaml.")] = "watchkeeper.yaml"
          ) -> None:
    """Validate a config file and its includes: exit 0 when valid, 2 with every error when not."""
    from watchkeeper.config import load_config
    from watchkeeper.errors import ConfigError

    try:
        loaded = load_config(path)
    except ConfigError as exc:
        for issue in exc.issues:
            typer.echo(str(issue), err=True)
        n = len(exc.issues)
        typer.echo(f"{n} error{'s' if n != 1 else ''} in {path}", err=True)
        raise typer.Exit(2) from None
    cfg = loaded.config
    from watchkeeper.alerting.service import load_rules

    ruleset = load_rules(list(cfg.rules), loaded.path.parent if loaded.path else None)
    if ruleset.issues:
        for issue in ruleset.issues:
            typer.echo(str(issue), err=True)
        n = len(ruleset.issues)
        typer.echo(f"{n} error{'s' if n != 1 else ''} in the rule files of {path}", err=True)
        raise typer.Exit(2)
    n_rules = len(ruleset.rules)
    typer.echo(f"{path}: valid ({len(loaded.files)} file{'s' if len(loaded.files) != 1 else ''}, "
               f"{len(cfg.checks)} check{'s' if len(cfg.checks) != 1 else ''}, "
               f"{n_rules} rule{'s' if n_rules != 1 else ''})")
