/* lib/sched/order.c: the memory-aware static order of a run's tasks (see
 * order.h). Works on positions 0..n-1 of the culled, topologically sorted
 * tasks; builds its own CSR of distinct inputs and dependents. */
#include <stdlib.h>
#include <string.h>

#include "order.h"

enum { F_OUT = 1, F_SEEN = 2, F_DONE = 4, F_QUEUED = 8 };

typedef struct csr {
  uint32_t *off; /* n + 1 */
  uint32_t *v;
} csr;

typedef struct scratch {
  csr in, dep;       /* distinct inputs / dependents, by position */
  uint64_t *work;    /* tasks behind each one, saturating (dask's
                        ndependencies) */
  /* Two arrays whose slots change meaning once their task has run (it
   * needs the first only before, the second only after): */
  uint32_t *count;   /* stamps; then unfinished inputs; once run, the next
                        dependent to consider as a target */
  uint32_t *rem;     /* fill cursors; then the inputs whose last consumer
                        the task is; once run, its consumers not yet run */
  uint32_t *eager;   /* ready tasks that free memory (a stack) */
  uint32_t *path;    /* the walk to the current target (a stack) */
  uint32_t *frame;   /* walk frames: task and its next input */
  uint32_t *cursor;
  uint32_t *cand;    /* results made, latest on top (a stack) */
  uint8_t *flags;
} scratch;

static void scratch_free(scratch *s) {
  tg__free(s->in.off);
  tg__free(s->in.v);
  tg__free(s->dep.off);
  tg__free(s->dep.v);
  tg__free(s->work);
  tg__free(s->count);
  tg__free(s->rem);
  tg__free(s->eager);
  tg__free(s->path);
  tg__free(s->frame);
  tg__free(s->cursor);
  tg__free(s->cand);
  tg__free(s->flags);
}

/* Distinct inputs of each position (argument order), then the reverse. A
 * node named twice by one task is one edge: releasing it is one event.
 * Sets *fan_in when some task has two inputs or more. */
static int build_edges(const tg_graph *g, const uint8_t *leaf, const uint32_t *nodes,
                       uint32_t n, const uint32_t *task_of, scratch *s, bool *fan_in) {
  uint32_t *stamp = s->count; /* 1 + the last position that named it */
  size_t cap = 0;
  for (uint32_t i = 0; i < n; i++) cap += leaf[i] ? 0 : g->nodes[nodes[i]].nargs;
  if (cap > UINT32_MAX) return TG_ENOMEM;
  s->in.v = tg__malloc((cap ? cap : 1) * sizeof *s->in.v);
  if (!s->in.v) return TG_ENOMEM;
  memset(stamp, 0, (size_t)n * sizeof *stamp);
  uint32_t e = 0;
  *fan_in = false;
  for (uint32_t i = 0; i < n; i++) {
    s->in.off[i] = e;
    if (leaf[i]) continue;
    const tg__gnode *nd = &g->nodes[nodes[i]];
    const tg__garg *a = tg__node_args(g, nd);
    for (uint32_t j = 0; j < nd->nargs; j++) {
      if (!tg__arg_is_node(a[j].kind)) continue;
      uint32_t x = task_of[a[j].node];
      if (stamp[x] == i + 1) continue;
      stamp[x] = i + 1;
      s->in.v[e++] = x;
    }
    *fan_in |= e - s->in.off[i] > 1;
  }
  s->in.off[n] = e;
  s->dep.v = tg__malloc((e ? e : 1) * sizeof *s->dep.v);
  if (!s->dep.v) return TG_ENOMEM;
  memset(s->dep.off, 0, ((size_t)n + 1) * sizeof *s->dep.off);
  for (uint32_t k = 0; k < e; k++) s->dep.off[s->in.v[k] + 1]++;
  for (uint32_t i = 0; i < n; i++) s->dep.off[i + 1] += s->dep.off[i];
  uint32_t *fill = s->rem; /* next free slot per position */
  memcpy(fill, s->dep.off, (size_t)n * sizeof *fill);
  for (uint32_t i = 0; i < n; i++) /* ascending: each list in position order */
    for (uint32_t k = s->in.off[i]; k < s->in.off[i + 1]; k++)
      s->dep.v[fill[s->in.v[k]]++] = i;
  return TG_OK;
}

/* Work behind each task: itself plus that of its inputs, counting shared
 * ones once per path (cheap, and what matters is which input is bigger). */
static void measure_work(uint32_t n, scratch *s) {
  for (uint32_t i = 0; i < n; i++) { /* positions are topological */
    uint64_t w = 1;
    for (uint32_t k = s->in.off[i]; k < s->in.off[i + 1]; k++) {
      uint64_t x = s->work[s->in.v[k]];
      w = x > UINT64_MAX - w ? UINT64_MAX : w + x;
    }
    s->work[i] = w;
  }
}

