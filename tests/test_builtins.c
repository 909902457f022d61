/* tests/test_builtins.c: every builtin through the public API: a graph of
 * one call, computed on the sync backend, with exact results and the
 * exact text of each error. */
#include <criterion/criterion.h>
#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tgraph.h"
#include "tgraph/builtins.h"
#include "test_funcs.h"

static tg_registry *reg;
static char errmsg[512];
static char tmpdir[64];
static char *texts[64]; /* results of json(), freed by teardown */
static size_t ntexts;

static void setup(void) {
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_OK);
  strcpy(tmpdir, "/tmp/tg_builtins_XXXXXX");
  cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void) {
  for (size_t i = 0; i < ntexts; i++) free(texts[i]);
  tg_registry_free(reg);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
  cr_assert_eq(system(cmd), 0);
}

TestSuite(builtins, .init = setup, .fini = teardown);

/* Call fn on n constant arguments (taken); the result or NULL with
 * errmsg set to the graph's message. */
static tg_value *call(const char *fn, size_t n, ...) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_arg args[8];
  va_list ap;
  va_start(ap, n);
  for (size_t i = 0; i < n; i++) args[i] = tg_arg_value(va_arg(ap, tg_value *));
  va_end(ap);
  tg_node node;
  int rc = tg_graph_add(g, fn, args, n, NULL, &node);
  cr_assert_eq(rc, TG_OK, "add %s: %s", fn, tg_graph_errmsg(g));
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .workers = 1};
  tg_value *res = NULL;
  errmsg[0] = '\0';
  if (tg_compute(g, &node, 1, &o, &res) != TG_OK)
    snprintf(errmsg, sizeof errmsg, "%s", tg_graph_errmsg(g));
  tg_graph_free(g);
  return res;
}

/* The result as compact JSON, valid until the test ends. */
static const char *json(tg_value *v) {
  cr_assert_not_null(v, "call failed: %s", errmsg);
  char *s;
  cr_assert_eq(tg_value_to_json(v, 0, &s, NULL, NULL), TG_OK);
  tg_value_unref(v);
  cr_assert_lt(ntexts, 64);
  return texts[ntexts++] = s;
}

/* The call fails and its message contains `want`. */
static void fails_with(tg_value *v, const char *want) {
  cr_assert_null(v);
  cr_assert(strstr(errmsg, want) != NULL, "message '%s' lacks '%s'", errmsg,
            want);
}

static char *path_in(const char *name) {
  static char buf[4][128];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, 128, "%s/%s", tmpdir, name);
  return p;
}

static void write_text(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

Test(builtins, registry_lists_purity_and_arity) {
  const tg_func *f = tg_registry_find(reg, "file");
  cr_assert_eq(tg_func_flags(f), TG_FUNC_PURE | TG_FUNC_FILE_SOURCE);
  cr_assert_eq(tg_func_nargs(f), 1);
  cr_assert_eq(tg_func_flags(tg_registry_find(reg, "read_text")),
               TG_FUNC_PURE | TG_FUNC_FILE_SOURCE);
  cr_assert_eq(tg_func_flags(tg_registry_find(reg, "lines")), TG_FUNC_PURE);
  cr_assert_eq(tg_func_flags(tg_registry_find(reg, "sh")) & TG_FUNC_PURE, 0);
  cr_assert_eq(tg_func_flags(tg_registry_find(reg, "write_file")), 0);
  cr_assert_eq(tg_func_flags(tg_registry_find(reg, "sleep_ms")), 0);
  cr_assert_eq(tg_func_flags(tg_registry_find(reg, "glob")), 0);
  cr_assert_eq(tg_func_nargs(tg_registry_find(reg, "add")), -1);
  const char *all[] = {"file", "glob", "read_text", "lines", "write_file",
                       "sh", "json", "sum", "add", "mul", "len", "range",
                       "concat", "sleep_ms", "identity", "tg.build"};
  for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
    cr_assert_not_null(tg_registry_find(reg, all[i]), "%s", all[i]);
  cr_assert_eq(tg_registry_count(reg), 16);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_EEXIST);
  cr_assert_eq(tg_registry_add_builtins(NULL), TG_EINVAL);
}

