/* tests/bench/bench_wstate.c: what per-worker state costs, on a
 * tokenizer-shaped map: 200 chunks, each tokenizing a text of 2,000 words
 * against a vocabulary whose load takes 200 ms. Printed as a markdown
 * table of wall times (median) and init counts, for
 *
 *   state  the vocabulary as a per-worker state (tg_registry_add_state):
 *          loaded once per worker that runs a chunk, freed at its end
 *   once   the usual hand-made way: a pthread_once in the task function,
 *          loading it once per process (the threads backend shares one)
 *
 * on threads:2 and processes:2. Each measurement runs in a fresh child
 * process (a process-wide pthread_once cannot be reset), from the
 * executor's start, so the load is inside the time and pool start-up
 * outside it.
 *
 *   bench_wstate [--quick]
 *
 * --quick: a 20 ms load and one repetition, as a smoke test. The exit
 * status is 1 when a result is wrong.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/registry.h"
#include "workloads.h"

#define CHUNKS 200
#define WORDS 2000  /* per text */
#define VOCAB 4096  /* words in the vocabulary */

static long load_ms = 200;
static atomic_int *inits; /* shared with worker processes */

/* ---- the vocabulary ---------------------------------------------------------- */

typedef struct vocab {
  char words[VOCAB][8]; /* "w0000".."w0fff", sorted */
} vocab;

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0) {
  }
}

static vocab *vocab_load(void) {
  sleep_ms(load_ms); /* reading a model or a vocabulary file */
  vocab *v = malloc(sizeof *v);
  if (!v) return NULL;
  for (int i = 0; i < VOCAB; i++) snprintf(v->words[i], sizeof v->words[i], "w%04x", i);
  atomic_fetch_add(inits, 1);
  return v;
}

static int vocab_id(const vocab *v, const char *w) {
  int lo = 0, hi = VOCAB - 1;
  while (lo <= hi) {
    int mid = (lo + hi) / 2, c = strcmp(v->words[mid], w);
    if (c == 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/* Text i's token ids summed (the text is made from i, not passed). */
static int64_t tokenize(const vocab *v, int64_t i) {
  uint64_t s = (uint64_t)i * 0x9e3779b97f4a7c15u + 1;
  int64_t sum = 0;
  char w[8];
  for (int k = 0; k < WORDS; k++) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    snprintf(w, sizeof w, "w%04x", (unsigned)(s % VOCAB));
    sum += vocab_id(v, w);
  }
  return sum;
}

/* ---- the two ways --------------------------------------------------------------- */

static int state_init(void *user, void **state, tg_error *err) {
  (void)user;
  *state = vocab_load();
  if (*state) return TG_OK;
  snprintf(err->msg, sizeof err->msg, "out of memory for the vocabulary");
  return TG_ENOMEM;
}

static void state_teardown(void *user, void *state) {
  (void)user;
  free(state);
}

static int tok_state(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)n;
  *out = tg_int(tokenize(tg_task_state(ctx), tg_value_int(args[0])));
  return TG_OK;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static vocab *global_vocab; /* leaked at exit, as such code does */

static void load_global(void) { global_vocab = vocab_load(); }

static int tok_once(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)n;
  pthread_once(&once, load_global);
  if (!global_vocab) return tg_task_fail(ctx, TG_ENOMEM, "no vocabulary");
  *out = tg_int(tokenize(global_vocab, tg_value_int(args[0])));
  return TG_OK;
}

/* ---- one measurement, in a child process ----------------------------------------- */

typedef struct result {
  double secs;
  int inits;
  int64_t total; /* of all token ids: the check */
} result;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static result measure_here(const char *backend, bool with_state) {
  result res = {0, 0, INT64_MIN};
  tg_registry *reg;
  if (tg_registry_new(&reg) != TG_OK) return res;
  tg_state_def sd = {TG_STATE_DEF_V1, "vocab", state_init, state_teardown, NULL};
  tg_func_def fd = {.version = TG_FUNC_DEF_V2, .name = "tok", .flags = TG_FUNC_PURE,
                    .nargs = 1};
  fd.fn = with_state ? tok_state : tok_once;
  fd.state = with_state ? "vocab" : NULL;
  if (tg_registry_add_state(reg, &sd) != TG_OK || tg_registry_add(reg, &fd, NULL) != TG_OK)
    return res;
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend, .workers = 2};
  tg_executor *ex;
  tg_graph *g;
  if (tg_executor_new(reg, &eo, &ex, NULL) != TG_OK) return res;
  if (tg_graph_new(reg, &g) != TG_OK) return res;
  double t0 = now();
  tg_arg in[CHUNKS];
  for (int i = 0; i < CHUNKS; i++) in[i] = tg_arg_value(tg_int(i));
  tg_node m;
  tg_value *r[1] = {NULL};
  if (tg_graph_map(g, "tok", in, CHUNKS, NULL, 0, 1, NULL, &m) == TG_OK)
    bench_run(g, &m, 1, ex, r);
  res.secs = now() - t0;
  if (r[0] && tg_list_len(r[0]) == CHUNKS) {
    res.total = 0;
    for (size_t i = 0; i < CHUNKS; i++) res.total += tg_value_int(tg_list_get(r[0], i));
  }
  tg_value_unref(r[0]);
  tg_graph_free(g);
  tg_executor_free(ex);
  tg_registry_free(reg);
  res.inits = atomic_load(inits);
  return res;
}

