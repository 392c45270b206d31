"""Inhibition with Alertmanager's semantics, and the muter that combines it with silences."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from watchkeeper.alerting.inhibit import Inhibitor, InhibitRule
from watchkeeper.alerting.matchers import parse_matchers
from watchkeeper.alerting.model import Alert, AlertState
from watchkeeper.alerting.mute import AlertMuter
from watchkeeper.alerting.silences import Silences
from watchkeeper.alerting.store import ActiveAlert, AlertStore
from watchkeeper.store.engine import open_engine
from watchkeeper.testing import FakeClock

T0 = 1_700_000_000.0


def alert(state: AlertState = AlertState.FIRING, **labels: str) -> Alert:
    return Alert(labels=dict(labels), state=state)


RULE = InhibitRule(source_matchers=['severity="critical"'],
                   target_matchers=['severity=~"warning|info"'], equal=["cluster", "service"])


@pytest.mark.parametrize(("source", "target", "inhibited"), [
    ({"cluster": "a", "service": "db"}, {"cluster": "a", "service": "db"}, True),
    ({"cluster": "a", "service": "db"}, {"cluster": "b", "service": "db"}, False),
    # a label missing on both sides is equal; missing on one side only is not
    ({"cluster": "a"}, {"cluster": "a"}, True),
    ({"cluster": "a"}, {"cluster": "a", "service": "db"}, False),
    ({"cluster": "a", "service": ""}, {"cluster": "a"}, True),  # empty == missing
    ({}, {}, True),
])
def test_equal_labels(source: dict[str, str], target: dict[str, str], inhibited: bool) -> None:
    src = alert(alertname="Src", severity="critical", **source)
    tgt = alert(alertname="Tgt", severity="warning", **target)
    assert RULE.inhibited_by(tgt, [src, tgt]) is (src if inhibited else None)


def test_only_firing_sources_inhibit() -> None:
    tgt = alert(alertname="T", severity="warning")
    for state in (AlertState.PENDING, AlertState.RESOLVED):
        src = alert(state, alertname="S", severity="critical")
        assert RULE.inhibited_by(tgt, [src]) is None


def test_target_must_match_target_matchers() -> None:
    src = alert(alertname="S", severity="critical")
    assert RULE.inhibited_by(alert(alertname="T", severity="page"), [src]) is None
    assert RULE.inhibited_by(alert(alertname="T"), [src]) is None


def test_an_alert_matching_both_sides_does_not_inhibit_itself() -> None:
    rule = InhibitRule(source_matchers=["alertname=NodeDown"],
                       target_matchers=['severity="page"'], equal=["instance"])
    both = alert(alertname="NodeDown", severity="page", instance="web1")
    assert rule.inhibited_by(both, [both]) is None
    # nor does another alert that matches both sides: Alertmanager skips such sources
    twin = alert(alertname="NodeDown", severity="page", instance="web1", extra="x")
    assert rule.inhibited_by(both, [twin, both]) is None
    # but a source matching only the source side does
    src = alert(alertname="NodeDown", severity="info", instance="web1")
    assert rule.inhibited_by(both, [twin, src, both]) is src
    # and a target that does not match the source side is muted even by a two-sided source
    tgt = alert(alertname="Other", severity="page", instance="web1")
    assert rule.inhibited_by(tgt, [both]) is both


def test_legacy_fields_and_yaml_as_in_alertmanager_yml() -> None:
    doc = yaml.safe_load("""
inhibit_rules:
  - source_match: {severity: critical}
    target_match_re: {severity: "warn.*"}
    equal: [alertname]
  - source_matchers: ['alertname = "ClusterDown"']
    target_matchers: ['alertname =~ "Node.*", team != "core"']
""")
    rules = [InhibitRule.model_validate(r) for r in doc["inhibit_rules"]]
    inh = Inhibitor(rules)
    crit = alert(alertname="Disk", severity="critical")
    assert inh.inhibited_by(alert(alertname="Disk", severity="warning"), [crit]) == crit.fingerprint
    assert not inh.inhibits(alert(alertname="Load", severity="warning"), [crit])
    down = alert(alertname="ClusterDown")
    assert inh.inhibits(alert(alertname="NodeHot", team="edge"), [down])
    assert not inh.inhibits(alert(alertname="NodeHot", team="core"), [down])
    assert not Inhibitor([]).inhibits(alert(alertname="NodeHot"), [down])


@pytest.mark.parametrize(("doc", "message"), [
    ({"source_matchers": ['a=~"("']}, "invalid regular expression"),
    ({"target_matchers": ["=x"]}, "invalid matchers"),
    ({"source_match_re": {"a": "("}}, "invalid regular expression"),
    ({"sourcematchers": []}, "Extra inputs are not permitted"),
])
def test_bad_rules_are_config_errors(doc: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        InhibitRule.model_validate(doc)


# -- the muter: silences first, then inhibition ---------------------------------------------
@pytest.fixture
def parts(tmp_path: Path) -> Iterator[tuple[AlertStore, Silences, AlertMuter]]:
    engine = open_engine(None, tmp_path)
    clock = FakeClock(T0)
    try:
        store = AlertStore(engine, clock=clock)
        sil = Silences(engine, clock)
        yield store, sil, AlertMuter(sil, Inhibitor([RULE]), store)
    finally:
        engine.dispose()


def test_muter_reports_silences_and_inhibition(parts: tuple[AlertStore, Silences, AlertMuter]
                                               ) -> None:
    store, sil, muter = parts
    crit = {"alertname": "Down", "severity": "critical", "cluster": "a"}
    warn = {"alertname": "Slow", "severity": "warning", "cluster": "a"}
    store.sync_rule("g/Down", [ActiveAlert(crit)], T0, for_=60)
    out = store.sync_rule("g/Slow", [ActiveAlert(warn)], T0, for_=0)
    slow = out[0]
    assert muter.muted(slow, T0) is None  # the source is only pending
    down = store.sync_rule("g/Down", [ActiveAlert(crit)], T0 + 60, for_=60)[0]
    assert muter.muted(slow, T0 + 60) == f"inhibited by {down.fingerprint}"
    sid = sil.add(parse_matchers("alertname=Slow"), starts_at=T0 + 60, ends_at=T0 + 120,
                  created_by="alice", comment="known")
    assert muter.muted(slow, T0 + 60) == f"silenced by {sid}"
    st = muter.status(slow, T0 + 60)
    assert (st.silenced_by, st.inhibited_by, st.muted) == ([sid], [down.fingerprint], True)
    # a silenced source still inhibits, as in Alertmanager
    sil.add(parse_matchers("alertname=Down"), starts_at=T0 + 60, ends_at=T0 + 120,
            created_by="alice", comment="known")
    assert muter.status(slow, T0 + 60).inhibited_by == [down.fingerprint]
    assert muter.muted(down, T0 + 60) is not None
    assert muter.status(slow, T0 + 200).silenced_by == []
