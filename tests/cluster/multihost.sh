#!/usr/bin/env bash
# Multi-host MPI over TCP on an emulated cluster (scripts/netns-cluster.sh:
# one network + UTS namespace per host, a bridge between them). Checks that
#   - training on 2 and 4 hosts (and 2 hosts x 2 ranks) gives the single-host
#     result (the math does not depend on the rank count),
#   - the metrics header names the emulated hosts and their ranks, and counts
#     them all on one machine (one kernel), whose cores the default BLAS
#     threads divide among them,
#   - ranks on different hosts talk through TCP sockets between namespaces,
#   - a rank killed with SIGKILL, or a host whose link is cut, ends the whole
#     job quickly with a non-zero exit and leaves no process behind,
#   - link shaping is installed as asked (tbf; netem delay, or a clear error
#     on a kernel without netem),
#   - teardown removes every namespace, /etc/netns entry and mount.
# Run by CTest (as root, like CI) as
#   bash tests/cluster/multihost.sh <mpitrain> <make_test_dataset> <mpiexec> <work dir>
here=$(cd "$(dirname "$0")" && pwd)
source "$here/../e2e/lib.sh"
e2e_init "$@"

if [ "$(id -u)" -ne 0 ]; then
  echo "FATAL: this test builds network namespaces and needs root (CI runs as root; locally: sudo ctest -R cluster_multihost)"
  exit 1
fi

CLUSTER_SCRIPT=$(cd "$here/../.." && pwd)/scripts/netns-cluster.sh
# Its own prefix and subnet, so a developer's cluster (default prefix "mpt")
# is left alone. The addresses exist only inside the test's namespaces.
export NETNS_CLUSTER_PREFIX=mptci NETNS_CLUSTER_SUBNET=10.99.7
export NETNS_CLUSTER_MPIRUN=$MPIEXEC
cluster() { bash "$CLUSTER_SCRIPT" "$@"; }

# Whatever happens (a failed check, an error, Ctrl-C, a SIGTERM), nothing of
# the cluster survives the test. (After a SIGKILL, the next run's `up`
# removes the leftovers of this fixed prefix first.)
trap 'timeout 20 bash "$CLUSTER_SCRIPT" down' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
# begin_case, plus the wall time of the case before (for the CI log).
CASE_T0=""
case_() {
  local t
  t=$(now)
  [ -n "$CASE_T0" ] && echo "  ($(secs "$CASE_T0" "$t")s)"
  CASE_T0=$t
  begin_case "$1"
}

# Everything the cluster creates, listed; empty when it is fully gone.
leftovers() {
  ip netns list | awk '{ print $1 }' | grep -E "^${NETNS_CLUSTER_PREFIX}-" | sed 's/^/namespace /'
  ls -d /etc/netns/"${NETNS_CLUSTER_PREFIX}"-* 2>/dev/null | sed 's/^/hosts dir /'
  ls -d /run/mpitrain-netns/"${NETNS_CLUSTER_PREFIX}" 2>/dev/null | sed 's/^/state dir /'
  grep -F "/run/mpitrain-netns/${NETNS_CLUSTER_PREFIX}/" /proc/self/mountinfo | awk '{ print "mount " $5 }'
}
_no_leftovers() {
  local l
  l=$(leftovers)
  [ -z "$l" ] || { echo "  left over:"; sed 's/^/    /' <<<"$l"; return 1; }
}
# No process runs on any emulated host (polls up to 10 s: orted on a cut-off
# host notices the loss only through its own keepalive).
_no_processes_on_hosts() {
  local i p
  for i in $(seq 1 100); do
    p=$(cluster pids)
    [ -z "$p" ] && return 0
    sleep 0.1
  done
  echo "  still running:"
  sed 's/^/    /' <<<"$p"
  return 1
}

