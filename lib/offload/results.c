/* lib/offload/results.c: what workers send back: task results
 * (inline values, results kept there with their shape, failures), fetched
 * values, and the verdicts on function definitions. A worker's replies
 * are checked like any input; a malformed one loses that worker. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "offload/engine.h"
#include "wire/wire.h"
#include "memo/memo.h"

typedef struct shape {
  uint8_t kind;
  uint64_t n;        /* as the worker says */
  const char **keys; /* borrowed from the message */
  size_t *keylen;
  uint64_t keybytes;
} shape;

/* A kept result's shape; false when malformed. A count no honest worker
 * sends (past TG__MAX_SHAPE, or more keys than the message has bytes
 * left) is read but not its keys: the caller drops the worker. */
static bool read_shape(tg__rbuf *r, shape *s) {
  s->kind = tg__rbuf_u8(r);
  s->n = 0;
  if (s->kind == TG__SHAPE_NONE) return !r->bad;
  if (s->kind != TG__SHAPE_LIST && s->kind != TG__SHAPE_MAP) return false;
  s->n = tg__rbuf_varint(r);
  if (r->bad) return false;
  if (s->kind == TG__SHAPE_LIST || s->n > TG__MAX_SHAPE || s->n > r->len - r->pos)
    return true;
  /* Bounded by the bytes received: a key takes one at least. */
  s->keys = tg__malloc((s->n ? s->n : 1) * sizeof *s->keys);
  s->keylen = tg__malloc((s->n ? s->n : 1) * sizeof *s->keylen);
  if (!s->keys || !s->keylen) return false;
  for (size_t i = 0; i < s->n && !r->bad; i++) {
    s->keys[i] = tg__rbuf_str(r, TG__MAX_KEY, &s->keylen[i]);
    s->keybytes += s->keylen[i];
  }
  return !r->bad;
}

/* "task 'KEY'" for messages (rec NULL: an id not in flight). */
static const char *task_name(ofl_rec *rec, uint64_t id, char task[TG__NAME_MAX + 64]) {
  char kb[TG__NAME_MAX + 32];
  if (rec && rec->rs->live)
    snprintf(task, TG__NAME_MAX + 64, "task '%s'",
             tg__run_key(rec->rs->r, rec->node, kb, sizeof kb));
  else
    snprintf(task, TG__NAME_MAX + 64, "task number %llu", (unsigned long long)id);
  return task;
}

/* What a result record claims that cannot be true, in buf (naming the
 * task), or NULL. rec (NULL for an id not in flight) is the task it
 * answers. The task's name is made only for a claim found false: this
 * runs for every result. */
static const char *lie(ofl_rec *rec, uint64_t id, uint8_t st, uint64_t bytes,
                       const shape *s, char *buf, size_t size) {
  enum { NONE, LONG, SHORT, DENSE, UNASKED, NOT_BACK } claim = NONE;
  if (st != TG__RS_KEPT) return NULL; /* only kept results make claims */
  if (s->kind != TG__SHAPE_NONE && s->n > TG__MAX_SHAPE) claim = LONG;
  else if (s->kind == TG__SHAPE_MAP && !s->keys) claim = SHORT;
  else if (s->n > bytes) claim = DENSE;
  else if (!rec) return NULL; /* a late reply, ignored */
  else if (s->kind != TG__SHAPE_NONE && !(rec->flags & TG__RF_SHAPE)) claim = UNASKED;
  else if (rec->flags & TG__RF_RETURN) claim = NOT_BACK;
  else return NULL;
  char task[TG__NAME_MAX + 64];
  task_name(rec, id, task);
  const char *what = s->kind == TG__SHAPE_MAP ? "map of" : "list of";
  if (claim == LONG)
    snprintf(buf, size, "it claimed that the result of %s kept there is a %s %llu items "
             "(a worker sends one of more than %llu back whole)", task, what,
             (unsigned long long)s->n, (unsigned long long)TG__MAX_SHAPE);
  else if (claim == SHORT)
    snprintf(buf, size, "it claimed that the result of %s kept there is a map of %llu "
             "keys, in a message too short to hold them", task, (unsigned long long)s->n);
  else if (claim == DENSE)
    snprintf(buf, size, "it claimed that the result of %s kept there is a %s %llu items "
             "in %llu bytes", task, what, (unsigned long long)s->n,
             (unsigned long long)bytes);
  else if (claim == UNASKED)
    snprintf(buf, size, "it claimed that the result of %s kept there is a %s %llu items, "
             "which was not asked for", task, what, (unsigned long long)s->n);
  else
    snprintf(buf, size, "it kept the result of %s, which was to be sent back", task);
  return buf;
}

