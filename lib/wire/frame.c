/* lib/wire/frame.c: growable byte buffers and framed messages over
 * an AF_UNIX stream socket, with file descriptors passed alongside.
 *
 * Fds queued for a message are attached to the first sendmsg() after they
 * were queued, which carries bytes at or before the message's own, so by
 * the time a message is complete at the receiver its fds have arrived
 * (Linux never returns the fds of two sends from one recvmsg). Received
 * fds wait in arrival order and each message takes as many as its header
 * says. */
#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "wire/frame.h"

#define FDS_PER_SEND 253 /* SCM_MAX_FD */

static int push_fd(int **v, size_t *n, size_t *cap, int fd) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    int *nv = tg__realloc(*v, c * sizeof *nv);
    if (!nv) return TG_ENOMEM;
    *v = nv;
    *cap = c;
  }
  (*v)[(*n)++] = fd;
  return TG_OK;
}

void tg__pconn_init(tg__pconn *c, int fd) {
  memset(c, 0, sizeof *c);
  c->fd = fd;
}

void tg__pconn_close(tg__pconn *c) {
  if (c->fd >= 0) close(c->fd);
  for (size_t i = c->ifd_pos; i < c->nifd; i++) close(c->ifd[i]);
  tg__wbuf_free(&c->out);
  tg__wbuf_free(&c->in);
  tg__free(c->ofd);
  tg__free(c->ifd);
  tg__pconn_init(c, -1);
}

/* ---- writing ---------------------------------------------------------------- */

int tg__pconn_begin(tg__pconn *c, uint8_t type, uint32_t seq, uint32_t ack) {
  if (!tg__wbuf_reserve(&c->out, TG__PMSG_HDR)) return TG_ENOMEM;
  c->msg_at = c->out.len;
  c->msg_fds = 0;
  uint8_t *h = c->out.p + c->out.len;
  memset(h, 0, TG__PMSG_HDR);
  h[4] = type;
  memcpy(h + 8, &seq, 4);
  memcpy(h + 12, &ack, 4);
  c->out.len += TG__PMSG_HDR;
  return TG_OK;
}

int tg__pconn_add_fd(tg__pconn *c, int fd) {
  if (c->msg_fds == UINT16_MAX) return TG_ELIMIT;
  if (push_fd(&c->ofd, &c->nofd, &c->ofd_cap, fd) != TG_OK) return TG_ENOMEM;
  c->msg_fds++;
  return TG_OK;
}

void tg__pconn_end(tg__pconn *c) {
  uint8_t *h = c->out.p + c->msg_at;
  uint32_t len = (uint32_t)(c->out.len - c->msg_at - TG__PMSG_HDR);
  memcpy(h, &len, 4);
  memcpy(h + 6, &c->msg_fds, 2);
}

void tg__pconn_abort(tg__pconn *c) {
  c->out.len = c->msg_at;
  c->nofd -= c->msg_fds;
  c->msg_fds = 0;
}

int tg__pconn_flush(tg__pconn *c, bool block) {
  while (c->out_pos < c->out.len) {
    struct iovec iov = {c->out.p + c->out_pos, c->out.len - c->out_pos};
    union {
      char buf[CMSG_SPACE(FDS_PER_SEND * sizeof(int))];
      struct cmsghdr align;
    } ctl;
    struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
    size_t k = c->nofd - c->ofd_pos;
    if (k > FDS_PER_SEND) k = FDS_PER_SEND;
    if (k) {
      mh.msg_control = ctl.buf;
      mh.msg_controllen = CMSG_SPACE(k * sizeof(int));
      struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
      cm->cmsg_level = SOL_SOCKET;
      cm->cmsg_type = SCM_RIGHTS;
      cm->cmsg_len = CMSG_LEN(k * sizeof(int));
      memcpy(CMSG_DATA(cm), c->ofd + c->ofd_pos, k * sizeof(int));
    }
    ssize_t n = sendmsg(c->fd, &mh, MSG_NOSIGNAL | (block ? 0 : MSG_DONTWAIT));
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return 1;
      return -errno;
    }
    c->out_pos += (size_t)n;
    c->ofd_pos += k;
    c->sent += (size_t)n;
  }
  c->out.len = c->out_pos = 0;
  c->nofd = c->ofd_pos = 0;
  return TG_OK;
}

