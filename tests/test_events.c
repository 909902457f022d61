/* tests/test_events.c: the scheduler's task events (tg_compute_opts and
 * tg_executor_opts on_event): one closing event per task of a run, one
 * STARTED before each call's end, on every local backend, with cache
 * hits, failures and skips. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "test_funcs.h"
#include "tgraph/cache.h"
#include "tgraph/executor.h"

#define MAXEV 256

typedef struct seen {
  tg_event_kind kind;
  char key[64];
  int worker, status;
  double start, end;
  size_t tasks;
} seen;

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
    *s = (seen){e->kind, "", e->worker, e->status, e->start, e->end, e->tasks};
    snprintf(s->key, sizeof s->key, "%s", e->key);
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

static tg_registry *reg;
static tg_graph *g;

static void setup(void) {
  reg = tgt_registry_new();
  cr_assert_not_null(reg);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
}

static void teardown(void) {
  tg_graph_free(g);
  tg_registry_free(reg);
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

/* An executor of backend/workers, or NULL when that backend is not built. */
static tg_executor *executor(const char *backend, unsigned workers, tg_event_fn fn,
                             void *ctx) {
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend,
                         .workers = workers, .on_event = fn, .event_ctx = ctx};
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