N=1000 EPOCHS=3 B=64 LR=0.005
DATA="$WORK/good.h5"
"$MAKE_DS" good "$DATA" "$N" 16 || { echo "FATAL: make_test_dataset good failed"; exit 1; }
# lr 0.005 for 3 epochs: test accuracy ~0.72, 0.98, 0.996, so every epoch's
# accuracy is a number a wrong run could miss (not saturated at 1).
TRAIN=("$MPITRAIN" train --data "$DATA" --model 16-32-4 --global-batch $B --lr $LR
       --lr-scaling none --threads 1 --progress none)

# ---------------------------------------------------------------------------
case_ "single host reference (mpiexec -n 1 in the root namespace)"
REF="$WORK/ref.jsonl"
METRICS=$REF
mpi_run 1 60 "${TRAIN[@]}" --epochs $EPOCHS --metrics "$REF"
expect_rc 0
REAL_HOST=$(hostname)
expect_py "H['ranks'] == 1 and H['nodes'] == 1" \
  "len(E) == $EPOCHS and 0.5 < E[0]['test_acc'] < 1"

# ---------------------------------------------------------------------------
case_ "cluster up: 4 hosts"
t0=$(now)
run_cmd 20 bash "$CLUSTER_SCRIPT" up 4
UP_S=$(secs "$t0" "$(now)")
expect_rc 0
echo "  up 4 hosts: ${UP_S}s"
run_cmd 20 bash "$CLUSTER_SCRIPT" status
expect_rc 0
for k in 1 2 3 4; do
  expect_stdout "  mptci-h$k: mptci-h$k $NETNS_CLUSTER_SUBNET.$k/24"
done
run_cmd 20 bash "$CLUSTER_SCRIPT" exec 3 -- cat /etc/hosts
expect_stdout "$NETNS_CLUSTER_SUBNET.1 mptci-h1"
expect_stdout "$NETNS_CLUSTER_SUBNET.4 mptci-h4"
run_cmd 20 bash "$CLUSTER_SCRIPT" exec 3 -- ip -o route
check "host 3 has no default route (no packet can leave the emulated cluster)" \
  bash -c '! grep -q "^default" "$1" && grep -q "^'"$NETNS_CLUSTER_SUBNET"'.0/24 dev eth0" "$1"' _ "$OUT" || show_output

# ---------------------------------------------------------------------------
# train_case NAME HOSTS PPN EXPECTED_HOSTS_JSON: a run on HOSTS hosts with PPN
# ranks each, compared with the reference.
train_case() {
  local name=$1 hosts=$2 ppn=$3 expect_hosts=$4
  case_ "$name"
  METRICS="$WORK/h${hosts}x${ppn}.jsonl"
  run_cmd 60 bash "$CLUSTER_SCRIPT" mpirun --hosts "$hosts" --ppn "$ppn" -- "${TRAIN[@]}" --epochs $EPOCHS --metrics "$METRICS"
  expect_rc 0
  echo "  mpirun on $hosts host(s) x $ppn rank(s): ${ELAPSED}s"
  # The trainer counts nodes with an MPI shared-memory split (one per orted,
  # i.e. per emulated host) and gathers every rank's gethostname(); the hosts
  # share one kernel (boot id): every rank is on the same machine.
  expect_py \
    "H['ranks'] == $((hosts * ppn))" \
    "H['nodes'] == $hosts" \
    "H['hosts'] == $expect_hosts" \
    "'$REAL_HOST' not in [h['host'] for h in H['hosts']]" \
    "H['ranks_on_node'] == $ppn and H['ranks_on_machine'] == $((hosts * ppn))" \
    "len(E) == len(R := epochs_of('$REF')) == $EPOCHS" \
    "all(abs(e[k] - r[k]) <= 1e-5 * abs(r[k]) for e, r in zip(E, R) for k in ('train_loss', 'test_loss'))" \
    "all(e[k] == r[k] for e, r in zip(E, R) for k in ('train_acc', 'test_acc', 'step', 'samples'))"
  expect_stdout "$((hosts * ppn)) ranks on $hosts node(s)"
  expect_stdout "host mptci-h$hosts: rank"
  check "no process left on the hosts after the run" _no_processes_on_hosts
}
train_case "2 hosts x 1 rank = single host" 2 1 \
  "[{'host': 'mptci-h1', 'ranks': '0'}, {'host': 'mptci-h2', 'ranks': '1'}]"
