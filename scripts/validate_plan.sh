#!/usr/bin/env bash
# Checks the (B, P) planner (scripts/plan.py) against real runs on emulated
# hosts, in one go, so the plan's inputs and the runs that test it are
# measured minutes apart on the same machine (issue 16):
#   1. an emulated cluster (scripts/netns-cluster.sh, root) with links shaped
#      to --rate;
#   2. for each host count P in --hosts (one rank per host, --threads BLAS
#      threads per rank):
#      - `mpitrain bench` at the shards B/P of every candidate B;
#      - a calibration run (32 rows per rank, 3 epochs of 20 % of the
#        training set, no prefetch, no evaluation): the optimizer, the reads
#        (with 5 %, as validate_perf_model.sh takes, the read time per row of
#        one run came out 2.3 times another's at the same P);
#      - two runs of 2 epochs at 32 rows per rank with the sweep's config, one
#        with its evaluation (splits and --eval-every-steps), one with
#        --eval-split none: what an evaluation costs the training around it
#        (eval_cost.py);
#   3. scripts/plan.py from the sweep and those files;
#   4. scripts/plan_validate.py: the best B at each P (--rows best, the
#      default here: hosts that share this machine's cores are never faster
#      together, so the frontier is one point) trained for real with --seeds
#      seeds, with the plan's threads, against the prediction.
#
#   sudo bash scripts/validate_plan.sh [--sweep runs/sweep-study] [--hosts 1,2,4] [--rate 1gbit]
#        [--seeds 8] [--batch-min 64] [--batch-max 8192] [--threads 1] [--rows best|frontier]
#        [--points 3] [--tolerance 0.2] [--mpitrain build/mpitrain] [--out runs/plan-validation]
#
# The bench, calibration and evaluation runs use the config.ini of the
# sweep's best-rate run at its smallest B (the model, optimizer, gradient
# buckets and evaluation cadence of the runs being planned). Output: OUT/bench-P.json,
# OUT/cal-P/, OUT/eval-P/, OUT/plan/ (plan.md, plan.json, plan.png),
# OUT/val/ (the runs, validation.md). Exit 0 when every point is within
# --tolerance, 1 when one is not, 2 when an option or a step failed. About 5
# minutes with the defaults on 2 cores. Paths are relative to the current
# directory.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SWEEP=runs/sweep-study
HOSTS=1,2,4
RATE=1gbit
SEEDS=8
BMIN=64
BMAX=8192
THREADS=1
ROWS=best
POINTS=3
TOL=0.2
MPITRAIN=$ROOT/build/mpitrain
OUT=runs/plan-validation
die() { echo "validate_plan: error: $*" >&2; exit 2; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }
while [ $# -gt 0 ]; do
  case $1 in
    -h | --help) usage 0 ;;
    --sweep | --hosts | --rate | --seeds | --batch-min | --batch-max | --threads | --rows | --points | --tolerance | \
      --mpitrain | --out) [ $# -ge 2 ] || die "$1 needs a value" ;;
  esac
  case $1 in
    --sweep) SWEEP=$2; shift 2 ;;
    --hosts) HOSTS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --batch-min) BMIN=$2; shift 2 ;;
    --batch-max) BMAX=$2; shift 2 ;;
    --threads) THREADS=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --points) POINTS=$2; shift 2 ;;
    --tolerance) TOL=$2; shift 2 ;;
    --mpitrain) MPITRAIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "validate_plan: unknown option '$1'" >&2; usage 2 >&2 ;;
  esac
