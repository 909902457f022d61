/* lib/launch/cluster.c: tg_cluster_start (tgraph/cluster.h): rank 0
 * makes the run's keys and drives; the other ranks serve it.
 *
 * The exchange has two fences:
 *   1. rank 0 puts the workers' keys (made in memory: no file of them is
 *      written anywhere), its lifeline port and host, and the plugins to
 *      load; every rank waits for them
 *   2. every other rank puts the address it listens on (or why it could
 *      not start); rank 0 reads them and connects a tcp executor
 * after which every rank leaves the exchange (PMIx_Finalize): the run
 * itself needs nothing more from the launcher. */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../internal.h"
#include "launch.h"
#include "wire/proto.h"
#include "worker/worker.h"
#include "sched/sched_internal.h"
#include "tgraph/cluster.h"
#include "tgraph/plugin.h"
#include "tgraph/remote.h"

/* ---- rank 0 ---- */

typedef struct driver {
  const tg_cluster_opts *o;
  tg__kvx *x;
  tg__rank r;
  tg__keyset keys; /* the run's: wiped at the end */
  char **addr; /* the workers' addresses, size - 1 of them */
} driver;

static int put_own(driver *d, tg_error *err) {
  char path[300], num[32], host[256];
  unsigned port = 0; /* set when rc says so; read only then */
  int rc = tg__keys_make(&d->keys, err);
  if (rc == TG_OK) rc = tg__lifeline_listen(&port, err);
  /* The workers' secret key and the one client key they accept. */
  if (rc == TG_OK) rc = tg__kvx_put(d->x, "tg.wkey", d->keys.worker.sec, err);
  if (rc == TG_OK) rc = tg__kvx_put(d->x, "tg.cpub", d->keys.client.pub, err);
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
  int rc = put_own(d, err);
  if (rc == TG_OK) rc = tg__kvx_fence(d->x, err);
  if (rc == TG_OK) rc = tg__kvx_fence(d->x, err);
  if (rc == TG_OK) rc = read_workers(d, err);
  if (rc == TG_OK) {
    tg__kvx_close(d->x);
    d->x = NULL;
    tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp",
                           .connect = (const char *const *)d->addr,
                           .nconnect = d->r.size - 1,
                           .connect_timeout = d->o->timeout,
                           .heartbeat = d->o->heartbeat};
    rc = tg__executor_create(reg, &eo, &d->keys, out, err);
  }
  explicit_bzero(&d->keys, sizeof d->keys);
  for (unsigned i = 0; d->addr && i + 1 < d->r.size; i++) free(d->addr[i]);
  tg__free(d->addr);
  return rc;
}

/* ---- the other ranks ---- */

typedef struct server {
  const tg_cluster_opts *o;
  tg__kvx *x;
  tg__rank r;
  tg__keyset keys; /* rank 0's for the workers: wiped when serving ends */
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
  if (s->o->verbose) fprintf(stderr, "tgraph: rank %u serving on %s\n", s->r.rank, endpoint);
  if (second_fence(s, "ok", endpoint) != TG_OK)
    __atomic_store_n(s->stop, 1, __ATOMIC_RELAXED);
}

static int get(server *s, const char *key, char **out, tg_error *err) {
  return tg__kvx_get(s->x, 0, key, out, err);
}

/* Rank 0's keys into s->keys, its plugins into reg, the lifeline. */
static int prepare(server *s, tg_registry *reg, char *listen, size_t size, tg_error *err) {
  char *v = NULL, *cpub = NULL, *host = NULL, *addr = NULL;
  int rc = get(s, "tg.wkey", &v, err);
  if (rc == TG_OK) rc = get(s, "tg.cpub", &cpub, err);
  tg_error why;
  if (rc == TG_OK && tg__keys_for_worker(v, cpub, &s->keys, &why) != TG_OK)
    rc = tg__error_set(err, TG_EPROTO, "rank 0 sent a malformed key (%s)", why.msg);
  if (v) explicit_bzero(v, strlen(v));
  free(v);
  free(cpub);
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
  if (rc == TG_OK) {
    tg_worker_opts wo = {.version = TG_WORKER_OPTS_V2, .listen = listen,
                         .nthreads = s->o->nthreads ? s->o->nthreads : cpus(),
                         .stop = s->stop, .on_ready = on_ready,
                         .ctx = s, .verbose = s->o->verbose > 1};
    rc = tg__worker_serve_keys(reg, &wo, &s->keys, err);
  }
  explicit_bzero(&s->keys, sizeof s->keys);
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
  if (reg == NULL || out == NULL || o.version != TG_CLUSTER_OPTS_V1 || !(o.timeout >= 0) ||
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
