"""The routing tree: Alertmanager's matching, continue, inheritance and group keys."""

from __future__ import annotations

from pathlib import Path

import yaml

from watchkeeper.alerting.config import AlertingConfig, RouteConfig
from watchkeeper.alerting.route import build_routes, group_key, group_labels

FIXTURE = Path(__file__).parent.parent / "fixtures" / "alerting" / "alertmanager.yml"


def _tree():  # type: ignore[no-untyped-def]
    cfg = AlertingConfig.model_validate(yaml.safe_load(FIXTURE.read_text()))
    assert cfg.route is not None
    return build_routes(cfg.route)


def _receivers(labels: dict[str, str]) -> list[str]:
    return [r.receiver for r in _tree().match(labels)]


def test_no_child_matches_so_the_root_takes_it() -> None:
    assert _receivers({"alertname": "X", "service": "web"}) == ["team-ops"]


def test_continue_lets_later_siblings_match_too() -> None:
    # severity=critical matches routes[0] (continue: true) and then routes[1] -> its child
    assert _receivers({"alertname": "X", "severity": "critical", "service": "foo1"}) == [
        "pager", "team-x-pager"]


def test_first_match_without_continue_stops() -> None:
    # routes[1] matches (service=foo2) and has no continue: routes[2] is not tried
    assert _receivers({"alertname": "X", "service": "foo2"}) == ["team-x-mails"]


def test_legacy_match_re_is_anchored() -> None:
    assert _receivers({"alertname": "X", "service": "foo10"}) == ["team-ops"]


def test_children_inherit_receiver_and_timing_but_not_time_intervals() -> None:
    root = _tree()
    files = root.routes[2]
    staging = files.routes[0]
    assert (files.group_wait, files.group_interval, files.repeat_interval) == (30.0, 300.0, 10800.0)
    assert staging.group_by == frozenset({"alertname", "cluster", "service"})
    assert files.mute_time_intervals == ("weekends",)
    assert staging.mute_time_intervals == () and staging.active_time_intervals == ("office-hours",)
    pager = root.routes[0]
    assert (pager.group_wait, pager.repeat_interval) == (10.0, 10800.0)


def test_defaults_are_alertmanagers() -> None:
    root = build_routes(RouteConfig(receiver="r"))
    assert (root.group_wait, root.group_interval, root.repeat_interval) == (30.0, 300.0, 14400.0)
    assert root.group_by == frozenset() and not root.group_by_all


def test_group_by_all_labels() -> None:
    root = _tree()
    watchdog = root.routes[3]
    labels = {"alertname": "Watchdog", "prometheus": "k8s/main"}
    assert [r.receiver for r in root.match(labels)] == ["blackhole"]
    assert group_labels(watchdog, labels) == labels
    assert group_key(watchdog, labels) == (
        '{}/{alertname="Watchdog"}:{alertname="Watchdog", prometheus="k8s/main"}')


def test_group_key_is_route_chain_and_group_labels() -> None:
    root = _tree()
    labels = {"alertname": "Disk", "service": "foo1", "severity": "critical", "instance": "a"}
    routes = root.match(labels)
    assert [group_key(r, labels) for r in routes] == [
        '{}/{severity="critical"}:{alertname="Disk", service="foo1"}',
        '{}/{service=~"^(foo1|foo2|baz)$"}/{severity="critical"}:{alertname="Disk", service="foo1"}',
    ]
    # labels missing from the alert are not group labels
    assert group_labels(routes[0], labels) == {"alertname": "Disk", "service": "foo1"}


def test_several_matchers_in_one_item_and_negative_matchers() -> None:
    root = _tree()
    assert [r.receiver for r in root.match({"service": "storage", "team": "legacy"})] == ["team-ops"]
    assert [r.receiver for r in root.match({"service": "storage", "team": "a"})] == ["team-y-slack"]
    hit = root.match({"service": "files", "env": "staging"})
    assert [r.path for r in hit] == ["route.routes[2].routes[0]"]
