#!/usr/bin/env bash
# Runs em-infra from the repository root, building the release binary first when it is missing or
# older than its sources. The other scripts are one-line entry points onto this one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/em-infra"
if [ ! -x "$bin" ] || [ -n "$(find "$root/crates/em-infra" "$root/Cargo.toml" -newer "$bin" -print -quit)" ]; then
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p em-infra
fi
cd "$root"
exec "$bin" "$@"
