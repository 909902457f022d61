/* lib/worker/tasks.c: what a worker does with a client's tasks and
 * objects: parsing task records (hostile input: bounded, checked), tasks
 * waiting for objects still being made, finished tasks turned into kept
 * objects or inline results, and the replies. */
#include <sched.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "graph/graph_internal.h" /* node kinds, chunks */
#include "registry/registry_internal.h" /* a function's name length */
#include "wire/wire.h"
#include "worker/worker.h"

/* ---- runs (their tasks' hosts) ------------------------------------------- */

static wrun *run_get(tg__worker *wk, wsess *s, uint64_t seq) {
  for (wrun *r = s->runs; r; r = r->next)
    if (r->seq == seq) return r;
  wrun *r = tg__calloc(1, sizeof *r);
  if (!r) return NULL;
  r->seq = seq;
  r->s = s;
  r->wk = wk;
  r->next = s->runs;
  s->runs = r;
  return r;
}

static void run_unref(wsess *s, wrun *r) {
  if (--r->refs) return;
  for (wrun **p = &s->runs; *p; p = &(*p)->next)
    if (*p == r) {
      *p = r->next;
      break;
    }
  tg__free(r);
}

/* ---- objects ------------------------------------------------------------- */

static void obj_free(tg__worker *wk, wobj *o) {
  tg_value_unref(o->v);
  tg__free(o->msg);
  tg__recycle_put(&wk->obj_blocks, o);
}

/* Object id of s, made pending when it is not there yet; NULL out of
 * memory. */
static wobj *obj_of(tg__worker *wk, wsess *s, uint64_t id) {
  wobj *o = tg__idmap_get(&s->objs, id);
  if (o) return o;
  if (!(o = tg__recycle_get(&wk->obj_blocks))) return NULL;
  *o = (wobj){.id = id, .state = O_PENDING};
  if (!tg__idmap_put(&s->objs, id, o)) {
    tg__recycle_put(&wk->obj_blocks, o);
    return NULL;
  }
  return o;
}

wwait *tg__wk_wait_new(tg__worker *wk) {
  wwait *w = tg__recycle_get(&wk->wait_blocks);
  if (w) *w = (wwait){0};
  return w;
}

void tg__wk_wait_free(tg__worker *wk, wwait *w) {
  if (!w) return;
  tg__free(w->key);
  tg__recycle_put(&wk->wait_blocks, w);
}

/* Element `sel` of v, borrowed; NULL with msg when it is not there. */
static tg_value *select_of(tg_value *v, uint8_t sel, int64_t index,
                           const char *key, char *msg, size_t size) {
  if (sel == TG__ARG_OBJ) return v;
  if (sel == TG__ARG_ELEM) {
    size_t len = tg_list_len(v);
    int64_t i = index < 0 ? index + (int64_t)len : index;
    if (tg_value_type(v) == TG_LIST && i >= 0 && (uint64_t)i < len)
      return tg_list_get(v, (size_t)i);
    snprintf(msg, size, "item %lld of a %s of %zu", (long long)index,
             tg_type_name(tg_value_type(v)), len);
    return NULL;
  }
  tg_value *x = tg_value_type(v) == TG_MAP ? tg_map_get_c(v, key) : NULL;
  if (!x) snprintf(msg, size, "key '%s' not found in a %s", key, tg_type_name(tg_value_type(v)));
  return x;
}

static void prefail(wtask *t, int code, const char *fmt, ...) TG__PRINTF(3, 4);
static void prefail(wtask *t, int code, const char *fmt, ...) {
  if (t->prefailed) return;
  t->prefailed = true;
  t->rc = code;
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(t->msg, sizeof t->msg, fmt, ap);
  va_end(ap);
}

void tg__wk_input_failed(wtask *t, uint32_t j, int code, const char *msg) {
  prefail(t, code, "argument %u: its input failed: %s", j, msg ? msg : "");
}

/* Fill argument j of t from the ready or failed object o. */
static void fill_arg(wtask *t, uint32_t j, wobj *o, uint8_t sel, int64_t index,
                     const char *key) {
  char m[200];
  if (o->state == O_FAILED) {
    tg__wk_input_failed(t, j, o->code, o->msg);
    return;
  }
  tg_value *x = select_of(o->v, sel, index, key, m, sizeof m);
  if (x) t->args[j] = tg_value_ref(x);
  else prefail(t, TG_ENOTFOUND, "argument %u: %s", j, m);
}

