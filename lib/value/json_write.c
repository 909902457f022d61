/* lib/value/json_write.c: tg_value_to_json, a hand-written JSON writer into
 * one growing buffer (see the mapping in value.h).
 *
 * Pretty output puts every list item and map entry on its own line,
 * indented by two spaces; scalars, including the {"$float": ...} and
 * {"$bytes": ...} forms, stay on one line, and so do the number lists
 * "shape" and "data" of an "$ndarray". */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "value_internal.h"

/* The output is documented as released with free(), so it is allocated
 * with malloc/realloc rather than the tg__ allocators. */
typedef struct jbuf {
  char *p;
  size_t len, cap;
  bool oom;
  bool pretty;
} jbuf;

static bool grow(jbuf *b, size_t need) {
  if (b->oom) return false;
  size_t cap = b->cap ? b->cap : 256;
  while (cap - b->len < need) {
    if (cap > SIZE_MAX / 2) {
      b->oom = true;
      return false;
    }
    cap *= 2;
  }
  char *p = realloc(b->p, cap);
  if (!p) {
    b->oom = true;
    return false;
  }
  b->p = p;
  b->cap = cap;
  return true;
}

/* Room for `need` more bytes; false (and b->oom) when memory runs out. */
static inline bool reserve(jbuf *b, size_t need) {
  return TG__LIKELY(b->cap - b->len >= need) || grow(b, need);
}

static void put(jbuf *b, const char *s, size_t n) {
  if (!n || !reserve(b, n)) return;
  memcpy(b->p + b->len, s, n);
  b->len += n;
}

static inline void putc_(jbuf *b, char c) {
  if (!reserve(b, 1)) return;
  b->p[b->len++] = c;
}

#define PUT_LIT(b, s) put((b), (s), sizeof(s) - 1)

static void newline(jbuf *b, unsigned indent) {
  if (!b->pretty || !reserve(b, 1 + 2 * (size_t)indent)) return;
  b->p[b->len++] = '\n';
  memset(b->p + b->len, ' ', 2 * (size_t)indent);
  b->len += 2 * (size_t)indent;
}

/* ---- numbers ------------------------------------------------------------- */

static void put_u64(jbuf *b, uint64_t u, bool neg) {
  if (!reserve(b, 24)) return;
  if (u < 10 && !neg) { /* the most common case in index-like data */
    b->p[b->len++] = (char)('0' + u);
    return;
  }
  static const char pairs[201] =
      "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
      "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
      "8081828384858687888990919293949596979899";
  char tmp[24];
  size_t n = sizeof tmp;
  while (u >= 100) { /* two digits per division */
    unsigned r = (unsigned)(u % 100);
    u /= 100;
    tmp[--n] = pairs[2 * r + 1];
    tmp[--n] = pairs[2 * r];
  }
  if (u >= 10) {
    tmp[--n] = pairs[2 * u + 1];
    tmp[--n] = pairs[2 * u];
  } else {
    tmp[--n] = (char)('0' + u);
  }
  if (neg) tmp[--n] = '-';
  memcpy(b->p + b->len, tmp + n, sizeof tmp - n);
  b->len += sizeof tmp - n;
}

static void put_i64(jbuf *b, int64_t i) {
  /* Negate in unsigned arithmetic so INT64_MIN works. */
  put_u64(b, i < 0 ? 0 - (uint64_t)i : (uint64_t)i, i < 0);
}

/* Copy printf's %g text with the locale's decimal point (whatever its
 * bytes) turned into '.', and ".0" added when the text would read back
 * as an integer. */
static void put_g_text(jbuf *b, const char *s) {
  char out[40];
  size_t n = 0;
  bool is_real = false;
  while (*s && n < sizeof out - 3) {
    char c = *s;
    if ((c >= '0' && c <= '9') || c == '-' || c == '+') {
      out[n++] = c;
      s++;
    } else if (c == 'e' || c == 'E') {
      out[n++] = 'e';
      is_real = true;
      s++;
    } else { /* the decimal point, possibly several bytes */
      out[n++] = '.';
      is_real = true;
      while (*s && !(*s >= '0' && *s <= '9') && *s != 'e' && *s != 'E') s++;
    }
  }
  if (!is_real) {
    out[n++] = '.';
    out[n++] = '0';
  }
  put(b, out, n);
}

static bool same_bits64(double x, double y) { return memcmp(&x, &y, 8) == 0; }
static bool same_bits32(float x, float y) { return memcmp(&x, &y, 4) == 0; }

