#!/usr/bin/env bash
# --deterministic end to end under mpiexec, on real files. The mode promises
# that the final weights, every metrics value but the timings, and every
# checkpoint's state_crc32 are bitwise the same for any rank count P, any
# --micro-batch, and every rerun. Each comparison below is exact equality:
#   1. an MLP, 312 steps: P = 1, 2, 3, 4 and a rerun at P = 3 give the same
#      state_crc32 in every checkpoint (epoch ends, step checkpoints,
#      final.h5) and the same metrics lines once the timing and rank-count
#      fields are dropped;
#   2. --micro-batch smaller than a shard (multiples of the unit at P = 1 and
#      P = 2, and one that is not a multiple at P = 1): the same as case 1;
#   3. a CNN with batch norm, dropout and crop+flip augmentation at the
#      default unit (32 rows) with a partial last unit in every step: P = 1,
#      2, 3, 4 and 8 (oversubscribed, 5 empty ranks) equal;
#   4. a batch schedule with global batches that are not a multiple of the
#      unit: P = 1 and P = 3 equal;
#   5. resume on another rank count, from a mid-epoch step checkpoint and
#      from a run stopped an epoch early: the uninterrupted run's final state;
#   6. `mpitrain evaluate` of deterministic checkpoints on 1 and 3 (MLP) or
#      1 and 4 (CNN) ranks: the same loss and accuracy, bit for bit;
#   7. contrast: without --deterministic, P = 1 and P = 2 end with different
#      weights (so the equalities above are not a test that cannot fail);
#   8. bad options (unit 0, a micro-batch below a unit, --threads 2, too many
#      units in --global-batch or --batch-schedule) and resuming across the
#      mode or the unit: one "mpitrain: error:" line from rank 0, non-zero
#      exit, nothing trained or written.
# "Equal weights" is the state_crc32 root attribute of a checkpoint (CRC-32
# over parameters and optimizer state), read with h5dump.
here=$(cd "$(dirname "$0")" && pwd)
# Every run here is short (well under a second alone) or a refusal that sits
# idle while mpiexec tears the job down: a few at a time on 2 cores.
: "${E2E_JOBS:=4}"
source "$here/lib.sh"
e2e_init "$@"

for tool in h5dump /usr/bin/python3; do
  command -v "$tool" >/dev/null || { echo "FATAL: $tool is needed"; exit 1; }
done
# Debian's python3 (standard library only) for expect_py and the comparisons,
# also avoiding a version manager's shim (~1 s per start).
mkdir -p "$WORK/bin" && ln -sf /usr/bin/python3 "$WORK/bin/python3" && PATH="$WORK/bin:$PATH"

MLP="$WORK/mlp.h5" # 512 train rows, 128 test rows, 16 features, 4 classes
IMG="$WORK/img.h5" # 320 train rows, 80 test rows, 64 features read as 1x8x8 images
BIG="$WORK/big.h5" # 33000 train rows: more rows than 32768 units of 1 row
"$MAKE_DS" good "$MLP" 512 16 || { echo "FATAL: make_test_dataset good (mlp) failed"; exit 1; }
"$MAKE_DS" good "$IMG" 320 64 || { echo "FATAL: make_test_dataset good (img) failed"; exit 1; }
"$MAKE_DS" good "$BIG" 33000 16 || { echo "FATAL: make_test_dataset good (big) failed"; exit 1; }

# The MLP: B = 40 in units of 8 rows is 5 units per step, split 5 / 3+2 /
# 2+2+1 / 2+1+1+1 over P = 1..4; 13 steps per epoch (the last one 32 rows),
# 24 epochs = 312 steps. Step checkpoints every 50 global steps: global step
# 50 is epoch 4 step 11.
MLP_EPOCHS=24
MLP_COMMON=("$MPITRAIN" train --data "$MLP" --model 16-32-4 --global-batch 40 --lr 0.05 --momentum 0.9
  --lr-scaling none --seed 3 --progress none --keep-last 0)
