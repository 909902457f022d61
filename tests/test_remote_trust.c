/* tests/test_remote_trust.c: remote workers compute the code a run asked
 * for and serve no one else. Function identity: a function compiled into
 * the program and a plugin's function of the same name and version are
 * different code, refused both ways with a message naming both; builtins
 * of one library build pair up. Workers are real processes forked by the
 * test on loopback; the plugin is tests/trust_plugin.c (libtrustbug.so). */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "registry/registry_internal.h" /* tg__library_build */
#include "tgraph/builtins.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/plugin.h"
#include "tgraph/remote.h"

/* ---- registries: bug.f compiled in, or from the plugin -------------------------- */

enum { COMPILED, PLUGIN, BUILTINS, COMPILED_IDENTITY };

static int bug_f(tg_task_ctx *ctx, tg_value *const *args, size_t nargs, tg_value **out) {
  (void)ctx, (void)args, (void)nargs;
  *out = tg_int(1);
  return TG_OK;
}

static int my_identity(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                       tg_value **out) {
  (void)ctx, (void)nargs;
  *out = tg_value_ref(args[0]);
  return TG_OK;
}

static const char *plugin_path(void) {
  const char *p = getenv("TG_TRUST_PLUGIN");
  cr_assert_not_null(p, "TG_TRUST_PLUGIN is not set (run through meson test)");
  return p;
}

static tg_registry *make_reg(int kind) {
  tg_registry *r = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  if (kind == COMPILED) {
    tg_func_def d = {TG_FUNC_DEF_V1, "bug.f", "1", bug_f, TG_FUNC_PURE, 0, NULL, NULL};
    cr_assert_eq(tg_registry_add(r, &d, NULL), TG_OK);
  } else if (kind == PLUGIN) {
    cr_assert_eq(tg_registry_load_plugin(r, plugin_path(), &err), TG_OK, "%s", err.msg);
  } else if (kind == BUILTINS) {
    cr_assert_eq(tg_registry_add_builtins(r), TG_OK);
  } else {
    tg_func_def d = {TG_FUNC_DEF_V1, "identity", "1", my_identity, TG_FUNC_PURE, 1, NULL,
                     NULL};
    cr_assert_eq(tg_registry_add(r, &d, NULL), TG_OK);
  }
  return r;
}

static char plugin_digest[33];

static void digest_setup(void) {
  tg_digest d;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_plugin_digest_of(plugin_path(), &d, &err), TG_OK, "%s", err.msg);
  tg_digest_hex(d, plugin_digest);
}

/* ---- a worker process ---------------------------------------------------------- */

static pid_t wpid;
static char wep[128];
static volatile sig_atomic_t child_stop;

static void child_term(int s) {
  (void)s;
  child_stop = 1;
}
static void child_ready(void *ctx, const char *ep) { dprintf(*(int *)ctx, "%s\n", ep); }

/* Fork a worker serving a registry of `kind` on a free loopback port;
 * its endpoint in wep. */
static void start_worker(int kind) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  wpid = fork();
  cr_assert_geq(wpid, 0);
  if (wpid == 0) {
    close(p[0]);
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
    signal(SIGTERM, child_term);
    tg_registry *r = make_reg(kind);
    tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                        .nthreads = 1, .stop = &child_stop, .on_ready = child_ready,
                        .ctx = &p[1]};
    tg_error err;
    tg_error_clear(&err);
    int rc = tg_worker_serve(r, &o, &err);
    if (rc) dprintf(p[1], "ERROR %s\n", err.msg);
    _exit(rc ? 1 : 0);
  }
  close(p[1]);
  size_t n = 0;
  struct pollfd pf = {p[0], POLLIN, 0};
  while (n + 1 < sizeof wep && poll(&pf, 1, 30000) > 0) {
    ssize_t r = read(p[0], wep + n, 1);
    if (r <= 0 || wep[n] == '\n') break;
    n++;
  }
  wep[n] = '\0';
  close(p[0]);
  cr_assert(strncmp(wep, "tcp://", 6) == 0, "worker did not start: %s", wep);
}

