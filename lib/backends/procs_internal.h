/* lib/backends/procs_internal.h: the parts of the processes backend and
 * the interfaces between them.
 *
 * Processes (all on this machine):
 *   parent   the program: an IO thread runs the scheduling side (batches
 *            out, results in, faults), a spawner thread forks workers, an
 *            output thread forwards their stdout/stderr line by line;
 *   workers  N children forked from the spawner thread after the registry
 *            was set up; each runs tasks by registry index, one at a time.
 *
 * Files:
 *   processes.c      the backend table, the pool's life, the IO thread loop
 *   procs_dispatch.c ready queues, duration estimates, batches out, retries
 *   procs_results.c  messages from workers (hellos, results, logs), giving
 *                    segments up, flushing sockets
 *   procs_faults.c   dead workers, timeouts, cancellation, respawning
 *   procs_wire.c     byte buffers and framed messages with passed fds
 *   procs_codec.c    values on the wire (the serializer's tags + segments)
 *   procs_seg.c      memfd segments, size classes and pools
 *   procs_pseg.c     the parent's table of segments shared with workers
 *   procs_wseg.c     a worker's table of segments and its array allocator
 *   procs_spawn.c    the spawner thread, fork and child set-up, fd hygiene
 *   procs_output.c   forwarding workers' output, each line whole
 *   procs_worker.c   the worker's main loop
 *
 * Wire: one AF_UNIX stream socketpair per worker carrying framed messages
 * (procs_wire.c). Small values travel inline in the serializer's meta tags
 * and varints; arrays and bytes of TG__PROCS_SHM_MIN bytes or more travel as
 * a reference into a memfd segment whose fd is passed once (SCM_RIGHTS) and
 * then named by id, so data never crosses the socket.
 *
 * Segments: each is created by one process (its creator) and mapped by the
 * others. The parent is the hub: it knows every segment a worker mapped
 * (holder bits). A task in flight holds its arguments (a segment holding
 * a copy of a user array is held by the batch that sends it), and results
 * become parent values on arrival, so once no parent value and no hold
 * uses a segment, no task anywhere uses it: the parent reuses it at once
 * if it made it, or tells the worker that made it to reuse it, and tells
 * the others to unmap it. A reused segment gets a new id, so a stale
 * mapping can never be taken for the new data. Ids are (creator spawn
 * number << 32 | counter); the parent's spawn number is 0.
 *
 * Thread safety: see each section.
 */
#ifndef TG_PROCS_INTERNAL_H
#define TG_PROCS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/types.h>

#include "backends/processes.h"
#include "sched/backend.h"
#include "sched/taskheap.h"
#include "serial/format.h"
#include "value/value_internal.h"
#include "remote/frame.h"
#include "remote/seg.h"
#include "util/fdtrack.h"

#define TG__PROCS_SHM_MIN TG__SEG_MIN

/* ---- values on the wire (procs_codec.c) ------------------------------------ */

/* Tags beyond the serializer's meta tags (format.h), wire only. */
enum {
  TG__TAG_ARRAY_INLINE = 0x40, /* u8 dtype, u8 ndim, dims, raw bytes */
  TG__TAG_SEG_ARRAY = 0x41,    /* u8 dtype, u8 ndim, dims, segment ref */
  TG__TAG_SEG_BYTES = 0x42,    /* varint len, segment ref */
};

/* A reference to data in a segment: varint id, varint segment size,
 * varint offset, u8 1 when the segment's fd comes with the message. */
typedef struct tg__pref {
  tg_type type;     /* TG_NDARRAY or TG_BYTES */
  tg_dtype dtype;
  int ndim;
  int64_t shape[TG_NDIM_MAX];
  size_t nbytes;    /* data bytes */
  uint64_t id;      /* segment id */
  uint64_t size;    /* segment bytes */
  uint64_t off;     /* data offset in the segment */
  bool has_fd;
} tg__pref;

/* For arrays and bytes of TG__PROCS_SHM_MIN bytes or more: fill id, size,
 * off and has_fd (queuing the fd). TG_OK, 1 to send the data inline, or a
 * negative code. */
