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

# typing costs ~6 ms to import and nothing here needs it at run time (annotations are
# strings); type checkers treat any name TYPE_CHECKING as true
TYPE_CHECKING = False
if TYPE_CHECKING:
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
    ``--timeout`` or ``--forks``, an unknown pattern, an error answer from ``--server``),
    ConfigError, ServerUnreachableError. With ``server`` nothing heavier than the standard
    library is imported on the way to a successful answer (the warm path is timed).
    """
    if not command:
        from watchkeeper.errors import InputError

        raise InputError("no command given", hint="watchkeeper exec PATTERN -- COMMAND")
    limit: float | None = None
    if timeout:
        from watchkeeper.units import parse_duration

        try:
            limit = parse_duration(timeout)
        except ValueError:
            from watchkeeper.errors import InputError

            raise InputError(f"--timeout {timeout!r} is not a duration (e.g. 30s, 5m)") from None
    if server:
        if forks is not None and forks < 1:
            from watchkeeper.errors import InputError

            raise InputError(f"--forks must be at least 1, not {forks}")
        results = _remote(server, pattern, " ".join(command), forks=forks or 50, timeout=limit,
                          config=config)
        _imports_done()
        sys.stderr.write(_summary(results) + "\n")
    else:
        ssh_cfg, hosts = _select(pattern, inventory, config)
        n_forks = forks if forks is not None else (ssh_cfg.forks if ssh_cfg else 50)
        if n_forks < 1:
            from watchkeeper.errors import InputError

            raise InputError(f"--forks must be at least 1, not {n_forks}")
        import asyncio

        # everything the fan-out uses is loaded before the collector is back on
        from watchkeeper.automation import adhoc, executors  # noqa: F401

        if any(h.connection != "local" for h in hosts):
            from watchkeeper.automation.executors import ssh  # noqa: F401
            from watchkeeper.automation.executors._asyncssh import import_asyncssh

            import_asyncssh()
        _imports_done()
        results = [r.to_dict() for r in asyncio.run(
            _run(hosts, " ".join(command), forks=n_forks, timeout=limit,
                 known_hosts=known_hosts, ssh_cfg=ssh_cfg))]
    if json_:
        _print_json(results)
    else:
        _table(results)
    return 0 if all(r.get("status") == "ok" for r in results) else 1


def _imports_done() -> None:
    """After ``main`` turned the cyclic garbage collector off for a cold ``exec``: move
    what start-up made (modules, classes: alive until exit) out of its sight and turn it
    back on. A no-op when the collector is on (run from typer or in-process).

    The fan-out then pays only for collecting its own objects. Measured on 50 loopback
    hosts: ~50 ms less client CPU of ~260 ms, a tenth off the wall time.
    """
    import gc

    if not gc.isenabled():
        gc.freeze()
        gc.enable()


def _summary(results: list[dict[str, Any]]) -> str:
    """The closing line of a local run's progress (adhoc.Progress.summary), for a remote one."""
    n = {k: 0 for k in ("ok", "failed", "unreachable", "timeout")}
    for r in results:
        status = str(r.get("status"))
        n[status] = n.get(status, 0) + 1
    return (f"done {n['ok']}, failed {n['failed']}, unreachable {n['unreachable']}, "
            f"timeout {n['timeout']}, remaining 0 of {len(results)}")


