"""``watchkeeper alerts``, ``watchkeeper ack`` and ``watchkeeper silence add|list|expire``.

All of them talk to a running server (``--server URL``, else the config's listen address).
Changing commands send the API token: ``$WATCHKEEPER_TOKEN``, else ``server.token`` of the
config, else the ``token`` file in the data dir (``--data-dir`` / ``storage.data_dir`` /
the XDG data dir), which ``watchkeeper up`` writes.

The lead registers them in cli/main.py: ``app.command("alerts")(alerts)``,
``app.command("ack")(ack)``, ``app.add_typer(silence_app, name="silence")``.
"""

from __future__ import annotations

import getpass
import os
import time
from typing import Annotated, Any

import typer

from watchkeeper.cli.common import ConfigOpt, DataDirOpt, JsonOpt, ServerOpt, print_json, server_url
from watchkeeper.errors import InputError, NotFoundError, ServerUnreachableError

__all__ = ["ack", "alerts", "silence_app"]

silence_app = typer.Typer(help="Silence alerts matching label matchers for a while.",
                          no_args_is_help=True)


def _token(config: str | None, data_dir: str | None) -> str | None:
    env = os.environ.get("WATCHKEEPER_TOKEN")
    if env:
        return env.strip()
    from watchkeeper.cli.common import load
    from watchkeeper.server import resolve_data_dir

    cfg = load(config).config
    if cfg.server.token:
        return str(cfg.server.token)
    path = resolve_data_dir(data_dir, cfg) / "token"
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def _request(method: str, url: str, path: str, *, token: str | None = None,
             json: Any = None, params: Any = None) -> Any:
    """One request to the server; errors become watchkeeper errors with the server's message."""
    import httpx

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        resp = httpx.request(method, url + path, json=json, params=params, headers=headers,
                             timeout=30, trust_env=False)
    except httpx.HTTPError as exc:
        raise ServerUnreachableError(f"cannot reach watchkeeper at {url}: {exc}",
                                     hint="start it with `watchkeeper up`, or pass --server URL"
                                     ) from None
    try:
        body = resp.json() if resp.content else None
    except ValueError:
        body = {"error": resp.text}
    if resp.status_code >= 400:
        msg = body.get("error") if isinstance(body, dict) else str(body)
        hint = body.get("hint") if isinstance(body, dict) else None
        if resp.status_code == 401:
            raise InputError(f"{url}{path}: the server refused the API token: {msg}",
                             hint="set WATCHKEEPER_TOKEN, or pass --data-dir of the server so "
                                  "its 'token' file is read")
        if resp.status_code == 403:
            from watchkeeper.errors import ForbiddenError

            raise ForbiddenError(f"{url}{path}: {msg}", hint=hint)
        if resp.status_code == 404:
            raise NotFoundError(str(msg), hint=hint)
        raise InputError(f"{url}{path}: HTTP {resp.status_code}: {msg}", hint=hint)
    return body


def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "-"
    from watchkeeper.units import format_duration

    return format_duration(max(0, round(now - ts)))


def _labels(labels: dict[str, str], skip: str = "alertname") -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != skip)


def alerts(server: ServerOpt = None, config: ConfigOpt = None, json_: JsonOpt = False,
           filter_: Annotated[list[str] | None, typer.Option(
               "--filter", help='Only alerts matching these matchers, e.g. severity="critical".'
           )] = None, data_dir: DataDirOpt = None) -> None:
    """List pending and firing alerts with their ack, silence and inhibition state."""
    del data_dir  # accepted like the changing commands take it; reading needs no token
    url = server_url(server, config)
    body = _request("GET", url, "/api/v1/alerts", params={"filter": filter_ or []})
    items = body["alerts"]
    if json_:
        print_json(items)
        return
    if not items:
        typer.echo("no pending or firing alerts")
        return
    now = time.time()
    typer.echo(f"{'STATE':<8} {'ALERT':<28} {'SINCE':>8}  {'FINGERPRINT':<16}  {'MUTED/ACK':<24} LABELS")
    for a in items:
        since = a["fired_at"] if a["state"] == "firing" else a["active_at"]
        notes = []
        if a["ack"]:
            notes.append(f"acked by {a['ack']['by']}")
        if a["silenced_by"]:
            notes.append("silenced")
        if a["inhibited_by"]:
            notes.append("inhibited")
        typer.echo(f"{a['state']:<8} {a['name']:<28} {_ago(since, now):>8}  {a['fingerprint']:<16}  "
                   f"{', '.join(notes) or '-':<24} {_labels(a['labels'])}")


