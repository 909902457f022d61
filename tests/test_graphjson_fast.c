/* tests/test_graphjson_fast.c: what the graph.json reader's fast paths
 * must keep exact: node keys indexed in one pass after the build (every
 * task and tg.build node found by its key), strings and whitespace read a
 * word at a time (errors at the exact byte, UTF-8 checked past long ASCII
 * runs), and columns counted a word at a time. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tgraph.h"
#include "tgraph/builtins.h"
#include "tgraph/graphjson.h"

static tg_registry *reg;
static tg_error err;

static void setup(void) {
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_OK);
}
static void teardown(void) { tg_registry_free(reg); }
TestSuite(graphjson_fast, .init = setup, .fini = teardown);

static int parse(const char *text, tg_graph **g, tg_graphjson_info **info) {
  tg_error_clear(&err);
  return tg_graphjson_parse(text, strlen(text), "g.json", NULL, reg, NULL, g,
                            info, &err);
}

static void bad(const char *text, int code, const char *msg) {
  tg_graph *g = NULL;
  tg_graphjson_info *info = NULL;
  int rc = parse(text, &g, &info);
  cr_assert_eq(rc, code, "rc %s (%s)", tg_err_name(rc), err.msg);
  cr_assert_null(g);
  cr_assert_null(info);
  cr_assert_str_eq(err.msg, msg);
}

static int64_t compute_int(tg_graph *g, tg_node n) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .workers = 1};
  tg_value *v;
  cr_assert_eq(tg_compute(g, &n, 1, &o, &v), TG_OK, "%s", tg_graph_errmsg(g));
  int64_t i = tg_value_int(v);
  tg_value_unref(v);
  return i;
}

Test(graphjson_fast, keys_found_after_load) {
  const char *text =
      "{\"tgraph\": 1, \"tasks\": {"
      "\"a\": {\"fn\": \"identity\", \"args\": [1]}, "
      "\"b/args[0]\": {\"fn\": \"identity\", \"args\": [2]}, "
      "\"b\": {\"fn\": \"sum\", \"args\": [[{\"ref\": \"a\"}, {\"ref\": \"b/args[0]\"}]]}, "
      "\"c\": {\"fn\": \"sum\", \"args\": [[{\"ref\": \"a\"}, 5]]}}}";
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse(text, &g, &info), TG_OK, "%s", err.msg);
  /* a, b/args[0], b's tg.build (its name taken: generated), b, c's
   * tg.build "c/args[0]", c */
  cr_assert_eq(tg_graph_size(g), 6);
  for (size_t i = 0; i < info->ntasks; i++)
    cr_assert_eq(tg_graph_find(g, info->tasks[i].key), info->tasks[i].node, "%s",
                 info->tasks[i].key);
  tg_node cb = tg_graph_find(g, "c/args[0]");
  cr_assert_neq(cb, TG_NODE_NONE);
  cr_assert_str_eq(tg_func_name(tg_node_func(g, cb)), "tg.build");
  cr_assert_eq(tg_graph_find(g, "b/args[0]"), info->tasks[1].node);
  cr_assert_eq(tg_graph_find(g, "d"), TG_NODE_NONE);
  cr_assert_eq(compute_int(g, info->tasks[2].node), 3);
  cr_assert_eq(compute_int(g, info->tasks[3].node), 6);
  /* The index takes adds after the load as before. */
  tg_node_opts o = {TG_NODE_OPTS_V1, "e", -1, -1, 0, 0};
  tg_node e;
  tg_arg arg = tg_arg_node(info->tasks[0].node);
  cr_assert_eq(tg_graph_add(g, "identity", &arg, 1, &o, &e), TG_OK);
  cr_assert_eq(tg_graph_find(g, "e"), e);
  o.key = "c/args[0]";
  cr_assert_eq(tg_graph_add(g, "identity", &arg, 1, &o, &e), TG_EEXIST);
  o.key = "a";
  cr_assert_eq(tg_graph_add(g, "identity", &arg, 1, &o, &e), TG_EEXIST);
  tg_graphjson_info_free(info);
  tg_graph_free(g);
}

