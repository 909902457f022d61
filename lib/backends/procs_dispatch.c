/* lib/backends/procs_dispatch.c: the scheduling side of the processes
 * backend, run by the IO thread: ready queues, batches to workers sized
 * from measured task durations, the results coming back, retries, and the
 * forgetting of shared segments.
 *
 * Batching (as joblib's auto batching, per function): a function's tasks
 * go one at a time until a duration was measured, then in batches of
 * about BATCH_SECS of work, capped so that the queue is spread over every
 * worker (guided self-scheduling: at most a 1/(2N) share of what is
 * ready). A worker gets another batch while it has less than PIPE_SECS of
 * estimated work (and at most MAX_INFLIGHT batches), so it never waits for
 * the parent between batches; behind long tasks, only while there is
 * work left for every worker, so the pool stays balanced at the end.
 *
 * Locality: a ready task whose inputs include large values already mapped
 * in some worker goes to that worker's own queue (other idle workers may
 * still take it), so its inputs cross no socket and get no new mapping.
 *
 * Priorities: tasks of runs with priorities wait in a heap ordered by
 * tg__task_before (priority wins over locality for them); a batch takes,
 * task by task, the heap's top when it goes before the task the stacks
 * would give (whose priority is 0). A batch is thus formed most urgent
 * first, and a worker runs it in order: no task in it is held back by a
 * less urgent one that was ready when it was formed.
 *
 * Thread safety: the IO thread only. */
#include <stdio.h>
#include <unistd.h>

#include "procs_internal.h"

#define BATCH_SECS 500e-6  /* work per batch once durations are known */
#define PIPE_SECS 2e-3     /* estimated work queued in a worker */
#define MAX_INFLIGHT 4     /* batches queued in a worker */
#define MAX_BATCH 4096     /* tasks per batch */
#define MAX_BATCH_BYTES ((size_t)1 << 20)

/* ---- duration estimates ------------------------------------------------------------- */

static size_t est_slot(const tg__ppool *p, const tg_func *fn) {
  return (size_t)(((uintptr_t)fn * UINT64_C(0x9E3779B97F4A7C15)) >> 24) & (p->est_cap - 1);
}

/* The entry of fn, added (with its registry index) when missing; NULL
 * when out of memory. */
static tg__pest *est_of(tg__ppool *p, const tg_func *fn) {
  if (p->est_cap) {
    for (size_t i = est_slot(p, fn);; i = (i + 1) & (p->est_cap - 1)) {
      if (p->est[i].fn == fn) return &p->est[i];
      if (!p->est[i].fn) break;
    }
  }
  if (2 * (p->nest + 1) > p->est_cap) {
    size_t cap = p->est_cap ? p->est_cap * 2 : 64;
    tg__pest *old = p->est, *e = tg__calloc(cap, sizeof *e);
    if (!e) return NULL;
    size_t oldcap = p->est_cap;
    p->est = e;
    p->est_cap = cap;
    for (size_t i = 0; i < oldcap; i++) {
      if (!old[i].fn) continue;
      size_t k = est_slot(p, old[i].fn);
      while (e[k].fn) k = (k + 1) & (cap - 1);
      e[k] = old[i];
    }
    tg__free(old);
  }
  size_t k = est_slot(p, fn);
  while (p->est[k].fn) k = (k + 1) & (p->est_cap - 1);
  tg__pest *e = &p->est[k];
  e->fn = fn;
  e->secs = -1;
  e->index = UINT32_MAX;
  for (size_t i = 0; i < p->nfuncs; i++)
    if (tg_registry_at(p->reg, i) == fn) {
      e->index = (uint32_t)i;
      break;
    }
  p->nest++;
  return e;
}

void tg__pd_est_update(tg__ppool *p, const tg_func *fn, double sum, uint32_t n) {
  tg__pest *e = fn && n ? est_of(p, fn) : NULL;
  if (!e) return;
  double mean = sum / n;
  e->secs = e->secs < 0 ? mean : 0.5 * e->secs + 0.5 * mean;
}

/* ---- ready queues ------------------------------------------------------------------- */

