"""Alerts and silences over HTTP: Alertmanager's API v2 (so Prometheus, amtool and Grafana
talk to watchkeeper as to an Alertmanager) and our own /api/v1 views with acks and history.

Mounted at ``/api``: ``router`` holds the routes anyone who can reach the port may call,
``mutating`` those behind the API token (``Authorization: Bearer TOKEN``).

Read: ``GET /api/v2/alerts`` (firing alerts in Alertmanager's ``gettableAlerts`` shape, with
``status.state`` active/suppressed, ``silencedBy``, ``inhibitedBy``; query parameters
``active``, ``silenced``, ``inhibited``, ``unprocessed``, ``filter`` (matchers, repeatable),
``receiver`` (a regex)), ``GET /api/v2/silences`` (``filter``), ``GET /api/v2/silence/{id}``,
``GET /api/v2/status``; ``GET /api/v1/alerts`` (pending and firing alerts with ack and
silence state; ``resolved_since`` adds recently resolved ones), ``GET /api/v1/alerts/history``.

Write (token): ``POST /api/v2/silences`` (``postableSilence``; answers ``{"silenceID": id}``),
``DELETE /api/v2/silence/{id}``, ``POST /api/v1/alerts/{alert}/ack`` (body ``{"by": ...,
"comment": ...}``; ``alert`` is a name, a fingerprint or matchers), ``DELETE
/api/v1/alerts/{alert}/ack``.

Intake, ``POST /api/v2/alerts``, authenticates on its own, because the senders are other
Prometheus servers rather than people: it accepts a request that carries the API token (or the
separate intake token, ``AppState.alert_intake_token``, so senders need not hold the token that
can also reload the server) as ``Authorization: Bearer ...`` — Prometheus sends one when its
``alerting.alertmanagers[].authorization`` has ``credentials`` — and, only when
``AppState.alert_intake_loopback`` is switched on, any request from a loopback address (a
Prometheus on the same host without an authorization block). Everything else is refused with
401. Loopback trust is off by default because a reverse proxy on the same host would make every
request look local.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import re
from typing import Any

from fastapi import APIRouter, HTTPException, Query, Request, Response

from watchkeeper import __version__
from watchkeeper.alerting.matchers import Matcher, matcher_from_api, matches, parse_matchers
from watchkeeper.alerting.model import Alert, AlertState, format_time
from watchkeeper.alerting.store import parse_am_time
from watchkeeper.errors import EnvironmentError_, InputError
from watchkeeper.web.state import AppState

__all__ = ["mutating", "router", "alert_to_v1"]

router = APIRouter(tags=["alerts"])
mutating = APIRouter(tags=["alerts"])


def _state(request: Request) -> AppState:
    state: AppState = request.app.state.wk
    if getattr(state, "alerts", None) is None or getattr(state, "silences", None) is None:
        raise EnvironmentError_("alerting is not running in this server")
    return state


def _who(request: Request) -> str | None:
    """The name of the API token's identity (web.app.require_token guards ``mutating``);
    recorded beside the body's ``createdBy``/``by``, which Alertmanager clients send."""
    identity = getattr(request.state, "identity", None)
    return identity.name if identity is not None else None


def _filters(texts: list[str] | None) -> list[Matcher]:
    out: list[Matcher] = []
    for text in texts or []:
        out.extend(parse_matchers(text))
    return out


def _receivers(state: AppState, labels: dict[str, str]) -> list[str]:
    hook = getattr(state, "alert_receivers", None)
    return list(hook(labels)) if hook is not None else []


# -- intake -----------------------------------------------------------------------------------
def _intake_allowed(request: Request, state: AppState) -> bool:
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and given.strip():
        tokens = [state.token, getattr(state, "alert_intake_token", None)]
        if any(t and hmac.compare_digest(given.strip().encode(), t.encode()) for t in tokens):
            return True
        return _named_token_ok(given.strip(), state)
    if getattr(state, "alert_intake_loopback", False) and request.client is not None:
        try:
            return ipaddress.ip_address(request.client.host).is_loopback
        except ValueError:
            return False
    return False


