"""Run records: every runbook run, its steps per host, approvals, cancel, live follow.

The ``runs`` table holds one row per run (who started it and how, params with
secrets masked, targets, status, summary); ``run_steps`` one row per step per
host (phase ``steps``/``verify``/``on_failure``), one per approval wait (host
``*``), and one ``result`` row per host with the host's outcome.

Run status: ``pending`` -> ``running`` (<-> ``awaiting_approval``) -> one of
``ok``, ``failed``, ``cancelled``, ``rejected``, ``interrupted``. A process that
starts up calls :meth:`RunStore.mark_interrupted`, so a run cut off by a restart
is never silently lost -- but only runs whose owner is gone: each run records the
process executing it (host, pid, process start time; :mod:`.run_owner`) and a
heartbeat that process refreshes while it has active runs, so a ``watchkeeper run``
going on beside a starting server is left alone.

Several processes may share the database (the server runs a runbook, the CLI
approves it against the same data dir): waiting engines and followers look at
the database every ``poll_interval`` seconds, and are woken at once by changes
made in their own process.

Every run goes into the event log: ``run.started``, ``run.finished``,
``run.approval_requested``, ``run.approved``, ``run.rejected``,
``run.approval_timeout``, ``run.cancelled``, ``run.interrupted``.
"""

from __future__ import annotations

import asyncio
import builtins
import json
import logging
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert, select, update

from watchkeeper.automation.run_owner import RunOwner, owner_alive
from watchkeeper.clock import Clock, SystemClock
from watchkeeper.errors import ForbiddenError, InputError, NotFoundError
from watchkeeper.store.models import run_steps, runs

__all__ = ["ACTIVE", "FINAL", "RunEvent", "RunRecord", "RunStore", "StepRecord", "cap_output"]

FINAL = frozenset({"ok", "failed", "cancelled", "interrupted", "rejected"})
ACTIVE = frozenset({"pending", "running", "awaiting_approval"})
DEFAULT_OUTPUT_CAP = 64 * 1024
HEARTBEAT_INTERVAL = 15.0  # seconds between an owner's heartbeats while it has active runs
STALE_AFTER = 60.0  # an owner on another host whose heartbeat is older than this is gone

log = logging.getLogger(__name__)


def cap_output(text: str, cap: int) -> str:
    """``text`` cut to about ``cap`` characters, keeping its head and tail (errors are at the end)."""
    if len(text) <= cap:
        return text
    head = cap // 4
    tail = cap - head
    dropped = len(text) - head - tail
    return f"{text[:head]}\n[... {dropped} characters dropped ...]\n{text[-tail:]}"


@dataclass
class StepRecord:
    """One step on one host (or an approval wait, host ``*``; or a host's ``result``)."""

    id: int
    run_id: str
    seq: int
    phase: str
    step: str
    host: str
    status: str
    command: str = ""
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    changed: bool = False
    started_at: float | None = None
    finished_at: float | None = None
    detail: str = ""

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 6)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "seq": self.seq, "phase": self.phase, "step": self.step,
                "host": self.host, "status": self.status, "command": self.command,
                "exit_code": self.exit_code, "stdout": self.stdout, "stderr": self.stderr,
                "changed": self.changed, "started_at": self.started_at,
                "finished_at": self.finished_at, "duration_seconds": self.duration_seconds,
                "detail": self.detail}


