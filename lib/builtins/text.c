/* lib/builtins/text.c: builtins over text: lines, json. */
#include <string.h>

#include "builtins/builtins_internal.h"

/* Text of a str, or of bytes that are valid UTF-8. */
static const char *text_of(tg_task_ctx *ctx, const char *fn,
                           const tg_value *v, size_t *len) {
  if (tg_value_type(v) == TG_STR) return tg_str_data(v, len);
  if (tg_value_type(v) == TG_BYTES) {
    const char *s = tg_bytes_data(v, len);
    if (tg__utf8_valid(s, *len)) return s;
    tg_task_fail(ctx, TG_EINVAL, "%s: the bytes are not valid UTF-8", fn);
    return NULL;
  }
  tg__bi_type_error(ctx, fn, 0, "a str or bytes", v);
  return NULL;
}

static size_t count_lines(const char *s, size_t len) {
  size_t n = 0;
  for (const char *p = s, *end = s + len; p < end; n++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    p = nl ? nl + 1 : end;
  }
  return n;
}

TG__BI(lines) {
  (void)nargs;
  size_t len;
  const char *s = text_of(ctx, "lines", args[0], &len);
  if (s == NULL) return TG_EINVAL;
  size_t n = count_lines(s, len);
  tg_value *list = tg_list_alloc(n);
  if (list == NULL) return tg_task_fail(ctx, TG_ENOMEM, "lines: out of memory");
  const char *p = s, *end = s + len;
  for (size_t i = 0; i < n; i++) {
    const char *nl = memchr(p, '\n', (size_t)(end - p));
    const char *stop = nl ? nl : end;
    size_t l = (size_t)(stop - p);
    if (l > 0 && p[l - 1] == '\r') l--;
    /* Splitting at '\n' never cuts a UTF-8 sequence, so each piece is
     * valid. */
    tg_value *item = tg_str(p, l);
    if (item == NULL || tg_list_init_item(list, i, item) != TG_OK) {
      tg_value_unref(list);
      return tg_task_fail(ctx, TG_ENOMEM, "lines: out of memory");
    }
    p = stop + 1;
  }
  *out = list;
  return TG_OK;
}

TG__BI(json) {
  (void)nargs;
  size_t len;
  const char *s = text_of(ctx, "json", args[0], &len);
  if (s == NULL) return TG_EINVAL;
  tg_error e;
  tg_error_clear(&e);
  int rc = tg_value_from_json(s, len, out, &e);
  if (rc != TG_OK) return tg_task_fail(ctx, rc, "json: %s", e.msg);
  return TG_OK;
}
