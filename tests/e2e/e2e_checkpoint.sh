#!/usr/bin/env bash
# Checkpoints and failures end to end under mpiexec, on real files:
#   - resume equivalence: 2 ranks bitwise (epoch-end and mid-epoch step
#     checkpoints, the metrics file continues), 2 -> 3 ranks within the
#     P-invariance tolerance;
#   - a rank killed with SIGKILL ends the job quickly, and --resume then
#     finishes with the uninterrupted run's weights;
#   - a checkpoint write killed part-way leaves `latest` and the previous
#     checkpoint valid;
#   - corruption (a flipped byte, a truncated file) and every other refused
#     checkpoint: exit 2, one message, no training;
#   - the watchdog aborts a stalled job naming the rank and the step;
#   - --keep-last prunes old checkpoints.
# "Equal weights" is the state_crc32 attribute (CRC-32 over parameters and
# optimizer state, without timings); tolerance comparisons read the raw
# float32 values with `h5dump -b`.
here=$(cd "$(dirname "$0")" && pwd)
# Most runs here are short, or refusals that sit idle ~2 s while mpiexec
# tears the job down: more at a time than lib.sh's default.
: "${E2E_JOBS:=6}"
source "$here/lib.sh"
e2e_init "$@"

for tool in h5dump python3; do
  command -v "$tool" >/dev/null || { echo "FATAL: $tool is needed"; exit 1; }
done
# Version-manager shims (pyenv) cost ~1 s per python3 start; this script
# starts it a dozen times, so put the interpreter's own directory first.
py_dir=$(dirname "$(python3 -c 'import sys; print(sys.executable)')") && PATH="$py_dir:$PATH"

N=1000
"$MAKE_DS" good "$WORK/good.h5" "$N" 16 || { echo "FATAL: make_test_dataset good failed"; exit 1; }
"$MAKE_DS" good "$WORK/good800.h5" 800 16 || { echo "FATAL: make_test_dataset good (800) failed"; exit 1; }
# B=50 over 1000 rows: 20 steps per epoch, so global step 5 is epoch 1 step 5
# and global step 33 is epoch 2 step 13. The default schedule (no decay) does
# not depend on --epochs, so a 2-epoch run resumed to 4 continues the 4-epoch run.
B=50
COMMON=(--data "$WORK/good.h5" --model 16-32-4 --threads 1 --progress none --global-batch "$B" --lr 0.05)
TRAIN=("$MPITRAIN" train "${COMMON[@]}")
# Marks the processes of this script's stall/kill runs, to find rank 1 and
# to clean up only what this script started.
TAG="e2e_checkpoint_$$"

OPEN_MPI=0
"$MPIEXEC" --version 2>&1 | grep -q -E 'Open MPI|OpenRTE' && OPEN_MPI=1