/* The placeholders of a kept result with shape s would take rec's run
 * past its budget: free the result there and have the task sent again, to
 * come back whole (its bytes then have to be received). */
static bool over_budget(ofl *b, ofl_conn *c, ofl_rec *rec, const shape *s) {
  uint64_t cost = tg__ofl_shape_cost(s->kind, s->n, s->keybytes);
  if (!rec->t || !cost || cost <= OFL_RUN_SHAPES - rec->rs->shapes) return false;
  tg__wbuf_varint(&c->frees, rec->store);
  c->nfrees++;
  rec->whole = true;
  /* Its reply says its inputs were made: a quiet one is told by no other
   * (its engine task would wait for ever). */
  tg__ofl_inputs_done(b, rec);
  tg__ofl_rec_resend(b, rec);
  return true;
}

/* The value of kept result `store` of rec's task, on conn c. */
static tg_value *kept(ofl *b, ofl_conn *c, ofl_rec *rec, uint64_t bytes,
                      const shape *s, bool *dup) {
  ofl_handle *h = tg__ofl_handle_new(b, H_OBJ, rec->store); /* the id it is stored as */
  if (!h) return NULL;
  if (!tg__holders_set_only(&h->locs, c->idx)) {
    tg__ofl_handle_unref(b, h);
    return NULL;
  }
  h->bytes = bytes;
  h->run = rec->rs;
  h->task = rec->task;
  h->shape_cost = tg__ofl_shape_cost(s->kind, s->n, s->keybytes);
  rec->rs->shapes += h->shape_cost; /* until h is freed */
  rec->rs->users++;
  rec->rs->handle_of[rec->task] = h;
  tg_value *v = tg__ofl_placeholder(b, h, s->kind, (size_t)s->n, s->keys, s->keylen, dup);
  tg__ofl_handle_unref(b, h); /* the placeholder holds it (or nothing does) */
  atomic_fetch_add(&b->st_kept, 1);
  return v;
}

/* Result of a recomputation: nothing to tell the engine, unless it failed. */
static void recomputed(ofl_conn *c, ofl_rec *rec, int code, const char *msg) {
  if (code == TG_OK || !rec->rs->live) return;
  tg__run *r = rec->rs->r;
  char kb[TG__NAME_MAX + 32];
  tg__holders_del(&rec->out->locs, c->idx);
  tg__run_stop(r, TG_ETASK, rec->node, "task '%s' failed when computed again: %s: %s",
               tg__run_key(r, rec->node, kb, sizeof kb), tg_err_name(code),
               msg && *msg ? msg : tg_strerror(code));
}

/* The kept map c reported for rec has a key twice, which no honest
 * worker sends: rec goes elsewhere and c is dropped. */
static void twice(ofl *b, ofl_conn *c, ofl_rec *rec, uint64_t id, const shape *s) {
  char task[TG__NAME_MAX + 64], why[600];
  snprintf(why, sizeof why, "it claimed that the result of %s kept there is a map of %llu "
           "keys, one of them twice", task_name(rec, id, task), (unsigned long long)s->n);
  tg__ofl_rec_requeue(b, rec, why); /* off c's load before the loss resets it */
  tg__ofl_conn_ban(b, c, why);
}

/* ---- the worker's clock ------------------------------------------------------ */