DET=(--deterministic --deterministic-unit 8)
MLP_DET=("${MLP_COMMON[@]}" "${DET[@]}")
# The CNN: the default unit of 32 rows; B = 80 is units of 32, 32 and 16 rows
# (4 steps per epoch), so P = 4 has an empty rank and P = 8 five. The second
# convolution runs Winograd (its blocks of rows counted within each unit).
CNN_SPEC="1x8x8 conv3x3:4 bn relu conv3x3:4,algo=winograd relu maxpool2 dense:16 relu dropout:0.3 dense:4"
CNN_DET=("$MPITRAIN" train --data "$IMG" --model "$CNN_SPEC" --augment crop+flip --augment-pad 1 --deterministic
  --global-batch 80 --epochs 6 --lr 0.05 --momentum 0.9 --lr-scaling none --seed 3 --progress none --keep-last 0)

_differ_nonempty() { [ -n "$1" ] && [ -n "$2" ] && [ "$1" != "$2" ]; }
# expect_same_state A B: equal state_crc32 (bitwise equal weights and optimizer state).
expect_same_state() {
  local a b
  a=$(state_crc "$1")
  b=$(state_crc "$2")
  check "state_crc32 of ${1#"$WORK"/} ($a) == ${2#"$WORK"/} ($b)" _same_nonempty "$a" "$b" || show_output
}

# all_crcs DIR: "file crc" for every checkpoint in DIR, sorted by name.
all_crcs() {
  local f
  for f in "$1"/ckpt-*.h5 "$1"/final.h5; do
    [ -e "$f" ] && echo "$(basename "$f") $(state_crc "$f")"
  done | sort
}
# expect_same_checkpoints N REF_DIR DIR...: every DIR holds the same N
# checkpoint files as REF_DIR, each with REF_DIR's state_crc32.
expect_same_checkpoints() {
  local n=$1 ref=$2 d ref_list list
  shift 2
  ref_list=$(all_crcs "$ref")
  check "${ref#"$WORK"/} holds $n checkpoints, each with a state_crc32 (found $(grep -c -E ' [0-9]+$' <<<"$ref_list"))" \
    [ "$(grep -c -E ' [0-9]+$' <<<"$ref_list")" -eq "$n" ]
  for d in "$@"; do
    list=$(all_crcs "$d")
    check "every checkpoint of ${d#"$WORK"/} has the state_crc32 of ${ref#"$WORK"/}'s" \
      _same_nonempty "$ref_list" "$list" ||
      diff <(echo "$ref_list") <(echo "$list") | sed 's/^/  | /' | head -20
  done
}

# The epoch lines of stdout without the timing fields ("0.0s  1234 samples/s").
epoch_lines() { grep '^epoch ' "$1" | sed -E 's/  [0-9.]+s  [0-9]+ samples\/s//'; }
expect_same_epoch_lines() {
  local a b
  a=$(epoch_lines "$1")
  b=$(epoch_lines "$2")
  check "stdout epoch lines (timings aside) of ${2#"$WORK"/} equal ${1#"$WORK"/}'s ($(wc -l <<<"$a") lines)" \
    _same_nonempty "$a" "$b" ||
    diff <(echo "$a") <(echo "$b") | sed 's/^/  | /' | head -20
}

# cmp_metrics MODE REF OTHER...: the metrics files (JSON lines) agree with
# REF's exactly once timing and rank-count fields are dropped.
#   full:    the header's run-describing fields, every epoch line, the
#            checkpoint lines (epoch, step, file name) and the summary, in order
#   epochs:  the epoch lines and the summary (runs that checkpoint differently)
#   resumed: each epoch line of OTHER equals REF's line of the same epoch, and
#            OTHER ends at REF's last epoch
CMP="$WORK/cmp_metrics.py"
cat >"$CMP" <<'PY'
import json, os, sys

mode, ref_path, others = sys.argv[1], sys.argv[2], sys.argv[3:]
# Timings (seconds, rates, the time split, the hidden-comm fraction) and what
# depends on the rank count by design (ranks, memory of one rank, paths).
def timing(key):
    return (key.startswith("time_") or key.endswith("time_s") or
            key in ("samples_per_s", "comm_hidden_fraction", "peak_rss_mb", "seconds", "ranks"))
