/* lib/backends/threads.c: the threads backend: a pool of pthreads with
 * per-worker work-stealing deques and no lock on the hot path.
 *
 * A worker runs a task, which finishes on the spot (tg__task_exec): the
 * most urgent task it made ready runs next without touching any queue,
 * the others go on the worker's own deque (LIFO: depth-first). An idle
 * worker takes work, in this order, from the injection queue (tasks
 * submitted from outside the pool; each taker gets a contiguous block of
 * priorities, about 1/workers of what is queued), then steals from the
 * top of other workers' deques, spinning briefly, then sleeps.
 *
 * Priorities: tasks of runs with priorities (tg__task_prioritized) never
 * enter the deques, whose LIFO order knows nothing of them: they wait in
 * one heap shared by the pool, ordered by tg__task_before, and a worker
 * choosing its next task compares the heap's top with the task it would
 * run otherwise (whose priority is 0). So with one worker, ready tasks
 * start strictly by priority; with several, each start takes the most
 * urgent task of the heap. The heap costs a lock per task of such runs;
 * other runs pay one relaxed load of its count per task.
 *
 * Sleeping is an event count on `epoch` (a futex word): a worker reads
 * epoch, counts itself in nsleep, looks for work once more, and only then
 * sleeps while epoch is unchanged. Whoever adds work publishes it, then
 * (after a full fence) reads nsleep and bumps epoch and wakes a sleeper
 * when there is one and nobody is spinning. Either the sleeper's last look
 * sees the work or the waker sees the sleeper, so no wake-up is lost.
 *
 * Thread safety: submit from any thread; create/destroy by the owner.
 */
#include <limits.h>
#include <string.h>

#include "backends.h"
#include "deque.h"
#include "sched/backend.h"
#include "sched/taskheap.h"
#include "util/futex.h"
#include "util/thread.h"

#define SPIN_SECONDS 50e-6 /* about the cost of a futex wake-up round trip */

#if defined(__x86_64__) || defined(__i386__)
#define cpu_relax() __builtin_ia32_pause()
#elif defined(__aarch64__)
#define cpu_relax() __asm__ __volatile__("yield" ::: "memory")
#else
#define cpu_relax() ((void)0)
#endif

typedef struct pool pool;

typedef struct worker {
  tg__deque dq;       /* this worker's tasks */
  tg__wctx w;
  tg__task *overflow; /* owner-only LIFO for when the deque cannot grow */
  pool *pool;
  pthread_t th;
  unsigned id;
  uint32_t rng;       /* victim selection */
} worker;

struct pool {
  tg__backend base;
  worker *ws;
  unsigned nw;
  pthread_mutex_t inj_mu;       /* guards inj_head / inj_tail */
  tg__task *inj_head, *inj_tail; /* submitted from outside, most urgent
                                    first */
  _Alignas(64) _Atomic size_t inj_n; /* tasks in the injection queue */
  _Alignas(64) _Atomic size_t pq_n;  /* pq.n, for reading without pq_mu
                                        (written under pq_mu) */
  pthread_mutex_t pq_mu;        /* guards pq */
  tg__task_heap pq;             /* ready tasks of runs with priorities */
  _Alignas(64) _Atomic uint32_t epoch;
  _Atomic int nsleep, nspin, shutdown;
};

static _Thread_local worker *tl_self; /* the worker this thread is */

static void pq_add(pool *p, tg__task *t);
static void inject(pool *p, tg__task *first, tg__task *last, size_t n);

/* ---- waking ------------------------------------------------------------------- */

static void wake(pool *p, int n) {
  atomic_fetch_add_explicit(&p->epoch, 1, memory_order_release);
  tg__futex_wake(&p->epoch, n);
}

/* Work was published: wake a sleeper unless someone is looking already. */
static void notify(pool *p) {
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&p->nspin, memory_order_relaxed) == 0 &&
      atomic_load_explicit(&p->nsleep, memory_order_relaxed) > 0)
    wake(p, 1);
}

/* ---- the worker's own queue ------------------------------------------------------ */

static void push_local(worker *me, tg__task *t) {
  if (!tg__deque_push_owner(&me->dq, t)) {
    t->next = me->overflow;
    me->overflow = t;
  }
}

static tg__task *pop_local(worker *me) {
  tg__task *t = tg__deque_pop_owner(&me->dq);
  if (!t && (t = me->overflow)) me->overflow = t->next;
  return t;
}

