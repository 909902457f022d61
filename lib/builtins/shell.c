/* lib/builtins/shell.c: the sh builtin: run a command through /bin/sh -c,
 * feed it stdin, collect stdout (the result: bytes, or a str with "text":
 * true) and the tail of stderr (the error message when it fails). */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builtins/builtins_internal.h"
#include "builtins/guard.h"

extern char **environ;

#define ERR_KEEP 4096 /* bytes of stderr kept for the error message */
#define ERR_SHOW 200  /* bytes of it shown */

typedef struct buf {
  char *p;
  size_t len, cap;
} buf;

static int buf_add(buf *b, const char *s, size_t n) {
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + n + 1) cap *= 2;
    char *p = tg__realloc(b->p, cap);
    if (p == NULL) return TG_ENOMEM;
    b->p = p;
    b->cap = cap;
  }
  memcpy(b->p + b->len, s, n);
  b->len += n;
  b->p[b->len] = '\0';
  return TG_OK;
}

/* x as the shortest of %.15g/%.16g/%.17g that reads back to it, with a
 * '.' whatever the program's locale (a shell script cannot know it). */
static size_t float_text(double x, char *out, size_t size) {
  char s[64];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(s, sizeof s, "%.*g", prec, x);
    if (prec == 17 || strtod(s, NULL) == x) break;
  }
  size_t n = 0;
  for (const char *p = s; *p && n + 1 < size;) {
    unsigned char c = (unsigned char)*p;
    if (isalnum(c) || c == '-' || c == '+') { /* digits, e, inf, nan */
      out[n++] = *p++;
    } else { /* the decimal point, possibly several bytes */
      out[n++] = '.';
      while (*p && !isalnum((unsigned char)*p)) p++;
    }
  }
  out[n] = '\0';
  return n;
}

/* The argument as the string the shell sees. */
static int arg_text(const tg_value *v, buf *b) {
  char num[64];
  size_t len;
  const char *s;
  switch (tg_value_type(v)) {
    case TG_STR: s = tg_str_data(v, &len); break;
    case TG_BYTES: s = tg_bytes_data(v, &len); break;
    case TG_INT:
      len = (size_t)snprintf(num, sizeof num, "%lld",
                             (long long)tg_value_int(v));
      s = num;
      break;
    case TG_FLOAT:
      len = float_text(tg_value_float(v), num, sizeof num);
      s = num;
      break;
    default: {
      char *json;
      int rc = tg_value_to_json(v, 0, &json, &len, NULL);
      if (rc != TG_OK) return rc;
      rc = buf_add(b, json, len);
      free(json);
      return rc;
    }
  }
  if (memchr(s, '\0', len) != NULL) return TG_EINVAL;
  return buf_add(b, s, len);
}

typedef struct sh_job {
  const tg_value *cmd;
  tg_value *const *args;
  size_t nargs;
  const char *in;
  size_t inlen;
  bool text; /* stdout is returned as a str (it must be valid UTF-8) */
} sh_job;

/* Split the two calling forms into a job. */
static int parse_job(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                     sh_job *job) {
  memset(job, 0, sizeof *job);
  if (nargs == 0)
    return tg_task_fail(ctx, TG_EINVAL, "sh: needs a command");
  if (tg_value_type(args[0]) == TG_STR) {
    job->cmd = args[0];
    job->args = args + 1;
    job->nargs = nargs - 1;
    return TG_OK;
  }
  if (tg_value_type(args[0]) != TG_MAP || nargs != 1)
    return tg__bi_type_error(ctx, "sh", 0, "a str or a map", args[0]);
  const tg_value *m = args[0], *a = tg_map_get_c(m, "args"),
                 *in = tg_map_get_c(m, "stdin"), *text = tg_map_get_c(m, "text");
  job->cmd = tg_map_get_c(m, "cmd");
  if (job->cmd == NULL || tg_value_type(job->cmd) != TG_STR)
    return tg_task_fail(ctx, TG_EINVAL, "sh: \"cmd\" must be a str");
  if (a != NULL && tg_value_type(a) != TG_LIST)
    return tg_task_fail(ctx, TG_EINVAL, "sh: \"args\" must be a list");
  if (a != NULL) {
    job->args = tg_list_items(a);
    job->nargs = tg_list_len(a);
  }
  if (in != NULL && tg_value_type(in) == TG_STR)
    job->in = tg_str_data(in, &job->inlen);
  else if (in != NULL && tg_value_type(in) == TG_BYTES)
    job->in = tg_bytes_data(in, &job->inlen);
  else if (in != NULL)
    return tg_task_fail(ctx, TG_EINVAL, "sh: \"stdin\" must be str or bytes");
  if (text != NULL && tg_value_type(text) != TG_BOOL)
    return tg_task_fail(ctx, TG_EINVAL, "sh: \"text\" must be true or false");
  job->text = text != NULL && tg_value_bool(text);
  return TG_OK;
}

