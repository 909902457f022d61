/* tests/test_graphjson.c: the graph.json reader through its public API:
 * what a good file builds, and the exact message and position of every
 * kind of mistake. */
#include <criterion/criterion.h>
#include <locale.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tgraph.h"
#include "tgraph/builtins.h"
#include "tgraph/graphjson.h"
#include "test_funcs.h"

static tg_registry *reg;

static void setup(void) {
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_OK);
}
static void teardown(void) { tg_registry_free(reg); }
TestSuite(graphjson, .init = setup, .fini = teardown);

static tg_error err;

/* Parse text; returns the status, the graph and info in *g / *info. */
static int parse(const char *text, tg_graph **g, tg_graphjson_info **info) {
  tg_error_clear(&err);
  return tg_graphjson_parse(text, strlen(text), "g.json", NULL, reg, NULL, g,
                            info, &err);
}

/* The text must fail with code and exactly this message. */
static void bad(const char *text, int code, const char *msg) {
  tg_graph *g = (tg_graph *)1;
  tg_graphjson_info *info = (tg_graphjson_info *)1;
  int rc = parse(text, &g, &info);
  cr_assert_eq(rc, code, "rc %s for %s (%s)", tg_err_name(rc), text, err.msg);
  cr_assert_null(g);
  cr_assert_null(info);
  cr_assert_str_eq(err.msg, msg);
}

/* Compute output i of a parsed graph as compact JSON into buf. */
static void output_json(tg_graph *g, tg_graphjson_info *info, size_t i,
                        char *buf, size_t size) {
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .workers = 1};
  tg_value *v;
  cr_assert_eq(tg_compute(g, &info->output_nodes[i], 1, &o, &v), TG_OK, "%s",
               tg_graph_errmsg(g));
  char *s;
  cr_assert_eq(tg_value_to_json(v, 0, &s, NULL, NULL), TG_OK);
  snprintf(buf, size, "%s", s);
  free(s);
  tg_value_unref(v);
}

/* Numbers read the same whatever the program's locale: under one with a
 * decimal comma (made here with localedef), 1.5 must not become 1. */
Test(graphjson, numbers_ignore_the_locale) {
  cr_assert(tgt_decimal_comma_locale(), "cannot make a decimal-comma locale with localedef");
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\","
                     " \"args\": [[1.5, -2.25e1, 0.5]]}}}",
                     &g, &info),
               TG_OK, "%s", err.msg);
  char out[64];
  output_json(g, info, 0, out, sizeof out);
  cr_assert_str_eq(out, "[1.5,-22.5,0.5]");
  tg_graphjson_info_free(info);
  tg_graph_free(g);
}

Test(graphjson, builds_refs_gets_nested_and_consts) {
  const char *text =
      "{\"tgraph\": 1,\n"
      " \"tasks\": {\n"
      "  \"n\": {\"fn\": \"concat\", \"args\": [[{\"ref\": \"s\"}, 1,"
      " {\"a\": {\"ref\": \"x\", \"get\": -1}}], [{\"const\": {\"ref\": \"zz\"}}]]},\n"
      "  \"x\": {\"fn\": \"range\", \"args\": [4], \"cache\": false, \"retries\": 2,"
      " \"timeout\": 1.5},\n"
      "  \"s\": {\"fn\": \"sum\", \"args\": [{\"ref\": \"x\"}]},\n"
      "  \"m\": {\"fn\": \"identity\", \"args\": [{\"k\": [1, {\"$bytes\": \"aGk=\"}]}]},\n"
      "  \"g\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"m\", \"get\": \"k\"}]}\n"
      " },\n"
      " \"outputs\": [\"n\", \"s\", \"g\"]\n}\n";
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse(text, &g, &info), TG_OK, "%s", err.msg);
  cr_assert_eq(info->ntasks, 5);
  cr_assert_str_eq(info->tasks[0].key, "n");
  cr_assert_eq(info->tasks[0].line, 3);
  cr_assert_eq(info->tasks[0].column, 3);
  cr_assert_str_eq(info->tasks[1].fn, "range");
  cr_assert_eq(info->tasks[1].cache, 0);
  cr_assert_eq(info->tasks[1].retries, 2);
  cr_assert_float_eq(info->tasks[1].timeout, 1.5, 1e-12);
  cr_assert_eq(info->tasks[2].cache, -1);
  cr_assert_eq(info->noutputs, 3);
  cr_assert_eq(tg_graph_size(g), 6); /* five tasks and one tg.build */
  cr_assert_neq(tg_graph_find(g, "n/args[0]"), TG_NODE_NONE);
  char buf[256];
  output_json(g, info, 0, buf, sizeof buf);
  cr_assert_str_eq(buf, "[6,1,{\"a\":3},{\"ref\":\"zz\"}]");
  output_json(g, info, 1, buf, sizeof buf);
  cr_assert_str_eq(buf, "6");
  output_json(g, info, 2, buf, sizeof buf);
  cr_assert_str_eq(buf, "[1,{\"$bytes\":\"aGk=\"}]");
  tg_graphjson_info_free(info);
  tg_graph_free(g);
}