done
[ -x "$MPITRAIN" ] || die "$MPITRAIN is not an executable (bash scripts/build.sh)"
[ -d "$SWEEP" ] || die "--sweep $SWEEP is not a directory (scripts/sweep.py makes one)"
[[ "$HOSTS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--hosts takes host counts of 1 or more, e.g. 1,2,4"
[[ "$SEEDS" =~ ^[1-9][0-9]*$ && "$THREADS" =~ ^[1-9][0-9]*$ && "$POINTS" =~ ^[1-9][0-9]*$ ]] ||
  die "--seeds, --threads and --points take positive integers"
[[ "$BMIN" =~ ^[1-9][0-9]*$ && "$BMAX" =~ ^[1-9][0-9]*$ && "$BMIN" -le "$BMAX" ]] ||
  die "--batch-min and --batch-max take positive integers, min <= max"
[[ "$ROWS" =~ ^(best|frontier)$ ]] || die "--rows is best or frontier"
[[ "$TOL" =~ ^[0-9]*\.?[0-9]+$ ]] || die "--tolerance takes a fraction, e.g. 0.2"
[[ "$RATE" =~ ^[0-9]+(\.[0-9]+)?[kmg]?bit$ ]] || die "--rate takes a tc rate, e.g. 1gbit or 100mbit"
IFS=, read -r -a HOST_LIST <<<"$HOSTS"
max_hosts=0
for h in "${HOST_LIST[@]}"; do if [ "$h" -gt "$max_hosts" ]; then max_hosts=$h; fi; done
[ "$BMAX" -ge "$max_hosts" ] || die "--batch-max $BMAX is below $max_hosts hosts: no global batch gives each rank a row"
# Every path as given from the current directory; the steps run from the repository.
SWEEP=$(realpath -- "$SWEEP") MPITRAIN=$(realpath -- "$MPITRAIN") OUT=$(realpath -m -- "$OUT")
cd "$ROOT"
PY=/usr/bin/python3
source "$ROOT/scripts/mpi-env.sh"
CONFIG=$(PYTHONPATH=$ROOT/scripts "$PY" -c '
import os, sys
from mpitrain_study.runs import best_per_batch, load_sweeps
best = best_per_batch(load_sweeps([sys.argv[1]]))
if not best:
    sys.exit("no run of the sweep reached its target")
print(os.path.join(best[min(best)]["dir"], "config.ini"))' "$SWEEP") || die "cannot read the sweep $SWEEP"
[ -f "$CONFIG" ] || die "$CONFIG does not exist: the sweep's runs record no config"
ini() { sed -n "s/^$1 = //p" "$CONFIG" | head -n 1; }  # a key of the config
BENCH_ARGS=(--model "$(ini model)" --optimizer "$(ini optimizer)" --bucket-bytes "$(ini bucket-bytes)"
            --overlap "$(ini overlap)")

CLUSTER=$ROOT/scripts/netns-cluster.sh
# Its own prefix and subnet: a developer's cluster (mpt) and the tests' are left alone.
export NETNS_CLUSTER_PREFIX=mptpl NETNS_CLUSTER_SUBNET=10.99.8
trap 'timeout 30 bash "$CLUSTER" down >/dev/null 2>&1' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$OUT/logs"
step() {  # step NAME COMMAND...: runs it, its output in OUT/logs/NAME.log
  local name=$1 t0 t1
  shift
  t0=$(date +%s.%N)
  if ! "$@" >"$OUT/logs/$name.log" 2>&1; then
    echo "validate_plan: $name failed (OUT/logs/$name.log):" >&2
    tail -n 15 "$OUT/logs/$name.log" | sed 's/^/  | /' >&2
    exit 2
  fi
  t1=$(date +%s.%N)
  awk -v a="$t0" -v b="$t1" -v n="$name" 'BEGIN { printf "  %-24s %6.1f s\n", n, b - a }'
}
echo "validate_plan: $(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1); hosts $HOSTS," \
  "links $RATE, $THREADS BLAS thread(s) per rank; sweep $SWEEP (config $CONFIG)"
step cluster-up bash "$CLUSTER" up "$max_hosts" --rate "$RATE"
RUN_ARGS=(train --config "$CONFIG" --metrics "" --checkpoint-dir "" --checkpoint-every-epochs 0 --progress none
          --threads "$THREADS" --target "" --stop-at-target false)
benches=() cals=() evals=()
for h in "${HOST_LIST[@]}"; do
  on=(bash "$CLUSTER" mpirun --hosts "$h" -- "$MPITRAIN")
  shards="" b=1
  while [ "$b" -le "$BMAX" ]; do
    if [ "$b" -ge "$BMIN" ] && [ "$b" -ge "$h" ]; then shards+="$(((b + h - 1) / h)),"; fi  # ceil(B/P) rows
    b=$((b * 2))
  done
  step "bench-$h" "${on[@]}" bench "${BENCH_ARGS[@]}" --max-bytes 1048576 --threads "$THREADS" \
    --shard-sizes "${shards%,}" --json "$OUT/bench-$h.json"
  rm -rf "$OUT/cal-$h" "$OUT/eval-$h" "$OUT/quiet-$h"
  step "calibration-$h" "${on[@]}" "${RUN_ARGS[@]}" --epochs 3 --val-fraction 0.8 --eval-split none \
    --prefetch false --global-batch $((32 * h)) --run-dir "$OUT/cal-$h"
  # The job's own evaluation (the config's splits: no held-out rows of ours to evaluate), and without.
  step "evaluating-$h" "${on[@]}" "${RUN_ARGS[@]}" --epochs 2 --global-batch $((32 * h)) --run-dir "$OUT/eval-$h"
  step "not-evaluating-$h" "${on[@]}" "${RUN_ARGS[@]}" --epochs 2 --eval-split none --eval-every-steps 0 \
    --global-batch $((32 * h)) --run-dir "$OUT/quiet-$h"
  benches+=("$OUT/bench-$h.json") cals+=("$OUT/cal-$h") evals+=("$OUT/eval-$h" "$OUT/quiet-$h")
done
step plan "$PY" scripts/plan.py --sweep "$SWEEP" --bench "${benches[@]}" --calibration "${cals[@]}" \
  --eval-runs "${evals[@]}" --ranks "$HOSTS" --batch-min "$BMIN" --batch-max "$BMAX" --mpitrain "$MPITRAIN" \
  --out "$OUT/plan"
rm -rf "$OUT/val"
rc=0
"$PY" scripts/plan_validate.py --plan "$OUT/plan/plan.json" --sweep "$SWEEP" --rows "$ROWS" --points "$POINTS" \
  --seeds "$SEEDS" --tolerance "$TOL" --mpitrain "$MPITRAIN" \
  --launcher "bash $(printf %q "$CLUSTER") mpirun --hosts {P} --" --out "$OUT/val" || rc=$?
echo "validate_plan: plan $OUT/plan/plan.md, validation $OUT/val/validation.md"
exit "$rc"
