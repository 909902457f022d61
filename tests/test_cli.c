/* tests/test_cli.c: end-to-end tests of the tgraph program: each runs the
 * built binary (TGRAPH_BIN) with fork/exec and checks its exit status,
 * stdout and stderr exactly. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <pty.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_cli_util.h"
#include "tgraph.h"

static char dir[64];  /* a fresh directory per test, also the cwd */
static const char *bin, *root;

static void setup(void) {
  bin = tcli_bin();
  root = getenv("TG_SOURCE_ROOT");
  cr_assert_not_null(root, "TG_SOURCE_ROOT is not set");
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_cli_XXXXXX");
  setenv("TGRAPH_CACHE_DIR", "cache", 1);
  unsetenv("TGRAPH_PLUGIN_PATH");
  unsetenv("NO_COLOR");
}

static void teardown(void) { tcli_leave_tmpdir(dir); }

TestSuite(cli, .init = setup, .fini = teardown, .timeout = 60);

typedef tcli_result result;

/* Run tgraph with the NULL-terminated arguments; stdin is /dev/null. */
static result run_argv(char *const *args) { return tcli_run(bin, &(tcli_how){0}, args); }

#define run(...) run_argv((char *const[]){"tgraph", __VA_ARGS__, NULL})

/* The example's path in the source tree. */
static const char *example(const char *name) {
  static char buf[4][512];
  static int k;
  char *p = buf[k++ % 4];
  snprintf(p, 512, "%s/examples/%s", root, name);
  return p;
}

/* stderr is exactly the summary line for these counts (any wall time). */
static void expect_summary(const char *err, const char *counts) {
  char want[256];
  snprintf(want, sizeof want, "tgraph: %s in ", counts);
  cr_expect(strncmp(err, want, strlen(want)) == 0, "stderr: %s", err);
  size_t n = strlen(err);
  cr_expect(n > 3 && strcmp(err + n - 3, " s\n") == 0, "stderr: %s", err);
  cr_expect(strchr(err, '\n') == err + n - 1, "one line: %s", err);
}

/* ---- the program and its help ---- */

Test(cli, version) {
  char want[128];
  snprintf(want, sizeof want, "tgraph %s\ngraph.json format 1\ndump format 1\n",
           getenv("TGRAPH_VERSION"));
  result r = run("version");
  tcli_expect(r, 0, want, "");
  tcli_result_free(&r);
  r = run("--version");
  tcli_expect(r, 0, want, "");
  tcli_result_free(&r);
  r = run("version", "x");
  tcli_expect(r, 2, "", "tgraph version: unexpected argument 'x'\n(see tgraph version --help)\n");
  tcli_result_free(&r);
}

Test(cli, help_for_every_command) {
  const char *cmds[] = {"run", "inspect", "cache", "version"};
  for (size_t i = 0; i < 4; i++) {
    result r = run((char *)cmds[i], "--help");
    char want[64];
    snprintf(want, sizeof want, "usage: tgraph %s", cmds[i]);
    cr_expect_eq(r.status, 0, "%s", cmds[i]);
    cr_expect(strncmp(r.out, want, strlen(want)) == 0, "%s: %s", cmds[i], r.out);
    cr_expect_str_eq(r.err, "");
    tcli_result_free(&r);
  }
  result r = run("--help");
  cr_expect_eq(r.status, 0);
  cr_expect(strncmp(r.out, "usage: tgraph COMMAND", 21) == 0);
  tcli_result_free(&r);
  r = run_argv((char *const[]){"tgraph", NULL});
  cr_expect_eq(r.status, 2);
  cr_expect(strncmp(r.err, "usage: tgraph COMMAND", 21) == 0);
  tcli_result_free(&r);
  r = run("frobnicate");
  cr_expect_eq(r.status, 2);
  cr_expect(strncmp(r.err, "tgraph: unknown command 'frobnicate'\n", 37) == 0);
  tcli_result_free(&r);
}

