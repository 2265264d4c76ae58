#!/usr/bin/env bash
# --global-batch auto and --batch-changes end to end under mpiexec (issue 16).
#   1. auto on labels drawn at random (a gradient of mostly noise: noise
#      scale well above --ref-batch): its first choice (once the noise scale's
#      estimates are positive) moves B up, to the
#      candidate whose goodput, recomputed here from the logged fit and noise
#      scale, is the largest; the batch_change lines, the step lines'
#      batches, the summary's batch_changes text and final batch agree, and
#      the run ends on AdaScale's iterations (not on an epoch bound);
#   2. auto on learnable data on 2 ranks with --deterministic, then a replay
#      of its own changes (--batch-changes, the summary's text) on 1 and 3
#      ranks: bitwise the same state_crc32 (the choices depend on timings;
#      the training given the choices does not depend on P);
#   3. a fixed --batch-changes list that changes B mid-epoch, up and down:
#      P = 1, 2, 3 and P = 1 with micro-batches bitwise equal, every row of
#      an epoch once (samples per epoch = N, but the last epoch, which
#      AdaScale's iterations end part-way);
#   4. resume from a mid-epoch checkpoint taken after a change, on another
#      rank count: bitwise equal to the uninterrupted run; the resumed run's
#      summary still lists the changes before the checkpoint;
#   5. --eval-every-samples 200 (the noise run): an eval line after exactly
#      the steps whose samples pass a multiple of 200, but at epoch ends and
#      at the last step (where AdaScale's iterations end the run);
#   6. refusals: auto without --batch-range, without adascale, with
#      --batch-changes; a malformed range or change list; a range above the data.
here=$(cd "$(dirname "$0")" && pwd)
: "${E2E_JOBS:=3}"
source "$here/lib.sh"
e2e_init "$@"
need_checkpoint_tools

DATA="$WORK/data.h5"    # 512 train rows, 128 test rows, 16 features, 4 classes
NOISE="$WORK/noise.h5"  # the same with random train labels
"$MAKE_DS" good "$DATA" 512 16 && "$MAKE_DS" random-labels "$NOISE" 512 16 ||
  { echo "FATAL: make_test_dataset failed"; exit 1; }
CORE0=("$MPITRAIN" train --model 16-32-4 --lr 0.05 --momentum 0.9 --epochs 4 --seed 3 --progress lines
  --keep-last 0 --ref-batch 32 --metrics-every-steps 1)
CORE=("${CORE0[@]}" --lr-scaling adascale)
AUTO=("${CORE[@]}" --global-batch auto --batch-range 16:128 --goodput-every 5)
DET=(--deterministic --deterministic-unit 8)
CHANGES=(--global-batch 32 --batch-changes 5:96,8:24,30:64)  # down within epoch 1 (step 11 ends it), up within epoch 2
R() { echo "$WORK/runs/$1"; }
summary_changes() { /usr/bin/python3 -c "import json,sys; print(json.loads(open(sys.argv[1]).read().splitlines()[-1])['batch_changes'])" "$1"; }

run() {  # run ID NP ARGS...
  local id=$1 np=$2 dir
  shift 2
  dir=$(run_dir "$id")
  bg_mpi_run "$id" "$np" 90 "$@" --checkpoint-dir "$dir/ck" --metrics "$dir/m.json"
}
CASE_IDS=()
bad_case() {  # bad_case ID DESCRIPTION PHRASE ARGS...
  local id=$1 desc=$2 phrase=$3 dir
  shift 3
  dir=$(run_dir "$id")
  bad_input_run "$id" "$desc" "$phrase" 60 "${CORE0[@]}" --data "$DATA" "$@" --metrics "$dir/m.json" \
    --checkpoint-dir "$dir/ck"
}

run noise 2 "${AUTO[@]}" --data "$NOISE" --eval-every-samples 200
run auto-det 2 "${AUTO[@]}" --data "$DATA" "${DET[@]}"
for p in 1 2 3; do run "fixed$p" "$p" "${CORE[@]}" --data "$DATA" "${DET[@]}" "${CHANGES[@]}" --checkpoint-every-steps 7; done
run fixed-micro 1 "${CORE[@]}" --data "$DATA" "${DET[@]}" "${CHANGES[@]}" --micro-batch 16
bad_case no-range "auto without --batch-range" "--global-batch auto needs --batch-range MIN:MAX" --global-batch auto \
  --lr-scaling adascale
