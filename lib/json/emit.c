/* lib/json/emit.c: adding the parsed tasks to a graph, dependencies
 * first (an iterative depth-first walk that also finds cycles), with
 * nested refs assembled by tg.build nodes. */
#include <stdio.h>
#include <string.h>

#include "json/gj_internal.h"

enum { WHITE, GREY, BLACK };

typedef struct argvec {
  tg_arg *v;
  size_t n, cap;
} argvec;

static int argvec_push(argvec *a, tg_arg x) {
  if (a->n == a->cap) {
    size_t cap = a->cap ? a->cap * 2 : 16;
    tg_arg *v = tg__realloc(a->v, cap * sizeof *v);
    if (v == NULL) return TG_ENOMEM;
    a->v = v;
    a->cap = cap;
  }
  a->v[a->n++] = x;
  return TG_OK;
}

static tg_arg ref_arg(const gj_doc *d, const gj_arg *a) {
  tg_node n = d->tasks[a->u.ref.task].node;
  if (a->get == GJ_GET_INDEX) return tg_arg_item(n, a->u.ref.index);
  if (a->get == GJ_GET_KEY) return tg_arg_key(n, a->u.ref.gkey);
  return tg_arg_node(n);
}

/* [tag, payload]; the four tag strings are made once per document. */
static tg_value *tagged(const gj_doc *d, char tag, tg_value *payload) {
  int i = tag == 'c' ? 0 : tag == 's' ? 1 : tag == 'l' ? 2 : 3;
  return tg_list_of(2, tg_value_ref(d->tags[i]), payload);
}

/* ["s", i], the template of input i. Values are immutable, so the first
 * GJ_SLOTS of them are made once and shared by every template: a list of
 * a thousand refs then costs a thousand pointers, not a thousand lists. */
static tg_value *slot(gj_doc *d, size_t i) {
  if (i >= GJ_SLOTS) return tagged(d, 's', tg_int((int64_t)i));
  if (d->slots == NULL &&
      (d->slots = tg__calloc(GJ_SLOTS, sizeof *d->slots)) == NULL)
    return NULL;
  if (d->slots[i] == NULL) d->slots[i] = tagged(d, 's', tg_int((int64_t)i));
  return d->slots[i] ? tg_value_ref(d->slots[i]) : NULL;
}

/* The tg.build template of a, its refs appended to inputs. The constants
 * are taken from the tree. NULL when memory runs out. */
static tg_value *template_of(gj_doc *d, gj_arg *a, argvec *inputs) {
  if (a->kind == GJ_CONST) {
    tg_value *v = a->u.value;
    a->u.value = NULL;
    return tagged(d, 'c', v);
  }
  if (a->kind == GJ_REF) {
    if (argvec_push(inputs, ref_arg(d, a)) != TG_OK) return NULL;
    return slot(d, inputs->n - 2); /* input 0 is the template */
  }
  tg_value *seq = a->kind == GJ_LIST ? tg_list_alloc(a->nitems)
                                     : tg_map_new(a->nitems);
  for (size_t i = 0; seq != NULL && i < a->nitems; i++) {
    tg_value *t = template_of(d, a->u.seq.items[i], inputs);
    int rc = t == NULL ? TG_ENOMEM
             : a->kind == GJ_LIST
                 ? tg_list_init_item(seq, i, t)
                 : tg_map_put(seq, a->u.seq.keys[i], tg__gj_keylens(a)[i], t);
    if (rc != TG_OK) {
      tg_value_unref(seq);
      seq = NULL;
    }
  }
  return seq ? tagged(d, a->kind == GJ_LIST ? 'l' : 'm', seq) : NULL;
}

