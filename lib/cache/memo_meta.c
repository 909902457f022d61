/* lib/cache/memo_meta.c: what the cache keeps for the scheduler's
 * memoization besides entries (see cache_memo.h): per-function entry
 * counts in "funcs" and their in-memory set of names, node lineage in
 * "nodes", and the tallies of a compute's stores.
 *
 * "funcs" keys are 'f' followed by the function name (LMDB refuses empty
 * keys, and entries may have no function name); values are u64 counts.
 */
#include <string.h>
#include <xxhash.h>

#include "cache_internal.h"
#include "cache_memo.h"
#include "value/hash_internal.h"

#define NAME_MAX_LEN 255 /* entry records keep at most this much of a name */

/* ---- tallies ------------------------------------------------------------- */

tg__cache_tally *tg__cache_tally_new(void) {
  tg__cache_tally *t = tg__calloc(1, sizeof *t);
  if (!t) return NULL;
  atomic_init(&t->refs, 1);
  pthread_mutex_init(&t->mu, NULL);
  return t;
}

void tg__cache_tally_ref(tg__cache_tally *t) {
  atomic_fetch_add_explicit(&t->refs, 1, memory_order_relaxed);
}

void tg__cache_tally_unref(tg__cache_tally *t) {
  if (t && atomic_fetch_sub_explicit(&t->refs, 1, memory_order_acq_rel) == 1) {
    pthread_mutex_destroy(&t->mu);
    tg__free(t->failed);
    tg__free(t);
  }
}

void tg__cache_tally_failed(tg__cache_tally *t, tg_digest lineage, int code,
                            bool unstorable) {
  pthread_mutex_lock(&t->mu);
  if (t->nfailed == t->capfailed && t->capfailed < TG_EXPLAIN_NOTES_MAX) {
    size_t cap = t->capfailed ? 2 * t->capfailed : 16;
    tg__cache_note *p = tg__realloc(t->failed, cap * sizeof *p);
    if (p) t->failed = p, t->capfailed = cap;
  }
  if (t->nfailed < t->capfailed)
    t->failed[t->nfailed++] = (tg__cache_note){
        lineage, -1, -1, unstorable ? TG_NOTE_UNSTORABLE : TG_NOTE_STORE_FAILED, code};
  pthread_mutex_unlock(&t->mu);
}

/* ---- counts in LMDB ---------------------------------------------------------- */

static size_t fkey(const char *name, size_t len, unsigned char *buf) {
  if (len > NAME_MAX_LEN) len = NAME_MAX_LEN;
  buf[0] = 'f';
  if (len) memcpy(buf + 1, name, len);
  return len + 1;
}

int tg__funcs_adjust(tg_cache *c, MDB_txn *txn, const char *name, size_t len,
                     int delta) {
  unsigned char kb[NAME_MAX_LEN + 1];
  MDB_val k = {fkey(name, len, kb), kb}, v;
  uint64_t n = 0;
  int rc = mdb_get(txn, c->db_funcs, &k, &v);
  if (rc && rc != MDB_NOTFOUND) return rc;
  if (!rc && v.mv_size == 8) memcpy(&n, v.mv_data, 8);
  if (delta < 0 && n <= (uint64_t)-delta) /* the last one: drop the record */
    return rc == MDB_NOTFOUND ? MDB_SUCCESS : mdb_del(txn, c->db_funcs, &k, NULL);
  n += (uint64_t)(int64_t)delta;
  v.mv_size = 8;
  v.mv_data = &n;
  return mdb_put(txn, c->db_funcs, &k, &v, 0);
}

int tg__funcs_init(tg_cache *c, MDB_txn *txn) {
  MDB_val mk = {5, "funcs"}, v, k;
  int rc = mdb_get(txn, c->db_meta, &mk, &v);
  if (rc != MDB_NOTFOUND) return rc;
  MDB_cursor *cur; /* count what an older cache holds, once */
  if ((rc = mdb_drop(txn, c->db_funcs, 0)) ||
      (rc = mdb_cursor_open(txn, c->db_entries, &cur)))
    return rc;
  while ((rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) == MDB_SUCCESS) {
    tg__entry e;
    char name[NAME_MAX_LEN];
    if (!tg__entry_parse(v.mv_data, v.mv_size, &e) || e.function_len > NAME_MAX_LEN)
      continue;
    memcpy(name, e.function, e.function_len); /* the put below moves pages */
    if ((rc = tg__funcs_adjust(c, txn, name, e.function_len, +1))) break;
  }
  mdb_cursor_close(cur);
  if (rc != MDB_NOTFOUND) return rc;
  uint64_t one = 1;
  v.mv_size = 8;
  v.mv_data = &one;
  return mdb_put(txn, c->db_meta, &mk, &v, 0);
}

int tg__funcs_clear(tg_cache *c, MDB_txn *txn) {
  int rc = mdb_drop(txn, c->db_funcs, 0);
  return rc ? rc : mdb_drop(txn, c->db_nodes, 0);
}

/* ---- the in-memory set of names ------------------------------------------------ */

static size_t name_slot(char **tab, size_t cap, const char *name, size_t len) {
  size_t mask = cap - 1;
  for (size_t i = XXH3_64bits(name, len) & mask;; i = (i + 1) & mask)
    if (!tab[i] || (strncmp(tab[i], name, len) == 0 && tab[i][len] == '\0')) return i;
}

/* Add name[0..len) (funcs_mu held). Out of memory: the name is left out,
 * which only costs lookups of it. */
