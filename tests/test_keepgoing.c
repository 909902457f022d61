/* tests/test_keepgoing.c: keeping going past failed tasks
 * (tg_compute_opts.keep_going, tgraph run -k) and the exact accounting of
 * failures, cancellations, timeouts and retries, on every backend: sync,
 * threads, processes, and tcp (workers forked by the test, serving its
 * functions with tg_worker_serve), through the C API and the CLI. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include "test_cli_util.h"
#include "test_funcs.h"
#include "tgraph.h"

/* ---- functions shared with forked workers ------------------------------------------ */

/* In a shared mapping made before any worker forks, so a task in a
 * worker process and one in the test's see the same flag. */
typedef struct shared {
  _Atomic int held; /* a "hold" call has started */
} shared;
static shared *sh;

/* hold(): marks itself started, then waits to be cancelled (30 s at
 * most, a result then). */
static int fn_hold(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)a, (void)n;
  atomic_store(&sh->held, 1);
  for (int i = 0; i < 30000; i++) {
    if (tg_task_cancelled(ctx)) return tg_task_fail(ctx, TG_ECANCELED, "gave up");
    tgt_sleep_ms(1);
  }
  *out = tg_int(1);
  return TG_OK;
}

/* fail_when_held(): fails once a hold call is under way (so that the
 * failure finds it running), or after 30 s. */
static int fn_fail_when_held(tg_task_ctx *ctx, tg_value *const *a, size_t n,
                             tg_value **out) {
  (void)a, (void)n, (void)out;
  for (int i = 0; i < 30000 && !atomic_load(&sh->held); i++) tgt_sleep_ms(1);
  return tg_task_fail(ctx, TG_EINVAL, "broke while hold ran");
}

static tg_registry *make_reg(void) {
  tg_registry *r = tgt_registry_new();
  cr_assert_not_null(r);
  tg_func_def d1 = {TG_FUNC_DEF_V1, "hold", "1", fn_hold, 0, 0, NULL, NULL, 0, NULL, NULL};
  tg_func_def d2 = {TG_FUNC_DEF_V1, "fail_when_held", "1", fn_fail_when_held, 0, 0, NULL, NULL, 0, NULL, NULL};
  cr_assert_eq(tg_registry_add(r, &d1, NULL), TG_OK);
  cr_assert_eq(tg_registry_add(r, &d2, NULL), TG_OK);
  return r;
}

/* ---- backends ------------------------------------------------------------------------ */

static tg_registry *reg;
static pid_t worker_pid;
static char worker_ep[128];

static void worker_child(int fd) {
  tg_registry *r = make_reg();
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                      .nthreads = 4, .stop = tproc_stop_on_term(),
                      .on_ready = tproc_say_ready, .ctx = &fd};
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_worker_serve(r, &o, &err);
  if (rc) dprintf(fd, "ERROR %s\n", err.msg);
  _exit(rc ? 1 : 0);
}

static void start_worker(void) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  worker_pid = tproc_fork();
  if (worker_pid == 0) {
    close(p[0]);
    worker_child(p[1]);
  }
  close(p[1]);
  tproc_read_line(p[0], worker_ep, sizeof worker_ep, 20);
  close(p[0]);
  cr_assert(strncmp(worker_ep, "tcp://", 6) == 0, "worker said '%s'", worker_ep);
}

static void setup(void) {
  sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(sh, MAP_FAILED);
  reg = make_reg();
}

static void teardown(void) {
  if (worker_pid > 0) {
    kill(worker_pid, SIGKILL);
    waitpid(worker_pid, NULL, 0);
    worker_pid = 0;
  }
  tg_registry_free(reg);
  munmap(sh, sizeof *sh);
}

TestSuite(keepgoing, .init = setup, .fini = teardown, .timeout = 240);

typedef struct backend {
  const char *name;
  unsigned workers;
} backend;

static const backend backends[] = {{"sync", 1},      {"threads", 1}, {"threads", 4},
                                   {"processes", 2}, {"tcp", 4}};
#define NBACKENDS (sizeof backends / sizeof backends[0])

/* An executor for b (the caller frees it), on tcp connected to the
 * test's worker, which is started on first use. */
