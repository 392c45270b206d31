"""Fixtures for automation tests: real sshd servers on loopback (see tests/automation/sshd.py)."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.automation.sshd import SSHDFactory, SSHDFleet

BECOME_USER = "wkbecome"
BECOME_PASSWORD = "wk-sudo-pw-7f3a"
SUDOERS_FILE = Path("/etc/sudoers.d/watchkeeper-test")


@pytest.fixture(scope="session")
def sshd_session() -> Iterator[SSHDFactory]:
    """The session's sshd factory; every server it started is stopped (by PID) at the end."""
    # Not under pytest's tmp dir (mode 0700): sshd reads AuthorizedKeysFile as the login
    # user, and the become tests log in as an unprivileged one.
    factory = SSHDFactory.create()
    try:
        yield factory
    finally:
        factory.close()


@pytest.fixture(scope="session")
def sshd_hosts(sshd_session: SSHDFactory) -> Callable[..., SSHDFleet]:
    """``sshd_hosts(n, **options) -> SSHDFleet``: start n real sshd (see SSHDFactory.start)."""
    return sshd_session.start


@pytest.fixture(scope="session")
def sudo_user() -> tuple[str, str]:
    """A local user with a sudo password: (name, password). Needs root (as CI runs)."""
    if os.geteuid() != 0:
        raise RuntimeError("the become tests create a sudo user and need root (CI runs as root)")
    if not os.path.exists("/usr/bin/sudo"):
        raise RuntimeError("sudo not found: install Debian sudo")
    if subprocess.run(["id", BECOME_USER], capture_output=True).returncode != 0:
        subprocess.run(["useradd", "-m", "-s", "/bin/sh", BECOME_USER], check=True)
    subprocess.run(["chpasswd"], input=f"{BECOME_USER}:{BECOME_PASSWORD}\n".encode(), check=True)
    SUDOERS_FILE.write_text(f"Defaults:{BECOME_USER} lecture=never\n{BECOME_USER} ALL=(ALL) ALL\n")
    SUDOERS_FILE.chmod(0o440)
    return BECOME_USER, BECOME_PASSWORD
