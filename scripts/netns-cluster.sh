#!/usr/bin/env bash
# An emulated cluster of 1-16 hosts on this machine, built from Linux
# namespaces, and `mpirun` across it over TCP.
#
#   bash scripts/netns-cluster.sh up N [--rate RATE] [--delay DELAY]
#   bash scripts/netns-cluster.sh mpirun [--hosts K] [--ppn P] -- MPIRUN-ARGS...
#   bash scripts/netns-cluster.sh run N [--rate R] [--delay D] [--ppn P] -- MPIRUN-ARGS...
#   bash scripts/netns-cluster.sh exec K -- COMMAND...     (a command on host K)
#   bash scripts/netns-cluster.sh pids [K]                 (PID and name of every process on the hosts)
#   bash scripts/netns-cluster.sh status
#   bash scripts/netns-cluster.sh down
#
# `run` is up + mpirun on all N hosts + down, and tears down even when mpirun
# fails or the script is interrupted. Example, 4 hosts with 1 rank each:
#   sudo bash scripts/netns-cluster.sh run 4 -- build/mpitrain train --config jobs/x.ini
#
# What `up N` creates (PREFIX defaults to "mpt"; all of it is removed by `down`):
# - network namespace PREFIX-sw holding the bridge br0 (the switch);
# - per host k: network namespace PREFIX-hk with loopback and eth0, one end of
#   a veth pair whose other end (vk) is a port of br0; address SUBNET.k/24,
#   where SUBNET (default 10.99.0) exists only inside these namespaces: there is
#   no default route, so no packet can leave for any address outside them;
# - per host k: a UTS namespace (bind-mounted at /run/mpitrain-netns/PREFIX/uts/)
#   with hostname PREFIX-hk, so MPI sees N distinct hosts and rank placement
#   reads naturally;
# - /etc/netns/PREFIX-hk/hosts (all hosts by name) and an empty resolv.conf (no
#   DNS queries leave), which `ip netns exec` mounts over /etc inside the host;
# - the launcher agent and hostfiles in /run/mpitrain-netns/PREFIX/.
#
# How MPI runs across it (Open MPI 4.1): mpirun runs inside host 1 (from the
# root namespace the remote daemons could not reach it) and starts orted on the
# other hosts through `--mca plm_rsh_agent AGENT`, a small script that enters
# the host's namespaces where ssh would log in. Options it adds, and why (one
# that the caller gives among the mpirun arguments replaces the default):
#   --bind-to none, mpi_yield_when_idle 1: every emulated host sees all cores;
#       bound ranks would all pin to core 0 and busy-poll.
#   btl self,tcp and the subnet for btl/oob: ranks talk through sockets over
#       the veths, like separate machines (no shared memory between hosts).
#   btl_tcp_links 2: under a rate limit, one TCP connection per peer pair is
#       roughly half-duplex (2 hosts, 4 MB MPI_Allreduce at 100mbit: 0.65 s);
#       a second connection restores full speed (0.35 s). Measured with Open
#       MPI 4.1.4: collectives on MPI_COMM_WORLD open it (most runs), those
#       on an MPI_Comm_dup'ed communicator never do and stay at 0.62 s.
#       (mpitrain itself raises btl_tcp_eager_limit to 4 MiB, which makes
#       its ring all-reduces full-duplex for blocks up to that: comm.hpp.)
#   odls_base_sigkill_timeout 0, short oob_tcp_keepalive_*: a killed rank or a
#       cut link ends the whole job in seconds instead of minutes.
#
# Link shaping (per host, both directions of its link):
#   --rate RATE    token bucket (tc tbf) on both ends of each host's veth, e.g.
#                  1gbit, 100mbit, 500kbit; the all-reduce time follows 1/RATE.
#   --delay DELAY  netem delay on each host's outgoing traffic (a round trip
#                  between two hosts gains 2*DELAY). Needs sch_netem in the
#                  kernel; without it, `up` fails and says so.
#
# Environment: NETNS_CLUSTER_PREFIX (default mpt), NETNS_CLUSTER_SUBNET
# (default 10.99.0), NETNS_CLUSTER_MPIRUN (default mpirun). Needs root, iproute2 (installed
# with apt-get if `ip` is missing), util-linux (nsenter, unshare).
set -euo pipefail

