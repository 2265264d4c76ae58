#!/usr/bin/env bash
# Validates the performance model (scripts/perf_model.py) against real runs.
# For each rank count P:
#   1. `mpitrain bench --json` at P (compute per sample, all-reduce, alpha-beta
#      fit, and the trainer's step pattern, which the model uses by default);
#   2. a calibration run: 32 rows per rank on 5 % of the training set, without
#      prefetch. It gives the model what the bench does not time: the
#      optimizer's per-step cost, the read time per row, and the trainer's own
#      all-reduce time (time_comm_s);
#   3. short training runs of Fashion-MNIST at each global batch.
# Then the model predicts each training run's step time, and one table
# compares them with the measured step times (epochs 2.., epoch_time_s /
# steps_in_epoch). Three variants of the model are shown:
#   calibrated      all-reduce per step from the calibration run at that P
#                   (binomial formula for other P)
#   bench-binomial  all-reduce from the bench at P (by default its step
#                   pattern's, --comm-fit in-step), binomial formula
#   bench-ring      the same with the ring formula; the verdict, by default
#                   (the trainer reduces its buckets with the blocking
#                   MPI_Allreduce the bench times)
#
#   bash scripts/validate_perf_model.sh [--mpitrain build/mpitrain] [--hosts] [options]
#   bash scripts/validate_perf_model.sh --cnn      # the CNN job instead of the MLP's
#
# On this machine (default): P = 1, 2, 4 with `mpirun --oversubscribe` (4
# ranks on 2 cores share them, and the bench at P = 4 measures that too).
# --hosts: also on the emulated cluster of scripts/netns-cluster.sh (root),
# every host's link shaped with tc tbf (--rate, default 100mbit: its token
# bucket holds 10 ms of traffic, 125 kB, well below the 1 MB gradient; at
# 1gbit it holds 1.25 MB and lets much of each all-reduce through unshaped),
# ranks spread over 2 and 4 hosts (--layouts HOSTSxRANKS,..., default
# 2x1,4x1), one BLAS thread per rank, global batches --host-batches (default
# 1024,4096: at 100mbit one all-reduce takes 0.15-0.4 s). --no-local skips
# the runs on this machine. This machine takes about 2 min, the hosts 4 min.
# The host runs are also predicted from the bench and calibration of the
# layout with the fewest ranks alone (an extrapolation in P through the ring
# formula), in extra columns beside the verdict.
#
# --cnn validates the CNN of jobs/fashion-mnist-cnn.ini on this machine: it
# stands for --job jobs/fashion-mnist-cnn.ini --batches 256 --train-fraction
# 0.1 --bench-shards 32 --iters 10 --out runs/perf-model-validation-cnn (each
# given option still wins). A CNN step costs ~40 MLP steps, so the runs train
# on 10 % of the training set (whole steps only, --drop-last) and the bench
# times only the shards the runs use. About 10 min on 2 idle cores.
#
# Options:
#   --mpitrain PATH     the binary (default build/mpitrain)
#   --job FILE          the job whose model and settings the runs train (default
#                       jobs/fashion-mnist-mlp.ini; the bench times its model)
#   --train-fraction F  share of the training set the runs train on (default 1;
#                       the rest is held out with --val-fraction and never evaluated)
#   --bench-shards LIST shard sizes the bench times besides the runs' own
#                       (default 16,32,64,128,256,512; 32 is the calibration's)
#   --data FILE         default datasets/fashion-mnist.h5 (bash scripts/prepare-data.sh)
#   --ranks LIST        local rank counts (default 1,2,4)
#   --batches LIST      local global batches (default 256,1024)
#   --epochs N          epochs per run (default 3; the model uses epochs 2..N)
#   --hosts, --no-local, --layouts LIST, --rate RATE, --host-batches LIST   (see above)
#   --verdict VARIANT   bench-ring (default), calibrated or bench-binomial
#   --tolerance F       largest accepted relative error (default 0.15)
#   --iters N           bench iterations per point (default 20)
#   --out DIR           default runs/perf-model-validation (replaced if it holds an earlier validation)
#   --mpirun CMD        default mpirun
#   --model-args '...'  more options for perf_model.py (e.g. '--compute-stat max')
#
# Output: DIR/local/ and DIR/hosts/ hold the benches, the run directories and
# the model's output (model-VARIANT/perf_model.{md,json,png}); DIR/validation.md
# holds the table, which is also printed. Exit 0 when every run is within the
# tolerance under the verdict's variant, 1 when one is not, 2 when a bench or
# a run failed.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

