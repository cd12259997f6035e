#!/usr/bin/env bash
# Packs job plugins into an app tarball: the layout the scheduler's app URIs point at and the
# job configurations name plugins in.
#   <out-dir>/<app>-<version>.tar.gz (+ .sha256), holding
#     plugins/<file>.so   every plugin given
#     bootstrap           optional executable; nothing runs it unless the app's executor_command
#                         does, e.g. "./bootstrap && exec ./shardex-executor" (see README,
#                         "Packaging")
# The agent extracts it into the executor's sandbox, so a job's `plugin` is
# `plugins/<file>.so`.
#
# usage: make-app-tarball.sh <app> <version> <out-dir> [--bootstrap <file>] <plugin.so>...
set -euo pipefail

if [ $# -lt 4 ]; then
  echo "usage: $0 <app> <version> <out-dir> [--bootstrap <file>] <plugin.so>..." >&2
  exit 2
fi
app=$1 version=$2 out=$3
shift 3
bootstrap=
if [ "${1:-}" = "--bootstrap" ]; then
  bootstrap=$2
  shift 2
fi
[ $# -ge 1 ] || { echo "$0: no plugin given" >&2; exit 2; }

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/plugins"
for plugin in "$@"; do
  [ -f "$plugin" ] || { echo "$0: $plugin does not exist" >&2; exit 1; }
  install -m 0644 "$plugin" "$staging/plugins/$(basename "$plugin")"
done
if [ -n "$bootstrap" ]; then
  install -m 0755 "$bootstrap" "$staging/bootstrap"
fi

mkdir -p "$out"
name="$app-$version.tar.gz"
# Entries are named, never `.`: extracting a `./` entry would re-mode the sandbox itself.
entries=(plugins)
[ -n "$bootstrap" ] && entries+=(bootstrap)
tar --create --gzip --file "$out/$name" --directory "$staging" \
  --owner=0 --group=0 --numeric-owner --mtime='@0' --sort=name \
  --mode='u+rwX,go+rX,go-w' "${entries[@]}"
(cd "$out" && sha256sum "$name" > "$name.sha256")
echo "$out/$name"