typedef int (*tg__penc_seg_fn)(void *ctx, const tg_value *v, tg__pref *ref);
/* Make the value a received reference names; TG_OK or a negative code. */
typedef int (*tg__pdec_seg_fn)(void *ctx, const tg__pref *ref, tg_value **out);

/* Append v. On error b may hold a partial value: the caller truncates. */
int tg__penc_value(tg__pbuf *b, const tg_value *v, tg__penc_seg_fn seg,
                   void *ctx);

typedef struct tg__pdec {
  const uint8_t *p, *end;
  tg__pdec_seg_fn seg;
  void *ctx;
  const char *err;   /* set on a malformed input: what was wrong */
} tg__pdec;

int tg__pdec_value(tg__pdec *d, tg_value **out);
int tg__pdec_varint(tg__pdec *d, uint64_t *u);
int tg__pdec_u32(tg__pdec *d, uint32_t *x); /* 4 bytes, little-endian */
int tg__pdec_u8(tg__pdec *d, uint8_t *x);
/* A varint length and that many bytes (borrowed from the input). */
int tg__pdec_str(tg__pdec *d, const char **s, size_t *len);
/* Append a varint length and the bytes. */
int tg__penc_str(tg__pbuf *b, const char *s, size_t len);

/* ---- the parent's segment table (procs_pseg.c) ----------------------------- */

typedef struct tg__plink tg__plink;

typedef struct tg__pseg {
  uint64_t id;
  tg__seg seg;             /* fd kept open while the parent has it */
  uint32_t creator;        /* creating worker's spawn number, 0 = parent */
  int creator_slot;        /* its worker slot, -1 for the parent */
  uint64_t holders;        /* worker slots (< 64) that have it mapped */
  _Atomic uint32_t nlive;  /* parent regions alive (values using it) */
  uint32_t holds;          /* copy-cache entries and batches in flight
                              using it (copies of user arrays only) */
  bool queued, orphan;     /* guarded by link->mu */
  struct tg__pseg *hnext;  /* hash chain */
  struct tg__pseg *qnext;  /* link's notice list */
  tg__plink *link;
} tg__pseg;

/* What segment releases talk to: outlives the backend while parent values
 * still use its segments. */
struct tg__plink {
  pthread_mutex_t mu;      /* guards everything below and psegs' queued,
                              orphan */
  uint32_t refs;           /* the backend + orphaned segments */
  bool alive;              /* the backend runs */
  int wake_fd;             /* eventfd of the IO thread */
  tg__pseg *notices;       /* segments whose last parent value went */
};

typedef struct tg__pcopy {
  tg_value *src;           /* a reference to the array copied */
  tg__pseg *seg;           /* where its copy is */
} tg__pcopy;

/* The table; owned by the IO thread except where noted. */
typedef struct tg__psegs {
  tg__pseg **tab;
  size_t cap, n;
  tg__segpool pool;        /* the parent's free segments */
  tg__plink *link;
  uint32_t next_id;
  tg__pcopy *copies;       /* copies of user arrays, oldest first: reused
                              for other tasks until idle (or evicted) */
  size_t ncopies, copies_cap, copies_bytes;
  tg__pseg **nbuf;         /* tg__psegs_notices' array */
  size_t nbuf_cap;
  tg__pstats *stats;
} tg__psegs;

int tg__psegs_init(tg__psegs *ps, int wake_fd, tg__pstats *stats);
/* The backend is going: free what nobody uses, orphan the rest (their
 * last release frees them). */
void tg__psegs_free(tg__psegs *ps);
tg__pseg *tg__psegs_find(const tg__psegs *ps, uint64_t id);
/* A received reference (from worker slot `slot`, spawn `spawn`; a passed
 * fd is taken) as a parent value. */
int tg__psegs_value(tg__psegs *ps, const tg__pref *ref, int fd, int slot,
                    uint32_t spawn, tg_value **out);