/* What the worker said of rec's calls (sent: when their message left,
 * rec's own or a leaf folded into it; thread1: its thread + 1, 0 for
 * none; received: its clock when the task's message came; wait: from
 * then to the first call; secs: the calls' span) placed on our clock.
 *
 * The worker's clock runs at our rate but from another origin: offset =
 * its reading minus ours at one instant. The task's message left here at
 * `sent` and was handled there at `received`, so offset <= received -
 * sent for every task, however long the network took. c->offset is
 * the least of these bounds over the session: the true offset plus the
 * quickest trip seen from sending a task to the worker handling it, so
 * slices come out early by that trip at most (microseconds on an idle
 * LAN; more while the worker is busy), and only ever move later as the bound
 * tightens: slices of one worker thread, which never overlap there,
 * never overlap here either. A call placed this way starts after its
 * task was sent and ends before its result came; the clamp only guards
 * against clocks that do not run at one rate. */
static tg__call_report placed(ofl_conn *c, const ofl_rec *rec, double sent, uint64_t thread1,
                              uint64_t received_us, uint64_t wait_us, double secs,
                              uint64_t calls, double now) {
  tg__call_report rep = {.start = -1, .seconds = -1, .worker = c->idx, .thread = -1,
                         .attempts = calls > UINT_MAX ? UINT_MAX : (unsigned)calls};
  if (!thread1 || thread1 > c->nthreads) return rep; /* no call made */
  double received = (double)received_us * 1e-6;
  double bound = received - sent;
  if (isnan(c->offset) || bound < c->offset) c->offset = bound;
  /* The slice is for task events alone (an orphan's reply is dropped, its
   * run perhaps over). */
  if (rec->orphan || !rec->rs->r->on_event) return rep;
  double start = received + (double)wait_us * 1e-6 - c->offset;
  if (start < sent) start = sent;
  if (start > now) start = now;
  rep.start = start;
  rep.end = start + secs > now ? now : start + secs;
  rep.thread = (int)(thread1 - 1);
  return rep;
}

/* ---- task results ------------------------------------------------------------ */

/* One result record; false when malformed (or c dropped). now: our clock
 * once the message had come, read once per message. */