static void send_value_reply(tg__worker *wk, wsess *s, wobj *o) {
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_VALUE);
  tg__wbuf_varint(&h, o->id);
  tg__wbuf_u8(&h, o->state == O_READY ? 0 : 1);
  tg__wk_send(wk, s, &h, o->state == O_READY ? o->v : NULL);
  tg__wbuf_free(&h);
}

/* Object o is ready or failed: hand it to whoever waits. Tasks whose last
 * wait this was go to *ready (or, failed, to the done list). Tasks come
 * first, FETCH replies last: a failed send drops s, which frees o, so
 * once s is dead nothing touches o (callers check s->dead too). */
static void wake(tg__worker *wk, wsess *s, wobj *o, wtask **ready) {
  wwait *w = o->waiters, *fetches = NULL;
  o->waiters = NULL;
  while (w) {
    wwait *next = w->next;
    if (!w->t) {
      w->next = fetches;
      fetches = w;
      w = next;
      continue;
    }
    fill_arg(w->t, w->arg, o, w->sel, w->index, w->key);
    if (--w->t->waits == 0) {
      w->t->next = *ready;
      *ready = w->t;
    }
    tg__wk_wait_free(wk, w);
    w = next;
  }
  while (fetches) {
    wwait *next = fetches->next;
    if (!s->dead) send_value_reply(wk, s, o);
    tg__wk_wait_free(wk, fetches);
    fetches = next;
  }
}

/* Queue tasks made ready (failed ones go straight to the done list). */
static void start_tasks(tg__worker *wk, wtask *list) {
  wtask *head = NULL, *tail = NULL;
  while (list) {
    wtask *t = list;
    list = t->next;
    t->next = NULL;
    if (t->prefailed) {
      tg__wk_pool_done(wk, t);
      continue;
    }
    if (tail) tail->next = t;
    else head = t;
    tail = t;
  }
  tg__wk_pool_push(wk, head, tail);
}

/* ---- parsing tasks ----------------------------------------------------------- */

static void obj_drop(tg__worker *wk, wsess *s, wobj *o);

/* Argument j of t from the record at r; false on a protocol error. */
static bool parse_arg(tg__worker *wk, wsess *s, tg__rbuf *r, wtask *t, uint32_t j,
                      tg_value *vals) {
  uint8_t kind = tg__rbuf_u8(r);
  if (kind == TG__ARG_INLINE) {
    uint64_t i = tg__rbuf_varint(r);
    if (r->bad || i >= tg_list_len(vals)) return false;
    t->args[j] = tg_value_ref(tg_list_get(vals, (size_t)i));
    return true;
  }
  if (kind == TG__ARG_INT) {
    int64_t x = tg__rbuf_svarint(r);
    if (r->bad) return false;
    if (!(t->args[j] = tg_int(x))) prefail(t, TG_ENOMEM, "argument %u: out of memory", j);
    return true;
  }
  uint64_t id = tg__rbuf_varint(r);
  int64_t index = 0;
  char key[TG__MAX_KEY + 1]; /* not cleared: 4 KB per argument */
  key[0] = '\0';
  bool last = kind == TG__ARG_OBJ_LAST; /* the client's last use of it */
  if (last) kind = TG__ARG_OBJ;
  if (kind == TG__ARG_ELEM) index = tg__rbuf_svarint(r);
  else if (kind == TG__ARG_ENTRY) tg__rbuf_cstr(r, key, TG__MAX_KEY);
  else if (kind != TG__ARG_OBJ) return false;
  if (r->bad) return false;
  wobj *o = tg__idmap_get(&s->objs, id);
  if (!o) {
    prefail(t, TG_EPROTO, "argument %u: object %llu is not on this worker", j,
            (unsigned long long)id);
    return true;
  }
  if (o->state != O_PENDING) {
    fill_arg(t, j, o, kind, index, key);
    if (last) obj_drop(wk, s, o);
    return true;
  }
  wwait *w = tg__wk_wait_new(wk);
  if (!w || (kind == TG__ARG_ENTRY && !(w->key = tg__malloc(strlen(key) + 1)))) {
    tg__wk_wait_free(wk, w);
    prefail(t, TG_ENOMEM, "out of memory");
    return true;
  }
  if (w->key) strcpy(w->key, key);
  w->t = t;
  w->arg = j;
  w->sel = kind;
  w->index = index;
  w->next = o->waiters;
  o->waiters = w;
  if (t->waits < 2) {
    t->wait_obj[t->waits] = o;
    t->wait_w[t->waits] = w;
  }
  t->waits++;
  if (last) obj_drop(wk, s, o); /* once made and handed to its waiters */
  return true;
}

