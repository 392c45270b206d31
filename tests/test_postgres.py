"""watchkeeper on a real PostgreSQL (a throwaway cluster from tests/pg.py).

Migrations from empty and from the previous revision; the time-series store side by side
with SQLite (the same writes must read back bit for bit, through compaction, downsampling,
retention and deletion); PromQL answers equal to SQLite's; check results and states; alerts,
silences and the outbox delivering to a real loopback receiver after a restart; runbook runs;
the event log with two writers; and the password of the URL kept out of every message.
"""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, func, inspect, select, text

from tests.alerting._receiver_servers import recorder
from tests.pg import PASSWORD, Cluster
from watchkeeper.alerting.config import AlertingConfig
from watchkeeper.alerting.dispatch import Dispatcher
from watchkeeper.alerting.matchers import parse_matchers
from watchkeeper.alerting.model import Alert, AlertState, fingerprint
from watchkeeper.alerting.outbox import DeliveryService, Outbox
from watchkeeper.alerting.receivers import build_receivers
from watchkeeper.alerting.silences import Silences
from watchkeeper.alerting.store import ActiveAlert, AlertStore
from watchkeeper.automation.runs import RunStore
from watchkeeper.clock import SystemClock
from watchkeeper.config import config_model
from watchkeeper.errors import StorageError
from watchkeeper.eventlog import EventLog
from watchkeeper.monitor.model import CheckResult, State
from watchkeeper.monitor.service import MonitorService, check_history, load_statuses
from watchkeeper.query.engine import QueryEngine
from watchkeeper.query.selector import Matcher
from watchkeeper.scheduler import Scheduler
from watchkeeper.staleness import STALE_NAN
from watchkeeper.store.engine import current_revision, display_url, migrate, open_engine
from watchkeeper.store.models import check_results, events, run_steps
from watchkeeper.store.tsdb import TSDB, RetentionPolicy
from watchkeeper.testing import FakeClock

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
DAY = 86400.0


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from watchkeeper.store.engine import MIGRATIONS

    script = ScriptDirectory(str(MIGRATIONS))
    head = script.get_current_head()
    assert head is not None
    return head


@pytest.fixture
def pg(pg_url: str, tmp_path: Path) -> Iterator[Engine]:
    engine = open_engine(pg_url, tmp_path / "pg-data")
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Engine]:
    engine = open_engine(None, tmp_path / "lite-data")
    try:
        yield engine
    finally:
        engine.dispose()


# -- migrations ----------------------------------------------------------------------------
def _column_types(engine: Engine, table: str) -> dict[str, str]:
    return {c["name"]: str(c["type"]) for c in inspect(engine).get_columns(table)}


