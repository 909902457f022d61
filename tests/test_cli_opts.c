/* tests/test_cli_opts.c: the tgraph program's option parsing, end to
 * end: options in any position, the messages for every kind of mistake
 * (exact stderr, exit status 2), -h/--help of every command and
 * subcommand printed from the same tables the parser reads, -j, "-" for
 * standard input and "--". */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "test_cli_util.h"
#include "tgraph.h"

static char dir[64];
static const char *bin;

static void setup(void) {
  bin = tcli_bin();
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_opts_XXXXXX");
  setenv("TGRAPH_CACHE_DIR", "cache", 1);
  unsetenv("TGRAPH_PLUGIN_PATH");
  unsetenv("POSIXLY_CORRECT");
}

static void teardown(void) { tcli_leave_tmpdir(dir); }

TestSuite(cli_opts, .init = setup, .fini = teardown, .timeout = 60);

typedef tcli_result result;

static result run_in(int in_fd, char *const *args) {
  return tcli_run(bin, &(tcli_how){.in_fd = in_fd}, args);
}

#define run(...) run_in(0, (char *const[]){"tgraph", __VA_ARGS__, NULL})

static const char graph[] =
    "{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"add\", \"args\": [1, 2]}}, "
    "\"outputs\": [\"a\"]}\n";

/* The usage error of `tgraph CMD ...`: "tgraph CMD: WHAT" and the pointer
 * to its help, exit status 2, nothing on stdout. */
static void expect_usage(result r, const char *cmd, const char *what) {
  char want[512];
  snprintf(want, sizeof want, "tgraph %s: %s\n(see tgraph %s --help)\n", cmd, what, cmd);
  tcli_expect(r, 2, "", want);
  tcli_result_free(&r);
}

Test(cli_opts, options_before_between_and_after_arguments) {
  tcli_write_file("g.json", graph);
  const char *const orders[][5] = {
      {"-q", "--no-cache", "g.json", "-j", "2"},
      {"g.json", "-q", "-j", "2", "--no-cache"},
      {"-qj2", "g.json", "--no-cache", NULL, NULL},
      {"--workers=2", "g.json", "--quiet", "--no-cache", NULL},
  };
  for (size_t i = 0; i < sizeof orders / sizeof orders[0]; i++) {
    char *args[8] = {"tgraph", "run"};
    for (size_t k = 0; k < 5 && orders[i][k]; k++) args[2 + k] = (char *)orders[i][k];
    result r = run_in(0, args);
    tcli_expect(r, 0, "{\"a\":3}\n", "");
    tcli_result_free(&r);
  }
}

Test(cli_opts, cache_options_before_or_after_the_subcommand) {
  const char *want = "directory: d (does not exist yet)\nentries:   0\n"
                     "size:      0 B (0 B in blob files)\nlimit:     none\n";
  result r = run("cache", "--cache-dir", "d", "info");
  tcli_expect(r, 0, want, "");
  tcli_result_free(&r);
  r = run("cache", "info", "--cache-dir", "d");
  tcli_expect(r, 0, want, "");
  tcli_result_free(&r);
  r = run("cache", "info", "--cache-dir=d");
  tcli_expect(r, 0, want, "");
  tcli_result_free(&r);
  r = run("cache", "prune", "--cache-dir", "d", "--max-size", "1M");
  tcli_expect(r, 0, "removed 0 entries\n", "");
  tcli_result_free(&r);
  r = run("cache", "--cache-dir", "d", "check", "--repair");
  tcli_expect(r, 0, "checked 0 entries and 0 blob files: no problems\n", "");
  tcli_result_free(&r);
  struct stat st;
  cr_expect_neq(stat("d", &st), 0, "looking at a cache created it");
}