/* argv for /bin/sh -c CMD sh ARG...: pointers into one buffer. */
static int build_argv(const sh_job *job, buf *text, char ***argv) {
  size_t n = job->nargs + 4;
  size_t *offs = tg__calloc(n, sizeof *offs);
  *argv = tg__calloc(n + 1, sizeof **argv);
  int rc = offs && *argv ? TG_OK : TG_ENOMEM;
  for (size_t i = 0; rc == TG_OK && i < job->nargs + 1; i++) {
    offs[i + 3] = text->len;
    rc = arg_text(i == 0 ? job->cmd : job->args[i - 1], text);
    if (rc == TG_OK) rc = buf_add(text, "", 1); /* keep the NUL */
  }
  if (rc == TG_OK) {
    (*argv)[0] = "/bin/sh";
    (*argv)[1] = "-c";
    (*argv)[2] = text->p + offs[3];
    (*argv)[3] = "sh";
    for (size_t i = 1; i <= job->nargs; i++)
      (*argv)[3 + i] = text->p + offs[3 + i];
  }
  tg__free(offs);
  return rc;
}

/* Keep only the last ERR_KEEP bytes of stderr. */
static int keep_tail(buf *err, const char *s, size_t n) {
  int rc = buf_add(err, s, n);
  if (rc == TG_OK && err->len > 2 * ERR_KEEP) {
    memmove(err->p, err->p + err->len - ERR_KEEP, ERR_KEEP + 1);
    err->len = ERR_KEEP;
  }
  return rc;
}

/* Pump stdin/stdout/stderr until both outputs close. fds: our ends. */
static int pump(tg_task_ctx *ctx, const sh_job *job, int in, int outfd,
                int errfd, buf *out, buf *err) {
  size_t sent = 0;
  if (job->inlen == 0) {
    close(in);
    in = -1;
  }
  char chunk[65536];
  int rc = TG_OK;
  while (outfd >= 0 || errfd >= 0) {
    struct pollfd p[3] = {{outfd, POLLIN, 0}, {errfd, POLLIN, 0},
                          {in, POLLOUT, 0}};
    int r = poll(p, 3, 50);
    if (tg_task_cancelled(ctx)) { /* tg__guard_end ends the command */
      rc = TG_ECANCELED;
      break;
    }
    if (r < 0 && errno != EINTR) {
      rc = -errno;
      break;
    }
    for (int i = 0; r > 0 && i < 2; i++) {
      if (p[i].revents == 0) continue;
      ssize_t n = read(p[i].fd, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        close(p[i].fd);
        *(i == 0 ? &outfd : &errfd) = -1;
      } else if ((i == 0 ? buf_add(out, chunk, (size_t)n)
                         : keep_tail(err, chunk, (size_t)n)) != TG_OK) {
        rc = TG_ENOMEM;
      }
    }
    if (rc != TG_OK) break;
    if (in >= 0 && p[2].revents != 0) {
      ssize_t n = -1;
      int e = EPIPE; /* POLLERR or POLLHUP alone: the reader is gone */
      if (p[2].revents & POLLOUT) {
        n = write(in, job->in + sent, job->inlen - sent);
        e = errno;
      }
      if (n > 0) sent += (size_t)n;
      if (n < 0 && (e == EINTR || e == EAGAIN)) continue;
      /* The command may stop reading early (EPIPE): that is its right. */
      if (n < 0 || sent == job->inlen) {
        close(in);
        in = -1;
      }
    }
  }
  if (in >= 0) close(in);
  if (outfd >= 0) close(outfd);
  if (errfd >= 0) close(errfd);
  return rc;
}

/* The last ERR_SHOW bytes of stderr on one line, from a line start when
 * possible, into msg. */
static void tail_line(const buf *err, char *msg, size_t size) {
  size_t len = err->len;
  while (len > 0 && (err->p[len - 1] == '\n' || err->p[len - 1] == ' '))
    len--;
  size_t start = len > ERR_SHOW ? len - ERR_SHOW : 0;
  if (start > 0) {
    const char *nl = memchr(err->p + start, '\n', len - start);
    if (nl != NULL && nl + 1 < err->p + len) start = (size_t)(nl + 1 - err->p);
    /* Do not begin inside a UTF-8 sequence. */
    while (start < len && ((unsigned char)err->p[start] & 0xC0) == 0x80)
      start++;
  }
  size_t k = 0;
  for (size_t i = start; i < len && k + 4 < size; i++) {
    if (err->p[i] == '\n') {
      memcpy(msg + k, " | ", 3);
      k += 3;
    } else {
      msg[k++] = err->p[i] == '\t' ? ' ' : err->p[i];
    }
  }
  msg[k] = '\0';
}

/* Wait for the command to exit after its outputs closed (it may run on
 * without them: "exec >log 2>&1; ..."), still heeding cancellation. */
static int await_exit(tg_task_ctx *ctx, tg__guard *gd) {
  for (;;) {
    int rc = tg__guard_wait(gd, 50);
    if (rc != TG_ETIMEDOUT) return rc;
    if (tg_task_cancelled(ctx)) return TG_ECANCELED;
  }
}

