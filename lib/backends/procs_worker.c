/* lib/backends/procs_worker.c: a worker process's main loop: take batches
 * of calls from the parent, run them one after the other, and send their
 * outcomes back as one message per batch.
 *
 * A task runs with a context like the one the threads backend gives it,
 * the worker being its task host (registry/taskhost.h): its key (rebuilt
 * from the node id or the user key sent along, through a one-node graph),
 * worker index, attempt, timeout, cancellation (a flag in memory shared
 * with the parent, which sets it) and logging (lines go to the parent as
 * messages).
 *
 * The shared slot also says which task is running and since when, so the
 * parent can name the task a dead worker was running and enforce
 * timeouts. Messages are handled strictly in order, which is what makes
 * "forget" instructions safe (procs_internal.h). */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "procs_internal.h"
#include "registry/taskhost.h"

#define TRIM_AFTER 2.0 /* seconds a free segment is kept */
#define SPIN_NS 50000  /* looking for the next batch before sleeping */

typedef struct wk {
  const tg__pworker_cfg *cfg;
  tg__pconn c;
  tg__wsegs *segs;
  tg__pshared *sh;
  uint32_t last_seq;       /* last parent message handled */
  tg_graph g;              /* a graph of the one node, for keys */
  tg__gnode node;
  uint32_t orig;           /* the node's id in the parent's graph */
  char *key;               /* user key buffer */
  size_t key_cap;
  tg_value **args;
  size_t args_cap;
  tg__wstates states;      /* this process's own: never the parent's */
} wk;

int64_t tg__pnow_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static _Noreturn void leave(int code) {
  fflush(NULL);
  _exit(code);
}

static _Noreturn void proto_fail(const char *what) {
  fprintf(stderr, "tgraph worker %d: malformed message from the parent: %s\n",
          (int)getpid(), what ? what : "bad message");
  leave(TG__PWORKER_EPROTO);
}

static void send_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
    if (k < 0 && errno == EINTR) continue;
    if (k <= 0) leave(0); /* the parent is gone */
    p += k;
    n -= (size_t)k;
  }
}

static void flush(wk *k) {
  if (tg__pconn_flush(&k->c, true) != TG_OK) leave(0);
}

/* tg_task_log() in a worker: the line goes to the parent right away (the
 * results being built are not sent yet, so nothing interleaves). */
static void log_line(void *ctx, const char *key, const char *line) {
  wk *k = ctx;
  size_t kl = strlen(key), ll = strlen(line);
  tg__pbuf b = {0};
  if (tg__pbuf_reserve(&b, TG__PMSG_HDR + 2 * TG__VARINT_MAX + kl + ll) != TG_OK) return;
  memset(b.p, 0, TG__PMSG_HDR);
  b.p[4] = TG__PM_LOG;
  memcpy(b.p + 12, &k->last_seq, 4);
  b.len = TG__PMSG_HDR;
  tg__penc_str(&b, key, kl);
  tg__penc_str(&b, line, ll);
  uint32_t len = (uint32_t)(b.len - TG__PMSG_HDR);
  memcpy(b.p, &len, 4);
  send_all(k->c.fd, b.p, b.len);
  tg__pbuf_free(&b);
}

/* The worker hosts its tasks: the parent's flag, keys through the graph
 * of the one node, lines to the parent. */
static bool host_cancelled(void *self) {
  return atomic_load_explicit(&((wk *)self)->sh->cancel, memory_order_acquire) != 0;
}

static const char *host_key(void *self, uint32_t node, char *buf, size_t size) {
  return tg__graph_key(&((wk *)self)->g, node, buf, size);
}

static const tg__task_host_ops host = {
    .cancelled = host_cancelled, .key = host_key, .log = log_line};

/* ---- one task ----------------------------------------------------------------------- */

typedef struct call {
  const tg_func *fn;
  uint8_t kind;
  uint64_t aux, attempt, nargs;
  float timeout; /* seconds per attempt, 0 = none */
} call;

