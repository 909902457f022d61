/* tests/test_graph.c: registries, graph building (keys, arguments, map,
 * errors) and computing small and very large graphs on the sync and
 * threads backends. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tgraph/graph.h"
#include "tgraph/registry.h"
#include "test_funcs.h"

#define OK(g, expr)                                                        \
  do {                                                                     \
    int rc_ = (expr);                                                      \
    cr_assert_eq(rc_, TG_OK, "%s: %s: %s", #expr, tg_err_name(rc_),        \
                 tg_graph_errmsg(g));                                      \
  } while (0)

static tg_registry *reg;
static tg_graph *g;

static void setup(void) {
  reg = tgt_registry_new();
  cr_assert_not_null(reg);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  cr_assert_not_null(g);
}

static void teardown(void) {
  tg_graph_free(g);
  tg_registry_free(reg);
}

static int dummy_fn(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                    tg_value **out) {
  (void)ctx;
  (void)args;
  (void)nargs;
  *out = tg_null();
  return TG_OK;
}

/* ---- registry ----------------------------------------------------------- */

Test(graph, registry_add_and_lookup) {
  tg_registry *r = NULL;
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  cr_assert_eq(tg_registry_count(r), 0);
  cr_assert_null(tg_registry_find(r, "f"));
  tg_func_def def = {.version = TG_FUNC_DEF_V1, .name = "ns.f", .fn_version = "2.1",
                     .fn = dummy_fn, .flags = TG_FUNC_PURE,
                     .nargs = 3, .doc = "does f"};
  const tg_func *f = NULL;
  cr_assert_eq(tg_registry_add(r, &def, &f), TG_OK);
  cr_assert_not_null(f);
  cr_assert_eq(tg_registry_find(r, "ns.f"), f);
  cr_assert_str_eq(tg_func_name(f), "ns.f");
  cr_assert_str_eq(tg_func_version(f), "2.1");
  cr_assert_eq(tg_func_flags(f), TG_FUNC_PURE);
  cr_assert_eq(tg_func_nargs(f), 3);
  cr_assert_str_eq(tg_func_doc(f), "does f");
  cr_assert_eq(tg_register(r, "g", dummy_fn, 0), TG_OK);
  cr_assert_eq(tg_registry_count(r), 2);
  cr_assert_eq(tg_registry_at(r, 0), f);
  const tg_func *gf = tg_registry_at(r, 1);
  cr_assert_str_eq(tg_func_name(gf), "g");
  cr_assert_str_eq(tg_func_version(gf), "0");
  cr_assert_eq(tg_func_nargs(gf), -1);
  cr_assert_eq(tg_func_flags(gf), 0);
  cr_assert_str_eq(tg_func_doc(gf), "");
  cr_assert_null(tg_registry_at(r, 2));
  tg_registry_free(r);
  tg_registry_free(NULL);
}

Test(graph, registry_copies_strings) {
  tg_registry *r = NULL;
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  char name[16] = "copied", ver[8] = "v9", doc[8] = "docs";
  tg_func_def def = {.version = TG_FUNC_DEF_V1, .name = name, .fn_version = ver,
                     .fn = dummy_fn, .flags = 0, .nargs = -1,
                     .doc = doc};
  const tg_func *f = NULL;
  cr_assert_eq(tg_registry_add(r, &def, &f), TG_OK);
  memset(name, 'x', sizeof name - 1);
  memset(ver, 'x', sizeof ver - 1);
  memset(doc, 'x', sizeof doc - 1);
  cr_assert_eq(tg_registry_find(r, "copied"), f);
  cr_assert_str_eq(tg_func_name(f), "copied");
  cr_assert_str_eq(tg_func_version(f), "v9");
  cr_assert_str_eq(tg_func_doc(f), "docs");
  tg_registry_free(r);
}

Test(graph, registry_duplicate_is_eexist) {
  tg_registry *r = NULL;
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  tg_func_def def = {.version = TG_FUNC_DEF_V1, .name = "f", .fn_version = "1",
                     .fn = dummy_fn, .flags = 0, .nargs = 1};
  cr_assert_eq(tg_registry_add(r, &def, NULL), TG_OK);
  def.fn_version = "2";
  const tg_func *out = NULL;
  cr_assert_eq(tg_registry_add(r, &def, &out), TG_EEXIST);
  cr_assert_eq(tg_register(r, "f", dummy_fn, 0), TG_EEXIST);
  cr_assert_eq(tg_registry_count(r), 1);
  cr_assert_str_eq(tg_func_version(tg_registry_find(r, "f")), "1");
  tg_registry_free(r);
}

