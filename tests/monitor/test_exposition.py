"""The Prometheus text / OpenMetrics parser and the text renderer, against real outputs."""

from __future__ import annotations

import math
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as om_generate_latest

from watchkeeper.errors import ParseError
from watchkeeper.monitor.exposition import (
    format_value,
    is_openmetrics_content_type,
    iter_openmetrics_file,
    parse,
    parse_families,
    parse_text,
    render_text,
)
from watchkeeper.monitor.model import Sample

FIXTURES = Path(__file__).parent.parent / "fixtures" / "exposition"


def _by_key(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for s in samples}


def _same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


# -- stored real outputs --------------------------------------------------------------

def test_node_exporter_stored_output() -> None:
    text = (FIXTURES / "node_exporter.txt").read_text()
    families = parse_families(text)
    samples = [s for f in families for s in f.samples]
    assert len(samples) == sum(1 for line in text.splitlines() if not line.startswith("#"))
    by = {f.name: f for f in families}
    assert by["node_cpu_seconds_total"].type == "counter"
    assert by["node_cpu_seconds_total"].help == "Seconds the CPUs spent in each mode."
    assert by["go_gc_duration_seconds"].type == "summary"
    assert {s.labels.get("quantile") for s in by["go_gc_duration_seconds"].samples} == {
        "0", "0.25", "0.5", "0.75", "1", None}
    key = _by_key(samples)
    assert key[("node_cpu_seconds_total", (("cpu", "0"), ("mode", "idle")))] == 277.81
    assert key[("node_filesystem_size_bytes", (("device", "/dev/vda"), ("fstype", "ext4"),
                                                ("mountpoint", "/")))] == 2.70553174016e11
    assert all(s.timestamp is None for s in samples)


def test_client_python_text_fixture() -> None:
    families = {f.name: f for f in parse_families((FIXTURES / "client_python.txt").read_text())}
    # 0.0.4 from client_python names the counter family with its _total suffix
    fam = families["http_requests_total"]
    assert fam.type == "counter"
    assert fam.help == "Requests served.\nSecond line with \\ backslash"
    get = fam.samples[0]
    assert get.labels == {"method": "GET", "path": '/a "quoted" \\ path\nnewline'}
    assert get.value == 3.0
    hist = families["request_latency_seconds"]
    assert hist.type == "histogram"
    assert [(s.name, s.labels.get("le"), s.value) for s in hist.samples][:5] == [
        ("request_latency_seconds_bucket", "0.005", 1.0),
        ("request_latency_seconds_bucket", "0.1", 2.0),
        ("request_latency_seconds_bucket", "1.0", 3.0),
        ("request_latency_seconds_bucket", "+Inf", 4.0),
        ("request_latency_seconds_count", None, 4.0),
    ]
    temps = {s.labels["room"]: s.value for s in families["temperature_celsius"].samples}
    assert temps["kitchen"] == 21.5 and temps["cellar"] == -3e-7 and math.isnan(temps["void"])
    assert families["neg_inf"].samples[0].value == -math.inf
    assert families["big_number"].samples[0].value == 1.5e300


def test_client_python_openmetrics_fixture() -> None:
    exp = parse((FIXTURES / "client_python.om.txt").read_text())
    assert exp.openmetrics  # detected from '# EOF'
    fams = {f.name: f for f in exp.families}
    assert fams["http_requests"].type == "counter"
    names = [s.name for s in fams["http_requests"].samples]
    assert names == ["http_requests_total", "http_requests_created"] * 2
    post = fams["http_requests"].samples[2]
    assert post.labels == {"method": "POST", "path": "/b"} and post.value == 1.5  # exemplar gone
    assert fams["temperature_celsius"].unit == "celsius"
    assert fams["build"].type == "info"
    assert fams["build"].samples[0].labels == {"revision": "abc", "version": "1.2.3"}
    assert fams["task_state"].type == "stateset"
    bucket = [s for s in fams["request_latency_seconds"].samples if s.labels.get("le") == "0.1"]
    assert bucket[0].value == 2.0
    assert fams["request_latency_seconds"].samples[-1].name == "request_latency_seconds_created"


def test_both_client_python_formats_give_the_same_values() -> None:
    text = _by_key(parse_text((FIXTURES / "client_python.txt").read_text()))
    om = _by_key(parse_text((FIXTURES / "client_python.om.txt").read_text()))
    assert text.keys() == om.keys()
    assert all(_same(text[k], om[k]) for k in text)


# -- live producers -------------------------------------------------------------------

