"""``file``: a file exists (or not), is fresh enough and within a size range."""

from __future__ import annotations

import asyncio
import os
import time
from typing import Literal

from pydantic import Field

from watchkeeper.config.types import Duration, Size
from watchkeeper.monitor.checks.base import CheckConfig
from watchkeeper.monitor.model import CheckContext, CheckResult, Sample, State

__all__ = ["Config", "FileCheck"]


class Config(CheckConfig):
    type: Literal["file"]
    path: str = Field(min_length=1)
    exists: bool = True
    max_age: Duration | None = None
    min_size: Size | None = None
    max_size: Size | None = None

    def build(self) -> FileCheck:
        return FileCheck(self)


class FileCheck:
    def __init__(self, config: Config) -> None:
        self.config = config

    async def run(self, ctx: CheckContext) -> CheckResult:
        c = self.config
        try:
            st = await asyncio.to_thread(os.stat, c.path)
        except FileNotFoundError:
            if c.exists:
                return CheckResult(State.CRITICAL, f"{c.path} does not exist")
            return CheckResult(State.OK, f"{c.path} does not exist, as expected")
        except OSError as exc:
            return CheckResult(State.UNKNOWN, f"cannot stat {c.path}: {exc.strerror}")
        if not c.exists:
            return CheckResult(State.CRITICAL, f"{c.path} exists but should not")
        age = max(0.0, time.time() - st.st_mtime)
        labels = {"path": c.path}
        metrics = [
            Sample("watchkeeper_file_size_bytes", labels, float(st.st_size)),
            Sample("watchkeeper_file_age_seconds", labels, age),
        ]
        problems = []
        if c.max_age is not None and age > c.max_age:
            problems.append(f"last modified {age:.0f}s ago (max {c.max_age:g}s)")
        if c.min_size is not None and st.st_size < c.min_size:
            problems.append(f"size {st.st_size} B below {c.min_size} B")
        if c.max_size is not None and st.st_size > c.max_size:
            problems.append(f"size {st.st_size} B above {c.max_size} B")
        if problems:
            return CheckResult(State.CRITICAL, f"{c.path}: " + "; ".join(problems), metrics=metrics)
        return CheckResult(State.OK, f"{c.path}: {st.st_size} B, modified {age:.0f}s ago",
                           metrics=metrics)
