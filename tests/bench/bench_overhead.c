/* tests/bench/bench_overhead.c: the scheduler's cost per task on tiny
 * tasks (bench_graph's W1-W3) on sync and threads:2, measured against
 * another build of the library in the same run.
 *   bench_overhead [--rounds N] [--against LIBDIR]
 * Each round runs in a child process: W1 (10,000 independent inc tasks and
 * a sum), W2 (a chain of 2,000 incs) and W3 (a pairwise sum of 4,096
 * leaves), median of 15 each, us per task, graph building included. With
 * --against, rounds alternate between the libtgraph.so this program was
 * linked with and the one in LIBDIR (through LD_LIBRARY_PATH, which comes
 * before the program's RUNPATH), so both see the same machine load; the
 * table gives the medians over rounds and their ratio. It links only the
 * public API for that reason: any build of the library since its first
 * release runs it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "workloads.h"

#define NW 6 /* W1-W3 on sync, then on threads:2 */
static const char *const names[NW] = {"W1 sync", "W2 sync", "W3 sync",
                                      "W1 threads:2", "W2 threads:2", "W3 threads:2"};

/* The child: one round, NW figures on one line. */
static int child(void) {
  bench_set_name("bench_overhead");
  tg_registry *reg = bench_registry();
  const char *backends[2] = {"sync", "threads"};
  for (int b = 0; b < 2; b++) {
    tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = backends[b],
                           .workers = b ? 2 : 1};
    tg_executor *ex = NULL;
    if (tg_executor_new(reg, &eo, &ex, NULL) != TG_OK) return 1;
    printf("%.5f %.5f %.5f ", bench_median_of(15, bench_w1, reg, ex, 10000),
           bench_median_of(15, bench_w2, reg, ex, 2000),
           bench_median_of(15, bench_w3, reg, ex, 4096));
    tg_executor_free(ex);
  }
  printf("\n");
  tg_registry_free(reg);
  return bench_failed ? 1 : 0;
}

/* Run one round in a child with LD_LIBRARY_PATH=libdir (NULL: as linked);
 * false when it failed. */
static bool round_of(const char *self, const char *libdir, double out[NW]) {
  int fd[2];
  if (pipe(fd) != 0) return false;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(fd[1], 1);
    close(fd[0]);
    close(fd[1]);
    if (libdir) setenv("LD_LIBRARY_PATH", libdir, 1);
    else unsetenv("LD_LIBRARY_PATH");
    execl(self, self, "--child", (char *)NULL);
    _exit(127);
  }
  close(fd[1]);
  char buf[512];
  size_t n = 0;
  ssize_t k;
  while (n < sizeof buf - 1 && (k = read(fd[0], buf + n, sizeof buf - 1 - n)) > 0)
    n += (size_t)k;
  buf[n] = '\0';
  close(fd[0]);
  int st;
  if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st))
    return false;
  char *p = buf;
  for (int i = 0; i < NW; i++) {
    char *end;
    out[i] = strtod(p, &end);
    if (end == p) return false;
    p = end;
  }
  return true;
}

int main(int argc, char **argv) {
  if (argc == 2 && strcmp(argv[1], "--child") == 0) return child();
  int rounds = 15;
  const char *against = NULL;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--rounds") == 0 && i + 1 < argc && atoi(argv[i + 1]) > 0)
      rounds = atoi(argv[++i]);
    else if (strcmp(argv[i], "--against") == 0 && i + 1 < argc)
      against = argv[++i];
    else {
      fprintf(stderr, "usage: %s [--rounds N] [--against LIBDIR]\n", argv[0]);
      return 2;
    }
  }
  char self[4096];
  ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
  if (sl <= 0) return 1;
  self[sl] = '\0';
  double *mine = malloc(sizeof(double) * NW * (size_t)rounds);
  double *base = malloc(sizeof(double) * NW * (size_t)rounds);
  if (!mine || !base) return 1;
  for (int r = 0; r < rounds; r++) { /* alternate, so load hits both alike */
    double a[NW], b[NW];
    if (!round_of(self, NULL, a) || (against && !round_of(self, against, b))) {
      fprintf(stderr, "bench_overhead: round %d failed\n", r + 1);
      return 1;
    }
    for (int i = 0; i < NW; i++) {
      mine[i * rounds + r] = a[i];
      if (against) base[i * rounds + r] = b[i];
    }
  }
  printf("| workload (us/task, median of %d rounds) | this build |%s\n", rounds,
         against ? " against | ratio |" : "");
  printf("|---|---|%s\n", against ? "---|---|" : "");
  for (int i = 0; i < NW; i++) {
    double m = bench_median(mine + i * rounds, rounds);
    if (!against) {
      printf("| %s | %.4f |\n", names[i], m);
      continue;
    }
    double b = bench_median(base + i * rounds, rounds);
    printf("| %s | %.4f | %.4f | %.3f |\n", names[i], m, b, m / b);
  }
  free(mine);
  free(base);
  return 0;
}
