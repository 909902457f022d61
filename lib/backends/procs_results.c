/* lib/backends/procs_results.c: what comes back from workers (hellos,
 * results, log lines), the giving up of segments no parent value uses any
 * more, and sending what is queued.
 *
 * Giving a segment up (see procs_internal.h for why this is safe at once):
 * the parent reuses it if it made it, tells the worker that made it to
 * reuse it, and tells the other holders to unmap it. Control messages go
 * out before any batch decided later, so a worker's table follows the
 * parent's decisions in order.
 *
 * Thread safety: the IO thread only. */
#include <stdio.h>

#include "procs_internal.h"

/* ---- segments ---------------------------------------------------------------------- */

static bool push_id(uint64_t **v, size_t *n, size_t *cap, uint64_t id) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    uint64_t *nv = tg__realloc(*v, c * sizeof *nv);
    if (!nv) return false; /* the worker keeps a mapping: memory only */
    *v = nv;
    *cap = c;
  }
  (*v)[(*n)++] = id;
  return true;
}

static bool alive(const tg__pworker *w) {
  return w->state == TG__PW_STARTING || w->state == TG__PW_UP;
}

void tg__pd_segments(tg__ppool *p) {
  tg__pseg **v;
  size_t n = tg__psegs_notices(&p->segs, &v);
  for (size_t i = 0; i < n; i++) {
    tg__pseg *s = v[i];
    if (atomic_load(&s->nlive) || s->holds) continue; /* taken up again */
    int cs = s->creator_slot;
    tg__pworker *cw = cs >= 0 ? &p->ws[cs] : NULL;
    bool creator_up = cw && cw->spawn == s->creator && alive(cw);
    for (unsigned k = 0; k < p->nw && k < 64; k++) {
      tg__pworker *w = &p->ws[k];
      if ((s->holders & (UINT64_C(1) << k)) && alive(w) && w != cw)
        push_id(&w->forget, &w->nforget, &w->forget_cap, s->id);
    }
    uint64_t id = s->id;
    if (tg__psegs_retire(&p->segs, s) && creator_up)
      push_id(&cw->release, &cw->nrelease, &cw->release_cap, id);
  }
  for (unsigned k = 0; k < p->nw; k++) tg__pd_emit_control(p, &p->ws[k]);
}

static void put_ids(tg__pbuf *b, uint64_t n, const uint64_t *ids) {
  tg__pbuf_varint(b, n);
  for (uint64_t i = 0; i < n; i++) tg__pbuf_varint(b, ids[i]);
}

void tg__pd_emit_control(tg__ppool *p, tg__pworker *w) {
  (void)p;
  if (!w->nforget && !w->nrelease) return;
  if (!alive(w) || w->c.fd < 0) { /* it unmaps everything by dying */
    w->nforget = w->nrelease = 0;
    return;
  }
  uint32_t seq = w->seq + 1;
  if (tg__pconn_begin(&w->c, TG__PM_CONTROL, seq, 0) != TG_OK ||
      tg__pbuf_reserve(&w->c.out, (2 + w->nforget + w->nrelease) * TG__VARINT_MAX) != TG_OK) {
    tg__pconn_abort(&w->c);
    return;
  }
  put_ids(&w->c.out, w->nforget, w->forget);
  put_ids(&w->c.out, w->nrelease, w->release);
  tg__pconn_end(&w->c);
  w->seq = seq;
  w->nforget = w->nrelease = 0;
}

/* ---- results ------------------------------------------------------------------------ */

typedef struct decctx {
  tg__ppool *p;
  tg__pworker *w;
} decctx;

static int dec_seg(void *ctx, const tg__pref *ref, tg_value **out) {
  decctx *c = ctx;
  int fd = ref->has_fd ? tg__pconn_take_fd(&c->w->c) : -1;
  if (ref->has_fd && fd < 0) return TG_EPROTO;
  return tg__psegs_value(&c->p->segs, ref, fd, c->w->slot, c->w->spawn, out);
}

/* The outcome of task pt (of batch b) from the decoder; *dur: how long it
 * ran, in ns. */
static int one_result(tg__ppool *p, tg__pbatch *b, tg__ptask *pt, tg__pdec *d,
                      uint64_t *dur) {
  uint8_t st;
  uint64_t t0;
  if (tg__pdec_u8(d, &st) || tg__pdec_varint(d, &t0) || tg__pdec_varint(d, dur) ||
      t0 > INT64_MAX)
    return TG_EPROTO;
  tg__ptask done = *pt;
  double secs = (double)*dur * 1e-9;
  if (st == 0) {
    tg_value *v = NULL;
    int rc = tg__pdec_value(d, &v);
    if (rc == TG_EPROTO) return rc;
    pt->t = NULL;
    tg__call_report rep = tg__pd_report(p, &done, (int64_t)t0, secs);
    tg__task_end_report(&p->w, done.t, rc, v,
                        rc ? "cannot take the result from the worker" : NULL, &rep);
    tg__pd_take_made_ready(p);
    return TG_OK;
  }
  uint64_t code;
  const char *msg;
  size_t len;
  if (tg__pdec_varint(d, &code) || tg__pdec_str(d, &msg, &len)) return TG_EPROTO;
  char buf[512];
  snprintf(buf, sizeof buf, "%.*s", (int)(len < sizeof buf ? len : sizeof buf - 1), msg);
  int rc = (int)tg__unzigzag(code);
  pt->t = NULL;
  tg__pd_task_failed(p, &done, tg__pd_args(b, &done), rc < 0 ? rc : TG_ETASK, buf,
                     (int64_t)t0, secs);
  return TG_OK;
}

