/* lib/offload/chain.c: tasks sent to a worker ahead of the engine
 * (chains): which results stay where they are made for their dependents,
 * sending those dependents at once, quiet tasks and what tells that they
 * are done, and the engine's tasks meeting their pre-sent records.
 * offload/engine.h ("Chains") tells the design. */
#include <string.h>

#include "offload/engine.h"
#include "wire/wire.h"

/* Where a result kept on c is: c's socket generation (a new socket is a
 * new session there, without the objects of the last) and c. */
static uint64_t tag_of(const ofl_conn *c) {
  return ((uint64_t)c->gen << 32) | (uint64_t)(uint32_t)(c->idx + 1);
}

/* What a pre-sent task may still pull along to its worker: tasks, and
 * seconds of their measured work. */
typedef struct pull_budget {
  uint32_t tasks;
  double secs;
} pull_budget;

static bool presendable_in(const ofl *b, const ofl_run *rs, uint32_t di, const ofl_conn *c,
                           uint32_t self, pull_budget *budget);

/* Whether task pi of rs, an input of a task to be pre-sent to c, can be
 * pulled there with it (pull_inputs): the engine has not begun it, it
 * has no other dependent, it is known to be quick (measured at most
 * OFL_PULL_SECS: slower work is worth spreading over workers, and a
 * fan-in of it is not to be queued on one), and its own inputs are there
 * or can be pulled too, within *budget in all. So siblings of a tree go
 * to one worker and their parent follows them at once, and so do a sum's
 * quick inputs: the sum alone replies. */
static bool pullable(const ofl *b, const ofl_run *rs, uint32_t pi, const ofl_conn *c,
                     pull_budget *budget) {
  const tg__runplan *p = &rs->r->plan;
  const tg__task *t = &p->tasks[pi];
  if (!budget->tasks || rs->early[pi] || rs->fold_of[pi] || (t->flags & TG__T_OUTPUT) ||
      atomic_load(&t->state) != TG__T_NEW || (rs->flags[pi] & (RF_SELECTED | RF_ALONE)))
    return false;
  for (uint32_t k = p->dep_off[pi] + 1; k < p->dep_off[pi + 1]; k++)
    if (p->deps[k] != p->deps[p->dep_off[pi]]) return false;
  const tg__gnode *nd = &rs->r->g->nodes[t->node];
  uint64_t kind_key = (uint64_t)(uintptr_t)nd->fn + nd->kind; /* as tg__ofl_expect */
  /* One never measured is taken for a millisecond (tg__ofl_task_secs),
   * past OFL_PULL_SECS: one lookup tells both. */
  double secs = tg__ofl_task_secs(b, kind_key);
  if (secs > OFL_PULL_SECS || secs > budget->secs) return false;
  budget->tasks--;
  budget->secs -= secs;
  return presendable_in(b, rs, pi, c, UINT32_MAX, budget);
}

/* Whether task di of rs can be sent to c ahead of the engine: nothing the
 * engine must do first (a cache lookup, futures, a deadline), arguments
 * small constants (sent inline), whole results of tasks kept on c (self:
 * one more task taken as kept there, UINT32_MAX for none) or of tasks
 * that can be pulled there with it (budget: how many; NULL: none). */
static bool presendable_in(const ofl *b, const ofl_run *rs, uint32_t di, const ofl_conn *c,
                           uint32_t self, pull_budget *budget) {
  const tg__run *r = rs->r;
  const tg__runplan *p = &r->plan;
  const tg__task *d = &p->tasks[di];
  if (d->flags & (TG__T_CACHED | TG__T_FUTURES)) return false;
  const tg__gnode *nd = &r->g->nodes[d->node];
  if (nd->timeout > 0) return false;
  const tg__garg *a = tg__node_args(r->g, nd);
  uint64_t tag = tag_of(c);
  for (uint32_t j = 0; j < nd->nargs; j++) {
    if (a[j].kind == TG_ARG_VALUE) {
      if (tg__wire_estimate(a[j].u.value, b->keep_min) >= b->keep_min) return false;
      continue;
    }
    if (a[j].kind != TG_ARG_NODE) return false;
    uint32_t pi = p->task_of[a[j].node];
    if (pi == UINT32_MAX) return false;
    if (pi == self || rs->bound[pi] == tag) continue;
    if (!budget || !pullable(b, rs, pi, c, budget)) return false;
  }
  return true;
}

static uint32_t pull_width(const ofl_run *rs, uint32_t di, const ofl_conn *c, bool *fold);
static void presend_folded(ofl *b, ofl_conn *c, ofl_run *rs, uint32_t di, uint32_t n);

