#!/usr/bin/env bash
# Install checkov (the chart's and the Dockerfile's scanner) with uv into a tool environment of its
# own under DIR (default .tools): its many pinned dependencies stay out of the project's lock.
set -euo pipefail
dir="${1:-.tools}"
CHECKOV_VERSION=3.3.30
uv="$dir/bin/uv"
stamp="$dir/checkov/.checkov-$CHECKOV_VERSION"
[ -x "$dir/bin/checkov" ] && [ -f "$stamp" ] && exit 0
echo "installing checkov $CHECKOV_VERSION" >&2
mkdir -p "$dir/checkov"
UV_TOOL_DIR="$dir/checkov" UV_TOOL_BIN_DIR="$(cd "$dir" && pwd)/bin" "$uv" tool install --force --quiet \
  --python "$dir/bin/python" "checkov==$CHECKOV_VERSION"
rm -f "$dir/checkov/.checkov-"*
touch "$stamp"
