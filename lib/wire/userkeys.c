/* lib/wire/userkeys.c: this user's key pair, made on first use, for
 * workers and runs without keys. A keyless worker accepts only a client
 * holding it and a keyless run accepts only a worker holding it, so on a
 * shared machine another user can neither use a worker (nor run commands
 * as its owner) nor stand in for one by taking its port first: the
 * CURVE handshake fails before any message. The pair lives in a directory
 * only this user can read. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "wire/proto.h"

#define KEY_FILE "user.key"

/* $XDG_STATE_HOME/tgraph/keys, or ~/.local/state/tgraph/keys. */
static int key_dir(char *out, size_t size, tg_error *err) {
  const char *state = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
  char pwbuf[4096];
  struct passwd pw, *res = NULL;
  int n;
  if (state && state[0] == '/') {
    n = snprintf(out, size, "%s/tgraph/keys", state);
  } else {
    if (!home || home[0] != '/') {
      if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof pwbuf, &res) != 0 || !res ||
          !res->pw_dir || res->pw_dir[0] != '/')
        return tg__error_set(err, TG_EINVAL, "no home directory to keep this user's "
                             "worker key in: set XDG_STATE_HOME or HOME");
      home = res->pw_dir;
    }
    n = snprintf(out, size, "%s/.local/state/tgraph/keys", home);
  }
  if (n < 0 || (size_t)n >= size - sizeof KEY_FILE - 32)
    return tg__error_set(err, TG_EINVAL, "state directory path too long");
  return TG_OK;
}

/* mkdir -p, new directories 0700; then the last one must be this user's
 * and closed to others (it holds the secret key). */
static int private_dir(char *path, tg_error *err) {
  for (char *p = path + 1;; p++) {
    if (*p != '/' && *p != '\0') continue;
    char c = *p;
    *p = '\0';
    int rc = mkdir(path, 0700);
    int e = errno;
    *p = c;
    if (rc != 0 && e != EEXIST)
      return tg__error_set(err, -e, "cannot create '%.*s' for this user's worker key: %s "
                           "(set XDG_STATE_HOME to a directory of yours)", (int)(p - path),
                           path, strerror(e));
    if (!c) break;
  }
  struct stat st;
  if (lstat(path, &st) != 0)
    return tg__error_set(err, -errno, "'%s': %s", path, strerror(errno));
  if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077))
    return tg__error_set(err, TG_EACCES, "'%s' holds this user's worker key but is not a "
                         "directory of this user (uid %u) with mode 0700: fix it (chmod "
                         "700) or remove it", path, (unsigned)geteuid());
  return TG_OK;
}

/* Read dir/KEY_FILE: -ENOENT when absent. */
static int read_key(const char *dir, tg__keypair *kp, tg_error *err) {
  char path[4200], buf[512];
  snprintf(path, sizeof path, "%s/" KEY_FILE, dir);
  int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return -ENOENT;
    return tg__error_set(err, -errno, "cannot read '%s': %s", path, strerror(errno));
  }
  struct stat st;
  bool ours = false;
  ssize_t n = -1;
  if (fstat(fd, &st) == 0) {
    ours = S_ISREG(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & 077);
    n = ours ? read(fd, buf, sizeof buf - 1) : 0;
  }
  int e = errno;
  close(fd);
  /* An I/O error is no reason to throw the key away: say what failed. */
  if (n < 0) return tg__error_set(err, -e, "cannot read '%s': %s", path, strerror(e));
  if (!ours)
    return tg__error_set(err, TG_EACCES, "'%s' is not a file of this user (uid %u) with "
                         "mode 0600: remove it (a new key is made)", path,
                         (unsigned)geteuid());
  buf[n] = '\0';
  const char *line = buf;
  while (*line == '#') { /* comment lines */
    const char *nl = strchr(line, '\n');
    line = nl ? nl + 1 : line + strlen(line);
  }
  uint8_t raw[32];
  if (strlen(line) < 40 || (line[40] != '\n' && line[40] != '\0'))
    goto bad;
  memcpy(kp->sec, line, 40);
  kp->sec[40] = '\0';
  if (!zmq_z85_decode(raw, kp->sec) || zmq_curve_public(kp->pub, kp->sec) != 0) goto bad;
  memset(buf, 0, sizeof buf);
  return TG_OK;
bad:
  memset(buf, 0, sizeof buf);
  memset(kp, 0, sizeof *kp);
  return tg__error_set(err, TG_EINVAL, "'%s' holds no key: remove it (a new key is made)",
                       path);
}

/* Write a new pair to a temporary file and link it into place: a racing
 * process either links first (and everyone reads its key) or finds ours. */
static int make_key(const char *dir, tg_error *err) {
  char tmp[4200], path[4200], pub[41], sec[41], text[200];
  snprintf(tmp, sizeof tmp, "%s/." KEY_FILE ".XXXXXX", dir);
  snprintf(path, sizeof path, "%s/" KEY_FILE, dir);
  if (zmq_curve_keypair(pub, sec) != 0)
    return tg__error_set(err, TG_EIO, "cannot make a key: %s", zmq_strerror(errno));
  int fd = mkstemp(tmp); /* mode 0600 */
  if (fd < 0)
    return tg__error_set(err, -errno, "cannot write in '%s': %s", dir, strerror(errno));
  int n = snprintf(text, sizeof text, "# this user's key for tgraph workers and runs "
                   "without --keys: keep it private\n%s\n", sec);
  bool ok = fchmod(fd, 0600) == 0 && write(fd, text, (size_t)n) == n && fsync(fd) == 0;
  int e = errno;
  ok = close(fd) == 0 && ok;
  memset(text, 0, sizeof text);
  memset(sec, 0, sizeof sec);
  if (ok && link(tmp, path) != 0 && errno != EEXIST) {
    e = errno;
    ok = false;
  }
  unlink(tmp);
  if (!ok) return tg__error_set(err, -e, "cannot write '%s': %s", path, strerror(e));
  return TG_OK;
}

int tg__user_key_dir(char *out, size_t size, tg_error *err) {
  int rc = key_dir(out, size, err);
  return rc == TG_OK ? private_dir(out, err) : rc;
}

int tg__keys_user(tg__keypair *kp, tg_error *err) {
  char dir[4096];
  if (!zmq_has("curve"))
    return tg__error_set(err, TG_EINVAL, "this libzmq was built without CURVE: workers "
                         "cannot check that a client is of their user");
  int rc = tg__user_key_dir(dir, sizeof dir, err);
  if (rc != TG_OK) return rc;
  rc = read_key(dir, kp, err);
  if (rc != -ENOENT) return rc;
  rc = make_key(dir, err);
  if (rc == TG_OK) rc = read_key(dir, kp, err);
  if (rc == -ENOENT)
    rc = tg__error_set(err, TG_EIO, "'%s/" KEY_FILE "' vanished as it was made", dir);
  return rc;
}
