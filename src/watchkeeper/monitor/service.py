"""The monitoring subsystem of a running server: schedules checks and the host collector,
folds results into soft/hard states, and writes results, states and samples to the store.

Writes are batched: results queue in memory and a writer flushes them at
least once a second (and on shutdown) in one transaction, so thousands of
checks a second do not mean thousands of transactions.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, delete, insert, select

from watchkeeper.clock import Clock, SystemClock
from watchkeeper.eventlog import EventLog
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import Check, CheckResult, Sample, State
from watchkeeper.monitor.runner import execute, result_samples
from watchkeeper.monitor.statemachine import CheckStatus, advance
from watchkeeper.scheduler import Scheduler
from watchkeeper.store.models import check_results, check_status

__all__ = ["MonitorService", "check_history", "load_statuses"]

log = logging.getLogger(__name__)


def load_statuses(engine: Engine) -> dict[str, CheckStatus]:
    """Every check's stored status, so a restart continues where it stopped."""
    with engine.connect() as conn:
        rows = conn.execute(select(check_status)).all()
    return {
        r.check: CheckStatus(
            name=r.check, type=r.type, state=State(r.state), state_type=r.state_type,
            hard_state=State(r.hard_state), attempt=r.attempt, since=r.since, last_run=r.last_run,
            summary=r.summary, duration=r.duration, flapping=bool(r.flapping),
            recent=tuple(int(c) for c in r.recent),
        )
        for r in rows
    }


def check_history(engine: Engine, name: str, *, limit: int = 100, since: float | None = None
                  ) -> list[dict[str, Any]]:
    """The newest results of one check, newest first."""
    q = select(check_results).where(check_results.c.check == name)
    if since is not None:
        q = q.where(check_results.c.ts >= since)
    q = q.order_by(check_results.c.ts.desc(), check_results.c.id.desc()).limit(limit)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
    return [{"ts": r.ts, "state": State(r.state).name, "state_type": r.state_type,
             "attempt": r.attempt, "summary": r.summary, "details": r.details,
             "duration_seconds": r.duration} for r in rows]


@dataclass
class _Batch:
    """What one flush writes; :meth:`MonitorService._write` empties each part once stored."""

    results: list[dict[str, Any]]
    statuses: list[CheckStatus]
    samples: list[Sample]
    events: list[tuple[str, str, dict[str, Any]]]
    written_samples: int = 0


