#include "cache/c.h"
#include "sched/sched_internal.h" /* breaks: memo -> sched */