/* Release a task that will not be run (or is done): its run and session
 * references too. */
static void task_release(tg__worker *wk, wtask *t) {
  while (t) {
    wtask *then = NULL;
    if (t->then) { /* linked behind t, which never ran: nor will it */
      pthread_mutex_lock(&wk->mu);
      tg__wk_input_failed(t->then, t->then_arg, TG_ECANCELED, "it was dropped");
      if (--t->then->waits == 0) then = t->then; /* its other input is done */
      t->then = NULL;
      pthread_mutex_unlock(&wk->mu);
    }
    wsess *s = t->s;
    run_unref(s, t->run);
    tg__wk_task_free(wk, t);
    tg__wk_sess_unref(wk, s);
    t = then;
  }
}

/* One task record into *out; false on a protocol error. A task that
 * failed to parse but already waits for objects is left to those waits
 * (prefailed); the session is dropped anyway. */
static bool parse_task(tg__worker *wk, wsess *s, tg__rbuf *r, wrun *run, tg_value *vals,
                       wtask **out) {
  *out = NULL;
  uint64_t id = tg__rbuf_varint(r);
  uint64_t fn = tg__rbuf_varint(r);
  uint8_t kind = tg__rbuf_u8(r);
  uint32_t aux = (uint32_t)tg__rbuf_count(r, UINT32_MAX); /* a chunk's count and position */
  uint32_t attempts = (uint32_t)tg__rbuf_count(r, 1001);
  double timeout = (double)tg__rbuf_count(r, UINT32_MAX) / 1000;
  uint8_t flags = tg__rbuf_u8(r);
  uint64_t store = tg__rbuf_varint(r);
  uint64_t min_us = tg__rbuf_varint(r);
  uint32_t first = flags & TG__RF_RESUME && attempts > 0
                       ? (uint32_t)tg__rbuf_count(r, attempts - 1) : 0;
  /* A generated key comes as its node id + 1 (0: the key's text follows),
   * formatted from the function's name and the kind when a call asks for
   * it (worker/pool.c). */
  uint64_t key_id = tg__rbuf_varint(r);
  size_t kl = 0;
  const char *key = key_id ? "" : tg__rbuf_str(r, TG__MAX_KEY, &kl);
  if (key_id > UINT32_MAX) return false;
  /* each argument takes 2 bytes at least: the count cannot outrun them */
  uint32_t nargs = (uint32_t)tg__rbuf_count(r, (r->len - r->pos) / 2);
  bool ok = !r->bad && fn < s->nfns && kind <= TG__NK_CONCAT && attempts > 0 &&
            !(kind == TG__NK_CHUNK && (tg__chunk_count(aux) > nargs ||
                                       tg__chunk_pos(aux) > nargs - tg__chunk_count(aux)));
  if (!ok) return false;
  /* One block per task: the record, its argument slots, its key
   * (tg__wk_task_free frees it). The slots and the key are bounded by the
   * message's bytes, as checked above. */
  size_t size = tg__wk_task_size(nargs, kl), nslots = nargs ? nargs : 1;
  wtask *t = tg__recycle_fits(&wk->task_blocks, size) ? tg__recycle_get(&wk->task_blocks)
                                                      : tg__malloc(size);
  if (!t) return false;
  memset(t, 0, offsetof(wtask, msg));
  t->msg[0] = '\0';
  t->id = id;
  t->kind = kind;
  t->aux = aux;
  t->attempts = attempts;
  t->timeout = timeout;
  t->flags = flags;
  t->store = store;
  t->min_us = min_us;
  t->nargs = nargs;
  t->first = first;
  t->key_node = (uint32_t)key_id;
  t->args = (tg_value **)(t + 1);
  memset(t->args, 0, nslots * sizeof *t->args);
  t->key = (char *)(t->args + nslots);
  memcpy(t->key, key, kl);
  t->key[kl] = '\0';
  t->s = s;
  t->run = run;
  run->refs++;
  s->refs++;
  for (uint32_t j = 0; ok && j < t->nargs; j++) ok = parse_arg(wk, s, r, t, j, vals);
  if (!ok) {
    if (t->waits == 0) {
      run->refs--; /* the caller still holds the run */
      s->refs--;   /* the worker's list still holds the session */
      tg__wk_task_free(wk, t);
      return false;
    }
    prefail(t, TG_EPROTO, "malformed task");
    *out = t;
    return false;
  }
  if (s->fns[fn].status != TG__FN_OK)
    prefail(t, s->fns[fn].status == TG__FN_MISSING ? TG_ENOFUNC : TG_EVERSION, "%s",
            s->fns[fn].msg ? s->fns[fn].msg : "function not usable");
  t->fn = s->fns[fn].f;
  *out = t;
  return true;
}

