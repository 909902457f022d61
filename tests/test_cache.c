/* tests/test_cache.c: the memoizing cache: round trips of every value
 * type (large arrays zero-copy from blob files), misses, Merkle key golden
 * vectors, corruption of blobs and of LMDB records, read-only directories,
 * LRU pruning, map growth, several processes at once, kill -9 of a
 * writer at random moments, and the file hash fast path. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <lmdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cache/cache_internal.h"
#include "memo/key.h"
#include "tgraph/cache.h"
#include "tgraph/value.h"

/* ---- helpers ------------------------------------------------------------ */

static char dir[256];

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static void make_dir(void) {
  strcpy(dir, "/tmp/tgcache.XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
}

static void remove_dir(void) {
  if (dir[0]) {
    if (fork() == 0) { /* chmod back what a test made read-only */
      execlp("chmod", "chmod", "-R", "u+w", dir, (char *)NULL);
      _exit(1);
    }
    wait(NULL);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
  }
}

/* No Criterion .timeout: a hang then shows as the suite's (meson's)
 * timeout, which the test script retries once alone (under ASan a fork can
 * copy an allocator lock held by a thread the library does not own; see
 * scripts/run-tests.sh). */
TestSuite(cache, .init = make_dir, .fini = remove_dir);

static tg_digest key_of(uint64_t i) {
  return (tg_digest){i, UINT64_C(0x7467636163686531)};
}

static tg_value *big_array(uint64_t i, int64_t n) {
  tg_value *a = tg_ndarray_new(TG_DT_F64, 1, &n);
  double *d = tg_ndarray_data_mut(a);
  for (int64_t j = 0; j < n; j++) d[j] = (double)i + (double)j * 0.5;
  return a;
}

/* A value derived from i alone, so any entry can be checked. Some are
 * large arrays (blob files). */
static tg_value *value_of(uint64_t i) {
  char s[64];
  snprintf(s, sizeof s, "value %" PRIu64, i);
  switch (i % 6) {
    case 0:
      return tg_int((int64_t)i * 7919);
    case 1:
      return tg_str_c(s);
    case 2:
      return tg_list_of(3, tg_int((int64_t)i), tg_str_c(s), tg_float((double)i / 3));
    case 3: {
      tg_value *m = tg_map_new(2);
      tg_map_put_c(m, "i", tg_int((int64_t)i));
      tg_map_put_c(m, "s", tg_bytes(s, strlen(s)));
      return m;
    }
    case 4:
      return big_array(i, 12000 + (int64_t)(i % 7)); /* ~96 KB: a blob */
    default:
      return tg_bytes(s, strlen(s));
  }
}

static void check_value(tg_value *got, uint64_t i) {
  tg_value *want = value_of(i);
  cr_assert(tg_value_equal(got, want), "value of key %" PRIu64 " differs", i);
  tg_value_unref(want);
}

static tg_cache *open_cache(const tg_cache_opts *opts) {
  tg_cache *c = NULL;
  tg_error err;
  int rc = tg_cache_open(dir, opts, &c, &err);
  cr_assert_eq(rc, TG_OK, "open: %s", err.msg);
  return c;
}

static void put_flush(tg_cache *c, uint64_t i) {
  tg_value *v = value_of(i);
  cr_assert_eq(tg_cache_put(c, key_of(i), v, NULL), TG_OK);
  tg_value_unref(v);
  cr_assert_eq(tg_cache_flush(c), TG_OK, "%s", tg_cache_errmsg(c));
}

static void counters(tg_cache *c, tg_cache_counters *k) { tg_cache_get_counters(c, k); }

/* The one file under DIR/blobs (fails unless exactly one). */
static void blob_file(char *out, size_t n) {
  char sub[300];
  int found = 0;
  snprintf(sub, sizeof sub, "%s/blobs", dir);
  DIR *d = opendir(sub);
  cr_assert_not_null(d);
  struct dirent *e, *f;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char p[600];
    snprintf(p, sizeof p, "%s/%s", sub, e->d_name);
    DIR *d2 = opendir(p);
    while (d2 && (f = readdir(d2))) {
      if (f->d_name[0] == '.') continue;
      snprintf(out, n, "%s/%s", p, f->d_name);
      found++;
    }
    if (d2) closedir(d2);
  }
  closedir(d);
  cr_assert_eq(found, 1, "blob files: %d", found);
}

/* Path of the file mapped at addr, from /proc/self/maps ("" if none). */
static void mapping_of(const void *addr, char *out, size_t n) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[1024];
  out[0] = '\0';
  while (f && fgets(line, sizeof line, f)) {
    unsigned long lo, hi;
    int off = 0;
    if (sscanf(line, "%lx-%lx %*s %*s %*s %*s %n", &lo, &hi, &off) < 2) continue;
    if ((uintptr_t)addr >= lo && (uintptr_t)addr < hi) {
      snprintf(out, n, "%s", line + off);
      out[strcspn(out, "\n")] = '\0';
    }
  }
  if (f) fclose(f);
}

/* ---- round trips ---------------------------------------------------------- */

Test(cache, round_trip_every_type) {
  int64_t shape[2] = {2, 3};
  int32_t small[6] = {1, 2, 3, 4, 5, -6};
  tg_value *vals[] = {
      tg_null(), tg_bool(true), tg_bool(false), tg_int(42), tg_int(INT64_MIN),
      tg_float(-2.5), tg_str_c("héllo"), tg_bytes("\0\1\2", 3),
      tg_ndarray_copy(TG_DT_I32, 2, shape, small),
      tg_list_of(2, tg_int(1), tg_list_of(1, tg_str_c("x"))), value_of(3),
      big_array(1, 1 << 18), /* 2 MiB: a blob */
  };
  size_t n = sizeof vals / sizeof vals[0];
  tg_cache *c = open_cache(NULL);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(tg_cache_put(c, key_of(100 + i), vals[i], NULL), TG_OK);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  for (int round = 0; round < 2; round++) {
    for (size_t i = 0; i < n; i++) {
      tg_value *got = NULL;
      cr_assert_eq(tg_cache_get(c, key_of(100 + i), &got), TG_OK, "item %zu", i);
      cr_assert(tg_value_equal(got, vals[i]), "item %zu differs", i);
      if (i == n - 1) { /* zero copy: the data is in a mapping of the blob */
        char path[1024], prefix[512];
        mapping_of(tg_ndarray_data(got), path, sizeof path);
        snprintf(prefix, sizeof prefix, "%s/blobs/", dir);
        cr_assert_eq(strncmp(path, prefix, strlen(prefix)), 0, "mapped: '%s'", path);
      }
      tg_value_unref(got);
    }
    tg_cache_counters k;
    counters(c, &k);
    cr_assert_eq(k.hits, n);
    cr_assert_eq(k.stores, round == 0 ? n : 0);
    cr_assert_eq(k.corrupt, 0);
    tg_cache_close(c); /* and again from a fresh open */
    c = open_cache(NULL);
  }
  tg_cache_info info;
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  cr_assert_eq(info.entries, n);
  cr_assert_gt(info.blob_bytes, (uint64_t)8 << 18);
  tg_cache_close(c);
  for (size_t i = 0; i < n; i++) tg_value_unref(vals[i]);
}

