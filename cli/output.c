/* cli/output.c: `tgraph run --output DIR`: write each output to
 * DIR/NAME.tgv (tg_dump) and list what was written on stdout, one JSON
 * object per line, with the value itself only when it is small. Printing
 * a large result as JSON costs far more than computing it (a 4000x4000
 * f64 array is some 300 MB of text), so with --output the files carry the
 * values and stdout only says where they are. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

void cli_output_file_name(const char *key, char *out, size_t size) {
  size_t n = 0;
  for (const char *p = key; *p && n + 1 < size; p++, n++)
    out[n] = (*p == '/' || (n == 0 && *p == '.')) ? '_' : *p;
  out[n] = '\0';
}

/* Decimal digits of x, with its sign. */
static size_t int_digits(int64_t x) {
  uint64_t u = x < 0 ? 0 - (uint64_t)x : (uint64_t)x;
  size_t n = x < 0 ? 2 : 1;
  while (u >= 10) u /= 10, n++;
  return n;
}

/* A lower bound of the bytes of v's compact JSON, exact enough to tell
 * "more than limit" without writing the JSON: it stops counting once past
 * limit, so a long list or a large array costs almost nothing. */
static size_t json_size_at_least(const tg_value *v, size_t limit) {
  size_t len, n;
  switch (tg_value_type(v)) {
    case TG_NULL: return 4;
    case TG_BOOL: return tg_value_bool(v) ? 4 : 5;
    case TG_INT: return int_digits(tg_value_int(v));
    case TG_FLOAT: return 3; /* always a '.' or an 'e': "1.0" */
    case TG_STR: tg_str_data(v, &len); return len + 2;
    case TG_BYTES: tg_bytes_data(v, &len); return len / 3 * 4 + 12;
    case TG_NDARRAY: return tg_ndarray_size(v) + 30; /* a digit per item */
    case TG_LIST: /* brackets, and commas between the items */
      n = tg_list_len(v) ? 1 + tg_list_len(v) : 2;
      for (size_t i = 0; i < tg_list_len(v) && n <= limit; i++)
        n += json_size_at_least(tg_list_items(v)[i], limit);
      return n;
    case TG_MAP: /* braces, and per entry "key": and a comma but one */
      n = tg_map_len(v) ? 1 : 2;
      for (size_t i = 0; i < tg_map_len(v) && n <= limit; i++) {
        size_t klen;
        tg_map_key_at(v, i, &klen);
        n += klen + 4 + json_size_at_least(tg_map_value_at(v, i), limit);
      }
      return n;
  }
  return 0;
}

/* v's compact JSON when it is at most CLI_OUTPUT_INLINE_MAX bytes (the
 * caller frees it), else NULL. */
static char *small_json(const tg_value *v) {
  if (json_size_at_least(v, CLI_OUTPUT_INLINE_MAX) > CLI_OUTPUT_INLINE_MAX)
    return NULL;
  char *json = NULL;
  size_t len = 0;
  if (tg_value_to_json(v, 0, &json, &len, NULL) != TG_OK) return NULL;
  if (len <= CLI_OUTPUT_INLINE_MAX) return json;
  free(json);
  return NULL;
}

/* {"key":K,"file":F,"bytes":N,"type":T[,"value":V]} and a newline. */
static void list_one(const char *key, const char *path, uint64_t bytes,
                     const tg_value *v) {
  char what[256];
  cli_describe_value(v, what, sizeof what);
  fputs("{\"key\":", stdout);
  cli_json_string(stdout, key);
  fputs(",\"file\":", stdout);
  cli_json_string(stdout, path);
  printf(",\"bytes\":%llu,\"type\":", (unsigned long long)bytes);
  cli_json_string(stdout, what);
  char *json = small_json(v);
  if (json != NULL) printf(",\"value\":%s", json);
  free(json);
  fputs("}\n", stdout);
}

int cli_output_write(const char *dir, const tg_graphjson_info *info,
                     tg_value *const *results) {
  if (mkdir(dir, 0777) != 0 && errno != EEXIST) {
    cli_error("cannot create '%s': %s", dir, strerror(errno));
    return CLI_USAGE;
  }
  for (size_t i = 0; i < info->noutputs; i++) {
    if (results[i] == NULL) continue; /* failed (--keep-going): no file */
    char name[512], path[4096 + 600];
    cli_output_file_name(info->outputs[i], name, sizeof name);
    snprintf(path, sizeof path, "%s/%s.tgv", dir, name);
    tg_error err;
    tg_error_clear(&err);
    struct stat st;
    if (tg_dump(results[i], path, NULL, &err) != TG_OK) {
      cli_error("cannot write '%s': %s", path, err.msg);
      return CLI_USAGE;
    }
    if (stat(path, &st) != 0) {
      cli_error("cannot read '%s' back: %s", path, strerror(errno));
      return CLI_USAGE;
    }
    list_one(info->outputs[i], path, (uint64_t)st.st_size, results[i]);
    if (cli_verbosity > 0) cli_info("wrote %s", path);
  }
  return fflush(stdout) == 0 ? -1 : CLI_USAGE;
}
