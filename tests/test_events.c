/* tests/test_events.c: the scheduler's task events (tg_compute_opts and
 * tg_executor_opts on_event): one closing event per task of a run, one
 * STARTED before each call's end, on every backend (tcp with a worker
 * process on loopback), with cache hits, failures and skips; the
 * function, thread, attempts and message of each; and call spans that
 * are measured where the call ran, not where its result arrived. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_funcs.h"
#include "test_proc.h"
#include "tgraph/cache.h"
#include "tgraph/executor.h"
#include "tgraph/remote.h"

#define MAXEV 256

typedef struct seen {
  tg_event_kind kind;
  char key[64];
  int worker, status;
  double start, end;
  size_t tasks;
  char func[32];    /* "" for NULL */
  int thread;
  unsigned attempts;
  char message[128];
  bool has_message;
  double at;        /* CLOCK_MONOTONIC when the callback ran */
} seen;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct recorder {
  pthread_mutex_t mu;
  size_t n;
  seen ev[MAXEV];
} recorder;

static void record(void *ctx, const tg_event *e) {
  recorder *r = ctx;
  pthread_mutex_lock(&r->mu);
  if (r->n < MAXEV) {
    seen *s = &r->ev[r->n++];
    *s = (seen){.kind = e->kind, .worker = e->worker, .status = e->status,
                .start = e->start, .end = e->end, .tasks = e->tasks};
    snprintf(s->key, sizeof s->key, "%s", e->key);
    snprintf(s->func, sizeof s->func, "%s", e->func ? e->func : "");
    s->thread = e->thread;
    s->attempts = e->attempts;
    s->has_message = e->message != NULL;
    snprintf(s->message, sizeof s->message, "%s", e->message ? e->message : "");
    s->at = now();
  }
  pthread_mutex_unlock(&r->mu);
}

static recorder *recorder_new(void) {
  recorder *r = calloc(1, sizeof *r);
  pthread_mutex_init(&r->mu, NULL);
  return r;
}

/* Index of the event of `key` of `kind`, checking it is the only one. */
static size_t find(const recorder *r, const char *key, tg_event_kind kind) {
  size_t at = SIZE_MAX;
  for (size_t i = 0; i < r->n; i++)
    if (r->ev[i].kind == kind && strcmp(r->ev[i].key, key) == 0) {
      cr_expect_eq(at, SIZE_MAX, "two events %d for '%s'", kind, key);
      at = i;
    }
  cr_assert_neq(at, SIZE_MAX, "no event %d for '%s'", kind, key);
  return at;
}

static size_t count(const recorder *r, tg_event_kind kind) {
  size_t n = 0;
  for (size_t i = 0; i < r->n; i++) n += r->ev[i].kind == kind;
  return n;
}

/* A call of `key`: STARTED then FINISHED (or FAILED with status) on the
 * same worker in [0, workers), times in order. */
static void expect_call(const recorder *r, const char *key, tg_event_kind end,
                        int status, unsigned workers) {
  size_t s = find(r, key, TG_EVENT_STARTED), e = find(r, key, end);
  cr_expect_lt(s, e, "'%s' ended before it started", key);
  cr_expect_eq(r->ev[s].start, r->ev[s].end);
  cr_expect_geq(r->ev[e].end, r->ev[e].start);
  cr_expect_geq(r->ev[e].end, r->ev[s].start);
  cr_expect_eq(r->ev[e].status, status, "'%s'", key);
  cr_expect(r->ev[e].worker >= 0 && (unsigned)r->ev[e].worker < workers,
            "'%s' on worker %d", key, r->ev[e].worker);
}

/* timed_sleep(ms): impure; sleeps until ms after its start and returns
 * [start, end] as it read them on CLOCK_MONOTONIC, so a test can hold an
 * event's span against the call's own clock (which is ours: workers run
 * on this machine), however loaded the machine is. */