/* presendable_in with the budget of a pull; and when inputs are to be
 * pulled, at most half the run's sequential peak of them directly: the
 * reply of di ends them here at once, each alive (a value that names
 * nothing) until di ends, so alive stays within the run's bound plus that
 * half (a subtree's sums pull two each). *width: how many, *fold:
 * whether they fold (pull_width; fold may be NULL). */
static bool presendable(const ofl *b, const ofl_run *rs, uint32_t di, const ofl_conn *c,
                        uint32_t self, uint32_t *width, bool *fold) {
  pull_budget budget = {OFL_PULL, OFL_PULL_WORK};
  *width = 0;
  if (fold) *fold = false;
  if (!presendable_in(b, rs, di, c, self, &budget)) return false;
  if (budget.tasks == OFL_PULL) return true; /* nothing to pull */
  *width = pull_width(rs, di, c, fold);
  return *width <= 2 || *width <= rs->seq_peak / 2;
}

/* Whether input pi of a task blocks sending it ahead to c for good: the
 * engine began pi, and pi's result is kept for no pre-sent task (it comes
 * back, or stays where it was made unnamed): it can be neither pulled
 * nor named there. (A lost pi sent again may be kept after all: a chain
 * missed then, never a wrong one: presendable decides.) */
static bool hard_block(const ofl_run *rs, uint32_t pi, uint32_t self) {
  return pi != self && pi != UINT32_MAX && rs->bound[pi] == 0 &&
         atomic_load_explicit(&rs->r->plan.tasks[pi].state, memory_order_relaxed) !=
             TG__T_NEW;
}

/* Whether dependent di of self cannot go ahead to c, by what blocked it
 * last (rs->blocked_by): one look instead of its checks, for each of the
 * many inputs of a sum whose first input was begun long ago (W1, the
 * 2,000,000 tasks of graph.json: about 130 instructions a task). */
static bool still_blocked(const ofl_run *rs, uint32_t di, uint32_t self) {
  uint32_t j1 = rs->blocked_by[di];
  if (!j1) return false;
  const tg__run *r = rs->r;
  const tg__garg *a = tg__node_args(r->g, &r->g->nodes[r->plan.tasks[di].node]);
  return hard_block(rs, r->plan.task_of[a[j1 - 1].node], self);
}

/* di could not go ahead: remember an input of it that blocks it for good,
 * if one of its first ones does (presendable gives up within about
 * OFL_PULL of them too). */
static void note_block(const ofl_run *rs, uint32_t di, uint32_t self) {
  const tg__run *r = rs->r;
  const tg__gnode *nd = &r->g->nodes[r->plan.tasks[di].node];
  const tg__garg *a = tg__node_args(r->g, nd);
  for (uint32_t j = 0; j < nd->nargs && j <= 2 * OFL_PULL; j++)
    if (a[j].kind == TG_ARG_NODE && hard_block(rs, r->plan.task_of[a[j].node], self)) {
      rs->blocked_by[di] = j + 1;
      return;
    }
}

/* Dependents of rec's task that will run, when every one of them can be
 * sent to c ahead of the engine (its other inputs are kept there
 * already), at most as many as c has threads (two at least): more go
 * through the engine, to be spread over workers. 0 otherwise, or when
 * rec's result must come back (an output, a result the cache may store,
 * one whose items are selected). */
static uint32_t chain_deps(const ofl *b, const ofl_conn *c, const ofl_rec *rec,
                           bool *checked) {
  *checked = false;
  const ofl_run *rs = rec->rs;
  const tg__run *r = rs->r;
  if (!rec->t || rec->whole || (rec->t->flags & TG__T_OUTPUT) || r->memo ||
      (rs->flags[rec->task] & RF_SELECTED) || c->leaving) /* a leaving worker gets no
                                                             dependents ahead */
    return 0;
  /* Pulled for its one dependent, which the puller found can follow it
   * there with all its inputs (pullable: no other dependent). */
  const tg__runplan *p = &r->plan;
  if (rs->pulled_for && rec->early && p->dep_off[rec->task] < p->dep_off[rec->task + 1] &&
      p->deps[p->dep_off[rec->task]] == rs->pulled_for - 1)
    return 1;
  uint32_t n = 0, most = c->nthreads > 2 ? c->nthreads : 2;
  for (uint32_t k = p->dep_off[rec->task]; k < p->dep_off[rec->task + 1]; k++) {
    uint32_t di = p->deps[k];
    if ((p->tasks[di].flags & TG__T_CACHED) || (k > p->dep_off[rec->task] && p->deps[k - 1] == di))
      continue;
    if (++n > most || still_blocked(rs, di, rec->task)) return 0;
    uint32_t width;
    if (!presendable(b, rs, di, c, rec->task, &width, NULL)) {
      note_block(rs, di, rec->task);
      return 0;
    }
  }
  *checked = n > 0;
  return n;
}

