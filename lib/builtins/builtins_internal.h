/* lib/builtins/builtins_internal.h: the builtin task functions, one
 * family per file, registered together by register.c. */
#ifndef TG_BUILTINS_INTERNAL_H
#define TG_BUILTINS_INTERNAL_H

#include "internal.h"
#include "tgraph/registry.h"

#define TG__BI(name)                                                       \
  int tg__bi_##name(tg_task_ctx *ctx, tg_value *const *args, size_t nargs, \
                    tg_value **out)

/* files.c */
TG__BI(file);
TG__BI(read_text);
TG__BI(glob);
TG__BI(write_file);
/* text.c */
TG__BI(lines);
TG__BI(json);
/* shell.c */
TG__BI(sh);
/* math.c */
TG__BI(sum);
TG__BI(add);
TG__BI(mul);
TG__BI(range);
/* collections.c */
TG__BI(len);
TG__BI(concat);
TG__BI(identity);
TG__BI(sleep_ms);
/* build.c */
TG__BI(build);

/* Fail the task because argument `i` of `fn` is not of the `want` type. */
int tg__bi_type_error(tg_task_ctx *ctx, const char *fn, size_t i,
                      const char *want, const tg_value *got);
/* The str at v as a NUL-terminated copy (free with tg__free), or NULL
 * after failing the task (not a str, holds a NUL, or out of memory). */
char *tg__bi_cstr(tg_task_ctx *ctx, const char *fn, size_t i,
                  const tg_value *v);
/* Read a whole file into a new buffer (tg__free) with a NUL after it;
 * fails the task with the path and the system error. */
int tg__bi_read_file(tg_task_ctx *ctx, const char *fn, const char *path,
                     char **data, size_t *len);

#endif /* TG_BUILTINS_INTERNAL_H */
