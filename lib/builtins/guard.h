/* lib/builtins/guard.h: running a command in its own process group under
 * a guard process, so that nothing the command starts outlives the task
 * or the process that ran it.
 *
 * The task's thread forks the guard; the guard leads a new process group
 * and forks the command into it. The guard:
 *   - dies with the forking thread's process (PR_SET_PDEATHSIG) and then
 *     kills its whole group at once (SIGKILL), also when the process was
 *     killed with SIGKILL: a killed run, worker or `tgraph worker` leaves
 *     no command behind;
 *   - adopts the command's orphaned descendants (PR_SET_CHILD_SUBREAPER),
 *     so it knows when every one of them is gone;
 *   - on tg__guard_end(): sends the group SIGTERM, waits until every
 *     descendant has exited or TG__GUARD_GRACE seconds have passed, then
 *     sends it SIGKILL.
 * A descendant that leaves the process group (setsid, setpgid) is not
 * signalled by group, only waited for until the grace period ends.
 *
 * If the forking thread exits while the command runs, the death signal
 * fires as well and the group is killed: the task that wanted the
 * command's output is gone with it.
 *
 * Thread safety: a tg__guard is used by the thread that started it (the
 *   death signal is tied to that thread).
 * Fork: the guard is a small program embedded in the library, executed
 *   from a memfd after vfork(), so starting it copies nothing of the
 *   task's process. Where a memfd cannot be executed, the guard is a fork
 *   of the task's process (copy-on-write, for as long as the command
 *   runs) that makes only async-signal-safe calls. The command is
 *   started from the guard with vfork(). */
#ifndef TG_BUILTINS_GUARD_H
#define TG_BUILTINS_GUARD_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define TG__GUARD_GRACE 2.0 /* seconds between SIGTERM and SIGKILL */

/* Between the guard and the task's thread (guard_run.c, guard.c). */
#define TG__GUARD_DEATH_SIG SIGUSR1 /* the guard's PR_SET_PDEATHSIG */
#define TG__GUARD_CTL_FD 3          /* the control socket in the guard */
enum { TG__GUARD_MSG_STATUS = 1, TG__GUARD_MSG_FORK_FAILED = 2 };
typedef struct tg__guard_msg {
  int32_t kind, value; /* a wait status, or an errno */
} tg__guard_msg;

/* The guard's body (guard_run.c), in a process whose fds 0..2 are the
 * command's and 3 the control socket, child of the task's thread in
 * process `parent`. Closes every other fd (up to maxfd if close_range is
 * missing), starts argv (argv[0] a path) and never returns. */
void tg__guard_run(char *const *argv, pid_t parent, int maxfd)
    __attribute__((noreturn));

typedef struct tg__guard {
  pid_t pid;        /* the guard: also the command's process group id */
  int ctl;          /* our end of the control socket */
  int status;       /* the command's wait status, once has_status */
  bool has_status;
  int fork_errno;   /* why the command could not be forked, or 0 */
} tg__guard;

/* Run argv (argv[0] is the program's path) with fds in[0..2] as its stdin,
 * stdout and stderr, in a new process group under a guard. The fds are
 * borrowed (the caller closes its copies afterwards); every other fd of
 * the process is closed in the command. Returns TG_OK or -errno. */
int tg__guard_start(tg__guard *g, char *const *argv, const int in[3]);

/* Wait at most timeout_ms (-1: no limit) for the command to exit: TG_OK
 * once g->status is known (it may have left descendants running),
 * TG_ETIMEDOUT (also when interrupted by a signal), or TG_EWORKER when
 * the command could not be forked (g->fork_errno) or the guard ended
 * without a word (it was killed: g->status is then its wait status, and
 * its group has been killed), or -errno when it cannot wait (poll
 * failed). */
int tg__guard_wait(tg__guard *g, int timeout_ms);

/* End the command's group and reap the guard: SIGTERM to the group, and
 * SIGKILL when something is still alive TG__GUARD_GRACE seconds later.
 * Call it exactly once after a successful start, whether the command
 * exited, ran on, or is to be cancelled. */
void tg__guard_end(tg__guard *g);

#endif /* TG_BUILTINS_GUARD_H */
