/* lib/backends/processes.c: the processes backend: a pool of forked worker
 * processes driven by one IO thread of the parent (see procs_internal.h
 * for the whole picture).
 *
 * The IO thread owns all scheduling state: it takes submitted tasks,
 * sends batches, reads results (finishing tasks with tg__task_end, which
 * leaves the tasks made ready to it directly), and handles deaths,
 * timeouts and segment bookkeeping. Other threads only append to the
 * injection list (submit) or the segment notices, and wake it through an
 * eventfd. Its loop: adopt new workers, take submissions, forget unused
 * segments, dispatch, flush, then sleep in epoll_wait until a socket, a
 * pidfd, the eventfd or the next timeout/cancellation check.
 *
 * Future callbacks of tasks finished here run on the IO thread, which
 * holds the pool's share of the fork lock (tg__fork_busy): besides not
 * blocking (executor.h), they must not create or free a processes
 * executor (its forks would wait for this thread).
 *
 * Thread safety: submit from any thread; create/destroy by the owner. */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "procs_internal.h"
#include "util/thread.h"

#define START_TIMEOUT 60.0 /* seconds create waits for the workers' hellos */
#define SPIN_WORK 100e-6   /* work in flight below which results are awaited */
#define SPIN_SECS 50e-6    /*   by looking for them this long before sleeping */

enum { EV_WAKE = 0, EV_SOCK = 1, EV_PID = 2 };

static _Thread_local tg__ppool *tl_io; /* set on the IO thread */

static uint64_t ev_data(const tg__pworker *w, unsigned kind) {
  return (uint64_t)w->spawn << 32 | (uint64_t)kind << 24 | (uint64_t)w->slot;
}

void tg__pp_wake(tg__ppool *p) {
  uint64_t one = 1;
  (void)!write(p->wake_fd, &one, sizeof one);
}

int tg__pp_watch(tg__ppool *p, tg__pworker *w) {
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ev_data(w, EV_SOCK)};
  if (w->c.fd >= 0 && epoll_ctl(p->ep, EPOLL_CTL_ADD, w->c.fd, &ev) != 0) return -errno;
  ev.data.u64 = ev_data(w, EV_PID);
  if (w->pidfd >= 0 && epoll_ctl(p->ep, EPOLL_CTL_ADD, w->pidfd, &ev) != 0) return -errno;
  w->want_out = false;
  return TG_OK;
}

void tg__pp_unwatch_sock(tg__ppool *p, tg__pworker *w) {
  if (w->c.fd >= 0) epoll_ctl(p->ep, EPOLL_CTL_DEL, w->c.fd, NULL);
}

void tg__pp_unwatch(tg__ppool *p, tg__pworker *w) {
  tg__pp_unwatch_sock(p, w);
  if (w->pidfd >= 0) epoll_ctl(p->ep, EPOLL_CTL_DEL, w->pidfd, NULL);
}

void tg__pp_want_out(tg__ppool *p, tg__pworker *w, bool on) {
  if (w->want_out == on || w->c.fd < 0) return;
  struct epoll_event ev = {.events = EPOLLIN | (on ? EPOLLOUT : 0u),
                           .data.u64 = ev_data(w, EV_SOCK)};
  if (epoll_ctl(p->ep, EPOLL_CTL_MOD, w->c.fd, &ev) == 0) w->want_out = on;
}

/* ---- submissions ---------------------------------------------------------------------- */

static void procs_submit(tg__backend *b, tg__task *const *tasks, size_t n) {
  tg__ppool *p = (tg__ppool *)b;
  if (n == 0) return;
  if (tl_io == p) { /* from a callback on the IO thread: queue directly */
    for (size_t i = n; i-- > 0;) tg__pd_push_ready(p, tasks[i]);
    return;
  }
  for (size_t i = 0; i + 1 < n; i++) tasks[i]->next = tasks[i + 1];
  tasks[n - 1]->next = NULL;
  pthread_mutex_lock(&p->mu);
  if (p->inj_tail) p->inj_tail->next = tasks[0];
  else p->inj_head = tasks[0];
  p->inj_tail = tasks[n - 1];
  pthread_mutex_unlock(&p->mu);
  tg__pp_wake(p);
}