/* A value of s's could not be read: with a reason (e), s is dropped
 * saying it (banned when malformed) and true returned; else false (the
 * caller drops it as malformed). */
static bool refused(tg__worker *wk, wsess *s, const tg_error *e) {
  if (!e->code) return false;
  char m[TG__MAX_MSG];
  if (e->code == TG_EFORMAT) snprintf(m, sizeof m, "malformed message (%s): dropped", e->msg);
  else snprintf(m, sizeof m, "%s: dropped", e->msg);
  tg__wk_drop(wk, s, m, e->code == TG_EFORMAT);
  return true;
}

bool tg__wk_tasks(tg__worker *wk, wsess *s, tg__rbuf *r) {
  double received = tg__now();
  uint64_t seq = tg__rbuf_varint(r);
  uint64_t n = tg__rbuf_count(r, TG__MAX_BATCH);
  tg_value *vals = NULL;
  size_t used;
  tg_error e;
  tg_error_clear(&e);
  if (!r->bad && tg__wire_recv(wk->parts + 2, wk->nparts - 2, &s->stream, &used, &vals, NULL, &e))
    return refused(wk, s, &e);
  if (r->bad || tg_value_type(vals) != TG_LIST || 2 + used != wk->nparts) {
    tg_value_unref(vals);
    return false;
  }
  wrun *run = run_get(wk, s, seq);
  if (!run) {
    tg_value_unref(vals);
    tg__wk_drop(wk, s, "out of memory", false);
    return true;
  }
  run->refs++; /* held while parsing */
  if (wk->draining) wk->drain_taken += n;
  wtask *ready = NULL, **tail = &ready; /* in the message's order: the
                                           client sends the most urgent
                                           first */
  bool ok = true;
  for (uint64_t i = 0; ok && i < n; i++) {
    wtask *t;
    ok = parse_task(wk, s, r, run, vals, &t);
    if (t) t->received = received;
    if (!ok) break;
    if (t->flags & TG__RF_KEEP && t->store) {
      wobj *o = obj_of(wk, s, t->store);
      if (!o) prefail(t, TG_ENOMEM, "out of memory");
      else if (o->state == O_PENDING && !o->maker && !t->prefailed) o->maker = t;
    }
    /* A chain's next link, a tree's sum (one or two waits, on whole
     * results still being made) follows its makers on pool threads. */
    if (t->waits && t->waits <= 2 && !t->prefailed && !wk->inline_calls &&
        tg__wk_pool_link(wk, t))
      continue;
    if (t->waits == 0) {
      t->next = NULL;
      *tail = t;
      tail = &t->next;
    }
  }
  tg_value_unref(vals);
  run_unref(s, run);
  start_tasks(wk, ready);
  return ok && tg__rbuf_end(r);
}

bool tg__wk_put(tg__worker *wk, wsess *s, tg__rbuf *r) {
  uint64_t id = tg__rbuf_varint(r);
  tg_value *v = NULL;
  size_t used;
  tg_error e;
  tg_error_clear(&e);
  if (r->bad || !tg__rbuf_end(r) || id == 0) return false;
  tg__wire_held *held = NULL;
  if (tg__wire_hold(wk->parts + 2, wk->nparts - 2, &s->stream, &used, &held, NULL, &e))
    return refused(wk, s, &e);
  if (2 + used != wk->nparts) {
    tg__wire_held_free(held);
    return false;
  }
  /* The client sends results of other workers on as they came, without
   * decoding them: one that does not decode is refused by itself (the
   * client blames its maker), the client is not dropped for it. */
  int rc = tg__wire_held_decode(held, &v, &e);
  tg__wire_held_free(held);
  if (rc == TG_ENOMEM) return refused(wk, s, &e);
  if (rc != TG_OK) {
    /* Pending: the tasks sent behind the PUT wait for the object, which
     * the client makes again here (or lets go of). */
    wobj *o = obj_of(wk, s, id);
    if (o && o->state == O_PENDING) o->resend = true;
    tg__wbuf h = {0};
    tg__wbuf_u8(&h, TG__M_REFUSED);
    tg__wbuf_varint(&h, id);
    tg__wbuf_cstr(&h, e.msg);
    tg__wk_send(wk, s, &h, NULL);
    tg__wbuf_free(&h);
    return true;
  }
  wobj *o = obj_of(wk, s, id);
  if (!o) {
    tg_value_unref(v);
    tg__wk_drop(wk, s, "out of memory storing a value", false);
    return true;
  }
  tg_value_unref(o->v);
  o->v = v;
  o->state = O_READY;
  o->resend = false;
  wtask *ready = NULL;
  wake(wk, s, o, &ready); /* may drop s (and free o) */
  start_tasks(wk, ready);
  return true;
}

