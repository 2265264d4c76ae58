#!/usr/bin/env bash
# `mpitrain inspect` and `mpitrain evaluate` on real files: a generated
# dataset, the checkpoints of a short 2-rank training run, a checkpoint with
# one flipped byte, and data that does not fit the checkpoint's model.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
e2e_init "$@"

N=500  # train rows; make_test_dataset adds a /test split of N/4 rows
"$MAKE_DS" good "$WORK/good.h5" "$N" 16 || { echo "FATAL: make_test_dataset good failed"; exit 1; }
"$MAKE_DS" good-f32 "$WORK/good-f32.h5" "$N" 16 || { echo "FATAL: make_test_dataset good-f32 failed"; exit 1; }
"$MAKE_DS" regression "$WORK/regression.h5" "$N" 16 || { echo "FATAL: make_test_dataset regression failed"; exit 1; }
"$MAKE_DS" good "$WORK/narrow.h5" "$N" 12 || { echo "FATAL: make_test_dataset good (12 features) failed"; exit 1; }
"$MAKE_DS" no-train-x "$WORK/no-train-x.h5" "$N" 16 || { echo "FATAL: make_test_dataset no-train-x failed"; exit 1; }
METRICS=""

# SEG lines of the form "  class counts: 0:a 1:b ..." as lists of ints, per split.
COUNTS="[[int(c.split(':')[1]) for c in s.split(':', 1)[1].split()] for s in SEG if s.startswith('  class counts:')]"
ROWS="[int(m.group(1)) for s in SEG if (m := re.match(r'split \w+: (\d+) rows', s))]"

# ---------------------------------------------------------------------------
begin_case "inspect a uint8 classification dataset"
run_cmd 30 "$MPITRAIN" inspect "$WORK/good.h5"
expect_rc 0
expect_count "$OUT" "split train: $N rows" 1
expect_count "$OUT" "split test: $((N / 4)) rows" 1
expect_count "$OUT" "x: [$N, 16] uint8, scale 0.00392157" 1
expect_count "$OUT" "y: [$N] int32" 1
expect_count "$OUT" "label range: 0 .. 3 (4 of 4 classes present)" 2
expect_stdout "num_classes: 4"
expect_stdout "source: make_test_dataset"
# Per-class counts add up to each split's rows, and every class occurs.
expect_py "$ROWS == [$N, $((N / 4))]" "[sum(c) for c in $COUNTS] == $ROWS" \
  "all(len(c) == 4 and min(c) > 0 for c in $COUNTS)"

begin_case "inspect a float32 dataset and a regression dataset"
run_cmd 30 "$MPITRAIN" inspect "$WORK/good-f32.h5"
expect_rc 0
expect_count "$OUT" "x: [$N, 16] float32, scale 1," 1
run_cmd 30 "$MPITRAIN" inspect "$WORK/regression.h5"
expect_rc 0
expect_stdout "num_classes: 0 (regression)"
expect_count "$OUT" "y: [$N, 1] float32" 1
expect_count "$OUT" "label range" 0

# ---------------------------------------------------------------------------
# A short run that writes checkpoints. tanh (not the default relu) so that
# evaluate must take the activation from the checkpoint's config; a small lr
# so the test accuracy is below 1 and a wrong model could not match it.
begin_case "2-rank training run writes checkpoints"
CK="$WORK/ck"
METRICS="$WORK/train.json"
B=64 STEPS=$(((N + 63) / 64))  # 8 steps per epoch
mpi_run 2 120 "$MPITRAIN" train --data "$WORK/good.h5" --model 16-32-4 --activation tanh --epochs 2 \
  --global-batch $B --lr 0.005 --lr-scaling none --metrics "$METRICS" --checkpoint-dir "$CK"
expect_rc 0
for f in ckpt-e0001.h5 ckpt-e0002.h5 final.h5 latest; do expect_file "$CK/$f"; done
expect_py "len(E) == 2" "0.3 < E[-1]['test_acc'] < 1"
METRICS=""
last_epoch() {  # last_epoch KEY: that value of the training run's last epoch line
  python3 -c "import json, sys; print([d for d in map(json.loads, open(sys.argv[1])) if d.get('type') == 'epoch'][-1][sys.argv[2]])" \
    "$WORK/train.json" "$1"
}
TEST_ACC=$(last_epoch test_acc)
TEST_LOSS=$(last_epoch test_loss)
echo "  last epoch: test_acc $TEST_ACC, test_loss $TEST_LOSS"

begin_case "inspect checkpoints: progress, shapes, world size, checksum OK"
run_cmd 30 "$MPITRAIN" inspect "$CK/ckpt-e0001.h5"
expect_rc 0
expect_count "$OUT" "progress: epoch 1 (epochs completed), step 0 " 1
expect_count "$OUT" "global step $STEPS, samples $N, global batch $B" 1
expect_count "$OUT" "world size: 2 ranks" 1
expect_count "$OUT" "checksum OK" 1
run_cmd 30 "$MPITRAIN" inspect "$CK/final.h5"
expect_rc 0
expect_count "$OUT" "progress: epoch 2 (epochs completed), step 0 " 1
expect_count "$OUT" "global step $((2 * STEPS)), samples $((2 * N)), global batch $B" 1
expect_count "$OUT" "model spec: 16-32-4" 1
expect_count "$OUT" "optimizer: sgd" 1
expect_count "$OUT" "world size: 2 ranks" 1
expect_count "$OUT" "data shape: 16 features, 4 classes, $N train rows" 1
expect_count "$OUT" "  dense0/W [16, 32]" 1
expect_count "$OUT" "  dense1/b [4]" 1
expect_count "$OUT" "  velocity/dense0/W [16, 32]" 1
expect_count "$OUT" "  activation = tanh" 1
expect_count "$OUT" "checksum OK" 1
expect_py "json.loads(next(s for s in SEG if s.startswith('last metrics: '))[14:])['test_acc'] == $TEST_ACC"

