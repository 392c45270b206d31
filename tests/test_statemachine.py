"""Soft/hard states and flap detection (monitor/statemachine.py), fed one result at a time."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from watchkeeper.monitor.model import State
from watchkeeper.monitor.statemachine import CheckStatus, Transition, advance

OK, WARN, CRIT, UNKN = State.OK, State.WARNING, State.CRITICAL, State.UNKNOWN


def feed(
    states: Sequence[State],
    *,
    max_attempts: int,
    status: CheckStatus | None = None,
    window: int = 21,
    low: float = 0.2,
    high: float = 0.3,
) -> list[tuple[CheckStatus, Transition]]:
    """Fold ``states`` in at t=10, 20, ...; return the status and transition after each."""
    status = status or CheckStatus("web", "http")
    out = []
    for i, state in enumerate(states, start=1):
        status, tr = advance(
            status,
            state,
            now=10.0 * i,
            summary=f"result {i}",
            duration=0.5,
            max_attempts=max_attempts,
            window=window,
            low=low,
            high=high,
        )
        out.append((status, tr))
    return out


def compact(steps: list[tuple[CheckStatus, Transition]]) -> list[tuple[str, str, str, int, bool]]:
    """(state, state_type, hard_state, attempt, hard_changed) per step, for readable tables."""
    return [
        (s.state.name, s.state_type, s.hard_state.name, s.attempt, tr.hard_changed)
        for s, tr in steps
    ]


def test_a_new_check_starts_in_hard_ok() -> None:
    status = CheckStatus("web", "http")
    assert (status.state, status.state_type, status.hard_state, status.attempt) == (
        OK,
        "HARD",
        OK,
        1,
    )
    assert status.last_run is None
    assert status.summary == "not run yet"
    assert status.recent == ()


@pytest.mark.parametrize(
    ("states", "max_attempts", "expected"),
    [
        pytest.param(
            [OK, CRIT, CRIT, OK],
            1,
            [
                ("OK", "HARD", "OK", 1, False),
                ("CRITICAL", "HARD", "CRITICAL", 1, True),
                ("CRITICAL", "HARD", "CRITICAL", 1, False),
                ("OK", "HARD", "OK", 1, True),
            ],
            id="max1-every-change-is-hard-at-once",
        ),
        pytest.param(
            [WARN, WARN, WARN, WARN],
            3,
            [
                ("WARNING", "SOFT", "OK", 1, False),
                ("WARNING", "SOFT", "OK", 2, False),
                ("WARNING", "HARD", "WARNING", 3, True),
                ("WARNING", "HARD", "WARNING", 1, False),
            ],
            id="max3-hard-after-three-agreeing-results",
        ),
        pytest.param(
            [CRIT, CRIT, OK, CRIT],
            3,
            [
                ("CRITICAL", "SOFT", "OK", 1, False),
                ("CRITICAL", "SOFT", "OK", 2, False),
                ("OK", "HARD", "OK", 1, False),
                ("CRITICAL", "SOFT", "OK", 1, False),
            ],
            id="max3-soft-recovery-resets-the-count",
        ),
        pytest.param(
            [WARN, CRIT, UNKN],
            3,
            [
                ("WARNING", "SOFT", "OK", 1, False),
                ("CRITICAL", "SOFT", "OK", 2, False),
                ("UNKNOWN", "HARD", "UNKNOWN", 3, True),
            ],
            id="max3-attempts-count-any-non-ok-and-the-last-state-wins",
        ),
        pytest.param(
            [CRIT, CRIT, CRIT, OK],
            3,
            [
                ("CRITICAL", "SOFT", "OK", 1, False),
                ("CRITICAL", "SOFT", "OK", 2, False),
                ("CRITICAL", "HARD", "CRITICAL", 3, True),
                ("OK", "HARD", "OK", 1, True),
            ],
            id="max3-recovery-from-hard-is-immediate",
        ),
        pytest.param(
            [CRIT, CRIT, CRIT, WARN, UNKN, CRIT],
            3,
            [
                ("CRITICAL", "SOFT", "OK", 1, False),
                ("CRITICAL", "SOFT", "OK", 2, False),
                ("CRITICAL", "HARD", "CRITICAL", 3, True),
                ("WARNING", "HARD", "WARNING", 1, True),
                ("UNKNOWN", "HARD", "UNKNOWN", 1, True),
                ("CRITICAL", "HARD", "CRITICAL", 1, True),
            ],
            id="max3-non-ok-to-other-non-ok-is-immediate",
        ),
        pytest.param(
            [WARN, WARN],
            2,
            [("WARNING", "SOFT", "OK", 1, False), ("WARNING", "HARD", "WARNING", 2, True)],
            id="max2",
        ),
    ],
)
def test_soft_and_hard_transitions(
    states: list[State], max_attempts: int, expected: list[tuple[str, str, str, int, bool]]
) -> None:
    assert compact(feed(states, max_attempts=max_attempts)) == expected


def test_since_moves_only_on_hard_changes() -> None:
    steps = feed([OK, CRIT, CRIT, CRIT, CRIT, OK], max_attempts=3)
    assert [s.since for s, _ in steps] == [0.0, 0.0, 0.0, 40.0, 40.0, 60.0]
    assert [s.last_run for s, _ in steps] == [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]


def test_transition_names_the_previous_hard_state() -> None:
    steps = feed([CRIT, WARN, OK], max_attempts=1)
    assert [tr.previous_hard for _, tr in steps] == [OK, CRIT, WARN]
    assert all(tr.hard_changed for _, tr in steps)


def test_summary_and_duration_are_kept_from_the_latest_result() -> None:
    status, _ = advance(
        CheckStatus("web", "http"),
        WARN,
        now=5.0,
        summary="slow: 2.1s",
        duration=2.1,
        max_attempts=3,
    )
    assert status.summary == "slow: 2.1s"
    assert status.duration == 2.1
    assert status.to_dict() == {
        "name": "web",
        "type": "http",
        "state": "WARNING",
        "state_type": "SOFT",
        "hard_state": "OK",
        "attempt": 1,
        "since": 0.0,
        "last_run": 5.0,
        "summary": "slow: 2.1s",
        "duration_seconds": 2.1,
        "flapping": False,
    }


@pytest.mark.parametrize("window", [3, 5, 21])
def test_recent_is_capped_at_the_window(window: int) -> None:
    states = [OK, WARN, CRIT, UNKN] * 10
    steps = feed(states, max_attempts=1, window=window)
    for i, (status, _) in enumerate(steps, start=1):
        assert len(status.recent) == min(i, window)
        assert status.recent == tuple(int(s) for s in states[:i][-window:])


def test_steady_results_never_flap() -> None:
    steps = feed([CRIT] * 30, max_attempts=1, window=5)
    assert not any(s.flapping for s, _ in steps)
    assert not any(tr.flapping_started or tr.flapping_stopped for _, tr in steps)


def test_flapping_starts_above_high_and_stops_below_low() -> None:
    # window 5: ratio = changes between neighbours / 4
    states = [OK, CRIT, OK, CRIT, OK] + [OK] * 6
    steps = feed(states, max_attempts=1, window=5, low=0.3, high=0.6)
    flapping = [s.flapping for s, _ in steps]
    started = [i for i, (_, tr) in enumerate(steps) if tr.flapping_started]
    stopped = [i for i, (_, tr) in enumerate(steps) if tr.flapping_stopped]
    # after 3 results (OK CRIT OK) the ratio is 2/2 = 1.0 > 0.6
    assert started == [2]
    # recent after each OK that follows: (CRIT OK CRIT OK OK) 3/4, (OK CRIT OK OK OK) 2/4,
    # (CRIT OK OK OK OK) 1/4 = 0.25 < 0.3 -> stops at index 7
    assert stopped == [7]
    assert flapping == [False, False, True, True, True, True, True, False, False, False, False]


def test_flapping_needs_at_least_three_results() -> None:
    steps = feed([OK, CRIT], max_attempts=1, window=5, high=0.3)
    assert [s.flapping for s, _ in steps] == [False, False]


def test_between_low_and_high_the_flapping_state_is_kept() -> None:
    """Hysteresis: a ratio between low and high neither starts nor stops flapping."""
    # window 5, low 0.3, high 0.6; ratios: -, -, 1.0, 1/3, 1/4, 2/4
    calm = feed([OK, OK, OK, CRIT, CRIT, OK], max_attempts=1, window=5, low=0.3, high=0.6)
    assert [s.flapping for s, _ in calm] == [False] * 6
    # ratios: 0, 1, 1 (start), 1, 3/4, 3/4, 2/4 (kept), 1/4 (stop)
    busy = feed([OK, CRIT, OK, CRIT, CRIT, OK, OK, OK], max_attempts=1, window=5, low=0.3, high=0.6)
    assert [s.flapping for s, _ in busy] == [False, False, True, True, True, True, True, False]
    assert [i for i, (_, tr) in enumerate(busy) if tr.flapping_started] == [2]
    assert [i for i, (_, tr) in enumerate(busy) if tr.flapping_stopped] == [7]


def test_ratio_exactly_at_high_does_not_start_flapping() -> None:
    # OK OK OK OK CRIT: 1 change in 4 = 0.25 == high
    steps = feed([OK, OK, OK, OK, CRIT], max_attempts=1, window=5, low=0.1, high=0.25)
    assert not any(s.flapping for s, _ in steps)
    # one more change makes 2/4 > 0.25
    more = feed([OK, OK, OK, OK, CRIT, OK], max_attempts=1, window=5, low=0.1, high=0.25)
    assert more[-1][0].flapping and more[-1][1].flapping_started


def test_flapping_does_not_change_the_hard_state_logic() -> None:
    steps = feed([OK, CRIT, OK, CRIT], max_attempts=1, window=5, high=0.3)
    assert compact(steps) == [
        ("OK", "HARD", "OK", 1, False),
        ("CRITICAL", "HARD", "CRITICAL", 1, True),
        ("OK", "HARD", "OK", 1, True),
        ("CRITICAL", "HARD", "CRITICAL", 1, True),
    ]
    assert steps[-1][0].flapping
