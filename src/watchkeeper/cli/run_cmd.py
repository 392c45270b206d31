"""``watchkeeper run``, ``runbooks [validate]``, ``runs [show|cancel]``, ``approve``, ``reject``.

Without ``--server`` they work in this process against the data dir (``--data-dir``,
``storage.data_dir`` or the XDG data dir): ``run`` executes the runbook here and
follows it live; ``approve``/``reject``/``runs cancel`` change the run record,
and the engine running it (here, or in ``watchkeeper up`` on the same data dir)
sees the change within half a second. With ``--server URL`` they go through the
REST API of a running watchkeeper (token: ``--token``, ``$WATCHKEEPER_TOKEN`` or the
data dir's ``token`` file), which records the token's name as who acted.

``approve``/``reject`` need a token in both cases: the decider's name and roles are the
token's (watchkeeper.auth), never declared on the command line. Against the data dir
the main token (the data dir's ``token`` file, which only the server's user can read,
or ``server.token``) is ``admin`` with every role; a named token is checked in the
data dir's database.

Exit status: 0 when the run ended ``ok`` (or the command did what it was asked), 1 when
a run failed, was rejected or cancelled, 2 for bad input (unknown runbook, bad
param), 3 when a server or database is unreachable.

The lead registers them in cli/main.py::

    app.command("run")(run_cmd.run)
    app.add_typer(run_cmd.runbooks_app, name="runbooks")
    app.add_typer(run_cmd.runs_app, name="runs")
    app.command("approve")(run_cmd.approve)
    app.command("reject")(run_cmd.reject)
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from watchkeeper.cli.common import ConfigOpt, DataDirOpt, JsonOpt, ServerOpt, print_json
from watchkeeper.cli.tokens_cmd import TokenOpt
from watchkeeper.errors import InputError

__all__ = ["approve", "reject", "run", "runbooks_app", "runs_app"]

runbooks_app = typer.Typer(help="List and validate the runbooks of the runbook directory.",
                           invoke_without_command=True)
runs_app = typer.Typer(help="Runs of runbooks: list, show one, cancel.", invoke_without_command=True)

ParamOpt = Annotated[list[str] | None, typer.Option("--param", "-p", metavar="KEY=VALUE",
                                                    help="A runbook parameter (repeatable).")]
InventoryOpt = Annotated[list[str] | None, typer.Option("--inventory", "-i",
                                                        help="Inventory file (repeatable); "
                                                             "default: the config's.")]
ByOpt = Annotated[str | None, typer.Option("--as", help="Who you are, for the record "
                                           "(default: your login name).")]
DirOpt = Annotated[str | None, typer.Option("--dir", help="Runbook directory (default: the "
                                            "config's `runbooks:`).")]
FINAL = ("ok", "failed", "cancelled", "interrupted", "rejected")


# ---------------------------------------------------------------- helpers

def _who(by: str | None) -> str:
    from watchkeeper.automation.engine import default_user

    return by or default_user()


def _parse_params(items: list[str] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"-p {item!r}: write parameters as KEY=VALUE")
        out[key.strip()] = value
    return out


def _library(config: str | None, directory: str | None) -> Any:
    from watchkeeper.automation.runbook import RunbookLibrary
    from watchkeeper.cli.common import load

    if directory:
        return RunbookLibrary(Path(directory).expanduser())
    loaded = load(config)
    rb_dir = getattr(loaded.config, "runbooks", None)
    if not rb_dir:
        return RunbookLibrary(None)
    p = Path(rb_dir).expanduser()
    if not p.is_absolute() and loaded.path is not None:
        p = loaded.path.parent / p
    return RunbookLibrary(p)


def _store(config: str | None, data_dir: str | None) -> Any:
    """A RunStore (with the event log) over the data dir's database."""
    from watchkeeper.automation.runs import RunStore
    from watchkeeper.cli.common import load
    from watchkeeper.eventlog import EventLog
    from watchkeeper.server import resolve_data_dir
    from watchkeeper.store.engine import open_engine

    cfg = load(config).config
    ddir = resolve_data_dir(data_dir, cfg)
    engine = open_engine(cfg.storage.url, ddir)
    return RunStore(engine, eventlog=EventLog(engine, anchor=ddir / "eventlog.head"))


def _api(method: str, server: str | None, config: str | None, data_dir: str | None, path: str,
         body: Any = None, params: Any = None, token: str | None = None) -> Any:
    from watchkeeper.cli.alerts_cmd import _request
    from watchkeeper.cli.common import server_url
    from watchkeeper.cli.tokens_cmd import resolve_token

    url = server_url(server, config)
    sent = resolve_token(token, config, data_dir) if method != "GET" else None
    return _request(method, url, path, token=sent, json=body, params=params)


