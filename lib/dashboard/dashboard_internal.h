/* lib/dashboard/dashboard_internal.h: what the dashboard's files share:
 * the listening address, parsed from the user's text. */
#ifndef TG_DASHBOARD_INTERNAL_H
#define TG_DASHBOARD_INTERNAL_H

#include <stdbool.h>
#include <sys/socket.h>

#include "internal.h"

typedef struct tg__dash_addr {
  struct sockaddr_storage sa; /* AF_INET or AF_INET6, port included */
  socklen_t len;
} tg__dash_addr;

/* "PORT", "HOST:PORT", "[V6]:PORT", NULL or "" (127.0.0.1, port 0) into
 * *out. TG_OK, or TG_EINVAL with a message quoting addr. */
int tg__dash_addr_parse(const char *addr, tg__dash_addr *out, tg_error *err);

/* sa is 127.0.0.0/8, ::1 or an IPv4-mapped loopback address. */
bool tg__dash_addr_loopback(const struct sockaddr *sa);

/* "127.0.0.1:8080" / "[::1]:8080" into buf (numeric). */
void tg__dash_addr_format(const struct sockaddr *sa, char *buf, size_t size);

#endif
