/* lib/offload/engine.h: the out-of-process engine, one dispatcher under
 * the tcp and processes backends (`ofl`: its state; ofl_conn, ofl_rec,
 * ofl_handle, ofl_run: a worker's connection, a task sent, a result kept
 * on workers, a run), shared by its files: engine.c (life-cycle, the I/O
 * thread's loop, statistics), conn.c (one connection per worker:
 * handshake, heartbeats, loss), handle.c (results kept on workers and the
 * placeholder values standing for them), dispatch.c (choosing a worker per
 * task, moving and recomputing inputs, batches, memory order), chain.c
 * (tasks sent ahead of the engine), results.c (replies), join.c (workers
 * joining and leaving), and the two backends: tcp.c, processes.c.
 *
 * The engine sits on a transport (tg__transport below): how a conn's
 * link is opened and what its workers allow beyond messages. tcp's
 * (offload/tcp.c) opens a ZeroMQ DEALER to a `tgraph worker`; the processes
 * backend's (offload/processes.c) forks a worker and talks to it over a local
 * link (wire/link.h), and can also kill, describe and respawn it. The
 * engine never asks which transport it runs: it calls the hooks and reads
 * the capability flags.
 *
 * One I/O thread does everything but `submit`: it owns the sockets (a
 * ZeroMQ socket belongs to one thread), calls tg__task_begin and
 * tg__task_end, and holds the tables below without locks. Other threads
 * only append to the inbox and to the free queue (under `mu`) and wake it
 * with an eventfd.
 *
 * Results: a small result comes back with its reply and becomes the
 * task's value. A larger one (keep_min bytes) stays on its worker: the
 * task's value is then a placeholder, an empty array tagged with the
 * handle id (an array's release callback tells us when the engine drops
 * it), or, when some dependent selects an item or key of it, a real
 * list/map made from the shape the worker reported, whose items are all
 * one shared placeholder (an ITEMS handle): a dependent's own item handle
 * is made from the graph when it is sent. Outputs, and results the cache
 * may store, always come back.
 *
 * Chains (offload/chain.c): when a task goes to worker W and every
 * dependent of it that will run can run on W too (its other inputs are
 * kept on W already, its constants are small, nothing the engine must do
 * first: no cache lookup, futures or deadline; at most max(2, W's
 * threads) of them, so that fan-outs are still spread), its result stays
 * on W whatever its size (TG__RF_KEEP) and those dependents are sent to
 * W at once, ahead of the engine, in the same stream: W's task waits for
 * the object. When the engine later makes such a task ready, its begin
 * finds its record (run->early) and attaches the engine's task to it: it
 * waits for its reply, or ends at once with the reply kept meanwhile. A
 * task whose dependents all went with it is also quiet (TG__RF_QUIET):
 * W sends no record when it is made; any reply of a task that took it
 * tells it was made (a failure reports itself, before its users'), and
 * its last user drops it on W (TG__ARG_OBJ_LAST); its value here is,
 * with one dependent, the engine's one "gone" null (tg__ofl_gone), which
 * names no handle: that dependent sent again finds it from the graph and
 * has it made again (find_handles), as a lost result; with several, a
 * placeholder of its own. So a chain runs on one
 * worker without a round trip per link, the parent hears of it once,
 * from its last link, and W holds one link's result at a time. At most
 * OFL_AHEAD records of a run go ahead of the engine (past it, the next
 * ones wait until half are reached); quiet ones hold no value here.
 * A dependent's other inputs that the engine has not begun may be pulled
 * to W with it (pull_inputs): an input with no other dependent, whose own
 * inputs are on W or pulled too, at most OFL_PULL of them and OFL_PULL_WORK
 * of their measured work. So a tree's siblings go to one worker with
 * their parent behind them (a subtree of 32 leaves goes as one unit, and
 * only its root replies), and so do a sum's quick inputs (a group of
 * 1,000 leaves of graph.json: one reply, not 1,001). When every input
 * to pull is a leaf (constant arguments only) of a pure call that the
 * dependent names once, they are folded into the dependent's record
 * (presend_folded): each still goes as a quiet record of its own, just
 * before the dependent's, but has no ofl_rec here. rs->fold_of names the
 * dependent's record, whose ofl_fold keeps their tasks (their wire ids
 * run from fold->first to the record's own), their engine tasks made
 * ready meanwhile (parked there) and the failures their own replies tell
 * (found by the ids that follow theirs: tg__ofl_fold_owner); the
 * record's reply ends them with the gone value, and a record given up
 * unfolds them (each goes its own way). A sum of 1,000 leaves costs one
 * record here instead of 1,001. Records whose
 * pre-sent reply is in end as soon as the engine makes their task ready
 * (tg__ofl_begin_done), not when the heap reaches them.
 *
 * Memory order (offload/dispatch.c, may_start): ready tasks leave the heap in
 * the plan's order (priority, submission, plan order); a task that adds a
 * result without freeing one of its inputs waits while the run's results
 * alive pass its sequential peak (as sync would run it) plus OFL_SLACK
 * per worker thread. When the run is held back while its workers
 * would idle (at most one task, or OFL_IDLE_SECS of work, queued per
 * thread: say the sum that will
 * free a group of inputs, on its round trip), its bound stretches by half
 * the sequential peak until the results alive are back under the first
 * one, so that the next group of leaves runs meanwhile: alive stays
 * within 1.5 times the sequential peak plus the slack (a tree's peak
 * being small, so is its stretch). Results alive out of process are
 * counted as the engine counts them (tg_compute_stats.peak_live): values
 * in this process and the placeholders standing for results kept on
 * workers, plus results of pre-sent tasks that came back before the
 * engine reached them; on
 * top, tasks on workers count until their reply, but quiet ones sent
 * ahead of the engine: their results die there (a pulled subtree counts
 * as its root). A quiet task the engine began counts: a reply that tells
 * it was made turns it into a value here (the gone one) until the engine
 * ends its dependent (not counting it let a tree of 65,536 leaves reach
 * 70). A
 * dependent pre-sent to a worker waits for room like a leaf, with room
 * for the inputs it pulls there directly too: they are alive on the
 * worker until it runs (a sum's 1,000 leaves; a subtree's sums pull two
 * each), counted until its reply (ofl_rec.pulled, run->pulled_alive), and
 * at most half the sequential peak of them (its reply ends them here at
 * once, each alive until it ends). A ready task whose quiet
 * pre-sent record is still out is set aside on it unbegun (parked, offload/
 * dispatch.c) and ended when the record is done: begun, each leaf of a
 * subtree pulled to a worker counted alive until its dependent ended
 * here, so a subtree out counted its leaves rather than its root, and
 * the bound let about one subtree per worker out at a time (each worker
 * idled through every round trip: 214 messages for a tree of 4,096
 * leaves, 33 now). Ended tasks' dependents whose records are done end
 * next (depth first), so a subtree's values do not pile up. A tree
 * reduction of 65,536 leaves on two one-thread workers keeps 20-25 alive
 * (threads:2 25-30).
 *
 * What a worker reports is not trusted: a shape it was not asked for, of
 * more than TG__MAX_SHAPE items or more items than bytes, or a result
 * kept that was to come back, drops that worker for good (tg__ofl_conn_ban:
 * its work goes to the others). The placeholders of a run's kept
 * results cost at most OFL_RUN_SHAPES bytes at once; a shape past that
 * has its task sent again, to come back whole (memory then follows the
 * bytes received). A result fetched to be sent on to another worker is
 * held as it came (wire/wire.h, tg__wire_hold: its header checked, not
 * decoded); a worker that cannot decode it answers REFUSED, and the one
 * that made it is dropped for good (tg__ofl_value_refused), the result
 * made again on the refusing worker.
 *
 * Faults (the policy of every out-of-process transport):
 *   - A task "may have started" once the TASKS message carrying it left
 *     for its worker (c->sent_id): the protocol has no per-task
 *     acknowledgement, and a worker may run a task it received however
 *     soon after it is lost (a heartbeat loss leaves it running). A task
 *     still in an unsent batch, staged for fetches or queued has not.
 *   - When its worker is lost, a task that may have started is sent again
 *     (up to OFL_MAX_LOSSES times) if its function is pure (tg_func_def
 *     flags TG_FUNC_PURE; map chunks follow their function, concatenations
 *     are pure); an impure one fails with TG_EWORKER: "worker ADDR was lost
 *     while running impure task 'KEY' (WHY); it was not run again because
 *     it is not pure", WHY saying the worker's fate (a remote worker's
 *     disconnection or silence; a local one's exit status or signal).
 *   - The result of an impure task kept on a worker that is lost is not
 *     computed again either: the run stops with TG_EWORKER ("task 'KEY':
 *     its result was lost with worker ADDR (WHY) and it was not run again
 *     because it is not pure").
 *   - tg_node_opts.retries are attempts after failures of the task's own
 *     (its function failed), made by the worker in place: pure tasks only,
 *     1 + retries calls at most per sending. Losses are counted apart
 *     (OFL_MAX_LOSSES): a pure task that lost its worker gets all its
 *     attempts again on the next one.
 *   - Deadlines: a sent task with a timeout is watched here
 *     (tg__ofl_expire_tasks), for every transport. When it overruns (all
 *     its attempts plus a grace for the reply) it fails with TG_ETIMEDOUT
 *     "timed out after S s"; a local worker process is then killed
 *     (offload/processes.c), its other tasks following the loss rules above; a
 *     remote worker keeps running the call (its late reply is ignored). A
 *     compute's deadline (or a failure, a cancellation) cancels its run
 *     (tg__ofl_cancel_runs): its tasks are given up at once and the workers
 *     told to cancel them; a local worker still calling one of them a
 *     grace later is killed (offload/processes.c: it would hold a task slot,
 *     perhaps its only one, forever).
 *
 * Workers joining and leaving (offload/join.c): b->conns holds pointers to
 * conns allocated one by one, so a conn never moves while workers join
 * (tg__ofl_conn_new, I/O thread); a conn is never removed: its index
 * stays valid in records (rec->conn), holder sets (offload/holders.h, no cap
 * on their size) and chain tags. A worker that left, or a joined one
 * given up, is CS_GONE. The API: tg_executor_opts.join_listen (v2) and
 * tg_remote_join_address; workers: tg_worker_opts.join, advertise and
 * drain (v3), drain_time and time_left (v4); the CLI: tgraph run
 * --scheduler=tcp --join-listen tcp://HOST:PORT (prints "joining
 * workers: ADDRESS" on stderr), tgraph worker --join ADDRESS [--advertise
 * tcp://HOST:PORT] [--drain-time SECONDS], SIGTERM or SIGUSR1 to leave.
 * Protocol 7: JOIN, JOINED, LEAVE with the time left (wire/proto.h); 8:
 * REFUSED, for a value the run sent on as it came (results.c, put_refused).
 *
 * Thread safety: as above; the statistics are atomics, but the links'
 * traffic, published each turn under traffic_mu.
 */
