/* lib/offload/dispatch.c: sending tasks to workers. For each ready
 * task, released in the plan's order while the run's results alive stay
 * under its bound (memory order): its arguments' handles (results kept on
 * workers, large constants), the worker where it costs least (bytes and
 * round trips to move, then load), moving what that worker lacks (a
 * constant is sent, a result is fetched from its holder and sent on, a
 * lost result is computed again there from the graph), and the task
 * record in that worker's next batch; then its dependents that can run
 * there too, sent ahead of the engine (offload/chain.c). offload/engine.h tells
 * the design. */
#include <stdio.h>
#include <string.h>

#include "offload/engine.h"
#include "wire/wire.h"
#include "value/value_internal.h"
#include "memo/memo.h"
#include "graph/call.h"
#include "registry/taskhost.h"

/* ---- records ------------------------------------------------------------- */

ofl_rec *tg__ofl_rec_new(ofl *b, ofl_run *rs, tg__task *t, uint32_t nargs) {
  size_t n = nargs ? nargs : 1;
  size_t size = sizeof(ofl_rec) + n * (sizeof(tg_value *) + sizeof(ofl_handle *));
  ofl_rec *rec = tg__recycle_fits(&b->rec_blocks, size) ? tg__recycle_get(&b->rec_blocks)
                                                       : tg__malloc(size);
  if (!rec) return NULL;
  memset(rec, 0, size);
  rec->args = (tg_value **)(rec + 1);
  rec->hargs = (ofl_handle **)(rec->args + n);
  rec->t = t;
  rec->rs = rs;
  rec->nargs = nargs;
  rec->conn = -1;
  rs->users++;
  if (t) {
    rs->live++;
    rs->inflight++;
  }
  return rec;
}

void tg__ofl_expect(ofl *b, ofl_rec *rec, const tg__gnode *nd) {
  rec->kind_key = (uint64_t)(uintptr_t)nd->fn + nd->kind;
  rec->est = tg__ofl_task_secs(b, rec->kind_key);
}

static void release_args(ofl *b, ofl_rec *rec) {
  for (uint32_t j = 0; j < rec->nargs; j++) {
    if (!rec->hargs[j]) continue; /* inline: no call per argument */
    tg__ofl_handle_unref(b, rec->hargs[j]);
    rec->hargs[j] = NULL;
  }
}

static void detach(ofl *b, ofl_rec *rec) {
  if (rec->conn >= 0) tg__ofl_conn_remove(b->conns[rec->conn], rec);
  rec->conn = -1;
}

/* rec is no longer on any worker: off its load, its argument handles let
 * go, as before it was first placed (to be placed again or ended). */
static void unsend(ofl *b, ofl_rec *rec) {
  detach(b, rec);
  release_args(b, rec);
  rec->id = 0;
  rec->waits = 0;
  rec->replan = false;
}

void tg__ofl_rec_free(ofl *b, ofl_rec *rec) {
  ofl_run *rs = rec->rs;
  tg__ofl_fold_release(b, rec);
  release_args(b, rec);
  tg__ofl_handle_unref(b, rec->out);
  if (rec->quiet && rs->silent[rec->task] == rec) rs->silent[rec->task] = NULL;
  tg__ofl_quiet_clear(rs, rec);
  if (rec->early) { /* the engine will send its task itself */
    rs->early[rec->task] = NULL;
    rs->nearly--;
    if (rec->done && rec->dval) tg__run_live(rs->r, -1); /* counted while kept here */
    if (rec->parked) tg__ofl_heap_repush(b, rec->parked);
    rec->parked = NULL;
  }
  if (rec->dval) tg_value_unref(rec->dval); /* kept replies only: no call per record */
  if (rec->dmsg) tg__free(rec->dmsg);
  if (rec->t && !rec->orphan) {
    rs->live--;
    if (!rec->done) tg__ofl_rec_off_worker(rs, rec);
  }
  tg__ofl_run_unuse(b, rs);
  size_t n = rec->nargs ? rec->nargs : 1;
  if (tg__recycle_fits(&b->rec_blocks,
                       sizeof(ofl_rec) + n * (sizeof(tg_value *) + sizeof(ofl_handle *))))
    tg__recycle_put(&b->rec_blocks, rec);
  else
    tg__free(rec);
}

void tg__ofl_rec_fail(ofl *b, ofl_rec *rec, int code, const char *msg) {
  detach(b, rec);
  if (rec->t && !rec->early && !rec->orphan) {
    tg__task_end(&b->w, rec->t, code, NULL, msg);
    tg__ofl_take_ready(b);
  }
  tg__ofl_rec_free(b, rec);
}

/* Whether nd's call may run again: its function is pure (a map's chunk
 * calls the map's function; a concatenation is ours, without effects). */
static bool rerunnable(const tg__gnode *nd) {
  return nd->kind == TG__NK_CONCAT || (nd->fn->flags & TG_FUNC_PURE);
}

/* rec's impure task was sent to a worker that is gone (why): it may have
 * run, perhaps it still runs there; running it again could repeat its
 * effects. */
static void fail_impure(ofl *b, ofl_rec *rec, const char *addr, const char *why) {
  const tg__run *r = rec->rs->r;
  char kb[TG__NAME_MAX + 32], msg[TG__NAME_MAX + 1024];
  snprintf(msg, sizeof msg, "worker %s was lost while running impure task '%s' (%.400s); it "
           "was not run again because it is not pure", addr,
           tg__run_key(r, rec->node, kb, sizeof kb), why);
  tg__ofl_rec_fail(b, rec, TG_EWORKER, msg);
}

void tg__ofl_rec_requeue(ofl *b, ofl_rec *rec, const char *why) {
  if (rec->early || rec->orphan) { /* pre-sent: the engine sends it when ready */
    detach(b, rec);
    tg__ofl_rec_free(b, rec);
    return;
  }
  bool sent = rec->conn >= 0 && rec->id && rec->id <= b->conns[rec->conn]->sent_id;
  if (sent && rec->t && !rec->abort && !rerunnable(&rec->rs->r->g->nodes[rec->node])) {
    fail_impure(b, rec, b->conns[rec->conn]->addr, why);
    return;
  }
  unsend(b, rec);
  if (!rec->t || rec->abort) { /* recomputations are made again on demand */
    if (rec->t) tg__ofl_rec_fail(b, rec, TG_ECANCELED, "cancelled");
    else tg__ofl_rec_free(b, rec);
    return;
  }
  if (++rec->losses > OFL_MAX_LOSSES) {
    char msg[400];
    snprintf(msg, sizeof msg, "lost its worker %d times (last: %s)", rec->losses, why);
    tg__ofl_rec_fail(b, rec, TG_EWORKER, msg);
    return;
  }
  atomic_fetch_add(&b->st_retried, 1);
  tg__ofl_retry_push(b, rec);
}

