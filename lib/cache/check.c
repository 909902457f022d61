/* lib/cache/check.c: tg_cache_check, a walk over everything a cache
 * directory holds, verifying each piece as a lookup would.
 *
 * Entries first: their keys are listed in one read transaction, then each
 * is loaded and verified in a transaction of its own (tg__entry_load, the
 * lookup's own path), so the walk never holds a transaction across the
 * reading of a blob. A bad entry is dropped through the writer, as a
 * lookup that finds one does (only while its checksum is the one seen: a
 * good value stored meanwhile stays).
 *
 * Then the files under DIR/blobs, inside a write transaction: blob files
 * are written and renamed into place only inside one (blob.c), so while
 * it is held no process is between writing a blob and committing its
 * entry. A file without a reference may still be one a writer's commit
 * just left unreferenced and is about to delete: it counts as an orphan
 * only when it stays so for about a second (check_files). A temporary
 * file whose lock is free has no writer (blob.c). A read-only
 * cache cannot take that lock and walks in a read transaction: there a
 * blob being committed at that moment may be reported as an orphan.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache_internal.h"

typedef struct walk {
  tg_cache *c;
  bool repair;
  void (*cb)(void *ctx, const tg_cache_problem *p);
  void *ctx;
  tg_cache_check_report r;
  struct suspect *suspects; /* unreferenced blob files (check_files) */
  size_t n_suspects, cap_suspects;
  char unreadable[4200]; /* the directory the walk could not read, if any */
} walk;

static void report(walk *w, tg_cache_problem *p) {
  if (p->repaired) w->r.repaired++;
  if (w->cb) w->cb(w->ctx, p);
}

typedef struct keys {
  tg_digest *all;
  size_t n, cap;
} keys;

static int key_one(void *ctx, MDB_txn *txn, MDB_val *k, MDB_val *v) {
  keys *ks = ctx;
  (void)txn, (void)v;
  if (k->mv_size != 16) return TG_OK; /* not a key this library writes */
  if (ks->n == ks->cap) {
    size_t cap = ks->cap ? 2 * ks->cap : 256;
    tg_digest *p = tg__realloc(ks->all, cap * sizeof *p);
    if (!p) return TG_ENOMEM;
    ks->all = p;
    ks->cap = cap;
  }
  ks->all[ks->n++] = tg__digest_unpack(k->mv_data);
  return TG_OK;
}

/* Every entry's key (a snapshot). */
static int entry_keys(tg_cache *c, tg_digest **out, size_t *n) {
  keys ks = {NULL, 0, 0};
  int rc = tg__entries_each(c, key_one, &ks);
  *out = ks.all;
  *n = ks.n;
  return rc;
}

/* Load and verify the entry under key; see tg__entry_load. */
static int load(tg_cache *c, tg_digest key, tg__loaded *got, tg_error *err) {
  tg_value *v = NULL;
  tg_error_clear(err);
  int rc = tg__entry_load(c, key, &v, got, err);
  tg_value_unref(v);
  return rc;
}

static int check_entry(walk *w, tg_digest key) {
  tg__loaded got;
  tg_error err;
  int rc = load(w->c, key, &got, &err);
  /* A bad result may be a removal (prune, another process) that took the
   * blob file between reading the record and the file: only what a
   * second look confirms is reported. */
  if (got.found && rc && tg__cache_bad_data(rc)) rc = load(w->c, key, &got, &err);
  if (!got.found) return rc == TG_ENOTFOUND ? TG_OK : rc; /* gone meanwhile */
  w->r.entries++;
  if (rc == TG_OK) return TG_OK;
  if (!tg__cache_bad_data(rc)) return rc;
  w->r.bad_entries++;
  char path[4200];
  if (got.in_blob) tg__blob_path(w->c, got.blob, path, sizeof path);
  tg_cache_problem p = {TG_CACHE_FAULT_ENTRY, key, got.in_blob ? path : NULL,
                        err.msg[0] ? err.msg : tg_strerror(rc), false};
  if (w->repair) {
    tg__cache_op op = {.type = TG__OP_DROP, .key = key, .checksum = got.checksum};
    p.repaired = tg__writer_queue(w->c, &op) != 0;
  }
  report(w, &p);
  return TG_OK;
}