Test(graph, registry_rejects_bad_definitions) {
  tg_registry *r = NULL;
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  char long_name[300];
  memset(long_name, 'a', sizeof long_name);
  long_name[256] = '\0'; /* 256 bytes: one too many */
  const char *bad[] = {NULL, "", long_name, "tab\there", "nl\n", "\xff\xfe",
                       "del\x7f"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    tg_func_def def = {.version = TG_FUNC_DEF_V1, .name = bad[i], .fn_version = NULL,
                       .fn = dummy_fn, .flags = 0, .nargs = -1};
    cr_assert_eq(tg_registry_add(r, &def, NULL), TG_EINVAL, "name #%zu", i);
  }
  tg_func_def nofn = {.version = TG_FUNC_DEF_V1, .name = "nofn", .fn_version = NULL,
                      .fn = NULL, .flags = 0, .nargs = -1};
  cr_assert_eq(tg_registry_add(r, &nofn, NULL), TG_EINVAL);
  cr_assert_eq(tg_register(r, "nofn", NULL, 0), TG_EINVAL);
  cr_assert_eq(tg_registry_count(r), 0);
  long_name[255] = '\0'; /* 255 bytes: the longest allowed */
  cr_assert_eq(tg_register(r, long_name, dummy_fn, 0), TG_OK);
  cr_assert_eq(tg_register(r, "caf\xc3\xa9.\xe2\x82\xac", dummy_fn, 0), TG_OK);
  cr_assert_eq(tg_registry_count(r), 2);
  tg_registry_free(r);
}

Test(graph, registry_suggests_closest_name) {
  tg_registry *r = NULL;
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  cr_assert_null(tg_registry_suggest(r, "anything"));
  cr_assert_eq(tg_register(r, "add", dummy_fn, 0), TG_OK);
  cr_assert_eq(tg_register(r, "multiply", dummy_fn, 0), TG_OK);
  cr_assert_eq(tg_register(r, "sum_args", dummy_fn, 0), TG_OK);
  cr_assert_str_eq(tg_registry_suggest(r, "ad"), "add");
  cr_assert_str_eq(tg_registry_suggest(r, "multipyl"), "multiply");
  cr_assert_str_eq(tg_registry_suggest(r, "sums_arg"), "sum_args");
  cr_assert_str_eq(tg_registry_suggest(r, "add"), "add");
  tg_registry_free(r);
}

/* ---- keys and lookup ------------------------------------------------------ */

Test(graph, node_keys_generated_and_user, .init = setup, .fini = teardown) {
  cr_assert_eq(tg_graph_size(g), 0);
  tg_node a = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  tg_node b = tg_call(g, "add", 2, tg_arg_node(a), tg_arg_value(tg_int(2)));
  tg_node_opts o = {TG_NODE_OPTS_V1, "total", -1, -1, 0, 0};
  tg_node c = TG_NODE_NONE;
  OK(g, tg_graph_add(g, "identity", (tg_arg[]){tg_arg_node(b)}, 1, &o, &c));
  cr_assert_eq(a, 0);
  cr_assert_eq(b, 1);
  cr_assert_eq(c, 2);
  cr_assert_eq(tg_graph_size(g), 3);

  char buf[64];
  cr_assert_eq(tg_node_key(g, a, buf, sizeof buf), 5);
  cr_assert_str_eq(buf, "inc#0");
  cr_assert_eq(tg_node_key(g, b, buf, sizeof buf), 5);
  cr_assert_str_eq(buf, "add#1");
  cr_assert_eq(tg_node_key(g, c, buf, sizeof buf), 5);
  cr_assert_str_eq(buf, "total");
  cr_assert_eq(tg_node_key(g, 3, buf, sizeof buf), -1);
  cr_assert_eq(tg_node_key(g, TG_NODE_NONE, buf, sizeof buf), -1);

  char small[4];
  cr_assert_eq(tg_node_key(g, a, small, sizeof small), 5);
  cr_assert_str_eq(small, "inc");
  cr_assert_eq(tg_node_key(g, a, NULL, 0), 5);

  cr_assert_eq(tg_graph_find(g, "inc#0"), a);
  cr_assert_eq(tg_graph_find(g, "add#1"), b);
  cr_assert_eq(tg_graph_find(g, "total"), c);
  cr_assert_eq(tg_graph_find(g, "identity#2"), TG_NODE_NONE);
  cr_assert_eq(tg_graph_find(g, "nope"), TG_NODE_NONE);
  cr_assert_eq(tg_node_func(g, a), tg_registry_find(reg, "inc"));
  cr_assert_eq(tg_node_func(g, c), tg_registry_find(reg, "identity"));
  cr_assert_null(tg_node_func(g, 7));
}

