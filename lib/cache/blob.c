/* lib/cache/blob.c: blob files, the home of values whose encoding is
 * larger than inline_max: DIR/blobs/ab/cdef..., named by the XXH3-128 of
 * their bytes, so identical results share one file.
 *
 * A blob is written to a temporary file DIR/blobs/tmp/<hex>.tmp.XXXXXX
 * and renamed into place (atomic: a reader sees all of it or nothing),
 * and only inside an LMDB write transaction, before the entry that refers
 * to it is committed. A crash between the rename and the commit leaves an
 * orphan file, which tg__blob_sweep() (clear, prune) and tg_cache_check
 * delete. Blob files are not fsynced: after an OS crash one may be short
 * or garbled, which reading detects (a miss, never a wrong value).
 *
 * The writer holds an flock on its temporary file until it has renamed
 * it; the kernel drops the lock when the writer dies, however it dies. A
 * temporary file whose lock can be taken therefore has no writer, and
 * tg__blob_tmp_sweep() (every read-write open, clear, prune, check)
 * deletes it at once. Keeping them in their own directory makes that
 * sweep one readdir of a (nearly always empty) directory.
 *
 * Reading maps the file (arrays in the value point into the mapping; a
 * compressed blob is decompressed from it into memory) and checks every
 * byte against the entry that names it: the size and the XXH3-64 the entry
 * recorded when it was stored. A file that is not the entry's (another
 * blob renamed over it, bytes changed) is therefore never decoded, let
 * alone served. The serializer's own header and meta checksums still run;
 * its payload hash is skipped, the whole-file one having covered it, so
 * the check costs one pass over the bytes, as before.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache_internal.h"
#include "serial/format.h"
#include "tgraph/serial.h"

#define STALE_TMP_SECONDS 3600

void tg__blob_path(const tg_cache *c, tg_digest d, char *path, size_t size) {
  char hex[33];
  tg_digest_hex(d, hex);
  snprintf(path, size, "%s/blobs/%.2s/%s", c->dir, hex, hex + 2);
}

static int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len) {
    ssize_t n = write(fd, p, len > (1u << 30) ? (1u << 30) : len);
    if (n < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    p += n;
    len -= (size_t)n;
  }
  return TG_OK;
}

/* mkdir DIR/blobs, DIR/blobs/ab and DIR/blobs/tmp (existing ones are
 * fine). */
static int make_dirs(const tg_cache *c, const char *path) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/blobs", c->dir);
  if (mkdir(dir, 0755) && errno != EEXIST) return -errno;
  snprintf(dir, sizeof dir, "%s/blobs/tmp", c->dir);
  if (mkdir(dir, 0755) && errno != EEXIST) return -errno;
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  if (mkdir(dir, 0755) && errno != EEXIST) return -errno;
  return TG_OK;
}

/* Create DIR/blobs/tmp/<hex>.tmp.XXXXXX and lock it (flock, LOCK_EX) for
 * as long as the descriptor is open: the lock is how sweepers tell a live
 * writer from a dead one. A sweeper may take the lock in the instant
 * between creation and locking and unlink the file; then start again. */
static int tmp_create(tg_cache *c, tg_digest d, char *tmp, size_t size) {
  char hex[33];
  tg_digest_hex(d, hex);
  for (int attempt = 0; attempt < 16; attempt++) {
    snprintf(tmp, size, "%s/blobs/tmp/%s" TG__BLOB_TMP_MARK "XXXXXX", c->dir, hex);
    int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0) return -errno;
    struct stat st;
    int rc = TG_OK;
    while (flock(fd, LOCK_EX) && errno == EINTR) {
    }
    if (fchmod(fd, 0644) || fstat(fd, &st)) rc = -errno;
    if (!rc && st.st_nlink > 0) return fd;
    close(fd);
    if (rc) {
      unlink(tmp);
      return rc;
    }
  }
  return TG_EIO;
}

int tg__blob_write(tg_cache *c, tg_digest d, const void *buf, size_t len) {
  char path[4200], tmp[4300];
  struct stat st;
  tg__blob_path(c, d, path, sizeof path);
  if (stat(path, &st) == 0 && (uint64_t)st.st_size == len) return TG_OK;
  int rc = make_dirs(c, path);
  if (rc) return tg__cache_fail(c, rc, "cache: creating blob directory for %s: %s",
                                path, tg_strerror(rc));
  int fd = tmp_create(c, d, tmp, sizeof tmp);
  if (fd < 0)
    return tg__cache_fail(c, fd, "cache: creating a temporary file in %s/blobs/tmp: %s",
                          c->dir, tg_strerror(fd));
  rc = write_all(fd, buf, len);
  /* Renamed before the descriptor (and the lock) goes: an unlocked
   * temporary file is one a sweeper may delete. */
  if (!rc && rename(tmp, path)) rc = -errno;
  if (rc) unlink(tmp);
  if (close(fd) && !rc) rc = -errno;
  if (rc) return tg__cache_fail(c, rc, "cache: writing blob %s: %s", path, tg_strerror(rc));
  return TG_OK;
}

