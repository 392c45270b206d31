"""``watchkeeper tokens create|list|revoke``: named API tokens with roles (watchkeeper.auth).

Without ``--server`` they work on the data dir's database directly: whoever can write
it administers the machine, and is recorded as ``local:<login name>``. With ``--server
URL`` they go through ``/api/v1/tokens`` of a running watchkeeper, which needs the main
token or a token with the role ``admin`` (``--token``, else ``$WATCHKEEPER_TOKEN``, else
``server.token`` or the data dir's ``token`` file).

``create`` prints the token on stdout (alone, so ``TOKEN=$(watchkeeper tokens create
...)`` works) and how to use it on stderr; it is never shown again. ``list`` never
shows a token, only its name, roles and dates.
"""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from watchkeeper.cli.common import ConfigOpt, DataDirOpt, JsonOpt, ServerOpt, print_json

__all__ = ["TokenOpt", "app", "resolve_token"]

app = typer.Typer(help="Named API tokens with roles: create, list, revoke.",
                  no_args_is_help=True)

TokenOpt = Annotated[str | None, typer.Option(
    "--token", help="Your API token (default: $WATCHKEEPER_TOKEN, else server.token or the "
                    "data dir's 'token' file).", show_default=False)]
RoleOpt = Annotated[list[str] | None, typer.Option(
    "--role", "-r", help="A role of the token (repeatable), such as an approval step's role; "
                         "'admin' may manage tokens.")]
ExpiresOpt = Annotated[str | None, typer.Option(
    "--expires", help="Lifetime, such as 90d or 12h (default: until revoked).")]


def resolve_token(token: str | None, config: str | None, data_dir: str | None) -> str | None:
    """``--token``, else what every command sends a server (cli.alerts_cmd._token)."""
    if token:
        return token.strip()
    from watchkeeper.cli.alerts_cmd import _token

    return _token(config, data_dir)


def _local_actor() -> str:
    from watchkeeper.automation.engine import default_user

    return f"local:{default_user()}"


def _open(config: str | None, data_dir: str | None) -> Any:
    """A TokenStore (with the event log) over the data dir's database."""
    from watchkeeper.auth import TokenStore
    from watchkeeper.cli.common import load
    from watchkeeper.eventlog import EventLog
    from watchkeeper.server import resolve_data_dir
    from watchkeeper.store.engine import open_engine

    cfg = load(config).config
    ddir = resolve_data_dir(data_dir, cfg)
    engine = open_engine(cfg.storage.url, ddir)
    return TokenStore(engine, eventlog=EventLog(engine, anchor=ddir / "eventlog.head"))


def _api(method: str, server: str, token: str | None, config: str | None,
         data_dir: str | None, path: str, body: Any = None) -> Any:
    from watchkeeper.cli.alerts_cmd import _request
    from watchkeeper.cli.common import server_url

    return _request(method, server_url(server, config), path,
                    token=resolve_token(token, config, data_dir), json=body)


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


@app.command("create")
def create(name: Annotated[str, typer.Argument(help="Who the token is for: a person or a "
                                                    "system (alice, ci-deploy).")],
           role: RoleOpt = None, expires: ExpiresOpt = None, json_: JsonOpt = False,
           config: ConfigOpt = None, data_dir: DataDirOpt = None, server: ServerOpt = None,
           token: TokenOpt = None) -> None:
    """Make a token for NAME with roles; it is printed once, never stored or shown again."""
    from watchkeeper.errors import InputError
    from watchkeeper.units import parse_duration

    expires_in = None
    if expires is not None:
        try:
            expires_in = parse_duration(expires)
        except ValueError as exc:
            raise InputError(f"--expires: {exc}") from None
    if server:
        out = _api("POST", server, token, config, data_dir, "/api/v1/tokens",
                   {"name": name, "roles": role or [], "expires": expires_in})
        secret = out.pop("token")
        info = out
    else:
        store = _open(config, data_dir)
        try:
            secret, made = store.create(name, role or [], created_by=_local_actor(),
                                        expires_in=expires_in)
            info = made.to_dict(store.clock.time())
        finally:
            store.engine.dispose()
    if json_:
        print_json({"token": secret, **info})
        return
    roles = ", ".join(info["roles"]) or "no roles"
    until = f"expires {_when(info['expires_at'])}" if info["expires_at"] else "does not expire"
    typer.echo(f"token {info['id']} for {info['name']} ({roles}; {until}). It is shown only "
               "now; keep it secret:", err=True)
    typer.echo(secret)
    where = f" --server {server}" if server else " --server URL"
    typer.echo(f"use it with:\n  export WATCHKEEPER_TOKEN={secret}\n  watchkeeper approve "
               f"RUN{where}\n  curl -H 'Authorization: Bearer {secret}' ...\n"
               f"revoke it with: watchkeeper tokens revoke {info['id']}", err=True)


@app.command("list")
def list_(json_: JsonOpt = False, config: ConfigOpt = None, data_dir: DataDirOpt = None,
          server: ServerOpt = None, token: TokenOpt = None) -> None:
    """The tokens: id, name, roles, state, dates (never the token itself)."""
    if server:
        rows = _api("GET", server, token, config, data_dir, "/api/v1/tokens")["tokens"]
    else:
        store = _open(config, data_dir)
        try:
            now = store.clock.time()
            rows = [t.to_dict(now) for t in store.list()]
        finally:
            store.engine.dispose()
    if json_:
        print_json(rows)
        return
    if not rows:
        typer.echo("no named tokens (the main token is the data dir's 'token' file or "
                   "server.token); make one with `watchkeeper tokens create NAME --role ROLE`",
                   err=True)
        return
    table = [("ID", "NAME", "ROLES", "STATE", "CREATED", "BY", "EXPIRES", "LAST USED")]
    for r in rows:
        table.append((str(r["id"]), r["name"], ",".join(r["roles"]) or "-", r["state"],
                      _when(r["created_at"]), r["created_by"], _when(r["expires_at"]),
                      _when(r["last_used_at"])))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


@app.command("revoke")
def revoke(which: Annotated[str, typer.Argument(
               metavar="ID|NAME", help="A token's id, or a name: every unrevoked token of it.")],
           config: ConfigOpt = None, data_dir: DataDirOpt = None, server: ServerOpt = None,
           token: TokenOpt = None) -> None:
    """Revoke a token (by id) or every token of a name; requests with it get 401 at once."""
    from watchkeeper.errors import NotFoundError

    which = which.strip()
    if server:
        if which.isdigit():
            ids = [int(which)]
        else:
            listed = _api("GET", server, token, config, data_dir, "/api/v1/tokens")["tokens"]
            ids = [t["id"] for t in listed if t["name"] == which and t["state"] != "revoked"]
            if not ids:
                raise NotFoundError(f"no unrevoked token named {which!r}",
                                    hint="`watchkeeper tokens list` shows the tokens")
        done = [_api("DELETE", server, token, config, data_dir, f"/api/v1/tokens/{i}")
                for i in ids]
    else:
        store = _open(config, data_dir)
        try:
            now = store.clock.time()
            revoked = ([store.revoke(int(which), by=_local_actor())] if which.isdigit()
                       else store.revoke_name(which, by=_local_actor()))
            done = [t.to_dict(now) for t in revoked]
        finally:
            store.engine.dispose()
    for t in done:
        typer.echo(f"revoked token {t['id']} ({t['name']})")