train_case "4 hosts x 1 rank = single host" 4 1 \
  "[{'host': 'mptci-h%d' % k, 'ranks': str(k - 1)} for k in (1, 2, 3, 4)]"
train_case "2 hosts x 2 ranks = single host" 2 2 \
  "[{'host': 'mptci-h1', 'ranks': '0,1'}, {'host': 'mptci-h2', 'ranks': '2,3'}]"

# Without --threads: the 4 hosts share this machine's kernel and cores, so
# the default rule divides the machine's cores among all 4 ranks (each host
# alone would take every core: 4 x cores BLAS threads on the cores).
case_ "default BLAS threads on 4 emulated hosts: the machine's cores / its 4 ranks"
METRICS="$WORK/threads4.jsonl"
NO_THREADS=() prev=""
for a in "${TRAIN[@]}"; do [ "$a" = "--threads" ] || [ "${prev:-}" = "--threads" ] || NO_THREADS+=("$a"); prev=$a; done
run_cmd 60 bash "$CLUSTER_SCRIPT" mpirun --hosts 4 -- "${NO_THREADS[@]}" --epochs 1 --metrics "$METRICS"
expect_rc 0
expect_py "H['ranks_on_node'] == 1 and H['ranks_on_machine'] == 4" \
  "H['threads_rule'] == 'cores / ranks on the machine, whose nodes share one kernel'" \
  "H['threads_per_rank'] == max(1, H['cores_on_node'] // 4)"

# ---------------------------------------------------------------------------
# --deterministic: bitwise the same on 1 rank in the root namespace and on 4
# emulated hosts (state_crc32 of the final checkpoint and every epoch value).
crc_of() { h5dump -a /state_crc32 "$1" 2>/dev/null | sed -n 's/^ *(0): *//p'; }
DET=("$MPITRAIN" train --data "$DATA" --model 16-32-4 --global-batch $B --lr $LR --lr-scaling none --progress none
     --deterministic --deterministic-unit 8 --epochs $EPOCHS)
case_ "--deterministic: reference on 1 rank"
DET_REF="$WORK/det1"
mpi_run 1 60 "${DET[@]}" --metrics "$DET_REF.jsonl" --checkpoint-dir "$DET_REF"
expect_rc 0
REF_CRC=$(crc_of "$DET_REF/final.h5")
check "the reference checkpoint has a state_crc32 ($REF_CRC)" test -n "$REF_CRC"
for layout in "4 1" "2 2"; do
  read -r hosts ppn <<<"$layout"
  case_ "--deterministic: $hosts hosts x $ppn rank(s) = 1 rank, bitwise"
  DIR="$WORK/det${hosts}x${ppn}"
  METRICS="$DIR.jsonl"
  run_cmd 60 bash "$CLUSTER_SCRIPT" mpirun --hosts "$hosts" --ppn "$ppn" -- "${DET[@]}" --metrics "$METRICS" \
    --checkpoint-dir "$DIR"
  expect_rc 0
  CRC=$(crc_of "$DIR/final.h5")
  check "state_crc32 $CRC on $hosts host(s) x $ppn equals $REF_CRC on 1 rank" test "$CRC" = "$REF_CRC"
  expect_py "H['ranks'] == $((hosts * ppn)) and H['nodes'] == $hosts and H['deterministic']" \
    "len(E) == len(R := epochs_of('$DET_REF.jsonl')) == $EPOCHS" \
    "all(e[k] == r[k] for e, r in zip(E, R) for k in ('train_loss', 'train_acc', 'test_loss', 'test_acc', 'lr'))"
  check "no process left on the hosts after the run" _no_processes_on_hosts
