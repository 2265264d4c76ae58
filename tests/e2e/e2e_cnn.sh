#!/usr/bin/env bash
# Convolutional networks end to end (issue 13), under mpiexec on real files:
#   - a CNN with batch norm and dropout trains on 2 ranks; --resume from a
#     mid-epoch step checkpoint ends bitwise equal (state_crc32) with the
#     same epoch lines as the uninterrupted run;
#   - `mpitrain evaluate` on its checkpoint gives the printed test accuracy,
#     `mpitrain inspect` shows its layers;
#   - the noise scale (B_noise) is in the epoch lines;
#   - --augment crop+flip: 1 and 2 ranks end within the P-invariance tolerance;
#   - bad specs and augment options: one "mpitrain: error:" line from rank 0,
#     non-zero exit, nothing trained or written.
# Data: make_test_dataset's blobs with 64 features, read as 1x8x8 images.
here=$(cd "$(dirname "$0")" && pwd)
: "${E2E_JOBS:=4}"  # most runs are short or refusals that sit idle while mpiexec tears down
source "$here/lib.sh"
e2e_init "$@"

for tool in h5dump h5ls python3; do
  command -v "$tool" >/dev/null || { echo "FATAL: $tool is needed"; exit 1; }
done
# Version-manager shims (pyenv) cost ~1 s per python3 start.
py_dir=$(dirname "$(python3 -c 'import sys; print(sys.executable)')") && PATH="$py_dir:$PATH"

N=320  # train rows (test: 80), 64 features, 4 classes
DATA="$WORK/img.h5"
"$MAKE_DS" good "$DATA" "$N" 64 || { echo "FATAL: make_test_dataset good failed"; exit 1; }

# conv1 runs Winograd F(4x4,3x3), so resume and P-invariance cover both algorithms.
SPEC="1x8x8 conv3x3:4 relu bn conv3x3:4,algo=winograd relu maxpool2 dropout:0.25 dense:4"
B=32  # 10 steps per epoch; step checkpoints every 6 global steps: epoch 1 step 6, epoch 2 steps 2 and 8
TRAIN=("$MPITRAIN" train --data "$DATA" --model "$SPEC" --threads 1 --progress none --global-batch "$B"
  --lr 0.02 --momentum 0.9 --lr-scaling none --seed 5)

expect_same_state() {
  local a b
  a=$(state_crc "$1")
  b=$(state_crc "$2")
  check "state_crc32 of ${1#"$WORK"/} ($a) == ${2#"$WORK"/} ($b)" _same_nonempty "$a" "$b" || show_output
}

# The epoch lines of stdout without the timing fields ("0.3s  1234 samples/s").
epoch_lines() { grep '^epoch ' "$1" | sed -E 's/  [0-9.]+s  [0-9]+ samples\/s//'; }

