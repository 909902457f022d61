#!/bin/bash
# tests/cluster/test_slurm.sh MODE: the single-machine Slurm cluster of
# scripts/slurm-cluster.sh, started, used and stopped; the basic and
# timelimit modes test the cluster itself, the run_* modes `tgraph run
# --scheduler=slurm` on it.
#
#   basic      start; status; srun over the three nodes and over four
#              tasks; a job array of three; scancel --signal=USR1 reaching
#              a batch script; scancel; stop, leaving none of the
#              daemons' processes (checked by PID). Well under 60 s.
#   timelimit  a job of --time=1 warned with --signal=B:USR1@45 and then
#              ended at its limit (Slurm checks limits every 30 s or so:
#              this takes 60 to 100 s).
#   run_answer     --jobs 3 gives sync's answers on examples/pi.json and
#                  distance.json, removes its run directory and leaves no
#                  job; the errors: no --jobs, sbatch refusing a bad
#                  --job-opt, every job failing (the run stops, its logs
#                  kept), jobs pending (their reason said; SIGTERM cancels
#                  them), sbatch not in PATH, --jobs without slurm.
#   run_kill       kill -9 of a worker job's tgraph mid-run: same answer.
#   run_drain      scancel --signal=TERM of a worker job mid-run: it
#                  drains at once (its job COMPLETED, no worker lost, no
#                  task sent again) and the run goes on to the right
#                  answer; scancel --signal=USR1 of another: it drains
#                  within a window (its log says so). (run_limit: the
#                  window's tasks.)
#   run_limit      a worker job's time limit (scontrol: 1 minute) reached
#                  mid-run: warned by --signal, it drains, reading its
#                  time left from Slurm, goes on taking tasks that end in
#                  it, and its job completes before the limit; the answer
#                  is right, no worker lost, no task sent again (~110 s).
#   run_interrupt  SIGINT to tgraph run mid-run: exit 130, its jobs
#                  cancelled (squeue lists none) and no process left.
#   run_polls      a run of 30 s or more calls squeue (wrapped through
#                  PATH to count) at most once per 10 s.
#
# Skipped (exit 77) only when Slurm or munge is missing and this is not
# root; as root the script installs them. Ends with "slurm_cluster: N
# passed, M failed" (basic), "slurm_timelimit: ..." or "slurm_MODE: ...".
# Environment: TG_SOURCE_ROOT, TGRAPH_BIN (run_* modes).
# Job commands are in single quotes on purpose: the job expands them.
# shellcheck disable=SC2016
set -u
mode=${1:-basic}
case $mode in
  basic) name=cluster ;;
  timelimit) name=timelimit ;;
  run_answer | run_kill | run_drain | run_limit | run_interrupt | run_polls) name=$mode ;;
  *) echo "usage: $0 basic|timelimit|run_answer|run_kill|run_drain|run_limit|run_interrupt|run_polls" >&2
    exit 2 ;;
esac
# shellcheck source=../checks.sh
. "$(dirname "$0")/../checks.sh"

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
    if out=$("$script" stop "$dir" 2>&1); then ok "stop"; else bad "stop"; fi
    [ -z "$out" ] || printf '%s\n' "$out"
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
  [ "$fail" -eq 0 ] || exit 1 # (a bare exit in a trap keeps the status before it)
  rm -rf "$dir"
  exit 0
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
elif [ "$mode" = timelimit ]; then
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

# ---- tgraph run --scheduler=slurm -------------------------------------------

tg=${TGRAPH_BIN:-}
src=$TG_SOURCE_ROOT

# slow_graph FILE N MS: N pure tasks num.slow(i, MS) (i * i after MS ms)
# and their sum, the output "total"; prints the expected answer.
slow_graph() {
  local i refs="" tasks=""
  for ((i = 0; i < $2; i++)); do
    tasks="$tasks\"s$i\": {\"fn\": \"num.slow\", \"args\": [$i, $3]}, "
    refs="$refs${refs:+, }{\"ref\": \"s$i\"}"
  done
  printf '{"tgraph": 1, "plugins": ["numeric"], "tasks": {%s"total": {"fn": "sum", "args": [[%s]]}}, "outputs": ["total"]}\n' \
    "$tasks" "$refs" >"$1"
  echo "{\"total\":$(($2 * ($2 - 1) * (2 * $2 - 1) / 6))}"
}

# The run directory and the array's job id, from the run's stderr FILE
# ("tgraph: slurm: submitted N worker jobs (array ID); run directory DIR").
run_dir_of() { sed -n 's/^tgraph: slurm: submitted .*; run directory //p' "$1"; }
array_of() { sed -n 's/^tgraph: slurm: submitted .*(array \([0-9]*\)).*/\1/p' "$1"; }

