#!/usr/bin/env bash
# --deterministic end to end (placeholder, being written).
source "$(dirname "$0")/lib.sh"
e2e_init "$@"
e2e_finish
