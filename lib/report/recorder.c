/* lib/report/recorder.c: recording a run's task events and facts for the
 * report (tg_report_new, tg_report_on_event, tg_report_finish). */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "graph/graph_internal.h"
#include "report/report_internal.h"
#include "sched/sched_internal.h"

/* A failure's message is kept up to this many bytes. */
#define MSG_MAX 4096

int tg_report_new(const tg_graph *g, const tg_node *outputs, size_t noutputs,
                  tg_report **out) {
  if (out == NULL) return TG_EINVAL;
  *out = NULL;
  if (noutputs > 0 && (outputs == NULL || g == NULL)) return TG_EINVAL;
  for (size_t i = 0; i < noutputs; i++)
    if (outputs[i] >= tg_graph_size(g)) return TG_EINVAL;
  tg_report *r = tg__calloc(1, sizeof *r);
  if (r == NULL) return TG_ENOMEM;
  r->g = g;
  r->nnodes = g ? tg_graph_size(g) : 0;
  r->cap = r->nnodes + 16;
  r->tasks = tg__calloc(r->cap, sizeof *r->tasks);
  r->outputs = tg__malloc((noutputs + 1) * sizeof *r->outputs);
  if (r->tasks == NULL || r->outputs == NULL) {
    tg__free(r->tasks);
    tg__free(r->outputs);
    tg__free(r);
    return TG_ENOMEM;
  }
  if (noutputs) memcpy(r->outputs, outputs, noutputs * sizeof *outputs);
  r->noutputs = noutputs;
  r->ntasks = r->nnodes;
  for (size_t i = 0; i < r->nnodes; i++)
    r->tasks[i].worker = r->tasks[i].thread = -1;
  r->max_worker = -1;
  r->t0 = tg__now();
  pthread_mutex_init(&r->mu, NULL);
  *out = r;
  return TG_OK;
}

static void free_run_strings(tg_report *r) {
  tg__free((char *)r->run.title);
  tg__free((char *)r->run.scheduler);
  tg__free((char *)r->run.error);
}

void tg_report_free(tg_report *r) {
  if (r == NULL) return;
  for (size_t i = 0; i < r->nfuncs; i++) tg__free((char *)r->funcs[i]);
  for (size_t i = 0; i < r->nmsgs; i++) tg__free(r->msgs[i]);
  free_run_strings(r);
  tg__free(r->funcs);
  tg__free(r->msgs);
  tg__free(r->keys);
  tg__free(r->tasks);
  tg__free(r->outputs);
  pthread_mutex_destroy(&r->mu);
  tg__free(r);
}

/* Grow *p (elements of size `size`, *cap of them) to hold one more. */
static bool grow(void **p, size_t *cap, size_t n, size_t size) {
  if (n < *cap) return true;
  size_t c = *cap ? *cap * 2 : 16;
  void *q = tg__realloc(*p, c * size);
  if (q == NULL) return false;
  *p = q;
  *cap = c;
  return true;
}

/* A copy of at most max bytes of s, made valid UTF-8 for the page (a
 * task's message may hold any bytes, and the cut may split a
 * character): when it is not, bytes above 0x7f become '?'. */
static char *copy_str(const char *s, size_t max) {
  size_t n = strnlen(s, max);
  char *c = tg__malloc(n + 1);
  if (c == NULL) return NULL;
  memcpy(c, s, n);
  c[n] = '\0';
  if (!tg__utf8_valid(c, n))
    for (size_t i = 0; i < n; i++)
      if ((unsigned char)c[i] > 0x7f) c[i] = '?';
  return c;
}

/* 1 + the index of function name fn in r->funcs (added when new); 0 when
 * fn is NULL or memory runs out. Functions are few: a scan, by pointer
 * first (names come from the registry, whose strings do not move). */
static uint16_t intern_func(tg_report *r, const char *fn) {
  if (fn == NULL) return 0;
  for (size_t i = 0; i < r->nfuncs; i++)
    if (r->funcs[i] == fn || strcmp(r->funcs[i], fn) == 0) return (uint16_t)(i + 1);
  if (r->nfuncs >= UINT16_MAX - 1 ||
      !grow((void **)&r->funcs, &r->funcs_cap, r->nfuncs, sizeof *r->funcs))
    return 0;
  char *c = copy_str(fn, 1024);
  if (c == NULL) return 0;
  r->funcs[r->nfuncs++] = c;
  return (uint16_t)r->nfuncs;
}

/* The task an event is about: its graph node, found by the event's node
 * id when that node has the event's key (tg_compute), else by key
 * (executor copies); else a new extra task for a closing event, or NULL
 * (a STARTED event of an unknown key, or out of memory). */
