/* tests/bench/bench_graphjson.c: how fast, and in how much memory, the
 * graph.json reader loads a big file. Writes graph.json files of about N
 * tasks (default 1,000,000; argv[1] scales N) and loads each with
 * tg_graphjson_load() (asking for the info, as `tgraph run` does):
 *   sums      N leaves identity(i), summed in groups of 1,000 (one sum
 *             task per group, its refs nested in a list, so one tg.build
 *             node each) and a total over the groups; written as
 *             Python's json.dump writes it, in both layouts:
 *               one-line  json.dump(g, f): no newline at all
 *               indented  json.dump(g, f, indent=2)
 *   random    each task adds two refs to random earlier tasks and a
 *             constant (the worst case for caches), a task a line
 *   local     each task refs a nearby earlier task, half of them through
 *             a nested list, a task a line
 * Every load runs in a fresh process (this program run again with
 * --load FILE), so its peak resident memory is the whole process's
 * (getrusage of the child: the library, the file's pages, the parse and
 * the graph). Load times are medians of REPS runs; peak bytes are per
 * task of the file. The baseline, measured in the same run, is Python's
 * json.load of the same file (median of REPS): the ratio says how the
 * reader, which also checks and builds the graph, compares with a plain
 * parse. Targets for the sums graph: at most 0.5 s and 250 bytes a task
 * in both layouts. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tgraph.h"
#include "tgraph/builtins.h"
#include "tgraph/graphjson.h"
#include "workloads.h"

#define REPS 5
#define GROUP 1000

static uint64_t rng = 88172645463325252u;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

/* Separators as Python's json.dump writes them: item and key separators,
 * and the newline-plus-indent before an item at depth `depth`. */
typedef struct layout {
  FILE *f;
  int indent; /* 0: one line */
} layout;

static void nl(const layout *l, int depth) {
  if (l->indent == 0) return;
  fputc('\n', l->f);
  for (int i = 0; i < depth * l->indent; i++) fputc(' ', l->f);
}

/* Before the item at depth `depth`: ", " or "," + newline, unless first. */
static void item(const layout *l, int depth, int first) {
  if (!first) fputs(l->indent ? "," : ", ", l->f);
  nl(l, depth);
}

/* "KEY": {"fn": FN, "args": [...]}, the task object open at "args": [ */
static void task_open(const layout *l, const char *key, const char *fn,
                      int first) {
  item(l, 2, first);
  fprintf(l->f, "\"%s\": {", key);
  nl(l, 3);
  fprintf(l->f, "\"fn\": \"%s\",", fn);
  if (l->indent == 0) fputc(' ', l->f);
  nl(l, 3);
  fputs("\"args\": [", l->f);
}

static void task_close(const layout *l) {
  nl(l, 3);
  fputc(']', l->f);
  nl(l, 2);
  fputc('}', l->f);
}

/* A ref object at depth `depth` as json.dump(indent=...) writes it. */
static void ref(const layout *l, int depth, const char *prefix, size_t i,
                int first) {
  item(l, depth, first);
  fputc('{', l->f);
  nl(l, depth + 1);
  fprintf(l->f, "\"ref\": \"%s%zu\"", prefix, i);
  nl(l, depth);
  fputc('}', l->f);
}

/* The sums graph of n leaves; returns the number of tasks. */
static size_t write_sums(FILE *f, size_t n, int indent) {
  layout l = {f, indent};
  size_t groups = (n + GROUP - 1) / GROUP;
  fputc('{', f);
  nl(&l, 1);
  fprintf(f, "\"tgraph\": 1%s", indent ? "," : ", ");
  nl(&l, 1);
  fputs("\"tasks\": {", f);
  char key[32];
  for (size_t i = 0; i < n; i++) {
    snprintf(key, sizeof key, "l%zu", i);
    task_open(&l, key, "identity", i == 0);
    item(&l, 4, 1);
    fprintf(f, "%zu", i);
    task_close(&l);
  }
  for (size_t g = 0; g < groups; g++) {
    snprintf(key, sizeof key, "g%zu", g);
    task_open(&l, key, "sum", 0);
    item(&l, 4, 1);
    fputc('[', f);
    for (size_t i = g * GROUP; i < n && i < (g + 1) * GROUP; i++)
      ref(&l, 5, "l", i, i == g * GROUP);
    nl(&l, 4);
    fputc(']', f);
    task_close(&l);
  }
  task_open(&l, "total", "sum", 0);
  item(&l, 4, 1);
  fputc('[', f);
  for (size_t g = 0; g < groups; g++) ref(&l, 5, "g", g, g == 0);
  nl(&l, 4);
  fputc(']', f);
  task_close(&l);
  nl(&l, 1);
  fprintf(f, "}%s", indent ? "," : ", ");
  nl(&l, 1);
  fputs("\"outputs\": [", f);
  nl(&l, 2);
  fputs("\"total\"", f);
  nl(&l, 1);
  fputc(']', f);
  nl(&l, 0);
  fputc('}', f);
  return n + groups + 1;
}