/* A finite double as the shortest of %.15g/%.16g/%.17g that reads back to
 * the same bits (%.17g always does). */
static void put_double(jbuf *b, double d) {
  char s[40];
  for (int prec = 15; prec <= 17; prec++) {
    snprintf(s, sizeof s, "%.*g", prec, d);
    if (prec == 17 || same_bits64(strtod(s, NULL), d)) break;
  }
  put_g_text(b, s);
}

/* A finite f32 element. A reader parses the text to a double and rounds
 * that to float, so the check takes the same two steps; the exact double
 * of the float is the fallback that always works. */
static void put_float32(jbuf *b, float f) {
  char s[40];
  for (int prec = 6; prec <= 9; prec++) {
    snprintf(s, sizeof s, "%.*g", prec, (double)f);
    double d = strtod(s, NULL);
    /* (float)d is defined only below the rounding boundary past FLT_MAX. */
    if (fabs(d) < 0x1.ffffffp127 && same_bits32((float)d, f)) {
      put_g_text(b, s);
      return;
    }
  }
  put_double(b, (double)f);
}

/* ---- strings -------------------------------------------------------------- */

/* 0: copy as is; otherwise the escape letter, or 'u' for \u00XX. */
static const char esc_table[256] = {
    ['\0'] = 'u', [1] = 'u', [2] = 'u', [3] = 'u', [4] = 'u', [5] = 'u',
    [6] = 'u', [7] = 'u', ['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n',
    [11] = 'u', ['\f'] = 'f', ['\r'] = 'r', [14] = 'u', [15] = 'u',
    [16] = 'u', [17] = 'u', [18] = 'u', [19] = 'u', [20] = 'u', [21] = 'u',
    [22] = 'u', [23] = 'u', [24] = 'u', [25] = 'u', [26] = 'u', [27] = 'u',
    [28] = 'u', [29] = 'u', [30] = 'u', [31] = 'u', ['"'] = '"',
    ['\\'] = '\\',
};

/* s is valid UTF-8 (strings and keys are checked when built). */
static void put_string(jbuf *b, const char *s, size_t len) {
  static const char hex[] = "0123456789abcdef";
  putc_(b, '"');
  size_t run = 0; /* start of the pending unescaped run */
  for (size_t i = 0; i < len; i++) {
    char e = esc_table[(unsigned char)s[i]];
    if (TG__LIKELY(!e)) continue;
    put(b, s + run, i - run);
    run = i + 1;
    if (e == 'u') {
      char u[6] = {'\\', 'u', '0', '0', hex[(unsigned char)s[i] >> 4],
                   hex[(unsigned char)s[i] & 15]};
      put(b, u, 6);
    } else {
      char two[2] = {'\\', e};
      put(b, two, 2);
    }
  }
  put(b, s + run, len - run);
  putc_(b, '"');
}

static void put_base64(jbuf *b, const unsigned char *d, size_t n) {
  static const char al[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  if (!reserve(b, (n + 2) / 3 * 4 + 2)) return;
  char *o = b->p + b->len;
  *o++ = '"';
  size_t i = 0;
  for (; i + 3 <= n; i += 3) {
    uint32_t w = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
    *o++ = al[w >> 18];
    *o++ = al[(w >> 12) & 63];
    *o++ = al[(w >> 6) & 63];
    *o++ = al[w & 63];
  }
  if (i < n) {
    uint32_t w = (uint32_t)d[i] << 16 | (i + 1 < n ? (uint32_t)d[i + 1] << 8 : 0);
    *o++ = al[w >> 18];
    *o++ = al[(w >> 12) & 63];
    *o++ = i + 1 < n ? al[(w >> 6) & 63] : '=';
    *o++ = '=';
  }
  *o++ = '"';
  b->len = (size_t)(o - b->p);
}

/* ---- arrays ---------------------------------------------------------------- */

/* True when every element can be written as a JSON number that reads back
 * to the same bytes: floats must be finite (NaN payloads and infinities
 * need the raw bytes), u64 must fit an int64 (the reader's integers). */
static bool array_numbers_ok(const tg__array *a) {
  const unsigned char *p = a->data;
  if (a->dtype == TG_DT_F64 || a->dtype == TG_DT_F32 || a->dtype == TG_DT_U64) {
    for (size_t i = 0; i < a->size; i++) {
      if (a->dtype == TG_DT_F64) {
        double d;
        memcpy(&d, p + 8 * i, 8);
        if (!isfinite(d)) return false;
      } else if (a->dtype == TG_DT_F32) {
        float f;
        memcpy(&f, p + 4 * i, 4);
        if (!isfinite(f)) return false;
      } else {
        uint64_t u;
        memcpy(&u, p + 8 * i, 8);
        if (u > (uint64_t)INT64_MAX) return false;
      }
    }
  }
  return true;
}

static void put_element(jbuf *b, tg_dtype dt, const unsigned char *e) {
  switch (dt) {
    case TG_DT_BOOL: if (*e) PUT_LIT(b, "true"); else PUT_LIT(b, "false"); break;
    case TG_DT_I8: put_i64(b, (int8_t)*e); break;
    case TG_DT_U8: put_i64(b, *e); break;
#define ELEM(type, fn) { type x; memcpy(&x, e, sizeof x); fn; break; }
    case TG_DT_I16: ELEM(int16_t, put_i64(b, x))
    case TG_DT_I32: ELEM(int32_t, put_i64(b, x))
    case TG_DT_I64: ELEM(int64_t, put_i64(b, x))
    case TG_DT_U16: ELEM(uint16_t, put_i64(b, x))
    case TG_DT_U32: ELEM(uint32_t, put_i64(b, x))
    case TG_DT_U64: ELEM(uint64_t, put_u64(b, x, false))
    case TG_DT_F32: ELEM(float, put_float32(b, x))
    case TG_DT_F64: ELEM(double, put_double(b, x))
#undef ELEM
  }
}

static void put_array(jbuf *b, const tg__array *a, unsigned indent) {
  const char *sep = b->pretty ? ", " : ",";
  size_t seplen = b->pretty ? 2 : 1;
  putc_(b, '{');
  newline(b, indent + 1);
  PUT_LIT(b, "\"$ndarray\":");
  if (b->pretty) putc_(b, ' ');
  putc_(b, '{');
  newline(b, indent + 2);
  PUT_LIT(b, "\"dtype\":");
  if (b->pretty) putc_(b, ' ');
  putc_(b, '"');
  put(b, tg_dtype_name((tg_dtype)a->dtype), strlen(tg_dtype_name((tg_dtype)a->dtype)));
  putc_(b, '"');
  putc_(b, ',');
  newline(b, indent + 2);
  PUT_LIT(b, "\"shape\":");
  if (b->pretty) putc_(b, ' ');
  putc_(b, '[');
  for (int i = 0; i < a->ndim; i++) {
    if (i) put(b, sep, seplen);
    put_i64(b, a->shape[i]);
  }
  putc_(b, ']');
  putc_(b, ',');
  newline(b, indent + 2);
  PUT_LIT(b, "\"data\":");
  if (b->pretty) putc_(b, ' ');
  if (array_numbers_ok(a)) {
    size_t es = tg_dtype_size((tg_dtype)a->dtype);
    putc_(b, '[');
    for (size_t i = 0; i < a->size && !b->oom; i++) {
      if (i) put(b, sep, seplen);
      put_element(b, (tg_dtype)a->dtype, (const unsigned char *)a->data + i * es);
    }
    putc_(b, ']');
  } else {
    put_base64(b, a->data, a->nbytes);
  }
  newline(b, indent + 1);
  putc_(b, '}');
  newline(b, indent);
  putc_(b, '}');
}

/* ---- values ----------------------------------------------------------------- */

static void put_value(jbuf *b, const tg_value *v, unsigned indent);

static void put_float(jbuf *b, double d) {
  if (isfinite(d)) {
    put_double(b, d);
  } else {
    const char *s = isnan(d) ? "nan" : d > 0 ? "inf" : "-inf";
    PUT_LIT(b, "{\"$float\":");
    if (b->pretty) putc_(b, ' ');
    putc_(b, '"');
    put(b, s, strlen(s));
    PUT_LIT(b, "\"}");
  }
}

static void put_bytes(jbuf *b, const tg__blob *x) {
  PUT_LIT(b, "{\"$bytes\":");
  if (b->pretty) putc_(b, ' ');
  put_base64(b, (const unsigned char *)x->data, x->len);
  putc_(b, '}');
}

static void put_list(jbuf *b, const tg__list *l, unsigned indent) {
  putc_(b, '[');
  for (size_t i = 0; i < l->len && !b->oom; i++) {
    if (i) putc_(b, ',');
    newline(b, indent + 1);
    put_value(b, l->items[i], indent + 1);
  }
  if (l->len) newline(b, indent);
  putc_(b, ']');
}

static bool map_has_nul_key(const tg__map *m) {
  for (size_t i = 0; i < m->len; i++)
    if (memchr(m->keys + m->entries[i].key_off, '\0', m->entries[i].key_len)) return true;
  return false;
}

/* A JSON object cannot carry a NUL in a key for every reader, so such a
 * map becomes {"$map": [[key, value], ...]}. */
static void put_map_pairs(jbuf *b, const tg__map *m, unsigned indent) {
  for (size_t i = 0; i < m->len && !b->oom; i++) {
    const tg__map_entry *e = &m->entries[i];
    if (i) putc_(b, ',');
    newline(b, indent + 2);
    putc_(b, '[');
    newline(b, indent + 3);
    put_string(b, m->keys + e->key_off, e->key_len);
    putc_(b, ',');
    newline(b, indent + 3);
    put_value(b, e->val, indent + 3);
    newline(b, indent + 2);
    putc_(b, ']');
  }
}

static void put_map_entries(jbuf *b, const tg__map *m, unsigned indent) {
  for (size_t i = 0; i < m->len && !b->oom; i++) {
    const tg__map_entry *e = &m->entries[i];
    if (i) putc_(b, ',');
    newline(b, indent + 1);
    put_string(b, m->keys + e->key_off, e->key_len);
    putc_(b, ':');
    if (b->pretty) putc_(b, ' ');
    put_value(b, e->val, indent + 1);
  }
}

static void put_map(jbuf *b, const tg__map *m, unsigned indent) {
  bool pairs = map_has_nul_key(m);
  /* A lone "$" key would read back as one of the special forms. */
  bool wrap = pairs || (m->len == 1 && m->entries[0].key_len > 0 &&
                        m->keys[m->entries[0].key_off] == '$');
  if (wrap) {
    putc_(b, '{');
    newline(b, indent + 1);
    PUT_LIT(b, "\"$map\":");
    if (b->pretty) putc_(b, ' ');
    indent++;
  }
  putc_(b, pairs ? '[' : '{');
  if (pairs) put_map_pairs(b, m, indent - 1);
  else put_map_entries(b, m, indent);
  if (m->len) newline(b, indent);
  putc_(b, pairs ? ']' : '}');
  if (wrap) {
    newline(b, indent - 1);
    putc_(b, '}');
  }
}

static void put_value(jbuf *b, const tg_value *v, unsigned indent) {
  if (tg__is_imm(v)) { /* small ints: the bulk of big lists */
    put_i64(b, tg__imm_get(v));
    return;
  }
  switch (tg_value_type(v)) {
    case TG_NULL: PUT_LIT(b, "null"); break;
    case TG_BOOL: if (tg_value_bool(v)) PUT_LIT(b, "true"); else PUT_LIT(b, "false"); break;
    case TG_INT: put_i64(b, tg_value_int(v)); break;
    case TG_FLOAT: put_float(b, ((const tg__float *)v)->d); break;
    case TG_STR: put_string(b, ((const tg__blob *)v)->data, ((const tg__blob *)v)->len); break;
    case TG_BYTES: put_bytes(b, (const tg__blob *)v); break;
    case TG_NDARRAY: put_array(b, (const tg__array *)v, indent); break;
    case TG_LIST: put_list(b, (const tg__list *)v, indent); break;
    case TG_MAP: put_map(b, (const tg__map *)v, indent); break;
  }
}

int tg_value_to_json(const tg_value *v, unsigned flags, char **out, size_t *len,
                     tg_error *err) {
  if (out) *out = NULL;
  if (!v || !out || (flags & ~(unsigned)TG_JSON_PRETTY))
    return tg__error_set(err, TG_EINVAL, "tg_value_to_json: %s",
                         !v ? "value is NULL" : !out ? "out is NULL" : "unknown flags");
  jbuf b = {.pretty = (flags & TG_JSON_PRETTY) != 0};
  put_value(&b, v, 0);
  putc_(&b, '\0');
  if (b.oom) {
    free(b.p);
    return tg__error_set(err, TG_ENOMEM, "out of memory writing JSON (%zu bytes so far)", b.len);
  }
  *out = b.p;
  if (len) *len = b.len - 1;
  return TG_OK;
}
