"""``watchkeeper exec PATTERN -- COMMAND``: one command on every matching host.

Exit status: 0 when every host returned ``ok``; 1 when any host failed, timed out or
was unreachable; 2 for usage errors (unknown pattern, bad option). Live progress goes
to stderr, results to stdout (a table, or ``--json``: a list with one object per host).
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

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
    from watchkeeper.errors import InputError
    from watchkeeper.units import parse_duration

    if not command:
        raise InputError("no command given", hint="watchkeeper exec PATTERN -- COMMAND")
    limit: float | None = None
    if timeout:
        try:
            limit = parse_duration(timeout)
        except ValueError:
            raise InputError(f"--timeout {timeout!r} is not a duration (e.g. 30s, 5m)") from None
    if server:
        results = _remote(server, pattern, " ".join(command), forks=forks or 50, timeout=limit,
                          config=config)
        if json_:
            from watchkeeper.cli.common import print_json

            print_json([r.to_dict() for r in results])
        else:
            _table(results)
        raise typer.Exit(0 if all(r.ok for r in results) else 1)
    ssh_cfg, hosts = _select(pattern, inventory, config)
    n_forks = forks if forks is not None else (ssh_cfg.forks if ssh_cfg else 50)
    if n_forks < 1:
        raise InputError(f"--forks must be at least 1, not {n_forks}")
    import asyncio

    results = asyncio.run(_run(hosts, " ".join(command), forks=n_forks, timeout=limit,
                               known_hosts=known_hosts, ssh_cfg=ssh_cfg))
    if json_:
        from watchkeeper.cli.common import print_json

        print_json([r.to_dict() for r in results])
    else:
        _table(results)
    raise typer.Exit(0 if all(r.ok for r in results) else 1)


def _select(pattern: str, inventory: list[str] | None, config: str | None) -> tuple[Any, list[Any]]:
    """(ssh settings or None, the hosts ``pattern`` selects). Raises InputError/ConfigError."""
    from watchkeeper.automation.inventory import load_inventory
    from watchkeeper.cli.common import load

    if inventory:
        inv = load_inventory(inventory)
        ssh_cfg = load(config).config.ssh if config else None
    else:
        cfg = load(config).config
        ssh_cfg = cfg.ssh
        inv = load_inventory(cfg.inventory or None, config=cfg.hosts)
    return ssh_cfg, list(inv.select(pattern))


async def _run(hosts: list[Any], text: str, *, forks: int, timeout: float | None,
               known_hosts: str | None, ssh_cfg: Any) -> list[Any]:
    from watchkeeper.automation.adhoc import run_adhoc
    from watchkeeper.automation.command import Command
    from watchkeeper.automation.executors import Executors, LocalExecutor

    def make_ssh() -> Any:
        from watchkeeper.automation.executors.ssh import SSHExecutor

        kw: dict[str, Any] = {"forks": forks}
        if ssh_cfg is not None:
            kw.update(insecure=ssh_cfg.insecure, client_keys=ssh_cfg.client_keys or None,
                      connect_timeout=ssh_cfg.connect_timeout, output_cap=ssh_cfg.output_cap,
                      known_hosts=ssh_cfg.known_hosts)
        if known_hosts:
            kw["known_hosts"] = known_hosts
        return SSHExecutor(**kw)

    executors = Executors(LocalExecutor(), ssh_factory=make_ssh)
    reporter = _Reporter(len(hosts))
    try:
        with reporter:
            return await run_adhoc(hosts, Command.shell(text), executors, forks=forks,
                                   timeout=timeout, on_progress=reporter.update)
    finally:
        await executors.close()


class _Reporter:
    """Live progress on stderr: a status line on a terminal, a summary line otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tty = sys.stderr.isatty()
        self._live: Any = None
        self._last: Any = None

    def __enter__(self) -> _Reporter:
        if self.tty and self.total:
            from rich.console import Console
            from rich.live import Live

            self._live = Live("", console=Console(stderr=True), transient=True,
                              refresh_per_second=10)
            self._live.__enter__()
        return self

    def update(self, progress: Any, result: Any) -> None:
        self._last = progress
        if self._live is not None:
            self._live.update(progress.summary())

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
        if self._last is not None:
            sys.stderr.write(self._last.summary() + "\n")


def _table(results: list[Any]) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    colors = {"ok": "green", "failed": "red", "unreachable": "magenta", "timeout": "yellow"}
    table = Table(show_lines=False)
    for col in ("host", "status", "exit", "time", "output"):
        table.add_column(col, overflow="fold")
    for r in results:
        output = "\n".join(x for x in (r.stdout.rstrip("\n"), r.stderr.rstrip("\n"),
                                       r.error or "") if x)
        table.add_row(escape(r.host), f"[{colors.get(r.status, 'white')}]{r.status}[/]",
                      "" if r.exit_code is None else str(r.exit_code),
                      f"{r.duration_seconds:.2f}s", escape(output))
    console = Console(width=None if sys.stdout.isatty() else 160)
    if results:
        console.print(table)
    else:
        console.print("no hosts matched")


def _remote(server: str, pattern: str, command: str, *, forks: int, timeout: float | None,
            config: str | None) -> list[Any]:
    """POST /api/v1/exec to a running server; its results as ExecResult objects."""
    import httpx

    from watchkeeper.automation.executors.base import ExecResult
    from watchkeeper.cli.alerts_cmd import _token
    from watchkeeper.errors import InputError, ServerUnreachableError

    url = server.rstrip("/")
    token = _token(config, None)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.post(f"{url}/api/v1/exec", json={"pattern": pattern, "command": command,
                                                      "forks": forks, "timeout": timeout},
                          headers=headers, timeout=None)
    except httpx.HTTPError as exc:
        raise ServerUnreachableError(f"cannot reach watchkeeper at {url}: {exc}") from None
    body = resp.json()
    if resp.status_code >= 400:
        raise InputError(f"{url}: HTTP {resp.status_code}: {body.get('error', body)}")
    return [ExecResult(**{k: v for k, v in r.items()}) for r in body["results"]]
