/* lib/backends/tcp_stats.h: how the tcp backend carried large values, for
 * tests and benchmarks (internal: not installed).
 *
 * Thread safety: any thread, while the executor lives.
 */
#ifndef TG_BACKENDS_TCP_STATS_H
#define TG_BACKENDS_TCP_STATS_H

#include <stdint.h>

#include "tgraph/executor.h"

/* Bytes of large values (remote/wire.h) that went to or came from
 * workers since the executor started. */
typedef struct tg__tcp_carried {
  uint64_t shm;      /* in shared-memory segments (remote/shm.h) */
  uint64_t streamed; /* streamed as BULK chunks (remote/stream.h) */
} tg__tcp_carried;

/* TG_OK, or TG_EINVAL when ex does not run the tcp backend. */
int tg__tcp_carried_get(const tg_executor *ex, tg__tcp_carried *out);

#endif /* TG_BACKENDS_TCP_STATS_H */