static int fn_timed_sleep(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                          tg_value **out) {
  (void)ctx;
  (void)nargs;
  double start = now();
  double until = start + (double)tg_value_int(args[0]) * 1e-3;
  struct timespec ts = {(time_t)until, (long)((until - (double)(time_t)until) * 1e9)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0) {
  }
  tg_value *items[2] = {tg_float(start), tg_float(now())};
  *out = tg_list_take(2, items);
  return *out ? TG_OK : TG_ENOMEM;
}

/* The suite's functions: test_funcs.h's and timed_sleep. */
static tg_registry *suite_registry(void) {
  tg_registry *r = tgt_registry_new();
  tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = "timed_sleep", .fn_version = "1",
                   .fn = fn_timed_sleep, .flags = 0, .nargs = 1};
  if (r && tg_registry_add(r, &d, NULL) != TG_OK) {
    tg_registry_free(r);
    return NULL;
  }
  return r;
}

static tg_registry *reg;
static tg_graph *g;
static pid_t worker_pid; /* the tcp worker, 0: none */
static char worker_ep[128];

static void setup(void) {
  reg = suite_registry();
  cr_assert_not_null(reg);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
}

static void teardown(void) {
  if (worker_pid > 0) {
    kill(worker_pid, SIGKILL);
    cr_expect_eq(waitpid(worker_pid, NULL, 0), worker_pid);
    worker_pid = 0;
  }
  tg_graph_free(g);
  tg_registry_free(reg);
}

/* Fork a worker serving this suite's functions on loopback with nthreads
 * pool threads; its address in worker_ep. */
static void start_worker(unsigned nthreads) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    close(p[0]);
    tg_registry *r = suite_registry();
    int fd = p[1];
    tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                        .nthreads = nthreads, .stop = tproc_stop_on_term(),
                        .on_ready = tproc_say_ready, .ctx = &fd};
    tg_error err;
    tg_error_clear(&err);
    int rc = r ? tg_worker_serve(r, &o, &err) : TG_ENOMEM;
    if (rc) dprintf(fd, "ERROR %s\n", err.msg);
    _exit(rc ? 1 : 0);
  }
  close(p[1]);
  worker_pid = pid;
  tproc_read_line(p[0], worker_ep, sizeof worker_ep, 10);
  close(p[0]);
  cr_assert(strncmp(worker_ep, "tcp://", 6) == 0, "worker: %s", worker_ep);
}

TestSuite(events, .init = setup, .fini = teardown, .timeout = 60);

static tg_node add(const char *key, const char *fn, const tg_arg *args, size_t n) {
  tg_node_opts o = {.version = TG_NODE_OPTS_V1, .key = key, .retries = -1, .cache = -1};
  tg_node id;
  cr_assert_eq(tg_graph_add(g, fn, args, n, &o, &id), TG_OK, "%s", tg_graph_errmsg(g));
  return id;
}

/* 4 inc leaves and their sum: 5 calls. */
static tg_node fan_in(void) {
  tg_arg ins[4];
  char key[8];
  for (int i = 0; i < 4; i++) {
    snprintf(key, sizeof key, "inc%d", i);
    tg_arg a = tg_arg_value(tg_int(i));
    ins[i] = tg_arg_node(add(key, "inc", &a, 1));
  }
  return add("total", "sum_args", ins, 4);
}

/* An executor of backend/workers, or NULL when that backend is not built.
 * tcp connects to the worker start_worker() started. */
static tg_executor *executor(const char *backend, unsigned workers, tg_event_fn fn,
                             void *ctx) {
  const char *addr[] = {worker_ep};
  bool tcp = strcmp(backend, "tcp") == 0;
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend,
                         .workers = workers, .on_event = fn, .event_ctx = ctx,
                         .connect = tcp ? addr : NULL, .nconnect = tcp ? 1 : 0};
  tg_executor *ex = NULL;
  tg_error err;
  int rc = tg_executor_new(reg, &eo, &ex, &err);
  if (rc == TG_EINVAL && strstr(err.msg, "unknown backend")) return NULL;
  cr_assert_eq(rc, TG_OK, "%s: %s", backend, err.msg);
  return ex;
}

