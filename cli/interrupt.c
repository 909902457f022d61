/* cli/interrupt.c: SIGINT and SIGTERM during `tgraph run`: the first one
 * cancels the compute (tg_cancel), which stops dispatching, ends running
 * tasks and their commands, and keeps what the cache committed; the run
 * then says how far it got and exits 128 + the signal's number. A second
 * one exits at once: what the run started dies with it (workers and sh
 * commands are tied to this process's life). A signal ignored when the
 * run starts is left ignored. */
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

static tg_cancel *token;             /* raised by the first signal */
static void (*last_words)(void);     /* called before a second one exits */
static volatile sig_atomic_t caught; /* its number, 0 before */
static struct sigaction saved_int, saved_term;

static void on_signal(int sig) {
  if (caught) {
    static const char msg[] = "tgraph: interrupted again: stopping at once\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    if (last_words) last_words();
    _exit(128 + sig);
  }
  caught = sig;
  tg_cancel_set(token);
}

int cli_interrupt_start(tg_cancel **out) {
  caught = 0;
  if (token) tg_cancel_reset(token);
  else if (tg_cancel_new(&token) != TG_OK) return TG_ENOMEM;
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  /* A signal ignored at start stays so: a shell without job control
   * starts background commands with SIGINT ignored, out of Ctrl-C's way. */
  sigaction(SIGINT, NULL, &saved_int);
  sigaction(SIGTERM, NULL, &saved_term);
  if (saved_int.sa_handler != SIG_IGN) sigaction(SIGINT, &sa, NULL);
  if (saved_term.sa_handler != SIG_IGN) sigaction(SIGTERM, &sa, NULL);
  *out = token;
  return TG_OK;
}

/* The flag is not freed: a handler already running on another thread
 * (any thread may take the signal) may still raise it. One run per
 * process, so it is one small allocation, reachable until exit. */
int cli_interrupt_stop(void) {
  sigaction(SIGINT, &saved_int, NULL);
  sigaction(SIGTERM, &saved_term, NULL);
  return caught;
}

void cli_interrupt_report(const tg_compute_stats *st, bool cached) {
  /* every task is cached, skipped, failed, cancelled or done (graph.h) */
  size_t left = st->tasks_skipped + st->tasks_failed + st->tasks_cancelled;
  size_t done = st->tasks_total > left ? st->tasks_total - left : 0;
  if (cached)
    fprintf(stderr, "tgraph: interrupted: %zu of %zu tasks done, %zu stored in "
            "the cache; run again to resume\n", done, st->tasks_total, st->cache_stores);
  else
    fprintf(stderr, "tgraph: interrupted: %zu of %zu tasks done; without a cache "
            "a new run starts over\n", done, st->tasks_total);
}

void cli_interrupt_last_words(void (*fn)(void)) { last_words = fn; }
