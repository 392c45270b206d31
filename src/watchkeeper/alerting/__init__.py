"""Alerting: rules, alert state, silences, inhibition, routing and receivers."""