static bool push(tg__task ***v, size_t *n, size_t *cap, tg__task *t) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 256;
    tg__task **nv = tg__realloc(*v, c * sizeof *nv);
    if (!nv) return false;
    *v = nv;
    *cap = c;
  }
  (*v)[(*n)++] = t;
  return true;
}

/* Bytes of v that live in shared memory: large arrays and bytes. */
static uint64_t big_bytes(const tg_value *v) {
  if (tg_value_type(v) == TG_NDARRAY) return tg_ndarray_nbytes(v);
  size_t n = 0;
  if (tg_value_type(v) == TG_BYTES) tg_bytes_data(v, &n);
  return n;
}

/* The worker holding most bytes of t's large inputs, or -1. */
static int preferred(tg__ppool *p, tg__task *t) {
  tg__run *r = t->run;
  const tg__gnode *nd = &r->g->nodes[t->node];
  const tg__garg *a = tg__node_args(r->g, nd);
  uint64_t score[64];
  unsigned nw = p->nw < 64 ? p->nw : 64;
  bool any = false;
  for (uint32_t j = 0; j < nd->nargs; j++) {
    if (a[j].kind != TG_ARG_NODE) continue;
    const tg__task *in = &r->plan.tasks[r->plan.task_of[a[j].node]];
    tg__pseg *s = tg__psegs_of(in->result);
    if (!s || !s->holders) continue;
    if (!any) memset(score, 0, sizeof score);
    any = true;
    for (unsigned w = 0; w < nw; w++)
      if (s->holders & (UINT64_C(1) << w)) score[w] += big_bytes(in->result);
  }
  if (!any) return -1;
  int best = -1;
  for (unsigned w = 0; w < nw; w++)
    if (score[w] && p->ws[w].state == TG__PW_UP && (best < 0 || score[w] > score[best]))
      best = (int)w;
  return best;
}

tg__task *tg__pd_pq_pop(tg__ppool *p) { return tg__task_heap_pop(&p->pq); }

void tg__pd_push_ready(tg__ppool *p, tg__task *t) {
  if (tg__task_prioritized(t) && tg__task_heap_push(&p->pq, t)) return;
  int w = p->nw > 1 && !tg__task_prioritized(t) ? preferred(p, t) : -1;
  if (w >= 0) {
    tg__pworker *pw = &p->ws[w];
    if (push(&pw->affine, &pw->naffine, &pw->affine_cap, t)) return;
  }
  if (push(&p->ready, &p->nready, &p->ready_cap, t)) return;
  tg__task_exec(&p->w, t); /* no memory to queue it: run it here */
  tg__pd_take_made_ready(p);
}

void tg__pd_take_made_ready(tg__ppool *p) {
  for (;;) {
    tg__task *rest = p->w.ready_rest, *first = p->w.ready_first;
    if (!first) return;
    p->w.ready_rest = p->w.ready_first = NULL;
    while (rest) { /* least urgent first, so the most urgent ends on top */
      tg__task *nx = rest->next;
      tg__pd_push_ready(p, rest);
      rest = nx;
    }
    tg__pd_push_ready(p, first);
  }
}

bool tg__pd_idle(const tg__ppool *p) {
  if (p->nready || p->nretry || p->pq.n) return false;
  for (unsigned i = 0; i < p->nw; i++)
    if (p->ws[i].nbatches || p->ws[i].naffine) return false;
  return true;
}

/* ---- building a batch ------------------------------------------------------------------ */

typedef struct encctx {
  tg__ppool *p;
  tg__pworker *w;
  tg__pbatch *b;
  tg__pseg *added[16]; /* segments whose fd this task passes, for undo */
  size_t nadded;
  bool overflow;
} encctx;

static int enc_seg(void *ctx, const tg_value *v, tg__pref *ref) {
  encctx *e = ctx;
  tg__pseg *s;
  bool held;
  int rc = tg__psegs_ref(&e->p->segs, v, e->w->slot, ref, &s, &held);
  if (rc != TG_OK) return rc;
  if (held) { /* a copy: the batch holds it until its tasks are done */
    tg__pbatch *b = e->b;
    if (b->nholds == b->holds_cap) {
      size_t c = b->holds_cap ? b->holds_cap * 2 : 4;
      tg__pseg **h = tg__realloc(b->holds, c * sizeof *h);
      if (!h) {
        tg__psegs_unhold(&e->p->segs, s);
        return TG_ENOMEM;
      }
      b->holds = h;
      b->holds_cap = c;
    }
    b->holds[b->nholds++] = s;
  }
  if (!ref->has_fd) return TG_OK;
  if (e->nadded < 16) e->added[e->nadded++] = s;
  else e->overflow = true;
  return tg__pconn_add_fd(&e->w->c, s->seg.fd);
}