Test(graph, generated_keys_are_stable, .init = setup, .fini = teardown) {
  tg_graph *g2 = NULL;
  cr_assert_eq(tg_graph_new(reg, &g2), TG_OK);
  for (int i = 0; i < 50; i++) {
    tg_node x = tg_call(g, i % 2 ? "inc" : "identity", 1,
                        tg_arg_value(tg_int(i)));
    tg_node y = tg_call(g2, i % 2 ? "inc" : "identity", 1,
                        tg_arg_value(tg_int(i)));
    char k1[32], k2[32], want[32];
    cr_assert_gt(tg_node_key(g, x, k1, sizeof k1), 0);
    cr_assert_gt(tg_node_key(g2, y, k2, sizeof k2), 0);
    snprintf(want, sizeof want, "%s#%d", i % 2 ? "inc" : "identity", i);
    cr_assert_str_eq(k1, want);
    cr_assert_str_eq(k2, want);
  }
  tg_graph_free(g2);
}

Test(graph, duplicate_user_key_is_eexist, .init = setup, .fini = teardown) {
  tg_node_opts o = {TG_NODE_OPTS_V1, "x", -1, -1, 0, 0};
  tg_node n = TG_NODE_NONE;
  OK(g, tg_graph_add(g, "inc", (tg_arg[]){tg_arg_value(tg_int(1))}, 1, &o, &n));
  tg_node n2 = 1234;
  cr_assert_eq(tg_graph_add(g, "inc", (tg_arg[]){tg_arg_value(tg_int(2))}, 1,
                            &o, &n2),
               TG_EEXIST);
  cr_assert_eq(n2, 1234, "a failed add must not write *out");
  cr_assert_eq(tg_graph_size(g), 1);
  cr_assert_not_null(strstr(tg_graph_errmsg(g), "'x'"), "errmsg: %s",
                     tg_graph_errmsg(g));
  /* A user key may not take a generated key either. */
  o.key = "inc#0";
  cr_assert_eq(tg_graph_add(g, "inc", (tg_arg[]){tg_arg_value(tg_int(2))}, 1,
                            &o, NULL),
               TG_EEXIST);
  cr_assert_eq(tg_graph_size(g), 1);
}

Test(graph, empty_user_key_is_einval, .init = setup, .fini = teardown) {
  tg_node_opts o = {TG_NODE_OPTS_V1, "", -1, -1, 0, 0};
  cr_assert_eq(tg_graph_add(g, "inc", (tg_arg[]){tg_arg_value(tg_int(1))}, 1,
                            &o, NULL),
               TG_EINVAL);
  cr_assert_eq(tg_graph_size(g), 0);
}

/* ---- build errors ------------------------------------------------------- */

Test(graph, unknown_function_suggests, .init = setup, .fini = teardown) {
  tg_node n = 77;
  cr_assert_eq(tg_graph_add(g, "ad", (tg_arg[]){tg_arg_value(tg_int(1)),
                                               tg_arg_value(tg_int(2))},
                            2, NULL, &n),
               TG_ENOFUNC);
  cr_assert_eq(n, 77);
  cr_assert_eq(tg_graph_size(g), 0);
  const char *msg = tg_graph_errmsg(g);
  cr_assert_not_null(strstr(msg, "'ad'"), "errmsg: %s", msg);
  cr_assert_not_null(strstr(msg, "did you mean 'add'"), "errmsg: %s", msg);
  cr_assert_eq(tg_call(g, "sum_arg", 1, tg_arg_value(tg_int(1))), TG_NODE_NONE);
  cr_assert_not_null(strstr(tg_graph_errmsg(g), "did you mean 'sum_args'"),
                     "errmsg: %s", tg_graph_errmsg(g));
}

Test(graph, wrong_arg_count_is_einval, .init = setup, .fini = teardown) {
  tg_node a = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  cr_assert_neq(a, TG_NODE_NONE);
  cr_assert_eq(tg_graph_add(g, "add", (tg_arg[]){tg_arg_node(a)}, 1, NULL,
                            NULL),
               TG_EINVAL);
  cr_assert_not_null(strstr(tg_graph_errmsg(g), "add"), "errmsg: %s",
                     tg_graph_errmsg(g));
  cr_assert_eq(tg_call(g, "inc", 0), TG_NODE_NONE);
  cr_assert_eq(tg_call(g, "inc", 2, tg_arg_node(a), tg_arg_value(tg_int(1))),
               TG_NODE_NONE);
  cr_assert_eq(tg_graph_size(g), 1);
  /* Functions declaring -1 take any count, none included. */
  cr_assert_neq(tg_call(g, "sum_args", 0), TG_NODE_NONE);
  cr_assert_neq(tg_call(g, "sum_args", 3, tg_arg_node(a), tg_arg_node(a),
                        tg_arg_node(a)),
                TG_NODE_NONE);
  cr_assert_eq(tg_graph_size(g), 3);
}