/* Queue what the last task made ready; return the one to run next. */
static tg__task *queue_ready(worker *me) {
  tg__task *first = me->w.ready_first, *t = me->w.ready_rest;
  me->w.ready_first = me->w.ready_rest = NULL;
  if (first && tg__task_prioritized(first)) { /* all of one run: its heap */
    first->next = t;
    pq_add(me->pool, first);
    notify(me->pool);
    return NULL;
  }
  if (!t) return first;
  while (t) { /* least urgent first, so the most urgent is popped first */
    tg__task *nx = t->next;
    push_local(me, t);
    t = nx;
  }
  notify(me->pool);
  return first;
}

/* ---- the priority heap ------------------------------------------------------------ */

/* Push t on the heap (pq_mu held); false when it cannot grow. */
static bool pq_push_locked(pool *p, tg__task *t) {
  if (!tg__task_heap_push(&p->pq, t)) return false;
  atomic_store_explicit(&p->pq_n, p->pq.n, memory_order_release);
  return true;
}

/* Pop the heap's top (pq_mu held, heap not empty). */
static tg__task *pq_pop_locked(pool *p) {
  tg__task *t = tg__task_heap_pop(&p->pq);
  atomic_store_explicit(&p->pq_n, p->pq.n, memory_order_relaxed);
  return t;
}

/* Put the linked tasks (t->next) on the heap; those it has no room for
 * go to the injection queue (they still run). The caller notifies. */
static void pq_add(pool *p, tg__task *t) {
  pthread_mutex_lock(&p->pq_mu);
  while (t) {
    tg__task *nx = t->next;
    if (!pq_push_locked(p, t)) {
      t->next = NULL;
      pthread_mutex_unlock(&p->pq_mu);
      inject(p, t, t, 1);
      pthread_mutex_lock(&p->pq_mu);
    }
    t = nx;
  }
  pthread_mutex_unlock(&p->pq_mu);
}

/* ---- finding work --------------------------------------------------------------- */

/* A contiguous block from the injection queue: run the first, push the
 * rest on our deque. */
static tg__task *take_injected(worker *me) {
  pool *p = me->pool;
  if (!atomic_load_explicit(&p->inj_n, memory_order_acquire)) return NULL;
  pthread_mutex_lock(&p->inj_mu);
  tg__task *first = p->inj_head, *last = first;
  if (!first) {
    pthread_mutex_unlock(&p->inj_mu);
    return NULL;
  }
  size_t avail = atomic_load_explicit(&p->inj_n, memory_order_relaxed);
  size_t k = (avail + p->nw - 1) / p->nw;
  for (size_t i = 1; i < k && last->next; i++) last = last->next;
  p->inj_head = last->next;
  if (!p->inj_head) p->inj_tail = NULL;
  atomic_store_explicit(&p->inj_n, avail > k ? avail - k : 0, memory_order_relaxed);
  bool more = p->inj_head != NULL;
  pthread_mutex_unlock(&p->inj_mu);
  last->next = NULL;
  tg__task *rev = NULL, *x = first->next;
  while (x) { /* reverse, so the most urgent ends at the bottom */
    tg__task *nx = x->next;
    x->next = rev;
    rev = x;
    x = nx;
  }
  for (x = rev; x;) {
    tg__task *nx = x->next;
    push_local(me, x);
    x = nx;
  }
  if (more || rev) notify(p);
  return first;
}

static tg__task *steal_any(worker *me) {
  pool *p = me->pool;
  if (p->nw < 2) return NULL;
  me->rng = me->rng * 1664525u + 1013904223u;
  unsigned start = (me->rng >> 8) % p->nw;
  for (unsigned i = 0; i < p->nw; i++) {
    worker *v = &p->ws[(start + i) % p->nw];
    if (v == me) continue;
    for (int tries = 0; tries < 8; tries++) {
      bool lost = false;
      tg__task *t = tg__deque_steal(&v->dq, &lost);
      if (t) {
        if (tg__deque_size(&v->dq) > 0) notify(p); /* more to take there */
        return t;
      }
      if (!lost) break;
    }
  }
  return NULL;
}

/* The heap's top when it goes before t (a task this worker would run
 * otherwise, or NULL), t being put back on our deque; else t. Without a
 * t, the injection queue and other workers are looked at first unless the
 * top's priority is above theirs (0). */