/* The segment (and whether to pass its fd) for sending v to worker slot
 * `slot`: a segment v already lives in, or a copy (made now, or earlier
 * for another task) with a hold taken for the caller: a copy is no parent
 * value, so the batch sending it holds it until its tasks are done. */
int tg__psegs_ref(tg__psegs *ps, const tg_value *v, int slot, tg__pref *ref,
                  tg__pseg **seg, bool *held);
/* Drop a hold taken by tg__psegs_ref. */
void tg__psegs_unhold(tg__psegs *ps, tg__pseg *s);
/* The parent segment v's data lives in, or NULL. */
tg__pseg *tg__psegs_of(const tg_value *v);
/* Segments whose last parent value (or copy-cache entry) went since the
 * last call: their number, and the array (owned by ps) in *out. */
size_t tg__psegs_notices(tg__psegs *ps, tg__pseg ***out);
/* Drop the copy cache (when idle). */
void tg__psegs_drop_copies(tg__psegs *ps);
/* Unlink s from the table and reuse or destroy it; false (nothing done)
 * when a newer release of it is queued. */
bool tg__psegs_retire(tg__psegs *ps, tg__pseg *s);
/* Worker slot `slot` died: it holds nothing any more. */
void tg__psegs_forget_slot(tg__psegs *ps, int slot);
/* Call fn on every segment. */
void tg__psegs_each(tg__psegs *ps, void (*fn)(void *ctx, tg__pseg *s),
                    void *ctx);

/* ---- a worker's segment table (procs_wseg.c) -------------------------------- */

typedef struct tg__wsegs tg__wsegs;

/* Set up the worker's table and install its array allocator for this
 * thread (tg__array_alloc_hook). conn: where fds are queued. */
tg__wsegs *tg__wsegs_new(uint32_t spawn, tg__pconn *conn);
/* The codec callbacks of a worker. */
int tg__wsegs_enc(void *ctx, const tg_value *v, tg__pref *ref);
int tg__wsegs_dec(void *ctx, const tg__pref *ref, tg_value **out);
/* Control messages from the parent. */
void tg__wsegs_forget(tg__wsegs *ws, uint64_t id);
void tg__wsegs_release(tg__wsegs *ws, uint64_t id);
/* Free pooled segments idle since before `before`; true if some remain. */
bool tg__wsegs_trim(tg__wsegs *ws, double before);

/* ---- spawning (procs_spawn.c) ----------------------------------------------- */

typedef struct tg__spawned {
  pid_t pid;
  int pidfd;       /* -1 when the kernel has no pidfd_open */
  int sock;        /* the parent's end of the socketpair */
  int out_fd;      /* read ends of the worker's stdout and stderr pipes */
  int err_fd;
} tg__spawned;

/* Runs in the child after set-up (fds closed, pipes in place, own process
 * group, death signal armed); must not return. */
typedef void (*tg__child_fn)(void *ctx, int slot, uint32_t spawn, int sock);
/* Called on the spawner thread with a new worker (rc TG_OK) or why none
 * could be started (the fds are the callee's). */
typedef void (*tg__spawned_fn)(void *ctx, int slot, uint32_t spawn, int rc,
                               const tg__spawned *sp);

typedef struct tg__spawner tg__spawner;

/* Start the spawner thread with the pool's first workers already asked
 * for: slots 0..nfirst-1, spawn numbers first_spawn, first_spawn+1, ...
 * Queued before the thread starts so that the caller allocates nothing
 * while the first forks happen (see procs_spawn.c). */
int tg__spawner_start(tg__child_fn child, tg__spawned_fn done, void *ctx,
                      unsigned nfirst, uint32_t first_spawn, tg__spawner **out,
                      tg_error *err);
/* Ask for a worker in `slot` (asynchronous: `done` reports). */
void tg__spawner_request(tg__spawner *s, int slot, uint32_t spawn);
/* Stop and join the thread (children it forked get their death signal
 * when it exits: stop only after they were reaped). */
void tg__spawner_stop(tg__spawner *s);

