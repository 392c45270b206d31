"""Staleness markers from scrapes, as Prometheus writes them: a series that was in the
previous scrape and is not in this one is marked at this scrape's time; a failed scrape
marks every series of the previous one; a removed scrape check marks all it wrote.
Series with the exporter's own timestamps are not tracked. Real HTTP server on
loopback, real SQLite store, a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.monitor._servers import Request, Response, RunningServer, http_server
from watchkeeper.config import config_model
from watchkeeper.eventlog import EventLog
from watchkeeper.monitor.checks.scrape import SeriesMemory
from watchkeeper.monitor.model import Sample
from watchkeeper.monitor.service import MonitorService
from watchkeeper.query.promql.evaluator import Evaluator
from watchkeeper.query.selector import parse_selector
from watchkeeper.scheduler import Scheduler
from watchkeeper.staleness import is_stale
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB
from watchkeeper.testing import FakeClock

T0 = 1_700_000_040.0

BODIES = {
    # scrape 1: three series and one with its own timestamp (ms)
    0: 'a{k="1"} 1\na{k="2"} 2\nb 3\nc 5 1700000000000\n',
    # scrape 2: a{k="2"}, b and c are gone
    1: 'a{k="1"} 1.5\n',
    # scrape 3 fails (HTTP 500)
    # scrape 4: everything is back
    3: 'a{k="1"} 4\na{k="2"} 4\nb 4\n',
}


@dataclass
class World:
    clock: FakeClock
    tsdb: TSDB
    monitor: MonitorService
    server: RunningServer
    scrape: list[int]

    def conf(self, *, with_scrape: bool = True) -> Any:
        checks = [{"name": "exp", "type": "scrape", "url": f"{self.server.base}/metrics",
                   "labels": {"env": "test"}}] if with_scrape else []
        return config_model().model_validate({"collectors": {"host": {"enabled": False}}, "checks": checks})

    async def scrape_at(self, i: int) -> None:
        self.clock.advance(T0 + 15 * i - self.clock.time())
        self.scrape[0] = i
        await self.monitor.run_check("exp")
        await self.monitor.flush()

    def history(self, selector: str) -> dict[str, list[tuple[float, Any]]]:
        """Per series (its ``k`` label or its name), every stored (seconds, value or "stale")."""
        out = {}
        for c in self.tsdb.select_columns(parse_selector(selector), 0, 2e9):
            key = c.labels.get("k", c.labels["__name__"])
            out[key] = [(m / 1000, "stale" if is_stale(v) else float(v))
                        for m, v in zip(c.ms.tolist(), c.values.tolist(), strict=True)]
        return out


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    scrape = [0]

    async def handler(req: Request) -> Response:
        body = BODIES.get(scrape[0])
        if body is None:
            return Response(500, b"broken\n")
        return Response(200, body.encode(), {"Content-Type": "text/plain; version=0.0.4"})

    engine = open_engine(None, tmp_path / "data")
    clock = FakeClock(T0)
    tsdb = TSDB(engine, clock=clock)
    eventlog = EventLog(engine, anchor=tmp_path / "data" / "eventlog.head", clock=clock)
    monitor = MonitorService(engine, tsdb, eventlog, Scheduler(clock=clock), clock=clock)
    try:
        async with http_server(handler) as server:
            w = World(clock, tsdb, monitor, server, scrape)
            monitor.apply(w.conf())
            yield w
    finally:
        engine.dispose()


async def test_disappeared_and_failed_series_are_marked_stale(world: World) -> None:
    for i in range(4):
        await world.scrape_at(i)
    got = world.history("a")
    assert got["1"] == [(T0, 1.0), (T0 + 15, 1.5), (T0 + 30, "stale"), (T0 + 45, 4.0)]  # failed scrape
    assert got["2"] == [(T0, 2.0), (T0 + 15, "stale"), (T0 + 45, 4.0)]  # gone from scrape 2
    assert world.history("b")["b"] == [(T0, 3.0), (T0 + 15, "stale"), (T0 + 45, 4.0)]
    # the exporter's own timestamp: never tracked, never marked
    assert world.history("c")["c"] == [(1_700_000_000.0, 5.0)]
    # the markers carry the same labels as the samples (target and check labels)
    (col,) = world.tsdb.select_columns(parse_selector('a{k="2"}'), T0, T0 + 20)
    assert {k: v for k, v in col.labels.items() if k != "instance"} == {
        "__name__": "a", "k": "2", "job": "exp", "env": "test"}
    # report series keep going through the failure
    assert [v for _, v in world.history("scrape_samples_scraped")["scrape_samples_scraped"]] == [4.0, 1.0, 0.0, 3.0]
    # and queries see the series end at once
    ev = Evaluator(world.tsdb)
    assert sorted(s.labels["k"] for s in ev.instant("a", T0 + 20)) == ["1"]  # type: ignore[union-attr]
    assert ev.instant("a", T0 + 35) == []


async def test_a_removed_scrape_check_marks_everything_it_wrote(world: World) -> None:
    await world.scrape_at(0)
    world.clock.advance(5)
    world.monitor.apply(world.conf(with_scrape=False))
    await world.monitor.flush()
    t = T0 + 5
    for name in ("a", "b", "scrape_samples_scraped", "scrape_duration_seconds", "watchkeeper_check_up",
                 "watchkeeper_check_state", "watchkeeper_check_duration_seconds"):
        for series, points in world.history(name).items():
            assert points[-1] == (t, "stale"), (name, series)
    assert world.history("c")["c"] == [(1_700_000_000.0, 5.0)]
    assert Evaluator(world.tsdb).instant('{job="exp", __name__!="c"} or {check="exp"}', t + 1) == []


def test_series_memory() -> None:
    mem = SeriesMemory()
    assert mem.observe([Sample("a", {"k": "1"}, 1.0), Sample("a", {"k": "2"}, 1.0)]) == []
    gone = mem.observe([Sample("a", {"k": "1", "x": ""}, 1.0)], [Sample("up", {}, 1.0)])
    assert [(s.name, s.labels, is_stale(s.value), s.timestamp) for s in gone] == [("a", {"k": "2"}, True, None)]
    assert len(mem) == 1
    # extra labels are added where the scraped labels lack them: a new series, so the
    # one without them ends
    gone = mem.observe([Sample("a", {"k": "1"}, 1.0), Sample("a", {"k": "3"}, 1.0, timestamp=5.0)],
                       [Sample("up", {}, 1.0)], extra_labels={"env": "x"})
    assert [(s.name, s.labels) for s in gone] == [("a", {"k": "1"})] and is_stale(gone[0].value)
    ended = mem.end()
    assert sorted((s.name, tuple(s.labels.items())) for s in ended) == [("a", (("env", "x"), ("k", "1"))),
                                                                         ("up", ())]
    assert mem.end() == [] and len(mem) == 0