/* A tg.build node for argument i of task t; its node in *out. */
static int build_node(gj_doc *d, tg_graph *g, gj_task *t, size_t i,
                      tg_arg *out) {
  argvec inputs = {0};
  int rc = argvec_push(&inputs, tg_arg_value(NULL)); /* the template */
  tg_value *tmpl = rc == TG_OK ? template_of(d, tg__gj_arg_of(t->args[i]), &inputs) : NULL;
  if (tmpl == NULL) {
    tg__free(inputs.v);
    return tg__gj_fail(d, tg__gj_arg_of(t->args[i])->off, TG_ENOMEM, "out of memory");
  }
  inputs.v[0] = tg_arg_value(tmpl);
  char key[320];
  snprintf(key, sizeof key, "%.280s/args[%u]", t->key, (unsigned)i);
  /* The task's priority: its argument is assembled when it is due */
  tg_node_opts o = {TG_NODE_OPTS_V2, key, -1, -1, 0, t->priority};
  if (strlen(t->key) > 280 ||
      (d->slash_keys && tg__gj_find(d, key, strlen(key)) != UINT32_MAX))
    o.key = NULL; /* the name is taken: let the graph make one */
  tg_node n;
  rc = tg__graph_add_new_key(g, d->build, inputs.v, inputs.n, &o, &n);
  tg__free(inputs.v);
  if (rc != TG_OK)
    return tg__gj_fail(d, tg__gj_arg_of(t->args[i])->off, rc, "%s", tg_graph_errmsg(g));
  *out = tg_arg_node(n);
  return TG_OK;
}

/* The inputs a map's constant or literal "over" gives (constants taken
 * from the tree); NULL when memory runs out. */
static tg_arg *map_inputs(const gj_doc *d, gj_arg *over, size_t *n) {
  int64_t start, step;
  tg_value *v = over->kind == GJ_CONST ? over->u.value : NULL;
  bool range = v && tg_value_type(v) != TG_LIST && tg__gj_range(v, &start, &step, n);
  if (!range) *n = v ? tg_list_len(v) : over->nitems;
  tg_arg *in = tg__malloc((*n ? *n : 1) * sizeof *in);
  if (in == NULL) return NULL;
  for (size_t i = 0; i < *n; i++) {
    if (range) {
      in[i] = tg_arg_value(tg_int(start + (int64_t)i * step));
    } else if (v) {
      in[i] = tg_arg_value(tg_value_ref(tg_list_get(v, i)));
    } else {
      gj_arg *x = over->u.seq.items[i];
      if (x->kind == GJ_REF) {
        in[i] = ref_arg(d, x);
      } else {
        in[i] = tg_arg_value(x->u.value);
        x->u.value = NULL;
      }
    }
  }
  return in;
}

/* A map task: its extras are built as a call's arguments are; "over" is
 * its last argument. */
static int emit_map(gj_doc *d, tg_graph *g, gj_task *t, tg_arg *args, tg_node_opts *o) {
  size_t nextra = t->nargs - 1, pos = tg__chunk_pos(t->chunk), n = 0;
  size_t chunksize = tg__chunk_count(t->chunk);
  gj_arg *over = tg__gj_arg_of(t->args[nextra]);
  int rc;
  if (over->kind == GJ_REF) {
    rc = tg__graph_map_over(g, t->func, d->tasks[over->u.ref.task].node, args, nextra, pos,
                            chunksize, o, &t->node);
  } else {
    tg_arg *in = map_inputs(d, over, &n);
    if (over->kind == GJ_CONST) { /* its items are referenced: the graph
                                     takes nothing else of the document */
      tg_value_unref(over->u.value);
      over->u.value = NULL;
    }
    if (in == NULL) {
      tg__graph_drop_values(args, nextra);
      return tg__gj_fail(d, over->off, TG_ENOMEM, "out of memory");
    }
    rc = tg__graph_map_at(g, t->func, in, n, args, nextra, pos, chunksize, o, &t->node);
    tg__free(in);
  }
  return rc == TG_OK ? TG_OK : tg__gj_fail(d, t->off, rc, "%s", tg_graph_errmsg(g));
}

