/* lib/util/writefile.c: writing a whole file so that no reader ever sees
 * a part of it (tg__write_file_atomic). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

static int write_all(int fd, const char *p, size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) return -errno;
    p += w;
    n -= (size_t)w;
  }
  return TG_OK;
}

int tg__write_file_atomic(const char *path, const void *data, size_t len, unsigned flags,
                          const char **step) {
  static const char suffix[] = ".tmp.XXXXXX";
  if (step) *step = "create";
  size_t n = strlen(path);
  char *tmp = tg__malloc(n + sizeof suffix);
  if (tmp == NULL) return TG_ENOMEM;
  memcpy(tmp, path, n);
  memcpy(tmp + n, suffix, sizeof suffix); /* the template mkostemp fills in */
  int rc = TG_OK, fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0) rc = -errno;
  if (fd >= 0) {
    if (step) *step = "write";
    rc = write_all(fd, data, len);
    /* mkostemp makes 0600: give the file the mode a plain create would. */
    if (rc == TG_OK && fchmod(fd, 0644) != 0) rc = -errno;
    if (rc == TG_OK && (flags & TG__WRITE_SYNC) && fsync(fd) != 0) rc = -errno;
    if (close(fd) != 0 && rc == TG_OK) rc = -errno;
    if (rc == TG_OK && rename(tmp, path) != 0) {
      rc = -errno;
      if (step) *step = "rename into place";
    }
    if (rc != TG_OK) unlink(tmp);
  }
  tg__free(tmp);
  return rc;
}
