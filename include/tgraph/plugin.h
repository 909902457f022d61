/* include/tgraph/plugin.h: loading plugins, shared objects that register
 * task functions.
 *
 * A plugin exports
 *     int tg_plugin_init(tg_registry *reg);
 * which registers its functions under a namespace ("wordcount.count")
 * with tg_registry_add() and returns TG_OK, or a negative code (then it
 * should have registered nothing). It declares per-worker state the same
 * way, with tg_registry_add_state() before the functions naming it
 * (registry.h): a `tgraph worker` loading the plugin then initializes it
 * in each of its task threads.
 *
 * A plugin calls tgraph's functions (tg_int, tg_task_fail, ...) without
 * linking libtgraph itself: they resolve against the program that loads
 * it, which must export them (link libtgraph as a shared library, or
 * link it whole with -rdynamic).
 *
 * Identity: the XXH3-128 of the plugin file's bytes is its digest. It
 * joins the identity of every function the plugin registers without a
 * code id (tg_func_def.code_id) in cache keys (with the function's name
 * and version), so that rebuilding a plugin invalidates what they
 * computed. A function declaring a code id (the digest of its source,
 * `tgraph code-id`) is known by that instead: rebuilding the plugin with
 * other flags keeps its results, editing its source drops them, and
 * editing another function's source file leaves them alone.
 *
 * A loaded plugin stays loaded until the process ends: its functions live
 * in the registry, and nothing tracks which graphs still use them.
 *
 * Thread safety: loading registers functions, so no other thread may use
 *   the registry during the call.
 * Fork: a forked child keeps the plugins loaded before the fork.
 */
#ifndef TGRAPH_PLUGIN_H
#define TGRAPH_PLUGIN_H

#include <stddef.h>

#include "tgraph/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Type of the plugin's entry point. */
typedef int (*tg_plugin_init_fn)(tg_registry *reg);

/* What loading a plugin did. */
typedef struct tg_plugin_info {
  tg_digest digest;   /* XXH3-128 of the file's bytes */
  size_t first_func;  /* its functions are tg_registry_at(reg, i) for */
  size_t nfuncs;      /* first_func <= i < first_func + nfuncs */
} tg_plugin_info;

/* Load the shared object at path (a file path; relative ones start at
 * the current directory) and call its tg_plugin_init(reg). Loading the
 * same file twice into one registry fails (TG_EEXIST from init). Errors, with err saying which and why:
 * -ENOENT/-errno (the file cannot be read), TG_ENOTFOUND (dlopen failed,
 * e.g. an undefined symbol, or no tg_plugin_init symbol), the init's own
 * negative code (with tg_registry_errmsg's reason when the registry
 * refused a function), or TG_EINVAL when init returned a positive value. After
 * a failing init, functions it registered stay registered (a registry
 * cannot drop functions). info (may be NULL) gets what was loaded. */
int tg_registry_load_plugin(tg_registry *reg, const char *path,
                            tg_error *err);
int tg_registry_load_plugin_info(tg_registry *reg, const char *path,
                                 tg_plugin_info *info /* OUT */,
                                 tg_error *err);

/* XXH3-128 of the file at path. */
int tg_plugin_digest_of(const char *path, tg_digest *out /* OUT */,
                        tg_error *err);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_PLUGIN_H */