static void push(uint32_t **v, uint32_t *n, uint32_t *cap, uint32_t ti) {
  if (*n == *cap) {
    uint32_t c = *cap ? *cap * 2 : 16;
    uint32_t *d = tg__realloc(*v, c * sizeof *d);
    if (!d) return; /* then the engine sends them when ready */
    *v = d;
    *cap = c;
  }
  (*v)[(*n)++] = ti;
}

uint8_t tg__ofl_chain_flags(ofl *b, ofl_conn *c, ofl_rec *rec) {
  bool checked;
  uint32_t deps = chain_deps(b, c, rec, &checked);
  if (!deps) return 0;
  ofl_run *rs = rec->rs;
  rec->store = b->next_id++;
  rs->bound[rec->task] = tag_of(c);
  rs->bound_id[rec->task] = rec->store;
  push(&rs->stack, &rs->nstack, &rs->cap_stack, rec->task);
  rs->checked = checked ? rec->task + 1 : 0;
  /* Quiet when they all go now (room for them under OFL_AHEAD, and the
   * stack took it): one of their replies tells it is done. */
  if (rs->nstack && rs->stack[rs->nstack - 1] == rec->task &&
      rs->nearly + deps <= OFL_AHEAD) {
    rec->quiet = true;
    rs->nquiet++;
    if (!rec->early) rs->nquiet_begun++;
    rs->silent[rec->task] = rec;
    /* Durations are learnt from replies, and a quiet task sends none: one
     * never measured counts as a microsecond on c, not the default
     * millisecond that would fill c's queue with a few of them (a pulled
     * tree is mostly quiet tasks). */
    if (!tg__ofl_task_known(b, rec->kind_key)) {
      tg__ofl_conn_remove(c, rec);
      rec->est = 1e-6;
      tg__ofl_conn_add(c, rec);
    }
    return TG__RF_KEEP | TG__RF_QUIET;
  }
  return TG__RF_KEEP;
}

/* A record for task di of rs, to be sent ahead of the engine (NULL when
 * out of memory). */
static ofl_rec *early_rec(ofl *b, ofl_run *rs, uint32_t di) {
  const tg__run *r = rs->r;
  tg__task *t = &r->plan.tasks[di];
  const tg__gnode *nd = &r->g->nodes[t->node];
  const tg__garg *a = tg__node_args(r->g, nd);
  ofl_rec *rec = tg__ofl_rec_new(b, rs, t, nd->nargs);
  if (!rec) return NULL;
  rec->early = true;
  rs->early[di] = rec;
  rs->nearly++;
  rec->task = di;
  rec->node = t->node;
  tg__ofl_expect(b, rec, nd);
  for (uint32_t j = 0; j < nd->nargs; j++)
    if (a[j].kind == TG_ARG_VALUE) rec->args[j] = a[j].u.value; /* the graph's */
  return rec;
}

/* Send task di of rs to c ahead of the engine. */
static void presend(ofl *b, ofl_conn *c, ofl_run *rs, uint32_t di) {
  ofl_rec *rec = early_rec(b, rs, di);
  if (!rec) return;
  rec->conn = c->idx;
  tg__ofl_conn_add(c, rec);
  tg__ofl_append(b, c, rec);
}

/* Pre-send to c the inputs of task di that presendable found can be
 * pulled there, each after its own (a tree's leaves, then its sums):
 * each is kept there for di when it goes (tg__ofl_chain_flags). di
 * passed presendable_in with a budget, or pullable, just before: every
 * input of it not kept on c can be pulled (nothing the checks read has
 * changed since), so they are not checked again at each level. */
static void pull_inputs(ofl *b, ofl_conn *c, ofl_run *rs, uint32_t di) {
  const tg__run *r = rs->r;
  const tg__runplan *p = &r->plan;
  const tg__gnode *nd = &r->g->nodes[p->tasks[di].node];
  const tg__garg *a = tg__node_args(r->g, nd);
  uint64_t tag = tag_of(c);
  for (uint32_t j = 0; j < nd->nargs && c->state == CS_READY; j++) {
    if (a[j].kind != TG_ARG_NODE) continue;
    uint32_t pi = p->task_of[a[j].node];
    if (pi == UINT32_MAX || rs->bound[pi] == tag || rs->early[pi]) continue;
    /* A subtree's lowest sums take their leaves folded into them. */
    bool fold;
    uint32_t width = pull_width(rs, pi, c, &fold), folded = fold ? width : 0;
    if (!folded) pull_inputs(b, c, rs, pi);
    if (c->state != CS_READY || rs->early[pi]) continue;
    uint32_t was = rs->pulled_for;
    rs->pulled_for = di + 1;
    if (folded) presend_folded(b, c, rs, pi, folded);
    else presend(b, c, rs, pi);
    rs->pulled_for = was;
  }
}

