#!/usr/bin/env bash
# The fault campaign (issue 17; docs/fault-campaign.md): the real binary
# against lost ranks, killed checkpoint writes, damaged files and bad configs.
# Seeded and bounded; every family is a count of trials, each one either
# handled cleanly or a failure:
#   kill-random-rank          SIGKILL of a random rank of a 3-rank job at a
#                             random time, then --resume: the job ends
#                             promptly, the launcher names the rank, and the
#                             resumed run ends with the uninterrupted run's
#                             state_crc32 (kill_trials.py);
#   kill-in-checkpoint-write  SIGKILL of rank 0 at a random point of one of
#                             the first 34 MB checkpoint writes of a 2-rank
#                             job: `latest` names a complete checkpoint, every
#                             visible ckpt-*.h5 inspects as complete, and the
#                             resume ends bitwise equal (kill_trials.py);
#   ckpt-*                    damaged copies of a real checkpoint (mutate_h5:
#                             every attribute as an array and as the other
#                             kind, drawn other kinds, datasets reshaped and
#                             retyped, flipped bytes, truncations, a FIFO),
#                             each resumed on one rank: one `mpitrain: error:`
#                             line in ASCII, exit 2 or 3, no new file, or an
#                             accepted resume bitwise equal to a clean one (a
#                             flip in bytes nothing reads; never one inside
#                             the weights or optimizer state);
#   data-*                    the same for a dataset file, trained from: a
#                             refusal, or a run that ends normally (its result
#                             compared with the clean file's: same, or changed
#                             where the damage hit values, counted apart);
#   bad-config                option values and config files beyond
#                             e2e_bad_input's list: exit 2, one line.
# No family may crash, hang (timeouts) or draw a sanitizer report.
#
#   bash tests/faults/fault_campaign.sh <mpitrain> <make_test_dataset> <mpiexec> <work dir> <mutate_h5>
# Environment (defaults in brackets): FAULTS_SEED [17], FAULTS_KILLS [5],
# FAULTS_WRITE_KILLS [5], FAULTS_CKPT_FLIPS [32], FAULTS_DATA_FLIPS [24],
# FAULTS_TRUNCS [6], FAULTS_EXTRA [12] (drawn attribute mutations per file;
# half as many drawn dataset ones), E2E_JOBS [4] (corpus runs at a time).
# Results: <work dir>/fault_campaign/results.tsv (one line per trial) and
# summary.json; the table is printed at the end.
here=$(cd "$(dirname "$0")" && pwd)
MUTATE=${5:-}
# Corpus runs are mostly waiting (MPI start-up, file opens): more at a time than lib.sh's default.
: "${E2E_JOBS:=4}"
source "$here/../e2e/lib.sh"
e2e_init "${@:1:4}"
source "$here/../../scripts/mpi-env.sh"
if [ ! -x "$MUTATE" ]; then
  echo "FATAL: the fifth argument must be the mutate_h5 tool (got '$MUTATE')" >&2
  exit 2
fi
for tool in h5dump python3; do
  command -v "$tool" >/dev/null || { echo "FATAL: $tool is needed"; exit 1; }
done
# In a sanitizer build (scripts/test-sanitize.sh sets the same): Open MPI's
# own allocations are not ours to report; any other finding aborts the run.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=0:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

SEED=${FAULTS_SEED:-17}
KILLS=${FAULTS_KILLS:-5}
WRITE_KILLS=${FAULTS_WRITE_KILLS:-5}
CKPT_FLIPS=${FAULTS_CKPT_FLIPS:-32}
DATA_FLIPS=${FAULTS_DATA_FLIPS:-24}
TRUNCS=${FAULTS_TRUNCS:-6}
EXTRA=${FAULTS_EXTRA:-12}
RESULTS="$WORK/results.tsv"
: >"$RESULTS"
echo "seed $SEED: $KILLS random kills, $WRITE_KILLS kills in writes, $CKPT_FLIPS/$DATA_FLIPS flips (checkpoint/data)," \
  "$TRUNCS truncations, $EXTRA drawn attribute mutations per file"