# wait_for SECONDS COMMAND...: until COMMAND succeeds (every 0.1 s).
wait_for() {
  local n=$(($1 * 10))
  shift
  until "$@" >/dev/null 2>&1; do
    n=$((n - 1))
    [ $n -gt 0 ] || return 1
    sleep 0.1
  done
}

# listening ERRFILE N: the run's N workers have said their addresses.
listening() {
  local d
  d=$(run_dir_of "$1")
  [ -n "$d" ] && [ "$(cat "$d"/worker-*.out 2>/dev/null | grep -c '^listening on ')" -ge "$2" ]
}

# The tgraph worker process of array index I of run directory D.
worker_pid() {
  local p
  for p in $(pgrep -f -- "--keys $1/keys/worker"); do
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = tgraph ] &&
      tr '\0' '\n' <"/proc/$p/environ" 2>/dev/null | grep -qx "SLURM_ARRAY_TASK_ID=$2" &&
      echo "$p"
  done
}

no_jobs() { [ -z "$(squeue -h 2>/dev/null)" ]; }
# No process whose command line names a run directory under the work dir.
no_run_process() { ! pgrep -f -- "$work/tgraph-slurm-" >/dev/null && ! pgrep -f -- "$work/rd" >/dev/null; }

# job_state ID: JobState=... of a job the controller still knows.
job_state() { scontrol show job "$1" 2>/dev/null | grep -o 'JobState=[A-Z_]*' | head -1; }

# job_end ID SECONDS: its JobState=... once it is neither pending,
# running nor completing (read at once: the controller forgets it 30 s
# after its end). SIGNALING, CONFIGURING and STAGE_OUT are a live job's
# passing flags (scontrol shows SIGNALING while the --signal warning is
# being delivered), not an end.
job_end() {
  local n=$(($2 * 10)) st
  st=$(job_state "$1")
  while case $st in *=PENDING | *=RUNNING | *=COMPLETING | *=SIGNALING | *=CONFIGURING | *=STAGE_OUT) true ;; *) false ;; esac && [ $n -gt 0 ]; do
    sleep 0.1
    n=$((n - 1))
    st=$(job_state "$1")
  done
  echo "$st"
}

# start_run NAME ARGS...: tgraph run ARGS in the background, stdout and
# stderr into NAME.out and NAME.err; its pid in run_pid.
start_run() {
  local name=$1
  shift
  # Job control: without it bash starts background commands with SIGINT
  # ignored, and tgraph leaves a signal ignored at start ignored.
  set -m
  "$tg" run --no-cache "$@" >"$name.out" 2>"$name.err" &
  run_pid=$!
  set +m
}

# finish_run NAME SECONDS: wait for the run started by start_run; its
# exit status in run_rc (124 after SECONDS: then it is killed).
finish_run() {
  local n=$(($2 * 10)) t0
  t0=$(date +%s%N)
  while kill -0 "$run_pid" 2>/dev/null && [ $n -gt 0 ]; do sleep 0.1; n=$((n - 1)); done
  if kill -0 "$run_pid" 2>/dev/null; then
    kill -KILL "$run_pid"
    wait "$run_pid"
    run_rc=124
  else
    wait "$run_pid"
    run_rc=$?
  fi
  echo "$1: the run ended $(since "$t0") s after finish_run"
  [ "$run_rc" -eq 0 ] || { echo "--- $1.err"; cat "$1.err"; }
}

case $mode in
  run_answer)
    for g in pi distance; do
      want=$("$tg" run --no-cache -q "$src/examples/$g.json" --scheduler=sync)
      t0=$(date +%s%N)
      got=$("$tg" run --no-cache "$src/examples/$g.json" --scheduler=slurm --jobs 3 2>"$dir/$g.err")
      same "$g.json: exit status" 0 $?
      echo "$g.json on 3 worker jobs took $(since "$t0") s"
      same "$g.json: sync's answer" "$want" "$got"
      same "$g.json: the run directory is removed" "" "$(ls -d tgraph-slurm-* 2>/dev/null)"
      if wait_for 15 no_jobs; then ok "$g.json: no job left"; else bad "$g.json: jobs left: $(squeue -h)"; fi
    done
    out=$("$tg" run "$src/examples/pi.json" --scheduler=slurm 2>&1)
    same "no --jobs: exit status" 2 $?
    same "no --jobs: message" "tgraph: error: --scheduler=slurm needs --jobs N: the number of worker jobs to submit" "$out"
    out=$("$tg" run --no-cache "$src/examples/pi.json" --scheduler=slurm --jobs 2 --job-opt=--partition=nosuch 2>&1)
    same "sbatch refuses: exit status" 2 $?
    same "sbatch refuses: its message" "tgraph: error: sbatch refused the worker jobs (exit status 1): sbatch: error: invalid partition specified: nosuch
