/* tests/test_segbook.c: the book of segments a connection lends and
 * borrows (wire/segbook.h): a segment of ours is reused only once the
 * peer gave it back and every value over it went, whichever comes last
 * and on whichever thread (and then by the next take); a peer naming
 * what it may not map is refused; mappings of the peer's are found while
 * they live, and their release lists their id for the peer, before the
 * connection ends and not after; nothing is left behind when values
 * outlive their connection. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <string.h>

#include "wire/segbook.h"

#define SIZE ((size_t)64 << 10)

static tg__segbook book;

static void setup(void) { cr_assert_eq(tg__segbook_init(&book, 16, false), TG_OK); }
static void teardown(void) { tg__segbook_fini(&book); }

/* The peer gives back ids (as its let_go/put_ids writes them). */
static bool give_back(const uint64_t *ids, size_t n) {
  tg__wbuf w = {0};
  tg__segbook_put_ids(&w, ids, n);
  cr_assert(!w.oom);
  tg__rbuf r;
  tg__rbuf_init(&r, w.p, w.len);
  bool ok = tg__segbook_returned(&book, &r);
  tg__wbuf_free(&w);
  return ok;
}

static tg__lent *lend(void) {
  tg__lent *o = tg__segbook_take(&book, SIZE);
  cr_assert_not_null(o);
  cr_assert(tg__segbook_lend(&book, o));
  return o;
}

TestSuite(segbook, .init = setup, .fini = teardown);

Test(segbook, given_back_segment_is_reused) {
  tg__lent *o = lend();
  cr_assert(o->s.fresh);
  void *map = o->s.map;
  uint64_t id = o->id;
  memset(map, 7, 100);
  cr_assert(give_back(&id, 1));
  tg__lent *p = tg__segbook_take(&book, SIZE);
  cr_assert_not_null(p);
  cr_assert(!p->s.fresh);
  cr_assert_eq(p->s.map, map);
  cr_assert_eq(((uint8_t *)p->s.map)[99], 7);
  cr_assert_neq(p->id, id, "a segment reused goes under a new id");
  tg__segbook_drop(&book, p);
}

Test(segbook, unknown_or_twice_given_back_is_refused) {
  tg__lent *o = lend();
  uint64_t id = o->id, other = id + 1;
  cr_assert(!give_back(&other, 1));
  cr_assert(give_back(&id, 1));
  cr_assert(!give_back(&id, 1), "given back twice");
  uint8_t junk[] = {5, 1}; /* says 5 ids, has 1 */
  tg__rbuf r;
  tg__rbuf_init(&r, junk, sizeof junk);
  cr_assert(!tg__segbook_returned(&book, &r));
}

Test(segbook, lent_range_stays_out_of_the_tail) {
  tg__lent *o = lend();
  size_t data = SIZE - 16;
  cr_assert_eq(tg__segbook_lent(&book, o->id, 0, data), o);
  cr_assert_eq(tg__segbook_lent(&book, o->id, data, 0), o);
  cr_assert_null(tg__segbook_lent(&book, o->id, 0, data + 1));
  cr_assert_null(tg__segbook_lent(&book, o->id, 1, data));
  cr_assert_null(tg__segbook_lent(&book, o->id, UINT64_MAX, 1));
  cr_assert_null(tg__segbook_lent(&book, o->id + 1, 0, 1));
  /* Not lent: the peer may not name it. */
  tg__lent *p = tg__segbook_take(&book, SIZE);
  cr_assert_null(tg__segbook_lent(&book, p->id, 0, 1));
  tg__segbook_destroy(&book, p);
}

static void *unhold_there(void *ctx) {
  tg__segbook_unhold(ctx, NULL);
  return NULL;
}

/* The peer gives a segment back while a value over it lives (released on
 * another thread): reused only after both, by the next take, nothing
 * tidied between (the next large value is the first thing sent: a fresh
 * segment's pages would all fault, and 200 MiB there and back twice in a
 * row took 7 times as long the second time). */
Test(segbook, held_segment_waits_for_its_last_value) {
  tg__lent *o = lend();
  uint64_t id = o->id;
  void *map = o->s.map;
  void *ctx = tg__segbook_hold(&book, o);
  cr_assert_not_null(ctx);
  cr_assert(give_back(&id, 1));
  tg__lent *p = tg__segbook_take(&book, SIZE);
  cr_assert(p->s.fresh && p->s.map != map, "in use by a value: not reused");
  tg__segbook_destroy(&book, p);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, unhold_there, ctx), 0);
  pthread_join(t, NULL);
  p = tg__segbook_take(&book, SIZE); /* pools what other threads freed first */
  cr_assert(!p->s.fresh && p->s.map == map, "a fresh segment beside a free one");
  tg__segbook_drop(&book, p);
}

/* A value over a segment of ours outlives the connection: its release
 * destroys the segment (ASan and LSan see anything left). */
Test(segbook, held_value_outlives_the_book) {
  tg__lent *o = lend();
  void *ctx = tg__segbook_hold(&book, o);
  cr_assert_not_null(ctx);
  tg__segbook_fini(&book);
  memset(o->s.map, 1, SIZE); /* still mapped: the value's */
  tg__segbook_unhold(ctx, NULL);
  cr_assert_eq(tg__segbook_init(&book, 16, false), TG_OK);
}

static void *unborrow_there(void *ctx) {
  tg__segbook_unborrow(ctx, NULL);
  return NULL;
}

static void *peer_segment(void) {
  tg__seg s;
  cr_assert_eq(tg__seg_create(SIZE, false, &s), TG_OK);
  void *map;
  cr_assert_eq(tg__seg_map(s.fd, SIZE, true, &map), TG_OK);
  tg__seg_destroy(&s, false); /* the mapping keeps the memory */
  return map;
}

Test(segbook, borrowed_found_then_let_go) {
  void *map = peer_segment();
  void *ctx = tg__segbook_borrow(&book, map, SIZE, 42, NULL);
  cr_assert_not_null(ctx);
  uint64_t id = 0, off = 0;
  cr_assert(tg__segbook_find(&book, (uint8_t *)map + 4096, SIZE - 16 - 4096, &id, &off));
  cr_assert_eq(id, 42);
  cr_assert_eq(off, 4096);
  cr_assert(!tg__segbook_find(&book, (uint8_t *)map + 4096, SIZE - 16, &id, &off),
            "the tail is not data");
  size_t n;
  cr_assert_null(tg__segbook_let_go(&book, &n));
  cr_assert_eq(n, 0);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, unborrow_there, ctx), 0);
  pthread_join(t, NULL);
  cr_assert(!tg__segbook_find(&book, map, 1, &id, &off), "unmapped: not found");
  uint64_t *ids = tg__segbook_let_go(&book, &n);
  cr_assert_eq(n, 1);
  cr_assert_eq(ids[0], 42);
  tg__free(ids);
  cr_assert_null(tg__segbook_let_go(&book, &n), "told once");
}

Test(segbook, borrowed_released_after_the_book) {
  void *map = peer_segment();
  void *ctx = tg__segbook_borrow(&book, map, SIZE, 7, NULL);
  cr_assert_not_null(ctx);
  tg__segbook_fini(&book);
  tg__segbook_unborrow(ctx, NULL); /* nobody to tell; nothing leaks */
  cr_assert_eq(tg__segbook_init(&book, 16, false), TG_OK);
  size_t n;
  cr_assert_null(tg__segbook_let_go(&book, &n));
}
