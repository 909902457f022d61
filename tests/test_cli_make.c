/* tests/test_cli_make.c: the make-like habits of the tgraph program, end
 * to end: --explain saying why a result is not cached, --check's exit
 * status, --force KEY, --min-compute and --cache-all, the statistics of
 * `tgraph cache info` (also with several processes at once), and the
 * JSON of --explain --json and `cache list --json` (parsed with jansson). */
#include <criterion/criterion.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_cli_util.h"

static char dir[64]; /* a fresh directory per test, also the cwd */
static const char *bin;

static void setup(void) {
  bin = tcli_bin();
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_make_XXXXXX");
  setenv("TGRAPH_CACHE_DIR", "cache", 1);
  unsetenv("TGRAPH_PLUGIN_PATH");
}

static void teardown(void) { tcli_leave_tmpdir(dir); }

TestSuite(cli_make, .init = setup, .fini = teardown, .timeout = 120);

typedef tcli_result result;

static result run_argv(char *const *args) { return tcli_run(bin, &(tcli_how){0}, args); }

#define run(...) run_argv((char *const[]){"tgraph", __VA_ARGS__, NULL})

/* Run, expect the status and stderr, and free. */
#define expect_run(status, out, err, ...)          \
  do {                                             \
    result r_ = run(__VA_ARGS__);                  \
    tcli_expect(r_, status, out, err);             \
    tcli_result_free(&r_);                         \
  } while (0)

/* stderr is exactly the summary line for these counts (any wall time). */
static void expect_summary(const char *err, const char *counts) {
  char want[256];
  snprintf(want, sizeof want, "tgraph: %s in ", counts);
  cr_expect(strncmp(err, want, strlen(want)) == 0, "stderr: %s", err);
}

/* A slow pure task (a list of 300000 numbers: tens of ms, stored), a
 * fast pure one (microseconds: under the 1 ms threshold) and an impure
 * one. */
static const char three_kinds[] =
    "{\"tgraph\": 1, \"tasks\": {\n"
    "  \"slow\": {\"fn\": \"range\", \"args\": [300000]},\n"
    "  \"fast\": {\"fn\": \"add\", \"args\": [1, 2]},\n"
    "  \"nap\": {\"fn\": \"sleep_ms\", \"args\": [1]}\n"
    "}, \"outputs\": [\"slow\", \"fast\", \"nap\"]}\n";

/* a -> b -> c, and d on its own. */
static const char chain[] =
    "{\"tgraph\": 1, \"tasks\": {\n"
    "  \"a\": {\"fn\": \"add\", \"args\": [1, 2]},\n"
    "  \"b\": {\"fn\": \"mul\", \"args\": [{\"ref\": \"a\"}, 10]},\n"
    "  \"c\": {\"fn\": \"add\", \"args\": [{\"ref\": \"b\"}, 1]},\n"
    "  \"d\": {\"fn\": \"mul\", \"args\": [3, 3]}\n"
    "}, \"outputs\": [\"c\", \"d\"]}\n";

/* ---- --explain: why a task is not cached ---- */

Test(cli_make, explain_says_why_a_result_was_not_stored) {
  tcli_write_file("g.json", three_kinds);
  expect_run(0, "explain: cache\n"
             "  run     slow                 range            not in the cache\n"
             "  run     fast                 add              not in the cache\n"
             "  run     nap                  sleep_ms         impure function: never "
             "cached (add \"cache\": true to allow)\n"
             "3 tasks would run, 0 cached; skipped: 0 below cached results, 0 not "
             "needed by the outputs\n", "", "run", "--explain", "g.json");
  expect_run(0, NULL, NULL, "run", "-q", "--scheduler", "sync", "g.json");
  result r = run("run", "--explain", "g.json");
  tcli_expect(r, 0, NULL, "");
  const char *head = "explain: cache\n"
                     "  cached  slow                 range            in the cache\n"
                     "  run     fast                 add              add's calls ran in about ";
  cr_assert(strncmp(r.out, head, strlen(head)) == 0, "stdout: %s", r.out);
  double ms = -1;
  char rest[300] = "";
  cr_assert_eq(sscanf(r.out + strlen(head), "%lf ms, %299[^\n]", &ms, rest), 2, "%s", r.out);
  cr_expect(ms >= 0 && ms < 1, "the fast call took %g ms", ms);
  cr_expect_str_eq(rest, "under the 1 ms store threshold");
  const char *tail = "  run     nap                  sleep_ms         impure function: never "
                     "cached (add \"cache\": true to allow)\n"
                     "2 tasks would run, 1 cached; skipped: 0 below cached results, 0 not "
                     "needed by the outputs\n";
  cr_expect(strstr(r.out, tail) != NULL && strcmp(strstr(r.out, tail), tail) == 0,
            "stdout: %s", r.out);
  tcli_result_free(&r);
}

