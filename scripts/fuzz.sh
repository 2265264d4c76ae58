#!/usr/bin/env bash
# Builds the libFuzzer targets with Debian's clang and fuzzes one of them
# (docs/fuzzing.md):
#   scripts/fuzz.sh TARGET [SECONDS]     TARGET: fuzz_dataset | fuzz_checkpoint | fuzz_config | fuzz_model_spec
# The build goes to build-fuzz/ (or $MPITRAIN_FUZZ_BUILD); the committed seeds
# (tests/fuzz/corpus/TARGET) are copied into a growing corpus there
# (build-fuzz/corpus/TARGET, kept between runs), crashes and slow inputs go
# to build-fuzz/artifacts/TARGET/. One worker, niced: the machine is shared.
# Extra libFuzzer flags: MPITRAIN_FUZZ_FLAGS="-max_len=4096 ...".
# Not part of CI (clang is not among scripts/setup.sh's packages).
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: scripts/fuzz.sh TARGET [SECONDS]}
seconds=${2:-600}
case "$target" in
  fuzz_dataset|fuzz_checkpoint|fuzz_config|fuzz_model_spec) ;;
  *) echo "fuzz.sh: unknown target '$target' (fuzz_dataset, fuzz_checkpoint, fuzz_config, fuzz_model_spec)" >&2; exit 2 ;;
esac
command -v clang++ >/dev/null || { echo "fuzz.sh: needs clang (apt-get install clang libclang-rt-14-dev)" >&2; exit 2; }
build=${MPITRAIN_FUZZ_BUILD:-$PWD/build-fuzz}
CC=clang CXX=clang++ cmake -S . -B "$build" -DMPITRAIN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build" -j"$(nproc)" --target "$target" >/dev/null
corpus=$build/corpus/$target artifacts=$build/artifacts/$target
mkdir -p "$corpus" "$artifacts"
for seeds in tests/fuzz/corpus/"$target" tests/fuzz/regressions/"$target"; do
  [ -d "$seeds" ] && find "$seeds" -maxdepth 1 -type f -exec cp -n {} "$corpus"/ \;
done
source scripts/mpi-env.sh
# Open MPI and libhdf5 keep memory until exit: leaks are not what is hunted here.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1} UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
log=$build/$target.log
echo "fuzz.sh: $target for $seconds s, corpus $corpus, artifacts $artifacts, log $log"
set +e
nice -n 10 "$build/tests/fuzz/$target" -workers=1 -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
  -artifact_prefix="$artifacts/" -print_final_stats=1 ${MPITRAIN_FUZZ_FLAGS:-} "$corpus" >"$log" 2>&1
rc=$?
set -e
# The last status line (cov: edges, ft: features, corp: corpus) and the final stats.
grep -E '^#[0-9]+' "$log" | tail -1
grep -E '^stat::(number_of_executed_units|average_exec_per_sec|peak_rss_mb)' "$log"
echo "corpus: $(ls "$corpus" | wc -l) files, $(du -sh "$corpus" | cut -f1)"
if [ "$rc" -ne 0 ]; then
  echo "fuzz.sh: $target stopped with a finding (exit $rc); see $log and $artifacts" >&2
  grep -E 'ERROR|SUMMARY|runtime error|Test unit written' "$log" | head -5 >&2
fi
exit "$rc"