Test(graphjson, write_file_is_never_cached) {
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse("{\"tgraph\": 1, \"tasks\": {\"w\": {\"fn\": \"write_file\", "
                     "\"args\": [\"p\", \"x\"], \"cache\": true}, \"s\": {\"fn\": "
                     "\"sh\", \"args\": [\"true\"], \"cache\": true}}}",
                     &g, &info),
               TG_OK, "%s", err.msg);
  cr_assert_eq(info->tasks[0].cache, 0);
  cr_assert_eq(info->tasks[1].cache, 1);
  tg_graphjson_info_free(info);
  tg_graph_free(g);
}

Test(graphjson, build_node_names_never_take_a_user_key) {
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse("{\"tgraph\": 1, \"tasks\": {"
                     "\"x/args[0]\": {\"fn\": \"identity\", \"args\": [5]},"
                     "\"x\": {\"fn\": \"identity\", \"args\": [[{\"ref\": "
                     "\"x/args[0]\"}]]}}, \"outputs\": [\"x\"]}",
                     &g, &info),
               TG_OK, "%s", err.msg);
  cr_assert_eq(tg_graph_size(g), 3);
  char key[64];
  tg_node_key(g, info->tasks[0].node, key, sizeof key);
  cr_assert_str_eq(key, "x/args[0]");
  char buf[32];
  output_json(g, info, 0, buf, sizeof buf);
  cr_assert_str_eq(buf, "[5]");
  tg_graphjson_info_free(info);
  tg_graph_free(g);
}

Test(graphjson, default_outputs_are_the_sinks) {
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse("{\"tgraph\": 1, \"tasks\": {"
                     "\"a\": {\"fn\": \"identity\", \"args\": [1]},"
                     "\"b\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"a\"}]},"
                     "\"c\": {\"fn\": \"add\"}}}",
                     &g, &info),
               TG_OK, "%s", err.msg);
  cr_assert_eq(info->noutputs, 2);
  cr_assert_str_eq(info->outputs[0], "b");
  cr_assert_str_eq(info->outputs[1], "c");
  char buf[64];
  output_json(g, info, 1, buf, sizeof buf);
  cr_assert_str_eq(buf, "0");
  tg_graphjson_info_free(info);
  tg_graph_free(g);
}