#ifndef TG_OFFLOAD_ENGINE_H
#define TG_OFFLOAD_ENGINE_H

#include <zmq.h>

#include "backends/backends.h"
#include "offload/holders.h"
#include "wire/buf.h"
#include "util/idmap.h"
#include "wire/link.h"
#include "wire/proto.h"
#include "wire/stream.h"
#include "wire/wire.h"
#include "sched/backend.h"
#include "sched/taskheap.h"
#include "tgraph/remote.h"
#include "util/recycle.h"

#define OFL_MAGIC INT64_C(0x7467726d74637031) /* placeholder tag */
#define OFL_MAX_LOSSES 3      /* times a task may lose its worker */
#define OFL_MAX_REBUILDS 4    /* times a result may be computed again */
#define OFL_BATCH_MAX 512     /* tasks per message */
#define OFL_MAX_PARTS 4096    /* parts of a worker's message */
#define OFL_RUN_SHAPES ((uint64_t)64 << 20) /* bytes of a run's placeholders */
#define OFL_REC_ARGS 4        /* records of up to this many arguments are recycled */
#define OFL_AHEAD 65536       /* pre-sent records of a run not yet reached by
                                 the engine (offload/chain.c) */
#define OFL_PULL 1023         /* tasks a pre-sent task may pull along to its
                                 worker: a sum of 1,000 quick leaves goes as
                                 one unit and only the sum replies (graph.json's
                                 2,000,000 tasks on tcp:2 1.22 -> 1.03-1.06 s
                                 side by side; processes:2 unchanged, its I/O
                                 thread busy sending the leaves); a tree's
                                 subtree of 32 leaves needed 63
                                 (with 16, W3 on tcp:2 took 1.55 us per task,
                                 0.76 with 63) */
