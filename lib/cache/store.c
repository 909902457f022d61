/* lib/cache/store.c: the public cache API (include/tgraph/cache.h): open
 * and close, lookups on the calling thread, writes handed to the writer.
 *
 * A lookup runs in a pooled LMDB read transaction and verifies what it
 * reads: an inline value's XXH3-64 checksum before decoding it, a blob
 * through blob.c. Anything wrong is a miss, counted in `corrupt`, and the
 * entry is queued for removal.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cache_internal.h"
#include "cache_memo.h"
#include "tgraph/serial.h"

#define DEFAULT_INLINE_MAX ((size_t)64 << 10)

int tg__cache_fail(tg_cache *c, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  pthread_mutex_lock(&c->err_mu);
  vsnprintf(c->errmsg, sizeof c->errmsg, fmt, ap);
  pthread_mutex_unlock(&c->err_mu);
  va_end(ap);
  return code;
}

double tg__cache_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

uint64_t tg__cache_file_reads(const tg_cache *c) {
  return atomic_load(&((tg_cache *)c)->file_reads);
}

/* mkdir -p */
static int make_path(const char *dir) {
  char buf[4096];
  size_t n = strlen(dir);
  if (n == 0 || n >= sizeof buf) return TG_EINVAL;
  memcpy(buf, dir, n + 1);
  for (char *p = buf + 1; *p; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) && errno != EEXIST) return -errno;
    *p = '/';
  }
  if (mkdir(buf, 0755) && errno != EEXIST) return -errno;
  return TG_OK;
}

