/* cli/events.c: recording what happens to each task of a run, from the
 * call observer (start/end on every worker), for progress, --dot and
 * --trace. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Key -> task index, open addressing (FNV-1a). */
typedef struct key_index {
  uint32_t *slots; /* task + 1; 0 empty */
  size_t mask;
  const tg_graphjson_info *info;
} key_index;

static uint64_t fnv(const char *s) {
  uint64_t h = 1469598103934665603u;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211u;
  return h;
}

static key_index *index_new(const tg_graphjson_info *info) {
  key_index *ix = calloc(1, sizeof *ix);
  size_t cap = 16;
  while (cap < info->ntasks * 2) cap *= 2;
  if (ix == NULL || (ix->slots = calloc(cap, sizeof *ix->slots)) == NULL) {
    free(ix);
    return NULL;
  }
  ix->mask = cap - 1;
  ix->info = info;
  for (size_t i = 0; i < info->ntasks; i++) {
    size_t s = fnv(info->tasks[i].key) & ix->mask;
    while (ix->slots[s] != 0) s = (s + 1) & ix->mask;
    ix->slots[s] = (uint32_t)i + 1;
  }
  return ix;
}

static uint32_t index_find(const key_index *ix, const char *key) {
  for (size_t s = fnv(key) & ix->mask;; s = (s + 1) & ix->mask) {
    uint32_t v = ix->slots[s];
    if (v == 0) return UINT32_MAX;
    if (strcmp(ix->info->tasks[v - 1].key, key) == 0) return v - 1;
  }
}

int cli_events_init(cli_events *ev, const tg_graphjson_info *info,
                    const bool *needed, unsigned workers) {
  memset(ev, 0, sizeof *ev);
  ev->info = info;
  ev->t0 = cli_now();
  pthread_mutex_init(&ev->mu, NULL);
  ev->state = calloc(info->ntasks ? info->ntasks : 1, 1);
  ev->nworkers = workers > 0 ? workers : 64;
  ev->starts = calloc(ev->nworkers, sizeof *ev->starts);
  ev->index = index_new(info);
  if (!ev->state || !ev->starts || !ev->index) return TG_ENOMEM;
  for (size_t i = 0; i < info->ntasks; i++) {
    ev->state[i] = needed[i] ? CLI_ST_PENDING : CLI_ST_UNNEEDED;
    ev->needed += needed[i];
  }
  ev->max_worker = -1;
  return TG_OK;
}

void cli_events_free(cli_events *ev) {
  for (size_t i = 0; i < ev->ncalls; i++)
    if (ev->calls[i].key_owned) free((char *)ev->calls[i].key);
  free(ev->calls);
  free((void *)ev->state);
  free(ev->starts);
  key_index *ix = ev->index;
  if (ix != NULL) free(ix->slots);
  free(ix);
  pthread_mutex_destroy(&ev->mu);
}

/* Per-worker start times grow on demand (under mu). */
static double *start_slot(cli_events *ev, int worker) {
  size_t w = worker < 0 ? 0 : (size_t)worker;
  if (w >= ev->nworkers) {
    size_t n = ev->nworkers * 2 > w + 1 ? ev->nworkers * 2 : w + 1;
    double *s = realloc(ev->starts, n * sizeof *s);
    if (s == NULL) return NULL;
    memset(s + ev->nworkers, 0, (n - ev->nworkers) * sizeof *s);
    ev->starts = s;
    ev->nworkers = n;
  }
  return &ev->starts[w];
}

static void record_end(cli_events *ev, uint32_t task, const tg_call_event *e) {
  if (ev->ncalls == ev->cap) {
    size_t cap = ev->cap ? ev->cap * 2 : 256;
    cli_call *c = realloc(ev->calls, cap * sizeof *c);
    if (c == NULL) return; /* the trace loses a call; the run goes on */
    ev->calls = c;
    ev->cap = cap;
  }
  double *start = start_slot(ev, e->worker);
  cli_call *c = &ev->calls[ev->ncalls++];
  *c = (cli_call){task, e->worker, e->status, start ? *start : 0,
                  e->time - ev->t0, NULL, false};
  if (task != UINT32_MAX) {
    c->key = ev->info->tasks[task].key;
  } else {
    c->key = strdup(e->key);
    c->key_owned = c->key != NULL;
    if (c->key == NULL) c->key = "?";
  }
}

void cli_events_observe(void *ctx, const tg_call_event *e) {
  cli_events *ev = ctx;
  uint32_t task = index_find(ev->index, e->key);
  pthread_mutex_lock(&ev->mu);
  if (e->worker > ev->max_worker) ev->max_worker = e->worker;
  if (e->phase == TG_CALL_START) {
    double *s = start_slot(ev, e->worker);
    if (s != NULL) *s = e->time - ev->t0;
    if (task != UINT32_MAX) ev->state[task] = CLI_ST_RUNNING;
    ev->running++;
  } else {
    record_end(ev, task, e);
    if (task != UINT32_MAX)
      ev->state[task] = e->status == TG_OK ? CLI_ST_RAN : CLI_ST_FAILED;
    ev->running--;
    if (task != UINT32_MAX) {
      if (e->status == TG_OK) ev->done++;
      else ev->failed++;
    }
  }
  pthread_mutex_unlock(&ev->mu);
}

void cli_events_finish(cli_events *ev, bool ok) {
  for (size_t i = 0; i < ev->info->ntasks; i++)
    if (ev->state[i] == CLI_ST_PENDING || ev->state[i] == CLI_ST_RUNNING)
      ev->state[i] = ok ? CLI_ST_CACHED : CLI_ST_SKIPPED;
}
