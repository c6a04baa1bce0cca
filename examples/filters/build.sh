#!/usr/bin/env bash
# Builds the example Proxy-Wasm filters for wasm32-wasip1 and copies each .wasm into
# crates/compute/fixtures/ (committed: the tests use those, CI may lack the target).
# Needs: rustup target add wasm32-wasip1
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}/filters"
for dir in "$here"/*/; do
  [ -f "$dir/Cargo.toml" ] || continue
  name="$(basename "$dir")"
  echo "building $name"
  (cd "$dir" && CARGO_TARGET_DIR="$target" cargo build --release --target wasm32-wasip1)
  out="$target/wasm32-wasip1/release/${name//-/_}.wasm"
  cp "$out" "$root/crates/compute/fixtures/${name//-/_}.wasm"
  echo "wrote crates/compute/fixtures/${name//-/_}.wasm ($(stat -c %s "$out") bytes)"
done
