/* lib/cache/lookup.c: reading the cache on the calling thread:
 * tg_cache_get (verified), tg_cache_contains, tg_cache_list and
 * tg_cache_get_info. Each runs in one pooled read transaction (env.c),
 * released before anything slow (blob files) or user code (callbacks)
 * runs, so a map resize never waits on them for long.
 */
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "cache_internal.h"
#include "cache_memo.h"
#include "tgraph/serial.h"

/* A corrupt or missing entry: count it and have the writer remove it
 * (only while its checksum is still `checksum`: a concurrent put of a
 * good value stays). */
static int corrupt(tg_cache *c, tg_digest key, uint64_t checksum) {
  char hex[33];
  atomic_fetch_add(&c->corrupt, 1);
  atomic_fetch_add(&c->misses, 1);
  if (!c->readonly) {
    tg__cache_op op = {.type = TG__OP_DROP, .key = key, .checksum = checksum};
    tg__writer_queue(c, &op);
  }
  tg_digest_hex(key, hex);
  return tg__cache_fail(c, TG_ENOTFOUND, "cache: entry %s is corrupt: removed", hex);
}

static int miss(tg_cache *c) {
  atomic_fetch_add(&c->misses, 1);
  return TG_ENOTFOUND;
}

static int read_fail(tg_cache *c, int rc) {
  return tg__cache_fail(c, rc, "cache %s: reading: %s", c->dir, tg_strerror(rc));
}

/* Verify and decode an inline entry while the transaction is open. */
static int decode_inline(const tg__entry *e, tg_value **out, tg_error *err) {
  if (XXH3_64bits(e->payload, e->size) != e->checksum)
    return tg__error_set(err, TG_ECHECKSUM, "inline value: checksum mismatch");
  return tg_decode(e->payload, e->size, out, err);
}

bool tg__cache_bad_data(int rc) {
  return rc == TG_ECHECKSUM || rc == TG_EFORMAT || rc == TG_EVERSION ||
         rc == TG_ECOMPRESS || rc == TG_EDEPTH || rc == TG_ELIMIT ||
         rc == TG_ENOTFOUND || rc == TG_ENOENT;
}

int tg__entry_load(tg_cache *c, tg_digest key, tg_value **out, tg__loaded *got,
                   tg_error *err) {
  MDB_txn *txn;
  int rc = tg__read_begin(c, &txn);
  memset(got, 0, sizeof *got);
  if (rc) return rc;
  unsigned char k[16];
  tg__digest_pack(key, k);
  MDB_val kv = {16, k}, v;
  int mrc = mdb_get(txn, c->db_entries, &kv, &v);
  if (mrc) {
    tg__read_end(c, txn);
    if (mrc == MDB_NOTFOUND) return TG_ENOTFOUND;
    rc = tg__mdb_code(mrc);
    if (rc != TG_EFORMAT) return rc;
    got->found = true;
    return tg__error_set(err, TG_EFORMAT, "entry record: %s", mdb_strerror(mrc));
  }
  tg__entry e;
  got->found = true;
  if (!tg__entry_parse(v.mv_data, v.mv_size, &e)) {
    tg__read_end(c, txn);
    return tg__error_set(err, TG_EFORMAT, "entry record is malformed");
  }
  got->size = e.size, got->checksum = e.checksum;
  if (!e.in_blob) {
    rc = decode_inline(&e, out, err);
    tg__read_end(c, txn);
    return rc;
  }
  got->in_blob = true, got->blob = e.blob;
  tg__read_end(c, txn);
  return tg__blob_read(c, got->blob, got->size, got->checksum, out, err);
}

int tg_cache_get(tg_cache *c, tg_digest key, tg_value **out) {
  uint64_t size;
  return tg__cache_get_sized(c, key, out, &size);
}

int tg__cache_get_sized(tg_cache *c, tg_digest key, tg_value **out, uint64_t *stored) {
  *stored = 0;
  if (out) *out = NULL;
  int rc = tg__cache_usable(c);
  if (rc) return rc;
  if (!out) return tg__cache_fail(c, TG_EINVAL, "cache: get without an output");
  if (!c->env) return miss(c);
  tg__loaded got;
  tg_value *val = NULL;
  rc = tg__entry_load(c, key, &val, &got, NULL);
  if (!got.found) return rc == TG_ENOTFOUND ? miss(c) : read_fail(c, rc);
  if (rc && tg__cache_bad_data(rc)) return corrupt(c, key, got.checksum);
  if (rc) {
    miss(c);
    return tg__cache_fail(c, TG_ENOTFOUND, "cache %s: reading an entry: %s (kept)",
                          c->dir, tg_strerror(rc));
  }
  atomic_fetch_add(&c->hits, 1);
  atomic_fetch_add(&c->bytes_read, got.size);
  *stored = got.size;
  if (!c->readonly) {
    tg__cache_op op = {.type = TG__OP_TOUCH, .key = key, .time = tg__cache_now()};
    tg__writer_queue(c, &op);
  }
  *out = val;
  return TG_OK;
}