static bool reserve_argv(tg__pbatch *b, size_t n) {
  if (b->argv_cap - b->nargv >= n) return true;
  size_t c = b->argv_cap ? b->argv_cap * 2 : 64;
  while (c - b->nargv < n) c *= 2;
  tg_value **a = tg__realloc(b->argv, c * sizeof *a);
  if (!a) return false;
  b->argv = a;
  b->argv_cap = c;
  return true;
}

/* Append pt's call to w's message; on failure nothing is left of it. */
static int encode_task(tg__ppool *p, tg__pworker *w, tg__pbatch *bt,
                       const tg__ptask *pt, tg_value *const *args, uint32_t index) {
  const tg__run *r = pt->t->run;
  const tg__gnode *nd = &r->g->nodes[pt->t->node];
  uint32_t orig = r->g->orig ? r->g->orig[pt->t->node] : pt->t->node;
  tg__pbuf *b = &w->c.out;
  size_t at = b->len, nofd = w->c.nofd;
  uint16_t mfds = w->c.msg_fds;
  int rc = tg__pbuf_reserve(b, 7 * TG__VARINT_MAX + 1);
  if (rc == TG_OK) {
    tg__pbuf_varint(b, index);
    tg__pbuf_u8(b, nd->kind);
    tg__pbuf_varint(b, nd->aux);
    tg__pbuf_varint(b, (uint64_t)orig << 1 | (nd->key != 0));
    if (nd->key) {
      const char *k = r->g->keys + nd->key - 1;
      rc = tg__penc_str(b, k, strlen(k));
    }
  }
  if (rc == TG_OK && (rc = tg__pbuf_reserve(b, 3 * TG__VARINT_MAX)) == TG_OK) {
    uint32_t tbits; /* the float itself: messages print it as task.c does */
    memcpy(&tbits, &pt->timeout, 4);
    tg__pbuf_varint(b, pt->attempt);
    tg__pbuf_varint(b, pt->timeout > 0 ? tbits : 0);
    tg__pbuf_varint(b, pt->nargs);
  }
  encctx e = {p, w, bt, {NULL}, 0, false};
  for (uint32_t j = 0; j < pt->nargs && rc == TG_OK; j++)
    rc = tg__penc_value(b, args[j], enc_seg, &e);
  if (rc == TG_OK) return TG_OK;
  b->len = at; /* undo: the worker will not get those fds */
  w->c.nofd = nofd;
  w->c.msg_fds = mfds;
  uint64_t bit = w->slot < 64 ? UINT64_C(1) << w->slot : 0;
  for (size_t i = 0; i < e.nadded; i++) e.added[i]->holders &= ~bit;
  if (e.overflow) tg__psegs_forget_slot(&p->segs, w->slot); /* be safe */
  return rc;
}

/* Attempts allowed for t, as task.c counts them. */
static int attempts_of(const tg__run *r, const tg__gnode *nd) {
  if (nd->kind == TG__NK_CONCAT || !(nd->fn->flags & TG_FUNC_PURE)) return 1;
  return 1 + (nd->retries >= 0 ? nd->retries : r->retries);
}

/* Begin t for a batch: false when it finished here (skipped, failed, run
 * in the parent, or not runnable by workers). */
