/* lib/cache/validate.c: checking an LMDB data file before LMDB maps it.
 *
 * LMDB trusts its file: a data.mdb shorter than its last used page makes
 * any access through the map die of SIGBUS, and a flipped page number or
 * node offset makes it read or write outside the map. So the cache reads
 * the file itself, with pread (a short file is then only a short read),
 * and hands it to LMDB only when it is well formed:
 *
 *   tg__validate_head()  both meta pages (magic, version, page size,
 *                        transaction ids, last page, roots, map size) and
 *                        the file size against the last used page: a few
 *                        hundred bytes read, done at every open.
 *   tg__validate_tree()  every page reachable from the newest meta: the
 *                        main tree, each named database's tree, the free
 *                        list and its page numbers, overflow pages. Reads
 *                        each reachable page once (see env.c for when).
 *
 * The layout is LMDB 0.9's (liblmdb, data version 1) on a 64-bit
 * little-endian host: a 16-byte page header (page number, pad, flags,
 * lower and upper free-space bounds, or an overflow page's page count),
 * 2-byte node offsets after it, 8-byte node headers (data size or child
 * page number in three 16-bit words, flags, key size), and a meta record
 * after the header of pages 0 and 1.
 *
 * Thread safety: the functions share nothing; the caller keeps the file
 * from changing while they run (env.c holds an LMDB transaction).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "validate.h"

#define HDR 16            /* page header */
#define NODE 8            /* node header */
#define META_AT HDR       /* the meta record follows the page header */
#define META_LEN 136
#define DB_LEN 48
#define MAGIC 0xBEEFC0DEu
#define DATA_VERSION 1u
#define NO_PAGE UINT64_MAX
#define MAX_DEPTH 32      /* LMDB's cursor stack */
#define MAX_KEY 511
#define MIN_PSIZE 512
#define MAX_PSIZE 32768
#define MAX_MAP ((uint64_t)1 << 44)
#define TXNID_MAX ((uint64_t)1 << 62)

enum { P_BRANCH = 0x01, P_LEAF = 0x02, P_OVERFLOW = 0x04, P_META = 0x08,
       P_DIRTY = 0x10, P_KEEP = 0x8000 };
enum { F_BIGDATA = 0x01, F_SUBDATA = 0x02 };
enum { DUP_FLAGS = 0x04 | 0x10 | 0x20 | 0x40 }; /* MDB_DUPSORT, DUPFIXED, INTEGERDUP, REVERSEDUP */

static uint16_t u16(const unsigned char *p) {
  uint16_t v;
  memcpy(&v, p, 2);
  return v;
}
static uint32_t u32(const unsigned char *p) {
  uint32_t v;
  memcpy(&v, p, 4);
  return v;
}
static uint64_t u64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

static int bad(char *why, size_t n, const char *fmt, ...) TG__PRINTF(3, 4);
static int bad(char *why, size_t n, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(why, n, fmt, ap);
  va_end(ap);
  return TG_EFORMAT;
}

/* Read exactly len bytes at off: TG_OK, TG_EFORMAT (short), or -errno. */
static int read_at(int fd, void *buf, size_t len, uint64_t off) {
  size_t got = 0;
  while (got < len) {
    ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return -errno;
    if (r == 0) return TG_EFORMAT;
    got += (size_t)r;
  }
  return TG_OK;
}

static void db_parse(const unsigned char *p, tg__mdb_db *d) {
  d->flags = u16(p + 4);
  d->depth = u16(p + 6);
  d->entries = u64(p + 32);
  d->root = u64(p + 40);
}

/* A database record's root and depth fit a file of last_pg + 1 pages,
 * and its flags are free of the duplicate-data kinds, whose pages this
 * walk (and the cache) never uses. */
static bool db_sane(const tg__mdb_db *d, uint64_t last_pg) {
  if (d->flags & DUP_FLAGS) return false;
  if (d->root == NO_PAGE) return d->depth == 0;
  return d->root >= 2 && d->root <= last_pg && d->depth >= 1 && d->depth <= MAX_DEPTH;
}

