/* lib/wire/keys.c: CURVE key files: generating the workers' and the
 * runs' key directories, reading one key and the list of authorized client
 * keys, and loading each end's set (refusing the other end's). Keys are Z85 text
 * (40 characters for 32 bytes), one per file or line. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "wire/proto.h"

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

/* Whether dir/name exists (any kind of file). */
static bool exists(const char *dir, const char *name) {
  char path[4200];
  struct stat st;
  int n = snprintf(path, sizeof path, "%s/%s", dir, name);
  return n > 0 && (size_t)n < sizeof path && lstat(path, &st) == 0;
}

static int make_dir(const char *path, tg_error *err) {
  if (mkdir(path, 0700) != 0 && errno != EEXIST)
    return tg__error_set(err, -errno, "cannot create '%s': %s", path, strerror(errno));
  return TG_OK;
}

/* Two sets: DIR/worker for the workers only, DIR/client for the hosts
 * that run, so that a host holding client material cannot answer as a
 * worker (it lacks worker.key, and clients check the worker's key). */
int tg_keys_generate(const char *dir, tg_error *err) {
  if (!dir || !*dir) return tg__error_set(err, TG_EINVAL, "no key directory given");
  if (!zmq_has("curve"))
    return tg__error_set(err, TG_EINVAL, "this libzmq was built without CURVE");
  char wdir[4096], cdir[4096];
  if (snprintf(wdir, sizeof wdir, "%s/worker", dir) >= (int)sizeof wdir - 32 ||
      snprintf(cdir, sizeof cdir, "%s/client", dir) >= (int)sizeof cdir - 32)
    return tg__error_set(err, TG_EINVAL, "key directory path too long");
  /* What a set is: the old layout's files (only refused), then each new
   * file, its directory (0 DIR, 1 DIR/worker, 2 DIR/client), its first
   * line, the key it holds (0 worker public, 1 worker secret, 2 client
   * public, 3 client secret) and its mode. */
  static const struct {
    int dir;
    const char *name, *comment;
    int key;
    mode_t mode;
  } files[] = {
      {0, "server.key", NULL, 0, 0},
      {0, "server.pub", NULL, 0, 0},
      {0, "client.key", NULL, 0, 0},
      {0, "authorized_clients", NULL, 0, 0},
      {1, "worker.key", "secret key of the workers: keep it on the workers only", 1, 0600},
      {1, "authorized_clients", "public keys of the runs this worker serves, one per line "
                                "(a client/client.pub)", 2, 0644},
      {2, "client.key", "secret key of the runs: keep it private", 3, 0600},
      {2, "client.pub", "public key of the runs: a line of a worker's authorized_clients",
       2, 0644},
      {2, "worker.pub", "public key of the workers: runs accept only a worker proving it "
                        "holds worker.key", 0, 0644},
  };
  const char *dirs[3] = {dir, wdir, cdir};
  enum { NFILES = sizeof files / sizeof *files };
  /* Refuse up front rather than half-write a set over an older one. */
  for (size_t i = 0; i < NFILES; i++)
    if (exists(dirs[files[i].dir], files[i].name))
      return tg__error_set(err, TG_EEXIST, "'%s/%s' exists already: not overwriting keys",
                           dirs[files[i].dir], files[i].name);
  int rc = make_dir(dir, err);
  if (rc == TG_OK) rc = make_dir(wdir, err);
  if (rc == TG_OK) rc = make_dir(cdir, err);
  if (rc != TG_OK) return rc;
  tg__keyset ks;
  char text[300];
  if ((rc = tg__keys_make(&ks, err)) != TG_OK) return rc;
  const char *keys[4] = {ks.worker.pub, ks.worker.sec, ks.client.pub, ks.client.sec};
  for (size_t i = 0; i < NFILES && rc == TG_OK; i++) {
    if (!files[i].comment) continue; /* the old layout's */
    snprintf(text, sizeof text, "# %s\n%s\n", files[i].comment, keys[files[i].key]);
    rc = write_new(dirs[files[i].dir], files[i].name, text, files[i].mode, err);
  }
  /* (explicit_bzero: a memset of memory about to go out of scope may be
   * dropped as a dead store.) */
  explicit_bzero(&ks, sizeof ks);
  explicit_bzero(text, sizeof text);
  return rc;
}

int tg__keys_make(tg__keyset *ks, tg_error *err) {
  memset(ks, 0, sizeof *ks);
  if (!zmq_has("curve"))
    return tg__error_set(err, TG_EINVAL, "this libzmq was built without CURVE");
  if (zmq_curve_keypair(ks->worker.pub, ks->worker.sec) != 0 ||
      zmq_curve_keypair(ks->client.pub, ks->client.sec) != 0) {
    memset(ks, 0, sizeof *ks);
    return tg__error_set(err, TG_EIO, "cannot make keys: %s", zmq_strerror(errno));
  }
  return TG_OK;
}

/* A Z85 key of 40 characters that decodes. */
static bool z85_key(const char *s, size_t n, uint8_t out[32]) {
  char buf[41];
  if (n != 40) return false;
  memcpy(buf, s, 40);
  buf[40] = '\0';
  return zmq_z85_decode(out, buf) != NULL;
}

