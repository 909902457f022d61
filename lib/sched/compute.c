/* lib/sched/compute.c: tg_compute: one run of a graph's outputs on an
 * executor (the caller's, or a temporary one of the requested backend),
 * waited for with the compute's timeout. */
#include <math.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "memo/memo.h"
#include "progress.h"
#include "sched_internal.h"

#define ABANDON_GRACE 0.2 /* seconds running tasks get to notice a deadline */

static int check_opts(tg_graph *g, const tg_compute_opts *o) {
  if (!o) return TG_OK;
  if (o->version < TG_COMPUTE_OPTS_V1 || o->version > TG_COMPUTE_OPTS_V4)
    return tg__graph_fail(g, TG_EINVAL, "tg_compute_opts.version is %u, expected %d to %d",
                          o->version, TG_COMPUTE_OPTS_V1, TG_COMPUTE_OPTS_V4);
  if (o->version >= TG_COMPUTE_OPTS_V3 && o->nforce && !o->force)
    return tg__graph_fail(g, TG_EINVAL, "tg_compute_opts.force is NULL with nforce %zu",
                          o->nforce);
  if (!(o->timeout >= 0) || isinf(o->timeout))
    return tg__graph_fail(g, TG_EINVAL, "tg_compute_opts.timeout must be >= 0 and finite");
  if (o->retries < 0 || o->retries > INT16_MAX)
    return tg__graph_fail(g, TG_EINVAL, "tg_compute_opts.retries %d is out of range",
                          o->retries);
  return TG_OK;
}

static void *free_executor(void *ex) {
  tg_executor_free(ex); /* waits for the abandoned task to return */
  return NULL;
}

/* Free tmp once its abandoned run is over, on a thread of its own; if
 * none can be started, tmp is left (a leak rather than a wait). */
static void free_later(tg_executor *tmp) {
  pthread_t th;
  pthread_attr_t a;
  pthread_attr_init(&a);
  pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
  pthread_create(&th, &a, free_executor, tmp);
  pthread_attr_destroy(&a);
}

/* The cache's counts of r's lookups and committed stores. */
static void fill_cache_stats(tg_compute_stats *st, tg__memo *m) {
  st->cache_hits = atomic_load(&m->hits);
  st->cache_misses = atomic_load(&m->misses);
  st->cache_bytes_read = atomic_load(&m->bytes_read);
  st->cache_stores = m->tally ? atomic_load(&m->tally->stores) : 0;
  st->cache_bytes_written = m->tally ? atomic_load(&m->tally->bytes) : 0;
}

/* The stats of r; v4: the caller's struct has the fields of version 4. */
static void fill_stats(tg_compute_stats *st, const tg__run *r, size_t ntasks, bool v4,
                       double wall) {
  st->tasks_total = ntasks;
  st->tasks_run = atomic_load(&r->ran);
  st->tasks_cached = atomic_load(&r->cached);
  st->tasks_failed = atomic_load(&r->failed);
  if (v4) {
    st->tasks_cancelled = atomic_load(&r->cancelled);
    st->attempts_failed = atomic_load(&r->attempts_failed);
  }
  st->tasks_skipped = atomic_load(&r->skipped);
  st->peak_live = (size_t)atomic_load(&r->peak);
  st->wall_seconds = wall;
  st->failed_node = r->err_code == TG_ETASK ? r->err_node : TG_NODE_NONE;
  if (r->memo) fill_cache_stats(st, r->memo);
}

