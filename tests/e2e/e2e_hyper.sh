#!/usr/bin/env bash
# The large-batch options end to end under mpiexec -n 2: divergence is caught
# on every rank with one message and exit code 4; early stopping and the
# target stop and record at the right epoch and step; the batch-size schedule
# changes the steps per epoch; the LR plan is printed before training.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
e2e_init "$@"

N=500
"$MAKE_DS" good "$WORK/good.h5" "$N" 16 || { echo "FATAL: make_test_dataset good failed"; exit 1; }
COMMON=(--data "$WORK/good.h5" --model 16-32-4 --lr-scaling none --threads 1)

# ---------------------------------------------------------------------------
begin_case "absurd learning rate: diverges, one message, exit 4, no hang"
METRICS="$WORK/diverge.json"
mpi_run 2 60 "$MPITRAIN" train "${COMMON[@]}" --epochs 5 --global-batch 50 --lr 1e6 --metrics "$METRICS"
expect_rc 4
expect_fast 30
expect_one_error_line "training diverged at epoch 1 step"
expect_stderr "Lower --lr"
# The metrics file ends with a line saying so, naming the step and the rate.
expect_py \
  "L[-1]['type'] == 'diverged'" \
  "L[-1]['epoch'] == 1 and 1 <= L[-1]['step'] <= 5" \
  "L[-1]['lr'] == 1e6" \
  "not E"

# ---------------------------------------------------------------------------
begin_case "early stopping: stops after patience epochs without improvement"
METRICS="$WORK/early.json"
# A min-delta no loss change can beat: the best epoch stays 1, so with
# patience 2 the run stops after epoch 3 of 10.
mpi_run 2 60 "$MPITRAIN" train "${COMMON[@]}" --epochs 10 --global-batch 50 --lr 0.05 --val-fraction 0.2 \
  --early-stop-patience 2 --early-stop-min-delta 100 --metrics "$METRICS"
expect_rc 0
expect_stdout "early stop: val_loss has not improved for 2 epochs; best epoch 1"
expect_py \
  "len(E) == 3" \
  "L[-1]['type'] == 'summary' and L[-1]['stop_reason'] == 'early_stop'" \
  "L[-1]['best_epoch'] == 1 and L[-1]['best_value'] == E[0]['val_loss']" \
  "H['val_rows'] == 100 and H['train_rows'] == 400" \
  "all(math.isfinite(d['val_loss']) and 0 <= d['val_acc'] <= 1 for d in E)"

# ---------------------------------------------------------------------------
begin_case "target: recorded at the first epoch that meets it, run stops there"
METRICS="$WORK/target.json"
mpi_run 2 60 "$MPITRAIN" train "${COMMON[@]}" --epochs 20 --global-batch 50 --lr 0.01 --momentum 0.5 \
  --val-fraction 0.2 --target "val_acc>=0.9" --stop-at-target --metrics "$METRICS"
expect_rc 0
expect_stdout "target val_acc>=0.9 reached after epoch"
# The first epoch line whose val_acc >= 0.9 is the last one, and the summary
# records its epoch, global step count and samples.
expect_py \
  "(first := next(d for d in E if d['val_acc'] >= 0.9)) is E[-1]" \
  "all(d['val_acc'] < 0.9 for d in E[:-1])" \
  "L[-1]['stop_reason'] == 'target' and L[-1]['target_reached'] is True" \
  "L[-1]['target_epoch'] == E[-1]['epoch'] and L[-1]['target_step'] == E[-1]['step']" \
  "L[-1]['target_samples'] == E[-1]['samples'] == E[-1]['epoch'] * 400" \
  "E[-1]['target_reached'] is True and all(d['target_reached'] is False for d in E[:-1])" \
  "len(E) < 20"

# ---------------------------------------------------------------------------
begin_case "target with --eval-every-steps: found at a step inside an epoch, run stops there"
METRICS="$WORK/target-steps.json"
# 400 train rows at B=50: 8 steps per epoch; evaluation every 3 steps.
mpi_run 2 60 "$MPITRAIN" train "${COMMON[@]}" --epochs 20 --global-batch 50 --lr 0.01 --momentum 0.5 \
  --val-fraction 0.2 --target "val_acc>=0.9" --stop-at-target --eval-every-steps 3 --metrics "$METRICS"
