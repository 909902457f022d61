/* lib/offload/handle.c: results kept on workers: handles, the
 * placeholder values standing for them in the engine (released through
 * an empty array's release callback, on any thread), freeing them on the
 * workers, and the per-run state the backend keeps. */
#include <stdio.h>
#include <string.h>

#include "offload/engine.h"
#include "value/value_internal.h"
#include "wire/wire.h"

/* ---- handles -------------------------------------------------------------- */

ofl_handle *tg__ofl_handle_new(ofl *b, uint8_t kind, uint64_t id) {
  ofl_handle *h = tg__recycle_get(&b->handle_blocks); /* one per quiet task */
  if (!h) return NULL;
  memset(h, 0, sizeof *h);
  atomic_init(&h->refs, 1);
  h->kind = kind;
  h->id = id ? id : b->next_id++;
  h->fetching = -1;
  h->moved_from = -1;
  if (!tg__idmap_put(&b->handles, h->id, h)) {
    tg__recycle_put(&b->handle_blocks, h);
    return NULL;
  }
  return h;
}

void tg__ofl_handle_ref(ofl_handle *h) { atomic_fetch_add(&h->refs, 1); }

bool tg__ofl_handle_ref_alive(ofl_handle *h) {
  uint32_t r = atomic_load(&h->refs);
  while (r > 0)
    if (atomic_compare_exchange_weak(&h->refs, &r, r + 1)) return true;
  return false;
}

void tg__ofl_handle_unref(ofl *b, ofl_handle *h) {
  if (!h || atomic_fetch_sub(&h->refs, 1) != 1) return;
  if (atomic_exchange(&h->queued, 1)) return; /* already queued */
  pthread_mutex_lock(&b->mu);
  bool first = b->freeq == NULL;
  h->qnext = b->freeq;
  b->freeq = h;
  pthread_mutex_unlock(&b->mu);
  /* The I/O thread reaps the queue at the end of its turn, and looks at
   * it before it sleeps: waking itself would cost two system calls and a
   * turn (once per reply that frees placeholders). */
  if (first && !tg__ofl_on_io(b)) tg__ofl_wake(b);
}

/* Tell the workers holding h to drop it. */
static void free_remote(ofl *b, ofl_handle *h) {
  for (int i = 0; i < b->nconns && tg__holders_any(&h->locs); i++) {
    ofl_conn *c = b->conns[i];
    if (!tg__holders_has(&h->locs, i) || c->state != CS_READY) continue;
    tg__wbuf_varint(&c->frees, h->id);
    c->nfrees++;
  }
}

static void handle_free(ofl *b, ofl_handle *h) {
  tg__idmap_del(&b->handles, h->id);
  if (h->kind == H_OBJ || h->kind == H_CONST) free_remote(b, h);
  if (h->run) {
    h->run->shapes -= h->shape_cost;
    if (h->run->handle_of && h->run->handle_of[h->task] == h) h->run->handle_of[h->task] = NULL;
    tg__ofl_run_unuse(b, h->run);
  }
  if (h->parent) tg__ofl_handle_unref(b, h->parent);
  tg_value_unref(h->local);
  tg__wire_held_free(h->held);
  tg__free(h->key);
  tg__free(h->waiters);
  tg__holders_free(&h->locs);
  tg__recycle_put(&b->handle_blocks, h);
}

void tg__ofl_handles_reap(ofl *b) {
  for (;;) {
    pthread_mutex_lock(&b->mu);
    ofl_handle *h = b->freeq;
    b->freeq = NULL;
    pthread_mutex_unlock(&b->mu);
    if (!h) return;
    while (h) {
      ofl_handle *next = h->qnext;
      atomic_store(&h->queued, 0);
      if (atomic_load(&h->refs) == 0) handle_free(b, h); /* may queue a parent */
      h = next;
    }
  }
}

/* ---- placeholders ------------------------------------------------------------ */

static void ph_release(void *ctx, void *data) { tg__ofl_handle_unref(ctx, data); }

/* An empty u8 array of shape (0, OFL_MAGIC, id) whose data pointer is h. */
static tg_value *marker(ofl *b, ofl_handle *h) {
  int64_t shape[3] = {0, OFL_MAGIC, (int64_t)h->id};
  tg__ofl_handle_ref(h); /* the marker's; released by wrap on failure too */
  return tg_ndarray_wrap(TG_DT_U8, 3, shape, h, ph_release, b);
}

/* The placeholder all items of parent's list/map share (an ITEMS
 * handle): which item a dependent selects is in the graph, so a handle
 * per item is made only for the items sent (tg__ofl_handle_item), not one
 * per item the worker reported. */
