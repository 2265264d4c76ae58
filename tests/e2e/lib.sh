# Helpers for the end-to-end test scripts; source it, then call e2e_init "$@".
#
# Every script is run by CTest as
#   bash tests/e2e/<name>.sh <mpitrain> <make_test_dataset> <mpiexec> <work dir>
#
# Assertions never stop the script: each failure is printed with the case name
# and the captured output, counted, and e2e_finish exits non-zero if any
# failed. So one broken check does not hide the results of the others.

set -u

export OPENBLAS_NUM_THREADS=1                # 2 ranks on 2 cores: no BLAS oversubscription
export OMPI_MCA_rmaps_base_oversubscribe=1   # more ranks than cores (the 3-rank case)

E2E_FAILS=0
E2E_CHECKS=0
E2E_CASE="(setup)"
E2E_CASES=()

# Parses the four arguments, makes a fresh work directory for this script and
# defines MPIRUN (an array) for the mpiexec prefix.
# For scripts that compare checkpoints: h5dump, and Debian's python3 first on PATH.
need_checkpoint_tools() {
  command -v h5dump >/dev/null || { echo "FATAL: h5dump is needed"; exit 1; }
  mkdir -p "$WORK/bin" && ln -sf /usr/bin/python3 "$WORK/bin/python3" && PATH="$WORK/bin:$PATH"
}
# A checkpoint's state_crc32 (weights and optimizer state), and a check that two are equal and not empty.
state_crc() { h5dump -a /state_crc32 "$1" 2>/dev/null | awk '/\(0\):/ { print $2 }'; }
_same_nonempty() { [ -n "$1" ] && [ "$1" = "$2" ]; }