Test(graph, bad_arguments_are_einval, .init = setup, .fini = teardown) {
  tg_node a = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  tg_arg bad[] = {
      tg_arg_node(5),
      tg_arg_node(TG_NODE_NONE),
      tg_arg_item(9, 0),
      tg_arg_key(9, "k"),
      tg_arg_future(NULL),
      tg_arg_value(NULL),
  };
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    cr_assert_eq(tg_graph_add(g, "identity", &bad[i], 1, NULL, NULL),
                 TG_EINVAL, "argument #%zu", i);
    cr_assert_eq(tg_graph_size(g), 1);
  }
  /* A bad argument after a good constant: the constant is still taken
   * (the leak checker sees it otherwise) and the graph is unchanged. */
  cr_assert_eq(tg_call(g, "add", 2, tg_arg_value(tg_str_c("taken")),
                       tg_arg_node(42)),
               TG_NODE_NONE);
  cr_assert_eq(tg_call(g, "nosuch", 1, tg_arg_value(tg_str_c("taken"))),
               TG_NODE_NONE);
  cr_assert_eq(tg_graph_size(g), 1);
  cr_assert_neq(tg_call(g, "identity", 1, tg_arg_node(a)), TG_NODE_NONE);
}

Test(graph, failed_call_poisons_later_calls, .init = setup, .fini = teardown) {
  tg_node x = tg_call(g, "nosuch", 0);
  cr_assert_eq(x, TG_NODE_NONE);
  tg_node y = tg_call(g, "inc", 1, tg_arg_node(x));
  cr_assert_eq(y, TG_NODE_NONE);
  tg_node z = tg_call(g, "add", 2, tg_arg_node(y), tg_arg_value(tg_int(1)));
  cr_assert_eq(z, TG_NODE_NONE);
  cr_assert_eq(tg_graph_size(g), 0);
}

Test(graph, add_by_handle, .init = setup, .fini = teardown) {
  const tg_func *inc = tg_registry_find(reg, "inc");
  tg_node n = TG_NODE_NONE;
  OK(g, tg_graph_add_fn(g, inc, (tg_arg[]){tg_arg_value(tg_int(41))}, 1, NULL,
                        &n));
  char key[16];
  tg_node_key(g, n, key, sizeof key);
  cr_assert_str_eq(key, "inc#0");
  tg_compute_opts o = tgt_opts("sync", 1, NULL);
  int rc;
  cr_assert_eq(tgt_compute_int(g, n, &o, &rc), 42);
  cr_assert_eq(tg_graph_add_fn(g, inc, NULL, 0, NULL, NULL), TG_EINVAL);
  cr_assert_eq(tg_graph_add_fn(g, NULL, NULL, 0, NULL, NULL), TG_EINVAL);
  cr_assert_eq(tg_graph_size(g), 1);
}

/* ---- computing ---------------------------------------------------------- */

/* a = inc(1) = 2; b = a + 10; c = a + 100; d = b + c = 114. */
static tg_node diamond(tg_graph *gr) {
  tg_node a = tg_call(gr, "inc", 1, tg_arg_value(tg_int(1)));
  tg_node b = tg_call(gr, "add", 2, tg_arg_node(a), tg_arg_value(tg_int(10)));
  tg_node c = tg_call(gr, "add", 2, tg_arg_value(tg_int(100)), tg_arg_node(a));
  return tg_call(gr, "add", 2, tg_arg_node(b), tg_arg_node(c));
}

