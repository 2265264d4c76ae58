#!/usr/bin/env bash
# Every mistake a user can make on the command line, in a config file or in
# the data file must (CONVENTIONS.md rule 7): end every rank with a non-zero
# exit code (no hang), be found before training starts (nothing on stdout, no
# metrics file), and be reported once, by rank 0, as one "mpitrain: error:"
# line that says what to change.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
e2e_init "$@"

ROWS=512  # train rows of the generated files (test: ROWS/4); 16 features, 4 classes
for kind in good no-train-x row-mismatch bad-label negative-label no-num-classes x-float64 test-width \
  empty-train zero-std scale-array classes-array scale-text unwritten-rows; do
  "$MAKE_DS" "$kind" "$WORK/$kind.h5" "$ROWS" 16 || { echo "FATAL: make_test_dataset $kind failed"; exit 1; }
done
echo "this is a text file, not HDF5" >"$WORK/notes.txt"
mkdir -p "$WORK/a-directory"
printf 'model = 16-32-4\nbogus-key = 3\n' >"$WORK/unknown-key.ini"
printf 'lr = abc\n' >"$WORK/bad-value.ini"

GOOD="$WORK/good.h5"
TIMEOUT_S=60  # per command; a failing run takes ~2-3 s (mostly mpiexec tearing the job down)
FAST_S=25     # "well within the timeout": a rank left waiting in a collective would hit the timeout

CASE_IDS=()
# bad_case ID DESCRIPTION PHRASE ARGS...: runs `mpiexec -n 2 mpitrain train
# ARGS... --metrics <own dir>/m.json` (or $METRICS_PATH) in the background. PHRASE is the
# distinctive part of the expected error message.
bad_case() {
  local id=$1 desc=$2 phrase=$3
  shift 3
  bad_input_run "$id" "$desc" "$phrase" "$TIMEOUT_S" "$MPITRAIN" train "$@" \
    --metrics "${METRICS_PATH:-$(run_dir "$id")/m.json}"
}

M=(--model 16-32-4 --epochs 1 --global-batch 64)  # valid for the generated files

# Positive control: the same command with nothing wrong succeeds and writes
# the metrics file, so "no metrics file" below means the error stopped it.
bg_mpi_run control 2 "$TIMEOUT_S" "$MPITRAIN" train --data "$GOOD" "${M[@]}" --metrics "$(run_dir control)/m.json"

bad_case missing-file "missing data file" "does not exist: pass an existing HDF5 file with --data" \
  --data "$WORK/nope.h5" "${M[@]}"
bad_case no-train-x "file without /train/x" "has no /train/x and /train/y" --data "$WORK/no-train-x.h5" "${M[@]}"
bad_case row-mismatch "x and y row counts differ" "/train/x has 512 rows but /train/y has 511" \
  --data "$WORK/row-mismatch.h5" "${M[@]}"
# make_test_dataset puts the bad label in the last row: the check must read every label.
bad_case bad-label "label >= num_classes" "row 511 has label 4, outside [0, num_classes=4)" \
  --data "$WORK/bad-label.h5" "${M[@]}"
bad_case negative-label "negative label" "row 0 has label -1, outside [0, num_classes=4)" \
  --data "$WORK/negative-label.h5" "${M[@]}"
# Crafted attributes (issue 17): these crashed the reader with exit 139 before.
bad_case scale-array "/train/x scale is an array of 4096" "attribute 'scale' of '$WORK/scale-array.h5' holds 4096 values, expected one number" \
  --data "$WORK/scale-array.h5" "${M[@]}"
bad_case classes-array "num_classes is an array of 4096" "attribute 'num_classes' of '$WORK/classes-array.h5' holds 4096 values" \
  --data "$WORK/classes-array.h5" "${M[@]}"
bad_case scale-text "/train/x scale is text" "attribute 'scale' of '$WORK/scale-text.h5' is text, expected one number" \
  --data "$WORK/scale-text.h5" "${M[@]}"
# Issue 17: a few KB declaring 2^40 rows kept the trainer scanning labels for minutes.
bad_case unwritten-rows "/train/x declares 2^40 rows in unwritten chunks" \
  "/train/x declares 1099511627776 rows, but the file holds data for only 1 of its 268435456 chunks: the file is truncated" \
  --data "$WORK/unwritten-rows.h5" "${M[@]}"
bad_case epochs-overflow "--epochs beyond 2^53 steps (ran with no end before)" "is more than 2^53 steps: choose at most" \
  --data "$GOOD" --model 16-32-4 --epochs 9223372036854775807 --global-batch 64
touch "$WORK/a-file"
bad_case checkpoint-dir-file "--checkpoint-dir naming a file (trained an epoch, then MPI_ABORT before)" \
  "--checkpoint-dir '$WORK/a-file': '$WORK/a-file' is not a directory" \
  --data "$GOOD" "${M[@]}" --checkpoint-dir "$WORK/a-file"
bad_case too-much-memory "a model that needs more memory than a rank may use (std::bad_alloc, exit 3, before)" \
  "each rank needs at least 332.5 MB (parameters and gradients 16.8 MB" --data "$GOOD" --model 16-100000-4 --epochs 1 --global-batch 128 \
  --max-memory-mb 100
bad_case run-dir-newline "a line break in a value (would split its line in config.ini)" \
  "--run-dir contains the control character 0x0a at byte 7" --data "$GOOD" "${M[@]}" --run-dir $'runs/a\nmodel = 1-1'
bad_case max-memory-negative "--max-memory-mb -1" "--max-memory-mb must be >= 0" --data "$GOOD" "${M[@]}" --max-memory-mb -1
bad_case input-width "model input width does not match the data" "does not match the data's 16 features per row (16): start --model with 16" \
  --data "$GOOD" --model 15-32-4 --epochs 1 --global-batch 64
