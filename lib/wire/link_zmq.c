/* lib/wire/link_zmq.c: a link over a ZeroMQ socket (see wire/link.h): parts
 * go to zmq_msg_send as they come; ZeroMQ queues, frames and reconnects. */

#include <string.h>

#include "wire/link.h"
#include "wire/wire.h"

typedef struct zlink {
  tg__link base;
  void *sock;
} zlink;

static int zsend(tg__link *l, zmq_msg_t *m, int flags) {
  zlink *z = (zlink *)l;
  size_t len = zmq_msg_size(m);
  if (zmq_msg_send(m, z->sock, flags & TG__LINK_MORE ? ZMQ_SNDMORE : 0) < 0) {
    zmq_msg_close(m);
    return TG_EIO;
  }
  l->st.sock_out += len;
  return TG_OK;
}

static int zrecv(tg__link *l, zmq_msg_t *parts, size_t max, size_t *n) {
  zlink *z = (zlink *)l;
  bool too_many = false;
  *n = 0;
  for (int more = 1; more;) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, z->sock, *n || too_many ? 0 : ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&m);
      break;
    }
    more = zmq_msg_more(&m);
    l->st.sock_in += zmq_msg_size(&m);
    if (*n < max) {
      parts[(*n)++] = m;
    } else { /* read the rest, keep only the first part */
      too_many = true;
      zmq_msg_close(&m);
    }
  }
  if (too_many) {
    for (size_t i = 1; i < *n; i++) zmq_msg_close(&parts[i]);
    *n = 1;
    return TG_ELIMIT;
  }
  return *n > 0;
}

static int zflush(tg__link *l) {
  (void)l;
  return TG_OK;
}

static void zpollitem(tg__link *l, zmq_pollitem_t *it) {
  *it = (zmq_pollitem_t){((zlink *)l)->sock, 0, ZMQ_POLLIN, 0};
}

static void zclose(tg__link *l) {
  zmq_close(((zlink *)l)->sock);
  tg__free(l);
}

static const tg__link_ops zops = {zsend, zrecv, zflush, zpollitem, zclose};

tg__link *tg__link_zmq(void *sock) {
  zlink *z = tg__calloc(1, sizeof *z);
  if (!z) return NULL;
  z->base.ops = &zops;
  z->base.streams = true;
  z->sock = sock;
  /* Large received parts sit where ZeroMQ's buffers put them. */
  z->base.misalign = tg__wire_misalign();
  return &z->base;
}

void *tg__link_zmq_socket(tg__link *l) {
  return l && l->ops == &zops ? ((zlink *)l)->sock : NULL;
}

int tg__link_send_copy(tg__link *l, const void *p, size_t len, int flags) {
  zmq_msg_t m;
  if (zmq_msg_init_size(&m, len) != 0) return TG_ENOMEM;
  if (len) memcpy(zmq_msg_data(&m), p, len);
  return tg__link_send(l, &m, flags);
}

void tg__link_close(tg__link *l) {
  if (l) l->ops->close(l);
}