static bool foldable(const ofl_run *rs, uint32_t pi);

/* How many inputs of task di, presendable to c, are to be pulled there
 * with it (not kept there, not sent ahead already); *fold (unless NULL):
 * whether there are some and they can all be folded into its record. */
static uint32_t pull_width(const ofl_run *rs, uint32_t di, const ofl_conn *c, bool *fold) {
  const tg__run *r = rs->r;
  const tg__runplan *p = &r->plan;
  const tg__gnode *nd = &r->g->nodes[p->tasks[di].node];
  const tg__garg *a = tg__node_args(r->g, nd);
  uint64_t tag = tag_of(c);
  uint32_t n = 0;
  bool all = fold != NULL;
  for (uint32_t j = 0; j < nd->nargs; j++) {
    if (a[j].kind != TG_ARG_NODE) continue;
    uint32_t pi = p->task_of[a[j].node];
    if (pi == UINT32_MAX || rs->bound[pi] == tag || rs->early[pi]) continue;
    n++;
    all = all && foldable(rs, pi);
  }
  if (fold) *fold = all && n;
  return n;
}

/* ---- inputs folded into a pre-sent record -------------------------------------- */

/* A folded task's call that failed on its worker. */
struct ofl_fold_fail {
  ofl_fold_fail *next;
  uint32_t task;
  int code;
  char *msg;
  tg__call_report rep;
};

/* rs->fold_of's mark of a folded task whose record is gone with its
 * reply: it ends with the gone value when the engine gets there. Never a
 * record. */
static ofl_rec fold_done_mark;

/* Whether input pi of a task pre-sent to c, found pullable there, can be
 * folded into that task's record: a leaf (its arguments all constants)
 * of a plain call of a pure function (a worker lost with it, it is run
 * again), not part of a task (those are built here), that its dependent
 * names once (so its one use is its last). Such a task needs no record
 * of its own here: its dependent's record keeps what there is to know. */
static bool foldable(const ofl_run *rs, uint32_t pi) {
  const tg__run *r = rs->r;
  const tg__runplan *p = &r->plan;
  if (p->dep_off[pi + 1] - p->dep_off[pi] != 1 || (p->tasks[pi].flags & TG__T_INTERNAL))
    return false;
  const tg__gnode *nd = &r->g->nodes[p->tasks[pi].node];
  if (nd->kind != TG__NK_CALL || !(nd->fn->flags & TG_FUNC_PURE)) return false;
  const tg__garg *a = tg__node_args(r->g, nd);
  for (uint32_t j = 0; j < nd->nargs; j++)
    if (a[j].kind != TG_ARG_VALUE) return false;
  return true;
}

/* Pre-send task di of rs to c with its n inputs to be pulled there folded
 * into its record: each goes as a quiet record of its own just before it
 * (their wire ids follow each other, and its own follows theirs), but
 * here they have none: no record to make, place, check, send and end for
 * each of a sum's 1,000 leaves (graph.json). */
static void presend_folded(ofl *b, ofl_conn *c, ofl_run *rs, uint32_t di, uint32_t n) {
  const tg__run *r = rs->r;
  const tg__runplan *p = &r->plan;
  const tg__gnode *nd = &r->g->nodes[p->tasks[di].node];
  const tg__garg *a = tg__node_args(r->g, nd);
  ofl_fold *f = tg__malloc(sizeof *f + n * sizeof f->tasks[0]);
  ofl_rec *rec = f ? early_rec(b, rs, di) : NULL;
  if (!rec) { /* then the engine sends them when they are ready */
    tg__free(f);
    return;
  }
  *f = (ofl_fold){.first = c->next_id + 1};
  rec->fold = f;
  uint64_t tag = tag_of(c);
  for (uint32_t j = 0; j < nd->nargs; j++) {
    if (a[j].kind != TG_ARG_NODE) continue;
    uint32_t pi = p->task_of[a[j].node];
    if (pi == UINT32_MAX || f->n == n || rs->bound[pi] == tag || rs->early[pi]) continue;
    uint64_t store = b->next_id++;
    if (!tg__ofl_append_folded(b, c, rs, pi, store)) break;
    if (!f->n) f->sent = c->batch_t; /* its message's: the earliest of them */
    f->tasks[f->n++] = pi;
    rs->fold_of[pi] = rec;
    rs->bound[pi] = tag;
    rs->bound_id[pi] = store;
    const tg__gnode *pn = &r->g->nodes[p->tasks[pi].node];
    rec->est += tg__ofl_task_secs(b, (uint64_t)(uintptr_t)pn->fn + pn->kind);
  }
  if (c->state != CS_READY || f->n < n) { /* c lost, or out of memory: what went is */
    tg__ofl_rec_requeue(b, rec, c->why);  /* made again where needed */
    return;
  }
  rec->conn = c->idx;
  tg__ofl_conn_add(c, rec);
  tg__ofl_append(b, c, rec);
}