/* Read a task's header and arguments into c and k->args. */
static void read_task(wk *k, tg__pdec *d, call *c) {
  uint64_t fi, key;
  if (tg__pdec_varint(d, &fi) || tg__pdec_u8(d, &c->kind) ||
      tg__pdec_varint(d, &c->aux) || tg__pdec_varint(d, &key))
    proto_fail(d->err);
  c->fn = fi < k->cfg->nfuncs ? tg_registry_at(k->cfg->reg, (size_t)fi) : NULL;
  k->node.key = (uint32_t)(key & 1);
  k->orig = (uint32_t)(key >> 1);
  if (key & 1) { /* a user key */
    const char *s;
    size_t n;
    if (tg__pdec_str(d, &s, &n)) proto_fail(d->err);
    if (n + 1 > k->key_cap) {
      char *nk = tg__realloc(k->key, n + 1);
      if (!nk) leave(TG__PWORKER_ENOMEM);
      k->key = nk;
      k->key_cap = n + 1;
    }
    memcpy(k->key, s, n);
    k->key[n] = '\0';
    k->g.keys = k->key;
  }
  uint64_t tbits;
  if (tg__pdec_varint(d, &c->attempt) || tg__pdec_varint(d, &tbits) ||
      tg__pdec_varint(d, &c->nargs) || tbits > UINT32_MAX)
    proto_fail(d->err ? d->err : "bad timeout");
  uint32_t t32 = (uint32_t)tbits;
  memcpy(&c->timeout, &t32, 4);
  if (!(c->timeout >= 0)) c->timeout = 0;
  if (c->nargs > (size_t)(d->end - d->p)) proto_fail("argument count too large");
  if (c->nargs > k->args_cap) {
    tg_value **a = tg__realloc(k->args, c->nargs * sizeof *a);
    if (!a) leave(TG__PWORKER_ENOMEM);
    k->args = a;
    k->args_cap = c->nargs;
  }
  for (size_t j = 0; j < c->nargs; j++) {
    int rc = tg__pdec_value(d, &k->args[j]);
    if (rc == TG_EPROTO) proto_fail(d->err);
    if (rc != TG_OK) leave(TG__PWORKER_ENOMEM);
  }
}

/* Call it as task.c's call() does one attempt; the failure message is
 * left in ctx. */
static int invoke(wk *k, const call *c, tg_task_ctx *ctx, tg_value **out) {
  if (!c->fn)
    return tg_task_fail(ctx, TG_ENOFUNC,
                        "function not in this worker's registry (registered after "
                        "the processes pool started?)");
  k->node.fn = c->fn;
  k->node.kind = c->kind;
  k->node.aux = (uint32_t)c->aux;
  k->node.nargs = (uint32_t)c->nargs;
  k->node.timeout = c->timeout;
  if (c->kind == TG__NK_CHUNK &&
      (c->aux > UINT32_MAX || tg__chunk_count((uint32_t)c->aux) > c->nargs ||
       tg__chunk_count((uint32_t)c->aux) == 0 ||
       tg__chunk_pos((uint32_t)c->aux) > c->nargs - tg__chunk_count((uint32_t)c->aux)))
    return tg_task_fail(ctx, TG_EINVAL, "malformed chunk");
  return tg__task_invoke(ctx, &k->node, k->args, out);
}

static void put_failure(wk *k, int64_t t0, int64_t dur, int rc, const char *msg) {
  tg__pbuf *b = &k->c.out;
  if (tg__pbuf_reserve(b, 1 + 3 * TG__VARINT_MAX) != TG_OK) leave(TG__PWORKER_ENOMEM);
  tg__pbuf_u8(b, 1);
  tg__pbuf_varint(b, (uint64_t)t0);
  tg__pbuf_varint(b, (uint64_t)dur);
  tg__pbuf_varint(b, tg__zigzag(rc));
  if (tg__penc_str(b, msg, strlen(msg)) != TG_OK) leave(TG__PWORKER_ENOMEM);
}

static void run_task(wk *k, uint32_t seq, uint32_t i, tg__pdec *d) {
  call c;
  read_task(k, d, &c);
  tg_task_ctx ctx;
  tg__task_ctx_init(&ctx, c.fn, (tg__task_host){&host, k}, 0, k->cfg->slot, (int)c.attempt);
  ctx.states = &k->states;
  int64_t t0 = tg__pnow_ns();
  if (c.timeout > 0) ctx.deadline = (double)t0 * 1e-9 + (double)c.timeout;
  atomic_store_explicit(&k->sh->start_ns, t0, memory_order_relaxed);
  uint64_t cur = (uint64_t)seq << 32 | (uint64_t)i << 1;
  atomic_store_explicit(&k->sh->cur, cur | 1, memory_order_release);
  tg_value *out = NULL;
  int rc = invoke(k, &c, &ctx, &out);
  int64_t dur = tg__pnow_ns() - t0;
  atomic_store_explicit(&k->sh->cur, cur, memory_order_release);
  for (size_t j = 0; j < c.nargs; j++) tg_value_unref(k->args[j]);
  if (rc == TG_OK) {
    tg__pbuf *b = &k->c.out;
    int erc = tg__pbuf_reserve(b, 1 + 2 * TG__VARINT_MAX);
    if (erc == TG_OK) {
      tg__pbuf_u8(b, 0);
      tg__pbuf_varint(b, (uint64_t)t0);
      tg__pbuf_varint(b, (uint64_t)dur);
      erc = tg__penc_value(b, out, tg__wsegs_enc, k->segs);
    }
    tg_value_unref(out);
    /* Out of memory half-way: segments may count as passed already, so
     * the parent's view cannot be kept right; end, the parent retries. */
    if (erc != TG_OK) leave(TG__PWORKER_ENOMEM);
    return;
  }
  tg_value_unref(out);
  put_failure(k, t0, dur, rc, ctx.fail_code ? ctx.msg : "");
}