Test(cli, run_usage_errors) {
  struct { char *a, *b; const char *err; } cases[] = {
      {"--workers", "abc", "tgraph run: --workers needs a count from 0 to 4096, "
                           "not 'abc'\n(see tgraph run --help)\n"},
      {"--retries", "-1", "tgraph run: --retries needs a count from 0 to 1000, "
                          "not '-1'\n(see tgraph run --help)\n"},
      {"--timeout", "soon", "tgraph run: --timeout needs seconds (e.g. 30, 1.5, "
                            "500ms, 2m), not 'soon'\n(see tgraph run --help)\n"},
      {"--bogus", "g.json", "tgraph run: unknown option '--bogus'\n(see tgraph "
                            "run --help)\n"},
      {"g.json", "h.json", "tgraph run: one graph at a time ('h.json' is "
                           "extra)\n(see tgraph run --help)\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    result r = run("run", cases[i].a, cases[i].b);
    tcli_expect(r, 2, "", cases[i].err);
    tcli_result_free(&r);
  }
  result r = run("run");
  tcli_expect(r, 2, "", "tgraph run: missing GRAPH.json\n(see tgraph run --help)\n");
  tcli_result_free(&r);
  r = run("run", "g.json", "--dot");
  tcli_expect(r, 2, "", "tgraph run: option '--dot' needs a value\n(see tgraph run "
              "--help)\n");
  tcli_result_free(&r);
}

/* ---- running graphs ---- */

static const char builtins_out[] =
    "{\"report\":{\"count\":2,\"total\":55,\"product\":165.0,\"first\":[1,2],"
    "\"joined\":[\"alpha\",\"beta\",\"delta\"],\"literal\":{\"ref\":\"not a "
    "ref\"}}}\n";

Test(cli, runs_builtins_on_every_local_scheduler) {
  const char *scheds[] = {"--scheduler=sync", "--scheduler=threads"};
  for (size_t i = 0; i < 2; i++) {
    /* No cache: on a loaded machine a builtin may run past the store
     * threshold, and the second scheduler would be served its result. */
    result r = run("run", (char *)scheds[i], "--workers", "2", "--no-cache",
                   (char *)example("builtins.json"));
    tcli_expect(r, 0, builtins_out, NULL);
    expect_summary(r.err, "9 tasks: 9 run, 0 cached, 0 failed"); /* the file's 9 */
    tcli_result_free(&r);
  }
  result r = run("run", "-q", "--no-cache", (char *)example("builtins.json"));
  tcli_expect(r, 0, builtins_out, "");
  tcli_result_free(&r);
}

Test(cli, unknown_scheduler_is_a_usage_error) {
  result r = run("run", "--scheduler", "nope", (char *)example("builtins.json"));
  cr_expect_eq(r.status, 2);
  cr_expect_str_eq(r.out, "");
  cr_expect(strncmp(r.err, "tgraph: error: unknown backend 'nope'", 37) == 0,
            "%s", r.err);
  tcli_result_free(&r);
}

Test(cli, task_failure_names_task_and_blocked_outputs) {
  tcli_write_file("fail.json",
                  "{\"tgraph\": 1, \"tasks\": {\n"
                  "  \"bad\": {\"fn\": \"sh\", \"args\": [\"echo boom >&2; exit 3\"]},\n"
                  "  \"mid\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"bad\"}]},\n"
                  "  \"out\": {\"fn\": \"identity\", \"args\": [[{\"ref\": \"mid\"}]]},\n"
                  "  \"other\": {\"fn\": \"identity\", \"args\": [1]}},\n"
                  " \"outputs\": [\"other\", \"out\"]}\n");
  result r = run("run", "--scheduler=sync", "-q", "fail.json", "--dot", "f.dot");
  tcli_expect(r, 1, "",
              "tgraph: error: task 'bad' failed: TG_EIO: sh: exit status 3: boom\n"
              "tgraph:   blocked output 'out' (bad -> mid -> out)\n");
  tcli_result_free(&r);
  FILE *f = fopen("f.dot", "r");
  cr_assert_not_null(f);
  char text[4096] = "";
  cr_assert_gt(fread(text, 1, sizeof text - 1, f), 0);
  fclose(f);
  cr_expect(strstr(text, "\"bad\" [label=\"bad\\nsh\", fillcolor=\"#f46d43\", "
                         "tooltip=\"failed\"];") != NULL, "%s", text);
  cr_expect(strstr(text, "\"mid\" [label=\"mid\\nidentity\", fillcolor=\"#fee08b\", "
                         "tooltip=\"skipped\"];") != NULL, "%s", text);
  cr_expect(strstr(text, "\"bad\" -> \"mid\";") != NULL, "%s", text);
}

Test(cli, timeout_stops_the_run) {
  tcli_write_file("slow.json", "{\"tgraph\": 1, \"tasks\": {\"s\": {\"fn\": "
                          "\"sleep_ms\", \"args\": [20000]}}}");
  result r = run("run", "-q", "--timeout", "1s", "slow.json"); /* s has started by then */
  tcli_expect(r, 1, "",
              "tgraph: error: the compute timed out after 1 s: 1 task still running (s)\n");
  tcli_result_free(&r);
}

/* ---- graph errors: FILE:LINE:COLUMN: what, exit 2, nothing runs ---- */

Test(cli, graph_errors_have_positions_and_run_nothing) {
  struct { const char *text, *err; } cases[] = {
      {"{\"tgraph\": 1, \"tasks\": {\n  \"a\": {\"fn\": \"add\", \"args\": [1,]}}}",
       "g.json:2:33: unexpected ']', expected a value\n"},
      {"{\"tgraph\": 1, \"tasks\": {\n  \"w\": {\"fn\": \"write_file\", \"args\": "
       "[\"ran\", \"x\"]},\n  \"a\": {\"fn\": \"ad\", \"args\": [1, 2]}}}",
       "g.json:3:15: unknown function 'ad' (did you mean 'add'?)\n"},
      {"{\"tgraph\": 1, \"tasks\": {\n  \"w\": {\"fn\": \"write_file\", \"args\": "
       "[\"ran\", \"x\"]},\n  \"a\": {\"fn\": \"add\", \"args\": [{\"ref\": \"nope\"}]}}}",
       "g.json:3:31: ref to a missing task 'nope'\n"},
      {"{\"tgraph\": 1, \"tasks\": {\n  \"a\": {\"fn\": \"identity\", \"args\": "
       "[{\"ref\": \"b\"}]},\n  \"b\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"a\"}]}}}",
       "g.json:3:36: cycle: a -> b -> a\n"},
      {"{\"tgraph\": 1, \"tasks\": {\n  \"a\": {\"fn\": \"add\"},\n  \"a\": {\"fn\": \"add\"}}}",
       "g.json:3:3: duplicate task key 'a' (first at line 2)\n"},
      {"{\"tgraph\": 1, \"tasks\": {\n  \"a\": {\"fn\": \"len\", \"args\": [1, 2]}}}",
       "g.json:2:30: function 'len' takes 1 argument, got 2\n"},
      {"{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\"}},\n \"outputs\": [\"b\"]}",
       "g.json:2:14: output 'b' is not a task (did you mean 'a'?)\n"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
    tcli_write_file("g.json", cases[i].text);
    result r = run("run", "g.json");
    tcli_expect(r, 2, "", cases[i].err);
    tcli_result_free(&r);
    cr_expect_neq(access("ran", F_OK), 0, "case %zu ran a task", i);
  }
  result r = run("run", "missing.json");
  tcli_expect(r, 2, "", "missing.json: No such file or directory\n");
  tcli_result_free(&r);
}

/* ---- plugins ---- */

static void copy_file(const char *from, const char *to) {
  char cmd[1200];
  snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
  cr_assert_eq(system(cmd), 0);
}

Test(cli, plugin_failures_are_clear) {
  tcli_write_file("g.json", "{\"tgraph\": 1, \"plugins\": [\"nosuch\"], \"tasks\": {}}");
  result r = run("run", "g.json");
  cr_expect_eq(r.status, 2);
  cr_expect(strncmp(r.err, "g.json:1:27: plugin 'nosuch' not found: no "
                    "libnosuch.so in TGRAPH_PLUGIN_PATH (unset), ", 86) == 0,
            "%s", r.err);
  tcli_result_free(&r);
  tcli_write_file("g.json", "{\"tgraph\": 1, \"tasks\": {}}");
  r = run("run", "--plugin", "./libnope.so", "g.json");
  tcli_expect(r, 2, "", "plugin './libnope.so': No such file or directory\n");
  tcli_result_free(&r);
  tcli_write_file("libjunk.so", "not an ELF file");
  r = run("run", "--plugin", "./libjunk.so", "g.json");
  cr_expect_eq(r.status, 2);
  cr_expect(strncmp(r.err, "plugin './libjunk.so' cannot be loaded: ", 40) == 0,
            "%s", r.err);
  tcli_result_free(&r);
  r = run("run", "--plugin", "/lib/x86_64-linux-gnu/libm.so.6", "g.json");
  tcli_expect(r, 2, "", "plugin '/lib/x86_64-linux-gnu/libm.so.6' has no "
              "tg_plugin_init function\n");
  tcli_result_free(&r);
  /* A second copy registers the same names: its init fails. */
  char lib[1024]; /* BUILD/cli/tgraph -> BUILD/examples/plugins/... */
  snprintf(lib, sizeof lib, "%s", bin);
  strcpy(strrchr(lib, '/'), "/../examples/plugins/libwordcount.so");
  copy_file(lib, "libwc2.so");
  r = run("run", "--plugin", lib, "--plugin", "./libwc2.so", "g.json");
  tcli_expect(r, 2, "", "plugin './libwc2.so': tg_plugin_init failed: already "
              "exists: function 'wordcount.count' is already registered\n");
  tcli_result_free(&r);
  /* The same file twice loads once. */
  r = run("run", "-q", "--plugin", lib, "--plugin", lib, "g.json");
  tcli_expect(r, 0, "{}\n", "");
  tcli_result_free(&r);
}

/* ---- outputs, inspect, dot, trace, explain, progress ---- */

/* `text` with its one occurrence of `from` replaced by `to`, into path. */
static void write_edited(const char *path, const char *text, const char *from,
                         const char *to) {
  const char *at = strstr(text, from);
  cr_assert_not_null(at, "'%s' not found", from);
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fprintf(f, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
  fclose(f);
}


Test(cli, output_dir_and_inspect) {
  result r = run("run", "-q", "--output", "out", (char *)example("builtins.json"));
  struct stat st;
  cr_assert_eq(stat("out/report.tgv", &st), 0);
  /* The listing: the file, its size and type, and the small value. */
  char line[1024];
  snprintf(line, sizeof line, "{\"key\":\"report\",\"file\":\"out/report.tgv\","
           "\"bytes\":%lld,\"type\":\"map of 6\",\"value\":%.*s}\n",
           (long long)st.st_size, (int)(strlen(builtins_out) - 12), builtins_out + 10);
  tcli_expect(r, 0, line, "");
  tcli_result_free(&r);
  r = run("inspect", "out/report.tgv", "--preview", "20");
  cr_expect_eq(r.status, 0);
  char want[512];
  char size[32];
  if (st.st_size < 1024) snprintf(size, sizeof size, "%lld B", (long long)st.st_size);
  else snprintf(size, sizeof size, "%.1f KiB", (double)st.st_size / 1024);
  snprintf(want, sizeof want, "file:    out/report.tgv (%s)\ntype:    map of 6\n"
           "preview: {\"count\":2,\"total\":5 ...\n", size);
  cr_expect_str_eq(r.out, want);
  tcli_result_free(&r);
  r = run("inspect", "nothere.tgv");
  cr_expect_eq(r.status, 1);
  cr_expect_str_eq(r.err, "tgraph: error: cannot open 'nothere.tgv': No such file or directory\n");
  tcli_result_free(&r);
  r = run("inspect");
  tcli_expect(r, 2, "", "tgraph inspect: missing FILE\n(see tgraph inspect --help)\n");
  tcli_result_free(&r);
}

/* With --output, stdout lists the files: a value whose JSON is over 1024
 * bytes is left out of the listing (only in its file); one of exactly
 * 1024 bytes is shown; without --output everything is printed. */
Test(cli, output_lists_large_values_without_printing_them) {
  /* "x" * n as a str is n + 2 bytes of JSON; ["x" * 1020] and
   * {"k": "x" * 1016} are 1024 bytes. */
  char xs[1100], graph[8192];
  memset(xs, 'x', 1022);
  xs[1022] = '\0';
  snprintf(graph, sizeof graph, "{\"tgraph\": 1, \"tasks\": {"
           " \"list\": {\"fn\": \"identity\", \"args\": [[\"%.1020s\"]]},"
           " \"map\": {\"fn\": \"identity\", \"args\": [{\"k\": \"%.1016s\"}]}},"
           " \"outputs\": [\"list\", \"map\"]}", xs, xs);
  tcli_write_file("edge.json", graph);
  result r = run("run", "-q", "--no-cache", "--output", "e", "edge.json");
  char want[4096];
  snprintf(want, sizeof want,
           "{\"key\":\"list\",\"file\":\"e/list.tgv\",\"bytes\":1152,"
           "\"type\":\"list of 1\",\"value\":[\"%.1020s\"]}\n"
           "{\"key\":\"map\",\"file\":\"e/map.tgv\",\"bytes\":1088,"
           "\"type\":\"map of 1\",\"value\":{\"k\":\"%.1016s\"}}\n", xs, xs);
  tcli_expect(r, 0, want, "");
  tcli_result_free(&r);
  tcli_write_file("g.json",
                  "{\"tgraph\": 1, \"tasks\": {"
                  " \"fits\": {\"fn\": \"sh\", \"args\": [{\"cmd\": \"head -c 1022 "
                  "/dev/zero | tr '\\\\0' x\", \"text\": true}]},"
                  " \"over\": {\"fn\": \"sh\", \"args\": [{\"cmd\": \"head -c 1023 "
                  "/dev/zero | tr '\\\\0' x\", \"text\": true}]},"
                  " \"many\": {\"fn\": \"range\", \"args\": [100000]},"
                  " \".hidden/n\": {\"fn\": \"add\", \"args\": [1, 2]}},"
                  " \"outputs\": [\"fits\", \"over\", \"many\", \".hidden/n\"]}");
  r = run("run", "-q", "--no-cache", "--output", "o", "g.json");
  struct stat st[4];
  const char *files[4] = {"o/fits.tgv", "o/over.tgv", "o/many.tgv", "o/_hidden_n.tgv"};
  for (int i = 0; i < 4; i++) cr_assert_eq(stat(files[i], &st[i]), 0, "%s", files[i]);
  snprintf(want, sizeof want,
           "{\"key\":\"fits\",\"file\":\"o/fits.tgv\",\"bytes\":%lld,"
           "\"type\":\"str of 1022 bytes\",\"value\":\"%s\"}\n"
           "{\"key\":\"over\",\"file\":\"o/over.tgv\",\"bytes\":%lld,"
           "\"type\":\"str of 1023 bytes\"}\n"
           "{\"key\":\"many\",\"file\":\"o/many.tgv\",\"bytes\":%lld,"
           "\"type\":\"list of 100000\"}\n"
           "{\"key\":\".hidden/n\",\"file\":\"o/_hidden_n.tgv\",\"bytes\":128,"
           "\"type\":\"int\",\"value\":3}\n",
           (long long)st[0].st_size, xs, (long long)st[1].st_size,
           (long long)st[2].st_size);
  tcli_expect(r, 0, want, "");
  tcli_result_free(&r);
  /* The files hold the values themselves. */
  tg_value *v = NULL;
  tg_error err;
  cr_assert_eq(tg_load("o/many.tgv", 0, &v, &err), TG_OK, "%s", err.msg);
  cr_expect_eq(tg_list_len(v), 100000);
  cr_expect_eq(tg_value_int(tg_list_get(v, 99999)), 99999);
  tg_value_unref(v);
  cr_assert_eq(tg_load("o/over.tgv", 0, &v, &err), TG_OK, "%s", err.msg);
  size_t len;
  cr_expect_eq(tg_value_type(v), TG_STR);
  cr_expect_eq(tg_str_data(v, &len)[1022], 'x');
  cr_expect_eq(len, 1023);
  tg_value_unref(v);
  /* Without --output: the whole of every value, as one object. */
  r = run("run", "-q", "--no-cache", "g.json");
  cr_expect_eq(r.status, 0);
  cr_expect_gt(r.outlen, 100000 * 2, "only %zu bytes printed", r.outlen);
  cr_expect(strstr(r.out, ",99998,99999],\".hidden/n\":3}") != NULL);
  tcli_result_free(&r);
}

/* What a --trace file holds, checked event by event. */
typedef struct trace_seen {
  size_t complete, instant;   /* "X" and "i" events */
  size_t tracks;              /* thread_name entries */
  bool named[64];             /* per complete/instant event name index */
} trace_seen;

/* Parse path with jansson; every event's fields are checked; names[] are
 * the task keys expected, each exactly once, with ph[i] 'X' or 'i'. */
static trace_seen check_trace(const char *path, int workers, const char *const *names,
                              const char *ph, size_t nnames) {
  trace_seen t;
  memset(&t, 0, sizeof t);
  json_error_t je;
  json_t *root = json_load_file(path, 0, &je);
  cr_assert_not_null(root, "%s:%d: %s", path, je.line, je.text);
  json_t *events = json_object_get(root, "traceEvents");
  cr_assert(json_is_array(events));
  size_t i;
  json_t *e;
  json_array_foreach(events, i, e) {
    const char *p = json_string_value(json_object_get(e, "ph"));
    const char *name = json_string_value(json_object_get(e, "name"));
    cr_assert_not_null(p);
    cr_assert_not_null(name);
    if (strcmp(p, "M") == 0) {
      t.tracks += strcmp(name, "thread_name") == 0;
      continue;
    }
    cr_assert(strcmp(p, "X") == 0 || strcmp(p, "i") == 0, "ph %s", p);
    json_int_t tid = json_integer_value(json_object_get(e, "tid"));
    cr_expect(json_is_number(json_object_get(e, "ts")));
    if (p[0] == 'X') {
      t.complete++;
      cr_expect(json_is_number(json_object_get(e, "dur")));
      cr_expect(tid >= 0 && tid < workers, "%s on track %lld", name, (long long)tid);
    } else {
      t.instant++;
      cr_expect_eq(tid, workers, "%s on track %lld", name, (long long)tid);
    }
    size_t k = 0;
    while (k < nnames && strcmp(names[k], name) != 0) k++;
    cr_assert_lt(k, nnames, "unexpected event '%s'", name);
    cr_expect(!t.named[k], "two events for '%s'", name);
    cr_expect_eq(p[0], ph[k], "'%s' is '%s'", name, p);
    t.named[k] = true;
  }
  json_decref(root);
  for (size_t k = 0; k < nnames; k++) cr_expect(t.named[k], "no event for '%s'", names[k]);
  return t;
}

/* One event per task: a complete event per call, on its worker's track,
 * whatever the backend; cached tasks as instants on a track of their own. */
Test(cli, trace_is_json_with_one_event_per_task) {
  const char *names[17]; /* the tg.build node assembling pi's list reports none */
  char buf[16][8];
  for (int i = 0; i < 16; i++) snprintf(buf[i], sizeof buf[i], "hits%d", i), names[i] = buf[i];
  names[16] = "pi";
  const char *sched[] = {"--scheduler=threads", "--scheduler=processes"};
  for (int k = 0; k < 2; k++) {
    result r = run("run", "-q", "--no-cache", (char *)sched[k], "--workers", "2",
                   "--trace", "t.json", (char *)example("pi.json"));
    tcli_expect(r, 0, "{\"pi\":3.14134125}\n", "");
    tcli_result_free(&r);
    trace_seen t = check_trace("t.json", 2, names, "XXXXXXXXXXXXXXXXX", 17);
    cr_expect_eq(t.complete, 17, "%s", sched[k]);
    cr_expect_eq(t.instant, 0);
    cr_expect_eq(t.tracks, 3); /* worker 0, worker 1, cached or skipped */
  }
  tcli_write_file("g.json",
                  "{\"tgraph\": 1, \"tasks\": {\n"
                  "  \"a\": {\"fn\": \"range\", \"args\": [3], \"cache\": true},\n"
                  "  \"b\": {\"fn\": \"sum\", \"args\": [{\"ref\": \"a\"}], \"cache\": true},\n"
                  "  \"c\": {\"fn\": \"identity\", \"args\": [7], \"cache\": false}},\n"
                  " \"outputs\": [\"b\", \"c\"]}\n");
  result r = run("run", "-q", "--cache-dir", "c", "--workers", "1", "--trace", "t.json",
                 "g.json");
  tcli_expect(r, 0, "{\"b\":3,\"c\":7}\n", "");
  tcli_result_free(&r);
  check_trace("t.json", 1, (const char *[]){"a", "b", "c"}, "XXX", 3);
  r = run("run", "-q", "--cache-dir", "c", "--workers", "1", "--scheduler=processes",
          "--trace", "t.json", "g.json");
  tcli_expect(r, 0, "{\"b\":3,\"c\":7}\n", "");
  tcli_result_free(&r);
  trace_seen t = check_trace("t.json", 1, (const char *[]){"b", "c"}, "iX", 2);
  cr_expect_eq(t.complete, 1);
  cr_expect_eq(t.instant, 1);
}

/* The dot node of `key` in text: its line, which must exist once. */
static void expect_dot_node(const char *text, const char *key, const char *fn,
                            const char *color, const char *state, const char *extra) {
  char want[512];
  snprintf(want, sizeof want, "\n  \"%s\" [label=\"%s\\n%s\", fillcolor=\"%s\", "
           "tooltip=\"%s\"%s];\n", key, key, fn, color, state, extra);
  const char *at = strstr(text, want);
  cr_expect_not_null(at, "no '%s' in:\n%s", want, text);
  if (at) cr_expect_null(strstr(at + 1, want), "twice: %s", want);
}

Test(cli, dot_colours_each_task_by_state) {
  tcli_write_file("g1.json",
                  "{\"tgraph\": 1, \"tasks\": {\n"
                  "  \"a\": {\"fn\": \"range\", \"args\": [3], \"cache\": true},\n"
                  "  \"b\": {\"fn\": \"sum\", \"args\": [{\"ref\": \"a\"}], \"cache\": true}},\n"
                  " \"outputs\": [\"b\"]}\n");
  result r = run("run", "-q", "--cache-dir", "c", "g1.json");
  tcli_expect(r, 0, "{\"b\":3}\n", "");
  tcli_result_free(&r);
  tcli_write_file("g2.json",
                  "{\"tgraph\": 1, \"tasks\": {\n"
                  "  \"a\": {\"fn\": \"range\", \"args\": [3], \"cache\": true},\n"
                  "  \"b\": {\"fn\": \"sum\", \"args\": [{\"ref\": \"a\"}], \"cache\": true},\n"
                  "  \"x\": {\"fn\": \"identity\", \"args\": [1]},\n"
                  "  \"f\": {\"fn\": \"sh\", \"args\": [\"exit 3\"]},\n"
                  "  \"s\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"f\"}]},\n"
                  "  \"u\": {\"fn\": \"identity\", \"args\": [2]}},\n"
                  " \"outputs\": [\"x\", \"b\", \"s\"]}\n");
  r = run("run", "-q", "--scheduler=sync", "--cache-dir", "c", "--dot", "g.dot", "g2.json");
  cr_expect_eq(r.status, 1);
  tcli_result_free(&r);
  const char *text = tcli_read_text("g.dot", true);
  size_t nodes = 0;
  for (const char *p = text; (p = strstr(p, " [label=")) != NULL; p++) nodes++;
  cr_expect_eq(nodes, 6, "%s", text);
  const char *dashed = ", style=\"filled,dashed\"", *output = ", peripheries=2";
  expect_dot_node(text, "a", "range", "#ffffff", "not needed: below a cached result", dashed);
  expect_dot_node(text, "b", "sum", "#abd9e9", "cached", output);
  expect_dot_node(text, "x", "identity", "#a6d96a", "ran", output);
  expect_dot_node(text, "f", "sh", "#f46d43", "failed", "");
  expect_dot_node(text, "s", "identity", "#fee08b", "skipped", output);
  expect_dot_node(text, "u", "identity", "#ffffff", "not needed", dashed);
  cr_expect_not_null(strstr(text, "  \"a\" -> \"b\";\n  \"f\" -> \"s\";\n}\n"), "%s", text);
}

Test(cli, explain_runs_nothing) {
  tcli_write_file("g.json",
                  "{\"tgraph\": 1, \"tasks\": {\n"
                  "  \"w\": {\"fn\": \"write_file\", \"args\": [\"ran\", \"x\"]},\n"
                  "  \"s\": {\"fn\": \"range\", \"args\": [3], \"cache\": false},\n"
                  "  \"t\": {\"fn\": \"sum\", \"args\": [{\"ref\": \"s\"}]},\n"
                  "  \"u\": {\"fn\": \"identity\", \"args\": [1]},\n"
                  "  \"z\": {\"fn\": \"sleep_ms\", \"args\": [1]},\n"
                  "  \"v\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"z\"}]}},\n"
                  " \"outputs\": [\"w\", \"t\", \"v\"]}\n");
  result r = run("run", "--explain", "--no-cache", "g.json");
  tcli_expect(r, 0,
              "explain: no cache\n"
              "  run     w                    write_file       a side effect: never "
              "cached\n"
              "  run     s                    range            the task says "
              "\"cache\": false\n"
              "  run     t                    sum              no cache\n"
              "  run     z                    sleep_ms         impure function: "
              "never cached (add \"cache\": true to allow)\n"
              "  run     v                    identity         no cache\n"
              "5 tasks would run, 0 cached; skipped: 0 below cached results, 1 not "
              "needed by the outputs\n",
              "");
  tcli_result_free(&r);
  /* With a cache, the scheduler's own reasons. */
  r = run("run", "--explain", "--cache-dir", "c", "g.json");
  tcli_expect(r, 0,
              "explain: c\n"
              "  run     w                    write_file       a side effect: never "
              "cached\n"
              "  run     s                    range            the task says "
              "\"cache\": false\n"
              "  run     t                    sum              not in the cache\n"
              "  run     z                    sleep_ms         impure function: "
              "never cached (add \"cache\": true to allow)\n"
              "  run     v                    identity         depends on a task that "
              "cannot be cached\n"
              "5 tasks would run, 0 cached; skipped: 0 below cached results, 1 not "
              "needed by the outputs\n",
              "");
  tcli_result_free(&r);
  cr_expect_neq(access("ran", F_OK), 0);
}

Test(cli, explain_uses_the_cache) {
  const char *graph = example("cached.json");
  result r = run("run", "--explain", "--cache-dir", "c", (char *)graph);
  tcli_expect(r, 0,
              "explain: c\n"
              "  run     load                 num.slow         not in the cache\n"
              "  run     clean                num.slow         not in the cache\n"
              "  run     model                num.slow         not in the cache\n"
              "  run     report               add              not in the cache\n"
              "4 tasks would run, 0 cached; skipped: 0 below cached results, 0 not "
              "needed by the outputs\n",
              "");
  tcli_result_free(&r);
  r = run("run", "-q", "--cache-dir", "c", (char *)graph);
  tcli_expect(r, 0, "{\"report\":6562}\n", "");
  tcli_result_free(&r);
  /* The output is served whole: nothing upstream of it is even looked at. */
  r = run("run", "--explain", "--cache-dir", "c", (char *)graph);
  tcli_expect(r, 0,
              "explain: c\n"
              "  cached  report               add              in the cache\n"
              "0 tasks would run, 1 cached; skipped: 3 below cached results, 0 not "
              "needed by the outputs\n",
              "");
  tcli_result_free(&r);
  /* A changed constant: exactly the tasks downstream of it run. */
  write_edited("g.json", tcli_read_text(graph, true), "{\"ref\": \"load\"}, 400",
               "{\"ref\": \"load\"}, 401");
  r = run("run", "--explain", "--cache-dir", "c", "g.json");
  tcli_expect(r, 0,
              "explain: c\n"
              "  cached  load                 num.slow         in the cache\n"
              "  run     clean                num.slow         an input changed\n"
              "  run     model                num.slow         an input changed\n"
              "  run     report               add              an input changed\n"
              "3 tasks would run, 1 cached; skipped: 0 below cached results, 0 not "
              "needed by the outputs\n",
              "");
  tcli_result_free(&r);
  r = run("run", "--cache-dir", "c", "g.json");
  cr_expect_eq(r.status, 0);
  expect_summary(r.err, "4 tasks: 3 run, 1 cached, 0 failed");
  tcli_result_free(&r);
}

/* file and read_text are keyed by the file's content: an edit reruns
 * exactly what was computed from the file, a rewrite with the same bytes
 * nothing. */
Test(cli, file_sources_are_keyed_by_content) {
  tcli_write_file("data.txt", "one\ntwo\n");
  tcli_write_file("g.json",
                  "{\"tgraph\": 1, \"tasks\": {\n"
                  "  \"text\": {\"fn\": \"read_text\", \"args\": [\"data.txt\"], \"cache\": true},\n"
                  "  \"ls\": {\"fn\": \"lines\", \"args\": [{\"ref\": \"text\"}], \"cache\": true},\n"
                  "  \"n\": {\"fn\": \"len\", \"args\": [{\"ref\": \"ls\"}], \"cache\": true},\n"
                  "  \"raw\": {\"fn\": \"file\", \"args\": [\"data.txt\"], \"cache\": true},\n"
                  "  \"size\": {\"fn\": \"len\", \"args\": [{\"ref\": \"raw\"}], \"cache\": true},\n"
                  "  \"other\": {\"fn\": \"range\", \"args\": [3], \"cache\": true}},\n"
                  " \"outputs\": [\"n\", \"size\", \"other\"]}\n");
  const char *first = "{\"n\":2,\"size\":8,\"other\":[0,1,2]}\n";
  result r = run("run", "--cache-dir", "c", "g.json");
  tcli_expect(r, 0, first, NULL);
  expect_summary(r.err, "6 tasks: 6 run, 0 cached, 0 failed");
  tcli_result_free(&r);
  r = run("run", "--cache-dir", "c", "g.json"); /* untouched: all cached */
  tcli_expect(r, 0, first, NULL);
  expect_summary(r.err, "3 tasks: 0 run, 3 cached, 0 failed");
  tcli_result_free(&r);
  tcli_write_file("data.txt", "one\ntwo\n"); /* the same bytes again */
  r = run("run", "--cache-dir", "c", "g.json");
  tcli_expect(r, 0, first, NULL);
  expect_summary(r.err, "3 tasks: 0 run, 3 cached, 0 failed");
  tcli_result_free(&r);
  tcli_write_file("data.txt", "one\ntwo\nthree\n"); /* edited: its readers rerun */
  r = run("run", "--explain", "--cache-dir", "c", "g.json");
  tcli_expect(r, 0,
              "explain: c\n"
              "  run     text                 read_text        an input changed\n"
              "  run     ls                   lines            an input changed\n"
              "  run     n                    len              an input changed\n"
              "  run     raw                  file             an input changed\n"
              "  run     size                 len              an input changed\n"
              "  cached  other                range            in the cache\n"
              "5 tasks would run, 1 cached; skipped: 0 below cached results, 0 not "
              "needed by the outputs\n",
              "");
  tcli_result_free(&r);
  r = run("run", "--cache-dir", "c", "g.json");
  tcli_expect(r, 0, "{\"n\":3,\"size\":14,\"other\":[0,1,2]}\n", NULL);
  expect_summary(r.err, "6 tasks: 5 run, 1 cached, 0 failed");
  tcli_result_free(&r);
  r = run("run", "--cache-dir", "c", "g.json");
  expect_summary(r.err, "3 tasks: 0 run, 3 cached, 0 failed");
  tcli_result_free(&r);
}

/* A plugin's content digest is part of its functions' identity: a
 * rebuilt plugin (here: a copy with bytes appended, which ELF loaders
 * ignore) invalidates what its functions computed, and whatever used it. */
Test(cli, rebuilt_plugin_invalidates_its_results) {
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "mkdir -p p && cp \"$(dirname '%s')/../examples/plugins/"
           "libnumeric.so\" p/orig.so && cp p/orig.so p/libnumeric.so && "
           "cp p/orig.so p/rebuilt.so && printf 'rebuilt' >> p/rebuilt.so", bin);
  cr_assert_eq(system(cmd), 0);
  tcli_write_file("g.json",
                  "{\"tgraph\": 1, \"plugins\": [\"p/libnumeric.so\"], \"tasks\": {\n"
                  "  \"a\": {\"fn\": \"num.slow\", \"args\": [3, 1], \"cache\": true},\n"
                  "  \"b\": {\"fn\": \"add\", \"args\": [{\"ref\": \"a\"}, 1], \"cache\": true},\n"
                  "  \"c\": {\"fn\": \"range\", \"args\": [2], \"cache\": true}},\n"
                  " \"outputs\": [\"b\", \"c\"]}\n");
  const char *out = "{\"b\":10,\"c\":[0,1]}\n";
  result r = run("run", "--cache-dir", "c", "g.json");
  tcli_expect(r, 0, out, NULL);
  expect_summary(r.err, "3 tasks: 3 run, 0 cached, 0 failed");
  tcli_result_free(&r);
  r = run("run", "--cache-dir", "c", "g.json");
  expect_summary(r.err, "2 tasks: 0 run, 2 cached, 0 failed");
  tcli_result_free(&r);
  cr_assert_eq(system("cp p/rebuilt.so p/libnumeric.so"), 0);
  r = run("run", "--explain", "--cache-dir", "c", "g.json");
  tcli_expect(r, 0,
              "explain: c\n"
              "  run     a                    num.slow         its function changed "
              "(version, code id or plugin)\n"
              "  run     b                    add              an input changed\n"
              "  cached  c                    range            in the cache\n"
              "2 tasks would run, 1 cached; skipped: 0 below cached results, 0 not "
              "needed by the outputs\n",
              "");
  tcli_result_free(&r);
  r = run("run", "--cache-dir", "c", "g.json");
  tcli_expect(r, 0, out, NULL);
  expect_summary(r.err, "3 tasks: 2 run, 1 cached, 0 failed");
  tcli_result_free(&r);
  r = run("run", "--cache-dir", "c", "g.json");
  expect_summary(r.err, "2 tasks: 0 run, 2 cached, 0 failed");
  tcli_result_free(&r);
  /* The original build's entries are still there. */
  cr_assert_eq(system("cp p/orig.so p/libnumeric.so"), 0);
  r = run("run", "--cache-dir", "c", "g.json");
  expect_summary(r.err, "2 tasks: 0 run, 2 cached, 0 failed");
  tcli_result_free(&r);
}

Test(cli, progress_only_on_a_terminal) {
  result r = run("run", "--progress", "--no-cache",
                 (char *)example("builtins.json"));
  cr_expect_eq(r.status, 0);
  cr_expect_null(strchr(r.err, '\r'), "progress on a pipe: %s", r.err);
  tcli_result_free(&r);
  /* With stderr on a terminal the line is drawn (and cleared). */
  int master;
  pid_t pid = forkpty(&master, NULL, NULL, NULL);
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int devnull = open("/dev/null", O_WRONLY);
    dup2(devnull, 1);
    execl(bin, "tgraph", "run", "--no-cache", example("cached.json"), NULL);
    _exit(127);
  }
  char *tty = calloc(1, 1);
  size_t len = 0;
  char buf[1024];
  ssize_t n;
  while ((n = read(master, buf, sizeof buf)) > 0) tcli_append(&tty, &len, buf, (size_t)n);
  int st;
  waitpid(pid, &st, 0);
  cr_expect_eq(WEXITSTATUS(st), 0);
  cr_expect_not_null(strstr(tty, "\r[0/4] running 1, cached 0, failed 0"), "%s", tty);
  cr_expect_not_null(strstr(tty, "tgraph: 4 tasks: 4 run"), "%s", tty);
  free(tty);
  close(master);
}

Test(cli, verbose_names_plugins_and_task_timings) {
  result r = run("run", "-v", "--no-cache", "--scheduler=sync",
                 (char *)example("pi.json"));
  tcli_expect(r, 0, "{\"pi\":3.14134125}\n", NULL);
  cr_expect(strncmp(r.err, "tgraph: plugin ", 15) == 0, "%s", r.err);
  cr_expect_not_null(strstr(r.err, "/libnumeric.so: 7 functions, digest "));
  /* 17 tasks in the file; the tg.build node assembling pi's list is no task */
  cr_expect_not_null(strstr(r.err, "tgraph: 17 tasks: 17 run, 0 cached, 0 failed"));
  cr_expect_not_null(strstr(r.err, "\ntgraph:   hits0 "), "%s", r.err);
  cr_expect_null(strstr(r.err, "pi/args[0]"), "%s", r.err);
  tcli_result_free(&r);
}

/* ---- the examples, as the README runs them ---- */

Test(cli, example_pi) {
  result r = run("run", "-q", (char *)example("pi.json"));
  tcli_expect(r, 0, "{\"pi\":3.14134125}\n", "");
  tcli_result_free(&r);
}

Test(cli, example_wordcount) {
  result r = run("run", "-q", (char *)example("wordcount.json"));
  tcli_expect(r, 0,
              "{\"top\":[[\"the\",1897],[\"of\",1156],[\"to\",785],[\"or\",738],"
              "[\"a\",697],[\"and\",602],[\"you\",551],[\"license\",516],"
              "[\"this\",436],[\"in\",408]],\"words\":2075}\n",
              "");
  tcli_result_free(&r);
}

Test(cli, example_distance) {
  result r = run("run", "-q", (char *)example("distance.json"));
  tcli_expect(r, 0,
              "{\"stats\":{\"shape\":[2000,2000],\"min\":0.0,\"max\":"
              "2.710558722781119,\"mean\":1.6092157480104639}}\n",
              "");
  tcli_result_free(&r);
}

Test(cli, example_blur) {
  result r = run("run", "-q", (char *)example("blur.json"));
  tcli_expect(r, 0,
              "{\"files\":[\"/tmp/tgraph-blur-out0.pgm\",\"/tmp/tgraph-blur-out1.pgm\","
              "\"/tmp/tgraph-blur-out2.pgm\",\"/tmp/tgraph-blur-out3.pgm\"],"
              "\"means\":{\"before\":[96.89723205566406,90.70747375488281,"
              "79.51846694946289,89.24578857421875],\"after\":[96.89098739624023,"
              "90.70209884643555,79.51021194458008,89.24139785766602]}}\n",
              "");
  tcli_result_free(&r);
  FILE *f = fopen("/tmp/tgraph-blur-out3.pgm", "rb");
  cr_assert_not_null(f);
  char head[16] = "";
  cr_expect_eq(fread(head, 1, 15, f), 15);
  fclose(f);
  cr_expect_str_eq(head, "P5\n512 512\n255\n");
}

Test(cli, example_cached_pipeline) {
  result r = run("run", "-q", (char *)example("cached.json"));
  tcli_expect(r, 0, "{\"report\":6562}\n", "");
  tcli_result_free(&r);
}

/* ---- cache subcommands ---- */

/* `cache list` and `cache prune` on the empty (or missing) cache "c". */
static void expect_empty_list_and_prune(void) {
  result r = run("cache", "--cache-dir", "c", "list");
  tcli_expect(r, 0, "key                                    size  last used         "
              "    compute  function\n", "");
  tcli_result_free(&r);
  r = run("cache", "--cache-dir", "c", "prune", "--max-size", "1M");
  tcli_expect(r, 0, "removed 0 entries\n", "");
  tcli_result_free(&r);
}

Test(cli, cache_commands) {
  /* looking at a cache that does not exist does not create it */
  result r = run("cache", "--cache-dir", "c", "info");
  tcli_expect(r, 0, "directory: c (does not exist yet)\nentries:   0\nsize:      0 B (0 B in "
              "blob files)\nlimit:     none\n", "");
  tcli_result_free(&r);
  struct stat st;
  cr_expect_neq(stat("c", &st), 0, "info created the cache directory");
  expect_empty_list_and_prune();
  cr_expect_neq(stat("c", &st), 0, "list or prune created the cache directory");
  /* an existing cache */
  cr_assert_eq(mkdir("c", 0700), 0);
  r = run("cache", "--cache-dir", "c", "info");
  tcli_expect(r, 0, "directory: c\nentries:   0\nsize:      0 B (0 B in blob "
              "files)\nlimit:     none\nruns:      0 since the cache was made\n"
              "last run:  none\nhits:      0 (last run 0)\nmisses:    0 (last run 0)\n"
              "stores:    0 (last run 0)\nread:      0 B (last run 0 B)\n"
              "written:   0 B (last run 0 B)\nhit rate:  - (last run -)\n", "");
  tcli_result_free(&r);
  expect_empty_list_and_prune();
  r = run("cache", "--cache-dir", "c", "prune");
  tcli_expect(r, 2, "", "tgraph cache prune: needs --max-size SIZE (e.g. 500M)\n"
              "(see tgraph cache prune --help)\n");
  tcli_result_free(&r);
  r = run("cache", "--cache-dir", "c", "prune", "--max-size", "lots");
  tcli_expect(r, 2, "", "tgraph cache prune: --max-size needs a size such as 500M or 2G, "
              "not 'lots'\n(see tgraph cache prune --help)\n");
  tcli_result_free(&r);
  r = run("cache", "--cache-dir", "c", "clear");
  tcli_expect(r, 0, "cleared c\n", "");
  tcli_result_free(&r);
  r = run("cache", "--cache-dir", "c", "fly");
  cr_expect_eq(r.status, 2);
  cr_expect(strncmp(r.err, "tgraph cache: unknown command 'fly'\n", 36) == 0);
  tcli_result_free(&r);
}

/* Two cached results whose blob files have one size (range(0, 30000) and
 * range(1, 30001)), and sums of them that are never cached. */
static const char swap_graph[] =
    "{\"tgraph\": 1, \"tasks\": {\n"
    "  \"a\": {\"fn\": \"range\", \"args\": [0, 30000], \"cache\": true},\n"
    "  \"b\": {\"fn\": \"range\", \"args\": [1, 30001], \"cache\": true},\n"
    "  \"sa\": {\"fn\": \"sum\", \"args\": [{\"ref\": \"a\"}], \"cache\": false},\n"
    "  \"sb\": {\"fn\": \"sum\", \"args\": [{\"ref\": \"b\"}], \"cache\": false}},\n"
    " \"outputs\": [\"sa\", \"sb\"]}\n";
static const char swap_sums[] = "{\"sa\":449985000,\"sb\":450015000}\n";

/* Swap the two blob files under cache/blobs (there must be exactly two). */
static void swap_the_two_blobs(void) {
  char found[2][600], sub[300], tmp[700];
  int n = 0;
  DIR *d = opendir("cache/blobs");
  cr_assert_not_null(d);
  struct dirent *e, *f;
  while ((e = readdir(d))) {
    if (strlen(e->d_name) != 2 || e->d_name[0] == '.') continue;
    snprintf(sub, sizeof sub, "cache/blobs/%s", e->d_name);
    DIR *d2 = opendir(sub);
    while (d2 && (f = readdir(d2))) {
      if (f->d_name[0] == '.') continue;
      cr_assert_lt(n, 2, "more than two blob files");
      snprintf(found[n++], sizeof found[0], "%s/%.255s", sub, f->d_name);
    }
    if (d2) closedir(d2);
  }
  closedir(d);
  cr_assert_eq(n, 2);
  struct stat s0, s1;
  cr_assert(stat(found[0], &s0) == 0 && stat(found[1], &s1) == 0);
  cr_assert_eq(s0.st_size, s1.st_size, "the blobs must have one size");
  snprintf(tmp, sizeof tmp, "%s.x", found[0]);
  cr_assert(rename(found[0], tmp) == 0 && rename(found[1], found[0]) == 0 &&
            rename(tmp, found[1]) == 0);
}

Test(cli, swapped_blob_files_are_recomputed_not_served) {
  tcli_write_file("g.json", swap_graph);
  result r = run("run", "g.json");
  tcli_expect(r, 0, swap_sums, NULL);
  expect_summary(r.err, "4 tasks: 4 run, 0 cached, 0 failed");
  tcli_result_free(&r);
  swap_the_two_blobs();
  r = run("run", "g.json");
  tcli_expect(r, 0, swap_sums, NULL); /* not {"sa":450015000,"sb":449985000} */
  expect_summary(r.err, "4 tasks: 4 run, 0 cached, 0 failed");
  tcli_result_free(&r);
  r = run("run", "g.json"); /* stored again, good */
  tcli_expect(r, 0, swap_sums, NULL);
  expect_summary(r.err, "4 tasks: 2 run, 2 cached, 0 failed");
  tcli_result_free(&r);
  r = run("cache", "check");
  tcli_expect(r, 0, "checked 2 entries and 2 blob files: no problems\n", "");
  tcli_result_free(&r);
}

static int count_of(const char *text, const char *what) {
  int n = 0;
  for (const char *p = text; (p = strstr(p, what)); p += strlen(what)) n++;
  return n;
}

Test(cli, cache_check_and_repair) {
  result r = run("cache", "--help");
  cr_expect_neq(strstr(r.out, "  check [--repair]       verify every entry and blob file;"),
                NULL, "%s", r.out);
  tcli_result_free(&r);
  r = run("cache", "check"); /* no cache yet: nothing wrong, nothing made */
  tcli_expect(r, 0, "checked 0 entries and 0 blob files: no problems\n", "");
  tcli_result_free(&r);
  struct stat st;
  cr_expect_neq(stat("cache", &st), 0, "check created the cache directory");

  tcli_write_file("g.json", swap_graph);
  r = run("run", "-q", "g.json");
  tcli_expect(r, 0, swap_sums, "");
  tcli_result_free(&r);
  r = run("cache", "check");
  tcli_expect(r, 0, "checked 2 entries and 2 blob files: no problems\n", "");
  tcli_result_free(&r);

  swap_the_two_blobs();
  cr_assert_eq(mkdir("cache/blobs/ee", 0755), 0);
  tcli_write_file("cache/blobs/ee/000000000000000000000000000007", "junk");
  tcli_write_file("cache/blobs/ee/0007.tmp.abcdef", "part"); /* no writer holds it */
  r = run("cache", "check");
  cr_expect_eq(r.status, 1, "%s", r.err);
  cr_expect_eq(count_of(r.out, "\n"), 5, "%s", r.out);
  cr_expect_eq(count_of(r.out, "bad entry "), 2, "%s", r.out);
  cr_expect_eq(count_of(r.out, ": content checksum "), 2, "%s", r.out);
  cr_expect_neq(strstr(r.out, "orphan blob (no entry refers to it): "
                              "cache/blobs/ee/000000000000000000000000000007\n"),
                NULL, "%s", r.out);
  cr_expect_neq(strstr(r.out, "abandoned temporary file (its writer is gone): "
                              "cache/blobs/ee/0007.tmp.abcdef\n"),
                NULL, "%s", r.out);
  const char *sum = "checked 2 entries and 3 blob files: 4 problems\n";
  cr_expect_str_eq(r.out + strlen(r.out) - strlen(sum), sum);
  cr_expect_str_eq(r.err, "");
  tcli_result_free(&r);
  cr_expect_eq(stat("cache/blobs/ee/0007.tmp.abcdef", &st), 0, "check alone removes nothing");

  r = run("cache", "check", "--repair");
  cr_expect_eq(r.status, 1, "%s", r.err);
  cr_expect_eq(count_of(r.out, " (removed)\n"), 4, "%s", r.out);
  sum = "checked 2 entries and 1 blob file: 4 problems, 4 removed\n";
  cr_expect_str_eq(r.out + strlen(r.out) - strlen(sum), sum);
  tcli_result_free(&r);
  r = run("cache", "check");
  tcli_expect(r, 0, "checked 0 entries and 0 blob files: no problems\n", "");
  tcli_result_free(&r);

  r = run("cache", "check", "--fix");
  tcli_expect(r, 2, "", "tgraph cache check: unknown option '--fix'\n"
              "(see tgraph cache check --help)\n");
  tcli_result_free(&r);
}
