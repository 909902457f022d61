/* lib/sched/clock.c: the monotonic clock and the CPU count the scheduler
 * uses for deadlines and default worker counts. */
#include <time.h>
#include <unistd.h>

#include "sched_internal.h"

double tg__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

unsigned tg__ncpus(void) {
  long n = sysconf(_SC_NPROCESSORS_ONLN);
  return n > 0 ? (unsigned)n : 1u;
}