static tg_cache *cache_new(const char *dir, const tg_cache_opts *opts) {
  tg_cache *c = tg__calloc(1, sizeof *c);
  if (!c) return NULL;
  c->dir = tg__malloc(strlen(dir) + 1);
  if (!c->dir) {
    tg__free(c);
    return NULL;
  }
  strcpy(c->dir, dir);
  c->pid = getpid();
  c->readonly = opts && opts->readonly;
  c->max_size = opts ? opts->max_size : 0;
  c->inline_max = opts && opts->inline_max ? opts->inline_max : DEFAULT_INLINE_MAX;
  c->compress = opts ? opts->compress : 0;
  c->min_seconds = opts && opts->min_compute_seconds != 0 ? opts->min_compute_seconds
                                                          : TG_CACHE_MIN_SECONDS_DEFAULT;
  if (c->min_seconds < 0) c->min_seconds = TG_CACHE_STORE_ALL;
  pthread_rwlockattr_t ra;
  pthread_rwlockattr_init(&ra);
  /* Writer preference, so a map resize is not starved by lookups. */
  pthread_rwlockattr_setkind_np(&ra, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
  pthread_rwlock_init(&c->maplock, &ra);
  pthread_rwlockattr_destroy(&ra);
  pthread_mutex_init(&c->err_mu, NULL);
  pthread_mutex_init(&c->pool_mu, NULL);
  pthread_mutex_init(&c->q_mu, NULL);
  pthread_mutex_init(&c->funcs_mu, NULL);
  pthread_cond_init(&c->q_cv, NULL);
  pthread_cond_init(&c->done_cv, NULL);
  return c;
}

static void cache_free(tg_cache *c) {
  tg__env_close(c);
  if (c->registered) tg__opened_remove(c->dir_dev, c->dir_ino);
  pthread_rwlock_destroy(&c->maplock);
  pthread_mutex_destroy(&c->err_mu);
  pthread_mutex_destroy(&c->pool_mu);
  pthread_mutex_destroy(&c->q_mu);
  pthread_mutex_destroy(&c->funcs_mu);
  tg__funcs_free(c);
  pthread_cond_destroy(&c->q_cv);
  pthread_cond_destroy(&c->done_cv);
  tg__free(c->pool);
  tg__free(c->warning);
  tg__free(atomic_load(&c->store_warning));
  tg__free(c->dir);
  tg__free(c);
}

int tg__cache_open_mapsize(const char *dir, const tg_cache_opts *opts,
                           size_t mapsize, tg_cache **out, tg_error *err) {
  if (out) *out = NULL;
  if (!dir || !*dir || !out)
    return tg__error_set(err, TG_EINVAL, "cache: no directory or output given");
  if (opts && (opts->version < TG_CACHE_OPTS_V1 || opts->version > TG_CACHE_OPTS_V2))
    return tg__error_set(err, TG_EINVAL, "cache: unknown options version %u",
                         (unsigned)opts->version);
  if (opts && !isfinite(opts->min_compute_seconds))
    return tg__error_set(err, TG_EINVAL, "cache: min_compute_seconds must be finite");
  /* Before anything is created: a refused directory is left as it was. */
  bool allow = opts && opts->version >= TG_CACHE_OPTS_V2 && opts->allow_network_fs;
  int rc = tg__cache_fs_check(dir, allow, err);
  if (rc) return rc;
  struct stat st;
  rc = make_path(dir);
  if (stat(dir, &st)) {
    rc = rc ? rc : -errno;
    return tg__error_set(err, rc, "cache: creating directory %s: %s", dir,
                         tg_strerror(rc));
  }
  if (!S_ISDIR(st.st_mode))
    return tg__error_set(err, TG_EEXIST, "cache: %s exists and is not a directory", dir);
  if ((rc = tg__opened_add(st.st_dev, st.st_ino)))
    return tg__error_set(err, rc, "cache: %s is already open in this process "
                         "(share that handle)", dir);
  tg_cache *c = cache_new(dir, opts);
  if (!c) {
    tg__opened_remove(st.st_dev, st.st_ino);
    return tg__error_set(err, TG_ENOMEM, "cache: out of memory");
  }
  c->dir_dev = st.st_dev, c->dir_ino = st.st_ino, c->registered = true;
  if ((rc = tg__env_open(c, mapsize, err)) ||
      (!c->readonly && (rc = tg__writer_start(c)) &&
       tg__error_set(err, rc, "cache %s: %s", dir, c->errmsg))) {
    cache_free(c);
    return rc;
  }
  /* Temporary blob files of writers that died go now, not at the next
   * clear (their locks tell, blob.c); one readdir. */
  if (!c->readonly) tg__blob_tmp_sweep(c, NULL);
  *out = c;
  return TG_OK;
}

int tg_cache_open(const char *dir, const tg_cache_opts *opts, tg_cache **out,
                  tg_error *err) {
  return tg__cache_open_mapsize(dir, opts, 0, out, err);
}

void tg_cache_close(tg_cache *c) {
  if (!c) return;
  /* In a child of fork() the environment, its locks and the writer
   * thread belong to the parent: touching them could corrupt the
   * parent's reader table, so release nothing. */
  if (c->pid != getpid()) return;
  tg__writer_stop(c);
  cache_free(c);
}

bool tg_cache_is_readonly(const tg_cache *c) { return c && c->readonly; }

const char *tg_cache_warning(const tg_cache *c) {
  if (!c) return NULL;
  char *late = atomic_load(&((tg_cache *)c)->store_warning);
  return late ? late : c->warning;
}

void tg__cache_store_failed(tg_cache *c, int code) {
  char msg[sizeof c->errmsg], buf[sizeof msg + 4300];
  if (atomic_load(&c->store_warning)) return;
  pthread_mutex_lock(&c->err_mu);
  memcpy(msg, c->errmsg, sizeof msg);
  pthread_mutex_unlock(&c->err_mu);
  snprintf(buf, sizeof buf, "cache directory %s: results are not being stored: %s (%s)",
           c->dir, tg_strerror(code), msg);
  char *w = tg__malloc(strlen(buf) + 1), *none = NULL;
  if (!w) return;
  strcpy(w, buf);
  /* Set once; readers may hold the pointer until tg_cache_close(). */
  if (!atomic_compare_exchange_strong(&c->store_warning, &none, w)) tg__free(w);
}

const char *tg_cache_errmsg(const tg_cache *c) {
  /* Copied under err_mu into this thread's buffer: a failure on another
   * thread cannot tear the text being read. */
  static _Thread_local char copy[sizeof c->errmsg];
  if (!c) return "";
  tg_cache *m = (tg_cache *)c; /* the lock is not part of the value */
  pthread_mutex_lock(&m->err_mu);
  memcpy(copy, c->errmsg, sizeof copy);
  pthread_mutex_unlock(&m->err_mu);
  return copy;
}

void tg_cache_get_counters(const tg_cache *c, tg_cache_counters *out) {
  tg_cache *m = (tg_cache *)c; /* atomics are read, not changed */
  if (!out) return;
  memset(out, 0, sizeof *out);
  if (!c) return;
  out->hits = atomic_load(&m->hits);
  out->misses = atomic_load(&m->misses);
  out->stores = atomic_load(&m->stores);
  out->corrupt = atomic_load(&m->corrupt);
  out->bytes_read = atomic_load(&m->bytes_read);
  out->bytes_written = atomic_load(&m->bytes_written);
}

int tg__cache_usable(tg_cache *c) {
  if (!c) return TG_EINVAL;
  if (c->pid == getpid()) return TG_OK;
  /* No lock: a parent's thread may have held err_mu at fork(). */
  snprintf(c->errmsg, sizeof c->errmsg,
           "cache %s: used in a child of fork(); open it again there", c->dir);
  return TG_ESTATE;
}

int tg__cache_put_ex(tg_cache *c, tg_digest key, tg_value *v,
                     const tg__cache_putx *x) {
  int rc = tg__cache_usable(c);
  if (rc) return rc;
  if (!v) return tg__cache_fail(c, TG_EINVAL, "cache: put of a NULL value");
  if (c->readonly) return TG_OK;
  tg__cache_op op = {.type = TG__OP_PUT, .key = key, .time = tg__cache_now()};
  if (x->function) {
    size_t n = strlen(x->function);
    if (!(op.function = tg__malloc(n + 1)))
      return tg__cache_fail(c, TG_ENOMEM, "cache: out of memory");
    memcpy(op.function, x->function, n + 1);
  }
  op.compute_seconds = x->compute_seconds;
  op.has_lineage = x->has_lineage;
  op.lineage = x->lineage;
  op.fnid = x->fnid;
  if ((op.tally = x->tally)) tg__cache_tally_ref(op.tally);
  op.value = tg_value_ref(v);
  if (!tg__writer_queue(c, &op)) return tg__writer_refused(c);
  tg__funcs_note(c, x->function ? x->function : "");
  return TG_OK;
}

int tg_cache_put(tg_cache *c, tg_digest key, tg_value *v, const tg_cache_meta *meta) {
  tg__cache_putx x = {meta ? meta->function : NULL, meta ? meta->compute_seconds : 0.0,
                      false, {0, 0}, {0, 0}, NULL};
  return tg__cache_put_ex(c, key, v, &x);
}

double tg__cache_min_seconds(const tg_cache *c) { return c->min_seconds; }

int tg_cache_flush(tg_cache *c) {
  int rc = tg__cache_usable(c);
  return rc ? rc : tg__writer_flush(c);
}

/* Run a synchronous op on the writer; read-only caches refuse. */
static int call(tg_cache *c, tg__cache_op *op, const char *what) {
  int rc = tg__cache_usable(c);
  if (rc) return rc;
  if (c->readonly)
    return tg__cache_fail(c, TG_EACCES, "cache %s is read-only: cannot %s", c->dir,
                          what);
  int res = TG_OK;
  op->result = &res;
  return tg__writer_call(c, op);
}

int tg_cache_remove(tg_cache *c, tg_digest key) {
  tg__cache_op op = {.type = TG__OP_REMOVE, .key = key};
  int rc = call(c, &op, "remove an entry");
  if (rc == TG_ENOTFOUND) {
    char hex[33];
    tg_digest_hex(key, hex);
    tg__cache_fail(c, rc, "cache: no entry for key %s", hex);
  }
  return rc;
}

int tg_cache_clear(tg_cache *c) {
  tg__cache_op op = {.type = TG__OP_CLEAR};
  int rc = call(c, &op, "clear");
  if (rc == TG_OK) tg__funcs_forget(c);
  return rc;
}

int tg_cache_prune(tg_cache *c, uint64_t max_size, uint64_t *removed) {
  uint64_t n = 0;
  tg__cache_op op = {.type = TG__OP_PRUNE, .max_size = max_size, .removed = &n};
  int rc = call(c, &op, "prune");
  if (removed) *removed = n;
  return rc;
}