static int meta_check(const unsigned char *pg, int i, uint64_t size, tg__mdb_head *h,
                      char *why, size_t n) {
  const unsigned char *m = pg + META_AT;
  tg__mdb_meta *mt = &h->meta[i];
  if (u64(pg) != (uint64_t)i || !(u16(pg + 10) & P_META))
    return bad(why, n, "meta page %d is not a meta page", i);
  if (u32(m) != MAGIC) return bad(why, n, "meta page %d has a bad magic number", i);
  if (u32(m + 4) != DATA_VERSION)
    return bad(why, n, "meta page %d has version %" PRIu32 ", not %u", i, u32(m + 4),
               DATA_VERSION);
  uint32_t psize = u32(m + 24); /* the free database's pad holds it */
  if (psize < MIN_PSIZE || psize > MAX_PSIZE || (psize & (psize - 1)))
    return bad(why, n, "meta page %d has page size %" PRIu32, i, psize);
  if (i == 1 && psize != h->psize)
    return bad(why, n, "the meta pages disagree on the page size");
  h->psize = psize;
  mt->mapsize = u64(m + 16);
  db_parse(m + 24, &mt->free);
  db_parse(m + 24 + DB_LEN, &mt->main);
  mt->last_pg = u64(m + 24 + 2 * DB_LEN);
  mt->txnid = u64(m + 32 + 2 * DB_LEN);
  /* LMDB never commits past its map. The file itself may end before the
   * last page: pages allocated and freed again in one transaction are
   * never written. Only reachable pages must be in the file (the walk). */
  if (mt->last_pg < 1 || mt->last_pg >= mt->mapsize / psize)
    return bad(why, n, "meta page %d says the last page is %" PRIu64 " in a map of %"
               PRIu64 " bytes", i, mt->last_pg, mt->mapsize);
  if (mt->last_pg >= size / psize) h->short_file = true;
  if (mt->mapsize > MAX_MAP)
    return bad(why, n, "meta page %d has map size %" PRIu64, i, mt->mapsize);
  if (mt->txnid > TXNID_MAX || (mt->txnid && (mt->txnid & 1) != (uint64_t)i))
    return bad(why, n, "meta page %d has transaction id %" PRIu64, i, mt->txnid);
  if (!db_sane(&mt->free, mt->last_pg) || !db_sane(&mt->main, mt->last_pg))
    return bad(why, n, "meta page %d has a root page, depth or flags outside the file's",
               i);
  return TG_OK;
}

int tg__validate_head(int fd, tg__mdb_head *h, char *why, size_t n) {
  struct stat st;
  unsigned char pg[HDR + META_LEN];
  memset(h, 0, sizeof *h);
  if (fstat(fd, &st)) return -errno;
  h->size = (uint64_t)st.st_size;
  if (h->size == 0) return bad(why, n, "the file is empty (0 bytes)");
  if (h->size < 2 * MIN_PSIZE)
    return bad(why, n, "the file is only %" PRIu64 " byte%s long, shorter than its "
               "two meta pages", h->size, h->size == 1 ? "" : "s");
  for (int i = 0; i < 2; i++) {
    uint64_t off = i == 0 ? 0 : h->psize;
    int rc = read_at(fd, pg, sizeof pg, off);
    if (rc == TG_EFORMAT)
      return bad(why, n, "the file is only %" PRIu64 " bytes long, shorter than its "
                 "two meta pages", h->size);
    if (rc) return rc;
    if ((rc = meta_check(pg, i, h->size, h, why, n))) return rc;
  }
  uint64_t t0 = h->meta[0].txnid, t1 = h->meta[1].txnid;
  if ((t0 > t1 ? t0 - t1 : t1 - t0) > 1)
    return bad(why, n, "the meta pages have transaction ids %" PRIu64 " and %" PRIu64
               " (one apart expected)", t0, t1);
  h->newest = t1 > t0 ? 1 : 0;
  return TG_OK;
}

/* ---- the tree walk ----------------------------------------------------------- */

typedef struct walk {
  int fd;
  uint32_t psize;
  uint64_t last_pg;
  uint64_t file_pages;    /* pages wholly in the file */
  unsigned char *seen;    /* bit per page: reached in a tree */
  unsigned char *free;    /* bit per page: listed as free */
  unsigned char *pages;   /* 2 * (MAX_DEPTH + 1) page buffers (page()) */
  unsigned char *ovf;     /* free-list data held in overflow pages */
  size_t ovf_cap;
  char *why;
  size_t n;
} walk;

static bool bit(const unsigned char *b, uint64_t i) { return b[i / 8] >> (i % 8) & 1; }
static void set_bit(unsigned char *b, uint64_t i) { b[i / 8] |= (unsigned char)(1u << (i % 8)); }

