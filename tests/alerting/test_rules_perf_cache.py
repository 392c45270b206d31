"""Rule groups read through a per-evaluation cache: never stale across times or after writes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from watchkeeper.alerting.rulefiles import load_rules_text
from watchkeeper.alerting.rules import MemoryAlerts, RuleEvaluator
from watchkeeper.query.promql.evaluator import Evaluator
from watchkeeper.query.promql.source import ReadCache
from watchkeeper.query.selector import parse_selector
from watchkeeper.staleness import STALE_NAN
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB
from watchkeeper.testing.clock import FakeClock

T0 = 1_700_000_000.0
RULES = """groups:
  - name: g
    interval: 15s
    rules:
      - record: load:sum
        expr: sum(load)
      - alert: LoadSumHigh
        expr: load:sum{scaled=""} > 5
      - alert: LoadHigh
        expr: load > 2
        annotations:
          summary: "{{ $value }} of {{ with query \\"load:sum\\" }}{{ . | first | value }}{{ end }}"
      - record: load:sum
        expr: sum(load) * 10
        labels:
          scaled: "yes"
      - alert: ScaledHigh
        expr: load:sum{scaled="yes"} > 50
"""


@pytest.fixture
def world(tmp_path: Path) -> Any:
    engine = open_engine(None, tmp_path)
    clock = FakeClock(T0)
    tsdb = TSDB(engine, clock=clock)
    rs = load_rules_text(RULES, "rules.yaml")
    assert rs.issues == []
    alerts = MemoryAlerts()
    ev = RuleEvaluator(Evaluator(tsdb), tsdb, alerts, clock, ruleset=rs, in_thread=False)
    yield tsdb, ev
    engine.dispose()


def firing(ev: RuleEvaluator) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for rid, st in ev.runner.status.items():
        assert st.health == "ok", (rid, st.last_error)
        out[rid.split("/")[1]] = sorted(a.value for a in st.alerts)
    return out


def test_recording_output_is_seen_by_later_rules_and_new_samples_by_later_cycles(world: Any) -> None:
    tsdb, ev = world
    tsdb.append_rows([("load", {"host": h}, T0 - 5, v) for h, v in (("a", 1.0), ("b", 3.0))])
    ev.evaluate_all(T0)
    got = firing(ev)
    # load:sum written by the first rule at T0 is read by the next rules in the same evaluation
    assert got["LoadSumHigh"] == []
    assert got["LoadHigh"] == [3.0]
    assert got["ScaledHigh"] == []
    summary = ev.runner.status["g/LoadHigh"].alerts[0].annotations["summary"]
    assert summary == "3 of 4"
    # new samples before the next time: the next evaluation must see them, not what was read
    tsdb.append_rows([("load", {"host": h}, T0 + 10, v) for h, v in (("a", 4.0), ("b", 3.0))])
    ev.evaluate_all(T0 + 15)
    got = firing(ev)
    assert got["LoadSumHigh"] == [7.0]
    assert got["LoadHigh"] == [3.0, 4.0]
    assert got["ScaledHigh"] == [70.0]
    assert ev.runner.status["g/LoadHigh"].alerts[0].annotations["summary"] in ("3 of 7", "4 of 7")
    sums = tsdb.select_columns(parse_selector('load:sum{scaled=""}'), T0, T0 + 15)
    assert sums[0].values.tolist() == [4.0, 7.0]


def test_group_evaluation_reads_each_name_once_and_drops_the_cache(world: Any, monkeypatch: Any) -> None:
    tsdb, ev = world
    tsdb.append_rows([("load", {"host": "a"}, T0 - 5, 1.0)])
    made: list[ReadCache] = []
    real = ev.runner._cached_evaluator

    def spy(group: Any, *rest: Any) -> Any:
        out = real(group, *rest)
        made.append(out[1])
        return out

    monkeypatch.setattr(ev.runner, "_cached_evaluator", spy)
    ev.evaluate_all(T0)
    ev.evaluate_all(T0 + 15)
    assert len(made) == 2 and made[0] is not made[1]
    # load once; load:sum after each of the two writes of it; ALERTS never read
    assert made[0].reads == 3
    assert ev.runner._cache is None and ev.runner._ev is None


# -- reads shared between the groups of one evaluate_all ----------------------------------------
GROUPS = """groups:
  - name: first
    interval: 15s
    rules:
      - record: load:sum
        expr: sum(load)
      - alert: LoadHigh
        expr: load > 2
        for: 15s
        annotations:
          summary: "{{ $value }} on {{ $labels.host }}"
      - alert: LoadRising
        expr: deriv(load[1m]) > 0
  - name: second
    interval: 15s
    rules:
      - alert: LoadSumHigh
        expr: load:sum > 5
        annotations:
          summary: "{{ $value }}; {{ with query \\"count(ALERTS)\\" }}{{ . | first | value }}{{ end }} alerts"
      - alert: LoadAvg
        expr: avg_over_time(load[2m]) > 1
      - alert: LoadPredicted
        expr: predict_linear(load[1m], 600) > 10
  - name: delayed
    interval: 15s
    query_offset: 10s
    rules:
      - alert: LoadHighEarlier
        expr: load > 2
      - alert: SumEarlier
        expr: load:sum > 5
