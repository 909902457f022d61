/* lib/builtins/guard.c: the guard process that leads a command's process
 * group and ends it (see guard.h).
 *
 * The guard is made with _Fork() (no fork handlers run) and the command
 * with vfork() from it; from the first fork to the command's execve only
 * async-signal-safe calls are made (no allocation, no stdio, no locks), as
 * a child of a multithreaded process requires.
 *
 * Control socket (a stream socketpair): the guard sends one message when
 * the command exits (its wait status) or cannot be forked (an errno); the
 * task's thread sends one byte to end the group. End of file on the
 * guard's side means the task's process is gone: the group is killed at
 * once, as on the death signal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builtins/guard.h"
#include "internal.h"

extern char **environ;

#define DEATH_SIG SIGUSR1 /* the guard's PR_SET_PDEATHSIG */
#define CTL_FD 3          /* the control socket's number in the guard */

enum { MSG_STATUS = 1, MSG_FORK_FAILED = 2 };

typedef struct msg {
  int32_t kind, value;
} msg;

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void send_msg(int kind, int value) {
  msg m = {kind, value};
  (void)send(CTL_FD, &m, sizeof m, MSG_NOSIGNAL);
}

/* ---- the guard (in the child: async-signal-safe calls only) ---------------------- */

static __attribute__((noreturn)) void kill_group(void) {
  kill(0, SIGKILL); /* the group, this guard included */
  _exit(1);
}

/* Put in[0..2] and ctl on fds 0..3 and close the rest. The fds are first
 * moved above 3, so none is overwritten before it is copied. */
static void arrange_fds(const int in[3], int ctl, int maxfd) {
  int hi[4] = {in[0], in[1], in[2], ctl};
  for (int i = 0; i < 4; i++) {
    hi[i] = fcntl(hi[i], F_DUPFD_CLOEXEC, 10);
    if (hi[i] < 0) _exit(127);
  }
  for (int i = 0; i < 4; i++)
    if (dup2(hi[i], i) < 0) _exit(127);
  if (close_range(4, ~0U, 0) != 0)
    for (int fd = 4; fd < maxfd; fd++) close(fd);
}

static __attribute__((noreturn)) void exec_command(char *const *argv) {
  sigset_t none;
  sigemptyset(&none);
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  sigaction(SIGPIPE, &dfl, NULL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  close(CTL_FD);
  execve(argv[0], argv, environ);
  _exit(127);
}

/* Reap what has exited; report the command's status. True when no
 * descendant is left (the command's orphans are our children too). */
static bool reap(pid_t cmd, bool *cmd_alive) {
  for (;;) {
    int st;
    pid_t p = waitpid(-1, &st, WNOHANG);
    if (p > 0 && p == cmd) {
      *cmd_alive = false;
      send_msg(MSG_STATUS, st);
    }
    if (p > 0) continue;
    if (p < 0 && errno == EINTR) continue;
    return p < 0 && errno == ECHILD;
  }
}

static __attribute__((noreturn)) void guard_main(char *const *argv, const int in[3],
                                                 int ctl, pid_t parent, int maxfd) {
  sigset_t set;
  sigemptyset(&set);
  int sigs[] = {SIGCHLD, DEATH_SIG, SIGTERM, SIGINT, SIGHUP, SIGQUIT};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaddset(&set, sigs[i]);
  sigprocmask(SIG_SETMASK, &set, NULL);
  /* SIGCHLD stays queued while blocked, also at its default action; an
   * inherited SIG_IGN would make the kernel reap the command unseen. */
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  sigaction(SIGCHLD, &dfl, NULL);
  /* Without a group of its own, kill(0, ...) would signal the task's. */
  if (setpgid(0, 0) != 0) _exit(127);
  /* Armed, then checked: a parent gone before prctl sent no signal. */
  if (prctl(PR_SET_PDEATHSIG, DEATH_SIG) != 0 || getppid() != parent) _exit(1);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  arrange_fds(in, ctl, maxfd);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) _exit(127);
  /* The guard is a copy of the task's process, possibly a big one: the
   * command borrows its memory until execve instead of copying it. The
   * child only changes its own signal state and fds (not shared). */
  pid_t cmd = vfork();
  if (cmd == 0) exec_command(argv);
  close(0), close(1), close(2); /* the task reads to the end of the outputs */
  if (cmd < 0) {
    send_msg(MSG_FORK_FAILED, errno);
    _exit(1);
  }
  bool cmd_alive = true, ending = false;
  double kill_at = 0;
  for (;;) {
    struct pollfd p[2] = {{sfd, POLLIN, 0}, {ending ? -1 : CTL_FD, POLLIN, 0}};
    int wait_ms = -1;
    if (ending) {
      double left = kill_at - mono_now();
      if (left <= 0) kill_group();
      wait_ms = (int)(left * 1000) + 1;
    }
    if (poll(p, 2, wait_ms) < 0 && errno != EINTR) kill_group();
    struct signalfd_siginfo si;
    bool end = false;
    while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {
      if (si.ssi_signo == DEATH_SIG) kill_group();
      if (si.ssi_signo != SIGCHLD) end = true; /* asked to stop by a signal */
    }
    if (p[1].revents) {
      char c;
      ssize_t n = read(CTL_FD, &c, 1);
      if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
        kill_group(); /* the task's process is gone */
      if (n == 1) end = true;
    }
    bool none_left = reap(cmd, &cmd_alive);
    if (none_left && !cmd_alive) _exit(0);
    if (end && !ending) {
      ending = true;
      kill_at = mono_now() + TG__GUARD_GRACE;
      kill(0, SIGTERM); /* reaches this guard too: read and ignored */
    }
  }
}