static int check_entries(walk *w) {
  tg_digest *keys;
  size_t n;
  int rc = entry_keys(w->c, &keys, &n);
  for (size_t i = 0; !rc && i < n; i++) rc = check_entry(w, keys[i]);
  tg__free(keys);
  if (!rc && w->repair && w->r.bad_entries) rc = tg__writer_flush(w->c);
  return rc;
}

/* A temporary file (beside the blobs or in blobs/tmp). */
static void check_tmp(walk *w, const char *path) {
  bool gone = false;
  if (!tg__blob_tmp_abandoned(path, w->repair, &gone)) return; /* a writer is at work */
  w->r.stale_tmp++;
  tg_cache_problem p = {TG_CACHE_FAULT_TMP, {0, 0}, path,
                        "temporary file whose writer is gone", false};
  p.repaired = gone;
  report(w, &p);
}

/* A blob file without a reference. */
typedef struct suspect {
  tg_digest d;
  char *path;
} suspect;

static bool unreferenced(tg_cache *c, MDB_txn *txn, tg_digest d) {
  unsigned char k[16];
  tg__digest_pack(d, k);
  MDB_val key = {16, k}, v;
  return mdb_get(txn, c->db_blobs, &key, &v) == MDB_NOTFOUND;
}

static int check_blob_file(walk *w, MDB_txn *txn, tg_digest d, const char *path) {
  w->r.blob_files++;
  if (!unreferenced(w->c, txn, d)) return TG_OK;
  if (w->n_suspects == w->cap_suspects) {
    size_t cap = w->cap_suspects ? 2 * w->cap_suspects : 16;
    suspect *p = tg__realloc(w->suspects, cap * sizeof *p);
    if (!p) return TG_ENOMEM;
    w->suspects = p, w->cap_suspects = cap;
  }
  suspect *s = &w->suspects[w->n_suspects];
  if (!(s->path = tg__malloc(strlen(path) + 1))) return TG_ENOMEM;
  strcpy(s->path, path);
  s->d = d;
  w->n_suspects++;
  return TG_OK;
}

