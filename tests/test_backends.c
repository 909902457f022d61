/* tests/test_backends.c: the cross-backend matrix: the same graphs give the
 * same results, errors and task counts on every backend and worker count,
 * including 1,000 random graphs checked against the sync backend. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "test_funcs.h"

typedef struct backend_cfg {
  const char *name;
  unsigned workers;
} backend_cfg;

/* Backends under test; the first is the reference. */
static const backend_cfg configs[] = {
    {"sync", 1},      {"threads", 1},   {"threads", 2},   {"threads", 8},
    {"processes", 1}, {"processes", 2}, {"processes", 8},
};
#define NCONFIGS (sizeof configs / sizeof configs[0])
/* Configs whose calls the counters here see (not those in workers). */
#define NINPROC 4

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

/* Compute `out` on every config; each must give `want` and run `tasks`
 * tasks. */
static void expect_int_everywhere(tg_node out, int64_t want, size_t tasks) {
  for (size_t c = 0; c < NCONFIGS; c++) {
    tg_compute_stats st;
    tg_compute_opts o = tgt_opts(configs[c].name, configs[c].workers, &st);
    int rc;
    int64_t got = tgt_compute_int(g, out, &o, &rc);
    cr_assert_eq(rc, TG_OK, "%s/%u: %s", configs[c].name, configs[c].workers,
                 tg_graph_errmsg(g));
    cr_assert_eq(got, want, "%s/%u: %lld", configs[c].name,
                 configs[c].workers, (long long)got);
    cr_assert_eq(st.tasks_total, tasks, "%s/%u", configs[c].name,
                 configs[c].workers);
    cr_assert_eq(st.tasks_run, tasks, "%s/%u", configs[c].name,
                 configs[c].workers);
  }
}

Test(backends, diamond, .init = setup, .fini = teardown) {
  tg_node a = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  tg_node b = tg_call(g, "add", 2, tg_arg_node(a), tg_arg_value(tg_int(10)));
  tg_node c = tg_call(g, "add", 2, tg_arg_node(a), tg_arg_value(tg_int(100)));
  tg_node d = tg_call(g, "add", 2, tg_arg_node(b), tg_arg_node(c));
  expect_int_everywhere(d, 114, 4);
  cr_assert_eq(tgt_calls(TGT_INC), (long)NINPROC);
}

Test(backends, chain, .init = setup, .fini = teardown) {
  tg_node x = tg_call(g, "inc", 1, tg_arg_value(tg_int(0)));
  for (int i = 1; i < 10000; i++) x = tg_call(g, "inc", 1, tg_arg_node(x));
  expect_int_everywhere(x, 10000, 10000);
}

Test(backends, tree, .init = setup, .fini = teardown) {
  size_t n = 4096;
  tg_node *level = malloc(n * sizeof *level);
  for (size_t i = 0; i < n; i++)
    level[i] = tg_call(g, "identity", 1, tg_arg_value(tg_int((int64_t)i)));
  for (; n > 1; n /= 2)
    for (size_t i = 0; i < n / 2; i++)
      level[i] = tg_call(g, "add", 2, tg_arg_node(level[2 * i]),
                         tg_arg_node(level[2 * i + 1]));
  expect_int_everywhere(level[0], 4096 * 4095 / 2, 8191);
  free(level);
}

Test(backends, fan_out_fan_in, .init = setup, .fini = teardown) {
  enum { N = 10000 };
  tg_node src = tg_call(g, "identity", 1, tg_arg_value(tg_int(3)));
  tg_arg *args = malloc(N * sizeof *args);
  for (int i = 0; i < N; i++)
    args[i] = tg_arg_node(tg_call(g, "add", 2, tg_arg_node(src),
                                  tg_arg_value(tg_int(i))));
  tg_node out = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "sum_args", args, N, NULL, &out), TG_OK);
  expect_int_everywhere(out, (int64_t)N * 3 + (int64_t)N * (N - 1) / 2,
                        N + 2);
  free(args);
}

Test(backends, items_keys_and_map, .init = setup, .fini = teardown) {
  enum { N = 3000 };
  tg_arg *in = malloc(N * sizeof *in);
  for (int i = 0; i < N; i++) in[i] = tg_arg_value(tg_int(i));
  tg_node m = TG_NODE_NONE;
  cr_assert_eq(tg_graph_map(g, "inc", in, N, NULL, 0, 0, NULL, &m), TG_OK);
  tg_node total = tg_call(g, "sum", 1, tg_arg_node(m));
  tg_node last = tg_call(g, "identity", 1, tg_arg_item(m, -1));
  tg_node pm = tg_call(g, "pack_map", 2, tg_arg_node(total), tg_arg_node(last));
  tg_node out = tg_call(g, "add", 2, tg_arg_key(pm, "k0"),
                        tg_arg_key(pm, "k1"));
  for (size_t c = 0; c < NCONFIGS; c++) {
    tg_compute_opts o = tgt_opts(configs[c].name, configs[c].workers, NULL);
    int rc;
    cr_assert_eq(tgt_compute_int(g, out, &o, &rc),
                 (int64_t)N * (N + 1) / 2 + N, "%s/%u: %s", configs[c].name,
                 configs[c].workers, tg_graph_errmsg(g));
  }
  cr_assert_eq(tgt_calls(TGT_INC), (long)NINPROC * N);
  free(in);
}

