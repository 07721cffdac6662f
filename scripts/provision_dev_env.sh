#!/usr/bin/env bash
# One command to a verified cluster: `em-infra up` with any of its flags.
exec "$(dirname "$0")/em-infra.sh" up "$@"