Test(builtins, file_reads_bytes) {
  write_text(path_in("a.txt"), "hi\n");
  cr_assert_str_eq(json(call("file", 1, tg_str_c(path_in("a.txt")))),
                   "{\"$bytes\":\"aGkK\"}");
  fails_with(call("file", 1, tg_str_c(path_in("none"))), "file: cannot open '");
  cr_assert(strstr(errmsg, "/none': No such file or directory") != NULL, "%s",
            errmsg);
  fails_with(call("file", 1, tg_int(3)), "file: argument 1 must be a str, not int");
  fails_with(call("file", 1, tg_str_c(tmpdir)), "' is not a regular file");
}

/* A FIFO is refused at once, not waited on for a writer. */
Test(builtins, file_refuses_a_fifo_without_waiting) {
  cr_assert_eq(mkfifo(path_in("fifo"), 0600), 0);
  alarm(5); /* a hang fails the test instead of stalling the suite */
  fails_with(call("file", 1, tg_str_c(path_in("fifo"))),
             "/fifo' is not a regular file");
  fails_with(call("read_text", 1, tg_str_c(path_in("fifo"))),
             "/fifo' is not a regular file");
  alarm(0);
}

Test(builtins, read_text_checks_utf8) {
  write_text(path_in("t.txt"), "h\xc3\xa9");
  cr_assert_str_eq(json(call("read_text", 1, tg_str_c(path_in("t.txt")))),
                   "\"h\xc3\xa9\"");
  write_text(path_in("bad.txt"), "\xff\xfe");
  fails_with(call("read_text", 1, tg_str_c(path_in("bad.txt"))),
             "/bad.txt' is not valid UTF-8");
}

Test(builtins, glob_sorts_and_allows_no_match) {
  write_text(path_in("b.txt"), "");
  write_text(path_in("a.txt"), "");
  write_text(path_in("c.dat"), "");
  char want[256];
  snprintf(want, sizeof want, "[\"%s/a.txt\",\"%s/b.txt\"]", tmpdir, tmpdir);
  cr_assert_str_eq(json(call("glob", 1, tg_str_c(path_in("*.txt")))), want);
  cr_assert_str_eq(json(call("glob", 1, tg_str_c(path_in("*.none")))), "[]");
}

Test(builtins, write_file_writes_str_bytes_and_json) {
  char want[200];
  snprintf(want, sizeof want, "\"%s\"", path_in("o1"));
  cr_assert_str_eq(json(call("write_file", 2, tg_str_c(path_in("o1")),
                             tg_str_c("text"))),
                   want);
  tg_value *v = call("file", 1, tg_str_c(path_in("o1")));
  cr_assert_str_eq(json(v), "{\"$bytes\":\"dGV4dA==\"}");
  json(call("write_file", 2, tg_str_c(path_in("o2")), tg_bytes("\0\1", 2)));
  struct stat st;
  cr_assert_eq(stat(path_in("o2"), &st), 0);
  cr_assert_eq(st.st_size, 2);
  cr_assert_eq(st.st_mode & 0777, 0644);
  /* Written through a temporary file renamed into place: none is left. */
  cr_assert_str_eq(json(call("glob", 1, tg_str_c(path_in("*.tmp.*")))), "[]");
  json(call("write_file", 2, tg_str_c(path_in("o3")),
            tg_list_of(2, tg_int(1), tg_str_c("a"))));
  cr_assert_str_eq(json(call("read_text", 1, tg_str_c(path_in("o3")))),
                   "\"[1,\\\"a\\\"]\"");
  fails_with(call("write_file", 2, tg_str_c(path_in("no/such/dir")),
                  tg_str_c("x")),
             "/no/such/dir': No such file or directory");
}

Test(builtins, lines_splits) {
  cr_assert_str_eq(json(call("lines", 1, tg_str_c("a\nb\r\nc\n"))),
                   "[\"a\",\"b\",\"c\"]");
  cr_assert_str_eq(json(call("lines", 1, tg_str_c("a\n\nb"))),
                   "[\"a\",\"\",\"b\"]");
  cr_assert_str_eq(json(call("lines", 1, tg_str_c(""))), "[]");
  cr_assert_str_eq(json(call("lines", 1, tg_bytes("x\ny", 3))), "[\"x\",\"y\"]");
  fails_with(call("lines", 1, tg_bytes("\xff", 1)),
             "lines: the bytes are not valid UTF-8");
  fails_with(call("lines", 1, tg_int(1)),
             "lines: argument 1 must be a str or bytes, not int");
}

