/* lib/offload/engine.c: the out-of-process engine under the tcp
 * (offload/tcp.c) and processes (offload/processes.c) backends: the I/O
 * thread's loop, the queues it keeps, submit, start, shutdown and the
 * figures. See offload/engine.h for the design. */
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "offload/traffic.h"
#include "offload/engine.h"
#include "util/bigbuf.h"
#include "util/fdtrack.h"
#include "util/thread.h"

#define LOOP_MS 50 /* longest sleep: heartbeats, timeouts, cancellations */

/* The backend whose I/O thread this is (NULL on other threads). */
static _Thread_local const ofl *io_of;

bool tg__ofl_on_io(const ofl *b) { return io_of == b; }

void tg__ofl_wake(ofl *b) {
  uint64_t one = 1;
  ssize_t w = write(b->wake_fd, &one, sizeof one);
  (void)w;
}

/* ---- queues ---------------------------------------------------------------- */

void tg__ofl_heap_repush(ofl *b, tg__task *t) {
  /* No room: it was in the heap a moment ago; fail it. */
  if (!tg__task_heap_push(&b->heap, t)) {
    tg_value *const *args;
    size_t n;
    if (tg__task_begin(&b->w, t, &args, &n))
      tg__task_end(&b->w, t, TG_ENOMEM, NULL, "out of memory queueing a task");
    tg__ofl_take_ready(b);
    ofl_run *rs = tg__ofl_run_get(b, t->run);
    rs->live--;
    tg__ofl_run_unuse(b, rs);
  }
}

void tg__ofl_queue_task(ofl *b, tg__task *t) {
  ofl_run *rs = tg__ofl_run_get(b, t->run);
  if (rs && tg__ofl_ends_at_once(rs, (uint32_t)(t - rs->r->plan.tasks))) {
    /* nothing to send: tg__ofl_begin_done ends it */
    tg__ofl_done_push(b, t);
    rs->users++;
    rs->live++;
    return;
  }
  if (rs && tg__task_heap_push(&b->heap, t)) {
    rs->users++;
    rs->live++;
    return;
  }
  tg_value *const *args; /* out of memory: fail it right here */
  size_t n;
  if (tg__task_begin(&b->w, t, &args, &n))
    tg__task_end(&b->w, t, TG_ENOMEM, NULL, "out of memory queueing a task");
  if (rs && !rs->users) { /* made for nothing */
    rs->users = 1;
    tg__ofl_run_unuse(b, rs);
  }
}

tg__task *tg__ofl_heap_pop(ofl *b) {
  return b->heap.n ? tg__task_heap_pop(&b->heap) : NULL;
}

void tg__ofl_take_ready(ofl *b) {
  /* Queueing may fail a task, which can make more ready: loop. */
  while (b->w.ready_first || b->w.ready_rest) {
    tg__task *t = b->w.ready_first, *rest = b->w.ready_rest;
    b->w.ready_first = b->w.ready_rest = NULL;
    if (t) tg__ofl_queue_task(b, t);
    while (rest) {
      tg__task *x = rest;
      rest = rest->next;
      tg__ofl_queue_task(b, x);
    }
  }
}

void tg__ofl_retry_push(ofl *b, ofl_rec *rec) {
  rec->next = NULL;
  if (b->retry_tail) b->retry_tail->next = rec;
  else b->retry_head = rec;
  b->retry_tail = rec;
}

/* Move submitted tasks into the heap. */
static void take_inbox(ofl *b) {
  pthread_mutex_lock(&b->mu);
  tg__task *t = b->in_head;
  b->in_head = b->in_tail = NULL;
  pthread_mutex_unlock(&b->mu);
  while (t) {
    tg__task *next = t->next;
    tg__ofl_queue_task(b, t);
    t = next;
  }
}

/* ---- the loop ----------------------------------------------------------------- */

static void add_traffic(tg__link_stats *to, const tg__link_stats *s) {
  to->sock_out += s->sock_out;
  to->sock_in += s->sock_in;
  to->seg_out += s->seg_out;
  to->seg_in += s->seg_in;
  to->seg_copied += s->seg_copied;
  to->fds_out += s->fds_out;
  to->fds_in += s->fds_in;
}

void tg__ofl_link_closing(ofl *b, ofl_conn *c) {
  if (c->link) add_traffic(&b->traffic_closed.link, &c->link->st);
}

static void add_stream(ofl_traffic *to, const tg__stream *s) {
  to->shm += s->shm_out + s->shm_in;
  to->streamed += s->streamed_out + s->streamed_in;
}

