#!/bin/bash
# tests/cluster/test_slurm.sh basic|timelimit: the single-machine Slurm
# cluster of scripts/slurm-cluster.sh, started, used and stopped as the
# cluster tests of tgraph will use it.
#
#   basic      start; status; srun over the three nodes and over four
#              tasks; a job array of three; scancel --signal=USR1 reaching
#              a batch script; scancel; stop, leaving none of the
#              daemons' processes (checked by PID). Well under 60 s.
#   timelimit  a job of --time=1 warned with --signal=B:USR1@45 and then
#              ended at its limit (Slurm checks limits every 30 s or so:
#              this takes 60 to 100 s).
#
# Skipped (exit 77) only when Slurm or munge is missing and this is not
# root; as root the script installs them. Ends with "slurm_cluster: N
# passed, M failed" (basic) or "slurm_timelimit: ...". Environment: TG_SOURCE_ROOT.
# Job commands are in single quotes on purpose: the job expands them.
# shellcheck disable=SC2016
set -u
mode=${1:-basic}
case $mode in
  basic) name=cluster ;;
  timelimit) name=timelimit ;;
  *) echo "usage: $0 basic|timelimit" >&2; exit 2 ;;
esac
pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok: $1"; }
bad() { fail=$((fail + 1)); echo "FAIL: $1"; }
# same NAME EXPECTED ACTUAL: exact equality.
same() {
  if [ "$2" = "$3" ]; then ok "$1"
  else bad "$1"; printf 'expected: %s\n  actual: %s\n' "$2" "$3"; fi
}

export PATH=$PATH:/usr/sbin:/sbin
script=$TG_SOURCE_ROOT/scripts/slurm-cluster.sh
if [ "$(id -u)" -ne 0 ]; then
  for c in slurmctld slurmd munged srun sbatch; do
    if ! command -v $c >/dev/null; then
      echo "skipped: $c is not installed and this is not root" \
        "(apt-get install slurm-wlm munge, or run as root)"
      exit 77
    fi
  done
fi

# Short: munge's socket path must fit a sockaddr_un.
dir=$(mktemp -d "${TMPDIR:-/tmp}/tg-slurm.XXXXXX")
chmod 0755 "$dir"
work=$dir/work
mkdir "$work"
cd "$work" || exit 1
pids=""

finish() {
  trap - EXIT
  if [ -f "$dir/slurm.conf" ]; then
    t0=$(date +%s%N)
    if out=$("$script" stop "$dir" 2>&1); then ok "stop"; else bad "stop: $out"; fi
    echo "stop took $(since "$t0") s"
    left=""
    for p in $pids; do kill -0 "$p" 2>/dev/null &&
      [ "$(cut -d' ' -f3 /proc/"$p"/stat 2>/dev/null)" != Z ] && left="$left $p"; done
    same "no daemon left (pids$pids)" "" "$left"
    # (find keeps its starting directory open: not one of the cluster's.)
    cd / || exit 1
    held=$(find /proc/[0-9]*/fd -maxdepth 1 -lname "$dir/*" 2>/dev/null | cut -d/ -f3 |
      sort -u | grep -v "^$$\$")
    same "no process holds a file of the cluster" "" "$held"
  fi
  echo "slurm_$name: $pass passed, $fail failed"
  [ "$fail" -eq 0 ] && rm -rf "$dir"
  [ "$fail" -eq 0 ]
  exit
}
trap finish EXIT

