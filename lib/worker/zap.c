/* lib/worker/zap.c: the worker's ZAP handler (ZeroMQ's authentication
 * protocol, RFC 27): a thread answering libzmq's requests on
 * inproc://zeromq.zap.01, accepting a CURVE client only when its public
 * key is in the authorized list. libzmq asks before the handshake
 * completes, so a refused peer never gets a message through. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <zmq.h>

#include "worker/zap.h"
#include "util/thread.h"

struct tg__zap {
  void *sock;           /* REP, used by the thread only once started */
  pthread_t th;
  _Atomic int stop;
  uint8_t (*keys)[32];
  size_t nkeys;
  long local_uid; /* -1: no peer without CURVE */
  int verbose;
};

#define ZAP_FRAMES 16

static bool authorized(const tg__zap *z, const uint8_t *key) {
  for (size_t i = 0; i < z->nkeys; i++)
    if (memcmp(z->keys[i], key, 32) == 0) return true;
  return false;
}

static void reply(tg__zap *z, zmq_msg_t *req, const char *code, const char *text) {
  zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
  zmq_send(z->sock, zmq_msg_data(&req[1]), zmq_msg_size(&req[1]), ZMQ_SNDMORE);
  zmq_send(z->sock, code, strlen(code), ZMQ_SNDMORE);
  zmq_send(z->sock, text, strlen(text), ZMQ_SNDMORE);
  zmq_send(z->sock, "", 0, ZMQ_SNDMORE); /* user id */
  zmq_send(z->sock, "", 0, 0);           /* metadata */
}

static bool frame_is(zmq_msg_t *m, const char *s) {
  return zmq_msg_size(m) == strlen(s) && memcmp(zmq_msg_data(m), s, strlen(s)) == 0;
}

/* A peer over a Unix socket: ZeroMQ gives its address as
 * "localhost:UID:GID:PID" from SO_PEERCRED. Whether UID is z's. */
static bool local_user(const tg__zap *z, zmq_msg_t *addr) {
  char want[40];
  int n = snprintf(want, sizeof want, "localhost:%ld:", z->local_uid);
  return z->local_uid >= 0 && zmq_msg_size(addr) > (size_t)n &&
         memcmp(zmq_msg_data(addr), want, (size_t)n) == 0;
}

/* Answer one request (all its frames are read, however many). */
static void handle(tg__zap *z) {
  zmq_msg_t f[ZAP_FRAMES];
  size_t n = 0;
  int more = 1;
  while (more) {
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, z->sock, 0) < 0) {
      zmq_msg_close(&m);
      break;
    }
    more = zmq_msg_more(&m);
    if (n < ZAP_FRAMES) f[n++] = m;
    else zmq_msg_close(&m);
  }
  /* version, request id, domain, address, routing id, mechanism, key */
  bool ok = (n == 7 && frame_is(&f[0], "1.0") && frame_is(&f[5], "CURVE") &&
             zmq_msg_size(&f[6]) == 32 && authorized(z, zmq_msg_data(&f[6]))) ||
            (n == 6 && frame_is(&f[0], "1.0") && frame_is(&f[5], "NULL") &&
             local_user(z, &f[3]));
  if (n >= 2) reply(z, f, ok ? "200" : "400", ok ? "OK" : "client key not authorized");
  if (!ok && z->verbose && n >= 4)
    fprintf(stderr, "tgraph worker: refused a client from %.*s (key not authorized)\n",
            (int)zmq_msg_size(&f[3]), (const char *)zmq_msg_data(&f[3]));
  for (size_t i = 0; i < n; i++) zmq_msg_close(&f[i]);
}

static void *zap_main(void *arg) {
  tg__zap *z = arg;
  zmq_pollitem_t it = {z->sock, 0, ZMQ_POLLIN, 0};
  while (!atomic_load(&z->stop)) {
    if (zmq_poll(&it, 1, 50) > 0 && (it.revents & ZMQ_POLLIN)) handle(z);
  }
  zmq_close(z->sock);
  return NULL;
}

int tg__zap_start(void *zctx, uint8_t (*keys)[32], size_t nkeys, long local_uid,
                  int verbose, tg__zap **out, tg_error *err) {
  *out = NULL;
  tg__zap *z = tg__calloc(1, sizeof *z);
  if (!z) {
    tg__free(keys);
    return tg__error_set(err, TG_ENOMEM, "out of memory");
  }
  z->keys = keys;
  z->nkeys = nkeys;
  z->local_uid = local_uid;
  z->verbose = verbose;
  int linger = 0;
  z->sock = zmq_socket(zctx, ZMQ_REP);
  if (!z->sock || zmq_setsockopt(z->sock, ZMQ_LINGER, &linger, sizeof linger) != 0 ||
      zmq_bind(z->sock, "inproc://zeromq.zap.01") != 0) {
    int rc = tg__error_set(err, TG_EIO, "cannot start the authentication handler: %s",
                           zmq_strerror(errno));
    if (z->sock) zmq_close(z->sock);
    tg__free(z->keys);
    tg__free(z);
    return rc;
  }
  if (tg__thread_start(&z->th, zap_main, z) != 0) {
    zmq_close(z->sock);
    tg__free(z->keys);
    tg__free(z);
    return tg__error_set(err, TG_ENOMEM, "cannot start the authentication thread");
  }
  *out = z;
  return TG_OK;
}

void tg__zap_stop(tg__zap *z) {
  if (!z) return;
  atomic_store(&z->stop, 1);
  pthread_join(z->th, NULL);
  tg__free(z->keys);
  tg__free(z);
}

