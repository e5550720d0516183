#!/usr/bin/env bash
# Install the browser the dashboard's browser tests drive, when missing: Debian's Chromium and its
# WebDriver (chromedriver), which Selenium talks to. Debian / Ubuntu packages through apt-get;
# elsewhere, say what to install.
set -euo pipefail
command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: chromium and chromedriver are missing and there is no apt-get here; install them with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo -n"
fi
echo "installing chromium chromium-driver" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium chromium-driver fonts-dejavu-core