Test(graph, diamond, .init = setup, .fini = teardown) {
  tg_node d = diamond(g);
  cr_assert_neq(d, TG_NODE_NONE, "%s", tg_graph_errmsg(g));
  tg_compute_stats st;
  memset(&st, 0xab, sizeof st);
  tg_compute_opts o = tgt_opts("sync", 1, &st);
  int rc;
  cr_assert_eq(tgt_compute_int(g, d, &o, &rc), 114, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tgt_calls(TGT_INC), 1, "the shared input runs once");
  cr_assert_eq(tgt_calls(TGT_ADD), 3);
  cr_assert_eq(st.tasks_total, 4);
  cr_assert_eq(st.tasks_run, 4);
  cr_assert_eq(st.tasks_cached, 0);
  cr_assert_eq(st.tasks_failed, 0);
  cr_assert_eq(st.tasks_skipped, 0);
  cr_assert_eq(st.failed_node, TG_NODE_NONE);
  cr_assert_geq(st.peak_live, 1);
  cr_assert_leq(st.peak_live, 3);
  cr_assert_geq(st.wall_seconds, 0.0);
  cr_assert_lt(st.wall_seconds, 10.0);
  /* A second compute runs everything again (no cache). */
  cr_assert_eq(tgt_compute_int(g, d, &o, &rc), 114);
  cr_assert_eq(tgt_calls(TGT_INC), 2);
  cr_assert_eq(st.tasks_run, 4);
  /* And on threads. */
  o = tgt_opts("threads", 2, &st);
  cr_assert_eq(tgt_compute_int(g, d, &o, &rc), 114, "%s", tg_graph_errmsg(g));
  cr_assert_eq(st.tasks_total, 4);
  cr_assert_eq(st.tasks_run, 4);
  cr_assert_eq(tgt_calls(TGT_INC), 3);
}

Test(graph, default_opts_compute, .init = setup, .fini = teardown) {
  tg_node d = diamond(g);
  tg_value *v = NULL;
  OK(g, tg_compute(g, &d, 1, NULL, &v));
  cr_assert_eq(tg_value_int(v), 114);
  tg_value_unref(v);
}

Test(graph, culling_runs_only_what_outputs_need, .init = setup,
     .fini = teardown) {
  tg_node d = diamond(g);
  tg_node unused = tg_call(g, "counted", 1, tg_arg_node(d));
  tg_node other = tg_call(g, "sum_args", 2, tg_arg_node(unused),
                          tg_arg_value(tg_int(1)));
  cr_assert_neq(other, TG_NODE_NONE);
  tg_node b = 1; /* add#1 = inc(1) + 10 */
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts("sync", 1, &st);
  int rc;
  cr_assert_eq(tgt_compute_int(g, b, &o, &rc), 12);
  cr_assert_eq(st.tasks_total, 2);
  cr_assert_eq(st.tasks_run, 2);
  cr_assert_eq(tgt_calls(TGT_COUNTED), 0);
  cr_assert_eq(tgt_calls(TGT_SUM_ARGS), 0);
  cr_assert_eq(tgt_calls(TGT_ADD), 1);
}

Test(graph, several_outputs_share_inputs, .init = setup, .fini = teardown) {
  tg_node d = diamond(g);
  tg_node outs[4] = {d, 0, d, 2};
  tg_value *res[4] = {NULL, NULL, NULL, NULL};
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts("sync", 1, &st);
  OK(g, tg_compute(g, outs, 4, &o, res));
  int64_t want[4] = {114, 2, 114, 102};
  for (int i = 0; i < 4; i++) {
    cr_assert_eq(tg_value_type(res[i]), TG_INT);
    cr_assert_eq(tg_value_int(res[i]), want[i]);
    tg_value_unref(res[i]);
  }
  cr_assert_eq(st.tasks_total, 4);
  cr_assert_eq(tgt_calls(TGT_INC), 1);
}

Test(graph, compute_rejects_bad_arguments, .init = setup, .fini = teardown) {
  tg_node d = diamond(g);
  tg_value *v = tg_int(5);
  tg_node bad = 99;
  tg_compute_opts o = tgt_opts("sync", 1, NULL);
  cr_assert_eq(tg_compute(g, &bad, 1, &o, &v), TG_EINVAL);
  cr_assert_null(v);
  o.scheduler = "nosuch";
  cr_assert_eq(tg_compute(g, &d, 1, &o, &v), TG_EINVAL);
  cr_assert_null(v);
  cr_assert_not_null(strstr(tg_graph_errmsg(g), "nosuch"), "errmsg: %s",
                     tg_graph_errmsg(g));
  cr_assert_eq(tgt_calls(TGT_ADD), 0);
}

Test(graph, chain_of_100000, .init = setup, .fini = teardown) {
  const int n = 100000;
  tg_node x = tg_call(g, "inc", 1, tg_arg_value(tg_int(0)));
  for (int i = 1; i < n; i++) x = tg_call(g, "inc", 1, tg_arg_node(x));
  cr_assert_neq(x, TG_NODE_NONE, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tg_graph_size(g), (size_t)n);
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts("sync", 1, &st);
  int rc;
  cr_assert_eq(tgt_compute_int(g, x, &o, &rc), n, "%s", tg_graph_errmsg(g));
  cr_assert_eq(st.tasks_run, (size_t)n);
  cr_assert_leq(st.peak_live, 2, "a chain needs one value at a time");
  o = tgt_opts("threads", 2, &st);
  cr_assert_eq(tgt_compute_int(g, x, &o, &rc), n, "%s", tg_graph_errmsg(g));
  cr_assert_eq(st.tasks_run, (size_t)n);
  cr_assert_eq(tgt_calls(TGT_INC), 2 * n);
}

