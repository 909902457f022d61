/* tests/test_tcp.c: the tcp backend against worker processes forked by
 * the test (each serving the test's own functions with tg_worker_serve on
 * a free loopback port): results equal to sync on a set of graphs, results
 * kept where they were made and moved at most once per worker, values
 * streamed in chunks (results, elements and constants across the 4 MiB
 * line, repeated round trips through recycled buffers), a worker
 * killed mid-run, a run waiting for a late worker, keys (missing, wrong,
 * refused), protocol and function version mismatches, random bytes,
 * oversized frames, malformed messages and broken streams sent to a
 * worker, a client vanishing mid-run; every worker is killed and reaped
 * after each test. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "offload/traffic.h" /* link traffic */
#include "registry/registry_internal.h" /* plugin digests, set by hand */
#include "wire/proto.h"
#include "wire/stream.h" /* TG__STREAM_MIN, TG__STREAM_CHUNK */
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"
#include "tgraph/serial.h"
#include "test_funcs.h"
#include "test_peer.h"
#include "test_proc.h"

/* ---- functions of the tests (besides test_funcs.h) ---------------------------- */

static int want_ints(tg_task_ctx *ctx, tg_value *const *args, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (tg_value_type(args[i]) != TG_INT)
      return tg_task_fail(ctx, TG_ETYPE, "argument %zu: expected int", i);
  return TG_OK;
}

/* big(n, v): n f64 values v, v + 0.5, v + 1, ... */
static int fn_big(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  int rc = want_ints(ctx, a, n);
  if (rc) return rc;
  *out = tgt_f64_array(tg_value_int(a[0]), (double)tg_value_int(a[1]));
  return *out ? TG_OK : TG_ENOMEM;
}

static bool is_f64(const tg_value *v) {
  return tg_value_type(v) == TG_NDARRAY && tg_ndarray_dtype(v) == TG_DT_F64;
}

/* big_add(a, b): elementwise sum of two f64 arrays of one size. */
static int fn_big_add(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  if (!is_f64(a[0]) || !is_f64(a[1]) || tg_ndarray_size(a[0]) != tg_ndarray_size(a[1]))
    return tg_task_fail(ctx, TG_ETYPE, "big_add needs two f64 arrays of one size");
  int64_t len = (int64_t)tg_ndarray_size(a[0]);
  tg_value *r = tg_ndarray_new(TG_DT_F64, 1, &len);
  if (!r) return TG_ENOMEM;
  const double *x = tg_ndarray_data(a[0]), *y = tg_ndarray_data(a[1]);
  double *z = tg_ndarray_data_mut(r);
  for (int64_t i = 0; i < len; i++) z[i] = x[i] + y[i];
  *out = r;
  return TG_OK;
}

/* big_sum(a, k): k + the sum of f64 array a (a float). */
static int fn_big_sum(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  if (!is_f64(a[0]) || tg_value_type(a[1]) != TG_INT)
    return tg_task_fail(ctx, TG_ETYPE, "big_sum needs an f64 array and an int");
  const double *x = tg_ndarray_data(a[0]);
  double s = (double)tg_value_int(a[1]);
  for (size_t i = 0; i < tg_ndarray_size(a[0]); i++) s += x[i];
  *out = tg_float(s);
  return TG_OK;
}

/* ints(n): the list 0 .. n - 1. */
static int fn_ints(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  int rc = want_ints(ctx, a, n);
  if (rc) return rc;
  int64_t k = tg_value_int(a[0]);
  tg_value *l = k >= 0 ? tg_list_alloc((size_t)k) : NULL;
  for (int64_t i = 0; l && i < k; i++) tg_list_init_item(l, (size_t)i, tg_int(i));
  *out = l;
  return l ? TG_OK : tg_task_fail(ctx, TG_EINVAL, "ints needs n >= 0 (or memory)");
}

/* slow_ints(n, ms): ints(n), after ms milliseconds the first time this
 * process is asked with that ms (a multiple of 100 below 3,200). */
static int fn_slow_ints(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  static _Atomic uint32_t slept;
  int rc = want_ints(ctx, a, n);
  if (rc) return rc;
  uint32_t bit = 1u << (tg_value_int(a[1]) / 100 % 32);
  if (!(atomic_fetch_or(&slept, bit) & bit)) tgt_sleep_ms(tg_value_int(a[1]));
  return fn_ints(ctx, a, 1, out);
}

/* big_split(k, n): a list of k arrays big(n, i). */
static int fn_big_split(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  int rc = want_ints(ctx, a, n);
  if (rc) return rc;
  size_t k = (size_t)tg_value_int(a[0]);
  tg_value *l = tg_list_alloc(k);
  for (size_t i = 0; l && i < k; i++)
    if (tg_list_init_item(l, i, tgt_f64_array(tg_value_int(a[1]), (double)i)) != TG_OK) {
      tg_value_unref(l);
      l = NULL;
    }
  *out = l;
  return l ? TG_OK : TG_ENOMEM;
}

/* big_dict(n): {"one": big(n, 1), "two": big(n, 2)}. */
static int fn_big_dict(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  int rc = want_ints(ctx, a, n);
  if (rc) return rc;
  tg_value *m = tg_map_new(2);
  if (!m || tg_map_put_c(m, "one", tgt_f64_array(tg_value_int(a[0]), 1)) ||
      tg_map_put_c(m, "two", tgt_f64_array(tg_value_int(a[0]), 2))) {
    tg_value_unref(m);
    return TG_ENOMEM;
  }
  *out = m;
  return TG_OK;
}

/* slow(x, ms): x + 1 after ms milliseconds. */
static int fn_slow(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  int rc = want_ints(ctx, a, n);
  if (rc) return rc;
  tgt_sleep_ms(tg_value_int(a[1]));
  *out = tg_int(tg_value_int(a[0]) + 1);
  return TG_OK;
}

/* Calls of slow_counted, seen across the fork (memory shared with the
 * workers the test starts after setting it). */
static _Atomic uint64_t *slow_calls;

/* slow_counted(x, ms): slow(x, ms), counted in *slow_calls. */
static int fn_slow_counted(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  if (slow_calls) atomic_fetch_add(slow_calls, 1);
  return fn_slow(ctx, a, n, out);
}

/* slow_big(n, ms): big(n, 7) after ms milliseconds. */
static int fn_slow_big(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  int rc = want_ints(ctx, a, n);
  if (rc) return rc;
  tgt_sleep_ms(tg_value_int(a[1]));
  *out = tgt_f64_array(tg_value_int(a[0]), 7);
  return TG_OK;
}

/* n bytes, byte i = (i * 31 + 7) & 0xff (NULL when memory runs out). */
static tg_value *blob_value(size_t n) {
  uint8_t *p = malloc(n ? n : 1);
  if (!p) return NULL;
  for (size_t i = 0; i < n; i++) p[i] = (uint8_t)((i * 31 + 7) & 0xff);
  tg_value *v = tg_bytes(p, n);
  free(p);
  return v;
}

/* blob(n): blob_value(n). */
static int fn_blob(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  int rc = want_ints(ctx, a, n);
  if (rc) return rc;
  if (tg_value_int(a[0]) < 0) return tg_task_fail(ctx, TG_EINVAL, "blob needs n >= 0");
  *out = blob_value((size_t)tg_value_int(a[0]));
  return *out ? TG_OK : TG_ENOMEM;
}

/* blob_sum(b): the sum of the bytes of b (an int). */
static int fn_blob_sum(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)n;
  if (tg_value_type(a[0]) != TG_BYTES)
    return tg_task_fail(ctx, TG_ETYPE, "blob_sum needs bytes");
  size_t len;
  const uint8_t *p = tg_bytes_data(a[0], &len);
  int64_t s = 0;
  for (size_t i = 0; i < len; i++) s += p[i];
  *out = tg_int(s);
  return TG_OK;
}

/* The registry workers and tests share; "versioned" has version `ver`. */
static tg_registry *make_reg(const char *ver) {
  tg_registry *r = tgt_registry_new();
  struct {
    const char *name;
    tg_task_fn fn;
    int nargs;
  } defs[] = {{"big", fn_big, 2},           {"big_add", fn_big_add, 2},
              {"big_sum", fn_big_sum, 2},   {"big_split", fn_big_split, 2},
              {"big_dict", fn_big_dict, 1}, {"slow", fn_slow, 2}, {"slow_counted", fn_slow_counted, 2},
              {"slow_big", fn_slow_big, 2}, {"versioned", tgt_fn_inc, 1},
              {"blob", fn_blob, 1},         {"blob_sum", fn_blob_sum, 1},
              {"ints", fn_ints, 1}, {"slow_ints", fn_slow_ints, 2}};
  for (size_t i = 0; r && i < sizeof defs / sizeof defs[0]; i++) {
    bool versioned = strcmp(defs[i].name, "versioned") == 0;
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = defs[i].name,
                     .fn_version = versioned ? ver : "1", .fn = defs[i].fn,
                     .flags = TG_FUNC_PURE, .nargs = defs[i].nargs};
    cr_assert_eq(tg_registry_add(r, &d, NULL), TG_OK);
  }
  return r;
}

/* ---- worker processes ------------------------------------------------------------ */

#define MAXW 8
static pid_t pids[MAXW];
static char eps[MAXW][128];
static int npids;
static tg_registry *reg;

typedef struct wspec {
  const char *listen, *keys, *ver, *log;
  uint64_t digest; /* plugin digest of "versioned" (0: none) */
  unsigned nthreads;
  size_t max_message;
  double session_timeout;
} wspec;

static void child(const void *arg, int fd) {
  const wspec *sp = arg;
  if (sp->log) {
    int lf = open(sp->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(lf, 2);
  }
  tg_registry *r = make_reg(sp->ver ? sp->ver : "1");
  if (sp->digest)
    tg__func_set_origin(tg_registry_find(r, "versioned"), (tg_digest){sp->digest, 0}, NULL);
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1,
                      .listen = sp->listen ? sp->listen : "tcp://127.0.0.1:*",
                      .nthreads = sp->nthreads ? sp->nthreads : 2,
                      .keys_dir = sp->keys,
                      .max_message = sp->max_message,
                      .session_timeout = sp->session_timeout,
                      .stop = tproc_stop_on_term(),
                      .on_ready = tproc_say_ready,
                      .ctx = &fd,
                      .verbose = sp->log != NULL};
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_worker_serve(r, &o, &err);
  if (rc) dprintf(fd, "ERROR %s\n", err.msg);
  _exit(rc ? 1 : 0);
}

/* Fork a process running body(arg, fd), which says its address on fd
 * (or what went wrong); its index in pids/eps. When it says anything but
 * an address, *msg gets it (and -1 is returned). */
static int spawn(void (*body)(const void *arg, int fd), const void *arg, char *msg,
                 size_t msize) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    close(p[0]);
    body(arg, p[1]);
    _exit(0);
  }
  close(p[1]);
  cr_assert_lt(npids, MAXW);
  int i = npids++;
  pids[i] = pid;
  char line[512];
  tproc_read_line(p[0], line, sizeof line, 10);
  close(p[0]);
  size_t n = strlen(line);
  if (strncmp(line, "tcp://", 6) != 0) {
    if (msg) snprintf(msg, msize, "%s", line);
    return -1;
  }
  cr_assert_lt(n, sizeof eps[i]);
  memcpy(eps[i], line, n + 1);
  return i;
}

/* Fork a worker; its index in pids/eps. On failure to listen, *msg gets
 * the error (and -1 is returned). */
static int start_worker(const wspec *sp, char *msg, size_t msize) {
  return spawn(child, sp, msg, msize);
}

static int start(void) {
  wspec sp = {0};
  int i = start_worker(&sp, NULL, 0);
  cr_assert_geq(i, 0, "worker did not start");
  return i;
}

/* Whether worker i runs (reaping it when it has ended). */
static int last_status; /* of the worker alive() found ended */

static bool alive(int i) {
  pid_t r = waitpid(pids[i], &last_status, WNOHANG);
  if (r == pids[i]) pids[i] = 0;
  return r == 0;
}

static void setup(void) {
  reg = make_reg("1");
  cr_assert_not_null(reg);
}

/* Kill every worker and reap it: no process is left behind. */
static void teardown(void) {
  for (int i = 0; i < npids; i++) {
    if (pids[i] <= 0) continue;
    kill(pids[i], SIGKILL);
    int st;
    cr_expect_eq(waitpid(pids[i], &st, 0), pids[i]);
  }
  npids = 0;
  cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "a child process is left");
  tg_registry_free(reg);
}

TestSuite(tcp, .init = setup, .fini = teardown, .timeout = 120);

/* ---- executors ---------------------------------------------------------------------- */

typedef struct xopt {
  const char *keys;
  size_t keep_min;
  double connect_timeout, heartbeat;
  tg_event_fn on_event;
  void *event_ctx;
  tg_log_fn log;
  void *log_ctx;
} xopt;

static tg_executor *tcp_ex(const int *w, int n, const xopt *x) {
  const char *addr[MAXW];
  for (int i = 0; i < n; i++) addr[i] = eps[w[i]];
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp",
                        .connect = addr, .nconnect = (size_t)n};
  if (x) {
    o.keys_dir = x->keys;
    o.keep_min = x->keep_min;
    o.connect_timeout = x->connect_timeout;
    o.heartbeat = x->heartbeat;
    o.on_event = x->on_event;
    o.event_ctx = x->event_ctx;
    o.log = x->log;
    o.log_ctx = x->log_ctx;
  }
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &o, &ex, &err), TG_OK, "%s", err.msg);
  return ex;
}

/* Three workers, all connected: a run starts as soon as one worker is
 * ready, so tests that count where tasks and values went wait for the
 * handshakes of all three first (a loaded machine can delay one). */