HEADER_KEYS = ("model", "params", "flops_per_sample", "train_rows", "val_rows", "steps_per_epoch", "total_steps",
               "optimizer", "base_lr", "effective_lr", "warmup_steps", "lr_plan", "deterministic",
               "deterministic_unit")

def load(path):
    with open(path) as f:
        return [json.loads(s) for s in f if s.strip()]

def normal(d):
    t = d.get("type")
    if t == "header":
        return {k: d.get(k) for k in HEADER_KEYS}
    if t == "checkpoint":
        return {"type": t, "epoch": d["epoch"], "step": d["step"], "file": os.path.basename(d["file"])}
    return {k: v for k, v in d.items() if not timing(k)}

def kept(lines):
    types = ("header", "epoch", "checkpoint", "summary") if mode == "full" else ("epoch", "summary")
    if mode == "resumed":
        types = ("epoch",)
    return [normal(d) for d in lines if d.get("type") in types]

ref = load(ref_path)
epochs = [d for d in ref if d.get("type") == "epoch"]
# The comparison must mean something: the statistics are there and not all null.
need = ("train_loss", "train_acc", "test_loss", "test_acc", "lr", "global_batch", "noise_scale", "noise_g2",
        "noise_trace_s")
ok = bool(epochs) and all(k in normal(epochs[0]) for k in need) and \
     any(d.get("noise_scale") is not None for d in epochs)
if not ok:
    print(f"reference {ref_path}: no epoch lines, or one of {need} missing, or noise_scale null throughout")
    sys.exit(1)
ref_kept = kept(ref)
for path in others:
    try:
        got = kept(load(path))
    except Exception as e:
        print(f"{path}: cannot load: {e}")
        ok = False
        continue
    if mode == "resumed":
        by_epoch = {d["epoch"]: d for d in ref_kept}
        bad = [d for d in got if by_epoch.get(d["epoch"]) != d]
        if not got or bad or got[-1]["epoch"] != ref_kept[-1]["epoch"]:
            ok = False
            print(f"{os.path.basename(path)}: epochs {[d['epoch'] for d in got]}, differing: {bad[:2]}")
        continue
    if got != ref_kept:
        ok = False
        diffs = [(a, b) for a, b in zip(ref_kept, got) if a != b]
        print(f"{os.path.basename(path)}: {len(got)} lines vs {len(ref_kept)}; first difference:")
        if diffs:
            a, b = diffs[0]
            print("  reference:", {k: a.get(k) for k in a if a.get(k) != b.get(k)})
            print("  this run: ", {k: b.get(k) for k in b if a.get(k) != b.get(k)})
print(f"compared {len(ref_kept)} lines ({mode}); epoch line fields: {sorted(normal(epochs[0]))}")
sys.exit(0 if ok else 1)
PY
expect_same_metrics() {
  local mode=$1 ref=$2
  shift 2
  check "metrics ($mode, timings and ranks aside) of ${*#"$WORK"/} equal ${ref#"$WORK"/}" \
    python3 "$CMP" "$mode" "$ref" "$@" || show_output
}

# mlp_run ID NP ARGS...: the deterministic MLP in run directory ID, with its
# own checkpoint directory and metrics file.
mlp_run() {
  local id=$1 np=$2 dir
  shift 2
  dir=$(run_dir "$id")
  bg_mpi_run "$id" "$np" 60 "${MLP_DET[@]}" --checkpoint-dir "$dir/ck" --metrics "$dir/m.json" "$@"
}
cnn_run() {
  local id=$1 np=$2 dir
  shift 2
  dir=$(run_dir "$id")
  bg_mpi_run "$id" "$np" 60 "${CNN_DET[@]}" --checkpoint-dir "$dir/ck" --metrics "$dir/m.json" "$@"
}
R() { echo "$WORK/runs/$1"; }

