/* lib/launch/cluster.c: tg_cluster_start (tgraph/cluster.h): rank 0
 * makes the run's keys and drives; the other ranks serve it.
 *
 * The exchange has two fences:
 *   1. rank 0 puts the workers' keys, its lifeline port and host, and the
 *      plugins to load; every rank waits for them
 *   2. every other rank puts the address it listens on (or why it could
 *      not start); rank 0 reads them and connects a tcp executor
 * after which every rank leaves the exchange (PMIx_Finalize): the run
 * itself needs nothing more from the launcher. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../internal.h"
#include "launch.h"
#include "tgraph/cluster.h"
#include "tgraph/plugin.h"
#include "tgraph/readfile.h"
#include "tgraph/remote.h"

#define KEYS_MAX 65536 /* bytes of a key file: a few lines of Z85 */

/* ---- a private temporary directory for the run's key files ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)f;
  return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void rm_tree(const char *dir) {
  if (dir[0] != '\0') nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* mkdtemp makes it 0700: no other user can read the keys in it. */
static int make_temp(char *buf, size_t size, tg_error *err) {
  const char *t = getenv("TMPDIR");
  snprintf(buf, size, "%s/tgraph-run.XXXXXX", t && t[0] ? t : "/tmp");
  if (mkdtemp(buf) == NULL) {
    int e = errno;
    buf[0] = '\0';
    return tg__error_set(err, -e, "cannot make a private directory for the run's keys "
                         "in %s: %s", t && t[0] ? t : "/tmp", strerror(e));
  }
  return TG_OK;
}

/* ---- key files as one line of hex: the exchange carries lines ---- */

static int file_hex(const char *path, char **out, tg_error *err) {
  char *text;
  size_t len;
  int rc = tg_read_file(path, NULL, KEYS_MAX, &text, &len, err);
  if (rc != TG_OK) return rc;
  char *h = malloc(2 * len + 1);
  if (h == NULL) {
    free(text);
    return tg__error_set(err, TG_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < len; i++) sprintf(h + 2 * i, "%02x", (unsigned char)text[i]);
  h[2 * len] = '\0';
  memset(text, 0, len);
  free(text);
  *out = h;
  return TG_OK;
}

static int hex_file(const char *hex, const char *path, tg_error *err) {
  size_t n = strlen(hex) / 2;
  char *b = malloc(n + 1);
  if (b == NULL) return tg__error_set(err, TG_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    unsigned v;
    if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
      free(b);
      return tg__error_set(err, TG_EPROTO, "rank 0 sent a malformed key");
    }
    b[i] = (char)v;
  }
  int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  ssize_t w = fd >= 0 ? write(fd, b, n) : -1;
  int e = errno;
  memset(b, 0, n);
  free(b);
  if (fd >= 0) close(fd);
  if (w != (ssize_t)n)
    return tg__error_set(err, w < 0 ? -e : TG_EIO, "cannot write '%s': %s", path,
                         strerror(e));
  return TG_OK;
}

/* ---- rank 0 ---- */

typedef struct driver {
  const tg_cluster_opts *o;
  tg__kvx *x;
  tg__rank r;
  char tmp[PATH_MAX - 64];
  char **addr; /* the workers' addresses, size - 1 of them */
} driver;

