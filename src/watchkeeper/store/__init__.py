"""The store: one SQL database holding series, samples, check results and the event log."""

from watchkeeper.store.engine import default_data_dir, migrate, open_engine

__all__ = ["default_data_dir", "migrate", "open_engine"]