static int emit_task(gj_doc *d, tg_graph *g, gj_task *t) {
  tg_arg local[8], *args = local;
  if (t->nargs > 8 && (args = tg__malloc(t->nargs * sizeof *args)) == NULL)
    return tg__gj_fail(d, t->off, TG_ENOMEM, "out of memory");
  int rc = TG_OK;
  size_t i = 0, nargs = t->map ? t->nargs - 1 : t->nargs; /* a map's over is last */
  for (; rc == TG_OK && i < nargs; i++) {
    if (tg__gj_is_value(t->args[i])) {
      args[i] = tg_arg_value(tg__gj_value_of(t->args[i]));
      t->args[i] = tg__gj_of_value(NULL); /* the graph takes it */
      continue;
    }
    gj_arg *a = tg__gj_arg_of(t->args[i]);
    if (a->kind == GJ_REF) {
      args[i] = ref_arg(d, a);
    } else {
      rc = build_node(d, g, t, i, &args[i]);
    }
  }
  if (rc == TG_OK) {
    tg_node_opts o = {TG_NODE_OPTS_V2, t->key, t->retries, t->cache,
                      t->timeout, t->priority};
    if (t->map) rc = emit_map(d, g, t, args, &o);
    else rc = tg__graph_add_new_key(g, t->func, args, t->nargs, &o, &t->node);
    if (rc != TG_OK && !t->map)
      rc = tg__gj_fail(d, t->off, rc, "%s", tg_graph_errmsg(g));
  } else {
    /* Constants already moved into args[] are ours to drop now. */
    for (size_t j = 0; j + 1 < i; j++)
      if (args[j].kind == TG_ARG_VALUE) tg_value_unref(args[j].value);
  }
  if (args != local) tg__free(args);
  return rc;
}

typedef struct frame {
  uint32_t task, next; /* next: index into the task's refs */
} frame;

/* "cycle: a -> b -> a" for the stack from the task at `from` up. */
static int cycle_error(gj_doc *d, const frame *st, size_t top, size_t from,
                       const gj_arg *closing) {
  char msg[200];
  size_t n = (size_t)snprintf(msg, sizeof msg, "cycle: ");
  for (size_t i = from; i <= top && n < sizeof msg; i++) {
    const char *k = d->tasks[st[i].task].key;
    if (n + strlen(k) + 20 > sizeof msg) {
      n += (size_t)snprintf(msg + n, sizeof msg - n, "... -> ");
      break;
    }
    n += (size_t)snprintf(msg + n, sizeof msg - n, "%s -> ", k);
  }
  if (n < sizeof msg)
    snprintf(msg + n, sizeof msg - n, "%s", d->tasks[st[from].task].key);
  return tg__gj_fail(d, closing->off, TG_ECYCLE, "%s", msg);
}

/* The ref k (counted from 0) of a's tree, in the order of gj_task.deps;
 * NULL when a holds fewer (*k is then less by their number). */
static const gj_arg *ref_in(const gj_arg *a, uint32_t *k) {
  if (a->kind == GJ_REF) return (*k)-- == 0 ? a : NULL;
  if (a->kind == GJ_CONST) return NULL;
  for (size_t i = 0; i < a->nitems; i++) {
    const gj_arg *r = ref_in(a->u.seq.items[i], k);
    if (r != NULL) return r;
  }
  return NULL;
}

/* Ref k of task t (k < t->nrefs), for an error's position. */
static const gj_arg *nth_ref(const gj_task *t, uint32_t k) {
  for (size_t i = 0; i < t->nargs; i++) {
    if (tg__gj_is_value(t->args[i])) continue;
    const gj_arg *r = ref_in(tg__gj_arg_of(t->args[i]), &k);
    if (r != NULL) return r;
  }
  return NULL;
}