Test(graphjson, syntax_errors_have_positions) {
  bad("", TG_EJSON, "g.json:1:1: the file is empty");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"args\": [1, 2,]}}}",
      TG_EJSON, "g.json:1:58: unexpected ']', expected a value");
  bad("{\"tgraph\": 1,\n \"tasks\": {\n  \"a\": {\"fn\": \"add\" \"args\": []}}}",
      TG_EJSON, "g.json:3:21: unexpected '\"', expected ',' or '}' in a task");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"args\": [01]}}}",
      TG_EJSON, "g.json:1:54: unexpected '1', numbers may not have leading zeros");
  bad("{\"tgraph\": 1, \"tasks\": {}} x", TG_EJSON,
      "g.json:1:28: unexpected 'x', expected the end of file");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"a\\qb\"}}}", TG_EJSON,
      "g.json:1:40: unexpected 'q', not a valid escape after '\\'");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"args\": ["
      "99999999999999999999]}}}",
      TG_EJSON, "g.json:1:53: integer does not fit in 64 bits");
  bad("{\"tgraph\": 1, \"tasks\": {\"\xc3\xa9\": {\"fn\": \"add\", \"args\": [tru]}}}",
      TG_EJSON, "g.json:1:53: unexpected 't', expected a value");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"args\": [\"\xff\"]}}}",
      TG_EJSON, "g.json:1:53: string is not valid UTF-8");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"args\": [[1, 2}]}}",
      TG_EJSON, "g.json:1:58: unexpected '}', expected ',' or ']' in a list");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"args\": [\"\\ud800\"]}}}",
      TG_EJSON, "g.json:1:54: high surrogate \\uD800 without a low one");
}

Test(graphjson, structure_errors) {
  bad("[1]", TG_EFORMAT,
      "g.json:1:1: a graph.json must be an object {\"tgraph\": 1, \"tasks\": {...}}");
  bad("{\"tasks\": {}}", TG_EFORMAT,
      "g.json:1:1: missing \"tgraph\": 1 (the format version)");
  bad("{\"tgraph\": 1}", TG_EFORMAT, "g.json:1:1: missing \"tasks\"");
  bad("{\"tgraph\": 2, \"tasks\": {}}", TG_EVERSION,
      "g.json:1:12: graph.json version 2 is not supported (this tgraph reads "
      "version 1)");
  bad("{\"tgraph\": 1, \"task\": {}}", TG_EFORMAT,
      "g.json:1:15: unknown field 'task' (a graph has tgraph, plugins, tasks "
      "and outputs)");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"arg\": []}}}",
      TG_EFORMAT,
      "g.json:1:44: unknown field 'arg' in task 'a' (a task has fn or map, "
      "args, over, chunksize, cache, retries, timeout and priority)");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"args\": []}}}", TG_EFORMAT,
      "g.json:1:25: task 'a' has no \"fn\" (or \"map\")");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": 3}}}", TG_EFORMAT,
      "g.json:1:37: \"fn\" must be a function name (a string)");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"cache\": 1}}}",
      TG_EFORMAT, "g.json:1:53: \"cache\" must be true or false");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"retries\": -1}}}",
      TG_EFORMAT, "g.json:1:55: \"retries\" must be an int from 0 to 1000");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": 5}}", TG_EFORMAT,
      "g.json:1:30: task 'a' must be an object {\"fn\": ..., \"args\": [...]}");
  bad("{\"tgraph\": 1, \"tasks\": {}, \"outputs\": [1]}", TG_EFORMAT,
      "g.json:1:40: \"outputs\" must be a list of strings");
}

/* A field name with a NUL in it (escaped as \u0000) is not the field its
 * first bytes spell. */
Test(graphjson, field_names_with_nul_are_unknown) {
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\\u0000x\": \"add\", \"args\": []}}}",
      TG_EFORMAT,
      "g.json:1:31: unknown field 'fn?x' in task 'a' (a task has fn or map, "
      "args, over, chunksize, cache, retries, timeout and priority)");
  bad("{\"tgraph\\u0000\": 1, \"tasks\": {}}", TG_EFORMAT,
      "g.json:1:2: unknown field 'tgraph?' (a graph has tgraph, plugins, tasks "
      "and outputs)");
}

Test(graphjson, duplicate_keys) {
  bad("{\"tgraph\": 1, \"tasks\": {\n\"a\": {\"fn\": \"add\"},\n\"a\": {\"fn\": \"add\"}}}",
      TG_EFORMAT, "g.json:3:1: duplicate task key 'a' (first at line 2)");
  bad("{\"tgraph\": 1, \"tgraph\": 1, \"tasks\": {}}", TG_EFORMAT,
      "g.json:1:15: duplicate key 'tgraph'");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"fn\": \"add\"}}}",
      TG_EFORMAT, "g.json:1:44: duplicate key 'fn'");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\", \"args\": "
      "[{\"k\": 1, \"k\": 2}]}}}",
      TG_EFORMAT, "g.json:1:67: duplicate key 'k'");
}

