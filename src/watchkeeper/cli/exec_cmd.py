"""``watchkeeper exec PATTERN -- COMMAND``: one command on every matching host.

Exit status: 0 when every host returned ``ok``; 1 when any host failed, timed out or
was unreachable; 2 for usage errors (unknown pattern, bad option). Live progress goes
to stderr, results to stdout (a table, or ``--json``: a list with one object per host).

The work is done by ``cli/_exec.py`` (no typer there), which ``cli/main.py`` also calls
directly for the plain forms of this command so a cold ``exec`` starts fast.
"""

from __future__ import annotations

from typing import Annotated

import typer

from watchkeeper.cli.common import ConfigOpt, JsonOpt, ServerOpt

InventoryOpt = Annotated[list[str] | None, typer.Option(
    "--inventory", "-i", help="Inventory file (watchkeeper YAML, Ansible INI or YAML); "
    "repeatable. Default: the config's inventory and hosts.")]


def exec_(
    pattern: Annotated[str, typer.Argument(help="Host pattern: all, web, web:&prod, "
                                           "web:!web3, db*, ~regex, label selectors.")],
    command: Annotated[list[str], typer.Argument(help="The shell command (after --).")],
    inventory: InventoryOpt = None,
    forks: Annotated[int | None, typer.Option("--forks", "-f", help="Hosts at once "
                                              "(default: ssh.forks, 50).")] = None,
    json_: JsonOpt = False,
    known_hosts: Annotated[str | None, typer.Option("--known-hosts", help="known_hosts file "
                                                    "to check host keys against.")] = None,
    timeout: Annotated[str | None, typer.Option("--timeout", "-t", help="Per-host command "
                                                "timeout (e.g. 30s, 5m).")] = None,
    config: ConfigOpt = None,
    server: ServerOpt = None,
) -> None:
    """Run COMMAND on every host PATTERN selects, with live progress and per-host results.

    With ``--server URL`` the running server does it over its pooled (warm) connections.
    """
    from watchkeeper.cli._exec import run_exec

    raise typer.Exit(run_exec(pattern, command, inventory=inventory, forks=forks, json_=json_,
                              known_hosts=known_hosts, timeout=timeout, config=config,
                              server=server))
