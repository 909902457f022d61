/* lib/json/parse.c: the graph.json tokenizer and parser. A single pass
 * over the text builds the tasks, their arguments (constants become
 * tg_values at once) and the outputs and plugins, recording the byte
 * offset of everything a later error may point at. */
#include <locale.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json/gj_internal.h"

typedef struct stack_item {
  gj_arg *arg;     /* NULL: a task's constant argument, in value */
  tg_value *value;
  const char *key; /* arena; NULL in lists */
  size_t keylen, keyoff;
} stack_item;

typedef struct P {
  gj_doc *d;
  const char *s;
  size_t pos, len;
  char *scratch; /* decoded escaped strings */
  size_t scratch_cap;
  const char *last_fn; /* the previous task's function name */
  size_t last_fn_len;
  stack_item *stack; /* items of the containers being parsed */
  size_t top, cap;
  size_t at;         /* where line and col were last counted up to */
  unsigned line, col; /* of byte `at`, as tg__gj_position gives them */
  size_t kept;       /* text before this offset is no longer read */
  unsigned in_form;  /* > 0 while checking the text of a "$" form */
  struct form_note *notes; /* what that check saw (see dollar_object) */
  size_t nnotes, notes_cap, next_note;
  size_t noted_from, noted_to; /* the text the notes cover */
  gj_arg *spare; /* gj_args the current task no longer uses, linked by
                    u.seq.items (only its own: see gj_arena.tag) */
} P;

/* An object inside a checked "$" candidate whose first key starts with
 * '$': whether it has one key, so reading the text again as arguments
 * never checks it a second time. */
typedef struct form_note {
  size_t off, end; /* its '{', and just past its '}' */
  bool single;     /* it has exactly one key: a "$" form */
} form_note;

static int syntax(P *p, size_t off, const char *what) {
  if (off >= p->len)
    return tg__gj_fail(p->d, p->len, TG_EJSON, "unexpected end of file, %s",
                       what);
  unsigned char c = (unsigned char)p->s[off];
  if (c >= 0x20 && c < 0x7f)
    return tg__gj_fail(p->d, off, TG_EJSON, "unexpected '%c', %s", c, what);
  return tg__gj_fail(p->d, off, TG_EJSON, "unexpected byte 0x%02x, %s", c,
                     what);
}

/* ---- eight bytes at a time ----
 * The text is read a word at a time where the work is per byte (strings,
 * indentation, columns): a million tasks are a hundred million bytes. */
#define ONES 0x0101010101010101u
#define HIGHS 0x8080808080808080u
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WORDS 1 /* the first byte of a word is its lowest */
#else
#define WORDS 0
#endif

static inline uint64_t word8(const char *s) {
  uint64_t w;
  memcpy(&w, s, sizeof w);
  return w;
}

/* The high bit of each byte of w below 0x20 or equal to a or b. Bits
 * above the lowest one may be false (borrows), so only the lowest is
 * used. */
static inline uint64_t stops(uint64_t w, uint64_t a, uint64_t b) {
  uint64_t x = w ^ (ONES * a), y = w ^ (ONES * b);
  return ((w - ONES * 0x20) & ~w) | ((x - ONES) & ~x) | ((y - ONES) & ~y);
}

/* The first byte from i (before len) that ends a run of plain string
 * text: '"', '\\', a control character or a non-ASCII byte. */