void tg__ofl_rec_resend(ofl *b, ofl_rec *rec) {
  if (rec->early || rec->orphan) {
    tg__ofl_rec_requeue(b, rec, "sent again");
    return;
  }
  if (rec->abort) {
    tg__ofl_rec_fail(b, rec, TG_ECANCELED, "cancelled");
    return;
  }
  unsend(b, rec);
  rec->store = 0;
  tg__ofl_retry_push(b, rec);
}

/* ---- the batch record ---------------------------------------------------- */

static int attempts_of(const tg__run *r, const tg__gnode *nd) {
  if (nd->kind == TG__NK_CONCAT || !rerunnable(nd)) return 1;
  return 1 + (nd->retries >= 0 ? nd->retries : r->retries);
}

/* A value sent in the record (an int) or in the batch's value list. */
static void put_value(ofl_conn *c, tg_value *v) {
  tg__wbuf *w = &c->batch;
  if (tg__is_imm(v) || tg_value_type(v) == TG_INT) { /* in the record: no list entry */
    tg__wbuf_u8(w, TG__ARG_INT);
    tg__wbuf_svarint(w, tg__is_imm(v) ? tg__imm_get(v) : tg_value_int(v));
    return;
  }
  tg__wbuf_u8(w, TG__ARG_INLINE);
  tg__wbuf_varint(w, c->nbvals);
  if (c->nbvals == c->cap_bvals) {
    size_t cap = c->cap_bvals ? c->cap_bvals * 2 : 256;
    tg_value **p = tg__realloc(c->bvals, cap * sizeof *p);
    if (!p) {
      w->oom = true;
      return;
    }
    c->bvals = p;
    c->cap_bvals = cap;
  }
  c->bvals[c->nbvals++] = tg_value_ref(v);
}

static void put_arg(ofl_conn *c, ofl_rec *rec, uint32_t j, const tg__garg *a) {
  ofl_handle *h = rec->hargs[j];
  tg__wbuf *w = &c->batch;
  if (!h) {
    put_value(c, rec->args[j]);
    return;
  }
  if (h->kind == H_ELEM) { /* an item the engine selected */
    tg__wbuf_u8(w, h->key ? TG__ARG_ENTRY : TG__ARG_ELEM);
    tg__wbuf_varint(w, h->parent->id);
    if (h->key) tg__wbuf_cstr(w, h->key);
    else tg__wbuf_svarint(w, h->index);
  } else if (!rec->t && a->kind == TG_ARG_ITEM) { /* recomputation: from the graph */
    tg__wbuf_u8(w, TG__ARG_ELEM);
    tg__wbuf_varint(w, h->id);
    tg__wbuf_svarint(w, a->u.index);
  } else if (!rec->t && a->kind == TG_ARG_KEY) {
    tg__wbuf_u8(w, TG__ARG_ENTRY);
    tg__wbuf_varint(w, h->id);
    tg__wbuf_cstr(w, rec->rs->r->g->keys + a->u.key);
  } else {
    tg__wbuf_u8(w, TG__ARG_OBJ);
    tg__wbuf_varint(w, h->id);
  }
}

/* Flags, store id and time threshold of rec on c. */
static uint8_t flags_of(ofl *b, ofl_conn *c, ofl_rec *rec, const tg__gnode *nd,
                        uint64_t *min_us) {
  *min_us = 0;
  if (!rec->t) {
    rec->store = rec->out->id;
    return TG__RF_KEEP;
  }
  uint8_t chained = tg__ofl_chain_flags(b, c, rec);
  if (chained) return chained; /* its dependents follow it there */
  const tg__run *r = rec->rs->r;
  uint8_t f = 0;
  if ((rec->t->flags & TG__T_OUTPUT) || rec->whole) {
    f |= TG__RF_RETURN;
  } else {
    rec->store = b->next_id++;
    if (rec->rs->flags[rec->task] & RF_SELECTED) f |= TG__RF_SHAPE;
  }
  /* A result that comes back (an output, or one the cache may store) and
   * that other tasks use stays there too: they need not send it back. */
  if (tg__ofl_run_dependents(rec->rs, rec->task)) {
    if (!rec->store) rec->store = b->next_id++;
    f |= TG__RF_ALSO_KEEP;
  }
  tg__memo *m = r->memo;
  if (m && m->t0 && m->t0[rec->task] > 0) { /* the cache may store it: get it back */
    f |= TG__RF_TIMED;
    if (nd->cache != 1 && m->min_seconds > 0) *min_us = (uint64_t)(m->min_seconds * 1e6);
  }
  return f;
}

/* Watch task id on conn until deadline; false when out of memory. */
static bool watch_until(ofl *b, int conn, uint64_t id, double deadline) {
  if (b->ntimed == b->cap_timed) {
    size_t cap = b->cap_timed ? b->cap_timed * 2 : 16;
    struct ofl_timed *p = tg__realloc(b->timed, cap * sizeof *p);
    if (!p) return false;
    b->timed = p;
    b->cap_timed = cap;
  }
  b->timed[b->ntimed++] = (struct ofl_timed){conn, id, deadline};
  return true;
}

/* Remember when rec's attempts are over (plus a grace for the reply);
 * out of memory, only the worker's own check applies. */
static void watch(ofl *b, ofl_conn *c, ofl_rec *rec, double seconds) {
  watch_until(b, c->idx, rec->id, tg__now() + seconds + 0.5);
}

void tg__ofl_expire_tasks(ofl *b, double now) {
  size_t k = 0;
  for (size_t i = 0; i < b->ntimed; i++) {
    struct ofl_timed x = b->timed[i];
    ofl_conn *c = b->conns[x.conn];
    ofl_rec *rec = tg__idmap_get(&c->recs, x.id);
    if (!rec || !rec->t) continue; /* done, or sent again under a new id */
    if (now < x.deadline) {
      b->timed[k++] = x;
      continue;
    }
    const tg__gnode *nd = &rec->rs->r->g->nodes[rec->node];
    char msg[400], kill[300] = "";
    /* A worker the transport can stop is killed (and replaced). */
    if (b->tr->kill) b->tr->kill(b, c, now - rec->sent, kill, sizeof kill);
    snprintf(msg, sizeof msg, "timed out after %g s%s%s", (double)nd->timeout,
             kill[0] ? ": " : "", kill);
    tg__idmap_del(&c->recs, x.id);
    tg__ofl_rec_fail(b, rec, TG_ETIMEDOUT, msg);
    if (kill[0]) tg__ofl_conn_lost(b, c, kill, false);
  }
  b->ntimed = k;
}

