/* lib/worker/join.c: a worker joining a run that is going, and leaving
 * it (see tgraph/remote.h, "Joining and leaving"; the run's side is
 * lib/offload/join.c).
 *
 * Joining: once the worker listens, a DEALER of its context connects to
 * the run's join address as a CURVE server with the workers' key, so the
 * worker's authentication handler (worker/zap.c) checks the run's client key as
 * on any connection, and the run checks the worker's. It sends JOIN with
 * the address to reach it at and waits for JOINED; the socket is closed
 * then: the run connects to the worker's ROUTER like to any worker.
 *
 * Leaving: when tg_worker_opts.drain is set, the worker's window is
 * fixed once (drain_time, or the host's time_left when smaller) and
 * every client is told LEAVE with the time left of it (once; a client
 * that says HELLO later is told too, with what is left then); the loop
 * goes on serving them (tasks they sent before hearing it or that they
 * expect to end in the window, FETCHes of the results kept here) until
 * each has said BYE or was dropped. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>


#include "worker/worker.h"

#define JOIN_WAIT 60.0 /* seconds for the run's answer */
#define JOIN_TRY 10.0  /* seconds one registration may take: a connection
                          dropped under load may lose it */
#define JOIN_TRIES 12  /* registrations tried within JOIN_WAIT */
#define JOIN_AGAIN 1   /* an attempt failed in a way that may pass */

static int setopt(void *s, int opt, int v) { return zmq_setsockopt(s, opt, &v, sizeof v); }

/* The address the run is to connect to: advertise, or the one bound with
 * a wildcard host replaced by this machine's name. */
static void reachable(const tg__worker *wk, char *out, size_t size) {
  if (wk->o.advertise) {
    snprintf(out, size, "%s", wk->o.advertise);
    return;
  }
  const char *ep = wk->endpoint, *port = strrchr(ep, ':');
  char host[256];
  if (port && (strncmp(ep, "tcp://0.0.0.0:", 14) == 0 || strncmp(ep, "tcp://[::]:", 11) == 0) &&
      gethostname(host, sizeof host) == 0) {
    host[sizeof host - 1] = '\0';
    snprintf(out, size, "tcp://%s%s", host, port);
    return;
  }
  snprintf(out, size, "%s", ep);
}

/* Why a monitor event ends the registration, or NULL; *sure false when
 * the reason may be passing (a connection dropped during the handshake
 * on a loaded machine looks like a refusal of the run's). */
static const char *event_why(void *mon, bool *sure) {
  zmq_msg_t m[2];
  const char *why = NULL;
  zmq_msg_init(&m[0]);
  zmq_msg_init(&m[1]);
  if (zmq_msg_recv(&m[0], mon, ZMQ_DONTWAIT) >= 0) {
    if (zmq_msg_more(&m[0])) zmq_msg_recv(&m[1], mon, 0);
    uint16_t ev = 0;
    if (zmq_msg_size(&m[0]) >= 6) memcpy(&ev, zmq_msg_data(&m[0]), 2);
;
    *sure = ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH)
      why = "the run's client key is not one this worker accepts (authorized_clients, or "
            "this user's key without --keys)";
    else if (ev & (ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL | ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                   ZMQ_EVENT_DISCONNECTED))
      why = "the secure handshake failed: the run does not take this worker's key (another "
            "key set, or another user's run), or the address is not a run's join address";
  }
  zmq_msg_close(&m[0]);
  zmq_msg_close(&m[1]);
  return why;
}

static bool told_to_end(const tg__worker *wk) {
  return (wk->o.stop && __atomic_load_n(wk->o.stop, __ATOMIC_RELAXED)) ||
         (wk->o.drain && __atomic_load_n(wk->o.drain, __ATOMIC_RELAXED));
}

/* Wait for JOINED on d (watching mon) until `until`: TG_OK (also when
 * told to stop or leave meanwhile), JOIN_AGAIN after a handshake failure
 * that may pass, or why not in err. */