# since T0: seconds from T0 (date +%s%N) to now, to the millisecond.
since() {
  local ms=$((($(date +%s%N) - $1) / 1000000))
  printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

# wait_job ID SECONDS: until the job leaves the queue; prints its state.
wait_job() {
  local n=$(($2 * 10))
  while [ -n "$(squeue -h -j "$1" 2>/dev/null)" ] && [ $n -gt 0 ]; do
    sleep 0.1
    n=$((n - 1))
  done
  scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1
}

# wait_text FILE TEXT SECONDS: until FILE holds TEXT.
wait_text() {
  local n=$(($3 * 10))
  until grep -q "$2" "$1" 2>/dev/null || [ $n -le 0 ]; do
    sleep 0.1
    n=$((n - 1))
  done
}

t0=$(date +%s%N)
if ! out=$("$script" start "$dir" 2>&1); then
  bad "start"
  printf '%s\n' "$out"
  tail -n 20 "$dir"/log/*.log
  exit 1
fi
echo "start took $(since "$t0") s"
same "start prints how to use it" "export SLURM_CONF=$dir/slurm.conf" "$out"
export SLURM_CONF=$dir/slurm.conf
same "env file" "SLURM_CONF=$dir/slurm.conf" "$(cat "$dir/env")"

status=$("$script" status "$dir")
same "status exit" 0 $?
pids=$(printf '%s\n' "$status" | awk '$3 == "running" { printf " %s", $2 }')
same "status" "munged running
slurmctld running
slurmd-n1 running
slurmd-n2 running
slurmd-n3 running
n1 idle
n2 idle
n3 idle" "$(printf '%s\n' "$status" | sed 's/ [0-9]* running$/ running/')"
same "five daemons with their pids" 5 "$(echo "$pids" | wc -w)"

if out=$("$script" start "$dir" 2>&1); then bad "second start refused"; else
  same "second start refused" "slurm-cluster: $dir already has a running cluster (stop it first)" "$out"
fi

if [ "$mode" = basic ]; then
  same "srun -N3 -n3: one task per node" "n1 0
n2 1
n3 2" "$(srun -N3 -n3 sh -c 'echo $SLURMD_NODENAME $SLURM_PROCID' | sort)"
  h=$(hostname)
  same "srun -N3 -n3 hostname" "$h
$h
$h" "$(srun -N3 -n3 hostname)"
  same "srun -n4" "0 1 2 3" "$(srun -n4 sh -c 'echo $SLURM_PROCID' | sort | tr '\n' ' ' | sed 's/ $//')"
  same "srun passes the exit status" 3 "$(srun -n1 sh -c 'exit 3' 2>/dev/null; echo $?)"

  id=$(sbatch --parsable --array=0-2 -o 'array-%a.out' \
    --wrap 'echo "task $SLURM_ARRAY_TASK_ID of $SLURM_ARRAY_JOB_ID"')
  for i in 0 1 2; do
    same "array task $i" "JobState=COMPLETED" "$(wait_job "${id}_$i" 20)"
    same "array task $i output" "task $i of $id" "$(cat "array-$i.out")"
  done

  # The batch shell, not only its steps: --batch. Bash reports its sleep
  # killed by the same signal on stderr, hence the separate -e.
  id=$(sbatch --parsable -o usr1.out -e usr1.err --wrap \
    'trap "echo got USR1; exit 0" USR1; echo ready; while :; do sleep 0.1; done')
  wait_text usr1.out ready 20
  scancel --batch --signal=USR1 "$id"
  same "scancel --signal=USR1: the job ends as its trap says" "JobState=COMPLETED" \
    "$(wait_job "$id" 20)"
  same "scancel --signal=USR1: output" "ready
got USR1" "$(cat usr1.out)"

  id=$(sbatch --parsable -o /dev/null --wrap 'sleep 300')
  srun -n1 sleep 300 2>/dev/null &
  srun_pid=$!
  n=200
  until [ "$(squeue -h -t R | wc -l)" -eq 2 ] || [ $n -le 0 ]; do
    sleep 0.1
    n=$((n - 1))
  done
  same "a batch job and an srun running" 2 "$(squeue -h -t R | wc -l)"
  scancel "$id"
  same "scancel" "JobState=CANCELLED" "$(wait_job "$id" 20)"
  # The srun left running: stop cancels it.
  pids="$pids $srun_pid"
else
  # Warned 45 s before the end (B: the batch shell), then ended.
  id=$(sbatch --parsable --time=1 --signal=B:USR1@45 -o limit.out -e limit.err --wrap \
    'trap "echo got USR1" USR1; trap "echo got TERM; exit 0" TERM; echo start
     while :; do sleep 0.2; done')
  same "time limit reached" "JobState=TIMEOUT" "$(wait_job "$id" 150)"
  same "warned, then ended" "start
got USR1
got TERM" "$(cat limit.out)"
  same "slurmstepd says why" 1 "$(grep -c "CANCELLED AT .* DUE TO TIME LIMIT" limit.err)"
fi
