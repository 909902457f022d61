/* tests/test_fanout.c: maps in graph.json (over constant lists, ranges,
 * lists of refs and task results), maps whose list is known only at run
 * time (tg_graph_map_node), on every backend, against the same graphs
 * written out by hand; their cache behaviour; bad map syntax; node lists
 * as one argument (tg_arg_nodes). */
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tgraph/builtins.h"
#include "tgraph/cache.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/graphjson.h"
#include "tgraph/remote.h"

/* ---- functions ------------------------------------------------------------ */

static int fn_affine(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n; /* a * x + b */
  for (int i = 0; i < 3; i++)
    if (tg_value_type(a[i]) != TG_INT) return tg_task_fail(ctx, TG_ETYPE, "ints only");
  *out = tg_int(tg_value_int(a[0]) * tg_value_int(a[1]) + tg_value_int(a[2]));
  return TG_OK;
}

static int fn_sq(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  if (tg_value_type(a[0]) != TG_INT) return tg_task_fail(ctx, TG_ETYPE, "an int");
  *out = tg_int(tg_value_int(a[0]) * tg_value_int(a[0]));
  return TG_OK;
}

static int fn_total(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n; /* the sum of a list of ints */
  if (tg_value_type(a[0]) != TG_LIST) return tg_task_fail(ctx, TG_ETYPE, "a list");
  int64_t s = 0;
  for (size_t i = 0; i < tg_list_len(a[0]); i++) s += tg_value_int(tg_list_get(a[0], i));
  *out = tg_int(s);
  return TG_OK;
}

/* The int written in the file at path a[0]. */
static int fn_parse(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  const char *p = tg_str_data(a[0], NULL);
  FILE *f = p ? fopen(p, "r") : NULL;
  long long v = 0;
  int ok = f && fscanf(f, "%lld", &v) == 1;
  if (f) fclose(f);
  if (!ok) return tg_task_fail(ctx, TG_EINVAL, "cannot parse '%s'", p ? p : "?");
  *out = tg_int(v);
  return TG_OK;
}

/* A list of the ints 0 .. a[0] - 1: a list known only once it ran. */
static int fn_upto(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  int64_t k = tg_value_int(a[0]);
  tg_value *l = tg_list_alloc((size_t)k);
  if (!l) return tg_task_fail(ctx, TG_ENOMEM, "oom");
  for (int64_t i = 0; i < k; i++) tg_list_init_item(l, (size_t)i, tg_int(i));
  *out = l;
  return TG_OK;
}

static tg_registry *reg;

static void add_fn(const char *name, tg_task_fn fn, unsigned flags, int nargs) {
  tg_func_def d = {TG_FUNC_DEF_V1, name, "1", fn, flags, nargs, NULL, NULL, 0, NULL, NULL};
  cr_assert_eq(tg_registry_add(reg, &d, NULL), TG_OK);
}

static void setup(void) {
  signal(SIGPIPE, SIG_IGN);
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_OK);
  add_fn("fo.affine", fn_affine, TG_FUNC_PURE, 3);
  add_fn("fo.sq", fn_sq, TG_FUNC_PURE, 1);
  add_fn("fo.total", fn_total, TG_FUNC_PURE, 1);
  add_fn("fo.parse", fn_parse, TG_FUNC_PURE | TG_FUNC_FILE_SOURCE, 1);
  add_fn("fo.upto", fn_upto, TG_FUNC_PURE, 1);
}

static void teardown(void) { tg_registry_free(reg); }

TestSuite(fanout, .init = setup, .fini = teardown, .timeout = 300);

/* ---- backends ---------------------------------------------------------------- */

/* A tcp worker serving reg in a thread of the test. */
typedef struct inproc {
  volatile sig_atomic_t stop;
  char ep[128];
  atomic_int ready;
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
                      .nthreads = 2, .stop = &w->stop, .on_ready = inproc_ready, .ctx = w};
  tg_worker_serve(reg, &o, NULL);
  return NULL;
}

/* A backend for a compute: a scheduler name, or a tcp executor over a
 * worker of our own. */