Test(graphjson, unknown_function_suggests) {
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"ad\", \"args\": [1, 2]}}}",
      TG_ENOFUNC, "g.json:1:37: unknown function 'ad' (did you mean 'add'?)");
}

Test(graphjson, wrong_argument_count) {
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"len\", \"args\": [1, 2]}}}",
      TG_EINVAL, "g.json:1:52: function 'len' takes 1 argument, got 2");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"write_file\"}}}", TG_EINVAL,
      "g.json:1:37: function 'write_file' takes 2 arguments, got 0");
}

Test(graphjson, refs_and_outputs_must_name_tasks) {
  bad("{\"tgraph\": 1, \"tasks\": {\"abc\": {\"fn\": \"identity\", \"args\": "
      "[[{\"ref\": \"abd\"}]]}}}",
      TG_EFORMAT, "g.json:1:61: ref to a missing task 'abd' (did you mean 'abc'?)");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\"}}, \"outputs\": [\"a\", "
      "\"zzzzz\"]}",
      TG_EFORMAT, "g.json:1:63: output 'zzzzz' is not a task");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\", \"args\": "
      "[{\"ref\": \"a\", \"x\": 1}]}}}",
      TG_EFORMAT, "g.json:1:71: a ref takes only \"ref\" and \"get\", not 'x'");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\", \"args\": "
      "[{\"ref\": \"a\", \"get\": 1.5}]}}}",
      TG_EFORMAT,
      "g.json:1:78: \"get\" must be an int (list index) or a string (map key)");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\", \"args\": "
      "[{\"x\": 1, \"ref\": \"a\"}]}}}",
      TG_EFORMAT,
      "g.json:1:67: \"ref\" must be the only key of its object (\"get\" may go "
      "with \"ref\"); wrap a literal map in {\"const\": ...}");
}

Test(graphjson, cycles_list_their_keys) {
  bad("{\"tgraph\": 1, \"tasks\": {\n"
      "  \"a\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"b\"}]},\n"
      "  \"b\": {\"fn\": \"identity\", \"args\": [[{\"ref\": \"c\"}]]},\n"
      "  \"c\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"a\"}]}}}",
      TG_ECYCLE, "g.json:4:36: cycle: a -> b -> c -> a");
  bad("{\"tgraph\": 1, \"tasks\": {\"s\": {\"fn\": \"identity\", \"args\": "
      "[{\"ref\": \"s\"}]}}}",
      TG_ECYCLE, "g.json:1:58: cycle: s -> s");
  /* The ref that closes the cycle is found again inside its task's
   * arguments, past a constant and an earlier ref. */
  bad("{\"tgraph\": 1, \"tasks\": {\n"
      "  \"x\": {\"fn\": \"identity\", \"args\": [1]},\n"
      "  \"a\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"b\"}]},\n"
      "  \"b\": {\"fn\": \"add\", \"args\": [1, [{\"ref\": \"x\"}, "
      "{\"k\": {\"ref\": \"a\"}}]]}}}",
      TG_ECYCLE, "g.json:4:55: cycle: a -> b -> a");
}

Test(graphjson, missing_plugin_is_reported_at_its_entry) {
  tg_graph *g;
  int rc = parse("{\"tgraph\": 1, \"plugins\": [\"nosuchplugin\"], \"tasks\": {}}",
                 &g, NULL);
  cr_assert_eq(rc, TG_ENOTFOUND);
  cr_assert(strncmp(err.msg, "g.json:1:27: plugin 'nosuchplugin' not found: "
                    "no libnosuchplugin.so in TGRAPH_PLUGIN_PATH", 86) == 0,
            "%s", err.msg);
  rc = parse("{\"tgraph\": 1, \"plugins\": [\"./nope/libx.so\"], \"tasks\": {}}",
             &g, NULL);
  cr_assert_eq(rc, -ENOENT);
  cr_assert_str_eq(err.msg, "g.json:1:27: plugin './nope/libx.so': No such file "
                   "or directory");
}

