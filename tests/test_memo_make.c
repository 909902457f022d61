/* tests/test_memo_make.c: the make-like habits of memoization through
 * the public API: forcing nodes (tg_compute_opts version 3), the notes a
 * dry run reads (why a result was not stored), and the statistics a
 * cache keeps of the computes using it (tg_cache_get_stats,
 * tg_cache_zero_stats). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tgraph.h"
#include "tgraph/builtins.h"

static char dir[64];
static tg_registry *reg;
static tg_graph *g;
static tg_cache *cache;
static tg_node a, b, c, d; /* a -> b -> c; d alone */

static void open_cache(double min_seconds) {
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V1, .min_compute_seconds = min_seconds};
  tg_error err;
  cr_assert_eq(tg_cache_open(dir, &o, &cache, &err), TG_OK, "%s", err.msg);
}

static void setup(void) {
  snprintf(dir, sizeof dir, "/tmp/tg_memo_make_XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_OK);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  a = tg_call(g, "add", 2, tg_arg_value(tg_int(1)), tg_arg_value(tg_int(2)));
  b = tg_call(g, "mul", 2, tg_arg_node(a), tg_arg_value(tg_int(10)));
  c = tg_call(g, "add", 2, tg_arg_node(b), tg_arg_value(tg_int(1)));
  d = tg_call(g, "mul", 2, tg_arg_value(tg_int(3)), tg_arg_value(tg_int(3)));
  cr_assert(a != TG_NODE_NONE && b != TG_NODE_NONE && c != TG_NODE_NONE &&
            d != TG_NODE_NONE);
}

static void teardown(void) {
  tg_cache_close(cache);
  cache = NULL;
  tg_graph_free(g);
  tg_registry_free(reg);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(memo_make, .init = setup, .fini = teardown, .timeout = 60);

/* Compute c and d on sync with force[0..nforce); the stats. */
static tg_compute_stats compute(const tg_node *force, size_t nforce) {
  tg_compute_stats st;
  tg_value *out[2];
  tg_node outs[2] = {c, d};
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V3, .scheduler = "sync", .cache = cache,
                       .stats = &st, .force = force, .nforce = nforce};
  cr_assert_eq(tg_compute(g, outs, 2, &o, out), TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(tg_value_int(out[0]), 31);
  cr_expect_eq(tg_value_int(out[1]), 9);
  tg_value_unref(out[0]);
  tg_value_unref(out[1]);
  return st;
}

Test(memo_make, force_recomputes_the_node_and_its_dependents_and_stores_them) {
  open_cache(TG_CACHE_STORE_ALL);
  tg_compute_stats st = compute(NULL, 0);
  cr_expect_eq(st.tasks_run, 4);
  cr_expect_eq(st.cache_stores, 4);
  st = compute(NULL, 0);
  cr_expect_eq(st.tasks_run, 0);
  cr_expect_eq(st.tasks_cached, 2);
  st = compute(&b, 1);
  cr_expect_eq(st.tasks_total, 4);
  cr_expect_eq(st.tasks_run, 2); /* b and c; a and d served */
  cr_expect_eq(st.tasks_cached, 2);
  cr_expect_eq(st.cache_stores, 2);
  tg_node both[2] = {a, d};
  st = compute(both, 2);
  cr_expect_eq(st.tasks_run, 4);
  cr_expect_eq(st.tasks_cached, 0);
}

Test(memo_make, forced_results_are_stored_under_the_threshold) {
  open_cache(3600); /* nothing is slow enough */
  tg_compute_stats st = compute(NULL, 0);
  cr_expect_eq(st.cache_stores, 0);
  st = compute(&c, 1);
  cr_expect_eq(st.tasks_run, 4);
  cr_expect_eq(st.cache_stores, 1); /* c only: the forced one */
  st = compute(NULL, 0);
  cr_expect_eq(st.tasks_run, 1); /* d */
  cr_expect_eq(st.tasks_cached, 1);
}

Test(memo_make, force_rejects_bad_nodes_and_versions) {
  open_cache(0);
  tg_value *out[1];
  tg_node bad = 999;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V3, .scheduler = "sync", .cache = cache,
                       .force = &bad, .nforce = 1};
  cr_expect_eq(tg_compute(g, &c, 1, &o, out), TG_EINVAL);
  cr_expect_str_eq(tg_graph_errmsg(g), "tg_compute_opts.force[0] is node 999, not a node "
                   "of the graph (4 nodes)");
  cr_expect_null(out[0]);
  o.force = NULL;
  cr_expect_eq(tg_compute(g, &c, 1, &o, out), TG_EINVAL);
  cr_expect_str_eq(tg_graph_errmsg(g), "tg_compute_opts.force is NULL with nforce 1");
  o.version = TG_COMPUTE_OPTS_V4 + 1;
  o.nforce = 0;
  cr_expect_eq(tg_compute(g, &c, 1, &o, out), TG_EINVAL);
  cr_expect_str_eq(tg_graph_errmsg(g), "tg_compute_opts.version is 5, expected 1 to 4");
}

typedef struct seen {
  tg_explain_task t[8];
  char why[8][160];
  size_t n;
} seen;

static int collect(void *ctx, const tg_explain_task *t) {
  seen *s = ctx;
  if (s->n < 8) {
    s->t[s->n] = *t;
    snprintf(s->why[s->n], sizeof s->why[0], "%s", t->why);
    s->n++;
  }
  return 0;
}

typedef struct find_key {
  const char *hex;
  bool found;
  tg_digest key;
} find_key;

static int find_entry(void *ctx, const tg_cache_entry_info *e) {
  find_key *f = ctx;
  char hex[33];
  tg_digest_hex(e->key, hex);
  if (strcmp(hex, f->hex) == 0) f->found = true, f->key = e->key;
  return 0;
}

static seen explain(const tg_node *force, size_t nforce) {
  seen s = {.n = 0};
  tg_node outs[2] = {c, d};
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V3, .cache = cache, .force = force,
                       .nforce = nforce};
  cr_assert_eq(tg_compute_explain(g, outs, 2, &o, collect, &s), TG_OK);
  return s;
}