bad_case output-width "model output width does not match num_classes" "make the last layer of --model give 4" \
  --data "$GOOD" --model 16-32-3 --epochs 1 --global-batch 64
bad_case batch-0 "global batch 0" "--global-batch must be at least 1" \
  --data "$GOOD" --model 16-32-4 --epochs 1 --global-batch 0
bad_case batch-too-large "global batch larger than the training set" \
  "--global-batch 513 is larger than the training set (512 rows): choose at most 512" \
  --data "$GOOD" --model 16-32-4 --epochs 1 --global-batch 513
bad_case lr-0 "lr 0" "--lr must be a finite number > 0 (got 0)" --data "$GOOD" "${M[@]}" --lr 0
bad_case lr-neg "lr -1" "--lr must be a finite number > 0 (got -1)" --data "$GOOD" "${M[@]}" --lr -1
bad_case lr-nan "lr nan" "--lr must be a finite number > 0 (got nan)" --data "$GOOD" "${M[@]}" --lr nan
bad_case lr-abc "lr abc (not a number)" "the argument ('abc') for option '--lr' is invalid" \
  --data "$GOOD" "${M[@]}" --lr abc
bad_case epochs-0 "epochs 0" "--epochs must be at least 1" --data "$GOOD" --model 16-32-4 --epochs 0
bad_case unknown-option "unknown option" "unrecognised option '--bogus'" --data "$GOOD" "${M[@]}" --bogus 1
# A stray word (say `--epochs 5 10`) must not be dropped silently: the user
# meant something by it. The message should name it.
bad_case stray-argument "stray positional argument" "unexpected argument 'stray'" --data "$GOOD" "${M[@]}" stray
bad_case config-missing "config file: nonexistent path" "cannot read config file '$WORK/nope.ini'" \
  --data "$GOOD" "${M[@]}" --config "$WORK/nope.ini"
bad_case config-directory "config file: a directory" "cannot read config file '$WORK/a-directory'" \
  --data "$GOOD" "${M[@]}" --config "$WORK/a-directory"
bad_case config-unknown-key "config file: unknown key" "unrecognised option 'bogus-key'" \
  --data "$GOOD" --epochs 1 --config "$WORK/unknown-key.ini"
bad_case config-bad-value "config file: lr = abc" "the argument ('abc') for option 'lr' is invalid" \
  --data "$GOOD" "${M[@]}" --config "$WORK/bad-value.ini"
bad_case not-hdf5 "data file is a text file" "is not an HDF5 file" --data "$WORK/notes.txt" "${M[@]}"
bad_case data-directory "data path is a directory" "is a directory, not an HDF5 file" \
  --data "$WORK/a-directory" "${M[@]}"
bad_case no-num-classes "class ids without num_classes" "class labels need a root attribute num_classes > 0" \
  --data "$WORK/no-num-classes.h5" "${M[@]}"
bad_case x-float64 "x stored as float64" "/train/x is float64: store it as uint8 or float32" --data "$WORK/x-float64.h5" "${M[@]}"
bad_case test-width "test split wider than train" "every split needs the same widths" \
  --data "$WORK/test-width.h5" "${M[@]}"
bad_case empty-train "empty training split" "/train has no rows" --data "$WORK/empty-train.h5" "${M[@]}"
bad_case zero-std "x attribute std = 0" "std is 0.000000: it must be finite and > 0" --data "$WORK/zero-std.h5" "${M[@]}"
bad_case no-val-split "--eval-split val on a file without /val" "has no /val split" \
  --data "$GOOD" "${M[@]}" --eval-split val
# The metrics writer creates missing parent directories, so make the path
# impossible instead: an existing directory (root ignores permissions).
METRICS_PATH="$WORK/a-directory" \
  bad_case metrics-is-directory "--metrics names a directory" "choose a writable path for --metrics" \
  --data "$GOOD" "${M[@]}"
# Rank 0 opening the metrics file for writing would truncate the data file
# the ranks are reading: the clash must be refused and the data kept.
cp "$GOOD" "$WORK/victim.h5"
VICTIM_SUM=$(cksum <"$WORK/victim.h5")
METRICS_PATH="$WORK/victim.h5" \
  bad_case metrics-is-data "--metrics names the --data file" "--metrics" --data "$WORK/victim.h5" "${M[@]}"
bad_case bad-model-spec "unparsable --model" "bad --model '16-x-4'" --data "$GOOD" --model 16-x-4 --epochs 1
bg_wait

begin_case "positive control: the same options without the mistake"
use_run control
expect_rc 0
expect_file "$WORK/runs/control/m.json"

check_bad_input_runs "$FAST_S"

begin_case "--metrics names the --data file: the data file is unchanged"
check "data file unchanged" test "$(cksum <"$WORK/victim.h5")" = "$VICTIM_SUM"

begin_case "mpitrain train --help"
run_cmd 30 "$MPITRAIN" train --help
expect_rc 0
expect_stdout "--global-batch"
expect_stdout "--lr"
check "nothing on stderr" test ! -s "$ERR" || show_output

begin_case "mpitrain train --help under mpiexec -n 2 prints the help once"
mpi_run 2 30 "$MPITRAIN" train --help
expect_rc 0
expect_count "$OUT" "--global-batch" 1

begin_case "mpitrain with no arguments"
run_cmd 30 "$MPITRAIN"
expect_failure
expect_stderr "usage: mpitrain <command>"

begin_case "mpitrain with an unknown command"
run_cmd 30 "$MPITRAIN" frobnicate
expect_failure
expect_stderr "unknown command 'frobnicate'"
expect_count "$ERR" "mpitrain: error:" 1

e2e_finish
