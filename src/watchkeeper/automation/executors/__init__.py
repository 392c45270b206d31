"""Executors: where commands run (local subprocess, SSH).

``SSHExecutor`` lives in ``executors.ssh`` (imported on use: it pulls in asyncssh).
"""

from watchkeeper.automation.executors.base import STATUSES, ExecResult, Executor, OutputCallback
from watchkeeper.automation.executors.local import LocalExecutor
from watchkeeper.automation.executors.router import Executors

__all__ = ["STATUSES", "ExecResult", "Executor", "Executors", "LocalExecutor", "OutputCallback"]
