/* tests/bench/bench_cache.c: the memoizing cache against this machine's
 * own limits, measured in the same run: raw XXH3-128 throughput, a bare
 * LMDB read transaction + lookup, and bare LMDB commits under each sync
 * setting (the cost the cache's MDB_NOMETASYNC choice trades against).
 * Each figure is the median of REPS runs. Prints a markdown table; exits
 * non-zero if any call fails or a value read back differs.
 *
 * Figures:
 *   hit           tg_cache_get of a small int, us per hit (target <= 5)
 *   put batch     N puts of small values + one flush, us per put
 *   put + flush   one put and its flush (one commit), us
 *   key+hit 1MB   tg_value_hash of a 1 MB array argument + tg__merkle_key
 *                 + tg_cache_get, us (target <= 100)
 *   key+hit 100MB the same with a 100 MB argument, ms (target <= 10)
 *   blob hit 1MB  tg_cache_get of a 1 MB array stored in a blob file
 *                 (mapped, every byte checked against its entry), us
 *   blob hit 100MB the same with a 100 MB array, ms
 *
 * Usage: bench_cache [scale]   scale 1 (default); 0.01 is a quick smoke
 *                              run (1 MB instead of 100 MB, fewer calls). */
#include <ftw.h>
#include <lmdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "memo/key.h"
#include "workloads.h"
#include "tgraph/cache.h"

#define REPS 7

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void check(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "bench_cache: %s\n", what);
    exit(1);
  }
}

static volatile uint64_t sink;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static tg_digest key_of(uint64_t i) { return (tg_digest){i, 0xbe4c4}; }

static tg_value *array_of(size_t nbytes) {
  int64_t n = (int64_t)(nbytes / 8);
  tg_value *a = tg_ndarray_new(TG_DT_F64, 1, &n);
  double *d = tg_ndarray_data_mut(a);
  for (int64_t i = 0; i < n; i++) d[i] = (double)i;
  return a;
}

/* ---- baselines --------------------------------------------------------------- */

static double xxh3_gbs(tg_value *arr) {
  size_t n = tg_ndarray_nbytes(arr);
  double t = now();
  XXH128_hash_t h = XXH3_128bits(tg_ndarray_data(arr), n);
  t = now() - t;
  sink += h.low64;
  return (double)n / t / 1e9;
}

/* A bare LMDB environment: read txn + get, and commits per sync flag. */
static double lmdb_get_us(const char *dir, long calls) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  uint64_t k = 7, v = 42;
  check(!mdb_env_create(&env) && !mdb_env_open(env, dir, MDB_NOTLS, 0644), "raw env");
  check(!mdb_txn_begin(env, NULL, 0, &txn) && !mdb_dbi_open(txn, NULL, 0, &dbi), "raw db");
  MDB_val kv = {8, &k}, vv = {8, &v};
  check(!mdb_put(txn, dbi, &kv, &vv, 0) && !mdb_txn_commit(txn), "raw put");
  double t = now();
  for (long i = 0; i < calls; i++) {
    check(!mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), "raw read txn");
    check(!mdb_get(txn, dbi, &kv, &vv), "raw get");
    sink += *(uint64_t *)vv.mv_data;
    mdb_txn_abort(txn);
  }
  t = now() - t;
  mdb_env_close(env);
  return t / (double)calls * 1e6;
}

static double lmdb_commit_us(const char *dir, unsigned flags, long commits) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  check(!mdb_env_create(&env) && !mdb_env_open(env, dir, flags, 0644), "raw env");
  double t = now();
  for (long i = 0; i < commits; i++) {
    uint64_t k = (uint64_t)i, v = (uint64_t)i;
    MDB_val kv = {8, &k}, vv = {8, &v};
    check(!mdb_txn_begin(env, NULL, 0, &txn) && !mdb_dbi_open(txn, NULL, 0, &dbi) &&
              !mdb_put(txn, dbi, &kv, &vv, 0) && !mdb_txn_commit(txn),
          "raw commit");
  }
  t = now() - t;
  mdb_env_close(env);
  return t / (double)commits * 1e6;
}

/* ---- the cache ------------------------------------------------------------------- */

static double hit_us(tg_cache *c, long calls) {
  tg_value *v = tg_int(12345), *got;
  check(!tg_cache_put(c, key_of(1), v, NULL) && !tg_cache_flush(c), "put");
  tg_value_unref(v);
  double t = now();
  for (long i = 0; i < calls; i++) {
    check(tg_cache_get(c, key_of(1), &got) == TG_OK, "hit");
    sink += (uint64_t)tg_value_int(got);
    tg_value_unref(got);
  }
  return (now() - t) / (double)calls * 1e6;
}

static double put_batch_us(tg_cache *c, long n, uint64_t base) {
  double t = now();
  for (long i = 0; i < n; i++) {
    tg_value *v = tg_list_of(2, tg_int(i), tg_str_c("a small result"));
    check(!tg_cache_put(c, key_of(base + (uint64_t)i), v, NULL), "put");
    tg_value_unref(v);
  }
  check(!tg_cache_flush(c), "flush");
  return (now() - t) / (double)n * 1e6;
}

static double put_flush_us(tg_cache *c, uint64_t k) {
  tg_value *v = tg_int(7);
  double t = now();
  check(!tg_cache_put(c, key_of(k), v, NULL) && !tg_cache_flush(c), "put+flush");
  t = now() - t;
  tg_value_unref(v);
  return t * 1e6;
}

/* The scheduler's path for a node with one big constant argument: hash
 * the argument, derive the key, look it up. Seconds. */