static tg__task *pq_choose(worker *me, tg__task *t) {
  pool *p = me->pool;
  if (!t) {
    pthread_mutex_lock(&p->pq_mu);
    bool urgent = p->pq.n && tg__task_priority(tg__task_heap_top(&p->pq)) > 0;
    pthread_mutex_unlock(&p->pq_mu);
    if (!urgent && !(t = take_injected(me))) t = steal_any(me);
  }
  pthread_mutex_lock(&p->pq_mu);
  if (p->pq.n && (!t || tg__task_before(tg__task_heap_top(&p->pq), t))) {
    if (t) push_local(me, t); /* next after the top, as before */
    t = pq_pop_locked(p);
  }
  pthread_mutex_unlock(&p->pq_mu);
  return t;
}

static tg__task *look(worker *me) {
  if (atomic_load_explicit(&me->pool->pq_n, memory_order_acquire))
    return pq_choose(me, NULL);
  tg__task *t = take_injected(me);
  return t ? t : steal_any(me);
}

/* Work for an idle worker: look, spin, sleep. NULL at shutdown. */
static tg__task *find_work(worker *me) {
  pool *p = me->pool;
  tg__task *t = look(me);
  if (t) return t;
  tg__wctx_flush(&me->w); /* idle from here: publish our counts */
  for (;;) {
    atomic_fetch_add_explicit(&p->nspin, 1, memory_order_seq_cst);
    double until = tg__now() + SPIN_SECONDS;
    do {
      for (int i = 0; i < 16; i++) cpu_relax();
      if ((t = look(me))) break;
    } while (!atomic_load_explicit(&p->shutdown, memory_order_relaxed) &&
             tg__now() < until);
    atomic_fetch_sub_explicit(&p->nspin, 1, memory_order_seq_cst);
    if (t) return t;
    uint32_t ep = atomic_load_explicit(&p->epoch, memory_order_acquire);
    atomic_fetch_add_explicit(&p->nsleep, 1, memory_order_seq_cst);
    atomic_thread_fence(memory_order_seq_cst);
    t = look(me);
    if (!t && !atomic_load_explicit(&p->shutdown, memory_order_acquire))
      tg__futex_wait(&p->epoch, ep, -1);
    atomic_fetch_sub_explicit(&p->nsleep, 1, memory_order_seq_cst);
    if (t) return t;
    if (atomic_load_explicit(&p->shutdown, memory_order_acquire)) return NULL;
  }
}

static void *worker_main(void *arg) {
  worker *me = arg;
  tl_self = me;
  tg__task *t = NULL;
  for (;;) {
    if (!t) t = pop_local(me);
    if (atomic_load_explicit(&me->pool->pq_n, memory_order_relaxed)) t = pq_choose(me, t);
    if (!t) t = find_work(me);
    if (!t) break;
    tg__task_exec(&me->w, t);
    t = queue_ready(me);
  }
  tg__wctx_flush(&me->w);
  tg__wstates_teardown(&me->w.states); /* here: teardown on the init's thread */
  return NULL;
}

/* ---- the backend ------------------------------------------------------------------ */

/* Append the linked tasks first..last (n of them) to the injection
 * queue. The caller wakes workers. */
static void inject(pool *p, tg__task *first, tg__task *last, size_t n) {
  pthread_mutex_lock(&p->inj_mu);
  if (p->inj_tail) p->inj_tail->next = first;
  else p->inj_head = first;
  p->inj_tail = last;
  atomic_fetch_add_explicit(&p->inj_n, n, memory_order_release);
  pthread_mutex_unlock(&p->inj_mu);
}

/* Submit the tasks of runs with priorities among tasks[0..n-1] to the
 * heap; the others are compacted to the front of tasks. Returns their
 * count. */
static size_t submit_prioritized(pool *p, tg__task **tasks, size_t n) {
  tg__task *head = NULL, **tail = &head;
  size_t keep = 0;
  for (size_t i = 0; i < n; i++) {
    if (tg__task_prioritized(tasks[i])) {
      *tail = tasks[i];
      tail = &tasks[i]->next;
    } else {
      tasks[keep++] = tasks[i];
    }
  }
  *tail = NULL;
  if (head) pq_add(p, head);
  return keep;
}