static const struct { const char *name; unsigned workers; } backends[] = {
    {"sync", 1}, {"threads", 2}, {"processes", 2}};

Test(events, every_call_and_task_on_every_backend) {
  tg_node out = fan_in();
  for (size_t b = 0; b < 3; b++) {
    recorder *r = recorder_new();
    tg_executor *ex = executor(backends[b].name, backends[b].workers, NULL, NULL);
    if (!ex) continue;
    tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = ex,
                          .on_event = record, .event_ctx = r};
    tg_value *v = NULL;
    cr_assert_eq(tg_compute(g, &out, 1, &co, &v), TG_OK, "%s", tg_graph_errmsg(g));
    cr_expect_eq(tg_value_int(v), 1 + 2 + 3 + 4);
    tg_value_unref(v);
    cr_expect_eq(r->n, 10, "%s: %zu events", backends[b].name, r->n);
    cr_expect_eq(count(r, TG_EVENT_STARTED), 5);
    cr_expect_eq(count(r, TG_EVENT_FINISHED), 5);
    const char *keys[] = {"inc0", "inc1", "inc2", "inc3", "total"};
    for (int k = 0; k < 5; k++)
      expect_call(r, keys[k], TG_EVENT_FINISHED, TG_OK, backends[b].workers);
    for (size_t i = 0; i < r->n; i++) cr_expect_eq(r->ev[i].tasks, 5);
    /* the sum starts after every input finished */
    size_t s = find(r, "total", TG_EVENT_STARTED);
    for (int k = 0; k < 4; k++) cr_expect_lt(find(r, keys[k], TG_EVENT_FINISHED), s);
    tg_executor_free(ex);
    free(r);
  }
}

Test(events, failure_and_the_tasks_it_skips) {
  tg_arg one = tg_arg_value(tg_int(1));
  tg_node bad = add("bad", "fail", &one, 1);
  tg_arg b = tg_arg_node(bad);
  tg_node after = add("after", "identity", &b, 1);
  for (size_t k = 0; k < 3; k++) {
    recorder *r = recorder_new();
    tg_executor *ex = executor(backends[k].name, backends[k].workers, NULL, NULL);
    if (!ex) continue;
    tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = ex,
                          .on_event = record, .event_ctx = r};
    tg_value *v = NULL;
    cr_assert_eq(tg_compute(g, &after, 1, &co, &v), TG_ETASK);
    cr_expect_eq(r->n, 3, "%s: %zu events", backends[k].name, r->n);
    expect_call(r, "bad", TG_EVENT_FAILED, TG_EINVAL, backends[k].workers);
    size_t s = find(r, "after", TG_EVENT_SKIPPED);
    cr_expect_eq(r->ev[s].worker, -1);
    cr_expect_eq(r->ev[s].status, TG_OK);
    cr_expect_eq(r->ev[s].start, r->ev[s].end);
    tg_executor_free(ex);
    free(r);
  }
}

