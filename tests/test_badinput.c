/* tests/test_badinput.c: the tgraph program given bad input: devices,
 * directories, FIFOs nobody writes to or that never end, outputs whose
 * file names collide, refs nested too deep, a byte-order mark, retries out
 * of range, and IPv6 worker addresses. Each case runs the built binary
 * (TGRAPH_BIN) and checks its exit status and message exactly, and that
 * it returns in bounded time. */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_cli_util.h"

static char dir[64]; /* a fresh directory per test, also the cwd */
static const char *bin;

static void setup(void) {
  bin = tcli_bin();
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_badinput_XXXXXX");
  setenv("TGRAPH_CACHE_DIR", "cache", 1);
  unsetenv("TGRAPH_PLUGIN_PATH");
  signal(SIGPIPE, SIG_IGN);
}

static void teardown(void) { tcli_leave_tmpdir(dir); }

TestSuite(badinput, .init = setup, .fini = teardown, .timeout = 120);

typedef tcli_result result;

/* Run tgraph with stdin from in_fd (-1: /dev/null). A run that has not
 * ended after 60 s is killed and fails the test: none of these may hang. */
#define run_stdin(fd, ...)                                                             \
  tcli_run(bin, &(tcli_how){.in_fd = (fd), .timeout = 60},                            \
           (char *const[]){"tgraph", __VA_ARGS__, NULL})
#define run(...) run_stdin(-1, __VA_ARGS__)

static const char ok_graph[] =
    "{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\", \"args\": [41]}}}\n";

/* A child that runs `sh -c cmd`, in its own process group (killed whole). */
static pid_t spawn_sh(const char *cmd) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    setpgid(0, 0);
    execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
    _exit(127);
  }
  setpgid(pid, pid);
  return pid;
}

static void reap(pid_t pid) {
  kill(-pid, SIGKILL);
  kill(pid, SIGKILL);
  waitpid(pid, NULL, 0);
}

/* ---- files that are not files ---- */

Test(badinput, graph_that_is_a_device_or_directory) {
  result r = run("run", "--no-cache", "/dev/zero");
  tcli_expect(r, 2, "", "/dev/zero: a character device, not a regular file or a pipe\n");
  cr_expect_lt(r.seconds, 20);
  tcli_result_free(&r);
  cr_assert_eq(mkdir("d.json", 0777), 0);
  r = run("run", "--no-cache", "d.json");
  tcli_expect(r, 2, "", "d.json: a directory, not a regular file or a pipe\n");
  tcli_result_free(&r);
  r = run("run", "--no-cache", "-"); /* stdin is /dev/null here */
  tcli_expect(r, 2, "", "standard input '/dev/stdin': a character device, not a regular "
                   "file or a pipe\n");
  tcli_result_free(&r);
}

Test(badinput, plugin_that_is_not_a_regular_file) {
  tcli_write_file("g.json", ok_graph);
  result r = run("run", "--no-cache", "--plugin", "/dev/zero", "g.json");
  tcli_expect(r, 2, "", "plugin '/dev/zero': a character device, not a regular file\n");
  cr_expect_lt(r.seconds, 20);
  tcli_result_free(&r);
  /* A FIFO with no writer would block open() and then hashing forever. */
  cr_assert_eq(mkfifo("p.so", 0600), 0);
  r = run("run", "--no-cache", "--plugin", "./p.so", "g.json");
  tcli_expect(r, 2, "", "plugin './p.so': a FIFO or pipe, not a regular file\n");
  cr_expect_lt(r.seconds, 20);
  tcli_result_free(&r);
  /* The worker loads plugins the same way. */
  r = run("worker", "--plugin", "/dev/zero");
  tcli_expect(r, 2, "", "tgraph: error: plugin '/dev/zero': a character device, not a "
                   "regular file\n");
  cr_expect_lt(r.seconds, 20);
  tcli_result_free(&r);
}

