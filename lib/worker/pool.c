/* lib/worker/pool.c: the worker's threads that call task
 * functions: a shared queue, the call with its retries and timeout (as
 * the in-process backends make it), mapped chunks and concatenations. */
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "graph/call.h" /* tg__node_call; graph_internal.h: tg__key_generated */
#include "registry/taskhost.h"
#include "worker/worker.h"
#include "util/thread.h"

typedef struct pool_arg {
  tg__worker *wk;
  int index;
} pool_arg;

/* ---- calling --------------------------------------------------------------- */

/* A client's run hosts its tasks here: cancelled when the client cancels
 * it or goes; lines go back to the client. The key comes with the task. */
bool tg__wk_run_cancelled(const wrun *r) {
  if (atomic_load_explicit(&r->cancel, memory_order_relaxed)) return true;
  tg__wk_running *sh = r->wk->running; /* see tg__wk_running */
  return sh && r->wk->inline_calls &&
         atomic_load_explicit(&sh->cancel, memory_order_relaxed) == r->seq + 1;
}

/* The task host of a task here is the task itself (its run says whether
 * it is cancelled and takes its log lines). */
static bool task_cancelled(void *self) { return tg__wk_run_cancelled(((wtask *)self)->run); }

/* A key generated from the node id, made only when a call asks for it. */
static const char *task_key(void *self, uint32_t id, char *buf, size_t size) {
  const wtask *t = self;
  tg__key_generated(buf, size, t->fn->name, t->fn->name_len, t->kind, id);
  return buf;
}

static void task_log(void *self, const char *key, const char *line) {
  tg__wk_log_line(((wtask *)self)->run, key, line);
}

static const tg__task_host_ops task_host = {.cancelled = task_cancelled, .key = task_key,
                                            .log = task_log};

/* As the engine calls a node (a mapped chunk, a concatenation, a call). */
static int invoke(tg_task_ctx *ctx, wtask *t, tg_value **out) {
  tg__gnode nd = {.fn = t->fn, .nargs = t->nargs, .aux = t->aux, .kind = t->kind,
                  .timeout = (float)t->timeout};
  return tg__node_call(ctx, &nd, t->args, out);
}

/* Call t's function with retries; the outcome goes into t. t0: the clock
 * now (the previous task's end, when this one was taken without waiting).
 * Returns the clock at the end. */
static double run_task(tg__worker *wk, wtask *t, int worker, tg__wstates *states, double t0) {
  tg_task_ctx ctx;
  t->worker = worker;
  t->started = t0;
  for (uint32_t at = t->first;; at++) {
    if (wk->running) { /* for the parent, should this call kill us (no fence:
                            it reads them once we are gone, or to see a
                            call go on for seconds) */
      atomic_store_explicit(&wk->running->attempt, at, memory_order_relaxed);
      atomic_store_explicit(&wk->running->id, t->id, memory_order_release);
    }
    tg__task_ctx_init(&ctx, t->fn, (tg__task_host){&task_host, t},
                      t->key_node ? t->key_node - 1 : 0, worker, (int)at);
    if (!t->key_node) ctx.key = t->key; /* it came with the task */
    ctx.states = states;
    if (t->timeout > 0) ctx.deadline = tg__now() + t->timeout;
    tg_value *out = NULL;
    int rc = invoke(&ctx, t, &out);
    t->calls++;
    if (rc == TG_OK) {
      t->rc = TG_OK;
      t->out = out;
      break;
    }
    tg_value_unref(out);
    t->fails++;
    if (at + 1 >= t->attempts || tg__wk_run_cancelled(t->run)) {
      t->rc = rc;
      snprintf(t->msg, sizeof t->msg, "%s", ctx.fail_code ? ctx.msg : "");
      break;
    }
  }
  if (wk->running) atomic_store_explicit(&wk->running->id, 0, memory_order_release);
  double end = tg__now();
  t->secs = end - t0;
  return end;
}

/* ---- the threads ------------------------------------------------------------- */

/* Put finished t on the done list (under mu); whether the loop must be
 * woken (the list was empty: the loop drains all of it per wake-up). */