static inline size_t plain_run(const char *s, size_t i, size_t len) {
  for (; WORDS && i + 8 <= len; i += 8) {
    uint64_t w = word8(s + i), m = (stops(w, '"', '\\') | w) & HIGHS;
    if (m != 0) return i + (size_t)(__builtin_ctzll(m) >> 3);
  }
  while (i < len && s[i] != '"' && s[i] != '\\' &&
         (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x80)
    i++;
  return i;
}

static inline void ws(P *p) {
  const char *s = p->s;
  size_t i = p->pos;
  if (i < p->len && (unsigned char)s[i] > ' ') return; /* mostly */
  while (i < p->len) {
    /* Indentation: runs of spaces, a word at a time. */
    if (WORDS && i + 8 <= p->len && word8(s + i) == ONES * ' ') {
      i += 8;
      continue;
    }
    if (s[i] != ' ' && s[i] != '\n' && s[i] != '\r' && s[i] != '\t') break;
    i++;
  }
  p->pos = i;
}

/* Skip whitespace and consume c if it comes next. */
static inline bool eat(P *p, char c) {
  ws(p);
  if (p->pos < p->len && p->s[p->pos] == c) {
    p->pos++;
    return true;
  }
  return false;
}

/* ---- strings ---- */

static int hex4(P *p, size_t at, unsigned *out) {
  unsigned v = 0;
  for (size_t i = at; i < at + 4; i++) {
    char c = i < p->len ? p->s[i] : '\0';
    int h = c >= '0' && c <= '9'   ? c - '0'
            : c >= 'a' && c <= 'f' ? c - 'a' + 10
            : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                   : -1;
    if (h < 0) return syntax(p, i, "expected 4 hex digits after \\u");
    v = v * 16 + (unsigned)h;
  }
  *out = v;
  return TG_OK;
}

static size_t put_utf8(char *o, unsigned cp) {
  if (cp < 0x80) return o[0] = (char)cp, 1;
  if (cp < 0x800) {
    o[0] = (char)(0xC0 | cp >> 6);
    o[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    o[0] = (char)(0xE0 | cp >> 12);
    o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
    o[2] = (char)(0x80 | (cp & 0x3F));
    return 3;
  }
  o[0] = (char)(0xF0 | cp >> 18);
  o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
  o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
  o[3] = (char)(0x80 | (cp & 0x3F));
  return 4;
}

/* One \uXXXX escape (a surrogate pair counts as one) at p->pos, which is
 * just after the 'u'; appended to o. */
static int unicode_escape(P *p, char *o, size_t *n) {
  size_t at = p->pos - 2;
  unsigned cp = 0, lo = 0;
  int rc = hex4(p, p->pos, &cp);
  if (rc != TG_OK) return rc;
  p->pos += 4;
  if (cp >= 0xDC00 && cp <= 0xDFFF)
    return tg__gj_fail(p->d, at, TG_EJSON, "lone low surrogate \\u%04X", cp);
  if (cp >= 0xD800 && cp <= 0xDBFF) {
    if (p->pos + 1 >= p->len || p->s[p->pos] != '\\' ||
        p->s[p->pos + 1] != 'u' || hex4(p, p->pos + 2, &lo) != TG_OK ||
        lo < 0xDC00 || lo > 0xDFFF)
      return tg__gj_fail(p->d, at, TG_EJSON,
                         "high surrogate \\u%04X without a low one", cp);
    p->pos += 6;
    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
  }
  *n += put_utf8(o + *n, cp);
  return TG_OK;
}

/* Decode the escaped string whose body starts at p->pos into scratch. */
static int decode_escaped(P *p, const char **out, size_t *outlen) {
  size_t need = p->len - p->pos + 1; /* decoding never grows the text */
  if (need > p->scratch_cap) {
    char *b = tg__realloc(p->scratch, need);
    if (b == NULL) return tg__gj_fail(p->d, p->pos, TG_ENOMEM, "out of memory");
    p->scratch = b;
    p->scratch_cap = need;
  }
  char *o = p->scratch;
  size_t n = 0;
  for (;;) {
    if (p->pos >= p->len) return syntax(p, p->pos, "in a string");
    unsigned char c = (unsigned char)p->s[p->pos++];
    if (c == '"') break;
    if (c < 0x20)
      return syntax(p, p->pos - 1, "control characters must be escaped");
    if (c != '\\') {
      o[n++] = (char)c;
      continue;
    }
    char e = p->pos < p->len ? p->s[p->pos++] : '\0';
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *f = e ? strchr(from, e) : NULL;
    if (f != NULL) {
      o[n++] = to[f - from];
    } else if (e == 'u') {
      int rc = unicode_escape(p, o, &n);
      if (rc != TG_OK) return rc;
    } else {
      return syntax(p, p->pos - 1, "not a valid escape after '\\'");
    }
  }
  *out = o;
  *outlen = n;
  return TG_OK;
}

/* A string at p->pos (after whitespace). *out points into the text when
 * it has no escapes, else into scratch (valid until the next string). */
static int string(P *p, const char **out, size_t *outlen) {
  ws(p);
  size_t start = p->pos;
  if (start >= p->len || p->s[start] != '"')
    return syntax(p, start, "expected a string");
  const char *s = p->s;
  size_t i = plain_run(s, start + 1, p->len);
  bool ascii = i >= p->len || (unsigned char)s[i] < 0x80;
  while (i < p->len && s[i] != '"' && s[i] != '\\' &&
         (unsigned char)s[i] >= 0x20)
    i++;
  int rc = TG_OK;
  if (i < p->len && s[i] == '"') {
    *out = s + start + 1;
    *outlen = i - start - 1;
    p->pos = i + 1;
  } else {
    p->pos = start + 1;
    ascii = false;
    rc = decode_escaped(p, out, outlen);
  }
  /* ASCII text is UTF-8: only other strings are checked. */
  if (rc == TG_OK && !ascii && !tg__utf8_valid(*out, *outlen))
    return tg__gj_fail(p->d, start, TG_EJSON, "string is not valid UTF-8");
  return rc;
}

/* A string copied into arena ar with a NUL. */
static int string_arena(P *p, gj_arena *ar, const char **out,
                        size_t *outlen) {
  const char *s;
  int rc = string(p, &s, outlen);
  if (rc != TG_OK) return rc;
  *out = tg__gj_strdup(ar, s, *outlen);
  return *out ? TG_OK : tg__gj_fail(p->d, p->pos, TG_ENOMEM, "out of memory");
}

/* ---- scalars ---- */

/* JSON numbers use '.' whatever LC_NUMERIC the program set: parse them
 * in the C locale (made once; NULL if that failed: plain strtod). */
static locale_t c_numeric;
static void c_numeric_init(void) {
  c_numeric = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
}

static double c_strtod(const char *s) {
  static pthread_once_t once = PTHREAD_ONCE_INIT;
  pthread_once(&once, c_numeric_init);
  return c_numeric ? strtod_l(s, NULL, c_numeric) : strtod(s, NULL);
}

static int number(P *p, tg_value **out) {
  const char *s = p->s;
  size_t i = p->pos, start = i;
  bool neg = false, is_float = false;
  if (i < p->len && s[i] == '-') neg = true, i++;
  if (i >= p->len || s[i] < '0' || s[i] > '9')
    return syntax(p, i, "expected a digit");
  uint64_t mag = 0;
  bool ovf = false;
  if (s[i] == '0' && i + 1 < p->len && s[i + 1] >= '0' && s[i + 1] <= '9')
    return syntax(p, i + 1, "numbers may not have leading zeros");
  for (; i < p->len && s[i] >= '0' && s[i] <= '9'; i++) {
    ovf |= mag > (UINT64_MAX - 9) / 10;
    mag = mag * 10 + (uint64_t)(s[i] - '0');
  }
  if (i < p->len && s[i] == '.') {
    is_float = true;
    if (++i >= p->len || s[i] < '0' || s[i] > '9')
      return syntax(p, i, "expected a digit after '.'");
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
  }
  if (i < p->len && (s[i] == 'e' || s[i] == 'E')) {
    is_float = true;
    if (++i < p->len && (s[i] == '+' || s[i] == '-')) i++;
    if (i >= p->len || s[i] < '0' || s[i] > '9')
      return syntax(p, i, "expected a digit in the exponent");
    while (i < p->len && s[i] >= '0' && s[i] <= '9') i++;
  }
  p->pos = i;
  if (is_float) {
    /* The text ends with a NUL and the number was validated above, so
     * strtod stops exactly where we did. */
    double d = c_strtod(s + start);
    if (isinf(d))
      return tg__gj_fail(p->d, start, TG_EJSON, "number out of range");
    *out = tg_float(d);
  } else {
    if (ovf || mag > (uint64_t)INT64_MAX + neg)
      return tg__gj_fail(p->d, start, TG_EJSON,
                         "integer does not fit in 64 bits");
    *out = tg_int(neg ? (int64_t)(0 - mag) : (int64_t)mag);
  }
  return *out ? TG_OK : tg__gj_fail(p->d, start, TG_ENOMEM, "out of memory");
}

static bool word(P *p, const char *w, size_t n) {
  if (p->len - p->pos < n || memcmp(p->s + p->pos, w, n) != 0) return false;
  p->pos += n;
  return true;
}

/* true, false, null, a number or a string, as a value. */
static int scalar(P *p, tg_value **out) {
  size_t at = p->pos;
  char c = at < p->len ? p->s[at] : '\0';
  if (c == '"') {
    const char *s;
    size_t n;
    int rc = string(p, &s, &n);
    if (rc != TG_OK) return rc;
    *out = tg_str(s, n);
    return *out ? TG_OK : tg__gj_fail(p->d, at, TG_ENOMEM, "out of memory");
  }
  if (c == '-' || (c >= '0' && c <= '9')) return number(p, out);
  if (word(p, "true", 4)) return *out = tg_bool(true), TG_OK;
  if (word(p, "false", 5)) return *out = tg_bool(false), TG_OK;
  if (word(p, "null", 4)) return *out = tg_null(), TG_OK;
  return syntax(p, at, "expected a value");
}

/* ---- arguments ---- */

static int arg(P *p, unsigned depth, bool literal, gj_arg **out);

/* a is no longer used (its value, if any, moved on): the next new_arg
 * takes it, so constants folded into a list or a task's arguments do not
 * leave their gj_args behind in the arena. */
static void recycle(P *p, gj_arg *a) {
  a->u.seq.items = (gj_arg **)p->spare;
  p->spare = a;
}

static gj_arg *new_arg(P *p, uint8_t kind, size_t off) {
  gj_arg *a = p->spare;
  if (a != NULL) p->spare = (gj_arg *)a->u.seq.items;
  else a = tg__gj_alloc(&p->d->work, sizeof *a);
  if (a != NULL) {
    memset(a, 0, sizeof *a);
    a->kind = kind;
    a->off = off;
  }
  return a;
}

static int push(P *p, gj_arg *a, const char *key, size_t keylen,
                size_t keyoff) {
  if (p->top == p->cap) {
    size_t cap = p->cap ? p->cap * 2 : 64;
    stack_item *st = tg__realloc(p->stack, cap * sizeof *st);
    if (st == NULL) return TG_ENOMEM;
    p->stack = st;
    p->cap = cap;
  }
  p->stack[p->top++] = (stack_item){a, NULL, key, keylen, keyoff};
  return TG_OK;
}

void tg__gj_release_arg(gj_arg *a) {
  if (a == NULL) return;
  if (a->kind == GJ_CONST) {
    tg_value_unref(a->u.value);
    a->u.value = NULL;
  } else if (a->kind == GJ_LIST || a->kind == GJ_MAP) {
    for (size_t i = 0; i < a->nitems; i++)
      tg__gj_release_arg(a->u.seq.items[i]);
  }
}

/* Release what the stack holds above base, after an error. */
static void drop(P *p, size_t base) {
  for (size_t i = base; i < p->top; i++) {
    tg__gj_release_arg(p->stack[i].arg);
    tg_value_unref(p->stack[i].value);
  }
  p->top = base;
}

/* Items base..top as a CONST list (all constants) or a GJ_LIST. */
static int close_list(P *p, size_t base, size_t off, gj_arg **out) {
  size_t n = p->top - base;
  bool all_const = true;
  for (size_t i = base; i < p->top; i++)
    all_const &= p->stack[i].arg->kind == GJ_CONST;
  gj_arg *a = new_arg(p, all_const ? GJ_CONST : GJ_LIST, off);
  if (a == NULL) return TG_ENOMEM;
  if (all_const) {
    a->u.value = tg_list_alloc(n);
    if (a->u.value == NULL) return TG_ENOMEM;
    for (size_t i = 0; i < n; i++) {
      gj_arg *it = p->stack[base + i].arg;
      int rc = tg_list_init_item(a->u.value, i, it->u.value);
      it->u.value = NULL;
      if (rc != TG_OK) {
        tg_value_unref(a->u.value);
        a->u.value = NULL;
        return rc;
      }
    }
    for (size_t i = 0; i < n; i++) recycle(p, p->stack[base + i].arg);
  } else {
    if (n > UINT32_MAX) return TG_ELIMIT;
    a->nitems = (uint32_t)n;
    a->u.seq.items = tg__gj_alloc(&p->d->work, (n ? n : 1) * sizeof(gj_arg *));
    if (a->u.seq.items == NULL) return TG_ENOMEM;
    for (size_t i = 0; i < n; i++) a->u.seq.items[i] = p->stack[base + i].arg;
  }
  p->top = base;
  *out = a;
  return TG_OK;
}

static int list(P *p, unsigned depth, bool literal, gj_arg **out) {
  size_t off = p->pos++, base = p->top;
  int rc = TG_OK;
  if (!eat(p, ']')) {
    do {
      gj_arg *item;
      rc = arg(p, depth + 1, literal, &item);
      if (rc == TG_OK && push(p, item, NULL, 0, 0) != TG_OK)
        rc = tg__gj_fail(p->d, p->pos, TG_ENOMEM, "out of memory");
    } while (rc == TG_OK && eat(p, ','));
    if (rc == TG_OK && !eat(p, ']'))
      rc = syntax(p, p->pos, "expected ',' or ']' in a list");
  }
  if (rc == TG_OK && close_list(p, base, off, out) != TG_OK)
    rc = tg__gj_fail(p->d, off, TG_ENOMEM, "out of memory or too deep");
  drop(p, base);
  return rc;
}

static int duplicate(P *p, size_t keyoff, const char *key) {
  return tg__gj_fail(p->d, keyoff, TG_EFORMAT, "duplicate key '%s'", key);
}

/* A map with one "$" key: read the object's text as tg_value_from_json
 * does, so {"$bytes": ...} and friends mean what they mean there. */
static int dollar_form(P *p, size_t off, gj_arg *a) {
  tg_error e;
  tg_error_clear(&e);
  tg_value *v;
  if (tg_value_from_json(p->s + off, p->pos - off, &v, &e) != TG_OK)
    return tg__gj_fail(p->d, off, TG_EFORMAT, "%s", e.msg);
  tg_value_unref(a->u.value);
  a->u.value = v;
  return TG_OK;
}

static int close_const_map(P *p, size_t base, size_t off, gj_arg *a) {
  size_t n = p->top - base;
  a->u.value = tg_map_new(n);
  if (a->u.value == NULL) return TG_ENOMEM;
  for (size_t i = base; i < p->top; i++) {
    stack_item *it = &p->stack[i];
    if (tg_map_get(a->u.value, it->key, it->keylen) != NULL)
      return duplicate(p, it->keyoff, it->key);
    int rc = tg_map_put(a->u.value, it->key, it->keylen, it->arg->u.value);
    it->arg->u.value = NULL;
    if (rc != TG_OK) return tg__gj_fail(p->d, off, rc, "%s", tg_strerror(rc));
  }
  return TG_OK;
}

static int close_ref_map(P *p, size_t base, gj_arg *a) {
  size_t n = p->top - base;
  gj_arena *ar = &p->d->work;
  if (n > UINT32_MAX) return TG_ELIMIT;
  a->nitems = (uint32_t)n;
  a->u.seq.items = tg__gj_alloc(ar, n * sizeof(gj_arg *));
  a->u.seq.keys = tg__gj_alloc(ar, n * (sizeof(char *) + sizeof(size_t)));
  if (!a->u.seq.items || !a->u.seq.keys) return TG_ENOMEM;
  size_t *keylens = tg__gj_keylens(a);
  for (size_t i = 0; i < n; i++) {
    stack_item *it = &p->stack[base + i];
    for (size_t j = 0; j < i; j++) /* maps with refs are small */
      if (keylens[j] == it->keylen &&
          memcmp(a->u.seq.keys[j], it->key, it->keylen) == 0)
        return duplicate(p, it->keyoff, it->key);
    a->u.seq.items[i] = it->arg;
    a->u.seq.keys[i] = it->key;
    keylens[i] = it->keylen;
  }
  return TG_OK;
}

/* Items base..top as a CONST map or a GJ_MAP. */
static int close_map(P *p, size_t base, size_t off, gj_arg **out) {
  bool all_const = true;
  for (size_t i = base; i < p->top; i++)
    all_const &= p->stack[i].arg->kind == GJ_CONST;
  gj_arg *a = new_arg(p, all_const ? GJ_CONST : GJ_MAP, off);
  if (a == NULL) return tg__gj_fail(p->d, off, TG_ENOMEM, "out of memory");
  int rc = all_const ? close_const_map(p, base, off, a)
                     : close_ref_map(p, base, a);
  if (rc == TG_OK) {
    *out = a;
    p->top = base; /* the items now belong to a */
    return TG_OK;
  }
  if (all_const) tg__gj_release_arg(a);
  if (rc == TG_ENOMEM) return tg__gj_fail(p->d, off, rc, "out of memory");
  return rc;
}

/* Members of a map whose first key (already read) is key. */
static int members(P *p, unsigned depth, bool literal, const char *key,
                   size_t keylen, size_t keyoff) {
  for (;;) {
    if (!literal && (strcmp(key, "ref") == 0 || strcmp(key, "const") == 0))
      return tg__gj_fail(p->d, keyoff, TG_EFORMAT,
                         "\"%s\" must be the only key of its object (\"get\" "
                         "may go with \"ref\"); wrap a literal map in "
                         "{\"const\": ...}", key);
    if (!eat(p, ':')) return syntax(p, p->pos, "expected ':' after a key");
    gj_arg *v;
    int rc = arg(p, depth + 1, literal, &v);
    if (rc != TG_OK) return rc;
    if (push(p, v, key, keylen, keyoff) != TG_OK)
      return tg__gj_fail(p->d, p->pos, TG_ENOMEM, "out of memory");
    if (!eat(p, ',')) break;
    ws(p);
    keyoff = p->pos;
    rc = string_arena(p, &p->d->work, &key, &keylen);
    if (rc != TG_OK) return rc;
  }
  if (!eat(p, '}')) return syntax(p, p->pos, "expected ',' or '}' in an object");
  return TG_OK;
}

/* s (n bytes) is the string literal w. */
#define is(s, n, w) ((n) == sizeof(w) - 1 && memcmp((s), (w), (n)) == 0)

/* The value of "ref" in a ref object. */
static int ref_key(P *p, gj_arg *a) {
  ws(p);
  size_t at = p->pos, n;
  int rc = string_arena(p, &p->d->ref_keys, &a->u.ref.key, &n);
  if (rc == TG_OK && (n == 0 || n > UINT32_MAX || memchr(a->u.ref.key, 0, n)))
    return tg__gj_fail(p->d, at, TG_EFORMAT,
                       "\"ref\" must name a task (a non-empty key)");
  a->keylen = (uint32_t)n;
  return rc;
}

/* v as an int: an int, or a float with an integral value in range (JSON
 * Schema's "integer" counts 1.0 as one, so the reader does too). */
static bool integral(const tg_value *v, int64_t *out) {
  if (tg_value_type(v) == TG_INT) return *out = tg_value_int(v), true;
  if (tg_value_type(v) != TG_FLOAT) return false;
  double d = tg_value_float(v);
  if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0) ||
      d != floor(d))
    return false;
  *out = (int64_t)d;
  return true;
}