def test_migrations_from_empty_and_from_the_previous_revision_then_reopen(pg_url: str,
                                                                          tmp_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    from watchkeeper.store.models import metadata

    # a database made by the previous version (0005), with data in it
    old = create_engine(pg_url)
    migrate(old, "0005")
    assert _column_types(old, "run_steps")["status"] == "VARCHAR(16)"
    with old.begin() as conn:
        conn.execute(check_results.insert().values(check="web", ts=T0, state=0, state_type="HARD",
                                                   attempt=1, summary="ok", details="", duration=0.1))
    old.dispose()

    engine = open_engine(pg_url, tmp_path)
    try:
        head = _head_revision()
        assert current_revision(engine) == head
        with engine.connect() as conn:
            assert compare_metadata(MigrationContext.configure(conn), metadata) == []
            assert conn.execute(select(check_results.c.summary)).scalar_one() == "ok"
            seqs = dict(conn.execute(text(
                "SELECT sequence_name, data_type FROM information_schema.sequences")).all())
        # 64-bit where SQLite is 64-bit, unbounded text where SQLite does not enforce a length
        assert _column_types(engine, "samples")["slot"] == "BIGINT"
        assert _column_types(engine, "samples")["ts"] == "BIGINT"
        assert _column_types(engine, "check_results")["id"] == "BIGINT"
        assert _column_types(engine, "chunks")["id"] == "BIGINT"
        assert _column_types(engine, "run_steps")["status"] == "TEXT"
        assert _column_types(engine, "series")["name"] == "TEXT"
        assert seqs["check_results_id_seq"] == seqs["chunks_id_seq"] == "bigint"
        assert seqs["series_id_seq"] == "integer"
        # ids past 2^31 fit
        with engine.begin() as conn:
            conn.execute(text("SELECT setval('check_results_id_seq', 3000000000)"))
            conn.execute(check_results.insert().values(check="big", ts=T0, state=0, state_type="HARD",
                                                       attempt=1, summary="", details="", duration=0.0))
            assert conn.execute(select(func.max(check_results.c.id))).scalar_one() == 3_000_000_001
    finally:
        engine.dispose()

    again = open_engine(pg_url, tmp_path)  # re-opening migrates nothing and keeps the data
    try:
        assert current_revision(again) == head
        with again.connect() as conn:
            assert conn.execute(select(func.count()).select_from(check_results)).scalar_one() == 2
    finally:
        again.dispose()


def test_processes_opening_a_new_database_at_once_all_succeed(pg_url: str, tmp_path: Path) -> None:
    code = ("import sys; from pathlib import Path; from watchkeeper.store.engine import open_engine;"
            " open_engine(sys.argv[1], Path(sys.argv[2])).dispose()")
    procs = [subprocess.Popen([sys.executable, "-c", code, pg_url, str(tmp_path / str(i))],
                              stderr=subprocess.PIPE, text=True) for i in range(3)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    engine = open_engine(pg_url, tmp_path, migrate_schema=False)
    try:
        assert current_revision(engine) == _head_revision()
    finally:
        engine.dispose()


# -- the time-series store, side by side with SQLite ---------------------------------------
LONG_NAME = "m_" + "x" * 300  # longer than the VARCHAR(255) of revision 0001
# (not -0.0: SQLite's head reads it back as 0.0, PostgreSQL keeps the sign)
SPECIAL = [math.nan, math.inf, -math.inf, STALE_NAN, 1e308, 5e-324, -1.5]


def _rows(start: float, hours: float, step: float, n_series: int) -> list[tuple[str, dict[str, str], float, float]]:
    out = []
    for i in range(n_series):
        labels = {"instance": f"web{i}", "job": "node" if i % 2 else "db", "note": 'quote" ünï'}
        t, k = start, 0
        while t < start + hours * 3600:
            out.append(("load" if i < n_series - 1 else LONG_NAME, labels, t, float(i * 1000 + k) / 7))
            t += step
            k += 1
    return out


def _special_rows(t: float) -> list[tuple[str, dict[str, str], float, float]]:
    return [("special", {"k": str(i)}, t + i, v) for i, v in enumerate(SPECIAL)]


# 64-bit milliseconds: before 1970, in 2100, and at 9e15 ms (slot 7.5e10, past 32 bits)
FAR = [-1e9, 4.1e9, 9e12]


def _bits(values: np.ndarray) -> list[int]:
    return np.asarray(values, dtype=np.float64).view(np.int64).tolist()


def _snapshot(db: TSDB) -> dict[str, Any]:
    """Everything the store answers, NaN payloads (the staleness marker) compared bit for bit."""
    everything = [Matcher.make("__name__", "=~", ".+")]
    out: dict[str, Any] = {}
    for tier in ("auto", "raw", "minute", "hour"):
        cols = db.select_columns(everything, -2e9, 1e13, tier=tier)  # type: ignore[arg-type]
        out[tier] = sorted((sorted(c.labels.items()), c.ms.tolist(), _bits(c.values)) for c in cols)
    aggs = db.select_aggregates(everything, -2e9, 1e13)
    out["aggregates"] = sorted((sorted(a.labels.items()), a.timestamps, a.count, _bits(np.array(a.sum)),
                                _bits(np.array(a.min)), _bits(np.array(a.max)), _bits(np.array(a.last)))
                               for a in aggs)
    out["series"] = sorted(sorted(s.items()) for s in db.series([everything]))
    out["series_in_range"] = sorted(sorted(s.items()) for s in db.series([everything], T0, T0 + 3600))
    out["label_names"] = db.label_names()
    out["label_values"] = (db.label_values("__name__"), db.label_values("instance"),
                           db.label_values("job", [[Matcher.make("instance", "=", "web1")]]))
    st = db.stats()
    out["stats"] = (st["series"], st["head_samples"], st["tiers"])
    return out


def test_tsdb_on_postgresql_answers_exactly_as_on_sqlite(pg: Engine, lite: Engine) -> None:
    policy = RetentionPolicy(raw=DAY, minute=8 * DAY, hour=30 * DAY)
    dbs = [TSDB(pg, retention=policy, batch_rows=700, batch_chunks=5),
           TSDB(lite, retention=policy, batch_rows=700, batch_chunks=5)]
    start = T0 - 3 * DAY
    rows = _rows(start, 72, 120.0, 5) + _special_rows(T0 - 2 * DAY) + _special_rows(T0)
    rows += [("far", {}, t, t / 1e9) for t in FAR]
    for db in dbs:
        for i in range(0, len(rows), 2000):
            assert db.append_rows(rows[i:i + 2000]) == len(rows[i:i + 2000])
        # the same timestamp twice, in one batch and in a later one: the last write wins
        db.append_rows([("dup", {}, T0, 1.0), ("dup", {}, T0, 2.0), ("dup", {}, T0 + 1, 3.0)])
        db.append_rows([("dup", {}, T0 + 1, 4.0)])
    snap = _snapshot(dbs[0])
    assert snap == _snapshot(dbs[1])
    far = next(c for c in dbs[0].select_columns([Matcher.make("__name__", "=", "far")], -2e9, 1e13))
    assert far.ms.tolist() == [round(t * 1000) for t in FAR]
    dup = dbs[0].select([Matcher.make("__name__", "=", "dup")], T0, T0 + 1)[0]
    assert dup.values == [2.0, 4.0]
    special = dbs[0].select_columns([Matcher.make("__name__", "=", "special")], T0, T0 + 10)
    assert _bits(np.array([c.values[0] for c in sorted(special, key=lambda c: c.labels["k"])])) == \
        _bits(np.array(SPECIAL))
    assert dbs[0].stats()["head_samples"] == len(rows) + 2  # "dup": 4 writes, 2 samples

    # compaction: every whole hour older than the head window goes into raw chunks
    moved = [db.compact(T0 + 3600) for db in dbs]
    assert moved[0] == moved[1] > 1000
    snap = _snapshot(dbs[0])
    assert snap == _snapshot(dbs[1])
    assert snap["stats"][2]["raw"]["chunks"] > 100

    # retention: raw -> minute, minute -> hour, hours expire; each step compared
    for now in (T0 + DAY, T0 + 9 * DAY, T0 + 40 * DAY):
        done = [db.apply_retention(now) for db in dbs]
        assert done[0] == done[1]
        assert _snapshot(dbs[0]) == _snapshot(dbs[1])
    assert sum(done[0].values()) > 0

    gone = [db.delete_series([Matcher.make("__name__", "=", "load"), Matcher.make("instance", "=~", "web[01]")])
            for db in dbs]
    assert gone == [2, 2]
    assert _snapshot(dbs[0]) == _snapshot(dbs[1])
    # a new process sees what the first wrote
    assert _snapshot(TSDB(pg)) == _snapshot(dbs[0])


def test_head_reads_come_in_time_order_whatever_order_postgresql_stores_rows_in(pg: Engine) -> None:
    """PostgreSQL returns rows in heap order without ORDER BY: a rewritten sample moves to
    the end of the heap and a late one lands after newer ones. Reads must still be in time
    order, and a rate over them right."""
    with pg.begin() as conn:  # as the planner does for a large head: no index, the heap's order
        for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
            conn.execute(text(f"DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET {setting} = off', "
                              "current_database()); END $$"))
    pg.dispose()
    db = TSDB(pg)
    db.append_rows([("c", {"i": str(i)}, T0 + t, float(t)) for t in range(10, 20) for i in range(3)])
    db.append_rows([("c", {"i": "1"}, T0 + 12, 12.0)])  # the same value again: a new row version
    db.append_rows([("c", {"i": str(i)}, T0 + t, float(t)) for t in range(0, 10) for i in range(3)])
    with pg.connect() as conn:  # the rows really are out of time order in the heap
        order = [r[0] for r in conn.execute(text("SELECT ts FROM samples"))]
    assert order != sorted(order)
    cols = db.select_columns([Matcher.make("__name__", "=", "c")], T0, T0 + 19)
    assert [c.ms.tolist() for c in cols] == [[round((T0 + t) * 1000) for t in range(20)]] * 3
    assert [c.values.tolist() for c in cols] == [[float(t) for t in range(20)]] * 3
    got = QueryEngine(db).instant("rate(c[10s])", T0 + 19)
    assert [r["value"][1] for r in got["result"]] == ["1"] * 3


def test_a_dropped_connection_is_replaced_before_the_next_query(pg: Engine, pg_url: str,
                                                               tmp_path: Path) -> None:
    """A database restart or an idle timeout kills pooled connections: the next query
    must not fail (the pool tests connections before handing them out)."""
    db = TSDB(pg)
    db.append_rows([("x", {}, T0, 1.0)])
    with pg.connect() as conn:
        pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
    other = open_engine(pg_url, tmp_path / "other")
    try:
        with other.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar_one()
    finally:
        other.dispose()
    db.append_rows([("x", {}, T0 + 15, 2.0)])  # on a fresh connection, without an error
    got = db.select([Matcher("__name__", "=", "x")], T0 - 1, T0 + 16)
    assert [v for s in got for v in s.values] == [1.0, 2.0]


def test_tsdb_stats_give_the_database_size_and_hide_the_password(pg: Engine) -> None:
    db = TSDB(pg)
    db.append_rows([("x", {}, T0, 1.0)])
    st = db.stats()
    assert st["database_bytes"] > 1_000_000  # pg_database_size: a fresh database is ~7 MB
    assert st["database"].startswith("postgresql+psycopg://wk:***@127.0.0.1:")
    assert PASSWORD not in repr(st)


def test_compaction_keeps_late_samples_another_process_appends_meanwhile(pg_url: str,
                                                                         tmp_path: Path) -> None:
    """A second writer appends late samples into hours being compacted: none may be lost
    (under READ COMMITTED a DELETE after a SELECT would drop rows committed in between)."""
    engines = [open_engine(pg_url, tmp_path) for _ in range(2)]
    try:
        compactor, writer = TSDB(engines[0], head_window=0), TSDB(engines[1], head_window=0)
        written = 0
        stop = threading.Event()
        errors: list[BaseException] = []

        def write() -> None:
            nonlocal written
            try:
                k = 0
                while not stop.is_set() and k < 400:
                    batch = [("late", {"s": str(s)}, T0 - 7200 + k * 5 + s / 100, float(k)) for s in range(20)]
                    written += writer.append_rows(batch)
                    k += 1
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        thread = threading.Thread(target=write)
        thread.start()
        try:
            deadline = time.monotonic() + 10
            while thread.is_alive() and time.monotonic() < deadline:
                compactor.compact(T0)
        finally:
            stop.set()
            thread.join(30)
        assert not errors, errors
        compactor.compact(T0)
        got = compactor.select_columns([Matcher.make("__name__", "=", "late")], T0 - 8000, T0)
        assert sum(len(c.ms) for c in got) == written == 400 * 20
        assert compactor.stats()["head_samples"] == 0
    finally:
        for e in engines:
            e.dispose()


# -- PromQL ------------------------------------------------------------------------------------
QUERIES = [
    "rate(req_total[5m])",
    "sum by (job) (rate(req_total[5m]))",
    "avg_over_time(temp[10m])",
    "max without (instance) (temp)",
    "temp offset 1h > 20",
    'count({__name__=~"req_total|temp", job="api"})',
    "histogram_quantile(0.9, sum by (le) (rate(lat_bucket[5m])))",
]


def _promql_data() -> list[tuple[str, dict[str, str], float, float]]:
    rows = []
    start = T0 - 6 * 3600
    for k in range(6 * 240):  # 6 h at 15 s
        t = start + k * 15
        for i in range(10):
            labels = {"instance": f"h{i}", "job": "api" if i < 6 else "web"}
            rows.append(("req_total", labels, t, float(k * (i + 1))))
            rows.append(("temp", labels, t, 15 + 10 * math.sin(k / 50 + i)))
        for le, frac in (("0.1", 0.5), ("1", 0.9), ("+Inf", 1.0)):
            rows.append(("lat_bucket", {"le": le}, t, k * 10 * frac))
    return rows


def test_promql_on_postgresql_matches_sqlite(pg: Engine, lite: Engine) -> None:
    rows = _promql_data()
    dbs = [TSDB(pg), TSDB(lite)]
    for db in dbs:
        db.append_rows(rows)
        db.compact(T0 - 2 * 3600)  # part in chunks, part in the head
    engines = [QueryEngine(db) for db in dbs]
    for q in QUERIES:
        ranges = [e.range(q, T0 - 5 * 3600, T0, 60) for e in engines]
        assert ranges[0] == ranges[1], q
        assert ranges[0]["result"], q
        instants = [e.instant(q, T0 - 1800) for e in engines]
        assert instants[0] == instants[1], q
    assert engines[0].range_json(QUERIES[1], T0 - 3600, T0, 30) == engines[1].range_json(QUERIES[1], T0 - 3600, T0, 30)


# -- checks --------------------------------------------------------------------------------------
def test_check_results_and_states_survive_a_restart(pg_url: str, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    name = "disk:/var@web-1"

    def stack() -> tuple[Engine, EventLog, MonitorService]:
        engine = open_engine(pg_url, tmp_path)
        tsdb = TSDB(engine, clock=clock)
        log = EventLog(engine, anchor=tmp_path / "eventlog.head", clock=clock)
        return engine, log, MonitorService(engine, tsdb, log, Scheduler(clock=clock), clock=clock)

    conf = config_model().model_validate({"collectors": {"host": {"enabled": False}}, "checks": [
        {"name": name, "type": "file", "path": "/x", "max_attempts": 2}]})
    engine, log, monitor = stack()
    monitor.apply(conf)
    cfg = conf.check(name)
    for i, state in enumerate([State.OK, State.CRITICAL, State.CRITICAL, State.OK]):
        monitor.record(cfg, CheckResult(state, f"result {i}", duration_seconds=0.25))
        clock.advance(10)
    asyncio.run(monitor.flush())
    history = check_history(engine, name, limit=10)
    assert [(h["state"], h["state_type"], h["attempt"]) for h in reversed(history)] == [
        ("OK", "HARD", 1), ("CRITICAL", "SOFT", 1), ("CRITICAL", "HARD", 2), ("OK", "HARD", 1)]
    before = monitor.statuses[name]
    engine.dispose()

    engine, log, monitor = stack()  # a new process
    try:
        assert load_statuses(engine)[name] == before
        monitor.apply(conf)
        assert monitor.statuses[name] == before
        monitor.record(cfg, CheckResult(State.WARNING, "warn", duration_seconds=0.1))
        asyncio.run(monitor.flush())
        assert check_history(engine, name, limit=1)[0]["summary"] == "warn"
        assert monitor.statuses[name].state_type == "SOFT"
        kinds = [e.kind for e in log.list(kind="check.")]
        assert kinds.count("check.state_changed") == 2
        assert log.verify() == []
    finally:
        engine.dispose()


# -- alerting ------------------------------------------------------------------------------------
LBL = {"alertname": "HighLoad", "instance": "web1", "severity": "warning"}


def test_alert_state_silences_and_acks_survive_a_restart(pg_url: str, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    engine = open_engine(pg_url, tmp_path)
    log = EventLog(engine, clock=clock)
    store = AlertStore(engine, eventlog=log, clock=clock)
    store.sync_rule("host/HighLoad", [ActiveAlert(LBL, {"summary": "load 3"}, 3.0)], T0, for_=300)
    store.sync_rule("host/HighLoad", [ActiveAlert(LBL, {"summary": "load 4"}, 4.0)], T0 + 300, for_=300)
    store.ack("HighLoad", "alice", "looking", T0 + 301)
    silences = Silences(engine, clock, eventlog=log)
    sid = silences.add(parse_matchers('{instance="web1"}'), starts_at=T0, ends_at=T0 + 3600,
                       created_by="alice", comment="maintenance")
    engine.dispose()

    engine = open_engine(pg_url, tmp_path)
    try:
        store = AlertStore(engine, eventlog=EventLog(engine, clock=clock), clock=clock)
        alert = store.get(fingerprint(LBL))
        assert (alert.state, alert.fired_at, alert.value, alert.acked_by) == (
            AlertState.FIRING, T0 + 300, 4.0, "alice")
        assert [h["state"] for h in reversed(store.history(fingerprint(LBL)))] == [
            "pending", "firing", "acked"]
        silences = Silences(engine, clock)
        assert silences.silencing(LBL, T0 + 400) == [sid]
        out = store.sync_rule("host/HighLoad", [], T0 + 600, for_=300)
        assert out == [] and store.get(fingerprint(LBL)).state == AlertState.RESOLVED
    finally:
        engine.dispose()


async def test_outbox_delivers_to_a_real_receiver_after_a_restart(pg_url: str, tmp_path: Path) -> None:
    """The receiver is down while an alert fires; after a restart (new engine) it gets the
    notification exactly once, and the notification log keeps it from being sent again."""
    async with recorder(status=503, body="down") as hook:
        cfg = AlertingConfig.model_validate({
            "route": {"receiver": "r", "group_wait": "0s", "group_interval": "1m"},
            "receivers": [{"name": "r", "webhook_configs": [{"url": hook.url("/h")}]}]})
        clock = SystemClock()
        now = clock.time()
        firing = [Alert(labels={"alertname": "Y", "instance": "web1"}, state=AlertState.FIRING,
                        active_at=now, fired_at=now, annotations={"summary": "Y fired"})]

        async def run_once(seconds: float) -> list[str]:
            engine = open_engine(pg_url, tmp_path)
            try:
                ob = Outbox(engine, clock)
                disp = Dispatcher(engine, config=cfg, alerts=lambda: firing, muter=None,
                                  time_intervals=None, outbox=ob, clock=clock)
                receivers = build_receivers(cfg)
                svc = DeliveryService(ob, receivers, clock, backoff_initial=0.1, jitter=0.0)
                tasks = [asyncio.create_task(disp.run()), asyncio.create_task(svc.run())]
                try:
                    disp.wake()
                    await asyncio.sleep(seconds)
                finally:
                    for t in tasks:
                        t.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                    await receivers.aclose()
                return [i.status for i in ob.items()]
            finally:
                engine.dispose()

        assert await run_once(0.6) == ["pending"]
        failed = len(hook.requests)
        assert failed >= 2
        hook.status, hook.body = 200, "ok"
        assert await run_once(0.6) == ["sent"]
        assert len(hook.requests) == failed + 1
        assert hook.requests[-1].json()["alerts"][0]["labels"]["alertname"] == "Y"
        assert await run_once(0.3) == ["sent"]  # nothing new to send: the log remembers
        assert len(hook.requests) == failed + 1


# -- automation ------------------------------------------------------------------------------------
async def test_runs_steps_and_an_approval_from_another_process(pg_url: str, tmp_path: Path) -> None:
    clock = FakeClock(T0)
    engines = [open_engine(pg_url, tmp_path) for _ in range(2)]
    try:
        store = RunStore(engines[0], clock, eventlog=EventLog(engines[0], clock=clock), poll_interval=0.02)
        run_id = store.create("restart-service", trigger="cli", started_by="alice",
                              params={"service": "nginx"}, targets=["web1", "web2"])
        store.set_status(run_id, "running")
        sid = store.add_step(run_id, phase="steps", step="restart", host="web1",
                             command="systemctl restart nginx")
        clock.advance(2)
        store.finish_step(sid, status="changed", exit_code=0, stdout="ok", stderr="", changed=True)
        approval = store.request_approval(run_id, "go on?", role=None, message="web2 next?", timeout=600)
        assert store.status(run_id) == "awaiting_approval"
        other = RunStore(engines[1], clock, eventlog=EventLog(engines[1], clock=clock))

        async def approve_later() -> None:
            await asyncio.sleep(0.05)
            other.approve(run_id[:8], by="carol", comment="fine")

        async with asyncio.timeout(10):
            (decision, info), _ = await asyncio.gather(store.wait_decision(run_id, approval, 600),
                                                       approve_later())
        assert (decision, info["by"]) == ("approved", "carol")
        store.record_host(run_id, "web1", "changed")
        store.set_status(run_id, "ok", summary="1 host changed")
        rec = other.get(run_id)
        assert (rec.status, rec.params, rec.targets) == ("ok", {"service": "nginx"}, ["web1", "web2"])
        step = rec.steps_for("web1")[0]
        assert (step.status, step.changed, step.duration_seconds) == ("changed", True, 2.0)
        assert [r.id for r in other.list(status="ok")] == [run_id]
        with engines[0].connect() as conn:
            assert conn.execute(select(func.count()).select_from(run_steps)).scalar_one() >= 2
        store.close()
        other.close()
    finally:
        for e in engines:
            e.dispose()


# -- the event log ----------------------------------------------------------------------------------
def test_event_log_with_two_writing_processes_stays_one_chain(pg_url: str, tmp_path: Path) -> None:
    engines = [open_engine(pg_url, tmp_path) for _ in range(2)]
    try:
        logs = [EventLog(e, clock=SystemClock()) for e in engines]

        def write(log: EventLog, who: str) -> None:
            for i in range(40):
                log.append("note", f"{who}/{i}", {"i": i}, actor=who)

        threads = [threading.Thread(target=write, args=(log, f"p{n}")) for n, log in enumerate(logs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert logs[0].verify() == []
        assert [e.seq for e in logs[1].list(limit=1000)] == list(range(1, 81))
        assert logs[1].count() == 80
        assert len(logs[0].list(kind="no", limit=1000)) == 80  # kind is a prefix
        assert logs[0].list(kind="No") == []  # case-sensitive, as on SQLite (see below)
        with engines[0].begin() as conn:
            conn.execute(events.update().where(events.c.seq == 7).values(subject="edited"))
        problems = [str(p) for p in logs[0].verify()]
        assert problems == ["entry 7: was edited after it was written (hash mismatch)"]
    finally:
        for e in engines:
            e.dispose()


@pytest.mark.parametrize("which", ["sqlite", "postgresql"])
def test_event_log_kind_prefix_is_literal_and_case_sensitive_on_both(which: str, pg: Engine,
                                                                     lite: Engine) -> None:
    log = EventLog(pg if which == "postgresql" else lite, clock=FakeClock(T0))
    for kind in ("check.state_changed", "Check.other", "run_x.started", "runXstarted", "ünï.x"):
        log.append(kind, "s")
    assert [e.kind for e in log.list(kind="check.")] == ["check.state_changed"]
    assert [e.kind for e in log.list(kind="Check")] == ["Check.other"]
    assert [e.kind for e in log.list(kind="run_")] == ["run_x.started"]  # "_" is no wildcard
    assert [e.kind for e in log.list(kind="%")] == []
    assert [e.kind for e in log.list(kind="ünï")] == ["ünï.x"]


# -- passwords -------------------------------------------------------------------------------------
def test_a_wrong_password_names_the_database_and_never_shows_the_password(pg_cluster: Cluster,
                                                                           tmp_path: Path) -> None:
    wrong = "not-the-pw-7781"
    url = pg_cluster.url("postgres", password=wrong)
    with pytest.raises(StorageError) as info:
        open_engine(url, tmp_path)
    message = f"{info.value}\n{info.value.hint}"
    assert f"cannot connect to database postgresql+psycopg://wk:***@127.0.0.1:{pg_cluster.port}/postgres" \
        in message
    assert 'password authentication failed for user "wk"' in message
    assert "WK_DB_PASSWORD" in message
    assert wrong not in message and wrong not in repr(info.value)


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://wk:s3cret@db.example:5432/wk", "postgresql+psycopg://wk:***@db.example:5432/wk"),
    ("postgresql://wk@db/wk", "postgresql://wk@db/wk"),
    ("sqlite:////var/lib/wk/watchkeeper.db", "sqlite:////var/lib/wk/watchkeeper.db"),
    ("not a url://wk:s3cret@host/db", "not a url://wk:***@host/db"),
])
def test_display_url_hides_the_password(url: str, shown: str) -> None:
    assert display_url(url) == shown


def test_an_invalid_url_is_reported_without_its_password(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as info:
        open_engine("postgresql+psycopg://wk:s3cret@host:notaport/db", tmp_path)
    assert "s3cret" not in str(info.value) and "***" in str(info.value)
