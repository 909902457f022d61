/* tests/bench/workloads.c: the benchmark support every bench program
 * links: checks, medians, task functions, the timed workloads and tcp
 * workers on loopback (see workloads.h). */
#include "workloads.h"

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tgraph/remote.h"

#include "../test_funcs.h"

int bench_failed;
static const char *prog = "bench";

void bench_set_name(const char *name) { prog = name; }

void bench_check(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "%s: wrong result: %s\n", prog, what);
    bench_failed = 1;
  }
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

double bench_median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* ---- task functions (no counters: measure the engine, not the test) ---- */

static int b_inc(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c;
  (void)n;
  *o = tg_int(tg_value_int(a[0]) + 1);
  return *o ? TG_OK : TG_ENOMEM;
}

static int b_ident(tg_task_ctx *c, tg_value *const *a, size_t n,
                   tg_value **o) {
  (void)c;
  (void)n;
  *o = tg_value_ref(a[0]);
  return TG_OK;
}

static int b_add(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c;
  (void)n;
  *o = tg_int(tg_value_int(a[0]) + tg_value_int(a[1]));
  return *o ? TG_OK : TG_ENOMEM;
}

static int b_sum(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c;
  int64_t s = 0;
  for (size_t i = 0; i < n; i++) s += tg_value_int(a[i]);
  *o = tg_int(s);
  return *o ? TG_OK : TG_ENOMEM;
}

static int b_pi(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)c;
  (void)n;
  *o = tg_float(tgt_mc_pi((uint64_t)tg_value_int(a[0]), tg_value_int(a[1])));
  return *o ? TG_OK : TG_ENOMEM;
}

/* ---- co-occurrence ------------------------------------------------------------ */

#define COOC_WORD 32   /* letters kept of a word */
#define COOC_WINDOW 16 /* the largest window */

/* The next word of s[*pos..len) into w (lowercased, cut to COOC_WORD
 * letters); its length, 0 at the end. */
