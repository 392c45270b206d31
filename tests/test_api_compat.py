"""Grafana's Prometheus data source (and other HTTP API clients) against watchkeeper.

The real app runs in uvicorn on 127.0.0.1 over a TSDB on a SQLite file; a real
Prometheus 2.42 (Debian package ``prometheus``) serves the same samples, written
as OpenMetrics and turned into blocks by ``promtool tsdb create-blocks-from
openmetrics``. The same requests go to both: series, label names and label
values with and without ``start``/``end`` and ``match[]``, ``format_query`` of
long expressions, and bad parameters (status code and ``errorType``). Then the
exact requests Grafana sends (form-encoded POSTs, ``step`` in seconds,
buildinfo, metadata, exemplars) and what Prometheus 2.54+/3.x added
(``limit`` with its warning, ``lookback_delta``, ``timeout``, ``U__`` label
names, multipart forms).

Samples are laid out on Prometheus's 2-hour block grid, so that Prometheus's
answer (it keeps series of every block overlapping the range) and watchkeeper's
(series with data in the range) are the same set.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e_helpers import ServerThread, prometheus_from_openmetrics
from watchkeeper.eventlog import EventLog
from watchkeeper.monitor.model import Sample
from watchkeeper.query.engine import QueryEngine
from watchkeeper.query.promql.parser import parse
from watchkeeper.query.promql.printer import pretty, sorted_matchers
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB
from watchkeeper.testing import FakeClock
from watchkeeper.web.api.promhttp import unescape_name
from watchkeeper.web.app import create_app
from watchkeeper.web.state import AppState

TS = 1_699_992_000  # a multiple of 2 h: Prometheus's block boundaries fall on TS + k * 2 h
H = 3600
NOW = TS + 6 * H + 60
EARLY = (TS + 600, TS + H)  # inside the first block only
MIDDLE = (TS + 2 * H + 600, TS + 3 * H)  # the second block: only gf_all there
LATE = (TS + 4 * H + 600, TS + 5 * H)
TRUNCATED = "results truncated due to limit"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def _data() -> list[tuple[str, dict[str, str], list[tuple[float, float]]]]:
    """(name, labels, samples every 15 s)."""
    def span(a: float, b: float, v: float) -> list[tuple[float, float]]:
        return [(t, v + (t - a) / 15) for t in range(int(a), int(b), 15)]

    return [
        ("gf_early", {"job": "a", "instance": "h1"}, span(TS, TS + 2 * H, 1)),
        ("gf_late", {"job": "b", "zone": "z1"}, span(TS + 4 * H, TS + 6 * H, 2)),
        ("gf_all", {"job": "a"}, span(TS, TS + 6 * H, 3)),
        ("gf_all", {"job": "b"}, span(TS, TS + 6 * H, 4)),
        ("gf_requests_total", {"job": "a", "code": "200"}, span(TS, TS + 6 * H, 5)),
    ]


def _openmetrics(path: Path) -> None:
    lines = []
    for name, labels, samples in _data():
        lines.append(f"# TYPE {name} gauge")
        lab = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        lines += [f"{name}{{{lab}}} {v!r} {t}" for t, v in samples]
    # one family per name in OpenMetrics: merge the TYPE lines of a repeated name
    seen: set[str] = set()
    out = []
    for line in lines:
        if line.startswith("# TYPE"):
            if line in seen:
                continue
            seen.add(line)
        out.append(line)
    path.write_text("\n".join(out) + "\n# EOF\n")


@dataclass
class Both:
    prom: httpx.Client
    wk: httpx.Client
    tsdb: TSDB


@pytest.fixture(scope="module")
def both(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Both]:
    root = tmp_path_factory.mktemp("compat")
    om = root / "data.om.txt"
    _openmetrics(om)
    engine = open_engine(None, root / "wk")
    listener = ServerThread()
    wk: httpx.Client | None = None
    prom: httpx.Client | None = None
    try:
        tsdb = TSDB(engine)
        tsdb.append([Sample(name, labels, v, t) for name, labels, samples in _data() for t, v in samples],
                    NOW)
        tsdb.compact(TS + 5 * H)  # chunks for most of it, the last hour still in the head
        clock = FakeClock(NOW)
        state = AppState(engine=engine, tsdb=tsdb, eventlog=EventLog(engine, anchor=root / "head", clock=clock),
                         query=QueryEngine(tsdb), clock=clock, token="compat-token-0123456789",
                         started=NOW - 60)
        listener.start(create_app(state))
        wk = httpx.Client(base_url=listener.base, timeout=30, trust_env=False)
        with prometheus_from_openmetrics(om, root) as url:
            prom = httpx.Client(base_url=url, timeout=30, trust_env=False)
            yield Both(prom, wk, tsdb)
    finally:
        for client in (wk, prom):
            if client is not None:
                client.close()
        listener.stop()
        engine.dispose()


def _success(r: httpx.Response) -> Any:
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["status"] == "success", body
    return body["data"]


def _key(series: list[dict[str, str]]) -> list[str]:
    return sorted(json.dumps(s, sort_keys=True) for s in series)


# -- series, labels and label values as Prometheus answers them --------------------------------
RANGES: list[dict[str, str]] = [
    {}, {"start": str(EARLY[0]), "end": str(EARLY[1])}, {"start": str(MIDDLE[0]), "end": str(MIDDLE[1])},
    {"start": str(LATE[0]), "end": str(LATE[1])}, {"start": str(LATE[0])}, {"end": str(EARLY[1])},
    {"start": "2023-11-14T22:00:00Z", "end": "2023-11-14T23:00:00.000Z"},
]


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("times", RANGES, ids=lambda r: "&".join(f"{k}={v}" for k, v in r.items()) or "all")
def test_series_agree_with_prometheus(both: Both, times: dict[str, str], method: str) -> None:
    for match in (['{__name__=~"gf_.*"}'], ['gf_all{job="a"}', "gf_late"], ['{job="b"}']):
        params = {"match[]": match, **times}
        want = _success(both.prom.request(method, "/api/v1/series", **_args(method, params)))
        got = _success(both.wk.request(method, "/api/v1/series", **_args(method, params)))
        assert _key(got) == _key(want), (match, times)


def _args(method: str, params: dict[str, Any]) -> dict[str, Any]:
    return {"params": params} if method == "GET" else {"data": params}


@pytest.mark.parametrize("method", ["GET", "POST"])
@pytest.mark.parametrize("times", RANGES, ids=lambda r: "&".join(f"{k}={v}" for k, v in r.items()) or "all")
def test_label_names_agree_with_prometheus(both: Both, times: dict[str, str], method: str) -> None:
    for match in ([], ["gf_late"], ['{__name__=~"gf_(early|late)"}']):
        params: dict[str, Any] = {**times, **({"match[]": match} if match else {})}
        want = _success(both.prom.request(method, "/api/v1/labels", **_args(method, params)))
        got = _success(both.wk.request(method, "/api/v1/labels", **_args(method, params)))
        assert got == want, (match, times)


@pytest.mark.parametrize("times", RANGES, ids=lambda r: "&".join(f"{k}={v}" for k, v in r.items()) or "all")
def test_label_values_agree_with_prometheus(both: Both, times: dict[str, str]) -> None:
    for label in ("__name__", "job", "zone", "instance", "nosuch"):
        for match in ([], ['{job="a"}'], ["gf_late", "gf_early"]):
            params: dict[str, Any] = {**times, **({"match[]": match} if match else {})}
            want = _success(both.prom.get(f"/api/v1/label/{label}/values", params=params))
            got = _success(both.wk.get(f"/api/v1/label/{label}/values", params=params))
            assert got == want, (label, match, times)


# -- errors: the same status and errorType for the same bad request ------------------------------
BAD: list[tuple[str, str, dict[str, str]]] = [
    ("GET", "/api/v1/query", {"query": "gf_all", "time": "abc"}),
    ("GET", "/api/v1/query", {}),
    ("POST", "/api/v1/query", {"query": "sum(gf_all"}),
    ("POST", "/api/v1/query", {"query": "gf_all", "timeout": "soon"}),
    ("POST", "/api/v1/query", {"query": "gf_all * on () gf_all", "time": str(TS + H)}),
    ("GET", "/api/v1/query_range", {"query": "gf_all", "end": "10", "step": "1"}),
    ("POST", "/api/v1/query_range", {"query": "gf_all", "start": "10", "end": "0", "step": "1"}),
    ("POST", "/api/v1/query_range", {"query": "gf_all", "start": "0", "end": "10", "step": "0"}),
    ("POST", "/api/v1/query_range", {"query": "gf_all", "start": "0", "end": "10", "step": "1x"}),
    ("POST", "/api/v1/query_range", {"query": "gf_all", "start": "0", "end": "100000", "step": "1"}),
    ("GET", "/api/v1/series", {}),
    ("GET", "/api/v1/series", {"match[]": "gf_all{"}),
    ("POST", "/api/v1/series", {"match[]": "gf_all", "start": "yesterday"}),
    ("GET", "/api/v1/series", {"match[]": "gf_all", "end": "tomorrow"}),
    ("GET", "/api/v1/labels", {"start": "abc"}),
    ("POST", "/api/v1/labels", {"match[]": "{"}),
    ("GET", "/api/v1/label/1bad/values", {}),
    ("GET", "/api/v1/label/job/values", {"end": "x"}),
    ("GET", "/api/v1/label/job/values", {"match[]": "job{"}),
    ("GET", "/api/v1/query_exemplars", {"query": "gf_all", "start": "10", "end": "0"}),
    ("POST", "/api/v1/query_exemplars", {"query": "gf_all{", "start": "0", "end": "10"}),
    ("GET", "/api/v1/format_query", {"query": "sum(rate(x[5m])"}),
    ("GET", "/api/v1/metadata", {"limit": "many"}),
]


@pytest.mark.parametrize(("method", "path", "params"), BAD, ids=[f"{m} {p} {q}" for m, p, q in BAD])
def test_bad_requests_get_prometheus_status_and_error_type(both: Both, method: str, path: str,
                                                           params: dict[str, str]) -> None:
    want = both.prom.request(method, path, **_args(method, params))
    got = both.wk.request(method, path, **_args(method, params))
    assert want.status_code >= 400, want.text
    assert got.status_code == want.status_code, (want.text, got.text)
    w, g = want.json(), got.json()
    assert (g["status"], g["errorType"]) == (w["status"], w["errorType"]), (w, g)
    assert g["error"] and got.headers["content-type"] == "application/json"


def test_error_messages_that_match_prometheus_word_for_word(both: Both) -> None:
    for method, path, params in BAD:
        if path.endswith(("/query", "/query_exemplars", "/format_query")) or "query" in params:
            continue  # parse error texts differ (column numbers are Prometheus's, wording is ours)
        want = both.prom.request(method, path, **_args(method, params)).json()["error"]
        got = both.wk.request(method, path, **_args(method, params)).json()["error"]
        if "match[]" in params and params["match[]"] != "gf_all":
            continue  # selector parse errors: the wording is ours
        if "start" in params or "end" in params:
            # 2.42 adds "Invalid time value for 'start': " inside; the quoted value is the same
            assert got.split(": ", 1)[0] == want.split(": ", 1)[0] and got.endswith(want.split(": ")[-1]), (
                want, got)
            continue
        assert got == want, (path, params)


# -- format_query --------------------------------------------------------------------------------
LONG = [
    "sum by (job, instance) (rate(http_requests_total{job=\"api-server\",handler=~\"/api/v1/.*\"}[5m])) "
    "/ on (job) group_left () sum by (job) (rate(http_requests_total[5m]))",
    "histogram_quantile(0.99, sum by (le, job) (rate(http_request_duration_seconds_bucket{job=\"apiserver\","
    "verb!=\"WATCH\"}[5m])))",
    "topk(10, count by (__name__, job) ({__name__=~\"node_.+\",job=~\"node|node-exporter|host\"}) "
    "> 1000 and count by (__name__, job) (up))",
    "max_over_time(rate(container_cpu_usage_seconds_total{namespace=\"production\",container!=\"\"}[5m])"
    "[1h:1m]) * 100",
    "-sum(rate(node_cpu_seconds_total{mode!=\"idle\",instance=~\"prod-database-primary-.*\"}[5m])) "
    "- avg(node_load1)",
    "label_replace(sum without (instance) (rate(process_cpu_seconds_total{job=\"long-job-name\"}[5m])), "
    "\"dst\", \"$1\", \"job\", \"(.*)\")",
    "(sum(rate(a_very_long_metric_name_for_testing_purposes_total[5m])) + sum(rate(another_long_metric_name"
    "_total[5m]))) / 2",
    "rate(x[5m])",
    "sum(foo) by (a)",
]


@pytest.mark.parametrize("expr", LONG)
def test_format_query_prints_what_prometheus_prints(both: Both, expr: str) -> None:
    want = _success(both.prom.post("/api/v1/format_query", data={"query": expr}))
    got = _success(both.wk.post("/api/v1/format_query", data={"query": expr}))
    assert got == want
    assert parse(got) == sorted_matchers(parse(expr))  # and it reads back as the same tree
    assert _success(both.wk.get("/api/v1/format_query", params={"query": expr})) == want


def test_pretty_round_trips_the_parser_corpus() -> None:
    corpus = Path(__file__).parent / "fixtures" / "promql_parse" / "expressions.txt"
    recorded = json.loads((corpus.parent / "prometheus.json").read_text())["results"]
    for rec in recorded:
        if "formatted" in rec:
            tree = parse(rec["expr"])
            assert pretty(tree) == rec["formatted"]  # all short: one line, as Prometheus
            assert parse(pretty(tree)) == tree
    for expr in LONG:
        tree = sorted_matchers(parse(expr))
        assert parse(pretty(tree)) == tree


def test_parse_query_answers_the_tree(both: Both) -> None:
    data = _success(both.wk.get("/api/v1/parse_query", params={"query": 'sum by (job) (rate(x{a="b"}[5m] offset 1m))'}))
    assert data["type"] == "aggregation" and data["op"] == "sum" and data["grouping"] == ["job"]
    call = data["expr"]
    assert call["type"] == "call" and call["func"]["name"] == "rate"
    assert call["func"]["argTypes"] == ["matrix"] and call["func"]["returnType"] == "vector"
    sel = call["args"][0]
    assert (sel["type"], sel["name"], sel["range"], sel["offset"]) == ("matrixSelector", "x", 300000, 60000)
    assert {"name": "a", "value": "b", "type": "="} in sel["matchers"]
    bad = both.wk.get("/api/v1/parse_query", params={"query": "sum("})
    assert bad.status_code == 400 and bad.json()["errorType"] == "bad_data"


# -- what Grafana sends ------------------------------------------------------------------------------
def test_grafana_range_query_form_post(both: Both) -> None:
    # Grafana's backend: POST, form-encoded, Unix seconds, step in seconds
    form = {"query": 'sum by (job) (gf_all{job=~"a|b"})', "start": str(TS + H), "end": str(TS + H + 300),
            "step": "15"}
    want = _success(both.prom.post("/api/v1/query_range", data=form))
    got = _success(both.wk.post("/api/v1/query_range", data=form))
    assert got == want
    with_timeout = _success(both.wk.post("/api/v1/query_range", data={**form, "step": "15s", "timeout": "60s"}))
    assert with_timeout == want
    rfc = {**form, "start": "2023-11-14T21:00:00Z", "end": "2023-11-14T21:05:00Z"}
    assert _success(both.wk.post("/api/v1/query_range", data=rfc)) == _success(
        both.prom.post("/api/v1/query_range", data=rfc))


def test_grafana_instant_query_form_post(both: Both) -> None:
    form = {"query": "gf_requests_total", "time": str(TS + 2 * H + 7.5)}
    got = both.wk.post("/api/v1/query", content=httpx.QueryParams(form).__str__().encode(), headers=FORM)
    assert _success(got) == _success(both.prom.post("/api/v1/query", data=form))


def test_grafana_metadata_requests(both: Both) -> None:
    info = _success(both.wk.get("/api/v1/status/buildinfo"))
    assert set(_success(both.prom.get("/api/v1/status/buildinfo"))) <= set(info)
    assert "features" not in info  # a plain Prometheus to Grafana, not Mimir or Cortex
    major, minor, _ = (int(x) for x in info["version"].split("."))
    assert (major, minor) >= (2, 54)
    meta = _success(both.wk.get("/api/v1/metadata", params={"limit_per_metric": "10"}))
    assert meta["gf_all"] == [{"type": "unknown", "help": "", "unit": ""}]
    labels = _success(both.wk.get("/api/v1/labels", params={"start": str(LATE[0]), "end": str(LATE[1])}))
    assert labels == ["__name__", "code", "job", "zone"]
    exemplars = both.wk.post("/api/v1/query_exemplars", data={"query": "gf_all", "start": str(TS), "end": str(NOW)})
    assert _success(exemplars) == []
    assert both.wk.post("/api/v1/query_exemplars", data={"query": "1 + 1"}).status_code == 204


def test_status_endpoints_have_prometheus_fields(both: Both) -> None:
    runtime = _success(both.wk.get("/api/v1/status/runtimeinfo"))
    assert set(_success(both.prom.get("/api/v1/status/runtimeinfo"))) <= set(runtime)
    assert runtime["startTime"] == "2023-11-15T02:00:00Z"  # NOW - 60
    assert isinstance(_success(both.wk.get("/api/v1/status/flags")), dict)
    config = _success(both.wk.get("/api/v1/status/config"))
    assert set(config) == {"yaml"} and config["yaml"].startswith("global:")
    assert _success(both.wk.get("/api/v1/targets/metadata", params={"match_target": '{job="a"}'})) == []
    bad = both.wk.get("/api/v1/targets/metadata", params={"match_target": "{"})
    assert bad.status_code == 400 and bad.json()["errorType"] == "bad_data"


def test_metadata_of_host_and_own_metrics() -> None:
    from watchkeeper.web.api.metadata import known_metadata

    found = known_metadata(["node_cpu_seconds_total", "node_memory_MemTotal_bytes", "watchkeeper_check_up",
                            "process_cpu_seconds_total", "something_else"])
    assert found["node_cpu_seconds_total"] == [{"type": "counter", "help": "Seconds the CPUs spent in each mode.",
                                                "unit": ""}]
    assert found["node_memory_MemTotal_bytes"][0]["help"] == "Memory information field MemTotal_bytes."
    assert found["watchkeeper_check_up"][0]["type"] == "gauge"
    assert found["process_cpu_seconds_total"][0]["type"] == "counter"
    assert found["something_else"] == [{"type": "unknown", "help": "", "unit": ""}]


# -- what Prometheus 2.54+/3.x added -------------------------------------------------------------------
def test_limit_truncates_with_a_warning(both: Both) -> None:
    r = both.wk.get("/api/v1/query", params={"query": "gf_all", "time": str(TS + H), "limit": "1"}).json()
    assert len(r["data"]["result"]) == 1 and r["warnings"] == [TRUNCATED]
    r = both.wk.post("/api/v1/query_range", data={"query": "gf_all", "start": str(TS + H), "end": str(TS + H + 60),
                                                  "step": "30", "limit": "1"}).json()
    assert len(r["data"]["result"]) == 1 and r["warnings"] == [TRUNCATED]
    r = both.wk.get("/api/v1/query", params={"query": "gf_all", "time": str(TS + H), "limit": "2"}).json()
    assert len(r["data"]["result"]) == 2 and "warnings" not in r
    r = both.wk.get("/api/v1/query", params={"query": "scalar(gf_early)", "time": str(TS + H), "limit": "1"}).json()
    assert r["data"]["resultType"] == "scalar" and "warnings" not in r
    assert both.wk.get("/api/v1/query", params={"query": "gf_all", "time": str(TS + H), "limit": "0"}).json()[
        "data"] == _success(both.wk.get("/api/v1/query", params={"query": "gf_all", "time": str(TS + H)}))
    r = both.wk.get("/api/v1/series", params={"match[]": '{__name__=~"gf_.*"}', "limit": "2"}).json()
    assert len(r["data"]) == 2 and r["warnings"] == [TRUNCATED]
    r = both.wk.post("/api/v1/labels", data={"limit": "1"}).json()
    assert r == {"status": "success", "data": ["__name__"], "warnings": [TRUNCATED]}
    r = both.wk.get("/api/v1/label/__name__/values", params={"limit": "2", "start": str(LATE[0])}).json()
    assert r == {"status": "success", "data": ["gf_all", "gf_late"], "warnings": [TRUNCATED]}
    for bad, message in (("x", 'invalid parameter "limit": strconv.Atoi: parsing "x": invalid syntax'),
                         ("-1", 'invalid parameter "limit": limit must be non-negative')):
        for path in ("/api/v1/query", "/api/v1/series", "/api/v1/labels", "/api/v1/label/job/values"):
            r = both.wk.get(path, params={"query": "gf_all", "match[]": "gf_all", "limit": bad})
            assert r.status_code == 400 and r.json()["error"] == message, (path, r.text)


def test_lookback_delta_overrides_the_five_minutes(both: Both) -> None:
    at = {"query": "gf_early", "time": str(TS + 2 * H + 600)}  # ten minutes after its last sample
    assert _success(both.wk.get("/api/v1/query", params=at))["result"] == []
    found = _success(both.wk.get("/api/v1/query", params={**at, "lookback_delta": "15m"}))["result"]
    assert [s["metric"]["__name__"] for s in found] == ["gf_early"]
    found = _success(both.wk.post("/api/v1/query_range", data={
        "query": "gf_early", "start": str(TS + 2 * H + 600), "end": str(TS + 2 * H + 900), "step": "300",
        "lookback_delta": "900"}))["result"]
    assert [len(s["values"]) for s in found] == [1]
    r = both.wk.get("/api/v1/query", params={**at, "lookback_delta": "long"})
    assert r.status_code == 400
    assert r.json()["error"] == 'error parsing lookback delta duration: cannot parse "long" to a valid duration'


def test_timeout_answers_503(both: Both) -> None:
    slow = {"query": "count_over_time(gf_all[6h:1s])", "time": str(NOW), "timeout": "0.001"}
    r = both.wk.post("/api/v1/query", data=slow)
    assert r.status_code == 503, r.text
    assert r.json() == {"status": "error", "errorType": "timeout", "error": "query timed out in expression evaluation"}
    assert _success(both.wk.post("/api/v1/query", data={**slow, "timeout": "2m"}))["resultType"] == "vector"


def _multipart(fields: list[tuple[str, str]]) -> tuple[bytes, dict[str, str]]:
    boundary = "wk-boundary-7MA4YWxkTrZu0gW"
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
                    for k, v in fields)
    return body + f"--{boundary}--\r\n".encode(), {"Content-Type": f"multipart/form-data; boundary={boundary}"}


def test_multipart_forms_carry_parameters(both: Both) -> None:
    body, headers = _multipart([("query", "gf_all"), ("time", str(TS + H))])
    got = both.wk.post("/api/v1/query", content=body, headers=headers)
    assert _success(got) == _success(both.prom.post("/api/v1/query", data={"query": "gf_all", "time": str(TS + H)}))
    body, headers = _multipart([("match[]", "gf_late"), ("match[]", 'gf_all{job="a"}'),
                                ("start", str(LATE[0])), ("end", str(LATE[1]))])
    series = _success(both.wk.post("/api/v1/labels", content=body, headers=headers))
    assert series == ["__name__", "job", "zone"]
    # a file part is no parameter; a body that does not parse carries none
    r = both.wk.post("/api/v1/query", files={"query": ("q.txt", b"gf_all")})
    assert r.status_code == 400 and r.json()["error"] == 'invalid parameter "query": no expression found in input'
    r = both.wk.post("/api/v1/query", content=b"garbage", headers={"Content-Type": "multipart/form-data"})
    assert r.status_code == 400


def test_utf8_label_names_in_the_escaped_form(both: Both) -> None:
    both.tsdb.append([Sample("gf_dotted", {"http.status": "200", "le-x": "1"}, 1.0, NOW - 30)], NOW)
    r = both.wk.get("/api/v1/label/U__http_2e_status/values")
    assert _success(r) == ["200"]
    assert _success(both.wk.get("/api/v1/label/U__le_2d_x/values", params={"match[]": '{__name__="gf_dotted"}'})) == ["1"]
    assert "http.status" in _success(both.wk.get("/api/v1/labels", params={"match[]": '{__name__="gf_dotted"}'}))
    assert unescape_name("U__a__b_2e_c") == "a_b.c"
    assert unescape_name("U__bad_zz_") == "U__bad_zz_"  # not a well-formed escape: the name as written
    assert unescape_name("plain_name") == "plain_name"
