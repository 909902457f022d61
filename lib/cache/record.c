/* lib/cache/record.c: byte layouts of the records the cache stores in
 * LMDB. All integers little-endian.
 *
 * Entry record ("entries"), format version 1:
 *    0  u8   record version (1)
 *    1  u8   flags: bit 0 = the value is in a blob file
 *    2  u16  function name length n
 *    4  u32  reserved, 0
 *    8  u64  size: stored bytes (inline payload or blob file)
 *   16  u64  checksum: XXH3-64 of the stored bytes
 *   24  f64  created, Unix seconds
 *   32  f64  compute_seconds
 *   40  n    function name bytes
 *   40+n     inline: `size` bytes of the encoded value (serial format)
 *            blob:   16 bytes, the blob's digest (lo, hi)
 *
 * Stats record ("meta"/"stats"): u64 version (1), entries, inline bytes,
 * blob bytes.
 *
 * Run statistics ("meta"/"runs", runlog.c), 112 bytes: u64 version (1),
 * runs, then the totals (u64 hits, misses, stores, bytes read, bytes
 * written), f64 since, the last compute's counts (the same five u64) and
 * f64 its time.
 *
 * Note ("nodes", key 'n' + lineage id, runlog.c), 24 bytes: f64 seconds,
 * f64 threshold, i32 kind (tg_explain_note), i32 code.
 */
#include <string.h>

#include "cache_internal.h"
#include "cache_memo.h"

#define REC_VERSION 1
#define FLAG_BLOB 1u

static void put_u64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static uint64_t get_u64(const unsigned char *p) {
  uint64_t v;
  memcpy(&v, p, 8);
  return v;
}
static void put_f64(unsigned char *p, double d) { memcpy(p, &d, 8); }
static double get_f64(const unsigned char *p) {
  double d;
  memcpy(&d, p, 8);
  return d;
}

void tg__digest_pack(tg_digest d, unsigned char out[16]) {
  put_u64(out, d.lo);
  put_u64(out + 8, d.hi);
}

tg_digest tg__digest_unpack(const void *p) {
  tg_digest d = {get_u64(p), get_u64((const unsigned char *)p + 8)};
  return d;
}

size_t tg__entry_rec_len(const tg__entry *e) {
  return TG__REC_HEADER + e->function_len + (e->in_blob ? 16 : e->size);
}

void tg__entry_pack(const tg__entry *e, void *rec) {
  unsigned char *p = rec;
  uint16_t n = (uint16_t)e->function_len;
  uint32_t zero = 0;
  p[0] = REC_VERSION;
  p[1] = e->in_blob ? FLAG_BLOB : 0;
  memcpy(p + 2, &n, 2);
  memcpy(p + 4, &zero, 4);
  put_u64(p + 8, e->size);
  put_u64(p + 16, e->checksum);
  put_f64(p + 24, e->created);
  put_f64(p + 32, e->compute_seconds);
  if (n) memcpy(p + TG__REC_HEADER, e->function, n);
  p += TG__REC_HEADER + n;
  if (e->in_blob)
    tg__digest_pack(e->blob, p);
  else if (e->size)
    memcpy(p, e->payload, e->size);
}

bool tg__entry_parse(const void *rec, size_t len, tg__entry *e) {
  const unsigned char *p = rec;
  uint16_t n;
  if (len < TG__REC_HEADER || p[0] != REC_VERSION || (p[1] & ~FLAG_BLOB))
    return false;
  memcpy(&n, p + 2, 2);
  if ((size_t)n > len - TG__REC_HEADER) return false;
  e->in_blob = (p[1] & FLAG_BLOB) != 0;
  e->size = get_u64(p + 8);
  e->checksum = get_u64(p + 16);
  e->created = get_f64(p + 24);
  e->compute_seconds = get_f64(p + 32);
  e->function = (const char *)p + TG__REC_HEADER;
  e->function_len = n;
  size_t rest = len - TG__REC_HEADER - n;
  const unsigned char *tail = p + TG__REC_HEADER + n;
  if (e->in_blob) {
    if (rest != 16) return false;
    e->payload = NULL;
    e->blob = tg__digest_unpack(tail);
  } else {
    if (rest != e->size) return false;
    e->payload = tail;
    e->blob = (tg_digest){0, 0};
  }
  return true;
}

void tg__stats_pack(const tg__cache_stats *s, unsigned char out[32]) {
  put_u64(out, 1);
  put_u64(out + 8, s->entries);
  put_u64(out + 16, s->inline_bytes);
  put_u64(out + 24, s->blob_bytes);
}

bool tg__stats_parse(const void *p, size_t len, tg__cache_stats *s) {
  const unsigned char *b = p;
  if (len != 32 || get_u64(b) != 1) return false;
  s->entries = get_u64(b + 8);
  s->inline_bytes = get_u64(b + 16);
  s->blob_bytes = get_u64(b + 24);
  return true;
}

static unsigned char *put_counts(unsigned char *p, const tg_cache_run_counts *n) {
  put_u64(p, n->hits);
  put_u64(p + 8, n->misses);
  put_u64(p + 16, n->stores);
  put_u64(p + 24, n->bytes_read);
  put_u64(p + 32, n->bytes_written);
  return p + 40;
}

static const unsigned char *get_counts(const unsigned char *p, tg_cache_run_counts *n) {
  n->hits = get_u64(p);
  n->misses = get_u64(p + 8);
  n->stores = get_u64(p + 16);
  n->bytes_read = get_u64(p + 24);
  n->bytes_written = get_u64(p + 32);
  return p + 40;
}

void tg__runstats_pack(const tg_cache_stats *s, unsigned char out[TG__RUNSTATS_LEN]) {
  put_u64(out, 1);
  put_u64(out + 8, s->runs);
  unsigned char *p = put_counts(out + 16, &s->total);
  put_f64(p, s->since);
  p = put_counts(p + 8, &s->last);
  put_f64(p, s->last_time);
}

bool tg__runstats_parse(const void *rec, size_t len, tg_cache_stats *s) {
  const unsigned char *b = rec;
  if (len != TG__RUNSTATS_LEN || get_u64(b) != 1) return false;
  s->runs = get_u64(b + 8);
  const unsigned char *p = get_counts(b + 16, &s->total);
  s->since = get_f64(p);
  p = get_counts(p + 8, &s->last);
  s->last_time = get_f64(p);
  return true;
}

void tg__note_pack(const tg__cache_note *n, unsigned char out[TG__NOTE_LEN]) {
  int32_t kind = n->kind, code = n->code;
  put_f64(out, n->seconds);
  put_f64(out + 8, n->threshold);
  memcpy(out + 16, &kind, 4);
  memcpy(out + 20, &code, 4);
}

bool tg__note_parse(const void *rec, size_t len, tg__cache_note *n) {
  const unsigned char *b = rec;
  int32_t kind, code;
  if (len != TG__NOTE_LEN) return false;
  memcpy(&kind, b + 16, 4);
  memcpy(&code, b + 20, 4);
  if (kind < TG_NOTE_UNDER_THRESHOLD || kind > TG_NOTE_UNSTORABLE) return false;
  n->seconds = get_f64(b);
  n->threshold = get_f64(b + 8);
  n->kind = kind;
  n->code = code;
  return true;
}