@dataclass
class RunRecord:
    """A run as recorded. ``steps`` is empty in listings (see :meth:`RunStore.list`)."""

    id: str
    runbook: str
    status: str
    trigger: str
    started_by: str
    params: dict[str, Any]
    targets: list[str]
    check_mode: bool
    created_at: float
    started_at: float | None
    finished_at: float | None
    summary: str
    alert: dict[str, Any] | None
    parent: str | None
    steps: list[StepRecord] = field(default_factory=list)
    owner: dict[str, Any] | None = None  # host, pid, started, heartbeat_at (None: not known)

    @property
    def finished(self) -> bool:
        return self.status in FINAL

    @property
    def duration_seconds(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return round(self.finished_at - self.started_at, 6)

    @property
    def hosts(self) -> dict[str, str]:
        """Each target host's outcome: ok, failed, unreachable, skipped, cancelled... (or running)."""
        out = {h: ("pending" if self.status == "pending" else "running") for h in self.targets}
        for s in self.steps:
            if s.phase == "result":
                out[s.host] = s.status
        if self.finished:
            out = {h: (self.status if v in ("pending", "running") else v) for h, v in out.items()}
        return out

    def steps_for(self, host: str) -> list[StepRecord]:
        return [s for s in self.steps if s.host == host and s.phase != "result"]

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "runbook": self.runbook, "status": self.status,
                "trigger": self.trigger, "started_by": self.started_by, "params": self.params,
                "targets": self.targets, "check_mode": self.check_mode,
                "created_at": self.created_at, "started_at": self.started_at,
                "finished_at": self.finished_at, "duration_seconds": self.duration_seconds,
                "summary": self.summary, "alert": self.alert, "parent": self.parent,
                "owner": self.owner, "hosts": self.hosts,
                "steps": [s.to_dict() for s in self.steps if s.phase != "result"]}


@dataclass(frozen=True)
class RunEvent:
    """A change seen by a follower: ``kind`` is ``run`` (status) or ``step`` (a step row)."""

    kind: str
    run_id: str
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "run_id": self.run_id, **self.data}