# params_rel_diff A B: max_i |a_i - b_i| / max_i |b_i| over every tensor in
# /params (the P-invariance test's measure), from the raw float32 values.
params_rel_diff() {
  python3 - "$1" "$2" <<'PY'
import struct, subprocess, sys, tempfile
def params(path):
    listing = subprocess.run(["h5ls", "-r", path + "/params"], capture_output=True, text=True).stdout
    names = sorted(line.split()[0] for line in listing.splitlines() if " Dataset " in line)
    if not names:
        return [], []
    with tempfile.NamedTemporaryFile() as raw:
        args = ["h5dump", "-b", "LE", "-o", raw.name]
        for n in names:
            args += ["-d", "/params" + n]
        if subprocess.run(args + [path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode:
            return names, []
        data = open(raw.name, "rb").read()
    return names, struct.unpack(f"<{len(data) // 4}f", data)
(na, a), (nb, b) = params(sys.argv[1]), params(sys.argv[2])
if na != nb or len(a) != len(b) or not a:
    print("nan")
else:
    print(max(abs(x - y) for x, y in zip(a, b)) / max(max(abs(y) for y in b), 1e-30))
PY
}
_le() { python3 -c "import sys; sys.exit(not float('$1') <= float('$2'))"; }
_gt() { python3 -c "import sys; sys.exit(not float('$1') > float('$2'))"; }

# ---------------------------------------------------------------------------
# First wave: the reference run, the augmented runs, and every refusal.
REF=$(run_dir ref)
bg_mpi_run ref 2 60 "${TRAIN[@]}" --epochs 2 --checkpoint-dir "$REF/ck" --checkpoint-every-steps 6 \
  --keep-last 0 --metrics "$REF/metrics.json"
AUG=(--augment crop+flip --augment-pad 1 --epochs 2)
A1=$(run_dir aug1)
bg_mpi_run aug1 1 60 "${TRAIN[@]}" "${AUG[@]}" --checkpoint-dir "$A1/ck" --metrics "$A1/metrics.json"
A2=$(run_dir aug2)
bg_mpi_run aug2 2 60 "${TRAIN[@]}" "${AUG[@]}" --checkpoint-dir "$A2/ck" --metrics "$A2/metrics.json"
NOAUG=$(run_dir noaug1)  # the same 1-rank run without --augment: the augmentation must change the weights
bg_mpi_run noaug1 1 60 "${TRAIN[@]}" --epochs 2 --checkpoint-dir "$NOAUG/ck"

CASE_IDS=()
# bad_case ID DESCRIPTION PHRASE ARGS...: `mpiexec -n 2 mpitrain train --data
# img.h5 ARGS...` with its own metrics file and checkpoint directory.
bad_case() {
  local id=$1 desc=$2 phrase=$3 dir
  shift 3
  dir=$(run_dir "$id")
  bad_input_run "$id" "$desc" "$phrase" 60 "$MPITRAIN" train --data "$DATA" --epochs 1 --global-batch "$B" \
    --threads 1 "$@" --metrics "$dir/m.json" --checkpoint-dir "$dir/ck"
}
bad_case unknown-layer "unknown layer" "unknown layer 'frob'" --model "1x8x8 conv3x3:4 frob dense:4"
bad_case kernel-valid "a 9x9 kernel on an 8x8 input (pad=valid)" "kernel is larger than its 1x8x8 input" \
  --model "1x8x8 conv9x9:2,pad=valid dense:4"
# Same padding (the default) makes any kernel "fit" by padding, but a 9x9
# kernel on 8x8 images is a mistake all the same (model_spec.hpp: "a kernel
# larger than its input" is refused).
bad_case kernel-same "a 9x9 kernel on an 8x8 input (default pad=same)" "9x9 kernel" \
  --model "1x8x8 conv9x9:2 dense:4"
bad_case input-shape "spec input 1x9x9 (81 values) for 64 features" "does not match the data's 64 features per row" \
  --model "1x9x9 conv3x3:2 dense:4"
bad_case winograd-stride "algo=winograd on a stride-2 convolution" "algo=winograd needs stride 1" \
  --model "1x8x8 conv3x3:4,stride=2,algo=winograd dense:4"
bad_case not-flat "the spec ends with a map" "--model ends with a 4x8x8 map" --model "1x8x8 conv3x3:4"
bad_case conv-after-flat "conv after a flat input" "needs a CxHxW map but follows a flat vector (or 1x1 map)" \
  --model "64 dense:8 conv3x3:2"
bad_case bn-micro-batch "batchnorm with --micro-batch smaller than the 16-row shard" \
  "--micro-batch 4 is smaller than a shard (16 rows)" --model "$SPEC" --micro-batch 4
bad_case augment-flat "--augment on a flat-input model" "--augment flip needs images" --model 64-8-4 --augment flip
bad_case augment-pad0 "--augment crop with --augment-pad 0" "needs --augment-pad of at least 1" \
  --model "$SPEC" --augment crop --augment-pad 0
bad_case augment-unknown "unknown --augment value" "--augment 'rotate' is not one of" --model "$SPEC" --augment rotate
bg_wait

# ---------------------------------------------------------------------------
begin_case "CNN with batch norm and dropout trains on 2 ranks (step checkpoints every 6)"
use_run ref
METRICS="$REF/metrics.json"
expect_rc 0
for f in ckpt-e0001-s0000006.h5 ckpt-e0001.h5 ckpt-e0002-s0000002.h5 ckpt-e0002-s0000008.h5 ckpt-e0002.h5 final.h5; do
  expect_file "$REF/ck/$f"
done
REF_FINAL="$REF/ck/final.h5"
expect_py \
  "len(E) == 2 and [d['step'] for d in E] == [10, 20] and E[-1]['samples'] == 2 * $N" \
  "E[-1]['train_loss'] < math.log(4)" \
  "0.3 < E[-1]['test_acc'] <= 1"
check "state_crc32 differs between ckpt-e0001-s0000006.h5 and final.h5" \
  bash -c '[ -n "$1" ] && [ "$1" != "$2" ]' _ "$(state_crc "$REF/ck/ckpt-e0001-s0000006.h5")" "$(state_crc "$REF_FINAL")"

begin_case "B_noise is in the epoch lines of the 2-rank CNN run"
use_run ref
n=$(grep -c -E '^epoch [0-9]+/2 .*  B_noise [0-9]+' "$OUT")
check "both epoch lines carry 'B_noise N' (found $n)" [ "$n" -eq 2 ] || show_output
expect_py "all(math.isfinite(d['noise_scale']) and d['noise_scale'] > 0 for d in E)"

# ---------------------------------------------------------------------------
# Second wave: what reads the reference run's checkpoints.
SRC="$WORK/src"
mkdir -p "$SRC"
cp "$REF/ck/ckpt-e0001-s0000006.h5" "$SRC/"
MID=$(run_dir mid)
bg_mpi_run mid 2 60 "${TRAIN[@]}" --epochs 2 --checkpoint-dir "$MID/ck" --metrics "$MID/metrics.json" \
  --resume "$SRC/ckpt-e0001-s0000006.h5"
bg_mpi_run eval 2 60 "$MPITRAIN" evaluate --checkpoint "$REF_FINAL" --data "$DATA" --json
# Epoch 1's weights do not classify every test row right yet: a wrong model could not match its accuracy.
bg_mpi_run eval1 2 60 "$MPITRAIN" evaluate --checkpoint "$REF/ck/ckpt-e0001.h5" --data "$DATA" --json
bg_run inspect 30 "$MPITRAIN" inspect "$REF_FINAL"
bg_wait

begin_case "--resume from the mid-epoch checkpoint (epoch 1 step 6): bitwise equal, same epoch lines"
use_run mid
METRICS="$MID/metrics.json"
expect_rc 0
expect_stdout "resuming from $SRC/ckpt-e0001-s0000006.h5: epoch 1, step 6 of it, global step 6 (written by 2 ranks)"
expect_same_state "$MID/ck/final.h5" "$REF_FINAL"
ref_lines=$(epoch_lines "$WORK/runs/ref/stdout")
mid_lines=$(epoch_lines "$OUT")
check "the epoch lines (timings aside) equal the uninterrupted run's" \
  bash -c '[ -n "$1" ] && [ "$1" = "$2" ]' _ "$ref_lines" "$mid_lines" ||
  { echo "  reference:"; echo "$ref_lines" | sed 's/^/  | /'; echo "  resumed:"; echo "$mid_lines" | sed 's/^/  | /'; }
keys="('epoch', 'step', 'samples', 'lr', 'train_loss', 'train_acc', 'test_loss', 'test_acc', 'noise_scale')"
expect_py \
  "[[d[k] for k in $keys] for d in E] == [[d[k] for k in $keys] for d in epochs_of('$REF/metrics.json')]"

# Evaluation runs batch norm on its running statistics and dropout off, as
# the training run's own evaluation did.
for ev in "eval 1" "eval1 0"; do
  read -r id epoch <<<"$ev"
  begin_case "evaluate the CNN checkpoint of epoch $((epoch + 1)) on 2 ranks: the test accuracy and loss the run printed"
  use_run "$id"
  expect_rc 0
  METRICS="$REF/metrics.json"
  expect_py "len(J := [json.loads(s) for s in SEG if s.startswith('{')]) == 1" \
    "J[0]['split'] == 'test' and J[0]['rows'] == $((N / 4)) and J[0]['ranks'] == 2" \
    "abs(J[0]['accuracy'] - E[$epoch]['test_acc']) <= 1e-6" \
    "abs(J[0]['loss'] - E[$epoch]['test_loss']) <= 1e-6 * max(1, E[$epoch]['test_loss'])"
done
expect_py "E[0]['test_acc'] < 1"

begin_case "inspect the CNN checkpoint"
use_run inspect
METRICS=""
expect_rc 0
expect_count "$OUT" "model spec: $SPEC" 1
expect_count "$OUT" "checksum OK" 1
expect_count "$OUT" "world size: 2 ranks" 1
expect_stdout "conv0/W"
expect_stdout "conv1/W"
expect_stdout "bn0/gamma"
expect_stdout "bn0/running_mean"
expect_stdout "dense0/W"

# ---------------------------------------------------------------------------
begin_case "--augment crop+flip: 1 and 2 ranks end with the same weights (P-invariance tolerance)"
for id in aug1 aug2 noaug1; do
  use_run "$id"
  expect_rc 0
  expect_file "$WORK/runs/$id/ck/final.h5"
done
use_run aug2
expect_stdout "crop1+flip"
rel=$(params_rel_diff "$A2/ck/final.h5" "$A1/ck/final.h5")
check "2-rank vs 1-rank final params: relative difference $rel <= 1e-5" _le "$rel" 1e-5 || show_output
moved=$(params_rel_diff "$A1/ck/final.h5" "$NOAUG/ck/final.h5")
check "the augmentation changed the weights (relative $moved > 1e-3 vs no --augment)" _gt "$moved" 1e-3

# ---------------------------------------------------------------------------
check_bad_input_runs

e2e_finish