#define OFL_PULL_SECS 50e-6  /* the longest measured task that may be pulled */
#define OFL_PULL_WORK 5e-3   /* the most measured work pulled along with one
                                 task: more is worth spreading over workers
                                 (63 tasks of OFL_PULL_SECS each made 3 ms;
                                 graph.json's 1,000 leaves measure about 1 ms
                                 together, 5 ms on a machine five times as
                                 slow or under a sanitizer) */
#define OFL_MSG_SECS 50e-6   /* what a message to a worker costs beyond its
                                 tasks (both ends, its wake-up) when workers
                                 share processors: choose() */
#define OFL_SLACK 16          /* results per worker thread a run may hold
                                 beyond its sequential peak (memory order) */
#define OFL_IDLE_SECS 200e-6 /* work queued per worker thread under which
                                 its workers would idle soon: about a
                                 reply's round trip (a worker replies every
                                 100 us while busy) */

typedef struct ofl ofl;
typedef struct ofl_conn ofl_conn;
typedef struct ofl_rec ofl_rec;
typedef struct ofl_handle ofl_handle;
typedef struct ofl_run ofl_run;

/* What crossed a backend's links (tg__offload_traffic): the links' own
 * counters, and the large values of its conns' streams (wire/stream.h),
 * either way, carried in shared-memory segments or streamed. */
typedef struct ofl_traffic {
  tg__link_stats link;
  uint64_t shm, streamed;
} ofl_traffic;

/* What a transport's workers allow beyond messages. */
enum {
  /* Workers are this process's children: they are forked while the I/O
   * thread waits (it holds the fork guard, util/thread.h, otherwise), a
   * lost one is replaced after a retry delay, and their tasks in flight
   * are re-sent as they were rather than re-planned. */
  TG__TR_CHILDREN = 1u << 0,
  /* Workers hold the registry as it was when they started (functions
   * registered later are missing there, not unknown). */
  TG__TR_REGISTRY_SNAPSHOT = 1u << 1,
};

/* A transport: hooks called on the I/O thread (NULL: nothing to do), but
 * `open` of the first conns (on the creating thread, before the I/O thread
 * starts) and `free` (on the destroying thread, after it ended). */
typedef struct tg__transport {
  unsigned caps; /* TG__TR_* */
  /* Start opening c's link (c->state CS_CONNECTING; the link may come
   * later, then tg__ofl_conn_hello). */
  int (*open)(ofl *b, ofl_conn *c, tg_error *err);
  /* c is lost and its link closed: what became of its worker in fate
   * ("" when nothing is known); the wire id of the task it was calling
   * when it ended (0: none) and that call's attempt in *attempt. */
  uint64_t (*lost)(ofl *b, ofl_conn *c, uint32_t *attempt, char *fate, size_t size);
  /* A task of c overran its timeout after secs: stop c's worker if it
   * can be, and say how in buf ("" when it cannot). */
  void (*kill)(ofl *b, ofl_conn *c, double secs, char *buf, size_t size);
  /* Run seq is cancelled: tell c's worker before the CANCEL message is
   * read, if there is a faster way. */
  void (*cancel)(ofl *b, ofl_conn *c, uint64_t seq);
  /* c's own events, before its messages are read (ZeroMQ: its monitor). */
  void (*poll)(ofl *b, ofl_conn *c);
  /* c's link is about to close (bye: a goodbye will be sent on it first). */
  void (*close)(ofl *b, ofl_conn *c, bool bye);
  /* Every turn of the I/O thread, before the conns are polled. */
  void (*turn)(ofl *b);
  /* The I/O thread ends, its conns closed: end the workers. */
  void (*shutdown)(ofl *b);
  /* Free what the transport keeps in b->tr_data (the I/O thread is
   * stopped; b->tr_data may be NULL after a failed creation). */
  void (*free)(ofl *b);
} tg__transport;


enum { H_OBJ = 0, H_ELEM = 1, H_CONST = 2, H_ITEMS = 3 };

/* Something a worker may hold: a kept result (OBJ), an item or entry of
 * one (ELEM), or a large constant sent once per worker (CONST). ITEMS is
 * the placeholder every item of a kept result's list/map shares (parent:
 * the OBJ); it names nothing on workers. */
struct ofl_handle {
  _Atomic uint32_t refs;   /* placeholders, records using it, children */
  _Atomic uint8_t queued;  /* on the free queue */
  uint8_t kind;
  uint64_t id;             /* also the object id on workers (OBJ, CONST) */
  ofl_handle *qnext;       /* free queue link */
  ofl_handle *parent;      /* ELEM: the object (a reference) */
  int64_t index;           /* ELEM: list index, when key is NULL */
  char *key;               /* ELEM: map key */
  int32_t lost_with;       /* OBJ: 1 + the conn it was lost with (its last
                              holder), 0 */
  ofl_holders locs;        /* OBJ, CONST: workers holding it (conn indexes) */
  uint64_t bytes;          /* its size, about */
  uint64_t shape_cost;     /* OBJ: bytes its list/map of placeholders
                              takes (counted in run->shapes) */
  ofl_run *run;            /* OBJ: the run and task that made it */
  uint32_t task;
  const tg_value *container; /* OBJ with a shape: the list/map standing for
                                it (weak; never dereferenced) */
  tg_value *local;         /* CONST: the value */
  tg__wire_held *held;     /* OBJ: a copy fetched from its holder while
                              records wait for it, kept as it came: the
                              run sends it on without decoding it */
  int fetching;            /* conn fetching it, -1 */
  int moved_from;          /* OBJ: the conn it was last fetched from, to be
                              sent on as it came (blamed when a worker
                              refuses it), -1 */
  bool rescue;             /* OBJ: fetched from a leaving worker (its only
                              holder): the copy stays in `held` */
  ofl_rec **waiters;       /* records waiting for the fetch */
  uint32_t uses_left;      /* CONST held for a task: dependents to finish */
  size_t nwait, cap_wait;
};

/* Per task of a run: an item or key of its result is selected (its shape
 * comes back); a call of it, folded into another task's record
 * (offload/chain.c), was running when its worker died: it goes alone. */
enum { RF_SELECTED = 1, RF_ALONE = 2 };