static int put_own(driver *d, tg_error *err) {
  char path[PATH_MAX], *hex = NULL, num[32], host[256];
  unsigned port = 0; /* set when rc says so; read only then */
  snprintf(path, sizeof path, "%s/keys", d->tmp);
  int rc = tg_keys_generate(path, err);
  if (rc == TG_OK) rc = tg__lifeline_listen(&port, err);
  snprintf(path, sizeof path, "%s/keys/worker/worker.key", d->tmp);
  if (rc == TG_OK && (rc = file_hex(path, &hex, err)) == TG_OK) {
    rc = tg__kvx_put(d->x, "tg.wkey", hex, err);
    memset(hex, 0, strlen(hex));
    free(hex);
  }
  snprintf(path, sizeof path, "%s/keys/worker/authorized_clients", d->tmp);
  if (rc == TG_OK && (rc = file_hex(path, &hex, err)) == TG_OK) {
    rc = tg__kvx_put(d->x, "tg.auth", hex, err);
    free(hex);
  }
  snprintf(num, sizeof num, "%u", port);
  if (rc == TG_OK) rc = tg__kvx_put(d->x, "tg.life", num, err);
  if (gethostname(host, sizeof host) != 0) snprintf(host, sizeof host, "localhost");
  host[sizeof host - 1] = '\0';
  if (rc == TG_OK) rc = tg__kvx_put(d->x, "tg.host", host, err);
  /* Where a worker on another host reaches the lifeline. */
  tg_error ignored;
  if (rc == TG_OK && tg__launch_address(d->o->address, false, path, sizeof path, &ignored) != TG_OK)
    snprintf(path, sizeof path, "%s", host);
  if (rc == TG_OK) rc = tg__kvx_put(d->x, "tg.addr", path, err);
  snprintf(num, sizeof num, "%zu", d->o->nplugins);
  if (rc == TG_OK) rc = tg__kvx_put(d->x, "tg.nplugins", num, err);
  for (size_t i = 0; rc == TG_OK && i < d->o->nplugins; i++) {
    char key[32];
    snprintf(key, sizeof key, "tg.plugin.%zu", i);
    rc = tg__kvx_put(d->x, key, d->o->plugins[i], err);
  }
  return rc;
}

/* The workers' addresses after the second fence, or the first rank that
 * could not start and why. */
static int read_workers(driver *d, tg_error *err) {
  d->addr = tg__calloc(d->r.size, sizeof *d->addr);
  if (d->addr == NULL) return tg__error_set(err, TG_ENOMEM, "out of memory");
  for (unsigned r = 1; r < d->r.size; r++) {
    /* One key, "ok ADDRESS" or "error WHY": a PMIx_Get of a key a rank
     * did not put waits for it (seconds), so none is asked for. */
    char *v = NULL;
    int rc = tg__kvx_get(d->x, r, "tg.ready", &v, err);
    if (rc != TG_OK) return rc;
    if (strncmp(v, "ok tcp://", 9) != 0) {
      rc = tg__error_set(err, TG_EWORKER, "rank %u could not start serving: %s", r,
                         strncmp(v, "error ", 6) == 0 ? v + 6 : v);
      free(v);
      return rc;
    }
    memmove(v, v + 3, strlen(v + 3) + 1);
    d->addr[r - 1] = v;
    if (d->o->verbose) fprintf(stderr, "tgraph: rank %u serves on %s\n", r, d->addr[r - 1]);
  }
  return TG_OK;
}

static int drive(driver *d, tg_registry *reg, tg_executor **out, tg_error *err) {
  int rc = make_temp(d->tmp, sizeof d->tmp, err);
  if (rc == TG_OK) rc = put_own(d, err);
  if (rc == TG_OK) rc = tg__kvx_fence(d->x, err);
  if (rc == TG_OK) rc = tg__kvx_fence(d->x, err);
  if (rc == TG_OK) rc = read_workers(d, err);
  if (rc == TG_OK) {
    tg__kvx_close(d->x);
    d->x = NULL;
    char client[PATH_MAX];
    snprintf(client, sizeof client, "%s/keys/client", d->tmp);
    tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp",
                           .connect = (const char *const *)d->addr,
                           .nconnect = d->r.size - 1, .keys_dir = client,
                           .connect_timeout = d->o->timeout,
                           .heartbeat = d->o->heartbeat};
    rc = tg_executor_new(reg, &eo, out, err);
  }
  rm_tree(d->tmp);
  for (unsigned i = 0; d->addr && i + 1 < d->r.size; i++) free(d->addr[i]);
  tg__free(d->addr);
  return rc;
}

/* ---- the other ranks ---- */

typedef struct server {
  const tg_cluster_opts *o;
  tg__kvx *x;
  tg__rank r;
  char tmp[PATH_MAX - 64];
  bool fenced;  /* the second fence is done */
  int fence_rc; /* and its outcome */
  tg_error fence_err;
  /* Set by the lifeline's thread when the driver ends. Its own block: the
   * thread holds it until the process ends, even when serving failed and
   * this struct is gone. */
  volatile sig_atomic_t *stop;
  bool watched; /* the lifeline's thread has it: never freed */
} server;

