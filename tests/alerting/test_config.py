"""The alerting: section: a real alertmanager.yml validates; mistakes are named precisely."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from watchkeeper.alerting.config import AlertingConfig
from watchkeeper.alerting.receivers import build_receivers, integrations

FIXTURE = Path(__file__).parent.parent / "fixtures" / "alerting" / "alertmanager.yml"


def _load() -> dict[str, Any]:
    return yaml.safe_load(FIXTURE.read_text())


def _error(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as info:
        AlertingConfig.model_validate(data)
    return str(info.value)


async def test_a_full_alertmanager_yml_pasted_under_alerting_validates() -> None:
    doc = yaml.safe_load("alerting:\n" + "".join(
        f"  {line}\n" for line in FIXTURE.read_text().splitlines()))
    cfg = AlertingConfig.model_validate(doc["alerting"])
    assert cfg.global_.resolve_timeout == 300.0
    assert cfg.route is not None and cfg.route.repeat_interval == 3 * 3600.0
    assert [r.name for r in cfg.receivers] == [
        "team-ops", "pager", "team-x-mails", "team-x-pager", "team-y-slack", "blackhole",
        "upstream-am"]
    assert len(cfg.inhibit_rules) == 2 and cfg.inhibit_rules[0].equal == [
        "alertname", "cluster", "service"]
    assert [t.name for t in cfg.all_time_intervals()] == ["office-hours", "weekends"]
    assert cfg.route.routes[0].continue_ is True
    assert cfg.route.routes[3].group_by == ["..."]
    # defaults per integration, as Alertmanager's
    assert cfg.receiver("team-ops").webhook_configs[0].send_resolved is True
    assert cfg.receiver("team-x-mails").email_configs[0].send_resolved is False
    assert cfg.receiver("team-y-slack").slack_configs[0].send_resolved is True
    assert cfg.receiver("pager").pagerduty_configs[0].send_resolved is True
    assert cfg.receiver("upstream-am").alertmanager_configs[0].send_resolved is True
    keys = [i.key for r in cfg.receivers for i in integrations(r)]
    assert keys == ["team-ops/webhook[0]", "pager/pagerduty[0]", "team-x-mails/email[0]",
                    "team-x-pager/email[0]", "team-x-pager/pagerduty[0]", "team-y-slack/slack[0]",
                    "upstream-am/alertmanager[0]"]
    receivers = build_receivers(cfg)
    try:
        assert sorted(receivers) == sorted(keys)
    finally:
        await receivers.aclose()


def test_secrets_do_not_show_in_the_config_repr() -> None:
    cfg = AlertingConfig.model_validate(_load())
    text = repr(cfg)
    for secret in ("not-a-real-password", "opaque-token-value", "0123456789abcdef0123456789abcdef",
                   "XXXXXXXX"):
        assert secret not in text


def test_an_unknown_receiver_names_the_route_path_and_the_receiver() -> None:
    data = _load()
    data["route"]["routes"][1]["routes"][0]["receiver"] = "team-x-pagr"
    msg = _error(data)
    assert ("route.routes[1].routes[0].receiver: unknown receiver 'team-x-pagr' (receivers: "
            "blackhole, pager, team-ops, team-x-mails, team-x-pager, team-y-slack, upstream-am)"
            ) in msg


def test_an_unknown_time_interval_is_named_with_its_route() -> None:
    data = _load()
    data["route"]["routes"][2]["routes"][0]["active_time_intervals"] = ["office-hour"]
    msg = _error(data)
    assert ("route.routes[2].routes[0].active_time_intervals[0]: unknown time interval "
            "'office-hour' (time_intervals: office-hours, weekends)") in msg


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda d: d["route"].pop("receiver"),
         "route.receiver: the root route must specify a default receiver"),
        (lambda d: d["route"].update(matchers=["a=b"]),
         "route: the root route must not have any matchers"),
        (lambda d: d["route"].update(mute_time_intervals=["weekends"]),
         "the root route must not have any mute time intervals"),
        (lambda d: d["route"].update(group_by=["...", "alertname"]),
         "cannot have wildcard group_by (`...`) and other labels at the same time"),
        (lambda d: d["route"].update(group_interval="0s"), "cannot be zero"),
        (lambda d: d["route"]["routes"][0].update(matchers=['severity=~"(unclosed"']),
         "invalid regular expression"),
        (lambda d: d.update(templates=["/etc/alertmanager/*.tmpl"]),
         "templates: Go template files are not supported"),
        (lambda d: d["receivers"].append({"name": "ops-genie", "opsgenie_configs": [{}]}),
         "opsgenie_configs is not supported by watchkeeper"),
        (lambda d: d["receivers"].append({"name": "team-ops"}),
         "receiver name 'team-ops' is not unique"),
        (lambda d: d["global"].pop("smtp_smarthost"),
         "receivers[2].email_configs[0].smarthost: no SMTP smarthost"),
        (lambda d: d["receivers"][1]["pagerduty_configs"][0].update(
            routing_key=None, service_key="abc"),
         "service_key is PagerDuty's Events API v1"),
        (lambda d: d["receivers"][0]["webhook_configs"][0].update(sendresolved=True),
         "Extra inputs are not permitted"),
    ],
)
def test_invalid_configs_are_refused_with_a_clear_message(change: Any, expected: str) -> None:
    data = _load()
    change(data)
    assert expected in _error(data)


def test_unknown_keys_are_reported_where_they_are_for_the_loaders_did_you_mean() -> None:
    """The config loader turns extra_forbidden errors into 'did you mean' by the key's path."""
    data = _load()
    data["route"]["routes"][0]["group_wiat"] = "1m"
    with pytest.raises(ValidationError) as info:
        AlertingConfig.model_validate(data)
    errs = info.value.errors()
    assert [(e["type"], e["loc"]) for e in errs] == [
        ("extra_forbidden", ("route", "routes", 0, "group_wiat"))]


def test_an_empty_section_is_valid_and_has_no_route() -> None:
    cfg = AlertingConfig.model_validate({})
    assert cfg.route is None and cfg.receivers == []
