/* tests/bench/workloads.h: what the graph and tcp benchmarks share: result
 * checks, medians, the benchmarks' task functions, and the timed W1, W3,
 * W4 and WA workloads (plus W4's plain-pthreads baseline), so both
 * programs measure the very same graphs.
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
#include <stdint.h>

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

/* A new registry with inc(x), ident(x), add(a, b), sum(...) and
 * mc_pi(seed, samples), all pure, version "1"; NULL when out of memory.
 * The caller frees it with tg_registry_free(). Workers serving the
 * benchmarks build theirs with this too. */
tg_registry *bench_registry(void);

/* Compute outs[0..n-1] of g on ex (NULL: sync) into res (the caller unrefs
 * each); a failure is reported and leaves res NULL. */
void bench_run(tg_graph *g, const tg_node *outs, size_t n, tg_executor *ex,
               tg_value **res /* OUT */);

/* Compute one int node; INT64_MIN after a failure. */
int64_t bench_run_int(tg_graph *g, tg_node out, tg_executor *ex);

/* W1's graph in g: n independent inc(i) tasks and a sum of all (n + 1
 * tasks, result n(n+1)/2); returns the sum's node. */
tg_node bench_w1_graph(tg_graph *g, int n);

/* W1 (bench_w1_graph) built and computed; us per task. */
double bench_w1(tg_registry *reg, tg_executor *ex, int n);

/* W2: a chain of n inc tasks; us per task. */
double bench_w2(tg_registry *reg, tg_executor *ex, int n);

/* W3: n leaves (a power of two) returning their index, summed pairwise
 * (2n - 1 tasks); us per task. */
double bench_w3(tg_registry *reg, tg_executor *ex, int n);

/* W4: `tasks` (at most 64) Monte-Carlo pi estimates of `samples` each;
 * seconds. */
double bench_w4(tg_registry *reg, tg_executor *ex, int tasks, int64_t samples);

/* W4's machine limit: the same pi work split over two plain pthreads,
 * against all of it on one thread; the speedup (one / two). */
double bench_raw_w4(int tasks, int64_t samples);

/* WA: ident(a) computed and the array back (spot-checked against a);
 * seconds. a is borrowed. */
double bench_wa(tg_registry *reg, tg_executor *ex, tg_value *a);

/* A workload timed by one size, as bench_w1 and bench_w3. */
typedef double (*bench_workload)(tg_registry *reg, tg_executor *ex, int size);

/* fn once as a warm-up, then the median of `reps` (at most 64) runs. */
double bench_median_of(int reps, bench_workload fn, tg_registry *reg,
                       tg_executor *ex, int size);

#endif /* TG_BENCH_WORKLOADS_H */
