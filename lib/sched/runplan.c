/* lib/sched/runplan.c: compiling the outputs of a graph into a run's plan:
 * culling (a depth-first walk from the outputs), priorities (order.c),
 * dependency counters and the dependents in CSR arrays. Iterative throughout: a chain of any
 * length compiles without deep recursion. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "memo/memo.h"
#include "merge.h"
#include "order.h"
#include "sched_internal.h"

#define VISITING (UINT32_MAX - 1) /* task_of mark while on the DFS stack */

typedef struct frame {
  uint32_t node, arg; /* node, next argument to look at */
  uint32_t first;     /* order's length when pushed: the subtree's start */
  uint32_t last;      /* tasks under the input visited last (UINT32_MAX:
                         none yet) */
} frame;

typedef struct vec32 {
  uint32_t *v;
  size_t n, cap;
} vec32;

static bool push32(vec32 *s, uint32_t x) {
  if (s->n == s->cap) {
    size_t c = s->cap ? s->cap * 2 : 256;
    uint32_t *p = tg__realloc(s->v, c * sizeof *p);
    if (!p) return false;
    s->v = p;
    s->cap = c;
  }
  s->v[s->n++] = x;
  return true;
}

typedef struct stack {
  frame *f;
  size_t n, cap;
} stack;

static bool push_frame(stack *s, uint32_t node, uint32_t *task_of) {
  if (s->n == s->cap) {
    size_t c = s->cap ? s->cap * 2 : 64;
    frame *p = tg__realloc(s->f, c * sizeof *p);
    if (!p) return false;
    s->f = p;
    s->cap = c;
  }
  s->f[s->n++] = (frame){node, 0, 0, UINT32_MAX};
  task_of[node] = VISITING;
  return true;
}

/* Cache hits found while ordering: node ids and values, in pairs. */
typedef struct hits {
  vec32 nodes;
  tg_value **vals;
  size_t cap;
} hits;

/* Look node up (memo set): a hit is placed at once, as a leaf. Returns
 * true when placed (or *rc set on failure). Each node of the plan comes
 * here once, before it is placed: a cacheable one that misses is counted
 * (the run's misses, memo/memo.h). */
static inline bool placed_hit(const tg_graph *g, tg__memo *m, uint32_t node, uint32_t *task_of,
                       vec32 *order, hits *h, int *rc) {
  tg_value *v = NULL;
  if (!m) return false;
  const tg__gnode *nd = &g->nodes[node];
  if (!tg__memo_may_look_up(m, nd) || !tg__memo_lookup(m, g, node, &v)) {
    m->computed += tg__memo_cacheable(nd);
    return false;
  }
  if (h->nodes.n == h->cap) {
    size_t c = h->cap ? 2 * h->cap : 16;
    tg_value **p = tg__realloc(h->vals, c * sizeof *p);
    if (p) h->vals = p, h->cap = c;
  }
  if (h->nodes.n == h->cap || !push32(&h->nodes, node)) {
    tg_value_unref(v);
    *rc = TG_ENOMEM;
    return true;
  }
  h->vals[h->nodes.n - 1] = v; /* h owns it from here */
  if (!push32(order, node)) *rc = TG_ENOMEM;
  else task_of[node] = (uint32_t)order->n - 1;
  return true;
}

/* An input of f's node was visited and has `work` tasks under it: the
 * post-order is the memory-aware one only if they never grow (order.h). */
static inline void input_done(frame *f, uint32_t work, bool *reorder) {
  if (work > f->last) *reorder = true; /* never for the first input */
  f->last = work;
}

/* Post-order from outputs: order gets node ids, task_of their index.
 * Inputs are visited in argument order, so a branch is finished before
 * the next starts. With a memo, cache hits are leaves (in h). *reorder
 * is set unless the plan is a forest whose inputs come biggest first,
 * for which this is already the order of order.h. Identical calls are
 * merged afterwards (merge_calls). */