Test(cache, miss_is_not_found) {
  tg_cache *c = open_cache(NULL);
  tg_value *v = tg_int(5);
  cr_assert_eq(tg_cache_get(c, key_of(1), &v), TG_ENOTFOUND);
  cr_assert_null(v);
  cr_assert_not(tg_cache_contains(c, key_of(1)));
  tg_cache_counters k;
  counters(c, &k);
  cr_assert_eq(k.misses, 1);
  cr_assert_eq(k.hits, 0);
  tg_cache_close(c);
}

typedef struct seen {
  int n, blobs;
  tg_cache_entry_info e4;
} seen;

static int list_cb(void *ctx, const tg_cache_entry_info *e) {
  seen *s = ctx;
  s->n++;
  s->blobs += e->in_blob;
  if (e->key.lo == 4) s->e4 = *e;
  return 0;
}

Test(cache, metadata_list_remove_clear) {
  tg_cache *c = open_cache(NULL);
  tg_cache_meta meta = {"train.fit", 1.5};
  tg_value *v = value_of(4); /* blob */
  double before = tg__cache_now();
  cr_assert_eq(tg_cache_put(c, key_of(4), v, &meta), TG_OK);
  tg_value_unref(v);
  put_flush(c, 1);
  seen sn;
  memset(&sn, 0, sizeof sn);
  cr_assert_eq(tg_cache_list(c, list_cb, &sn), TG_OK);
  cr_assert_eq(sn.n, 2);
  cr_assert_eq(sn.blobs, 1);
  cr_assert_str_eq(sn.e4.function, "train.fit");
  cr_assert_eq(sn.e4.compute_seconds, 1.5);
  cr_assert(sn.e4.created >= before && sn.e4.created <= tg__cache_now());
  cr_assert(sn.e4.in_blob);
  cr_assert_eq(tg_cache_remove(c, key_of(4)), TG_OK);
  cr_assert_not(tg_cache_contains(c, key_of(4)));
  cr_assert_eq(tg_cache_remove(c, key_of(4)), TG_ENOTFOUND);
  tg_cache_info info;
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  cr_assert_eq(info.entries, 1);
  cr_assert_eq(info.blob_bytes, 0); /* the last reference deleted the blob */
  put_flush(c, 10);
  cr_assert_eq(tg_cache_clear(c), TG_OK);
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  cr_assert_eq(info.entries, 0);
  cr_assert_eq(info.bytes, 0);
  cr_assert_not(tg_cache_contains(c, key_of(1)));
  tg_cache_close(c);
}

Test(cache, identical_blobs_share_one_file) {
  tg_cache *c = open_cache(NULL);
  tg_value *v = value_of(4);
  cr_assert_eq(tg_cache_put(c, key_of(1), v, NULL), TG_OK);
  cr_assert_eq(tg_cache_put(c, key_of(2), v, NULL), TG_OK);
  tg_value_unref(v);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  char path[1024];
  blob_file(path, sizeof path); /* exactly one */
  cr_assert_eq(tg_cache_remove(c, key_of(1)), TG_OK);
  cr_assert_eq(access(path, F_OK), 0, "still referenced by key 2");
  tg_value *got;
  cr_assert_eq(tg_cache_get(c, key_of(2), &got), TG_OK);
  check_value(got, 4);
  tg_value_unref(got);
  cr_assert_eq(tg_cache_remove(c, key_of(2)), TG_OK);
  cr_assert_neq(access(path, F_OK), 0, "last reference gone");
  tg_cache_close(c);
}

/* ---- Merkle keys ---------------------------------------------------------- */

static tg_digest hand_key(const char *name, const char *ver, const tg__key_arg *a,
                          size_t n) {
  unsigned char buf[1024];
  size_t len = 0;
#define PUT(p, k) (memcpy(buf + len, (p), (k)), len += (k))
  uint64_t x;
  PUT("tgkey1", 6);
  x = strlen(name), PUT(&x, 8), PUT(name, x);
  x = strlen(ver), PUT(&x, 8), PUT(ver, x);
  x = 0, PUT(&x, 8), PUT(&x, 8);
  x = n, PUT(&x, 8);
  for (size_t i = 0; i < n; i++) {
    uint8_t kind = (uint8_t)a[i].kind;
    PUT(&kind, 1), PUT(&a[i].digest.lo, 8), PUT(&a[i].digest.hi, 8);
    if (a[i].kind == TG__KEY_ITEM) PUT(&a[i].index, 8);
    if (a[i].kind == TG__KEY_MAPKEY) x = a[i].key_len, PUT(&x, 8), PUT(a[i].key, x);
  }
#undef PUT
  XXH128_hash_t h = XXH3_128bits(buf, len);
  return (tg_digest){h.low64, h.high64};
}

static void expect_hex(tg_digest d, const char *hex) {
  char got[33];
  tg_digest_hex(d, got);
  cr_assert_str_eq(got, hex);
}

