#!/usr/bin/env bash
# Build the deployment checkers from their Go modules into DIR (default .tools/go/bin): the Helm CLI,
# actionlint, and compose-check (deploy/tools/compose-check: Compose files loaded and validated as
# `docker compose config` does, with the Compose specification's schema). Each is built once per version; Go's module and build caches make a
# rebuild after `make clean` quick.
set -euo pipefail
dir="${1:-.tools/go/bin}"
HELM_VERSION=v3.22.0
ACTIONLINT_VERSION=v1.7.12
if ! command -v go >/dev/null 2>&1; then
  echo "error: the Go toolchain is missing; install Go (https://go.dev/doc/install) to build helm and actionlint" >&2
  exit 1
fi
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
source_dir="$(cd "$(dirname "$0")" && pwd)/compose-check"
build() {  # name module version
  local stamp="$dir/.$1-$3"
  [ -x "$dir/$1" ] && [ -f "$stamp" ] && return 0
  echo "building $1 $3 from $2" >&2
  GOBIN="$dir" CGO_ENABLED=0 go install "$2@$3"
  rm -f "$dir/.$1-"*
  touch "$stamp"
}
build helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION"
build actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"
stamp="$dir/.compose-check-$(cat "$source_dir/go.sum" "$source_dir/main.go" | sha256sum | cut -c1-16)"
if [ ! -x "$dir/compose-check" ] || [ ! -f "$stamp" ]; then
  echo "building compose-check" >&2
  (cd "$source_dir" && CGO_ENABLED=0 go build -o "$dir/compose-check" .)
  rm -f "$dir/.compose-check-"*
  touch "$stamp"
fi
