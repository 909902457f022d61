/* lib/value/json_read.c: tg_value_from_json. jansson parses the text (and
 * reports syntax errors with line and column); this file turns its tree
 * into values, including the "$" forms described in value.h. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "value_internal.h"

#define JSON_FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)

/* Where we are in the JSON tree, for error messages: a chain of frames on
 * the C stack, rendered as a JSON Pointer (RFC 6901) only on failure. */
typedef struct jpath {
  const struct jpath *up;
  const char *key; /* NULL: an array index */
  size_t keylen;
  size_t index;
} jpath;

static void render_path(const jpath *at, char *buf, size_t cap, size_t *n) {
  if (!at) return;
  render_path(at->up, buf, cap, n);
  char tmp[32];
  const char *s = tmp;
  size_t len;
  if (at->key) {
    s = at->key;
    len = at->keylen;
  } else {
    len = (size_t)snprintf(tmp, sizeof tmp, "%zu", at->index);
  }
  if (*n + 1 < cap) buf[(*n)++] = '/';
  for (size_t i = 0; i < len && *n + 2 < cap; i++) {
    unsigned char c = (unsigned char)s[i];
    if (c == '~' || c == '/') { /* RFC 6901 escapes */
      buf[(*n)++] = '~';
      buf[(*n)++] = c == '~' ? '0' : '1';
    } else {
      buf[(*n)++] = c < 0x20 ? '?' : (char)c; /* keep the message printable */
    }
  }
}

/* Fill err with the message and, below the top level, where it happened. */
static int fail(tg_error *err, int code, const jpath *at, const char *fmt, ...)
    TG__PRINTF(4, 5);
static int fail(tg_error *err, int code, const jpath *at, const char *fmt, ...) {
  if (!err) return code;
  char msg[192], where[112];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (!at) return tg__error_set(err, code, "%s", msg);
  size_t n = 0;
  render_path(at, where, sizeof where - 4, &n);
  if (n >= sizeof where - 6) memcpy(where + n, "...", 3), n += 3;
  where[n] = '\0';
  return tg__error_set(err, code, "%s (at %s)", msg, where);
}

static int convert(const json_t *j, unsigned level, const jpath *at, tg_value **out,
                   tg_error *err);

/* True when j is exactly the string lit (JSON strings may hold NUL). */
static bool str_is(const json_t *j, const char *lit) {
  return json_is_string(j) && json_string_length(j) == strlen(lit) &&
         memcmp(json_string_value(j), lit, strlen(lit)) == 0;
}

/* ---- base64 ---------------------------------------------------------------- */

