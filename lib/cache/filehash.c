/* lib/cache/filehash.c: tg_cache_file_hash, the XXH3-128 of a file's
 * content, remembered in the cache's "files" database so an unchanged
 * file is not read again.
 *
 * The record, under the XXH3-128 of the path as given (8 x u64 LE):
 *   version (1), size, mtime_ns, ctime_ns, inode, device, digest lo, hi.
 * A file matches when all six stat fields match. ctime cannot be set by
 * users, so a file rewritten with its old mtime (touch -d, rsync -t) is
 * still read again.
 *
 * Racy files: timestamps have the kernel clock's coarse granularity, so a
 * file written in the same tick as our stat could change again with equal
 * size and timestamps. A digest is only recorded when both timestamps are
 * older than RACY_NS before the coarse clock read before the stat (the
 * same rule git applies to its index); a racy file is hashed every time
 * until it ages.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cache_internal.h"

#define CHUNK ((size_t)1 << 20)
#define RACY_NS INT64_C(20000000)
#define REC_LEN 64

static int64_t ts_ns(struct timespec ts) {
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void make_rec(const struct stat *st, tg_digest d, uint64_t rec[8]) {
  rec[0] = 1;
  rec[1] = (uint64_t)st->st_size;
  rec[2] = (uint64_t)ts_ns(st->st_mtim);
  rec[3] = (uint64_t)ts_ns(st->st_ctim);
  rec[4] = (uint64_t)st->st_ino;
  rec[5] = (uint64_t)st->st_dev;
  rec[6] = d.lo;
  rec[7] = d.hi;
}

/* The recorded digest, when the record matches st. */
static bool lookup(tg_cache *c, tg_digest pk, const struct stat *st, tg_digest *out) {
  MDB_txn *txn;
  if (!c || !c->env || tg__read_begin(c, &txn)) return false;
  unsigned char k[16];
  uint64_t want[8], have[8];
  tg__digest_pack(pk, k);
  MDB_val kv = {16, k}, v;
  bool hit = mdb_get(txn, c->db_files, &kv, &v) == MDB_SUCCESS && v.mv_size == REC_LEN;
  if (hit) memcpy(have, v.mv_data, REC_LEN);
  tg__read_end(c, txn);
  make_rec(st, (tg_digest){have[6], have[7]}, want);
  if (!hit || memcmp(want, have, REC_LEN)) return false;
  *out = (tg_digest){have[6], have[7]};
  return true;
}

static int hash_fd(int fd, tg_digest *out) {
  void *buf = tg__aligned_alloc(4096, CHUNK);
  XXH3_state_t *st = XXH3_createState();
  int rc = TG_OK;
  if (!buf || !st) rc = TG_ENOMEM;
  else XXH3_128bits_reset(st);
  while (!rc) {
    ssize_t n = read(fd, buf, CHUNK);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) rc = -errno;
    if (n <= 0) break;
    XXH3_128bits_update(st, buf, (size_t)n);
  }
  if (!rc) {
    XXH128_hash_t h = XXH3_128bits_digest(st);
    *out = (tg_digest){h.low64, h.high64};
  }
  XXH3_freeState(st);
  tg__free(buf);
  return rc;
}

static void remember(tg_cache *c, tg_digest pk, const struct stat *st, tg_digest d) {
  tg__cache_op op = {.type = TG__OP_FILEREC, .key = pk, .rec_len = REC_LEN};
  if (!c || c->readonly || !(op.rec = tg__malloc(REC_LEN))) return;
  make_rec(st, d, op.rec);
  tg__writer_queue(c, &op);
}

int tg_cache_file_hash(tg_cache *c, const char *path, tg_digest *out, tg_error *err) {
  if (!path || !out) return tg__error_set(err, TG_EINVAL, "file hash: no path or output");
  if (c && tg__cache_usable(c))
    return tg__error_set(err, TG_ESTATE, "file hash: %s", c->errmsg);
  struct timespec now;
  struct stat st, after;
  clock_gettime(CLOCK_REALTIME_COARSE, &now);
  /* O_NONBLOCK: a FIFO would block the open until a writer comes, before
   * fstat could refuse it. No effect on regular files. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0 || fstat(fd, &st)) {
    int rc = -errno;
    if (fd >= 0) close(fd);
    return tg__error_set(err, rc, "file hash: %s: %s", path, tg_strerror(rc));
  }
  if (!S_ISREG(st.st_mode)) {
    close(fd);
    return tg__error_set(err, TG_EINVAL, "file hash: %s is not a regular file", path);
  }
  XXH128_hash_t ph = XXH3_128bits(path, strlen(path));
  tg_digest pk = {ph.low64, ph.high64};
  if (lookup(c, pk, &st, out)) {
    close(fd);
    return TG_OK;
  }
  if (c) atomic_fetch_add(&c->file_reads, 1);
  int rc = hash_fd(fd, out);
  bool stable = !rc && fstat(fd, &after) == 0 && after.st_size == st.st_size &&
                ts_ns(after.st_mtim) == ts_ns(st.st_mtim) &&
                ts_ns(after.st_ctim) == ts_ns(st.st_ctim);
  close(fd);
  if (rc) return tg__error_set(err, rc, "file hash: reading %s: %s", path, tg_strerror(rc));
  int64_t limit = ts_ns(now) - RACY_NS;
  if (stable && ts_ns(st.st_mtim) < limit && ts_ns(st.st_ctim) < limit)
    remember(c, pk, &st, *out);
  return TG_OK;
}
