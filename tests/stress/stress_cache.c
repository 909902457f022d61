/* tests/stress/stress_cache.c: one cache used by many threads at once while
 * its writer thread commits: tg_cache_get/contains/put racing flushes,
 * prunes, removals, clears and listings, with exact expectations: a hit
 * always returns the value stored under that key; once the threads are
 * done and the queue flushed, every key put is there with its value and
 * the counters add up. Values are small ints and strings (inline) and
 * byte strings above inline_max (blob files, several keys sharing one).
 *
 * Usage: stress_cache [SCALE]   (SCALE multiplies the sizes; default 1,
 * sized for a ThreadSanitizer debug build on two cores). */
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "../test_funcs.h"
#include "check.h"
#include "tgraph/cache.h"
#include "tgraph/executor.h"

#define BLOB_LEN 600
#define INLINE_MAX 256

static char dir[4096];
static tg_cache *cache;
static int nkeys;
static tg_digest *keys;
static atomic_long gets_made;   /* tg_cache_get calls, for the counters */
static atomic_long puts_made;   /* tg_cache_put calls that returned TG_OK */

/* ---- keys and values ------------------------------------------------------- */

static tg_digest key_for(int k) {
  tg_value *v = tg_int((int64_t)k * 1000003 + 17);
  tg_digest d = tg_value_hash(v);
  tg_value_unref(v);
  return d;
}

/* The value of key k: an int, a string, or bytes shared by keys k % 30. */
static tg_value *value_for(int k) {
  if (k % 3 == 0) return tg_int((int64_t)k * 7919);
  if (k % 3 == 1) {
    char b[64];
    snprintf(b, sizeof b, "value %d of the cache stress test", k);
    return tg_str_c(b);
  }
  unsigned char b[BLOB_LEN];
  for (int i = 0; i < BLOB_LEN; i++) b[i] = (unsigned char)((k % 30) * 31 + i);
  return tg_bytes(b, sizeof b);
}

/* Index of key d, or -1. */
static int index_of(tg_digest d) {
  for (int k = 0; k < nkeys; k++)
    if (tg_digest_equal(keys[k], d)) return k;
  return -1;
}

static void put(int k) {
  tg_value *v = value_for(k);
  tg_cache_meta meta = {"stress", 0.25};
  int rc = tg_cache_put(cache, keys[k], v, &meta);
  if (CHECK_MSG(rc == TG_OK, "put %d: %s: %s", k, tg_err_name(rc), tg_cache_errmsg(cache)))
    atomic_fetch_add(&puts_made, 1);
  tg_value_unref(v);
}

/* Get key k: TG_OK with exactly its value, or a miss. strict: must hit. */
static int get(int k, bool strict) {
  tg_value *v = NULL;
  int rc = tg_cache_get(cache, keys[k], &v);
  atomic_fetch_add(&gets_made, 1);
  if (rc == TG_OK) {
    tg_value *want = value_for(k);
    CHECK_MSG(tg_value_equal(v, want), "key %d: a hit with the wrong value", k);
    tg_value_unref(want);
  } else {
    CHECK_MSG(rc == TG_ENOTFOUND, "get %d: %s", k, tg_err_name(rc));
    CHECK(v == NULL);
    if (strict) CHECK_MSG(false, "key %d: a miss where a hit was due", k);
  }
  tg_value_unref(v);
  return rc;
}

/* ---- threads ----------------------------------------------------------------- */

typedef struct worker {
  int t;
  int reps;
  uint64_t seed;
  atomic_int *stop; /* set when the writers are done */
  bool strict;      /* nothing is removed meanwhile */
} worker;

static void *putter(void *arg) { /* phase 1: its share of the keys */
  worker *w = arg;
  for (int k = w->t; k < nkeys; k += 2) {
    put(k);
    if (k % 50 == w->t) CHECK_EQ_INT(tg_cache_flush(cache), TG_OK);
  }
  return NULL;
}

static void *putter_all(void *arg) { /* phase 2: every key, in a random order */
  worker *w = arg;
  uint64_t s = w->seed;
  for (int i = 0; i < w->reps; i++) put((int)tgt_below(&s, (uint64_t)nkeys));
  return NULL;
}

