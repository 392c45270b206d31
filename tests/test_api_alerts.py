"""The alerting HTTP API served by a real uvicorn on 127.0.0.1, talked to by httpx, by the
real ``amtool`` (Alertmanager's own client), by a real Prometheus 2.42 sending its alerts,
and by the ``watchkeeper alerts | ack | silence`` commands.

Behind the API: an AlertStore, Silences and an AlertMuter on a SQLite file, the event log.
The server runs on the system clock, since amtool and Prometheus send real times.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import typer
from fastapi import Depends
from typer.testing import CliRunner

from tests.e2e_helpers import ServerThread
from watchkeeper.alerting.inhibit import Inhibitor, InhibitRule
from watchkeeper.alerting.model import fingerprint
from watchkeeper.alerting.mute import AlertMuter
from watchkeeper.alerting.silences import Silences
from watchkeeper.alerting.store import ActiveAlert, AlertStore
from watchkeeper.cli.alerts_cmd import ack, alerts, silence_app
from watchkeeper.clock import SystemClock
from watchkeeper.errors import InputError, NotFoundError
from watchkeeper.eventlog import EventLog
from watchkeeper.query.engine import QueryEngine
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB
from watchkeeper.web.api import alerts as alerts_api
from watchkeeper.web.app import create_app, require_token
from watchkeeper.web.state import AppState

TOKEN = "alerts-test-token-0123456789"
INTAKE = "intake-token-abcdefghijklmn"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
AMTOOL = shutil.which("amtool")
PROMETHEUS = shutil.which("prometheus")


@dataclass
class Env:
    base: str
    http: httpx.Client
    state: AppState
    store: AlertStore
    silences: Silences
    eventlog: EventLog
    tmp: Path


INHIBIT = InhibitRule(source_matchers=['severity="critical"'],
                      target_matchers=['severity="warning"'], equal=["instance"])


def build_app(state: AppState) -> Any:
    app = create_app(state)
    # the lead mounts these in create_app; until then (or if not), mount them here
    if not any(getattr(r, "path", "") == "/api/v2/alerts" for r in app.routes):
        app.include_router(alerts_api.router, prefix="/api")
        app.include_router(alerts_api.mutating, prefix="/api", dependencies=[Depends(require_token)])
    return app


@pytest.fixture
def api(tmp_path: Path) -> Iterator[Env]:
    engine = open_engine(None, tmp_path / "data")
    clock = SystemClock()
    eventlog = EventLog(engine, clock=clock)
    store = AlertStore(engine, eventlog=eventlog, clock=clock)
    silences = Silences(engine, clock, eventlog=eventlog)
    tsdb = TSDB(engine, clock=clock)
    state = AppState(engine=engine, tsdb=tsdb, eventlog=eventlog, query=QueryEngine(tsdb),
                     clock=clock, token=TOKEN, started=time.time(), alerts=store,
                     silences=silences, muter=AlertMuter(silences, Inhibitor([INHIBIT]), store),
                     alert_receivers=lambda labels: ["team-" + labels.get("team", "ops")],
                     alert_intake_token=INTAKE)
    listener = ServerThread()
    http: httpx.Client | None = None
    try:
        listener.start(build_app(state))
        http = httpx.Client(base_url=listener.base, timeout=30, trust_env=False)
        yield Env(listener.base, http, state, store, silences, eventlog, tmp_path)
    finally:
        if http is not None:
            http.close()
        listener.stop()
        engine.dispose()


def post_alerts(env: Env, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return env.http.post("/api/v2/alerts", json=body, headers=BEARER if headers is None else headers)


def fire(env: Env, rule: str, *label_sets: dict[str, str], for_: float = 0) -> None:
    env.store.sync_rule(rule, [ActiveAlert(ls, {"summary": "s"}, 1.0) for ls in label_sets],
                        time.time(), for_=for_)


# -- intake -------------------------------------------------------------------------------------
def test_intake_accepts_alertmanager_v2_alerts(api: Env) -> None:
    r = post_alerts(api, [{"labels": {"alertname": "Up", "job": "node"},
                           "annotations": {"summary": "node down"},
                           "startsAt": "2024-01-01T00:00:00Z",
                           "generatorURL": "http://prom:9090/graph"}])
    assert (r.status_code, r.content) == (200, b"")
    a = api.store.get(fingerprint({"alertname": "Up", "job": "node"}))
    assert (a.state.value, a.source, a.annotations) == ("firing", "api", {"summary": "node down"})
    assert a.ends_at == pytest.approx(time.time() + 300, abs=5)  # the default resolve_timeout


@pytest.mark.parametrize(("headers", "status"), [
    ({}, 401),
    ({"Authorization": "Bearer wrong-token"}, 401),
    ({"Authorization": f"Basic {TOKEN}"}, 401),
    (BEARER, 200),
    ({"Authorization": f"Bearer {INTAKE}"}, 200),
])
def test_intake_needs_a_token(api: Env, headers: dict[str, str], status: int) -> None:
    r = post_alerts(api, [{"labels": {"alertname": "X"}}], headers)
    assert r.status_code == status, r.text
    if status == 401:
        assert "Authorization: Bearer" in r.json()["error"]
        assert r.headers["www-authenticate"] == "Bearer"
        assert api.store.current() == []


def test_intake_from_loopback_when_allowed(api: Env) -> None:
    api.state.alert_intake_loopback = True
    assert post_alerts(api, [{"labels": {"alertname": "X"}}], {}).status_code == 200
    # a wrong token is refused even from loopback: it is a misconfigured sender
    assert post_alerts(api, [{"labels": {"alertname": "X"}}],
                       {"Authorization": "Bearer nope"}).status_code == 401


def test_intake_validation_errors_name_index_and_field(api: Env) -> None:
    r = post_alerts(api, [{"labels": {"alertname": "A"}}, {"labels": {"alertname": "B"}},
                          {"labels": {}}])
    assert r.status_code == 400
    assert r.json() == {"error": "alerts[2].labels: must not be empty", "type": "InputError",
                        "hint": "2 of 3 alerts were valid and accepted"}
    assert sorted(a.name for a in api.store.current()) == ["A", "B"]
    r = api.http.post("/api/v2/alerts", content=b"{not json", headers=BEARER)
    assert r.status_code == 400 and r.json()["error"].startswith("the body is not JSON")
    r = post_alerts(api, {"labels": {"alertname": "A"}})
    assert r.status_code == 400 and "JSON array" in r.json()["error"]


# -- Alertmanager's GET /api/v2/alerts ------------------------------------------------------------
def test_get_alerts_in_alertmanager_shape_with_silences_and_inhibition(api: Env) -> None:
    fire(api, "g/Crit", {"alertname": "Crit", "severity": "critical", "instance": "a"})
    fire(api, "g/Warn", {"alertname": "Warn", "severity": "warning", "instance": "a"},
         {"alertname": "Warn", "severity": "warning", "instance": "b", "team": "db"})
    fire(api, "g/Pend", {"alertname": "Pend", "instance": "a"}, for_=600)
    sid = api.http.post("/api/v2/silences", headers=BEARER, json={
        "matchers": [{"name": "instance", "value": "b", "isRegex": False}],
        "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
        "createdBy": "alice", "comment": "maintenance"}).json()["silenceID"]
    got = api.http.get("/api/v2/alerts").json()
    by = {(a["labels"]["alertname"], a["labels"]["instance"]): a for a in got}
    assert sorted(by) == [("Crit", "a"), ("Warn", "a"), ("Warn", "b")]  # pending is not listed
    crit = by["Crit", "a"]
    assert set(crit) == {"annotations", "endsAt", "fingerprint", "receivers", "startsAt", "status",
                         "updatedAt", "generatorURL", "labels"}
    assert crit["status"] == {"state": "active", "silencedBy": [], "inhibitedBy": [], "mutedBy": []}
    assert crit["receivers"] == [{"name": "team-ops"}]
    assert crit["endsAt"] == "0001-01-01T00:00:00Z"
    assert crit["startsAt"].endswith("Z") and crit["annotations"] == {"summary": "s"}
    assert by["Warn", "a"]["status"] == {"state": "suppressed", "silencedBy": [],
                                         "inhibitedBy": [crit["fingerprint"]], "mutedBy": []}
    assert by["Warn", "b"]["status"] == {"state": "suppressed", "silencedBy": [sid],
                                         "inhibitedBy": [], "mutedBy": []}

    def names(**params: Any) -> list[tuple[str, str]]:
        r = api.http.get("/api/v2/alerts", params=params)
        assert r.status_code == 200, r.text
        return sorted((a["labels"]["alertname"], a["labels"]["instance"]) for a in r.json())

    assert names(silenced="false") == [("Crit", "a"), ("Warn", "a")]
    assert names(inhibited="false") == [("Crit", "a"), ("Warn", "b")]
    assert names(active="false") == [("Warn", "a"), ("Warn", "b")]
    assert names(filter=["alertname=Warn", 'instance=~"a|b"']) == [("Warn", "a"), ("Warn", "b")]
    assert names(filter='severity!="warning"') == [("Crit", "a")]
    assert names(receiver="team-d.*") == [("Warn", "b")]
    r = api.http.get("/api/v2/alerts", params={"filter": 'a=~"("'})
    assert r.status_code == 400 and "invalid regular expression" in r.json()["error"]


# -- silences ---------------------------------------------------------------------------------
SILENCE = {"matchers": [{"name": "alertname", "value": "Disk.*", "isRegex": True, "isEqual": True}],
           "startsAt": "2020-01-01T00:00:00Z", "endsAt": "2099-01-01T00:00:00Z",
           "createdBy": "alice", "comment": "disk swap"}


def test_silence_crud(api: Env) -> None:
    assert api.http.post("/api/v2/silences", json=SILENCE).status_code == 401
    r = api.http.post("/api/v2/silences", json=SILENCE, headers=BEARER)
    assert r.status_code == 200, r.text
    sid = r.json()["silenceID"]
    one = api.http.get(f"/api/v2/silence/{sid}").json()
    assert one["status"] == {"state": "active"} and one["endsAt"] == "2099-01-01T00:00:00.000Z"
    assert one["matchers"] == SILENCE["matchers"]
    assert [s["id"] for s in api.http.get("/api/v2/silences").json()] == [sid]
    assert api.http.get("/api/v2/silences", params={"filter": 'alertname=~"Disk.*"'}).json() != []
    assert api.http.get("/api/v2/silences", params={"filter": "alertname=Disk"}).json() == []
    # update in place: same id, new end
    r = api.http.post("/api/v2/silences", headers=BEARER, json={
        **SILENCE, "id": sid, "startsAt": one["startsAt"], "endsAt": "2098-01-01T00:00:00Z"})
    assert r.json() == {"silenceID": sid}
    assert api.http.delete(f"/api/v2/silence/{sid}").status_code == 401
    r = api.http.delete(f"/api/v2/silence/{sid}", headers=BEARER)
    assert (r.status_code, r.content) == (200, b"")
    assert api.http.get(f"/api/v2/silence/{sid}").json()["status"] == {"state": "expired"}
    r = api.http.delete(f"/api/v2/silence/{sid}", headers=BEARER)
    assert r.status_code == 400 and "already expired" in r.json()["error"]
    r = api.http.get("/api/v2/silence/no-such-id")
    assert r.status_code == 404 and r.json()["error"] == "no silence with id 'no-such-id'"


@pytest.mark.parametrize(("change", "message"), [
    ({"matchers": []}, "matchers: must be a non-empty list"),
    ({"matchers": [{"name": "a", "value": "", "isRegex": False}]},
     "at least one matcher must not match the empty string"),
    ({"matchers": [{"name": "a", "value": "(", "isRegex": True}]},
     "matchers[0].value: invalid regular expression"),
    ({"endsAt": "2019-01-01T00:00:00Z"}, "a silence cannot end before it starts"),
    ({"startsAt": "2001-01-01T00:00:00Z", "endsAt": "2002-01-01T00:00:00Z"},
     "a silence cannot end in the past"),
    ({"startsAt": "soon"}, "startsAt: 'soon' is not an RFC 3339 time"),
    ({"createdBy": None}, "createdBy: required"),
    ({"comment": 5}, "comment: required"),
])
def test_silence_validation(api: Env, change: dict[str, Any], message: str) -> None:
    r = api.http.post("/api/v2/silences", json={**SILENCE, **change}, headers=BEARER)
    assert r.status_code == 400
    assert r.json()["error"].startswith(message), r.json()


# -- our v1 view, acks and history --------------------------------------------------------------
def test_v1_alerts_ack_and_history(api: Env) -> None:
    fire(api, "g/Crit", {"alertname": "Crit", "severity": "critical", "instance": "a"})
    fire(api, "g/Pend", {"alertname": "Pend", "instance": "a"}, for_=600)
    items = api.http.get("/api/v1/alerts").json()["alerts"]
    assert [(a["name"], a["state"], a["ack"], a["silenced_by"]) for a in items] == [
        ("Crit", "firing", None, []), ("Pend", "pending", None, [])]
    assert api.http.post("/api/v1/alerts/Crit/ack", json={"by": "alice"}).status_code == 401
    r = api.http.post("/api/v1/alerts/Crit/ack", json={"by": "alice", "comment": "on it"},
                      headers=BEARER)
    assert r.status_code == 200, r.text
    assert [(a["name"], a["ack"]["by"], a["ack"]["comment"]) for a in r.json()["acked"]] == [
        ("Crit", "alice", "on it")]
    r = api.http.post("/api/v1/alerts/Pend/ack", json={"by": "alice"}, headers=BEARER)
    assert r.status_code == 404 and r.json()["error"] == "no firing alert matches 'Pend'"
    assert api.http.get("/api/v1/alerts").json()["alerts"][0]["ack"]["by"] == "alice"
    fp = fingerprint({"alertname": "Crit", "severity": "critical", "instance": "a"})
    r = api.http.delete(f"/api/v1/alerts/{fp}/ack", params={"by": "bob"}, headers=BEARER)
    assert [a["ack"] for a in r.json()["unacked"]] == [None]
    hist = api.http.get("/api/v1/alerts/history", params={"alert": "Crit"}).json()["history"]
    assert [h["state"] for h in hist] == ["unacked", "acked", "firing"]
    assert hist[0]["detail"] == "ack by alice taken back by bob"
    fire(api, "g/Crit")  # resolves
    assert api.http.get("/api/v1/alerts").json()["alerts"][0]["name"] == "Pend"
    items = api.http.get("/api/v1/alerts", params={"resolved_since": "0"}).json()["alerts"]
    assert [(a["name"], a["state"]) for a in items] == [("Crit", "resolved"), ("Pend", "pending")]
    hist = api.http.get("/api/v1/alerts/history", params={"alert": fp, "limit": 1}).json()
    assert [h["state"] for h in hist["history"]] == ["resolved"]
    assert len(api.http.get("/api/v1/alerts/history").json()["history"]) == 5


def test_alerting_not_running_is_503(tmp_path: Path) -> None:
    engine = open_engine(None, tmp_path)
    tsdb = TSDB(engine)
    state = AppState(engine=engine, tsdb=tsdb, eventlog=EventLog(engine), query=QueryEngine(tsdb),
                     clock=SystemClock(), token=TOKEN)
    listener = ServerThread()
    try:
        listener.start(build_app(state))
        with httpx.Client(base_url=listener.base, trust_env=False) as http:
            r = http.get("/api/v2/alerts")
        assert r.status_code == 503 and r.json()["error"] == "alerting is not running in this server"
    finally:
        listener.stop()
        engine.dispose()


# -- amtool, Alertmanager's own command-line client ----------------------------------------------
def amtool(env: Env, *args: str) -> str:
    assert AMTOOL, "amtool is missing: apt-get install prometheus-alertmanager"
    cfg = env.tmp / "amtool-http.yml"
    cfg.write_text(f"authorization:\n  type: Bearer\n  credentials: {TOKEN}\n")
    proc = subprocess.run([AMTOOL, f"--alertmanager.url={env.base}", f"--http.config.file={cfg}",
                           *args], capture_output=True, text=True, timeout=30, check=False,
                          env={"HOME": str(env.tmp), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc.stdout


def test_amtool_alerts_and_silences(api: Env) -> None:
    amtool(api, "alert", "add", "alertname=FromAmtool", "severity=warning", "instance=a",
           "--annotation=summary=added by amtool")
    a = api.store.get(fingerprint({"alertname": "FromAmtool", "severity": "warning",
                                   "instance": "a"}))
    assert (a.state.value, a.source, a.annotations) == ("firing", "api",
                                                        {"summary": "added by amtool"})
    fire(api, "g/Crit", {"alertname": "Crit", "severity": "critical", "instance": "a"})
    # amtool hides inhibited and silenced alerts unless asked (inhibited=false&silenced=false)
    got = json.loads(amtool(api, "alert", "query", "-o", "json"))
    assert sorted(x["labels"]["alertname"] for x in got) == ["Crit"]
    got = json.loads(amtool(api, "alert", "query", "-o", "json", "--inhibited"))
    assert sorted(x["labels"]["alertname"] for x in got) == ["FromAmtool"]  # active=false
    got = json.loads(amtool(api, "alert", "query", "-o", "json", "--active", "--inhibited"))
    assert sorted(x["labels"]["alertname"] for x in got) == ["Crit", "FromAmtool"]
    got = json.loads(amtool(api, "alert", "query", "-o", "json", "-i", "alertname=FromAmtool"))
    assert [x["status"]["state"] for x in got] == ["suppressed"]  # inhibited by Crit
    # silences: add, query, expire
    sid = amtool(api, "silence", "add", "alertname=FromAmtool", 'instance=~"a|b"',
                 "--comment=amtool test", "--author=carol", "--duration=2h").strip()
    s = api.silences.get(sid)
    assert [(m.name, m.op, m.value) for m in s.matchers] == [("alertname", "=", "FromAmtool"),
                                                             ("instance", "=~", "a|b")]
    assert (s.created_by, s.comment) == ("carol", "amtool test")
    assert s.ends_at - s.starts_at == pytest.approx(7200, abs=2)
    listed = json.loads(amtool(api, "silence", "query", "-o", "json"))
    assert [x["id"] for x in listed] == [sid]
    assert amtool(api, "silence", "query", "-q").split() == [sid]
    got = json.loads(amtool(api, "alert", "query", "-o", "json", "-i", "-s",
                            "alertname=FromAmtool"))
    assert got[0]["status"]["silencedBy"] == [sid]
    amtool(api, "silence", "expire", sid)
    assert api.silences.get(sid).state(time.time()) == "expired"
    assert amtool(api, "silence", "query", "-q").split() == []


# -- a real Prometheus sending its alerts here -------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_prometheus_sends_alerts_with_its_bearer_token(api: Env) -> None:
    assert PROMETHEUS, "prometheus is missing: apt-get install prometheus"
    (api.tmp / "rules.yml").write_text("""
