/* tests/bench/bench_dashboard.c: what a live dashboard costs a run. Runs
 * N tasks (default 100,000; argv[1] scales it, --quick is 2,000) of a
 * random DAG on the threads backend with a report recorder, alternately
 * without a dashboard (the baseline) and with one that a client asks for
 * /data every second, as the page does, 5 times each. Prints the medians
 * of the runs' wall times and their ratio, and the time and size of the
 * /data replies during the runs. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "tgraph.h"
#include "workloads.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* A task: about 20 us of arithmetic over its inputs. */
static int work(tg_task_ctx *ctx, tg_value *const *args, size_t nargs, tg_value **out) {
  (void)ctx;
  int64_t s = tg_value_int(args[0]);
  for (size_t i = 1; i < nargs; i++) s ^= tg_value_int(args[i]);
  for (int k = 0; k < 20000; k++) s = s * 6364136223846793005LL + 1442695040888963407LL;
  *out = tg_int(s & 0xffff);
  return *out ? TG_OK : TG_ENOMEM;
}

static uint64_t rng = 88172645463325252u;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* GET path from 127.0.0.1:port; the reply's size, or 0 on failure. */
static size_t get(unsigned port, const char *path) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((in_port_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  size_t total = 0;
  if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0) {
    char req[256], buf[65536];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                     path);
    ssize_t got;
    if (write(fd, req, (size_t)n) == n)
      while ((got = read(fd, buf, sizeof buf)) > 0) total += (size_t)got;
  }
  close(fd);
  return total;
}

typedef struct poller {
  unsigned port;
  char path[128];
  atomic_bool stop;
  double ms[4096];
  size_t n, bytes;
} poller;

static void *poll_main(void *arg) {
  poller *p = arg;
  while (!atomic_load(&p->stop)) {
    double t0 = now();
    size_t b = get(p->port, p->path);
    if (b > 0 && p->n < 4096) p->ms[p->n++] = (now() - t0) * 1e3, p->bytes = b;
    usleep(1000000);
  }
  return NULL;
}

static int cmp(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(double *v, size_t n) {
  qsort(v, n, sizeof *v, cmp);
  return n ? v[n / 2] : 0;
}

typedef struct graph {
  tg_registry *reg;
  tg_graph *g;
  tg_node *outs;
  size_t nouts;
} graph;

static bool make_graph(size_t n, graph *gr) {
  if (tg_registry_new(&gr->reg) != TG_OK) return false;
  tg_register(gr->reg, "work", work, TG_FUNC_PURE);
  tg_graph_new(gr->reg, &gr->g);
  gr->outs = malloc(n * sizeof *gr->outs);
  gr->nouts = 0;
  for (size_t i = 0; i < n; i++) {
    tg_arg a[3] = {tg_arg_value(tg_int((int64_t)i))};
    size_t na = 1;
    if (i > 0) a[na++] = tg_arg_node((tg_node)(next() % i));
    if (i > 1 && i % 3) a[na++] = tg_arg_node((tg_node)(i - 1 - next() % (i < 64 ? i : 64)));
    tg_node id;
    if (tg_graph_add(gr->g, "work", a, na, NULL, &id) != TG_OK) return false;
    if (i % 1000 == 999 || i + 1 == n) gr->outs[gr->nouts++] = id;
  }
  return true;
}

/* One run; with a dashboard polled by p when p is not NULL. Its wall
 * time, or -1. */
static double one_run(graph *gr, poller *p) {
  tg_report *r;
  if (tg_report_new(gr->g, gr->outs, gr->nouts, &r) != TG_OK) return -1;
  tg_dashboard *d = NULL;
  pthread_t th;
  if (p != NULL) {
    tg_error err;
    tg_error_clear(&err);
    if (tg_dashboard_start(r, NULL, &d, &err) != TG_OK) {
      fprintf(stderr, "bench_dashboard: %s\n", err.msg);
      return -1;
    }
    p->port = tg_dashboard_port(d);
    snprintf(p->path, sizeof p->path, "/data%s", strstr(tg_dashboard_url(d), "?t="));
    atomic_store(&p->stop, false);
    pthread_create(&th, NULL, poll_main, p);
  }
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "threads", .workers = 2,
                        .on_event = tg_report_on_event, .event_ctx = r};
  tg_value **res = calloc(gr->nouts, sizeof *res);
  double t0 = now();
  int rc = tg_compute(gr->g, gr->outs, gr->nouts, &co, res);
  double wall = now() - t0;
  for (size_t i = 0; rc == TG_OK && i < gr->nouts; i++) tg_value_unref(res[i]);
  free(res);
  if (p != NULL) {
    atomic_store(&p->stop, true);
    pthread_join(th, NULL);
    tg_report_run run = {TG_REPORT_RUN_V1, "bench", "threads", 2, rc, NULL, NULL};
    tg_report_finish(r, &run);
  }
  tg_dashboard_stop(d);
  tg_report_free(r);
  return rc == TG_OK ? wall : -1;
}

int main(int argc, char **argv) {
  bench_set_name("bench_dashboard");
  bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  double scale = argc > 1 && !quick ? atof(argv[1]) : 1.0;
  size_t n = quick ? 2000 : (size_t)(100000 * (scale > 0 ? scale : 1.0));
  graph gr;
  if (!make_graph(n, &gr)) return 1;
  static poller p;
  double base[5], dash[5];
  for (int i = 0; i < 5; i++) {
    base[i] = one_run(&gr, NULL);
    p.n = 0;
    dash[i] = one_run(&gr, &p);
    if (base[i] < 0 || dash[i] < 0) return 1;
    printf("  run %d: %.3f s without, %.3f s with the dashboard (%zu /data of %zu bytes, "
           "median %.1f ms)\n", i + 1, base[i], dash[i], p.n, p.bytes, median(p.ms, p.n));
  }
  double mb = median(base, 5), md = median(dash, 5);
  printf("bench_dashboard: %zu tasks, threads x2: median %.3f s without, %.3f s with a "
         "dashboard polled every second: ratio %.3f\n", n, mb, md, md / mb);
  tg_graph_free(gr.g);
  tg_registry_free(gr.reg);
  free(gr.outs);
  return 0;
}
