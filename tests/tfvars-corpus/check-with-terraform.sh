#!/usr/bin/env bash
# Plans tests/fixtures/offline-env with every corpus file and checks that Terraform rejects it
# with exactly one error that names the file's `# expect:` variable: either our validation
# message (which starts with the variable name) or Terraform's type error ("var.<name>").
# Offline: the fixture has no providers. Usage: tests/tfvars-corpus/check-with-terraform.sh
set -euo pipefail

corpus="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
fixture="$(cd "$corpus/../fixtures/offline-env" && pwd)"

terraform -chdir="$fixture" init -input=false -no-color >/dev/null 2>&1 ||
  terraform -chdir="$fixture" init -input=false -no-color

failed=0
total=0
for file in "$corpus"/*.tfvars; do
  total=$((total + 1))
  name="$(basename "$file")"
  expect="$(sed -n '1s/^# expect: \([a-z_]*\)$/\1/p' "$file")"
  if [[ -z "$expect" ]]; then
    echo "FAIL $name: first line must be '# expect: <variable>'"
    failed=$((failed + 1))
    continue
  fi
  rc=0
  out="$(terraform -chdir="$fixture" plan -input=false -no-color -lock=false -var-file="$file" 2>&1)" || rc=$?
  errors="$(grep -c '^Error: ' <<<"$out" || true)"
  # Our messages start a line with the variable (gpu_workers[0] for GPU entries);
  # type errors say "not suitable for var.<name>".
  if [[ $rc -ne 0 && $errors -eq 1 ]] &&
    grep -Eq "^${expect}([ .\[]|$)|not suitable for var\.${expect} " <<<"$out"; then
    echo "ok   $name -> $expect"
  else
    echo "FAIL $name: expected one error naming $expect (exit $rc, $errors errors)"
    sed -n '/^Error: /,$p' <<<"$out" | sed 's/^/     /'
    failed=$((failed + 1))
  fi
done

rm -rf "$fixture/.terraform"
echo "$((total - failed))/$total corpus files rejected on the expected variable"
[[ $failed -eq 0 ]]
