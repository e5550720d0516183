#!/usr/bin/env bash
# Install what the local Kafka broker and the Kafka tests need beside Python, when missing:
# Java (runs the broker), Maven (fetches its jars) and kcat (the outside client the tests use).
# Debian / Ubuntu packages through apt-get; elsewhere, say what to install.
set -euo pipefail
declare -A package=([kcat]=kcat [java]=openjdk-17-jre-headless [mvn]=maven)
missing=()
for tool in kcat java mvn; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package[$tool]}")
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
