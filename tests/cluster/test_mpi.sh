#!/bin/bash
# tests/cluster/test_mpi.sh mpirun|slurm|hydra|bench: `tgraph run --scheduler=mpi`
# launched as ranks by a real launcher.
#
#   mpirun  Open MPI's mpirun --oversubscribe -n 4: example graphs and a
#           graph of slow pure tasks give sync's outputs byte for byte
#           (--output files); -n 1 runs locally; kill -9 of a worker rank
#           under --enable-recovery: same answer, the driver exits 0, no
#           process of the run left; the exit status is the driver's;
#           --rank-address naming an interface, or an address the ranks
#           cannot listen on (each says why); a
#           rank that never shows up (an MPMD job whose second program is
#           not tgraph) and the run started outside any launcher, or
#           without PMIx and without --run-dir, fail with exact messages;
#           ranks started by hand with PMI_RANK/PMI_SIZE exchange through
#           --run-dir; a FIFO, or another user's file (setpriv), where a
#           rank's file goes is refused with its path and why, no hang.
#   slurm   srun -n 4 --mpi=pmix on the cluster of scripts/slurm-cluster.sh
#           (started here, stopped by PID), srun -N 3 -n 4 --mpi=pmi2 (its
#           PMI-1 answers), and srun -N 3 -n 4 through a run directory:
#           sync's outputs; kill -9 of a worker rank under
#           --kill-on-bad-exit=0; the driver's failure is srun's
#           status; srun without PMIx or --run-dir fails clearly.
#   hydra   MPICH's mpiexec.hydra -n 4, no --run-dir (the exchange goes
#           through its PMI-1 server, over PMI_FD, or PMI_PORT with
#           -pmi-port): example graphs give sync's outputs byte for byte,
#           also with TMPDIR missing (the run's keys are in memory);
#           the exit status is the driver's; a rank that never shows up
#           fails after --rank-timeout; a fake PMI server (fake_pmi.py)
#           answering one request badly gets an exact message, and one
#           never answering no hang.
#   bench   from the launcher's start to the first task running (mpirun
#           -n 4, and mpiexec.hydra -n 4 when installed), median of 5,
#           beside the launcher's own start (the same launcher running a
#           program that only reads the clock).
#
# Skipped (exit 77) when mpirun (for hydra, mpiexec.hydra; for slurm,
# Slurm) is missing. Ends
# with "mpi_MODE: N passed, M failed". Environment: TG_SOURCE_ROOT,
# TGRAPH_BIN, TGRAPH_PLUGIN_PATH (the example plugins' directory),
# TGRAPH_EXAMPLES (the built examples' directory).
# The ranks expand their own variables: commands in single quotes on purpose.
# shellcheck disable=SC2016
set -u
mode=${1:-mpirun}
# shellcheck source=../checks.sh
. "$(dirname "$0")/../checks.sh"

export PATH=$PATH:/usr/sbin:/sbin
tg=$TGRAPH_BIN
src=$TG_SOURCE_ROOT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
if [ "$mode" = hydra ] && ! command -v mpiexec.hydra >/dev/null; then
  echo "skipped: mpiexec.hydra is not installed (apt-get install mpich)"
  exit 77
fi
if [ "$mode" != hydra ] && ! command -v mpirun >/dev/null; then
  echo "skipped: mpirun is not installed (apt-get install openmpi-bin libpmix2)"
  exit 77
fi
mpirun=(mpirun --oversubscribe --bind-to none)

w=$(mktemp -d "${TMPDIR:-/tmp}/tg-mpi.XXXXXX")
cd "$w" || exit 1
finish() {
  trap - EXIT
  [ -n "${cluster:-}" ] && stop_cluster
  echo "mpi_$mode: $pass passed, $fail failed"
  # (A bare exit in a trap would return the status from before the trap.)
  [ "$fail" -eq 0 ] || exit 1
  rm -rf "$w"
  exit 0
}
trap finish EXIT

# A graph of n pure tasks of ms milliseconds each and their sum; its path
# holds the word "tgmpi-$1" so that its processes can be found.
slow_graph() {
  local n=$2 ms=$3 t="" refs="" i
  for ((i = 0; i < n; i++)); do
    t="$t\"s$i\": {\"fn\": \"num.slow\", \"args\": [$i, $ms]}, "
    refs="$refs{\"ref\": \"s$i\"}"
    [ $i -lt $((n - 1)) ] && refs="$refs, "
  done
  printf '{"tgraph": 1, "plugins": ["numeric"], "tasks": {%s"total": {"fn": "sum", "args": [[%s]]}}, "outputs": ["total"]}\n' \
    "$t" "$refs" >"$w/tgmpi-$1.json"
  echo "$w/tgmpi-$1.json"
}