def _named_token_ok(given: str, state: AppState) -> bool:
    """A valid named API token (watchkeeper.auth) may post alerts too, whatever its roles."""
    from watchkeeper.errors import AuthenticationError

    store = getattr(state, "tokens", None)
    if store is None:
        return False
    try:
        store.verify(given)
    except AuthenticationError:
        return False
    return True


@router.post("/v2/alerts")
async def post_alerts(request: Request) -> Response:
    """Alertmanager's intake: a JSON array of ``postableAlert``; 200 with an empty body."""
    state = _state(request)
    if not await asyncio.to_thread(_intake_allowed, request, state):  # may read the store
        raise HTTPException(status_code=401, detail="alert intake needs 'Authorization: Bearer "
                            "TOKEN' (the API token, or alerting's intake token); in Prometheus "
                            "set alerting.alertmanagers[].authorization.credentials",
                            headers={"WWW-Authenticate": "Bearer"})
    try:
        body = await request.json()
    except ValueError as exc:
        raise InputError(f"the body is not JSON: {exc}") from None
    now = state.clock.time()
    timeout = float(getattr(state, "alert_resolve_timeout", 300.0))
    await asyncio.to_thread(state.alerts.receive, body, now, resolve_timeout=timeout)
    return Response(status_code=200)


# -- Alertmanager's read API --------------------------------------------------------------------
def _gettable(a: Alert, silenced: list[str], inhibited: list[str],
              receivers: list[str]) -> dict[str, Any]:
    suppressed = bool(silenced or inhibited)
    starts = a.fired_at if a.fired_at is not None else a.active_at
    return {
        "annotations": dict(a.annotations),
        "endsAt": format_time(a.ends_at),
        "fingerprint": a.fingerprint,
        "receivers": [{"name": r} for r in receivers],
        "startsAt": format_time(starts),
        "status": {"inhibitedBy": inhibited, "silencedBy": silenced, "mutedBy": [],
                   "state": "suppressed" if suppressed else "active"},
        "updatedAt": format_time(a.last_seen or starts),
        "generatorURL": a.generator_url,
        "labels": dict(a.labels),
    }


def _v2_alerts(state: AppState, active: bool, silenced: bool, inhibited: bool,
               filters: list[Matcher], receiver: re.Pattern[str] | None) -> list[dict[str, Any]]:
    now = state.clock.time()
    firing = [a for a in state.alerts.current() if a.state == AlertState.FIRING]
    out = []
    for a in firing:
        if not matches(filters, a.labels):
            continue
        receivers = _receivers(state, a.labels)
        if receiver is not None and not any(receiver.match(r) for r in receivers):
            continue
        st = state.muter.status(a, now, firing=firing) if state.muter is not None else None
        sil = st.silenced_by if st else state.silences.silencing(a.labels, now)
        inh = st.inhibited_by if st else []
        if sil and not silenced or inh and not inhibited or not (sil or inh) and not active:
            continue
        out.append(_gettable(a, sil, inh, receivers))
    return out


@router.get("/v2/alerts")
async def get_alerts_v2(request: Request, active: bool = True, silenced: bool = True,
                        inhibited: bool = True, unprocessed: bool = True,
                        filter: list[str] | None = Query(None),
                        receiver: str | None = None) -> list[dict[str, Any]]:
    """Firing alerts as Alertmanager lists them (``amtool alert query`` reads this)."""
    state = _state(request)
    rx = None
    if receiver:
        try:
            rx = re.compile(f"(?:{receiver})\\Z")
        except re.error as exc:
            raise InputError(f"receiver: invalid regular expression {receiver!r}: {exc}") from None
    return await asyncio.to_thread(_v2_alerts, state, active, silenced, inhibited,
                                   _filters(filter), rx)