static size_t next_word(const char *s, size_t len, size_t *pos, char w[COOC_WORD]) {
  size_t i = *pos, n = 0;
  while (i < len && !((s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z')) i++;
  for (; i < len && (s[i] | 0x20) >= 'a' && (s[i] | 0x20) <= 'z'; i++)
    if (n < COOC_WORD) w[n++] = (char)(s[i] | 0x20);
  *pos = i;
  return n;
}

int64_t bench_cooc_pairs(const char *text, size_t len, int window) {
  char w[COOC_WORD];
  int64_t words = 0, pairs = 0;
  for (size_t pos = 0; next_word(text, len, &pos, w) > 0; words++)
    pairs += words < window ? words : window;
  return pairs;
}

/* m[key] += by. */
static int add_count(tg_value *m, const char *key, size_t n, int64_t by) {
  const tg_value *old = tg_map_get(m, key, n);
  return tg_map_put(m, key, n, tg_int((old ? tg_value_int(old) : 0) + by));
}

char *bench_read_file(const char *path, size_t *len) {
  FILE *f = fopen(path, "rb");
  if (!f) return NULL;
  char *buf = NULL;
  size_t cap = 0, n = 0;
  bool ok = true;
  for (;;) {
    if (n == cap) {
      char *nb = realloc(buf, cap ? 2 * cap : 1 << 20);
      if (!nb) {
        ok = false;
        break;
      }
      buf = nb;
      cap = cap ? 2 * cap : 1 << 20;
    }
    size_t r = fread(buf + n, 1, cap - n, f);
    n += r;
    if (r == 0) break;
  }
  ok = ok && !ferror(f);
  fclose(f);
  if (!ok) {
    free(buf);
    return NULL;
  }
  *len = n;
  return buf;
}

static int b_cooc_count(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)n;
  if (tg_value_type(a[0]) != TG_STR || tg_value_type(a[1]) != TG_INT ||
      tg_value_int(a[1]) < 1 || tg_value_int(a[1]) > COOC_WINDOW)
    return tg_task_fail(c, TG_ETYPE, "cooc.count: needs (path, window 1 to %d)", COOC_WINDOW);
  size_t plen, len = 0;
  const char *p = tg_str_data(a[0], &plen);
  int64_t window = tg_value_int(a[1]);
  char path[4096];
  snprintf(path, sizeof path, "%.*s", (int)plen, p);
  char *text = bench_read_file(path, &len);
  if (!text) return tg_task_fail(c, TG_EIO, "cooc.count: cannot read %s", path);
  char ring[COOC_WINDOW][COOC_WORD], w[COOC_WORD], key[2 * COOC_WORD + 1];
  size_t rlen[COOC_WINDOW], wl;
  int64_t seen = 0;
  tg_value *m = tg_map_new(len / 16);
  for (size_t pos = 0; m && (wl = next_word(text, len, &pos, w)) > 0; seen++) {
    for (int64_t j = 1; j <= window && j <= seen; j++) {
      size_t r = (size_t)((seen - j) % window), pl = rlen[r];
      const char *x = ring[r], *y = w;
      size_t xl = pl, yl = wl;
      int cmp = memcmp(x, y, xl < yl ? xl : yl);
      if (cmp > 0 || (cmp == 0 && xl > yl)) {
        x = w, xl = wl, y = ring[r], yl = pl;
      }
      memcpy(key, x, xl);
      key[xl] = ' ';
      memcpy(key + xl + 1, y, yl);
      if (add_count(m, key, xl + 1 + yl, 1) != TG_OK) {
        tg_value_unref(m);
        m = NULL;
        break;
      }
    }
    memcpy(ring[seen % window], w, wl);
    rlen[seen % window] = wl;
  }
  free(text);
  if (!m) return tg_task_fail(c, TG_ENOMEM, "cooc.count: out of memory");
  *o = m;
  return TG_OK;
}

static int b_cooc_merge(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  size_t most = 0;
  for (size_t i = 0; i < n; i++) {
    if (tg_value_type(a[i]) != TG_MAP)
      return tg_task_fail(c, TG_ETYPE, "cooc.merge: argument %zu is not a map", i + 1);
    if (tg_map_len(a[i]) > most) most = tg_map_len(a[i]);
  }
  tg_value *m = tg_map_new(2 * most);
  for (size_t i = 0; m && i < n; i++)
    for (size_t j = 0; j < tg_map_len(a[i]); j++) {
      size_t kl;
      const char *k = tg_map_key_at(a[i], j, &kl);
      if (add_count(m, k, kl, tg_value_int(tg_map_value_at(a[i], j))) != TG_OK) {
        tg_value_unref(m);
        m = NULL;
        break;
      }
    }
  if (!m) return tg_task_fail(c, TG_ENOMEM, "cooc.merge: out of memory");
  *o = m;
  return TG_OK;
}

typedef struct cooc_entry {
  const char *key;
  size_t len;
  int64_t n;
} cooc_entry;

static int by_count(const void *a, const void *b) {
  const cooc_entry *x = a, *y = b;
  if (x->n != y->n) return x->n > y->n ? -1 : 1;
  int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);
  return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* Sift the heap's root down: a heap of the best k with the worst on top
 * (by_count's last). */
static void worst_down(cooc_entry *h, size_t n, size_t i) {
  for (;;) {
    size_t l = 2 * i + 1, r = l + 1, w = i;
    if (l < n && by_count(&h[l], &h[w]) > 0) w = l;
    if (r < n && by_count(&h[r], &h[w]) > 0) w = r;
    if (w == i) return;
    cooc_entry t = h[i];
    h[i] = h[w];
    h[w] = t;
    i = w;
  }
}

/* The k pairs with the highest counts (ties by key), as
 * Counter.most_common(k) finds them: one pass keeping the best k in a
 * heap, then a sort of those k, not a sort of the whole map. */
static int b_cooc_top(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)n;
  if (tg_value_type(a[0]) != TG_MAP || tg_value_type(a[1]) != TG_INT ||
      tg_value_int(a[1]) < 0)
    return tg_task_fail(c, TG_ETYPE, "cooc.top: needs (map, k >= 0)");
  size_t len = tg_map_len(a[0]), k = (size_t)tg_value_int(a[1]);
  if (k > len) k = len;
  cooc_entry *e = malloc((k + 1) * sizeof *e);
  if (!e) return tg_task_fail(c, TG_ENOMEM, "cooc.top: out of memory");
  size_t held = 0;
  for (size_t i = 0; i < len && k; i++) {
    cooc_entry x;
    x.key = tg_map_key_at(a[0], i, &x.len);
    x.n = tg_value_int(tg_map_value_at(a[0], i));
    if (held < k) { /* sift up */
      size_t j = held++;
      e[j] = x;
      while (j && by_count(&e[j], &e[(j - 1) / 2]) > 0) {
        cooc_entry t = e[j];
        e[j] = e[(j - 1) / 2];
        e[(j - 1) / 2] = t;
        j = (j - 1) / 2;
      }
    } else if (by_count(&x, &e[0]) < 0) {
      e[0] = x;
      worst_down(e, held, 0);
    }
  }
  qsort(e, held, sizeof *e, by_count);
  tg_value *list = tg_list_alloc(k);
  for (size_t i = 0; list && i < k; i++)
    if (tg_list_init_item(list, i, tg_list_of(2, tg_str(e[i].key, e[i].len),
                                              tg_int(e[i].n))) != TG_OK) {
      tg_value_unref(list);
      list = NULL;
    }
  free(e);
  if (!list) return tg_task_fail(c, TG_ENOMEM, "cooc.top: out of memory");
  *o = list;
  return TG_OK;
}

static int b_cooc_size(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {
  (void)n;
  if (tg_value_type(a[0]) != TG_MAP) return tg_task_fail(c, TG_ETYPE, "cooc.size: needs a map");
  int64_t total = 0;
  for (size_t i = 0; i < tg_map_len(a[0]); i++) total += tg_value_int(tg_map_value_at(a[0], i));
  *o = tg_list_of(2, tg_int((int64_t)tg_map_len(a[0])), tg_int(total));
  return *o ? TG_OK : tg_task_fail(c, TG_ENOMEM, "cooc.size: out of memory");
}

tg_registry *bench_registry(void) {
  tg_registry *reg = NULL;
  if (tg_registry_new(&reg) != TG_OK) return NULL;
  struct { const char *name; tg_task_fn fn; int nargs; } defs[] = {
      {"inc", b_inc, 1}, {"ident", b_ident, 1}, {"add", b_add, 2},
      {"sum", b_sum, -1}, {"mc_pi", b_pi, 2}, {"cooc.count", b_cooc_count, 2},
      {"cooc.merge", b_cooc_merge, -1}, {"cooc.top", b_cooc_top, 2},
      {"cooc.size", b_cooc_size, 1}};
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = defs[i].name,
                     .fn_version = "1", .fn = defs[i].fn,
                     .flags = TG_FUNC_PURE, .nargs = defs[i].nargs};
    if (tg_registry_add(reg, &d, NULL) != TG_OK) {
      tg_registry_free(reg);
      return NULL;
    }
  }
  return reg;
}

/* ---- running a graph ------------------------------------------------------ */

void bench_run(tg_graph *g, const tg_node *outs, size_t n, tg_executor *ex,
               tg_value **res) {
  bench_run_stats(g, outs, n, ex, res, NULL);
}

void bench_run_stats(tg_graph *g, const tg_node *outs, size_t n, tg_executor *ex,
                     tg_value **res, tg_compute_stats *st) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync",
                       .executor = ex, .stats = st};
  int rc = tg_compute(g, outs, n, &o, res);
  if (rc != TG_OK) {
    fprintf(stderr, "%s: %s: %s: %s\n", prog, ex ? tg_executor_backend(ex) : "sync",
            tg_err_name(rc), tg_graph_errmsg(g));
    bench_failed = 1;
  }
}

