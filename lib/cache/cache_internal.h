/* lib/cache/cache_internal.h: the tg_cache object and the internal calls
 * shared by the cache's files: store.c (open, close, the write calls),
 * lookup.c (get, contains, list, info), env.c (LMDB environment, read
 * transactions, map growth), record.c (stored record layouts), blob.c
 * (blob files), writer.c (the writer thread and its queue), batch.c (a
 * batch in one write transaction), check.c (tg_cache_check), filehash.c
 * (tg_cache_file_hash), runlog.c (the computes' statistics and notes),
 * opened.c (directories open in this process), memo_meta.c (function
 * counts, lineage, tallies), validate.c (checking data.mdb before LMDB
 * maps it). cache_memo.h is what memoization (lib/memo/) uses.
 *
 * On-disk layout of a cache directory DIR:
 *   DIR/data.mdb, DIR/lock.mdb   one LMDB environment, named databases:
 *     "entries"  key (16 bytes) -> entry record (record.c)
 *     "used"     key (16 bytes) -> f64 last-used time (kept apart so a hit
 *                only rewrites 8 bytes, never the whole entry)
 *     "blobs"    blob digest (16) -> blob record: references, size
 *     "files"    XXH3-128 of a path (16) -> file record (filehash.c)
 *     "meta"     "stats" -> entries, inline bytes, blob bytes;
 *                "funcs" -> u64 1 once "funcs" holds every entry's count;
 *                "runs" -> statistics of the computes (runlog.c)
 *     "funcs"    function name -> u64 entries made by it (cache_memo.h)
 *     "nodes"    lineage id (16) -> Merkle key (16), function id (16);
 *                'n' + lineage id (17) -> note: storing the node's
 *                last result failed; 'f' + tg__func_note_id (17) ->
 *                note: the function's calls were not stored (runlog.c)
 *   DIR/blobs/ab/cdef...         blob files, named by the XXH3-128 of their
 *                                bytes (32 hex digits, hi then lo)
 *   DIR/blobs/tmp/<hex>.tmp.XXXXXX  blobs being written, locked by their
 *                                writer (blob.c)
 *   DIR/data.mdb.checked         stamp: data.mdb as this library last left
 *                                it (env.c), so opening may skip the walk
 *   DIR/damaged-<UTC time>/      data.mdb and lock.mdb of an environment
 *                                found damaged when opening (env.c)
 *
 * Locking: `maplock` is a writer-preferring rwlock. Every thread of this
 * process holds it shared while it has an LMDB transaction open (read or
 * write), and exclusively while it changes the map size, because LMDB
 * allows mdb_env_set_mapsize() only when no transaction of the process is
 * active. Never take it shared twice on one thread (a waiting exclusive
 * locker would deadlock it). Lock order: maplock, then pool_mu / q_mu /
 * funcs_mu.
 *
 * Blob files are created and deleted only inside an LMDB write
 * transaction, whose lock is exclusive across processes, so a blob
 * reference and its file change together.
 */
#ifndef TG_CACHE_INTERNAL_H
#define TG_CACHE_INTERNAL_H

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "internal.h"
#include "tgraph/cache.h"

enum {
  TG__OP_PUT = 1,   /* store value under key */
  TG__OP_TOUCH,     /* record a hit: last_used = time */
  TG__OP_DROP,      /* remove a corrupt entry (if its checksum still matches) */
  TG__OP_REMOVE,    /* tg_cache_remove */
  TG__OP_FILEREC,   /* store a "files" record */
  TG__OP_CLEAR,     /* tg_cache_clear */
  TG__OP_PRUNE,     /* tg_cache_prune */
  TG__OP_RUN,       /* one compute's record: rec is a tg__run_rec (runlog.c) */
  TG__OP_ZERO_STATS,/* tg_cache_zero_stats */
};

/* One queued write. Synchronous ops (REMOVE, CLEAR, PRUNE) point into the
 * waiting caller's stack for their results. */
typedef struct tg__cache_op {
  int type;
  tg_digest key;
  double time;             /* PUT: created; TOUCH: last used */
  tg_value *value;         /* PUT: a reference, released by the writer */
  char *function;          /* PUT: copy, may be NULL */
  double compute_seconds;  /* PUT */
  bool has_lineage;        /* PUT: record lineage -> (key, fnid) */
  tg_digest lineage, fnid; /* PUT */
  struct tg__cache_tally *tally; /* PUT: NULL or a reference */
  uint64_t checksum;       /* DROP */
  uint64_t max_size;       /* PRUNE */
  void *rec;               /* FILEREC: tg__malloc'ed record bytes; RUN:
                              a tg__malloc'ed tg__run_rec */
  size_t rec_len;
  int *result;             /* sync ops: status */
  uint64_t *removed;       /* PRUNE: entries removed */
} tg__cache_op;

