/* lib/value/value.c: construction, reference counting and accessors of
 * scalars, strings, bytes, arrays and lists (maps are in map.c). */
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "value_internal.h"

/* ---- static immortals ---------------------------------------------------- */

static tg_value tg__null_obj = {.refs = 1, .type = TG_NULL, .flags = TG__F_IMMORTAL};
static tg_value tg__false_obj = {.refs = 1, .type = TG_BOOL, .flags = TG__F_IMMORTAL};
static tg_value tg__true_obj = {.refs = 1, .type = TG_BOOL, .flags = TG__F_IMMORTAL};

tg_value *tg_null(void) { return &tg__null_obj; }
tg_value *tg_bool(bool b) { return b ? &tg__true_obj : &tg__false_obj; }

static void *tg__obj_new(size_t size, tg_type type) {
  tg_value *v = tg__malloc(size);
  if (!v) return NULL;
  atomic_init(&v->refs, 1);
  v->type = (uint8_t)type;
  v->flags = 0;
  v->depth = 0;
  return v;
}

/* ---- regions ------------------------------------------------------------- */

tg__region *tg__region_new(void *data, tg_release_fn release, void *ctx) {
  tg__region *r = tg__malloc(sizeof *r);
  if (!r) {
    if (release) release(ctx, data);
    return NULL;
  }
  atomic_init(&r->refs, 1);
  r->release = release;
  r->ctx = ctx;
  r->data = data;
  return r;
}

void tg__region_ref(tg__region *r) {
  atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
}

void tg__region_unref(tg__region *r) {
  if (!r) return;
  if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1) return;
  if (r->release) r->release(r->ctx, r->data);
  tg__free(r);
}

/* ---- references ---------------------------------------------------------- */

tg_value *tg_value_ref(tg_value *v) {
  if (v && !tg__is_imm(v) && !(v->flags & TG__F_IMMORTAL))
    atomic_fetch_add_explicit(&v->refs, 1, memory_order_relaxed);
  return v;
}

void tg__map_destroy(tg__map *m); /* map.c */

static void tg__value_destroy(tg_value *v) {
  switch ((tg_type)v->type) {
    case TG_STR:
    case TG_BYTES:
      tg__region_unref(((tg__blob *)v)->region);
      break;
    case TG_NDARRAY: {
      tg__array *a = (tg__array *)v;
      if (a->region)
        tg__region_unref(a->region);
      else
        tg__free(a->data);
      break;
    }
    case TG_LIST: {
      tg__list *l = (tg__list *)v;
      for (size_t i = 0; i < l->len; i++) tg_value_unref(l->items[i]);
      break;
    }
    case TG_MAP:
      tg__map_destroy((tg__map *)v);
      break;
    default:
      break;
  }
  tg__free(v);
}

void tg_value_unref(tg_value *v) {
  if (!v || tg__is_imm(v) || (v->flags & TG__F_IMMORTAL)) return;
  if (atomic_fetch_sub_explicit(&v->refs, 1, memory_order_acq_rel) != 1) return;
  tg__value_destroy(v);
}

/* ---- scalars ------------------------------------------------------------- */

tg_value *tg_int(int64_t i) {
  if (TG__LIKELY(tg__imm_fits(i))) return tg__imm_make(i);
  tg__int *o = tg__obj_new(sizeof *o, TG_INT);
  if (!o) return NULL;
  o->i = i;
  return &o->h;
}

tg_value *tg_float(double d) {
  tg__float *o = tg__obj_new(sizeof *o, TG_FLOAT);
  if (!o) return NULL;
  o->d = d;
  return &o->h;
}

tg__blob *tg__blob_new_raw(tg_type type, size_t len) {
  if (len > SIZE_MAX - sizeof(tg__blob) - 1) return NULL;
  tg__blob *b = tg__obj_new(sizeof *b + len + 1, type);
  if (!b) return NULL;
  b->len = len;
  b->data = b->buf;
  b->region = NULL;
  b->buf[len] = '\0';
  return b;
}

tg_value *tg__blob_borrow(tg_type type, const char *data, size_t len,
                          tg__region *region) {
  tg__blob *b = tg__obj_new(sizeof *b, type);
  if (!b) return NULL;
  b->len = len;
  b->data = data;
  b->region = region;
  tg__region_ref(region);
  return &b->h;
}