/* The value of "get" in a ref object. */
static int ref_get(P *p, gj_arg *a) {
  ws(p);
  size_t at = p->pos, n;
  if (at < p->len && p->s[at] == '"') {
    a->get = GJ_GET_KEY;
    return string_arena(p, &p->d->work, &a->u.ref.gkey, &n);
  }
  tg_value *v;
  int rc = scalar(p, &v);
  if (rc != TG_OK) return rc;
  bool ok = integral(v, &a->u.ref.index);
  a->get = GJ_GET_INDEX;
  tg_value_unref(v);
  if (!ok)
    return tg__gj_fail(p->d, at, TG_EFORMAT,
                       "\"get\" must be an int (list index) or a string "
                       "(map key)");
  return TG_OK;
}

/* The rest of {"ref": KEY, "get": I} after its first key (at keyoff,
 * `key` of keylen bytes, not NUL-terminated). */
static int ref_object(P *p, size_t off, const char *key, size_t keylen,
                      size_t keyoff, gj_arg **out) {
  gj_arg *a = new_arg(p, GJ_REF, off);
  if (a == NULL) return tg__gj_fail(p->d, off, TG_ENOMEM, "out of memory");
  bool seen_ref = false, seen_get = false;
  for (;;) {
    bool r = is(key, keylen, "ref"), g = is(key, keylen, "get");
    if ((r && seen_ref) || (g && seen_get))
      return duplicate(p, keyoff, r ? "ref" : "get");
    if (!r && !g)
      return tg__gj_fail(p->d, keyoff, TG_EFORMAT,
                         "a ref takes only \"ref\" and \"get\", not '%.*s'",
                         (int)(keylen > 40 ? 40 : keylen), key);
    if (!eat(p, ':')) return syntax(p, p->pos, "expected ':' after a key");
    int rc = r ? ref_key(p, a) : ref_get(p, a);
    if (rc != TG_OK) return rc;
    seen_ref |= r;
    seen_get |= g;
    if (!eat(p, ',')) break;
    ws(p);
    keyoff = p->pos;
    if ((rc = string(p, &key, &keylen)) != TG_OK) return rc;
  }
  if (!eat(p, '}')) return syntax(p, p->pos, "expected ',' or '}' in a ref");
  if (!seen_ref)
    return tg__gj_fail(p->d, off, TG_EFORMAT, "\"get\" without \"ref\"");
  *out = a;
  return TG_OK;
}