struct tg_cache {
  char *dir;
  dev_t dir_dev;            /* the directory's identity (opened.c) */
  ino_t dir_ino;
  bool registered;          /* listed in opened.c */
  pid_t pid;                /* opener; other processes get TG_ESTATE */
  bool readonly;
  char *warning;            /* NULL or tg__malloc'ed: set while opening */
  _Atomic(char *) store_warning; /* NULL, or set once by the writer when
                            a store fails (tg__cache_store_failed) */
  /* data.mdb as this process last left it (env.c): written to the stamp
   * file at close when the file is still exactly that. */
  bool known;               /* the fields below are set */
  dev_t data_dev;
  ino_t data_ino;
  uint64_t data_size;
  int64_t data_mtime_ns;
  uint64_t max_size;
  size_t inline_max;
  int compress;
  double min_seconds;       /* store threshold (cache_memo.h) */

  pthread_mutex_t err_mu;   /* guards errmsg */
  char errmsg[256];

  MDB_env *env;             /* NULL: read-only without a database */
  bool nolock;              /* opened MDB_NOLOCK (read-only directory) */
  MDB_dbi db_entries, db_used, db_blobs, db_files, db_meta, db_funcs, db_nodes;
  pthread_rwlock_t maplock; /* see the file comment */
  pthread_mutex_t pool_mu;  /* guards pool: reset read transactions */
  MDB_txn **pool;
  size_t pool_n, pool_cap;

  _Atomic uint64_t hits, misses, stores, corrupt, bytes_read, bytes_written;
  _Atomic uint64_t file_reads; /* tg_cache_file_hash calls that read */

  /* names of functions with entries (memo_meta.c) */
  pthread_mutex_t funcs_mu; /* guards the fields below */
  char **fnames;            /* open addressing, NULL = empty slot */
  size_t fnames_cap, fnames_n;
  bool funcs_loaded;        /* loaded at least once */
  bool funcs_unknown;       /* no counts stored: assume every function */
  size_t funcs_txnid;       /* LMDB transaction id of the last load */

  /* writer (read-write caches only) */
  pthread_t thread;
  bool thread_started;
  pthread_mutex_t q_mu;     /* guards everything below */
  pthread_cond_t q_cv;      /* wakes the writer */
  pthread_cond_t done_cv;   /* wakes callers waiting for seq_done */
  tg__cache_op *ops;
  size_t n_ops, cap_ops;
  size_t run_at;              /* 1 + index in ops of the queued RUN op
                                 runs merge into (tg__runlog_merge), or 0 */
  size_t n_urgent;          /* queued ops other than TOUCH */
  bool flush_wanted;        /* a caller waits: commit even TOUCH-only */
  bool stop;
  uint64_t seq_queued, seq_done;
  int first_err;            /* first failure since the last flush */
  char first_msg[256];
  double last_reader_check;
};

/* Stored totals ("meta" / "stats"). */
typedef struct tg__cache_stats {
  uint64_t entries, inline_bytes, blob_bytes;
} tg__cache_stats;

/* Parsed entry record (record.c). Pointers borrow the record's bytes. */
typedef struct tg__entry {
  bool in_blob;
  uint64_t size;           /* stored bytes */
  uint64_t checksum;       /* XXH3-64 of the stored bytes */
  double created, compute_seconds;
  const char *function;
  size_t function_len;
  const void *payload;     /* inline: the encoded value */
  tg_digest blob;          /* blob: its digest */
} tg__entry;

/* ---- record.c ------------------------------------------------------------ */
#define TG__REC_HEADER 40
size_t tg__entry_rec_len(const tg__entry *e);
/* Write e into rec (tg__entry_rec_len bytes; payload copied when inline). */
void tg__entry_pack(const tg__entry *e, void *rec);
/* Parse and bounds-check a record; false when malformed. */
bool tg__entry_parse(const void *rec, size_t len, tg__entry *e /* OUT */);
void tg__stats_pack(const tg__cache_stats *s, unsigned char out[32]);
bool tg__stats_parse(const void *p, size_t len, tg__cache_stats *s /* OUT */);
void tg__digest_pack(tg_digest d, unsigned char out[16]);
tg_digest tg__digest_unpack(const void *p);

/* ---- lookup.c ------------------------------------------------------------- */
/* What tg__entry_load found besides the value. */
typedef struct tg__loaded {
  bool found;              /* there is an entry (perhaps a bad one) */
  bool in_blob;            /* its value is in blob file `blob` */
  uint64_t size, checksum; /* as its record says (0 when malformed) */
  tg_digest blob;
} tg__loaded;
/* Load and verify the entry under key, in its own read transaction (none
 * may be held): TG_OK and *out a new reference; TG_ENOTFOUND with
 * !got->found when there is none; when got->found, a code for which
 * tg__cache_bad_data() holds means the stored bytes are bad (err says
 * how; it may be NULL). Counts nothing, changes nothing. */
