/* tests/trust_plugin.c: libtrustbug.so, a plugin whose "bug.f" (version
 * "1") has other code than the "bug.f" test_remote_trust compiles in: it
 * returns 666 where the compiled-in one returns 1. */
#include "tgraph/registry.h"

static int bug_f(tg_task_ctx *ctx, tg_value *const *args, size_t nargs, tg_value **out) {
  (void)ctx, (void)args, (void)nargs;
  *out = tg_int(666);
  return *out ? TG_OK : TG_ENOMEM;
}

int tg_plugin_init(tg_registry *reg);
int tg_plugin_init(tg_registry *reg) {
  tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = "bug.f", .fn_version = "1",
                   .fn = bug_f, .flags = TG_FUNC_PURE, .nargs = 0};
  return tg_registry_add(reg, &d, NULL);
}
