/* examples/plugins/wordcount.c: the wordcount plugin (libwordcount.so):
 * map-reduce word counting, as the graph.json examples use it.
 *
 *   wordcount.count(text)        {word: count} of one text (str or
 *                                bytes); words are runs of ASCII letters,
 *                                lowercased
 *   wordcount.merge(counts...)   the sum of several such maps (or of one
 *                                list of them)
 *   wordcount.top(counts, k)     the k most frequent words as [word, n]
 *                                pairs, most frequent first, ties by word
 *
 * All pure. The functions use only tgraph's public API and resolve it
 * against the program that loads the plugin.
 *
 * Their code id is this file's (the build passes TG_CODE_ID from `tgraph
 * code-id`, see meson.build): cached counts survive a rebuild of the
 * plugin with other compiler flags and go when this source changes.
 */
#include <stdlib.h>
#include <string.h>

#include "tgraph/registry.h"

static int add_count(tg_value *m, const char *w, size_t n, int64_t by) {
  const tg_value *old = tg_map_get(m, w, n);
  return tg_map_put(m, w, n, tg_int((old ? tg_value_int(old) : 0) + by));
}

static int count(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                 tg_value **out) {
  (void)nargs;
  size_t len;
  const char *s;
  if (tg_value_type(args[0]) == TG_STR) s = tg_str_data(args[0], &len);
  else if (tg_value_type(args[0]) == TG_BYTES) s = tg_bytes_data(args[0], &len);
  else return tg_task_fail(ctx, TG_ETYPE, "wordcount.count: needs text");
  tg_value *m = tg_map_new(0);
  char word[64];
  size_t w = 0;
  for (size_t i = 0; m != NULL && i <= len; i++) {
    char c = i < len ? s[i] : ' ';
    bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
    if (letter && w < sizeof word) word[w++] = (char)(c | 0x20);
    if (!letter && w > 0) {
      if (add_count(m, word, w, 1) != TG_OK) {
        tg_value_unref(m);
        m = NULL;
      }
      w = 0;
    }
  }
  if (m == NULL) return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  *out = m;
  return TG_OK;
}

static int merge_into(tg_value *m, const tg_value *c) {
  for (size_t i = 0; i < tg_map_len(c); i++) {
    size_t n;
    const char *k = tg_map_key_at(c, i, &n);
    int rc = add_count(m, k, n, tg_value_int(tg_map_value_at(c, i)));
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}

static int merge(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                 tg_value **out) {
  if (nargs == 1 && tg_value_type(args[0]) == TG_LIST) {
    const tg_value *list = args[0];
    args = tg_list_items(list);
    nargs = tg_list_len(list);
  }
  tg_value *m = tg_map_new(0);
  for (size_t i = 0; m != NULL && i < nargs; i++) {
    if (tg_value_type(args[i]) != TG_MAP) {
      tg_value_unref(m);
      return tg_task_fail(ctx, TG_ETYPE, "wordcount.merge: argument %zu is "
                          "not a map of counts", i + 1);
    }
    if (merge_into(m, args[i]) != TG_OK) {
      tg_value_unref(m);
      m = NULL;
    }
  }
  if (m == NULL) return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  *out = m;
  return TG_OK;
}

typedef struct entry {
  const char *word;
  size_t len;
  int64_t n;
} entry;

static int by_count(const void *a, const void *b) {
  const entry *x = a, *y = b;
  if (x->n != y->n) return x->n > y->n ? -1 : 1;
  size_t l = x->len < y->len ? x->len : y->len;
  int c = memcmp(x->word, y->word, l);
  return c != 0 ? c : (x->len > y->len) - (x->len < y->len);
}

static int top(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
               tg_value **out) {
  (void)nargs;
  const tg_value *m = args[0];
  if (tg_value_type(m) != TG_MAP || tg_value_type(args[1]) != TG_INT ||
      tg_value_int(args[1]) < 0)
    return tg_task_fail(ctx, TG_ETYPE, "wordcount.top: needs (counts, k)");
  size_t n = tg_map_len(m), k = (size_t)tg_value_int(args[1]);
  entry *e = malloc((n + 1) * sizeof *e);
  if (e == NULL) return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  for (size_t i = 0; i < n; i++) {
    e[i].word = tg_map_key_at(m, i, &e[i].len);
    e[i].n = tg_value_int(tg_map_value_at(m, i));
  }
  qsort(e, n, sizeof *e, by_count);
  if (k > n) k = n;
  tg_value *list = tg_list_alloc(k);
  for (size_t i = 0; list != NULL && i < k; i++)
    if (tg_list_init_item(list, i, tg_list_of(2, tg_str(e[i].word, e[i].len),
                                              tg_int(e[i].n))) != TG_OK) {
      tg_value_unref(list);
      list = NULL;
    }
  free(e);
  if (list == NULL) return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  *out = list;
  return TG_OK;
}

int tg_plugin_init(tg_registry *reg);

int tg_plugin_init(tg_registry *reg) {
  static const tg_func_def defs[] = {
      {.version = TG_FUNC_DEF_V2, .name = "wordcount.count", .fn_version = "1",
       .fn = count, .flags = TG_FUNC_PURE, .nargs = 1,
       .doc = "wordcount.count(text): {word: count}", .code_id = TG_CODE_ID_OR_NULL},
      {.version = TG_FUNC_DEF_V2, .name = "wordcount.merge", .fn_version = "1",
       .fn = merge, .flags = TG_FUNC_PURE, .nargs = -1,
       .doc = "wordcount.merge(counts...): summed counts", .code_id = TG_CODE_ID_OR_NULL},
      {.version = TG_FUNC_DEF_V2, .name = "wordcount.top", .fn_version = "1", .fn = top,
       .flags = TG_FUNC_PURE, .nargs = 2,
       .doc = "wordcount.top(counts, k): the k most frequent [word, n]",
       .code_id = TG_CODE_ID_OR_NULL},
  };
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    int rc = tg_registry_add(reg, &defs[i], NULL);
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}