static bool done_locked(tg__worker *wk, wtask *t) {
  bool first = wk->done == NULL;
  t->next = wk->done;
  wk->done = t;
  t->done = true;
  return first;
}

/* The task linked behind done t (under mu), its argument filled from t's
 * result, or failed as t did, once that was its last wait; else NULL. */
static wtask *take_then(wtask *t) {
  wtask *n = t->then;
  if (!n) return NULL;
  t->then = NULL;
  /* A dropped client's chain is not called on: its links fail, unrun. */
  if (atomic_load(&n->s->gone))
    tg__wk_input_failed(n, t->then_arg, TG_ECANCELED, "its client is gone");
  else if (t->rc == TG_OK && t->out) n->args[t->then_arg] = tg_value_ref(t->out);
  else tg__wk_input_failed(n, t->then_arg, t->rc == TG_OK ? TG_ECANCELED : t->rc, t->msg);
  return --n->waits == 0 ? n : NULL;
}

static bool silent(const wtask *t);

/* Put done t on the done list (under mu) with the tasks linked behind it
 * that fail with it; the first one that will run, or NULL. *wake is set
 * when the loop must be woken, *loud when one of them is not quiet. */
static wtask *done_chain(tg__worker *wk, wtask *t, bool *wake, bool *loud) {
  for (;;) {
    if (done_locked(wk, t)) *wake = true;
    if (!silent(t)) *loud = true;
    wtask *n = take_then(t);
    if (!n || !n->prefailed) return n;
    t = n;
  }
}

bool tg__wk_pool_link(tg__worker *wk, wtask *t) {
  uint32_t n = t->waits;
  wtask *m[2] = {NULL, NULL};
  for (uint32_t i = 0; i < n; i++) {
    wobj *o = t->wait_obj[i];
    wwait *w = t->wait_w[i];
    if (!o || !w || w->sel != TG__ARG_OBJ || !(m[i] = o->maker) || m[i]->s != t->s)
      return false;
  }
  if (n == 2 && m[0] == m[1]) return false; /* one result twice: one link a task */
  pthread_mutex_lock(&wk->mu);
  bool linked = true;
  for (uint32_t i = 0; i < n; i++) linked &= !m[i]->done && !m[i]->then && !m[i]->prefailed;
  for (uint32_t i = 0; linked && i < n; i++) {
    m[i]->then = t; /* t->waits counts them now */
    m[i]->then_arg = t->wait_w[i]->arg;
  }
  pthread_mutex_unlock(&wk->mu);
  if (!linked) return false;
  for (uint32_t i = 0; i < n; i++) {
    wobj *o = t->wait_obj[i];
    wwait *w = t->wait_w[i];
    for (wwait **p = &o->waiters; *p; p = &(*p)->next)
      if (*p == w) {
        *p = w->next;
        break;
      }
    tg__wk_wait_free(wk, w);
    t->wait_obj[i] = NULL;
    t->wait_w[i] = NULL;
  }
  return true;
}

static void wake_loop(tg__worker *wk) {
  uint64_t one = 1;
  ssize_t w = write(wk->wake_fd, &one, sizeof one);
  (void)w;
}

/* A pool thread calling a chain (wtask.then) wakes the loop for the
 * links it finished once this many are waiting, or this long after the
 * first of them: their results stay alive until the loop takes them,
 * and a reply among them waits as long. */
#define CHAIN_WAKE_TASKS 64
#define CHAIN_WAKE_SECS 100e-6

/* Whether t, done, is one the loop has nothing to tell of: a result
 * kept quietly at the first call (worker/tasks.c, finish: no reply).
 * Anything else may be awaited by the client. */
static bool silent(const wtask *t) {
  return t->rc == TG_OK && t->calls == 1 && t->store && (t->flags & TG__RF_QUIET) &&
         (t->flags & TG__RF_KEEP) &&
         !(t->flags & (TG__RF_RETURN | TG__RF_TIMED | TG__RF_SHAPE | TG__RF_ALSO_KEEP));
}

