/* lib/backends/procs_faults.c: workers that die, hang or misbehave, and
 * their replacement.
 *
 * A worker's death is learned from its pidfd (or from EOF on its socket,
 * after which it gets a short grace period to exit before SIGKILL), and
 * its status from waitpid, so every child is reaped. The task it was
 * running (the shared slot says which, procs_worker.c) fails with a
 * message naming the task and how the worker died, or runs again if it
 * has attempts left; the tasks queued behind it never started and simply
 * go back to the queue. Then a new worker takes the slot.
 *
 * A slot whose workers keep dying right after they start, with no task to
 * blame, is given up after QUICK_DEATHS in a row; when every slot is given
 * up, queued tasks fail rather than wait forever.
 *
 * A run that ended early (its deadline passed, a task failed, it was
 * cancelled) must not wait for tasks that ignore tg_task_cancelled(),
 * loop, block in a system call or whose worker was stopped: a worker
 * holding tasks of such a run that makes no progress for ENDED_GRACE is
 * killed and replaced, like one past a task's timeout. Its tasks of other
 * runs go back to the queue.
 *
 * Thread safety: the IO thread only. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "procs_internal.h"

#define EOF_GRACE 0.5      /* seconds from EOF to SIGKILL */
#define QUICK_SECS 1.0     /* a death this soon after the fork is "quick" */
#define QUICK_DEATHS 5
#define CANCEL_POLL 0.05   /* seconds between looks at cancelled runs */
#define TIMEOUT_POLL 0.005 /* while a task with a timeout waits its turn */
#define SHUTDOWN_GRACE 1.0 /* seconds workers get to exit when told */
#define TRIM_AFTER 2.0     /* seconds a free parent segment is kept */
#define ENDED_GRACE 0.5    /* seconds a worker gets to notice that its
                              run ended before it is killed */

static void reset_shared(tg__ppool *p, int slot) {
  tg__pshared *sh = &p->shared[slot];
  atomic_store(&sh->cur, 0);
  atomic_store(&sh->start_ns, 0);
  atomic_store(&sh->run.cancel, 0);
}

static void close_worker(tg__ppool *p, tg__pworker *w) {
  tg__pp_unwatch(p, w);
  if (w->c.fd >= 0) tg__fd_untrack(w->c.fd);
  tg__pconn_close(&w->c);
  if (w->pidfd >= 0) {
    tg__fd_untrack(w->pidfd);
    close(w->pidfd);
    w->pidfd = -1;
  }
  w->want_out = false;
}

/* ---- births ------------------------------------------------------------------------- */

void tg__pf_respawn(tg__ppool *p, tg__pworker *w) {
  w->spawn = p->next_spawn++;
  w->state = TG__PW_SPAWNING;
  w->respawn_at = 0;
  reset_shared(p, w->slot);
  tg__spawner_request(p->spawner, w->slot, w->spawn);
}

/* w keeps failing: give the slot up; with no slot left, stop waiting. */
static void give_up(tg__ppool *p, tg__pworker *w, const char *why) {
  w->state = TG__PW_DISABLED;
  for (unsigned i = 0; i < p->nw; i++)
    if (p->ws[i].state != TG__PW_DISABLED) return;
  char msg[400];
  snprintf(msg, sizeof msg, "no worker process could be kept running (the last one %.320s)",
           why);
  pthread_mutex_lock(&p->mu);
  if (!p->start_rc) {
    p->start_rc = TG_EWORKER;
    snprintf(p->start_msg, sizeof p->start_msg, "%.250s", msg);
  }
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  tg__pf_no_workers(p, msg);
}

/* A failed start or a quick death: try again later, or give up. */
static void retry_start(tg__ppool *p, tg__pworker *w, const char *why) {
  if (++w->quick_deaths >= QUICK_DEATHS) {
    give_up(p, w, why);
    return;
  }
  w->state = TG__PW_DOWN;
  w->respawn_at = tg__now() + 0.05 * w->quick_deaths;
}

