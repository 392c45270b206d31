"""What ``watchkeeper exec`` does, without typer: argument parsing for the fast path and the run.

``watchkeeper exec`` is the command people time against ``ansible -m raw``, and most of
a cold run is start-up. typer builds the whole command tree and a pydantic adapter per
parameter before it calls a command (~90 ms); so ``main()`` first tries
``parse_fast`` here, which understands the plain forms of exec's options and gives up
(returns None) on anything else -- ``--help``, an unknown or abbreviated option,
``-ivalue``, a missing ``--`` -- so typer still parses, and words the errors for,
everything unusual. ``cli/exec_cmd.py`` holds the typer command, which calls ``run_exec``.
"""

from __future__ import annotations

import os
import sys
from typing import Any

__all__ = ["parse_fast", "run_exec"]

# option -> (parameter, takes a value); exec_cmd.exec_'s options, in the forms click accepts
_OPTIONS: dict[str, tuple[str, bool]] = {
    "--inventory": ("inventory", True), "-i": ("inventory", True),
    "--forks": ("forks", True), "-f": ("forks", True),
    "--json": ("json_", False),
    "--known-hosts": ("known_hosts", True),
    "--timeout": ("timeout", True), "-t": ("timeout", True),
    "--config": ("config", True), "-c": ("config", True),
    "--server": ("server", True),
}
_ENVVARS = {"config": "WATCHKEEPER_CONFIG", "server": "WATCHKEEPER_SERVER"}


def parse_fast(args: list[str], environ: dict[str, str] | None = None) -> dict[str, Any] | None:
    """``exec``'s arguments (after the word ``exec``) as keyword arguments for ``run_exec``.

    None when the arguments are anything but the plain form
    ``[OPTIONS] PATTERN [OPTIONS] -- COMMAND...`` (each option once, except
    ``--inventory``; values as separate words or ``--long=value``): typer then parses
    them and words any error. Never raises.
    """
    env = os.environ if environ is None else environ
    if "--" not in args:
        return None
    split = args.index("--")
    head, command = args[:split], args[split + 1:]
    if not command:
        return None
    out: dict[str, Any] = {"inventory": None, "forks": None, "json_": False, "known_hosts": None,
                           "timeout": None, "config": None, "server": None}
    given: set[str] = set()
    pattern: str | None = None
    i = 0
    while i < len(head):
        word = head[i]
        i += 1
        if not word.startswith("-") or word == "-":
            if pattern is not None:
                return None
            pattern = word
            continue
        name, eq, inline = word.partition("=")
        if eq and not name.startswith("--"):
            return None
        spec = _OPTIONS.get(name)
        if spec is None:
            return None
        param, takes_value = spec
        if param in given and param != "inventory":
            return None
        given.add(param)
        if not takes_value:
            if eq:
                return None
            out[param] = True
            continue
        if eq:
            value = inline
        else:
            if i >= len(head) or head[i].startswith("-"):
                return None
            value = head[i]
            i += 1
        if param == "inventory":
            out["inventory"] = [*(out["inventory"] or []), value]
        elif param == "forks":
            if not value.isascii() or not value.isdigit():
                return None
            out["forks"] = int(value)
        else:
            out[param] = value
    if pattern is None:
        return None
    for param, var in _ENVVARS.items():
        if param not in given and var in env:
            if not env[var]:
                return None  # leave click's reading of an empty variable to click
            out[param] = env[var]
    out["pattern"] = pattern
    out["command"] = command
    return out


def run_exec(pattern: str, command: list[str], inventory: list[str] | None = None,
             forks: int | None = None, json_: bool = False, known_hosts: str | None = None,
             timeout: str | None = None, config: str | None = None,
             server: str | None = None) -> int:
    """Run ``command`` on every host ``pattern`` selects; print the results; the exit status.

    0 when every host returned ``ok``, else 1. Raises InputError (no command, a bad
    ``--timeout`` or ``--forks``, an unknown pattern), ConfigError, ServerUnreachableError.
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
    else:
        ssh_cfg, hosts = _select(pattern, inventory, config)
        n_forks = forks if forks is not None else (ssh_cfg.forks if ssh_cfg else 50)
        if n_forks < 1:
            raise InputError(f"--forks must be at least 1, not {n_forks}")
        import asyncio

        results = asyncio.run(_run(hosts, " ".join(command), forks=n_forks, timeout=limit,
                                   known_hosts=known_hosts, ssh_cfg=ssh_cfg))
    if json_:
        _print_json([r.to_dict() for r in results])
    else:
        _table(results)
    return 0 if all(r.ok for r in results) else 1


def _print_json(data: Any) -> None:
    # cli.common.print_json, without importing typer for it
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _select(pattern: str, inventory: list[str] | None, config: str | None) -> tuple[Any, list[Any]]:
    """(ssh settings or None, the hosts ``pattern`` selects). Raises InputError/ConfigError."""
    from watchkeeper.automation.inventory import load_inventory

    if inventory:
        inv = load_inventory(inventory)
        ssh_cfg = None
        if config:
            from watchkeeper.cli.common import load

            ssh_cfg = load(config).config.ssh
    else:
        from watchkeeper.cli.common import load

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
