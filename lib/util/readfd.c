/* lib/util/readfd.c: reading a file descriptor to its end into one
 * NUL-terminated buffer (see internal.h). */
#include <errno.h>
#include <unistd.h>

#include "internal.h"

int tg__read_fd(int fd, size_t hint, char **out, size_t *len) {
  size_t cap = hint + 1, n = 0;
  char *buf = tg__malloc(cap);
  while (buf != NULL) {
    if (n + 1 >= cap) { /* bigger than the hint (a file growing meanwhile) */
      char *nb = cap <= SIZE_MAX / 2 ? tg__realloc(buf, cap * 2) : NULL;
      if (nb == NULL) break;
      buf = nb;
      cap *= 2;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) {
      int e = errno;
      tg__free(buf);
      return -e;
    }
    if (r == 0) {
      buf[n] = '\0';
      *out = buf;
      *len = n;
      return TG_OK;
    }
    n += (size_t)r;
  }
  tg__free(buf);
  return TG_ENOMEM;
}
