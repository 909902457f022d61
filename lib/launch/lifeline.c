/* lib/launch/lifeline.c: the driver's lifeline (launch.h). A plain tcp
 * connection that carries no data: its end is the message. Nothing read
 * from it is trusted because nothing is read; a stranger connecting to
 * the driver's port changes nothing. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <time.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../internal.h"
#include "launch.h"

/* Accept forever; the connections are closed by the process's end. */
static void *acceptor(void *arg) {
  int fd = (int)(intptr_t)arg;
  for (;;) {
    int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
    if (c < 0 && errno != EINTR && errno != ECONNABORTED) {
      struct timespec ms = {0, 10000000}; /* e.g. EMFILE: try again later */
      nanosleep(&ms, NULL);
    }
  }
  return NULL;
}

int tg__lifeline_listen(unsigned *port, tg_error *err) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_ANY)};
  socklen_t len = sizeof a;
  if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, SOMAXCONN) != 0 ||
      getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    return tg__error_set(err, -e, "cannot listen for the ranks: %s", strerror(e));
  }
  pthread_t t;
  pthread_attr_t at;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  int rc = pthread_create(&t, &at, acceptor, (void *)(intptr_t)fd);
  pthread_attr_destroy(&at);
  if (rc != 0) {
    close(fd);
    return tg__error_set(err, -rc, "cannot start a thread: %s", strerror(rc));
  }
  *port = ntohs(a.sin_port);
  return TG_OK;
}

typedef struct watch {
  int fd;
  volatile sig_atomic_t *stop;
} watch;

static void *watcher(void *arg) {
  watch w = *(watch *)arg;
  tg__free(arg);
  char b;
  for (;;) {
    struct pollfd p = {.fd = w.fd, .events = POLLIN};
    if (poll(&p, 1, -1) < 0 && errno == EINTR) continue;
    ssize_t n = recv(w.fd, &b, 1, 0);
    if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) break;
  }
  close(w.fd);
  __atomic_store_n(w.stop, 1, __ATOMIC_RELAXED);
  return NULL;
}

int tg__lifeline_watch(const char *host, unsigned port, volatile sig_atomic_t *stop, tg_error *err) {
  char ps[16];
  snprintf(ps, sizeof ps, "%u", port);
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res;
  int rc = getaddrinfo(host, ps, &hints, &res);
  if (rc != 0)
    return tg__error_set(err, TG_EINVAL, "cannot find the driver's host '%s': %s", host,
                         gai_strerror(rc));
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || connect(fd, res->ai_addr, res->ai_addrlen) != 0) {
    int e = errno;
    freeaddrinfo(res);
    if (fd >= 0) close(fd);
    return tg__error_set(err, -e, "cannot reach the driver at %s:%u: %s", host, port,
                         strerror(e));
  }
  freeaddrinfo(res);
  int on = 1; /* a driver's host that vanishes ends the connection too */
  setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on);
  watch *w = tg__malloc(sizeof *w);
  pthread_t t;
  pthread_attr_t at;
  if (w == NULL) {
    close(fd);
    return tg__error_set(err, TG_ENOMEM, "out of memory");
  }
  w->fd = fd;
  w->stop = stop;
  pthread_attr_init(&at);
  pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
  rc = pthread_create(&t, &at, watcher, w);
  pthread_attr_destroy(&at);
  if (rc != 0) {
    close(fd);
    tg__free(w);
    return tg__error_set(err, -rc, "cannot start a thread: %s", strerror(rc));
  }
  return TG_OK;
}