/* The second fence, with this rank's address or why it has none. Every
 * rank must get there, or rank 0 waits for it until its timeout. */
static int second_fence(server *s, const char *what, const char *val) {
  if (s->fenced) return s->fence_rc;
  s->fenced = true;
  tg_error_clear(&s->fence_err);
  char line[400];
  snprintf(line, sizeof line, "%s %s", what, val);
  for (char *p = line; *p; p++)
    if (*p == '\n') *p = ' ';
  s->fence_rc = tg__kvx_put(s->x, "tg.ready", line, &s->fence_err);
  if (s->fence_rc == TG_OK) s->fence_rc = tg__kvx_fence(s->x, &s->fence_err);
  tg__kvx_close(s->x);
  s->x = NULL;
  return s->fence_rc;
}

static void on_ready(void *ctx, const char *endpoint) {
  server *s = ctx;
  rm_tree(s->tmp); /* the keys are read: no file of them is left */
  s->tmp[0] = '\0';
  if (s->o->verbose) fprintf(stderr, "tgraph: rank %u serving on %s\n", s->r.rank, endpoint);
  if (second_fence(s, "ok", endpoint) != TG_OK)
    __atomic_store_n(s->stop, 1, __ATOMIC_RELAXED);
}

static int get(server *s, const char *key, char **out, tg_error *err) {
  return tg__kvx_get(s->x, 0, key, out, err);
}

/* Rank 0's keys into tmp/worker, its plugins into reg, the lifeline. */
static int prepare(server *s, tg_registry *reg, char *listen, size_t size, tg_error *err) {
  char path[PATH_MAX], *v = NULL, *host = NULL, *addr = NULL;
  int rc = make_temp(s->tmp, sizeof s->tmp, err);
  snprintf(path, sizeof path, "%s/worker", s->tmp);
  if (rc == TG_OK && mkdir(path, 0700) != 0)
    rc = tg__error_set(err, -errno, "cannot make '%s': %s", path, strerror(errno));
  snprintf(path, sizeof path, "%s/worker/worker.key", s->tmp);
  if (rc == TG_OK && (rc = get(s, "tg.wkey", &v, err)) == TG_OK) rc = hex_file(v, path, err);
  if (v) memset(v, 0, strlen(v));
  free(v);
  v = NULL;
  snprintf(path, sizeof path, "%s/worker/authorized_clients", s->tmp);
  if (rc == TG_OK && (rc = get(s, "tg.auth", &v, err)) == TG_OK) rc = hex_file(v, path, err);
  free(v);
  v = NULL;
  if (rc == TG_OK) rc = get(s, "tg.host", &host, err);
  if (rc == TG_OK) rc = get(s, "tg.addr", &addr, err);
  char me[256] = "";
  gethostname(me, sizeof me);
  me[sizeof me - 1] = '\0';
  bool same = rc == TG_OK && strcmp(me, host) == 0;
  char ip[256];
  if (rc == TG_OK) rc = tg__launch_address(s->o->address, same, ip, sizeof ip, err);
  if (rc == TG_OK) snprintf(listen, size, "tcp://%s:*", ip);
  if (rc == TG_OK && (rc = get(s, "tg.life", &v, err)) == TG_OK)
    rc = tg__lifeline_watch(same ? "127.0.0.1" : addr, (unsigned)atoi(v), s->stop, err);
  s->watched = rc == TG_OK;
  free(v);
  v = NULL;
  free(host);
  free(addr);
  unsigned long n = 0;
  if (rc == TG_OK && (rc = get(s, "tg.nplugins", &v, err)) == TG_OK) n = strtoul(v, NULL, 10);
  free(v);
  for (unsigned long i = 0; rc == TG_OK && i < n; i++) {
    char key[32];
    snprintf(key, sizeof key, "tg.plugin.%lu", i);
    if ((rc = get(s, key, &v, err)) == TG_OK) rc = tg_registry_load_plugin(reg, v, err);
    free(v);
  }
  return rc;
}