static void set_add(tg_cache *c, const char *name, size_t len) {
  if (len > NAME_MAX_LEN) len = NAME_MAX_LEN;
  if ((c->fnames_n + 1) * 2 > c->fnames_cap) {
    size_t cap = c->fnames_cap ? 2 * c->fnames_cap : 16;
    char **tab = tg__calloc(cap, sizeof *tab);
    if (!tab) return;
    for (size_t i = 0; i < c->fnames_cap; i++)
      if (c->fnames[i]) tab[name_slot(tab, cap, c->fnames[i], strlen(c->fnames[i]))] = c->fnames[i];
    tg__free(c->fnames);
    c->fnames = tab;
    c->fnames_cap = cap;
  }
  size_t s = name_slot(c->fnames, c->fnames_cap, name, len);
  if (c->fnames[s] || !(c->fnames[s] = tg__malloc(len + 1))) return;
  memcpy(c->fnames[s], name, len);
  c->fnames[s][len] = '\0';
  c->fnames_n++;
}

void tg__funcs_note(tg_cache *c, const char *name) {
  pthread_mutex_lock(&c->funcs_mu);
  set_add(c, name, strlen(name));
  pthread_mutex_unlock(&c->funcs_mu);
}

void tg__funcs_forget(tg_cache *c) {
  pthread_mutex_lock(&c->funcs_mu);
  tg__funcs_free(c);
  c->funcs_loaded = false;
  pthread_mutex_unlock(&c->funcs_mu);
}

void tg__funcs_free(tg_cache *c) {
  for (size_t i = 0; i < c->fnames_cap; i++) tg__free(c->fnames[i]);
  tg__free(c->fnames);
  c->fnames = NULL;
  c->fnames_cap = c->fnames_n = 0;
}

/* LMDB's last committed transaction id (maplock shared: a resize remaps
 * the meta pages this reads). */
static size_t last_txnid(tg_cache *c) {
  MDB_envinfo info;
  pthread_rwlock_rdlock(&c->maplock);
  mdb_env_info(c->env, &info);
  pthread_rwlock_unlock(&c->maplock);
  return info.me_last_txnid;
}

bool tg__cache_funcs_refresh(tg_cache *c) {
  if (tg__cache_usable(c)) return false;
  if (!c->env || c->funcs_unknown) return true;
  size_t last = last_txnid(c);
  pthread_mutex_lock(&c->funcs_mu);
  bool fresh = c->funcs_loaded && c->funcs_txnid == last;
  pthread_mutex_unlock(&c->funcs_mu);
  if (fresh) return true;
  MDB_txn *txn;
  MDB_cursor *cur;
  MDB_val k, v;
  if (tg__read_begin(c, &txn)) return true;
  size_t id = mdb_txn_id(txn);
  if (mdb_cursor_open(txn, c->db_funcs, &cur) == MDB_SUCCESS) {
    /* funcs_mu inside the read transaction: never the other way round */
    pthread_mutex_lock(&c->funcs_mu);
    while (mdb_cursor_get(cur, &k, &v, MDB_NEXT) == MDB_SUCCESS)
      if (k.mv_size >= 1) set_add(c, (const char *)k.mv_data + 1, k.mv_size - 1);
    c->funcs_loaded = true;
    c->funcs_txnid = id;
    pthread_mutex_unlock(&c->funcs_mu);
    mdb_cursor_close(cur);
  }
  tg__read_end(c, txn);
  return true;
}

bool tg__cache_fn_has(tg_cache *c, const char *name) {
  if (c->funcs_unknown) return true;
  pthread_mutex_lock(&c->funcs_mu);
  bool has = c->fnames_n &&
             c->fnames[name_slot(c->fnames, c->fnames_cap, name, strlen(name))] != NULL;
  pthread_mutex_unlock(&c->funcs_mu);
  return has;
}

/* ---- lineage ----------------------------------------------------------------- */

static void put_str(tg__hasher *h, const char *s) {
  uint64_t n = strlen(s);
  tg__hasher_update(h, &n, 8);
  tg__hasher_update(h, s, n);
}

tg_digest tg__lineage_id(const char *function, const char *node_key) {
  tg__hasher h;
  tg__hasher_init(&h);
  tg__hasher_update(&h, "tgline1", 7);
  put_str(&h, function);
  put_str(&h, node_key);
  return tg__hasher_final(&h);
}

int tg__lineage_put(tg_cache *c, MDB_txn *txn, const tg__cache_op *op) {
  unsigned char k[16], rec[32];
  tg__digest_pack(op->lineage, k);
  tg__digest_pack(op->key, rec);
  tg__digest_pack(op->fnid, rec + 16);
  MDB_val key = {16, k}, v = {32, rec};
  return mdb_put(txn, c->db_nodes, &key, &v, 0);
}

int tg__cache_lineage_get(tg_cache *c, tg_digest id, tg_digest *key, tg_digest *fnid) {
  MDB_txn *txn;
  if (tg__cache_usable(c) || !c->env || c->funcs_unknown || tg__read_begin(c, &txn))
    return TG_ENOTFOUND;
  unsigned char k[16];
  tg__digest_pack(id, k);
  MDB_val kv = {16, k}, v;
  int rc = mdb_get(txn, c->db_nodes, &kv, &v) == MDB_SUCCESS && v.mv_size == 32
               ? TG_OK
               : TG_ENOTFOUND;
  if (rc == TG_OK) {
    *key = tg__digest_unpack(v.mv_data);
    *fnid = tg__digest_unpack((const unsigned char *)v.mv_data + 16);
  }
  tg__read_end(c, txn);
  return rc;
}
