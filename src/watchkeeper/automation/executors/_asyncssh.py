"""Importing asyncssh without its shared-library probes spawning a compiler.

While it is imported, asyncssh looks for two optional C libraries with
``ctypes.util.find_library``: liboqs (sntrup761 key exchange, ``asyncssh.crypto.pq``)
and nettle (umac MACs, ``asyncssh.crypto.umac``). On Linux each ``find_library`` call
runs ``/sbin/ldconfig -p`` and, when the library is not in its cache, ``gcc -Wl,-t``
and ``ld -t`` as subprocesses: on the usual machine without liboqs, ldconfig, gcc
(with its linker) and ld twice over, 20-40 ms of wall time and ~25 ms of CPU at every
cold start of ``watchkeeper exec`` -- more than the client's part of ten handshakes. asyncssh reads no setting to skip the probe, so
``import_asyncssh`` answers those calls, for the duration of the import only, from the
dynamic loader's cache itself (``/etc/ld.so.cache``, the file ``ldconfig -p`` prints)
and the directories in ``LD_LIBRARY_PATH``, and confirms each answer by loading it.

What differs from the stock probe: a library found only by the compiler's or
linker's own search path (installed without running ldconfig and not on
``LD_LIBRARY_PATH``) is not found, so asyncssh does without it, as on a machine
without it. Neither library is needed for the algorithms the SSH executor prefers
(curve25519 key exchange, AES-GCM or chacha20-poly1305).
"""

from __future__ import annotations

import os
import re
import sys
import threading

__all__ = ["import_asyncssh", "find_library_cached"]

LD_SO_CACHE = "/etc/ld.so.cache"

_lock = threading.Lock()


def find_library_cached(name: str, cache: str = LD_SO_CACHE,
                        library_path: str | None = None) -> str | None:
    """Where ``ctypes.util.find_library(name)`` would find ``lib<name>``, without a subprocess.

    The file name or soname (``libnettle.so.8``) from ``LD_LIBRARY_PATH`` (or
    ``library_path``) or the loader's cache ``cache``, that ``ctypes.CDLL`` can load;
    None when there is none. Never raises.
    """
    import ctypes

    base = name if name.startswith("lib") else f"lib{name}"
    candidates: list[str] = []
    dirs = os.environ.get("LD_LIBRARY_PATH", "") if library_path is None else library_path
    for d in filter(None, dirs.split(":")):
        try:
            files = sorted(os.listdir(d))
        except OSError:
            continue
        candidates += [os.path.join(d, f) for f in files if f.startswith(base + ".so")]
    try:
        with open(cache, "rb") as f:
            data = f.read()
    except OSError:
        data = b""
    # the cache's string table holds each soname (the key ldconfig -p lists) and its path
    pattern = rb"(?:^|[\x00/])(" + re.escape(base.encode()) + rb"\.so[^\x00/]*)\x00"
    sonames = dict.fromkeys(m.group(1).decode("utf-8", "replace")
                            for m in re.finditer(pattern, data))
    # as ldconfig -p lists them: a versioned soname (libnettle.so.8) before the bare
    # development link (libnettle.so), which only some machines have
    candidates += sorted(sonames, key=lambda s: s.endswith(".so"))
    for candidate in candidates:
        try:
            ctypes.CDLL(candidate)  # another architecture's copy, a broken link: skip it
        except OSError:
            continue
        return candidate
    return None


def import_asyncssh() -> None:
    """Import asyncssh (once per process) with ``find_library_cached`` standing in for
    ``ctypes.util.find_library`` during the import; a no-op once asyncssh is imported.
    Raises ImportError as ``import asyncssh`` does. Elsewhere than Linux (where
    ``find_library`` asks the system's loader and runs no compiler) a plain import."""
    if "asyncssh" in sys.modules:
        return
    if not sys.platform.startswith("linux"):
        import asyncssh

        return
    import ctypes.util

    with _lock:
        if "asyncssh" in sys.modules:
            return
        stock = ctypes.util.find_library
        ctypes.util.find_library = find_library_cached
        try:
            import asyncssh  # noqa: F401
        finally:
            ctypes.util.find_library = stock
