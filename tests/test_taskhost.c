/* tests/test_taskhost.c: the task context over its task host
 * (lib/registry/taskhost.h): what tg_task_* return outside a task, what
 * they take from a host and what from the context itself (the attempt's
 * deadline, a key the host already knows), the defaults of a host that
 * lacks an op, and the same view of a task from every backend's host:
 * the scheduler's (sync, threads), the forked processes worker's and the
 * remote worker runtime's (tcp). */
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "registry/taskhost.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

/* ---- outside a task ----------------------------------------------------------- */

/* Every tg_task_* takes NULL (a helper shared by task and non-task code)
 * and answers with registry.h's defaults. */
Test(taskhost, null_context_gives_the_defaults, .init = cr_redirect_stderr) {
  cr_assert_eq(tg_task_fail(NULL, TG_EIO, "no %s", "context"), TG_EIO);
  cr_assert_eq(tg_task_fail(NULL, TG_OK, NULL), TG_ETASK);
  cr_assert_eq(tg_task_fail(NULL, 3, NULL), TG_ETASK);
  cr_assert_eq(tg_task_cancelled(NULL), false);
  tg_task_progress(NULL, 0.5);
  tg_task_log(NULL, "dropped %d", 1);
  cr_assert_null(tg_task_user(NULL));
  cr_assert_str_eq(tg_task_key(NULL), "");
  cr_assert_eq(tg_task_worker(NULL), 0);
  cr_assert_eq(tg_task_attempt(NULL), 0);
  cr_assert_null(tg_task_state(NULL));
  fflush(stderr);
  cr_assert_stderr_eq_str("", "a line without a task goes nowhere");
}

/* ---- a host of the test's own -------------------------------------------------- */

/* Records what the context asked of it. */
typedef struct rec_host {
  bool cancel;
  int cancelled_calls, key_calls, log_calls;
  uint32_t key_id;
  char key[64], line[128];
} rec_host;

static bool rec_cancelled(void *self) {
  rec_host *h = self;
  h->cancelled_calls++;
  return h->cancel;
}

static const char *rec_key(void *self, uint32_t id, char *buf, size_t size) {
  rec_host *h = self;
  h->key_calls++;
  h->key_id = id;
  snprintf(buf, size, "task-%u", (unsigned)id);
  return buf;
}

static void rec_log(void *self, const char *key, const char *line) {
  rec_host *h = self;
  h->log_calls++;
  snprintf(h->key, sizeof h->key, "%s", key);
  snprintf(h->line, sizeof h->line, "%s", line);
}

static const tg__task_host_ops rec_ops = {rec_cancelled, rec_key, rec_log};
static const tg__task_host_ops empty_ops = {NULL, NULL, NULL};

static int user_word = 77;

static int fn_noop(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx, (void)a, (void)n;
  *out = tg_null();
  return TG_OK;
}

static const tg_func *noop_fn(tg_registry **reg) {
  cr_assert_eq(tg_registry_new(reg), TG_OK);
  tg_func_def d = {TG_FUNC_DEF_V1, "host.noop", "1", fn_noop, TG_FUNC_PURE, 0, &user_word,
                   NULL, 0, NULL, NULL};
  const tg_func *f = NULL;
  cr_assert_eq(tg_registry_add(*reg, &d, &f), TG_OK);
  return f;
}

/* Cancellation, keys and log lines come from the host; the key is asked
 * for once (then kept), by the id the host gave; the rest is the
 * context's own. */
Test(taskhost, context_asks_its_host) {
  tg_registry *reg;
  const tg_func *f = noop_fn(&reg);
  rec_host h = {0};
  tg_task_ctx ctx;
  tg__task_ctx_init(&ctx, f, (tg__task_host){&rec_ops, &h}, 41, 3, 2);
  cr_assert_eq(tg_task_cancelled(&ctx), false);
  h.cancel = true;
  cr_assert_eq(tg_task_cancelled(&ctx), true);
  cr_assert_eq(h.cancelled_calls, 2);
  cr_assert_eq(h.key_calls, 0, "the key is formatted only when asked for");
  cr_assert_str_eq(tg_task_key(&ctx), "task-41");
  cr_assert_str_eq(tg_task_key(&ctx), "task-41");
  cr_assert_eq(h.key_calls, 1);
  cr_assert_eq(h.key_id, 41);
  tg_task_log(&ctx, "step %d of %s", 4, "five");
  cr_assert_eq(h.log_calls, 1);
  cr_assert_str_eq(h.key, "task-41");
  cr_assert_str_eq(h.line, "step 4 of five");
  cr_assert_eq(h.key_calls, 1, "logging reuses the key");
  cr_assert_eq(tg_task_worker(&ctx), 3);
  cr_assert_eq(tg_task_attempt(&ctx), 2);
  cr_assert_eq(tg_task_user(&ctx), &user_word);
  cr_assert_null(tg_task_state(&ctx));
  tg_registry_free(reg);
}

