#!/usr/bin/env bash
# Golden checksums of --deterministic (README, "Deterministic training"):
# short runs on the synthetic dataset must end with the state_crc32 values
# in golden_deterministic.txt, on any machine, any CPU type and any rank
# count. They pin OpenBLAS's Haswell kernel (what a --deterministic train
# does when the environment sets none); the same binary then adds the same
# floats in the same order on AMD EPYC and Intel Xeon, whose other kernels
# differ. A mismatch means the arithmetic changed: a code change that alters
# the math (then refresh the file, see below, and say why in the commit), or
# a different OpenBLAS/glibc/compiler build. Skipped where the CPU lacks
# AVX2+FMA (the Haswell kernel cannot run).
#
# Refresh: MPITRAIN_GOLDEN_WRITE=1 ctest -R e2e_golden, which rewrites
# golden_deterministic.txt with this machine's values.
source "$(dirname "$0")/lib.sh"
e2e_init "$@"
GOLDEN="$(dirname "$0")/golden_deterministic.txt"

if ! grep -qw avx2 /proc/cpuinfo || ! grep -qw fma /proc/cpuinfo; then
  echo "SKIP: this CPU has no AVX2+FMA, so the pinned Haswell kernel cannot run"
  e2e_finish
fi
export OPENBLAS_CORETYPE=Haswell  # what --deterministic pins; explicit, so a preset value does not change it

MLP="$WORK/mlp.h5" IMG="$WORK/img.h5"
"$MAKE_DS" good "$MLP" 800 16 || { echo "FATAL: make_test_dataset failed"; exit 1; }
"$MAKE_DS" good "$IMG" 320 64 || { echo "FATAL: make_test_dataset failed"; exit 1; }
COMMON=(--progress none --deterministic --deterministic-unit 8 --momentum 0.9 --lr-scaling none --seed 3)
declare -A ARGS=(
  [mlp]="--data $MLP --model 16-32-16-4 --global-batch 40 --epochs 4 --lr 0.01"
  [cnn]="--data $IMG --model 1x8x8,conv3x3:8,bn,relu,conv3x3:4,relu,maxpool2,dropout:0.25,dense:4 --global-batch 36 --epochs 3 --lr 0.02"
)
crc_of() { h5dump -a /state_crc32 "$1" 2>/dev/null | awk '/\(0\):/ { print $2 }'; }
golden_of() { awk -v k="$1" '$1 == k { print $2 }' "$GOLDEN"; }

declare -A GOT
for name in mlp cnn; do
  for np in 1 3; do
    begin_case "$name on $np rank(s) ends at the golden state_crc32"
    # The model spec travels without spaces (commas for the CNN's layers). Its
    # second conv (8 input channels) runs Winograd: the golden covers its
    # transforms' clones on every CI machine's instruction set.
    read -r -a extra <<<"${ARGS[$name]}"
    for i in "${!extra[@]}"; do extra[$i]=${extra[$i]//,/ }; done
    mpi_run "$np" 60 "$MPITRAIN" train "${extra[@]}" "${COMMON[@]}" --checkpoint-dir "$WORK/$name-$np" \
      --metrics "$WORK/$name-$np.jsonl"
    expect_rc 0
    expect_stdout "OpenBLAS kernels: Haswell"
    crc=$(crc_of "$WORK/$name-$np/final.h5")
    GOT[$name]=$crc
    want=$(golden_of "$name")
    if [ "${MPITRAIN_GOLDEN_WRITE:-0}" = 1 ]; then
      echo "  $name: $crc (to be written)"
    else
      check "state_crc32 $crc == golden $want (lscpu: $(lscpu | sed -n 's/^Model name: *//p'))" test "$crc" = "$want"
    fi
  done
done

if [ "${MPITRAIN_GOLDEN_WRITE:-0}" = 1 ]; then
  {
    sed -n '/^#/p' "$GOLDEN"
    for name in mlp cnn; do echo "$name ${GOT[$name]}"; done
  } > "$GOLDEN.new" && mv "$GOLDEN.new" "$GOLDEN"
  echo "wrote $GOLDEN"
fi
e2e_finish