@router.get("/v2/silences")
async def get_silences(request: Request,
                       filter: list[str] | None = Query(None)
                       ) -> list[dict[str, Any]]:
    """Every silence (active, pending, then expired), ``filter`` keeping those whose matchers
    equal the given ones (as ``amtool silence query`` filters)."""
    state = _state(request)
    wanted = {(m.name, m.op, m.value) for m in _filters(filter)}
    found = await asyncio.to_thread(state.silences.list)
    out = []
    for s in found:
        have = {(m.name, m.op, m.value) for m in s.matchers}
        if wanted <= have:
            out.append(state.silences.to_api(s))
    return out


@router.get("/v2/silence/{silence_id}")
async def get_silence(silence_id: str, request: Request) -> dict[str, Any]:
    state = _state(request)
    s = await asyncio.to_thread(state.silences.get, silence_id)
    out: dict[str, Any] = state.silences.to_api(s)
    return out


@router.get("/v2/status")
async def get_status(request: Request) -> dict[str, Any]:
    """Enough of Alertmanager's status for clients that check it (Grafana, amtool)."""
    state: AppState = request.app.state.wk
    return {"cluster": {"status": "disabled", "peers": [], "name": "watchkeeper"},
            "config": {"original": ""},
            "uptime": format_time(state.started or state.clock.time()),
            "versionInfo": {"version": __version__, "branch": "", "revision": "",
                            "buildUser": "", "buildDate": "", "goVersion": ""}}


def _silence_body(body: Any) -> tuple[list[Matcher], float, float, str, str, str | None]:
    if not isinstance(body, dict):
        raise InputError("the body must be a postableSilence object (matchers, startsAt, "
                         "endsAt, createdBy, comment)")
    raw = body.get("matchers")
    if not isinstance(raw, list) or not raw:
        raise InputError("matchers: must be a non-empty list of {name, value, isRegex, isEqual}")
    ms = [matcher_from_api(m, f"matchers[{i}]") for i, m in enumerate(raw)]
    starts = parse_am_time(body.get("startsAt"), "startsAt")
    ends = parse_am_time(body.get("endsAt"), "endsAt")
    if starts is None:
        raise InputError("startsAt: required (an RFC 3339 time)")
    if ends is None:
        raise InputError("endsAt: required (an RFC 3339 time)")
    by, comment, sid = body.get("createdBy"), body.get("comment"), body.get("id")
    if not isinstance(by, str):
        raise InputError("createdBy: required (who creates the silence)")
    if not isinstance(comment, str):
        raise InputError("comment: required (why)")
    if sid is not None and not isinstance(sid, str):
        raise InputError("id: must be a string")
    return ms, starts, ends, by, comment, sid or None


@mutating.post("/v2/silences")
async def post_silence(request: Request) -> dict[str, str]:
    """Create (or, with ``id``, update) a silence; answers ``{"silenceID": id}``."""
    state = _state(request)
    try:
        body = await request.json()
    except ValueError as exc:
        raise InputError(f"the body is not JSON: {exc}") from None
    ms, starts, ends, by, comment, sid = _silence_body(body)
    new_id = await asyncio.to_thread(state.silences.add, ms, starts_at=starts, ends_at=ends,
                                     created_by=by, comment=comment, id=sid,
                                     identity=_who(request))
    return {"silenceID": new_id}


@mutating.delete("/v2/silence/{silence_id}")
async def delete_silence(silence_id: str, request: Request) -> Response:
    state = _state(request)
    who = _who(request)
    await asyncio.to_thread(state.silences.expire, silence_id, state.clock.time(),
                            by=who or "api", identity=who)
    return Response(status_code=200)


# -- our own view -------------------------------------------------------------------------------
def alert_to_v1(a: Alert, silenced: list[str], inhibited: list[str]) -> dict[str, Any]:
    """One alert in ``/api/v1/alerts`` (times are Unix seconds)."""
    return {
        "fingerprint": a.fingerprint,
        "name": a.name,
        "state": a.state.value,
        "labels": dict(a.labels),
        "annotations": dict(a.annotations),
        "value": a.value,
        "source": a.source,
        "rule": a.rule,
        "active_at": a.active_at,
        "fired_at": a.fired_at,
        "resolved_at": a.resolved_at,
        "ends_at": a.ends_at,
        "keep_firing_since": a.keep_firing_since,
        "generator_url": a.generator_url,
        "ack": ({"by": a.acked_by, "at": a.acked_at, "comment": a.ack_comment or ""}
                if a.acked_by is not None else None),
        "silenced_by": silenced,
        "inhibited_by": inhibited,
    }