static tg_executor *executor_for(const backend *b) {
  const char *addr[1];
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = b->name,
                        .workers = b->workers};
  if (strcmp(b->name, "tcp") == 0) {
    if (worker_pid == 0) start_worker();
    addr[0] = worker_ep;
    o.connect = addr;
    o.nconnect = 1;
  }
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &o, &ex, &err), TG_OK, "%s: %s", b->name, err.msg);
  return ex;
}

static tg_compute_opts v4_opts(tg_executor *ex, tg_compute_stats *st, tg_node *failed) {
  tg_compute_opts o;
  memset(&o, 0, sizeof o);
  o.version = TG_COMPUTE_OPTS_V4;
  o.executor = ex;
  o.stats = st;
  o.keep_going = true;
  o.failed = failed;
  return o;
}

static tg_node keyed(tg_graph *g, const char *fn, const char *key, const tg_arg *args,
                     size_t n, int retries, double timeout) {
  tg_node_opts o = {TG_NODE_OPTS_V1, key, retries, -1, timeout, 0};
  tg_node id = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, fn, args, n, &o, &id), TG_OK, "%s", tg_graph_errmsg(g));
  return id;
}

/* Every task is counted once: cached, skipped, failed, cancelled or
 * finished (finished = the rest, at least 0). */
static void expect_stats(const tg_compute_stats *st, const char *be, size_t total,
                         size_t run, size_t failed, size_t cancelled, size_t cached,
                         size_t skipped) {
  cr_expect_eq(st->tasks_total, total, "%s: total %zu", be, st->tasks_total);
  cr_expect_eq(st->tasks_run, run, "%s: run %zu", be, st->tasks_run);
  cr_expect_eq(st->tasks_failed, failed, "%s: failed %zu", be, st->tasks_failed);
  cr_expect_eq(st->tasks_cancelled, cancelled, "%s: cancelled %zu", be, st->tasks_cancelled);
  cr_expect_eq(st->tasks_cached, cached, "%s: cached %zu", be, st->tasks_cached);
  cr_expect_eq(st->tasks_skipped, skipped, "%s: skipped %zu", be, st->tasks_skipped);
  cr_expect_geq(st->tasks_total, cached + skipped + failed + cancelled, "%s", be);
}

/* ---- keep going ---------------------------------------------------------------------- */

/* a -> {bad, c} -> d: the failing branch takes d; c is returned. */
Test(keepgoing, diamond_returns_the_independent_output_on_every_backend) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = keyed(g, "add", "a", (tg_arg[]){tg_arg_value(tg_int(1)), tg_arg_value(tg_int(2))},
                    2, -1, 0);
  tg_node bad = keyed(g, "fail", "bad", (tg_arg[]){tg_arg_node(a)}, 1, -1, 0);
  tg_node c = keyed(g, "inc", "c", (tg_arg[]){tg_arg_node(a)}, 1, -1, 0);
  tg_node d = keyed(g, "add", "d", (tg_arg[]){tg_arg_node(bad), tg_arg_node(c)}, 2, -1, 0);
  tg_node outs[3] = {d, c, a};
  for (size_t b = 0; b < NBACKENDS; b++) {
    const char *be = backends[b].name;
    tg_executor *ex = executor_for(&backends[b]);
    tg_compute_stats st;
    tg_node failed[3] = {0, 0, 0};
    tg_compute_opts o = v4_opts(ex, &st, failed);
    tg_value *res[3];
    cr_expect_eq(tg_compute(g, outs, 3, &o, res), TG_ETASK, "%s", be);
    cr_expect_str_eq(tg_graph_errmsg(g), "task 'bad' failed: TG_EINVAL: always fails", "%s", be);
    cr_expect_null(res[0], "%s", be);
    cr_assert_not_null(res[1], "%s", be);
    cr_assert_not_null(res[2], "%s", be);
    cr_expect_eq(tg_value_int(res[1]), 4, "%s", be);
    cr_expect_eq(tg_value_int(res[2]), 3, "%s", be);
    cr_expect_eq(failed[0], bad, "%s", be);
    cr_expect_eq(failed[1], TG_NODE_NONE, "%s", be);
    cr_expect_eq(failed[2], TG_NODE_NONE, "%s", be);
    cr_expect_eq(st.failed_node, bad, "%s", be);
    expect_stats(&st, be, 4, 3, 1, 0, 0, 1);
    cr_expect_eq(st.attempts_failed, 1, "%s", be);
    for (int i = 0; i < 3; i++) tg_value_unref(res[i]);
    tg_executor_free(ex);
  }
  tg_graph_free(g);
}

