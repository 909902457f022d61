/* lib/offload/procs_spawn.c: starting worker processes: the spawner
 * thread that forks them, the child's set-up, and the process-wide list
 * of internal fds a child must close.
 *
 * Workers are forked from one long-lived thread per pool because
 * PR_SET_PDEATHSIG fires when the thread that forked a child exits, not
 * the process: tied to this thread, the death signal arrives exactly when
 * the pool (or the whole parent, killed by anything) goes.
 *
 * A child, right after fork: arms SIGKILL as its death signal and
 * re-checks that the parent is still there, drops the parent's buffered
 * stdio output, closes the parent's internal fds, takes its pipes as
 * stdout/stderr and /dev/null as stdin, moves to its own process group
 * (a terminal's Ctrl-C reaches only the parent, whose death then takes
 * the workers), becomes a batch process (SCHED_BATCH: see child_main),
 * unblocks signals, and runs the worker. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "offload/procs_internal.h"
#include "util/thread.h"

#define SOCK_BUF (4 << 20) /* socket buffer bytes: room for big batches */

/* ---- exit statuses --------------------------------------------------------------- */

void tg__describe_status(int status, char *buf, size_t size) {
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    const char *d = sigdescr_np(sig);
    snprintf(buf, size, "was killed by signal %d (%s)", sig, d ? d : "unknown signal");
  } else if (WIFEXITED(status)) {
    int code = WEXITSTATUS(status);
    snprintf(buf, size, "exited with status %d%s", code,
             code == TG__PWORKER_ENOMEM ? " (it ran out of memory)" : "");
  } else {
    snprintf(buf, size, "ended with wait status 0x%x", (unsigned)status);
  }
}

/* ---- the spawner thread ------------------------------------------------------------ */

typedef struct request {
  int slot;
  uint32_t spawn;
} request;

struct tg__spawner {
  pthread_t th;
  pthread_mutex_t mu;  /* guards q, n, cap, stop */
  pthread_cond_t cv;
  request *q;
  size_t n, cap;
  bool stop;
  tg__child_fn child;
  tg__spawned_fn done;
  void *ctx;
  pid_t parent;
};

static _Noreturn void child_main(tg__spawner *s, int slot, uint32_t spawn,
                                 int sock, int out_w, int err_w) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (getppid() != s->parent) _exit(0); /* the parent died before that */
  __fpurge(stdout); /* the parent's unwritten output is not ours to write */
  __fpurge(stderr);
  tg__fd_close_tracked();
  int devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull >= 0 && devnull != 0) {
    dup2(devnull, 0);
    close(devnull);
  }
  if (dup2(out_w, 1) < 0 || dup2(err_w, 2) < 0) _exit(127);
  if (out_w > 2) close(out_w);
  if (err_w > 2) close(err_w);
  setvbuf(stdout, NULL, _IOLBF, 0); /* a line reaches the parent when done */
  setpgid(0, 0);
  /* Batch (util/thread.h), before its threads start: a message from the
   * I/O thread no longer preempts it, about 600 times a compute of
   * graph.json on processes:2 (graph.json 10% faster, W1 13%; W2 and W3
   * the same). */
  tg__thread_batch();
  sigset_t none;
  sigemptyset(&none);
  pthread_sigmask(SIG_SETMASK, &none, NULL);
  s->child(s->ctx, slot, spawn, sock);
  _exit(127);
}

static void set_bufs(int fd) {
  int n = SOCK_BUF;
  setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &n, sizeof n);
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &n, sizeof n);
}

static int pidfd_of(pid_t pid) {
#ifdef SYS_pidfd_open
  return (int)syscall(SYS_pidfd_open, pid, 0);
#else
  (void)pid;
  return -1;
#endif
}

