"""The host collector: CPU, memory, load, filesystems, disks, network, processes.

Metric names and labels are node_exporter's wherever it has an equivalent, so
dashboards and alert rules written for node_exporter work unchanged:

* ``node_cpu_seconds_total{cpu,mode}`` (user nice system idle iowait irq softirq steal),
  ``node_cpu_guest_seconds_total{cpu,mode}``
* ``node_load1``, ``node_load5``, ``node_load15``
* ``node_memory_<Field>_bytes`` for every /proc/meminfo line (``node_memory_<Field>``
  for unitless lines such as ``HugePages_Total``)
* ``node_filesystem_{size,free,avail}_bytes``, ``node_filesystem_files``,
  ``node_filesystem_files_free``, ``node_filesystem_readonly``,
  ``node_filesystem_device_error`` ``{device,fstype,mountpoint}``
* ``node_disk_*`` ``{device}`` (reads/writes completed and merged, bytes, time, io_now,
  io_time, weighted io_time, discards, flushes)
* ``node_network_{receive,transmit}_*_total{device}`` (``lo`` excluded, as node_exporter's
  ``netdev`` collector does by default) and ``node_network_up{device}`` (all interfaces)
* ``node_boot_time_seconds``, ``node_time_seconds``, ``node_procs_running``,
  ``node_procs_blocked``, ``node_forks_total``, ``node_context_switches_total``,
  ``node_intr_total``, ``node_uname_info{sysname,nodename,release,version,machine,domainname}``
* ``node_vmstat_<field>`` for fields matching ``vmstat_fields`` (node_exporter's default:
  oom_kill, pgpg*, pswp*, pg*fault*)
* ``node_processes_state{state}``, ``node_processes_threads``, ``node_processes_pids``
  (as node_exporter's processes collector)

and two watchkeeper series, for the ``top_n`` busiest processes:

* ``watchkeeper_process_cpu_percent{pid,name,rank}``: CPU use (100 = one full core) of
  the top N by CPU, averaged since the previous collection (since the process started,
  on the first collection); ``rank`` is "1" for the busiest.
* ``watchkeeper_process_memory_rss_bytes{pid,name,rank}``: resident memory of the top N
  by RSS; ``rank`` "1" is the largest.

Everything is read straight from /proc (cheaper than psutil's per-call objects);
static facts (mount list, uname) are cached for ``static_ttl`` seconds. Filesystems
are probed with statvfs under a per-mount timeout (see ``_mountprobe``).
"""

from __future__ import annotations

import asyncio
import heapq
import os
import re
import time
from collections.abc import Callable
from typing import Any

from watchkeeper.monitor.collectors import _procfs as procfs
from watchkeeper.monitor.collectors._mountprobe import HUNG, MountProber
from watchkeeper.monitor.model import Sample

__all__ = [
    "DEFAULT_DISK_EXCLUDE",
    "DEFAULT_FS_TYPES_EXCLUDE",
    "DEFAULT_MOUNT_POINTS_EXCLUDE",
    "DEFAULT_NETDEV_EXCLUDE",
    "DEFAULT_VMSTAT_FIELDS",
    "HostCollector",
]

# node_exporter's defaults (filesystem_linux.go, diskstats_linux.go, vmstat_linux.go)
DEFAULT_MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
DEFAULT_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
    r"|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs"
    r"|squashfs|sysfs|tracefs)$"
)
DEFAULT_DISK_EXCLUDE = r"^(ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
DEFAULT_VMSTAT_FIELDS = r"^(oom_kill|pgpg|pswp|pg.*fault).*"
DEFAULT_NETDEV_EXCLUDE = r"^lo$"

# /proc/diskstats columns after the device name -> (metric, scale); sectors are 512 bytes
_DISK_FIELDS: tuple[tuple[str, float] | None, ...] = (
    ("node_disk_reads_completed_total", 1.0),
    ("node_disk_reads_merged_total", 1.0),
    ("node_disk_read_bytes_total", 512.0),
    ("node_disk_read_time_seconds_total", 0.001),
    ("node_disk_writes_completed_total", 1.0),
    ("node_disk_writes_merged_total", 1.0),
    ("node_disk_written_bytes_total", 512.0),
    ("node_disk_write_time_seconds_total", 0.001),
    ("node_disk_io_now", 1.0),
    ("node_disk_io_time_seconds_total", 0.001),
    ("node_disk_io_time_weighted_seconds_total", 0.001),
    ("node_disk_discards_completed_total", 1.0),
    ("node_disk_discards_merged_total", 1.0),
    ("node_disk_discarded_sectors_total", 1.0),
    ("node_disk_discard_time_seconds_total", 0.001),
    ("node_disk_flush_requests_total", 1.0),
    ("node_disk_flush_requests_time_seconds_total", 0.001),
)
_NET_NAMES = tuple(f"node_network_{f}_total" for f in procfs.NETDEV_FIELDS)
_UNAME_KEYS = (("sysname", "ostype"), ("nodename", "hostname"), ("release", "osrelease"),
               ("version", "version"), ("domainname", "domainname"))

