"""Importing asyncssh without its library probes spawning ldconfig/gcc/ld (executors/_asyncssh.py).

The import runs in a fresh interpreter each time (asyncssh is imported once per
process), with an audit hook that records every subprocess started.
"""

from __future__ import annotations

import ctypes.util
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from watchkeeper.automation.executors._asyncssh import find_library_cached

_CHILD = r"""
import json, sys
spawned = []
sys.addaudithook(lambda event, args: spawned.append(str(args[0])) if event == "subprocess.Popen" else None)
import ctypes.util
stock = ctypes.util.find_library
if sys.argv[1] == "watchkeeper":
    from watchkeeper.automation.executors._asyncssh import import_asyncssh
    import_asyncssh()
    import_asyncssh()  # the second call is a no-op
else:
    import asyncssh
import asyncssh.crypto as c
print(json.dumps({"spawned": spawned, "restored": ctypes.util.find_library is stock,
                  "umac": c.umac64 is not None, "sntrup": c.sntrup_available,
                  "mlkem": c.mlkem_available}))
"""


def _import_in_child(how: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-c", _CHILD, how], capture_output=True, text=True,
                         timeout=60, check=True)
    result: dict[str, object] = json.loads(out.stdout)
    return result


def test_import_spawns_nothing_and_finds_what_the_stock_probe_finds() -> None:
    stock = _import_in_child("stock")
    ours = _import_in_child("watchkeeper")
    assert stock["spawned"], "the stock import should run ldconfig (is this Linux?)"
    assert ours["spawned"] == []
    assert ours["restored"] is True
    # same optional algorithms as the stock probe finds on this machine
    assert {k: ours[k] for k in ("umac", "sntrup", "mlkem")} == \
        {k: stock[k] for k in ("umac", "sntrup", "mlkem")}


@pytest.mark.parametrize("name", ["c", "z", "crypto", "nettle"])
def test_find_library_cached_agrees_with_ctypes(name: str) -> None:
    expected = ctypes.util.find_library(name)
    assert expected is not None, f"lib{name} should be installed here"
    found = find_library_cached(name)
    assert found is not None
    # the same library; the stock probe may name the versioned soname or the dev link
    assert Path(found).name.split(".so")[0] == Path(expected).name.split(".so")[0]
    ctypes.CDLL(found)


def test_find_library_cached_without_a_match_or_a_cache(tmp_path: Path) -> None:
    assert find_library_cached("watchkeeper-no-such-library") is None
    assert find_library_cached("z", cache=str(tmp_path / "missing"), library_path="") is None


def test_find_library_cached_reads_library_path_and_skips_what_does_not_load(
        tmp_path: Path) -> None:
    real = ctypes.util.find_library("z")
    assert real is not None
    good, bad = tmp_path / "good", tmp_path / "bad"
    good.mkdir()
    bad.mkdir()
    (bad / "libwkprobe.so.1").write_text("not a shared object")
    shutil.copy(_path_of(real), good / "libwkprobe.so.1")
    empty_cache = str(tmp_path / "no-cache")
    assert find_library_cached("wkprobe", cache=empty_cache, library_path=str(bad)) is None
    assert find_library_cached("wkprobe", cache=empty_cache,
                               library_path=f"{bad}:{good}") == str(good / "libwkprobe.so.1")


def _path_of(soname: str) -> str:
    """The file the dynamic loader maps for ``soname`` (from /proc/self/maps once loaded)."""
    ctypes.CDLL(soname)
    for line in Path("/proc/self/maps").read_text().splitlines():
        path = line.split()[-1]
        if Path(path).name.startswith(soname.split(".so")[0] + ".so"):
            return path
    raise AssertionError(f"{soname} is not mapped")
