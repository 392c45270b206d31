"""Routing and grouping into the outbox, with Alertmanager's timing, on a fake clock and real SQLite.

The alerts come from the real AlertStore, muting from real Silences and
inhibition; the dispatcher writes outbox rows, which these tests read back.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from watchkeeper.alerting.config import AlertingConfig
from watchkeeper.alerting.dispatch import Dispatcher, LogEntry, needs_update
from watchkeeper.alerting.inhibit import Inhibitor
from watchkeeper.alerting.matchers import parse_matchers
from watchkeeper.alerting.mute import AlertMuter
from watchkeeper.alerting.outbox import Outbox, OutboxItem
from watchkeeper.alerting.silences import Silences
from watchkeeper.alerting.store import ActiveAlert, AlertStore
from watchkeeper.alerting.timeintervals import TimeIntervals
from watchkeeper.store.engine import open_engine
from watchkeeper.testing import FakeClock

HOOK = {"webhook_configs": [{"url": "http://127.0.0.1:9/hook"}]}


class Env:
    """Store, silences, muter, outbox and dispatcher on one SQLite file."""

    def __init__(self, db: Path, config: dict[str, Any], clock: FakeClock) -> None:
        self.clock = clock
        self.t0 = clock.time()
        self.engine = open_engine(None, db)
        self.cfg = AlertingConfig.model_validate(config)
        self.store = AlertStore(self.engine, clock=clock, on_change=self._changed)
        self.silences = Silences(self.engine, clock)
        self.muter = AlertMuter(self.silences, Inhibitor(self.cfg.inhibit_rules), self.store)
        self.outbox = Outbox(self.engine, clock)
        self.dispatcher = Dispatcher(
            self.engine, config=self.cfg,
            alerts=lambda: self.store.current(resolved_since=clock.time() - 3600),
            muter=self.muter, time_intervals=TimeIntervals(self.cfg.all_time_intervals()),
            outbox=self.outbox, clock=clock, external_url="http://wk.example:8470")

    def _changed(self) -> None:
        self.dispatcher.wake()

    def fire(self, rule: str, *label_sets: dict[str, str]) -> None:
        """Make exactly these label sets of ``rule`` active now (others of the rule resolve)."""
        active = [ActiveAlert({"alertname": rule, **ls}, {"summary": f"{rule} is bad"}, 1.0)
                  for ls in label_sets]
        self.store.sync_rule(f"g/{rule}", active, self.clock.time(), for_=0.0)

    def rows(self, key: str | None = None) -> list[OutboxItem]:
        return self.outbox.items(key=key)

    def sent(self, key: str | None = None) -> list[tuple[float, str, list[tuple[str, str]]]]:
        """(seconds since t0, status, [(alertname/instance, status)]) per outbox row."""
        return [(round(r.created_at - self.t0, 3), r.payload["status"],
                 [(a["labels"].get("instance", a["labels"]["alertname"]), a["status"])
                  for a in r.payload["alerts"]]) for r in self.rows(key)]


@contextlib.asynccontextmanager
async def running(env: Env) -> AsyncIterator[None]:
    task = asyncio.create_task(env.dispatcher.run())
    await asyncio.sleep(0)
    try:
        yield
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


def _config(route: dict[str, Any], receivers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"route": route, "receivers": receivers, **extra}


async def test_group_wait_group_interval_and_repeat_interval_as_alertmanager(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    env = Env(tmp_path, _config({"receiver": "team", "group_by": ["alertname"]},
                                [{"name": "team", **HOOK}]), clock)
    async with running(env):
        env.fire("Disk", {"instance": "a"})
        await clock.sleep(29)
        assert env.rows() == []  # group_wait (30s default) not over
        await clock.sleep(2)
        assert env.sent() == [(30.0, "firing", [("a", "firing")])]
        await clock.sleep(29)  # t0+60: a second alert joins the group
        env.fire("Disk", {"instance": "a"}, {"instance": "b"})
        await clock.sleep(240)  # t0+300: before the next group_interval tick
        assert len(env.rows()) == 1
        await clock.sleep(31)  # the tick at t0+330
        assert env.sent()[1] == (330.0, "firing", [("a", "firing"), ("b", "firing")])
        # nothing changes: a repeat at the first tick after 4h (strictly older than repeat)
        await clock.sleep(4 * 3600 + 400)
        assert [s[0] for s in env.sent()] == [30.0, 330.0, 15030.0]
    row = env.rows()[0]
    assert row.group_key == '{}:{alertname="Disk"}'
    assert row.key == "team/webhook[0]"
    assert row.payload["groupLabels"] == {"alertname": "Disk"}
    assert row.payload["externalURL"] == "http://wk.example:8470"


async def test_an_alert_older_than_group_wait_flushes_at_once_and_resolving_inside_wait_sends_nothing(
        tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    env = Env(tmp_path, _config({"receiver": "team", "group_wait": "1m"},
                                [{"name": "team", **HOOK}]), clock)
    async with running(env):
        env.fire("Flap", {"instance": "a"})
        await clock.sleep(10)
        env.fire("Flap")  # resolved within group_wait: never notified
        await clock.sleep(600)
        assert env.rows() == []
    # an alert that has been firing for longer than group_wait (after a restart, say)
    env2 = Env(tmp_path / "b", _config({"receiver": "team", "group_wait": "1m"},
                                       [{"name": "team", **HOOK}]), clock)
    env2.fire("Old", {"instance": "x"})
    clock.advance(120)
    t = clock.time() - env2.t0
    async with running(env2):
        await clock.sleep(1)
        assert env2.sent() == [(t, "firing", [("x", "firing")])]


@pytest.mark.parametrize(("group_by", "expected"), [
    (["alertname"], {'{}:{alertname="A"}': 2, '{}:{alertname="B"}': 1}),
    (["..."], {'{}:{alertname="A", instance="1"}': 1, '{}:{alertname="A", instance="2"}': 1,
               '{}:{alertname="B", instance="1"}': 1}),
    ([], {"{}:{}": 3}),
])
async def test_group_by(tmp_path: Path, group_by: list[str], expected: dict[str, int]) -> None:
    clock = FakeClock(autojump=True)
    env = Env(tmp_path, _config({"receiver": "team", "group_by": group_by, "group_wait": "0s"},
                                [{"name": "team", **HOOK}]), clock)
    async with running(env):
        env.fire("A", {"instance": "1"}, {"instance": "2"})
        env.fire("B", {"instance": "1"})
        await clock.sleep(1)
    assert {r.group_key: len(r.payload["alerts"]) for r in env.rows()} == expected


async def test_continue_and_inherited_receivers_each_get_the_group(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    cfg = _config({"receiver": "default", "group_by": ["alertname"], "group_wait": "5s",
                   "routes": [
                       {"matchers": ['severity="critical"'], "receiver": "pager", "continue": True,
                        "group_wait": "1s"},
                       {"matchers": ['team="db"'], "routes": [{"matchers": ['env="prod"']}]},
                   ]},
                  [{"name": n, **HOOK} for n in ("default", "pager")])
    env = Env(tmp_path, cfg, clock)
    async with running(env):
        env.fire("Down", {"severity": "critical", "team": "db", "env": "prod"})
        await clock.sleep(3)
        assert [(r.key, round(r.created_at - env.t0)) for r in env.rows()] == [("pager/webhook[0]", 1)]
        await clock.sleep(3)
    rows = env.rows()
    assert [(r.key, r.group_key) for r in rows] == [
        ("pager/webhook[0]", '{}/{severity="critical"}:{alertname="Down"}'),
        # the inner route inherits receiver "default" and group_wait 5s
        ("default/webhook[0]", '{}/{team="db"}/{env="prod"}:{alertname="Down"}'),
    ]
    assert round(rows[1].created_at - env.t0) == 5


async def test_resolved_alerts_are_sent_once_and_only_with_send_resolved(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    cfg = _config({"receiver": "both", "group_by": ["alertname"], "group_wait": "0s",
                   "group_interval": "1m"},
                  [{"name": "both", "webhook_configs": [
                      {"url": "http://127.0.0.1:9/a"},
                      {"url": "http://127.0.0.1:9/b", "send_resolved": False}]}])
    env = Env(tmp_path, cfg, clock)
    async with running(env):
        env.fire("Load", {"instance": "a"}, {"instance": "b"})
        await clock.sleep(10)
        env.fire("Load", {"instance": "a"})  # b resolves
        await clock.sleep(60)
        env.fire("Load")  # a resolves
        await clock.sleep(600)
    assert env.sent("both/webhook[0]") == [
        (0.0, "firing", [("a", "firing"), ("b", "firing")]),
        (60.0, "firing", [("a", "firing"), ("b", "resolved")]),
        (120.0, "resolved", [("a", "resolved")]),
    ]
    # without send_resolved: nothing about resolutions (and no repeat: the group is cleared)
    assert env.sent("both/webhook[1]") == [(0.0, "firing", [("a", "firing"), ("b", "firing")])]


async def test_acknowledged_groups_are_not_repeated_and_pagerduty_is_acknowledged(
        tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    cfg = _config({"receiver": "ops", "group_by": ["alertname"], "group_wait": "0s",
                   "group_interval": "1m", "repeat_interval": "10m"},
                  [{"name": "ops", **HOOK, "pagerduty_configs": [
                      {"routing_key": "k" * 32, "url": "http://127.0.0.1:9/v2/enqueue"}]}])
    env = Env(tmp_path, cfg, clock)
    async with running(env):
        env.fire("Api", {"instance": "a"})
        await clock.sleep(30)
        env.store.ack("Api", "alice", "looking", clock.time())
        await clock.sleep(3600)  # no repeats while acked
        env.fire("Api", {"instance": "a"}, {"instance": "b"})  # a new alert: notify again
        await clock.sleep(31)
    assert env.sent("ops/webhook[0]") == [
        (0.0, "firing", [("a", "firing")]),
        (3660.0, "firing", [("a", "firing"), ("b", "firing")]),
    ]
    pd = env.rows("ops/pagerduty[0]")
    assert [(round(r.created_at - env.t0), r.payload["watchkeeper"]["action"]) for r in pd] == [
        (0, "notify"), (60, "acknowledge"), (3660, "notify")]


async def test_unchanged_unacked_group_repeats_every_repeat_interval(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    cfg = _config({"receiver": "ops", "group_wait": "0s", "group_interval": "1m",
                   "repeat_interval": "10m"}, [{"name": "ops", **HOOK}])
    env = Env(tmp_path, cfg, clock)
    async with running(env):
        env.fire("Api", {"instance": "a"})
        await clock.sleep(1900)
    assert [s[0] for s in env.sent()] == [0.0, 660.0, 1320.0]


@pytest.mark.parametrize("kind", ["mute_time_intervals", "active_time_intervals"])
async def test_routes_in_a_mute_interval_send_at_the_first_flush_after_it(
        tmp_path: Path, kind: str) -> None:
    # FakeClock starts at 2023-11-14T22:13:20Z (a Tuesday)
    window = ["22:00", "23:00"] if kind == "mute_time_intervals" else ["23:00", "24:00"]
    cfg = _config({"receiver": "ops", "group_by": ["alertname"],
                   "routes": [{"matchers": ["team=db"], kind: ["window"]}]},
                  [{"name": "ops", **HOOK}],
                  time_intervals=[{"name": "window", "time_intervals": [
                      {"times": [{"start_time": window[0], "end_time": window[1]}]}]}])
    clock = FakeClock(autojump=True)
    env = Env(tmp_path, cfg, clock)
    async with running(env):
        env.fire("Db", {"team": "db"})
        await clock.sleep(3600)
    # flushes at 22:13:50 + k*5m; the first outside 22:00-23:00 (inside 23-24) is 23:03:50
    assert [s[0] for s in env.sent()] == [30.0 + 10 * 300]


async def test_silenced_and_inhibited_alerts_are_left_out(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    cfg = _config({"receiver": "ops", "group_by": ["alertname"], "group_wait": "0s"},
                  [{"name": "ops", **HOOK}],
                  inhibit_rules=[{"source_matchers": ["severity=critical"],
                                  "target_matchers": ["severity=warning"], "equal": ["instance"]}])
    env = Env(tmp_path, cfg, clock)
    now = clock.time()
    env.silences.add(parse_matchers('alertname="Noisy"'), starts_at=now, ends_at=now + 600,
                     created_by="bob", comment="known")
    async with running(env):
        env.fire("Noisy", {"instance": "a"})
        env.fire("Crit", {"instance": "a", "severity": "critical"})
        env.fire("Warn", {"instance": "a", "severity": "warning"}, {"instance": "b",
                                                                  "severity": "warning"})
        await clock.sleep(1)
        assert sorted((r.payload["groupLabels"]["alertname"], len(r.payload["alerts"]))
                      for r in env.rows()) == [("Crit", 1), ("Warn", 1)]  # Warn/a inhibited
        await clock.sleep(900)  # the silence ends: Noisy goes out at the next flush
    noisy = [r for r in env.rows() if r.payload["groupLabels"]["alertname"] == "Noisy"]
    assert [round(r.created_at - env.t0) for r in noisy] == [600]


async def test_a_restarted_dispatcher_resends_nothing_already_logged(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    cfg = _config({"receiver": "ops", "group_by": ["alertname"], "group_wait": "10s",
                   "group_interval": "1m", "repeat_interval": "1h"}, [{"name": "ops", **HOOK}])
    env = Env(tmp_path, cfg, clock)
    async with running(env):
        env.fire("Disk", {"instance": "a"})
        await clock.sleep(120)
    assert [s[0] for s in env.sent()] == [10.0]
    # "crash" and start again on the same database, time going on
    clock2 = FakeClock(start=clock.time() + 5, autojump=True)
    env2 = Env(tmp_path, cfg, clock2)
    async with running(env2):
        await clock2.sleep(600)
        assert len(env2.rows()) == 1  # the group flushed at once, the log held it back
        env2.fire("Disk")  # resolves
        await clock2.sleep(120)
        await clock2.sleep(3 * 3600)
    rows = env2.rows()
    assert [(r.payload["status"], r.group_key) for r in rows] == [
        ("firing", '{}:{alertname="Disk"}'), ("resolved", '{}:{alertname="Disk"}')]


@pytest.mark.parametrize(("entry", "firing", "resolved", "kw", "expected"), [
    (None, {"a"}, set(), {}, True),
    (None, set(), {"a"}, {}, False),  # only resolved, never notified
    (LogEntry(frozenset({"a"}), frozenset(), 0.0), {"a", "b"}, set(), {}, True),
    (LogEntry(frozenset({"a", "b"}), frozenset(), 0.0), {"a"}, {"b"}, {}, True),
    (LogEntry(frozenset({"a", "b"}), frozenset(), 150.0), {"a"}, {"b"},
     {"send_resolved": False}, False),
    (LogEntry(frozenset({"a"}), frozenset(), 0.0), set(), {"a"}, {"send_resolved": False}, True),
    (LogEntry(frozenset(), frozenset({"a"}), 0.0), set(), set(), {}, False),
    (LogEntry(frozenset({"a"}), frozenset(), 90.0), {"a"}, set(), {}, True),  # repeat due
    (LogEntry(frozenset({"a"}), frozenset(), 90.0), {"a"}, set(), {"all_acked": True}, False),
    (LogEntry(frozenset({"a"}), frozenset(), 100.0), {"a"}, set(), {}, False),  # not yet (strict)
])
def test_needs_update_is_alertmanagers_dedup(entry: LogEntry | None, firing: set[str],
                                             resolved: set[str], kw: dict[str, Any],
                                             expected: bool) -> None:
    args: dict[str, Any] = {"send_resolved": True, "repeat_interval": 100.0, "now": 200.0, **kw}
    assert needs_update(entry, firing, resolved, **args) is expected