static void *reader(void *arg) {
  worker *w = arg;
  uint64_t s = w->seed;
  for (int i = 0; i < w->reps || !atomic_load(w->stop); i++) {
    int k = (int)tgt_below(&s, (uint64_t)nkeys);
    /* Nothing is removed in a strict phase: once seen, an entry stays. */
    bool present = tg_cache_contains(cache, keys[k]);
    int rc = get(k, w->strict && present);
    if (w->strict && rc == TG_OK) CHECK(tg_cache_contains(cache, keys[k]));
    if (i > 100000) break;
  }
  return NULL;
}

static void *flusher(void *arg) {
  worker *w = arg;
  while (!atomic_load(w->stop)) {
    int rc = tg_cache_flush(cache);
    CHECK_MSG(rc == TG_OK, "flush: %s: %s", tg_err_name(rc), tg_cache_errmsg(cache));
    tgt_sleep_ms(2);
  }
  return NULL;
}

typedef struct listing {
  uint64_t n;
  int bad;
} listing;

static int list_cb(void *ctx, const tg_cache_entry_info *e) {
  listing *l = ctx;
  l->n++;
  int k = index_of(e->key);
  if (k < 0 || strcmp(e->function, "stress") != 0 || e->compute_seconds != 0.25 ||
      e->in_blob != (k % 3 == 2) || e->size == 0 || e->last_used < e->created)
    l->bad++;
  return 0;
}

/* Lists and counts entries; strict: their number never drops. */
static void *lister(void *arg) {
  worker *w = arg;
  uint64_t last = 0;
  while (!atomic_load(w->stop)) {
    listing l = {0, 0};
    int rc = tg_cache_list(cache, list_cb, &l);
    CHECK_MSG(rc == TG_OK, "list: %s", tg_err_name(rc));
    CHECK_EQ_INT(l.bad, 0);
    CHECK_MSG(l.n <= (uint64_t)nkeys, "%llu entries listed", (unsigned long long)l.n);
    if (w->strict) CHECK_MSG(l.n >= last, "entries went from %llu to %llu",
                             (unsigned long long)last, (unsigned long long)l.n);
    last = l.n;
    tg_cache_info info;
    CHECK_EQ_INT(tg_cache_get_info(cache, &info), TG_OK);
    CHECK_MSG(info.entries <= (uint64_t)nkeys, "%llu entries",
              (unsigned long long)info.entries);
    tgt_sleep_ms(3);
  }
  return NULL;
}

/* Phase 2's removers: prune to a limit, remove keys, clear once. */
static void *remover(void *arg) {
  worker *w = arg;
  uint64_t s = w->seed;
  for (int i = 0; !atomic_load(w->stop); i++) {
    uint64_t removed = 0;
    int rc;
    if (w->t == 0) {
      rc = tg_cache_prune(cache, (uint64_t)nkeys * BLOB_LEN / 8, &removed);
      CHECK_MSG(rc == TG_OK, "prune: %s: %s", tg_err_name(rc), tg_cache_errmsg(cache));
    } else if (i == 5) {
      CHECK_EQ_INT(tg_cache_clear(cache), TG_OK);
    } else {
      rc = tg_cache_remove(cache, keys[tgt_below(&s, (uint64_t)nkeys)]);
      CHECK_MSG(rc == TG_OK || rc == TG_ENOTFOUND, "remove: %s", tg_err_name(rc));
    }
    tgt_sleep_ms(1);
  }
  return NULL;
}

typedef void *(*thread_fn)(void *);

typedef struct crew {
  pthread_t th[16];
  worker w[16];
  int n;
} crew;

static void hire(crew *c, thread_fn fn, int t, int reps, atomic_int *stop, bool strict) {
  worker *w = &c->w[c->n];
  *w = (worker){t, reps, 1000 + (uint64_t)c->n * 7919, stop, strict};
  CHECK_EQ_INT(pthread_create(&c->th[c->n], NULL, fn, w), 0);
  c->n++;
}

static void join(crew *c, int from, int to) {
  for (int i = from; i < to; i++) pthread_join(c->th[i], NULL);
}

/* ---- cases ----------------------------------------------------------------------- */