static bool begin(tg__ppool *p, tg__task *t, tg__pest *e, tg__ptask *pt,
                  tg_value *const **args) {
  const tg__gnode *nd = &t->run->g->nodes[t->node];
  if (nd->kind == TG__NK_CONCAT) { /* joining lists: cheaper here */
    tg__task_exec(&p->w, t);
    tg__pd_take_made_ready(p);
    return false;
  }
  size_t nargs;
  if (!tg__task_begin(&p->w, t, args, &nargs)) {
    tg__pd_take_made_ready(p);
    return false;
  }
  if (!e || e->index == UINT32_MAX) {
    char m[TG__NAME_MAX + 128];
    snprintf(m, sizeof m, "function '%s' is not in the worker processes' registry "
             "(registered after the processes pool started)", nd->fn->name);
    tg__task_end(&p->w, t, e ? TG_ENOFUNC : TG_ENOMEM, NULL, e ? m : "out of memory");
    tg__pd_take_made_ready(p);
    return false;
  }
  *pt = (tg__ptask){t, NULL, 0, (uint32_t)nargs, 0, nd->timeout, nd->fn};
  return true;
}

static bool grow_batch(tg__pbatch **bp) {
  tg__pbatch *b = *bp;
  if (b->n < b->cap) return true;
  uint32_t cap = b->cap * 2;
  b = tg__realloc(b, sizeof *b + cap * sizeof b->t[0]);
  if (!b) return false;
  b->cap = cap;
  *bp = b;
  return true;
}

/* The next task for w without beginning it: where it comes from. */
enum { SRC_NONE, SRC_RETRY, SRC_AFFINE, SRC_READY, SRC_STEAL, SRC_PQ };

static int next_source(tg__ppool *p, tg__pworker *w, tg__pworker **victim) {
  if (p->nretry) return SRC_RETRY;
  if (p->pq.n) { /* the heap's top against what the stacks would give */
    const tg__task *t = w->naffine ? w->affine[w->naffine - 1]
                        : p->nready ? p->ready[p->nready - 1] : NULL;
    if (!t || tg__task_before(tg__task_heap_top(&p->pq), t)) return SRC_PQ;
  }
  if (w->naffine) return SRC_AFFINE;
  if (p->nready) return SRC_READY;
  if (w->nbatches) return SRC_NONE; /* steal only when idle */
  tg__pworker *best = NULL; /* from a worker with more than it can start now */
  for (unsigned i = 0; i < p->nw; i++) {
    const tg__pworker *v = &p->ws[i];
    if (v->naffine > (v->nbatches ? 0u : 1u) && (!best || v->naffine > best->naffine))
      best = &p->ws[i];
  }
  *victim = best;
  return best ? SRC_STEAL : SRC_NONE;
}

static tg__task *peek(tg__ppool *p, tg__pworker *w, int src, tg__pworker *victim) {
  switch (src) {
    case SRC_AFFINE: return w->affine[w->naffine - 1];
    case SRC_READY: return p->ready[p->nready - 1];
    case SRC_STEAL: return victim->affine[0]; /* its least urgent */
    case SRC_PQ: return tg__task_heap_top(&p->pq);
    default: return NULL;
  }
}

static void pop(tg__ppool *p, tg__pworker *w, int src, tg__pworker *victim) {
  switch (src) {
    case SRC_AFFINE: w->naffine--; break;
    case SRC_READY: p->nready--; break;
    case SRC_PQ: tg__pd_pq_pop(p); break;
    case SRC_STEAL:
      memmove(victim->affine, victim->affine + 1, --victim->naffine * sizeof *victim->affine);
      break;
    default: break;
  }
}

static size_t queued(const tg__ppool *p);

/* How many tasks this batch may take: a share of what is ready. */
static uint32_t batch_cap(const tg__ppool *p) {
  size_t share = queued(p) / (2 * (size_t)p->nw);
  if (share < 1) share = 1;
  return share < MAX_BATCH ? (uint32_t)share : MAX_BATCH;
}

