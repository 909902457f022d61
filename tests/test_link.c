/* tests/test_link.c: the local link (wire/link.h): parts cross a
 * socketpair framed, large parts cross as memfd segments mapped by the
 * receiver (their bytes never on the socket) and are reused once
 * released, and malformed frames are rejected with TG_EPROTO. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire/link.h"

static tg__link *a, *b;
static int raw; /* setup_raw: the writing end, b reads */

static void setup(void) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  a = tg__link_local(sv[0], false);
  b = tg__link_local(sv[1], false);
  cr_assert(a && b);
}

static void teardown(void) {
  tg__link_close(a);
  tg__link_close(b);
  a = b = NULL;
  if (raw > 0) close(raw);
  raw = 0;
}

static void setup_raw(void) {
  int sv[2];
  cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  raw = sv[0];
  b = tg__link_local(sv[1], false);
  cr_assert_not_null(b);
}

/* Receive one message on l, waiting up to a second. */
static int recv_wait(tg__link *l, zmq_msg_t *parts, size_t max, size_t *n) {
  for (int i = 0; i < 1000; i++) {
    int got = tg__link_recv(l, parts, max, n);
    if (got != 0) return got;
    usleep(1000);
  }
  return 0;
}

static int memfd_mappings(void) {
  FILE *f = fopen("/proc/self/maps", "r");
  char line[512];
  int n = 0;
  while (f && fgets(line, sizeof line, f)) n += strstr(line, "/memfd:tgraph") != NULL;
  if (f) fclose(f);
  return n;
}

Test(link, parts_cross_in_order, .init = setup, .fini = teardown) {
  char big[1000];
  memset(big, 'x', sizeof big);
  cr_assert_eq(tg__link_send_copy(a, "hello", 5, TG__LINK_MORE), TG_OK);
  cr_assert_eq(tg__link_send_copy(a, "", 0, TG__LINK_MORE), TG_OK);
  cr_assert_eq(tg__link_send_copy(a, big, sizeof big, 0), TG_OK);
  cr_assert_eq(tg__link_send_copy(a, "second", 6, 0), TG_OK);
  zmq_msg_t p[8];
  size_t n = 0;
  cr_assert_eq(recv_wait(b, p, 8, &n), 1);
  cr_assert_eq(n, 3);
  cr_assert_eq(zmq_msg_size(&p[0]), 5);
  cr_assert_eq(memcmp(zmq_msg_data(&p[0]), "hello", 5), 0);
  cr_assert_eq(zmq_msg_size(&p[1]), 0);
  cr_assert_eq(zmq_msg_size(&p[2]), sizeof big);
  cr_assert_eq(memcmp(zmq_msg_data(&p[2]), big, sizeof big), 0);
  for (size_t i = 0; i < n; i++) zmq_msg_close(&p[i]);
  cr_assert_eq(recv_wait(b, p, 8, &n), 1);
  cr_assert_eq(n, 1);
  cr_assert_eq(memcmp(zmq_msg_data(&p[0]), "second", 6), 0);
  zmq_msg_close(&p[0]);
  cr_assert_eq(tg__link_recv(b, p, 8, &n), 0, "nothing more");
  cr_assert_eq(a->st.sock_out, b->st.sock_in);
  cr_assert_eq(a->st.fds_out, 0);
}

Test(link, big_parts_cross_in_segments, .init = setup, .fini = teardown) {
  size_t len = (size_t)8 << 20;
  uint8_t *src = malloc(len);
  for (size_t i = 0; i < len; i++) src[i] = (uint8_t)(i * 31 + 7);
  cr_assert_eq(tg__link_send_copy(a, "h", 1, TG__LINK_MORE), TG_OK);
  cr_assert_eq(tg__link_send_copy(a, src, len, 0), TG_OK);
  zmq_msg_t p[4];
  size_t n = 0;
  cr_assert_eq(recv_wait(b, p, 4, &n), 1);
  cr_assert_eq(n, 2);
  cr_assert_eq(zmq_msg_size(&p[1]), len);
  cr_assert_eq((uintptr_t)zmq_msg_data(&p[1]) % 4096, 0, "not page-aligned");
  cr_assert_eq(memcmp(zmq_msg_data(&p[1]), src, len), 0);
  cr_assert_lt(b->st.sock_in, 1024, "segment bytes went through the socket");
  cr_assert_eq(b->st.seg_in, len);
  cr_assert_eq(b->st.fds_in, 1);
  cr_assert_eq(a->st.seg_copied, len);
  cr_assert_eq(memfd_mappings(), 2, "the sender's segment and the receiver's mapping");
  zmq_msg_close(&p[0]);
  zmq_msg_close(&p[1]); /* unmapped; the sender hears of it at b's flush */
  cr_assert_eq(memfd_mappings(), 1);
  cr_assert_eq(tg__link_flush(b), TG_OK);
  cr_assert_eq(recv_wait(a, p, 4, &n), 0, "a release is no message");
  /* The released segment is reused: no new mapping on the sender. */
  src[0] ^= 0xff;
  cr_assert_eq(tg__link_send_copy(a, src, len, 0), TG_OK);
  cr_assert_eq(memfd_mappings(), 1);
  cr_assert_eq(recv_wait(b, p, 4, &n), 1);
  cr_assert_eq(n, 1);
  cr_assert_eq(memcmp(zmq_msg_data(&p[0]), src, len), 0);
  cr_assert_eq(memfd_mappings(), 2);
  tg__link_close(a); /* a part outlives the sender's link */
  a = NULL;
  cr_assert_eq(memcmp(zmq_msg_data(&p[0]), src, len), 0);
  zmq_msg_close(&p[0]);
  cr_assert_eq(memfd_mappings(), 0);
  free(src);
}

