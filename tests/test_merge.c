/* tests/test_merge.c: identical pure calls in one graph are computed
 * once, their result shared by every node that asked for it, on sync,
 * threads, processes and tcp; impure calls, different arguments and
 * values that only look alike are not merged. tick() counts its calls in
 * a file, so the counts hold wherever tasks run. */
#include "tgraph/cache.h"
#include "test_xbackend.h"

static tg_executor *ex;
static tg_graph *g;

/* tick(file `name`, x), under user key `key` (NULL: generated). */
static tg_node tick(const char *fn, const char *name, tg_arg x, const char *key) {
  char p[256];
  tx_path(p, sizeof p, name);
  tg_arg a[2] = {tg_arg_value(tg_str_c(p)), x};
  tg_node_opts o = {TG_NODE_OPTS_V1, key, -1, -1, 0, 0};
  tg_node n = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, fn, a, 2, &o, &n), TG_OK, "%s", tg_graph_errmsg(g));
  return n;
}

static tg_node tick_int(const char *name, int64_t x, const char *key) {
  return tick("tick", name, tg_arg_value(tg_int(x)), key);
}

/* Compute outs on the test's executor; results as ints in res. */
static void compute(const tg_node *outs, size_t n, int64_t *res, tg_compute_stats *st) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .stats = st};
  tg_value *v[8] = {NULL};
  cr_assert_leq(n, 8);
  cr_assert_eq(tg_compute(g, outs, n, &o, v), TG_OK, "%s", tg_graph_errmsg(g));
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(tg_value_type(v[i]), TG_INT);
    res[i] = tg_value_int(v[i]);
    tg_value_unref(v[i]);
  }
}

