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
  uint64_t shm_copied;        /* bytes copied into new shared segments (values
                                 the parent made and sent) */
  uint64_t shm_passed;        /* bytes of values that crossed as references
                                 to shared memory, either way */
  uint64_t fds_passed;        /* segment fds sent or received */
  uint64_t local_hits;        /* tasks sent to the worker holding their
                                 large inputs */
  uint64_t batches, tasks;    /* batches sent and the tasks in them */
  uint64_t deaths;            /* worker processes that ended unasked */
} tg__pstats;

/* Copy ex's counters to *out: TG_OK, or TG_EINVAL when ex does not run
 * the processes backend. Published by the IO thread each time it waits,
 * so they can lag the work by one wake-up. */
int tg__processes_stats(const tg_executor *ex, tg__pstats *out);

#endif /* TG_BACKENDS_PROCESSES_H */