# One process without a launcher, for the many corpus runs: rank 0 reads
# checkpoints and datasets the same way at any rank count (a few cases also
# run on 2 ranks below). Isolated: no ORTE daemon, 0.3 s less per run.
# Each with its own session directory: isolated singletons all use job family
# 0, so one ending removes the directory another is creating (exit 1,
# "A call to mkdir was unable to create the desired directory").
SESSIONS=$(mktemp -d /tmp/faults-sessions.XXXXXX)  # short: socket paths are limited
trap 'rm -rf "$SESSIONS"' EXIT
SOLO_N=0
solo() {  # sets SOLO, the command prefix of the next single-process run
  SOLO_N=$((SOLO_N + 1))
  mkdir -p "$SESSIONS/$SOLO_N"
  SOLO=(env OMPI_MCA_ess_singleton_isolated=1 "OMPI_MCA_orte_tmpdir_base=$SESSIONS/$SOLO_N" "$MPITRAIN")
}
state_crc() { h5dump -a /state_crc32 "$1" 2>/dev/null | awk '/\(0\):/ { print $2 }'; }
SANITIZER_RE='AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|runtime error:'

# record FAMILY ID OUTCOME SECONDS DETAIL: one result line; a failure is
# counted by lib.sh and shown with the run's output.
record() {
  printf '%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" "$5" >>"$RESULTS"
  E2E_CHECKS=$((E2E_CHECKS + 1))
  if [ "$3" = failure ]; then
    E2E_CASE="$1 $2"
    fail "$5"
    show_output
  fi
}

# ---------------------------------------------------------------------------
# Kills: real multi-rank jobs, one at a time (their seconds are measured).
"$MAKE_DS" good "$WORK/kill.h5" 2000 16 >/dev/null && "$MAKE_DS" good "$WORK/write.h5" 200 16 >/dev/null ||
  { echo "FATAL: make_test_dataset failed"; exit 1; }
# kill_family MODE NAME NP TRIALS SEED TRAIN JOB_EXTRA RESUME_EXTRA (the last three JSON lists)
kill_family() {
  local mode=$1 name=$2 np=$3 trials=$4 seed=$5
  [ "$trials" -gt 0 ] || return 0  # FAULTS_KILLS=0: the family is left out (the sanitizer pass)
  mkdir -p "$WORK/$name"
  python3 -c '
import json, sys
a = sys.argv[1:]
json.dump({"mpitrain": a[1], "mpitrain_solo": ["env", "OMPI_MCA_ess_singleton_isolated=1", a[1]], "np": int(a[2]),
           "trials": int(a[3]), "seed": int(a[4]), "train": json.loads(a[5]), "job_extra": json.loads(a[6]),
           "resume_extra": json.loads(a[7]), "work": a[8], "results": a[9], "max_write": 3, "mpirun": a[10:]},
          open(a[0], "w"))' "$WORK/$name/spec.json" "$MPITRAIN" "$np" "$trials" "$seed" "$6" "$7" "$8" \
    "$WORK/$name" "$RESULTS" "${MPIRUN[@]}"
  begin_case "$name: $trials trials ($np ranks) [at ${SECONDS}s]"
  python3 "$here/kill_trials.py" "$mode" "$WORK/$name/spec.json"
  local n
  n=$(awk -F'\t' -v f="$name" '$1 == f && $3 == "failure"' "$RESULTS" | wc -l)
  E2E_CHECKS=$((E2E_CHECKS + trials))
  # kill_trials.py printed each failure (FAIL lines above); counted here.
  for _ in $(seq "$n"); do fail "see the FAIL lines of $name above"; done
}
# B=50 over 2000 rows: 40 steps an epoch, checkpoints every epoch and every 15 steps.
kill_family random kill-random-rank 3 "$KILLS" "$SEED" \
  "[\"--data\", \"$WORK/kill.h5\", \"--model\", \"16-64-64-4\", \"--threads\", \"1\", \"--progress\", \"none\",
    \"--global-batch\", \"50\", \"--lr\", \"0.05\", \"--epochs\", \"4\", \"--checkpoint-every-steps\", \"15\"]" "[]" "[]"
