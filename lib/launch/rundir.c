/* lib/launch/rundir.c: the rank exchange through files in a run
 * directory every rank sees (a shared file system), for launchers
 * without PMIx. Each fence, a rank writes all its values to
 * DIR/tgraph-JOB-RANK.FENCE (atomically: a temporary name, then rename)
 * and waits until every rank's file of that fence is there. Files are
 * mode 0600: they may hold the run's keys. A rank that leaves the
 * exchange writes DIR/tgraph-JOB-RANK.done; once all ranks' are there
 * nobody reads or waits any more, and rank 0 removes them all. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../internal.h"
#include "launch.h"

typedef struct rd {
  char dir[1024], job[128];
  unsigned rank, size, fences;
  double timeout;
  bool failed; /* a fence timed out: nobody to wait for at the end */
  char *vals;  /* "key\tvalue\n" lines put so far */
  size_t len;
} rd;

/* fence 0 names the file of a rank that left */
static void path_of(const rd *d, unsigned r, unsigned fence, char *buf, size_t size) {
  if (fence == 0)
    snprintf(buf, size, "%s/tgraph-%s-%u.done", d->dir, d->job[0] ? d->job : "run", r);
  else
    snprintf(buf, size, "%s/tgraph-%s-%u.%u", d->dir, d->job[0] ? d->job : "run", r, fence);
}

static double now(void);

/* Until rank r has written its file of `fence` (or of a later one, or
 * left); false after `until`. */
static bool wait_for(const rd *d, unsigned r, unsigned fence, double until) {
  char path[1200], next[1200], done[1200];
  path_of(d, r, fence, path, sizeof path);
  path_of(d, r, fence + 1, next, sizeof next);
  path_of(d, r, 0, done, sizeof done);
  while (access(path, F_OK) != 0 && access(next, F_OK) != 0 && access(done, F_OK) != 0) {
    if (now() > until) return false;
    struct timespec ms = {0, 5000000};
    nanosleep(&ms, NULL);
  }
  return true;
}

static int put(void *impl, const char *key, const char *val, tg_error *err) {
  rd *d = impl;
  size_t n = strlen(key) + strlen(val) + 2;
  char *v = tg__realloc(d->vals, d->len + n + 1);
  if (v == NULL) return tg__error_set(err, TG_ENOMEM, "out of memory");
  d->vals = v;
  d->len += (size_t)sprintf(v + d->len, "%s\t%s\n", key, val);
  return TG_OK;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int fence(void *impl, tg_error *err) {
  rd *d = impl;
  char path[1200], tmp[1300];
  d->fences++;
  path_of(d, d->rank, d->fences, path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  /* A new file, never one found there: a FIFO would block the open, a
   * link would send the run's keys elsewhere. */
  unlink(tmp);
  int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd < 0)
    return tg__error_set(err, -errno, "run directory '%s': cannot write '%s': %s", d->dir,
                         tmp, strerror(errno));
  ssize_t w = d->len ? write(fd, d->vals, d->len) : 0;
  int bad = (w != (ssize_t)d->len) || fsync(fd) != 0;
  close(fd);
  if (bad || rename(tmp, path) != 0) {
    int e = bad ? EIO : errno;
    unlink(tmp);
    return tg__error_set(err, TG_EIO, "run directory '%s': cannot write '%s': %s", d->dir,
                         path, strerror(e));
  }
  double until = now() + d->timeout;
  for (unsigned r = 0; r < d->size; r++)
    if (!wait_for(d, r, d->fences, until)) {
      d->failed = true;
      path_of(d, r, d->fences, path, sizeof path);
      return tg__error_set(err, TG_ETIMEDOUT, "rank %u of %u did not show up in run "
                           "directory '%s' within %g s (no %s)", r, d->size, d->dir,
                           d->timeout, path);
    }
  return TG_OK;
}

/* Rank r's file at path, opened for reading only if it can be one a rank
 * of this user wrote: a regular file (a FIFO would block the read), of this
 * user (in a directory others can write to, another user's file would hand
 * the driver their address and keys), mode 0600 as written. NULL with
 * errno ENOENT when it is not there; NULL with err set when it is refused. */
static FILE *open_rank_file(const rd *d, unsigned r, const char *path, tg_error *err) {
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return NULL;
    int e = errno;
    tg__error_set(err, TG_EACCES, "run directory '%s': rank %u's file '%s': %s", d->dir, r,
                  path, e == ELOOP ? "a symbolic link, refused" : strerror(e));
    errno = e == ENOENT ? EIO : e;
    return NULL;
  }
  struct stat st;
  const char *why = NULL;
  char own[96];
  if (fstat(fd, &st) != 0) why = "cannot be read";
  else if (!S_ISREG(st.st_mode)) why = "not a regular file, refused";
  else if (st.st_uid != geteuid()) {
    snprintf(own, sizeof own, "belongs to user %lu, not to this one (%lu): refused",
             (unsigned long)st.st_uid, (unsigned long)geteuid());
    why = own;
  } else if (st.st_mode & 077) why = "readable or writable by other users, refused";
  FILE *f = why ? NULL : fdopen(fd, "r");
  if (f == NULL) {
    close(fd);
    tg__error_set(err, TG_EACCES, "run directory '%s': rank %u's file '%s' %s", d->dir, r,
                  path, why ? why : "cannot be read");
    errno = EACCES;
  }
  return f;
}

