/* lib/report/report_internal.h: the recorder's state, and the two calls a
 * live server of the report page builds on.
 *
 * Thread safety: everything in struct tg_report below `mu` is guarded by
 * it; events arrive from worker threads.
 */
#ifndef TG_REPORT_INTERNAL_H
#define TG_REPORT_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>

#include "internal.h"
#include "tgraph/report.h"

/* What is known of a task. */
enum {
  TG__RS_NONE = 0,    /* no event yet (or not part of the run) */
  TG__RS_RUNNING = 1, /* started */
  TG__RS_RAN = 2,
  TG__RS_FAILED = 3,
  TG__RS_CACHED = 4,
  TG__RS_SKIPPED = 5,
  TG__RS_CANCELLED = 6, /* its call gave up when the run stopped */
};

/* One task: 40 bytes, for every node of the graph and every event of a
 * key not in it. */
typedef struct tg__rtask {
  double start, end;  /* CLOCK_MONOTONIC seconds, as in tg_event */
  uint32_t key;       /* 0: the graph node's key; else 1 + offset in keys */
  uint32_t msg;       /* 0: none; else 1 + index in msgs */
  int32_t status;     /* FAILED: the error code */
  uint16_t func;      /* 0: the graph node's function (or none); else
                         1 + index in funcs */
  int16_t worker;     /* -1: none */
  int16_t thread;     /* -1: none */
  uint16_t attempts;
  uint8_t state;      /* TG__RS_* */
} tg__rtask;

struct tg_report {
  const tg_graph *g;     /* borrowed, may be NULL */
  size_t nnodes;         /* tasks[0..nnodes) are the graph's nodes */
  tg_node *outputs;
  size_t noutputs;
  double t0;             /* CLOCK_MONOTONIC at creation: time zero */
  pthread_mutex_t mu;
  tg__rtask *tasks;      /* graph nodes, then extra tasks */
  size_t ntasks, cap;
  char *keys;            /* arena of the extra tasks' keys */
  size_t keys_len, keys_cap;
  const char **funcs;    /* interned function names (copies) */
  size_t nfuncs, funcs_cap;
  char **msgs;           /* failure messages (copies) */
  size_t nmsgs, msgs_cap;
  int max_worker;        /* highest worker an event named */
  size_t run_tasks;      /* tg_event.tasks of the latest event */
  bool ended;            /* tg_report_finish was called */
  tg_report_run run;     /* its facts; strings owned */
  tg_compute_stats stats;
  bool has_stats;
};

/* The run's data so far as JSON (the object the page renders), into
 * a malloc'd buffer *out of *len bytes. Thread-safe against events. */
int tg__report_json(tg_report *r, char **out, size_t *len);

/* The page: live false = data inlined (the file); live true = the
 * page fetches its data from data_url (relative, e.g. "data?t=TOKEN")
 * every second and re-renders until the data says the run ended.
 * *out is malloc'd, *len bytes (NUL-terminated). */
int tg__report_page(tg_report *r, bool live, const char *data_url,
                    char **out, size_t *len);

/* The page template, embedded at build time from page.html. */
extern const unsigned char tg__report_page_html[];
extern const size_t tg__report_page_html_size;

#endif /* TG_REPORT_INTERNAL_H */
