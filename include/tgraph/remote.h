/* include/tgraph/remote.h: remote workers for the tcp backend: serving a
 * registry's functions to runs on other machines, the key files that
 * authenticate both ends, and the traffic figures of a tcp executor.
 *
 * A worker is a long-lived process (or a thread of any program) that
 * listens on a ZeroMQ tcp:// address. Runs connect to it (executor option
 * `connect`, or `tgraph run --scheduler=tcp --connect ...`), check that
 * it has the functions they need with the same versions, send it ready
 * tasks and get results back. Results above a size stay on the worker
 * that made them until a task elsewhere, or the caller, needs them.
 *
 * Security: connections are always CURVE-encrypted and both ends are
 * checked before any message is read. With keys (the worker/ and client/
 * directories made by tg_keys_generate) a worker accepts only clients
 * whose public key is in its authorized_clients, and a run only a worker
 * holding the workers' secret key. Without keys a worker listens on
 * loopback only (127.0.0.0/8, ::1, localhost) and uses its user's own key
 * (made on first use in $XDG_STATE_HOME/tgraph/keys, default
 * ~/.local/state/tgraph/keys, mode 0700): it serves only runs of its user,
 * and a keyless run talks only to a worker of its user, so another local
 * user can neither use the worker nor answer in its place by taking the
 * port first. A keyless worker also listens on a Unix socket in that
 * directory (worker-PORT.sock), accepting only peers of its own uid; a
 * keyless run of the user uses it when it is live (no encryption cost),
 * else tcp with the user's key. A peer sending malformed or
 * oversized messages is dropped; the worker goes on serving the others.
 *
 * Joining and leaving: any number of workers may serve one executor, and
 * they may come and go while it runs. An executor given a join address
 * (tg_executor_opts.join_listen, `tgraph run --scheduler=tcp --join-listen
 * tcp://HOST:PORT`, which prints "joining workers: ADDRESS" on stderr;
 * --connect is then optional) accepts registrations there. A worker
 * given that address (tg_worker_opts.join, `tgraph worker --join
 * ADDRESS`) listens as usual on its own address (a free port by
 * default), then registers it with the run (or its `advertise`
 * address); the run connects to it as to a worker named by --connect,
 * with the same checks, and gives it tasks at once. The registration
 * channel is CURVE-authenticated with the same keys: the worker proves
 * it holds the workers' key, the run its client key, and a refusal is
 * logged on the run's side (the run goes on) and makes tg_worker_serve
 * fail with the reason. A joined worker that the run cannot reach within
 * its connect_timeout is given up. A worker told to leave
 * (tg_worker_opts.drain, SIGUSR1 or SIGTERM to `tgraph worker`) drains:
 * it tells its runs how long it may go on (drain_time, 0 by default);
 * they send it only the tasks they expect to end within that window
 * (none when 0), wait for those it has, fetch the results kept only
 * there that are still needed, and say goodbye; then it returns TG_OK
 * (exit status 0). None of that counts as a lost worker or a failed
 * attempt.
 *
 * Life-cycle of a worker:
 *   1. build a registry with the functions to serve (and plugins)
 *   2. tg_worker_serve(): listens and serves until *opts->stop is set
 *      (or a fatal error), then drops every client's state and returns
 *
 * Thread safety: tg_worker_serve runs in the calling thread (plus its own
 *   pool); the registry must not change while it runs. Several workers
 *   may serve in one process on different addresses.
 * Fork: call tg_worker_serve in a child only if the child does not
 *   inherit a running worker or tcp executor of the parent.
 */
#ifndef TGRAPH_REMOTE_H
#define TGRAPH_REMOTE_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "tgraph/error.h"
#include "tgraph/executor.h"
#include "tgraph/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Version of the worker protocol this library speaks. Both ends must
 * speak the same one (the handshake says which each has). */
#define TG_REMOTE_PROTOCOL 8 /* 5: functions carry their code id; 6: quiet
                               tasks, last uses of objects; 7: workers
                               join (JOIN) and leave (LEAVE); 8: a PUT's
                               value that does not decode is REFUSED,
                               generated task keys go as node ids, ints
                               in the records, one clock base per
                               RESULTS */

/* Default address of a worker, and its default port. */
#define TG_WORKER_DEFAULT_LISTEN "tcp://127.0.0.1:7070"