/* What the backend knows of one run of the engine. */
struct ofl_run {
  ofl_run *next;
  tg__run *r;              /* valid while tasks of it are here */
  uint64_t seq;
  uint32_t users;          /* queued tasks, records, OBJ handles */
  uint32_t live;           /* queued tasks and records of engine tasks:
                              while > 0 the engine's run (r) is alive */
  uint32_t ntasks;
  uint8_t *flags;          /* per task: RF_* */
  ofl_handle **handle_of;  /* per task: its OBJ handle (weak) */
  uint8_t *rebuilds;       /* per task: times computed again */
  tg__idmap consts;        /* constant value -> CONST handle (a ref) */
  ofl_handle **held;       /* per task: its result kept on a worker as a
                              CONST handle while dependents remain (weak:
                              consts owns it) */
  uint32_t nheld;          /* tasks with one (none: a task's end need not
                              look at its inputs) */
  bool cancelled;          /* its in-flight tasks were given up */
  uint64_t shapes;         /* bytes of its kept results' placeholder
                              lists/maps alive (OFL_RUN_SHAPES) */
  /* Chains (offload/chain.c) and memory order (offload/dispatch.c): */
  ofl_rec **early;         /* per task: its pre-sent record while the
                              engine has not begun it (weak) */
  uint64_t *bound;         /* per task: where its result is kept for its
                              pre-sent dependents: socket generation << 32
                              | conn + 1; 0: nowhere */
  uint64_t *bound_id;      /* per task: that object's id there */
  uint32_t *blocked_by;    /* per task: 1 + an argument that kept it from
                              being sent ahead (offload/chain.c), 0 */
  uint32_t nearly;         /* records in early */
  uint32_t inflight;       /* records of engine tasks (early ones too) */
  uint32_t nquiet;         /* of those, sent TG__RF_QUIET: their results
                              die on their worker (memory order) */
  uint32_t nquiet_begun;   /* of those, begun by the engine: each becomes
                              a placeholder here when a dependent's reply
                              tells it was made, alive until the engine
                              ends that dependent (memory order counts
                              them) */
  int64_t seq_peak;        /* most results alive at once when its tasks
                              run one at a time in plan order (the bound
                              on run-ahead adds OFL_SLACK per worker
                              thread to it) */
  ofl_rec **silent;        /* per task: its record sent TG__RF_QUIET,
                              until a dependent's reply tells (weak) */
  uint32_t *stack;         /* tasks kept on a worker whose dependents are
                              to be pre-sent now */
  uint32_t nstack, cap_stack;
  bool held_back;          /* its results alive reached its bound: no
                              task adding one goes until half the slack
                              is free again */
  bool stretched;          /* held back while its workers would idle:
                              its bound is seq_peak / 2 more until alive
                              is under the first one again */
  bool held_more;          /* the same as held_back, for that bound */
  uint32_t *deferred;      /* the same, waiting for room under OFL_AHEAD */
  uint32_t ndeferred, cap_deferred;
  bool presending;         /* the stack is being worked through */
  uint32_t checked;        /* 1 + the task whose dependents chain_deps
                              (offload/chain.c) just found can all go
                              ahead: pushed last, popped next with no
                              record appended between (each append clears
                              it), they are not looked at again; 0: none */
  uint32_t pulled_alive;   /* the `pulled` of its records on workers: the
                              memory order counts them alive (a sum's
                              pulled leaves wait for it there) */
  uint32_t pulled_for;     /* 1 + the task whose input is being pre-sent
                              by pull_inputs (its dependent, checked
                              already); 0: none */
  ofl_rec **fold_of;       /* per task: the pre-sent record its result went
                              to, folded (offload/chain.c: it has none of
                              its own); a mark of chain.c's once that
                              record is gone with its reply; NULL: not
                              folded (weak) */
};

/* The inputs folded into a pre-sent record (offload/chain.c): leaves of
 * its task (constant arguments only, pure, quick, no other dependent)
 * pulled along with it, each sent as a record of its own, quiet, but
 * kept here without one: their wire ids run from `first`, one after the
 * other, and the record's own id follows them. */
typedef struct ofl_fold_fail ofl_fold_fail;
typedef struct ofl_fold {
  uint64_t first;          /* the first one's wire id */
  uint32_t n;
  tg__task *parked;        /* their engine tasks made ready while the
                              record was out, set aside unbegun (linked by
                              next) */
  ofl_fold_fail *failed;   /* those whose call failed there (told by a
                              reply of their own, before the record's) */
  double sent;             /* when the first of them was put in a message */
  uint32_t tasks[];        /* n task indices, in wire id order */
} ofl_fold;

/* A task on its way to a worker: begun in the engine (t), or the
 * recomputation of a lost result (t NULL, out set). */
struct ofl_rec {
  ofl_rec *next;           /* retry queue / conn's staged list */
  tg__task *t;
  ofl_run *rs;
  uint32_t task, node;     /* task index in the plan, graph node */
  int conn;                /* assigned worker, -1 */
  uint64_t id;             /* wire id on conn, 0 while not sent */
  uint64_t store;          /* object id for a kept result */
  uint32_t nargs;
  tg_value **args;         /* engine tasks: borrowed until tg__task_end;
                              recomputations: borrowed from the graph */
  ofl_handle **hargs;      /* per argument: the handle it refers to (ref) */
  ofl_handle *out;         /* recomputation: what it makes (a ref) */
  uint32_t waits;          /* fetches it waits for */
  uint64_t kind_key;       /* its function and node kind (tg__ofl_task_secs) */
  double est;              /* seconds it is expected to take on a worker */
  uint8_t losses;
  uint8_t crashes;         /* attempts that killed their (local) worker */
  uint8_t flags;           /* TG__RF_* it was last sent with */
  bool whole;              /* send it back whole: its shape was over the
                              run's budget */
  bool replan;             /* its worker or a fetch was lost meanwhile */
  bool abort;              /* its run was cancelled meanwhile */
  bool started;            /* its STARTED event was reported */
  uint32_t pulled;         /* pre-sent with this many inputs pulled along
                              (offload/chain.c): their results are alive
                              on its worker until it runs, counted in
                              rs->pulled_alive until it is off its worker */
  double sent;             /* when it was last put in a TASKS message */
  /* Pre-sent (offload/chain.c): sent before the engine made its
   * task ready; the engine's begin attaches it (args, started). */
  bool early;              /* not begun in the engine yet */
  bool orphan;             /* the engine finished its task without it (a
                              skip): its reply is dropped */
  bool done;               /* early and its reply came: kept below */
  bool quiet;              /* sent TG__RF_QUIET */
  bool lazy;               /* done quietly: its value (a placeholder for an
                              object its last use dropped) is made when the
                              engine begins it */
  tg__task *parked;        /* quiet and early: its engine task, made ready
                              while rec was out and set aside unbegun (its
                              heap use held) until rec is done (then ended
                              at once) or given up (back to the heap) */
  ofl_fold *fold;          /* early: the inputs folded into it, or NULL */
  int dcode;               /* that reply: status, value (a reference), */
  tg_value *dval;          /* message, call report */
  char *dmsg;
  tg__call_report drep;
};