bad_case no-adascale "auto with the linear rule (the default)" "--global-batch auto changes the batch during an epoch" \
  --global-batch auto --batch-range 16:128
bad_case auto-and-replay "auto with --batch-changes" "--global-batch auto chooses the batch itself" \
  --global-batch auto --batch-range 16:128 --batch-changes 5:64 --lr-scaling adascale
bad_case bad-range "a range with MIN > MAX" "--batch-range '128:16' is not MIN:MAX" --global-batch auto \
  --batch-range 128:16 --lr-scaling adascale
bad_case range-without-auto "--batch-range with a fixed batch" "--batch-range is for --global-batch auto" \
  --global-batch 32 --batch-range 16:128 --lr-scaling adascale
bad_case bad-changes "a change list whose steps go back" "--batch-changes '9:64,5:32'" --batch-changes 9:64,5:32 --lr-scaling adascale
bad_case big-range "a range above the data" "--batch-range maximum 1024 is larger than the training set (512 rows)" \
  --global-batch auto --batch-range 16:1024 --lr-scaling adascale
bad_case big-change "a change above the data" "--batch-changes batch 600 is larger than the training set" \
  --batch-changes 5:600 --lr-scaling adascale
bad_case bad-global "a global batch that is neither a number nor auto" "--global-batch must be a whole number of samples or auto (got 'automatic')" \
  --global-batch automatic --lr-scaling adascale
bg_wait

# The goodput of batch b from a batch_change line (P = 2, no units): ref x r(b) / T(b) (goodput.hpp).
GOODPUT="(gp := lambda c, b: b * min(max((c['noise_scale'] / 32 + 1) / (c['noise_scale'] / b + 1), min(1, b / 32)), max(1, b / 32)) * 32 / b / (c['fit_alpha_s'] + c['fit_beta_s_per_row'] * math.ceil(b / 2) + c['fit_comm_s'])) is not None"
CANDIDATES="(cand := sorted({16, 128} | {math.floor(16 * 8 ** (i / 49) + 0.5) for i in range(1, 49)})) is not None"
begin_case "auto on a noise-only gradient: the first choice moves B up, to the best goodput recomputed here"
use_run noise
METRICS="$(R noise)/m.json"
expect_rc 0
expect_stdout "global batch auto: every 5 steps, of 48 batches in [16, 128]"
expect_stdout ": global batch 32 -> "
expect_py "$GOODPUT" "$CANDIDATES" \
  "(C := [d for d in L if d.get('type') == 'batch_change']) and C[0]['step'] % 5 == 0 and C[0]['to'] > 32" \
  "L[-1]['stop_reason'] == 'iterations' and L[-1]['scale_invariant_iters'] >= 64" \
  "C[0]['noise_scale'] > 32 and C[0]['reason'] == 'goodput' and C[0]['fit_alpha_s'] > 0" \
  "all(abs(gp(c, c['to']) / c['goodput_to'] - 1) < 1e-6 and abs(gp(c, c['from']) / c['goodput_from'] - 1) < 1e-6 for c in C)" \
  "all(c['to'] == max(cand, key=lambda b: gp(c, b)) and c['goodput_to'] > 1.05 * c['goodput_from'] for c in C)" \
  "all(16 <= c['to'] <= 128 for c in C)" \
  "L[-1]['batch_changes'] == ','.join(f\"{c['step']}:{c['to']}\" for c in C)" \
  "L[-1]['final_global_batch'] == C[-1]['to']" \
  "(S := [d for d in L if d.get('type') == 'step']) and [d['global_batch'] for d in S[:C[0]['step']]] == [32] * C[0]['step']" \
  "all(d['global_batch'] <= 128 for d in S) and S[C[0]['step']]['global_batch'] == C[0]['to']" \
  "L[0]['global_batch_auto'] is True and L[0]['batch_range_max'] == 128" \
  "(V := [d for d in L if d.get('type') == 'eval']) and (X := [d for d in S if d['samples'] // 200 > (d['samples'] - d['global_batch']) // 200 and d['samples'] % 512 and d['step'] < L[-1]['steps']])" \
  "[v['step'] for v in V] == [d['step'] for d in X]"