/* Whether a JSON value is null. */
static bool is_null(json_t *j) { return j != NULL && json_is_null(j); }

Test(cli_make, explain_json_parses_with_every_field) {
  tcli_write_file("g.json", three_kinds);
  expect_run(0, NULL, "", "run", "-q", "--scheduler", "sync", "g.json");
  result r = run("run", "--explain", "--json", "g.json");
  tcli_expect(r, 0, NULL, "");
  json_error_t e;
  json_t *doc = json_loads(r.out, 0, &e);
  cr_assert_not_null(doc, "line %d: %s\n%s", e.line, e.text, r.out);
  cr_expect_str_eq(json_string_value(json_object_get(doc, "cache")), "cache");
  json_t *tasks = json_object_get(doc, "tasks");
  cr_assert_eq(json_array_size(tasks), 3);
  const char *keys[] = {"slow", "fast", "nap"}, *states[] = {"cached", "run", "uncacheable"};
  for (size_t i = 0; i < 3; i++) {
    json_t *t = json_array_get(tasks, i);
    cr_expect_str_eq(json_string_value(json_object_get(t, "key")), keys[i]);
    cr_expect_str_eq(json_string_value(json_object_get(t, "state")), states[i]);
    cr_expect_eq(json_is_true(json_object_get(t, "runs")), i != 0);
    cr_expect_eq(strlen(json_string_value(json_object_get(t, "cache_key"))), 32);
  }
  json_t *slow = json_array_get(tasks, 0), *fast = json_array_get(tasks, 1),
         *nap = json_array_get(tasks, 2);
  cr_expect_str_eq(json_string_value(json_object_get(slow, "function")), "range");
  cr_expect_str_eq(json_string_value(json_object_get(slow, "reason")), "in the cache");
  cr_expect(is_null(json_object_get(slow, "note")));
  cr_expect(is_null(json_object_get(slow, "seconds")));
  cr_expect_str_eq(json_string_value(json_object_get(fast, "note")), "under_threshold");
  double s = json_number_value(json_object_get(fast, "seconds"));
  cr_expect(s >= 0 && s < 0.001, "seconds %g", s);
  cr_expect_float_eq(json_number_value(json_object_get(fast, "threshold")), 0.001, 1e-12);
  const char *why = json_string_value(json_object_get(fast, "reason"));
  cr_expect(why && strncmp(why, "add's calls ran in about ", 25) == 0 &&
                strstr(why, " ms, under the 1 ms store threshold") != NULL,
            "reason %s", why ? why : "(none)");
  cr_expect_str_eq(json_string_value(json_object_get(nap, "reason")),
                   "impure function: never cached (add \"cache\": true to allow)");
  cr_expect(is_null(json_object_get(nap, "note")));
  json_t *sum = json_object_get(doc, "summary");
  cr_expect_eq(json_integer_value(json_object_get(sum, "run")), 2);
  cr_expect_eq(json_integer_value(json_object_get(sum, "cached")), 1);
  cr_expect_eq(json_integer_value(json_object_get(sum, "below_cached")), 0);
  cr_expect_eq(json_integer_value(json_object_get(sum, "not_needed")), 0);
  json_decref(doc);
  tcli_result_free(&r);
  /* Without a cache: "cache" is null, every task runs. */
  r = run("run", "--explain", "--json", "--no-cache", "g.json");
  tcli_expect(r, 0, NULL, "");
  doc = json_loads(r.out, 0, &e);
  cr_assert_not_null(doc, "%s", r.out);
  cr_expect(is_null(json_object_get(doc, "cache")));
  cr_expect_eq(json_integer_value(json_object_get(json_object_get(doc, "summary"), "run")), 3);
  json_decref(doc);
  tcli_result_free(&r);
}