Test(cli_opts, each_mistake_named_exactly) {
  tcli_write_file("g.json", graph);
  /* -j2 is -j 2: the graph is then the only argument (this once said
   * "unknown option 'run'") */
  result r = run("run", "-j2", "-q", "--no-cache", "g.json");
  tcli_expect(r, 0, "{\"a\":3}\n", "");
  tcli_result_free(&r);
  expect_usage(run("run", "-x", "g.json"), "run", "unknown option '-x'");
  expect_usage(run("run", "-qx", "g.json"), "run", "unknown option '-x'");
  expect_usage(run("run", "--no-cache", "-xq", "g.json"), "run", "unknown option '-x'");
  expect_usage(run("run", "g.json", "--bogus=1"), "run", "unknown option '--bogus'");
  expect_usage(run("run", "--no-cache=1", "g.json"), "run",
               "option '--no-cache' takes no value");
  expect_usage(run("run", "g.json", "--workers"), "run", "option '--workers' needs a value");
  expect_usage(run("run", "g.json", "-j"), "run", "option '-j' needs a value");
  expect_usage(run("run", "g.json", "-qj"), "run", "option '-j' needs a value");
  expect_usage(run("run", "-j", "many", "g.json"), "run",
               "--workers needs a count from 0 to 4096, not 'many'");
  expect_usage(run("run", "--help=1"), "run", "option '--help' takes no value");
  expect_usage(run("run", "--work", "3", "g.json"), "run",
               "option '--work' is ambiguous (--workers, --workers-file)");
  r = run("run", "--verb", "--no-cache", "g.json"); /* a unique abbreviation */
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect(strncmp(r.err, "tgraph: 1 task: 1 run, 0 cached", 31) == 0, "%s", r.err);
  tcli_result_free(&r);
  expect_usage(run("inspect", "-x", "f.tgv"), "inspect", "unknown option '-x'");
  expect_usage(run("inspect", "a", "b"), "inspect", "unexpected argument 'b'");
  expect_usage(run("inspect", "--preview"), "inspect", "option '--preview' needs a value");
  expect_usage(run("cache", "-x", "info"), "cache", "unknown option '-x'");
  expect_usage(run("cache"), "cache", "missing command (info, list, check, clear, prune or zero-stats)");
  expect_usage(run("cache", "info", "-x"), "cache info", "unknown option '-x'");
  expect_usage(run("cache", "list", "extra"), "cache list", "unexpected argument 'extra'");
  expect_usage(run("cache", "clear", "--repair"), "cache clear", "unknown option '--repair'");
  expect_usage(run("cache", "info", "--cache-dir"), "cache info",
               "option '--cache-dir' needs a value");
  expect_usage(run("worker", "--nthreads"), "worker", "option '--nthreads' needs a value");
  expect_usage(run("worker", "-x"), "worker", "unknown option '-x'");
  expect_usage(run("keys", "generate", "-x", "k"), "keys", "unknown option '-x'");
  expect_usage(run("keys", "make", "k"), "keys",
               "unknown command 'make' (expected 'generate DIR')");
  expect_usage(run("keys", "generate"), "keys", "missing DIR");
  expect_usage(run("version", "-x"), "version", "unknown option '-x'");
}

/* `tgraph ARGS... --help` prints "usage: tgraph WHO" and each of the
 * lines in want (NULL-terminated), exit status 0, nothing on stderr. */
static void expect_help(char *const *args, const char *who, const char *const *want) {
  result r = run_in(0, args);
  char usage[128];
  snprintf(usage, sizeof usage, "usage: tgraph %s", who);
  cr_expect_eq(r.status, 0, "%s: %s", who, r.err);
  cr_expect_str_eq(r.err, "");
  cr_expect(strncmp(r.out, usage, strlen(usage)) == 0, "%s: %s", who, r.out);
  for (size_t i = 0; want[i]; i++)
    cr_expect_not_null(strstr(r.out, want[i]), "%s: no '%s' in\n%s", who, want[i], r.out);
  tcli_result_free(&r);
}

