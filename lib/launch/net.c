/* lib/launch/net.c: the address a rank's worker listens on: one the
 * user names (an interface or an address), loopback when the driver is
 * on the same host, else the host name's address. */
#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../internal.h"
#include "launch.h"

/* The IPv4 address of interface `name`; false when there is none. */
static bool interface_address(const char *name, char *buf, size_t size) {
  struct ifaddrs *all, *i;
  bool found = false;
  if (getifaddrs(&all) != 0) return false;
  for (i = all; i != NULL && !found; i = i->ifa_next)
    if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && strcmp(i->ifa_name, name) == 0)
      found = inet_ntop(AF_INET, &((struct sockaddr_in *)(void *)i->ifa_addr)->sin_addr,
                        buf, (socklen_t)size) != NULL;
  freeifaddrs(all);
  return found;
}

/* The first IPv4 address of host, preferring one off loopback. */
static int host_address(const char *host, char *buf, size_t size, tg_error *err) {
  struct addrinfo hints = {.ai_family = AF_INET, .ai_socktype = SOCK_STREAM}, *res, *a;
  int rc = getaddrinfo(host, NULL, &hints, &res);
  if (rc != 0)
    return tg__error_set(err, TG_EINVAL, "cannot find the address of '%s': %s (name an "
                         "interface or address instead)", host, gai_strerror(rc));
  buf[0] = '\0';
  for (a = res; a != NULL; a = a->ai_next) {
    const struct in_addr *in = &((struct sockaddr_in *)(void *)a->ai_addr)->sin_addr;
    bool loop = (ntohl(in->s_addr) >> 24) == 127;
    if (buf[0] == '\0' || !loop) inet_ntop(AF_INET, in, buf, (socklen_t)size);
    if (!loop) break;
  }
  freeaddrinfo(res);
  return TG_OK;
}

int tg__launch_address(const char *want, bool same_host, char *buf, size_t size,
                       tg_error *err) {
  if (want != NULL && interface_address(want, buf, size)) return TG_OK;
  if (want != NULL) return host_address(want, buf, size, err);
  if (same_host) {
    snprintf(buf, size, "127.0.0.1");
    return TG_OK;
  }
  char host[256];
  if (gethostname(host, sizeof host) != 0)
    return tg__error_set(err, TG_EIO, "cannot read this host's name");
  host[sizeof host - 1] = '\0';
  return host_address(host, buf, size, err);
}
