/* lib/cache/writer.c: the cache's writer thread and its queue.
 *
 * Callers queue ops (puts, hits to record, removals...) and return at
 * once; the writer takes everything queued so far and commits it as one
 * batch (batch.c), so a burst of puts costs one LMDB commit. Hits and
 * computes' records (RUN) alone do not wake the writer: they ride along
 * with the next batch, or are committed after at most TOUCH_DELAY
 * seconds, or when TOUCH_MAX of them are waiting, or on a flush, so a
 * compute served from the cache costs no commit of its own. The records
 * of computes queued before the writer takes them merge into one op
 * (tg__runlog_merge), so the writer does not pay per compute either.
 *
 * Sequence numbers: every queued op gets the next number; after a batch
 * the writer publishes seq_done = the last number it took, so a flush
 * waits for seq_done to reach the number current when it was called.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "batch.h"
#include "cache_internal.h"
#include "cache_memo.h"
#include "util/thread.h"

#define TOUCH_DELAY 1.0
#define TOUCH_MAX 65536
#define READER_CHECK_EVERY 10.0

static void op_release(tg__cache_op *op) {
  tg_value_unref(op->value);
  tg__free(op->function);
  tg__free(op->rec);
  tg__cache_tally_unref(op->tally);
  op->tally = NULL;
  op->value = NULL;
  op->function = NULL;
  op->rec = NULL;
}

/* Wait (q_mu held) until there is a reason to commit. */
static void wait_for_work(tg_cache *c) {
  while (!c->stop && !c->n_urgent && !c->flush_wanted && c->n_ops < TOUCH_MAX) {
    if (!c->n_ops) {
      pthread_cond_wait(&c->q_cv, &c->q_mu);
      continue;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)TOUCH_DELAY;
    if (pthread_cond_timedwait(&c->q_cv, &c->q_mu, &ts) == ETIMEDOUT) return;
  }
}

static void run_batch(tg_cache *c, tg__cache_op *ops, size_t n) {
  int rc = tg__batch_apply(c, ops, n);
  for (size_t i = 0; i < n; i++) op_release(&ops[i]);
  double now = tg__cache_now();
  if (now - c->last_reader_check > READER_CHECK_EVERY) {
    c->last_reader_check = now;
    tg__env_reader_check(c);
  }
  pthread_mutex_lock(&c->q_mu);
  if (rc && !c->first_err) {
    c->first_err = rc;
    pthread_mutex_lock(&c->err_mu);
    memcpy(c->first_msg, c->errmsg, sizeof c->first_msg);
    pthread_mutex_unlock(&c->err_mu);
  }
  pthread_mutex_unlock(&c->q_mu);
}

static void *writer_main(void *arg) {
  tg_cache *c = arg;
  tg__cache_op *spare = NULL;
  size_t spare_cap = 0;
  pthread_mutex_lock(&c->q_mu);
  for (;;) {
    wait_for_work(c);
    c->flush_wanted = false;
    if (!c->n_ops) {
      c->seq_done = c->seq_queued;
      pthread_cond_broadcast(&c->done_cv);
      if (c->stop) break;
      continue;
    }
    /* Swap the queue with the spare array, so callers keep queueing. */
    tg__cache_op *ops = c->ops;
    size_t n = c->n_ops, cap = c->cap_ops;
    uint64_t target = c->seq_queued;
    c->ops = spare, c->cap_ops = spare_cap, c->n_ops = 0, c->n_urgent = 0, c->run_at = 0;
    pthread_mutex_unlock(&c->q_mu);
    run_batch(c, ops, n);
    spare = ops, spare_cap = cap;
    pthread_mutex_lock(&c->q_mu);
    c->seq_done = target;
    pthread_cond_broadcast(&c->done_cv);
  }
  pthread_mutex_unlock(&c->q_mu);
  tg__free(spare);
  return NULL;
}