begin_case "inspect a checkpoint with one flipped parameter byte: checksum BAD, exit 1"
cp "$CK/final.h5" "$WORK/flipped.h5"
# The bytes of /params/dense1/W as stored (h5dump -b), found in the file and
# one bit of one float flipped: the HDF5 structure stays valid, the data not.
h5dump -d /params/dense1/W -b LE -o "$WORK/w.bin" "$WORK/flipped.h5" >/dev/null
check "flipped one bit inside /params/dense1/W" python3 - "$WORK/flipped.h5" "$WORK/w.bin" <<'PY'
import sys
data, w = bytearray(open(sys.argv[1], "rb").read()), open(sys.argv[2], "rb").read()
at = data.find(w)
if len(w) != 32 * 4 * 4 or at < 0 or data.find(w, at + 1) >= 0:
    sys.exit(1)
data[at + 4 * 17 + 1] ^= 0x10
open(sys.argv[1], "wb").write(data)
PY
run_cmd 30 "$MPITRAIN" inspect "$WORK/flipped.h5"
expect_rc 1
expect_count "$OUT" "checksum BAD" 1
expect_count "$OUT" "checksum OK" 0
expect_count "$OUT" "global step $((2 * STEPS))" 1  # the metadata is still shown

# ---------------------------------------------------------------------------
begin_case "evaluate final.h5 on 2 and 3 ranks: the last epoch's test accuracy and loss"
for np in 2 3; do
  mpi_run $np 60 "$MPITRAIN" evaluate --checkpoint "$CK/final.h5" --data "$WORK/good.h5" --json
  expect_rc 0
  expect_count "$OUT" "split test: loss " 1
  expect_count "$OUT" "$np rank(s)" 1
  expect_py "len(J := [json.loads(s) for s in SEG if s.startswith('{')]) == 1" \
    "J[0]['rows'] == $((N / 4)) and J[0]['ranks'] == $np and J[0]['split'] == 'test'" \
    "abs(J[0]['accuracy'] - $TEST_ACC) <= 1e-6" \
    "abs(J[0]['loss'] - $TEST_LOSS) <= 1e-6 * max(1, $TEST_LOSS)" \
    "abs(float(re.search(r'acc ([0-9.]+) \(125 rows\)', RAW).group(1)) - $TEST_ACC) <= 1e-6"
done

begin_case "evaluate the train split of a 1-epoch checkpoint"
mpi_run 2 60 "$MPITRAIN" evaluate --checkpoint "$CK/ckpt-e0001.h5" --data "$WORK/good.h5" --split train
expect_rc 0
expect_count "$OUT" "split train: loss " 1
expect_count "$OUT" "($N rows)" 1

# ---------------------------------------------------------------------------
begin_case "evaluate with data of another width: one error, exit 2, no hang"
mpi_run 2 60 "$MPITRAIN" evaluate --checkpoint "$CK/final.h5" --data "$WORK/narrow.h5"
expect_rc 2
expect_fast 30
expect_one_error_line "has 12 features per row, the model 16-32-4 takes 16"

begin_case "evaluate a corrupted checkpoint: one error, exit 2, no hang"
mpi_run 2 60 "$MPITRAIN" evaluate --checkpoint "$WORK/flipped.h5" --data "$WORK/good.h5"
expect_rc 2
expect_fast 30
expect_one_error_line "fails its checksum"
expect_count "$OUT" "split test" 0

begin_case "evaluate: missing checkpoint, missing option, missing split"
mpi_run 3 60 "$MPITRAIN" evaluate --checkpoint "$WORK/absent.h5" --data "$WORK/good.h5"
expect_rc 2
expect_one_error_line "absent.h5' does not exist"
mpi_run 2 60 "$MPITRAIN" evaluate --data "$WORK/good.h5"
expect_rc 2
expect_one_error_line "'--checkpoint' is required"
mpi_run 2 60 "$MPITRAIN" evaluate --checkpoint "$CK/final.h5" --data "$WORK/good.h5" --split val
expect_rc 2
expect_one_error_line "has no /val split"

# ---------------------------------------------------------------------------
begin_case "inspect refuses what is neither a checkpoint nor a dataset"
echo "not hdf5" >"$WORK/notes.txt"
run_cmd 30 "$MPITRAIN" inspect "$WORK/notes.txt"
expect_rc 2
expect_one_error_line "notes.txt' is not an HDF5 file"
run_cmd 30 "$MPITRAIN" inspect "$WORK/no-train-x.h5"
expect_rc 2
expect_one_error_line "is neither an mpitrain checkpoint"
run_cmd 30 "$MPITRAIN" inspect "$WORK/absent.h5"
expect_rc 2
expect_one_error_line "absent.h5' does not exist"
run_cmd 30 "$MPITRAIN" inspect
expect_rc 2
expect_stderr "missing FILE"

e2e_finish