def _no_as_with_server(by: str | None) -> None:
    if by is not None:
        raise InputError("--as: with --server, who acts is the name of your API token",
                         hint="an admin makes you one: `watchkeeper tokens create NAME "
                              "--role ROLE`; send it with --token or WATCHKEEPER_TOKEN")


def _ago(ts: float | None) -> str:
    if ts is None:
        return "-"
    from watchkeeper.units import format_duration

    return format_duration(max(0.0, round(time.time() - ts))) + " ago"


def _dur(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds:.1f}s"


def _status_code(status: str) -> int:
    return 0 if status == "ok" else 1


def _print_step(step: dict[str, Any], err: bool = False) -> None:
    """One line per finished step, and its output when it did not pass."""
    if step.get("phase") == "result":
        return
    status = step["status"]
    mark = {"ok": "ok", "check": "would", "skipped": "skip"}.get(status, status.upper())
    changed = " changed" if step.get("changed") else ""
    where = step["host"] if step["host"] != "*" else "(run)"
    line = f"{where:<16} {step['phase'] + ':' if step['phase'] != 'steps' else ''}{step['step']:<24} " \
           f"{mark}{changed} {_dur(step.get('duration_seconds'))}"
    typer.echo(line, err=err)
    if status == "check" and step.get("command"):
        typer.echo(f"    $ {step['command']}", err=err)
    detail = step.get("detail") or ""
    if detail and (status not in ("ok", "skipped") or "\n" in detail):
        for text in detail.splitlines()[:60]:
            typer.echo(f"    {text}", err=err)
    if status not in ("ok", "check", "skipped", "awaiting_approval"):
        for stream in ("stdout", "stderr"):
            text = (step.get(stream) or "").rstrip()
            if text:
                for text_line in text.splitlines()[-20:]:
                    typer.echo(f"    {stream}: {text_line}", err=err)


def _print_run(rec: dict[str, Any]) -> None:
    typer.echo(f"run {rec['id']}  {rec['runbook']}  {rec['status']}")
    typer.echo(f"  started by {rec['started_by']} via {rec['trigger']}, {_ago(rec.get('created_at'))}"
               f"{'  (dry run)' if rec.get('check_mode') else ''}")
    if rec.get("params"):
        typer.echo("  params: " + ", ".join(f"{k}={v}" for k, v in rec["params"].items()))
    if rec.get("summary"):
        typer.echo(f"  {rec['summary']}")
    typer.echo("  hosts: " + ", ".join(f"{h}={s}" for h, s in rec.get("hosts", {}).items()))
    for step in rec.get("steps", []):
        _print_step(step)


# ---------------------------------------------------------------- run

def run(runbook: Annotated[str, typer.Argument(help="A runbook name from the runbook directory, "
                                                    "or a path to a runbook file.")],
        param: ParamOpt = None,
        check: Annotated[bool, typer.Option("--check", help="Dry run: show what would run where "
                                            "(and copy diffs); change nothing.")] = False,
        limit: Annotated[str | None, typer.Option("--limit", help="Only the targets that this "
                                                  "host pattern also selects.")] = None,
        inventory: InventoryOpt = None,
        known_hosts: Annotated[str | None, typer.Option("--known-hosts",
                                                        help="known_hosts file for SSH.")] = None,
        forks: Annotated[int | None, typer.Option("--forks", min=1,
                                                  help="Concurrent SSH connections.")] = None,
        json_: JsonOpt = False, by: ByOpt = None, directory: DirOpt = None,
        config: ConfigOpt = None, data_dir: DataDirOpt = None, server: ServerOpt = None,
        token: TokenOpt = None) -> None:
    """Run a runbook on its targets and follow it live; the run is recorded (with --server,
    as started by your API token's name)."""
    params = _parse_params(param)
    if server:
        if inventory or known_hosts or forks:
            raise InputError("--inventory, --known-hosts and --forks apply to local runs; the "
                             "server uses its own config")
        raise typer.Exit(_run_remote(runbook, params, check, limit, json_, by, config, data_dir,
                                     server, token))
    raise typer.Exit(asyncio.run(_run_local(runbook, params, check=check, limit=limit,
                                            inventory=inventory, known_hosts=known_hosts,
                                            forks=forks, json_=json_, by=by, directory=directory,
                                            config=config, data_dir=data_dir)))