/* Per task: one lock to hand the last task back and take the next, and
 * one clock reading between two tasks taken back to back (one's end is
 * the next one's start).
 * The loop must be woken when the done list becomes non-empty (it drains
 * all of it per wake-up). For tasks done quietly (no reply: a result kept
 * at the first call) the wake-up is owed rather than made while no pool
 * thread is idle, so that a chain's links or a tree's sums run on pool
 * threads without a wake-up each. The debt is the worker's, not one
 * thread's (wk->owed): any thread pays it at once when a task it ends is
 * not quiet (a reply the client may wait for), before it sleeps,
 * when another thread is idle, or after CHAIN_WAKE_TASKS tasks /
 * CHAIN_WAKE_SECS, checked before each task it calls. */
static void *pool_main(void *arg) {
  pool_arg pa = *(pool_arg *)arg;
  tg__free(arg);
  tg__worker *wk = pa.wk;
  tg__wstates states = {0}; /* this thread's: the thread is the worker */
  wtask *prev = NULL;       /* run, not yet handed back */
  double now = 0;           /* the clock when prev ended (0: not read) */
  pthread_mutex_lock(&wk->mu);
  for (;;) {
    wtask *then = NULL; /* a task linked behind prev, ready */
    bool pay = false;   /* wake the loop now */
    if (prev) {
      bool first = false, loud = false;
      then = done_chain(wk, prev, &first, &loud);
      if (first && !wk->owed) {
        wk->owed = true;
        wk->owed_n = 0;
        wk->owed_since = now > 0 ? now : tg__now();
      }
      if (wk->owed) wk->owed_n++;
      pay = wk->owed && loud;
    }
    prev = NULL;
    if (then && (wk->q_head || wk->stopping)) { /* queued first: in turn */
      then->next = NULL;
      if (wk->q_tail) wk->q_tail->next = then;
      else wk->q_head = then;
      wk->q_tail = then;
      then = NULL;
    }
    if (!then && !wk->q_head && !wk->stopping) {
      if (wk->owed) { /* before sleeping: the loop must not wait for us */
        wk->owed = false;
        pthread_mutex_unlock(&wk->mu);
        wake_loop(wk);
        pay = false;
        pthread_mutex_lock(&wk->mu);
      }
      /* Asleep at once, not yielding a while first: a chain's next link
       * is linked behind this one (wtask.then) and runs here without
       * the loop, and what else comes, comes after the loop parsed a
       * message, which the yields only delayed on a busy machine (two
       * one-thread tcp workers on two processors, four alternated pairs:
       * 2,000,000 graph.json tasks 1.48-1.55 -> 1.34-1.41 s, W1
       * 0.55-0.56 -> 0.50-0.52 us a task, W2 and W3 unchanged). */
      wk->idle++;
      while (!wk->q_head && !wk->stopping) {
        if (wk->owed) { /* owed by a thread that went on: paid here */
          wk->owed = false;
          pthread_mutex_unlock(&wk->mu);
          wake_loop(wk);
          pthread_mutex_lock(&wk->mu);
          continue;
        }
        pthread_cond_wait(&wk->cv, &wk->mu);
      }
      wk->idle--;
      now = 0; /* waited: read the clock again */
    }
    wtask *t = then;
    if (!t && !wk->q_head) { /* stopping and nothing left */
      bool owed = wk->owed;
      wk->owed = false;
      pthread_mutex_unlock(&wk->mu);
      if (owed || pay) wake_loop(wk);
      break;
    }
    if (!t) {
      t = wk->q_head;
      wk->q_head = t->next;
      if (!wk->q_head) wk->q_tail = NULL;
    }
    bool stopping = wk->stopping; /* read under mu, where it is written */
    if (wk->owed && (pay || wk->idle > 0 || wk->owed_n >= CHAIN_WAKE_TASKS ||
                     (now > 0 ? now : tg__now()) - wk->owed_since >= CHAIN_WAKE_SECS)) {
      wk->owed = false;
      pay = true;
    }
    pthread_mutex_unlock(&wk->mu);
    if (pay) wake_loop(wk);
    if (!stopping) now = run_task(wk, t, pa.index, &states, now > 0 ? now : tg__now());
    else t->rc = TG_ECANCELED;
    prev = t;
    pthread_mutex_lock(&wk->mu);
  }
  tg__wstates_teardown(&states); /* the worker stops */
  return NULL;
}

