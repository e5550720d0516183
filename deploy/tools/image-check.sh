#!/usr/bin/env bash
# Build the image from deploy/Dockerfile with buildah (no Docker daemon needed) and run it: the
# entry point as the image's unprivileged user, no uv left in it, and `gamemetrics up` started by
# it, the Dockerfile's own HEALTHCHECK command failing before the platform is up and passing once
# it is. Needs root (buildah's chroot isolation) and Debian's buildah (installed here if missing).
#
# PYTHON_IMAGE=... builds on another base than the official python image. STANDIN=1 builds, for
# machines that reach Debian's mirror but no container registry, a stand-in for it from Debian's
# packages (debootstrap: Debian's Python 3, pip, and this machine's CA certificates).
set -euo pipefail
cd "$(dirname "$0")/../.."
if [ "${STANDIN:-0}" = 1 ]; then
  deploy/tools/apt-tools.sh buildah=buildah debootstrap=debootstrap
else
  deploy/tools/apt-tools.sh buildah=buildah
fi
work="$(mktemp -d)"
ctr=""
bah() { buildah --storage-driver vfs "$@"; }
cleanup() {
  [ -n "$ctr" ] && bah rm "$ctr" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

base="${PYTHON_IMAGE:-python:3.12-slim-bookworm}"
if [ "${STANDIN:-0}" = 1 ]; then
  base="localhost/gamemetrics-python-standin"
  echo "building a stand-in for python:slim from Debian's packages" >&2
  debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates bookworm \
    "$work/rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >"$work/debootstrap.log"
  # What the official image is like: pip installs into the interpreter, `python` and `pip` exist.
  rm -f "$work"/rootfs/usr/lib/python3*/EXTERNALLY-MANAGED
  ln -sf python3 "$work/rootfs/usr/bin/python"
  ln -sf pip3 "$work/rootfs/usr/bin/pip"
  cp /etc/ssl/certs/ca-certificates.crt "$work/rootfs/etc/ssl/certs/ca-certificates.crt"
  tar -C "$work/rootfs" -cf "$work/rootfs.tar" .
  printf 'FROM scratch\nADD rootfs.tar /\nENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt\n' >"$work/Containerfile"
  bah bud --quiet --isolation chroot -t "$base" -f "$work/Containerfile" "$work" >/dev/null
fi

echo "building deploy/Dockerfile on $base" >&2
git archive HEAD pyproject.toml uv.lock README.md src deploy/Dockerfile .dockerignore | tar -x -C "$work"
bah bud --quiet --isolation chroot --format docker --build-arg "PYTHON_IMAGE=$base" \
  -t localhost/gamemetrics:check -f "$work/deploy/Dockerfile" "$work" >/dev/null
ctr="$(bah from localhost/gamemetrics:check)"
run() { bah run --isolation chroot --env GAMEMETRICS_PORT=18123 --env HEALTHCHECK_PORT=18123 "$ctr" -- "$@"; }

uid="$(run id -u)"
[ "$uid" -ge 10000 ] || { echo "error: the image runs as uid $uid" >&2; exit 1; }
run sh -c '! command -v uv' >/dev/null || { echo "error: uv is in the final image" >&2; exit 1; }
run gamemetrics serve --help >/dev/null
healthcheck="$(bah inspect localhost/gamemetrics:check \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["Docker"]["config"]["Healthcheck"]["Test"][1])')"
printf '%s\n' "$healthcheck" >"$work/healthcheck.sh"
bah copy --chown 10001:10001 "$ctr" "$work/healthcheck.sh" /tmp/healthcheck.sh >/dev/null
run sh -c '
  if sh /tmp/healthcheck.sh 2>/dev/null; then echo "error: healthy before the platform started" >&2; exit 1; fi
  gamemetrics up >/tmp/up.log 2>&1 & up=$!
  for i in $(seq 1 90); do
    if sh /tmp/healthcheck.sh 2>/dev/null; then
      echo "image ok: uid $(id -u), the health check passed $((i * 2)) s after gamemetrics up started"
      kill -INT "$up"; wait "$up"; exit 0
    fi
    sleep 2
  done
  tail -20 /tmp/up.log >&2; kill "$up"; exit 1'