Test(events, cache_hits_close_without_a_call) {
  char dir[] = "/tmp/tg_events_XXXXXX";
  cr_assert_not_null(mkdtemp(dir));
  tg_cache *cache = NULL;
  cr_assert_eq(tg_cache_open(dir, NULL, &cache, NULL), TG_OK);
  tg_arg seven = tg_arg_value(tg_int(7));
  tg_node_opts o = {.version = TG_NODE_OPTS_V1, .key = "kept", .retries = -1, .cache = 1};
  tg_node kept;
  cr_assert_eq(tg_graph_add(g, "inc", &seven, 1, &o, &kept), TG_OK);
  tg_arg k = tg_arg_node(kept);
  tg_node out = add("out", "identity", &k, 1);
  for (int pass = 0; pass < 2; pass++) {
    recorder *r = recorder_new();
    tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "threads",
                          .workers = 2, .cache = cache, .on_event = record, .event_ctx = r};
    tg_value *v = NULL;
    cr_assert_eq(tg_compute(g, &out, 1, &co, &v), TG_OK, "%s", tg_graph_errmsg(g));
    cr_expect_eq(tg_value_int(v), 8);
    tg_value_unref(v);
    if (pass == 0) {
      cr_expect_eq(r->n, 4);
      expect_call(r, "kept", TG_EVENT_FINISHED, TG_OK, 2);
    } else { /* kept comes from the cache; out is not stored (too quick) */
      cr_expect_eq(r->n, 3);
      size_t c = find(r, "kept", TG_EVENT_CACHED);
      cr_expect_eq(r->ev[c].worker, -1);
      cr_expect_eq(r->ev[c].start, r->ev[c].end);
      cr_expect_eq(count(r, TG_EVENT_STARTED), 1);
    }
    expect_call(r, "out", TG_EVENT_FINISHED, TG_OK, 2);
    free(r);
  }
  tg_cache_close(cache);
  char cmd[64];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_expect_eq(system(cmd), 0);
}

/* The executor's callback sees every run; a compute's own replaces it. */
Test(events, executor_callback_and_compute_override) {
  tg_node out = fan_in();
  recorder *rx = recorder_new(), *rc = recorder_new();
  tg_executor *ex = executor("threads", 2, record, rx);
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  tg_value *v = NULL;
  cr_assert_eq(tg_compute(g, &out, 1, &co, &v), TG_OK);
  tg_value_unref(v);
  cr_expect_eq(rx->n, 10);
  co.on_event = record;
  co.event_ctx = rc;
  cr_assert_eq(tg_compute(g, &out, 1, &co, &v), TG_OK);
  tg_value_unref(v);
  cr_expect_eq(rx->n, 10);
  cr_expect_eq(rc->n, 10);
  /* submissions run a copy of the graph: events name tasks by key */
  tg_future *f = NULL;
  cr_assert_eq(tg_executor_submit(ex, g, out, &f), TG_OK);
  cr_assert_eq(tg_future_result(f, -1, &v), TG_OK);
  tg_value_unref(v);
  tg_future_free(f);
  tg_executor_free(ex);
  cr_expect_eq(rx->n, 20);
  expect_call(rc, "total", TG_EVENT_FINISHED, TG_OK, 2);
  free(rx);
  free(rc);
}

/* ---- what each event says of the calls ---------------------------------------------- */

/* Every backend: sync, threads (2), processes (2), tcp (one worker with
 * 2 threads). */
static const struct {
  const char *name;
  unsigned workers, threads; /* threads per worker */
} all[] = {{"sync", 1, 1}, {"threads", 2, 1}, {"processes", 2, 1}, {"tcp", 1, 2}};

static tg_executor *all_executor(size_t b) {
  if (strcmp(all[b].name, "tcp") == 0 && worker_pid == 0) start_worker(all[b].threads);
  tg_executor *ex = executor(all[b].name, all[b].workers, NULL, NULL);
  cr_assert_not_null(ex, "%s is not built", all[b].name);
  return ex;
}

/* Run outputs out[0..n-1] on executor ex with retries, recording. */
static int run_recorded(tg_executor *ex, const tg_node *out, size_t n, int retries,
                        recorder *r) {
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .retries = retries,
                        .on_event = record, .event_ctx = r};
  tg_value *v[4] = {0};
  int rc = tg_compute(g, out, n, &co, v);
  for (size_t i = 0; i < n; i++) tg_value_unref(v[i]);
  return rc;
}

/* The STARTED and closing events of a call of `key` to `func` that made
 * `attempts` calls: same worker, a thread of it, attempts counted, the
 * span inside [STARTED, the callback], and no message unless it failed
 * (then exactly `message`). */