static tg_executor *three(const xopt *x) {
  int w[3] = {start(), start(), start()};
  tg_executor *ex = tcp_ex(w, 3, x);
  tg_remote_stats st = {0};
  for (int i = 0; i < 1000; i++) {
    cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
    if (st.workers_ready == 3) break;
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  cr_assert_eq(st.workers_ready, 3, "the three workers did not all connect in 10 s");
  return ex;
}

static tg_remote_stats stats_of(tg_executor *ex) {
  tg_remote_stats st;
  cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
  return st;
}

/* Compute outs on ex (NULL: sync): rc; results into res. */
static int run(tg_graph *g, const tg_node *outs, size_t n, tg_executor *ex,
               tg_value **res, tg_compute_stats *st) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync",
                       .executor = ex, .stats = st};
  return tg_compute(g, outs, n, &o, res);
}

/* outs of g give equal results (or equal failures) on sync and on ex. */
static void same_as_sync(tg_graph *g, const tg_node *outs, size_t n, tg_executor *ex) {
  tg_value *a[16] = {0}, *b[16] = {0};
  tg_compute_stats sa, sb;
  char msg[512];
  int ra = run(g, outs, n, NULL, a, &sa);
  snprintf(msg, sizeof msg, "%s", tg_graph_errmsg(g));
  int rb = run(g, outs, n, ex, b, &sb);
  cr_assert_eq(rb, ra, "tcp: %s (sync: %s)", tg_graph_errmsg(g), msg);
  if (ra != TG_OK) {
    cr_assert_str_eq(tg_graph_errmsg(g), msg);
    return;
  }
  cr_assert_eq(sb.tasks_total, sa.tasks_total);
  cr_assert_eq(sb.tasks_run, sa.tasks_run);
  for (size_t i = 0; i < n; i++) {
    cr_assert(tg_value_equal(a[i], b[i]), "output %zu differs", i);
    tg_value_unref(a[i]);
    tg_value_unref(b[i]);
  }
}

/* ---- graphs -------------------------------------------------------------------------- */

#define V(x) tg_arg_value(x)
#define N(x) tg_arg_node(x)

/* 200 independent inc tasks and their sum. */
static tg_node g_fan(tg_graph *g) {
  tg_arg args[200];
  for (int i = 0; i < 200; i++) args[i] = N(tg_call(g, "inc", 1, V(tg_int(i))));
  tg_node s;
  cr_assert_eq(tg_graph_add(g, "sum_args", args, 200, NULL, &s), TG_OK);
  return s;
}

/* A binary tree of adds over 128 leaves. */
static tg_node g_tree(tg_graph *g) {
  tg_node level[128];
  for (int i = 0; i < 128; i++) level[i] = tg_call(g, "inc", 1, V(tg_int(i * 3)));
  for (int n = 128; n > 1; n /= 2)
    for (int i = 0; i < n / 2; i++)
      level[i] = tg_call(g, "add", 2, N(level[2 * i]), N(level[2 * i + 1]));
  return level[0];
}

/* Arrays of 400 KB (kept on workers) added in a chain, summed. */
static tg_node g_arrays(tg_graph *g, tg_node *last) {
  tg_node acc = tg_call(g, "big", 2, V(tg_int(50000)), V(tg_int(0)));
  for (int i = 1; i < 6; i++)
    acc = tg_call(g, "big_add", 2, N(acc), N(tg_call(g, "big", 2, V(tg_int(50000)), V(tg_int(i)))));
  *last = acc;
  return tg_call(g, "big_sum", 2, N(acc), V(tg_int(1)));
}

/* Items and keys selected from kept lists and maps. */
static tg_node g_select(tg_graph *g) {
  tg_node l = tg_call(g, "big_split", 2, V(tg_int(3)), V(tg_int(20000)));
  tg_node m = tg_call(g, "big_dict", 1, V(tg_int(20000)));
  tg_node s0 = tg_call(g, "big_sum", 2, tg_arg_item(l, 0), V(tg_int(0)));
  tg_node s2 = tg_call(g, "big_sum", 2, tg_arg_item(l, -1), V(tg_int(0)));
  tg_node sk = tg_call(g, "big_sum", 2, tg_arg_key(m, "two"), V(tg_int(0)));
  tg_node both = tg_call(g, "big_add", 2, tg_arg_item(l, 1), tg_arg_key(m, "one"));
  tg_node sb = tg_call(g, "big_sum", 2, N(both), V(tg_int(0)));
  return tg_call(g, "pack", 4, N(s0), N(s2), N(sk), N(sb));
}

/* A mapped function in chunks, then the sum. */
static tg_node g_map(tg_graph *g) {
  tg_arg in[100];
  for (int i = 0; i < 100; i++) in[i] = V(tg_int(i));
  tg_node m;
  cr_assert_eq(tg_graph_map(g, "inc", in, 100, NULL, 0, 7, NULL, &m), TG_OK);
  return tg_call(g, "sum", 1, N(m));
}

static void all_graphs(tg_executor *ex) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node last, outs[6] = {g_fan(g), g_tree(g), g_arrays(g, &last), g_select(g), g_map(g)};
  outs[5] = last; /* a 400 KB array comes back as an output */
  cr_assert_neq(outs[3], TG_NODE_NONE, "%s", tg_graph_errmsg(g));
  same_as_sync(g, outs, 6, ex);
  for (int i = 0; i < 6; i++) same_as_sync(g, &outs[i], 1, ex);
  tg_graph_free(g);
}

/* ---- results ----------------------------------------------------------------------------- */

Test(tcp, three_workers_same_as_sync) {
  tg_executor *ex = three(NULL);
  all_graphs(ex);
  tg_remote_stats st = stats_of(ex);
  cr_expect_eq(st.workers_ready, 3);
  cr_expect_gt(st.results_kept, 0, "large results stay on workers");
  cr_expect_eq(st.workers_lost, 0);
  tg_executor_free(ex);
}

Test(tcp, everything_kept_on_workers_same_as_sync) {
  xopt x = {.keep_min = 1}; /* every result stays where it was made */
  tg_executor *ex = three(&x);
  all_graphs(ex);
  tg_remote_stats st = stats_of(ex);
  cr_expect_gt(st.results_kept, 200, "the fan's 200 inc results at least");
  tg_executor_free(ex);
}

