#!/usr/bin/env bash
# Builds release binaries and plugins, then every artifact an operator deploys, under dist/:
#   shardex-executor-<version>-<target>.tar.gz  the executor, for the Mesos fetcher (+ .sha256)
#   shardex-<version>-<target>.tar.gz           scheduler, standalone embedded cluster, example
#                                               configs and the systemd unit (+ .sha256)
#   demo-app-<version>.tar.gz                   the example job plugins in the app layout
#   SIZES.txt                                   binary and archive sizes
#
# usage: packaging/build-release.sh [out-dir]   (default: dist)
set -euo pipefail
cd "$(dirname "$0")/.."

out=${1:-dist}
version=$(sed -n '/^\[workspace\.package\]/,/^\[/ s/^version = "\(.*\)"/\1/p' Cargo.toml)
target=$(rustc -vV | sed -n 's/^host: //p')
[ -n "$version" ] && [ -n "$target" ] || { echo "$0: cannot read the version or target" >&2; exit 1; }

cargo build --release --workspace --locked
bin=target/release
mkdir -p "$out"

packaging/make-executor-tarball.sh "$bin/shardex-executor" "$version" "$target" "$out" >/dev/null
packaging/make-app-tarball.sh demo-app "$version" "$out" \
  "$bin/libhello_shards.so" "$bin/libstream_numbers.so" "$bin/libheartbeat.so" "$bin/libfaulty.so" \
  >/dev/null

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
mkdir -p "$staging/bin" "$staging/config" "$staging/systemd"
install -m 0755 "$bin/shardex-scheduler" "$bin/shardex-local" "$staging/bin/"
install -m 0644 packaging/config/*.toml "$staging/config/"
install -m 0644 packaging/systemd/shardex-scheduler.service "$staging/systemd/"
bundle="shardex-$version-$target.tar.gz"
tar --create --gzip --file "$out/$bundle" --directory "$staging" \
  --owner=0 --group=0 --numeric-owner --mtime='@0' --sort=name bin config systemd
(cd "$out" && sha256sum "$bundle" > "$bundle.sha256")

{
  echo "Shardex $version ($target), release profile"
  for file in "$bin/shardex-executor" "$bin/shardex-scheduler" "$bin/shardex-local" \
              "$bin/libhello_shards.so" "$out"/*.tar.gz; do
    printf '%-60s %10d bytes\n' "$(basename "$file")" "$(stat -c %s "$file")"
  done
} | tee "$out/SIZES.txt"
