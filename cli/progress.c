/* cli/progress.c: the one-line progress display on stderr (only when it
 * is a terminal): tasks closed/total, running, cached, failed, rate and
 * ETA, redrawn in place five times a second from the run's events. */
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

struct cli_progress {
  cli_events *ev;
  pthread_t thread;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  bool stop;
};

static void draw(const cli_events *ev) {
  size_t done = ev->done, cached = ev->cached, failed = ev->failed;
  size_t closed = done + cached + failed + ev->skipped, total = ev->total;
  double el = cli_now() - ev->t0, rate = el > 0 ? (double)done / el : 0;
  char eta[32] = "?";
  if (rate > 0 && total >= closed)
    snprintf(eta, sizeof eta, "%.0fs", (double)(total - closed) / rate);
  fprintf(stderr, "\r\033[K[%zu/%zu] running %zu, cached %zu, failed %zu, "
          "%.1f tasks/s, ETA %s", closed, total, (size_t)ev->running, cached, failed,
          rate, eta);
  fflush(stderr);
}

static void *loop(void *arg) {
  cli_progress *p = arg;
  pthread_mutex_lock(&p->mu);
  while (!p->stop) {
    draw(p->ev);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_nsec += 200000000;
    if (until.tv_nsec >= 1000000000) until.tv_sec++, until.tv_nsec -= 1000000000;
    pthread_cond_timedwait(&p->cv, &p->mu, &until);
  }
  pthread_mutex_unlock(&p->mu);
  fprintf(stderr, "\r\033[K");
  fflush(stderr);
  return NULL;
}

cli_progress *cli_progress_start(cli_events *ev) {
  cli_progress *p = calloc(1, sizeof *p);
  if (p == NULL) return NULL;
  p->ev = ev;
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  if (pthread_create(&p->thread, NULL, loop, p) != 0) {
    free(p);
    return NULL;
  }
  return p;
}

void cli_progress_stop(cli_progress *p) {
  if (p == NULL) return;
  pthread_mutex_lock(&p->mu);
  p->stop = true;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
  pthread_join(p->thread, NULL);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  free(p);
}
