/* lib/worker/worker.c: tg_worker_serve: binding the ROUTER (CURVE and
 * the authentication handler, with the keys given or this user's), the loop that
 * reads clients' messages, sessions (HELLO, function checks, expiry,
 * dropping misbehaving peers) and replies. */
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wire/shm.h"
#include "wire/wire.h"
#include "worker/worker.h"
#include "util/bigbuf.h"
#include "util/thread.h"

#define LOOP_MS 50 /* how often the stop flag and expiries are looked at */

/* ---- sessions ---------------------------------------------------------------- */

static uint64_t rid_hash(const void *p, size_t n) {
  uint64_t h = UINT64_C(1469598103934665603);
  for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * UINT64_C(1099511628211);
  return h | 1; /* never 0, which the map reserves */
}

static wsess *sess_find(tg__worker *wk, const void *rid, size_t n, uint64_t h) {
  for (wsess *s = tg__idmap_get(&wk->by_hash, h); s; s = s->hnext)
    if (s->rid_len == n && memcmp(s->rid, rid, n) == 0) return s;
  return NULL;
}

static void sess_unlink(tg__worker *wk, wsess *s) {
  for (wsess **p = &wk->sessions; *p; p = &(*p)->next)
    if (*p == s) {
      *p = s->next;
      break;
    }
  wsess *first = tg__idmap_get(&wk->by_hash, s->hash);
  if (first == s) {
    if (s->hnext) tg__idmap_put(&wk->by_hash, s->hash, s->hnext); /* replaces */
    else tg__idmap_del(&wk->by_hash, s->hash);
  } else {
    for (wsess *x = first; x; x = x->hnext)
      if (x->hnext == s) {
        x->hnext = s->hnext;
        break;
      }
  }
}

void tg__wk_sess_unref(tg__worker *wk, wsess *s) {
  (void)wk;
  if (--s->refs) return;
  for (size_t i = 0; i < s->nfns; i++) tg__free(s->fns[i].msg);
  tg__free(s->fns);
  tg__free(s->vals);
  tg__wbuf_free(&s->res);
  tg__stream_reset(&s->stream);
  tg__free(s);
}

static void ban(tg__worker *wk, uint64_t h) {
  if (wk->banned.n > 4096) tg__idmap_free(&wk->banned); /* bounded memory */
  tg__idmap_put(&wk->banned, h, (void *)1);
}

/* A header-only message to the peer with routing id rid (n 0: the one
 * peer of a local link). */
static void send_raw(tg__worker *wk, const void *rid, size_t n, const tg__wbuf *h) {
  if (!h->oom && (!n || tg__link_send_copy(wk->link, rid, n, TG__LINK_MORE) == TG_OK))
    tg__link_send_copy(wk->link, h->p, h->len, 0);
}

static void send_error(tg__worker *wk, const void *rid, size_t n, const char *msg) {
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_ERROR);
  tg__wbuf_cstr(&h, msg);
  send_raw(wk, rid, n, &h);
  tg__wbuf_free(&h);
}

void tg__wk_drop(tg__worker *wk, wsess *s, const char *msg, bool banned) {
  if (s->dead) return;
  if (msg) send_error(wk, s->rid, s->rid_len, msg);
  if (wk->o.verbose && msg)
    fprintf(stderr, "tgraph worker: dropped client '%s': %s\n", s->name, msg);
  else if (wk->o.verbose)
    fprintf(stderr, "tgraph worker: client '%s' gone: state dropped\n", s->name);
  if (banned) ban(wk, s->hash);
  s->dead = true;
  atomic_store(&s->gone, true);
  sess_unlink(wk, s);
  tg__wk_sess_clear(wk, s);
  tg__wk_sess_unref(wk, s);
}

bool tg__wk_send(tg__worker *wk, wsess *s, const tg__wbuf *h, const tg_value *v) {
  if (s->dead) return false;
  /* A failure is also how ROUTER_MANDATORY says the peer is gone. */
  if (tg__wire_send(wk->link, s->rid, s->rid_len, h, v, s->peer_mis, &s->stream,
                    NULL, NULL) != TG_OK) {
    tg__wk_drop(wk, s, NULL, false);
    return false;
  }
  return true;
}

/* ---- handshake ---------------------------------------------------------------- */

static void welcome(tg__worker *wk, const void *rid, size_t n, bool ok,
                    const char *msg, const tg__wbuf *tail) {
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_WELCOME);
  tg__wbuf_bytes(&h, TG__PROTO_MAGIC, 4);
  tg__wbuf_varint(&h, TG_REMOTE_PROTOCOL);
  tg__wbuf_u8(&h, ok ? 0 : 1);
  tg__wbuf_varint(&h, wk->nthreads);
  tg__wbuf_cstr(&h, "tgraph worker");
  tg__wbuf_cstr(&h, msg);
  tg__wbuf_varint(&h, (uint64_t)wk->link->misalign);
  if (tail) tg__wbuf_bytes(&h, tail->p, tail->len);
  if (tail && tail->oom) h.oom = true;
  send_raw(wk, rid, n, &h);
  tg__wbuf_free(&h);
}

/* The client's HELLO at r offers a probe segment (wire/shm.h): when
 * it came over a Unix socket from a process of this user, try it and
 * offer ours; *tail gets WELCOME's answer (wire/proto.h). */
static void shm_hello(tg__worker *wk, wsess *s, tg__rbuf *r, tg__wbuf *tail) {
  pid_t pid = tg__shm_allowed() ? tg__shm_peer_pid(&wk->parts[1]) : 0;
  tg__shm *sh = pid ? tg__shm_new(pid) : NULL;
  bool opened = sh && tg__shm_probe_try(sh, r);
  tg__wbuf ours = {0};
  bool offered = sh && tg__shm_probe_offer(sh, &ours) == TG_OK && !ours.oom;
  tg__wbuf_u8(tail, opened);
  tg__wbuf_u8(tail, offered);
  if (offered) tg__wbuf_bytes(tail, ours.p, ours.len);
  tg__wbuf_free(&ours);
  if (sh && (opened || offered)) {
    tg__shm_set_recv(sh, opened);
    s->stream.shm = sh;
  } else {
    tg__shm_free(sh);
  }
}

/* HELLO from a peer (an existing session of it starts over). */
static bool hello(tg__worker *wk, wsess *old, const void *rid, size_t n,
                  uint64_t hash, tg__rbuf *r) {
  const uint8_t *magic = tg__rbuf_bytes(r, 4);
  uint64_t proto = tg__rbuf_varint(r), keep = tg__rbuf_varint(r);
  char name[TG__MAX_NAME + 1];
  tg__rbuf_cstr(r, name, TG__MAX_NAME);
  uint64_t mis = tg__rbuf_count(r, TG_ARRAY_ALIGN - 1);
  /* The probe's fields are read by shm_hello. */
  bool probe = !r->bad && !tg__rbuf_end(r) && tg__rbuf_u8(r) == 1;
  if (r->bad || memcmp(magic, TG__PROTO_MAGIC, 4) != 0) return false;
  if (old) tg__wk_drop(wk, old, NULL, false);
  if (proto != TG_REMOTE_PROTOCOL) {
    char m[200];
    snprintf(m, sizeof m, "the worker speaks protocol version %d, the client %llu",
             TG_REMOTE_PROTOCOL, (unsigned long long)proto);
    welcome(wk, rid, n, false, m, NULL);
    return true;
  }
  /* Sessions whose routing ids hash alike share a chain: the new one
   * becomes its head, so an older one stays reachable (clients choose
   * their routing ids, so collisions can be made on purpose). */
  wsess *head = tg__idmap_get(&wk->by_hash, hash);
  wsess *s = tg__calloc(1, sizeof *s);
  if (!s || !tg__idmap_put(&wk->by_hash, hash, s)) {
    tg__free(s);
    welcome(wk, rid, n, false, "out of memory", NULL);
    return true;
  }
  s->objs = tg__idmap_seq(); /* the client's object ids */
  memcpy(s->rid, rid, n);
  s->rid_len = n;
  s->hash = hash;
  s->hnext = head;
  s->refs = 1;
  s->keep_min = keep ? (size_t)keep : 4096;
  s->peer_mis = (int)mis;
  tg__stream_init(&s->stream, wk->o.max_message ? wk->o.max_message : (uint64_t)1 << 62,
                  wk->pending);
  s->last_seen = tg__now();
  tg__wk_peer_note(s, &wk->parts[1]);
  snprintf(s->name, sizeof s->name, "%s", name);
  s->next = wk->sessions;
  wk->sessions = s;
  wk->said_hello = true;
  if (wk->o.verbose) fprintf(stderr, "tgraph worker: client '%s' connected\n", s->name);
  tg__wbuf tail = {0};
  if (probe) shm_hello(wk, s, r, &tail);
  welcome(wk, rid, n, true, "", probe ? &tail : NULL);
  tg__wbuf_free(&tail);
  return true;
}

/* A client whose ZeroMQ connection we share memory with may also send
 * this: whether it could open our probe segment. An answer to a probe
 * already dropped (see probe_unanswered) changes nothing. */
static bool seg_ok(wsess *s, tg__rbuf *r) {
  uint8_t ok = tg__rbuf_u8(r);
  if (r->bad || !tg__rbuf_end(r) || ok > 1 || !s->stream.shm) return false;
  if (tg__shm_probe_pending(s->stream.shm)) tg__shm_probe_done(s->stream.shm, ok == 1);
  return true;
}

/* A client answers our probe before anything else (it sends SEG_OK as
 * soon as WELCOME comes). One that does not, or not within PROBE_WAIT
 * seconds, gets no segments: its probe, a memfd and a descriptor here,
 * would otherwise live as long as the session. */
#define PROBE_WAIT 5.0

static void probe_unanswered(wsess *s) {
  if (tg__shm_probe_pending(s->stream.shm)) tg__shm_probe_done(s->stream.shm, false);
}

/* Tell clients which of their segments we let go of (values released
 * since the last turn, on any thread). */
static void send_seg_frees(tg__worker *wk) {
  for (wsess *s = wk->sessions, *next; s; s = next) {
    next = s->next;
    if (!s->stream.shm || s->dead) continue;
    tg__wbuf h = {0}; /* no allocation when there is nothing */
    if (tg__shm_releases(s->stream.shm, &h)) tg__wk_send(wk, s, &h, NULL);
    tg__wbuf_free(&h);
  }
}

/* Where the client's function's code comes from, as it said. */
typedef struct fn_origin {
  uint8_t kind; /* TG__ORIGIN_* */
  tg_digest dg; /* plugin */
  char file[64]; /* plugin: base name */
  char build[TG__MAX_NAME + 1]; /* builtin: the client's library build */
  char code_id[TG__MAX_NAME + 1]; /* "" when the function declares none */
} fn_origin;

/* Same code: same kind, and the same plugin file or library build. Two
 * programs' compiled-in functions are trusted by name and version. */
static bool same_origin(const tg_func *f, const fn_origin *o) {
  if (f->kind != o->kind) return false;
  if (f->kind == TG__ORIGIN_PLUGIN) return tg_digest_equal(f->origin, o->dg);
  if (f->kind == TG__ORIGIN_BUILTIN) return strcmp(o->build, tg__library_build()) == 0;
  return true;
}

/* Check one function definition of s against the registry. d->msg is
 * what tasks using it fail with; *detail what the client is told (the
 * worker's version, or where the worker's code comes from). */
static void check_fn(tg__worker *wk, wfn *d, const char *name, const char *ver,
                     const fn_origin *o, char detail[TG__MAX_MSG]) {
  const tg_func *f = tg_registry_find(wk->reg, name);
  char m[3 * TG__MAX_MSG];
  d->status = TG__FN_OK;
  detail[0] = '\0';
  if (!f) {
    d->status = TG__FN_MISSING;
    snprintf(m, sizeof m, "function '%s' is not registered on this worker", name);
  } else if (strcmp(tg_func_version(f), ver) != 0) {
    d->status = TG__FN_VERSION;
    snprintf(detail, TG__MAX_MSG, "%s", tg_func_version(f));
    snprintf(m, sizeof m, "function '%s' has version '%s' in the program and version "
             "'%s' on this worker", name, ver, tg_func_version(f));
  } else if (f->code_id || o->code_id[0]) {
    /* A declared code id is the code's identity, as in cache keys: equal
     * ones are the same code whichever file brought it (a plugin rebuilt
     * with other flags), different ones never are. */
    if (!f->code_id || strcmp(f->code_id, o->code_id) != 0) {
      d->status = TG__FN_CODE;
      snprintf(detail, TG__MAX_MSG, "%s", f->code_id ? f->code_id : "");
      char theirs[TG__MAX_NAME + 16], ours[TG__MAX_NAME + 16];
      snprintf(m, sizeof m, "function '%s' has %s in the program and %s on this worker",
               name, tg__code_id_text(o->code_id, theirs, sizeof theirs),
               tg__code_id_text(f->code_id, ours, sizeof ours));
    }
  } else if (!same_origin(f, o)) {
    /* Never run other code under the client's name: it would cache our
     * results as its own. */
    char theirs[TG__MAX_MSG];
    d->status = TG__FN_ORIGIN;
    tg__func_origin_text(f->kind, f->origin_file, f->origin, tg__library_build(),
                         "the program", detail, TG__MAX_MSG);
    tg__func_origin_text(o->kind, o->file, o->dg, o->build, "the client's program",
                         theirs, sizeof theirs);
    snprintf(m, sizeof m, "function '%s' %s but %s on this worker", name, theirs, detail);
  }
  d->f = d->status == TG__FN_OK ? f : NULL;
  if (d->status != TG__FN_OK && (d->msg = tg__malloc(strlen(m) + 1))) strcpy(d->msg, m);
}

static bool funcs(tg__worker *wk, wsess *s, tg__rbuf *r) {
  uint64_t n = tg__rbuf_count(r, TG__MAX_FUNCS);
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_FUNCS_OK);
  tg__wbuf_varint(&h, n);
  for (uint64_t i = 0; i < n && !r->bad; i++) {
    uint64_t id = tg__rbuf_varint(r);
    char name[TG__MAX_NAME + 1], ver[TG__MAX_NAME + 1];
    tg__rbuf_cstr(r, name, TG__MAX_NAME);
    tg__rbuf_cstr(r, ver, TG__MAX_NAME);
    fn_origin o = {.kind = tg__rbuf_u8(r)};
    if (o.kind == TG__ORIGIN_PLUGIN) {
      const uint8_t *d = tg__rbuf_bytes(r, 16);
      if (d) {
        memcpy(&o.dg.lo, d, 8);
        memcpy(&o.dg.hi, d + 8, 8);
      }
      tg__rbuf_cstr(r, o.file, sizeof o.file - 1);
    } else if (o.kind == TG__ORIGIN_BUILTIN) {
      tg__rbuf_cstr(r, o.build, TG__MAX_NAME);
    } else if (o.kind != TG__ORIGIN_PROGRAM) {
      r->bad = true;
    }
    tg__rbuf_cstr(r, o.code_id, TG__MAX_NAME);
    if (r->bad || id != s->nfns) break; /* ids are dense, in order */
    wfn *fns = tg__realloc(s->fns, (s->nfns + 1) * sizeof *fns);
    if (!fns) {
      h.oom = true;
      break;
    }
    s->fns = fns;
    wfn *f = &s->fns[s->nfns++];
    memset(f, 0, sizeof *f);
    char detail[TG__MAX_MSG];
    check_fn(wk, f, name, ver, &o, detail);
    tg__wbuf_varint(&h, id);
    tg__wbuf_u8(&h, f->status);
    tg__wbuf_cstr(&h, detail);
  }
  bool ok = !r->bad && tg__rbuf_end(r) && s->nfns <= TG__MAX_FUNCS;
  if (ok && !h.oom) tg__wk_send(wk, s, &h, NULL);
  else if (ok) tg__wk_drop(wk, s, "out of memory", false);
  tg__wbuf_free(&h);
  return ok;
}

/* ---- one message -------------------------------------------------------------- */

static bool ping(tg__worker *wk, wsess *s, tg__rbuf *r) {
  uint64_t token = tg__rbuf_varint(r);
  if (r->bad) return false;
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_PONG);
  tg__wbuf_varint(&h, token);
  tg__wk_send(wk, s, &h, NULL);
  tg__wbuf_free(&h);
  return true;
}

/* A chunk of a streamed value. A value over the limit or out of memory
 * drops the client saying so (not banned: it may retry with less);
 * anything malformed is false (dropped and banned by the caller). */
static bool bulk(tg__worker *wk, wsess *s) {
  tg_error e;
  tg_error_clear(&e);
  if (tg__stream_recv(&s->stream, wk->parts + 1, wk->nparts - 1, &e) == TG_OK) return true;
  if (e.code == TG_EFORMAT) return false;
  char m[TG__MAX_MSG];
  snprintf(m, sizeof m, "%s: dropped", e.msg);
  tg__wk_drop(wk, s, m, false);
  return true;
}

static void handle(tg__worker *wk) {
  zmq_msg_t *p = wk->parts;
  const void *rid = zmq_msg_data(&p[0]);
  size_t n = zmq_msg_size(&p[0]);
  uint64_t h = rid_hash(rid, n);
  if (tg__idmap_get(&wk->banned, h) || n > sizeof ((wsess *)0)->rid) return;
  if (wk->nparts > 1 && zmq_msg_size(&p[1]) && *(uint8_t *)zmq_msg_data(&p[1]) == TG__M_HELLO)
    tg__wk_peers_read(wk); /* see worker/peers.c */
  wsess *s = sess_find(wk, rid, n, h);
  tg__rbuf r;
  tg__rbuf_init(&r, wk->nparts > 1 ? zmq_msg_data(&p[1]) : "", wk->nparts > 1 ? zmq_msg_size(&p[1]) : 0);
  uint8_t type = tg__rbuf_u8(&r);
  if (type == TG__M_HELLO && wk->nparts == 2 && hello(wk, s, rid, n, h, &r)) return;
  if (!s || type == TG__M_HELLO) { /* no session: nothing of it is read */
    send_error(wk, rid, n, s ? "malformed HELLO" : "no HELLO first: dropped");
    if (s) tg__wk_drop(wk, s, NULL, true);
    else ban(wk, h);
    return;
  }
  s->last_seen = tg__now();
  if (type != TG__M_SEG_OK) probe_unanswered(s);
  s->refs++; /* a failed send while handling drops s: keep it allocated */
  bool ok = false, values = type == TG__M_TASKS || type == TG__M_PUT ||
                            type == TG__M_BULK;
  if (values || wk->nparts == 2) {
    switch (type) {
      case TG__M_FUNCS: ok = funcs(wk, s, &r); break;
      case TG__M_TASKS: ok = tg__wk_tasks(wk, s, &r); break;
      case TG__M_PUT: ok = tg__wk_put(wk, s, &r); break;
      case TG__M_FETCH: ok = tg__wk_fetch(wk, s, &r); break;
      case TG__M_FREE: ok = tg__wk_free(wk, s, &r); break;
      case TG__M_CANCEL: ok = tg__wk_cancel(wk, s, &r); break;
      case TG__M_PING: ok = ping(wk, s, &r); break;
      case TG__M_BULK: ok = bulk(wk, s); break;
      case TG__M_SEG_OK: ok = seg_ok(s, &r); break;
      case TG__M_SEG_FREE:
        ok = s->stream.shm && tg__shm_released(s->stream.shm, &r) == TG_OK;
        break;
      case TG__M_BYE:
        tg__wk_drop(wk, s, NULL, false);
        ok = true;
        break;
      default: ok = false;
    }
  }
  if (!ok) tg__wk_drop(wk, s, "malformed message: dropped", true);
  tg__wk_sess_unref(wk, s);
}

/* Read one whole message into wk->parts (a ROUTER's: the routing id
 * first; a local link's: an empty one put first): 1, or 0 when there is
 * none, or -1 when it had too many parts (its sender is dropped, nothing
 * is read), or -2 when a local link's parent is gone or broke the framing
 * (the worker ends). */
static int recv_message(tg__worker *wk) {
  for (size_t i = 0; i < wk->nparts; i++) zmq_msg_close(&wk->parts[i]);
  wk->nparts = 0;
  bool local = !wk->router;
  size_t n = 0;
  int got = tg__link_recv(wk->link, wk->parts + local, TG__MAX_PARTS + !local, &n);
  if (got == 0) return 0;
  if (local && got < 0) return -2;
  if (local) zmq_msg_init(&wk->parts[0]);
  wk->nparts = n + local;
  if (got > 0) return 1;
  if (got != TG_ELIMIT) return 0; /* ZeroMQ: nothing else happens */
  const void *rid = zmq_msg_data(&wk->parts[0]);
  size_t rn = zmq_msg_size(&wk->parts[0]);
  uint64_t h = rid_hash(rid, rn);
  wsess *s = sess_find(wk, rid, rn, h);
  if (s) tg__wk_drop(wk, s, "message with too many parts: dropped", true);
  else ban(wk, h);
  return -1;
}

/* ---- set-up and the loop ---------------------------------------------------- */

static int setopt(void *sock, int opt, int v) {
  return zmq_setsockopt(sock, opt, &v, sizeof v);
}

/* Keyless: also listen on this user's private Unix socket for the port
 * (wire/usersock.c), where only this user's runs can connect (and the
 * authentication handler checks the peer's uid), without CURVE.
 * ZeroMQ takes a bind's security options when it binds, so the tcp
 * endpoint keeps CURVE. Without it, runs use tcp (slower, as safe). */
static void bind_user_socket(tg__worker *wk) {
  char path[4096], ep[4200];
  if (tg__user_socket(wk->endpoint, path, sizeof path) != TG_OK) return;
  snprintf(ep, sizeof ep, "ipc://%s", path);
  /* ZeroMQ's bind replaces whatever is at the path: a live socket there
   * is another worker's of this user, which keeps it (its runs would
   * otherwise come here). */
  if (tg__user_socket_live(path)) {
    if (wk->o.verbose)
      fprintf(stderr, "tgraph worker: %s is another worker's (runs use tcp)\n", path);
    return;
  }
  setopt(wk->router, ZMQ_CURVE_SERVER, 0); /* the ZAP domain stays: peers'
                                              uids are checked (worker/zap.c) */
  struct stat st;
  if (zmq_bind(wk->router, ep) == 0 && strlen(path) < sizeof wk->user_sock &&
      stat(path, &st) == 0) {
    strcpy(wk->user_sock, path);
    wk->user_sock_dev = st.st_dev;
    wk->user_sock_ino = st.st_ino;
  } else if (wk->o.verbose) {
    fprintf(stderr, "tgraph worker: cannot listen on %s (runs use tcp): %s\n", ep,
            zmq_strerror(errno));
  }
}

/* Remove our socket, unless the path is no longer it (a worker that
 * started after ours ended unexpectedly may have put its own there). */
static void unlink_user_socket(tg__worker *wk) {
  struct stat st;
  if (wk->user_sock[0] && stat(wk->user_sock, &st) == 0 && st.st_dev == wk->user_sock_dev &&
      st.st_ino == wk->user_sock_ino)
    unlink(wk->user_sock);
}

/* Always CURVE: with the keys of the worker set given, or else this
 * user's own (only this user's runs get past the handshake). */
static int bind_router(tg__worker *wk, const char *addr, const tg__keypair *kp,
                       tg_error *err) {
  int64_t maxmsg = wk->o.max_message ? (int64_t)wk->o.max_message : INT32_MAX;
  wk->router = zmq_socket(wk->zctx, ZMQ_ROUTER);
  if (!wk->router) return tg__error_set(err, TG_EIO, "zmq_socket: %s", zmq_strerror(errno));
  if (!(wk->link = tg__link_zmq(wk->router))) {
    zmq_close(wk->router);
    wk->router = NULL;
    return tg__error_set(err, TG_ENOMEM, "out of memory");
  }
  setopt(wk->router, ZMQ_LINGER, 0);
  setopt(wk->router, ZMQ_ROUTER_MANDATORY, 1);
  setopt(wk->router, ZMQ_SNDHWM, 0);
  setopt(wk->router, ZMQ_RCVHWM, 10000);
  setopt(wk->router, ZMQ_HEARTBEAT_IVL, 1000);
  setopt(wk->router, ZMQ_HEARTBEAT_TIMEOUT, 10000);
  if (tg__addr_ipv6(addr)) setopt(wk->router, ZMQ_IPV6, 1);
  zmq_setsockopt(wk->router, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
  int rc = tg__wk_peers_start(wk, err);
  if (rc != TG_OK) return rc;
  setopt(wk->router, ZMQ_CURVE_SERVER, 1);
  zmq_setsockopt(wk->router, ZMQ_CURVE_SECRETKEY, kp->sec, 40);
  zmq_setsockopt(wk->router, ZMQ_CURVE_PUBLICKEY, kp->pub, 40);
  zmq_setsockopt(wk->router, ZMQ_ZAP_DOMAIN, "tgraph", 6);
  if (zmq_bind(wk->router, addr) != 0)
    return tg__error_set(err, TG_EIO, "cannot listen on %s: %s", addr, zmq_strerror(errno));
  size_t len = sizeof wk->endpoint;
  if (zmq_getsockopt(wk->router, ZMQ_LAST_ENDPOINT, wk->endpoint, &len) != 0)
    snprintf(wk->endpoint, sizeof wk->endpoint, "%s", addr);
  if (!wk->o.keys_dir && !wk->mem_keys) bind_user_socket(wk);
  return TG_OK;
}

static int check_opts(const tg_worker_opts *o, bool keyed, char *addr, size_t size,
                      tg_error *err) {
  if (!o) return tg__error_set(err, TG_EINVAL, "tg_worker_serve: no options");
  if (o->version < TG_WORKER_OPTS_V1 || o->version > TG_WORKER_OPTS_V4)
    return tg__error_set(err, TG_EINVAL, "tg_worker_opts.version is %u, expected %d to %d",
                         o->version, TG_WORKER_OPTS_V1, TG_WORKER_OPTS_V4);
  if (o->version >= TG_WORKER_OPTS_V4 && !(o->drain_time >= 0))
    return tg__error_set(err, TG_EINVAL, "tg_worker_opts.drain_time must be 0 or more");
  const char *listen = o->listen ? o->listen : TG_WORKER_DEFAULT_LISTEN;
  bool loop;
  int rc = tg__addr_check(listen, true, &loop, err);
  if (rc != TG_OK) return rc;
  if (!loop && !o->keys_dir && !keyed)
    return tg__error_set(err, TG_EINVAL, "refusing to listen on %s without keys: only "
                         "loopback addresses (127.0.0.1, ::1, localhost) may go without; "
                         "make keys with 'tgraph keys generate DIR' and pass --keys DIR/worker",
                         listen);
  snprintf(addr, size, "%s", listen);
  size_t n = strlen(addr);
  if (n >= 2 && strcmp(addr + n - 2, ":0") == 0) strcpy(addr + n - 1, "*");
  if (strncmp(addr + 6, "localhost:", 10) == 0) /* ZeroMQ binds interfaces */
    memmove(addr + 6, "127.0.0.1:", 10);
  return TG_OK;
}

static int start(tg__worker *wk, const char *addr, tg_error *err) {
  wk->zctx = zmq_ctx_new();
  wk->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!wk->zctx || wk->wake_fd < 0)
    return tg__error_set(err, TG_EIO, "cannot set up the worker: %s", strerror(errno));
  zmq_ctx_set(wk->zctx, ZMQ_BLOCKY, 0);
  uint8_t(*keys)[32];
  size_t n;
  tg__keypair kp;
  if (!zmq_has("curve"))
    return tg__error_set(err, TG_EINVAL, "this libzmq has no CURVE: workers cannot tell "
                         "their clients from others");
  int rc = tg__keys_worker(wk->o.keys_dir, wk->mem_keys, &kp, &keys, &n, err);
  /* keyless: this user's processes may also come over its Unix socket */
  long uid = wk->o.keys_dir || wk->mem_keys ? -1 : (long)geteuid();
  if (rc == TG_OK) rc = tg__zap_start(wk->zctx, keys, n, uid, wk->o.verbose, &wk->zap, err);
  if (rc == TG_OK) rc = bind_router(wk, addr, &kp, err);
  if (rc == TG_OK && wk->o.join) rc = tg__wk_join(wk, &kp, err);
  memset(&kp, 0, sizeof kp);
  if (rc == TG_OK) rc = tg__wk_pool_start(wk, err);
  return rc;
}

static void expire(tg__worker *wk, double now) {
  double limit = wk->o.session_timeout > 0 ? wk->o.session_timeout : 20;
  for (wsess *s = wk->sessions, *next; s; s = next) {
    next = s->next;
    /* Silent since HELLO when its probe is still pending (any message
     * ends that). */
    if (now - s->last_seen > PROBE_WAIT) probe_unanswered(s);
    if (now - s->last_seen > limit) {
      if (wk->o.verbose)
        fprintf(stderr, "tgraph worker: client '%s' silent for %.1f s\n", s->name,
                now - s->last_seen);
      tg__wk_drop(wk, s, NULL, false);
    }
  }
}

static void loop(tg__worker *wk) {
  zmq_pollitem_t it[3] = {{NULL, -1, 0, 0}, {NULL, wk->wake_fd, ZMQ_POLLIN, 0},
                          {wk->peers, 0, ZMQ_POLLIN, 0}};
  double last_expiry = tg__now();
  bool local = !wk->router;
  /* An atomic read: the flag may be set from another thread as well as
   * from a signal handler (see remote.h). */
  while (!(wk->o.stop && __atomic_load_n(wk->o.stop, __ATOMIC_RELAXED))) {
    tg__link_pollitem(wk->link, &it[0]);
    if (wk->o.drain && __atomic_load_n(wk->o.drain, __ATOMIC_RELAXED) && tg__wk_drain(wk))
      break;
    if (zmq_poll(it, local ? 2 : 3, LOOP_MS) < 0 && errno != EINTR) break;
    tg__wk_peers_read(wk);
    /* A bounded number of messages per turn keeps results flowing. */
    int got = 0;
    for (int i = 0; i < 256 && (got = recv_message(wk)) != 0 && got != -2; i++)
      if (got > 0) handle(wk);
    tg__wk_collect(wk);
    send_seg_frees(wk);
    /* A local link's parent is gone (or its session): the worker's job
     * is done. */
    if (tg__link_flush(wk->link) != TG_OK || got == -2 || (local && !wk->sessions && wk->said_hello))
      break;
    tg__bigbuf_sweep();
    double now = tg__now();
    if (!local && now - last_expiry > 0.5) {
      expire(wk, now);
      last_expiry = now;
    }
  }
}

static void teardown(tg__worker *wk) {
  while (wk->sessions) tg__wk_drop(wk, wk->sessions, NULL, false);
  if (wk->threads || wk->inline_calls) tg__wk_pool_stop(wk);
  tg__wk_collect(wk); /* tasks that were running: release them */
  tg__recycle_drain(&wk->task_blocks);
  tg__recycle_drain(&wk->obj_blocks);
  tg__recycle_drain(&wk->wait_blocks);
  for (size_t i = 0; i < wk->nparts; i++) zmq_msg_close(&wk->parts[i]);
  wk->nparts = 0;
  tg__free(wk->parts);
  tg__wk_peers_stop(wk);
  tg__link_close(wk->link); /* and the ROUTER */
  unlink_user_socket(wk); /* ZeroMQ leaves it */
  tg__zap_stop(wk->zap);
  if (wk->zctx) zmq_ctx_term(wk->zctx);
  if (wk->wake_fd >= 0) close(wk->wake_fd);
  tg__idmap_free(&wk->by_hash);
  tg__idmap_free(&wk->banned);
  tg__stream_pool_unref(wk->pending);
  pthread_mutex_destroy(&wk->mu);
  pthread_cond_destroy(&wk->cv);
}

/* The budget of streamed values held for all clients (tg_worker_opts). */
static uint64_t pending_limit(const tg_worker_opts *o) {
  if (o->max_pending) return o->max_pending;
  long pages = sysconf(_SC_PHYS_PAGES), ps = sysconf(_SC_PAGESIZE);
  uint64_t quarter = pages > 0 && ps > 0 ? (uint64_t)pages * (uint64_t)ps / 4
                                         : (uint64_t)1 << 30; /* unknown: 1 GiB */
  if (!o->max_message) return quarter;
  /* Room for several clients' largest values, within a quarter of the
   * memory, but never less than one such value. */
  uint64_t n = (uint64_t)o->max_message * 8, floor = (uint64_t)64 << 20;
  if (n < floor) n = floor;
  if (n > quarter) n = quarter;
  return n > o->max_message ? n : o->max_message;
}

/* What both entries set up first: options, the pending budget, the
 * parts array, locks. NULL when out of memory. */
static tg__worker *worker_new(tg_registry *reg, const tg_worker_opts *opts) {
  tg__worker *wk = tg__calloc(1, sizeof *wk);
  if (!wk) return NULL;
  wk->reg = reg;
  wk->wake_fd = -1;
  /* A version 1 struct ends before max_pending: copy only what the
   * caller has; the rest stays 0 (the defaults). */
  if (opts)
    memcpy(&wk->o, opts, opts->version >= TG_WORKER_OPTS_V4   ? sizeof *opts
                         : opts->version == TG_WORKER_OPTS_V3 ? offsetof(tg_worker_opts, drain_time)
                         : opts->version == TG_WORKER_OPTS_V2 ? offsetof(tg_worker_opts, join)
                                                              : offsetof(tg_worker_opts, max_pending));
  /* Values received stay charged to it until their last release, which
   * may come after the worker is gone: it is refcounted. */
  wk->pending = tg__stream_pool_new(pending_limit(&wk->o));
  wk->parts = tg__malloc((TG__MAX_PARTS + 1) * sizeof *wk->parts);
  if (!wk->pending || !wk->parts) {
    tg__stream_pool_unref(wk->pending);
    tg__free(wk->parts);
    tg__free(wk);
    return NULL;
  }
  /* Tasks of up to 4 arguments and 64-byte keys are recycled. */
  wk->task_blocks.size = tg__wk_task_size(4, 63);
  wk->task_blocks.max = 4096;
  wk->obj_blocks = (tg__recycler){.size = sizeof(wobj), .max = 65536};
  wk->wait_blocks = (tg__recycler){.size = sizeof(wwait), .max = 65536};
  pthread_mutex_init(&wk->mu, NULL);
  pthread_cond_init(&wk->cv, NULL);
  return wk;
}

int tg_worker_serve(tg_registry *reg, const tg_worker_opts *opts, tg_error *err) {
  return tg__worker_serve_keys(reg, opts, NULL, err);
}

int tg__worker_serve_keys(tg_registry *reg, const tg_worker_opts *opts,
                          const tg__keyset *keys, tg_error *err) {
  char addr[512];
  if (!reg) return tg__error_set(err, TG_EINVAL, "tg_worker_serve: no registry");
  if (keys && opts && opts->keys_dir)
    return tg__error_set(err, TG_EINVAL, "tg_worker_serve: keys both in memory and in '%s'",
                         opts->keys_dir);
  int rc = check_opts(opts, keys != NULL, addr, sizeof addr, err);
  if (rc != TG_OK) return rc;
  tg__worker *wk = worker_new(reg, opts);
  if (!wk) return tg__error_set(err, TG_ENOMEM, "out of memory");
  wk->mem_keys = keys;
  wk->nthreads = wk->o.nthreads ? wk->o.nthreads : tg__ncpus();
  rc = start(wk, addr, err);
  if (rc == TG_OK) {
    if (opts->on_ready) opts->on_ready(opts->ctx, wk->endpoint);
    if (opts->verbose)
      fprintf(stderr, "tgraph worker: listening on %s with %u threads%s\n", wk->endpoint,
              wk->nthreads, opts->keys_dir || keys ? ", CURVE keys" : ", this user's key");
    loop(wk);
  }
  teardown(wk);
  tg__free(wk);
  return rc;
}

int tg__worker_serve_fd(tg_registry *reg, int fd, const tg_worker_opts *opts,
                        tg__wk_running *running, tg_error *err) {
  tg__worker *wk = reg ? worker_new(reg, opts) : NULL;
  if (!wk) {
    close(fd);
    return tg__error_set(err, reg ? TG_ENOMEM : TG_EINVAL, reg ? "out of memory" : "no registry");
  }
  wk->o.stop = NULL; /* the parent's end of the socket is the stop */
  wk->running = running;
  wk->nthreads = wk->o.nthreads ? wk->o.nthreads : 1;
  wk->inline_calls = running && wk->nthreads == 1; /* see worker/worker.h */
  if (running) atomic_store(&running->inline_calls, wk->inline_calls);
  int rc = TG_OK;
  wk->link = tg__link_local(fd, false);
  wk->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (!wk->link || wk->wake_fd < 0)
    rc = tg__error_set(err, TG_EIO, "cannot set up the worker: %s", strerror(errno));
  if (rc == TG_OK) rc = tg__wk_pool_start(wk, err);
  if (rc == TG_OK) loop(wk);
  teardown(wk);
  tg__free(wk);
  return rc;
}