Test(badinput, workers_file_that_is_a_device_or_endless) {
  tcli_write_file("g.json", ok_graph);
  result r = run("run", "--no-cache", "--scheduler", "tcp", "--workers-file",
                 "/dev/zero", "g.json");
  tcli_expect(r, 2, "", "tgraph: error: workers file '/dev/zero': a character device, "
                   "not a regular file or a pipe\n");
  cr_expect_lt(r.seconds, 20);
  tcli_result_free(&r);
  cr_assert_eq(mkfifo("w.txt", 0600), 0);
  pid_t yes = spawn_sh("exec yes tcp://127.0.0.1:1 2>/dev/null > w.txt");
  r = run("run", "--no-cache", "--scheduler", "tcp", "--workers-file", "w.txt",
          "g.json");
  reap(yes);
  tcli_expect(r, 2, "", "tgraph: error: workers file 'w.txt': more than the limit of "
                   "1048576 bytes\n");
  cr_expect_lt(r.seconds, 30);
  tcli_result_free(&r);
  /* Nobody writes: a bounded wait, then the reason. */
  r = run("run", "--no-cache", "--scheduler", "tcp", "--workers-file", "w.txt",
          "g.json");
  tcli_expect(r, 2, "", "tgraph: error: workers file 'w.txt': a FIFO that no process "
                   "wrote to within 5 s\n");
  cr_expect_lt(r.seconds, 40);
  tcli_result_free(&r);
  /* NUL bytes are not addresses (they read as empty lines before). */
  FILE *f = fopen("nul.txt", "w");
  fwrite("tcp://127.0.0.1:1\n\0\0\n", 1, 21, f);
  fclose(f);
  r = run("run", "--no-cache", "--scheduler", "tcp", "--workers-file", "nul.txt",
          "g.json");
  tcli_expect(r, 2, "", "tgraph: error: workers file 'nul.txt': line 2 has a NUL byte "
                   "(not a text file)\n");
  tcli_result_free(&r);
}

/* ---- FIFOs and pipes as graph.json ---- */

Test(badinput, graph_fifo_without_writer) {
  cr_assert_eq(mkfifo("f.json", 0600), 0);
  result r = run("run", "--no-cache", "f.json");
  tcli_expect(r, 2, "", "f.json: a FIFO that no process wrote to within 5 s\n");
  cr_expect_gt(r.seconds, 4.5); /* it did wait for a writer */
  cr_expect_lt(r.seconds, 40);
  tcli_result_free(&r);
}

Test(badinput, graph_fifo_endless_writer) {
  cr_assert_eq(mkfifo("f.json", 0600), 0);
  pid_t yes = spawn_sh("exec yes 2>/dev/null > f.json");
  result r = run("run", "--no-cache", "--max-graph-size", "1M", "f.json");
  reap(yes);
  tcli_expect(r, 2, "", "f.json: more than the limit of 1048576 bytes\n");
  cr_expect_lt(r.seconds, 30);
  tcli_result_free(&r);
}

Test(badinput, graph_too_big_refused_before_reading) {
  tcli_write_file("g.json", ok_graph);
  result r = run("run", "--no-cache", "--max-graph-size", "16", "g.json");
  char want[128];
  snprintf(want, sizeof want, "g.json: %zu bytes, more than the limit of 16\n",
           strlen(ok_graph));
  tcli_expect(r, 2, "", want);
  tcli_result_free(&r);
  r = run("run", "--no-cache", "--max-graph-size", "lots", "g.json");
  tcli_expect(r, 2, "", "tgraph run: --max-graph-size needs a size such as 64M or 4G, "
                   "not 'lots'\n(see tgraph run --help)\n");
  tcli_result_free(&r);
}