static void expect_fields(const recorder *r, const char *be, unsigned threads, const char *key,
                          const char *func, tg_event_kind kind, unsigned attempts,
                          const char *message) {
  const seen *s = &r->ev[find(r, key, TG_EVENT_STARTED)], *e = &r->ev[find(r, key, kind)];
  /* processes and tcp are one engine: a task starts when a worker is
   * chosen, before the worker picks the thread */
  bool tcp = strcmp(be, "tcp") == 0 || strcmp(be, "processes") == 0;
  cr_expect_str_eq(s->func, func, "%s: %s", be, key);
  cr_expect_str_eq(e->func, func, "%s: %s", be, key);
  cr_expect_eq(s->attempts, 1, "%s: %s", be, key);
  cr_expect_eq(s->thread, tcp ? -1 : 0, "%s: %s started on thread %d", be, key, s->thread);
  /* a retry on processes may run on another worker than the first call */
  if (attempts == 1 || strcmp(be, "processes") != 0)
    cr_expect_eq(s->worker, e->worker, "%s: %s started on %d, ended on %d", be, key,
                 s->worker, e->worker);
  cr_expect(!s->has_message, "%s: %s", be, key);
  cr_expect(e->thread >= 0 && (unsigned)e->thread < threads, "%s: %s on thread %d", be, key,
            e->thread);
  cr_expect_eq(e->attempts, attempts, "%s: %s made %u calls", be, key, e->attempts);
  cr_expect_geq(e->start, s->start, "%s: %s ran before it started", be, key);
  cr_expect_leq(e->start, e->end, "%s: %s", be, key);
  cr_expect_leq(e->end, e->at, "%s: %s ended after its event", be, key);
  if (message) {
    cr_expect(e->has_message, "%s: %s", be, key);
    cr_expect_str_eq(e->message, message, "%s: %s", be, key);
  } else {
    cr_expect(!e->has_message, "%s: %s: %s", be, key, e->message);
  }
}

/* An event without a call: no thread, no attempt, no message. */
static void expect_no_call(const recorder *r, const char *be, const char *key,
                           const char *func, tg_event_kind kind) {
  const seen *e = &r->ev[find(r, key, kind)];
  cr_expect_str_eq(e->func, func, "%s: %s", be, key);
  cr_expect_eq(e->thread, -1, "%s: %s", be, key);
  cr_expect_eq(e->attempts, 0, "%s: %s", be, key);
  cr_expect(!e->has_message, "%s: %s", be, key);
  cr_expect_eq(e->start, e->end, "%s: %s", be, key);
}

Test(events, function_thread_and_attempts_on_every_backend) {
  tg_node out = fan_in();
  for (size_t b = 0; b < sizeof all / sizeof all[0]; b++) {
    recorder *r = recorder_new();
    tg_executor *ex = all_executor(b);
    cr_assert_eq(run_recorded(ex, &out, 1, 0, r), TG_OK, "%s", tg_graph_errmsg(g));
    cr_expect_eq(r->n, 10, "%s: %zu events", all[b].name, r->n);
    const char *keys[] = {"inc0", "inc1", "inc2", "inc3"};
    for (int k = 0; k < 4; k++)
      expect_fields(r, all[b].name, all[b].threads, keys[k], "inc", TG_EVENT_FINISHED, 1, NULL);
    expect_fields(r, all[b].name, all[b].threads, "total", "sum_args", TG_EVENT_FINISHED, 1,
                  NULL);
    tg_executor_free(ex);
    free(r);
  }
}

/* Retries are counted; the failure's message comes with FAILED; the task
 * it blocks is skipped without a call. */