/* ONE_ADD, a one-task graph (a = add(1, 2)), written to a new temporary
 * file whose name goes to path (a mkstemp template). */
static const char ONE_ADD[] = "{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", "
                              "\"args\": [1, 2]}}}";
static void write_one_add(char *path) {
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, ONE_ADD, strlen(ONE_ADD)), (ssize_t)strlen(ONE_ADD));
  close(fd);
}

Test(graphjson, load_reads_files) {
  tg_graph *g;
  tg_error e;
  cr_assert_eq(tg_graphjson_load("/nonexistent/g.json", reg, NULL, &g, NULL, &e),
               -ENOENT);
  cr_assert_str_eq(e.msg, "/nonexistent/g.json: No such file or directory");
  char path[] = "/tmp/tg_gj_XXXXXX";
  write_one_add(path);
  tg_graphjson_info *info;
  cr_assert_eq(tg_graphjson_load(path, reg, NULL, &g, &info, &e), TG_OK, "%s",
               e.msg);
  char buf[32];
  output_json(g, info, 0, buf, sizeof buf);
  cr_assert_str_eq(buf, "3");
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  unlink(path);
}

/* ---- inputs that are not ordinary files, and the limits ---- */

Test(graphjson, load_refuses_devices_and_bounds_size) {
  tg_graph *g;
  tg_error e;
  cr_assert_eq(tg_graphjson_load("/dev/zero", reg, NULL, &g, NULL, &e), TG_EINVAL);
  cr_assert_str_eq(e.msg, "/dev/zero: a character device, not a regular file or a pipe");
  char path[] = "/tmp/tg_gj_XXXXXX";
  write_one_add(path);
  const char *text = ONE_ADD;
  tg_graphjson_opts o = {.version = TG_GRAPHJSON_OPTS_V2, .max_bytes = 10};
  cr_assert_eq(tg_graphjson_load(path, reg, &o, &g, NULL, &e), TG_ELIMIT);
  char want[128];
  snprintf(want, sizeof want, "%s: %zu bytes, more than the limit of 10", path,
           strlen(text));
  cr_assert_str_eq(e.msg, want);
  o.max_bytes = strlen(text); /* exactly the bound is fine */
  tg_graphjson_info *info;
  cr_assert_eq(tg_graphjson_load(path, reg, &o, &g, &info, &e), TG_OK, "%s", e.msg);
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  /* tg_read_file: the same reader, named in its messages. */
  char *data;
  size_t len;
  cr_assert_eq(tg_read_file(path, "list", 0, &data, &len, &e), TG_OK, "%s", e.msg);
  cr_assert_eq(len, strlen(text));
  cr_assert_str_eq(data, text);
  free(data);
  cr_assert_eq(tg_read_file("/dev/null", "list", 0, &data, &len, &e), TG_EINVAL);
  cr_assert_str_eq(e.msg, "list '/dev/null': a character device, not a regular file "
                          "or a pipe");
  unlink(path);
  /* A pipe past the bound stops at the bound. */
  int p[2];
  cr_assert_eq(pipe(p), 0);
  cr_assert_eq(write(p[1], "0123456789", 10), 10);
  close(p[1]);
  char dev[64];
  snprintf(dev, sizeof dev, "/proc/self/fd/%d", p[0]);
  cr_assert_eq(tg_read_file(dev, NULL, 9, &data, &len, &e), TG_ELIMIT);
  snprintf(want, sizeof want, "%s: more than the limit of 9 bytes", dev);
  cr_assert_str_eq(e.msg, want);
  close(p[0]);
}

/* A version 1 struct ends before max_bytes: not read (ASan sees a read
 * past the block), the default bound applies; other versions refused. */
