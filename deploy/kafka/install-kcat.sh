#!/usr/bin/env bash
# Install kcat (Debian's package), the outside Kafka client the tests produce and consume with.
set -euo pipefail
command -v kcat >/dev/null 2>&1 && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: kcat is missing and there is no apt-get here; install kcat with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo -n"
fi
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends kcat