int64_t bench_run_int(tg_graph *g, tg_node out, tg_executor *ex) {
  tg_value *v = NULL;
  bench_run(g, &out, 1, ex, &v);
  int64_t r = v ? tg_value_int(v) : INT64_MIN;
  tg_value_unref(v);
  return r;
}

double bench_median_of(int reps, bench_workload fn, tg_registry *reg,
                       tg_executor *ex, int size) {
  double v[64];
  fn(reg, ex, size); /* warm-up */
  for (int i = 0; i < reps; i++) v[i] = fn(reg, ex, size);
  return bench_median(v, reps);
}

/* ---- workloads -------------------------------------------------------------- */

tg_node bench_w1_graph(tg_graph *g, int n) {
  tg_arg *args = malloc((size_t)n * sizeof *args);
  for (int i = 0; i < n; i++)
    args[i] = tg_arg_node(tg_call(g, "inc", 1, tg_arg_value(tg_int(i))));
  tg_node sum = TG_NODE_NONE;
  tg_graph_add(g, "sum", args, (size_t)n, NULL, &sum);
  free(args);
  return sum;
}

double bench_w1(tg_registry *reg, tg_executor *ex, int n) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  int64_t r = bench_run_int(g, bench_w1_graph(g, n), ex);
  double dt = tgt_now() - t0;
  bench_check(r == (int64_t)n * (n + 1) / 2, "W1 sum");
  tg_graph_free(g);
  return dt * 1e6 / (n + 1);
}