static int await(tg__worker *wk, void *d, void *mon, const char *run, double until,
                 tg_error *err) {
  double try_until = tg__now() + JOIN_TRY;
  while (!told_to_end(wk)) {
    zmq_pollitem_t it[2] = {{d, 0, ZMQ_POLLIN, 0}, {mon, 0, ZMQ_POLLIN, 0}};
    if (zmq_poll(it, 2, 50) < 0) {
      if (errno == EINTR) continue;
      return tg__error_set(err, TG_EIO, "joining the run at %s: %s", run, zmq_strerror(errno));
    }
    if (it[1].revents & ZMQ_POLLIN) {
      bool sure = false;
      const char *why = event_why(mon, &sure);
      if (why) {
        tg__error_set(err, TG_EACCES, "joining the run at %s: %s", run, why);
        return sure ? TG_EACCES : JOIN_AGAIN;
      }
    }
    if (it[0].revents & ZMQ_POLLIN) {
      uint8_t buf[1100];
      int n = zmq_recv(d, buf, sizeof buf, 0);
      tg__rbuf r;
      tg__rbuf_init(&r, buf, n > 0 && (size_t)n <= sizeof buf ? (size_t)n : 0);
      uint8_t type = tg__rbuf_u8(&r), status = tg__rbuf_u8(&r);
      char msg[TG__MAX_MSG + 1];
      tg__rbuf_cstr(&r, msg, TG__MAX_MSG);
      if (r.bad || type != TG__M_JOINED)
        return tg__error_set(err, TG_EPROTO, "joining the run at %s: not a tgraph run's "
                             "answer", run);
      if (status != 0)
        return tg__error_set(err, TG_EACCES, "joining the run at %s: refused: %s", run, msg);
      return TG_OK;
    }
    double now = tg__now();
    if (now > until) break;
    if (now > try_until) { /* sent anew on a fresh socket */
      tg__error_set(err, TG_ETIMEDOUT, "joining the run at %s: no answer within %g s (is a "
                    "run listening there with --join-listen?)", run, JOIN_WAIT);
      return JOIN_AGAIN;
    }
  }
  if (told_to_end(wk)) return TG_OK;
  return tg__error_set(err, TG_ETIMEDOUT, "joining the run at %s: no answer within %g s (is "
                       "a run listening there with --join-listen?)", run, JOIN_WAIT);
}

/* One registration on a fresh socket. */
static int attempt(tg__worker *wk, const tg__keypair *kp, const char *self, int n,
                   double until, tg_error *err) {
  const char *run = wk->o.join;
  int rc;
  char ep[80];
  void *d = zmq_socket(wk->zctx, ZMQ_DEALER);
  void *mon = d ? zmq_socket(wk->zctx, ZMQ_PAIR) : NULL;
  if (!mon) {
    if (d) zmq_close(d);
    return tg__error_set(err, TG_EIO, "zmq_socket: %s", zmq_strerror(errno));
  }
  setopt(d, ZMQ_LINGER, 0);
  int64_t maxmsg = 1100;
  zmq_setsockopt(d, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
  if (tg__addr_ipv6(run)) setopt(d, ZMQ_IPV6, 1);
  setopt(d, ZMQ_CURVE_SERVER, 1); /* the roles of a worker connection */
  zmq_setsockopt(d, ZMQ_CURVE_SECRETKEY, kp->sec, 40);
  zmq_setsockopt(d, ZMQ_CURVE_PUBLICKEY, kp->pub, 40);
  zmq_setsockopt(d, ZMQ_ZAP_DOMAIN, "tgraph", 6);
  snprintf(ep, sizeof ep, "inproc://wk-join-mon-%p-%d", (void *)wk, n);
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_JOIN);
  tg__wbuf_bytes(&h, TG__PROTO_MAGIC, 4);
  tg__wbuf_varint(&h, TG_REMOTE_PROTOCOL);
  tg__wbuf_cstr(&h, self);
  if (h.oom) {
    rc = tg__error_set(err, TG_ENOMEM, "out of memory");
  } else if (zmq_socket_monitor(d, ep, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                                ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_DISCONNECTED) != 0 ||
             zmq_connect(mon, ep) != 0 || zmq_connect(d, run) != 0 ||
             zmq_send(d, h.p, h.len, 0) < 0) {
    rc = tg__error_set(err, TG_EIO, "cannot reach the run at %s: %s", run, zmq_strerror(errno));
  } else {
    rc = await(wk, d, mon, run, until, err);
  }
  tg__wbuf_free(&h);
  zmq_socket_monitor(d, NULL, 0);
  zmq_close(d);
  zmq_close(mon);
  return rc;
}

