/* tests/stress/stress_threads.c: computes on the threads backend under
 * load, with exact expected results: random DAGs (fixed seeds) computed
 * with 1, 2 and 8 workers and compared with a model and with the sync
 * backend, long chains, wide fan-out/fan-in, maps, failures in the middle
 * of a graph, compute and task timeouts, and one graph computed again and
 * again, also from several threads on shared executors.
 *
 * Usage: stress_threads [SCALE]   (SCALE multiplies the sizes; default 1,
 * sized for a ThreadSanitizer debug build on two cores). */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../test_funcs.h"
#include "check.h"
#include "tgraph/executor.h"

static tg_registry *reg;

/* ---- helpers ------------------------------------------------------------- */

static tg_executor *executor(const char *backend, unsigned workers) {
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend, .workers = workers};
  tg_executor *ex = NULL;
  int rc = tg_executor_new(reg, &o, &ex, NULL);
  CHECK_MSG(rc == TG_OK && ex, "executor %s/%u: %s", backend, workers,
            tg_err_name(rc));
  return ex;
}

static tg_graph *graph_new(void) {
  tg_graph *g = NULL;
  int rc = tg_graph_new(reg, &g);
  CHECK_EQ_INT(rc, TG_OK);
  return g;
}

static tg_node keyed(tg_graph *g, const char *fn, const char *key,
                     const tg_arg *args, size_t nargs, double timeout) {
  tg_node_opts o = {TG_NODE_OPTS_V1, key, -1, -1, timeout, 0};
  tg_node n = TG_NODE_NONE;
  int rc = tg_graph_add(g, fn, args, nargs, &o, &n);
  CHECK_MSG(rc == TG_OK, "add %s '%s': %s", fn, key, tg_graph_errmsg(g));
  return n;
}

/* ---- random DAGs: a model of every node's value ---------------------------- */

#define RG_MAXN 64
#define RG_MAXARGS 6
#define RG_MAXOUT 6

enum { V_INT, V_LIST, V_MAP };

typedef struct mval {
  int kind;
  bool poison;            /* depends on the failing node: never computed */
  int64_t i;              /* V_INT */
  int n;                  /* V_LIST / V_MAP items */
  int64_t it[RG_MAXARGS];
} mval;

typedef struct rgraph {
  tg_graph *g;
  int n;
  tg_node id[RG_MAXN];
  mval m[RG_MAXN];
  int deps[RG_MAXN][RG_MAXARGS]; /* model indices of node arguments */
  int ndeps[RG_MAXN];
  int boom;                      /* model index of the failing node, -1 */
  int nout;
  int out[RG_MAXOUT];            /* model indices of the outputs */
  int cls[RG_MAXN];              /* the first node making the same call: the
                                    library runs identical pure calls once */
  char sig[RG_MAXN][256];        /* the call: function, then each argument
                                    (a constant, or a class and its part) */
} rgraph;

static int64_t wrap_add(int64_t a, int64_t b) { return tgt_wrap_add(a, b); }

/* A random earlier node, biased towards recent ones (deeper graphs). */
static int pick_node(uint64_t *s, int upto) {
  if (tgt_below(s, 3) == 0) return (int)tgt_below(s, (uint64_t)upto);
  int w = upto < 6 ? upto : 6;
  return upto - 1 - (int)tgt_below(s, (uint64_t)w);
}

static int64_t rand_const(uint64_t *s) {
  return tgt_below(s, 4) == 0 ? (int64_t)tgt_rand(s)
                              : (int64_t)tgt_below(s, 2001) - 1000;
}

/* An int-valued argument for node `at`: a constant, an int node, an item
 * of a list node or a key of a map node. key: room for a map key. */
static tg_arg int_arg(rgraph *r, uint64_t *s, int at, char key[16], int64_t *val) {
  if (at == 0 || tgt_below(s, 4) == 0) {
    *val = rand_const(s);
    return tg_arg_value(tg_int(*val));
  }
  int j = pick_node(s, at);
  mval *m = &r->m[j];
  r->deps[at][r->ndeps[at]++] = j;
  r->m[at].poison |= m->poison;
  if (m->kind == V_INT) {
    *val = m->i;
    return tg_arg_node(r->id[j]);
  }
  int k = (int)tgt_below(s, (uint64_t)m->n);
  *val = m->it[k];
  if (m->kind == V_LIST)
    return tg_arg_item(r->id[j], tgt_below(s, 2) ? k : k - m->n);
  snprintf(key, 16, "k%d", k);
  return tg_arg_key(r->id[j], key);
}

