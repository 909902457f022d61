/* lib/util/utf8.c: UTF-8 validation (RFC 3629), with an ASCII fast path
 * because most keys and strings are ASCII. */
#include <string.h>

#include "internal.h"

size_t tg__utf8_valid_prefix(const char *str, size_t len) {
  const unsigned char *s = (const unsigned char *)str;
  size_t i = 0;
  while (i < len) {
    /* Skip 8 ASCII bytes at a time. */
    if (i + 8 <= len) {
      uint64_t w;
      memcpy(&w, s + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    unsigned c = s[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    size_t n;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) {
      n = 1;
      cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
      n = 2;
      cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
      n = 3;
      cp = c & 0x07;
    } else {
      return i; /* continuation byte, overlong lead, or > U+10FFFF */
    }
    if (len - i - 1 < n) return i;
    for (size_t k = 1; k <= n; k++) {
      unsigned cc = s[i + k];
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += n + 1;
  }
  return len;
}

bool tg__utf8_valid(const char *str, size_t len) {
  return tg__utf8_valid_prefix(str, len) == len;
}
