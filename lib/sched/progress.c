/* lib/sched/progress.c: the one-line progress display of a compute:
 * tasks closed/total, running, cached, failed, rate and ETA, redrawn in
 * place on a terminal from the run's task events, cut to the terminal's
 * width so that it never wraps (a wrapped line cannot be redrawn in
 * place: each redraw would leave a stale row behind). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "util/thread.h"
#include "progress.h"
#include "sched_internal.h"

#define REDRAW_NS 200000000L /* five times a second */

struct tg__progress {
  int fd;
  tg_event_fn chain;
  void *chain_ctx;
  const tg_graph *g;
  size_t nnodes;
  _Atomic uint8_t *started; /* per graph node: STARTED seen, not closed */
  size_t total;             /* the run's tasks but internal ones: fixed */
  _Atomic size_t running, done, cached, failed, skipped, cancelled;
  double t0;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
};

bool tg__progress_wanted(int fd) {
  const char *term = getenv("TERM");
  if (term != NULL && strcmp(term, "dumb") == 0) return false;
  return isatty(fd) == 1;
}

void tg__progress_on_event(void *ctx, const tg_event *e) {
  tg__progress *p = ctx;
  if (e->node < p->nnodes) { /* internal nodes report no events */
    bool was_running = e->kind != TG_EVENT_STARTED && atomic_exchange(&p->started[e->node], 0);
    switch (e->kind) {
      case TG_EVENT_STARTED:
        atomic_store(&p->started[e->node], 1);
        atomic_fetch_add(&p->running, 1);
        break;
      case TG_EVENT_FINISHED: atomic_fetch_add(&p->done, 1); break;
      case TG_EVENT_FAILED: atomic_fetch_add(&p->failed, 1); break;
      case TG_EVENT_CACHED: atomic_fetch_add(&p->cached, 1); break;
      case TG_EVENT_SKIPPED: atomic_fetch_add(&p->skipped, 1); break;
      case TG_EVENT_CANCELLED: atomic_fetch_add(&p->cancelled, 1); break;
    }
    if (was_running) atomic_fetch_sub(&p->running, 1);
  }
  if (p->chain) p->chain(p->chain_ctx, e);
}

/* Columns of the terminal on fd (80 when it does not say). */
static size_t columns(int fd) {
  struct winsize ws;
  if (ioctl(fd, TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0) return 80;
  return ws.ws_col;
}

/* The line for a terminal `width` columns wide into buf (ASCII: one byte
 * per column); the longest form that fits in width - 1 columns, so the
 * cursor never reaches the last one (some terminals wrap there). */
static size_t compose(const tg__progress *p, size_t width, char *buf, size_t size) {
  size_t done = p->done, cached = p->cached, failed = p->failed;
  size_t closed = done + cached + failed + p->skipped + p->cancelled, running = p->running;
  double el = tg__now() - p->t0, rate = el > 0 ? (double)done / el : 0;
  char eta[32] = "?";
  if (rate > 0 && p->total >= closed)
    snprintf(eta, sizeof eta, "%.0fs", (double)(p->total - closed) / rate);
  size_t fit = width > 1 ? width - 1 : 1, n = 0;
  for (int form = 0; form < 4; form++) {
    int k;
    if (form == 0)
      k = snprintf(buf, size, "[%zu/%zu] running %zu, cached %zu, failed %zu, %.1f tasks/s, "
                   "ETA %s", closed, p->total, running, cached, failed, rate, eta);
    else if (form == 1)
      k = snprintf(buf, size, "[%zu/%zu] running %zu, cached %zu, failed %zu", closed,
                   p->total, running, cached, failed);
    else if (form == 2)
      k = snprintf(buf, size, "[%zu/%zu] %zu running", closed, p->total, running);
    else
      k = snprintf(buf, size, "[%zu/%zu]", closed, p->total);
    n = k < 0 ? 0 : (size_t)k < size ? (size_t)k : size - 1;
    if (n <= fit) break;
  }
  return n < fit ? n : fit;
}

/* One redraw: back to the start of the row, the line, clear the rest;
 * in one write so that nothing lands in between. */
static void draw(const tg__progress *p) {
  char line[256], out[300];
  size_t n = compose(p, columns(p->fd), line, sizeof line);
  int k = snprintf(out, sizeof out, "\r%.*s\033[K", (int)n, line);
  if (k > 0) (void)!write(p->fd, out, (size_t)k);
}

static void *loop(void *arg) {
  tg__progress *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    draw(p);
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_nsec += REDRAW_NS;
    if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
    pthread_cond_timedwait(&p->cv, &p->mu, &until);
  }
  pthread_mutex_unlock(&p->mu);
  static const char clear[] = "\r\033[K";
  (void)!write(p->fd, clear, sizeof clear - 1);
  return NULL;
}

tg__progress *tg__progress_start(const tg__run *r, int fd, tg_event_fn chain,
                                 void *chain_ctx) {
  tg__progress *p = tg__calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  size_t nnodes = tg_graph_size(r->g);
  p->started = tg__calloc(nnodes ? nnodes : 1, 1);
  if (p->started == NULL) {
    tg__free(p);
    return NULL;
  }
  *p = (tg__progress){.fd = fd, .chain = chain, .chain_ctx = chain_ctx, .g = r->g,
                      .nnodes = nnodes,
                      .started = p->started, .total = r->plan.ntasks - r->plan.ninternal, .t0 = tg__now()};
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_cond_init(&p->cv, &ca);
  pthread_condattr_destroy(&ca);
  pthread_mutex_init(&p->mu, NULL);
  if (tg__thread_start(&p->thread, loop, p) != 0) {
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    tg__free((void *)p->started);
    tg__free(p);
    return NULL;
  }
  return p;
}

void tg__progress_stop(tg__progress *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  pthread_cond_destroy(&p->cv);
  pthread_mutex_destroy(&p->mu);
  tg__free((void *)p->started);
  tg__free(p);
}