StatvfsFunc = Callable[[str], Any]


class HostCollector:
    """Collects this host's metrics from ``proc_root``/``sys_root``; filesystems are
    looked up under ``rootfs`` (as node_exporter's ``--path.rootfs``).

    ``statvfs`` and ``clock`` are injectable so tests are exact; ``top_n=0`` turns the
    per-process scan off. Exclusion patterns are regular expressions, matched as
    node_exporter matches them. Unreadable sources are skipped, never fatal.
    """

    name = "host"

    def __init__(self, proc_root: str = "/proc", sys_root: str = "/sys", rootfs: str = "/",
                 mount_timeout: float = 2.0, top_n: int = 5, *,
                 mount_points_exclude: str = DEFAULT_MOUNT_POINTS_EXCLUDE,
                 fs_types_exclude: str = DEFAULT_FS_TYPES_EXCLUDE,
                 disk_exclude: str = DEFAULT_DISK_EXCLUDE,
                 vmstat_fields: str = DEFAULT_VMSTAT_FIELDS,
                 netdev_exclude: str = DEFAULT_NETDEV_EXCLUDE,
                 statvfs: StatvfsFunc = os.statvfs,
                 clock: Callable[[], float] = time.time,
                 static_ttl: float = 30.0) -> None:
        if top_n < 0:
            raise ValueError("top_n must be 0 or more")
        self.proc_root = proc_root.rstrip("/") or "/"
        self.sys_root = sys_root.rstrip("/") or "/"
        self.rootfs = rootfs
        self.top_n = top_n
        self.clock = clock
        self.static_ttl = static_ttl
        self._mount_points_exclude = re.compile(mount_points_exclude)
        self._fs_types_exclude = re.compile(fs_types_exclude)
        self._disk_exclude = re.compile(disk_exclude) if disk_exclude else None
        self._vmstat_fields = re.compile(vmstat_fields) if vmstat_fields else None
        self._netdev_exclude = re.compile(netdev_exclude) if netdev_exclude else None
        self.prober = MountProber(statvfs, mount_timeout)
        self._clk_tck = os.sysconf("SC_CLK_TCK")
        self._page_size = os.sysconf("SC_PAGE_SIZE")
        self._mounts: list[procfs.Mount] = []
        self._mounts_at = -1e18
        self._uname: dict[str, str] | None = None
        self._uname_at = -1e18
        # pid -> (start ticks, cpu ticks, wall time) at the previous collection
        self._prev_cpu: dict[int, tuple[int, int, float]] = {}

    def _p(self, rel: str) -> str:
        return f"{self.proc_root}/{rel}"

    async def collect(self) -> list[Sample]:
        """One round of samples; the blocking reads run in a worker thread."""
        return await asyncio.to_thread(self.collect_sync)

    def close(self) -> None:
        """Stop the filesystem probe thread."""
        self.prober.close()

    def collect_sync(self) -> list[Sample]:
        """Like :meth:`collect`, in the calling thread (blocks up to ``mount_timeout``
        per newly hung mount)."""
        out: list[Sample] = []
        now = self.clock()
        btime = self._stat(out)
        self._loadavg(out)
        self._meminfo(out)
        self._vmstat(out)
        self._filesystems(out, now)
        self._diskstats(out)
        self._netdev(out)
        self._uname_info(out, now)
        if btime is not None:
            out.append(Sample("node_boot_time_seconds", {}, btime))
        out.append(Sample("node_time_seconds", {}, now))
        self._processes(out, now, btime)
        return out

    # -- /proc/stat, loadavg, meminfo, vmstat ---------------------------------
    def _read(self, rel: str) -> str | None:
        try:
            return procfs.read_text(self._p(rel))
        except OSError:
            return None

    def _stat(self, out: list[Sample]) -> float | None:
        text = self._read("stat")
        if text is None:
            return None
        st = procfs.parse_stat(text, self._clk_tck)
        modes = procfs.CPU_MODES
        for cpu, values in st.cpus.items():
            for mode, value in zip(modes, values, strict=True):
                out.append(Sample("node_cpu_seconds_total", {"cpu": cpu, "mode": mode}, value))
        for cpu, (g, gn) in st.guest.items():
            out.append(Sample("node_cpu_guest_seconds_total", {"cpu": cpu, "mode": "user"}, g))
            out.append(Sample("node_cpu_guest_seconds_total", {"cpu": cpu, "mode": "nice"}, gn))
        for name, count in (("node_intr_total", st.intr),
                            ("node_context_switches_total", st.ctxt),
                            ("node_forks_total", st.processes),
                            ("node_procs_running", st.procs_running),
                            ("node_procs_blocked", st.procs_blocked)):
            if count is not None:
                out.append(Sample(name, {}, count))
        return st.btime

    def _loadavg(self, out: list[Sample]) -> None:
        text = self._read("loadavg")
        if text is None:
            return
        try:
            one, five, fifteen = procfs.parse_loadavg(text)
        except ValueError:
            return
        out.append(Sample("node_load1", {}, one))
        out.append(Sample("node_load5", {}, five))
        out.append(Sample("node_load15", {}, fifteen))

    def _meminfo(self, out: list[Sample]) -> None:
        text = self._read("meminfo")
        if text is not None:
            out.extend(Sample(name, {}, value) for name, value in procfs.parse_meminfo(text))

    def _vmstat(self, out: list[Sample]) -> None:
        text = self._read("vmstat")
        if text is not None:
            out.extend(Sample(f"node_vmstat_{key}", {}, value)
                       for key, value in procfs.parse_vmstat(text, self._vmstat_fields))

    # -- filesystems ---------------------------------------------------------
    def mounts(self, now: float | None = None) -> list[procfs.Mount]:
        """The mounts that are reported, after exclusions (cached ``static_ttl`` seconds)."""
        now = self.clock() if now is None else now
        if now - self._mounts_at < self.static_ttl:
            return self._mounts
        text = self._read("1/mounts") or self._read("self/mounts") or ""
        seen: dict[tuple[str, str, str], procfs.Mount] = {}
        for m in procfs.parse_mounts(text):
            if self._mount_points_exclude.match(m.mountpoint):
                continue
            if self._fs_types_exclude.match(m.fstype):
                continue
            seen[(m.device, m.mountpoint, m.fstype)] = m  # a later mount on top wins
        self._mounts = list(seen.values())
        self._mounts_at = now
        return self._mounts

    def _fs_path(self, mountpoint: str) -> str:
        if self.rootfs in ("", "/"):
            return mountpoint
        return os.path.join(self.rootfs, mountpoint.lstrip("/"))

    def _filesystems(self, out: list[Sample], now: float) -> None:
        mounts = self.mounts(now)
        if not mounts:
            return
        paths = [self._fs_path(m.mountpoint) for m in mounts]
        results = self.prober.probe(list(dict.fromkeys(paths)))
        for m, path in zip(mounts, paths, strict=True):
            res = results.get(path, HUNG)
            labels = {"device": m.device, "fstype": m.fstype, "mountpoint": m.mountpoint}
            if res is HUNG or isinstance(res, BaseException):
                out.append(Sample("node_filesystem_device_error", labels, 1.0))
                continue
            frsize = res.f_frsize or res.f_bsize
            ro = 1.0 if "ro" in m.options.split(",") else 0.0
            out.append(Sample("node_filesystem_size_bytes", labels, float(res.f_blocks * frsize)))
            out.append(Sample("node_filesystem_free_bytes", dict(labels),
                              float(res.f_bfree * frsize)))
            out.append(Sample("node_filesystem_avail_bytes", dict(labels),
                              float(res.f_bavail * frsize)))
            out.append(Sample("node_filesystem_files", dict(labels), float(res.f_files)))
            out.append(Sample("node_filesystem_files_free", dict(labels), float(res.f_ffree)))
            out.append(Sample("node_filesystem_readonly", dict(labels), ro))
            out.append(Sample("node_filesystem_device_error", dict(labels), 0.0))

    # -- disks, network --------------------------------------------------------
    def _diskstats(self, out: list[Sample]) -> None:
        text = self._read("diskstats")
        if text is None:
            return
        fields = _DISK_FIELDS
        for disk in procfs.parse_diskstats(text, self._disk_exclude):
            dev = disk.device
            for spec, value in zip(fields, disk.values, strict=False):
                if spec is not None:
                    out.append(Sample(spec[0], {"device": dev}, value * spec[1]))

    def _netdev(self, out: list[Sample]) -> None:
        text = self._read("net/dev")
        if text is None:
            return
        names = _NET_NAMES
        exclude = self._netdev_exclude
        for dev, values in procfs.parse_netdev(text):
            if exclude is None or not exclude.match(dev):
                for name, value in zip(names, values, strict=True):
                    out.append(Sample(name, {"device": dev}, value))
            try:
                state = procfs.read_bytes(f"{self.sys_root}/class/net/{dev}/operstate")
            except OSError:
                continue
            up = 1.0 if state.strip() == b"up" else 0.0
            out.append(Sample("node_network_up", {"device": dev}, up))

    # -- uname ---------------------------------------------------------------------
    def _uname_info(self, out: list[Sample], now: float) -> None:
        if self._uname is None or now - self._uname_at >= self.static_ttl:
            u = os.uname()
            fallback = {"sysname": u.sysname, "nodename": u.nodename, "release": u.release,
                        "version": u.version, "domainname": "(none)"}
            info: dict[str, str] = {}
            for label, file in _UNAME_KEYS:
                text = self._read(f"sys/kernel/{file}")
                info[label] = text.rstrip("\n") if text is not None else fallback[label]
            info["machine"] = u.machine
            self._uname = dict(sorted(info.items()))
            self._uname_at = now
        out.append(Sample("node_uname_info", dict(self._uname), 1.0))

    # -- processes -------------------------------------------------------------------
    def _processes(self, out: list[Sample], now: float, btime: float | None) -> None:
        try:
            names = os.listdir(self.proc_root)
        except OSError:
            return
        root = self.proc_root
        parse = procfs.parse_pid_stat
        read = procfs.read_bytes
        stats: list[procfs.PidStat] = []
        for entry in names:
            if not entry.isdigit():
                continue
            pid = int(entry)
            try:
                stats.append(parse(pid, read(f"{root}/{entry}/stat")))
            except (OSError, ValueError, IndexError):
                continue  # gone meanwhile, or not readable
        states: dict[str, int] = {}
        threads = 0
        for s in stats:
            states[s.state] = states.get(s.state, 0) + 1
            threads += s.threads
        for state in sorted(states):
            out.append(Sample("node_processes_state", {"state": state}, float(states[state])))
        out.append(Sample("node_processes_threads", {}, float(threads)))
        out.append(Sample("node_processes_pids", {}, float(len(stats))))
        if self.top_n:
            self._top(out, stats, now, btime)

    def _top(self, out: list[Sample], stats: list[procfs.PidStat], now: float,
             btime: float | None) -> None:
        tck = self._clk_tck
        prev = self._prev_cpu
        current: dict[int, tuple[int, int, float]] = {}
        percents: list[tuple[float, procfs.PidStat]] = []
        for s in stats:
            current[s.pid] = (s.start_ticks, s.cpu_ticks, now)
            before = prev.get(s.pid)
            if before is not None and before[0] == s.start_ticks and now > before[2]:
                pct = (s.cpu_ticks - before[1]) / tck / (now - before[2]) * 100.0
            elif btime is not None:
                age = now - (btime + s.start_ticks / tck)
                pct = s.cpu_ticks / tck / age * 100.0 if age > 0 else 0.0
            else:
                pct = 0.0
            percents.append((pct, s))
        self._prev_cpu = current
        n = self.top_n
        for rank, (pct, s) in enumerate(
                heapq.nlargest(n, percents, key=lambda x: (x[0], -x[1].pid)), start=1):
            out.append(Sample("watchkeeper_process_cpu_percent",
                              {"pid": str(s.pid), "name": s.comm, "rank": str(rank)},
                              max(pct, 0.0)))
        page = self._page_size
        for rank, s in enumerate(heapq.nlargest(n, stats, key=lambda x: (x.rss_pages, -x.pid)),
                                 start=1):
            out.append(Sample("watchkeeper_process_memory_rss_bytes",
                              {"pid": str(s.pid), "name": s.comm, "rank": str(rank)},
                              float(s.rss_pages * page)))