Test(backends, errors_and_retries, .init = setup, .fini = teardown) {
  tg_node a = tg_call(g, "inc", 1, tg_arg_value(tg_int(1)));
  tg_node_opts o1 = {TG_NODE_OPTS_V1, "broken", -1, -1, 0, 0};
  tg_node bad = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "fail", (tg_arg[]){tg_arg_node(a)}, 1, &o1,
                            &bad),
               TG_OK);
  tg_node out = tg_call(g, "add", 2, tg_arg_node(a), tg_arg_node(bad));
  tg_node_opts o2 = {TG_NODE_OPTS_V1, "flaky", 3, -1, 0, 0};
  tg_node flaky = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, "fail_first",
                            (tg_arg[]){tg_arg_value(tg_int(3)),
                                       tg_arg_value(tg_int(5))},
                            2, &o2, &flaky),
               TG_OK);
  for (size_t c = 0; c < NCONFIGS; c++) {
    const char *be = configs[c].name;
    tg_compute_stats st;
    tg_compute_opts o = tgt_opts(be, configs[c].workers, &st);
    int rc;
    tgt_compute_int(g, out, &o, &rc);
    cr_assert_eq(rc, TG_ETASK, "%s", be);
    cr_assert_str_eq(tg_graph_errmsg(g),
                     "task 'broken' failed: TG_EINVAL: always fails");
    cr_assert_eq(st.failed_node, bad);
    cr_assert_eq(tgt_compute_int(g, flaky, &o, &rc), 5, "%s: %s", be,
                 tg_graph_errmsg(g));
    cr_assert_eq(st.tasks_run, 4);
    cr_assert_eq(st.tasks_failed, 0); /* three failed attempts, then a result */
  }
}

/* ---- random graphs ------------------------------------------------------- */

typedef enum rkind { R_INT, R_LIST, R_MAP } rkind;

typedef struct rnode {
  tg_node id;
  rkind kind;
  int len; /* items or keys of a list or map */
} rnode;

typedef struct rgraph {
  rnode nodes[64];
  int n;
  bool has_fail;
} rgraph;

/* An argument that yields an int: a constant, an int node, an item of a
 * list node or a key of a map node. */
static tg_arg random_int_arg(rgraph *rg, uint64_t *rng) {
  if (rg->n == 0 || tgt_below(rng, 10) < 3) {
    int64_t c = tgt_below(rng, 20) == 0 ? (int64_t)tgt_rand(rng)
                                        : (int64_t)tgt_below(rng, 2001) - 1000;
    return tg_arg_value(tg_int(c));
  }
  rnode *src = &rg->nodes[tgt_below(rng, (uint64_t)rg->n)];
  switch (src->kind) {
  case R_LIST: {
    int64_t i = (int64_t)tgt_below(rng, (uint64_t)(2 * src->len)) - src->len;
    return tg_arg_item(src->id, i);
  }
  case R_MAP: {
    static char keys[8][4] = {"k0", "k1", "k2", "k3", "k4", "k5", "k6", "k7"};
    return tg_arg_key(src->id, keys[tgt_below(rng, (uint64_t)src->len)]);
  }
  default:
    return tg_arg_node(src->id);
  }
}

