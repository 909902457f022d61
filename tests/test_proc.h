/* tests/test_proc.h: the test's child processes, for the suites that start
 * workers and programs and watch them (tcp, remote_trust, remote_budget,
 * deadline, cache_trust, interrupt). */
#ifndef TG_TEST_PROC_H
#define TG_TEST_PROC_H

#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

/* fork(), failing the test when it cannot; the child is killed when the
 * test's process ends, so it never outlives a failed test. */
static inline pid_t tproc_fork(void) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) prctl(PR_SET_PDEATHSIG, SIGKILL);
  return pid;
}

/* Read a line from fd into buf (at most size - 1 bytes, without its
 * '\n'), waiting at most secs for each byte; what came so far when the
 * wait ends or fd does. Workers say their address this way. */
static inline void tproc_read_line(int fd, char *buf, size_t size, int secs) {
  size_t n = 0;
  struct pollfd pf = {fd, POLLIN, 0};
  while (n + 1 < size && poll(&pf, 1, secs * 1000) > 0) {
    if (read(fd, buf + n, 1) <= 0 || buf[n] == '\n') break;
    n++;
  }
  buf[n] = '\0';
}

/* Process pid's state letter (R, S, Z...) and parent, from /proc/PID/stat;
 * false when there is no such process. */
static inline bool tproc_stat(pid_t pid, char *state, pid_t *ppid) {
  char path[64], buf[512];
  snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
  FILE *f = fopen(path, "r");
  if (!f) return false;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  const char *rp = strrchr(buf, ')'); /* the name may hold anything */
  int pp;
  if (!rp || sscanf(rp + 1, " %c %d", state, &pp) != 2) return false;
  *ppid = (pid_t)pp;
  return true;
}

/* A forked worker's stop flag (tg_worker_opts.stop), raised by SIGTERM
 * once tproc_stop_on_term() was called. */
static volatile sig_atomic_t tproc_stop;

static inline void tproc_on_term(int s) {
  (void)s;
  tproc_stop = 1;
}

/* Make SIGTERM raise tproc_stop; returns the flag. */
static inline const volatile sig_atomic_t *tproc_stop_on_term(void) {
  signal(SIGTERM, tproc_on_term);
  return &tproc_stop;
}

/* A worker's on_ready (tg_worker_opts): its endpoint and a newline on the
 * pipe whose write end is *(int *)ctx, for tproc_read_line. */
static inline void tproc_say_ready(void *ctx, const char *ep) {
  dprintf(*(int *)ctx, "%s\n", ep);
}

#endif