double bench_w2(tg_registry *reg, tg_executor *ex, int n) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node x = tg_call(g, "inc", 1, tg_arg_value(tg_int(0)));
  for (int i = 1; i < n; i++) x = tg_call(g, "inc", 1, tg_arg_node(x));
  int64_t r = bench_run_int(g, x, ex);
  double dt = tgt_now() - t0;
  bench_check(r == n, "W2 chain");
  tg_graph_free(g);
  return dt * 1e6 / n;
}

tg_node bench_w3_graph(tg_graph *g, int n) {
  tg_node *lv = malloc((size_t)n * sizeof *lv);
  for (int i = 0; i < n; i++)
    lv[i] = tg_call(g, "ident", 1, tg_arg_value(tg_int(i)));
  for (int m = n; m > 1; m /= 2)
    for (int i = 0; i < m / 2; i++)
      lv[i] = tg_call(g, "add", 2, tg_arg_node(lv[2 * i]),
                      tg_arg_node(lv[2 * i + 1]));
  tg_node root = lv[0];
  free(lv);
  return root;
}

double bench_w3(tg_registry *reg, tg_executor *ex, int n) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  int64_t r = bench_run_int(g, bench_w3_graph(g, n), ex);
  double dt = tgt_now() - t0;
  bench_check(r == (int64_t)n * (n - 1) / 2, "W3 tree");
  tg_graph_free(g);
  return dt * 1e6 / (2 * n - 1);
}

size_t bench_tree_peak(tg_registry *reg, tg_executor *ex, int n) {
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node root = bench_w3_graph(g, n);
  tg_value *v = NULL;
  tg_compute_stats st;
  memset(&st, 0, sizeof st);
  bench_run_stats(g, &root, 1, ex, &v, &st);
  bool ok = v && tg_value_int(v) == (int64_t)n * (n - 1) / 2;
  bench_check(ok, "tree reduction");
  tg_value_unref(v);
  tg_graph_free(g);
  return ok ? st.peak_live : 0;
}

double bench_w4(tg_registry *reg, tg_executor *ex, int tasks, int64_t samples) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node outs[64];
  tg_value *res[64] = {0};
  for (int i = 0; i < tasks; i++)
    outs[i] = tg_call(g, "mc_pi", 2, tg_arg_value(tg_int(1000 + i)),
                      tg_arg_value(tg_int(samples)));
  bench_run(g, outs, (size_t)tasks, ex, res);
  double dt = tgt_now() - t0;
  for (int i = 0; i < tasks; i++) {
    bench_check(res[i] && tg_value_float(res[i]) ==
                              tgt_mc_pi((uint64_t)(1000 + i), samples),
                "W4 pi");
    tg_value_unref(res[i]);
  }
  tg_graph_free(g);
  return dt;
}

/* One thread's share of bench_raw_w4: pi tasks first..first+count-1. */
typedef struct raw_half {
  int first, count;
  int64_t samples;
  volatile double sink; /* keeps the work from being optimized away */
} raw_half;

static void *raw_pi(void *arg) {
  raw_half *h = arg;
  for (int i = h->first; i < h->first + h->count; i++)
    h->sink += tgt_mc_pi((uint64_t)(1000 + i), h->samples);
  return NULL;
}

double bench_raw_w4(int tasks, int64_t samples) {
  raw_half all = {0, tasks, samples, 0};
  double t0 = tgt_now();
  raw_pi(&all);
  double t1 = tgt_now();
  raw_half a = {0, tasks / 2, samples, 0};
  raw_half b = {tasks / 2, tasks - tasks / 2, samples, 0};
  pthread_t th;
  pthread_create(&th, NULL, raw_pi, &b);
  raw_pi(&a);
  pthread_join(th, NULL);
  double t2 = tgt_now();
  return (t1 - t0) / (t2 - t1);
}