def _registry() -> CollectorRegistry:
    r = CollectorRegistry()
    c = Counter("jobs", "Jobs done.", ["queue"], registry=r)
    c.labels('a"b\\c\nd').inc(7)
    c.labels("plain").inc(0.25, exemplar={"trace_id": "t1"})
    g = Gauge("level", "Level.", registry=r)
    g.set(-math.inf)
    h = Histogram("wait_seconds", "Wait.", registry=r, buckets=(0.1, 1.0))
    h.observe(0.3, exemplar={"id": "x y}"})
    h.observe(5)
    return r


def test_live_client_python_both_formats() -> None:
    r = _registry()
    text = generate_latest(r).decode()
    om = om_generate_latest(r).decode()
    a = _by_key(parse_text(text))
    b = _by_key(parse_text(om, openmetrics=True))
    assert a == b
    assert a[("jobs_total", (("queue", 'a"b\\c\nd'),))] == 7.0
    assert a[("wait_seconds_bucket", (("le", "1.0"),))] == 1.0
    assert a[("level", ())] == -math.inf


def test_live_node_exporter(node_exporter_url: str) -> None:
    import httpx

    with httpx.Client() as client:
        resp = client.get(node_exporter_url)
    resp.raise_for_status()
    families = parse_families(resp.text, openmetrics=is_openmetrics_content_type(
        resp.headers["content-type"]))
    names = {f.name for f in families}
    assert {"node_cpu_seconds_total", "node_load1", "node_memory_MemTotal_bytes"} <= names
    assert sum(len(f.samples) for f in families) > 200


# -- round trip and promtool --------------------------------------------------------

@pytest.mark.parametrize("fixture", ["node_exporter.txt", "client_python.txt",
                                     "client_python.om.txt"])
def test_render_then_parse_round_trips(fixture: str) -> None:
    families = parse_families((FIXTURES / fixture).read_text())
    samples = [s for f in families for s in f.samples]
    types = {f.name: f.type for f in families}
    helps = {f.name: f.help for f in families if f.help is not None}
    rendered = render_text(samples, types, helps)
    again = parse_families(rendered)
    flat = [s for f in again for s in f.samples]
    assert len(flat) == len(samples)
    # text 0.0.4 groups by name, so an OpenMetrics counter's _total/_created pairs are
    # regrouped; compare as series -> value, and order too where nothing regroups
    a, b = _by_key(samples), _by_key(flat)
    assert a.keys() == b.keys()
    assert all(_same(a[k], b[k]) for k in a)
    if fixture == "node_exporter.txt":
        for x, y in zip(samples, flat, strict=True):
            assert (x.name, dict(x.labels), x.timestamp) == (y.name, dict(y.labels), y.timestamp)
        assert rendered.count("# TYPE ") == len(families)
        assert {f.name: (f.type, f.help) for f in again} == {
            f.name: (f.type, f.help) for f in families}


def test_render_is_accepted_by_promtool() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is needed for this test"
    families = parse_families((FIXTURES / "client_python.om.txt").read_text())
    samples = [s for f in families for s in f.samples]
    samples.append(Sample("with_ts", {"x": "1"}, 2.5, timestamp=1700000000.123))
    rendered = render_text(samples, {f.name: f.type for f in families},
                           {f.name: f.help for f in families if f.help})
    proc = subprocess.run([promtool, "check", "metrics"], input=rendered, check=False, capture_output=True,
                          text=True, timeout=30)
    # exit 3 = lint findings only (naming advice); 1 = the text does not parse
    assert proc.returncode in (0, 3), proc.stderr + proc.stdout
    assert "parsing error" not in proc.stderr + proc.stdout


def test_render_format_details() -> None:
    samples = [
        Sample("lat_seconds_bucket", {"le": "+Inf"}, 3.0),
        Sample("other", {}, 1e21),
        Sample("lat_seconds_sum", {}, 0.5),
        Sample("lat_seconds_count", {}, 3.0),
        Sample("reqs_total", {"path": 'a"b\\c\nd'}, 12.0, 1700000000.5),
        Sample("nan", {}, math.nan),
    ]
    out = render_text(samples, {"lat_seconds": "histogram", "reqs": "counter"},
                      {"lat_seconds": "Latency\nwith \\ in it."})
    assert out == (
        "# HELP lat_seconds Latency\\nwith \\\\ in it.\n"
        "# TYPE lat_seconds histogram\n"
        'lat_seconds_bucket{le="+Inf"} 3\n'
        "lat_seconds_sum 0.5\n"
        "lat_seconds_count 3\n"
        "other 1e+21\n"
        "# TYPE reqs_total counter\n"
        'reqs_total{path="a\\"b\\\\c\\nd"} 12 1700000000500\n'
        "nan NaN\n"
    )
    assert render_text([]) == ""


