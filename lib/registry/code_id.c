/* lib/registry/code_id.c: code ids: the digest of a function's source
 * files and the project headers they include, normalized so that
 * comment and blank edits keep it (include/tgraph/codeid.h). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <xxhash.h>

#include "internal.h"
#include "tgraph/codeid.h"
#include "tgraph/readfile.h"
#include "tgraph/value.h" /* tg_digest_hex */

#define MAX_FILE ((size_t)64 << 20) /* bytes of one source file */
#define MAX_FILES 4096              /* files in one id */
#define MAX_DEPTH 200               /* nested includes, as cc allows */

typedef struct walk {
  const tg_code_id_opts *o;
  XXH3_state_t *st;
  char **seen;    /* real paths of the files hashed, to hash each once */
  size_t nseen, cap;
  tg_error *err;
} walk;

/* ---- normalizing -------------------------------------------------------------- */

/* Copy a string or character literal starting at s[i] (its quote) to
 * out; it ends at the closing quote or, unterminated, at the line end. */
static size_t literal(const char *s, size_t n, size_t i, char *out, size_t *o) {
  char q = s[i];
  out[(*o)++] = s[i++];
  while (i < n && s[i] != '\n') {
    char c = s[i];
    out[(*o)++] = s[i++];
    if (c == '\\' && i < n) out[(*o)++] = s[i++];
    else if (c == q) break;
  }
  return i;
}

/* Index after the comment starting at s[i] ("//" or slash-star). A line
 * comment stops before its line end (continued lines included). */
static size_t comment(const char *s, size_t n, size_t i) {
  if (s[i + 1] == '/') {
    for (i += 2; i < n && s[i] != '\n'; i++)
      if (s[i] == '\\' && i + 1 < n && s[i + 1] == '\n') i++;
    return i;
  }
  const char *end = NULL;
  for (size_t j = i + 2; j + 1 < n && !end; j++)
    if (s[j] == '*' && s[j + 1] == '/') end = s + j + 2;
  return end ? (size_t)(end - s) : n;
}

static bool word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         c == '_' || (unsigned char)c >= 0x80;
}

/* True when punctuators p and c written together would lex otherwise
 * than apart: they begin a longer punctuator ("- -" is not "--", "< <="
 * not "<<="), a digraph or a comment. */
static bool joins(char p, char c) {
  static const char pairs[][3] = {"->", "++", "--", "<<", ">>", "<=", ">=", "==", "!=",
                                  "&&", "||", "*=", "/=", "%=", "+=", "-=", "&=", "^=",
                                  "|=", "##", "..", "<:", ":>", "<%", "%>", "%:", "//",
                                  "/*"};
  for (size_t i = 0; i < sizeof pairs / sizeof pairs[0]; i++)
    if (pairs[i][0] == p && pairs[i][1] == c) return true;
  return false;
}

/* What separates the token starting with c from the text out[0..o)
 * before it, when blanks, comments or line ends (gap 2) came between:
 * a line end around preprocessor directives (they end at the line end);
 * a space inside a directive (so "#define F (x)" stays an object-like
 * macro), between two words ("int x"), between punctuators that would
 * join ("- -") and before a literal ('L "s"' is not 'L"s"'); else
 * nothing ("f ( x ) {" is "f(x){"). */
static char separator(const char *out, size_t o, int gap, bool directive, char c) {
  if (gap == 2 && (directive || c == '#')) return '\n';
  if (directive) return ' ';
  char p = out[o - 1];
  bool pw = word_char(p), cw = word_char(c);
  if ((pw && cw) || c == '"' || c == '\'' || (!pw && !cw && joins(p, c))) return ' ';
  return 0;
}

/* The normalized text of s[0..n) into out (room for n + 1 bytes); its
 * length: the tokens as they are, separated as separator() says, with a
 * line end after each directive and at the end. */
static size_t normalize(const char *s, size_t n, char *out) {
  size_t o = 0, i = 0;
  int gap = 0;            /* 0 none, 1 blank, 2 line end */
  bool directive = false; /* the current output line is one */
  while (i < n) {
    char c = s[i];
    if (c == '\\' && i + 1 < n && s[i + 1] == '\n') { /* continued line */
      gap = gap ? gap : 1;
      i += 2;
    } else if (c == '/' && i + 1 < n && (s[i + 1] == '/' || s[i + 1] == '*')) {
      gap = gap ? gap : 1;
      i = comment(s, n, i);
    } else if (c == '\n') {
      gap = 2;
      i++;
    } else if (c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v') {
      gap = gap ? gap : 1;
      i++;
    } else {
      if (o == 0) {
        directive = c == '#';
      } else if (gap) {
        char sep = separator(out, o, gap, directive, c);
        if (sep) out[o++] = sep;
        if (sep == '\n') directive = c == '#';
      }
      gap = 0;
      if (c == '"' || c == '\'') i = literal(s, n, i, out, &o);
      else out[o++] = s[i++];
    }
  }
  if (o) out[o++] = '\n';
  return o;
}

/* ---- following includes ------------------------------------------------------- */