# outputs_same NAME GRAPH DIR_A DIR_B: the two runs' --output listings
# (directory names aside) and files are identical.
outputs_same() {
  local a b f diffs=""
  a=$(sed "s|$3/||" "$3.list") b=$(sed "s|$4/||" "$4.list")
  [ -n "$a" ] && [ "$a" = "$b" ] || diffs="listing"
  for f in "$3"/*.tgv; do cmp -s "$f" "$4/${f##*/}" || diffs="$diffs ${f##*/}"; done
  same "$1: the same outputs as sync" "" "$diffs"
  [ -z "$diffs" ] || printf 'sync: %s\nmpi:  %s\n' "$a" "$b"
}

# run_sync NAME GRAPH: sync's outputs in $w/sync-NAME.
run_sync() {
  "$tg" run "$2" --scheduler=sync --no-cache -q --output "$w/sync-$1" >"$w/sync-$1.list"
}

# left WORD: processes whose command line holds WORD (none of this shell).
left() { pgrep -f "$1" | grep -v "^$$\$" | tr '\n' ' '; }

# one_rank NAME TASKS MS LABEL LAUNCHER...: a graph of TASKS tasks of MS
# ms each run by one rank (it computes alone) gives sync's outputs.
one_rank() {
  local name=$1 n=$2 ms=$3 label=$4 graph
  shift 4
  graph=$(slow_graph "$name" "$n" "$ms")
  run_sync "$name" "$graph"
  timeout 60 "$@" -n 1 "$tg" run "$graph" --scheduler=mpi --no-cache -q \
    --output "$w/mpi-$name" >"$w/mpi-$name.list"
  same "$label exit status" 0 $?
  outputs_same "$label" "$name" "$w/sync-$name" "$w/mpi-$name"
}

# kill_rank2 ERR GRAPH VAR WAIT AFTER: once the driver's stderr ERR says
# rank 3 serves (at most WAIT s), AFTER s later, kill -9 the tgraph
# process of the run of GRAPH whose environment has VAR=2; "yes" if one
# was found and killed.
kill_rank2() {
  local i p victim=""
  for ((i = 0; i < $4 * 20; i++)); do
    grep -q "rank 3 serves on" "$1" 2>/dev/null && break
    sleep 0.05
  done
  sleep "$5"
  for p in $(pgrep -f "$2"); do
    tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "$3=2" &&
      [ "$(cat /proc/"$p"/comm)" = tgraph ] && victim=$p
  done
  [ -n "$victim" ] && kill -9 "$victim" && echo yes
}

# failed_task NAME LAUNCHER...: a graph whose one task fails, run as 4
# ranks: the launcher exits 1 (the driver's status), the driver says so
# once, no process of the run is left.
failed_task() {
  local name=$1
  shift
  printf '{"tgraph": 1, "tasks": {"bad": {"fn": "sh", "args": ["exit 3"]}}, "outputs": ["bad"]}\n' \
    >"$w/tgmpi-fail.json"
  timeout 60 "$@" -n 4 "$tg" run "$w/tgmpi-fail.json" --scheduler=mpi \
    --no-cache >/dev/null 2>"$w/fail.err"
  same "a failed task: $name exits 1" 1 $?
  same "a failed task: the driver says so once" 1 \
    "$(grep -c "^tgraph: error: task 'bad' failed: TG_EIO: sh: exit status 3$" "$w/fail.err")"
  same "a failed task: no process of the run left" "" "$(left "$w/tgmpi-fail")"
}

