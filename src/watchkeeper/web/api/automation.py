"""Automation over HTTP: runs, runbooks, hosts, triggers; approvals and cancel.

Read (``router``): ``GET /api/v1/runs`` (``limit``, ``status``, ``runbook``), ``GET
/api/v1/runs/{id}`` (the run with every step per host), ``GET /api/v1/runs/{id}/events``
(server-sent events: ``event: run`` / ``event: step`` with a JSON ``data:`` line each, until
the run finishes, then ``event: end``), ``GET /api/v1/runbooks``, ``GET
/api/v1/runbooks/{name}``, ``GET /api/v1/hosts`` (``pattern``), ``GET /api/v1/triggers``.

Write (``mutating``, token): ``POST /api/v1/runs`` (``{"runbook", "params", "limit",
"check"}``; answers 202 with the run's id and URL; the run goes on in the server), ``POST
/api/v1/runs/{id}/approve`` and ``/reject`` (``{"comment"}``), ``POST
/api/v1/runs/{id}/cancel``, ``POST /api/v1/exec`` (``{"pattern", "command", "forks",
"timeout"}``: an ad-hoc command over the server's warm connections).

Who did it is the API token's identity (watchkeeper.auth), recorded as ``started_by`` or
``by``; an approval step's role is checked against the token's roles. A body's ``by`` or
``started_by`` (from before named tokens) is accepted only when it is the token's own name,
and ``roles`` not at all: nobody declares who they are or what they may do.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from watchkeeper.auth import Identity
from watchkeeper.errors import EnvironmentError_, InputError
from watchkeeper.web.app import require_token

__all__ = ["mutating", "router"]

router = APIRouter(tags=["automation"])
mutating = APIRouter(tags=["automation"])
Caller = Annotated[Identity, Depends(require_token)]


def _claimed(field: str, value: str | None, identity: Identity) -> None:
    """Refuse a body that names someone other than the token's identity."""
    if value is not None and value != identity.name:
        raise InputError(f"{field}: who acts is the API token's identity ({identity.name!r}), "
                         f"not {value!r}; leave {field!r} out",
                         hint="give each person or system its own token: `watchkeeper tokens "
                              "create NAME --role ROLE`")


def _service(request: Request) -> Any:
    svc = request.app.state.wk.extra.get("automation")
    if svc is None:
        raise EnvironmentError_("automation is not running in this server")
    return svc


class StartRun(BaseModel):
    model_config = {"extra": "forbid"}

    runbook: str = Field(min_length=1)
    params: dict[str, Any] = Field(default_factory=dict)
    limit: str | None = None
    check: bool = False
    started_by: str | None = Field(None, min_length=1, max_length=200)  # must be the token's


class Decision(BaseModel):
    model_config = {"extra": "forbid"}

    by: str | None = Field(None, min_length=1, max_length=200)  # must be the token's name
    comment: str = ""
    roles: Any = None  # refused: roles come from the API token


@router.get("/runs")
def list_runs(request: Request, limit: int = Query(50, ge=1, le=1000), status: str | None = None,
              runbook: str | None = None) -> dict[str, Any]:
    svc = _service(request)
    runs = svc.runs.list(limit=limit, status=status, runbook=runbook)
    return {"runs": [r.to_dict() for r in runs]}


@router.get("/runs/{run_id}")
def get_run(request: Request, run_id: str) -> dict[str, Any]:
    rec = _service(request).runs.get(run_id)
    out: dict[str, Any] = rec.to_dict()
    return out


@router.get("/runs/{run_id}/events")
async def run_events(request: Request, run_id: str) -> StreamingResponse:
    svc = _service(request)
    rec = svc.runs.get(run_id)  # 404 before the stream starts

    async def stream() -> AsyncIterator[bytes]:
        async for ev in svc.runs.subscribe(rec.id):
            if await request.is_disconnected():
                return
            data = json.dumps(ev.to_dict(), default=str, separators=(",", ":"))
            yield f"event: {ev.kind}\ndata: {data}\n\n".encode()
        yield b"event: end\ndata: {}\n\n"

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


@router.get("/runbooks")
def list_runbooks(request: Request) -> dict[str, Any]:
    lib = _service(request).library
    return {"directory": str(lib.directory) if lib.directory else None,
            "runbooks": [rb.summary() for rb in lib.list()],
            "errors": [str(i) for i in lib.validate()]}


