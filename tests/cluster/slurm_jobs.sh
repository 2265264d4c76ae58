#!/usr/bin/env bash
# cluster_slurm_jobs: the job scripts in jobs/ on real Slurm daemons.
#
#   bash tests/cluster/slurm_jobs.sh MPITRAIN MAKE_TEST_DATASET MPIEXEC WORK_DIR
#
# Starts a private 4-node Slurm cluster on this machine
# (scripts/slurm-cluster.sh, state in WORK_DIR/slurm_jobs/slurm), submits with sbatch
#   - jobs/fashion-mnist-mlp.sbatch on 1 node and on 2 emulated nodes (also with a CNN config),
#   - the same on 2 nodes launched with mpirun instead of srun,
#   - jobs/batch-sweep.sbatch as a 2-task job array (B = 32 and 128),
#   - jobs/node-scaling.sbatch on 2 nodes (strong and weak, 1 and 2 nodes),
#   - one job whose run directory exists already (it must fail, touching nothing),
# all with a small generated dataset, waits for them (bounded), checks their
# Slurm states, logs, run directories and metrics, and stops exactly the
# daemons it started, also when a check fails or the test is interrupted.
# Skips (exit 0) only where Slurm daemons cannot run at all: not root and no
# password-less sudo.
set -uo pipefail

