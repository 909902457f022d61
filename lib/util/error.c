/* lib/util/error.c: status code names and descriptions, and the helpers
 * that fill a caller's tg_error. */
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *tg_strerror(int code) {
  if (code == TG_OK) return "success";
  switch (code) {
#define TG__ERR_DESC(name, value, desc) \
  case TG_##name:                       \
    return desc;
    TG_ERR_MAP(TG__ERR_DESC)
#undef TG__ERR_DESC
    default:
      break;
  }
  /* Other negative values are -errno from a system call; strerror()'s
   * table is static in glibc for valid numbers. */
  if (code < 0 && code > -4096) return strerror(-code);
  return "unknown error";
}

const char *tg_err_name(int code) {
  if (code == TG_OK) return "TG_OK";
  switch (code) {
#define TG__ERR_NAME(name, value, desc) \
  case TG_##name:                       \
    return "TG_" #name;
    TG_ERR_MAP(TG__ERR_NAME)
#undef TG__ERR_NAME
    default:
      return "TG_UNKNOWN";
  }
}

void tg_error_clear(tg_error *err) {
  if (!err) return;
  err->code = TG_OK;
  err->offset = 0;
  err->has_offset = 0;
  err->msg[0] = '\0';
}

int tg__error_vset(tg_error *err, int code, const char *fmt, va_list ap) {
  if (!err) return code;
  err->code = code;
  err->offset = 0;
  err->has_offset = 0;
  vsnprintf(err->msg, sizeof err->msg, fmt, ap);
  return code;
}

int tg__error_set(tg_error *err, int code, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  tg__error_vset(err, code, fmt, ap);
  va_end(ap);
  return code;
}

int tg__error_set_at(tg_error *err, int code, size_t offset, const char *fmt,
                     ...) {
  if (!err) return code;
  va_list ap;
  va_start(ap, fmt);
  tg__error_vset(err, code, fmt, ap);
  va_end(ap);
  size_t n = strlen(err->msg);
  if (n < sizeof err->msg)
    snprintf(err->msg + n, sizeof err->msg - n, " at offset %zu", offset);
  err->offset = offset;
  err->has_offset = 1;
  return code;
}