static int order_nodes(const tg_graph *g, const tg_node *outs, size_t nout,
                       uint32_t *task_of, vec32 *order, tg__memo *m, hits *h,
                       bool *reorder) {
  stack st = {0};
  int rc = TG_OK;
  *reorder = false;
  for (size_t o = 0; o < nout && rc == TG_OK; o++) {
    if (task_of[outs[o]] != UINT32_MAX) continue;
    if (placed_hit(g, m, outs[o], task_of, order, h, &rc)) continue;
    if (!push_frame(&st, outs[o], task_of)) rc = TG_ENOMEM;
    else st.f[0].first = (uint32_t)order->n;
    while (st.n && rc == TG_OK) {
      frame *f = &st.f[st.n - 1];
      const tg__gnode *nd = &g->nodes[f->node];
      const tg__garg *a = tg__node_args(g, nd);
      uint32_t child = UINT32_MAX;
      while (f->arg < nd->nargs && rc == TG_OK) {
        const tg__garg *x = &a[f->arg++];
        if (!tg__arg_is_node(x->kind)) continue;
        if (task_of[x->node] != UINT32_MAX) {
          *reorder = true; /* a shared input */
        } else if (placed_hit(g, m, x->node, task_of, order, h, &rc)) {
          input_done(f, 1, reorder);
        } else {
          child = x->node;
          break;
        }
      }
      if (rc) break;
      if (child != UINT32_MAX) {
        if (!push_frame(&st, child, task_of)) rc = TG_ENOMEM;
        else st.f[st.n - 1].first = (uint32_t)order->n;
        continue;
      }
      task_of[f->node] = (uint32_t)order->n; /* all inputs placed */
      if (!push32(order, f->node)) rc = TG_ENOMEM;
      uint32_t work = (uint32_t)order->n - f->first;
      if (--st.n) input_done(&st.f[st.n - 1], work, reorder);
    }
  }
  tg__free(st.f);
  return rc;
}

#define AHEAD 16 /* places between a leaf's slot prefetch and its probe */

/* Merge identical pure calls of the post-order (merge.h), in its order
 * (inputs before their users, so that each call's inputs are final when
 * it is hashed): the first of a kind stays a task, a later one points to
 * it and leaves the order. Then it is no miss of the memo's either, its
 * task's being the one computed; the pair (x, that call's node) goes to
 * `merged`, for task_of[x] to follow the call's task when the order
 * changes; a merged call is a shared one, so the plan is no forest.
 * Done apart from the walk, the table is sized once for the plan, and
 * the slots of leaves are fetched AHEAD places early. */
static int merge_calls(const tg_graph *g, vec32 *order, uint32_t *task_of, const hits *h,
                       tg__memo *m, vec32 *merged, bool *reorder) {
  if (order->n < 2) return TG_OK;
  tg__merge mg;
  tg__merge_init(&mg);
  if (tg__merge_reserve(&mg, order->n) != TG_OK) return TG_ENOMEM; /* all pure, at most */
  int rc = TG_OK;
  size_t k = 0, hit = 0; /* kept tasks; cache hits passed (in order) */
  for (size_t i = 0; i < order->n && rc == TG_OK; i++) {
    uint32_t x = order->v[i], same = UINT32_MAX;
    if (i + AHEAD < order->n) tg__merge_prefetch(&mg, g, order->v[i + AHEAD]);
    if (hit < h->nodes.n && h->nodes.v[hit] == x) hit++; /* a value: kept */
    else rc = tg__merge_place(&mg, g, x, task_of, order->v, (uint32_t)k, &same);
    if (rc == TG_OK && same != UINT32_MAX) {
      task_of[x] = same;
      *reorder = true;
      if (m) m->computed -= tg__memo_cacheable(&g->nodes[x]);
      if (!push32(merged, x) || !push32(merged, order->v[same])) rc = TG_ENOMEM;
      continue;
    }
    task_of[x] = (uint32_t)k;
    order->v[k++] = x;
  }
  if (rc == TG_OK) order->n = k;
  tg__merge_free(&mg);
  return rc;
}

/* Replace the culling post-order by the memory-aware order (order.h);
 * cache hits are tasks without inputs. */
static int rank_tasks(const tg_graph *g, const tg_node *outs, size_t nout, const hits *h,
                      vec32 *order, uint32_t *task_of) {
  if (order->n < 3) return TG_OK;
  uint8_t *leaf = tg__calloc(order->n, 1);
  if (!leaf) return TG_ENOMEM;
  for (size_t i = 0; i < h->nodes.n; i++) leaf[task_of[h->nodes.v[i]]] = 1;
  int rc = tg__order_tasks(g, outs, nout, leaf, order->v, (uint32_t)order->n, task_of);
  tg__free(leaf);
  return rc;
}

