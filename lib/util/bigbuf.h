/* lib/util/bigbuf.h: page-aligned buffers for large received values, with
 * a small process-wide pool of recently freed ones.
 *
 * Why: a buffer of fresh pages costs one page fault per 4 KiB on first
 * touch, which on common VMs runs at 1.5-2.5 GB/s: slower than loopback
 * TCP and several times slower than the copy that fills it. Pipelines
 * receive arrays of the same sizes again and again, so a freed buffer is
 * kept, its pages still mapped, and handed to the next request of a
 * similar size. (Marking kept pages MADV_FREE instead would let the kernel
 * reclaim them, but writing into them again then ran at 2/3 of the speed
 * of a plain copy here; an idle limit is used instead.)
 *
 * Bounds: only buffers of TG__BIGBUF_MIN bytes or more are kept; at most
 * TG__BIGBUF_SLOTS of them and at most 1/16 of physical memory (capped at
 * 1 GiB) in all, the oldest going first; a buffer unused for
 * TG__BIGBUF_IDLE seconds is unmapped at the next call (long-running
 * loops call tg__bigbuf_sweep). A buffer is reused for a request of
 * between 3/4 of its size and its size.
 *
 * Thread safety: all calls may be made from any thread (one mutex).
 */
#ifndef TG_UTIL_BIGBUF_H
#define TG_UTIL_BIGBUF_H

#include <stddef.h>

#define TG__BIGBUF_MIN ((size_t)1 << 20)
#define TG__BIGBUF_SLOTS 8
#define TG__BIGBUF_IDLE 2.0

/* A page-aligned buffer of at least len bytes (contents undefined);
 * *cap receives its size, to be passed back to tg__bigbuf_free. NULL when
 * memory is exhausted. */
void *tg__bigbuf_alloc(size_t len, size_t *cap /* OUT */);

/* Give p (from tg__bigbuf_alloc, cap bytes) back. */
void tg__bigbuf_free(void *p, size_t cap);

/* Unmap the kept buffers unused for TG__BIGBUF_IDLE seconds. Cheap when
 * there are none (one atomic load). */
void tg__bigbuf_sweep(void);

/* Unmap every kept buffer (tests and memory-tight programs). */
void tg__bigbuf_trim(void);

#endif /* TG_UTIL_BIGBUF_H */