[ $# -ge 4 ] || { echo "usage: $0 MPITRAIN MAKE_TEST_DATASET MPIEXEC WORK_DIR" >&2; exit 2; }
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2>/dev/null; then exec sudo -n -E bash "$0" "$@"; fi
  echo "SKIP: cluster_slurm_jobs needs root (or password-less sudo) to run Slurm daemons"
  exit 0
fi

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MPITRAIN=$(readlink -f "$1")
MAKE_DS=$(readlink -f "$2")
WORK=$(mkdir -p "$4" && cd "$4" && pwd)/slurm_jobs
STATE=$WORK/slurm
CLUSTER=(bash "$ROOT/scripts/slurm-cluster.sh")
CLUSTER_OPTS=(--state "$STATE" --nodes 4 --cpus 2 --port "${MPITRAIN_SLURM_TEST_PORT:-26817}")
WAIT_S=120   # the jobs must all end within this many seconds of submission
T0=$SECONDS

fails=0
checks=0
pass() { checks=$((checks + 1)); echo "  ok   $*"; }
fail() { checks=$((checks + 1)); fails=$((fails + 1)); echo "  FAIL $*"; }
check() {  # description command...
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
elapsed() { echo "$((SECONDS - T0)) s"; }

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$fails" -gt 0 ] || [ "$rc" -ne 0 ]; then
    echo "--- diagnostics"
    timeout 10 squeue 2>&1 | head -20
    tail -n 15 "$STATE"/log/slurmctld.log 2>/dev/null
    for f in "$WORK"/runs/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -n 25 "$f"; }; done
  fi
  local t=$SECONDS
  timeout 60 "${CLUSTER[@]}" stop "${CLUSTER_OPTS[@]}"
  echo "stop: $((SECONDS - t)) s"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted"; exit 130' INT TERM

# ---------------------------------------------------------------- set up
# Daemons left by an earlier run of this test that was killed outright are
# in this test's own state directory: stop them before wiping it.
[ -s "$STATE/pids" ] && timeout 60 "${CLUSTER[@]}" stop "${CLUSTER_OPTS[@]}" >/dev/null 2>&1
rm -rf "$WORK"
mkdir -p "$WORK/runs"
cd "$WORK" || exit 1
"$MAKE_DS" good "$WORK/good.h5" 2000 16 >/dev/null || { echo "FATAL: make_test_dataset failed"; exit 1; }
cat >"$WORK/small.ini" <<'EOF'
# 4 Gaussian blobs, 2000 rows of 16 features: chance is 0.25, a working run ends near 1.
data = good.h5
model = 16-32-4
epochs = 2
global-batch = 64
lr = 0.1
progress = lines
EOF
# The CNN form of the job (issue 13): the 16 features read as a 1x4x4 image.
sed 's/^model = .*/model = 1x4x4 conv3x3:8 relu bn maxpool2 dense:4/' "$WORK/small.ini" >"$WORK/cnn.ini"

echo "== starting the cluster"
t=$SECONDS
timeout 300 "${CLUSTER[@]}" start "${CLUSTER_OPTS[@]}" || { echo "FATAL: the Slurm cluster did not start"; exit 1; }
echo "start (with any install): $((SECONDS - t)) s"
eval "$("${CLUSTER[@]}" env "${CLUSTER_OPTS[@]}")"   # SLURM_CONF, OMPI_MCA_btl
export MPITRAIN MPITRAIN_CONFIG=$WORK/small.ini
unset MPITRAIN_ARGS MPITRAIN_RUNS MPITRAIN_LAUNCHER BATCH_SIZES NODE_COUNTS SCALING WEAK_BATCH_PER_RANK

one="" two="" via_mpirun="" sweep="" scaling="" taken="" cnn="" requeued="" unbroken=""   # job ids, set by submit
submit() {  # variable sbatch-args...: submits, stores the job id in the variable
  local var=$1 id
  shift
  id=$(timeout 20 sbatch --parsable "$@") || { echo "FATAL: sbatch $* failed"; exit 1; }
  printf -v "$var" '%s' "${id%%;*}"
  echo "submitted ${!var}: sbatch $*"
}

# ---------------------------------------------------------------- submit
echo "== submitting ($(elapsed))"
T_SUBMIT=$SECONDS
submit one -N 1 "$ROOT/jobs/fashion-mnist-mlp.sbatch" --seed 7
submit two -N 2 "$ROOT/jobs/fashion-mnist-mlp.sbatch" --seed 7
MPITRAIN_LAUNCHER=mpirun submit via_mpirun -N 2 "$ROOT/jobs/fashion-mnist-mlp.sbatch" --seed 7
MPITRAIN_CONFIG=$WORK/cnn.ini submit cnn -N 2 --job-name=cnn "$ROOT/jobs/fashion-mnist-mlp.sbatch"
BATCH_SIZES="32 128" submit sweep --array=0-1 "$ROOT/jobs/batch-sweep.sbatch"
NODE_COUNTS="1 2" WEAK_BATCH_PER_RANK=16 submit scaling -N 2 "$ROOT/jobs/node-scaling.sbatch"
# A job whose run directory is already there: held, the directory made, released.
submit taken --hold -N 1 --job-name=taken "$ROOT/jobs/fashion-mnist-mlp.sbatch"
mkdir -p "$WORK/runs/taken-$taken"
echo "an earlier run" >"$WORK/runs/taken-$taken/metrics.jsonl"
timeout 10 scontrol release "$taken"
# Requeue: a job stalled (first run only) after its step-40 checkpoint is
# requeued with scontrol; its second run must resume and end bitwise equal to
# the same job run through.
cat >"$WORK/stall-once.sh" <<EOF
#!/usr/bin/env bash
# The first run's rank 0 waits 60 s before step 45; a requeued run does not.
[ "\${SLURM_RESTART_COUNT:-0}" -gt 0 ] || export MPITRAIN_TEST_STALL=0:45:60
exec "$MPITRAIN" "\$@"
EOF
chmod +x "$WORK/stall-once.sh"
REQUEUE_ARGS=(--seed 9 --epochs 6 --checkpoint-every-steps 10)
MPITRAIN=$WORK/stall-once.sh submit requeued -N 1 --job-name=requeued "$ROOT/jobs/fashion-mnist-mlp.sbatch" "${REQUEUE_ARGS[@]}"
submit unbroken -N 1 --job-name=unbroken "$ROOT/jobs/fashion-mnist-mlp.sbatch" "${REQUEUE_ARGS[@]}"

# ---------------------------------------------------------------- wait
# No accounting here (no sacct): finished jobs stay in the controller's
# memory (MinJobAge) and `scontrol show job` gives their final state.
declare -A state exit_code runtime job_id
poll() {  # job ids...: fills state/exit_code/runtime for every job and array task
  local line id
  while read -r line; do
    [ -n "$line" ] || continue
    id=$(sed -n 's/^JobId=\([0-9]*\).*/\1/p' <<<"$line")
    [[ $line == *" ArrayTaskId="[0-9]* ]] && id=$(sed -n 's/.* ArrayJobId=\([0-9]*\) ArrayTaskId=\([0-9]*\).*/\1_\2/p' <<<"$line")
    job_id[$id]=$(sed -n 's/^JobId=\([0-9]*\).*/\1/p' <<<"$line")
    state[$id]=$(sed -n 's/.* JobState=\([A-Z_]*\).*/\1/p' <<<"$line")
    exit_code[$id]=$(sed -n 's/.* ExitCode=\([0-9:]*\).*/\1/p' <<<"$line")
    runtime[$id]=$(sed -n 's/.* RunTime=\([0-9:-]*\).*/\1/p' <<<"$line")
  done < <(for j in "$@"; do timeout 10 scontrol -o show job "$j" 2>/dev/null; done)
}
all=("$one" "$two" "$via_mpirun" "$sweep" "$scaling" "$taken" "$cnn" "$requeued" "$unbroken")
# Requeue the stalled job once its checkpoint at step 40 is written.
RQ_DIR=$WORK/runs/requeued-$requeued
for _ in $(seq 1 120); do
  grep -q 's0000008' "$RQ_DIR/checkpoints/latest" 2>/dev/null && break  # epoch 2 step 8 = global step 40
  sleep 0.5
done
echo "requeue job $requeued at its checkpoint $(cat "$RQ_DIR/checkpoints/latest" 2>/dev/null) ($(elapsed))"
timeout 10 scontrol requeue "$requeued" || echo "scontrol requeue $requeued failed"
# Slurm holds a requeued job back (its BeginTime moves ahead); let it start now.
for _ in $(seq 1 40); do
  timeout 10 scontrol -o show job "$requeued" 2>/dev/null | grep -q 'JobState=PENDING' && break
  sleep 0.25
done
timeout 10 scontrol update JobId="$requeued" StartTime=now || echo "scontrol update $requeued StartTime=now failed"
echo "== waiting for ${#all[@]} jobs (at most $WAIT_S s; $(elapsed))"
while :; do
  poll "${all[@]}"
  pending=0
  for id in "${!state[@]}"; do
    case ${state[$id]} in PENDING|CONFIGURING|RUNNING|COMPLETING|SUSPENDED|REQUEUED|"") pending=$((pending + 1)) ;; esac
  done
  # Every job must have been seen; the array is one entry until its tasks start.
  for id in "$one" "$two" "$via_mpirun" "$scaling" "$taken" "$cnn" "$requeued" "$unbroken" "${sweep}_0" "${sweep}_1"; do
    [ -n "${state[$id]:-}" ] || pending=$((pending + 1))
  done
  [ "$pending" -eq 0 ] && break
  if [ $((SECONDS - T_SUBMIT)) -ge "$WAIT_S" ]; then
    echo "FATAL: jobs still unfinished $WAIT_S s after submission:"
    for id in "${!state[@]}"; do echo "  $id ${state[$id]}"; done
    exit 1
  fi
  sleep 0.5
