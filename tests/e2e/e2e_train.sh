#!/usr/bin/env bash
# `mpiexec -n P mpitrain train` on small generated files: the run succeeds,
# learns, and reports what it did correctly (metrics JSON lines, stdout).
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
e2e_init "$@"

N=500  # train rows; not a multiple of any batch below, so the last batch of an epoch is partial
"$MAKE_DS" good "$WORK/good.h5" "$N" 16 || { echo "FATAL: make_test_dataset good failed"; exit 1; }
"$MAKE_DS" good-f32 "$WORK/good-f32.h5" "$N" 16 || { echo "FATAL: make_test_dataset good-f32 failed"; exit 1; }
"$MAKE_DS" regression "$WORK/regression.h5" "$N" 16 || { echo "FATAL: make_test_dataset regression failed"; exit 1; }

KEYS='["epoch","step","samples","lr","train_loss","train_acc","test_loss","test_acc","time_s","samples_per_s"]'
# 16 inputs, 32 hidden, 4 classes: (16*32 + 32) + (32*4 + 4) parameters.
PARAMS=$(((16 * 32 + 32) + (32 * 4 + 4)))

# ---------------------------------------------------------------------------
begin_case "2 ranks, classification: metrics, stdout, learning"
B=64 EPOCHS=4 LR=0.05
METRICS="$WORK/train2.json"
mpi_run 2 120 "$MPITRAIN" train --data "$WORK/good.h5" --model 16-32-4 --epochs $EPOCHS --global-batch $B \
  --lr $LR --lr-scaling none --metrics "$METRICS"
expect_rc 0
expect_file "$METRICS"
check "no 'mpitrain' error or warning lines on stderr" bash -c '! grep -q "^mpitrain" "$1"' _ "$ERR" || show_output
STEPS=$(((N + B - 1) / B))  # ceil(N/B) = 8: 7 full batches and one of 52 rows
# Loss bounds: a uniform guess over 4 classes has cross-entropy log(4) = 1.386
# and accuracy 0.25. The blobs are ~8 noise sigmas apart (make_test_dataset),
# so after 4 epochs (32 steps at lr 0.05, momentum 0.9) the loss is ~0.05
# and test accuracy ~1; half of log(4) and accuracy 0.75 leave a wide margin
# for noise while still failing on a run that learns nothing (or learns from
# labels that do not belong to their rows).
expect_py \
  "H['type'] == 'header' and isinstance(H['config'], dict)" \
  "H['ranks'] == 2" \
  "H['params'] == $PARAMS" \
  "H['train_rows'] == $N" \
  "H['steps_per_epoch'] == ceil($N / $B) == $STEPS" \
  "H['effective_lr'] == $LR" \
  "H['config']['global-batch'] == '$B' and H['config']['epochs'] == '$EPOCHS' and H['config']['model'] == '16-32-4'" \
  "len(L) == 2 + $EPOCHS and len(E) == $EPOCHS and L[-1]['type'] == 'summary'" \
  "all(set($KEYS) <= set(d) for d in E)" \
  "all(isinstance(d[k], (int, float)) and math.isfinite(d[k]) for d in E for k in $KEYS)" \
  "[d['epoch'] for d in E] == list(range(1, $EPOCHS + 1))" \
  "[d['step'] for d in E] == [k * $STEPS for k in range(1, $EPOCHS + 1)]" \
  "[d['samples'] for d in E] == [k * $N for k in range(1, $EPOCHS + 1)]" \
  "all(d['lr'] == $LR for d in E)" \
  "all(a['time_s'] < b['time_s'] for a, b in zip(E, E[1:])) and all(d['samples_per_s'] > 0 for d in E)" \
  "all(0 <= d['train_acc'] <= 1 and 0 <= d['test_acc'] <= 1 for d in E)" \
  "E[-1]['train_loss'] < E[0]['train_loss']" \
  "E[-1]['train_loss'] < 0.5 * math.log(4) and E[-1]['test_loss'] < 0.5 * math.log(4)" \
  "E[-1]['test_acc'] > 0.75 and E[-1]['train_acc'] > 0.75"