int tg__wk_join(tg__worker *wk, const tg__keypair *kp, tg_error *err) {
  const char *run = wk->o.join;
  bool loop;
  int rc = tg__addr_check(run, false, &loop, err);
  if (rc != TG_OK) return rc;
  char self[512];
  reachable(wk, self, sizeof self);
  /* A handshake failure that may pass is tried again a few times: a
   * refusal repeats itself. */
  double until = tg__now() + JOIN_WAIT;
  tg_error e;
  tg_error_clear(&e);
  rc = JOIN_AGAIN;
  for (int n = 0; n < JOIN_TRIES && rc == JOIN_AGAIN && tg__now() < until; n++) {
    if (n) usleep(200000);
    rc = attempt(wk, kp, self, n, until, &e);
  }
  if (rc == JOIN_AGAIN) rc = e.code ? e.code : TG_ETIMEDOUT;
  if (rc != TG_OK) return tg__error_set(err, rc, "%s", e.msg[0] ? e.msg : "joining: no answer");
  if (rc == TG_OK && wk->o.verbose) fprintf(stderr, "tgraph worker: joined the run at %s as %s\n", run, self);
  return rc;
}

/* The window of a drain beginning now: drain_time, or less when the
 * host says so (time_left). */
static double window(tg__worker *wk) {
  double w = wk->o.drain_time;
  if (w > 0 && wk->o.time_left) {
    double t = wk->o.time_left(wk->o.ctx);
    if (t >= 0 && t < w) w = t;
  }
  return w;
}

bool tg__wk_drain(tg__worker *wk) {
  double now = tg__now();
  if (!wk->draining) {
    double w = window(wk);
    wk->drain_until = now + w;
    if (wk->o.verbose && w > 0)
      fprintf(stderr, "tgraph worker: leaving: new tasks only for %.1f s; finishing %s\n", w,
              wk->sessions ? "what clients sent" : "at once (no client)");
    else if (wk->o.verbose)
      fprintf(stderr, "tgraph worker: leaving: no new tasks; finishing %s\n",
              wk->sessions ? "what clients sent" : "at once (no client)");
  }
  wk->draining = true;
  /* Milliseconds left, rounded down: the clients' margin counts from it
   * (an endless drain_time: a thousand years). */
  double left = wk->drain_until - now;
  uint64_t ms = left >= 1e9 ? (uint64_t)3e13 : left > 0 ? (uint64_t)(left * 1000) : 0;
  for (wsess *s = wk->sessions, *next; s; s = next) {
    next = s->next; /* a failed send drops s */
    if (s->told_leave) continue;
    s->told_leave = true;
    tg__wbuf h = {0};
    tg__wbuf_u8(&h, TG__M_LEAVE);
    tg__wbuf_varint(&h, ms);
    tg__wk_send(wk, s, &h, NULL);
    tg__wbuf_free(&h);
  }
  if (wk->sessions) return false;
  if (wk->o.verbose)
    fprintf(stderr, "tgraph worker: left: %llu task%s taken while leaving\n",
            (unsigned long long)wk->drain_taken, wk->drain_taken == 1 ? "" : "s");
  return true;
}
