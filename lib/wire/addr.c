/* lib/wire/addr.c: checking worker addresses, and telling loopback ones
 * (which may go without keys) from the rest. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wire/proto.h"

static bool is_loopback(const char *host, size_t n) {
  char h[64];
  if (n == 0 || n >= sizeof h) return false;
  memcpy(h, host, n);
  h[n] = '\0';
  if (strcmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0 || strcmp(h, "::1") == 0)
    return true;
  struct in_addr a;
  if (inet_pton(AF_INET, h, &a) != 1) return false;
  return (ntohl(a.s_addr) >> 24) == 127; /* 127.0.0.0/8 */
}

int tg__addr_check(const char *addr, bool for_bind, bool *loopback,
                   tg_error *err) {
  *loopback = false;
  if (!addr || strncmp(addr, "tcp://", 6) != 0)
    return tg__error_set(err, TG_EINVAL, "address '%s' must look like tcp://HOST:PORT",
                         addr ? addr : "(null)");
  const char *host = addr + 6, *colon = strrchr(host, ':');
  if (!colon || colon == host)
    return tg__error_set(err, TG_EINVAL, "address '%s' has no HOST:PORT", addr);
  if (host[0] == '[' && colon[-1] != ']')
    return tg__error_set(err, TG_EINVAL, "address '%s': bad IPv6 host", addr);
  const char *port = colon + 1;
  if (!(for_bind && strcmp(port, "*") == 0)) {
    char *end;
    long p = strtol(port, &end, 10);
    if (*port == '\0' || *end != '\0' || p < 0 || p > 65535 || (!for_bind && p == 0))
      return tg__error_set(err, TG_EINVAL, "address '%s': bad port '%s'", addr, port);
  }
  *loopback = is_loopback(host, (size_t)(colon - host));
  return TG_OK;
}

bool tg__addr_ipv6(const char *addr) {
  return addr != NULL && strncmp(addr, "tcp://[", 7) == 0;
}