#define TG_WORKER_OPTS_V1 1
#define TG_WORKER_OPTS_V2 2 /* adds max_pending */
#define TG_WORKER_OPTS_V3 3 /* adds join, advertise, drain */
#define TG_WORKER_OPTS_V4 4 /* adds drain_time, time_left */
typedef struct tg_worker_opts {
  uint32_t version;        /* TG_WORKER_OPTS_V1 to TG_WORKER_OPTS_V4 */
  const char *listen;      /* "tcp://HOST:PORT"; NULL: the default above.
                              PORT "*" or 0 picks a free port (see
                              on_ready). HOST other than loopback needs
                              keys_dir. */
  unsigned nthreads;       /* threads running tasks; 0: one per CPU */
  const char *keys_dir;    /* NULL: this user's own key (see above); else
                              the worker/ directory of tg_keys_generate:
                              worker.key, authorized_clients. A client/
                              or old-layout directory is refused. */
  size_t max_message;      /* largest message part accepted, in bytes,
                              and most bytes of large values a client may
                              have streamed in and not yet used (more
                              drops the client); 0: parts up to 2 GiB - 1,
                              streamed values as memory allows */
  double session_timeout;  /* seconds of silence after which a client's
                              state (its results, its running tasks) is
                              dropped; 0: 20 */
  const volatile sig_atomic_t *stop; /* serve until *stop != 0 (looked at
                              every 50 ms); NULL: until an error. Set it
                              from a signal handler, or from another
                              thread with an atomic store:
                              __atomic_store_n(&flag, 1, __ATOMIC_RELAXED) */
  /* Called once, before serving, with the address actually bound (the
   * port filled in); may be NULL. */
  void (*on_ready)(void *ctx, const char *endpoint);
  void *ctx;
  int verbose;             /* 1: a line on stderr per client and refusal */
  /* ---- version 2 (version 1 callers get the default below) ---- */
  uint64_t max_pending;    /* most bytes of large values the worker
                              holds for all clients together, from their
                              first chunk until their last use (arriving,
                              arguments of queued or running tasks,
                              stored); a value past it is refused (its
                              client dropped, told why) before any of it
                              is buffered. 0: 8 x max_message, at least
                              64 MiB and at most a quarter of the
                              machine's memory (but not under
                              max_message); without max_message a
                              quarter of the memory */
  /* ---- version 3 ---- */
  const char *join;        /* a run's join address (tg_executor_opts.
                              join_listen): register there once listening
                              (fails after 60 s without an answer, or at
                              once when refused). NULL: wait to be
                              connected to */
  const char *advertise;   /* the address the run is to connect to; NULL:
                              the one bound (a wildcard host replaced by
                              this machine's name) */
  const volatile sig_atomic_t *drain; /* when *drain != 0 (looked at every
                              50 ms; set it as *stop): leave: take no new
                              task (but, from version 4, those clients
                              expect to end within drain_time), finish
                              those running, let clients
                              fetch what they need, and return TG_OK once
                              every client said goodbye or was dropped.
                              NULL: none */
  /* ---- version 4 (older callers get 0: a drained worker takes nothing
   * new) ---- */
  double drain_time;       /* seconds a drained worker may go on from the
                              moment it sees *drain: its runs keep sending
                              it the tasks they expect to end by then
                              (with a margin, lib/offload/join.c),
                              then fetch what they need and say goodbye.
                              0: no new task at all */
  /* Called once, on the serving thread, when the drain begins (may be
   * NULL; only with drain_time > 0): the seconds the worker's host gives
   * it (a batch job's time left, say), or < 0 when unknown. The window
   * is the smaller of it and drain_time. Given ctx. It should not block
   * for long: the worker answers no message meanwhile, and a run gives up
   * a worker silent for its heartbeat (10 s by default). */
  double (*time_left)(void *ctx);
} tg_worker_opts;

/* Serve reg's functions to runs that connect, until *opts->stop is set.
 * reg is borrowed. Returns TG_OK after a stop; TG_EINVAL for bad options
 * (a non-loopback address without keys: the message says so), TG_EACCES /
 * -errno for key files that cannot be read, TG_EIO when the address
 * cannot be bound; err says which and why. */
int tg_worker_serve(tg_registry *reg, const tg_worker_opts *opts,
                    tg_error *err);

/* The address where workers join tcp executor ex (join_listen, the port
 * filled in) into buf. TG_ENOENT when ex listens for none, TG_ELIMIT when
 * size is too small, TG_EINVAL when ex is not a tcp executor. */
int tg_remote_join_address(tg_executor *ex, char *buf, size_t size);

/* Write a new set of keys (Z85 text) into dir (created if missing), in
 * two directories of mode 0700:
 *   worker/worker.key          the workers' secret key (workers only)
 *   worker/authorized_clients  client public keys a worker accepts, one
 *                              per line ('#' comments); client.pub first
 *   client/client.key          the runs' secret key
 *   client/client.pub          its public key
 *   client/worker.pub          the workers' public key
 * Secret keys are written with mode 0600. Existing files are not
 * overwritten (TG_EEXIST). Workers take dir/worker, runs dir/client: a
 * host given only client/ cannot pose as a worker. */
int tg_keys_generate(const char *dir, tg_error *err);

/* Traffic and recovery figures of a tcp or processes executor (one
 * engine: its workers are remote or forked), since it was created. */
typedef struct tg_remote_stats {
  uint64_t tasks_sent;       /* task messages sent (recomputations too) */
  uint64_t batches_sent;     /* messages carrying them */
  uint64_t bytes_sent;       /* value bytes sent to workers over their
                                connections (arguments, transfers). A
                                large array or bytes value a worker on
                                this host maps from shared memory
                                counts only the small descriptor sent
                                for it, not its size */
  uint64_t bytes_received;   /* value bytes received (results, fetches),
                                counted the same way */
  uint64_t values_moved;     /* results kept on the worker that made them
                                and sent on to another one (through this
                                process; never to a worker that has them).
                                Outputs come back to this process and are
                                counted in bytes_sent if a task elsewhere
                                needs them */
  uint64_t bytes_moved;      /* their bytes */
  uint64_t results_kept;     /* results left on the worker that made them */
  uint64_t workers_lost;     /* workers lost (died, hung, disconnected) */
  uint64_t tasks_retried;    /* in-flight tasks sent again after a loss */
  uint64_t tasks_recomputed; /* lost results computed again */
  unsigned workers_ready;    /* workers connected now */
} tg_remote_stats;

/* Fill *out for ex. TG_EINVAL when ex is not a tcp or processes executor. */
int tg_remote_stats_get(tg_executor *ex, tg_remote_stats *out /* OUT */);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_REMOTE_H */