/* The object at off, whose text ends at p->pos, as a "$" form. */
static int dollar_const(P *p, size_t off, gj_arg **out) {
  gj_arg *a = new_arg(p, GJ_CONST, off);
  if (a == NULL) return tg__gj_fail(p->d, off, TG_ENOMEM, "out of memory");
  int rc = dollar_form(p, off, a);
  if (rc == TG_OK) *out = a;
  return rc;
}

/* An object whose first key, just read, starts with '$'. When it is the
 * only key, the object is a "$" form, a value whatever it holds
 * ({"$map": {"r": {"ref": "x"}}} is the map {"r": {"ref": "x"}}): its
 * text is checked as JSON here (positions exact), then read as
 * tg_value_from_json reads it; *only is true and *out the value. Else
 * the caller reads the object again as a map: the objects inside that
 * this check saw are noted, so that second reading finds them decided
 * and the text is checked once, however deep such objects nest. */
static int dollar_object(P *p, unsigned depth, size_t off, bool *only,
                         gj_arg **out) {
  if (!eat(p, ':')) return syntax(p, p->pos, "expected ':' after a key");
  gj_arg *inner;
  p->nnotes = p->next_note = 0;
  p->in_form++; /* "$" objects inside are plain maps to the check */
  int rc = arg(p, depth + 1, true, &inner);
  p->in_form--;
  if (rc != TG_OK) return rc;
  tg__gj_release_arg(inner);
  p->noted_from = off;
  p->noted_to = p->pos;
  *only = eat(p, '}');
  return *only ? dollar_const(p, off, out) : TG_OK;
}