static result measure(const char *backend, bool with_state) {
  result res = {0, 0, INT64_MIN};
  int fds[2];
  if (pipe(fds) != 0) return res;
  atomic_store(inits, 0);
  pid_t pid = fork();
  if (pid == 0) {
    close(fds[0]);
    res = measure_here(backend, with_state);
    ssize_t w = write(fds[1], &res, sizeof res);
    _exit(w == (ssize_t)sizeof res ? 0 : 1);
  }
  close(fds[1]);
  if (pid > 0 && read(fds[0], &res, sizeof res) != (ssize_t)sizeof res)
    res.total = INT64_MIN;
  close(fds[0]);
  if (pid > 0) waitpid(pid, NULL, 0);
  return res;
}

int main(int argc, char **argv) {
  int reps = 5;
  bench_set_name("bench_wstate");
  if (argc == 2 && strcmp(argv[1], "--quick") == 0) {
    load_ms = 20;
    reps = 1;
  } else if (argc != 1) {
    fprintf(stderr, "usage: %s [--quick]\n", argv[0]);
    return 2;
  }
  inits = mmap(NULL, sizeof *inits, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
               -1, 0);
  if (inits == MAP_FAILED) return 1;
  static const char *backends[] = {"threads", "processes"};
  int64_t want = INT64_MIN;
  printf("200-chunk tokenizer map, vocabulary load %ld ms, median of %d\n\n", load_ms, reps);
  printf("| backend     | vocabulary        | wall ms | loads |\n");
  printf("|-------------|-------------------|--------:|------:|\n");
  for (int b = 0; b < 2; b++) {
    double secs[2][16];
    int loads[2] = {0, 0};
    for (int k = 0; k < reps; k++) /* alternating: load on the machine hits both */
      for (int mode = 0; mode < 2; mode++) {
        result r = measure(backends[b], mode == 0);
        if (want == INT64_MIN) want = r.total;
        bench_check(r.total != INT64_MIN && r.total == want, "token id total");
        bench_check(r.inits >= 1 && r.inits <= 2, "loads between 1 and 2");
        secs[mode][k] = r.secs;
        if (r.inits > loads[mode]) loads[mode] = r.inits;
      }
    for (int mode = 0; mode < 2; mode++)
      printf("| %-11s | %-17s | %7.0f | %5d |\n", backends[b],
             mode == 0 ? "per-worker state" : "pthread_once",
             bench_median(secs[mode], reps) * 1e3, loads[mode]);
  }
  return bench_failed;
}