class _Waiters:
    """asyncio events to wake, per run, from any thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_run: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = {}

    def add(self, run_id: str) -> tuple[asyncio.AbstractEventLoop, asyncio.Event]:
        item = (asyncio.get_running_loop(), asyncio.Event())
        with self._lock:
            self._by_run.setdefault(run_id, set()).add(item)
        return item

    def remove(self, run_id: str, item: tuple[asyncio.AbstractEventLoop, asyncio.Event]) -> None:
        with self._lock:
            group = self._by_run.get(run_id)
            if group is not None:
                group.discard(item)
                if not group:
                    del self._by_run[run_id]

    def wake(self, run_id: str) -> None:
        with self._lock:
            items = list(self._by_run.get(run_id, ()))
        try:
            current = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        for loop, ev in items:
            if loop is current:
                ev.set()
            elif not loop.is_closed():
                loop.call_soon_threadsafe(ev.set)


class RunStore:
    """Create, update and read run records; approvals; cancel; follow a run live.

    Methods are synchronous (one short transaction each) except the waits and
    :meth:`subscribe`. ``eventlog`` (an :class:`~watchkeeper.eventlog.EventLog`)
    receives the run events; ``output_cap`` bounds stored stdout/stderr per step.
    ``owner`` is recorded on the runs this store creates (default: this process); while
    any of them is active a background thread refreshes their heartbeat every
    ``heartbeat_interval`` seconds (:meth:`close` stops it).
    """

    def __init__(self, engine: Engine, clock: Clock | None = None, *, eventlog: Any = None,
                 output_cap: int = DEFAULT_OUTPUT_CAP, poll_interval: float = 0.5,
                 owner: RunOwner | None = None, heartbeat_interval: float = HEARTBEAT_INTERVAL,
                 stale_after: float = STALE_AFTER) -> None:
        self.engine = engine
        self.clock = clock or SystemClock()
        self.eventlog = eventlog
        self.output_cap = output_cap
        self.poll_interval = poll_interval
        self.owner = owner or RunOwner.current()
        self.heartbeat_interval = heartbeat_interval
        self.stale_after = stale_after
        self._beat_lock = threading.Lock()
        self._beat_thread: threading.Thread | None = None
        self._beat_stop = threading.Event()
        self._beat_generation = 0
        self._waiters = _Waiters()
        self._cancel_hooks: dict[str, Callable[[], None]] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ writing

    def _log(self, kind: str, run_id: str, data: Mapping[str, Any], actor: str = "watchkeeper") -> None:
        if self.eventlog is not None:
            self.eventlog.append(kind, f"run:{run_id}", data, actor=actor)

    def create(self, runbook: str, *, trigger: str, started_by: str, params: Mapping[str, Any],
               targets: list[str], check_mode: bool = False, alert: Mapping[str, Any] | None = None,
               parent: str | None = None) -> str:
        """Record a new run (status ``pending``) and log ``run.started``; return its id.

        ``params`` must already have secrets masked.
        """
        run_id = str(uuid.uuid4())
        now = self.clock.time()
        with self.engine.begin() as conn:
            conn.execute(insert(runs).values(
                id=run_id, runbook=runbook, status="pending", trigger=trigger,
                started_by=started_by, params=json.dumps(dict(params), default=str),
                targets=json.dumps(list(targets)), check_mode=check_mode, created_at=now,
                summary="", alert=json.dumps(dict(alert), default=str) if alert else None,
                parent=parent, owner_host=self.owner.host, owner_pid=self.owner.pid,
                owner_started=self.owner.started, heartbeat_at=now))
        self._start_heartbeat()
        self._log("run.started", run_id, {"runbook": runbook, "trigger": trigger,
                                          "params": dict(params), "targets": list(targets),
                                          "check_mode": check_mode, "parent": parent},
                  actor=started_by)
        self._waiters.wake(run_id)
        return run_id

    def set_status(self, run_id: str, status: str, *, summary: str | None = None) -> None:
        """Move a run to ``status``; a final status stamps ``finished_at`` and logs ``run.finished``.

        A run already final (say, cancelled from another process) keeps its status.
        """
        now = self.clock.time()
        values: dict[str, Any] = {"status": status}
        if summary is not None:
            values["summary"] = summary
        with self.engine.begin() as conn:
            row = conn.execute(select(runs.c.status, runs.c.started_at, runs.c.started_by,
                                      runs.c.runbook).where(runs.c.id == run_id)).first()
            if row is None:
                raise NotFoundError(f"no run {run_id}")
            if row.status in FINAL:
                if summary is not None and status in FINAL:
                    conn.execute(update(runs).where(runs.c.id == run_id).values(summary=summary))
                return
            if status == "running" and row.started_at is None:
                values["started_at"] = now
            if status in FINAL:
                values["finished_at"] = now
                if row.started_at is None:
                    values["started_at"] = now
            conn.execute(update(runs).where(runs.c.id == run_id).values(**values))
        if status in FINAL:
            self._log("run.finished", run_id, {"runbook": row.runbook, "status": status,
                                               "summary": summary or ""}, actor=row.started_by)
        self._waiters.wake(run_id)

    def add_step(self, run_id: str, *, phase: str, step: str, host: str, status: str = "running",
                 command: str = "", detail: str = "") -> int:
        """Record a step starting on a host; return the row id for :meth:`finish_step`."""
        now = self.clock.time()
        with self._lock, self.engine.begin() as conn:
            last = conn.execute(select(run_steps.c.seq).where(run_steps.c.run_id == run_id)
                                .order_by(run_steps.c.seq.desc()).limit(1)).scalar()
            seq = (last or 0) + 1
            result = conn.execute(insert(run_steps).values(
                run_id=run_id, seq=seq, phase=phase, step=step, host=host, status=status,
                command=command, stdout="", stderr="", changed=False, started_at=now,
                finished_at=now if status not in ("running", "awaiting_approval") else None,
                detail=detail))
            key = result.inserted_primary_key
            assert key is not None
            step_id = int(key[0])
        self._waiters.wake(run_id)
        return step_id

    def finish_step(self, step_id: int, *, status: str, exit_code: int | None = None,
                    stdout: str = "", stderr: str = "", changed: bool = False,
                    detail: str | None = None, command: str | None = None) -> None:
        """Record a step's outcome (output capped to ``output_cap``)."""
        values: dict[str, Any] = {"status": status, "exit_code": exit_code,
                                  "stdout": cap_output(stdout, self.output_cap),
                                  "stderr": cap_output(stderr, self.output_cap),
                                  "changed": changed, "finished_at": self.clock.time()}
        if detail is not None:
            values["detail"] = cap_output(detail, self.output_cap)
        if command is not None:
            values["command"] = command
        with self.engine.begin() as conn:
            conn.execute(update(run_steps).where(run_steps.c.id == step_id).values(**values))
            run_id = conn.execute(select(run_steps.c.run_id).where(run_steps.c.id == step_id)).scalar()
        if run_id:
            self._waiters.wake(run_id)

    def close_open_steps(self, run_id: str, status: str) -> None:
        """Give every step row still running (or awaiting approval) of a run ``status``."""
        with self.engine.begin() as conn:
            conn.execute(update(run_steps).where(
                run_steps.c.run_id == run_id,
                run_steps.c.status.in_(("running", "awaiting_approval"))).values(
                status=status, finished_at=self.clock.time()))
        self._waiters.wake(run_id)

    def record_host(self, run_id: str, host: str, status: str, detail: str = "") -> None:
        """Record a host's outcome in this run (a ``result`` row)."""
        self.add_step(run_id, phase="result", step="(host)", host=host, status=status, detail=detail)

    # ------------------------------------------------------------ reading

    def _resolve(self, conn: Any, run_id: str) -> Any:
        # ids are lowercase UUIDs; a prefix typed in capitals finds them on every database
        # (SQLite's LIKE ignores case, PostgreSQL's does not)
        run_id = run_id.strip().lower()
        row = conn.execute(select(runs).where(runs.c.id == run_id)).first()
        if row is not None:
            return row
        if len(run_id) >= 4:
            rows = conn.execute(select(runs).where(runs.c.id.startswith(run_id, autoescape=True))
                                .limit(2)).all()
            if len(rows) == 1:
                return rows[0]
            if len(rows) > 1:
                raise InputError(f"run id {run_id!r} is ambiguous; give more of it")
        raise NotFoundError(f"no run {run_id!r}", hint="list runs with `watchkeeper runs`")

    @staticmethod
    def _record(row: Any, steps: list[StepRecord] | None = None) -> RunRecord:
        return RunRecord(id=row.id, runbook=row.runbook, status=row.status, trigger=row.trigger,
                         started_by=row.started_by, params=json.loads(row.params),
                         targets=json.loads(row.targets), check_mode=bool(row.check_mode),
                         created_at=row.created_at, started_at=row.started_at,
                         finished_at=row.finished_at, summary=row.summary or "",
                         alert=json.loads(row.alert) if row.alert else None, parent=row.parent,
                         steps=steps or [], owner=None if row.owner_host is None else {
                             "host": row.owner_host, "pid": row.owner_pid,
                             "started": row.owner_started, "heartbeat_at": row.heartbeat_at})

    @staticmethod
    def _step(r: Any) -> StepRecord:
        return StepRecord(id=r.id, run_id=r.run_id, seq=r.seq, phase=r.phase, step=r.step,
                          host=r.host, status=r.status, command=r.command or "",
                          exit_code=r.exit_code, stdout=r.stdout or "", stderr=r.stderr or "",
                          changed=bool(r.changed), started_at=r.started_at,
                          finished_at=r.finished_at, detail=r.detail or "")

    def get(self, run_id: str) -> RunRecord:
        """A run with all its steps; ``run_id`` may be a unique prefix (>= 4 characters).

        Raises NotFoundError, or InputError for an ambiguous prefix.
        """
        with self.engine.connect() as conn:
            row = self._resolve(conn, run_id)
            steps = conn.execute(select(run_steps).where(run_steps.c.run_id == row.id)
                                 .order_by(run_steps.c.seq)).all()
        return self._record(row, [self._step(s) for s in steps])

    def list(self, *, limit: int = 50, status: str | None = None, runbook: str | None = None,
             parent: str | None = None, started_by: str | None = None) -> list[RunRecord]:
        """The newest runs first, without their steps."""
        q = select(runs)
        if started_by:
            q = q.where(runs.c.started_by == started_by)
        if status:
            q = q.where(runs.c.status == status)
        if runbook:
            q = q.where(runs.c.runbook == runbook)
        if parent:
            q = q.where(runs.c.parent == parent)
        q = q.order_by(runs.c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [self._record(r) for r in conn.execute(q).all()]

    def status(self, run_id: str) -> str:
        with self.engine.connect() as conn:
            value = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar()
        if value is None:
            raise NotFoundError(f"no run {run_id!r}")
        return str(value)

    # ------------------------------------------------------------ control

    def on_cancel(self, run_id: str, hook: Callable[[], None] | None) -> None:
        """Register (or, with None, drop) what cancels a run executing in this process."""
        if hook is None:
            self._cancel_hooks.pop(run_id, None)
        else:
            self._cancel_hooks[run_id] = hook

    def cancel(self, run_id: str, *, by: str) -> RunRecord:
        """Stop a run: status ``cancelled`` now; its engine stops at once (same process) or
        within ``poll_interval`` (another process). Raises InputError if it already finished."""
        rec = self.get(run_id)
        if rec.finished:
            raise InputError(f"run {rec.id} already finished ({rec.status}); nothing to cancel")
        now = self.clock.time()
        with self.engine.begin() as conn:
            conn.execute(update(runs).where(runs.c.id == rec.id).values(
                status="cancelled", finished_at=now, summary=f"cancelled by {by}",
                started_at=rec.started_at if rec.started_at is not None else now))
        self._log("run.cancelled", rec.id, {"runbook": rec.runbook}, actor=by)
        self._log("run.finished", rec.id, {"runbook": rec.runbook, "status": "cancelled",
                                           "summary": f"cancelled by {by}"}, actor=rec.started_by)
        hook = self._cancel_hooks.get(rec.id)
        if hook is not None:
            hook()
        self._waiters.wake(rec.id)
        return self.get(rec.id)

    def mark_interrupted(self) -> builtins.list[str]:
        """At start-up: a run still pending/running/awaiting approval whose owner is gone
        (:func:`~watchkeeper.automation.run_owner.owner_alive`) was cut off by a restart or
        a crash. Mark it (and its unfinished steps) ``interrupted``; return the run ids.
        Runs whose owner still lives (a ``watchkeeper run`` beside this process) are left
        to it."""
        now = self.clock.time()
        with self.engine.begin() as conn:
            active = conn.execute(select(runs.c.id, runs.c.runbook, runs.c.started_by,
                                         runs.c.owner_host, runs.c.owner_pid,
                                         runs.c.owner_started, runs.c.heartbeat_at)
                                  .where(runs.c.status.in_(ACTIVE))).all()
            rows = [r for r in active if not owner_alive(
                None if r.owner_host is None else RunOwner(r.owner_host, int(r.owner_pid or 0),
                                                           float(r.owner_started or 0.0)),
                r.heartbeat_at, now=now, stale_after=self.stale_after,
                this_host=self.owner.host)]
            for r in rows:
                conn.execute(update(runs).where(runs.c.id == r.id).values(
                    status="interrupted", finished_at=now,
                    summary="interrupted: watchkeeper stopped while the run was in progress"))
                conn.execute(update(run_steps).where(
                    run_steps.c.run_id == r.id,
                    run_steps.c.status.in_(("running", "awaiting_approval"))).values(
                    status="interrupted", finished_at=now))
        for r in rows:
            self._log("run.interrupted", r.id, {"runbook": r.runbook})
        return [r.id for r in rows]

    # ------------------------------------------------------------ heartbeat

    def _start_heartbeat(self) -> None:
        """Make sure the heartbeat thread runs (a run of ours was just created)."""
        with self._beat_lock:
            self._beat_generation += 1
            if self._beat_thread is not None or self._beat_stop.is_set():
                return
            self._beat_thread = threading.Thread(target=self._heartbeat_loop, daemon=True,
                                                 name="watchkeeper-run-heartbeat")
            self._beat_thread.start()

    def heartbeat(self) -> int:
        """Refresh the heartbeat of this owner's active runs now; how many there are."""
        o = self.owner
        with self.engine.begin() as conn:
            result = conn.execute(update(runs).where(
                runs.c.owner_host == o.host, runs.c.owner_pid == o.pid,
                runs.c.owner_started == o.started, runs.c.status.in_(ACTIVE))
                .values(heartbeat_at=self.clock.time()))
        return int(result.rowcount or 0)

    def _heartbeat_loop(self) -> None:
        # a thread, not a task: the store is used from sync code, asyncio code and several
        # event loops; it ends by itself once none of our runs is active (or on close())
        while not self._beat_stop.wait(self.heartbeat_interval):
            with self._beat_lock:
                generation = self._beat_generation
            try:
                active = self.heartbeat()
            except Exception:  # the database is away for a moment: try again next time
                log.warning("cannot refresh the runs' heartbeat", exc_info=True)
                continue
            with self._beat_lock:
                if active == 0 and generation == self._beat_generation:
                    self._beat_thread = None
                    return
        with self._beat_lock:
            self._beat_thread = None

    def close(self) -> None:
        """Stop the heartbeat thread (the process is stopping)."""
        self._beat_stop.set()
        with self._beat_lock:
            thread = self._beat_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)

    # ------------------------------------------------------------ approvals

    def request_approval(self, run_id: str, step: str, *, phase: str = "steps",
                         role: str | None, message: str, timeout: float) -> int:
        """Record an approval wait (host ``*``) and put the run in ``awaiting_approval``."""
        detail = json.dumps({"role": role, "message": message, "timeout": timeout})
        step_id = self.add_step(run_id, phase=phase, step=step, host="*",
                                status="awaiting_approval", detail=detail)
        self.set_status(run_id, "awaiting_approval")
        self._log("run.approval_requested", run_id, {"step": step, "role": role,
                                                     "message": message, "timeout": timeout})
        return step_id

    def _pending_approval(self, run_id: str) -> tuple[RunRecord, StepRecord]:
        rec = self.get(run_id)
        waiting = [s for s in rec.steps if s.status == "awaiting_approval"]
        if not waiting:
            raise InputError(f"run {rec.id} ({rec.runbook}, {rec.status}) is not waiting for "
                             "an approval")
        return rec, waiting[-1]

    def _decide(self, run_id: str, decision: str, by: str, comment: str,
                roles: set[str] | None) -> RunRecord:
        rec, step = self._pending_approval(run_id)
        info = json.loads(step.detail or "{}")
        role = info.get("role")
        # roles come from the decider's API token (watchkeeper.auth); "*" is every role
        if role and roles is not None and role not in roles and "*" not in roles:
            raise ForbiddenError(f"run {rec.id}: step {step.step!r} needs the role {role!r} to "
                                 f"{'approve' if decision == 'approved' else 'reject'}; "
                                 f"{by} has {', '.join(sorted(roles)) or 'no roles'}")
        info.update({"decision": decision, "by": by, "comment": comment,
                     "at": self.clock.time()})
        with self.engine.begin() as conn:
            n = conn.execute(update(run_steps).where(
                run_steps.c.id == step.id, run_steps.c.status == "awaiting_approval").values(
                status="ok" if decision == "approved" else "rejected",
                finished_at=self.clock.time(), detail=json.dumps(info))).rowcount
        if not n:
            raise InputError(f"run {rec.id}: the approval was decided meanwhile")
        self._log("run." + decision, rec.id, {"step": step.step, "role": role,
                                               "comment": comment}, actor=by)
        self._waiters.wake(rec.id)
        return self.get(rec.id)

    def approve(self, run_id: str, *, by: str, comment: str = "",
                roles: set[str] | None = None) -> RunRecord:
        """Approve the run's pending approval step. ``roles`` are the approver's roles (those
        of their API token; ``*`` is every role); when given, they must include the step's
        role, else ForbiddenError. Raises InputError if nothing is waiting."""
        return self._decide(run_id, "approved", by, comment, roles)

    def reject(self, run_id: str, *, by: str, comment: str = "",
               roles: set[str] | None = None) -> RunRecord:
        """Reject the run's pending approval step: the run stops with status ``rejected``."""
        return self._decide(run_id, "rejected", by, comment, roles)

    async def wait_decision(self, run_id: str, step_id: int, timeout: float) -> tuple[str, dict[str, Any]]:
        """Wait for the approval row ``step_id`` to be decided: ("approved" | "rejected" |
        "timeout" | "cancelled", detail). Timeout uses the store's clock."""
        deadline = self.clock.monotonic() + timeout
        while True:
            with self.engine.connect() as conn:
                row = conn.execute(select(run_steps.c.status, run_steps.c.detail)
                                   .where(run_steps.c.id == step_id)).first()
                run_status = conn.execute(select(runs.c.status).where(runs.c.id == run_id)).scalar()
            if row is not None and row.status != "awaiting_approval":
                info = json.loads(row.detail or "{}")
                return ("approved" if row.status == "ok" else str(row.status)), info
            if run_status in FINAL:
                return "cancelled", {}
            left = deadline - self.clock.monotonic()
            if left <= 0:
                with self.engine.begin() as conn:
                    conn.execute(update(run_steps).where(
                        run_steps.c.id == step_id,
                        run_steps.c.status == "awaiting_approval").values(
                        status="timeout", finished_at=self.clock.time()))
                self._log("run.approval_timeout", run_id, {"timeout": timeout})
                self._waiters.wake(run_id)
                return "timeout", {}
            await self.wait_change(run_id, min(left, self.poll_interval))
            await asyncio.sleep(0)

    async def wait_change(self, run_id: str, timeout: float) -> None:
        """Sleep until this process changes the run, or ``timeout`` real seconds pass (the
        poll that notices changes made by other processes)."""
        item = self._waiters.add(run_id)
        try:
            async with asyncio.timeout(max(timeout, 0.0)):
                await item[1].wait()
        except TimeoutError:
            pass
        finally:
            self._waiters.remove(run_id, item)

    # ------------------------------------------------------------ following

    async def subscribe(self, run_id: str) -> AsyncIterator[RunEvent]:
        """Follow a run: a ``run`` event for its current status, a ``step`` event for every
        step row as it appears or changes, until the run finishes (the last event is the
        final ``run`` event). Works across processes (the database is polled)."""
        rec = self.get(run_id)
        run_id = rec.id
        seen: dict[int, tuple[str, float | None]] = {}
        last_status: str | None = None
        while True:
            rec = self.get(run_id)
            for s in rec.steps:
                key = (s.status, s.finished_at)
                if seen.get(s.id) != key:
                    seen[s.id] = key
                    yield RunEvent("step", run_id, s.to_dict())
            if rec.status != last_status:
                last_status = rec.status
                yield RunEvent("run", run_id, {"status": rec.status, "summary": rec.summary,
                                               "runbook": rec.runbook, "hosts": rec.hosts})
            if rec.finished:
                return
            await self.wait_change(run_id, self.poll_interval)