static void spawn_one(tg__spawner *s, int slot, uint32_t spawn) {
  int sv[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
  int rc = TG_OK;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0 ||
      pipe2(out, O_CLOEXEC) != 0 || pipe2(err, O_CLOEXEC) != 0)
    rc = -errno;
  if (rc == TG_OK) {
    set_bufs(sv[0]);
    set_bufs(sv[1]);
    tg__fd_track(sv[0]);
    tg__fd_track(out[0]);
    tg__fd_track(err[0]);
    tg__fork_begin();
    pid_t pid = fork();
    if (pid == 0) child_main(s, slot, spawn, sv[1], out[1], err[1]);
    int e = errno;
    tg__fork_end();
    close(sv[1]);
    close(out[1]);
    close(err[1]);
    if (pid > 0) {
      tg__spawned sp = {pid, pidfd_of(pid), sv[0], out[0], err[0]};
      tg__fd_track(sp.pidfd);
      fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_NONBLOCK);
      s->done(s->ctx, slot, spawn, TG_OK, &sp);
      return;
    }
    rc = -e;
    tg__fd_untrack(sv[0]);
    tg__fd_untrack(out[0]);
    tg__fd_untrack(err[0]);
    sv[1] = out[1] = err[1] = -1;
  }
  int fds[] = {sv[0], sv[1], out[0], out[1], err[0], err[1]};
  for (size_t i = 0; i < 6; i++)
    if (fds[i] >= 0) close(fds[i]);
  s->done(s->ctx, slot, spawn, rc, NULL);
}

static void *spawner_main(void *arg) {
  tg__spawner *s = arg;
  sigset_t all;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, NULL);
  pthread_mutex_lock(&s->mu);
  for (;;) {
    while (s->n == 0 && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
    if (s->n == 0) break;
    request r = s->q[0];
    memmove(s->q, s->q + 1, --s->n * sizeof *s->q);
    pthread_mutex_unlock(&s->mu);
    spawn_one(s, r.slot, r.spawn);
    pthread_mutex_lock(&s->mu);
  }
  pthread_mutex_unlock(&s->mu);
  return NULL;
}

int tg__spawner_start(tg__child_fn child, tg__spawned_fn done, void *ctx,
                      unsigned nfirst, uint32_t first_spawn, tg__spawner **out,
                      tg_error *err) {
  tg__spawner *s = tg__calloc(1, sizeof *s);
  if (!s) return tg__error_set(err, TG_ENOMEM, "out of memory");
  s->cap = nfirst > 16 ? nfirst : 16;
  s->q = tg__calloc(s->cap, sizeof *s->q);
  if (!s->q) {
    tg__free(s);
    return tg__error_set(err, TG_ENOMEM, "out of memory");
  }
  for (unsigned i = 0; i < nfirst; i++) s->q[s->n++] = (request){(int)i, first_spawn + i};
  pthread_mutex_init(&s->mu, NULL);
  pthread_cond_init(&s->cv, NULL);
  s->child = child;
  s->done = done;
  s->ctx = ctx;
  s->parent = getpid();
  *out = s; /* before the first callback can run */
  int rc = tg__thread_start(&s->th, spawner_main, s);
  if (rc != 0) {
    *out = NULL;
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    tg__free(s->q);
    tg__free(s);
    return tg__error_set(err, -rc, "cannot start the spawner thread");
  }
  return TG_OK;
}

void tg__spawner_request(tg__spawner *s, int slot, uint32_t spawn) {
  pthread_mutex_lock(&s->mu);
  if (s->n == s->cap) {
    size_t c = s->cap ? s->cap * 2 : 16;
    request *q = tg__realloc(s->q, c * sizeof *q);
    if (!q) {
      pthread_mutex_unlock(&s->mu);
      s->done(s->ctx, slot, spawn, TG_ENOMEM, NULL);
      return;
    }
    s->q = q;
    s->cap = c;
  }
  s->q[s->n++] = (request){slot, spawn};
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
}

void tg__spawner_stop(tg__spawner *s) {
  if (!s) return;
  pthread_mutex_lock(&s->mu);
  s->stop = true;
  s->n = 0; /* nobody wants them any more */
  pthread_cond_signal(&s->cv);
  pthread_mutex_unlock(&s->mu);
  pthread_join(s->th, NULL);
  pthread_cond_destroy(&s->cv);
  pthread_mutex_destroy(&s->mu);
  tg__free(s->q);
  tg__free(s);
}