void tg__ofl_stream_closing(ofl *b, ofl_conn *c) { add_stream(&b->traffic_closed, &c->stream); }

/* The links' counters (each its owner's) as one figure for other threads
 * (tg__offload_traffic_get). */
static void publish_traffic(ofl *b) {
  ofl_traffic t = b->traffic_closed;
  for (int i = 0; i < b->nconns; i++) {
    if (b->conns[i]->link) add_traffic(&t.link, &b->conns[i]->link->st);
    add_stream(&t, &b->conns[i]->stream);
  }
  pthread_mutex_lock(&b->traffic_mu);
  b->traffic = t;
  pthread_mutex_unlock(&b->traffic_mu);
}

/* One pass over everything that may have happened. */
static void turn(ofl *b, zmq_pollitem_t *it) {
  uint64_t x;
  if (it[0].revents & ZMQ_POLLIN) {
    ssize_t r = read(b->wake_fd, &x, sizeof x);
    (void)r;
  }
  take_inbox(b);
  if (b->tr->turn) b->tr->turn(b);
  tg__ofl_handles_reap(b);
  if (b->join) tg__ofl_join_poll(b); /* may add conns */
  for (int i = 0; i < b->nconns; i++) /* every one: the poll may have left some out */
    tg__ofl_conn_poll(b, b->conns[i]);
  double now = tg__now();
  unsigned ready = 0;
  for (int i = 0; i < b->nconns; i++) {
    ofl_conn *c = b->conns[i];
    tg__ofl_conn_tick(b, c, now);
    if (c->joined) tg__ofl_join_tick(b, c, now);
    if (c->leaving) tg__ofl_leave_tick(b, c);
    ready += c->state == CS_READY;
  }
  atomic_store(&b->st_ready, ready);
  if (b->ntimed) tg__ofl_expire_tasks(b, now);
  tg__ofl_cancel_runs(b);
  tg__ofl_dispatch(b);
  tg__bigbuf_sweep(); /* receive buffers kept idle too long */
  /* What this turn let go of is told now, not with the next turn's
   * messages: a run's large constant, ended with its run, stayed on its
   * worker (and its segment busy) until the next run's tasks went, so a
   * large array sent again went into a fresh segment (200 MiB there and
   * back: 1.4 GB/s the second time, 10 from the third on). */
  tg__ofl_handles_reap(b);
  for (int i = 0; i < b->nconns; i++) tg__ofl_conn_flush(b, b->conns[i]);
  publish_traffic(b); /* before runs finish (wctx_flush) */
}

/* No worker has been ready while work waits: give up after the timeout,
 * or at once when every worker refused us for good. */
static void watch_workers(ofl *b) {
  bool waiting = tg__ofl_work_waiting(b), any = false, all_fatal = true;
  for (int i = 0; i < b->nconns; i++) {
    any |= b->conns[i]->state == CS_READY;
    all_fatal &= b->conns[i]->fatal;
  }
  if (b->join) all_fatal = false; /* workers may still join */
  if (!waiting || any) {
    b->no_worker_since = 0;
    return;
  }
  tg__ofl_drop_stopped(b); /* a stopped run need not wait for workers */
  if (!tg__ofl_work_waiting(b)) return;
  double now = tg__now();
  if (b->no_worker_since == 0) b->no_worker_since = now;
  if (!all_fatal && now - b->no_worker_since < b->connect_timeout) return;
  char why[1024];
  size_t n = (size_t)snprintf(why, sizeof why, all_fatal ? "no worker accepts this run"
                              : "no worker reachable for %g s", b->connect_timeout);
  for (int i = 0; i < b->nconns && n < sizeof why; i++)
    n += (size_t)snprintf(why + n, sizeof why - n, "; %s: %s", b->conns[i]->addr,
                          b->conns[i]->why[0] ? b->conns[i]->why : "no answer");
  tg__ofl_fail_waiting(b, why);
  b->no_worker_since = 0;
}