/* The fixed fields of a task's record and its key, into c's batch. */
static void put_head(ofl_conn *c, const tg__run *r, const tg__gnode *nd, uint32_t node,
                     uint64_t id, uint64_t fn, uint8_t flags, uint64_t store, uint64_t min_us,
                     uint8_t crashes, uint32_t nargs) {
  tg__wbuf *w = &c->batch;
  /* A generated key goes as its node id (the worker formats it: it has
   * the function's name and the kind), a user's as its text. */
  const char *key = nd->key ? tg__graph_key(r->g, node, NULL, 0) : NULL;
  size_t kl = key ? strlen(key) : 0;
  /* The record's fixed fields and key, in room made once: at most 12
   * varints of 10 bytes and two bytes. Out of memory, the batch is marked
   * so (the flush then drops c) and nothing is written. */
  if (!tg__wbuf_reserve(w, 12 * 10 + 2 + kl)) return;
  tg__wbuf_varint_in(w, id);
  tg__wbuf_varint_in(w, fn);
  w->p[w->len++] = nd->kind;
  tg__wbuf_varint_in(w, nd->aux);
  tg__wbuf_varint_in(w, (uint64_t)attempts_of(r, nd));
  tg__wbuf_varint_in(w, nd->timeout > 0 ? (uint64_t)(nd->timeout * 1000 + 0.999) : 0);
  w->p[w->len++] = flags;
  tg__wbuf_varint_in(w, store);
  tg__wbuf_varint_in(w, min_us);
  if (crashes) tg__wbuf_varint_in(w, crashes);
  tg__wbuf_varint_in(w, key ? 0 : (uint64_t)tg__graph_key_id(r->g, node) + 1);
  if (key) {
    tg__wbuf_varint_in(w, kl);
    memcpy(w->p + w->len, key, kl);
    w->len += kl;
  }
  tg__wbuf_varint_in(w, nargs);
}

/* Room for a record of run rs in c's batch (one run per message): false
 * when the flush that made it lost c. */
static bool batch_room(ofl *b, ofl_conn *c, const ofl_run *rs) {
  if (c->nbatch && (c->batch_run != rs->seq || c->nbatch >= OFL_BATCH_MAX))
    tg__ofl_conn_flush(b, c);
  return c->state == CS_READY;
}

uint64_t tg__ofl_append_folded(ofl *b, ofl_conn *c, ofl_run *rs, uint32_t ti, uint64_t store) {
  if (!batch_room(b, c, rs)) return 0;
  const tg__run *r = rs->r;
  const tg__task *t = &r->plan.tasks[ti];
  const tg__gnode *nd = &r->g->nodes[t->node];
  uint64_t fn = tg__ofl_conn_fn(b, c, nd->fn);
  if (fn == UINT64_MAX) return 0;
  uint64_t id = ++c->next_id;
  c->batch_run = rs->seq;
  put_head(c, r, nd, t->node, id, fn, TG__RF_KEEP | TG__RF_QUIET, store, 0, 0, nd->nargs);
  const tg__garg *a = tg__node_args(r->g, nd);
  for (uint32_t j = 0; j < nd->nargs; j++) put_value(c, a[j].u.value); /* constants only */
  if (++c->nbatch == 1 || r->on_event) c->batch_t = tg__now();
  return id;
}

void tg__ofl_append(ofl *b, ofl_conn *c, ofl_rec *rec) {
  if (!batch_room(b, c, rec->rs)) { /* the flush lost c */
    rec->conn = -1; /* its load went with c's (give_back) */
    tg__ofl_rec_requeue(b, rec, c->why);
    return;
  }
  const tg__run *r = rec->rs->r;
  const tg__gnode *nd = &r->g->nodes[rec->node];
  const tg__garg *a = tg__node_args(r->g, nd);
  rec->rs->checked = 0; /* what chain_deps found may change with this send */
  uint64_t fn = tg__ofl_conn_fn(b, c, nd->fn), min_us;
  rec->id = ++c->next_id;
  if (fn == UINT64_MAX || !tg__idmap_put(&c->recs, rec->id, rec)) {
    tg__ofl_rec_fail(b, rec, TG_ENOMEM, "out of memory sending a task");
    return;
  }
  c->batch_run = rec->rs->seq;
  if (rec->quiet && rec->rs->silent[rec->task] == rec) rec->rs->silent[rec->task] = NULL;
  tg__ofl_quiet_clear(rec->rs, rec); /* sent again: decided again */
  uint8_t flags = flags_of(b, c, rec, nd, &min_us);
  if (rec->crashes) flags |= TG__RF_RESUME; /* attempts lost with a worker */
  rec->flags = flags; /* what its reply may be */
  tg__wbuf *w = &c->batch;
  put_head(c, r, nd, rec->node, rec->id, fn, flags, rec->store, min_us, rec->crashes,
           rec->nargs);
  const tg__runplan *p = &r->plan;
  ofl_rec *const *fold_of = rec->fold ? rec->rs->fold_of : NULL;
  for (uint32_t j = 0; j < rec->nargs; j++) {
    if (rec->early && a[j].kind == TG_ARG_NODE) { /* kept here, by its id */
      uint32_t pi = p->task_of[a[j].node];
      /* A folded input is named once: this is its last use. */
      bool last = (fold_of && fold_of[pi] == rec) || tg__ofl_last_use(rec->rs, rec, a, j);
      tg__wbuf_u8(w, last ? TG__ARG_OBJ_LAST : TG__ARG_OBJ);
      tg__wbuf_varint(w, rec->rs->bound_id[pi]);
    } else {
      put_arg(c, rec, j, &a[j]);
    }
  }
  c->nbatch++;
  if (rec->t && !rec->started && !rec->early) { /* now that its worker is known */
    rec->started = true;
    tg__task_started(&b->w, rec->t, c->idx);
  }
  /* One clock reading per batch: `sent` need only come before the message
   * leaves (offload/results.c bounds the worker's clock with it). With events,
   * each record reads it after its STARTED: its calls are placed after it. */
  if (c->nbatch == 1 || r->on_event) c->batch_t = tg__now();
  rec->sent = c->batch_t;
  if (nd->timeout > 0 && rec->t) watch(b, c, rec, nd->timeout * attempts_of(r, nd));
  if ((flags & TG__RF_KEEP) && rec->t) tg__ofl_presend_stacked(b, rec->rs);
}

/* ---- moving inputs --------------------------------------------------------- */

static void put(ofl *b, ofl_conn *c, ofl_handle *h) {
  tg__wbuf w = {0};
  tg__wbuf_u8(&w, TG__M_PUT);
  tg__wbuf_varint(&w, h->id);
  if (h->held ? tg__ofl_conn_send_held(b, c, &w, h->held) : tg__ofl_conn_send(b, c, &w, h->local)) {
    tg__holders_add(&h->locs, c->idx); /* out of memory: put again later */
    if (h->kind == H_OBJ) { /* a result sent on to another worker */
      atomic_fetch_add(&b->st_moved_n, 1);
      atomic_fetch_add(&b->st_moved, h->bytes);
    }
  }
  tg__wbuf_free(&w);
}

