#!/usr/bin/env bash
# Install Redis's server when missing: the tests start their own on a free loopback port, so the
# service the package starts is not wanted and is stopped.
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
"$(dirname "$0")/../tools/apt-tools.sh" redis-server=redis-server
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
  systemctl disable --now redis-server >/dev/null 2>&1 || sudo -n systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