void tg__pf_adopt(tg__ppool *p) {
  atomic_store(&p->born_any, 0);
  for (unsigned i = 0; i < p->nw; i++) {
    pthread_mutex_lock(&p->mu);
    int rc = p->born_rc[i];
    tg__spawned sp = p->born[i];
    uint32_t spawn = p->born_spawn[i];
    p->born_rc[i] = 0;
    pthread_mutex_unlock(&p->mu);
    tg__pworker *w = &p->ws[i];
    if (!rc) continue;
    if (rc < 0 || spawn != w->spawn) {
      char why[128];
      snprintf(why, sizeof why, "could not be forked: %s", tg_strerror(rc));
      if (rc < 0) retry_start(p, w, why);
      continue;
    }
    w->pid = sp.pid;
    w->pidfd = sp.pidfd;
    tg__pconn_init(&w->c, sp.sock);
    w->state = TG__PW_STARTING;
    w->started = tg__now();
    w->seq = 0;
    w->kill_at = 0;
    w->kill_code = TG_OK;
    if (tg__pp_watch(p, w) != TG_OK) tg__pf_kill(p, w, TG_EPROTO, "could not be watched");
  }
}

/* ---- deaths ------------------------------------------------------------------------- */

void tg__pf_kill(tg__ppool *p, tg__pworker *w, int code, const char *why) {
  if (w->pid <= 0) return;
  w->kill_code = code;
  w->kill_cur = atomic_load(&p->shared[w->slot].cur);
  snprintf(w->kill_why, sizeof w->kill_why, "%s", why);
  kill(w->pid, SIGKILL);
  tg__pp_unwatch_sock(p, w); /* its end of stream would wake us in a loop */
  w->state = TG__PW_DYING;
  w->kill_at = 0;
}

void tg__pf_eof(tg__ppool *p, tg__pworker *w) {
  if (w->state == TG__PW_DYING) return;
  tg__pp_unwatch_sock(p, w); /* the pidfd will say when it is gone */
  w->state = TG__PW_DYING;
  w->kill_at = tg__now() + EOF_GRACE;
}

bool tg__pf_reap(tg__ppool *p, tg__pworker *w, bool block) {
  if (w->pid <= 0) return false;
  int st = 0;
  pid_t r;
  do {
    r = waitpid(w->pid, &st, block ? 0 : WNOHANG);
  } while (r < 0 && errno == EINTR);
  if (r == 0) return false;
  tg__pf_dead(p, w, r < 0 ? -1 : st);
  return true;
}

/* The message for the task w was running when it died. */
static int blame(tg__pworker *w, int status, const char *key, char *msg, size_t size) {
  if (w->kill_code == TG_ETIMEDOUT) {
    snprintf(msg, size, "%s", w->kill_why);
    return TG_ETIMEDOUT;
  }
  char how[320];
  if (w->kill_code) snprintf(how, sizeof how, "%s and was killed", w->kill_why);
  else if (status < 0) snprintf(how, sizeof how, "ended (its status was collected elsewhere)");
  else tg__describe_status(status, how, sizeof how);
  snprintf(msg, size, "worker %d (pid %d) %s while running task '%s'", w->slot,
           (int)w->pid, how, key);
  return TG_EWORKER;
}

/* Fail or retry the task w was running; queue the others again. */
static bool settle_tasks(tg__ppool *p, tg__pworker *w, int status) {
  uint64_t cur = w->kill_code ? w->kill_cur : atomic_load(&p->shared[w->slot].cur);
  bool running = cur & 1, blamed = false;
  uint32_t cseq = (uint32_t)(cur >> 32), cidx = (uint32_t)(cur >> 1) & 0x7fffffff;
  for (tg__pbatch *b = w->head, *nb; b; b = nb) {
    nb = b->next;
    for (uint32_t i = 0; i < b->n; i++) {
      tg__ptask pt = b->t[i];
      if (!pt.t) continue;
      b->t[i].t = NULL;
      if (running && b->seq == cseq && i == cidx) {
        char kb[TG__NAME_MAX + 32], msg[512];
        const char *key = tg__run_key(pt.t->run, pt.t->node, kb, sizeof kb);
        int code = blame(w, status, key, msg, sizeof msg);
        int64_t t0 = atomic_load(&p->shared[w->slot].start_ns);
        double ran = (double)(tg__pnow_ns() - t0) * 1e-9;
        p->w.worker = w->slot;
        tg__pd_task_failed(p, &pt, tg__pd_args(b, &pt), code, msg, t0, ran);
        blamed = true;
      } else {
        tg__pd_requeue(p, &pt, tg__pd_args(b, &pt));
      }
    }
    tg__pd_free_batch(p, b);
  }
  w->head = w->tail = NULL;
  w->nbatches = w->unknown_out = w->timeouts_out = 0;
  w->est_out = 0;
  return blamed;
}

