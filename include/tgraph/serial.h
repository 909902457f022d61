/* include/tgraph/serial.h: the tgraph binary format, used for dump files,
 * cache entries and every wire.
 *
 * Layout, all integers little-endian (docs/format.md has the full spec):
 *
 *   header, 64 bytes
 *     0  magic  0x89 'T' 'G' 'V'
 *     4  u16    format version (1)
 *     6  u16    flags: bit 0 = body is one zstd frame; others must be 0
 *     8  u64    meta_len      bytes of the meta section (uncompressed)
 *    16  u64    payload_len   bytes of the payload section (uncompressed)
 *    24  u64    stored_len    bytes stored after the header
 *    32  u64    meta_hash     XXH3-64 of the meta section
 *    40  u64    payload_hash  XXH3-64 of the payload section
 *    48  u64    header_hash   XXH3-64 of bytes 0..47
 *    56  u64    reserved, 0
 *   meta section at offset 64: one value, tag byte + varints (below)
 *   zero padding up to a multiple of 64
 *   payload section: array (and large bytes) data, each item starting at
 *     a 64-byte aligned offset, so a page-aligned mapping of the file
 *     yields aligned arrays that can be used in place.
 *
 * Reading never trusts its input: every length is checked against the
 * bytes that remain before anything is allocated, so memory used is
 * bounded by a small multiple of the input size (for zstd-compressed
 * input, of the declared uncompressed size, itself capped at 32768 times
 * the stored size and at 64 GiB); nesting is bounded by
 * TG_DEPTH_MAX; every failure is an error code plus a message naming what
 * is wrong and the byte offset.
 *
 * Thread safety: all calls are thread-safe on distinct outputs; a value
 * may be encoded by several threads at once.
 */
#ifndef TGRAPH_SERIAL_H
#define TGRAPH_SERIAL_H

#include <stddef.h>
#include <stdint.h>

#include "tgraph/error.h"
#include "tgraph/value.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TG_FORMAT_VERSION 1
#define TG_HEADER_SIZE 64

#define TG_ENCODE_OPTS_V1 1
typedef struct tg_encode_opts {
  uint32_t version;   /* TG_ENCODE_OPTS_V1 */
  int compress;       /* 0: none; otherwise a zstd level (1..19, or
                         negative for zstd's fast levels) */
  int sync;           /* tg_dump only: fsync the file and its directory
                         before returning (durable against power loss) */
} tg_encode_opts;

/* Encode v into a new buffer. On TG_OK *out (free with free(), 64-byte
 * aligned) holds *len bytes. opts may be NULL (no compression). */
int tg_encode(const tg_value *v, const tg_encode_opts *opts,
              void **out /* OUT */, size_t *len /* OUT */, tg_error *err);

/* Decode len bytes at buf, which stay the caller's; the result owns
 * copies of everything. On error *out is NULL. */
int tg_decode(const void *buf, size_t len, tg_value **out /* OUT */,
              tg_error *err);

/* Decode without copying array payloads: arrays in the result point into
 * buf. buf must be 64-byte aligned and stay unchanged until
 * release(ctx, buf) is called, once, after the last value using it is
 * gone (at once when nothing borrowed it or decoding failed). Compressed
 * input is decompressed into a new buffer instead. */
int tg_decode_borrow(void *buf, size_t len, tg_release_fn release, void *ctx,
                     tg_value **out /* OUT */, tg_error *err);

/* Write v to path atomically: into a temporary file in the same
 * directory, then rename(2), so a crash never leaves a partial file under
 * `path`. opts may be NULL. */
int tg_dump(const tg_value *v, const char *path, const tg_encode_opts *opts,
            tg_error *err);

enum {
  TG_LOAD_MMAP = 1,   /* map the file: arrays point into the mapping (zero
                         copy, O(1) in their size); the mapping lives while
                         any value uses it. Compressed files are read. */
  TG_LOAD_VERIFY = 2, /* with TG_LOAD_MMAP: also check the payload
                         checksum (reads every byte). Without MMAP the
                         payload is always checked. The header and meta
                         section are always checked. */
};

/* Read a file written by tg_dump(). flags: TG_LOAD_*. */
int tg_load(const char *path, unsigned flags, tg_value **out /* OUT */,
            tg_error *err);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_SERIAL_H */