enum { CS_IDLE = 0, CS_CONNECTING = 1, CS_READY = 2, CS_FAILED = 3,
       CS_GONE = 4 /* left, or a joined worker given up: never again */ };

struct ofl_conn {
  int idx;
  char addr[256];
  tg__link *link;          /* to the worker (zmq: a DEALER), NULL: none */
  void *mon;               /* a socket of the transport's events, polled
                              with the link's (ZeroMQ: the DEALER's
                              monitor's PAIR), or NULL */
  int state;
  char why[300];           /* the last problem, for messages */
  bool fatal;              /* why will not go away by waiting */
  bool joined;             /* registered through the join address: given
                              up (CS_GONE) when not ready for
                              connect_timeout */
  bool leaving;            /* it drains (LEAVE): only tasks that fit its
                              window go there (tg__ofl_leave_fits) */
  bool leave_done;         /* leaving: nothing more is to go there */
  bool leave_missed;       /* leaving and idle: a ready task was found not
                              to fit its window (let it go at the next tick) */
  double leave_by;         /* leaving: tasks sent there must be expected
                              to end by then (tg__now() clock) */
  double down_since;       /* joined: when it was last not ready */
  uint32_t rescues;        /* leaving: its kept results being fetched */
  double retry_at;         /* CS_FAILED: when to try again */
  unsigned nthreads;
  int peer_mis;            /* the worker's misalignment (wire/wire.h) */
  tg__stream stream;       /* large values streamed either way */
  bool ipc;                /* connected over the worker's Unix socket:
                              shared memory may carry large values */
  double last_rx, last_ping;
  unsigned gen;            /* socket generation (monitor endpoints) */
  tg__idmap recs;          /* wire id -> record sent */
  uint64_t next_id;
  uint64_t sent_id;        /* records of ids up to this left in a TASKS
                              message: they may have started */
  uint32_t load;           /* records sent or staged here */
  double queued;           /* the sum of their `est` */
  ofl_rec *staged;         /* records waiting for fetches, to go here */
  tg__idmap fns;           /* tg_func* -> fn id + 1 */
  const tg_func **fn_of;   /* fn id -> function */
  size_t nfns, cap_fns;
  size_t fn_last, fn_prev; /* the ids tg__ofl_conn_fn gave last and the
                            * one before (valid when below nfns: a new
                            * session empties fn_of): tasks come in runs
                            * of one function or alternate between two (a
                            * tree's leaves and sums) */
  tg__wbuf funcs;          /* definitions not yet sent */
  uint32_t nfuncs;
  tg__wbuf batch;          /* task records not yet sent */
  uint32_t nbatch;
  double batch_t;          /* the clock at its first record (their `sent`) */
  uint64_t batch_run;
  tg_value **bvals;        /* their inline arguments (references) */
  size_t nbvals, cap_bvals;
  tg__wbuf frees;          /* object ids to free */
  uint32_t nfrees;
  double offset;           /* the worker's clock minus ours, bounded from
                              above (offload/results.c); NAN: no result yet */
};

struct ofl {
  tg__backend base;
  tg_executor *ex;
  /* settings */
  char *keys_dir;
  bool keyed; /* keys given (keys_dir, or the run's in memory): any address
                 may be used, and no user socket */
  char client_pub[41], client_sec[41], server_pub[41];
  double connect_timeout, heartbeat;
  size_t keep_min;
  /* threads */
  pthread_t io;
  bool io_started, io_ran;
  const tg__transport *tr;  /* set at creation, then constant */
  void *tr_data;            /* the transport's own state */
  int wake_fd;
  pthread_mutex_t mu;      /* guards inbox, freeq, stopping */
  tg__task *in_head, *in_tail;
  ofl_handle *freeq;
  bool stopping;
  /* I/O thread only */
  void *zctx;
  void *join;              /* ROUTER where workers register, or NULL
                              (offload/join.c) */
  void *join_mon;          /* its monitor's PAIR: refused handshakes */
  unsigned join_refused;   /* refused handshakes not said yet (offload/join.c) */
  double join_refused_said; /* tg__now() when one was last said */
  char join_endpoint[256]; /* where it listens (the port filled in; set
                              before the I/O thread starts, then constant) */
  const char *join_addr;   /* during creation: the option (borrowed) */
  ofl_conn **conns;        /* each allocated apart: a ofl_conn never moves
                              while the array grows (workers joining) */
  int nconns, cap_conns;
  unsigned ncpus;          /* this machine's processors (set at creation) */
  int room_at;             /* the conn any_room() found with room last */
  double msg_secs;         /* choose()'s cost of a message not yet begun:
                              OFL_MSG_SECS while the ready workers have
                              more threads than ncpus, else 0 (set per
                              dispatch pass) */
  tg__wctx w;
  tg__task_heap heap;      /* ready tasks */
  tg__recycler rec_blocks; /* freed records of up to OFL_REC_ARGS arguments */
  tg__recycler handle_blocks; /* freed handles (I/O thread) */
  ofl_rec *retry_head, *retry_tail; /* begun tasks to send (again) */
  tg__task *done_head;     /* ready tasks whose pre-sent records are done:
                              ended without the heap, last come first */
  bool ending;             /* tg__ofl_begin_done is working through them */
  tg__idmap handles;       /* id -> handle */
  tg__idmap task_secs;     /* kind key -> seconds (tg__ofl_task_secs), bits */
  uint64_t secs_key[2], secs_bits[2]; /* the entries measured last and
                              before (key 0: none): asked of most in a run
                              of one or two kinds of task (a tree's) */
  uint64_t next_id;        /* handle / object ids */
  tg__idmap runs_by_seq;   /* run seq + 1 -> ofl_run */
  ofl_run *runs;
  ofl_run *last_run;       /* the one tg__ofl_run_get found last (its
                              tasks come in runs), or NULL */
  double no_worker_since;  /* work waiting and no worker ready, or 0 */
  zmq_msg_t *parts;        /* a message being read (OFL_MAX_PARTS) */
  struct ofl_timed {       /* sent tasks with a timeout (by id: the record
                              may be gone) */
    int conn;
    uint64_t id;
    double deadline;
  } *timed;
  size_t ntimed, cap_timed;
  /* statistics */
  _Atomic uint64_t st_tasks, st_batches, st_sent, st_recv, st_moved_n, st_moved,
      st_kept, st_lost, st_retried, st_recomputed;
  _Atomic uint64_t st_deaths;   /* workers that ended unasked (the
                                   transport counts them, if it can tell) */
  ofl_traffic traffic_closed;   /* closed links' and reset streams'
                                   counters (I/O thread) */
  pthread_mutex_t traffic_mu;   /* guards traffic */
  ofl_traffic traffic;          /* all of them, published each turn */
  _Atomic unsigned st_ready;
};

