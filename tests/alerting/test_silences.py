"""Silences on a real SQLite file: create, update, expire, states, order, what they mute,
Alertmanager's validation and API shape, and persistence across a restart."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from watchkeeper.alerting.matchers import parse_matchers
from watchkeeper.alerting.silences import Silences, silence_to_api
from watchkeeper.errors import InputError, NotFoundError
from watchkeeper.eventlog import EventLog
from watchkeeper.store.engine import open_engine
from watchkeeper.testing import FakeClock

T0 = 1_700_000_000.0  # 2023-11-14T22:13:20Z
H = 3600.0


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = open_engine(None, tmp_path)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0)


@pytest.fixture
def sil(engine: Engine, clock: FakeClock) -> Silences:
    return Silences(engine, clock, eventlog=EventLog(engine, clock=clock))


def add(s: Silences, text: str, start: float = T0, end: float = T0 + H, **kw: str) -> str:
    return s.add(parse_matchers(text), starts_at=start, ends_at=end,
                 created_by=kw.get("by", "alice"), comment=kw.get("comment", "maintenance"),
                 id=kw.get("id"))


def test_add_get_and_api_shape(sil: Silences) -> None:
    sid = add(sil, 'alertname="DiskFull",instance=~"web.*"')
    assert str(uuid.UUID(sid)) == sid
    s = sil.get(sid)
    assert (s.starts_at, s.ends_at, s.created_by, s.comment) == (T0, T0 + H, "alice", "maintenance")
    assert sil.to_api(s) == {
        "id": sid,
        "status": {"state": "active"},
        "updatedAt": "2023-11-14T22:13:20.000Z",
        "matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": False, "isEqual": True},
                     {"name": "instance", "value": "web.*", "isRegex": True, "isEqual": True}],
        "startsAt": "2023-11-14T22:13:20.000Z",
        "endsAt": "2023-11-14T23:13:20.000Z",
        "createdBy": "alice",
        "comment": "maintenance",
    }
    with pytest.raises(NotFoundError, match="no silence with id 'nope'"):
        sil.get("nope")


def test_states_follow_the_clock(sil: Silences, clock: FakeClock) -> None:
    sid = add(sil, "a=b", T0 + 60, T0 + 120)
    s = sil.get(sid)
    assert [s.state(t) for t in (T0, T0 + 59.9, T0 + 60, T0 + 119.9, T0 + 120)] == [
        "pending", "pending", "active", "active", "expired"]
    assert silence_to_api(s, T0 + 200)["status"] == {"state": "expired"}


def test_start_in_the_past_becomes_now(sil: Silences) -> None:
    sid = add(sil, "a=b", T0 - 600, T0 + 60)
    assert sil.get(sid).starts_at == T0


def test_silencing_matches_active_silences_only(sil: Silences) -> None:
    web = add(sil, 'instance=~"web.*"')
    later = add(sil, "instance=web1", T0 + 60, T0 + 120)
    notdb = add(sil, 'alertname="X",team=""')  # team="" matches alerts without a team label
    assert sil.silencing({"instance": "web1"}, T0) == [web]
    assert sil.silencing({"instance": "web1"}, T0 + 60) == sorted([web, later])
    assert sil.silencing({"instance": "aweb1"}, T0) == []  # anchored regex
    assert sil.silencing({"alertname": "X"}, T0) == [notdb]
    assert sil.silencing({"alertname": "X", "team": "ops"}, T0) == []
    assert sil.silencing({"instance": "web1"}, T0 + H) == []


def test_expire_ends_a_silence_now_and_pending_ones_before_they_start(sil: Silences,
                                                                     engine: Engine) -> None:
    active = add(sil, "a=b")
    pending = add(sil, "a=c", T0 + 600, T0 + H)
    gone = sil.expire(active, T0 + 10)
    assert (gone.starts_at, gone.ends_at, gone.state(T0 + 10)) == (T0, T0 + 10, "expired")
    assert sil.silencing({"a": "b"}, T0 + 10) == []
    gone = sil.expire(pending, T0 + 10)
    assert (gone.starts_at, gone.ends_at) == (T0 + 10, T0 + 10)
    with pytest.raises(InputError, match=f"silence {active} already expired"):
        sil.expire(active, T0 + 20)
    with pytest.raises(NotFoundError):
        sil.expire("nope", T0)
    log = EventLog(engine)
    assert [e.kind for e in log.list(kind="silence.")] == ["silence.created", "silence.created",
                                                          "silence.expired", "silence.expired"]
    assert log.list(kind="silence.created")[0].actor == "alice"


def test_list_order_and_state_filter(sil: Silences, clock: FakeClock) -> None:
    a_late = add(sil, "x=1", T0, T0 + 3 * H)
    a_soon = add(sil, "x=2", T0, T0 + H)
    p_late = add(sil, "x=3", T0 + 2 * H, T0 + 4 * H)
    p_soon = add(sil, "x=4", T0 + H, T0 + 4 * H)
    e_old = add(sil, "x=5", T0, T0 + 60)
    e_new = add(sil, "x=6", T0, T0 + 120)
    clock.advance(600)
    assert [s.id for s in sil.list()] == [a_soon, a_late, p_soon, p_late, e_new, e_old]
    assert [s.id for s in sil.list(state="pending")] == [p_soon, p_late]
    assert [s.id for s in sil.list(state="expired")] == [e_new, e_old]
    assert [s.id for s in sil.list(state="active", matching={"x": "1"})] == [a_late]


def test_update_in_place_when_only_end_or_comment_change(sil: Silences, clock: FakeClock) -> None:
    sid = add(sil, "a=b", T0, T0 + H)
    clock.advance(60)
    same = add(sil, "a=b", T0, T0 + 2 * H, id=sid, comment="longer", by="bob")
    assert same == sid
    s = sil.get(sid)
    assert (s.ends_at, s.comment, s.created_by, s.updated_at) == (T0 + 2 * H, "longer", "bob",
                                                                  T0 + 60)


def test_changing_matchers_replaces_the_silence(sil: Silences, clock: FakeClock) -> None:
    sid = add(sil, "a=b")
    clock.advance(60)
    new = add(sil, "a=c", T0, T0 + H, id=sid)
    assert new != sid
    assert sil.get(sid).state(T0 + 60) == "expired"
    assert sil.get(new).starts_at == T0 + 60
    # moving the start of an active silence also replaces it
    newer = add(sil, "a=c", T0 + 30, T0 + H, id=new)
    assert newer != new


def test_pending_silence_may_move_its_start_in_place(sil: Silences) -> None:
    sid = add(sil, "a=b", T0 + 600, T0 + H)
    assert add(sil, "a=b", T0 + 1200, T0 + H, id=sid) == sid
    assert sil.get(sid).starts_at == T0 + 1200


def test_updating_an_unknown_id_is_not_found(sil: Silences) -> None:
    with pytest.raises(NotFoundError):
        add(sil, "a=b", id="0000")


@pytest.mark.parametrize(("text", "start", "end", "kw", "message"), [
    ("", T0, T0 + H, {}, "a silence needs at least one matcher"),
    ('a=""', T0, T0 + H, {}, "at least one matcher must not match the empty string"),
    ('a=~".*",b=~"x|"', T0, T0 + H, {}, "at least one matcher must not match the empty string"),
    ("a=b", T0 + H, T0, {}, "a silence cannot end before it starts"),
    ("a=b", T0 - H, T0 - 1, {}, "a silence cannot end in the past"),
    ("a=b", T0, T0 + H, {"by": " "}, "a silence needs an author"),
    ("a=b", T0, T0 + H, {"comment": ""}, "a silence needs a comment"),
])
def test_validation(sil: Silences, text: str, start: float, end: float, kw: dict[str, str],
                    message: str) -> None:
    with pytest.raises(InputError) as info:
        add(sil, text, start, end, **kw)
    assert info.value.message.startswith(message)


def test_negative_matchers_alone_are_allowed_as_in_alertmanager(sil: Silences) -> None:
    # Alertmanager counts only = and =~ as "matching the empty string"
    sid = add(sil, 'team!="ops"')
    assert sil.silencing({"alertname": "X"}, T0) == [sid]


def test_silences_survive_a_restart(engine: Engine, clock: FakeClock) -> None:
    first = Silences(engine, clock)
    live = add(first, 'instance=~"web.*"')
    old = add(first, "a=b", T0, T0 + 60)
    clock.advance(120)
    second = Silences(engine, clock)
    assert second.silencing({"instance": "web3"}, clock.time()) == [live]
    assert [s.id for s in second.list()] == [live, old]
    assert second.get(live).matchers == first.get(live).matchers


def test_gc_and_purge(sil: Silences, clock: FakeClock) -> None:
    keep = add(sil, "a=b", T0, T0 + H)
    old = add(sil, "a=c", T0, T0 + 60)
    sil.gc(T0 + 60)
    assert [s.id for s in sil.list(state="active")] == [keep]
    assert sil.purge(T0 + 61) == 1
    with pytest.raises(NotFoundError):
        sil.get(old)
    assert sil.get(keep).id == keep