Test(events, retries_attempts_and_the_failure_message_on_every_backend) {
  tg_arg one = tg_arg_value(tg_int(1));
  tg_node bad = add("bad", "fail", &one, 1);
  tg_arg b = tg_arg_node(bad);
  tg_node after = add("after", "identity", &b, 1);
  tg_arg ff[] = {tg_arg_value(tg_int(1)), tg_arg_value(tg_int(5))};
  tg_node late = add("late", "fail_first", ff, 2);
  for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
    tg_executor *ex = all_executor(k);
    recorder *r = recorder_new();
    cr_assert_eq(run_recorded(ex, &late, 1, 2, r), TG_OK, "%s", tg_graph_errmsg(g));
    expect_fields(r, all[k].name, all[k].threads, "late", "fail_first", TG_EVENT_FINISHED, 2,
                  NULL);
    free(r);
    r = recorder_new();
    cr_assert_eq(run_recorded(ex, &after, 1, 2, r), TG_ETASK);
    cr_expect_eq(r->n, 3, "%s: %zu events", all[k].name, r->n);
    expect_fields(r, all[k].name, all[k].threads, "bad", "fail", TG_EVENT_FAILED, 3,
                  "always fails");
    cr_expect_eq(r->ev[find(r, "bad", TG_EVENT_FAILED)].status, TG_EINVAL);
    expect_no_call(r, all[k].name, "after", "identity", TG_EVENT_SKIPPED);
    free(r);
    tg_executor_free(ex);
  }
}

/* An argument that cannot be taken fails the task before any call. */
Test(events, failure_before_the_call_on_every_backend) {
  tg_arg two[] = {tg_arg_value(tg_int(1)), tg_arg_value(tg_int(2))};
  tg_node lst = add("lst", "pack", two, 2);
  tg_arg seventh = tg_arg_item(lst, 7);
  tg_node pick = add("pick", "identity", &seventh, 1);
  for (size_t k = 0; k < sizeof all / sizeof all[0]; k++) {
    tg_executor *ex = all_executor(k);
    recorder *r = recorder_new();
    cr_assert_eq(run_recorded(ex, &pick, 1, 2, r), TG_ETASK);
    const seen *e = &r->ev[find(r, "pick", TG_EVENT_FAILED)];
    cr_expect_eq(count(r, TG_EVENT_STARTED), 1, "%s", all[k].name); /* lst only */
    cr_expect_str_eq(e->func, "identity");
    cr_expect_eq(e->status, TG_ERANGE, "%s", all[k].name);
    cr_expect_eq(e->thread, -1, "%s", all[k].name);
    cr_expect_eq(e->attempts, 0, "%s", all[k].name);
    cr_expect_str_eq(e->message, "argument 0: index 7 out of range for the list of 2 from 'lst'",
                     "%s", all[k].name);
    free(r);
    tg_executor_free(ex);
  }
}

/* ---- call spans ------------------------------------------------------------------------- */

/* The closing events of calls, sorted by (worker, thread, start). */
static int by_lane(const void *a, const void *b) {
  const seen *x = a, *y = b;
  if (x->worker != y->worker) return x->worker < y->worker ? -1 : 1;
  if (x->thread != y->thread) return x->thread < y->thread ? -1 : 1;
  return x->start < y->start ? -1 : x->start > y->start;
}

/* n timed_sleep(ms) tasks run on ex. Each closing event's span lasts ms
 * at least, holds the call's own readings of the clock, lies between its
 * STARTED event and the callback, and slices of one (worker, thread)
 * never overlap. tcp places the worker's times on ours early by up to
 * the quickest trip seen from sending a task to the worker handling it:
 * its end may come before the call's last reading by that much, which
 * is well under a millisecond on an idle loopback, but tens of them for
 * a session's first message under a sanitizer on a loaded machine.
 * Returns how many (worker, thread) lanes were used. */