/* A node argument of `at` on node j, whose value the model copies. */
static tg_arg node_arg(rgraph *r, int at, int j) {
  r->deps[at][r->ndeps[at]++] = j;
  r->m[at] = r->m[j];
  return tg_arg_node(r->id[j]);
}

/* Fill args for a call of kind at node `at` and model its value; returns
 * the function's name. keys: room for map keys. */
static const char *rg_call(rgraph *r, uint64_t *s, int at, int kind, tg_arg *args,
                           char (*keys)[16], size_t *na) {
  mval *m = &r->m[at];
  int64_t v;
  m->kind = V_INT;
  switch (kind) {
    case -1: /* fail(x): the failing node */
      args[(*na)++] = int_arg(r, s, at, keys[0], &v);
      m->poison = true;
      return "fail";
    case 0: /* inc(x) */
      args[(*na)++] = int_arg(r, s, at, keys[0], &v);
      m->i = wrap_add(v, 1);
      return "inc";
    case 1: /* add(x, y) */
    case 2: /* sum_args(x...), 0 to 5 arguments */
      for (size_t k = kind == 1 ? 2 : tgt_below(s, 6); *na < k; (*na)++) {
        args[*na] = int_arg(r, s, at, keys[*na], &v);
        m->i = wrap_add(m->i, v);
      }
      return kind == 1 ? "add" : "sum_args";
    case 3: /* pack(x...) -> list */
    case 4: /* pack_map(x...) -> map */
      for (size_t k = 1 + tgt_below(s, 5); *na < k; (*na)++)
        args[*na] = int_arg(r, s, at, keys[*na], &m->it[*na]);
      m->kind = kind == 3 ? V_LIST : V_MAP;
      m->n = (int)*na;
      return kind == 3 ? "pack" : "pack_map";
    case 5: { /* sum(list): a list node, recent ones first */
      int j = at - 1;
      for (int tries = 0; tries < 64 && r->m[j = pick_node(s, at)].kind != V_LIST;) tries++;
      while (r->m[j].kind != V_LIST) j = j ? j - 1 : at - 1;
      args[(*na)++] = node_arg(r, at, j);
      m->kind = V_INT;
      m->i = 0;
      for (int k = 0; k < r->m[j].n; k++) m->i = wrap_add(m->i, r->m[j].it[k]);
      return "sum";
    }
    default: /* identity(any node) */
      args[(*na)++] = node_arg(r, at, pick_node(s, at));
      return "identity";
  }
}

/* Add model node `at` of a random kind (or the failing one). */
static bool rg_add(rgraph *r, uint64_t *s, int at, bool fail) {
  tg_arg args[RG_MAXARGS];
  char keys[RG_MAXARGS][16];
  memset(&r->m[at], 0, sizeof r->m[at]);
  r->ndeps[at] = 0;
  int kind = fail ? -1 : (int)tgt_below(s, 7), lists = 0;
  for (int j = 0; j < at; j++) lists += r->m[j].kind == V_LIST;
  if ((kind == 5 && !lists) || (kind == 6 && at == 0)) kind = 0;
  size_t na = 0;
  const char *fn = rg_call(r, s, at, kind, args, keys, &na);
  /* Every function here is pure: a call the same as an earlier one (same
   * function, equal constants, the same parts of the same calls) is that
   * call's task. */
  char *sig = r->sig[at];
  size_t len = (size_t)snprintf(sig, sizeof r->sig[at], "%s", fn);
  for (size_t k = 0; k < na; k++) {
    int j = 0;
    if (args[k].kind != TG_ARG_VALUE)
      while (r->id[j] != args[k].node) j++;
    if (args[k].kind == TG_ARG_VALUE)
      len += (size_t)snprintf(sig + len, sizeof r->sig[at] - len, " v%lld",
                              (long long)tg_value_int(args[k].value));
    else if (args[k].kind == TG_ARG_ITEM)
      len += (size_t)snprintf(sig + len, sizeof r->sig[at] - len, " n%d[%lld]", r->cls[j],
                              (long long)args[k].index);
    else if (args[k].kind == TG_ARG_KEY)
      len += (size_t)snprintf(sig + len, sizeof r->sig[at] - len, " n%d.%s", r->cls[j],
                              args[k].key);
    else
      len += (size_t)snprintf(sig + len, sizeof r->sig[at] - len, " n%d", r->cls[j]);
  }
  r->cls[at] = at;
  for (int j = 0; j < at; j++)
    if (strcmp(r->sig[j], sig) == 0) {
      r->cls[at] = r->cls[j];
      break;
    }
  tg_node_opts o = {TG_NODE_OPTS_V1, fail ? "boom" : NULL, -1, -1, 0, 0};
  int rc = tg_graph_add(r->g, fn, args, na, &o, &r->id[at]);
  return CHECK_MSG(rc == TG_OK, "node %d (%s): %s", at, fn, tg_graph_errmsg(r->g));
}

