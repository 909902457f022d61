/* tests/test_cli_util.h: running the tgraph program (TGRAPH_BIN) from a
 * test and the files around it, for the suites that test it end to end
 * (cli, cache_damage, badinput, interrupt, deadline, remote_trust,
 * remote_budget): a
 * fresh directory per test, writing and reading small files, and a run
 * of the program with its stdout, stderr and exit status captured. */
#ifndef TG_TEST_CLI_UTIL_H
#define TG_TEST_CLI_UTIL_H

#include <criterion/criterion.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_proc.h"

/* $TGRAPH_BIN, the program under test; fails the test when unset. */
static inline const char *tcli_bin(void) {
  const char *bin = getenv("TGRAPH_BIN");
  cr_assert_not_null(bin, "TGRAPH_BIN is not set");
  return bin;
}

/* Make a fresh directory from `templ` (ending in XXXXXX) into dir and
 * make it the cwd. */
static inline void tcli_enter_tmpdir(char *dir, size_t size, const char *templ) {
  snprintf(dir, size, "%s", templ);
  cr_assert_not_null(mkdtemp(dir));
  cr_assert_eq(chdir(dir), 0);
}

/* Leave dir (for /) and remove it with all it holds. */
static inline void tcli_leave_tmpdir(const char *dir) {
  char cmd[300];
  snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
  cr_assert_eq(chdir("/"), 0);
  cr_assert_eq(system(cmd), 0);
}

/* Write text to path (replacing it). */
static inline void tcli_write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f, "%s", path);
  fputs(text, f);
  fclose(f);
}

/* The text of file path (its first 64 KiB), in a static buffer that the
 * next call overwrites; "" when it cannot be read, unless `must` (then
 * the test fails). */
static inline const char *tcli_read_text(const char *path, bool must) {
  static char text[1 << 16];
  FILE *f = fopen(path, "r");
  if (must) cr_assert_not_null(f, "cannot open %s", path);
  size_t n = f ? fread(text, 1, sizeof text - 1, f) : 0;
  if (f) fclose(f);
  text[n] = '\0';
  return text;
}

static inline double tcli_now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* What a run of the program did. */
typedef struct tcli_result {
  int status;      /* exit status, or 128 + the signal that killed it */
  char *out, *err; /* all it wrote to stdout and stderr (malloc'd) */
  size_t outlen, errlen;
  double seconds;  /* how long it ran */
} tcli_result;

/* How to run it: all zero is stdin from /dev/null, no limits. */
typedef struct tcli_how {
  int in_fd;          /* its stdin when > 0 */
  rlim_t fsize_limit; /* its RLIMIT_FSIZE when > 0 */
  double timeout;     /* when > 0: a run not ended after so many seconds is
                       * killed and fails the test */
} tcli_how;

static inline void tcli_append(char **buf, size_t *len, const char *s, size_t n) {
  *buf = realloc(*buf, *len + n + 1);
  memcpy(*buf + *len, s, n);
  *len += n;
  (*buf)[*len] = '\0';
}

/* Run bin with the NULL-terminated arguments (args[0] is its name) and
 * wait for it, collecting its stdout and stderr. */
static inline tcli_result tcli_run(const char *bin, const tcli_how *how, char *const *args) {
  int o[2], e[2];
  cr_assert_eq(pipe(o), 0);
  cr_assert_eq(pipe(e), 0);
  double t0 = tcli_now();
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int in = how->in_fd > 0 ? how->in_fd : open("/dev/null", O_RDONLY);
    dup2(in, 0);
    dup2(o[1], 1);
    dup2(e[1], 2);
    close(o[0]), close(e[0]), close(o[1]), close(e[1]);
    struct rlimit rl = {how->fsize_limit, how->fsize_limit};
    if (how->fsize_limit > 0 && setrlimit(RLIMIT_FSIZE, &rl)) _exit(126);
    execv(bin, args);
    _exit(127);
  }
  close(o[1]);
  close(e[1]);
  tcli_result r = {0, calloc(1, 1), calloc(1, 1), 0, 0, 0};
  struct pollfd p[2] = {{o[0], POLLIN, 0}, {e[0], POLLIN, 0}};
  int open_fds = 2;
  while (open_fds > 0) {
    int left = how->timeout > 0 ? (int)((t0 + how->timeout - tcli_now()) * 1000) : -1;
    if (how->timeout > 0 && (left <= 0 || poll(p, 2, left) == 0)) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      cr_assert_fail("tgraph %s %s hung (killed after %g s); stderr: %s", args[1],
                     args[2] ? args[2] : "", how->timeout, r.err);
    }
    if (how->timeout <= 0) poll(p, 2, -1);
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || p[i].revents == 0) continue;
      char buf[4096];
      ssize_t n = read(p[i].fd, buf, sizeof buf);
      if (n <= 0) {
        close(p[i].fd);
        p[i].fd = -1;
        open_fds--;
      } else if (i == 0) {
        tcli_append(&r.out, &r.outlen, buf, (size_t)n);
      } else {
        tcli_append(&r.err, &r.errlen, buf, (size_t)n);
      }
    }
  }
  int st;
  waitpid(pid, &st, 0);
  r.seconds = tcli_now() - t0;
  r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return r;
}

static inline void tcli_result_free(tcli_result *r) {
  free(r->out);
  free(r->err);
}

/* Check r's exit status, and its stdout and stderr exactly unless NULL. */
static inline void tcli_expect(tcli_result r, int status, const char *out, const char *err) {
  cr_expect_eq(r.status, status, "status %d, stderr: %s", r.status, r.err);
  if (out) cr_expect_str_eq(r.out, out);
  if (err) cr_expect_str_eq(r.err, err);
}

/* Start bin with args (NULL-terminated, args[0] its name, then "worker"
 * and its options), its stdout on a pipe; wait up to 20 s for its
 * "listening on ADDRESS" line and put ADDRESS in ep. */
static inline pid_t tcli_worker(const char *bin, char *const *args, char *ep, size_t size) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    dup2(p[1], 1);
    close(p[0]);
    close(p[1]);
    execv(bin, args);
    _exit(127);
  }
  close(p[1]);
  char line[256];
  tproc_read_line(p[0], line, sizeof line, 20);
  close(p[0]);
  cr_assert(strncmp(line, "listening on tcp://", 19) == 0, "tgraph worker said '%s'", line);
  cr_assert_lt(strlen(line + 13), size);
  snprintf(ep, size, "%s", line + 13);
  return pid;
}

#endif