static size_t expect_sleeps(tg_executor *ex, const char *be, int n, int ms, unsigned threads) {
  /* (processes: the same engine, placing its workers' times alike) */
  const double trip = strcmp(be, "tcp") == 0 || strcmp(be, "processes") == 0 ? 0.100 : 0;
  tg_arg ins[16];
  cr_assert_leq(n, 16);
  for (int i = 0; i < n; i++) {
    char key[16];
    snprintf(key, sizeof key, "sleep%d", i);
    tg_arg a = tg_arg_value(tg_int(ms));
    ins[i] = tg_arg_node(add(key, "timed_sleep", &a, 1));
  }
  tg_node out = add("all", "pack", ins, (size_t)n);
  recorder *r = recorder_new();
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .on_event = record,
                        .event_ctx = r};
  tg_value *v = NULL;
  cr_assert_eq(tg_compute(g, &out, 1, &co, &v), TG_OK, "%s", tg_graph_errmsg(g));
  seen calls[16];
  size_t m = 0;
  for (size_t i = 0; i < r->n; i++)
    if (r->ev[i].kind == TG_EVENT_FINISHED && strncmp(r->ev[i].key, "sleep", 5) == 0)
      calls[m++] = r->ev[i];
  cr_assert_eq(m, (size_t)n, "%s", be);
  for (size_t i = 0; i < m; i++) {
    const seen *c = &calls[i];
    const tg_value *own = tg_list_get(v, (size_t)atoi(c->key + 5));
    double fs = tg_value_float(tg_list_get(own, 0)), fe = tg_value_float(tg_list_get(own, 1));
    cr_expect_geq(c->end - c->start, ms * 1e-3, "%s: %s took %.3f ms", be, c->key,
                  (c->end - c->start) * 1e3);
    cr_expect_leq(c->start, fs, "%s: %s placed at %.6f, called at %.6f", be, c->key, c->start,
                  fs);
    cr_expect_geq(c->end, fe - trip, "%s: %s placed until %.6f, returned at %.6f", be, c->key,
                  c->end, fe);
    cr_expect(c->thread >= 0 && (unsigned)c->thread < threads, "%s: thread %d", be, c->thread);
    const seen *s = &r->ev[find(r, c->key, TG_EVENT_STARTED)];
    cr_expect_geq(c->start, s->start, "%s: %s", be, c->key);
    cr_expect_leq(c->end, c->at, "%s: %s", be, c->key);
  }
  tg_value_unref(v);
  qsort(calls, m, sizeof calls[0], by_lane);
  size_t lanes = m ? 1 : 0;
  for (size_t i = 1; i < m; i++) {
    if (calls[i].worker != calls[i - 1].worker || calls[i].thread != calls[i - 1].thread) {
      lanes++;
      continue;
    }
    cr_expect_geq(calls[i].start, calls[i - 1].end,
                  "%s: on worker %d thread %d, %s [%.6f, %.6f] overlaps %s [%.6f, %.6f]", be,
                  calls[i].worker, calls[i].thread, calls[i].key, calls[i].start, calls[i].end,
                  calls[i - 1].key, calls[i - 1].start, calls[i - 1].end);
  }
  free(r);
  return lanes;
}

/* A one-thread worker runs 3 x 20 ms one after the other: 3 slices on
 * thread 0 where the calls ran, none overlapping, each between the
 * task's sending and its result's arrival. */
Test(events, tcp_spans_are_measured_on_the_worker) {
  start_worker(1);
  tg_executor *ex = executor("tcp", 1, NULL, NULL);
  cr_assert_not_null(ex);
  cr_expect_eq(expect_sleeps(ex, "tcp", 3, 20, 1), 1);
  tg_executor_free(ex);
}

Test(events, tcp_two_threads_never_overlap_per_thread) {
  start_worker(2);
  tg_executor *ex = executor("tcp", 1, NULL, NULL);
  cr_assert_not_null(ex);
  expect_sleeps(ex, "tcp", 8, 15, 2);
  tg_executor_free(ex);
}

/* Two worker processes: batches come back at once, but each task's slice
 * is where it ran. */
Test(events, processes_spans_never_overlap_per_worker) {
  tg_executor *ex = executor("processes", 2, NULL, NULL);
  cr_assert_not_null(ex);
  expect_sleeps(ex, "processes", 8, 15, 1);
  tg_executor_free(ex);
}