Test(cli_opts, help_of_every_command_and_subcommand) {
  expect_help((char *const[]){"tgraph", "run", "--help", NULL}, "run [options] GRAPH.json",
              (const char *const[]){"\n  -j, --workers N         worker count",
                                    "\n      --no-cache          neither read",
                                    "\n      --dashboard[=ADDR]  serve the report",
                                    "\n  -h, --help              this help\n", NULL});
  expect_help((char *const[]){"tgraph", "run", "g.json", "-h", NULL}, "run",
              (const char *const[]){"--max-graph-size SIZE\n", NULL});
  expect_help((char *const[]){"tgraph", "inspect", "--help", NULL}, "inspect [options] FILE",
              (const char *const[]){"\n      --max-input SIZE  ", NULL});
  expect_help((char *const[]){"tgraph", "cache", "--help", NULL}, "cache [options] info|",
              (const char *const[]){"\n      --cache-dir DIR  ", NULL});
  expect_help((char *const[]){"tgraph", "cache", "prune", "--help", NULL},
              "cache prune --max-size SIZE [options]",
              (const char *const[]){"\n      --max-size SIZE  the most the cache may hold",
                                    "\n      --cache-dir DIR  ", NULL});
  expect_help((char *const[]){"tgraph", "cache", "check", "-h", NULL}, "cache check [options]",
              (const char *const[]){"\n      --repair         remove what is bad\n", NULL});
  expect_help((char *const[]){"tgraph", "worker", "--help", NULL}, "worker [options]",
              (const char *const[]){"\n  -j, --nthreads N  ", NULL});
  expect_help((char *const[]){"tgraph", "keys", "--help", NULL}, "keys generate DIR\n",
              (const char *const[]){"\n  -h, --help", NULL});
  expect_help((char *const[]){"tgraph", "version", "--help", NULL}, "version\n",
              (const char *const[]){"\n  -h, --help", NULL});
}

Test(cli_opts, dash_is_standard_input) {
  tcli_write_file("g.json", graph);
  int in = open("g.json", O_RDONLY);
  cr_assert_geq(in, 0);
  result r = run_in(in, (char *const[]){"tgraph", "run", "-q", "--no-cache", "-", NULL});
  close(in);
  tcli_expect(r, 0, "{\"a\":3}\n", "");
  tcli_result_free(&r);

  /* a dump on standard input, for inspect */
  tg_error err;
  tg_error_clear(&err);
  tg_value *v = tg_str_c("hello");
  cr_assert_eq(tg_dump(v, "v.tgv", NULL, &err), TG_OK, "%s", err.msg);
  tg_value_unref(v);
  struct stat st;
  cr_assert_eq(stat("v.tgv", &st), 0);
  in = open("v.tgv", O_RDONLY);
  r = run_in(in, (char *const[]){"tgraph", "inspect", "-", NULL});
  close(in);
  char want[256];
  snprintf(want, sizeof want, "file:    - (%lld B)\ntype:    str of 5 bytes\n"
           "preview: \"hello\"\n", (long long)st.st_size);
  tcli_expect(r, 0, want, "");
  tcli_result_free(&r);
  /* bounded: more than --max-input is refused, naming the input */
  in = open("v.tgv", O_RDONLY);
  r = run_in(in, (char *const[]){"tgraph", "inspect", "--max-input", "8", "-", NULL});
  close(in);
  snprintf(want, sizeof want, "tgraph: error: standard input '/dev/stdin': %lld bytes, "
           "more than the limit of 8\n", (long long)st.st_size);
  tcli_expect(r, 1, "", want);
  tcli_result_free(&r);
}

Test(cli_opts, double_dash_ends_the_options) {
  result r = run("run", "-q", "--", "-x.json");
  tcli_expect(r, 2, "", "-x.json: No such file or directory\n");
  tcli_result_free(&r);
  expect_usage(run("run", "--", "a.json", "b.json"), "run",
               "one graph at a time ('b.json' is extra)");
}