tg_value *tg_str(const char *s, size_t len) {
  if ((!s && len) || !tg__utf8_valid(s, len)) return NULL;
  tg__blob *b = tg__blob_new_raw(TG_STR, len);
  if (!b) return NULL;
  if (len) memcpy(b->buf, s, len);
  return &b->h;
}

tg_value *tg_str_c(const char *s) { return s ? tg_str(s, strlen(s)) : NULL; }

tg_value *tg_bytes(const void *data, size_t len) {
  if (!data && len) return NULL;
  tg__blob *b = tg__blob_new_raw(TG_BYTES, len);
  if (!b) return NULL;
  if (len) memcpy(b->buf, data, len);
  return &b->h;
}

/* ---- arrays -------------------------------------------------------------- */

static const uint8_t tg__dtype_sizes[] = {0, 1, 1, 2, 4, 8, 1, 2, 4, 8, 4, 8};
static const char *const tg__dtype_names[] = {
    NULL, "bool", "i8", "i16", "i32", "i64", "u8", "u16", "u32", "u64", "f32", "f64"};

size_t tg_dtype_size(tg_dtype dt) {
  return (dt >= TG_DT_BOOL && dt <= TG_DT_F64) ? tg__dtype_sizes[dt] : 0;
}

const char *tg_dtype_name(tg_dtype dt) {
  return (dt >= TG_DT_BOOL && dt <= TG_DT_F64) ? tg__dtype_names[dt] : NULL;
}

tg_dtype tg_dtype_from_name(const char *name) {
  if (!name) return (tg_dtype)0;
  for (int i = TG_DT_BOOL; i <= TG_DT_F64; i++)
    if (strcmp(name, tg__dtype_names[i]) == 0) return (tg_dtype)i;
  return (tg_dtype)0;
}

bool tg__shape_size(tg_dtype dtype, int ndim, const int64_t *shape,
                    size_t *size, size_t *nbytes) {
  size_t es = tg_dtype_size(dtype);
  if (!es || ndim < 0 || ndim > TG_NDIM_MAX || (ndim && !shape)) return false;
  size_t n = 1;
  for (int i = 0; i < ndim; i++) {
    if (shape[i] < 0) return false;
    if (__builtin_mul_overflow(n, (size_t)shape[i], &n)) return false;
  }
  size_t nb;
  if (__builtin_mul_overflow(n, es, &nb) || nb > SIZE_MAX / 2) return false;
  *size = n;
  *nbytes = nb;
  return true;
}

/* An array of a shape tg__shape_size checked (size, nbytes), no data. */
static tg__array *array_sized(tg_dtype dtype, int ndim, const int64_t *shape, size_t size,
                              size_t nbytes) {
  tg__array *a = tg__obj_new(sizeof *a + (size_t)ndim * sizeof(int64_t), TG_NDARRAY);
  if (!a) return NULL;
  a->dtype = (uint8_t)dtype;
  a->ndim = (uint8_t)ndim;
  a->size = size;
  a->nbytes = nbytes;
  a->data = NULL;
  a->region = NULL;
  if (ndim) memcpy(a->shape, shape, (size_t)ndim * sizeof(int64_t));
  return a;
}

static tg__array *tg__array_alloc(tg_dtype dtype, int ndim, const int64_t *shape) {
  size_t size, nbytes;
  if (!tg__shape_size(dtype, ndim, shape, &size, &nbytes)) return NULL;
  return array_sized(dtype, ndim, shape, size, nbytes);
}

_Thread_local tg__array_alloc_fn tg__array_alloc_hook;

tg_value *tg_ndarray_new(tg_dtype dtype, int ndim, const int64_t *shape) {
  tg__array *a = tg__array_alloc(dtype, ndim, shape);
  if (!a) return NULL;
  if (TG__UNLIKELY(tg__array_alloc_hook != NULL) &&
      (a->data = tg__array_alloc_hook(a->nbytes, true, &a->region)))
    return &a->h;
  a->data = tg__aligned_alloc(TG_ARRAY_ALIGN, a->nbytes);
  if (!a->data) {
    tg__free(a);
    return NULL;
  }
  memset(a->data, 0, a->nbytes);
  return &a->h;
}

