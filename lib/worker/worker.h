/* lib/worker/worker.h: the state of a serving worker (tg_worker_serve),
 * shared by its files: the loop and sessions (worker.c), task messages,
 * objects and replies (worker/tasks.c), and the thread pool that calls
 * the functions (worker/pool.c).
 *
 * One thread, the loop, owns the ROUTER socket, the sessions and their
 * objects. A session is one connected client (one executor's connection):
 * its function table, its objects (results kept here, values PUT here),
 * its runs (the hosts of their tasks) and its pending replies. Pool
 * threads see only the tasks handed to them, and hand them back finished
 * through the `done` list, waking the loop with an eventfd.
 *
 * Thread safety: sessions, objects and replies: loop thread only. The
 * queue and done lists: under mu. A task belongs to the loop until it is
 * queued, to one pool thread while it runs, and to the loop again once
 * done.
 */
#ifndef TG_WORKER_WORKER_H
#define TG_WORKER_WORKER_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>
#include <zmq.h>

#include "wire/buf.h"
#include "util/idmap.h"
#include "wire/link.h"
#include "wire/proto.h"
#include "wire/stream.h"
#include "worker/zap.h"
#include "graph/call.h"
#include "util/recycle.h"

typedef struct wsess wsess;
typedef struct wtask wtask;

/* A client run seen here, and the task host of its tasks here
 * (worker/pool.c): its `cancel` flag is what tg_task_cancelled() reads,
 * and its tg_task_log() lines go to its client (tg__wk_log_line). */
typedef struct wrun {
  uint64_t seq;
  _Atomic int cancel;   /* set by the loop (CANCEL, a dropped session),
                           read by the pool threads running its tasks */
  struct tg__worker *wk;
  wsess *s;
  uint32_t refs;        /* tasks holding it */
  struct wrun *next;
} wrun;

/* A task waiting for an object, or (t NULL) a FETCH waiting to be
 * answered. */
typedef struct wwait {
  struct wwait *next;
  wtask *t;
  uint32_t arg;         /* argument slot of t */
  uint8_t sel;          /* TG__ARG_OBJ / _ELEM / _ENTRY */
  int64_t index;
  char *key;            /* owned (ENTRY) */
} wwait;

enum { O_PENDING = 0, O_READY = 1, O_FAILED = 2 };

typedef struct wobj {
  uint64_t id;
  tg_value *v;          /* O_READY */
  uint8_t state;
  bool freed;           /* FREE came while pending: drop it when done */
  bool resend;          /* pending because its PUT was refused: the client
                           sends it again or lets it go (FREE) */
  wtask *maker;         /* pending: the task received to make it, until
                           it is kept (a chain's next link may follow it
                           on its pool thread) */
  int code;             /* O_FAILED */
  char *msg;            /* O_FAILED, owned */
  wwait *waiters;
} wobj;

typedef struct wfn {
  const tg_func *f;     /* NULL unless status is TG__FN_OK */
  uint8_t status;
  char *msg;            /* owned: why not */
} wfn;

struct wsess {
  wsess *next, *hnext;  /* the worker's list / hash chain */
  uint8_t rid[256];     /* ZeroMQ routing id */
  size_t rid_len;
  uint64_t hash;
  bool dead;            /* dropped: tasks still running for it finish
                           into the void */
  _Atomic bool gone;    /* the same, for pool threads: a task linked
                           behind another of it is not called any more */
  bool told_leave;      /* the worker drains and said so (worker/join.c) */
  uint32_t refs;        /* the worker's list + tasks not yet done */
  int fd;               /* the connection's descriptor, -1: unknown
                           (worker/peers.c) */
  double last_seen;
  size_t keep_min;
  int peer_mis;         /* the client's misalignment (wire/wire.h) */
  tg__stream stream;    /* large values streamed either way */
  char name[TG__MAX_NAME + 1];
  wfn *fns;
  size_t nfns;
  tg__idmap objs;       /* id -> wobj (ids the client gives in sequence) */
  wrun *runs;
  tg__wbuf res;         /* result records not yet sent */
  uint32_t nres;
  uint64_t res_base;    /* their clock base (wire/proto.h RESULTS): the
                           first one's time received, in micro-seconds */
  tg_value **vals;      /* inline results of those records */
  size_t nvals, cap_vals;
};