Test(graphjson, opts_versions) {
  char path[] = "/tmp/tg_gj_XXXXXX";
  write_one_add(path);
  const char *text = ONE_ADD;
  tg_graph *g;
  tg_graphjson_info *info;
  tg_error e;
  size_t v1 = offsetof(tg_graphjson_opts, max_bytes);
  tg_graphjson_opts full = {.version = TG_GRAPHJSON_OPTS_V1, .max_bytes = 10};
  void *block = malloc(v1);
  cr_assert_not_null(block);
  memcpy(block, &full, v1);
  cr_assert_eq(tg_graphjson_load(path, reg, block, &g, &info, &e), TG_OK, "%s", e.msg);
  cr_expect_eq(info->ntasks, 1);
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  free(block);
  /* max_bytes of a version 1 struct is not its: the default bound */
  cr_assert_eq(tg_graphjson_load(path, reg, &full, &g, NULL, &e), TG_OK, "%s", e.msg);
  tg_graph_free(g);
  full.version = 3;
  cr_assert_eq(tg_graphjson_load(path, reg, &full, &g, NULL, &e), TG_EINVAL);
  cr_expect_str_eq(e.msg, "tg_graphjson_opts.version is 3, expected 1 or 2");
  cr_expect_null(g);
  cr_assert_eq(tg_graphjson_parse(text, strlen(text), "g.json", ".", reg, &full, &g, NULL,
                                  &e), TG_EINVAL);
  cr_expect_str_eq(e.msg, "tg_graphjson_opts.version is 3, expected 1 or 2");
  unlink(path);
}

Test(graphjson, byte_order_mark_is_skipped) {
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse("\xEF\xBB\xBF{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": "
                     "\"add\", \"args\": [1, 2]}}}", &g, &info), TG_OK, "%s", err.msg);
  cr_assert_eq(info->tasks[0].column, 25); /* "a" as without the mark */
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  bad("\xEF\xBB\xBF{\"tgraph\": 2}", TG_EVERSION,
      "g.json:1:12: graph.json version 2 is not supported (this tgraph reads "
      "version 1)");
  cr_assert_eq(err.offset, 14); /* offsets stay in bytes */
}

Test(graphjson, refs_nested_past_the_limit) {
  /* A constant deep beside a ref: its tg.build template would be too deep. */
  char text[4096];
  int n = snprintf(text, sizeof text, "{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": "
                   "\"add\", \"args\": [1, 2]}, \"b\": {\"fn\": \"identity\", "
                   "\"args\": [[{\"ref\": \"a\"}, ");
  int col = n + 1;
  for (int i = 0; i < 510; i++) text[n++] = '[';
  for (int i = 0; i < 510; i++) text[n++] = ']';
  snprintf(text + n, sizeof text - (size_t)n, "]]}}}");
  char want[256];
  snprintf(want, sizeof want, "g.json:1:%d: nesting too deep: a constant 510 levels "
           "deep inside 1 level of lists and maps that hold refs (twice those "
           "levels plus the constant's may be at most 511)", col);
  bad(text, TG_EDEPTH, want);
}

/* Task positions on one long line (as Python's json.dump writes a graph)
 * count characters from the start of the line, for every task. */
Test(graphjson, positions_on_one_line) {
  size_t n = 3000, cap = n * 64 + 64, len = 0;
  char *text = malloc(cap);
  size_t *col = malloc(n * sizeof *col), chars = 0;
  len += (size_t)snprintf(text, cap, "{\"tgraph\": 1, \"tasks\": {");
  chars = len;
  for (size_t i = 0; i < n; i++) {
    if (i) len += (size_t)snprintf(text + len, cap - len, ", "), chars += 2;
    col[i] = chars + 1;
    /* every third key holds a two-byte character: one column */
    int w = snprintf(text + len, cap - len,
                     "\"%s%zu\": {\"fn\": \"identity\", \"args\": [%zu]}",
                     i % 3 ? "t" : "\xc3\xa9", i, i);
    len += (size_t)w;
    chars += (size_t)w - (i % 3 ? 0 : 1);
  }
  snprintf(text + len, cap - len, "}}");
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse(text, &g, &info), TG_OK, "%s", err.msg);
  cr_assert_eq(info->ntasks, n);
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(info->tasks[i].line, 1);
    cr_assert_eq(info->tasks[i].column, col[i], "task %zu: column %u, not %zu", i,
                 info->tasks[i].column, col[i]);
  }
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  free(text);
  free(col);
}

