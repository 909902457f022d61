/* lib/cache/env.c: the cache's LMDB environment: opening it read-write or
 * read-only, pooled read transactions, and map growth.
 *
 * Flags: MDB_NOTLS, because reads come from any thread and a pooled
 * handle owns its reader slot instead of the thread. MDB_NOMETASYNC:
 * each commit still syncs the data pages, but not the meta page, so an OS
 * crash may undo the last committed batch and never corrupts (kill -9 of
 * the process never loses a commit at all: the OS keeps the writes).
 *
 * Map size: starts at DEFAULT_MAP (sparse on Linux: the file only grows
 * as data is written). A writer that gets MDB_MAP_FULL aborts, grows the
 * map with no transaction of this process active (the exclusive
 * maplock), and retries; a reader or writer that gets MDB_MAP_RESIZED
 * (another process grew it) adopts the new size with
 * mdb_env_set_mapsize(env, 0) the same way.
 *
 * Read-only: a directory (or data file) this process cannot write is
 * opened MDB_RDONLY. LMDB still needs write access to lock.mdb to
 * register readers (only a read-only file system lets it skip the lock);
 * when lock.mdb is not writable either we fall back to MDB_NOLOCK: reads
 * are then not coordinated with a writer in another process, so a read
 * racing a commit may see garbage, which the entry checksums turn into a
 * miss. The warning says so.
 *
 * Damage: LMDB maps data.mdb and trusts it, so a short or garbled file
 * kills the process (SIGBUS past the end, wild pointers from bad page
 * numbers). Before mdb_env_open the meta pages are checked with pread
 * (validate.c); after it, before any tree is read through the map, every
 * reachable page is walked with pread inside a transaction that keeps
 * the snapshot still. The walk is skipped when DIR/data.mdb.checked says
 * the file is exactly as this library left it: written at close when
 * data.mdb's inode, size and mtime are still those after our last
 * commit, so anything else writing the file (which moves the mtime)
 * forces the next walk. A damaged environment (also one LMDB itself calls
 * corrupt or invalid) is moved to DIR/damaged-<UTC time>/ and an empty
 * one opened, all under an exclusive flock of DIR, so two processes that
 * find the same damage do not both move files. Read-only, it is left in
 * place and not used. Either way the warning says what and where. A
 * lock.mdb of another LMDB build, or databases made with other flags, is
 * not damage but another program's directory: left in place and not used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cache_internal.h"
#include "validate.h"

#define DEFAULT_MAP ((size_t)1 << 30)
#define MAX_READERS 1024
#define POOL_MAX 64
#define STAMP "data.mdb.checked"
#define STAMP_FORMAT "tgraph data.mdb checked: dev %llu ino %llu size %llu mtime_ns %lld txnid %llu"

int tg__mdb_code(int rc) {
  switch (rc) {
    case MDB_SUCCESS:
      return TG_OK;
    case MDB_NOTFOUND:
      return TG_ENOTFOUND;
    case MDB_MAP_FULL:
      return TG_ENOSPC;
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
      return TG_EFORMAT;
    default:
      return rc > 0 ? -rc : TG_EIO;
  }
}

static void path_in(const tg_cache *c, const char *name, char *out, size_t n) {
  snprintf(out, n, "%s/%s", c->dir, name);
}

/* A file we could write, or none there (so we could create it). */
static bool writable_or_absent(const char *path) {
  return access(path, W_OK) == 0 || errno == ENOENT;
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* "funcs" and "nodes" (cache_memo.h), which caches made before them lack:
 * read-only, their absence only means every function may have entries. */
static int open_memo_dbis(tg_cache *c, MDB_txn *txn, bool rw) {
  int rc = mdb_dbi_open(txn, "funcs", rw ? MDB_CREATE : 0, &c->db_funcs);
  if (!rc) rc = mdb_dbi_open(txn, "nodes", rw ? MDB_CREATE : 0, &c->db_nodes);
  if (rc == MDB_NOTFOUND && !rw) {
    c->db_funcs = c->db_nodes = 0; /* never used: funcs_unknown */
    c->funcs_unknown = true;
    return MDB_SUCCESS;
  }
  return rc ? rc : rw ? tg__funcs_init(c, txn) : MDB_SUCCESS;
}

static int open_dbis_once(tg_cache *c, bool rw) {
  MDB_txn *txn;
  unsigned f = rw ? MDB_CREATE : 0;
  int rc = mdb_txn_begin(c->env, NULL, rw ? 0 : MDB_RDONLY, &txn);
  if (rc) return rc;
  if (!(rc = mdb_dbi_open(txn, "entries", f, &c->db_entries)) &&
      !(rc = mdb_dbi_open(txn, "used", f, &c->db_used)) &&
      !(rc = mdb_dbi_open(txn, "blobs", f, &c->db_blobs)) &&
      !(rc = mdb_dbi_open(txn, "files", f, &c->db_files)) &&
      !(rc = mdb_dbi_open(txn, "meta", f, &c->db_meta)) &&
      !(rc = open_memo_dbis(c, txn, rw)))
    return mdb_txn_commit(txn); /* commit exports the handles */
  mdb_txn_abort(txn);
  return rc;
}

/* Between this process's mdb_env_open and its first transaction another
 * one may have committed past our map (MDB_MAP_RESIZED: adopt its size)
 * or filled it (MDB_MAP_FULL creating the tables: grow it), as the
 * readers and the writer do later. No transaction of ours is open yet. */
static int open_dbis(tg_cache *c, bool rw) {
  int rc = MDB_SUCCESS;
  for (int attempt = 0; attempt < 8; attempt++) {
    rc = open_dbis_once(c, rw);
    MDB_envinfo info;
    if (rc == MDB_MAP_RESIZED) {
      mdb_env_set_mapsize(c->env, 0);
    } else if (rc == MDB_MAP_FULL && rw && !mdb_env_info(c->env, &info)) {
      mdb_env_set_mapsize(c->env, info.me_mapsize * 2);
    } else {
      break;
    }
  }
  return rc;
}

/* ---- damage ------------------------------------------------------------------ */

/* data.mdb's identity and state, to compare with the stamp. */
typedef struct fileid {
  dev_t dev;
  ino_t ino;
  uint64_t size;
  int64_t mtime_ns;
} fileid;

static void fileid_of(const struct stat *st, fileid *f) {
  f->dev = st->st_dev;
  f->ino = st->st_ino;
  f->size = (uint64_t)st->st_size;
  f->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static bool same_file(const fileid *a, const fileid *b) {
  return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
         a->mtime_ns == b->mtime_ns;
}

/* Does the stamp say this library left data.mdb exactly like this (same
 * file, size, mtime, newest transaction)? Then the tree walk is skipped:
 * only something else writing the file (which changes its mtime) or the
 * disk itself can have damaged it since. */
static bool stamp_matches(const tg_cache *c, const fileid *f, uint64_t txnid) {
  char path[4200];
  path_in(c, STAMP, path, sizeof path);
  FILE *fp = fopen(path, "re");
  if (!fp) return false;
  unsigned long long dev, ino, size, tx;
  long long mt;
  int n = fscanf(fp, STAMP_FORMAT, &dev, &ino, &size, &mt, &tx);
  fclose(fp);
  return n == 5 && dev == (unsigned long long)f->dev &&
         ino == (unsigned long long)f->ino && size == f->size && mt == f->mtime_ns &&
         tx == txnid;
}

/* Record the stamp (temporary file + rename); failures only cost a walk. */
static void stamp_write(const tg_cache *c, const fileid *f, uint64_t txnid) {
  char path[4200], tmp[4300];
  path_in(c, STAMP, path, sizeof path);
  snprintf(tmp, sizeof tmp, "%s.%ld", path, (long)getpid());
  FILE *fp = fopen(tmp, "we");
  if (!fp) return;
  fprintf(fp, STAMP_FORMAT "\n", (unsigned long long)f->dev, (unsigned long long)f->ino,
          (unsigned long long)f->size, (long long)f->mtime_ns, (unsigned long long)txnid);
  if (fclose(fp) || rename(tmp, path)) unlink(tmp);
}

static void note_file(tg_cache *c, const char *data) {
  struct stat st;
  fileid f;
  c->known = stat(data, &st) == 0;
  if (!c->known) return;
  fileid_of(&st, &f);
  c->data_dev = f.dev, c->data_ino = f.ino, c->data_size = f.size;
  c->data_mtime_ns = f.mtime_ns;
}

void tg__env_note_write(tg_cache *c) {
  char data[4200];
  path_in(c, "data.mdb", data, sizeof data);
  note_file(c, data);
}

/* Walk the tree of the snapshot LMDB serves now, inside a transaction
 * that keeps it (a write transaction: no other process commits
 * meanwhile; read-only: a read transaction, which keeps the snapshot's
 * pages from reuse). The walk reads with pread, never through LMDB's map. */
static int walk_snapshot(tg_cache *c, int fd, bool rw, char *why, size_t n) {
  int rc = -EAGAIN;
  for (int attempt = 0; attempt < 4 && rc == -EAGAIN; attempt++) {
    MDB_txn *txn;
    int mrc = mdb_txn_begin(c->env, NULL, rw ? 0 : MDB_RDONLY, &txn);
    if (mrc == MDB_MAP_RESIZED) { /* grown by another process: adopt, retry */
      mdb_env_set_mapsize(c->env, 0);
      mrc = mdb_txn_begin(c->env, NULL, rw ? 0 : MDB_RDONLY, &txn);
    }
    if (mrc) return TG_OK; /* LMDB says why when the cache is used */
    uint64_t txnid = mdb_txn_id(txn) - (rw ? 1 : 0);
    tg__mdb_head h;
    rc = tg__validate_head(fd, &h, why, n);
    if (!rc) rc = tg__validate_tree(fd, &h, txnid, why, n);
    mdb_txn_abort(txn);
  }
  /* Only damage counts: a failed read or no memory leaves it to LMDB. */
  return rc == TG_EFORMAT ? rc : TG_OK;
}

/* TG_OK, or TG_EFORMAT with why[] when data.mdb is damaged. Before
 * mdb_env_open: the meta pages and the file size (LMDB maps the file and
 * would die of SIGBUS past its end). *walk: the tree needs a walk too. */
static int check_head(tg_cache *c, const char *data, bool *walk, char *why, size_t n) {
  *walk = false;
  int fd = open(data, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return TG_OK; /* absent: LMDB creates it; else LMDB says why */
  tg__mdb_head h;
  struct stat st;
  int rc = tg__validate_head(fd, &h, why, n);
  if (!rc && !fstat(fd, &st)) {
    fileid f;
    fileid_of(&st, &f);
    *walk = h.short_file || !stamp_matches(c, &f, h.meta[h.newest].txnid);
  }
  close(fd);
  return rc == TG_EFORMAT ? rc : TG_OK;
}

/* What LMDB itself finds wrong with data.mdb's pages. Not
 * MDB_VERSION_MISMATCH (lock.mdb is held by another LMDB build),
 * MDB_INVALID (data.mdb's head passed validate.c, so it is lock.mdb,
 * held by someone, that is not LMDB's) nor MDB_INCOMPATIBLE (databases
 * made with other flags): each means another program may be using the
 * directory right now, and moving its files would break it. */
static bool lmdb_damage(int rc) {
  return rc == MDB_CORRUPTED || rc == MDB_PAGE_NOTFOUND;
}

static bool lmdb_foreign(int rc) {
  return rc == MDB_VERSION_MISMATCH || rc == MDB_INVALID || rc == MDB_INCOMPATIBLE;
}

/* Create and open the environment with flags; on failure c->env is NULL
 * and the LMDB status is returned: MDB_CORRUPTED with why[] when data.mdb
 * is damaged. */
static int env_try(tg_cache *c, unsigned flags, size_t mapsize, char *why, size_t nwhy) {
  char data[4096];
  bool rw = !(flags & MDB_RDONLY), walk;
  path_in(c, "data.mdb", data, sizeof data);
  bool fresh = !exists(data);
  if (check_head(c, data, &walk, why, nwhy)) return MDB_CORRUPTED;
  MDB_env *env;
  int rc = mdb_env_create(&env);
  if (rc) return rc;
  mdb_env_set_maxdbs(env, 8);
  mdb_env_set_maxreaders(env, MAX_READERS);
  /* An existing file keeps the size its writers grew it to. */
  if (mapsize || fresh) mdb_env_set_mapsize(env, mapsize ? mapsize : DEFAULT_MAP);
  rc = mdb_env_open(env, c->dir, flags, 0644);
  if (!rc && !mapsize && rw) {
    MDB_envinfo info;
    mdb_env_info(env, &info);
    if (info.me_mapsize < DEFAULT_MAP) rc = mdb_env_set_mapsize(env, DEFAULT_MAP);
  }
  if (rc) {
    mdb_env_close(env);
    if (lmdb_damage(rc)) snprintf(why, nwhy, "%s", mdb_strerror(rc));
    return lmdb_damage(rc) ? MDB_CORRUPTED : rc;
  }
  c->env = env;
  c->nolock = (flags & MDB_NOLOCK) != 0;
  tg__env_reader_check(c);
  int fd = walk ? open(data, O_RDONLY | O_CLOEXEC) : -1;
  if (fd >= 0) {
    bool damaged = walk_snapshot(c, fd, rw, why, nwhy) == TG_EFORMAT;
    close(fd);
    if (damaged) {
      mdb_env_close(env);
      c->env = NULL;
      return MDB_CORRUPTED;
    }
  }
  rc = open_dbis(c, rw);
  if (rc) {
    mdb_env_close(env);
    c->env = NULL;
    if (lmdb_damage(rc)) snprintf(why, nwhy, "%s", mdb_strerror(rc));
    return lmdb_damage(rc) ? MDB_CORRUPTED : rc;
  }
  if (rw) note_file(c, data);
  return MDB_SUCCESS;
}

/* Move data.mdb and lock.mdb of a damaged environment into a new
 * DIR/damaged-<UTC time>[-N]; its path goes to dest. */
static int move_aside(tg_cache *c, char *dest, size_t n) {
  char stamp[64], from[4200], to[4500];
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(stamp, sizeof stamp, "damaged-%Y%m%dT%H%M%SZ", &tm);
  for (int k = 1;; k++) {
    if (k == 1) snprintf(dest, n, "%s/%s", c->dir, stamp);
    else snprintf(dest, n, "%s/%s-%d", c->dir, stamp, k);
    if (mkdir(dest, 0755) == 0) break;
    if (errno != EEXIST || k == 100) return -errno;
  }
  static const char *const names[] = {"data.mdb", "lock.mdb"};
  for (int i = 0; i < 2; i++) {
    path_in(c, names[i], from, sizeof from);
    snprintf(to, sizeof to, "%s/%s", dest, names[i]);
    if (rename(from, to) && (i == 0 || errno != ENOENT)) return -errno;
  }
  path_in(c, STAMP, from, sizeof from);
  unlink(from);
  return TG_OK;
}

static int set_warning(tg_cache *c, const char *why);

/* Open with flags; a damaged data.mdb is moved aside (when rw) and an
 * empty environment opened instead, or left alone and not used (read-only),
 * with the warning saying which. Runs under an exclusive flock of the
 * directory, so two processes finding the same damage do not both move
 * files (the second would move the first one's new environment). */
static int env_open_checked(tg_cache *c, unsigned flags, size_t mapsize) {
  char why[512] = "", dest[4400], msg[5200];
  int dfd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) while (flock(dfd, LOCK_EX) && errno == EINTR) {}
  int rc = env_try(c, flags, mapsize, why, sizeof why);
  if (rc == MDB_CORRUPTED) {
    int mv = flags & MDB_RDONLY ? TG_EACCES : move_aside(c, dest, sizeof dest);
    if (mv == TG_OK) {
      snprintf(msg, sizeof msg, "was damaged (data.mdb: %s): moved data.mdb and "
               "lock.mdb to %s and started an empty cache", why, dest);
      rc = env_try(c, flags, mapsize, why, sizeof why);
    } else {
      snprintf(msg, sizeof msg, "is damaged (data.mdb: %s) and %s: running without "
               "the cache", why, flags & MDB_RDONLY ? "read-only, so it was left as "
               "it is" : tg_strerror(mv));
      c->readonly = true;
      rc = MDB_SUCCESS;
    }
    tg__free(c->warning); /* "read-only" says less than this */
    c->warning = NULL;
    if (set_warning(c, msg)) rc = ENOMEM;
  }
  if (lmdb_foreign(rc)) {
    /* Not ours to repair: left in place, and this run goes without it. */
    snprintf(msg, sizeof msg, "cannot be used (%s: another program's LMDB may be "
             "using it): left as it is, running without the cache", mdb_strerror(rc));
    tg__free(c->warning);
    c->warning = NULL;
    c->readonly = true;
    rc = set_warning(c, msg) ? ENOMEM : MDB_SUCCESS;
  }
  if (dfd >= 0) close(dfd); /* releases the flock */
  return rc;
}

/* "cache directory DIR <what>" as c's warning (the first one set wins). */
static int set_warning(tg_cache *c, const char *what) {
  char buf[9600];
  if (c->warning) return TG_OK;
  snprintf(buf, sizeof buf, "cache directory %s %s", c->dir, what);
  c->warning = tg__malloc(strlen(buf) + 1);
  if (!c->warning) return TG_ENOMEM;
  strcpy(c->warning, buf);
  return TG_OK;
}

static int open_readonly(tg_cache *c, tg_error *err) {
  char data[4096], lock[4096];
  path_in(c, "data.mdb", data, sizeof data);
  path_in(c, "lock.mdb", lock, sizeof lock);
  c->readonly = true;
  if (!exists(data)) return TG_OK; /* nothing stored: every get misses */
  bool lock_ok = exists(lock) ? access(lock, W_OK) == 0 : access(c->dir, W_OK) == 0;
  unsigned flags = MDB_RDONLY | MDB_NOTLS | (lock_ok ? 0 : MDB_NOLOCK);
  int rc = env_open_checked(c, flags, 0);
  if ((rc == EACCES || rc == EPERM) && lock_ok)
    rc = env_open_checked(c, flags | MDB_NOLOCK, 0);
  if (rc == MDB_NOTFOUND) return TG_OK; /* no tgraph databases in it yet */
  if (rc)
    return tg__error_set(err, tg__mdb_code(rc), "cache %s: opening read-only: %s",
                         c->dir, mdb_strerror(rc));
  return TG_OK;
}

int tg__env_open(tg_cache *c, size_t mapsize, tg_error *err) {
  char data[4096], lock[4096];
  path_in(c, "data.mdb", data, sizeof data);
  path_in(c, "lock.mdb", lock, sizeof lock);
  if (c->readonly) {
    int rc = set_warning(c, "is opened read-only on request: results will not be stored");
    return rc ? rc : open_readonly(c, err);
  }
  if (access(c->dir, W_OK) == 0 && writable_or_absent(data) &&
      writable_or_absent(lock)) {
    int rc = env_open_checked(c, MDB_NOTLS | MDB_NOMETASYNC, mapsize);
    if (!rc) return TG_OK;
    if (rc != EACCES && rc != EPERM && rc != EROFS)
      return tg__error_set(err, tg__mdb_code(rc), "cache %s: opening: %s", c->dir,
                           mdb_strerror(rc));
  }
  int rc = set_warning(c, "is read-only: results will not be stored");
  return rc ? rc : open_readonly(c, err);
}

/* After closing: when data.mdb is still exactly as this process's last
 * commit (or its check at open) left it, stamp it, so that the next open
 * can skip the walk. The transaction id is read with pread, not through
 * a map: the file may have been cut short meanwhile. */
static void stamp_at_close(tg_cache *c) {
  char data[4200], why[256];
  struct stat st;
  fileid now, known = {c->data_dev, c->data_ino, c->data_size, c->data_mtime_ns};
  path_in(c, "data.mdb", data, sizeof data);
  int fd = open(data, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  tg__mdb_head h;
  if (!fstat(fd, &st) && (fileid_of(&st, &now), same_file(&now, &known)) &&
      tg__validate_head(fd, &h, why, sizeof why) == TG_OK)
    stamp_write(c, &now, h.meta[h.newest].txnid);
  close(fd);
}

void tg__env_close(tg_cache *c) {
  for (size_t i = 0; i < c->pool_n; i++) mdb_txn_abort(c->pool[i]);
  c->pool_n = 0;
  bool stamp = c->env && !c->readonly && c->known;
  if (c->env) mdb_env_close(c->env);
  c->env = NULL;
  if (stamp) stamp_at_close(c);
}

void tg__env_reader_check(tg_cache *c) {
  int dead = 0;
  if (c->env && !c->nolock) mdb_reader_check(c->env, &dead);
}

static MDB_txn *pool_pop(tg_cache *c) {
  MDB_txn *t = NULL;
  pthread_mutex_lock(&c->pool_mu);
  if (c->pool_n) t = c->pool[--c->pool_n];
  pthread_mutex_unlock(&c->pool_mu);
  return t;
}

/* Keep a reset handle for reuse (it keeps its reader slot), or free it. */
static void pool_push(tg_cache *c, MDB_txn *t) {
  pthread_mutex_lock(&c->pool_mu);
  if (c->pool_n < POOL_MAX) {
    if (c->pool_n == c->pool_cap) {
      size_t cap = c->pool_cap ? 2 * c->pool_cap : 8;
      MDB_txn **p = tg__realloc(c->pool, cap * sizeof *p);
      if (p) c->pool = p, c->pool_cap = cap;
    }
    if (c->pool_n < c->pool_cap) {
      c->pool[c->pool_n++] = t;
      t = NULL;
    }
  }
  pthread_mutex_unlock(&c->pool_mu);
  if (t) mdb_txn_abort(t);
}

int tg__read_begin(tg_cache *c, MDB_txn **out) {
  int rc = TG_EIO;
  for (int attempt = 0; attempt < 8; attempt++) {
    pthread_rwlock_rdlock(&c->maplock);
    MDB_txn *t = pool_pop(c);
    if (t) {
      rc = mdb_txn_renew(t);
      if (rc == MDB_MAP_RESIZED) pool_push(c, t); /* still a reset handle */
      else if (rc) mdb_txn_abort(t);
    } else {
      rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &t);
    }
    if (!rc) {
      *out = t;
      return TG_OK;
    }
    pthread_rwlock_unlock(&c->maplock);
    if (rc == MDB_MAP_RESIZED) {
      tg__env_adopt(c);
    } else if (rc == MDB_READERS_FULL && attempt == 0) {
      tg__env_reader_check(c);
    } else {
      break;
    }
  }
  return tg__mdb_code(rc);
}

void tg__read_end(tg_cache *c, MDB_txn *txn) {
  mdb_txn_reset(txn);
  pool_push(c, txn);
  pthread_rwlock_unlock(&c->maplock);
}

int tg__env_adopt(tg_cache *c) {
  pthread_rwlock_wrlock(&c->maplock);
  int rc = mdb_env_set_mapsize(c->env, 0);
  pthread_rwlock_unlock(&c->maplock);
  return tg__mdb_code(rc);
}

int tg__env_grow(tg_cache *c) {
  MDB_envinfo before, after;
  pthread_rwlock_wrlock(&c->maplock);
  mdb_env_info(c->env, &before);
  int rc = mdb_env_set_mapsize(c->env, 0); /* another process's larger size? */
  mdb_env_info(c->env, &after);
  if (!rc && after.me_mapsize <= before.me_mapsize) {
    size_t want = before.me_mapsize * 2;
    if (want < before.me_mapsize) rc = MDB_MAP_FULL; /* overflow */
    else rc = mdb_env_set_mapsize(c->env, want);
  }
  pthread_rwlock_unlock(&c->maplock);
  return tg__mdb_code(rc);
}

int tg__stats_get(tg_cache *c, MDB_txn *txn, tg__cache_stats *s) {
  MDB_val k = {5, "stats"}, v;
  memset(s, 0, sizeof *s);
  int rc = mdb_get(txn, c->db_meta, &k, &v);
  if (rc == MDB_NOTFOUND) return TG_OK;
  if (rc) return tg__mdb_code(rc);
  return tg__stats_parse(v.mv_data, v.mv_size, s) ? TG_OK : TG_EFORMAT;
}
