"""The ``alerting:`` section: Alertmanager's own config file, pasted in as is.

The models follow Alertmanager's ``alertmanager.yml``: ``global``, ``route``
(recursive), ``receivers``, ``inhibit_rules``, ``time_intervals`` and the older
``mute_time_intervals``, ``templates``. Receivers watchkeeper delivers to are
``webhook_configs``, ``slack_configs``, ``email_configs``, ``pagerduty_configs``
and its own ``alertmanager_configs`` (forward to an existing Alertmanager).
Other Alertmanager integrations (OpsGenie, VictorOps, ...) are refused with a
message that says so, rather than being silently ignored.

Validation beyond field types (raised as ``ValueError`` so the config loader
reports it with file and line): the root route names a receiver and has no
matchers or time intervals; every receiver a route names exists (the message
names the route's path, e.g. ``route.routes[1].routes[0]``); every time
interval a route names exists; ``group_by: [...]`` stands alone.

``templates`` (Go template files) are not supported: give ``title``/``text``/
``html`` directly on the integration; the loader reports a clear error.
"""

from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from watchkeeper.alerting.inhibit import InhibitRule
from watchkeeper.alerting.timeintervals import TimeInterval
from watchkeeper.config.types import Duration, StrictModel

__all__ = [
    "AlertingConfig", "AlertmanagerConfig", "Authorization", "BasicAuth", "EmailConfig",
    "GlobalConfig", "HTTPConfig", "PagerdutyConfig", "ReceiverConfig", "RouteConfig",
    "SlackConfig", "TLSConfig", "WebhookConfig", "DEFAULT_PAGERDUTY_URL",
]

DEFAULT_PAGERDUTY_URL = "https://events.pagerduty.com/v2/enqueue"

# Alertmanager integrations watchkeeper does not deliver to: named in the error.
_UNSUPPORTED_INTEGRATIONS = (
    "discord_configs", "msteams_configs", "msteamsv2_configs", "opsgenie_configs",
    "pushover_configs", "sns_configs", "telegram_configs", "victorops_configs",
    "webex_configs", "wechat_configs", "jira_configs", "rocketchat_configs",
)


class TLSConfig(StrictModel):
    """Prometheus common ``tls_config``."""

    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: str | None = None


class BasicAuth(StrictModel):
    username: str = ""
    password: str | None = Field(None, repr=False)
    password_file: str | None = None


class Authorization(StrictModel):
    type: str = "Bearer"
    credentials: str | None = Field(None, repr=False)
    credentials_file: str | None = None


class HTTPConfig(StrictModel):
    """The subset of Prometheus's ``http_config`` that receivers use."""

    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    bearer_token: str | None = Field(None, repr=False)
    bearer_token_file: str | None = None
    tls_config: TLSConfig | None = None
    proxy_url: str | None = None
    follow_redirects: bool = True
    enable_http2: bool = True

    @model_validator(mode="after")
    def _one_auth(self) -> HTTPConfig:
        given = [n for n in ("basic_auth", "authorization", "bearer_token", "bearer_token_file")
                 if getattr(self, n) is not None]
        if len(given) > 1:
            raise ValueError(f"at most one of basic_auth, authorization, bearer_token(_file) "
                             f"may be set, not {', '.join(given)}")
        return self


class GlobalConfig(StrictModel):
    """``global:``: defaults every integration inherits."""

    resolve_timeout: Duration = 300.0
    http_config: HTTPConfig | None = None
    smtp_from: str | None = None
    smtp_hello: str = "localhost"
    smtp_smarthost: str | None = None
    smtp_auth_username: str | None = None
    smtp_auth_password: str | None = Field(None, repr=False)
    smtp_auth_password_file: str | None = None
    smtp_auth_identity: str | None = None
    smtp_auth_secret: str | None = Field(None, repr=False)
    smtp_require_tls: bool = True
    slack_api_url: str | None = Field(None, repr=False)
    slack_api_url_file: str | None = None
    pagerduty_url: str = DEFAULT_PAGERDUTY_URL
    # accepted so that a real alertmanager.yml pastes in; watchkeeper does not use them
    opsgenie_api_url: str | None = None
    opsgenie_api_key: str | None = Field(None, repr=False)
    victorops_api_url: str | None = None
    wechat_api_url: str | None = None
    telegram_api_url: str | None = None
    webex_api_url: str | None = None


class WebhookConfig(StrictModel):
    """``webhook_configs[]``: POST Alertmanager's version 4 JSON to ``url``."""

    url: str | None = Field(None, repr=False)
    url_file: str | None = None
    send_resolved: bool = True
    max_alerts: int = Field(0, ge=0)
    timeout: Duration = 0.0  # 0: the delivery service's attempt timeout
    http_config: HTTPConfig | None = None

    @model_validator(mode="after")
    def _url(self) -> WebhookConfig:
        if not self.url and not self.url_file:
            raise ValueError("one of url or url_file is required")
        return self