Test(badinput, finite_pipes_still_work) {
  const char *paths[] = {"-", "/dev/stdin"};
  for (int i = 0; i < 2; i++) {
    int p[2];
    cr_assert_eq(pipe(p), 0);
    cr_assert_eq(write(p[1], ok_graph, strlen(ok_graph)), (ssize_t)strlen(ok_graph));
    close(p[1]);
    result r = run_stdin(p[0], "run", "-q", "--no-cache", (char *)paths[i]);
    close(p[0]);
    tcli_expect(r, 0, "{\"a\":41}\n", "");
    tcli_result_free(&r);
  }
  /* A FIFO whose writer comes a moment later. */
  cr_assert_eq(mkfifo("f.json", 0600), 0);
  tcli_write_file("src.json", ok_graph);
  pid_t w = spawn_sh("sleep 1; exec cat src.json > f.json");
  result r = run("run", "-q", "--no-cache", "f.json");
  tcli_expect(r, 0, "{\"a\":41}\n", "");
  tcli_result_free(&r);
  waitpid(w, NULL, 0);
  /* A writer that is there but slow (no data yet) is waited for. */
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t slow = fork();
  cr_assert_geq(slow, 0);
  if (slow == 0) {
    close(p[0]);
    sleep(6); /* longer than the wait for a FIFO's first writer */
    ssize_t n = write(p[1], ok_graph, strlen(ok_graph));
    _exit(n == (ssize_t)strlen(ok_graph) ? 0 : 1);
  }
  close(p[1]);
  r = run_stdin(p[0], "run", "-q", "--no-cache", "-");
  close(p[0]);
  waitpid(slow, NULL, 0);
  tcli_expect(r, 0, "{\"a\":41}\n", "");
  tcli_result_free(&r);
}

/* ---- --output ---- */

Test(badinput, output_names_that_collide) {
  tcli_write_file("g.json",
                  "{\"tgraph\": 1, \"tasks\": {\"a/b\": {\"fn\": \"identity\", \"args\": [1]},"
                  " \"c\": {\"fn\": \"identity\", \"args\": [2]},"
                  " \"a_b\": {\"fn\": \"identity\", \"args\": [3]}},"
                  " \"outputs\": [\"a/b\", \"c\", \"a_b\"]}");
  result r = run("run", "--no-cache", "--output", "out", "g.json");
  tcli_expect(r, 2, "", "tgraph: error: outputs 'a/b' and 'a_b' would both be written "
                   "to 'out/a_b.tgv' (--output): rename one\n");
  tcli_result_free(&r);
  struct stat st;
  cr_expect_eq(stat("out", &st), -1, "nothing is written, not even the directory");
  /* Distinct names still write one file each. */
  tcli_write_file("h.json",
                  "{\"tgraph\": 1, \"tasks\": {\"a/b\": {\"fn\": \"identity\", \"args\": [1]},"
                  " \"ab\": {\"fn\": \"identity\", \"args\": [3]}}}");
  r = run("run", "-q", "--no-cache", "--output", "out", "h.json");
  tcli_expect(r, 0, "{\"key\":\"a/b\",\"file\":\"out/a_b.tgv\",\"bytes\":128,"
              "\"type\":\"int\",\"value\":1}\n{\"key\":\"ab\",\"file\":"
              "\"out/ab.tgv\",\"bytes\":128,\"type\":\"int\",\"value\":3}\n", "");
  tcli_result_free(&r);
  cr_expect_eq(stat("out/a_b.tgv", &st), 0);
  cr_expect_eq(stat("out/ab.tgv", &st), 0);
}

/* ---- graph.json text ---- */

/* {"tgraph":1,"tasks":{"a":...,"b":{"fn":"identity","args":[ARG]}}} with
 * ARG a ref inside `depth` lists; *col: the ref's column. */
static void deep_ref_graph(const char *path, int depth, unsigned *col) {
  static const char head[] = "{\"tgraph\":1,\"tasks\":{\"a\":{\"fn\":\"identity\","
                             "\"args\":[1]},\"b\":{\"fn\":\"identity\",\"args\":[";
  FILE *f = fopen(path, "w");
  cr_assert_not_null(f);
  fputs(head, f);
  for (int i = 0; i < depth; i++) fputc('[', f);
  fputs("{\"ref\":\"a\"}", f);
  for (int i = 0; i < depth; i++) fputc(']', f);
  fputs("]}},\"outputs\":[\"b\"]}", f);
  fclose(f);
  *col = (unsigned)(sizeof head - 1) + (unsigned)depth + 1;
}

