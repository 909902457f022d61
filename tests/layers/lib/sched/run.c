#include "sched_internal.h"
static int f(const tg_executor *ex) { return ex->ops == &tg__backend_sync; } /* breaks: names a backend */