if [ "$mode" = mpirun ]; then
  # MPICH installs its own mpirun beside Open MPI's: the alternatives
  # must still choose Open MPI's (its options are used below).
  same "mpirun is Open MPI's" yes "$(mpirun --version 2>&1 | grep -q 'Open MPI' && echo yes)"
  for g in builtins pi wordcount distance cached blur; do
    run_sync "$g" "$src/examples/$g.json"
    timeout 120 "${mpirun[@]}" -n 4 "$tg" run "$src/examples/$g.json" --scheduler=mpi \
      --no-cache -q --output "$w/mpi-$g" >"$w/mpi-$g.list"
    same "$g: mpirun -n 4 exit status" 0 $?
    outputs_same "$g" "$g" "$w/sync-$g" "$w/mpi-$g"
  done

  # A program of tgraph/cluster.h: the same line from 4 ranks and from 1.
  expected="below 1000000 the longest Collatz chain starts at 837799: 524 steps"
  same "cluster_collatz, mpirun -n 4" "$expected" \
    "$(timeout 60 "${mpirun[@]}" -n 4 "$TGRAPH_EXAMPLES/cluster_collatz")"
  same "cluster_collatz, mpirun -n 1" "$expected" \
    "$(timeout 60 "${mpirun[@]}" -n 1 "$TGRAPH_EXAMPLES/cluster_collatz")"
  same "cluster_collatz: no process left" "" "$(left "$TGRAPH_EXAMPLES/cluster_collatz")"

  one_rank one 24 50 "mpirun -n 1" "${mpirun[@]}"

  # Every rank reports its own exit status: under --enable-recovery
  # mpirun exits 0 whatever they were.
  graph=$(slow_graph kill 24 400)
  run_sync kill "$graph"
  timeout 120 "${mpirun[@]}" --enable-recovery -n 4 sh -c '"$0" "$@"; echo "rank $OMPI_COMM_WORLD_RANK exit $?" >>"'"$w"'/kill.status"' \
    "$tg" run "$graph" --scheduler=mpi --no-cache -v --output "$w/mpi-kill" \
    >"$w/mpi-kill.list" 2>"$w/kill.err" &
  mpirun_pid=$!
  # Kill rank 2 once the run is going (rank 0 listed the workers).
  same "a worker rank found and killed" yes \
    "$(kill_rank2 "$w/kill.err" "$w/tgmpi-kill" OMPI_COMM_WORLD_RANK 10 0.3)"
  wait "$mpirun_pid"
  same "kill -9 of a worker rank: mpirun's exit status" 0 $?
  outputs_same "kill -9 of a worker rank" kill "$w/sync-kill" "$w/mpi-kill"
  same "kill -9: the driver and the other workers exit 0" "rank 0 exit 0