static void fetch(ofl *b, ofl_handle *h, ofl_rec *rec) {
  if (h->nwait == h->cap_wait) {
    size_t cap = h->cap_wait ? h->cap_wait * 2 : 4;
    ofl_rec **p = tg__realloc(h->waiters, cap * sizeof *p);
    if (!p) {
      rec->replan = true; /* try again later */
      return;
    }
    h->waiters = p;
    h->cap_wait = cap;
  }
  if (h->fetching < 0) {
    for (int i = 0; i < b->nconns && h->fetching < 0; i++) {
      if (!tg__holders_has(&h->locs, i) || b->conns[i]->state != CS_READY) continue;
      tg__wbuf w = {0};
      tg__wbuf_u8(&w, TG__M_FETCH);
      tg__wbuf_varint(&w, h->id);
      if (tg__ofl_conn_send(b, b->conns[i], &w, NULL)) h->fetching = i;
      tg__wbuf_free(&w);
    }
    if (h->fetching < 0) {
      rec->replan = true;
      return;
    }
  }
  h->waiters[h->nwait++] = rec;
  rec->waits++;
}

static void rebuild(ofl *b, ofl_conn *c, ofl_handle *h);

/* Make h available on c for rec (now, or rec waits for a fetch). */
static void ensure(ofl *b, ofl_conn *c, ofl_rec *rec, ofl_handle *h) {
  if (h->kind == H_ELEM) h = h->parent;
  if (tg__holders_has(&h->locs, c->idx)) return;
  if (h->local || h->held) put(b, c, h);
  else if (tg__holders_any(&h->locs)) fetch(b, h, rec);
  else rebuild(b, c, h);
}

static void staged_done(ofl *b, ofl_rec *rec) {
  ofl_conn *c = b->conns[rec->conn];
  for (ofl_rec **p = &c->staged; *p; p = &(*p)->next)
    if (*p == rec) {
      *p = rec->next;
      break;
    }
  rec->next = NULL;
  if (rec->abort) tg__ofl_rec_requeue(b, rec, "cancelled");
  else if (rec->replan || c->state != CS_READY) tg__ofl_rec_requeue(b, rec, c->why);
  else tg__ofl_append(b, c, rec);
}

void tg__ofl_fetch_done(ofl *b, ofl_handle *h, tg__wire_held *v) {
  int from = h->fetching;
  bool rescue = h->rescue;
  h->fetching = -1;
  h->rescue = false;
  if (rescue) tg__ofl_leave_fetched(b, from);
  if (v) {
    tg__wire_held_free(h->held);
    h->held = v;
    h->moved_from = from;
  } else if (from >= 0) {
    tg__holders_del(&h->locs, from); /* it does not have it after all */
  }
  ofl_rec **w = h->waiters;
  size_t n = h->nwait;
  h->waiters = NULL;
  h->nwait = h->cap_wait = 0;
  tg__ofl_handle_ref(h); /* the waiters may release the last reference */
  for (size_t i = 0; i < n; i++) {
    ofl_rec *rec = w[i];
    rec->waits--;
    if (!v) rec->replan = true;
    else if (!rec->replan && !rec->abort && b->conns[rec->conn]->state == CS_READY)
      ensure(b, b->conns[rec->conn], rec, h);
    if (rec->waits == 0) staged_done(b, rec);
  }
  tg__free(w);
  if (h->kind == H_OBJ && !rescue) { /* sent on: no need to keep a copy here */
    tg__wire_held_free(h->held);
    h->held = NULL;
  }
  tg__ofl_handle_unref(b, h);
}

void tg__ofl_value_refused(ofl *b, ofl_conn *c, ofl_handle *h, const char *why) {
  tg__holders_del(&h->locs, c->idx); /* not stored there */
  tg__wire_held_free(h->held); /* a copy of the same bytes */
  h->held = NULL;
  tg__ofl_handle_ref(h); /* the ban may let the run's hold of it go */
  int from = h->moved_from;
  if (from >= 0 && from < b->nconns && b->conns[from]->state == CS_READY) {
    char kb[TG__NAME_MAX + 32], msg[TG__NAME_MAX + 1024];
    const ofl_run *rs = h->run;
    snprintf(msg, sizeof msg, "the result of task '%s' it sent does not decode (worker %s "
             "refused it: %.400s)",
             rs && rs->live ? tg__run_key(rs->r, rs->r->plan.tasks[h->task].node, kb, sizeof kb)
                            : "?",
             c->addr, why);
    tg__ofl_conn_ban(b, b->conns[from], msg); /* what it holds is lost: made again */
  }
  if (c->state == CS_READY && !tg__holders_has(&h->locs, c->idx)) rebuild(b, c, h);
  tg__ofl_handle_unref(b, h);
}

/* ---- recomputing lost results ---------------------------------------------- */

/* The live handle of task ti's result (a new reference), or NULL. */
static ofl_handle *producer(ofl_run *rs, uint32_t ti) {
  ofl_handle *h = rs->handle_of[ti];
  return h && tg__ofl_handle_ref_alive(h) ? h : NULL;
}

/* The handle of task ti's result (a new reference): its live one, or a
 * new one naming it nowhere when it was released or never made here (a
 * quiet task's, tg__ofl_gone), to be computed again; NULL out of memory. */
static ofl_handle *producer_or_new(ofl *b, ofl_run *rs, uint32_t ti) {
  ofl_handle *h = producer(rs, ti);
  if (!h && (h = tg__ofl_handle_new(b, H_OBJ, 0))) {
    h->run = rs;
    h->task = ti;
    rs->users++;
    rs->handle_of[ti] = h;
  }
  return h;
}