typedef struct backend {
  const char *name;
  inproc w;
  tg_executor *ex;
} backend;

static void backend_start(backend *b, const char *name) {
  memset(b, 0, sizeof *b);
  b->name = name;
  if (strcmp(name, "tcp") != 0) return;
  pthread_create(&b->w.th, NULL, inproc_main, &b->w);
  while (!atomic_load(&b->w.ready)) usleep(1000); /* a worker always gets ready */
  const char *addr[1] = {b->w.ep};
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addr,
                        .nconnect = 1};
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &o, &b->ex, &err), TG_OK, "%s", err.msg);
}

static void backend_stop(backend *b) {
  if (!b->ex) return;
  tg_executor_free(b->ex);
  __atomic_store_n(&b->w.stop, 1, __ATOMIC_RELAXED);
  pthread_join(b->w.th, NULL);
}

static tg_compute_opts opts_for(const backend *b, tg_compute_stats *st) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = b->name, .workers = 2,
                       .executor = b->ex, .stats = st};
  return o;
}

static const char *const backends[] = {"sync", "threads", "processes", "tcp"};

/* ---- helpers ---------------------------------------------------------------- */

static tg_graph *parse_json(const char *text, tg_graphjson_info **info) {
  tg_graph *g = NULL;
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_graphjson_parse(text, strlen(text), "g.json", NULL, reg, NULL, &g, info, &err);
  cr_assert_eq(rc, TG_OK, "%s", err.msg);
  return g;
}

/* The error message of a graph.json that must not load. */
static const char *bad_json(const char *text, int want) {
  static tg_error err;
  tg_graph *g = NULL;
  tg_error_clear(&err);
  int rc = tg_graphjson_parse(text, strlen(text), "g.json", NULL, reg, NULL, &g, NULL, &err);
  cr_assert_eq(rc, want, "%s: %s", tg_err_name(rc), err.msg);
  cr_assert_null(g);
  return err.msg;
}

/* The outputs of text, computed on b, as one list value. */
static tg_value *run_json(const char *text, const backend *b, tg_compute_stats *st) {
  tg_graphjson_info *info = NULL;
  tg_graph *g = parse_json(text, &info);
  size_t n = info->noutputs;
  tg_value *res[16] = {0};
  cr_assert_leq(n, 16);
  tg_compute_opts o = opts_for(b, st);
  int rc = tg_compute(g, info->output_nodes, n, &o, res);
  cr_assert_eq(rc, TG_OK, "%s on %s: %s", tg_err_name(rc), b->name, tg_graph_errmsg(g));
  tg_value *all = tg_list_alloc(n);
  for (size_t i = 0; i < n; i++) tg_list_init_item(all, i, res[i]);
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  return all;
}

/* v as JSON text (free it). */
static char *json(const tg_value *v) {
  char *s = NULL;
  cr_assert_eq(tg_value_to_json(v, 0, &s, NULL, NULL), TG_OK);
  return s;
}

static void expect_equal(const tg_value *got, const tg_value *want, const char *what) {
  char *a = json(got), *b = json(want);
  cr_expect(tg_value_equal(got, want), "%s: got %s, want %s", what, a, b);
  free(a);
  free(b);
}

/* ---- graph.json maps, every backend ----------------------------------------- */

/* Maps over a constant list (item in the middle), a range, a list of refs
 * and a task's result (chunked, with a ref among the extras). */
static const char mapped[] =
    "{\"tgraph\": 1, \"tasks\": {\n"
    "  \"k\": {\"fn\": \"fo.affine\", \"args\": [2, 5, 0]},\n"
    "  \"xs\": {\"map\": \"fo.affine\", \"over\": [1, 2, 3, 4, 5],\n"
    "          \"args\": [3, {\"item\": true}, 1], \"chunksize\": 2},\n"
    "  \"sq\": {\"map\": \"fo.sq\", \"over\": {\"range\": [10, 0, -3]}},\n"
    "  \"lit\": {\"map\": \"fo.sq\", \"over\": [{\"ref\": \"k\"}, 3]},\n"
    "  \"dyn\": {\"map\": \"fo.affine\", \"over\": {\"ref\": \"xs\"},\n"
    "           \"args\": [{\"ref\": \"k\"}, {\"item\": true}, 0], \"chunksize\": 2},\n"
    "  \"total\": {\"fn\": \"fo.total\", \"args\": [{\"ref\": \"dyn\"}]}},\n"
    " \"outputs\": [\"xs\", \"sq\", \"lit\", \"dyn\", \"total\"]}";