rank 1 exit 0
rank 2 exit 137
rank 3 exit 0" "$(sort "$w/kill.status")"
  same "kill -9: one worker lost" 1 "$(grep -c ' 1 workers lost' "$w/kill.err")"
  same "kill -9: no process of the run left" "" "$(left "$w/tgmpi-kill")"

  # The driver's exit status is mpirun's (without --enable-recovery).
  failed_task mpirun "${mpirun[@]}"

  # Where ranks listen: an interface named; an address not of this host.
  timeout 60 "${mpirun[@]}" -n 4 "$tg" run "$src/examples/pi.json" --scheduler=mpi \
    --no-cache -v --rank-address lo --output "$w/mpi-lo" >"$w/mpi-lo.list" 2>"$w/lo.err"
  same "--rank-address lo: exit status" 0 $?
  same "--rank-address lo: the workers listen on its address" 3 \
    "$(grep -c '^tgraph: rank [123] serves on tcp://127\.0\.0\.1:[0-9]*$' "$w/lo.err")"
  outputs_same "--rank-address lo" pi "$w/sync-pi" "$w/mpi-lo"
  timeout 60 "${mpirun[@]}" -n 3 "$tg" run "$src/examples/pi.json" --scheduler=mpi \
    --no-cache --rank-address 192.0.2.1 >/dev/null 2>"$w/addr.err"
  same "--rank-address of another host: exit status" 2 $?
  # The rank's own line, or the driver's relay of it: mpirun may end a rank
  # before its stderr is forwarded once the driver has failed the run.
  same "--rank-address of another host: why a rank could not listen is said" yes "$(grep -Eq \
    "error: --scheduler=mpi: rank [12]( could not start serving)?: cannot listen on tcp://192\.0\.2\.1:\*: Cannot assign requested address" \
    "$w/addr.err" && echo yes)"
  same "--rank-address of another host: each message on a line of its own" 0 \
    "$(grep -c 'tgraph: .*tgraph: ' "$w/addr.err")"

  # Bad cases.
  graph=$(slow_graph bad 2 1)
  out=$(env -u OMPI_COMM_WORLD_RANK -u SLURM_PROCID -u PMIX_RANK -u PMI_RANK \
    "$tg" run "$graph" --scheduler=mpi --no-cache 2>&1)
  same "outside a launcher: exit 2" 2 $?
  same "outside a launcher: the message" "tgraph: error: --scheduler=mpi: not started by a parallel launcher (mpirun, mpiexec, srun): none of OMPI_COMM_WORLD_RANK, SLURM_PROCID, PMIX_RANK, PMI_RANK is set" "$out"

  out=$(env PMI_RANK=0 PMI_SIZE=2 "$tg" run "$graph" --scheduler=mpi --no-cache 2>&1)
  same "no PMIx and no --run-dir: exit 2" 2 $?
  same "no PMIx and no --run-dir: the message" "tgraph: error: --scheduler=mpi: the ranks cannot find each other: the launcher runs no PMIx server (no PMIX_SERVER_URI*; with srun use --mpi=pmix) nor a PMI-1 server (no PMI_FD or PMI_PORT); name a directory every rank sees (--run-dir) instead" "$out"

  out=$(env PMI_RANK=0 PMI_SIZE=x "$tg" run "$graph" --scheduler=mpi --no-cache 2>&1)
  same "a malformed size: the message" "tgraph: error: --scheduler=mpi: PMI_SIZE='x' is not a number from 0 to 1048576" "$out"

  mkdir "$w/rundir"
  out=$(env PMI_RANK=0 PMI_SIZE=2 "$tg" run "$graph" --scheduler=mpi --no-cache \
    --run-dir "$w/rundir" --rank-timeout 1 2>&1)
  same "a rank that never shows up (run directory): exit 2" 2 $?
  same "a rank that never shows up (run directory): the message" "tgraph: error: --scheduler=mpi: rank 1 of 2 did not show up in run directory '$w/rundir' within 1 s (no $w/rundir/tgraph-run-1.1)" "$out"
  same "a rank that never shows up: the driver's files are gone" "" "$(ls "$w/rundir")"

  out=$(timeout 60 "${mpirun[@]}" -n 1 "$tg" run "$graph" --scheduler=mpi --no-cache \
    --rank-timeout 2 : -n 1 sleep 30 2>&1)
  same "a rank that never shows up (PMIx): mpirun's exit status" 2 $?
  same "a rank that never shows up (PMIx): the message" 1 "$(printf '%s\n' "$out" |
    grep -cx "tgraph: error: --scheduler=mpi: not every one of the 2 ranks showed up within 2 s (are they all tgraph with --scheduler=mpi?)")"
  same "a rank that never shows up: no process left" "" "$(left "$w/tgmpi-bad")"

  # Ranks started by hand, meeting in a run directory.
  graph=$(slow_graph rundir 12 20)
  run_sync rundir "$graph"
  for r in 1 2; do
    PMI_RANK=$r PMI_SIZE=3 PMI_KVSNAME=hand "$tg" run "$graph" --scheduler=mpi \
      --run-dir "$w/rundir" >"$w/rank$r.out" 2>&1 &
  done
  PMI_RANK=0 PMI_SIZE=3 PMI_KVSNAME=hand "$tg" run "$graph" --scheduler=mpi --no-cache -q \
    --run-dir "$w/rundir" --output "$w/mpi-rundir" >"$w/mpi-rundir.list"
  same "run directory: the driver's exit status" 0 $?
  wait %1
  same "run directory: rank 1 exits 0" 0 $?
  wait %2
  same "run directory: rank 2 exits 0" 0 $?
  outputs_same "run directory" rundir "$w/sync-rundir" "$w/mpi-rundir"
  same "run directory: the workers print nothing" "" "$(cat "$w/rank1.out" "$w/rank2.out")"
  same "run directory: no file left in it" "" "$(ls "$w/rundir")"

  # What others may leave in a run directory: a FIFO where a rank's file
  # goes (reading it would block), and another user's file offering an
  # address (in a directory all may write to, as /tmp): refused with the
  # path and the reason, no hang (bounded by timeout 60), rank 1 exits 0,
  # rank 0's files (the run's keys) removed.
  hostile() { # NAME: ranks 0 and 1 of 3 by hand in $w/NAME; rank 0's stderr in $w/NAME.err
    for r in 1 0; do
      PMI_RANK=$r PMI_SIZE=3 PMI_KVSNAME=bad timeout 60 "$tg" run "$graph" --scheduler=mpi \
        --no-cache -q --run-dir "$w/$1" --rank-timeout 3 >/dev/null 2>"$w/$1.$r" &
    done
    wait %2; echo $? >"$w/$1.rc0"
    wait %1; echo $? >"$w/$1.rc1"
  }
  mkdir "$w/fifo" && mkfifo "$w/fifo/tgraph-bad-2.1" "$w/fifo/tgraph-bad-2.2"
  hostile fifo
  same "run directory with a FIFO: the driver's exit status" 2 "$(cat "$w/fifo.rc0")"
  same "run directory with a FIFO: said" \
    "tgraph: error: --scheduler=mpi: run directory '$w/fifo': rank 2's file '$w/fifo/tgraph-bad-2.2' not a regular file, refused" \
    "$(cat "$w/fifo.0")"
  same "run directory with a FIFO: rank 1 exits 0" 0 "$(cat "$w/fifo.rc1")"
  same "run directory with a FIFO: rank 0's files removed" "" "$(ls "$w/fifo" | grep -- -0\\.)"
  if [ "$(id -u)" -eq 0 ] && command -v setpriv >/dev/null; then
    chmod 0711 "$w" # (others pass through to it, as they reach /tmp; they cannot list $w)
    mkdir -m 1777 "$w/shared"
    setpriv --reuid=nobody --regid=nogroup --clear-groups sh -c \
      'umask 077; : >"$0/tgraph-bad-2.1"; printf "addr\ttcp://127.0.0.1:9\n" >"$0/tgraph-bad-2.2"' \
      "$w/shared"
    hostile shared
    same "another user's file in the run directory: the driver's exit status" 2 \
      "$(cat "$w/shared.rc0")"
    same "another user's file in the run directory: said" \
      "tgraph: error: --scheduler=mpi: run directory '$w/shared': rank 2's file '$w/shared/tgraph-bad-2.2' belongs to user $(id -u nobody), not to this one (0): refused" \
      "$(cat "$w/shared.0")"
    same "another user's file: rank 0's files removed" "" "$(ls "$w/shared" | grep -- -0\\.)"
  fi
  same "hostile run directories: no process left" "" "$(left "$w/(fifo|shared)")"