static void stop_worker(void) {
  if (wpid > 0) {
    kill(wpid, SIGTERM);
    int st;
    waitpid(wpid, &st, 0);
    wpid = 0;
  }
}

/* Run fn (no arguments, or one: arg) with the registry of `kind` on the
 * worker; the result in *out (NULL on failure), the message in msg. */
static int remote_call(int kind, const char *fn, tg_value *arg, tg_value **out, char *msg,
                       size_t size) {
  tg_registry *r = make_reg(kind);
  const char *addr[1] = {wep};
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addr,
                         .nconnect = 1, .connect_timeout = 30};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(r, &eo, &ex, &err), TG_OK, "%s", err.msg);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(r, &g), TG_OK);
  tg_node n = arg ? tg_call(g, fn, 1, tg_arg_value(arg)) : tg_call(g, fn, 0);
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .executor = ex};
  *out = NULL;
  int rc = tg_compute(g, &n, 1, &o, out);
  snprintf(msg, size, "%s", tg_graph_errmsg(g));
  tg_graph_free(g);
  tg_executor_free(ex);
  tg_registry_free(r);
  return rc;
}

/* ---- function identity ------------------------------------------------------------ */

TestSuite(remote_trust, .init = digest_setup, .fini = stop_worker, .timeout = 120);

Test(remote_trust, compiled_in_here_plugin_there) {
  start_worker(PLUGIN);
  tg_value *v;
  char msg[1024], want[1024];
  cr_assert_eq(remote_call(COMPILED, "bug.f", NULL, &v, msg, sizeof msg), TG_EVERSION,
               "ran: %s", msg);
  cr_expect_null(v);
  snprintf(want, sizeof want, "function 'bug.f' is compiled into this program but comes "
           "from plugin libtrustbug.so (digest %s) on worker %s", plugin_digest, wep);
  cr_expect_str_eq(msg, want);
}

Test(remote_trust, plugin_here_compiled_in_there) {
  start_worker(COMPILED);
  tg_value *v;
  char msg[1024], want[1024];
  cr_assert_eq(remote_call(PLUGIN, "bug.f", NULL, &v, msg, sizeof msg), TG_EVERSION,
               "ran: %s", msg);
  snprintf(want, sizeof want, "function 'bug.f' comes from plugin libtrustbug.so (digest "
           "%s) in this program but is compiled into the program on worker %s",
           plugin_digest, wep);
  cr_expect_str_eq(msg, want);
}

Test(remote_trust, same_code_runs) {
  tg_value *v;
  char msg[1024];
  start_worker(PLUGIN);
  cr_assert_eq(remote_call(PLUGIN, "bug.f", NULL, &v, msg, sizeof msg), TG_OK, "%s", msg);
  cr_expect_eq(tg_value_int(v), 666);
  tg_value_unref(v);
  stop_worker();
  start_worker(COMPILED);
  cr_assert_eq(remote_call(COMPILED, "bug.f", NULL, &v, msg, sizeof msg), TG_OK, "%s", msg);
  cr_expect_eq(tg_value_int(v), 1);
  tg_value_unref(v);
}

Test(remote_trust, builtins_pair_by_library_build) {
  tg_value *v;
  char msg[1024], want[1024];
  start_worker(BUILTINS);
  cr_assert_eq(remote_call(BUILTINS, "identity", tg_int(5), &v, msg, sizeof msg), TG_OK,
               "%s", msg);
  cr_expect_eq(tg_value_int(v), 5);
  tg_value_unref(v);
  stop_worker();
  /* a program's own "identity" is not the builtin */
  start_worker(COMPILED_IDENTITY);
  cr_assert_eq(remote_call(BUILTINS, "identity", tg_int(5), &v, msg, sizeof msg),
               TG_EVERSION, "ran: %s", msg);
  snprintf(want, sizeof want, "function 'identity' is a builtin of tgraph %s in this "
           "program but is compiled into the program on worker %s", tg__library_build(),
           wep);
  cr_expect_str_eq(msg, want);
}
