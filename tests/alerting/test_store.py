"""The alert state machine on a real SQLite file: Prometheus's rule-alert lifecycle (for,
keep_firing_for, re-activation), persistence across a restart, history and event-log entries,
acks, and Alertmanager's v2 intake semantics."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select

from watchkeeper.alerting.model import AlertState, fingerprint
from watchkeeper.alerting.store import ActiveAlert, AlertStore, parse_am_time
from watchkeeper.errors import InputError, NotFoundError
from watchkeeper.eventlog import EventLog
from watchkeeper.store.engine import open_engine
from watchkeeper.store.models import alert_history, alerts
from watchkeeper.testing import FakeClock

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
RULE = "host/HighLoad"
LBL = {"alertname": "HighLoad", "instance": "web1", "severity": "warning"}
LBL2 = {"alertname": "HighLoad", "instance": "web2", "severity": "warning"}


@dataclass
class Env:
    engine: Engine
    clock: FakeClock
    eventlog: EventLog
    data: Path
    changes: list[int] = field(default_factory=list)

    def store(self) -> AlertStore:
        return AlertStore(self.engine, eventlog=self.eventlog, clock=self.clock,
                          on_change=lambda: self.changes.append(1))

    def events(self, kind: str = "alert.") -> list[tuple[str, str]]:
        return [(e.kind, e.subject) for e in self.eventlog.list(kind=kind, limit=1000)]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[Env]:
    engine = open_engine(None, tmp_path)
    clock = FakeClock(T0)
    try:
        yield Env(engine, clock, EventLog(engine, clock=clock), tmp_path)
    finally:
        engine.dispose()


def act(labels: dict[str, str], value: float = 1.0, **ann: str) -> ActiveAlert:
    return ActiveAlert(labels, ann or {"summary": f"load {value}"}, value)


def states(store: AlertStore) -> dict[str, str]:
    return {a.labels["instance"]: a.state.value for a in store.current()}


def history_states(store: AlertStore, labels: dict[str, str]) -> list[str]:
    return [h["state"] for h in reversed(store.history(fingerprint(labels)))]


# -- the rule lifecycle ------------------------------------------------------------------------
def test_pending_until_for_has_passed_then_firing(env: Env) -> None:
    store = env.store()
    out = store.sync_rule(RULE, [act(LBL)], T0, for_=300)
    assert [(a.state, a.active_at, a.fired_at) for a in out] == [(AlertState.PENDING, T0, None)]
    out = store.sync_rule(RULE, [act(LBL)], T0 + 299.9, for_=300)
    assert out[0].state == AlertState.PENDING
    assert env.changes == []  # routing does not see pending alerts: nothing to wake it for
    out = store.sync_rule(RULE, [act(LBL)], T0 + 300, for_=300)
    assert [(a.state, a.active_at, a.fired_at) for a in out] == [(AlertState.FIRING, T0, T0 + 300)]
    assert env.changes == [1]
    assert history_states(store, LBL) == ["pending", "firing"]
    assert env.events() == [("alert.firing", f"alert/{fingerprint(LBL)}")]
    row = store.get(fingerprint(LBL))
    assert (row.rule, row.source, row.labels) == (RULE, "rule", LBL)


def test_for_zero_fires_at_once(env: Env) -> None:
    store = env.store()
    out = store.sync_rule(RULE, [act(LBL)], T0, for_=0)
    assert [(a.state, a.fired_at) for a in out] == [(AlertState.FIRING, T0)]
    assert history_states(store, LBL) == ["firing"]


def test_firing_alert_resolves_when_no_longer_active(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL), act(LBL2)], T0, for_=0)
    out = store.sync_rule(RULE, [act(LBL2)], T0 + 60, for_=0)
    assert [a.labels["instance"] for a in out] == ["web2"]
    gone = store.get(fingerprint(LBL))
    assert (gone.state, gone.resolved_at) == (AlertState.RESOLVED, T0 + 60)
    assert history_states(store, LBL) == ["firing", "resolved"]
    assert [k for k, _ in env.events()] == ["alert.firing", "alert.firing", "alert.resolved"]
    assert states(store) == {"web2": "firing"}
    assert [a.labels["instance"] for a in store.current(resolved_since=T0 + 60)] == ["web1", "web2"]
    assert [a.labels["instance"] for a in store.current(resolved_since=T0 + 61)] == ["web2"]


def test_pending_alert_that_goes_away_is_dropped_not_resolved(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL)], T0, for_=300)
    assert store.sync_rule(RULE, [], T0 + 60, for_=300) == []
    with pytest.raises(NotFoundError, match="no alert with fingerprint"):
        store.get(fingerprint(LBL))
    assert history_states(store, LBL) == ["pending", "inactive"]
    assert store.current(resolved_since=0) == []
    assert env.events() == [] and env.changes == []


def test_resolved_alert_that_comes_back_is_a_new_pending_alert(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL)], T0, for_=60)
    store.sync_rule(RULE, [act(LBL)], T0 + 60, for_=60)
    store.sync_rule(RULE, [], T0 + 120, for_=60)
    out = store.sync_rule(RULE, [act(LBL)], T0 + 180, for_=60)
    assert [(a.state, a.active_at, a.fired_at, a.resolved_at) for a in out] == [
        (AlertState.PENDING, T0 + 180, None, None)]
    out = store.sync_rule(RULE, [act(LBL)], T0 + 240, for_=60)
    assert (out[0].state, out[0].fired_at) == (AlertState.FIRING, T0 + 240)
    assert history_states(store, LBL) == ["pending", "firing", "resolved", "pending", "firing"]


def test_keep_firing_for_holds_a_firing_alert_then_resolves(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL)], T0, for_=0, keep_firing_for=120)
    out = store.sync_rule(RULE, [], T0 + 60, for_=0, keep_firing_for=120)
    assert [(a.state, a.keep_firing_since) for a in out] == [(AlertState.FIRING, T0 + 60)]
    out = store.sync_rule(RULE, [], T0 + 179, for_=0, keep_firing_for=120)
    assert [(a.state, a.keep_firing_since) for a in out] == [(AlertState.FIRING, T0 + 60)]
    # active again: the keep-firing clock starts over
    out = store.sync_rule(RULE, [act(LBL)], T0 + 200, for_=0, keep_firing_for=120)
    assert [(a.state, a.keep_firing_since, a.fired_at) for a in out] == [(AlertState.FIRING, None, T0)]
    store.sync_rule(RULE, [], T0 + 260, for_=0, keep_firing_for=120)
    assert store.sync_rule(RULE, [], T0 + 379, for_=0, keep_firing_for=120)[0].state == AlertState.FIRING
    assert store.sync_rule(RULE, [], T0 + 380, for_=0, keep_firing_for=120) == []
    assert store.get(fingerprint(LBL)).resolved_at == T0 + 380
    assert history_states(store, LBL) == ["firing", "resolved"]


def test_keep_firing_for_does_not_hold_a_pending_alert(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL)], T0, for_=300, keep_firing_for=600)
    assert store.sync_rule(RULE, [], T0 + 60, for_=300, keep_firing_for=600) == []


def test_annotations_and_value_follow_each_evaluation(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL, 3.0)], T0, for_=0)
    out = store.sync_rule(RULE, [act(LBL, 4.5)], T0 + 15, for_=0)
    assert (out[0].value, out[0].annotations, out[0].last_seen) == (4.5, {"summary": "load 4.5"},
                                                                   T0 + 15)
    # persisted with the changed annotations
    assert env.store().get(fingerprint(LBL)).annotations == {"summary": "load 4.5"}
    out = store.sync_rule(RULE, [act(LBL, math.nan, summary="x")], T0 + 30, for_=0)
    assert math.isnan(out[0].value)  # NaN is kept in memory; the row stores NULL
    assert env.store().get(fingerprint(LBL)).value is None


@pytest.fixture(params=["sqlite", "postgresql"])
def any_env(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Env]:
    url = request.getfixturevalue("pg_url") if request.param == "postgresql" else None
    engine = open_engine(url, tmp_path)
    clock = FakeClock(T0)
    try:
        yield Env(engine, clock, EventLog(engine, clock=clock), tmp_path)
    finally:
        engine.dispose()


def test_many_changed_alerts_in_one_evaluation_are_all_written(any_env: Env) -> None:
    """Updates and inserts of one evaluation go to the database together (executemany):
    every row gets its own values, whether it was new, updated or neither."""
    env = any_env
    store = env.store()
    labels = [{"alertname": "HighLoad", "instance": f"web{i}"} for i in range(40)]
    store.sync_rule(RULE, [act(lb, float(i)) for i, lb in enumerate(labels[:30])], T0, for_=60)
    # 0-19 change value and annotation, 20-29 stay as they were, 30-39 are new
    now = [act(lb, 100.0 + i) for i, lb in enumerate(labels[:20])]
    now += [act(lb, float(i + 20)) for i, lb in enumerate(labels[20:30])]
    now += [act(lb, 200.0 + i) for i, lb in enumerate(labels[30:])]
    store.sync_rule(RULE, now, T0 + 60, for_=60)
    again = env.store()  # what the database holds
    got = {a.labels["instance"]: (a.state.value, a.value, a.annotations["summary"], a.active_at)
           for a in again.current()}
    want = {}
    for i in range(40):
        value = 100.0 + i if i < 20 else float(i) if i < 30 else 200.0 + i - 30
        state = "firing" if i < 20 else "pending" if i >= 30 else "firing"
        want[f"web{i}"] = (state, value, f"load {value}", T0 if i < 30 else T0 + 60)
    # 20-29 fired (a state change), so their rows were written too
    assert got == want


def test_duplicate_label_sets_count_once_and_other_owners_are_left_alone(env: Env) -> None:
    store = env.store()
    assert len(store.sync_rule(RULE, [act(LBL), act(LBL, 2.0)], T0, for_=0)) == 1
    # another rule producing the same label set does not take the alert over
    assert store.sync_rule("other/HighLoad", [act(LBL)], T0, for_=0) == []
    store.sync_rule("other/HighLoad", [], T0 + 10, for_=0)
    assert store.get(fingerprint(LBL)).state == AlertState.FIRING


def test_retire_rules_ends_alerts_of_removed_rules(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL)], T0, for_=0)
    store.sync_rule("host/Other", [act({"alertname": "Other", "instance": "x"})], T0, for_=60)
    assert store.retire_rules([RULE], T0 + 5) == 1
    assert [a.name for a in store.current()] == ["HighLoad"]


# -- persistence -------------------------------------------------------------------------------
def test_restart_continues_for_timers_and_keeps_firing_alerts_firing(env: Env) -> None:
    first = env.store()
    first.sync_rule(RULE, [act(LBL2)], T0 - 600, for_=300)
    first.sync_rule(RULE, [act(LBL), act(LBL2)], T0 - 1, for_=300)  # web1 pending, web2 fires
    assert states(first) == {"web1": "pending", "web2": "firing"}
    events_before = env.events()
    changes_before = len(env.changes)
    del first  # "the server stops"

    second = env.store()  # a new process on the same database file
    assert {a.labels["instance"]: (a.state.value, a.active_at) for a in second.current()} == {
        "web1": ("pending", T0 - 1), "web2": ("firing", T0 - 600)}
    out = second.sync_rule(RULE, [act(LBL), act(LBL2)], T0 + 200, for_=300)
    assert [a.state.value for a in out] == ["pending", "firing"]
    out = second.sync_rule(RULE, [act(LBL), act(LBL2)], T0 + 299, for_=300)
    # for counts from the first process's active_at, not from the restart
    assert [(a.state.value, a.fired_at) for a in out] == [("firing", T0 + 299), ("firing", T0 - 1)]
    # web2 was not reported as firing again
    new_events = env.events()[len(events_before):]
    assert new_events == [("alert.firing", f"alert/{fingerprint(LBL)}")]
    assert len(env.changes) == changes_before + 1


def test_restart_keeps_ack_and_keep_firing_since(env: Env) -> None:
    first = env.store()
    first.sync_rule(RULE, [act(LBL)], T0, for_=0, keep_firing_for=600)
    first.ack("HighLoad", "alice", "looking", T0 + 1)
    first.sync_rule(RULE, [], T0 + 10, for_=0, keep_firing_for=600)
    second = env.store()
    a = second.get(fingerprint(LBL))
    assert (a.acked_by, a.ack_comment, a.keep_firing_since) == ("alice", "looking", T0 + 10)
    assert second.sync_rule(RULE, [], T0 + 609, for_=0, keep_firing_for=600)[0].state == AlertState.FIRING
    assert second.sync_rule(RULE, [], T0 + 610, for_=0, keep_firing_for=600) == []


def test_an_unchanged_evaluation_writes_nothing(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL)], T0, for_=0)
    with env.engine.connect() as conn:
        before = conn.execute(select(func.count()).select_from(alert_history)).scalar_one()
    for i in range(1, 20):
        store.sync_rule(RULE, [act(LBL)], T0 + 15 * i, for_=0)
    with env.engine.connect() as conn:
        after = conn.execute(select(func.count()).select_from(alert_history)).scalar_one()
        row = conn.execute(select(alerts.c.last_seen)).scalar_one()
    assert after == before
    assert row == T0  # last_seen is written with real changes only


# -- history -----------------------------------------------------------------------------------
def test_history_newest_first_with_since_and_limit(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL)], T0, for_=10)
    store.sync_rule(RULE, [act(LBL)], T0 + 10, for_=10)
    store.sync_rule(RULE, [act(LBL2)], T0 + 20, for_=10)
    rows = store.history()
    assert [(r["state"], r["labels"]["instance"], r["ts"]) for r in rows] == [
        ("pending", "web2", T0 + 20), ("resolved", "web1", T0 + 20), ("firing", "web1", T0 + 10),
        ("pending", "web1", T0)]
    assert rows[0]["time"] == "2023-11-14T22:13:40.000Z"
    assert [r["state"] for r in store.history(since=T0 + 10)] == ["pending", "resolved", "firing"]
    assert len(store.history(limit=2)) == 2
    assert [r["state"] for r in store.history(fingerprint(LBL2))] == ["pending"]


def test_purge_resolved_keeps_active_alerts_and_history(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL), act(LBL2)], T0, for_=0)
    store.sync_rule(RULE, [act(LBL2)], T0 + 10, for_=0)
    assert store.purge_resolved(T0 + 10) == 0
    assert store.purge_resolved(T0 + 11) == 1
    with pytest.raises(NotFoundError):
        store.get(fingerprint(LBL))
    assert history_states(store, LBL) == ["firing", "resolved"]
    assert store.purge_history(T0 + 5) == 2
    assert history_states(store, LBL) == ["resolved"]


# -- acknowledgement ---------------------------------------------------------------------------
def test_ack_marks_every_firing_alert_of_a_name_and_resolve_clears_it(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL), act(LBL2)], T0, for_=0)
    store.sync_rule("host/Disk", [act({"alertname": "Disk", "instance": "web1"})], T0, for_=60)
    done = store.ack("HighLoad", "alice", "rebooting", T0 + 5)
    assert [(a.labels["instance"], a.acked_by, a.acked_at, a.ack_comment) for a in done] == [
        ("web1", "alice", T0 + 5, "rebooting"), ("web2", "alice", T0 + 5, "rebooting")]
    assert store.get(fingerprint(LBL)).acked_by == "alice"
    assert history_states(store, LBL) == ["firing", "acked"]
    assert store.history(fingerprint(LBL))[0]["detail"] == "alice: rebooting"
    acked = [e for e in env.eventlog.list(kind="alert.acked")]
    assert [(e.actor, e.data["comment"]) for e in acked] == [("alice", "rebooting")] * 2
    # a pending alert cannot be acked
    with pytest.raises(NotFoundError, match="no firing alert matches 'Disk'"):
        store.ack("Disk", "alice", "", T0 + 5)
    store.sync_rule(RULE, [act(LBL2)], T0 + 30, for_=0)
    gone = store.get(fingerprint(LBL))
    assert (gone.acked_by, gone.acked_at, gone.ack_comment) == (None, None, None)
    assert store.history(fingerprint(LBL))[0]["detail"].endswith("ack by alice cleared")
    # when it fires again it is not acked
    out = store.sync_rule(RULE, [act(LBL), act(LBL2)], T0 + 60, for_=0)
    assert [a.acked_by for a in out] == [None, "alice"]


def test_ack_by_fingerprint_or_matchers_and_unack(env: Env) -> None:
    store = env.store()
    store.sync_rule(RULE, [act(LBL), act(LBL2)], T0, for_=0)
    assert [a.labels["instance"] for a in store.ack(fingerprint(LBL2), "bob", "", T0)] == ["web2"]
    assert [a.labels["instance"] for a in store.ack('{instance=~"web1"}', "carol", "x", T0)] == ["web1"]
    assert [a.labels["instance"] for a in store.find("instance=web1")] == ["web1"]
    done = store.unack("HighLoad", "dave", T0 + 1)
    assert [a.acked_by for a in done] == [None, None]
    assert history_states(store, LBL)[-1] == "unacked"
    with pytest.raises(NotFoundError, match="no acknowledged alert matches"):
        store.unack("HighLoad", "dave", T0 + 2)
    with pytest.raises(InputError, match="needs a name"):
        store.ack("HighLoad", " ", "", T0)
    assert len(env.changes) == 4  # firing (one wake per evaluation), ack, ack, unack


# -- Alertmanager v2 intake --------------------------------------------------------------------
API = {"alertname": "Up", "job": "node"}


def test_receive_fires_and_resolves_with_alertmanager_times(env: Env) -> None:
    store = env.store()
    n = store.receive([{"labels": API, "annotations": {"summary": "down"},
                        "startsAt": "2023-11-14T22:10:00.123456789Z",
                        "generatorURL": "http://prom/graph"}], T0, resolve_timeout=300)
    assert n == 1
    a = store.get(fingerprint(API))
    assert (a.state, a.source, a.fired_at, a.ends_at, a.generator_url) == (
        AlertState.FIRING, "api", T0 - 200 + 0.123456, T0 + 300, "http://prom/graph")
    # re-sent with an endsAt in the future (as Prometheus does): still firing, end moved,
    # the earlier start kept
    store.receive([{"labels": API, "startsAt": "2023-11-14T22:12:00Z",
                    "endsAt": "2023-11-14T22:20:00Z"}], T0 + 60)
    a = store.get(fingerprint(API))
    assert (a.state, a.fired_at, a.ends_at, a.annotations) == (
        AlertState.FIRING, T0 - 200 + 0.123456, T0 + 400, {})
    # an endsAt in the past resolves it, at that time
    store.receive([{"labels": API, "endsAt": "2023-11-14T22:14:00Z"}], T0 + 90)
    a = store.get(fingerprint(API))
    assert (a.state, a.resolved_at) == (AlertState.RESOLVED, T0 + 40)
    assert history_states(store, API) == ["firing", "resolved"]
    assert [e.actor for e in env.eventlog.list(kind="alert.firing")] == ["api"]


def test_receive_without_endsat_expires_after_resolve_timeout(env: Env) -> None:
    store = env.store()
    store.receive([{"labels": API}], T0, resolve_timeout=120)
    assert store.get(fingerprint(API)).fired_at == T0  # no startsAt: now
    assert store.expire(T0 + 119) == 0
    assert store.expire(T0 + 120) == 1
    a = store.get(fingerprint(API))
    assert (a.state, a.resolved_at) == (AlertState.RESOLVED, T0 + 120)
    assert env.changes == [1, 1]
    # expiry survives a restart: the new store knows the alert's end
    store.receive([{"labels": API}], T0 + 200, resolve_timeout=60)
    assert env.store().expire(T0 + 260) == 1


def test_receive_resolved_alert_never_seen_is_ignored(env: Env) -> None:
    store = env.store()
    assert store.receive([{"labels": API, "startsAt": "2023-11-14T22:00:00Z",
                           "endsAt": "2023-11-14T22:05:00Z"}], T0) == 1
    assert store.current(resolved_since=0) == []


def test_receive_only_startsat_missing_uses_endsat(env: Env) -> None:
    store = env.store()
    store.receive([{"labels": API, "endsAt": "2023-11-14T22:30:00+01:00"}], T0 - 7200)
    a = store.get(fingerprint(API))
    assert (a.fired_at, a.ends_at) == (T0 - 2600, T0 - 2600)  # 21:30Z, still ahead of "now"


def test_receive_drops_empty_labels_and_leaves_rule_alerts_alone(env: Env) -> None:
    store = env.store()
    store.receive([{"labels": {**API, "team": ""}}], T0)
    assert store.get(fingerprint(API)).labels == API
    store.sync_rule(RULE, [act(LBL)], T0, for_=0)
    store.receive([{"labels": LBL, "endsAt": "2023-11-14T22:00:00Z"}], T0)
    assert store.get(fingerprint(LBL)).state == AlertState.FIRING


@pytest.mark.parametrize(("alert", "message"), [
    ({"labels": {}}, "alerts[1].labels: must not be empty"),
    ({"labels": {"a": ""}}, "alerts[1].labels: must not be empty"),
    ({}, "alerts[1].labels: must be an object of string values"),
    ({"labels": {"a": 1}}, "alerts[1].labels.a: must be a string"),
    ({"labels": {"1a": "x"}}, "alerts[1].labels: '1a' is not a valid label name"),
    ({"labels": API, "annotations": ["x"]}, "alerts[1].annotations: must be an object"),
    ({"labels": API, "startsAt": "yesterday"}, "alerts[1].startsAt: 'yesterday' is not an RFC 3339"),
    ({"labels": API, "startsAt": "2023-11-14T22:00:00"}, "alerts[1].startsAt: '2023-11-14T22:00:00' "
                                                         "is not an RFC 3339 time"),
    ({"labels": API, "endsAt": 5}, "alerts[1].endsAt: must be an RFC 3339 time"),
    ({"labels": API, "startsAt": "2023-11-14T22:00:00Z", "endsAt": "2023-11-14T21:00:00Z"},
     "alerts[1].endsAt: must not be before startsAt"),
    ({"labels": API, "status": "firing"}, "alerts[1].status: unknown field"),
    ("text", "alerts[1]: must be an object"),
])
def test_receive_validation_names_index_and_field(env: Env, alert: object, message: str) -> None:
    store = env.store()
    good = {"labels": {"alertname": "Good"}}
    with pytest.raises(InputError) as info:
        store.receive([good, alert, {"labels": {"alertname": "Good2"}}], T0)
    assert info.value.message.startswith(message), info.value.message
    assert info.value.hint == "2 of 3 alerts were valid and accepted"
    # Alertmanager's best effort: the valid alerts were taken all the same
    assert sorted(a.name for a in store.current()) == ["Good", "Good2"]


def test_receive_lists_every_invalid_alert(env: Env) -> None:
    with pytest.raises(InputError) as info:
        env.store().receive([{"labels": {}}, {"labels": API}, {"labels": {}}], T0)
    assert info.value.message == ("alerts[0].labels: must not be empty; "
                                  "alerts[2].labels: must not be empty")


def test_receive_body_must_be_a_list(env: Env) -> None:
    with pytest.raises(InputError, match="must be a JSON array"):
        env.store().receive({"labels": API}, T0)


@pytest.mark.parametrize(("text", "expected"), [
    ("2023-11-14T22:13:20Z", T0),
    ("2023-11-14T22:13:20.5Z", T0 + 0.5),
    ("2023-11-14T23:13:20+01:00", T0),
    ("2023-11-14T22:13:20.000000001Z", T0),
    ("0001-01-01T00:00:00Z", None),
    ("", None),
    (None, None),
])
def test_parse_am_time(text: str | None, expected: float | None) -> None:
    assert parse_am_time(text, "x") == expected
