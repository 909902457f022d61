/* lib/cache/runlog.c: what the cache keeps of the computes using it
 * besides entries: statistics over time ("meta"/"runs": hits, misses and
 * stores summed since creation or tg_cache_zero_stats, and the last
 * compute's) and notes of why a node's result was not stored ("nodes",
 * key 'n' + lineage id for a failed store, 'f' + tg__func_note_id for a
 * function's calls under the threshold). Both arrive as one RUN op per
 * compute; the computes queued while the writer is busy or waiting merge
 * into one op (tg__runlog_merge). The writer applies it inside its
 * batch's write transaction, so several processes adding their counts
 * at once lose none (LMDB has one writer at a time across processes).
 * Layouts are in record.c.
 */
#include <string.h>

#include "cache_internal.h"
#include "cache_memo.h"

/* The payload of a RUN op (op->rec). */
typedef struct tg__run_rec {
  uint64_t runs;               /* computes merged into it (>= 1) */
  tg_cache_run_counts counts;  /* their sum */
  tg_cache_run_counts last;    /* the last one's */
  double time;                 /* the last one's end */
  size_t n;
  tg__cache_note notes[];      /* later notes of an id replace earlier ones */
} tg__run_rec;

static const MDB_val runs_key = {4, "runs"};

/* "nodes" key of the note of id: 'n' for a node's, 'f' for a function's. */
static void note_key(tg_digest id, bool function, unsigned char k[17]) {
  k[0] = function ? 'f' : 'n';
  tg__digest_pack(id, k + 1);
}

tg_digest tg__func_note_id(const char *function) {
  return tg__lineage_id(function, "");
}