/* Start a note for the object at off (see form_note); its index, or
 * SIZE_MAX when out of memory. */
static size_t note_open(P *p, size_t off) {
  if (p->nnotes == p->notes_cap) {
    size_t cap = p->notes_cap ? p->notes_cap * 2 : 16;
    form_note *n = tg__realloc(p->notes, cap * sizeof *n);
    if (n == NULL) return SIZE_MAX;
    p->notes = n;
    p->notes_cap = cap;
  }
  p->notes[p->nnotes] = (form_note){off, 0, false};
  return p->nnotes++;
}

/* The note on the object at off, or NULL. Objects are met in the order
 * of their offsets, in the check as in the reading after it. */
static const form_note *note_find(P *p, size_t off) {
  if (off <= p->noted_from || off >= p->noted_to) return NULL;
  while (p->next_note < p->nnotes && p->notes[p->next_note].off < off)
    p->next_note++;
  if (p->next_note < p->nnotes && p->notes[p->next_note].off == off)
    return &p->notes[p->next_note];
  return NULL;
}

static int object(P *p, unsigned depth, bool literal, gj_arg **out) {
  size_t off = p->pos++, base = p->top;
  if (eat(p, '}')) return close_map(p, base, off, out);
  ws(p);
  size_t keyoff = p->pos, keylen;
  const char *raw, *key;
  int rc = string(p, &raw, &keylen);
  if (rc != TG_OK) return rc;
  if (!literal && (is(raw, keylen, "ref") || is(raw, keylen, "get")))
    return ref_object(p, off, raw, keylen, keyoff, out);
  if (!literal && is(raw, keylen, "const")) {
    if (!eat(p, ':')) return syntax(p, p->pos, "expected ':' after a key");
    rc = arg(p, depth + 1, true, out);
    if (rc == TG_OK && !eat(p, '}')) {
      tg__gj_release_arg(*out);
      rc = tg__gj_fail(p->d, keyoff, TG_EFORMAT,
                       "\"const\" must be the only key of its object");
    }
    return rc;
  }
  size_t note = SIZE_MAX;
  if (raw[0] == '$' && p->in_form > 0) {
    if ((note = note_open(p, off)) == SIZE_MAX)
      return tg__gj_fail(p->d, off, TG_ENOMEM, "out of memory");
  } else if (raw[0] == '$') {
    const form_note *n = note_find(p, off);
    bool only = false;
    if (n != NULL && n->single) {
      p->pos = n->end;
      return dollar_const(p, off, out);
    }
    if (n == NULL) {
      rc = dollar_object(p, depth, off, &only, out);
      if (rc != TG_OK || only) return rc;
      /* Not a "$" form: read the object again as a map. */
      p->pos = keyoff;
      if ((rc = string(p, &raw, &keylen)) != TG_OK) return rc;
    }
  }
  /* raw is still valid: no other string was read since. */
  if ((key = tg__gj_strdup(&p->d->work, raw, keylen)) == NULL)
    return tg__gj_fail(p->d, keyoff, TG_ENOMEM, "out of memory");
  rc = members(p, depth, literal, key, keylen, keyoff);
  size_t nkeys = p->top - base;
  if (rc == TG_OK) rc = close_map(p, base, off, out);
  if (rc == TG_OK && note != SIZE_MAX)
    p->notes[note] = (form_note){off, p->pos, nkeys == 1};
  drop(p, base);
  return rc;
}

/* Any JSON value as an argument; `literal` reads refs as plain maps. */
static int arg(P *p, unsigned depth, bool literal, gj_arg **out) {
  ws(p);
  size_t off = p->pos;
  if (depth >= TG_DEPTH_MAX)
    return tg__gj_fail(p->d, off, TG_EDEPTH,
                       "nested more than %d levels deep", TG_DEPTH_MAX);
  char c = off < p->len ? p->s[off] : '\0';
  if (c == '[') return list(p, depth, literal, out);
  if (c == '{') return object(p, depth, literal, out);
  gj_arg *a = new_arg(p, GJ_CONST, off);
  if (a == NULL) return tg__gj_fail(p->d, off, TG_ENOMEM, "out of memory");
  *out = a;
  return scalar(p, &a->u.value);
}

/* ---- the document ---- */

/* Count lines and columns from p->at to off (off >= p->at): tasks come in
 * file order, so every byte is counted once, whatever the layout. */
static void advance(P *p, size_t off) {
  const char *s = p->s, *end = s + off, *from = s + p->at, *nl;
  while ((nl = memchr(from, '\n', (size_t)(end - from))) != NULL) {
    p->line++;
    p->col = 1;
    from = nl + 1;
  }
  /* Characters, not bytes: every byte but UTF-8 continuations (10xxxxxx)
   * counts. */
  size_t c = 0;
  const char *q = from;
  for (; WORDS && end - q >= 8; q += 8) {
    uint64_t w = word8(q);
    uint64_t cont = (w & ~(w << 1) & HIGHS) >> 7; /* a 1 per byte */
    c += 8 - (size_t)((cont * ONES) >> 56);
  }
  for (; q < end; q++) c += ((unsigned char)*q & 0xC0) != 0x80;
  p->col += (unsigned)c;
  p->at = off;
}