async def _run_local(runbook: str, params: dict[str, str], *, check: bool, limit: str | None,
                     inventory: list[str] | None, known_hosts: str | None, forks: int | None,
                     json_: bool, by: str | None, directory: str | None, config: str | None,
                     data_dir: str | None) -> int:
    from watchkeeper.automation.engine import RunEngine, target_pattern
    from watchkeeper.automation.executors.local import LocalExecutor
    from watchkeeper.automation.executors.router import Executors
    from watchkeeper.automation.inventory import load_inventory
    from watchkeeper.automation.secrets import SecretStore
    from watchkeeper.cli.common import load
    from watchkeeper.server import resolve_data_dir

    loaded = load(config)
    cfg = loaded.config
    library = _library(config, directory)
    rb = library.get(runbook)
    inv = load_inventory(inventory) if inventory else load_inventory(
        cfg.inventory or None, config=cfg.hosts)
    hosts = inv.select(target_pattern(rb, params))
    if limit:
        allowed = set(inv.select_names(limit))
        hosts = [h for h in hosts if h.name in allowed]
        if not hosts:
            raise InputError(f"--limit {limit!r} leaves none of the targets of {rb.name} "
                             f"({rb.targets})")
    store = _store(config, data_dir)
    ssh_cfg = cfg.ssh
    secrets = SecretStore(resolve_data_dir(data_dir, cfg))

    def make_ssh() -> Any:
        from watchkeeper.automation.executors.ssh import SSHExecutor

        return SSHExecutor(known_hosts=known_hosts or ssh_cfg.known_hosts,
                           insecure=ssh_cfg.insecure, client_keys=list(ssh_cfg.client_keys) or None,
                           connect_timeout=ssh_cfg.connect_timeout, output_cap=ssh_cfg.output_cap,
                           forks=forks or ssh_cfg.forks, secrets=secrets)

    executors = Executors(LocalExecutor(output_cap=ssh_cfg.output_cap, secrets=secrets),
                          ssh_factory=make_ssh)
    engine = RunEngine(executors, store, check_runner=_check_runner(cfg), library=library)
    try:
        prep = engine.prepare(rb, params, hosts, trigger="cli", started_by=_who(by),
                              check_mode=check)
        if not json_:
            typer.echo(f"run {prep.run_id}: {rb.name} on {len(hosts)} host"
                       f"{'s' if len(hosts) != 1 else ''}{' (dry run)' if check else ''}", err=True)
        async with asyncio.TaskGroup() as tg:
            if not json_:
                tg.create_task(_follow(store, prep.run_id))  # ends with the run
            rec = await engine.execute(prep)
    finally:
        await executors.close()
        store.engine.dispose()
    if json_:
        print_json(rec.to_dict())
    else:
        typer.echo(f"{rec.status}: {rec.summary}")
    return _status_code(rec.status)


async def _follow(store: Any, run_id: str) -> None:
    async for ev in store.subscribe(run_id):
        data = ev.data
        if ev.kind == "step":
            if data["status"] == "awaiting_approval":
                typer.echo(f"waiting for approval: `watchkeeper approve {run_id[:8]}` "
                           f"(or reject) {data.get('detail', '')}", err=True)
            elif data["status"] != "running":
                _print_step(data, err=True)


def _check_runner(cfg: Any) -> Any:
    """``check`` steps in a local run: the config's checks, run once here."""
    checks = {c.name: c for c in getattr(cfg, "checks", [])}

    async def run_check(name: str) -> Any:
        from watchkeeper.errors import NotFoundError
        from watchkeeper.monitor.runner import execute

        if name not in checks:
            raise NotFoundError(f"no check named {name!r} in the config")
        return await execute(checks[name])

    return run_check


def _run_remote(runbook: str, params: dict[str, str], check: bool, limit: str | None,
                json_: bool, by: str | None, config: str | None, data_dir: str | None,
                server: str, token: str | None = None) -> int:
    _no_as_with_server(by)
    body = {"runbook": runbook, "params": params, "limit": limit, "check": check}
    started = _api("POST", server, config, data_dir, "/api/v1/runs", body=body, token=token)
    run_id = started["id"]
    if not json_:
        typer.echo(f"run {run_id}: {runbook} (on {server})", err=True)
    seen: dict[int, str] = {}
    while True:
        rec = _api("GET", server, config, data_dir, f"/api/v1/runs/{run_id}")
        if not json_:
            for step in rec.get("steps", []):
                key = step["status"]
                if seen.get(step["id"]) != key and key not in ("running",):
                    seen[step["id"]] = key
                    if key == "awaiting_approval":
                        typer.echo(f"waiting for approval: `watchkeeper approve {run_id[:8]}`",
                                   err=True)
                    else:
                        _print_step(step, err=True)
        if rec["status"] in FINAL:
            break
        time.sleep(0.5)
    if json_:
        print_json(rec)
    else:
        typer.echo(f"{rec['status']}: {rec.get('summary', '')}")
    return _status_code(rec["status"])


