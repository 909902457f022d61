/* lib/serial/file.c: tg_dump (atomic write of an encoding, array data
 * written straight from the value's memory) and tg_load (copied, or mapped
 * so that arrays point into the file). */
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "serial/format.h"

/* Writes go out in batches ending at multiples of this file offset, each
 * hashed right after it is written, while it is still in cache. */
#define IO_CHUNK ((size_t)1 << 20)
#define IO_BATCH 64 /* iovecs per pwritev */
/* Files at least this large are copied through a temporary mapping: one
 * bulk memcpy into fresh memory is much faster than read(2) into it. */
#define MAP_COPY_MIN ((size_t)1 << 20)

/* Prefix the file name to the message of an error that has one. */
static int with_path(tg_error *err, int rc, const char *path) {
  if (!err || rc == TG_OK) return rc;
  char msg[sizeof err->msg];
  int n = snprintf(msg, sizeof msg, "%.120s: ", path);
  if (n < 0 || (size_t)n >= sizeof msg) return rc;
  size_t len = strlen(err->msg), room = sizeof msg - 1 - (size_t)n;
  if (len > room) len = room;
  memcpy(msg + n, err->msg, len);
  msg[(size_t)n + len] = '\0';
  memcpy(err->msg, msg, sizeof msg);
  return rc;
}

static int sys_fail(tg_error *err, const char *what, const char *path) {
  int e = errno ? errno : EIO;
  return tg__error_set(err, -e, "%s '%.120s': %s", what, path, strerror(e));
}

/* ---- writing ------------------------------------------------------------- */

typedef struct writer {
  int fd;
  off_t off;                   /* file offset of the next batch */
  struct iovec iov[IO_BATCH];
  bool hashed[IO_BATCH];       /* piece belongs to the payload */
  int n;
  size_t bytes;
  tg__bulk_hasher *hash;       /* of the payload */
} writer;

static int pwritev_all(int fd, struct iovec *iov, int n, off_t off) {
  while (n > 0) {
    ssize_t w = pwritev(fd, iov, n, off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (w == 0) return TG_EIO;
    off += w;
    while (n > 0 && (size_t)w >= iov->iov_len) {
      w -= (ssize_t)iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (char *)iov->iov_base + w;
      iov->iov_len -= (size_t)w;
    }
  }
  return TG_OK;
}

static int wr_flush(writer *w) {
  if (!w->n) return TG_OK;
  struct iovec copy[IO_BATCH]; /* pwritev_all advances its array */
  memcpy(copy, w->iov, (size_t)w->n * sizeof *copy);
  int rc = pwritev_all(w->fd, copy, w->n, w->off);
  if (rc != TG_OK) return rc;
  for (int i = 0; i < w->n; i++)
    if (w->hashed[i]) tg__bulk_hasher_update(w->hash, w->iov[i].iov_base, w->iov[i].iov_len);
  w->off += (off_t)w->bytes;
  w->n = 0;
  w->bytes = 0;
  return TG_OK;
}

/* Queue len bytes; batches are cut at multiples of IO_CHUNK in the file,
 * so every write covers whole pages (unaligned writes are much slower). */
static int wr_add(writer *w, const void *data, size_t len, bool hashed) {
  const char *p = data;
  while (len) {
    size_t room = IO_CHUNK - ((size_t)w->off + w->bytes) % IO_CHUNK;
    size_t piece = len < room ? len : room;
    w->iov[w->n] = (struct iovec){.iov_base = (void *)p, .iov_len = piece};
    w->hashed[w->n++] = hashed;
    w->bytes += piece;
    p += piece;
    len -= piece;
    if (w->n == IO_BATCH || piece == room) {
      int rc = wr_flush(w);
      if (rc != TG_OK) return rc;
    }
  }
  return TG_OK;
}

/* Write the encoding of plan p, the header last (at offset 0) once the
 * payload hash is known. */
static int write_plan(int fd, const tg__plan *p) {
  static const uint8_t zeros[TG__ALIGN];
  writer *w = tg__malloc(sizeof *w);
  if (!w) return TG_ENOMEM;
  *w = (writer){.fd = fd, .hash = tg__bulk_hasher_new()};
  if (!w->hash) {
    tg__free(w);
    return TG_ENOMEM;
  }
  size_t span = (size_t)tg__meta_span(p->meta_len), end = 0;
  /* Zeros hold the header's place so that writes start at offset 0. */
  int rc = wr_add(w, zeros, TG_HEADER_SIZE, false);
  if (rc == TG_OK) rc = wr_add(w, p->meta, p->meta_len, false);
  if (rc == TG_OK) rc = wr_add(w, zeros, span - p->meta_len, false);
  for (size_t i = 0; rc == TG_OK && i < p->nitems; i++) {
    rc = wr_add(w, zeros, p->items[i].off - end, true);
    if (rc == TG_OK) rc = wr_add(w, p->items[i].data, p->items[i].len, true);
    end = p->items[i].off + p->items[i].len;
  }
  if (rc == TG_OK) rc = wr_flush(w);
  uint64_t payload_hash = tg__bulk_hasher_final(w->hash);
  tg__free(w);
  if (rc != TG_OK) return rc;
  tg__header h = {.version = TG_FORMAT_VERSION,
                  .meta_len = p->meta_len,
                  .payload_len = p->payload_len,
                  .stored_len = span + p->payload_len,
                  .meta_hash = tg__xxh3_bulk(p->meta, p->meta_len),
                  .payload_hash = payload_hash};
  uint8_t hdr[TG_HEADER_SIZE];
  tg__header_write(hdr, &h);
  struct iovec iov = {.iov_base = hdr, .iov_len = sizeof hdr};
  return pwritev_all(fd, &iov, 1, 0);
}

static int write_buf(int fd, const void *buf, size_t len) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  return pwritev_all(fd, &iov, 1, 0);
}