begin_case "auto, 2 ranks, --deterministic; its changes replayed on 1 and 3 ranks: bitwise the same"
use_run auto-det
expect_rc 0
AUTO_CHANGES=$(summary_changes "$(R auto-det)/m.json")
echo "  auto-det changes: '$AUTO_CHANGES'"
for p in 1 3; do
  REPLAY=(--global-batch 32)
  [ -n "$AUTO_CHANGES" ] && REPLAY+=(--batch-changes "$AUTO_CHANGES")
  mpi_run "$p" 90 "${CORE[@]}" --data "$DATA" "${DET[@]}" "${REPLAY[@]}" --checkpoint-dir "$WORK/replay$p" \
    --metrics "$WORK/replay$p.json"
  expect_rc 0
  check "replay on $p ranks: final state_crc32 == the auto run's" \
    _same_nonempty "$(state_crc "$(R auto-det)/ck/final.h5")" "$(state_crc "$WORK/replay$p/final.h5")"
  check "replay on $p ranks reports the same changes" test "$(summary_changes "$WORK/replay$p.json")" = "$AUTO_CHANGES"
done

begin_case "--batch-changes mid-epoch, up and down: P = 1, 2, 3 and micro-batches bitwise equal, every row once"
REF_CRC=$(state_crc "$(R fixed1)/ck/final.h5")
for id in fixed1 fixed2 fixed3 fixed-micro; do
  use_run "$id"
  expect_rc 0
  check "$id: final state_crc32 == fixed1's ($REF_CRC)" _same_nonempty "$REF_CRC" "$(state_crc "$(R "$id")/ck/final.h5")"
done
METRICS="$(R fixed2)/m.json"
expect_stdout "step 8: global batch 96 -> 24"
expect_py \
  "[(c['step'], c['from'], c['to'], c['reason']) for c in L if c.get('type') == 'batch_change'] == [(5, 32, 96, 'replay'), (8, 96, 24, 'replay'), (30, 24, 64, 'replay')]" \
  "(S := [d for d in L if d.get('type') == 'step']) and [d['global_batch'] for d in S[:11]] == [32] * 5 + [96] * 3 + [24] * 2 + [16]" \
  "all(d['samples'] == 512 * d['epoch'] for d in E[:-1]) and E[-1]['samples'] <= 512 * E[-1]['epoch']" \
  "E[0]['steps_in_epoch'] == 11 and E[0]['global_batch'] == 24 and E[1]['steps_in_epoch'] == 20" \
  "L[-1]['batch_changes'] == '5:96,8:24,30:64'" \
  "L[-1]['stop_reason'] == 'iterations' and L[-1]['scale_invariant_iters'] >= 64"

begin_case "resume on 3 ranks from a mid-epoch checkpoint after the changes: bitwise equal, changes kept"
cp -r "$(R fixed2)/ck" "$WORK/resume-ck"
rm -f "$WORK/resume-ck/final.h5"
CK=$(ls "$WORK/resume-ck"/ckpt-e0002-s*.h5 | head -1)
check "a mid-epoch checkpoint of epoch 2 exists" test -n "$CK"
mpi_run 3 90 "${CORE[@]}" --data "$DATA" "${DET[@]}" "${CHANGES[@]}" --checkpoint-dir "$WORK/resume-ck" \
  --metrics "$WORK/resume.json" --resume "$CK"
expect_rc 0
check "resumed final state_crc32 == uninterrupted" \
  _same_nonempty "$(state_crc "$(R fixed2)/ck/final.h5")" "$(state_crc "$WORK/resume-ck/final.h5")"
check "the resumed summary lists every change" test "$(summary_changes "$WORK/resume.json")" = "5:96,8:24,30:64"

check_bad_input_runs

e2e_finish