# ---------------------------------------------------------------- runbooks

@runbooks_app.callback()
def runbooks(ctx: typer.Context, json_: JsonOpt = False, directory: DirOpt = None,
             config: ConfigOpt = None) -> None:
    """List the runbooks of the runbook directory."""
    if ctx.invoked_subcommand is not None:
        return
    lib = _library(config, directory)
    books = lib.list()
    if json_:
        print_json({"directory": str(lib.directory) if lib.directory else None,
                    "runbooks": [rb.summary() for rb in books]})
        return
    if lib.directory is None:
        typer.echo("no runbook directory: set `runbooks: DIR` in watchkeeper.yaml or pass --dir",
                   err=True)
        raise typer.Exit(2)
    if not books:
        typer.echo(f"no runbooks in {lib.directory}")
        return
    width = max(len(rb.name) for rb in books)
    for rb in books:
        params = ", ".join(f"{k}{'*' if p.required else ''}" for k, p in rb.params.items())
        typer.echo(f"{rb.name:<{width}}  {rb.description}" + (f"  [params: {params}]" if params else ""))
    bad = len(lib.files()) - len(books)
    if bad:
        typer.echo(f"{bad} file(s) do not load: run `watchkeeper runbooks validate`", err=True)


@runbooks_app.command("validate")
def validate(files: Annotated[list[str] | None, typer.Argument(help="Runbook files (default: "
                                                                   "the runbook directory).")] = None,
             directory: DirOpt = None, config: ConfigOpt = None) -> None:
    """Check runbook files: YAML, keys, types, templates; every problem with file:line."""
    from watchkeeper.automation.runbook import load_runbook
    from watchkeeper.errors import ConfigError

    issues: list[Any] = []
    count = 0
    if files:
        for f in files:
            count += 1
            try:
                load_runbook(f)
            except ConfigError as exc:
                issues.extend(exc.issues)
    else:
        lib = _library(config, directory)
        if lib.directory is None:
            raise InputError("no runbook directory: set `runbooks: DIR` in watchkeeper.yaml, "
                             "pass --dir, or name files")
        count = len(lib.files())
        issues = lib.validate()
    for issue in issues:
        typer.echo(str(issue), err=True)
    if issues:
        raise typer.Exit(2)
    typer.echo(f"{count} runbook file{'s' if count != 1 else ''} OK")


# ---------------------------------------------------------------- runs

