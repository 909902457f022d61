/* tests/bench/bench_graphjson.c: how fast the graph.json reader loads a
 * big file. Writes a graph.json of N tasks (default 1,000,000; argv[1]
 * scales it) in two shapes, then times tg_graphjson_load() on each:
 *   random  each task adds two refs to random earlier tasks and a
 *           constant (the worst case for caches)
 *   local   each task refs a nearby earlier task, half of them through a
 *           nested list (one tg.build node each)
 * Prints tasks, file size, wall and CPU seconds, and nodes built. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "tgraph.h"
#include "tgraph/builtins.h"
#include "tgraph/graphjson.h"

static uint64_t rng = 88172645463325252u;
static uint64_t next(void) {
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void write_graph(const char *path, size_t n, int local) {
  FILE *f = fopen(path, "w");
  if (f == NULL) exit(1);
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
  fclose(f);
}

static double wall(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static double cpu(void) {
  struct rusage u;
  getrusage(RUSAGE_SELF, &u);
  return (double)u.ru_utime.tv_sec + (double)u.ru_utime.tv_usec * 1e-6 +
         (double)u.ru_stime.tv_sec + (double)u.ru_stime.tv_usec * 1e-6;
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  size_t n = (size_t)(1000000 * scale);
  if (n < 2) n = 2;
  char path[] = "/tmp/bench_graphjson_XXXXXX";
  int fd = mkstemp(path);
  if (fd < 0) return 1;
  close(fd);
  tg_registry *reg;
  if (tg_registry_new(&reg) != TG_OK || tg_registry_add_builtins(reg) != TG_OK)
    return 1;
  const char *shapes[] = {"random", "local"};
  for (int s = 0; s < 2; s++) {
    write_graph(path, n, s);
    FILE *f = fopen(path, "r");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    tg_graph *g;
    tg_error err;
    double w0 = wall(), c0 = cpu();
    int rc = tg_graphjson_load(path, reg, NULL, &g, NULL, &err);
    double w = wall() - w0, c = cpu() - c0;
    if (rc != TG_OK) {
      fprintf(stderr, "load failed: %s\n", err.msg);
      unlink(path);
      return 1;
    }
    printf("%-6s %8zu tasks  %6.1f MB  load %.3f s wall, %.3f s cpu  "
           "(%zu nodes)\n", shapes[s], n, (double)size / 1e6, w, c,
           tg_graph_size(g));
    tg_graph_free(g);
  }
  unlink(path);
  tg_registry_free(reg);
  return 0;
}
