"""Contract tests of the HTTP API: the Prometheus query endpoints as Prometheus answers them,
our REST endpoints, /metrics as scrapers parse it, and garbage that must never give a 500.

The app runs in a real uvicorn server in a thread on 127.0.0.1 (an ephemeral port),
as ``watchkeeper up`` runs it, rather than in Starlette's TestClient: the HTTP parser
(h11), its limits on huge request lines and the bytes on the wire are part of the
contract, and a scrape check can fetch the server's own /metrics over a socket.
Behind it are the real parts: a TSDB and an event log on a SQLite file, a
MonitorService with ``file`` and ``scrape`` checks, the Server's own reload.
"""

from __future__ import annotations

import asyncio
import math
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e_helpers import ServerThread
from watchkeeper.config import load_config
from watchkeeper.monitor.exposition import parse_families, parse_text
from watchkeeper.monitor.model import Sample
from watchkeeper.monitor.service import MonitorService
from watchkeeper.query.engine import QueryEngine
from watchkeeper.server import Server
from watchkeeper.testing import FakeClock
from watchkeeper.web.app import create_app
from watchkeeper.web.state import AppState

T0 = 1_700_000_000.0  # the fake clock's wall time: "now" for every query without a time
TOKEN = "test-token-0123456789abcdef"
BEARER = {"Authorization": f"Bearer {TOKEN}"}
PROM_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


# -- a real server in a thread ---------------------------------------------------------------
@dataclass
class Env:
    base: str
    http: httpx.Client
    server: Server
    monitor: MonitorService
    clock: FakeClock
    config: Path
    files: Path


CONFIG = """\
server:
  token: {token}
collectors:
  host:
    enabled: false
checks:
  - name: present
    type: file
    path: {files}/present.txt
    labels: {{team: ops}}
  - name: missing
    type: file
    path: {files}/missing.txt
    max_attempts: 3
  - name: absent
    type: file
    path: {files}/absent.txt
    exists: false
  - name: self-scrape
    type: scrape
    interval: 60s
    url: {base}/metrics
"""


def _gauge(job: str, instance: str, factor: float) -> list[Sample]:
    # 41 samples, every 15 s, from T0 - 600 to T0: value i * factor
    return [Sample("api_gauge", {"job": job, "instance": instance}, i * factor, T0 - 600 + 15 * i)
            for i in range(41)]


async def _run_file_checks(env_monitor: MonitorService, clock: FakeClock) -> None:
    for _ in range(3):  # "missing" goes SOFT 1, SOFT 2, HARD 3
        for name in ("present", "missing", "absent"):
            await env_monitor.run_check(name)
        clock.advance(10)
    await env_monitor.flush()


@contextmanager
def running_api(tmp: Path) -> Iterator[Env]:
    """Build the whole stack over SQLite in ``tmp`` and serve it; stop and close on exit."""
    files = tmp / "files"
    files.mkdir()
    (files / "present.txt").write_text("hello")
    listener = ServerThread()
    config = tmp / "watchkeeper.yaml"
    config.write_text(CONFIG.format(token=TOKEN, files=files, base=listener.base))
    # the fake clock starts 30 s early: three rounds of checks bring it to T0
    clock = FakeClock(T0 - 30)
    server = Server(load_config(config), tmp / "data", clock=clock)
    http: httpx.Client | None = None
    try:
        monitor = MonitorService(server.engine, server.tsdb, server.eventlog, server.scheduler,
                                 clock=clock)
        server.monitor = monitor
        monitor.apply(server.loaded.config)
        asyncio.run(_run_file_checks(monitor, clock))
        assert clock.time() == T0
        server.tsdb.append(_gauge("a", "h1", 1.0) + _gauge("b", "h2", 2.0), T0)
        server.tsdb.append([
            Sample("api_special", {"kind": "nan"}, math.nan, T0 - 10),
            Sample("api_special", {"kind": "inf"}, math.inf, T0 - 10),
            Sample("api_special", {"kind": "ninf"}, -math.inf, T0 - 10),
            Sample("api_frac", {}, 0.25, T0 - 1.5),
            # an old series: outside every default lookback, and before /series?start=T0-3600
            Sample("api_old", {"job": "a"}, 7.0, T0 - 86400),
        ], T0)
        state = AppState(engine=server.engine, tsdb=server.tsdb, eventlog=server.eventlog,
                         query=QueryEngine(server.tsdb), clock=clock, token=server.token,
                         monitor=monitor, scheduler=server.scheduler, reload=server.reload,
                         started=T0 - 30, config_path=str(config))
        listener.start(create_app(state))
        http = httpx.Client(base_url=listener.base, timeout=30, trust_env=False)
        yield Env(listener.base, http, server, monitor, clock, config, files)
    finally:
        if http is not None:
            http.close()
        listener.stop()
        server.engine.dispose()


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    """One server for the tests that only read."""
    with running_api(tmp_path_factory.mktemp("api")) as env:
        yield env


