"""The hash-chained event log on a real, migrated SQLite file, tampered with through sqlite3."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from watchkeeper.eventlog import GENESIS, EventLog, Problem
from watchkeeper.store.engine import open_engine
from watchkeeper.testing import FakeClock

WATCHKEEPER = Path(sys.executable).parent / "watchkeeper"


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    eng = open_engine(None, tmp_path)
    yield eng
    eng.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def log(engine: Engine, tmp_path: Path, clock: FakeClock) -> EventLog:
    return EventLog(engine, anchor=tmp_path / "eventlog.head", clock=clock)


def fill(log: EventLog, clock: FakeClock, n: int = 5) -> None:
    for i in range(1, n + 1):
        log.append(
            "check.state", f"web{i}", {"from": "OK", "to": "CRITICAL", "n": i}, actor="monitor"
        )
        clock.advance(60.0)


def sql(db_dir: Path, statement: str, *params: object) -> None:
    """Change the database behind watchkeeper's back, as someone with file access could."""
    conn = sqlite3.connect(db_dir / "watchkeeper.db")
    try:
        with conn:
            conn.execute(statement, params)
    finally:
        conn.close()


def test_append_returns_the_chained_event(log: EventLog, clock: FakeClock) -> None:
    first = log.append("config.reload", "watchkeeper.yaml", {"files": 2}, actor="admin")
    clock.advance(5.0)
    second = log.append("check.state", "web", {"to": "CRITICAL"})
    assert (first.seq, first.ts, first.kind, first.actor, first.subject, first.data) == (
        1,
        1_700_000_000.0,
        "config.reload",
        "admin",
        "watchkeeper.yaml",
        {"files": 2},
    )
    assert first.prev_hash == GENESIS
    assert second.seq == 2
    assert second.ts == 1_700_000_005.0
    assert second.actor == "watchkeeper"  # the default actor
    assert second.prev_hash == first.hash
    assert len({first.hash, second.hash}) == 2
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in (first.hash, second.hash))
    assert log.count() == 2


def test_data_is_stored_as_canonical_json(log: EventLog) -> None:
    ev = log.append("note", "x", {"b": 1, "a": [1, 2], "when": Path("/p")})
    assert ev.data == {"a": [1, 2], "b": 1, "when": "/p"}  # non-JSON values become text
    assert log.list()[0].data == ev.data


def test_list_is_oldest_first_and_limited_to_the_newest(log: EventLog, clock: FakeClock) -> None:
    fill(log, clock, 5)
    assert [e.seq for e in log.list()] == [1, 2, 3, 4, 5]
    assert [e.seq for e in log.list(limit=2)] == [4, 5]
    assert log.list()[0].to_dict() == {
        "seq": 1,
        "ts": 1_700_000_000.0,
        "kind": "check.state",
        "actor": "monitor",
        "subject": "web1",
        "data": {"from": "OK", "n": 1, "to": "CRITICAL"},
        "hash": log.list()[0].hash,
    }


def test_list_filters(log: EventLog, clock: FakeClock) -> None:
    log.append("check.state", "web", {})
    clock.advance(10)
    log.append("check.flapping", "web", {})
    clock.advance(10)
    log.append("config.reload", "watchkeeper.yaml", {})
    clock.advance(10)
    log.append("check.state", "db", {})
    assert [e.seq for e in log.list(kind="check")] == [1, 2, 4]
    assert [e.seq for e in log.list(kind="check.state")] == [1, 4]
    assert [e.seq for e in log.list(kind="config")] == [3]
    assert [e.seq for e in log.list(subject="web")] == [1, 2]
    assert [e.seq for e in log.list(since=1_700_000_010.0)] == [2, 3, 4]
    assert [e.seq for e in log.list(kind="check", subject="db")] == [4]
    assert log.list(kind="nothing") == []


def test_kind_filter_is_a_literal_prefix(log: EventLog) -> None:
    """SQL LIKE wildcards in the prefix match only themselves."""
    log.append("run_step.done", "a", {})
    log.append("runXstep.done", "b", {})
    log.append("100%.done", "c", {})
    log.append("1000.done", "d", {})
    assert [e.subject for e in log.list(kind="run_step")] == ["a"]
    assert [e.subject for e in log.list(kind="100%")] == ["c"]