/* The same, each call written out. */
static const char by_hand[] =
    "{\"tgraph\": 1, \"tasks\": {\n"
    "  \"k\": {\"fn\": \"fo.affine\", \"args\": [2, 5, 0]},\n"
    "  \"x1\": {\"fn\": \"fo.affine\", \"args\": [3, 1, 1]},\n"
    "  \"x2\": {\"fn\": \"fo.affine\", \"args\": [3, 2, 1]},\n"
    "  \"x3\": {\"fn\": \"fo.affine\", \"args\": [3, 3, 1]},\n"
    "  \"x4\": {\"fn\": \"fo.affine\", \"args\": [3, 4, 1]},\n"
    "  \"x5\": {\"fn\": \"fo.affine\", \"args\": [3, 5, 1]},\n"
    "  \"xs\": {\"fn\": \"identity\", \"args\": [[{\"ref\": \"x1\"}, {\"ref\": \"x2\"},"
    " {\"ref\": \"x3\"}, {\"ref\": \"x4\"}, {\"ref\": \"x5\"}]]},\n"
    "  \"s1\": {\"fn\": \"fo.sq\", \"args\": [10]},\n"
    "  \"s2\": {\"fn\": \"fo.sq\", \"args\": [7]},\n"
    "  \"s3\": {\"fn\": \"fo.sq\", \"args\": [4]},\n"
    "  \"s4\": {\"fn\": \"fo.sq\", \"args\": [1]},\n"
    "  \"sq\": {\"fn\": \"identity\", \"args\": [[{\"ref\": \"s1\"}, {\"ref\": \"s2\"},"
    " {\"ref\": \"s3\"}, {\"ref\": \"s4\"}]]},\n"
    "  \"l1\": {\"fn\": \"fo.sq\", \"args\": [{\"ref\": \"k\"}]},\n"
    "  \"l2\": {\"fn\": \"fo.sq\", \"args\": [3]},\n"
    "  \"lit\": {\"fn\": \"identity\", \"args\": [[{\"ref\": \"l1\"}, {\"ref\": \"l2\"}]]},\n"
    "  \"d1\": {\"fn\": \"fo.affine\", \"args\": [{\"ref\": \"k\"}, {\"ref\": \"x1\"}, 0]},\n"
    "  \"d2\": {\"fn\": \"fo.affine\", \"args\": [{\"ref\": \"k\"}, {\"ref\": \"x2\"}, 0]},\n"
    "  \"d3\": {\"fn\": \"fo.affine\", \"args\": [{\"ref\": \"k\"}, {\"ref\": \"x3\"}, 0]},\n"
    "  \"d4\": {\"fn\": \"fo.affine\", \"args\": [{\"ref\": \"k\"}, {\"ref\": \"x4\"}, 0]},\n"
    "  \"d5\": {\"fn\": \"fo.affine\", \"args\": [{\"ref\": \"k\"}, {\"ref\": \"x5\"}, 0]},\n"
    "  \"dyn\": {\"fn\": \"identity\", \"args\": [[{\"ref\": \"d1\"}, {\"ref\": \"d2\"},"
    " {\"ref\": \"d3\"}, {\"ref\": \"d4\"}, {\"ref\": \"d5\"}]]},\n"
    "  \"total\": {\"fn\": \"fo.total\", \"args\": [{\"ref\": \"dyn\"}]}},\n"
    " \"outputs\": [\"xs\", \"sq\", \"lit\", \"dyn\", \"total\"]}";

