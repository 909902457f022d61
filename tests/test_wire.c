/* tests/test_wire.c: values held as they came (wire/wire.h): a value a
 * process receives only to send it on (a result moved from one worker to
 * another through the run) keeps its skeleton encoded and its large
 * leaves as received, crosses again any number of times exactly, and is
 * still decoded as hostile input by whoever receives it in the end. */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "test_funcs.h"
#include "wire/link.h"
#include "wire/wire.h"
#include "tgraph/serial.h"

/* a -> b (b holds), b -> c (c decodes) */
static tg__link *a, *b_in, *b_out, *c;
static tg__stream sa, sb_in, sb_out, sc;

static void setup(void) {
  int ab[2], bc[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ab), 0);
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, bc), 0);
  a = tg__link_local(ab[0], false);
  b_in = tg__link_local(ab[1], false);
  b_out = tg__link_local(bc[0], false);
  c = tg__link_local(bc[1], false);
  cr_assert(a && b_in && b_out && c);
  tg__stream_init(&sa, 0, NULL);
  tg__stream_init(&sb_in, 0, NULL);
  tg__stream_init(&sb_out, 0, NULL);
  tg__stream_init(&sc, 0, NULL);
}

static void teardown(void) {
  tg__stream_reset(&sa);
  tg__stream_reset(&sb_in);
  tg__stream_reset(&sb_out);
  tg__stream_reset(&sc);
  tg__link_close(a);
  tg__link_close(b_in);
  tg__link_close(b_out);
  tg__link_close(c);
}

#define MAXP 16

/* One message on l, waiting up to 5 s: its part count. */
static size_t recv_msg(tg__link *l, zmq_msg_t *parts) {
  size_t n = 0;
  for (int i = 0; i < 5000; i++) {
    int got = tg__link_recv(l, parts, MAXP, &n);
    cr_assert_geq(got, 0, "receiving failed");
    if (got) return n;
    usleep(1000);
  }
  cr_assert_fail("no message in 5 s");
  return 0;
}

static void close_parts(zmq_msg_t *p, size_t n) {
  for (size_t i = 0; i < n; i++) zmq_msg_close(&p[i]);
}

static const uint8_t HEAD[] = {42};

static void send_value(tg__link *l, tg__stream *st, const tg_value *v) {
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, HEAD[0]);
  cr_assert_eq(tg__wire_send(l, NULL, 0, &h, v, 0, st, NULL, NULL), TG_OK);
  tg__wbuf_free(&h);
  cr_assert_eq(tg__link_flush(l), TG_OK);
}

/* A map of 2,000 counts, an 800 KB array and, in a list, 200 KB of bytes
 * and a short string: a skeleton with leaves at depths 1 and 2. */
static tg_value *sample(void) {
  tg_value *counts = tg_map_new(0);
  char k[32];
  for (int i = 0; i < 2000; i++) {
    int l = snprintf(k, sizeof k, "word%d pair%d", i * 7 % 2003, i);
    cr_assert_eq(tg_map_put(counts, k, (size_t)l, tg_int(i)), TG_OK);
  }
  size_t blen = 200000;
  char *bytes = malloc(blen);
  for (size_t i = 0; i < blen; i++) bytes[i] = (char)(i * 31 + 7);
  tg_value *v = tg_map_new(0);
  tg_map_put_c(v, "counts", counts);
  tg_map_put_c(v, "arr", tgt_f64_array(100000, 3));
  tg_map_put_c(v, "nested", tg_list_of(2, tg_bytes(bytes, blen), tg_str_c("s")));
  free(bytes);
  return v;
}

Test(wire, held_value_sent_on_twice_arrives_exact, .init = setup, .fini = teardown) {
  tg_value *v = sample();
  send_value(a, &sa, v);
  zmq_msg_t parts[MAXP];
  size_t n = recv_msg(b_in, parts);
  cr_assert_eq(zmq_msg_size(&parts[0]), 1);
  tg__wire_held *h = NULL;
  size_t used = 0;
  uint64_t bytes = 0;
  tg_error e;
  cr_assert_eq(tg__wire_hold(parts + 1, n - 1, &sb_in, &used, &h, &bytes, &e), TG_OK, "%s",
               e.msg);
  cr_assert_eq(used + 1, n, "the value takes every part after the head");
  cr_assert_gt(bytes, 800000 + 200000, "the leaves' bytes are counted");
  close_parts(parts, n);
  tg_value *got[2];
  for (int i = 0; i < 2; i++) {
    tg__wbuf head = {0};
    tg__wbuf_u8(&head, 7);
    cr_assert_eq(tg__wire_send_held(b_out, NULL, 0, &head, h, 0, &sb_out, NULL, &e), TG_OK,
                 "%s", e.msg);
    tg__wbuf_free(&head);
    cr_assert_eq(tg__link_flush(b_out), TG_OK);
    n = recv_msg(c, parts);
    cr_assert_eq(*(uint8_t *)zmq_msg_data(&parts[0]), 7);
    cr_assert_eq(tg__wire_recv(parts + 1, n - 1, &sc, &used, &got[i], NULL, &e), TG_OK, "%s",
                 e.msg);
    cr_assert_eq(used + 1, n);
    close_parts(parts, n);
  }
  tg_value *here = NULL; /* decoded where it is held, as the worker it goes to does */
  cr_assert_eq(tg__wire_held_decode(h, &here, &e), TG_OK, "%s", e.msg);
  tg__wire_held_free(h); /* what c received does not depend on it */
  cr_assert(tg_value_equal(here, v), "decoded where held, it differs");
  tg_value_unref(here);
  for (int i = 0; i < 2; i++) {
    cr_assert(tg_value_equal(got[i], v), "copy %d differs from what was sent", i);
    tg_value_unref(got[i]);
  }
  tg_value_unref(v);
}

