/* lib/cache/batch.c: applying a batch of queued ops in one LMDB write
 * transaction: entries, their last-used times, blob references and the
 * stored totals change together, so a crash at any moment leaves them
 * consistent.
 *
 * Blob files whose last reference goes are deleted only after the commit,
 * in a second write transaction (holding LMDB's writer lock across
 * processes) that checks they are still unreferenced: deleting them
 * before the commit would leave committed entries without their file if
 * the process died in between, and deleting them after releasing the
 * lock could race with another process taking a new reference. A crash
 * between the two leaves orphan files, which clear and prune sweep.
 *
 * Error handling: an LMDB failure aborts the whole transaction (MAP_FULL
 * and MAP_RESIZED are retried after adjusting the map); a failure that
 * concerns one op (its value cannot be encoded, its blob cannot be
 * written) fails that op only.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <string.h>
#include <xxhash.h>

#include "batch.h"
#include "cache_memo.h"
#include "tgraph/serial.h"

#define FUNCTION_MAX 255
#define ATTEMPTS 48
#define FULL_BYTES ((uint64_t)1 << 20) /* "full" below this much free space */
#define LIMIT_SLACK ((uint64_t)1 << 16) /* a short write stops this near a limit */

/* Per-op state: a PUT's encoded value, and every op's result. */
typedef struct slot {
  void *buf; /* tg_encode output (free()) */
  size_t len;
  uint64_t checksum;
  tg_digest blob;
  bool in_blob;
  bool unencodable; /* res is tg_encode's: the value, not the disk */
  int res;
  uint64_t removed;
} slot;

/* Blob files to delete after the commit. */
typedef struct doomed {
  tg_digest *d;
  size_t n, cap;
  int sweep; /* 0, SWEEP_ORPHANS or SWEEP_ALL */
} doomed;

enum { SWEEP_ORPHANS = 1, SWEEP_ALL = 2 };

typedef struct txctx {
  tg_cache *c;
  MDB_txn *txn;
  tg__cache_stats st;
  bool dirty;     /* st changed */
  doomed *after;  /* blob files that may go after the commit */
} txctx;

static uint64_t sub_clamp(uint64_t a, uint64_t b) { return a > b ? a - b : 0; }

/* ---- blobs ------------------------------------------------------------------ */

static int blob_get(txctx *t, unsigned char k[16], uint64_t *refs, uint64_t *size) {
  MDB_val key = {16, k}, v;
  int rc = mdb_get(t->txn, t->c->db_blobs, &key, &v);
  if (rc) return rc;
  if (v.mv_size != 16) return MDB_CORRUPTED;
  memcpy(refs, v.mv_data, 8);
  memcpy(size, (char *)v.mv_data + 8, 8);
  return MDB_SUCCESS;
}

static int blob_set(txctx *t, unsigned char k[16], uint64_t refs, uint64_t size) {
  unsigned char b[16];
  memcpy(b, &refs, 8);
  memcpy(b + 8, &size, 8);
  MDB_val key = {16, k}, v = {16, b};
  return mdb_put(t->txn, t->c->db_blobs, &key, &v, 0);
}

/* One more reference to s's blob; writes the file if it is missing.
 * *res gets a file error (then nothing changed). */
static int blob_ref(txctx *t, const slot *s, int *res) {
  unsigned char k[16];
  uint64_t refs = 0, size = 0;
  tg__digest_pack(s->blob, k);
  int rc = blob_get(t, k, &refs, &size);
  if (rc && rc != MDB_NOTFOUND) return rc;
  if ((*res = tg__blob_write(t->c, s->blob, s->buf, s->len))) return MDB_SUCCESS;
  if (rc == MDB_NOTFOUND) {
    refs = 0;
    t->st.blob_bytes += s->len;
    t->dirty = true;
  }
  return blob_set(t, k, refs + 1, s->len);
}

/* Drop one reference; the last one deletes the record and the file. A
 * corrupt blob's file goes at once (a later put writes it again). */
