/* tests/stress/check.h: a tiny check harness for the stress programs, which
 * run without Criterion (its runtime aborts at start under ThreadSanitizer)
 * so that the threaded parts of the library can be checked under TSan.
 *
 * A program runs named cases with CHK_RUN(fn); inside them CHECK* macros
 * compare and, on a mismatch, print "file:line: what: expected X, got Y"
 * and count the failure. A case passes when none of its checks failed.
 * chk_finish() prints the closing line "<program>: N passed, M failed"
 * over cases and returns the process's exit status (1 on any failure).
 *
 * Header-only, static: each program gets its own counters.
 * Thread safety: the CHECK macros may be used from any thread (counters
 *   are atomic; each message is printed with one call). Cases run one
 *   after another on the main thread and join their threads before they
 *   return, so a case's checks are all counted when it ends.
 */
#ifndef TG_STRESS_CHECK_H
#define TG_STRESS_CHECK_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHK_UNUSED __attribute__((unused))
#define CHK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define CHK_MAX_REPORTS 40 /* failures printed in full; the rest counted */

typedef struct chk_state {
  atomic_long checks, failed;
  long cases_passed, cases_failed;
  int scale; /* the optional command-line multiplier, >= 1 */
} chk_state;

static chk_state chk CHK_UNUSED = {.scale = 1};

static inline double chk_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Count one check; on failure print where and why. Returns ok. */
static inline CHK_PRINTF(4, 5) bool chk_report(bool ok, const char *file,
                                               int line, const char *fmt, ...) {
  atomic_fetch_add(&chk.checks, 1);
  if (ok) return true;
  long n = atomic_fetch_add(&chk.failed, 1) + 1;
  if (n > CHK_MAX_REPORTS) return false;
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  fprintf(stderr, "%s:%d: %s\n", file, line, msg);
  return false;
}

#define CHECK(cond) chk_report(!!(cond), __FILE__, __LINE__, "failed: %s", #cond)

/* A condition with a formatted explanation. */
#define CHECK_MSG(cond, ...) chk_report(!!(cond), __FILE__, __LINE__, __VA_ARGS__)

#define CHECK_EQ_INT(actual, expected)                                        \
  do {                                                                        \
    long long chk_a_ = (long long)(actual), chk_e_ = (long long)(expected);   \
    chk_report(chk_a_ == chk_e_, __FILE__, __LINE__,                          \
               "%s: expected %lld, got %lld", #actual, chk_e_, chk_a_);       \
  } while (0)

/* The same with a context label ("graph 17, 8 workers"). */
#define CHECK_EQ_INT_AT(actual, expected, ...)                                \
  do {                                                                        \
    long long chk_a_ = (long long)(actual), chk_e_ = (long long)(expected);   \
    char chk_w_[256];                                                         \
    snprintf(chk_w_, sizeof chk_w_, __VA_ARGS__);                             \
    chk_report(chk_a_ == chk_e_, __FILE__, __LINE__,                          \
               "%s: %s: expected %lld, got %lld", chk_w_, #actual, chk_e_,    \
               chk_a_);                                                       \
  } while (0)

#define CHECK_EQ_STR(actual, expected)                                        \
  do {                                                                        \
    const char *chk_a_ = (actual), *chk_e_ = (expected);                      \
    chk_report(chk_a_ && strcmp(chk_a_, chk_e_) == 0, __FILE__, __LINE__,     \
               "%s: expected \"%s\", got \"%s\"", #actual, chk_e_,            \
               chk_a_ ? chk_a_ : "(null)");                                   \
  } while (0)

/* `actual` starts with `prefix`. */
#define CHECK_PREFIX(actual, prefix)                                          \
  do {                                                                        \
    const char *chk_a_ = (actual), *chk_e_ = (prefix);                        \
    chk_report(chk_a_ && strncmp(chk_a_, chk_e_, strlen(chk_e_)) == 0,        \
               __FILE__, __LINE__, "%s: expected a prefix \"%s\", got \"%s\"", \
               #actual, chk_e_, chk_a_ ? chk_a_ : "(null)");                  \
  } while (0)

/* Run one case: it passes when it added no failure. */
static inline void chk_run(const char *name, void (*fn)(void)) {
  long before = atomic_load(&chk.failed);
  double t0 = chk_now();
  fn();
  double dt = chk_now() - t0;
  bool ok = atomic_load(&chk.failed) == before;
  if (ok) chk.cases_passed++;
  else chk.cases_failed++;
  fprintf(stderr, "%-4s %s (%.2f s)\n", ok ? "ok" : "FAIL", name, dt);
}

#define CHK_RUN(fn) chk_run(#fn, fn)

/* Read the optional scale argument ("prog [SCALE]", SCALE >= 1). */
static inline void chk_init(int argc, char **argv) {
  setvbuf(stderr, NULL, _IOLBF, 0);
  if (argc > 1) {
    char *end;
    long s = strtol(argv[1], &end, 10);
    if (*end || s < 1 || s > 100000) {
      fprintf(stderr, "usage: %s [SCALE >= 1]\n", argv[0]);
      exit(2);
    }
    chk.scale = (int)s;
  }
}

/* Print the closing line; the process's exit status. */
static inline int chk_finish(const char *program) {
  long failed = atomic_load(&chk.failed);
  if (failed > CHK_MAX_REPORTS)
    fprintf(stderr, "(%ld more failures not shown)\n", failed - CHK_MAX_REPORTS);
  printf("%s: %ld checks, %ld failed\n", program, atomic_load(&chk.checks), failed);
  printf("%s: %ld passed, %ld failed\n", program, chk.cases_passed,
         chk.cases_failed);
  fflush(stdout);
  return chk.cases_failed || failed ? 1 : 0;
}

#endif /* TG_STRESS_CHECK_H */