/* "was killed by signal 11 (Segmentation fault)", "exited with status 3". */
void tg__describe_status(int status, char *buf, size_t size);

/* ---- output forwarding (procs_output.c) ------------------------------------ */

typedef struct tg__pout tg__pout;

int tg__pout_start(tg__pout **out, tg_error *err);
/* Forward fd (taken) to dest (1 or 2) line by line. Thread-safe. */
void tg__pout_add(tg__pout *o, int fd, int dest);
/* Forward what is still readable, close everything, join. */
void tg__pout_stop(tg__pout *o);

/* ---- the worker side (procs_worker.c) -------------------------------------- */

/* Shared between the parent and one worker slot (a MAP_SHARED mapping made
 * before any fork): where the worker is, and its stand-in run, whose
 * `cancel` the parent sets so that tg_task_cancelled() works in workers. */
typedef struct tg__pshared {
  _Atomic uint64_t cur;      /* (batch seq << 32) | (task index << 1) |
                                running */
  _Atomic int64_t start_ns;  /* CLOCK_MONOTONIC start of the running task */
  tg__run run;               /* the worker's stand-in run */
} tg__pshared;

typedef struct tg__pworker_cfg {
  tg_registry *reg;
  size_t nfuncs;            /* functions in the registry at fork */
  tg__pshared *shared;      /* this slot's */
  int slot;
  uint32_t spawn;
  int sock;
} tg__pworker_cfg;

/* The worker: handle messages until the parent goes; never returns. */
_Noreturn void tg__pworker_main(const tg__pworker_cfg *cfg);

/* Exit statuses of a worker that received a malformed message, or ran
 * out of memory outside a task. */
#define TG__PWORKER_EPROTO 70
#define TG__PWORKER_ENOMEM 71

int64_t tg__pnow_ns(void);

/* ---- the parent side (processes.c, procs_dispatch.c, procs_faults.c) -------- */

/* The task's call as a worker needs it: registry index, kind, and the key
 * (generated keys are rebuilt from the node id). */
typedef struct tg__ptask {
  tg__task *t;            /* NULL once finished */
  tg_value **args;        /* retry records: an owned array of the borrowed
                             argument values; in batches NULL (see argi) */
  uint32_t argi, nargs;   /* in batches: args at batch->argv + argi */
  uint16_t attempt;       /* 0 first */
  float timeout;          /* seconds per attempt, 0 = none */
  const tg_func *fn;
} tg__ptask;

/* Tasks sent to a worker in one message, in flight until its results. */
typedef struct tg__pbatch {
  struct tg__pbatch *next;
  uint32_t seq;
  uint32_t n, cap;
  double est;             /* estimated seconds of work */
  bool unknown;           /* some task's duration was not known */
  bool timeouts;          /* some task has a timeout */
  tg__run *run;           /* the run of all its tasks, or NULL if mixed */
  tg_value **argv;        /* all tasks' argument pointers */
  size_t nargv, argv_cap;
  tg__pseg **holds;       /* copies of user arrays its tasks use */
  size_t nholds, holds_cap;
  tg__ptask t[];
} tg__pbatch;

/* A slot's worker: DOWN (none; DISABLED if it keeps failing to start),
 * SPAWNING (asked the spawner), STARTING (forked, no hello yet), UP,
 * DYING (socket closed or killed, not reaped yet). */
enum {
  TG__PW_DOWN = 0,
  TG__PW_DISABLED,
  TG__PW_SPAWNING,
  TG__PW_STARTING,
  TG__PW_UP,
  TG__PW_DYING,
};