"""


def _world(tmp: Path) -> tuple[Any, Any, RuleEvaluator]:
    engine = open_engine(None, tmp)
    tsdb = TSDB(engine, clock=FakeClock(T0))
    rs = load_rules_text(GROUPS, "rules.yaml")
    assert rs.issues == []
    ev = RuleEvaluator(Evaluator(tsdb), tsdb, MemoryAlerts(), FakeClock(T0), ruleset=rs, in_thread=False)
    return engine, tsdb, ev


def _snapshot(ev: RuleEvaluator, tsdb: Any, t: float) -> Any:
    alerts = {rid: (st.health, st.last_error, sorted(
        (sorted(a.labels.items()), sorted(a.annotations.items()), a.value, a.state.value, a.active_at)
        for a in st.alerts)) for rid, st in ev.runner.status.items()}
    written = sorted((sorted(c.labels.items()), c.ms.tolist(), c.values.view("u8").tolist())  # NaN-safe
                     for c in tsdb.select_columns(parse_selector('{__name__=~"ALERTS.*|load:sum"}'),
                                                  T0 - 600, t))
    return alerts, written


@pytest.mark.parametrize("shared", [True, False])
def test_groups_sharing_reads_give_what_groups_reading_alone_give(tmp_path: Path, shared: bool) -> None:
    """evaluate_all (one read cache per query time for all groups) against each group
    evaluated on its own, over several cycles with new samples between them: the
    same alerts, annotations (a template query of ALERTS written by earlier groups),
    ALERTS series and recording-rule output (written by one group, read by the next)."""
    worlds = [_world(tmp_path / "a"), _world(tmp_path / "b")]
    try:
        snaps = []
        for engine, tsdb, ev in worlds:
            del engine
            out = []
            for k in range(6):
                t = T0 + 15 * k
                tsdb.append_rows([("load", {"host": h}, t - 3, v + k * (i + 1) * 0.7)
                                  for i, (h, v) in enumerate((("a", 1.0), ("b", 2.5), ("c", 0.5)))])
                if k == 3:  # a series goes away: staleness, and ALERTS marked stale
                    tsdb.append_rows([("load", {"host": "c"}, t - 1, STALE_NAN)])
                if ev is worlds[0][2] and shared:
                    ev.evaluate_all(t)
                else:
                    for g in ev.groups:
                        ev.runner.evaluate_group(g, t)
                out.append(_snapshot(ev, tsdb, t))
            snaps.append(out)
        assert snaps[0] == snaps[1]
        firing = {rid for rid, (_, _, alerts) in snaps[0][-1][0].items() if alerts}
        assert {"first/LoadHigh", "second/LoadSumHigh", "delayed/SumEarlier"} <= firing
    finally:
        for engine, _, _ in worlds:
            engine.dispose()


def test_evaluate_all_reads_each_name_once_per_query_time(tmp_path: Path, monkeypatch: Any) -> None:
    engine, tsdb, ev = _world(tmp_path)
    try:
        tsdb.append_rows([("load", {"host": "a"}, T0 - 5, 3.0)])
        made: list[tuple[float | None, ReadCache]] = []
        real = ev.runner._cached_evaluator

        def spy(group: Any, qt: float | None = None) -> Any:
            out = real(group, qt)
            made.append((qt, out[1]))
            return out

        monkeypatch.setattr(ev.runner, "_cached_evaluator", spy)
        ev.evaluate_all(T0)
        assert [qt for qt, _ in made] == [T0, T0, T0 - 10]
        (_, first), (_, second), (_, delayed) = made
        assert first is second and delayed is not first  # one cache per query time
        # load once, over the widest window of all groups (the 5m lookback); load:sum
        # after the recording rule wrote it (no alert fires: no template query)
        assert first.windows == {"load": 300_000, "load:sum": 300_000}
        assert first.reads == 2
        assert delayed.reads == 2  # load and load:sum at the earlier time
        assert ev.runner._batch is None and ev.runner._cache is None
        made.clear()
        # the next cycle reads again: nothing is kept across evaluation times (and now
        # LoadSumHigh fires: its annotation's query reads ALERTS, as written by then)
        tsdb.append_rows([("load", {"host": "a"}, T0 + 10, 9.0)])
        ev.evaluate_all(T0 + 15)
        assert made[0][1] is not first and made[0][1].reads == 3
        assert sorted(a.value for a in ev.runner.status["first/LoadHigh"].alerts) == [9.0]
    finally:
        engine.dispose()


def test_a_single_group_or_a_plain_evaluator_shares_nothing(tmp_path: Path) -> None:
    engine, tsdb, ev = _world(tmp_path)
    try:
        tsdb.append_rows([("load", {"host": "a"}, T0 - 5, 3.0)])
        ev.runner.evaluate_groups(ev.groups[:1], T0)
        assert ev.runner.status["first/LoadHigh"].health == "ok"
        assert ev.runner._batch is None

        class Plain:  # an evaluator that cannot be re-pointed at a cache
            def __init__(self, inner: Evaluator) -> None:
                self.inner = inner

            def instant(self, expr: Any, t: float) -> Any:
                return self.inner.instant(expr, t)

        ev.runner.evaluator = Plain(Evaluator(tsdb))
        ev.evaluate_all(T0 + 15)
        assert all(st.health == "ok" for st in ev.runner.status.values())
    finally:
        engine.dispose()


async def test_scheduled_groups_due_at_the_same_time_are_evaluated_together(
        tmp_path: Path, monkeypatch: Any) -> None:
    """The loop hands neighbouring groups due at the same time to evaluate_groups as one
    batch (they share reads); groups with other times go on their own."""
    import asyncio

    from watchkeeper.alerting import rules as rules_mod

    engine, tsdb, ev = _world(tmp_path)
    try:
        # first and second at the same offset; delayed at another
        monkeypatch.setattr(rules_mod, "_group_offset",
                            lambda g, iv: 0.0 if g.name in ("first", "second") else 5.0)
        clock = FakeClock(T0 + 1, autojump=True)
        ev.clock = clock
        tsdb.append_rows([("load", {"host": "a"}, T0 + 1, 3.0)])
        batches: list[tuple[list[str], float]] = []
        real = ev.runner.evaluate_groups

        def spy(groups: Any, t: float) -> None:
            batches.append(([g.name for g in groups], t))
            real(groups, t)

        monkeypatch.setattr(ev.runner, "evaluate_groups", spy)
        task = asyncio.create_task(ev.run())
        await clock.sleep(20)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert batches[:2] == [(["first", "second"], T0 + 10), (["delayed"], T0 + 15)]
        assert ev.runner.status["first/LoadHigh"].health == "ok"
    finally:
        engine.dispose()


def test_groups_of_one_interval_share_a_slot_and_other_intervals_do_not() -> None:
    """The server evaluates the groups of one interval at one instant (sharing reads)."""
    from watchkeeper.alerting import rules as rules_mod

    class G:
        def __init__(self, file: str, name: str) -> None:
            self.file, self.name = file, name

    a, b = G("a.yml", "host"), G("b.yml", "blackbox")
    assert rules_mod._group_offset(a, 15.0) == rules_mod._group_offset(b, 15.0)  # type: ignore[arg-type]
    assert 0 <= rules_mod._group_offset(a, 15.0) < 15.0  # type: ignore[arg-type]
    assert rules_mod._group_offset(a, 15.0) != rules_mod._group_offset(a, 60.0)  # type: ignore[arg-type]