@pytest.fixture
def fresh_api(tmp_path: Path) -> Iterator[Env]:
    """A server of its own, for tests that change things (reload)."""
    with running_api(tmp_path) as env:
        yield env


def _prom_error(resp: httpx.Response) -> str:
    assert resp.status_code == 400, resp.text
    assert resp.headers["content-type"] == "application/json"
    body = resp.json()
    assert set(body) == {"status", "errorType", "error"}, body
    assert body["status"] == "error"
    assert body["errorType"] == "bad_data"
    return str(body["error"])


GAUGE_A = {"__name__": "api_gauge", "instance": "h1", "job": "a"}
GAUGE_B = {"__name__": "api_gauge", "instance": "h2", "job": "b"}


# -- /api/v1/query -----------------------------------------------------------------------------
def test_instant_query_answers_in_prometheus_envelope(api: Env) -> None:
    r = api.http.get("/api/v1/query", params={"query": "api_gauge"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": GAUGE_A, "value": [1700000000, "40"]},
        {"metric": GAUGE_B, "value": [1700000000, "80"]},
    ]}}
    # a timestamp is a JSON number, a value a string
    assert '"value":[1700000000,"40"]' in r.text


@pytest.mark.parametrize(("time_param", "ts", "value"), [
    ("1699999700", 1699999700, "20"),
    ("1699999700.5", 1699999700.5, "20"),
    ("1.6999997e9", 1699999700, "20"),
    ("2023-11-14T22:08:20Z", 1699999700, "20"),
    ("2023-11-14T22:08:20.500Z", 1699999700.5, "20"),
    ("2023-11-14T23:08:20+01:00", 1699999700, "20"),
    ("2023-11-14T22:08:27.123Z", 1699999707.123, "20"),
    ("1699999714.999", 1699999714.999, "20"),
    ("1699999715", 1699999715, "21"),
])
def test_instant_query_time_as_unix_float_or_rfc3339(api: Env, time_param: str, ts: float,
                                                     value: str) -> None:
    r = api.http.get("/api/v1/query", params={"query": 'api_gauge{job="a"}', "time": time_param})
    assert r.json()["data"]["result"] == [{"metric": GAUGE_A, "value": [ts, value]}]


def test_instant_query_by_post_form_equals_get(api: Env) -> None:
    params = {"query": 'api_gauge{instance=~"h.*"}', "time": "1699999850"}
    got = api.http.get("/api/v1/query", params=params)
    posted = api.http.post("/api/v1/query", data=params)
    assert posted.status_code == 200
    assert posted.json() == got.json()
    assert [v["value"] for v in got.json()["data"]["result"]] == [[1699999850, "30"],
                                                                   [1699999850, "60"]]