static size_t write_lines(FILE *f, size_t n, int local) {
  fprintf(f, "{\"tgraph\": 1,\n \"tasks\": {\n  \"t0\": {\"fn\": \"identity\", "
             "\"args\": [0]}");
  for (size_t i = 1; i < n; i++) {
    if (!local) {
      fprintf(f, ",\n  \"t%zu\": {\"fn\": \"add\", \"args\": [{\"ref\": \"t%llu\"}, "
                 "{\"ref\": \"t%llu\"}, %zu]}", i,
              (unsigned long long)(next() % i), (unsigned long long)(next() % i), i);
    } else {
      size_t j = i - 1 - (size_t)(next() % (i < 100 ? i : 100));
      if (i % 2)
        fprintf(f, ",\n  \"t%zu\": {\"fn\": \"add\", \"args\": [{\"ref\": \"t%zu\"}, 1]}",
                i, j);
      else
        fprintf(f, ",\n  \"t%zu\": {\"fn\": \"concat\", \"args\": [[{\"ref\": "
                   "\"t%zu\"}, \"x\"]], \"cache\": false}", i, j);
    }
  }
  fprintf(f, "\n },\n \"outputs\": [\"t%zu\"]\n}\n", n - 1);
  return n;
}

static double wall(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* Child mode: load path once with its info, print the seconds and the
 * number of nodes built. */
static int load_once(const char *path) {
  tg_registry *reg;
  if (tg_registry_new(&reg) != TG_OK || tg_registry_add_builtins(reg) != TG_OK)
    return 1;
  tg_graph *g;
  tg_graphjson_info *info;
  tg_error err;
  double w0 = wall();
  int rc = tg_graphjson_load(path, reg, NULL, &g, &info, &err);
  double w = wall() - w0;
  if (rc != TG_OK) {
    fprintf(stderr, "bench_graphjson: load failed: %s\n", err.msg);
    return 1;
  }
  printf("%.6f %zu\n", w, tg_graph_size(g));
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  tg_registry_free(reg);
  return 0;
}

/* Run argv in a child with stdout into out; its peak RSS in bytes in
 * *peak. false when it could not run or failed. */
static bool run_child(char *const argv[], char *out, size_t size,
                      double *peak) {
  int fds[2];
  if (pipe(fds) != 0) return false;
  pid_t pid = fork();
  if (pid < 0) return false;
  if (pid == 0) {
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execvp(argv[0], argv);
    _exit(127);
  }
  close(fds[1]);
  size_t n = 0;
  ssize_t r;
  while (n + 1 < size && (r = read(fds[0], out + n, size - 1 - n)) != 0) {
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) break;
    n += (size_t)r;
  }
  out[n] = '\0';
  close(fds[0]);
  int status;
  struct rusage ru;
  while (wait4(pid, &status, 0, &ru) < 0 && errno == EINTR) {
  }
  *peak = (double)ru.ru_maxrss * 1024.0;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

static const char *self;

typedef struct figures {
  double load, peak, python, python_peak;
  size_t nodes;
  bool have_python;
} figures;

static bool measure(const char *path, bool python, figures *fg) {
  double t[REPS], p[REPS];
  char out[128];
  for (int r = 0; r < REPS; r++) {
    char *argv[] = {(char *)self, "--load", (char *)path, NULL};
    if (!run_child(argv, out, sizeof out, &p[r]) ||
        sscanf(out, "%lf %zu", &t[r], &fg->nodes) != 2) {
      fprintf(stderr, "bench_graphjson: loading %s failed\n", path);
      return false;
    }
  }
  fg->load = bench_median(t, REPS);
  fg->peak = bench_median(p, REPS);
  fg->have_python = false;
  if (!python) return true;
  for (int r = 0; r < REPS; r++) {
    char *argv[] = {"python3", "-c",
                    "import json, sys, time\n"
                    "t = time.perf_counter()\n"
                    "with open(sys.argv[1]) as f: json.load(f)\n"
                    "print(time.perf_counter() - t)\n",
                    (char *)path, NULL};
    if (!run_child(argv, out, sizeof out, &p[r]) ||
        sscanf(out, "%lf", &t[r]) != 1) {
      printf("(python3 json.load did not run: no baseline)\n");
      return true;
    }
  }
  fg->python = bench_median(t, REPS);
  fg->python_peak = bench_median(p, REPS);
  fg->have_python = true;
  return true;
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "--load") == 0) return load_once(argv[2]);
  self = "/proc/self/exe";
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  size_t n = (size_t)(1000000 * scale);
  if (n < 2) n = 2;
  char path[] = "/tmp/bench_graphjson_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return 1;
  close(fd);
  static const struct {
    const char *name;
    int kind, indent; /* kind 0: sums, 1: random, 2: local */
  } shapes[] = {{"sums, one-line", 0, 0},
                {"sums, indented", 0, 2},
                {"random, a task a line", 1, 0},
                {"local, a task a line", 2, 0}};
  printf("graph.json loads, median of %d, each in a fresh process; peak = "
         "the process's peak RSS per task\n\n", REPS);
  printf("| graph | tasks | MB | nodes | load s | peak B/task | "
         "python json.load s | load / json.load |\n");
  printf("|---|---|---|---|---|---|---|---|\n");
  int status = 0;
  for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
    FILE *f = fopen(path, "w");
    if (f == NULL) return 1;
    size_t ntasks = shapes[s].kind == 0
                        ? write_sums(f, n, shapes[s].indent)
                        : write_lines(f, n, shapes[s].kind == 2);
    long size = ftell(f);
    fclose(f);
    figures fg;
    if (!measure(path, shapes[s].kind == 0, &fg)) {
      status = 1;
      break;
    }
    printf("| %s | %zu | %.1f | %zu | %.3f | %.0f |", shapes[s].name, ntasks,
           (double)size / 1e6, fg.nodes, fg.load, fg.peak / (double)ntasks);
    if (fg.have_python)
      printf(" %.3f (peak %.0f B/task) | %.2f |\n", fg.python,
             fg.python_peak / (double)ntasks, fg.load / fg.python);
    else
      printf(" | |\n");
    fflush(stdout);
  }
  unlink(path);
  return status;
}