PREFIX=${NETNS_CLUSTER_PREFIX:-mpt}
SUBNET=${NETNS_CLUSTER_SUBNET:-10.99.0}
MPIRUN=${NETNS_CLUSTER_MPIRUN:-mpirun}
STATE=/run/mpitrain-netns/$PREFIX
SW=$PREFIX-sw
MAX_HOSTS=16

die() { echo "netns-cluster: $*" >&2; exit 1; }
note() { echo "netns-cluster: $*" >&2; }

usage() {
  sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

host_ns() { echo "$PREFIX-h$1"; }

# Setup and teardown run few processes (one `ip -batch` per namespace, not one
# `ip` per change): on a loaded CI machine every process start costs ~50 ms.

# Every namespace of this prefix that exists (switch and hosts), by exact name.
our_namespaces() {
  local name rest
  while read -r name rest; do
    [[ "$name" =~ ^${PREFIX}-(sw|h[0-9]+)$ ]] && echo "$name"
  done < <(ip netns list 2>/dev/null)
  return 0
}

# ns_processes NS...: "PID NS COMMAND" for every process inside these network
# namespaces (what `ip netns pids` finds, for all of them in one pass over /proc).
ns_processes() {
  [ $# -gt 0 ] || return 0
  local map
  map=$(cd /run/netns && stat -L -c '%i %n' -- "$@" 2>/dev/null) || true
  [ -n "$map" ] || return 0
  # (stat fails for processes that end meanwhile: not an error here)
  { stat -L -c '%i %n' /proc/[0-9]*/ns/net 2>/dev/null || true; } | awk -v map="$map" '
    BEGIN { n = split(map, lines, "\n"); for (i = 1; i <= n; i++) { split(lines[i], f, " "); ns[f[1]] = f[2] } }
    ($1 in ns) {
      split($2, p, "/"); comm = "?"
      if ((getline c < ("/proc/" p[3] "/comm")) > 0) comm = c
      print p[3], ns[$1], comm
    }'
}

host_count() {
  [ -f "$STATE/hosts" ] || die "no cluster '$PREFIX' is up (run: $0 up N)"
  cat "$STATE/hosts"
}

check_prereqs() {
  [ "$EUID" -eq 0 ] || die "needs root (namespaces, /etc/netns): run it with sudo"
  if ! command -v ip >/dev/null 2>&1; then
    note "installing iproute2 (ip is missing)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 >/dev/null \
      || die "could not install iproute2"
  fi
  command -v nsenter >/dev/null && command -v unshare >/dev/null || die "needs nsenter and unshare (util-linux)"
}

# RATE in tc syntax (100mbit, 1gbit, 500kbit, 2000000bit) -> bytes per second.
rate_bytes_per_s() {
  awk -v r="$1" 'BEGIN {
    if (!match(r, /^[0-9]+(\.[0-9]+)?/)) exit 1
    v = substr(r, 1, RLENGTH); u = tolower(substr(r, RLENGTH + 1))
    m["bit"] = 1; m["kbit"] = 1e3; m["mbit"] = 1e6; m["gbit"] = 1e9
    m["bps"] = 8; m["kbps"] = 8e3; m["mbps"] = 8e6; m["gbps"] = 8e9
    if (!(u in m)) exit 1
    printf "%d\n", v * m[u] / 8 }'
}

# tc_batch NS LINES: runs tc qdisc commands in NS, explaining a missing netem.
tc_batch() {
  local ns=$1 lines=$2 err
  if ! err=$(tc -n "$ns" -batch - <<<"$lines" 2>&1); then
    if grep -q netem <<<"$lines" && grep -qi "unknown" <<<"$err"; then
      die "--delay needs netem, and this kernel has no netem (sch_netem): tc said '${err//$'\n'/ }'. Only --rate (tbf) is available here."
    fi
    die "tc in $ns failed: $err"
  fi
}

cmd_down() {
  local namespaces procs i f etc_dirs=()
  mapfile -t namespaces < <(our_namespaces)
  # Kill every process inside the namespaces (mpirun, orted, ranks): all were
  # started in them through this script, and a namespace with live processes
  # would outlive its name.
  for ((i = 0; i < 40; i++)); do
    procs=$(ns_processes "${namespaces[@]}")
    [ -z "$procs" ] && break
    kill -KILL $(awk '{ print $1 }' <<<"$procs") 2>/dev/null || true
    sleep 0.05
  done
  [ -z "$procs" ] || note "processes still alive in the namespaces: $procs"
  # Deleting a namespace also deletes its veth ends (the peer goes with them)
  # and the bridge inside the switch namespace.
  if [ ${#namespaces[@]} -gt 0 ]; then
    printf 'netns del %s\n' "${namespaces[@]}" | ip -force -batch - || note "could not delete all of: ${namespaces[*]}"
  fi
  for f in /etc/netns/"$PREFIX"-h*; do
    [[ -e "$f" && "${f##*/}" =~ ^${PREFIX}-h[0-9]+$ ]] && etc_dirs+=("$f")
  done
  local uts=()
  for f in "$STATE"/uts/*; do
    [ -e "$f" ] && uts+=("$f")
  done
  [ ${#uts[@]} -gt 0 ] && { umount "${uts[@]}" 2>/dev/null || true; }
  # /etc/netns itself only if `up` created it (and it is empty now).
  local made_etc_netns=0
  [ -e "$STATE/made-etc-netns" ] && made_etc_netns=1
  if [ ${#etc_dirs[@]} -gt 0 ] || [ -e "$STATE" ]; then rm -rf "${etc_dirs[@]}" "$STATE"; fi
  [ "$made_etc_netns" -eq 1 ] && { rmdir /etc/netns 2>/dev/null || true; }
  [ -d /run/mpitrain-netns ] && { rmdir /run/mpitrain-netns 2>/dev/null || true; }
  return 0
}

cmd_up() {
  local n=${1:-}
  shift || true
  local rate="" delay=""
  while [ $# -gt 0 ]; do
    case $1 in
      --rate) rate=${2:?--rate needs a value}; shift 2 ;;
      --delay) delay=${2:?--delay needs a value}; shift 2 ;;
      *) die "up: unknown option '$1'" ;;
    esac
  done
  [[ "$n" =~ ^[0-9]+$ ]] && [ "$n" -ge 1 ] && [ "$n" -le $MAX_HOSTS ] || die "up: host count must be 1..$MAX_HOSTS (got '$n')"
  local burst=""
  if [ -n "$rate" ]; then
    # tbf burst: 10 ms at the rate (the timer granularity tbf needs), at least 32 KiB.
    burst=$(rate_bytes_per_s "$rate") || die "bad --rate '$rate' (use e.g. 1gbit, 100mbit, 500kbit)"
    burst=$((burst / 100 > 32768 ? burst / 100 : 32768))
  fi
  check_prereqs
  cmd_down  # a cluster of this prefix left over from an interrupted run

  # From here on, a failure (or an interrupt) removes what was created.
  CLEANUP_ON_EXIT=1
  mkdir -p "$STATE/uts"
  [ -d /etc/netns ] || { mkdir /etc/netns; : >"$STATE/made-etc-netns"; }

  local k ns hosts_file="127.0.0.1 localhost"$'\n'"::1 localhost ip6-localhost ip6-loopback"$'\n'
  local root_cmds="netns add $SW"$'\n' sw_cmds="link add br0 type bridge"$'\n'"link set br0 up"$'\n'
  for ((k = 1; k <= n; k++)); do
    ns=$PREFIX-h$k
    hosts_file+="$SUBNET.$k $ns"$'\n'
    root_cmds+="netns add $ns"$'\n'"link add name eth0 netns $ns type veth peer name v$k netns $SW"$'\n'
    sw_cmds+="link set v$k master br0 up"$'\n'
  done
  ip -batch - <<<"$root_cmds"
  ip -n "$SW" -batch - <<<"$sw_cmds"

  local tc_sw=""
  for ((k = 1; k <= n; k++)); do
    ns=$PREFIX-h$k
    ip -n "$ns" -batch - <<<"link set lo up"$'\n'"addr add $SUBNET.$k/24 dev eth0"$'\n'"link set eth0 up"
    mkdir "/etc/netns/$ns"
    printf '%s' "$hosts_file" >"/etc/netns/$ns/hosts"
    : >"/etc/netns/$ns/resolv.conf"  # no nameserver: no DNS query leaves the cluster
    : >"$STATE/uts/$ns"
    unshare --uts="$STATE/uts/$ns" hostname "$ns"
    # Shaping: the host's outgoing traffic on eth0, its incoming on the switch port.
    if [ -n "$delay" ]; then
      tc_batch "$ns" "qdisc add dev eth0 root netem delay $delay${rate:+ rate $rate}"
    elif [ -n "$rate" ]; then
      tc_batch "$ns" "qdisc add dev eth0 root tbf rate $rate burst $burst latency 100ms"
    fi
    [ -n "$rate" ] && tc_sw+="qdisc add dev v$k root tbf rate $rate burst $burst latency 100ms"$'\n'
  done
  [ -n "$tc_sw" ] && tc_batch "$SW" "$tc_sw"

  # Open MPI's remote launcher calls AGENT [options] HOST COMMAND... like ssh,
  # COMMAND being one shell command line split into words.
  printf '%s\n' '#!/bin/sh' \
    "# plm_rsh_agent for the emulated cluster '$PREFIX': enters HOST instead of ssh." \
    'while [ "${1#-}" != "$1" ]; do shift; done' \
    'host=$1; shift' \
    "[ -e \"$STATE/uts/\$host\" ] || { echo \"netns-cluster agent: no host '\$host' in cluster '$PREFIX'\" >&2; exit 255; }" \
    "exec nsenter --uts=\"$STATE/uts/\$host\" ip netns exec \"\$host\" /bin/sh -c \"\$*\"" >"$STATE/agent"
  chmod +x "$STATE/agent"
  echo "$n" >"$STATE/hosts"
  echo "${rate:-none} ${delay:-none}" >"$STATE/shaping"
  [ "$RUN_MODE" -eq 1 ] || CLEANUP_ON_EXIT=0
  note "up: $n host(s) $PREFIX-h1..$PREFIX-h$n on $SUBNET.0/24, rate ${rate:-unlimited}, delay ${delay:-none}"
}

# host_exec K COMMAND...: COMMAND on host K (its network, hostname, hosts file).
host_exec() {
  local ns
  ns=$(host_ns "$1")
  shift
  [ -e "$STATE/uts/$ns" ] || die "no host $ns in cluster '$PREFIX'"
  nsenter --uts="$STATE/uts/$ns" ip netns exec "$ns" "$@"
}

cmd_mpirun() {
  local n hosts ppn=1
  n=$(host_count)
  hosts=$n
  while [ $# -gt 0 ]; do
    case $1 in
      --hosts) hosts=${2:?--hosts needs a value}; shift 2 ;;
      --ppn) ppn=${2:?--ppn needs a value}; shift 2 ;;
      --) shift; break ;;
      *) die "mpirun: unknown option '$1' (put mpirun's arguments after --)" ;;
    esac
  done
  [[ "$hosts" =~ ^[0-9]+$ ]] && [ "$hosts" -ge 1 ] && [ "$hosts" -le "$n" ] || die "mpirun: --hosts must be 1..$n"
  [[ "$ppn" =~ ^[0-9]+$ ]] && [ "$ppn" -ge 1 ] || die "mpirun: --ppn must be >= 1"
  [ $# -gt 0 ] || die "mpirun: nothing to run (give mpirun's arguments after --)"

  local hostfile=$STATE/hostfile.$hosts.$ppn k
  : >"$hostfile"
  for ((k = 1; k <= hosts; k++)); do echo "$PREFIX-h$k slots=$ppn" >>"$hostfile"; done

  # Defaults; any of them the caller sets in the mpirun arguments wins (Open
  # MPI refuses an MCA parameter given twice).
  local defaults=(
    "mca plm_rsh_no_tree_spawn 1"
    "bind-to none"
    "mca mpi_yield_when_idle 1"
    "mca btl self,tcp"
    "mca btl_tcp_if_include $SUBNET.0/24"
    "mca oob_tcp_if_include $SUBNET.0/24"
    "mca btl_tcp_links 2"
    "mca odls_base_sigkill_timeout 0"
    "mca oob_tcp_keepalive_time 2"
    "mca oob_tcp_keepalive_intvl 1"
    "mca oob_tcp_keepalive_probes 3"
  )
  local opts=(--hostfile "$hostfile" --mca plm_rsh_agent "$STATE/agent") d words given a prev=""
  given=" "
  for a in "$@"; do
    case $prev in
      --mca | -mca | --gmca | -gmca) given+="mca $a " ;;
    esac
    case $a in --bind-to | -bind-to) given+="bind-to " ;; esac
    prev=$a
  done
  for d in "${defaults[@]}"; do
    read -r -a words <<<"$d"
    if [ "${words[0]}" = mca ]; then
      [[ "$given" == *" mca ${words[1]} "* ]] || opts+=(--mca "${words[1]}" "${words[2]}")
    else
      [[ "$given" == *" ${words[0]} "* ]] || opts+=("--${words[0]}" "${words[1]}")
    fi
  done
  [ "$EUID" -eq 0 ] && opts+=(--allow-run-as-root)
  host_exec 1 "$MPIRUN" "${opts[@]}" "$@"
}

cmd_run() {
  local n=${1:-} up_args=() mpirun_args=()
  shift || true
  while [ $# -gt 0 ]; do
    case $1 in
      --rate | --delay) up_args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
      --ppn) mpirun_args+=("$1" "${2:?$1 needs a value}"); shift 2 ;;
      --) shift; break ;;
      *) die "run: unknown option '$1' (put mpirun's arguments after --)" ;;
    esac
  done
  [ $# -gt 0 ] || die "run: nothing to run (give mpirun's arguments after --)"
  RUN_MODE=1
  CLEANUP_ON_EXIT=1
  cmd_up "$n" "${up_args[@]}"
  # In the background so that a signal to this script is handled (teardown)
  # at once, not only after mpirun has ended (mpirun's stdin is /dev/null).
  local rc=0
  cmd_mpirun "${mpirun_args[@]}" -- "$@" &
  wait $! || rc=$?
  return "$rc"
}

cmd_pids() {
  local n k hosts=()
  n=$(host_count)
  for ((k = 1; k <= n; k++)); do
    [ $# -gt 0 ] && [ "$1" != "$k" ] && continue
    hosts+=("$PREFIX-h$k")
  done
  ns_processes "${hosts[@]}" | awk '{ print $1, $3, $2 }'
}

cmd_status() {
  local n k ns
  if [ ! -f "$STATE/hosts" ]; then
    echo "cluster '$PREFIX': down"
    return 0
  fi
  n=$(host_count)
  echo "cluster '$PREFIX': $n host(s), shaping (rate delay): $(cat "$STATE/shaping")"
  for ((k = 1; k <= n; k++)); do
    ns=$PREFIX-h$k
    echo "  $ns: $(nsenter --uts="$STATE/uts/$ns" hostname) $(ip -n "$ns" -4 -o addr show dev eth0 | awk '{ print $4 }')" \
      "$(tc -n "$ns" qdisc show dev eth0)"
  done
}

# Teardown on every exit path that needs it: a failed `up`, and `run` whatever
# happens (mpirun failing, Ctrl-C, a timeout's SIGTERM).
CLEANUP_ON_EXIT=0
RUN_MODE=0
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  trap '' INT TERM  # a second Ctrl-C must not cut the teardown short
  # Best effort: every step of the teardown runs even if one fails.
  set +e
  [ "$CLEANUP_ON_EXIT" -eq 1 ] && cmd_down
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

main() {
  local cmd=${1:-}
  shift || true
  case $cmd in
    up) cmd_up "$@" ;;
    down) check_prereqs; cmd_down ;;
    mpirun) cmd_mpirun "$@" ;;
    run) cmd_run "$@" ;;
    exec)
      local k=${1:-}
      shift || true
      [ "${1:-}" = "--" ] && shift
      [ $# -gt 0 ] || die "exec: usage: exec K -- COMMAND..."
      host_exec "$k" "$@"
      ;;
    pids) cmd_pids "$@" ;;
    status) cmd_status ;;
    *) usage ;;
  esac
}

main "$@"