# 4.2 M parameters (34 MB a checkpoint with the momentum), one epoch of 4 steps,
# a checkpoint after every step; the resumes write only final.h5.
kill_family in-write kill-in-checkpoint-write 2 "$WRITE_KILLS" "$((SEED + 1))" \
  "[\"--data\", \"$WORK/write.h5\", \"--model\", \"16-2048-2048-4\", \"--threads\", \"1\", \"--progress\", \"none\",
    \"--global-batch\", \"50\", \"--lr\", \"0.05\", \"--epochs\", \"1\", \"--keep-last\", \"2\"]" \
  "[\"--checkpoint-every-steps\", \"1\"]" "[\"--checkpoint-every-epochs\", \"0\"]"

# ---------------------------------------------------------------------------
# Corpora: a real checkpoint and a real dataset, damaged many ways.
CK_TRAIN=(train --data "$WORK/good.h5" --model 16-32-4 --threads 1 --progress none --global-batch 50 --lr 0.05)
"$MAKE_DS" good "$WORK/good.h5" 1000 16 >/dev/null || { echo "FATAL: make_test_dataset failed"; exit 1; }
begin_case "[at ${SECONDS}s] corpus sources: a 2-rank checkpoint and its clean resume on one rank"
mpi_run 2 120 "$MPITRAIN" "${CK_TRAIN[@]}" --epochs 2 --checkpoint-dir "$WORK/ck-src"
expect_rc 0
solo
run_cmd 120 "${SOLO[@]}" "${CK_TRAIN[@]}" --epochs 3 --checkpoint-dir "$WORK/ck-ref" --resume "$WORK/ck-src/ckpt-e0002.h5"
expect_rc 0
REF_CK=$(state_crc "$WORK/ck-ref/final.h5")
DS_TRAIN=(train --model 16-32-4 --threads 1 --progress none --global-batch 64 --lr 0.05 --epochs 1)
solo
run_cmd 120 "${SOLO[@]}" "${DS_TRAIN[@]}" --data "$WORK/good.h5" --checkpoint-dir "$WORK/ds-ref"
expect_rc 0
REF_DS=$(state_crc "$WORK/ds-ref/final.h5")
check "reference state_crc32 values (checkpoint $REF_CK, dataset $REF_DS)" test -n "$REF_CK" -a -n "$REF_DS"

CK_OUT="$WORK/ckpt-corpus"
DS_OUT="$WORK/data-corpus"
"$MUTATE" corpus "$WORK/ck-src/ckpt-e0002.h5" "$CK_OUT" ckpt-e0002.h5 "$SEED" "$CKPT_FLIPS" "$TRUNCS" "$EXTRA" \
  >"$WORK/ckpt-manifest.tsv" || { echo "FATAL: mutate_h5 failed on the checkpoint"; exit 1; }
"$MUTATE" corpus "$WORK/good.h5" "$DS_OUT" data.h5 "$((SEED + 2))" "$DATA_FLIPS" "$TRUNCS" "$EXTRA" \
  >"$WORK/data-manifest.tsv" || { echo "FATAL: mutate_h5 failed on the dataset"; exit 1; }
mkdir -p "$CK_OUT/fifo" "$DS_OUT/fifo"
mkfifo "$CK_OUT/fifo/ckpt-e0002.h5" "$DS_OUT/fifo/data.h5"
printf 'fifo\tfifo\tthe file is a FIFO\tmeta\n' | tee -a "$WORK/ckpt-manifest.tsv" >>"$WORK/data-manifest.tsv"

while IFS=$'\t' read -r id _ _ _; do
  echo ckpt-e0002.h5 >"$CK_OUT/$id/latest"
  solo
  bg_run "ck-$id" 60 "${SOLO[@]}" "${CK_TRAIN[@]}" --epochs 3 --checkpoint-dir "$CK_OUT/$id" --resume
done <"$WORK/ckpt-manifest.tsv"
while IFS=$'\t' read -r id _ _ _; do
  solo
  bg_run "ds-$id" 60 "${SOLO[@]}" "${DS_TRAIN[@]}" --data "$DS_OUT/$id/data.h5" --checkpoint-dir "$DS_OUT/$id/ck" \
    --metrics "$DS_OUT/$id/m.jsonl"