/* Counters, dependents (CSR) and the initial ready list. */
static int link_tasks(const tg_graph *g, tg__runplan *p, tg__run *r) {
  uint32_t n = p->ntasks;
  size_t edges = 0;
  p->dep_off = tg__calloc((size_t)n + 1, sizeof *p->dep_off);
  if (!p->dep_off) return TG_ENOMEM;
  for (uint32_t i = 0; i < n; i++) { /* count edges into dep_off[input] */
    tg__task *t = &p->tasks[i];
    const tg__gnode *nd = &g->nodes[t->node];
    const tg__garg *a = tg__node_args(g, nd);
    uint32_t pend = 0;
    uint32_t nargs = t->flags & TG__T_CACHED ? 0 : nd->nargs; /* no inputs */
    for (uint32_t j = 0; j < nargs; j++) {
      if (tg__arg_is_node(a[j].kind)) {
        p->dep_off[p->task_of[a[j].node]]++;
        p->has_selects |= a[j].kind != TG_ARG_NODE;
        pend++;
      } else if (a[j].kind == TG_ARG_FUTURE) {
        t->flags |= TG__T_FUTURES;
        p->has_futures = true;
        pend++;
      }
    }
    if (nd->fn && (nd->fn->flags & TG_FUNC_INTERNAL)) {
      t->flags |= TG__T_INTERNAL;
      p->ninternal++;
    }
    t->run = r;
    atomic_init(&t->pending, pend);
    edges += pend;
  }
  size_t sum = 0; /* dep_off[i] becomes the end of i's segment */
  for (uint32_t i = 0; i < n; i++) {
    atomic_init(&p->tasks[i].consumers, p->dep_off[i] + 1);
    sum += p->dep_off[i];
    p->dep_off[i] = (uint32_t)sum;
  }
  p->dep_off[n] = (uint32_t)sum;
  if (edges > UINT32_MAX) return TG_ENOMEM;
  p->deps = tg__malloc((sum ? sum : 1) * sizeof *p->deps);
  p->ready = tg__malloc((size_t)(n ? n : 1) * sizeof *p->ready);
  if (!p->deps || !p->ready) return TG_ENOMEM;
  for (uint32_t i = n; i-- > 0;) { /* backwards: each list ascending */
    const tg__gnode *nd = &g->nodes[p->tasks[i].node];
    const tg__garg *a = tg__node_args(g, nd);
    uint32_t nargs = p->tasks[i].flags & TG__T_CACHED ? 0 : nd->nargs;
    for (uint32_t j = nargs; j-- > 0;)
      if (tg__arg_is_node(a[j].kind))
        p->deps[--p->dep_off[p->task_of[a[j].node]]] = i;
  }
  for (uint32_t i = 0; i < n; i++)
    if (atomic_load_explicit(&p->tasks[i].pending, memory_order_relaxed) == 0)
      p->ready[p->nready++] = i;
  return TG_OK;
}

static int link_outputs(tg__runplan *p, const tg_node *outs, size_t nout) {
  p->out_task = tg__malloc((nout ? nout : 1) * sizeof *p->out_task);
  p->out_order = tg__malloc((nout ? nout : 1) * sizeof *p->out_order);
  if (!p->out_task || !p->out_order) return TG_ENOMEM;
  p->nout = nout;
  for (size_t s = 0; s < nout; s++) {
    tg__task *t = &p->tasks[p->task_of[outs[s]]];
    p->out_task[s] = p->task_of[outs[s]];
    t->flags |= TG__T_OUTPUT;
    atomic_fetch_add_explicit(&t->consumers, 1, memory_order_relaxed);
  }
  /* out_order: slots by task, then slot (insertion sort is fine for the
   * usual handful; larger output lists are rare and still bounded). */
  for (size_t s = 0; s < nout; s++) {
    size_t k = s;
    while (k > 0 && p->out_task[p->out_order[k - 1]] > p->out_task[s]) {
      p->out_order[k] = p->out_order[k - 1];
      k--;
    }
    p->out_order[k] = (uint32_t)s;
  }
  return TG_OK;
}

/* Mark the hits as CACHED tasks holding their values (taken from h). */
static void set_hits(tg__runplan *p, hits *h) {
  for (size_t i = 0; i < h->nodes.n; i++) {
    tg__task *t = &p->tasks[p->task_of[h->nodes.v[i]]];
    t->flags |= TG__T_CACHED;
    t->result = h->vals[i];
  }
  p->ncached = (uint32_t)h->nodes.n;
  h->nodes.n = 0;
}

static void hits_free(hits *h) {
  for (size_t i = 0; i < h->nodes.n; i++) tg_value_unref(h->vals[i]);
  tg__free(h->nodes.v);
  tg__free(h->vals);
}

