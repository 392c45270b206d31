"""Type, help and unit of the metrics watchkeeper writes itself, for ``/api/v1/metadata``.

The store keeps samples, not the ``# TYPE``/``# HELP`` lines of scraped
targets, so metadata is known for what watchkeeper produces: its host
collector (node_exporter's names and help texts), its checks' series, its own
``watchkeeper_*`` counters and the ``process_*``/``python_*`` families of its
Python runtime. Every other stored metric is answered with type ``unknown``.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Metadata", "known_metadata"]

#: one entry of /api/v1/metadata: {"type": ..., "help": ..., "unit": ...}
Metadata = dict[str, str]

_NODE: dict[str, tuple[str, str]] = {
    "node_boot_time_seconds": ("gauge", "Node boot time, in unixtime."),
    "node_time_seconds": ("gauge", "System time in seconds since epoch (1970)."),
    "node_context_switches_total": ("counter", "Total number of context switches."),
    "node_forks_total": ("counter", "Total number of forks."),
    "node_intr_total": ("counter", "Total number of interrupts serviced."),
    "node_procs_blocked": ("gauge", "Number of processes blocked waiting for I/O to complete."),
    "node_procs_running": ("gauge", "Number of processes in runnable state."),
    "node_cpu_seconds_total": ("counter", "Seconds the CPUs spent in each mode."),
    "node_cpu_guest_seconds_total": ("counter", "Seconds the CPUs spent in guests (VMs) for each mode."),
    "node_load1": ("gauge", "1m load average."),
    "node_load5": ("gauge", "5m load average."),
    "node_load15": ("gauge", "15m load average."),
    "node_filesystem_size_bytes": ("gauge", "Filesystem size in bytes."),
    "node_filesystem_free_bytes": ("gauge", "Filesystem free space in bytes."),
    "node_filesystem_avail_bytes": ("gauge", "Filesystem space available to non-root users in bytes."),
    "node_filesystem_files": ("gauge", "Filesystem total file nodes."),
    "node_filesystem_files_free": ("gauge", "Filesystem total free file nodes."),
    "node_filesystem_readonly": ("gauge", "Filesystem read-only status."),
    "node_filesystem_device_error": ("gauge", "Whether an error occurred while getting statistics "
                                              "for the given device."),
    "node_network_up": ("gauge", "Value is 1 if operstate is 'up', 0 otherwise."),
    "node_processes_pids": ("gauge", "Number of PIDs"),
    "node_processes_state": ("gauge", "Number of processes in each state."),
    "node_processes_threads": ("gauge", "Allocated threads in system"),
    "node_uname_info": ("gauge", "Labeled system information as provided by the uname system call."),
    "node_disk_io_now": ("gauge", "The number of I/Os currently in progress."),
    "node_disk_io_time_seconds_total": ("counter", "Total seconds spent doing I/Os."),
    "node_disk_io_time_weighted_seconds_total": ("counter", "The weighted # of seconds spent doing I/Os."),
    "node_disk_read_bytes_total": ("counter", "The total number of bytes read successfully."),
    "node_disk_written_bytes_total": ("counter", "The total number of bytes written successfully."),
    "node_disk_read_time_seconds_total": ("counter", "The total number of seconds spent by all reads."),
    "node_disk_write_time_seconds_total": ("counter", "This is the total number of seconds spent by all writes."),
    "node_disk_reads_completed_total": ("counter", "The total number of reads completed successfully."),
    "node_disk_writes_completed_total": ("counter", "The total number of writes completed successfully."),
    "node_disk_reads_merged_total": ("counter", "The total number of reads merged."),
    "node_disk_writes_merged_total": ("counter", "The number of writes merged."),
    "node_disk_discards_completed_total": ("counter", "The total number of discards completed successfully."),
    "node_disk_discards_merged_total": ("counter", "The total number of discards merged."),
    "node_disk_discarded_sectors_total": ("counter", "The total number of sectors discarded successfully."),
    "node_disk_discard_time_seconds_total": ("counter", "This is the total number of seconds spent by all discards."),
    "node_disk_flush_requests_total": ("counter", "The total number of flush requests completed successfully"),
    "node_disk_flush_requests_time_seconds_total": ("counter", "This is the total number of seconds spent "
                                                               "by all flush requests."),
}

_WATCHKEEPER: dict[str, tuple[str, str]] = {
    "watchkeeper_build_info": ("gauge", "The running watchkeeper version (always 1)."),
    "watchkeeper_start_time_seconds": ("gauge", "When this watchkeeper started, in Unix seconds."),
    "watchkeeper_job_runs_total": ("counter", "Runs of each scheduled job."),
    "watchkeeper_job_skipped_total": ("counter", "Runs of each job skipped because the previous one "
                                                 "was still running."),
    "watchkeeper_job_failures_total": ("counter", "Runs of each job that raised an error."),
    "watchkeeper_checks_run_total": ("counter", "Check results recorded."),
    "watchkeeper_samples_written_total": ("counter", "Samples written to the store."),
    "watchkeeper_flushes_total": ("counter", "Batched writes to the store."),
    "watchkeeper_check_up": ("gauge", "1 when the check's service answers (state OK or WARNING), else 0."),
    "watchkeeper_check_state": ("gauge", "The check's latest state: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN."),
    "watchkeeper_check_duration_seconds": ("gauge", "How long the check's latest run took."),
    "watchkeeper_http_duration_seconds": ("gauge", "How long the HTTP check's request took."),
    "watchkeeper_http_status_code": ("gauge", "The HTTP status code of the check's response."),
    "watchkeeper_http_content_length": ("gauge", "The size of the HTTP check's response body in bytes."),
    "watchkeeper_tcp_connect_duration_seconds": ("gauge", "How long the TCP check took to connect."),
    "watchkeeper_tcp_duration_seconds": ("gauge", "How long the whole TCP check took."),
    "watchkeeper_dns_lookup_duration_seconds": ("gauge", "How long the DNS check's lookup took."),
    "watchkeeper_dns_answers": ("gauge", "Records in the DNS check's answer."),
    "watchkeeper_tls_cert_days_left": ("gauge", "Days until the TLS certificate expires."),
    "watchkeeper_tls_cert_not_after_timestamp_seconds": ("gauge", "When the TLS certificate expires, "
                                                                  "in Unix seconds."),
    "watchkeeper_ping_packet_loss_ratio": ("gauge", "Share of the ping check's packets without an answer."),
    "watchkeeper_ping_packets_sent": ("gauge", "Packets the ping check sent."),
    "watchkeeper_file_size_bytes": ("gauge", "Size of the file the check looks at, in bytes."),
    "watchkeeper_file_age_seconds": ("gauge", "Seconds since the file the check looks at was modified."),
    "watchkeeper_process_count": ("gauge", "Processes the process check found."),
    "watchkeeper_process_cpu_percent": ("gauge", "CPU use of the processes the check found, in percent."),
    "watchkeeper_process_resident_memory_bytes": ("gauge", "Resident memory of the processes the check "
                                                           "found, in bytes."),
    "watchkeeper_systemd_unit_active": ("gauge", "1 when the systemd unit is active, else 0."),
    "watchkeeper_systemd_unit_state": ("gauge", "The systemd unit's state, by label."),
    "watchkeeper_scrape_invalid_lines": ("gauge", "Lines of the scraped exposition that did not parse."),
}


def _runtime() -> dict[str, tuple[str, str]]:
    """The families of watchkeeper's Python runtime (prometheus_client's default registry),
    keyed by the sample names a scrape stores (counters with ``_total``)."""
    from prometheus_client import REGISTRY

    out: dict[str, tuple[str, str]] = {}
    for family in REGISTRY.collect():
        name = family.name + "_total" if family.type == "counter" else family.name
        out[name] = (family.type, family.documentation)
    return out


def _node_pattern(name: str) -> tuple[str, str] | None:
    """node_exporter families whose names come from the kernel's field names."""
    if name.startswith("node_memory_"):
        field = name.removeprefix("node_memory_")
        return "gauge", f"Memory information field {field}."
    if name.startswith("node_vmstat_"):
        return "untyped", f"/proc/vmstat information field {name.removeprefix('node_vmstat_')}."
    if name.startswith("node_network_") and name.endswith("_total"):
        field = name.removeprefix("node_network_").removesuffix("_total")
        return "counter", f"Network device statistic {field}."
    return None


def known_metadata(names: list[str]) -> dict[str, list[Metadata]]:
    """Metadata for each of ``names`` (metric names in the store), in their order: what
    watchkeeper knows, type ``unknown`` with empty help for the others."""
    runtime: dict[str, tuple[str, str]] | None = None
    out: dict[str, list[Metadata]] = {}
    for name in names:
        found: Any = _NODE.get(name) or _WATCHKEEPER.get(name) or _node_pattern(name)
        if found is None and name.startswith(("process_", "python_")):
            if runtime is None:
                runtime = _runtime()
            found = runtime.get(name)
        kind, text = found if found is not None else ("unknown", "")
        # (Prometheus fills ``unit`` only from OpenMetrics ``# UNIT`` lines)
        out[name] = [{"type": kind, "help": text, "unit": ""}]
    return out