Test(fanout, json_maps_equal_the_graph_by_hand_on_every_backend) {
  backend s;
  backend_start(&s, "sync");
  tg_value *want = run_json(by_hand, &s, NULL);
  char *j = json(want);
  cr_assert_str_eq(j, "[[4,7,10,13,16],[100,49,16,1],[100,9],[40,70,100,130,160],500]");
  free(j);
  tg_value_unref(want);
  for (size_t i = 0; i < sizeof backends / sizeof *backends; i++) {
    backend b;
    backend_start(&b, backends[i]);
    tg_compute_stats st;
    tg_value *got = run_json(mapped, &b, &st);
    want = run_json(by_hand, &b, NULL);
    expect_equal(got, want, backends[i]);
    /* first stage: xs's 3 chunks and gather; second: k, xs again (an
     * output, not cached), sq (4 chunks of 1 item + gather), lit (2 + 1),
     * dyn (3 + 1), total */
    cr_expect_eq(st.tasks_total, 4 + 1 + 4 + 5 + 3 + 4 + 1, "%s: %zu tasks", backends[i], st.tasks_total);
    cr_expect_eq(st.tasks_failed, 0);
    tg_value_unref(got);
    tg_value_unref(want);
    backend_stop(&b);
  }
}

/* ---- run-time maps ------------------------------------------------------------ */

/* A temporary directory with n files holding 1, 2, ..., n (file i named
 * f<i>.txt, two digits). */
static void make_files(char *dir, size_t size, int n) {
  snprintf(dir, size, "/tmp/tg_fanout_XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  for (int i = 1; i <= n; i++) {
    char p[256];
    snprintf(p, sizeof p, "%s/f%02d.txt", dir, i);
    FILE *f = fopen(p, "w");
    cr_assert_not_null(f);
    fprintf(f, "%d\n", i);
    fclose(f);
  }
}

static void remove_dir(const char *dir) {
  char cmd[512];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_expect_eq(system(cmd), 0);
}

static void glob_json(char *out, size_t size, const char *dir, const char *ext) {
  snprintf(out, size,
           "{\"tgraph\": 1, \"tasks\": {\n"
           "  \"files\": {\"fn\": \"glob\", \"args\": [\"%s/*.%s\"]},\n"
           "  \"parsed\": {\"map\": \"fo.parse\", \"over\": {\"ref\": \"files\"},"
           " \"chunksize\": 2},\n"
           "  \"total\": {\"fn\": \"fo.total\", \"args\": [{\"ref\": \"parsed\"}]}},\n"
           " \"outputs\": [\"parsed\", \"total\"]}",
           dir, ext);
}

/* glob -> parse each file -> merge, the list known only at run time. */
Test(fanout, glob_parse_merge_on_every_backend) {
  char dir[64], text[1024];
  make_files(dir, sizeof dir, 7);
  glob_json(text, sizeof text, dir, "txt");
  for (size_t i = 0; i < sizeof backends / sizeof *backends; i++) {
    backend b;
    backend_start(&b, backends[i]);
    tg_compute_stats st;
    tg_value *got = run_json(text, &b, &st);
    char *j = json(got);
    cr_expect_str_eq(j, "[[1,2,3,4,5,6,7],28]", "%s", backends[i]);
    free(j);
    /* glob; then 4 chunks, their concatenation and the total */
    cr_expect_eq(st.tasks_total, 7, "%s: %zu tasks", backends[i], st.tasks_total);
    cr_expect_eq(st.tasks_run, 7, "%s: %zu run", backends[i], st.tasks_run);
    tg_value_unref(got);
    backend_stop(&b);
  }
  /* nothing matches: an empty list, mapped to an empty list */
  glob_json(text, sizeof text, dir, "none");
  backend b;
  backend_start(&b, "threads");
  tg_value *got = run_json(text, &b, NULL);
  char *j = json(got);
  cr_expect_str_eq(j, "[[],0]");
  free(j);
  tg_value_unref(got);
  remove_dir(dir);
}

/* The C API: the same through tg_graph_map_node; the graph keeps one
 * node per map after the compute, and a second compute expands again. */