int tg__runplan_compile(const tg_graph *g, const tg_node *outputs, size_t nout,
                        tg__run *r, tg__memo *memo, tg__runplan *p, char *err,
                        size_t errsize) {
  memset(p, 0, sizeof *p);
  for (size_t s = 0; s < nout; s++)
    if (outputs[s] >= g->n) {
      snprintf(err, errsize, "output %zu is node %u, but the graph has %zu nodes", s,
               outputs[s], g->n);
      return TG_EINVAL;
    }
  vec32 order = {0};
  hits h = {{0}, NULL, 0};
  int rc = TG_ENOMEM;
  p->task_of = tg__malloc((g->n ? g->n : 1) * sizeof *p->task_of);
  if (!p->task_of) goto fail;
  memset(p->task_of, 0xff, g->n * sizeof *p->task_of);
  bool reorder;
  vec32 merged = {0};
  if ((rc = order_nodes(g, outputs, nout, p->task_of, &order, memo, &h, &reorder)) == TG_OK)
    rc = merge_calls(g, &order, p->task_of, &h, memo, &merged, &reorder);
  if (rc == TG_OK && reorder)
    rc = rank_tasks(g, outputs, nout, &h, &order, p->task_of);
  for (size_t i = 0; rc == TG_OK && i < merged.n; i += 2) /* follow the order */
    p->task_of[merged.v[i]] = p->task_of[merged.v[i + 1]];
  tg__free(merged.v);
  if (rc) goto fail;
  rc = TG_ENOMEM;
  p->ntasks = (uint32_t)order.n;
  p->tasks = tg__calloc(order.n ? order.n : 1, sizeof *p->tasks);
  if (!p->tasks) goto fail;
  for (size_t i = 0; i < order.n; i++) p->tasks[i].node = order.v[i];
  tg__free(order.v);
  order.v = NULL;
  set_hits(p, &h);
  hits_free(&h);
  if ((rc = link_tasks(g, p, r)) || (rc = link_outputs(p, outputs, nout))) goto fail;
  return TG_OK;
fail:
  tg__free(order.v);
  hits_free(&h);
  tg__runplan_free(p);
  snprintf(err, errsize, "out of memory compiling a plan of %zu nodes", g->n);
  return rc;
}

int tg__runplan_prioritize(tg__runplan *p, const tg_graph *g, int extra) {
  int32_t *v = NULL;
  bool any = false;
  if (!g->prio && extra == 0) goto done;
  v = tg__malloc((p->ntasks ? p->ntasks : 1) * sizeof *v);
  if (!v) return TG_ENOMEM;
  for (uint32_t i = 0; i < p->ntasks; i++) {
    int64_t x = (int64_t)tg__node_priority(g, p->tasks[i].node) + extra;
    v[i] = x > INT32_MAX ? INT32_MAX : x < INT32_MIN ? INT32_MIN : (int32_t)x;
    any |= v[i] != 0;
  }
  if (!any) {
    tg__free(v);
    v = NULL;
  }
done:
  tg__free(p->prio);
  p->prio = v;
  return TG_OK;
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return (x > y) - (x < y);
}

void tg__runplan_sort_ready(tg__runplan *p) {
  if (!p->prio || p->nready < 2) return; /* already in plan order */
  uint64_t *k = tg__malloc(p->nready * sizeof *k);
  if (!k) return;
  /* (higher priority, lower index) first, as one ascending integer */
  for (uint32_t i = 0; i < p->nready; i++)
    k[i] = (uint64_t)(uint32_t)(INT32_MAX - (int64_t)p->prio[p->ready[i]]) << 32 |
           p->ready[i];
  qsort(k, p->nready, sizeof *k, cmp_u64);
  for (uint32_t i = 0; i < p->nready; i++) p->ready[i] = (uint32_t)k[i];
  tg__free(k);
}

void tg__runplan_free(tg__runplan *p) {
  /* Results left only when a run never started (cache hits) */
  for (uint32_t i = 0; p->tasks && i < p->ntasks; i++) tg_value_unref(p->tasks[i].result);
  tg__free(p->tasks);
  tg__free(p->task_of);
  tg__free(p->dep_off);
  tg__free(p->deps);
  tg__free(p->ready);
  tg__free(p->out_task);
  tg__free(p->out_order);
  tg__free(p->prio);
  memset(p, 0, sizeof *p);
}
