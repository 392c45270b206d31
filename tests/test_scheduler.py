"""The scheduler, driven by the fake clock: ten simulated minutes pass in milliseconds.

Every test runs the real :class:`Scheduler` under a :class:`FakeClock` with
``autojump=True``, records when (in simulated time) each job started, and
compares with what the schedule promises.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from watchkeeper.scheduler import Scheduler
from watchkeeper.testing.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(autojump=True)


@pytest.fixture
async def running(clock: FakeClock) -> AsyncIterator[Callable[..., Scheduler]]:
    """Start a scheduler (made with the given keyword arguments) and stop it afterwards."""
    tasks: list[asyncio.Task[None]] = []

    def start(**kwargs: object) -> Scheduler:
        sched = Scheduler(clock=clock, **kwargs)  # type: ignore[arg-type]
        tasks.append(asyncio.create_task(sched.run()))
        return sched

    yield start
    for task in tasks:
        task.cancel()
    for task in tasks:
        with pytest.raises(asyncio.CancelledError):
            await task


def recorder(
    clock: FakeClock, starts: list[float], *, takes: float = 0.0
) -> Callable[[], Awaitable[None]]:
    """A job that notes its start time and then takes ``takes`` simulated seconds."""

    async def job() -> None:
        starts.append(clock.monotonic())
        if takes:
            await clock.sleep(takes)

    return job


async def test_jobs_run_at_their_intervals(clock: FakeClock, running) -> None:  # type: ignore[no-untyped-def]
    sched = running()
    a: list[float] = []
    b: list[float] = []
    sched.add("a", 10.0, recorder(clock, a))
    sched.add("b", 45.0, recorder(clock, b), first_delay=5.0)
    await clock.sleep(602.0)
    assert a == [10.0 * i for i in range(61)]  # 0, 10, ..., 600
    assert b == [5.0 + 45.0 * i for i in range(14)]  # 5, 50, ..., 590
    assert sched.jobs["a"].runs == 61
    assert sched.jobs["a"].skipped == 0
    assert sched.jobs["a"].failures == 0


async def test_ten_minutes_take_little_real_time(clock: FakeClock, running) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    sched = running()
    starts: list[float] = []
    sched.add("fast", 1.0, recorder(clock, starts, takes=0.25))
    t0 = loop.time()
    await clock.sleep(600.5)
    assert len(starts) == 601
    assert loop.time() - t0 < 2.0


async def test_job_sleeping_inside_sees_exact_time(clock: FakeClock, running) -> None:  # type: ignore[no-untyped-def]
    """Time moves only when every task waits: a job's own sleep ends exactly on time."""
    sched = running()
    observed: list[tuple[float, float]] = []

    async def job() -> None:
        t0 = clock.monotonic()
        await clock.sleep(3.0)
        observed.append((t0, clock.monotonic()))

    sched.add("sleeper", 10.0, job)
    sched.add("other", 7.0, recorder(clock, []))
    await clock.sleep(55.0)
    assert observed == [(t, t + 3.0) for t in (0.0, 10.0, 20.0, 30.0, 40.0, 50.0)]


@pytest.mark.parametrize("seed", [1, 2, 3, 42])
async def test_jitter_delays_the_first_run_within_bounds(
    clock: FakeClock,
    running,
    seed: int,  # type: ignore[no-untyped-def]
) -> None:
    rng = random.Random(seed)
    expected_rng = random.Random(seed)
    sched = running(rng=rng)
    starts: dict[str, list[float]] = {f"j{i}": [] for i in range(20)}
    for key, lst in starts.items():
        sched.add(key, 60.0, recorder(clock, lst), jitter=15.0, first_delay=2.0)
    await clock.sleep(2.0 + 15.0 + 120.0 + 1.0)
    offsets = []
    for key, lst in starts.items():
        first = lst[0]
        offsets.append(first)
        assert 2.0 <= first <= 17.0, key
        # later runs keep the phase of the first one
        assert lst == pytest.approx([first, first + 60.0, first + 120.0]), key
    # the offsets are exactly what the seeded generator gives, in the order jobs were added
    assert offsets == [2.0 + expected_rng.uniform(0, 15.0) for _ in starts]
    assert len(set(offsets)) == len(offsets)  # spread out, not all at once


