/* include/tgraph/cache.h: the memoizing cache, an LMDB environment in a
 * directory plus content-addressed blob files for large values.
 *
 * Life-cycle:
 *   1. tg_cache_open()       open (creating) a cache directory
 *   2. pass it to tg_compute()/executors (tg_compute_opts.cache), or use
 *      tg_cache_get()/tg_cache_put() directly with your own keys
 *   3. tg_cache_close()      flush queued writes and close
 *
 * Keys are 128-bit digests (see tg_value_hash and the Merkle keys of
 * graph nodes). Entries hold a value in the tgraph serial format: small
 * ones inline in LMDB, large ones in blob files written atomically and
 * read back with mmap (arrays are zero-copy). Every entry records the
 * size and XXH3-64 of its value's bytes, and every read checks all of
 * them, inline or in a blob file, mapped or decompressed: a missing,
 * changed, truncated or swapped file, or a corrupt record, is a miss (the
 * entry is removed), never a wrong value. tg_cache_check verifies the
 * whole cache at once.
 *
 * Temporary files: a blob is written under DIR/blobs/tmp and renamed into
 * place; its writer holds an flock on it meanwhile. Every read-write
 * open deletes the temporary files whose lock is free (their writer died,
 * e.g. by kill -9), so none outlives the next open.
 *
 * Writes are queued to one writer thread that commits them in batches.
 * Several processes may use one directory at once, and kill -9 at any
 * moment leaves a consistent cache (LMDB transactions; blobs renamed into
 * place before their entry is committed). A directory the process may not
 * write still serves hits: the cache opens read-only, stores nothing and
 * says so in tg_cache_warning().
 *
 * Damage: opening checks data.mdb before LMDB maps it (its meta pages and
 * its size against the last used page, always; every reachable page,
 * unless a stamp file, DIR/data.mdb.checked, shows the file is exactly as
 * this library left it: same inode, size, mtime and last transaction).
 * A damaged data.mdb (truncated, zeroed or flipped bytes) is moved with
 * lock.mdb to DIR/damaged-<UTC time>/ and the cache starts empty; the
 * warning says so. A lock.mdb of another LMDB build, or databases made
 * with other flags, is another program's, not damage: the files stay where
 * they are and this tg_cache is opened read-only with nothing in it (every
 * get misses; the warning says why). Disk full, quota or a read-only
 * file system while storing: computes stay correct, stores are dropped
 * and the warning says so once.
 *
 * Durability: LMDB runs with MDB_NOMETASYNC: each batch commit syncs the
 *   data pages once but not the meta page, so an OS crash or power loss
 *   may undo the last committed batch and never corrupts the database;
 *   kill -9 of the process loses nothing committed. Blob files are not
 *   synced: after an OS crash a blob may be short or garbled, which the
 *   read-time checks turn into a miss. Measured on the development
 *   machine: a commit costs about 3.5 ms with MDB_NOMETASYNC, 7 ms fully
 *   synced, 5 us with MDB_NOSYNC (which may corrupt on an OS crash);
 *   commits are batched on the writer thread, so only tg_cache_flush()
 *   waits for one.
 *
 * One handle per directory per process: LMDB's locks do not survive a
 *   second environment on the same files in one process, so opening a
 *   directory this process already has open fails with TG_EEXIST; share
 *   the handle instead.
 *
 * Thread safety: every call is thread-safe.
 * Fork: do not use a cache in a child of fork(); the opener's pid is
 *   recorded and checked (children get TG_ESTATE, and tg_cache_close()
 *   there releases nothing, since the environment is the parent's). A
 *   child may open the directory itself.
 */
#ifndef TGRAPH_CACHE_H
#define TGRAPH_CACHE_H

#include <stdbool.h>
#include <stdint.h>

#include "tgraph/error.h"
#include "tgraph/value.h"