static tg_value *items(ofl *b, ofl_handle *parent) {
  ofl_handle *e = tg__ofl_handle_new(b, H_ITEMS, 0);
  if (!e) return NULL;
  tg__ofl_handle_ref(parent);
  e->parent = parent;
  tg_value *v = marker(b, e);
  tg__ofl_handle_unref(b, e); /* the marker holds it now */
  return v;
}

uint64_t tg__ofl_shape_cost(uint8_t shape, uint64_t n, uint64_t keybytes) {
  /* An item pointer per list item; a map entry (key copy, value, hash
   * slots) per key. */
  return shape == TG__SHAPE_LIST ? 64 + 8 * n
         : shape == TG__SHAPE_MAP ? 64 + 64 * n + keybytes : 0;
}

tg_value *tg__ofl_placeholder(ofl *b, ofl_handle *h, uint8_t shape, size_t n,
                          const char **keys, const size_t *keylen, bool *dup) {
  *dup = false;
  if (shape == TG__SHAPE_NONE || n == 0) return marker(b, h);
  tg_value *x = items(b, h);
  tg_value *v = !x ? NULL : shape == TG__SHAPE_LIST ? tg_list_alloc(n) : tg_map_new(n);
  for (size_t i = 0; v && i < n; i++) {
    int rc = shape == TG__SHAPE_LIST ? tg_list_init_item(v, i, tg_value_ref(x))
                                     : tg_map_put(v, keys[i], keylen[i], tg_value_ref(x));
    if (rc == TG_OK && shape == TG__SHAPE_MAP && tg_map_len(v) != i + 1) {
      rc = TG_EINVAL;
      *dup = true;
    }
    if (rc != TG_OK) {
      tg_value_unref(v);
      v = NULL;
    }
  }
  tg_value_unref(x);
  h->container = v;
  return v;
}

/* Immortal (ref and unref do nothing): one for every engine, any thread. */
static tg_value gone = {.refs = 1, .type = TG_NULL, .flags = TG__F_IMMORTAL};

tg_value *tg__ofl_gone(void) { return &gone; }

static ofl_handle *marker_handle(ofl *b, const tg_value *v) {
  if (tg_value_type(v) != TG_NDARRAY || tg_ndarray_ndim(v) != 3) return NULL;
  const int64_t *s = tg_ndarray_shape(v);
  if (s[0] != 0 || s[1] != OFL_MAGIC) return NULL;
  ofl_handle *h = tg__idmap_get(&b->handles, (uint64_t)s[2]);
  return h && (const void *)h == tg_ndarray_data(v) ? h : NULL;
}

ofl_handle *tg__ofl_handle_of_value(ofl *b, const tg_value *v) {
  if (tg__is_imm(v)) return NULL; /* asked of every argument sent */
  tg_type t = tg_value_type(v);
  if (t != TG_NDARRAY && t != TG_LIST && t != TG_MAP) return NULL;
  ofl_handle *h = t == TG_NDARRAY ? marker_handle(b, v) : NULL;
  if (h) return h;
  const tg_value *first = t == TG_LIST && tg_list_len(v) ? tg_list_get(v, 0)
                          : t == TG_MAP && tg_map_len(v) ? tg_map_value_at(v, 0)
                                                         : NULL;
  ofl_handle *e = first ? marker_handle(b, first) : NULL;
  return e && e->kind == H_ITEMS && e->parent->container == v ? e->parent : NULL;
}

/* ---- runs --------------------------------------------------------------------- */

/* Which tasks have dependents that select an item or key of them (the
 * plan tells whether any does: most plans need no pass over their
 * tasks). */
static void mark_selected(ofl_run *rs) {
  const tg__run *r = rs->r;
  const tg__runplan *p = &r->plan;
  for (uint32_t i = 0; p->has_selects && i < p->ntasks; i++) {
    const tg__gnode *nd = &r->g->nodes[p->tasks[i].node];
    const tg__garg *a = tg__node_args(r->g, nd);
    if (p->tasks[i].flags & TG__T_CACHED) continue;
    for (uint32_t j = 0; j < nd->nargs; j++)
      if (a[j].kind == TG_ARG_ITEM || a[j].kind == TG_ARG_KEY) {
        uint32_t ti = p->task_of[a[j].node];
        if (ti != UINT32_MAX) rs->flags[ti] |= RF_SELECTED;
      }
  }
}