/* ---- messages ---------------------------------------------------------------------- */

static void run_batch(wk *k, const tg__pmsg *m) {
  tg__pdec d = {m->body, m->body + m->len, tg__wsegs_dec, k->segs, NULL};
  uint32_t n;
  if (tg__pdec_u32(&d, &n) || n > m->len) proto_fail(d.err);
  if (tg__pconn_begin(&k->c, TG__PM_RESULTS, m->seq, m->seq) != TG_OK ||
      tg__pbuf_reserve(&k->c.out, 4) != TG_OK)
    leave(TG__PWORKER_ENOMEM);
  tg__pbuf_mem(&k->c.out, &n, 4);
  for (uint32_t i = 0; i < n; i++) run_task(k, m->seq, i, &d);
  if (d.p != d.end) proto_fail("trailing bytes after the tasks");
  tg__pconn_end(&k->c);
  flush(k);
}

static void control(wk *k, const tg__pmsg *m) {
  tg__pdec d = {m->body, m->body + m->len, NULL, NULL, NULL};
  for (int pass = 0; pass < 2; pass++) { /* forgets, then releases */
    uint64_t n, id;
    if (tg__pdec_varint(&d, &n) || n > m->len) proto_fail(d.err);
    for (uint64_t i = 0; i < n; i++) {
      if (tg__pdec_varint(&d, &id)) proto_fail(d.err);
      if (pass == 0) tg__wsegs_forget(k->segs, id);
      else tg__wsegs_release(k->segs, id);
    }
  }
}

/* Wait until the socket is readable, trimming idle segments meanwhile. */
static void wait_input(wk *k) {
  /* The next batch often follows the results at once (a chain): look for
   * it a little before sleeping, which costs a wake-up on each side. */
  int64_t until = tg__pnow_ns() + SPIN_NS;
  do {
    struct pollfd pf = {k->c.fd, POLLIN, 0};
    if (poll(&pf, 1, 0) > 0) return;
    sched_yield();
  } while (tg__pnow_ns() < until);
  bool pooled = tg__wsegs_trim(k->segs, tg__now() - TRIM_AFTER);
  for (;;) {
    struct pollfd pf = {k->c.fd, POLLIN, 0};
    int r = poll(&pf, 1, pooled ? (int)(TRIM_AFTER * 1000) : -1);
    if (r > 0) return;
    if (r < 0 && errno != EINTR) leave(0);
    pooled = tg__wsegs_trim(k->segs, tg__now() - TRIM_AFTER);
  }
}

static void setup(wk *k, const tg__pworker_cfg *cfg) {
  memset(k, 0, sizeof *k);
  k->cfg = cfg;
  k->sh = cfg->shared;
  tg__pconn_init(&k->c, cfg->sock);
  k->segs = tg__wsegs_new(cfg->spawn, &k->c);
  if (!k->segs) leave(TG__PWORKER_ENOMEM);
  k->g.nodes = &k->node;
  k->g.n = 1;
  k->g.orig = &k->orig;
  k->g.reg = cfg->reg;
}

_Noreturn void tg__pworker_main(const tg__pworker_cfg *cfg) {
  wk k;
  setup(&k, cfg);
  if (tg__pconn_begin(&k.c, TG__PM_HELLO, 0, 0) != TG_OK ||
      tg__pbuf_reserve(&k.c.out, TG__VARINT_MAX) != TG_OK)
    leave(TG__PWORKER_ENOMEM);
  tg__pbuf_varint(&k.c.out, (uint64_t)getpid());
  tg__pconn_end(&k.c);
  flush(&k);
  for (;;) {
    tg__pmsg m;
    int r = tg__pconn_next(&k.c, &m);
    if (r < 0) proto_fail("bad framing");
    if (r == 0) {
      wait_input(&k);
      ssize_t got = tg__pconn_fill(&k.c, true);
      if (got == TG_EPROTO) proto_fail("file descriptors lost (fd limit?)");
      if (got <= 0) { /* the parent closed the socket: done */
        tg__wstates_teardown(&k.states); /* only on this normal end */
        leave(0);
      }
      continue;
    }
    if (m.type == TG__PM_BATCH) run_batch(&k, &m);
    else if (m.type == TG__PM_CONTROL) control(&k, &m);
    else proto_fail("unexpected message type");
    k.last_seq = m.seq;
    tg__pconn_done(&k.c);
  }
}