Test(graph, fan_out_of_100000, .init = setup, .fini = teardown) {
  const size_t n = 100000;
  tg_node src = tg_call(g, "identity", 1, tg_arg_value(tg_int(7)));
  tg_node *outs = malloc(n * sizeof *outs);
  tg_arg *args = malloc(n * sizeof *args);
  for (size_t i = 0; i < n; i++) {
    /* distinct calls: identical ones would be merged into one task */
    outs[i] = tg_call(g, "add", 2, tg_arg_node(src), tg_arg_value(tg_int((int64_t)i)));
    args[i] = tg_arg_node(outs[i]);
  }
  tg_node total = TG_NODE_NONE;
  OK(g, tg_graph_add(g, "sum_args", args, n, NULL, &total));
  tg_compute_opts o = tgt_opts("threads", 2, NULL);
  int rc;
  cr_assert_eq(tgt_compute_int(g, total, &o, &rc), (int64_t)(n * 7 + n * (n - 1) / 2),
               "%s", tg_graph_errmsg(g));
  cr_assert_eq(tgt_calls(TGT_IDENTITY), 1);

  tg_value **res = calloc(n, sizeof *res);
  o = tgt_opts("sync", 1, NULL);
  OK(g, tg_compute(g, outs, n, &o, res));
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(tg_value_int(res[i]), 7 + (int64_t)i, "result %zu", i);
    tg_value_unref(res[i]);
  }
  cr_assert_eq(tgt_calls(TGT_ADD), 2 * (long)n);
  free(res);
  free(args);
  free(outs);
}

/* Pairwise sums of leaves 1..n: n(n+1)/2. */
static tg_node tree(tg_graph *gr, size_t n) {
  tg_node *level = malloc(n * sizeof *level);
  for (size_t i = 0; i < n; i++)
    level[i] = tg_call(gr, "identity", 1, tg_arg_value(tg_int((int64_t)i + 1)));
  while (n > 1) {
    size_t m = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
      level[m++] = tg_call(gr, "add", 2, tg_arg_node(level[i]),
                           tg_arg_node(level[i + 1]));
    if (n % 2) level[m++] = level[n - 1];
    n = m;
  }
  tg_node root = level[0];
  free(level);
  return root;
}

Test(graph, tree_reduction, .init = setup, .fini = teardown) {
  tg_node root = tree(g, 1000);
  cr_assert_neq(root, TG_NODE_NONE);
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts("sync", 1, &st);
  int rc;
  cr_assert_eq(tgt_compute_int(g, root, &o, &rc), 500500);
  cr_assert_eq(st.tasks_total, 1999);
  cr_assert_eq(tgt_calls(TGT_ADD), 999);
  o = tgt_opts("threads", 2, &st);
  cr_assert_eq(tgt_compute_int(g, root, &o, &rc), 500500);
  cr_assert_eq(st.tasks_run, 1999);
}

/* ---- getitem ------------------------------------------------------------ */

Test(graph, getitem_list_index_and_map_key, .init = setup, .fini = teardown) {
  tg_node l = tg_call(g, "pack", 3, tg_arg_value(tg_int(10)),
                      tg_arg_value(tg_int(20)), tg_arg_value(tg_int(30)));
  tg_node m = tg_call(g, "pack_map", 2, tg_arg_value(tg_int(5)),
                      tg_arg_value(tg_str_c("five")));
  tg_node outs[] = {
      tg_call(g, "identity", 1, tg_arg_item(l, 0)),
      tg_call(g, "identity", 1, tg_arg_item(l, 2)),
      tg_call(g, "identity", 1, tg_arg_item(l, -1)),
      tg_call(g, "identity", 1, tg_arg_item(l, -3)),
      tg_call(g, "add", 2, tg_arg_item(l, 1), tg_arg_key(m, "k0")),
      tg_call(g, "identity", 1, tg_arg_key(m, "k1")),
  };
  tg_value *res[6];
  tg_compute_opts o = tgt_opts("sync", 1, NULL);
  OK(g, tg_compute(g, outs, 6, &o, res));
  int64_t want[5] = {10, 30, 30, 10, 25};
  for (int i = 0; i < 5; i++) cr_assert_eq(tg_value_int(res[i]), want[i]);
  size_t len = 0;
  const char *s = tg_str_data(res[5], &len);
  cr_assert_eq(len, 4);
  cr_assert_eq(memcmp(s, "five", 4), 0);
  for (int i = 0; i < 6; i++) tg_value_unref(res[i]);
  cr_assert_eq(tgt_calls(TGT_PACK), 1);
}