static int blob_unref(txctx *t, tg_digest d, bool corrupt) {
  unsigned char k[16];
  uint64_t refs, size;
  tg__digest_pack(d, k);
  if (corrupt) tg__blob_unlink(t->c, d);
  int rc = blob_get(t, k, &refs, &size);
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc) return rc;
  if (refs > 1) return blob_set(t, k, refs - 1, size);
  MDB_val key = {16, k};
  if ((rc = mdb_del(t->txn, t->c->db_blobs, &key, NULL))) return rc;
  t->st.blob_bytes = sub_clamp(t->st.blob_bytes, size);
  t->dirty = true;
  doomed *a = t->after;
  if (a->n == a->cap) {
    size_t cap = a->cap ? 2 * a->cap : 16;
    tg_digest *p = tg__realloc(a->d, cap * sizeof *p);
    if (!p) return MDB_SUCCESS; /* an orphan file; swept later */
    a->d = p, a->cap = cap;
  }
  a->d[a->n++] = d;
  return MDB_SUCCESS;
}

/* ---- entries ------------------------------------------------------------------ */

/* Delete entry k (if expect: only while its checksum is *expect). */
static int del_entry(txctx *t, unsigned char k[16], const uint64_t *expect,
                     bool corrupt, bool *found) {
  MDB_val key = {16, k}, v;
  tg__entry e;
  *found = false;
  int rc = mdb_get(t->txn, t->c->db_entries, &key, &v);
  if (rc == MDB_NOTFOUND) return MDB_SUCCESS;
  if (rc) return rc;
  bool ok = tg__entry_parse(v.mv_data, v.mv_size, &e);
  if (expect && ok && e.checksum != *expect) return MDB_SUCCESS; /* replaced */
  uint64_t inline_size = ok ? e.size : sub_clamp(v.mv_size, TG__REC_HEADER);
  bool in_blob = ok && e.in_blob;
  tg_digest blob = e.blob;
  char fname[FUNCTION_MAX];
  bool counted = ok && e.function_len <= FUNCTION_MAX; /* as put_op wrote it */
  size_t flen = counted ? e.function_len : 0;
  if (flen) memcpy(fname, e.function, flen); /* copied: the record moves */
  if ((rc = mdb_del(t->txn, t->c->db_entries, &key, NULL))) return rc;
  if (counted && (rc = tg__funcs_adjust(t->c, t->txn, fname, flen, -1))) return rc;
  rc = mdb_del(t->txn, t->c->db_used, &key, NULL);
  if (rc && rc != MDB_NOTFOUND) return rc;
  *found = true;
  t->st.entries = sub_clamp(t->st.entries, 1);
  t->dirty = true;
  if (in_blob) return blob_unref(t, blob, corrupt);
  t->st.inline_bytes = sub_clamp(t->st.inline_bytes, inline_size);
  return MDB_SUCCESS;
}

/* last_used = time (force: even if the entry has none or a later one). */
static int set_used(txctx *t, unsigned char k[16], double time, bool force) {
  MDB_val key = {16, k}, v;
  if (!force) {
    int rc = mdb_get(t->txn, t->c->db_used, &key, &v);
    if (rc == MDB_NOTFOUND) return MDB_SUCCESS; /* entry gone */
    if (rc) return rc;
    double old;
    if (v.mv_size == 8 && (memcpy(&old, v.mv_data, 8), old >= time))
      return MDB_SUCCESS;
  }
  v.mv_size = 8;
  v.mv_data = &time;
  return mdb_put(t->txn, t->c->db_used, &key, &v, 0);
}

/* Is the same content already stored under k? */
static bool same_entry(txctx *t, unsigned char k[16], const slot *s) {
  MDB_val key = {16, k}, v;
  tg__entry e;
  return mdb_get(t->txn, t->c->db_entries, &key, &v) == MDB_SUCCESS &&
         tg__entry_parse(v.mv_data, v.mv_size, &e) && e.checksum == s->checksum &&
         e.size == s->len && e.in_blob == s->in_blob &&
         (!e.in_blob || tg_digest_equal(e.blob, s->blob));
}