Test(graphjson_fast, many_keys_found) {
  enum { N = 20000 };
  char *text = malloc((size_t)N * 64 + 128), *p = text;
  cr_assert_not_null(text);
  if (!text) return; /* (gcc does not know the assertion ends the test) */
  p += sprintf(p, "{\"tgraph\": 1, \"tasks\": {");
  for (int i = 0; i < N; i++)
    p += sprintf(p, "%s\"key-%d\": {\"fn\": \"identity\", \"args\": [%d]}",
                 i ? ", " : "", i, i);
  strcpy(p, "}}");
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse(text, &g, &info), TG_OK, "%s", err.msg);
  cr_assert_eq(info->ntasks, N);
  for (size_t i = 0; i < info->ntasks; i++)
    cr_assert_eq(tg_graph_find(g, info->tasks[i].key), info->tasks[i].node);
  char key[32];
  snprintf(key, sizeof key, "key-%d", N);
  cr_assert_eq(tg_graph_find(g, key), TG_NODE_NONE);
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  free(text);
}

#define HEAD "{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\", \"args\": ["

Test(graphjson_fast, long_strings_exact_errors) {
  /* HEAD is 57 characters: the string opens at column 58. */
  bad(HEAD "\"abcdefghijklmnop\x01\"]}}}", TG_EJSON,
      "g.json:1:75: unexpected byte 0x01, control characters must be escaped");
  bad(HEAD "\"abcdefghijkl\xff\"]}}}", TG_EJSON,
      "g.json:1:58: string is not valid UTF-8");
  bad(HEAD "\"abcdefghijklmnopqrstuvwx\xc3\"]}}}", TG_EJSON,
      "g.json:1:58: string is not valid UTF-8");
  bad(HEAD "\"abcdefghijklmnop", TG_EJSON,
      "g.json:1:75: unexpected end of file, in a string");
  bad("{\"tgraph\": 1,\n                    x}", TG_EJSON,
      "g.json:2:21: unexpected 'x', expected a string");
}

Test(graphjson_fast, long_strings_read_whole) {
  const char *text = "{\"tgraph\": 1,\r\n        \t        \"tasks\": {"
                     "\"abcdefghij\xc3\xa9klmnopqrstuvwxyz\": {\"fn\": \"identity\","
                     "                 \"args\": [\"0123456789\\n0123456789\"]}}}";
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse(text, &g, &info), TG_OK, "%s", err.msg);
  cr_assert_str_eq(info->tasks[0].key, "abcdefghij\xc3\xa9klmnopqrstuvwxyz");
  cr_assert_eq(info->tasks[0].line, 2);
  cr_assert_eq(info->tasks[0].column, 28);
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .workers = 1};
  tg_value *v;
  cr_assert_eq(tg_compute(g, &info->tasks[0].node, 1, &o, &v), TG_OK);
  size_t n;
  const char *s = tg_str_data(v, &n);
  cr_assert_eq(n, 21);
  cr_assert_eq(memcmp(s, "0123456789\n0123456789", n), 0);
  tg_value_unref(v);
  tg_graphjson_info_free(info);
  tg_graph_free(g);
}

Test(graphjson_fast, columns_after_multibyte_keys) {
  const char *text =
      "{\"tgraph\": 1, \"tasks\": {\"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\": "
      "{\"fn\": \"identity\", \"args\": [1]}, \"x\": {\"fn\": \"identity\", \"args\": [2]}}}";
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse(text, &g, &info), TG_OK, "%s", err.msg);
  cr_assert_eq(info->tasks[0].column, 25);
  cr_assert_eq(info->tasks[1].line, 1);
  cr_assert_eq(info->tasks[1].column, 67); /* characters, not bytes */
  tg_graphjson_info_free(info);
  tg_graph_free(g);
}
