/* tests/test_wstate.c: per-worker state (tg_registry_add_state,
 * tg_func_def.state, tg_task_state) on every backend: init once per worker
 * that runs a task needing it, the same state for every task there,
 * teardown once per init when the worker ends, init failures failing only
 * the tasks that need the state (once per worker, remembered), and one
 * state shared by two functions.
 *
 * Inits and teardowns append a line to a file ("I <worker>" and
 * "T <worker>", where a worker is pid.tid), so that counts made in
 * worker processes are readable here. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/registry.h"
#include "tgraph/remote.h"

#define NCHUNKS 200
#define MAGIC 0x5ca1ab1e

static char logpath[256];
static tg_registry *reg;

/* ---- the journal of inits and teardowns ----------------------------------- */

static void who(char *buf, size_t size) {
  snprintf(buf, size, "%ld.%ld", (long)getpid(), (long)syscall(SYS_gettid));
}

static void journal(char kind) {
  char w[64], line[80];
  who(w, sizeof w);
  int n = snprintf(line, sizeof line, "%c %s\n", kind, w);
  int fd = open(logpath, O_WRONLY | O_APPEND | O_CREAT, 0600);
  if (fd < 0) abort();
  if (write(fd, line, (size_t)n) != n) abort();
  close(fd);
}

typedef struct journal_lines {
  char inits[64][64], teardowns[64][64];
  int ninit, nteardown;
} journal_lines;

static journal_lines read_journal(void) {
  journal_lines j = {0};
  FILE *f = fopen(logpath, "r");
  if (!f) return j;
  char kind, w[64];
  while (fscanf(f, " %c %63s", &kind, w) == 2) {
    if (kind == 'I' && j.ninit < 64) strcpy(j.inits[j.ninit++], w);
    if (kind == 'T' && j.nteardown < 64) strcpy(j.teardowns[j.nteardown++], w);
  }
  fclose(f);
  return j;
}

static bool in(char (*set)[64], int n, const char *w) {
  for (int i = 0; i < n; i++)
    if (strcmp(set[i], w) == 0) return true;
  return false;
}

/* ---- states and functions -------------------------------------------------- */

typedef struct vocab {
  long magic;
  char who[64]; /* the worker that made it */
} vocab;

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static int vocab_init(void *user, void **state, tg_error *err) {
  (void)err;
  if ((intptr_t)user != 42) abort(); /* in a worker: no Criterion asserts */
  sleep_ms(50); /* an expensive load */
  vocab *v = malloc(sizeof *v);
  v->magic = MAGIC;
  who(v->who, sizeof v->who);
  journal('I');
  *state = v;
  return TG_OK;
}

static void vocab_teardown(void *user, void *state) {
  (void)user;
  vocab *v = state;
  char w[64];
  who(w, sizeof w);
  if (v->magic != MAGIC || strcmp(v->who, w) != 0) abort(); /* another worker's */
  v->magic = 0;
  free(v);
  journal('T');
}

static int broken_init(void *user, void **state, tg_error *err) {
  (void)user;
  (void)state;
  journal('I');
  snprintf(err->msg, sizeof err->msg, "no vocabulary at /nowhere/vocab.txt");
  return TG_ENOENT;
}

/* The state of this worker, checked; NULL after tg_task_fail. */
static vocab *my_vocab(tg_task_ctx *ctx) {
  vocab *v = tg_task_state(ctx);
  char w[64];
  who(w, sizeof w);
  if (!v || v->magic != MAGIC) {
    tg_task_fail(ctx, TG_EINVAL, "no state");
    return NULL;
  }
  if (strcmp(v->who, w) != 0) {
    tg_task_fail(ctx, TG_EINVAL, "state of worker %s used on %s", v->who, w);
    return NULL;
  }
  return v;
}

/* tokenize(i): "WORKER:i" */
static int fn_tokenize(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)n;
  vocab *v = my_vocab(ctx);
  if (!v) return TG_EINVAL;
  char s[96];
  snprintf(s, sizeof s, "%s:%lld", v->who, (long long)tg_value_int(args[0]));
  *out = tg_str(s, strlen(s));
  return TG_OK;
}

/* detokenize("WORKER:i"): i, with the state of the worker running it. */
static int fn_detokenize(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)n;
  if (!my_vocab(ctx)) return TG_EINVAL;
  const char *s = tg_str_data(args[0], NULL);
  const char *colon = strrchr(s, ':');
  *out = tg_int(colon ? atoll(colon + 1) : -1);
  return TG_OK;
}

