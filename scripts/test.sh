#!/usr/bin/env bash
# The test command, from a fresh machine: install what is missing, build, and
# run the whole suite (unit, MPI at 1-4 ranks, end-to-end) with ctest, then
# again under AddressSanitizer + UndefinedBehaviorSanitizer (test-sanitize.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
source scripts/mpi-env.sh
(cd build && ctest --output-on-failure "$@")
bash scripts/test-sanitize.sh "$@"
