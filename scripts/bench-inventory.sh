#!/usr/bin/env bash
# Benchmark the inventory path: `em-infra inventory --list` (release build) on generated states of
# 10, 100 and 1000 nodes, and `ansible-inventory --list` through the em_infra_state plugin vs. a
# static YAML inventory of the same hosts. Prints figures (median and min of several runs).
#
#   scripts/bench-inventory.sh [--sizes 10,100,1000] [--runs 15] [--ansible-runs 7]
#
# ansible-inventory comes from EM_INFRA_ANSIBLE_BIN_DIR, else <repo>/.venv/bin.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${EM_INFRA_ANSIBLE_BIN_DIR:-$repo/.venv/bin}"
python="$bin_dir/python3"
[[ -x "$python" ]] || python="python3"

cargo build --release --quiet --manifest-path "$repo/Cargo.toml" -p em-infra
exec "$python" "$repo/benches/inventory_bench.py" \
  --repo "$repo" --em-infra "$repo/target/release/em-infra" --ansible-bin-dir "$bin_dir" "$@"
