"""Configuration: ``watchkeeper.yaml``, its includes, and the models that validate them."""

from watchkeeper.config.loader import LoadedConfig, default_config, load_config
from watchkeeper.config.models import config_model

__all__ = ["LoadedConfig", "default_config", "load_config", "config_model"]