/* Tell the document the text before the parser's position is done with
 * (see tg__gj_text_done), every few megabytes. */
static void release_text(P *p) {
  size_t upto = p->at < p->pos ? p->at : p->pos;
  if (upto - p->kept >= ((size_t)8 << 20)) {
    tg__gj_text_done(p->d, upto);
    p->kept = upto;
  }
}

static int add_task(P *p, const char *key, size_t keylen, size_t off,
                    gj_task **out) {
  gj_doc *d = p->d;
  if (d->ntasks == d->cap_tasks) {
    /* First room for a task every 64 bytes of text (a plain task takes
     * more): growing a big array copies it into pages touched anew, and
     * room never used costs no memory. */
    size_t cap = d->cap_tasks ? d->cap_tasks * 2
                              : d->len / 64 > 256 ? d->len / 64 : 256;
    gj_task *t = tg__realloc(d->tasks, cap * sizeof *t);
    if (t == NULL) return tg__gj_fail(d, off, TG_ENOMEM, "out of memory");
    tg__advise_huge(t, cap * sizeof *t);
    d->tasks = t;
    d->cap_tasks = cap;
  }
  if (d->ntasks >= UINT32_MAX - 2)
    return tg__gj_fail(d, off, TG_ELIMIT, "too many tasks");
  if (keylen == 0 || keylen > UINT32_MAX || memchr(key, '\0', keylen) != NULL)
    return tg__gj_fail(d, off, TG_EFORMAT,
                       "a task key must be non-empty and hold no NUL");
  gj_task *t = &d->tasks[d->ntasks];
  memset(t, 0, sizeof *t);
  d->work.tag = (uint32_t)d->ntasks; /* what follows is this task's */
  p->spare = NULL;
  advance(p, off);
  *t = (gj_task){.key = key, .keylen = (uint32_t)keylen, .off = off, .line = p->line,
                 .col = p->col, .cache = -1, .retries = -1,
                 .node = TG_NODE_NONE};
  d->ntasks++;
  release_text(p);
  *out = t;
  return TG_OK;
}

/* Positions inside a task are kept as 32-bit offsets from its key. */
static int too_big(P *p, gj_task *t) {
  return tg__gj_fail(p->d, t->off, TG_ELIMIT,
                     "task '%s' is longer than 4 GiB", t->key);
}

/* "args": [...] of task t. */
static int task_args(P *p, gj_task *t) {
  ws(p);
  if (p->pos - t->off > UINT32_MAX) return too_big(p, t);
  t->args_at = (uint32_t)(p->pos - t->off);
  if (!eat(p, '['))
    return tg__gj_fail(p->d, t->off + t->args_at, TG_EFORMAT,
                       "\"args\" must be a list");
  size_t base = p->top;
  int rc = TG_OK;
  if (!eat(p, ']')) {
    do {
      gj_arg *a;
      rc = arg(p, 0, false, &a);
      if (rc == TG_OK && push(p, a, NULL, 0, 0) != TG_OK)
        rc = tg__gj_fail(p->d, p->pos, TG_ENOMEM, "out of memory");
      if (rc == TG_OK && a->kind == GJ_CONST) {
        /* A constant is kept as its value (see gj_targ): its gj_arg,
         * usually the last allocation, goes back. */
        p->stack[p->top - 1] = (stack_item){NULL, a->u.value, NULL, 0, 0};
        if (!tg__gj_unalloc(&p->d->work, a, sizeof *a)) recycle(p, a);
      }
    } while (rc == TG_OK && eat(p, ','));
    if (rc == TG_OK && !eat(p, ']'))
      rc = syntax(p, p->pos, "expected ',' or ']' in a list");
  }
  size_t n = p->top - base;
  if (rc == TG_OK && n > 0) {
    t->args = tg__gj_alloc(&p->d->work, n * sizeof(gj_targ));
    if (t->args == NULL)
      rc = tg__gj_fail(p->d, p->pos, TG_ENOMEM, "out of memory");
  }
  if (rc != TG_OK) {
    drop(p, base);
    return rc;
  }
  for (size_t i = 0; i < n; i++) {
    stack_item *it = &p->stack[base + i];
    t->args[i] = it->arg ? tg__gj_of_arg(it->arg) : tg__gj_of_value(it->value);
  }
  t->nargs = (uint32_t)n; /* fewer than the bytes after args_at */
  p->top = base;
  return TG_OK;
}

static int task_option(P *p, gj_task *t, const char *field, size_t at) {
  tg_value *v = NULL;
  int rc = scalar(p, &v);
  if (rc != TG_OK) return rc;
  tg_type ty = tg_value_type(v);
  int64_t i;
  if (strcmp(field, "cache") == 0 && ty == TG_BOOL) {
    t->cache = (int8_t)tg_value_bool(v);
  } else if (strcmp(field, "retries") == 0 && integral(v, &i) && i >= 0 &&
             i <= TG_GRAPHJSON_RETRIES_MAX) {
    t->retries = (int16_t)i;
  } else if (strcmp(field, "timeout") == 0 &&
             (ty == TG_INT || ty == TG_FLOAT) &&
             (ty == TG_INT ? tg_value_int(v) >= 0 : tg_value_float(v) >= 0)) {
    t->timeout = ty == TG_INT ? (double)tg_value_int(v) : tg_value_float(v);
  } else if (strcmp(field, "priority") == 0 && integral(v, &i) && i >= INT_MIN &&
             i <= INT_MAX) {
    t->priority = (int32_t)i;
  } else if (field[0] == 'r') {
    rc = tg__gj_fail(p->d, at, TG_EFORMAT, "\"retries\" must be an int from 0 "
                     "to %d", TG_GRAPHJSON_RETRIES_MAX);
  } else if (field[0] == 'p') {
    rc = tg__gj_fail(p->d, at, TG_EFORMAT, "\"priority\" must be an int from %d "
                     "to %d", INT_MIN, INT_MAX);
  } else {
    rc = tg__gj_fail(p->d, at, TG_EFORMAT, "\"%s\" must be %s", field,
                     field[0] == 'c' ? "true or false"
                                     : "a non-negative number of seconds");
  }
  tg_value_unref(v);
  return rc;
}

