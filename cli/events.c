/* cli/events.c: recording what happens to each task of a run, from the
 * scheduler's task events (started, finished, failed, cached, skipped on
 * every backend), for progress, --dot, --trace, --report and -v. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_events_init(cli_events *ev, const tg_graphjson_info *info,
                    const bool *needed, const tg_graph *g) {
  memset(ev, 0, sizeof *ev);
  ev->info = info;
  ev->t0 = cli_now();
  pthread_mutex_init(&ev->mu, NULL);
  ev->nnodes = tg_graph_size(g);
  ev->state = calloc(ev->nnodes + 1, 1);
  ev->task_of = malloc((ev->nnodes + 1) * sizeof *ev->task_of);
  if (!ev->state || !ev->task_of) return TG_ENOMEM;
  for (size_t n = 0; n < ev->nnodes; n++) ev->task_of[n] = UINT32_MAX;
  size_t total = 0;
  for (size_t i = 0; i < info->ntasks; i++) {
    ev->task_of[info->tasks[i].node] = (uint32_t)i;
    ev->state[info->tasks[i].node] = needed[i] ? CLI_ST_PENDING : CLI_ST_UNNEEDED;
    total += needed[i];
  }
  ev->total = total; /* until the run's events say how many it has */
  ev->max_worker = -1;
  return TG_OK;
}

void cli_events_free(cli_events *ev) {
  for (size_t i = 0; i < ev->ncalls; i++)
    if (ev->calls[i].key_owned) free((char *)ev->calls[i].key);
  free(ev->calls);
  free((void *)ev->state);
  free(ev->task_of);
  tg_report_free(ev->report);
  pthread_mutex_destroy(&ev->mu);
}

/* A task's closing event (under mu). Out of memory: the trace loses it. */
static void record_call(cli_events *ev, uint32_t task, const tg_event *e) {
  if (ev->ncalls == ev->cap) {
    size_t cap = ev->cap ? ev->cap * 2 : 256;
    cli_call *c = realloc(ev->calls, cap * sizeof *c);
    if (c == NULL) return;
    ev->calls = c;
    ev->cap = cap;
  }
  cli_call *c = &ev->calls[ev->ncalls++];
  *c = (cli_call){task, e->kind, e->worker, e->status, e->start - ev->t0,
                  e->end - ev->t0, NULL, false};
  if (task != UINT32_MAX) {
    c->key = ev->info->tasks[task].key;
  } else { /* a node the reader made (tg.build) */
    c->key = strdup(e->key);
    c->key_owned = c->key != NULL;
    if (c->key == NULL) c->key = "?";
  }
}

void cli_events_on(void *ctx, const tg_event *e) {
  cli_events *ev = ctx;
  bool known = e->node < ev->nnodes;
  uint32_t task = known ? ev->task_of[e->node] : UINT32_MAX;
  ev->total = e->tasks;
  pthread_mutex_lock(&ev->mu);
  if (e->worker > ev->max_worker) ev->max_worker = e->worker;
  bool was_running = known && ev->state[e->node] == CLI_ST_RUNNING;
  uint8_t st = CLI_ST_PENDING;
  switch (e->kind) {
    case TG_EVENT_STARTED: st = CLI_ST_RUNNING, ev->running++; break;
    case TG_EVENT_FINISHED: st = CLI_ST_RAN, ev->done++; break;
    case TG_EVENT_FAILED: st = CLI_ST_FAILED, ev->failed++; break;
    case TG_EVENT_CACHED: st = CLI_ST_CACHED, ev->cached++; break;
    case TG_EVENT_SKIPPED: st = CLI_ST_SKIPPED, ev->skipped++; break;
  }
  if (e->kind != TG_EVENT_STARTED) {
    if (was_running) ev->running--;
    record_call(ev, task, e);
  }
  if (known) ev->state[e->node] = st;
  pthread_mutex_unlock(&ev->mu);
  if (ev->report) tg_report_on_event(ev->report, e); /* its own lock */
}

void cli_events_finish(cli_events *ev) {
  /* The run reported every task it had: needed ones without an event
   * were culled below a cached result. */
  for (size_t i = 0; i < ev->info->ntasks; i++) {
    tg_node n = ev->info->tasks[i].node;
    if (ev->state[n] == CLI_ST_PENDING) ev->state[n] = CLI_ST_BELOW_CACHED;
  }
}

cli_state cli_events_state(const cli_events *ev, size_t task) {
  return (cli_state)ev->state[ev->info->tasks[task].node];
}