/* ---- offload/engine.c ---- */
/* A backend of this engine with table ops over transport tr, not started: its queues,
 * wake fd and I/O buffers. On error *out may be set: tg__ofl_free it. */
int tg__ofl_new(const tg__backend_cfg *cfg, const tg__backend_ops *ops, const tg__transport *tr,
                ofl **out, tg_error *err);
/* Open the conns set up in b->conns[0..nconns) and start the I/O thread. */
int tg__ofl_start(ofl *b, tg_error *err);
/* Stop the I/O thread (its conns are closed when it ends). */
void tg__ofl_stop(ofl *b);
void tg__ofl_free(ofl *b);
/* The backend's submit (any thread). */
void tg__ofl_submit(tg__backend *be, tg__task *const *tasks, size_t n);
void tg__ofl_wake(ofl *b);
/* Whether this thread is b's I/O thread. */
bool tg__ofl_on_io(const ofl *b);
/* Queue ready tasks the engine left in b->w (after begin/end). */
void tg__ofl_take_ready(ofl *b);
/* Queue ready task t (its run state counts it). */
void tg__ofl_queue_task(ofl *b, tg__task *t);
tg__task *tg__ofl_heap_pop(ofl *b);
/* Put back a task popped from the heap (its run state still counts it). */
void tg__ofl_heap_repush(ofl *b, tg__task *t);
void tg__ofl_retry_push(ofl *b, ofl_rec *rec);

/* ---- offload/conn.c ---- */
/* A new conn for addr (copied) appended to b->conns, not opened, in
 * *out; TG_ENOMEM, or TG_EINVAL when addr is too long. Conns are never
 * removed: a conn's index (rec->conn, holder sets) stays valid for the
 * backend's life. I/O thread, or before it starts. */
int tg__ofl_conn_new(ofl *b, const char *addr, ofl_conn **out, tg_error *err);
int tg__ofl_conn_open(ofl *b, ofl_conn *c, tg_error *err);
/* Say HELLO on c's new link. */
void tg__ofl_conn_hello(ofl *b, ofl_conn *c);
/* c's link is about to close, or its stream to start over: their
 * counters join the closed ones (offload/engine.c). */
void tg__ofl_link_closing(ofl *b, ofl_conn *c);
void tg__ofl_stream_closing(ofl *b, ofl_conn *c);
/* Close c's sockets (bye: say goodbye to a ready worker first). */
void tg__ofl_conn_close(ofl *b, ofl_conn *c, bool bye);
/* Free c's buffers and tables (the sockets are closed). */
void tg__ofl_conn_free(ofl_conn *c);
/* c was lost (why is kept for messages): give its work back. */
void tg__ofl_conn_lost(ofl *b, ofl_conn *c, const char *why, bool fatal);
/* c broke the protocol's promises (why says how, naming no address): it
 * is lost and never connected again by this backend; the executor's log
 * says so, naming its address. */
void tg__ofl_conn_ban(ofl *b, ofl_conn *c, const char *why);
/* Read what c and its monitor have for us. */
void tg__ofl_conn_poll(ofl *b, ofl_conn *c);
/* Pings, heartbeat deadlines, retries of failed connections. */
void tg__ofl_conn_tick(ofl *b, ofl_conn *c, double now);
/* Send a header frame (plus a value when v is set) on c; false when the
 * socket failed (c is then lost). */
bool tg__ofl_conn_send(ofl *b, ofl_conn *c, const tg__wbuf *h, const tg_value *v);
/* The same with a value held as it came from another worker. */
bool tg__ofl_conn_send_held(ofl *b, ofl_conn *c, const tg__wbuf *h, tg__wire_held *v);
/* Send what is pending on c: definitions, frees, the batch. */
void tg__ofl_conn_flush(ofl *b, ofl_conn *c);
/* Leaving c may still take tasks (its window is not over: offload/join.c). */
bool tg__ofl_leave_open(const ofl_conn *c);
/* Whether c may take one more record: one beyond its threads (long tasks
 * then wait here, free to go to whichever worker is first done), more
 * while its queue holds under ~4 ms of work per thread (what it takes to
 * hide the network's latency behind short tasks). Inline: asked of every
 * worker for every task placed. */
static inline bool tg__ofl_conn_has_room(const ofl_conn *c) {
  if (c->state != CS_READY || (c->leaving && !tg__ofl_leave_open(c))) return false;
  uint32_t n = c->nthreads ? c->nthreads : 1;
  return c->load < n + 1 || (c->queued < n * 0.004 && c->load < n + 2048);
}

/* Seconds a record of this kind (function and node kind) took on workers,
 * a moving average of what they measured; 1 ms until one has run. */
double tg__ofl_task_secs(const ofl *b, uint64_t kind_key);
/* Whether a record of this kind has been measured. */
bool tg__ofl_task_known(const ofl *b, uint64_t kind_key);
void tg__ofl_task_measured(ofl *b, uint64_t kind_key, double secs);
/* Put rec on / take it off conn c's load. */
void tg__ofl_conn_add(ofl_conn *c, ofl_rec *rec);
void tg__ofl_conn_remove(ofl_conn *c, ofl_rec *rec);
/* Make sure c knows function f; its id there. */
uint64_t tg__ofl_conn_fn(ofl *b, ofl_conn *c, const tg_func *f);

/* ---- offload/handle.c ---- */
/* A new handle (one reference) under id, or a fresh id when 0. */
ofl_handle *tg__ofl_handle_new(ofl *b, uint8_t kind, uint64_t id);
void tg__ofl_handle_ref(ofl_handle *h);
/* A reference when h is still alive (refs > 0), else false. */
bool tg__ofl_handle_ref_alive(ofl_handle *h);
/* Drop a reference from any thread; the last queues h for freeing. */
void tg__ofl_handle_unref(ofl *b, ofl_handle *h);
/* Free the handles queued (I/O thread): FREE messages to their workers. */
void tg__ofl_handles_reap(ofl *b);
/* The value standing for kept result h (taking a reference to h), with
 * its shape: n list items or n map keys (keys: n strings of keylen[i]).
 * NULL when out of memory, or (*dup set) when a key came twice. */