async def test_slow_job_is_skipped_not_piled_up(clock: FakeClock, running) -> None:  # type: ignore[no-untyped-def]
    sched = running()
    starts: list[float] = []
    active = 0
    most = 0

    async def slow() -> None:
        nonlocal active, most
        starts.append(clock.monotonic())
        active += 1
        most = max(most, active)
        try:
            await clock.sleep(25.0)
        finally:
            active -= 1

    sched.add("slow", 10.0, slow)
    await clock.sleep(95.0)
    # due at 0, 10, 20, ...; each run takes 25 s, so the runs due at 10 and 20 are skipped
    assert starts == [0.0, 30.0, 60.0, 90.0]
    assert most == 1
    job = sched.jobs["slow"]
    assert job.skipped == 6  # 10, 20, 40, 50, 70, 80
    assert job.runs == 3  # finished: the run started at 90 is still going


async def test_failing_job_does_not_stop_others(clock: FakeClock, running) -> None:  # type: ignore[no-untyped-def]
    sched = running()
    good: list[float] = []
    calls = 0

    async def bad() -> None:
        nonlocal calls
        calls += 1
        raise RuntimeError(f"boom {calls}")

    sched.add("bad", 5.0, bad)
    sched.add("good", 5.0, recorder(clock, good))
    await clock.sleep(52.0)
    assert len(good) == 11
    assert calls == 11
    assert sched.jobs["bad"].failures == 11
    assert sched.jobs["bad"].runs == 11
    assert sched.jobs["bad"].last_error == "RuntimeError: boom 11"
    assert sched.jobs["good"].failures == 0
    assert sched.jobs["good"].last_error is None


async def test_last_error_clears_after_a_good_run(clock: FakeClock, running) -> None:  # type: ignore[no-untyped-def]
    sched = running()
    outcomes = iter([ValueError("bad input"), None, None])

    async def job() -> None:
        exc = next(outcomes)
        if exc is not None:
            raise exc

    sched.add("j", 10.0, job)
    await clock.sleep(1.0)
    assert sched.jobs["j"].last_error == "ValueError: bad input"
    await clock.sleep(10.0)
    assert sched.jobs["j"].last_error is None
    assert sched.jobs["j"].failures == 1


async def test_remove_stops_a_job(clock: FakeClock, running) -> None:  # type: ignore[no-untyped-def]
    sched = running()
    gone: list[float] = []
    kept: list[float] = []
    sched.add("gone", 10.0, recorder(clock, gone))
    sched.add("kept", 10.0, recorder(clock, kept))
    await clock.sleep(35.0)
    sched.remove("gone")
    sched.remove("never-added")  # removing an unknown key is not an error
    await clock.sleep(60.0)
    assert gone == [0.0, 10.0, 20.0, 30.0]
    assert kept == [10.0 * i for i in range(10)]
    assert "gone" not in sched.jobs


async def test_add_with_same_key_replaces_the_job(clock: FakeClock, running) -> None:  # type: ignore[no-untyped-def]
    sched = running()
    old: list[float] = []
    new: list[float] = []
    sched.add("k", 10.0, recorder(clock, old))
    await clock.sleep(25.0)
    job = sched.add("k", 7.0, recorder(clock, new))
    await clock.sleep(30.0)
    assert old == [0.0, 10.0, 20.0]  # the old schedule (next due at 30) is gone
    assert new == [25.0, 32.0, 39.0, 46.0, 53.0]
    assert sched.jobs["k"] is job
    assert job.generation == 1


async def test_job_added_while_running_wakes_the_scheduler(clock: FakeClock, running) -> None:  # type: ignore[no-untyped-def]
    """The scheduler sleeps until its next due job; adding a sooner one must wake it."""
    sched = running()
    slow: list[float] = []
    soon: list[float] = []
    sched.add("slow", 3600.0, recorder(clock, slow), first_delay=3600.0)
    await clock.sleep(100.0)
    sched.add("soon", 10.0, recorder(clock, soon), first_delay=1.0)
    await clock.sleep(25.0)
    assert soon == [101.0, 111.0, 121.0]
    assert slow == []


