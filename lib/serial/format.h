/* lib/serial/format.h: constants of the tgraph binary format (tags, header
 * fields, limits), varint helpers and the internal interface between the
 * encoder, the decoder and the file functions. docs/format.md is the spec.
 *
 * Thread safety: everything here works on caller-owned state only.
 */
#ifndef TG_SERIAL_FORMAT_H
#define TG_SERIAL_FORMAT_H

#include <string.h>
#include <sys/mman.h>

#include "tgraph/serial.h"
#include "value/value_internal.h"

/* Meta section tags (one byte before every value). */
enum {
  TG__TAG_NULL = 0x00,
  TG__TAG_FALSE = 0x01,
  TG__TAG_TRUE = 0x02,
  TG__TAG_INT = 0x03,       /* zigzag varint */
  TG__TAG_FLOAT = 0x04,     /* 8 bytes, IEEE-754 bits LE */
  TG__TAG_STR = 0x05,       /* varint len, UTF-8 bytes */
  TG__TAG_BYTES = 0x06,     /* varint len, bytes */
  TG__TAG_BYTES_EXT = 0x07, /* varint len, varint payload offset */
  TG__TAG_NDARRAY = 0x08,   /* u8 dtype, u8 ndim, dims, varint offset */
  TG__TAG_LIST = 0x09,      /* varint n, n values */
  TG__TAG_INT_LIST = 0x0A,  /* varint n, n zigzag varints */
  TG__TAG_MAP = 0x0B,       /* varint n, n x (varint keylen, key, value) */
};

#define TG__MAGIC "\x89TGV"
#define TG__FLAG_ZSTD 1u
#define TG__FLAGS_KNOWN TG__FLAG_ZSTD
#define TG__ALIGN 64                 /* payload item and section alignment */
#define TG__BYTES_EXT_MIN 4096       /* bytes this long go to the payload */
#define TG__VARINT_MAX 10            /* bytes in the longest varint */
/* Decompressed bodies larger than this are refused (TG_ELIMIT). */
#define TG__BODY_MAX (UINT64_C(64) << 30)
/* zstd's best case: a 4-byte RLE block stands for 128 KiB. A frame that
 * claims more than this many bytes per stored byte is lying. */
#define TG__ZSTD_MAX_RATIO 32768u

/* Header fields, decoded. */
typedef struct tg__header {
  uint16_t version, flags;
  uint64_t meta_len, payload_len, stored_len;
  uint64_t meta_hash, payload_hash;
} tg__header;

/* Bytes from the start of the body (meta section) to the payload. */
static inline uint64_t tg__meta_span(uint64_t meta_len) {
  return (meta_len + (TG__ALIGN - 1)) & ~(uint64_t)(TG__ALIGN - 1);
}

/* ---- varints ------------------------------------------------------------- */

static inline uint64_t tg__zigzag(int64_t i) {
  return ((uint64_t)i << 1) ^ (uint64_t)(i >> 63);
}
static inline int64_t tg__unzigzag(uint64_t u) {
  return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
}

/* Write u as LEB128 at p (room for TG__VARINT_MAX bytes); returns bytes. */
static inline size_t tg__varint_put(uint8_t *p, uint64_t u) {
  size_t n = 0;
  while (u >= 0x80) {
    p[n++] = (uint8_t)(u | 0x80);
    u >>= 7;
  }
  p[n++] = (uint8_t)u;
  return n;
}

static inline size_t tg__varint_len(uint64_t u) {
  size_t n = 1;
  while (u >= 0x80) {
    u >>= 7;
    n++;
  }
  return n;
}

static inline void tg__put_u64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint64_t tg__get_u64(const uint8_t *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}

/* ---- buffers ------------------------------------------------------------- */

/* A 64-byte aligned buffer for n bytes, freed with tg__free() (so also with
 * free()). Large ones ask for transparent huge pages: first-touch faults on
 * 4 KiB pages would cost more than the copy that fills the buffer. */