/* Most intermediate results alive at once when rs's tasks run one at a
 * time in plan order (as sync runs them): a result is born with its task
 * (when a task that will run uses it; outputs are not counted, as the
 * engine's peak_live does not count them) and dies after its last
 * running dependent. */
static int64_t seq_peak(const ofl_run *rs) {
  const tg__runplan *p = &rs->r->plan;
  uint32_t *die = tg__calloc(p->ntasks ? p->ntasks : 1, sizeof *die);
  if (!die) return INT64_MAX / 4; /* out of memory: no bound */
  int64_t live = 0, peak = 0;
  size_t o = 0; /* outputs by task (out_order): the next one's index */
  for (uint32_t i = 0; i < p->ntasks; i++) {
    uint32_t last = UINT32_MAX, end = p->dep_off[i + 1];
    /* Without cache hits the last dependent runs: the pass reads the
     * CSR arrays alone, not the tasks (a plan of millions). */
    if (!p->ncached && end > p->dep_off[i]) last = p->deps[end - 1];
    for (uint32_t k = end; p->ncached && k > p->dep_off[i]; k--)
      if (!(p->tasks[p->deps[k - 1]].flags & TG__T_CACHED)) {
        last = p->deps[k - 1];
        break;
      }
    bool output = false;
    while (o < p->nout && p->out_task[p->out_order[o]] <= i)
      output |= p->out_task[p->out_order[o++]] == i;
    if (last != UINT32_MAX && !output) {
      die[last]++;
      live++;
    }
    if (live > peak) peak = live;
    live -= die[i];
  }
  tg__free(die);
  return peak;
}

/* A run's state and its per-task arrays (any of them may be NULL). */
static void run_free(ofl_run *rs) {
  tg__free(rs->flags);
  tg__free(rs->rebuilds);
  tg__free(rs->handle_of);
  tg__free(rs->held);
  tg__free(rs->early);
  tg__free(rs->bound);
  tg__free(rs->bound_id);
  tg__free(rs->blocked_by);
  tg__free(rs->deferred);
  tg__free(rs->stack);
  tg__free(rs->silent);
  tg__free(rs->fold_of);
  tg__free(rs);
}

/* tg__ofl_run_get past its one-entry cache. Not inlined there: its
 * registers would be saved and restored on every call, the cached ones
 * (two per task) included. */
static __attribute__((noinline)) ofl_run *run_find(ofl *b, tg__run *r) {
  ofl_run *rs = tg__idmap_get(&b->runs_by_seq, r->seq + 1);
  if (rs) return b->last_run = rs;
  rs = tg__calloc(1, sizeof *rs);
  if (!rs) return NULL;
  rs->r = r;
  rs->seq = r->seq;
  rs->ntasks = r->plan.ntasks;
  size_t n = rs->ntasks ? rs->ntasks : 1;
  rs->flags = tg__calloc(n, 1);
  rs->rebuilds = tg__calloc(n, 1);
  rs->handle_of = tg__calloc(n, sizeof *rs->handle_of);
  rs->held = tg__calloc(n, sizeof *rs->held);
  rs->early = tg__calloc(n, sizeof *rs->early);
  rs->bound = tg__calloc(n, sizeof *rs->bound);
  rs->bound_id = tg__calloc(n, sizeof *rs->bound_id);
  rs->blocked_by = tg__calloc(n, sizeof *rs->blocked_by);
  rs->silent = tg__calloc(n, sizeof *rs->silent);
  rs->fold_of = tg__calloc(n, sizeof *rs->fold_of);
  if (!rs->silent || !rs->fold_of || !rs->flags || !rs->rebuilds || !rs->handle_of ||
      !rs->held || !rs->early || !rs->bound || !rs->bound_id || !rs->blocked_by ||
      !tg__idmap_put(&b->runs_by_seq, r->seq + 1, rs)) {
    run_free(rs);
    return NULL;
  }
  mark_selected(rs);
  rs->seq_peak = seq_peak(rs);
  rs->next = b->runs;
  b->runs = rs;
  return b->last_run = rs;
}

ofl_run *tg__ofl_run_get(ofl *b, tg__run *r) {
  ofl_run *rs = b->last_run;
  if (rs && rs->r == r && rs->seq == r->seq) return rs;
  return run_find(b, r);
}