Test(builtins, json_parses) {
  cr_assert_str_eq(json(call("json", 1, tg_str_c("{\"a\": [1, 2.5, null]}"))),
                   "{\"a\":[1,2.5,null]}");
  fails_with(call("json", 1, tg_str_c("[1,")), "json: ");
}

Test(builtins, sh_passes_arguments_and_returns_stdout) {
  cr_assert_str_eq(json(call("sh", 3, tg_str_c("printf '%s-%s' \"$1\" \"$2\""),
                             tg_str_c("a b"), tg_int(3))),
                   "{\"$bytes\":\"YSBiLTM=\"}"); /* "a b-3" */
  cr_assert_str_eq(json(call("sh", 2, tg_str_c("printf %s \"$1\""),
                             tg_list_of(1, tg_int(1)))),
                   "{\"$bytes\":\"WzFd\"}"); /* "[1]" */
}

/* Floats reach the shell as the shortest text that reads back to them,
 * with a '.' even under a decimal-comma locale (made here with localedef,
 * as test_graphjson does). */
Test(builtins, sh_float_arguments_ignore_the_locale) {
  cr_assert(tgt_decimal_comma_locale(), "cannot make a decimal-comma locale with localedef");
  cr_assert_str_eq(json(call("sh", 4, tg_str_c("printf '%s %s %s' \"$1\" \"$2\" \"$3\""),
                             tg_float(0.1), tg_float(-2.5e-7), tg_float(3.0))),
                   "{\"$bytes\":\"MC4xIC0yLjVlLTA3IDM=\"}"); /* "0.1 -2.5e-07 3" */
  setlocale(LC_NUMERIC, "C");
}

Test(builtins, sh_feeds_stdin) {
  tg_value *m = tg_map_new(2);
  tg_map_put_c(m, "cmd", tg_str_c("tr a-z A-Z"));
  tg_map_put_c(m, "stdin", tg_str_c("abc"));
  cr_assert_str_eq(json(call("sh", 1, m)), "{\"$bytes\":\"QUJD\"}");
  /* A big input, and one the command never reads (no SIGPIPE death). */
  size_t n = 1 << 20;
  char *big = malloc(n);
  memset(big, 'x', n);
  m = tg_map_new(2);
  tg_map_put_c(m, "cmd", tg_str_c("wc -c | tr -d ' '"));
  tg_map_put_c(m, "stdin", tg_bytes(big, n));
  cr_assert_str_eq(json(call("sh", 1, m)), "{\"$bytes\":\"MTA0ODU3Ngo=\"}");
  m = tg_map_new(2);
  tg_map_put_c(m, "cmd", tg_str_c("exit 0"));
  tg_map_put_c(m, "stdin", tg_bytes(big, n));
  cr_assert_str_eq(json(call("sh", 1, m)), "{\"$bytes\":\"\"}");
  free(big);
  m = tg_map_new(2);
  tg_map_put_c(m, "cmd", tg_str_c("cat"));
  tg_map_put_c(m, "args", tg_int(1));
  fails_with(call("sh", 1, m), "sh: \"args\" must be a list");
}

/* A command that writes while it reads (cat) must get all its input:
 * stdin is fed between reads of its output, never by one blocking write
 * that waits on a command itself blocked writing its full stdout pipe. */
Test(builtins, sh_streams_big_stdin_through_cat) {
  size_t n = (size_t)1 << 20;
  char *big = malloc(n);
  cr_assert_not_null(big);
  for (size_t i = 0; i < n; i++) big[i] = (char)('a' + i % 26);
  tg_value *m = tg_map_new(2);
  tg_map_put_c(m, "cmd", tg_str_c("cat"));
  tg_map_put_c(m, "stdin", tg_bytes(big, n));
  tg_value *v = call("sh", 1, m);
  cr_assert_not_null(v, "sh failed: %s", errmsg);
  size_t len;
  const char *got = tg_bytes_data(v, &len);
  cr_assert_eq(len, n);
  cr_assert(memcmp(got, big, n) == 0);
  tg_value_unref(v);
  free(big);
}

/* A command that closes its outputs and runs on is still stopped when its
 * task is cancelled (here by its timeout), not waited for to the end. */