#ifdef __cplusplus
extern "C" {
#endif

/* opaque; graph.h declares it too, under the same guard */
#ifndef TG_CACHE_TYPEDEF
#define TG_CACHE_TYPEDEF
typedef struct tg_cache tg_cache;
#endif

#define TG_CACHE_OPTS_V1 1
#define TG_CACHE_OPTS_V2 2 /* adds allow_network_fs */
typedef struct tg_cache_opts {
  uint32_t version;     /* TG_CACHE_OPTS_V1 or TG_CACHE_OPTS_V2 */
  uint64_t max_size;    /* bytes (inline + blobs); 0 = no limit. Over the
                           limit, least recently used entries are pruned
                           after each batch of writes, down to 90% of it. */
  size_t inline_max;    /* encoded values up to this size live in LMDB;
                           larger in blob files. 0 = 64 KiB */
  int compress;         /* zstd level for stored values, 0 = none */
  bool readonly;        /* open read-only even if writable */
  double min_compute_seconds; /* computes store a task's result only when
                           the call took at least this long (a result
                           cheaper to recompute than to store and look up
                           is not worth an entry); 0 = the default,
                           TG_CACHE_MIN_SECONDS_DEFAULT; negative (e.g.
                           TG_CACHE_STORE_ALL) = store every result.
                           Nodes with tg_node_opts.cache = 1 are always
                           stored. See graph.h, "Memoization". */
  /* ---- read only when version >= TG_CACHE_OPTS_V2 ---- */
  bool allow_network_fs; /* open even on a network or FUSE file system
                           (see "Network file systems" at tg_cache_open);
                           at your own risk */
} tg_cache_opts;

#define TG_CACHE_MIN_SECONDS_DEFAULT 0.001
#define TG_CACHE_STORE_ALL (-1.0)

/* Open or create the cache in `dir` (created with parents if missing).
 * opts may be NULL. On error *out is NULL and err says why.
 *
 * Network file systems: LMDB's shared memory maps and POSIX locks are not
 * coherent on NFS, CIFS/SMB, Lustre, GPFS, BeeGFS, CephFS, AFS, PanFS,
 * OrangeFS or FUSE file systems (sshfs, GlusterFS, ...), so a cache there
 * is corrupted by a second machine using it. Before creating anything,
 * the file system of dir (or of its nearest existing parent) is looked
 * up with statfs, and these types are refused with -EREMOTE and a
 * message naming the directory, the type and the fix: a directory on a
 * local disk (the CLI's --cache-dir or TGRAPH_CACHE_DIR). To use one
 * anyway (a single machine mounting it, say), set allow_network_fs
 * (TG_CACHE_OPTS_V2) or the environment variable
 * TGRAPH_CACHE_ON_NETWORK_FS=1 (any other value than 0, 1 or empty is
 * TG_EINVAL). */
int tg_cache_open(const char *dir, const tg_cache_opts *opts,
                  tg_cache **out /* OUT */, tg_error *err);
/* Flush queued writes, stop the writer, close. c may be NULL. */
void tg_cache_close(tg_cache *c);

bool tg_cache_is_readonly(const tg_cache *c);
/* A warning for the user, or NULL. Owned by c, valid until
 * tg_cache_close(). Set while opening ("cache directory X is read-only:
 * results will not be stored"; "cache directory X was damaged (data.mdb:
 * why): moved data.mdb and lock.mdb to X/damaged-<UTC time> and started
 * an empty cache"; "cache directory X cannot be used (MDB_...: why:
 * another program's LMDB may be using it): left as it is, running
 * without the cache"), and replaced at most once later, from any thread,
 * when a store fails for a reason other than the value itself (disk
 * full, quota, file too large, read-only file system, map full): "cache
 * directory X: results are not being stored: why (detail)". Show it after
 * opening and again when the pointer returned changes. */
const char *tg_cache_warning(const tg_cache *c);
/* Detail of the last failed call on c (from any thread): a copy in a
 * buffer of the calling thread, valid until its next call here. */
const char *tg_cache_errmsg(const tg_cache *c);

/* What tg_cache_put records besides the value. */
typedef struct tg_cache_meta {
  const char *function;    /* name of the function that made it; copied */
  double compute_seconds;  /* how long computing it took */
} tg_cache_meta;

/* Look key up. TG_OK and *out a new reference on a hit; TG_ENOTFOUND on a
 * miss (including a corrupt entry, which is removed). Marks the entry as
 * used (recorded by the writer, not on this thread). */
int tg_cache_get(tg_cache *c, tg_digest key, tg_value **out /* OUT */);
/* True when key has an entry (not verified, no value loaded). */
bool tg_cache_contains(tg_cache *c, tg_digest key);
/* Queue v under key (a reference is taken; v is not copied). meta may be
 * NULL. Returns at once; TG_OK even when read-only (nothing is stored). */
int tg_cache_put(tg_cache *c, tg_digest key, tg_value *v,
                 const tg_cache_meta *meta);
/* Wait until every queued write is committed (or failed: the error). */
int tg_cache_flush(tg_cache *c);
int tg_cache_remove(tg_cache *c, tg_digest key);
/* Remove every entry and blob. */
int tg_cache_clear(tg_cache *c);
/* Remove least recently used entries until the total is <= max_size.
 * *removed (may be NULL) gets the number of entries removed. */
int tg_cache_prune(tg_cache *c, uint64_t max_size, uint64_t *removed);

typedef struct tg_cache_entry_info {
  tg_digest key;
  uint64_t size;           /* stored bytes */
  double created;          /* Unix time, seconds */
  double last_used;        /* Unix time, seconds */
  double compute_seconds;
  bool in_blob;            /* stored in a blob file */
  char function[128];      /* truncated name */
} tg_cache_entry_info;

/* Call cb for every entry (any order) until it returns non-zero. */
int tg_cache_list(tg_cache *c,
                  int (*cb)(void *ctx, const tg_cache_entry_info *e),
                  void *ctx);

typedef struct tg_cache_info {
  uint64_t entries;
  uint64_t bytes;          /* inline + blob bytes */
  uint64_t blob_bytes;
  uint64_t max_size;
  uint64_t map_size;       /* current LMDB map size */
} tg_cache_info;
int tg_cache_get_info(tg_cache *c, tg_cache_info *out /* OUT */);

/* Counters since open (this process only). */
typedef struct tg_cache_counters {
  uint64_t hits, misses, stores, corrupt;
  uint64_t bytes_read, bytes_written;
} tg_cache_counters;
void tg_cache_get_counters(const tg_cache *c, tg_cache_counters *out /* OUT */);

/* ---- statistics over time ------------------------------------------------
 *
 * Each tg_compute() with this cache adds its counts to a record in the
 * cache (one write per compute, on the writer thread after the compute's
 * stores, in the same LMDB write transaction as whatever the writer
 * commits next, within about a second or at tg_cache_flush/close: exact
 * with several processes at once). Computes with
 * nothing to count (no task could be cached) write nothing. A read-only
 * cache records nothing. tg_cache_clear keeps the statistics.
 */
typedef struct tg_cache_run_counts {
  uint64_t hits;           /* tasks served from the cache */
  uint64_t misses;         /* tasks cacheable by policy (pure, or opted
                              in; see graph.h) not in the cache: computed
                              unless the compute stopped first. A pure
                              task depending on an impure one counts. */
  uint64_t stores;         /* results stored */
  uint64_t bytes_read;     /* stored bytes of the hits */
  uint64_t bytes_written;  /* stored bytes of the stores */
} tg_cache_run_counts;

typedef struct tg_cache_stats {
  uint64_t runs;           /* computes counted since `since` */
  tg_cache_run_counts total; /* their sum */
  double since;            /* Unix time of the cache's first counted
                              compute, or of tg_cache_zero_stats; 0: never */
  tg_cache_run_counts last; /* the last counted compute (kept by
                              tg_cache_zero_stats) */
  double last_time;        /* Unix time it was recorded; 0: none yet */
} tg_cache_stats;

/* Read the statistics (what is committed: call tg_cache_flush() first to
 * see this process's last compute). An empty or read-only cache without
 * statistics gives zeros. */
int tg_cache_get_stats(tg_cache *c, tg_cache_stats *out /* OUT */);
/* Start the totals over (runs and total to zero, since to now); the last
 * compute's counts stay. TG_EACCES on a read-only cache. */
int tg_cache_zero_stats(tg_cache *c);

/* ---- checking ------------------------------------------------------------ */

/* What tg_cache_check found wrong. */
typedef enum tg_cache_fault {
  TG_CACHE_FAULT_ENTRY = 1, /* an entry that cannot be served: its record is
                               malformed, or its value's bytes (inline, or
                               the blob file: missing, another size, other
                               content) are not the ones it recorded */
  TG_CACHE_FAULT_ORPHAN,    /* a blob file no entry refers to */
  TG_CACHE_FAULT_TMP,       /* a temporary blob file whose writer is gone */
} tg_cache_fault;

typedef struct tg_cache_problem {
  tg_cache_fault fault;
  tg_digest key;           /* TG_CACHE_FAULT_ENTRY: the entry's key */
  const char *path;        /* the file concerned, or NULL */
  const char *what;        /* what is wrong, one line */
  bool repaired;           /* removed (TG_CACHE_CHECK_REPAIR) */
} tg_cache_problem;

typedef struct tg_cache_check_report {
  uint64_t entries;        /* entries checked */
  uint64_t blob_files;     /* blob files looked at */
  uint64_t bad_entries, orphan_blobs, stale_tmp;
  uint64_t repaired;       /* problems removed */
} tg_cache_check_report;

#define TG_CACHE_CHECK_REPAIR 1u /* remove what is bad */

/* Verify the whole cache as tg_cache_get would, without using any entry:
 * every entry (its record, its value's bytes against the size and
 * checksum it recorded, that they decode), every blob file (an entry
 * refers to it) and temporary file (its writer is alive). cb (may be
 * NULL) is called once per problem, on this thread; the problem's strings
 * live until cb returns. With TG_CACHE_CHECK_REPAIR, bad entries, orphan
 * blobs and abandoned temporary files are removed (TG_EACCES on a
 * read-only cache). out (may be NULL) gets the counts. Returns TG_OK when
 * the walk completed, whatever it found; a read failure otherwise.
 * Reading every blob, it takes as long as reading the cache once; other
 * users of the cache go on meanwhile, except that writers wait during the
 * walk over the blob directory. Work in progress elsewhere is not a
 * problem: a temporary file counts only when no writer holds its lock, an
 * unreferenced blob file only when it stays so for about a second (a
 * writer deletes the files its commit unreferenced just after it), a bad
 * entry only when a second look confirms it. */
int tg_cache_check(tg_cache *c, unsigned flags,
                   void (*cb)(void *ctx, const tg_cache_problem *p), void *ctx,
                   tg_cache_check_report *out /* OUT */);

/* XXH3-128 of a file's content. With a cache, a file whose (path, size,
 * mtime_ns, inode) match the recorded ones is not read again. c may be
 * NULL (always reads). */
int tg_cache_file_hash(tg_cache *c, const char *path, tg_digest *out /* OUT */,
                       tg_error *err);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_CACHE_H */
