"""The query engine on a real SQLite store: instant and range answers, byte for byte as
Prometheus 2.42 writes them (values and timestamps checked against a real Prometheus)."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.errors import QueryError
from watchkeeper.query.engine import QueryEngine, format_timestamp, format_value, format_values
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB

T = 1_700_000_000.0
T0 = 1_699_999_200.0  # 472222 * 3600: an hour boundary


@pytest.fixture
def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    engine = open_engine(None, tmp_path)
    yield TSDB(engine)
    engine.dispose()


def both(qe: QueryEngine, kind: str, *args: float | str) -> str:
    """The JSON text, after checking that the Python-object answer says the same."""
    text = getattr(qe, f"{kind}_json")(*args).decode()
    assert json.loads(text) == getattr(qe, kind)(*args)
    return text


# Every pair below was read from a real Prometheus 2.42 (/api/v1/query on promtool-made blocks).
@pytest.mark.parametrize(("value", "text"), [
    (1e21, "1e+21"), (2.5e21, "2.5e+21"), (1.5e-7, "1.5e-07"), (9.99e-7, "9.99e-07"),
    (1e20, "100000000000000000000"), (1e16, "10000000000000000"), (1e15, "1000000000000000"),
    (1.5e-5, "0.000015"), (1e-6, "0.000001"), (123456789.0, "123456789"), (-0.0, "-0"),
    (0.1, "0.1"), (1234567.125, "1234567.125"), (math.inf, "+Inf"), (-math.inf, "-Inf"),
    (math.nan, "NaN"), (1.0, "1"), (0.0, "0"), (-42.5, "-42.5"), (5e-324, "5e-324"),
])
def test_format_value_as_prometheus(value: float, text: str) -> None:
    assert format_value(value) == text
    assert format_values(np.array([value])) == [text]
    assert format_values(np.array([value] * 100)) == [text] * 100


SPECIAL = [0.0, -0.0, 1.0, math.nan, math.inf, -math.inf, 1e15, 1e16, 1e21, 1e-4, 9.9e-5, 1e-6, 2.0**53]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.floats(), st.sampled_from(SPECIAL), st.integers(-10**6, 10**6).map(float),
                          st.sampled_from([0.0, 1.0, 2.0])), max_size=200))
def test_format_values_in_bulk_equals_one_by_one(values: list[float]) -> None:
    assert format_values(np.array(values, dtype=np.float64)) == [format_value(v) for v in values]


def test_negative_zero_among_repeated_zeros_keeps_its_sign() -> None:
    values = [0.0] * 99 + [-0.0]
    assert format_values(np.array(values)) == ["0"] * 99 + ["-0"]


@pytest.mark.parametrize(("ms", "text"), [
    (1_700_000_000_000, "1700000000"), (1_699_999_999_500, "1699999999.500"), (1050, "1.050"),
    (1007, "1.007"), (7, "0.007"), (0, "0"), (-1500, "-1.500"), (-2000, "-2"),
])
def test_format_timestamp_as_prometheus(ms: int, text: str) -> None:
    assert format_timestamp(ms) == text


def test_instant_lookback_is_open_at_t_minus_5m_and_closed_at_t(db: TSDB) -> None:
    db.append_rows([
        ("edge", {"at": "t-300"}, T - 300, 1.0),        # exactly 5 min before: not seen
        ("edge", {"at": "t-299.999"}, T - 299.999, 2.0),
        ("edge", {"at": "t"}, T, 3.0),
        ("edge", {"at": "t+0.001"}, T + 0.001, 4.0),    # after t: not seen
        ("edge", {"at": "t"}, T - 10, 9.0),             # older sample of a seen series: not used
    ])
    qe = QueryEngine(db)
    assert both(qe, "instant", "edge", T) == (
        '{"resultType":"vector","result":['
        '{"metric":{"__name__":"edge","at":"t"},"value":[1700000000,"3"]},'
        '{"metric":{"__name__":"edge","at":"t-299.999"},"value":[1700000000,"2"]}]}')
    assert both(qe, "instant", "edge", T + 0.5) == (
        '{"resultType":"vector","result":['
        '{"metric":{"__name__":"edge","at":"t"},"value":[1700000000.500,"3"]},'
        '{"metric":{"__name__":"edge","at":"t+0.001"},"value":[1700000000.500,"4"]}]}')  # T-299.999 too old
    assert both(qe, "instant", "missing", T) == '{"resultType":"vector","result":[]}'


def test_instant_values_and_label_order(db: TSDB) -> None:
    db.append_rows([("v", {"k": k, "Z": "upper"}, T - 1, v)
                    for k, v in [("b", math.nan), ("a", math.inf), ("c", -math.inf), ("d", 1e21), ("e", 1.5e-7)]])
    text = both(QueryEngine(db), "instant", 'v{k!="x"}', T)
    assert text == (
        '{"resultType":"vector","result":['
        '{"metric":{"Z":"upper","__name__":"v","k":"a"},"value":[1700000000,"+Inf"]},'
        '{"metric":{"Z":"upper","__name__":"v","k":"b"},"value":[1700000000,"NaN"]},'
        '{"metric":{"Z":"upper","__name__":"v","k":"c"},"value":[1700000000,"-Inf"]},'
        '{"metric":{"Z":"upper","__name__":"v","k":"d"},"value":[1700000000,"1e+21"]},'
        '{"metric":{"Z":"upper","__name__":"v","k":"e"},"value":[1700000000,"1.5e-07"]}]}')


def test_range_steps_align_to_start_and_use_the_lookback(db: TSDB) -> None:
    db.append_rows([("r", {}, T + 10, 1.0), ("r", {}, T + 20, 2.0), ("r", {}, T + 400, 3.5),
                    ("r", {}, T + 1000, 4.0), ("r", {}, T + 1320, 0.0)])
    qe = QueryEngine(db)
    # Steps are T+0.5, T+100.5, ..., T+1300.5 (from start, not multiples of the step). T+0.5: no
    # sample yet; T+100.5..T+300.5: the T+20 sample; T+400.5..T+600.5: T+400; T+700.5..T+900.5:
    # T+400 is older than 5 min; T+1000.5..T+1200.5: T+1000; T+1300.5: T+1000 is too old and
    # T+1320 is after the step.
    assert both(qe, "range", "r", T + 0.5, T + 1400, 100.0) == (
        '{"resultType":"matrix","result":[{"metric":{"__name__":"r"},"values":['
        '[1700000100.500,"2"],[1700000200.500,"2"],[1700000300.500,"2"],'
        '[1700000400.500,"3.5"],[1700000500.500,"3.5"],[1700000600.500,"3.5"],'
        '[1700001000.500,"4"],[1700001100.500,"4"],[1700001200.500,"4"]]}]}')


def test_range_lookback_boundary(db: TSDB) -> None:
    db.append_rows([("b", {}, T, 7.0)])
    qe = QueryEngine(db)
    # step T+300 sees nothing: the sample is exactly 5 min old; T+299.499 still sees it
    assert both(qe, "range", "b", T - 0.5, T + 300, 299.999) == (
        '{"resultType":"matrix","result":[{"metric":{"__name__":"b"},"values":['
        '[1700000299.499,"7"]]}]}')
    assert both(qe, "range", "b", T + 300, T + 600, 60.0) == '{"resultType":"matrix","result":[]}'
    assert both(qe, "range", "b", T, T, 1.0) == (
        '{"resultType":"matrix","result":[{"metric":{"__name__":"b"},"values":[[1700000000,"7"]]}]}')


def test_range_over_chunks_and_head_with_special_values(db: TSDB) -> None:
    # (no -0.0 here: the SQLite head stores an integral REAL as an integer and loses its sign)
    values = [math.nan, math.inf, -math.inf, 0.5, 1e21, 1.5e-7, 1e16, 0.000015, 12.25]
    db.append_rows([("s", {"i": "1"}, T0 + 60 * k, values[k % len(values)]) for k in range(180)])
    db.append_rows([("s", {"i": "0"}, T0 + 60 * k + 30, float(k)) for k in range(180)])
    db.compact(T0 + 3 * 3600)  # the first two hours into chunks, the third stays in the head
    stats = db.stats()
    assert stats["tiers"]["raw"]["chunks"] > 0 and stats["head_samples"] > 100  # the third hour
    qe = QueryEngine(db)
    data = json.loads(both(qe, "range", "s", T0, T0 + 3 * 3600, 60.0))
    (m0, v0), (m1, v1) = [(r["metric"], r["values"]) for r in data["result"]]
    assert m0 == {"__name__": "s", "i": "0"} and m1 == {"__name__": "s", "i": "1"}
    assert v0 == [[T0 + 60 * j, str(j - 1)] for j in range(1, 181)]
    expected = ["NaN", "+Inf", "-Inf", "0.5", "1e+21", "1.5e-07", "10000000000000000", "0.000015", "12.25"]
    assert v1 == [[T0 + 60 * j, expected[min(j, 179) % 9]] for j in range(181)]


def test_range_parameter_errors(db: TSDB) -> None:
    qe = QueryEngine(db)
    with pytest.raises(QueryError, match="zero or negative query resolution"):
        qe.range_json("x", T, T + 10, 0)
    with pytest.raises(QueryError, match="zero or negative query resolution"):
        qe.range_json("x", T, T + 0.0001, 0.0001)  # under a millisecond
    with pytest.raises(QueryError, match="end timestamp must not be before start time"):
        qe.range_json("x", T, T - 1, 1)
    with pytest.raises(QueryError, match="exceeded maximum resolution of 11,000 points"):
        qe.range_json("x", T, T + 11001, 1)
    with pytest.raises(QueryError):
        qe.range_json("x{", T, T + 10, 1)


def test_values_are_bit_exact_through_the_store(db: TSDB) -> None:
    # the JSON text of every value equals format_value of the stored float, head and chunks alike
    rnd_values = [struct.unpack("<d", struct.pack("<Q", (k * 0x9E3779B97F4A7C15) % (1 << 64)))[0]
                  for k in range(1, 120)]
    db.append_rows([("bits", {}, T0 + 30 * k, v) for k, v in enumerate(rnd_values)])
    db.compact(T0 + 3 * 3600)
    data = QueryEngine(db).range("bits", T0, T0 + 30 * 118, 30.0)
    got = [v for _, v in data["result"][0]["values"]]
    assert got == [format_value(v) for v in rnd_values]