/* Move submitted tasks to the ready stack, the most urgent on top. */
static void take_injected(tg__ppool *p) {
  pthread_mutex_lock(&p->mu);
  tg__task *t = p->inj_head;
  p->inj_head = p->inj_tail = NULL;
  pthread_mutex_unlock(&p->mu);
  tg__task *rev = NULL;
  while (t) {
    tg__task *nx = t->next;
    t->next = rev;
    rev = t;
    t = nx;
  }
  while (rev) {
    tg__task *nx = rev->next;
    tg__pd_push_ready(p, rev);
    rev = nx;
  }
}

/* ---- the IO thread --------------------------------------------------------------------- */

int tg__pp_read(tg__ppool *p, tg__pworker *w) {
  for (;;) {
    ssize_t n = tg__pconn_fill(&w->c, false);
    if (n == -EAGAIN) return TG_OK;
    if (n <= 0) return n == 0 ? 1 : (int)n;
    p->stats.sock_in += (uint64_t)n;
    tg__pmsg m;
    int r;
    while ((r = tg__pconn_next(&w->c, &m)) == 1) {
      r = tg__pd_message(p, w, &m);
      tg__pconn_done(&w->c);
      if (r != TG_OK) break;
    }
    if (r < 0) return TG_EPROTO;
  }
}

static void on_socket(tg__ppool *p, tg__pworker *w, uint32_t events) {
  if (events & EPOLLOUT) {
    size_t before = w->c.sent;
    int rc = tg__pconn_flush(&w->c, false);
    p->stats.sock_out += w->c.sent - before;
    if (rc < 0) {
      tg__pf_eof(p, w);
      return;
    }
    tg__pp_want_out(p, w, rc == 1);
  }
  if (!(events & (EPOLLIN | EPOLLHUP | EPOLLERR))) return;
  int rc = tg__pp_read(p, w);
  if (rc == TG_EPROTO) tg__pf_kill(p, w, TG_EPROTO, "sent a malformed message");
  else if (rc != TG_OK) tg__pf_eof(p, w);
}

static void on_event(tg__ppool *p, const struct epoll_event *ev) {
  uint64_t d = ev->data.u64;
  unsigned kind = (unsigned)(d >> 24) & 0xff, slot = (unsigned)d & 0xffffff;
  if (kind == EV_WAKE) {
    uint64_t x;
    (void)!read(p->wake_fd, &x, sizeof x);
    return;
  }
  if (slot >= p->nw) return;
  tg__pworker *w = &p->ws[slot];
  if (w->spawn != (uint32_t)(d >> 32) || w->pid <= 0) return; /* stale */
  if (kind == EV_PID) tg__pf_reap(p, w, false);
  else if (w->state != TG__PW_DYING) on_socket(p, w, ev->events);
}

/* Whether a result is due so soon that looking for it beats sleeping:
 * little known work in flight (a chain of short tasks, say). */
static bool result_soon(const tg__ppool *p) {
  double est = 0;
  bool any = false;
  for (unsigned i = 0; i < p->nw; i++) {
    const tg__pworker *w = &p->ws[i];
    if (!w->nbatches || w->state != TG__PW_UP) continue;
    if (w->unknown_out) return false;
    est += w->est_out;
    any = true;
  }
  return any && est < SPIN_WORK;
}

static bool can_dispatch(const tg__ppool *p) {
  if (!p->nready && !p->nretry && !p->pq.n) return false;
  for (unsigned i = 0; i < p->nw; i++)
    if (p->ws[i].state == TG__PW_UP && p->ws[i].nbatches == 0) return true;
  return false;
}

static void *io_main(void *arg) {
  tg__ppool *p = arg;
  tl_io = p;
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
  struct epoll_event evs[64];
  tg__fork_busy();
  while (!atomic_load(&p->stopping)) {
    if (atomic_load(&p->born_any)) tg__pf_adopt(p);
    take_injected(p);
    tg__pd_segments(p);
    tg__pd_dispatch(p);
    if (p->segs.ncopies && tg__pd_idle(p)) {
      tg__psegs_drop_copies(&p->segs);
      tg__pd_segments(p);
    }
    tg__pd_flush(p);
    double next = tg__pf_poll(p, tg__now());
    pthread_mutex_lock(&p->mu); /* before runs can finish (next line) */
    p->stats_pub = p->stats;
    pthread_mutex_unlock(&p->mu);
    tg__wctx_flush(&p->w); /* may finish runs, whose callbacks may submit */
    if (can_dispatch(p)) continue;
    int timeout = next < 0 ? -1 : (int)ceil(next * 1000);
    tg__fork_idle();
    int k = 0;
    for (double until = result_soon(p) ? tg__now() + SPIN_SECS : 0; k == 0 && tg__now() < until;) {
      k = epoll_wait(p->ep, evs, 64, 0);
      if (k == 0) sched_yield();
    }
    if (k == 0) k = epoll_wait(p->ep, evs, 64, timeout);
    tg__fork_busy();
    for (int i = 0; i < k; i++) on_event(p, &evs[i]);
  }
  tg__pf_adopt(p);
  tg__fork_idle();
  tg__pf_shutdown(p);
  tg__wctx_flush(&p->w);
  return NULL;
}

