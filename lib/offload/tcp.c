/* lib/offload/tcp.c: the tcp backend: tasks run on `tgraph worker`
 * processes (or any program in tg_worker_serve) reached over ZeroMQ,
 * with CURVE keys or over this user's own sockets. This file: its
 * options and keys, its creation, and the ZeroMQ transport under the
 * engine (offload/engine.h): a conn's link is a DEALER to the worker. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "offload/engine.h"
#include "wire/proto.h"

/* A keyless run's handshake failed: the worker cannot prove it holds this
 * user's key. */
#define NOT_OURS                                                                        \
  "the worker does not hold this user's key: it runs as another user (who may have "   \
  "taken the port first), runs with --keys, or is not a tgraph worker; without --keys " \
  "a run uses only workers of its own user"

static int setopt(void *s, int opt, int v) { return zmq_setsockopt(s, opt, &v, sizeof v); }

/* The client set given, or this user's own key: a keyless run talks only
 * to workers of its own user. */
static int read_keys(ofl *b, const tg__keyset *mem, tg_error *err) {
  tg__keypair kp;
  int rc = tg__keys_client(b->keys_dir, mem, &kp, b->server_pub, err);
  if (rc == TG_OK) {
    memcpy(b->client_pub, kp.pub, sizeof kp.pub);
    memcpy(b->client_sec, kp.sec, sizeof kp.sec);
  }
  memset(&kp, 0, sizeof kp);
  return rc;
}

static int configure(ofl *b, const tg_executor_opts *o, const tg__keyset *mem,
                     tg_error *err) {
  const char *join = o && o->version >= TG_EXECUTOR_OPTS_V2 ? o->join_listen : NULL;
  if (!o || ((!o->connect || o->nconnect == 0) && !join))
    return tg__error_set(err, TG_EINVAL, "the tcp backend needs worker addresses "
                         "(tg_executor_opts.connect, or tgraph run --connect) or a "
                         "join address (join_listen, or --join-listen)");
  b->connect_timeout = o->connect_timeout > 0 ? o->connect_timeout : 30;
  b->heartbeat = o->heartbeat > 0 ? o->heartbeat : 10;
  b->keep_min = o->keep_min ? o->keep_min : 4096;
  if (o->keys_dir) {
    if (!(b->keys_dir = tg__malloc(strlen(o->keys_dir) + 1)))
      return tg__error_set(err, TG_ENOMEM, "out of memory");
    strcpy(b->keys_dir, o->keys_dir);
  }
  b->keyed = o->keys_dir || mem;
  int rc = read_keys(b, mem, err);
  if (rc != TG_OK) return rc;
  for (size_t i = 0; i < o->nconnect; i++) {
    bool loop;
    int rc = tg__addr_check(o->connect[i], false, &loop, err);
    if (rc != TG_OK) return rc;
    if (!loop && !b->keyed)
      return tg__error_set(err, TG_EINVAL, "worker %s is not on this machine: connecting "
                           "to it needs keys (tg_executor_opts.keys_dir, or --keys DIR/client)",
                           o->connect[i]);
    ofl_conn *c;
    if ((rc = tg__ofl_conn_new(b, o->connect[i], &c, err)) != TG_OK) return rc;
  }
  b->join_addr = join;
  return TG_OK;
}

/* The ZeroMQ transport's open: a DEALER to the worker's address (or to its
 * user socket), and a monitor saying why a connection fails. */
static int zmq_open(ofl *b, ofl_conn *c, tg_error *err) {
  char ep[64];
  c->gen++;
  snprintf(ep, sizeof ep, "inproc://tcp-mon-%p-%d-%u", (void *)b, c->idx, c->gen);
  void *sock = zmq_socket(b->zctx, ZMQ_DEALER);
  c->link = sock ? tg__link_zmq(sock) : NULL;
  if (sock && !c->link) zmq_close(sock);
  c->mon = c->link ? zmq_socket(b->zctx, ZMQ_PAIR) : NULL;
  if (!c->mon) return tg__error_set(err, TG_EIO, "zmq_socket: %s", zmq_strerror(errno));
  int hb = (int)(b->heartbeat * 1000);
  int64_t maxmsg = INT32_MAX; /* as a worker's: ZeroMQ cannot send more */
  zmq_setsockopt(sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
  setopt(sock, ZMQ_LINGER, 0);
  setopt(sock, ZMQ_SNDHWM, 0);
  setopt(sock, ZMQ_RCVHWM, 0);
  setopt(sock, ZMQ_HEARTBEAT_IVL, hb / 4 > 0 ? hb / 4 : 1);
  setopt(sock, ZMQ_HEARTBEAT_TIMEOUT, hb);
  setopt(sock, ZMQ_HEARTBEAT_TTL, hb);
  setopt(sock, ZMQ_RECONNECT_IVL, 100);
  setopt(sock, ZMQ_RECONNECT_IVL_MAX, 1000);
  if (tg__addr_ipv6(c->addr)) setopt(sock, ZMQ_IPV6, 1);
  /* Keyless: a live socket of this user's for the port is this user's
   * worker (wire/usersock.c); else tcp, where the user's key proves it. */
  char path[4096], ipc[4200];
  const char *to = c->addr;
  c->ipc = false;
  if (!b->keyed && tg__user_socket(c->addr, path, sizeof path) == TG_OK &&
      tg__user_socket_live(path)) {
    snprintf(ipc, sizeof ipc, "ipc://%s", path);
    to = ipc;
    c->ipc = true;
  } else {
    zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, b->server_pub, 40);
    zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, b->client_pub, 40);
    zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, b->client_sec, 40);
  }
  int events = ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
               ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
               ZMQ_EVENT_CONNECT_RETRIED;
  if (zmq_socket_monitor(sock, ep, events) != 0 || zmq_connect(c->mon, ep) != 0 ||
      zmq_connect(sock, to) != 0)
    return tg__error_set(err, TG_EIO, "cannot connect to %s: %s", c->addr,
                         zmq_strerror(errno));
  c->state = CS_CONNECTING;
  c->last_rx = c->last_ping = tg__now();
  tg__ofl_conn_hello(b, c); /* queued until the connection is up */
  return TG_OK;
}