/* ---- the task's side --------------------------------------------------------------- */

int tg__guard_start(tg__guard *g, char *const *argv, const int in[3]) {
  int sv[2];
  g->pid = -1;
  g->ctl = -1;
  g->has_status = false;
  g->status = 0;
  g->fork_errno = 0;
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
  struct rlimit rl;
  int maxfd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536
                  ? (int)rl.rlim_cur : 65536; /* if close_range is missing */
  pid_t parent = getpid();
  pid_t pid = _Fork();
  if (pid == 0) guard_main(argv, in, sv[1], parent, maxfd);
  int e = errno;
  close(sv[1]);
  if (pid < 0) {
    close(sv[0]);
    return -e;
  }
  g->pid = pid;
  g->ctl = sv[0];
  return TG_OK;
}

int tg__guard_wait(tg__guard *g, int timeout_ms) {
  if (g->has_status) return TG_OK;
  struct pollfd p = {g->ctl, POLLIN, 0};
  int r = poll(&p, 1, timeout_ms);
  if (r == 0 || (r < 0 && errno == EINTR)) return TG_ETIMEDOUT;
  msg m;
  size_t got = 0;
  while (got < sizeof m) {
    ssize_t n = read(g->ctl, (char *)&m + got, sizeof m - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  if (got == sizeof m && m.kind == MSG_FORK_FAILED) {
    g->fork_errno = m.value > 0 ? m.value : EAGAIN;
    return TG_EWORKER;
  }
  if (got == sizeof m && m.kind == MSG_STATUS) {
    g->status = m.value;
    g->has_status = true;
    return TG_OK;
  }
  /* No word from the guard: it was killed. Its group goes too (its pid
   * cannot be reused before we reap it). */
  kill(-g->pid, SIGKILL);
  while (waitpid(g->pid, &g->status, 0) < 0 && errno == EINTR) {
  }
  g->pid = -1;
  return TG_EWORKER;
}

void tg__guard_end(tg__guard *g) {
  if (g->pid > 0) {
    char c = 'e';
    (void)send(g->ctl, &c, 1, MSG_NOSIGNAL); /* fails if it has exited */
    int st;
    while (waitpid(g->pid, &st, 0) < 0 && errno == EINTR) {
    }
    g->pid = -1;
  }
  if (g->ctl >= 0) close(g->ctl);
  g->ctl = -1;
}
