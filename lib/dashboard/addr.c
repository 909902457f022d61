/* lib/dashboard/addr.c: the dashboard's listening address: "PORT",
 * "HOST:PORT" or "[V6]:PORT" into a socket address, and telling loopback
 * addresses from the ones other machines may reach. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "dashboard/dashboard_internal.h"
#include "tgraph/dashboard.h"

/* Decimal 0..65535, digits only. */
static bool parse_port(const char *s, size_t n, in_port_t *out) {
  unsigned long v = 0;
  if (n == 0 || n > 5) return false;
  for (size_t i = 0; i < n; i++) {
    if (s[i] < '0' || s[i] > '9') return false;
    v = v * 10 + (unsigned long)(s[i] - '0');
  }
  if (v > 65535) return false;
  *out = htons((in_port_t)v);
  return true;
}

static int set_v4(tg__dash_addr *out, const char *host, in_port_t port) {
  struct sockaddr_in *in = (struct sockaddr_in *)&out->sa;
  in->sin_family = AF_INET;
  in->sin_port = port;
  out->len = sizeof *in;
  return inet_pton(AF_INET, host, &in->sin_addr) == 1 ? TG_OK : TG_EINVAL;
}

static int set_v6(tg__dash_addr *out, const char *host, in_port_t port) {
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&out->sa;
  in6->sin6_family = AF_INET6;
  in6->sin6_port = port;
  out->len = sizeof *in6;
  return inet_pton(AF_INET6, host, &in6->sin6_addr) == 1 ? TG_OK : TG_EINVAL;
}

static int bad(tg_error *err, const char *addr, const char *why) {
  return tg__error_set(err, TG_EINVAL,
                       "dashboard address '%s': %s (use PORT, HOST:PORT or [IPv6]:PORT)",
                       addr, why);
}

/* "[V6]:PORT". */
static int parse_v6(const char *addr, tg__dash_addr *out, tg_error *err) {
  const char *close = strchr(addr, ']');
  char host[INET6_ADDRSTRLEN + 1];
  in_port_t port;
  if (close == NULL || close[1] != ':') return bad(err, addr, "no ']:PORT' after the IPv6 host");
  size_t hn = (size_t)(close - addr - 1);
  if (hn == 0 || hn >= sizeof host) return bad(err, addr, "bad IPv6 host");
  memcpy(host, addr + 1, hn);
  host[hn] = '\0';
  if (!parse_port(close + 2, strlen(close + 2), &port))
    return bad(err, addr, "the port must be a number from 0 to 65535");
  if (set_v6(out, host, port) != TG_OK)
    return bad(err, addr, "not a numeric IPv6 address");
  return TG_OK;
}

int tg__dash_addr_parse(const char *addr, tg__dash_addr *out, tg_error *err) {
  memset(out, 0, sizeof *out);
  in_port_t port = 0;
  if (addr == NULL || addr[0] == '\0') return set_v4(out, "127.0.0.1", 0);
  if (addr[0] == '[') return parse_v6(addr, out, err);
  const char *colon = strrchr(addr, ':');
  if (colon == NULL) {
    if (!parse_port(addr, strlen(addr), &port))
      return bad(err, addr, "the port must be a number from 0 to 65535");
    return set_v4(out, "127.0.0.1", port);
  }
  char host[INET_ADDRSTRLEN + 16];
  size_t hn = (size_t)(colon - addr);
  if (memchr(addr, ':', hn) != NULL)
    return bad(err, addr, "an IPv6 address goes in brackets, e.g. [::1]:8080");
  if (hn == 0 || hn >= sizeof host) return bad(err, addr, "bad host");
  memcpy(host, addr, hn);
  host[hn] = '\0';
  if (!parse_port(colon + 1, strlen(colon + 1), &port))
    return bad(err, addr, "the port must be a number from 0 to 65535");
  if (strcmp(host, "localhost") == 0) return set_v4(out, "127.0.0.1", port);
  if (set_v4(out, host, port) != TG_OK)
    return bad(err, addr, "the host must be a numeric IPv4 address or localhost");
  return TG_OK;
}

bool tg__dash_addr_loopback(const struct sockaddr *sa) {
  if (sa->sa_family == AF_INET) {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    return (ntohl(in->sin_addr.s_addr) >> 24) == 127;
  }
  if (sa->sa_family != AF_INET6) return false;
  const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
  if (IN6_IS_ADDR_LOOPBACK(a)) return true;
  return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
}

void tg__dash_addr_format(const struct sockaddr *sa, char *buf, size_t size) {
  char host[INET6_ADDRSTRLEN];
  if (sa->sa_family == AF_INET6) {
    const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
    snprintf(buf, size, "[%s]:%u", host, (unsigned)ntohs(in6->sin6_port));
  } else {
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &in->sin_addr, host, sizeof host);
    snprintf(buf, size, "%s:%u", host, (unsigned)ntohs(in->sin_port));
  }
}

int tg_dashboard_addr_check(const char *addr, tg_error *err) {
  tg__dash_addr a;
  return tg__dash_addr_parse(addr, &a, err);
}