done
echo "all jobs ended $((SECONDS - T_SUBMIT)) s after submission ($(elapsed)); run times (scontrol RunTime):"
for id in $(printf '%s\n' "${!state[@]}" | sort -V); do
  printf '  job %-5s %-10s exit %-5s run time %s\n' "$id" "${state[$id]}" "${exit_code[$id]}" "${runtime[$id]}"
done

# ---------------------------------------------------------------- checks
header() { head -n 1 "$1"; }
summary_value() { grep '"type":"summary"' "$1" 2>/dev/null | sed -n "s/.*\"$2\":\([0-9.e+-]*\).*/\1/p"; }
summary_acc() { summary_value "$1" test_acc; }
acc_above() { [ -n "$1" ] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a > b) }'; }
has() { grep -qF -- "$2" "$1"; }

# check_run JOB_KEY RUN_DIR LOG RANKS NODES TASKS_PER_NODE SLURM_JOB_ID
# (TASKS_PER_NODE in Slurm's notation, e.g. 2(x2), or "any")
check_run() {
  local key=$1 dir=$2 log=$3 ranks=$4 nodes=$5 tpn=$6 jobid=$7 m=$2/metrics.jsonl acc tpn_re
  tpn_re=$(sed 's/[()]/\\&/g' <<<"$tpn")
  [ "$tpn" = any ] && tpn_re='[^"]+'
  echo "-- job $key: $dir"
  check "Slurm state COMPLETED, exit 0:0 (got ${state[$key]:-?} ${exit_code[$key]:-?})" \
    test "${state[$key]:-}" = COMPLETED -a "${exit_code[$key]:-}" = 0:0
  check "Slurm log $log exists and shows the Slurm job" has "$log" "slurm job $jobid: $nodes node(s)"
  check "run directory has config.ini, metrics.jsonl, train.log" \
    test -s "$dir/config.ini" -a -s "$m" -a -s "$dir/train.log"
  check "train.log in the run directory is the trainer's output" has "$dir/train.log" "mpitrain "
  check "checkpoints in the run directory, and config.ini points at none outside it" \
    bash -c "test -s '$dir/checkpoints/latest' && grep -qx 'metrics = ' '$dir/config.ini' && grep -qx 'checkpoint-dir = ' '$dir/config.ini'"
  check "metrics header: \"ranks\":$ranks, \"nodes\":$nodes" \
    bash -c "head -n 1 '$m' | grep -qF '\"ranks\":$ranks,' && head -n 1 '$m' | grep -qF '\"nodes\":$nodes,'"
  check "metrics header: slurm job_id $jobid, nodes $nodes, tasks_per_node $tpn, cpus_per_task 1" \
    grep -qE "\"slurm\":\{\"job_id\":\"$jobid\",\"nodes\":\"$nodes\",\"tasks_per_node\":\"$tpn_re\",\"cpus_per_task\":\"1\"\}" <(header "$m")
  check "metrics header: 1 BLAS thread per rank from SLURM_CPUS_PER_TASK, hosts listed" \
    bash -c "head -n 1 '$m' | grep -qF '\"threads_per_rank\":1,\"threads_rule\":\"SLURM_CPUS_PER_TASK\"' && head -n 1 '$m' | grep -qF '\"hosts\":[{\"host\":'"
  acc=$(summary_acc "$m")
  check "final test accuracy ${acc:-missing} > 0.9 (chance 0.25)" acc_above "$acc" 0.9
}