static bool result(ofl *b, ofl_conn *c, tg__rbuf *r, tg_value *vals, uint64_t base,
                   double now) {
  uint64_t id = tg__rbuf_varint(r), calls = tg__rbuf_varint(r), fails = tg__rbuf_varint(r);
  double secs = (double)tg__rbuf_varint(r) * 1e-6;
  uint64_t thread1 = tg__rbuf_varint(r), received_us = base + (uint64_t)tg__rbuf_svarint(r),
           wait_us = tg__rbuf_varint(r);
  uint8_t st = tg__rbuf_u8(r);
  tg_value *v = NULL;
  int code = TG_OK;
  char msg[TG__MAX_MSG + 1];
  msg[0] = '\0'; /* not "= \"\"": that clears all of it, for every result */
  uint64_t bytes = 0;
  shape s = {0};
  bool ok = !r->bad;
  if (st == TG__RS_INLINE || st == TG__RS_BOTH) {
    uint64_t i = tg__rbuf_varint(r);
    ok = ok && !r->bad && i < tg_list_len(vals);
    if (ok) v = tg_value_ref(tg_list_get(vals, (size_t)i));
  } else if (st == TG__RS_INT) {
    int64_t x = tg__rbuf_svarint(r);
    ok = ok && !r->bad;
    if (ok) v = tg_int(x); /* NULL out of memory: TG_ENOMEM below */
  } else if (st == TG__RS_KEPT) {
    bytes = tg__rbuf_varint(r);
    ok = ok && read_shape(r, &s);
  } else if (st == TG__RS_FAILED) {
    code = (int)tg__rbuf_svarint(r);
    tg__rbuf_cstr(r, msg, TG__MAX_MSG);
    if (code >= 0) code = TG_ETASK;
    ok = ok && !r->bad;
  } else {
    ok = false;
  }
  ofl_rec *rec = ok ? tg__idmap_get(&c->recs, id) : NULL;
  char why[600];
  if (ok && lie(rec, id, st, bytes, &s, why, sizeof why)) {
    tg__ofl_conn_ban(b, c, why); /* rec goes elsewhere with c's other work */
    rec = NULL;
    ok = false;
  }
  /* A folded task (offload/chain.c) replies only when its call failed:
   * before its dependent's record, whose id follows its own. */
  if (ok && !rec && st == TG__RS_FAILED) {
    uint32_t task;
    ofl_rec *owner = tg__ofl_fold_owner(c, id, &task);
    if (owner) {
      tg__run *run = owner->rs->r;
      if (calls > 1) atomic_fetch_add(&run->ran, calls - 1);
      if (fails > 1) atomic_fetch_add(&run->attempts_failed, fails - 1);
      tg__call_report rep = placed(c, owner, owner->fold->sent, thread1, received_us,
                                   wait_us, secs, calls, now);
      tg__ofl_fold_fail(b, owner, task, code, msg, &rep);
      tg__ofl_begin_done(b);
    }
  }
  /* What was asked: an output comes back, a recomputation stays there. */
  if (rec && ((st == TG__RS_KEPT && (!rec->store || (rec->t && rec->t->flags & TG__T_OUTPUT))) ||
              ((st == TG__RS_INLINE || st == TG__RS_INT) && !rec->t) ||
              (st == TG__RS_BOTH && (!rec->t || !rec->store))))
    ok = false;
  if (ok && rec) tg__idmap_del(&c->recs, id);
  else rec = NULL;
  if (rec && st == TG__RS_KEPT && over_budget(b, c, rec, &s)) rec = NULL;
  if (rec) {
    tg__ofl_task_measured(b, rec->kind_key, secs);
    bool dup = false;
    if (st == TG__RS_KEPT && rec->t) v = kept(b, c, rec, bytes, &s, &dup);
    if (dup) {
      twice(b, c, rec, id, &s);
      rec = NULL;
      ok = false;
    }
  }
  /* A reply (a failure too: a failed input reports before its users) says
   * that rec's inputs were made. */
  if (rec) tg__ofl_inputs_done(b, rec);
  if (rec && (rec->early || rec->orphan)) { /* pre-sent: the engine is not there yet */
    tg__call_report rep =
        placed(c, rec, rec->sent, thread1, received_us, wait_us, secs, calls, now);
    tg__ofl_conn_remove(b->conns[rec->conn], rec);
    rec->conn = -1;
    tg__ofl_early_done(b, rec, code, v, msg, &rep, calls, fails);
    tg__ofl_begin_done(b);
    v = NULL;
    rec = NULL;
  }
  if (rec) {
    if (!rec->t) {
      recomputed(c, rec, code, msg);
    } else {
      tg__run *run = rec->rs->r;
      bool user = !(rec->t->flags & TG__T_INTERNAL); /* counted nowhere */
      if (calls > 1 && user) atomic_fetch_add(&run->ran, calls - 1); /* retries ran there */
      if (fails > (code != TG_OK) && user) /* the last one is the task's end's */
        atomic_fetch_add(&run->attempts_failed, fails - (code != TG_OK));
      if (st == TG__RS_KEPT && run->memo && run->memo->t0)
        run->memo->t0[rec->task] = 0; /* a placeholder is nothing to cache */
      if (st != TG__RS_FAILED && !v) code = TG_ENOMEM;
      tg__ofl_run_task_done(b, rec->rs, rec->task); /* before the run may end */
      /* Kept there too: its dependents name it on that worker. */
      if (st == TG__RS_BOTH && v &&
          !tg__ofl_run_const_held(b, rec->rs, v, rec->task, rec->store, c->idx)) {
        tg__wbuf_varint(&c->frees, rec->store); /* not named: let it go there */
        c->nfrees++;
      }
      tg__call_report rep =
        placed(c, rec, rec->sent, thread1, received_us, wait_us, secs, calls, now);
      tg__task_end_report(&b->w, rec->t, code, code == TG_OK ? v : NULL,
                          code == TG_ENOMEM && !*msg ? "out of memory" : msg[0] ? msg : NULL,
                          &rep);
      if (code != TG_OK) tg_value_unref(v);
      v = NULL;
      tg__ofl_take_ready(b);
    }
    tg__ofl_conn_remove(b->conns[rec->conn], rec);
    rec->conn = -1;
    tg__ofl_rec_free(b, rec);
  }
  if (v) tg_value_unref(v);
  if (s.keys || s.keylen) { /* a kept map's only */
    tg__free(s.keys);
    tg__free(s.keylen);
  }
  return ok;
}

