"""The host collector: exact values from a stored /proc tree, sanity against the real
/proc (and psutil, and node_exporter itself), and the hung-mount behaviour."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from watchkeeper.monitor.collectors._procfs import parse_mounts, parse_pid_stat
from watchkeeper.monitor.collectors.host import DEFAULT_MOUNT_POINTS_EXCLUDE, HostCollector
from watchkeeper.monitor.exposition import parse_text
from watchkeeper.monitor.model import Collector, Sample

PROC = Path(__file__).parent.parent / "fixtures" / "proc"
BTIME = 1795862483.0  # from the fixture's stat
PAGE = os.sysconf("SC_PAGE_SIZE")
CLK = os.sysconf("SC_CLK_TCK")
FS = ("/dev/vda", "ext4", "/")
NFS = ("nfs.example:/export", "nfs4", "/mnt/nfs share")


def _fake_statvfs(path: str) -> os.statvfs_result:
    # bsize, frsize, blocks, bfree, bavail, files, ffree, favail, flag, namemax
    return os.statvfs_result((4096, 4096, 1000, 600, 500, 100, 40, 40, 0, 255))


def _index(samples: list[Sample]) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for s in samples:
        key = (s.name, tuple(sorted(s.labels.items())))
        assert key not in out, f"duplicate series {key}"
        out[key] = s.value
    return out


def _fs_key(name: str, fs: tuple[str, str, str]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return (name, (("device", fs[0]), ("fstype", fs[1]), ("mountpoint", fs[2])))


@pytest.fixture
def sys_root(tmp_path: Path) -> str:
    for dev, state in (("eth0", "up"), ("lo", "unknown")):
        d = tmp_path / "sys" / "class" / "net" / dev
        d.mkdir(parents=True)
        (d / "operstate").write_text(state + "\n")
    return str(tmp_path / "sys")


@pytest.fixture
def fixture_collector(sys_root: str) -> Iterator[HostCollector]:
    c = HostCollector(proc_root=str(PROC), sys_root=sys_root, top_n=3,
                      statvfs=_fake_statvfs, clock=lambda: BTIME + 1000.0)
    yield c
    c.close()


def test_is_a_collector(fixture_collector: HostCollector) -> None:
    assert isinstance(fixture_collector, Collector)
    assert fixture_collector.name == "host"


async def test_exact_values_from_stored_proc(fixture_collector: HostCollector) -> None:
    got = _index(await fixture_collector.collect())
    cpu = {mode: got[("node_cpu_seconds_total", (("cpu", "0"), ("mode", mode)))]
           for mode in ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")}
    assert cpu == {"user": 1019 / CLK, "nice": 0.0, "system": 786 / CLK, "idle": 45987 / CLK,
                   "iowait": 95 / CLK, "irq": 0.0, "softirq": 15 / CLK, "steal": 2 / CLK}
    assert len([k for k in got if k[0] == "node_cpu_seconds_total"]) == 16
    assert got[("node_load1", ())] == 0.08
    assert got[("node_load5", ())] == 0.09
    assert got[("node_load15", ())] == 0.05
    assert got[("node_memory_MemTotal_bytes", ())] == 24684084 * 1024
    assert got[("node_memory_MemFree_bytes", ())] == 24346564 * 1024
    assert got[("node_memory_Active_anon_bytes", ())] == 1536 * 1024
    assert got[("node_memory_HugePages_Total", ())] == 0
    assert got[("node_boot_time_seconds", ())] == BTIME
    assert got[("node_time_seconds", ())] == BTIME + 1000.0
    assert got[("node_context_switches_total", ())] == 356220
    assert got[("node_forks_total", ())] == 7660
    assert got[("node_intr_total", ())] == 176304
    assert got[("node_procs_running", ())] == 1
    assert got[("node_procs_blocked", ())] == 0
    assert got[("node_vmstat_pgfault", ())] == 2352740
    assert got[("node_vmstat_pgpgin", ())] == 1378313
    assert got[("node_vmstat_oom_kill", ())] == 0
    assert not any(k[0] == "node_vmstat_nr_free_pages" for k in got)
    # net/dev
    eth = (("device", "eth0"),)
    assert got[("node_network_receive_bytes_total", eth)] == 99808956
    assert got[("node_network_receive_packets_total", eth)] == 2832
    assert got[("node_network_transmit_bytes_total", eth)] == 168223
    assert got[("node_network_transmit_packets_total", eth)] == 1418
    assert got[("node_network_receive_errs_total", eth)] == 0
    assert got[("node_network_transmit_drop_total", eth)] == 0
    assert got[("node_network_up", eth)] == 1
    assert got[("node_network_up", (("device", "lo"),))] == 0
    assert ("node_network_up", (("device", "ifb0"),)) not in got  # no operstate file
    # diskstats: vda kept, loop/zram partitions filtered as node_exporter does
    vda = (("device", "vda"),)
    assert got[("node_disk_reads_completed_total", vda)] == 51659
    assert got[("node_disk_read_bytes_total", vda)] == 2756626 * 512
    assert got[("node_disk_writes_completed_total", vda)] == 9418
    assert got[("node_disk_written_bytes_total", vda)] == 1684808 * 512
    assert got[("node_disk_io_time_seconds_total", vda)] == 4.22
    assert got[("node_disk_flush_requests_total", vda)] == 1271
    assert not any(k[0].startswith("node_disk") and k[1] == (("device", "loop0"),) for k in got)
    # uname from the stored sys/kernel files
    uname = dict(next(k for k in got if k[0] == "node_uname_info")[1])
    assert uname == {"domainname": "(none)", "machine": os.uname().machine, "nodename": "vm",
                     "release": "6.18.44-fc-v669", "sysname": "Linux",
                     "version": "#1 SMP PREEMPT_DYNAMIC @0"}


async def test_filesystems_from_stored_mounts(fixture_collector: HostCollector) -> None:
    got = _index(await fixture_collector.collect())
    mounts = {dict(k[1])["mountpoint"] for k in got if k[0] == "node_filesystem_size_bytes"}
    # /proc, /sys, /dev/* and cgroup, devpts... are excluded; the escaped space is decoded
    assert mounts == {"/", "/mnt/sandboxing/model_tools_env/v1/python", "/mnt/nfs share"}
    assert got[_fs_key("node_filesystem_size_bytes", FS)] == 1000 * 4096
    assert got[_fs_key("node_filesystem_free_bytes", FS)] == 600 * 4096
    assert got[_fs_key("node_filesystem_avail_bytes", FS)] == 500 * 4096
    assert got[_fs_key("node_filesystem_files", FS)] == 100
    assert got[_fs_key("node_filesystem_files_free", FS)] == 40
    assert got[_fs_key("node_filesystem_readonly", FS)] == 0
    assert got[_fs_key("node_filesystem_device_error", FS)] == 0
    ro = ("model_tools_unavailable", "tmpfs", "/mnt/sandboxing/model_tools_env/v1/python")
    assert got[_fs_key("node_filesystem_readonly", ro)] == 1


async def test_exclusions_are_configurable(sys_root: str) -> None:
    c = HostCollector(proc_root=str(PROC), sys_root=sys_root, statvfs=_fake_statvfs,
                      mount_points_exclude=r"^/(proc|sys|dev|mnt/sandboxing)($|/)",
                      fs_types_exclude=r"^(proc|sysfs|cgroup2?|devpts|devtmpfs|nfs4)$",
                      disk_exclude="", vmstat_fields=r"^nr_free_pages$", top_n=0)
    try:
        got = _index(await c.collect())
    finally:
        c.close()
    mounts = {dict(k[1])["mountpoint"] for k in got if k[0] == "node_filesystem_size_bytes"}
    assert mounts == {"/"}
    assert ("node_disk_reads_completed_total", (("device", "loop0"),)) in got
    assert [k[0] for k in got if k[0].startswith("node_vmstat")] == ["node_vmstat_nr_free_pages"]
    assert not any(k[0].startswith("watchkeeper_process") for k in got)


async def test_processes_and_top_n(tmp_path: Path, sys_root: str) -> None:
    proc = tmp_path / "proc"
    shutil.copytree(PROC, proc)
    now = [BTIME + 1000.0]
    c = HostCollector(proc_root=str(proc), sys_root=sys_root, top_n=3, statvfs=_fake_statvfs,
                      clock=lambda: now[0])
    try:
        got = _index(await c.collect())
        assert got[("node_processes_state", (("state", "R"),))] == 1
        assert got[("node_processes_state", (("state", "S"),))] == 3
        assert got[("node_processes_threads", ())] == 13 + 1 + 1 + 3
        assert got[("node_processes_pids", ())] == 4
        rss = {dict(k[1])["rank"]: (dict(k[1])["pid"], dict(k[1])["name"], v)
               for k, v in got.items() if k[0] == "watchkeeper_process_memory_rss_bytes"}
        assert rss == {"1": ("4242", "my (weird) proc", 25600 * PAGE),
                       "2": ("1", "process_api", 3422 * PAGE),
                       "3": ("1084", "bash", 1032 * PAGE)}
        # first round: average since each process started
        cpu = {dict(k[1])["rank"]: (dict(k[1])["pid"], v)
               for k, v in got.items() if k[0] == "watchkeeper_process_cpu_percent"}
        assert cpu["1"] == ("4242", pytest.approx(300 / CLK / (1000 - 5000 / CLK) * 100))
        assert cpu["2"] == ("1", pytest.approx(226 / CLK / (1000 - 24 / CLK) * 100))
        assert set(cpu) == {"1", "2", "3"}

        # second round: the delta since the last collection
        stat = proc / "4310" / "stat"
        fields = stat.read_text().split(" ")
        fields[13] = str(int(fields[13]) + 5 * CLK)  # 5 more seconds of user time
        stat.write_text(" ".join(fields))
        now[0] += 10.0
        got = _index(await c.collect())
        top = next(k for k in got if k[0] == "watchkeeper_process_cpu_percent"
                   and dict(k[1])["rank"] == "1")
        assert dict(top[1])["pid"] == "4310"
        assert got[top] == pytest.approx(50.0)
    finally:
        c.close()


def test_pid_stat_and_mount_parsing() -> None:
    s = parse_pid_stat(4242, (PROC / "4242" / "stat").read_bytes())
    assert (s.comm, s.state, s.cpu_ticks, s.threads, s.start_ticks, s.rss_pages) == (
        "my (weird) proc", "R", 300, 3, 5000, 25600)
    m = parse_mounts("a /b\\040c\\011d ext4 ro 0 0\n")[0]
    assert (m.device, m.mountpoint, m.fstype, m.options) == ("a", "/b c\td", "ext4", "ro")


# -- hung mounts -------------------------------------------------------------------------

class _BlockingStatvfs:
    """statvfs that hangs for one path until released, counting calls per path."""

    def __init__(self, hang: str) -> None:
        self.hang = hang
        self.release = threading.Event()
        self.calls: dict[str, int] = {}
        self.lock = threading.Lock()

    def __call__(self, path: str) -> os.statvfs_result:
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1
        if path == self.hang:
            self.release.wait(30)
        if path == "/mnt/sandboxing/model_tools_env/v1/python":
            raise PermissionError(13, "Permission denied", path)
        return _fake_statvfs(path)


async def test_hung_mount_never_stalls_and_is_not_reprobed(sys_root: str) -> None:
    stub = _BlockingStatvfs(hang="/")
    c = HostCollector(proc_root=str(PROC), sys_root=sys_root, statvfs=stub,
                      mount_timeout=0.3, top_n=0)
    try:
        start = time.monotonic()
        got = _index(await c.collect())
        first = time.monotonic() - start
        assert 0.3 <= first < 1.5
        assert got[_fs_key("node_filesystem_device_error", FS)] == 1
        assert _fs_key("node_filesystem_size_bytes", FS) not in got
        # the mounts after the hung one were still probed, by a fresh worker
        assert got[_fs_key("node_filesystem_size_bytes", NFS)] == 1000 * 4096
        denied = ("model_tools_unavailable", "tmpfs", "/mnt/sandboxing/model_tools_env/v1/python")
        assert got[_fs_key("node_filesystem_device_error", denied)] == 1
        assert c.prober.stuck == ["/"]

        # while the old call is stuck: no new thread, no waiting, still marked
        # (counted by name: other parts of the process, e.g. a database pool, may start
        # threads of their own meanwhile)
        def statvfs_threads() -> int:
            return sum(1 for t in threading.enumerate() if t.name == "watchkeeper-statvfs")

        threads = statvfs_threads()
        start = time.monotonic()
        got = _index(await c.collect())
        assert time.monotonic() - start < 0.25
        assert got[_fs_key("node_filesystem_device_error", FS)] == 1
        assert stub.calls["/"] == 1
        assert statvfs_threads() <= threads

        # once it returns, the mount is probed again and reported normally
        stub.release.set()
        for _ in range(100):
            if not c.prober.stuck:
                break
            await asyncio.sleep(0.01)
        got = _index(await c.collect())
        assert stub.calls["/"] == 2
        assert got[_fs_key("node_filesystem_device_error", FS)] == 0
        assert got[_fs_key("node_filesystem_size_bytes", FS)] == 1000 * 4096
    finally:
        stub.release.set()
        c.close()


# -- the real /proc of this machine ---------------------------------------------------------

async def test_real_proc_sanity() -> None:
    c = HostCollector()
    try:
        samples = await c.collect()
    finally:
        c.close()
    got = _index(samples)
    mem = psutil.virtual_memory()
    assert got[("node_memory_MemTotal_bytes", ())] == mem.total
    assert got[("node_boot_time_seconds", ())] == pytest.approx(psutil.boot_time(), abs=1)
    assert abs(got[("node_time_seconds", ())] - time.time()) < 5
    load = os.getloadavg()
    assert got[("node_load15", ())] == pytest.approx(load[2], abs=0.5)
    per_cpu = psutil.cpu_times(percpu=True)
    assert len([k for k in got if k[0] == "node_cpu_seconds_total"]) == 8 * len(per_cpu)
    for i, times in enumerate(per_cpu):
        ours = got[("node_cpu_seconds_total", (("cpu", str(i)), ("mode", "user")))]
        assert ours == pytest.approx(times.user, abs=2.0)
    st = os.statvfs("/")
    roots = [v for k, v in got.items()
             if k[0] == "node_filesystem_size_bytes" and dict(k[1])["mountpoint"] == "/"]
    assert roots == [st.f_blocks * st.f_frsize]
    nics = psutil.net_io_counters(pernic=True)
    assert ("node_network_receive_bytes_total", (("device", "lo"),)) not in got
    for nic, counters in nics.items():
        if nic == "lo":
            continue
        assert got[("node_network_receive_bytes_total", (("device", nic),))] >= 0
        assert counters.bytes_recv <= got[("node_network_receive_bytes_total",
                                          (("device", nic),))] + 10_000_000
    me = [k for k in got if k[0] == "watchkeeper_process_memory_rss_bytes"]
    assert 1 <= len(me) <= 5
    assert {dict(k[1])["rank"] for k in me} == {str(i) for i in range(1, len(me) + 1)}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_same_series_as_node_exporter() -> None:
    """Where both report a metric, the label sets match node_exporter's exactly."""
    exe = shutil.which("prometheus-node-exporter")
    assert exe, "prometheus-node-exporter (Debian package) is needed for this test"
    port = _free_port()
    proc = subprocess.Popen(
        [exe, f"--web.listen-address=127.0.0.1:{port}",
         f"--collector.filesystem.mount-points-exclude={DEFAULT_MOUNT_POINTS_EXCLUDE}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        with httpx.Client() as client:
            for _ in range(300):
                try:
                    body = client.get(url, timeout=2.0).text
                    break
                except httpx.TransportError:
                    assert proc.poll() is None, "node_exporter exited at start"
                    time.sleep(0.05)
            else:
                raise AssertionError("node_exporter did not start listening")
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    theirs: dict[str, set[tuple[tuple[str, str], ...]]] = {}
    for s in parse_text(body):
        theirs.setdefault(s.name, set()).add(tuple(sorted(s.labels.items())))
    c = HostCollector()
    try:
        ours: dict[str, set[tuple[tuple[str, str], ...]]] = {}
        for s in c.collect_sync():
            ours.setdefault(s.name, set()).add(tuple(sorted(s.labels.items())))
    finally:
        c.close()
    must = ["node_cpu_seconds_total", "node_load1", "node_memory_MemAvailable_bytes",
            "node_filesystem_avail_bytes", "node_filesystem_device_error",
            "node_disk_read_bytes_total", "node_network_receive_bytes_total",
            "node_network_up", "node_boot_time_seconds", "node_forks_total",
            "node_uname_info", "node_vmstat_pgfault", "node_procs_running"]
    for name in must:
        assert name in theirs and name in ours, name
    common = set(theirs) & set(ours)
    assert len(common) >= 80
    for name in sorted(common):
        if name in ("node_time_seconds",):
            continue
        assert ours[name] == theirs[name], name