# stdout: rank 0 alone speaks. An epoch line is "epoch k/E  train loss ..."
# (progress lines "epoch k/E  step s/S ..." may come before it). Its numbers
# are the reduced ones written to the metrics (printed to 4 decimals).
expect_py \
  "[len([s for s in SEG if s.startswith(f'epoch {k}/$EPOCHS  train loss')]) for k in range(1, $EPOCHS + 1)] == [1] * $EPOCHS" \
  "len([s for s in SEG if re.match(r'epoch \d+/\d+  train loss', s)]) == $EPOCHS" \
  "len(P := [s for s in SEG if re.match(r'epoch \d+/\d+  train loss', s)]) == len(E)" \
  "all(abs(float(re.search(r'train loss ([0-9.]+)', s).group(1)) - d['train_loss']) <= 1e-4 for s, d in zip(P, E))" \
  "all(abs(float(re.search(r'test loss [0-9.]+ acc ([0-9.]+)', s).group(1)) - d['test_acc']) <= 1e-4 for s, d in zip(P, E))" \
  "len([s for s in SEG if s.startswith('done: $EPOCHS epochs, $((EPOCHS * STEPS)) steps')]) == 1"
expect_count "$OUT" "2 ranks on 1 node(s)" 1
expect_count "$OUT" "1 BLAS thread(s) per rank" 1
expect_count "$OUT" "$PARAMS parameters" 1
expect_count "$OUT" "$STEPS steps per epoch" 1
expect_count "$OUT" "effective lr $LR" 1
expect_count "$OUT" "global batch $B (up to $((B / 2)) rows per rank)" 1

# ---------------------------------------------------------------------------
# Open MPI gives each rank a pseudo-terminal as stdout even when mpiexec's
# own stdout is a file, so isatty() cannot tell a terminal from a log file.
# A log file must not collect terminal control codes and live progress lines.
begin_case "stdout redirected to a file is plain text (no terminal control codes)"
METRICS=""
expect_py "'\x1b' not in RAW" "'\r' not in RAW"

# ---------------------------------------------------------------------------
begin_case "--config INI file plus a command-line override (the command line wins)"
INI="$WORK/run.ini"
cat >"$INI" <<EOF
# every key of the INI file is a train option
data = $WORK/good.h5
model = 16-32-4
epochs = 2
global-batch = 100
lr = 0.02
lr-scaling = none
seed = 7
EOF
METRICS="$WORK/ini.json"
mpi_run 2 120 "$MPITRAIN" train --config "$INI" --global-batch 50 --metrics "$METRICS"
expect_rc 0
expect_py \
  "H['config']['global-batch'] == '50'" \
  "H['steps_per_epoch'] == ceil($N / 50) == 10" \
  "H['config']['lr'] == '0.02' and H['effective_lr'] == 0.02" \
  "H['config']['seed'] == '7' and H['config']['data'] == '$WORK/good.h5' and H['config']['lr-scaling'] == 'none'" \
  "H['config']['epochs'] == '2' and len(E) == 2" \
  "[d['step'] for d in E] == [10, 20] and all(d['global_batch'] == 50 for d in E)"

# ---------------------------------------------------------------------------
begin_case "regression file trains (MSE falls)"
METRICS="$WORK/regression.json"
mpi_run 2 120 "$MPITRAIN" train --data "$WORK/regression.h5" --model 16-32-1 --epochs 5 --global-batch 64 \
  --lr 0.02 --lr-scaling none --metrics "$METRICS"
expect_rc 0
# y = 0.5 + w.x + noise with Var(w.x) ~ 1 (make_test_dataset): predicting a
# constant scores MSE ~1, the first epoch averages ~1.5 from random weights,
# and the best linear fit 0.0025. After 5 epochs the loss is ~0.1.
expect_py \
  "len(E) == 5 and all(math.isfinite(d['train_loss']) and math.isfinite(d['test_loss']) for d in E)" \
  "E[-1]['train_loss'] < E[0]['train_loss'] / 3" \
  "E[-1]['test_loss'] < 0.3" \
  "all(d['train_acc'] is None and d['test_acc'] is None for d in E)" \
  "[d['samples'] for d in E] == [k * $N for k in range(1, 6)]" \
  "len([s for s in SEG if re.match(r'epoch \d+/5  train loss', s) and ' acc ' not in s]) == 5"