static int fn_needs_broken(tg_task_ctx *ctx, tg_value *const *args, size_t n,
                           tg_value **out) {
  (void)ctx, (void)n;
  *out = tg_value_ref(args[0]); /* never reached */
  return TG_OK;
}

static int fn_plain(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)n;
  if (tg_task_state(ctx)) return tg_task_fail(ctx, TG_EINVAL, "a state without asking");
  *out = tg_int(tg_value_int(args[0]) + 1);
  return TG_OK;
}

static void add_fn(const char *name, tg_task_fn fn, const char *state) {
  tg_func_def d = {.version = TG_FUNC_DEF_V2, .name = name, .fn = fn,
                   .flags = TG_FUNC_PURE, .nargs = 1, .state = state};
  cr_assert_eq(tg_registry_add(reg, &d, NULL), TG_OK, "%s", name);
}

static void setup(void) {
  snprintf(logpath, sizeof logpath, "/tmp/tg-wstate-%ld.log", (long)getpid());
  unlink(logpath);
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  tg_state_def vd = {TG_STATE_DEF_V1, "vocab", vocab_init, vocab_teardown, (void *)42};
  cr_assert_eq(tg_registry_add_state(reg, &vd), TG_OK);
  tg_state_def bd = {TG_STATE_DEF_V1, "broken", broken_init, NULL, NULL};
  cr_assert_eq(tg_registry_add_state(reg, &bd), TG_OK);
  add_fn("tokenize", fn_tokenize, "vocab");
  add_fn("detokenize", fn_detokenize, "vocab");
  add_fn("needs_broken", fn_needs_broken, "broken");
  add_fn("plain", fn_plain, NULL);
}

static void teardown(void) {
  tg_registry_free(reg);
  unlink(logpath);
}

/* ---- executors --------------------------------------------------------------- */

typedef struct inproc { /* a tg_worker_serve in a thread of this process */
  volatile sig_atomic_t stop;
  char ep[128];
  atomic_int ready;
  int rc;
  pthread_t th;
} inproc;

static void inproc_ready(void *ctx, const char *ep) {
  inproc *w = ctx;
  snprintf(w->ep, sizeof w->ep, "%s", ep);
  atomic_store(&w->ready, 1);
}

static void *inproc_main(void *arg) {
  inproc *w = arg;
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://localhost:0",
                      .nthreads = 2, .stop = &w->stop, .on_ready = inproc_ready,
                      .ctx = w};
  w->rc = tg_worker_serve(reg, &o, NULL);
  return NULL;
}

static inproc worker;

static tg_executor *executor(const char *backend, unsigned n) {
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend, .workers = n};
  const char *addr[1];
  if (strcmp(backend, "tcp") == 0) {
    memset(&worker, 0, sizeof worker);
    pthread_create(&worker.th, NULL, inproc_main, &worker);
    while (!atomic_load(&worker.ready)) sleep_ms(1);
    addr[0] = worker.ep;
    o.connect = addr;
    o.nconnect = 1;
  }
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &o, &ex, &err), TG_OK, "%s", err.msg);
  return ex;
}

/* Free ex and end its workers (tcp: stop the worker serving it). */
static void end_executor(const char *backend, tg_executor *ex) {
  tg_executor_free(ex);
  if (strcmp(backend, "tcp") == 0) {
    __atomic_store_n(&worker.stop, 1, __ATOMIC_RELAXED);
    pthread_join(worker.th, NULL);
    cr_assert_eq(worker.rc, TG_OK);
  }
}

static tg_node map_over(tg_graph *g, const char *fn, size_t n) {
  tg_arg *in = malloc(n * sizeof *in);
  for (size_t i = 0; i < n; i++) in[i] = tg_arg_value(tg_int((int64_t)i));
  tg_node out;
  cr_assert_eq(tg_graph_map(g, fn, in, n, NULL, 0, 1, NULL, &out), TG_OK, "%s",
               tg_graph_errmsg(g));
  free(in);
  return out;
}

static int compute(tg_graph *g, tg_node n, tg_executor *ex, tg_value **out) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  *out = NULL;
  return tg_compute(g, &n, 1, &o, out);
}

/* ---- once per worker, teardown per init ---------------------------------------- */

/* The 200-chunk map of tokenize on backend:n: every task saw its own
 * worker's state; one init per worker that ran a task (at most n); no
 * teardown before the workers end, then one per init on its worker. */