MPITRAIN=build/mpitrain
DATA=datasets/fashion-mnist.h5
JOB=""
TRAIN_FRACTION=""
BENCH_SHARDS=""
CNN=0
RANKS=1,2,4
BATCHES=""
HOST_BATCHES=1024,4096
EPOCHS=3
HOSTS=0
LOCAL=1
LAYOUTS=2x1,4x1
RATE=100mbit
TOL=0.15
ITERS=""
OUT=""
MPIRUN=mpirun
MODEL_ARGS=""
VERDICT=bench-ring

die() { echo "validate_perf_model: error: $*" >&2; exit 2; }
note() { echo "validate_perf_model: $*"; }
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit "${1:-0}"; }

while [ $# -gt 0 ]; do
  case $1 in
    --mpitrain) MPITRAIN=${2:?}; shift 2 ;;
    --data) DATA=${2:?}; shift 2 ;;
    --job) JOB=${2:?}; shift 2 ;;
    --train-fraction) TRAIN_FRACTION=${2:?}; shift 2 ;;
    --bench-shards) BENCH_SHARDS=${2:?}; shift 2 ;;
    --cnn) CNN=1; shift ;;
    --ranks) RANKS=${2:?}; shift 2 ;;
    --batches) BATCHES=${2:?}; shift 2 ;;
    --host-batches) HOST_BATCHES=${2:?}; shift 2 ;;
    --epochs) EPOCHS=${2:?}; shift 2 ;;
    --hosts) HOSTS=1; shift ;;
    --no-local) LOCAL=0; shift ;;
    --layouts) LAYOUTS=${2:?}; shift 2 ;;
    --rate) RATE=${2:?}; shift 2 ;;
    --verdict) VERDICT=${2:?}; shift 2 ;;
    --tolerance) TOL=${2:?}; shift 2 ;;
    --iters) ITERS=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --mpirun) MPIRUN=${2:?}; shift 2 ;;
    --model-args) MODEL_ARGS=${2?}; shift 2 ;;
    -h | --help) usage 0 ;;
    *) echo "validate_perf_model: unknown option '$1'" >&2; usage 2 >&2 ;;
  esac
done

# Defaults, the MLP's or (--cnn) the CNN's; options given win.
if [ "$CNN" -eq 1 ]; then
  : "${JOB:=jobs/fashion-mnist-cnn.ini}" "${BATCHES:=256}" "${TRAIN_FRACTION:=0.1}" "${BENCH_SHARDS:=32}"
  : "${ITERS:=10}" "${OUT:=runs/perf-model-validation-cnn}"
fi
: "${JOB:=jobs/fashion-mnist-mlp.ini}" "${BATCHES:=256,1024}" "${TRAIN_FRACTION:=1}"
: "${BENCH_SHARDS:=16,32,64,128,256,512}" "${ITERS:=20}" "${OUT:=runs/perf-model-validation}"

