/* lib/registry/origin.c: where a registered function's code comes from
 * (this program, a plugin file, this library's builtins), and how that
 * identity is named in messages. Workers compare it with a run's before
 * computing anything for the run. */
#include <stdio.h>
#include <string.h>

#include "registry/registry_internal.h"
#include "build_id.h" /* TG__SOURCE_DIGEST, generated from the library's sources */

void tg__func_set_origin(const tg_func *f, tg_digest d, const char *file) {
  tg_func *m = (tg_func *)f; /* registry-owned: written before any use */
  m->origin = d;
  m->has_origin = true;
  m->kind = TG__ORIGIN_PLUGIN;
  const char *base = file ? strrchr(file, '/') : NULL;
  snprintf(m->origin_file, sizeof m->origin_file, "%s", base ? base + 1 : file ? file : "");
}

void tg__func_set_builtin(const tg_func *f) {
  ((tg_func *)f)->kind = TG__ORIGIN_BUILTIN;
}

const char *tg__library_build(void) {
  return TG__LIBRARY_VERSION "+" TG__SOURCE_DIGEST;
}

char *tg__code_id_text(const char *id, char *buf, size_t size) {
  if (id && *id) snprintf(buf, size, "code id '%s'", id);
  else snprintf(buf, size, "no code id");
  return buf;
}

char *tg__func_origin_text(uint8_t kind, const char *file, tg_digest d,
                           const char *build, const char *program_what,
                           char *buf, size_t size) {
  char hex[33];
  if (kind == TG__ORIGIN_PLUGIN) {
    tg_digest_hex(d, hex);
    if (file && *file) snprintf(buf, size, "comes from plugin %s (digest %s)", file, hex);
    else snprintf(buf, size, "comes from a plugin (digest %s)", hex);
  } else if (kind == TG__ORIGIN_BUILTIN) {
    snprintf(buf, size, "is a builtin of tgraph %s", build);
  } else {
    snprintf(buf, size, "is compiled into %s", program_what);
  }
  return buf;
}