/* 16 independent tasks, one failing one, and a sum over all: every
 * independent output comes back, the sum names the failing task. */
Test(keepgoing, wide_graph_returns_every_independent_output) {
  enum { W = 16 };
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node outs[W + 1];
  tg_arg all[W + 1];
  for (int i = 0; i < W; i++) {
    char key[16];
    snprintf(key, sizeof key, "w%d", i);
    outs[i] = keyed(g, "inc", key, (tg_arg[]){tg_arg_value(tg_int(i))}, 1, -1, 0);
    all[i] = tg_arg_node(outs[i]);
  }
  tg_node bad = keyed(g, "fail", "bad", NULL, 0, -1, 0);
  all[W] = tg_arg_node(bad);
  outs[W] = keyed(g, "sum_args", "total", all, W + 1, -1, 0);
  for (size_t b = 0; b < NBACKENDS; b++) {
    const char *be = backends[b].name;
    tg_executor *ex = executor_for(&backends[b]);
    tg_compute_stats st;
    tg_node failed[W + 1];
    tg_compute_opts o = v4_opts(ex, &st, failed);
    tg_value *res[W + 1];
    cr_expect_eq(tg_compute(g, outs, W + 1, &o, res), TG_ETASK, "%s", be);
    for (int i = 0; i < W; i++) {
      cr_assert_not_null(res[i], "%s: w%d", be, i);
      cr_expect_eq(tg_value_int(res[i]), i + 1, "%s", be);
      cr_expect_eq(failed[i], TG_NODE_NONE, "%s", be);
      tg_value_unref(res[i]);
    }
    cr_expect_null(res[W], "%s", be);
    cr_expect_eq(failed[W], bad, "%s", be);
    expect_stats(&st, be, W + 2, W + 1, 1, 0, 0, 1);
    tg_executor_free(ex);
  }
  tg_graph_free(g);
}

/* Without keep_going (or before version 4, which has no such field) the
 * first failure stops the compute and no result comes back. */
Test(keepgoing, without_it_a_failure_returns_nothing) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = keyed(g, "inc", "a", (tg_arg[]){tg_arg_value(tg_int(1))}, 1, -1, 0);
  tg_node bad = keyed(g, "fail", "bad", NULL, 0, -1, 0);
  tg_node outs[2] = {a, bad};
  tg_compute_stats st;
  tg_node failed[2] = {0, 0};
  for (uint32_t v = TG_COMPUTE_OPTS_V3; v <= TG_COMPUTE_OPTS_V4; v++) {
    tg_compute_opts o = v4_opts(NULL, &st, failed);
    o.scheduler = "sync";
    o.version = v;
    o.keep_going = v == TG_COMPUTE_OPTS_V3; /* not read by version 3 */
    tg_value *res[2];
    cr_expect_eq(tg_compute(g, outs, 2, &o, res), TG_ETASK);
    cr_expect_null(res[0]);
    cr_expect_null(res[1]);
  }
  cr_expect_eq(failed[0], TG_NODE_NONE);
  cr_expect_eq(failed[1], TG_NODE_NONE);
  cr_expect_eq(st.failed_node, bad);
  /* sync runs a first (lower index), then bad */
  expect_stats(&st, "sync", 2, 2, 1, 0, 0, 0);
  tg_graph_free(g);
}

/* With a cache, the tasks that succeeded are stored: the next compute
 * serves them and runs only the failing branch again. */
