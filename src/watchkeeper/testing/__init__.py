"""Fakes for watchkeeper's own tests and for users' tests of their rules and checks."""

from watchkeeper.testing.clock import FakeClock

__all__ = ["FakeClock"]