Test(cache, merkle_key_golden_vectors) {
  tg_value *three = tg_int(3);
  tg_digest node = {UINT64_C(0x0123456789abcdef), UINT64_C(0xfedcba9876543210)};
  tg__key_arg args[4] = {
      {TG__KEY_CONST, tg_value_hash(three), 0, NULL, 0},
      {TG__KEY_NODE, node, 0, NULL, 0},
      {TG__KEY_ITEM, node, -1, NULL, 0},
      {TG__KEY_MAPKEY, node, 0, "w", 1},
  };
  tg__key_fn add = {"add", "1", NULL}, noargs = {"now", NULL, NULL};
  tg_digest k0 = tg__merkle_key(&noargs, NULL, 0);
  tg_digest k1 = tg__merkle_key(&add, args, 1);
  tg_digest k4 = tg__merkle_key(&add, args, 4);
  cr_assert(tg_digest_equal(k0, hand_key("now", "", NULL, 0)));
  cr_assert(tg_digest_equal(k1, hand_key("add", "1", args, 1)));
  cr_assert(tg_digest_equal(k4, hand_key("add", "1", args, 4)));
  expect_hex(k0, "12e04739ba28d7730e5c9189aa041ac7");
  expect_hex(k1, "eeaafe28bccde7c85c054de3cdf0703c");
  expect_hex(k4, "27724ba5ba7c9056ffc4c6b18b14fac4");
  tg_value_unref(three);
}

Test(cache, merkle_key_changes_with_its_inputs) {
  tg_value *a = tg_int(3), *b = tg_int(4), *a2 = tg_int(3);
  tg_digest node = {1, 2}, other = {1, 3}, plugin = {9, 9};
  tg__key_arg base[2] = {{TG__KEY_CONST, tg_value_hash(a), 0, NULL, 0},
                         {TG__KEY_NODE, node, 0, NULL, 0}};
  tg__key_arg same[2] = {{TG__KEY_CONST, tg_value_hash(a2), 0, NULL, 0},
                         {TG__KEY_NODE, node, 0, NULL, 0}};
  tg__key_fn fn = {"f", "1", NULL}, fn2 = {"f", "2", NULL}, fnp = {"f", "1", &plugin};
  tg_digest k = tg__merkle_key(&fn, base, 2);
  cr_assert(tg_digest_equal(k, tg__merkle_key(&fn, same, 2)), "equal inputs");
  cr_assert_not(tg_digest_equal(k, tg__merkle_key(&fn2, base, 2)), "version");
  cr_assert_not(tg_digest_equal(k, tg__merkle_key(&fnp, base, 2)), "plugin");
  cr_assert_not(tg_digest_equal(k, tg__merkle_key(&fn, base, 1)), "arg count");
  tg__key_arg v[2] = {base[0], base[1]};
  v[0].digest = tg_value_hash(b);
  cr_assert_not(tg_digest_equal(k, tg__merkle_key(&fn, v, 2)), "constant");
  v[0] = base[0], v[1].digest = other;
  cr_assert_not(tg_digest_equal(k, tg__merkle_key(&fn, v, 2)), "argument key");
  v[1].kind = TG__KEY_ITEM, v[1].digest = node, v[1].index = 0;
  cr_assert_not(tg_digest_equal(k, tg__merkle_key(&fn, v, 2)), "item selector");
  tg_digest i0 = tg__merkle_key(&fn, v, 2);
  v[1].index = 1;
  cr_assert_not(tg_digest_equal(i0, tg__merkle_key(&fn, v, 2)), "index");
  /* "ab"+"c" vs "a"+"bc": lengths are in the stream */
  tg__key_fn ab = {"ab", "c", NULL}, a_bc = {"a", "bc", NULL};
  cr_assert_not(tg_digest_equal(tg__merkle_key(&ab, NULL, 0), tg__merkle_key(&a_bc, NULL, 0)));
  tg_value_unref(a);
  tg_value_unref(b);
  tg_value_unref(a2);
}

/* ---- corruption ------------------------------------------------------------ */

static void flip_byte(const char *path, long from_end) {
  int fd = open(path, O_RDWR);
  cr_assert_geq(fd, 0);
  off_t at = lseek(fd, -from_end, SEEK_END);
  unsigned char b;
  cr_assert_eq(pread(fd, &b, 1, at), 1);
  b ^= 0x40;
  cr_assert_eq(pwrite(fd, &b, 1, at), 1);
  close(fd);
}

Test(cache, corrupt_blob_is_a_miss_and_removed) {
  tg_cache *c = open_cache(NULL);
  put_flush(c, 4);
  char path[1024];
  blob_file(path, sizeof path);
  flip_byte(path, 100); /* inside the array data */
  tg_value *got = NULL;
  cr_assert_eq(tg_cache_get(c, key_of(4), &got), TG_ENOTFOUND);
  cr_assert_null(got);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  cr_assert_not(tg_cache_contains(c, key_of(4)), "entry removed");
  cr_assert_neq(access(path, F_OK), 0, "corrupt blob deleted");
  tg_cache_counters k;
  counters(c, &k);
  cr_assert_eq(k.corrupt, 1);
  cr_assert_eq(k.misses, 1);
  put_flush(c, 4); /* stored again: a good file */
  cr_assert_eq(tg_cache_get(c, key_of(4), &got), TG_OK);
  check_value(got, 4);
  tg_value_unref(got);
  tg_cache_close(c);
}

Test(cache, missing_blob_is_a_miss) {
  tg_cache *c = open_cache(NULL);
  put_flush(c, 10);
  char path[1024];
  blob_file(path, sizeof path);
  cr_assert_eq(unlink(path), 0);
  tg_value *got = NULL;
  cr_assert_eq(tg_cache_get(c, key_of(10), &got), TG_ENOTFOUND);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  cr_assert_not(tg_cache_contains(c, key_of(10)));
  tg_cache_counters k;
  counters(c, &k);
  cr_assert_eq(k.corrupt, 1);
  tg_cache_close(c);
}

Test(cache, failing_to_open_a_blob_keeps_the_entry) {
  tg_cache *c = open_cache(NULL);
  put_flush(c, 4);
  struct rlimit old, low;
  cr_assert_eq(getrlimit(RLIMIT_NOFILE, &old), 0);
  int lowest = dup(0); /* the lowest free descriptor */
  close(lowest);
  low = old;
  low.rlim_cur = (rlim_t)lowest; /* no descriptor left for the blob */
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &low), 0);
  tg_value *got = NULL;
  int rc = tg_cache_get(c, key_of(4), &got);
  cr_assert_eq(setrlimit(RLIMIT_NOFILE, &old), 0);
  cr_assert_eq(rc, TG_ENOTFOUND);
  cr_assert_neq(strstr(tg_cache_errmsg(c), "(kept)"), NULL, "%s", tg_cache_errmsg(c));
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  tg_cache_counters k;
  counters(c, &k);
  cr_assert_eq(k.corrupt, 0);
  cr_assert_eq(k.misses, 1);
  cr_assert_eq(tg_cache_get(c, key_of(4), &got), TG_OK, "the entry was kept");
  check_value(got, 4);
  tg_value_unref(got);
  tg_cache_close(c);
}

