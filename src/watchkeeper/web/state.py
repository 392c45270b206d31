"""What the HTTP layer needs from a running server, in one object."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine

from watchkeeper.clock import Clock
from watchkeeper.eventlog import EventLog
from watchkeeper.query.engine import QueryEngine

if TYPE_CHECKING:
    from watchkeeper.auth import TokenStore

__all__ = ["AppState"]


@dataclass
class AppState:
    engine: Engine
    tsdb: Any
    eventlog: EventLog
    query: QueryEngine
    clock: Clock
    token: str
    monitor: Any = None
    scheduler: Any = None
    reload: Callable[[str], Awaitable[dict[str, Any]]] | None = None
    started: float = 0.0
    config_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # alerting (web/api/alerts.py): AlertStore, Silences, AlertMuter
    alerts: Any = None
    silences: Any = None
    muter: Any = None
    # receiver names an alert's labels route to (for Alertmanager's ``receivers`` field)
    alert_receivers: Callable[[Mapping[str, str]], list[str]] | None = None
    # POST /api/v2/alerts: a token for senders besides the API token, and whether
    # requests from loopback need none; endsAt for alerts posted without one
    alert_intake_token: str | None = None
    alert_intake_loopback: bool = False
    alert_resolve_timeout: float = 300.0
    # the longest a query may run (server.query_timeout); a request's ``timeout`` may shorten it
    query_timeout: float = 120.0
    # the rule evaluator (GET /api/v1/rules)
    rules: Any = None
    # named API tokens besides ``token`` (the main token, identity ``admin``): auth.py
    tokens: TokenStore | None = None