/* Open a new "<path>.tmp.<pid>.<random>"; its name goes to *tmp. */
static int open_temp(const char *path, char **tmp, tg_error *err) {
  size_t n = strlen(path) + 48;
  char *name = tg__malloc(n);
  if (!name) return tg__error_set(err, TG_ENOMEM, "out of memory");
  for (int tries = 0; tries < 16; tries++) {
    uint64_t r;
    if (getrandom(&r, sizeof r, GRND_NONBLOCK) != (ssize_t)sizeof r)
      r = (uint64_t)time(NULL) ^ ((uint64_t)(uintptr_t)name << 16) ^ (uint64_t)tries;
    snprintf(name, n, "%s.tmp.%ld.%016" PRIx64, path, (long)getpid(), r);
    int fd = open(name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (fd >= 0) {
      *tmp = name;
      return fd;
    }
    if (errno != EEXIST) break;
  }
  int rc = sys_fail(err, "cannot create a temporary file next to", path);
  tg__free(name);
  return rc;
}

static int sync_dir(const char *path, tg_error *err) {
  const char *slash = strrchr(path, '/');
  size_t n = !slash ? 1 : slash == path ? 1 : (size_t)(slash - path);
  char *dir = tg__malloc(n + 1);
  if (!dir) return tg__error_set(err, TG_ENOMEM, "out of memory");
  memcpy(dir, slash ? path : ".", n);
  dir[n] = '\0';
  int rc = TG_OK, fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) rc = sys_fail(err, "cannot sync directory", dir);
  if (fd >= 0) close(fd);
  tg__free(dir);
  return rc;
}

