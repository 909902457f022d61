/* lib/wire/stream.c: large values as runs of BULK messages (see
 * wire/stream.h). */
#include "wire/stream.h"

#include <errno.h>

#include "wire/buf.h"
#include "wire/link.h"
#include "wire/proto.h"
#include "wire/shm.h"
#include "util/bigbuf.h"
#include "util/tsan.h"

void tg__stream_init(tg__stream *s, uint64_t limit, tg__stream_pool *pool) {
  memset(s, 0, sizeof *s);
  s->limit = limit;
  s->pool = pool;
}

/* The pool's count moves on the owner's thread (arrivals) and on any
 * thread (a taken buffer's last release): atomic. Only the owner adds,
 * so a test against it followed by an add cannot overshoot. */
static void pool_add(tg__stream_pool *pool, uint64_t n, bool add) {
  if (!pool) return;
  if (add) __atomic_add_fetch(&pool->used, n, __ATOMIC_RELAXED);
  else __atomic_sub_fetch(&pool->used, n, __ATOMIC_RELAXED);
}

static uint64_t pool_used(const tg__stream_pool *pool) {
  return __atomic_load_n(&pool->used, __ATOMIC_RELAXED);
}

tg__stream_pool *tg__stream_pool_new(uint64_t limit) {
  tg__stream_pool *pool = tg__calloc(1, sizeof *pool);
  if (pool) pool->limit = limit, pool->refs = 1;
  return pool;
}

void tg__stream_pool_unref(tg__stream_pool *pool) {
  if (pool && __atomic_sub_fetch(&pool->refs, 1, __ATOMIC_ACQ_REL) == 0) tg__free(pool);
}

/* Count n more (or fewer) bytes held for the peer, here and in the pool. */
static void held(tg__stream *s, uint64_t n, bool add) {
  s->in_bytes = add ? s->in_bytes + n : s->in_bytes - n;
  pool_add(s->pool, n, add);
}

void tg__stream_reset(tg__stream *s) {
  for (size_t i = 0; i < s->nin; i++) tg__bigbuf_free(s->in[i].p, s->in[i].cap);
  held(s, s->in_bytes, false);
  tg__free(s->in);
  tg__shm_free(s->shm);
  tg__stream_init(s, s->limit, s->pool);
}

int tg__stream_pool_hold(tg__stream_pool *pool, uint64_t n, tg_error *err) {
  if (!pool) return TG_OK;
  uint64_t used = pool_used(pool);
  if (used >= pool->limit || n > pool->limit - used)
    return tg__error_set(err, TG_ELIMIT, "a value of %llu bytes would take the large "
                         "values the worker holds to more than its limit of %llu bytes "
                         "for all clients (%llu held; --max-pending)",
                         (unsigned long long)n, (unsigned long long)pool->limit,
                         (unsigned long long)used);
  pool_add(pool, n, true);
  __atomic_add_fetch(&pool->refs, 1, __ATOMIC_RELAXED);
  return TG_OK;
}

void tg__stream_pool_drop(tg__stream_pool *pool, uint64_t n) {
  if (!pool) return;
  pool_add(pool, n, false);
  tg__stream_pool_unref(pool);
}

/* A taken buffer: what its release gives back, and to which pool (which
 * it keeps alive: the buffer may outlive the streams and their owner). */
typedef struct taken {
  tg__stream_pool *pool;
  size_t cap;
} taken;

void tg__stream_release(void *hint, void *p) {
  taken *t = hint;
  tg__bigbuf_free(p, t->cap);
  pool_add(t->pool, t->cap, false);
  tg__stream_pool_unref(t->pool);
  tg__free(t);
}

void tg__zmq_unref_hint(void *data, void *hint) {
  (void)data;
  tg__tsan_acquire(hint); /* the sender's tg__tsan_release */
  tg_value_unref(hint);
}

int tg__stream_send(tg__link *sock, const void *rid, size_t rid_len, const void *data,
                    size_t len, tg_value *hold, tg__stream *s, uint64_t *seq,
                    uint64_t *bytes, tg_error *err) {
  *seq = s->out_seq++;
  uint8_t head[32];
  for (size_t off = 0; off < len; off += TG__STREAM_CHUNK) {
    size_t n = len - off < TG__STREAM_CHUNK ? len - off : TG__STREAM_CHUNK;
    tg__wbuf h = {head, 0, sizeof head, false};
    tg__wbuf_u8(&h, TG__M_BULK);
    tg__wbuf_varint(&h, *seq);
    tg__wbuf_varint(&h, len);
    tg__wbuf_varint(&h, off);
    zmq_msg_t m;
    tg__tsan_release(hold);
    if (zmq_msg_init_data(&m, (uint8_t *)data + off, n, tg__zmq_unref_hint,
                          tg_value_ref(hold))) {
      tg_value_unref(hold);
      return tg__error_set(err, TG_ENOMEM, "out of memory sending a value");
    }
    int rc = rid_len ? tg__link_send_copy(sock, rid, rid_len, TG__LINK_MORE) : TG_OK;
    if (rc == TG_OK) rc = tg__link_send_copy(sock, h.p, h.len, TG__LINK_MORE);
    if (rc != TG_OK) zmq_msg_close(&m);
    else rc = tg__link_send(sock, &m, 0); /* takes m */
    if (rc != TG_OK) return tg__error_set(err, rc, "sending a value: %s", tg_strerror(rc));
    if (bytes) *bytes += n;
    s->streamed_out += n;
  }
  return TG_OK;
}

