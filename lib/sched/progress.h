/* lib/sched/progress.h: the progress line a compute draws on stderr
 * (tg_compute_opts.progress), in the spirit of Dask's ProgressBar.
 *
 * Life-cycle: tg__progress_start() once the run's plan is known (it fixes
 * the total), give tg__progress_on_event as the run's event callback with
 * the progress as its context, tg__progress_stop() when the compute
 * returns (clears the line and frees).
 *
 * Counts leave out internal nodes (TG_FUNC_INTERNAL, such as tg.build):
 * they are parts of a task the user wrote, not tasks of their own; the
 * scheduler reports no events for them and its total leaves them out.
 *
 * Thread safety: tg__progress_on_event from any thread (atomic counters);
 *   start and stop from the thread running the compute.
 */
#ifndef TG_SCHED_PROGRESS_H
#define TG_SCHED_PROGRESS_H

#include <stdbool.h>

#include "tgraph/graph.h"

typedef struct tg__run tg__run;
typedef struct tg__progress tg__progress;

/* Whether a progress line can be drawn on fd: a terminal, and TERM is
 * not "dumb". */
bool tg__progress_wanted(int fd);

/* Start drawing r's progress on fd, redrawn five times a second. Events
 * reach `chain` (may be NULL) after the progress has counted them. NULL
 * when out of memory (the compute then runs without it). */
tg__progress *tg__progress_start(const tg__run *r, int fd, tg_event_fn chain,
                                 void *chain_ctx);
/* A tg_event_fn: ctx is the tg__progress. */
void tg__progress_on_event(void *ctx, const tg_event *e);
/* Stop drawing, clear the line and free p (NULL: nothing). */
void tg__progress_stop(tg__progress *p);

#endif /* TG_SCHED_PROGRESS_H */