echo "== checking ($(elapsed))"
R=$WORK/runs
check_run "$one" "$R/fashion-mnist-mlp-$one" "$R/fashion-mnist-mlp-$one.log" 2 1 2 "$one"
check "arguments after the script reach the trainer (seed = 7 in config.ini)" \
  grep -qx 'seed = 7' "$R/fashion-mnist-mlp-$one/config.ini"
check_run "$two" "$R/fashion-mnist-mlp-$two" "$R/fashion-mnist-mlp-$two.log" 4 2 "2(x2)" "$two"
loss1=$(summary_value "$R/fashion-mnist-mlp-$one/metrics.jsonl" test_loss)
loss2=$(summary_value "$R/fashion-mnist-mlp-$two/metrics.jsonl" test_loss)
check "2 ranks on 1 node and 4 on 2 nodes, same B and seed: same final test loss ($loss1 vs $loss2, rel. 1e-4)" \
  awk -v a="${loss1:-x}" -v b="${loss2:-y}" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(a > 0 && d <= 1e-4 * a) }'
# Ranks started by mpirun inherit the environment of its daemons' srun step
# (one daemon per node), so SLURM_TASKS_PER_NODE reads 1(x2) there.
check_run "$via_mpirun" "$R/fashion-mnist-mlp-$via_mpirun" "$R/fashion-mnist-mlp-$via_mpirun.log" 4 2 any "$via_mpirun"
check "the mpirun job was launched by mpirun" has "$R/fashion-mnist-mlp-$via_mpirun.log" "+ mpirun --bind-to none "
check_run "$cnn" "$R/cnn-$cnn" "$R/cnn-$cnn.log" 4 2 "2(x2)" "$cnn"
check "the CNN job (MPITRAIN_CONFIG=cnn.ini) trained the layer list: its table shows conv0+relu and bn0" \
  bash -c "grep -q 'conv0+relu  *8x4x4' '$R/cnn-$cnn/train.log' && grep -q 'bn0  *8x4x4' '$R/cnn-$cnn/train.log'"