/* Add the next task to b; 0 added, 1 nothing (left) to add, -1 stop. */
static int add_one(tg__ppool *p, tg__pworker *w, tg__pbatch **bp, size_t msg_start) {
  tg__pbatch *b = *bp;
  tg__pworker *victim = NULL;
  int src = next_source(p, w, &victim);
  if (src == SRC_NONE) return 1;
  tg__ptask pt;
  tg_value *const *args;
  tg__pest *e;
  if (src == SRC_RETRY) {
    pt = p->retry[p->nretry - 1];
    e = est_of(p, pt.fn);
    if (b->n && (!e || e->secs < 0)) return -1;
    p->nretry--;
    args = pt.args;
    if (tg__run_stopped(pt.t->run)) { /* no point running it again */
      tg__call_report rep = tg__pd_report(p, &pt, -1, -1); /* the calls before */
      tg__task_end_report(&p->w, pt.t, TG_ECANCELED, NULL, "the compute stopped", &rep);
      tg__pd_take_made_ready(p);
      tg__free(pt.args);
      return 0;
    }
  } else {
    tg__task *t = peek(p, w, src, victim);
    e = est_of(p, t->run->g->nodes[t->node].fn);
    if (b->n && (!e || e->secs < 0)) return -1; /* unknown: alone */
    pop(p, w, src, victim);
    p->w.worker = w->slot; /* for task events */
    if (!begin(p, t, e, &pt, &args)) return 0;
    if (src == SRC_AFFINE) p->stats.local_hits++;
  }
  if (!grow_batch(bp) || !reserve_argv(*bp, pt.nargs)) {
    tg__pd_requeue(p, &pt, args);
    tg__free(pt.args);
    return -1;
  }
  b = *bp;
  int rc = encode_task(p, w, b, &pt, args, e->index);
  if (rc != TG_OK) {
    tg__task_end(&p->w, pt.t, rc, NULL, "cannot send the arguments to a worker");
    tg__pd_take_made_ready(p);
    tg__free(pt.args);
    return 0;
  }
  pt.argi = (uint32_t)b->nargv;
  if (pt.nargs) memcpy(b->argv + b->nargv, args, pt.nargs * sizeof *args);
  b->nargv += pt.nargs;
  tg__free(pt.args);
  pt.args = NULL;
  b->t[b->n++] = pt;
  if (e->secs < 0) b->unknown = true;
  else b->est += e->secs;
  if (pt.timeout > 0) b->timeouts = true;
  if (b->n == 1) b->run = pt.t->run;
  else if (b->run != pt.t->run) b->run = NULL;
  return w->c.out.len - msg_start > MAX_BATCH_BYTES ? -1 : 0;
}

/* Build and queue one batch for w; false when there was nothing to send. */
static bool send_batch(tg__ppool *p, tg__pworker *w) {
  tg__pbatch *b = tg__calloc(1, sizeof *b + 64 * sizeof b->t[0]);
  if (!b) return false;
  p->w.worker = (int)w->slot; /* task events name the worker */
  b->cap = 64;
  tg__pd_emit_control(p, w);
  b->seq = w->seq + 1;
  if (tg__pconn_begin(&w->c, TG__PM_BATCH, b->seq, 0) != TG_OK ||
      tg__pbuf_reserve(&w->c.out, 4) != TG_OK) {
    tg__free(b);
    return false;
  }
  size_t at = w->c.out.len;
  w->c.out.len += 4; /* the count, written at the end */
  uint32_t cap = batch_cap(p);
  while (b->n < cap && !b->unknown && (b->n == 0 || b->est < BATCH_SECS))
    if (add_one(p, w, &b, at) != 0) break;
  if (b->n == 0) {
    tg__pconn_abort(&w->c);
    tg__pd_free_batch(p, b);
    return false;
  }
  memcpy(w->c.out.p + at, &b->n, 4);
  tg__pconn_end(&w->c);
  w->seq = b->seq;
  if (w->tail) w->tail->next = b;
  else w->head = b;
  w->tail = b;
  w->nbatches++;
  w->est_out += b->est;
  w->unknown_out += b->unknown;
  w->timeouts_out += b->timeouts;
  p->stats.batches++;
  p->stats.tasks += b->n;
  return true;
}

/* Tasks waiting to be sent. */
static size_t queued(const tg__ppool *p) {
  size_t n = p->nready + p->nretry + p->pq.n;
  for (unsigned i = 0; i < p->nw; i++) n += p->ws[i].naffine;
  return n;
}

/* Whether w may get another batch now. Short work is pipelined; behind
 * long work one more batch waits only while every other worker has work
 * left too, so the last tasks never queue behind a long one while a
 * worker idles. */