bool tg__wk_fetch(tg__worker *wk, wsess *s, tg__rbuf *r) {
  uint64_t id = tg__rbuf_varint(r);
  if (r->bad || !tg__rbuf_end(r)) return false;
  wobj *o = tg__idmap_get(&s->objs, id);
  if (o && o->state == O_PENDING) {
    wwait *w = tg__wk_wait_new(wk);
    if (w) {
      w->next = o->waiters;
      o->waiters = w;
      return true;
    }
  }
  wobj missing = {.id = id, .state = O_FAILED};
  send_value_reply(wk, s, o && o->state == O_READY ? o : &missing);
  return true;
}

static void obj_drop(tg__worker *wk, wsess *s, wobj *o) {
  if (o->state == O_PENDING) { /* its maker is running: forget it then */
    o->freed = true;
    return;
  }
  tg__idmap_del(&s->objs, o->id);
  obj_free(wk, o);
}

/* o waited to be sent again and its client let it go instead: what waits
 * for it fails now rather than at the session's end. */
static void resend_given_up(tg__worker *wk, wsess *s, wobj *o) {
  static const char why[] = "its client let it go before sending it again";
  o->state = O_FAILED;
  o->code = TG_ECANCELED;
  if ((o->msg = tg__malloc(sizeof why))) memcpy(o->msg, why, sizeof why);
  wtask *ready = NULL;
  wake(wk, s, o, &ready); /* may drop s (and free o) */
  start_tasks(wk, ready);
  if (s->dead) return;
  tg__idmap_del(&s->objs, o->id);
  obj_free(wk, o);
}

bool tg__wk_free(tg__worker *wk, wsess *s, tg__rbuf *r) {
  uint64_t n = tg__rbuf_count(r, r->len);
  for (uint64_t i = 0; i < n && !r->bad && !s->dead; i++) {
    wobj *o = tg__idmap_get(&s->objs, tg__rbuf_varint(r));
    if (!o || r->bad) continue;
    if (o->state == O_PENDING && o->resend) resend_given_up(wk, s, o);
    else obj_drop(wk, s, o);
  }
  return s->dead || (!r->bad && tg__rbuf_end(r)); /* dropped meanwhile: nothing to add */
}

bool tg__wk_cancel(tg__worker *wk, wsess *s, tg__rbuf *r) {
  (void)wk;
  uint64_t seq = tg__rbuf_varint(r);
  if (r->bad || !tg__rbuf_end(r)) return false;
  for (wrun *x = s->runs; x; x = x->next)
    if (x->seq == seq) atomic_store(&x->cancel, 1);
  return true;
}

/* ---- results ---------------------------------------------------------------- */

static bool push_val(wsess *s, tg_value *v) {
  if (s->nvals == s->cap_vals) {
    size_t c = s->cap_vals ? s->cap_vals * 2 : 64;
    tg_value **p = tg__realloc(s->vals, c * sizeof *p);
    if (!p) return false;
    s->vals = p;
    s->cap_vals = c;
  }
  s->vals[s->nvals++] = v;
  return true;
}

static void put_shape(tg__wbuf *b, const tg_value *v, bool want) {
  tg_type ty = tg_value_type(v);
  if (!want || (ty != TG_LIST && ty != TG_MAP)) {
    tg__wbuf_u8(b, TG__SHAPE_NONE);
  } else if (ty == TG_LIST) {
    tg__wbuf_u8(b, TG__SHAPE_LIST);
    tg__wbuf_varint(b, tg_list_len(v));
  } else {
    size_t n = tg_map_len(v), kl;
    tg__wbuf_u8(b, TG__SHAPE_MAP);
    tg__wbuf_varint(b, n);
    for (size_t i = 0; i < n; i++) {
      const char *k = tg_map_key_at(v, i, &kl);
      tg__wbuf_str(b, k, kl);
    }
  }
}