def test_verify_an_intact_log(log: EventLog, clock: FakeClock, tmp_path: Path) -> None:
    assert log.verify() == []  # empty log
    fill(log, clock, 5)
    assert log.verify() == []
    seq, digest = (tmp_path / "eventlog.head").read_text().split()
    assert (int(seq), digest) == (5, log.list()[-1].hash)


def test_edited_data_is_found_and_named(log: EventLog, clock: FakeClock, tmp_path: Path) -> None:
    fill(log, clock, 5)
    sql(
        tmp_path,
        "UPDATE events SET data = ? WHERE seq = 3",
        json.dumps({"from": "OK", "n": 3, "to": "OK"}, separators=(",", ":")),
    )
    assert log.verify() == [Problem(3, "was edited after it was written (hash mismatch)")]
    assert [str(p) for p in log.verify()] == [
        "entry 3: was edited after it was written (hash mismatch)"
    ]


@pytest.mark.parametrize(
    ("column", "value"), [("ts", 1.0), ("kind", "note"), ("actor", "root"), ("subject", "db1")]
)
def test_any_edited_column_is_found(
    log: EventLog, clock: FakeClock, tmp_path: Path, column: str, value: object
) -> None:
    fill(log, clock, 3)
    sql(tmp_path, f"UPDATE events SET {column} = ? WHERE seq = 2", value)
    assert log.verify() == [Problem(2, "was edited after it was written (hash mismatch)")]


def test_edit_with_recomputed_hash_breaks_the_next_link(
    log: EventLog, clock: FakeClock, tmp_path: Path
) -> None:
    """Re-hashing the edited entry does not help: its successor still names the old hash."""
    fill(log, clock, 5)
    from watchkeeper.eventlog import _digest

    row = log.list()[2]
    data = json.dumps({"from": "OK", "n": 3, "to": "OK"}, separators=(",", ":"), sort_keys=True)
    forged = _digest(row.prev_hash, 3, row.ts, row.kind, row.actor, row.subject, data)
    sql(tmp_path, "UPDATE events SET data = ?, hash = ? WHERE seq = 3", data, forged)
    assert log.verify() == [
        Problem(4, "does not follow its predecessor (an earlier entry was edited or deleted)")
    ]


def test_deleted_middle_entry_is_found(log: EventLog, clock: FakeClock, tmp_path: Path) -> None:
    fill(log, clock, 5)
    sql(tmp_path, "DELETE FROM events WHERE seq IN (2, 3)")
    assert [str(p) for p in log.verify()] == [
        "entry 2: missing (entries 2..3 were deleted)",
        "entry 4: does not follow its predecessor (an earlier entry was edited or deleted)",
    ]


def test_deleted_last_entries_are_found_via_the_anchor(
    log: EventLog, clock: FakeClock, tmp_path: Path
) -> None:
    fill(log, clock, 5)
    sql(tmp_path, "DELETE FROM events WHERE seq >= 4")
    assert [str(p) for p in log.verify()] == [
        "entry 4: missing (entries 4..5 were deleted from the end)"
    ]
    # without the anchor the shorter chain would look intact
    assert EventLog(log.engine, anchor=None).verify() == []


def test_every_entry_deleted_is_found(log: EventLog, clock: FakeClock, tmp_path: Path) -> None:
    fill(log, clock, 3)
    sql(tmp_path, "DELETE FROM events")
    assert [str(p) for p in log.verify()] == [
        "entry 1: missing (entries 1..3 were deleted from the end)"
    ]


def test_replaced_last_entry_is_found_via_the_anchor(
    log: EventLog, clock: FakeClock, tmp_path: Path
) -> None:
    fill(log, clock, 3)
    sql(tmp_path, "DELETE FROM events WHERE seq = 3")
    # a fresh log without the anchor appends a valid-looking entry 3
    EventLog(log.engine, anchor=None, clock=clock).append("note", "all fine", {})
    assert [str(p) for p in log.verify()] == [
        "entry 3: does not match the anchor (it was replaced)"
    ]