tg_value *tg_ndarray_copy(tg_dtype dtype, int ndim, const int64_t *shape,
                          const void *data) {
  tg__array *a = tg__array_alloc(dtype, ndim, shape);
  if (!a) return NULL;
  if (a->nbytes && !data) {
    tg__free(a);
    return NULL;
  }
  if (TG__UNLIKELY(tg__array_alloc_hook != NULL) &&
      (a->data = tg__array_alloc_hook(a->nbytes, false, &a->region))) {
    memcpy(a->data, data, a->nbytes);
    return &a->h;
  }
  a->data = tg__aligned_alloc(TG_ARRAY_ALIGN, a->nbytes);
  if (!a->data) {
    tg__free(a);
    return NULL;
  }
  if (a->nbytes) memcpy(a->data, data, a->nbytes);
  return &a->h;
}

tg_value *tg__array_borrow(tg_dtype dtype, int ndim, const int64_t *shape,
                           void *data, tg__region *region) {
  tg__array *a = tg__array_alloc(dtype, ndim, shape);
  if (!a) return NULL;
  a->data = data;
  a->region = region;
  tg__region_ref(region);
  return &a->h;
}

tg_value *tg_ndarray_wrap(tg_dtype dtype, int ndim, const int64_t *shape,
                          void *data, tg_release_fn release, void *ctx) {
  size_t size, nbytes;
  if (!tg__shape_size(dtype, ndim, shape, &size, &nbytes) ||
      (nbytes && (!data || ((uintptr_t)data % TG_ARRAY_ALIGN) != 0))) {
    if (release) release(ctx, data);
    return NULL;
  }
  tg__region *r = tg__region_new(data, release, ctx);
  if (!r) return NULL;
  /* The shape checked once, and the region's first reference is the
   * array's: wrapping is per task for some backends' placeholders. */
  tg__array *a = array_sized(dtype, ndim, shape, size, nbytes);
  if (!a) {
    tg__region_unref(r); /* releases data */
    return NULL;
  }
  a->data = data;
  a->region = r;
  return &a->h;
}

/* ---- lists --------------------------------------------------------------- */

tg__list *tg__list_new_raw(size_t n) {
  if (n > (SIZE_MAX - sizeof(tg__list)) / sizeof(tg_value *)) return NULL;
  tg__list *l = tg__obj_new(sizeof *l + n * sizeof(tg_value *), TG_LIST);
  if (!l) return NULL;
  l->len = n;
  l->h.depth = 1;
  memset(l->items, 0, n * sizeof(tg_value *));
  return l;
}

tg_value *tg_list_take(size_t n, tg_value **items) {
  tg__list *l = NULL;
  bool ok = !n || items;
  unsigned depth = 0;
  for (size_t i = 0; ok && i < n; i++) {
    if (!items[i]) ok = false;
    else if (tg__depth(items[i]) > depth) depth = tg__depth(items[i]);
  }
  if (ok && depth + 1 <= TG_DEPTH_MAX) l = tg__list_new_raw(n);
  if (!l) {
    for (size_t i = 0; items && i < n; i++) tg_value_unref(items[i]);
    return NULL;
  }
  if (n) memcpy(l->items, items, n * sizeof(tg_value *));
  l->h.depth = (uint16_t)(depth + 1);
  return &l->h;
}

tg_value *tg_list_of(size_t n, ...) {
  tg__list *l = tg__list_new_raw(n);
  va_list ap;
  va_start(ap, n);
  bool ok = l != NULL;
  unsigned depth = 0;
  for (size_t i = 0; i < n; i++) {
    tg_value *it = va_arg(ap, tg_value *);
    if (!it) ok = false;
    else if (tg__depth(it) > depth) depth = tg__depth(it);
    if (l) l->items[i] = it;
    else tg_value_unref(it);
  }
  va_end(ap);
  if (ok && depth + 1 > TG_DEPTH_MAX) ok = false;
  if (!ok) {
    tg_value_unref(l ? &l->h : NULL);
    return NULL;
  }
  l->h.depth = (uint16_t)(depth + 1);
  return &l->h;
}

tg_value *tg_list_alloc(size_t n) {
  tg__list *l = tg__list_new_raw(n);
  if (!l) return NULL;
  for (size_t i = 0; i < n; i++) l->items[i] = tg_null();
  return &l->h;
}