int tg__wk_pool_start(tg__worker *wk, tg_error *err) {
  if (wk->inline_calls) return TG_OK; /* the loop calls them */
  wk->threads = tg__calloc(wk->nthreads, sizeof *wk->threads);
  if (!wk->threads) return tg__error_set(err, TG_ENOMEM, "out of memory");
  for (unsigned i = 0; i < wk->nthreads; i++) {
    pool_arg *pa = tg__malloc(sizeof *pa);
    if (pa) *pa = (pool_arg){wk, (int)i};
    if (!pa || tg__thread_start(&wk->threads[i], pool_main, pa) != 0) {
      tg__free(pa);
      wk->nthreads = i;
      tg__wk_pool_stop(wk);
      return tg__error_set(err, TG_ENOMEM, "cannot start worker thread %u", i);
    }
  }
  return TG_OK;
}

void tg__wk_pool_stop(tg__worker *wk) {
  if (wk->inline_calls) { /* never called: they end cancelled */
    for (wtask *t; (t = tg__wk_pool_take(wk));) {
      t->rc = TG_ECANCELED;
      tg__wk_pool_done(wk, t);
    }
    tg__wstates_teardown(&wk->states);
    return;
  }
  pthread_mutex_lock(&wk->mu);
  wk->stopping = true;
  pthread_cond_broadcast(&wk->cv);
  pthread_mutex_unlock(&wk->mu);
  for (unsigned i = 0; i < wk->nthreads; i++) pthread_join(wk->threads[i], NULL);
  tg__free(wk->threads);
  wk->threads = NULL;
  wk->nthreads = 0;
}

void tg__wk_pool_push(tg__worker *wk, wtask *head, wtask *tail) {
  if (!head) return;
  if (wk->inline_calls) { /* the loop's own queue */
    if (wk->q_tail) wk->q_tail->next = head;
    else wk->q_head = head;
    wk->q_tail = tail;
    tail->next = NULL;
    return;
  }
  pthread_mutex_lock(&wk->mu);
  if (wk->q_tail) wk->q_tail->next = head;
  else wk->q_head = head;
  wk->q_tail = tail;
  tail->next = NULL;
  pthread_cond_broadcast(&wk->cv);
  pthread_mutex_unlock(&wk->mu);
}

wtask *tg__wk_pool_take(tg__worker *wk) {
  wtask *t = wk->q_head;
  if (t && !(wk->q_head = t->next)) wk->q_tail = NULL;
  return t;
}

double tg__wk_pool_call(tg__worker *wk, wtask *t, double t0) {
  return run_task(wk, t, 0, &wk->states, t0);
}

void tg__wk_pool_done(tg__worker *wk, wtask *t) {
  if (wk->inline_calls) { /* the loop's own list: it takes it next */
    done_locked(wk, t);
    return;
  }
  pthread_mutex_lock(&wk->mu);
  bool first = false, loud = false;
  wtask *then = done_chain(wk, t, &first, &loud); /* t did not run: none will */
  pthread_mutex_unlock(&wk->mu);
  if (then) tg__wk_pool_push(wk, then, then);
  if (first) wake_loop(wk);
}

void tg__wk_task_free(tg__worker *wk, wtask *t) {
  if (!t) return;
  for (uint32_t i = 0; t->args && i < t->nargs; i++) tg_value_unref(t->args[i]);
  tg_value_unref(t->out);
  /* t->args and t->key live in t's block (worker/tasks.c, parse_task). */
  if (tg__recycle_fits(&wk->task_blocks, tg__wk_task_size(t->nargs, strlen(t->key))))
    tg__recycle_put(&wk->task_blocks, t);
  else
    tg__free(t);
}