Test(cli_make, json_and_check_need_the_right_company) {
  tcli_write_file("g.json", chain);
  expect_run(2, "", "tgraph run: --json goes with --explain\n(see tgraph run --help)\n",
             "run", "--json", "g.json");
  expect_run(2, "", "tgraph run: --check and --explain: one dry run at a time\n"
             "(see tgraph run --help)\n", "run", "--check", "--explain", "g.json");
}

/* ---- --check ---- */

Test(cli_make, check_exit_status_says_whether_anything_would_run) {
  tcli_write_file("g.json", chain);
  expect_run(1, "", "", "run", "--check", "g.json");
  expect_run(0, "{\"c\":31,\"d\":9}\n", NULL, "run", "-q", "--cache-all", "g.json");
  expect_run(0, "", "", "run", "--check", "g.json");
  /* -v lists what would run, on stdout. */
  expect_run(0, "", "tgraph: cache: cache\n", "run", "--check", "-v", "g.json");
  expect_run(1, "  run     b                    mul              forced (--force)\n"
             "  run     c                    add              depends on a forced task\n",
             "tgraph: cache: cache\n", "run", "--check", "-v", "--force", "b", "g.json");
  expect_run(1, "", "", "run", "--check", "--no-cache", "g.json");
  tcli_write_file("bad.json", "{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"nosuch\"}}}");
  result r = run("run", "--check", "bad.json");
  tcli_expect(r, 2, "", NULL);
  cr_expect(strncmp(r.err, "bad.json:1:", 11) == 0, "stderr: %s", r.err);
  tcli_result_free(&r);
}

/* ---- --force ---- */

Test(cli_make, force_reruns_exactly_the_task_and_its_dependents) {
  tcli_write_file("g.json", chain);
  result r = run("run", "--cache-all", "g.json");
  tcli_expect(r, 0, "{\"c\":31,\"d\":9}\n", NULL);
  expect_summary(r.err, "4 tasks: 4 run, 0 cached, 0 failed");
  tcli_result_free(&r);
  r = run("run", "g.json");
  tcli_expect(r, 0, "{\"c\":31,\"d\":9}\n", NULL);
  expect_summary(r.err, "2 tasks: 0 run, 2 cached, 0 failed");
  tcli_result_free(&r);
  r = run("run", "-v", "--force", "b", "g.json");
  tcli_expect(r, 0, "{\"c\":31,\"d\":9}\n", NULL);
  cr_expect(strstr(r.err, "tgraph: 4 tasks: 2 run, 2 cached, 0 failed in ") != NULL, "%s",
            r.err);
  cr_expect(strstr(r.err, "tgraph:   a                        cached\n") != NULL, "%s", r.err);
  cr_expect(strstr(r.err, "tgraph:   b                        worker ") != NULL, "%s", r.err);
  cr_expect(strstr(r.err, "tgraph:   c                        worker ") != NULL, "%s", r.err);
  cr_expect(strstr(r.err, "tgraph:   d                        cached\n") != NULL, "%s", r.err);
  tcli_result_free(&r);
  /* The forced results were stored again (they replace the old ones). */
  r = run("cache", "info");
  tcli_expect(r, 0, NULL, "");
  cr_expect(strstr(r.out, "\nstores:    6 (last run 2)\n") != NULL, "%s", r.out);
  tcli_result_free(&r);
  r = run("run", "--force", "b", "--force", "d", "g.json");
  expect_summary(r.err, "4 tasks: 3 run, 1 cached, 0 failed");
  tcli_result_free(&r);
  r = run("run", "--force", "a", "g.json");
  expect_summary(r.err, "4 tasks: 3 run, 1 cached, 0 failed");
  tcli_result_free(&r);
  r = run("run", "g.json");
  expect_summary(r.err, "2 tasks: 0 run, 2 cached, 0 failed");
  tcli_result_free(&r);
  expect_run(2, "", "tgraph: error: --force 'zz': the graph has no task of that key\n",
             "run", "--force", "zz", "g.json");
}

/* ---- --min-compute and --cache-all ---- */

static size_t entries_listed(void) {
  result r = run("cache", "list");
  cr_expect_eq(r.status, 0);
  size_t lines = 0;
  for (const char *p = r.out; *p; p++) lines += *p == '\n';
  tcli_result_free(&r);
  return lines - 1; /* the header */
}