static ofl_fold_fail *fold_failure(const ofl_fold *f, uint32_t task) {
  ofl_fold_fail *x = f->failed;
  while (x && x->task != task) x = x->next;
  return x;
}

bool tg__ofl_fold_ready(const ofl_run *rs, uint32_t ti) {
  const ofl_rec *rec = rs->fold_of[ti];
  return rec == &fold_done_mark || (rec && (rec->done || fold_failure(rec->fold, ti)));
}

bool tg__ofl_fold_park(ofl_run *rs, tg__task *t) {
  uint32_t ti = (uint32_t)(t - rs->r->plan.tasks);
  ofl_rec *rec = rs->fold_of[ti];
  if (!rec || tg__ofl_fold_ready(rs, ti)) return false;
  t->next = rec->fold->parked;
  rec->fold->parked = t;
  return true;
}

void tg__ofl_fold_end(ofl *b, ofl_run *rs, tg__task *t) {
  uint32_t ti = (uint32_t)(t - rs->r->plan.tasks);
  ofl_rec *rec = rs->fold_of[ti];
  rs->fold_of[ti] = NULL;
  ofl_fold_fail *x = rec != &fold_done_mark ? fold_failure(rec->fold, ti) : NULL;
  tg__call_report rep = {.start = -1, .seconds = -1, .thread = -1, .attempts = 1,
                         .worker = rec == &fold_done_mark ? -1
                                   : rec->done            ? rec->drep.worker
                                                          : rec->conn};
  if (x) rep = x->rep;
  tg_value *const *args;
  size_t n;
  if (!tg__task_begin(&b->w, t, &args, &n)) return; /* the engine ended it */
  tg__task_started(&b->w, t, rep.worker);
  if (x) {
    tg__task_end_report(&b->w, t, x->code, NULL, x->msg, &rep);
    return;
  }
  atomic_fetch_add(&b->st_kept, 1); /* it was made there and used there */
  tg__ofl_run_task_done(b, rs, ti);
  tg__task_end_report(&b->w, t, TG_OK, tg__ofl_gone(), NULL, &rep);
}

void tg__ofl_fold_release(ofl *b, ofl_rec *rec) {
  ofl_fold *f = rec->fold;
  if (!f) return;
  rec->fold = NULL;
  ofl_run *rs = rec->rs;
  /* Those the engine has not ended: made there (rec's reply came) they
   * end with the gone value when it gets there, as quiet tasks do; else
   * (rec lost, given up) they go their own way, sent again. */
  for (uint32_t k = 0; k < f->n; k++) {
    uint32_t pi = f->tasks[k];
    if (rs->fold_of[pi] != rec) continue; /* ended, or gone its own way */
    if (rec->done && !fold_failure(f, pi)) {
      rs->fold_of[pi] = &fold_done_mark;
    } else {
      rs->fold_of[pi] = NULL;
      rs->bound[pi] = 0; /* its object is not to be named there */
    }
  }
  while (f->parked) { /* rec given up before its reply */
    tg__task *t = f->parked;
    f->parked = t->next;
    t->next = NULL;
    tg__ofl_heap_repush(b, t);
  }
  while (f->failed) {
    ofl_fold_fail *x = f->failed;
    f->failed = x->next;
    tg__free(x->msg);
    tg__free(x);
  }
  tg__free(f);
}

ofl_rec *tg__ofl_fold_owner(ofl_conn *c, uint64_t id, uint32_t *task) {
  /* The ids after a folded one up to its record's are those of the
   * record's other folded tasks, which have no entry: the first entry
   * after it is its record's, if any. */
  for (uint64_t k = 1; k <= (uint64_t)OFL_PULL + 1 && id + k > id; k++) {
    ofl_rec *rec = tg__idmap_get(&c->recs, id + k);
    if (!rec) continue;
    const ofl_fold *f = rec->fold;
    if (!f || id < f->first || id - f->first >= f->n) return NULL;
    *task = f->tasks[id - f->first];
    return rec->rs->fold_of[*task] == rec ? rec : NULL;
  }
  return NULL;
}

void tg__ofl_fold_fail(ofl *b, ofl_rec *rec, uint32_t task, int code, const char *msg,
                       const tg__call_report *rep) {
  ofl_fold *f = rec->fold;
  if (fold_failure(f, task)) return; /* told twice */
  ofl_fold_fail *x = tg__calloc(1, sizeof *x);
  if (!x) return; /* its dependent's failure names it */
  x->task = task;
  x->code = code;
  x->rep = *rep;
  x->rep.message = NULL;
  if (msg && *msg && (x->msg = tg__malloc(strlen(msg) + 1))) strcpy(x->msg, msg);
  x->next = f->failed;
  f->failed = x;
  for (tg__task **pp = &f->parked; *pp; pp = &(*pp)->next) /* set aside: it ends next */
    if (*pp - rec->rs->r->plan.tasks == (ptrdiff_t)task) {
      tg__task *t = *pp;
      *pp = t->next;
      tg__ofl_done_push(b, t);
      break;
    }
}