Test(badinput, ref_nested_too_deep) {
  unsigned col;
  deep_ref_graph("ok.json", 255, &col); /* the deepest that builds */
  result r = run("run", "-q", "--no-cache", "ok.json");
  cr_expect_eq(r.status, 0, "stderr: %s", r.err);
  cr_expect_str_eq(r.err, "");
  tcli_result_free(&r);
  deep_ref_graph("deep.json", 256, &col);
  r = run("run", "--no-cache", "deep.json");
  char want[256];
  snprintf(want, sizeof want, "deep.json:1:%u: nesting deeper than 255 levels "
           "around a ref (lists and maps that hold refs nest at most 255 levels)\n",
           col);
  tcli_expect(r, 2, "", want);
  tcli_result_free(&r);
}

Test(badinput, byte_order_mark) {
  tcli_write_file("bom.json", "\xEF\xBB\xBF{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": "
                         "\"identity\", \"args\": [7]}}}");
  result r = run("run", "-q", "--no-cache", "bom.json");
  tcli_expect(r, 0, "{\"a\":7}\n", "");
  tcli_result_free(&r);
  /* The mark is not a column: 'idnetity' is at column 37 either way. */
  tcli_write_file("bad.json", "\xEF\xBB\xBF{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": "
                         "\"idnetity\", \"args\": [7]}}}");
  r = run("run", "--no-cache", "bad.json");
  tcli_expect(r, 2, "", "bad.json:1:37: unknown function 'idnetity' (did you mean "
                   "'identity'?)\n");
  tcli_result_free(&r);
}

Test(badinput, retries_out_of_range) {
  const char *text = "{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"identity\", "
                     "\"args\": [1], \"retries\": 40000}}}";
  tcli_write_file("r.json", text);
  result r = run("run", "--no-cache", "r.json");
  char want[128];
  snprintf(want, sizeof want, "r.json:1:%d: \"retries\" must be an int from 0 to "
           "1000\n", (int)(strstr(text, "40000") - text) + 1);
  tcli_expect(r, 2, "", want);
  tcli_result_free(&r);
  tcli_write_file("g.json", ok_graph);
  r = run("run", "--no-cache", "--retries", "1001", "g.json");
  tcli_expect(r, 2, "", "tgraph run: --retries needs a count from 0 to 1000, not "
                   "'1001'\n(see tgraph run --help)\n");
  tcli_result_free(&r);
}

/* ---- IPv6 ---- */

static bool has_ipv6_loopback(void) {
  FILE *f = fopen("/proc/net/if_inet6", "r");
  char line[256];
  bool yes = false;
  while (f && !yes && fgets(line, sizeof line, f))
    yes = strncmp(line, "00000000000000000000000000000001", 32) == 0;
  if (f) fclose(f);
  return yes;
}

Test(badinput, worker_on_ipv6_loopback) {
  if (!has_ipv6_loopback())
    cr_skip_test("this machine has no IPv6 loopback (::1 not in /proc/net/if_inet6)");
  int o[2];
  cr_assert_eq(pipe(o), 0);
  pid_t w = fork();
  cr_assert_geq(w, 0);
  if (w == 0) {
    dup2(o[1], 1);
    close(o[0]), close(o[1]);
    execl(bin, "tgraph", "worker", "--listen", "tcp://[::1]:*", "--nthreads", "1",
          (char *)NULL);
    _exit(127);
  }
  close(o[1]);
  char line[256] = "";
  size_t n = 0;
  struct pollfd p = {o[0], POLLIN, 0};
  while (n + 1 < sizeof line && !memchr(line, '\n', n) && poll(&p, 1, 30000) > 0) {
    ssize_t k = read(o[0], line + n, sizeof line - 1 - n);
    if (k <= 0) break;
    n += (size_t)k;
    line[n] = '\0';
  }
  close(o[0]);
  char addr[128] = "";
  bool listening = sscanf(line, "listening on %127s", addr) == 1;
  if (!listening) reap(w);
  cr_assert(listening, "worker said: '%s'", line);
  cr_expect(strncmp(addr, "tcp://[::1]:", 12) == 0, "%s", addr);
  tcli_write_file("g.json", ok_graph);
  result r = run("run", "-q", "--no-cache", "--scheduler", "tcp", "--connect", addr,
                 "g.json");
  kill(w, SIGTERM);
  waitpid(w, NULL, 0);
  tcli_expect(r, 0, "{\"a\":41}\n", "");
  tcli_result_free(&r);
}