#define ON(be, name)                                                   \
  Test(merge, name##_##be, .init = tx_setup, .timeout = 180) {         \
    ex = tx_executor(#be);                                             \
    cr_assert_eq(tg_graph_new(tx_reg, &g), TG_OK);                     \
    name();                                                            \
    tg_graph_free(g);                                                  \
    tx_teardown(ex);                                                   \
  }
#define ON_ALL(name) ON(sync, name) ON(threads, name) ON(processes, name) ON(tcp, name)

/* Two nodes, same function and arguments, different user keys: one call,
 * one task (the stats count it once), the same result for both. */
static void same_call_runs_once(void) {
  tg_node a = tick_int("t", 4, "a"), b = tick_int("t", 4, "b");
  tg_node outs[2] = {a, b};
  int64_t r[2];
  tg_compute_stats st;
  compute(outs, 2, r, &st);
  cr_assert(r[0] == 40 && r[1] == 40);
  cr_assert_eq(tx_count("t"), 1);
  cr_assert_eq(st.tasks_total, 1);
  cr_assert_eq(st.tasks_run, 1);
  /* Through a consumer of both: still one call of tick. */
  tg_node sum = tg_call(g, "add", 2, tg_arg_node(a), tg_arg_node(b));
  compute(&sum, 1, r, &st);
  cr_assert_eq(r[0], 80);
  cr_assert_eq(tx_count("t"), 2);
  cr_assert_eq(st.tasks_total, 2);
}
ON_ALL(same_call_runs_once)

static void impure_calls_run_twice(void) {
  tg_node a = tick("tick_impure", "t", tg_arg_value(tg_int(4)), NULL);
  tg_node b = tick("tick_impure", "t", tg_arg_value(tg_int(4)), NULL);
  /* Pure calls of two impure results are not merged either. */
  tg_node c = tick("tick", "u", tg_arg_node(a), NULL), d = tick("tick", "u", tg_arg_node(b), NULL);
  tg_node outs[2] = {c, d};
  int64_t r[2];
  tg_compute_stats st;
  compute(outs, 2, r, &st);
  cr_assert(r[0] == 400 && r[1] == 400);
  cr_assert_eq(tx_count("t"), 2);
  cr_assert_eq(tx_count("u"), 2);
  cr_assert_eq(st.tasks_run, 4);
}
ON_ALL(impure_calls_run_twice)

static void different_arguments_run_twice(void) {
  tg_node outs[3] = {tick_int("t", 1, NULL), tick_int("t", 2, NULL), tick_int("v", 1, NULL)};
  int64_t r[3];
  compute(outs, 3, r, NULL);
  cr_assert(r[0] == 10 && r[1] == 20 && r[2] == 10);
  cr_assert_eq(tx_count("t"), 2);
  cr_assert_eq(tx_count("v"), 1);
}
ON_ALL(different_arguments_run_twice)

/* Two identical subtrees (built node by node, each its own nodes) merge
 * entirely: each distinct call runs once. */
static tg_node subtree(void) {
  tg_node x = tick_int("t", 1, NULL);
  tg_node y = tick("tick", "t", tg_arg_node(x), NULL); /* 100 */
  tg_node z = tick_int("t", 2, NULL);                  /* 20 */
  tg_node pk = tg_call(g, "pack", 2, tg_arg_node(y), tg_arg_node(z));
  return tg_call(g, "add", 2, tg_arg_item(pk, 0), tg_arg_item(pk, 1));
}

static void deep_identical_subtrees(void) {
  tg_node s1 = subtree(), s2 = subtree();
  tg_node top = tg_call(g, "add", 2, tg_arg_node(s1), tg_arg_node(s2));
  tg_node outs[3] = {top, s1, s2};
  int64_t r[3];
  tg_compute_stats st;
  compute(outs, 3, r, &st);
  cr_assert(r[0] == 240 && r[1] == 120 && r[2] == 120);
  cr_assert_eq(tx_count("t"), 3);
  cr_assert_eq(st.tasks_total, 6, "3 ticks, pack, add and the top");
}
ON_ALL(deep_identical_subtrees)

/* Futures of identical nodes submitted together: one call, both results. */
static void submitted_together(void) {
  tg_node outs[2] = {tick_int("t", 3, "p"), tick_int("t", 3, "q")};
  tg_future *f[2];
  cr_assert_eq(tg_executor_submit_many(ex, g, outs, 2, f), TG_OK);
  for (int i = 0; i < 2; i++) {
    tg_value *v = NULL;
    cr_assert_eq(tg_future_result(f[i], 60, &v), TG_OK, "%s", tg_future_errmsg(f[i]));
    cr_assert_eq(tg_value_int(v), 30);
    tg_value_unref(v);
    tg_future_free(f[i]);
  }
  cr_assert_eq(tx_count("t"), 1);
}
ON_ALL(submitted_together)

/* What counts as identical constants, seen through in-process call
 * counters (sync): equal small values merge, whatever object holds them;
 * -0.0 and 0.0 do not (a function may tell them apart); large values
 * merge only when they are the same object (no run hashes large data). */
Test(merge, constants, .init = tx_setup) {
  cr_assert_eq(tg_graph_new(tx_reg, &g), TG_OK);
  tg_value *l1 = tg_list_of(2, tg_int(0), tg_int(1));
  tg_value *l2 = tg_list_of(2, tg_int(0), tg_int(1));
  cr_assert(l1 && l2 && l1 != l2);
  char big[1000];
  memset(big, 'x', sizeof big);
  tg_value *b1 = tg_str(big, sizeof big), *b2 = tg_str(big, sizeof big);
  tg_node n[] = {
      tg_call(g, "identity", 1, tg_arg_value(l1)), tg_call(g, "identity", 1, tg_arg_value(l2)),
      tg_call(g, "identity", 1, tg_arg_value(tg_float(0.0))),
      tg_call(g, "identity", 1, tg_arg_value(tg_float(-0.0))),
      tg_call(g, "identity", 1, tg_arg_value(tg_value_ref(b1))),
      tg_call(g, "identity", 1, tg_arg_value(b1)), tg_call(g, "identity", 1, tg_arg_value(b2)),
  };
  tg_value *v[7] = {NULL};
  tg_compute_opts o = tgt_opts("sync", 1, NULL);
  cr_assert_eq(tg_compute(g, n, 7, &o, v), TG_OK, "%s", tg_graph_errmsg(g));
  /* the list once, 0.0 and -0.0 once each, b1 once, b2 once */
  cr_assert_eq(tgt_calls(TGT_IDENTITY), 5);
  cr_assert(tg_value_equal(v[0], v[1]) && tg_value_equal(v[5], v[6]));
  cr_assert_eq(v[4], v[5], "merged nodes share one result");
  for (int i = 0; i < 7; i++) tg_value_unref(v[i]);
  tg_graph_free(g);
  tg_registry_free(tx_reg);
}

/* With a cache: the merged call is stored once; the next compute serves
 * both nodes from that one entry. */
static void cached_once(void) {
  char path[300];
  tx_path(path, sizeof path, "cache");
  tg_cache_opts co = {.version = TG_CACHE_OPTS_V1, .min_compute_seconds = TG_CACHE_STORE_ALL};
  tg_cache *c = NULL;
  tg_error err;
  cr_assert_eq(tg_cache_open(path, &co, &c, &err), TG_OK, "%s", err.msg);
  tg_node outs[2] = {tick_int("t", 5, "a"), tick_int("t", 5, "b")};
  tg_compute_stats st;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .stats = &st, .cache = c};
  tg_value *v[2];
  for (int round = 0; round < 2; round++) {
    cr_assert_eq(tg_compute(g, outs, 2, &o, v), TG_OK, "%s", tg_graph_errmsg(g));
    cr_assert(tg_value_int(v[0]) == 50 && tg_value_int(v[1]) == 50);
    tg_value_unref(v[0]);
    tg_value_unref(v[1]);
    if (round == 0)
      cr_assert(st.cache_stores == 1 && st.tasks_run == 1, "stores %zu run %zu",
                st.cache_stores, st.tasks_run);
    else
      cr_assert(st.cache_hits == 2 && st.tasks_run == 0, "hits %zu run %zu", st.cache_hits,
                st.tasks_run);
  }
  cr_assert_eq(tx_count("t"), 1);
  tg_cache_close(c);
}
ON(sync, cached_once)
ON(threads, cached_once)
ON(processes, cached_once)