void tg__pf_dead(tg__ppool *p, tg__pworker *w, int status) {
  /* What it sent before it died still counts (its pidfd may be seen
   * before the data on its socket). */
  if (w->c.fd >= 0 && w->kill_code != TG_EPROTO && !atomic_load(&p->stopping))
    tg__pp_read(p, w);
  bool blamed = settle_tasks(p, w, status);
  if (!atomic_load(&p->stopping) && !w->kill_code) p->stats.deaths++;
  char how[320];
  if (w->kill_code) snprintf(how, sizeof how, "%s", w->kill_why);
  else if (status < 0) snprintf(how, sizeof how, "ended");
  else tg__describe_status(status, how, sizeof how);
  close_worker(p, w);
  w->pid = 0;
  w->state = TG__PW_DOWN;
  w->kill_code = TG_OK;
  w->kill_at = 0;
  w->ended_since = 0;
  tg__psegs_forget_slot(&p->segs, w->slot);
  w->nforget = w->nrelease = 0;
  size_t n = w->naffine; /* its own queue goes to the others */
  w->naffine = 0;
  for (size_t i = 0; i < n; i++) tg__pd_push_ready(p, w->affine[i]);
  if (atomic_load(&p->stopping)) return;
  bool quick = !blamed && tg__now() - w->started < QUICK_SECS;
  if (quick) retry_start(p, w, how);
  else {
    w->quick_deaths = 0;
    tg__pf_respawn(p, w);
  }
}

void tg__pf_no_workers(tg__ppool *p, const char *why) {
  while (p->nretry || p->nready || p->pq.n) {
    if (p->nretry) {
      tg__ptask pt = p->retry[--p->nretry];
      tg__call_report rep = tg__pd_report(p, &pt, -1, -1); /* the calls before */
      tg__task_end_report(&p->w, pt.t, TG_EWORKER, NULL, why, &rep);
      tg__free(pt.args);
    } else {
      tg__task *t = p->nready ? p->ready[--p->nready] : tg__pd_pq_pop(p);
      tg_value *const *args;
      size_t nargs;
      if (tg__task_begin(&p->w, t, &args, &nargs))
        tg__task_end(&p->w, t, TG_EWORKER, NULL, why);
    }
    tg__pd_take_made_ready(p); /* they fail in turn */
  }
}

/* ---- polling: timeouts, cancellation, kills, respawns ------------------------------ */

static double earlier(double a, double b) { return a < 0 || b < a ? b : a; }

/* Kill w if it runs a task past its timeout; seconds until the next look. */
static double watch_timeouts(tg__ppool *p, tg__pworker *w, double next) {
  uint64_t cur = atomic_load(&p->shared[w->slot].cur);
  if (!(cur & 1)) return earlier(next, TIMEOUT_POLL);
  uint32_t seq = (uint32_t)(cur >> 32), idx = (uint32_t)(cur >> 1) & 0x7fffffff;
  for (tg__pbatch *b = w->head; b; b = b->next) {
    if (b->seq != seq) continue;
    if (idx >= b->n || !b->t[idx].t || !(b->t[idx].timeout > 0)) return earlier(next, TIMEOUT_POLL);
    double tmo = b->t[idx].timeout, grace = tmo * 0.05 > 0.02 ? tmo * 0.05 : 0.02;
    double ran = (double)(tg__pnow_ns() - atomic_load(&p->shared[w->slot].start_ns)) * 1e-9;
    if (ran < tmo + grace) return earlier(next, tmo + grace - ran);
    char why[256];
    snprintf(why, sizeof why,
             "timed out after %g s: its worker %d (pid %d) was "
             "killed after %.3f s and replaced",
             tmo, w->slot, (int)w->pid, ran);
    tg__pf_kill(p, w, TG_ETIMEDOUT, why);
    w->kill_cur = cur;
    return next;
  }
  return earlier(next, TIMEOUT_POLL);
}

/* Let w's tasks see tg_task_cancelled() when every run it works for is. */
static void watch_cancel(tg__ppool *p, tg__pworker *w) {
  bool all = w->head != NULL;
  for (tg__pbatch *b = w->head; b && all; b = b->next)
    all = b->run && tg__run_cancelled(b->run);
  _Atomic int *c = &p->shared[w->slot].run.cancel;
  if (atomic_load_explicit(c, memory_order_relaxed) != all)
    atomic_store_explicit(c, all, memory_order_release);
}

