"""``watchkeeper hosts [PATTERN] [-i INVENTORY] [--json]``: what a host pattern selects.

Without ``-i`` the inventory is the config's ``inventory:`` files plus its ``hosts:``
section. ``watchkeeper hosts trust NAME`` records a host's current SSH key in
known_hosts (after the executor refused an unknown or changed key).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from watchkeeper.cli.common import ConfigOpt, JsonOpt, print_json

InventoryOpt = Annotated[list[str] | None, typer.Option(
    "--inventory", "-i", help="Inventory file, directory or 'host1,host2,' (repeatable); "
                              "default: the config's inventory and hosts.")]


def load_cli_inventory(inventory: list[str] | None, config: str | None) -> Any:
    """The inventory ``-i`` names, else the one the config describes (paths relative to it)."""
    from watchkeeper.automation.inventory import load_inventory

    if inventory:
        return load_inventory(inventory)
    from watchkeeper.cli.common import load

    loaded = load(config)
    cfg = loaded.config
    base = loaded.path.parent if loaded.path is not None else Path.cwd()
    sources = [p if Path(p).expanduser().is_absolute() or "," in p else str(base / p)
               for p in (getattr(cfg, "inventory", None) or [])]
    section = getattr(cfg, "hosts", None) or {}
    return load_inventory(sources, config=section,
                          config_file=str(loaded.path) if loaded.path else "watchkeeper.yaml")


def hosts(pattern: Annotated[str, typer.Argument(
              help="Ansible host pattern (web:&prod:!web3, ~regex, globs) or a label selector "
                   "such as {role=db}; `trust NAME` accepts a host's SSH key.")] = "all",
          name: Annotated[str | None, typer.Argument(help="With `trust`: the host.", show_default=False)] = None,
          inventory: InventoryOpt = None, config: ConfigOpt = None, json_: JsonOpt = False,
          known_hosts: Annotated[str | None, typer.Option(
              "--known-hosts", help="With `trust`: the known_hosts file (default ~/.ssh/known_hosts).")] = None,
          ) -> None:
    """List the hosts a pattern selects: name, address, port, user, groups, labels."""
    from watchkeeper.automation.inventory import host_to_dict
    from watchkeeper.errors import InputError

    inv = load_cli_inventory(inventory, config)
    if pattern == "trust" and name is not None and "trust" not in inv.hosts and "trust" not in inv.groups:
        if known_hosts is None and not inventory:
            from watchkeeper.cli.common import load

            ssh = getattr(load(config).config, "ssh", None)
            known_hosts = getattr(ssh, "known_hosts", None)
        _trust(inv, name, known_hosts, json_)
        return
    if name is not None:
        raise InputError(f"unexpected argument {name!r}; join patterns with ':' or ',' "
                         f"(as {pattern}:{name}), or use `watchkeeper hosts trust NAME`")
    selected = inv.select(pattern)
    if json_:
        print_json([host_to_dict(h) for h in selected])
        return
    if not selected:
        typer.echo(f"no hosts match {pattern!r}", err=True)
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False, box=None, pad_edge=False)
    for col in ("NAME", "ADDRESS", "PORT", "USER", "GROUPS", "LABELS"):
        table.add_column(col, overflow="fold")
    for h in selected:
        d = host_to_dict(h)
        table.add_row(d["name"], "(local)" if h.connection == "local" else d["address"],
                      "" if h.connection == "local" else str(d["port"]), d["user"] or "",
                      ",".join(d["groups"]),
                      ",".join(f"{k}={v}" for k, v in d["labels"].items()))
    import sys

    # piped output keeps one host per line, whatever the width
    Console(width=None if sys.stdout.isatty() else 100_000).print(table)
    typer.echo(f"{len(selected)} host{'s' if len(selected) != 1 else ''}", err=True)


def _trust(inv: Any, name: str, known_hosts: str | None, json_: bool) -> None:
    import asyncio
    import inspect

    host = inv.get(name)
    try:
        from watchkeeper.automation.executors.ssh import trust_host
    except ImportError as exc:  # pragma: no cover - the SSH executor ships with watchkeeper
        from watchkeeper.errors import InputError

        raise InputError(f"cannot trust host keys: the SSH executor is not available ({exc})") from None
    result = trust_host(host, known_hosts)
    if inspect.isawaitable(result):
        result = asyncio.run(result)  # type: ignore[arg-type]
    if json_:
        print_json({"host": host.name, "fingerprint": str(result)})
    else:
        typer.echo(f"{host.name}: trusted key {result}")
