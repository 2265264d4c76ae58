#!/usr/bin/env bash
# The performance model, scripts/perf_model.py.
#
#   bash tests/study/test_perf_model.sh <mpitrain> <make_test_dataset> <mpiexec> <work dir>
#
# (a) the model's math on a synthetic bench with known alpha, beta and
#     t_sample: the predicted step time (and its parts) at several P equal the
#     values computed by hand from the model's equations (ring, and binomial
#     with --allreduce binomial); the bench's own fit and the at-size variant;
#     time to the target from --steps-to-target and from a sweep directory;
# (b) the outputs: perf_model.md (assumptions, table), perf_model.json and a
#     PNG; predicted vs measured on hand-made run directories, with the
#     measured overlap and data wait, the optimizer estimated from the other
#     run, the > 15 % flag and --check's exit code; --comm-source calibration;
# (c) errors: a missing, empty, garbled or foreign bench file, and a P = 1
#     bench asked for P > 1 without --alpha/--beta, each give one clear line
#     and a non-zero exit (no traceback);
# (d) a tiny real run: `mpitrain bench` at 2 ranks with small sizes, a short
#     training run, and the model on them.
# No timing assertions. Needs numpy and matplotlib; without them the test is
# skipped with a SKIP line (scripts/setup.sh installs them).
here=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$here/../.." && pwd)
source "$ROOT/tests/e2e/lib.sh"
e2e_init "$@"
METRICS=""

PY=""
for p in /usr/bin/python3 python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import numpy, matplotlib' 2>/dev/null; then PY=$p; break; fi
done
if [ -z "$PY" ]; then
  echo "SKIP: numpy/matplotlib missing (apt-get install python3-numpy python3-matplotlib)"
  e2e_finish