/* Graph number `seed`: 5 to 64 nodes; every fifth has a failing node in
 * the middle that one output depends on. */
static bool rg_build(rgraph *r, uint64_t seed) {
  uint64_t s = seed * 0x9E3779B97F4A7C15u + 12345;
  memset(r, 0, sizeof *r);
  r->g = graph_new();
  if (!r->g) return false;
  r->n = 5 + (int)tgt_below(&s, RG_MAXN - 4);
  r->boom = seed % 5 == 4 ? r->n / 2 : -1;
  for (int i = 0; i < r->n; i++)
    if (!rg_add(r, &s, i, i == r->boom)) return false;
  r->nout = 1 + (int)tgt_below(&s, 4);
  for (int k = 0; k < r->nout; k++)
    r->out[k] = k == 0 ? r->n - 1 : pick_node(&s, r->n);
  if (r->boom >= 0) { /* make sure an output needs the failing node */
    int p = r->boom;
    for (int i = r->boom + 1; i < r->n; i++)
      if (r->m[i].poison && tgt_below(&s, 2)) p = i;
    r->out[r->nout++] = p;
  }
  return true;
}

/* Tasks the outputs need (the culled graph, identical calls once). */
static size_t rg_needed(const rgraph *r) {
  bool need[RG_MAXN] = {false}, cls_counted[RG_MAXN] = {false};
  int stack[RG_MAXN * RG_MAXARGS + RG_MAXOUT], n = 0;
  size_t count = 0;
  for (int k = 0; k < r->nout; k++) stack[n++] = r->out[k];
  while (n) {
    int x = stack[--n];
    if (need[x]) continue;
    need[x] = true;
    if (!cls_counted[r->cls[x]]) count++;
    cls_counted[r->cls[x]] = true;
    for (int d = 0; d < r->ndeps[x]; d++) stack[n++] = r->deps[x][d];
  }
  return count;
}

static tg_value *model_value(const mval *m) {
  if (m->kind == V_INT) return tg_int(m->i);
  if (m->kind == V_LIST) {
    tg_value *items[RG_MAXARGS];
    for (int k = 0; k < m->n; k++) items[k] = tg_int(m->it[k]);
    return tg_list_take((size_t)m->n, items);
  }
  tg_value *map = tg_map_new((size_t)m->n);
  for (int k = 0; k < m->n; k++) {
    char key[16];
    snprintf(key, sizeof key, "k%d", k);
    tg_map_put_c(map, key, tg_int(m->it[k]));
  }
  return map;
}

/* Compute r's outputs once (on ex, or a temporary executor of the backend)
 * and check results, message and stats against the model. */