Test(keepgoing, the_cache_keeps_what_succeeded) {
  char dir[] = "/tmp/tg_keepgoing_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  tg_cache *cache;
  tg_error err;
  tg_error_clear(&err);
  tg_cache_opts co = {.version = TG_CACHE_OPTS_V1, .min_compute_seconds = TG_CACHE_STORE_ALL};
  cr_assert_eq(tg_cache_open(dir, &co, &cache, &err), TG_OK, "%s", err.msg);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = keyed(g, "add", "a", (tg_arg[]){tg_arg_value(tg_int(1)), tg_arg_value(tg_int(2))},
                    2, -1, 0);
  tg_node bad = keyed(g, "fail", "bad", (tg_arg[]){tg_arg_node(a)}, 1, -1, 0);
  tg_node c = keyed(g, "inc", "c", (tg_arg[]){tg_arg_node(a)}, 1, -1, 0);
  tg_node d = keyed(g, "add", "d", (tg_arg[]){tg_arg_node(bad), tg_arg_node(c)}, 2, -1, 0);
  tg_node outs[2] = {d, c};
  for (int pass = 0; pass < 2; pass++) {
    tg_compute_stats st;
    tg_compute_opts o = v4_opts(NULL, &st, NULL);
    o.scheduler = "threads";
    o.workers = 2;
    o.cache = cache;
    tg_value *res[2];
    cr_expect_eq(tg_compute(g, outs, 2, &o, res), TG_ETASK);
    cr_expect_null(res[0]);
    cr_assert_not_null(res[1]);
    cr_expect_eq(tg_value_int(res[1]), 4);
    tg_value_unref(res[1]);
    if (pass == 0) {
      expect_stats(&st, "first", 4, 3, 1, 0, 0, 1);
      cr_expect_eq(st.cache_stores, 2); /* a and c */
    } else { /* c and a (below bad) from the cache; bad runs again */
      expect_stats(&st, "second", 4, 1, 1, 0, 2, 1);
      cr_expect_eq(st.cache_hits, 2);
    }
  }
  tg_graph_free(g);
  tg_cache_close(cache);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

/* ---- accounting ---------------------------------------------------------------------- */

typedef struct seen {
  _Atomic int kind[8];
  _Atomic size_t tasks;
  _Atomic int cancelled_right; /* CANCELLED events with TG_ECANCELED and a message */
} seen;

static void count_kinds(void *ctx, const tg_event *e) {
  seen *s = ctx;
  atomic_fetch_add(&s->kind[e->kind], 1);
  atomic_store(&s->tasks, e->tasks);
  if (e->kind == TG_EVENT_CANCELLED && e->status == TG_ECANCELED && e->message != NULL &&
      strcmp(e->key, "hold") == 0)
    atomic_fetch_add(&s->cancelled_right, 1);
}

/* A task stopped because another failed is cancelled, not failed: in the
 * stats and in its event. */
Test(keepgoing, a_task_stopped_by_a_failure_is_cancelled) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node h = keyed(g, "hold", "hold", NULL, 0, -1, 0);
  tg_node bad = keyed(g, "fail_when_held", "bad", NULL, 0, -1, 0);
  tg_node outs[2] = {h, bad};
  for (size_t b = 1; b < NBACKENDS; b++) { /* sync runs one task at a time */
    if (backends[b].workers < 2) continue;
    const char *be = backends[b].name;
    atomic_store(&sh->held, 0);
    tg_executor *ex = executor_for(&backends[b]);
    tg_compute_stats st;
    seen s = {0};
    tg_compute_opts o = v4_opts(ex, &st, NULL);
    o.keep_going = false;
    o.on_event = count_kinds;
    o.event_ctx = &s;
    tg_value *res[2];
    cr_expect_eq(tg_compute(g, outs, 2, &o, res), TG_ETASK, "%s", be);
    cr_expect_str_eq(tg_graph_errmsg(g),
                     "task 'bad' failed: TG_EINVAL: broke while hold ran", "%s", be);
    expect_stats(&st, be, 2, 2, 1, 1, 0, 0);
    cr_expect_eq(s.kind[TG_EVENT_FAILED], 1, "%s", be);
    cr_expect_eq(s.kind[TG_EVENT_CANCELLED], 1, "%s", be);
    cr_expect_eq(s.cancelled_right, 1, "%s: hold's event: TG_ECANCELED and a message", be);
    cr_expect_eq(s.kind[TG_EVENT_STARTED], 2, "%s", be);
    tg_executor_free(ex);
  }
  tg_graph_free(g);
}

/* A task past its own timeout fails with TG_ETIMEDOUT naming the limit,
 * also when it noticed and gave up (sleep_ms returns TG_ECANCELED). */
