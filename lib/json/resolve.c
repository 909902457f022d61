/* lib/json/resolve.c: the checks between parsing and building: functions
 * exist and take the given number of arguments, refs and outputs name
 * tasks. Each failure points at the offending text. */
#include <stdio.h>
#include <string.h>

#include "json/gj_internal.h"
#include "value/value_internal.h"

typedef struct refvec {
  gj_arg **v;
  size_t n, cap;
} refvec;

static int refvec_push(refvec *r, gj_arg *a) {
  if (r->n == r->cap) {
    size_t cap = r->cap ? r->cap * 2 : 16;
    gj_arg **v = tg__realloc(r->v, cap * sizeof *v);
    if (v == NULL) return TG_ENOMEM;
    r->v = v;
    r->cap = cap;
  }
  r->v[r->n++] = a;
  return TG_OK;
}

/* Edit distance of a and b, giving up (returning max + 1) beyond max. */
static size_t distance(const char *a, const char *b, size_t max) {
  size_t la = strlen(a), lb = strlen(b);
  if ((la > lb ? la - lb : lb - la) > max || lb > 255) return max + 1;
  size_t row[256];
  for (size_t j = 0; j <= lb; j++) row[j] = j;
  for (size_t i = 1; i <= la; i++) {
    size_t diag = row[0], best = row[0] = i;
    for (size_t j = 1; j <= lb; j++) {
      size_t up = row[j];
      size_t sub = diag + (a[i - 1] != b[j - 1]);
      size_t v = up + 1 < row[j - 1] + 1 ? up + 1 : row[j - 1] + 1;
      row[j] = v < sub ? v : sub;
      diag = up;
      if (row[j] < best) best = row[j];
    }
    if (best > max) return max + 1;
  }
  return row[lb];
}

/* " (did you mean 'x'?)" for the task key closest to key, or "". Only
 * tried on graphs small enough for the search to be instant. */
static void suggest_key(const gj_doc *d, const char *key, char *out,
                        size_t size) {
  out[0] = '\0';
  if (d->ntasks > 100000) return;
  size_t best = 3;
  const char *hit = NULL;
  for (size_t i = 0; i < d->ntasks; i++) {
    size_t dist = distance(key, d->tasks[i].key, best - 1);
    if (dist < best) best = dist, hit = d->tasks[i].key;
  }
  if (hit != NULL) snprintf(out, size, " (did you mean '%.60s'?)", hit);
}

/* Lists and maps holding refs become a tg.build template (see emit.c)
 * where each level is two, [tag, payload], and a leaf one more: a ref
 * under depth levels takes 2 * depth + 1 of the TG_DEPTH_MAX a value may
 * nest, a constant its own levels more. Deeper would fail to build, so
 * say so here, where the position is known. */
#define REF_DEPTH_MAX ((TG_DEPTH_MAX - 1) / 2)

static int too_deep(gj_doc *d, const gj_arg *a, unsigned depth) {
  if (a->kind == GJ_REF)
    return tg__gj_fail(d, a->off, TG_EDEPTH,
                       "nesting deeper than %d levels around a ref (lists "
                       "and maps that hold refs nest at most %d levels)",
                       REF_DEPTH_MAX, REF_DEPTH_MAX);
  return tg__gj_fail(d, a->off, TG_EDEPTH,
                     "nesting too deep: a constant %u levels deep inside %u "
                     "level%s of lists and maps that hold refs (twice those "
                     "levels plus the constant's may be at most %d)",
                     tg__depth(a->u.value), depth, depth == 1 ? "" : "s",
                     TG_DEPTH_MAX - 1);
}

