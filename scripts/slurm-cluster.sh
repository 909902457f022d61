#!/bin/sh
# scripts/slurm-cluster.sh start|stop|status DIR: a Slurm cluster on this
# one machine, for tests: munged, slurmctld and three slurmd presenting
# the nodes n1, n2 and n3 on 127.0.0.1, each daemon on its own port.
#
#   start DIR    write DIR/slurm.conf, start the daemons, wait until the
#                three nodes are idle; prints the line to use it:
#                  export SLURM_CONF=DIR/slurm.conf
#                (also in DIR/env). Fails, saying why, if DIR already
#                holds a running cluster or a daemon does not come up.
#   stop DIR     cancel every job, stop the daemons by the PIDs in DIR/run
#                (SIGTERM, then SIGKILL after 10 s), then any process left
#                holding a file under DIR/log or a socket under DIR (a
#                slurmstepd orphaned by its slurmd); exit 0 when none is left.
#   status DIR   one line per daemon (name, pid, running|stopped) and the
#                nodes' states; exit 0 when every daemon runs, 3 otherwise.
#
# Everything lives under DIR: munge's own key and socket (not the
# system's), the controller's state, each node's spool directory, logs,
# pid files. Runs as root or as any user (the daemons then run as that
# user, who is also the only one whose jobs they can run). No cgroups and
# no accounting: proctrack/linuxproc, task/none, accounting_storage/none.
# Needs Debian's slurm-wlm and munge (Slurm 22.05 is built with several
# slurmd per host); as root they are installed with apt-get when missing.
#
# Ports: four consecutive free TCP ports from SLURM_CLUSTER_PORT (default:
# a pseudo-random base from 20000 on, so clusters of several users or
# test runs at once do not collide).
set -eu
# The daemons are in sbin, which an ordinary user's PATH may lack.
PATH=$PATH:/usr/sbin:/sbin

usage() {
  echo "usage: $0 start|stop|status DIR" >&2
  exit 2
}
[ $# -eq 2 ] || usage
cmd=$1
case $2 in /*) dir=$2 ;; *) dir=$(pwd)/$2 ;; esac
nodes="n1 n2 n3"
conf=$dir/slurm.conf

say() { echo "slurm-cluster: $*" >&2; }
die() {
  say "$*"
  exit 1
}

# ---- packages ---------------------------------------------------------------

missing_packages() {
  command -v slurmctld >/dev/null && command -v slurmd >/dev/null &&
    command -v sbatch >/dev/null && command -v munged >/dev/null && return 0
  out=""
  for p in slurm-wlm munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
      out="$out $p"
  done
  echo "$out"
}

install_packages() {
  missing=$(missing_packages)
  [ -z "$missing" ] && return 0
  [ "$(id -u)" -eq 0 ] ||
    die "missing packages:$missing (install them: apt-get install$missing)"
  say "installing$missing"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # shellcheck disable=SC2086
  apt-get install -y -qq --no-install-recommends $missing >/dev/null
}

# ---- processes ----------------------------------------------------------------

# A zombie is not alive: its parent (init here) reaps it when it likes.
alive() {
  [ -n "$1" ] && kill -0 "$1" 2>/dev/null &&
    [ "$(sed 's/.*) \(.\).*/\1/' /proc/"$1"/stat 2>/dev/null)" != Z ]
}

pid_of() { # pid_of NAME: the pid recorded for daemon NAME, or ""
  f=$dir/run/$1.pid
  if [ -s "$f" ]; then
    tr -dc 0-9 <"$f"
    echo
  fi
}

# wait_for SECONDS COMMAND...: run COMMAND every 0.1 s until it succeeds.
wait_for() {
  tries=$(($1 * 10))
  shift
  while ! "$@" >/dev/null 2>&1; do
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || return 1
    sleep 0.1
  done
}

gone() { ! alive "$1"; }

