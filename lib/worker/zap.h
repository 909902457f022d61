/* lib/worker/zap.h: the worker's authentication handler (ZAP): accepts a
 * CURVE client only when its public key is authorized.
 *
 * Thread safety: start and stop by the worker's thread; the handler runs
 * on a thread of its own.
 */
#ifndef TG_WORKER_ZAP_H
#define TG_WORKER_ZAP_H

#include <stddef.h>
#include <stdint.h>

#include "internal.h"

typedef struct tg__zap tg__zap;

/* Bind the handler in ZeroMQ context zctx (before any CURVE server socket
 * binds) and start its thread. keys (n public keys of 32 bytes) are taken,
 * also on failure. local_uid >= 0: also accept peers without CURVE that
 * come over a Unix socket from a process of that uid (ZeroMQ reports the
 * peer's SO_PEERCRED); -1: none. verbose: a line on stderr per refusal. */
int tg__zap_start(void *zctx, uint8_t (*keys)[32], size_t n, long local_uid, int verbose,
                  tg__zap **out, tg_error *err);
/* Stop the thread (its socket is closed there) and free; z may be NULL.
 * Call before terminating the context. */
void tg__zap_stop(tg__zap *z);

#endif /* TG_WORKER_ZAP_H */
