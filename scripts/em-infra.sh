#!/usr/bin/env bash
# Runs em-infra from the repository root, building the release binary first when it is missing or
# older than its sources. The other scripts are one-line entry points onto this one.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin="$root/target/release/em-infra"
if [ ! -x "$bin" ] || [ -n "$(find "$root/crates" "$root/Cargo.toml" "$root/Cargo.lock" -newer "$bin" -print -quit)" ]; then
  if ! command -v cargo >/dev/null; then
    echo "em-infra: cargo (Rust ≥ 1.89) is needed to build em-infra: install it with rustup:" >&2
    echo "  curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh   (Debian/Ubuntu: sudo apt install curl build-essential first)" >&2
    exit 3
  fi
  cargo build --release --quiet --manifest-path "$root/Cargo.toml" -p em-infra
fi
cd "$root"
exec "$bin" "$@"