/* Write text to a new file; its path in path. */
static void write_graph_file(char *path, const char *text, size_t len) {
  int fd = mkstemp(path);
  cr_assert_geq(fd, 0);
  cr_assert_eq(write(fd, text, len), (ssize_t)len);
  close(fd);
}

/* A file that fills its last page exactly still loads (the reader needs
 * a NUL after the text), and an error past the first megabytes of a file
 * (whose pages the reader lets go as it passes them) has its exact
 * position. */
Test(graphjson, load_whole_pages_and_big_files) {
  long page = sysconf(_SC_PAGESIZE);
  char *text = malloc((size_t)page + 1);
  int n = snprintf(text, (size_t)page + 1, "{\"tgraph\": 1, \"tasks\": {\"a\": "
                   "{\"fn\": \"identity\", \"args\": [1]}}");
  memset(text + n, ' ', (size_t)page - (size_t)n - 1);
  text[page - 1] = '}';
  char path[] = "/tmp/tg_gj_page_XXXXXX";
  write_graph_file(path, text, (size_t)page);
  tg_graph *g;
  tg_graphjson_info *info;
  tg_error_clear(&err);
  cr_assert_eq(tg_graphjson_load(path, reg, NULL, &g, &info, &err), TG_OK, "%s",
               err.msg);
  cr_assert_eq(info->ntasks, 1);
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  unlink(path);
  free(text);

  size_t ntasks = 400000, cap = ntasks * 64 + 64, len = 0;
  char *big = malloc(cap);
  len += (size_t)snprintf(big, cap, "{\"tgraph\": 1, \"tasks\": {");
  for (size_t i = 0; i < ntasks; i++)
    len += (size_t)snprintf(big + len, cap - len, "%s\"t%zu\": {\"fn\": \"identity\", "
                            "\"args\": [%zu]}", i ? ",\n" : "", i, i);
  len += (size_t)snprintf(big + len, cap - len, ",\n\"x\": {\"fn\": \"nope\"}}}");
  cr_assert_gt(len, (size_t)16 << 20);
  char path2[] = "/tmp/tg_gj_big_XXXXXX";
  write_graph_file(path2, big, len);
  tg_error_clear(&err);
  cr_assert_eq(tg_graphjson_load(path2, reg, NULL, &g, &info, &err), TG_ENOFUNC);
  char want[128];
  snprintf(want, sizeof want, "%s:%zu:13: unknown function 'nope'", path2,
           ntasks + 1);
  cr_assert_eq(strncmp(err.msg, want, strlen(want)), 0, "%s", err.msg);
  unlink(path2);
  free(big);
}

/* "$schema" (for editors) is allowed at the top and not read. */
Test(graphjson, schema_uri_is_allowed) {
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse("{\"$schema\": \"https://tgraph.invalid/graph.schema.json\", "
                     "\"tgraph\": 1, \"tasks\": {}}", &g, &info), TG_OK, "%s", err.msg);
  cr_assert_eq(info->ntasks, 0);
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  bad("{\"$schema\": 5, \"tgraph\": 1, \"tasks\": {}}", TG_EFORMAT,
      "g.json:1:13: \"$schema\" must be a string (the schema's URI)");
  bad("{\"$schema\": \"a\", \"$schema\": \"b\", \"tgraph\": 1, \"tasks\": {}}",
      TG_EFORMAT, "g.json:1:18: duplicate key '$schema'");
}

/* A number with an integral value is an integer where one is asked for,
 * as JSON Schema has it. */