@router.get("/runbooks/{name}")
def get_runbook(request: Request, name: str) -> dict[str, Any]:
    out: dict[str, Any] = _service(request).library.get(name).summary()
    return out


@router.get("/hosts")
def list_hosts(request: Request, pattern: str = "all") -> dict[str, Any]:
    from watchkeeper.automation.inventory import host_to_dict

    inv = _service(request).inventory
    return {"pattern": pattern, "hosts": [host_to_dict(h) for h in inv.select(pattern)]}


@router.get("/triggers")
def list_triggers(request: Request) -> dict[str, Any]:
    return {"triggers": _service(request).triggers_info()}


@mutating.post("/runs", status_code=202)
async def start_run(request: Request, body: StartRun, identity: Caller) -> JSONResponse:
    _claimed("started_by", body.started_by, identity)
    svc = _service(request)
    run_id = svc.start(body.runbook, body.params, limit=body.limit, check_mode=body.check,
                       trigger="api", started_by=identity.name)
    return JSONResponse({"id": run_id, "url": f"/api/v1/runs/{run_id}",
                         "events": f"/api/v1/runs/{run_id}/events"}, status_code=202)


def _decide(request: Request, run_id: str, body: Decision | None, identity: Identity,
            decision: str) -> dict[str, Any]:
    body = body or Decision()
    if body.roles is not None:
        raise InputError(f"roles: an approver's roles come from their API token, not from the "
                         f"request ({identity.name} has {identity.describe_roles()}); leave "
                         "'roles' out",
                         hint="an admin gives a token roles: `watchkeeper tokens create NAME "
                              "--role ROLE`")
    _claimed("by", body.by, identity)
    runs = _service(request).runs
    method = runs.approve if decision == "approve" else runs.reject
    out: dict[str, Any] = method(run_id, by=identity.name, comment=body.comment,
                                 roles=set(identity.roles)).to_dict()
    return out


@mutating.post("/runs/{run_id}/approve")
def approve(request: Request, run_id: str, identity: Caller,
            body: Decision | None = None) -> dict[str, Any]:
    return _decide(request, run_id, body, identity, "approve")


@mutating.post("/runs/{run_id}/reject")
def reject(request: Request, run_id: str, identity: Caller,
           body: Decision | None = None) -> dict[str, Any]:
    return _decide(request, run_id, body, identity, "reject")


@mutating.post("/runs/{run_id}/cancel")
def cancel(request: Request, run_id: str, identity: Caller,
           body: Decision | None = None) -> dict[str, Any]:
    _claimed("by", body.by if body is not None else None, identity)
    out: dict[str, Any] = _service(request).runs.cancel(run_id, by=identity.name).to_dict()
    return out


class ExecRequest(BaseModel):
    model_config = {"extra": "forbid"}

    pattern: str = Field(min_length=1)
    command: str = Field(min_length=1)
    forks: int = Field(50, ge=1, le=10000)
    timeout: float | None = Field(None, gt=0)
    started_by: str | None = Field(None, min_length=1, max_length=200)  # must be the token's


@mutating.post("/exec")
async def exec_command(body: ExecRequest, request: Request, identity: Caller) -> dict[str, Any]:
    """Run a shell command on every host the pattern selects, over the server's pooled
    connections (warm: no SSH handshake per call). Answers one result per host, as
    ``watchkeeper exec --json`` prints them; the event log records who ran what."""
    from watchkeeper.automation.adhoc import run_adhoc
    from watchkeeper.automation.command import Command

    _claimed("started_by", body.started_by, identity)
    svc = _service(request)
    hosts = svc.inventory.select(body.pattern)
    if svc.executors is None:
        raise EnvironmentError_("automation executors are not ready yet")
    results = await run_adhoc(hosts, Command.shell(body.command), svc.executors,
                              forks=body.forks, timeout=body.timeout)
    counts: dict[str, int] = {}
    for r in results:
        counts[r.status] = counts.get(r.status, 0) + 1
    svc.eventlog.append("exec.ran", body.pattern, {"command": body.command, "hosts": len(results),
                                                    **counts}, actor=identity.name)
    return {"results": [r.to_dict() for r in results]}