done

# ---------------------------------------------------------------------------
# long_run ID: starts a 4-host run that would take minutes in the background
# and waits (up to 30 s) until it has written 2 epoch lines. Sets LONG_DIR.
long_run() {
  LONG_DIR=$(run_dir "$1")
  METRICS="$LONG_DIR/metrics.jsonl"
  (
    timeout -k 5 90 bash "$CLUSTER_SCRIPT" mpirun -- "${TRAIN[@]}" --epochs 5000 --metrics "$METRICS" \
      >"$LONG_DIR/stdout" 2>"$LONG_DIR/stderr" </dev/null
    echo $? >"$LONG_DIR/rc"
    now >"$LONG_DIR/t_end"
  ) &
  LONG_PID=$!
  local n deadline=$((SECONDS + 30))
  while [ "$SECONDS" -lt "$deadline" ]; do
    n=$(grep -c '"type":"epoch"' "$METRICS" 2>/dev/null)
    [ "${n:-0}" -ge 2 ] && return 0
    [ -e "$LONG_DIR/rc" ] && break
    sleep 0.1
  done
  return 1
}

# long_run_ends WHAT: after the fault at $T_FAULT, waits for the job and checks
# it ended within 30 s, non-zero, not by the 90 s timeout.
long_run_ends() {
  wait "$LONG_PID"
  OUT="$LONG_DIR/stdout" ERR="$LONG_DIR/stderr" RC=$(cat "$LONG_DIR/rc")
  LAST_CMD=("(4-host run of 5000 epochs, $1)") LAST_TIMEOUT=90
  ELAPSED=$(secs "$T_FAULT" "$(cat "$LONG_DIR/t_end")")
  echo "  job ended ${ELAPSED}s after $1, exit code $RC"
  check "job ended ${ELAPSED}s after $1 (< 30 s)" awk -v e="$ELAPSED" 'BEGIN { exit !(e < 30) }' || show_output
  check "non-zero exit code (got $RC), not the test's timeout (124)" \
    bash -c '[ "$1" -ne 0 ] && [ "$1" -ne 124 ]' _ "$RC" || show_output
  check "the run stopped early (fewer than 5000 epoch lines)" \
    bash -c '[ "$(grep -c "\"type\":\"epoch\"" "$1")" -lt 5000 ]' _ "$METRICS"
  check "no process left on the hosts" _no_processes_on_hosts
}

# stop_long_run: when a case cannot go on, ends the background run (SIGKILL
# to every process on host 1: mpirun and rank 0) and shows its output.
stop_long_run() {
  kill -KILL $(cluster pids 1 | awk '{ print $1 }') 2>/dev/null
  wait "$LONG_PID"
  OUT="$LONG_DIR/stdout" ERR="$LONG_DIR/stderr" RC=$(cat "$LONG_DIR/rc" 2>/dev/null || echo "?")
  LAST_CMD=("(4-host run of 5000 epochs)") ELAPSED="?" LAST_TIMEOUT=90
  show_output
}

case_ "SIGKILL of the rank on host 3 mid-run ends the job"
if check "4-host run started and wrote 2 epochs" long_run kill; then
  # Proof that the ranks talk over TCP between namespaces: the rank on host 3
  # has established connections to other hosts' addresses.
  SS=$(cluster exec 3 -- ss -tnpH state established)
  check "rank on mptci-h3 has TCP connections to other hosts' addresses" \
    bash -c 'grep "\"mpitrain\"" <<<"$1" | awk "{ print \$4 }" | grep -v "^$2\.3:" | grep -q "^$2\.[0-9]*:"' \
    _ "$SS" "${NETNS_CLUSTER_SUBNET//./\\.}" || echo "$SS" | sed 's/^/  | /'
  echo "$SS" | grep '"mpitrain"' | sed 's/^/  tcp: /'
  PIDS=$(cluster pids 3 | awk '$2 == "mpitrain" { print $1 }')
  if check "exactly one mpitrain process in host 3's namespace (found: ${PIDS//$'\n'/ })" \
    [ "$(wc -w <<<"$PIDS")" -eq 1 ]; then
    T_FAULT=$(now)
    kill -KILL "$PIDS"
    long_run_ends "SIGKILL of rank 2 (pid $PIDS)"
    expect_stderr "rank 2 with PID $PIDS on node mptci-h3 exited on signal 9"
  else
    stop_long_run
  fi
