"""Alertmanager's routing tree at run time: which routes an alert goes to, and its group.

Semantics follow Alertmanager's ``dispatch/route.go``:

* a route matches when all its matchers match; the root matches everything;
* children are tried in order; the first child that matches wins, unless it
  has ``continue: true``, in which case the next siblings are tried too;
* when no child matches, the route itself is the match;
* ``receiver``, ``group_by``, ``group_wait``, ``group_interval`` and
  ``repeat_interval`` are inherited from the parent when unset;
  ``mute_time_intervals`` and ``active_time_intervals`` are not inherited;
* ``group_by: ['...']`` groups by every label.

A group is identified by its key ``<route key>:<group labels>``, e.g.
``{}/{severity="critical"}:{alertname="DiskFull"}``, where the route key is the
chain of each route's matchers from the root, as Alertmanager writes it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from watchkeeper.alerting.config import RouteConfig
from watchkeeper.alerting.matchers import format_matchers, matchers_from_legacy, parse_matchers
from watchkeeper.errors import InputError
from watchkeeper.query.selector import Matcher

__all__ = ["Route", "build_routes", "group_key", "group_labels", "parse_route_matchers",
           "DEFAULT_GROUP_WAIT", "DEFAULT_GROUP_INTERVAL", "DEFAULT_REPEAT_INTERVAL"]

DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0


def parse_route_matchers(texts: Iterable[str]) -> list[Matcher]:
    """Parse a route's ``matchers:`` list (each item one or more matchers).

    Raises ValueError (for pydantic) naming the item at fault.
    """
    out: list[Matcher] = []
    for i, text in enumerate(texts):
        try:
            out.extend(parse_matchers(text))
        except InputError as exc:
            raise ValueError(f"[{i}]: {exc.message}") from None
    return out


def _format_labels(labels: Mapping[str, str]) -> str:
    """``{a="b", c="d"}``: Prometheus's LabelSet.String(), sorted by name."""
    parts = []
    for k in sorted(labels):
        v = labels[k].replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        parts.append(f'{k}="{v}"')
    return "{" + ", ".join(parts) + "}"


@dataclass(eq=False)
class Route:
    """One node of the routing tree with its options resolved (inheritance applied)."""

    receiver: str
    group_by: frozenset[str]
    group_by_all: bool
    group_wait: float
    group_interval: float
    repeat_interval: float
    matchers: list[Matcher]
    continue_: bool = False
    mute_time_intervals: tuple[str, ...] = ()
    active_time_intervals: tuple[str, ...] = ()
    routes: list[Route] = field(default_factory=list)
    parent: Route | None = None
    path: str = "route"
    index: int = 0

    @property
    def key(self) -> str:
        """``{}/{severity="critical"}``: the matchers of each route from the root."""
        own = format_matchers(self.matchers)
        return own if self.parent is None else f"{self.parent.key}/{own}"

    @property
    def id(self) -> str:
        """The key plus the position among siblings: unique even for equal matchers."""
        return self.key if self.parent is None else f"{self.key}/{self.index}"

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels.get(m.name, "")) for m in self.matchers)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes ``labels`` go to (empty only when this route itself does not match)."""
        if not self.matches(labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            hits = child.match(labels)
            found.extend(hits)
            if hits and not child.continue_:
                break
        return found or [self]

    def walk(self) -> list[Route]:
        out = [self]
        for child in self.routes:
            out.extend(child.walk())
        return out


def build_routes(config: RouteConfig, parent: Route | None = None, *, path: str = "route",
                 index: int = 0) -> Route:
    """The runtime tree of ``config`` (already validated by :class:`AlertingConfig`)."""
    if parent is None:
        receiver = config.receiver or ""
        group_by: frozenset[str] = frozenset()
        group_by_all = False
        gw, gi, ri = DEFAULT_GROUP_WAIT, DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL
    else:
        receiver, group_by, group_by_all = parent.receiver, parent.group_by, parent.group_by_all
        gw, gi, ri = parent.group_wait, parent.group_interval, parent.repeat_interval
    if config.receiver:
        receiver = config.receiver
    if config.group_by is not None:
        if config.group_by == ["..."]:
            group_by, group_by_all = frozenset(), True
        else:
            group_by, group_by_all = frozenset(config.group_by), False
    matchers = matchers_from_legacy(config.match, config.match_re)
    matchers += parse_route_matchers(config.matchers)
    matchers.sort(key=lambda m: (m.name, m.op, m.value))
    route = Route(
        receiver=receiver, group_by=group_by, group_by_all=group_by_all,
        group_wait=config.group_wait if config.group_wait is not None else gw,
        group_interval=config.group_interval if config.group_interval is not None else gi,
        repeat_interval=config.repeat_interval if config.repeat_interval is not None else ri,
        matchers=matchers, continue_=config.continue_,
        mute_time_intervals=tuple(config.mute_time_intervals),
        active_time_intervals=tuple(config.active_time_intervals),
        parent=parent, path=path, index=index,
    )
    route.routes = [build_routes(c, route, path=f"{path}.routes[{i}]", index=i)
                    for i, c in enumerate(config.routes)]
    return route


def group_labels(route: Route, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that name the group ``labels`` falls into on ``route``."""
    if route.group_by_all:
        return dict(labels)
    return {k: v for k, v in labels.items() if k in route.group_by}


def group_key(route: Route, labels: Mapping[str, str]) -> str:
    """Alertmanager's group key: ``<route key>:<group labels>``."""
    return f"{route.key}:{_format_labels(group_labels(route, labels))}"
