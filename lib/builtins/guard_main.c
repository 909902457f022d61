/* lib/builtins/guard_main.c: the guard program (see guard.h): a process of
 * its own, so that starting it does not copy the task's process. The
 * library embeds it (guard_elf.c) and executes it from a memfd with
 *   tgraph-sh-guard PARENT_PID /bin/sh -c CMD sh ARG...
 * fds 0..2 the command's, 3 the control socket, its death signal armed. */
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>

#include "builtins/guard.h"

int main(int argc, char **argv) {
  if (argc < 3) return 127;
  struct rlimit rl;
  int maxfd = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 65536
                  ? (int)rl.rlim_cur : 65536;
  tg__guard_run(argv + 2, (pid_t)atol(argv[1]), maxfd);
}
