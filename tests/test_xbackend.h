/* tests/test_xbackend.h: an executor on any backend (sync, threads,
 * processes, tcp with a forked worker) and task functions that talk to
 * the test through files, so that they work wherever the task runs: for
 * the futures and merge suites.
 *
 * Functions (beside tgt_registry_new()'s):
 *   tick(path, x)         pure; appends one byte to `path`, returns x * 10
 *   tick_impure(path, x)  the same, impure
 *   hold(path)            impure; creates path.started, waits until `path`
 *                         exists (returns 1) or the task is cancelled
 *                         (creates path.cancelled, fails TG_ECANCELED)
 *
 * Thread safety: one test at a time (Criterion: one process per test). */
#ifndef TG_TEST_XBACKEND_H
#define TG_TEST_XBACKEND_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tgraph/executor.h"
#include "tgraph/remote.h"
#include "test_funcs.h"
#include "test_proc.h"

static char tx_dir[64];      /* this test's scratch directory */
static pid_t tx_worker;      /* the tcp worker, or 0 */
static tg_registry *tx_reg;

static inline void tx_touch(const char *path, const char *suffix) {
  char p[256];
  snprintf(p, sizeof p, "%s%s", path, suffix);
  int fd = open(p, O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    ssize_t w = write(fd, "x", 1);
    (void)w;
    close(fd);
  }
}

static inline int tx_fn_tick(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  if (tg_value_type(a[0]) != TG_STR || tg_value_type(a[1]) != TG_INT)
    return tg_task_fail(ctx, TG_ETYPE, "tick(path, int)");
  tx_touch(tg_str_data(a[0], NULL), "");
  *out = tg_int(tg_value_int(a[1]) * 10);
  return *out ? TG_OK : TG_ENOMEM;
}

static inline int tx_fn_hold(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  if (tg_value_type(a[0]) != TG_STR) return tg_task_fail(ctx, TG_ETYPE, "hold(path)");
  const char *path = tg_str_data(a[0], NULL);
  tx_touch(path, ".started");
  for (;;) {
    if (access(path, F_OK) == 0) break;
    if (tg_task_cancelled(ctx)) {
      tx_touch(path, ".cancelled");
      return tg_task_fail(ctx, TG_ECANCELED, "hold: cancelled");
    }
    tgt_sleep_ms(1);
  }
  *out = tg_int(1);
  return *out ? TG_OK : TG_ENOMEM;
}

static inline tg_registry *tx_registry(void) {
  tg_registry *r = tgt_registry_new();
  cr_assert_not_null(r);
  tg_func_def d[] = {
      {TG_FUNC_DEF_V1, "tick", "1", tx_fn_tick, TG_FUNC_PURE, 2, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V1, "tick_impure", "1", tx_fn_tick, 0, 2, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V1, "hold", "1", tx_fn_hold, 0, 1, NULL, NULL, 0, NULL, NULL},
  };
  for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
    cr_assert_eq(tg_registry_add(r, &d[i], NULL), TG_OK);
  return r;
}

/* Path of file `name` in the test's directory (a static buffer per
 * call site is the caller's: copy it). */
static inline void tx_path(char *buf, size_t size, const char *name) {
  snprintf(buf, size, "%s/%s", tx_dir, name);
}

/* Bytes in file `name` (the calls tick made on it); 0 when absent. */
static inline long tx_count(const char *name) {
  char p[256];
  struct stat st;
  tx_path(p, sizeof p, name);
  return stat(p, &st) == 0 ? (long)st.st_size : 0;
}

/* Wait until file `name` exists (an event, not a delay): false after a
 * generous 60 s. */
static inline bool tx_wait_file(const char *name) {
  char p[256];
  tx_path(p, sizeof p, name);
  for (int i = 0; i < 60000; i++) {
    if (access(p, F_OK) == 0) return true;
    tgt_sleep_ms(1);
  }
  return false;
}

/* Let every hold(name) return. */
static inline void tx_release(const char *name) {
  char p[256];
  tx_path(p, sizeof p, name);
  tx_touch(p, "");
}

static inline void tx_worker_main(int fd) {
  tg_registry *r = tx_registry();
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                      .nthreads = 2, .stop = tproc_stop_on_term(),
                      .on_ready = tproc_say_ready, .ctx = &fd};
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_worker_serve(r, &o, &err);
  if (rc) dprintf(fd, "ERROR %s\n", err.msg);
  _exit(rc ? 1 : 0);
}

static inline void tx_setup(void) {
  snprintf(tx_dir, sizeof tx_dir, "/tmp/tg_xb_XXXXXX");
  cr_assert_not_null(mkdtemp(tx_dir));
  tx_reg = tx_registry();
}

/* An executor on `backend` with 2 workers; tcp starts a worker process. */
static inline tg_executor *tx_executor(const char *backend) {
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend, .workers = 2};
  char ep[128];
  const char *addr[1] = {ep};
  if (strcmp(backend, "tcp") == 0) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    tx_worker = tproc_fork();
    if (tx_worker == 0) {
      close(p[0]);
      tx_worker_main(p[1]);
    }
    close(p[1]);
    tproc_read_line(p[0], ep, sizeof ep, 30);
    close(p[0]);
    cr_assert(strncmp(ep, "tcp://", 6) == 0, "worker: %s", ep);
    o.connect = addr;
    o.nconnect = 1;
    o.workers = 0;
  }
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(tx_reg, &o, &ex, &err), TG_OK, "%s: %s", backend, err.msg);
  return ex;
}

/* Free ex (after releasing every hold of names g0..g7), stop the worker,
 * remove the directory. */
static inline void tx_teardown(tg_executor *ex) {
  for (int i = 0; i < 8; i++) {
    char name[8];
    snprintf(name, sizeof name, "g%d", i);
    tx_release(name);
  }
  tg_executor_free(ex);
  if (tx_worker > 0) {
    kill(tx_worker, SIGKILL);
    waitpid(tx_worker, NULL, 0);
    tx_worker = 0;
  }
  tg_registry_free(tx_reg);
  tx_reg = NULL;
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tx_dir);
  cr_expect_eq(system(cmd), 0);
}

#endif /* TG_TEST_XBACKEND_H */