static void no_free(void *data, void *hint) { (void)data, (void)hint; }

/* Bytes received in a segment and sent on to their sender go back as a
 * reference: no copy, no fd, no new mapping; the segment is reused only
 * once both the peer and that part let it go. */
Test(link, received_bytes_go_back_without_a_copy, .init = setup, .fini = teardown) {
  size_t len = (size_t)4 << 20;
  uint8_t *src = malloc(len);
  for (size_t i = 0; i < len; i++) src[i] = (uint8_t)(i * 13 + 1);
  cr_assert_eq(tg__link_send_copy(a, src, len, 0), TG_OK);
  zmq_msg_t in, back, got;
  size_t n = 0;
  cr_assert_eq(recv_wait(b, &in, 1, &n), 1);
  cr_assert_eq(memfd_mappings(), 2);
  /* b sends on a slice of what it received (the first 1 MiB is skipped) */
  size_t off = (size_t)1 << 20;
  zmq_msg_init_data(&back, (uint8_t *)zmq_msg_data(&in) + off, len - off, no_free, NULL);
  cr_assert_eq(tg__link_send(b, &back, 0), TG_OK);
  cr_assert_eq(b->st.seg_copied, 0, "copied");
  cr_assert_eq(b->st.fds_out, 0);
  cr_assert_eq(recv_wait(a, &got, 1, &n), 1);
  cr_assert_eq(zmq_msg_size(&got), len - off);
  cr_assert_eq(memcmp(zmq_msg_data(&got), src + off, len - off), 0);
  cr_assert_eq(a->st.fds_in, 0);
  cr_assert_eq(memfd_mappings(), 2, "a mapped its own segment again");
  zmq_msg_close(&in); /* b lets go: a hears of it, but its part holds the segment */
  cr_assert_eq(tg__link_flush(b), TG_OK);
  cr_assert_eq(recv_wait(a, &in, 1, &n), 0);
  cr_assert_eq(memcmp(zmq_msg_data(&got), src + off, len - off), 0);
  src[off] ^= 0xff; /* a new part must not land in the segment still used */
  cr_assert_eq(tg__link_send_copy(a, src, len, 0), TG_OK);
  cr_assert_eq(memfd_mappings(), 2, "the segment in use was reused");
  src[off] ^= 0xff;
  cr_assert_eq(memcmp(zmq_msg_data(&got), src + off, len - off), 0);
  zmq_msg_close(&got);
  cr_assert_eq(recv_wait(b, &in, 1, &n), 1);
  zmq_msg_close(&in);
  tg__link_close(a);
  tg__link_close(b);
  a = b = NULL;
  cr_assert_eq(memfd_mappings(), 0);
  free(src);
}

Test(link, end_of_stream_is_eio, .init = setup, .fini = teardown) {
  tg__link_close(a);
  a = NULL;
  zmq_msg_t p[2];
  size_t n = 0;
  cr_assert_eq(recv_wait(b, p, 2, &n), TG_EIO);
  cr_assert_eq(tg__link_recv(b, p, 2, &n), TG_EIO, "stays broken");
}

/* ---- malformed frames ------------------------------------------------------------- */

/* Write a frame: header (body length, type, fds), then body; fd (>= 0)
 * passed with it. */