int tg__entry_load(tg_cache *c, tg_digest key, tg_value **out /* OUT */,
                   tg__loaded *got /* OUT */, tg_error *err);
/* Call fn on each record of db_entries, in one read transaction (none may
 * be held), until it returns other than TG_OK; returns that code, or
 * TG_OK, or the code of a failed read. */
int tg__entries_each(tg_cache *c, int (*fn)(void *ctx, MDB_txn *txn, MDB_val *k, MDB_val *v),
                     void *ctx);
/* Does failure rc mean the stored bytes are bad (rather than, say, memory
 * or descriptors running out, which must not cost the entry)? */
bool tg__cache_bad_data(int rc);

/* ---- store.c --------------------------------------------------------------- */
/* Set c's last error message (thread-safe) and return code. */
int tg__cache_fail(tg_cache *c, int code, const char *fmt, ...) TG__PRINTF(3, 4);
double tg__cache_now(void); /* Unix time, seconds */
/* TG_OK when c may be used by this process (TG_ESTATE after fork()). */
int tg__cache_usable(tg_cache *c);
/* tg_cache_open with an initial LMDB map size (0 = default); for tests. */
int tg__cache_open_mapsize(const char *dir, const tg_cache_opts *opts,
                           size_t mapsize, tg_cache **out, tg_error *err);
/* Number of tg_cache_file_hash calls on c that read the file. */
uint64_t tg__cache_file_reads(const tg_cache *c);

/* A store failed with code (the message is in c's errmsg): the first
 * time, set the warning that results are not being stored and why. */
void tg__cache_store_failed(tg_cache *c, int code);

/* ---- fstype.c ------------------------------------------------------------ */
/* Refuse a cache directory (or, when missing, its nearest existing
 * parent) on a network or FUSE file system unless allowed, or forced by
 * TGRAPH_CACHE_ON_NETWORK_FS=1: TG_OK, or -EREMOTE (TG_EINVAL for a bad
 * environment variable) with err saying what, where and the fix. Creates
 * nothing. */
int tg__cache_fs_check(const char *dir, bool allow, tg_error *err);

/* ---- memo_meta.c --------------------------------------------------------- */
/* Inside a write transaction: add delta to the entry count of function
 * name[0..len) (the record goes at zero). */
int tg__funcs_adjust(tg_cache *c, MDB_txn *txn, const char *name, size_t len,
                     int delta);
/* Inside the opening write transaction: count every entry's function
 * unless "meta"/"funcs" says the counts are there. An LMDB status. */
int tg__funcs_init(tg_cache *c, MDB_txn *txn);
/* Clear the counts (tg_cache_clear). An LMDB status. */
int tg__funcs_clear(tg_cache *c, MDB_txn *txn);
/* Record lineage of a PUT op. An LMDB status. */
int tg__lineage_put(tg_cache *c, MDB_txn *txn, const tg__cache_op *op);
void tg__funcs_free(tg_cache *c);
/* This process just queued an entry of function `name`. */
void tg__funcs_note(tg_cache *c, const char *name);
/* Forget the names (after tg_cache_clear). */
void tg__funcs_forget(tg_cache *c);

/* ---- record.c: run statistics and notes ---------------------------------- */
#define TG__RUNSTATS_LEN 112
#define TG__NOTE_LEN 24
struct tg__cache_note;
void tg__runstats_pack(const tg_cache_stats *s, unsigned char out[TG__RUNSTATS_LEN]);
bool tg__runstats_parse(const void *rec, size_t len, tg_cache_stats *s /* OUT */);
/* The note's lineage is its key in "nodes", not part of the record. */
void tg__note_pack(const struct tg__cache_note *n, unsigned char out[TG__NOTE_LEN]);
bool tg__note_parse(const void *rec, size_t len, struct tg__cache_note *n /* OUT */);

/* ---- runlog.c ---------------------------------------------------------------- */
/* Inside a write transaction: apply a RUN op (add its counts, write its
 * notes) / start the totals over. LMDB statuses. */
int tg__runlog_apply(tg_cache *c, MDB_txn *txn, const tg__cache_op *op);
int tg__runlog_zero(tg_cache *c, MDB_txn *txn);
/* Under q_mu: fold the RUN op `later` into `queued`, queued earlier and
 * not yet taken by the writer, so a stream of computes costs the writer
 * one record per batch. True when merged (later's record is then freed);
 * false when it must be queued on its own (it has notes of nodes, which
 * must keep their place after the puts queued before it, or no memory). */
bool tg__runlog_merge(tg__cache_op *queued, tg__cache_op *later);
/* A PUT with lineage: its node's note no longer applies. */
int tg__note_forget(tg_cache *c, MDB_txn *txn, tg_digest lineage);