Test(builtins, sh_cancel_reaches_a_command_without_outputs) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_arg arg = tg_arg_value(tg_str_c("exec >/dev/null 2>&1; sleep 20"));
  tg_node_opts no = {TG_NODE_OPTS_V1, "quiet", -1, -1, 0.2, 0};
  tg_node node;
  cr_assert_eq(tg_graph_add(g, "sh", &arg, 1, &no, &node), TG_OK);
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "threads",
                       .workers = 1};
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  tg_value *res = NULL;
  int rc = tg_compute(g, &node, 1, &o, &res);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  cr_assert_neq(rc, TG_OK);
  /* The command gave up when cancelled; the task timed out. */
  cr_assert_str_eq(tg_graph_errmsg(g),
                   "task 'quiet' failed: TG_ETIMEDOUT: timed out after 0.2 s");
  cr_assert_lt(s, 5.0, "the command ran on for %.1f s after its timeout", s);
  tg_graph_free(g);
}

/* A command that closes its stdin before reading it all, then runs on:
 * sh stops feeding it at once rather than spinning on the closed pipe
 * (whatever errno the calling thread had). */
Test(builtins, sh_stdin_closed_early_does_not_spin) {
  size_t n = (size_t)1 << 20;
  char *big = calloc(1, n);
  cr_assert_not_null(big);
  tg_value *m = tg_map_new(2);
  tg_map_put_c(m, "cmd", tg_str_c("exec 0<&-; sleep 0.5; echo done"));
  tg_map_put_c(m, "stdin", tg_bytes(big, n));
  free(big);
  struct timespec a, b;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
  errno = EAGAIN; /* a stale errno must not pass for the write's */
  cr_assert_str_eq(json(call("sh", 1, m)), "{\"$bytes\":\"ZG9uZQo=\"}");
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
  double cpu = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  cr_assert_lt(cpu, 0.2, "sh used %.2f s of CPU waiting for a sleeping command", cpu);
}

Test(builtins, sh_failure_carries_stderr_tail) {
  fails_with(call("sh", 1, tg_str_c("echo one >&2; echo two >&2; exit 3")),
             "sh: exit status 3: one | two");
  fails_with(call("sh", 1, tg_str_c("kill -9 $$")), "sh: killed by signal 9");
  fails_with(call("sh", 1, tg_str_c("exit 1")), "sh: exit status 1");
  fails_with(call("sh", 0), "sh: needs a command");
  fails_with(call("sh", 1, tg_int(1)),
             "sh: argument 1 must be a str or a map, not int");
}

/* sh({"cmd": ..., "text": true}) returns stdout as a str; stdout that is
 * not UTF-8 fails with the offset of the first bad byte. */
static tg_value *sh_text(const char *cmd, tg_value *text) {
  tg_value *m = tg_map_new(2);
  tg_map_put_c(m, "cmd", tg_str_c(cmd));
  tg_map_put_c(m, "text", text);
  return call("sh", 1, m);
}

Test(builtins, sh_text_returns_a_str) {
  tg_value *v = sh_text("printf 'caf\\303\\251 %s' \"$0\"", tg_bool(true));
  cr_assert_not_null(v, "sh failed: %s", errmsg);
  cr_expect_eq(tg_value_type(v), TG_STR);
  size_t len;
  const char *s = tg_str_data(v, &len);
  cr_expect_eq(len, 8);
  cr_expect_eq(memcmp(s, "caf\xc3\xa9 sh", 8), 0);
  tg_value_unref(v);
  cr_assert_str_eq(json(sh_text("printf ''", tg_bool(true))), "\"\"");
  /* A NUL byte is valid UTF-8, and a str may hold it. */
  cr_assert_str_eq(json(sh_text("printf 'a\\000b'", tg_bool(true))), "\"a\\u0000b\"");
  /* "text": false is the default: bytes. */
  cr_assert_str_eq(json(sh_text("printf '\\377'", tg_bool(false))), "{\"$bytes\":\"/w==\"}");
}

