/* lib/wire/usersock.c: the Unix sockets keyless workers also listen on,
 * in this user's private key directory. Only this user (and root) can
 * reach or create files there, so a run that finds a live socket of its
 * user for a loopback address and port (both in the socket's name) talks
 * to a worker of its user without CURVE's per-message encryption;
 * otherwise it uses tcp with its user's key, which is as safe and
 * slower. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "wire/proto.h"

/* HOST of "tcp://HOST:PORT" as a file name: localhost as the worker binds
 * it (127.0.0.1), brackets dropped, anything but letters, digits, '.' and
 * '-' (an IPv6 address's ':', a zone's '%') as '_'. */
static bool host_name(const char *tcp_addr, const char *colon, char *out, size_t size) {
  const char *h = strstr(tcp_addr, "://");
  h = h ? h + 3 : tcp_addr;
  size_t n = (size_t)(colon - h);
  if (n >= 2 && h[0] == '[' && h[n - 1] == ']') h++, n -= 2;
  if (n == 9 && strncmp(h, "localhost", 9) == 0) h = "127.0.0.1", n = 9;
  if (n == 0 || n >= size) return false;
  for (size_t i = 0; i < n; i++) {
    char c = h[i];
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '-';
    out[i] = keep ? c : '_';
  }
  out[n] = '\0';
  return true;
}

int tg__user_socket(const char *tcp_addr, char *out, size_t size) {
  const char *colon = strrchr(tcp_addr, ':');
  char dir[4096], host[256];
  if (!colon) return TG_EINVAL;
  char *end;
  long port = strtol(colon + 1, &end, 10);
  if (*end || port <= 0 || port > 65535) return TG_EINVAL;
  /* The host is in the name: workers of this user on the same port of
   * different loopback addresses each have their own socket. */
  if (!host_name(tcp_addr, colon, host, sizeof host)) return TG_EINVAL;
  if (tg__user_key_dir(dir, sizeof dir, NULL) != TG_OK) return TG_EINVAL;
  int n = snprintf(out, size, "%s/worker-%s-%ld.sock", dir, host, port);
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