elif [ "$mode" = slurm ]; then
  for c in slurmctld slurmd munged srun; do
    if ! command -v $c >/dev/null; then
      echo "skipped: $c is not installed (apt-get install slurm-wlm munge)"
      exit 77
    fi
  done
  # Short: munge's socket path must fit a sockaddr_un.
  cluster=$(mktemp -d "${TMPDIR:-/tmp}/tg-slurm.XXXXXX")
  chmod 0755 "$cluster"
  script=$src/scripts/slurm-cluster.sh
  stop_cluster() {
    "$script" stop "$cluster" >/dev/null 2>&1 || bad "slurm-cluster.sh stop"
    local p l=""
    for p in $daemons; do kill -0 "$p" 2>/dev/null &&
      [ "$(cut -d' ' -f3 /proc/"$p"/stat 2>/dev/null)" != Z ] && l="$l $p"; done
    same "no Slurm daemon left" "" "$l"
    [ "$fail" -eq 0 ] && rm -rf "$cluster"
    cluster=""
  }
  if ! out=$("$script" start "$cluster" 2>&1); then
    cluster=""
    bad "slurm-cluster.sh start: $out"
    exit 1
  fi
  daemons=$("$script" status "$cluster" | awk '$3 == "running" { printf " %s", $2 }')
  export SLURM_CONF=$cluster/slurm.conf
  # Slurm's PMIx plugin makes one directory per step and host
  # (/tmp/spmix_appdir_UID_JOB.STEP): the nodes of this one-machine
  # cluster would share it, so PMIx steps run on one node (-N 1 -O), and
  # the steps over three nodes exchange through a run directory.
  srun_pmix=(srun -N 1 -n 4 -O --mpi=pmix)
  for g in pi distance; do
    run_sync "$g" "$src/examples/$g.json"
    timeout 120 "${srun_pmix[@]}" "$tg" run "$src/examples/$g.json" --scheduler=mpi \
      --no-cache -q --output "$w/mpi-$g" >"$w/mpi-$g.list"
    same "$g: srun -n 4 --mpi=pmix exit status" 0 $?
    outputs_same "$g (srun)" "$g" "$w/sync-$g" "$w/mpi-$g"
  done
  # --mpi=pmi2: Slurm's PMI-2 server answers PMI-1 clients too, on every
  # node, so no run directory is needed across nodes.
  timeout 120 srun -N 3 -n 4 --mpi=pmi2 "$tg" run "$src/examples/distance.json" \
    --scheduler=mpi --no-cache -q -v --output "$w/mpi-pmi2" >"$w/mpi-pmi2.list" \
    2>"$w/pmi2.err"
  same "srun -N 3 -n 4 --mpi=pmi2 exit status" 0 $?
  outputs_same "srun -N 3 -n 4 --mpi=pmi2" distance "$w/sync-distance" "$w/mpi-pmi2"
  same "srun --mpi=pmi2: every rank exchanges through PMI-1" "0 1 2 3" "$(grep -ao \
    'rank [0-3] of 4 (PMI), exchange through PMI-1' "$w/pmi2.err" | cut -d' ' -f2 | sort | xargs)"
  graph=$(slow_graph srun 24 20)
  run_sync srun "$graph"
  mkdir "$w/rundir"
  timeout 120 srun -N 3 -n 4 --mpi=none "$tg" run "$graph" --scheduler=mpi --no-cache -q \
    --run-dir "$w/rundir" --output "$w/mpi-srun" >"$w/mpi-srun.list"
  same "srun -N 3 -n 4 --run-dir exit status" 0 $?
  outputs_same "srun -N 3 -n 4 --run-dir" srun "$w/sync-srun" "$w/mpi-srun"
  same "srun -N 3 -n 4 --run-dir: no file left in it" "" "$(ls "$w/rundir")"
  out=$(timeout 60 srun -n 2 --mpi=none "$tg" run "$graph" --scheduler=mpi --no-cache 2>&1)
  same "srun without PMIx or --run-dir: exit status" 2 $?
  same "srun without PMIx or --run-dir: each rank says why" 2 "$(printf '%s\n' "$out" |
    grep -c "^tgraph: error: --scheduler=mpi: .*the ranks cannot find each other: the launcher runs no PMIx server (no PMIX_SERVER_URI\*; with srun use --mpi=pmix) nor a PMI-1 server (no PMI_FD or PMI_PORT); name a directory every rank sees (--run-dir) instead$")"
  # kill -9 of a worker rank under --kill-on-bad-exit=0: the driver
  # finishes with the same answer and exits 0 (srun's status is the worst
  # of its tasks': each rank records its own).
  # 48 tasks of 0.4 s on three ranks of two threads: about 3 s, so the kill
  # 1 s after the last rank listens falls after the driver has connected
  # to every rank (slower under load) and well before the end.
  graph=$(slow_graph skill 48 400)
  run_sync skill "$graph"
  timeout 120 "${srun_pmix[@]}" --kill-on-bad-exit=0 sh -c '"$0" "$@"; echo "rank $SLURM_PROCID exit $?" >>"'"$w"'/skill.status"' \
    "$tg" run "$graph" --scheduler=mpi --no-cache -v --output "$w/mpi-skill" \
    >"$w/mpi-skill.list" 2>"$w/skill.err" &
  srun_pid=$!
  same "srun: a worker rank found and killed" yes \
    "$(kill_rank2 "$w/skill.err" "$w/tgmpi-skill" SLURM_PROCID 20 1)"
  wait "$srun_pid"
  outputs_same "srun: kill -9 of a worker rank" skill "$w/sync-skill" "$w/mpi-skill"
  same "srun: kill -9: the driver and the other workers exit 0" "rank 0 exit 0
