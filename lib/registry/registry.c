/* lib/registry/registry.c: the function registry: functions in an array
 * (registration order) and an open-addressing index by name, and the
 * per-worker states they may name (a short array: a program declares a
 * few). */
#include <stdio.h>
#include <string.h>

#include "registry_internal.h"
#include "value/hash_internal.h" /* tg__hasher: the code digest */
#include "value/value_internal.h" /* tg__map_key_hash */

struct tg_registry {
  tg_func **funcs;  /* registration order; each its own allocation so that
                       handles stay valid while the array grows */
  size_t n, cap;
  uint32_t *index;  /* slots: function index + 1, 0 = empty */
  size_t index_cap; /* power of two, at least twice n */
  char errmsg[320]; /* why the last tg_registry_add failed; "" if none */
  tg__state **states; /* declaration order; each its own allocation, so
                         functions keep pointers to them */
  size_t nstates, cap_states;
};

int tg_registry_new(tg_registry **out) {
  if (!out) return TG_EINVAL;
  *out = tg__calloc(1, sizeof **out);
  return *out ? TG_OK : TG_ENOMEM;
}

void tg_registry_free(tg_registry *reg) {
  if (!reg) return;
  for (size_t i = 0; i < reg->n; i++) tg__free(reg->funcs[i]);
  tg__free(reg->funcs);
  tg__free(reg->index);
  for (size_t i = 0; i < reg->nstates; i++) tg__free(reg->states[i]);
  tg__free(reg->states);
  tg__free(reg);
}

/* Slot of `name` in the index, or of the empty slot where it would go. */
static size_t slot_of(const tg_registry *reg, const char *name, size_t len,
                      uint32_t h) {
  size_t mask = reg->index_cap - 1;
  for (size_t s = h & mask;; s = (s + 1) & mask) {
    uint32_t e = reg->index[s];
    if (e == 0) return s;
    const tg_func *f = reg->funcs[e - 1];
    if (f->hash == h && f->name_len == len && memcmp(f->name, name, len) == 0)
      return s;
  }
}

static int grow_index(tg_registry *reg) {
  size_t cap = reg->index_cap ? reg->index_cap * 2 : 16;
  uint32_t *idx = tg__calloc(cap, sizeof *idx);
  if (!idx) return TG_ENOMEM;
  tg__free(reg->index);
  reg->index = idx;
  reg->index_cap = cap;
  for (size_t i = 0; i < reg->n; i++) {
    const tg_func *f = reg->funcs[i];
    reg->index[slot_of(reg, f->name, f->name_len, f->hash)] = (uint32_t)i + 1;
  }
  return TG_OK;
}

const tg_func *tg_registry_find(const tg_registry *reg, const char *name) {
  if (!reg || !name || reg->n == 0) return NULL;
  size_t len = strlen(name);
  uint32_t e = reg->index[slot_of(reg, name, len, tg__map_key_hash(name, len))];
  return e ? reg->funcs[e - 1] : NULL;
}

/* Printable UTF-8 without control characters, 1..TG__NAME_MAX bytes. */
static bool name_ok(const char *name) {
  size_t len = strlen(name);
  if (len == 0 || len > TG__NAME_MAX || !tg__utf8_valid(name, len))
    return false;
  for (size_t i = 0; i < len; i++) {
    unsigned char c = (unsigned char)name[i];
    if (c < 0x20 || c == 0x7f) return false;
  }
  return true;
}

static const tg__state *find_state(const tg_registry *reg, const char *name) {
  for (size_t i = 0; i < reg->nstates; i++)
    if (strcmp(reg->states[i]->name, name) == 0) return reg->states[i];
  return NULL;
}

