/* tests/test_order.c: the order of a run's tasks keeps few intermediate
 * results alive. The shapes are those of dask's own order tests
 * (dask/tests/test_order.py), built through the C API with one sum_args
 * task per dask key; the bounds on peak_live are the bounds dask asserts
 * on its memory pressure (results held between tasks, outputs not
 * counted: the same measure as tg_compute_stats.peak_live).
 *
 * Each shape runs on sync (a fixed order: the bound holds exactly) with
 * the outputs in both orders (dask tests both key spellings), and on
 * threads with 2 workers, where two tasks run at once and completions
 * interleave: there the bound is 2 * dask's + 2. A simulation of the
 * plain depth-first post-order from the outputs (the order the engine
 * used before) shows which shapes tell the two apart.
 *
 * A shape is a spec string "key:input,input;key:;..." in dask's key
 * order; the outputs are the keys no other key uses. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tgraph/graph.h"
#include "tgraph/registry.h"
#include "test_funcs.h"

#define MAXN 512 /* keys per shape */
#define MAXD 16  /* inputs per key */

typedef struct shape {
  size_t n;
  char key[MAXN][40];
  size_t nin[MAXN], in[MAXN][MAXD]; /* inputs, as key indices */
  bool used[MAXN];                  /* some key takes it as an input */
  tg_node node[MAXN];
  size_t outs[MAXN], nout;          /* outputs in spec order */
  size_t *idx_of;                   /* node id -> key index */
  size_t seq[MAXN], nseq;           /* sync: keys in the order started */
} shape;

static tg_registry *reg;
static tg_graph *g;

static void setup(void) {
  reg = tgt_registry_new();
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
}

static void teardown(void) {
  tg_graph_free(g);
  tg_registry_free(reg);
}

static size_t find_key(const shape *s, const char *k, size_t len) {
  for (size_t i = 0; i < s->n; i++)
    if (strlen(s->key[i]) == len && memcmp(s->key[i], k, len) == 0) return i;
  return SIZE_MAX;
}

/* Parse spec into s (keys first, then inputs: a key may use a later one). */
static void parse(shape *s, const char *spec) {
  memset(s, 0, sizeof *s);
  for (const char *p = spec; *p;) {
    const char *colon = strchr(p, ':'), *end = strchr(p, ';');
    cr_assert(colon && end && colon < end, "bad spec near '%.20s'", p);
    cr_assert_lt(s->n, MAXN);
    cr_assert_lt((size_t)(colon - p), sizeof s->key[0]);
    memcpy(s->key[s->n], p, (size_t)(colon - p));
    s->n++;
    p = end + 1;
  }
  size_t i = 0;
  for (const char *p = spec; *p; i++) {
    const char *q = strchr(p, ':') + 1, *end = strchr(p, ';');
    while (q < end) {
      const char *c = q;
      while (c < end && *c != ',') c++;
      size_t d = find_key(s, q, (size_t)(c - q));
      cr_assert_neq(d, SIZE_MAX, "'%s' uses an unknown key '%.*s'", s->key[i],
                    (int)(c - q), q);
      cr_assert_lt(s->nin[i], MAXD);
      s->in[i][s->nin[i]++] = d;
      s->used[d] = true;
      q = c < end ? c + 1 : c;
    }
    p = end + 1;
  }
  for (size_t k = 0; k < s->n; k++)
    if (!s->used[k]) s->outs[s->nout++] = k;
}

/* Add every key to g once its inputs are there: sum_args(inputs..., i)
 * for key i. The index keeps every key a call of its own, as dask's keys
 * are: identical pure calls would be merged into one task. */
static void build(shape *s) {
  bool made[MAXN] = {false};
  for (size_t left = s->n; left > 0;) {
    size_t before = left;
    for (size_t i = 0; i < s->n; i++) {
      if (made[i]) continue;
      tg_arg args[MAXD];
      size_t na = 0;
      for (size_t j = 0; j < s->nin[i]; j++) {
        if (!made[s->in[i][j]]) goto later;
        args[na++] = tg_arg_node(s->node[s->in[i][j]]);
      }
      args[na++] = tg_arg_value(tg_int((int64_t)i));
      tg_node_opts o = {.version = TG_NODE_OPTS_V1, .key = s->key[i], .retries = -1,
                        .cache = -1};
      cr_assert_eq(tg_graph_add(g, "sum_args", args, na, &o, &s->node[i]), TG_OK, "%s",
                   tg_graph_errmsg(g));
      made[i] = true;
      left--;
    later:;
    }
    cr_assert_lt(left, before, "the spec has a cycle");
  }
  s->idx_of = calloc(tg_graph_size(g), sizeof *s->idx_of);
  cr_assert_not_null(s->idx_of);
  for (size_t i = 0; i < s->n; i++) s->idx_of[s->node[i]] = i;
}

static shape *shape_new(const char *spec) {
  shape *s = malloc(sizeof *s);
  cr_assert_not_null(s);
  parse(s, spec);
  build(s);
  return s;
}

