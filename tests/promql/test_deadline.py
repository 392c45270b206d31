"""A query's deadline stops its evaluation where it is (query/promql/deadline.py)."""

from __future__ import annotations

import threading
import time

import pytest

from tests.e2e_helpers import ServerThread
from watchkeeper.errors import QueryError
from watchkeeper.eventlog import EventLog
from watchkeeper.query.engine import QueryEngine
from watchkeeper.query.promql import deadline as dl
from watchkeeper.query.promql.evaluator import Evaluator
from watchkeeper.query.promql.source import MemorySource
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB
from watchkeeper.testing import FakeClock
from watchkeeper.web.app import create_app
from watchkeeper.web.state import AppState

T = 1_700_000_000.0


def _src(series: int = 20, points: int = 240) -> MemorySource:
    src = MemorySource()
    for s in range(series):
        for i in range(points):
            src.append({"__name__": "g", "i": str(s)}, T + 15 * i, float(i * s % 97))
    return src


def _timed_out(exc: pytest.ExceptionInfo[QueryError]) -> bool:
    return exc.value.error_type == "timeout" and exc.value.http_status == 503


def test_a_passed_deadline_stops_evaluation_at_the_first_node() -> None:
    ev = Evaluator(_src())
    with dl.deadline(-1.0), pytest.raises(QueryError) as exc:
        ev.instant("sum(rate(g[5m]))", T + 3000)
    assert _timed_out(exc)
    # outside the context the same query answers
    assert ev.instant("sum(rate(g[5m]))", T + 3000)


def test_long_loops_check_the_deadline_between_rounds() -> None:
    """quantile_over_time sorts windows in chunks; a deadline passing meanwhile stops it."""
    ev = Evaluator(_src())
    ticks = {"n": 0}
    real = dl.check

    def counting() -> None:
        ticks["n"] += 1
        real()

    from watchkeeper.query.promql import functions_range

    functions_range.check_deadline = counting  # type: ignore[attr-defined]
    try:
        ev.evaluate("quantile_over_time(0.9, g[1h])", round(T * 1000), round((T + 3600) * 1000), 15_000)
    finally:
        functions_range.check_deadline = real  # type: ignore[attr-defined]
    assert ticks["n"] >= 1


def test_a_slow_query_stops_soon_after_its_deadline() -> None:
    """Side by side: the same query unbounded, then with a deadline of a tenth of that."""
    ev = Evaluator(_src(series=100, points=4000))
    query = "max_over_time(quantile_over_time(0.5, g[2h:15s])[4h:15s])"
    start, span = round(T * 1000), 3000
    while True:  # a range long enough to take 0.3 s on this machine (up to the data's 16 h)
        end = start + span * 1000
        t0 = time.perf_counter()
        ev.evaluate(query, start, end, 15_000)
        unbounded = time.perf_counter() - t0
        if unbounded > 0.3 or span >= 48000:
            break
        span *= 2
    assert unbounded > 0.2, "the query must take long enough to be stopped half-way"
    t0 = time.perf_counter()
    with dl.deadline(unbounded / 10), pytest.raises(QueryError) as exc:
        ev.evaluate(query, start, end, 15_000)
    stopped = time.perf_counter() - t0
    assert _timed_out(exc)
    assert stopped < unbounded * 0.6, (stopped, unbounded)


def test_deadlines_are_per_context_and_the_earlier_one_wins() -> None:
    ev = Evaluator(_src())
    results: dict[str, object] = {}

    def other_thread() -> None:  # a new thread starts without this thread's deadline
        results["other"] = ev.instant("count(g)", T + 100)

    with dl.deadline(-1.0):
        t = threading.Thread(target=other_thread)
        t.start()
        t.join()
        with dl.deadline(3600.0), pytest.raises(QueryError):  # the outer, passed one still holds
            ev.instant("count(g)", T + 100)
    assert results["other"]


def test_the_server_query_timeout_caps_every_request(tmp_path: pytest.TempPathFactory) -> None:
    engine = open_engine(None, tmp_path / "data")  # type: ignore[operator]
    listener = ServerThread()
    try:
        clock = FakeClock(T)
        tsdb = TSDB(engine, clock=clock)
        tsdb.append_rows([("g", {"i": str(s)}, T - 15 * i, float(i)) for s in range(50) for i in range(500)])
        state = AppState(engine=engine, tsdb=tsdb, eventlog=EventLog(engine, clock=clock),
                         query=QueryEngine(tsdb), clock=clock, token="t" * 20, query_timeout=0.001)
        listener.start(create_app(state))
        import httpx

        slow = {"query": "count_over_time(g[2h:1s])", "time": str(T)}
        with httpx.Client(base_url=listener.base, timeout=30, trust_env=False) as http:
            for params in (slow, {**slow, "timeout": "2m"}):  # a longer request timeout is cut
                r = http.get("/api/v1/query", params=params)
                assert r.status_code == 503, r.text
                assert r.json()["errorType"] == "timeout"
            state.query_timeout = 120.0  # as a reload sets it
            r = http.get("/api/v1/query", params={**slow, "timeout": "2m"})
            assert r.status_code == 200 and r.json()["data"]["result"]
    finally:
        listener.stop()
        engine.dispose()
