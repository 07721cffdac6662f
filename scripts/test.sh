#!/usr/bin/env bash
# The one test command (README, .ci/run): installs what the tests need through the project's own
# files, then runs every quality gate and every test. Safe to rerun; installs are skipped when done.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

step() { printf '\n== %s\n' "$*"; }

step "system packages"
debs=(shellcheck mmdebstrap systemd-container iproute2 openssh-client python3-venv zsh fish groff-base gnupg)
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${debs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  echo "ok: ${debs[*]}"
else
  echo "not root: skipping apt (the lab tests will skip; install ${debs[*]} yourself)"
fi

step "python tools (.venv, pinned in requirements-dev.txt and the runtime pins it includes)"
stamp=.venv/.requirements.sha256
want=$(cat requirements-dev.txt requirements-runtime.txt | sha256sum | cut -d' ' -f1)
if [ ! -x .venv/bin/ansible-playbook ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements-dev.txt
  echo "$want" > "$stamp"
fi
export PATH="$root/.venv/bin:$PATH"
ansible-playbook --version | sed -n 1p

command -v terraform >/dev/null || { echo "terraform is not on PATH: install Terraform >= 1.9" >&2; exit 1; }

step "gate: cargo fmt"
cargo fmt --all --check
step "gate: cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "gate: terraform fmt"
terraform fmt -check -recursive terraform tests/fixtures
step "gate: shellcheck (every tracked shell file)"
mapfile -t shells < <(git ls-files '*.sh' .ci/run)
shellcheck "${shells[@]}"
step "gate: yamllint"
yamllint --strict .
step "gate: ansible-lint (production profile, offline)"
ansible-lint --offline

step "terraform test (provider-free topology module)"
terraform -chdir=terraform/modules/topology init -input=false -no-color >/dev/null
terraform -chdir=terraform/modules/topology test -no-color

step "cargo test (unit, CLI, terraform, ansible and lab tests)"
cargo build --workspace --locked
cargo test --workspace --locked -- --test-threads=2