else
  stop_long_run
fi

case_ "cutting host 3's link mid-run ends the job (oob keepalive)"
if check "4-host run started and wrote 2 epochs" long_run cut; then
  T_FAULT=$(now)
  ip -n "$NETNS_CLUSTER_PREFIX-sw" link set v3 down
  long_run_ends "cutting the link of host 3"
  expect_stderr "lost communication with a remote daemon"
  ip -n "$NETNS_CLUSTER_PREFIX-sw" link set v3 up
else
  stop_long_run
fi

# ---------------------------------------------------------------------------
case_ "cluster down removes everything"
t0=$(now)
run_cmd 20 bash "$CLUSTER_SCRIPT" down
DOWN_S=$(secs "$t0" "$(now)")
expect_rc 0
echo "  down 4 hosts: ${DOWN_S}s"
check "no namespace, /etc/netns entry, state dir or mount left" _no_leftovers

# ---------------------------------------------------------------------------
case_ "link shaping: --rate installs tbf on both ends of every host's link"
run_cmd 20 bash "$CLUSTER_SCRIPT" up 2 --rate 200mbit
expect_rc 0
for k in 1 2; do
  check "host $k eth0 (outgoing): tbf rate 200Mbit" \
    bash -c 'tc -n "$1" qdisc show dev eth0 | grep -q "^qdisc tbf .* rate 200Mbit"' _ "$NETNS_CLUSTER_PREFIX-h$k"
  check "switch port v$k (incoming to host $k): tbf rate 200Mbit" \
    bash -c 'tc -n "$1" qdisc show dev "v$2" | grep -q "^qdisc tbf .* rate 200Mbit"' _ "$NETNS_CLUSTER_PREFIX-sw" "$k"
done
METRICS="$WORK/shaped.jsonl"
run_cmd 60 bash "$CLUSTER_SCRIPT" mpirun -- "${TRAIN[@]}" --epochs 1 --metrics "$METRICS"
expect_rc 0
expect_py "H['nodes'] == 2 and len(E) == 1" \
  "abs(E[0]['test_loss'] - epochs_of('$REF')[0]['test_loss']) <= 1e-5 * epochs_of('$REF')[0]['test_loss']"
run_cmd 20 bash "$CLUSTER_SCRIPT" down
expect_rc 0

case_ "link shaping: --delay uses netem, or says the kernel has none"
run_cmd 20 bash "$CLUSTER_SCRIPT" up 2 --delay 2ms
if [ "$RC" -eq 0 ]; then
  echo "  this kernel has netem"
  check "host 1 eth0: netem delay 2ms" \
    bash -c 'tc -n "$1" qdisc show dev eth0 | grep -q "^qdisc netem .* delay 2ms"' _ "$NETNS_CLUSTER_PREFIX-h1"
  run_cmd 20 bash "$CLUSTER_SCRIPT" down
  expect_rc 0
else
  echo "  this kernel has no netem"
  expect_stderr "this kernel has no netem"
  check "the failed 'up' removed what it had created" _no_leftovers
fi

case_ "nothing left at the end"
check "no namespace, /etc/netns entry, state dir or mount left" _no_leftovers
echo "  ($(secs "$CASE_T0" "$(now)")s)"
echo "cluster setup (4 hosts): ${UP_S}s, teardown: ${DOWN_S}s"
e2e_finish