static unsigned cpus(void) {
  cpu_set_t set;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return 0;
  int n = CPU_COUNT(&set);
  return n > 0 ? (unsigned)n : 0;
}

static int serve(server *s, tg_registry *reg, tg_error *err) {
  char listen[300];
  int rc = tg__kvx_fence(s->x, err);
  if (rc != TG_OK) {
    tg__kvx_close(s->x);
    return rc;
  }
  rc = prepare(s, reg, listen, sizeof listen, err);
  char keys[PATH_MAX];
  snprintf(keys, sizeof keys, "%s/worker", s->tmp);
  if (rc == TG_OK) {
    tg_worker_opts wo = {.version = TG_WORKER_OPTS_V2, .listen = listen,
                         .nthreads = s->o->nthreads ? s->o->nthreads : cpus(),
                         .keys_dir = keys, .stop = s->stop, .on_ready = on_ready,
                         .ctx = s, .verbose = s->o->verbose > 1};
    rc = tg_worker_serve(reg, &wo, err);
  }
  rm_tree(s->tmp);
  if (!s->fenced) { /* never ready: tell rank 0 why */
    second_fence(s, "error", err->msg);
    return rc;
  }
  if (rc == TG_OK && s->fence_rc != TG_OK) {
    *err = s->fence_err;
    rc = s->fence_rc;
  }
  return rc;
}

/* ---- both ---- */

int tg_cluster_start(tg_registry *reg, const tg_cluster_opts *opts, tg_executor **out,
                     tg_error *err) {
  tg_error local;
  if (err == NULL) err = &local;
  tg_error_clear(err);
  if (out != NULL) *out = NULL;
  tg_cluster_opts o = {.version = TG_CLUSTER_OPTS_V1};
  if (opts != NULL) o = *opts;
  if (reg == NULL || out == NULL || o.version != TG_CLUSTER_OPTS_V1 || o.timeout < 0 ||
      o.heartbeat < 0 || (o.nplugins && o.plugins == NULL))
    return tg__error_set(err, TG_EINVAL, "tg_cluster_start: bad arguments");
  if (o.timeout == 0) o.timeout = 60;
  tg__rank r;
  int rc = tg__launch_rank(&r, err);
  if (rc != TG_OK) return rc;
  if (r.size == 1) { /* nobody to exchange with: run here */
    tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "threads",
                           .workers = o.workers};
    return tg_executor_new(reg, &eo, out, err);
  }
  tg__kvx *x;
  if ((rc = tg__kvx_open(&r, o.run_dir, o.timeout, &x, err)) != TG_OK) return rc;
  if (o.verbose)
    fprintf(stderr, "tgraph: rank %u of %u (%s), exchange through %s\n", r.rank, r.size,
            r.by, tg__kvx_kind(x));
  if (r.rank == 0) {
    driver d = {.o = &o, .x = x, .r = r};
    rc = drive(&d, reg, out, err);
    tg__kvx_close(d.x);
    return rc;
  }
  server *s = tg__calloc(1, sizeof *s);
  if (s == NULL || (s->stop = tg__calloc(1, sizeof *s->stop)) == NULL) {
    tg__free(s);
    tg__kvx_close(x);
    return tg__error_set(err, TG_ENOMEM, "out of memory");
  }
  s->o = &o;
  s->x = x;
  s->r = r;
  rc = serve(s, reg, err);
  /* Served to the end: the lifeline's thread set the flag as its last act. */
  if (!s->watched || rc == TG_OK) tg__free((void *)s->stop);
  tg__free(s);
  if (rc != TG_OK) return rc;
  /* Served until the driver ended: this rank's work is done. */
  fflush(NULL);
  exit(0);
}

int tg_cluster_rank(unsigned *rank, unsigned *size, tg_error *err) {
  tg_error local;
  if (err == NULL) err = &local;
  tg_error_clear(err);
  if (rank == NULL || size == NULL)
    return tg__error_set(err, TG_EINVAL, "tg_cluster_rank: bad arguments");
  tg__rank r;
  int rc = tg__launch_rank(&r, err);
  if (rc != TG_OK) return rc;
  *rank = r.rank;
  *size = r.size;
  return TG_OK;
}