static void *io_main(void *arg) {
  ofl *b = arg;
  io_of = b;
  bool forks = b->tr->caps & TG__TR_CHILDREN; /* forked while we wait */
  if (forks) tg__fork_busy();
  zmq_pollitem_t *it = NULL;
  size_t cap_it = 0;
  for (;;) {
    pthread_mutex_lock(&b->mu);
    bool stop = b->stopping && !b->in_head;
    bool reap = b->freeq != NULL; /* dropped here since the last reap */
    pthread_mutex_unlock(&b->mu);
    if (stop) break;
    if (cap_it < 2 + 2 * (size_t)b->nconns) { /* workers joined */
      size_t cap = 2 * (2 + 2 * (size_t)b->nconns);
      zmq_pollitem_t *p = tg__realloc(it, cap * sizeof *p);
      if (p) {
        it = p;
        cap_it = cap;
      } else if (!it) {
        break; /* no memory for the loop at all */
      } /* else the newest conns are not polled, only looked at each turn */
    }
    int npoll = (int)((cap_it - 2) / 2);
    if (npoll > b->nconns) npoll = b->nconns;
    it[0] = (zmq_pollitem_t){NULL, b->wake_fd, ZMQ_POLLIN, 0};
    it[1] = (zmq_pollitem_t){b->join, b->join ? 0 : -1, b->join ? ZMQ_POLLIN : 0, 0};
    for (int i = 0; i < npoll; i++) { /* no socket: no fd (not fd 0) */
      tg__link *l = b->conns[i]->link;
      void *m = b->conns[i]->mon;
      it[2 + 2 * i] = (zmq_pollitem_t){NULL, -1, 0, 0};
      if (l) tg__link_pollitem(l, &it[2 + 2 * i]);
      it[3 + 2 * i] = (zmq_pollitem_t){m, m ? 0 : -1, m ? ZMQ_POLLIN : 0, 0};
    }
    if (forks) tg__fork_idle();
    zmq_poll(it, 2 + 2 * npoll, reap ? 0 : LOOP_MS);
    if (forks) tg__fork_busy();
    turn(b, it);
    watch_workers(b);
    tg__ofl_take_ready(b);
    /* Publishing counts may finish runs, whose callbacks may submit. */
    tg__wctx_flush(&b->w);
  }
  tg__free(it);
  tg__ofl_join_close(b);
  for (int i = 0; i < b->nconns; i++) tg__ofl_conn_close(b, b->conns[i], true);
  if (forks) tg__fork_idle();
  if (b->tr->shutdown) b->tr->shutdown(b);
  publish_traffic(b);
  tg__ofl_handles_reap(b);
  tg__wctx_destroy(&b->w);
  return NULL;
}

/* ---- the backend ------------------------------------------------------------- */

void tg__ofl_submit(tg__backend *be, tg__task *const *tasks, size_t n) {
  ofl *b = (ofl *)be;
  if (!n) return;
  pthread_mutex_lock(&b->mu);
  bool was_empty = b->in_head == NULL;
  for (size_t i = 0; i < n; i++) {
    tasks[i]->next = NULL;
    if (b->in_tail) b->in_tail->next = tasks[i];
    else b->in_head = tasks[i];
    b->in_tail = tasks[i];
  }
  pthread_mutex_unlock(&b->mu);
  if (was_empty) tg__ofl_wake(b);
}

void tg__ofl_free(ofl *b) {
  for (int i = 0; i < b->nconns; i++) tg__ofl_conn_close(b, b->conns[i], false);
  tg__ofl_join_close(b);
  if (b->tr->free) b->tr->free(b);
  if (b->zctx) zmq_ctx_term(b->zctx);
  for (int i = 0; b->conns && i < b->nconns; i++) {
    tg__ofl_conn_free(b->conns[i]);
    tg__free(b->conns[i]);
  }
  tg__free(b->parts);
  tg__free(b->timed);
  if (b->wake_fd >= 0) {
    tg__fd_untrack(b->wake_fd);
    close(b->wake_fd);
  }
  for (ofl_run *rs = b->runs, *next; rs; rs = next) { /* none after a clean run */
    next = rs->next;
    rs->users = 1;
    tg__ofl_run_unuse(b, rs);
  }
  tg__ofl_handles_reap(b);
  tg__idmap_free(&b->handles);
  tg__idmap_free(&b->task_secs);
  tg__idmap_free(&b->runs_by_seq);
  tg__task_heap_free(&b->heap);
  tg__recycle_drain(&b->rec_blocks);
  tg__recycle_drain(&b->handle_blocks);
  tg__free(b->conns);
  tg__free(b->keys_dir);
  memset(b->client_sec, 0, sizeof b->client_sec);
  pthread_mutex_destroy(&b->mu);
  pthread_mutex_destroy(&b->traffic_mu);
  if (!b->io_ran) tg__wctx_destroy(&b->w); /* else the I/O thread did */
  tg__free(b);
}