/* Run outputs on ex and wait; results or the run's failure. */
int tg__compute_run(tg_executor *ex, tg_graph *g, const tg_node *outputs, size_t n,
                  const tg_compute_opts *opts, tg_value **results, bool *abandoned) {
  tg__run *r;
  char msg[256];
  tg_cache *cache = opts && opts->cache ? opts->cache : ex->cache;
  bool v3 = opts && opts->version >= TG_COMPUTE_OPTS_V3;
  int rc = tg__run_new(ex, g, NULL, outputs, n, false, opts ? opts->retries : 0, 0, cache,
                       v3 ? opts->force : NULL, v3 ? opts->nforce : 0, &r, msg, sizeof msg);
  if (rc) return tg__graph_fail(g, rc, "%s", msg);
  size_t ntasks = r->plan.ntasks - r->plan.ninternal; /* gone once finished */
  bool v4 = opts && opts->version >= TG_COMPUTE_OPTS_V4;
  if (v4 && opts->keep_going && !tg__run_keep_going(r)) {
    tg__run_unref(r); /* never started: its execution reference is the creator's */
    tg__run_unref(r);
    return tg__graph_fail(g, TG_ENOMEM, "out of memory creating a run");
  }
  double timeout = opts && opts->timeout > 0 ? opts->timeout : -1;
  r->timeout = timeout;
  if (opts && opts->version >= TG_COMPUTE_OPTS_V2) r->token = opts->cancel;
  if (opts && opts->on_event) tg__run_set_events(r, opts->on_event, opts->event_ctx);
  /* The progress line sees every event first, then hands it on to the
   * callback the run had. */
  tg__progress *progress = NULL;
  if (opts && opts->version >= TG_COMPUTE_OPTS_V3 && opts->progress &&
      tg__progress_wanted(STDERR_FILENO) &&
      (progress = tg__progress_start(r, STDERR_FILENO, r->on_event, r->event_ctx)))
    tg__run_set_events(r, tg__progress_on_event, progress);
  /* A flag raised already stops the run before any task starts. */
  tg__run_cancel_requested(r);
  tg__run_start(r); /* tasks check the deadline and flag too (sync) */
  if (tg__run_wait_watched(r, timeout) != TG_OK) { /* timed out or cancelled */
    tg__run_expired(r);
    /* Out-of-process backends stop or replace what still runs; a thread
     * cannot be stopped: at a deadline, after a grace period to notice
     * cancellation, the compute returns without it (graph.h says what
     * follows). Only a run with a deadline counts its calls out to the
     * caller (tg__run_callout_begin), so only such a run may be left
     * behind; a cancelled one waits for its tasks, as graph.h promises. */
    if ((ex->ops->caps & TG__CAP_LEAVE_AT_DEADLINE) && r->deadline > 0 &&
        tg__run_wait(r, ABANDON_GRACE) == TG_ETIMEDOUT)
      *abandoned = tg__run_abandon(r, g);
    if (!*abandoned) tg__run_wait(r, -1);
  }
  /* What the compute stored is committed before it returns: another
   * process (or a crash) then finds it. Cache failures are not the
   * compute's: they only cost entries. */
  if (r->memo && atomic_load(&r->memo->stores)) tg_cache_flush(cache);
  tg__progress_stop(progress); /* no event comes any more */
  if (r->memo && !*abandoned) tg__memo_record(r->memo);
  rc = r->err_code;
  if (rc) tg__graph_fail(g, rc, "%s", r->err_msg);
  /* Keeping going, the outputs computed are returned with the failure. */
  bool give = rc == TG_OK || (r->keep_going && !*abandoned);
  for (size_t i = 0; i < n && give; i++) results[i] = tg_value_ref(r->out[i]);
  for (size_t i = 0; v4 && opts->failed && i < n; i++)
    opts->failed[i] = r->slot_cause && !*abandoned ? r->slot_cause[i] : TG_NODE_NONE;
  if (opts && opts->stats) /* an abandoned run is not finished: time so far */
    fill_stats(opts->stats, r, ntasks, v4, *abandoned ? tg__now() - r->t0 : r->wall);
  tg__run_unref(r);
  return rc;
}

int tg_compute(tg_graph *g, const tg_node *outputs, size_t n,
               const tg_compute_opts *opts, tg_value **results) {
  if (!g) return TG_EINVAL;
  if (n && (!outputs || !results))
    return tg__graph_fail(g, TG_EINVAL, "tg_compute: missing outputs or results");
  for (size_t i = 0; i < n; i++) results[i] = NULL;
  int rc = check_opts(g, opts);
  if (rc) return rc;
  if (opts && opts->stats) { /* callers before version 4 have a shorter struct */
    memset(opts->stats, 0, opts->version >= TG_COMPUTE_OPTS_V4
                               ? sizeof *opts->stats
                               : offsetof(tg_compute_stats, tasks_cancelled));
    opts->stats->failed_node = TG_NODE_NONE;
  }
  for (size_t i = 0; opts && opts->version >= TG_COMPUTE_OPTS_V4 && opts->failed && i < n; i++)
    opts->failed[i] = TG_NODE_NONE;
  if (n == 0) return TG_OK;
  tg_executor *ex = opts ? opts->executor : NULL, *tmp = NULL;
  tg_task_ctx *task = tg__tls_task;
  tg__run *caller = task ? tg__task_host_run(task) : NULL;
  if (ex && caller && caller->ex == ex) /* it would never return */
    return tg__graph_fail(g, TG_ESTATE, "tg_compute: task '%s' computes on the executor "
                          "running it (\"%s\"), which would wait for itself; compute on an "
                          "executor of the task's own (tg_executor_new there, or no "
                          "executor and opts.scheduler)", tg_task_key(task), ex->ops->name);
  if (!ex) {
    tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1,
                           .backend = opts ? opts->scheduler : NULL,
                           .workers = opts ? opts->workers : 0,
                           .cache = opts ? opts->cache : NULL};
    tg_error err;
    tg_error_clear(&err);
    if ((rc = tg__executor_create(g->reg, &eo, NULL, &tmp, &err)))
      return tg__graph_fail(g, rc, "%s", err.msg);
    ex = tmp;
  }
  bool abandoned = false;
  rc = g->nmapover ? tg__compute_stages(ex, g, outputs, n, opts, results, &abandoned)
                   : tg__compute_run(ex, g, outputs, n, opts, results, &abandoned);
  if (abandoned && tmp) free_later(tmp);
  else tg_executor_free(tmp);
  return rc;
}
