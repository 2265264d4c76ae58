#!/usr/bin/env bash
# The scaling-study tools: scripts/sweep.py and scripts/report.py.
#
#   bash tests/study/test_study.sh <mpitrain> <make_test_dataset> <mpiexec> <work dir>
#
# (a) the fit S(B) = S_min + E_min/B on exact synthetic points;
# (b) the report on a hand-made sweep of 4 global batches x 2 rates (one run
#     diverged, one missed the target, one unfinished): files, and the numbers
#     in summary.md against the inputs;
# (c) the sweep's skip-finished logic on real tiny runs: a second invocation
#     runs nothing, a deleted summary.json re-runs exactly that run, a
#     half-finished run directory is removed and re-run; the Slurm array script
#     (generated with --dry-run, no Slurm needed) runs one task as Slurm would
#     and skips a finished one.
# (a) and (b) need numpy and matplotlib; without them they are skipped with a
# SKIP line (scripts/setup.sh installs them).
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)
source "$ROOT/tests/e2e/lib.sh"
e2e_init "$@"
SWEEP=(python3 "$ROOT/scripts/sweep.py")
METRICS=""

# A python3 with numpy and matplotlib: the first on PATH, else Debian's.
PY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import numpy, matplotlib' 2>/dev/null; then PY=$p; break; fi
done

# ---------------------------------------------------------------------------
begin_case "(a) S(B) fit on exact synthetic points"
if [ -z "$PY" ]; then
  echo "SKIP: numpy/matplotlib missing (apt-get install python3-numpy python3-matplotlib)"
else
  cat >"$WORK/fit.py" <<'PY'
import sys
sys.path.insert(0, sys.argv[1])
import report
B = [32, 64, 128, 256, 512, 1024, 2048, 4096, 8192]
fit = report.fit_steps_to_target(B, [100 + 12800 / b for b in B])
print(f"s_min={fit['s_min']!r} e_min={fit['e_min']!r} b_crit={fit['b_crit']!r} r2={fit['r2']!r} problem={fit['problem']}")
# Fewer than 3 distinct B: no fit. Steps that grow with B, or a negative S_min: flagged.
print("two_points", report.fit_steps_to_target([64, 128], [300, 200]))
rising = report.fit_steps_to_target([64, 128, 256], [100, 120, 150])
print("rising", rising["e_min"] < 0 and rising["problem"].startswith("E_min <= 0"))
perfect = report.fit_steps_to_target([64, 128, 256], [400, 190, 90])
print("perfect", perfect["s_min"] < 0 and perfect["problem"].startswith("S_min <= 0"))
# Relative weights recover exact points too.
rel = report.fit_steps_to_target(B, [100 + 12800 / b for b in B], relative=True)
print(f"relative_b_crit={rel['b_crit']!r}")
# --interpolate: test_acc 0.80 after epoch 1 (step 100), 0.90 after epoch 2
# (step 200): the target 0.85 is crossed half-way, at step 150.
epochs = [dict(epoch=1, step=100, samples=6400, time_s=1.0, test_acc=0.80),
          dict(epoch=2, step=200, samples=12800, time_s=3.0, test_acc=0.90)]
print("crossing", [round(v, 9) for v in report.interpolate_crossing(dict(target="test_acc>=0.85", target_epoch=2, epochs=epochs))])
print("crossing_loss", [round(v, 9) for v in report.interpolate_crossing(dict(target="test_loss<=0.5", target_epoch=2,
      epochs=[dict(epoch=1, step=10, samples=10, time_s=1.0, test_loss=0.9),
              dict(epoch=2, step=20, samples=20, time_s=2.0, test_loss=0.4)]))])
print("crossing_epoch1", report.interpolate_crossing(dict(target="test_acc>=0.85", target_epoch=1, epochs=epochs)))
PY
  run_cmd 60 "$PY" "$WORK/fit.py" "$ROOT/scripts"
  expect_rc 0
  expect_py "abs(float(re.search(r's_min=(\S+)', RAW).group(1)) - 100) < 1e-6" \
    "abs(float(re.search(r'e_min=(\S+)', RAW).group(1)) - 12800) < 1e-6" \
    "abs(float(re.search(r'b_crit=(\S+)', RAW).group(1)) - 128) < 1e-6" \
    "abs(float(re.search(r'r2=(\S+)', RAW).group(1)) - 1) < 1e-9" \
    "'problem=None' in RAW" "'two_points None' in RAW" "'rising True' in RAW" "'perfect True' in RAW" \
    "abs(float(re.search(r'relative_b_crit=(\S+)', RAW).group(1)) - 128) < 1e-6" \
    "'crossing [150.0, 9600.0, 2.0]' in RAW" "'crossing_loss [18.0, 18.0, 1.8]' in RAW" \
    "'crossing_epoch1 None' in RAW"