static int get(void *impl, unsigned r, const char *key, char **out, tg_error *err) {
  rd *d = impl;
  char path[1200];
  path_of(d, r, d->fences, path, sizeof path);
  FILE *f = open_rank_file(d, r, path, err);
  if (f == NULL && errno == ENOENT) {
    path_of(d, r, d->fences + 1, path, sizeof path); /* r went on already */
    f = open_rank_file(d, r, path, err);
  }
  if (f == NULL && errno != ENOENT) return TG_EACCES;
  if (f == NULL)
    return tg__error_set(err, TG_ENOTFOUND, "run directory '%s': rank %u's file is gone",
                         d->dir, r);
  char *line = NULL;
  size_t cap = 0, klen = strlen(key);
  ssize_t n;
  int rc = TG_ENOTFOUND;
  while ((n = getline(&line, &cap, f)) > 0) {
    if ((size_t)n > klen && strncmp(line, key, klen) == 0 && line[klen] == '\t') {
      line[n - 1] = line[n - 1] == '\n' ? '\0' : line[n - 1];
      if ((*out = strdup(line + klen + 1)) == NULL)
        rc = tg__error_set(err, TG_ENOMEM, "out of memory");
      else rc = TG_OK;
      break;
    }
  }
  free(line);
  fclose(f);
  if (rc == TG_ENOTFOUND) tg__error_set(err, rc, "rank %u has no '%s'", r, key);
  return rc;
}

static void close_rd(void *impl) {
  rd *d = impl;
  char path[1200];
  if (d->failed) { /* the run is over: take this rank's files back */
    for (unsigned f = 1; f <= d->fences; f++) {
      path_of(d, d->rank, f, path, sizeof path);
      unlink(path);
    }
    goto out;
  }
  path_of(d, d->rank, 0, path, sizeof path);
  /* (O_NONBLOCK: a FIFO put there must not hold this rank forever.) */
  int fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
  /* Rank 0 cleans up once all have left; a rank that never does leaves
   * its own files (the next run of the job id overwrites them). */
  double until = now() + d->timeout;
  for (unsigned r = 0; d->rank == 0 && r < d->size; r++)
    if (!wait_for(d, r, UINT32_MAX - 1, until)) { /* a fence no rank reaches: only
                                                    leaving counts */
      /* Nobody reads after that long: rank 0's own files (they hold the
       * run's keys) go; the missing ranks' stay theirs. */
      for (unsigned f = 0; f <= d->fences; f++) {
        path_of(d, 0, f, path, sizeof path);
        unlink(path);
      }
      goto out;
    }
  for (unsigned r = 0; d->rank == 0 && r < d->size; r++)
    for (unsigned f = 0; f <= d->fences; f++) {
      path_of(d, r, f, path, sizeof path);
      unlink(path);
    }
out:
  tg__free(d->vals);
  tg__free(d);
}

static const tg__kvx_ops ops_rd = {put, fence, get, close_rd};

int tg__rundir_open(const tg__rank *r, const char *dir, double timeout, void **impl,
                    const tg__kvx_ops **ops, tg_error *err) {
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
    return tg__error_set(err, TG_ENOENT, "run directory '%s' is not a directory", dir);
  if (strlen(dir) >= sizeof ((rd *)0)->dir)
    return tg__error_set(err, TG_EINVAL, "run directory '%s': name too long", dir);
  rd *d = tg__calloc(1, sizeof *d);
  if (d == NULL) return tg__error_set(err, TG_ENOMEM, "out of memory");
  snprintf(d->dir, sizeof d->dir, "%s", dir);
  snprintf(d->job, sizeof d->job, "%s", r->job);
  d->rank = r->rank;
  d->size = r->size;
  d->timeout = timeout;
  /* What a failed run of the same job id left of this rank. */
  char path[1200];
  for (unsigned f = 0; f <= 4; f++) {
    path_of(d, d->rank, f, path, sizeof path);
    unlink(path);
  }
  *impl = d;
  *ops = &ops_rd;
  return TG_OK;
}
