/* lib/offload/procs_internal.h: the processes backend's own parts: the
 * spawner that forks worker processes and the forwarding of their output.
 *
 * The backend itself is the out-of-process engine (offload/engine.h) whose
 * connections are local links (wire/link.h) to N forked children, each
 * serving its parent with the worker runtime (tg__worker_serve_fd), as
 * `tgraph worker` serves remote runs. offload/processes.c adds what only a local
 * worker allows: respawning a dead one, killing one whose task overran
 * its timeout, and telling how a worker ended (its exit status).
 *
 * Files:
 *   offload/processes.c      the backend table, adopting and reaping workers
 *   offload/procs_spawn.c    the spawner thread, fork and child set-up
 *   offload/procs_output.c   forwarding workers' output, each line whole
 *
 * Thread safety: see each section.
 */
#ifndef TG_PROCS_INTERNAL_H
#define TG_PROCS_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/types.h>

#include "backends/backends.h"
#include "offload/traffic.h"
#include "wire/frame.h"
#include "util/fdtrack.h"

/* Exit statuses of a worker process that could not serve (out of memory
 * setting up). */
#define TG__PWORKER_ENOMEM 71

/* ---- spawning (offload/procs_spawn.c) ----------------------------------------------- */

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
 * while the first forks happen (see offload/procs_spawn.c). */
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

/* ---- output forwarding (offload/procs_output.c) ------------------------------------ */

typedef struct tg__pout tg__pout;

int tg__pout_start(tg__pout **out, tg_error *err);
/* Forward fd (taken) to dest (1 or 2) line by line. Thread-safe. */
void tg__pout_add(tg__pout *o, int fd, int dest);
/* Forward what is still readable, close everything, join. */
void tg__pout_stop(tg__pout *o);

#endif /* TG_PROCS_INTERNAL_H */