sbatch: error: Batch job submission failed: Invalid partition name specified" "$out"
    same "sbatch refuses: nothing left in the directory" "" "$(ls)"
    out=$("$tg" run --no-cache "$src/examples/pi.json" --scheduler=slurm --jobs 2 \
      --job-opt=--output=/nonexistent/w.out 2>&1)
    same "every job failed: exit status" 1 $?
    d=$(ls -d "$work"/tgraph-slurm-*)
    id=$(array_of <(printf '%s\n' "$out"))
    same "every job failed: said, the logs kept" "tgraph: slurm: submitted 2 worker jobs (array $id); run directory $d
tgraph: error: slurm: every worker job has ended and no worker is left (array $id): see $d/worker-*.err
tgraph: slurm: worker logs kept in $d" "$out"
    rm -rf "$d"
    # Jobs that cannot start yet: their reason said once, SIGTERM ends the
    # run and cancels them.
    start_run later "$src/examples/pi.json" --scheduler=slurm --jobs 2 --job-opt=--begin=now+1hour
    wait_for 30 grep -q "is pending" later.err
    id=$(array_of later.err)
    kill -TERM "$run_pid"
    finish_run later 60
    same "pending jobs: SIGTERM's exit status" 143 "$run_rc"
    same "pending jobs: each reason said once" "tgraph: warning: slurm: worker job ${id}_0 is pending: BeginTime
tgraph: warning: slurm: worker job ${id}_1 is pending: BeginTime" "$(grep "is pending" later.err | sort)"
    if wait_for 15 no_jobs; then ok "pending jobs: cancelled"; else bad "pending jobs: left: $(squeue -h)"; fi
    rm -rf later.out later.err "$work"/tgraph-slurm-*
    out=$(PATH=/nonexistent "$tg" run --no-cache "$src/examples/pi.json" --scheduler=slurm --jobs 2 2>&1)
    same "no sbatch: exit status" 2 $?
    same "no sbatch: message" "tgraph: error: --scheduler=slurm: 'sbatch' is not in PATH: run on a host where Slurm's commands (sbatch, squeue, scancel) are installed" "$out"
    out=$("$tg" run "$src/examples/pi.json" --jobs 2 2>&1)
    same "--jobs without slurm: exit status" 2 $?
    same "--jobs without slurm: message" "tgraph run: --jobs and --job-opt go with --scheduler=slurm, --run-dir with --scheduler=slurm or mpi
(see tgraph run --help)" "$out"
    out=$("$tg" run "$src/examples/pi.json" --run-dir "$work/rd" 2>&1)
    same "--run-dir without slurm or mpi: exit status" 2 $?
    same "--run-dir without slurm or mpi: message" "tgraph run: --jobs and --job-opt go with --scheduler=slurm, --run-dir with --scheduler=slurm or mpi