CASE_IDS=()
# bad_case ID DESCRIPTION PHRASE ARGS...: `mpiexec -n 2 mpitrain train
# ARGS...` with its own metrics file and checkpoint directory.
bad_case() {
  local id=$1 desc=$2 phrase=$3 dir
  shift 3
  dir=$(run_dir "$id")
  bad_input_run "$id" "$desc" "$phrase" 60 "$MPITRAIN" train "$@" --metrics "$dir/m.json" \
    --checkpoint-dir "$dir/ck"
}

# ---------------------------------------------------------------------------
# First wave: every training run, and the refusals that need no checkpoint.
for p in 1 2 3 4; do
  mlp_run "det$p" "$p" --epochs "$MLP_EPOCHS" --checkpoint-every-steps 50
done
mlp_run det3-rerun 3 --epochs "$MLP_EPOCHS" --checkpoint-every-steps 50
mlp_run micro1 1 --epochs "$MLP_EPOCHS" --micro-batch 16  # shard 40 rows: chunks of 16, 16, 8
mlp_run micro2 2 --epochs "$MLP_EPOCHS" --micro-batch 8   # shards 24 and 16 rows: chunks of one unit
mlp_run micro1-odd 1 --epochs "$MLP_EPOCHS" --micro-batch 12  # not a multiple of the unit: chunks of 8
mlp_run stop4 4 --epochs $((MLP_EPOCHS - 1))               # stopped an epoch early, resumed below
for p in 1 2 3 4 8; do
  cnn_run "cnn$p" "$p"
done
# B = 40 (5 units), then 60 (7.5 units) from epoch 4 and 100 (12.5 units)
# from epoch 6: a partial last unit in every step of epochs 4-6.
for p in 1 3; do
  mlp_run "sched$p" "$p" --epochs 6 --batch-schedule 3:60,5:100
done
# The contrast: the same MLP without --deterministic.
for p in 1 2; do
  dir=$(run_dir "nondet$p")
  bg_mpi_run "nondet$p" "$p" 60 "${MLP_COMMON[@]}" --threads 1 --epochs "$MLP_EPOCHS" --checkpoint-dir "$dir/ck" \
    --metrics "$dir/m.json"
done

M=(--data "$MLP" --model 16-32-4 --epochs 1 --global-batch 40)
bad_case unit-0 "--deterministic-unit 0" "--deterministic-unit must be at least 1 row (got 0)" \
  "${M[@]}" --deterministic --deterministic-unit 0
bad_case micro-below-unit "--micro-batch 8 with --deterministic-unit 16" \
  "--micro-batch 8 is smaller than a --deterministic unit (16 rows): use --micro-batch >= 16" \
  "${M[@]}" --deterministic --micro-batch 8 --deterministic-unit 16
bad_case unit-alone "--deterministic-unit without --deterministic (ignored silently before)" \
  "--deterministic-unit 16 does nothing without --deterministic: add --deterministic, or drop --deterministic-unit" \
  "${M[@]}" --deterministic-unit 16
bad_case threads-2 "--deterministic --threads 2" \
  "--deterministic runs BLAS on one thread per rank, but --threads is 2" "${M[@]}" --deterministic --threads 2
# The options are checked before the data is read, so a --global-batch larger
# than the 512 training rows is refused for its unit count first.
bad_case units-global "--global-batch 40000 in units of 1 row (more than 32768 units)" \
  "--global-batch 40000 has more than 32768 units of 1 rows: raise --deterministic-unit to at least 2" \
  --data "$MLP" --model 16-32-4 --epochs 1 --global-batch 40000 --deterministic --deterministic-unit 1
# A schedule's batch is checked against the data: 33000 of the 33000 rows.
bad_case units-schedule "--batch-schedule batch 33000 in units of 1 row" \
  "--batch-schedule batch 33000 has more than 32768 --deterministic units" \
  --data "$BIG" --model 16-32-4 --epochs 2 --global-batch 64 --batch-schedule 2:33000 --deterministic \
  --deterministic-unit 1
bg_wait