static int b64_digit(unsigned char c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

/* Decoded size of padded base64 text, or false when the length or the
 * padding is wrong. */
static bool b64_size(const char *s, size_t n, size_t *size) {
  if (n % 4) return false;
  size_t pad = 0;
  if (n && s[n - 1] == '=') pad = (n >= 2 && s[n - 2] == '=') ? 2 : 1;
  *size = n / 4 * 3 - pad;
  return true;
}

/* Decode RFC 4648 base64 (padded) into out (b64_size bytes). */
static bool b64_decode(const char *s, size_t n, unsigned char *out) {
  size_t size, o = 0;
  if (!b64_size(s, n, &size)) return false;
  for (size_t i = 0; i < n; i += 4) {
    uint32_t w = 0;
    int valid = 0;
    for (int k = 0; k < 4; k++) {
      int d = b64_digit((unsigned char)s[i + k]);
      if (d < 0 && !(s[i + k] == '=' && i + 4 == n && k >= 2)) return false;
      if (d >= 0) {
        if (valid != k) return false; /* a digit after '=' */
        valid++;
      }
      w = w << 6 | (uint32_t)(d < 0 ? 0 : d);
    }
    unsigned char bytes[3] = {(unsigned char)(w >> 16), (unsigned char)(w >> 8),
                              (unsigned char)w};
    for (int k = 0; k < valid - 1; k++) out[o++] = bytes[k];
  }
  return o == size;
}

/* ---- "$ndarray" ------------------------------------------------------------ */

/* (float)d is only defined below the rounding boundary past FLT_MAX. */
static bool to_f32(double d, float *f) {
  if (!(d > -0x1.ffffffp127 && d < 0x1.ffffffp127)) return false;
  *f = (float)d;
  return true;
}

/* Store JSON number j as element i (of size es) of an array of dtype dt. */
static bool put_number(tg_dtype dt, const json_t *j, unsigned char *e) {
  if (dt == TG_DT_BOOL) {
    if (!json_is_boolean(j)) return false;
    *e = json_is_true(j) ? 1 : 0;
    return true;
  }
  if (dt == TG_DT_F64 || dt == TG_DT_F32) {
    if (!json_is_number(j)) return false;
    double d = json_number_value(j);
    if (dt == TG_DT_F64) {
      memcpy(e, &d, 8);
      return true;
    }
    float f;
    if (!to_f32(d, &f)) return false;
    memcpy(e, &f, 4);
    return true;
  }
  if (!json_is_integer(j)) return false;
  int64_t x = json_integer_value(j);
  static const int64_t lo[TG_DT_F64 + 1] = {[TG_DT_I8] = INT8_MIN, [TG_DT_I16] = INT16_MIN,
                               [TG_DT_I32] = INT32_MIN, [TG_DT_I64] = INT64_MIN};
  static const int64_t hi[TG_DT_F64 + 1] = {[TG_DT_I8] = INT8_MAX,   [TG_DT_I16] = INT16_MAX,
                               [TG_DT_I32] = INT32_MAX, [TG_DT_I64] = INT64_MAX,
                               [TG_DT_U8] = UINT8_MAX,  [TG_DT_U16] = UINT16_MAX,
                               [TG_DT_U32] = UINT32_MAX, [TG_DT_U64] = INT64_MAX};
  if (x < lo[dt] || x > hi[dt]) return false;
  memcpy(e, &x, tg_dtype_size(dt)); /* little-endian: the low bytes */
  return true;
}

static int array_from_list(const json_t *data, tg_value *a, const jpath *at,
                           tg_error *err) {
  tg_dtype dt = tg_ndarray_dtype(a);
  size_t n = tg_ndarray_size(a), es = tg_dtype_size(dt);
  unsigned char *p = tg_ndarray_data_mut(a);
  for (size_t i = 0; i < n; i++) {
    if (!put_number(dt, json_array_get(data, i), p + i * es))
      return fail(err, TG_EJSON, at, "\"$ndarray\" data[%zu] is not a %s%s", i,
                  dt == TG_DT_BOOL ? "boolean" : "number in the range of ",
                  dt == TG_DT_BOOL ? "" : tg_dtype_name(dt));
  }
  return TG_OK;
}

static int array_from_base64(const json_t *data, tg_value *a, const jpath *at,
                             tg_error *err) {
  const char *s = json_string_value(data);
  size_t n = json_string_length(data), size;
  unsigned char *p = tg_ndarray_data_mut(a);
  if (!b64_size(s, n, &size) || size != tg_ndarray_nbytes(a) || !b64_decode(s, n, p))
    return fail(err, TG_EJSON, at,
                "\"$ndarray\" data is not base64 of exactly %zu bytes", tg_ndarray_nbytes(a));
  if (tg_ndarray_dtype(a) == TG_DT_BOOL)
    for (size_t i = 0; i < size; i++)
      if (p[i] > 1) return fail(err, TG_EJSON, at, "\"$ndarray\" bool data[%zu] is not 0 or 1", i);
  return TG_OK;
}

/* dtype and shape of an "$ndarray" spec, checked. */
static int array_header(const json_t *spec, const jpath *at, tg_dtype *dt, int *ndim,
                        int64_t *shape, tg_error *err) {
  const char *key;
  size_t keylen;
  json_t *v;
  json_object_keylen_foreach((json_t *)spec, key, keylen, v) {
    if (strcmp(key, "dtype") && strcmp(key, "shape") && strcmp(key, "data"))
      return fail(err, TG_EJSON, at, "\"$ndarray\" has an unknown key \"%.*s\"", (int)keylen, key);
  }
  const json_t *jdt = json_object_get(spec, "dtype"), *jsh = json_object_get(spec, "shape");
  if (!jdt || !jsh || !json_object_get(spec, "data"))
    return fail(err, TG_EJSON, at, "\"$ndarray\" needs \"dtype\", \"shape\" and \"data\"");
  /* The length check keeps "f64\u0000x" from passing as "f64". */
  *dt = json_is_string(jdt) && strlen(json_string_value(jdt)) == json_string_length(jdt)
            ? tg_dtype_from_name(json_string_value(jdt))
            : (tg_dtype)0;
  if (!*dt) return fail(err, TG_EJSON, at, "\"$ndarray\" dtype is not a known dtype name");
  if (!json_is_array(jsh) || json_array_size(jsh) > TG_NDIM_MAX)
    return fail(err, TG_EJSON, at, "\"$ndarray\" shape is not a list of at most %d sizes",
                TG_NDIM_MAX);
  *ndim = (int)json_array_size(jsh);
  for (int i = 0; i < *ndim; i++) {
    const json_t *d = json_array_get(jsh, (size_t)i);
    if (!json_is_integer(d) || json_integer_value(d) < 0)
      return fail(err, TG_EJSON, at, "\"$ndarray\" shape[%d] is not a size (an integer >= 0)", i);
    shape[i] = json_integer_value(d);
  }
  size_t size, nbytes;
  if (!tg__shape_size(*dt, *ndim, shape, &size, &nbytes))
    return fail(err, TG_EJSON, at, "\"$ndarray\" shape is too large");
  return TG_OK;
}

static int convert_ndarray(const json_t *spec, const jpath *at, tg_value **out, tg_error *err) {
  if (!json_is_object(spec))
    return fail(err, TG_EJSON, at, "\"$ndarray\" is not an object");
  tg_dtype dt = (tg_dtype)0;
  int ndim = 0;
  int64_t shape[TG_NDIM_MAX];
  int rc = array_header(spec, at, &dt, &ndim, shape, err);
  if (rc) return rc;
  const json_t *data = json_object_get(spec, "data");
  if (!json_is_array(data) && !json_is_string(data))
    return fail(err, TG_EJSON, at, "\"$ndarray\" data is neither a list nor a base64 string");
  /* Check the data's size before allocating, so that a small input
   * cannot ask for a huge array. */
  size_t size = 0, nbytes = 0, b64 = 0;
  tg__shape_size(dt, ndim, shape, &size, &nbytes);
  if (json_is_array(data) && json_array_size(data) != size)
    return fail(err, TG_EJSON, at, "\"$ndarray\" data has %zu elements, its shape needs %zu",
                json_array_size(data), size);
  if (json_is_string(data) &&
      (!b64_size(json_string_value(data), json_string_length(data), &b64) || b64 != nbytes))
    return fail(err, TG_EJSON, at, "\"$ndarray\" data is not base64 of exactly %zu bytes",
                nbytes);
  tg_value *a = tg_ndarray_new(dt, ndim, shape);
  if (!a) return fail(err, TG_ENOMEM, at, "out of memory for an array of %zu bytes", nbytes);
  rc = json_is_array(data) ? array_from_list(data, a, at, err)
                           : array_from_base64(data, a, at, err);
  if (rc) {
    tg_value_unref(a);
    return rc;
  }
  *out = a;
  return TG_OK;
}

/* ---- containers ------------------------------------------------------------- */

static int depth_error(tg_error *err, const jpath *at) {
  return fail(err, TG_EDEPTH, at, "lists and maps nest deeper than %d levels", TG_DEPTH_MAX);
}

static int convert_list(const json_t *j, unsigned level, const jpath *at, tg_value **out,
                        tg_error *err) {
  if (level >= TG_DEPTH_MAX) return depth_error(err, at);
  size_t n = json_array_size(j);
  tg__list *l = tg__list_new_raw(n);
  if (!l) return fail(err, TG_ENOMEM, at, "out of memory for a list of %zu items", n);
  unsigned depth = 0;
  for (size_t i = 0; i < n; i++) {
    jpath here = {.up = at, .index = i};
    int rc = convert(json_array_get(j, i), level + 1, &here, &l->items[i], err);
    if (rc) {
      tg_value_unref(&l->h);
      return rc;
    }
    if (tg__depth(l->items[i]) > depth) depth = tg__depth(l->items[i]);
  }
  l->h.depth = (uint16_t)(depth + 1);
  *out = &l->h;
  return TG_OK;
}

/* A JSON object as a map, keys taken literally (no "$" forms at this
 * level; values are converted as usual). */
static int convert_object(const json_t *j, unsigned level, const jpath *at, tg_value **out,
                          tg_error *err) {
  if (level >= TG_DEPTH_MAX) return depth_error(err, at);
  tg_value *m = tg_map_new(json_object_size(j));
  if (!m) return fail(err, TG_ENOMEM, at, "out of memory for a map");
  const char *key;
  size_t keylen;
  json_t *v;
  /* jansson iterates objects in insertion order, which is what we keep. */
  json_object_keylen_foreach((json_t *)j, key, keylen, v) {
    jpath here = {.up = at, .key = key, .keylen = keylen};
    tg_value *val;
    int rc = convert(v, level + 1, &here, &val, err);
    if (!rc && (rc = tg_map_put(m, key, keylen, val)) != TG_OK)
      fail(err, rc, &here, "cannot add the key to the map: %s", tg_strerror(rc));
    if (rc) {
      tg_value_unref(m);
      return rc;
    }
  }
  *out = m;
  return TG_OK;
}

/* {"$map": [[key, value], ...]}: the form for maps with NUL in a key. */
static int convert_pairs(const json_t *j, unsigned level, const jpath *at, tg_value **out,
                         tg_error *err) {
  if (level >= TG_DEPTH_MAX) return depth_error(err, at);
  tg_value *m = tg_map_new(json_array_size(j));
  if (!m) return fail(err, TG_ENOMEM, at, "out of memory for a map");
  for (size_t i = 0; i < json_array_size(j); i++) {
    jpath here = {.up = at, .index = i};
    const json_t *pair = json_array_get(j, i), *k = json_array_get(pair, 0);
    int rc = TG_OK;
    if (!json_is_array(pair) || json_array_size(pair) != 2 || !json_is_string(k))
      rc = fail(err, TG_EJSON, &here, "\"$map\" entry is not a [key, value] pair");
    else if (tg_map_get(m, json_string_value(k), json_string_length(k)))
      rc = fail(err, TG_EJSON, &here, "\"$map\" key is repeated");
    tg_value *val;
    if (!rc) {
      jpath vpath = {.up = &here, .index = 1};
      rc = convert(json_array_get(pair, 1), level + 1, &vpath, &val, err);
    }
    if (!rc && (rc = tg_map_put(m, json_string_value(k), json_string_length(k), val)) != TG_OK)
      fail(err, rc, &here, "cannot add the key to the map: %s", tg_strerror(rc));
    if (rc) {
      tg_value_unref(m);
      return rc;
    }
  }
  *out = m;
  return TG_OK;
}

/* An object with a single key starting with '$'. */
static int convert_special(const json_t *j, unsigned level, const jpath *at, tg_value **out,
                           tg_error *err) {
  void *it = json_object_iter((json_t *)j);
  const char *key = json_object_iter_key(it);
  size_t keylen = json_object_iter_key_len(it);
  const json_t *v = json_object_iter_value(it);
  jpath here = {.up = at, .key = key, .keylen = keylen};
  if (strcmp(key, "$float") == 0) {
    double d;
    if (str_is(v, "nan")) d = NAN;
    else if (str_is(v, "inf")) d = INFINITY;
    else if (str_is(v, "-inf")) d = -INFINITY;
    else return fail(err, TG_EJSON, &here, "\"$float\" is not \"nan\", \"inf\" or \"-inf\"");
    return (*out = tg_float(d)) ? TG_OK : fail(err, TG_ENOMEM, at, "out of memory");
  }
  if (strcmp(key, "$bytes") == 0) {
    size_t n = json_string_length(v), size;
    if (!json_is_string(v) || !b64_size(json_string_value(v), n, &size))
      return fail(err, TG_EJSON, &here, "\"$bytes\" is not a base64 string");
    tg__blob *b = tg__blob_new_raw(TG_BYTES, size);
    if (!b) return fail(err, TG_ENOMEM, at, "out of memory for %zu bytes", size);
    if (!b64_decode(json_string_value(v), n, (unsigned char *)b->buf)) {
      tg_value_unref(&b->h);
      return fail(err, TG_EJSON, &here, "\"$bytes\" is not a base64 string");
    }
    *out = &b->h;
    return TG_OK;
  }
  if (strcmp(key, "$ndarray") == 0) return convert_ndarray(v, &here, out, err);
  if (strcmp(key, "$map") == 0) {
    if (json_is_object(v)) return convert_object(v, level, &here, out, err);
    if (json_is_array(v)) return convert_pairs(v, level, &here, out, err);
    return fail(err, TG_EJSON, &here, "\"$map\" is neither an object nor a list of pairs");
  }
  return fail(err, TG_EJSON, at,
              "unknown form \"%.*s\" (write a map with one \"$\" key as {\"$map\": {...}})",
              (int)(keylen > 40 ? 40 : keylen), key);
}

static int convert(const json_t *j, unsigned level, const jpath *at, tg_value **out,
                   tg_error *err) {
  *out = NULL;
  switch (json_typeof(j)) {
    case JSON_NULL: *out = tg_null(); return TG_OK;
    case JSON_TRUE: *out = tg_bool(true); return TG_OK;
    case JSON_FALSE: *out = tg_bool(false); return TG_OK;
    case JSON_INTEGER: *out = tg_int(json_integer_value(j)); break;
    case JSON_REAL: *out = tg_float(json_real_value(j)); break;
    case JSON_STRING: /* jansson has checked the UTF-8 */
      *out = tg_str(json_string_value(j), json_string_length(j));
      break;
    case JSON_ARRAY: return convert_list(j, level, at, out, err);
    case JSON_OBJECT: {
      void *it = json_object_iter((json_t *)j);
      if (json_object_size(j) == 1 && json_object_iter_key(it)[0] == '$')
        return convert_special(j, level, at, out, err);
      return convert_object(j, level, at, out, err);
    }
  }
  return *out ? TG_OK : fail(err, TG_ENOMEM, at, "out of memory");
}

int tg_value_from_json(const char *text, size_t len, tg_value **out, tg_error *err) {
  if (out) *out = NULL;
  if (!out || (!text && len))
    return tg__error_set(err, TG_EINVAL, "tg_value_from_json: %s",
                         !out ? "out is NULL" : "text is NULL");
  json_error_t je;
  json_t *j = json_loadb(text ? text : "", len, JSON_FLAGS, &je);
  if (!j) {
    enum json_error_code jc = json_error_code(&je);
    int code = jc == json_error_stack_overflow ? TG_EDEPTH
               : jc == json_error_out_of_memory ? TG_ENOMEM
                                                : TG_EJSON;
    tg__error_set(err, code, "line %d, column %d: %s", je.line, je.column, je.text);
    if (err) {
      err->offset = je.position < 0 ? 0 : (size_t)je.position;
      err->has_offset = 1;
    }
    return code;
  }
  int rc = convert(j, 0, NULL, out, err);
  json_decref(j);
  return rc;
}
