/* lib/backends/backends.h: the backends' operation tables
 * (sched/backend.h), for backends.c, which lists them for
 * tg__backend_find, and for each backend's own code.
 *
 * The scheduler never names a backend: it finds one by name and reads
 * its capabilities (tg__backend_ops.caps).
 */
#ifndef TG_BACKENDS_BACKENDS_H
#define TG_BACKENDS_BACKENDS_H

#include "sched/backend.h"

extern const tg__backend_ops tg__backend_sync;
extern const tg__backend_ops tg__backend_threads;
extern const tg__backend_ops tg__backend_processes;
extern const tg__backend_ops tg__backend_tcp;

#endif /* TG_BACKENDS_BACKENDS_H */