/* Write the encoding of v (plan or compressed buffer) into fd. */
static int dump_into(int fd, const tg_value *v, const tg_encode_opts *opts, int level,
                     const char *path, tg_error *err) {
  int rc;
  if (level) {
    void *buf;
    size_t len;
    if ((rc = tg_encode(v, opts, &buf, &len, err)) != TG_OK) return rc;
    rc = write_buf(fd, buf, len);
    free(buf);
  } else {
    tg__plan p;
    if ((rc = tg__plan_build(v, &p, err)) != TG_OK) return rc;
    rc = write_plan(fd, &p);
    tg__plan_free(&p);
  }
  if (rc != TG_OK) {
    errno = -rc;
    return sys_fail(err, "cannot write", path);
  }
  if (opts && opts->sync && fsync(fd) != 0) return sys_fail(err, "cannot sync", path);
  return TG_OK;
}

int tg_dump(const tg_value *v, const char *path, const tg_encode_opts *opts,
            tg_error *err) {
  if (!v || !path || !*path)
    return tg__error_set(err, TG_EINVAL, "a value and a path are required");
  int level, rc = tg__encode_opts_level(opts, &level, err);
  if (rc != TG_OK) return rc;
  char *tmp = NULL;
  int fd = open_temp(path, &tmp, err);
  if (fd < 0) return fd;
  rc = dump_into(fd, v, opts, level, path, err);
  if (close(fd) != 0 && rc == TG_OK) rc = sys_fail(err, "cannot write", path);
  if (rc == TG_OK && rename(tmp, path) != 0) rc = sys_fail(err, "cannot rename onto", path);
  if (rc != TG_OK) unlink(tmp);
  tg__free(tmp);
  if (rc == TG_OK && opts && opts->sync) rc = sync_dir(path, err);
  return rc;
}

/* ---- reading ------------------------------------------------------------- */

static void unmap_release(void *ctx, void *data) {
  munmap(data, (size_t)(uintptr_t)ctx);
}

static int pread_all(int fd, void *buf, size_t len) {
  size_t done = 0;
  while (done < len) {
    ssize_t r = pread(fd, (char *)buf + done, len - done, (off_t)done);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return TG_EIO; /* the file shrank under us */
    done += (size_t)r;
  }
  return TG_OK;
}

/* With an expected checksum (tg__load_hashed): compare it with the XXH3-64
 * of all size bytes at buf. That one pass covers the payload too, so the
 * decoder need not hash it again (a verified read costs no more). */
static int check_whole(const uint8_t *buf, size_t size, const uint64_t *hash,
                       tg_error *err) {
  if (!hash) return TG_OK;
  uint64_t got = tg__xxh3_bulk(buf, size);
  if (got == *hash) return TG_OK;
  return tg__error_set(err, TG_ECHECKSUM,
                       "content checksum %016" PRIx64 " is not the expected %016" PRIx64,
                       got, *hash);
}

/* Arrays point into a read-only mapping that lives as long as they do. */
static int load_mapped(int fd, size_t size, unsigned flags, const uint64_t *hash,
                       const char *path, tg_value **out, tg_error *err) {
  bool verify = (flags & TG_LOAD_VERIFY) || hash;
  /* Without VERIFY nothing reads the payload here: map it lazily, O(1). */
  void *map = mmap(NULL, size, PROT_READ, MAP_SHARED | (verify ? MAP_POPULATE : 0), fd, 0);
  if (map == MAP_FAILED) return sys_fail(err, "cannot map", path);
  tg__region *r = tg__region_new(map, unmap_release, (void *)(uintptr_t)size);
  if (!r) return tg__error_set(err, TG_ENOMEM, "out of memory");
  tg__header h;
  int rc = check_whole(map, size, hash, err);
  if (rc == TG_OK) rc = tg__header_read(map, size, &h, err);
  if (rc == TG_OK)
    rc = tg__decode_checked(map, &h, r, (verify && !hash) ? 0 : TG__DEC_SKIP_PAYLOAD_HASH,
                            out, err);
  tg__region_unref(r); /* unmaps now unless a value borrowed from it */
  return with_path(err, rc, path);
}