/* ---- reading ---------------------------------------------------------------- */

static size_t pending_len(const tg__pconn *c) { return c->in.len - c->in_pos; }

ssize_t tg__pconn_fill(tg__pconn *c, bool block) {
  if (c->in_pos) { /* bodies handed out before are dead now: compact */
    size_t left = pending_len(c);
    if (left) memmove(c->in.p, c->in.p + c->in_pos, left);
    c->in.len = left;
    c->in_pos = 0;
  }
  size_t want = 64 << 10;
  if (pending_len(c) >= TG__PMSG_HDR) { /* room for the whole message */
    uint32_t len;
    memcpy(&len, c->in.p + c->in_pos, 4);
    size_t need = TG__PMSG_HDR + (size_t)len - pending_len(c);
    if (len <= TG__PMSG_MAX && need > want) want = need;
  }
  if (!tg__wbuf_reserve(&c->in, want)) return TG_ENOMEM;
  struct iovec iov = {c->in.p + c->in.len, c->in.cap - c->in.len};
  union {
    char buf[CMSG_SPACE(FDS_PER_SEND * sizeof(int))];
    struct cmsghdr align;
  } ctl;
  struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1,
                      .msg_control = ctl.buf, .msg_controllen = sizeof ctl.buf};
  ssize_t n;
  do {
    n = recvmsg(c->fd, &mh, MSG_CMSG_CLOEXEC | (block ? 0 : MSG_DONTWAIT));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EWOULDBLOCK ? -EAGAIN : -errno;
  int rc = TG_OK;
  for (struct cmsghdr *cm = CMSG_FIRSTHDR(&mh); cm; cm = CMSG_NXTHDR(&mh, cm)) {
    if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS) continue;
    size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < k; i++) {
      int fd;
      memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof fd);
      if (rc == TG_OK) rc = push_fd(&c->ifd, &c->nifd, &c->ifd_cap, fd);
      if (rc != TG_OK) close(fd);
    }
  }
  if (rc != TG_OK) return rc;
  if (mh.msg_flags & MSG_CTRUNC) return TG_EPROTO; /* fds lost (fd limit) */
  c->in.len += (size_t)n;
  c->received += (size_t)n;
  return n;
}

int tg__pconn_next(tg__pconn *c, tg__pmsg *m) {
  size_t left = pending_len(c);
  if (left < TG__PMSG_HDR) return 0;
  const uint8_t *h = c->in.p + c->in_pos;
  uint32_t len;
  memcpy(&len, h, 4);
  if (len > TG__PMSG_MAX) return TG_EPROTO;
  if (left - TG__PMSG_HDR < len) return 0;
  m->type = h[4];
  memcpy(&m->nfds, h + 6, 2);
  memcpy(&m->seq, h + 8, 4);
  memcpy(&m->ack, h + 12, 4);
  m->body = h + TG__PMSG_HDR;
  m->len = len;
  if (c->nifd - c->ifd_pos < m->nfds) return TG_EPROTO;
  c->msg_fd_end = c->ifd_pos + m->nfds;
  c->in_pos += TG__PMSG_HDR + len;
  return 1;
}

int tg__pconn_take_fd(tg__pconn *c) {
  return c->ifd_pos < c->msg_fd_end ? c->ifd[c->ifd_pos++] : -1;
}

void tg__pconn_done(tg__pconn *c) {
  while (c->ifd_pos < c->msg_fd_end) close(c->ifd[c->ifd_pos++]);
  if (c->ifd_pos == c->nifd) c->ifd_pos = c->nifd = c->msg_fd_end = 0;
}