static int run_job(tg_task_ctx *ctx, const sh_job *job, char **argv, buf *out,
                   buf *err, int *status) {
  int fds[3][2] = {{-1, -1}, {-1, -1}, {-1, -1}};
  for (int i = 0; i < 3; i++)
    if (pipe2(fds[i], O_CLOEXEC) != 0) {
      int e = -errno;
      for (int j = 0; j < i; j++) close(fds[j][0]), close(fds[j][1]);
      return tg_task_fail(ctx, e, "sh: cannot make a pipe: %s", strerror(-e));
    }
  tg__guard gd;
  int child[3] = {fds[0][0], fds[1][1], fds[2][1]};
  int rc = tg__guard_start(&gd, argv, child);
  close(fds[0][0]);
  close(fds[1][1]);
  close(fds[2][1]);
  if (rc != TG_OK) {
    close(fds[0][1]), close(fds[1][0]), close(fds[2][0]);
    return tg_task_fail(ctx, rc, "sh: cannot run /bin/sh: %s", strerror(-rc));
  }
  /* Our end of stdin does not block: a blocking write of the whole input
   * would wait on a command that is itself waiting for us to drain its
   * stdout (cat with more input than a pipe holds): a deadlock. */
  int fl = fcntl(fds[0][1], F_GETFL);
  if (fl >= 0) (void)fcntl(fds[0][1], F_SETFL, fl | O_NONBLOCK);
  /* A command that closes its stdin early must not kill us with SIGPIPE:
   * block it on this thread and drop the pending one afterwards. */
  sigset_t pipe_set, old;
  sigemptyset(&pipe_set);
  sigaddset(&pipe_set, SIGPIPE);
  pthread_sigmask(SIG_BLOCK, &pipe_set, &old);
  rc = pump(ctx, job, fds[0][1], fds[1][0], fds[2][0], out, err);
  struct timespec zero = {0, 0};
  while (sigtimedwait(&pipe_set, NULL, &zero) > 0) {
  }
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc == TG_OK) rc = await_exit(ctx, &gd);
  /* Whatever happened, the command's group ends here: left-over
   * background processes as well as a cancelled command. */
  tg__guard_end(&gd);
  *status = gd.status;
  if (rc == TG_ECANCELED) return tg_task_fail(ctx, rc, "sh: cancelled");
  if (rc == TG_EWORKER && gd.fork_errno)
    return tg_task_fail(ctx, -gd.fork_errno, "sh: cannot start /bin/sh: %s",
                        strerror(gd.fork_errno));
  if (rc == TG_EWORKER)
    return tg_task_fail(ctx, TG_EIO, "sh: the process guarding the command ended "
                        "unexpectedly (wait status 0x%x)", (unsigned)gd.status);
  if (rc != TG_OK) return tg_task_fail(ctx, rc, "sh: cannot wait for the command: %s",
                                       tg_strerror(rc));
  return TG_OK;
}

/* stdout as the task's result: bytes, or with "text" a str, which fails
 * the task when stdout is not UTF-8 rather than guess an encoding. */
static int result(tg_task_ctx *ctx, const sh_job *job, const buf *so,
                  tg_value **out) {
  size_t good = job->text ? tg__utf8_valid_prefix(so->p, so->len) : so->len;
  if (good != so->len)
    return tg_task_fail(ctx, TG_EINVAL, "sh: stdout is not valid UTF-8 at byte "
                        "%zu (of %zu); without \"text\": true it is returned "
                        "as bytes", good, so->len);
  *out = job->text ? tg_str(so->p, so->len) : tg_bytes(so->p, so->len);
  if (*out == NULL) return tg_task_fail(ctx, TG_ENOMEM, "sh: out of memory");
  return TG_OK;
}

TG__BI(sh) {
  sh_job job;
  int rc = parse_job(ctx, args, nargs, &job);
  if (rc != TG_OK) return rc;
  buf text = {0}, so = {0}, se = {0};
  char **argv = NULL;
  rc = build_argv(&job, &text, &argv);
  if (rc != TG_OK) {
    rc = tg_task_fail(ctx, rc, "sh: an argument holds a NUL byte or cannot "
                      "be written as text");
  } else {
    int status = 0;
    rc = run_job(ctx, &job, argv, &so, &se, &status);
    char tail[ERR_SHOW + 64];
    tail_line(&se, tail, sizeof tail);
    if (rc == TG_OK && WIFSIGNALED(status))
      rc = tg_task_fail(ctx, TG_EIO, "sh: killed by signal %d%s%s",
                        WTERMSIG(status), tail[0] ? ": " : "", tail);
    else if (rc == TG_OK && WEXITSTATUS(status) != 0)
      rc = tg_task_fail(ctx, TG_EIO, "sh: exit status %d%s%s",
                        WEXITSTATUS(status), tail[0] ? ": " : "", tail);
  }
  if (rc == TG_OK) rc = result(ctx, &job, &so, out);
  tg__free(argv);
  tg__free(text.p);
  tg__free(so.p);
  tg__free(se.p);
  return rc;
}
