/* lib/remote/keys.c: CURVE key files: generating a key directory, reading
 * one key, reading the list of authorized client keys. Keys are Z85 text
 * (40 characters for 32 bytes), one per file or line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "remote/proto.h"

/* Write text to dir/name with mode, never over an existing file. */
static int write_new(const char *dir, const char *name, const char *text,
                     mode_t mode, tg_error *err) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0)
    return tg__error_set(err, errno == EEXIST ? TG_EEXIST : -errno,
                         "cannot create '%s': %s", path, strerror(errno));
  size_t n = strlen(text), off = 0;
  while (off < n) {
    ssize_t w = write(fd, text + off, n - off);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) {
      int e = errno;
      close(fd);
      return tg__error_set(err, -e, "cannot write '%s': %s", path, strerror(e));
    }
    off += (size_t)w;
  }
  if (fchmod(fd, mode) != 0 || fsync(fd) != 0 || close(fd) != 0)
    return tg__error_set(err, TG_EIO, "cannot write '%s': %s", path, strerror(errno));
  return TG_OK;
}

int tg_keys_generate(const char *dir, tg_error *err) {
  if (!dir || !*dir) return tg__error_set(err, TG_EINVAL, "no key directory given");
  if (!zmq_has("curve"))
    return tg__error_set(err, TG_EINVAL, "this libzmq was built without CURVE");
  if (mkdir(dir, 0700) != 0 && errno != EEXIST)
    return tg__error_set(err, -errno, "cannot create '%s': %s", dir, strerror(errno));
  char files[4][41];
  if (zmq_curve_keypair(files[0], files[1]) != 0 ||
      zmq_curve_keypair(files[2], files[3]) != 0)
    return tg__error_set(err, TG_EIO, "cannot make keys: %s", zmq_strerror(errno));
  static const char *const names[4] = {"server.pub", "server.key", "client.pub",
                                       "client.key"};
  static const char *const notes[4] = {
      "public key of the workers\n", "secret key of the workers: keep it private\n",
      "public key of the runs\n", "secret key of the runs: keep it private\n"};
  /* Refuse up front rather than half-write a set over an older one. */
  const char *all[5] = {names[0], names[1], names[2], names[3], "authorized_clients"};
  for (int i = 0; i < 5; i++) {
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, all[i]);
    if (lstat(path, &st) == 0)
      return tg__error_set(err, TG_EEXIST, "'%s' exists already: not overwriting keys",
                           path);
  }
  int rc = TG_OK;
  for (int i = 0; i < 4 && rc == TG_OK; i++) {
    char text[200];
    snprintf(text, sizeof text, "# %s%s\n", notes[i], files[i]);
    rc = write_new(dir, names[i], text, i % 2 ? 0600 : 0644, err);
  }
  if (rc == TG_OK) {
    char text[300];
    snprintf(text, sizeof text, "# public keys of the runs this worker serves, "
             "one per line\n%s\n", files[2]);
    rc = write_new(dir, "authorized_clients", text, 0644, err);
  }
  memset(files, 0, sizeof files);
  return rc;
}

/* A Z85 key of 40 characters that decodes. */
static bool z85_key(const char *s, size_t n, uint8_t out[32]) {
  char buf[41];
  if (n != 40) return false;
  memcpy(buf, s, 40);
  buf[40] = '\0';
  return zmq_z85_decode(out, buf) != NULL;
}

/* The next meaningful line of text: [*b, *e) trimmed; false at the end. */
static bool next_line(const char **p, const char *end, const char **b,
                      const char **e, size_t *lineno) {
  while (*p < end) {
    const char *nl = memchr(*p, '\n', (size_t)(end - *p));
    const char *le = nl ? nl : end;
    *b = *p;
    *e = le;
    *p = nl ? nl + 1 : end;
    ++*lineno;
    while (*b < *e && (**b == ' ' || **b == '\t' || **b == '\r')) ++*b;
    while (*e > *b && ((*e)[-1] == ' ' || (*e)[-1] == '\t' || (*e)[-1] == '\r')) --*e;
    if (*b < *e && **b != '#') return true;
  }
  return false;
}

static int read_small(const char *path, char *buf, size_t size, size_t *len,
                      tg_error *err) {
  FILE *f = fopen(path, "re");
  if (!f) return tg__error_set(err, errno == EACCES ? TG_EACCES : -errno,
                               "cannot read '%s': %s", path, strerror(errno));
  *len = fread(buf, 1, size, f);
  bool bad = ferror(f) || !feof(f);
  fclose(f);
  if (bad) return tg__error_set(err, TG_ELIMIT, "'%s' is not a key file", path);
  return TG_OK;
}

int tg__key_read(const char *dir, const char *name, char out[41], tg_error *err) {
  char path[4096], buf[4096];
  size_t len, line = 0;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  int rc = read_small(path, buf, sizeof buf, &len, err);
  if (rc != TG_OK) return rc;
  const char *p = buf, *b, *e;
  uint8_t raw[32];
  if (!next_line(&p, buf + len, &b, &e, &line) || !z85_key(b, (size_t)(e - b), raw))
    return tg__error_set(err, TG_EINVAL, "'%s' holds no Z85 key of 40 characters", path);
  memcpy(out, b, 40);
  out[40] = '\0';
  return TG_OK;
}

int tg__keys_authorized(const char *dir, uint8_t (**keys)[32], size_t *n,
                        tg_error *err) {
  char path[4096];
  const size_t max = (size_t)1 << 20; /* a generous list of keys */
  size_t len, line = 0, cap = 0;
  *keys = NULL;
  *n = 0;
  snprintf(path, sizeof path, "%s/authorized_clients", dir);
  char *text = tg__malloc(max);
  if (!text) return tg__error_set(err, TG_ENOMEM, "out of memory");
  int rc = read_small(path, text, max, &len, err);
  const char *p = text, *b, *e;
  while (rc == TG_OK && next_line(&p, text + len, &b, &e, &line)) {
    if (*n == cap) {
      cap = cap ? cap * 2 : 8;
      uint8_t(*k)[32] = tg__realloc(*keys, cap * sizeof **keys);
      if (!k) {
        rc = tg__error_set(err, TG_ENOMEM, "out of memory");
        break;
      }
      *keys = k;
    }
    if (!z85_key(b, (size_t)(e - b), (*keys)[*n]))
      rc = tg__error_set(err, TG_EINVAL, "%s:%zu: not a Z85 public key of 40 characters",
                         path, line);
    else
      ++*n;
  }
  tg__free(text);
  if (rc == TG_OK && *n == 0)
    rc = tg__error_set(err, TG_EINVAL, "%s lists no client key: no run could connect",
                       path);
  if (rc != TG_OK) {
    tg__free(*keys);
    *keys = NULL;
    *n = 0;
  }
  return rc;
}