static int put_op(txctx *t, const tg__cache_op *op, slot *s) {
  unsigned char k[16];
  bool found;
  int rc;
  if (s->res) return MDB_SUCCESS; /* encoding failed */
  tg__digest_pack(op->key, k);
  if (op->has_lineage && ((rc = tg__lineage_put(t->c, t->txn, op)) ||
                          (rc = tg__note_forget(t->c, t->txn, op->lineage))))
    return rc;
  if (same_entry(t, k, s)) {
    if (s->in_blob) s->res = tg__blob_write(t->c, s->blob, s->buf, s->len);
    /* Puts of one key from several threads may reach the writer out of
     * their time order: last_used only moves forward (never before the
     * entry's creation), unless it is missing. */
    MDB_val key = {16, k}, u;
    bool has_used = mdb_get(t->txn, t->c->db_used, &key, &u) == MDB_SUCCESS;
    return set_used(t, k, op->time, !has_used);
  }
  rc = del_entry(t, k, NULL, false, &found);
  if (!rc && s->in_blob) rc = blob_ref(t, s, &s->res);
  if (rc || s->res) return rc;
  size_t flen = op->function ? strlen(op->function) : 0;
  if (flen > FUNCTION_MAX) flen = FUNCTION_MAX;
  if ((rc = tg__funcs_adjust(t->c, t->txn, op->function, flen, +1))) return rc;
  tg__entry e = {s->in_blob, s->len, s->checksum, op->time, op->compute_seconds,
                 op->function, flen, s->buf, s->blob};
  MDB_val key = {16, k}, v = {tg__entry_rec_len(&e), NULL};
  if ((rc = mdb_put(t->txn, t->c->db_entries, &key, &v, MDB_RESERVE))) return rc;
  tg__entry_pack(&e, v.mv_data);
  t->st.entries++;
  if (!s->in_blob) t->st.inline_bytes += s->len;
  t->dirty = true;
  return set_used(t, k, op->time, true);
}

/* ---- pruning ------------------------------------------------------------------ */

typedef struct lru {
  double used;
  unsigned char k[16];
} lru;

static int lru_cmp(const void *a, const void *b) {
  const lru *x = a, *y = b;
  if (x->used != y->used) return x->used < y->used ? -1 : 1;
  return memcmp(x->k, y->k, 16);
}

/* Collect (last_used, key) of every entry. */
static int lru_list(txctx *t, lru **out, size_t *n) {
  MDB_cursor *cur;
  MDB_val k, v;
  size_t cap = 0;
  *out = NULL;
  *n = 0;
  int rc = mdb_cursor_open(t->txn, t->c->db_used, &cur);
  if (rc) return rc;
  while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == MDB_SUCCESS) {
    if (k.mv_size != 16 || v.mv_size != 8) continue;
    if (*n == cap) {
      cap = cap ? 2 * cap : 256;
      lru *p = tg__realloc(*out, cap * sizeof *p);
      if (!p) {
        rc = ENOMEM;
        break;
      }
      *out = p;
    }
    memcpy(&(*out)[*n].used, v.mv_data, 8);
    memcpy((*out)[*n].k, k.mv_data, 16);
    (*n)++;
  }
  mdb_cursor_close(cur);
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* Delete least recently used entries until the total is <= max. */
static int prune_to(txctx *t, uint64_t max, uint64_t *removed) {
  lru *list;
  size_t n;
  if (t->st.inline_bytes + t->st.blob_bytes <= max) return MDB_SUCCESS;
  int rc = lru_list(t, &list, &n);
  if (!rc) qsort(list, n, sizeof *list, lru_cmp);
  for (size_t i = 0; !rc && i < n && t->st.inline_bytes + t->st.blob_bytes > max; i++) {
    bool found;
    rc = del_entry(t, list[i].k, NULL, false, &found);
    if (found) (*removed)++;
  }
  tg__free(list);
  return rc;
}

/* ---- the batch ---------------------------------------------------------------- */

static int clear_all(txctx *t) {
  int rc;
  if ((rc = mdb_drop(t->txn, t->c->db_entries, 0)) ||
      (rc = mdb_drop(t->txn, t->c->db_used, 0)) ||
      (rc = mdb_drop(t->txn, t->c->db_blobs, 0)) ||
      (rc = tg__funcs_clear(t->c, t->txn)))
    return rc;
  memset(&t->st, 0, sizeof t->st);
  t->dirty = true;
  t->after->sweep = SWEEP_ALL;
  return MDB_SUCCESS;
}

