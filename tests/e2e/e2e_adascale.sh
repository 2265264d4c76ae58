#!/usr/bin/env bash
# --lr-scaling adascale end to end under mpiexec (issue 16). On a 512-row
# dataset at B = 128 with --ref-batch 32 (S = 4) and --epochs 6, the
# reference run is 6 x 16 = 96 iterations:
#   1. the run ends after 96 scale-invariant iterations (stop_reason
#      "iterations"), in fewer steps than the reference run; every step's gain
#      is in [1, 4], the iterations are the running sum of the gains, and every
#      step's rate is the gain times the reference schedule (1 epoch of warmup
#      from 0, then cosine) at the iterations before it, recomputed here;
#   2. P-invariance: with --deterministic, P = 1, 2, 3 and P = 1 with
#      micro-batches end with the same state_crc32, steps and iterations;
#   3. resume: a deterministic run resumed from its epoch-3 checkpoint on
#      another rank count ends bitwise equal to the uninterrupted run;
#   4. refusals: another optimizer, a batch schedule, a reference batch larger
#      than the data: one "mpitrain: error:" line, nothing written.
here=$(cd "$(dirname "$0")" && pwd)
: "${E2E_JOBS:=3}"
source "$here/lib.sh"
e2e_init "$@"
need_checkpoint_tools

DATA="$WORK/data.h5"  # 512 train rows, 128 test rows, 16 features, 4 classes
"$MAKE_DS" good "$DATA" 512 16 || { echo "FATAL: make_test_dataset failed"; exit 1; }
ADA_CORE=("$MPITRAIN" train --data "$DATA" --model 16-32-4 --lr 0.05 --momentum 0.9 --epochs 6 --seed 3
  --progress none --keep-last 0)
ADA_BASE=("${ADA_CORE[@]}" --global-batch 128 --lr-scaling adascale)
ADA=("${ADA_BASE[@]}" --ref-batch 32)
DET=(--deterministic --deterministic-unit 8)
R() { echo "$WORK/runs/$1"; }

ada_run() {  # ada_run ID NP ARGS...
  local id=$1 np=$2 dir
  shift 2
  dir=$(run_dir "$id")
  bg_mpi_run "$id" "$np" 90 "${ADA[@]}" --checkpoint-dir "$dir/ck" --metrics "$dir/m.json" "$@"
}
CASE_IDS=()
bad_case() {  # bad_case ID DESCRIPTION PHRASE ARGS... (ARGS after ADA_BASE)
  local id=$1 desc=$2 phrase=$3 dir
  shift 3
  dir=$(run_dir "$id")
  bad_input_run "$id" "$desc" "$phrase" 60 "${ADA_BASE[@]}" "$@" --metrics "$dir/m.json" --checkpoint-dir "$dir/ck"
}

ada_run plain 2 --warmup-epochs 1 --lr-decay cosine --metrics-every-steps 1
for p in 1 2 3; do ada_run "det$p" "$p" "${DET[@]}"; done
# B = ref = 48: 11 steps an epoch, the last one 32 rows; every gain is 1.
for rule in adascale none; do
  bg_mpi_run "at-ref-$rule" 2 90 "${ADA_CORE[@]}" --global-batch 48 --ref-batch 48 --lr-scaling "$rule" \
    --checkpoint-dir "$(R "at-ref-$rule")/ck" --metrics "$(R "at-ref-$rule")/m.json"
done
ada_run det-micro 1 "${DET[@]}" --micro-batch 16
bad_case bad-adamw "AdaScale with AdamW" "--lr-scaling adascale works with --optimizer sgd (got adamw)" \
  --ref-batch 32 --optimizer adamw
bad_case bad-schedule "AdaScale with a batch schedule" "--lr-scaling adascale runs one global batch" \
  --ref-batch 32 --batch-schedule 2:256
bad_case bad-ref "AdaScale with --ref-batch larger than the data" \
  "--ref-batch 1024 is larger than the training set (512 rows)" --ref-batch 1024
