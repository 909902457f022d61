/* tests/bench/workloads.h: what the benchmark programs share: result
 * checks, medians, the benchmarks' task functions, the timed W1, W2, W3,
 * W4 and WA workloads (plus W4's plain-pthreads baseline and a memcpy
 * baseline), the tree reduction's peak of live results, the
 * co-occurrence functions, and tcp workers on loopback, so every program
 * measures the very same graphs.
 *
 * Every workload builds its graph, computes it on an executor (NULL: the
 * sync scheduler in the calling thread), checks the result with
 * bench_check() and returns its time; the graph is built inside the
 * timing. A wrong result or a failed compute prints a line on stderr
 * prefixed with the program's name and sets bench_failed.
 *
 * Thread safety: none; call from the program's main thread (the task
 * functions themselves run on any worker).
 */
#ifndef TG_BENCH_WORKLOADS_H
#define TG_BENCH_WORKLOADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/registry.h"

/* 1 once any check or compute has failed: the exit status. */
extern int bench_failed;

/* Name error lines start with ("bench_graph"); borrowed, must stay valid. */
void bench_set_name(const char *prog);

/* When !ok: "PROG: wrong result: WHAT" on stderr, bench_failed = 1. */
void bench_check(bool ok, const char *what);

/* Median of v[0..n-1], n >= 1; sorts v in place. */
double bench_median(double *v, int n);

/* A new registry with inc(x), ident(x), add(a, b), sum(...),
 * mc_pi(seed, samples) and the co-occurrence functions below, all pure,
 * version "1"; NULL when out of memory. The caller frees it with
 * tg_registry_free(). Workers serving the benchmarks build theirs with
 * this too.
 *
 * Co-occurrence (the shape of GloVe's counting step: text files ->
 * per-file maps of word pairs -> merge -> top-k):
 *   cooc.count(path, window)  reads the file; words are runs of ASCII
 *                             letters, lowercased, cut to 32 letters;
 *                             each word pairs with each of the `window`
 *                             (1 to 16) words before it: {"a b": count},
 *                             the pair's words in byte order, a space
 *                             between
 *   cooc.merge(map...)        the sum of such maps
 *   cooc.top(map, k)          the k largest [pair, count], largest
 *                             first, ties by pair
 *   cooc.size(map)            [number of pairs, sum of the counts]
 */
tg_registry *bench_registry(void);

/* The whole file at path in a new buffer (the caller frees it; *len its
 * bytes), or NULL when it cannot be read. */
char *bench_read_file(const char *path, size_t *len /* OUT */);

/* How many pairs cooc.count counts in text (the sum of its map's counts),
 * computed without a map: the check of a co-occurrence run. */
int64_t bench_cooc_pairs(const char *text, size_t len, int window);

/* Compute outs[0..n-1] of g on ex (NULL: sync) into res (the caller unrefs
 * each); a failure is reported and leaves res NULL. */
void bench_run(tg_graph *g, const tg_node *outs, size_t n, tg_executor *ex,
               tg_value **res /* OUT */);

/* bench_run, and the compute's statistics into *st (may be NULL). */
void bench_run_stats(tg_graph *g, const tg_node *outs, size_t n, tg_executor *ex,
                     tg_value **res /* OUT */, tg_compute_stats *st /* OUT */);

/* Compute one int node; INT64_MIN after a failure. */
int64_t bench_run_int(tg_graph *g, tg_node out, tg_executor *ex);

/* W1's graph in g: n independent inc(i) tasks and a sum of all (n + 1
 * tasks, result n(n+1)/2); returns the sum's node. */
tg_node bench_w1_graph(tg_graph *g, int n);

/* W1 (bench_w1_graph) built and computed; us per task. */
double bench_w1(tg_registry *reg, tg_executor *ex, int n);

/* W2: a chain of n inc tasks; us per task. */
double bench_w2(tg_registry *reg, tg_executor *ex, int n);

/* W3's graph in g: n leaves ident(i) (n a power of two) summed pairwise
 * with add (2n - 1 tasks, result n(n-1)/2); returns the root. */
tg_node bench_w3_graph(tg_graph *g, int n);

/* W3: bench_w3_graph built and computed; us per task. */
double bench_w3(tg_registry *reg, tg_executor *ex, int n);

/* W3's tree of n leaves computed (result checked); the compute's
 * tg_compute_stats.peak_live, or 0 after a failure. */
size_t bench_tree_peak(tg_registry *reg, tg_executor *ex, int n);

/* W4: `tasks` (at most 64) Monte-Carlo pi estimates of `samples` each;
 * seconds. */
double bench_w4(tg_registry *reg, tg_executor *ex, int tasks, int64_t samples);

/* W4's machine limit: the same pi work split over two plain pthreads,
 * against all of it on one thread; the speedup (one / two). */
double bench_raw_w4(int tasks, int64_t samples);

/* WA: ident(a) computed and the array back (spot-checked against a);
 * seconds. a is borrowed. */
double bench_wa(tg_registry *reg, tg_executor *ex, tg_value *a);

/* Seconds of a memcpy of `bytes` between two buffers already in memory
 * (checked): the baseline of WA. */
double bench_memcpy_secs(char *dst, const char *src, size_t bytes);

/* ---- tcp workers on loopback ------------------------------------------------
 *
 * Forked worker processes, each serving bench_registry() through
 * tg_worker_serve() with one thread on 127.0.0.1 (a free port) and this
 * user's own key, until bench_tcp_stop(). Fork: start them before this
 * process has any executor, thread or ZeroMQ context (a child must not
 * inherit a running one); a child dies with its parent. */
#define BENCH_TCP_MAX 8
typedef struct bench_tcp {
  int n;                           /* workers started */
  pid_t pids[BENCH_TCP_MAX];       /* <= 0: not running */
  char ep[BENCH_TCP_MAX][128];     /* their addresses */
} bench_tcp;

/* Start n (1 to BENCH_TCP_MAX) workers; 0, or -1 with a line on stderr
 * (those started are stopped). */
int bench_tcp_start(bench_tcp *t, int n);

/* A tcp executor over reg connected to t's workers into *ex; 0, or -1
 * with a line on stderr. */
int bench_tcp_executor(const bench_tcp *t, tg_registry *reg,
                       tg_executor **ex /* OUT */);

/* Terminate and reap t's workers (free their executor first). */
void bench_tcp_stop(bench_tcp *t);

/* A workload timed by one size, as bench_w1 and bench_w3. */
typedef double (*bench_workload)(tg_registry *reg, tg_executor *ex, int size);

/* fn once as a warm-up, then the median of `reps` (at most 64) runs. */
double bench_median_of(int reps, bench_workload fn, tg_registry *reg,
                       tg_executor *ex, int size);

#endif /* TG_BENCH_WORKLOADS_H */