Test(fanout, map_node_in_c) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "fo.upto", 1, tg_arg_value(tg_int(6)));
  tg_arg extra[2] = {tg_arg_value(tg_int(10)), tg_arg_value(tg_int(1))};
  tg_node m, e;
  cr_assert_eq(tg_graph_map_node(g, "fo.affine", n, extra, 0, 4, NULL, &e), TG_EINVAL);
  cr_expect_str_eq(tg_graph_errmsg(g), "map of 'fo.affine': it takes 3 arguments, a map "
                   "passes 1");
  tg_node_opts no = {TG_NODE_OPTS_V1, "scaled", -1, -1, 0, 0};
  /* fo.affine(item, 10, 1): item * 10 + 1 */
  cr_assert_eq(tg_graph_map_node(g, "fo.affine", n, extra, 2, 4, &no, &m), TG_OK);
  tg_node t = tg_call(g, "fo.total", 1, tg_arg_node(m));
  size_t size = tg_graph_size(g);
  for (int round = 0; round < 2; round++) {
    tg_value *r[2] = {0};
    tg_node outs[2] = {m, t};
    tg_compute_stats st;
    tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "threads",
                         .workers = 2, .stats = &st};
    cr_assert_eq(tg_compute(g, outs, 2, &o, r), TG_OK, "%s", tg_graph_errmsg(g));
    char *j = json(r[0]);
    cr_expect_str_eq(j, "[1,11,21,31,41,51]");
    free(j);
    cr_expect_eq(tg_value_int(r[1]), 156);
    cr_expect_eq(st.tasks_total, 1 + 2 + 1 + 1); /* upto; 2 chunks, gather, total */
    cr_expect_eq(tg_graph_size(g), size, "the chunks are gone after the compute");
    tg_value_unref(r[0]);
    tg_value_unref(r[1]);
  }
  tg_graph_free(g);
}

/* A map over a result that is no list fails, naming the map and the type. */
Test(fanout, map_over_a_non_list_fails) {
  static const char text[] =
      "{\"tgraph\": 1, \"tasks\": {\n"
      "  \"k\": {\"fn\": \"fo.sq\", \"args\": [3]},\n"
      "  \"bad\": {\"map\": \"fo.sq\", \"over\": {\"ref\": \"k\"}}}}";
  for (size_t i = 0; i < sizeof backends / sizeof *backends; i++) {
    backend b;
    backend_start(&b, backends[i]);
    tg_graphjson_info *info;
    tg_graph *g = parse_json(text, &info);
    tg_value *r = NULL;
    tg_compute_stats st;
    tg_compute_opts o = opts_for(&b, &st);
    cr_expect_eq(tg_compute(g, info->output_nodes, 1, &o, &r), TG_ETYPE, "%s", backends[i]);
    cr_expect_str_eq(tg_graph_errmsg(g), "task 'bad' failed: TG_ETYPE: it maps over the "
                     "result of 'k', of type int, not a list");
    cr_expect_null(r);
    cr_expect_eq(st.failed_node, tg_graph_find(g, "bad"));
    tg_graphjson_info_free(info);
    tg_graph_free(g);
    backend_stop(&b);
  }
}