static void add_random_node(rgraph *rg, uint64_t *rng) {
  tg_arg args[8];
  size_t nargs = 0;
  const char *fn;
  rnode r = {TG_NODE_NONE, R_INT, 0};
  uint64_t op = tgt_below(rng, 100);
  if (op < 2 && !rg->has_fail && rg->n > 0) {
    fn = "fail";
    args[nargs++] = random_int_arg(rg, rng);
    rg->has_fail = true;
  } else if (op < 20) {
    fn = "inc";
    args[nargs++] = random_int_arg(rg, rng);
  } else if (op < 40) {
    fn = "add";
    args[nargs++] = random_int_arg(rg, rng);
    args[nargs++] = random_int_arg(rg, rng);
  } else if (op < 52) {
    fn = "sum_args";
    nargs = tgt_below(rng, 6);
    for (size_t i = 0; i < nargs; i++) args[i] = random_int_arg(rg, rng);
  } else if (op < 66) {
    fn = "pack";
    r.kind = R_LIST;
    r.len = 1 + (int)tgt_below(rng, 5);
    for (int i = 0; i < r.len; i++) args[nargs++] = random_int_arg(rg, rng);
  } else if (op < 78) {
    fn = "pack_map";
    r.kind = R_MAP;
    r.len = 1 + (int)tgt_below(rng, 5);
    for (int i = 0; i < r.len; i++) args[nargs++] = random_int_arg(rg, rng);
  } else if (op < 88) {
    fn = "sum";
    int lists[64], nl = 0;
    for (int i = 0; i < rg->n; i++)
      if (rg->nodes[i].kind == R_LIST) lists[nl++] = i;
    if (nl && tgt_below(rng, 4))
      args[nargs++] = tg_arg_node(rg->nodes[lists[tgt_below(rng, nl)]].id);
    else
      args[nargs++] = tg_arg_value(tg_list_of(
          2, tg_int((int64_t)tgt_below(rng, 100)), tg_int(-7)));
  } else {
    fn = "identity";
    if (rg->n && tgt_below(rng, 4)) {
      rnode *src = &rg->nodes[tgt_below(rng, (uint64_t)rg->n)];
      args[nargs++] = tg_arg_node(src->id);
      r.kind = src->kind;
      r.len = src->len;
    } else {
      args[nargs++] = random_int_arg(rg, rng);
    }
  }
  int rc = tg_graph_add(g, fn, args, nargs, NULL, &r.id);
  cr_assert_eq(rc, TG_OK, "%s: %s", fn, tg_graph_errmsg(g));
  rg->nodes[rg->n++] = r;
}

typedef struct run {
  int rc;
  tg_value *res[4];
  char errmsg[256];
  tg_compute_stats st;
} run;

static void run_on(tg_executor *e, const char *backend, const tg_node *outs,
                   size_t nout, run *r) {
  tg_compute_opts o = tgt_opts(backend, 1, &r->st);
  o.executor = e;
  r->rc = tg_compute(g, outs, nout, &o, r->res);
  snprintf(r->errmsg, sizeof r->errmsg, "%s",
           r->rc ? tg_graph_errmsg(g) : "");
}

static void free_run(run *r, size_t nout) {
  for (size_t i = 0; i < nout; i++) tg_value_unref(r->res[i]);
}

/* No Criterion .timeout: a hang shows as the suite's (meson's) timeout,
 * which the test script retries once alone (scripts/run-tests.sh). */
Test(backends, random_dags_match_sync, .init = setup, .fini = teardown) {
  tg_executor *exs[NCONFIGS];
  for (size_t c = 1; c < NCONFIGS; c++) {
    tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = configs[c].name,
                           .workers = configs[c].workers};
    cr_assert_eq(tg_executor_new(reg, &eo, &exs[c], NULL), TG_OK);
  }
  uint64_t rng = 20240611;
  int failures = 0, oks = 0;
  for (int dag = 0; dag < 1000; dag++) {
    tg_graph_free(g);
    cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
    rgraph rg = {.n = 0, .has_fail = false};
    int n = 1 + (int)tgt_below(&rng, 40);
    for (int i = 0; i < n; i++) add_random_node(&rg, &rng);
    size_t nout = 1 + tgt_below(&rng, 4);
    tg_node outs[4];
    for (size_t i = 0; i < nout; i++)
      outs[i] = rg.nodes[tgt_below(&rng, (uint64_t)rg.n)].id;

    run ref;
    run_on(NULL, "sync", outs, nout, &ref);
    if (ref.rc == TG_OK) oks++;
    else failures++;
    for (size_t c = 1; c < NCONFIGS; c++) {
      run r;
      run_on(exs[c], NULL, outs, nout, &r);
      cr_assert_eq(r.rc, ref.rc, "dag %d on %s/%u: %s vs %s (%s)", dag,
                   configs[c].name, configs[c].workers, tg_err_name(r.rc),
                   tg_err_name(ref.rc), r.errmsg);
      cr_assert_str_eq(r.errmsg, ref.errmsg, "dag %d", dag);
      cr_assert_eq(r.st.tasks_total, ref.st.tasks_total, "dag %d", dag);
      if (ref.rc == TG_OK) {
        cr_assert_eq(r.st.tasks_run, ref.st.tasks_run, "dag %d", dag);
        for (size_t i = 0; i < nout; i++)
          cr_assert(tg_value_equal(r.res[i], ref.res[i]),
                    "dag %d output %zu on %s/%u", dag, i, configs[c].name,
                    configs[c].workers);
      }
      free_run(&r, nout);
    }
    free_run(&ref, nout);
  }
  /* The generator must exercise both outcomes. */
  cr_assert_gt(oks, 500);
  cr_assert_gt(failures, 20);
  for (size_t c = 1; c < NCONFIGS; c++) tg_executor_free(exs[c]);
}
