"""watchkeeper: monitoring, alerting, automation and security for a fleet of Linux hosts."""

__all__ = ["__version__"]

__version__ = "0.1.0"