static void check_counters(void) {
  tg_cache_counters n;
  tg_cache_get_counters(cache, &n);
  CHECK_EQ_INT(n.hits + n.misses, atomic_load(&gets_made));
  CHECK_EQ_INT(n.stores, atomic_load(&puts_made));
}

/* Every key there with its value (after the queue is flushed). */
static void check_all_present(void) {
  CHECK_EQ_INT(tg_cache_flush(cache), TG_OK);
  for (int k = 0; k < nkeys; k++) {
    CHECK_MSG(tg_cache_contains(cache, keys[k]), "key %d missing", k);
    get(k, true);
  }
  tg_cache_info info;
  CHECK_EQ_INT(tg_cache_get_info(cache, &info), TG_OK);
  CHECK_EQ_INT(info.entries, nkeys);
  listing l = {0, 0};
  CHECK_EQ_INT(tg_cache_list(cache, list_cb, &l), TG_OK);
  CHECK_EQ_INT(l.n, nkeys);
  CHECK_EQ_INT(l.bad, 0);
}

/* Puts split over two threads, racing readers, a flusher and a lister;
 * nothing is removed, so a key seen once must stay readable. */
static void writers_and_readers(void) {
  atomic_int stop = 0, readers_stop = 0;
  crew c = {.n = 0};
  hire(&c, putter, 0, 0, &stop, true);
  hire(&c, putter, 1, 0, &stop, true);
  hire(&c, reader, 0, 200, &readers_stop, true);
  hire(&c, reader, 1, 200, &readers_stop, true);
  hire(&c, flusher, 0, 0, &stop, true);
  hire(&c, lister, 0, 0, &stop, true);
  join(&c, 0, 2);
  atomic_store(&readers_stop, 1);
  join(&c, 2, 4);
  atomic_store(&stop, 1);
  join(&c, 4, c.n);
  check_all_present();
  check_counters();
  tg_cache_counters n;
  tg_cache_get_counters(cache, &n);
  CHECK_EQ_INT(n.corrupt, 0);
}

/* Puts of every key from two threads (the same keys at once), racing
 * readers, prunes, removals and a clear: any hit is exact. Afterwards the
 * cache is within the prune limit, and after putting everything again
 * every key is there. */
static void prune_remove_clear(void) {
  atomic_int stop = 0, rstop = 0;
  crew c = {.n = 0};
  int reps = 2 * nkeys;
  hire(&c, putter_all, 0, reps, &stop, false);
  hire(&c, putter_all, 1, reps, &stop, false);
  hire(&c, reader, 0, 300, &stop, false);
  hire(&c, reader, 1, 300, &stop, false);
  hire(&c, remover, 0, 0, &rstop, false);
  hire(&c, remover, 1, 0, &rstop, false);
  hire(&c, flusher, 0, 0, &rstop, false);
  hire(&c, lister, 0, 0, &rstop, false);
  join(&c, 0, 2);
  atomic_store(&stop, 1);
  join(&c, 2, 4);
  atomic_store(&rstop, 1);
  join(&c, 4, c.n);
  CHECK_EQ_INT(tg_cache_flush(cache), TG_OK);
  uint64_t limit = (uint64_t)nkeys * BLOB_LEN / 8, removed = 0;
  CHECK_EQ_INT(tg_cache_prune(cache, limit, &removed), TG_OK);
  tg_cache_info info;
  CHECK_EQ_INT(tg_cache_get_info(cache, &info), TG_OK);
  CHECK_MSG(info.bytes <= limit, "%llu bytes over the limit of %llu",
            (unsigned long long)info.bytes, (unsigned long long)limit);
  listing l = {0, 0};
  CHECK_EQ_INT(tg_cache_list(cache, list_cb, &l), TG_OK);
  CHECK_EQ_INT(l.n, info.entries);
  CHECK_EQ_INT(l.bad, 0);
  for (int k = 0; k < nkeys; k++) get(k, false);
  for (int k = 0; k < nkeys; k++) put(k);
  check_all_present();
  check_counters();
  tg_cache_counters n;
  tg_cache_get_counters(cache, &n);
  fprintf(stderr, "     %llu hits, %llu misses, %llu corrupt, %llu stores\n",
          (unsigned long long)n.hits, (unsigned long long)n.misses,
          (unsigned long long)n.corrupt, (unsigned long long)n.stores);
}

