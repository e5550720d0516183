#!/usr/bin/env bash
# Vendor the scripts and styles GraphiQL loads, so /graphql works with no internet connection:
# every https://unpkg.com/<package>@<version>/<file> that strawberry's GraphiQL page names is taken
# from that package's npm tarball (`npm pack`) into src/gamemetrics/web/graphiql/<package>@<version>/,
# with the package's licence. Run it again after upgrading strawberry-graphql; the analytics tests
# fail while a file the page names is missing.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-$root/.venv/bin/python}
template=$("$python" -c 'import pathlib, strawberry; print(pathlib.Path(strawberry.__file__).parent / "static/graphiql.html")')
out=$root/src/gamemetrics/web/graphiql
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
grep -o 'https://unpkg.com/[^"]*' "$template" | sort -u | while read -r url; do
  spec=${url#https://unpkg.com/}
  if [[ $spec == @* ]]; then package=${spec%%/*}/$(echo "$spec" | cut -d/ -f2); file=${spec#*/*/}; else package=${spec%%/*}; file=${spec#*/}; fi
  name=${package%@*}; version=${package##*@}
  tarball="$work/${name//\//-}-$version"
  if [ ! -d "$tarball" ]; then
    mkdir -p "$tarball"
    (cd "$work" && npm pack --silent "$name@$version" >/dev/null)
    tar -xzf "$work/$(echo "${name#@}" | tr / -)-$version.tgz" -C "$tarball"
  fi
  mkdir -p "$out/$package/$(dirname "$file")"
  cp "$tarball/package/$file" "$out/$package/$file"
  for licence in LICENSE LICENSE.md LICENSE.txt license; do
    [ -f "$tarball/package/$licence" ] && cp "$tarball/package/$licence" "$out/$package/LICENSE" && break
  done
  echo "$package/$file"
done