typedef struct keyed {
  uint64_t work;
  uint32_t arg, pos;
} keyed;

static int by_work(const void *pa, const void *pb) {
  const keyed *a = pa, *b = pb;
  if (a->work != b->work) return a->work > b->work ? -1 : 1;
  return a->arg < b->arg ? -1 : a->arg > b->arg;
}

/* Inputs of each task, most work first (ties: argument order), so that
 * the depth-first walk finishes the biggest branch before the small ones
 * whose results would otherwise wait for it. */
static int sort_inputs(uint32_t n, scratch *s) {
  keyed *tmp = NULL;
  size_t cap = 0;
  for (uint32_t i = 0; i < n; i++) {
    uint32_t *v = s->in.v + s->in.off[i], len = s->in.off[i + 1] - s->in.off[i];
    if (len < 2) continue;
    if (len <= 8) { /* insertion sort: stable, the usual case */
      for (uint32_t a = 1; a < len; a++) {
        uint32_t x = v[a], b = a;
        while (b > 0 && s->work[v[b - 1]] < s->work[x]) {
          v[b] = v[b - 1];
          b--;
        }
        v[b] = x;
      }
      continue;
    }
    if (len > cap) {
      keyed *p = tg__realloc(tmp, (size_t)len * sizeof *p);
      if (!p) {
        tg__free(tmp);
        return TG_ENOMEM;
      }
      tmp = p;
      cap = len;
    }
    for (uint32_t a = 0; a < len; a++) tmp[a] = (keyed){s->work[v[a]], a, v[a]};
    qsort(tmp, len, sizeof *tmp, by_work);
    for (uint32_t a = 0; a < len; a++) v[a] = tmp[a].pos;
  }
  tg__free(tmp);
  return TG_OK;
}

/* Would running ready task t now leave memory as it is or smaller? */
static inline bool frees_memory(const scratch *s, uint32_t t) {
  return s->rem[t] > 0 || (s->flags[t] & F_OUT); /* frees an input */
}

static inline void queue_eager(scratch *s, uint32_t *sp, uint32_t t) {
  if (s->flags[t] & F_QUEUED) return;
  s->flags[t] |= F_QUEUED;
  s->eager[(*sp)++] = t;
}

/* Walk back from target t: the depth-first post-order of t and the inputs
 * it still needs (biggest first), stored in s->path as a stack (the first
 * to run on top). Returns its length. Every task is walked once, so the
 * walks add up to the edges. */
static uint32_t walk_back(scratch *s, uint32_t t) {
  uint32_t sp = 0, m = 0;
  s->flags[t] |= F_SEEN;
  s->frame[sp] = t;
  s->cursor[sp++] = s->in.off[t];
  while (sp) {
    uint32_t u = s->frame[sp - 1], *k = &s->cursor[sp - 1], child = UINT32_MAX;
    while (*k < s->in.off[u + 1]) {
      uint32_t x = s->in.v[(*k)++];
      if (!(s->flags[x] & (F_SEEN | F_DONE))) {
        child = x;
        break;
      }
    }
    if (child == UINT32_MAX) {
      s->path[m++] = u;
      sp--;
      continue;
    }
    s->flags[child] |= F_SEEN;
    s->frame[sp] = child;
    s->cursor[sp++] = s->in.off[child];
  }
  for (uint32_t a = 0, b = m - 1; a < b; a++, b--) { /* first on top */
    uint32_t x = s->path[a];
    s->path[a] = s->path[b];
    s->path[b] = x;
  }
  return m;
}

/* The next target when nothing is queued: a dependent still to run of
 * the latest result in memory (finish what is started, releasing it,
 * before loading more), else the next output. Cursors make every
 * dependent list and the outputs scanned once in all. */
static uint32_t next_target(scratch *s, uint32_t *ncand, const uint32_t *outpos,
                            size_t *onext) {
  while (*ncand) {
    uint32_t c = s->cand[*ncand - 1];
    while (s->count[c] < s->dep.off[c + 1]) {
      uint32_t d = s->dep.v[s->count[c]];
      if (!(s->flags[d] & (F_SEEN | F_DONE))) return d;
      s->count[c]++;
    }
    (*ncand)--;
  }
  while (s->flags[outpos[*onext]] & F_DONE) (*onext)++; /* one is left */
  return outpos[*onext];
}

/* Simulate running the tasks one at a time: a ready task that frees
 * memory goes first (most recently enabled first); otherwise the next
 * task on the path to the current target, which is ready. Writes
 * positions in execution order to out. */