static void once_per_worker(const char *backend, unsigned n) {
  tg_executor *ex = executor(backend, n);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node m = map_over(g, "tokenize", NCHUNKS);
  tg_value *r;
  cr_assert_eq(compute(g, m, ex, &r), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tg_list_len(r), NCHUNKS);
  char seen[64][64];
  int nseen = 0;
  for (size_t i = 0; i < NCHUNKS; i++) {
    char w[64];
    long long k = -1;
    const char *s = tg_str_data(tg_list_get(r, i), NULL);
    cr_assert_eq(sscanf(s, "%63[^:]:%lld", w, &k), 2, "%s", s);
    cr_assert_eq(k, (long long)i);
    if (!in(seen, nseen, w)) strcpy(seen[nseen++], w);
  }
  tg_value_unref(r);
  journal_lines j = read_journal();
  cr_assert_geq(j.ninit, 1);
  cr_assert_leq(j.ninit, (int)n, "%s:%u: %d inits", backend, n, j.ninit);
  cr_assert_eq(j.ninit, nseen, "%s:%u: %d inits, %d workers ran tasks", backend, n,
               j.ninit, nseen);
  for (int i = 0; i < j.ninit; i++) {
    cr_assert(in(seen, nseen, j.inits[i]), "init on %s, which ran nothing", j.inits[i]);
    for (int k = 0; k < i; k++) cr_assert_str_neq(j.inits[i], j.inits[k]);
  }
  cr_assert_eq(j.nteardown, 0, "%s: a teardown before the workers end", backend);
  /* a second compute reuses the states */
  cr_assert_eq(compute(g, m, ex, &r), TG_OK, "%s", tg_graph_errmsg(g));
  tg_value_unref(r);
  cr_assert_eq(read_journal().ninit, j.ninit);
  tg_graph_free(g);
  end_executor(backend, ex);
  j = read_journal();
  cr_assert_eq(j.nteardown, j.ninit, "%s: %d teardowns for %d inits", backend,
               j.nteardown, j.ninit);
  for (int i = 0; i < j.nteardown; i++)
    cr_assert(in(j.inits, j.ninit, j.teardowns[i]), "teardown on %s, not the init's worker",
              j.teardowns[i]);
}

Test(wstate, once_per_worker_sync, .init = setup, .fini = teardown) {
  once_per_worker("sync", 1);
}
Test(wstate, once_per_worker_threads, .init = setup, .fini = teardown) {
  once_per_worker("threads", 4);
}
Test(wstate, once_per_worker_processes, .init = setup, .fini = teardown) {
  once_per_worker("processes", 3);
}
Test(wstate, once_per_worker_tcp, .init = setup, .fini = teardown) {
  once_per_worker("tcp", 2);
}

/* ---- sharing ------------------------------------------------------------------------ */

/* detokenize(tokenize(i)) chains: two functions, one state, one init per
 * worker; on sync both get the very same state. */
static void shared(const char *backend, unsigned n) {
  tg_executor *ex = executor(backend, n);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node outs[40];
  for (int i = 0; i < 40; i++) {
    tg_node t = tg_call(g, "tokenize", 1, tg_arg_value(tg_int(i)));
    outs[i] = tg_call(g, "detokenize", 1, tg_arg_node(t));
  }
  tg_value *r[40];
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  cr_assert_eq(tg_compute(g, outs, 40, &o, r), TG_OK, "%s", tg_graph_errmsg(g));
  for (int i = 0; i < 40; i++) {
    cr_assert_eq(tg_value_int(r[i]), i);
    tg_value_unref(r[i]);
  }
  journal_lines j = read_journal();
  cr_assert_geq(j.ninit, 1);
  cr_assert_leq(j.ninit, (int)n, "%s: %d inits", backend, j.ninit);
  tg_graph_free(g);
  end_executor(backend, ex);
  cr_assert_eq(read_journal().nteardown, j.ninit);
}

Test(wstate, shared_sync, .init = setup, .fini = teardown) { shared("sync", 1); }
Test(wstate, shared_threads, .init = setup, .fini = teardown) { shared("threads", 2); }
Test(wstate, shared_processes, .init = setup, .fini = teardown) { shared("processes", 2); }

/* ---- init failure ------------------------------------------------------------------ */

/* A map needing the broken state fails with the init's code and a message
 * naming the state and the init's error; a function without it still
 * runs; computing again calls no init on a worker that tried already. */