static bool results(ofl *b, ofl_conn *c, tg__rbuf *r, zmq_msg_t *parts, size_t n) {
  uint64_t count = tg__rbuf_count(r, TG__MAX_BATCH), base = tg__rbuf_varint(r);
  tg_value *vals = NULL;
  size_t used;
  uint64_t bytes = 0;
  if (r->bad || tg__wire_recv(parts + 1, n - 1, &c->stream, &used, &vals, &bytes, NULL) != TG_OK ||
      tg_value_type(vals) != TG_LIST || used + 1 != n) {
    tg_value_unref(vals);
    return false;
  }
  atomic_fetch_add(&b->st_recv, bytes);
  bool ok = true;
  double now = tg__now();
  for (uint64_t i = 0; i < count && ok && c->state == CS_READY; i++)
    ok = result(b, c, r, vals, base, now);
  tg_value_unref(vals);
  return ok;
}

/* ---- fetched values ------------------------------------------------------------- */

static bool value(ofl *b, ofl_conn *c, tg__rbuf *r, zmq_msg_t *parts, size_t n) {
  uint64_t id = tg__rbuf_varint(r);
  uint8_t st = tg__rbuf_u8(r);
  tg__wire_held *v = NULL;
  size_t used = 0;
  uint64_t bytes = 0;
  if (r->bad || (st == 0 && (tg__wire_hold(parts + 1, n - 1, &c->stream, &used, &v, &bytes, NULL) ||
                             used + 1 != n))) {
    tg__wire_held_free(v);
    return false;
  }
  atomic_fetch_add(&b->st_recv, bytes);
  ofl_handle *h = tg__idmap_get(&b->handles, id);
  if (h && h->fetching == c->idx) tg__ofl_fetch_done(b, h, v);
  else tg__wire_held_free(v);
  return true;
}

/* Only a result the run sent on to c as it came (from another worker) can
 * be refused: anything else, c made up. */
static bool put_refused(ofl *b, ofl_conn *c, tg__rbuf *r) {
  uint64_t id = tg__rbuf_varint(r);
  char why[TG__MAX_MSG + 1];
  tg__rbuf_cstr(r, why, TG__MAX_MSG);
  if (r->bad || !tg__rbuf_end(r)) return false;
  ofl_handle *h = tg__idmap_get(&b->handles, id);
  if (!h || !tg__ofl_handle_ref_alive(h)) return true; /* let go of meanwhile */
  /* Only what was sent to c (put() counts c as a holder once sent): any
   * other id would get an innocent worker dropped. */
  bool ok = h->kind == H_OBJ && h->moved_from >= 0 && tg__holders_has(&h->locs, c->idx);
  if (ok) tg__ofl_value_refused(b, c, h, why);
  tg__ofl_handle_unref(b, h);
  return ok;
}

/* ---- function verdicts ------------------------------------------------------------ */

static bool uses(const tg__run *r, const tg_func *f) {
  for (uint32_t i = 0; i < r->plan.ntasks; i++)
    if (r->g->nodes[r->plan.tasks[i].node].fn == f) return true;
  return false;
}

