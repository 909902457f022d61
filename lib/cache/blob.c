/* lib/cache/blob.c: blob files, the home of values whose encoding is
 * larger than inline_max: DIR/blobs/ab/cdef..., named by the XXH3-128 of
 * their bytes, so identical results share one file.
 *
 * A blob is written to a temporary file in its final directory and
 * renamed into place (atomic: a reader sees all of it or nothing), and
 * only inside an LMDB write transaction, before the entry that refers to
 * it is committed. A crash between the rename and the commit leaves an
 * orphan file, which tg__blob_sweep() (clear, prune) deletes. Blob files
 * are not fsynced: after an OS crash one may be short or garbled, which
 * reading detects (a miss, never a wrong value).
 *
 * Reading maps the file (tg_load with TG_LOAD_MMAP | TG_LOAD_VERIFY):
 * arrays in the value point into the mapping, and the serializer's
 * checksums (header, meta section, payload) are checked over every byte
 * that makes up the value. The size recorded in the entry must match too.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache_internal.h"
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

/* mkdir DIR/blobs and DIR/blobs/ab (existing ones are fine). */
static int make_dirs(const tg_cache *c, const char *path) {
  char dir[4200];
  snprintf(dir, sizeof dir, "%s/blobs", c->dir);
  if (mkdir(dir, 0755) && errno != EEXIST) return -errno;
  snprintf(dir, sizeof dir, "%s", path);
  char *slash = strrchr(dir, '/');
  if (slash) *slash = '\0';
  if (mkdir(dir, 0755) && errno != EEXIST) return -errno;
  return TG_OK;
}

int tg__blob_write(tg_cache *c, tg_digest d, const void *buf, size_t len) {
  char path[4200], tmp[4300];
  struct stat st;
  tg__blob_path(c, d, path, sizeof path);
  if (stat(path, &st) == 0 && (uint64_t)st.st_size == len) return TG_OK;
  int rc = make_dirs(c, path);
  if (rc) return tg__cache_fail(c, rc, "cache: creating blob directory for %s: %s",
                                path, tg_strerror(rc));
  snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path);
  int fd = mkostemp(tmp, O_CLOEXEC);
  if (fd < 0 || fchmod(fd, 0644)) {
    rc = -errno;
    if (fd >= 0) close(fd), unlink(tmp);
    return tg__cache_fail(c, rc, "cache: creating %s: %s", tmp, tg_strerror(rc));
  }
  rc = write_all(fd, buf, len);
  if (close(fd) && !rc) rc = -errno;
  if (!rc && rename(tmp, path)) rc = -errno;
  if (rc) {
    unlink(tmp);
    return tg__cache_fail(c, rc, "cache: writing blob %s: %s", path, tg_strerror(rc));
  }
  return TG_OK;
}

int tg__blob_read(tg_cache *c, tg_digest d, uint64_t size, tg_value **out) {
  char path[4200];
  struct stat st;
  tg_error err;
  tg__blob_path(c, d, path, sizeof path);
  if (stat(path, &st)) return errno == ENOENT ? TG_ENOTFOUND : -errno;
  if ((uint64_t)st.st_size != size) return TG_ECHECKSUM;
  return tg_load(path, TG_LOAD_MMAP | TG_LOAD_VERIFY, out, &err);
}

void tg__blob_unlink(tg_cache *c, tg_digest d) {
  char path[4200];
  tg__blob_path(c, d, path, sizeof path);
  unlink(path);
}

/* Parse "ab" + "cdef..." (30 hex digits) back into a digest. */
static bool name_digest(const char *sub, const char *name, tg_digest *d) {
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
  if (name_digest(sub, name, &d)) {
    unsigned char k[16];
    tg__digest_pack(d, k);
    MDB_val key = {16, k}, val;
    return mdb_get(txn, c->db_blobs, &key, &val) == MDB_NOTFOUND;
  }
  /* Temporary files of writers (any process) still writing are young. */
  struct stat st;
  return strstr(name, ".tmp.") && stat(path, &st) == 0 &&
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
  return TG_OK;
}