static bool can_take(const tg__ppool *p, const tg__pworker *w) {
  if (w->state != TG__PW_UP || w->nbatches >= MAX_INFLIGHT) return false;
  if (w->nbatches == 0) return true;
  if (w->unknown_out) return false;
  if (w->est_out < PIPE_SECS) return true;
  return w->nbatches < 2 && queued(p) >= p->nw;
}

void tg__pd_dispatch(tg__ppool *p) {
  for (bool progress = true; progress;) {
    progress = false;
    for (unsigned k = 0; k < p->nw; k++) {
      tg__pworker *w = &p->ws[(p->rr + k) % p->nw];
      if (can_take(p, w) && send_batch(p, w)) progress = true;
    }
    p->rr++;
  }
}

void tg__pd_free_batch(tg__ppool *p, tg__pbatch *b) {
  for (size_t i = 0; i < b->nholds; i++) tg__psegs_unhold(&p->segs, b->holds[i]);
  tg__free(b->holds);
  tg__free(b->argv);
  tg__free(b);
}

/* ---- retries ------------------------------------------------------------------------ */

void tg__pd_requeue(tg__ppool *p, const tg__ptask *pt, tg_value *const *args) {
  tg__ptask r = *pt;
  r.args = tg__malloc((r.nargs ? r.nargs : 1) * sizeof *r.args);
  if (r.args && p->nretry == p->retry_cap) {
    size_t c = p->retry_cap ? p->retry_cap * 2 : 16;
    tg__ptask *v = tg__realloc(p->retry, c * sizeof *v);
    if (v) {
      p->retry = v;
      p->retry_cap = c;
    }
  }
  if (!r.args || p->nretry == p->retry_cap) {
    tg__free(r.args);
    tg__task_end(&p->w, r.t, TG_ENOMEM, NULL, "out of memory queuing a task again");
    tg__pd_take_made_ready(p);
    return;
  }
  if (r.nargs) memcpy(r.args, args, r.nargs * sizeof *args);
  p->retry[p->nretry++] = r;
}

tg__call_report tg__pd_report(const tg__ppool *p, const tg__ptask *pt, int64_t start_ns,
                              double seconds) {
  /* Forked workers read the same CLOCK_MONOTONIC as tg__now(): their
   * times need no conversion. */
  double start = start_ns >= 0 ? (double)start_ns * 1e-9 : -1;
  return (tg__call_report){.start = start, .end = start + (seconds > 0 ? seconds : 0),
                           .seconds = seconds, .worker = p->w.worker,
                           .thread = start_ns >= 0 ? 0 : -1,
                           .attempts = (unsigned)pt->attempt + (start_ns >= 0)};
}

void tg__pd_task_failed(tg__ppool *p, const tg__ptask *pt, tg_value *const *args,
                        int rc, const char *msg, int64_t start_ns, double seconds) {
  tg__run *r = pt->t->run;
  const tg__gnode *nd = &r->g->nodes[pt->t->node];
  if (pt->attempt + 1 < attempts_of(r, nd) && !tg__run_stopped(r)) {
    bool user = !(pt->t->flags & TG__T_INTERNAL); /* counted nowhere */
    atomic_fetch_add_explicit(&r->ran, user, memory_order_relaxed);
    atomic_fetch_add_explicit(&r->attempts_failed, user, memory_order_relaxed);
    tg__ptask again = *pt;
    again.attempt++;
    tg__pd_requeue(p, &again, args);
    return;
  }
  tg__call_report rep = tg__pd_report(p, pt, start_ns, seconds);
  tg__task_end_report(&p->w, pt->t, rc, NULL, msg && *msg ? msg : NULL, &rep);
  tg__pd_take_made_ready(p);
}

void tg__pd_free(tg__ppool *p) {
  for (size_t i = 0; i < p->nretry; i++) tg__free(p->retry[i].args);
  for (unsigned i = 0; p->ws && i < p->nw; i++)
    for (tg__pbatch *b = p->ws[i].head, *nb; b; b = nb) {
      nb = b->next;
      tg__pd_free_batch(p, b);
    }
  tg__free(p->retry);
  tg__free(p->ready);
  tg__task_heap_free(&p->pq);
  tg__free(p->est);
}