static void rg_check(rgraph *r, uint64_t seed, const char *backend,
                     unsigned workers, tg_executor *ex) {
  tg_node outs[RG_MAXOUT];
  tg_value *res[RG_MAXOUT];
  for (int k = 0; k < r->nout; k++) outs[k] = r->id[r->out[k]];
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts(backend, workers, &st);
  o.executor = ex;
  int rc = tg_compute(r->g, outs, (size_t)r->nout, &o, res);
  size_t total = rg_needed(r);
  const char *where = ex ? "executor" : "temporary";
  CHECK_EQ_INT_AT(st.tasks_total, total, "graph %llu, %s/%u %s",
                  (unsigned long long)seed, backend, workers, where);
  if (r->boom >= 0) {
    CHECK_EQ_INT_AT(rc, TG_ETASK, "graph %llu, %s/%u %s", (unsigned long long)seed,
                    backend, workers, where);
    CHECK_EQ_STR(tg_graph_errmsg(r->g), "task 'boom' failed: TG_EINVAL: always fails");
    for (int k = 0; k < r->nout; k++) CHECK(res[k] == NULL);
    CHECK_EQ_INT(st.failed_node, r->id[r->boom]);
    CHECK_EQ_INT(st.tasks_failed, 1);
    CHECK_EQ_INT_AT(st.tasks_run + st.tasks_skipped, total, "graph %llu, %s/%u",
                    (unsigned long long)seed, backend, workers);
    return;
  }
  if (!CHECK_MSG(rc == TG_OK, "graph %llu, %s/%u %s: %s: %s",
                 (unsigned long long)seed, backend, workers, where, tg_err_name(rc),
                 tg_graph_errmsg(r->g)))
    return;
  CHECK_EQ_INT(st.tasks_run, total);
  CHECK_EQ_INT(st.tasks_failed, 0);
  CHECK_EQ_INT(st.tasks_skipped, 0);
  CHECK_EQ_INT(st.failed_node, TG_NODE_NONE);
  for (int k = 0; k < r->nout; k++) {
    tg_value *want = model_value(&r->m[r->out[k]]);
    CHECK_MSG(tg_value_equal(res[k], want), "graph %llu, %s/%u %s: output %d wrong",
              (unsigned long long)seed, backend, workers, where, k);
    tg_value_unref(want);
    tg_value_unref(res[k]);
  }
}

static void random_dags(void) {
  const unsigned wk[3] = {1, 2, 8};
  tg_executor *exs[3];
  for (int w = 0; w < 3; w++) exs[w] = executor("threads", wk[w]);
  int ngraphs = 210 * chk.scale;
  for (int i = 0; i < ngraphs; i++) {
    rgraph r;
    if (rg_build(&r, (uint64_t)i)) {
      rg_check(&r, (uint64_t)i, "sync", 1, NULL);
      for (int w = 0; w < 3; w++) /* odd graphs on long-lived executors */
        rg_check(&r, (uint64_t)i, "threads", wk[w], i % 2 ? exs[w] : NULL);
    }
    tg_graph_free(r.g);
  }
  for (int w = 0; w < 3; w++) tg_executor_free(exs[w]);
}

/* ---- shapes ------------------------------------------------------------------ */

static int64_t compute_int(tg_graph *g, tg_node n, const char *be, unsigned w,
                           tg_compute_stats *st) {
  tg_compute_opts o = tgt_opts(be, w, st);
  int rc;
  int64_t v = tgt_compute_int(g, n, &o, &rc);
  CHECK_MSG(rc == TG_OK, "%s/%u: %s: %s", be, w, tg_err_name(rc), tg_graph_errmsg(g));
  return v;
}

/* One chain of inc and one alternating through pack/item. */
static void chains(void) {
  int len = 1500 * chk.scale;
  tg_graph *g = graph_new();
  tg_node x = tg_call(g, "inc", 1, tg_arg_value(tg_int(0)));
  for (int i = 1; i < len; i++) x = tg_call(g, "inc", 1, tg_arg_node(x));
  tg_node y = tg_call(g, "identity", 1, tg_arg_value(tg_int(5)));
  for (int i = 0; i < len / 2; i++) {
    tg_node p = tg_call(g, "pack", 2, tg_arg_value(tg_int(i)), tg_arg_node(y));
    y = tg_call(g, "inc", 1, tg_arg_item(p, -1));
  }
  CHECK(x != TG_NODE_NONE && y != TG_NODE_NONE);
  const unsigned wk[3] = {1, 2, 8};
  for (int w = 0; w < 3; w++) {
    tg_compute_stats st;
    CHECK_EQ_INT_AT(compute_int(g, x, "threads", wk[w], &st), len, "%u workers", wk[w]);
    CHECK_EQ_INT(st.tasks_total, len);
    CHECK_EQ_INT(st.tasks_run, len);
    CHECK_EQ_INT_AT(compute_int(g, y, "threads", wk[w], &st), 5 + len / 2,
                    "%u workers", wk[w]);
    CHECK_EQ_INT(st.tasks_total, 1 + 2 * (len / 2));
  }
  tg_graph_free(g);
}

