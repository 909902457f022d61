/* include/tgraph/report.h: a self-contained HTML report of a run.
 *
 * A tg_report records what happens to each task of a run (it is a
 * tg_event_fn) and writes one HTML file that opens from disk in any
 * current browser, with no network access and no second file: a summary,
 * one lane per worker thread with a bar per task, the critical path, a
 * table per function, the failing task and what it blocked, and the
 * graph.
 *
 * Life-cycle:
 *   1. tg_report_new()        a recorder over the run's graph (or none)
 *   2. tg_report_on_event     as tg_compute_opts.on_event, with
 *                             event_ctx = the report
 *   3. tg_report_finish()     the run's facts once it returned: status,
 *                             error, stats, workers
 *   4. tg_report_write()      the page, written atomically
 *   5. tg_report_free()
 * Steps 3 and 4 may also come without a finished run (an interrupted
 * run): the page then shows what was recorded.
 *
 * Memory: about 40 bytes per task of the graph plus the keys of tasks
 * that are not in it; a failure's message is kept (up to 4 KiB) for
 * failed tasks only.
 *
 * Thread safety: tg_report_on_event may be called from any number of
 *   threads at once (one mutex, held briefly). The other calls from one
 *   thread at a time; tg_report_write may run while events still arrive
 *   (it shows the run so far).
 * Fork: do not use a report in a child of fork().
 */
#ifndef TGRAPH_REPORT_H
#define TGRAPH_REPORT_H

#include <stddef.h>

#include "tgraph/error.h"
#include "tgraph/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct tg_report tg_report; /* opaque */

/* A new recorder in *out. g (borrowed, may be NULL) is the graph the run
 * computes: it must outlive the report and not change while the report
 * is used; its nodes, keys, functions and edges make the page's graph and
 * critical path, and events are matched to its nodes by key (events of
 * other keys are shown too, without edges). outputs[0..noutputs-1] are
 * the run's outputs (copied; may be NULL when noutputs is 0). Errors:
 * TG_EINVAL (an output that is not a node of g, outputs without g),
 * TG_ENOMEM; *out is then NULL. */
int tg_report_new(const tg_graph *g, const tg_node *outputs, size_t noutputs,
                  tg_report **out /* OUT */);
void tg_report_free(tg_report *r); /* r may be NULL */

/* A tg_event_fn: ctx is the tg_report. Thread-safe. Events of a task
 * replace its earlier ones. Out of memory, an event is dropped. */
void tg_report_on_event(void *ctx, const tg_event *ev);

#define TG_REPORT_RUN_V1 1
#define TG_REPORT_RUN_V2 2 /* stats was filled by a TG_COMPUTE_OPTS_V4
                              compute: tasks_cancelled is read too */
typedef struct tg_report_run {
  uint32_t version;          /* TG_REPORT_RUN_V1 or _V2 */
  const char *title;         /* the page's title (e.g. the graph file);
                                NULL: "tgraph run" */
  const char *scheduler;     /* backend name, may be NULL */
  unsigned workers;          /* workers of the run; 0: as many as the
                                events named */
  int status;                /* what tg_compute returned (TG_OK, TG_ETASK,
                                TG_ECANCELED, TG_ETIMEDOUT, ...) */
  const char *error;         /* its message (tg_graph_errmsg), may be NULL */
  const tg_compute_stats *stats; /* may be NULL */
} tg_report_run;

/* The run has ended: record its facts (copied). Later events are still
 * recorded. Errors: TG_EINVAL (NULL or an unknown version), TG_ENOMEM. */
int tg_report_finish(tg_report *r, const tg_report_run *run);

/* Write the page to path: into a temporary file next to it, then renamed
 * over path, so path is either left as it was or holds the whole page.
 * Errors: TG_EINVAL, TG_ENOMEM, -errno of the failed file operation (err
 * names the file). */
int tg_report_write(tg_report *r, const char *path, tg_error *err);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_REPORT_H */