/* Flip one byte of key i's record with a raw LMDB transaction (at
 * from_end bytes before the record's end). */
static void corrupt_record(uint64_t i, size_t from_end) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  cr_assert_eq(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  cr_assert_eq(mdb_env_open(env, dir, 0, 0644), 0);
  cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, "entries", 0, &dbi), 0);
  unsigned char k[16], rec[4096];
  tg__digest_pack(key_of(i), k);
  MDB_val kv = {16, k}, v;
  cr_assert_eq(mdb_get(txn, dbi, &kv, &v), 0);
  cr_assert_leq(v.mv_size, sizeof rec);
  memcpy(rec, v.mv_data, v.mv_size);
  rec[v.mv_size - from_end] ^= 0x01;
  v.mv_data = rec;
  cr_assert_eq(mdb_put(txn, dbi, &kv, &v, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

Test(cache, corrupt_inline_record_is_a_miss_and_removed) {
  tg_cache *c = open_cache(NULL);
  put_flush(c, 1); /* a string: inline */
  put_flush(c, 7); /* another string */
  put_flush(c, 0); /* an int */
  tg_cache_close(c);
  corrupt_record(1, 1); /* last payload byte */
  corrupt_record(7, 3); /* another payload byte */
  corrupt_record(0, 1); /* the int's last byte */
  c = open_cache(NULL);
  tg_value *got = NULL;
  cr_assert_eq(tg_cache_get(c, key_of(1), &got), TG_ENOTFOUND);
  cr_assert_eq(tg_cache_get(c, key_of(7), &got), TG_ENOTFOUND);
  cr_assert_eq(tg_cache_get(c, key_of(0), &got), TG_ENOTFOUND);
  cr_assert_null(got);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  cr_assert_not(tg_cache_contains(c, key_of(1)));
  cr_assert_not(tg_cache_contains(c, key_of(0)));
  tg_cache_counters k;
  counters(c, &k);
  cr_assert_eq(k.corrupt, 3);
  tg_cache_info info;
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  cr_assert_eq(info.entries, 0);
  cr_assert_eq(info.bytes, 0);
  tg_cache_close(c);
}

Test(cache, corrupt_record_header_is_a_miss) {
  tg_cache *c = open_cache(NULL);
  put_flush(c, 1);
  tg_cache_close(c);
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi dbi;
  cr_assert_eq(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  cr_assert_eq(mdb_env_open(env, dir, 0, 0644), 0);
  cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, "entries", 0, &dbi), 0);
  unsigned char k[16], rec[4096];
  tg__digest_pack(key_of(1), k);
  MDB_val kv = {16, k}, val;
  cr_assert_eq(mdb_get(txn, dbi, &kv, &val), 0);
  memcpy(rec, val.mv_data, val.mv_size);
  rec[8] ^= 0x02; /* the size field */
  val.mv_data = rec;
  cr_assert_eq(mdb_put(txn, dbi, &kv, &val, 0), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  c = open_cache(NULL);
  tg_value *got = NULL;
  cr_assert_eq(tg_cache_get(c, key_of(1), &got), TG_ENOTFOUND);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  cr_assert_not(tg_cache_contains(c, key_of(1)));
  tg_cache_close(c);
}

/* ---- read-only --------------------------------------------------------------- */

static void fill(uint64_t from, uint64_t to) {
  tg_cache *c = open_cache(NULL);
  for (uint64_t i = from; i < to; i++) {
    tg_value *v = value_of(i);
    tg_cache_put(c, key_of(i), v, NULL);
    tg_value_unref(v);
  }
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  tg_cache_close(c);
}

/* Read-only c: hits for 0..n, puts dropped, writes refused. */
static void check_readonly(tg_cache *c, uint64_t n) {
  cr_assert(tg_cache_is_readonly(c));
  for (uint64_t i = 0; i < n; i++) {
    tg_value *got;
    cr_assert_eq(tg_cache_get(c, key_of(i), &got), TG_OK, "key %" PRIu64, i);
    check_value(got, i);
    tg_value_unref(got);
  }
  tg_value *v = value_of(n);
  cr_assert_eq(tg_cache_put(c, key_of(n), v, NULL), TG_OK);
  tg_value_unref(v);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  cr_assert_not(tg_cache_contains(c, key_of(n)));
  cr_assert_eq(tg_cache_remove(c, key_of(0)), TG_EACCES);
  cr_assert_eq(tg_cache_clear(c), TG_EACCES);
  cr_assert(tg_cache_contains(c, key_of(0)));
}

Test(cache, readonly_on_request_serves_hits) {
  fill(0, 6);
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V1, .readonly = true};
  tg_cache *c = open_cache(&o);
  char want[512];
  snprintf(want, sizeof want,
           "cache directory %s is opened read-only on request: results will not be stored",
           dir);
  cr_assert_str_eq(tg_cache_warning(c), want);
  check_readonly(c, 6);
  tg_cache_close(c);
  c = open_cache(NULL);
  cr_assert_null(tg_cache_warning(c));
  cr_assert_not(tg_cache_is_readonly(c));
  tg_cache_close(c);
}

/* chmod -R a-w, then open as an unprivileged user (root ignores modes). */
Test(cache, readonly_directory_serves_hits) {
  fill(0, 6);
  cr_assert_eq(chmod(dir, 0555), 0);
  char p[512];
  snprintf(p, sizeof p, "%s/data.mdb", dir);
  chmod(p, 0444);
  snprintf(p, sizeof p, "%s/lock.mdb", dir);
  chmod(p, 0444);
  pid_t pid = fork();
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) || setuid(65534))) _exit(2);
    tg_cache *c = NULL;
    tg_error err;
    if (tg_cache_open(dir, NULL, &c, &err)) _exit(3);
    char want[512];
    snprintf(want, sizeof want,
             "cache directory %s is read-only: results will not be stored", dir);
    if (!tg_cache_warning(c) || strcmp(tg_cache_warning(c), want)) _exit(4);
    check_readonly(c, 6);
    tg_cache_close(c);
    _exit(0);
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

