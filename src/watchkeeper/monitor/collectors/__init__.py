"""Collectors: producers of samples on every tick (the host collector)."""

from watchkeeper.monitor.collectors.host import HostCollector

__all__ = ["HostCollector"]