/* Task ti of rs was sent to c, its result to stay there: send its
 * dependents whose inputs are all there now, ahead of the engine (which
 * has not made them ready: an input of theirs has not finished there).
 * False when there was no room under OFL_AHEAD or under the run's bound
 * of results alive (a quiet task's always go: they are what tells that
 * it is done). */
static bool presend_deps(ofl *b, ofl_conn *c, ofl_run *rs, uint32_t ti, bool checked) {
  const tg__runplan *p = &rs->r->plan;
  bool forced = rs->silent[ti] != NULL;
  for (uint32_t k = p->dep_off[ti]; k < p->dep_off[ti + 1]; k++) {
    uint32_t di = p->deps[k];
    tg__task *d = &p->tasks[di];
    if ((k > p->dep_off[ti] && p->deps[k - 1] == di) || rs->early[di] ||
        (d->flags & TG__T_CACHED) || atomic_load(&d->pending) == 0 ||
        atomic_load(&d->state) != TG__T_NEW)
      continue;
    /* Not forced, a dependent adds a result here, and its inputs pulled
     * along are alive on the worker until it runs (a sum's 1,000 leaves:
     * a subtree's pulled sums free theirs as they go): it waits for room
     * for them all, like the engine's leaves. Counted once: by the check
     * when it is made here, else now. */
    uint32_t width;
    bool fold;
    if (checked) width = pull_width(rs, di, c, &fold);
    else if (!presendable(b, rs, di, c, UINT32_MAX, &width, &fold)) continue;
    if (!forced && (rs->nearly >= OFL_AHEAD || tg__ofl_run_room(b, rs) <= (int64_t)width))
      return false;
    if (c->state != CS_READY) return true; /* lost: the engine sends them */
    if (fold) {
      presend_folded(b, c, rs, di, width);
    } else {
      pull_inputs(b, c, rs, di);
      if (c->state != CS_READY) return true;
      pull_budget none = {0, 0}; /* what was pulled must be kept there now */
      if (!rs->early[di] && presendable_in(b, rs, di, c, UINT32_MAX, &none))
        presend(b, c, rs, di);
    }
    if (rs->early[di]) {
      rs->early[di]->pulled = width;
      rs->pulled_alive += width;
    }
  }
  return true;
}

/* Pre-send the dependents of the tasks on rs's stack (depth first: a
 * chain goes out link after link), holding back those without room. A
 * task popped right after chain_deps checked its dependents (no record
 * was appended since: each append clears the mark) has them checked
 * already: a tree's or a sum's pulled inputs were each looked at twice
 * (a tenth of the I/O thread's time on a tree), and so were the inputs
 * pulled by each sum pre-sent within this loop, not only the first: a
 * tree's sibling subtrees (W3: 2.4 checks a task, 1.3 now; the I/O
 * thread's instructions 6% fewer). */
void tg__ofl_presend_stacked(ofl *b, ofl_run *rs) {
  if (rs->presending) return; /* the loop below takes what append pushes */
  rs->presending = true;
  while (rs->nstack) {
    uint32_t ti = rs->stack[--rs->nstack];
    bool checked = rs->checked == ti + 1;
    rs->checked = 0;
    uint64_t tag = rs->bound[ti];
    int ci = (int)(uint32_t)tag - 1;
    if (ci < 0 || ci >= b->nconns) continue;
    ofl_conn *c = b->conns[ci];
    if (c->state != CS_READY || c->leaving || tag_of(c) != tag) continue;
    if (!presend_deps(b, c, rs, ti, checked))
      push(&rs->deferred, &rs->ndeferred, &rs->cap_deferred, ti);
  }
  rs->checked = 0; /* none popped (a push out of memory): stale */
  rs->presending = false;
}

/* Room under OFL_AHEAD and the run's bound again: send what was held
 * back. */
static void undefer(ofl *b, ofl_run *rs) {
  if (!rs->ndeferred || rs->nearly >= OFL_AHEAD / 2 || tg__ofl_run_room(b, rs) <= 0) return;
  while (rs->ndeferred) /* oldest last on the stack: first out */
    push(&rs->stack, &rs->nstack, &rs->cap_stack, rs->deferred[--rs->ndeferred]);
  tg__ofl_presend_stacked(b, rs);
}