static void threads_submit(tg__backend *b, tg__task *const *tasks, size_t n) {
  pool *p = (pool *)b;
  if (n == 0) return;
  size_t k = 0;
  while (k < n && !tg__task_prioritized(tasks[k])) k++;
  if (k < n) { /* the array is the caller's: sort ours out of a copy */
    tg__task *local[64], **v = n <= 64 ? local : tg__malloc(n * sizeof *v);
    if (v) {
      memcpy(v, tasks, n * sizeof *v);
      size_t rest = submit_prioritized(p, v, n);
      atomic_thread_fence(memory_order_seq_cst); /* as below */
      if (atomic_load_explicit(&p->nsleep, memory_order_relaxed) > 0)
        wake(p, n - rest < p->nw ? (int)(n - rest) : (int)p->nw);
      if (rest) threads_submit(b, v, rest);
      if (v != local) tg__free(v);
      return;
    }
  }
  worker *me = tl_self;
  if (me && me->pool == p) { /* from one of our workers: its own deque */
    for (size_t i = n; i-- > 0;) push_local(me, tasks[i]);
    notify(p);
    return;
  }
  for (size_t i = 0; i + 1 < n; i++) tasks[i]->next = tasks[i + 1];
  tasks[n - 1]->next = NULL;
  inject(p, tasks[0], tasks[n - 1], n);
  atomic_thread_fence(memory_order_seq_cst);
  if (atomic_load_explicit(&p->nsleep, memory_order_relaxed) > 0)
    wake(p, n < p->nw ? (int)n : (int)p->nw);
}

static void stop_workers(pool *p, unsigned started) {
  atomic_store_explicit(&p->shutdown, 1, memory_order_seq_cst);
  wake(p, INT_MAX);
  for (unsigned i = 0; i < started; i++) pthread_join(p->ws[i].th, NULL);
}

static void pool_free(pool *p, unsigned ninit) {
  for (unsigned i = 0; i < ninit; i++) {
    tg__wctx_destroy(&p->ws[i].w);
    tg__deque_destroy(&p->ws[i].dq);
  }
  pthread_mutex_destroy(&p->inj_mu);
  pthread_mutex_destroy(&p->pq_mu);
  tg__task_heap_free(&p->pq);
  tg__free(p->ws);
  tg__free(p);
}

static int threads_create(const tg__backend_cfg *cfg, tg__backend **out,
                          tg_error *err) {
  unsigned nw = cfg->workers ? cfg->workers : 1, i;
  pool *p = tg__aligned_alloc(64, sizeof *p);
  if (!p) return tg__error_set(err, TG_ENOMEM, "out of memory");
  memset(p, 0, sizeof *p);
  p->base.ops = &tg__backend_threads;
  p->base.workers = nw;
  p->nw = nw;
  pthread_mutex_init(&p->inj_mu, NULL);
  pthread_mutex_init(&p->pq_mu, NULL);
  p->ws = tg__aligned_alloc(64, nw * sizeof *p->ws);
  if (!p->ws) {
    pool_free(p, 0);
    return tg__error_set(err, TG_ENOMEM, "out of memory for %u workers", nw);
  }
  memset(p->ws, 0, nw * sizeof *p->ws);
  for (i = 0; i < nw; i++) {
    worker *w = &p->ws[i];
    if (tg__deque_init(&w->dq, 1024) != TG_OK) break;
    tg__wctx_init(&w->w, (int)i);
    w->pool = p;
    w->id = i;
    w->rng = 0x9e3779b9u * (i + 1);
  }
  if (i < nw) {
    pool_free(p, i);
    return tg__error_set(err, TG_ENOMEM, "out of memory for %u workers", nw);
  }
  tg__thread_group started = {0};
  for (i = 0; i < nw; i++) {
    int rc = tg__thread_start_in(&started, &p->ws[i].th, worker_main, &p->ws[i]);
    if (rc != 0) {
      tg__thread_group_wait(&started);
      stop_workers(p, i);
      pool_free(p, nw);
      return tg__error_set(err, -rc, "cannot start worker thread %u of %u", i, nw);
    }
  }
  tg__thread_group_wait(&started); /* see util/thread.h */
  *out = &p->base;
  return TG_OK;
}

static void threads_destroy(tg__backend *b) {
  pool *p = (pool *)b;
  if (!p) return;
  stop_workers(p, p->nw);
  pool_free(p, p->nw);
}

const tg__backend_ops tg__backend_threads = {
    TG__BACKEND_OPS_V1, "threads", TG__CAP_IN_PROCESS | TG__CAP_LEAVE_AT_DEADLINE,
    threads_create, threads_submit, threads_destroy,
};