int tg_registry_add_state(tg_registry *reg, const tg_state_def *def) {
  if (!reg || !def || def->version != TG_STATE_DEF_V1 || !def->init ||
      !def->name || !name_ok(def->name))
    return TG_EINVAL;
  if (find_state(reg, def->name)) return TG_EEXIST;
  if (reg->nstates == reg->cap_states) {
    size_t cap = reg->cap_states ? reg->cap_states * 2 : 4;
    tg__state **ss = tg__realloc(reg->states, cap * sizeof *ss);
    if (!ss) return TG_ENOMEM;
    reg->states = ss;
    reg->cap_states = cap;
  }
  size_t ln = strlen(def->name);
  tg__state *st = tg__malloc(sizeof *st + ln + 1);
  if (!st) return TG_ENOMEM;
  memcpy(st + 1, def->name, ln + 1);
  st->name = (const char *)(st + 1);
  st->init = def->init;
  st->teardown = def->teardown;
  st->user = def->user;
  reg->states[reg->nstates++] = st;
  return TG_OK;
}

/* 1..TG__NAME_MAX printable ASCII bytes without spaces: it travels to
 * workers and appears in messages as it is. */
static bool code_id_ok(const char *id) {
  size_t len = strlen(id);
  if (len == 0 || len > TG__NAME_MAX) return false;
  for (size_t i = 0; i < len; i++)
    if ((unsigned char)id[i] <= 0x20 || (unsigned char)id[i] >= 0x7f) return false;
  return true;
}

/* The fields of def this registry reads: V1's, and V2's from a V2 def
 * only (a V1 caller's struct ends before them). */
typedef struct def_view {
  const tg_func_def *d;
  uint64_t ignore;
  const char *code_id;
} def_view;

static tg_digest code_digest(const char *id) {
  tg__hasher h;
  tg__hasher_init(&h);
  tg__hasher_update(&h, "tgcode1", 7);
  tg__hasher_update(&h, id, strlen(id));
  return tg__hasher_final(&h);
}

/* One allocation: the struct, then name, version, doc and code id. */
static tg_func *func_new(const def_view *v) {
  const tg_func_def *def = v->d;
  const char *ver = def->fn_version ? def->fn_version : "0";
  const char *doc = def->doc ? def->doc : "";
  size_t ln = strlen(def->name), lv = strlen(ver), ld = strlen(doc);
  size_t lc = v->code_id ? strlen(v->code_id) + 1 : 0;
  tg_func *f = tg__malloc(sizeof *f + ln + lv + ld + 3 + lc);
  if (!f) return NULL;
  char *p = (char *)(f + 1);
  memcpy(p, def->name, ln + 1);
  f->name = p;
  p += ln + 1;
  memcpy(p, ver, lv + 1);
  f->version = p;
  p += lv + 1;
  memcpy(p, doc, ld + 1);
  f->doc = p;
  p += ld + 1;
  f->code_id = NULL;
  f->code = (tg_digest){0, 0};
  if (v->code_id) {
    memcpy(p, v->code_id, lc);
    f->code_id = p;
    f->code = code_digest(p);
  }
  f->ignore = v->ignore;
  f->fn = def->fn;
  f->state = NULL;
  f->user = def->user;
  f->flags = def->flags;
  f->nargs = def->nargs;
  f->name_len = (uint32_t)ln;
  f->hash = tg__map_key_hash(def->name, ln);
  f->has_origin = false;
  f->origin = (tg_digest){0, 0};
  f->kind = TG__ORIGIN_PROGRAM;
  f->origin_file[0] = '\0';
  return f;
}

/* Check def; on a problem say it in reg->errmsg and return TG_EINVAL. */
static int check_def(tg_registry *reg, const tg_func_def *def, def_view *v) {
  char *m = reg->errmsg;
  size_t ms = sizeof reg->errmsg;
  if (!def) return snprintf(m, ms, "no function definition"), TG_EINVAL;
  if (def->version != TG_FUNC_DEF_V1 && def->version != TG_FUNC_DEF_V2)
    return snprintf(m, ms, "function definition version %u is unknown (expected "
                    "TG_FUNC_DEF_V1 or TG_FUNC_DEF_V2)", def->version), TG_EINVAL;
  if (!def->name || !name_ok(def->name))
    return snprintf(m, ms, "function name is missing, empty, longer than %d bytes or "
                    "not printable UTF-8", TG__NAME_MAX), TG_EINVAL;
  const char *n = def->name;
  if (!def->fn) return snprintf(m, ms, "function '%s': no fn", n), TG_EINVAL;
  if (def->nargs < -1)
    return snprintf(m, ms, "function '%s': nargs %d (expected -1 or a count)", n,
                    def->nargs), TG_EINVAL;
  *v = (def_view){def, 0, NULL};
  if (def->version < TG_FUNC_DEF_V2) return TG_OK;
  v->ignore = def->ignore_args;
  v->code_id = def->code_id;
  if (def->nargs >= 0 && def->nargs < 64 && (v->ignore >> def->nargs) != 0) {
    int hi = 63;
    while (!(v->ignore >> hi & 1)) hi--;
    return snprintf(m, ms, "function '%s': ignore_args names argument %d but it takes "
                    "%d argument%s (0-based indexes)", n, hi, def->nargs,
                    def->nargs == 1 ? "" : "s"), TG_EINVAL;
  }
  if (v->code_id && !code_id_ok(v->code_id))
    return snprintf(m, ms, "function '%s': code_id is empty, longer than %d bytes or "
                    "not printable ASCII without spaces", n, TG__NAME_MAX), TG_EINVAL;
  return TG_OK;
}