Test(keepgoing, a_task_timeout_is_etimedout_naming_the_limit) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node s = keyed(g, "sleep_ms", "sleeper", (tg_arg[]){tg_arg_value(tg_int(20000))}, 1, -1,
                    0.2);
  tg_node ok = keyed(g, "inc", "ok", (tg_arg[]){tg_arg_value(tg_int(1))}, 1, -1, 0);
  tg_node outs[2] = {s, ok};
  for (size_t b = 0; b < NBACKENDS; b++) {
    const char *be = backends[b].name;
    tg_executor *ex = executor_for(&backends[b]);
    tg_compute_stats st;
    tg_node failed[2];
    tg_compute_opts o = v4_opts(ex, &st, failed);
    tg_value *res[2];
    double t0 = tcli_now();
    cr_expect_eq(tg_compute(g, outs, 2, &o, res), TG_ETASK, "%s", be);
    cr_expect_lt(tcli_now() - t0, 15.0, "%s", be);
    const char *want = "task 'sleeper' failed: TG_ETIMEDOUT: timed out after 0.2 s";
    cr_expect(strncmp(tg_graph_errmsg(g), want, strlen(want)) == 0, "%s: %s", be,
              tg_graph_errmsg(g));
    cr_expect_null(res[0], "%s", be);
    cr_assert_not_null(res[1], "%s", be);
    cr_expect_eq(tg_value_int(res[1]), 2, "%s", be);
    tg_value_unref(res[1]);
    cr_expect_eq(failed[0], s, "%s", be);
    expect_stats(&st, be, 2, 2, 1, 0, 0, 0);
    tg_executor_free(ex);
  }
  tg_graph_free(g);
}

/* A task that fails twice and then succeeds is not a failed task; its
 * failed attempts are counted apart. */
Test(keepgoing, retried_then_successful_counts_no_failure) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node f = keyed(g, "fail_first", "flaky",
                    (tg_arg[]){tg_arg_value(tg_int(2)), tg_arg_value(tg_int(7))}, 2, 2, 0);
  for (size_t b = 0; b < NBACKENDS; b++) {
    const char *be = backends[b].name;
    tg_executor *ex = executor_for(&backends[b]);
    tg_compute_stats st;
    seen s = {0};
    tg_compute_opts o = v4_opts(ex, &st, NULL);
    o.on_event = count_kinds;
    o.event_ctx = &s;
    tg_value *res;
    cr_assert_eq(tg_compute(g, &f, 1, &o, &res), TG_OK, "%s: %s", be, tg_graph_errmsg(g));
    cr_expect_eq(tg_value_int(res), 7, "%s", be);
    tg_value_unref(res);
    expect_stats(&st, be, 1, 3, 0, 0, 0, 0);
    cr_expect_eq(st.attempts_failed, 2, "%s", be);
    cr_expect_eq(s.kind[TG_EVENT_FAILED], 0, "%s", be);
    cr_expect_eq(s.kind[TG_EVENT_FINISHED], 1, "%s", be);
    tg_executor_free(ex);
  }
  tg_graph_free(g);
}

/* The graph.json reader's tg.build nodes are parts of tasks: counted
 * nowhere and reported by no event, through the C API. */
