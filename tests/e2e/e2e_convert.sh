#!/usr/bin/env bash
# `mpitrain convert idx|csv` on small generated inputs: the written file has
# the documented layout and values (datasets/README.md) and trains; a failed
# conversion exits non-zero with one clear error and leaves no file behind.
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
e2e_init "$@"

HAVE_H5DUMP=1
if ! command -v h5dump >/dev/null; then
  HAVE_H5DUMP=0
  echo "NOTE: h5dump not found (scripts/setup.sh installs hdf5-tools): skipping the h5dump checks"
fi

# ---------------------------------------------------------------------------
# An MNIST-style IDX set: 4 classes, 6x7 images (rows != cols, so a swapped
# header would show), train images gzipped and the rest plain, because
# `convert idx` must read both. Each class is a fixed random template plus
# noise, so the set is learnable. pixels.json keeps what was written.
IDX="$WORK/idx"
mkdir -p "$IDX"
python3 - "$IDX" <<'PY' || { echo "FATAL: writing the IDX files failed"; exit 1; }
import gzip, json, random, struct, sys
d = sys.argv[1]
rng = random.Random(7)
R, C, K = 6, 7, 4
templates = [[rng.randrange(256) for _ in range(R * C)] for _ in range(K)]
def make(n):
    labels = [i % K for i in range(n)]
    rng.shuffle(labels)
    images = [[min(255, max(0, round(templates[y][p] + rng.gauss(0, 20)))) for p in range(R * C)] for y in labels]
    return images, labels
def write(name, data, gz):
    opener = gzip.open if gz else open
    with opener(f"{d}/{name}" + (".gz" if gz else ""), "wb") as f:
        f.write(data)
out = {}
for prefix, n, gz in (("train", 300, True), ("t10k", 60, False)):
    images, labels = make(n)
    write(f"{prefix}-images-idx3-ubyte", struct.pack(">IIII", 0x803, n, R, C) + bytes(p for im in images for p in im), gz)
    write(f"{prefix}-labels-idx1-ubyte", struct.pack(">II", 0x801, n) + bytes(labels), gz)
    out[prefix] = {"images": images, "labels": labels}
with open(f"{d}/../pixels.json", "w") as f:
    json.dump(out, f)
PY

# h5dump_values FILE H5DUMP-OPTIONS...: the numbers of the selected dataset
# or attribute, one per line (empty if h5dump fails).
h5dump_values() {
  local file=$1
  shift
  h5dump -w 0 -y "$@" "$file" | python3 -c '
import re, sys
text = sys.stdin.read()
body = text[text.index("DATA {") + 6:] if "DATA {" in text else ""
body = body[:body.find("}")]  # the first DATA block only: -d also dumps the attributes
print("\n".join(re.findall(r"-?\d+(?:\.\d+)?(?:e[-+]?\d+)?", body)))'
}

# Compares stdin (numbers, one per line) with pixels.json[split][key][index]
# (or the whole list when no index is given).
SAME_AS_WRITTEN='
import json, sys
want = json.load(open(sys.argv[1]))[sys.argv[2]][sys.argv[3]]
if len(sys.argv) > 4:
    want = want[int(sys.argv[4])]
got = [int(v) for v in sys.stdin.read().split()]
if got != want:
    print(f"  got  {got[:12]}... ({len(got)} values)\n  want {want[:12]}... ({len(want)} values)")
sys.exit(got != want)'

begin_case "convert idx (gzipped and plain IDX files)"
H5="$WORK/idx.h5"
run_cmd 60 "$MPITRAIN" convert idx --input "$IDX" --output "$H5"
expect_rc 0
expect_file "$H5"
expect_count "$OUT" "mpitrain convert: wrote $H5: 300 train rows, 60 test rows, 42 features, num_classes 4" 1
check "nothing on stderr" test ! -s "$ERR" || show_output
check "no temporary file left in the output directory" \
  bash -c '[ -z "$(find "$1" -maxdepth 1 -name ".*tmp*")" ]' _ "$WORK"

if [ "$HAVE_H5DUMP" = 1 ]; then
  begin_case "h5dump -H of the IDX conversion: layout of datasets/README.md"
  run_cmd 30 h5dump -H "$H5"
  expect_rc 0
  # h5dump -H lists each group and then its members; cut it per group.
  check "/train/x is uint8 [300, 6, 7] (the image shape is kept)" python3 - "$OUT" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
train = t[t.index('GROUP "train"'):]
x = train[train.index('DATASET "x"'):]
sys.exit(not (re.search(r'DATATYPE\s+H5T_STD_U8LE', x[:200]) and "( 300, 6, 7 )" in x[:300]))
PY
  check "/test/y is int32 [60]" python3 - "$OUT" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