struct wtask {
  wtask *next;
  wsess *s;
  wrun *run;
  uint64_t id, store, min_us;
  const tg_func *fn;
  uint8_t kind, flags;
  uint32_t aux, attempts, nargs, waits;
  uint32_t first;       /* attempt number of its first call here */
  double timeout;
  char *key;            /* in t's block: the key's text, or "" when it is
                           generated (key_node) */
  uint32_t key_node;    /* 1 + the node id a generated key is made of
                           (tg__key_generated, only when a call asks for
                           it: formatting it for every task cost 135 of
                           the worker's 1,796 instructions a task on
                           W1); 0: key */
  tg_value **args;      /* owned references (NULL while waited for) */
  bool prefailed;       /* failed before running (rc, msg set) */
  /* Chains on pool threads (a worker whose loop does not call tasks):
   * `then` is a task that waits for nothing but the kept results (whole)
   * of one or two tasks still to end, this one among them, linked when
   * it was received (under mu, while they were not done): its argument
   * `then_arg` is this one's result. The pool thread that ends this one
   * fills that argument (or fails the task) under mu, and the one that
   * fills its last (`waits` counts them) calls it next when nothing else
   * is queued: a chain, or a small tree, runs on pool threads, the loop
   * woken for the finished tasks now and then, not once per task. */
  wtask *then;          /* guarded by mu */
  uint32_t then_arg;
  bool done;            /* on the done list once (under mu): nothing is
                           linked behind it any more */
  wobj *wait_obj[2];    /* while received: the objects of its first two */
  wwait *wait_w[2];     /* waits */
  int worker;           /* pool thread that ran it */
  int rc;
  tg_value *out;
  uint32_t calls, fails;
  double secs;          /* from the first call's start to the last's end */
  double received;      /* when its TASKS message was handled (tg__now) */
  double started;       /* when its first call began; 0: never called */
  char msg[256];        /* last: a new task clears what comes before it
                           (tasks.c, parse_task), not its message */
};

/* A tg_task_log() line waiting to go to its client. */
typedef struct wlog {
  struct wlog *next;
  wsess *s;             /* alive: the task that logged holds it */
  uint64_t run;
  char *key, *line;     /* owned */
} wlog;

#define TG__WK_MAX_LOGS 10000 /* lines queued at once; more are counted */
/* The loop, about to sleep while the pool runs tasks it just gave it,
 * yields the processor up to TG__WK_SPINS times first (a wake-up costs
 * more), for at most TG__WK_SPIN_SECS: with more runnable threads than
 * processors (many workers on one machine) a yield gives the processor
 * away for a while, and spinning on costs a switch per yield to wake no
 * sooner. (Pool threads sleep at once: worker/pool.c.) */
#define TG__WK_SPINS 64
#define TG__WK_SPIN_SECS 50e-6

/* Where a forked worker shows its parent what it runs (shared memory
 * made before the fork): the wire id of the task in a call (0: none) and
 * its attempt number. The parent reads it when the worker dies, to know
 * which task killed it. One cache line each: the workers write theirs
 * around every call, and two of them sharing a line made it move between
 * their processors at every task (an eighth of the workers' CPU on the
 * 2,000,000 tasks of graph.json). */
typedef struct tg__wk_running {
  _Alignas(64) _Atomic uint64_t id;
  _Atomic uint32_t attempt;
  /* A worker that calls tasks on its loop thread reads no CANCEL while
   * one runs: the parent writes here 1 + the seq of the last run it
   * cancelled (0: none), which tg_task_cancelled() reads in the calls of
   * that run (worker/pool.c). Runs cancelled closer together than a
   * call are told by their CANCEL message, between calls. */
  _Atomic uint64_t cancel;
  /* Set by a worker that calls tasks on its loop thread: it answers no
   * heartbeat ping during a call (the parent then watches `id`). */
  _Atomic uint32_t inline_calls;
} tg__wk_running;