tg_value *tg__ofl_placeholder(ofl *b, ofl_handle *h, uint8_t shape, size_t n,
                          const char **keys, const size_t *keylen, bool *dup);
/* The value standing for a result dropped on its worker after its last
 * use there (a quiet task's with one dependent, offload/chain.c): a null
 * of its own, not tg_null(), that names no handle; a task that takes it
 * finds its producer from the graph. Immortal. */
tg_value *tg__ofl_gone(void);
/* The handle an argument value stands for (the object, for an item), or
 * NULL for a real value (tg__ofl_gone() too). */
ofl_handle *tg__ofl_handle_of_value(ofl *b, const tg_value *v);
/* The run state of r, created on first sight (NULL when out of memory). */
ofl_run *tg__ofl_run_get(ofl *b, tg__run *r);
void tg__ofl_run_unuse(ofl *b, ofl_run *rs);
/* The CONST handle for constant v of rs (interned), or NULL. */
ofl_handle *tg__ofl_run_const(ofl *b, ofl_run *rs, tg_value *v);
/* Dependents of task ti of rs that will run (not served from the cache). */
uint32_t tg__ofl_run_dependents(const ofl_run *rs, uint32_t ti);
/* The CONST handle interned for v in rs, or NULL. */
ofl_handle *tg__ofl_run_const_find(ofl_run *rs, const tg_value *v);
/* Result v of task ti of rs came back and is also kept as object id on
 * conn c: a CONST handle names it there until ti's dependents have
 * finished (tg__ofl_run_task_done). False when nothing will name it (out of
 * memory, no dependent left to run, v already named): the caller frees
 * the object. */
bool tg__ofl_run_const_held(ofl *b, ofl_run *rs, tg_value *v, uint32_t ti, uint64_t id, int c);
/* For argument a (an item or key of a node): a new ELEM handle (one
 * reference, the caller's) naming it in its producer's result held on a
 * worker, or NULL when that result is not held. */
ofl_handle *tg__ofl_run_held_item(ofl *b, ofl_run *rs, const tg__garg *a);
/* A new ELEM handle (one reference, the caller's) naming the item or key
 * argument a selects in object p, or NULL (out of memory). */
ofl_handle *tg__ofl_handle_item(ofl *b, ofl_run *rs, ofl_handle *p, const tg__garg *a);
/* Bytes the placeholders of a shape of n items (maps: keys of keybytes
 * bytes in all) take. */
uint64_t tg__ofl_shape_cost(uint8_t shape, uint64_t n, uint64_t keybytes);
/* Engine task ti of rs is done: its inputs held for it lose a user, the
 * last one frees them here and on workers. */
void tg__ofl_run_task_done(ofl *b, ofl_run *rs, uint32_t ti);

/* ---- tg__ofl_dispatch.c ---- */
/* Send ready work to workers while they have room. */
void tg__ofl_dispatch(ofl *b);
/* End the ready tasks whose pre-sent records are done (queued aside by
 * tg__ofl_queue_task, or first in the heap) at once, whatever the heap
 * holds before them: no worker is needed, and a reply that tells of a
 * pulled tree frees its leaves' placeholders before the next reply. */
void tg__ofl_begin_done(ofl *b);
/* rec (early) is done: its parked engine task, if any, goes first to be
 * ended by tg__ofl_begin_done. */
void tg__ofl_unpark(ofl *b, ofl_rec *rec);
/* Worker c refused the value of h that the run sent on as it came (why:
 * its decoder's words): the worker it came from is dropped for good, and
 * h is made again on c (for c's tasks waiting for it). */
void tg__ofl_value_refused(ofl *b, ofl_conn *c, ofl_handle *h, const char *why);
/* A fetched value for h arrived (v taken, NULL when the worker lost it). */
void tg__ofl_fetch_done(ofl *b, ofl_handle *h, tg__wire_held *v);
/* Release what rec holds (not the engine task) and free it. */
void tg__ofl_rec_free(ofl *b, ofl_rec *rec);
/* rec lost its worker or a fetch: send it again, or give up (an impure
 * task that may have started fails: see "Faults" above). */
void tg__ofl_rec_requeue(ofl *b, ofl_rec *rec, const char *why);
/* Send rec (an engine task whose reply was set aside, no longer in its
 * worker's records) again, not counted as a loss. */
void tg__ofl_rec_resend(ofl *b, ofl_rec *rec);
/* Finish rec's engine task with a failure. */
void tg__ofl_rec_fail(ofl *b, ofl_rec *rec, int code, const char *msg);
/* Give up the in-flight work of cancelled runs. */
void tg__ofl_cancel_runs(ofl *b);
/* Fail sent tasks that overran their timeout; kill their workers when
 * it can (tg__transport.kill), else their late replies are ignored. */
void tg__ofl_expire_tasks(ofl *b, double now);
/* No worker for too long: fail the waiting work with why. */
void tg__ofl_fail_waiting(ofl *b, const char *why);
bool tg__ofl_work_waiting(const ofl *b);
/* Finish the waiting work of stopped runs (when no worker can take it). */
void tg__ofl_drop_stopped(ofl *b);

/* A new record of run rs (t NULL: a recomputation) with room for nargs
 * arguments; NULL when out of memory. */
ofl_rec *tg__ofl_rec_new(ofl *b, ofl_run *rs, tg__task *t, uint32_t nargs);
/* What rec's kind of task is expected to take (tg__ofl_task_secs). */
void tg__ofl_expect(ofl *b, ofl_rec *rec, const tg__gnode *nd);
/* Put rec (on c's load) in c's next batch. */
void tg__ofl_append(ofl *b, ofl_conn *c, ofl_rec *rec);
/* Put the record of task ti of rs, to be folded into the pre-sent record
 * that follows it (offload/chain.c), in c's next batch: quiet, its result
 * kept as object `store`, its arguments constants. Its wire id, or 0 when
 * c was lost (or out of memory). */
uint64_t tg__ofl_append_folded(ofl *b, ofl_conn *c, ofl_run *rs, uint32_t ti, uint64_t store);