@pytest.mark.parametrize(("value", "text"), [
    (math.inf, "+Inf"), (-math.inf, "-Inf"), (0.1, "0.1"), (3.0, "3"), (-2.0, "-2"),
    (1e-9, "1e-09"), (2.0 ** 60, "1.152921504606847e+18"),
])
def test_format_value(value: float, text: str) -> None:
    assert format_value(value) == text
    assert float(text.replace("Inf", "inf")) == value


# -- the format's corners --------------------------------------------------------------

def test_values_timestamps_and_spacing() -> None:
    text = (
        "# a free comment\n"
        "\n"
        "a 1e3\n"
        "b{x=\"1\",} -1.5E-3 1700000000123\n"
        "c   +Inf\n"
        "d\t-Inf\n"
        "e NaN\n"
        "f {y = \"2\" , z=\"}\"} 7\n"
    )
    got = parse_text(text)
    assert [(s.name, dict(s.labels), s.value, s.timestamp) for s in got[:2]] == [
        ("a", {}, 1000.0, None), ("b", {"x": "1"}, -0.0015, 1700000000.123)]
    assert got[2].value == math.inf and got[3].value == -math.inf and math.isnan(got[4].value)
    assert got[5].labels == {"y": "2", "z": "}"}


def test_openmetrics_timestamps_are_seconds_and_exemplars_dropped() -> None:
    text = (
        "# TYPE foo counter\n"
        "# HELP foo Foo \\\"quoted\\\".\n"
        'foo_total{a="1"} 5 1700000000.25 # {trace="a b # c"} 1 1700000000.1\n'
        "foo_created 1.6e9\n"
        "# EOF\n"
    )
    fams = parse_families(text)
    assert fams[0].help == 'Foo "quoted".'
    s = fams[0].samples[0]
    assert (s.value, s.timestamp) == (5.0, 1700000000.25)
    assert len(fams) == 1 and len(fams[0].samples) == 2


def test_default_timestamp_fills_missing_ones() -> None:
    got = parse_text("a 1\nb 2 5000\n", default_timestamp=42.0)
    assert [s.timestamp for s in got] == [42.0, 5.0]


@pytest.mark.parametrize(("text", "message"), [
    ("foo abc\n", "line 1: invalid value 'abc' for metric foo"),
    ("ok 1\n\nfoo 1_000\n", "line 3: invalid value '1_000' for metric foo"),
    ("foo\n", "line 1: missing value for metric foo"),
    ("foo 1 12.5\n", "line 1: invalid timestamp '12.5' for metric foo"),
    ("foo 1 2 3\n", "line 1: unexpected text '3' after the timestamp of metric foo"),
    ('foo{a="1",a="2"} 1\n', "line 1: duplicate label 'a' for metric foo"),
    ('foo{a="\\t"} 1\n', "line 1: invalid escape sequence '\\t' in label value"),
    ('foo{a=1} 1\n', "line 1: invalid label set for metric foo at column 5"),
    ('foo{a="1" b="2"} 1\n', "line 1: expected ',' or '}' in the labels of metric foo at column 11"),
    ("9foo 1\n", "line 1: invalid metric name '9foo'"),
    ("# TYPE foo countr\n", "line 1: unknown metric type 'countr' for metric foo"),
    ("# TYPE foo gauge\n# TYPE foo gauge\n", "line 2: second '# TYPE' line for metric foo"),
    ("# HELP foo a\nfoo 1\n# TYPE foo gauge\n", "line 3: '# TYPE' for metric foo after its samples"),
    ("# TYPE h histogram\nh_bucket 1\n", "line 2: histogram bucket h_bucket without an 'le' label"),
    ("foo 1 # {a=\"b\"} 1\n", "line 1: exemplars are only allowed in OpenMetrics (metric foo)"),
])
def test_strict_errors_name_line_and_problem(text: str, message: str) -> None:
    with pytest.raises(ParseError) as err:
        parse(text, openmetrics=False)
    assert str(err.value) == message


def test_openmetrics_eof_rules() -> None:
    with pytest.raises(ParseError, match=r"^line 3: content after '# EOF'$"):
        parse_text("a 1\n# EOF\nb 2\n")
    with pytest.raises(ParseError, match=r"must end with '# EOF'"):
        parse_text("a 1\n", openmetrics=True)
    assert len(parse_text("a 1\n# EOF")) == 1  # no newline after EOF is fine