Test(cache, readonly_without_database_misses) {
  cr_assert_eq(chmod(dir, 0555), 0);
  pid_t pid = fork();
  if (pid == 0) {
    if (geteuid() == 0 && (setgid(65534) || setuid(65534))) _exit(2);
    tg_cache *c = NULL;
    tg_value *got;
    if (tg_cache_open(dir, NULL, &c, NULL) || !tg_cache_is_readonly(c)) _exit(3);
    if (tg_cache_get(c, key_of(1), &got) != TG_ENOTFOUND) _exit(4);
    tg_cache_close(c);
    _exit(0);
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

/* ---- pruning ----------------------------------------------------------------- */

static tg_value *sized(uint64_t i) {
  char b[1000];
  memset(b, (int)i, sizeof b);
  return tg_bytes(b, sizeof b);
}

static uint64_t entry_size(tg_cache *c) {
  tg_cache_info info;
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  cr_assert_gt(info.entries, 0);
  cr_assert_eq(info.bytes % info.entries, 0);
  return info.bytes / info.entries;
}

static void expect_present(tg_cache *c, const int *keys, size_t n, int total) {
  for (int i = 0; i < total; i++) {
    bool want = false;
    for (size_t j = 0; j < n; j++) want |= keys[j] == i;
    cr_assert_eq(tg_cache_contains(c, key_of((uint64_t)i)), want, "key %d", i);
  }
}

Test(cache, prune_keeps_most_recently_used) {
  tg_cache *c = open_cache(NULL);
  for (uint64_t i = 0; i < 10; i++) {
    tg_value *v = sized(i);
    tg_cache_put(c, key_of(i), v, NULL);
    tg_value_unref(v);
  }
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  uint64_t s = entry_size(c);
  int order[] = {5, 2, 8, 0, 9}; /* oldest hit first */
  for (size_t j = 0; j < 5; j++) {
    tg_value *got;
    cr_assert_eq(tg_cache_get(c, key_of((uint64_t)order[j]), &got), TG_OK);
    tg_value_unref(got);
  }
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  uint64_t removed = 0;
  cr_assert_eq(tg_cache_prune(c, 5 * s, &removed), TG_OK);
  cr_assert_eq(removed, 5);
  expect_present(c, order, 5, 10);
  cr_assert_eq(tg_cache_prune(c, 2 * s + s / 2, &removed), TG_OK);
  cr_assert_eq(removed, 3);
  int last[] = {0, 9};
  expect_present(c, last, 2, 10);
  cr_assert_eq(tg_cache_prune(c, 2 * s, &removed), TG_OK);
  cr_assert_eq(removed, 0);
  tg_cache_close(c);
}

Test(cache, max_size_prunes_after_each_batch) {
  tg_cache *c = open_cache(NULL);
  tg_value *v = sized(0);
  tg_cache_put(c, key_of(0), v, NULL);
  tg_value_unref(v);
  tg_cache_flush(c);
  uint64_t s = entry_size(c);
  tg_cache_close(c);
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V1, .max_size = 3 * s + s / 2};
  c = open_cache(&o);
  for (uint64_t i = 1; i < 6; i++) {
    v = sized(i);
    tg_cache_put(c, key_of(i), v, NULL);
    tg_value_unref(v);
    cr_assert_eq(tg_cache_flush(c), TG_OK);
  }
  int keep[] = {3, 4, 5};
  expect_present(c, keep, 3, 6);
  tg_cache_info info;
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  cr_assert_eq(info.bytes, 3 * s);
  cr_assert_eq(info.max_size, 3 * s + s / 2);
  tg_cache_close(c);
}

Test(cache, prune_sweeps_orphan_blobs) {
  tg_cache *c = open_cache(NULL);
  put_flush(c, 4);
  char keep[1024], orphan[600], tmp[600], young[600];
  blob_file(keep, sizeof keep);
  snprintf(orphan, sizeof orphan, "%s/blobs/00/%030d", dir, 0);
  snprintf(tmp, sizeof tmp, "%s/blobs/00/%030d.tmp.abcdef", dir, 1);
  snprintf(young, sizeof young, "%s/blobs/00/%030d.tmp.ghijkl", dir, 2);
  char sub[600];
  snprintf(sub, sizeof sub, "%s/blobs/00", dir);
  mkdir(sub, 0755);
  const char *files[] = {orphan, tmp, young};
  for (int i = 0; i < 3; i++) {
    FILE *f = fopen(files[i], "w");
    cr_assert_not_null(f);
    fputs("junk", f);
    fclose(f);
  }
  struct timespec old[2] = {{time(NULL) - 7200, 0}, {time(NULL) - 7200, 0}};
  cr_assert_eq(utimensat(AT_FDCWD, tmp, old, 0), 0);
  cr_assert_eq(tg_cache_prune(c, UINT64_MAX, NULL), TG_OK);
  cr_assert_neq(access(orphan, F_OK), 0, "orphan blob removed");
  cr_assert_neq(access(tmp, F_OK), 0, "stale temporary file removed");
  cr_assert_eq(access(young, F_OK), 0, "a young temporary file may be in use");
  cr_assert_eq(access(keep, F_OK), 0, "referenced blob kept");
  tg_cache_close(c);
}

/* ---- map growth ---------------------------------------------------------------- */

Test(cache, map_grows_when_full) {
  tg_cache *c = NULL;
  tg_error err;
  size_t tiny = 64 << 10;
  cr_assert_eq(tg__cache_open_mapsize(dir, NULL, tiny, &c, &err), TG_OK, "%s", err.msg);
  for (uint64_t i = 0; i < 3000; i++) {
    if (i % 6 == 4) continue; /* inline values only: they fill the map */
    tg_value *v = value_of(i);
    tg_cache_put(c, key_of(i), v, NULL);
    tg_value_unref(v);
    if (i % 500 == 499) cr_assert_eq(tg_cache_flush(c), TG_OK, "%s", tg_cache_errmsg(c));
  }
  cr_assert_eq(tg_cache_flush(c), TG_OK, "%s", tg_cache_errmsg(c));
  tg_cache_info info;
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  cr_assert_eq(info.entries, 2500);
  cr_assert_geq(info.map_size, 4 * tiny);
  for (uint64_t i = 0; i < 3000; i++) {
    if (i % 6 == 4) continue;
    tg_value *got;
    cr_assert_eq(tg_cache_get(c, key_of(i), &got), TG_OK, "key %" PRIu64, i);
    check_value(got, i);
    tg_value_unref(got);
  }
  tg_cache_close(c);
}

typedef struct reader_arg {
  tg_cache *c;
  _Atomic int *stop;
  int bad;
  uint64_t hits;
} reader_arg;

static void *reader_main(void *p) {
  reader_arg *a = p;
  for (uint64_t j = 0; !atomic_load(a->stop); j++) {
    uint64_t i = (j * 7) % 100;
    tg_value *got;
    if (tg_cache_get(a->c, key_of(i), &got)) {
      a->bad++;
      continue;
    }
    tg_value *want = value_of(i);
    a->bad += !tg_value_equal(got, want);
    a->hits++;
    tg_value_unref(want);
    tg_value_unref(got);
    a->bad += !tg_cache_contains(a->c, key_of(i));
  }
  return NULL;
}

Test(cache, threads_read_while_the_map_grows) {
  tg_cache *c = NULL;
  size_t tiny = 64 << 10;
  cr_assert_eq(tg__cache_open_mapsize(dir, NULL, tiny, &c, NULL), TG_OK);
  for (uint64_t i = 0; i < 100; i++) {
    tg_value *v = value_of(i);
    tg_cache_put(c, key_of(i), v, NULL);
    tg_value_unref(v);
  }
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  _Atomic int stop = 0;
  reader_arg args[3];
  pthread_t th[3];
  for (int t = 0; t < 3; t++) {
    args[t] = (reader_arg){c, &stop, 0, 0};
    cr_assert_eq(pthread_create(&th[t], NULL, reader_main, &args[t]), 0);
  }
  for (uint64_t i = 100; i < 2000; i++) {
    tg_value *v = value_of(i);
    tg_cache_put(c, key_of(i), v, NULL);
    tg_value_unref(v);
    if (i % 100 == 99) cr_assert_eq(tg_cache_flush(c), TG_OK, "%s", tg_cache_errmsg(c));
  }
  atomic_store(&stop, 1);
  for (int t = 0; t < 3; t++) {
    pthread_join(th[t], NULL);
    cr_assert_eq(args[t].bad, 0, "reader %d", t);
    cr_assert_gt(args[t].hits, 0);
  }
  tg_cache_info info;
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  cr_assert_eq(info.entries, 2000);
  cr_assert_geq(info.map_size, 4 * tiny);
  tg_cache_close(c);
}

/* ---- several processes ----------------------------------------------------------- */

/* Child body: fresh open (small map, so processes grow it under each
 * other), puts of keys 0..n in its own order, gets checked when they hit.
 * Exit status 0 when every value read was right. */
static int worker(int id, uint64_t n) {
  tg_cache *c = NULL;
  tg_error err;
  tg_error_clear(&err);
  if (tg__cache_open_mapsize(dir, NULL, 128 << 10, &c, &err)) {
    fprintf(stderr, "worker %d: %s\n", id, err.msg); /* says why, if it ever fails */
    return 3;
  }
  unsigned seed = (unsigned)id * 7919u + 1;
  for (uint64_t j = 0; j < n; j++) {
    uint64_t i = (j * (2 * (uint64_t)id + 1) + (uint64_t)id * 31) % n;
    tg_value *v = value_of(i), *got = NULL;
    if (tg_cache_put(c, key_of(i), v, NULL)) return 4;
    tg_value_unref(v);
    if (j % 25 == 24 && tg_cache_flush(c)) {
      fprintf(stderr, "worker %d: flush: %s\n", id, tg_cache_errmsg(c));
      return 5;
    }
    uint64_t r = (uint64_t)rand_r(&seed) % n;
    int rc = tg_cache_get(c, key_of(r), &got);
    if (rc == TG_OK) {
      tg_value *want = value_of(r);
      bool ok = tg_value_equal(got, want);
      tg_value_unref(want);
      tg_value_unref(got);
      if (!ok) return 6;
    } else if (rc != TG_ENOTFOUND) {
      return 7;
    }
  }
  if (tg_cache_flush(c)) {
    fprintf(stderr, "worker %d: last flush: %s\n", id, tg_cache_errmsg(c));
    return 8;
  }
  tg_cache_counters k;
  tg_cache_get_counters(c, &k);
  tg_cache_close(c);
  return k.corrupt ? 9 : 0;
}

/* Every read-write open sweeps the temporary blob files whose writer is
 * gone (their lock is free). A writer takes the lock just after creating
 * its file: a sweeper that took the lock in that instant must unlink the
 * file before letting the lock go, or the writer, taking the lock next,
 * carries on with a file that is then unlinked under it, and its commit
 * fails ("writing blob ...: No such file or directory"). Here one process
 * opens the cache over and over while this one writes blobs. */
Test(cache, blob_writes_survive_sweeping_opens) {
  tg_cache *c = open_cache(NULL);
  pid_t pid = fork();
  if (pid == 0) {
    for (int i = 0; i < 4000; i++) {
      tg_cache *o = NULL;
      tg_error err;
      if (tg_cache_open(dir, NULL, &o, &err)) _exit(3);
      tg_cache_close(o);
    }
    _exit(0);
  }
  int failed = 0, status = 0;
  bool reaped = false;
  for (uint64_t i = 0; i < 100000 && !failed && !reaped; i++) {
    tg_value *v = big_array(i, 12000);
    tg_cache_put(c, key_of(i), v, NULL);
    tg_value_unref(v);
    if (tg_cache_flush(c)) failed = 1;
    reaped = waitpid(pid, &status, WNOHANG) == pid; /* the opener is done */
  }
  if (!reaped) cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert_eq(failed, 0, "%s", tg_cache_errmsg(c));
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "opener: status %d", status);
  tg_cache_close(c);
}