static int apply_op(txctx *t, const tg__cache_op *op, slot *s) {
  unsigned char k[16];
  bool found = false;
  int rc = MDB_SUCCESS;
  tg__digest_pack(op->key, k);
  switch (op->type) {
    case TG__OP_PUT:
      return put_op(t, op, s);
    case TG__OP_TOUCH:
      return set_used(t, k, op->time, false);
    case TG__OP_DROP:
      return del_entry(t, k, &op->checksum, true, &found);
    case TG__OP_REMOVE:
      rc = del_entry(t, k, NULL, false, &found);
      s->res = found ? TG_OK : TG_ENOTFOUND;
      return rc;
    case TG__OP_FILEREC: {
      MDB_val key = {16, k}, v = {op->rec_len, op->rec};
      return mdb_put(t->txn, t->c->db_files, &key, &v, 0);
    }
    case TG__OP_CLEAR:
      return clear_all(t);
    case TG__OP_PRUNE:
      if (t->after->sweep < SWEEP_ORPHANS) t->after->sweep = SWEEP_ORPHANS;
      return prune_to(t, op->max_size, &s->removed);
    case TG__OP_RUN:
      return tg__runlog_apply(t->c, t->txn, op);
    case TG__OP_ZERO_STATS:
      return tg__runlog_zero(t->c, t->txn);
    default:
      return EINVAL;
  }
}

static int apply_all(txctx *t, const tg__cache_op *ops, size_t n, slot *slots) {
  int rc = tg__stats_get(t->c, t->txn, &t->st);
  if (rc == TG_EFORMAT) memset(&t->st, 0, sizeof t->st); /* start over */
  else if (rc) return EIO;
  for (size_t i = 0; i < n && !rc; i++) {
    if (ops[i].type != TG__OP_PUT) slots[i].res = TG_OK;
    slots[i].removed = 0;
    rc = apply_op(t, &ops[i], &slots[i]);
  }
  uint64_t pruned = 0;
  /* Over the limit, prune to 90% of it, so a cache kept full does not
   * rescan its entries after every batch. */
  uint64_t max = t->c->max_size;
  if (!rc && max && t->st.inline_bytes + t->st.blob_bytes > max)
    rc = prune_to(t, max - max / 10, &pruned);
  if (!rc && t->dirty) {
    unsigned char b[32];
    tg__stats_pack(&t->st, b);
    MDB_val key = {5, "stats"}, v = {32, b};
    rc = mdb_put(t->txn, t->c->db_meta, &key, &v, 0);
  }
  return rc;
}

/* Encode every PUT's value (outside the transaction: it may be slow). */
static void encode_puts(tg_cache *c, const tg__cache_op *ops, size_t n, slot *slots) {
  tg_encode_opts eo = {TG_ENCODE_OPTS_V1, c->compress, 0};
  for (size_t i = 0; i < n; i++) {
    if (ops[i].type != TG__OP_PUT) continue;
    slot *s = &slots[i];
    tg_error err;
    s->res = tg_encode(ops[i].value, &eo, &s->buf, &s->len, &err);
    if (s->res) {
      s->unencodable = true;
      char hex[33];
      tg_digest_hex(ops[i].key, hex);
      tg__cache_fail(c, s->res, "cache: encoding the value for key %s: %s", hex,
                     err.msg);
      continue;
    }
    s->checksum = XXH3_64bits(s->buf, s->len);
    s->in_blob = s->len > c->inline_max;
    if (s->in_blob) {
      XXH128_hash_t h = XXH3_128bits(s->buf, s->len);
      s->blob = (tg_digest){h.low64, h.high64};
    }
  }
}

/* After the commit: delete the doomed blob files that are still
 * unreferenced, and sweep, inside a write transaction that writes nothing
 * (it only holds the writer lock). Failures leave orphans for later. */
static void delete_doomed(tg_cache *c, const doomed *a) {
  MDB_txn *txn;
  if (!a->n && !a->sweep) return;
  pthread_rwlock_rdlock(&c->maplock);
  if (mdb_txn_begin(c->env, NULL, 0, &txn) == MDB_SUCCESS) {
    for (size_t i = 0; i < a->n; i++) {
      unsigned char k[16];
      tg__digest_pack(a->d[i], k);
      MDB_val key = {16, k}, v;
      if (mdb_get(txn, c->db_blobs, &key, &v) == MDB_NOTFOUND) tg__blob_unlink(c, a->d[i]);
    }
    if (a->sweep) tg__blob_sweep(c, txn, a->sweep == SWEEP_ALL);
    mdb_txn_abort(txn);
  }
  pthread_rwlock_unlock(&c->maplock);
}

/* One write transaction over the batch, retried when the map is full or
 * was grown by another process. Returns an LMDB status. */
