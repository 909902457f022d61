/* lib/registry/registry.c: the function registry: functions in an array
 * (registration order) and an open-addressing index by name, and the
 * per-worker states they may name (a short array: a program declares a
 * few). */
#include <string.h>

#include "registry_internal.h"
#include "value/value_internal.h" /* tg__map_key_hash */

struct tg_registry {
  tg_func **funcs;  /* registration order; each its own allocation so that
                       handles stay valid while the array grows */
  size_t n, cap;
  uint32_t *index;  /* slots: function index + 1, 0 = empty */
  size_t index_cap; /* power of two, at least twice n */
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

/* One allocation: the struct, then name, version and doc strings. */
static tg_func *func_new(const tg_func_def *def) {
  const char *ver = def->fn_version ? def->fn_version : "0";
  const char *doc = def->doc ? def->doc : "";
  size_t ln = strlen(def->name), lv = strlen(ver), ld = strlen(doc);
  tg_func *f = tg__malloc(sizeof *f + ln + lv + ld + 3);
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


int tg_registry_add(tg_registry *reg, const tg_func_def *def,
                    const tg_func **out) {
  if (!reg || !def || def->version < TG_FUNC_DEF_V1 ||
      def->version > TG_FUNC_DEF_V2 || !def->fn || !def->name ||
      !name_ok(def->name) || def->nargs < -1)
    return TG_EINVAL;
  if (tg_registry_find(reg, def->name)) return TG_EEXIST;
  const char *sname = def->version >= TG_FUNC_DEF_V2 ? def->state : NULL;
  const tg__state *st = sname ? find_state(reg, sname) : NULL;
  if (sname && !st) return TG_ENOTFOUND;
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
  tg_func *f = func_new(def);
  if (!f) return TG_ENOMEM;
  f->state = st;
  f->index = (uint32_t)reg->n;
  reg->index[slot_of(reg, f->name, f->name_len, f->hash)] = (uint32_t)reg->n + 1;
  reg->funcs[reg->n++] = f;
  if (out) *out = f;
  return TG_OK;
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
const char *tg_func_state(const tg_func *f) {
  return f && f->state ? f->state->name : NULL;
}