int tg_list_init_item(tg_value *list, size_t i, tg_value *item) {
  if (!list || tg__is_imm(list) || list->type != TG_LIST || !item ||
      item == list || i >= ((tg__list *)list)->len) {
    tg_value_unref(item);
    return TG_EINVAL;
  }
  if (tg__depth(item) + 1 > TG_DEPTH_MAX) {
    tg_value_unref(item);
    return TG_EDEPTH;
  }
  tg__list *l = (tg__list *)list;
  tg_value_unref(l->items[i]);
  l->items[i] = item;
  if (tg__depth(item) + 1 > l->h.depth) l->h.depth = (uint16_t)(tg__depth(item) + 1);
  return TG_OK;
}

/* ---- reading ------------------------------------------------------------- */

tg_type tg_value_type(const tg_value *v) {
  assert(v != NULL);
  if (tg__is_imm(v)) return TG_INT;
  return (tg_type)v->type;
}

const char *tg_type_name(tg_type t) {
  static const char *const names[] = {"null", "bool", "int",  "float", "str",
                                      "bytes", "ndarray", "list", "map"};
  return ((unsigned)t < sizeof names / sizeof *names) ? names[t] : "invalid";
}

static inline bool tg__is(const tg_value *v, tg_type t) {
  return v && !tg__is_imm(v) && v->type == t;
}

bool tg_value_bool(const tg_value *v) { return v == &tg__true_obj; }

int64_t tg_value_int(const tg_value *v) {
  if (v && tg__is_imm(v)) return tg__imm_get(v);
  return tg__is(v, TG_INT) ? ((const tg__int *)v)->i : 0;
}

double tg_value_float(const tg_value *v) {
  return tg__is(v, TG_FLOAT) ? ((const tg__float *)v)->d : 0.0;
}

const char *tg_str_data(const tg_value *v, size_t *len) {
  if (!tg__is(v, TG_STR)) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = ((const tg__blob *)v)->len;
  return ((const tg__blob *)v)->data;
}

const void *tg_bytes_data(const tg_value *v, size_t *len) {
  if (!tg__is(v, TG_BYTES)) {
    if (len) *len = 0;
    return NULL;
  }
  if (len) *len = ((const tg__blob *)v)->len;
  return ((const tg__blob *)v)->data;
}

#define TG__ARR(v) ((const tg__array *)(v))
tg_dtype tg_ndarray_dtype(const tg_value *v) {
  return tg__is(v, TG_NDARRAY) ? (tg_dtype)TG__ARR(v)->dtype : (tg_dtype)0;
}
int tg_ndarray_ndim(const tg_value *v) {
  return tg__is(v, TG_NDARRAY) ? TG__ARR(v)->ndim : 0;
}
const int64_t *tg_ndarray_shape(const tg_value *v) {
  return tg__is(v, TG_NDARRAY) ? TG__ARR(v)->shape : NULL;
}
size_t tg_ndarray_size(const tg_value *v) {
  return tg__is(v, TG_NDARRAY) ? TG__ARR(v)->size : 0;
}
size_t tg_ndarray_nbytes(const tg_value *v) {
  return tg__is(v, TG_NDARRAY) ? TG__ARR(v)->nbytes : 0;
}
const void *tg_ndarray_data(const tg_value *v) {
  return tg__is(v, TG_NDARRAY) ? TG__ARR(v)->data : NULL;
}
void *tg_ndarray_data_mut(tg_value *v) {
  return tg__is(v, TG_NDARRAY) ? ((tg__array *)v)->data : NULL;
}

size_t tg_list_len(const tg_value *v) {
  return tg__is(v, TG_LIST) ? ((const tg__list *)v)->len : 0;
}
tg_value *tg_list_get(const tg_value *v, size_t i) {
  if (!tg__is(v, TG_LIST) || i >= ((const tg__list *)v)->len) return NULL;
  return ((const tg__list *)v)->items[i];
}
tg_value *const *tg_list_items(const tg_value *v) {
  return tg__is(v, TG_LIST) ? ((const tg__list *)v)->items : NULL;
}

bool tg_digest_equal(tg_digest a, tg_digest b) {
  return a.lo == b.lo && a.hi == b.hi;
}

void tg_digest_hex(tg_digest d, char out[33]) {
  static const char hex[] = "0123456789abcdef";
  for (int i = 0; i < 16; i++) {
    out[i] = hex[(d.hi >> (60 - 4 * i)) & 0xF];
    out[16 + i] = hex[(d.lo >> (60 - 4 * i)) & 0xF];
  }
  out[32] = '\0';
}