bool tg__blob_tmp_abandoned(const char *path, bool remove, bool *removed) {
  if (removed) *removed = false;
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return false;
  bool dead = flock(fd, LOCK_EX | LOCK_NB) == 0;
  /* Unlinked before the lock goes: a writer that created the file and
   * waits for its lock takes it next, and then must find the file gone
   * (tmp_create looks at its link count) rather than carry on with a file
   * unlinked under it (its rename would fail). By name: a writer done
   * with it renamed it away first, and then there is nothing to unlink. */
  if (dead && remove && unlink(path) == 0 && removed) *removed = true;
  close(fd);
  return dead;
}

int tg__blob_tmp_sweep(tg_cache *c, uint64_t *removed) {
  char dir[4200], path[4500];
  snprintf(dir, sizeof dir, "%s/blobs/tmp", c->dir);
  DIR *dp = opendir(dir);
  if (!dp) return errno == ENOENT ? TG_OK : -errno;
  struct dirent *de;
  while ((de = readdir(dp))) {
    if (!strstr(de->d_name, TG__BLOB_TMP_MARK)) continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    /* The lock was free, so its writer is gone (the kernel drops a dead
     * process's locks) or has renamed the file away already (then the
     * unlink finds nothing). */
    bool gone = false;
    if (tg__blob_tmp_abandoned(path, true, &gone) && gone && removed) (*removed)++;
  }
  closedir(dp);
  return TG_OK;
}

int tg__blob_read(tg_cache *c, tg_digest d, uint64_t size, uint64_t checksum,
                  tg_value **out, tg_error *err) {
  char path[4200];
  tg__blob_path(c, d, path, sizeof path);
  int rc = tg__load_hashed(path, TG_LOAD_MMAP, size, checksum, out, err);
  if (rc == TG_ENOENT) rc = tg__error_set(err, TG_ENOTFOUND, "blob file %s is missing", path);
  return rc;
}

void tg__blob_unlink(tg_cache *c, tg_digest d) {
  char path[4200];
  tg__blob_path(c, d, path, sizeof path);
  unlink(path);
}

bool tg__blob_name_digest(const char *sub, const char *name, tg_digest *d) {
  char hex[33];
  if (strlen(sub) != 2 || strlen(name) != 30) return false;
  memcpy(hex, sub, 2);
  memcpy(hex + 2, name, 31);
  uint64_t v[2] = {0, 0};
  for (int i = 0; i < 32; i++) {
    int ch = hex[i], x;
    if (ch >= '0' && ch <= '9') x = ch - '0';
    else if (ch >= 'a' && ch <= 'f') x = ch - 'a' + 10;
    else return false;
    v[i / 16] = (v[i / 16] << 4) | (uint64_t)x;
  }
  d->hi = v[0];
  d->lo = v[1];
  return true;
}

/* Decide whether DIR/blobs/sub/name should go. */
static bool doomed(tg_cache *c, MDB_txn *txn, const char *sub, const char *name,
                   const char *path, bool all) {
  tg_digest d;
  if (all) return true;
  if (tg__blob_name_digest(sub, name, &d)) {
    unsigned char k[16];
    tg__digest_pack(d, k);
    MDB_val key = {16, k}, val;
    return mdb_get(txn, c->db_blobs, &key, &val) == MDB_NOTFOUND;
  }
  /* Temporary files here come from versions that wrote them beside the
   * blob without a lock: those of writers still writing are young. */
  struct stat st;
  return strstr(name, TG__BLOB_TMP_MARK) && stat(path, &st) == 0 &&
         st.st_mtime < time(NULL) - STALE_TMP_SECONDS;
}

static void sweep_sub(tg_cache *c, MDB_txn *txn, const char *sub, bool all) {
  char dir[4200], path[4500];
  snprintf(dir, sizeof dir, "%s/blobs/%s", c->dir, sub);
  DIR *dp = opendir(dir);
  if (!dp) return;
  struct dirent *de;
  while ((de = readdir(dp))) {
    if (de->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (doomed(c, txn, sub, de->d_name, path, all)) unlink(path);
  }
  closedir(dp);
}

int tg__blob_sweep(tg_cache *c, MDB_txn *txn, bool all) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/blobs", c->dir);
  DIR *dp = opendir(dir);
  if (!dp) return errno == ENOENT ? TG_OK : -errno;
  struct dirent *de;
  while ((de = readdir(dp))) {
    if (de->d_name[0] == '.' || strlen(de->d_name) != 2) continue;
    sweep_sub(c, txn, de->d_name, all);
  }
  closedir(dp);
  return tg__blob_tmp_sweep(c, NULL);
}
