"""The outbox and delivery service: backoff, attempt records, dead letters, isolation, restarts.

Backoff and timeouts are checked exactly on a fake clock with in-process
receivers; isolation and restarts against real HTTP servers on 127.0.0.1
with the real clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from tests.alerting._receiver_servers import recorder
from watchkeeper.alerting.config import AlertingConfig
from watchkeeper.alerting.dispatch import Dispatcher
from watchkeeper.alerting.model import Alert, AlertState
from watchkeeper.alerting.outbox import DeliveryService, Outbox
from watchkeeper.alerting.receivers import build_receivers
from watchkeeper.alerting.receivers.base import DeliveryError
from watchkeeper.clock import SystemClock
from watchkeeper.store.engine import open_engine
from watchkeeper.testing import FakeClock

MSG = {"status": "firing", "alerts": [], "groupKey": "{}:{}", "receiver": "r"}


class Flaky:
    """An in-process receiver: fails ``fails`` times (retryable unless told), hangs if asked."""

    def __init__(self, fails: int = 0, *, retryable: bool = True, hang: bool = False,
                 clock: Any = None) -> None:
        self.fails = fails
        self.retryable = retryable
        self.hang = hang
        self.clock = clock
        self.calls: list[float] = []
        self.delivered: list[dict[str, Any]] = []

    async def send(self, payload: dict[str, Any]) -> None:
        self.calls.append(self.clock.time() if self.clock else 0.0)
        if self.hang:
            await asyncio.Event().wait()
        if len(self.calls) <= self.fails:
            raise DeliveryError("test: HTTP 503", retryable=self.retryable,
                                status_code=503 if self.retryable else 400)
        self.delivered.append(payload)

    async def aclose(self) -> None:
        return None


@contextlib.asynccontextmanager
async def serving(*runners: Any) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(r.run()) for r in runners]
    await asyncio.sleep(0)
    try:
        yield
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_exponential_backoff_with_every_attempt_recorded(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    ob = Outbox(open_engine(None, tmp_path), clock)
    rcv = Flaky(fails=5, clock=clock)
    svc = DeliveryService(ob, {"r/webhook[0]": rcv}, clock, jitter=0.0, backoff_initial=1.0,
                          backoff_max=8.0)
    t0 = clock.time()
    async with serving(svc):
        oid = ob.add(key="r/webhook[0]", group_key="{}:{}", payload=MSG)
        await clock.sleep(100)
    # attempts at 0, then +1, +2, +4, +8, +8 (capped)
    assert [round(t - t0) for t in rcv.calls] == [0, 1, 3, 7, 15, 23]
    item = ob.get(oid)
    assert (item.status, item.attempts, item.last_error) == ("sent", 6, None)
    attempts = ob.attempts(oid)
    assert [(a["ok"], a["status_code"]) for a in attempts] == [(False, 503)] * 5 + [(True, None)]
    assert attempts[0]["error"] == "test: HTTP 503"


def test_jitter_only_shortens_the_wait() -> None:
    clock = FakeClock()
    svc = DeliveryService(Outbox(None, clock), {}, clock, jitter=0.2,  # type: ignore[arg-type]
                          rng=random.Random(7))
    waits = [svc.backoff(n) for n in range(1, 12)]
    for n, w in enumerate(waits, start=1):
        base = min(300.0, 2.0 ** (n - 1))
        assert 0.8 * base <= w <= base


async def test_a_permanent_error_dead_letters_at_once(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    ob = Outbox(open_engine(None, tmp_path), clock)
    rcv = Flaky(fails=99, retryable=False, clock=clock)
    async with serving(DeliveryService(ob, {"r/webhook[0]": rcv}, clock)):
        oid = ob.add(key="r/webhook[0]", group_key="g", payload=MSG)
        await clock.sleep(3600)
    assert len(rcv.calls) == 1
    assert (ob.get(oid).status, ob.get(oid).attempts) == ("dead", 1)


async def test_a_notification_older_than_max_age_is_dead_lettered(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    ob = Outbox(open_engine(None, tmp_path), clock)
    rcv = Flaky(fails=10**6, clock=clock)
    svc = DeliveryService(ob, {"r/webhook[0]": rcv}, clock, jitter=0.0, max_age=86400.0)
    async with serving(svc):
        oid = ob.add(key="r/webhook[0]", group_key="g", payload=MSG)
        nxt = ob.add(key="r/webhook[0]", group_key="g2", payload=MSG)
        await clock.sleep(2 * 86400)
    item = ob.get(oid)
    assert item.status == "dead"
    assert "older than max age" in (item.last_error or "")
    # tried at 0,1,3,...,255, 511 then every 300s until a day had passed
    assert 86400 <= rcv.calls[item.attempts - 1] - (clock.time() - 2 * 86400) < 86400 + 300
    assert ob.get(nxt).status == "dead"  # the next one followed, and it too ran out of time


async def test_a_hanging_receiver_is_cut_off_and_never_delays_another(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    ob = Outbox(open_engine(None, tmp_path), clock)
    hanging, healthy = Flaky(hang=True, clock=clock), Flaky(clock=clock)
    svc = DeliveryService(ob, {"a/webhook[0]": hanging, "b/webhook[0]": healthy}, clock,
                          attempt_timeout=10.0, jitter=0.0)
    t0 = clock.time()
    async with serving(svc):
        stuck = ob.add(key="a/webhook[0]", group_key="g", payload=MSG)
        await clock.sleep(1)
        ob.add(key="b/webhook[0]", group_key="g", payload=MSG)
        await clock.sleep(0.001)
        assert len(healthy.delivered) == 1  # at once, while a/webhook[0] hangs
        await clock.sleep(60)
    attempts = ob.attempts(stuck)
    assert [round(a["ts"] - t0) for a in attempts][:3] == [10, 21, 33]
    assert attempts[0]["error"] == "webhook[0]: no answer within 10s (attempt cut off)"
    assert attempts[0]["duration"] == 10.0


async def test_rows_left_pending_by_a_crash_are_delivered_once_with_their_group_key(
        tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    engine = open_engine(None, tmp_path)
    ob = Outbox(engine, clock)
    first = Flaky(hang=True, clock=clock)  # the process dies while this send is in flight
    async with serving(DeliveryService(ob, {"r/webhook[0]": first}, clock,
                                       attempt_timeout=1000.0)):
        oid = ob.add(key="r/webhook[0]", group_key='{}:{alertname="X"}',
                     payload={**MSG, "groupKey": '{}:{alertname="X"}'})
        await clock.sleep(5)
    assert ob.get(oid).status == "pending" and len(first.calls) == 1
    # restart: a new service on the same database
    ob2 = Outbox(engine, clock)
    second = Flaky(clock=clock)
    async with serving(DeliveryService(ob2, {"r/webhook[0]": second, "gone/webhook[0]": Flaky()},
                                       clock)):
        await clock.sleep(3600)
    assert [p["groupKey"] for p in second.delivered] == ['{}:{alertname="X"}']
    assert ob2.get(oid).status == "sent"


async def test_rows_of_an_integration_no_longer_configured_are_dead_lettered(tmp_path: Path) -> None:
    clock = FakeClock(autojump=True)
    ob = Outbox(open_engine(None, tmp_path), clock)
    oid = ob.add(key="old/email[0]", group_key="g", payload=MSG)
    async with serving(DeliveryService(ob, {"r/webhook[0]": Flaky()}, clock)):
        await clock.sleep(1)
    assert (ob.get(oid).status, ob.get(oid).last_error) == (
        "dead", "the integration is no longer configured")


def _firing(name: str, t: float) -> Alert:
    return Alert(labels={"alertname": name, "instance": "web1"}, state=AlertState.FIRING,
                 active_at=t, fired_at=t, annotations={"summary": f"{name} fired"})


async def test_with_real_servers_a_500_a_hang_and_a_drop_do_not_delay_the_healthy_receiver(
        tmp_path: Path) -> None:
    """End to end on the real clock: dispatcher -> outbox -> delivery -> loopback servers."""
    async with recorder() as good, recorder(status=500, body="boom") as bad, \
            recorder(mode="hang") as hang, recorder(mode="drop") as drop:
        servers = {"good": good, "bad": bad, "hang": hang, "drop": drop}
        cfg = AlertingConfig.model_validate({
            "route": {"receiver": "good", "group_wait": "200ms", "group_interval": "1m",
                      "routes": [{"matchers": ['alertname="X"'], "receiver": n, "continue": True}
                                 for n in servers]},
            "receivers": [{"name": n, "webhook_configs": [{"url": s.url(f"/{n}/s3cr3t-path")}]}
                          for n, s in servers.items()],
        })
        clock = SystemClock()
        engine = open_engine(None, tmp_path)
        ob = Outbox(engine, clock)
        alerts = [_firing("X", clock.time())]
        disp = Dispatcher(engine, config=cfg, alerts=lambda: alerts, muter=None,
                          time_intervals=None, outbox=ob, clock=clock)
        receivers = build_receivers(cfg)
        svc = DeliveryService(ob, receivers, clock, attempt_timeout=1.0, backoff_initial=0.2,
                              jitter=0.0)
        try:
            start = time.monotonic()
            async with serving(disp, svc):
                disp.wake()
                await good.wait_for(1, timeout=5)
                elapsed = time.monotonic() - start
                await hang.wait_for(1)
                await asyncio.sleep(1.6)  # hang: cut off at 1s; bad/drop: retried
        finally:
            await receivers.aclose()
        assert elapsed < 0.2 + 0.5, f"healthy receiver waited {elapsed:.2f}s"
        assert good.requests[0].json()["groupKey"] == '{}/{alertname="X"}:{}'
        by_key = {i.key: i for i in ob.items()}
        assert by_key["good/webhook[0]"].status == "sent"
        for name in ("bad", "hang", "drop"):
            item = by_key[f"{name}/webhook[0]"]
            assert item.status == "pending" and item.attempts >= 1
            for a in ob.attempts(item.id):
                assert not a["ok"] and "s3cr3t" not in (a["error"] or "")
        bad_attempts = ob.attempts(by_key["bad/webhook[0]"].id)
        assert len(bad.requests) >= 3  # retried with backoff 0.2, 0.4, ...
        assert bad_attempts[0]["status_code"] == 500
        assert bad_attempts[0]["error"] == f"webhook http://127.0.0.1:{bad.port}: HTTP 500: boom"
        assert "no answer within 1s" in (ob.attempts(by_key["hang/webhook[0]"].id)[0]["error"] or "")
        assert "connection dropped" in (ob.attempts(by_key["drop/webhook[0]"].id)[0]["error"] or "")
        # the 500 server recovers: the pending notification is delivered, once
        bad.status, bad.body = 200, "ok"
        svc2 = DeliveryService(ob, build_receivers(cfg), clock, backoff_initial=0.2, jitter=0.0)
        n_before = len(bad.requests)
        try:
            async with serving(svc2):
                await bad.wait_for(n_before + 1)
                await asyncio.sleep(0.3)
        finally:
            await svc2.receivers.aclose()  # type: ignore[attr-defined]
        assert len(bad.requests) == n_before + 1
        assert ob.get(by_key["bad/webhook[0]"].id).status == "sent"


async def test_a_restart_with_a_receiver_down_delivers_exactly_the_expected_notifications(
        tmp_path: Path) -> None:
    """A crash while an alert fires and the receiver is down: after restart, one delivery."""
    async with recorder(status=503, body="down") as hook:
        cfg = AlertingConfig.model_validate({
            "route": {"receiver": "r", "group_wait": "0s", "group_interval": "1m"},
            "receivers": [{"name": "r", "webhook_configs": [{"url": hook.url("/h")}]}]})
        clock = SystemClock()
        engine = open_engine(None, tmp_path)
        alerts = [_firing("Y", clock.time())]

        async def run_once(seconds: float) -> None:
            ob = Outbox(engine, clock)
            disp = Dispatcher(engine, config=cfg, alerts=lambda: alerts, muter=None,
                              time_intervals=None, outbox=ob, clock=clock)
            receivers = build_receivers(cfg)
            svc = DeliveryService(ob, receivers, clock, backoff_initial=0.1, jitter=0.0)
            try:
                async with serving(disp, svc):
                    disp.wake()
                    await asyncio.sleep(seconds)
            finally:
                await receivers.aclose()

        await run_once(0.5)
        failed = len(hook.requests)
        assert failed >= 2
        hook.status, hook.body = 200, "ok"
        await run_once(0.5)
        assert len(hook.requests) == failed + 1  # delivered once; nothing new was queued
        keys = {r.json()["groupKey"] for r in hook.requests}
        assert keys == {"{}:{}"}
        assert [i.status for i in Outbox(engine, clock).items()] == ["sent"]
