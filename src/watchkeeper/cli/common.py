"""What every command shares: options, opening the store, talking to a server, errors."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from watchkeeper.errors import InputError, ServerUnreachableError

ConfigOpt = Annotated[str | None, typer.Option("--config", "-c", help="Path to watchkeeper.yaml.",
                                               envvar="WATCHKEEPER_CONFIG")]
DataDirOpt = Annotated[str | None, typer.Option("--data-dir", help="Data directory (default: XDG data dir).",
                                                envvar="WATCHKEEPER_DATA_DIR")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
ServerOpt = Annotated[str | None, typer.Option("--server", help="URL of a running watchkeeper.",
                                               envvar="WATCHKEEPER_SERVER")]


def load(config: str | None) -> Any:
    """The config at ``config``, else ./watchkeeper.yaml, else the built-in default."""
    from watchkeeper.config import default_config, load_config

    if config:
        return load_config(config)
    if Path("watchkeeper.yaml").exists():
        return load_config("watchkeeper.yaml")
    return default_config()


def open_store(config: str | None, data_dir: str | None) -> tuple[Any, Any, Path]:
    """Open (and migrate) the store a config and ``--data-dir`` name: (engine, tsdb, data_dir)."""
    from watchkeeper.server import resolve_data_dir
    from watchkeeper.store.engine import open_engine
    from watchkeeper.store.tsdb import TSDB, RetentionPolicy

    loaded = load(config)
    cfg = loaded.config
    ddir = resolve_data_dir(data_dir, cfg)
    engine = open_engine(cfg.storage.url, ddir)
    r = cfg.storage.retention
    tsdb = TSDB(engine, retention=RetentionPolicy(raw=r.raw, minute=r.minute, hour=r.hour),
                head_window=cfg.storage.head_window)
    return engine, tsdb, ddir


def server_url(server: str | None, config: str | None) -> str:
    if server:
        return server.rstrip("/")
    cfg = load(config).config
    from watchkeeper.config.models import parse_listen

    host, port = parse_listen(cfg.server.listen)
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def http_get(url: str, path: str, params: dict[str, Any] | None = None) -> Any:
    import httpx

    try:
        resp = httpx.get(url + path, params=params, timeout=30)
    except httpx.HTTPError as exc:
        raise ServerUnreachableError(f"cannot reach watchkeeper at {url}: {exc}",
                                     hint="start it with `watchkeeper up`, or pass --server URL") from None
    try:
        body = resp.json()
    except ValueError:
        body = {"error": resp.text}
    if resp.status_code >= 400:
        msg = body.get("error") if isinstance(body, dict) else str(body)
        raise InputError(f"{url}{path}: HTTP {resp.status_code}: {msg}")
    return body


def parse_when(text: str | None, now: float | None = None) -> float:
    """``now``, ``-1h`` / ``now-1h`` / ``now-90`` (relative), Unix seconds, or RFC 3339.

    A bare signed number (``-100``) is Unix seconds; after ``now`` it is relative.
    Raises InputError naming the accepted forms.
    """
    from datetime import datetime

    from watchkeeper.units import parse_duration

    now = time.time() if now is None else now
    t = (text or "").strip()
    if t in ("", "now"):
        return now
    relative = t.startswith("now")
    if relative:
        t = t[3:]
    if t.startswith(("-", "+")) and (relative or not t[1:].replace(".", "").isdigit()):
        try:
            delta = parse_duration(t[1:])
        except ValueError:
            raise InputError(f"{text!r} is not a time; use now, -1h, Unix seconds or RFC 3339") from None
        return now - delta if t[0] == "-" else now + delta
    if relative:
        raise InputError(f"{text!r} is not a time; use now, -1h, Unix seconds or RFC 3339")
    try:
        return float(t)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(t.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise InputError(f"{text!r} is not a time; use now, -1h, Unix seconds or RFC 3339") from None


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def color_enabled() -> bool:
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")