Test(cli_make, min_compute_and_cache_all_store_a_fast_task) {
  tcli_write_file("g.json", "{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", "
                            "\"args\": [1, 2]}}, \"outputs\": [\"a\"]}");
  expect_run(0, "{\"a\":3}\n", NULL, "run", "-q", "g.json");
  cr_expect_eq(entries_listed(), 0);
  expect_run(1, "", "", "run", "--check", "g.json");
  expect_run(0, "{\"a\":3}\n", NULL, "run", "-q", "--min-compute", "0", "g.json");
  cr_expect_eq(entries_listed(), 1);
  expect_run(0, "", "", "run", "--check", "g.json");
  expect_run(0, NULL, NULL, "cache", "clear");
  expect_run(0, "{\"a\":3}\n", NULL, "run", "-q", "--cache-all", "g.json");
  cr_expect_eq(entries_listed(), 1);
  expect_run(2, "", "tgraph run: --min-compute needs seconds (e.g. 0, 0.01, 5ms), not "
             "'soon'\n(see tgraph run --help)\n", "run", "--min-compute", "soon", "g.json");
  expect_run(2, "", "tgraph run: option '--min-compute' needs a value\n"
             "(see tgraph run --help)\n", "run", "g.json", "--min-compute");
}

Test(cli_make, min_compute_raises_the_threshold) {
  tcli_write_file("g.json", "{\"tgraph\": 1, \"tasks\": {\"slow\": {\"fn\": \"range\", "
                            "\"args\": [300000]}}, \"outputs\": [\"slow\"]}");
  expect_run(0, NULL, NULL, "run", "-q", "--min-compute", "10", "g.json");
  cr_expect_eq(entries_listed(), 0);
  result r = run("run", "--explain", "g.json");
  tcli_expect(r, 0, NULL, "");
  cr_expect(strstr(r.out, " ms, under the 10 s store threshold\n") != NULL, "%s", r.out);
  tcli_result_free(&r);
  expect_run(0, NULL, NULL, "run", "-q", "g.json");
  cr_expect_eq(entries_listed(), 1);
}

/* ---- cache info: statistics over time ---- */

/* The number after `name` in the output of `cache info`. */
static unsigned long long info_number(const char *out, const char *name) {
  const char *p = strstr(out, name);
  cr_assert_not_null(p, "no '%s' in: %s", name, out);
  return strtoull(p + strlen(name), NULL, 10);
}

Test(cli_make, cache_info_counts_hits_misses_and_stores) {
  tcli_write_file("g.json", three_kinds);
  result r = run("cache", "info");
  tcli_expect(r, 0, "directory: cache (does not exist yet)\nentries:   0\n"
              "size:      0 B (0 B in blob files)\nlimit:     none\n", "");
  tcli_result_free(&r);
  expect_run(0, NULL, NULL, "run", "-q", "--scheduler", "sync", "g.json");
  expect_run(0, NULL, NULL, "run", "-q", "--scheduler", "sync", "g.json");
  r = run("cache", "info");
  tcli_expect(r, 0, NULL, "");
  /* first run: slow and fast missed, slow stored; second: slow hit,
   * fast missed (nap is impure: neither) */
  cr_expect(strstr(r.out, "\nruns:      2 since ") != NULL, "%s", r.out);
  cr_expect(strstr(r.out, "\nhits:      1 (last run 1)\n"
                          "misses:    3 (last run 1)\n"
                          "stores:    1 (last run 0)\n") != NULL, "%s", r.out);
  cr_expect(strstr(r.out, "\nhit rate:  25.0% (last run 50.0%)\n") != NULL, "%s", r.out);
  tcli_result_free(&r);
  expect_run(0, "statistics of cache start over\n", "", "cache", "zero-stats");
  r = run("cache", "info");
  cr_expect(strstr(r.out, "\nruns:      0 since ") != NULL, "%s", r.out);
  cr_expect(strstr(r.out, "\nhits:      0 (last run 1)\nmisses:    0 (last run 1)\n"
                          "stores:    0 (last run 0)\n") != NULL, "%s", r.out);
  tcli_result_free(&r);
  expect_run(0, NULL, NULL, "run", "-q", "g.json");
  r = run("cache", "info");
  cr_expect(strstr(r.out, "\nruns:      1 since ") != NULL, "%s", r.out);
  cr_expect(strstr(r.out, "\nhits:      1 (last run 1)\nmisses:    1 (last run 1)\n") !=
                NULL, "%s", r.out);
  tcli_result_free(&r);
  /* A run without a cache, and a dry run, count nothing. */
  expect_run(0, NULL, NULL, "run", "-q", "--no-cache", "g.json");
  expect_run(0, NULL, NULL, "run", "--explain", "g.json");
  r = run("cache", "info");
  cr_expect_eq(info_number(r.out, "\nruns:"), 1);
  tcli_result_free(&r);
}

