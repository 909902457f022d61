/* lib/worker/peers.c: noticing that a client's connection closed,
 * so that the tasks it started stop at once.
 *
 * A ROUTER socket does not tell its owner when a peer goes away, so a
 * client killed with SIGKILL would otherwise keep its tasks (an `sh`
 * command, say) running until its session expires (20 s of silence). A
 * socket monitor reports ZMQ_EVENT_DISCONNECTED with the connection's
 * file descriptor; each session records the descriptor its HELLO came in
 * on (the message's ZMQ_SRCFD), so the event names the sessions to drop.
 * Dropping one cancels its runs: its tasks see tg_task_cancelled().
 *
 * A client's routing id belongs to one connection (a reconnecting DEALER
 * gets a new one and says HELLO again), so a session never outlives its
 * descriptor. A descriptor can be reused by the next connection only
 * after the old one is closed, which happens after its event was queued;
 * pending events are read before a HELLO is handled, so a new session is
 * never dropped for the connection whose descriptor it reuses.
 * ZeroMQ's heartbeats (set on the ROUTER) turn a silent peer into a
 * disconnection too.
 *
 * Thread safety: the loop thread only. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "worker/worker.h"

int tg__wk_peers_start(tg__worker *wk, tg_error *err) {
  char ep[64];
  snprintf(ep, sizeof ep, "inproc://tgraph-worker-peers-%p", (void *)wk);
  wk->peers = zmq_socket(wk->zctx, ZMQ_PAIR);
  if (!wk->peers || zmq_socket_monitor(wk->router, ep, ZMQ_EVENT_DISCONNECTED) != 0 ||
      zmq_connect(wk->peers, ep) != 0)
    return tg__error_set(err, TG_EIO, "cannot watch the worker's connections: %s",
                         zmq_strerror(errno));
  return TG_OK;
}

void tg__wk_peers_stop(tg__worker *wk) {
  if (wk->router) zmq_socket_monitor(wk->router, NULL, 0);
  if (wk->peers) zmq_close(wk->peers);
  wk->peers = NULL;
}

void tg__wk_peer_note(wsess *s, zmq_msg_t *part) {
  s->fd = zmq_msg_get(part, ZMQ_SRCFD); /* -1 when unknown: never matched */
}

/* Drop the sessions that came in on descriptor fd. */
static void closed(tg__worker *wk, int fd) {
  if (fd < 0) return;
  for (wsess *s = wk->sessions, *next; s; s = next) {
    next = s->next;
    if (s->fd == fd) tg__wk_drop(wk, s, NULL, false);
  }
}

void tg__wk_peers_read(tg__worker *wk) {
  for (int i = 0; wk->peers && i < 1024; i++) {
    zmq_msg_t m[2];
    zmq_msg_init(&m[0]);
    zmq_msg_init(&m[1]);
    int got = zmq_msg_recv(&m[0], wk->peers, ZMQ_DONTWAIT);
    if (got >= 0 && zmq_msg_more(&m[0])) zmq_msg_recv(&m[1], wk->peers, 0);
    if (got >= 6) { /* u16 event, u32 value (the descriptor) */
      uint16_t ev;
      uint32_t fd;
      memcpy(&ev, zmq_msg_data(&m[0]), 2);
      memcpy(&fd, (uint8_t *)zmq_msg_data(&m[0]) + 2, 4);
      if (ev == ZMQ_EVENT_DISCONNECTED) closed(wk, (int)fd);
    }
    zmq_msg_close(&m[0]);
    zmq_msg_close(&m[1]);
    if (got < 0) break;
  }
}