/* ---- the spawner's side ------------------------------------------------------------------ */

static void child_entry(void *ctx, int slot, uint32_t spawn, int sock) {
  tg__ppool *p = ctx;
  tg__pworker_cfg cfg = {p->reg, p->nfuncs, &p->shared[slot], slot, spawn, sock};
  tg__pworker_main(&cfg);
}

static void on_spawned(void *ctx, int slot, uint32_t spawn, int rc,
                       const tg__spawned *sp) {
  tg__ppool *p = ctx;
  if (rc == TG_OK) {
    tg__pout_add(p->out, sp->out_fd, 1);
    tg__pout_add(p->out, sp->err_fd, 2);
  }
  pthread_mutex_lock(&p->mu);
  p->born_rc[slot] = rc == TG_OK ? 1 : rc;
  if (rc == TG_OK) p->born[slot] = *sp;
  p->born_spawn[slot] = spawn;
  pthread_mutex_unlock(&p->mu);
  atomic_store(&p->born_any, 1);
  tg__pp_wake(p);
}

/* Workers born after the IO thread stopped: kill and reap them. */
static void reap_unadopted(tg__ppool *p) {
  for (unsigned i = 0; p->born_rc && i < p->nw; i++) {
    if (p->born_rc[i] != 1) continue;
    tg__spawned *sp = &p->born[i];
    kill(sp->pid, SIGKILL);
    while (waitpid(sp->pid, NULL, 0) < 0 && errno == EINTR) {
    }
    tg__fd_untrack(sp->sock);
    close(sp->sock);
    if (sp->pidfd >= 0) {
      tg__fd_untrack(sp->pidfd);
      close(sp->pidfd);
    }
    p->born_rc[i] = 0;
  }
}

/* ---- create and destroy -------------------------------------------------------------------- */

static void pool_free(tg__ppool *p) {
  tg__pd_free(p);
  for (unsigned i = 0; p->ws && i < p->nw; i++) {
    tg__pworker *w = &p->ws[i];
    tg__pconn_close(&w->c);
    tg__free(w->forget);
    tg__free(w->release);
    tg__free(w->affine);
  }
  tg__psegs_free(&p->segs);
  if (p->shared) munmap(p->shared, p->shared_len);
  if (p->ep >= 0) {
    tg__fd_untrack(p->ep);
    close(p->ep);
  }
  if (p->wake_fd >= 0) {
    tg__fd_untrack(p->wake_fd);
    close(p->wake_fd);
  }
  tg__wctx_destroy(&p->w);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  tg__free(p->ws);
  tg__free(p->born);
  tg__free(p->born_rc);
  tg__free(p->born_spawn);
  tg__free(p);
}

static void procs_destroy(tg__backend *b) {
  tg__ppool *p = (tg__ppool *)b;
  if (!p) return;
  if (p->io_started) {
    atomic_store(&p->stopping, 1);
    tg__pp_wake(p);
    pthread_join(p->io, NULL);
  }
  tg__spawner_stop(p->spawner); /* children it forks die with it */
  reap_unadopted(p);
  tg__pout_stop(p->out);
  pool_free(p);
}