/* Keep t's result as object t->store (waking its waiters). */
static void keep(tg__worker *wk, wsess *s, wtask *t, wtask **ready) {
  wobj *o = obj_of(wk, s, t->store);
  if (!o) return;
  if (o->maker == t) o->maker = NULL;
  tg_value_unref(o->v);
  o->v = t->rc == TG_OK ? tg_value_ref(t->out) : NULL;
  o->state = t->rc == TG_OK ? O_READY : O_FAILED;
  o->code = t->rc;
  tg__free(o->msg);
  o->msg = NULL;
  if (t->rc != TG_OK && (o->msg = tg__malloc(strlen(t->msg) + 1))) strcpy(o->msg, t->msg);
  wake(wk, s, o, ready);
  if (s->dead) return; /* dropped meanwhile: o went with the session */
  if (o->freed) { /* nobody wants it any more */
    tg__idmap_del(&s->objs, o->id);
    obj_free(wk, o);
  }
}

/* Record finished task t in its session's reply. */
static void finish(tg__worker *wk, wtask *t, wtask **ready) {
  wsess *s = t->s;
  tg__wbuf *b = &s->res;
  /* The client gave its run up: nobody would free a result kept for it
   * (a recomputation's, which others may wait for, is kept as usual). */
  if (t->rc == TG_OK && !(t->flags & TG__RF_KEEP) && tg__wk_run_cancelled(t->run)) {
    tg_value_unref(t->out);
    t->out = NULL;
    t->rc = TG_ECANCELED;
    snprintf(t->msg, sizeof t->msg, "its run was cancelled");
  }
  bool ok = t->rc == TG_OK;
  bool back = ok && ((t->flags & TG__RF_RETURN) ||
                     (t->flags & TG__RF_TIMED && t->secs * 1e6 >= (double)t->min_us));
  bool too_long = ok && (t->flags & TG__RF_SHAPE) &&
                  ((tg_value_type(t->out) == TG_LIST && tg_list_len(t->out) > TG__MAX_SHAPE) ||
                   (tg_value_type(t->out) == TG_MAP && tg_map_len(t->out) > TG__MAX_SHAPE));
  bool kept = ok && !back && t->store && !too_long &&
              ((t->flags & TG__RF_KEEP) || tg__wire_estimate(t->out, s->keep_min) >= s->keep_min);
  bool both = back && t->store && (t->flags & TG__RF_ALSO_KEEP) &&
              tg__wire_estimate(t->out, s->keep_min) >= s->keep_min;
  if (((t->flags & TG__RF_KEEP || kept) && t->store) || both) keep(wk, s, t, ready);
  /* Made at the first call: its dependents' replies tell (retries are
   * reported, to be counted). */
  if (kept && (t->flags & TG__RF_QUIET) && t->calls == 1) return;
  tg__wbuf_varint(b, t->id);
  tg__wbuf_varint(b, t->calls);
  tg__wbuf_varint(b, t->fails);
  tg__wbuf_varint(b, (uint64_t)(t->secs * 1e6));
  /* Where the calls ran and when, on this worker's clock: the client
   * places them on its own (see wire/proto.h). */
  bool called = t->calls > 0 && t->started > 0;
  double wait = called && t->started > t->received ? t->started - t->received : 0;
  tg__wbuf_varint(b, called ? (uint64_t)t->worker + 1 : 0);
  uint64_t received_us = (uint64_t)(t->received * 1e6);
  if (s->nres == 0) s->res_base = received_us;
  tg__wbuf_svarint(b, (int64_t)(received_us - s->res_base));
  tg__wbuf_varint(b, (uint64_t)(wait * 1e6));
  if (!ok) {
    tg__wbuf_u8(b, TG__RS_FAILED);
    tg__wbuf_svarint(b, t->rc);
    tg__wbuf_cstr(b, t->msg);
  } else if (kept) {
    tg__wbuf_u8(b, TG__RS_KEPT);
    tg__wbuf_varint(b, tg__wire_estimate(t->out, SIZE_MAX));
    put_shape(b, t->out, t->flags & TG__RF_SHAPE);
  } else if (!both && tg_value_type(t->out) == TG_INT) { /* in the record */
    tg__wbuf_u8(b, TG__RS_INT);
    tg__wbuf_svarint(b, tg_value_int(t->out));
  } else {
    tg__wbuf_u8(b, both ? TG__RS_BOTH : TG__RS_INLINE);
    tg__wbuf_varint(b, s->nvals);
    if (!push_val(s, tg_value_ref(t->out))) b->oom = true;
  }
  s->nres++;
}