class MonitorService:
    """Owns the check jobs and the host collector job in the scheduler."""

    def __init__(self, engine: Engine, tsdb: Any, eventlog: EventLog, scheduler: Scheduler, *,
                 clock: Clock | None = None, resources: dict[str, Any] | None = None) -> None:
        self.engine = engine
        self.tsdb = tsdb
        self.eventlog = eventlog
        self.scheduler = scheduler
        self.clock = clock or SystemClock()
        self.resources = resources if resources is not None else {}
        self.configs: dict[str, CheckConfig] = {}
        self.checks: dict[str, Check] = {}
        self.statuses: dict[str, CheckStatus] = load_statuses(engine)
        self.latest: dict[str, list[Sample]] = {}
        self._results: list[dict[str, Any]] = []
        self._status_rows: dict[str, CheckStatus] = {}
        self._samples: list[Sample] = []
        self._events: list[tuple[str, str, dict[str, Any]]] = []
        self._inflight: list[dict[str, Any]] = []  # results a running flush is writing
        self._flush_lock = asyncio.Lock()
        self.collector: Any = None
        # per scrape check, the series of its previous scrape (for staleness markers)
        self._scrape_memory: dict[str, Any] = {}
        # called after each result is folded in; alerting subscribes (check ``alert:`` blocks)
        self.on_result: Callable[[CheckConfig, CheckStatus, CheckResult], None] | None = None
        self.counters = {"checks_run": 0, "samples_written": 0, "flushes": 0}

    # -- configuration -------------------------------------------------------------------
    def apply(self, config: Any) -> None:
        """Bring the scheduled jobs in line with ``config`` (first start and reloads)."""
        wanted = {c.name: c for c in config.checks if c.enabled}
        for name in list(self.configs):
            if name not in wanted:
                self.scheduler.remove(f"check:{name}")
                self.configs.pop(name)
                self.checks.pop(name, None)
                self.latest.pop(f"check:{name}", None)
                self._end_scrape(name)
        for name, cfg in wanted.items():
            if self.configs.get(name) == cfg:
                continue
            if cfg.type != "scrape":
                self._end_scrape(name)
            self.configs[name] = cfg
            self.checks[name] = cfg.build()
            old = self.statuses.get(name)
            if old is None or old.type != cfg.type:
                # a check of another type under an old name is a new check: its states,
                # attempts and flapping history say nothing about this one
                self.statuses[name] = CheckStatus(name=name, type=cfg.type, since=self.clock.time())
            jitter = cfg.jitter if cfg.jitter is not None else min(cfg.interval * 0.1, 5.0)
            self.scheduler.add(f"check:{name}", cfg.interval, self._job(name), jitter=jitter)
        host = config.collectors.host
        if host.enabled:
            from watchkeeper.monitor.collectors.host import HostCollector

            kwargs: dict[str, Any] = {"mount_timeout": host.mount_timeout, "top_n": host.top_processes}
            if host.fs_types_exclude is not None:
                kwargs["fs_types_exclude"] = host.fs_types_exclude
            if host.mount_points_exclude is not None:
                kwargs["mount_points_exclude"] = host.mount_points_exclude
            self.collector = HostCollector(**kwargs)
            self.scheduler.add("collector:host", host.interval, self.collect_host, limited=False)
        else:
            self.scheduler.remove("collector:host")
            self.collector = None
            self.latest.pop("collector:host", None)

    def _job(self, name: str) -> Any:
        async def job() -> None:
            await self.run_check(name)

        return job

    # -- running -------------------------------------------------------------------------
    async def run_check(self, name: str) -> CheckResult:
        cfg = self.configs[name]
        result = await execute(cfg, self.checks.get(name), resources=self.resources)
        status = self.record(cfg, result)
        if status.state_type == "SOFT" and cfg.retry_interval is not None:
            # confirm a soft problem sooner than the normal interval would
            self.scheduler.reschedule(f"check:{name}", cfg.retry_interval)
        return result

    def record(self, cfg: CheckConfig, result: CheckResult) -> CheckStatus:
        """Fold a result into the check's state and queue everything to be written."""
        now = self.clock.time()
        status = self.statuses.get(cfg.name) or CheckStatus(name=cfg.name, type=cfg.type, since=now)
        new, tr = advance(status, result.state, now=now, summary=result.summary,
                          duration=result.duration_seconds, max_attempts=cfg.max_attempts,
                          window=cfg.flapping.window, low=cfg.flapping.low, high=cfg.flapping.high)
        self.statuses[cfg.name] = new
        self.counters["checks_run"] += 1
        self._results.append({"check": cfg.name, "ts": now, "state": int(result.state),
                              "state_type": new.state_type, "attempt": new.attempt,
                              "summary": result.summary, "details": result.details,
                              "duration": result.duration_seconds})
        self._status_rows[cfg.name] = new
        samples = result_samples(cfg, result, now)
        self.latest[f"check:{cfg.name}"] = samples
        self._samples.extend(samples)
        if cfg.type == "scrape":
            self._samples.extend(self._scrape_stale_markers(cfg, result, samples, now))
        if tr.hard_changed:
            self._events.append(("check.state_changed", cfg.name, {
                "from": tr.previous_hard.name, "to": new.hard_state.name, "summary": result.summary}))
        if tr.flapping_started:
            self._events.append(("check.flapping_started", cfg.name, {"summary": result.summary}))
        if tr.flapping_stopped:
            self._events.append(("check.flapping_stopped", cfg.name, {}))
        if self.on_result is not None:
            try:
                self.on_result(cfg, new, result)
            except Exception:  # alerting trouble must not stop monitoring
                log.exception("alerting hook failed for check %s", cfg.name)
        return new

    def _scrape_stale_markers(self, cfg: CheckConfig, result: CheckResult, samples: list[Sample],
                              now: float) -> list[Sample]:
        """Staleness markers at ``now`` for the series the check's previous scrape had and
        this one has not (all of them when it failed), as Prometheus writes them."""
        from watchkeeper.monitor.checks.scrape import REPORT_SERIES, SeriesMemory

        memory = self._scrape_memory.get(cfg.name)
        if memory is None:
            memory = self._scrape_memory[cfg.name] = SeriesMemory()
        scraped = (m for m in result.metrics if m.name not in REPORT_SERIES)
        report = [s for s in samples if s.name in REPORT_SERIES or s.name.startswith("watchkeeper_check_")]
        markers: list[Sample] = memory.observe(scraped, report, extra_labels=cfg.labels)
        return [Sample(m.name, m.labels, m.value, now) for m in markers]

    def _end_scrape(self, name: str) -> None:
        """A scrape check went away: mark every series it wrote stale (Prometheus does so
        when a target disappears)."""
        memory = self._scrape_memory.pop(name, None)
        if memory is not None:
            now = self.clock.time()
            self._samples.extend(Sample(m.name, m.labels, m.value, now) for m in memory.end())

    async def collect_host(self) -> None:
        if self.collector is None:
            return
        samples = list(await self.collector.collect())
        now = self.clock.time()
        self.latest["collector:host"] = samples
        self._samples.extend(Sample(s.name, s.labels, s.value, s.timestamp or now) for s in samples)

    def unwritten_history(self, name: str) -> list[dict[str, Any]]:
        """Results of check ``name`` not yet in the database, newest first, shaped as
        :func:`check_history` returns them, so readers see a result the moment it exists."""
        rows = [r for r in (*self._inflight, *self._results) if r["check"] == name]
        return [{"ts": r["ts"], "state": State(r["state"]).name, "state_type": r["state_type"],
                 "attempt": r["attempt"], "summary": r["summary"], "details": r["details"],
                 "duration_seconds": r["duration"]} for r in reversed(rows)]

    # -- writing -------------------------------------------------------------------------
    @staticmethod
    def _status_row(s: CheckStatus) -> dict[str, Any]:
        return {"check": s.name, "type": s.type, "state": int(s.state),
                "state_type": s.state_type, "hard_state": int(s.hard_state),
                "attempt": s.attempt, "since": s.since, "last_run": s.last_run,
                "summary": s.summary, "duration": s.duration, "flapping": s.flapping,
                "recent": "".join(str(x) for x in s.recent)}

    def _write(self, batch: _Batch) -> None:
        """Write ``batch`` part by part, emptying each part once it is stored, so that
        after a failure the batch holds exactly what is still unwritten."""
        if batch.results or batch.statuses:
            with self.engine.begin() as conn:
                if batch.results:
                    conn.execute(insert(check_results), batch.results)
                if batch.statuses:
                    names = [s.name for s in batch.statuses]
                    conn.execute(delete(check_status).where(check_status.c.check.in_(names)))
                    conn.execute(insert(check_status), [self._status_row(s) for s in batch.statuses])
            batch.results, batch.statuses = [], []
        if batch.samples:
            self.tsdb.append(batch.samples, default_timestamp=self.clock.time())
            batch.written_samples, batch.samples = len(batch.samples), []
        while batch.events:
            kind, subject, data = batch.events[0]
            self.eventlog.append(kind, subject, data)
            batch.events.pop(0)

    async def flush(self) -> None:
        """Write everything queued; safe to call at any time, and last on shutdown.

        Results and states, samples and events are written in that order, each
        part once. When a part fails, it and the parts after it stay queued (ahead
        of what was queued meanwhile) for the next flush, and the error is raised;
        the parts already written are not written again.
        """
        async with self._flush_lock:
            batch = _Batch(self._results, list(self._status_rows.values()), self._samples,
                           self._events)
            self._results, self._status_rows, self._samples, self._events = [], {}, [], []
            if not (batch.results or batch.statuses or batch.samples or batch.events):
                return
            self._inflight = list(batch.results)
            try:
                await asyncio.to_thread(self._write, batch)
            except Exception:
                # keep what could not be written, to try again on the next flush (on
                # cancellation the thread still finishes the batch: nothing to keep)
                self._results[:0] = batch.results
                for s in batch.statuses:
                    self._status_rows.setdefault(s.name, s)  # a newer status wins
                self._samples[:0] = batch.samples
                self._events[:0] = batch.events
                raise
            finally:
                self._inflight = []
                self.counters["samples_written"] += batch.written_samples
            self.counters["flushes"] += 1

    def prune_results(self, older_than: float) -> int:
        """Delete check results older than ``older_than`` (Unix seconds); returns how many."""
        total = 0
        while True:  # in batches, so the write lock is never held for long
            with self.engine.begin() as conn:
                ids = [r.id for r in conn.execute(
                    select(check_results.c.id).where(check_results.c.ts < older_than).limit(5000))]
                if ids:
                    conn.execute(delete(check_results).where(check_results.c.id.in_(ids)))
            total += len(ids)
            if len(ids) < 5000:
                return total

