"""The supervisor: starts every subsystem as a task under one TaskGroup, reloads, shuts down.

``watchkeeper up`` calls :func:`serve`. SIGTERM and SIGINT stop the scheduler,
flush everything queued to the store and exit 0; SIGHUP (or ``POST
/api/v1/reload``) re-reads the config, and an invalid new config is refused
with its errors while the old one keeps running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from watchkeeper.clock import Clock, SystemClock
from watchkeeper.config import LoadedConfig, default_config, load_config
from watchkeeper.config.models import parse_listen
from watchkeeper.errors import ConfigError, ListenError

__all__ = ["Server", "serve", "resolve_data_dir", "read_or_create_token"]

log = logging.getLogger("watchkeeper")


def resolve_data_dir(cli_value: str | os.PathLike[str] | None, config: Any) -> Path:
    """``--data-dir`` wins, then ``storage.data_dir``, then the XDG data dir."""
    from watchkeeper.store.engine import default_data_dir

    if cli_value:
        return Path(cli_value).expanduser()
    if config.storage.data_dir:
        return Path(os.path.expandvars(config.storage.data_dir)).expanduser()
    return default_data_dir()


def read_or_create_token(data_dir: Path, configured: str | None) -> str:
    """The main API token (identity ``admin``, every role): server.token, else
    $WATCHKEEPER_TOKEN, else one kept in DATA_DIR/token, readable by its owner only (0600;
    a file found readable by others is narrowed back to 0600). A named token (``wk_...``,
    see watchkeeper.auth) in $WATCHKEEPER_TOKEN is not taken as the main token."""
    from watchkeeper.auth import TOKEN_PREFIX

    if configured:
        return configured
    env = os.environ.get("WATCHKEEPER_TOKEN")
    if env and not env.strip().startswith(TOKEN_PREFIX):
        return env
    if env:
        log.warning("WATCHKEEPER_TOKEN holds a named token (%s...): not used as the main "
                    "token; the data dir's 'token' file is", TOKEN_PREFIX)
    path = data_dir / "token"
    if path.exists():
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            try:
                path.chmod(0o600)
                log.warning("%s was readable by others (mode %o): narrowed to 0600", path, mode)
            except OSError as exc:
                log.warning("%s is readable by others (mode %o) and cannot be narrowed to "
                            "0600: %s", path, mode, exc)
        return path.read_text().strip()
    token = secrets.token_urlsafe(32)
    while token.startswith(TOKEN_PREFIX):  # never mistaken for a named token
        token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(token + "\n")
    return token


@dataclass
class Server:
    """One running watchkeeper: store, event log, scheduler, monitor, HTTP."""

    loaded: LoadedConfig
    data_dir: Path
    listen: str | None = None
    clock: Clock = field(default_factory=SystemClock)

    def __post_init__(self) -> None:
        from watchkeeper.eventlog import EventLog
        from watchkeeper.scheduler import Scheduler
        from watchkeeper.store.engine import open_engine
        from watchkeeper.store.tsdb import TSDB, RetentionPolicy

        cfg = self.loaded.config
        self.engine = open_engine(cfg.storage.url, self.data_dir)
        r = cfg.storage.retention
        self.tsdb = TSDB(self.engine, clock=self.clock,
                         retention=RetentionPolicy(raw=r.raw, minute=r.minute, hour=r.hour),
                         head_window=cfg.storage.head_window)
        self.eventlog = EventLog(self.engine, anchor=self.data_dir / "eventlog.head", clock=self.clock)
        self.scheduler = Scheduler(clock=self.clock, max_concurrent=cfg.server.max_concurrent_checks)
        self.token = read_or_create_token(self.data_dir, cfg.server.token)
        self._stop = asyncio.Event()
        self._hup = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self.http_client: Any = None
        self.monitor: Any = None
        self.alerting: Any = None
        self.automation: Any = None
        self.app_state: Any = None
        self.uvicorn: Any = None

    def _database_note(self) -> str:
        """``, database URL`` (password hidden) when the store is not SQLite in the data dir."""
        from watchkeeper.store.engine import display_url

        if self.loaded.config.storage.url is None:
            return ""
        return f", database {display_url(self.engine.url)}"

    # -- lifecycle ----------------------------------------------------------------------
    async def run(self) -> None:
        import uvicorn

        from watchkeeper.alerting.service import AlertingService
        from watchkeeper.auth import TokenStore
        from watchkeeper.monitor.checks.http import shared_client
        from watchkeeper.monitor.service import MonitorService
        from watchkeeper.query.engine import QueryEngine
        from watchkeeper.web.app import create_app
        from watchkeeper.web.state import AppState

        cfg = self.loaded.config
        limit = cfg.server.max_concurrent_checks
        self.http_client = shared_client(limit)
        self.monitor = MonitorService(self.engine, self.tsdb, self.eventlog, self.scheduler,
                                      clock=self.clock, resources={"http_client": self.http_client})
        self.monitor.apply(cfg)
        self.alerting = AlertingService(self.engine, self.tsdb, self.eventlog, self.clock,
                                        http_client=self.http_client)
        self._report_rule_issues(self.alerting.apply(cfg, self._base_dir()), "server")
        self.monitor.on_result = self.alerting.check_alerter.on_result
        self.scheduler.add("store:flush", 1.0, self.monitor.flush, limited=False)
        self._add_store_jobs(cfg)
        host, port = parse_listen(self.listen or cfg.server.listen)
        from watchkeeper.automation.service import AutomationService

        self.automation = AutomationService(
            self.engine, self.eventlog, self.clock, data_dir=self.data_dir,
            alert_store=self.alerting.store, alerting=self.alerting, monitor=self.monitor,
            base_url=cfg.server.external_url or _local_url(host, port))
        self.automation.startup()  # runs a previous process left running: interrupted
        self._report_inventory_issues(self.automation.apply(cfg, self._base_dir(),
                                                           config_file=self._config_file()), "server")
        sock = _bind(host, port)
        state = AppState(engine=self.engine, tsdb=self.tsdb, eventlog=self.eventlog,
                         query=QueryEngine(self.tsdb), clock=self.clock, token=self.token,
                         monitor=self.monitor, scheduler=self.scheduler, reload=self.reload,
                         started=self.clock.time(),
                         config_path=str(self.loaded.path) if self.loaded.path else None,
                         alerts=self.alerting.store, silences=self.alerting.silences,
                         muter=self.alerting.muter, alert_receivers=self.alerting.receivers_for,
                         rules=self.alerting.rules, query_timeout=cfg.server.query_timeout,
                         tokens=TokenStore(self.engine, self.clock, eventlog=self.eventlog))
        state.extra["automation"] = self.automation
        self.app_state = state
        app = create_app(state)
        ucfg = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                              lifespan="off")
        self.uvicorn = uvicorn.Server(ucfg)
        self.uvicorn.install_signal_handlers = lambda: None
        self.eventlog.append("server.started", "server", {
            "version": _version(), "listen": f"{host}:{port}", "config": state.config_path,
            "checks": len(self.monitor.configs)})
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        try:
            async with asyncio.TaskGroup() as tg:
                web = tg.create_task(self.uvicorn.serve(sockets=[sock]), name="http")
                await self._wait_started(web)
                # checks start once the API answers, so checks of watchkeeper itself pass
                sched = tg.create_task(self.scheduler.run(), name="scheduler")
                alerting = tg.create_task(self.alerting.run(), name="alerting")
                automation = tg.create_task(self.automation.run(), name="automation")
                log.info("watchkeeper listening on http://%s:%d (data dir %s%s)", host, port,
                            self.data_dir, self._database_note())
                reloader = tg.create_task(self._reload_loop(), name="reload")
                stop = tg.create_task(self._stop.wait(), name="stop")
                await asyncio.wait({stop, web}, return_when=asyncio.FIRST_COMPLETED)
                self.automation.interrupt_running()  # before the cancel records them cancelled
                for task in (sched, alerting, automation, reloader, stop):
                    task.cancel()
                self.uvicorn.should_exit = True
        finally:
            self._remove_signals(loop)
            await self.shutdown()

    async def _wait_started(self, web: asyncio.Task[None]) -> None:
        while not self.uvicorn.started:
            if web.done():
                raise ListenError(f"the HTTP server stopped while starting: {web.exception()}")
            await asyncio.sleep(0.02)

    async def shutdown(self) -> None:
        """Flush everything queued, record the stop, close connections (even if a flush fails)."""
        try:
            if self.monitor is not None:
                await self.monitor.flush()
            self.eventlog.append("server.stopped", "server", {})
            log.info("watchkeeper stopped: everything queued is stored")
        finally:
            if self.automation is not None:
                await self.automation.close()
            if self.http_client is not None:
                await self.http_client.aclose()
            self.engine.dispose()

    def stop(self) -> None:
        self._stop.set()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        loop.add_signal_handler(signal.SIGHUP, self._hup.set)

    def _remove_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)

    async def _reload_loop(self) -> None:
        """Reload on each SIGHUP; the signal handler only sets an event this task owns."""
        while True:
            await self._hup.wait()
            self._hup.clear()
            result = await self.reload("SIGHUP")
            if result.get("status") != "reloaded":
                log.error("reload refused:\n%s", "\n".join(result.get("errors", [])))

    def _add_store_jobs(self, cfg: Any) -> None:
        async def compact() -> None:
            await asyncio.to_thread(self.tsdb.compact, self.clock.time())

        async def retention() -> None:
            now = self.clock.time()
            await asyncio.to_thread(self.tsdb.apply_retention, now)
            keep = self.loaded.config.storage.retention.results
            if keep:
                await asyncio.to_thread(self.monitor.prune_results, now - keep)

        self.scheduler.add("store:compact", cfg.storage.compact_interval, compact, limited=False,
                           first_delay=cfg.storage.compact_interval)
        self.scheduler.add("store:retention", 3600.0, retention, limited=False, first_delay=60.0)

    # -- reload -------------------------------------------------------------------------
    async def reload(self, actor: str) -> dict[str, Any]:
        """Re-read the config file. Returns ``{"status": "reloaded"}`` or raises ConfigError."""
        async with self._reload_lock:
            if self.loaded.path is None:
                return {"status": "unchanged", "reason": "running with the built-in default config"}
            try:
                new = await asyncio.to_thread(load_config, self.loaded.path)
            except ConfigError as exc:
                self.eventlog.append("config.reload_refused", str(self.loaded.path),
                                     {"errors": [str(i) for i in exc.issues]}, actor=actor)
                if actor == "SIGHUP":
                    return {"status": "refused", "errors": [str(i) for i in exc.issues]}
                raise
            self.loaded = new
            self.monitor.apply(new.config)
            if self.app_state is not None:
                self.app_state.query_timeout = new.config.server.query_timeout
            self._add_store_jobs(new.config)
            rule_issues: list[Any] = []
            if self.alerting is not None:
                rule_issues = self.alerting.apply(new.config, self._base_dir())
                if self.app_state is not None:
                    self.app_state.muter = self.alerting.muter
                self._report_rule_issues(rule_issues, actor)
            if self.automation is not None:
                self._report_inventory_issues(self.automation.apply(
                    new.config, self._base_dir(), config_file=self._config_file()),
                                              actor)
            groups = len(self.alerting.rules.groups) if self.alerting is not None else 0
            log.info("config reloaded from %s by %s: %d checks, %d rule groups", new.path, actor,
                     len(self.monitor.configs), groups)
            self.eventlog.append("config.reloaded", str(new.path),
                                 {"checks": len(self.monitor.configs), "rule_groups": groups},
                                 actor=actor)
            out: dict[str, Any] = {"status": "reloaded", "checks": sorted(self.monitor.configs),
                                   "rule_groups": groups}
            if rule_issues:
                out["rule_errors"] = [str(i) for i in rule_issues]
            return out

    def _config_file(self) -> str:
        return str(self.loaded.path) if self.loaded.path else "watchkeeper.yaml"

    def _base_dir(self) -> Path:
        """Rule file globs are relative to the config file's folder."""
        return self.loaded.path.parent if self.loaded.path else Path.cwd()

    def _report_inventory_issues(self, issues: list[Any], actor: str) -> None:
        if issues:
            self.eventlog.append("inventory.load_failed", "inventory",
                                 {"errors": [str(i) for i in issues]}, actor=actor)

    def _report_rule_issues(self, issues: list[Any], actor: str) -> None:
        if issues:
            self.eventlog.append("rules.load_failed", "rules", {"errors": [str(i) for i in issues]},
                                 actor=actor)


