/* lib/sched/clock.c: the CPU count the scheduler uses for default worker
 * counts. (The monotonic clock, tg__now, is internal.h's: tasks' contexts
 * below the scheduler use it too.) */
#include <unistd.h>

#include "sched_internal.h"

unsigned tg__ncpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1u;
}
