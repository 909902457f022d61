/* lib/offload/join.c: workers joining a tcp executor while it runs,
 * and workers leaving it.
 *
 * Joining: the executor binds a ROUTER on its join address
 * (tg_executor_opts.join_listen). A worker started with a join address
 * (tg_worker_opts.join, `tgraph worker --join ADDRESS`) listens as usual,
 * then connects there and sends JOIN with the address it listens on
 * (wire/proto.h). The join socket is a CURVE client holding the run's
 * client key, the worker's end a CURVE server holding the workers' key
 * and checking its authorized clients: a worker without the workers' key,
 * or that does not accept this run's key, never gets a message through
 * (the refusal is logged here, and the worker says why on its side). An
 * accepted registration only names an address: the executor connects to
 * it as to any worker (offload/conn.c: the same CURVE checks, HELLO and
 * WELCOME), and tasks go there as soon as it is ready. A joined worker
 * that is not ready within connect_timeout of joining or of being lost
 * is given up (CS_GONE) with a line in the log; the run goes on.
 *
 * Leaving: a worker told to drain sends LEAVE with the time it may go
 * on. Until that time minus a margin, tasks go to it when they are
 * expected to end by then (tg__ofl_leave_fits, from choose()), never a
 * task whose time is unknown; those it has finish there. Once nothing
 * more fits (its window is over, or it is idle and the most urgent ready
 * task does not fit, or nothing is ready), the results kept only on it
 * that are still alive are fetched here (they are handed to other
 * workers from here when needed), and the executor says BYE and forgets
 * it (CS_GONE).
 * Nothing of it counts as a loss. Should it die meanwhile, the usual loss
 * rules apply (offload/engine.h, "Faults"). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "offload/engine.h"

#define JOIN_MAX_MSG 1024 /* bytes of a registration: an address */

static int setopt(void *s, int opt, int v) { return zmq_setsockopt(s, opt, &v, sizeof v); }

static void note(ofl *b, const char *who, const char *line) {
  if (b->ex->log) b->ex->log(b->ex->log_ctx, who, line);
  else fprintf(stderr, "[%s] %s\n", who, line);
}