(see tgraph run --help)" "$out"
    ;;
  run_kill)
    want=$(slow_graph slow.json 30 1000)
    start_run kill slow.json --scheduler=slurm --jobs 3
    wait_for 30 listening kill.err 3 || bad "three workers listening"
    sleep 2
    d=$(run_dir_of kill.err)
    p=$(worker_pid "$d" 1)
    same "one tgraph worker in job 1" 1 "$(echo "$p" | wc -w)"
    kill -KILL $p
    finish_run kill 120
    same "kill -9 of a worker: exit status" 0 "$run_rc"
    same "kill -9 of a worker: the answer" "$want" "$(cat kill.out)"
    if wait_for 15 no_jobs; then ok "no job left"; else bad "jobs left: $(squeue -h)"; fi
    ;;
  run_drain)
    want=$(slow_graph slow.json 30 1000)
    start_run drain slow.json --scheduler=slurm --jobs 3 --run-dir rd -v
    wait_for 30 listening drain.err 3 || bad "three workers listening"
    sleep 2
    id=$(array_of drain.err)
    scancel --signal=TERM "${id}_1"
    # USR1 (what sbatch --signal sends) drains within a window: the
    # worker says so and goes on with the tasks that fit in it.
    scancel --signal=USR1 "${id}_2"
    same "the drained job ends on its own" "JobState=COMPLETED" "$(job_end "${id}_1" 30)"
    finish_run drain 120
    same "scancel --signal=USR1: the worker drains within a window" 1 \
      "$(grep -c '^tgraph worker: leaving: new tasks only for [0-9.]* s' rd/worker-2.err)"
    same "drain: exit status" 0 "$run_rc"
    same "drain: the answer" "$want" "$(cat drain.out)"
    same "drain: no worker lost, no task sent again" 1 \
      "$(grep -c ' 0 workers lost, 0 tasks retried' drain.err)"
    same "drain: the keys are removed, the logs kept" "worker-0.err worker-0.out worker-1.err worker-1.out worker-2.err worker-2.out worker.sh" \
      "$(cd rd && echo *)"
    ;;
  run_limit)
    # 250 s of work for three workers of one CPU (~100 s): the run goes on
    # well past the drained job's limit, so that the job leaves mid-run,
    # not with the run's end.
    want=$(slow_graph slow.json 100 2500)
    start_run limit slow.json --scheduler=slurm --jobs 3 --run-dir rd -v --retries 0
    wait_for 30 listening limit.err 3 || bad "three workers listening"
    id=$(array_of limit.err)
    t0=$(date +%s%N)
    scontrol update JobId="${id}_0" TimeLimit=1
    # Warned at the controller's next look at limits (up to ~30 s), the
    # worker drains and its job completes, before the limit, mid-run.
    st=$(job_end "${id}_0" 120)
    echo "job ${id}_0 ended $(since "$t0") s after its limit was set: $st"
    finish_run limit 240
    echo "the run took $(since "$t0") s after the time limit was set"
    same "time limit: the job drained before its limit" "JobState=COMPLETED" "$st"
    same "time limit: exit status" 0 "$run_rc"
    same "time limit: the answer" "$want" "$(cat limit.out)"
    same "time limit: no worker lost, no task sent again" 1 \
      "$(grep -c ' 0 workers lost, 0 tasks retried' limit.err)"
    # Warned with less than --signal's lead left (the limit was lowered),
    # the worker took the job's time left from Slurm as its window (not
    # --drain-time's 180 s) and went on taking tasks in it (-v lines).
    grep -E '^tgraph worker: (Slurm job|leaving|left|cannot read)' rd/worker-0.err
    same "time limit: the worker read its time left from Slurm" 1 \
      "$(grep -cE '^tgraph worker: Slurm job [0-9]+ has [0-9]+ s left$' rd/worker-0.err)"
    same "time limit: its window is that time left" 1 \
      "$(grep -cE '^tgraph worker: leaving: new tasks only for [1-5]?[0-9]\.[0-9] s; ' rd/worker-0.err)"
    same "time limit: the drained worker took tasks after its warning" 1 \
      "$(grep -cE '^tgraph worker: left: [1-9][0-9]* tasks? taken while leaving$' rd/worker-0.err)"
    ;;
  run_interrupt)
    slow_graph slow.json 60 1000 >/dev/null
    start_run int slow.json --scheduler=slurm --jobs 3
    wait_for 30 listening int.err 3 || bad "three workers listening"
    sleep 2
    kill -INT "$run_pid"
    finish_run int 60
    same "SIGINT: exit status" 130 "$run_rc"
    same "SIGINT: said" 1 "$(grep -c '^tgraph: interrupted: ' int.err)"
    if wait_for 15 no_jobs; then ok "SIGINT: the jobs are cancelled"; else bad "SIGINT: jobs left: $(squeue -h)"; fi
    if wait_for 15 no_run_process; then ok "SIGINT: no process left"; else
      bad "SIGINT: processes left: $(pgrep -af -- "$work/tgraph-slurm-")"; fi
    ;;
  run_polls)
    want=$(slow_graph slow.json 36 2500)
    mkdir "$dir/bin"
    printf '#!/bin/sh\necho "$(date +%%s.%%N)" >>%s/squeue.calls\nexec %s "$@"\n' "$dir" \
      "$(command -v squeue)" >"$dir/bin/squeue"
    chmod +x "$dir/bin/squeue"
    t0=$(date +%s%N)
    PATH=$dir/bin:$PATH start_run polls slow.json --scheduler=slurm --jobs 3
    finish_run polls 180
    secs=$((($(date +%s%N) - t0) / 1000000000))
    calls=$(wc -l <"$dir/squeue.calls")
    echo "squeue: $calls calls in $secs s"
    same "polls: exit status" 0 "$run_rc"
    same "polls: the answer" "$want" "$(cat polls.out)"
    same "polls: the run took 30 s or more" 1 $((secs >= 30))
    same "polls: squeue used, at most once per 10 s" 1 $((calls >= 1 && calls <= 1 + secs / 10))
    ;;
esac
