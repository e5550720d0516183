#!/usr/bin/env bash
# Install the browser the dashboard's browser tests drive, when missing: Debian's Chromium, its
# WebDriver (chromedriver), which Selenium talks to, and a font for the pages' text.
set -euo pipefail
exec "$(dirname "$0")/../tools/apt-tools.sh" chromium=chromium chromedriver=chromium-driver \
  /usr/share/fonts/truetype/dejavu=fonts-dejavu-core
