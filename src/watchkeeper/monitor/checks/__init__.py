"""Check types. Each is one module holding its config model and its ``Check``.

A new check type is one new module and one line in ``_MODULES``. Modules keep
their module-level imports light (no httpx, dnspython at import time) so that
the command line starts fast.
"""

from __future__ import annotations

import importlib
from functools import cache

from watchkeeper.monitor.checks.base import CheckConfig

__all__ = ["CheckConfig", "check_types"]

# type name -> module under watchkeeper.monitor.checks holding ``Config``
_MODULES: dict[str, str] = {
    "http": "http",
    "tcp": "tcp",
    "dns": "dns",
    "tls": "tls",
    "ping": "ping",
    "process": "process",
    "systemd": "systemd",
    "file": "file",
    "command": "command",
    "scrape": "scrape",
}


@cache
def check_types() -> dict[str, type[CheckConfig]]:
    """Map each check type name to its config model (the models build the checks)."""
    out: dict[str, type[CheckConfig]] = {}
    for type_name, module in _MODULES.items():
        try:
            mod = importlib.import_module(f"watchkeeper.monitor.checks.{module}")
        except ModuleNotFoundError as exc:  # a type still being written
            if exc.name == f"watchkeeper.monitor.checks.{module}":
                continue
            raise
        out[type_name] = mod.Config
    return out
