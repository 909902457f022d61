/* lib/builtins/guard.c: starting a command under a guard process, and the
 * task's side of the control socket (see guard.h).
 *
 * The guard is normally the small program guard_main.c, embedded in the
 * library at build time and executed from a memfd: it is started with
 * vfork, so the task's process, however big, is not copied. Where a
 * memfd cannot be executed, the guard is a fork of the task's process
 * running the same code (guard_run.c), made with _Fork() (no fork
 * handlers) and making only async-signal-safe calls, as a child of a
 * multithreaded process must.
 *
 * Control socket (a stream socketpair): the guard sends one message when
 * the command exits (its wait status) or cannot be started (an errno);
 * the task's thread sends one byte to end the group. End of file on the
 * guard's side means the task's process is gone: the group is killed at
 * once, as on the death signal. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "builtins/guard.h"
#include "internal.h"

extern char **environ;

/* The guard program's ELF image (guard_elf.c, generated). */
extern const unsigned char tg__guard_elf[];
extern const size_t tg__guard_elf_size;

/* ---- the guard program in a memfd ------------------------------------------------ */

static pthread_once_t elf_once = PTHREAD_ONCE_INIT;
static int elf_fd = -1; /* executable memfd, or -1: fork the guard */

static void elf_load(void) {
#ifdef MFD_EXEC
  int fd = memfd_create("tgraph-sh-guard", MFD_CLOEXEC | MFD_EXEC);
  if (fd < 0) fd = memfd_create("tgraph-sh-guard", MFD_CLOEXEC);
#else
  int fd = memfd_create("tgraph-sh-guard", MFD_CLOEXEC);
#endif
  if (fd < 0) return;
  size_t off = 0;
  while (off < tg__guard_elf_size) {
    ssize_t n = write(fd, tg__guard_elf + off, tg__guard_elf_size - off);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(fd);
      return;
    }
    off += (size_t)n;
  }
  elf_fd = fd;
}

/* Put in[0..2] and ctl on fds 0..3 (the guard closes the others). The fds
 * are first copied above 10, so none is overwritten before it is copied;
 * *keep (the memfd) is moved up likewise. In a child: syscalls only. */
static int arrange_fds(const int in[3], int ctl, int *keep) {
  int hi[4] = {in[0], in[1], in[2], ctl};
  for (int i = 0; i < 4; i++)
    if ((hi[i] = fcntl(hi[i], F_DUPFD_CLOEXEC, 10)) < 0) return -1;
  if (keep && *keep >= 0 && (*keep = fcntl(*keep, F_DUPFD_CLOEXEC, 10)) < 0) return -1;
  for (int i = 0; i < 4; i++)
    if (dup2(hi[i], i) < 0) return -1;
  return 0;
}

/* vfork and execute the guard program; the child shares our memory until
 * execve and writes why it failed into *fail. All signals stay blocked
 * around it, so no handler of ours runs in the child. */
static pid_t spawn_program(char *const *gargv, const int in[3], int ctl) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  volatile int fail = 0;
  pid_t pid = vfork();
  if (pid == 0) {
    int fd = elf_fd;
    /* Armed before execve, which keeps it: the guard checks its parent. */
    if (prctl(PR_SET_PDEATHSIG, TG__GUARD_DEATH_SIG) != 0 || arrange_fds(in, ctl, &fd) != 0) {
      fail = errno ? errno : EBADF;
      _exit(127);
    }
    fexecve(fd, gargv, environ);
    fail = errno ? errno : ENOEXEC;
    _exit(127);
  }
  int e = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (pid > 0 && fail) { /* execve failed: reap the child */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    errno = fail;
    return -1;
  }
  errno = e;
  return pid;
}

/* _Fork a guard running tg__guard_run here. */
static pid_t fork_guard(char *const *argv, const int in[3], int ctl) {
  struct rlimit rl;
  int maxfd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536
                  ? (int)rl.rlim_cur : 65536; /* if close_range is missing */
  pid_t parent = getpid();
  /* Blocked until tg__guard_run has reset the handlers it inherits:
   * the application's must not run in the guard. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  pid_t pid = _Fork();
  if (pid == 0) {
    if (arrange_fds(in, ctl, NULL) != 0) _exit(127);
    tg__guard_run(argv, parent, maxfd);
  }
  int e = errno;
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  errno = e;
  return pid;
}

/* ---- the task's side --------------------------------------------------------------- */

int tg__guard_start(tg__guard *g, char *const *argv, const int in[3]) {
  int sv[2];
  g->pid = -1;
  g->ctl = -1;
  g->has_status = false;
  g->status = 0;
  g->fork_errno = 0;
  pthread_once(&elf_once, elf_load);
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -errno;
  pid_t pid = -1;
  size_t n = 0;
  while (argv[n]) n++;
  char **gargv = elf_fd >= 0 ? tg__malloc((n + 3) * sizeof *gargv) : NULL;
  if (gargv) {
    char parent[24];
    snprintf(parent, sizeof parent, "%d", (int)getpid());
    gargv[0] = "tgraph-sh-guard";
    gargv[1] = parent;
    memcpy(gargv + 2, argv, (n + 1) * sizeof *gargv);
    pid = spawn_program(gargv, in, sv[1]);
    tg__free(gargv);
  }
  if (pid < 0) pid = fork_guard(argv, in, sv[1]);
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
  if (r < 0) return -errno; /* a read now could block past timeout_ms */
  tg__guard_msg m;
  size_t got = 0;
  while (got < sizeof m) {
    ssize_t n = read(g->ctl, (char *)&m + got, sizeof m - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
  }
  if (got == sizeof m && m.kind == TG__GUARD_MSG_FORK_FAILED) {
    g->fork_errno = m.value > 0 ? m.value : EAGAIN;
    return TG_EWORKER;
  }
  if (got == sizeof m && m.kind == TG__GUARD_MSG_STATUS) {
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