for task in 0 1; do
  B=$([ "$task" -eq 0 ] && echo 32 || echo 128)
  dir=$R/batch-sweep-$sweep/B$B
  check_run "${sweep}_$task" "$dir" "$R/batch-sweep-${sweep}_$task.log" 2 1 2 "${job_id[${sweep}_$task]:-?}"
  check "array task $task trained at global batch $B" has <(header "$dir/metrics.jsonl") "\"global-batch\":\"$B\""
done

scaling_dir=$R/node-scaling-$scaling
echo "-- job $scaling: $scaling_dir"
check "scaling job COMPLETED (got ${state[$scaling]:-?})" test "${state[$scaling]:-}" = COMPLETED
for run in strong-N1:2:1:64 strong-N2:4:2:64 weak-N1:2:1:32 weak-N2:4:2:64; do
  IFS=: read -r name ranks nodes B <<<"$run"
  m=$scaling_dir/$name/metrics.jsonl
  acc=$(summary_acc "$m" 2>/dev/null)
  check "$name: $ranks ranks on $nodes node(s), global batch $B, test acc ${acc:-missing} > 0.9" \
    bash -c "head -n 1 '$m' | grep -qF '\"ranks\":$ranks,\"nodes\":$nodes,' && head -n 1 '$m' | grep -qF '\"global-batch\":\"$B\"' && awk -v a='${acc:-0}' 'BEGIN { exit !(a > 0.9) }'"
done
check "scaling log ends with the table of 4 steps" \
  test "$(grep -cE '^(strong|weak) +[12] +[24] +[0-9]+ +[0-9.]+ +[0-9]+$' "$R/node-scaling-$scaling.log")" -eq 4

echo "-- job $taken: run directory existed before the job"
check "job FAILED with exit 2 (got ${state[$taken]:-?} ${exit_code[$taken]:-?})" \
  test "${state[$taken]:-}" = FAILED -a "${exit_code[$taken]:-}" = 2:0
check "its log says the run directory exists" has "$R/taken-$taken.log" "run directory runs/taken-$taken exists"
check "the earlier run's file is untouched and nothing was added" \
  test "$(cat "$R/taken-$taken/metrics.jsonl")" = "an earlier run" -a "$(ls "$R/taken-$taken")" = metrics.jsonl
echo "-- job $requeued: requeued mid-run with scontrol requeue"
crc_of() { h5dump -a /state_crc32 "$1" 2>/dev/null | sed -n 's/^ *(0): *//p'; }
check_run "$requeued" "$RQ_DIR" "$R/requeued-$requeued.log" 2 1 2 "$requeued"
check "its second run resumed from the step-40 checkpoint" \
  has "$R/requeued-$requeued.log" "requeued (restart 1): resuming from runs/requeued-$requeued/checkpoints/ckpt-e0002-s0000008.h5"
check "train.log holds both runs (the second resumed)" \
  bash -c "test \$(grep -c '^mpitrain ' '$RQ_DIR/train.log') -eq 2"
RQ_CRC=$(crc_of "$RQ_DIR/checkpoints/final.h5")
UB_CRC=$(crc_of "$R/unbroken-$unbroken/checkpoints/final.h5")
check "requeued run ends bitwise equal to the unbroken one (state_crc32 $RQ_CRC vs $UB_CRC)" \
  test -n "$RQ_CRC" -a "$RQ_CRC" = "$UB_CRC"
check "jobcomp log records every job's end state (the requeued job twice)" \
  test "$(grep -c 'JobState=' "$STATE/jobcomp.log")" -ge 10

echo "== $((checks - fails)) of $checks checks passed ($(elapsed) before stopping the cluster)"
[ "$fails" -eq 0 ]