rank 1 exit 0
rank 2 exit 137
rank 3 exit 0" "$(sort "$w/skill.status")"
  same "srun: kill -9: one worker lost" 1 "$(grep -c ' 1 workers lost' "$w/skill.err")"
  same "srun: kill -9: no process of the run left" "" "$(left "$w/tgmpi-skill")"

  printf '{"tgraph": 1, "tasks": {"bad": {"fn": "sh", "args": ["exit 3"]}}, "outputs": ["bad"]}\n' \
    >"$w/tgmpi-fail.json"
  timeout 60 "${srun_pmix[@]}" "$tg" run "$w/tgmpi-fail.json" --scheduler=mpi \
    --no-cache >/dev/null 2>/dev/null
  same "a failed task: srun exits 1" 1 $?
  same "no process of the runs left" "" "$(left "$w/tgmpi-")"
elif [ "$mode" = hydra ]; then
  hydra=(mpiexec.hydra)
  for g in pi wordcount distance; do
    run_sync "$g" "$src/examples/$g.json"
    timeout 120 "${hydra[@]}" -n 4 "$tg" run "$src/examples/$g.json" --scheduler=mpi \
      --no-cache -q -v --output "$w/mpi-$g" >"$w/mpi-$g.list" 2>"$w/$g.err"
    same "$g: mpiexec.hydra -n 4 exit status" 0 $?
    outputs_same "$g (hydra)" "$g" "$w/sync-$g" "$w/mpi-$g"
    # (Hydra passes on what each rank writes as it comes: lines of several
    # ranks may interleave, hence no anchors.)
    same "$g: every rank exchanges through PMI-1" "0 1 2 3" "$(grep -ao \
      'rank [0-3] of 4 (PMI), exchange through PMI-1' "$w/$g.err" | cut -d' ' -f2 | sort | xargs)"
  done
  # -pmi-port: a tcp port instead of a socket, and no PMI_RANK or PMI_SIZE.
  timeout 120 "${hydra[@]}" -pmi-port -n 4 "$tg" run "$src/examples/pi.json" \
    --scheduler=mpi --no-cache -q --output "$w/mpi-port" >"$w/mpi-port.list"
  same "pi: mpiexec.hydra -pmi-port -n 4 exit status" 0 $?
  outputs_same "pi (hydra -pmi-port)" pi "$w/sync-pi" "$w/mpi-port"
  # The run's keys are made in memory, written nowhere: a TMPDIR that does
  # not exist is no matter.
  TMPDIR=$w/no-such-dir timeout 120 "${hydra[@]}" -n 3 "$tg" run "$src/examples/pi.json" \
    --scheduler=mpi --no-cache -q --output "$w/mpi-tmp" >"$w/mpi-tmp.list"
  same "TMPDIR missing: exit status" 0 $?
  outputs_same "TMPDIR missing" pi "$w/sync-pi" "$w/mpi-tmp"
  one_rank hone 12 20 "mpiexec.hydra -n 1" "${hydra[@]}"

  # The driver's exit status is mpiexec's.
  failed_task mpiexec.hydra "${hydra[@]}"

  graph=$(slow_graph hbad 2 1)
  out=$(timeout 60 "${hydra[@]}" -n 1 "$tg" run "$graph" --scheduler=mpi --no-cache \
    --rank-timeout 2 : -n 1 sleep 30 2>&1)
  # Hydra then kills the other program (SIGKILL) and reports either the
  # driver's status or that one's, whichever it collects first.
  rc=$?
  same "a rank that never shows up (PMI-1): mpiexec's exit status" yes \
    "$([ "$rc" = 2 ] || [ "$rc" = 9 ] && echo yes)"
  same "a rank that never shows up (PMI-1): the message" 1 "$(printf '%s\n' "$out" |
    grep -cF "error: --scheduler=mpi: not every one of the 2 ranks showed up within 2 s (are they all tgraph with --scheduler=mpi?)")"
  same "a rank that never shows up (PMI-1): no process left" "" "$(left "$w/tgmpi-hbad")"

  # A PMI server answering badly: rank 0 of 2 says what was wrong, within
  # --rank-timeout when the server says nothing.
  fake() {
    local t0 t1
    t0=$(date +%s%N)
    out=$(timeout 30 python3 "$src/tests/cluster/fake_pmi.py" "$1" "$tg" run "$graph" \
      --scheduler=mpi --no-cache --rank-timeout 1 2>&1)
    t1=$(date +%s%N)
    secs=$(((t1 - t0) / 1000000000))
  }
  e="tgraph: error: --scheduler=mpi: "
  fake garbage
  same "fake PMI server, not PMI: the message and exit status" "${e}the PMI server (PMI_FD=9) answered cmd=init of rank 0 with 'hello there', not cmd=response_to_init