class SlackConfig(StrictModel):
    """``slack_configs[]``: a Slack-compatible incoming webhook (``api_url``)."""

    api_url: str | None = Field(None, repr=False)
    api_url_file: str | None = None
    channel: str | None = None
    username: str | None = None
    icon_emoji: str | None = None
    icon_url: str | None = None
    color: str | None = None
    title: str | None = None
    title_link: str | None = None
    pretext: str | None = None
    text: str | None = None
    footer: str | None = None
    fallback: str | None = None
    short_fields: bool = False
    link_names: bool = False
    mrkdwn_in: list[str] | None = None
    send_resolved: bool = False
    http_config: HTTPConfig | None = None


class EmailConfig(StrictModel):
    """``email_configs[]``: mail over SMTP (STARTTLS or TLS on 465, auth, text + HTML)."""

    to: str
    from_: str | None = Field(None, alias="from")
    smarthost: str | None = None
    hello: str | None = None
    auth_username: str | None = None
    auth_password: str | None = Field(None, repr=False)
    auth_password_file: str | None = None
    auth_identity: str | None = None
    auth_secret: str | None = Field(None, repr=False)
    require_tls: bool | None = None
    tls_config: TLSConfig | None = None
    html: str | None = None
    text: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    send_resolved: bool = False

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class PagerdutyConfig(StrictModel):
    """``pagerduty_configs[]``: PagerDuty Events API v2."""

    routing_key: str | None = Field(None, repr=False)
    routing_key_file: str | None = None
    service_key: str | None = Field(None, repr=False)  # Events v1: refused below
    url: str | None = None
    client: str = "watchkeeper"
    client_url: str | None = None
    description: str | None = None
    details: dict[str, str] | None = None
    severity: str = "error"
    class_: str | None = Field(None, alias="class")
    component: str | None = None
    group: str | None = None
    source: str | None = None
    send_resolved: bool = True
    http_config: HTTPConfig | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _key(self) -> PagerdutyConfig:
        if self.service_key and not (self.routing_key or self.routing_key_file):
            raise ValueError("service_key is PagerDuty's Events API v1, which watchkeeper does "
                             "not speak; use routing_key (an Events API v2 integration key)")
        if not (self.routing_key or self.routing_key_file):
            raise ValueError("routing_key (or routing_key_file) is required")
        return self


class AlertmanagerConfig(StrictModel):
    """``alertmanager_configs[]`` (watchkeeper's own): forward alerts to an Alertmanager.

    ``url`` is its base (``http://am:9093``); alerts go to ``POST /api/v2/alerts``.
    Firing alerts are sent at every group flush with ``endsAt`` = now + ``alert_ttl``
    (as Prometheus sends them), so the other Alertmanager keeps them firing.
    """

    url: str
    send_resolved: bool = True
    alert_ttl: Duration = 1200.0
    http_config: HTTPConfig | None = None


class ReceiverConfig(StrictModel):
    """``receivers[]``: a name and its integrations (none: a receiver that drops everything)."""

    name: str = Field(min_length=1)
    webhook_configs: list[WebhookConfig] = Field(default_factory=list)
    slack_configs: list[SlackConfig] = Field(default_factory=list)
    email_configs: list[EmailConfig] = Field(default_factory=list)
    pagerduty_configs: list[PagerdutyConfig] = Field(default_factory=list)
    alertmanager_configs: list[AlertmanagerConfig] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _unsupported(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in _UNSUPPORTED_INTEGRATIONS:
                if key in data:
                    raise ValueError(
                        f"{key} is not supported by watchkeeper; use webhook_configs, "
                        "slack_configs, email_configs, pagerduty_configs or alertmanager_configs "
                        "(a webhook bridge works for the others)")
        return data


class RouteConfig(StrictModel):
    """``route:`` and its ``routes`` (recursive). Unset options inherit from the parent."""

    receiver: str | None = None
    group_by: list[str] | None = None
    continue_: bool = Field(False, alias="continue")
    matchers: list[str] = Field(default_factory=list)
    match: dict[str, str] = Field(default_factory=dict)
    match_re: dict[str, str] = Field(default_factory=dict)
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)
    routes: list[RouteConfig] = Field(default_factory=list)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if "..." in value and len(value) > 1:
            raise ValueError("cannot have wildcard group_by (`...`) and other labels at the same time")
        seen: set[str] = set()
        for name in value:
            if name in seen:
                raise ValueError(f"duplicated label {name!r} in group_by")
            seen.add(name)
        return value

    @field_validator("group_interval", "repeat_interval")
    @classmethod
    def _not_zero(cls, value: float | None) -> float | None:
        if value is not None and value == 0:
            raise ValueError("cannot be zero")
        return value

    @field_validator("matchers")
    @classmethod
    def _matchers(cls, value: list[str]) -> list[str]:
        from watchkeeper.alerting.route import parse_route_matchers

        parse_route_matchers(value)  # raises ValueError naming the bad matcher
        return value

    def walk(self, path: str = "route") -> list[tuple[str, RouteConfig]]:
        """Every route with its path (``route``, ``route.routes[0]``, ...), depth first."""
        out = [(path, self)]
        for i, child in enumerate(self.routes):
            out.extend(child.walk(f"{path}.routes[{i}]"))
        return out