static inline void *tg__big_alloc(size_t n) {
  void *p = tg__aligned_alloc(TG__ALIGN, n);
  const size_t huge = (size_t)2 << 20;
  if (p && n >= 2 * huge) {
    uintptr_t a = ((uintptr_t)p + huge - 1) & ~(uintptr_t)(huge - 1);
    uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)(huge - 1);
    if (e > a) (void)madvise((void *)a, e - a, MADV_HUGEPAGE); /* a hint */
  }
  return p;
}

void tg__release_free(void *ctx, void *data); /* tg__free(data); decode.c */

/* ---- hashing of large data (bulkhash.c) ---------------------------------- */

/* XXH3-64 (seed 0) of len bytes, using the fastest code the CPU runs. */
uint64_t tg__xxh3_bulk(const void *data, size_t len);
/* Streaming form: new (NULL when out of memory), update any number of
 * times, final (returns the digest and frees the hasher). */
typedef struct tg__bulk_hasher tg__bulk_hasher;
tg__bulk_hasher *tg__bulk_hasher_new(void);
void tg__bulk_hasher_update(tg__bulk_hasher *h, const void *data, size_t len);
uint64_t tg__bulk_hasher_final(tg__bulk_hasher *h);

/* ---- encoder (encode.c) -------------------------------------------------- */

/* One payload item: `len` bytes at `data` (borrowed from the value being
 * encoded) that go to payload offset `off`. */
typedef struct tg__pitem {
  const void *data;
  size_t len;
  size_t off;
} tg__pitem;

/* The encoding of a value before assembly: the meta section and where the
 * payload items go. Lets tg_dump write array data straight from the
 * value's memory. */
typedef struct tg__plan {
  uint8_t *meta;
  size_t meta_len, meta_cap;
  tg__pitem *items;
  size_t nitems, items_cap;
  size_t payload_len; /* end of the last item */
} tg__plan;

/* Build the plan of v. On error the plan is freed. */
int tg__plan_build(const tg_value *v, tg__plan *p /* OUT */, tg_error *err);
void tg__plan_free(tg__plan *p);
/* Validate opts (NULL allowed); store the zstd level (0 = none). */
int tg__encode_opts_level(const tg_encode_opts *opts, int *level, tg_error *err);
/* Fill the 64-byte header. */
void tg__header_write(uint8_t out[TG_HEADER_SIZE], const tg__header *h);

/* ---- file.c ---------------------------------------------------------------- */

/* tg_load of a file whose content is known: it must be exactly `size`
 * bytes whose XXH3-64 (seed 0) is `hash`, else TG_ECHECKSUM. Every byte
 * is checked on both paths (mapped or copied, flags as tg_load's; VERIFY
 * is implied), in one pass: the content hash replaces the payload hash.
 * For stores that name or record their files by content (the cache). */
int tg__load_hashed(const char *path, unsigned flags, uint64_t size, uint64_t hash,
                    tg_value **out /* OUT */, tg_error *err);

/* ---- decoder (decode.c) -------------------------------------------------- */

/* Parse and check the 64-byte header at buf (total input `len` bytes,
 * which must match the declared sizes exactly). */
int tg__header_read(const uint8_t *buf, size_t len, tg__header *h /* OUT */,
                    tg_error *err);

enum {
  TG__DEC_SKIP_PAYLOAD_HASH = 1, /* trust the payload (mmap without VERIFY) */
};

/* Decode a whole encoding of len bytes at buf whose header was already
 * checked into *h. region: owner of buf that borrowed data refers to
 * (arrays and large bytes then point into buf, which must be 64-byte
 * aligned); NULL to copy everything. Compressed bodies are decompressed
 * into a new buffer that the result borrows from. The caller keeps its
 * reference to region. */
int tg__decode_checked(const uint8_t *buf, const tg__header *h,
                       tg__region *region, unsigned flags,
                       tg_value **out /* OUT */, tg_error *err);

#endif /* TG_SERIAL_FORMAT_H */