void tg__ofl_undefer_runs(ofl *b) {
  for (ofl_run *rs = b->runs; rs; rs = rs->next)
    if (rs->ndeferred) {
      rs->users++; /* pre-sending may end the run's last record */
      undefer(b, rs);
      tg__ofl_run_unuse(b, rs);
    }
}

/* The value of quiet rec's result, an object its last use dropped on its
 * worker (nothing holds it: a task that still needs it computes it again).
 * With one dependent (a chain's link, a tree's leaf or sum), the engine's
 * one "gone" value (tg__ofl_gone): that dependent went with it and
 * replied; sent again, it finds its producer from the graph and has it
 * made again (find_handles, offload/dispatch.c), as a lost result. A
 * placeholder with a handle per quiet task was a quarter of what the I/O
 * thread did for a tree pulled to a worker. With more, a placeholder of
 * its own: made again for one of them, its handle (held by the value)
 * tells the others where it is (NULL out of memory). */
static tg_value *quiet_value(ofl *b, ofl_rec *rec) {
  atomic_fetch_add(&b->st_kept, 1);
  if (tg__ofl_run_dependents(rec->rs, rec->task) == 1) return tg__ofl_gone();
  ofl_handle *h = tg__ofl_handle_new(b, H_OBJ, rec->store);
  if (!h) return NULL;
  h->run = rec->rs;
  h->task = rec->task;
  rec->rs->users++;
  rec->rs->handle_of[rec->task] = h;
  bool dup;
  tg_value *v = tg__ofl_placeholder(b, h, TG__SHAPE_NONE, 0, NULL, NULL, &dup);
  tg__ofl_handle_unref(b, h);
  return v;
}

/* Quiet rec is done (a dependent's reply came). */
static void quiet_done(ofl *b, ofl_rec *rec) {
  ofl_run *rs = rec->rs;
  ofl_conn *c = b->conns[rec->conn];
  rs->silent[rec->task] = NULL;
  tg__ofl_quiet_clear(rs, rec);
  tg__idmap_del(&c->recs, rec->id);
  tg__ofl_conn_remove(c, rec);
  rec->conn = -1;
  tg__call_report rep = {.start = -1, .seconds = -1, .worker = c->idx, .thread = -1,
                         .attempts = 1};
  if (rec->orphan) {
    tg__ofl_rec_free(b, rec);
  } else if (rec->early) { /* its value is made when the engine gets there */
    rec->done = true;
    rec->lazy = true;
    rec->dcode = TG_OK;
    rec->drep = rep;
    tg__ofl_rec_off_worker(rs, rec);
    tg__ofl_unpark(b, rec);
  } else {
    tg_value *v = quiet_value(b, rec);
    tg__ofl_run_task_done(b, rs, rec->task);
    tg__task_end_report(&b->w, rec->t, v ? TG_OK : TG_ENOMEM, v,
                        v ? NULL : "out of memory", &rep);
    tg__ofl_take_ready(b);
    tg__ofl_rec_free(b, rec);
  }
}

/* Whether an input of task ti of rs is a quiet task not yet told done. */
static bool quiet_input(const ofl_run *rs, uint32_t ti) {
  const tg__run *r = rs->r;
  const tg__gnode *nd = &r->g->nodes[r->plan.tasks[ti].node];
  const tg__garg *a = tg__node_args(r->g, nd);
  for (uint32_t j = 0; j < nd->nargs; j++) {
    if (a[j].kind != TG_ARG_NODE) continue;
    uint32_t pi = r->plan.task_of[a[j].node];
    const ofl_rec *q = pi != UINT32_MAX ? rs->silent[pi] : NULL;
    if (q && q->conn >= 0 && !q->done) return true;
  }
  return false;
}

void tg__ofl_inputs_done(ofl *b, ofl_rec *rec) {
  ofl_run *rs = rec->rs;
  /* Most replies took no quiet input: no walk (nor its stack) for them,
   * nor a look at their inputs while the run has no quiet task out. */
  if (!rec->t || !rs->live || !rs->nquiet || !quiet_input(rs, rec->task)) return;
  const tg__run *r = rs->r;
  /* What a quiet task took was made too: walk back along them (a chain
   * pre-sent whole tells of all its links with its last reply). */
  uint32_t *st = NULL, n = 0, cap = 0;
  push(&st, &n, &cap, rec->task);
  rs->users++; /* quiet_done may free the last record of rs */
  while (n) {
    uint32_t ti = st[--n];
    const tg__gnode *nd = &r->g->nodes[r->plan.tasks[ti].node];
    const tg__garg *a = tg__node_args(r->g, nd);
    for (uint32_t j = 0; j < nd->nargs; j++) {
      if (a[j].kind != TG_ARG_NODE) continue;
      uint32_t pi = r->plan.task_of[a[j].node];
      ofl_rec *q = pi != UINT32_MAX ? rs->silent[pi] : NULL;
      if (!q || q->conn < 0 || q->done) continue;
      quiet_done(b, q);
      push(&st, &n, &cap, pi);
    }
  }
  tg__free(st);
  tg__ofl_run_unuse(b, rs);
}