# ---------------------------------------------------------------------------
begin_case "3 ranks, global batch 64 (not divisible by 3) matches 1 rank"
# The sample order depends only on the seed, never on the rank count, so 1
# and 3 ranks compute the same global-mean gradients: the losses agree up to
# float summation order (observed relative difference ~1e-7).
METRICS="$WORK/np1.json"
mpi_run 1 120 "$MPITRAIN" train --data "$WORK/good.h5" --model 16-32-4 --epochs 2 --global-batch 64 \
  --lr 0.05 --lr-scaling none --metrics "$METRICS"
expect_rc 0
REF=$METRICS
METRICS="$WORK/np3.json"
mpi_run 3 120 "$MPITRAIN" train --data "$WORK/good.h5" --model 16-32-4 --epochs 2 --global-batch 64 \
  --lr 0.05 --lr-scaling none --metrics "$METRICS"
expect_rc 0
expect_count "$OUT" "3 ranks on 1 node(s)" 1
expect_count "$OUT" "global batch 64 (up to 22 rows per rank)" 1  # 64 = 22 + 21 + 21
expect_py \
  "H['ranks'] == 3 and H['steps_per_epoch'] == ceil($N / 64)" \
  "[d['step'] for d in E] == [8, 16] and [d['samples'] for d in E] == [$N, 2 * $N]" \
  "len([s for s in SEG if re.match(r'epoch \d+/2  train loss', s)]) == 2" \
  "len(E) == len(epochs_of('$REF')) == 2" \
  "all(abs(a[k] - b[k]) <= 1e-4 * abs(b[k]) for a, b in zip(E, epochs_of('$REF')) for k in ('train_loss', 'test_loss'))" \
  "all(abs(a['test_acc'] - b['test_acc']) <= 1 / 125 for a, b in zip(E, epochs_of('$REF')))"  # at most one of 125 test rows flips

# ---------------------------------------------------------------------------
begin_case "3 ranks, global batch 2: one rank has an empty shard every step"
# Empty shards still take part in the all-reduce; a rank that skipped it
# would hang the others (timeout) or change the sum.
"$MAKE_DS" good "$WORK/small.h5" 60 16 || fail "make_test_dataset good 60 failed"
for np in 1 3; do
  METRICS="$WORK/tiny-batch-np$np.json"
  mpi_run $np 120 "$MPITRAIN" train --data "$WORK/small.h5" --model 16-32-4 --epochs 2 --global-batch 2 \
    --lr 0.01 --lr-scaling none --metrics "$METRICS"
  expect_rc 0
done
expect_py \
  "H['ranks'] == 3 and H['steps_per_epoch'] == 30 and [d['step'] for d in E] == [30, 60]" \
  "[d['samples'] for d in E] == [60, 120]" \
  "all(abs(a[k] - b[k]) <= 1e-4 * abs(b[k]) for a, b in zip(E, epochs_of('$WORK/tiny-batch-np1.json')) for k in ('train_loss', 'test_loss'))"

# ---------------------------------------------------------------------------
begin_case "--drop-last on float32 features: floor(N/B) steps, N - N mod B samples"
METRICS="$WORK/droplast.json"
mpi_run 2 120 "$MPITRAIN" train --data "$WORK/good-f32.h5" --model 16-32-4 --epochs 3 --global-batch 64 \
  --lr 0.05 --lr-scaling none --drop-last --metrics "$METRICS"
expect_rc 0
expect_py \
  "H['steps_per_epoch'] == $N // 64 == 7" \
  "[d['step'] for d in E] == [7, 14, 21]" \
  "[d['samples'] for d in E] == [448, 896, 1344]" \
  "E[-1]['test_acc'] > 0.75"

# ---------------------------------------------------------------------------
begin_case "a damaged data chunk (Fletcher-32 fails) names the file, the rows and what to do"
"$MAKE_DS" corrupt-chunk "$WORK/corrupt-chunk.h5" 512 16 || fail "make_test_dataset corrupt-chunk failed"
mpi_run 2 60 "$MPITRAIN" train --data "$WORK/corrupt-chunk.h5" --model 16-32-4 --epochs 1 --global-batch 64 \
  --progress none
expect_rc 3
expect_stderr "of $WORK/corrupt-chunk.h5:/train/x failed: the data is damaged"
expect_stderr "re-create the file with 'mpitrain convert' or restore a copy"

e2e_finish