static bool is_file(const char *path) {
  struct stat sb;
  return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

/* Where #include "name" in file `from` points, into buf; false when
 * neither next to `from` nor in an include directory. */
static bool resolve(const walk *w, const char *from, const char *name, char *buf,
                    size_t size) {
  if (name[0] == '/') return snprintf(buf, size, "%s", name) < (int)size && is_file(buf);
  const char *slash = strrchr(from, '/');
  int dl = slash ? (int)(slash - from) : 1;
  if (snprintf(buf, size, "%.*s/%s", dl, slash ? from : ".", name) < (int)size && is_file(buf))
    return true;
  for (size_t i = 0; w->o && i < w->o->ninclude_dirs; i++)
    if (snprintf(buf, size, "%s/%s", w->o->include_dirs[i], name) < (int)size && is_file(buf))
      return true;
  return false;
}

static int visit(walk *w, const char *path, int depth);

/* Visit what the normalized text t[0..n) of `path` includes with "". */
static int includes(walk *w, const char *path, const char *t, size_t n, int depth) {
  for (const char *p = t, *end = t + n; p < end;) {
    const char *eol = memchr(p, '\n', (size_t)(end - p));
    const char *q = p;
    p = eol ? eol + 1 : end;
    if (*q++ != '#') continue;
    if (*q == ' ') q++;
    if (strncmp(q, "include", 7) != 0) continue;
    q += 7;
    if (*q == ' ') q++;
    const char *close = *q == '"' && eol ? memchr(q + 1, '"', (size_t)(eol - q - 1)) : NULL;
    if (!close || close == q + 1 || close - q > PATH_MAX) continue;
    char name[PATH_MAX + 1], found[PATH_MAX + 1];
    memcpy(name, q + 1, (size_t)(close - q - 1));
    name[close - q - 1] = '\0';
    if (!resolve(w, path, name, found, sizeof found)) continue;
    int rc = visit(w, found, depth + 1);
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}

/* Record path as hashed; false when it was already (or out of memory:
 * *rc set). */
static bool first_visit(walk *w, const char *path, int *rc) {
  char *real = realpath(path, NULL);
  if (!real) return true; /* read next, which says why */
  for (size_t i = 0; i < w->nseen; i++)
    if (strcmp(w->seen[i], real) == 0) {
      free(real);
      return false;
    }
  if (w->nseen == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 16;
    char **p = tg__realloc(w->seen, cap * sizeof *p);
    if (!p) {
      free(real);
      *rc = tg__error_set(w->err, TG_ENOMEM, "out of memory");
      return false;
    }
    w->seen = p;
    w->cap = cap;
  }
  w->seen[w->nseen++] = real;
  return true;
}

static int visit(walk *w, const char *path, int depth) {
  int rc = TG_OK;
  if (depth > MAX_DEPTH)
    return tg__error_set(w->err, TG_ELIMIT, "source file '%s': includes nested more than "
                         "%d deep", path, MAX_DEPTH);
  if (!first_visit(w, path, &rc)) return rc;
  if (w->nseen > MAX_FILES)
    return tg__error_set(w->err, TG_ELIMIT, "more than %d source files", MAX_FILES);
  char *text = NULL, *norm = NULL;
  size_t len = 0;
  rc = tg_read_file(path, "source file", MAX_FILE, &text, &len, w->err);
  if (rc != TG_OK) return rc;
  if (!(norm = tg__malloc(len + 1))) {
    free(text);
    return tg__error_set(w->err, TG_ENOMEM, "out of memory");
  }
  size_t n = normalize(text, len, norm);
  free(text);
  uint64_t n64 = n; /* length first: file boundaries are part of the stream */
  XXH3_128bits_update(w->st, &n64, 8);
  XXH3_128bits_update(w->st, norm, n);
  if (w->o && w->o->on_file) w->o->on_file(w->o->ctx, path);
  rc = includes(w, path, norm, n, depth);
  tg__free(norm);
  return rc;
}

int tg_code_id(const char *const *files, size_t nfiles, const tg_code_id_opts *opts,
               char out[TG_CODE_ID_LEN + 1], tg_error *err) {
  if (out) out[0] = '\0';
  if (!out || !files || nfiles == 0)
    return tg__error_set(err, TG_EINVAL, "code id: no source files");
  if (opts && opts->version != TG_CODE_ID_OPTS_V1)
    return tg__error_set(err, TG_EINVAL, "code id: options version %u is unknown",
                         opts->version);
  walk w = {opts, XXH3_createState(), NULL, 0, 0, err};
  if (!w.st) return tg__error_set(err, TG_ENOMEM, "out of memory");
  XXH3_128bits_reset(w.st);
  XXH3_128bits_update(w.st, "tgcodeid1", 9);
  int rc = TG_OK;
  for (size_t i = 0; i < nfiles && rc == TG_OK; i++) rc = visit(&w, files[i], 0);
  if (rc == TG_OK) {
    XXH128_hash_t h = XXH3_128bits_digest(w.st);
    tg_digest_hex((tg_digest){h.low64, h.high64}, out);
  }
  for (size_t i = 0; i < w.nseen; i++) free(w.seen[i]);
  tg__free(w.seen);
  XXH3_freeState(w.st);
  return rc;
}