int tg_registry_add(tg_registry *reg, const tg_func_def *def,
                    const tg_func **out) {
  if (!reg) return TG_EINVAL;
  reg->errmsg[0] = '\0';
  def_view v;
  int rc = check_def(reg, def, &v);
  if (rc != TG_OK) return rc;
  if (tg_registry_find(reg, def->name)) {
    snprintf(reg->errmsg, sizeof reg->errmsg, "function '%s' is already registered",
             def->name);
    return TG_EEXIST;
  }
  const char *sname = def->version >= TG_FUNC_DEF_V2 ? def->state : NULL;
  const tg__state *st = sname ? find_state(reg, sname) : NULL;
  if (sname && !st) {
    snprintf(reg->errmsg, sizeof reg->errmsg,
             "function '%s': state '%s' is not declared (tg_registry_add_state "
             "comes first)", def->name, sname);
    return TG_ENOTFOUND;
  }
  if (reg->n >= UINT32_MAX - 1) return TG_ELIMIT;
  if ((reg->n + 1) * 2 > reg->index_cap && grow_index(reg) != TG_OK)
    return TG_ENOMEM;
  if (reg->n == reg->cap) {
    size_t cap = reg->cap ? reg->cap * 2 : 16;
    tg_func **fs = tg__realloc(reg->funcs, cap * sizeof *fs);
    if (!fs) return TG_ENOMEM;
    reg->funcs = fs;
    reg->cap = cap;
  }
  tg_func *f = func_new(&v);
  if (!f) return TG_ENOMEM;
  f->state = st;
  f->index = (uint32_t)reg->n;
  reg->index[slot_of(reg, f->name, f->name_len, f->hash)] = (uint32_t)reg->n + 1;
  reg->funcs[reg->n++] = f;
  if (out) *out = f;
  return TG_OK;
}

const char *tg_registry_errmsg(const tg_registry *reg) {
  return reg ? reg->errmsg : "";
}

int tg_register(tg_registry *reg, const char *name, tg_task_fn fn,
                unsigned flags) {
  tg_func_def def = {.version = TG_FUNC_DEF_V1, .name = name, .fn = fn,
                     .flags = flags, .nargs = -1};
  return tg_registry_add(reg, &def, NULL);
}

size_t tg_registry_count(const tg_registry *reg) { return reg ? reg->n : 0; }

const tg_func *tg_registry_at(const tg_registry *reg, size_t i) {
  return reg && i < reg->n ? reg->funcs[i] : NULL;
}

const char *tg_func_name(const tg_func *f) { return f ? f->name : NULL; }
const char *tg_func_version(const tg_func *f) { return f ? f->version : NULL; }
unsigned tg_func_flags(const tg_func *f) { return f ? f->flags : 0; }
int tg_func_nargs(const tg_func *f) { return f ? f->nargs : -1; }
const char *tg_func_doc(const tg_func *f) { return f ? f->doc : ""; }
uint64_t tg_func_ignore_args(const tg_func *f) { return f ? f->ignore : 0; }
const char *tg_func_code_id(const tg_func *f) { return f ? f->code_id : NULL; }
const char *tg_func_state(const tg_func *f) {
  return f && f->state ? f->state->name : NULL;
}