2" "$out"
  fake version
  same "fake PMI server, PMI version 2: the message and exit status" "${e}the PMI server (PMI_FD=9) answered cmd=init of rank 0 with 'cmd=response_to_init rc=0 pmi_version=2 pmi_subversion=0': not PMI version 1
2" "$out"
  fake closed
  same "fake PMI server, closing: the message and exit status" "${e}the PMI server (PMI_FD=9) closed the connection before answering cmd=get_maxes of rank 0
2" "$out"
  fake refuse
  same "fake PMI server, refusing a put: the message and exit status" "${e}the PMI server (PMI_FD=9) refused cmd=put key=0.tg.wkey of rank 0: rc=-1 msg=kvs_full
2" "$out"
  fake mute
  same "fake PMI server, no answer to init: the message and exit status" "${e}the PMI server (PMI_FD=9) did not answer cmd=init of rank 0 within 1 s
2" "$out"
  same "fake PMI server, no answer to init: no hang" yes "$([ "$secs" -lt 5 ] && echo yes)"
  fake silent
  same "fake PMI server, no barrier_out: the message and exit status" "${e}not every one of the 2 ranks showed up within 1 s (are they all tgraph with --scheduler=mpi?)
2" "$out"
  same "fake PMI server, no barrier_out: no hang" yes "$([ "$secs" -lt 5 ] && echo yes)"
  # A worker rank told a value that is no key for rank 0's keys.
  fake badkey
  same "fake PMI server, a malformed key: the worker's message and exit status" "${e}rank 1: rank 0 sent a malformed key (not a Z85 key of 40 characters)
