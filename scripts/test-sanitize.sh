#!/usr/bin/env bash
# The sanitizer part of the test command: builds mpitrain and its tests with
# AddressSanitizer + UndefinedBehaviorSanitizer into build-asan/ and runs the
# suite under them: the unit tests, the MPI tests and every end-to-end test
# (bad input, crafted files, converters, checkpoints, inspect/evaluate). Any
# finding aborts the process, which fails the test. Left out: the counting
# operator new of alloc_tests (it replaces the allocator ASan needs), and
# the cluster and study tests, which exercise nothing file-reading that the
# others do not. scripts/test.sh runs it after the main suite.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMPITRAIN_SANITIZE=ON >/dev/null
cmake --build build-asan -j"$(nproc)"
source scripts/mpi-env.sh
# Open MPI's own allocations are not ours to report; everything else is.
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The fault campaign's corpora (damaged files, bad configs) run here too; its
# kill families test the launcher and resume timing, which the main pass
# covers, and would only add minutes under ASan.
export FAULTS_KILLS=0 FAULTS_WRITE_KILLS=0
cd build-asan
ctest --output-on-failure -E '^(alloc_tests|cluster_|study_)' "$@"