static void init_fails(const char *backend, unsigned n) {
  tg_executor *ex = executor(backend, n);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node bad = map_over(g, "needs_broken", 20);
  tg_node good = map_over(g, "plain", 20);
  tg_value *r;
  for (int round = 0; round < 3; round++) {
    cr_assert_eq(compute(g, bad, ex, &r), TG_ETASK, "%s", backend);
    cr_assert_null(r);
    const char *m = tg_graph_errmsg(g);
    cr_assert(strstr(m, "TG_ENOENT: state 'broken' failed to initialize on this worker: "
                        "no vocabulary at /nowhere/vocab.txt"),
              "%s: %s", backend, m);
    cr_assert_eq(compute(g, good, ex, &r), TG_OK, "%s: %s", backend, tg_graph_errmsg(g));
    cr_assert_eq(tg_list_len(r), 20);
    cr_assert_eq(tg_value_int(tg_list_get(r, 19)), 20);
    tg_value_unref(r);
  }
  journal_lines j = read_journal();
  cr_assert_geq(j.ninit, 1);
  cr_assert_leq(j.ninit, (int)n, "%s: %d inits for %u workers", backend, j.ninit, n);
  for (int i = 0; i < j.ninit; i++)
    for (int k = 0; k < i; k++) cr_assert_str_neq(j.inits[i], j.inits[k], "init retried");
  tg_graph_free(g);
  end_executor(backend, ex);
  cr_assert_eq(read_journal().nteardown, 0, "teardown after a failed init");
}

Test(wstate, init_fails_sync, .init = setup, .fini = teardown) { init_fails("sync", 1); }
Test(wstate, init_fails_threads, .init = setup, .fini = teardown) { init_fails("threads", 2); }
Test(wstate, init_fails_processes, .init = setup, .fini = teardown) {
  init_fails("processes", 2);
}
Test(wstate, init_fails_tcp, .init = setup, .fini = teardown) { init_fails("tcp", 2); }

/* A pure task retried after the init failure: its attempts on one worker
 * do not run the init again. */
Test(wstate, retries_do_not_rerun_init, .init = setup, .fini = teardown) {
  tg_executor *ex = executor("sync", 1);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "needs_broken", 1, tg_arg_value(tg_int(1)));
  tg_value *r = NULL;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .retries = 3};
  cr_assert_eq(tg_compute(g, &n, 1, &o, &r), TG_ETASK);
  cr_assert_eq(read_journal().ninit, 1);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* ---- declarations ------------------------------------------------------------------- */

Test(wstate, declaration_errors, .init = setup, .fini = teardown) {
  tg_state_def d = {TG_STATE_DEF_V1, "vocab", vocab_init, NULL, NULL};
  cr_assert_eq(tg_registry_add_state(reg, &d), TG_EEXIST);
  d.name = "";
  cr_assert_eq(tg_registry_add_state(reg, &d), TG_EINVAL);
  d.name = NULL;
  cr_assert_eq(tg_registry_add_state(reg, &d), TG_EINVAL);
  d.name = "other";
  d.init = NULL;
  cr_assert_eq(tg_registry_add_state(reg, &d), TG_EINVAL);
  d.init = vocab_init;
  d.version = 2;
  cr_assert_eq(tg_registry_add_state(reg, &d), TG_EINVAL);
  cr_assert_eq(tg_registry_add_state(NULL, &d), TG_EINVAL);
  /* a function naming an undeclared state is refused */
  tg_func_def f = {.version = TG_FUNC_DEF_V2, .name = "f", .fn = fn_plain, .nargs = 1,
                   .state = "nosuch"};
  cr_assert_eq(tg_registry_add(reg, &f, NULL), TG_ENOTFOUND);
  cr_assert_null(tg_registry_find(reg, "f"));
  f.version = 3;
  cr_assert_eq(tg_registry_add(reg, &f, NULL), TG_EINVAL);
  /* version 1 definitions have no state field: it is not read */
  f.version = TG_FUNC_DEF_V1;
  const tg_func *h;
  cr_assert_eq(tg_registry_add(reg, &f, &h), TG_OK);
  cr_assert_null(tg_func_state(h));
  cr_assert_str_eq(tg_func_state(tg_registry_find(reg, "tokenize")), "vocab");
}

/* tg_task_state outside a worker (no context) is NULL, not a crash. */
Test(wstate, no_context) { cr_assert_null(tg_task_state(NULL)); }