Test(graphjson, integral_numbers_are_integers) {
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse("{\"tgraph\": 1.0, \"tasks\": {\"r\": {\"fn\": \"range\", "
                     "\"args\": [4], \"retries\": 2.0}, \"x\": {\"fn\": \"identity\", "
                     "\"args\": [{\"ref\": \"r\", \"get\": 1e0}]}}, \"outputs\": [\"x\"]}",
                     &g, &info), TG_OK, "%s", err.msg);
  cr_assert_eq(info->tasks[0].retries, 2);
  char out[32];
  output_json(g, info, 0, out, sizeof out);
  cr_assert_str_eq(out, "1");
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  bad("{\"tgraph\": 1, \"tasks\": {\"r\": {\"fn\": \"range\", \"args\": [4]}, "
      "\"x\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"r\", \"get\": 1.5}]}}}",
      TG_EFORMAT, "g.json:1:113: \"get\" must be an int (list index) or a string "
      "(map key)");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"retries\": 2.5}}}",
      TG_EFORMAT, "g.json:1:55: \"retries\" must be an int from 0 to 1000");
  bad("{\"tgraph\": 1.5, \"tasks\": {}}", TG_EFORMAT,
      "g.json:1:12: \"tgraph\" must be 1");
}

/* An object whose only key starts with '$' is a value form whatever it
 * holds: refs inside are plain maps, "$" objects inside are what
 * tg_value_from_json makes of them; a bad form is an error at the object,
 * a syntax error inside it at its exact place. */
Test(graphjson, dollar_forms_are_values) {
  tg_graph *g;
  tg_graphjson_info *info;
  cr_assert_eq(parse("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\", "
                     "\"args\": [{\"$map\": {\"r\": {\"ref\": \"a\"}, \"$x\": 1}}]}, "
                     "\"b\": {\"fn\": \"identity\", \"args\": [{\"$map\": "
                     "{\"$foo\": {\"$float\": \"inf\"}}}]}, \"c\": {\"fn\": \"identity\", "
                     "\"args\": [{\"$x\": {\"ref\": \"a\"}, \"y\": 2}]}}, "
                     "\"outputs\": [\"a\", \"b\", \"c\"]}", &g, &info),
               TG_OK, "%s", err.msg);
  char out[128];
  output_json(g, info, 0, out, sizeof out);
  cr_assert_str_eq(out, "{\"r\":{\"ref\":\"a\"},\"$x\":1}");
  output_json(g, info, 1, out, sizeof out);
  cr_assert_str_eq(out, "{\"$map\":{\"$foo\":{\"$float\":\"inf\"}}}");
  output_json(g, info, 2, out, sizeof out); /* two keys: a map with a ref */
  cr_assert_str_eq(out, "{\"$x\":{\"r\":{\"ref\":\"a\"},\"$x\":1},\"y\":2}");
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  /* "$"-first objects with more keys, nested: maps holding refs and forms */
  cr_assert_eq(parse("{\"tgraph\": 1, \"tasks\": {\"r\": {\"fn\": \"identity\", "
                     "\"args\": [7]}, \"n\": {\"fn\": \"identity\", \"args\": "
                     "[{\"$a\": {\"$b\": {\"$float\": \"inf\"}, \"c\": {\"ref\": \"r\"}}, "
                     "\"d\": {\"$map\": {\"x\": {\"ref\": \"r\"}}}, \"e\": {\"ref\": \"r\"}}]}}, "
                     "\"outputs\": [\"n\"]}", &g, &info), TG_OK, "%s", err.msg);
  output_json(g, info, 0, out, sizeof out);
  cr_assert_str_eq(out, "{\"$a\":{\"$b\":{\"$float\":\"inf\"},\"c\":7},"
                   "\"d\":{\"x\":{\"ref\":\"r\"}},\"e\":7}");
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\", \"args\": "
      "[{\"$float\": \"banana\"}]}}}", TG_EFORMAT,
      "g.json:1:58: \"$float\" is not \"nan\", \"inf\" or \"-inf\" (at /$float)");
  bad("{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\", \"args\": "
      "[{\"$map\": {\"k\": [1 2]}}]}}}", TG_EJSON,
      "g.json:1:76: unexpected '2', expected ',' or ']' in a list");
}