typedef struct tg__pworker {
  int slot;
  int state;              /* TG__PW_* */
  uint32_t spawn;         /* this incarnation's number */
  pid_t pid;
  int pidfd;
  tg__pconn c;
  bool want_out;          /* EPOLLOUT armed */
  uint32_t seq;           /* last message number sent */
  tg__pbatch *head, *tail;/* in flight, oldest first */
  uint32_t nbatches;
  double est_out;         /* estimated seconds of work in flight */
  uint32_t unknown_out;   /* batches in flight with unknown durations */
  uint32_t timeouts_out;  /* batches in flight with timeouts */
  uint64_t *forget;       /* ids to unmap (next control message) */
  size_t nforget, forget_cap;
  uint64_t *release;      /* ids to reuse (this worker created them) */
  size_t nrelease, release_cap;
  tg__task **affine;      /* ready tasks whose big inputs are here (LIFO) */
  size_t naffine, affine_cap;
  double started;         /* when this incarnation was forked */
  double kill_at;         /* 0, or when to SIGKILL it (EOF seen) */
  double respawn_at;      /* 0, or when to ask for a new worker */
  int quick_deaths;       /* deaths soon after start, in a row */
  int kill_code;          /* TG_OK, or why we killed it: TG_ETIMEDOUT,
                             TG_EPROTO, TG_ECANCELED (its run ended) */
  char kill_why[256];     /* ... in words */
  uint64_t kill_cur;      /* shared->cur when we killed it */
  uint64_t ended_cur;     /* shared->cur when it was first seen holding
                             tasks of an ended run ... */
  double ended_since;     /* ... and when (0: not seen) */
} tg__pworker;

/* Per-function running estimates of task durations. */
typedef struct tg__pest {
  const tg_func *fn;
  uint32_t index;         /* registry index, UINT32_MAX = not in workers */
  double secs;            /* < 0: unknown */
} tg__pest;

typedef struct tg__ppool {
  tg__backend base;
  tg_executor *ex;
  tg_registry *reg;
  size_t nfuncs;          /* functions when the pool started */
  unsigned nw;
  tg__pworker *ws;
  tg__pshared *shared;    /* nw slots */
  size_t shared_len;
  pid_t self;
  /* IO thread */
  pthread_t io;
  bool io_started;
  int ep;                 /* epoll */
  int wake_fd;            /* eventfd: submissions, spawns, releases */
  _Atomic int stopping;
  tg__wctx w;             /* the IO thread's */
  tg__task **ready;       /* ready tasks, most urgent last (LIFO) */
  size_t nready, ready_cap;
  tg__task_heap pq;       /* ready tasks of runs with priorities
                             (procs_dispatch.c) */
  tg__ptask *retry;       /* begun tasks to run again */
  size_t nretry, retry_cap;
  tg__pest *est;          /* open addressing by fn pointer */
  size_t est_cap, nest;
  tg__psegs segs;
  tg__pstats stats;       /* the IO thread's counters */
  tg__pstats stats_pub;   /* a copy others may read (under mu) */
  unsigned rr;            /* round-robin start of dispatching */
  uint32_t next_spawn;
  double next_poll;       /* cancellation/timeout polling */
  double last_trim;
  /* shared with other threads, under mu */
  pthread_mutex_t mu;
  pthread_cond_t cv;
  tg__task *inj_head, *inj_tail; /* submitted, most urgent first */
  tg__spawned *born;      /* per slot: a new worker to adopt */
  int *born_rc;           /* per slot: 1 = waiting in born, <0 failed */
  uint32_t *born_spawn;
  _Atomic int born_any;   /* something in born_rc */
  unsigned nup;           /* workers that said hello, for create */
  int start_rc;           /* the pool cannot start: why */
  char start_msg[256];
  /* helpers */
  tg__spawner *spawner;
  tg__pout *out;
} tg__ppool;

/* Message numbers wrap: a is at or before b. */
static inline bool tg__seq_le(uint32_t a, uint32_t b) { return (int32_t)(a - b) <= 0; }

/* procs_dispatch.c */
void tg__pd_push_ready(tg__ppool *p, tg__task *t);
/* Pop the most urgent task of p->pq (not empty). */
tg__task *tg__pd_pq_pop(tg__ppool *p);
void tg__pd_take_made_ready(tg__ppool *p);
/* Send batches to every worker that can take one. */
void tg__pd_dispatch(tg__ppool *p);
/* A message from worker w. TG_OK, or TG_EPROTO (the worker is broken). */
int tg__pd_message(tg__ppool *p, tg__pworker *w, const tg__pmsg *m);
/* Finish a begun task (arguments args) whose attempt failed with rc/msg
 * in worker p->w.worker, having begun at start_ns (CLOCK_MONOTONIC, as
 * tg__pnow_ns; negative: unknown) and run `seconds`, or queue it again
 * when it has attempts left. */