def _v1_alerts(state: AppState, resolved_since: float | None,
               filters: list[Matcher]) -> list[dict[str, Any]]:
    now = state.clock.time()
    alerts = state.alerts.current(resolved_since=resolved_since)
    firing = [a for a in alerts if a.state == AlertState.FIRING]
    out = []
    for a in alerts:
        if not matches(filters, a.labels):
            continue
        if a.state == AlertState.RESOLVED:
            out.append(alert_to_v1(a, [], []))
            continue
        st = state.muter.status(a, now, firing=firing) if state.muter is not None else None
        sil = st.silenced_by if st else state.silences.silencing(a.labels, now)
        out.append(alert_to_v1(a, sil, st.inhibited_by if st else []))
    return out


@router.get("/v1/alerts")
async def get_alerts_v1(request: Request, resolved_since: str | None = None,
                        filter: list[str] | None = Query(None)
                        ) -> dict[str, Any]:
    """Pending and firing alerts with ack, silence and inhibition state."""
    state = _state(request)
    since = None
    if resolved_since:
        from watchkeeper.web.api.params import parse_time

        since = parse_time(resolved_since, None, "resolved_since")
    items = await asyncio.to_thread(_v1_alerts, state, since, _filters(filter))
    return {"alerts": items}


@router.get("/v1/alerts/history")
async def get_history(request: Request, alert: str | None = None, since: str | None = None,
                      limit: int = Query(100, ge=1, le=10000)) -> dict[str, Any]:
    """State changes, newest first; ``alert`` (name, fingerprint or matchers) narrows them."""
    state = _state(request)
    t = None
    if since:
        from watchkeeper.web.api.params import parse_time

        t = parse_time(since, None, "since")

    def run() -> list[dict[str, Any]]:
        if alert is None:
            return state.alerts.history(None, since=t, limit=limit)  # type: ignore[no-any-return]
        fps = [a.fingerprint for a in state.alerts.find(alert)]
        if not fps:
            fps = [alert]  # perhaps a resolved alert's fingerprint, or a name no longer active
        rows: list[dict[str, Any]] = []
        for fp in fps:
            rows += state.alerts.history(fp, since=t, limit=limit)
        rows.sort(key=lambda r: r["ts"], reverse=True)
        return rows[:limit]

    return {"history": await asyncio.to_thread(run)}


async def _ack_body(request: Request) -> dict[str, Any]:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        body = await request.json()
    except ValueError as exc:
        raise InputError(f"the body is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InputError('the body must be an object: {"by": "...", "comment": "..."}')
    for key in ("by", "comment"):
        if key in body and not isinstance(body[key], str):
            raise InputError(f"{key}: must be a string")
    return body


@mutating.post("/v1/alerts/{alert}/ack")
async def ack_alert(alert: str, request: Request) -> dict[str, Any]:
    """Acknowledge every firing alert ``alert`` names; answers the acked alerts."""
    state = _state(request)
    body = await _ack_body(request)
    done = await asyncio.to_thread(state.alerts.ack, alert, body.get("by") or _who(request) or "api",
                                   body.get("comment", ""), state.clock.time(),
                                   identity=_who(request))
    return {"acked": [alert_to_v1(a, [], []) for a in done]}


@mutating.delete("/v1/alerts/{alert}/ack")
async def unack_alert(alert: str, request: Request, by: str = "api") -> dict[str, Any]:
    state = _state(request)
    done = await asyncio.to_thread(state.alerts.unack, alert, by, state.clock.time(),
                                   identity=_who(request))
    return {"unacked": [alert_to_v1(a, [], []) for a in done]}
