/* tests/bench/bench_report.c: how big the HTML run report of a large run
 * is and how fast a browser opens it. Runs N tasks (default 100,000;
 * argv[1] scales it, --quick is 2,000) on the threads backend with a
 * report: a random DAG, each task with up to two inputs, of four
 * functions taking 0 to 40 us, one task in 50,000 failing then passing on
 * retry. Writes the page, then opens it 5 times (1 with --quick) in
 * headless chromium (--dump-dom), reading the time from the navigation's
 * start to the page's "rendered" marker (data-rendered-ms, measured by
 * the page); a page of the same template with no task, opened as often,
 * is the baseline. Prints the file size, the time to write it, and the
 * medians. A second argument keeps a copy of the page at that path (and
 * a third, --no-open, stops there).
 * Needs chromium (scripts/quickstart.sh test installs it). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tgraph.h"
#include "workloads.h"

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void spin(double us) {
  double end = now() + us * 1e-6;
  while (now() < end) {
  }
}

/* A task: spins (its first argument mod 41) us; adds its inputs. */
static int work(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                tg_value **out) {
  int64_t seed = tg_value_int(args[0]);
  if (seed % 50000 == 49999 && tg_task_attempt(ctx) == 0)
    return tg_task_fail(ctx, TG_EINVAL, "transient failure of task %lld",
                        (long long)seed);
  spin((double)(seed % 41));
  int64_t s = seed;
  for (size_t i = 1; i < nargs; i++) s ^= tg_value_int(args[i]);
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

/* The run and its report in path; false on failure. */
static bool make_report(size_t n, const char *path, double *write_s) {
  static const char *const fns[] = {"parse", "transform", "score", "merge"};
  tg_registry *reg;
  tg_graph *g;
  if (tg_registry_new(&reg) != TG_OK) return false;
  for (int f = 0; f < 4; f++) tg_register(reg, fns[f], work, TG_FUNC_PURE);
  tg_graph_new(reg, &g);
  tg_node *outs = malloc(n * sizeof *outs);
  size_t nouts = 0;
  for (size_t i = 0; i < n; i++) {
    tg_arg a[3] = {tg_arg_value(tg_int((int64_t)i))};
    size_t na = 1;
    if (i > 0) a[na++] = tg_arg_node((tg_node)(next() % i));
    if (i > 1 && i % 3) a[na++] = tg_arg_node((tg_node)(i - 1 - next() % (i < 64 ? i : 64)));
    char key[32];
    snprintf(key, sizeof key, "t%zu", i);
    tg_node_opts o = {TG_NODE_OPTS_V1, key, 1, -1, 0, 0};
    tg_node id;
    if (tg_graph_add(g, fns[i % 4], a, na, &o, &id) != TG_OK) return false;
    if (i % 1000 == 999) outs[nouts++] = id;
  }
  tg_report *r;
  if (tg_report_new(g, outs, nouts, &r) != TG_OK) return false;
  tg_compute_stats st;
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "threads",
                        .workers = 8, .stats = &st, .on_event = tg_report_on_event,
                        .event_ctx = r};
  tg_value **res = calloc(nouts, sizeof *res);
  int rc = tg_compute(g, outs, nouts, &co, res);
  for (size_t i = 0; rc == TG_OK && i < nouts; i++) tg_value_unref(res[i]);
  tg_report_run run = {TG_REPORT_RUN_V1, "bench_report", "threads", 8, rc,
                       rc != TG_OK ? tg_graph_errmsg(g) : NULL, &st};
  tg_report_finish(r, &run);
  double t0 = now();
  tg_error err;
  tg_error_clear(&err);
  bool ok = tg_report_write(r, path, &err) == TG_OK;
  *write_s = now() - t0;
  if (!ok) fprintf(stderr, "bench_report: %s\n", err.msg);
  if (rc != TG_OK) fprintf(stderr, "bench_report: the run failed: %s\n", tg_graph_errmsg(g));
  tg_report_free(r);
  free(res);
  free(outs);
  tg_graph_free(g);
  tg_registry_free(reg);
  return ok && rc == TG_OK;
}