/* Depth-first from root: every task after the tasks it refs. */
static int walk(gj_doc *d, tg_graph *g, uint32_t root, frame *st) {
  size_t top = 0;
  st[0] = (frame){root, 0};
  uint8_t *mark = d->marks;
  mark[root] = GREY;
  for (;;) {
    frame *f = &st[top];
    gj_task *t = &d->tasks[f->task];
    if (f->next < t->nrefs) {
      uint32_t dep = t->deps[f->next++];
      if (mark[dep] == GREY) {
        size_t from = top;
        while (st[from].task != dep) from--;
        return cycle_error(d, st, top, from, nth_ref(t, f->next - 1));
      }
      if (mark[dep] == WHITE) {
        mark[dep] = GREY;
        st[++top] = (frame){dep, 0};
      }
      continue;
    }
    int rc = emit_task(d, g, t);
    if (rc != TG_OK) return rc;
    mark[f->task] = BLACK;
    if (top == 0) return TG_OK;
    top--;
  }
}

/* Room in g for every node, argument and key the document adds, so the
 * graph's arrays are allocated once at their final size. */
static int reserve(gj_doc *d, tg_graph *g) {
  size_t nodes = d->ntasks, nargs = 0, keybytes = 0;
  for (size_t i = 0; i < d->ntasks; i++) {
    const gj_task *t = &d->tasks[i];
    size_t direct = 0, built = 0;
    for (size_t j = 0; j < t->nargs; j++) {
      unsigned kind = tg__gj_kind(t->args[j]);
      direct += kind == GJ_REF;
      built += kind == GJ_LIST || kind == GJ_MAP;
    }
    nodes += built;
    nargs += t->nargs + built + (t->nrefs - direct); /* tg.build inputs */
    keybytes += (t->keylen + 1) * (1 + built) + 12 * built; /* "/args[I]" */
  }
  int rc = tg__graph_reserve(g, nodes, nargs, keybytes, nodes);
  return rc == TG_OK ? TG_OK : tg__gj_fail(d, 0, rc, "%s", tg_graph_errmsg(g));
}

int tg__gj_emit(gj_doc *d, tg_graph *g) {
  /* The walk's stack is at most one frame per task. Marks live in an
   * array of their own: the walk reads them at random, and a small array
   * stays in cache where the tasks would not. A ref's node is read from
   * its task (a second array of nodes would cost 4 bytes a task). */
  size_t n = d->ntasks ? d->ntasks : 1;
  frame *st = tg__malloc(n * sizeof *st);
  d->marks = tg__calloc(n, sizeof *d->marks);
  static const char *const names[4] = {"c", "s", "l", "m"};
  for (int i = 0; i < 4; i++) d->tags[i] = tg_str_c(names[i]);
  int rc = st && d->marks && d->tags[0] && d->tags[1] &&
                   d->tags[2] && d->tags[3]
               ? reserve(d, g)
               : tg__gj_fail(d, 0, TG_ENOMEM, "out of memory");
  /* Tasks 0..i are emitted once the walk from i is done: their parsed
   * arguments (tagged with their index in the work arena) are dropped, so
   * the parsed form shrinks while the graph grows. */
  for (size_t i = 0; rc == TG_OK && i < d->ntasks; i++) {
    if (d->marks[i] == WHITE) rc = walk(d, g, (uint32_t)i, st);
    if (rc == TG_OK && ((i + 1) % 4096 == 0 || i + 1 == d->ntasks)) {
      tg__gj_arena_release_below(&d->work, (uint32_t)(i + 1));
      d->work_done = i + 1;
    }
  }
  /* Every key given above is new to the graph, which started empty:
   * task keys are unique (tg__gj_index), a tg.build node's "KEY/args[I]"
   * names its task and argument (its last '[' says which) and is not
   * given when a task has that key. So they are indexed in one pass. */
  if (rc == TG_OK && (rc = tg__graph_index_since(g, 0)) != TG_OK)
    rc = tg__gj_fail(d, 0, rc, "out of memory");
  tg__free(st);
  for (int i = 0; i < 4; i++) tg_value_unref(d->tags[i]);
  for (size_t i = 0; d->slots != NULL && i < GJ_SLOTS; i++)
    tg_value_unref(d->slots[i]);
  tg__free(d->slots);
  d->slots = NULL;
  return rc;
}