Test(builtins, sh_text_refuses_bad_utf8) {
  fails_with(sh_text("printf 'ok\\377'", tg_bool(true)),
             "sh: stdout is not valid UTF-8 at byte 2 (of 3); without \"text\": "
             "true it is returned as bytes");
  /* A sequence cut at the end, an overlong, a surrogate. */
  fails_with(sh_text("printf 'abc\\303'", tg_bool(true)),
             "not valid UTF-8 at byte 3 (of 4)");
  fails_with(sh_text("printf '\\300\\257'", tg_bool(true)),
             "not valid UTF-8 at byte 0 (of 2)");
  fails_with(sh_text("printf 'xy\\355\\240\\200'", tg_bool(true)),
             "not valid UTF-8 at byte 2 (of 5)");
  fails_with(sh_text("printf x", tg_str_c("yes")),
             "sh: \"text\" must be true or false");
}

Test(builtins, sum_add_mul) {
  cr_assert_str_eq(json(call("sum", 1, tg_list_of(3, tg_int(1), tg_int(2),
                                                  tg_int(3)))), "6");
  cr_assert_str_eq(json(call("sum", 1, tg_list_of(2, tg_int(1),
                                                  tg_float(2.5)))), "3.5");
  cr_assert_str_eq(json(call("sum", 1, tg_list_alloc(0))), "0");
  fails_with(call("sum", 1, tg_list_of(2, tg_int(INT64_MAX), tg_int(1))),
             "sum: integer overflow");
  fails_with(call("sum", 1, tg_list_of(1, tg_str_c("x"))),
             "sum: item 0 must be an int or float, not str");
  fails_with(call("sum", 1, tg_int(1)), "sum: argument 1 must be a list, not int");
  cr_assert_str_eq(json(call("add", 3, tg_int(1), tg_int(2), tg_int(3))), "6");
  cr_assert_str_eq(json(call("add", 0)), "0");
  cr_assert_str_eq(json(call("mul", 2, tg_int(2), tg_float(3.0))), "6.0");
  cr_assert_str_eq(json(call("mul", 0)), "1");
  fails_with(call("mul", 2, tg_int(INT64_MIN), tg_int(-1)),
             "mul: integer overflow");
  fails_with(call("add", 2, tg_int(1), tg_null()),
             "add: argument 2 must be an int or float, not null");
}

Test(builtins, len_of_each_type) {
  cr_assert_str_eq(json(call("len", 1, tg_list_of(2, tg_int(1), tg_int(2)))), "2");
  tg_value *m = tg_map_new(1);
  tg_map_put_c(m, "a", tg_int(1));
  cr_assert_str_eq(json(call("len", 1, m)), "1");
  cr_assert_str_eq(json(call("len", 1, tg_str_c("h\xc3\xa9"))), "3");
  cr_assert_str_eq(json(call("len", 1, tg_bytes("abcd", 4))), "4");
  int64_t shape[2] = {5, 2};
  cr_assert_str_eq(json(call("len", 1, tg_ndarray_new(TG_DT_F64, 2, shape))), "5");
  fails_with(call("len", 1, tg_ndarray_new(TG_DT_F64, 0, shape)),
             "len: a 0-d array has no length");
  fails_with(call("len", 1, tg_int(1)),
             "len: argument 1 must be a list, map, str, bytes or ndarray, not int");
}

Test(builtins, range_forms) {
  cr_assert_str_eq(json(call("range", 1, tg_int(3))), "[0,1,2]");
  cr_assert_str_eq(json(call("range", 1, tg_int(0))), "[]");
  cr_assert_str_eq(json(call("range", 1, tg_int(-2))), "[]");
  cr_assert_str_eq(json(call("range", 2, tg_int(2), tg_int(5))), "[2,3,4]");
  cr_assert_str_eq(json(call("range", 3, tg_int(1), tg_int(10), tg_int(3))),
                   "[1,4,7]");
  cr_assert_str_eq(json(call("range", 3, tg_int(5), tg_int(0), tg_int(-2))),
                   "[5,3,1]");
  fails_with(call("range", 3, tg_int(0), tg_int(1), tg_int(0)), "range: step is 0");
  fails_with(call("range", 1, tg_int(INT64_MAX)), "range: 9223372036854775807 "
             "items is too many");
  fails_with(call("range", 0), "range: takes 1 to 3 arguments, got 0");
  fails_with(call("range", 1, tg_float(1)),
             "range: argument 1 must be an int, not float");
}

