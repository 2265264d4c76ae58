#!/usr/bin/env bash
# A private Slurm cluster on this machine, for trying the job scripts in jobs/
# and for the CI test tests/cluster/slurm_jobs.sh.
#
#   bash scripts/slurm-cluster.sh start  [--state DIR] [--nodes N] [--cpus C] [--port P]
#   bash scripts/slurm-cluster.sh status [--state DIR]
#   bash scripts/slurm-cluster.sh env    [--state DIR]   # prints the exports for clients
#   bash scripts/slurm-cluster.sh stop   [--state DIR]
#
# `start` installs slurm-wlm and munge from Debian if they are missing, writes
# a minimal slurm.conf into the state directory (default /tmp/mpitrain-slurm),
# and starts one munged, one slurmctld and N slurmd daemons that emulate the
# nodes n1..nN (Debian's Slurm has multiple-slurmd support: every node is
# localhost with its own port). Nothing system-wide is written or replaced:
# the clients find the cluster through SLURM_CONF, munged listens on a socket
# in the state directory, and the only shared file used is the munge key the
# Debian package creates (/etc/munge/munge.key; created with mungekey if it
# is missing). The controller's state stays in DIR from one start to the
# next, so job ids (and the run directories named after them) never repeat.
# Defaults: MPITRAIN_SLURM_STATE for DIR, MPITRAIN_SLURM_PORT for P (16817;
# the nodes listen on P+1 .. P+N), 4 nodes of 2 CPUs.
#
# `stop` cancels the cluster's jobs and stops exactly the daemons `start`
# started (their PIDs are recorded in DIR/pids), never anything by name.
# A `start` that fails stops what it had started.
#
# Facts of this machine kind (Debian 12, Slurm 22.05, no cgroups) behind the
# configuration: proctrack/linuxproc and task/none instead of cgroups, no
# accounting (so no sacct: use `scontrol show job`, kept MinJobAge seconds,
# or DIR/jobcomp.log), config_overrides so the configured CPUs may exceed
# the cores, `srun --mpi=pmix` (pmi2 does not work with Debian's Open MPI).
set -euo pipefail

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; exit "${1:-2}"; }

cmd=${1:-}
[ -n "$cmd" ] || usage
shift
STATE=${MPITRAIN_SLURM_STATE:-/tmp/mpitrain-slurm}
NODES=4
CPUS=2
PORT=${MPITRAIN_SLURM_PORT:-16817}   # slurmctld; the nodes use PORT+1 .. PORT+N
while [ $# -gt 0 ]; do
  case "$1" in
    --state) STATE=$2; shift 2 ;;
    --nodes) NODES=$2; shift 2 ;;
    --cpus) CPUS=$2; shift 2 ;;
    --port) PORT=$2; shift 2 ;;
    -h|--help) usage 0 ;;
    *) echo "slurm-cluster: unknown argument '$1'" >&2; usage ;;
  esac