/* A key the host knows already (it came with the task) is used as it is:
 * the host's key op is never called. */
Test(taskhost, preset_key_is_not_asked_for) {
  tg_registry *reg;
  const tg_func *f = noop_fn(&reg);
  rec_host h = {0};
  tg_task_ctx ctx;
  tg__task_ctx_init(&ctx, f, (tg__task_host){&rec_ops, &h}, 0, 0, 0);
  ctx.key = "sent-along";
  tg_task_log(&ctx, "hello");
  cr_assert_str_eq(tg_task_key(&ctx), "sent-along");
  cr_assert_str_eq(h.key, "sent-along");
  cr_assert_eq(h.key_calls, 0);
  tg_registry_free(reg);
}

/* The attempt's own deadline is the context's: past it a task is
 * cancelled whatever its host says; before it, the host decides. */
Test(taskhost, deadline_is_the_contexts) {
  tg_registry *reg;
  const tg_func *f = noop_fn(&reg);
  rec_host h = {0};
  tg_task_ctx ctx;
  tg__task_ctx_init(&ctx, f, (tg__task_host){&rec_ops, &h}, 0, 0, 0);
  ctx.deadline = tg__now() + 60;
  cr_assert_eq(tg_task_cancelled(&ctx), false);
  ctx.deadline = tg__now() + 0.05;
  sleep_ms(80);
  cr_assert_eq(tg_task_cancelled(&ctx), true);
  cr_assert_eq(h.cancelled_calls, 2);
  /* No host at all: the deadline alone. */
  tg__task_ctx_init(&ctx, f, (tg__task_host){NULL, NULL}, 0, 0, 0);
  cr_assert_eq(tg_task_cancelled(&ctx), false);
  ctx.deadline = tg__now() - 1;
  cr_assert_eq(tg_task_cancelled(&ctx), true);
  tg_registry_free(reg);
}

/* Without a host (or with a host lacking the ops): never cancelled, the
 * function's name for a key, lines on stderr as "[key] line". */
static void host_defaults(tg__task_host host) {
  tg_registry *reg;
  const tg_func *f = noop_fn(&reg);
  tg_task_ctx ctx;
  tg__task_ctx_init(&ctx, f, host, 9, 0, 0);
  cr_assert_eq(tg_task_cancelled(&ctx), false);
  cr_assert_str_eq(tg_task_key(&ctx), "host.noop");
  tg_task_log(&ctx, "to %s", "stderr");
  fflush(stderr);
  cr_assert_stderr_eq_str("[host.noop] to stderr\n");
  tg_registry_free(reg);
}

Test(taskhost, no_host_defaults, .init = cr_redirect_stderr) {
  host_defaults((tg__task_host){NULL, NULL});
}

Test(taskhost, empty_ops_defaults, .init = cr_redirect_stderr) {
  host_defaults((tg__task_host){&empty_ops, NULL});
}

/* ---- every backend's host ------------------------------------------------------- */

/* probe(i): pure; attempts 0 and 1 log a line and fail, attempt 2 logs and
 * returns [key, attempt, worker, *user, cancelled]. */
static int fn_probe(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  int at = tg_task_attempt(ctx);
  tg_task_log(ctx, "attempt %d of %lld", at, (long long)tg_value_int(a[0]));
  if (at < 2) return tg_task_fail(ctx, TG_EIO, "attempt %d fails", at);
  const int *user = tg_task_user(ctx);
  *out = tg_list_of(5, tg_str_c(tg_task_key(ctx)), tg_int(at), tg_int(tg_task_worker(ctx)),
                    tg_int(user ? *user : -1), tg_bool(tg_task_cancelled(ctx)));
  return *out ? TG_OK : TG_ENOMEM;
}

#define NPROBE 6

typedef struct sink {
  pthread_mutex_t mu;
  char gen_key[64];         /* the generated key of task NPROBE */
  int lines[NPROBE + 1][3]; /* [task][attempt]: lines seen */
  int strays;
} sink;

static void on_log(void *ctx, const char *key, const char *line) {
  sink *s = ctx;
  int i = -1, at, arg;
  pthread_mutex_lock(&s->mu);
  if (strcmp(key, s->gen_key) == 0) i = NPROBE;
  else if (sscanf(key, "probe-%d", &i) != 1 || i < 0 || i >= NPROBE) i = -1;
  if (i >= 0 && sscanf(line, "attempt %d of %d", &at, &arg) == 2 && at >= 0 && at < 3 &&
      arg == 100 + i)
    s->lines[i][at]++;
  else
    s->strays++;
  pthread_mutex_unlock(&s->mu);
}