/* One root feeding many tasks joined by one; and a two-level tree. */
static void fan_out_fan_in(void) {
  int wide = 1000 * chk.scale;
  tg_graph *g = graph_new();
  tg_node root = tg_call(g, "inc", 1, tg_arg_value(tg_int(0)));
  tg_arg *args = calloc((size_t)wide, sizeof *args);
  tg_arg groups[64];
  int ngroups = 0, per = (wide + 63) / 64;
  int64_t want = 0;
  for (int i = 0; i < wide; i++) {
    tg_node n = tg_call(g, "add", 2, tg_arg_node(root), tg_arg_value(tg_int(i)));
    args[i] = tg_arg_node(n);
    want += 1 + i;
  }
  tg_node all = TG_NODE_NONE;
  CHECK_EQ_INT(tg_graph_add(g, "sum_args", args, (size_t)wide, NULL, &all), TG_OK);
  for (int lo = 0; lo < wide; lo += per) { /* pack groups, sum each, sum them */
    int k = wide - lo < per ? wide - lo : per;
    tg_node p = TG_NODE_NONE;
    tg_graph_add(g, "pack", args + lo, (size_t)k, NULL, &p);
    groups[ngroups++] = tg_arg_node(tg_call(g, "sum", 1, tg_arg_node(p)));
  }
  tg_node tree = TG_NODE_NONE;
  CHECK_EQ_INT(tg_graph_add(g, "sum_args", groups, (size_t)ngroups, NULL, &tree), TG_OK);
  const unsigned wk[3] = {1, 2, 8};
  for (int w = 0; w < 3; w++) {
    tg_compute_stats st;
    CHECK_EQ_INT_AT(compute_int(g, all, "threads", wk[w], &st), want, "%u workers", wk[w]);
    CHECK_EQ_INT(st.tasks_total, wide + 2);
    CHECK_EQ_INT_AT(compute_int(g, tree, "threads", wk[w], &st), want, "%u workers",
                    wk[w]);
    CHECK_EQ_INT(st.tasks_total, wide + 2 + 2 * ngroups);
    tg_node both[2] = {all, tree};
    tg_value *res[2];
    tg_compute_opts o = tgt_opts("threads", wk[w], &st);
    CHECK_EQ_INT(tg_compute(g, both, 2, &o, res), TG_OK);
    CHECK_EQ_INT(res[0] ? tg_value_int(res[0]) : 0, want);
    CHECK_EQ_INT(res[1] ? tg_value_int(res[1]) : 0, want);
    CHECK_EQ_INT(st.tasks_total, wide + 3 + 2 * ngroups);
    tg_value_unref(res[0]);
    tg_value_unref(res[1]);
  }
  free(args);
  tg_graph_free(g);
}

/* tg_graph_map in chunks of several sizes, fed by nodes and constants. */
static void maps(void) {
  size_t n = 600 * (size_t)chk.scale;
  const size_t chunks[] = {0, 1, 7, 64, 1000};
  tg_graph *g = graph_new();
  tg_arg *in = calloc(n, sizeof *in);
  for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
    for (size_t i = 0; i < n; i++)
      in[i] = i % 3 ? tg_arg_value(tg_int((int64_t)i))
                    : tg_arg_node(tg_call(g, "identity", 1, tg_arg_value(tg_int((int64_t)i))));
    tg_arg extra = tg_arg_value(tg_int(100));
    tg_node m = TG_NODE_NONE;
    CHECK_EQ_INT(tg_graph_map(g, "add", in, n, &extra, 1, chunks[c], NULL, &m), TG_OK);
    for (unsigned w = 1; w <= 8; w *= 2) {
      tg_value *v = NULL;
      tg_compute_opts o = tgt_opts("threads", w, NULL);
      int rc = tg_compute(g, &m, 1, &o, &v);
      CHECK_MSG(rc == TG_OK, "chunk %zu, %u workers: %s", chunks[c], w, tg_graph_errmsg(g));
      bool same = v && tg_value_type(v) == TG_LIST && tg_list_len(v) == n;
      for (size_t i = 0; same && i < n; i++)
        same = tg_value_int(tg_list_get(v, i)) == (int64_t)i + 100;
      CHECK_MSG(same, "chunk %zu, %u workers: wrong list", chunks[c], w);
      tg_value_unref(v);
    }
  }
  free(in);
  tg_graph_free(g);
}

/* ---- failures ------------------------------------------------------------------ */