done
case "$STATE" in /*) ;; *) STATE=$PWD/$STATE ;; esac
[[ $NODES =~ ^[1-9][0-9]*$ && $CPUS =~ ^[1-9][0-9]*$ && $PORT =~ ^[1-9][0-9]*$ ]] \
  || { echo "slurm-cluster: --nodes, --cpus and --port take positive integers" >&2; exit 2; }
CONF=$STATE/slurm.conf
PIDS=$STATE/pids
MUNGE_SOCKET=$STATE/munge/munge.socket.2
export SLURM_CONF=$CONF

say() { echo "slurm-cluster: $*"; }
die() { echo "slurm-cluster: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------- install
install_packages() {
  local missing=() p
  for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  say "installing ${missing[*]} from Debian"
  export DEBIAN_FRONTEND=noninteractive
  # Update the package lists only when they do not know the packages, or
  # when they are stale (a download fails).
  if ! apt-cache show "${missing[@]}" >/dev/null 2>&1; then apt-get update -qq; fi
  if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1; then
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1 \
      || { tail -20 "$STATE/apt.log" >&2; die "apt-get install ${missing[*]} failed"; }
  fi
}

# ---------------------------------------------------------------- daemons
# Every daemon runs in the foreground (-D/-F) as a background child of this
# script, so $! is its PID. A daemon is recorded in $PIDS by PID, name and
# start time, so that `stop` never signals a process that merely reuses the
# PID of one that has gone.
start_time() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) && awk '{print $20}' <<<"${s##*) }"; }

record() {  # pid name
  echo "$1 $2 $(start_time "$1")" >>"$PIDS"
}

# True while the process runs. A zombie counts as gone: daemons whose parent
# (this script) has exited are reaped by PID 1, which may take its time.
pid_is() {  # pid name start-time
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }   # after "pid (comm) ": state ppid ... starttime is the 20th
  [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ] && [ "${stat%% *}" != Z ] \
    && [ "$(awk '{print $20}' <<<"$stat")" = "$3" ]
}

# Polls until the command succeeds; gives up after `seconds`, or at once
# when one of the watched daemons (PIDs from $PIDS, by name) has died.
wait_until() {  # seconds watched-name command...
  local limit=$1 watched=$2 t=0 pid name started
  shift 2
  until "$@" >/dev/null 2>&1; do
    while read -r pid name started; do
      [ "$name" = "$watched" ] && ! pid_is "$pid" "$name" "$started" && { echo "slurm-cluster: $name (pid $pid) died" >&2; return 1; }
    done <"$PIDS"
    t=$((t + 1))
    [ "$t" -le $((limit * 5)) ] || return 1
    sleep 0.2
  done
}

port_free() { ! ss -Hltn "sport = :$1" 2>/dev/null | grep -q .; }

write_conf() {
  local host i
  host=$(hostname -s)
  {
    echo "# Written by scripts/slurm-cluster.sh: a private $NODES-node cluster on $host."
    echo "ClusterName=mpitrain"
    echo "SlurmctldHost=$host(127.0.0.1)"
    echo "SlurmctldPort=$PORT"
    echo "SlurmUser=root"
    echo "SlurmdUser=root"
    echo "AuthType=auth/munge"
    echo "CredType=cred/munge"
    echo "AuthInfo=socket=$MUNGE_SOCKET"
    echo "StateSaveLocation=$STATE/ctld"
    echo "SlurmctldPidFile=$STATE/run/slurmctld.pid"
    echo "SlurmctldLogFile=$STATE/log/slurmctld.log"
    # One slurmd per emulated node on one host: every per-node path has %n.
    echo "SlurmdSpoolDir=$STATE/spool/%n"
    echo "SlurmdPidFile=$STATE/run/slurmd-%n.pid"
    echo "SlurmdLogFile=$STATE/log/slurmd-%n.log"
    echo "TmpFS=$STATE/tmp/%n"
    # No cgroups on this machine kind.
    echo "ProctrackType=proctrack/linuxproc"
    echo "TaskPlugin=task/none"
    echo "JobAcctGatherType=jobacct_gather/none"
    echo "AccountingStorageType=accounting_storage/none"
    # Without accounting, the end state of every job is kept here, one line each.
    echo "JobCompType=jobcomp/filetxt"
    echo "JobCompLoc=$STATE/jobcomp.log"
    echo "SelectType=select/cons_tres"
    echo "SelectTypeParameters=CR_CPU"
    # The configured CPUs may differ from the cores (oversubscribed emulation).
    echo "SlurmdParameters=config_overrides"
    echo "MpiDefault=none"
    echo "MailProg=/bin/true"
    echo "ReturnToService=2"
    # Finished jobs stay visible to `scontrol show job` for an hour.
    echo "MinJobAge=3600"
    echo "InactiveLimit=0"
    echo "KillWait=5"
    echo "SlurmdTimeout=300"
    for ((i = 1; i <= NODES; i++)); do
      echo "NodeName=n$i NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((PORT + i)) CPUs=$CPUS State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=n[1-$NODES] Default=YES MaxTime=INFINITE State=UP"
  } >"$CONF"
}

start_munged() {
  local key=/etc/munge/munge.key
  if [ ! -s "$key" ]; then
    say "creating the munge key $key (mungekey)"
    install -d -o munge -g munge -m 0700 /etc/munge
    setpriv --reuid=munge --regid=munge --init-groups mungekey --create --keyfile="$key"
  fi
  # munged insists on its own user and on directories only it can write.
  install -d -o munge -g munge -m 0755 "$STATE/munge"
  setpriv --reuid=munge --regid=munge --init-groups \
    munged --foreground --force --socket="$MUNGE_SOCKET" --key-file="$key" \
    --pid-file="$STATE/munge/munged.pid" --log-file="$STATE/munge/munged.log" \
    --seed-file="$STATE/munge/munged.seed" </dev/null >>"$STATE/log/munged.out" 2>&1 &
  record $! munged
  wait_until 10 munged munge_ok || die "munged did not answer on $MUNGE_SOCKET (log: $STATE/munge/munged.log)"
}
munge_ok() { munge -n -S "$MUNGE_SOCKET" | unmunge -S "$MUNGE_SOCKET"; }

all_nodes_idle() {
  local states
  states=$(sinfo -h -N -o '%T' 2>/dev/null) || return 1
  [ "$(grep -c '^idle$' <<<"$states")" -eq "$NODES" ]
}

start() {
  [ "$(id -u)" -eq 0 ] || die "the daemons need root: sudo bash $0 start ..."
  if [ -s "$PIDS" ]; then
    while read -r pid name started; do
      pid_is "$pid" "$name" "$started" && die "a cluster from $STATE is still running ($name pid $pid): run '$0 stop --state $STATE' first"
    done <"$PIDS"
  fi
  mkdir -p "$STATE"
  local t0=$SECONDS
  install_packages
  local t_install=$((SECONDS - t0))
  for ((i = 0; i <= NODES; i++)); do
    port_free $((PORT + i)) || die "port $((PORT + i)) is in use: choose another base with --port"
  done
  # Fresh nodes every time, but the controller's state stays: job ids go on
  # from the last start, so run directories named after them stay unique.
  rm -rf "$STATE/spool" "$STATE/tmp" "$STATE/run" "$STATE/log" "$STATE/munge"
  mkdir -p "$STATE/ctld" "$STATE/run" "$STATE/log"
  for ((i = 1; i <= NODES; i++)); do mkdir -p "$STATE/spool/n$i" "$STATE/tmp/n$i"; done
  : >"$PIDS"
  trap 'echo "slurm-cluster: start failed; stopping what it started" >&2; stop_daemons' EXIT
  trap 'exit 130' INT TERM
  write_conf

  start_munged
  slurmctld -D -i </dev/null >>"$STATE/log/slurmctld.out" 2>&1 &
  record $! slurmctld
  wait_until 30 slurmctld scontrol ping \
    || { tail -5 "$STATE/log/slurmctld.log" >&2 || true; die "slurmctld did not come up (log: $STATE/log/slurmctld.log)"; }
  for ((i = 1; i <= NODES; i++)); do
    slurmd -D -N "n$i" </dev/null >>"$STATE/log/slurmd-n$i.out" 2>&1 &
    record $! slurmd
  done
  wait_until 30 slurmd all_nodes_idle \
    || { sinfo -N >&2 || true; tail -5 "$STATE"/log/slurmd-n1.log >&2 || true; die "the nodes did not become idle (logs: $STATE/log/)"; }
  trap - EXIT INT TERM
  say "up in $((SECONDS - t0)) s (install ${t_install} s): slurmctld on port $PORT, nodes n1..n$NODES with $CPUS CPUs each, state in $STATE"
  say "use it with: eval \"\$(bash $0 env --state $STATE)\"   # SLURM_CONF and OMPI_MCA_btl"
}

# Stops the daemons listed in $PIDS, newest first (nodes, controller, munged).
stop_daemons() {
  trap - EXIT
  [ -s "$PIDS" ] || return 0
  local lines line pid name started t
  mapfile -t lines < <(tac "$PIDS")
  for line in "${lines[@]}"; do
    read -r pid name started <<<"$line"
    if pid_is "$pid" "$name" "$started"; then kill -TERM "$pid" 2>/dev/null || true; fi
  done
  for line in "${lines[@]}"; do
    read -r pid name started <<<"$line"
    for ((t = 0; t < 50; t++)); do pid_is "$pid" "$name" "$started" || break; sleep 0.2; done
    if pid_is "$pid" "$name" "$started"; then
      echo "slurm-cluster: $name (pid $pid) ignored SIGTERM for 10 s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done
  : >"$PIDS"
}

stop() {
  if [ -s "$PIDS" ] && scontrol ping >/dev/null 2>&1; then
    # Jobs outlive slurmd (slurmstepd is detached), so end them first.
    local jobs
    jobs=$(squeue -h -o '%A' 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      say "cancelling jobs: $(tr '\n' ' ' <<<"$jobs")"
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      wait_until 20 - no_jobs_running || echo "slurm-cluster: jobs still running after 20 s" >&2
    fi
  fi
  local n
  n=$(wc -l <"$PIDS" 2>/dev/null || echo 0)
  stop_daemons
  say "stopped ${n} daemon(s) of $STATE"
}
no_jobs_running() { [ -z "$(squeue -h -t running,completing -o %A)" ]; }

status() {
  [ -s "$PIDS" ] || { say "not running ($STATE)"; return 1; }
  local pid name started up=0 down=0
  while read -r pid name started; do
    if pid_is "$pid" "$name" "$started"; then up=$((up + 1)); else down=$((down + 1)); echo "  $name pid $pid: not running"; fi
  done <"$PIDS"
  say "$up daemon(s) running, $down gone; SLURM_CONF=$CONF"
  sinfo -N || true
  squeue || true
  [ "$down" -eq 0 ]
}

case "$cmd" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env)
    echo "export SLURM_CONF=$CONF"
    # The emulated nodes share one host name: Open MPI's shared-memory
    # transport would pair ranks of different nodes and crash, so use TCP.
    echo "export OMPI_MCA_btl=self,tcp"
    ;;
  *) usage ;;
esac