done <"$WORK/data-manifest.tsv"
# The first case of each family again on 2 ranks: still one line, from rank 0.
MULTI_CK=$(awk -F'\t' '!seen[$2]++ { print $1 }' "$WORK/ckpt-manifest.tsv")
for id in $MULTI_CK; do
  mkdir -p "$WORK/ck2/$id"
  cp -a "$CK_OUT/$id/." "$WORK/ck2/$id/"
  bg_mpi_run "ck2-$id" 2 60 "$MPITRAIN" "${CK_TRAIN[@]}" --epochs 3 --checkpoint-dir "$WORK/ck2/$id" --resume
done

# The bad-config list (beyond e2e_bad_input's): bad_config ID PHRASE ARGS...
CFG="$WORK/configs"
mkdir -p "$CFG"
mkfifo "$CFG/fifo"
head -c $((1 << 20)) /dev/zero | tr '\0' '#' >"$CFG/big.ini"
echo 'epochs = 1' >>"$CFG/big.ini"
printf 'epochs = 1\x00 2\n' >"$CFG/nul.ini"
python3 -c "import random, sys; r = random.Random($SEED); sys.stdout.buffer.write(bytes(r.randrange(256) for _ in range(4096)))" \
  >"$CFG/binary.ini"
printf 'epochs = 1\nlr = 0.1 \xc3\xa9\xff\n' >"$CFG/high-bytes.ini"
printf '[train]\nepochs = 1\n' >"$CFG/section.ini"
printf 'epochs\n' >"$CFG/no-value.ini"
printf 'epochs = 1\nepochs = 2\n' >"$CFG/duplicate.ini"
printf '\xef\xbb\xbfbogus = 1\n' >"$CFG/bom-unknown.ini"
printf 'epochs = 1\nmodel = 16-32-4\nlr = \n' >"$CFG/empty-lr.ini"
D0=(--data "$WORK/good.h5" --model 16-32-4 --progress none)
D=("${D0[@]}" --global-batch 64)
DE=("${D[@]}" --epochs 1)
DNB=("${D0[@]}" --epochs 1)
CFG_IDS=()
bad_config() {  # with METRICS_PATH set: that --metrics instead of the case's own file
  local id=$1 phrase=$2
  shift 2
  printf '%s' "$phrase" >"$(run_dir "cfg-$id")/phrase"
  CFG_IDS+=("$id")
  solo
  bg_run "cfg-$id" 30 "${SOLO[@]}" train "$@" --metrics "${METRICS_PATH:-$WORK/runs/cfg-$id/m.jsonl}"
}
bad_config config-fifo "config file '$CFG/fifo' is not a regular file" "${DE[@]}" --config "$CFG/fifo"
bad_config config-dev-zero "config file '/dev/zero' is not a regular file" "${DE[@]}" --config /dev/zero
bad_config config-over-1mib "is larger than 1 MiB" "${D[@]}" --config "$CFG/big.ini"
bad_config config-nul "line 1 contains the control character 0x00 ('epochs = 1\\x00 2')" "${D[@]}" --config "$CFG/nul.ini"
bad_config config-binary "contains the control character" "${DE[@]}" --config "$CFG/binary.ini"
bad_config config-high-bytes "the argument ('0.1 \\xc3\\xa9\\xff') for option 'lr' is invalid" "${D[@]}" \
  --config "$CFG/high-bytes.ini"
bad_config config-section "unrecognised option 'train.epochs'" "${D[@]}" --config "$CFG/section.ini"
bad_config config-no-value "invalid line 'epochs'" "${D[@]}" --config "$CFG/no-value.ini"
bad_config config-duplicate "option 'epochs' cannot be specified more than once" "${D[@]}" --config "$CFG/duplicate.ini"
bad_config config-bom-unknown "unrecognised option 'bogus'" "${DE[@]}" --config "$CFG/bom-unknown.ini"
bad_config config-empty-lr "for option 'lr' is invalid" --data "$WORK/good.h5" --progress none --global-batch 64 \
  --config "$CFG/empty-lr.ini"
