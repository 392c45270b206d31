"""Executors: where commands run (local subprocess, SSH)."""