Test(wire, held_skeleton_is_decoded_by_its_receiver, .init = setup, .fini = teardown) {
  size_t len;
  void *enc = tgt_duplicate_key_encoding(&len);
  cr_assert_not_null(enc);
  tg_value *v = NULL;
  tg_error e;
  cr_assert_eq(tg_decode(enc, len, &v, &e), TG_EFORMAT);
  cr_assert(strstr(e.msg, "duplicate map key \"k2\""), "%s", e.msg);
  /* as a worker would send it: no leaves, then the skeleton */
  uint8_t desc[] = {1, 0};
  cr_assert_eq(tg__link_send_copy(a, HEAD, 1, TG__LINK_MORE), TG_OK);
  cr_assert_eq(tg__link_send_copy(a, desc, sizeof desc, TG__LINK_MORE), TG_OK);
  cr_assert_eq(tg__link_send_copy(a, enc, len, 0), TG_OK);
  cr_assert_eq(tg__link_flush(a), TG_OK);
  free(enc);
  zmq_msg_t parts[MAXP];
  size_t n = recv_msg(b_in, parts), used;
  tg__wire_held *h = NULL;
  cr_assert_eq(tg__wire_hold(parts + 1, n - 1, &sb_in, &used, &h, NULL, &e), TG_OK, "%s", e.msg);
  close_parts(parts, n);
  tg_value *here = (tg_value *)1;
  cr_assert_eq(tg__wire_held_decode(h, &here, &e), TG_EFORMAT);
  cr_assert(strstr(e.msg, "duplicate map key \"k2\""), "%s", e.msg);
  cr_assert_null(here);
  tg__wbuf head = {0};
  tg__wbuf_u8(&head, 7);
  cr_assert_eq(tg__wire_send_held(b_out, NULL, 0, &head, h, 0, &sb_out, NULL, &e), TG_OK);
  tg__wbuf_free(&head);
  tg__wire_held_free(h);
  cr_assert_eq(tg__link_flush(b_out), TG_OK);
  n = recv_msg(c, parts);
  cr_assert_eq(tg__wire_recv(parts + 1, n - 1, &sc, &used, &v, NULL, &e), TG_EFORMAT);
  cr_assert(strstr(e.msg, "duplicate map key \"k2\""), "%s", e.msg);
  cr_assert_null(v);
  close_parts(parts, n);
}

/* A skeleton part that is not a whole tgraph encoding is refused when
 * held, as when decoded: no value, an exact reason. */
Test(wire, held_skeleton_header_checked, .init = setup, .fini = teardown) {
  tg_value *m = tg_list_of(2, tg_int(1), tg_str_c("two"));
  void *enc = NULL;
  size_t len;
  tg_error e;
  cr_assert_eq(tg_encode(m, NULL, &enc, &len, &e), TG_OK);
  tg_value_unref(m);
  struct {
    size_t len;
    size_t flip; /* byte to change, or past the end: none */
    int code;
    const char *says;
  } cases[] = {
      {len - 1, len, TG_EFORMAT, "stored bytes"},   /* truncated */
      {len, 0, TG_EFORMAT, "not a tgraph encoding"}, /* bad magic */
      {len, 20, TG_ECHECKSUM, "header checksum"},   /* a size changed */
      {40, len, TG_EFORMAT, "shorter than the 64-byte header"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    uint8_t *p = malloc(len);
    memcpy(p, enc, len);
    if (cases[i].flip < len) p[cases[i].flip] ^= 0x40;
    uint8_t desc[] = {1, 0};
    cr_assert_eq(tg__link_send_copy(a, HEAD, 1, TG__LINK_MORE), TG_OK);
    cr_assert_eq(tg__link_send_copy(a, desc, sizeof desc, TG__LINK_MORE), TG_OK);
    cr_assert_eq(tg__link_send_copy(a, p, cases[i].len, 0), TG_OK);
    cr_assert_eq(tg__link_flush(a), TG_OK);
    free(p);
    zmq_msg_t parts[MAXP];
    size_t n = recv_msg(b_in, parts), used = 9;
    tg__wire_held *h = (tg__wire_held *)1;
    cr_assert_eq(tg__wire_hold(parts + 1, n - 1, &sb_in, &used, &h, NULL, &e), cases[i].code,
                 "case %zu: %s", i, e.msg);
    cr_assert(strstr(e.msg, cases[i].says), "case %zu: %s", i, e.msg);
    cr_assert_null(h);
    cr_assert_eq(used, 0);
    close_parts(parts, n);
  }
  free(enc);
}