typedef struct inproc { /* a tg_worker_serve in a thread of this process */
  pthread_t th;
  atomic_int ready;
  volatile sig_atomic_t stop;
  char ep[128];
  int rc;
  tg_registry *reg;
} inproc;

static void inproc_ready(void *ctx, const char *endpoint) {
  inproc *w = ctx;
  snprintf(w->ep, sizeof w->ep, "%s", endpoint);
  atomic_store(&w->ready, 1);
}

static void *inproc_main(void *arg) {
  inproc *w = arg;
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://localhost:0",
                      .nthreads = 2, .stop = &w->stop, .on_ready = inproc_ready,
                      .ctx = w};
  w->rc = tg_worker_serve(w->reg, &o, NULL);
  atomic_store(&w->ready, 1);
  return NULL;
}

static void same_view(const char *backend) {
  tg_registry *reg;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  tg_func_def d = {TG_FUNC_DEF_V1, "probe", "1", fn_probe, TG_FUNC_PURE, 1, &user_word,
                   NULL, 0, NULL, NULL};
  cr_assert_eq(tg_registry_add(reg, &d, NULL), TG_OK);
  sink s = {.mu = PTHREAD_MUTEX_INITIALIZER};
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend, .workers = 2,
                         .log = on_log, .log_ctx = &s};
  inproc w = {.reg = reg};
  const char *addr[1] = {w.ep};
  bool tcp = strcmp(backend, "tcp") == 0;
  if (tcp) {
    cr_assert_eq(pthread_create(&w.th, NULL, inproc_main, &w), 0);
    while (!atomic_load(&w.ready)) sleep_ms(1);
    cr_assert_eq(w.rc, TG_OK, "the worker did not start");
    eo.connect = addr;
    eo.nconnect = 1;
    eo.workers = 0;
  }
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &eo, &ex, &err), TG_OK, "%s: %s", backend, err.msg);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  /* NPROBE tasks with keys of their own, the last with a generated one
   * (which a worker rebuilds or is sent). */
  tg_node outs[NPROBE + 1];
  for (int i = 0; i <= NPROBE; i++) {
    char key[16];
    snprintf(key, sizeof key, "probe-%d", i);
    tg_node_opts no = {TG_NODE_OPTS_V1, i < NPROBE ? key : NULL, 2, 0, 0, 0};
    tg_arg a = tg_arg_value(tg_int(100 + i));
    cr_assert_eq(tg_graph_add(g, "probe", &a, 1, &no, &outs[i]), TG_OK, "%s",
                 tg_graph_errmsg(g));
  }
  cr_assert_gt(tg_node_key(g, outs[NPROBE], s.gen_key, sizeof s.gen_key), 6);
  cr_assert(strncmp(s.gen_key, "probe#", 6) == 0, "%s", s.gen_key);
  tg_value *r[NPROBE + 1] = {0};
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  cr_assert_eq(tg_compute(g, outs, NPROBE + 1, &co, r), TG_OK, "%s: %s", backend,
               tg_graph_errmsg(g));
  tg_executor_free(ex); /* every log callback has returned */
  for (int i = 0; i <= NPROBE; i++) {
    char key[64];
    if (i < NPROBE) snprintf(key, sizeof key, "probe-%d", i);
    else snprintf(key, sizeof key, "%s", s.gen_key);
    cr_assert_eq(tg_value_type(r[i]), TG_LIST);
    cr_assert_eq(tg_list_len(r[i]), 5);
    cr_expect_str_eq(tg_str_data(tg_list_get(r[i], 0), NULL), key, "%s", backend);
    cr_expect_eq(tg_value_int(tg_list_get(r[i], 1)), 2, "%s: attempt", backend);
    int64_t wi = tg_value_int(tg_list_get(r[i], 2));
    cr_expect(wi >= 0 && wi < 2, "%s: worker %lld", backend, (long long)wi);
    cr_expect_eq(tg_value_int(tg_list_get(r[i], 3)), 77, "%s: user", backend);
    cr_expect_eq(tg_value_bool(tg_list_get(r[i], 4)), false, "%s: cancelled", backend);
    for (int at = 0; at < 3; at++)
      cr_expect_eq(s.lines[i][at], 1, "%s: %s attempt %d: %d lines", backend, key, at,
                   s.lines[i][at]);
    tg_value_unref(r[i]);
  }
  cr_expect_eq(s.strays, 0, "%s", backend);
  tg_graph_free(g);
  if (tcp) {
    w.stop = 1;
    pthread_join(w.th, NULL);
    cr_assert_eq(w.rc, TG_OK);
  }
  tg_registry_free(reg);
}

Test(taskhost, same_view_sync) { same_view("sync"); }
Test(taskhost, same_view_threads) { same_view("threads"); }
Test(taskhost, same_view_processes) { same_view("processes"); }
Test(taskhost, same_view_tcp) { same_view("tcp"); }