bad_config data-fifo "'$CFG/fifo' is not a regular file" --data "$CFG/fifo" --model 16-32-4 --epochs 1
bad_config data-dev-zero "'/dev/zero' is not a regular file" --data /dev/zero --model 16-32-4 --epochs 1
METRICS_PATH="$CFG/fifo" bad_config metrics-fifo "--metrics '$CFG/fifo' is a FIFO or socket" "${DE[@]}"
bad_config checkpoint-dir-fifo "--checkpoint-dir '$CFG/fifo'" "${DE[@]}" --checkpoint-dir "$CFG/fifo"
bad_config run-dir-fifo "--run-dir '$CFG/fifo' exists and is not a directory" "${DE[@]}" --run-dir "$CFG/fifo"
bad_config epochs-negative "--epochs must be at least 1" "${D[@]}" --epochs -1
bad_config epochs-fraction "for option '--epochs' is invalid" "${D[@]}" --epochs 1.5
bad_config batch-negative "--global-batch must be at least 1 (got -5)" "${DNB[@]}" --global-batch -5
bad_config batch-overflow "--global-batch must be a whole number of samples or auto" "${DNB[@]}" --global-batch 99999999999999999999999
bad_config batch-float "--global-batch must be a whole number of samples or auto" "${DNB[@]}" --global-batch 1e3
bad_config lr-inf "--lr must be a finite number > 0 (got inf)" "${DE[@]}" --lr inf
bad_config lr-empty "for option '--lr' is invalid" "${DE[@]}" --lr ""
bad_config lr-overflow "the argument ('1e999') for option '--lr' is invalid" "${DE[@]}" --lr 1e999
bad_config seed-negative "--seed must be >= 0" "${DE[@]}" --seed -1
bad_config keep-last-negative "--keep-last must be >= 0" "${DE[@]}" --keep-last -1
bad_config checkpoint-every-s-nan "--checkpoint-every-s must be >= 0" "${DE[@]}" --checkpoint-every-s nan
bad_config stall-timeout-negative "--stall-timeout-s must be >= 0" "${DE[@]}" --stall-timeout-s -1
bad_config micro-batch-negative "--micro-batch must be >= 0" "${DE[@]}" --micro-batch -3
bad_config eval-every-negative "--eval-every-steps must be >= 0" "${DE[@]}" --eval-every-steps -3
bad_config val-fraction-1 "--val-fraction must be in [0, 1) (got 1)" "${DE[@]}" --val-fraction 1
bad_config val-fraction-nan "--val-fraction must be in [0, 1) (got nan)" "${DE[@]}" --val-fraction nan
bad_config momentum-1 "--momentum must be in [0, 1) (got 1)" "${DE[@]}" --momentum 1
bad_config weight-decay-negative "--weight-decay must be a finite number >= 0 (got -1)" "${DE[@]}" --weight-decay -1
bad_config batch-schedule-epoch-0 "'0:100' has an epoch <= 0" "${DE[@]}" --batch-schedule 1:50,0:100
bad_config target-not-number "bad --target 'test_acc>=abc'" "${DE[@]}" --target 'test_acc>=abc'
bad_config optimizer-unknown "unknown --optimizer 'bogus'" "${DE[@]}" --optimizer bogus
bad_config model-empty "bad --model ''" --data "$WORK/good.h5" --epochs 1 --model ""
bad_config model-zero-width "bad --model '16-0-4'" --data "$WORK/good.h5" --epochs 1 --model 16-0-4
bad_config model-huge-width "bad --model '16-99999999999999999999-4'" --data "$WORK/good.h5" --epochs 1 \
  --model 16-99999999999999999999-4
bad_config data-newline "--data contains the control character 0x0a" --data $'good\n.h5' --model 16-32-4 --epochs 1
bad_config resume-without-checkpoint "--resume: no checkpoint in" "${DE[@]}" --checkpoint-dir "$WORK/runs/empty-ck" --resume
# Three of them again on 2 ranks: one line, from rank 0.
CFG2_IDS=(config-nul data-fifo metrics-fifo)
bg_mpi_run cfg2-config-nul 2 60 "$MPITRAIN" train "${D[@]}" --config "$CFG/nul.ini" --metrics "$WORK/runs/cfg2-config-nul/m.jsonl"
bg_mpi_run cfg2-data-fifo 2 60 "$MPITRAIN" train --data "$CFG/fifo" --model 16-32-4 --epochs 1 \
  --metrics "$WORK/runs/cfg2-data-fifo/m.jsonl"