static tg__rtask *task_of(tg_report *r, const tg_event *ev) {
  if (r->g != NULL && ev->key != NULL) {
    char buf[256];
    if (ev->node < r->nnodes &&
        strcmp(tg__graph_key(r->g, ev->node, buf, sizeof buf), ev->key) == 0)
      return &r->tasks[ev->node];
    tg_node n = tg_graph_find(r->g, ev->key);
    if (n != TG_NODE_NONE && n < r->nnodes) return &r->tasks[n];
  }
  if (ev->kind == TG_EVENT_STARTED || ev->key == NULL) return NULL;
  size_t klen = strnlen(ev->key, 1024);
  if (r->ntasks >= UINT32_MAX || r->keys_len + klen + 1 >= UINT32_MAX) return NULL;
  while (r->keys_cap - r->keys_len < klen + 1)
    if (!grow((void **)&r->keys, &r->keys_cap, r->keys_cap, 1)) return NULL;
  if (!grow((void **)&r->tasks, &r->cap, r->ntasks, sizeof *r->tasks)) return NULL;
  tg__rtask *t = &r->tasks[r->ntasks++];
  memset(t, 0, sizeof *t);
  t->key = (uint32_t)(r->keys_len + 1);
  memcpy(r->keys + r->keys_len, ev->key, klen);
  r->keys[r->keys_len + klen] = '\0';
  r->keys_len += klen + 1;
  return t;
}

static uint8_t state_of(tg_event_kind k) {
  switch (k) {
    case TG_EVENT_STARTED: return TG__RS_RUNNING;
    case TG_EVENT_FINISHED: return TG__RS_RAN;
    case TG_EVENT_FAILED: return TG__RS_FAILED;
    case TG_EVENT_CACHED: return TG__RS_CACHED;
    case TG_EVENT_SKIPPED: return TG__RS_SKIPPED;
    case TG_EVENT_CANCELLED: return TG__RS_CANCELLED;
  }
  return TG__RS_NONE;
}

static int16_t small(int v) {
  return v < -1 ? -1 : v > INT16_MAX ? INT16_MAX : (int16_t)v;
}

/* Keep ev's message for t (under mu). */
static void keep_message(tg_report *r, tg__rtask *t, const char *msg) {
  if (t->msg != 0) { /* a second failure of the task: replace */
    char *c = copy_str(msg, MSG_MAX);
    if (c != NULL) {
      tg__free(r->msgs[t->msg - 1]);
      r->msgs[t->msg - 1] = c;
    }
    return;
  }
  if (!grow((void **)&r->msgs, &r->msgs_cap, r->nmsgs, sizeof *r->msgs)) return;
  char *c = copy_str(msg, MSG_MAX);
  if (c == NULL) return;
  r->msgs[r->nmsgs++] = c;
  t->msg = (uint32_t)r->nmsgs;
}

void tg_report_on_event(void *ctx, const tg_event *ev) {
  tg_report *r = ctx;
  if (r == NULL || ev == NULL) return;
  pthread_mutex_lock(&r->mu);
  tg__rtask *t = task_of(r, ev);
  if (t != NULL) {
    t->state = state_of(ev->kind);
    t->start = ev->start;
    t->end = ev->end;
    t->status = ev->status;
    if (ev->worker >= 0 || ev->kind != TG_EVENT_FINISHED) t->worker = small(ev->worker);
    if (ev->thread >= 0 || ev->kind != TG_EVENT_FINISHED) t->thread = small(ev->thread);
    t->attempts = ev->attempts > UINT16_MAX ? UINT16_MAX : (uint16_t)ev->attempts;
    uint16_t f = intern_func(r, ev->func);
    if (f != 0) t->func = f;
    if ((ev->kind == TG_EVENT_FAILED || ev->kind == TG_EVENT_CANCELLED) && ev->message != NULL)
      keep_message(r, t, ev->message);
    if (ev->worker > r->max_worker) r->max_worker = ev->worker;
  }
  r->run_tasks = ev->tasks; /* internal nodes report no events and are not counted */
  pthread_mutex_unlock(&r->mu);
}

int tg_report_finish(tg_report *r, const tg_report_run *run) {
  if (r == NULL || run == NULL || run->version < TG_REPORT_RUN_V1 ||
      run->version > TG_REPORT_RUN_V2)
    return TG_EINVAL;
  tg_report_run c = *run;
  c.title = run->title ? copy_str(run->title, 4096) : NULL;
  c.scheduler = run->scheduler ? copy_str(run->scheduler, 256) : NULL;
  c.error = run->error ? copy_str(run->error, MSG_MAX) : NULL;
  c.stats = NULL;
  if ((run->title && !c.title) || (run->scheduler && !c.scheduler) ||
      (run->error && !c.error)) {
    tg__free((char *)c.title);
    tg__free((char *)c.scheduler);
    tg__free((char *)c.error);
    return TG_ENOMEM;
  }
  pthread_mutex_lock(&r->mu);
  free_run_strings(r);
  r->run = c;
  r->has_stats = run->stats != NULL;
  memset(&r->stats, 0, sizeof r->stats);
  if (run->stats) /* before version 2 the struct may be a shorter one */
    memcpy(&r->stats, run->stats, run->version >= TG_REPORT_RUN_V2
                                      ? sizeof r->stats
                                      : offsetof(tg_compute_stats, tasks_cancelled));
  r->ended = true;
  pthread_mutex_unlock(&r->mu);
  return TG_OK;
}
