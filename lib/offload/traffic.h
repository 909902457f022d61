/* lib/offload/traffic.h: what the out-of-process engine (tcp and
 * processes) shows of its links to tests and benchmarks (internal: not
 * installed). The engine's own figures are public: tg_remote_stats_get.
 *
 * Thread safety: tg__offload_traffic_get may be called from any thread
 * while the executor lives.
 */
#ifndef TG_OFFLOAD_TRAFFIC_H
#define TG_OFFLOAD_TRAFFIC_H

#include <stdint.h>

#include "tgraph/executor.h"

/* Counters since the executor started, over all its links. */
typedef struct tg__offload_traffic {
  uint64_t sock_out, sock_in; /* bytes written to / read from worker sockets */
  uint64_t shm_copied;        /* bytes this process copied into shared
                                 segments to send them */
  uint64_t shm_passed;        /* bytes that crossed its links as shared
                                 segments, either way */
  uint64_t fds_passed;        /* segment fds it sent or received */
  uint64_t values_moved;      /* results sent on from the worker that made
                                 them to another (through this process) */
  uint64_t batches, tasks;    /* batches sent and the tasks in them */
  uint64_t large_shm;         /* bytes of large values (wire/wire.h) a
                                 ZeroMQ link carried in shared-memory
                                 segments (wire/shm.h), either way */
  uint64_t large_streamed;    /* ... streamed as BULK chunks
                                 (wire/stream.h) */
  uint64_t deaths;            /* worker processes that ended unasked
                                 (forked workers; a remote worker's end is
                                 a loss: tg_remote_stats.workers_lost) */
} tg__offload_traffic;

/* Copy ex's counters to *out: TG_OK, or TG_EINVAL when ex does not run
 * the out-of-process engine. The traffic is published by the I/O thread
 * each turn, so it can lag the work by one wake-up. */
int tg__offload_traffic_get(const tg_executor *ex, tg__offload_traffic *out);

#endif /* TG_OFFLOAD_TRAFFIC_H */
