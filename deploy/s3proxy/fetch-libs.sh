#!/usr/bin/env bash
# Copy S3Proxy's jars (named by pom.xml beside this script) into the directory given, .s3proxy/libs
# by default. Maven downloads from Maven Central once and caches in ~/.m2.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
dest="$(realpath -m "${1:-.s3proxy/libs}")"
if ! command -v mvn >/dev/null 2>&1; then
  echo "error: Maven (mvn) is needed to fetch S3Proxy's jars; install it (e.g. apt-get install maven)" >&2
  exit 1
fi
rm -rf "$dest.partial"
mkdir -p "$dest.partial"
log="$(mktemp)"
if ! mvn -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$dest.partial" >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  rm -f "$log"
  echo "error: Maven could not fetch S3Proxy's jars (see above)" >&2
  exit 1
fi
rm -f "$log"
rm -rf "$dest"
mv "$dest.partial" "$dest"
touch "$dest/.fetched"
echo "S3Proxy jars in $dest"
