#!/usr/bin/env bash
# Packs an already built shardex-executor binary into the tarball a Mesos agent fetches:
#   <out-dir>/shardex-executor-<version>-<target>.tar.gz  (+ .sha256)
# The archive holds exactly one file, `shardex-executor`, at its root, so after the fetcher
# extracts it into the sandbox the executor command is always `./shardex-executor`.
# The archive is reproducible: fixed owner, mode, order and timestamps.
#
# usage: make-executor-tarball.sh <executor-binary> <version> <target> <out-dir>
set -euo pipefail

if [ $# -ne 4 ]; then
  echo "usage: $0 <executor-binary> <version> <target> <out-dir>" >&2
  exit 2
fi
binary=$1 version=$2 target=$3 out=$4

[ -x "$binary" ] || { echo "$0: $binary is not an executable file" >&2; exit 1; }
case "$version$target" in
  */*|*' '*) echo "$0: version and target must not contain '/' or spaces" >&2; exit 1 ;;
esac

# Only the C library and its companions may be needed: the executor must start on any agent.
if command -v ldd >/dev/null 2>&1; then
  extra=$(ldd "$binary" 2>/dev/null | awk '{print $1}' \
    | grep -v -E '^(linux-vdso\.so|/lib64/ld-linux|/lib/ld-linux|libc\.so|libm\.so|libgcc_s\.so|libdl\.so|libpthread\.so|librt\.so)' || true)
  if [ -n "$extra" ]; then
    echo "$0: $binary links libraries an agent may not have: $extra" >&2
    exit 1
  fi
fi

mkdir -p "$out"
name="shardex-executor-$version-$target.tar.gz"
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
install -m 0755 "$binary" "$staging/shardex-executor"
tar --create --gzip --file "$out/$name" --directory "$staging" \
  --owner=0 --group=0 --numeric-owner --mtime='@0' --sort=name --mode='u=rwx,go=rx' \
  shardex-executor
(cd "$out" && sha256sum "$name" > "$name.sha256")
echo "$out/$name"