/* A recomputation of x on c; its inputs are there already. */
static void emit(ofl *b, ofl_conn *c, ofl_handle *x) {
  ofl_run *rs = x->run;
  tg__run *r = rs->r;
  const tg__runplan *p = &r->plan;
  uint32_t node = p->tasks[x->task].node;
  const tg__gnode *nd = &r->g->nodes[node];
  const tg__garg *a = tg__node_args(r->g, nd);
  char kb[TG__NAME_MAX + 32];
  if (++rs->rebuilds[x->task] > OFL_MAX_REBUILDS) {
    tg__run_stop(r, TG_EWORKER, node, "task '%s': its result was lost with its worker "
                 "%d times", tg__run_key(r, node, kb, sizeof kb), OFL_MAX_REBUILDS);
    return;
  }
  ofl_rec *rec = tg__ofl_rec_new(b, rs, NULL, nd->nargs);
  if (!rec) return;
  rec->task = x->task;
  rec->node = node;
  tg__ofl_expect(b, rec, nd);
  tg__ofl_handle_ref(x);
  rec->out = x;
  for (uint32_t j = 0; j < nd->nargs; j++) {
    int code;
    const char *m;
    if (a[j].kind == TG_ARG_VALUE) {
      rec->args[j] = a[j].u.value;
      if (tg__wire_estimate(rec->args[j], b->keep_min) >= b->keep_min &&
          (rec->hargs[j] = tg__ofl_run_const(b, rs, rec->args[j]))) {
        tg__ofl_handle_ref(rec->hargs[j]);
        ensure(b, c, rec, rec->hargs[j]);
      }
    } else if (a[j].kind == TG_ARG_FUTURE) {
      tg__future_outcome(a[j].u.future, &code, &rec->args[j], &m);
      if (!rec->args[j]) rec->args[j] = tg_null(); /* failed: the run stops */
    } else {
      rec->hargs[j] = producer(rs, p->task_of[a[j].node]); /* made on c before */
    }
  }
  tg__holders_add(&x->locs, c->idx); /* out of memory: made again when needed */
  atomic_fetch_add(&b->st_recomputed, 1);
  rec->conn = c->idx;
  tg__ofl_conn_add(c, rec);
  tg__ofl_append(b, c, rec);
}

/* Whether task ti of rs can be computed from the graph again (its
 * function being pure: rerunnable). */
static bool recomputable(const ofl_run *rs, uint32_t ti) {
  const tg__runplan *p = &rs->r->plan;
  if (p->tasks[ti].flags & TG__T_CACHED) return false; /* its inputs were never here */
  const tg__gnode *nd = &rs->r->g->nodes[p->tasks[ti].node];
  if (!rerunnable(nd)) return false;
  const tg__garg *a = tg__node_args(rs->r->g, nd);
  for (uint32_t j = 0; j < nd->nargs; j++)
    if (tg__arg_is_node(a[j].kind) && p->task_of[a[j].node] == UINT32_MAX) return false;
  return true;
}

/* Lost result h cannot be made again: its run stops, naming why. */
static void lost_for_good(ofl *b, const ofl_handle *h) {
  ofl_run *rs = h->run;
  uint32_t node = rs->r->plan.tasks[h->task].node;
  char kb[TG__NAME_MAX + 32], with[400] = "its worker";
  const char *key = tg__run_key(rs->r, node, kb, sizeof kb);
  if (h->lost_with > 0) {
    const ofl_conn *c = b->conns[h->lost_with - 1];
    snprintf(with, sizeof with, c->why[0] ? "worker %s (%.300s)" : "worker %s", c->addr,
             c->why);
  }
  if (!rerunnable(&rs->r->g->nodes[node]))
    tg__run_stop(rs->r, TG_EWORKER, node, "task '%s': its result was lost with %s and it "
                 "was not run again because it is not pure", key, with);
  else
    tg__run_stop(rs->r, TG_EWORKER, node, "task '%s': its result was lost with %s and "
                 "cannot be computed again here", key, with);
}

typedef struct frame {
  ofl_handle *h; /* a reference */
  uint32_t j;    /* next argument to look at */
} frame;

/* Compute lost result h again on c, with whatever of its upstream is not
 * on c (depth first, inputs before their consumers). */
static void rebuild(ofl *b, ofl_conn *c, ofl_handle *h) {
  frame *st = tg__malloc(16 * sizeof *st);
  size_t n = 0, cap = 16;
  if (!st) return;
  tg__ofl_handle_ref(h);
  st[n++] = (frame){h, 0};
  while (n) {
    frame *f = &st[n - 1];
    ofl_run *rs = f->h->run;
    const tg__runplan *p = &rs->r->plan;
    const tg__gnode *nd = &rs->r->g->nodes[p->tasks[f->h->task].node];
    const tg__garg *a = tg__node_args(rs->r->g, nd);
    ofl_handle *next = NULL;
    if (!recomputable(rs, f->h->task) || tg__run_stopped(rs->r)) {
      lost_for_good(b, f->h);
      f->j = nd->nargs;
    }
    for (; f->j < nd->nargs && !next; f->j++) {
      if (!tg__arg_is_node(a[f->j].kind)) continue;
      uint32_t pi = p->task_of[a[f->j].node];
      ofl_handle *ph = producer(rs, pi);
      if (ph && tg__holders_has(&ph->locs, c->idx)) {
        tg__ofl_handle_unref(b, ph);
        continue;
      }
      next = ph ? ph : producer_or_new(b, rs, pi); /* released: make it again */
    }
    if (next) {
      if (n == cap) {
        frame *s = tg__realloc(st, 2 * cap * sizeof *st);
        if (!s) {
          tg__ofl_handle_unref(b, next);
          break;
        }
        st = s;
        cap *= 2;
      }
      st[n++] = (frame){next, 0};
      continue;
    }
    if (!tg__run_stopped(rs->r)) emit(b, c, f->h);
    tg__ofl_handle_unref(b, f->h);
    n--;
  }
  while (n) tg__ofl_handle_unref(b, st[--n].h);
  tg__free(st);
}

/* ---- choosing a worker ------------------------------------------------------ */

/* The worker where rec costs least: seconds to move its inputs there
 * (about 1 GB/s), plus when it would start and end there (the expected
 * seconds of what is queued, per thread, then its own). Expected times are
 * per function, so that a worker busy with long tasks is not taken for
 * one that runs short ones. When the workers have more threads than
 * this machine has processors (loopback workers sharing them, or many
 * messages for this one thread to send), a worker with no message begun
 * this pass costs one more (b->msg_secs): tiny tasks go in batches, each
 * worker woken once for many, not one message per worker per pass. With
 * few workers the cost is 0: spreading tasks at once adds processors. A
 * leaving worker is one only if rec would end in its window. -1 when none
 * has room for rec. */
static int choose(ofl *b, const ofl_rec *rec) {
  int best = -1;
  double best_cost = 0;
  /* Without handles (inline arguments only) no worker has anything to
   * fetch: the walk over them, per worker, is skipped. */
  uint32_t nh = 0;
  for (uint32_t j = 0; j < rec->nargs; j++) nh += rec->hargs[j] != NULL;
  for (int i = 0; i < b->nconns; i++) {
    const ofl_conn *c = b->conns[i];
    if (!tg__ofl_conn_has_room(c) || (c->leaving && !tg__ofl_leave_fits(b, b->conns[i], rec)))
      continue;
    double miss = 0, fetches = 0;
    for (uint32_t j = 0; nh && j < rec->nargs; j++) {
      const ofl_handle *h = rec->hargs[j];
      if (h && h->kind == H_ELEM) h = h->parent;
      bool any = h && tg__holders_any(&h->locs);
      if (h && !tg__holders_has(&h->locs, i) && (any || h->kind == H_CONST)) {
        miss += (double)h->bytes;
        fetches += any && !h->local && !h->held; /* a round trip through here first */
      }
    }
    double cost = miss * 1e-9 + fetches * 1e-4 + (c->queued + rec->est) / c->nthreads +
                  (c->nbatch ? 0 : b->msg_secs);
    if (best < 0 || cost < best_cost) {
      best = i;
      best_cost = cost;
    }
  }
  return best;
}