def _print_json(data: Any) -> None:
    # cli.common.print_json, without importing typer for it
    import json

    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def _select(pattern: str, inventory: list[str] | None, config: str | None) -> tuple[Any, list[Any]]:
    """(ssh settings or None, the hosts ``pattern`` selects). Raises InputError/ConfigError."""
    from watchkeeper.automation.inventory import load_inventory

    if inventory:
        inv = load_inventory(inventory)
        ssh_cfg = _load_config(config).ssh if config else None
    else:
        cfg = _load_config(config)
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
    """Live progress on stderr: a status line redrawn in place on a terminal (at most ten
    times a second), and the final summary line in any case."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.tty = sys.stderr.isatty()
        self._last: Any = None
        self._drawn = 0.0
        self._shown = False

    def __enter__(self) -> _Reporter:
        return self

    def update(self, progress: Any, result: Any) -> None:
        self._last = progress
        if not (self.tty and self.total):
            return
        import time

        now = time.monotonic()
        if now - self._drawn >= 0.1:
            self._drawn = now
            self._shown = True
            # carriage return, the line, erase to its end: redrawn in place
            sys.stderr.write("\r" + progress.summary() + "\x1b[K")
            sys.stderr.flush()

    def __exit__(self, *exc: object) -> None:
        if self._shown:
            sys.stderr.write("\r\x1b[K")
        if self._last is not None:
            sys.stderr.write(self._last.summary() + "\n")


_STATUS_COLOURS = {"ok": "green", "failed": "red", "unreachable": "magenta", "timeout": "yellow"}


def _table(results: list[dict[str, Any]]) -> None:
    """One row per host (host, status, exit, time, output) on stdout, or "no hosts matched"."""
    from watchkeeper.cli._table import colour_wanted, render_table

    if not results:
        sys.stdout.write("no hosts matched\n")
        return
    rows: list[list[str]] = []
    for r in results:
        output = "\n".join(x for x in (str(r.get("stdout") or "").rstrip("\n"),
                                       str(r.get("stderr") or "").rstrip("\n"),
                                       str(r.get("error") or "")) if x)
        code = r.get("exit_code")
        rows.append([str(r.get("host", "")), str(r.get("status", "")),
                     "" if code is None else str(code),
                     f"{float(r.get('duration_seconds') or 0.0):.2f}s", output])
    tty = sys.stdout.isatty()
    width = 160
    if tty:
        try:
            width = os.get_terminal_size(sys.stdout.fileno()).columns
        except OSError:
            pass
    colours: list[str | None] = [_STATUS_COLOURS.get(str(r.get("status")), "white")
                                 for r in results]
    sys.stdout.write(render_table(["host", "status", "exit", "time", "output"], rows,
                                  width=width, colours=colours, colour=colour_wanted(tty)))


def _remote(server: str, pattern: str, command: str, *, forks: int, timeout: float | None,
            config: str | None) -> list[dict[str, Any]]:
    """POST /api/v1/exec to a running server; its results, one dict per host.

    Standard library only (``cli/_http.py``: a socket, json): this is the warm path people
    time, and httpx alone takes longer to import than the server takes to answer. No proxy
    is used (the server is normally on loopback); an https URL gets verified TLS.
    Raises InputError (a bad URL, an error answer), ServerUnreachableError.
    """
    import json
    from urllib.parse import urlsplit

    from watchkeeper.cli._http import HTTPFailure, post

    url = server.rstrip("/")
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = -1
    if parts.scheme not in ("http", "https") or not parts.hostname or port == -1:
        from watchkeeper.errors import InputError

        raise InputError(f"--server {server!r} is not an http:// or https:// URL",
                         hint="e.g. --server http://127.0.0.1:8470")
    token = _token(config)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    payload = json.dumps({"pattern": pattern, "command": command, "forks": forks,
                          "timeout": timeout}).encode()
    try:
        # connecting must be quick; the answer comes when the slowest host is done, so
        # wait as long as the command may take (no --timeout: no limit, as before)
        status, raw = post(parts.scheme, parts.hostname, port, parts.path + "/api/v1/exec",
                           payload, headers, connect_timeout=_CONNECT_TIMEOUT,
                           read_timeout=None if timeout is None else timeout + _ANSWER_MARGIN)
    except HTTPFailure as exc:
        from watchkeeper.errors import ServerUnreachableError

        raise ServerUnreachableError(f"cannot reach watchkeeper at {url}: {exc}",
                                     hint="start it with `watchkeeper up`, or check --server"
                                     ) from None
    try:
        body = json.loads(raw)
    except ValueError:
        body = {"error": raw.decode("utf-8", "replace").strip()[:500] or "(empty answer)"}
    if status >= 400 or not isinstance(body, dict) or not isinstance(body.get("results"), list):
        from watchkeeper.errors import InputError

        msg = body.get("error", body) if isinstance(body, dict) else body
        raise InputError(f"{url}: HTTP {status}: {msg}")
    results: list[dict[str, Any]] = body["results"]
    return results


_CONNECT_TIMEOUT = 10.0
_ANSWER_MARGIN = 30.0  # beyond --timeout: the server's own fan-out and the way back


def _load_config(config: str | None) -> Any:
    """cli.common.load (``config``, else ./watchkeeper.yaml, else the default) without
    importing typer, which cli.common does at module level (~40 ms). Raises ConfigError."""
    from pathlib import Path

    from watchkeeper.config import default_config, load_config

    if config:
        return load_config(config).config
    if Path("watchkeeper.yaml").exists():
        return load_config("watchkeeper.yaml").config
    return default_config().config


def _token(config: str | None) -> str | None:
    """The API token, looked up as the other commands do (cli.alerts_cmd._token):
    $WATCHKEEPER_TOKEN, else the config's server.token, else DATA_DIR/token.

    The environment is read first so the usual case loads no config at all; the data dir
    is found as server.resolve_data_dir finds it, without importing the server (and
    SQLAlchemy with it)."""
    env = os.environ.get("WATCHKEEPER_TOKEN", "").strip()
    if env:
        return env
    cfg = _load_config(config)
    if cfg.server.token:
        return str(cfg.server.token)
    from pathlib import Path

    if cfg.storage.data_dir:
        data_dir = Path(os.path.expandvars(cfg.storage.data_dir)).expanduser()
    else:
        base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"),
                                                                ".local", "share")
        data_dir = Path(base) / "watchkeeper"
    try:
        return (data_dir / "token").read_text().strip() or None
    except OSError:
        return None