static void shape_free(shape *s) {
  free(s->idx_of);
  free(s);
}

/* Build a spec with printf-style pieces. */
typedef struct spec {
  char buf[1 << 15];
  size_t n;
} spec;

static void add(spec *b, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  int k = vsnprintf(b->buf + b->n, sizeof b->buf - b->n, fmt, ap);
  va_end(ap);
  cr_assert(k >= 0 && (size_t)k < sizeof b->buf - b->n, "spec too long");
  b->n += (size_t)k;
}

static void on_event(void *ctx, const tg_event *ev) {
  shape *s = ctx;
  if (ev->kind == TG_EVENT_STARTED && s->nseq < MAXN) s->seq[s->nseq++] = s->idx_of[ev->node];
}

/* Compute all outputs (reversed: in the opposite order) and return
 * peak_live; on sync, s->seq gets the order the tasks ran in. */
static size_t run(shape *s, const char *backend, unsigned workers, bool reversed) {
  tg_node outs[MAXN];
  tg_value *res[MAXN] = {NULL};
  for (size_t o = 0; o < s->nout; o++)
    outs[o] = s->node[s->outs[reversed ? s->nout - 1 - o : o]];
  tg_compute_stats st;
  tg_compute_opts opts = tgt_opts(backend, workers, &st);
  s->nseq = 0;
  opts.on_event = on_event;
  opts.event_ctx = s;
  cr_assert_eq(tg_compute(g, outs, s->nout, &opts, res), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_eq(st.tasks_run, s->n, "%s: every key runs once", backend);
  for (size_t o = 0; o < s->nout; o++) {
    cr_assert_not_null(res[o]);
    tg_value_unref(res[o]);
  }
  return st.peak_live;
}

/* Results alive at most when running keys in order[0..n-1] one at a
 * time (dask's diagnostics): a key's result lives from its run until its
 * last user ran; outputs are not counted. Asserts the order is
 * topological. */
static size_t pressure(const shape *s, const size_t *order) {
  size_t users[MAXN] = {0}, live = 0, peak = 0;
  bool ran[MAXN] = {false};
  for (size_t i = 0; i < s->n; i++)
    for (size_t j = 0; j < s->nin[i]; j++) users[s->in[i][j]]++;
  for (size_t k = 0; k < s->n; k++) {
    size_t t = order[k];
    cr_assert(!ran[t], "'%s' runs twice", s->key[t]);
    for (size_t j = 0; j < s->nin[t]; j++) {
      size_t x = s->in[t][j];
      cr_assert(ran[x], "'%s' runs before its input '%s'", s->key[t], s->key[x]);
      if (--users[x] == 0) live--;
    }
    ran[t] = true;
    if (s->used[t]) live++;
    if (live > peak) peak = live;
  }
  return peak;
}

/* The depth-first post-order from the outputs, inputs in argument order. */
static void post_order(const shape *s, size_t t, bool *seen, size_t *order, size_t *n) {
  if (seen[t]) return;
  seen[t] = true;
  for (size_t j = 0; j < s->nin[t]; j++) post_order(s, s->in[t][j], seen, order, n);
  order[(*n)++] = t;
}

static size_t depth_first_pressure(const shape *s) {
  bool seen[MAXN] = {false};
  size_t order[MAXN], n = 0;
  for (size_t o = 0; o < s->nout; o++) post_order(s, s->outs[o], seen, order, &n);
  cr_assert_eq(n, s->n);
  return pressure(s, order);
}

/* Position of key k in the sync order of the last run. */
static size_t pos(const shape *s, const char *k) {
  size_t i = find_key(s, k, strlen(k));
  cr_assert_neq(i, SIZE_MAX, "no key '%s'", k);
  for (size_t p = 0; p < s->nseq; p++)
    if (s->seq[p] == i) return p;
  cr_assert_fail("'%s' did not run", k);
  return SIZE_MAX;
}

/* Run spec on sync (both output orders) and threads:2; assert dask's
 * bound; return the sync peak (forward order). */
static size_t check_bound(const char *name, shape *s, size_t bound) {
  size_t peak = 0;
  for (int rev = 0; rev < 2; rev++) {
    size_t p = run(s, "sync", 1, rev);
    cr_assert_eq(s->nseq, s->n);
    cr_assert_eq(pressure(s, s->seq), p, "%s: peak_live is the simulated pressure", name);
    cr_assert_leq(p, bound, "%s (outputs %s): peak_live %zu on sync, dask's bound %zu",
                  name, rev ? "reversed" : "in order", p, bound);
    if (!rev) peak = p;
  }
  for (int i = 0; i < 3; i++) {
    size_t p = run(s, "threads", 2, i & 1);
    cr_assert_leq(p, 2 * bound + 2, "%s: peak_live %zu on threads:2", name, p);
  }
  return peak;
}
static const char *const SHAPE_RUN_SMALLER_SECTIONS =
  "a:;c:;e:;cc:;b:a,c;d:c,e;bb:cc;aa:d,bb;dd:cc;"
;
static const char *const SHAPE_USE_STRUCTURE_NOT_KEYS =
  "a.0:;a.1:;a.2:;a.3:;a.4:;a.5:;a.6:;a.7:;a.8:;a.9:;b.5:a.2;b.7:a.0,a.2;b.9:a.7,a.0,a.2;"
  "b.1:a.4,a.7,a.0;b.2:a.9,a.4,a.7;b.4:a.6,a.9,a.4;b.3:a.5,a.6,a.9;b.8:a.1,a.5,a.6;"
  "b.6:a.8,a.1,a.5;b.0:a.3,a.8,a.1;"
;
static const char *const SHAPE_EAGER_TO_COMPUTE_DEPENDENT_TO_FREE_PARENT =
  "a00:a06,a08;a01:a28,a26;a02:a24,a21;a03:a22,a25;a04:a29,a20;a05:a23,a27;a06:a04,a02;"
  "a07:a00,a01;a08:a05,a03;a09:a43;a10:a36;a11:a33;a12:a47;a13:a44;a14:a42;a15:a37;a16:a48;"
  "a17:a49;a18:a35;a19:a46;a20:a55;a21:a53;a22:a60;a23:a54;a24:a59;a25:a56;a26:a61;a27:a52;"
  "a28:a57;a29:a58;a30:a19;a31:a07;a32:a30,a31;a33:a58;a34:a11,a09;a35:a60;a36:a52;a37:a61;"
  "a38:a14,a10;a39:a38,a40;a40:a18,a17;a41:a34,a50;a42:a54;a43:a55;a44:a53;a45:a16,a15;"
  "a46:a51,a45;a47:a59;a48:a57;a49:a56;a50:a12,a13;a51:a41,a39;a52:a62;a53:a68;a54:a70;"
  "a55:a67;a56:a71;a57:a64;a58:a65;a59:a63;a60:a69;a61:a66;a62:;a63:;a64:;a65:;a66:;a67:;"
  "a68:;a69:;a70:;a71:;"
;
static const char *const SHAPE_GH_3055_EXPLICIT =
  "root.0:;a.0:root.0;a.1:;a.2:;a.3:;a.4:;b.0.0:a.0;b.0.1:a.0;c.0.1:a.0;b.1.0:a.1;b.1.2:a.1;"
  "c.0.0:a.2,a.1;d.0.0:c.0.1,c.0.0;d.0.1:c.0.1,c.0.0;f.1.1:d.0.1;c.1.0:b.1.0,b.1.2;"
  "c.0.2:b.0.0,b.0.1;e.0:c.1.0,c.0.2;g.1:e.0,a.3;g.2:g.1,a.4,d.0.0;"
;
static const char *const SHAPE_DOUBLEDIFF =
  "a.3.0.1:;a.3.1.1:;a.3.1.0:;a.2.2.2:;a.4.0.1:;a.4.1.0:;a.4.0.0:;a.5.0.0:;c.0.0.0:b.1.0.0;"
  "c.0.0.1:b.1.0.1;c.0.0.2:b.1.0.2;c.0.1.0:b.1.1.0;c.0.1.1:b.1.1.1;c.0.1.2:b.1.1.2;"
  "c.0.2.0:b.1.2.0;c.0.2.1:b.1.2.1;c.1.0.0:a.5.0.0;c.1.0.1:b.0.0.1;c.1.0.2:b.0.0.2;"
  "c.1.1.0:b.0.1.0;c.1.1.1:b.0.1.1;c.1.1.2:b.0.1.2;c.1.2.0:b.0.2.0;b.1.0.0:a.4.0.0;"
  "b.1.0.1:a.4.0.0;b.1.0.2:a.4.0.1;b.1.1.0:a.4.0.0;b.1.1.1:a.4.0.0;b.1.1.2:a.4.0.1;"
  "b.1.2.0:a.4.1.0;b.1.2.1:a.4.1.0;c.1.2.1:b.0.2.1;c.1.2.2:b.0.2.2;d.0.0.0:c.1.0.0,c.0.0.0;"
  "d.0.0.1:c.1.0.1,c.0.0.1;d.0.0.2:c.1.0.2,c.0.0.2;d.0.1.0:c.1.1.0,c.0.1.0;"
  "d.0.1.1:c.1.1.1,c.0.1.1;d.0.1.2:c.1.1.2,c.0.1.2;d.0.2.0:c.1.2.0,c.0.2.0;"
  "d.0.2.1:c.1.2.1,c.0.2.1;d.0.2.2:c.1.2.2,a.2.2.2;b.0.0.1:a.3.0.1;b.0.0.2:a.3.0.1;"
  "b.0.1.0:a.3.1.0;b.0.1.1:a.3.1.1;b.0.1.2:a.3.1.1;b.0.2.0:a.3.1.0;b.0.2.1:a.3.1.1;"
  "b.0.2.2:a.3.1.1;e.0.0.0:d.0.0.0;e.0.0.1:d.0.0.1;e.0.0.2:d.0.0.2;e.0.1.0:d.0.1.0;"
  "e.0.1.1:d.0.1.1;e.0.1.2:d.0.1.2;e.0.2.0:d.0.2.0;e.0.2.1:d.0.2.1;e.0.2.2:d.0.2.2;"
  "END:e.0.0.0,e.0.0.1,e.0.0.2,e.0.1.0,e.0.1.1,e.0.1.2,e.0.2.0,e.0.2.1,e.0.2.2;"
;
static const char *const SHAPE_XARRAY_MAP_REDUCE_WITH_SLICING =
  "transpose.0.0.0:groupby-agg.0.0.0;transpose.0.0.1:groupby-agg.0.0.1;"
  "transpose.0.1.0:groupby-agg.0.1.0;transpose.0.1.1:groupby-agg.0.1.1;"
  "groupby-chunk.0.0.0:array.0,getitem.0.0.0;groupby-chunk.0.0.1:array.1,getitem.1.0.0;"
  "groupby-chunk.0.1.0:array.0,getitem.0.0.1;groupby-chunk.0.1.1:array.1,getitem.1.0.1;"
  "groupby-chunk.1.0.0:array.0,getitem.0.1.0;groupby-chunk.1.0.1:array.1,getitem.1.1.0;"
  "groupby-chunk.1.1.0:array.0,getitem.0.1.1;groupby-chunk.1.1.1:getitem.1.1.1,array.1;"
  "getitem.0.0.0:open_data.0.0.0;getitem.0.0.1:open_data.0.0.1;getitem.0.1.0:open_data.0.1.0;"
  "getitem.0.1.1:open_data.0.1.1;getitem.1.0.0:open_data.1.0.0;getitem.1.0.1:open_data.1.0.1;"
  "getitem.1.1.0:open_data.1.1.0;getitem.1.1.1:open_data.1.1.1;data:;array.0:;array.1:;"
  "open_data.0.1.1:data;groupby-agg.0.1.0:groupby-chunk.1.0.1,groupby-chunk.1.0.0;"
  "groupby-agg.0.1.1:groupby-chunk.1.1.0,groupby-chunk.1.1.1;open_data.1.0.0:data;"
  "open_data.0.1.0:data;open_data.1.0.1:data;open_data.1.1.0:data;"
  "groupby-agg.0.0.1:groupby-chunk.0.1.0,groupby-chunk.0.1.1;open_data.0.0.1:data;"
  "open_data.1.1.1:data;groupby-agg.0.0.0:groupby-chunk.0.0.0,groupby-chunk.0.0.1;"
  "open_data.0.0.0:data;"
;
static const char *const SHAPE_RECHUNK_MERGE_GRAPH =
  "transpose.0.0.0:concat-groupby.0.0.0;transpose.0.1.0:concat-groupby.0.1.0;"
  "transpose.1.0.0:concat-groupby.1.0.0;transpose.1.1.0:concat-groupby.1.1.0;"
  "groupby-cohort.0.0.0:groupby-chunk.0.0.0;groupby-cohort.0.0.1:groupby-chunk.0.0.1;"
  "groupby-cohort.1.0.0:groupby-chunk.1.0.0;groupby-cohort.1.0.1:groupby-chunk.1.0.1;"
  "groupby-cohort-2.0.0.0:groupby-chunk-2.0.0.0;groupby-cohort-2.0.0.1:groupby-chunk-2.0.0.1;"
  "groupby-cohort-2.1.0.0:groupby-chunk-2.1.0.0;groupby-cohort-2.1.0.1:groupby-chunk-2.1.0.1;"
  "rechunk-merge.3.0.0:concat-shuffle.4.0.0,rechunk-split.12;"
  "rechunk-merge.0.0.0:rechunk-split.1,concat-shuffle.0.0.0;"
  "rechunk-merge.3.1.0:rechunk-split.14,concat-shuffle.4.1.0;"
  "rechunk-merge.2.1.0:rechunk-split.10,rechunk-split.11;"
  "rechunk-split.12:concat-shuffle.3.0.0;"
  "rechunk-merge.0.1.0:rechunk-split.3,concat-shuffle.0.1.0;"
  "rechunk-merge.1.0.0:rechunk-split.4,rechunk-split.5;"
  "rechunk-merge.1.1.0:rechunk-split.7,rechunk-split.6;rechunk-split.5:concat-shuffle.2.0.0;"
  "rechunk-split.11:concat-shuffle.3.1.0;rechunk-merge.2.0.0:rechunk-split.8,rechunk-split.9;"
  "rechunk-split.1:concat-shuffle.1.0.0;rechunk-split.14:concat-shuffle.3.1.0;"
  "rechunk-split.4:concat-shuffle.1.0.0;rechunk-split.7:concat-shuffle.2.1.0;"
  "rechunk-split.10:concat-shuffle.2.1.0;rechunk-split.6:concat-shuffle.1.1.0;"
  "rechunk-split.3:concat-shuffle.1.1.0;rechunk-split.9:concat-shuffle.3.0.0;"
  "rechunk-split.8:concat-shuffle.2.0.0;concat-shuffle.0.0.0:shuffle-split.0,shuffle-split.1;"
  "concat-shuffle.0.1.0:shuffle-split.106,shuffle-split.107;"
  "concat-shuffle.1.0.0:shuffle-split.4665,shuffle-split.4664;"
  "concat-shuffle.1.1.0:shuffle-split.4770,shuffle-split.4771;"
  "concat-shuffle.2.0.0:shuffle-split.9328,shuffle-split.9329,shuffle-split.9330;"
  "concat-shuffle.2.1.0:shuffle-split.9487,shuffle-split.9488,shuffle-split.9489;"
  "concat-shuffle.3.0.0:shuffle-split.16324,shuffle-split.16325;"
  "concat-shuffle.3.1.0:shuffle-split.16430,shuffle-split.16431;"
  "concat-shuffle.4.0.0:shuffle-split.20989,shuffle-split.20988;"
  "concat-shuffle.4.1.0:shuffle-split.21094,shuffle-split.21095;"
  "shuffle-split.9487:getitem-2.2.1.0;shuffle-split.9489:getitem-2.14.1.0;"
  "shuffle-split.106:getitem-open.106;shuffle-split.4664:getitem-2.1.0.0;"
  "shuffle-split.16431:getitem-2.15.1.0;shuffle-split.16324:getitem-2.14.0.0;"
  "shuffle-split.107:getitem-2.1.1.0;shuffle-split.4665:getitem-2.2.0.0;"
  "shuffle-split.4770:getitem-2.1.1.0;shuffle-split.0:getitem-open.0;"
  "shuffle-split.9328:getitem-2.2.0.0;shuffle-split.9488:getitem-open.9488;"
  "shuffle-split.16325:getitem-2.15.0.0;shuffle-split.16430:getitem-2.14.1.0;"
  "shuffle-split.20988:getitem-2.15.0.0;shuffle-split.9329:getitem-open.9329;"
  "shuffle-split.4771:getitem-2.2.1.0;shuffle-split.1:getitem-2.1.0.0;"
  "shuffle-split.20989:getitem-open.20989;shuffle-split.9330:getitem-2.14.0.0;"
  "shuffle-split.21094:getitem-2.15.1.0;shuffle-split.21095:getitem-open.21095;"
  "getitem-2.1.0.0:open_dataset.1.0.0;getitem-2.14.0.0:open_dataset.14.0.0;"
  "getitem-2.2.1.0:open_dataset.2.1.0;getitem-2.15.0.0:open_dataset.15.0.0;"
  "getitem-2.15.1.0:open_dataset.15.1.0;getitem-2.2.0.0:open_dataset.2.0.0;"
  "getitem-2.1.1.0:open_dataset.1.1.0;getitem-2.14.1.0:open_dataset.14.1.0;"
  "groupby-chunk-2.0.0.1:rechunk-merge.2.0.0;groupby-chunk-2.0.0.0:rechunk-merge.0.0.0;"
  "concat-groupby.0.0.0:groupby-cohort-2.0.0.0,groupby-cohort-2.0.0.1;"
  "groupby-chunk.0.0.1:rechunk-merge.3.0.0;groupby-chunk.0.0.0:rechunk-merge.1.0.0;"
  "concat-groupby.1.0.0:groupby-cohort.0.0.0,groupby-cohort.0.0.1;"
  "groupby-chunk.1.0.1:rechunk-merge.3.1.0;groupby-chunk.1.0.0:rechunk-merge.1.1.0;"
  "concat-groupby.1.1.0:groupby-cohort.1.0.0,groupby-cohort.1.0.1;open_dataset.14.1.0:;"
  "groupby-chunk-2.1.0.0:rechunk-merge.0.1.0;groupby-chunk-2.1.0.1:rechunk-merge.2.1.0;"
  "concat-groupby.0.1.0:groupby-cohort-2.1.0.1,groupby-cohort-2.1.0.0;getitem-open.9329:;"
  "open_dataset.2.1.0:;open_dataset.15.1.0:;getitem-open.20989:;getitem-open.0:;"
  "open_dataset.1.0.0:;getitem-open.9488:;getitem-open.21095:;open_dataset.2.0.0:;"
  "getitem-open.106:;open_dataset.1.1.0:;open_dataset.14.0.0:;open_dataset.15.0.0:;"
;
static const char *const SHAPE_TERMINAL_NODE_BACKTRACK =
  "a.0:;a.1:;a.2:;b.0:a.0,a.1;b.1:a.1,a.2;store.0.0:b.0;store.1.0:b.1;a.3:;a.4:;a.5:;"
  "b.2:a.3,a.4;b.3:a.4,a.5;store.0.1:b.2;store.1.1:b.3;"
  "store:store.0.0,store.1.0,store.0.1,store.1.1;"
;
static const char *const SHAPE_MAP_OVERLAP =
  "e.1:;d.1:e.1;c.1:d.1;b.1:c.1,c.2;d.2:;c.2:d.1,d.2,d.3;e.3:;d.3:e.3;c.3:d.3;"
  "b.3:c.2,c.3,c.4;d.4:;c.4:d.3,d.4,d.5;e.5:;d.5:e.5;c.5:d.5;b.5:c.4,c.5;"
;
static const char *const SHAPE_PREFER_SHORT_NARROW =
  "a.0:;b.0:;c.0:;c.1:c.0,a.0,b.0;a.1:;b.1:;c.2:c.1,a.1,b.1;"
;
static const char *const SHAPE_PREFER_SHORT_ANCESTOR =
  "ab:;a.0:ab;b.0:ab;c.0:;c.1:c.0,a.0,b.0;a.1:ab;b.1:ab;c.2:c.1,a.1,b.1;"
;
static const char *const SHAPE_MANY_BRANCHES_USE_NDEPENDENCIES =
  "a.0:;a.1:a.0;a.2:a.1;b.1:a.0;b.2:b.1;c.1:a.0;d.1:a.0;d.2:d.1;dd.1:a.0;dd.2:dd.1;"
  "dd.3:d.2,dd.2;e.1:a.0;e.2:e.1;ee.1:a.0;ee.2:ee.1;ee.3:e.2,ee.2;a.3:a.2,b.2,c.1,dd.3,ee.3;"
;

/* ---- generated shapes ------------------------------------------------------ */

/* test_order_with_equal_dependents and its three variants (one more task
 * at the end of each bundle, one less, two less). */
static void equal_dependents(spec *b, int variant) {
  const char *abc = "abcd";
  for (int x = 0; x < 4; x++) {
    char X = abc[x];
    add(b, "%c.0:;%c.1:%c.0;%c.2.0:%c.0;%c.2.1:%c.1;", X, X, X, X, X, X, X);
    for (int i = 0; i < 4; i++) {
      add(b, "%c.3.%d:%c.2.0,%c.2.1;%c.4.%d:%c.3.%d;", X, i, X, abc[i], X, i, X, i);
      add(b, "%c.5.%d.0:%c.4.%d;%c.5.%d.1:%c.4.%d;", X, i, X, i, X, i, X, i);
      if (variant != 4) add(b, "%c.6.%d.0:%c.5.%d.0;", X, i, X, i);
      if (variant < 3) add(b, "%c.6.%d.1:%c.5.%d.1;", X, i, X, i);
      if (variant == 2) add(b, "%c.7.%d.0:%c.6.%d.0;", X, i, X, i);
    }
  }
}

/* test_xarray_like_reduction: three parts, reduced across. */
static void xarray_like_reduction(spec *b) {
  for (int i = 0; i < 3; i++)
    add(b, "a.0.%d:;a.1.%d:;b.0.%d:a.0.%d;b.1.%d:a.0.%d,a.1.%d;b.2.%d:a.1.%d;"
        "c.0.%d:b.0.%d;c.1.%d:b.1.%d;c.2.%d:b.2.%d;",
        i, i, i, i, i, i, i, i, i, i, i, i, i, i, i);
  for (int i = 0; i < 3; i++) add(b, "d.%d:c.%d.0,c.%d.1,c.%d.2;", i, i, i, i);
}

/* test_reduce_with_many_common_dependents (unfused): nred x nred blocks,
 * each made from all ndeps shared objects, summed, and a sum-aggregate
 * per row. */
static void many_common_dependents(spec *b, int ndeps, int nred) {
  for (int k = 0; k < ndeps; k++) add(b, "object.%d:;", k);
  for (int i = 0; i < nred; i++)
    for (int j = 0; j < nred; j++) {
      add(b, "random.%d.%d:", i, j);
      for (int k = 0; k < ndeps; k++) add(b, "%sobject.%d", k ? "," : "", k);
      add(b, ";sum.%d.%d:random.%d.%d;", i, j, i, j);
    }
  for (int i = 0; i < nred; i++) {
    add(b, "sum-aggregate.%d:", i);
    for (int j = 0; j < nred; j++) add(b, "%ssum.%d.%d", j ? "," : "", i, j);
    add(b, ";");
  }
}

/* ---- memory bounds ------------------------------------------------------------ */

/* dask's bound, and the peak the plain depth-first order reaches when it
 * is worse than the bound (0: it is not). */
static void bounded(const char *name, const char *sp, size_t bound, size_t depth_first) {
  shape *s = shape_new(sp);
  check_bound(name, s, bound);
  if (depth_first) {
    cr_assert_eq(depth_first_pressure(s), depth_first, "%s", name);
    cr_assert_gt(depth_first, bound, "%s tells the orders apart", name);
  } else {
    cr_assert_leq(depth_first_pressure(s), bound, "%s", name);
  }
  shape_free(s);
}

Test(order, run_smaller_sections, .init = setup, .fini = teardown) {
  bounded("run_smaller_sections", SHAPE_RUN_SMALLER_SECTIONS, 3, 0);
}

Test(order, use_structure_not_keys, .init = setup, .fini = teardown) {
  shape *s = shape_new(SHAPE_USE_STRUCTURE_NOT_KEYS);
  check_bound("use_structure_not_keys", s, 3);
  /* dask: the b's alternate with the a's that complete them */
  static const size_t fwd[] = {1, 3, 5, 7, 9, 11, 13, 15, 17, 19};
  static const size_t rev[] = {3, 5, 7, 9, 11, 13, 15, 17, 18, 19};
  for (int r = 0; r < 2; r++) {
    run(s, "sync", 1, r);
    size_t bs[10], nb = 0;
    for (size_t p = 0; p < s->nseq; p++)
      if (s->key[s->seq[p]][0] == 'b') bs[nb++] = p;
    cr_assert_eq(nb, 10);
    for (size_t i = 0; i < 10; i++)
      cr_assert_eq(bs[i], (r ? rev : fwd)[i], "b #%zu at %zu", i, bs[i]);
  }
  shape_free(s);
}

Test(order, eager_to_compute_dependent_to_free_parent, .init = setup, .fini = teardown) {
  shape *s = shape_new(SHAPE_EAGER_TO_COMPUTE_DEPENDENT_TO_FREE_PARENT);
  check_bound("eager_to_compute_dependent_to_free_parent", s, 8);
  cr_assert_eq(depth_first_pressure(s), 13);
  /* the two deep branches and their reducers before the shallow roots */
  static const char *const deep[] = {"a68", "a63", "a65", "a67", "a69", "a70", "a71",
                                     "a62", "a06", "a41", "a39", "a00"};
  for (int r = 0; r < 2; r++) {
    run(s, "sync", 1, r);
    size_t shallow = pos(s, "a64") < pos(s, "a66") ? pos(s, "a64") : pos(s, "a66");
    for (size_t i = 0; i < sizeof deep / sizeof *deep; i++)
      cr_assert_lt(pos(s, deep[i]), shallow, "%s before the shallow roots", deep[i]);
  }
  shape_free(s);
}

Test(order, gh_3055_explicit, .init = setup, .fini = teardown) {
  shape *s = shape_new(SHAPE_GH_3055_EXPLICIT);
  check_bound("gh_3055_explicit", s, 5);
  for (int r = 0; r < 2; r++) {
    run(s, "sync", 1, r);
    cr_assert(pos(s, "e.0") < pos(s, "a.3") && pos(s, "a.3") < pos(s, "a.4"));
  }
  shape_free(s);
}

Test(order, doublediff, .init = setup, .fini = teardown) {
  bounded("doublediff", SHAPE_DOUBLEDIFF, 11, 0);
}

Test(order, xarray_like_reduction, .init = setup, .fini = teardown) {
  spec b = {.n = 0};
  xarray_like_reduction(&b);
  bounded("xarray_like_reduction", b.buf, 9, 0);
}

Test(order, xarray_map_reduce_with_slicing, .init = setup, .fini = teardown) {
  shape *s = shape_new(SHAPE_XARRAY_MAP_REDUCE_WITH_SLICING);
  check_bound("xarray_map_reduce_with_slicing", s, 5);
  run(s, "sync", 1, false); /* dask: 8 tasks between the final ones */
  size_t t[4] = {pos(s, "transpose.0.0.0"), pos(s, "transpose.0.0.1"),
                 pos(s, "transpose.0.1.0"), pos(s, "transpose.0.1.1")};
  for (int i = 0; i < 4; i++) /* sort the four */
    for (int j = i + 1; j < 4; j++)
      if (t[j] < t[i]) {
        size_t x = t[i];
        t[i] = t[j];
        t[j] = x;
      }
  for (int i = 1; i < 4; i++) cr_assert_eq(t[i] - t[i - 1], 8);
  shape_free(s);
}

Test(order, xarray_rechunk_map_reduce_cohorts, .init = setup, .fini = teardown) {
  bounded("xarray_rechunk_map_reduce_cohorts", SHAPE_RECHUNK_MERGE_GRAPH, 7, 12);
}

Test(order, order_with_equal_dependents, .init = setup, .fini = teardown) {
  for (int v = 1; v <= 4; v++) {
    spec b = {.n = 0};
    equal_dependents(&b, v);
    char name[48];
    snprintf(name, sizeof name, "order_with_equal_dependents/%d", v);
    bounded(name, b.buf, 10, 0);
    tg_graph_free(g);
    cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  }
}

Test(order, reduce_with_many_common_dependents, .init = setup, .fini = teardown) {
  static const int nd[] = {2, 5}, nr[] = {4, 7};
  for (int i = 0; i < 2; i++)
    for (int j = 0; j < 2; j++) {
      spec b = {.n = 0};
      many_common_dependents(&b, nd[i], nr[j]);
      char name[64];
      snprintf(name, sizeof name, "reduce_with_many_common_dependents/%d/%d", nd[i], nr[j]);
      bounded(name, b.buf, (size_t)(nd[i] + nr[j]), 0);
      tg_graph_free(g);
      cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
    }
}

/* ---- orders dask asserts ---------------------------------------------------------- */

Test(order, terminal_node_backtrack, .init = setup, .fini = teardown) {
  shape *s = shape_new(SHAPE_TERMINAL_NODE_BACKTRACK);
  for (int r = 0; r < 2; r++) {
    run(s, "sync", 1, r);
    cr_assert_lt(pos(s, "a.2"), pos(s, "a.3"), "finish the left half first");
  }
  shape_free(s);
}

Test(order, map_overlap, .init = setup, .fini = teardown) {
  shape *s = shape_new(SHAPE_MAP_OVERLAP);
  check_bound("map_overlap", s, 4);
  for (int r = 0; r < 2; r++) {
    run(s, "sync", 1, r);
    cr_assert(pos(s, "b.1") < pos(s, "e.5") || pos(s, "b.5") < pos(s, "e.1"),
              "one end finished before the other starts");
  }
  shape_free(s);
}

Test(order, prefer_short_narrow_and_ancestor, .init = setup, .fini = teardown) {
  shape *s = shape_new(SHAPE_PREFER_SHORT_NARROW);
  for (int r = 0; r < 2; r++) {
    run(s, "sync", 1, r);
    cr_assert_lt(pos(s, "b.0"), pos(s, "b.1"));
    cr_assert_lt(pos(s, "b.0"), pos(s, "c.2"));
    cr_assert_lt(pos(s, "c.1"), pos(s, "c.2"));
  }
  shape_free(s);
  tg_graph_free(g);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  s = shape_new(SHAPE_PREFER_SHORT_ANCESTOR);
  for (int r = 0; r < 2; r++) {
    run(s, "sync", 1, r);
    cr_assert_lt(pos(s, "a.0"), pos(s, "a.1"));
    cr_assert_lt(pos(s, "b.0"), pos(s, "b.1"));
    cr_assert_lt(pos(s, "c.1"), pos(s, "c.2"));
    cr_assert_lt(pos(s, "c.1"), pos(s, "a.1"), "release a.0 and b.0 first");
  }
  shape_free(s);
}

Test(order, many_branches_use_ndependencies, .init = setup, .fini = teardown) {
  shape *s = shape_new(SHAPE_MANY_BRANCHES_USE_NDEPENDENCIES);
  for (int r = 0; r < 2; r++) {
    run(s, "sync", 1, r);
    /* the d and e branches (more work) right after the root */
    for (size_t p = 1; p <= 10; p++)
      cr_assert(s->key[s->seq[p]][0] == 'd' || s->key[s->seq[p]][0] == 'e',
                "position %zu is %s", p, s->key[s->seq[p]]);
    cr_assert_eq(pos(s, "c.1") + 1, pos(s, "a.3"), "the thin branch last");
  }
  shape_free(s);
}

/* In a tree the input with more work behind it goes first (then fewer
 * results wait for it): r = f(s, b), b = f(b.0, b.1). Argument order
 * would hold s, b.0 and b.1 at once; with b first, two at most. A tree
 * whose inputs already come biggest first keeps its argument order. */
Test(order, tree_biggest_input_first, .init = setup, .fini = teardown) {
  shape *s = shape_new("s:;b.0:;b.1:;b:b.0,b.1;r:s,b;");
  cr_assert_eq(depth_first_pressure(s), 3);
  check_bound("tree", s, 2);
  run(s, "sync", 1, false);
  static const char *const want[] = {"b.0", "b.1", "b", "s", "r"};
  for (size_t i = 0; i < 5; i++) cr_assert_str_eq(s->key[s->seq[i]], want[i]);
  shape_free(s);
  tg_graph_free(g);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  s = shape_new("b.0:;b.1:;b:b.0,b.1;s:;r:b,s;");
  check_bound("sorted tree", s, 2);
  run(s, "sync", 1, false);
  static const char *const kept[] = {"b.0", "b.1", "b", "s", "r"};
  for (size_t i = 0; i < 5; i++) cr_assert_str_eq(s->key[s->seq[i]], kept[i]);
  shape_free(s);
}

/* ---- scale ---------------------------------------------------------------------- */

/* A chain of a million tasks orders without deep recursion, and a wide
 * fan-in keeps one result at a time. */
Test(order, long_chain_and_wide_sum, .init = setup, .fini = teardown) {
  const size_t n = 1000000;
  tg_node t = tg_call(g, "inc", 1, tg_arg_value(tg_int(0)));
  for (size_t i = 1; i < n; i++) t = tg_call(g, "inc", 1, tg_arg_node(t));
  cr_assert_neq(t, TG_NODE_NONE, "%s", tg_graph_errmsg(g));
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts("sync", 1, &st);
  int rc;
  cr_assert_eq(tgt_compute_int(g, t, &o, &rc), (int64_t)n);
  cr_assert_eq(st.peak_live, 1);
}