/* Eight chains joined at the end; chain 3 fails in its middle. */
static void failure_mid_graph(void) {
  enum { CHAINS = 8 };
  int len = 150 * chk.scale;
  tg_graph *g = graph_new();
  tg_arg ends[CHAINS];
  tg_node bad = TG_NODE_NONE;
  for (int c = 0; c < CHAINS; c++) {
    tg_node x = tg_call(g, "inc", 1, tg_arg_value(tg_int(c)));
    for (int i = 1; i < len; i++) {
      if (c == 3 && i == len / 2)
        x = bad = keyed(g, "fail", "bad", (tg_arg[]){tg_arg_node(x)}, 1, 0);
      else
        x = tg_call(g, "inc", 1, tg_arg_node(x));
    }
    ends[c] = tg_arg_node(x);
  }
  tg_node out = TG_NODE_NONE, ok = ends[0].node;
  CHECK_EQ_INT(tg_graph_add(g, "sum_args", ends, CHAINS, NULL, &out), TG_OK);
  const unsigned wk[3] = {1, 2, 8};
  for (int rep = 0; rep < 6 * chk.scale; rep++) {
    for (int w = 0; w < 3; w++) {
      tg_compute_stats st;
      tg_compute_opts o = tgt_opts("threads", wk[w], &st);
      tg_node both[2] = {ok, out};
      tg_value *res[2] = {tg_null(), tg_null()};
      int rc = tg_compute(g, both, 2, &o, res);
      CHECK_EQ_INT_AT(rc, TG_ETASK, "rep %d, %u workers", rep, wk[w]);
      CHECK(res[0] == NULL && res[1] == NULL);
      CHECK_EQ_STR(tg_graph_errmsg(g), "task 'bad' failed: TG_EINVAL: always fails");
      CHECK_EQ_INT(st.failed_node, bad);
      CHECK_EQ_INT(st.tasks_failed, 1);
      CHECK_EQ_INT(st.tasks_total, CHAINS * len + 1);
      CHECK_EQ_INT(st.tasks_run + st.tasks_skipped, st.tasks_total);
      /* The same graph still computes what does not need the failure. */
      CHECK_EQ_INT(compute_int(g, ok, "threads", wk[w], NULL), len);
    }
  }
  tg_graph_free(g);
}

/* One bad element in a map: the message names the map node, as sync's. */
static void failure_in_map(void) {
  size_t n = 300;
  tg_graph *g = graph_new();
  tg_arg *in = calloc(n, sizeof *in);
  for (size_t i = 0; i < n; i++)
    in[i] = i == 201 ? tg_arg_value(tg_str_c("x")) : tg_arg_value(tg_int((int64_t)i));
  tg_node_opts mo = {TG_NODE_OPTS_V1, "incs", -1, -1, 0, 0};
  tg_node m = TG_NODE_NONE;
  CHECK_EQ_INT(tg_graph_map(g, "inc", in, n, NULL, 0, 10, &mo, &m), TG_OK);
  free(in);
  tg_value *v = NULL;
  tg_compute_opts o = tgt_opts("sync", 1, NULL);
  CHECK_EQ_INT(tg_compute(g, &m, 1, &o, &v), TG_ETASK);
  char want[512];
  snprintf(want, sizeof want, "%s", tg_graph_errmsg(g));
  CHECK_PREFIX(want, "task 'incs' failed: TG_ETYPE: argument 0: expected int, got str "
                     "(element 1 of chunk '");
  for (int rep = 0; rep < 10 * chk.scale; rep++) {
    for (unsigned w = 1; w <= 8; w *= 2) {
      tg_compute_stats st;
      o = tgt_opts("threads", w, &st);
      CHECK_EQ_INT_AT(tg_compute(g, &m, 1, &o, &v), TG_ETASK, "%u workers", w);
      CHECK(v == NULL);
      CHECK_EQ_STR(tg_graph_errmsg(g), want);
      CHECK_EQ_INT(st.failed_node, m);
    }
  }
  tg_graph_free(g);
}

/* ---- timeouts ------------------------------------------------------------------ */

/* Four long sleepers under a 0.05 s compute timeout; then the short
 * output of the same graph still computes. */
