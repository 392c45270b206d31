"""A host as automation sees it: where to connect, as whom, with which variables."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Host"]


@dataclass(frozen=True)
class Host:
    """One managed host.

    ``name`` is the inventory name; ``address`` what to connect to (defaults to
    the name). ``connection`` is "ssh" or "local" (``localhost`` is always
    local unless the inventory says otherwise). ``become`` runs commands
    through sudo as ``become_user``. ``jump`` names a host (``user@host:port``)
    to tunnel through. ``vars`` are the host's merged variables (group vars
    first, host vars last); ``groups`` every group it belongs to (``all``
    included); ``labels`` for label selectors.
    """

    name: str
    address: str | None = None
    port: int = 22
    user: str | None = None
    key_file: str | None = None
    password_secret: str | None = None
    connection: str = "ssh"
    become: bool = False
    become_user: str = "root"
    become_password_secret: str | None = None
    jump: str | None = None
    groups: frozenset[str] = frozenset({"all"})
    labels: dict[str, str] = field(default_factory=dict, hash=False, compare=False)
    vars: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def target(self) -> str:
        return self.address or self.name