# Absolute paths: the emulated hosts start ranks through their own shells.
abspath() { case $1 in /*) echo "$1" ;; *) echo "$ROOT/$1" ;; esac; }
MPITRAIN=$(abspath "$MPITRAIN")
DATA=$(abspath "$DATA")
OUT=$(abspath "$OUT")
JOB=$(abspath "$JOB")
[ -x "$MPITRAIN" ] || die "no mpitrain binary at $MPITRAIN (bash scripts/build.sh, or --mpitrain PATH)"
[ -f "$JOB" ] || die "no job file at $JOB (--job FILE)"
# The job's model: the bench times the same one.
MODEL=$(sed -n 's/^[[:space:]]*model[[:space:]]*=[[:space:]]*//p' "$JOB" | tail -n 1 | sed 's/[[:space:]]*$//')
[ -n "$MODEL" ] || die "$JOB has no 'model = ...' line"
[[ "$TRAIN_FRACTION" =~ ^(1|1\.0*|0?\.[0-9]*[1-9][0-9]*)$ ]] || die "--train-fraction must be in (0, 1] (got '$TRAIN_FRACTION')"
[[ "$BENCH_SHARDS" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--bench-shards takes a list like 32,128"
[ -f "$DATA" ] || die "no dataset at $DATA (bash scripts/prepare-data.sh)"
[[ "$EPOCHS" =~ ^[0-9]+$ ]] && [ "$EPOCHS" -ge 2 ] || die "--epochs must be >= 2 (the first epoch is warm-up, not measured)"
for list in "$RANKS" "$BATCHES" "$HOST_BATCHES"; do
  [[ "$list" =~ ^[1-9][0-9]*(,[1-9][0-9]*)*$ ]] || die "--ranks, --batches and --host-batches take lists like 1,2,4 (got '$list')"
done
[[ "$LAYOUTS" =~ ^[1-9][0-9]*x[1-9][0-9]*(,[1-9][0-9]*x[1-9][0-9]*)*$ ]] || die "--layouts takes a list like 2x1,4x1,2x2"
[[ "$VERDICT" =~ ^(calibrated|bench-binomial|bench-ring)$ ]] || die "--verdict is calibrated, bench-binomial or bench-ring"
[ "$LOCAL" -eq 1 ] || [ "$HOSTS" -eq 1 ] || die "--no-local without --hosts leaves nothing to validate"
if [ "$HOSTS" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then die "--hosts builds network namespaces and needs root"; fi
IFS=, read -r -a RANK_LIST <<<"$RANKS"
IFS=, read -r -a LAYOUT_LIST <<<"$LAYOUTS"

# A python3 with numpy and matplotlib: the first on PATH, else Debian's.
PY=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import numpy, matplotlib' 2>/dev/null; then PY=$p; break; fi
done
[ -n "$PY" ] || die "needs python3 with numpy and matplotlib (apt-get install python3-numpy python3-matplotlib)"

source "$ROOT/scripts/mpi-env.sh"

# The output directory: fresh, or an earlier validation's (which is replaced).
MARK=.perf-model-validation
if [ -e "$OUT" ]; then
  if [ -e "$OUT/$MARK" ]; then
    rm -rf "$OUT"
  elif [ -n "$(ls -A "$OUT" 2>/dev/null)" ]; then
    die "$OUT exists and is not an earlier validation: choose another --out"
  fi
fi
mkdir -p "$OUT/logs"
: >"$OUT/$MARK"

# shard_sizes P BATCHES: the bench's shard sizes, its defaults plus every
# shard the runs use (the calibration's 32 among them).
shard_sizes() {
  local p=$1 b sizes=${BENCH_SHARDS//,/ }
  IFS=, read -r -a bs <<<"$2"
  for b in "${bs[@]}"; do sizes+=" $(((b + p - 1) / p))"; done
  tr ' ' '\n' <<<"$sizes" | sort -n -u | paste -sd, -
}

# logged NAME COMMAND...: runs it with its output in logs/NAME.log; on failure
# shows the log's tail and stops the validation.
logged() {
  local name=$1 t0 t1 rc=0
  shift
  t0=$(date +%s.%N)
  "$@" >"$OUT/logs/$name.log" 2>&1 </dev/null || rc=$?
  t1=$(date +%s.%N)
  if [ "$rc" -ne 0 ]; then
    echo "validate_perf_model: $name failed (exit $rc):" >&2
    tail -n 15 "$OUT/logs/$name.log" | sed 's/^/  | /' >&2
    exit 2
  fi
  awk -v a="$t0" -v b="$t1" -v n="$name" 'BEGIN { printf "  %-28s %6.1f s\n", n, b - a }'
}

# The bench up to 1 MB messages (the gradient, 0.99 MB, lies between its rows).
BENCH_ARGS=(bench --model "$MODEL" --max-bytes 1048576 --iters "$ITERS" --warmup 3)
COMMON_ARGS=(train --config "$JOB" --data "$DATA" --eval-split none
             --metrics "" --checkpoint-dir "" --checkpoint-every-epochs 0 --progress none)
TRAIN_ARGS=("${COMMON_ARGS[@]}" --epochs "$EPOCHS")
# Part of the training set (--train-fraction < 1): the rest held out and never
# evaluated; whole steps only, since a short epoch's partial last step would
# weigh on its mean step time.
if [ "$TRAIN_FRACTION" != 1 ]; then
  TRAIN_ARGS+=(--val-fraction "$(awk -v f="$TRAIN_FRACTION" 'BEGIN { printf "%.6g", 1 - f }')" --drop-last true)
fi
# Calibration: 32 rows per rank (at so small a shard the bench's error weighs
# least in time_compute_s minus forward/backward), 5 % of the training set
# (the rest held out and never evaluated), no prefetch (time_data_s is then
# the whole read).
CAL_ARGS=("${COMMON_ARGS[@]}" --epochs 3 --val-fraction 0.95 --prefetch false)

# model_run DIR BATCHES BENCHES RUNS CALIBRATION: perf_model.py in the three
# variants (DIR-calibrated/, DIR-bench-binomial/, DIR-bench-ring/; its exit
# code is ignored here: the table below decides).
model_run() {
  local dir=$1 batches=$2 benches=$3 runs=$4 cal=$5 variant args
  for variant in calibrated bench-binomial bench-ring; do
    case $variant in
      calibrated) args=(--comm-source calibration --allreduce binomial) ;;
      bench-binomial) args=(--comm-source bench --allreduce binomial) ;;
      bench-ring) args=(--comm-source bench --allreduce ring) ;;
    esac
    # shellcheck disable=SC2086
    "$PY" "$ROOT/scripts/perf_model.py" --bench $benches --global-batch "$batches" --measured $runs \
      --calibration $cal "${args[@]}" --tolerance "$TOL" --out "$dir-$variant" --mpitrain "$MPITRAIN" $MODEL_ARGS \
      >"$dir-$variant.txt" 2>&1 || {
      echo "validate_perf_model: perf_model.py failed:" >&2
      tail -n 15 "$dir-$variant.txt" | sed 's/^/  | /' >&2
      exit 2
    }
  done
  note "model: $dir-{calibrated,bench-binomial,bench-ring}/perf_model.md"
}

# ---------------------------------------------------------------- this machine
if [ "$LOCAL" -eq 1 ]; then
  note "this machine ($(nproc) cores, $(lscpu | sed -n 's/^Model name:[[:space:]]*//p' | head -n 1)): model $MODEL"
  note "P = $RANKS (oversubscribed where P > cores), B = $BATCHES, $EPOCHS epochs on $TRAIN_FRACTION of the training set"
  if other=$(pgrep -f 'mpitrain train' 2>/dev/null) && [ -n "$other" ]; then
    note "warning: $(wc -l <<<"$other") other 'mpitrain train' process(es) running: they share the cores and disturb the timings"
  fi
  mkdir -p "$OUT/local"
  IFS=, read -r -a batch_list <<<"$BATCHES"
  benches="" runs="" cals=""
  for p in "${RANK_LIST[@]}"; do
    launch=("$MPIRUN" --oversubscribe -np "$p")
    logged "local-bench-np$p" "${launch[@]}" "$MPITRAIN" "${BENCH_ARGS[@]}" \
      --shard-sizes "$(shard_sizes "$p" "$BATCHES")" --json "$OUT/local/bench-np$p.json"
    benches+=" $OUT/local/bench-np$p.json"
    logged "local-np$p-calibration" "${launch[@]}" "$MPITRAIN" "${CAL_ARGS[@]}" --global-batch $((32 * p)) \
      --run-dir "$OUT/local/calibration-np$p"
    cals+=" $OUT/local/calibration-np$p"
    for b in "${batch_list[@]}"; do
      logged "local-np$p-B$b" "${launch[@]}" "$MPITRAIN" "${TRAIN_ARGS[@]}" --global-batch "$b" \
        --run-dir "$OUT/local/np$p-B$b"
      runs+=" $OUT/local/np$p-B$b"
    done
  done
  model_run "$OUT/local/model" "$BATCHES" "$benches" "$runs" "$cals"
fi

# ---------------------------------------------------------------- emulated hosts
if [ "$HOSTS" -eq 1 ]; then
  CLUSTER=$ROOT/scripts/netns-cluster.sh
  # Its own prefix and subnet: a developer's cluster (mpt) and the CI test's (mptci) are left alone.
  export NETNS_CLUSTER_PREFIX=mptpm NETNS_CLUSTER_SUBNET=10.99.9
  export NETNS_CLUSTER_MPIRUN=$MPIRUN
  max_hosts=0
  for l in "${LAYOUT_LIST[@]}"; do
    h=${l%x*}
    if [ "$h" -gt "$max_hosts" ]; then max_hosts=$h; fi
  done
  trap 'timeout 30 bash "$CLUSTER" down >/dev/null 2>&1' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  note "emulated cluster: $max_hosts hosts, links shaped to $RATE (tc tbf), layouts $LAYOUTS (hosts x ranks), B = $HOST_BATCHES, $EPOCHS epochs"
  mkdir -p "$OUT/hosts"
  IFS=, read -r -a batch_list <<<"$HOST_BATCHES"
  logged "hosts-up" bash "$CLUSTER" up "$max_hosts" --rate "$RATE"
  # Layouts with the same P go to separate model runs (one bench per P each).
  declare -A groups_of_p=()
  groups=()
  for l in "${LAYOUT_LIST[@]}"; do
    h=${l%x*} k=${l#*x}
    p=$((h * k))
    on_hosts=(bash "$CLUSTER" mpirun --hosts "$h" --ppn "$k" -- "$MPITRAIN")
    logged "hosts-bench-$l" "${on_hosts[@]}" "${BENCH_ARGS[@]}" --threads 1 \
      --shard-sizes "$(shard_sizes "$p" "$HOST_BATCHES")" --json "$OUT/hosts/bench-$l.json"
    logged "hosts-$l-calibration" "${on_hosts[@]}" "${CAL_ARGS[@]}" --threads 1 --global-batch $((32 * p)) \
      --run-dir "$OUT/hosts/calibration-$l"
    runs=""
    for b in "${batch_list[@]}"; do
      logged "hosts-$l-B$b" "${on_hosts[@]}" "${TRAIN_ARGS[@]}" --threads 1 --global-batch "$b" \
        --run-dir "$OUT/hosts/$l-B$b"
      runs+=" $OUT/hosts/$l-B$b"
    done
    g=0
    while [[ " ${groups_of_p[$p]:-} " == *" $g "* ]]; do g=$((g + 1)); done
    groups_of_p[$p]+=" $g"
    groups[g]+="$OUT/hosts/bench-$l.json;$OUT/hosts/calibration-$l;$runs|"
  done
  logged "hosts-down" bash "$CLUSTER" down
  for g in "${!groups[@]}"; do
    benches="" runs="" cals=""
    IFS='|' read -r -a entries <<<"${groups[g]}"
    for e in "${entries[@]}"; do
      [ -n "$e" ] || continue
      IFS=';' read -r bench cal erun <<<"$e"
      benches+=" $bench"
      cals+=" $cal"
      runs+=" $erun"
    done
    suffix=""
    if [ "$g" -gt 0 ]; then suffix="-$g"; fi
    model_run "$OUT/hosts/model$suffix" "$HOST_BATCHES" "$benches" "$runs" "$cals"
  done
  # Extrapolation: every host run predicted from the bench and calibration of
  # the layout with the fewest ranks alone (the ring formula carries its
  # per-hop alpha and beta to the larger P). Shown beside the verdict.
  small="" small_p=0 all_runs=""
  for l in "${LAYOUT_LIST[@]}"; do
    h=${l%x*} k=${l#*x}
    p=$((h * k))
    if [ "$small_p" -eq 0 ] || [ "$p" -lt "$small_p" ]; then small=$l small_p=$p; fi
    for b in "${batch_list[@]}"; do all_runs+=" $OUT/hosts/$l-B$b"; done
  done
  # shellcheck disable=SC2086
  "$PY" "$ROOT/scripts/perf_model.py" --bench "$OUT/hosts/bench-$small.json" --global-batch "$HOST_BATCHES" \
    --measured $all_runs --calibration "$OUT/hosts/calibration-$small" --comm-source bench --allreduce ring \
    --tolerance "$TOL" --out "$OUT/hosts/extrapolated-bench-ring" --mpitrain "$MPITRAIN" $MODEL_ARGS \
    >"$OUT/hosts/extrapolated-bench-ring.txt" 2>&1 || {
    echo "validate_perf_model: perf_model.py failed:" >&2
    tail -n 15 "$OUT/hosts/extrapolated-bench-ring.txt" | sed 's/^/  | /' >&2
    exit 2
  }
  note "model from the $small bench alone: $OUT/hosts/extrapolated-bench-ring/perf_model.md"
fi

# ---------------------------------------------------------------- the table
"$PY" - "$OUT" "$TOL" "$RATE" "$VERDICT" <<'PY'
import glob, json, os, sys
out, tol, rate, verdict = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
VARIANTS = ("calibrated", "bench-binomial", "bench-ring")
runs = {}  # (setup, run dir) -> {variant: measured row}
for variant in VARIANTS:
    for path in sorted(glob.glob(os.path.join(out, "*", f"model*-{variant}", "perf_model.json"))):
        setup = os.path.basename(os.path.dirname(os.path.dirname(path)))
        with open(path) as f:
            model = json.load(f)
        for m in model["measured"]:
            runs.setdefault((setup, m["path"]), {})[variant] = m
def order(item):
    (setup, _), by = item
    m = next(iter(by.values()))
    return (setup != "local", setup, os.path.basename(m["path"]).split("-")[0] if setup != "local" else "", m["P"], m["B"])
rows = []
for (setup, path), by in sorted(runs.items(), key=order):
    m = next(iter(by.values()))
    name = os.path.basename(os.path.normpath(path))
    where = "this machine" if setup == "local" else f"{name.split('-')[0]} (hosts x ranks), {rate}"
    rows.append((m["P"], m["B"], where, m["measured_s"], by, by[verdict]["flagged"] if verdict in by else True, path))
extra = {}  # run dir -> measured row of the model from the smallest host bench alone
for model_path in glob.glob(os.path.join(out, "hosts", "extrapolated-bench-ring", "perf_model.json")):
    with open(model_path) as f:
        model = json.load(f)
    small = min(model["benches"], key=lambda b: b["ranks"])["ranks"] if model.get("benches") else None
    for m in model["measured"]:
        extra[m["path"]] = (m, small)
def cells(by, variant):
    m = by.get(variant)
    if m is None:
        return "- | -"
    return f"{1e3 * m['predicted_s']:.2f} ms | {100 * m['error']:+.1f} %"
head = ("| P | B | setup | measured | calibrated | error | bench, binomial | error | bench, ring | error "
        f"| within {100 * tol:.0f} % ({verdict}) |" + (" from the fewest-rank host bench alone | error |" if extra else ""))
lines = [head, "|" + "---|" * (head.count("|") - 1)]
for p, b, where, meas, by, flagged, run_path in rows:
    ex = ""
    if extra:
        m, small = extra.get(run_path, (None, None))
        ex = (f" {1e3 * m['predicted_s']:.2f} ms (P={small}) | {100 * m['error']:+.1f} % |" if m else " - | - |")
    lines.append(f"| {p} | {b} | {where} | {1e3 * meas:.2f} ms | " + " | ".join(cells(by, v) for v in VARIANTS)
                 + f" | {'**no**' if flagged else 'yes'} |" + ex)
bad = sum(1 for r in rows if r[5])
summary = (f"{len(rows) - bad} of {len(rows)} runs within {100 * tol:.0f} % of the step time predicted "
           f"by the {verdict} model")
text = ("# Performance model: predicted vs measured step time\n\n"
        "Measured: mean step time of epochs 2.. (epoch_time_s / steps_in_epoch). Predicted by "
        "scripts/perf_model.py from the bench at the run's P and the calibration run (optimizer, reads), with the "
        "all-reduce from the calibration run (*calibrated*) or from the bench's fit with the binomial or ring "
        "formula. model-*/perf_model.md lists every assumption.\n\n"
        + "\n".join(lines) + f"\n\n{summary}.\n")
with open(os.path.join(out, "validation.md"), "w") as f:
    f.write(text)
print()
print("\n".join(lines))
print(f"\nvalidate_perf_model: {summary} -> {os.path.join(out, 'validation.md')}")
sys.exit(1 if bad or not rows else 0)
PY