fi
MODEL=("$PY" "$ROOT/scripts/perf_model.py")
is_png() { [ -s "$1" ] && [ "$(head -c 8 "$1" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ]; }

# A synthetic bench of model 16-32-4 (676 parameters; the trainer's reduce
# buffer is 16 stat slots + 676 floats aligned to 16 = 692 floats = 2768 bytes,
# one bucket). t_sample = 8e-5 / sqrt(shard): a straight line in log-log, so
# the interpolation is exact between the rows. The all-reduce fit at P = 4 is
# t(n) = 4e-5 + 3e-9 n, so per hop alpha = 4e-5 / 6 and beta = 3e-9 * 4 / 6.
# Its row at exactly 2768 bytes measured 6e-5 s (the fit says 4.83e-5).
cat >"$WORK/bench4.json" <<'JSON'
{"ranks":4,"threads_per_rank":1,"model":"16-32-4","params":676,"flops_per_sample":4000,
 "compute":[{"shard":16,"s_per_sample_avg":2e-05},{"shard":64,"s_per_sample_avg":1e-05},
            {"shard":256,"s_per_sample_avg":5e-06},{"shard":1024,"s_per_sample_avg":2.5e-06}],
 "allreduce":[{"bytes":4,"s":4.1e-05},{"bytes":692,"s":4.5e-05},{"bytes":2768,"s":6e-05},{"bytes":11072,"s":8e-05}],
 "alpha_s":4e-05,"beta_s_per_byte":3e-09}
JSON
cat >"$WORK/bench1.json" <<'JSON'
{"ranks":1,"threads_per_rank":2,"model":"16-32-4","params":676,"flops_per_sample":4000,
 "compute":[{"shard":16,"s_per_sample_avg":1e-05},{"shard":1024,"s_per_sample_avg":1e-06}],
 "allreduce":[{"bytes":4,"s":1e-07}],"alpha_s":0,"beta_s_per_byte":0}
JSON

# ---------------------------------------------------------------------------
begin_case "(a) the model's math on a synthetic bench (the bench's own fit)"
run_cmd 60 "${MODEL[@]}" --bench "$WORK/bench4.json" --global-batch 256,1000 --ranks 1,4,8,512 \
  --comm-fit bench --overlap 0.25 --optimizer-s 1e-4 --steps-to-target 256:100,1000:40 --out "$WORK/a" --no-plot
expect_rc 0
expect_file "$WORK/a/perf_model.json"
# The hand computation: step = b t(b) + (1 - overlap) (2(P-1) alpha + 2(P-1)/P n beta) + optimizer,
# b = ceil(B/P), t(b) = 8e-5/sqrt(b) (clamped to the rows: 2e-5 below 16 rows).
cat >"$WORK/hand.py" <<'PY'
import json, math, sys
res = json.load(open(sys.argv[1]))
pred = {(r["P"], r["B"]): r for r in res["predictions"]}
alpha, beta, n, overlap, opt = 4e-5 / 6, 3e-9 * 4 / 6, 2768, 0.25, 1e-4
def t(b):
    return 2e-5 if b <= 16 else 8e-5 / math.sqrt(b)
worst = 0.0
for (P, B), r in sorted(pred.items()):
    b = math.ceil(B / P)
    compute = b * t(b)
    ar = 2 * (P - 1) * alpha + 2 * (P - 1) / P * n * beta
    step = compute + (1 - overlap if P > 1 else 1) * ar + opt
    for got, want in ((r["step_s"], step), (r["compute_s"], compute), (r["allreduce_s"], ar)):
        worst = max(worst, abs(got - want) / max(want, 1e-30))
    print(f"P={P} B={B} step={r['step_s']!r} hand={step!r}")
print(f"worst_rel_error={worst!r}")
# Efficiency, throughput and time to the target follow from the step time.
e = pred[(8, 256)]
print("efficiency_ok", abs(e["efficiency"] - pred[(1, 256)]["step_s"] / (8 * e["step_s"])) < 1e-12)
print("throughput_ok", abs(e["samples_per_s"] - 256 / e["step_s"]) < 1e-9)
print("ttt_ok", abs(e["time_to_target_s"] - 100 * e["step_s"]) < 1e-12
      and abs(pred[(8, 1000)]["time_to_target_s"] - 40 * pred[(8, 1000)]["step_s"]) < 1e-12)
print("grad_bytes", res["grad_bytes"], "buckets", res["buckets"])
# P = 8, B = 256 by hand: 32 rows x 8e-5/sqrt(32) + 0.75 x (14 alpha + 1.75 n beta) + 1e-4
print(f"p8={pred[(8, 256)]['step_s']:.6e}")
PY
run_cmd 30 "$PY" "$WORK/hand.py" "$WORK/a/perf_model.json"
expect_rc 0
expect_py "float(re.search(r'worst_rel_error=(\S+)', RAW).group(1)) < 1e-9" \
  "'efficiency_ok True' in RAW" "'throughput_ok True' in RAW" "'ttt_ok True' in RAW" \
  "'grad_bytes 2768 buckets 1' in RAW" "'p8=6.298143e-04' in RAW"

begin_case "(a) --allreduce binomial: 2 ceil(log2 P) (alpha + n beta)"
run_cmd 60 "${MODEL[@]}" --bench "$WORK/bench4.json" --global-batch 256 --ranks 2,8,1000 --comm-fit bench \
  --allreduce binomial --out "$WORK/a1" --no-plot
expect_rc 0
expect_py "[round(r['allreduce_s'] / (4e-5 / 6 + 2768 * 3e-9 * 4 / 6), 9) for r in json.load(open('$WORK/a1/perf_model.json'))['predictions']] == [2, 6, 20]" \
  "'binomial reduce + binomial broadcast' in RAW"

begin_case "(a) --comm-fit at-size (default): beta through the bench's time at the bucket size"
# t(2768) = 6e-5 as measured: slope (6e-5 - 4e-5)/2768, alpha unchanged.
run_cmd 60 "${MODEL[@]}" --bench "$WORK/bench4.json" --global-batch 256 --ranks 4,16 --overlap 0 --out "$WORK/a2" --no-plot
expect_rc 0
expect_py "abs(json.load(open('$WORK/a2/perf_model.json'))['predictions'][0]['allreduce_s'] - 6e-5) < 1e-15" \
  "abs([r for r in json.load(open('$WORK/a2/perf_model.json'))['predictions'] if r['P'] == 16][0]['allreduce_s'] - (30 * 4e-5 / 6 + 30 / 16 * 2768 * (2e-5 / 2768) * 4 / 6)) < 1e-15" \
  "'the bench measured 60 us' in RAW" "'Optimizer update: ignored' in RAW"

begin_case "(a) benches at P = 1 and P = 4: each P uses the nearest; time to the target from a sweep"
# A sweep directory as scripts/sweep.py leaves it: B=256 reached the target in 120 steps.
SW=$WORK/sweep/B0256-lr0.05-np2
mkdir -p "$SW"
echo '{"type":"header","ranks":2,"steps_per_epoch":10,"config":{"global-batch":"256"}}' >"$SW/metrics.jsonl"
echo '{"type":"summary","stop_reason":"target","ranks":2,"global_batch":256,"lr":0.05,"epochs":12,"steps":120,"target":"test_acc>=0.8","target_reached":true,"target_epoch":12,"target_step":120,"target_samples":30720,"target_time_s":5.0}' \
  | tee -a "$SW/metrics.jsonl" >"$SW/summary.json"
run_cmd 60 "${MODEL[@]}" --bench "$WORK/bench1.json" "$WORK/bench4.json" --global-batch 256 --ranks 1,2,4 \
  --comm-fit bench --sweep "$WORK/sweep" --out "$WORK/a3" --no-plot
expect_rc 0
# P = 1: bench1 (t_sample 1e-6 at 256 rows, log-log between 1e-5 at 16 and 1e-6 at 1024).
expect_py "abs([r for r in json.load(open('$WORK/a3/perf_model.json'))['predictions'] if r['P'] == 1][0]['step_s'] - 256 * 1e-5 * (256 / 16) ** (math.log(0.1) / math.log(64))) < 1e-12" \
  "[r['bench'] for r in json.load(open('$WORK/a3/perf_model.json'))['predictions']] == ['P=1', 'P=4', 'P=4']" \
  "all(abs(r['time_to_target_s'] - 120 * r['step_s']) < 1e-12 for r in json.load(open('$WORK/a3/perf_model.json'))['predictions'])" \
  "'Steps to the target from the sweep' in RAW"

begin_case "(a) a bench with step rows: compute, all-reduce and optimizer from the trainer's step pattern"
# bench4.json plus the step pattern of 4 ranks on 2 cores: t_sample 4e-5 at 16
# rows and 1e-5 at 256 (the compute as the job sees it), the gradient
# all-reduce 1e-4 s after a 16-row compute and 2e-4 s after a 256-row one,
# the optimizer inside. A calibration run without prefetch read 1 us per row.
"$PY" - "$WORK/bench4.json" "$WORK/bench4s.json" <<'PY'
import json, sys
b = json.load(open(sys.argv[1]))
b.update(ranks_on_node=4, cores_on_node=2, step_optimizer="sgd",
         step=[dict(shard=16, s_per_sample=4e-5, allreduce_s=1e-4), dict(shard=256, s_per_sample=1e-5, allreduce_s=2e-4)])
json.dump(b, open(sys.argv[2], "w"))
PY
mkdir -p "$WORK/cal4"
"$PY" - "$WORK/cal4" <<'PY'
import json, os, sys
lines = [dict(type="header", ranks=4, nodes=1, threads_per_rank=1, model="16-32-4", params=676,
              config={"global-batch": "128", "bucket-bytes": "262144", "prefetch": "false"})]
for e in (1, 2):
    lines.append(dict(type="epoch", epoch=e, step=10 * e, steps_in_epoch=10, global_batch=128, epoch_time_s=0.01,
                      time_data_s=10 * 32 * 1e-6, time_compute_s=10 * 1e-3, time_allreduce_s=1e-3, time_comm_s=1e-3))
with open(os.path.join(sys.argv[1], "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(l) + "\n" for l in lines)
PY
run_cmd 60 "${MODEL[@]}" --bench "$WORK/bench4s.json" --global-batch 64,256,1024 --ranks 4 --overlap 0 \
  --calibration "$WORK/cal4" --out "$WORK/a4" --no-plot
expect_rc 0
# b = 16, 64, 256 rows: compute b t(b) (t log-log: 2e-5 at 64), all-reduce as measured
# at 16 and 256 rows (at 64 the per-hop beta in between, log-log), optimizer 0,
# reads 1 us per row x 2 ranks per core (no calibration had a core per rank,
# so the only one is used).
cat >"$WORK/hand4.py" <<'PY'
import json, math, sys
pred = {r["B"]: r for r in json.load(open(sys.argv[1]))["predictions"]}
n, a = 2768, 4e-5
mid = a + math.sqrt((1e-4 - a) * (2e-4 - a))
want = {64: (16 * 4e-5, 1e-4), 256: (64 * 2e-5, mid), 1024: (256 * 1e-5, 2e-4)}
worst = 0.0
for B, (compute, ar) in want.items():
    r = pred[B]
    b = r["rows"]
    step = compute + ar + 2 * b * 1e-6
    for got, w in ((r["compute_s"], compute), (r["allreduce_s"], ar), (r["data_s"], 2 * b * 1e-6),
                   (r["optimizer_s"], 0.0), (r["step_s"], step)):
        worst = max(worst, abs(got - w) / max(w, 1e-12))
print(f"worst_rel_error={worst!r}")
PY
run_cmd 30 "$PY" "$WORK/hand4.py" "$WORK/a4/perf_model.json"
expect_rc 0
expect_py "float(re.search(r'worst_rel_error=(\S+)', RAW).group(1)) < 1e-9"
expect_file "$WORK/a4/perf_model.md"
OUT_SAVED=$OUT
OUT=$WORK/a4/perf_model.md
expect_py "'in the step pattern (--comm-fit in-step)' in RAW" "'--compute-stat step' in RAW" \
  "'Optimizer update: part of t_sample' in RAW" "'multiplied by r' in RAW"
OUT=$OUT_SAVED

# ---------------------------------------------------------------------------
begin_case "(b) outputs, and predicted vs measured on hand-made runs"
# Two runs at P = 4, B = 256 of model 16-32-4 (64 rows per rank). Per step:
# data wait 64 us (1 us per row), all-reduce exposed 30 us of 60 us in
# flight (overlap 0.5), compute 740 us, of which the bench's forward and
# backward are 64 x 1e-5 = 640 us: the optimizer is estimated at 100 us (from
# the other run). Model (at-size): 640 + 64 + 0.5 x 60 + 100 = 834 us. Run ok
# measures 880 us (-5.2 %), run slow 1100 us (-24.2 %).
make_run() {  # DIR STEP_S
  mkdir -p "$1"
  "$PY" - "$1" "$2" <<'PY'
import json, os, sys
d, step = sys.argv[1], float(sys.argv[2])
steps = 100
lines = [dict(type="header", ranks=4, nodes=1, threads_per_rank=1, model="16-32-4", params=676,
              config={"global-batch": "256", "bucket-bytes": "262144"})]
for e in (1, 2, 3):
    t = (3 if e == 1 else 1) * step * steps  # the first epoch is slow: it must not count
    lines.append(dict(type="epoch", epoch=e, step=e * steps, steps_in_epoch=steps, global_batch=256,
                      epoch_time_s=t, time_data_s=64e-6 * steps, time_compute_s=7.4e-4 * steps,
                      time_allreduce_s=30e-6 * steps, time_comm_s=60e-6 * steps))
with open(os.path.join(d, "metrics.jsonl"), "w") as f:
    f.writelines(json.dumps(l) + "\n" for l in lines)
PY
}
make_run "$WORK/runs/ok" 8.8e-4
make_run "$WORK/runs/slow" 1.1e-3
run_cmd 60 "${MODEL[@]}" --bench "$WORK/bench4.json" --global-batch 256 --measured "$WORK/runs/ok" "$WORK/runs/slow" \
  --out "$WORK/b"
expect_rc 0
check "perf_model.png is a PNG" is_png "$WORK/b/perf_model.png"
expect_file "$WORK/b/perf_model.md"
cp "$WORK/b/perf_model.md" "$WORK/b.md.txt"
OUT_SAVED=$OUT
OUT=$WORK/b.md.txt
ROWS="[[c.strip() for c in l.strip().strip('|').split('|')] for l in RAW.splitlines() if l.startswith('| ')]"
expect_py "'## Assumptions' in RAW" "'estimate (leave-one-out)' in RAW" \
  "'Overlap: as measured' in RAW" "'Data wait per step = b x the measured wait per row' in RAW" \
  "[r[1] for r in $ROWS if r[0] == '256'] == [str(2 ** i) for i in range(11)]" \
  "[r[6] for r in $ROWS if len(r) == 8 and r[0] in ('ok', 'slow')] == ['-5.2 %', '-24.2 %']" \
  "[r[7] for r in $ROWS if len(r) == 8 and r[0] in ('ok', 'slow')] == ['ok', '**> 15 %**']" \
  "abs(json.load(open('$WORK/b/perf_model.json'))['measured'][0]['predicted_s'] - 8.34e-4) < 1e-12" \
  "json.load(open('$WORK/b/perf_model.json'))['measured'][0]['epochs_used'] == [2, 3]"
OUT=$OUT_SAVED
expect_stdout "perf_model: 1 of 2 measured run(s) within 15 %; off: slow"
# --comm-source calibration: the trainer's own all-reduce (time_comm_s, 60 us
# per step at P = 4) sets beta through the ring formula, alpha from the bench:
# 6 alpha + 1.5 n beta = 60 us, so at P = 8: 14 alpha + 1.75 n beta.
run_cmd 60 "${MODEL[@]}" --bench "$WORK/bench4.json" --global-batch 256 --ranks 4,8 --calibration "$WORK/runs/ok" \
  --comm-source calibration --allreduce ring --out "$WORK/b1" --no-plot
expect_rc 0
expect_py "[round(r['allreduce_s'] * 1e9, 3) for r in json.load(open('$WORK/b1/perf_model.json'))['predictions']] == [60000.0, round((14 * 4e-5 / 6 + 1.75 * 2e-5 / 1.5) * 1e9, 3)]" \
  "[round(r['optimizer_s'] * 1e9, 3) for r in json.load(open('$WORK/b1/perf_model.json'))['predictions']] == [100000.0, 100000.0]" \
  "'P = 4: 60 us per step (the bench' in RAW"
# --check: the exit code says whether every run is within the tolerance.
run_cmd 60 "${MODEL[@]}" --bench "$WORK/bench4.json" --global-batch 256 --measured "$WORK/runs/ok" "$WORK/runs/slow" \
  --out "$WORK/b2" --check --no-plot
check "--check with a run off by > 15 %: exit 1 (got $RC)" [ "$RC" -eq 1 ]
run_cmd 60 "${MODEL[@]}" --bench "$WORK/bench4.json" --global-batch 256 --measured "$WORK/runs/ok" \
  --out "$WORK/b3" --check --no-plot
expect_rc 0

# ---------------------------------------------------------------------------
# expect_error WHAT: the last run failed with exactly one 'perf_model: error'
# line on stderr containing WHAT, and no traceback.
expect_error() {
  expect_failure
  check "exactly one 'perf_model: error:' line saying '$1'" \
    bash -c '[ "$(grep -c "^perf_model: error: " "$1")" -eq 1 ] && grep "^perf_model: error: " "$1" | grep -q -F -- "$2"' \
    _ "$ERR" "$1" || show_output
  check "no traceback" bash -c '! grep -q Traceback "$1"' _ "$ERR" || show_output
}
begin_case "(c) a missing bench file"
run_cmd 30 "${MODEL[@]}" --bench "$WORK/nope.json" --global-batch 256 --out "$WORK/c"
expect_error "--bench $WORK/nope.json: cannot read it"
begin_case "(c) an empty, a garbled and a foreign bench file"
: >"$WORK/empty.json"
run_cmd 30 "${MODEL[@]}" --bench "$WORK/empty.json" --global-batch 256 --out "$WORK/c"
expect_error "is not the JSON object \`mpitrain bench --json\` writes (the file is empty)"
head -c 150 "$WORK/bench4.json" >"$WORK/garbled.json"
run_cmd 30 "${MODEL[@]}" --bench "$WORK/garbled.json" --global-batch 256 --out "$WORK/c"
expect_error "(it does not parse)"
echo '{"type":"header","version":"0.1.0"}' >"$WORK/foreign.json"
run_cmd 30 "${MODEL[@]}" --bench "$WORK/foreign.json" --global-batch 256 --out "$WORK/c"
expect_error "no valid 'ranks' field"
sed 's/"compute":\[/"compute_x":[/' "$WORK/bench4.json" >"$WORK/nocompute.json"
run_cmd 30 "${MODEL[@]}" --bench "$WORK/nocompute.json" --global-batch 256 --out "$WORK/c"
expect_error "no 'compute' rows"
expect_no_file "$WORK/c"
begin_case "(c) --compute-stat step or --comm-fit in-step with a bench without step rows"
run_cmd 30 "${MODEL[@]}" --bench "$WORK/bench4.json" --global-batch 256 --compute-stat step --out "$WORK/c"
expect_error "--compute-stat step needs benches with 'step' rows"
run_cmd 30 "${MODEL[@]}" --bench "$WORK/bench4.json" --global-batch 256 --comm-fit in-step --out "$WORK/c"
expect_error "--comm-fit in-step needs benches with 'step' rows"
expect_no_file "$WORK/c"
begin_case "(c) mpitrain bench: bad options give one error on every rank, and no JSON file"
for bad in "--optimizer bogus|unknown --optimizer 'bogus'" "--step-seconds -1|--step-seconds must be between 0 and 3600" \
           "--shard-sizes 8,x|bad --shard-sizes item 'x'" "--overlap maybe|--overlap must be auto, on or off" \
           "--bucket-bytes -5|--bucket-bytes must be >= 0"; do
  # shellcheck disable=SC2086
  mpi_run 2 60 "$MPITRAIN" bench --model 16-32-4 ${bad%%|*} --json "$WORK/c-bench.json"
  expect_failure
  expect_one_error_line "${bad#*|}"
  expect_no_file "$WORK/c-bench.json"
done
begin_case "(c) a P = 1 bench has no communication: P > 1 needs --alpha/--beta"
run_cmd 30 "${MODEL[@]}" --bench "$WORK/bench1.json" --global-batch 256 --ranks 1,2 --out "$WORK/c"
expect_error "give --alpha and --beta"
run_cmd 30 "${MODEL[@]}" --bench "$WORK/bench1.json" --global-batch 256 --ranks 1,2 --alpha 1e-6 --beta 1e-9 \
  --out "$WORK/c1" --no-plot
expect_rc 0
expect_stdout "from the command line (--alpha/--beta)"

# ---------------------------------------------------------------------------
begin_case "(d) a tiny real run: mpitrain bench at 2 ranks, a training run, the model"
"$MAKE_DS" good "$WORK/data.h5" 600 16 || { echo "FATAL: make_test_dataset failed"; exit 1; }
mpi_run 2 60 "$MPITRAIN" bench --model 16-32-4 --shard-sizes 8,32 --min-bytes 64 --max-bytes 16384 \
  --iters 3 --warmup 1 --threads 1 --step-seconds 0.2 --json "$WORK/bench-np2.json"
expect_rc 0
expect_file "$WORK/bench-np2.json"
# The step pattern at each shard: compute and all-reduce both measured, the placement recorded.
expect_py "[r['shard'] for r in json.load(open('$WORK/bench-np2.json'))['step']] == [8, 32]" \
  "all(r['s_per_sample'] > 0 and r['allreduce_s'] > 0 and r['step_s'] >= r['compute_s'] for r in json.load(open('$WORK/bench-np2.json'))['step'])" \
  "json.load(open('$WORK/bench-np2.json'))['ranks_on_node'] == 2" \
  "all(r['steps'] >= 3 for r in json.load(open('$WORK/bench-np2.json'))['step'])" \
  "json.load(open('$WORK/bench-np2.json'))['step_optimizer'] == 'sgd'"
mpi_run 2 60 "$MPITRAIN" train --data "$WORK/data.h5" --model 16-32-4 --global-batch 64 --epochs 2 --lr 0.05 \
  --threads 1 --progress none --eval-split none --run-dir "$WORK/real-run"
expect_rc 0
run_cmd 60 "${MODEL[@]}" --bench "$WORK/bench-np2.json" --global-batch 64,128 --ranks 1,2,4,1024 \
  --measured "$WORK/real-run" --steps-to-target 50 --out "$WORK/d"
expect_rc 0
check "perf_model.png is a PNG" is_png "$WORK/d/perf_model.png"
expect_py "len(json.load(open('$WORK/d/perf_model.json'))['predictions']) == 8" \
  "json.load(open('$WORK/d/perf_model.json'))['measured'][0]['P'] == 2" \
  "json.load(open('$WORK/d/perf_model.json'))['measured'][0]['B'] == 64" \
  "json.load(open('$WORK/d/perf_model.json'))['measured'][0]['measured_s'] > 0" \
  "'| 64 | 1024 |' in RAW" "'## Predicted vs measured' in RAW"

e2e_finish