typedef struct tg__worker {
  tg_registry *reg;
  tg_worker_opts o;
  const tg__keyset *mem_keys; /* the run's keys in memory (borrowed), or NULL:
                                 o.keys_dir's or this user's */
  void *zctx, *router;    /* router: NULL on a local link */
  tg__link *link;       /* the ROUTER's, or the one to a local parent */
  tg__wk_running *running; /* local: shown to the parent, or NULL */
  bool said_hello;      /* local: a session began (its end ends us) */
  void *peers;          /* PAIR reading the ROUTER's monitor events */
  tg__zap *zap;
  int wake_fd;          /* eventfd: tasks are done */
  pthread_t *threads;
  unsigned nthreads;
  /* A forked worker of one thread (tg__worker_serve_fd with `running`)
   * calls its tasks on the loop thread, between messages: no hand-off to
   * a pool thread and back (two wake-ups per task), and a chain's next
   * link runs as soon as its input is made. Its parent watches it through
   * `running` (the task in a call, deadlines, cancelled runs) and kills it
   * when a call must stop, which is what a free loop thread gave a remote
   * worker. The queue is then the loop's own (no lock taken). */
  bool inline_calls;
  tg__wstates states;   /* inline_calls: the loop thread's worker state */
  pthread_mutex_t mu;   /* guards queue, idle, done, owed, stopping */
  pthread_cond_t cv;
  wtask *q_head, *q_tail;
  unsigned idle;        /* pool threads waiting for tasks */
  wtask *done;
  /* The loop is owed a wake-up for `done` (tasks done quietly that no
   * thread woke it for yet: worker/pool.c), since owed_since, for owed_n
   * tasks; cleared by whoever wakes it and when it takes `done`. */
  bool owed;
  unsigned owed_n;
  double owed_since;
  wlog *logs, **logs_tail; /* guarded by mu */
  size_t nlogs, logs_dropped;
  bool stopping;
  bool draining;        /* told to leave (worker/join.c) */
  double drain_until;   /* draining: the end of its window (tg__now()
                           clock); LEAVE tells clients the time to it */
  uint64_t drain_taken; /* tasks received while draining (said at the
                           end, with verbose) */
  wsess *sessions;
  tg__idmap by_hash;    /* routing id hash -> first session of the chain */
  tg__idmap banned;     /* routing id hash -> (void *)1: dropped peers */
  tg__stream_pool *pending; /* streamed values held for all sessions (owned) */
  zmq_msg_t *parts;     /* the message being handled */
  size_t nparts;        /* of TG__MAX_PARTS + 1 (untouched pages cost
                           nothing) */
  uint64_t tasks_done;
  tg__recycler task_blocks; /* freed task blocks (loop thread only) */
  tg__recycler obj_blocks;  /* freed objects and waits (loop thread only): */
  tg__recycler wait_blocks; /* made and dropped per task on chains and trees,
                               they cost a third of a worker's instructions
                               in malloc (W3). Up to 65,536 of each are kept
                               (OFL_AHEAD: a chain sent ahead whole waits
                               with one of each per link), 6 MB at most */
  char endpoint[256];
  char user_sock[108];    /* keyless: this user's Unix socket, removed at the end */
  dev_t user_sock_dev;    /* its inode once bound: another worker's socket */
  ino_t user_sock_ino;    /* put at the path later is not removed */
} tg__worker;

/* ---- worker.c ---- */
/* Serve one client, the parent process at the other end of fd (one end
 * of an AF_UNIX stream socketpair, taken), over a local link
 * (wire/link.h): no ZeroMQ context, no keys (the socketpair is
 * private), opts->nthreads (0: 1) threads; nothing else of opts but
 * verbose, max_message and max_pending is used (opts may be NULL).
 * running (may be NULL): where the task in a call is shown.
 * Returns when the parent closes its end or says goodbye: TG_OK, or
 * TG_ENOMEM / TG_EIO when the worker could not start.
 * Fork: for a child forked from a program that uses ZeroMQ: it creates
 * nothing from the parent's context. */
int tg__worker_serve_fd(tg_registry *reg, int fd, const tg_worker_opts *opts,
                        tg__wk_running *running, tg_error *err);
/* tg_worker_serve with keys in memory instead of opts->keys_dir (which
 * must be NULL): keys' worker pair, accepting only keys' client key, as a
 * keys directory would (so any address may be listened on). keys is
 * borrowed until the call returns. */
int tg__worker_serve_keys(tg_registry *reg, const tg_worker_opts *opts,
                          const tg__keyset *keys, tg_error *err);

/* Drop session s: error message to the peer (msg may be NULL), state
 * freed, routing id banned when `ban`. */
void tg__wk_drop(tg__worker *wk, wsess *s, const char *msg, bool ban);
/* Send the header buffer h and then (when v is not NULL) a value to s;
 * false when the peer is gone (s is then dropped). */
bool tg__wk_send(tg__worker *wk, wsess *s, const tg__wbuf *h, const tg_value *v);
void tg__wk_sess_unref(tg__worker *wk, wsess *s);