void tg__pd_task_failed(tg__ppool *p, const tg__ptask *pt, tg_value *const *args,
                        int rc, const char *msg, int64_t start_ns, double seconds);
/* The report of pt's last attempt, run by worker p->w.worker from
 * start_ns for `seconds` (start_ns < 0: not run, or not measured). A
 * worker process is one thread: its slot 0. */
tg__call_report tg__pd_report(const tg__ppool *p, const tg__ptask *pt, int64_t start_ns,
                              double seconds);
/* Queue a begun task to run again as it is (a copy of args is kept). */
void tg__pd_requeue(tg__ppool *p, const tg__ptask *pt, tg_value *const *args);
/* A task of a batch in flight: its argument values. */
static inline tg_value *const *tg__pd_args(const tg__pbatch *b, const tg__ptask *pt) {
  return b->argv + pt->argi;
}
/* Write w's pending forget/release instructions as a control message
 * (before any batch that follows them in the parent's decisions). */
void tg__pd_emit_control(tg__ppool *p, tg__pworker *w);
/* Emit control messages and send what is queued on every socket. */
void tg__pd_flush(tg__ppool *p);
/* Fold measured durations (sum seconds over n tasks of fn) in. */
void tg__pd_est_update(tg__ppool *p, const tg_func *fn, double sum, uint32_t n);
/* Segments whose last parent value went: tell holders to forget them. */
void tg__pd_segments(tg__ppool *p);
bool tg__pd_idle(const tg__ppool *p);
void tg__pd_free(tg__ppool *p);
/* Free a batch whose tasks are done (or requeued). */
void tg__pd_free_batch(tg__ppool *p, tg__pbatch *b);

/* procs_faults.c */
/* Worker w's process is gone (reaped with `status`). */
void tg__pf_dead(tg__ppool *p, tg__pworker *w, int status);
/* The socket of w hit EOF or an error. */
void tg__pf_eof(tg__ppool *p, tg__pworker *w);
/* Kill workers running tasks past their timeout; flag cancelled runs,
 * and kill workers still stuck in their tasks a grace period later.
 * Returns seconds until the next check is due (< 0: none needed). */
double tg__pf_poll(tg__ppool *p, double now);
/* Reap w if its process ended; true when it did. */
bool tg__pf_reap(tg__ppool *p, tg__pworker *w, bool block);
/* Start a new worker in w's slot. */
void tg__pf_respawn(tg__ppool *p, tg__pworker *w);
/* Adopt workers the spawner made. */
void tg__pf_adopt(tg__ppool *p);
/* Kill w on purpose (code TG_ETIMEDOUT or TG_EPROTO, reason in words). */
void tg__pf_kill(tg__ppool *p, tg__pworker *w, int code, const char *why);
/* Fail every queued task when no worker can run them. */
void tg__pf_no_workers(tg__ppool *p, const char *why);
/* Shut every worker down: close sockets, wait a grace period, kill, reap. */
void tg__pf_shutdown(tg__ppool *p);

/* processes.c */
/* Read and handle what w sent: TG_OK when its socket is drained, 1 at
 * its end, TG_EPROTO for a malformed message, or a negative errno. */
int tg__pp_read(tg__ppool *p, tg__pworker *w);
void tg__pp_wake(tg__ppool *p);
int tg__pp_watch(tg__ppool *p, tg__pworker *w);
void tg__pp_unwatch(tg__ppool *p, tg__pworker *w);
void tg__pp_unwatch_sock(tg__ppool *p, tg__pworker *w);
void tg__pp_want_out(tg__ppool *p, tg__pworker *w, bool on);

#endif /* TG_PROCS_INTERNAL_H */