int tg__ofl_new(const tg__backend_cfg *cfg, const tg__backend_ops *ops, const tg__transport *tr,
                ofl **out, tg_error *err) {
  *out = NULL;
  ofl *b = tg__calloc(1, sizeof *b);
  if (!b) return tg__error_set(err, TG_ENOMEM, "out of memory");
  b->base.ops = ops;
  b->tr = tr;
  b->ex = cfg->ex;
  b->wake_fd = -1;
  b->next_id = 1;
  b->ncpus = tg__ncpus();
  pthread_mutex_init(&b->mu, NULL);
  pthread_mutex_init(&b->traffic_mu, NULL);
  tg__wctx_init(&b->w, 0);
  b->w.defer_started = true; /* reported when a worker is chosen (append) */
  b->w.thread = -1;          /* the worker's pool picks the thread later */
  /* Here, for every transport (the processes backend has no tcp options
   * to configure: set there, its records all went through malloc). As
   * many as a run may have in flight (W1's 10,000 leaves go at once):
   * past the kept ones each record costs a malloc and a free of ~300
   * bytes. Free blocks stay in this process either way (malloc keeps
   * them in its bins). */
  b->rec_blocks.size = sizeof(ofl_rec) + OFL_REC_ARGS * (sizeof(tg_value *) + sizeof(ofl_handle *));
  b->rec_blocks.max = 16384;
  b->handle_blocks.size = sizeof(ofl_handle);
  b->handle_blocks.max = 16384;
  b->parts = tg__malloc(OFL_MAX_PARTS * sizeof *b->parts);
  b->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  tg__fd_track(b->wake_fd);
  *out = b;
  if (!b->parts) return tg__error_set(err, TG_ENOMEM, "out of memory");
  if (b->wake_fd < 0) return tg__error_set(err, TG_EIO, "eventfd: %s", strerror(errno));
  return TG_OK;
}

int tg__ofl_start(ofl *b, tg_error *err) {
  int rc = TG_OK;
  b->base.workers = (unsigned)b->nconns;
  for (int i = 0; rc == TG_OK && i < b->nconns; i++) rc = tg__ofl_conn_open(b, b->conns[i], err);
  if (rc == TG_OK && tg__thread_start(&b->io, io_main, b) != 0)
    rc = tg__error_set(err, TG_ENOMEM, "cannot start the backend's I/O thread");
  if (rc == TG_OK) b->io_started = b->io_ran = true;
  return rc;
}

void tg__ofl_stop(ofl *b) {
  if (b->io_started) {
    pthread_mutex_lock(&b->mu);
    b->stopping = true;
    pthread_mutex_unlock(&b->mu);
    tg__ofl_wake(b);
    pthread_join(b->io, NULL);
    b->io_started = false;
  }
}

int tg_remote_stats_get(tg_executor *ex, tg_remote_stats *out) {
  if (!ex || !out || (ex->ops != &tg__backend_tcp && ex->ops != &tg__backend_processes))
    return TG_EINVAL; /* one engine: the same figures */
  ofl *b = (ofl *)ex->backend;
  out->tasks_sent = atomic_load(&b->st_tasks);
  out->batches_sent = atomic_load(&b->st_batches);
  out->bytes_sent = atomic_load(&b->st_sent);
  out->bytes_received = atomic_load(&b->st_recv);
  out->values_moved = atomic_load(&b->st_moved_n);
  out->bytes_moved = atomic_load(&b->st_moved);
  out->results_kept = atomic_load(&b->st_kept);
  out->workers_lost = atomic_load(&b->st_lost);
  out->tasks_retried = atomic_load(&b->st_retried);
  out->tasks_recomputed = atomic_load(&b->st_recomputed);
  out->workers_ready = atomic_load(&b->st_ready);
  return TG_OK;
}

int tg__offload_traffic_get(const tg_executor *ex, tg__offload_traffic *out) {
  if (!ex || !out || (ex->ops != &tg__backend_tcp && ex->ops != &tg__backend_processes))
    return TG_EINVAL;
  ofl *b = (ofl *)ex->backend;
  pthread_mutex_lock(&b->traffic_mu);
  ofl_traffic t = b->traffic;
  pthread_mutex_unlock(&b->traffic_mu);
  const tg__link_stats s = t.link;
  *out = (tg__offload_traffic){
      .sock_out = s.sock_out,
      .sock_in = s.sock_in,
      .shm_copied = s.seg_copied,
      .shm_passed = s.seg_out + s.seg_in,
      .fds_passed = s.fds_out + s.fds_in,
      .values_moved = atomic_load(&b->st_moved_n),
      .batches = atomic_load(&b->st_batches),
      .tasks = atomic_load(&b->st_tasks),
      .large_shm = t.shm,
      .large_streamed = t.streamed,
      .deaths = atomic_load(&b->st_deaths),
  };
  return TG_OK;
}