/* One event of c's monitor: a disconnection, a refused handshake, a
 * failed connection attempt. */
static void monitor_event(ofl *b, ofl_conn *c) {
  zmq_msg_t m[2];
  zmq_msg_init(&m[0]);
  zmq_msg_init(&m[1]);
  if (zmq_msg_recv(&m[0], c->mon, ZMQ_DONTWAIT) < 0) goto out;
  if (zmq_msg_more(&m[0])) zmq_msg_recv(&m[1], c->mon, 0);
  if (zmq_msg_size(&m[0]) < 6) goto out;
  uint16_t ev;
  uint32_t val;
  memcpy(&ev, zmq_msg_data(&m[0]), 2);
  memcpy(&val, (uint8_t *)zmq_msg_data(&m[0]) + 2, 4);
  switch (ev) {
    case ZMQ_EVENT_DISCONNECTED:
      if (c->state == CS_READY) tg__ofl_conn_lost(b, c, "disconnected", false);
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_AUTH:
      tg__ofl_conn_lost(b, c, b->keyed ? "the worker refused this client's key (it is not "
                    "in the worker's authorized_clients)" : "the worker refused this "
                    "user's key (it runs with --keys, or as another user)", true);
      break;
    case ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL:
    case ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL:
      tg__ofl_conn_lost(b, c, b->keyed ? "the secure handshake failed (wrong server key, "
                    "or the worker runs without keys)" : NOT_OURS, true);
      break;
    case ZMQ_EVENT_CONNECT_RETRIED:
      if (!c->why[0] || !c->fatal)
        snprintf(c->why, sizeof c->why, "cannot connect (is a worker listening there?)");
      break;
    default: break;
  }
out:
  zmq_msg_close(&m[0]);
  zmq_msg_close(&m[1]);
}

/* c's monitor's events, before its messages (a loss resets c). */
static void zmq_poll_events(ofl *b, ofl_conn *c) {
  for (int i = 0; i < 64 && c->mon; i++) {
    zmq_pollitem_t it = {c->mon, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 0) <= 0) break;
    monitor_event(b, c);
  }
}

/* Before c's DEALER closes: time for a goodbye to leave, and the
 * monitor gone with it. */
static void zmq_closing(ofl *b, ofl_conn *c, bool bye) {
  (void)b;
  void *sock = tg__link_zmq_socket(c->link);
  if (sock && bye) setopt(sock, ZMQ_LINGER, 200);
  if (sock) zmq_socket_monitor(sock, NULL, 0);
  if (c->mon) zmq_close(c->mon);
  c->mon = NULL;
}

static const tg__transport tg__transport_zmq = {
    .caps = 0, .open = zmq_open, .poll = zmq_poll_events, .close = zmq_closing};

static int tcp_create(const tg__backend_cfg *cfg, tg__backend **out, tg_error *err) {
  ofl *b = NULL;
  int rc = tg__ofl_new(cfg, &tg__backend_tcp, &tg__transport_zmq, &b, err);
  if (rc == TG_OK) rc = configure(b, cfg->opts, cfg->keys, err);
  if (rc == TG_OK) {
    b->zctx = zmq_ctx_new();
    if (!b->zctx) rc = tg__error_set(err, TG_EIO, "cannot set up ZeroMQ: %s", strerror(errno));
    else zmq_ctx_set(b->zctx, ZMQ_BLOCKY, 0);
    /* Two sockets a worker (its DEALER and monitor): ZeroMQ's default of
     * 1023 would stop a run at about 500 workers. */
    if (b->zctx) zmq_ctx_set(b->zctx, ZMQ_MAX_SOCKETS, zmq_ctx_get(b->zctx, ZMQ_SOCKET_LIMIT));
  }
  if (rc == TG_OK && b->join_addr) rc = tg__ofl_join_listen(b, b->join_addr, err);
  b->join_addr = NULL; /* the caller's */
  if (rc == TG_OK) rc = tg__ofl_start(b, err);
  if (rc != TG_OK) {
    if (b) tg__ofl_free(b);
    return rc;
  }
  *out = &b->base;
  return TG_OK;
}

static void tcp_destroy(tg__backend *be) {
  ofl *b = (ofl *)be;
  if (!b) return;
  tg__ofl_stop(b);
  tg__ofl_free(b);
}

const tg__backend_ops tg__backend_tcp = {
    TG__BACKEND_OPS_V1, "tcp", 0, tcp_create, tg__ofl_submit, tcp_destroy,
};


int tg_remote_join_address(tg_executor *ex, char *buf, size_t size) {
  if (!ex || !buf || !size || ex->ops != &tg__backend_tcp) return TG_EINVAL;
  ofl *b = (ofl *)ex->backend;
  if (!b->join_endpoint[0]) return TG_ENOENT;
  if (strlen(b->join_endpoint) >= size) return TG_ELIMIT;
  strcpy(buf, b->join_endpoint);
  return TG_OK;
}

