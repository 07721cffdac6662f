#!/usr/bin/env bash
# Tear the cluster down: `em-infra down` with any of its flags (e.g. --yes).
exec "$(dirname "$0")/em-infra.sh" down "$@"