static void compute_timeouts(void) {
  tg_graph *g = graph_new();
  tg_arg slow[4];
  for (int i = 0; i < 4; i++)
    slow[i] = tg_arg_node(tg_call(g, "sleep_ms", 1, tg_arg_value(tg_int(20000 + i))));
  tg_node all = TG_NODE_NONE;
  CHECK_EQ_INT(tg_graph_add(g, "pack", slow, 4, NULL, &all), TG_OK);
  tg_node after = tg_call(g, "inc", 1, tg_arg_node(all));
  tg_node quick = tg_call(g, "inc", 1,
                          tg_arg_node(tg_call(g, "sleep_ms", 1, tg_arg_value(tg_int(2)))));
  tg_executor *ex = executor("threads", 8);
  const unsigned wk[3] = {1, 2, 8};
  for (int rep = 0; rep < 3 * chk.scale; rep++) {
    for (int w = 0; w < 4; w++) {
      int before = atomic_load(&tgt.sleep_cancelled);
      tg_compute_stats st;
      tg_compute_opts o = tgt_opts("threads", w < 3 ? wk[w] : 0, &st);
      o.executor = w < 3 ? NULL : ex;
      o.timeout = 0.05;
      tg_value *v = tg_null();
      double t0 = chk_now();
      int rc = tg_compute(g, &after, 1, &o, &v);
      double dt = chk_now() - t0;
      CHECK_EQ_INT_AT(rc, TG_ETIMEDOUT, "rep %d, case %d", rep, w);
      CHECK(v == NULL);
      CHECK_PREFIX(tg_graph_errmsg(g), "the compute timed out after 0.05 s: ");
      CHECK_MSG(dt >= 0.045 && dt < 5.0, "timed out after %.3f s", dt);
      CHECK_EQ_INT(st.failed_node, TG_NODE_NONE);
      /* Only the sleepers that started before the deadline see it. */
      int seen = atomic_load(&tgt.sleep_cancelled) - before;
      CHECK_MSG(seen >= 0 && seen <= 4, "%d sleepers saw the cancellation", seen);
      o.timeout = 10.0;
      int64_t q = tgt_compute_int(g, quick, &o, &rc);
      CHECK_MSG(rc == TG_OK && q == 3, "quick: %s %lld", tg_err_name(rc), (long long)q);
    }
  }
  tg_executor_free(ex);
  tg_graph_free(g);
}

/* A task timeout (tg_node_opts.timeout) fails that task alone. */
static void task_timeouts(void) {
  tg_graph *g = graph_new();
  tg_node slow = keyed(g, "sleep_ms", "slow", (tg_arg[]){tg_arg_value(tg_int(20000))},
                       1, 0.03);
  tg_node side = tg_call(g, "sleep_ms", 1, tg_arg_value(tg_int(1)));
  tg_node out = tg_call(g, "pack", 2, tg_arg_node(side), tg_arg_node(slow));
  for (int rep = 0; rep < 4 * chk.scale; rep++) {
    for (unsigned w = 1; w <= 8; w *= 2) {
      tg_compute_stats st;
      tg_compute_opts o = tgt_opts("threads", w, &st);
      tg_value *v = tg_null();
      double t0 = chk_now();
      int rc = tg_compute(g, &out, 1, &o, &v);
      double dt = chk_now() - t0;
      CHECK_EQ_INT_AT(rc, TG_ETASK, "rep %d, %u workers", rep, w);
      CHECK(v == NULL);
      CHECK_EQ_STR(tg_graph_errmsg(g), "task 'slow' failed: TG_ETIMEDOUT: timed out after 0.03 s");
      CHECK_EQ_INT(st.failed_node, slow);
      CHECK_MSG(dt >= 0.025 && dt < 5.0, "failed after %.3f s", dt);
    }
  }
  tg_graph_free(g);
}

/* ---- repeated computes ------------------------------------------------------------ */

static void repeated_one_graph(void) {
  rgraph r;
  uint64_t seed = 1000003; /* not a failing one: seed % 5 != 4 */
  if (!rg_build(&r, seed)) return;
  tg_executor *e2 = executor("threads", 2), *e8 = executor("threads", 8);
  for (int i = 0; i < 150 * chk.scale; i++) {
    rg_check(&r, seed, "threads", i % 2 ? 2 : 8, i % 2 ? e2 : e8);
    if (i % 10 == 0) rg_check(&r, seed, "threads", 4, NULL);
  }
  tg_executor_free(e2);
  tg_executor_free(e8);
  tg_graph_free(r.g);
}

typedef struct computer {
  uint64_t seed;
  tg_executor *ex[2];
  int reps;
} computer;

static void *compute_loop(void *arg) {
  computer *c = arg;
  rgraph r;
  if (rg_build(&r, c->seed)) {
    for (int i = 0; i < c->reps; i++) rg_check(&r, c->seed, "threads", 0, c->ex[i % 2]);
  }
  tg_graph_free(r.g);
  return NULL;
}

/* Four threads, each computing its own graph again and again on two
 * executors they share (failing graphs among them). */