/* Computes on a threads executor with the cache, racing direct gets:
 * every result exact, computed or not. */
typedef struct cache_compute {
  tg_executor *ex;
  tg_registry *reg;
  int t, reps;
} cache_compute;

static void *compute_with_cache(void *arg) {
  cache_compute *cc = arg;
  tg_graph *g = NULL;
  if (!CHECK(tg_graph_new(cc->reg, &g) == TG_OK)) return NULL;
  /* cache = 1: stored however quick they are */
  tg_node_opts no = {TG_NODE_OPTS_V1, NULL, -1, 1, 0, 0};
  tg_node x = TG_NODE_NONE, outs[40];
  tg_arg a = tg_arg_value(tg_int(cc->t * 1000));
  CHECK_EQ_INT(tg_graph_add(g, "inc", &a, 1, &no, &x), TG_OK);
  for (int i = 0; i < 40; i++) {
    tg_arg b[2] = {tg_arg_node(x), tg_arg_value(tg_int(i))};
    CHECK_EQ_INT(tg_graph_add(g, "add", b, 2, &no, &x), TG_OK);
    outs[i] = x;
  }
  for (int r = 0; r < cc->reps; r++) {
    tg_value *res[40];
    tg_compute_opts o = tgt_opts(NULL, 0, NULL);
    o.executor = cc->ex;
    o.cache = cache;
    int rc = tg_compute(g, outs, 40, &o, res);
    if (!CHECK_MSG(rc == TG_OK, "compute: %s", tg_graph_errmsg(g))) break;
    int64_t want = cc->t * 1000 + 1;
    for (int i = 0; i < 40; i++) {
      want += i;
      CHECK_EQ_INT_AT(tg_value_int(res[i]), want, "thread %d output %d", cc->t, i);
      tg_value_unref(res[i]);
    }
  }
  tg_graph_free(g);
  return NULL;
}

static void computes_with_cache(void) {
  tg_registry *reg = tgt_registry_new();
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "threads", .workers = 2,
                         .cache = cache};
  tg_executor *ex = NULL;
  if (!CHECK(reg && tg_executor_new(reg, &eo, &ex, NULL) == TG_OK)) return;
  atomic_int stop = 0;
  crew c = {.n = 0};
  pthread_t th[3];
  cache_compute cc[3];
  for (int t = 0; t < 3; t++) {
    cc[t] = (cache_compute){ex, reg, t, 30 * chk.scale};
    CHECK_EQ_INT(pthread_create(&th[t], NULL, compute_with_cache, &cc[t]), 0);
  }
  hire(&c, reader, 0, 100, &stop, false);
  for (int t = 0; t < 3; t++) pthread_join(th[t], NULL);
  atomic_store(&stop, 1);
  join(&c, 0, c.n);
  CHECK_EQ_INT(tg_cache_flush(cache), TG_OK);
  tg_executor_free(ex);
  tg_registry_free(reg);
}

/* ---- setup ------------------------------------------------------------------------ */

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st;
  (void)flag;
  (void)ftw;
  return remove(path);
}

int main(int argc, char **argv) {
  chk_init(argc, argv);
  const char *tmp = getenv("TMPDIR");
  snprintf(dir, sizeof dir, "%s/tg-stress-cache-XXXXXX", tmp && *tmp ? tmp : "/tmp");
  if (!CHECK(mkdtemp(dir) != NULL)) return chk_finish("stress_cache");
  nkeys = 600 * chk.scale;
  keys = calloc((size_t)nkeys, sizeof *keys);
  for (int k = 0; k < nkeys; k++) keys[k] = key_for(k);
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V1, .inline_max = INLINE_MAX};
  tg_error err;
  int rc = tg_cache_open(dir, &o, &cache, &err);
  if (CHECK_MSG(rc == TG_OK, "open %s: %s", dir, err.msg)) {
    CHK_RUN(writers_and_readers);
    CHK_RUN(prune_remove_clear);
    CHK_RUN(computes_with_cache);
    tg_cache_close(cache);
  }
  free(keys);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return chk_finish("stress_cache");
}