# ---------------------------------------------------------------------------
begin_case "MLP, 312 steps: P = 1, 2, 3, 4 end with the same state_crc32"
for p in 1 2 3 4; do
  use_run "det$p"
  expect_rc 0
  expect_file "$(R "det$p")/ck/final.h5"
done
use_run det1
METRICS="$(R det1)/m.json"
expect_stdout "deterministic: units of 8 rows"
expect_py "H['deterministic'] is True and H['deterministic_unit'] == 8 and H['threads_per_rank'] == 1" \
  "len(E) == $MLP_EPOCHS and E[-1]['step'] == 312" \
  "E[-1]['train_loss'] < E[0]['train_loss'] / 10"
REF_FINAL="$(R det1)/ck/final.h5"
for p in 2 3 4; do
  expect_same_state "$(R "det$p")/ck/final.h5" "$REF_FINAL"
done
# The weights moved after the first epoch, so equal crcs mean something.
check "state_crc32 differs between det1's ckpt-e0001.h5 and final.h5" \
  _differ_nonempty "$(state_crc "$(R det1)/ck/ckpt-e0001.h5")" "$(state_crc "$REF_FINAL")"

begin_case "MLP: every checkpoint (24 epoch ends, 6 step checkpoints, final.h5) equal at P = 1, 2, 3, 4"
expect_same_checkpoints 31 "$(R det1)/ck" "$(R det2)/ck" "$(R det3)/ck" "$(R det4)/ck"

begin_case "MLP: metrics lines equal at P = 1, 2, 3, 4 once timings and rank counts are dropped"
use_run det1
expect_same_metrics full "$(R det1)/m.json" "$(R det2)/m.json" "$(R det3)/m.json" "$(R det4)/m.json"
for p in 2 3 4; do
  expect_same_epoch_lines "$(R det1)/stdout" "$(R "det$p")/stdout"
done

begin_case "MLP: a rerun at P = 3 is bitwise the same"
use_run det3-rerun
expect_rc 0
expect_same_state "$(R det3-rerun)/ck/final.h5" "$(R det3)/ck/final.h5"
expect_same_checkpoints 31 "$(R det3)/ck" "$(R det3-rerun)/ck"
expect_same_metrics full "$(R det3)/m.json" "$(R det3-rerun)/m.json"

# ---------------------------------------------------------------------------
begin_case "--micro-batch below the shard (16 at P = 1, 8 at P = 2): the same as without"
for id in micro1 micro2; do
  use_run "$id"
  expect_rc 0
  expect_same_state "$(R "$id")/ck/final.h5" "$REF_FINAL"
  expect_same_metrics epochs "$(R det1)/m.json" "$(R "$id")/m.json"
done
use_run micro1
expect_stdout "global batch 40 (up to 40 rows per rank, micro-batches of 16)"
use_run micro2
expect_stdout "global batch 40 (up to 24 rows per rank, micro-batches of 8)"

begin_case "--micro-batch 12 (not a multiple of the 8-row unit) at P = 1: the same as without"
use_run micro1-odd
expect_rc 0
# The chunks are whole units: 12 rows round down to one unit of 8.
expect_stdout "micro-batches of 8)"
expect_same_state "$(R micro1-odd)/ck/final.h5" "$REF_FINAL"
expect_same_metrics epochs "$(R det1)/m.json" "$(R micro1-odd)/m.json"

# ---------------------------------------------------------------------------
begin_case "CNN (batch norm, dropout, crop+flip), unit 32, B = 80: P = 1, 2, 3, 4, 8 equal"
for p in 1 2 3 4 8; do
  use_run "cnn$p"
  expect_rc 0
  expect_file "$(R "cnn$p")/ck/final.h5"
done
use_run cnn8
METRICS="$(R cnn8)/m.json"
expect_stdout "deterministic: units of 32 rows"
expect_stdout "global batch 80 (up to 32 rows per rank)"
expect_py "H['ranks'] == 8 and H['deterministic_unit'] == 32" "len(E) == 6 and E[-1]['step'] == 24"
for p in 2 3 4 8; do
  expect_same_state "$(R "cnn$p")/ck/final.h5" "$(R cnn1)/ck/final.h5"