Test(cache, four_processes_at_once) {
  enum { N = 300, P = 4 };
  pid_t pids[P];
  for (int p = 0; p < P; p++) {
    pids[p] = fork();
    if (pids[p] == 0) _exit(worker(p, N));
  }
  for (int p = 0; p < P; p++) {
    int status;
    cr_assert_eq(waitpid(pids[p], &status, 0), pids[p]);
    cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "worker %d: status %d", p,
              status);
  }
  tg_cache *c = open_cache(NULL);
  for (uint64_t i = 0; i < N; i++) {
    tg_value *got;
    cr_assert_eq(tg_cache_get(c, key_of(i), &got), TG_OK, "key %" PRIu64, i);
    check_value(got, i);
    tg_value_unref(got);
  }
  tg_cache_info info;
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  cr_assert_eq(info.entries, N);
  tg_cache_close(c);
}

/* ---- kill -9 ---------------------------------------------------------------------- */

typedef struct verify {
  tg_cache *c;
  uint64_t n, inline_bytes;
  int bad;
} verify;

static int verify_cb(void *ctx, const tg_cache_entry_info *e) {
  verify *v = ctx;
  tg_value *got;
  v->n++;
  if (!e->in_blob) v->inline_bytes += e->size;
  if (e->key.hi != key_of(0).hi || tg_cache_get(v->c, e->key, &got)) {
    v->bad++;
    return 0;
  }
  tg_value *want = value_of(e->key.lo);
  v->bad += !tg_value_equal(got, want);
  tg_value_unref(want);
  tg_value_unref(got);
  return 0;
}

