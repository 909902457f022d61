/* lib/cache/validate.h: checking an LMDB data file with pread before
 * LMDB maps it (validate.c). Used by env.c only.
 *
 * Both calls return TG_OK, TG_EFORMAT with a sentence in why[0..n) saying
 * what is wrong (the file is damaged), TG_ENOMEM, or -errno when reading
 * failed. They read the file through fd and never change it.
 * Thread safety: none shared; the caller keeps the file from changing.
 */
#ifndef TG_CACHE_VALIDATE_H
#define TG_CACHE_VALIDATE_H

#include <stdbool.h>
#include <stdint.h>

#include "internal.h"

typedef struct tg__mdb_db {
  uint16_t flags, depth;
  uint64_t entries;
  uint64_t root;           /* UINT64_MAX: empty */
} tg__mdb_db;

typedef struct tg__mdb_meta {
  uint64_t mapsize, last_pg, txnid;
  tg__mdb_db free, main;
} tg__mdb_meta;

typedef struct tg__mdb_head {
  uint64_t size;           /* of the file, bytes */
  uint32_t psize;          /* page size */
  tg__mdb_meta meta[2];    /* pages 0 and 1 */
  int newest;              /* index of the meta LMDB uses */
  bool short_file;         /* ends before a meta's last page: walk it */
} tg__mdb_head;

/* Read and check both meta pages. An empty file is damage too (LMDB
 * would silently start over). A file ending before the last used page is
 * only damaged if a reachable page is missing: h->short_file says to walk. */
int tg__validate_head(int fd, tg__mdb_head *h /* OUT */, char *why, size_t n);
/* Walk every page reachable from the meta of transaction txnid (read
 * with tg__validate_head while the caller held the snapshot). -EAGAIN
 * when neither meta has that id any more. */
int tg__validate_tree(int fd, const tg__mdb_head *h, uint64_t txnid, char *why,
                      size_t n);

#endif /* TG_CACHE_VALIDATE_H */
