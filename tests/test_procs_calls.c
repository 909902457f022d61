/* tests/test_procs_calls.c: what a processes worker promises whichever
 * of its threads calls its tasks (its pool's, or the one that reads its
 * parent's messages, which then reads nothing during a call):
 *   - a task polling tg_task_cancelled() sees its run cancelled while it
 *     runs (no message can reach it then) and returns; its worker is not
 *     killed for it and serves on;
 *   - a call longer than the heartbeat (10 s) does not lose its worker;
 *   - a long chain and a wide fan-out give sync's results, on workers
 *     that are never replaced;
 *   - a task runs under SCHED_BATCH (a message waking its worker does not
 *     preempt the parent's I/O thread), the parent as it was.
 * Tasks report through memory shared before the workers are forked. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "test_funcs.h"

typedef struct shared {
  atomic_int polite_pid;   /* the worker calling polite() */
  atomic_int polite_saw;   /* polite() saw its run cancelled */
  atomic_int nap_pid;      /* the worker calling nap() */
} shared;

static shared *S;
static tg_registry *reg;
static tg_graph *g;

/* Polls tg_task_cancelled() every millisecond for up to 20 s; records
 * its pid and whether it saw the cancellation. */
static int f_polite(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)a, (void)n;
  atomic_store(&S->polite_pid, (int)getpid());
  for (int i = 0; i < 20000; i++) {
    if (tg_task_cancelled(c)) {
      atomic_store(&S->polite_saw, 1);
      return TG_ECANCELED;
    }
    tgt_sleep_ms(1);
  }
  *o = tg_int(0);
  return TG_OK;
}

/* Sleeps args[0] ms without looking at anything; returns its pid. */
static int f_nap(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)n;
  atomic_store(&S->nap_pid, (int)getpid());
  tgt_sleep_ms((long)tg_value_int(a[0]));
  *o = tg_int(getpid());
  return TG_OK;
}

/* The scheduling policy of the thread calling it. */
static int f_policy(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c, (void)a, (void)n;
  *o = tg_int(sched_getscheduler(0));
  return TG_OK;
}

static void add_fn(const char *name, tg_task_fn fn, int nargs, unsigned flags) {
  cr_assert_eq(tgt_add(reg, name, fn, nargs, flags), TG_OK, "%s", name);
}

static void setup(void) {
  S = mmap(NULL, sizeof *S, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(S, MAP_FAILED);
  reg = tgt_registry_new();
  cr_assert_not_null(reg);
  add_fn("polite", f_polite, 0, 0);
  add_fn("nap", f_nap, 1, 0);
  add_fn("pid", tgt_fn_pid, -1, 0);
  add_fn("policy", f_policy, 1, 0);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
}

static void teardown(void) {
  tg_graph_free(g);
  tg_registry_free(reg);
  munmap(S, sizeof *S);
}

static tg_executor *pool(unsigned workers) {
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "processes",
                         .workers = workers};
  tg_executor *ex = NULL;
  tg_error err;
  cr_assert_eq(tg_executor_new(reg, &eo, &ex, &err), TG_OK, "%s", err.msg);
  return ex;
}

static int compute_on(tg_executor *ex, tg_node out, tg_value **res) {
  tg_compute_opts o = tgt_opts(NULL, 0, NULL);
  o.executor = ex;
  return tg_compute(g, &out, 1, &o, res);
}

/* Whether pid is a child of this process (a worker not replaced). */
static bool is_child(pid_t pid) {
  DIR *d = opendir("/proc/self/task");
  bool found = false;
  for (struct dirent *e; d && !found && (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char path[300];
    snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
    FILE *f = fopen(path, "r");
    int p;
    while (f && !found && fscanf(f, "%d", &p) == 1) found = p == pid;
    if (f) fclose(f);
  }
  if (d) closedir(d);
  return found;
}

/* The list of the results of n calls fn(i), i = 0..n-1 (n <= 64), computed
 * on ex. */
static tg_value *calls_on(tg_executor *ex, const char *fn, int n) {
  tg_arg args[64];
  cr_assert_leq(n, 64);
  for (int i = 0; i < n; i++) args[i] = tg_arg_node(tg_call(g, fn, 1, tg_arg_value(tg_int(i))));
  tg_node all = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "pack", args, (size_t)n, NULL, &all), TG_OK);
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, all, &v), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tg_list_len(v), (size_t)n);
  return v;
}

/* The distinct pids among the results of 64 pid() tasks: the workers. */
static int workers_seen(tg_executor *ex, pid_t *out, int max) {
  tg_value *v = calls_on(ex, "pid", 64);
  int n = 0;
  for (size_t i = 0; i < tg_list_len(v); i++) {
    pid_t p = (pid_t)tg_value_int(tg_list_get(v, i));
    bool seen = false;
    for (int k = 0; k < n; k++) seen |= out[k] == p;
    if (!seen && n < max) out[n++] = p;
  }
  tg_value_unref(v);
  return n;
}