static void frame(uint8_t type, uint16_t nfds, const void *body, uint32_t len, int fd) {
  uint8_t h[16] = {0};
  memcpy(h, &len, 4);
  h[4] = type;
  memcpy(h + 6, &nfds, 2);
  uint8_t buf[16 + 256];
  cr_assert_leq(len, 256);
  memcpy(buf, h, 16);
  memcpy(buf + 16, body, len);
  struct iovec iov = {buf, 16 + (size_t)len};
  union {
    char b[CMSG_SPACE(sizeof(int))];
    struct cmsghdr al;
  } ctl;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
  if (fd >= 0) {
    mh.msg_control = ctl.b;
    mh.msg_controllen = sizeof ctl.b;
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
  }
  cr_assert_eq(sendmsg(raw, &mh, 0), (ssize_t)iov.iov_len);
}

static void expect_eproto(void) {
  zmq_msg_t p[4];
  size_t n = 7;
  cr_assert_eq(recv_wait(b, p, 4, &n), TG_EPROTO);
  cr_assert_eq(n, 0);
}

Test(link, frame_too_long, .init = setup_raw, .fini = teardown) {
  uint8_t h[16] = {0xff, 0xff, 0xff, 0xff, 1};
  cr_assert_eq(write(raw, h, 16), 16);
  expect_eproto();
}

Test(link, fewer_parts_than_counted, .init = setup_raw, .fini = teardown) {
  uint8_t body[] = {2, 0, 0, 0, 0, 1, 'x'}; /* 2 parts, one given */
  frame(1, 0, body, sizeof body, -1);
  expect_eproto();
}

Test(link, inline_length_past_the_frame, .init = setup_raw, .fini = teardown) {
  uint8_t body[] = {1, 0, 0, 0, 0, 100, 'x'};
  frame(1, 0, body, sizeof body, -1);
  expect_eproto();
}

Test(link, unknown_part_kind, .init = setup_raw, .fini = teardown) {
  uint8_t body[] = {1, 0, 0, 0, 9, 1, 'x'};
  frame(1, 0, body, sizeof body, -1);
  expect_eproto();
}

Test(link, segment_part_without_fd, .init = setup_raw, .fini = teardown) {
  uint8_t body[] = {1, 0, 0, 0, 1, 1, 0x80, 0x80, 0x04, 0x80, 0x80, 0x04}; /* 64 KiB */
  frame(1, 0, body, sizeof body, -1);
  expect_eproto();
}

Test(link, segment_smaller_than_said, .init = setup_raw, .fini = teardown) {
  int fd = memfd_create("tgraph-test", MFD_CLOEXEC);
  cr_assert_geq(fd, 0);
  cr_assert_eq(ftruncate(fd, 4096), 0);
  uint8_t body[] = {1, 0, 0, 0, 1, 1, 0x80, 0x80, 0x04, 0x80, 0x80, 0x04};
  frame(1, 1, body, sizeof body, fd);
  close(fd);
  expect_eproto();
}

Test(link, fd_the_frame_does_not_count, .init = setup_raw, .fini = teardown) {
  int fd = memfd_create("tgraph-test", MFD_CLOEXEC);
  uint8_t body[] = {1, 0, 0, 0, 0, 1, 'x'};
  frame(1, 0, body, sizeof body, fd); /* an fd with no segment part */
  uint8_t body2[] = {1, 0, 0, 0, 0, 1, 'y'};
  frame(1, 1, body2, sizeof body2, -1); /* ... claimed by the next */
  close(fd);
  zmq_msg_t p[4];
  size_t n = 0;
  cr_assert_eq(recv_wait(b, p, 4, &n), 1, "the first frame is well formed");
  zmq_msg_close(&p[0]);
  expect_eproto();
}

Test(link, back_reference_to_a_segment_never_sent, .init = setup_raw, .fini = teardown) {
  uint8_t body[] = {1, 0, 0, 0, 2, 7, 0, 0x80, 0x80, 0x04};
  frame(1, 0, body, sizeof body, -1);
  expect_eproto();
}

Test(link, release_of_a_segment_never_sent, .init = setup_raw, .fini = teardown) {
  uint8_t body[] = {1, 42};
  frame(2, 0, body, sizeof body, -1);
  expect_eproto();
}

Test(link, more_parts_than_the_reader_takes, .init = setup_raw, .fini = teardown) {
  uint8_t body[] = {3, 0, 0, 0, 0, 1, 'x', 0, 1, 'y', 0, 1, 'z'};
  frame(1, 0, body, sizeof body, -1);
  zmq_msg_t p[2];
  size_t n = 7;
  cr_assert_eq(recv_wait(b, p, 2, &n), TG_EPROTO);
  cr_assert_eq(n, 0);
}