@pytest.mark.parametrize("max_concurrent", [1, 3, 5])
async def test_concurrency_limit_holds(clock: FakeClock, running, max_concurrent: int) -> None:  # type: ignore[no-untyped-def]
    sched = running(max_concurrent=max_concurrent)
    active = 0
    most = 0
    finished = 0

    async def limited() -> None:
        nonlocal active, most, finished
        active += 1
        most = max(most, active)
        try:
            await clock.sleep(2.0)
        finally:
            active -= 1
            finished += 1

    unlimited_active = 0
    unlimited_most = 0

    async def free() -> None:
        nonlocal unlimited_active, unlimited_most
        unlimited_active += 1
        unlimited_most = max(unlimited_most, unlimited_active)
        try:
            await clock.sleep(2.0)
        finally:
            unlimited_active -= 1

    for i in range(10):
        sched.add(f"limited{i}", 60.0, limited)
    for i in range(4):
        sched.add(f"free{i}", 60.0, free, limited=False)
    await clock.sleep(59.0)
    assert most == max_concurrent
    assert finished == 10  # all ran in the end, max_concurrent at a time
    assert unlimited_most == 4  # jobs outside the limit are not held back


async def test_cancelling_run_cancels_running_jobs(clock: FakeClock) -> None:
    sched = Scheduler(clock=clock)
    started = asyncio.Event()
    cancelled = asyncio.Event()

    async def long_job() -> None:
        started.set()
        try:
            await clock.sleep(3600.0)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    sched.add("long", 10.0, long_job)
    task = asyncio.create_task(sched.run())
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set()
    assert sched.jobs["long"].failures == 0  # cancellation is not a failure


async def test_run_now_runs_outside_the_schedule(clock: FakeClock, running) -> None:  # type: ignore[no-untyped-def]
    sched = running()
    starts: list[float] = []
    sched.add("j", 60.0, recorder(clock, starts), first_delay=60.0)
    await clock.sleep(5.0)
    await sched.run_now("j")
    assert starts == [5.0]
    assert sched.jobs["j"].runs == 1
    await clock.sleep(60.0)
    assert starts == [5.0, 60.0]


@pytest.mark.parametrize("interval", [0.0, -1.0])
def test_non_positive_interval_is_refused(interval: float) -> None:
    sched = Scheduler(clock=FakeClock())
    with pytest.raises(ValueError, match="interval must be greater than 0"):
        sched.add("j", interval, recorder(FakeClock(), []))
    assert sched.jobs == {}


# -- the fake clock itself ---------------------------------------------------------------


async def test_fake_clock_wakes_sleepers_in_order_with_exact_times() -> None:
    clock = FakeClock(autojump=True)
    woke: list[tuple[str, float]] = []

    async def sleeper(name: str, seconds: float) -> None:
        await clock.sleep(seconds)
        woke.append((name, clock.monotonic()))

    async with asyncio.TaskGroup() as tg:
        tg.create_task(sleeper("c", 30.0))
        tg.create_task(sleeper("a", 10.0))
        tg.create_task(sleeper("b", 20.0))
        tg.create_task(sleeper("a2", 10.0))
    assert woke == [("a", 10.0), ("a2", 10.0), ("b", 20.0), ("c", 30.0)]
    assert clock.time() == 1_700_000_000.0 + 30.0


async def test_fake_clock_does_not_jump_while_a_task_is_busy() -> None:
    """A task that is still runnable (yielding without sleeping on the clock) holds time still."""
    clock = FakeClock(autojump=True)
    seen: list[float] = []

    async def busy() -> None:
        for _ in range(50):
            seen.append(clock.monotonic())
            await asyncio.sleep(0)

    async def sleeper() -> None:
        await clock.sleep(5.0)

    async with asyncio.TaskGroup() as tg:
        tg.create_task(sleeper())
        tg.create_task(busy())
    assert seen == [0.0] * 50
    assert clock.monotonic() == 5.0


async def test_fake_clock_without_autojump_moves_only_when_advanced() -> None:
    clock = FakeClock(start=100.0)
    task = asyncio.create_task(clock.sleep(10.0))
    for _ in range(5):
        await asyncio.sleep(0)
    assert not task.done()
    clock.advance(9.0)
    await asyncio.sleep(0)
    assert not task.done()
    clock.advance(1.0)
    await task
    assert clock.monotonic() == 10.0
    assert clock.time() == 110.0


async def test_reschedule_runs_sooner_then_keeps_the_interval(clock: FakeClock, running) -> None:  # type: ignore[no-untyped-def]
    sched = running()
    starts: list[float] = []
    sched.add("c", 60.0, recorder(clock, starts))
    await clock.sleep(1.0)
    assert starts == [0.0]
    sched.reschedule("c", 5.0)  # as a soft state's retry_interval does
    await clock.sleep(200.0)
    assert starts == [0.0, 6.0, 66.0, 126.0, 186.0]
    sched.reschedule("missing", 1.0)  # an unknown job is ignored