static int commit_batch(tg_cache *c, const tg__cache_op *ops, size_t n, slot *slots) {
  int rc = MDB_SUCCESS;
  doomed after = {NULL, 0, 0, 0};
  for (int attempt = 0; attempt < ATTEMPTS; attempt++) {
    MDB_txn *txn;
    after.n = 0, after.sweep = 0;
    pthread_rwlock_rdlock(&c->maplock);
    rc = mdb_txn_begin(c->env, NULL, 0, &txn);
    if (!rc) {
      txctx t = {c, txn, {0, 0, 0}, false, &after};
      rc = apply_all(&t, ops, n, slots);
      if (!rc) rc = mdb_txn_commit(txn);
      else mdb_txn_abort(txn);
    }
    pthread_rwlock_unlock(&c->maplock);
    if (rc == MDB_MAP_RESIZED) {
      if (tg__env_adopt(c)) break;
    } else if (rc == MDB_MAP_FULL) {
      if (tg__env_grow(c)) break;
    } else {
      break;
    }
  }
  if (!rc) {
    tg__env_note_write(c);
    delete_doomed(c, &after);
  }
  tg__free(after.d);
  return rc;
}

/* LMDB reports a short write as EIO. When data.mdb reached the process's
 * file size limit, or its file system is (nearly) full, say that instead
 * (as c's message) and return the code; else 0. */
static int short_write_cause(tg_cache *c, size_t n) {
  char data[4200];
  struct stat st;
  struct statvfs fs;
  struct rlimit lim;
  snprintf(data, sizeof data, "%s/data.mdb", c->dir);
  if (getrlimit(RLIMIT_FSIZE, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
      stat(data, &st) == 0 && (uint64_t)st.st_size + LIMIT_SLACK >= lim.rlim_cur)
    return tg__cache_fail(c, -EFBIG, "cache %s: committing %zu writes: data.mdb "
                          "reached the file size limit (%llu bytes)", c->dir, n,
                          (unsigned long long)lim.rlim_cur);
  if (statvfs(c->dir, &fs) == 0 && (uint64_t)fs.f_bavail * fs.f_frsize < FULL_BYTES)
    return tg__cache_fail(c, TG_ENOSPC, "cache %s: committing %zu writes: short write "
                          "with %llu bytes free on its file system", c->dir, n,
                          (unsigned long long)fs.f_bavail * fs.f_frsize);
  return TG_OK;
}

/* Publish results and counters; returns the first failure. */
static int finish(tg_cache *c, tg__cache_op *ops, size_t n, slot *slots, int fatal) {
  int first = fatal;
  for (size_t i = 0; i < n; i++) {
    int res = fatal ? fatal : slots[i].res;
    if (ops[i].result) *ops[i].result = res;
    if (ops[i].removed) *ops[i].removed = slots[i].removed;
    if (ops[i].type != TG__OP_PUT) continue;
    if (res && !first) first = res;
    /* A value that cannot be encoded is the value's problem; anything
     * else (no space, quota, a read-only file system, a full map) stops
     * results from being stored, which the user is told once. */
    if (res && !slots[i].unencodable) tg__cache_store_failed(c, res);
    if (res && ops[i].tally && ops[i].has_lineage)
      tg__cache_tally_failed(ops[i].tally, ops[i].lineage, res, slots[i].unencodable);
    if (!res) {
      atomic_fetch_add(&c->stores, 1);
      atomic_fetch_add(&c->bytes_written, slots[i].len);
      if (ops[i].tally) {
        atomic_fetch_add(&ops[i].tally->stores, 1);
        atomic_fetch_add(&ops[i].tally->bytes, slots[i].len);
      }
    }
  }
  return first;
}

int tg__batch_apply(tg_cache *c, tg__cache_op *ops, size_t n) {
  slot *slots = tg__calloc(n, sizeof *slots);
  if (!slots) {
    for (size_t i = 0; i < n; i++)
      if (ops[i].result) *ops[i].result = TG_ENOMEM;
    return tg__cache_fail(c, TG_ENOMEM, "cache: out of memory committing writes");
  }
  encode_puts(c, ops, n, slots);
  int rc = commit_batch(c, ops, n, slots);
  int fatal = TG_OK;
  if (rc == EIO) fatal = short_write_cause(c, n);
  if (rc && !fatal) {
    fatal = tg__mdb_code(rc);
    tg__cache_fail(c, fatal, "cache %s: committing %zu writes: %s", c->dir, n,
                   mdb_strerror(rc));
  }
  rc = finish(c, ops, n, slots, fatal);
  for (size_t i = 0; i < n; i++) free(slots[i].buf);
  tg__free(slots);
  return rc;
}