/* A map's "over" (any argument), kept as t's last argument. */
static int task_over(P *p, gj_task *t) {
  gj_arg *a;
  int rc = arg(p, 0, false, &a);
  if (rc != TG_OK) return rc;
  gj_targ *args = tg__gj_alloc(&p->d->work, (t->nargs + 1) * sizeof *args);
  if (args == NULL) {
    tg__gj_release_arg(a);
    return tg__gj_fail(p->d, p->pos, TG_ENOMEM, "out of memory");
  }
  if (t->nargs) memcpy(args, t->args, t->nargs * sizeof *args);
  args[t->nargs++] = tg__gj_of_arg(a);
  t->args = args;
  t->map |= GJ_MAP_OVER;
  return TG_OK;
}

/* "args" of t, after its "over" when that came first. */
static int task_args_over(P *p, gj_task *t) {
  if (!(t->map & GJ_MAP_OVER)) return task_args(p, t);
  gj_targ over = t->args[0];
  t->nargs = 0;
  int rc = task_args(p, t);
  gj_targ *args = rc == TG_OK ? tg__gj_alloc(&p->d->work, (t->nargs + 1) * sizeof *args)
                              : NULL;
  if (args == NULL) {
    tg__gj_release_arg(tg__gj_arg_of(over));
    return rc != TG_OK ? rc : tg__gj_fail(p->d, p->pos, TG_ENOMEM, "out of memory");
  }
  if (t->nargs) memcpy(args, t->args, t->nargs * sizeof *args);
  args[t->nargs++] = over;
  t->args = args;
  return TG_OK;
}

/* "chunksize": an int from 0 (picked) to TG__CHUNK_MAX_COUNT. */
static int task_chunksize(P *p, gj_task *t, size_t at) {
  tg_value *v = NULL;
  int rc = scalar(p, &v);
  if (rc != TG_OK) return rc;
  int64_t i;
  t->map |= GJ_MAP_CHUNK;
  if (integral(v, &i) && i >= 0 && i <= (int64_t)TG__CHUNK_MAX_COUNT)
    t->chunk = (uint32_t)i;
  else
    rc = tg__gj_fail(p->d, at, TG_EFORMAT, "\"chunksize\" must be an int from 0 "
                     "(picked) to %u", TG__CHUNK_MAX_COUNT);
  tg_value_unref(v);
  return rc;
}

/* One field of task t, its key `fkey` (flen bytes, not NUL-terminated); p->pos
 * is after the key, at keyoff. */
static int task_field(P *p, gj_task *t, const char *fkey, size_t flen,
                      size_t keyoff, unsigned *seen) {
  static const char *const names[] = {"fn", "args", "cache", "retries",
                                      "timeout", "map", "over", "chunksize",
                                      "priority"};
  unsigned i = 0; /* "fn\u0000x" is not "fn": lengths count */
  while (i < 9 && !(strlen(names[i]) == flen && memcmp(fkey, names[i], flen) == 0))
    i++;
  if (i == 9) {
    char name[20]; /* cut for the message */
    size_t k = flen < sizeof name - 4 ? flen : sizeof name - 4;
    for (size_t j = 0; j < k; j++) name[j] = fkey[j] ? fkey[j] : '?';
    strcpy(name + k, k < flen ? "..." : "");
    return tg__gj_fail(p->d, keyoff, TG_EFORMAT,
                       "unknown field '%s' in task '%s' (a task has fn or map, "
                       "args, over, chunksize, cache, retries, timeout and "
                       "priority)",
                       name, t->key);
  }
  const char *field = names[i];
  if (*seen & (1u << i)) return duplicate(p, keyoff, field);
  if ((i == 0 && (*seen & (1u << 5))) || (i == 5 && (*seen & 1u)))
    return tg__gj_fail(p->d, keyoff, TG_EFORMAT,
                       "task '%s' has both \"fn\" and \"map\"", t->key);
  *seen |= 1u << i;
  if (!eat(p, ':')) return syntax(p, p->pos, "expected ':' after a key");
  ws(p);
  size_t at = p->pos;
  if (i == 1) return task_args_over(p, t);
  if (i == 6) return task_over(p, t);
  if (i == 7) return task_chunksize(p, t, at);
  if ((i > 1 && i < 5) || i == 8) return task_option(p, t, field, at);
  if (i == 5) t->map |= GJ_MAP_TASK;
  const char *fname = i == 5 ? "map" : "fn";
  size_t n;
  if (at >= p->len || p->s[at] != '"')
    return tg__gj_fail(p->d, at, TG_EFORMAT,
                       "\"%s\" must be a function name (a string)", fname);
  if (at - t->off > UINT32_MAX) return too_big(p, t);
  t->fn_at = (uint32_t)(at - t->off);
  const char *raw;
  int rc = string(p, &raw, &n);
  if (rc != TG_OK) return rc;
  if (memchr(raw, '\0', n) != NULL)
    return tg__gj_fail(p->d, at, TG_EFORMAT, "\"%s\" holds a NUL byte", fname);
  /* Most graphs call few functions many times: share the name. */
  if (p->last_fn != NULL && n == p->last_fn_len &&
      memcmp(raw, p->last_fn, n) == 0) {
    t->fn = p->last_fn;
    return TG_OK;
  }
  p->last_fn_len = n;
  t->fn = p->last_fn = tg__gj_strdup(&p->d->arena, raw, n);
  return t->fn ? TG_OK : tg__gj_fail(p->d, at, TG_ENOMEM, "out of memory");
}

/* KEY: {...} in "tasks"; p->pos is at the key. */
static int task(P *p) {
  size_t off = p->pos, keylen;
  const char *key;
  int rc = string_arena(p, &p->d->arena, &key, &keylen);
  if (rc != TG_OK) return rc;
  gj_task *t = NULL;
  if ((rc = add_task(p, key, keylen, off, &t)) != TG_OK) return rc;
  if (!eat(p, ':')) return syntax(p, p->pos, "expected ':' after a key");
  if (!eat(p, '{'))
    return tg__gj_fail(p->d, p->pos, TG_EFORMAT,
                       "task '%s' must be an object {\"fn\": ..., \"args\": "
                       "[...]}", key);
  unsigned seen = 0;
  if (!eat(p, '}')) {
    do {
      ws(p);
      size_t foff = p->pos, n;
      const char *field;
      if ((rc = string(p, &field, &n)) != TG_OK) return rc;
      if ((rc = task_field(p, t, field, n, foff, &seen)) != TG_OK) return rc;
    } while (eat(p, ','));
    if (!eat(p, '}')) return syntax(p, p->pos, "expected ',' or '}' in a task");
  }
  if (t->fn == NULL)
    return tg__gj_fail(p->d, off, TG_EFORMAT, "task '%s' has no \"fn\" (or \"map\")", key);
  if (t->map && !(t->map & GJ_MAP_TASK))
    return tg__gj_fail(p->d, off, TG_EFORMAT, "task '%s' has %s but no \"map\"", key,
                       t->map & GJ_MAP_OVER ? "\"over\"" : "\"chunksize\"");
  if (t->map && !(t->map & GJ_MAP_OVER))
    return tg__gj_fail(p->d, off, TG_EFORMAT, "map task '%s' has no \"over\"", key);
  return TG_OK;
}