Test(keepgoing, graphjson_build_nodes_are_not_counted) {
  const char *text = "{\"tgraph\": 1, \"tasks\": {\n"
                     "  \"a\": {\"fn\": \"add\", \"args\": [1, 2]},\n"
                     "  \"b\": {\"fn\": \"identity\", \"args\": [[{\"ref\": \"a\"}, 5]]},\n"
                     "  \"c\": {\"fn\": \"add\", \"args\": [{\"ref\": \"a\"}, 4]}},\n"
                     " \"outputs\": [\"b\", \"c\"]}\n";
  tg_registry *r;
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(r), TG_OK);
  for (size_t b = 0; b < NBACKENDS - 1; b++) { /* tcp's worker serves the test's functions */
    const char *be = backends[b].name;
    tg_graph *g;
    tg_graphjson_info *info;
    tg_error err;
    tg_error_clear(&err);
    cr_assert_eq(tg_graphjson_parse(text, strlen(text), "g.json", NULL, r, NULL, &g, &info,
                                    &err),
                 TG_OK, "%s", err.msg);
    cr_assert_eq(tg_graph_size(g), 4, "a, b, c and b's tg.build node");
    tg_compute_stats st;
    seen s = {0};
    tg_compute_opts o = v4_opts(NULL, &st, NULL);
    o.scheduler = be;
    o.workers = backends[b].workers;
    o.on_event = count_kinds;
    o.event_ctx = &s;
    tg_value *res[2];
    cr_assert_eq(tg_compute(g, info->output_nodes, 2, &o, res), TG_OK, "%s: %s", be,
                 tg_graph_errmsg(g));
    expect_stats(&st, be, 3, 3, 0, 0, 0, 0);
    cr_expect_eq(s.kind[TG_EVENT_FINISHED], 3, "%s", be);
    cr_expect_eq(s.kind[TG_EVENT_STARTED], 3, "%s", be);
    cr_expect_eq(s.tasks, 3, "%s", be);
    cr_expect_eq(tg_value_int(res[1]), 7, "%s", be);
    tg_value_unref(res[0]);
    tg_value_unref(res[1]);
    tg_graphjson_info_free(info);
    tg_graph_free(g);
  }
  tg_registry_free(r);
}

/* ---- the CLI ------------------------------------------------------------------------- */

static const char kg_json[] =
    "{\"tgraph\": 1, \"tasks\": {\n"
    "  \"a\": {\"fn\": \"add\", \"args\": [1, 2]},\n"
    "  \"bad\": {\"fn\": \"sh\", \"args\": [\"echo boom >&2; exit 3\"]},\n"
    "  \"after\": {\"fn\": \"add\", \"args\": [{\"ref\": \"bad\"}, 1]},\n"
    "  \"b\": {\"fn\": \"add\", \"args\": [{\"ref\": \"a\"}, 10]},\n"
    "  \"nest\": {\"fn\": \"identity\", \"args\": [[{\"ref\": \"a\"}, {\"ref\": \"b\"}]]}},\n"
    " \"outputs\": [\"b\", \"after\", \"nest\"]}\n";

static tcli_result run_cli(char *const *args) {
  return tcli_run(tcli_bin(), &(tcli_how){.timeout = 120}, args);
}

/* The outputs computed on stdout, a line per failed output naming its
 * task, exit 1; on every backend. */
Test(keepgoing, cli_prints_what_succeeded_and_names_failed_outputs) {
  char dir[64];
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_kgcli_XXXXXX");
  tcli_write_file("g.json", kg_json);
  const char *scheds[] = {"sync", "threads", "processes", "tcp"};
  char ep[128] = "";
  pid_t wpid = 0;
  for (size_t i = 0; i < 4; i++) {
    if (strcmp(scheds[i], "tcp") == 0) {
      char *const wargs[] = {(char *)tcli_bin(), "worker", "--listen", "tcp://127.0.0.1:*",
                             NULL};
      wpid = tcli_worker(tcli_bin(), wargs, ep, sizeof ep);
    }
    char sched[64];
    snprintf(sched, sizeof sched, "--scheduler=%s", scheds[i]);
    char *const args[] = {"tgraph", "run", "-k", "--no-cache", sched, "-j2",
                          wpid ? "--connect" : "-k", wpid ? ep : "-k", "g.json", NULL};
    tcli_result r = run_cli(args);
    tcli_expect(r, 1, "{\"b\":13,\"nest\":[3,13]}\n", NULL);
    const char *want = "tgraph: error: after: failed: bad: TG_EIO: sh: exit status 3: boom\n";
    cr_expect_not_null(strstr(r.err, want), "%s: %s", scheds[i], r.err);
    cr_expect_not_null(strstr(r.err, "tgraph: 5 tasks: 4 run, 0 cached, 1 failed in "), "%s: %s",
                       scheds[i], r.err);
    tcli_result_free(&r);
  }
  kill(wpid, SIGTERM);
  waitpid(wpid, NULL, 0);
  tcli_leave_tmpdir(dir);
}

/* --output writes the outputs computed and no file for a failed one;
 * -q keeps the failure lines. */
