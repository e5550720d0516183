#!/usr/bin/env bash
# Copy the runtime jars a pom.xml names into a directory, through Maven (which downloads from
# Maven Central once and caches in ~/.m2). The directory is replaced whole, and marked `.fetched`,
# only when every jar arrived.
# Usage: fetch-jars.sh POM DEST WHAT   (WHAT names the jars in messages, e.g. "S3Proxy's jars")
set -euo pipefail
pom="$1"
dest="$(realpath -m "$2")"
what="$3"
if ! command -v mvn >/dev/null 2>&1; then
  echo "error: Maven (mvn) is needed to fetch $what; install it (e.g. apt-get install maven)" >&2
  exit 1
fi
rm -rf "$dest.partial"
mkdir -p "$dest.partial"
log="$(mktemp)"
if ! mvn -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies -DincludeScope=runtime \
    -DoutputDirectory="$dest.partial" >"$log" 2>&1; then
  tail -n 40 "$log" >&2
  rm -f "$log"
  echo "error: Maven could not fetch $what (see above)" >&2
  exit 1
fi
rm -f "$log"
rm -rf "$dest"
mv "$dest.partial" "$dest"
touch "$dest/.fetched"
echo "$what in $dest"