def ack(alert: Annotated[str, typer.Argument(help="Alert name, fingerprint, or matchers like "
                                                   '{alertname="X",instance="web1"}.')],
        comment: Annotated[str, typer.Option("--comment", "-m", help="What is being done.")] = "",
        author: Annotated[str | None, typer.Option("--author", help="Who (default: $USER).")] = None,
        undo: Annotated[bool, typer.Option("--undo", help="Take the acknowledgement back.")] = False,
        server: ServerOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Acknowledge firing alerts: repeats stop until they resolve."""
    from urllib.parse import quote

    url = server_url(server, config)
    token = _token(config, data_dir)
    who = author or _user()
    path = f"/api/v1/alerts/{quote(alert, safe='')}/ack"
    if undo:
        body = _request("DELETE", url, path, token=token, params={"by": who})
        done = body["unacked"]
    else:
        body = _request("POST", url, path, token=token, json={"by": who, "comment": comment})
        done = body["acked"]
    verb = "unacknowledged" if undo else "acknowledged"
    for a in done:
        typer.echo(f"{verb} {a['name']} {a['fingerprint']} {_labels(a['labels'])}")


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "watchkeeper"


def _rfc3339(ts: float) -> str:
    from watchkeeper.alerting.model import format_time

    return format_time(ts)


@silence_app.command("add")
def silence_add(
        matchers: Annotated[list[str], typer.Argument(help='Matchers: alertname=DiskFull '
                                                           'instance=~"web.*" (ANDed).')],
        comment: Annotated[str, typer.Option("--comment", "-m", help="Why (required).")],
        duration: Annotated[str, typer.Option("--duration", "-d", help="How long, e.g. 2h.")] = "1h",
        start: Annotated[str | None, typer.Option("--start", help="When it begins (now, +1h, "
                                                  "RFC 3339); default now.")] = None,
        author: Annotated[str | None, typer.Option("--author", help="Who (default: $USER).")] = None,
        server: ServerOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """Create a silence; prints its id."""
    from watchkeeper.alerting.matchers import matcher_to_api, parse_matchers
    from watchkeeper.cli.common import parse_when
    from watchkeeper.units import parse_duration

    ms = [m for text in matchers for m in parse_matchers(text)]
    if not ms:
        raise InputError("give at least one matcher, e.g. alertname=DiskFull")
    try:
        seconds = parse_duration(duration)
    except ValueError:
        raise InputError(f"--duration {duration!r} is not a duration; use forms like 30m, 2h, 1d"
                         ) from None
    if seconds <= 0:
        raise InputError("--duration must be more than 0")
    begin = parse_when(start) if start else time.time()
    url = server_url(server, config)
    body = _request("POST", url, "/api/v2/silences", token=_token(config, data_dir), json={
        "matchers": [matcher_to_api(m) for m in ms], "startsAt": _rfc3339(begin),
        "endsAt": _rfc3339(begin + seconds), "createdBy": author or _user(), "comment": comment})
    typer.echo(body["silenceID"])


@silence_app.command("list")
def silence_list(
        server: ServerOpt = None, config: ConfigOpt = None, json_: JsonOpt = False,
        expired: Annotated[bool, typer.Option("--expired", help="Also list expired ones.")] = False,
        data_dir: DataDirOpt = None) -> None:
    """List active and pending silences (with --expired, expired ones too)."""
    del data_dir  # accepted like `silence add` takes it; reading needs no token
    url = server_url(server, config)
    items = [s for s in _request("GET", url, "/api/v2/silences")
             if expired or s["status"]["state"] != "expired"]
    if json_:
        print_json(items)
        return
    if not items:
        typer.echo("no silences")
        return
    from watchkeeper.alerting.matchers import format_matchers, matcher_from_api

    typer.echo(f"{'ID':<36}  {'STATE':<8} {'ENDS':<24} {'AUTHOR':<14} {'MATCHERS':<40} COMMENT")
    for s in items:
        ms = format_matchers(matcher_from_api(m) for m in s["matchers"])
        typer.echo(f"{s['id']:<36}  {s['status']['state']:<8} {s['endsAt']:<24} "
                   f"{s['createdBy']:<14} {ms:<40} {s['comment']}")


@silence_app.command("expire")
def silence_expire(
        ids: Annotated[list[str], typer.Argument(help="Silence ids.")],
        server: ServerOpt = None, config: ConfigOpt = None, data_dir: DataDirOpt = None) -> None:
    """End silences now."""
    url = server_url(server, config)
    token = _token(config, data_dir)
    for sid in ids:
        _request("DELETE", url, f"/api/v2/silence/{sid}", token=token)
        typer.echo(f"expired {sid}")
