/* lib/util/readfd.c: reading a whole input (a file, a FIFO, a pipe) into
 * one NUL-terminated buffer, bounded in size and never blocking forever on
 * a FIFO that nobody writes to (see internal.h). */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"
#include "tgraph/readfile.h"

/* Most bytes the buffer may need for max bytes of data: one more to see
 * that there is more than max, one for the NUL. */
static size_t cap_for(size_t max) { return max < SIZE_MAX - 2 ? max + 2 : SIZE_MAX; }

/* Wait until fd has data or its writer is gone (POLLHUP).
 * first: nobody has written yet, so wait at most TG__FIFO_WAIT_MS: a FIFO
 * that no process has opened for writing reads as empty, and on Linux
 * poll() reports it ready only once a writer comes. */
static int wait_readable(int fd, bool first) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  for (;;) {
    int r = poll(&p, 1, first ? TG__FIFO_WAIT_MS : -1);
    if (r > 0) return TG_OK;
    if (r == 0) return TG_ETIMEDOUT;
    if (errno != EINTR) return -errno;
  }
}

int tg__read_fd(int fd, size_t hint, size_t max, char **out, size_t *len) {
  if (max == 0) max = SIZE_MAX - 2;
  size_t cap = hint < max ? hint + 2 : cap_for(max), n = 0;
  struct stat st;
  /* A pipe or FIFO opened with O_NONBLOCK (tg__input_open) reads as empty
   * until a writer comes: wait for one, a bounded time. */
  bool fifo = fstat(fd, &st) == 0 && S_ISFIFO(st.st_mode), waited = false;
  char *buf = tg__malloc(cap);
  while (buf != NULL) {
    if (n + 1 >= cap) { /* bigger than the hint (a pipe, a file growing) */
      size_t want = cap <= cap_for(max) / 2 ? cap * 2 : cap_for(max);
      if (want <= cap) { /* already at the bound and full: more than max */
        tg__free(buf);
        return TG_ELIMIT;
      }
      char *nb = tg__realloc(buf, want);
      if (nb == NULL) break;
      buf = nb;
      cap = want;
    }
    ssize_t r = read(fd, buf + n, cap - n - 1);
    if (r < 0 && errno == EINTR) continue;
    int rc = TG_OK;
    if (r < 0 && errno == EAGAIN) { /* a writer, no data yet: wait for it */
      waited = true;
      rc = wait_readable(fd, false);
    } else if (r == 0 && n == 0 && fifo && !waited) { /* no writer yet? */
      waited = true;
      rc = wait_readable(fd, true);
    } else if (r < 0) {
      rc = -errno;
    } else if (r == 0) {
      buf[n] = '\0';
      *out = buf;
      *len = n;
      return TG_OK;
    } else if ((n += (size_t)r) > max) {
      rc = TG_ELIMIT;
    }
    if (rc != TG_OK) {
      tg__free(buf);
      return rc;
    }
  }
  tg__free(buf);
  return TG_ENOMEM;
}

static const char *kind_of(mode_t m) {
  return S_ISDIR(m)    ? "a directory"
         : S_ISCHR(m)  ? "a character device"
         : S_ISBLK(m)  ? "a block device"
         : S_ISSOCK(m) ? "a socket"
         : S_ISFIFO(m) ? "a FIFO or pipe"
                       : "not a regular file";
}

/* "WHAT 'PATH'" or "PATH" when what is NULL: how messages name inputs. */
#define NAME_FMT "%s%s%s%s"
#define NAME_ARGS(what, path) \
  (what) ? (what) : "", (what) ? " '" : "", (path), (what) ? "'" : ""

int tg__input_open(const char *path, const char *what, size_t max,
                   unsigned flags, struct stat *st, tg_error *err) {
  /* O_NONBLOCK: opening a FIFO would otherwise block until a writer
   * comes, before anything could be checked or said. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 || fstat(fd, st) != 0) {
    int e = errno;
    if (fd >= 0) close(fd);
    return tg__error_set(err, -e, NAME_FMT ": %s", NAME_ARGS(what, path),
                         strerror(e));
  }
  mode_t m = st->st_mode;
  bool ok = S_ISREG(m) || (S_ISFIFO(m) && !(flags & TG__INPUT_REGULAR));
  if (!ok) {
    close(fd);
    return tg__error_set(err, TG_EINVAL,
                         NAME_FMT ": %s, not a regular file%s",
                         NAME_ARGS(what, path), kind_of(m),
                         flags & TG__INPUT_REGULAR ? "" : " or a pipe");
  }
  if (S_ISREG(m) && max != 0 && (uint64_t)st->st_size > (uint64_t)max) {
    close(fd);
    return tg__error_set(err, TG_ELIMIT,
                         NAME_FMT ": %lld bytes, more than the limit of %zu",
                         NAME_ARGS(what, path), (long long)st->st_size, max);
  }
  return fd;
}

int tg__input_error(int rc, const char *path, const char *what, size_t max,
                    tg_error *err) {
  if (rc == TG_ELIMIT)
    return tg__error_set(err, rc, NAME_FMT ": more than the limit of %zu bytes",
                         NAME_ARGS(what, path), max);
  if (rc == TG_ETIMEDOUT)
    return tg__error_set(err, rc,
                         NAME_FMT ": a FIFO that no process wrote to within "
                         "%d s", NAME_ARGS(what, path), TG__FIFO_WAIT_MS / 1000);
  if (rc == TG_ENOMEM)
    return tg__error_set(err, rc, NAME_FMT ": out of memory",
                         NAME_ARGS(what, path));
  return tg__error_set(err, rc, NAME_FMT ": %s", NAME_ARGS(what, path),
                       strerror(-rc));
}

int tg_read_file(const char *path, const char *what, size_t max, char **out,
                 size_t *len, tg_error *err) {
  if (path == NULL || out == NULL || len == NULL)
    return tg__error_set(err, TG_EINVAL, "tg_read_file: no path or output");
  struct stat st;
  int fd = tg__input_open(path, what, max, 0, &st, err);
  if (fd < 0) return fd;
  int rc = tg__read_fd(fd, S_ISREG(st.st_mode) ? (size_t)st.st_size : 4096,
                       max, out, len);
  close(fd);
  return rc == TG_OK ? TG_OK : tg__input_error(rc, path, what, max, err);
}