/* Fill buf with the size bytes of the file. */
static int read_file(int fd, uint8_t *buf, size_t size, const char *path, tg_error *err) {
  if (size < MAP_COPY_MIN) {
    int rc = pread_all(fd, buf, size);
    if (rc != TG_OK) errno = -rc;
    return rc == TG_OK ? TG_OK : sys_fail(err, "cannot read", path);
  }
  void *map = mmap(NULL, size, PROT_READ, MAP_SHARED | MAP_POPULATE, fd, 0);
  if (map == MAP_FAILED) return sys_fail(err, "cannot map", path);
  memcpy(buf, map, size);
  munmap(map, size);
  return TG_OK;
}

/* Copy the file into one 64-aligned buffer that arrays then borrow. */
static int load_copied(int fd, size_t size, const uint64_t *hash, const char *path,
                       tg_value **out, tg_error *err) {
  uint8_t *buf = tg__big_alloc(size);
  if (!buf) return tg__error_set(err, TG_ENOMEM, "out of memory for %zu bytes", size);
  int rc = read_file(fd, buf, size, path, err);
  if (rc != TG_OK) {
    tg__free(buf);
    return rc;
  }
  tg__region *r = tg__region_new(buf, tg__release_free, NULL);
  if (!r) return tg__error_set(err, TG_ENOMEM, "out of memory");
  tg__header h;
  if ((rc = check_whole(buf, size, hash, err)) == TG_OK &&
      (rc = tg__header_read(buf, size, &h, err)) == TG_OK)
    rc = tg__decode_checked(buf, &h, r, hash ? TG__DEC_SKIP_PAYLOAD_HASH : 0, out, err);
  tg__region_unref(r); /* frees buf now unless a value borrowed from it */
  return with_path(err, rc, path);
}

/* tg_load, and with want: the file must hold exactly want->size bytes
 * whose XXH3-64 is want->hash. */
typedef struct expect {
  uint64_t size, hash;
} expect;

static int load(const char *path, unsigned flags, const expect *want, tg_value **out,
                tg_error *err) {
  if (out) *out = NULL;
  if (!path || !out || (flags & ~(unsigned)(TG_LOAD_MMAP | TG_LOAD_VERIFY)))
    return tg__error_set(err, TG_EINVAL, "a path, out and known flags are required");
  /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer before
   * fstat could refuse it. It changes nothing for regular files. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return sys_fail(err, "cannot open", path);
  struct stat st;
  int rc = TG_OK;
  if (fstat(fd, &st) != 0)
    rc = sys_fail(err, "cannot stat", path);
  else if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > SIZE_MAX / 2)
    rc = tg__error_set(err, TG_EINVAL, "'%.120s' is not a regular file", path);
  else if (want && (uint64_t)st.st_size != want->size)
    rc = with_path(err, tg__error_set(err, TG_ECHECKSUM,
                                      "file of %zu bytes is not the expected %" PRIu64,
                                      (size_t)st.st_size, want->size),
                   path);
  else if ((size_t)st.st_size < TG_HEADER_SIZE)
    rc = with_path(err, tg__error_set(err, TG_EFORMAT,
                                      "file of %zu bytes is shorter than the %d-byte header",
                                      (size_t)st.st_size, TG_HEADER_SIZE),
                   path);
  else if (flags & TG_LOAD_MMAP)
    rc = load_mapped(fd, (size_t)st.st_size, flags, want ? &want->hash : NULL, path, out,
                     err);
  else
    rc = load_copied(fd, (size_t)st.st_size, want ? &want->hash : NULL, path, out, err);
  close(fd);
  return rc;
}

int tg_load(const char *path, unsigned flags, tg_value **out, tg_error *err) {
  return load(path, flags, NULL, out, err);
}

int tg__load_hashed(const char *path, unsigned flags, uint64_t size, uint64_t hash,
                    tg_value **out, tg_error *err) {
  expect want = {size, hash};
  return load(path, flags, &want, out, err);
}