test = t[t.index('GROUP "test"'):]
y = test[test.index('DATASET "y"'):]
sys.exit(not (re.search(r'DATATYPE\s+H5T_STD_I32LE', y[:200]) and "( 60 )" in y[:300]))
PY
  expect_stdout 'ATTRIBUTE "num_classes"'

  begin_case "IDX values: images row-major in file order, labels, scale, mean/std"
  # Image 1 (not 0: an off-by-one in the row order shows) and the last image.
  check "/train/x row 1 is train image 1, pixel by pixel" python3 -c "$SAME_AS_WRITTEN" "$WORK/pixels.json" \
    train images 1 <<<"$(h5dump_values "$H5" -d /train/x -s 1,0,0 -c 1,6,7)"
  check "/train/x row 299 is train image 299" python3 -c "$SAME_AS_WRITTEN" "$WORK/pixels.json" \
    train images 299 <<<"$(h5dump_values "$H5" -d /train/x -s 299,0,0 -c 1,6,7)"
  check "/test/y holds the 60 t10k labels in order" python3 -c "$SAME_AS_WRITTEN" "$WORK/pixels.json" \
    t10k labels <<<"$(h5dump_values "$H5" -d /test/y)"
  check "/train/x attributes: scale 1/255, mean and std of the scaled train pixels" python3 - "$WORK/pixels.json" \
    "$(h5dump_values "$H5" -a /train/x/scale)" "$(h5dump_values "$H5" -a /train/x/mean)" \
    "$(h5dump_values "$H5" -a /train/x/std)" <<'PY'
import json, math, sys
px = [p / 255 for im in json.load(open(sys.argv[1]))["train"]["images"] for p in im]
scale, mean, std = (float(v) for v in sys.argv[2:5])
m = sum(px) / len(px)
s = math.sqrt(sum((p - m) ** 2 for p in px) / len(px))
# h5dump prints 6 significant digits
ok = abs(scale - 1 / 255) < 1e-8 and abs(mean - m) < 1e-5 and abs(std - s) < 1e-5
print(f"  scale {scale} mean {mean} (want {m:.6f}) std {std} (want {s:.6f})")
sys.exit(not ok)
PY
fi

begin_case "train 1 epoch on the IDX conversion (mpiexec -n 2)"
METRICS="$WORK/idx-metrics.json"
mpi_run 2 120 "$MPITRAIN" train --data "$H5" --model 42-16-4 --epochs 1 --global-batch 32 --metrics "$METRICS"
expect_rc 0
expect_py "H['train_rows'] == 300 and H['steps_per_epoch'] == ceil(300 / 32)" \
  "len(E) == 1 and E[0]['samples'] == 300 and math.isfinite(E[0]['test_loss'])"

# ---------------------------------------------------------------------------
# A CSV with a quoted header, the label column in the middle and a trailing
# blank line; 200 rows of 3 classes.
CSV="$WORK/table.csv"
python3 - "$CSV" <<'PY' || { echo "FATAL: writing the CSV failed"; exit 1; }
import random, sys
rng = random.Random(3)
with open(sys.argv[1], "w") as f:
    f.write('"f1","label",f2,f3\n')
    for i in range(200):
        y = i % 3
        f.write(f"{y * 2 + rng.gauss(0, 0.5):.4f},{y},{-y + rng.gauss(0, 0.5):.4f},{rng.gauss(0, 1):.4f}\n")
    f.write("\n")
PY

begin_case "convert csv (classification, --test-fraction 0.25)"
CSV_H5="$WORK/csv.h5"
run_cmd 60 "$MPITRAIN" convert csv --input "$CSV" --output "$CSV_H5" --label-column label --test-fraction 0.25
expect_rc 0
# round(200 * 0.25) = 50 rows held out; labels 0..2 give num_classes 3.
expect_count "$OUT" "wrote $CSV_H5: 150 train rows, 50 test rows, 3 features, num_classes 3" 1
if [ "$HAVE_H5DUMP" = 1 ]; then
  run_cmd 30 h5dump -H -d /train/x "$CSV_H5"
  expect_stdout "H5T_IEEE_F32LE"
  expect_stdout "( 150, 3 )"
  run_cmd 30 h5dump -H -d /test/y "$CSV_H5"
  expect_stdout "H5T_STD_I32LE"
  expect_stdout "( 50 )"
fi

begin_case "train 1 epoch on the CSV conversion (mpiexec -n 2)"
METRICS="$WORK/csv-metrics.json"
mpi_run 2 120 "$MPITRAIN" train --data "$CSV_H5" --model 3-8-3 --epochs 1 --global-batch 16 --metrics "$METRICS"
expect_rc 0
expect_py "H['train_rows'] == 150 and len(E) == 1 and E[0]['samples'] == 150"

