/* lib/json/position.c: turning byte offsets into "FILE:LINE:COLUMN"
 * messages. Offsets are recorded while parsing; lines are counted only
 * when an error is reported, so the fast path pays nothing for them. */
#include <stdio.h>
#include <string.h>

#include "json/gj_internal.h"

bool tg__gj_bom(const char *text, size_t len) {
  return len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0;
}

void tg__gj_position(const char *text, size_t off, unsigned *line,
                     unsigned *col) {
  unsigned l = 1;
  size_t start = 0;
  for (const char *p = text, *end = text + off;
       (p = memchr(p, '\n', (size_t)(end - p))) != NULL; p++) {
    l++;
    start = (size_t)(p - text) + 1;
  }
  unsigned c = 1;
  if (start == 0 && off >= 3 && tg__gj_bom(text, off)) start = 3;
  for (size_t i = start; i < off; i++) /* count characters, not bytes */
    c += ((unsigned char)text[i] & 0xC0) != 0x80;
  *line = l;
  *col = c;
}

int tg__gj_fail(gj_doc *d, size_t off, int code, const char *fmt, ...) {
  if (d->err == NULL) return code;
  if (off > d->len) off = d->len;
  char msg[224];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  unsigned line, col;
  tg__gj_position(d->text, off, &line, &col);
  tg__error_set(d->err, code, "%s:%u:%u: %s", d->name, line, col, msg);
  d->err->offset = off;
  d->err->has_offset = 1;
  return code;
}