int tg__keys_for_worker(const char *worker_sec, const char *client_pub, tg__keyset *ks,
                        tg_error *err) {
  uint8_t raw[32];
  memset(ks, 0, sizeof *ks);
  if (!z85_key(worker_sec, strlen(worker_sec), raw) ||
      !z85_key(client_pub, strlen(client_pub), raw))
    return tg__error_set(err, TG_EINVAL, "not a Z85 key of 40 characters");
  memcpy(ks->worker.sec, worker_sec, 41);
  memcpy(ks->client.pub, client_pub, 41);
  explicit_bzero(raw, sizeof raw);
  if (zmq_curve_public(ks->worker.pub, ks->worker.sec) != 0) {
    memset(ks, 0, sizeof *ks);
    return tg__error_set(err, TG_EINVAL, "not a usable secret key");
  }
  return TG_OK;
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

/* ---- loading a set for one end -------------------------------------------------- */

/* The secret key in dir/name and its public key. */
static int read_pair(const char *dir, const char *name, tg__keypair *kp, tg_error *err) {
  int rc = tg__key_read(dir, name, kp->sec, err);
  if (rc != TG_OK) return rc;
  if (zmq_curve_public(kp->pub, kp->sec) != 0)
    return tg__error_set(err, TG_EINVAL, "'%s/%s' holds no usable secret key", dir, name);
  return TG_OK;
}

/* Why dir is not the set `want` ("worker" or "client") asks for. */
static int wrong_dir(const char *dir, const char *want, tg_error *err) {
  char sub[4096];
  if (snprintf(sub, sizeof sub, "%s/%s", dir, want) >= (int)sizeof sub)
    return tg__error_set(err, TG_EINVAL, "key directory path too long");
  if (exists(dir, "server.key") || exists(dir, "server.pub"))
    return tg__error_set(err, TG_EINVAL, "'%s' has the old key layout (server.key and "
                         "client.key in one directory, so every host it was copied to "
                         "could pose as a worker): make new keys with 'tgraph keys "
                         "generate NEWDIR', then give workers NEWDIR/worker and runs "
                         "NEWDIR/client", dir);
  if (exists(sub, strcmp(want, "worker") == 0 ? "worker.key" : "client.key"))
    return tg__error_set(err, TG_EINVAL, "'%s' holds both key sets: pass '%s' (the "
                         "%s part) instead", dir, sub,
                         strcmp(want, "worker") == 0 ? "workers'" : "runs'");
  bool for_worker = strcmp(want, "worker") == 0;
  if (exists(dir, for_worker ? "client.key" : "worker.key"))
    return tg__error_set(err, TG_EINVAL, "'%s' holds %s, not %s: give the %s the %s/ "
                         "directory that 'tgraph keys generate' made beside it", dir,
                         for_worker ? "a run's (client) keys" : "a worker's keys",
                         for_worker ? "a worker's" : "a run's", for_worker ? "worker" : "run",
                         want);
  return tg__error_set(err, TG_EINVAL, "'%s' holds no %s keys (%s.key): make keys with "
                       "'tgraph keys generate DIR' and pass DIR/%s", dir, want, want, want);
}

int tg__keys_worker(const char *dir, const tg__keyset *mem, tg__keypair *kp,
                    uint8_t (**keys)[32], size_t *n, tg_error *err) {
  *keys = NULL;
  *n = 0;
  if (mem) { /* the run's own, handed over by the run */
    if (!(*keys = tg__malloc(sizeof **keys)))
      return tg__error_set(err, TG_ENOMEM, "out of memory");
    *kp = mem->worker;
    zmq_z85_decode((*keys)[0], mem->client.pub);
    *n = 1;
    return TG_OK;
  }
  if (!dir) { /* this user's own: only this user's runs get in */
    int rc = tg__keys_user(kp, err);
    if (rc != TG_OK) return rc;
    if (!(*keys = tg__malloc(sizeof **keys)))
      return tg__error_set(err, TG_ENOMEM, "out of memory");
    zmq_z85_decode((*keys)[0], kp->pub);
    *n = 1;
    return TG_OK;
  }
  if (!exists(dir, "worker.key") || exists(dir, "server.key")) return wrong_dir(dir, "worker", err);
  int rc = read_pair(dir, "worker.key", kp, err);
  if (rc == TG_OK) rc = tg__keys_authorized(dir, keys, n, err);
  if (rc != TG_OK) memset(kp, 0, sizeof *kp);
  return rc;
}

int tg__keys_client(const char *dir, const tg__keyset *mem, tg__keypair *kp,
                    char worker_pub[41], tg_error *err) {
  if (mem) {
    *kp = mem->client;
    memcpy(worker_pub, mem->worker.pub, 41);
    return TG_OK;
  }
  if (!dir) { /* this user's own: only a worker of this user answers */
    int rc = tg__keys_user(kp, err);
    if (rc == TG_OK) memcpy(worker_pub, kp->pub, 41);
    return rc;
  }
  if (!exists(dir, "client.key") || exists(dir, "server.key")) return wrong_dir(dir, "client", err);
  int rc = read_pair(dir, "client.key", kp, err);
  if (rc == TG_OK) rc = tg__key_read(dir, "worker.pub", worker_pub, err);
  if (rc != TG_OK) memset(kp, 0, sizeof *kp);
  return rc;
}
