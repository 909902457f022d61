/* examples/graph_basic.c: build a small task graph and compute it.
 *
 * Registers three functions, maps "square" over 1..10, sums the squares,
 * adds the last square to the sum (an element of a list result), computes
 * everything on the "threads" backend and prints the results and stats.
 */
#include <stdio.h>
#include <stdlib.h>

#include <tgraph.h>

/* square(x) = x * x */
static int square(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                  tg_value **out) {
  (void)nargs;
  if (tg_value_type(args[0]) != TG_INT)
    return tg_task_fail(ctx, TG_ETYPE, "expected an int, got %s",
                        tg_type_name(tg_value_type(args[0])));
  int64_t x = tg_value_int(args[0]);
  *out = tg_int(x * x);
  return *out ? TG_OK : TG_ENOMEM;
}

/* total(list) = the sum of a list of ints */
static int total(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                 tg_value **out) {
  (void)nargs;
  int64_t sum = 0;
  for (size_t i = 0; i < tg_list_len(args[0]); i++) {
    tg_value *item = tg_list_get(args[0], i);
    if (tg_value_type(item) != TG_INT)
      return tg_task_fail(ctx, TG_ETYPE, "item %zu is not an int", i);
    sum += tg_value_int(item);
  }
  *out = tg_int(sum);
  return *out ? TG_OK : TG_ENOMEM;
}

/* add(a, b) = a + b */
static int add(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
               tg_value **out) {
  (void)ctx;
  (void)nargs;
  *out = tg_int(tg_value_int(args[0]) + tg_value_int(args[1]));
  return *out ? TG_OK : TG_ENOMEM;
}

static int register_all(tg_registry *reg) {
  const tg_func_def defs[] = {
      {.version = TG_FUNC_DEF_V1, .name = "square", .fn_version = "1", .fn = square,
       .flags = TG_FUNC_PURE, .nargs = 1,
       .doc = "x * x"},
      {.version = TG_FUNC_DEF_V1, .name = "total", .fn_version = "1", .fn = total,
       .flags = TG_FUNC_PURE, .nargs = 1,
       .doc = "sum of a list of ints"},
      {.version = TG_FUNC_DEF_V1, .name = "add", .fn_version = "1", .fn = add,
       .flags = TG_FUNC_PURE, .nargs = 2, .doc = "a + b"},
  };
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    int rc = tg_registry_add(reg, &defs[i], NULL);
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}

/* squares = map(square, 1..10); sum = total(squares);
 * answer = add(sum, squares[-1]). Nothing runs yet. */
static int build(tg_graph *g, tg_node outs[3]) {
  tg_arg inputs[10];
  for (int i = 0; i < 10; i++) inputs[i] = tg_arg_value(tg_int(i + 1));
  /* Four calls per task: three tasks for ten inputs. */
  int rc = tg_graph_map(g, "square", inputs, 10, NULL, 0, 4, NULL, &outs[0]);
  if (rc != TG_OK) return rc;
  outs[1] = tg_call(g, "total", 1, tg_arg_node(outs[0]));
  outs[2] = tg_call(g, "add", 2, tg_arg_node(outs[1]),
                    tg_arg_item(outs[0], -1));
  /* A failed tg_call makes the calls using its node fail: check once. */
  return outs[2] == TG_NODE_NONE ? TG_EINVAL : TG_OK;
}

static void print_results(tg_value *const res[3],
                          const tg_compute_stats *st) {
  char *json = NULL;
  if (tg_value_to_json(res[0], 0, &json, NULL, NULL) == TG_OK) {
    printf("squares: %s\n", json);
    free(json);
  }
  printf("sum of squares: %lld\n", (long long)tg_value_int(res[1]));
  printf("sum + last square: %lld\n", (long long)tg_value_int(res[2]));
  printf("tasks: %zu needed, %zu run, %zu failed\n", st->tasks_total,
         st->tasks_run, st->tasks_failed);
}

int main(void) {
  tg_registry *reg = NULL;
  tg_graph *g = NULL;
  tg_node outs[3];
  tg_value *res[3] = {NULL, NULL, NULL};
  tg_compute_stats stats;

  int rc = tg_registry_new(&reg);
  if (rc == TG_OK) rc = register_all(reg);
  if (rc == TG_OK) rc = tg_graph_new(reg, &g);
  if (rc == TG_OK) rc = build(g, outs);
  if (rc == TG_OK) {
    tg_compute_opts opts = {.version = TG_COMPUTE_OPTS_V1,
                            .scheduler = "threads",
                            .workers = 2,
                            .stats = &stats};
    rc = tg_compute(g, outs, 3, &opts, res);
  }
  if (rc == TG_OK)
    print_results(res, &stats);
  else
    fprintf(stderr, "graph_basic: %s: %s\n", tg_err_name(rc),
            g ? tg_graph_errmsg(g) : "");

  for (int i = 0; i < 3; i++) tg_value_unref(res[i]);
  tg_graph_free(g);
  tg_registry_free(reg);
  return rc == TG_OK ? 0 : 1;
}