/* The handles of rec's arguments (results on workers, large constants);
 * false when out of memory for one that must be made again here. */
static bool find_handles(ofl *b, ofl_rec *rec) {
  const tg__run *r = rec->rs->r;
  const tg__gnode *nd = &r->g->nodes[rec->node];
  const tg__garg *a = tg__node_args(r->g, nd);
  for (uint32_t j = 0; j < rec->nargs; j++) {
    /* A quiet task's result, dropped on its worker after its one use (rec,
     * sent again now): made again where rec goes. */
    if (rec->args[j] == tg__ofl_gone() && a[j].kind == TG_ARG_NODE &&
        r->plan.task_of[a[j].node] != UINT32_MAX) {
      rec->hargs[j] = producer_or_new(b, rec->rs, r->plan.task_of[a[j].node]);
      if (!rec->hargs[j]) return false; /* sent inline, it would be a null */
      continue;
    }
    ofl_handle *h = tg__ofl_handle_of_value(b, rec->args[j]);
    /* An item the engine selected (only item and key arguments lead to
     * one): the graph says which. */
    if (h && h->kind == H_ITEMS) {
      rec->hargs[j] = tg__ofl_handle_item(b, rec->rs, h->parent, &a[j]);
      continue;
    }
    /* A large constant is sent to a worker once, then named; a result
     * that came back is named where it is still kept (tg__ofl_run_const_held). */
    if (!h && a[j].kind == TG_ARG_VALUE &&
        tg__wire_estimate(rec->args[j], b->keep_min) >= b->keep_min)
      h = tg__ofl_run_const(b, rec->rs, rec->args[j]);
    else if (!h && a[j].kind != TG_ARG_VALUE)
      h = tg__ofl_run_const_find(rec->rs, rec->args[j]);
    if (h) {
      tg__ofl_handle_ref(h);
    } else if (a[j].kind == TG_ARG_ITEM || a[j].kind == TG_ARG_KEY) {
      h = tg__ofl_run_held_item(b, rec->rs, &a[j]); /* named in the held whole */
    }
    rec->hargs[j] = h;
  }
  return true;
}

/* Place rec on a worker; false when none can take it (only leaving ones
 * have room, and it would not end in their windows): rec is then the
 * first to go next time. */
static bool place(ofl *b, ofl_rec *rec) {
  if (!find_handles(b, rec)) {
    tg__ofl_rec_fail(b, rec, TG_ENOMEM, "out of memory placing a task");
    return true;
  }
  int ci = choose(b, rec);
  if (ci < 0) {
    release_args(b, rec);
    rec->next = b->retry_head;
    b->retry_head = rec;
    if (!b->retry_tail) b->retry_tail = rec;
    return false;
  }
  ofl_conn *c = b->conns[ci];
  rec->conn = ci;
  tg__ofl_conn_add(c, rec);
  for (uint32_t j = 0; j < rec->nargs && c->state == CS_READY; j++)
    if (rec->hargs[j]) ensure(b, c, rec, rec->hargs[j]);
  if (c->state != CS_READY || (rec->replan && rec->waits == 0)) {
    if (c->state != CS_READY) rec->conn = -1; /* lost meanwhile: its load went with c's */
    tg__ofl_rec_requeue(b, rec, c->why);
  } else if (rec->waits) {
    rec->next = c->staged;
    c->staged = rec;
  } else {
    tg__ofl_append(b, c, rec);
  }
  return true;
}

/* Begin ready task t in the engine: its record, or NULL when it finished
 * there (skipped, from the cache, failed). */
static ofl_rec *begin(ofl *b, tg__task *t) {
  ofl_run *rs = tg__ofl_run_get(b, t->run); /* exists: the heap entry uses it */
  tg_value *const *args;
  size_t n;
  ofl_rec *rec = NULL;
  b->w.worker = -1; /* failures here: no worker is chosen yet */
  uint32_t ti = (uint32_t)(t - rs->r->plan.tasks);
  ofl_rec *pre = rs->early[ti];
  if (rs->fold_of[ti] && tg__ofl_fold_ready(rs, ti)) {
    tg__ofl_fold_end(b, rs, t); /* made where its dependent went */
  } else if (tg__task_begin(&b->w, t, &args, &n)) {
    if (rs->fold_of[ti]) { /* folded, given up waiting for its record (no worker
                              for it): it goes its own way */
      rs->fold_of[ti] = NULL;
      rs->bound[ti] = 0;
    }
    if (pre) tg__ofl_attach(b, rs, pre, args, n);
    else rec = tg__ofl_rec_new(b, rs, t, (uint32_t)n);
    if (rec) {
      /* args: NULL when none. A loop, not memcpy: one or two mostly. */
      for (size_t j = 0; j < n; j++) rec->args[j] = args[j];
      rec->task = ti;
      rec->node = t->node;
      tg__ofl_expect(b, rec, &rs->r->g->nodes[t->node]);
    } else if (!pre) {
      tg__task_end(&b->w, t, TG_ENOMEM, NULL, "out of memory");
    }
  } else if (pre) {
    tg__ofl_orphan(b, rs, pre);
  } else {
    rs->fold_of[ti] = NULL; /* ended by the engine (its run stopped) */
  }
  tg__ofl_take_ready(b);
  rs->live--; /* the heap's use */
  tg__ofl_run_unuse(b, rs);
  return rec;
}

void tg__ofl_begin_done(ofl *b) {
  if (b->ending) return; /* the loop below takes what begin queues */
  b->ending = true;
  for (;;) {
    if (b->done_head) {
      tg__task *t = b->done_head;
      b->done_head = t->next;
      t->next = NULL;
      /* Ends it; a folded one whose record was given up meanwhile is sent
       * on its own. */
      ofl_rec *rec = begin(b, t);
      if (rec) tg__ofl_retry_push(b, rec);
      continue;
    }
    if (!b->heap.n) break;
    tg__task *t = tg__task_heap_top(&b->heap);
    ofl_run *rs = tg__idmap_get(&b->runs_by_seq, t->run->seq + 1);
    if (!rs || !tg__ofl_ends_at_once(rs, (uint32_t)(t - rs->r->plan.tasks))) break;
    begin(b, tg__ofl_heap_pop(b)); /* ends it */
  }
  b->ending = false;
}

/* ---- memory order ------------------------------------------------------------ */