static double keyed_hit(tg_cache *c, tg_value *arg) {
  tg__key_fn fn = {"bench.f", "1", NULL};
  double t = now();
  tg__key_arg a = {TG__KEY_CONST, tg_value_hash(arg), 0, NULL, 0};
  tg_digest k = tg__merkle_key(&fn, &a, 1);
  tg_value *got;
  int rc = tg_cache_get(c, k, &got);
  t = now() - t;
  check(rc == TG_OK && tg_value_int(got) == 99, "keyed hit");
  tg_value_unref(got);
  return t;
}

static void store_keyed(tg_cache *c, tg_value *arg) {
  tg__key_fn fn = {"bench.f", "1", NULL};
  tg__key_arg a = {TG__KEY_CONST, tg_value_hash(arg), 0, NULL, 0};
  tg_value *v = tg_int(99);
  check(!tg_cache_put(c, tg__merkle_key(&fn, &a, 1), v, NULL) && !tg_cache_flush(c),
        "keyed put");
  tg_value_unref(v);
}

/* Store arr under key k, then time `calls` hits on it. Seconds per hit. */
static double blob_hit(tg_cache *c, tg_value *arr, uint64_t k, long calls) {
  tg_value *got;
  check(!tg_cache_put(c, key_of(k), arr, NULL) && !tg_cache_flush(c), "blob put");
  double t = now();
  for (long i = 0; i < calls; i++) {
    check(tg_cache_get(c, key_of(k), &got) == TG_OK &&
              tg_ndarray_nbytes(got) == tg_ndarray_nbytes(arr),
          "blob hit");
    sink += (uint64_t)((const double *)tg_ndarray_data(got))[1];
    tg_value_unref(got);
  }
  return (now() - t) / (double)calls;
}

static void row(const char *what, double v, const char *unit, const char *target) {
  printf("| %-36s | %12.3f | %-5s | %-8s |\n", what, v, unit, target);
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  if (scale <= 0 || scale > 1) scale = 1.0;
  long calls = (long)(100000 * scale) + 100, batch = (long)(10000 * scale) + 50;
  size_t big = (size_t)(100e6 * scale);
  char dir[64] = "/tmp/bench_cache.XXXXXX", sub[128];
  check(mkdtemp(dir) != NULL, "mkdtemp");
  tg_value *mb1 = array_of(1000000), *mb100 = array_of(big);

  double r[13][REPS];
  for (int i = 0; i < REPS; i++) {
    snprintf(sub, sizeof sub, "%s/raw%d", dir, i);
    mkdir(sub, 0755);
    r[0][i] = xxh3_gbs(mb100);
    r[1][i] = lmdb_get_us(sub, calls);
    const unsigned modes[3] = {0, MDB_NOMETASYNC, MDB_NOSYNC};
    for (int m = 0; m < 3; m++) {
      snprintf(sub, sizeof sub, "%s/raw%d.%d", dir, i, m);
      mkdir(sub, 0755);
      r[2 + m][i] = lmdb_commit_us(sub, modes[m], 20 + (long)(50 * scale));
    }
    snprintf(sub, sizeof sub, "%s/cache%d", dir, i);
    tg_cache *c = NULL;
    check(!tg_cache_open(sub, NULL, &c, NULL), "open");
    r[5][i] = hit_us(c, calls);
    r[6][i] = put_batch_us(c, batch, 1000);
    r[7][i] = put_flush_us(c, 5);
    store_keyed(c, mb1);
    store_keyed(c, mb100);
    r[8][i] = keyed_hit(c, mb1) * 1e6;
    r[9][i] = keyed_hit(c, mb100) * 1e3;
    r[10][i] = (double)tg_ndarray_nbytes(mb100) / 1e6;
    r[11][i] = blob_hit(c, mb1, 11, 200) * 1e6;
    r[12][i] = blob_hit(c, mb100, 12, 5) * 1e3;
    tg_cache_close(c);
  }
  printf("| figure (median of %d)                | value        | unit  | target   |\n", REPS);
  printf("|--------------------------------------|--------------|-------|----------|\n");
  row("baseline: raw XXH3-128", bench_median(r[0], REPS), "GB/s", "");
  row("baseline: bare LMDB read txn + get", bench_median(r[1], REPS), "us", "");
  row("baseline: LMDB commit, full sync", bench_median(r[2], REPS), "us", "");
  row("baseline: LMDB commit, NOMETASYNC", bench_median(r[3], REPS), "us", "");
  row("baseline: LMDB commit, NOSYNC", bench_median(r[4], REPS), "us", "");
  row("tg_cache_get hit, small int", bench_median(r[5], REPS), "us", "<= 5");
  row("put batch + flush, per put", bench_median(r[6], REPS), "us", "");
  row("one put + flush (one commit)", bench_median(r[7], REPS), "us", "");
  row("key (hash 1 MB arg) + hit", bench_median(r[8], REPS), "us", "<= 100");
  char what[64];
  snprintf(what, sizeof what, "key (hash %.0f MB arg) + hit", bench_median(r[10], REPS));
  row(what, bench_median(r[9], REPS), "ms", "<= 10");
  row("blob hit, 1 MB array", bench_median(r[11], REPS), "us", "");
  snprintf(what, sizeof what, "blob hit, %.0f MB array", bench_median(r[10], REPS));
  row(what, bench_median(r[12], REPS), "ms", "");

  tg_value_unref(mb1);
  tg_value_unref(mb100);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  return 0;
}
