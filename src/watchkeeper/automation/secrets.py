"""An encrypted store for secrets automation needs (become passwords, tokens).

Values are encrypted with Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``)
under a key kept in the data dir (``secrets.key``, mode 0600); the values live in
``secrets.json`` (mode 0600) next to it, one token per name. A value is only ever
decrypted to be used: it is never logged, never part of an error message, and commands
carry it as a :class:`~watchkeeper.automation.command.Masked` part.

    store = SecretStore(data_dir)
    store.set("web-sudo", "s3cret")
    store.get("web-sudo")          # "s3cret"
    store.names()                  # ["web-sudo"]
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any, Protocol

from watchkeeper.automation.command import Masked
from watchkeeper.errors import InputError, NotFoundError, StorageError

__all__ = ["SecretSource", "SecretStore"]

_NAME = re.compile(r"^[A-Za-z0-9_.@/-]{1,128}$")


class SecretSource(Protocol):
    """What executors need: a secret's value by name (raises NotFoundError if missing)."""

    def get(self, name: str) -> str: ...


class SecretStore:
    """Secrets in ``data_dir``: ``secrets.key`` (Fernet key) and ``secrets.json``.

    Raises NotFoundError for an unknown name, InputError for an invalid name,
    StorageError when the files cannot be read or written or the key does not
    decrypt the values (a key from another data dir).
    """

    def __init__(self, data_dir: str | Path) -> None:
        self.dir = Path(data_dir)
        self.key_path = self.dir / "secrets.key"
        self.path = self.dir / "secrets.json"

    def _fernet(self, create: bool) -> Any:
        from cryptography.fernet import Fernet

        try:
            key = self.key_path.read_bytes().strip()
        except FileNotFoundError:
            if not create:
                raise StorageError(f"no secret key at {self.key_path}",
                                   hint="add a secret first (SecretStore.set)") from None
            self.dir.mkdir(parents=True, exist_ok=True)
            key = Fernet.generate_key()
            try:
                fd = os.open(self.key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first: use theirs
                return self._fernet(create=False)
            except OSError as exc:
                raise StorageError(f"cannot create {self.key_path}: {exc.strerror}") from None
            with os.fdopen(fd, "wb") as f:
                f.write(key + b"\n")
        except OSError as exc:
            raise StorageError(f"cannot read {self.key_path}: {exc.strerror}") from None
        try:
            return Fernet(key)
        except ValueError:
            raise StorageError(f"{self.key_path} does not hold a valid key") from None

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise StorageError(f"cannot read {self.path}: {exc}") from None
        if not isinstance(data, dict):
            raise StorageError(f"{self.path} is not a secret store")
        return {str(k): str(v) for k, v in data.items()}

    def _save(self, data: dict[str, str]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                json.dump(data, f, indent=1, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError as exc:
            raise StorageError(f"cannot write {self.path}: {exc.strerror}") from None

    def set(self, name: str, value: str) -> None:
        """Store (or replace) ``name``."""
        if not _NAME.match(name):
            raise InputError(f"invalid secret name {name!r}",
                             hint="use letters, digits and . _ - @ / (at most 128)")
        token = self._fernet(create=True).encrypt(value.encode()).decode()
        data = self._load()
        data[name] = token
        self._save(data)

    def get(self, name: str) -> str:
        """The value of ``name``; NotFoundError if there is none."""
        from cryptography.fernet import InvalidToken

        data = self._load()
        if name not in data:
            raise NotFoundError(f"secret {name!r} is not in the secret store ({self.path})",
                                hint=f"known: {', '.join(sorted(data)) or 'none'}")
        try:
            return str(self._fernet(create=False).decrypt(data[name].encode()).decode())
        except InvalidToken:
            raise StorageError(f"secret {name!r} cannot be decrypted with {self.key_path}",
                               hint="the key file does not belong to this store") from None

    def masked(self, name: str) -> Masked:
        """The value as a Masked command part (``***`` in logs)."""
        return Masked(self.get(name))

    def delete(self, name: str) -> None:
        data = self._load()
        if name not in data:
            raise NotFoundError(f"secret {name!r} is not in the secret store ({self.path})")
        del data[name]
        self._save(data)

    def names(self) -> list[str]:
        return sorted(self._load())

    def __repr__(self) -> str:
        return f"SecretStore({str(self.dir)!r})"