/* Allocations and fds of a new pool; workers not started yet. */
static int pool_new(const tg__backend_cfg *cfg, tg__ppool **out, tg_error *err) {
  unsigned nw = cfg->workers ? cfg->workers : 1;
  tg__ppool *p = tg__calloc(1, sizeof *p);
  if (!p) return tg__error_set(err, TG_ENOMEM, "out of memory");
  p->base.ops = &tg__backend_processes;
  p->base.workers = nw;
  p->nw = nw;
  p->ex = cfg->ex;
  p->reg = cfg->ex->reg;
  p->nfuncs = tg_registry_count(p->reg);
  p->self = getpid();
  p->ep = p->wake_fd = -1;
  p->next_spawn = 1;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  tg__wctx_init(&p->w, 0);
  *out = p;
  p->ws = tg__calloc(nw, sizeof *p->ws);
  p->born = tg__calloc(nw, sizeof *p->born);
  p->born_rc = tg__calloc(nw, sizeof *p->born_rc);
  p->born_spawn = tg__calloc(nw, sizeof *p->born_spawn);
  if (!p->ws || !p->born || !p->born_rc || !p->born_spawn)
    return tg__error_set(err, TG_ENOMEM, "out of memory for %u workers", nw);
  for (unsigned i = 0; i < nw; i++) {
    p->ws[i].slot = (int)i;
    p->ws[i].pidfd = -1;
    tg__pconn_init(&p->ws[i].c, -1);
  }
  p->shared_len = tg__align_up(nw * sizeof *p->shared, 4096);
  void *sh = mmap(NULL, p->shared_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (sh == MAP_FAILED) {
    p->shared = NULL;
    return tg__error_set(err, -errno, "cannot map memory shared with the workers");
  }
  p->shared = sh;
  p->ep = epoll_create1(EPOLL_CLOEXEC);
  if (p->ep < 0) return tg__error_set(err, -errno, "epoll_create1 failed");
  tg__fd_track(p->ep);
  p->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (p->wake_fd < 0) return tg__error_set(err, -errno, "eventfd failed");
  tg__fd_track(p->wake_fd);
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)EV_WAKE << 24};
  if (epoll_ctl(p->ep, EPOLL_CTL_ADD, p->wake_fd, &ev) != 0)
    return tg__error_set(err, -errno, "epoll_ctl failed");
  if (tg__psegs_init(&p->segs, p->wake_fd, &p->stats) != TG_OK)
    return tg__error_set(err, TG_ENOMEM, "out of memory");
  return TG_OK;
}

/* Wait for every worker's hello (or a reason they cannot start). */
static int wait_started(tg__ppool *p, tg_error *err) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += (time_t)START_TIMEOUT;
  int rc = TG_OK;
  pthread_mutex_lock(&p->mu);
  while (p->nup < p->nw && !p->start_rc && rc == TG_OK)
    if (pthread_cond_timedwait(&p->cv, &p->mu, &ts) == ETIMEDOUT) rc = TG_ETIMEDOUT;
  if (p->start_rc) rc = tg__error_set(err, p->start_rc, "%s", p->start_msg);
  else if (rc) rc = tg__error_set(err, rc, "worker processes did not start within %g s",
                                  START_TIMEOUT);
  pthread_mutex_unlock(&p->mu);
  return rc;
}

static int procs_create(const tg__backend_cfg *cfg, tg__backend **out, tg_error *err) {
  tg__ppool *p = NULL;
  int rc = pool_new(cfg, &p, err);
  if (rc == TG_OK) rc = tg__pout_start(&p->out, err);
  if (rc == TG_OK) {
    uint32_t first = p->next_spawn;
    for (unsigned i = 0; i < p->nw; i++) { /* the IO thread adopts them */
      p->ws[i].spawn = p->next_spawn++;
      p->ws[i].state = TG__PW_SPAWNING;
    }
    int e = tg__thread_start(&p->io, io_main, p);
    if (e) rc = tg__error_set(err, -e, "cannot start the IO thread");
    p->io_started = e == 0;
    /* Last, with every request queued: from here until the workers' hellos
     * this thread only waits, so it cannot hold an allocator lock that a
     * fork would copy into a child. */
    if (rc == TG_OK)
      rc = tg__spawner_start(child_entry, on_spawned, p, p->nw, first, &p->spawner, err);
  }
  if (rc == TG_OK) rc = wait_started(p, err);
  if (rc != TG_OK) {
    procs_destroy(p ? &p->base : NULL);
    return rc;
  }
  *out = &p->base;
  return TG_OK;
}

int tg__processes_stats(const tg_executor *ex, tg__pstats *out) {
  if (!ex || !out || ex->ops != &tg__backend_processes) return TG_EINVAL;
  tg__ppool *p = (tg__ppool *)ex->backend;
  pthread_mutex_lock(&p->mu);
  *out = p->stats_pub;
  pthread_mutex_unlock(&p->mu);
  return TG_OK;
}

const tg__backend_ops tg__backend_processes = {
    TG__BACKEND_OPS_V1, "processes", procs_create, procs_submit, procs_destroy,
};