static void simulate(const uint32_t *outpos, uint32_t n, scratch *s,
                     uint32_t *out) {
  for (uint32_t i = 0; i < n; i++) {
    s->count[i] = s->in.off[i + 1] - s->in.off[i];
    s->rem[i] = 0;
  }
  for (uint32_t i = 0; i < n; i++) /* sole consumers release at once */
    if (s->dep.off[i + 1] - s->dep.off[i] == 1) s->rem[s->dep.v[s->dep.off[i]]]++;
  uint32_t sp = 0, np = 0, ncand = 0;
  size_t onext = 0;
  for (uint32_t done = 0; done < n;) {
    uint32_t t;
    if (sp) {
      t = s->eager[--sp];
    } else {
      while (np && (s->flags[s->path[np - 1]] & F_DONE)) np--;
      if (!np) {
        np = walk_back(s, next_target(s, &ncand, outpos, &onext));
        continue;
      }
      t = s->path[--np];
    }
    out[done++] = t;
    s->flags[t] |= F_DONE;
    s->count[t] = s->dep.off[t];                     /* target cursor */
    s->rem[t] = s->dep.off[t + 1] - s->dep.off[t]; /* consumers left */
    if (s->dep.off[t + 1] > s->dep.off[t]) s->cand[ncand++] = t;
    for (uint32_t k = s->in.off[t]; k < s->in.off[t + 1]; k++) {
      uint32_t x = s->in.v[k];
      if (--s->rem[x] != 1) continue;
      /* One consumer of x left: running it will release x. Each input
       * comes here once, so the scans add up to the edges. */
      for (uint32_t d = s->dep.off[x]; d < s->dep.off[x + 1]; d++) {
        uint32_t c = s->dep.v[d];
        if (s->flags[c] & F_DONE) continue;
        s->rem[c]++; /* c frees one more */
        if (s->count[c] == 0) queue_eager(s, &sp, c);
        break;
      }
    }
    for (uint32_t d = s->dep.off[t]; d < s->dep.off[t + 1]; d++) {
      uint32_t c = s->dep.v[d];
      if (--s->count[c] == 0 && frees_memory(s, c)) queue_eager(s, &sp, c);
    }
  }
}

int tg__order_tasks(const tg_graph *g, const tg_node *outs, size_t nout,
                    const uint8_t *leaf, uint32_t *nodes, uint32_t n,
                    uint32_t *task_of) {
  if (n < 3) return TG_OK; /* nothing to choose */
  scratch s = {0};
  size_t m = (size_t)n;
  uint32_t *outpos = tg__malloc((nout ? nout : 1) * sizeof *outpos);
  uint32_t *order = NULL;
  int rc = TG_ENOMEM;
  s.in.off = tg__malloc((m + 1) * sizeof *s.in.off);
  s.dep.off = tg__malloc((m + 1) * sizeof *s.dep.off);
  s.count = tg__malloc(m * sizeof *s.count);
  s.rem = tg__malloc(m * sizeof *s.rem);
  s.flags = tg__calloc(m, sizeof *s.flags);
  if (!outpos || !s.in.off || !s.dep.off || !s.count || !s.rem || !s.flags) goto done;
  bool fan_in;
  if ((rc = build_edges(g, leaf, nodes, n, task_of, &s, &fan_in))) goto done;
  rc = TG_ENOMEM;
  if (fan_in) { /* else there is nothing to sort */
    if (!(s.work = tg__malloc(m * sizeof *s.work))) goto done;
    measure_work(n, &s);
    if ((rc = sort_inputs(n, &s))) goto done;
    rc = TG_ENOMEM;
    tg__free(s.work);
    s.work = NULL;
  }
  s.eager = tg__malloc(m * sizeof *s.eager);
  s.path = tg__malloc(m * sizeof *s.path);
  s.frame = tg__malloc(m * sizeof *s.frame);
  s.cursor = tg__malloc(m * sizeof *s.cursor);
  s.cand = tg__malloc(m * sizeof *s.cand);
  order = tg__malloc(m * sizeof *order);
  if (!s.eager || !s.path || !s.frame || !s.cursor || !s.cand || !order) goto done;
  for (size_t o = 0; o < nout; o++) {
    outpos[o] = task_of[outs[o]];
    s.flags[outpos[o]] |= F_OUT;
  }
  simulate(outpos, n, &s, order);
  for (uint32_t i = 0; i < n; i++) order[i] = nodes[order[i]]; /* to node ids */
  memcpy(nodes, order, m * sizeof *nodes);
  for (uint32_t i = 0; i < n; i++) task_of[nodes[i]] = i;
  rc = TG_OK;
done:
  tg__free(outpos);
  tg__free(order);
  scratch_free(&s);
  return rc;
}