static int stats_read(tg_cache *c, MDB_txn *txn, tg_cache_stats *s) {
  MDB_val k = runs_key, v;
  memset(s, 0, sizeof *s);
  int rc = mdb_get(txn, c->db_meta, &k, &v);
  /* A malformed record starts over: statistics are not worth a failure. */
  if (rc == MDB_SUCCESS && !tg__runstats_parse(v.mv_data, v.mv_size, s))
    memset(s, 0, sizeof *s);
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

static int stats_write(tg_cache *c, MDB_txn *txn, const tg_cache_stats *s) {
  unsigned char b[TG__RUNSTATS_LEN];
  tg__runstats_pack(s, b);
  MDB_val k = runs_key, v = {sizeof b, b};
  return mdb_put(txn, c->db_meta, &k, &v, 0);
}

static void add(tg_cache_run_counts *to, const tg_cache_run_counts *n) {
  to->hits += n->hits;
  to->misses += n->misses;
  to->stores += n->stores;
  to->bytes_read += n->bytes_read;
  to->bytes_written += n->bytes_written;
}

int tg__runlog_apply(tg_cache *c, MDB_txn *txn, const tg__cache_op *op) {
  const tg__run_rec *r = op->rec;
  tg_cache_stats s;
  int rc = stats_read(c, txn, &s);
  if (rc) return rc;
  if (s.since == 0) s.since = r->time;
  s.runs += r->runs;
  add(&s.total, &r->counts);
  s.last = r->last;
  s.last_time = r->time;
  if ((rc = stats_write(c, txn, &s))) return rc;
  for (size_t i = 0; i < r->n && !rc; i++) {
    unsigned char k[17], b[TG__NOTE_LEN];
    note_key(r->notes[i].lineage, tg__note_of_function(r->notes[i].kind), k);
    MDB_val key = {sizeof k, k}, v = {sizeof b, b};
    if (r->notes[i].kind == TG_NOTE_NONE) {
      rc = mdb_del(txn, c->db_nodes, &key, NULL);
      if (rc == MDB_NOTFOUND) rc = MDB_SUCCESS;
      continue;
    }
    tg__note_pack(&r->notes[i], b);
    rc = mdb_put(txn, c->db_nodes, &key, &v, 0);
  }
  return rc;
}

int tg__runlog_zero(tg_cache *c, MDB_txn *txn) {
  tg_cache_stats s;
  int rc = stats_read(c, txn, &s);
  if (rc) return rc;
  s.runs = 0;
  memset(&s.total, 0, sizeof s.total);
  s.since = tg__cache_now();
  return stats_write(c, txn, &s);
}

int tg__note_forget(tg_cache *c, MDB_txn *txn, tg_digest lineage) {
  unsigned char k[17];
  note_key(lineage, false, k);
  MDB_val key = {sizeof k, k};
  int rc = mdb_del(txn, c->db_nodes, &key, NULL);
  return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

int tg__cache_record_run(tg_cache *c, const tg_cache_run_counts *counts,
                         const tg__cache_note *notes, size_t n) {
  if (c->readonly || !c->env || c->funcs_unknown) return TG_OK;
  tg__run_rec *r = tg__malloc(sizeof *r + n * sizeof *notes);
  if (!r) return TG_ENOMEM;
  r->runs = 1;
  r->counts = r->last = *counts;
  r->time = tg__cache_now();
  r->n = n;
  if (n) memcpy(r->notes, notes, n * sizeof *notes);
  tg__cache_op op = {.type = TG__OP_RUN, .rec = r};
  return tg__writer_queue(c, &op) ? TG_OK : TG_ENOMEM;
}

bool tg__runlog_merge(tg__cache_op *queued, tg__cache_op *later) {
  tg__run_rec *q = queued->rec;
  const tg__run_rec *l = later->rec;
  size_t extra = 0;
  for (size_t i = 0; i < l->n; i++) {
    if (!tg__note_of_function(l->notes[i].kind)) return false;
    bool found = false;
    for (size_t j = 0; j < q->n && !found; j++)
      found = tg_digest_equal(q->notes[j].lineage, l->notes[i].lineage) &&
              tg__note_of_function(q->notes[j].kind);
    extra += !found;
  }
  if (extra) {
    tg__run_rec *p = tg__realloc(q, sizeof *q + (q->n + extra) * sizeof *q->notes);
    if (!p) return false;
    queued->rec = q = p;
  }
  for (size_t i = 0; i < l->n; i++) {
    size_t j = 0;
    while (j < q->n && !(tg_digest_equal(q->notes[j].lineage, l->notes[i].lineage) &&
                         tg__note_of_function(q->notes[j].kind)))
      j++;
    q->notes[j] = l->notes[i];
    if (j == q->n) q->n++;
  }
  q->runs += l->runs;
  add(&q->counts, &l->counts);
  q->last = l->last;
  q->time = l->time;
  tg__free(later->rec);
  later->rec = NULL;
  return true;
}

int tg__cache_note_get(tg_cache *c, tg_digest id, bool function, tg__cache_note *out) {
  MDB_txn *txn;
  if (tg__cache_usable(c) || !c->env || c->funcs_unknown || tg__read_begin(c, &txn))
    return TG_ENOTFOUND;
  unsigned char k[17];
  note_key(id, function, k);
  MDB_val kv = {sizeof k, k}, v;
  int rc = mdb_get(txn, c->db_nodes, &kv, &v) == MDB_SUCCESS &&
                   tg__note_parse(v.mv_data, v.mv_size, out)
               ? TG_OK
               : TG_ENOTFOUND;
  tg__read_end(c, txn);
  if (rc == TG_OK) out->lineage = id;
  return rc;
}

int tg_cache_get_stats(tg_cache *c, tg_cache_stats *out) {
  if (!c || !out) return TG_EINVAL;
  memset(out, 0, sizeof *out);
  int rc = tg__cache_usable(c);
  if (rc || !c->env) return rc;
  MDB_txn *txn;
  if ((rc = tg__read_begin(c, &txn)))
    return tg__cache_fail(c, rc, "cache %s: cannot read: %s", c->dir, tg_strerror(rc));
  rc = stats_read(c, txn, out);
  tg__read_end(c, txn);
  if (rc) {
    memset(out, 0, sizeof *out);
    return tg__cache_fail(c, tg__mdb_code(rc), "cache %s: reading statistics: %s", c->dir,
                          mdb_strerror(rc));
  }
  return TG_OK;
}

int tg_cache_zero_stats(tg_cache *c) {
  if (!c) return TG_EINVAL;
  int rc = tg__cache_usable(c);
  if (rc) return rc;
  if (c->readonly)
    return tg__cache_fail(c, TG_EACCES, "cache %s is read-only: cannot zero its "
                          "statistics", c->dir);
  int res = TG_OK;
  tg__cache_op op = {.type = TG__OP_ZERO_STATS, .result = &res};
  return tg__writer_call(c, &op);
}