@runs_app.callback()
def runs(ctx: typer.Context, json_: JsonOpt = False,
         limit: Annotated[int, typer.Option("--limit", min=1, help="How many runs.")] = 20,
         status: Annotated[str | None, typer.Option("--status", help="Only runs in this "
                                                    "status.")] = None,
         config: ConfigOpt = None, data_dir: DataDirOpt = None, server: ServerOpt = None) -> None:
    """List recent runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    if server:
        body = _api("GET", server, config, data_dir, "/api/v1/runs",
                    params={"limit": limit, **({"status": status} if status else {})})
        items = body["runs"] if isinstance(body, dict) else body
    else:
        store = _store(config, data_dir)
        try:
            items = [r.to_dict() for r in store.list(limit=limit, status=status)]
        finally:
            store.engine.dispose()
    if json_:
        print_json(items)
        return
    if not items:
        typer.echo("no runs")
        return
    typer.echo(f"{'ID':<8}  {'RUNBOOK':<20} {'STATUS':<17} {'TRIGGER':<8} {'BY':<14} "
               f"{'STARTED':<14} SUMMARY")
    for r in items:
        typer.echo(f"{r['id'][:8]:<8}  {r['runbook'][:20]:<20} {r['status']:<17} "
                   f"{r['trigger']:<8} {r['started_by'][:14]:<14} {_ago(r['created_at']):<14} "
                   f"{r.get('summary', '')}")


@runs_app.command("show")
def show(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
         json_: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None,
         server: ServerOpt = None) -> None:
    """Show one run: who, how, params, each host's and each step's outcome and output."""
    if server:
        rec = _api("GET", server, config, data_dir, f"/api/v1/runs/{run_id}")
    else:
        store = _store(config, data_dir)
        try:
            rec = store.get(run_id).to_dict()
        finally:
            store.engine.dispose()
    if json_:
        print_json(rec)
        return
    _print_run(rec)


@runs_app.command("cancel")
def cancel(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
           by: ByOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None,
           server: ServerOpt = None, token: TokenOpt = None) -> None:
    """Cancel a run that has not finished."""
    if server:
        _no_as_with_server(by)
        rec = _api("POST", server, config, data_dir, f"/api/v1/runs/{run_id}/cancel",
                   token=token)
    else:
        store = _store(config, data_dir)
        try:
            rec = store.cancel(run_id, by=_who(by)).to_dict()
        finally:
            store.engine.dispose()
    typer.echo(f"run {rec['id']} ({rec['runbook']}): {rec['status']}")


def _local_identity(token: str | None, config: str | None, data_dir: str | None,
                    store: Any) -> Any:
    """Who decides, against the data dir: the token's identity. The main token (server.token,
    or the data dir's 'token' file, 0600) is admin; others are looked up in the database."""
    from watchkeeper.auth import TokenStore, identify
    from watchkeeper.cli.common import load
    from watchkeeper.cli.tokens_cmd import resolve_token
    from watchkeeper.errors import AuthenticationError
    from watchkeeper.server import resolve_data_dir

    given = resolve_token(token, config, data_dir)
    cfg = load(config).config
    token_file = resolve_data_dir(data_dir, cfg) / "token"
    hint = ("pass --token (or set WATCHKEEPER_TOKEN) with your named token, or run as the "
            f"server's user, who can read {token_file}")
    if not given:
        raise AuthenticationError("approving or rejecting needs an API token: the decider's "
                                  "name and roles are the token's", hint=hint)
    main = str(cfg.server.token) if cfg.server.token else None
    if main is None:
        try:
            main = token_file.read_text().strip() or None
        except OSError:
            main = None
    return identify(given, main_token=main, tokens=TokenStore(store.engine),
                    unknown=f"the API token is not the main token of {token_file.parent} and "
                            "no named token there matches it")


def _decide(decision: str, run_id: str, comment: str, by: str | None, role: list[str] | None,
            config: str | None, data_dir: str | None, server: str | None,
            token: str | None) -> None:
    if role:
        raise InputError("--role is gone: an approver's roles are those of their API token",
                         hint="an admin gives a token roles: `watchkeeper tokens create NAME "
                              "--role ROLE`; send it with --token or WATCHKEEPER_TOKEN")
    if by is not None:
        raise InputError("--as is gone for approve and reject: who decides is the name of "
                         "the API token",
                         hint="an admin makes you one: `watchkeeper tokens create NAME --role "
                              "ROLE`; send it with --token or WATCHKEEPER_TOKEN")
    if server:
        rec = _api("POST", server, config, data_dir, f"/api/v1/runs/{run_id}/{decision}",
                   body={"comment": comment}, token=token)
    else:
        store = _store(config, data_dir)
        try:
            who = _local_identity(token, config, data_dir, store)
            method = store.approve if decision == "approve" else store.reject
            rec = method(run_id, by=who.name, comment=comment, roles=set(who.roles)).to_dict()
        finally:
            store.engine.dispose()
    verb = "approved" if decision == "approve" else "rejected"
    typer.echo(f"run {rec['id']} ({rec['runbook']}): {verb}")


CommentOpt = Annotated[str, typer.Option("--comment", "-m", help="Why, for the record.")]
# kept so that old scripts get a clear error instead of "no such option"
RoleOpt = Annotated[list[str] | None, typer.Option("--role", hidden=True,
                                                   help="Gone: roles come from the API token.")]
DeciderOpt = Annotated[str | None, typer.Option("--as", hidden=True,
                                                help="Gone: the API token's name is recorded.")]


def approve(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
            comment: CommentOpt = "", token: TokenOpt = None, by: DeciderOpt = None,
            role: RoleOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None,
            server: ServerOpt = None) -> None:
    """Approve a run waiting at an approval step; it goes on. Your API token says who you
    are and which roles you have (the step's role must be one)."""
    _decide("approve", run_id, comment, by, role, config, data_dir, server, token)


def reject(run_id: Annotated[str, typer.Argument(help="Run id (or a unique prefix).")],
           comment: CommentOpt = "", token: TokenOpt = None, by: DeciderOpt = None,
           role: RoleOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None,
           server: ServerOpt = None) -> None:
    """Reject a run waiting at an approval step; it stops (status rejected). Your API token
    says who you are and which roles you have."""
    _decide("reject", run_id, comment, by, role, config, data_dir, server, token)
