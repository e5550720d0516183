#!/usr/bin/env bash
# Install Redis's server when missing: the tests start their own on a free loopback port.
# Debian / Ubuntu packages through apt-get; elsewhere, say what to install.
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: redis-server is missing and there is no apt-get here; install Redis with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo -n"
fi
echo "installing redis-server" >&2
$sudo apt-get update -qq
# The package's service is not wanted: the tests run their own server, so stop the one it starts.
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet redis-server 2>/dev/null; then
  $sudo systemctl disable --now redis-server >/dev/null 2>&1 || true
fi