bool tg_cache_contains(tg_cache *c, tg_digest key) {
  MDB_txn *txn;
  if (tg__cache_usable(c) || !c->env || tg__read_begin(c, &txn)) return false;
  unsigned char k[16];
  tg__digest_pack(key, k);
  MDB_val kv = {16, k}, v;
  bool found = mdb_get(txn, c->db_entries, &kv, &v) == MDB_SUCCESS;
  tg__read_end(c, txn);
  return found;
}

/* Fill info from a record; false when it is malformed. */
static bool entry_info(tg_cache *c, MDB_txn *txn, MDB_val *k, MDB_val *v,
                       tg_cache_entry_info *info) {
  tg__entry e;
  MDB_val u;
  if (k->mv_size != 16 || !tg__entry_parse(v->mv_data, v->mv_size, &e)) return false;
  memset(info, 0, sizeof *info);
  info->key = tg__digest_unpack(k->mv_data);
  info->size = e.size;
  info->created = e.created;
  info->last_used = e.created;
  if (mdb_get(txn, c->db_used, k, &u) == MDB_SUCCESS && u.mv_size == 8)
    memcpy(&info->last_used, u.mv_data, 8);
  info->compute_seconds = e.compute_seconds;
  info->in_blob = e.in_blob;
  size_t n = e.function_len < sizeof info->function - 1 ? e.function_len
                                                        : sizeof info->function - 1;
  memcpy(info->function, e.function, n);
  return true;
}

int tg__entries_each(tg_cache *c, int (*fn)(void *ctx, MDB_txn *txn, MDB_val *k, MDB_val *v),
                     void *ctx) {
  MDB_txn *txn;
  MDB_cursor *cur;
  MDB_val k, v;
  int rc = tg__read_begin(c, &txn);
  if (rc) return rc;
  int mrc = mdb_cursor_open(txn, c->db_entries, &cur);
  bool opened = mrc == MDB_SUCCESS;
  while (!mrc && (mrc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == MDB_SUCCESS)
    if ((rc = fn(ctx, txn, &k, &v)) != TG_OK) break;
  if (!rc && mrc != MDB_NOTFOUND) rc = tg__mdb_code(mrc);
  if (opened) mdb_cursor_close(cur);
  tg__read_end(c, txn);
  return rc;
}

typedef struct infos {
  tg_cache *c;
  tg_cache_entry_info *all;
  size_t n, cap;
} infos;

static int collect_one(void *ctx, MDB_txn *txn, MDB_val *k, MDB_val *v) {
  infos *in = ctx;
  if (in->n == in->cap) {
    size_t cap = in->cap ? 2 * in->cap : 64;
    tg_cache_entry_info *p = tg__realloc(in->all, cap * sizeof *p);
    if (!p) return TG_ENOMEM;
    in->all = p;
    in->cap = cap;
  }
  if (entry_info(in->c, txn, k, v, &in->all[in->n])) in->n++;
  return TG_OK;
}

/* Every entry's info, collected so callbacks run with no transaction. */
static int collect(tg_cache *c, tg_cache_entry_info **out, size_t *n) {
  infos in = {c, NULL, 0, 0};
  int rc = tg__entries_each(c, collect_one, &in);
  *out = in.all;
  *n = in.n;
  return rc;
}

int tg_cache_list(tg_cache *c, int (*cb)(void *ctx, const tg_cache_entry_info *e),
                  void *ctx) {
  int rc = tg__cache_usable(c);
  if (rc) return rc;
  if (!cb) return tg__cache_fail(c, TG_EINVAL, "cache: list without a callback");
  if (!c->env) return TG_OK;
  tg_cache_entry_info *all;
  size_t n;
  rc = collect(c, &all, &n);
  for (size_t i = 0; !rc && i < n; i++)
    if (cb(ctx, &all[i])) break;
  tg__free(all);
  return rc ? read_fail(c, rc) : TG_OK;
}

int tg_cache_get_info(tg_cache *c, tg_cache_info *out) {
  int rc = tg__cache_usable(c);
  if (rc) return rc;
  if (!out) return tg__cache_fail(c, TG_EINVAL, "cache: info without an output");
  memset(out, 0, sizeof *out);
  out->max_size = c->max_size;
  if (!c->env) return TG_OK;
  MDB_txn *txn;
  tg__cache_stats st;
  if ((rc = tg__read_begin(c, &txn))) return read_fail(c, rc);
  rc = tg__stats_get(c, txn, &st);
  MDB_envinfo info;
  mdb_env_info(c->env, &info);
  tg__read_end(c, txn);
  if (rc) return read_fail(c, rc);
  out->entries = st.entries;
  out->bytes = st.inline_bytes + st.blob_bytes;
  out->blob_bytes = st.blob_bytes;
  out->map_size = info.me_mapsize;
  return TG_OK;
}