done
expect_same_checkpoints 7 "$(R cnn1)/ck" "$(R cnn2)/ck" "$(R cnn3)/ck" "$(R cnn4)/ck" "$(R cnn8)/ck"
expect_same_metrics full "$(R cnn1)/m.json" "$(R cnn2)/m.json" "$(R cnn3)/m.json" "$(R cnn4)/m.json" \
  "$(R cnn8)/m.json"
check "state_crc32 differs between cnn1's ckpt-e0001.h5 and final.h5" \
  _differ_nonempty "$(state_crc "$(R cnn1)/ck/ckpt-e0001.h5")" "$(state_crc "$(R cnn1)/ck/final.h5")"

# ---------------------------------------------------------------------------
begin_case "batch schedule 40 -> 60 -> 100 in units of 8 (partial units): P = 1 and P = 3 equal"
for p in 1 3; do
  use_run "sched$p"
  expect_rc 0
done
use_run sched3
METRICS="$(R sched3)/m.json"
expect_py "[d['global_batch'] for d in E] == [40, 40, 40, 60, 60, 100]" \
  "[d['steps_in_epoch'] for d in E] == [13, 13, 13, 9, 9, 6]"
expect_same_state "$(R sched3)/ck/final.h5" "$(R sched1)/ck/final.h5"
expect_same_checkpoints 7 "$(R sched1)/ck" "$(R sched3)/ck"
expect_same_metrics full "$(R sched1)/m.json" "$(R sched3)/m.json"
# The first three epochs are case 1's run; afterwards the schedule changes it.
check "sched1's ckpt-e0003.h5 equals det1's (same steps so far)" _same_nonempty \
  "$(state_crc "$(R sched1)/ck/ckpt-e0003.h5")" "$(state_crc "$(R det1)/ck/ckpt-e0003.h5")"

# ---------------------------------------------------------------------------
begin_case "contrast: without --deterministic, P = 1 and P = 2 end with different weights"
for p in 1 2; do
  use_run "nondet$p"
  expect_rc 0
done
a=$(state_crc "$(R nondet1)/ck/final.h5")
b=$(state_crc "$(R nondet2)/ck/final.h5")
check "state_crc32 at P = 1 ($a) != at P = 2 ($b)" _differ_nonempty "$a" "$b"
check "the deterministic run's state_crc32 ($(state_crc "$REF_FINAL")) is not the plain P = 1 run's ($a)" \
  _differ_nonempty "$(state_crc "$REF_FINAL")" "$a"

begin_case "MLP stopped after $((MLP_EPOCHS - 1)) epochs on 4 ranks: its checkpoints are case 1's"
use_run stop4
expect_rc 0
expect_same_state "$(R stop4)/ck/ckpt-e0023.h5" "$(R det1)/ck/ckpt-e0023.h5"
expect_same_state "$(R stop4)/ck/ckpt-e0010.h5" "$(R det1)/ck/ckpt-e0010.h5"

# ---------------------------------------------------------------------------
# Second wave: what reads the first wave's checkpoints.
MIDCK="$(R det2)/ck/ckpt-e0004-s0000011.h5"
mlp_run resume-mid 3 --epochs "$MLP_EPOCHS" --resume "$MIDCK"
mlp_run resume-stop 1 --epochs "$MLP_EPOCHS" --resume "$(R stop4)/ck/ckpt-e0023.h5"
for p in 1 3; do
  bg_mpi_run "eval-mlp$p" "$p" 60 "$MPITRAIN" evaluate --checkpoint "$REF_FINAL" --data "$MLP" --json
done
for p in 1 4; do
  bg_mpi_run "eval-cnn$p" "$p" 60 "$MPITRAIN" evaluate --checkpoint "$(R cnn1)/ck/final.h5" --data "$IMG" --json