/* Collect the refs of one argument tree into the task's ref list. */
static int refs_of(gj_doc *d, gj_arg *a, refvec *rv, bool *nested,
                   unsigned depth) {
  if (a->kind == GJ_CONST)
    return depth == 0 || 2 * depth + 1 + tg__depth(a->u.value) <= TG_DEPTH_MAX
               ? TG_OK
               : too_deep(d, a, depth);
  if (a->kind == GJ_REF) { /* resolved later, all at once */
    if (2 * depth + 1 > TG_DEPTH_MAX) return too_deep(d, a, depth);
    return refvec_push(rv, a) == TG_OK
               ? TG_OK
               : tg__gj_fail(d, a->off, TG_ENOMEM, "out of memory");
  }
  if (depth == 0) *nested = true;
  for (size_t i = 0; i < a->nitems; i++) {
    int rc = refs_of(d, a->u.seq.items[i], rv, nested, depth + 1);
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}

/* {"item": true}, the place of a map's item among its "args". */
static bool item_marker(gj_targ a) {
  if (!tg__gj_is_value(a)) return false;
  const tg_value *v = tg__gj_value_of(a);
  if (v == NULL || tg_value_type(v) != TG_MAP || tg_map_len(v) != 1) return false;
  size_t kl;
  const char *k = tg_map_key_at(v, 0, &kl);
  const tg_value *x = tg_map_value_at(v, 0);
  return kl == 4 && memcmp(k, "item", 4) == 0 && tg_value_type(x) == TG_BOOL &&
         tg_value_bool(x);
}

/* {"range": [start, stop]} or [start, stop, step] (ints, step not 0):
 * its length in *n. */
bool tg__gj_range(const tg_value *v, int64_t *start, int64_t *step, size_t *n) {
  if (tg_value_type(v) != TG_MAP || tg_map_len(v) != 1) return false;
  size_t kl;
  const char *k = tg_map_key_at(v, 0, &kl);
  const tg_value *r = tg_map_value_at(v, 0);
  if (kl != 5 || memcmp(k, "range", 5) != 0 || tg_value_type(r) != TG_LIST ||
      tg_list_len(r) < 2 || tg_list_len(r) > 3)
    return false;
  for (size_t i = 0; i < tg_list_len(r); i++)
    if (tg_value_type(tg_list_get(r, i)) != TG_INT) return false;
  int64_t a = tg_value_int(tg_list_get(r, 0)), b = tg_value_int(tg_list_get(r, 1));
  int64_t c = tg_list_len(r) == 3 ? tg_value_int(tg_list_get(r, 2)) : 1;
  if (c == 0) return false;
  /* as Python's range: ceil((b - a) / c) items when positive */
  bool empty = c > 0 ? b <= a : a <= b;
  uint64_t span = c > 0 ? (uint64_t)b - (uint64_t)a : (uint64_t)a - (uint64_t)b;
  uint64_t step_abs = c > 0 ? (uint64_t)c : -(uint64_t)c;
  uint64_t len = empty ? 0 : (span - 1) / step_abs + 1;
  if (len > GJ_RANGE_MAX) return false;
  *start = a, *step = c, *n = (size_t)len;
  return true;
}

/* A map task's own checks: where the item goes (taking the marker out of
 * its args), the function's argument count, what it maps over. */
static int check_map(gj_doc *d, gj_task *t, int want) {
  size_t pos = 0, found = 0, last = t->nargs - 1;
  for (size_t i = 0; i < last; i++)
    if (item_marker(t->args[i])) {
      if (found++) return tg__gj_fail(d, t->off + t->args_at, TG_EFORMAT,
                                      "map task '%s' has more than one {\"item\": true} "
                                      "in \"args\"", t->key);
      pos = i;
    }
  if (found) {
    tg_value_unref(tg__gj_value_of(t->args[pos]));
    memmove(t->args + pos, t->args + pos + 1, (t->nargs - pos - 1) * sizeof *t->args);
    t->nargs--;
  }
  size_t nextra = t->nargs - 1;
  if (want >= 0 && (size_t)want != 1 + nextra)
    return tg__gj_fail(d, t->off + t->fn_at, TG_EINVAL,
                       "function '%s' takes %d argument%s, a map calls it with %zu (the "
                       "item and %zu of \"args\")", t->fn, want, want == 1 ? "" : "s",
                       1 + nextra, nextra);
  if (pos > TG__CHUNK_MAX_POS)
    return tg__gj_fail(d, t->off + t->args_at, TG_ELIMIT,
                       "{\"item\": true} may follow at most %u arguments", TG__CHUNK_MAX_POS);
  t->chunk = tg__chunk_aux(t->chunk, pos);
  gj_arg *over = tg__gj_arg_of(t->args[last]);
  int64_t a, c;
  size_t n;
  switch (over->kind) {
    case GJ_CONST:
      if (tg_value_type(over->u.value) == TG_LIST ||
          tg__gj_range(over->u.value, &a, &c, &n))
        return TG_OK;
      break;
    case GJ_REF:
      if (over->get == GJ_GET_NONE) return TG_OK;
      return tg__gj_fail(d, over->off, TG_EFORMAT, "\"over\" maps over a whole task's "
                         "result: a ref with \"get\" is not supported");
    case GJ_LIST:
      for (size_t i = 0; i < over->nitems; i++) {
        const gj_arg *x = over->u.seq.items[i];
        if (x->kind != GJ_CONST && x->kind != GJ_REF)
          return tg__gj_fail(d, x->off, TG_EFORMAT, "an item of \"over\" is a constant "
                             "or a ref, not a list or map holding refs");
      }
      return TG_OK;
    default: break;
  }
  return tg__gj_fail(d, over->off, TG_EFORMAT,
                     "\"over\" must be a list, {\"range\": [start, stop]} or "
                     "[start, stop, step] of ints (step not 0, at most %d items), or "
                     "{\"ref\": KEY}", GJ_RANGE_MAX);
}

/* *missing gets the first ref (in file order) to a task that does not
 * exist: that error comes after every task's own. */
static int check_task(gj_doc *d, tg_registry *reg, gj_task *t, refvec *rv,
                      bool *nested, gj_arg **missing) {
  /* The parser shares a name among the tasks in a row that call it, so
   * a name is looked up once per run of them. */
  t->func = t > d->tasks && t[-1].fn == t->fn && t[-1].func != NULL
                ? t[-1].func
                : tg_registry_find(reg, t->fn);
  if (t->func == NULL) {
    const char *s = tg_registry_suggest(reg, t->fn);
    return tg__gj_fail(d, t->off + t->fn_at, TG_ENOFUNC,
                       "unknown function '%s'%s%.80s%s", t->fn,
                       s ? " (did you mean '" : "", s ? s : "", s ? "'?)" : "");
  }
  /* write_file is a side effect: a cached result would skip the write. */
  if (strcmp(t->fn, "write_file") == 0) t->cache = 0;
  int want = tg_func_nargs(t->func);
  if (t->map) {
    int rc = check_map(d, t, want);
    if (rc != TG_OK) return rc;
  } else if (want >= 0 && (size_t)want != t->nargs)
    return tg__gj_fail(d, t->off + (t->nargs ? t->args_at : t->fn_at),
                       TG_EINVAL, "function '%s' takes %d argument%s, got %u",
                       t->fn, want, want == 1 ? "" : "s", (unsigned)t->nargs);
  rv->n = 0;
  for (size_t i = 0; i < t->nargs; i++) {
    if (tg__gj_is_value(t->args[i])) continue; /* a constant at the top */
    gj_arg *a = tg__gj_arg_of(t->args[i]);
    if (t->map && i + 1 == t->nargs && a->kind == GJ_LIST) { /* items mapped, not built */
      for (size_t j = 0; j < a->nitems; j++) {
        int rc = refs_of(d, a->u.seq.items[j], rv, nested, 0);
        if (rc != TG_OK) return rc;
      }
      continue;
    }
    int rc = refs_of(d, a, rv, nested, 0);
    if (rc != TG_OK) return rc;
  }
  t->nrefs = (uint32_t)rv->n;
  if (rv->n == 0) return TG_OK;
  /* Resolved here, a task's refs at a time (the key index exists): the
   * answers are the info's dependencies, and no array of ref pointers
   * outlives this. */
  t->deps = tg__gj_alloc(&d->arena, rv->n * sizeof *t->deps);
  if (t->deps == NULL) return tg__gj_fail(d, t->off, TG_ENOMEM, "out of memory");
  tg__gj_find_many(d, rv->v, rv->n, t->deps);
  for (size_t k = 0; k < rv->n; k++) {
    if (t->deps[k] != UINT32_MAX) rv->v[k]->u.ref.task = t->deps[k];
    else if (*missing == NULL) *missing = rv->v[k]; /* keeps its key */
  }
  return TG_OK;
}

/* Without "outputs", every task no other task uses is an output. */
static int default_outputs(gj_doc *d) {
  bool *used = tg__calloc(d->ntasks ? d->ntasks : 1, sizeof *used);
  if (used == NULL) return tg__gj_fail(d, 0, TG_ENOMEM, "out of memory");
  for (size_t i = 0; i < d->ntasks; i++)
    for (uint32_t j = 0; j < d->tasks[i].nrefs; j++)
      used[d->tasks[i].deps[j]] = true;
  size_t n = 0;
  for (size_t i = 0; i < d->ntasks; i++) n += !used[i];
  d->outputs = tg__calloc(n ? n : 1, sizeof *d->outputs);
  d->output_tasks = tg__calloc(n ? n : 1, sizeof *d->output_tasks);
  if (d->outputs == NULL || d->output_tasks == NULL) {
    tg__free(used);
    return tg__gj_fail(d, 0, TG_ENOMEM, "out of memory");
  }
  for (size_t i = 0; i < d->ntasks; i++) {
    if (used[i]) continue;
    d->outputs[d->noutputs] =
        (gj_str){d->tasks[i].key, d->tasks[i].keylen, d->tasks[i].off};
    d->output_tasks[d->noutputs++] = (uint32_t)i;
  }
  tg__free(used);
  return TG_OK;
}

static int check_outputs(gj_doc *d) {
  if (!d->has_outputs) return default_outputs(d);
  d->output_tasks = tg__calloc(d->noutputs ? d->noutputs : 1, sizeof(uint32_t));
  if (d->output_tasks == NULL) return tg__gj_fail(d, 0, TG_ENOMEM, "out of memory");
  for (size_t i = 0; i < d->noutputs; i++) {
    uint32_t t = tg__gj_find(d, d->outputs[i].s, d->outputs[i].len);
    if (t == UINT32_MAX) {
      char hint[96];
      suggest_key(d, d->outputs[i].s, hint, sizeof hint);
      return tg__gj_fail(d, d->outputs[i].off, TG_EFORMAT,
                         "output '%s' is not a task%s", d->outputs[i].s, hint);
    }
    d->output_tasks[i] = t;
  }
  return TG_OK;
}

/* The error for a ref to a missing task. */
static int missing_ref(gj_doc *d, const gj_arg *a) {
  char hint[96];
  suggest_key(d, a->u.ref.key, hint, sizeof hint);
  return tg__gj_fail(d, a->off, TG_EFORMAT, "ref to a missing task '%s'%s",
                     a->u.ref.key, hint);
}

int tg__gj_resolve(gj_doc *d, tg_registry *reg) {
  refvec rv = {0};
  gj_arg *missing = NULL;
  int rc = TG_OK;
  for (size_t i = 0; rc == TG_OK && i < d->ntasks; i++) {
    bool nested = false;
    rc = check_task(d, reg, &d->tasks[i], &rv, &nested, &missing);
    if (rc == TG_OK && nested && d->build == NULL) {
      d->build = tg_registry_find(reg, "tg.build");
      if (d->build == NULL)
        rc = tg__gj_fail(d, d->tasks[i].off + d->tasks[i].args_at, TG_ENOFUNC,
                         "refs nested in an argument need the builtin "
                         "tg.build (tg_registry_add_builtins)");
    }
  }
  tg__free(rv.v);
  if (rc == TG_OK && missing != NULL) rc = missing_ref(d, missing);
  if (rc == TG_OK) tg__gj_arena_free(&d->ref_keys); /* refs are task indexes now */
  return rc == TG_OK ? check_outputs(d) : rc;
}
