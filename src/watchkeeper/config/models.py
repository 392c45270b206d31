"""The shape of ``watchkeeper.yaml``: one pydantic model per section."""

from __future__ import annotations

import ipaddress
from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import Field, field_validator, model_validator

from watchkeeper.alerting.config import AlertingConfig
from watchkeeper.automation.config import SSHConfig, TriggerConfig, validate_triggers
from watchkeeper.config.types import Duration, StrictModel, duration_at_least
from watchkeeper.monitor.checks import CheckConfig, check_types
from watchkeeper.units import format_duration

__all__ = ["ServerConfig", "StorageConfig", "RetentionConfig", "CollectorsConfig",
           "HostCollectorConfig", "check_union", "config_model", "parse_listen"]


def parse_listen(value: str) -> tuple[str, int]:
    """Split ``HOST:PORT`` (``[::1]:8470`` for IPv6) and check both parts."""
    text = value.strip()
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'"{value}" is not HOST:PORT (e.g. 127.0.0.1:8470 or [::1]:8470)')
    if not host:
        raise ValueError(f'"{value}" has no host; use 127.0.0.1:PORT, or 0.0.0.0:PORT to listen on all')
    return host, int(port)


class ServerConfig(StrictModel):
    """``server:``: where the HTTP API listens and who may change things."""

    listen: str = "127.0.0.1:8470"
    token: str | None = Field(None, min_length=16, description="API token for mutating endpoints")
    max_concurrent_checks: int = Field(100, ge=1, le=10000)
    evaluation_interval: duration_at_least(1.0) = 60.0  # type: ignore[valid-type]
    # the longest a query may run (Prometheus's --query.timeout); a request's ``timeout``
    # may only shorten it
    query_timeout: duration_at_least(0.001) = 120.0  # type: ignore[valid-type]
    external_labels: dict[str, str] = Field(default_factory=dict)
    external_url: str | None = None

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        host, _ = parse_listen(value)
        if host not in ("localhost",):
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f'"{value}": the host must be an IP address or localhost') from None
        return value


class RetentionConfig(StrictModel):
    """How long each tier keeps data (0 keeps it forever)."""

    raw: Duration = 7 * 86400.0
    minute: Duration = 90 * 86400.0
    hour: Duration = 2 * 365 * 86400.0
    results: Duration = 30 * 86400.0
    """How long every check result is kept as history (states and summaries)."""

    @model_validator(mode="after")
    def _ordered(self) -> RetentionConfig:
        tiers = [("raw", self.raw), ("minute", self.minute), ("hour", self.hour)]  # results stand apart
        for (a, va), (b, vb) in zip(tiers, tiers[1:], strict=False):
            if va and vb and vb < va:
                raise ValueError(f"{b} ({format_duration(vb)}) must be at least {a} "
                                 f"({format_duration(va)}): coarser tiers keep data longer")
        return self


class StorageConfig(StrictModel):
    """``storage:``: the database (SQLite in the data dir unless ``url`` is set)."""

    url: str | None = None
    data_dir: str | None = None
    retention: RetentionConfig = RetentionConfig()
    head_window: duration_at_least(60.0) = 3600.0  # type: ignore[valid-type]
    compact_interval: duration_at_least(10.0) = 300.0  # type: ignore[valid-type]


class HostCollectorConfig(StrictModel):
    """``collectors.host``: node_exporter-compatible host metrics."""

    enabled: bool = True
    interval: duration_at_least(1.0) = 15.0  # type: ignore[valid-type]
    top_processes: int = Field(5, ge=0, le=100)
    mount_timeout: duration_at_least(0.1) = 2.0  # type: ignore[valid-type]
    fs_types_exclude: str | None = None
    mount_points_exclude: str | None = None


class CollectorsConfig(StrictModel):
    host: HostCollectorConfig = HostCollectorConfig()


def check_union() -> Any:
    """The discriminated union of every registered check type's config."""
    models = tuple(check_types().values())
    if len(models) == 1:
        return models[0]
    return Annotated[Union[models], Field(discriminator="type")]


def _make_config_model() -> type[StrictModel]:
    check_model = check_union()

    class Config(StrictModel):
        """The whole of ``watchkeeper.yaml`` after includes are merged."""

        include: list[str] = Field(default_factory=list)
        server: ServerConfig = ServerConfig()
        storage: StorageConfig = StorageConfig()
        collectors: CollectorsConfig = CollectorsConfig()
        rules: list[str] = Field(default_factory=list)
        alerting: AlertingConfig | None = None
        # automation: inventories, inline hosts, SSH settings, the runbook directory, triggers
        inventory: list[str] = Field(default_factory=list)
        hosts: dict[str, Any] = Field(default_factory=dict)
        ssh: SSHConfig = SSHConfig()
        runbooks: str | None = None
        triggers: list[TriggerConfig] = Field(default_factory=list)
        if TYPE_CHECKING:
            checks: list[CheckConfig]
        else:
            checks: list[check_model] = Field(default_factory=list)

        @model_validator(mode="after")
        def _unique_names(self) -> Config:
            seen: dict[str, int] = {}
            for i, check in enumerate(self.checks):
                if check.name in seen:
                    raise ValueError(f"checks[{i}].name: duplicate check name {check.name!r} "
                                     f"(also checks[{seen[check.name]}])")
                seen[check.name] = i
            validate_triggers(self.triggers, {c.name for c in self.checks})
            return self

        @field_validator("inventory", mode="before")
        @classmethod
        def _one_inventory(cls, value: Any) -> Any:
            return [value] if isinstance(value, str) else value

        @field_validator("hosts")
        @classmethod
        def _hosts(cls, value: dict[str, Any]) -> dict[str, Any]:
            """Read ``hosts:`` as an inventory now, so its errors carry file and line."""
            if value:
                from watchkeeper.automation.config import check_hosts_section

                check_hosts_section(value)
            return value

        def check(self, name: str) -> CheckConfig:
            for c in self.checks:
                if c.name == name:
                    return c
            raise KeyError(name)

    return Config


_CONFIG: type[StrictModel] | None = None


def config_model() -> Any:
    """The top-level Config model, built once the check types are known."""
    global _CONFIG
    if _CONFIG is None:
        _CONFIG = _make_config_model()
    return _CONFIG

