"""Automation: inventories, executors (local, SSH), runbooks, runs and triggers."""
