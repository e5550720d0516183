#!/usr/bin/env bash
# Install, from the system's packages, whichever of the given tools is missing.
# Usage: apt-tools.sh TOOL=PACKAGE [TOOL=PACKAGE ...]  (e.g. java=openjdk-17-jre-headless)
# A TOOL is a command's name, or an absolute path for a package that installs files, not a command.
# Debian / Ubuntu packages through apt-get; elsewhere, say what to install.
set -euo pipefail
missing=()
for pair in "$@"; do
  tool="${pair%%=*}"
  if [[ "$tool" == /* ]]; then
    [ -e "$tool" ] || missing+=("${pair#*=}")
  else
    command -v "$tool" >/dev/null 2>&1 || missing+=("${pair#*=}")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: missing ${missing[*]} and there is no apt-get here; install them with your package manager" >&2
  exit 1
fi
sudo=""
if [ "$(id -u)" != 0 ]; then
  sudo="sudo -n"
fi
echo "installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