fi

# ---------------------------------------------------------------------------
# A fake sweep: run directories with hand-made summary.json and metrics.jsonl.
# Best steps per B follow S = 100 + 12800/B exactly (B_crit 128):
#   B=64: 300 steps (x2; x1 missed the target)   B=128: 200 (x1; x2 needed 260)
#   B=256: 150 (x2; x1 needed 190)               B=512: 125 (x1; x2 diverged at step 7)
# plus an unfinished run (metrics, no summary.json) and a planned one never run.
make_fake_sweep() {
  python3 - "$1" <<'PY'
import json, os, sys
out = sys.argv[1]
N = 12800  # train rows
def run(B, lr, mult, status, steps, noise, P=2):
    name = f"B{B:04d}-lr{lr:g}-np{P}"
    d = os.path.join(out, name)
    os.makedirs(d)
    spe = -(-N // B)
    epochs = -(-steps // spe)
    lines = [dict(type="header", ranks=P, nodes=1, params=100, train_rows=N, steps_per_epoch=spe,
                  effective_lr=lr, config={"global-batch": str(B), "lr": str(lr), "target": "test_acc>=0.8"})]
    seen = 0
    for e in range(1, epochs + 1):
        step = min(e * spe, steps)
        samples = min(step * B, e * N)
        t = (samples - seen) / 32000  # 32000 samples/s in every run
        seen = samples
        lines.append(dict(type="epoch", epoch=e, step=step, samples=samples, lr=lr, global_batch=B,
                          train_loss=1.0 / e, train_acc=0.5, test_loss=1.0 / e, test_acc=0.5 + 0.05 * e,
                          time_s=0.5 * e, epoch_time_s=t, samples_per_s=32000, time_data_s=0.1 * t,
                          time_compute_s=0.5 * t, time_allreduce_s=0.25 * t, noise_scale=noise * (0.5 + 0.5 * e / epochs),
                          noise_g2=1.0, noise_trace_s=noise))
    s = dict(type="summary", ranks=P, global_batch=B, lr=lr, epochs=epochs, steps=steps, target="test_acc>=0.8")
    if status == "diverged":
        s.update(stop_reason="diverged", target_reached=False)
        lines.append(dict(type="diverged", epoch=epochs, step=steps, lr=lr))
    elif status == "reached":
        s.update(stop_reason="target", noise_scale=noise, samples_per_s=N / 0.4, samples=min(steps * B, epochs * N),
                 time_s=0.5 * epochs, test_acc=0.85, target_reached=True, target_epoch=epochs,
                 target_step=steps, target_samples=steps * B, target_time_s=0.01 * steps)
    else:
        s.update(stop_reason="epochs", noise_scale=noise, samples_per_s=N / 0.4, samples=min(steps * B, epochs * N),
                 time_s=0.5 * epochs, test_acc=0.61, target_reached=False)
    with open(os.path.join(d, "metrics.jsonl"), "w") as f:
        for l in lines + ([] if status == "unfinished" else [s]):
            f.write(json.dumps(l) + "\n")
    if status != "unfinished":
        with open(os.path.join(d, "summary.json"), "w") as f:
            f.write(json.dumps(s) + "\n")
    return dict(name=name, global_batch=B, ranks=P, lr=lr, lr_multiplier=mult)
plan = [
    run(64, 0.01, 1, "missed", 2000, 30),
    run(64, 0.02, 2, "reached", 300, 40),
    run(128, 0.02, 1, "reached", 200, 80),
    run(128, 0.04, 2, "reached", 260, 70),
    run(256, 0.04, 1, "reached", 190, 110),
    run(256, 0.08, 2, "reached", 150, 120),
    run(512, 0.08, 1, "reached", 125, 160),
    run(512, 0.16, 2, "diverged", 7, 0),
    run(1024, 0.16, 1, "unfinished", 30, 200),
    dict(name="B1024-lr0.32-np2", global_batch=1024, ranks=2, lr=0.32, lr_multiplier=2),
]
with open(os.path.join(out, "sweep.json"), "w") as f:
    json.dump(dict(name="fake", target="test_acc>=0.8", runs=plan), f)
os.makedirs(os.path.join(out, "logs"))  # not a run directory: ignored
PY
}

begin_case "(b) report on a fake sweep"
if [ -z "$PY" ]; then
  echo "SKIP: numpy/matplotlib missing (apt-get install python3-numpy python3-matplotlib)"
else
  FAKE=$WORK/fake
  mkdir -p "$FAKE"
  make_fake_sweep "$FAKE" || fail "could not write the fake sweep"
  # Regimes at factor 3 around B_crit 128: perfect scaling up to 42.7, maximal
  # data parallelism from 384 (factor 4 would put B=512 on the boundary).
  run_cmd 120 "$PY" "$ROOT/scripts/report.py" "$FAKE" --out "$WORK/fake-report" --regime-factor 3
  expect_rc 0
  for png in steps_to_target samples_to_target noise_scale time_split; do
    check "$png.png is a non-empty PNG" bash -c \
      '[ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d " \n")" = 89504e470d0a1a0a ]' _ "$WORK/fake-report/$png.png"
  done
  # One rank count: no vs-ranks plots, and the summary says why.
  expect_no_file "$WORK/fake-report/ranks.png"
  expect_no_file "$WORK/fake-report/time_to_target_vs_ranks.png"
  expect_file "$WORK/fake-report/summary.md"
  cp "$WORK/fake-report/summary.md" "$WORK/summary.md.txt"
  OUT=$WORK/summary.md.txt
  # Table rows of summary.md as lists of cells.
  ROWS="[[c.strip() for c in l.strip().strip('|').split('|')] for l in RAW.splitlines() if l.startswith('| ')]"
  BEST="{r[0]: r for r in $ROWS if len(r) == 9 and r[0].isdigit()}"
  RUN="{r[0]: r for r in $ROWS if len(r) == 14 and r[0].startswith('B')}"
  expect_py \
    "[($BEST)[b][3] for b in ('64', '128', '256', '512')] == ['300', '200', '150', '125']" \
    "[($BEST)[b][1] for b in ('64', '128', '256', '512')] == ['0.02', '0.02', '0.08', '0.08']" \
    "[($BEST)[b][4] for b in ('64', '128', '256', '512')] == ['19200', '25600', '38400', '64000']" \
    "'no rate reached the target' in ($BEST)['1024'][8]" \
    "re.search(r'\| S_min .*\| 100 \|', RAW) is not None" \
    "re.search(r'\| E_min .*\| 12800 \|', RAW) is not None" \
    "re.search(r'\| B_crit = E_min / S_min \| 128 \|', RAW) is not None" \
    "($RUN)['B0512-lr0.16-np2'][5] == '**diverged** at step 7'" \
    "($RUN)['B0064-lr0.01-np2'][5] == '**not reached**' and ($RUN)['B0064-lr0.01-np2'][7] == '(2000)'" \
    "($RUN)['B1024-lr0.16-np2'][5] == '**unfinished**'" \
    "($RUN)['B1024-lr0.32-np2'][5] == '**not run**'" \
    "len($RUN) == 10" \
    "'Runs: 10: 6 reached the target, 1 did not, 1 diverged, 1 unfinished, 1 not run.' in RAW" \
    "'one rank count' in RAW" \
    "[($BEST)[b][8] for b in ('64', '128', '256', '512')] == ['diminishing returns'] * 3 + ['maximal data parallelism']"
  # The noise scale at the target (the best runs' last epoch line) and its median.
  expect_py "'Median B_simple at the target over the B values: **100**.' in RAW"

  begin_case "(b) report: too few points for the fit, several rank counts"
  FEW=$WORK/few
  mkdir -p "$FEW"
  make_fake_sweep "$FEW" || fail "could not write the fake sweep"
  rm -rf "$FEW"/B0256-* "$FEW"/B0512-*
  # The B=128 x1 run again on 1 rank, 1.5x slower: 21333 samples/s, 3.0 s to the target.
  python3 - "$FEW" <<'PY' || fail "could not write the 1-rank run"
import json, os, sys
src, dst = (os.path.join(sys.argv[1], n) for n in ("B0128-lr0.02-np2", "B0128-lr0.02-np1"))
os.makedirs(dst)
lines = [json.loads(l) for l in open(os.path.join(src, "metrics.jsonl"))]
for l in lines:
    if "ranks" in l:
        l["ranks"] = 1
    if l["type"] == "epoch":
        l["epoch_time_s"] *= 1.5
    if l["type"] == "summary":
        l["target_time_s"] = 3.0
with open(os.path.join(dst, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(l) + "\n" for l in lines)
with open(os.path.join(dst, "summary.json"), "w") as f:
    f.write(json.dumps(lines[-1]) + "\n")
PY
  run_cmd 120 "$PY" "$ROOT/scripts/report.py" "$FEW"
  expect_rc 0
  expect_stdout "no fit: only 2 global batch size(s) reached the target; the fit needs at least 3"
  expect_file "$FEW/report/ranks.png"
  expect_file "$FEW/report/time_to_target_vs_ranks.png"
  cp "$FEW/report/summary.md" "$WORK/few.md.txt"
  OUT=$WORK/few.md.txt
  # B=128: 21333 samples/s on 1 rank, 32000 on 2: speed-up 1.5, efficiency 0.75.
  expect_py "'| 128 | 1 | 21333 | 1.00 |' in RAW" "'| 128 | 2 | 32000 | 0.75 |' in RAW" \
    "'| 128 | 1 | 3.00 |' in RAW" "'| 128 | 2 | 2.00 |' in RAW" "'No fit: only 2' in RAW"
fi

# ---------------------------------------------------------------------------
begin_case "(c) sweep: run, skip finished, re-run a deleted summary"
"$MAKE_DS" good "$WORK/data.h5" 600 16 || { echo "FATAL: make_test_dataset failed"; exit 1; }
S_OUT=$WORK/sweep
# 3 global batches x 2 rates on 2 ranks; test_acc>=0.99 is missed by some runs
# in 2 epochs, which is fine: finished means summary.json, reached or not.
SWEEP_ARGS=(--name t --out "$S_OUT" --mpitrain "$MPITRAIN" --mpirun "${MPIRUN[*]}" --config ""
            --data "$WORK/data.h5" --model 16-32-4 --batches 32,64,128 --ranks 2 --base-lr 0.05 --ref-batch 64
            --lr-multipliers 0.5,1 --target "test_acc>=0.99" --epochs 2 --extra-args "--seed 3")
run_cmd 120 "${SWEEP[@]}" "${SWEEP_ARGS[@]}"
expect_rc 0
expect_count "$OUT" " ... " 6
expect_count "$OUT" ": skip" 0
expect_stdout "6 runs: 0 skipped (finished before), 6 ran"
for d in B0032-lr0.025-np2 B0032-lr0.0125-np2 B0064-lr0.05-np2 B0064-lr0.025-np2 B0128-lr0.1-np2 B0128-lr0.05-np2; do
  expect_file "$S_OUT/$d/summary.json"
done
expect_file "$S_OUT/sweep.json"
expect_file "$S_OUT/logs/B0064-lr0.05-np2.log"
# The rate, batch and extra arguments reach the trainer.
expect_py "json.load(open('$S_OUT/B0128-lr0.1-np2/summary.json'))['lr'] == 0.1" \
  "json.load(open('$S_OUT/B0128-lr0.1-np2/summary.json'))['global_batch'] == 128" \
  "json.load(open('$S_OUT/B0128-lr0.1-np2/summary.json'))['ranks'] == 2" \
  "'seed = 3' in open('$S_OUT/B0128-lr0.1-np2/config.ini').read()" \
  "len(json.load(open('$S_OUT/sweep.json'))['runs']) == 6"
stamp=$(stat -c %Y.%N "$S_OUT/B0064-lr0.05-np2/summary.json")

begin_case "(c) second invocation runs nothing"
run_cmd 60 "${SWEEP[@]}" "${SWEEP_ARGS[@]}"
expect_rc 0
expect_count "$OUT" ": skip (finished" 6
expect_count "$OUT" " ... " 0
expect_stdout "6 runs: 6 skipped (finished before), 0 ran"
check "finished runs untouched" [ "$(stat -c %Y.%N "$S_OUT/B0064-lr0.05-np2/summary.json")" = "$stamp" ]
# Other options: still skipped (finished is finished), with a note, twice.
for i in 1 2; do
  run_cmd 60 "${SWEEP[@]}" "${SWEEP_ARGS[@]}" --epochs 3
  expect_count "$OUT" "NOTE: it was trained with other options" 6
  expect_count "$OUT" " ... " 0
done
expect_py "all(r['epochs'] == 2 for r in json.load(open('$S_OUT/sweep.json'))['runs'])"

begin_case "(c) a deleted summary.json re-runs exactly that run"
rm "$S_OUT/B0064-lr0.025-np2/summary.json"
mkdir -p "$S_OUT/B0128-lr0.1-np2.keep"  # not part of the grid: left alone
run_cmd 60 "${SWEEP[@]}" "${SWEEP_ARGS[@]}"
expect_rc 0
expect_count "$OUT" ": skip (finished" 5
expect_count "$OUT" " ... " 1
expect_count "$OUT" "B0064-lr0.025-np2: B=64 lr=0.025 (x0.5) np=2 epochs<=2 ..." 1
expect_count "$OUT" "removing the half-finished run directory $S_OUT/B0064-lr0.025-np2" 1
expect_file "$S_OUT/B0064-lr0.025-np2/summary.json"
check "other directories left alone" test -d "$S_OUT/B0128-lr0.1-np2.keep"
expect_stdout "6 runs: 5 skipped (finished before), 1 ran"

begin_case "(c) dry run and the Slurm array script"
rm -rf "$S_OUT/B0032-lr0.025-np2"
run_cmd 60 "${SWEEP[@]}" "${SWEEP_ARGS[@]}" --slurm --slurm-launcher mpirun --dry-run
expect_rc 0
expect_count "$OUT" ": skip (finished" 5
# Run order: x1 first (B=32,64,128: tasks 0-2), then x0.5 (3-5); B=32 x1 is task 0.
expect_stdout "would submit: sbatch --ntasks=2 --array=0 $S_OUT/sweep.sbatch"
expect_no_file "$S_OUT/B0032-lr0.025-np2"
check "sweep.sbatch is valid bash" bash -n "$S_OUT/sweep.sbatch"
# Run the array task as Slurm would, with mpirun inside (no Slurm here).
MPIRUN_DIR=$(dirname "$(command -v "$MPIEXEC")")
run_cmd 60 env PATH="$MPIRUN_DIR:$PATH" SLURM_ARRAY_TASK_ID=0 SLURM_NTASKS=2 SLURM_JOB_ID=7 \
  OMPI_MCA_rmaps_base_oversubscribe=1 bash "$S_OUT/sweep.sbatch"
expect_rc 0
expect_stdout "run B0032-lr0.025-np2 on 2 rank(s)"
expect_file "$S_OUT/B0032-lr0.025-np2/summary.json"
expect_py "json.load(open('$S_OUT/B0032-lr0.025-np2/summary.json'))['lr'] == 0.025"
run_cmd 60 env SLURM_ARRAY_TASK_ID=5 SLURM_NTASKS=2 bash "$S_OUT/sweep.sbatch"
expect_rc 0
expect_stdout "skip B0128-lr0.05-np2: finished"
run_cmd 60 env SLURM_ARRAY_TASK_ID=3 SLURM_NTASKS=4 bash "$S_OUT/sweep.sbatch"
expect_failure
expect_in "$ERR" "needs 2 ranks but the job has 4"

begin_case "(c) budget: a run is stopped when it is spent, and none starts after"
# 0.3 s: B=256 x1 (the first unfinished run) starts and is stopped, x0.5 never starts.
# (An unreachable target: the runs of the grid so far are finished whatever it is.)
run_cmd 60 "${SWEEP[@]}" "${SWEEP_ARGS[@]}" --batches 32,64,128,256 --epochs 1000 --budget-min 0.005 \
  --target "test_acc>=1.5"
expect_rc 0
expect_count "$OUT" ": skip (finished" 6
expect_count "$OUT" "B0256-lr0.2-np2: B=256 lr=0.2 (x1) np=2 epochs<=1000 ... stopped after" 1
expect_count "$OUT" "B0256-lr0.1-np2: not started (the 0.005 min budget is spent)" 1
expect_stdout "1 stopped by a time limit), 1 not started"
expect_no_file "$S_OUT/B0256-lr0.2-np2/summary.json"
expect_no_file "$S_OUT/B0256-lr0.1-np2"
check "no rank of the stopped run is left" bash -c '! pgrep -f -- "--run-dir $1/B0256-lr0.2-np2" >/dev/null' _ "$S_OUT"

e2e_finish