/* Claim page pg for a tree: in range, not free, not reached before. */
static int claim(walk *w, uint64_t pg, const char *what) {
  if (pg < 2 || pg > w->last_pg)
    return bad(w->why, w->n, "%s points to page %" PRIu64 ", outside pages 2..%" PRIu64,
               what, pg, w->last_pg);
  if (pg >= w->file_pages)
    return bad(w->why, w->n, "page %" PRIu64 " is in use but the file ends before it "
               "(%" PRIu64 " pages): truncated", pg, w->file_pages);
  if (bit(w->seen, pg))
    return bad(w->why, w->n, "page %" PRIu64 " is reached twice", pg);
  if (bit(w->free, pg))
    return bad(w->why, w->n, "page %" PRIu64 " is in use and listed as free", pg);
  set_bit(w->seen, pg);
  return TG_OK;
}

/* A free-list record: a count, then that many page numbers. */
static int free_list(walk *w, const unsigned char *d, uint64_t len) {
  if (len < 8 || len % 8 || u64(d) != len / 8 - 1)
    return bad(w->why, w->n, "a free-list record of %" PRIu64 " bytes is malformed", len);
  for (uint64_t i = 1; i < len / 8; i++) {
    uint64_t pg = u64(d + 8 * i);
    if (pg < 2 || pg > w->last_pg)
      return bad(w->why, w->n, "the free list names page %" PRIu64 ", outside pages "
                 "2..%" PRIu64, pg, w->last_pg);
    if (pg >= w->file_pages) continue; /* never written; no tree reaches it */
    if (bit(w->free, pg))
      return bad(w->why, w->n, "the free list names page %" PRIu64 " twice", pg);
    if (bit(w->seen, pg))
      return bad(w->why, w->n, "page %" PRIu64 " is in use and listed as free", pg);
    set_bit(w->free, pg);
  }
  return TG_OK;
}

/* The overflow pages holding a value of len bytes from page pg. */
static int overflow(walk *w, uint64_t pg, uint64_t len, bool is_free) {
  unsigned char h[HDR];
  int rc = claim(w, pg, "a value");
  if (rc) return rc;
  if ((rc = read_at(w->fd, h, HDR, pg * w->psize)))
    return rc == TG_EFORMAT ? bad(w->why, w->n, "page %" PRIu64 " is past the end", pg) : rc;
  uint32_t count = u32(h + 12);
  if (u64(h) != pg || (u16(h + 10) & ~(P_DIRTY | P_KEEP)) != P_OVERFLOW || count < 1 ||
      count - 1 > w->last_pg - pg || (uint64_t)count * w->psize - HDR < len)
    return bad(w->why, w->n, "overflow page %" PRIu64 " has a bad header", pg);
  for (uint64_t i = 1; i < count; i++)
    if ((rc = claim(w, pg + i, "an overflow run"))) return rc;
  if (!is_free) return TG_OK;
  if (len > w->ovf_cap) {
    unsigned char *p = tg__realloc(w->ovf, len);
    if (!p) return TG_ENOMEM;
    w->ovf = p, w->ovf_cap = len;
  }
  if ((rc = read_at(w->fd, w->ovf, len, pg * w->psize + HDR))) return rc;
  return free_list(w, w->ovf, len);
}

enum { TREE_FREE, TREE_MAIN, TREE_SUB };

static int tree(walk *w, const tg__mdb_db *d, int kind);

/* The leaf node at p + off of a tree of the given kind. */
static int leaf_node(walk *w, const unsigned char *p, unsigned off, int kind,
                     unsigned *used) {
  const unsigned char *nd = p + off;
  uint64_t dsize = u16(nd) | (uint64_t)u16(nd + 2) << 16;
  unsigned flags = u16(nd + 4), ksize = u16(nd + 6);
  bool big = flags & F_BIGDATA, sub = flags & F_SUBDATA;
  uint64_t stored = big ? 8 : dsize;
  if ((flags & ~(unsigned)(F_BIGDATA | F_SUBDATA)) || (big && sub) ||
      (sub && kind != TREE_MAIN) || ksize > MAX_KEY ||
      off + NODE + ksize + stored > w->psize)
    return bad(w->why, w->n, "a node of page %" PRIu64 " is malformed", u64(p));
  *used = (unsigned)((NODE + ksize + stored + 1) & ~(uint64_t)1);
  const unsigned char *data = nd + NODE + ksize;
  if (big) return overflow(w, u64(data), dsize, kind == TREE_FREE);
  if (sub) {
    tg__mdb_db db;
    if (dsize != DB_LEN)
      return bad(w->why, w->n, "a database record of page %" PRIu64 " is malformed",
                 u64(p));
    db_parse(data, &db);
    if (!db_sane(&db, w->last_pg))
      return bad(w->why, w->n, "a database record of page %" PRIu64 " has a root "
                 "page, depth or flags outside the file's", u64(p));
    return tree(w, &db, TREE_SUB);
  }
  return kind == TREE_FREE ? free_list(w, data, dsize) : TG_OK;
}