class AlertingConfig(StrictModel):
    """``alerting:``: Alertmanager's configuration (route, receivers, inhibit_rules, time_intervals)."""

    global_: GlobalConfig = Field(default_factory=GlobalConfig, alias="global")
    route: RouteConfig | None = None
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    inhibit_rules: list[InhibitRule] = Field(default_factory=list)
    time_intervals: list[TimeInterval] = Field(default_factory=list)
    mute_time_intervals: list[TimeInterval] = Field(default_factory=list)
    templates: list[str] = Field(default_factory=list)
    external_url: str = ""
    """Where people reach this watchkeeper (``externalURL`` in webhook payloads)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="after")
    def _consistent(self) -> AlertingConfig:
        if self.templates:
            raise ValueError("templates: Go template files are not supported; set title/text "
                             "(Slack), html/text (email) or description (PagerDuty) on the "
                             "integration instead")
        names = [r.name for r in self.receivers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"receivers: receiver name {dupes[0]!r} is not unique")
        intervals = [t.name for t in [*self.time_intervals, *self.mute_time_intervals]]
        dup_iv = sorted({n for n in intervals if intervals.count(n) > 1})
        if dup_iv:
            raise ValueError(f"time_intervals: time interval {dup_iv[0]!r} is not unique")
        if self.route is None:
            if self.receivers:
                raise ValueError("route: required when receivers are given (the root route "
                                 "names the default receiver)")
            return self
        root = self.route
        if not root.receiver:
            raise ValueError("route.receiver: the root route must specify a default receiver")
        if root.matchers or root.match or root.match_re:
            raise ValueError("route: the root route must not have any matchers")
        if root.mute_time_intervals:
            raise ValueError("route.mute_time_intervals: the root route must not have any mute "
                             "time intervals")
        if root.active_time_intervals:
            raise ValueError("route.active_time_intervals: the root route must not have any "
                             "active time intervals")
        g = self.global_
        for i, rcv in enumerate(self.receivers):
            for j, e in enumerate(rcv.email_configs):
                if not (e.smarthost or g.smtp_smarthost):
                    raise ValueError(f"receivers[{i}].email_configs[{j}].smarthost: no SMTP "
                                     "smarthost (set it here or global.smtp_smarthost)")
                if not (e.from_ or g.smtp_from):
                    raise ValueError(f"receivers[{i}].email_configs[{j}].from: no sender "
                                     "(set it here or global.smtp_from)")
            for j, sl in enumerate(rcv.slack_configs):
                if not (sl.api_url or sl.api_url_file or g.slack_api_url or g.slack_api_url_file):
                    raise ValueError(f"receivers[{i}].slack_configs[{j}].api_url: no Slack URL "
                                     "(set it here or global.slack_api_url)")
        known = set(names)
        known_iv = set(intervals)
        for path, r in root.walk():
            if r.receiver is not None and r.receiver not in known:
                listed = ", ".join(sorted(known)) or "none defined"
                raise ValueError(f"{path}.receiver: unknown receiver {r.receiver!r} "
                                 f"(receivers: {listed})")
            for key in ("mute_time_intervals", "active_time_intervals"):
                for i, name in enumerate(getattr(r, key)):
                    if name not in known_iv:
                        listed = ", ".join(sorted(known_iv)) or "none defined"
                        raise ValueError(f"{path}.{key}[{i}]: unknown time interval {name!r} "
                                         f"(time_intervals: {listed})")
        return self

    def receiver(self, name: str) -> ReceiverConfig:
        """The receiver called ``name`` (KeyError if there is none)."""
        for r in self.receivers:
            if r.name == name:
                return r
        raise KeyError(name)

    def all_time_intervals(self) -> list[TimeInterval]:
        """``time_intervals`` and the older ``mute_time_intervals`` together."""
        return [*self.time_intervals, *self.mute_time_intervals]