Test(tcp, failures_and_retries_same_as_sync) {
  tg_executor *ex = three(NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node ok = tg_call(g, "inc", 1, V(tg_int(1)));
  tg_node bad = tg_call(g, "fail", 1, N(ok));
  tg_node after = tg_call(g, "inc", 1, N(bad));
  same_as_sync(g, &after, 1, ex);
  cr_expect_eq(strcmp(tg_graph_errmsg(g), "task 'fail#1' failed: TG_EINVAL: always fails"), 0,
               "%s", tg_graph_errmsg(g));
  tg_node_opts no = {TG_NODE_OPTS_V1, NULL, 2, -1, 0, 0};
  tg_node flaky;
  tg_arg fa[2] = {V(tg_int(2)), V(tg_int(42))};
  cr_assert_eq(tg_graph_add(g, "fail_first", fa, 2, &no, &flaky), TG_OK);
  same_as_sync(g, &flaky, 1, ex); /* 3 calls counted on both */
  tg_arg in[10];
  for (int i = 0; i < 10; i++) in[i] = V(i == 6 ? tg_str_c("x") : tg_int(i));
  tg_node m;
  cr_assert_eq(tg_graph_map(g, "inc", in, 10, NULL, 0, 4, NULL, &m), TG_OK);
  same_as_sync(g, &m, 1, ex); /* a chunk's element fails */
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* A dependent goes where its input is; a value reaches a worker once. */
Test(tcp, values_stay_and_move_once) {
  tg_executor *ex = three(NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = tg_call(g, "big", 2, V(tg_int(100000)), V(tg_int(3))); /* 800 KB */
  tg_node one = tg_call(g, "big_sum", 2, N(a), V(tg_int(0)));
  tg_value *r = NULL;
  cr_assert_eq(run(g, &one, 1, ex, &r, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  tg_value_unref(r);
  tg_remote_stats st = stats_of(ex);
  cr_expect_eq(st.results_kept, 1);
  cr_expect_eq(st.values_moved, 0, "the sum ran where the array was");
  cr_expect_lt(st.bytes_received, 10000, "the array never came back");
  tg_node sums[12];
  for (int i = 0; i < 12; i++) sums[i] = tg_call(g, "big_sum", 2, N(a), V(tg_int(i)));
  tg_node all = tg_call(g, "pack", 12, N(sums[0]), N(sums[1]), N(sums[2]), N(sums[3]),
                        N(sums[4]), N(sums[5]), N(sums[6]), N(sums[7]), N(sums[8]),
                        N(sums[9]), N(sums[10]), N(sums[11]));
  same_as_sync(g, &all, 1, ex);
  tg_remote_stats st2 = stats_of(ex);
  uint64_t moved = st2.values_moved - st.values_moved;
  cr_expect_leq(moved, 2, "moved %llu times: at most once to each other worker",
                (unsigned long long)moved);
  cr_expect_leq(st2.bytes_moved - st.bytes_moved, 2 * 800100);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* An output that other tasks also use stays on its worker as well: its
 * dependents find it there, and it is never sent back out. */
Test(tcp, output_used_by_others_is_not_sent_back) {
  int w = start();
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node outs[12];
  outs[0] = tg_call(g, "big", 2, V(tg_int(100000)), V(tg_int(3))); /* 800 KB */
  for (int i = 1; i < 7; i++) outs[i] = tg_call(g, "big_sum", 2, N(outs[0]), V(tg_int(i)));
  /* items and entries of list and map outputs: named in the kept whole */
  outs[7] = tg_call(g, "big_split", 2, V(tg_int(2)), V(tg_int(100000)));
  outs[8] = tg_call(g, "big_sum", 2, tg_arg_item(outs[7], 0), V(tg_int(0)));
  outs[9] = tg_call(g, "big_sum", 2, tg_arg_item(outs[7], -1), V(tg_int(0)));
  outs[10] = tg_call(g, "big_dict", 1, V(tg_int(100000)));
  outs[11] = tg_call(g, "big_sum", 2, tg_arg_key(outs[10], "two"), V(tg_int(0)));
  same_as_sync(g, outs, 12, ex);
  tg_remote_stats st = stats_of(ex);
  cr_expect_lt(st.bytes_sent, 100000, "sent %llu bytes", (unsigned long long)st.bytes_sent);
  cr_expect_geq(st.bytes_received, 5 * 800000, "the outputs came back");
  cr_expect_lt(st.bytes_received, 6 * 800000, "once");
  cr_expect_eq(st.values_moved, 0);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* The engine counts its links' bytes on tcp as on processes (one view of
 * both, tg__offload_traffic_get): an 800 KB constant goes out once, its
 * sum comes back small; an in-process executor has no such counters. */
Test(tcp, link_traffic_counted) {
  int w = start();
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node sum = tg_call(g, "big_sum", 2, V(tgt_f64_array(100000, 1)), V(tg_int(0)));
  same_as_sync(g, &sum, 1, ex);
  tg__offload_traffic t;
  cr_assert_eq(tg__offload_traffic_get(ex, &t), TG_OK);
  cr_expect_geq(t.sock_out, 800000, "sent %llu bytes", (unsigned long long)t.sock_out);
  cr_expect_lt(t.sock_out, 900000, "sent %llu bytes", (unsigned long long)t.sock_out);
  cr_expect_gt(t.sock_in, 0);
  cr_expect_lt(t.sock_in, 10000, "received %llu bytes", (unsigned long long)t.sock_in);
  cr_expect_eq(t.tasks, 1);
  cr_expect_eq(t.shm_passed, 0, "no shared segments over ZeroMQ");
  cr_expect_eq(t.deaths, 0);
  tg_graph_free(g);
  tg_executor_free(ex);
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "threads", .workers = 1};
  cr_assert_eq(tg_executor_new(reg, &o, &ex, NULL), TG_OK);
  cr_expect_eq(tg__offload_traffic_get(ex, &t), TG_EINVAL);
  tg_executor_free(ex);
}

/* A graph constant of 800 KB is sent once per worker, not per task. */
Test(tcp, large_constant_sent_once_per_worker) {
  int w = start();
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_value *big = tgt_f64_array(100000, 1);
  tg_node sums[8];
  for (int i = 0; i < 8; i++)
    sums[i] = tg_call(g, "big_sum", 2, V(tg_value_ref(big)), V(tg_int(i)));
  tg_value_unref(big);
  tg_node all = tg_call(g, "pack", 8, N(sums[0]), N(sums[1]), N(sums[2]), N(sums[3]),
                        N(sums[4]), N(sums[5]), N(sums[6]), N(sums[7]));
  same_as_sync(g, &all, 1, ex);
  tg_remote_stats st = stats_of(ex);
  cr_expect_lt(st.bytes_sent, 2 * 800000, "sent %llu bytes", (unsigned long long)st.bytes_sent);
  cr_expect_gt(st.bytes_sent, 800000);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* ---- streamed values ------------------------------------------------------------------ */

/* Which worker made each result: FINISHED events of a tcp executor. */
#define MADE_MAX 128
typedef struct made_at {
  pthread_mutex_t mu;
  size_t n;
  struct {
    char key[48];
    int worker;
  } e[MADE_MAX];
} made_at;

static void record_made(void *ctx, const tg_event *ev) {
  made_at *m = ctx;
  if (ev->kind != TG_EVENT_FINISHED) return;
  pthread_mutex_lock(&m->mu);
  if (m->n < MADE_MAX) {
    snprintf(m->e[m->n].key, sizeof m->e[m->n].key, "%s", ev->key);
    m->e[m->n].worker = ev->worker;
  }
  m->n++;
  pthread_mutex_unlock(&m->mu);
}

/* The worker that made node n's result (which finished exactly once). */
static int made_on(const made_at *m, tg_graph *g, tg_node n) {
  char key[48];
  cr_assert_lt(tg_node_key(g, n, key, sizeof key), (int)sizeof key);
  int w = -1, seen = 0;
  for (size_t i = 0; i < m->n && i < MADE_MAX; i++)
    if (strcmp(m->e[i].key, key) == 0) {
      w = m->e[i].worker;
      seen++;
    }
  cr_assert_eq(seen, 1, "task %s finished %d times", key, seen);
  cr_assert(w >= 0 && w < 3, "task %s: worker %d", key, w);
  return w;
}

/* Values that must reach the workers running their consumers: a constant
 * (node TG_NODE_NONE: it starts here) or a result (or one element of it),
 * `bytes` of array or bytes data. An output comes back to the client
 * whole; the rest stays on the worker that made it (keep_min 4096). */
typedef struct source {
  tg_node node;
  uint64_t bytes;
  bool output;
} source;

typedef struct flow {
  int src;    /* index into the sources */
  tg_node to; /* a task that needs it */
} flow;

typedef struct needs {
  uint64_t sent;        /* bytes the client sent at least */
  uint64_t moves;       /* kept results sent on to another worker */
  uint64_t moved_bytes; /* their bytes at least */
} needs;

/* From where each task ran: what the client must have sent (each source
 * once per worker that needed it and did not make it), and how many kept
 * results it must have moved (whole or by element: one per result and
 * worker). */
static needs needed(const made_at *m, tg_graph *g, const source *src, size_t nsrc,
                    const flow *fl, size_t nfl) {
  needs n = {0, 0, 0};
  bool sent[32][3] = {{false}};
  cr_assert_leq(nsrc, 32);
  for (size_t i = 0; i < nfl; i++) {
    const source *s = &src[fl[i].src];
    int to = made_on(m, g, fl[i].to);
    int from = s->node == TG_NODE_NONE ? -1 : made_on(m, g, s->node);
    if (from == to || sent[fl[i].src][to]) continue;
    bool result_there = false; /* another element of it went there before */
    for (size_t k = 0; k < nsrc; k++) result_there |= src[k].node == s->node && sent[k][to];
    sent[fl[i].src][to] = true;
    n.sent += s->bytes;
    if (from < 0 || s->output) continue;
    n.moved_bytes += s->bytes;
    if (!result_there) n.moves++;
  }
  return n;
}

#define F64B(n) ((uint64_t)(n) * 8)
#define NS 600001 /* f64 elements: 4.8 MB, streamed, its last chunk partial */

static tg_node big_node(tg_graph *g, int64_t n, int64_t v) {
  return tg_call(g, "big", 2, V(tg_int(n)), V(tg_int(v)));
}

/* After hostile peers: worker w is alive and gives sync's results for a
 * tree of small tasks, chained 400 KB arrays kept there, and a streamed
 * output that a task there also uses. */
static void still_serves(int w) {
  cr_assert(alive(w), "the worker died: status %d", last_status);
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node last, a = big_node(g, NS, 3);
  tg_node outs[4] = {g_tree(g), g_arrays(g, &last), a,
                     tg_call(g, "big_sum", 2, N(a), V(tg_int(1)))};
  same_as_sync(g, outs, 4, ex);
  cr_expect_eq(stats_of(ex).workers_lost, 0);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* Long tasks after many short ones go to whichever worker is free: each
 * worker holds one beyond its thread and the rest wait in the client, so
 * two workers share 8 tasks of 60 ms (expected times are per function:
 * the short tasks' times do not make one worker look faster). */
Test(tcp, long_tasks_after_short_ones_spread_over_workers) {
  made_at m = {.mu = PTHREAD_MUTEX_INITIALIZER};
  xopt x = {.on_event = record_made, .event_ctx = &m};
  int w[2] = {start(), start()};
  tg_executor *ex = tcp_ex(w, 2, &x);
  for (int i = 0; i < 1000 && stats_of(ex).workers_ready < 2; i++) tgt_sleep_ms(10);
  cr_assert_eq(stats_of(ex).workers_ready, 2);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_arg in[500];
  for (int i = 0; i < 500; i++) in[i] = V(tg_int(i));
  tg_node short_ones;
  cr_assert_eq(tg_graph_map(g, "inc", in, 500, NULL, 0, 1, NULL, &short_ones), TG_OK);
  same_as_sync(g, &short_ones, 1, ex);
  pthread_mutex_lock(&m.mu);
  m.n = 0;
  pthread_mutex_unlock(&m.mu);
  tg_node outs[8];
  for (int i = 0; i < 8; i++) {
    char key[16];
    snprintf(key, sizeof key, "long-%d", i);
    tg_node_opts no = {TG_NODE_OPTS_V1, key, -1, -1, 0, 0};
    tg_arg a[2] = {V(tg_int(i)), V(tg_int(60))};
    cr_assert_eq(tg_graph_add(g, "slow", a, 2, &no, &outs[i]), TG_OK);
  }
  tg_value *r[8] = {0};
  cr_assert_eq(run(g, outs, 8, ex, r, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  int per[2] = {0, 0};
  for (size_t i = 0; i < m.n && i < MADE_MAX; i++)
    if (strncmp(m.e[i].key, "long-", 5) == 0 && m.e[i].worker >= 0 && m.e[i].worker < 2)
      per[m.e[i].worker]++;
  for (int i = 0; i < 8; i++) {
    cr_expect_eq(tg_value_int(r[i]), i + 1);
    tg_value_unref(r[i]);
  }
  cr_expect_eq(per[0] + per[1], 8);
  cr_expect(per[0] >= 3 && per[1] >= 3, "worker 0 ran %d, worker 1 ran %d", per[0], per[1]);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* Results and arguments on both sides of the 4 MiB line, in every shape:
 * outputs of every size, lists and maps of streamed arrays whose items
 * and entries other tasks select, sums of arrays made on different
 * workers, streamed constants (an array and bytes) used by several tasks. */
Test(tcp, large_values_streamed_same_as_sync) {
  /* Streamed, as the name says: in shared memory (same host, same user)
   * only descriptors would cross and count in bytes_sent (test_shm.c). */
  setenv("TGRAPH_NO_SHM", "1", 1);
  made_at m = {.mu = PTHREAD_MUTEX_INITIALIZER};
  xopt x = {.on_event = record_made, .event_ctx = &m};
  tg_executor *ex = three(&x);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  const int64_t at = (int64_t)(TG__STREAM_MIN / 8); /* exactly 4 MiB */
  tg_node exact = big_node(g, at, 1), below = big_node(g, at - 1, 2);
  tg_node odd = big_node(g, 700001, 3); /* 5.6 MB: 5 chunks and a partial one */
  tg_node xa = big_node(g, NS, 4), xb = big_node(g, NS, 5);
  tg_node xsum = tg_call(g, "big_add", 2, N(xa), N(xb));
  tg_node l = tg_call(g, "big_split", 2, V(tg_int(2)), V(tg_int(NS)));
  tg_node d = tg_call(g, "big_dict", 1, V(tg_int(NS)));
  tg_node ladd = tg_call(g, "big_add", 2, tg_arg_item(l, 0), tg_arg_item(l, -1));
  tg_node dadd = tg_call(g, "big_add", 2, tg_arg_key(d, "one"), tg_arg_item(l, 1));
  tg_node s_l0 = tg_call(g, "big_sum", 2, tg_arg_item(l, 0), V(tg_int(0)));
  tg_node s_d2 = tg_call(g, "big_sum", 2, tg_arg_key(d, "two"), V(tg_int(2)));
  /* the constants: 5 MB of f64 (for 6 tasks) and 4 MiB + 1000 bytes */
  tg_value *c = tgt_f64_array(625000, 0.25), *bc = blob_value(TG__STREAM_MIN + 1000);
  cr_assert(c && bc);
  tg_node cuse[6];
  for (int i = 0; i < 5; i++)
    cuse[i] = tg_call(g, "big_sum", 2, V(tg_value_ref(c)), V(tg_int(i)));
  tg_node c9 = big_node(g, 625000, 9);
  cuse[5] = tg_call(g, "big_add", 2, V(tg_value_ref(c)), N(c9));
  tg_node buse = tg_call(g, "blob_sum", 1, V(tg_value_ref(bc)));
  tg_node blob = tg_call(g, "blob", 1, V(tg_int((int64_t)TG__STREAM_MIN + 3)));
  tg_node bsum = tg_call(g, "blob_sum", 1, N(blob));
  tg_node scal = tg_call(g, "pack", 9, N(s_l0), N(s_d2), N(cuse[0]), N(cuse[1]),
                         N(cuse[2]), N(cuse[3]), N(cuse[4]), N(buse), N(bsum));
  tg_node outs[11] = {exact, below, odd, xsum, l, d, ladd, dadd, cuse[5], blob, scal};
  cr_assert_neq(scal, TG_NODE_NONE, "%s", tg_graph_errmsg(g));
  same_as_sync(g, outs, 11, ex);
  cr_assert_lt(m.n, MADE_MAX);

  tg_remote_stats st = stats_of(ex);
  cr_expect_eq(st.workers_lost, 0);
  cr_expect_eq(st.tasks_recomputed, 0);
  /* sent: each constant to every worker that ran a task using it, each
   * result (or element) to every worker that used it and did not make it */
  source src[] = {{TG_NODE_NONE, F64B(625000), false},
                  {TG_NODE_NONE, TG__STREAM_MIN + 1000, false},
                  {xa, F64B(NS), false},
                  {xb, F64B(NS), false},
                  {l, F64B(NS), true}, /* item 0 */
                  {l, F64B(NS), true}, /* item 1 */
                  {d, F64B(NS), true}, /* "one" */
                  {d, F64B(NS), true}, /* "two" */
                  {c9, F64B(625000), false},
                  {blob, TG__STREAM_MIN + 3, true}};
  flow fl[] = {{0, cuse[0]}, {0, cuse[1]}, {0, cuse[2]}, {0, cuse[3]}, {0, cuse[4]},
               {0, cuse[5]}, {1, buse},    {2, xsum},    {3, xsum},    {4, ladd},
               {5, ladd},    {5, dadd},    {4, s_l0},    {6, dadd},    {7, s_d2},
               {8, cuse[5]}, {9, bsum}};
  needs nd = needed(&m, g, src, sizeof src / sizeof src[0], fl, sizeof fl / sizeof fl[0]);
  cr_expect_geq(st.bytes_sent, nd.sent, "sent %llu bytes, %llu needed",
                (unsigned long long)st.bytes_sent, (unsigned long long)nd.sent);
  cr_expect_geq(st.values_moved, nd.moves, "moved %llu values, %llu needed",
                (unsigned long long)st.values_moved, (unsigned long long)nd.moves);
  cr_expect_geq(st.bytes_moved, nd.moved_bytes, "moved %llu bytes, %llu needed",
                (unsigned long long)st.bytes_moved, (unsigned long long)nd.moved_bytes);
  /* received: every output's data at least */
  uint64_t outb = F64B(at) + F64B(at - 1) + F64B(700001) + F64B(NS) /* xsum */ +
                  2 * F64B(NS) /* l */ + 2 * F64B(NS) /* d */ + 2 * F64B(NS) /* ladd, dadd */ +
                  F64B(625000) /* cuse[5] */ + TG__STREAM_MIN + 3 /* blob */;
  cr_expect_geq(st.bytes_received, outb, "received %llu bytes, outputs %llu",
                (unsigned long long)st.bytes_received, (unsigned long long)outb);
  tg_value_unref(c);
  tg_value_unref(bc);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* v is a 1-d f64 array with exactly the bytes of want. */
static void same_f64(const tg_value *v, const tg_value *want, int run) {
  cr_assert(v && is_f64(v), "run %d: not an f64 array", run);
  cr_assert_eq(tg_ndarray_ndim(v), 1);
  cr_assert_eq(tg_ndarray_nbytes(v), tg_ndarray_nbytes(want), "run %d", run);
  cr_assert_eq(memcmp(tg_ndarray_data(v), tg_ndarray_data(want), tg_ndarray_nbytes(want)),
               0, "run %d: the data differs", run);
}

/* 8 MiB arrays each way, five times on one executor: receive buffers are
 * recycled on both ends, and every byte must come through each time. */
Test(tcp, streamed_round_trips_repeated) {
  setenv("TGRAPH_NO_SHM", "1", 1); /* streamed, not in shared memory */
  int w = start();
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  const int64_t n = 1 << 20; /* 8 MiB: 8 chunks */
  for (int i = 0; i < 5; i++) {
    tg_graph *g;
    cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
    tg_value *want_c = tgt_f64_array(n, i), *want_b = tgt_f64_array(n, 100 + i);
    tg_node outs[2] = {tg_call(g, "identity", 1, V(tg_value_ref(want_c))),
                       big_node(g, n, 100 + i)};
    tg_remote_stats before = stats_of(ex);
    tg_value *got[2] = {NULL, NULL};
    cr_assert_eq(run(g, outs, 2, ex, got, NULL), TG_OK, "run %d: %s", i,
                 tg_graph_errmsg(g));
    tg_remote_stats after = stats_of(ex);
    same_f64(got[0], want_c, i); /* there and back */
    same_f64(got[1], want_b, i); /* made there */
    /* a new constant each run: it went out, and both results came back */
    cr_expect_geq(after.bytes_sent - before.bytes_sent, F64B(n), "run %d", i);
    cr_expect_geq(after.bytes_received - before.bytes_received, 2 * F64B(n), "run %d", i);
    for (int k = 0; k < 2; k++) tg_value_unref(got[k]);
    tg_value_unref(want_c);
    tg_value_unref(want_b);
    tg_graph_free(g);
  }
  cr_expect_eq(stats_of(ex).workers_lost, 0);
  cr_assert(alive(w));
  tg_executor_free(ex);
}

/* ---- task logs ------------------------------------------------------------------------------ */

#define NLOG 40

/* Order of log lines and FINISHED events, by task (both come from the
 * client's I/O thread; a mutex keeps the test honest anyway). */
typedef struct logs_seen {
  pthread_mutex_t mu;
  int tick;
  int logged_at[NLOG], finished_at[NLOG], lines[NLOG];
  char line[NLOG][64];
  int strays;
} logs_seen;

static int log_index(const char *key) {
  int i;
  return sscanf(key, "log-%d", &i) == 1 && i >= 0 && i < NLOG ? i : -1;
}

static void on_log(void *ctx, const char *key, const char *line) {
  logs_seen *s = ctx;
  pthread_mutex_lock(&s->mu);
  int i = log_index(key);
  if (i < 0) {
    s->strays++;
  } else {
    s->lines[i]++;
    s->logged_at[i] = ++s->tick;
    snprintf(s->line[i], sizeof s->line[i], "%s", line);
  }
  pthread_mutex_unlock(&s->mu);
}

static void on_log_event(void *ctx, const tg_event *e) {
  logs_seen *s = ctx;
  int i = log_index(e->key);
  if (e->kind != TG_EVENT_FINISHED || i < 0) return;
  pthread_mutex_lock(&s->mu);
  s->finished_at[i] = ++s->tick;
  pthread_mutex_unlock(&s->mu);
}

/* tg_task_log in a remote task reaches the executor's log callback once,
 * with the task's key and the line, before the task's result. */
Test(tcp, task_logs_reach_the_client) {
  logs_seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
  int w[2] = {start(), start()};
  xopt x = {.log = on_log, .log_ctx = &s, .on_event = on_log_event, .event_ctx = &s};
  tg_executor *ex = tcp_ex(w, 2, &x);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node outs[NLOG];
  for (int i = 0; i < NLOG; i++) {
    char key[32];
    snprintf(key, sizeof key, "log-%d", i);
    tg_node_opts no = {TG_NODE_OPTS_V1, key, -1, -1, 0, 0};
    tg_node n;
    tg_arg a = V(tg_int(1000 + i));
    cr_assert_eq(tg_graph_add(g, "logline", &a, 1, &no, &n), TG_OK, "%s", tg_graph_errmsg(g));
    outs[i] = n;
  }
  tg_value *r[NLOG] = {0};
  cr_assert_eq(run(g, outs, NLOG, ex, r, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  for (int i = 0; i < NLOG; i++) {
    cr_expect_eq(tg_value_int(r[i]), 1000 + i);
    tg_value_unref(r[i]);
  }
  tg_executor_free(ex); /* every callback has returned */
  cr_expect_eq(s.strays, 0);
  for (int i = 0; i < NLOG; i++) {
    char want[64];
    snprintf(want, sizeof want, "value %d", 1000 + i);
    cr_expect_eq(s.lines[i], 1, "log-%d: %d lines", i, s.lines[i]);
    cr_expect_str_eq(s.line[i], want);
    cr_expect(s.logged_at[i] > 0 && s.logged_at[i] < s.finished_at[i],
              "log-%d: line at %d, result at %d", i, s.logged_at[i], s.finished_at[i]);
  }
  tg_graph_free(g);
}

/* ---- faults -------------------------------------------------------------------------------- */

typedef struct killer {
  pid_t pid;
  int ms;
} killer;

static void *kill_later(void *arg) {
  killer *k = arg;
  tgt_sleep_ms(k->ms);
  kill(k->pid, SIGKILL);
  return NULL;
}

/* 48 slow tasks (40 ms) whose 80 KB results stay on workers, then their
 * sums packed in a chain. */
static tg_node g_slow(tg_graph *g) {
  tg_node level[48];
  for (int i = 0; i < 48; i++) {
    tg_node b = tg_call(g, "slow_big", 2, V(tg_int(10000 + i)), V(tg_int(40)));
    level[i] = tg_call(g, "big_sum", 2, N(b), V(tg_int(i)));
  }
  tg_node acc = level[0];
  for (int i = 1; i < 48; i++) acc = tg_call(g, "pack", 2, N(acc), N(level[i]));
  return acc;
}

/* The expected result of g_slow, from 12 threads (sync would take 2 s). */
static tg_value *expect_slow(tg_graph *g, tg_node out) {
  tg_value *want = NULL;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "threads", .workers = 12};
  cr_assert_eq(tg_compute(g, &out, 1, &o, &want), TG_OK);
  return want;
}

Test(tcp, worker_killed_mid_run) {
  xopt x = {.keep_min = 1}; /* results live on workers: losing one loses them */
  tg_executor *ex = three(&x);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node out = g_slow(g);
  tg_value *want = expect_slow(g, out), *got = NULL;
  killer k = {pids[1], 150};
  pthread_t th;
  pthread_create(&th, NULL, kill_later, &k);
  int rc = run(g, &out, 1, ex, &got, NULL);
  pthread_join(th, NULL);
  cr_assert_eq(rc, TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert(tg_value_equal(want, got));
  tg_remote_stats st = stats_of(ex);
  cr_expect_eq(st.workers_lost, 1);
  cr_expect_gt(st.tasks_retried + st.tasks_recomputed, 0);
  cr_expect_eq(st.workers_ready, 2);
  cr_expect(!alive(1));
  /* and the next run goes on with the two left */
  tg_value_unref(got);
  cr_assert_eq(run(g, &out, 1, ex, &got, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert(tg_value_equal(want, got));
  tg_value_unref(want);
  tg_value_unref(got);
  tg_graph_free(g);
  tg_executor_free(ex);
}

Test(tcp, hung_worker_is_given_up) {
  xopt x = {.keep_min = 1, .heartbeat = 1};
  tg_executor *ex = three(&x);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node out = g_slow(g);
  tg_value *want = expect_slow(g, out), *got = NULL;
  kill(pids[2], SIGSTOP); /* alive, but silent */
  cr_assert_eq(run(g, &out, 1, ex, &got, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert(tg_value_equal(want, got));
  cr_expect_eq(stats_of(ex).workers_lost, 1);
  kill(pids[2], SIGCONT);
  tg_value_unref(want);
  tg_value_unref(got);
  tg_graph_free(g);
  tg_executor_free(ex);
}

Test(tcp, no_worker_fails_after_the_timeout) {
  int w = start();
  kill(pids[w], SIGKILL); /* its port is free now */
  waitpid(pids[w], NULL, 0);
  pids[w] = 0;
  xopt x = {.connect_timeout = 0.3};
  tg_executor *ex = tcp_ex(&w, 1, &x);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "inc", 1, V(tg_int(1)));
  tg_value *r = NULL;
  double t0 = tgt_now();
  cr_assert_eq(run(g, &n, 1, ex, &r, NULL), TG_EWORKER);
  cr_expect_geq(tgt_now() - t0, 0.3);
  char want[300];
  snprintf(want, sizeof want, "no worker reachable for 0.3 s; %s: cannot connect (is a "
           "worker listening there?)", eps[w]);
  cr_expect_str_eq(tg_graph_errmsg(g), want);
  tg_graph_free(g);
  tg_executor_free(ex);
}

typedef struct late {
  const char *listen;
  int ms;
  atomic_int done; /* the forking thread lives until then: a worker gets
                      SIGKILL when the thread that forked it ends */
} late;

static void *start_late(void *arg) {
  late *l = arg;
  tgt_sleep_ms(l->ms);
  wspec sp = {.listen = l->listen};
  start_worker(&sp, NULL, 0);
  while (!atomic_load(&l->done)) tgt_sleep_ms(10);
  return NULL;
}

Test(tcp, run_waits_for_a_late_worker) {
  int w = start();
  char listen[128];
  snprintf(listen, sizeof listen, "%s", eps[w]);
  kill(pids[w], SIGKILL);
  waitpid(pids[w], NULL, 0);
  pids[w] = 0;
  xopt x = {.connect_timeout = 20};
  tg_executor *ex = tcp_ex(&w, 1, &x);
  late l = {listen, 300, 0};
  pthread_t th;
  pthread_create(&th, NULL, start_late, &l);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = g_tree(g);
  same_as_sync(g, &n, 1, ex);
  tg_executor_free(ex);
  atomic_store(&l.done, 1);
  tg_graph_free(g);
}

/* A client that vanishes mid-run: the worker drops its state and serves on. */
Test(tcp, vanished_client_state_dropped) {
  char log[] = "/tmp/tg_tcp_logXXXXXX";
  int fd = mkstemp(log);
  cr_assert_geq(fd, 0);
  close(fd);
  wspec sp = {.log = log, .session_timeout = 0.5};
  int w = start_worker(&sp, NULL, 0);
  cr_assert_geq(w, 0);
  pid_t c = fork();
  if (c == 0) { /* a run that dies with results kept and tasks running */
    xopt x = {.keep_min = 1};
    tg_executor *ex = tcp_ex(&w, 1, &x);
    tg_graph *g;
    tg_graph_new(reg, &g);
    tg_node out = g_slow(g);
    tg_future *f;
    tg_executor_submit(ex, g, out, &f);
    tgt_sleep_ms(200);
    _exit(0); /* no goodbye */
  }
  waitpid(c, NULL, 0);
  tgt_sleep_ms(1500);
  char text[4096] = "";
  FILE *f = fopen(log, "r");
  size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  text[n] = '\0';
  if (f) fclose(f);
  unlink(log);
  cr_expect(strstr(text, "state dropped") != NULL, "worker log: %s", text);
  cr_assert(alive(w), "status %d, log: %s", last_status, text);
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node t = g_tree(g);
  same_as_sync(g, &t, 1, ex);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* ---- keys ------------------------------------------------------------------------------------ */

static void tmpdir(char *buf) {
  strcpy(buf, "/tmp/tg_tcp_keysXXXXXX");
  cr_assert_not_null(mkdtemp(buf));
}

static void rm_keys(const char *dir) {
  const char *names[] = {"worker/worker.key", "worker/authorized_clients",
                         "client/client.key", "client/client.pub", "client/worker.pub",
                         "worker", "client"};
  char p[300];
  for (int i = 0; i < 7; i++) {
    snprintf(p, sizeof p, "%s/%s", dir, names[i]);
    i < 5 ? unlink(p) : rmdir(p);
  }
  rmdir(dir);
}

/* dir/sub in a static buffer (one of two, used in turn). */
static const char *sub(const char *dir, const char *s) {
  static char buf[2][300];
  static int i;
  i ^= 1;
  snprintf(buf[i], sizeof buf[i], "%s/%s", dir, s);
  return buf[i];
}

static mode_t mode_of(const char *dir, const char *name) {
  char p[300];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", dir, name);
  cr_assert_eq(stat(p, &st), 0, "%s", p);
  return st.st_mode & 0777;
}

Test(tcp, keys_generate_files) {
  char d[64];
  tmpdir(d);
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_keys_generate(d, &err), TG_OK, "%s", err.msg);
  cr_expect_eq(mode_of(d, "worker/worker.key"), 0600);
  cr_expect_eq(mode_of(d, "client/client.key"), 0600);
  cr_expect_eq(mode_of(d, "client/worker.pub"), 0644);
  cr_expect_eq(mode_of(d, "worker"), 0700);
  cr_expect_eq(mode_of(d, "client"), 0700);
  char pub[41], authorized[4096] = "", p[300];
  cr_assert_eq(tg__key_read(sub(d, "client"), "client.pub", pub, &err), TG_OK);
  snprintf(p, sizeof p, "%s/worker/authorized_clients", d);
  FILE *f = fopen(p, "r");
  size_t n = fread(authorized, 1, sizeof authorized - 1, f);
  authorized[n] = '\0';
  fclose(f);
  cr_expect(strstr(authorized, pub) != NULL);
  cr_expect_eq(tg_keys_generate(d, &err), TG_EEXIST, "never overwritten");
  rm_keys(d);
}

Test(tcp, keys_required_off_loopback) {
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://0.0.0.0:*"};
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_worker_serve(reg, &o, &err), TG_EINVAL);
  cr_expect_str_eq(err.msg, "refusing to listen on tcp://0.0.0.0:* without keys: only "
                   "loopback addresses (127.0.0.1, ::1, localhost) may go without; make "
                   "keys with 'tgraph keys generate DIR' and pass --keys DIR/worker");
  const char *addr[1] = {"tcp://192.0.2.1:7070"};
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addr,
                         .nconnect = 1};
  tg_executor *ex = NULL;
  cr_assert_eq(tg_executor_new(reg, &eo, &ex, &err), TG_EINVAL);
  cr_expect_str_eq(err.msg, "worker tcp://192.0.2.1:7070 is not on this machine: "
                   "connecting to it needs keys (tg_executor_opts.keys_dir, or --keys "
                   "DIR/client)");
}

static int keyed_run(int w, const char *keys, char *msg, size_t size) {
  xopt x = {.keys = keys, .connect_timeout = 5};
  tg_executor *ex = tcp_ex(&w, 1, &x);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = g_tree(g);
  tg_value *r = NULL;
  int rc = run(g, &n, 1, ex, &r, NULL);
  snprintf(msg, size, "%s", tg_graph_errmsg(g));
  tg_value_unref(r);
  tg_graph_free(g);
  tg_executor_free(ex);
  return rc;
}

Test(tcp, keys_refuse_strangers) {
  char good[64], other[64], msg[600], want[600];
  tmpdir(good);
  tmpdir(other);
  cr_assert_eq(tg_keys_generate(good, NULL), TG_OK);
  cr_assert_eq(tg_keys_generate(other, NULL), TG_OK);
  char gw[300], gc[300];
  snprintf(gw, sizeof gw, "%s/worker", good);
  snprintf(gc, sizeof gc, "%s/client", good);
  wspec sp = {.keys = gw};
  int w = start_worker(&sp, NULL, 0);
  cr_assert_geq(w, 0);
  cr_assert_eq(keyed_run(w, gc, msg, sizeof msg), TG_OK, "%s", msg);
  /* no keys at all: this user's own key, which the worker does not hold */
  cr_assert_eq(keyed_run(w, NULL, msg, sizeof msg), TG_EWORKER);
  snprintf(want, sizeof want, "no worker accepts this run; %s: the worker does not hold "
           "this user's key: it runs as another user (who may have taken the port first), "
           "runs with --keys, or is not a tgraph worker; without --keys a run uses only "
           "workers of its own user", eps[w]);
  cr_expect_str_eq(msg, want);
  /* keys of another set: the wrong server key and an unknown client */
  cr_assert_eq(keyed_run(w, sub(other, "client"), msg, sizeof msg), TG_EWORKER);
  snprintf(want, sizeof want, "no worker accepts this run; %s: the secure handshake failed "
           "(wrong server key, or the worker runs without keys)", eps[w]);
  cr_expect_str_eq(msg, want);
  /* the right server key, a client key the worker does not know */
  char mixed[64], p[300], q[300];
  tmpdir(mixed);
  cr_assert_eq(mkdir(sub(mixed, "client"), 0700), 0);
  const char *names[] = {"client.key", "client.pub"};
  for (int i = 0; i < 2; i++) {
    snprintf(p, sizeof p, "%s/client/%s", other, names[i]);
    snprintf(q, sizeof q, "%s/client/%s", mixed, names[i]);
    cr_assert_eq(link(p, q), 0);
  }
  snprintf(p, sizeof p, "%s/client/worker.pub", good);
  snprintf(q, sizeof q, "%s/client/worker.pub", mixed);
  cr_assert_eq(link(p, q), 0);
  cr_assert_eq(keyed_run(w, sub(mixed, "client"), msg, sizeof msg), TG_EWORKER);
  snprintf(want, sizeof want, "no worker accepts this run; %s: the worker refused this "
           "client's key (it is not in the worker's authorized_clients)", eps[w]);
  cr_expect_str_eq(msg, want);
  /* and the worker serves its own clients still */
  cr_assert(alive(w));
  cr_assert_eq(keyed_run(w, gc, msg, sizeof msg), TG_OK, "%s", msg);
  rm_keys(good);
  rm_keys(other);
  rm_keys(mixed);
}

/* ---- versions ------------------------------------------------------------------------------ */

Test(tcp, function_version_mismatch) {
  wspec sp = {.ver = "1"};
  int w = start_worker(&sp, NULL, 0);
  tg_registry_free(reg);
  reg = make_reg("2"); /* this program's "versioned" is version 2 */
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "versioned", 1, V(tg_int(1)));
  tg_value *r = NULL;
  cr_assert_eq(run(g, &n, 1, ex, &r, NULL), TG_EVERSION);
  char want[300];
  snprintf(want, sizeof want, "function 'versioned' has version '2' in this program and "
           "version '1' on worker %s", eps[w]);
  cr_expect_str_eq(tg_graph_errmsg(g), want);
  /* functions that match still run there */
  tg_node ok = tg_call(g, "inc", 1, V(tg_int(1)));
  cr_assert_eq(run(g, &ok, 1, ex, &r, NULL), TG_OK);
  cr_expect_eq(tg_value_int(r), 2);
  tg_value_unref(r);
  tg_graph_free(g);
  tg_executor_free(ex);
}

Test(tcp, plugin_digest_mismatch) {
  wspec sp = {.digest = 0x1111};
  int w = start_worker(&sp, NULL, 0);
  tg__func_set_origin(tg_registry_find(reg, "versioned"), (tg_digest){0x2222, 0}, NULL);
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "versioned", 1, V(tg_int(1)));
  tg_value *r = NULL;
  cr_assert_eq(run(g, &n, 1, ex, &r, NULL), TG_EVERSION);
  char want[500];
  snprintf(want, sizeof want, "function 'versioned' comes from a plugin (digest "
           "00000000000000000000000000002222) in this program but comes from a plugin "
           "(digest 00000000000000000000000000001111) on worker %s", eps[w]);
  cr_expect_str_eq(tg_graph_errmsg(g), want);
  tg_graph_free(g);
  tg_executor_free(ex);
}

Test(tcp, function_missing_on_worker) {
  int w = start();
  tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = "only_here", .fn_version = "1",
                   .fn = tgt_fn_inc, .flags = TG_FUNC_PURE, .nargs = 1};
  cr_assert_eq(tg_registry_add(reg, &d, NULL), TG_OK);
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "only_here", 1, V(tg_int(1)));
  tg_value *r = NULL;
  cr_assert_eq(run(g, &n, 1, ex, &r, NULL), TG_ENOFUNC);
  char want[300];
  snprintf(want, sizeof want, "function 'only_here' is not registered on worker %s (load "
           "its plugin there)", eps[w]);
  cr_expect_str_eq(tg_graph_errmsg(g), want);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* A fake worker answering every HELLO with protocol version 99. */
typedef struct fake {
  void *ctx, *sock;
  char ep[128];
  atomic_int stop;
} fake;

static void *fake_main(void *arg) {
  fake *f = arg;
  while (!atomic_load(&f->stop)) {
    zmq_pollitem_t it = {f->sock, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 50) <= 0) continue;
    zmq_msg_t id;
    zmq_msg_init(&id);
    zmq_msg_recv(&id, f->sock, 0);
    for (int more = zmq_msg_more(&id); more;) { /* the HELLO: not looked at */
      zmq_msg_t m;
      zmq_msg_init(&m);
      zmq_msg_recv(&m, f->sock, 0);
      more = zmq_msg_more(&m);
      zmq_msg_close(&m);
    }
    tg__wbuf h = {0};
    tg__wbuf_u8(&h, TG__M_WELCOME);
    tg__wbuf_bytes(&h, TG__PROTO_MAGIC, 4);
    tg__wbuf_varint(&h, 99);
    tg__wbuf_u8(&h, 0);
    tg__wbuf_varint(&h, 1);
    tg__wbuf_cstr(&h, "fake");
    tg__wbuf_cstr(&h, "");
    tg__wbuf_varint(&h, 0);
    zmq_msg_send(&id, f->sock, ZMQ_SNDMORE);
    zmq_send(f->sock, h.p, h.len, 0);
    tg__wbuf_free(&h);
  }
  return NULL;
}

Test(tcp, protocol_version_mismatch) {
  /* the client side: a worker speaking another version */
  fake f = {0};
  f.ctx = zmq_ctx_new();
  f.sock = as_user(zmq_socket(f.ctx, ZMQ_ROUTER), true);
  cr_assert_eq(zmq_bind(f.sock, "tcp://127.0.0.1:*"), 0);
  size_t len = sizeof f.ep;
  zmq_getsockopt(f.sock, ZMQ_LAST_ENDPOINT, f.ep, &len);
  pthread_t th;
  pthread_create(&th, NULL, fake_main, &f);
  const char *addr[1] = {f.ep};
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addr,
                         .nconnect = 1};
  tg_executor *ex = NULL;
  cr_assert_eq(tg_executor_new(reg, &eo, &ex, NULL), TG_OK);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "inc", 1, V(tg_int(1)));
  tg_value *r = NULL;
  cr_assert_eq(run(g, &n, 1, ex, &r, NULL), TG_EWORKER);
  char want[300];
  snprintf(want, sizeof want, "no worker accepts this run; %s: protocol version mismatch: "
           "the worker speaks version 99, this program version %d", f.ep, TG_REMOTE_PROTOCOL);
  cr_expect_str_eq(tg_graph_errmsg(g), want);
  tg_graph_free(g);
  tg_executor_free(ex);
  atomic_store(&f.stop, 1);
  pthread_join(th, NULL);
  zmq_close(f.sock);
  zmq_ctx_term(f.ctx);

  /* the worker side: a client speaking another version */
  int w = start();
  void *ctx = zmq_ctx_new(), *s = as_user(zmq_socket(ctx, ZMQ_DEALER), false);
  int linger = 0, tmo = 5000;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  cr_assert_eq(zmq_connect(s, eps[w]), 0);
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_HELLO);
  tg__wbuf_bytes(&h, TG__PROTO_MAGIC, 4);
  tg__wbuf_varint(&h, 99);
  tg__wbuf_varint(&h, 0);
  tg__wbuf_cstr(&h, "old client");
  tg__wbuf_varint(&h, 0);
  zmq_send(s, h.p, h.len, 0);
  tg__wbuf_free(&h);
  uint8_t buf[512];
  int got = zmq_recv(s, buf, sizeof buf, 0);
  cr_assert_gt(got, 0);
  tg__rbuf rb;
  tg__rbuf_init(&rb, buf, (size_t)got);
  cr_expect_eq(tg__rbuf_u8(&rb), TG__M_WELCOME);
  tg__rbuf_bytes(&rb, 4);
  cr_expect_eq(tg__rbuf_varint(&rb), TG_REMOTE_PROTOCOL);
  cr_expect_eq(tg__rbuf_u8(&rb), 1, "refused");
  tg__rbuf_varint(&rb);
  char name[300], msg[300];
  tg__rbuf_cstr(&rb, name, 255);
  tg__rbuf_cstr(&rb, msg, 255);
  char want2[200];
  snprintf(want2, sizeof want2, "the worker speaks protocol version %d, the client 99",
           TG_REMOTE_PROTOCOL);
  cr_expect_str_eq(msg, want2);
  zmq_close(s);
  zmq_ctx_term(ctx);
}

/* ---- hostile input ------------------------------------------------------------------------- */

static int port_of(const char *ep) { return atoi(strrchr(ep, ':') + 1); }

static void raw_send(const char *ep, const void *data, size_t n) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port_of(ep))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  cr_assert_eq(connect(s, (struct sockaddr *)&a, sizeof a), 0);
  ssize_t w = send(s, data, n, MSG_NOSIGNAL);
  (void)w;
  tgt_sleep_ms(50);
  close(s);
}

/* A ZMTP 3.0 greeting (NULL mechanism) and READY from a DEALER. */
static size_t zmtp_hello(uint8_t *p) {
  size_t n = 0;
  memset(p, 0, 64);
  p[0] = 0xff;
  p[9] = 0x7f;
  p[10] = 3;
  memcpy(p + 12, "NULL", 4);
  n = 64;
  const uint8_t ready[] = {0x04, 28, 5, 'R', 'E', 'A', 'D', 'Y', 11, 'S', 'o', 'c', 'k', 'e',
                           't', '-', 'T', 'y', 'p', 'e', 0, 0, 0, 6, 'D', 'E', 'A', 'L',
                           'E', 'R'};
  memcpy(p + n, ready, sizeof ready);
  return n + sizeof ready;
}

/* Send parts as one message from a fresh DEALER; the worker's reply. */
static int dealer_exchange(const char *ep, const char *const *parts, const size_t *lens,
                           size_t n, char *reply, size_t size, int tmo) {
  void *ctx = zmq_ctx_new(), *s = as_user(zmq_socket(ctx, ZMQ_DEALER), false);
  int linger = 0;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  zmq_connect(s, ep);
  for (size_t i = 0; i < n; i++) zmq_send(s, parts[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0);
  int got = zmq_recv(s, reply, size - 1, 0);
  if (got >= 0) reply[got < (int)size - 1 ? got : (int)size - 1] = '\0';
  zmq_close(s);
  zmq_ctx_term(ctx);
  return got;
}

static char *hello_bytes(size_t *n) {
  static char h[64];
  tg__wbuf b = {0};
  tg__wbuf_u8(&b, TG__M_HELLO);
  tg__wbuf_bytes(&b, TG__PROTO_MAGIC, 4);
  tg__wbuf_varint(&b, TG_REMOTE_PROTOCOL);
  tg__wbuf_varint(&b, 0);
  tg__wbuf_cstr(&b, "probe");
  tg__wbuf_varint(&b, 0);
  memcpy(h, b.p, b.len);
  *n = b.len;
  tg__wbuf_free(&b);
  return h;
}

Test(tcp, hostile_bytes_do_not_hurt) {
  wspec sp = {.max_message = 1 << 20};
  int w = start_worker(&sp, NULL, 0);
  cr_assert_geq(w, 0);
  /* random bytes */
  uint8_t junk[4096];
  uint64_t x = 88172645463325252ull;
  for (size_t i = 0; i < sizeof junk; i++) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    junk[i] = (uint8_t)x;
  }
  for (int i = 0; i < 5; i++) raw_send(eps[w], junk + i * 100, sizeof junk - (size_t)i * 100);
  /* a valid greeting, then a frame claiming 2^40 bytes, then one of 2^62 */
  uint8_t msg[256];
  for (int k = 0; k < 2; k++) {
    size_t n = zmtp_hello(msg);
    msg[n++] = 0x02; /* long frame */
    uint64_t big = k ? (uint64_t)1 << 62 : (uint64_t)1 << 40;
    for (int i = 7; i >= 0; i--) msg[n++] = (uint8_t)(big >> (8 * i));
    memset(msg + n, 0xab, 64);
    raw_send(eps[w], msg, n + 64);
  }
  /* an oversized part through ZeroMQ itself (limit 1 MiB) */
  size_t hn;
  char *hb = hello_bytes(&hn);
  char *huge = calloc(1, 2 << 20);
  const char *parts[2] = {hb, huge};
  size_t lens[2] = {hn, 2 << 20};
  char reply[512];
  cr_expect_lt(dealer_exchange(eps[w], parts, lens, 2, reply, sizeof reply, 500), 0,
               "dropped");
  free(huge);
  /* well-framed nonsense: no HELLO, a bad header, a task naming nothing */
  const char *nohello[1] = {"\x03\x01\x01"};
  size_t l1 = 3;
  cr_assert_gt(dealer_exchange(eps[w], nohello, &l1, 1, reply, sizeof reply, 3000), 0);
  cr_expect_eq(reply[0], TG__M_ERROR);
  cr_expect(strstr(reply + 2, "no HELLO first") != NULL);
  void *ctx = zmq_ctx_new(), *s = as_user(zmq_socket(ctx, ZMQ_DEALER), false);
  int linger = 0, tmo = 3000;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  zmq_connect(s, eps[w]);
  zmq_send(s, hb, hn, 0);
  cr_assert_gt(zmq_recv(s, reply, sizeof reply, 0), 0); /* welcome */
  zmq_send(s, "\x03\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x7f", 12, 0);
  int got = zmq_recv(s, reply, sizeof reply - 1, 0);
  cr_assert_gt(got, 0);
  reply[got] = '\0';
  cr_expect_eq(reply[0], TG__M_ERROR);
  cr_expect(strstr(reply + 2, "malformed message") != NULL, "%s", reply + 2);
  tmo = 300;
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  zmq_send(s, "\x08\x01", 2, 0); /* dropped: nothing of it is read now */
  cr_expect_lt(zmq_recv(s, reply, sizeof reply, 0), 0);
  zmq_close(s);
  zmq_ctx_term(ctx);
  still_serves(w);
}

/* ---- hostile streams ------------------------------------------------------------------- */

/* A DEALER on ctx past its HELLO and an accepting WELCOME from ep. */
static void *greeted(void *ctx, const char *ep) {
  void *s = as_user(zmq_socket(ctx, ZMQ_DEALER), false);
  int linger = 0, tmo = 3000;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  cr_assert_eq(zmq_connect(s, ep), 0);
  size_t hn;
  char *hb = hello_bytes(&hn);
  cr_assert_eq(zmq_send(s, hb, hn, 0), (int)hn);
  uint8_t buf[512];
  int got = zmq_recv(s, buf, sizeof buf, 0);
  cr_assert_gt(got, 0, "no WELCOME");
  tg__rbuf r;
  tg__rbuf_init(&r, buf, (size_t)got);
  cr_assert_eq(tg__rbuf_u8(&r), TG__M_WELCOME);
  tg__rbuf_bytes(&r, 4);
  cr_assert_eq(tg__rbuf_varint(&r), TG_REMOTE_PROTOCOL);
  cr_assert_eq(tg__rbuf_u8(&r), 0, "refused");
  return s;
}

/* Send a message of the given parts on s. */
static void send_parts(void *s, const void *const *parts, const size_t *lens, size_t n) {
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(zmq_send(s, parts[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0), (int)lens[i]);
}

/* A BULK message: its header (and `junk` bytes of garbage after it), then
 * len bytes of data (no data part when data is NULL). */
static void send_bulk(void *s, uint64_t seq, uint64_t total, uint64_t off, const void *data,
                      size_t len, size_t junk) {
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_BULK);
  tg__wbuf_varint(&h, seq);
  tg__wbuf_varint(&h, total);
  tg__wbuf_varint(&h, off);
  for (size_t i = 0; i < junk; i++) tg__wbuf_u8(&h, 0xee);
  cr_assert(!h.oom);
  const void *parts[2] = {h.p, data};
  size_t lens[2] = {h.len, len};
  send_parts(s, parts, lens, data ? 2 : 1);
  tg__wbuf_free(&h);
}

/* The next whole message on s into parts[0..max) (sizes in lens, the
 * first 64 KiB of each); its part count, or 0 after the 3 s timeout. */
static size_t recv_msg(void *s, uint8_t (*parts)[1 << 16], size_t *lens, size_t max) {
  size_t n = 0;
  for (int more = 1; more;) {
    uint8_t sink[16];
    int got = zmq_recv(s, n < max ? parts[n] : sink, n < max ? sizeof parts[n] : 0, 0);
    if (got < 0) return 0;
    if (n < max) lens[n] = (size_t)got < sizeof parts[n] ? (size_t)got : sizeof parts[n];
    n++;
    size_t ml = sizeof more;
    zmq_getsockopt(s, ZMQ_RCVMORE, &more, &ml);
  }
  return n;
}

static uint8_t (*replies)[1 << 16]; /* 4 parts of replies */

/* PING s and expect its PONG next: the worker read everything before. */
static void expect_pong(void *s, uint64_t token, const char *what) {
  uint8_t p[16] = {TG__M_PING};
  tg__wbuf h = {p, 1, sizeof p, false};
  tg__wbuf_varint(&h, token);
  cr_assert_eq(zmq_send(s, h.p, h.len, 0), (int)h.len);
  size_t lens[4];
  cr_assert_eq(recv_msg(s, replies, lens, 4), 1, "%s: no PONG", what);
  tg__rbuf r;
  tg__rbuf_init(&r, replies[0], lens[0]);
  cr_assert_eq(tg__rbuf_u8(&r), TG__M_PONG, "%s: got message type %d", what, replies[0][0]);
  cr_assert_eq(tg__rbuf_varint(&r), token, "%s", what);
}

/* Replies on s until an ERROR containing `want` (within 3 s). */
static void expect_error(void *s, const char *what, const char *want) {
  double end = tgt_now() + 3;
  while (tgt_now() < end) {
    int tmo = (int)((end - tgt_now()) * 1000) + 1;
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    size_t lens[4];
    if (recv_msg(s, replies, lens, 4) == 0) break;
    if (lens[0] == 0 || replies[0][0] != TG__M_ERROR) continue;
    tg__rbuf r;
    tg__rbuf_init(&r, replies[0], lens[0]);
    tg__rbuf_u8(&r);
    char msg[TG__MAX_MSG + 1];
    cr_assert(tg__rbuf_cstr(&r, msg, TG__MAX_MSG), "%s: a bad ERROR", what);
    cr_assert(strstr(msg, want) != NULL, "%s: %s", what, msg);
    return;
  }
  cr_assert_fail("%s: no ERROR within 3 s", what);
}

static void expect_malformed(void *s, const char *what) {
  expect_error(s, what, "malformed message");
}

/* Stream len bytes of data on s as value seq, in whole chunks. */
static void stream_value(void *s, uint64_t seq, const uint8_t *data, size_t len) {
  for (size_t off = 0; off < len; off += TG__STREAM_CHUNK)
    send_bulk(s, seq, len, off, data + off,
              len - off < TG__STREAM_CHUNK ? len - off : TG__STREAM_CHUNK, 0);
}

/* A PUT of object id whose value is `len` bytes streamed as value seq. */
static void put_streamed(void *s, uint64_t id, uint64_t seq, size_t len) {
  tg__wbuf h = {0}, d = {0};
  tg__wbuf_u8(&h, TG__M_PUT);
  tg__wbuf_varint(&h, id);
  tg__wbuf_u8(&d, 1);       /* a descriptor */
  tg__wbuf_varint(&d, 1);   /* of one large leaf: */
  tg__wbuf_u8(&d, 1);       /* streamed, */
  tg__wbuf_varint(&d, seq); /* as value seq, */
  tg__wbuf_varint(&d, 0);   /* the root, */
  tg__wbuf_u8(&d, TG_BYTES);
  tg__wbuf_varint(&d, len); /* of len bytes */
  void *skel = NULL;
  size_t sl = 0;
  cr_assert_eq(tg_encode(tg_null(), NULL, &skel, &sl, NULL), TG_OK);
  const void *parts[3] = {h.p, d.p, skel};
  size_t lens[3] = {h.len, d.len, sl};
  send_parts(s, parts, lens, 3);
  free(skel);
  tg__wbuf_free(&h);
  tg__wbuf_free(&d);
}

/* FETCH object 7 on s: the len bytes of data that put_streamed stored
 * come back streamed (as the worker's value `seq`), then the VALUE. */
static void fetch_object_7(void *s, const uint8_t *data, size_t len, uint64_t seq) {
  uint8_t fetch[2] = {TG__M_FETCH, 7};
  cr_assert_eq(zmq_send(s, fetch, 2, 0), 2);
  for (size_t off = 0; off < len; off += TG__STREAM_CHUNK) {
    zmq_msg_t m[2];
    for (int k = 0; k < 2; k++) {
      zmq_msg_init(&m[k]);
      cr_assert_geq(zmq_msg_recv(&m[k], s, 0), 0, "a chunk at %zu", off);
    }
    cr_assert(!zmq_msg_more(&m[1]));
    tg__rbuf r;
    tg__rbuf_init(&r, zmq_msg_data(&m[0]), zmq_msg_size(&m[0]));
    cr_assert_eq(tg__rbuf_u8(&r), TG__M_BULK);
    cr_assert_eq(tg__rbuf_varint(&r), seq);
    cr_assert_eq(tg__rbuf_varint(&r), len);
    cr_assert_eq(tg__rbuf_varint(&r), off);
    size_t n = len - off < TG__STREAM_CHUNK ? len - off : TG__STREAM_CHUNK;
    cr_assert_eq(zmq_msg_size(&m[1]), n);
    cr_assert_eq(memcmp(zmq_msg_data(&m[1]), data + off, n), 0, "chunk at %zu", off);
    zmq_msg_close(&m[0]);
    zmq_msg_close(&m[1]);
  }
  size_t lens[4];
  cr_assert_eq(recv_msg(s, replies, lens, 4), 3, "VALUE: header, descriptor, skeleton");
  cr_assert_eq(lens[0], 3);
  cr_assert_eq(memcmp(replies[0], (uint8_t[]){TG__M_VALUE, 7, 0}, 3), 0);
  tg__rbuf r; /* one streamed bytes leaf at the root: value seq */
  tg__rbuf_init(&r, replies[1], lens[1]);
  cr_assert_eq(tg__rbuf_u8(&r), 1);
  cr_assert_eq(tg__rbuf_varint(&r), 1);
  cr_assert_eq(tg__rbuf_u8(&r), 1, "streamed");
  cr_assert_eq(tg__rbuf_varint(&r), seq);
  cr_assert_eq(tg__rbuf_varint(&r), 0);
  cr_assert_eq(tg__rbuf_u8(&r), TG_BYTES);
  cr_assert_eq(tg__rbuf_varint(&r), len);
}

/* A client that asked for an object still being made and then vanished:
 * answering it fails and drops the session while the object is being
 * stored (a use after free, before). The worker serves on. */
Test(tcp, fetch_of_a_pending_object_by_a_vanished_client) {
  int w = start();
  replies = malloc(4 * sizeof *replies);
  void *ctx = zmq_ctx_new(), *s = greeted(ctx, eps[w]);
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_FUNCS); /* fn 0: slow, version 1, no digest */
  tg__wbuf_varint(&h, 1);
  tg__wbuf_varint(&h, 0);
  tg__wbuf_cstr(&h, "slow");
  tg__wbuf_cstr(&h, "1");
  tg__wbuf_u8(&h, 0);
  tg__wbuf_cstr(&h, ""); /* no code id */
  cr_assert_eq(zmq_send(s, h.p, h.len, 0), (int)h.len);
  size_t lens[4];
  cr_assert_eq(recv_msg(s, replies, lens, 4), 1, "FUNCS reply");
  cr_assert_eq(replies[0][0], TG__M_FUNCS_OK);
  tg__wbuf_reset(&h); /* TASKS of run 1: slow(1, 300) kept as object 7 */
  tg__wbuf_u8(&h, TG__M_TASKS);
  tg__wbuf_varint(&h, 1);
  tg__wbuf_varint(&h, 1);
  const uint64_t rec[] = {1 /* id */, 0 /* fn */};
  for (size_t i = 0; i < 2; i++) tg__wbuf_varint(&h, rec[i]);
  tg__wbuf_u8(&h, 0); /* a call */
  tg__wbuf_varint(&h, 0); /* aux */
  tg__wbuf_varint(&h, 1); /* attempts */
  tg__wbuf_varint(&h, 0); /* no timeout */
  tg__wbuf_u8(&h, TG__RF_KEEP);
  tg__wbuf_varint(&h, 7); /* store id */
  tg__wbuf_varint(&h, 0); /* min_us */
  tg__wbuf_varint(&h, 0); /* a user key: */
  tg__wbuf_cstr(&h, "pending");
  tg__wbuf_varint(&h, 2);
  for (uint64_t i = 0; i < 2; i++) {
    tg__wbuf_u8(&h, TG__ARG_INLINE);
    tg__wbuf_varint(&h, i);
  }
  tg_value *args = tg_list_of(2, tg_int(1), tg_int(300));
  void *enc = NULL;
  size_t el = 0;
  cr_assert_eq(tg_encode(args, NULL, &enc, &el, NULL), TG_OK);
  tg_value_unref(args);
  const uint8_t desc[2] = {1, 0}; /* no large leaves */
  const void *parts[3] = {h.p, desc, enc};
  size_t plens[3] = {h.len, 2, el};
  send_parts(s, parts, plens, 3);
  free(enc);
  tg__wbuf_free(&h);
  uint8_t fetch[2] = {TG__M_FETCH, 7};
  cr_assert_eq(zmq_send(s, fetch, 2, 0), 2);
  expect_pong(s, 5, "the FETCH was read");
  zmq_close(s); /* gone before the object is made */
  zmq_ctx_term(ctx);
  free(replies);
  tgt_sleep_ms(500);
  still_serves(w);
}

/* Streamed values breaking wire/stream.h's rules drop their client only. */
Test(tcp, hostile_stream_messages_drop_only_that_client) {
  wspec sp = {.max_message = 5 << 20}; /* per part, and streamed bytes held */
  int w = start_worker(&sp, NULL, 0);
  cr_assert_geq(w, 0);
  const size_t mib = TG__STREAM_CHUNK, len = TG__STREAM_MIN; /* 1 and 4 MiB */
  uint8_t *data = calloc(1, 6 * mib);
  replies = malloc(4 * sizeof *replies);
  cr_assert(data && replies);
  for (size_t i = 0; i < 6 * mib; i++) data[i] = (uint8_t)(i * 31 + 7);
  void *ctx = zmq_ctx_new();

  /* a well-formed stream first: 4 MiB streamed, PUT, FETCHed back (it
   * comes back streamed); this client stays connected through the rest */
  void *good = greeted(ctx, eps[w]);
  stream_value(good, 0, data, len);
  put_streamed(good, 7, 0, len);
  fetch_object_7(good, data, len, 0);

  /* (a) a first value numbered 5 */
  void *s = greeted(ctx, eps[w]);
  send_bulk(s, 5, len, 0, data, mib, 0);
  expect_malformed(s, "(a) seq 5 first");
  zmq_close(s);
  /* (b) 2^40 bytes announced; then just over the limit of 5 MiB (held
   * buffers count whole pages); then a value too small to be streamed */
  s = greeted(ctx, eps[w]);
  send_bulk(s, 0, (uint64_t)1 << 40, 0, data, mib, 0);
  expect_error(s, "(b) total 2^40", "is over the limit of 5242880 bytes held at once");
  zmq_close(s);
  s = greeted(ctx, eps[w]);
  send_bulk(s, 0, 5 * mib + 1, 0, data, mib, 0);
  expect_error(s, "(b) total 5 MiB + 1", "a streamed value of 5242881 bytes is over");
  zmq_close(s);
  s = greeted(ctx, eps[w]);
  send_bulk(s, 0, 100, 0, data, 100, 0);
  expect_malformed(s, "(b) a streamed value of 100 bytes");
  zmq_close(s);
  /* (c) a gap: [0, 1 MiB) of 4 MiB accepted, then a chunk at 1.5 MiB */
  s = greeted(ctx, eps[w]);
  send_bulk(s, 0, len, 0, data, mib, 0);
  expect_pong(s, 2, "(c) the first chunk");
  send_bulk(s, 0, len, mib + mib / 2, data, mib / 2, 0);
  expect_malformed(s, "(c) a gap");
  zmq_close(s);
  /* (d) a chunk of 1 MiB + 1 bytes (under the 5 MiB part limit) */
  s = greeted(ctx, eps[w]);
  send_bulk(s, 0, len, 0, data, mib + 1, 0);
  expect_malformed(s, "(d) chunk of 1 MiB + 1");
  zmq_close(s);
  /* (e) garbage after the header */
  s = greeted(ctx, eps[w]);
  send_bulk(s, 0, len, 0, data, mib, 3);
  expect_malformed(s, "(e) trailing bytes");
  zmq_close(s);
  /* (f) no data part */
  s = greeted(ctx, eps[w]);
  send_bulk(s, 0, len, 0, NULL, 0, 0);
  expect_malformed(s, "(f) one part");
  zmq_close(s);
  /* (g) value 0 received whole, a PUT naming value 1 */
  s = greeted(ctx, eps[w]);
  stream_value(s, 0, data, len);
  expect_pong(s, 3, "(g) value 0");
  put_streamed(s, 7, 1, len);
  expect_malformed(s, "(g) PUT of value 1");
  zmq_close(s);
  /* the first client was not dropped: its object is still there */
  expect_pong(good, 4, "the well-formed client");
  fetch_object_7(good, data, len, 1);
  zmq_close(good);
  zmq_ctx_term(ctx);
  free(data);
  free(replies);

  still_serves(w);
}

/* ---- a worker in a thread of this process ---------------------------------------------- */

typedef struct inproc {
  tg_registry *reg;
  volatile sig_atomic_t stop;
  char ep[128];
  atomic_int ready;
  int rc;
} inproc;

static void inproc_ready(void *ctx, const char *ep) {
  inproc *w = ctx;
  snprintf(w->ep, sizeof w->ep, "%s", ep);
  atomic_store(&w->ready, 1);
}

static void *inproc_main(void *arg) {
  inproc *w = arg;
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://localhost:0",
                      .nthreads = 2, .stop = &w->stop, .on_ready = inproc_ready, .ctx = w};
  w->rc = tg_worker_serve(w->reg, &o, NULL);
  return NULL;
}

/* tg_worker_serve in a thread: a program serving its own functions, and a
 * stop that releases everything (the sanitizers check the leaks). */
Test(tcp, worker_thread_serves_and_stops) {
  inproc w = {.reg = reg};
  pthread_t th;
  pthread_create(&th, NULL, inproc_main, &w);
  while (!atomic_load(&w.ready)) tgt_sleep_ms(1);
  cr_assert_eq(strncmp(w.ep, "tcp://127.0.0.1:", 16), 0, "%s", w.ep);
  snprintf(eps[0], sizeof eps[0], "%s", w.ep);
  int i = 0;
  xopt x = {.keep_min = 1};
  tg_executor *ex = tcp_ex(&i, 1, &x);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node last, outs[3] = {g_tree(g), g_arrays(g, &last), g_select(g)};
  same_as_sync(g, outs, 3, ex);
  /* a run still going when the worker stops fails cleanly */
  tg_future *f;
  tg_node slow = tg_call(g, "slow", 2, V(tg_int(1)), V(tg_int(300)));
  cr_assert_eq(tg_executor_submit(ex, g, slow, &f), TG_OK);
  tgt_sleep_ms(50);
  __atomic_store_n(&w.stop, 1, __ATOMIC_RELAXED); /* another thread: atomic */
  pthread_join(th, NULL);
  cr_assert_eq(w.rc, TG_OK);
  tg_executor_free(ex); /* the future is cancelled or lost its worker */
  cr_expect(tg_future_done(f));
  tg_future_free(f);
  tg_graph_free(g);
}

/* A compute timeout gives up tasks still running on workers at once. */
Test(tcp, timeout_gives_up_remote_tasks) {
  int w = start();
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "slow", 2, V(tg_int(1)), V(tg_int(3000)));
  tg_value *r = NULL;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .timeout = 0.3};
  double t0 = tgt_now();
  cr_assert_eq(tg_compute(g, &n, 1, &o, &r), TG_ETIMEDOUT);
  cr_expect_lt(tgt_now() - t0, 1.5);
  const char *want = "the compute timed out after 0.3 s"; /* + the task if it was sent */
  cr_expect(strncmp(tg_graph_errmsg(g), want, strlen(want)) == 0, "%s", tg_graph_errmsg(g));
  /* the executor still works */
  tg_node t = g_tree(g);
  same_as_sync(g, &t, 1, ex);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* A task over its timeout fails then, though the worker cannot stop it. */
Test(tcp, task_timeout_enforced) {
  int w = start();
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node_opts no = {TG_NODE_OPTS_V1, "stuck", 0, -1, 0.2, 0};
  tg_arg a[2] = {V(tg_int(1)), V(tg_int(5000))};
  tg_node n;
  cr_assert_eq(tg_graph_add(g, "slow", a, 2, &no, &n), TG_OK);
  tg_value *r = NULL;
  double t0 = tgt_now();
  cr_assert_eq(run(g, &n, 1, ex, &r, NULL), TG_ETASK);
  cr_expect_lt(tgt_now() - t0, 2.0);
  cr_expect_str_eq(tg_graph_errmsg(g), "task 'stuck' failed: TG_ETIMEDOUT: timed out after "
                   "0.2 s");
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* ---- chains ---------------------------------------------------------------------------- */

/* Voluntary context switches of process pid's threads so far (a thread
 * that sleeps waiting for another counts one per sleep). */
static long sleeps_of(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
  DIR *d = opendir(path);
  cr_assert_not_null(d);
  long sum = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char p[384], line[256];
    snprintf(p, sizeof p, "%s/%s/status", path, e->d_name);
    FILE *f = fopen(p, "r");
    while (f && fgets(line, sizeof line, f))
      if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0) sum += atol(line + 24);
    if (f) fclose(f);
  }
  closedir(d);
  return sum;
}

/* A chain of 4,000 inc tasks: sent ahead to its worker in 8 messages of
 * 512, where it runs link after link on a pool thread, which wakes the
 * worker's loop now and then (not for each link: two wake-ups per link
 * cost a chain 5-25 us per link on a loaded machine). */
Test(tcp, chain_runs_on_its_worker_without_a_wakeup_per_link) {
  int w = start();
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  enum { LINKS = 4000 };
  tg_node x = tg_call(g, "inc", 1, V(tg_int(0)));
  for (int i = 1; i < LINKS; i++) x = tg_call(g, "inc", 1, N(x));
  tg_value *warm = NULL; /* the worker connected and its functions known */
  tg_node one = tg_call(g, "inc", 1, V(tg_int(1)));
  cr_assert_eq(run(g, &one, 1, ex, &warm, NULL), TG_OK);
  tg_value_unref(warm);
  tg_remote_stats a = stats_of(ex);
  long s0 = sleeps_of(pids[w]);
  tg_value *r = NULL;
  cr_assert_eq(run(g, &x, 1, ex, &r, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  long slept = sleeps_of(pids[w]) - s0;
  tg_remote_stats b = stats_of(ex);
  cr_expect_eq(tg_value_int(r), LINKS);
  tg_value_unref(r);
  cr_expect_eq(b.tasks_sent - a.tasks_sent, LINKS);
  cr_expect_eq(b.batches_sent - a.batches_sent, LINKS / 512 + 1, "messages: %llu",
               (unsigned long long)(b.batches_sent - a.batches_sent));
  cr_expect_eq(b.values_moved, a.values_moved);
  cr_expect_lt(slept, LINKS / 8, "the worker's threads slept %ld times", slept);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* A chain's link fails, or a run is cancelled, while links wait behind
 * the one running on a pool thread: as on sync, and nothing is left. */
Test(tcp, chain_failures_and_cancels_as_sync) {
  int w = start();
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node x = tg_call(g, "inc", 1, V(tg_int(0)));
  for (int i = 1; i < 1000; i++) x = tg_call(g, "inc", 1, N(x));
  tg_node bad = tg_call(g, "fail", 1, N(x));
  tg_node y = bad;
  for (int i = 0; i < 1000; i++) y = tg_call(g, "inc", 1, N(y));
  same_as_sync(g, &y, 1, ex); /* the failed link's message, as sync's */
  cr_expect(strstr(tg_graph_errmsg(g), "TG_EINVAL: always fails"), "%s", tg_graph_errmsg(g));
  /* slow links: the compute times out with most of them still queued */
  tg_node s = tg_call(g, "slow", 2, V(tg_int(0)), V(tg_int(5)));
  for (int i = 1; i < 200; i++) s = tg_call(g, "slow", 2, N(s), V(tg_int(5)));
  tg_value *r = NULL;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .timeout = 0.2};
  cr_assert_eq(tg_compute(g, &s, 1, &o, &r), TG_ETIMEDOUT);
  /* the executor and its worker still work */
  tg_node z = tg_call(g, "inc", 1, N(x));
  for (int i = 0; i < 500; i++) z = tg_call(g, "inc", 1, N(z));
  same_as_sync(g, &z, 1, ex);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* A client that goes away while its chain's links wait behind the one
 * running on a pool thread: the rest of the chain fails there unrun, it
 * is not called link after link for nobody. */
Test(tcp, chain_of_a_dropped_client_is_not_called_on) {
  slow_calls = mmap(NULL, sizeof *slow_calls, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  cr_assert_neq(slow_calls, MAP_FAILED);
  int w = start();
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node s = tg_call(g, "slow_counted", 2, V(tg_int(0)), V(tg_int(20)));
  for (int i = 1; i < 100; i++) s = tg_call(g, "slow_counted", 2, N(s), V(tg_int(20)));
  tg_value *r = NULL;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .executor = ex, .timeout = 0.3};
  cr_assert_eq(tg_compute(g, &s, 1, &o, &r), TG_ETIMEDOUT);
  tg_executor_free(ex); /* the client leaves: its session is dropped */
  usleep(300 * 1000);
  uint64_t then = atomic_load(slow_calls);
  usleep(500 * 1000);
  uint64_t now = atomic_load(slow_calls);
  cr_expect_eq(now, then, "links still called after the client left: %llu, then %llu",
               (unsigned long long)then, (unsigned long long)now);
  cr_expect_lt(now, 60, "%llu of 100 links called", (unsigned long long)now);
  cr_expect(alive(w), "the worker goes on");
  tg_graph_free(g);
  munmap((void *)slow_calls, sizeof *slow_calls);
  slow_calls = NULL;
}

/* A tree of 4,096 leaves (8,191 tasks) on a worker of one thread: its
 * subtrees (pulled there whole) run on the pool thread, a sum following
 * the last of its two inputs, the worker's loop woken for their replies,
 * not for each task (quiet ones tell nothing): its threads sleep fewer
 * times than there are leaves (a wake-up per task: about 8,400; now
 * 43-140 in a release build, 101-151 in a sanitized one, beside two busy
 * loops too). */
Test(tcp, tree_runs_on_pool_threads_without_a_wakeup_per_task) {
  wspec sp = {.nthreads = 1};
  int w = start_worker(&sp, NULL, 0);
  cr_assert_geq(w, 0, "worker did not start");
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  enum { LEAVES = 4096 };
  tg_node root = tgt_add_tree(g, "inc", LEAVES);
  tg_value *r = NULL; /* warm: durations measured, functions known */
  cr_assert_eq(run(g, &root, 1, ex, &r, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  tg_value_unref(r);
  long s0 = sleeps_of(pids[w]);
  cr_assert_eq(run(g, &root, 1, ex, &r, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  long slept = sleeps_of(pids[w]) - s0;
  cr_expect_eq(tg_value_int(r), (int64_t)LEAVES * (LEAVES + 1) / 2);
  tg_value_unref(r);
  cr_expect_lt(slept, LEAVES, "the worker's threads slept %ld times", slept);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* ---- a moved value that does not decode --------------------------------------------- */

/* PUT object 5 on s: its value is the len bytes of encoding enc (no large
 * leaf). */
static void put_5(void *s, const void *enc, size_t len) {
  uint8_t head[2] = {TG__M_PUT, 5}, desc[2] = {1, 0};
  const void *parts[3] = {head, desc, enc};
  size_t lens[3] = {2, 2, len};
  send_parts(s, parts, lens, 3);
}

/* PUT object 5 on s as a map with a key twice (its checksums right) and
 * expect its REFUSED, naming the key. */
static void put_refused_5(void *s) {
  size_t len, rl[4];
  void *enc = tgt_duplicate_key_encoding(&len);
  cr_assert_not_null(enc);
  put_5(s, enc, len);
  free(enc);
  cr_assert_eq(recv_msg(s, replies, rl, 4), 1, "no REFUSED");
  tg__rbuf r;
  tg__rbuf_init(&r, replies[0], rl[0]);
  cr_assert_eq(tg__rbuf_u8(&r), TG__M_REFUSED, "message type %d", replies[0][0]);
  cr_assert_eq(tg__rbuf_varint(&r), 5);
  char why[TG__MAX_MSG + 1];
  tg__rbuf_cstr(&r, why, TG__MAX_MSG);
  cr_assert(!r.bad && tg__rbuf_end(&r));
  cr_expect(strstr(why, "duplicate map key \"k2\""), "%s", why);
}

/* A PUT whose value does not decode (a map with a key twice, its
 * checksums right) is REFUSED by object: nothing is stored, the object
 * waits to be sent again (tasks sent behind the PUT wait for it), and
 * the client is not dropped (the run sends results of other workers on
 * as they came: the fault is theirs). */
Test(tcp, put_that_does_not_decode_is_refused_not_its_client) {
  int w = start();
  replies = malloc(4 * sizeof *replies);
  void *ctx = zmq_ctx_new(), *s = greeted(ctx, eps[w]);
  put_refused_5(s);
  expect_pong(s, 11, "after the refusal"); /* the session goes on */
  uint8_t fetch[2] = {TG__M_FETCH, 5};
  cr_assert_eq(zmq_send(s, fetch, 2, 0), 2); /* waits: object 5 is to come */
  void *enc = NULL;
  size_t len, rl[4];
  cr_assert_eq(tg_encode(tg_int(42), NULL, &enc, &len, NULL), TG_OK);
  put_5(s, enc, len); /* sent again, whole */
  free(enc);
  cr_assert_eq(recv_msg(s, replies, rl, 4), 3, "VALUE: header, descriptor, skeleton");
  cr_expect_eq(memcmp(replies[0], (uint8_t[]){TG__M_VALUE, 5, 0}, 3), 0);
  tg_value *v = NULL;
  cr_assert_eq(tg_decode(replies[2], rl[2], &v, NULL), TG_OK);
  cr_expect_eq(tg_value_int(v), 42);
  tg_value_unref(v);
  zmq_close(s);
  zmq_ctx_term(ctx);
  free(replies);
  still_serves(w);
}

/* A peer between the run and worker `target`, speaking valid ZeroMQ with
 * the user's keys: it passes every message on, but the first VALUE the
 * worker sends (a result the run fetches to send on to another worker)
 * goes with a byte of its skeleton's meta section changed (its header
 * still right: only a decoder sees it). Says its address on fd. */
static void corrupting_proxy(const void *target, int fd) {
  void *ctx = zmq_ctx_new();
  void *front = as_user(zmq_socket(ctx, ZMQ_ROUTER), true);
  void *back = as_user(zmq_socket(ctx, ZMQ_DEALER), false);
  char ep[128];
  size_t len = sizeof ep;
  if (zmq_bind(front, "tcp://127.0.0.1:*") != 0 || zmq_connect(back, target) != 0 ||
      zmq_getsockopt(front, ZMQ_LAST_ENDPOINT, ep, &len) != 0)
    _exit(2);
  dprintf(fd, "%s\n", ep);
  close(fd);
  uint8_t rid[256];
  size_t rid_len = 0;
  bool corrupted = false;
  zmq_pollitem_t it[2] = {{front, 0, ZMQ_POLLIN, 0}, {back, 0, ZMQ_POLLIN, 0}};
  for (;;) {
    if (zmq_poll(it, 2, -1) < 0) _exit(3);
    for (int k = 0; k < 2; k++) {
      if (!(it[k].revents & ZMQ_POLLIN)) continue;
      void *from = k ? back : front, *to = k ? front : back;
      zmq_msg_t m;
      int part = 0;
      if (k) { /* to the run: its routing id first */
        if (zmq_send(front, rid, rid_len, ZMQ_SNDMORE) < 0) _exit(4);
      }
      bool value = false;
      for (int more = 1; more; part++) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, from, 0) < 0) _exit(5);
        more = zmq_msg_more(&m);
        uint8_t *d = zmq_msg_data(&m);
        size_t n = zmq_msg_size(&m);
        if (!k && part == 0) { /* the run's routing id */
          memcpy(rid, d, n < sizeof rid ? n : sizeof rid);
          rid_len = n < sizeof rid ? n : sizeof rid;
          zmq_msg_close(&m);
          continue;
        }
        if (k && part == 0) { /* VALUE, id, status 0: a value follows */
          tg__rbuf r;
          tg__rbuf_init(&r, d, n);
          value = tg__rbuf_u8(&r) == TG__M_VALUE;
          tg__rbuf_varint(&r);
          value = value && tg__rbuf_u8(&r) == 0 && !r.bad && !corrupted;
        }
        if (value && part == 2 && n > 64) { /* the skeleton: its meta section */
          d[64] ^= 0x5a;
          corrupted = true;
        }
        if (zmq_msg_send(&m, to, more ? ZMQ_SNDMORE : 0) < 0) _exit(6);
      }
    }
  }
}

static void collect_log(void *ctx, const char *key, const char *line) {
  char *buf = ctx;
  size_t at = strlen(buf);
  snprintf(buf + at, 8192 - at, "[%s] %s\n", key, line);
}

/* A worker whose result, fetched to be sent on to another worker, does not
 * decode there: the run drops the worker that made it, for good, naming
 * the task and the receiver's reason, makes the result again on the
 * receiver, and completes with sync's results; the receiver is not lost
 * (before, the run sent on what it had decoded itself; sending bytes on
 * as they came, a receiver that refused them was dropped in the maker's
 * place). Moves go both ways here, and rounds go on until one left the
 * proxied worker. */
Test(tcp, moved_value_that_does_not_decode_drops_its_maker_not_its_receiver) {
  int w0 = start(), w1 = start();
  char said[512];
  int px = spawn(corrupting_proxy, eps[w0], said, sizeof said);
  cr_assert_geq(px, 0, "proxy said '%s'", said);
  static char log[8192];
  log[0] = '\0';
  xopt x = {.log = collect_log, .log_ctx = log};
  int via[2] = {px, w1};
  tg_executor *ex = tcp_ex(via, 2, &x);
  tg_remote_stats st = {0};
  for (int i = 0; i < 1000 && st.workers_ready < 2; i++) {
    st = stats_of(ex);
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  cr_assert_eq(st.workers_ready, 2);
  for (int round = 0; round < 10 && st.workers_lost == 0; round++) {
    tg_graph *g;
    cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
    tg_node sums[8];
    for (int k = 0; k < 8; k++) {
      tg_node a = tg_call(g, "big", 2, V(tg_int(100000)), V(tg_int(round * 100 + k)));
      tg_node b = tg_call(g, "big", 2, V(tg_int(100000)), V(tg_int(round * 100 + 50 + k)));
      sums[k] = tg_call(g, "big_sum", 2, N(tg_call(g, "big_add", 2, N(a), N(b))), V(tg_int(0)));
    }
    tg_node all = tg_call(g, "pack", 8, N(sums[0]), N(sums[1]), N(sums[2]), N(sums[3]),
                          N(sums[4]), N(sums[5]), N(sums[6]), N(sums[7]));
    same_as_sync(g, &all, 1, ex);
    tg_graph_free(g);
    st = stats_of(ex);
  }
  cr_assert_eq(st.workers_lost, 1, "%llu workers lost; log:\n%s",
               (unsigned long long)st.workers_lost, log);
  cr_expect_eq(st.workers_ready, 1);
  char want[512];
  snprintf(want, sizeof want, "[%s] worker dropped for the rest of this executor's life: the "
           "result of task 'big#", eps[px]);
  cr_expect(strstr(log, want), "log:\n%s", log);
  snprintf(want, sizeof want, "' it sent does not decode (worker %s refused it: ", eps[w1]);
  cr_expect(strstr(log, want), "log:\n%s", log);
  cr_expect(strstr(log, "meta section checksum"), "log:\n%s", log);
  tg_executor_free(ex);
  still_serves(w1);
}

/* Lists of 2^20 items made behind a quiet input (a leaf kept quietly on
 * the worker, the list sent ahead behind it), their last items selected
 * by one task: all twelve lists (8 MB of placeholders each) are kept at
 * once, so past the run's budget of placeholders (64 MB) a list's task is
 * sent again to come back whole, and its reply must still tell that the
 * leaf was made (it did not: the leaf's engine task waited for ever, "2
 * tasks still running"). The sum takes every list's item, so no list is
 * freed before the last is made, whatever the timing (when a task of its
 * own took each list's item, a worker that ran them as they came kept
 * fewer than eight at once and never went past the budget). */
Test(tcp, list_over_the_shape_budget_behind_a_quiet_input) {
  enum { GROUPS = 12, ITEMS = 1 << 20 };
  int w = start();
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_arg last[GROUPS];
  int64_t want = 0;
  for (int i = 0; i < GROUPS; i++) {
    tg_node leaf = tg_call(g, "inc", 1, V(tg_int(ITEMS - 1 - i))); /* ITEMS - i */
    tg_node l = tg_call(g, "ints", 1, N(leaf));
    last[i] = tg_arg_item(l, -1);
    want += ITEMS - i - 1;
  }
  tg_node all;
  cr_assert_eq(tg_graph_add(g, "sum_args", last, GROUPS, NULL, &all), TG_OK);
  for (int round = 0; round < 2; round++) {
    tg_compute_opts o = tgt_opts(NULL, 0, NULL);
    o.executor = ex;
    o.timeout = 30;
    tg_value *v = NULL;
    cr_assert_eq(tg_compute(g, &all, 1, &o, &v), TG_OK, "round %d: %s", round,
                 tg_graph_errmsg(g));
    cr_expect_eq(tg_value_int(v), want);
    tg_value_unref(v);
  }
  /* Seven lists' placeholders fit in the budget, so at least five a round
   * were sent again; the leaf each was sent again without had been dropped
   * there after its use (its value here names nothing): made again. */
  cr_expect_geq(stats_of(ex).tasks_recomputed, 2 * (GROUPS - 7));
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* An object whose PUT was refused and that its client then lets go of:
 * what waited for it is answered at once (a FETCH: unknown), not kept
 * until the session ends. */
Test(tcp, refused_object_let_go_of_is_gone) {
  int w = start();
  replies = malloc(4 * sizeof *replies);
  void *ctx = zmq_ctx_new(), *s = greeted(ctx, eps[w]);
  put_refused_5(s);
  size_t rl[4];
  uint8_t fetch[2] = {TG__M_FETCH, 5}, drop[3] = {TG__M_FREE, 1, 5};
  cr_assert_eq(zmq_send(s, fetch, 2, 0), 2); /* waits for object 5 */
  cr_assert_eq(zmq_send(s, drop, 3, 0), 3);
  cr_assert_eq(recv_msg(s, replies, rl, 4), 1, "the FETCH was not answered");
  cr_expect_eq(memcmp(replies[0], (uint8_t[]){TG__M_VALUE, 5, 1}, 3), 0);
  cr_assert_eq(zmq_send(s, fetch, 2, 0), 2); /* gone: unknown at once */
  cr_assert_eq(recv_msg(s, replies, rl, 4), 1);
  cr_expect_eq(memcmp(replies[0], (uint8_t[]){TG__M_VALUE, 5, 1}, 3), 0);
  expect_pong(s, 12, "after the FREE");
  zmq_close(s);
  zmq_ctx_term(ctx);
  free(replies);
  still_serves(w);
}

/* Int arguments and int results travel in the task and result records
 * themselves, not in the messages' value lists: exact at the ends of the
 * range, negative, wrapped. */
Test(tcp, ints_in_records_exact) {
  int w = start();
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  const int64_t xs[] = {INT64_MIN, INT64_MIN + 1, -1, 0, 1, 63, 64, -64, -65, INT64_MAX};
  enum { N = sizeof xs / sizeof xs[0] };
  tg_node outs[N + 1]; /* each an output: each result comes back on its own */
  for (int i = 0; i < N; i++) outs[i] = tg_call(g, "identity", 1, V(tg_int(xs[i])));
  outs[N] = tg_call(g, "add", 2, V(tg_int(INT64_MAX)), V(tg_int(1))); /* wraps */
  tg_value *r[N + 1] = {0};
  cr_assert_eq(run(g, outs, N + 1, ex, r, NULL), TG_OK, "%s", tg_graph_errmsg(g));
  for (int i = 0; i < N; i++) {
    cr_expect_eq(tg_value_type(r[i]), TG_INT);
    cr_expect_eq(tg_value_int(r[i]), xs[i], "item %d", i);
    tg_value_unref(r[i]);
  }
  cr_expect_eq(tg_value_int(r[N]), INT64_MIN);
  tg_value_unref(r[N]);
  same_as_sync(g, outs, N + 1, ex);
  tg_graph_free(g);
  tg_executor_free(ex);
}

/* A quiet input with six dependents that each come back whole past the
 * run's budget of placeholders, one after another: the input, dropped on
 * the worker after its last use, is made again for the first one and then
 * stays there for the others, not made again per dependent sent (that
 * counted it lost more than OFL_MAX_REBUILDS times and stopped the run,
 * no worker lost). */
Test(tcp, quiet_input_of_dependents_sent_again_is_made_again_once) {
  enum { FILL = 8, BIG = 1000000, SMALL = 500001, DEPS = 6 };
  wspec sp = {.nthreads = DEPS};
  int w = start_worker(&sp, NULL, 0);
  cr_assert_geq(w, 0);
  tg_executor *ex = tcp_ex(&w, 1, NULL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  /* The fillers' placeholders (kept for the sum) take the run's budget but
   * for less than one dependent's list. */
  tg_arg fills[FILL], last[FILL + DEPS];
  for (int i = 0; i < FILL; i++) {
    tg_node f = tg_call(g, "ints", 1, V(tg_int(BIG - i))); /* distinct nodes */
    fills[i] = tg_arg_item(f, i ? 0 : SMALL - 1);
    last[i] = tg_arg_item(f, 0);
  }
  tg_node q; /* SMALL - 1, once every filler is kept */
  cr_assert_eq(tg_graph_add(g, "sum_args", fills, FILL, NULL, &q), TG_OK);
  int64_t want = 0;
  for (int i = 0; i < DEPS; i++) {
    tg_node d = tg_call(g, "slow_ints", 2, N(q), V(tg_int(300 * i)));
    last[FILL + i] = tg_arg_item(d, -1);
    want += SMALL - 2;
  }
  tg_node all;
  cr_assert_eq(tg_graph_add(g, "sum_args", last, FILL + DEPS, NULL, &all), TG_OK);
  tg_compute_opts o = tgt_opts(NULL, 0, NULL);
  o.executor = ex;
  o.timeout = 60;
  tg_value *v = NULL;
  cr_assert_eq(tg_compute(g, &all, 1, &o, &v), TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(tg_value_int(v), want);
  tg_value_unref(v);
  cr_expect_leq(stats_of(ex).tasks_recomputed, 2);
  tg_graph_free(g);
  tg_executor_free(ex);
}