/* "plugins" or "outputs": a list of strings. */
static int string_list(P *p, const char *field, gj_str **out, size_t *n) {
  ws(p);
  if (!eat(p, '['))
    return tg__gj_fail(p->d, p->pos, TG_EFORMAT,
                       "\"%s\" must be a list of strings", field);
  size_t cap = 0;
  if (eat(p, ']')) return TG_OK;
  do {
    ws(p);
    gj_str g = {NULL, 0, p->pos};
    if (p->pos >= p->len || p->s[p->pos] != '"')
      return tg__gj_fail(p->d, p->pos, TG_EFORMAT,
                         "\"%s\" must be a list of strings", field);
    int rc = string_arena(p, &p->d->arena, &g.s, &g.len);
    if (rc != TG_OK) return rc;
    if (*n == cap) {
      cap = cap ? cap * 2 : 16;
      gj_str *b = tg__realloc(*out, cap * sizeof *b);
      if (b == NULL) return tg__gj_fail(p->d, g.off, TG_ENOMEM, "out of memory");
      *out = b;
    }
    (*out)[(*n)++] = g;
  } while (eat(p, ','));
  if (!eat(p, ']')) return syntax(p, p->pos, "expected ',' or ']' in a list");
  return TG_OK;
}

static int tasks(P *p) {
  ws(p);
  if (!eat(p, '{'))
    return tg__gj_fail(p->d, p->pos, TG_EFORMAT,
                       "\"tasks\" must be an object mapping keys to tasks");
  if (eat(p, '}')) return TG_OK;
  do {
    ws(p);
    int rc = task(p);
    if (rc != TG_OK) return rc;
  } while (eat(p, ','));
  if (!eat(p, '}')) return syntax(p, p->pos, "expected ',' or '}' in \"tasks\"");
  return TG_OK;
}

static int version(P *p) {
  ws(p);
  size_t at = p->pos;
  tg_value *v = NULL;
  int rc = scalar(p, &v);
  if (rc != TG_OK) return rc;
  int64_t got = 0;
  bool is_int = integral(v, &got), ok = is_int && got == 1;
  tg_value_unref(v);
  if (ok) return TG_OK;
  if (is_int)
    return tg__gj_fail(p->d, at, TG_EVERSION,
                       "graph.json version %lld is not supported (this "
                       "tgraph reads version 1)", (long long)got);
  return tg__gj_fail(p->d, at, TG_EFORMAT, "\"tgraph\" must be 1");
}

/* "$schema": where an editor finds the file's JSON Schema; not read. */
static int schema_uri(P *p) {
  ws(p);
  size_t at = p->pos, n;
  const char *s;
  if (at >= p->len || p->s[at] != '"')
    return tg__gj_fail(p->d, at, TG_EFORMAT,
                       "\"$schema\" must be a string (the schema's URI)");
  return string(p, &s, &n);
}

static int top_field(P *p, const char *key, size_t keyoff, unsigned *seen) {
  static const char *const names[] = {"tgraph", "plugins", "tasks",
                                      "outputs", "$schema"};
  unsigned i = 0;
  while (i < 5 && strcmp(key, names[i]) != 0) i++;
  if (i == 5)
    return tg__gj_fail(p->d, keyoff, TG_EFORMAT,
                       "unknown field '%s' (a graph has tgraph, plugins, "
                       "tasks and outputs)", key);
  if (*seen & (1u << i)) return duplicate(p, keyoff, key);
  *seen |= 1u << i;
  if (!eat(p, ':')) return syntax(p, p->pos, "expected ':' after a key");
  gj_doc *d = p->d;
  switch (i) {
    case 0: return version(p);
    case 1: return string_list(p, "plugins", &d->plugins, &d->nplugins);
    case 2: return tasks(p);
    case 4: return schema_uri(p);
    default:
      d->has_outputs = true;
      return string_list(p, "outputs", &d->outputs, &d->noutputs);
  }
}

static int document(P *p) {
  ws(p);
  size_t start = p->pos;
  if (!eat(p, '{'))
    return p->pos >= p->len
               ? tg__gj_fail(p->d, p->pos, TG_EJSON, "the file is empty")
               : tg__gj_fail(p->d, p->pos, TG_EFORMAT,
                             "a graph.json must be an object "
                             "{\"tgraph\": 1, \"tasks\": {...}}");
  unsigned seen = 0;
  if (!eat(p, '}')) {
    do {
      ws(p);
      size_t keyoff = p->pos, n;
      const char *key;
      int rc = string_arena(p, &p->d->work, &key, &n);
      /* A NUL (from \u0000) must not cut the key into a known field's
       * name; the arena copy is ours to change. */
      for (size_t i = 0; rc == TG_OK && i < n; i++)
        if (key[i] == '\0') ((char *)key)[i] = '?';
      if (rc == TG_OK) rc = top_field(p, key, keyoff, &seen);
      if (rc != TG_OK) return rc;
    } while (eat(p, ','));
    if (!eat(p, '}')) return syntax(p, p->pos, "expected ',' or '}'");
  }
  ws(p);
  if (p->pos < p->len) return syntax(p, p->pos, "expected the end of file");
  if (!(seen & 1u))
    return tg__gj_fail(p->d, start, TG_EFORMAT,
                       "missing \"tgraph\": 1 (the format version)");
  if (!(seen & 4u))
    return tg__gj_fail(p->d, start, TG_EFORMAT, "missing \"tasks\"");
  return TG_OK;
}

int tg__gj_parse(gj_doc *d) {
  P p = {.d = d, .s = d->text, .len = d->len, .line = 1, .col = 1};
  /* A UTF-8 byte-order mark, as some Windows editors write, is not JSON
   * but says nothing: skip it (tg__gj_position does not count it). */
  if (tg__gj_bom(d->text, d->len)) p.pos = p.at = 3;
  int rc = document(&p);
  drop(&p, 0);
  tg__free(p.scratch);
  tg__free(p.stack);
  tg__free(p.notes);
  /* The rest of the text is read again only to place an error: its
   * pages need not stay beside the graph being built. */
  if (rc == TG_OK) tg__gj_text_done(d, d->len);
  return rc;
}