/* DIR/blobs/sub: a fan-out directory, or "tmp". */
static int check_dir(walk *w, MDB_txn *txn, const char *sub) {
  char dir[4200], path[4500];
  snprintf(dir, sizeof dir, "%s/blobs/%s", w->c->dir, sub);
  DIR *dp = opendir(dir);
  if (!dp) return TG_OK;
  struct dirent *de;
  int rc = TG_OK;
  while (!rc && (de = readdir(dp))) {
    tg_digest d;
    if (de->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
    if (strstr(de->d_name, TG__BLOB_TMP_MARK)) check_tmp(w, path);
    else if (tg__blob_name_digest(sub, de->d_name, &d)) rc = check_blob_file(w, txn, d, path);
  }
  closedir(dp);
  return rc;
}

/* Begin the transaction the file walk runs in: a write transaction only
 * for its lock (nothing is written); on a read-only cache, which cannot
 * take it, a read transaction. */
static int files_begin(tg_cache *c, MDB_txn **txn) {
  int mrc;
  if (c->readonly) return tg__read_begin(c, txn);
  for (int attempt = 0;; attempt++) {
    pthread_rwlock_rdlock(&c->maplock);
    mrc = mdb_txn_begin(c->env, NULL, 0, txn);
    if (mrc != MDB_MAP_RESIZED || attempt == 2) break;
    pthread_rwlock_unlock(&c->maplock);
    int rc = tg__env_adopt(c);
    if (rc) return rc;
  }
  if (mrc) pthread_rwlock_unlock(&c->maplock);
  return mrc ? tg__mdb_code(mrc) : TG_OK;
}

static void files_end(tg_cache *c, MDB_txn *txn) {
  if (c->readonly) {
    tg__read_end(c, txn);
    return;
  }
  mdb_txn_abort(txn);
  pthread_rwlock_unlock(&c->maplock);
}

/* Keep the suspects that still exist and are still unreferenced. */
static void recheck(walk *w, MDB_txn *txn) {
  size_t kept = 0;
  struct stat st;
  for (size_t i = 0; i < w->n_suspects; i++) {
    suspect *s = &w->suspects[i];
    if (stat(s->path, &st) == 0 && unreferenced(w->c, txn, s->d)) w->suspects[kept++] = *s;
    else tg__free(s->path);
  }
  w->n_suspects = kept;
}

/* Report (and with repair delete) the orphans, inside the transaction. */
static void report_orphans(walk *w) {
  for (size_t i = 0; i < w->n_suspects; i++) {
    const char *path = w->suspects[i].path;
    tg_cache_problem p = {TG_CACHE_FAULT_ORPHAN, {0, 0}, path,
                          "blob file no entry refers to", false};
    w->r.orphan_blobs++;
    p.repaired = w->repair && unlink(path) == 0;
    report(w, &p);
  }
}

/* A writer deletes the files its commit left unreferenced just after the
 * commit, in a transaction of its own, and the walk may have come in
 * between: an unreferenced file is an orphan only if it stays so. Look
 * again a few times, over about a second (only when there are suspects). */
static const unsigned recheck_ms[] = {2, 8, 30, 100, 300, 600};

static int check_files(walk *w) {
  char dir[4200];
  tg_cache *c = w->c;
  MDB_txn *txn;
  int rc = files_begin(c, &txn);
  if (rc) return rc;
  snprintf(dir, sizeof dir, "%s/blobs", c->dir);
  DIR *dp = opendir(dir);
  rc = dp || errno == ENOENT ? TG_OK : -errno;
  if (rc) snprintf(w->unreadable, sizeof w->unreadable, "%s", dir);
  struct dirent *de;
  while (!rc && dp && (de = readdir(dp))) {
    if (strcmp(de->d_name, "tmp") == 0 || strlen(de->d_name) == 2)
      rc = check_dir(w, txn, de->d_name);
  }
  if (dp) closedir(dp);
  /* The write transaction and the map lock block every commit, in every
   * process: whatever happens below, they end here. */
  bool held = true;
  size_t n = sizeof recheck_ms / sizeof *recheck_ms;
  for (size_t i = 0; !rc && w->n_suspects && i < n; i++) {
    files_end(c, txn);
    held = false;
    struct timespec ts = {0, (long)recheck_ms[i] * 1000000L};
    nanosleep(&ts, NULL);
    if ((rc = files_begin(c, &txn))) break;
    held = true;
    recheck(w, txn);
  }
  if (!rc) report_orphans(w);
  if (held) files_end(c, txn);
  for (size_t i = 0; i < w->n_suspects; i++) tg__free(w->suspects[i].path);
  tg__free(w->suspects);
  return rc;
}

int tg_cache_check(tg_cache *c, unsigned flags,
                   void (*cb)(void *ctx, const tg_cache_problem *p), void *ctx,
                   tg_cache_check_report *out) {
  walk w = {c, (flags & TG_CACHE_CHECK_REPAIR) != 0, cb, ctx, {0}, NULL, 0, 0, ""};
  if (out) memset(out, 0, sizeof *out);
  int rc = tg__cache_usable(c);
  if (rc) return rc;
  if (flags & ~TG_CACHE_CHECK_REPAIR)
    return tg__cache_fail(c, TG_EINVAL, "cache: unknown check flags %#x", flags);
  if (w.repair && c->readonly)
    return tg__cache_fail(c, TG_EACCES, "cache %s is read-only: cannot repair", c->dir);
  if (!c->env) return TG_OK;
  /* Entries first: dropping a bad one removes its blob file, which the
   * file walk then need not report as well. */
  rc = check_entries(&w);
  if (!rc) rc = check_files(&w);
  if (out) *out = w.r;
  if (rc && w.unreadable[0])
    return tg__cache_fail(c, rc, "cache %s: checking: cannot read %s: %s", c->dir,
                          w.unreadable, tg_strerror(rc));
  if (rc) return tg__cache_fail(c, rc, "cache %s: checking: %s", c->dir, tg_strerror(rc));
  return TG_OK;
}
