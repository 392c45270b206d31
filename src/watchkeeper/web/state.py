"""What the HTTP layer needs from a running server, in one object."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from watchkeeper.clock import Clock
from watchkeeper.eventlog import EventLog
from watchkeeper.query.engine import QueryEngine

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