static bool funcs(ofl *b, ofl_conn *c, tg__rbuf *r) {
  uint64_t n = tg__rbuf_count(r, TG__MAX_FUNCS);
  for (uint64_t i = 0; i < n; i++) {
    uint64_t id = tg__rbuf_varint(r);
    uint8_t st = tg__rbuf_u8(r);
    char detail[TG__MAX_MSG + 1], msg[4 * TG__MAX_MSG];
    tg__rbuf_cstr(r, detail, TG__MAX_MSG);
    if (r->bad || id >= c->nfns) return false;
    if (st == TG__FN_OK) continue;
    const tg_func *f = c->fn_of[id];
    int code = st == TG__FN_MISSING ? TG_ENOFUNC : TG_EVERSION;
    if (st == TG__FN_MISSING && (b->tr->caps & TG__TR_REGISTRY_SNAPSHOT))
      snprintf(msg, sizeof msg, "function '%s' is not in the worker processes' registry "
               "(registered after the processes pool started)", tg_func_name(f));
    else if (st == TG__FN_MISSING)
      snprintf(msg, sizeof msg, "function '%s' is not registered on worker %s (load its "
               "plugin there)", tg_func_name(f), c->addr);
    else if (st == TG__FN_VERSION)
      snprintf(msg, sizeof msg, "function '%s' has version '%s' in this program and "
               "version '%s' on worker %s", tg_func_name(f), tg_func_version(f), detail,
               c->addr);
    else if (st == TG__FN_CODE) {
      char here[TG__MAX_NAME + 16], there[TG__MAX_MSG + 16];
      snprintf(msg, sizeof msg, "function '%s' has %s in this program and %s on worker %s",
               tg_func_name(f), tg__code_id_text(f->code_id, here, sizeof here),
               tg__code_id_text(detail, there, sizeof there), c->addr);
    } else {
      char here[TG__MAX_MSG];
      tg__func_origin_text(f->kind, f->origin_file, f->origin, tg__library_build(),
                           "this program", here, sizeof here);
      /* "in this program" unless the phrase says so itself */
      snprintf(msg, sizeof msg, "function '%s' %s%s but %s on worker %s", tg_func_name(f),
               here, f->kind == TG__ORIGIN_PROGRAM ? "" : " in this program", detail,
               c->addr);
    }
    for (ofl_run *rs = b->runs; rs; rs = rs->next)
      if (rs->live && uses(rs->r, f)) tg__run_stop(rs->r, code, TG_NODE_NONE, "%s", msg);
  }
  return !r->bad && tg__rbuf_end(r);
}

/* A task's tg_task_log() line: to the executor's log, as in-process. */
static bool log_line(ofl *b, tg__rbuf *r) {
  (void)tg__rbuf_varint(r); /* the run: one log serves all runs */
  char key[TG__MAX_KEY + 1], line[TG__MAX_MSG + 1];
  size_t kl, ll;
  const char *k = tg__rbuf_str(r, TG__MAX_KEY, &kl), *l = tg__rbuf_str(r, TG__MAX_MSG, &ll);
  if (r->bad || !tg__rbuf_end(r)) return false;
  /* As a task wrote it (in-process logs are not checked either), but C
   * strings: a NUL byte becomes '?'. */
  for (size_t i = 0; i <= kl; i++) key[i] = i == kl ? '\0' : k[i] ? k[i] : '?';
  for (size_t i = 0; i <= ll; i++) line[i] = i == ll ? '\0' : l[i] ? l[i] : '?';
  if (b->ex->log) b->ex->log(b->ex->log_ctx, key, line);
  else fprintf(stderr, "[%s] %s\n", key, line);
  return true;
}

void tg__ofl_results_handle(ofl *b, ofl_conn *c, zmq_msg_t *parts, size_t n) {
  tg__rbuf r;
  tg__rbuf_init(&r, zmq_msg_data(&parts[0]), zmq_msg_size(&parts[0]));
  uint8_t type = tg__rbuf_u8(&r);
  bool ok;
  b->w.worker = c->idx; /* task events name the worker */
  switch (type) {
    case TG__M_RESULTS: ok = results(b, c, &r, parts, n); break;
    case TG__M_VALUE: ok = value(b, c, &r, parts, n); break;
    case TG__M_REFUSED: ok = n == 1 && put_refused(b, c, &r); break;
    case TG__M_FUNCS_OK: ok = n == 1 && funcs(b, c, &r); break;
    case TG__M_PONG: ok = n == 1; break;
    case TG__M_LOG: ok = n == 1 && log_line(b, &r); break;
    default: ok = false;
  }
  if (!ok && c->state == CS_READY)
    tg__ofl_conn_lost(b, c, "it sent a malformed message", true);
}
