/* lib/remote/usersock.c: the Unix sockets keyless workers also listen on,
 * in this user's private key directory. Only this user (and root) can
 * reach or create files there, so a run that finds a live socket of its
 * user for a loopback port talks to a worker of its user without CURVE's
 * per-message encryption; otherwise it uses tcp with its user's key,
 * which is as safe and slower. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "remote/proto.h"

int tg__user_socket(const char *tcp_addr, char *out, size_t size) {
  const char *colon = strrchr(tcp_addr, ':');
  char dir[4096];
  if (!colon) return TG_EINVAL;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port <= 0 || port > 65535) return TG_EINVAL;
  if (tg__user_key_dir(dir, sizeof dir, NULL) != TG_OK) return TG_EINVAL;
  int n = snprintf(out, size, "%s/worker-%ld.sock", dir, port);
  /* a Unix socket path has room for sizeof sun_path - 1 bytes */
  if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof ((struct sockaddr_un *)0)->sun_path)
    return TG_ELIMIT;
  return TG_OK;
}

bool tg__user_socket_live(const char *path) {
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  if (strlen(path) >= sizeof a.sun_path) return false;
  strcpy(a.sun_path, path);
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  bool live = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
  close(fd);
  return live;
}