def test_tolerant_mode_collects_issues_and_keeps_going() -> None:
    text = "good 1\nbad abc\n{oops} 3\nalso_good{x=\"y\"} 2\nfoo 1 2 3\n"
    exp = parse(text, strict=False)
    assert [s.name for s in exp.samples] == ["good", "also_good"]
    assert [str(i) for i in exp.issues] == [
        "line 2: invalid value 'abc' for metric bad",
        "line 3: invalid metric name '{oops}'",
        "line 5: unexpected text '3' after the timestamp of metric foo",
    ]
    assert exp.issues[1].text == "{oops} 3"
    assert len(parse_text(text, strict=False)) == 2


@pytest.mark.parametrize(("content_type", "expected"), [
    ("application/openmetrics-text; version=1.0.0; charset=utf-8", True),
    ("text/plain; version=0.0.4", False),
    ("application/json", None),
    (None, None),
])
def test_content_type_detection(content_type: str | None, expected: bool | None) -> None:
    assert is_openmetrics_content_type(content_type) is expected


# -- streaming import --------------------------------------------------------------

def _write_import_file(path: Path, series: int, points: int) -> int:
    with path.open("w") as f:
        f.write("# HELP import_metric A metric to import.\n# TYPE import_metric gauge\n")
        for p in range(points):
            for i in range(series):
                f.write(f'import_metric{{instance="host{i}",job="j"}} {p * 0.5 + i} '
                        f"{1700000000 + p * 15}.5\n")
        f.write("# EOF\n")
    return series * points


def test_iter_openmetrics_file_batches(tmp_path: Path) -> None:
    path = tmp_path / "import.om"
    total = _write_import_file(path, series=50, points=130)
    batches = list(iter_openmetrics_file(path, batch=1000, chunk_bytes=4096))
    assert [len(b) for b in batches] == [1000] * 6 + [500]
    flat = [s for b in batches for s in b]
    assert len(flat) == total
    assert flat[0] == Sample("import_metric", {"instance": "host0", "job": "j"}, 0.0, 1700000000.5)
    assert flat[-1].timestamp == 1700000000.5 + 129 * 15
    # promtool accepts the same file for `tsdb create-blocks-from openmetrics`
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian package prometheus) is needed for this test"
    proc = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(path),
                           str(tmp_path / "blocks")], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_iter_openmetrics_file_reports_line_of_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.om"
    path.write_text("a 1 1.5\n" * 10 + "a xyz 2\n# EOF\n")
    with pytest.raises(ParseError, match=r"^line 11: invalid value 'xyz' for metric a$"):
        for _ in iter_openmetrics_file(path, batch=3, chunk_bytes=7):
            pass
    path.write_text("a 1 1.5\n")
    with pytest.raises(ParseError, match="must end with '# EOF'"):
        list(iter_openmetrics_file(path))


def test_parse_speed_100k_lines() -> None:
    lines = []
    for i in range(100_000):
        lines.append(f'http_requests_total{{code="{200 + i % 5}",handler="/api/{i}",'
                     f'method="GET"}} {i * 1.5} 1700000000000')
    text = "# TYPE http_requests_total counter\n" + "\n".join(lines) + "\n"
    start = time.process_time()  # this process's CPU: other work on the machine does not count
    samples = parse_text(text)
    elapsed = time.process_time() - start
    assert len(samples) == 100_000
    assert samples[-1].labels["handler"] == "/api/99999"
    # ~0.35 s on the 2-CPU development VM; the bound leaves room for slow CI machines
    assert elapsed < 2.0, f"parsing 100k lines took {elapsed:.2f}s of CPU"


# -- a real node_exporter ---------------------------------------------------------------

def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def node_exporter_url():  # type: ignore[no-untyped-def]
    """prometheus-node-exporter on an ephemeral loopback port, stopped afterwards."""
    import httpx

    exe = shutil.which("prometheus-node-exporter")
    assert exe, "prometheus-node-exporter (Debian package) is needed for this test"
    port = _free_port()
    proc = subprocess.Popen([exe, f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with httpx.Client() as c:
                    c.get(url, timeout=1.0)
                break
            except httpx.TransportError:
                assert proc.poll() is None, "node_exporter exited at start"
                assert time.monotonic() < deadline, "node_exporter did not start listening"
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)