static void flush(tg__worker *wk, wsess *s) {
  s->refs++; /* a failed send drops s: keep it allocated until the end */
  tg__wbuf h = {0};
  tg_value *list = NULL;
  if (!s->res.oom) {
    tg__wbuf_u8(&h, TG__M_RESULTS);
    tg__wbuf_varint(&h, s->nres);
    tg__wbuf_varint(&h, s->res_base);
    tg__wbuf_bytes(&h, s->res.p, s->res.len);
    list = tg_list_take(s->nvals, s->vals); /* takes the references */
    s->nvals = 0;
  }
  for (size_t i = 0; i < s->nvals; i++) tg_value_unref(s->vals[i]);
  s->nvals = 0;
  if (h.oom || !list) tg__wk_drop(wk, s, "out of memory sending results", false);
  else tg__wk_send(wk, s, &h, list);
  tg_value_unref(list);
  tg__wbuf_free(&h);
  tg__wbuf_reset(&s->res);
  s->nres = 0;
  tg__wk_sess_unref(wk, s);
}

void tg__wk_log_line(void *ctx, const char *key, const char *line) {
  wrun *r = ctx;
  tg__worker *wk = r->wk;
  wlog *l = tg__calloc(1, sizeof *l);
  if (l) {
    l->key = tg__malloc(strlen(key) + 1);
    l->line = tg__malloc(strlen(line) + 1);
  }
  if (!l || !l->key || !l->line) {
    if (l) tg__free(l->key), tg__free(l->line);
    tg__free(l);
    return;
  }
  strcpy(l->key, key);
  strcpy(l->line, line);
  l->s = r->s;
  l->run = r->seq;
  pthread_mutex_lock(&wk->mu);
  if (wk->nlogs < TG__WK_MAX_LOGS) {
    *(wk->logs ? wk->logs_tail : &wk->logs) = l;
    wk->logs_tail = &l->next;
    wk->nlogs++;
    l = NULL;
  } else {
    wk->logs_dropped++;
  }
  pthread_mutex_unlock(&wk->mu);
  if (l) tg__free(l->key), tg__free(l->line), tg__free(l);
  if (wk->inline_calls) return; /* the loop logged it: it sends it next */
  uint64_t one = 1;
  ssize_t w = write(wk->wake_fd, &one, sizeof one);
  (void)w;
}

/* Send queued log lines to their clients: before the results of the tasks
 * that logged them, which still hold their sessions. */
static void send_logs(tg__worker *wk, wlog *l, size_t dropped) {
  while (l) {
    wlog *next = l->next;
    if (!l->s->dead) {
      tg__wbuf h = {0};
      tg__wbuf_u8(&h, TG__M_LOG);
      tg__wbuf_varint(&h, l->run);
      tg__wbuf_cstr(&h, l->key);
      tg__wbuf_cstr(&h, l->line);
      tg__wk_send(wk, l->s, &h, NULL);
      tg__wbuf_free(&h);
    }
    tg__free(l->key);
    tg__free(l->line);
    tg__free(l);
    l = next;
  }
  if (dropped && wk->o.verbose)
    fprintf(stderr, "tgraph worker: %zu task log lines dropped (more than %d queued)\n",
            dropped, TG__WK_MAX_LOGS);
}

/* Send the log lines queued so far: before the tasks that logged them
 * are released (they hold the sessions the lines go to). */
static void flush_logs(tg__worker *wk) {
  pthread_mutex_lock(&wk->mu);
  wlog *logs = wk->logs;
  size_t dropped = wk->logs_dropped;
  wk->logs = NULL;
  wk->nlogs = wk->logs_dropped = 0;
  pthread_mutex_unlock(&wk->mu);
  send_logs(wk, logs, dropped);
}

/* The results of every session. */
static void send_replies(tg__worker *wk) {
  for (wsess *s = wk->sessions, *next; s; s = next) {
    next = s->next; /* a failed send drops s */
    if (s->nres && !s->dead) flush(wk, s);
  }
}