Test(keepgoing, cli_output_dir_and_quiet) {
  char dir[64];
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_kgcli_XXXXXX");
  tcli_write_file("g.json", kg_json);
  tcli_result r = run_cli((char *const[]){"tgraph", "run", "--keep-going", "-q", "--no-cache",
                                          "--output", "out", "g.json", NULL});
  tcli_expect(r, 1, NULL, "tgraph: error: after: failed: bad: TG_EIO: sh: exit status 3: boom\n");
  cr_expect_eq(access("out/b.tgv", F_OK), 0);
  cr_expect_eq(access("out/nest.tgv", F_OK), 0);
  cr_expect_neq(access("out/after.tgv", F_OK), 0);
  cr_expect_null(strstr(r.out, "\"after\""), "%s", r.out);
  tcli_result_free(&r);
  tcli_leave_tmpdir(dir);
}

/* Without -k: no output, the old error; a stopped task reads cancelled
 * in the summary and in --dot. */
Test(keepgoing, cli_summary_and_dot_count_cancelled_apart) {
  char dir[64];
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_kgcli_XXXXXX");
  tcli_write_file("g.json", "{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"bad\": {\"fn\": \"sh\", \"args\": [\"sleep 0.3; exit 3\"]},\n"
                            "  \"slow\": {\"fn\": \"sleep_ms\", \"args\": [60000]}},\n"
                            " \"outputs\": [\"bad\", \"slow\"]}\n");
  const char *scheds[] = {"--scheduler=threads", "--scheduler=processes"};
  for (int i = 0; i < 2; i++) {
    tcli_result r = run_cli((char *const[]){"tgraph", "run", "--no-cache", (char *)scheds[i],
                                            "-j2", "--dot", "g.dot", "g.json", NULL});
    tcli_expect(r, 1, "", NULL);
    cr_expect_not_null(strstr(r.err, "tgraph: 2 tasks: 2 run, 0 cached, 1 failed, 1 cancelled in "),
                       "%s: %s", scheds[i], r.err);
    cr_expect_not_null(strstr(r.err, "tgraph: error: task 'bad' failed: TG_EIO: sh: exit "
                                     "status 3\n"), "%s", r.err);
    const char *dot = tcli_read_text("g.dot", true);
    cr_expect_not_null(strstr(dot, "\"slow\" [label=\"slow\\nsleep_ms\", fillcolor=\"#fdae61\", "
                                   "tooltip=\"cancelled\""), "%s", dot);
    cr_expect_not_null(strstr(dot, "\"bad\" [label=\"bad\\nsh\", fillcolor=\"#f46d43\", "
                                   "tooltip=\"failed\""), "%s", dot);
    tcli_result_free(&r);
  }
  tcli_leave_tmpdir(dir);
}

/* -k takes no value; a timeout under -k reads TG_ETIMEDOUT with its limit. */
Test(keepgoing, cli_bad_usage_and_timeouts) {
  char dir[64];
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_kgcli_XXXXXX");
  tcli_write_file("g.json", "{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"ok\": {\"fn\": \"add\", \"args\": [1, 2]},\n"
                            "  \"nap\": {\"fn\": \"sleep_ms\", \"args\": [60000], \"timeout\": 0.2}},\n"
                            " \"outputs\": [\"nap\", \"ok\"]}\n");
  tcli_result r = run_cli((char *const[]){"tgraph", "run", "--keep-going=yes", "g.json", NULL});
  tcli_expect(r, 2, "", "tgraph run: option '--keep-going' takes no value\n"
                        "(see tgraph run --help)\n");
  tcli_result_free(&r);
  const char *scheds[] = {"--scheduler=sync", "--scheduler=threads", "--scheduler=processes"};
  for (int i = 0; i < 3; i++) {
    r = run_cli((char *const[]){"tgraph", "run", "-k", "--no-cache", (char *)scheds[i], "g.json",
                                NULL});
    tcli_expect(r, 1, "{\"ok\":3}\n", NULL);
    cr_expect_not_null(strstr(r.err, "tgraph: error: nap: failed: nap: TG_ETIMEDOUT: timed out "
                                     "after 0.2 s"), "%s: %s", scheds[i], r.err);
    cr_expect_not_null(strstr(r.err, "tgraph: 2 tasks: 2 run, 0 cached, 1 failed in "), "%s",
                       r.err);
    tcli_result_free(&r);
  }
  tcli_leave_tmpdir(dir);
}
