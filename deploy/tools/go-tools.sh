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
build() {  # name module version [ldflags]
  local stamp
  stamp="$dir/.$1-$3-$(printf '%s' "${4:-}" | sha256sum | cut -c1-8)"
  [ -x "$dir/$1" ] && [ -f "$stamp" ] && return 0
  echo "building $1 $3 from $2" >&2
  GOBIN="$dir" CGO_ENABLED=0 go install -ldflags "${4:-}" "$2@$3"
  rm -f "$dir/.$1-"*
  touch "$stamp"
}
# As Helm's own release build sets them: its version, and the Kubernetes version that templates and
# lint assume without --kube-version (that of the client-go it is built with, v0.37: Kubernetes 1.37).
build helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION \
-X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=37 \
-X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=37"
build actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION"
stamp="$dir/.compose-check-$(cat "$source_dir/go.sum" "$source_dir/main.go" | sha256sum | cut -c1-16)"
if [ ! -x "$dir/compose-check" ] || [ ! -f "$stamp" ]; then
  echo "building compose-check" >&2
  (cd "$source_dir" && CGO_ENABLED=0 go build -o "$dir/compose-check" .)
  rm -f "$dir/.compose-check-"*
  touch "$stamp"
fi