/* ---- opened.c ------------------------------------------------------------ */
/* Note that this process opened directory (dev, ino): TG_EEXIST if it
 * already has it open. */
int tg__opened_add(dev_t dev, ino_t ino);
void tg__opened_remove(dev_t dev, ino_t ino);

/* ---- env.c ------------------------------------------------------------------ */
/* Open c->env in c->dir (decides read-only mode, sets warning). */
int tg__env_open(tg_cache *c, size_t mapsize, tg_error *err);
void tg__env_close(tg_cache *c);
/* Begin a read transaction: takes maplock shared and a pooled handle.
 * Adopts a map grown by another process. On error nothing is held. */
int tg__read_begin(tg_cache *c, MDB_txn **txn /* OUT */);
/* End it: returns the handle to the pool and releases maplock. */
void tg__read_end(tg_cache *c, MDB_txn *txn);
/* Grow the map (exclusive maplock): adopt a larger size set by another
 * process, else double ours. Call with no transaction held. */
int tg__env_grow(tg_cache *c);
/* Adopt a larger map size set by another process (MDB_MAP_RESIZED). */
int tg__env_adopt(tg_cache *c);
/* mdb_reader_check: clear reader slots of dead processes. */
void tg__env_reader_check(tg_cache *c);
/* After a commit of this process: remember data.mdb's size and mtime, so
 * that close can tell whether anything else changed it. Writer thread or
 * opener only. */
void tg__env_note_write(tg_cache *c);
/* Map an LMDB status to a TG_* code. */
int tg__mdb_code(int rc);
int tg__stats_get(tg_cache *c, MDB_txn *txn, tg__cache_stats *s /* OUT */);

/* ---- blob.c ----------------------------------------------------------------- */
/* DIR/blobs/ab/cdef... into path (size >= 64 + strlen(dir)). */
void tg__blob_path(const tg_cache *c, tg_digest d, char *path, size_t size);
/* Write len bytes as blob d unless a file of that size is already there
 * (temporary file + rename). Call inside a write transaction. */
int tg__blob_write(tg_cache *c, tg_digest d, const void *buf, size_t len);
/* Load blob d (mmap), whose entry recorded `size` bytes hashing (XXH3-64)
 * to `checksum`; TG_ENOTFOUND when missing, TG_ECHECKSUM (or the
 * serializer's code) when its size or any byte differs. */
int tg__blob_read(tg_cache *c, tg_digest d, uint64_t size, uint64_t checksum,
                  tg_value **out, tg_error *err /* may be NULL */);
void tg__blob_unlink(tg_cache *c, tg_digest d);
/* Delete blob files not listed in "blobs" and abandoned temporary files
 * (and, beside the blobs, where older versions wrote them without a lock,
 * those older than an hour). all: delete every blob file. Inside a write
 * txn. */
int tg__blob_sweep(tg_cache *c, MDB_txn *txn, bool all);
/* The digest a blob file DIR/blobs/sub/name is named by; false when the
 * name is not a blob's. */
bool tg__blob_name_digest(const char *sub, const char *name, tg_digest *d /* OUT */);
/* Temporary blob files have this in their names. */
#define TG__BLOB_TMP_MARK ".tmp."
/* True when the temporary file at path has no writer (its lock is free);
 * then, with `remove`, it is unlinked while that lock is held (*removed,
 * may be NULL: whether it was). */
bool tg__blob_tmp_abandoned(const char *path, bool remove, bool *removed);
/* Delete the abandoned temporary files in DIR/blobs/tmp; needs no
 * transaction. *removed (may be NULL) is increased by their number. */
int tg__blob_tmp_sweep(tg_cache *c, uint64_t *removed);

/* ---- writer.c ---------------------------------------------------------------- */
int tg__writer_start(tg_cache *c);
/* Flush, stop and join the writer. */
void tg__writer_stop(tg_cache *c);
/* Queue op (ownership of its value/function/rec passes to the queue, even
 * on failure). urgent: wake the writer now. Returns the op's sequence
 * number, or 0 when the writer is stopped (the op is dropped). */
uint64_t tg__writer_queue(tg_cache *c, tg__cache_op *op);
/* Why tg__writer_queue() refused an op, as the code and message of a
 * failed call on c: TG_ESTATE when the writer has stopped, TG_ENOMEM when
 * there was no room for the op. */
int tg__writer_refused(tg_cache *c);
/* Wait until every op queued so far is done; the first error since the
 * last flush (its message goes to c's errmsg). */
int tg__writer_flush(tg_cache *c);
/* Queue a synchronous op and wait for it; returns its result. */
int tg__writer_call(tg_cache *c, tg__cache_op *op);

#endif /* TG_CACHE_INTERNAL_H */