/* Does w hold unfinished tasks of a run that ended early? */
static bool holds_ended(const tg__pworker *w) {
  for (const tg__pbatch *b = w->head; b; b = b->next) {
    if (b->run) {
      if (tg__run_cancelled(b->run)) return true;
      continue;
    }
    for (uint32_t i = 0; i < b->n; i++)
      if (b->t[i].t && tg__run_cancelled(b->t[i].t->run)) return true;
  }
  return false;
}

/* Whether the task w runs now (shared cur) belongs to a live run. */
static bool runs_live(const tg__pworker *w, uint64_t cur) {
  if (!(cur & 1)) return false;
  uint32_t seq = (uint32_t)(cur >> 32), idx = (uint32_t)(cur >> 1) & 0x7fffffff;
  for (const tg__pbatch *b = w->head; b; b = b->next)
    if (b->seq == seq)
      return idx < b->n && b->t[idx].t && !tg__run_cancelled(b->t[idx].t->run);
  return false;
}

/* Kill w when it holds tasks of an ended run and has not moved on from
 * the task it runs (or waits for) for ENDED_GRACE: the run would
 * otherwise wait for it forever. A long task of a live run is left
 * alone (its own timeout applies). Seconds until the next look. */
static double watch_ended(tg__ppool *p, tg__pworker *w, double now, double next) {
  uint64_t cur = atomic_load(&p->shared[w->slot].cur);
  if (!holds_ended(w) || runs_live(w, cur)) {
    w->ended_since = 0;
    return next;
  }
  if (w->ended_since <= 0 || cur != w->ended_cur) { /* it made progress */
    w->ended_since = now;
    w->ended_cur = cur;
    return earlier(next, ENDED_GRACE);
  }
  if (now - w->ended_since < ENDED_GRACE) return earlier(next, w->ended_since + ENDED_GRACE - now);
  char why[256];
  snprintf(why, sizeof why,
           "was still busy %.1f s after its run ended (timed out, failed or cancelled)",
           now - w->ended_since);
  tg__pf_kill(p, w, TG_ECANCELED, why);
  w->kill_cur = cur;
  w->ended_since = 0;
  return next;
}

double tg__pf_poll(tg__ppool *p, double now) {
  double next = -1;
  for (unsigned i = 0; i < p->nw; i++) {
    tg__pworker *w = &p->ws[i];
    if (w->state == TG__PW_DOWN && w->respawn_at > 0) {
      if (now >= w->respawn_at) tg__pf_respawn(p, w);
      else next = earlier(next, w->respawn_at - now);
    }
    if (w->state == TG__PW_DYING) {
      if (w->pidfd < 0 && tg__pf_reap(p, w, false)) continue;
      if (w->kill_at > 0 && now >= w->kill_at) {
        kill(w->pid, SIGKILL);
        w->kill_at = 0;
      } else if (w->kill_at > 0) {
        next = earlier(next, w->kill_at - now);
      }
      if (w->pidfd < 0) next = earlier(next, 0.01);
      continue;
    }
    if (w->state != TG__PW_UP || !w->head) continue;
    watch_cancel(p, w);
    next = earlier(next, CANCEL_POLL);
    if (w->timeouts_out) next = watch_timeouts(p, w, next);
    if (w->state == TG__PW_UP) next = watch_ended(p, w, now, next);
  }
  if (p->segs.pool.n) {
    tg__segpool_trim(&p->segs.pool, now - TRIM_AFTER);
    if (p->segs.pool.n) next = earlier(next, TRIM_AFTER);
  }
  return next;
}

/* ---- the end ------------------------------------------------------------------------ */

void tg__pf_shutdown(tg__ppool *p) {
  for (unsigned i = 0; i < p->nw; i++) { /* EOF tells a worker to exit */
    tg__pworker *w = &p->ws[i];
    if (w->pid <= 0) continue;
    tg__pp_unwatch(p, w);
    if (w->c.fd >= 0) tg__fd_untrack(w->c.fd);
    tg__pconn_close(&w->c);
  }
  double deadline = tg__now() + SHUTDOWN_GRACE;
  for (;;) {
    bool left = false;
    for (unsigned i = 0; i < p->nw; i++)
      if (p->ws[i].pid > 0 && !tg__pf_reap(p, &p->ws[i], false)) left = true;
    if (!left) break;
    if (tg__now() > deadline) {
      for (unsigned i = 0; i < p->nw; i++)
        if (p->ws[i].pid > 0) {
          kill(p->ws[i].pid, SIGKILL);
          tg__pf_reap(p, &p->ws[i], true);
        }
      break;
    }
    usleep(1000);
  }
}