/* Whether ready task t may be sent now. The heap gives tasks in the
 * plan's order; what bounds how far workers run ahead of it is the
 * number of results alive: in the engine (r->live: values, and
 * placeholders of results kept on workers) plus the tasks on workers. A
 * task that adds a result (one that frees none of its inputs: a leaf)
 * waits while that number is past the run's sequential peak plus
 * OFL_SLACK per worker thread; when the workers would idle meanwhile, it
 * may go on up to half the sequential peak past that. A run with nothing
 * on workers always starts one: progress. */
/* The threads of the workers ready: each may run OFL_SLACK results ahead. */
static int64_t slack_of(const ofl *b) {
  int64_t threads = 0;
  for (int i = 0; i < b->nconns; i++)
    if (b->conns[i]->state == CS_READY) threads += b->conns[i]->nthreads;
  return OFL_SLACK * (threads ? threads : 1);
}

static int64_t room_of(const ofl_run *rs, int64_t slack) {
  /* Quiet tasks pre-sent count nothing: their results die on their
   * worker, used by tasks sent with them (a pulled subtree counts as its
   * root), and the engine ends them as it reaches them. A quiet task the
   * engine began counts: told done, it is a value here until the
   * engine ends its dependent. */
  int64_t live = atomic_load_explicit(&rs->r->live, memory_order_relaxed) +
                 (int64_t)rs->inflight - (int64_t)(rs->nquiet - rs->nquiet_begun) +
                 rs->pulled_alive;
  return rs->seq_peak + slack - live;
}

int64_t tg__ofl_run_room(const ofl *b, const ofl_run *rs) { return room_of(rs, slack_of(b)); }

/* Whether the workers would idle soon: at most one task queued per
 * worker thread, or less than OFL_IDLE_SECS of expected work each (a
 * held-back group's sum makes its round trip meanwhile: waiting for the
 * queues to drain first left a gap per group, 2,000 of them on the
 * 2,000,000-task graph.json, 0.52 -> 0.48 us per task side by side).
 * Looked at only while a run is held back. */
static bool workers_idle(const ofl *b) {
  int64_t load = 0, threads = 0;
  double queued = 0;
  for (int i = 0; i < b->nconns; i++) {
    const ofl_conn *c = b->conns[i];
    if (c->state != CS_READY) continue;
    load += c->load;
    queued += c->queued;
    threads += c->nthreads ? c->nthreads : 1;
  }
  return load <= threads || queued < threads * OFL_IDLE_SECS;
}

/* slack: slack_of(b) at the start of the dispatch pass (looking at every
 * worker per task made placing tasks cost O(workers) more). */
static bool may_start(ofl *b, tg__task *t, int64_t slack) {
  ofl_run *rs = b->last_run; /* mostly the one, as in tg__ofl_run_get */
  if (!rs || rs->r != t->run || rs->seq != t->run->seq)
    rs = tg__idmap_get(&b->runs_by_seq, t->run->seq + 1);
  if (!rs || rs->inflight == 0 || (t->flags & TG__T_CACHED)) return true;
  const tg__run *r = rs->r;
  const tg__runplan *p = &r->plan;
  uint32_t ti = (uint32_t)(t - p->tasks);
  if (rs->early[ti] || rs->fold_of[ti]) return true; /* sent already */
  const tg__gnode *nd = &r->g->nodes[t->node];
  const tg__garg *a = tg__node_args(r->g, nd);
  for (uint32_t j = 0; j < nd->nargs; j++) /* the last use of an input: frees one */
    if (tg__arg_is_node(a[j].kind) && p->task_of[a[j].node] != UINT32_MAX &&
        tg__ofl_run_dependents(rs, p->task_of[a[j].node]) == 1)
      return true;
  int64_t room = room_of(rs, slack);
  /* Once held back, released when half the slack is free: tasks then go
   * in batches (and their replies too), not one per reply. */
  if (room > 0 && !(rs->held_back && room <= slack / 2)) {
    rs->held_back = rs->stretched = rs->held_more = false;
    return true;
  }
  rs->held_back = true;
  /* Held back while the workers would idle (what is out is, say, the
   * one task that will free a group of inputs, on its round trip): the
   * bound stretches by half the sequential peak until alive is back
   * under the first one, so that the next group of leaves runs meanwhile,
   * and alive stays within 1.5 times the sequential peak plus the slack.
   * A tree's peak is small: so is its stretch. */
  if (!rs->stretched && !(rs->stretched = workers_idle(b))) return false;
  int64_t more = room + rs->seq_peak / 2;
  if (rs->held_more && more <= slack / 2) return false;
  rs->held_more = more <= 0;
  return !rs->held_more;
}

/* Whether a worker has room. The one found last is looked at first: it
 * mostly still has some, and a pass places many tasks. */
static bool any_room(ofl *b) {
  for (int k = 0, n = b->nconns; k < n; k++) {
    int i = b->room_at + k < n ? b->room_at + k : b->room_at + k - n;
    if (tg__ofl_conn_has_room(b->conns[i])) {
      b->room_at = i;
      return true;
    }
  }
  return false;
}

/* An internal task (a container built around nested references) whose
 * inputs are all here is built here: sent to a worker it would cost a
 * round trip before its dependent can even be queued, behind tasks of
 * lower priority. True when rec was finished (and freed). */
static bool built_here(ofl *b, ofl_rec *rec) {
  if (!rec->t || !(rec->t->flags & TG__T_INTERNAL)) return false;
  for (uint32_t j = 0; j < rec->nargs; j++)
    if (rec->args[j] == tg__ofl_gone() || tg__ofl_handle_of_value(b, rec->args[j]))
      return false; /* on a worker, or to be made there again */
  tg__run *r = rec->rs->r;
  const tg__gnode *nd = &r->g->nodes[rec->node];
  tg_task_ctx ctx;
  tg__task_ctx_for_run(&ctx, r, nd->fn, rec->node, -1, 0);
  tg_value *out = NULL;
  int rc = tg__node_call(&ctx, nd, rec->args, &out);
  if (rc != TG_OK) {
    tg_value_unref(out);
    out = NULL;
  }
  tg__task_end(&b->w, rec->t, rc, out, rc != TG_OK && ctx.fail_code ? ctx.msg : NULL);
  tg__ofl_take_ready(b);
  tg__ofl_rec_free(b, rec);
  return true;
}

#define HELD_MAX 16 /* runs held back in one pass that others may pass */

/* Set ready task t aside on its quiet pre-sent record while that is out,
 * unbegun: begun, it would count as a result alive here until its
 * dependent ends (the leaves of a subtree pulled to a worker, each, where
 * the subtree is one result), and hold back the next subtree. The
 * record's end ends it (tg__ofl_unpark). */
static bool park(ofl *b, tg__task *t) {
  ofl_run *rs = tg__ofl_run_get(b, t->run); /* exists: the heap entry uses it */
  ofl_rec *pre = rs->early[t - rs->r->plan.tasks];
  if (!pre) return tg__ofl_fold_park(rs, t);
  if (!pre->quiet || pre->done || pre->parked) return false;
  pre->parked = t;
  return true;
}