Test(builtins, concat_lists_strs_bytes) {
  cr_assert_str_eq(json(call("concat", 2, tg_list_of(1, tg_int(1)),
                             tg_list_of(2, tg_int(2), tg_int(3)))), "[1,2,3]");
  cr_assert_str_eq(json(call("concat", 3, tg_str_c("a"), tg_str_c(""),
                             tg_str_c("bc"))), "\"abc\"");
  cr_assert_str_eq(json(call("concat", 2, tg_bytes("a", 1), tg_bytes("b", 1))),
                   "{\"$bytes\":\"YWI=\"}");
  cr_assert_str_eq(json(call("concat", 0)), "[]");
  fails_with(call("concat", 2, tg_str_c("a"), tg_int(1)),
             "concat: argument 2 must be str, not int");
  fails_with(call("concat", 1, tg_int(1)),
             "concat: argument 1 must be a list, str or bytes, not int");
}

Test(builtins, sleep_ms_sleeps_and_identity_passes) {
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  cr_assert_str_eq(json(call("sleep_ms", 1, tg_int(30))), "30");
  clock_gettime(CLOCK_MONOTONIC, &b);
  double ms = (b.tv_sec - a.tv_sec) * 1e3 + (b.tv_nsec - a.tv_nsec) / 1e6;
  cr_assert_geq(ms, 30.0);
  fails_with(call("sleep_ms", 1, tg_int(-1)),
             "sleep_ms: argument 1 must be a non-negative int, not int");
  cr_assert_str_eq(json(call("identity", 1, tg_str_c("x"))), "\"x\"");
}

/* A huge sleep (up to INT64_MAX ms) sleeps until stopped: the time left
 * is computed without overflowing, so it is never taken for "done". */
Test(builtins, sleep_ms_huge_sleeps_until_cancelled) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_arg arg = tg_arg_value(tg_int(INT64_MAX));
  tg_node_opts no = {TG_NODE_OPTS_V1, "nap", -1, -1, 0.2, 0};
  tg_node node;
  cr_assert_eq(tg_graph_add(g, "sleep_ms", &arg, 1, &no, &node), TG_OK);
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "threads",
                       .workers = 1};
  struct timespec a, b;
  clock_gettime(CLOCK_MONOTONIC, &a);
  tg_value *res = NULL;
  int rc = tg_compute(g, &node, 1, &o, &res);
  clock_gettime(CLOCK_MONOTONIC, &b);
  double s = (double)(b.tv_sec - a.tv_sec) + (b.tv_nsec - a.tv_nsec) / 1e9;
  cr_assert_neq(rc, TG_OK, "sleep_ms(INT64_MAX) returned after %.3f s", s);
  cr_assert_null(res);
  cr_assert_str_eq(tg_graph_errmsg(g), "task 'nap' failed: TG_ETIMEDOUT: timed out after 0.2 s");
  cr_assert_geq(s, 0.15);
  tg_graph_free(g);
}

Test(builtins, build_assembles_templates) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = tg_call(g, "range", 1, tg_arg_value(tg_int(2)));
  tg_node b = tg_call(g, "identity", 1, tg_arg_value(tg_str_c("b")));
  /* ["l", [["s", 0], ["m", {"k": ["s", 1], "c": ["c", 7]}]]] */
  tg_value *m = tg_map_new(2);
  tg_map_put_c(m, "k", tg_list_of(2, tg_str_c("s"), tg_int(1)));
  tg_map_put_c(m, "c", tg_list_of(2, tg_str_c("c"), tg_int(7)));
  tg_value *t = tg_list_of(2, tg_str_c("l"),
      tg_list_of(2, tg_list_of(2, tg_str_c("s"), tg_int(0)),
                 tg_list_of(2, tg_str_c("m"), m)));
  tg_node n = tg_call(g, "tg.build", 3, tg_arg_value(t), tg_arg_node(a),
                      tg_arg_node(b));
  cr_assert_neq(n, TG_NODE_NONE, "%s", tg_graph_errmsg(g));
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .workers = 1};
  tg_value *res;
  cr_assert_eq(tg_compute(g, &n, 1, &o, &res), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_str_eq(json(res), "[[0,1],{\"k\":\"b\",\"c\":7}]");
  tg_graph_free(g);
  fails_with(call("tg.build", 1, tg_list_of(2, tg_str_c("s"), tg_int(0))),
             "tg.build: bad template: slot out of range");
  fails_with(call("tg.build", 1, tg_list_of(2, tg_str_c("x"), tg_int(0))),
             "tg.build: bad template: unknown tag");
}