def test_form_value_wins_over_query_string_and_first_repeat_counts(api: Env) -> None:
    # as Go's Request.FormValue: the body's value first, then the URL's, first of repeats
    r = api.http.post("/api/v1/query?query=api_frac&time=1700000000",
                      content="query=api_gauge%7Bjob%3D%22b%22%7D&query=api_frac",
                      headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.json()["data"]["result"] == [{"metric": GAUGE_B, "value": [1700000000, "80"]}]


def test_special_values_are_strings_as_prometheus_writes_them(api: Env) -> None:
    r = api.http.get("/api/v1/query", params={"query": "api_special"})
    result = r.json()["data"]["result"]
    assert [(s["metric"]["kind"], s["value"]) for s in result] == [
        ("inf", [1700000000, "+Inf"]), ("nan", [1700000000, "NaN"]), ("ninf", [1700000000, "-Inf"])]
    r = api.http.get("/api/v1/query", params={"query": "api_frac"})
    assert r.json()["data"]["result"] == [{"metric": {"__name__": "api_frac"},
                                          "value": [1700000000, "0.25"]}]


def test_instant_query_empty_vector_and_lookback(api: Env) -> None:
    r = api.http.get("/api/v1/query", params={"query": "api_old"})
    assert r.json() == {"status": "success", "data": {"resultType": "vector", "result": []}}
    r = api.http.get("/api/v1/query", params={"query": "api_old", "time": str(T0 - 86400 + 299)})
    assert r.json()["data"]["result"] == [{"metric": {"__name__": "api_old", "job": "a"},
                                          "value": [1699913899, "7"]}]
    r = api.http.get("/api/v1/query", params={"query": "api_old", "time": str(T0 - 86400 + 300)})
    assert r.json()["data"]["result"] == []


# -- /api/v1/query_range -------------------------------------------------------------------------
RANGE_VALUES = [[1699999400 + 60 * i, str(4 * i)] for i in range(11)]


@pytest.mark.parametrize(("start", "end", "step"), [
    ("1699999400", "1700000000", "60"),
    ("1699999400.0", "1700000000.0", "60.0"),
    ("1699999400", "1700000000", "1m"),
    ("2023-11-14T22:03:20Z", "2023-11-14T22:13:20Z", "1m0s"),
    ("2023-11-14T23:03:20+01:00", "1700000000", "60s"),
])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_range_query_matrix(api: Env, method: str, start: str, end: str, step: str) -> None:
    params = {"query": 'api_gauge{job="a"}', "start": start, "end": end, "step": step}
    if method == "GET":
        r = api.http.get("/api/v1/query_range", params=params)
    else:
        r = api.http.post("/api/v1/query_range", data=params)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": GAUGE_A, "values": RANGE_VALUES}]}}


def test_range_query_fractional_steps_and_special_values(api: Env) -> None:
    r = api.http.get("/api/v1/query_range", params={
        "query": "api_special", "start": "1699999990.5", "end": "1699999995.5", "step": "2.5"})
    result = r.json()["data"]["result"]
    stamps = [1699999990.5, 1699999993, 1699999995.5]
    assert result == [
        {"metric": {"__name__": "api_special", "kind": k}, "values": [[t, v] for t in stamps]}
        for k, v in (("inf", "+Inf"), ("nan", "NaN"), ("ninf", "-Inf"))]


def test_range_query_exactly_11000_points_is_allowed(api: Env) -> None:
    r = api.http.get("/api/v1/query_range", params={
        "query": "api_frac", "start": str(T0 - 11000), "end": str(T0), "step": "1"})
    assert r.status_code == 200
    values = r.json()["data"]["result"][0]["values"]
    assert values[0] == [1699999999, "0.25"] and values[-1] == [1700000000, "0.25"]


# Prometheus 2.x's own messages (checked against a real Prometheus 2.42), except where noted
@pytest.mark.parametrize(("path", "params", "message"), [
    ("/api/v1/query", {}, 'invalid parameter "query": no expression found in input'),
    ("/api/v1/query", {"query": "  "}, 'invalid parameter "query": no expression found in input'),
    ("/api/v1/query", {"query": "api_gauge", "time": "abc"},
     'invalid parameter "time": cannot parse "abc" to a valid timestamp'),
    ("/api/v1/query", {"query": "api_gauge", "time": "NaN"},
     'invalid parameter "time": cannot parse "NaN" to a valid timestamp'),
    # RFC 3339 needs an offset; a naive time would silently mean the server's zone
    ("/api/v1/query", {"query": "api_gauge", "time": "2023-11-14T22:08:20"},
     'invalid parameter "time": cannot parse "2023-11-14T22:08:20" to a valid timestamp'),
    ("/api/v1/query", {"query": "api_gauge{"},
     'invalid parameter "query": unexpected end of input inside braces at column 11'),
    ("/api/v1/query", {"query": 'api_gauge{job=~"("}'},
     ('invalid parameter "query": invalid regular expression \'(\' for label job: '
     "missing ), unterminated subpattern at position 0 at column 16")),
    ("/api/v1/query_range", {"query": "api_gauge"},
     'invalid parameter "start": cannot parse "" to a valid timestamp'),
    ("/api/v1/query_range", {"query": "api_gauge", "start": "0"},
     'invalid parameter "end": cannot parse "" to a valid timestamp'),
    ("/api/v1/query_range", {"query": "api_gauge", "start": "abc", "end": "10", "step": "1"},
     'invalid parameter "start": cannot parse "abc" to a valid timestamp'),
    ("/api/v1/query_range", {"query": "api_gauge", "start": "0", "end": "10"},
     'invalid parameter "step": cannot parse "" to a valid duration'),
    ("/api/v1/query_range", {"query": "api_gauge", "start": "0", "end": "10", "step": "abc"},
     'invalid parameter "step": cannot parse "abc" to a valid duration'),
    ("/api/v1/query_range", {"query": "api_gauge", "start": "0", "end": "10", "step": "0"},
     ('invalid parameter "step": zero or negative query resolution step widths are not '
     "accepted. Try a positive integer")),
    ("/api/v1/query_range", {"query": "api_gauge", "start": "0", "end": "10", "step": "-1"},
     ('invalid parameter "step": zero or negative query resolution step widths are not '
     "accepted. Try a positive integer")),
    ("/api/v1/query_range", {"query": "api_gauge", "start": "0", "end": "10", "step": "0s"},
     ('invalid parameter "step": zero or negative query resolution step widths are not '
     "accepted. Try a positive integer")),
    ("/api/v1/query_range", {"query": "api_gauge", "start": "10", "end": "0", "step": "1"},
     'invalid parameter "end": end timestamp must not be before start time'),
    ("/api/v1/query_range", {"query": "api_gauge", "start": "0", "end": "11001", "step": "1"},
     ("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
     "resolution (?step=XX)")),
    ("/api/v1/query_range", {"query": "api_gauge", "start": "0", "end": "1700000000", "step": "15s"},
     ("exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query "
     "resolution (?step=XX)")),
    ("/api/v1/query_range", {"start": "0", "end": "10", "step": "1"},
     'invalid parameter "query": no expression found in input'),
    ("/api/v1/query_range", {"query": "api_gauge}", "start": "0", "end": "10", "step": "1"},
     "invalid parameter \"query\": unexpected right brace '}' at column 10"),
    ("/api/v1/series", {}, "no match[] parameter provided"),
    ("/api/v1/series", {"match[]": "up{"},
     ("invalid parameter \"match[]\": expected a label name or '}' at column 4 in selector 'up{', "
     "found end of input")),
    ("/api/v1/series", {"match[]": "api_gauge", "start": "yesterday"},
     'invalid parameter "start": cannot parse "yesterday" to a valid timestamp'),
    ("/api/v1/labels", {"match[]": "x{y}"},
     'invalid parameter "match[]": expected one of =, !=, =~, !~ at column 4 in selector \'x{y}\''),
    ("/api/v1/label/1bad/values", {}, 'invalid label name: "1bad"'),
    ("/api/v1/label/job/values", {"match[]": "{"},
     ("invalid parameter \"match[]\": expected a label name or '}' at column 2 in selector '{', "
     "found end of input")),
])
def test_bad_requests_answer_400_bad_data(api: Env, path: str, params: dict[str, str],
                                          message: str) -> None:
    assert _prom_error(api.http.get(path, params=params)) == message
    if path != "/api/v1/label/1bad/values" and "label/" not in path:
        assert _prom_error(api.http.post(path, data=params)) == message


# -- /api/v1/series, /labels, /label/NAME/values ----------------------------------------------
def test_series_with_several_match(api: Env) -> None:
    r = api.http.get("/api/v1/series", params=[("match[]", 'api_gauge{job="b"}'),
                                               ("match[]", "api_frac"),
                                               ("match[]", 'api_gauge{job="b"}')])
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "success"
    assert sorted(body["data"], key=lambda s: s["__name__"]) == [{"__name__": "api_frac"}, GAUGE_B]
    posted = api.http.post("/api/v1/series", data={"match[]": ['api_gauge{job="b"}', "api_frac"]})
    assert sorted(posted.json()["data"], key=str) == sorted(body["data"], key=str)


def test_series_match_takes_prometheus_3_quoted_names(api: Env) -> None:
    """Grafana on Prometheus 3 sends ``{"name"}`` selectors; they select as ``name`` does."""
    quoted = api.http.get("/api/v1/series", params={"match[]": '{"api_gauge", "job"="b"}'}).json()
    plain = api.http.get("/api/v1/series", params={"match[]": 'api_gauge{job="b"}'}).json()
    assert quoted["status"] == "success" and quoted["data"] == plain["data"] == [GAUGE_B]


def test_series_start_end_keep_series_with_samples_in_range(api: Env) -> None:
    everything = api.http.get("/api/v1/series", params={"match[]": '{__name__=~"api_.*"}'}).json()
    names = sorted({s["__name__"] for s in everything["data"]})
    assert names == ["api_frac", "api_gauge", "api_old", "api_special"]
    recent = api.http.get("/api/v1/series", params={"match[]": '{__name__=~"api_.*"}',
                                                    "start": str(T0 - 3600), "end": str(T0)}).json()
    assert "api_old" not in {s["__name__"] for s in recent["data"]}
    old = api.http.get("/api/v1/series", params={"match[]": "api_old", "start": str(T0 - 90000),
                                                 "end": "2023-11-13T22:13:20Z"}).json()
    assert old["data"] == [{"__name__": "api_old", "job": "a"}]


def test_labels_and_label_values(api: Env) -> None:
    r = api.http.get("/api/v1/labels").json()
    assert r["status"] == "success"
    assert r["data"] == sorted(r["data"])
    assert {"__name__", "job", "instance", "kind", "check", "type", "team", "path"} <= set(r["data"])
    assert api.http.post("/api/v1/labels").json() == r
    r = api.http.get("/api/v1/labels", params={"match[]": "api_special"}).json()
    assert r == {"status": "success", "data": ["__name__", "kind"]}
    r = api.http.get("/api/v1/label/job/values").json()
    assert r == {"status": "success", "data": ["a", "b"]}
    r = api.http.get("/api/v1/label/kind/values").json()
    assert r["data"] == ["inf", "nan", "ninf"]
    r = api.http.get("/api/v1/label/job/values", params={"match[]": 'api_gauge{instance="h2"}'}).json()
    assert r["data"] == ["b"]
    names = api.http.get("/api/v1/label/__name__/values").json()["data"]
    assert names == sorted(names)
    assert {"api_gauge", "api_frac", "api_special", "api_old", "watchkeeper_check_up",
            "watchkeeper_check_state", "watchkeeper_file_size_bytes"} <= set(names)
    assert api.http.get("/api/v1/label/nosuchlabel/values").json() == {"status": "success",
                                                                       "data": []}


# -- /api/v1/checks ----------------------------------------------------------------------------
def test_checks_list_states(api: Env) -> None:
    r = api.http.get("/api/v1/checks")
    assert r.status_code == 200
    checks = {c["name"]: c for c in r.json()["checks"]}
    assert list(checks) == ["absent", "missing", "present", "self-scrape"]
    present = checks["present"]
    assert present["type"] == "file" and present["interval"] == 30.0
    assert present["labels"] == {"team": "ops"}
    assert (present["state"], present["state_type"], present["hard_state"]) == ("OK", "HARD", "OK")
    assert present["summary"].startswith(f"{api.files}/present.txt: 5 B, modified ")
    assert present["runs"] == 0 and present["skipped"] == 0  # the scheduler is not running
    missing = checks["missing"]
    assert (missing["state"], missing["state_type"], missing["hard_state"], missing["attempt"]) == (
        "CRITICAL", "HARD", "CRITICAL", 3)
    assert missing["summary"] == f"{api.files}/missing.txt does not exist"
    assert missing["since"] == T0 - 10 and missing["last_run"] == T0 - 10
    assert checks["absent"]["summary"] == f"{api.files}/absent.txt does not exist, as expected"
    assert checks["self-scrape"]["summary"] == "not run yet"


def test_check_history_newest_first_with_limit(api: Env) -> None:
    r = api.http.get("/api/v1/checks/missing")
    assert r.status_code == 200
    history = r.json()["history"]
    assert [(h["ts"], h["state"], h["state_type"], h["attempt"]) for h in history] == [
        (T0 - 10, "CRITICAL", "HARD", 3), (T0 - 20, "CRITICAL", "SOFT", 2),
        (T0 - 30, "CRITICAL", "SOFT", 1)]
    assert history[0]["summary"] == f"{api.files}/missing.txt does not exist"
    r = api.http.get("/api/v1/checks/missing", params={"limit": 2})
    assert [h["attempt"] for h in r.json()["history"]] == [3, 2]
    r = api.http.get("/api/v1/checks/missing", params={"limit": 0})
    assert r.status_code == 422
    assert r.json() == {"error": "invalid request",
                        "issues": ["query.limit: Input should be greater than or equal to 1"]}


def test_check_history_includes_results_not_yet_written(tmp_path: Path) -> None:
    # the writer flushes once a second; a result must show the moment it exists
    with running_api(tmp_path) as env:
        env.clock.advance(5)
        asyncio.run(env.monitor.run_check("present"))
        history = env.http.get("/api/v1/checks/present").json()["history"]
        assert [(h["ts"], h["state"]) for h in history][:2] == [(T0 + 5, "OK"), (T0 - 10, "OK")]
        assert len(history) == 4
        asyncio.run(env.monitor.flush())  # once written, it appears once
        again = env.http.get("/api/v1/checks/present").json()["history"]
        assert again == history


def test_unknown_check_is_404_with_hint(api: Env) -> None:
    r = api.http.get("/api/v1/checks/nope")
    assert r.status_code == 404
    assert r.headers["content-type"] == "application/json"
    assert r.json() == {"error": "no check named 'nope'", "type": "NotFoundError",
                        "hint": "GET /api/v1/checks lists the configured checks"}


# -- /api/v1/reload ----------------------------------------------------------------------------
TOKEN_MESSAGE = ("missing or wrong API token; send 'Authorization: Bearer TOKEN' (the token is "
                 "in the data dir's 'token' file, or server.token / WATCHKEEPER_TOKEN)")


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"},
                                     {"Authorization": f"Basic {TOKEN}"},
                                     {"Authorization": f"Bearer {TOKEN}x"},
                                     {"Authorization": "Bearer"}])