static int bad(tg_error *err, const char *what) {
  return tg__error_set(err, TG_EFORMAT, "bad streamed value: %s", what);
}

int tg__stream_recv(tg__stream *s, zmq_msg_t *parts, size_t n, tg_error *err) {
  if (n != 2) return bad(err, "a chunk needs 2 message parts");
  tg__rbuf r;
  tg__rbuf_init(&r, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]));
  (void)tg__rbuf_u8(&r);
  uint64_t seq = tg__rbuf_varint(&r), total = tg__rbuf_varint(&r),
           off = tg__rbuf_varint(&r);
  size_t len = zmq_msg_size(&parts[1]);
  if (r.bad || r.pos != r.len) return bad(err, "malformed chunk header");
  tg__bulk *b = s->nin ? &s->in[s->nin - 1] : NULL;
  if (!b || b->got == b->total) { /* the first chunk of the next value */
    if (seq != s->in_seq || off != 0) return bad(err, "out of sequence");
    /* Only large values are streamed: a small one would cost a page or
     * more here for a few bytes on the wire. */
    if (total < TG__STREAM_MIN) return bad(err, "too small to be streamed");
    /* Buffers may be larger than asked (recycled ones): held can pass
     * a limit by that much, hence the first tests. */
    if (s->in_bytes >= s->limit || total > s->limit - s->in_bytes)
      return tg__error_set(err, TG_ELIMIT, "a streamed value of %llu bytes is over the "
                           "limit of %llu bytes held at once (--max-message)",
                           (unsigned long long)total,
                           (unsigned long long)(s->in_bytes >= s->limit ? 0
                                                : s->limit - s->in_bytes));
    /* What the buffer will cost (page-rounded), against what all peers
     * hold: refused here, before any of it is buffered. */
    uint64_t cost = (total + 4095) & ~(uint64_t)4095;
    uint64_t used = s->pool ? pool_used(s->pool) : 0;
    if (s->pool && (used >= s->pool->limit || cost > s->pool->limit - used))
      return tg__error_set(err, TG_ELIMIT, "a streamed value of %llu bytes would take the "
                           "large values the worker holds (received, in queued or running "
                           "tasks, or stored) to more than its limit of %llu bytes for all "
                           "clients (%llu held; --max-pending)",
                           (unsigned long long)total, (unsigned long long)s->pool->limit,
                           (unsigned long long)used);
    if (s->nin == s->cap_in) {
      size_t c = s->cap_in ? s->cap_in * 2 : 4;
      tg__bulk *nb = tg__realloc(s->in, c * sizeof *nb);
      if (!nb) return tg__error_set(err, TG_ENOMEM, "out of memory receiving a value");
      s->in = nb;
      s->cap_in = c;
    }
    size_t cap;
    uint8_t *p = tg__bigbuf_alloc((size_t)total, &cap);
    if (!p) return tg__error_set(err, TG_ENOMEM, "out of memory receiving a value "
                                 "of %llu bytes", (unsigned long long)total);
    b = &s->in[s->nin++];
    *b = (tg__bulk){seq, p, cap, (size_t)total, 0};
    s->in_seq++;
    held(s, cap, true); /* what it costs here, not what it says */
  } else if (seq != b->seq || off != b->got || total != b->total) {
    return bad(err, "out of sequence");
  }
  if (len == 0 || len > TG__STREAM_CHUNK || len > b->total - b->got)
    return bad(err, "bad chunk size");
  memcpy(b->p + b->got, zmq_msg_data(&parts[1]), len);
  b->got += len;
  s->streamed_in += len;
  return TG_OK;
}

int tg__stream_take(tg__stream *s, uint64_t seq, size_t len, void **p, void **hint,
                    tg_error *err) {
  /* Values are used in the order they were sent. */
  if (!s->nin || s->in[0].seq != seq || s->in[0].got != s->in[0].total ||
      s->in[0].total != len)
    return bad(err, "no such value");
  taken *t = tg__malloc(sizeof *t);
  if (!t) return tg__error_set(err, TG_ENOMEM, "out of memory receiving a value");
  /* It leaves the peer's count, and stays in the pool's until released:
   * a value in a queued task or a stored object is still memory held. */
  *t = (taken){s->pool, s->in[0].cap};
  if (s->pool) __atomic_add_fetch(&s->pool->refs, 1, __ATOMIC_RELAXED);
  *p = s->in[0].p;
  *hint = t;
  s->in_bytes -= s->in[0].cap;
  memmove(s->in, s->in + 1, --s->nin * sizeof *s->in);
  return TG_OK;
}
