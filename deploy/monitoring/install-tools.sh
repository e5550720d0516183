#!/usr/bin/env bash
# Install the checkers of the alert rules and the Alertmanager configuration when missing:
# promtool (Debian's prometheus package) and amtool (prometheus-alertmanager). The packages'
# own daemons are not wanted here, so any they start is stopped.
set -euo pipefail
command -v promtool >/dev/null 2>&1 && command -v amtool >/dev/null 2>&1 && exit 0
"$(dirname "$0")/../tools/apt-tools.sh" promtool=prometheus amtool=prometheus-alertmanager
if command -v systemctl >/dev/null 2>&1; then
  for unit in prometheus prometheus-alertmanager; do
    if systemctl is-active --quiet "$unit" 2>/dev/null; then
      systemctl disable --now "$unit" >/dev/null 2>&1 || sudo -n systemctl disable --now "$unit" >/dev/null 2>&1 || true
    fi
  done
fi
