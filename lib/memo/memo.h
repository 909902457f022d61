/* lib/memo/memo.h: memoization of a run's tasks in a tg_cache: which
 * tasks are looked up before the run (top-down), which results are
 * stored after their call, and the cheap test on the hot path that
 * decides whether a call is timed.
 *
 * Policy (documented for users in graph.h, "Memoization"):
 *   - a node is cacheable when tg_node_opts.cache is 1, or -1 and its
 *     function is pure; its key must also be usable (no impure input, a
 *     file source's file readable: keyer.c);
 *   - lookups: while compiling the plan, each cacheable node reached
 *     from the outputs through misses is looked up when its function has
 *     entries in the cache (or the node has cache = 1); a hit is a leaf
 *     of the plan, so nothing upstream of it runs or is loaded;
 *   - stores: a result is stored when its call took at least the cache's
 *     threshold (tg__cache_min_seconds; every result when negative;
 *     always for cache = 1 and for forced nodes);
 *   - forcing: forced nodes and their dependents are never looked up;
 *   - a timed call whose result is not stored leaves a note (why) on its
 *     function (tg__memo_fn), and the run's counts and notes go to the
 *     cache as one record, at its end (tg__memo_record).
 *
 * Timing every call would cost more than a trivial task (two clock reads
 * are ~40 ns here, a W1 task ~120 ns), so calls of a function that has
 * been timed TG__MEMO_STREAK times in a row at under an eighth of the
 * threshold are timed one in TG__MEMO_SAMPLE only (per worker); a sampled
 * call over that resets the streak and is not stored (on a busy machine
 * it is most likely a preempted call), but the function's calls are then
 * all timed again. A slow call of such a function that is not sampled is
 * not stored: the price of the fast path.
 *
 * A function gets looked up as soon as it has one entry, so a trivial
 * call preempted past the threshold among its first timed calls (before
 * a streak) makes its later nodes cost a lookup each (~1 us); clearing
 * the cache forgets it.
 *
 * The memo knows graphs, keys and the cache, not the scheduler: the
 * scheduler (sched/) calls it while it compiles a plan and runs tasks.
 *
 * Thread safety: lookups run on the compiling thread before the run
 * starts; tg__memo_timed and tg__memo_done on any worker; the keyer is
 * guarded by mu, counters are atomics.
 */
#ifndef TG_MEMO_MEMO_H
#define TG_MEMO_MEMO_H

#include <pthread.h>
#include <stdatomic.h>

#include "cache/cache_memo.h"
#include "keyer.h"

typedef struct tg__memo tg__memo;

#define TG__MEMO_STREAK 16
#define TG__MEMO_SAMPLE 64

/* Per function of a run. The note is the function's, not each node's:
 * noting a call is then two relaxed stores on the task's path (no
 * hashing, lock or allocation), and the run queues one note per
 * function at its end (tg__memo_record). */
typedef struct tg__memo_fn {
  _Atomic uint32_t fast; /* timed calls in a row well under the threshold */
  uint8_t lookup;        /* 0 not decided, 1 look up, 2 no entries */
  _Atomic uint8_t note;  /* tg_explain_note of its last timed call not
                            stored, or TG_NOTE_NONE */
  _Atomic uint8_t stored;/* 1: a result of it was stored in this run */
  _Atomic double note_seconds; /* that call's time */
  const tg_func *_Atomic func; /* set with note or stored */
} tg__memo_fn;

struct tg__memo {
  tg_cache *cache;          /* borrowed */
  double min_seconds;       /* store threshold; < 0: store everything */
  bool probe;               /* dry run: lookups only test presence */
  bool usable;              /* the cache is usable in this process (not
                               a child of fork()), checked once */
  pthread_mutex_t mu;       /* guards keyer */
  tg__keyer keyer;
  tg__memo_fn *fns;         /* per registry function (tg_func.index);
                               allocated with the memo */
  size_t nfns;
  tg__cache_tally *tally;   /* this run's committed stores; made by the
                               first store (under mu) */
  double *t0;               /* per task of the plan: start of a timed
                               call run out of process, or 0 (the
                               scheduler's tg__task_begin/end); NULL
                               until needed */
  uint8_t *forced;          /* per graph node: 2 forced, 1 depending on a
                               forced node, 0 neither; NULL: none forced */
  uint64_t computed;        /* tasks of the plan cacheable by policy
                               (tg__memo_cacheable) and not served from
                               the cache: the run's misses, counted while
                               the plan is compiled (runplan.c) */
  _Atomic uint64_t hits, misses, stores, bytes_read;
};

/* A memo for runs of g on cache (probe: a dry run). NULL when out of
 * memory (the run then goes without the cache). */
tg__memo *tg__memo_new(const tg_graph *g, tg_cache *cache, bool probe);
void tg__memo_free(tg__memo *m); /* m may be NULL */
/* Make room to time remote calls of a plan of ntasks; false when out of
 * memory (they are then not timed: not stored). */
bool tg__memo_remote_timing(tg__memo *m, uint32_t ntasks);

/* Force nodes force[0..n) and everything depending on them (before the
 * plan is compiled). TG_OK, TG_EINVAL (a node out of range: msg says
 * which) or TG_ENOMEM. */
int tg__memo_force(tg__memo *m, const tg_graph *g, const tg_node *force, size_t n,
                   char *msg, size_t msize);

static inline bool tg__memo_forced(const tg__memo *m, uint32_t node) {
  return m->forced && m->forced[node];
}

/* Whether node nd may be cached by policy (before its key is known). */
static inline bool tg__memo_cacheable(const tg__gnode *nd) {
  return nd->cache == 1 || (nd->cache < 0 && (nd->fn->flags & TG_FUNC_PURE));
}

/* Whether node nd might be looked up: cacheable, and opted in or its
 * function not known to have no entries. The inline test that keeps
 * compiling a plan cheap when nothing is looked up. */
static inline bool tg__memo_may_look_up(const tg__memo *m, const tg__gnode *nd) {
  return tg__memo_cacheable(nd) && (nd->cache == 1 || m->fns[nd->fn->index].lookup != 2);
}

/* Look node n of g up (compile time). True when it is served from the
 * cache: *out is the value (NULL for a probe). */
bool tg__memo_lookup(tg__memo *m, const tg_graph *g, uint32_t n,
                     tg_value **out /* OUT */);

/* Whether a call of node `node` (nd) is to be timed (and its result
 * perhaps stored). *sample: the calling worker's countdown to its next
 * sampled call, started at TG__MEMO_SAMPLE (one per worker: no sharing). */
static inline bool tg__memo_timed(tg__memo *m, uint32_t *sample, uint32_t node,
                                  const tg__gnode *nd) {
  if (!tg__memo_cacheable(nd)) return false;
  if (nd->cache == 1 || m->min_seconds < 0 || tg__memo_forced(m, node)) return true;
  if (atomic_load_explicit(&m->fns[nd->fn->index].fast, memory_order_relaxed) <
      TG__MEMO_STREAK)
    return true;
  if (--*sample) return false;
  *sample = TG__MEMO_SAMPLE;
  return true;
}

/* A timed call of node `node` of g (the memo's graph) returned v
 * (borrowed) after `seconds`: learn, and store v if it is worth it. */
void tg__memo_done(tg__memo *m, const tg_graph *g, uint32_t node, tg_value *v,
                   double seconds);

/* After the run and the commit of its stores: queue the run's record
 * (counts, notes, failed stores) for the cache. */
void tg__memo_record(tg__memo *m);

#endif /* TG_MEMO_MEMO_H */