/* 100,000 items, chunked: a constant range and a run-time list. */
Test(fanout, huge_range_chunked) {
  static const char text[] =
      "{\"tgraph\": 1, \"tasks\": {\n"
      "  \"n\": {\"fn\": \"fo.upto\", \"args\": [100000]},\n"
      "  \"a\": {\"map\": \"fo.sq\", \"over\": {\"range\": [0, 100000]}, \"chunksize\": 1000},\n"
      "  \"b\": {\"map\": \"fo.sq\", \"over\": {\"ref\": \"n\"}, \"chunksize\": 1000},\n"
      "  \"ta\": {\"fn\": \"fo.total\", \"args\": [{\"ref\": \"a\"}]},\n"
      "  \"tb\": {\"fn\": \"fo.total\", \"args\": [{\"ref\": \"b\"}]}},\n"
      " \"outputs\": [\"ta\", \"tb\"]}";
  const char *names[] = {"threads", "processes"};
  for (int i = 0; i < 2; i++) {
    backend b;
    backend_start(&b, names[i]);
    tg_compute_stats st;
    tg_value *got = run_json(text, &b, &st);
    int64_t want = (int64_t)99999 * 100000 * 199999 / 6;
    cr_expect_eq(tg_value_int(tg_list_get(got, 0)), want);
    cr_expect_eq(tg_value_int(tg_list_get(got, 1)), want);
    /* n; a's 100 chunks, gather and ta. b's chunks are the same calls on
     * the same items as a's once n's list is known, so they, its gather
     * and tb are merged into a's tasks (identical pure calls run once). */
    cr_expect_eq(st.tasks_total, 1 + 102, "%s: %zu", names[i], st.tasks_total);
    tg_value_unref(got);
    backend_stop(&b);
  }
}

/* ---- cache ------------------------------------------------------------------- */

typedef struct chunk_count {
  atomic_int ran, cached;
} chunk_count;

static void count_chunks(void *ctx, const tg_event *e) {
  chunk_count *c = ctx;
  if (strncmp(e->key, "fo.parse.chunk#", 15) != 0) return; /* the chunks' generated keys */
  if (e->kind == TG_EVENT_FINISHED) atomic_fetch_add(&c->ran, 1);
  if (e->kind == TG_EVENT_CACHED) atomic_fetch_add(&c->cached, 1);
}

static void run_cached(const char *text, tg_cache *cache, chunk_count *c, int64_t want) {
  tg_graphjson_info *info;
  tg_graph *g = parse_json(text, &info);
  atomic_store(&c->ran, 0);
  atomic_store(&c->cached, 0);
  tg_value *r[2] = {0};
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "threads", .workers = 2,
                       .cache = cache, .on_event = count_chunks, .event_ctx = c};
  cr_assert_eq(tg_compute(g, info->output_nodes, 2, &o, r), TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(tg_value_int(r[1]), want);
  tg_value_unref(r[0]);
  tg_value_unref(r[1]);
  tg_graphjson_info_free(info);
  tg_graph_free(g);
}

/* A rerun runs no chunk; changing one file runs its chunk alone (a
 * chunk's key covers its own items: here the files' contents). */
Test(fanout, cache_per_chunk) {
  char dir[64], cdir[96], text[1024];
  make_files(dir, sizeof dir, 8);
  snprintf(cdir, sizeof cdir, "%s/cache", dir);
  tg_cache_opts co = {.version = TG_CACHE_OPTS_V1, .min_compute_seconds = TG_CACHE_STORE_ALL};
  tg_cache *cache;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_cache_open(cdir, &co, &cache, &err), TG_OK, "%s", err.msg);
  glob_json(text, sizeof text, dir, "txt");
  chunk_count c;
  run_cached(text, cache, &c, 36);
  cr_expect_eq(atomic_load(&c.ran), 4);
  run_cached(text, cache, &c, 36);
  cr_expect_eq(atomic_load(&c.ran), 0, "a rerun runs no chunk");
  char p[256];
  snprintf(p, sizeof p, "%s/f05.txt", dir);
  FILE *f = fopen(p, "w");
  fprintf(f, "105\n");
  fclose(f);
  run_cached(text, cache, &c, 136);
  cr_expect_eq(atomic_load(&c.ran), 1, "only f05's chunk runs");
  cr_expect_eq(atomic_load(&c.cached), 3, "the other chunks are hits");
  tg_cache_close(cache);
  remove_dir(dir);
}

/* ---- bad map syntax ------------------------------------------------------------ */