int tg__ofl_join_listen(ofl *b, const char *addr, tg_error *err) {
  bool loop;
  int rc = tg__addr_check(addr, true, &loop, err);
  if (rc != TG_OK) return rc;
  if (!loop && !b->keyed)
    return tg__error_set(err, TG_EINVAL, "refusing to let workers join on %s without keys: "
                         "only loopback addresses (127.0.0.1, ::1, localhost) may go "
                         "without; pass --keys DIR/client", addr);
  char a[512];
  snprintf(a, sizeof a, "%s", addr);
  size_t n = strlen(a);
  if (n >= 2 && strcmp(a + n - 2, ":0") == 0) strcpy(a + n - 1, "*");
  if (strncmp(a + 6, "localhost:", 10) == 0) memmove(a + 6, "127.0.0.1:", 10);
  b->join = zmq_socket(b->zctx, ZMQ_ROUTER);
  b->join_mon = b->join ? zmq_socket(b->zctx, ZMQ_PAIR) : NULL;
  if (!b->join_mon) return tg__error_set(err, TG_EIO, "zmq_socket: %s", zmq_strerror(errno));
  int64_t maxmsg = JOIN_MAX_MSG; /* a peer cannot make us buffer more */
  zmq_setsockopt(b->join, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
  setopt(b->join, ZMQ_LINGER, 0);
  setopt(b->join, ZMQ_BACKLOG, 1024); /* many workers may start at once */
  if (tg__addr_ipv6(a)) setopt(b->join, ZMQ_IPV6, 1);
  /* The roles of a worker connection: this end proves the run's key and
   * checks the workers' key, wherever the connection comes from. */
  zmq_setsockopt(b->join, ZMQ_CURVE_SERVERKEY, b->server_pub, 40);
  zmq_setsockopt(b->join, ZMQ_CURVE_PUBLICKEY, b->client_pub, 40);
  zmq_setsockopt(b->join, ZMQ_CURVE_SECRETKEY, b->client_sec, 40);
  char ep[64];
  snprintf(ep, sizeof ep, "inproc://tcp-join-mon-%p", (void *)b);
  if (zmq_socket_monitor(b->join, ep, ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                         ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                         ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0 ||
      zmq_connect(b->join_mon, ep) != 0)
    return tg__error_set(err, TG_EIO, "cannot watch the join address: %s", zmq_strerror(errno));
  if (zmq_bind(b->join, a) != 0)
    return tg__error_set(err, TG_EIO, "cannot listen for joining workers on %s: %s", addr,
                         zmq_strerror(errno));
  size_t len = sizeof b->join_endpoint;
  if (zmq_getsockopt(b->join, ZMQ_LAST_ENDPOINT, b->join_endpoint, &len) != 0) {
    if (strlen(a) >= sizeof b->join_endpoint)
      return tg__error_set(err, TG_EINVAL, "join address too long: %s", addr);
    memcpy(b->join_endpoint, a, strlen(a) + 1);
  }
  return TG_OK;
}

void tg__ofl_join_close(ofl *b) {
  if (b->join_refused) { /* refusals since the last line about them */
    char line[128];
    snprintf(line, sizeof line, "%u more joining workers' handshakes were refused",
             b->join_refused);
    note(b, b->join_endpoint, line);
    b->join_refused = 0;
  }
  if (b->join) {
    zmq_socket_monitor(b->join, NULL, 0);
    zmq_close(b->join);
  }
  if (b->join_mon) zmq_close(b->join_mon);
  b->join = b->join_mon = NULL;
}

static void answer(ofl *b, zmq_msg_t *rid, bool ok, const char *msg) {
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_JOINED);
  tg__wbuf_u8(&h, ok ? 0 : 1);
  tg__wbuf_cstr(&h, msg);
  if (!h.oom &&
      zmq_send(b->join, zmq_msg_data(rid), zmq_msg_size(rid), ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
    zmq_send(b->join, h.p, h.len, ZMQ_DONTWAIT);
  tg__wbuf_free(&h);
}

/* A registration (parts[0] the routing id, parts[1] the body): the
 * refusal's message, or NULL when accepted. */
static const char *registration(ofl *b, zmq_msg_t *body, char *buf, size_t size) {
  tg__rbuf r;
  tg__rbuf_init(&r, zmq_msg_data(body), zmq_msg_size(body));
  uint8_t type = tg__rbuf_u8(&r);
  const uint8_t *magic = tg__rbuf_bytes(&r, 4);
  uint64_t proto = tg__rbuf_varint(&r);
  char addr[sizeof ((ofl_conn *)0)->addr + 1];
  tg__rbuf_cstr(&r, addr, sizeof addr - 1);
  if (r.bad || type != TG__M_JOIN || !magic || memcmp(magic, TG__PROTO_MAGIC, 4) != 0)
    return "not a tgraph worker's registration";
  if (proto != TG_REMOTE_PROTOCOL) {
    snprintf(buf, size, "protocol version mismatch: the worker speaks version %llu, this "
             "run version %d", (unsigned long long)proto, TG_REMOTE_PROTOCOL);
    return buf;
  }
  tg_error e;
  tg_error_clear(&e);
  bool loop;
  if (tg__addr_check(addr, false, &loop, &e) != TG_OK) {
    snprintf(buf, size, "%s", e.msg);
    return buf;
  }
  if (!loop && !b->keyed) {
    snprintf(buf, size, "worker %s is not on this machine: a run without keys takes "
             "loopback workers only", addr);
    return buf;
  }
  for (int i = 0; i < b->nconns; i++) {
    ofl_conn *c = b->conns[i];
    if (strcmp(c->addr, addr) != 0 || c->state == CS_GONE) continue;
    if (c->state == CS_FAILED) c->retry_at = 0; /* back again: at once */
    return NULL; /* known already */
  }
  ofl_conn *c;
  if (tg__ofl_conn_new(b, addr, &c, &e) != TG_OK) {
    snprintf(buf, size, "%s", e.msg);
    return buf;
  }
  c->joined = true;
  c->down_since = tg__now();
  if (tg__ofl_conn_open(b, c, &e) != TG_OK) { /* ZeroMQ retries in the background */
    tg__ofl_conn_close(b, c, false);
    c->state = CS_FAILED;
    c->retry_at = c->down_since + 1;
    snprintf(c->why, sizeof c->why, "%s", e.msg);
  }
  return NULL;
}

#define JOIN_REFUSED_EVERY 10.0 /* seconds between two lines about refusals */

static void join_refused_handshake(ofl *b) {
  zmq_msg_t m[2];
  zmq_msg_init(&m[0]);
  zmq_msg_init(&m[1]);
  if (zmq_msg_recv(&m[0], b->join_mon, ZMQ_DONTWAIT) >= 0) {
    if (zmq_msg_more(&m[0])) zmq_msg_recv(&m[1], b->join_mon, 0);
    uint16_t ev = 0;
    if (zmq_msg_size(&m[0]) >= 6) memcpy(&ev, zmq_msg_data(&m[0]), 2);
    /* A refused peer retries (ZeroMQ reconnects every 0.1 s or so), and a
     * hostile one may never stop: one line at most every 10 s, telling
     * how many were refused since (the last ones are told with the next, or
     * when the run ends). */
    double now = tg__now();
    if (ev) b->join_refused++;
    if (b->join_refused && now - b->join_refused_said >= JOIN_REFUSED_EVERY) {
      char more[64] = "";
      if (b->join_refused > 1)
        snprintf(more, sizeof more, " (%u attempts since the last line)", b->join_refused);
      char line[320];
      snprintf(line, sizeof line, "%s%s", b->keyed
               ? "a joining worker was refused: the secure handshake failed (it does not hold "
                 "the workers' key, or does not accept this run's client key)"
               : "a joining worker was refused: the secure handshake failed (it does not hold "
                 "this user's key: another user's worker, or one with --keys)", more);
      note(b, b->join_endpoint, line);
      b->join_refused = 0;
      b->join_refused_said = now;
    }
  }
  zmq_msg_close(&m[0]);
  zmq_msg_close(&m[1]);
}

void tg__ofl_join_poll(ofl *b) {
  for (int i = 0; i < 64; i++) {
    zmq_pollitem_t it = {b->join_mon, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&it, 1, 0) <= 0) break;
    join_refused_handshake(b);
  }
  for (int i = 0; i < 256; i++) { /* a bounded number per turn */
    zmq_msg_t m[3];
    for (int k = 0; k < 3; k++) zmq_msg_init(&m[k]);
    int n = 0;
    for (; n < 3; n++) {
      if (zmq_msg_recv(&m[n], b->join, ZMQ_DONTWAIT) < 0) break;
      if (!zmq_msg_more(&m[n])) {
        n++;
        break;
      }
    }
    bool more = n == 3 && zmq_msg_more(&m[2]);
    while (more) { /* too many parts: drop the rest */
      zmq_msg_t x;
      zmq_msg_init(&x);
      more = zmq_msg_recv(&x, b->join, 0) >= 0 && zmq_msg_more(&x);
      zmq_msg_close(&x);
    }
    if (n == 2) {
      char buf[600], line[700];
      const char *why = registration(b, &m[1], buf, sizeof buf);
      answer(b, &m[0], !why, why ? why : "joined");
      if (why) {
        snprintf(line, sizeof line, "a worker's registration was refused: %s", why);
        note(b, b->join_endpoint, line);
      }
    } else if (n == 3) {
      answer(b, &m[0], false, "malformed registration");
    }
    for (int k = 0; k < 3; k++) zmq_msg_close(&m[k]);
    if (n == 0) break;
  }
}

void tg__ofl_join_tick(ofl *b, ofl_conn *c, double now) {
  if (c->state == CS_READY || c->state == CS_GONE) {
    c->down_since = now;
    return;
  }
  if (now - c->down_since < b->connect_timeout) return;
  char line[600];
  snprintf(line, sizeof line, "joined worker given up: not ready for %g s (%s)",
           b->connect_timeout, c->why[0] ? c->why : "no answer");
  note(b, c->addr, line);
  tg__ofl_conn_close(b, c, false);
  c->state = CS_GONE;
  c->fatal = true;
}

/* ---- leaving ---------------------------------------------------------------- */

/* The margin a leaving worker's tasks are to end by, before the end of
 * its window: the results still travel back, the kept results only it
 * holds are fetched after its last task, and the worker exits, all
 * before its host ends it (a batch job's time limit); a tenth of the
 * window (18 s of Slurm's 180) covers moving them, at least half a
 * second covers a loaded machine's scheduling on a short window. */
#define LEAVE_MARGIN_PART 0.1
#define LEAVE_MARGIN_MIN 0.5
/* Expected durations are running averages: a task is taken as this much
 * slower than its average, so that one a little slow still ends in time. */
#define LEAVE_SLOWER 1.25

void tg__ofl_leave_start(ofl *b, ofl_conn *c, double left) {
  (void)b;
  double margin = left * LEAVE_MARGIN_PART;
  if (margin < LEAVE_MARGIN_MIN) margin = LEAVE_MARGIN_MIN;
  double by = tg__now() + left - margin; /* left 0: at once */
  /* A second LEAVE may shorten the window, never reopen or lengthen it:
   * the run may be fetching what the worker holds already. */
  if (c->leaving) {
    if (by < c->leave_by) c->leave_by = by;
    if (!(left > margin)) c->leave_done = true;
    return;
  }
  c->leaving = true;
  c->leave_by = by;
  c->leave_done = !(left > margin);
}

bool tg__ofl_leave_open(const ofl_conn *c) {
  return !c->leave_done && tg__now() < c->leave_by;
}

bool tg__ofl_leave_fits(const ofl *b, ofl_conn *c, const ofl_rec *rec) {
  /* Never measured: its time is unknown, it does not go there. Its
   * worker's threads take tasks in order: it starts once one of them is
   * free, at the latest when what is queued there is done on average
   * (running tasks counted whole), and ends its own time later. */
  unsigned n = c->nthreads ? c->nthreads : 1;
  if (tg__ofl_task_known(b, rec->kind_key) &&
      tg__now() + c->queued / n + rec->est * LEAVE_SLOWER <= c->leave_by)
    return true;
  /* Idle, and a ready task does not fit: the next tick lets it go (not
   * here: another worker may take this one, and more may fit later in the
   * same pass). An idle worker waiting for unmeasured work would wait out
   * its whole window. */
  if (c->load == 0 && !c->staged) c->leave_missed = true;
  return false;
}

/* Fetch what only c holds among alive results: rescues. */
static void rescue(ofl *b, ofl_conn *c) {
  for (size_t i = 0; b->handles.s && i <= b->handles.mask; i++) {
    if (!b->handles.s[i].key) continue;
    ofl_handle *h = b->handles.s[i].val;
    if (h->kind != H_OBJ || h->held || h->fetching >= 0 || !tg__holders_only(&h->locs, c->idx) ||
        atomic_load(&h->refs) == 0)
      continue;
    tg__wbuf w = {0};
    tg__wbuf_u8(&w, TG__M_FETCH);
    tg__wbuf_varint(&w, h->id);
    if (tg__ofl_conn_send(b, c, &w, NULL)) {
      h->fetching = c->idx;
      h->rescue = true;
      c->rescues++;
    }
    tg__wbuf_free(&w);
    if (c->state != CS_READY) return; /* the send failed: lost */
  }
}

void tg__ofl_leave_tick(ofl *b, ofl_conn *c) {
  if (c->leaving && c->state != CS_READY && c->state != CS_GONE) {
    /* lost while leaving (counted as a loss): not connected again */
    tg__ofl_conn_close(b, c, false);
    c->state = CS_GONE;
    c->fatal = true;
    return;
  }
  if (!c->leaving || c->state != CS_READY) return;
  if (c->load || c->staged) { /* what was found not to fit was before this */
    c->leave_missed = false;
    return;
  }
  /* Idle: it waits while ready tasks may still fit in its window (the
   * dispatch after this tells), else nothing more goes there: the window
   * is over, nothing is waiting, or a pass found waiting work that did not
   * fit and sent it nothing. */
  if (tg__ofl_leave_open(c) && tg__ofl_work_waiting(b) && !c->leave_missed) return;
  c->leave_done = true;
  if (c->rescues == 0) rescue(b, c);
  if (c->state != CS_READY || c->rescues) return;
  /* Nothing of the run's is there any more. */
  tg__ofl_conn_flush(b, c); /* frees pending */
  tg__ofl_conn_close(b, c, true);
  c->state = CS_GONE;
  c->fatal = true;
  snprintf(c->why, sizeof c->why, "it left");
  for (size_t i = 0; b->handles.s && i <= b->handles.mask; i++)
    if (b->handles.s[i].key) tg__holders_del(&((ofl_handle *)b->handles.s[i].val)->locs, c->idx);
}

void tg__ofl_leave_fetched(ofl *b, int from) {
  if (from >= 0 && from < b->nconns && b->conns[from]->rescues) b->conns[from]->rescues--;
}
