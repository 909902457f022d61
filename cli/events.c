/* cli/events.c: recording what happens to each task of a run, from the
 * scheduler's task events (started, finished, failed, cancelled, cached,
 * skipped on every backend), for --dot, --trace, --report, -v and the
 * failed outputs of --keep-going. The scheduler reports no events for the
 * nodes the reader makes (tg.build) and counts none of them. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

int cli_events_init(cli_events *ev, const tg_graphjson_info *info,
                    const bool *needed, const tg_graph *g, bool record) {
  memset(ev, 0, sizeof *ev);
  ev->info = info;
  ev->record = record;
  ev->t0 = cli_now();
  pthread_mutex_init(&ev->mu, NULL);
  ev->nnodes = tg_graph_size(g);
  ev->state = calloc(ev->nnodes + 1, 1);
  ev->task_of = malloc((ev->nnodes + 1) * sizeof *ev->task_of);
  if (!ev->state || !ev->task_of) return TG_ENOMEM;
  for (size_t n = 0; n < ev->nnodes; n++) ev->task_of[n] = UINT32_MAX;
  for (size_t i = 0; i < info->ntasks; i++) {
    ev->task_of[info->tasks[i].node] = (uint32_t)i;
    ev->state[info->tasks[i].node] = needed[i] ? CLI_ST_PENDING : CLI_ST_UNNEEDED;
  }
  ev->max_worker = -1;
  return TG_OK;
}

void cli_events_free(cli_events *ev) {
  for (size_t i = 0; i < ev->ncalls; i++) {
    if (ev->calls[i].key_owned) free((char *)ev->calls[i].key);
    free(ev->calls[i].message);
  }
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
                  e->end - ev->t0, NULL, false, e->thread, e->attempts, NULL};
  if (e->message) c->message = strdup(e->message); /* out of memory: none */
  if (task != UINT32_MAX) {
    c->key = ev->info->tasks[task].key;
  } else { /* a node not in the file (the reader's tg.build nodes report
              * no events: none today) */
    c->key = strdup(e->key);
    c->key_owned = c->key != NULL;
    if (c->key == NULL) c->key = "?";
  }
}

static const uint8_t state_of[] = {
    [TG_EVENT_STARTED] = CLI_ST_RUNNING, [TG_EVENT_FINISHED] = CLI_ST_RAN,
    [TG_EVENT_FAILED] = CLI_ST_FAILED,   [TG_EVENT_CACHED] = CLI_ST_CACHED,
    [TG_EVENT_SKIPPED] = CLI_ST_SKIPPED, [TG_EVENT_CANCELLED] = CLI_ST_CANCELLED};

void cli_events_on(void *ctx, const tg_event *e) {
  cli_events *ev = ctx;
  bool known = e->node < ev->nnodes;
  uint32_t task = known ? ev->task_of[e->node] : UINT32_MAX;
  if (known && (size_t)e->kind < sizeof state_of) ev->state[e->node] = state_of[e->kind];
  if (ev->report) tg_report_on_event(ev->report, e); /* its own lock */
  if (!ev->record) return; /* counting only: no lock on the tasks' way */
  pthread_mutex_lock(&ev->mu);
  if (e->worker > ev->max_worker) ev->max_worker = e->worker;
  if (e->kind != TG_EVENT_STARTED) record_call(ev, task, e);
  pthread_mutex_unlock(&ev->mu);
}

const cli_call *cli_events_failure(const cli_events *ev, uint32_t task) {
  for (size_t i = 0; i < ev->ncalls; i++)
    if (ev->calls[i].task == task && ev->calls[i].kind == TG_EVENT_FAILED) return &ev->calls[i];
  return NULL;
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