e2e_init() {
  if [ $# -ne 4 ]; then
    echo "usage: $0 <mpitrain> <make_test_dataset> <mpiexec> <work dir>" >&2
    exit 2
  fi
  MPITRAIN=$1
  MAKE_DS=$2
  MPIEXEC=$3
  local script
  script=$(basename "$0" .sh)
  WORK="$4/$script"
  for exe in "$MPITRAIN" "$MAKE_DS" "$MPIEXEC"; do
    if [ ! -x "$exe" ]; then
      echo "FATAL: '$exe' is not an executable file" >&2
      exit 2
    fi
  done
  rm -rf "$WORK"
  mkdir -p "$WORK"
  MPIRUN=("$MPIEXEC" --oversubscribe)
  # CI runs as root; Open MPI refuses that without this flag.
  if [ "$(id -u)" = 0 ]; then MPIRUN+=(--allow-run-as-root); fi
  E2E_T0=$(date +%s.%N)
  echo "work dir: $WORK"
}

# Starts a named case; every later failure message carries the name.
begin_case() {
  E2E_CASE=$1
  E2E_CASES+=("$1")
  echo "--- case: $1"
}

fail() {
  E2E_FAILS=$((E2E_FAILS + 1))
  echo "FAIL [$E2E_CASE]: $*"
}

# check DESCRIPTION COMMAND...: one assertion; prints the outcome.
check() {
  local what=$1
  shift
  E2E_CHECKS=$((E2E_CHECKS + 1))
  if "$@"; then
    echo "  ok: $what"
    return 0
  fi
  fail "$what"
  return 1
}

# Shows the captured output of the last run_cmd (for failure diagnosis).
# Printed once per case: later failures of the same case add nothing new.
show_output() {
  [ "${E2E_SHOWN:-}" = "$E2E_CASE" ] && return 0
  E2E_SHOWN=$E2E_CASE
  echo "  command: ${LAST_CMD[*]}"
  echo "  exit code: $RC, ${ELAPSED}s"
  echo "  ---- stdout (last 20 lines):"
  tail -n 20 "$OUT" | sed 's/^/  | /'
  echo "  ---- stderr (last 30 lines):"
  tail -n 30 "$ERR" | sed 's/^/  | /'
}

# run_cmd TIMEOUT_S COMMAND...: runs the command with stdout in $OUT, stderr
# in $ERR, exit code in $RC and wall time in $ELAPSED. The timeout turns a
# hang into exit code 124 (137 if it also ignored SIGTERM) instead of a
# stuck test.
run_cmd() {
  local limit=$1
  shift
  LAST_CMD=("$@")
  OUT="$WORK/stdout.txt"
  ERR="$WORK/stderr.txt"
  LAST_TIMEOUT=$limit
  local t0 t1
  t0=$(date +%s.%N)
  timeout -k 5 "$limit" "$@" >"$OUT" 2>"$ERR" </dev/null
  RC=$?
  t1=$(date +%s.%N)
  ELAPSED=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
}

# mpi_run NP TIMEOUT_S ARGS...: run_cmd of `mpiexec -n NP ARGS...`.
mpi_run() {
  local np=$1 limit=$2
  shift 2
  run_cmd "$limit" "${MPIRUN[@]}" -n "$np" "$@"
}

# ---- parallel runs ------------------------------------------------------
# A failing `mpiexec` spends ~2 s tearing the job down while its ranks sit
# idle, so independent cases run a few at a time: bg_run starts one, bg_wait
# waits for all, use_run loads one run's results into OUT/ERR/RC/ELAPSED for
# the assertions above. Each run has its own directory RUN_DIR/<id>.
E2E_JOBS=${E2E_JOBS:-3}

# run_dir ID: the directory of run ID (created), for its private files.
run_dir() {
  mkdir -p "$WORK/runs/$1"
  echo "$WORK/runs/$1"
}

# bg_run ID TIMEOUT_S COMMAND...
bg_run() {
  local id=$1 limit=$2
  shift 2
  local dir
  dir=$(run_dir "$id")
  while [ "$(jobs -rp | wc -l)" -ge "$E2E_JOBS" ]; do wait -n; done
  printf '%q ' "$@" >"$dir/cmd"
  echo "$limit" >"$dir/limit"
  (
    t0=$(date +%s.%N)
    timeout -k 5 "$limit" "$@" >"$dir/stdout" 2>"$dir/stderr" </dev/null
    echo $? >"$dir/rc"
    t1=$(date +%s.%N)
    awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f\n", b - a }' >"$dir/elapsed"
  ) &
}

# bg_mpi_run ID NP TIMEOUT_S ARGS...: bg_run of `mpiexec -n NP ARGS...`.
bg_mpi_run() {
  local id=$1 np=$2 limit=$3
  shift 3
  bg_run "$id" "$limit" "${MPIRUN[@]}" -n "$np" "$@"
}

bg_wait() { wait; }

# bad_input_run ID DESCRIPTION PHRASE TIMEOUT_S ARGS...: bg_mpi_run of
# `mpiexec -n 2 ARGS...` for a case of bad input, with its description and
# PHRASE (the distinctive part of the expected error message) kept in its run
# directory for the checks; CASE_IDS collects the ids.
bad_input_run() {
  local id=$1 desc=$2 phrase=$3 limit=$4
  shift 4
  local dir
  dir=$(run_dir "$id")
  echo "$desc" >"$dir/desc"
  printf '%s' "$phrase" >"$dir/phrase"
  CASE_IDS+=("$id")
  bg_mpi_run "$id" 2 "$limit" "$@"
}

# check_bad_input_runs [FAST_S]: the checks of every bad_input_run case
# (CASE_IDS), after bg_wait: a non-zero exit well within FAST_S seconds (25),
# one "mpitrain: error:" line holding the case's phrase, nothing on stdout
# (refused before training starts: rank 0 prints the run header only after
# every check passed), no metrics file and no checkpoint in the case's ck/.
check_bad_input_runs() {
  local fast=${1:-25} id dir
  for id in "${CASE_IDS[@]}"; do
    dir="$WORK/runs/$id"
    begin_case "$(cat "$dir/desc") [$id]"
    use_run "$id"
    expect_failure
    expect_fast "$fast"
    expect_one_error_line "$(cat "$dir/phrase")"
    check "nothing on stdout (refused before training starts)" test ! -s "$OUT" || show_output
    expect_no_file "$dir/m.json"
    check "no checkpoint written" bash -c '[ ! -e "$1" ] || [ -z "$(ls -A "$1")" ]' _ "$dir/ck"
  done
}

use_run() {
  local dir="$WORK/runs/$1"
  OUT="$dir/stdout"
  ERR="$dir/stderr"
  RC=$(cat "$dir/rc" 2>/dev/null || echo 255)
  ELAPSED=$(cat "$dir/elapsed" 2>/dev/null || echo 999)
  LAST_TIMEOUT=$(cat "$dir/limit")
  LAST_CMD=("$(cat "$dir/cmd")")
}

# ---- assertions on the last run_cmd -------------------------------------

_rc_is() { [ "$RC" -eq "$1" ]; }
_rc_nonzero_no_timeout() { [ "$RC" -ne 0 ] && [ "$RC" -ne 124 ] && [ "$RC" -ne 137 ]; }

expect_rc() {
  check "exit code $1" _rc_is "$1" || show_output
}

# Non-zero, and not because the timeout killed it.
expect_failure() {
  check "non-zero exit code (got $RC), not a timeout" _rc_nonzero_no_timeout || show_output
}

# Finished well within its timeout: a hang-then-kill or a rank stuck until
# some internal timeout would show up here.
expect_fast() {
  local max=$1
  check "finished in ${ELAPSED}s (< ${max}s of the ${LAST_TIMEOUT}s timeout)" \
    awk -v e="$ELAPSED" -v m="$max" 'BEGIN { exit !(e < m) }'
}

_count_fixed() { grep -F -o -- "$1" "$2" | wc -l; }

# expect_in FILE TEXT: TEXT (fixed string) appears in FILE.
expect_in() {
  check "$(basename "$1") contains '$2'" grep -q -F -- "$2" "$1" || show_output
}

# expect_count FILE TEXT N: TEXT occurs exactly N times in FILE.
expect_count() {
  local n
  n=$(_count_fixed "$2" "$1")
  check "$(basename "$1") contains '$2' exactly $3 time(s) (found $n)" [ "$n" -eq "$3" ] || show_output
}

expect_stderr() { expect_in "$ERR" "$1"; }
expect_stdout() { expect_in "$OUT" "$1"; }

# The error is printed once, by rank 0 only, as one line: exactly one line on
# stderr starts with "mpitrain" (mpiexec's own banner does not), it contains
# PHRASE, and PHRASE occurs nowhere else.
expect_one_error_line() {
  local phrase=$1 lines n
  lines=$(grep -c '^mpitrain' "$ERR")
  check "exactly one 'mpitrain...' line on stderr (found $lines)" [ "$lines" -eq 1 ] || show_output
  n=$(_count_fixed "$phrase" "$ERR")
  check "stderr says '$phrase' exactly once (found $n)" [ "$n" -eq 1 ] || show_output
  # "mpitrain: error: ..." is the reported user error; "mpitrain: fatal
  # error on rank N" is the MPI_Abort path for failures found too late.
  check "the line is 'mpitrain: error: ...' and holds the phrase" \
    bash -c 'grep "^mpitrain" "$1" | grep -F -- "$2" | grep -q -E "^mpitrain( convert)?: error: "' _ "$ERR" "$phrase" ||
    show_output
}

expect_file() { check "file exists: $1" test -f "$1"; }
expect_no_file() { check "file not created: $1" test ! -e "$1"; }

# expect_py EXPR...: Python assertions over the last run, one check per
# expression. Names available to the expressions:
#   L     every JSON line of the metrics file $METRICS (a list of dicts)
#   H     L[0], the header;  E: the epoch lines (type == "epoch")
#   RAW   stdout as text;  SEG: stdout cut at \n and \r with the terminal
#         clear-line code removed (the visible lines, progress included)
#   math, re, json, ceil
#   epochs_of(path): the epoch lines of another metrics file
# A failing expression prints the values of the names it uses.
expect_py() {
  local result
  result=$(python3 - "${METRICS:-}" "$OUT" "$@" <<'PY'
import json, math, re, sys
from math import ceil
metrics_path, out_path, exprs = sys.argv[1], sys.argv[2], sys.argv[3:]
L, load_error = [], None
if metrics_path:
    try:
        with open(metrics_path) as f:
            L = [json.loads(line) for line in f if line.strip()]
    except Exception as e:  # reported by every expression that needs L
        load_error = f"cannot load metrics {metrics_path}: {e}"
H = L[0] if L else {}
E = [d for d in L if d.get("type") == "epoch"]
def epochs_of(path):
    with open(path) as f:
        return [d for d in map(json.loads, f) if d.get("type") == "epoch"]
with open(out_path, errors="replace", newline="") as f:  # keep \r: it is checked
    RAW = f.read()
SEG = [s for s in re.split(r"[\r\n]", RAW.replace("\x1b[K", "")) if s]
env = dict(L=L, H=H, E=E, RAW=RAW, SEG=SEG, math=math, re=re, ceil=ceil, json=json, epochs_of=epochs_of)
for expr in exprs:
    try:
        ok = bool(eval(expr, env))
        detail = ""
    except Exception as e:
        ok, detail = False, f" ({type(e).__name__}: {e})"
    if ok:
        print(f"OK {expr}")
    else:
        if load_error:
            detail += f" [{load_error}]"
        print(f"FAIL {expr}{detail}")
PY
)
  if [ -z "$result" ]; then
    fail "expect_py: python3 produced no result"
    return
  fi
  local line
  while IFS= read -r line; do
    E2E_CHECKS=$((E2E_CHECKS + 1))
    case $line in
      OK\ *) echo "  ok: ${line#OK }" ;;
      *) fail "${line#FAIL }" ;;
    esac
  done <<<"$result"
  if grep -q '^FAIL' <<<"$result"; then
    [ -n "${METRICS:-}" ] && [ -f "$METRICS" ] && { echo "  ---- metrics:"; sed 's/^/  | /' "$METRICS"; }
    show_output
  fi
}

# ---- end -----------------------------------------------------------------

e2e_finish() {
  local t1 total
  t1=$(date +%s.%N)
  total=$(awk -v a="$E2E_T0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')
  echo "=== $(basename "$0"): ${#E2E_CASES[@]} cases, $E2E_CHECKS checks, $E2E_FAILS failed, ${total}s"
  [ "$E2E_FAILS" -eq 0 ]
  exit $?
}
