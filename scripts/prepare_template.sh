#!/usr/bin/env bash
# Template preparation only: `em-infra up --prepare-only` with any further flags.
exec "$(dirname "$0")/em-infra.sh" up --prepare-only "$@"
