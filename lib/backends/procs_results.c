/* lib/backends/procs_results.c: what comes back from workers (hellos,
 * results, acknowledgements, log lines), the forgetting of segments no
 * parent value uses any more, and sending what is queued.
 *
 * Forgetting a segment: its holders are told to forget it (control
 * messages go out before any batch decided later, so a worker's view
 * follows the parent's decisions in order); once every one of them
 * acknowledged, and no parent value took it up again meanwhile, the parent
 * reuses the segment if it made it, or tells the worker that made it to
 * reuse it.
 *
 * Thread safety: the IO thread only. */
#include <stdio.h>

#include "procs_internal.h"

/* ---- segments ---------------------------------------------------------------------- */

static bool push_ptr(void ***v, size_t *n, size_t *cap, void *x) {
  if (*n == *cap) {
    size_t c = *cap ? *cap * 2 : 16;
    void **nv = tg__realloc(*v, c * sizeof *nv);
    if (!nv) return false;
    *v = nv;
    *cap = c;
  }
  (*v)[(*n)++] = x;
  return true;
}

static bool alive(const tg__pworker *w) {
  return w->state == TG__PW_STARTING || w->state == TG__PW_UP;
}

static void maybe_retire(tg__ppool *p, tg__pseg *s);

/* Retire s if nothing uses or awaits it any more. */
static void maybe_retire(tg__ppool *p, tg__pseg *s) {
  if (!s->retiring || s->pending || s->cached || atomic_load(&s->nlive)) return;
  uint32_t creator = s->creator;
  int cs = s->creator_slot;
  uint64_t id = s->id;
  if (!tg__psegs_retire(&p->segs, s)) return;
  if (!creator || cs < 0) return;
  tg__pworker *w = &p->ws[cs];
  if (w->spawn != creator || !alive(w)) return;
  if (w->nrelease == w->release_cap) {
    size_t c = w->release_cap ? w->release_cap * 2 : 16;
    uint64_t *v = tg__realloc(w->release, c * sizeof *v);
    if (!v) return; /* the worker keeps it: memory, not correctness */
    w->release = v;
    w->release_cap = c;
  }
  w->release[w->nrelease++] = id;
}

void tg__pd_segments(tg__ppool *p) {
  tg__pseg **v;
  size_t n = tg__psegs_notices(&p->segs, &v);
  for (size_t i = 0; i < n; i++) {
    tg__pseg *s = v[i];
    if (atomic_load(&s->nlive) || s->cached) continue; /* taken up again */
    s->retiring = true;
    for (unsigned k = 0; k < p->nw && k < 64; k++) {
      if (!(s->holders & (UINT64_C(1) << k))) continue;
      tg__pworker *w = &p->ws[k];
      if (!alive(w) || !push_ptr((void ***)&w->forget, &w->nforget, &w->forget_cap, s))
        continue;
      s->pending++;
    }
    s->holders = 0;
    maybe_retire(p, s);
  }
  for (unsigned k = 0; k < p->nw; k++) tg__pd_emit_control(p, &p->ws[k]);
}

static void put_ids(tg__pbuf *b, uint64_t n, const uint64_t *ids, tg__pseg *const *segs) {
  tg__pbuf_varint(b, n);
  for (uint64_t i = 0; i < n; i++) tg__pbuf_varint(b, ids ? ids[i] : segs[i]->id);
}

void tg__pd_emit_control(tg__ppool *p, tg__pworker *w) {
  (void)p;
  if (!w->nforget && !w->nrelease) return;
  if (!alive(w) || w->c.fd < 0) return; /* its death will resolve them */
  uint32_t seq = w->seq + 1;
  if (w->acks_cap - w->nacks < w->nforget) {
    size_t c = w->nacks + w->nforget + 16;
    tg__pforget *a = tg__realloc(w->acks, c * sizeof *a);
    if (!a) return; /* try again later */
    w->acks = a;
    w->acks_cap = c;
  }
  if (tg__pconn_begin(&w->c, TG__PM_CONTROL, seq, 0) != TG_OK ||
      tg__pbuf_reserve(&w->c.out, (2 + w->nforget + w->nrelease) * TG__VARINT_MAX) != TG_OK) {
    tg__pconn_abort(&w->c);
    return;
  }
  put_ids(&w->c.out, w->nforget, NULL, w->forget);
  put_ids(&w->c.out, w->nrelease, w->release, NULL);
  tg__pconn_end(&w->c);
  w->seq = seq;
  for (size_t i = 0; i < w->nforget; i++)
    w->acks[w->nacks++] = (tg__pforget){seq, w->forget[i]};
  w->nforget = w->nrelease = 0;
}

/* Worker w handled our messages up to `ack`. */
static void on_ack(tg__ppool *p, tg__pworker *w, uint32_t ack) {
  if (!tg__seq_le(ack, w->acked)) w->acked = ack;
  while (w->acks_pos < w->nacks && tg__seq_le(w->acks[w->acks_pos].seq, w->acked)) {
    tg__pseg *s = w->acks[w->acks_pos++].seg;
    s->pending--;
    maybe_retire(p, s);
  }
  if (w->acks_pos == w->nacks) w->acks_pos = w->nacks = 0;
}

void tg__pd_acks_lost(tg__ppool *p, tg__pworker *w) {
  size_t from = w->acks_pos, to = w->nacks;
  w->acks_pos = w->nacks = 0;
  for (size_t i = from; i < to; i++) {
    tg__pseg *s = w->acks[i].seg;
    s->pending--;
    maybe_retire(p, s);
  }
  for (size_t i = 0; i < w->nforget; i++) { /* never sent */
    w->forget[i]->pending--;
    maybe_retire(p, w->forget[i]);
  }
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
  if (tg__pdec_u8(d, &st) || tg__pdec_varint(d, dur)) return TG_EPROTO;
  tg__ptask done = *pt;
  if (st == 0) {
    tg_value *v = NULL;
    int rc = tg__pdec_value(d, &v);
    if (rc == TG_EPROTO) return rc;
    pt->t = NULL;
    tg__task_end(&p->w, done.t, rc, v, rc ? "cannot take the result from the worker" : NULL);
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
  tg__pd_task_failed(p, &done, tg__pd_args(b, &done), rc < 0 ? rc : TG_ETASK, buf);
  return TG_OK;
}

static void unlink_head(tg__pworker *w) {
  tg__pbatch *b = w->head;
  w->head = b->next;
  if (!w->head) w->tail = NULL;
  w->nbatches--;
  w->est_out = w->nbatches ? w->est_out - b->est : 0;
  w->unknown_out -= b->unknown;
  w->timeouts_out -= b->timeouts;
  tg__pd_free_batch(b);
}

static int on_results(tg__ppool *p, tg__pworker *w, const tg__pmsg *m) {
  tg__pbatch *b = w->head;
  if (!b || b->seq != m->seq) return TG_EPROTO;
  decctx c = {p, w};
  tg__pdec d = {m->body, m->body + m->len, dec_seg, &c, NULL};
  uint32_t n;
  if (tg__pdec_u32(&d, &n) || n != b->n) return TG_EPROTO;
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
  unlink_head(w);
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
  switch (m->type) {
    case TG__PM_HELLO: rc = on_hello(p, w, m); break;
    case TG__PM_RESULTS: rc = on_results(p, w, m); break;
    case TG__PM_ACK: rc = TG_OK; break;
    case TG__PM_LOG: rc = on_log(p, m); break;
    default: rc = TG_EPROTO;
  }
  if (rc == TG_OK && m->type != TG__PM_HELLO) on_ack(p, w, m->ack);
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
