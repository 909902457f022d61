/* lib/cache/cache_memo.h: what memoization (lib/memo/) uses of the
 * cache beyond the public API: sized lookups, puts that record a node's
 * lineage and are tallied per compute, the per-function entry counts that
 * decide whether a lookup is worth making, and the store threshold.
 *
 * Per-function counts ("funcs" database: function name -> u64 number of
 * entries made by it) are kept in the same write transactions as the
 * entries, so they are exact across processes, except that an entry
 * removed as corrupt (its record unreadable) keeps its count: a stale
 * count only costs lookups. This process keeps the set of names with
 * entries in memory, reloaded when another commit happened (LMDB's last
 * transaction id changed) and extended at once by its own puts; names
 * are dropped from it only by tg_cache_clear (a name whose entries were
 * pruned or removed again only costs lookups). A cache created before the counts existed has them rebuilt
 * when it is first opened writable; read-only, every function is assumed
 * to have entries.
 *
 * Notes ("nodes" database): why results that ran were not stored,
 * written with the compute's record (runlog.c): per node ('n' + lineage
 * id) a failed store, dropped when a result is stored for the node; per
 * function ('f' + tg__func_note_id) calls under the threshold.
 *
 * Lineage ("nodes" database): per node identity (function name and node
 * key, see tg__lineage_id) the Merkle key and function identity of the
 * last result stored for it, so a dry run can say why a node misses
 * ("an input changed", "the function changed").
 *
 * Thread safety: every call is thread-safe. A tally is shared by the
 * compute that made it and the writer; it is freed by its last unref.
 */
#ifndef TG_CACHE_MEMO_H
#define TG_CACHE_MEMO_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "tgraph/cache.h"
#include "tgraph/graph.h" /* tg_explain_note: the kinds of notes */

/* Why a result was not stored (a tg_explain_note and its figures), kept
 * for dry runs (runlog.c): a failed store per node identity, a call
 * under the threshold or of a fast function per function (the figures
 * of its last such call). */
typedef struct tg__cache_note {
  tg_digest lineage;        /* failed stores: tg__lineage_id of the node;
                               else tg__func_note_id of the function */
  double seconds, threshold;/* the call's time and the threshold, or -1 */
  int kind;                 /* tg_explain_note; TG_NOTE_NONE in a run's
                               record: drop the function's note */
  int code;                 /* a failed store's TG_* code, else 0 */
} tg__cache_note;

/* Committed stores of one compute, counted by the writer, which also
 * notes the puts with lineage that failed. */
typedef struct tg__cache_tally {
  _Atomic uint32_t refs;
  _Atomic uint64_t stores; /* committed puts */
  _Atomic uint64_t bytes;  /* their stored (encoded) bytes */
  pthread_mutex_t mu;      /* guards failed */
  tg__cache_note *failed;  /* puts that failed (kind STORE_FAILED or
                              UNSTORABLE), at most TG_EXPLAIN_NOTES_MAX */
  size_t nfailed, capfailed;
} tg__cache_tally;

/* A new tally with one reference; NULL when out of memory. */
tg__cache_tally *tg__cache_tally_new(void);
void tg__cache_tally_ref(tg__cache_tally *t);
void tg__cache_tally_unref(tg__cache_tally *t); /* t may be NULL */
/* The writer: a put with lineage of this tally failed (code; unstorable:
 * its value could not be encoded). Out of memory: not noted. */
void tg__cache_tally_failed(tg__cache_tally *t, tg_digest lineage, int code,
                            bool unstorable);

/* What tg__cache_put_ex records besides the value. */
typedef struct tg__cache_putx {
  const char *function;     /* name of the function (copied); NULL = none */
  double compute_seconds;
  bool has_lineage;         /* record lineage -> (key, fnid) */
  tg_digest lineage;        /* tg__lineage_id of the node */
  tg_digest fnid;           /* the function's identity digest */
  tg__cache_tally *tally;   /* NULL, or counts the put once committed (a
                               reference is taken) */
} tg__cache_putx;

/* tg_cache_put with lineage and a tally. Marks the function as having
 * entries in this process at once. */
int tg__cache_put_ex(tg_cache *c, tg_digest key, tg_value *v,
                     const tg__cache_putx *x);

/* tg_cache_get that also gives the stored bytes of a hit in *size. */
int tg__cache_get_sized(tg_cache *c, tg_digest key, tg_value **out /* OUT */,
                        uint64_t *size /* OUT */);

/* Reload the names of functions with entries if another commit happened
 * since the last load. Call once before a series of tg__cache_fn_has.
 * Returns whether c is usable in this process (tg__cache_usable), which
 * a compute checks once: getpid() is a system call. */
bool tg__cache_funcs_refresh(tg_cache *c);
/* Whether function `name` may have entries (see the file comment). */
bool tg__cache_fn_has(tg_cache *c, const char *name);

/* Identity of a node for its lineage: XXH3-128 over "tgline1", then the
 * function name and the node key, each as u64 length + bytes. */
tg_digest tg__lineage_id(const char *function, const char *node_key);
/* The Merkle key and function identity last stored for lineage id:
 * TG_OK, or TG_ENOTFOUND. */
int tg__cache_lineage_get(tg_cache *c, tg_digest id, tg_digest *key /* OUT */,
                          tg_digest *fnid /* OUT */);

/* Queue the record of one compute (counts; notes[0..n) copied) for the
 * writer, which commits it with its next batch; not waited for. Only for
 * a cache found usable in this process during the compute (the value of
 * tg__cache_funcs_refresh). Nothing on a read-only cache. TG_OK or
 * TG_ENOMEM. */
int tg__cache_record_run(tg_cache *c, const tg_cache_run_counts *counts,
                         const tg__cache_note *notes, size_t n);
/* Whether a note of this kind is kept per function (else per node). */
static inline bool tg__note_of_function(int kind) {
  return kind == TG_NOTE_NONE || kind == TG_NOTE_UNDER_THRESHOLD ||
         kind == TG_NOTE_FAST_FUNCTION;
}
/* The id of function's note. */
tg_digest tg__func_note_id(const char *function);
/* The note kept for id (a node's lineage id, or with function set a
 * tg__func_note_id): TG_OK (out->lineage is id) or TG_ENOTFOUND. */
int tg__cache_note_get(tg_cache *c, tg_digest id, bool function,
                       tg__cache_note *out /* OUT */);

/* The cache's store threshold in seconds (tg_cache_opts
 * .min_compute_seconds resolved: the default for 0; negative: store
 * every result). */
double tg__cache_min_seconds(const tg_cache *c);

#endif /* TG_CACHE_MEMO_H */
