/* lib/backends/processes.h: what the processes backend shows of itself to
 * tests and benchmarks (internal: not installed).
 *
 * Thread safety: tg__processes_stats may be called from any thread while
 * the executor lives.
 */
#ifndef TG_BACKENDS_PROCESSES_H
#define TG_BACKENDS_PROCESSES_H

#include <stdint.h>

#include "tgraph/executor.h"

/* Counters since the executor started. */
typedef struct tg__pstats {
  uint64_t sock_out, sock_in; /* bytes written to / read from worker sockets */
  uint64_t shm_copied;        /* bytes the parent copied into shared
                                 segments to send them */
  uint64_t shm_passed;        /* bytes that crossed the parent's links as
                                 shared segments, either way */
  uint64_t fds_passed;        /* segment fds the parent sent or received */
  uint64_t values_moved;      /* results sent on from the worker that made
                                 them to another (through the parent) */
  uint64_t batches, tasks;    /* batches sent and the tasks in them */
  uint64_t deaths;            /* worker processes that ended unasked */
} tg__pstats;

/* Copy ex's counters to *out: TG_OK, or TG_EINVAL when ex does not run
 * the processes backend. The traffic is published by the I/O thread each
 * turn, so it can lag the work by one wake-up. (The engine's own figures,
 * as for tcp: tg_remote_stats_get.) */
int tg__processes_stats(const tg_executor *ex, tg__pstats *out);

#endif /* TG_BACKENDS_PROCESSES_H */