Test(memo_make, explain_reads_the_notes_of_unstored_results) {
  open_cache(3600);
  seen s = explain(NULL, 0);
  cr_assert_eq(s.n, 4);
  for (size_t i = 0; i < 4; i++) {
    cr_expect_eq(s.t[i].note, TG_NOTE_NONE);
    cr_expect_str_eq(s.why[i], "not in the cache");
    cr_expect_eq(s.t[i].seconds, -1);
  }
  compute(NULL, 0);
  cr_assert_eq(tg_cache_flush(cache), TG_OK); /* the compute's record */
  s = explain(NULL, 0);
  cr_assert_eq(s.n, 4);
  for (size_t i = 0; i < 4; i++) {
    cr_expect_eq(s.t[i].state, TG_EXPLAIN_RUN);
    cr_expect_eq(s.t[i].note, TG_NOTE_UNDER_THRESHOLD, "task %zu: %s", i, s.why[i]);
    cr_expect(s.t[i].seconds >= 0 && s.t[i].seconds < 3600);
    cr_expect_eq(s.t[i].threshold, 3600);
    char head[64];
    snprintf(head, sizeof head, "%s's calls ran in about ", s.t[i].function);
    cr_expect(strncmp(s.why[i], head, strlen(head)) == 0 &&
                  strstr(s.why[i], " ms, under the 3600 s store threshold"),
              "%s", s.why[i]);
  }
  /* Forced: the state says so, before any note. */
  s = explain(&b, 1);
  cr_assert_eq(s.n, 4);
  cr_expect_eq(s.t[1].node, b);
  cr_expect_eq(s.t[1].state, TG_EXPLAIN_FORCED);
  cr_expect_str_eq(s.why[1], "forced");
  cr_expect_eq(s.t[2].state, TG_EXPLAIN_FORCED);
  cr_expect_str_eq(s.why[2], "depends on a forced task");
  cr_expect_eq(s.t[0].state, TG_EXPLAIN_RUN);
  /* A stored result drops its note: with c's entry removed, the dry run
   * says so instead of the old note. */
  tg_cache_close(cache);
  open_cache(TG_CACHE_STORE_ALL);
  compute(NULL, 0);
  s = explain(NULL, 0);
  cr_assert_eq(s.n, 2);
  cr_expect_eq(s.t[0].node, c);
  cr_expect_eq(s.t[0].state, TG_EXPLAIN_CACHED);
  cr_expect_eq(s.t[0].note, TG_NOTE_NONE);
  find_key fk = {s.t[0].cache_key, false, {0, 0}};
  cr_assert_eq(tg_cache_list(cache, find_entry, &fk), TG_OK);
  cr_assert(fk.found);
  cr_assert_eq(tg_cache_remove(cache, fk.key), TG_OK);
  s = explain(NULL, 0); /* b served, c runs, d served */
  cr_assert_eq(s.n, 3);
  cr_expect_eq(s.t[0].node, b);
  cr_expect_eq(s.t[1].node, c);
  cr_expect_eq(s.t[1].note, TG_NOTE_NONE);
  cr_expect_str_eq(s.why[1], "not in the cache (its entry was removed)");
  /* Clearing the cache forgets the notes too. */
  tg_cache_close(cache);
  open_cache(3600);
  compute(NULL, 0);
  cr_assert_eq(tg_cache_flush(cache), TG_OK);
  cr_assert_eq(tg_cache_clear(cache), TG_OK);
  s = explain(NULL, 0);
  cr_assert_eq(s.n, 4);
  cr_expect_str_eq(s.why[0], "not in the cache");
  cr_expect_eq(s.t[0].note, TG_NOTE_NONE);
}