/* Compute `n` expecting TG_ETASK with a message naming `key`. */
static void expect_task_error(tg_node n, const char *key, const char *what) {
  tg_value *v = tg_int(1);
  tg_compute_stats st;
  tg_compute_opts o = tgt_opts("sync", 1, &st);
  int rc = tg_compute(g, &n, 1, &o, &v);
  cr_assert_eq(rc, TG_ETASK, "%s: got %s", what, tg_err_name(rc));
  cr_assert_null(v);
  char want[64];
  snprintf(want, sizeof want, "task '%s' failed", key);
  cr_assert_not_null(strstr(tg_graph_errmsg(g), want), "%s: errmsg: %s", what,
                     tg_graph_errmsg(g));
  cr_assert_eq(st.failed_node, n);
}

Test(graph, getitem_errors_name_the_task, .init = setup, .fini = teardown) {
  tg_node l = tg_call(g, "pack", 2, tg_arg_value(tg_int(1)),
                      tg_arg_value(tg_int(2)));
  tg_node m = tg_call(g, "pack_map", 1, tg_arg_value(tg_int(1)));
  tg_node i = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  tg_node past = tg_call(g, "identity", 1, tg_arg_item(l, 2));
  tg_node before = tg_call(g, "identity", 1, tg_arg_item(l, -3));
  tg_node nokey = tg_call(g, "identity", 1, tg_arg_key(m, "zz"));
  tg_node notlist = tg_call(g, "identity", 1, tg_arg_item(i, 0));
  tg_node notmap = tg_call(g, "identity", 1, tg_arg_key(l, "k0"));
  expect_task_error(past, "identity#3", "index 2 of 2 items");
  expect_task_error(before, "identity#4", "index -3 of 2 items");
  expect_task_error(nokey, "identity#5", "missing key");
  expect_task_error(notlist, "identity#6", "item of an int");
  expect_task_error(notmap, "identity#7", "key of a list");
  cr_assert_eq(tgt_calls(TGT_IDENTITY), 0);
}

/* ---- map ---------------------------------------------------------------- */

/* map(add, inputs, extra = [1000]) over n inputs, half constants and half
 * nodes, must equal the loop. */
static void check_map(size_t n, size_t chunk, const char *backend) {
  tg_graph *gr = NULL;
  cr_assert_eq(tg_graph_new(reg, &gr), TG_OK);
  tg_arg *in = malloc((n + 1) * sizeof *in);
  for (size_t i = 0; i < n; i++) {
    if (i % 2)
      in[i] = tg_arg_node(
          tg_call(gr, "identity", 1, tg_arg_value(tg_int((int64_t)i * 3))));
    else
      in[i] = tg_arg_value(tg_int((int64_t)i * 3));
  }
  tg_arg extra = tg_arg_value(tg_int(1000));
  tg_node m = TG_NODE_NONE;
  int rc = tg_graph_map(gr, "add", in, n, &extra, 1, chunk, NULL, &m);
  cr_assert_eq(rc, TG_OK, "n %zu chunk %zu: %s", n, chunk,
               tg_graph_errmsg(gr));
  tg_value *v = NULL;
  tg_compute_opts o = tgt_opts(backend, 2, NULL);
  rc = tg_compute(gr, &m, 1, &o, &v);
  cr_assert_eq(rc, TG_OK, "n %zu chunk %zu: %s", n, chunk,
               tg_graph_errmsg(gr));
  cr_assert_eq(tg_value_type(v), TG_LIST);
  cr_assert_eq(tg_list_len(v), n, "n %zu chunk %zu", n, chunk);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(tg_value_int(tg_list_get(v, i)), (int64_t)i * 3 + 1000,
                 "n %zu chunk %zu item %zu", n, chunk, i);
  tg_value_unref(v);
  free(in);
  tg_graph_free(gr);
}

Test(graph, map_chunks_equal_loop, .init = setup, .fini = teardown) {
  const size_t chunks[] = {0, 1, 2, 3, 7, 64, 999, 1000, 1001, 100000};
  for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
    check_map(1000, chunks[c], "sync");
    check_map(1000, chunks[c], "threads");
  }
  check_map(1, 0, "sync");
  check_map(1, 1, "threads");
  check_map(20000, 0, "threads");
  check_map(0, 0, "sync");
  check_map(0, 5, "threads");
  cr_assert_eq(tgt_calls(TGT_ADD), 2 * 10 * 1000 + 2 + 20000);
}

