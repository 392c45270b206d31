"""The query engine's label shortcuts: labels JSON built by hand equals ``json.dumps``, and
the NUL-joined sort text orders label sets exactly as Prometheus (label by label) does."""

from __future__ import annotations

import json
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from watchkeeper.query.engine import QueryEngine, _labels_json, _series_order, _sort_text
from watchkeeper.store.engine import open_engine
from watchkeeper.store.tsdb import TSDB

T = 1_700_000_000.0
names = st.text(alphabet="abcxyz_", min_size=1, max_size=4)
values = st.text(max_size=6)  # any code points: quotes, backslashes, controls, non-ASCII, NUL


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(names, values, max_size=5))
def test_labels_json_is_json_dumps(labels: dict[str, str]) -> None:
    items = _series_order(labels)
    assert _labels_json(items) == json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(names, values, max_size=4), max_size=12))
def test_sort_text_orders_as_label_lists(sets: list[dict[str, str]]) -> None:
    items = [_series_order(labels) for labels in sets]
    texts = [_sort_text(i) for i in items]
    for i, text in zip(items, texts, strict=True):
        assert (text is None) == any("\x00" in s for pair in i for s in pair)
    usable = [(t, i) for t, i in zip(texts, items, strict=True) if t is not None]
    assert [i for _, i in sorted(usable, key=lambda r: r[0])] == sorted(i for _, i in usable)


def test_instant_results_are_ordered_by_labels_even_with_nul_in_a_value(tmp_path: Path) -> None:
    engine = open_engine(None, tmp_path)
    try:
        db = TSDB(engine)
        vals = ["b", "a\x00z", "a", "a b", "", "ä", "a\x01"]
        db.append_rows([("m", {"k": v, "j": "1"}, T, float(i)) for i, v in enumerate(vals)])
        db.append_rows([("m", {"k": "c"}, T, 9.0)])
        for qe in (QueryEngine(db), QueryEngine(TSDB(engine))):
            got = [r["metric"] for r in json.loads(qe.instant_json("m", T))["result"]]
            assert got == sorted(got, key=lambda m: sorted(m.items()))
            assert len(got) == 8
            assert [r["metric"] for r in qe.instant("m", T)["result"]] == got
        db.append_rows([("m", {"k": "a\x00z", "j": "1"}, T + 1, 1.0)])
        no_nul = [r["metric"] for r in json.loads(QueryEngine(db).instant_json('m{k!~"a.z"}', T + 1))["result"]]
        assert no_nul == sorted(no_nul, key=lambda m: sorted(m.items())) and len(no_nul) == 7
    finally:
        engine.dispose()