double bench_wa(tg_registry *reg, tg_executor *ex, tg_value *a) {
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node n = tg_call(g, "ident", 1, tg_arg_value(tg_value_ref(a)));
  tg_value *v = NULL;
  bench_run(g, &n, 1, ex, &v);
  double dt = tgt_now() - t0;
  bench_check(v && tg_ndarray_nbytes(v) == tg_ndarray_nbytes(a), "WA array size");
  if (v) { /* spot checks: a full compare would cost more than the trip */
    const double *x = tg_ndarray_data(a), *y = tg_ndarray_data(v);
    size_t len = tg_ndarray_size(a);
    for (size_t i = 0; i < len; i += len / 97 + 1)
      bench_check(x[i] == y[i], "WA array data");
    bench_check(x[len - 1] == y[len - 1], "WA array data");
  }
  tg_value_unref(v);
  tg_graph_free(g);
  return dt;
}

double bench_memcpy_secs(char *dst, const char *src, size_t bytes) {
  double t0 = tgt_now();
  memcpy(dst, src, bytes);
  double dt = tgt_now() - t0;
  bench_check(dst[bytes / 3] == src[bytes / 3] && dst[bytes - 1] == src[bytes - 1],
              "memcpy baseline");
  return dt;
}

/* ---- tcp workers on loopback ---------------------------------------------------- */

static volatile sig_atomic_t worker_stop;
static void worker_term(int s) { (void)s, worker_stop = 1; }
static void worker_ready(void *ctx, const char *ep) { dprintf(*(int *)ctx, "%s\n", ep); }

/* The child: serve until SIGTERM; the bound address goes down the pipe. */
static void worker_main(int fd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  signal(SIGTERM, worker_term);
  tg_registry *reg = bench_registry();
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                      .nthreads = 1, .stop = &worker_stop, .on_ready = worker_ready,
                      .ctx = &fd};
  tg_error err;
  tg_error_clear(&err);
  int rc = reg ? tg_worker_serve(reg, &o, &err) : TG_ENOMEM;
  if (rc != TG_OK) fprintf(stderr, "%s: tcp worker: %s\n", prog, err.msg);
  tg_registry_free(reg);
  _exit(rc ? 1 : 0);
}

int bench_tcp_start(bench_tcp *t, int n) {
  memset(t, 0, sizeof *t);
  for (; t->n < n && t->n < BENCH_TCP_MAX; t->n++) {
    int p[2];
    if (pipe(p) != 0) break;
    fflush(NULL); /* the child must not write this process's buffered output */
    pid_t pid = fork();
    if (pid == 0) {
      close(p[0]);
      worker_main(p[1]);
    }
    close(p[1]);
    char *ep = t->ep[t->n];
    size_t len = 0;
    while (pid > 0 && len + 1 < sizeof t->ep[0] && read(p[0], ep + len, 1) == 1 &&
           ep[len] != '\n')
      len++;
    ep[len] = '\0';
    close(p[0]);
    t->pids[t->n] = pid;
    if (pid < 0 || strncmp(ep, "tcp://", 6) != 0) {
      t->n++; /* reaped by bench_tcp_stop */
      break;
    }
  }
  if (t->n == n && strncmp(t->ep[n - 1], "tcp://", 6) == 0) return 0;
  fprintf(stderr, "%s: cannot start tcp worker %d of %d\n", prog, t->n, n);
  bench_tcp_stop(t);
  return -1;
}

int bench_tcp_executor(const bench_tcp *t, tg_registry *reg, tg_executor **ex) {
  const char *addr[BENCH_TCP_MAX];
  for (int i = 0; i < t->n; i++) addr[i] = t->ep[i];
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp",
                         .connect = addr, .nconnect = (size_t)t->n};
  tg_error err;
  tg_error_clear(&err);
  if (tg_executor_new(reg, &eo, ex, &err) == TG_OK) return 0;
  fprintf(stderr, "%s: tcp executor: %s\n", prog, err.msg);
  return -1;
}

void bench_tcp_stop(bench_tcp *t) {
  for (int i = 0; i < t->n; i++) {
    if (t->pids[i] <= 0) continue;
    kill(t->pids[i], SIGTERM);
    waitpid(t->pids[i], NULL, 0);
    t->pids[i] = 0;
  }
  t->n = 0;
}