Test(procs_calls, cancellation_seen_inside_a_call, .init = setup, .fini = teardown) {
  tg_executor *ex = pool(2);
  tg_node slow = tg_call(g, "polite", 0);
  tg_node fail = tg_call(g, "fail", 0);
  tg_node out = tg_call(g, "add", 2, tg_arg_node(slow), tg_arg_node(fail));
  double t0 = tgt_now();
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, out, &v), TG_ETASK);
  cr_assert_str_eq(tg_graph_errmsg(g), "task 'fail#1' failed: TG_EINVAL: always fails");
  /* The parent's word reaches the call: polite() returns by itself. */
  for (int i = 0; i < 5000 && !atomic_load(&S->polite_saw); i++) tgt_sleep_ms(1);
  cr_assert_eq(atomic_load(&S->polite_saw), 1, "the call did not see its run cancelled");
  cr_assert_lt(tgt_now() - t0, 2.0);
  pid_t pid = atomic_load(&S->polite_pid);
  cr_assert_gt(pid, 0);
  /* Past the grace after which a worker still in a given-up call is
   * killed: this one returned, it lives on and serves. */
  tgt_sleep_ms(800);
  cr_assert(is_child(pid), "worker %d was replaced", (int)pid);
  pid_t w[8];
  int n = workers_seen(ex, w, 8);
  cr_assert(n >= 1 && n <= 2, "%d workers", n);
  for (int i = 0; i < n; i++) cr_assert(is_child(w[i]));
  tg_executor_free(ex);
}

/* The heartbeat of processes is 10 s; a call of 11 s keeps its worker. */
Test(procs_calls, call_longer_than_the_heartbeat, .init = setup, .fini = teardown) {
  tg_executor *ex = pool(1);
  tg_node n = tg_call(g, "nap", 1, tg_arg_value(tg_int(11000)));
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, n, &v), TG_OK, "%s", tg_graph_errmsg(g));
  pid_t pid = atomic_load(&S->nap_pid);
  cr_assert_eq(tg_value_int(v), pid);
  tg_value_unref(v);
  pid_t w[4];
  cr_assert_eq(workers_seen(ex, w, 4), 1);
  cr_assert_eq(w[0], pid, "the worker was replaced");
  tg_executor_free(ex);
}

/* A chain of 5,000 links and a fan-out of 5,000 below it: sync's result,
 * and the two workers that started are the ones that end. */
Test(procs_calls, chain_and_fanout_equal_sync, .init = setup, .fini = teardown) {
  enum { N = 5000 };
  tg_executor *ex = pool(2);
  pid_t before[4];
  int nb = workers_seen(ex, before, 4);
  tg_node x = tg_call(g, "inc", 1, tg_arg_value(tg_int(0)));
  for (int i = 1; i < N; i++) x = tg_call(g, "inc", 1, tg_arg_node(x));
  tg_arg *args = malloc(N * sizeof *args);
  for (int i = 0; i < N; i++)
    args[i] = tg_arg_node(tg_call(g, "add", 2, tg_arg_node(x), tg_arg_value(tg_int(i))));
  tg_node sum = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "sum_args", args, N, NULL, &sum), TG_OK);
  free(args);
  tg_value *v = NULL;
  cr_assert_eq(compute_on(ex, sum, &v), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tg_value_int(v), (int64_t)N * N + (int64_t)N * (N - 1) / 2);
  tg_value_unref(v);
  for (int i = 0; i < nb; i++) cr_assert(is_child(before[i]), "worker %d was replaced",
                                         (int)before[i]);
  tg_executor_free(ex);
}

/* Whether this process may make a thread a batch thread (a sandbox may
 * refuse it: the workers then run as they are). Tried in a child. */
static bool batch_allowed(void) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    struct sched_param none = {0};
    _exit(sched_setscheduler(0, SCHED_BATCH, &none) == 0 ? 0 : 1);
  }
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/* Every call, on either worker, runs under SCHED_BATCH; the parent's
 * calling thread keeps its policy. */
Test(procs_calls, workers_are_batch_processes, .init = setup, .fini = teardown) {
  if (!batch_allowed()) cr_skip_test("sched_setscheduler(SCHED_BATCH) is not allowed here");
  enum { N = 16 };
  int before = sched_getscheduler(0);
  tg_executor *ex = pool(2);
  tg_value *v = calls_on(ex, "policy", N);
  for (size_t i = 0; i < N; i++)
    cr_assert_eq(tg_value_int(tg_list_get(v, i)), SCHED_BATCH, "call %zu", i);
  tg_value_unref(v);
  cr_assert_eq(sched_getscheduler(0), before);
  tg_executor_free(ex);
}