Test(fanout, bad_map_syntax_names_file_line_col) {
  cr_expect_str_eq(bad_json("{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"a\": {\"map\": \"fo.sq\", \"over\": \"x\"}}}",
                            TG_EFORMAT),
                   "g.json:2:33: \"over\" must be a list, {\"range\": [start, stop]} or "
                   "[start, stop, step] of ints (step not 0, at most 100000000 items), or "
                   "{\"ref\": KEY}");
  cr_expect_str_eq(bad_json("{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"a\": {\"map\": \"fo.sq\", \"over\": {\"range\": [0, 9, 0]}}}}",
                            TG_EFORMAT),
                   "g.json:2:33: \"over\" must be a list, {\"range\": [start, stop]} or "
                   "[start, stop, step] of ints (step not 0, at most 100000000 items), or "
                   "{\"ref\": KEY}");
  cr_expect_str_eq(bad_json("{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"a\": {\"map\": \"fo.sq\"}}}", TG_EFORMAT),
                   "g.json:2:3: map task 'a' has no \"over\"");
  cr_expect_str_eq(bad_json("{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"a\": {\"fn\": \"fo.sq\", \"map\": \"fo.sq\"}}}", TG_EFORMAT),
                   "g.json:2:24: task 'a' has both \"fn\" and \"map\"");
  cr_expect_str_eq(bad_json("{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"a\": {\"map\": \"fo.sq\", \"over\": [1], \"chunksize\": -1}}}",
                            TG_EFORMAT),
                   "g.json:2:51: \"chunksize\" must be an int from 0 (picked) to 16777215");
  cr_expect_str_eq(bad_json("{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"a\": {\"map\": \"fo.affine\", \"over\": [1],\n"
                            "         \"args\": [{\"item\": true}, {\"item\": true}, 1]}}}",
                            TG_EFORMAT),
                   "g.json:3:18: map task 'a' has more than one {\"item\": true} in \"args\"");
  cr_expect_str_eq(bad_json("{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"a\": {\"map\": \"fo.affine\", \"over\": [1], \"args\": [1]}}}",
                            TG_EINVAL),
                   "g.json:2:16: function 'fo.affine' takes 3 arguments, a map calls it "
                   "with 2 (the item and 1 of \"args\")");
  cr_expect_str_eq(bad_json("{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"k\": {\"fn\": \"fo.sq\", \"args\": [1]},\n"
                            "  \"a\": {\"map\": \"fo.sq\", \"over\": {\"ref\": \"k\", \"get\": 0}}}}",
                            TG_EFORMAT),
                   "g.json:3:33: \"over\" maps over a whole task's result: a ref with "
                   "\"get\" is not supported");
  cr_expect_str_eq(bad_json("{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"k\": {\"fn\": \"fo.sq\", \"args\": [1]},\n"
                            "  \"a\": {\"map\": \"fo.sq\", \"over\": [[{\"ref\": \"k\"}]]}}}",
                            TG_EFORMAT),
                   "g.json:3:34: an item of \"over\" is a constant or a ref, not a list or "
                   "map holding refs");
  cr_expect_str_eq(bad_json("{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"a\": {\"fn\": \"fo.sq\", \"args\": [1], \"over\": [1]}}}",
                            TG_EFORMAT),
                   "g.json:2:3: task 'a' has \"over\" but no \"map\"");
  cr_expect_str_eq(bad_json("{\"tgraph\": 1, \"tasks\": {\n"
                            "  \"a\": {\"map\": \"fo.sq\", \"over\": {\"ref\": \"b\"}}}}",
                            TG_EFORMAT),
                   "g.json:2:33: ref to a missing task 'b' (did you mean 'a'?)");
}

/* ---- node lists in C -------------------------------------------------------------- */