def test_reload_needs_the_token(api: Env, headers: dict[str, str]) -> None:
    r = api.http.post("/api/v1/reload", headers=headers)
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json() == {"error": TOKEN_MESSAGE}


def test_reload_refuses_a_bad_config_with_its_issues_then_applies_a_good_one(fresh_api: Env) -> None:
    api = fresh_api
    good = api.config.read_text()
    api.config.write_text(good.replace("max_attempts: 3", "max_attempts: 0")
                          .replace("interval: 60s", "interval: soon"))
    r = api.http.post("/api/v1/reload", headers=BEARER)
    assert r.status_code == 422
    body = r.json()
    cfg = str(api.config)
    assert body["type"] == "ConfigError"
    assert body["issues"] == [
        f"{cfg}:14: checks[1].max_attempts: 0: Input should be greater than or equal to 1",
        (f'{cfg}:21: checks[3].interval: "soon" is not a duration; use forms like 500ms, 30s, '
        "5m, 1h30m, 7d"),
    ]
    assert body["error"] == "\n".join(body["issues"])
    # the old config keeps running
    assert len(api.http.get("/api/v1/checks").json()["checks"]) == 4
    events = api.http.get("/api/v1/events", params={"kind": "config."}).json()["events"]
    assert [(e["kind"], e["actor"], e["data"]) for e in events] == [
        ("config.reload_refused", "api", {"errors": body["issues"]})]

    api.config.write_text(good.replace("  - name: absent", "  - name: gone")
                          + "  - name: extra\n    type: file\n    path: /nonexistent\n")
    r = api.http.post("/api/v1/reload", headers=BEARER)
    assert r.status_code == 200
    assert r.json() == {"status": "reloaded",
                        "checks": ["extra", "gone", "missing", "present", "self-scrape"],
                        "rule_groups": 0}
    names = [c["name"] for c in api.http.get("/api/v1/checks").json()["checks"]]
    assert names == ["extra", "gone", "missing", "present", "self-scrape"]
    # an unchanged check keeps its state through the reload
    missing = api.http.get("/api/v1/checks/missing").json()
    assert (missing["hard_state"], missing["attempt"]) == ("CRITICAL", 3)
    assert set(api.server.scheduler.jobs) == {f"check:{n}" for n in names} | {
        "store:compact", "store:retention"}
    events = api.http.get("/api/v1/events", params={"kind": "config."}).json()["events"]
    assert [e["kind"] for e in events] == ["config.reload_refused", "config.reloaded"]
    assert events[1]["data"] == {"checks": 5, "rule_groups": 0}