/* Puts and removes until killed; writes a byte to `flushed` after its
 * first flush. */
static void heavy_writer(int flushed) {
  tg_cache *c = NULL;
  if (tg_cache_open(dir, NULL, &c, NULL)) _exit(3);
  unsigned seed = (unsigned)getpid();
  for (bool told = false;; told = true) {
    for (int j = 0; j < 40; j++) {
      uint64_t i = (uint64_t)rand_r(&seed) % 600;
      tg_value *v = value_of(i);
      tg_cache_put(c, key_of(i), v, NULL);
      tg_value_unref(v);
      if (rand_r(&seed) % 8 == 0) tg_cache_remove(c, key_of(i / 2));
    }
    tg_cache_flush(c);
    if (!told && write(flushed, "f", 1) != 1) _exit(4);
  }
}

Test(cache, kill_9_at_random_moments_never_corrupts) {
  const unsigned seed0 = (unsigned)time(NULL);
  unsigned seed = seed0;
  uint64_t max_seen = 0;
  for (int round = 0; round < 50; round++) {
    int flushed[2];
    cr_assert_eq(pipe(flushed), 0);
    pid_t pid = fork();
    if (pid == 0) heavy_writer(flushed[1]);
    close(flushed[1]);
    /* Every other round the kill comes after the writer's first commit,
     * so that however slow the machine, entries pile up to be checked;
     * the other rounds kill it at any moment, opening included. */
    if (round % 2) {
      struct pollfd p = {flushed[0], POLLIN, 0};
      cr_assert_eq(poll(&p, 1, 30000), 1, "round %d: no first flush in 30 s", round);
    }
    usleep(5000 + (useconds_t)(rand_r(&seed) % 60000));
    kill(pid, SIGKILL);
    int status;
    cr_assert_eq(waitpid(pid, &status, 0), pid);
    close(flushed[0]); /* open until now: the writer's byte never meets SIGPIPE */
    cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
              "round %d: writer ended by itself (status %#x)", round, status);
    tg_cache *c = open_cache(NULL);
    /* A kill is not damage: the environment is opened, not moved aside. */
    cr_assert_null(tg_cache_warning(c), "round %d: %s", round, tg_cache_warning(c));
    verify v = {c, 0, 0, 0};
    cr_assert_eq(tg_cache_list(c, verify_cb, &v), TG_OK);
    cr_assert_eq(v.bad, 0, "round %d (seed %u): %d bad entries", round, seed0, v.bad);
    tg_cache_info info;
    cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
    cr_assert_eq(info.entries, v.n, "round %d: stored totals", round);
    cr_assert_eq(info.bytes - info.blob_bytes, v.inline_bytes, "round %d", round);
    tg_cache_counters k;
    tg_cache_get_counters(c, &k);
    cr_assert_eq(k.corrupt, 0);
    if (v.n > max_seen) max_seen = v.n;
    tg_cache_close(c);
  }
  cr_assert_gt(max_seen, 50, "the writer got real work done");
}

/* ---- fork ---------------------------------------------------------------------------- */

Test(cache, child_of_fork_gets_estate) {
  tg_cache *c = open_cache(NULL);
  put_flush(c, 0);
  pid_t pid = fork();
  if (pid == 0) {
    tg_value *got;
    tg_value *v = tg_int(1);
    int ok = tg_cache_get(c, key_of(0), &got) == TG_ESTATE &&
             tg_cache_put(c, key_of(1), v, NULL) == TG_ESTATE &&
             tg_cache_flush(c) == TG_ESTATE && !tg_cache_contains(c, key_of(0));
    tg_cache_close(c); /* releases nothing in the child */
    _exit(ok ? 0 : 1);
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  tg_value *got;
  cr_assert_eq(tg_cache_get(c, key_of(0), &got), TG_OK);
  tg_value_unref(got);
  tg_cache_close(c);
}

/* ---- file hash ------------------------------------------------------------------------- */

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

static tg_digest text_digest(const char *text) {
  XXH128_hash_t h = XXH3_128bits(text, strlen(text));
  return (tg_digest){h.low64, h.high64};
}

Test(cache, file_hash_fast_path) {
  char path[512];
  snprintf(path, sizeof path, "%s/input.txt", dir);
  write_file(path, "first content");
  usleep(60000); /* older than the racy window */
  tg_cache *c = open_cache(NULL);
  tg_digest d;
  tg_error err;
  cr_assert_eq(tg_cache_file_hash(c, path, &d, &err), TG_OK, "%s", err.msg);
  cr_assert(tg_digest_equal(d, text_digest("first content")));
  cr_assert_eq(tg__cache_file_reads(c), 1);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  cr_assert_eq(tg_cache_file_hash(c, path, &d, &err), TG_OK);
  cr_assert(tg_digest_equal(d, text_digest("first content")));
  cr_assert_eq(tg__cache_file_reads(c), 1, "untouched file: not read again");
  tg_cache_close(c);
  c = open_cache(NULL); /* the record persists */
  cr_assert_eq(tg_cache_file_hash(c, path, &d, &err), TG_OK);
  cr_assert_eq(tg__cache_file_reads(c), 0);
  /* same size, new content and mtime */
  write_file(path, "other content");
  usleep(60000);
  cr_assert_eq(tg_cache_file_hash(c, path, &d, &err), TG_OK);
  cr_assert(tg_digest_equal(d, text_digest("other content")));
  cr_assert_eq(tg__cache_file_reads(c), 1);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  /* new content with the old mtime put back: ctime still tells */
  struct stat st;
  cr_assert_eq(stat(path, &st), 0);
  write_file(path, "third content");
  struct timespec t[2] = {st.st_atim, st.st_mtim};
  cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0);
  cr_assert_eq(tg_cache_file_hash(c, path, &d, &err), TG_OK);
  cr_assert(tg_digest_equal(d, text_digest("third content")));
  cr_assert_eq(tg__cache_file_reads(c), 2);
  tg_cache_close(c);
}

