"""The automation sections of ``watchkeeper.yaml``: ``inventory``, ``hosts``, ``ssh``,
``runbooks`` and ``triggers`` (top-level keys, as ARCHITECTURE.md lists them).

::

    inventory: [inventory/hosts.ini]      # Ansible INI/YAML or watchkeeper YAML files
    hosts:                                # hosts written straight into the config
      web1: {address: 127.0.0.5, user: deploy, groups: [web]}
    ssh: {known_hosts: ~/.ssh/known_hosts, forks: 50, connect_timeout: 10s}
    runbooks: runbooks/                   # a directory of runbook YAML files
    triggers:
      - name: nightly-logrotate
        runbook: rotate-logs
        schedule: "0 3 * * *"
        timezone: Europe/Berlin
      - name: disk-full
        runbook: cleanup-disk
        alert: {matchers: ['alertname="DiskFull"']}
        params: {path: "{{ labels.mountpoint }}"}
        limit: "{{ labels.instance }}"
        cooldown: 30m
        rate_limit: {runs: 5, per: 1h}
        verify: {delay: 10s, retries: 3}

Only pydantic at import time: the CLI imports this through the config models.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import Field, field_validator, model_validator

from watchkeeper.config.types import Duration, StrictModel, duration_at_least

__all__ = ["AlertMatchConfig", "RateLimitConfig", "SSHConfig", "TriggerConfig", "VerifyConfig",
           "validate_triggers"]

_NAME = r"^[A-Za-z0-9_.-]+$"


class SSHConfig(StrictModel):
    """``ssh:``: how the SSH executor connects.

    ``known_hosts`` is checked on every connection (default ``~/.ssh/known_hosts``);
    ``insecure: true`` turns host key checking off and is logged on every start.
    """

    known_hosts: str | None = None
    insecure: bool = False
    client_keys: list[str] = Field(default_factory=list)
    connect_timeout: duration_at_least(0.1) = 10.0  # type: ignore[valid-type]
    forks: int = Field(50, ge=1, le=10000)
    output_cap: int = Field(1024 * 1024, ge=1024, le=256 * 1024 * 1024)


class AlertMatchConfig(StrictModel):
    """``alert:`` of a trigger: which firing alerts start it (Alertmanager matchers, all must match)."""

    matchers: list[str] = Field(min_length=1)

    @field_validator("matchers")
    @classmethod
    def _parse(cls, value: list[str]) -> list[str]:
        from watchkeeper.alerting.matchers import parse_matchers
        from watchkeeper.errors import InputError

        for text in value:
            try:
                parse_matchers(text)
            except InputError as exc:
                raise ValueError(exc.message) from None
        return value


class RateLimitConfig(StrictModel):
    """At most ``runs`` runs of one trigger within any ``per`` window."""

    runs: int = Field(ge=1, le=100000)
    per: duration_at_least(1.0)  # type: ignore[valid-type]


class VerifyConfig(StrictModel):
    """After an alert trigger's run: evaluate again whether the problem is gone.

    Without ``check`` the alert's own condition is evaluated (a check alert runs its
    check now; a rule alert evaluates its rule's expression); with ``check`` that
    named check must pass. ``delay`` waits before each attempt, ``retries`` more
    attempts follow a failing one.
    """

    check: str | None = None
    delay: Duration = 0.0
    retries: int = Field(0, ge=0, le=100)
    escalate: bool = True


class TriggerConfig(StrictModel):
    """One entry of ``triggers:``: a schedule (``schedule``) or an alert trigger (``alert``).

    ``params`` are Jinja2 templates; an alert trigger renders them with ``labels``,
    ``annotations`` and ``alert`` (``alert.labels``, ``alert.fingerprint``...).
    ``limit`` narrows the runbook's targets with a host pattern (templated too).
    """

    name: str = Field(min_length=1, max_length=100, pattern=_NAME)
    runbook: str = Field(min_length=1)
    enabled: bool = True
    params: dict[str, Any] = Field(default_factory=dict)
    limit: str | None = None
    # schedules
    schedule: str | None = None
    timezone: str = "UTC"
    # alert triggers
    alert: AlertMatchConfig | None = None
    cooldown: Duration = 600.0
    rate_limit: RateLimitConfig | None = None
    verify: VerifyConfig = VerifyConfig()

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is None:
            return value
        from croniter import croniter  # type: ignore[import-untyped]

        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression (five fields: minute hour "
                             "day-of-month month day-of-week, e.g. '0 3 * * *')")
        return value

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone (an IANA name such as UTC or "
                             "Europe/Berlin)") from None
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> TriggerConfig:
        if (self.schedule is None) == (self.alert is None):
            raise ValueError("a trigger has exactly one of 'schedule' (a cron expression) or "
                             "'alert' (matchers)")
        return self

    @property
    def kind(self) -> str:
        return "schedule" if self.schedule is not None else "alert"


def validate_triggers(triggers: list[TriggerConfig], checks: set[str]) -> None:
    """Trigger names are unique (they name rules, events and runs) and ``verify.check``
    names a configured check. Raises ValueError naming the place."""
    import difflib

    seen: dict[str, int] = {}
    for i, t in enumerate(triggers):
        if t.name in seen:
            raise ValueError(f"triggers[{i}].name: duplicate trigger name {t.name!r} "
                             f"(also triggers[{seen[t.name]}])")
        seen[t.name] = i
        if t.verify.check is not None and t.verify.check not in checks:
            close = difflib.get_close_matches(t.verify.check, sorted(checks), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"triggers[{i}].verify.check: no check named {t.verify.check!r}"
                             f"{hint} (name one from checks:)")


def check_hosts_section(section: dict[str, Any]) -> None:
    """Raise ValueError naming the place (``web1.port: ...``, relative to ``hosts:``) when the
    config's ``hosts:`` is not a valid watchkeeper inventory."""
    from watchkeeper.automation.inventory import Inventory
    from watchkeeper.errors import ConfigError

    try:
        Inventory.from_config(section)
    except ConfigError as exc:
        issue = exc.issues[0]
        path = issue.path
        whole = set(section) <= {"hosts", "groups"}
        if not whole and path.startswith("hosts."):
            path = path[len("hosts."):]
        raise ValueError(f"{path}: {issue.message}" if path else issue.message) from None


_TEMPLATE = re.compile(r"{{|{%")


def is_template(text: str) -> bool:
    return bool(_TEMPLATE.search(text))