# -- /api/v1/status, /events, /healthz -----------------------------------------------------------
def test_status(api: Env) -> None:
    r = api.http.get("/api/v1/status")
    assert r.status_code == 200
    body = r.json()
    from watchkeeper import __version__

    assert body["version"] == __version__
    assert body["uptime_seconds"] == 30.0
    assert body["config"] == str(api.config)
    assert body["checks"] == {"total": 4, "by_state": {"OK": 3, "WARNING": 0, "CRITICAL": 1,
                                                       "UNKNOWN": 0}}
    assert body["collector"] is False
    assert body["store"]["series"] >= 10 and body["store"]["head_samples"] >= 87
    assert set(body["store"]["tiers"]) == {"raw", "minute", "hour"}
    assert body["counters"]["checks_run"] >= 9
    assert body["events"] >= 1


def test_events_list_and_filter(api: Env) -> None:
    r = api.http.get("/api/v1/events", params={"kind": "check."})
    assert r.status_code == 200
    events = r.json()["events"]
    assert [(e["kind"], e["subject"], e["data"]) for e in events] == [
        ("check.state_changed", "missing",
         {"from": "OK", "to": "CRITICAL", "summary": f"{api.files}/missing.txt does not exist"})]
    assert set(events[0]) == {"seq", "ts", "kind", "actor", "subject", "data", "hash"}
    assert events[0]["ts"] == T0 and len(events[0]["hash"]) == 64
    assert api.http.get("/api/v1/events", params={"kind": "nothing."}).json() == {"events": []}
    r = api.http.get("/api/v1/events", params={"limit": "many"})
    assert r.status_code == 422
    assert r.json() == {"error": "invalid request",
                        "issues": [("query.limit: Input should be a valid integer, unable to parse "
                                   "string as an integer")]}