static void concurrent_computes(void) {
  enum { T = 4 };
  tg_executor *ex[2] = {executor("threads", 2), executor("threads", 8)};
  pthread_t th[T];
  computer c[T];
  for (int t = 0; t < T; t++) {
    c[t] = (computer){(uint64_t)(500 + t * 3), {ex[0], ex[1]}, 100 * chk.scale};
    CHECK_EQ_INT(pthread_create(&th[t], NULL, compute_loop, &c[t]), 0);
  }
  for (int t = 0; t < T; t++) pthread_join(th[t], NULL);
  tg_executor_free(ex[0]);
  tg_executor_free(ex[1]);
}

/* ---- task events ----------------------------------------------------------------- */

typedef struct watch {
  atomic_long starts, closes, bad;
  unsigned workers;
} watch;

static void on_event(void *ctx, const tg_event *ev) {
  watch *w = ctx;
  bool called = ev->kind == TG_EVENT_STARTED || ev->kind == TG_EVENT_FINISHED ||
                ev->kind == TG_EVENT_FAILED;
  bool ok = ev->key && *ev->key && ev->tasks > 0 && ev->start <= ev->end &&
            (ev->kind == TG_EVENT_FAILED) == (ev->status != TG_OK) &&
            (called ? ev->worker >= 0 && (unsigned)ev->worker < w->workers
                    : ev->worker == -1);
  if (ev->kind == TG_EVENT_STARTED) atomic_fetch_add(&w->starts, 1);
  else atomic_fetch_add(&w->closes, 1);
  if (!ok) atomic_fetch_add(&w->bad, 1);
}

/* Every call reported once starting, every task once closing, from every
 * worker at once; an executor without the callback reports nothing. */
static void observed_computes(void) {
  for (unsigned wk = 2; wk <= 8; wk *= 4) {
    watch w = {0, 0, 0, wk};
    tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "threads",
                           .workers = wk, .on_event = on_event, .event_ctx = &w};
    tg_executor *ex = NULL;
    CHECK_EQ_INT(tg_executor_new(reg, &eo, &ex, NULL), TG_OK);
    long calls = 0, tasks = 0;
    for (uint64_t seed = 300; ex && seed < 300 + 60 * (uint64_t)chk.scale; seed++) {
      rgraph r;
      if (rg_build(&r, seed)) {
        tg_node outs[RG_MAXOUT];
        tg_value *res[RG_MAXOUT];
        for (int k = 0; k < r.nout; k++) outs[k] = r.id[r.out[k]];
        tg_compute_stats st;
        tg_compute_opts o = tgt_opts(NULL, 0, &st);
        o.executor = ex;
        int rc = tg_compute(r.g, outs, (size_t)r.nout, &o, res);
        CHECK_EQ_INT_AT(rc, r.boom >= 0 ? TG_ETASK : TG_OK, "graph %llu", (unsigned long long)seed);
        for (int k = 0; rc == TG_OK && k < r.nout; k++) tg_value_unref(res[k]);
        calls += (long)st.tasks_run; /* no retries: one call per started task */
        tasks += (long)st.tasks_total;
      }
      tg_graph_free(r.g);
    }
    tg_executor_free(ex);
    CHECK_EQ_INT(atomic_load(&w.starts), calls);
    CHECK_EQ_INT(atomic_load(&w.closes), tasks);
    CHECK_EQ_INT(atomic_load(&w.bad), 0);
    tg_graph *g = graph_new();
    tg_node n = tg_call(g, "inc", 1, tg_arg_value(tg_int(7)));
    CHECK_EQ_INT(compute_int(g, n, "threads", wk, NULL), 8);
    CHECK_EQ_INT(atomic_load(&w.starts), calls);
    tg_graph_free(g);
  }
}

int main(int argc, char **argv) {
  chk_init(argc, argv);
  reg = tgt_registry_new();
  if (!CHECK(reg != NULL)) return chk_finish("stress_threads");
  CHK_RUN(random_dags);
  CHK_RUN(chains);
  CHK_RUN(fan_out_fan_in);
  CHK_RUN(maps);
  CHK_RUN(failure_mid_graph);
  CHK_RUN(failure_in_map);
  CHK_RUN(compute_timeouts);
  CHK_RUN(task_timeouts);
  CHK_RUN(repeated_one_graph);
  CHK_RUN(concurrent_computes);
  CHK_RUN(observed_computes);
  tg_registry_free(reg);
  return chk_finish("stress_threads");
}
