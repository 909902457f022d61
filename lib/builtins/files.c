/* lib/builtins/files.c: builtins that touch the file system: file,
 * read_text, glob, write_file. */
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "builtins/builtins_internal.h"

int tg__bi_read_file(tg_task_ctx *ctx, const char *fn, const char *path,
                     char **data, size_t *len) {
  /* O_NONBLOCK: a FIFO would otherwise block the open until a writer
   * comes, before fstat could refuse it. No effect on regular files. */
  int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return tg_task_fail(ctx, -errno, "%s: cannot open '%s': %s", fn, path,
                        strerror(errno));
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return tg_task_fail(ctx, TG_EINVAL, "%s: '%s' is not a regular file", fn,
                        path);
  }
  int rc = tg__read_fd(fd, (size_t)st.st_size, 0, data, len);
  close(fd);
  if (rc == TG_ENOMEM)
    return tg_task_fail(ctx, rc, "%s: out of memory reading '%s'", fn, path);
  if (rc != TG_OK)
    return tg_task_fail(ctx, rc, "%s: cannot read '%s': %s", fn, path, strerror(-rc));
  return TG_OK;
}

TG__BI(file) {
  (void)nargs;
  char *path = tg__bi_cstr(ctx, "file", 0, args[0]);
  if (path == NULL) return TG_EINVAL;
  char *data;
  size_t len;
  int rc = tg__bi_read_file(ctx, "file", path, &data, &len);
  tg__free(path);
  if (rc != TG_OK) return rc;
  *out = tg_bytes(data, len);
  tg__free(data);
  return *out ? TG_OK : tg_task_fail(ctx, TG_ENOMEM, "file: out of memory");
}

TG__BI(read_text) {
  (void)nargs;
  char *path = tg__bi_cstr(ctx, "read_text", 0, args[0]);
  if (path == NULL) return TG_EINVAL;
  char *data;
  size_t len;
  int rc = tg__bi_read_file(ctx, "read_text", path, &data, &len);
  if (rc == TG_OK && !tg__utf8_valid(data, len)) {
    rc = tg_task_fail(ctx, TG_EINVAL, "read_text: '%s' is not valid UTF-8",
                      path);
    tg__free(data);
  }
  tg__free(path);
  if (rc != TG_OK) return rc;
  *out = tg_str(data, len);
  tg__free(data);
  return *out ? TG_OK
              : tg_task_fail(ctx, TG_ENOMEM, "read_text: out of memory");
}

TG__BI(glob) {
  (void)nargs;
  char *pat = tg__bi_cstr(ctx, "glob", 0, args[0]);
  if (pat == NULL) return TG_EINVAL;
  glob_t g;
  int grc = glob(pat, 0, NULL, &g); /* glob sorts its matches */
  tg__free(pat);
  if (grc == GLOB_NOMATCH) {
    *out = tg_list_alloc(0);
    return *out ? TG_OK : TG_ENOMEM;
  }
  if (grc != 0)
    return tg_task_fail(ctx, grc == GLOB_NOSPACE ? TG_ENOMEM : TG_EIO,
                        "glob: cannot read a directory of the pattern");
  tg_value *list = tg_list_alloc(g.gl_pathc);
  int rc = list ? TG_OK : TG_ENOMEM;
  for (size_t i = 0; rc == TG_OK && i < g.gl_pathc; i++) {
    tg_value *s = tg_str_c(g.gl_pathv[i]);
    rc = s ? tg_list_init_item(list, i, s) : TG_EINVAL;
  }
  globfree(&g);
  if (rc != TG_OK) {
    tg_value_unref(list);
    return tg_task_fail(ctx, rc, "glob: a match is not valid UTF-8 or memory "
                        "ran out");
  }
  *out = list;
  return TG_OK;
}

TG__BI(write_file) {
  (void)nargs;
  char *path = tg__bi_cstr(ctx, "write_file", 0, args[0]);
  if (path == NULL) return TG_EINVAL;
  const tg_value *v = args[1];
  char *json = NULL;
  const char *data;
  size_t len;
  if (tg_value_type(v) == TG_STR) {
    data = tg_str_data(v, &len);
  } else if (tg_value_type(v) == TG_BYTES) {
    data = tg_bytes_data(v, &len);
  } else {
    int rc = tg_value_to_json(v, 0, &json, &len, NULL);
    if (rc != TG_OK) {
      tg__free(path);
      return tg_task_fail(ctx, rc, "write_file: cannot write the value as "
                          "JSON");
    }
    data = json;
  }
  /* No reader (another task, another run) ever sees a partial file. */
  int rc = tg__write_file_atomic(path, data, len, 0, NULL);
  free(json);
  if (rc != TG_OK) {
    rc = tg_task_fail(ctx, rc, "write_file: cannot write '%s': %s", path,
                      strerror(-rc));
    tg__free(path);
    return rc;
  }
  *out = tg_str_c(path);
  tg__free(path);
  return *out ? TG_OK : TG_ENOMEM;
}