Test(fanout, arg_nodes_is_one_list_argument) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node x[3];
  for (int i = 0; i < 3; i++) x[i] = tg_call(g, "fo.sq", 1, tg_arg_value(tg_int(i + 2)));
  tg_node t = tg_call(g, "fo.total", 1, tg_arg_nodes(x, 3));
  tg_node e = tg_call(g, "fo.total", 1, tg_arg_nodes(NULL, 0));
  tg_node twice[2] = {x[2], x[2]};
  tg_node p = tg_call(g, "identity", 1, tg_arg_nodes(twice, 2));
  cr_assert_neq(t, TG_NODE_NONE, "%s", tg_graph_errmsg(g));
  tg_node outs[3] = {t, e, p};
  tg_value *r[3] = {0};
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "processes", .workers = 2};
  cr_assert_eq(tg_compute(g, outs, 3, &o, r), TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(tg_value_int(r[0]), 4 + 9 + 16);
  cr_expect_eq(tg_value_int(r[1]), 0);
  char *j = json(r[2]);
  cr_expect_str_eq(j, "[16,16]");
  free(j);
  for (int i = 0; i < 3; i++) tg_value_unref(r[i]);
  /* a bad node, or a wrong count: nothing is added */
  size_t size = tg_graph_size(g);
  tg_node bad[2] = {x[0], 999};
  cr_expect_eq(tg_call(g, "fo.total", 1, tg_arg_nodes(bad, 2)), TG_NODE_NONE);
  cr_expect_str_eq(tg_graph_errmsg(g), "call of 'fo.total': argument 0 lists node 999, but "
                   "the graph has 9 nodes");
  cr_expect_eq(tg_call(g, "fo.total", 2, tg_arg_nodes(x, 3), tg_arg_value(tg_int(1))),
               TG_NODE_NONE);
  cr_expect_str_eq(tg_graph_errmsg(g), "function 'fo.total' takes 1 argument, got 2");
  cr_expect_eq(tg_graph_size(g), size);
  tg_node m;
  tg_arg in[1] = {tg_arg_nodes(x, 3)};
  cr_expect_eq(tg_graph_map(g, "fo.total", in, 1, NULL, 0, 0, NULL, &m), TG_EINVAL);
  cr_expect_str_eq(tg_graph_errmsg(g), "call of 'fo.total': argument 0 is a node list; "
                   "node lists are arguments of tg_graph_add only");
  tg_graph_free(g);
  /* without the builtins there is no tg.build */
  tg_registry *bare;
  cr_assert_eq(tg_registry_new(&bare), TG_OK);
  tg_func_def d = {TG_FUNC_DEF_V1, "fo.total", "1", fn_total, TG_FUNC_PURE, 1, NULL, NULL, 0, NULL, NULL};
  cr_assert_eq(tg_registry_add(bare, &d, NULL), TG_OK);
  cr_assert_eq(tg_graph_new(bare, &g), TG_OK);
  tg_node one = tg_call(g, "fo.total", 1, tg_arg_value(tg_list_of(0)));
  tg_arg a[1] = {tg_arg_nodes(&one, 1)};
  cr_expect_eq(tg_graph_add(g, "fo.total", a, 1, NULL, NULL), TG_ENOFUNC);
  cr_expect_str_eq(tg_graph_errmsg(g), "call of 'fo.total': a node list argument needs the "
                   "builtin tg.build (tg_registry_add_builtins)");
  cr_expect_eq(tg_graph_size(g), 1);
  tg_graph_free(g);
  tg_registry_free(bare);
}

/* A map over a map's result: the compute expands them in turn. */
Test(fanout, chained_run_time_maps) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "fo.upto", 1, tg_arg_value(tg_int(5)));
  tg_node a, b;
  cr_assert_eq(tg_graph_map_node(g, "fo.sq", n, NULL, 0, 2, NULL, &a), TG_OK);
  cr_assert_eq(tg_graph_map_node(g, "fo.sq", a, NULL, 0, 0, NULL, &b), TG_OK);
  tg_node t = tg_call(g, "fo.total", 1, tg_arg_node(b));
  tg_value *r = NULL;
  tg_compute_stats st;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "processes", .workers = 2,
                       .stats = &st};
  cr_assert_eq(tg_compute(g, &t, 1, &o, &r), TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(tg_value_int(r), 0 + 1 + 16 + 81 + 256);
  /* three stages: upto; a's 3 chunks and gather (b's list); b's 5
   * chunks, gather and total */
  cr_expect_eq(st.tasks_total, 1 + 4 + 5 + 1 + 1, "%zu", st.tasks_total);
  tg_value_unref(r);
  cr_expect_eq(tg_graph_size(g), 4);
  tg_graph_free(g);
}