/* Page pg at level (1 = root) of a tree of depth `depth`. */
static int page(walk *w, uint64_t pg, unsigned level, unsigned depth, int kind) {
  int rc = claim(w, pg, "a branch");
  if (rc) return rc;
  /* One buffer per level; a named database's tree (walked from a leaf
   * of the main tree) uses the second set. */
  size_t slot = level + (kind == TREE_SUB ? MAX_DEPTH + 1 : 0);
  unsigned char *p = w->pages + slot * w->psize;
  if ((rc = read_at(w->fd, p, w->psize, pg * w->psize)))
    return rc == TG_EFORMAT ? bad(w->why, w->n, "page %" PRIu64 " is past the end", pg) : rc;
  unsigned flags = u16(p + 10) & ~(unsigned)(P_DIRTY | P_KEEP);
  unsigned lower = u16(p + 12), upper = u16(p + 14);
  bool branch = flags == P_BRANCH;
  if (u64(p) != pg)
    return bad(w->why, w->n, "page %" PRIu64 " says it is page %" PRIu64, pg, u64(p));
  if ((!branch && flags != P_LEAF) || branch != (level < depth))
    return bad(w->why, w->n, "page %" PRIu64 " has flags 0x%x at level %u of %u", pg,
               u16(p + 10), level, depth);
  if (lower < HDR || (lower - HDR) % 2 || upper < lower || upper > w->psize ||
      (branch && lower == HDR))
    return bad(w->why, w->n, "page %" PRIu64 " has bounds %u..%u", pg, lower, upper);
  unsigned nkeys = (lower - HDR) / 2, total = 0;
  for (unsigned i = 0; i < nkeys; i++) {
    unsigned off = u16(p + HDR + 2 * i), used = 0;
    if (off < upper || off > w->psize - NODE)
      return bad(w->why, w->n, "page %" PRIu64 " has node offset %u outside %u..%u", pg,
                 off, upper, w->psize);
    const unsigned char *nd = p + off;
    if (branch) {
      unsigned ksize = u16(nd + 6);
      if (off + NODE + ksize > w->psize)
        return bad(w->why, w->n, "a node of page %" PRIu64 " is malformed", pg);
      used = (NODE + ksize + 1) & ~1u;
      uint64_t child = u16(nd) | (uint64_t)u16(nd + 2) << 16 | (uint64_t)u16(nd + 4) << 32;
      if ((rc = page(w, child, level + 1, depth, kind))) return rc;
    } else if ((rc = leaf_node(w, p, off, kind, &used))) {
      return rc;
    }
    total += used;
  }
  /* LMDB keeps a page's nodes packed between upper and the page's end. */
  if (total != w->psize - upper)
    return bad(w->why, w->n, "page %" PRIu64 " holds %u bytes of nodes in %u bytes", pg,
               total, w->psize - upper);
  return TG_OK;
}

static int tree(walk *w, const tg__mdb_db *d, int kind) {
  if (d->root == NO_PAGE) return TG_OK;
  return page(w, d->root, 1, d->depth, kind);
}

int tg__validate_tree(int fd, const tg__mdb_head *h, uint64_t txnid, char *why,
                      size_t n) {
  const tg__mdb_meta *m = NULL;
  for (int i = 0; i < 2; i++)
    if (h->meta[i].txnid == txnid) m = &h->meta[i];
  if (!m) return -EAGAIN; /* committed past: the caller reads the head again */
  walk w = {fd, h->psize, m->last_pg, h->size / h->psize, NULL, NULL, NULL, NULL, 0,
            why, n};
  size_t bits = (size_t)(w.file_pages / 8 + 1);
  w.seen = tg__calloc(1, bits);
  w.free = tg__calloc(1, bits);
  w.pages = tg__malloc((size_t)2 * (MAX_DEPTH + 1) * h->psize);
  int rc = TG_ENOMEM;
  if (w.seen && w.free && w.pages) {
    /* The free list first: every page it names must be out of the trees. */
    rc = tree(&w, &m->free, TREE_FREE);
    if (!rc) rc = tree(&w, &m->main, TREE_MAIN);
  }
  tg__free(w.seen);
  tg__free(w.free);
  tg__free(w.pages);
  tg__free(w.ovf);
  return rc;
}
