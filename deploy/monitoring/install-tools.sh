#!/usr/bin/env bash
# Install the checkers of the alert rules and the Alertmanager configuration when missing:
# promtool (Debian's prometheus package) and amtool (prometheus-alertmanager). The packages'
# own daemons are not wanted here, so any they start is stopped.
set -euo pipefail
declare -A package=([promtool]=prometheus [amtool]=prometheus-alertmanager)
missing=()
for tool in promtool amtool; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing ${missing[*]} and there is no apt-get here; install promtool and amtool with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo -n"
fi
echo "installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
if command -v systemctl >/dev/null 2>&1; then
  for unit in prometheus prometheus-alertmanager; do
    systemctl is-active --quiet "$unit" 2>/dev/null && $sudo systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi
