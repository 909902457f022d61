/* lib/offload/conn.c: one connection per worker, whatever its transport
 * (the link is opened by the transport: offload/tcp.c, processes.c):
 * HELLO and WELCOME, pings, a ZeroMQ link's monitor events, the
 * function definitions a worker has been sent, flushing pending messages,
 * and what happens when a worker is lost. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "offload/engine.h"
#include "wire/shm.h"
#include "wire/wire.h"


int tg__ofl_conn_new(ofl *b, const char *addr, ofl_conn **out, tg_error *err) {
  *out = NULL;
  if (strlen(addr) >= sizeof ((ofl_conn *)0)->addr)
    return tg__error_set(err, TG_EINVAL, "address too long: %s", addr);
  if (b->nconns == INT_MAX / 2) return tg__error_set(err, TG_ELIMIT, "too many workers");
  if (b->nconns == b->cap_conns) {
    int cap = b->cap_conns ? b->cap_conns * 2 : 8;
    ofl_conn **p = tg__realloc(b->conns, (size_t)cap * sizeof *p);
    if (!p) return tg__error_set(err, TG_ENOMEM, "out of memory");
    b->conns = p;
    b->cap_conns = cap;
  }
  ofl_conn *c = tg__calloc(1, sizeof *c);
  if (!c) return tg__error_set(err, TG_ENOMEM, "out of memory");
  snprintf(c->addr, sizeof c->addr, "%s", addr);
  c->idx = b->nconns;
  c->recs = tg__idmap_seq(); /* wire ids are given in sequence */
  /* Workers are the run's own machines: values as large as memory. */
  tg__stream_init(&c->stream, (uint64_t)1 << 62, NULL);
  b->conns[b->nconns++] = c;
  *out = c;
  return TG_OK;
}

void tg__ofl_conn_hello(ofl *b, ofl_conn *c) {
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_HELLO);
  tg__wbuf_bytes(&h, TG__PROTO_MAGIC, 4);
  tg__wbuf_varint(&h, TG_REMOTE_PROTOCOL);
  tg__wbuf_varint(&h, b->keep_min);
  tg__wbuf_cstr(&h, "tgraph");
  tg__wbuf_varint(&h, (uint64_t)c->link->misalign);
  /* Over the worker's Unix socket, offer shared memory (wire/shm.h). */
  if (c->ipc && tg__shm_allowed() && !c->stream.shm) c->stream.shm = tg__shm_new(0);
  if (c->stream.shm) {
    tg__wbuf_u8(&h, 1);
    if (tg__shm_probe_offer(c->stream.shm, &h) != TG_OK) h.oom = true;
  }
  tg__ofl_conn_send(b, c, &h, NULL);
  tg__wbuf_free(&h);
}

int tg__ofl_conn_open(ofl *b, ofl_conn *c, tg_error *err) {
  return b->tr->open(b, c, err);
}

void tg__ofl_conn_close(ofl *b, ofl_conn *c, bool bye) {
  bye = bye && c->link && c->state == CS_READY;
  if (b->tr->close) b->tr->close(b, c, bye);
  if (bye && tg__link_send_copy(c->link, (uint8_t[]){TG__M_BYE}, 1, 0) == TG_OK)
    tg__link_flush(c->link);
  tg__ofl_link_closing(b, c);
  tg__link_close(c->link);
  c->link = NULL;
}

/* Forget what the worker's session knew: definitions, pending messages. */
static void reset_session(ofl *b, ofl_conn *c) {
  for (size_t i = 0; i < c->nbvals; i++) tg_value_unref(c->bvals[i]);
  c->nbvals = 0;
  tg__idmap_free(&c->fns);
  c->nfns = c->nfuncs = c->nfrees = c->nbatch = 0;
  tg__wbuf_reset(&c->funcs);
  tg__wbuf_reset(&c->frees);
  tg__wbuf_reset(&c->batch);
  if (b) tg__ofl_stream_closing(b, c);
  tg__stream_reset(&c->stream);
}

void tg__ofl_conn_free(ofl_conn *c) {
  reset_session(NULL, c); /* the figures were published */
  tg__free(c->bvals);
  tg__wbuf_free(&c->batch);
  tg__wbuf_free(&c->funcs);
  tg__wbuf_free(&c->frees);
  tg__idmap_free(&c->recs);
  tg__free(c->fn_of);
  memset(c, 0, sizeof *c);
}

static bool sent(ofl *b, ofl_conn *c, int rc, uint64_t bytes) {
  if (rc != TG_OK) {
    tg__ofl_conn_lost(b, c, "sending to it failed", false);
    return false;
  }
  atomic_fetch_add(&b->st_sent, bytes);
  return true;
}

bool tg__ofl_conn_send(ofl *b, ofl_conn *c, const tg__wbuf *h, const tg_value *v) {
  uint64_t bytes = 0;
  if (!c->link || h->oom) return false;
  int rc = tg__wire_send(c->link, NULL, 0, h, v, c->peer_mis, &c->stream, &bytes, NULL);
  return sent(b, c, rc, bytes);
}

bool tg__ofl_conn_send_held(ofl *b, ofl_conn *c, const tg__wbuf *h, tg__wire_held *v) {
  uint64_t bytes = 0;
  if (!c->link || h->oom) return false;
  int rc = tg__wire_send_held(c->link, NULL, 0, h, v, c->peer_mis, &c->stream, &bytes, NULL);
  return sent(b, c, rc, bytes);
}

/* ---- functions ------------------------------------------------------------ */

uint64_t tg__ofl_conn_fn(ofl *b, ofl_conn *c, const tg_func *f) {
  (void)b;
  /* Tasks come in runs of one function or two alternating: the last two
   * answer most. */
  if (c->fn_last < c->nfns && c->fn_of[c->fn_last] == f) return c->fn_last;
  size_t last = c->fn_last; /* swapped: the one found is the last now */
  c->fn_last = c->fn_prev;
  c->fn_prev = last;
  if (c->fn_last < c->nfns && c->fn_of[c->fn_last] == f) return c->fn_last;
  uint64_t id1 = (uint64_t)(uintptr_t)tg__idmap_get(&c->fns, (uint64_t)(uintptr_t)f);
  if (id1) return c->fn_last = id1 - 1;
  if (c->nfns == c->cap_fns) {
    size_t cap = c->cap_fns ? c->cap_fns * 2 : 32;
    const tg_func **p = tg__realloc(c->fn_of, cap * sizeof *p);
    if (!p) return UINT64_MAX;
    c->fn_of = p;
    c->cap_fns = cap;
  }
  uint64_t id = c->nfns;
  if (!tg__idmap_put(&c->fns, (uint64_t)(uintptr_t)f, (void *)(uintptr_t)(id + 1)))
    return UINT64_MAX;
  c->fn_last = c->nfns;
  c->fn_of[c->nfns++] = f;
  tg__wbuf_varint(&c->funcs, id);
  tg__wbuf_cstr(&c->funcs, tg_func_name(f));
  tg__wbuf_cstr(&c->funcs, tg_func_version(f));
  tg__wbuf_u8(&c->funcs, f->kind);
  if (f->kind == TG__ORIGIN_PLUGIN) {
    tg__wbuf_bytes(&c->funcs, &f->origin.lo, 8);
    tg__wbuf_bytes(&c->funcs, &f->origin.hi, 8);
    tg__wbuf_cstr(&c->funcs, f->origin_file);
  } else if (f->kind == TG__ORIGIN_BUILTIN) {
    tg__wbuf_cstr(&c->funcs, tg__library_build());
  }
  tg__wbuf_cstr(&c->funcs, f->code_id ? f->code_id : "");
  c->nfuncs++;
  return id;
}

/* ---- flushing ----------------------------------------------------------------- */

static void send_counted(ofl *b, ofl_conn *c, uint8_t type, tg__wbuf *body,
                         uint32_t *n) {
  if (!*n) return;
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, type);
  tg__wbuf_varint(&h, *n);
  tg__wbuf_bytes(&h, body->p, body->len);
  if (body->oom) h.oom = true;
  tg__wbuf_reset(body);
  *n = 0;
  if (h.oom) tg__ofl_conn_lost(b, c, "out of memory", false);
  else tg__ofl_conn_send(b, c, &h, NULL);
  tg__wbuf_free(&h);
}

static void send_batch(ofl *b, ofl_conn *c) {
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_TASKS);
  tg__wbuf_varint(&h, c->batch_run);
  tg__wbuf_varint(&h, c->nbatch);
  tg__wbuf_bytes(&h, c->batch.p, c->batch.len);
  if (c->batch.oom) h.oom = true;
  tg_value *vals = tg_list_take(c->nbvals, c->bvals); /* takes the references */
  c->nbvals = 0;
  atomic_fetch_add(&b->st_tasks, c->nbatch);
  atomic_fetch_add(&b->st_batches, 1);
  tg__wbuf_reset(&c->batch);
  c->nbatch = 0;
  if (!vals || h.oom) tg__ofl_conn_lost(b, c, "out of memory", false);
  else if (tg__ofl_conn_send(b, c, &h, vals)) c->sent_id = c->next_id; /* all went */
  tg_value_unref(vals);
  tg__wbuf_free(&h);
}

void tg__ofl_conn_flush(ofl *b, ofl_conn *c) {
  if (c->state == CS_READY) {
    send_counted(b, c, TG__M_FUNCS, &c->funcs, &c->nfuncs);
    send_counted(b, c, TG__M_FREE, &c->frees, &c->nfrees);
    if (c->nbatch && c->state == CS_READY) send_batch(b, c);
    /* Segments of the worker's that values here let go of. */
    tg__wbuf h = {0}; /* no allocation when there is nothing */
    if (c->state == CS_READY && c->stream.shm && tg__shm_releases(c->stream.shm, &h))
      tg__ofl_conn_send(b, c, &h, NULL);
    tg__wbuf_free(&h);
  }
  /* What a local link's socket did not take goes on later turns. */
  if (c->link && tg__link_flush(c->link) != TG_OK)
    tg__ofl_conn_lost(b, c, "its connection closed", false);
}

void tg__ofl_conn_add(ofl_conn *c, ofl_rec *rec) {
  c->load++;
  c->queued += rec->est;
}

void tg__ofl_conn_remove(ofl_conn *c, ofl_rec *rec) {
  c->load--;
  c->queued -= rec->est;
  if (c->load == 0 || c->queued < 0) c->queued = 0; /* no drift from rounding */
}

/* The bits of kind_key's entry (0: none): estimates are stored in the
 * map as the bits of the double. */
static uint64_t secs_bits(const ofl *b, uint64_t kind_key) {
  if (kind_key == b->secs_key[0]) return b->secs_bits[0];
  if (kind_key == b->secs_key[1]) return b->secs_bits[1];
  return (uint64_t)(uintptr_t)tg__idmap_get(&b->task_secs, kind_key);
}

bool tg__ofl_task_known(const ofl *b, uint64_t kind_key) { return secs_bits(b, kind_key) != 0; }

double tg__ofl_task_secs(const ofl *b, uint64_t kind_key) {
  uint64_t bits = secs_bits(b, kind_key);
  double s;
  memcpy(&s, &bits, sizeof s);
  return bits ? s : 1e-3;
}

void tg__ofl_task_measured(ofl *b, uint64_t kind_key, double secs) {
  void **slot = tg__idmap_slot_of(&b->task_secs, kind_key); /* one lookup per result */
  double s = secs > 1e-9 ? secs : 1e-9, old;
  uint64_t bits = slot ? (uint64_t)(uintptr_t)*slot : 0;
  if (slot) {
    memcpy(&old, &bits, sizeof old);
    s = 0.8 * old + 0.2 * s;
  }
  memcpy(&bits, &s, sizeof bits);
  if (slot) *slot = (void *)(uintptr_t)bits;
  else if (!tg__idmap_put(&b->task_secs, kind_key, (void *)(uintptr_t)bits))
    return; /* a hint: OOM is fine */
  int i = kind_key == b->secs_key[0] ? 0 : 1; /* the map's entry, as it now is */
  if (i == 1 && kind_key != b->secs_key[1]) { /* the older one goes */
    b->secs_key[1] = b->secs_key[0];
    b->secs_bits[1] = b->secs_bits[0];
    i = 0;
  }
  b->secs_key[i] = kind_key;
  b->secs_bits[i] = bits;
}

/* ---- losing a worker --------------------------------------------------------- */

/* The task a local worker was calling when it died (running): it killed
 * the worker. It runs again while it has attempts left (counted as a
 * failed call, the next attempt numbered on), else fails saying how the
 * worker ended. */
static void crashed(ofl *b, ofl_rec *rec, uint32_t attempt, const char *why) {
  tg__run *r = rec->rs->r;
  const tg__gnode *nd = &r->g->nodes[rec->node];
  int attempts = nd->kind == TG__NK_CONCAT || !(nd->fn->flags & TG_FUNC_PURE)
                     ? 1 : 1 + (nd->retries >= 0 ? nd->retries : r->retries);
  bool user = rec->t && !(rec->t->flags & TG__T_INTERNAL);
  /* Earlier crashes were counted when it went again. */
  if (rec->t && !rec->abort && attempt + 1 < (uint32_t)attempts && attempt < 250) {
    rec->crashes = (uint8_t)(attempt + 1);
    if (user) {
      atomic_fetch_add(&r->ran, 1);
      atomic_fetch_add(&r->attempts_failed, 1);
    }
    tg__ofl_rec_resend(b, rec);
    return;
  }
  if (!rec->t) {
    tg__ofl_rec_requeue(b, rec, why); /* a recomputation: made again on demand */
    return;
  }
  char kb[TG__NAME_MAX + 32], msg[600];
  bool pure = nd->kind != TG__NK_CONCAT && (nd->fn->flags & TG_FUNC_PURE);
  /* Said as tcp's loss rule says it (tg__ofl_rec_requeue): impure tasks
   * are never called twice. */
  snprintf(msg, sizeof msg, "%s while running %stask '%s'%s", why, pure ? "" : "impure ",
           tg__run_key(r, rec->node, kb, sizeof kb),
           pure ? "" : "; it was not run again because it is not pure");
  tg__ofl_rec_fail(b, rec, TG_EWORKER, msg);
}

/* Requeue the records sent to c (engine tasks) and drop recomputations.
 * A forked worker's death is charged to the task it was calling alone:
 * the others go again, not counted as losses. */
static void give_back(ofl *b, ofl_conn *c, const char *why, uint64_t running,
                      uint32_t attempt) {
  uint32_t task;
  ofl_rec *owner = running && !tg__idmap_get(&c->recs, running)
                       ? tg__ofl_fold_owner(c, running, &task)
                       : NULL;
  /* A leaf folded into a record (it has none of its own) was the call:
   * it is not folded again, so that it goes with a record of its own,
   * which counts what it does to its workers. */
  if (owner) owner->rs->flags[task] |= RF_ALONE;
  tg__idmap recs = c->recs;
  c->recs = tg__idmap_seq();
  for (size_t i = 0; recs.s && i <= recs.mask; i++) {
    if (!recs.s[i].key) continue;
    ofl_rec *rec = recs.s[i].val;
    if (running && recs.s[i].key == running) crashed(b, rec, attempt, why);
    else if ((b->tr->caps & TG__TR_CHILDREN) && rec->t) tg__ofl_rec_resend(b, rec);
    else tg__ofl_rec_requeue(b, rec, why);
  }
  tg__idmap_free(&recs);
  for (ofl_rec *rec = c->staged; rec; rec = rec->next) rec->replan = true;
  c->load = 0;
  c->queued = 0;
  for (ofl_rec *rec = c->staged; rec; rec = rec->next) tg__ofl_conn_add(c, rec);
}

/* Handles lose c as a holder; fetches from c fail. */
static void forget_holder(ofl *b, ofl_conn *c) {
  for (size_t i = 0; b->handles.s && i <= b->handles.mask; i++) {
    if (!b->handles.s[i].key) continue;
    ofl_handle *h = b->handles.s[i].val;
    if (tg__holders_only(&h->locs, c->idx)) h->lost_with = c->idx + 1; /* for messages */
    tg__holders_del(&h->locs, c->idx);
    if (h->fetching == c->idx) tg__ofl_fetch_done(b, h, NULL);
  }
}

void tg__ofl_conn_lost(ofl *b, ofl_conn *c, const char *why, bool fatal) {
  bool was_ready = c->state == CS_READY;
  snprintf(c->why, sizeof c->why, "%s", why);
  c->fatal = fatal;
  tg__ofl_conn_close(b, c, false);
  char fate[300];
  uint64_t running = 0;
  uint32_t attempt = 0;
  if (b->tr->lost) { /* what became of the worker says more */
    running = b->tr->lost(b, c, &attempt, fate, sizeof fate);
    if (fate[0]) snprintf(c->why, sizeof c->why, "%s", fate);
    why = c->why;
  }
  c->state = CS_IDLE;
  reset_session(b, c);
  if (was_ready) atomic_fetch_add(&b->st_lost, 1);
  give_back(b, c, why, running, attempt);
  forget_holder(b, c);
  /* A fresh socket (a fresh session on the worker), retried in the
   * background by ZeroMQ; a refusal is not retried at once. */
  c->retry_at = tg__now() + (fatal ? 2.0 : 0);
  /* A forked worker that died before its WELCOME would die again: its
   * replacement waits a second (no fork storm). */
  if ((b->tr->caps & TG__TR_CHILDREN) && !was_ready && !fatal) c->retry_at += 1.0;
  c->state = CS_FAILED;
}

void tg__ofl_conn_ban(ofl *b, ofl_conn *c, const char *why) {
  char line[700];
  snprintf(line, sizeof line, "worker dropped for the rest of this executor's life: %s", why);
  if (b->ex->log) b->ex->log(b->ex->log_ctx, c->addr, line);
  else fprintf(stderr, "[%s] %s\n", c->addr, line);
  tg__ofl_conn_lost(b, c, why, true);
  c->retry_at = HUGE_VAL; /* never connected again */
}

/* ---- receiving ----------------------------------------------------------------- */

/* WELCOME's answer to our probe segment (wire/proto.h), read from r; part:
 * the message's first part (who sent it). Each way is used once proven;
 * the worker hears whether its probe opened here (SEG_OK). */
static void shm_welcome(ofl *b, ofl_conn *c, tg__rbuf *r, zmq_msg_t *part) {
  tg__shm *sh = c->stream.shm;
  uint8_t opened = tg__rbuf_u8(r), offered = tg__rbuf_u8(r);
  if (r->bad) { /* a worker that does not know of segments */
    tg__shm_free(sh);
    c->stream.shm = NULL;
    return;
  }
  tg__shm_probe_done(sh, opened == 1);
  tg__shm_set_peer(sh, tg__shm_peer_pid(part));
  bool ok = offered == 1 && tg__shm_probe_try(sh, r);
  tg__shm_set_recv(sh, ok);
  if (offered == 1) {
    tg__wbuf h = {0};
    tg__wbuf_u8(&h, TG__M_SEG_OK);
    tg__wbuf_u8(&h, ok);
    tg__ofl_conn_send(b, c, &h, NULL);
    tg__wbuf_free(&h);
  }
}

static void welcome(ofl *b, ofl_conn *c, tg__rbuf *r, zmq_msg_t *part) {
  const uint8_t *magic = tg__rbuf_bytes(r, 4);
  uint64_t proto = tg__rbuf_varint(r);
  uint8_t status = tg__rbuf_u8(r);
  uint64_t nthreads = tg__rbuf_count(r, 1u << 20);
  char name[TG__MAX_NAME + 1], msg[200];
  tg__rbuf_cstr(r, name, TG__MAX_NAME);
  tg__rbuf_cstr(r, msg, sizeof msg - 1);
  uint64_t mis = tg__rbuf_count(r, TG_ARRAY_ALIGN - 1);
  char why[300];
  if (r->bad || !magic || memcmp(magic, TG__PROTO_MAGIC, 4) != 0) {
    tg__ofl_conn_lost(b, c, "it does not speak the tgraph worker protocol", true);
  } else if (proto != TG_REMOTE_PROTOCOL) {
    snprintf(why, sizeof why, "protocol version mismatch: the worker speaks version "
             "%llu, this program version %d", (unsigned long long)proto,
             TG_REMOTE_PROTOCOL);
    tg__ofl_conn_lost(b, c, why, true);
  } else if (status != 0) {
    snprintf(why, sizeof why, "the worker refused this client: %s", msg);
    tg__ofl_conn_lost(b, c, why, true);
  } else {
    c->state = CS_READY;
    c->offset = NAN; /* a new session: perhaps another worker's clock */
    c->nthreads = nthreads ? (unsigned)nthreads : 1;
    c->peer_mis = (int)mis;
    c->why[0] = '\0';
    c->fatal = false;
    if (c->stream.shm) shm_welcome(b, c, r, part);
  }
}

void tg__ofl_conn_poll(ofl *b, ofl_conn *c) {
  if (b->tr->poll) b->tr->poll(b, c); /* events first: a loss resets c */
  zmq_msg_t *parts = b->parts;
  for (int i = 0; i < 1024 && c->link; i++) {
    size_t n = 0;
    int got = tg__link_recv(c->link, parts, OFL_MAX_PARTS, &n);
    if (got == TG_EIO) { /* a local link: the worker is gone */
      tg__ofl_conn_lost(b, c, "its connection closed", false);
      break;
    }
    if (got == 0 || (got < 0 && got != TG_ELIMIT && got != TG_EPROTO)) break;
    bool too_many = got < 0;
    c->last_rx = tg__now();
    tg__rbuf r;
    tg__rbuf_init(&r, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]));
    uint8_t type = tg__rbuf_u8(&r);
    if (too_many) {
      tg__ofl_conn_lost(b, c, "it sent a malformed message", true);
    } else if (type == TG__M_WELCOME && c->state == CS_CONNECTING) {
      welcome(b, c, &r, &parts[0]);
    } else if (type == TG__M_LEAVE && c->state == CS_READY) {
      uint64_t ms = tg__rbuf_varint(&r); /* absent (an older worker): 0 */
      tg__ofl_leave_start(b, c, r.bad ? 0 : (double)ms / 1000);
    } else if (type == TG__M_ERROR) {
      char msg[TG__MAX_MSG + 1], why[TG__MAX_MSG + 40];
      tg__rbuf_cstr(&r, msg, TG__MAX_MSG);
      snprintf(why, sizeof why, "the worker dropped this client: %s", msg);
      tg__ofl_conn_lost(b, c, why, false);
    } else if (type == TG__M_SEG_FREE && c->state == CS_READY) {
      if (n != 1 || !c->stream.shm || tg__shm_released(c->stream.shm, &r) != TG_OK)
        tg__ofl_conn_lost(b, c, "it sent a malformed message", true);
    } else if (type == TG__M_BULK && c->state == CS_READY) {
      tg_error e;
      tg_error_clear(&e);
      if (tg__stream_recv(&c->stream, parts, n, &e) != TG_OK) {
        char why[sizeof e.msg + 40];
        snprintf(why, sizeof why, "receiving a value from it: %s", e.msg);
        tg__ofl_conn_lost(b, c, e.code == TG_EFORMAT ? "it sent a malformed message" : why,
                      e.code == TG_EFORMAT);
      }
    } else if (c->state == CS_READY) {
      tg__ofl_results_handle(b, c, parts, n);
    }
    for (size_t k = 0; k < n; k++) zmq_msg_close(&parts[k]);
  }
}

void tg__ofl_conn_tick(ofl *b, ofl_conn *c, double now) {
  if (c->state == CS_FAILED && now >= c->retry_at) {
    tg_error err;
    tg_error_clear(&err);
    if (tg__ofl_conn_open(b, c, &err) != TG_OK) {
      tg__ofl_conn_close(b, c, false);
      c->state = CS_FAILED;
      c->retry_at = now + 1;
      snprintf(c->why, sizeof c->why, "%s", err.msg);
    }
    return;
  }
  if (c->state != CS_READY) return;
  if (now - c->last_rx > b->heartbeat) {
    char why[100];
    snprintf(why, sizeof why, "no sign of life for %.1f s (heartbeat)", now - c->last_rx);
    tg__ofl_conn_lost(b, c, why, false);
    return;
  }
  if (now - c->last_ping >= b->heartbeat / 4) {
    tg__wbuf h = {0};
    tg__wbuf_u8(&h, TG__M_PING);
    tg__wbuf_varint(&h, (uint64_t)(now * 1000));
    c->last_ping = now;
    tg__ofl_conn_send(b, c, &h, NULL);
    tg__wbuf_free(&h);
  }
}