/* ---- worker/join.c ---- */
/* Register with the run at wk->o.join (kp: the worker's keys), the
 * worker listening already; TG_OK once accepted (or stopped meanwhile). */
int tg__wk_join(tg__worker *wk, const tg__keypair *kp, tg_error *err);
/* The worker drains (tg_worker_opts.drain): tell clients not told yet;
 * true when it may end (no client left). Loop thread. */
bool tg__wk_drain(tg__worker *wk);

/* ---- worker/peers.c ---- */
/* Watch the ROUTER's connections (call before binding it). */
int tg__wk_peers_start(tg__worker *wk, tg_error *err);
void tg__wk_peers_stop(tg__worker *wk);
/* Remember which connection s's HELLO (a part of it) came in on. */
void tg__wk_peer_note(wsess *s, zmq_msg_t *part);
/* Drop the sessions whose connection closed. Call before handling a
 * HELLO (its descriptor may be a closed connection's). */
void tg__wk_peers_read(tg__worker *wk);

/* ---- worker/tasks.c ---- */
/* Handle a TASKS / PUT / FETCH / FREE / CANCEL message of s (header at r,
 * values in wk->parts from index 2). False on a protocol error (s is
 * dropped). */
bool tg__wk_tasks(tg__worker *wk, wsess *s, tg__rbuf *r);
bool tg__wk_put(tg__worker *wk, wsess *s, tg__rbuf *r);
bool tg__wk_fetch(tg__worker *wk, wsess *s, tg__rbuf *r);
bool tg__wk_free(tg__worker *wk, wsess *s, tg__rbuf *r);
bool tg__wk_cancel(tg__worker *wk, wsess *s, tg__rbuf *r);
/* Take the finished tasks from the pool, record their results and send
 * the replies (log lines first). */
void tg__wk_collect(tg__worker *wk);
/* The log op of a wrun's task host (any thread): queue the line for the
 * client of run ctx (a wrun) and wake the loop. */
void tg__wk_log_line(void *ctx, const char *key, const char *line);
/* Free s's objects, runs and waiting tasks (on drop). */
void tg__wk_sess_clear(tg__worker *wk, wsess *s);

/* A zeroed wait of wk's (loop thread), or NULL out of memory; freed with
 * its key by tg__wk_wait_free. */
wwait *tg__wk_wait_new(tg__worker *wk);
void tg__wk_wait_free(tg__worker *wk, wwait *w);
/* ---- worker/pool.c ---- */
int tg__wk_pool_start(tg__worker *wk, tg_error *err);
void tg__wk_pool_stop(tg__worker *wk);
/* Queue the tasks of the list (linked by next) to run. */
void tg__wk_pool_push(tg__worker *wk, wtask *head, wtask *tail);
/* inline_calls: take the next queued task, or NULL (loop thread). */
wtask *tg__wk_pool_take(tg__worker *wk);
/* inline_calls: call t on the loop thread; t0 the clock now (the last
 * call's end when taken back to back). Returns the clock at the end. */
double tg__wk_pool_call(tg__worker *wk, wtask *t, double t0);
/* Whether run r was cancelled (a CANCEL, a dropped session, or the
 * parent's word in `running`). Any thread. */
bool tg__wk_run_cancelled(const wrun *r);
/* Hand a finished task back to the loop. */
void tg__wk_pool_done(tg__worker *wk, wtask *t);
/* Link t (just received, waiting for nothing but its one or two waits
 * wait_w on the objects wait_obj, whole) behind their makers, to be
 * called by the pool thread that ends the last of them (wtask.then):
 * true when linked (its waits are then on those tasks, not on the
 * objects: they are freed). Loop thread, with pool threads only. */
bool tg__wk_pool_link(tg__worker *wk, wtask *t);
/* t's input, argument j, failed with code and msg (it will not run):
 * t fails as a task whose input object failed does. */
void tg__wk_input_failed(wtask *t, uint32_t j, int code, const char *msg);
/* Release what a task owns (its outcome included) and free it. */
void tg__wk_task_free(tg__worker *wk, wtask *t);
/* Bytes of a task's block: the record, nargs argument slots, a key of kl
 * bytes and its NUL (worker/tasks.c allocates it, tg__wk_task_free frees
 * it, recycling the common sizes in wk->task_blocks). */
static inline size_t tg__wk_task_size(uint32_t nargs, size_t kl) {
  return sizeof(wtask) + (nargs ? nargs : 1) * sizeof(tg_value *) + kl + 1;
}

#endif /* TG_WORKER_WORKER_H */