done
# Resuming across the mode or the unit: the run would not continue the same trajectory.
R_MLP=("${MLP_COMMON[@]}" --epochs "$MLP_EPOCHS")
bad_case resume-without "resume a --deterministic checkpoint without --deterministic" \
  "was written with --deterministic 'true', this run has 'false': resume with the same --deterministic" \
  "${R_MLP[@]:2}" --resume "$(R det1)/ck/ckpt-e0012.h5"
bad_case resume-with "resume a plain checkpoint with --deterministic" \
  "was written with --deterministic 'false', this run has 'true': resume with the same --deterministic" \
  "${R_MLP[@]:2}" --deterministic --resume "$(R nondet1)/ck/ckpt-e0012.h5"
bad_case resume-unit "resume a unit-8 checkpoint with --deterministic-unit 16" \
  "was written with --deterministic-unit '8', this run has '16': resume with the same --deterministic-unit" \
  "${R_MLP[@]:2}" --deterministic --deterministic-unit 16 --resume "$(R det1)/ck/ckpt-e0012.h5"
bg_wait

begin_case "resume the 2-rank run's mid-epoch checkpoint (epoch 4 step 11) on 3 ranks: bitwise the same"
use_run resume-mid
expect_rc 0
expect_stdout "resuming from $MIDCK: epoch 4, step 11 of it, global step 50 (written by 2 ranks)"
expect_same_state "$(R resume-mid)/ck/final.h5" "$REF_FINAL"
expect_same_metrics resumed "$(R det1)/m.json" "$(R resume-mid)/m.json"
METRICS="$(R resume-mid)/m.json"
expect_py "[d['epoch'] for d in E] == list(range(4, $MLP_EPOCHS + 1))"

begin_case "resume the 4-rank run stopped after epoch 23 on 1 rank: bitwise the same"
use_run resume-stop
expect_rc 0
expect_stdout "epoch 24, step 0 of it, global step 299 (written by 4 ranks)"
expect_same_state "$(R resume-stop)/ck/final.h5" "$REF_FINAL"
expect_same_metrics resumed "$(R det1)/m.json" "$(R resume-stop)/m.json"
METRICS="$(R resume-stop)/m.json"
expect_py "[d['epoch'] for d in E] == [$MLP_EPOCHS]"

# ---------------------------------------------------------------------------
# evaluate_pair KIND A B ROWS METRICS: the JSON lines of two evaluate runs are
# equal but for "ranks", deterministic, and at the run's own last test numbers.
evaluate_pair() {
  local kind=$1 a=$2 b=$3 rows=$4
  use_run "$a"
  expect_rc 0
  expect_stdout "deterministic in units of"
  use_run "$b"
  expect_rc 0
  expect_stdout "deterministic in units of"
  # shellcheck disable=SC2034  # read by expect_py
  METRICS=$5
  expect_py "len(J := [json.loads(s) for s in SEG if s.startswith('{')]) == 1" \
    "len(K := [json.loads(s) for s in open('$(R "$a")/stdout') if s.startswith('{')]) == 1" \
    "J[0]['deterministic'] is True and J[0]['rows'] == $rows and J[0]['ranks'] != K[0]['ranks']" \
    "{k: v for k, v in J[0].items() if k != 'ranks'} == {k: v for k, v in K[0].items() if k != 'ranks'}" \
    "abs(J[0]['loss'] - E[-1]['test_loss']) <= 1e-6 * max(1, E[-1]['test_loss'])" \
    "abs(J[0]['accuracy'] - E[-1]['test_acc']) <= 1e-6"
  echo "  $kind: $(grep '^{' "$OUT")"
}
begin_case "evaluate the MLP's final.h5 on 1 and 3 ranks: the same loss and accuracy, bit for bit"
evaluate_pair MLP eval-mlp1 eval-mlp3 128 "$(R det1)/m.json"
begin_case "evaluate the CNN's final.h5 (batch norm) on 1 and 4 ranks: the same loss and accuracy, bit for bit"
evaluate_pair CNN eval-cnn1 eval-cnn4 80 "$(R cnn1)/m.json"

# ---------------------------------------------------------------------------
check_bad_input_runs

e2e_finish
