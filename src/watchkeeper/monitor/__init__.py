"""Monitoring: host collectors and service checks."""

from watchkeeper.monitor.model import Check, CheckContext, CheckResult, Collector, Sample, State

__all__ = ["Check", "CheckContext", "CheckResult", "Collector", "Sample", "State"]