# PIDs of this script's mpitrain processes carrying tag $1 (and rank $2 if given).
tagged_pids() {
  local p envf
  for p in $(pgrep -x "$(basename "$MPITRAIN" | cut -c1-15)"); do
    envf=$({ tr '\0' '\n' <"/proc/$p/environ"; } 2>/dev/null) || continue
    grep -q -x "E2E_TAG=$1" <<<"$envf" || continue
    [ $# -lt 2 ] || grep -q -x "OMPI_COMM_WORLD_RANK=$2" <<<"$envf" || continue
    echo "$p"
  done
}

cleanup() {
  local p
  for p in $(jobs -p); do kill -- "$p" 2>/dev/null; done
  for p in $(tagged_pids "$TAG-kill") $(tagged_pids "$TAG-stall"); do kill -9 "$p" 2>/dev/null; done
}
trap cleanup EXIT

# A rank killed by a signal makes mpiexec exit 128+signal (137 for SIGKILL),
# the same code `timeout -k` gives a hang, so the elapsed time tells them apart.
_failed_before_timeout() {
  [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && awk -v e="$ELAPSED" -v m="$LAST_TIMEOUT" 'BEGIN { exit !(e < m - 1) }'
}
expect_failure_before_timeout() {
  check "non-zero exit code (got $RC) after ${ELAPSED}s, before the ${LAST_TIMEOUT}s timeout" _failed_before_timeout ||
    show_output
}


# expect_same_state A B: equal state_crc32 (bitwise equal weights and optimizer state).
expect_same_state() {
  local a b
  a=$(state_crc "$1")
  b=$(state_crc "$2")
  check "state_crc32 of ${1#"$WORK"/} ($a) == ${2#"$WORK"/} ($b)" _same_nonempty "$a" "$b" || show_output
}

# expect_epochs_run "3 4": the epochs the last run printed a line for (a
# resumed run that silently started over would end with the same weights).
expect_epochs_run() {
  local got
  got=$(sed -n 's|^epoch \([0-9]*\)/.*|\1|p' "$OUT" | tr '\n' ' ')
  check "stdout has the lines of epochs $1 only (got '${got% }')" [ "${got% }" = "$1" ] || show_output
}

expect_latest() {
  local got
  got=$(cat "$1/latest" 2>/dev/null)
  check "latest names $2 (got '$got')" [ "$got" = "$2" ] || show_output
}

# params_rel_diff A B: max_i |a_i - b_i| / max_i |b_i| over all parameters
# (the P-invariance test's measure), from the raw float32 values.
params_rel_diff() {
  python3 - "$1" "$2" <<'PY'
import struct, subprocess, sys, tempfile
def params(path):
    with tempfile.NamedTemporaryFile() as raw:
        args = ["h5dump", "-b", "LE", "-o", raw.name]
        for d in ("dense0/W", "dense0/b", "dense1/W", "dense1/b"):
            args += ["-d", "/params/" + d]
        if subprocess.run(args + [path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
            return []
        data = open(raw.name, "rb").read()
    return struct.unpack(f"<{len(data) // 4}f", data)
a, b = params(sys.argv[1]), params(sys.argv[2])
if len(a) != len(b) or len(a) != 676:  # 16*32 + 32 + 32*4 + 4
    print("nan")
else:
    print(max(abs(x - y) for x, y in zip(a, b)) / max(max(abs(y) for y in b), 1e-30))
PY
}

# ---------------------------------------------------------------------------
# Runs that do not depend on each other go first, a few at a time.
# Rank 1 sleeps 60 s in global step 5 (epoch 1 step 5); the watchdog must end the job.
bg_mpi_run watchdog 2 60 -x MPITRAIN_TEST_STALL=1:5:60 -x "E2E_TAG=$TAG-stall" "${TRAIN[@]}" --epochs 4 \
  --stall-timeout-s 3
# Rank 1 of 3 is stopped (SIGSTOP) in step 5: its own watchdog cannot run, so
# a waiting rank must name it (issue 17: before, none did).
bg_mpi_run stopped 3 60 -x MPITRAIN_TEST_STALL=1:5:-1 -x "E2E_TAG=$TAG-stall" "${TRAIN[@]}" --epochs 4 \
  --stall-timeout-s 3
REF=$(run_dir ref)
bg_mpi_run ref 2 60 "${TRAIN[@]}" --epochs 4 --checkpoint-dir "$REF/ck" --checkpoint-every-steps 5 \
  --keep-last 0 --metrics "$REF/metrics.json"
HALF=$(run_dir half)
# The interrupted run: 2 epochs in a run directory (checkpoints in R/checkpoints).
bg_mpi_run half 2 60 "${TRAIN[@]}" --epochs 2 --run-dir "$HALF/R" --checkpoint-every-steps 5 --keep-last 0
KILL=$(run_dir kill)
# Rank 1 sleeps 30 s in global step 33 (epoch 2 step 13): the window to kill
# it in. If the kill did not end the job, it would finish normally (exit 0).
bg_mpi_run kill 2 60 -x MPITRAIN_TEST_STALL=1:33:30 -x "E2E_TAG=$TAG-kill" "${TRAIN[@]}" --epochs 4 \
  --checkpoint-dir "$KILL/ck" --checkpoint-every-steps 5
# Step 30's checkpoint is written just before the stall.
for _ in $(seq 300); do
  [ "$(cat "$KILL/ck/latest" 2>/dev/null)" = ckpt-e0002-s0000010.h5 ] && break
  sleep 0.1
done
sleep 0.5
VICTIMS=$(tagged_pids "$TAG-kill" 1)
T_KILL=$(date +%s.%N)
for p in $VICTIMS; do kill -9 "$p"; done
KC=$(run_dir killckpt)
bg_mpi_run killckpt 2 60 -x MPITRAIN_TEST_KILL_IN_CHECKPOINT=2 "${TRAIN[@]}" --epochs 4 --checkpoint-dir "$KC/ck"
KL=$(run_dir keeplast)
bg_mpi_run keeplast 2 60 "${TRAIN[@]}" --epochs 5 --keep-last 2 --checkpoint-dir "$KL/ck"
# Refused checkpoints that need no earlier run.
echo "this is not HDF5" >"$WORK/text.h5"
refuse() {  # refuse ID PHRASE ARGS...: a resume that must be refused
  local id=$1 phrase=$2
  shift 2
  echo "$phrase" >"$(run_dir "$id")/phrase"
  bg_mpi_run "$id" 2 60 "$MPITRAIN" train --threads 1 --progress none --lr 0.05 --epochs 4 \
    --checkpoint-dir "$WORK/runs/$id/ck" "$@"
}
D=(--data "$WORK/good.h5" --model 16-32-4 --global-batch "$B")
refuse r-missing "does not exist" "${D[@]}" --resume "$WORK/no-such-checkpoint.h5"
refuse r-not-hdf5 "is not an HDF5 file" "${D[@]}" --resume "$WORK/text.h5"
refuse r-not-ckpt "is not an mpitrain checkpoint" "${D[@]}" --resume "$WORK/good.h5"
mkdir -p "$(run_dir r-empty-dir)/ck"
refuse r-empty-dir "--resume: no checkpoint in '$WORK/runs/r-empty-dir/ck'" "${D[@]}" --resume
# A `latest` that is not mpitrain's one-line pointer (issue 17): a FIFO blocked
# --resume forever; empty, a directory or binary were reported as missing or
# echoed raw. Each is now one line that describes it.
for id in r-latest-fifo r-latest-empty r-latest-dir r-latest-binary r-resume-fifo; do mkdir -p "$(run_dir "$id")/ck"; done
mkfifo "$WORK/runs/r-latest-fifo/ck/latest"
: >"$WORK/runs/r-latest-empty/ck/latest"
mkdir "$WORK/runs/r-latest-dir/ck/latest"
printf 'ckpt\001\002\n\000zz' >"$WORK/runs/r-latest-binary/ck/latest"
mkfifo "$WORK/runs/r-resume-fifo/ck/pipe.h5"
refuse r-latest-fifo "/r-latest-fifo/ck/latest' is not a regular file" "${D[@]}" --resume
refuse r-latest-empty "/r-latest-empty/ck/latest' is empty" "${D[@]}" --resume
refuse r-latest-dir "/r-latest-dir/ck/latest' is not a regular file" "${D[@]}" --resume
refuse r-latest-binary "holds 'ckpt\x01\x02\x0a\x00zz', not the name of a file" "${D[@]}" --resume
refuse r-resume-fifo "pipe.h5' is not a regular file" "${D[@]}" --resume "$WORK/runs/r-resume-fifo/ck/pipe.h5"
bg_wait

# ---------------------------------------------------------------------------
begin_case "uninterrupted reference run (2 ranks, 4 epochs, step checkpoints every 5)"
use_run ref
METRICS="$REF/metrics.json"
expect_rc 0
expect_file "$REF/ck/final.h5"
expect_latest "$REF/ck" ckpt-e0004.h5
# 4 epoch-end files + steps 5, 10, 15 of each epoch (never step 20: that is the epoch end).
n=$(find "$REF/ck" -name 'ckpt-*.h5' | wc -l)
check "16 ckpt-*.h5 files with --keep-last 0 (found $n)" [ "$n" -eq 16 ] || ls "$REF/ck"
expect_file "$REF/ck/ckpt-e0002-s0000015.h5"
expect_no_file "$REF/ck/ckpt-e0001-s0000020.h5"
# The write cost is in the metrics: one line per checkpoint, seconds and MB.
expect_py \
  "len(E) == 4 and E[-1]['step'] == 80" \
  "len(C := [d for d in L if d['type'] == 'checkpoint']) == 17" \
  "all(d['mb'] > 0 and d['seconds'] >= 0 for d in C)" \
  "sorted(d['file'].rsplit('/', 1)[1] for d in C)[-1] == 'final.h5'"
# h5dump can read what the issue promises: progress, world size, params.
check "ckpt-e0002-s0000015.h5 records global step 35" \
  bash -c 'h5dump -a /progress/global_step "$1" | grep -q "(0): 35"' _ "$REF/ck/ckpt-e0002-s0000015.h5"
check "ckpt-e0002.h5 records world_size 2" \
  bash -c 'h5dump -a /world_size "$1" | grep -q "(0): 2"' _ "$REF/ck/ckpt-e0002.h5"
REF_FINAL="$REF/ck/final.h5"
# The weights moved after epoch 2, so equal state_crc32 below means something.
check "state_crc32 differs between ckpt-e0002.h5 and final.h5" \
  bash -c '[ "$1" != "$2" ]' _ "$(state_crc "$REF/ck/ckpt-e0002.h5")" "$(state_crc "$REF_FINAL")"

# ---------------------------------------------------------------------------
begin_case "SIGKILL of rank 1 mid-epoch (epoch 2 step 13): the job ends fast"
check "found rank 1's process (PIDs: '$VICTIMS')" [ "$(wc -w <<<"$VICTIMS")" -eq 1 ]
use_run kill
expect_failure_before_timeout
# bg_run writes the rc file when mpiexec has returned.
since_kill=$(awk -v a="$T_KILL" -v b="$(date -r "$KILL/rc" +%s.%N 2>/dev/null || echo 0)" 'BEGIN { printf "%.1f", b - a }')
check "the job ended ${since_kill}s after the kill (< 30 s)" \
  awk -v e="$since_kill" 'BEGIN { exit !(e > 0 && e < 30) }' || show_output
if [ "$OPEN_MPI" = 1 ]; then
  check "mpiexec names the lost rank 1" \
    bash -c 'cat "$1" "$2" | grep -q "process rank 1 with PID .* exited on signal 9"' _ "$OUT" "$ERR" || show_output
fi
n=$(tagged_pids "$TAG-kill" | wc -l)
check "no rank of the killed job is left running (found $n)" [ "$n" -eq 0 ]
check "killed in epoch 2: epoch 1 finished, epoch 2 did not" \
  bash -c 'grep -q "^epoch 1/4" "$1" && ! grep -q "^epoch 2/4" "$1"' _ "$OUT" || show_output
expect_latest "$KILL/ck" ckpt-e0002-s0000010.h5

# ---------------------------------------------------------------------------
begin_case "2-epoch run in a run directory"
use_run half
expect_rc 0
expect_file "$HALF/R/checkpoints/ckpt-e0002.h5"
expect_file "$HALF/R/metrics.jsonl"
expect_latest "$HALF/R/checkpoints" ckpt-e0002.h5
# The same trajectory so far: its epoch-2 checkpoint holds the reference's weights.
expect_same_state "$HALF/R/checkpoints/ckpt-e0002.h5" "$REF/ck/ckpt-e0002.h5"
# Private copies for the cases below (resumed runs prune their own directories).
SRC="$WORK/src"
mkdir -p "$SRC"
cp "$HALF/R/checkpoints/ckpt-e0002.h5" "$HALF/R/checkpoints/ckpt-e0002-s0000015.h5" "$SRC/"

# ---------------------------------------------------------------------------
begin_case "interrupted checkpoint write (killed before the rename): previous checkpoint and latest stay valid"
use_run killckpt
expect_failure_before_timeout
# The second write is the end of epoch 2: epoch 2 finished, its file never appeared.
expect_stdout "epoch 2/4"
check "stdout has no epoch 3" bash -c '! grep -q "^epoch 3/4" "$1"' _ "$OUT" || show_output
if [ "$OPEN_MPI" = 1 ]; then
  check "mpiexec names rank 0 killed by signal 9" \
    bash -c 'cat "$1" "$2" | grep -q "rank 0 with PID .* exited on signal 9"' _ "$OUT" "$ERR" || show_output
fi
expect_no_file "$KC/ck/ckpt-e0002.h5"
echo "  note: temporary files left by the killed write: $(find "$KC/ck" -name '*.tmp*' -printf '%f ')"
expect_file "$KC/ck/ckpt-e0001.h5"
expect_latest "$KC/ck" ckpt-e0001.h5

# ---------------------------------------------------------------------------
# Second wave: everything that needs a checkpoint from the first.
bg_mpi_run resume 2 60 "${TRAIN[@]}" --epochs 4 --run-dir "$HALF/R" --resume
MID=$(run_dir mid)
bg_mpi_run mid 2 60 "${TRAIN[@]}" --epochs 4 --checkpoint-dir "$MID/ck" --metrics "$MID/metrics.json" \
  --resume "$SRC/ckpt-e0002-s0000015.h5"
P3=$(run_dir p3)
bg_mpi_run p3 3 60 "${TRAIN[@]}" --epochs 4 --checkpoint-dir "$P3/ck" --metrics "$P3/metrics.json" \
  --resume "$SRC/ckpt-e0002.h5"
bg_mpi_run killckpt-resume 2 60 "${TRAIN[@]}" --epochs 4 --checkpoint-dir "$KC/ck" --resume
bg_mpi_run kill-resume 2 60 "${TRAIN[@]}" --epochs 4 --checkpoint-dir "$KILL/ck" --checkpoint-every-steps 5 --resume

# Corrupted copies of ckpt-e0002.h5.
python3 - "$SRC/ckpt-e0002.h5" "$WORK" <<'PY' || fail "making the corrupted copies failed"
import subprocess, sys
src, work = sys.argv[1], sys.argv[2]
data = open(src, "rb").read()
# Flip one byte inside /params/dense0/W: find its raw float32 bytes in the file.
subprocess.run(["h5dump", "-d", "/params/dense0/W", "-b", "LE", "-o", f"{work}/w.bin", src],
               check=True, stdout=subprocess.DEVNULL)
w = open(f"{work}/w.bin", "rb").read()
assert len(w) == 16 * 32 * 4 and data.count(w) == 1, "dense0/W not found once in the file"
flipped = bytearray(data)
flipped[data.find(w) + 4 * 100] ^= 0xFF  # low mantissa byte of element 100: still a plausible float
open(f"{work}/flipped.h5", "wb").write(flipped)
open(f"{work}/truncated.h5", "wb").write(data[: len(data) // 2])
# A missing field: rename the root attribute world_size (same length; the
# version-0 object headers carry no checksum, so the file stays readable).
assert data.count(b"world_size\0") == 1
nofield = bytearray(data)
i = data.find(b"world_size\0")
nofield[i + 9] = ord("X")
open(f"{work}/nofield.h5", "wb").write(nofield)
# The recorded config is not covered by the checksum: comment out its seed
# line (same length), as someone wanting to resume under another --seed would.
assert data.count(b"\nseed = ") == 1
open(f"{work}/noseed.h5", "wb").write(data.replace(b"\nseed = ", b"\n#eed = "))
PY
refuse r-checksum "fails its checksum" "${D[@]}" --resume "$WORK/flipped.h5"
refuse r-truncated "truncated or corrupted" "${D[@]}" --resume "$WORK/truncated.h5"
refuse r-no-field "is missing the field 'world_size'" "${D[@]}" --resume "$WORK/nofield.h5"
refuse r-config-altered "does not record --seed in its config: it was altered" "${D[@]}" --seed 2 \
  --resume "$WORK/noseed.h5"
CK="$SRC/ckpt-e0002.h5"
# A run that differs from the checkpoint is told which option to change:
# a different model is named as one (not as a shape mismatch of one tensor),
# as are a different --val-fraction and --optimizer (not as different data
# or a missing tensor).
refuse r-model "written for --model 16-32-4" --data "$WORK/good.h5" --model 16-24-4 --global-batch "$B" --resume "$CK"
refuse r-data "resume on the same data" --data "$WORK/good800.h5" --model 16-32-4 --global-batch "$B" --resume "$CK"
refuse r-batch "resume with the same --global-batch" --data "$WORK/good.h5" --model 16-32-4 --global-batch 40 \
  --resume "$CK"
refuse r-seed "resume with the same --seed" "${D[@]}" --seed 2 --resume "$CK"
refuse r-schedule "resume with the same --batch-schedule" "${D[@]}" --batch-schedule 3:100 --resume "$CK"
refuse r-drop-last "resume with the same --drop-last" "${D[@]}" --drop-last --resume "$CK"
refuse r-val-fraction "resume with the same --val-fraction" "${D[@]}" --val-fraction 0.2 --resume "$CK"
refuse r-optimizer "resume with the same --optimizer" "${D[@]}" --optimizer adamw --resume "$CK"
bg_wait

# ---------------------------------------------------------------------------
begin_case "resume equivalence, 2 ranks: 2 epochs + --resume (latest) to 4 == 4 epochs, bitwise"
use_run resume
METRICS="$HALF/R/metrics.jsonl"
expect_rc 0
expect_stdout "resuming from $HALF/R/checkpoints/ckpt-e0002.h5: epoch 3, step 0 of it, global step 40 (written by 2 ranks)"
expect_epochs_run "3 4"
expect_same_state "$HALF/R/checkpoints/final.h5" "$REF_FINAL"
# The resumed run appends to the run directory's metrics file, and its epoch
# lines are the uninterrupted run's.
expect_py \
  "[d['epoch'] for d in E] == [1, 2, 3, 4]" \
  "[d['step'] for d in E] == [20, 40, 60, 80] and E[-1]['samples'] == 4 * $N" \
  "[(d['train_loss'], d['test_acc']) for d in E] == [(d['train_loss'], d['test_acc']) for d in epochs_of('$REF/metrics.json')]" \
  "[d['noise_scale'] for d in E[2:]] == [d['noise_scale'] for d in epochs_of('$REF/metrics.json')[2:]]" \
  "E[2]['train_loss'] < E[0]['train_loss']"

# ---------------------------------------------------------------------------
begin_case "resume equivalence, 2 ranks, from a mid-epoch step checkpoint (epoch 2 step 15)"
use_run mid
METRICS="$MID/metrics.json"
expect_rc 0
expect_stdout "resuming from $SRC/ckpt-e0002-s0000015.h5: epoch 2, step 15 of it, global step 35 (written by 2 ranks)"
expect_epochs_run "2 3 4"
expect_same_state "$MID/ck/final.h5" "$REF_FINAL"
# Epoch 2's line joins the 15 steps before the checkpoint with the 5 after it.
expect_py \
  "[d['epoch'] for d in E] == [2, 3, 4]" \
  "[d['step'] for d in E] == [40, 60, 80]" \
  "[(d['train_loss'], d['train_acc'], d['test_acc']) for d in E] == [(d['train_loss'], d['train_acc'], d['test_acc']) for d in epochs_of('$REF/metrics.json')[1:]]" \
  "[d['noise_scale'] for d in E] == [d['noise_scale'] for d in epochs_of('$REF/metrics.json')[1:]]"

# ---------------------------------------------------------------------------
begin_case "resume a 2-rank checkpoint on 3 ranks: within the P-invariance tolerance"
use_run p3
# shellcheck disable=SC2034  # read by expect_py
METRICS="$P3/metrics.json"
expect_rc 0
expect_stdout "resuming from $SRC/ckpt-e0002.h5: epoch 3, step 0 of it, global step 40 (written by 2 ranks)"
expect_epochs_run "3 4"
expect_file "$P3/ck/final.h5"
rel=$(params_rel_diff "$P3/ck/final.h5" "$REF_FINAL")
check "3-rank resumed final params vs the 2-rank run: relative difference $rel <= 1e-5" \
  python3 -c "import sys; sys.exit(not float('$rel') <= 1e-5)" || show_output
# The comparison can fail: epochs 3-4 moved the weights far beyond the tolerance.
moved=$(params_rel_diff "$SRC/ckpt-e0002.h5" "$REF_FINAL")
check "epochs 3-4 moved the weights (relative $moved > 1e-3)" python3 -c "import sys; sys.exit(not float('$moved') > 1e-3)"
check "final.h5 records world_size 3" bash -c 'h5dump -a /world_size "$1" | grep -q "(0): 3"' _ "$P3/ck/final.h5"
expect_py "H['ranks'] == 3" "[d['epoch'] for d in E] == [3, 4]"

# ---------------------------------------------------------------------------
begin_case "resume after the interrupted write: from ckpt-e0001.h5, bitwise equal, temp files gone"
use_run killckpt-resume
expect_rc 0
expect_stdout "resuming from $KC/ck/ckpt-e0001.h5: epoch 2, step 0 of it, global step 20"
expect_epochs_run "2 3 4"
expect_same_state "$KC/ck/final.h5" "$REF_FINAL"
expect_latest "$KC/ck" ckpt-e0004.h5
n=$(find "$KC/ck" -name '*tmp*' | wc -l)
check "no temporary files remain after the resumed run's writes (found $n)" [ "$n" -eq 0 ] || ls -A "$KC/ck"

# ---------------------------------------------------------------------------
begin_case "--resume (latest) after the SIGKILL: continues at epoch 2 step 10, bitwise equal"
use_run kill-resume
expect_rc 0
expect_stdout "resuming from $KILL/ck/ckpt-e0002-s0000010.h5: epoch 2, step 10 of it, global step 30 (written by 2 ranks)"
expect_epochs_run "2 3 4"
expect_same_state "$KILL/ck/final.h5" "$REF_FINAL"

# ---------------------------------------------------------------------------
for id in r-missing r-not-hdf5 r-not-ckpt r-empty-dir r-latest-fifo r-latest-empty r-latest-dir r-latest-binary \
  r-resume-fifo r-config-altered r-checksum r-truncated r-no-field r-model r-data r-batch \
  r-seed r-schedule r-drop-last r-val-fraction r-optimizer; do
  phrase=$(cat "$WORK/runs/$id/phrase")
  begin_case "refused checkpoint ($id): '$phrase'"
  use_run "$id"
  expect_rc 2
  expect_fast 15
  expect_one_error_line "$phrase"
  # Never trains from garbage: no epoch line, no checkpoint written.
  check "no training happened" bash -c '! grep -q "^epoch " "$1" && [ ! -e "$2" ]' _ "$OUT" \
    "$WORK/runs/$id/ck/final.h5" || show_output
done

# ---------------------------------------------------------------------------
begin_case "corrupted copies are still HDF5: only the checksum can tell"
# The flipped value differs from the original and the file still reads, so
# the checksum (not an HDF5 error) is what refused it above.
check "h5dump reads the flipped file and dense0/W differs from the original" \
  bash -c '! cmp -s <(h5dump -d /params/dense0/W "$1" | tail -n +2) <(h5dump -d /params/dense0/W "$2" | tail -n +2) &&
  h5dump -d /params/dense0/W "$1" >/dev/null' _ "$WORK/flipped.h5" "$SRC/ckpt-e0002.h5"

# ---------------------------------------------------------------------------
begin_case "watchdog: rank 1 sleeps in step 5, --stall-timeout-s 3 aborts the job"
use_run watchdog
expect_failure
expect_rc 5
expect_fast 20
expect_stderr "stall on rank 1: no progress for"
expect_stderr "in epoch 1 step 5, computing (it did not arrive at the all-reduce)"
check "the first stall message names rank 1" \
  bash -c 'grep -m1 "stall on rank" "$1" | grep -q "stall on rank 1:"' _ "$ERR" || show_output
check "no epoch finished" bash -c '! grep -q "^epoch " "$1"' _ "$OUT" || show_output
n=$(tagged_pids "$TAG-stall" | wc -l)
check "no rank of the stalled job is left running (found $n)" [ "$n" -eq 0 ]

# ---------------------------------------------------------------------------
begin_case "watchdog: rank 1 of 3 is stopped (SIGSTOP) in step 5: a waiting rank names it"
use_run stopped
expect_failure
expect_rc 5
expect_fast 20
expect_stderr "stall: ranks 0,2 on host "
expect_stderr "in the all-reduce of epoch 1 step 5 for rank 1 (no progress for"
check "the first stall line is the waiting ranks' report naming rank 1" \
  bash -c 'grep -m1 "stall" "$1" | grep -q "stall: ranks 0,2 on host .* for rank 1 (no progress"' _ "$ERR" || show_output
n=$(tagged_pids "$TAG-stall" | wc -l)
check "no rank of the stopped job is left (found $n)" [ "$n" -eq 0 ]

# ---------------------------------------------------------------------------
begin_case "--keep-last 2 over 5 epochs keeps the last two epoch checkpoints"
use_run keeplast
expect_rc 0
files=$(find "$KL/ck" -mindepth 1 -printf '%f\n' | sort | tr '\n' ' ')
check "checkpoint dir holds exactly 'ckpt-e0004.h5 ckpt-e0005.h5 final.h5 latest' (got '$files')" \
  [ "$files" = "ckpt-e0004.h5 ckpt-e0005.h5 final.h5 latest " ]
expect_latest "$KL/ck" ckpt-e0005.h5

# ---------------------------------------------------------------------------
begin_case "resume with the same --batch-schedule text, padded with spaces, is accepted"
# Both the checkpoint's recorded config and this run's go through the same
# INI reader, so a value the reader trims compares equal to itself.
PAD=$(run_dir pad)
mpi_run 2 60 "${TRAIN[@]}" --epochs 1 --batch-schedule "1:100 " --checkpoint-dir "$PAD/ck"
expect_rc 0
mpi_run 2 60 "${TRAIN[@]}" --epochs 2 --batch-schedule "1:100 " --checkpoint-dir "$PAD/ck" --resume
expect_rc 0
expect_stdout "resuming from $PAD/ck/ckpt-e0001.h5"
expect_stdout "epoch 2/2"

e2e_finish
