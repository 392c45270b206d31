"""Readers and parsers for the Linux /proc files the host collector uses.

Pure functions over text, so they are tested against stored copies of real files
(tests/fixtures/proc/). Field meanings follow proc(5) and
Documentation/admin-guide/iostats.rst; metric names follow node_exporter.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

__all__ = [
    "CPU_MODES",
    "DiskStat",
    "Mount",
    "PidStat",
    "parse_diskstats",
    "parse_loadavg",
    "parse_meminfo",
    "parse_mounts",
    "parse_netdev",
    "parse_pid_stat",
    "parse_stat",
    "parse_vmstat",
    "read_bytes",
    "read_text",
]

# /proc/stat cpu columns in order; guest and guest_nice are already counted in user/nice.
CPU_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def read_bytes(path: str) -> bytes:
    """The whole content of a (proc) file with the fewest syscalls. Raises OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        data = os.read(fd, 65536)
        if len(data) < 65536:
            return data
        parts = [data]
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def read_text(path: str) -> str:
    """A proc file as text (undecodable bytes replaced). Raises OSError."""
    return read_bytes(path).decode("utf-8", "replace")


class StatFile(NamedTuple):
    """What /proc/stat says. ``cpus`` maps the cpu number (as text) to its 8 mode seconds;
    ``guest`` maps it to (guest, guest_nice) seconds."""

    cpus: dict[str, list[float]]
    guest: dict[str, tuple[float, float]]
    intr: float | None
    ctxt: float | None
    btime: float | None
    processes: float | None
    procs_running: float | None
    procs_blocked: float | None


def parse_stat(text: str, clk_tck: int) -> StatFile:
    """Parse /proc/stat; CPU ticks become seconds (divided by ``clk_tck``)."""
    cpus: dict[str, list[float]] = {}
    guest: dict[str, tuple[float, float]] = {}
    other: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("cpu"):
            fields = line.split()
            if fields[0] == "cpu":
                continue  # the total; node_exporter reports per cpu only
            cpu = fields[0][3:]
            ticks = [int(x) / clk_tck for x in fields[1:11]]
            ticks.extend([0.0] * (10 - len(ticks)))
            cpus[cpu] = ticks[:8]
            guest[cpu] = (ticks[8], ticks[9])
        else:
            key, _, rest = line.partition(" ")
            if key in ("intr", "ctxt", "btime", "processes", "procs_running", "procs_blocked"):
                first = rest.split(None, 1)
                if first:
                    other[key] = float(first[0])
    return StatFile(cpus, guest, other.get("intr"), other.get("ctxt"), other.get("btime"),
                    other.get("processes"), other.get("procs_running"),
                    other.get("procs_blocked"))


def parse_loadavg(text: str) -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages from /proc/loadavg. Raises ValueError."""
    a, b, c = text.split()[:3]
    return float(a), float(b), float(c)


def parse_meminfo(text: str) -> list[tuple[str, float]]:
    """(metric name, value) per /proc/meminfo line, named as node_exporter names them:
    ``Active(anon): 4 kB`` -> ``node_memory_Active_anon_bytes`` 4096; lines without
    a unit (``HugePages_Total``) keep their number and get no ``_bytes`` suffix."""
    out: list[tuple[str, float]] = []
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        if not sep:
            continue
        parts = rest.split()
        if not parts:
            continue
        if "(" in key:
            key = key.replace("(", "_").replace(")", "")
        try:
            value = float(parts[0])
        except ValueError:
            continue
        if len(parts) > 1 and parts[1] == "kB":
            out.append((f"node_memory_{key}_bytes", value * 1024))
        else:
            out.append((f"node_memory_{key}", value))
    return out


NETDEV_FIELDS = (
    "receive_bytes", "receive_packets", "receive_errs", "receive_drop", "receive_fifo",
    "receive_frame", "receive_compressed", "receive_multicast",
    "transmit_bytes", "transmit_packets", "transmit_errs", "transmit_drop", "transmit_fifo",
    "transmit_colls", "transmit_carrier", "transmit_compressed",
)


def parse_netdev(text: str) -> list[tuple[str, list[float]]]:
    """(device, 16 counters in :data:`NETDEV_FIELDS` order) per /proc/net/dev interface."""
    out: list[tuple[str, list[float]]] = []
    for line in text.splitlines()[2:]:
        dev, sep, rest = line.partition(":")
        if not sep:
            continue
        values = [float(x) for x in rest.split()]
        if len(values) >= 16:
            out.append((dev.strip(), values[:16]))
    return out


class DiskStat(NamedTuple):
    device: str
    values: list[float]  # the counters after the device name, as integers


def parse_diskstats(text: str, exclude: re.Pattern[str] | None) -> list[DiskStat]:
    """One entry per /proc/diskstats device whose name ``exclude`` does not match."""
    out: list[DiskStat] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 14:
            continue
        dev = fields[2]
        if exclude is not None and exclude.match(dev):
            continue
        out.append(DiskStat(dev, [float(x) for x in fields[3:]]))
    return out


def parse_vmstat(text: str, include: re.Pattern[str] | None) -> list[tuple[str, float]]:
    """(field, value) per /proc/vmstat line whose name ``include`` matches (all if None)."""
    out: list[tuple[str, float]] = []
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if include is not None and not include.match(key):
            continue
        try:
            out.append((key, float(value)))
        except ValueError:
            continue
    return out


class Mount(NamedTuple):
    device: str
    mountpoint: str
    fstype: str
    options: str


_OCTAL = re.compile(r"\\([0-7]{3})")


def _unoctal(value: str) -> str:
    # the kernel writes space, tab, newline and backslash in mount fields as \040 etc.
    return _OCTAL.sub(lambda m: chr(int(m.group(1), 8)), value) if "\\" in value else value


def parse_mounts(text: str) -> list[Mount]:
    """Entries of /proc/<pid>/mounts (fstab format), escapes decoded."""
    out: list[Mount] = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 4:
            continue
        out.append(Mount(_unoctal(fields[0]), _unoctal(fields[1]), fields[2], fields[3]))
    return out


class PidStat(NamedTuple):
    pid: int
    comm: str
    state: str
    cpu_ticks: int  # utime + stime
    threads: int
    start_ticks: int  # since boot
    rss_pages: int


def parse_pid_stat(pid: int, data: bytes) -> PidStat:
    """Parse /proc/<pid>/stat. ``comm`` may hold spaces and parentheses, so the fields
    are counted from its last ``)``. Raises ValueError/IndexError on a malformed line."""
    close = data.rindex(b")")
    comm = data[data.index(b"(") + 1:close].decode("utf-8", "replace")
    f = data[close + 2:].split()
    # f[0] is field 3 (state); utime=14, stime=15, num_threads=20, starttime=22, rss=24
    return PidStat(pid, comm, f[0].decode(), int(f[11]) + int(f[12]), int(f[17]), int(f[19]),
                   int(f[21]))