def test_healthz(api: Env) -> None:
    r = api.http.get("/healthz")
    assert (r.status_code, r.text) == (200, "ok\n")
    assert r.headers["content-type"].startswith("text/plain")


# -- /metrics ----------------------------------------------------------------------------------
def _family_names_in_order(text: str) -> list[str]:
    """Each run of consecutive lines of one metric family, by name (TYPE/HELP lines and samples)."""
    out: list[str] = []
    for line in text.splitlines():
        if line.startswith(("# TYPE ", "# HELP ")):
            name = line.split()[2]
        elif line and not line.startswith("#"):
            name = line.split("{", 1)[0].split(" ", 1)[0]
        else:
            continue
        if not out or out[-1] != name:
            out.append(name)
    return out


def test_metrics_parse_strictly_and_each_family_appears_once(api: Env) -> None:
    # the scrape check fetches this very server's /metrics (the process_* and python_*
    # families of prometheus_client), so those names now come from two places
    result = asyncio.run(api.monitor.run_check("self-scrape"))
    assert result.summary.startswith("scraped "), result.summary
    r = api.http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"] == PROM_CONTENT_TYPE
    text = r.text
    samples = parse_text(text)  # strict: raises ParseError on any bad line
    families = parse_families(text)
    names = [f.name for f in families]
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    runs = _family_names_in_order(text)
    assert len(runs) == len(set(runs)), sorted(n for n in runs if runs.count(n) > 1)
    client_families = list(text_string_to_metric_families(text))
    client_names = [f.name for f in client_families]
    assert len(client_names) == len(set(client_names)), client_names
    assert sum(len(f.samples) for f in client_families) == len(samples)

    by_name: dict[str, list[Sample]] = {}
    for s in samples:
        by_name.setdefault(s.name, []).append(s)
    # several checks contribute to one family
    up = {s.labels["check"]: s.value for s in by_name["watchkeeper_check_up"]}
    assert up == {"present": 1.0, "missing": 0.0, "absent": 1.0, "self-scrape": 1.0}
    assert {s.labels["check"] for s in by_name["watchkeeper_check_state"]} == set(up)
    types = {f.name: f.type for f in families}
    assert types["watchkeeper_check_up"] == "gauge"
    assert types["watchkeeper_job_runs_total"] == "counter"
    assert types["watchkeeper_checks_run_total"] == "counter"
    # watchkeeper's own process metrics and the scraped copy share one family
    cpu = by_name["process_cpu_seconds_total"]
    assert sorted(tuple(sorted(s.labels)) for s in cpu) == [(), ("instance", "job")]
    assert types["process_cpu_seconds_total"] == "counter"
    # the file check's own series, and the scraped copy with the target's labels
    size = {tuple(sorted(s.labels.items())): s.value for s in by_name["watchkeeper_file_size_bytes"]}
    own = {"path": f"{api.files}/present.txt", "check": "present", "team": "ops"}
    instance = api.base.removeprefix("http://")
    assert size == {tuple(sorted(own.items())): 5.0,
                    tuple(sorted({**own, "job": "self-scrape", "instance": instance}.items())): 5.0}
    assert by_name["watchkeeper_start_time_seconds"][0].value == T0 - 30


