/* tests/test_peer.h: raw ZeroMQ peers of tgraph's workers and runs, for
 * the suites that play a hostile or fake peer (tcp, remote_budget, remote_trust). */
#ifndef TG_TEST_PEER_H
#define TG_TEST_PEER_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <zmq.h>

#include "wire/proto.h"

/* Make a raw socket speak as this user's keyless workers and runs do
 * (CURVE with the user's own key), so that it gets past the handshake.
 * Returns sock. */
static inline void *as_user(void *sock, bool server) {
  tg__keypair kp;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg__keys_user(&kp, &err), TG_OK, "%s", err.msg);
  int one = 1;
  if (server) zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one);
  else zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, kp.pub, 40);
  zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, kp.pub, 40);
  zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp.sec, 40);
  return sock;
}

#endif