/* Several processes adding their counts at once lose none. */
Test(cli_make, cache_info_counts_every_run_of_concurrent_processes) {
  tcli_write_file("g.json", chain);
  enum { N = 6 };
  pid_t pids[N];
  for (int i = 0; i < N; i++) {
    pids[i] = fork();
    cr_assert_geq(pids[i], 0);
    if (pids[i] == 0) {
      int null = open("/dev/null", O_RDWR);
      dup2(null, 1);
      dup2(null, 2);
      execl(bin, "tgraph", "run", "--cache-all", "g.json", (char *)NULL);
      _exit(127);
    }
  }
  for (int i = 0; i < N; i++) {
    int st;
    cr_assert_eq(waitpid(pids[i], &st, 0), pids[i]);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "run %d: status %d", i, st);
  }
  result r = run("cache", "info");
  tcli_expect(r, 0, NULL, "");
  cr_expect_eq(info_number(r.out, "\nruns:"), N, "%s", r.out);
  /* Each run either finds c and d (2 hits) or computes the 4 tasks (4
   * misses), or a mix when another process stored some meanwhile: every
   * output is counted, as a hit or through its misses. */
  unsigned long long hits = info_number(r.out, "\nhits:"),
                     misses = info_number(r.out, "\nmisses:");
  cr_expect_geq(hits + misses, 2 * N, "%s", r.out);
  cr_expect_leq(hits + misses, 4 * N, "%s", r.out);
  tcli_result_free(&r);
  /* Serially afterwards: exactly 2 hits more, no miss. */
  expect_run(0, NULL, NULL, "run", "-q", "g.json");
  r = run("cache", "info");
  cr_expect_eq(info_number(r.out, "\nruns:"), N + 1, "%s", r.out);
  cr_expect_eq(info_number(r.out, "\nhits:"), hits + 2, "%s", r.out);
  cr_expect_eq(info_number(r.out, "\nmisses:"), misses, "%s", r.out);
  tcli_result_free(&r);
}

/* ---- cache list --json ---- */

Test(cli_make, cache_list_json_parses) {
  expect_run(0, "{\"directory\": \"cache\", \"entries\": []}\n", "", "cache", "list",
             "--json");
  tcli_write_file("g.json", chain);
  expect_run(0, NULL, NULL, "run", "-q", "--cache-all", "g.json");
  result r = run("cache", "list", "--json");
  tcli_expect(r, 0, NULL, "");
  json_error_t e;
  json_t *doc = json_loads(r.out, 0, &e);
  cr_assert_not_null(doc, "line %d: %s\n%s", e.line, e.text, r.out);
  cr_expect_str_eq(json_string_value(json_object_get(doc, "directory")), "cache");
  json_t *es = json_object_get(doc, "entries");
  cr_assert_eq(json_array_size(es), 4);
  size_t adds = 0, muls = 0;
  double last = 1e300;
  for (size_t i = 0; i < 4; i++) {
    json_t *x = json_array_get(es, i);
    const char *fn = json_string_value(json_object_get(x, "function"));
    cr_assert_not_null(fn);
    adds += strcmp(fn, "add") == 0;
    muls += strcmp(fn, "mul") == 0;
    cr_expect_eq(strlen(json_string_value(json_object_get(x, "key"))), 32);
    cr_expect_gt(json_integer_value(json_object_get(x, "size")), 0);
    cr_expect(json_is_false(json_object_get(x, "in_blob")));
    double used = json_number_value(json_object_get(x, "last_used"));
    cr_expect_geq(used, json_number_value(json_object_get(x, "created")));
    cr_expect_leq(used, last, "most recently used first");
    last = used;
    cr_expect_geq(json_number_value(json_object_get(x, "compute_seconds")), 0);
  }
  cr_expect_eq(adds, 2);
  cr_expect_eq(muls, 2);
  json_decref(doc);
  tcli_result_free(&r);
  expect_run(2, "",
             "tgraph cache list: unknown option '--jsn'\n(see tgraph cache list --help)\n",
             "cache", "list", "--jsn");
}
