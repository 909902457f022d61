/* lib/builtins/register.c: the table of builtins and
 * tg_registry_add_builtins(). */
#include <stdio.h>
#include <string.h>

#include "builtins/builtins_internal.h"
#include "registry/registry_internal.h"
#include "tgraph/builtins.h"

typedef struct bi_entry {
  const char *name;
  tg_task_fn fn;
  unsigned flags;
  int nargs;
  const char *doc;
} bi_entry;

#define P TG_FUNC_PURE
#define SRC (TG_FUNC_PURE | TG_FUNC_FILE_SOURCE) /* keyed by the file's content */
static const bi_entry entries[] = {
    {"file", tg__bi_file, SRC, 1, "file(path): the file's bytes"},
    {"read_text", tg__bi_read_text, SRC, 1, "read_text(path): the file as text"},
    {"glob", tg__bi_glob, 0, 1, "glob(pattern): sorted matching paths"},
    {"write_file", tg__bi_write_file, 0, 2,
     "write_file(path, data): write data, return path"},
    {"lines", tg__bi_lines, P, 1, "lines(text): list of lines"},
    {"json", tg__bi_json, P, 1, "json(text): the parsed JSON value"},
    {"sh", tg__bi_sh, 0, -1,
     "sh(cmd, arg...) or sh({cmd, args, stdin, text}): stdout of "
     "/bin/sh -c cmd, bytes (a UTF-8 str with \"text\": true)"},
    {"sum", tg__bi_sum, P, 1, "sum(list): sum of numbers"},
    {"add", tg__bi_add, P, -1, "add(x, y, ...): sum of the arguments"},
    {"mul", tg__bi_mul, P, -1, "mul(x, y, ...): product of the arguments"},
    {"len", tg__bi_len, P, 1, "len(x): length of a list, map, str, bytes"},
    {"range", tg__bi_range, P, -1, "range([start,] stop[, step]): ints"},
    {"concat", tg__bi_concat, P, -1, "concat(x, y, ...): join lists or strs"},
    {"sleep_ms", tg__bi_sleep_ms, 0, 1, "sleep_ms(ms): sleep, return ms"},
    {"identity", tg__bi_identity, P, 1, "identity(x): x"},
    {"tg.build", tg__bi_build, P | TG_FUNC_INTERNAL, -1,
     "tg.build(template, input...): nest task results in a value"},
};
#undef P
#undef SRC

int tg_registry_add_builtins(tg_registry *reg) {
  if (reg == NULL) return TG_EINVAL;
  for (size_t i = 0; i < sizeof entries / sizeof entries[0]; i++) {
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = entries[i].name,
                     .fn_version = "1", .fn = entries[i].fn,
                     .flags = entries[i].flags, .nargs = entries[i].nargs,
                     .doc = entries[i].doc};
    const tg_func *f;
    int rc = tg_registry_add(reg, &d, &f);
    if (rc != TG_OK) return rc;
    tg__func_set_builtin(f);
  }
  return TG_OK;
}

int tg__bi_type_error(tg_task_ctx *ctx, const char *fn, size_t i,
                      const char *want, const tg_value *got) {
  return tg_task_fail(ctx, TG_ETYPE, "%s: argument %zu must be %s, not %s",
                      fn, i + 1, want, tg_type_name(tg_value_type(got)));
}

char *tg__bi_cstr(tg_task_ctx *ctx, const char *fn, size_t i,
                  const tg_value *v) {
  if (tg_value_type(v) != TG_STR) {
    tg__bi_type_error(ctx, fn, i, "a str", v);
    return NULL;
  }
  size_t len;
  const char *s = tg_str_data(v, &len);
  if (memchr(s, '\0', len) != NULL) {
    tg_task_fail(ctx, TG_EINVAL, "%s: argument %zu contains a NUL byte", fn,
                 i + 1);
    return NULL;
  }
  char *c = tg__malloc(len + 1);
  if (c == NULL) {
    tg_task_fail(ctx, TG_ENOMEM, "%s: out of memory", fn);
    return NULL;
  }
  memcpy(c, s, len);
  c[len] = '\0';
  return c;
}