def _local_url(host: str, port: int) -> str:
    """The URL the server answers on, for links in notifications (server.external_url wins)."""
    if host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket ourselves, so a taken port is a clear error, not an exit."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family, reuse_port=False)
    except OSError as exc:
        raise ListenError(f"cannot listen on {host}:{port}: {exc.strerror}",
                          hint="another process holds the port; pass --listen HOST:PORT "
                          "or set server.listen") from None


def _version() -> str:
    from watchkeeper import __version__

    return __version__


LOG_LEVELS = ("debug", "info", "warning", "error")


def serve(config_path: str | None, data_dir: str | None, listen: str | None,
          log_level: str = "info") -> int:
    """Load the config, open the store and run until SIGTERM. Returns the exit code.

    ``log_level`` (one of :data:`LOG_LEVELS`) applies to watchkeeper's own messages;
    libraries log warnings and errors only.
    """
    loaded = load_config(config_path) if config_path else _default_or_local()
    ddir = resolve_data_dir(data_dir, loaded.config)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("watchkeeper").setLevel(log_level.upper())
    server = Server(loaded, ddir, listen)
    asyncio.run(server.run())
    return 0


def _default_or_local() -> LoadedConfig:
    """``./watchkeeper.yaml`` when present, else the built-in default (watch the local host)."""
    local = Path("watchkeeper.yaml")
    return load_config(local) if local.exists() else default_config()