expect_rc 0
expect_stdout "[target val_acc>=0.9 reached]"
# The summary's step is the first evaluation (epoch end or every 3rd step)
# that meets the target; the eval lines come every 3 steps; the time to it
# without evaluation leaves out at most the evaluations' time.
expect_py \
  "(ev := [d for d in L if d.get('type') == 'eval']) and all(d['step'] % 3 == 0 for d in ev)" \
  "(first := next(d for d in L if d.get('type') in ('eval', 'epoch') and d['val_acc'] >= 0.9)) is not None" \
  "L[-1]['stop_reason'] == 'target' and L[-1]['target_step'] == first['step']" \
  "L[-1]['target_samples'] == first['samples'] and L[-1]['target_epoch'] == first['epoch']" \
  "all(d['val_acc'] < 0.9 for d in L if d.get('type') in ('eval', 'epoch') and d['step'] < first['step'])" \
  "first['type'] != 'eval' or E[-1]['step'] == first['step']" \
  "0 < L[-1]['target_train_time_s'] < L[-1]['target_time_s']" \
  "L[-1]['target_time_s'] - L[-1]['target_train_time_s'] <= sum(d['eval_time_s'] for d in E) + 1e-6"

# ---------------------------------------------------------------------------
begin_case "target never reached is reported as such"
METRICS="$WORK/target-miss.json"
mpi_run 2 60 "$MPITRAIN" train "${COMMON[@]}" --epochs 2 --global-batch 50 --lr 0.01 \
  --target "train_loss<=0.00001" --metrics "$METRICS"
expect_rc 0
expect_stdout "target train_loss<=0.00001 not reached in 2 epochs"
expect_py "L[-1]['target_reached'] is False and 'target_step' not in L[-1]" "len(E) == 2"

# ---------------------------------------------------------------------------
begin_case "batch schedule: steps per epoch follow B, the plan is printed, micro-batches"
METRICS="$WORK/batch.json"
# B=50 for epochs 1-2 (10 steps each), 100 for epoch 3 (5), 250 for epoch 4 (2):
# 27 steps. Linear scaling from ref 50: the rate doubles, then x5.
mpi_run 2 60 "$MPITRAIN" train --data "$WORK/good.h5" --model 16-32-4 --threads 1 --epochs 4 --global-batch 50 \
  --lr 0.01 --ref-batch 50 --lr-scaling linear --batch-schedule "2:100,3:250" --micro-batch 7 \
  --metrics-every-steps 1 --metrics "$METRICS"
expect_rc 0
expect_stdout "lr plan:"
expect_stdout "batch 100"
expect_py \
  "[d['global_batch'] for d in E] == [50, 50, 100, 250]" \
  "[d['steps_in_epoch'] for d in E] == [10, 10, 5, 2]" \
  "[d['step'] for d in E] == [10, 20, 25, 27]" \
  "H['total_steps'] == 27 and H['rows_per_pass'] == 7" \
  "[d['lr'] for d in E] == [0.01, 0.01, 0.02, 0.05]" \
  "len(S := [d for d in L if d['type'] == 'step']) == 27" \
  "[d['global_batch'] for d in S] == [50] * 20 + [100] * 5 + [250] * 2" \
  "[p['what'] for p in H['lr_plan']][0] == 'start' and [p['what'] for p in H['lr_plan']][-1] == 'end'" \
  "any(p['what'] == 'batch 250' and p['step'] == 25 for p in H['lr_plan'])"

# ---------------------------------------------------------------------------
begin_case "bad hyperparameter options are refused before training"
for spec in \
  "--lr-decay zigzag|unknown --lr-decay 'zigzag'" \
  "--optimizer adam|unknown --optimizer 'adam'" \
  "--batch-schedule 2:x|--batch-schedule" \
  "--warmup-epochs 1 --warmup-steps 5|give --warmup-epochs or --warmup-steps, not both" \
  "--target val_acc>=0.9|there is no validation split" \
  "--lr-decay step|--lr-decay step needs --lr-milestones" \
  "--val-fraction 1.5|--val-fraction must be in [0, 1)"; do
  args=${spec%%|*}
  phrase=${spec#*|}
  METRICS="$WORK/bad.json"
  # shellcheck disable=SC2086
  mpi_run 2 60 "$MPITRAIN" train "${COMMON[@]}" --epochs 1 --global-batch 50 --lr 0.01 $args --metrics "$METRICS"
  expect_failure
  expect_one_error_line "$phrase"
  expect_no_file "$METRICS"
done

e2e_finish
