/* lib/builtins/guard_run.c: the guard process's body (see guard.h): it
 * leads the command's process group, starts the command, reports its
 * status and ends the group. Compiled into the library (for a guard
 * forked from the task's process) and into the small guard program the
 * library executes instead (guard_main.c), so it uses nothing of the
 * library and, from a fork, only async-signal-safe calls. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "builtins/guard.h"

extern char **environ;

static double mono_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void send_msg(int kind, int value) {
  tg__guard_msg m = {kind, value};
  (void)send(TG__GUARD_CTL_FD, &m, sizeof m, MSG_NOSIGNAL);
}

static __attribute__((noreturn)) void kill_group(void) {
  kill(0, SIGKILL); /* the group, this guard included */
  _exit(1);
}

/* Every caught signal back to its default action, ignored ones kept (as
 * POSIX_SPAWN_SETSIGDEF would): a forked guard is a copy of the task's
 * process, whose handlers are the application's and must not run here
 * nor in the command's child before execve (which shares our memory).
 * Called with every signal blocked. */
static void default_handlers(void) {
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  for (int sig = 1; sig < NSIG; sig++) {
    struct sigaction old;
    if (sig == SIGKILL || sig == SIGSTOP || sigaction(sig, NULL, &old) != 0) continue;
    if ((old.sa_flags & SA_SIGINFO) || (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN))
      sigaction(sig, &dfl, NULL);
  }
}

static __attribute__((noreturn)) void exec_command(char *const *argv) {
  sigset_t none;
  sigemptyset(&none);
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  default_handlers(); /* already so in the guard; cheap, and this child
                         unblocks everything next */
  sigaction(SIGPIPE, &dfl, NULL);
  sigprocmask(SIG_SETMASK, &none, NULL);
  close(TG__GUARD_CTL_FD);
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
      send_msg(TG__GUARD_MSG_STATUS, st);
    }
    if (p > 0) continue;
    if (p < 0 && errno == EINTR) continue;
    return p < 0 && errno == ECHILD;
  }
}

void tg__guard_run(char *const *argv, pid_t parent, int maxfd) {
  /* The guard starts with every signal blocked (guard.c): no handler of
   * the task's process can run before they are reset. */
  default_handlers();
  sigset_t set;
  sigemptyset(&set);
  int sigs[] = {SIGCHLD, TG__GUARD_DEATH_SIG, SIGTERM, SIGINT, SIGHUP, SIGQUIT};
  for (size_t i = 0; i < sizeof sigs / sizeof *sigs; i++) sigaddset(&set, sigs[i]);
  sigprocmask(SIG_SETMASK, &set, NULL);
  /* SIGCHLD stays queued while blocked, also at its default action; an
   * inherited SIG_IGN would make the kernel reap the command unseen. */
  struct sigaction dfl = {.sa_handler = SIG_DFL};
  sigaction(SIGCHLD, &dfl, NULL);
  /* Without a group of its own, kill(0, ...) would signal the task's. */
  if (setpgid(0, 0) != 0) _exit(127);
  /* Armed, then checked: a parent gone before prctl sent no signal. */
  if (prctl(PR_SET_PDEATHSIG, TG__GUARD_DEATH_SIG) != 0 || getppid() != parent) _exit(1);
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  if (close_range(4, ~0U, 0) != 0) /* only the command's fds and ours */
    for (int fd = 4; fd < maxfd; fd++) close(fd);
  int sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) _exit(127);
  /* The command borrows the guard's memory until execve instead of
   * copying it (a forked guard is a copy of the task's process, possibly
   * a big one). The child only changes its own signal state and fds,
   * which it does not share. */
  pid_t cmd = vfork();
  if (cmd == 0) exec_command(argv);
  close(0), close(1), close(2); /* the task reads to the end of the outputs */
  if (cmd < 0) {
    send_msg(TG__GUARD_MSG_FORK_FAILED, errno);
    _exit(1);
  }
  bool cmd_alive = true, ending = false;
  double kill_at = 0;
  for (;;) {
    struct pollfd p[2] = {{sfd, POLLIN, 0}, {ending ? -1 : TG__GUARD_CTL_FD, POLLIN, 0}};
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
      if (si.ssi_signo == TG__GUARD_DEATH_SIG) kill_group();
      if (si.ssi_signo != SIGCHLD) end = true; /* asked to stop by a signal */
    }
    if (p[1].revents) {
      char c;
      ssize_t n = read(TG__GUARD_CTL_FD, &c, 1);
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