Test(memo_make, stats_count_each_compute) {
  open_cache(TG_CACHE_STORE_ALL);
  tg_cache_stats st;
  cr_assert_eq(tg_cache_get_stats(cache, &st), TG_OK);
  cr_expect_eq(st.runs, 0);
  cr_expect_eq(st.since, 0);
  compute(NULL, 0); /* 4 misses, 4 stores */
  compute(NULL, 0); /* 2 hits */
  compute(&d, 1);   /* 1 hit (c), 1 miss (d), 1 store */
  cr_assert_eq(tg_cache_flush(cache), TG_OK);
  cr_assert_eq(tg_cache_get_stats(cache, &st), TG_OK);
  cr_expect_eq(st.runs, 3);
  cr_expect_eq(st.total.hits, 3);
  cr_expect_eq(st.total.misses, 5);
  cr_expect_eq(st.total.stores, 5);
  cr_expect_gt(st.total.bytes_written, 0);
  cr_expect_gt(st.total.bytes_read, 0);
  cr_expect_eq(st.last.hits, 1);
  cr_expect_eq(st.last.misses, 1);
  cr_expect_eq(st.last.stores, 1);
  cr_expect_gt(st.since, 0);
  cr_expect_geq(st.last_time, st.since);
  cr_assert_eq(tg_cache_zero_stats(cache), TG_OK);
  cr_assert_eq(tg_cache_get_stats(cache, &st), TG_OK);
  cr_expect_eq(st.runs, 0);
  cr_expect_eq(st.total.hits, 0);
  cr_expect_eq(st.total.stores, 0);
  cr_expect_eq(st.last.hits, 1, "the last compute stays");
  /* Another handle (as another process would) sees the same. */
  tg_cache_close(cache);
  open_cache(0);
  compute(NULL, 0);
  cr_assert_eq(tg_cache_flush(cache), TG_OK);
  cr_assert_eq(tg_cache_get_stats(cache, &st), TG_OK);
  cr_expect_eq(st.runs, 1);
  cr_expect_eq(st.total.hits, 2);
  cr_expect_eq(st.total.misses, 0);
  cr_expect_eq(tg_cache_get_stats(NULL, &st), TG_EINVAL);
}

/* Records of computes waiting for the writer add up as one, and a zeroing
 * between two computes keeps the later one's counts only. */
Test(memo_make, stats_of_queued_computes_add_up_and_respect_zeroing) {
  open_cache(TG_CACHE_STORE_ALL);
  compute(NULL, 0); /* 4 misses, 4 stores */
  for (int i = 0; i < 5; i++) compute(NULL, 0); /* 2 hits each, not flushed */
  tg_cache_stats st;
  cr_assert_eq(tg_cache_flush(cache), TG_OK);
  cr_assert_eq(tg_cache_get_stats(cache, &st), TG_OK);
  cr_expect_eq(st.runs, 6);
  cr_expect_eq(st.total.hits, 10);
  cr_expect_eq(st.total.misses, 4);
  cr_expect_eq(st.total.stores, 4);
  cr_expect_eq(st.last.hits, 2);
  cr_expect_eq(st.last.misses, 0);
  compute(NULL, 0);
  cr_assert_eq(tg_cache_zero_stats(cache), TG_OK);
  compute(&d, 1); /* 1 hit (c), 1 miss (d), 1 store */
  compute(NULL, 0);
  cr_assert_eq(tg_cache_flush(cache), TG_OK);
  cr_assert_eq(tg_cache_get_stats(cache, &st), TG_OK);
  cr_expect_eq(st.runs, 2);
  cr_expect_eq(st.total.hits, 3);
  cr_expect_eq(st.total.misses, 1);
  cr_expect_eq(st.total.stores, 1);
  cr_expect_eq(st.last.hits, 2);
}