static void unlink_head(tg__ppool *p, tg__pworker *w) {
  tg__pbatch *b = w->head;
  w->head = b->next;
  if (!w->head) w->tail = NULL;
  w->nbatches--;
  w->est_out = w->nbatches ? w->est_out - b->est : 0;
  w->unknown_out -= b->unknown;
  w->timeouts_out -= b->timeouts;
  tg__pd_free_batch(p, b);
}

static int on_results(tg__ppool *p, tg__pworker *w, const tg__pmsg *m) {
  tg__pbatch *b = w->head;
  if (!b || b->seq != m->seq) return TG_EPROTO;
  decctx c = {p, w};
  tg__pdec d = {m->body, m->body + m->len, dec_seg, &c, NULL};
  uint32_t n;
  if (tg__pdec_u32(&d, &n) || n != b->n) return TG_EPROTO;
  p->w.worker = w->slot; /* for task events */
  const tg_func *fn = NULL;
  double sum = 0;
  uint32_t cnt = 0;
  for (uint32_t i = 0; i < n; i++) {
    tg__ptask *pt = &b->t[i];
    if (pt->fn != fn) {
      tg__pd_est_update(p, fn, sum, cnt);
      fn = pt->fn;
      sum = 0;
      cnt = 0;
    }
    uint64_t dur;
    int rc = one_result(p, b, pt, &d, &dur);
    if (rc != TG_OK) return rc;
    sum += (double)dur * 1e-9;
    cnt++;
  }
  tg__pd_est_update(p, fn, sum, cnt);
  if (d.p != d.end) return TG_EPROTO;
  unlink_head(p, w);
  w->quick_deaths = 0;
  return TG_OK;
}

/* ---- other messages ------------------------------------------------------------------- */

static int on_log(tg__ppool *p, const tg__pmsg *m) {
  tg__pdec d = {m->body, m->body + m->len, NULL, NULL, NULL};
  const char *k, *l;
  size_t kl, ll;
  if (tg__pdec_str(&d, &k, &kl) || tg__pdec_str(&d, &l, &ll)) return TG_EPROTO;
  char key[TG__NAME_MAX + 64], line[1100];
  snprintf(key, sizeof key, "%.*s", (int)(kl < sizeof key ? kl : sizeof key - 1), k);
  snprintf(line, sizeof line, "%.*s", (int)(ll < sizeof line ? ll : sizeof line - 1), l);
  if (p->ex->log) p->ex->log(p->ex->log_ctx, key, line);
  else fprintf(stderr, "[%s] %s\n", key, line);
  return TG_OK;
}

static int on_hello(tg__ppool *p, tg__pworker *w, const tg__pmsg *m) {
  tg__pdec d = {m->body, m->body + m->len, NULL, NULL, NULL};
  uint64_t pid;
  if (tg__pdec_varint(&d, &pid) || (pid_t)pid != w->pid || w->state != TG__PW_STARTING)
    return TG_EPROTO;
  w->state = TG__PW_UP;
  w->started = tg__now();
  pthread_mutex_lock(&p->mu);
  p->nup++;
  pthread_cond_broadcast(&p->cv);
  pthread_mutex_unlock(&p->mu);
  return TG_OK;
}

int tg__pd_message(tg__ppool *p, tg__pworker *w, const tg__pmsg *m) {
  int rc;
  p->w.worker = (int)w->slot; /* task events name the worker */
  switch (m->type) {
    case TG__PM_HELLO: rc = on_hello(p, w, m); break;
    case TG__PM_RESULTS: rc = on_results(p, w, m); break;
    case TG__PM_LOG: rc = on_log(p, m); break;
    default: rc = TG_EPROTO;
  }
  return rc;
}

void tg__pd_flush(tg__ppool *p) {
  for (unsigned k = 0; k < p->nw; k++) {
    tg__pworker *w = &p->ws[k];
    if (!alive(w) || w->c.fd < 0) continue;
    tg__pd_emit_control(p, w);
    if (w->c.out.len == w->c.out_pos) continue;
    size_t before = w->c.sent;
    int rc = tg__pconn_flush(&w->c, false);
    p->stats.sock_out += w->c.sent - before;
    if (rc < 0) tg__pf_eof(p, w);
    else tg__pp_want_out(p, w, rc == 1);
  }
}
