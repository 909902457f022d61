/* examples/cluster_collatz.c: one program launched as N ranks (mpirun -n
 * N, srun -n N --mpi=pmix): rank 0 computes, the other ranks serve it
 * with this program's own functions (tgraph/cluster.h).
 *
 * The longest Collatz chain below 1,000,000, in 50 blocks of 20,000
 * starting numbers (one task each) and a task choosing the longest:
 *
 *   mpirun -n 4 ./cluster_collatz
 *
 * prints the same as one rank (mpirun -n 1, or no worker ranks at all).
 */
#include <stdio.h>
#include <stdlib.h>

#include <tgraph.h>

#define LIMIT 1000000
#define BLOCKS 50

/* longest(start, stop): [n, steps] of the longest chain from start..stop-1 */
static int longest(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                   tg_value **out) {
  (void)nargs;
  if (tg_value_type(args[0]) != TG_INT || tg_value_type(args[1]) != TG_INT)
    return tg_task_fail(ctx, TG_ETYPE, "longest(start, stop) takes two ints");
  int64_t best = 0, best_steps = -1;
  for (int64_t n = tg_value_int(args[0]); n < tg_value_int(args[1]); n++) {
    int64_t steps = 0;
    for (uint64_t x = (uint64_t)n; x > 1; steps++) x = x % 2 ? 3 * x + 1 : x / 2;
    if (steps > best_steps) best = n, best_steps = steps;
  }
  *out = tg_list_of(2, tg_int(best), tg_int(best_steps));
  return *out ? TG_OK : TG_ENOMEM;
}

/* pick(pairs): the pair with the most steps (the smallest n on ties) */
static int pick(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                tg_value **out) {
  (void)ctx;
  (void)nargs;
  tg_value *best = NULL;
  for (size_t i = 0; i < tg_list_len(args[0]); i++) {
    tg_value *p = tg_list_get(args[0], i);
    if (best == NULL ||
        tg_value_int(tg_list_get(p, 1)) > tg_value_int(tg_list_get(best, 1)))
      best = p;
  }
  *out = best ? tg_value_ref(best) : tg_null();
  return *out ? TG_OK : TG_ENOMEM;
}

static int register_all(tg_registry *reg) {
  const tg_func_def defs[] = {
      {.version = TG_FUNC_DEF_V1, .name = "longest", .fn_version = "1", .fn = longest,
       .flags = TG_FUNC_PURE, .nargs = 2, .doc = "the longest Collatz chain in a range"},
      {.version = TG_FUNC_DEF_V1, .name = "pick", .fn_version = "1", .fn = pick,
       .flags = TG_FUNC_PURE, .nargs = 1, .doc = "the longest of [n, steps] pairs"},
  };
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    int rc = tg_registry_add(reg, &defs[i], NULL);
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}

/* One "longest" per block, and "pick" over the list of their results
 * (tg_arg_nodes: assembled by the builtin tg.build). */
static tg_node build(tg_graph *g) {
  tg_node blocks[BLOCKS], out = TG_NODE_NONE;
  for (int i = 0; i < BLOCKS; i++)
    blocks[i] = tg_call(g, "longest", 2, tg_arg_value(tg_int((int64_t)i * (LIMIT / BLOCKS) + 1)),
                        tg_arg_value(tg_int((int64_t)(i + 1) * (LIMIT / BLOCKS))));
  tg_arg list = tg_arg_nodes(blocks, BLOCKS);
  if (tg_graph_add(g, "pick", &list, 1, NULL, &out) != TG_OK) return TG_NODE_NONE;
  return out;
}

int main(void) {
  tg_registry *reg = NULL;
  tg_executor *ex = NULL;
  tg_graph *g = NULL;
  tg_value *res = NULL;
  tg_error err;
  tg_error_clear(&err);

  int rc = tg_registry_new(&reg);
  if (rc == TG_OK) rc = tg_registry_add_builtins(reg);
  if (rc == TG_OK) rc = register_all(reg);
  /* Every rank gets here; only rank 0 comes back (with the executor). */
  if (rc == TG_OK && (rc = tg_cluster_start(reg, NULL, &ex, &err)) != TG_OK)
    fprintf(stderr, "cluster_collatz: %s\n", err.msg);
  if (rc == TG_OK) rc = tg_graph_new(reg, &g);
  if (rc == TG_OK) {
    tg_node out = build(g);
    tg_compute_opts opts = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
    rc = out == TG_NODE_NONE ? TG_EINVAL : tg_compute(g, &out, 1, &opts, &res);
    if (rc != TG_OK) fprintf(stderr, "cluster_collatz: %s\n", tg_graph_errmsg(g));
  }
  if (rc == TG_OK)
    printf("below %d the longest Collatz chain starts at %lld: %lld steps\n", LIMIT,
           (long long)tg_value_int(tg_list_get(res, 0)),
           (long long)tg_value_int(tg_list_get(res, 1)));
  tg_value_unref(res);
  tg_graph_free(g);
  tg_executor_free(ex);
  tg_registry_free(reg);
  return rc == TG_OK ? 0 : 1;
}