int tg__writer_start(tg_cache *c) {
  c->last_reader_check = tg__cache_now();
  int rc = tg__thread_start(&c->thread, writer_main, c);
  if (rc) return tg__cache_fail(c, -rc, "cache: starting the writer thread failed");
  c->thread_started = true;
  return TG_OK;
}

void tg__writer_stop(tg_cache *c) {
  if (!c->thread_started) return;
  pthread_mutex_lock(&c->q_mu);
  c->stop = true;
  pthread_cond_signal(&c->q_cv);
  pthread_mutex_unlock(&c->q_mu);
  pthread_join(c->thread, NULL);
  c->thread_started = false;
  for (size_t i = 0; i < c->n_ops; i++) op_release(&c->ops[i]);
  tg__free(c->ops);
  c->ops = NULL;
  c->n_ops = c->cap_ops = c->run_at = 0;
}

/* Room for one more op (q_mu held). */
static bool reserve(tg_cache *c) {
  if (c->n_ops < c->cap_ops) return true;
  size_t cap = c->cap_ops ? 2 * c->cap_ops : 64;
  tg__cache_op *p = tg__realloc(c->ops, cap * sizeof *p);
  if (!p) return false;
  c->ops = p;
  c->cap_ops = cap;
  return true;
}

uint64_t tg__writer_queue(tg_cache *c, tg__cache_op *op) {
  uint64_t seq = 0;
  pthread_mutex_lock(&c->q_mu);
  bool run = op->type == TG__OP_RUN;
  if (c->thread_started && !c->stop && run && c->run_at &&
      tg__runlog_merge(&c->ops[c->run_at - 1], op)) {
    seq = ++c->seq_queued; /* committed with the op it joined */
  } else if (c->thread_started && !c->stop && reserve(c)) {
    /* Counts of a later compute must not move before a zeroing or a
     * clear: no merge across one. */
    if (run) c->run_at = c->n_ops + 1;
    else if (op->type == TG__OP_ZERO_STATS || op->type == TG__OP_CLEAR) c->run_at = 0;
    c->ops[c->n_ops++] = *op;
    seq = ++c->seq_queued;
    bool lazy = op->type == TG__OP_TOUCH || op->type == TG__OP_RUN;
    if (!lazy) c->n_urgent++;
    if (!lazy || c->n_ops >= TOUCH_MAX)
      pthread_cond_signal(&c->q_cv);
  }
  pthread_mutex_unlock(&c->q_mu);
  if (!seq) op_release(op);
  return seq;
}

static void wait_done(tg_cache *c, uint64_t target) {
  if (c->seq_done < target) {
    c->flush_wanted = true;
    pthread_cond_signal(&c->q_cv);
  }
  while (c->seq_done < target) pthread_cond_wait(&c->done_cv, &c->q_mu);
}

int tg__writer_flush(tg_cache *c) {
  char msg[256];
  if (!c->thread_started) return TG_OK;
  pthread_mutex_lock(&c->q_mu);
  wait_done(c, c->seq_queued);
  int rc = c->first_err;
  c->first_err = 0;
  memcpy(msg, c->first_msg, sizeof msg);
  pthread_mutex_unlock(&c->q_mu);
  if (rc) tg__cache_fail(c, rc, "%s", msg);
  return rc;
}

int tg__writer_refused(tg_cache *c) {
  pthread_mutex_lock(&c->q_mu);
  bool running = c->thread_started && !c->stop;
  pthread_mutex_unlock(&c->q_mu);
  return running ? tg__cache_fail(c, TG_ENOMEM, "cache: out of memory queueing a write")
                 : tg__cache_fail(c, TG_ESTATE, "cache: the writer is not running");
}

int tg__writer_call(tg_cache *c, tg__cache_op *op) {
  uint64_t seq = tg__writer_queue(c, op);
  if (!seq) return tg__writer_refused(c);
  pthread_mutex_lock(&c->q_mu);
  wait_done(c, seq);
  pthread_mutex_unlock(&c->q_mu);
  return *op->result;
}