def test_metrics_pass_promtool(api: Env) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is needed (Debian package prometheus)"
    asyncio.run(api.monitor.run_check("self-scrape"))
    text = api.http.get("/metrics").text
    proc = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, check=False,
                          text=True, timeout=30)
    output = proc.stdout + proc.stderr
    # promtool lints style too (help texts, units); a format error is what must not occur
    assert "error while linting" not in output, output
    assert "parsing error" not in output, output


# -- /openapi.json ------------------------------------------------------------------------------
def test_openapi_lists_the_endpoints(api: Env) -> None:
    r = api.http.get("/openapi.json")
    assert r.status_code == 200
    spec = r.json()
    assert spec["info"]["title"] == "watchkeeper"
    paths = spec["paths"]
    expected = {
        "/healthz": {"get"}, "/metrics": {"get"},
        "/api/v1/query": {"get", "post"}, "/api/v1/query_range": {"get", "post"},
        "/api/v1/series": {"get", "post"}, "/api/v1/labels": {"get", "post"},
        "/api/v1/label/{name}/values": {"get"},
        "/api/v1/checks": {"get"}, "/api/v1/checks/{name}": {"get"},
        "/api/v1/status": {"get"}, "/api/v1/events": {"get"}, "/api/v1/reload": {"post"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert set(paths[path]) == methods, (path, set(paths[path]))


# -- garbage -----------------------------------------------------------------------------------
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def test_invalid_utf8_in_form_and_query_string_is_bad_data(api: Env) -> None:
    message = _prom_error(api.http.post("/api/v1/query", content=b"query=\xff\xfe", headers=FORM))
    assert message == "invalid parameter \"query\": unexpected character '\ufffd' at column 1"
    message = _prom_error(api.http.post("/api/v1/query", content=b"query=%ff", headers=FORM))
    assert message == "invalid parameter \"query\": unexpected character '\ufffd' at column 1"
    message = _prom_error(api.http.get("/api/v1/query?query=%ff%fe"))
    assert message == "invalid parameter \"query\": unexpected character '\ufffd' at column 1"
    assert _prom_error(api.http.get("/api/v1/series?match%5B%5D=%ff")).startswith(
        'invalid parameter "match[]": ')
    assert _prom_error(api.http.get("/api/v1/label/%ff/values")) == 'invalid label name: "\ufffd"'


def test_json_where_a_form_is_expected_carries_no_parameters(api: Env) -> None:
    r = api.http.post("/api/v1/query", json={"query": "api_gauge"})
    assert _prom_error(r) == 'invalid parameter "query": no expression found in input'
    r = api.http.post("/api/v1/query_range", content=b'{"query": "api_gauge"', headers={
        "Content-Type": "application/json"})
    assert _prom_error(r) == 'invalid parameter "start": cannot parse "" to a valid timestamp'
    # a JSON body claiming to be a form is a form with one odd key
    r = api.http.post("/api/v1/query", content=b'{"query": "api_gauge"}', headers=FORM)
    assert _prom_error(r) == 'invalid parameter "query": no expression found in input'


def test_huge_requests_are_refused_cleanly(api: Env) -> None:
    # a 60 kB request line reaches the app (uvicorn's h11 takes it) and is refused there
    r = api.http.get("/api/v1/query", params={"query": "a" * 60_000 + "{"})
    assert _prom_error(r) == "invalid parameter \"query\": unexpected end of input inside braces at column 60002"
    # a 2 MB query in a form body reaches the query parser, which refuses it
    selector = "api_gauge{" + ",".join(f'l{i}="{i}"' for i in range(100_000)) + "!}"
    r = api.http.post("/api/v1/query", data={"query": selector})
    assert _prom_error(r) == "invalid parameter \"query\": unexpected character after '!' at column 1477790"
    # an 11 MiB form body is more than Prometheus (Go's ParseForm) accepts as well
    r = api.http.post("/api/v1/query", content=b"query=" + b"x" * (11 * 1024 * 1024), headers=FORM)
    assert _prom_error(r) == "error parsing form values: the request body is larger than 10 MiB"


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/api/v1/nothing", 404),
    ("DELETE", "/api/v1/query", 405),
    ("POST", "/api/v1/label/job/values", 405),
    ("GET", "/api/v1/reload", 405),
    ("GET", "/api/v1/checks/%00", 404),
    ("GET", "/api/v1/checks/..%2F..%2Fetc", 404),
    ("GET", "/api/v1/events?limit=99999999999999999999999", 422),
    ("GET", "/api/v1/query?query=api_gauge&time=1e400", 400),
    ("GET", "/api/v1/query?query=api_gauge&time=9999999999999999", 200),
    ("GET", "/api/v1/query_range?query=api_gauge&start=0&end=1&step=1e-300", 400),
    ("GET", "/api/v1/query_range?query=api_gauge&start=0&end=1&step=1e300", 400),
    ("GET", "/api/v1/query?query=api_gauge&time=-9999999999999999", 200),
    ("GET", "/api/v1/query_range?query=api_gauge&start=-1e12&end=1e12&step=1e9", 200),
    ("GET", "/api/v1/query?query=%00", 400),
    ("GET", '/api/v1/query?query=api_gauge{job=~"(a|b)*c{1000000}"}', 200),
])
def test_odd_requests_never_give_500(api: Env, method: str, path: str, status: int) -> None:
    r = api.http.request(method, path)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    body = r.json()
    if status >= 400:
        assert body.get("error"), body