# stop_pids PID...: SIGTERM to all at once (each daemon takes about 2 s
# to end), and SIGKILL to those alive 10 s later.
stop_pids() {
  for p in "$@"; do kill -TERM "$p" 2>/dev/null || true; done
  for p in "$@"; do
    wait_for 10 gone "$p" && continue
    say "$(cat /proc/"$p"/comm 2>/dev/null) (pid $p) ignored SIGTERM for 10 s: SIGKILL"
    kill -KILL "$p" 2>/dev/null || true
    wait_for 5 gone "$p" || say "pid $p survived SIGKILL"
  done
}

# Processes other than this shell holding a file under DIR/log (every
# Slurm daemon and slurmstepd logs there, munged too) or DIR/spool (a
# batch script), or a Unix socket bound under DIR (munged's,
# slurmstepd's), and all their descendants: a slurmstepd whose slurmd
# was killed, and its job's processes, have no pid file but are found.
leftover_pids() {
  # shellcheck disable=SC2046
  with_descendants $(holders)
}

holders() {
  set -- -lname "$dir/log/*" -o -lname "$dir/spool/*"
  # shellcheck disable=SC2013 # inode numbers, one word each
  for i in $(awk -v d="$dir/" 'NR > 1 && index($8, d) == 1 { print $7 }' /proc/net/unix); do
    set -- "$@" -o -lname "socket:\[$i\]"
  done
  # From /: find keeps its starting directory open, which may be in DIR.
  (cd / && find /proc/[0-9]*/fd -maxdepth 1 \( "$@" \) 2>/dev/null) | cut -d/ -f3 | sort -u |
    grep -v "^$$\$" || true
}

# with_descendants PID...: those and every process below them.
with_descendants() {
  [ $# -gt 0 ] || return 0
  # cat, not awk, reads the files: a process ending meanwhile is skipped.
  cat /proc/[0-9]*/stat 2>/dev/null | awk -v roots="$*" -v self=$$ '
    { s = $0; sub(/.*\) /, "", s); split(s, f, " "); parent[$1] = f[2] }
    END {
      n = split(roots, r, " ")
      for (i = 1; i <= n; i++) keep[r[i]] = 1
      for (grown = 1; grown;) {
        grown = 0
        for (p in parent)
          if (!(p in keep) && (parent[p] in keep)) { keep[p] = 1; grown = 1 }
      }
      for (p in keep) if (p != self) print p
    }'
}

# ---- configuration --------------------------------------------------------------