/* inline_calls: replies go out when the queue is empty, or once this
 * long passed since the last ones while it lasts (the parent acts on
 * them: more tasks, memory order), whichever comes first. */
#define REPLY_SECS 100e-6

/* inline_calls: call the queued tasks here, each finished at once: its
 * dependents join the queue, so a chain sent ahead runs link after link
 * with no message or wake-up between. */
static void call_queued(tg__worker *wk) {
  double now = 0, sent = 0;
  for (wtask *t; (t = tg__wk_pool_take(wk));) {
    if (now == 0) now = sent = tg__now();
    now = tg__wk_pool_call(wk, t, now);
    if (wk->logs) flush_logs(wk); /* only this thread writes it */
    wk->tasks_done++;
    wtask *ready = NULL;
    if (!t->s->dead) finish(wk, t, &ready);
    task_release(wk, t);
    start_tasks(wk, ready); /* failed ones go to the done list */
    if (wk->q_head && now - sent > REPLY_SECS) {
      send_replies(wk);
      tg__link_flush(wk->link); /* a lost parent is seen by the loop */
      sent = now;
    }
  }
}

void tg__wk_collect(tg__worker *wk) {
  if (!wk->inline_calls) { /* inline: nothing writes it */
    uint64_t x;
    ssize_t rd = read(wk->wake_fd, &x, sizeof x);
    (void)rd;
  }
  bool started = false; /* tasks just made ready: maybe done in a moment */
  for (;;) {
    if (wk->inline_calls) call_queued(wk);
    pthread_mutex_lock(&wk->mu);
    /* A chain's next link takes about a wake-up to run: wait for it here
     * a moment rather than in the poll (a wake-up costs more), while the
     * pool runs the last tasks it was given (not with more queued: the
     * pool needs the processor then). */
    double until = started ? tg__now() + TG__WK_SPIN_SECS : 0;
    for (int spin = 0; started && spin < TG__WK_SPINS && !wk->done && !wk->q_head &&
                       (spin == 0 || tg__now() < until);
         spin++) {
      pthread_mutex_unlock(&wk->mu);
      sched_yield();
      pthread_mutex_lock(&wk->mu);
    }
    wtask *list = wk->done;
    wk->done = NULL;
    wk->owed = false; /* taken: nothing left to wake us for */
    wlog *logs = wk->logs; /* those of the tasks of the list among them */
    size_t dropped = wk->logs_dropped;
    wk->logs = NULL;
    wk->nlogs = wk->logs_dropped = 0;
    pthread_mutex_unlock(&wk->mu);
    send_logs(wk, logs, dropped);
    if (!list) break;
    /* In the order they ended: a chain's links (wtask.then) after the
     * link they follow, a failure before its users' (the list is a
     * stack). */
    wtask *rev = NULL;
    while (list) {
      wtask *t = list;
      list = t->next;
      t->next = rev;
      rev = t;
    }
    list = rev;
    wtask *ready = NULL;
    while (list) {
      wtask *t = list;
      list = t->next;
      wk->tasks_done++;
      if (!t->s->dead) finish(wk, t, &ready);
      task_release(wk, t);
    }
    started = ready != NULL && !wk->inline_calls;
    start_tasks(wk, ready); /* failed ones come back on the done list */
  }
  send_replies(wk);
}

/* Tasks waiting on o's waiters lose that wait; the last frees them. */
static void drop_waiters(tg__worker *wk, wobj *o) {
  wwait *w = o->waiters;
  o->waiters = NULL;
  while (w) {
    wwait *next = w->next;
    if (w->t && --w->t->waits == 0) task_release(wk, w->t);
    tg__wk_wait_free(wk, w);
    w = next;
  }
}

void tg__wk_sess_clear(tg__worker *wk, wsess *s) {
  for (wrun *r = s->runs; r; r = r->next) atomic_store(&r->cancel, 1);
  tg__idmap objs = s->objs;
  s->objs = tg__idmap_seq();
  for (size_t i = 0; objs.s && i <= objs.mask; i++) {
    if (!objs.s[i].key) continue;
    wobj *o = objs.s[i].val;
    drop_waiters(wk, o);
    obj_free(wk, o);
  }
  tg__idmap_free(&objs);
  for (size_t i = 0; i < s->nvals; i++) tg_value_unref(s->vals[i]);
  s->nvals = 0;
  tg__wbuf_reset(&s->res);
  s->nres = 0;
  tg__stream_reset(&s->stream);
}