# -- what Grafana and operators ask besides queries -------------------------------------------
def test_buildinfo_and_metadata_answer_as_prometheus(api: Env) -> None:
    info = api.http.get("/api/v1/status/buildinfo").json()
    assert info["status"] == "success" and info["data"]["application"] == "watchkeeper"
    meta = api.http.get("/api/v1/metadata", params={"metric": "api_frac"}).json()
    assert meta == {"status": "success",
                    "data": {"api_frac": [{"type": "unknown", "help": "", "unit": ""}]}}
    assert len(api.http.get("/api/v1/metadata", params={"limit": "2"}).json()["data"]) == 2


def test_notifications_list_the_outbox_with_attempts(api: Env) -> None:
    from sqlalchemy import insert

    from watchkeeper.store.models import notification_attempts, outbox

    with api.server.engine.begin() as conn:
        oid = conn.execute(insert(outbox).values(
            receiver="ops", integration="webhook[0]", group_key='{}:{alertname="A"}',
            payload='{"status": "firing", "alerts": [{}, {}]}', created_at=T0, next_attempt_at=T0,
            attempts=1, status="pending", last_error="HTTP 500")).inserted_primary_key[0]
        conn.execute(insert(notification_attempts).values(
            outbox_id=oid, ts=T0, ok=False, duration=0.01, status_code=500, error="HTTP 500"))
    items = api.http.get("/api/v1/notifications", params={"status": "pending"}).json()["notifications"]
    mine = [i for i in items if i["id"] == oid][0]
    assert (mine["receiver"], mine["alert_status"], mine["alerts"], mine["last_error"]) == (
        "ops", "firing", 2, "HTTP 500")
    assert mine["attempts"] == [{"ts": T0, "ok": False, "duration_seconds": 0.01,
                                 "status_code": 500, "error": "HTTP 500"}]
    bad = api.http.get("/api/v1/notifications", params={"status": "lost"})
    assert bad.status_code == 400 and "is not one of pending, sent, dead" in bad.json()["error"]