void tg__ofl_run_unuse(ofl *b, ofl_run *rs) {
  if (--rs->users) return;
  if (b->last_run == rs) b->last_run = NULL;
  tg__idmap_del(&b->runs_by_seq, rs->seq + 1);
  for (ofl_run **p = &b->runs; *p; p = &(*p)->next)
    if (*p == rs) {
      *p = rs->next;
      break;
    }
  for (size_t i = 0; rs->consts.s && i <= rs->consts.mask; i++)
    if (rs->consts.s[i].key) tg__ofl_handle_unref(b, rs->consts.s[i].val);
  tg__idmap_free(&rs->consts);
  run_free(rs);
}

ofl_handle *tg__ofl_run_const_find(ofl_run *rs, const tg_value *v) {
  return tg__idmap_get(&rs->consts, (uint64_t)(uintptr_t)v);
}

uint32_t tg__ofl_run_dependents(const ofl_run *rs, uint32_t ti) {
  const tg__runplan *p = &rs->r->plan;
  uint32_t n = 0;
  for (uint32_t k = p->dep_off[ti]; k < p->dep_off[ti + 1]; k++)
    n += !(p->tasks[p->deps[k]].flags & TG__T_CACHED);
  return n;
}

bool tg__ofl_run_const_held(ofl *b, ofl_run *rs, tg_value *v, uint32_t ti, uint64_t id, int c) {
  uint32_t uses = tg__ofl_run_dependents(rs, ti);
  if (!uses || rs->held[ti] || tg__ofl_run_const_find(rs, v)) return false;
  ofl_handle *h = tg__ofl_handle_new(b, H_CONST, id);
  if (!h) return false;
  h->local = tg_value_ref(v);
  h->bytes = tg__wire_estimate(v, SIZE_MAX);
  if (!tg__holders_set_only(&h->locs, c)) {
    tg__ofl_handle_unref(b, h);
    return false;
  }
  h->uses_left = uses;
  if (!tg__idmap_put(&rs->consts, (uint64_t)(uintptr_t)v, h)) {
    tg__ofl_handle_unref(b, h); /* its FREE goes to c */
    return true;
  }
  rs->held[ti] = h;
  rs->nheld++;
  return true;
}

ofl_handle *tg__ofl_run_held_item(ofl *b, ofl_run *rs, const tg__garg *a) {
  uint32_t pi = rs->r->plan.task_of[a->node];
  ofl_handle *p = pi != UINT32_MAX ? rs->held[pi] : NULL;
  return p ? tg__ofl_handle_item(b, rs, p, a) : NULL;
}

ofl_handle *tg__ofl_handle_item(ofl *b, ofl_run *rs, ofl_handle *p, const tg__garg *a) {
  ofl_handle *e = tg__ofl_handle_new(b, H_ELEM, 0);
  if (!e) return NULL;
  const char *key = a->kind == TG_ARG_KEY ? rs->r->g->keys + a->u.key : NULL;
  if (key && !(e->key = tg__malloc(strlen(key) + 1))) {
    tg__ofl_handle_unref(b, e);
    return NULL;
  }
  if (key) strcpy(e->key, key);
  else e->index = a->u.index;
  tg__ofl_handle_ref(p);
  e->parent = p;
  return e;
}

void tg__ofl_run_task_done(ofl *b, ofl_run *rs, uint32_t ti) {
  if (!rs->nheld) return; /* none held (most runs): no look at a sum's every input */
  const tg__run *r = rs->r;
  const tg__gnode *nd = &r->g->nodes[r->plan.tasks[ti].node];
  const tg__garg *a = tg__node_args(r->g, nd);
  for (uint32_t j = 0; j < nd->nargs; j++) {
    if (!tg__arg_is_node(a[j].kind)) continue;
    uint32_t pi = r->plan.task_of[a[j].node];
    ofl_handle *h = pi != UINT32_MAX ? rs->held[pi] : NULL;
    if (!h || --h->uses_left) continue;
    rs->held[pi] = NULL;
    rs->nheld--;
    tg__idmap_del(&rs->consts, (uint64_t)(uintptr_t)h->local);
    tg__ofl_handle_unref(b, h); /* freed here and on workers once unused */
  }
}

ofl_handle *tg__ofl_run_const(ofl *b, ofl_run *rs, tg_value *v) {
  ofl_handle *h = tg__idmap_get(&rs->consts, (uint64_t)(uintptr_t)v);
  if (h) return h;
  if (!(h = tg__ofl_handle_new(b, H_CONST, 0))) return NULL;
  h->local = tg_value_ref(v);
  h->bytes = tg__wire_estimate(v, SIZE_MAX);
  if (!tg__idmap_put(&rs->consts, (uint64_t)(uintptr_t)v, h)) {
    tg__ofl_handle_unref(b, h);
    return NULL;
  }
  return h;
}