bg_wait

begin_case "adascale, P = 2: 96 scale-invariant iterations, each rate the gain x the reference schedule"
use_run plain
METRICS="$(R plain)/m.json"
expect_rc 0
expect_stdout "adascale: x a gain measured every step, in [1, 4] at B=128"
expect_stdout "lr plan in scale-invariant iterations"
expect_py \
  "L[-1]['type'] == 'summary' and L[-1]['stop_reason'] == 'iterations'" \
  "96 <= L[-1]['scale_invariant_iters'] < 96 + 4" \
  "(S := [d for d in L if d.get('type') == 'step']) and len(S) == L[-1]['steps']" \
  "24 < len(S) < 96" \
  "all(1 <= d['gain'] <= 4 for d in S)" \
  "max(d['gain'] for d in S) > 1.05" \
  "all(abs(b['scale_invariant_iters'] - a['scale_invariant_iters'] - b['gain']) < 1e-6 * b['scale_invariant_iters'] for a, b in zip(S, S[1:]))" \
  "abs(S[0]['scale_invariant_iters'] - S[0]['gain']) < 1e-7" \
  "(ref := lambda t: 0.05 * (min(1, (math.floor(t) + 1) / 16) if t < 16 else 0.5 * (1 + math.cos(math.pi * min(1, (t / 16 - 1) / 5))))) is not None" \
  "all(abs(d['lr'] - d['gain'] * ref(d['scale_invariant_iters'] - d['gain'])) <= 1e-6 * d['lr'] + 1e-12 for d in S)" \
  "E[-1]['scale_invariant_iters'] == L[-1]['scale_invariant_iters'] and 'gain' in E[-1]"

begin_case "adascale at B = ref (partial last batches included) is the reference run, bit for bit"
use_run at-ref-adascale
expect_rc 0
check "final state_crc32 with adascale == with --lr-scaling none" \
  _same_nonempty "$(state_crc "$(R at-ref-adascale)/ck/final.h5")" "$(state_crc "$(R at-ref-none)/ck/final.h5")"
METRICS="$(R at-ref-adascale)/m.json"
expect_py "L[-1]['stop_reason'] == 'iterations' and L[-1]['steps'] == 66 and L[-1]['scale_invariant_iters'] == 66" \
  "all(d['gain'] == 1 for d in E)"

begin_case "adascale --deterministic: P = 1, 2, 3 and P = 1 with micro-batches end bitwise equal"
REF_CRC=$(state_crc "$(R det1)/ck/final.h5")
for id in det1 det2 det3 det-micro; do
  use_run "$id"
  expect_rc 0
  check "$id: final state_crc32 $(state_crc "$(R "$id")/ck/final.h5") == det1's $REF_CRC" \
    _same_nonempty "$REF_CRC" "$(state_crc "$(R "$id")/ck/final.h5")"
  METRICS="$(R "$id")/m.json"
  expect_py "L[-1]['stop_reason'] == 'iterations'" \
    "(a := L[-1]) and (b := json.loads(open('$(R det1)/m.json').read().splitlines()[-1])) and \
(a['steps'], a['scale_invariant_iters'], a['test_acc']) == (b['steps'], b['scale_invariant_iters'], b['test_acc'])"
done

begin_case "adascale --deterministic resumed from epoch 3 on 3 ranks: equal to the uninterrupted 2-rank run"
cp -r "$(R det2)/ck" "$WORK/resume-ck"
rm -f "$WORK/resume-ck/final.h5"
mpi_run 3 90 "${ADA[@]}" "${DET[@]}" --checkpoint-dir "$WORK/resume-ck" --metrics "$WORK/resume.json" \
  --resume "$WORK/resume-ck/ckpt-e0003.h5"
expect_rc 0
check "resumed final state_crc32 == uninterrupted" \
  _same_nonempty "$(state_crc "$(R det2)/ck/final.h5")" "$(state_crc "$WORK/resume-ck/final.h5")"

check_bad_input_runs

e2e_finish