Test(graph, map_errors, .init = setup, .fini = teardown) {
  tg_arg in[2] = {tg_arg_value(tg_int(1)), tg_arg_value(tg_int(2))};
  tg_node m = 55;
  cr_assert_eq(tg_graph_map(g, "ad", in, 2, NULL, 0, 0, NULL, &m), TG_ENOFUNC);
  cr_assert_not_null(strstr(tg_graph_errmsg(g), "did you mean 'add'"),
                     "errmsg: %s", tg_graph_errmsg(g));
  in[0] = tg_arg_value(tg_int(1));
  in[1] = tg_arg_value(tg_int(2));
  /* add takes two arguments: one input and no extra is a wrong count. */
  cr_assert_eq(tg_graph_map(g, "add", in, 2, NULL, 0, 0, NULL, &m), TG_EINVAL);
  in[0] = tg_arg_value(tg_int(1));
  in[1] = tg_arg_node(3);
  cr_assert_eq(tg_graph_map(g, "inc", in, 2, NULL, 0, 0, NULL, &m), TG_EINVAL);
  cr_assert_eq(m, 55);
  cr_assert_eq(tg_graph_size(g), 0);
}

Test(graph, map_failure_names_map_node, .init = setup, .fini = teardown) {
  tg_arg in[3] = {tg_arg_value(tg_int(1)), tg_arg_value(tg_str_c("x")),
                  tg_arg_value(tg_int(3))};
  tg_node_opts o = {TG_NODE_OPTS_V1, "incs", -1, -1, 0, 0};
  tg_node m = TG_NODE_NONE;
  OK(g, tg_graph_map(g, "inc", in, 3, NULL, 0, 1, &o, &m));
  char key[16];
  cr_assert_eq(tg_node_key(g, m, key, sizeof key), 4);
  cr_assert_str_eq(key, "incs");
  cr_assert_eq(tg_graph_find(g, "incs"), m);
  tg_value *v = NULL;
  tg_compute_opts co = tgt_opts("sync", 1, NULL);
  cr_assert_eq(tg_compute(g, &m, 1, &co, &v), TG_ETASK);
  cr_assert_null(v);
  const char *msg = tg_graph_errmsg(g);
  cr_assert_not_null(strstr(msg, "incs"), "errmsg: %s", msg);
  cr_assert_not_null(strstr(msg, "TG_ETYPE: argument 0: expected int, got str"),
                     "errmsg: %s", msg);
}

/* ---- task context --------------------------------------------------------- */

static int user_fn(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                   tg_value **out) {
  (void)args;
  (void)nargs;
  int *p = tg_task_user(ctx);
  *out = tg_int(*p + tg_task_attempt(ctx));
  return *out ? TG_OK : TG_ENOMEM;
}

Test(graph, task_context, .init = setup, .fini = teardown) {
  static int secret = 4242;
  tg_func_def def = {.version = TG_FUNC_DEF_V1, .name = "user", .fn_version = "1",
                     .fn = user_fn, .flags = TG_FUNC_PURE,
                     .nargs = 0, .user = &secret};
  cr_assert_eq(tg_registry_add(reg, &def, NULL), TG_OK);
  tg_node_opts o = {TG_NODE_OPTS_V1, "me", -1, -1, 0, 0};
  tg_node me = TG_NODE_NONE, u = TG_NODE_NONE;
  OK(g, tg_graph_add(g, "whoami", NULL, 0, &o, &me));
  OK(g, tg_graph_add(g, "user", NULL, 0, NULL, &u));
  tg_node anon = tg_call(g, "whoami", 0);
  tg_node outs[3] = {me, u, anon};
  tg_value *res[3];
  tg_compute_opts co = tgt_opts("threads", 2, NULL);
  OK(g, tg_compute(g, outs, 3, &co, res));
  size_t len;
  const char *s = tg_str_data(res[0], &len);
  cr_assert_eq(len, 2);
  cr_assert_eq(memcmp(s, "me", 2), 0);
  cr_assert_eq(tg_value_int(res[1]), 4242);
  s = tg_str_data(res[2], &len);
  cr_assert_eq(len, 8);
  cr_assert_eq(memcmp(s, "whoami#2", 8), 0);
  for (int i = 0; i < 3; i++) tg_value_unref(res[i]);
}