/* Queue ready task t, whose record is done, to be ended by
 * tg__ofl_begin_done: first, so that what an ending task made ready ends
 * next (a subtree pulled to a worker ends depth first, few of its values
 * alive at once). */
static inline void tg__ofl_done_push(ofl *b, tg__task *t) {
  t->next = b->done_head;
  b->done_head = t;
}

/* Quiet rec of rs stops being quiet (told done, re-sent, freed). */
static inline void tg__ofl_quiet_clear(ofl_run *rs, ofl_rec *rec) {
  if (!rec->quiet) return;
  rs->nquiet--;
  if (!rec->early) rs->nquiet_begun--;
  rec->quiet = false;
}

/* rec, a record of an engine task, is on no worker any more (its reply
 * came, or it was given up): the inputs pulled along with it are gone. */
static inline void tg__ofl_rec_off_worker(ofl_run *rs, ofl_rec *rec) {
  rs->inflight--;
  rs->pulled_alive -= rec->pulled;
  rec->pulled = 0;
}

/* How many more results run rs may hold alive (may be negative): its
 * sequential peak plus OFL_SLACK per worker thread, less its values and
 * placeholders here and its tasks on workers that will reply (the
 * memory order, offload/engine.h above). */
int64_t tg__ofl_run_room(const ofl *b, const ofl_run *rs);

/* ---- offload/join.c ---- */
/* Listen for workers joining on addr ("tcp://HOST:PORT", port 0 or *: a
 * free one), before the I/O thread starts: b->join, b->join_endpoint. */
int tg__ofl_join_listen(ofl *b, const char *addr, tg_error *err);
/* Answer registrations: each accepted one adds a conn, opened at once. */
void tg__ofl_join_poll(ofl *b);
void tg__ofl_join_close(ofl *b);
/* Joined conn c is not ready: give it up after connect_timeout. */
void tg__ofl_join_tick(ofl *b, ofl_conn *c, double now);
/* c said LEAVE, with `left` seconds it may go on: send it only the tasks
 * that fit in them (tg__ofl_leave_fits; none when 0); once nothing more
 * fits and its tasks are back, fetch the kept results only it holds,
 * then say BYE (no loss is counted). */
void tg__ofl_leave_start(ofl *b, ofl_conn *c, double left);
/* Whether rec may go to leaving c: expected to end within c's window
 * (choose(), offload/dispatch.c). */
bool tg__ofl_leave_fits(const ofl *b, ofl_conn *c, const ofl_rec *rec);
/* Each turn, for a leaving c: the next step above. */
void tg__ofl_leave_tick(ofl *b, ofl_conn *c);
/* A fetch that was a rescue from leaving conn `from` ended. */
void tg__ofl_leave_fetched(ofl *b, int from);

/* ---- offload/chain.c ---- */
/* The flags of engine task rec sent to c when its result is to stay there
 * for its dependents, pre-sent after it (its store id is then set); 0
 * when not. */
uint8_t tg__ofl_chain_flags(ofl *b, ofl_conn *c, ofl_rec *rec);
/* Pre-send the dependents of the tasks kept for them (after an append). */
void tg__ofl_presend_stacked(ofl *b, ofl_run *rs);
/* Pre-send what waited for room (under OFL_AHEAD, under the run's bound
 * of results alive) where there is room again. */
void tg__ofl_undefer_runs(ofl *b);
/* Whether argument j (a[j], a whole result) of pre-sent rec is the last
 * use of a quiet task's result on its worker. */
bool tg__ofl_last_use(const ofl_run *rs, const ofl_rec *rec, const tg__garg *a, uint32_t j);
/* Inputs folded into a pre-sent record (offload/chain.c): */
/* Whether folded task ti of rs may end now: its record's reply came, its
 * own call failed there, or its record is gone with its reply. */
bool tg__ofl_fold_ready(const ofl_run *rs, uint32_t ti);
/* Whether ready task ti of rs can end at once, with nothing to send: its
 * pre-sent record is done, or it was folded into one that is (or its
 * own call failed there). */
static inline bool tg__ofl_ends_at_once(const ofl_run *rs, uint32_t ti) {
  const ofl_rec *pre = rs->early[ti];
  return (pre && pre->done) || (rs->fold_of[ti] && tg__ofl_fold_ready(rs, ti));
}

/* Set ready folded task t aside on its record while that is out (ended
 * when it is done, back to the heap when it is given up); false when t
 * may end now. */
bool tg__ofl_fold_park(ofl_run *rs, tg__task *t);
/* Begin and end ready folded task t (tg__ofl_fold_ready): with the gone
 * value, or the failure of its call. */
void tg__ofl_fold_end(ofl *b, ofl_run *rs, tg__task *t);
/* rec (early, with inputs folded into it) is freed: those not ended go
 * their own way, or end with the gone value when rec's reply came. */
void tg__ofl_fold_release(ofl *b, ofl_rec *rec);
/* The record that wire id `id` of c was folded into, its task in *task;
 * NULL when none. */
ofl_rec *tg__ofl_fold_owner(ofl_conn *c, uint64_t id, uint32_t *task);
/* The call of task `task`, folded into rec, failed there (msg copied):
 * it ends with that failure. */
void tg__ofl_fold_fail(ofl *b, ofl_rec *rec, uint32_t task, int code, const char *msg,
                       const tg__call_report *rep);
/* The engine began pre-sent rec's task (args borrowed until its end). */
void tg__ofl_attach(ofl *b, ofl_run *rs, ofl_rec *rec, tg_value *const *args, size_t n);
/* The engine finished pre-sent rec's task without calling it. */
void tg__ofl_orphan(ofl *b, ofl_run *rs, ofl_rec *rec);
/* A reply of rec came (its task ran there): the quiet tasks whose
 * results it took are done. */
void tg__ofl_inputs_done(ofl *b, ofl_rec *rec);
/* The reply of pre-sent rec (early or orphan; off its conn already) came:
 * keep it for the engine's begin (v, msg copied, taken: v), or drop it. */
void tg__ofl_early_done(ofl *b, ofl_rec *rec, int code, tg_value *v, const char *msg,
                        const tg__call_report *rep, uint64_t calls, uint64_t fails);

/* ---- offload/results.c ---- */
/* Handle a message of c (parts[0] is the header). */
void tg__ofl_results_handle(ofl *b, ofl_conn *c, zmq_msg_t *parts, size_t n);

#endif /* TG_OFFLOAD_ENGINE_H */
