/* lib/remote/worker_pool.c: the worker's threads that call task
 * functions: a shared queue, the call with its retries and timeout (as
 * the in-process backends make it), mapped chunks and concatenations. */
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sched.h>
#include <unistd.h>

#include "remote/worker.h"
#include "util/thread.h"

typedef struct pool_arg {
  tg__worker *wk;
  int index;
} pool_arg;

/* ---- calling --------------------------------------------------------------- */

/* As the engine calls a node (a mapped chunk, a concatenation, a call). */
static int invoke(tg_task_ctx *ctx, wtask *t, tg_value **out) {
  tg__gnode nd = {.fn = t->fn, .nargs = t->nargs, .aux = t->aux, .kind = t->kind,
                  .timeout = (float)t->timeout};
  return tg__task_invoke(ctx, &nd, t->args, out);
}

/* Call t's function with retries; the outcome goes into t. */
static void run_task(wtask *t, int worker, tg__wstates *states) {
  tg_task_ctx ctx;
  double t0 = tg__now();
  t->worker = worker;
  t->started = t0;
  for (uint32_t at = 0;; at++) {
    tg__task_ctx_init(&ctx, t->fn, t->run->token, 0, worker, (int)at);
    ctx.key = t->key; /* already known: no run graph to format it from */
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
    if (at + 1 >= t->attempts || tg__run_cancelled(t->run->token)) {
      t->rc = rc;
      snprintf(t->msg, sizeof t->msg, "%s", ctx.fail_code ? ctx.msg : "");
      break;
    }
  }
  t->secs = tg__now() - t0;
}

/* ---- the threads ------------------------------------------------------------- */

static void *pool_main(void *arg) {
  pool_arg pa = *(pool_arg *)arg;
  tg__free(arg);
  tg__worker *wk = pa.wk;
  tg__wstates states = {0}; /* this thread's: the thread is the worker */
  pthread_mutex_lock(&wk->mu);
  for (;;) {
    /* A chain's next link comes right after this one's result is taken:
     * look again for a moment before sleeping (a wake-up costs more). */
    for (int spin = 0; spin < 64 && !wk->q_head && !wk->stopping; spin++) {
      pthread_mutex_unlock(&wk->mu);
      sched_yield();
      pthread_mutex_lock(&wk->mu);
    }
    while (!wk->q_head && !wk->stopping) pthread_cond_wait(&wk->cv, &wk->mu);
    if (!wk->q_head) break; /* stopping and nothing left */
    wtask *t = wk->q_head;
    wk->q_head = t->next;
    if (!wk->q_head) wk->q_tail = NULL;
    bool stopping = wk->stopping; /* read under mu, where it is written */
    pthread_mutex_unlock(&wk->mu);
    if (!stopping) run_task(t, pa.index, &states);
    else t->rc = TG_ECANCELED;
    tg__wk_pool_done(wk, t);
    pthread_mutex_lock(&wk->mu);
  }
  pthread_mutex_unlock(&wk->mu);
  tg__wstates_teardown(&states); /* the worker stops */
  return NULL;
}

int tg__wk_pool_start(tg__worker *wk, tg_error *err) {
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
  pthread_mutex_lock(&wk->mu);
  if (wk->q_tail) wk->q_tail->next = head;
  else wk->q_head = head;
  wk->q_tail = tail;
  tail->next = NULL;
  pthread_cond_broadcast(&wk->cv);
  pthread_mutex_unlock(&wk->mu);
}

void tg__wk_pool_done(tg__worker *wk, wtask *t) {
  pthread_mutex_lock(&wk->mu);
  bool first = wk->done == NULL;
  t->next = wk->done;
  wk->done = t;
  pthread_mutex_unlock(&wk->mu);
  if (first) { /* the loop drains the whole list per wake-up */
    uint64_t one = 1;
    ssize_t w = write(wk->wake_fd, &one, sizeof one);
    (void)w;
  }
}

void tg__wk_task_free(wtask *t) {
  if (!t) return;
  for (uint32_t i = 0; t->args && i < t->nargs; i++) tg_value_unref(t->args[i]);
  tg__free(t->args);
  tg__free(t->key);
  tg_value_unref(t->out);
  tg__free(t);
}