/* A file whose mtime is not older than the racy window (20 ms) is hashed
 * on every call. Its mtime is put an hour ahead (as a file from a machine
 * whose clock runs ahead would have) so that it stays young however slowly
 * a loaded machine runs the test; one just written aged past the window
 * under ASan on a busy machine. */
Test(cache, file_hash_racy_file_is_read_every_time) {
  char path[512];
  snprintf(path, sizeof path, "%s/young.txt", dir);
  write_file(path, "just written");
  struct timespec t[2];
  cr_assert_eq(clock_gettime(CLOCK_REALTIME, &t[0]), 0);
  t[0].tv_sec += 3600;
  t[1] = t[0];
  cr_assert_eq(utimensat(AT_FDCWD, path, t, 0), 0);
  usleep(60000); /* the ctime ages: only the mtime keeps the file young */
  tg_cache *c = open_cache(NULL);
  tg_digest d;
  for (int i = 1; i <= 3; i++) {
    cr_assert_eq(tg_cache_file_hash(c, path, &d, NULL), TG_OK);
    cr_assert_eq(tg_cache_flush(c), TG_OK);
    cr_assert_eq(tg__cache_file_reads(c), (uint64_t)i);
  }
  tg_cache_close(c);
}

Test(cache, file_hash_without_cache_and_errors) {
  char path[512];
  snprintf(path, sizeof path, "%s/x.bin", dir);
  write_file(path, "");
  tg_digest d;
  tg_error err;
  cr_assert_eq(tg_cache_file_hash(NULL, path, &d, &err), TG_OK);
  cr_assert(tg_digest_equal(d, text_digest("")));
  snprintf(path, sizeof path, "%s/missing", dir);
  cr_assert_eq(tg_cache_file_hash(NULL, path, &d, &err), TG_ENOENT);
  cr_assert_neq(strstr(err.msg, "missing"), NULL, "%s", err.msg);
  cr_assert_eq(tg_cache_file_hash(NULL, dir, &d, &err), TG_EINVAL);
}

/* A FIFO is refused at once: opening it must not wait for a writer. */
Test(cache, file_hash_refuses_a_fifo_without_waiting) {
  char path[512], want[600];
  snprintf(path, sizeof path, "%s/fifo", dir);
  cr_assert_eq(mkfifo(path, 0600), 0);
  tg_digest d;
  tg_error err;
  alarm(5); /* a hang fails the test instead of stalling the suite */
  cr_assert_eq(tg_cache_file_hash(NULL, path, &d, &err), TG_EINVAL);
  alarm(0);
  snprintf(want, sizeof want, "file hash: %s is not a regular file", path);
  cr_assert_str_eq(err.msg, want);
}

Test(cache, second_open_in_one_process_is_refused) {
  tg_cache *c = open_cache(NULL), *c2 = NULL;
  tg_error err;
  char alias[512];
  snprintf(alias, sizeof alias, "%s/.", dir); /* same directory, other spelling */
  cr_assert_eq(tg_cache_open(alias, NULL, &c2, &err), TG_EEXIST);
  cr_assert_null(c2);
  cr_assert_neq(strstr(err.msg, "already open"), NULL, "%s", err.msg);
  pid_t pid = fork();
  if (pid == 0) { /* a child may open it: the parent's handle is not its own */
    int ok = tg_cache_open(dir, NULL, &c2, NULL) == TG_OK;
    tg_cache_close(c2);
    _exit(ok ? 0 : 1);
  }
  int status;
  cr_assert_eq(waitpid(pid, &status, 0), pid);
  cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  tg_cache_close(c);
  cr_assert_eq(tg_cache_open(alias, NULL, &c2, &err), TG_OK, "%s", err.msg);
  tg_cache_close(c2);
}

Test(cache, compressed_values_round_trip) {
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V1, .compress = 3};
  tg_cache *c = open_cache(&o);
  tg_value *big = big_array(2, 1 << 17), *got;
  put_flush(c, 1);
  cr_assert_eq(tg_cache_put(c, key_of(2), big, NULL), TG_OK);
  cr_assert_eq(tg_cache_flush(c), TG_OK);
  cr_assert_eq(tg_cache_get(c, key_of(1), &got), TG_OK);
  check_value(got, 1);
  tg_value_unref(got);
  cr_assert_eq(tg_cache_get(c, key_of(2), &got), TG_OK);
  cr_assert(tg_value_equal(got, big));
  tg_value_unref(got);
  tg_cache_info info;
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  cr_assert_lt(info.blob_bytes, tg_ndarray_nbytes(big) / 2, "compressed");
  tg_value_unref(big);
  tg_cache_close(c);
}

Test(cache, open_rejects_bad_arguments) {
  tg_cache *c = (tg_cache *)1;
  tg_error err;
  cr_assert_eq(tg_cache_open("", NULL, &c, &err), TG_EINVAL);
  cr_assert_null(c);
  tg_cache_opts o = {.version = 99};
  cr_assert_eq(tg_cache_open(dir, &o, &c, &err), TG_EINVAL);
  cr_assert_neq(strstr(err.msg, "version"), NULL);
  char file[512];
  snprintf(file, sizeof file, "%s/f", dir);
  write_file(file, "x");
  cr_assert_eq(tg_cache_open(file, NULL, &c, &err), TG_EEXIST);
  cr_assert_null(c);
}