groups:
  - name: g
    interval: 1s
    rules:
      - alert: AlwaysOn
        expr: vector(42)
        labels: {severity: page}
        annotations: {summary: "value {{ $value }}"}
""")
    (api.tmp / "prometheus.yml").write_text(f"""
global: {{evaluation_interval: 1s}}
rule_files: [{api.tmp / "rules.yml"}]
alerting:
  alertmanagers:
    - api_version: v2
      authorization: {{credentials: {INTAKE}}}
      static_configs: [{{targets: ["127.0.0.1:{api.base.rsplit(':', 1)[1]}"]}}]
""")
    proc = subprocess.Popen([PROMETHEUS, f"--config.file={api.tmp / 'prometheus.yml'}",
                             f"--storage.tsdb.path={api.tmp / 'prom'}",
                             f"--web.listen-address=127.0.0.1:{_free_port()}",
                             # its first send can come before the target is known: resend soon
                             "--rules.alert.resend-delay=1s"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        fp = fingerprint({"alertname": "AlwaysOn", "severity": "page"})
        deadline = time.monotonic() + 30
        while True:
            found = [a for a in api.store.current() if a.fingerprint == fp]
            if found or time.monotonic() > deadline or proc.poll() is not None:
                break
            time.sleep(0.1)
        assert found, "Prometheus did not deliver its alert within 30 s"
        a = found[0]
        assert (a.state.value, a.source, a.annotations) == ("firing", "api",
                                                            {"summary": "value 42"})
        assert "/graph?g0.expr=vector%2842%29" in a.generator_url
        # Prometheus sends an endsAt a few evaluation intervals ahead
        assert a.ends_at is not None and time.time() < a.ends_at < time.time() + 300
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
        assert proc.returncode is not None
        # not a bare "401": log timestamps such as 12:40:14.401Z contain it
        assert b"401 Unauthorized" not in err, err.decode(errors="replace")[-2000:]


# -- the watchkeeper commands ----------------------------------------------------------------
@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer()
    app.command("alerts")(alerts)
    app.command("ack")(ack)
    app.add_typer(silence_app, name="silence")
    return app


def run(cli: typer.Typer, env: Env, *args: str, token: str | None = TOKEN) -> Any:
    envvars = {"WATCHKEEPER_TOKEN": token or "", "NO_COLOR": "1", "WATCHKEEPER_SERVER": None,
               "WATCHKEEPER_CONFIG": None, "WATCHKEEPER_DATA_DIR": None}
    return CliRunner().invoke(cli, [*args, "--server", env.base], env=envvars)


def test_cli_alerts_ack_and_silences(api: Env, cli: typer.Typer) -> None:
    r = run(cli, api, "alerts")
    assert (r.exit_code, r.output) == (0, "no pending or firing alerts\n")
    fire(api, "g/Crit", {"alertname": "Crit", "severity": "critical", "instance": "a"})
    fire(api, "g/Pend", {"alertname": "Pend", "instance": "a"}, for_=600)
    r = run(cli, api, "alerts")
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert lines[0].split() == ["STATE", "ALERT", "SINCE", "FINGERPRINT", "MUTED/ACK", "LABELS"]
    assert lines[1].split()[:2] == ["firing", "Crit"] and lines[2].split()[:2] == ["pending", "Pend"]
    r = run(cli, api, "ack", "Crit", "--comment", "swapping disk", "--author", "dave")
    assert r.exit_code == 0, r.output
    fp = fingerprint({"alertname": "Crit", "severity": "critical", "instance": "a"})
    assert r.output == f"acknowledged Crit {fp} instance=a,severity=critical\n"
    r = run(cli, api, "alerts", "--json")
    data = json.loads(r.output)
    assert [(a["name"], (a["ack"] or {}).get("by")) for a in data] == [("Crit", "dave"),
                                                                        ("Pend", None)]
    r = run(cli, api, "ack", "Crit", "--undo")
    assert r.exit_code == 0 and r.output.startswith("unacknowledged Crit")
    r = run(cli, api, "ack", "Nope")
    assert isinstance(r.exception, NotFoundError)
    assert r.exception.message == "no firing alert matches 'Nope'"
    r = run(cli, api, "ack", "Crit", token="wrong")
    assert isinstance(r.exception, InputError) and "refused the API token" in r.exception.message

    r = run(cli, api, "silence", "add", "alertname=Crit", 'instance=~"a|b"', "--duration", "2h",
            "--comment", "maintenance", "--author", "erin")
    assert r.exit_code == 0, r.output
    sid = r.output.strip()
    assert api.silences.get(sid).created_by == "erin"
    r = run(cli, api, "alerts")
    assert "silenced" in r.output.splitlines()[1]
    r = run(cli, api, "silence", "list")
    assert r.exit_code == 0
    row = r.output.splitlines()[1]
    assert row.startswith(sid) and 'alertname="Crit",instance=~"a|b"' in row and "erin" in row
    listed = json.loads(run(cli, api, "silence", "list", "--json").output)
    assert [s["id"] for s in listed] == [sid]
    r = run(cli, api, "silence", "expire", sid)
    assert (r.exit_code, r.output) == (0, f"expired {sid}\n")
    assert run(cli, api, "silence", "list").output == "no silences\n"
    assert sid in run(cli, api, "silence", "list", "--expired").output
    r = run(cli, api, "silence", "add", "a=", "--comment", "x")
    assert isinstance(r.exception, InputError)
    assert "at least one matcher must not match the empty string" in r.exception.message
    r = run(cli, api, "silence", "add", "a=b", "--comment", "x", "--duration", "soon")
    assert isinstance(r.exception, InputError) and "--duration 'soon'" in r.exception.message


def test_cli_reads_token_from_data_dir(api: Env, cli: typer.Typer, tmp_path: Path) -> None:
    fire(api, "g/Crit", {"alertname": "Crit", "instance": "a"})
    data = tmp_path / "wkdata"
    data.mkdir()
    (data / "token").write_text(TOKEN + "\n")
    config = tmp_path / "watchkeeper.yaml"
    config.write_text("collectors:\n  host:\n    enabled: false\n")
    envvars = {"WATCHKEEPER_TOKEN": None, "WATCHKEEPER_SERVER": None, "WATCHKEEPER_CONFIG": None,
               "WATCHKEEPER_DATA_DIR": None}
    r = CliRunner().invoke(cli, ["ack", "Crit", "--server", api.base, "--config", str(config),
                                 "--data-dir", str(data)], env=envvars)
    assert r.exit_code == 0, (r.output, r.exception)
    assert api.store.get(fingerprint({"alertname": "Crit", "instance": "a"})).acked_by


def test_cli_server_down(cli: typer.Typer) -> None:
    port = _free_port()
    r = CliRunner().invoke(cli, ["alerts", "--server", f"http://127.0.0.1:{port}"])
    assert type(r.exception).__name__ == "ServerUnreachableError"
