"""Configuration: ``watchkeeper.yaml``, its includes, and the models that validate them.

Names are imported lazily: check modules import ``config.types`` and the
config models import the check registry, so an eager import here would be circular.
"""

from __future__ import annotations

from typing import Any

__all__ = ["LoadedConfig", "default_config", "load_config", "config_model"]


def __getattr__(name: str) -> Any:
    if name in ("LoadedConfig", "default_config", "load_config"):
        from watchkeeper.config import loader

        return getattr(loader, name)
    if name == "config_model":
        from watchkeeper.config.models import config_model

        return config_model
    raise AttributeError(name)