begin_case "convert csv --task regress"
run_cmd 60 "$MPITRAIN" convert csv --input "$CSV" --output "$WORK/csv-regress.h5" --label-column label --task regress
expect_rc 0
expect_count "$OUT" "160 train rows, 40 test rows, 3 features, num_classes 0 (regression)" 1

# ---------------------------------------------------------------------------
# Failed conversions. Each writes into its own empty directory, which must
# still be empty afterwards: no output file and no temporary file.
mkdir -p "$WORK/idx-no-test" "$WORK/idx-truncated" "$WORK/idx-mismatch"
cp "$IDX"/train-* "$WORK/idx-no-test/"
cp "$IDX"/* "$WORK/idx-truncated/"
head -c 1000 "$IDX/t10k-images-idx3-ubyte" >"$WORK/idx-truncated/t10k-images-idx3-ubyte"
cp "$IDX"/* "$WORK/idx-mismatch/"
python3 -c 'import struct,sys; open(sys.argv[1],"wb").write(struct.pack(">II",0x801,59)+bytes(59))' \
  "$WORK/idx-mismatch/t10k-labels-idx1-ubyte"
printf 'a,label\n1,0\n2,x\n' >"$WORK/bad.csv"

# convert_error ID PHRASE CONVERT-ARGS... (use @OUT@ for the output path)
convert_error() {
  local id=$1 phrase=$2
  shift 2
  local outdir="$WORK/out-$id"
  rm -rf "$outdir"
  mkdir -p "$outdir"
  local args=() a
  for a in "$@"; do args+=("${a//@OUT@/$outdir/out.h5}"); done
  run_cmd 60 "$MPITRAIN" convert "${args[@]}"
  expect_rc 2
  expect_count "$ERR" "mpitrain convert: error:" 1
  expect_count "$ERR" "$phrase" 1
  check "nothing on stdout" test ! -s "$OUT" || show_output
  expect_no_file "$outdir/out.h5"
  check "output directory left empty (no temporary files)" \
    bash -c '[ -z "$(ls -A "$1")" ]' _ "$outdir" || ls -la "$outdir"
}

begin_case "convert idx: missing input directory"
convert_error missing-dir "input '$WORK/no-such-dir' is not a directory" idx --input "$WORK/no-such-dir" --output @OUT@

begin_case "convert idx: directory without the t10k files"
convert_error no-test "has no t10k-images-idx3-ubyte or t10k-images-idx3-ubyte.gz" \
  idx --input "$WORK/idx-no-test" --output @OUT@

begin_case "convert idx: truncated image file"
convert_error truncated "is truncated" idx --input "$WORK/idx-truncated" --output @OUT@

begin_case "convert idx: image and label counts differ"
convert_error mismatch "has 60 images but" idx --input "$WORK/idx-mismatch" --output @OUT@

begin_case "convert csv: a non-numeric value"
convert_error csv-text "line 3, column 'label': 'x' is not a number" \
  csv --input "$WORK/bad.csv" --output @OUT@ --label-column label

begin_case "convert csv: no such label column"
convert_error csv-column "has no column 'target'" csv --input "$CSV" --output @OUT@ --label-column target

begin_case "convert: output directory does not exist"
run_cmd 60 "$MPITRAIN" convert idx --input "$IDX" --output "$WORK/no-such-out/x.h5"
expect_rc 2
expect_count "$ERR" "output directory '$WORK/no-such-out' does not exist" 1
expect_no_file "$WORK/no-such-out"

begin_case "convert: no input format"
run_cmd 30 "$MPITRAIN" convert
expect_rc 2
expect_count "$ERR" "mpitrain convert: error: missing input format" 1

begin_case "a failed conversion leaves an existing output file untouched"
# Converting onto an existing file replaces it only when the new file is
# complete: here the input is bad, so the old file must survive byte for byte.
mkdir -p "$WORK/out-keep"
cp "$CSV_H5" "$WORK/out-keep/data.h5"
before=$(cksum <"$WORK/out-keep/data.h5")
run_cmd 60 "$MPITRAIN" convert csv --input "$WORK/bad.csv" --output "$WORK/out-keep/data.h5" --label-column label
expect_rc 2
check "existing output unchanged" test "$(cksum <"$WORK/out-keep/data.h5")" = "$before"
check "no temporary file next to it" bash -c '[ "$(ls -A "$1")" = data.h5 ]' _ "$WORK/out-keep"

e2e_finish