2" "$out"
  fake port-badset
  same "fake PMI server (port), a bad size: the message" yes "$(printf '%s\n' "$out" | grep -qx \
    "${e}the PMI server (PMI_PORT=127\.0\.0\.1:[0-9]*) answered cmd=initack of rank 0 with 'cmd=set size=x': no number size=" && echo yes)"
  same "fake PMI server (port), a bad size: exit status" 2 "$(printf '%s\n' "$out" | tail -1)"
  # The size the server tells (3) is the run's: rank 0 waits for 3 ranks.
  fake port-size
  same "fake PMI server (port): the size it tells is the run's" "${e}not every one of the 3 ranks showed up within 1 s (are they all tgraph with --scheduler=mpi?)
2" "$out"
  out=$(env -u OMPI_COMM_WORLD_RANK -u SLURM_PROCID -u PMIX_RANK PMI_RANK=0 PMI_SIZE=2 \
    PMI_FD=99 "$tg" run "$graph" --scheduler=mpi --no-cache 2>&1)
  same "PMI_FD not open: the message" "${e}PMI_FD=99 is not an open socket of this process (Bad file descriptor)" "$out"
elif [ "$mode" = bench ]; then
  # The first task writes the clock; t0 is read just before the launcher.
  printf '{"tgraph": 1, "tasks": {"first": {"fn": "sh", "args": ["date +%%s%%N >%s/first"]}}, "outputs": ["first"]}\n' \
    "$w" >"$w/tgmpi-bench.json"
  ms() { echo $((($1 - $2) / 1000000)); }
  median() { tr ' ' '\n' | grep . | sort -n | sed -n 3p; }
  # bench NAME LAUNCHER...: five runs of each, alternating.
  bench() {
    local name=$1 floor="" tg_ms="" i first f t
    shift
    for i in 1 2 3 4 5; do
      t0=$(date +%s%N)
      first=$("$@" -n 4 sh -c 'date +%s%N' | sort -n | head -1)
      floor="$floor $(ms "$first" "$t0")"
      rm -f "$w/first"
      t0=$(date +%s%N)
      "$@" -n 4 "$tg" run "$w/tgmpi-bench.json" --scheduler=mpi --no-cache -q >/dev/null
      same "bench run $i ($name)" 0 $?
      tg_ms="$tg_ms $(ms "$(cat "$w/first")" "$t0")"
    done
    f=$(echo "$floor" | median) t=$(echo "$tg_ms" | median)
    echo "$name -n 4, start to a rank's first instruction (ms):$floor; median $f"
    echo "$name -n 4, start to tgraph's first task running (ms):$tg_ms; median $t"
    same "first task within 1 s of the launcher's start ($name)" yes \
      "$([ "$t" -le 1000 ] && echo yes)"
  }
  bench mpirun "${mpirun[@]}"
  if command -v mpiexec.hydra >/dev/null; then bench mpiexec.hydra mpiexec.hydra; fi
else
  echo "usage: $0 mpirun|slurm|hydra|bench" >&2
  exit 2
fi
