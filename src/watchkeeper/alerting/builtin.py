"""Built-in rules: host rules that can be switched on by name.

``rules: [builtin:host]`` style configs switch on groups of ready-made rules
over the series watchkeeper's own collectors and checks write (node_exporter
names for the host, ``watchkeeper_check_up``, ``watchkeeper_tls_cert_days_left``).
They are ordinary Prometheus rule groups: :func:`builtin_rules` loads them
with the same loader as rule files, so ``rules check``/``test``/``backtest``
treat them like any other.

A check's ``alert:`` block needs no rule: alerting/checkalerts.py raises it the
moment a result comes in.
"""

from __future__ import annotations

from collections.abc import Iterable

from watchkeeper.alerting.rulefiles import RuleSet, load_rules_text
from watchkeeper.errors import InputError

__all__ = ["BUILTIN_GROUPS", "builtin_names", "builtin_rules"]

BUILTIN_GROUPS: dict[str, str] = {
    "filesystem": """
groups:
  - name: builtin-filesystem
    rules:
      - alert: FilesystemWillFillIn24Hours
        expr: |
          predict_linear(node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs|ramfs"}[6h], 24 * 3600) < 0
          and node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs|ramfs"} / node_filesystem_size_bytes < 0.4
          and on (device, mountpoint) node_filesystem_readonly == 0
        for: 30m
        labels:
          severity: warning
        annotations:
          summary: "{{ $labels.mountpoint }} will be full within 24 hours"
          description: "{{ $labels.mountpoint }} ({{ $labels.device }}) fills up at its current rate within a day."
      - alert: FilesystemAlmostFull
        expr: |
          node_filesystem_avail_bytes{fstype!~"tmpfs|overlay|squashfs|ramfs"} / node_filesystem_size_bytes < 0.05
          and on (device, mountpoint) node_filesystem_readonly == 0
        for: 5m
        labels:
          severity: critical
        annotations:
          summary: "{{ $labels.mountpoint }} is almost full"
          description: "{{ $labels.mountpoint }} has {{ $value | humanizePercentage }} space left."
""",
    "memory": """
groups:
  - name: builtin-memory
    rules:
      - alert: MemoryPressure
        expr: node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes < 0.1
        for: 5m
        labels:
          severity: warning
        annotations:
          summary: "Memory is running out"
          description: "Only {{ $value | humanizePercentage }} of memory is available."
""",
    "load": """
groups:
  - name: builtin-load
    rules:
      - alert: HighLoad
        expr: |
          node_load5 / scalar(count(node_cpu_seconds_total{mode="idle"})) > 2
        for: 15m
        labels:
          severity: warning
        annotations:
          summary: "The load average is high"
          description: "The 5-minute load is {{ printf \\"%.2f\\" $value }} per CPU."
""",
    "checks": """
groups:
  - name: builtin-checks
    rules:
      - alert: CheckDown
        expr: watchkeeper_check_up == 0
        for: 2m
        labels:
          severity: critical
        annotations:
          summary: "Check {{ $labels.check }} is down"
          description: "The {{ $labels.type }} check {{ $labels.check }} has failed for 2 minutes."
""",
    "certificates": """
groups:
  - name: builtin-certificates
    rules:
      - alert: CertificateExpiringSoon
        expr: 0 <= watchkeeper_tls_cert_days_left < 14
        labels:
          severity: warning
        annotations:
          summary: "Certificate of {{ $labels.check }} expires soon"
          description: "The certificate expires in {{ printf \\"%.0f\\" $value }} days."
      - alert: CertificateExpired
        expr: watchkeeper_tls_cert_days_left < 0
        labels:
          severity: critical
        annotations:
          summary: "Certificate of {{ $labels.check }} has expired"
""",
}
BUILTIN_GROUPS["host"] = ""  # all of the host groups together (filesystem, memory, load)
_HOST = ("filesystem", "memory", "load")


def builtin_names() -> list[str]:
    """The names :func:`builtin_rules` accepts."""
    return sorted(BUILTIN_GROUPS)


def builtin_rules(names: Iterable[str]) -> RuleSet:
    """The built-in rule groups named (``host`` = filesystem, memory and load).

    Raises InputError for an unknown name, listing the known ones.
    """
    out = RuleSet()
    seen: set[str] = set()
    for name in names:
        if name not in BUILTIN_GROUPS:
            raise InputError(f"unknown built-in rule group {name!r}; use one of {', '.join(builtin_names())}")
        for part in (_HOST if name == "host" else (name,)):
            if part in seen:
                continue
            seen.add(part)
            out.extend(load_rules_text(BUILTIN_GROUPS[part], f"<builtin:{part}>"))
    return out