bg_mpi_run cfg2-metrics-fifo 2 60 "$MPITRAIN" train "${DE[@]}" --metrics "$CFG/fifo"
bg_wait

# ---------------------------------------------------------------------------
# clean_refusal: the last run ended with one escaped `mpitrain: error:` (or
# rank 0's fatal) line, exit 2 or 3 (or 4: a dataset without its scale
# trains on raw bytes and diverges, which is reported the same way), no
# sanitizer report. Sets WHY to the first thing wrong.
clean_refusal() {
  WHY=""
  local lines
  lines=$(grep -a -c '^mpitrain' "$ERR")
  if grep -a -q -E "$SANITIZER_RE" "$ERR"; then WHY="sanitizer report"
  elif [ "$RC" = 124 ] || [ "$RC" = 137 ]; then WHY="timed out after ${ELAPSED}s (exit $RC)"
  elif [ "$RC" != 2 ] && [ "$RC" != 3 ] && [ "$RC" != 4 ]; then WHY="exit code $RC"
  elif [ "$lines" != 1 ]; then WHY="$lines 'mpitrain' lines on stderr, not 1"
  elif ! grep -a -q -E '^mpitrain: (error: |fatal error on rank 0: )' "$ERR"; then WHY="the line is not 'mpitrain: error: ...'"
  elif grep -a '^mpitrain' "$ERR" | LC_ALL=C grep -q '[^ -~]'; then WHY="the message holds unescaped bytes"
  fi
  [ -z "$WHY" ]
}
max_s() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b ? a : b) }'; }

begin_case "[at ${SECONDS}s] checkpoint corpus: $(wc -l <"$WORK/ckpt-manifest.tsv") damaged copies resumed on one rank"
while IFS=$'\t' read -r id family what region; do
  use_run "ck-$id"
  dir="$CK_OUT/$id"
  files=$(ls -A "$dir" | tr '\n' ' ')
  if [ "$RC" = 0 ]; then
    crc=$(state_crc "$dir/final.h5")
    if [ "$crc" != "$REF_CK" ]; then
      record "ckpt-$family" "$id" failure "$ELAPSED" "resumed ($what) to state_crc32 $crc, not the clean resume's $REF_CK"
    elif [ "$region" != meta ]; then
      record "ckpt-$family" "$id" failure "$ELAPSED" "accepted a flip in $region ($what): the checksum must refuse it"
    else
      record "ckpt-$family" "$id" accepted "$ELAPSED" "$what: resumed bitwise equal"
    fi
  elif ! clean_refusal; then
    record "ckpt-$family" "$id" failure "$ELAPSED" "$what: $WHY"
  elif [ "$files" != "ckpt-e0002.h5 latest " ]; then
    record "ckpt-$family" "$id" failure "$ELAPSED" "$what: refused, but the directory now holds: $files"
  else
    record "ckpt-$family" "$id" refused "$ELAPSED" "$what: $(grep -a -m1 '^mpitrain' "$ERR" | cut -c1-200)"
  fi
done <"$WORK/ckpt-manifest.tsv"
for id in $MULTI_CK; do
  use_run "ck2-$id"
  if [ "$RC" = 0 ]; then  # as on one rank, where its result was compared
    record ckpt-on-2-ranks "$id" accepted "$ELAPSED" "accepted on 2 ranks"
  elif clean_refusal; then
    record ckpt-on-2-ranks "$id" refused "$ELAPSED" "$(grep -a -m1 '^mpitrain' "$ERR" | cut -c1-200)"
  else
    record ckpt-on-2-ranks "$id" failure "$ELAPSED" "on 2 ranks: $WHY"
  fi
done

