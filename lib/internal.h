/* lib/internal.h: helpers shared by every module of the library (tg__
 * prefix: internal, never exported in public headers).
 *
 * Thread safety: all helpers here are thread-safe.
 */
#ifndef TG_INTERNAL_H
#define TG_INTERNAL_H

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "tgraph/error.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "tgraph's formats assume a little-endian host"
#endif

/* "Can't happen, but survive it": asserts in debug builds, evaluates to the
 * condition in release builds so the caller can take a safe path. */
#ifdef NDEBUG
#define TG_ALWAYS(x) (x)
#define TG_NEVER(x) (x)
#else
#define TG_ALWAYS(x) ((x) ? 1 : (assert(0), 0))
#define TG_NEVER(x) ((x) ? (assert(0), 1) : 0)
#endif

#define TG__LIKELY(x) __builtin_expect(!!(x), 1)
#define TG__UNLIKELY(x) __builtin_expect(!!(x), 0)
#define TG__PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Allocation goes through these so that one place can add accounting or
 * fault injection. Same contracts as the libc functions. */
void *tg__malloc(size_t n);
void *tg__calloc(size_t count, size_t size);
void *tg__realloc(void *p, size_t n);
void tg__free(void *p);
/* `align` a power of two >= sizeof(void *); size rounded up internally.
 * Free with tg__free(). Never NULL for size 0 unless out of memory. */
void *tg__aligned_alloc(size_t align, size_t size);
/* Ask for transparent huge pages for the whole 2 MiB pages inside the
 * block p of n bytes (from the functions above).
 * For big arrays filled in one pass or read at random (a million nodes,
 * a key index): each 4 KiB page costs a page fault and a TLB entry, a
 * huge page one of each for 512 of them. A hint only. */
void tg__advise_huge(void *p, size_t n);

/* Read fd to its end into a new buffer with a NUL after the data (*len
 * bytes; tg__free it); hint: the size expected; max: the most bytes
 * accepted (0: no bound), more is TG_ELIMIT without reading further. fd
 * is left open. A FIFO that reads as empty at first is given
 * TG__FIFO_WAIT_MS for a writer to come (TG_ETIMEDOUT after); a non-
 * blocking fd with a writer is waited on as long as the writer lives.
 * TG_ENOMEM, or -errno of a failed read. */
int tg__read_fd(int fd, size_t hint, size_t max, char **out, size_t *len);

/* How long a FIFO may go without a writer before reading it fails. */
#define TG__FIFO_WAIT_MS 5000
/* tg__input_open flags: refuse FIFOs and pipes too (plugins). */
#define TG__INPUT_REGULAR 1u

struct stat;
/* Open path to read it whole, non-blocking (a FIFO's open does not wait
 * for a writer): a regular file, or a FIFO/pipe unless flags say
 * TG__INPUT_REGULAR. Directories, devices and sockets are refused, and so
 * is a regular file larger than max (0: no bound), with an error naming
 * `what` (e.g. "plugin"; NULL: the path alone) and the path. Returns the
 * fd (close it) and *st, or a negative error code. */
int tg__input_open(const char *path, const char *what, size_t max,
                   unsigned flags, struct stat *st, tg_error *err);
/* The message for a tg__read_fd failure rc on that input; returns rc. */
int tg__input_error(int rc, const char *path, const char *what, size_t max,
                    tg_error *err);

/* Write len bytes of data to path through a temporary file beside it
 * renamed over path, so that readers see the old file or the new one,
 * never a part; mode 0644. flags: TG__WRITE_SYNC also fsyncs before the
 * rename. TG_OK, TG_ENOMEM or -errno; *step (may be NULL) names what
 * failed: "create", "write" or "rename into place". */
#define TG__WRITE_SYNC 1u
int tg__write_file_atomic(const char *path, const void *data, size_t len, unsigned flags,
                          const char **step);

static inline size_t tg__align_up(size_t n, size_t align) {
  return (n + align - 1) & ~(align - 1);
}

/* Fill *err (when not NULL) and return `code`, so failures read
 *   return tg__error_set(err, TG_EFORMAT, "list count %zu ...", n); */
int tg__error_set(tg_error *err, int code, const char *fmt, ...)
    TG__PRINTF(3, 4);
/* Same with a byte offset; the message gets " at offset N" appended. */
int tg__error_set_at(tg_error *err, int code, size_t offset, const char *fmt,
                     ...) TG__PRINTF(4, 5);
int tg__error_vset(tg_error *err, int code, const char *fmt, va_list ap);

/* True when the len bytes at s are well-formed UTF-8 (no overlongs, no
 * surrogates, nothing above U+10FFFF). NUL bytes are allowed. */
bool tg__utf8_valid(const char *s, size_t len);
/* Bytes at s that are well-formed UTF-8 before the first that is not
 * (len when all are): where a message can say the text goes wrong. */
size_t tg__utf8_valid_prefix(const char *s, size_t len);

/* Monotonic clock, seconds: deadlines and durations everywhere (the
 * scheduler's, a task's own through tg_task_cancelled, the workers'). */
static inline double tg__now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif /* TG_INTERNAL_H */