port_free() { # port_free PORT: nothing listens or is bound on it
  hex=$(printf ':%04X ' "$1")
  ! grep -q "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

pick_ports() {
  base=${SLURM_CLUSTER_PORT:-$((20000 + ($$ * 7919 + $(date +%s)) % 4000 * 10))}
  for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
    if port_free "$base" && port_free $((base + 1)) && port_free $((base + 2)) &&
      port_free $((base + 3)); then
      echo "$base"
      return 0
    fi
    [ -n "${SLURM_CLUSTER_PORT:-}" ] && break
    base=$((base + 10))
  done
  die "no four free ports from ${SLURM_CLUSTER_PORT:-$base} on"
}

write_conf() {
  user=$(id -un)
  port=$1
  cpus=$(nproc 2>/dev/null || echo 1)
  cat >"$conf" <<EOF
# Written by slurm-cluster.sh: one machine, three nodes, no accounting.
ClusterName=tgraph
SlurmctldHost=localhost
SlurmctldPort=$port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$dir/munge/munge.socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
# Short timers: jobs end, time out and get killed within seconds.
SlurmctldTimeout=30
SlurmdTimeout=30
MessageTimeout=10
InactiveLimit=0
KillWait=2
OverTimeLimit=0
MinJobAge=30
SchedulerParameters=sched_interval=1
# The nodes, each its own slurmd (slurmd -N nX) on its own port.
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((port + 1)) CPUs=$cpus State=UNKNOWN
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((port + 2)) CPUs=$cpus State=UNKNOWN
NodeName=n3 NodeHostname=localhost NodeAddr=127.0.0.1 Port=$((port + 3)) CPUs=$cpus State=UNKNOWN
PartitionName=main Nodes=n[1-3] Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:4
EOF
  echo "SLURM_CONF=$conf" >"$dir/env"
}

# ---- commands -------------------------------------------------------------------

any_running() {
  for name in munged slurmctld $(for n in $nodes; do echo "slurmd-$n"; done); do
    alive "$(pid_of "$name")" && return 0
  done
  return 1
}

nodes_idle() {
  [ "$(sinfo -h -N -o '%N %t' 2>/dev/null | grep -c ' idle$')" -eq 3 ]
}

start() {
  install_packages
  mkdir -p "$dir"
  if any_running; then die "$dir already has a running cluster (stop it first)"; fi
  rm -rf "$dir/munge" "$dir/state" "$dir/spool" "$dir/run" "$dir/log"
  mkdir -p "$dir/munge" "$dir/state" "$dir/run" "$dir/log"
  for n in $nodes; do mkdir -p "$dir/spool/$n"; done
  # munged refuses a socket directory others may write into or not enter.
  chmod 0755 "$dir/munge"
  port=$(pick_ports)
  write_conf "$port"
  export SLURM_CONF="$conf"

  # A key of its own: this cluster trusts no other munged, nor it this one.
  mungekey --create --keyfile="$dir/munge/munge.key" 2>/dev/null ||
    dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 2>/dev/null
  chmod 0600 "$dir/munge/munge.key"
  munged --key-file="$dir/munge/munge.key" --socket="$dir/munge/munge.socket" \
    --pid-file="$dir/run/munged.pid" --log-file="$dir/log/munged.log" \
    --seed-file="$dir/munge/munged.seed" ||
    die "munged did not start: $(tail -n 3 "$dir/log/munged.log" 2>/dev/null)"
  wait_for 10 test -S "$dir/munge/munge.socket" ||
    die "munged made no socket: $(tail -n 3 "$dir/log/munged.log" 2>/dev/null)"

  # -c: a fresh controller state (no jobs of an earlier cluster in DIR).
  slurmctld -c -f "$conf" ||
    die "slurmctld did not start: $(tail -n 5 "$dir/log/slurmctld.log" 2>/dev/null)"
  wait_for 30 scontrol ping ||
    die "slurmctld does not answer: $(tail -n 5 "$dir/log/slurmctld.log" 2>/dev/null)"
  for n in $nodes; do
    slurmd -N "$n" -f "$conf" ||
      die "slurmd $n did not start: $(tail -n 5 "$dir/log/slurmd-$n.log" 2>/dev/null)"
  done
  wait_for 30 nodes_idle || {
    sinfo -N >&2 || true
    die "the nodes are not idle after 30 s: $(tail -n 5 "$dir/log/slurmctld.log")"
  }
  echo "export SLURM_CONF=$conf"
}

stop() {
  [ -d "$dir" ] || die "$dir: no such directory"
  export SLURM_CONF="$conf"
  # Jobs first, while their slurmd can still kill them.
  if alive "$(pid_of slurmctld)"; then
    jobs=$(squeue -h -o %A 2>/dev/null || true)
    if [ -n "$jobs" ]; then
      # shellcheck disable=SC2086
      scancel $jobs 2>/dev/null || true
      # shellcheck disable=SC2016 # expanded by that sh
      wait_for 15 sh -c '[ -z "$(squeue -h -o %A 2>/dev/null)" ]' ||
        say "jobs still in the queue after 15 s: $(squeue -h -o '%A %T' | tr '\n' ' ')"
    fi
  fi
  # The Slurm daemons together, then munged and any orphaned slurmstepd.
  # shellcheck disable=SC2046
  stop_pids $(for name in slurmctld $(for n in $nodes; do echo "slurmd-$n"; done); do
    pid_of "$name"
  done)
  # shellcheck disable=SC2046
  stop_pids $(pid_of munged) $(leftover_pids)
  left=$(leftover_pids)
  [ -z "$left" ] || die "still running after stop: $left"
}

status() {
  rc=0
  for name in munged slurmctld $(for n in $nodes; do echo "slurmd-$n"; done); do
    pid=$(pid_of "$name")
    if alive "$pid"; then
      echo "$name $pid running"
    else
      echo "$name ${pid:--} stopped"
      rc=3
    fi
  done
  if [ $rc -eq 0 ]; then SLURM_CONF=$conf sinfo -h -N -o '%N %t' || rc=3; fi
  return $rc
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) usage ;;
esac