begin_case "dataset corpus: $(wc -l <"$WORK/data-manifest.tsv") damaged copies trained from on one rank"
while IFS=$'\t' read -r id family what region; do
  use_run "ds-$id"
  dir="$DS_OUT/$id"
  if [ "$RC" = 0 ]; then
    crc=$(state_crc "$dir/ck/final.h5")
    if [ -z "$crc" ]; then
      record "data-$family" "$id" failure "$ELAPSED" "$what: exit 0 without a final checkpoint"
    elif [ "$crc" = "$REF_DS" ]; then
      record "data-$family" "$id" accepted "$ELAPSED" "$what: trained, same result as the clean file"
    else
      record "data-$family" "$id" changed "$ELAPSED" "$what ($region): trained, a different result"
    fi
  elif ! clean_refusal; then
    record "data-$family" "$id" failure "$ELAPSED" "$what: $WHY"
  elif [ "$RC" = 2 ] && [ "$(ls -A "$dir" | tr '\n' ' ')" != "data.h5 " ]; then
    record "data-$family" "$id" failure "$ELAPSED" "$what: refused, but wrote $(ls -A "$dir" | tr '\n' ' ')"
  else
    record "data-$family" "$id" refused "$ELAPSED" "$what: $(grep -a -m1 '^mpitrain' "$ERR" | cut -c1-200)"
  fi
done <"$WORK/data-manifest.tsv"

begin_case "bad-config list: ${#CFG_IDS[@]} cases (e2e_bad_input has $(grep -c -E '^ *(METRICS_PATH=.*)?bad_case ' "$here/../e2e/e2e_bad_input.sh") more)"
for id in "${CFG_IDS[@]}" "${CFG2_IDS[@]/#/cfg2-}"; do
  run=cfg-$id
  [[ $id == cfg2-* ]] && run=$id
  use_run "$run"
  phrase=$(cat "$WORK/runs/cfg-${id#cfg2-}/phrase")
  if ! clean_refusal; then
    record bad-config "$id" failure "$ELAPSED" "$WHY"
  elif [ "$RC" != 2 ]; then
    record bad-config "$id" failure "$ELAPSED" "exit code $RC, not 2"
  elif ! grep -a '^mpitrain' "$ERR" | grep -q -F -- "$phrase"; then
    record bad-config "$id" failure "$ELAPSED" "the error line lacks '$phrase'"
  elif [ -s "$OUT" ] || [ -e "$WORK/runs/$run/m.jsonl" ]; then
    record bad-config "$id" failure "$ELAPSED" "refused after start-up (stdout or a metrics file written)"
  else
    record bad-config "$id" refused "$ELAPSED" "$(grep -a -m1 '^mpitrain' "$ERR" | cut -c1-200)"
  fi
done

# ---------------------------------------------------------------------------
begin_case "summary"
python3 - "$RESULTS" "$WORK/summary.json" "$SEED" <<'PY'
import json, sys
results, out, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rows = {}
for line in open(results):
    family, cid, outcome, secs, detail = line.rstrip("\n").split("\t", 4)
    r = rows.setdefault(family, {"trials": 0, "refused": 0, "accepted_equal": 0, "accepted_changed": 0,
                                 "missed": 0, "failures": 0, "max_s": 0.0})
    r["trials"] += 1
    key = {"refused": "refused", "accepted": "accepted_equal", "ok": "accepted_equal", "changed": "accepted_changed",
           "missed": "missed", "failure": "failures"}[outcome]
    r[key] += 1
    r["max_s"] = max(r["max_s"], float(secs))
cols = ["trials", "refused", "accepted_equal", "accepted_changed", "missed", "failures", "max_s"]
print(f"{'family':26s}" + "".join(f"{c:>17s}" for c in cols))
for family, r in rows.items():
    print(f"{family:26s}" + "".join(f"{r[c]:>17.2f}" if c == "max_s" else f"{r[c]:>17d}" for c in cols))
total = {c: sum(r[c] for r in rows.values()) for c in cols[:-1]}
print(f"{'total':26s}" + "".join(f"{total[c]:>17d}" for c in cols[:-1]))
print("max_s: kill families, seconds from the kill to the launcher's exit; the others, seconds of the run")
json.dump({"seed": seed, "families": rows, "total": total}, open(out, "w"), indent=1)
PY
echo "results: $RESULTS, summary: $WORK/summary.json"
# The corpora (up to a few hundred MB with the oversized attributes) are
# kept only when something failed, for the diagnosis.
[ "$E2E_FAILS" -eq 0 ] && rm -rf "$CK_OUT" "$DS_OUT" "$WORK/ck2"
e2e_finish