void tg__ofl_unpark(ofl *b, ofl_rec *rec) {
  while (rec->fold && rec->fold->parked) { /* its folded inputs were made */
    tg__task *t = rec->fold->parked;
    rec->fold->parked = t->next;
    tg__ofl_done_push(b, t);
  }
  tg__task *t = rec->parked;
  if (!t) return;
  rec->parked = NULL;
  tg__ofl_done_push(b, t);
}

void tg__ofl_dispatch(ofl *b) {
  /* The first task of a run held back (may_start) is set aside, so that
   * other runs' tasks behind it in the heap may go; one of the same run
   * behind it ends the pass (its replies will come). */
  tg__task *held[HELD_MAX];
  size_t nheld = 0;
  tg__ofl_begin_done(b);
  tg__ofl_undefer_runs(b);
  /* The workers ready as the pass begins: one lost during it takes its
   * tasks with it, the next pass counts without it. */
  int64_t slack = slack_of(b);
  b->msg_secs = slack / OFL_SLACK > b->ncpus ? OFL_MSG_SECS : 0;
  while (any_room(b)) {
    ofl_rec *rec = b->retry_head;
    if (rec) {
      b->retry_head = rec->next;
      if (!b->retry_head) b->retry_tail = NULL;
      rec->next = NULL;
      if (rec->abort || tg__run_stopped(rec->rs->r)) {
        tg__ofl_rec_fail(b, rec, TG_ECANCELED, "cancelled");
        continue;
      }
    } else {
      if (!b->heap.n) break;
      tg__task *t = tg__task_heap_top(&b->heap);
      bool seen = false;
      for (size_t i = 0; i < nheld && !seen; i++) seen = held[i]->run == t->run;
      if (seen) break;
      if (!may_start(b, t, slack)) {
        if (nheld == HELD_MAX) break;
        held[nheld++] = tg__ofl_heap_pop(b);
        continue;
      }
      t = tg__ofl_heap_pop(b);
      if (park(b, t)) continue;
      if (!(rec = begin(b, t))) { /* ended or attached: what is done ends next */
        tg__ofl_begin_done(b);
        continue;
      }
      if (built_here(b, rec)) continue;
    }
    if (!place(b, rec)) break;
  }
  while (nheld) tg__ofl_heap_repush(b, held[--nheld]);
}

/* ---- giving up ---------------------------------------------------------------- */

bool tg__ofl_work_waiting(const ofl *b) {
  return b->heap.n || b->retry_head || b->done_head;
}

/* Finish every queued task (their runs are stopped: they are skipped). */
static void drain(ofl *b) {
  tg__ofl_begin_done(b);
  for (tg__task *t; (t = tg__ofl_heap_pop(b));) {
    ofl_rec *rec = begin(b, t);
    if (rec) tg__ofl_rec_fail(b, rec, TG_ECANCELED, "cancelled");
  }
  while (b->retry_head) {
    ofl_rec *rec = b->retry_head;
    b->retry_head = rec->next;
    if (!b->retry_head) b->retry_tail = NULL;
    tg__ofl_rec_fail(b, rec, TG_ECANCELED, "cancelled");
  }
}

void tg__ofl_drop_stopped(ofl *b) {
  ofl_rec *keep = NULL, **tail = &keep;
  while (b->retry_head) {
    ofl_rec *rec = b->retry_head;
    b->retry_head = rec->next;
    rec->next = NULL;
    if (rec->abort || tg__run_stopped(rec->rs->r)) {
      tg__ofl_rec_fail(b, rec, TG_ECANCELED, "cancelled");
    } else {
      *tail = rec;
      tail = &rec->next;
    }
  }
  b->retry_head = NULL;
  b->retry_tail = NULL;
  for (ofl_rec *rec = keep, *next; rec; rec = next) {
    next = rec->next;
    tg__ofl_retry_push(b, rec);
  }
  size_t n = b->heap.n, k = 0;
  tg__task **all = n ? tg__malloc(n * sizeof *all) : NULL;
  if (!all) return;
  for (tg__task *t; (t = tg__ofl_heap_pop(b));) all[k++] = t;
  for (size_t i = 0; i < k; i++) {
    if (!tg__run_stopped(all[i]->run)) {
      tg__ofl_heap_repush(b, all[i]);
      continue;
    }
    ofl_rec *rec = begin(b, all[i]); /* skipped in the engine */
    if (rec) tg__ofl_rec_fail(b, rec, TG_ECANCELED, "cancelled");
  }
  tg__free(all);
}

void tg__ofl_fail_waiting(ofl *b, const char *why) {
  for (ofl_run *rs = b->runs; rs; rs = rs->next)
    if (rs->live) tg__run_stop(rs->r, TG_EWORKER, TG_NODE_NONE, "%s", why);
  drain(b);
}

/* Give up cancelled run rs's tasks on workers (they are told to stop). */
static void cancel_run(ofl *b, ofl_run *rs) {
  rs->cancelled = true;
  tg__wbuf w = {0};
  tg__wbuf_u8(&w, TG__M_CANCEL);
  tg__wbuf_varint(&w, rs->seq);
  for (int i = 0; i < b->nconns; i++) {
    ofl_conn *c = b->conns[i];
    if (c->state != CS_READY) continue;
    if (b->tr->cancel) b->tr->cancel(b, c, rs->seq);
    tg__ofl_conn_flush(b, c);
    tg__ofl_conn_send(b, c, &w, NULL);
    for (ofl_rec *rec = c->staged; rec; rec = rec->next)
      if (rec->rs == rs) rec->abort = true;
    size_t n = 0;
    ofl_rec **mine = tg__malloc((c->recs.n ? c->recs.n : 1) * sizeof *mine);
    for (size_t k = 0; mine && c->recs.s && k <= c->recs.mask; k++) {
      ofl_rec *rec = c->recs.s[k].val;
      if (c->recs.s[k].key && rec->rs == rs) mine[n++] = rec;
    }
    for (size_t k = 0; k < n; k++) {
      tg__idmap_del(&c->recs, mine[k]->id);
      tg__ofl_rec_fail(b, mine[k], TG_ECANCELED, "cancelled");
    }
    tg__free(mine);
  }
  tg__wbuf_free(&w);
}

void tg__ofl_cancel_runs(ofl *b) {
  for (ofl_run *rs = b->runs; rs; rs = rs->next) {
    if (rs->cancelled || !rs->live || !tg__run_cancelled(rs->r)) continue;
    rs->users++; /* the run state must outlive the loop over it */
    cancel_run(b, rs);
    bool last = rs->users == 1;
    tg__ofl_run_unuse(b, rs);
    if (last) return; /* the list changed: next turn */
  }
}
