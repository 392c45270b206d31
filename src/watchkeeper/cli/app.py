"""The typer app: every command and group (``cli/main.py`` runs it, behind the error handler)."""

from __future__ import annotations

from typing import Annotated

import typer

from watchkeeper.cli import (
    alerts_cmd,
    config_cmd,
    exec_cmd,
    hosts_cmd,
    log_cmd,
    rules_cmd,
    run_cmd,
    store_cmd,
    tokens_cmd,
    triggers_cmd,
)
from watchkeeper.cli import checks as _checks
from watchkeeper.cli.common import ConfigOpt, DataDirOpt

app = typer.Typer(name="watchkeeper", no_args_is_help=True, add_completion=False,
                  help="Monitoring, alerting, automation and security for a fleet of Linux hosts.",
                  pretty_exceptions_enable=False, rich_markup_mode=None)


@app.command()
def up(config: ConfigOpt = None, data_dir: DataDirOpt = None,
       listen: Annotated[str | None, typer.Option("--listen", help="HOST:PORT to serve HTTP on "
                                                  "(default 127.0.0.1:8470).")] = None,
       log_level: Annotated[str, typer.Option(
           "--log-level", envvar="WATCHKEEPER_LOG_LEVEL",
           help="debug, info, warning or error (watchkeeper's own messages).")] = "info",
       ) -> None:
    """Run everything: collectors, checks, store and the HTTP API, until SIGTERM."""
    from watchkeeper.errors import InputError
    from watchkeeper.server import LOG_LEVELS, serve

    level = log_level.strip().lower()
    if level not in LOG_LEVELS:
        raise InputError(f"--log-level {log_level!r} is not a level; use one of {', '.join(LOG_LEVELS)}")
    raise typer.Exit(serve(config, data_dir, listen, level))


app.command("check")(_checks.check)
app.command("status")(_checks.status)
app.command("query")(store_cmd.query)
app.command("import")(store_cmd.import_)
app.add_typer(config_cmd.app, name="config")
app.add_typer(log_cmd.app, name="log")
app.command("alerts")(alerts_cmd.alerts)
app.command("ack")(alerts_cmd.ack)
app.add_typer(alerts_cmd.silence_app, name="silence")
app.add_typer(rules_cmd.app, name="rules")
# automation
app.command("hosts")(hosts_cmd.hosts)
app.command("exec")(exec_cmd.exec_)
app.command("run")(run_cmd.run)
app.add_typer(run_cmd.runbooks_app, name="runbooks")
app.add_typer(run_cmd.runs_app, name="runs")
app.command("approve")(run_cmd.approve)
app.command("reject")(run_cmd.reject)
app.command("triggers")(triggers_cmd.triggers)
app.add_typer(tokens_cmd.app, name="tokens")


@app.command()
def version() -> None:
    """Print the version."""
    from watchkeeper import __version__

    typer.echo(__version__)