def test_deleted_anchor_is_reported(log: EventLog, clock: FakeClock, tmp_path: Path) -> None:
    """Removing the anchor as well as the tail must not make the log look intact."""
    fill(log, clock, 3)
    sql(tmp_path, "DELETE FROM events WHERE seq = 3")
    (tmp_path / "eventlog.head").unlink()
    assert [str(p) for p in log.verify()] == [
        (
            f"entry 0: anchor file {tmp_path / 'eventlog.head'} is missing; entries at the end "
            "may have been deleted"
        )
    ]


def test_unreadable_anchor_is_reported(log: EventLog, clock: FakeClock, tmp_path: Path) -> None:
    fill(log, clock, 2)
    (tmp_path / "eventlog.head").write_text("garbage\n")
    assert [str(p) for p in log.verify()] == [
        f"entry 0: anchor file {tmp_path / 'eventlog.head'} is unreadable"
    ]


def test_a_reopened_log_continues_the_chain(tmp_path: Path, clock: FakeClock) -> None:
    eng = open_engine(None, tmp_path)
    try:
        fill(EventLog(eng, anchor=tmp_path / "eventlog.head", clock=clock), clock, 3)
    finally:
        eng.dispose()
    eng = open_engine(None, tmp_path)
    try:
        log = EventLog(eng, anchor=tmp_path / "eventlog.head", clock=clock)
        last = log.list()[-1]
        ev = log.append("config.reload", "watchkeeper.yaml", {})
        assert ev.seq == 4
        assert ev.prev_hash == last.hash
        assert log.verify() == []
        assert (tmp_path / "eventlog.head").read_text() == f"4 {ev.hash}\n"
    finally:
        eng.dispose()


# -- the command line ---------------------------------------------------------------------


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WATCHKEEPER_")}
    return subprocess.run(
        [str(WATCHKEEPER), *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.fixture
def filled_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    eng = open_engine(None, data)
    try:
        clock = FakeClock()
        fill(EventLog(eng, anchor=data / "eventlog.head", clock=clock), clock, 3)
    finally:
        eng.dispose()
    return data


def test_cli_log_lists_entries(filled_dir: Path, tmp_path: Path) -> None:
    proc = run_cli("log", "--data-dir", str(filled_dir), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 3
    assert lines[0].split() == [
        "1",
        "2023-11-14",
        "22:13:20",
        "check.state",
        "web1",
        "monitor",
        "from=OK",
        "n=1",
        "to=CRITICAL",
    ]
    assert lines[2].split()[:5] == ["3", "2023-11-14", "22:15:20", "check.state", "web3"]


def test_cli_log_json_and_filters(filled_dir: Path, tmp_path: Path) -> None:
    proc = run_cli("log", "--data-dir", str(filled_dir), "--json", "--limit", "2", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    entries = json.loads(proc.stdout)
    assert [e["seq"] for e in entries] == [2, 3]
    assert entries[0]["subject"] == "web2"
    proc = run_cli("log", "--data-dir", str(filled_dir), "--kind", "config", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "")


def test_cli_log_verify_intact(filled_dir: Path, tmp_path: Path) -> None:
    proc = run_cli("log", "verify", "--data-dir", str(filled_dir), cwd=tmp_path)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "event log intact: 3 entries\n", "")
    # the option may also be given to the group
    proc = run_cli("log", "--data-dir", str(filled_dir), "verify", cwd=tmp_path)
    assert (proc.returncode, proc.stdout) == (0, "event log intact: 3 entries\n")


def test_cli_log_verify_tampered(filled_dir: Path, tmp_path: Path) -> None:
    sql(filled_dir, "UPDATE events SET actor = 'nobody' WHERE seq = 2")
    proc = run_cli("log", "verify", "--data-dir", str(filled_dir), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == (
        "entry 2: was edited after it was written (hash mismatch)\n"
        "event log is NOT intact: 1 problem(s)\n"
    )