/* Whether argument j of pre-sent rec is the last use of a quiet task's
 * result: every dependent of that task that will run has been sent
 * (rec, being sent, too: they all go before any of them replies), and
 * no later argument of rec names it. */
bool tg__ofl_last_use(const ofl_run *rs, const ofl_rec *rec, const tg__garg *a, uint32_t j) {
  const tg__runplan *p = &rs->r->plan;
  uint32_t pi = p->task_of[a[j].node];
  if (!rs->silent[pi]) return false;
  uint32_t uses = 0; /* of pi by rec: the plan lists one per argument naming it */
  for (uint32_t k = p->dep_off[pi]; k < p->dep_off[pi + 1]; k++) {
    uint32_t di = p->deps[k];
    uses += di == rec->task;
    if (!(p->tasks[di].flags & TG__T_CACHED) && !rs->early[di]) return false;
  }
  /* Named once (argument j): no later argument to look through, which made
   * a sum of n pulled inputs cost n * n / 2 steps. */
  for (uint32_t k = j + 1; uses > 1 && k < rec->nargs; k++)
    if (a[k].kind == TG_ARG_NODE && a[k].node == a[j].node) return false;
  return true;
}

/* The engine began task ti, pre-sent as rec (args: its inputs, borrowed
 * until its end): it waits for rec's reply, or ends with it now. */
void tg__ofl_attach(ofl *b, ofl_run *rs, ofl_rec *rec, tg_value *const *args, size_t n) {
  rs->early[rec->task] = NULL;
  rs->nearly--;
  rec->early = false;
  if (rec->quiet) rs->nquiet_begun++;
  if (n) memcpy(rec->args, args, n * sizeof *args);
  rec->started = true;
  tg__task_started(&b->w, rec->t, rec->done ? rec->drep.worker : rec->conn);
  if (rec->done) {
    tg_value *v = rec->dval;
    rec->dval = NULL;
    if (v) tg__run_live(rs->r, -1); /* the engine counts it from here */
    if (rec->lazy && !(v = quiet_value(b, rec))) rec->dcode = TG_ENOMEM;
    tg__ofl_run_task_done(b, rs, rec->task);
    tg__task_end_report(&b->w, rec->t, rec->dcode, v,
                        rec->dcode == TG_ENOMEM && !rec->dmsg ? "out of memory" : rec->dmsg,
                        &rec->drep);
    tg__ofl_take_ready(b);
    tg__ofl_rec_free(b, rec);
  }
  undefer(b, rs);
}

/* The engine finished task ti without calling it (skipped): rec's reply,
 * if still to come, is dropped. */
void tg__ofl_orphan(ofl *b, ofl_run *rs, ofl_rec *rec) {
  if (rec->done) {
    tg__ofl_rec_free(b, rec);
  } else {
    rs->early[rec->task] = NULL;
    rs->nearly--;
    rec->early = false;
    if (rec->quiet) rs->nquiet_begun++;
    rec->orphan = true;
    rs->live--;
    tg__ofl_rec_off_worker(rs, rec);
  }
  undefer(b, rs);
}

void tg__ofl_early_done(ofl *b, ofl_rec *rec, int code, tg_value *v, const char *msg,
                        const tg__call_report *rep, uint64_t calls, uint64_t fails) {
  if (rec->orphan) {
    tg_value_unref(v);
    tg__ofl_rec_free(b, rec);
    return;
  }
  tg__run *run = rec->rs->r;
  bool user = !(rec->t->flags & TG__T_INTERNAL);
  if (calls > 1 && user) atomic_fetch_add(&run->ran, calls - 1);
  if (fails > (code != TG_OK) && user)
    atomic_fetch_add(&run->attempts_failed, fails - (code != TG_OK));
  if (code == TG_OK && !v) code = TG_ENOMEM;
  if (code != TG_OK) {
    tg_value_unref(v);
    v = NULL;
  }
  rec->done = true;
  rec->dcode = code;
  rec->dval = v;
  if (v) tg__run_live(run, 1); /* alive here, not yet in the engine */
  if (msg && *msg && (rec->dmsg = tg__malloc(strlen(msg) + 1))) strcpy(rec->dmsg, msg);
  rec->drep = *rep;
  rec->drep.message = NULL;
  tg__ofl_rec_off_worker(rec->rs, rec); /* on no worker now */
  if (rec->rs->silent[rec->task] == rec) rec->rs->silent[rec->task] = NULL;
  tg__ofl_quiet_clear(rec->rs, rec);
  tg__ofl_unpark(b, rec);
}
