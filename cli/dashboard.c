/* cli/dashboard.c: `tgraph run --dashboard[=ADDR]` and `--dashboard-stay`:
 * the run's report page served live while it goes (tgraph/dashboard.h),
 * its URL on stderr, and after the run either the end of the server or,
 * when asked to stay, serving on until SIGINT or SIGTERM. */
#include <errno.h>
#include <semaphore.h>
#include <signal.h>
#include <string.h>

#include "cli.h"

int cli_dashboard_option(cli_dashboard *o, bool stay, const char *arg) {
  o->on = true;
  if (stay) {
    o->stay = true;
    return -1;
  }
  tg_error err;
  tg_error_clear(&err);
  if (arg != NULL && tg_dashboard_addr_check(arg, &err) != TG_OK)
    return cli_bad_usage("run", "--dashboard=ADDR: %s", err.msg);
  o->addr = arg;
  return -1;
}

const char *cli_dashboard_hint(const cli_dashboard *o, const char *arg) {
  if (!o->on || o->addr != NULL || arg[0] == '\0' || tg_dashboard_addr_check(arg, NULL) != TG_OK)
    return "";
  return "; an ADDR for --dashboard needs '=', as in --dashboard=8080";
}

int cli_dashboard_start(cli_dashboard *o, tg_report *r) {
  if (!o->on) return -1;
  tg_dashboard_opts opts = {TG_DASHBOARD_OPTS_V1, o->addr, 0};
  tg_error err;
  tg_error_clear(&err);
  if (tg_dashboard_start(r, &opts, &o->d, &err) != TG_OK) {
    cli_error("%s", err.msg);
    return CLI_USAGE;
  }
  /* Shown even with -q: without it the page cannot be opened. */
  fprintf(stderr, "tgraph: dashboard: %s%s\n", tg_dashboard_url(o->d),
          tg_dashboard_loopback(o->d)
              ? ""
              : " (not loopback: other machines can reach it; the token is its "
                "only protection)");
  fflush(stderr);
  return -1;
}

/* Raised by SIGINT or SIGTERM while a finished run's dashboard stays;
 * sem_post is async-signal-safe and wakes the waiting thread whichever
 * thread took the signal. */
static sem_t stay_over;

static void on_stay_signal(int sig) {
  (void)sig;
  sem_post(&stay_over);
}

static void stay(void) {
  struct sigaction sa, old_int, old_term;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stay_signal;
  sigemptyset(&sa.sa_mask);
  if (sem_init(&stay_over, 0, 0) != 0) return;
  sigaction(SIGINT, &sa, &old_int);
  sigaction(SIGTERM, &sa, &old_term);
  fprintf(stderr, "tgraph: dashboard: the run is over; still serving until Ctrl-C "
                  "or SIGTERM\n");
  fflush(stderr);
  while (sem_wait(&stay_over) != 0 && errno == EINTR) {
  }
  sigaction(SIGINT, &old_int, NULL);
  sigaction(SIGTERM, &old_term, NULL);
  sem_destroy(&stay_over);
}

void cli_dashboard_finish(cli_dashboard *o) {
  if (o->d == NULL) return;
  if (o->stay) stay();
  cli_dashboard_stop(o);
}

void cli_dashboard_stop(cli_dashboard *o) {
  tg_dashboard_stop(o->d);
  o->d = NULL;
}