/* Open path in headless chromium with a fresh profile; the page's own
 * time to its rendered marker in ms (-1: none), and the browser's whole
 * run in *wall_ms. */
static char steps[512]; /* the page's time per step, last opening */

static double open_ms(const char *dir, const char *path, double *wall_ms) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd,
           "rm -rf %s/profile && timeout 120 chromium --headless --no-sandbox "
           "--disable-gpu --no-first-run --user-data-dir=%s/profile "
           "--window-size=1280,1600 --dump-dom file://%s 2>/dev/null",
           dir, dir, path);
  double t0 = now();
  FILE *p = popen(cmd, "r");
  if (p == NULL) return -1;
  static char buf[1 << 16];
  size_t len = fread(buf, 1, sizeof buf - 1, p); /* the <html ...> tag */
  buf[len] = '\0';
  while (fread(cmd, 1, sizeof cmd, p) > 0) {
  }
  pclose(p);
  *wall_ms = (now() - t0) * 1e3;
  const char *st = strstr(buf, "data-render-steps=\"");
  if (st) snprintf(steps, sizeof steps, "%.*s", (int)strcspn(st + 19, "\""), st + 19);
  const char *at = strstr(buf, "data-rendered-ms=\"");
  return at ? atof(at + 18) : -1;
}

int main(int argc, char **argv) {
  bench_set_name("bench_report");
  bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
  double scale = argc > 1 && !quick ? atof(argv[1]) : 1.0;
  size_t n = quick ? 2000 : (size_t)(100000 * (scale > 0 ? scale : 1.0));
  int reps = quick ? 1 : 5;
  char dir[] = "/tmp/bench-report-XXXXXX";
  if (mkdtemp(dir) == NULL) return 1;
  char page[128], empty[128];
  snprintf(page, sizeof page, "%s/run.html", dir);
  snprintf(empty, sizeof empty, "%s/empty.html", dir);
  double write_s, ignore;
  if (!make_report(n, page, &write_s) || !make_report(0, empty, &ignore)) return 1;
  if (argc > 2) {
    char cp[1024];
    snprintf(cp, sizeof cp, "cp %s '%s'", page, argv[2]);
    if (system(cp) != 0) return 1;
    if (argc > 3 && strcmp(argv[3], "--no-open") == 0) reps = 0;
  }
  struct stat sb;
  stat(page, &sb);
  printf("bench_report: %zu tasks, report %.2f MB (%.0f bytes/task), written in %.3f s\n",
         n, (double)sb.st_size / 1e6, (double)sb.st_size / (double)n, write_s);
  char rm[200];
  snprintf(rm, sizeof rm, "rm -rf %s", dir);
  if (reps == 0) return system(rm) != 0;
  if (access("/usr/bin/chromium", X_OK) != 0) {
    fprintf(stderr, "bench_report: no chromium (scripts/quickstart.sh test installs it)\n");
    return system(rm) != 0 || 1;
  }
  double t_page[5], w_page[5], t_base[5], w_base[5];
  for (int i = 0; i < reps; i++) { /* interleaved: the same noise for both */
    t_base[i] = open_ms(dir, empty, &w_base[i]);
    t_page[i] = open_ms(dir, page, &w_page[i]);
    bench_check(t_page[i] >= 0 && t_base[i] >= 0, "the page did not render");
  }
  printf("bench_report: the page's steps in ms, last opening: %s\n", steps);
  double mp = bench_median(t_page, reps), mb = bench_median(t_base, reps);
  double wp = bench_median(w_page, reps), wb = bench_median(w_base, reps);
  printf("bench_report: open to rendered marker, median of %d: %.0f ms "
         "(empty report: %.0f ms, ratio %.1f)\n", reps, mp, mb, mp / (mb > 0 ? mb : 1));
  printf("bench_report: whole headless chromium run, median of %d: %.0f ms "
         "(empty report: %.0f ms)\n", reps, wp, wb);
  if (system(rm) != 0) return 1;
  return bench_failed;
}
