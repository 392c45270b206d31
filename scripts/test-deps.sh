#!/usr/bin/env bash
# Install the Debian packages the tests talk to, when they are missing.
set -euo pipefail

need=()
have_file() { [ -e "$1" ]; }
have_file /usr/lib/nagios/plugins/check_tcp   || need+=(monitoring-plugins-basic)
have_file /usr/bin/prometheus-node-exporter   || need+=(prometheus-node-exporter)
have_file /usr/bin/prometheus-blackbox-exporter || need+=(prometheus-blackbox-exporter)
command -v dnsmasq >/dev/null 2>&1 || have_file /usr/sbin/dnsmasq || need+=(dnsmasq-base)
command -v ping >/dev/null 2>&1               || need+=(iputils-ping)
command -v promtool >/dev/null 2>&1           || need+=(prometheus)
have_file /usr/bin/prometheus-alertmanager     || need+=(prometheus-alertmanager)
have_file /usr/sbin/sshd                       || need+=(openssh-server)
command -v ssh-keygen >/dev/null 2>&1         || need+=(openssh-client)
have_file /usr/bin/sudo                        || need+=(sudo)
command -v nc >/dev/null 2>&1                 || need+=(netcat-openbsd)
command -v curl >/dev/null 2>&1               || need+=(curl)
command -v wget >/dev/null 2>&1               || need+=(wget)
# the PostgreSQL server the storage tests start as a throwaway cluster (tests/pg.py)
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need+=(postgresql)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
echo "installing test dependencies: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: need root (or sudo) to install: ${need[*]}" >&2; exit 1
  fi
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
