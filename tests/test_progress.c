/* tests/test_progress.c: the progress line (tg_compute_opts.progress,
 * and tgraph run's display, which is the same one): drawn only on a
 * terminal whose TERM is not dumb, one total for the whole run, tg.build
 * nodes not counted, never longer than the terminal is wide, erased at
 * the end. Through the C API on a pty, and through the program in a
 * real terminal (tmux, 40 columns). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <pty.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "test_cli_util.h"
#include "tgraph.h"
#include "tgraph/builtins.h"
#include "tgraph/graphjson.h"

static char dir[64];
static const char *bin;

static void setup(void) {
  bin = tcli_bin();
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_progress_XXXXXX");
  setenv("TGRAPH_CACHE_DIR", "cache", 1);
  setenv("TERM", "xterm", 1);
}

static void teardown(void) {
  char cmd[200];
  snprintf(cmd, sizeof cmd, "tmux -S %s/tmux.sock kill-server >/dev/null 2>&1", dir);
  if (access("tmux.sock", F_OK) == 0) (void)system(cmd);
  tcli_leave_tmpdir(dir);
}

TestSuite(progress, .init = setup, .fini = teardown, .timeout = 120);

/* A graph.json of n sleep_ms(ms) tasks s0.. (the first ncached with
 * "cache": true, the others sleeping slow_ms) and an output "all" taking
 * them all in one list: a tg.build node assembles that list, so the run
 * has n + 2 nodes but n + 1 tasks. */
static char *sleeps_graph(int n, int ms, int ncached, int slow_ms) {
  size_t size = 200 + (size_t)n * 120;
  char *text = malloc(size);
  size_t len = (size_t)snprintf(text, size, "{\"tgraph\": 1, \"tasks\": {\n");
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(text + len, size - len,
                            "\"s%d\": {\"fn\": \"sleep_ms\", \"args\": [%d]%s},\n", i,
                            i < ncached ? ms : slow_ms, i < ncached ? ", \"cache\": true" : "");
  len += (size_t)snprintf(text + len, size - len, "\"all\": {\"fn\": \"len\", \"args\": [[");
  for (int i = 0; i < n; i++)
    len += (size_t)snprintf(text + len, size - len, "%s{\"ref\": \"s%d\"}", i ? ", " : "", i);
  snprintf(text + len, size - len, "]]}}, \"outputs\": [\"all\"]}\n");
  return text;
}

/* What a progress display wrote: each line drawn ("\r" LINE "\033[K"). */
typedef struct drawn {
  size_t lines, longest, empty_at_end;
  long total;       /* the total of the first line, -1 if none */
  bool one_total;   /* every line has that total */
  bool cleared;     /* the last thing drawn is "\r\033[K" */
} drawn;

static drawn parse_drawn(const char *tty) {
  drawn d = {0, 0, 0, -1, true, false};
  const char *last_clear = NULL;
  for (const char *p = tty; (p = strchr(p, '\r')) != NULL; p++) {
    const char *end = strstr(p, "\033[K");
    if (end == NULL) break;
    size_t n = (size_t)(end - p - 1);
    if (n == 0) {
      last_clear = p;
      continue;
    }
    if (p[1] != '[') continue; /* a "\r\n" of the terminal, not a drawing */
    d.lines++;
    if (n > d.longest) d.longest = n;
    long closed, total;
    if (sscanf(p + 1, "[%ld/%ld]", &closed, &total) != 2) d.one_total = false;
    else if (d.total < 0) d.total = total;
    else if (total != d.total) d.one_total = false;
    last_clear = NULL;
  }
  d.cleared = last_clear != NULL;
  return d;
}

/* Read all a pty's child writes until it exits; its exit status. */
static int read_pty(int master, pid_t pid, char **out) {
  char *tty = calloc(1, 1), buf[4096];
  size_t len = 0;
  ssize_t n;
  while ((n = read(master, buf, sizeof buf)) > 0) tcli_append(&tty, &len, buf, (size_t)n);
  int st;
  waitpid(pid, &st, 0);
  close(master);
  *out = tty;
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static atomic_int events;

static void count_event(void *ctx, const tg_event *e) {
  (void)ctx;
  if (e->kind != TG_EVENT_STARTED) atomic_fetch_add(&events, 1);
}

/* The child of a pty: compute a 40-task graph (+ its tg.build node) with
 * progress; print the closing events seen by its own callback. */
static void api_child(bool progress) {
  tg_registry *reg;
  tg_graph *g;
  tg_graphjson_info *info;
  tg_error err;
  tg_error_clear(&err);
  char *text = sleeps_graph(40, 20, 0, 20);
  if (tg_registry_new(&reg) || tg_registry_add_builtins(reg) ||
      tg_graphjson_parse(text, strlen(text), "g.json", NULL, reg, NULL, &g, &info, &err))
    _exit(3);
  tg_value *res;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V3, .scheduler = "threads", .workers = 2,
                       .on_event = count_event, .progress = progress};
  if (tg_compute(g, info->output_nodes, 1, &o, &res) != TG_OK) _exit(4);
  printf("result %lld, closing events %d\n", (long long)tg_value_int(res),
         atomic_load(&events));
  fflush(stdout);
  _exit(0);
}

static pid_t pty_fork(int *master, unsigned short cols) {
  struct winsize ws = {.ws_row = 20, .ws_col = cols};
  pid_t pid = forkpty(master, NULL, NULL, &ws);
  cr_assert_geq(pid, 0);
  return pid;
}

Test(progress, api_draws_on_a_terminal_within_its_width) {
  int master;
  pid_t pid = pty_fork(&master, 40);
  if (pid == 0) api_child(true);
  char *tty;
  cr_assert_eq(read_pty(master, pid, &tty), 0, "%s", tty);
  drawn d = parse_drawn(tty);
  cr_expect_gt(d.lines, 0, "nothing drawn: %s", tty);
  cr_expect_eq(d.total, 41, "40 sleeps and their output, not the tg.build node: %s", tty);
  cr_expect(d.one_total, "the total changed: %s", tty);
  cr_expect_leq(d.longest, 39, "a line as wide as a 40-column terminal: %s", tty);
  cr_expect(d.cleared, "the line was left on the terminal: %s", tty);
  /* the caller's callback saw every task (tg.build nodes report none) */
  cr_expect_not_null(strstr(tty, "result 40, closing events 41\r\n"), "%s", tty);
  free(tty);
}

Test(progress, api_wide_terminal_gets_the_whole_line) {
  int master;
  pid_t pid = pty_fork(&master, 200);
  if (pid == 0) api_child(true);
  char *tty;
  cr_assert_eq(read_pty(master, pid, &tty), 0, "%s", tty);
  cr_expect_not_null(strstr(tty, "\r[0/41] running "), "%s", tty);
  cr_expect_not_null(strstr(tty, " tasks/s, ETA "), "%s", tty);
  free(tty);
}

Test(progress, api_nothing_without_the_option_under_term_dumb_or_off_a_terminal) {
  for (int mode = 0; mode < 2; mode++) { /* option off; TERM=dumb */
    int master;
    pid_t pid = pty_fork(&master, 80);
    if (pid == 0) {
      if (mode == 1) setenv("TERM", "dumb", 1);
      api_child(mode == 1);
    }
    char *tty;
    cr_assert_eq(read_pty(master, pid, &tty), 0, "%s", tty);
    cr_expect_str_eq(tty, "result 40, closing events 41\r\n");
    free(tty);
  }
  /* stderr on a pipe */
  int e[2];
  cr_assert_eq(pipe(e), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(e[1], 2);
    close(e[0]);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    api_child(true);
  }
  close(e[1]);
  char buf[256];
  ssize_t n = read(e[0], buf, sizeof buf);
  close(e[0]);
  int st;
  waitpid(pid, &st, 0);
  cr_expect_eq(WEXITSTATUS(st), 0);
  cr_expect_eq(n, 0, "progress on a pipe: %.*s", (int)(n > 0 ? n : 0), buf);
}

/* ---- the program ---- */

/* tgraph run ARGS on a pty cols wide; its output. */
static char *run_on_pty(unsigned short cols, const char *term, char *const *args) {
  int master;
  pid_t pid = pty_fork(&master, cols);
  if (pid == 0) {
    setenv("TERM", term, 1);
    int null = open("/dev/null", O_WRONLY);
    dup2(null, 1); /* the results */
    execv(bin, args);
    _exit(127);
  }
  char *tty;
  cr_assert_eq(read_pty(master, pid, &tty), 0, "%s", tty);
  return tty;
}

Test(progress, cli_one_total_with_cached_tasks_and_no_tg_build) {
  char *text = sleeps_graph(101, 5, 100, 400); /* s100 runs every time */
  tcli_write_file("g.json", text);
  free(text);
  char *args[] = {(char *)bin, "run", "g.json", NULL};
  char *tty = run_on_pty(120, "xterm", args);
  drawn d = parse_drawn(tty);
  cr_expect_eq(d.total, 102, "%s", tty);
  cr_expect(d.one_total, "%s", tty);
  cr_expect_not_null(strstr(tty, "tgraph: 102 tasks: 102 run, 0 cached, 0 failed in "), "%s",
                     tty);
  free(tty);
  /* again: 100 sleeps come from the cache; the run has 102 tasks still
   * (all and s100 run, 100 are cached, and all's tg.build node is none):
   * the total does not move from what the outputs need to what the run
   * has once it starts */
  tty = run_on_pty(120, "xterm", args);
  d = parse_drawn(tty);
  cr_expect_gt(d.lines, 0, "%s", tty);
  cr_expect_eq(d.total, 102, "%s", tty);
  cr_expect(d.one_total, "%s", tty);
  cr_expect_not_null(strstr(tty, "tgraph: 102 tasks: 2 run, 100 cached, 0 failed in "), "%s",
                     tty);
  free(tty);
  /* -v lists the file's tasks only; --explain counts them */
  tcli_result r = tcli_run(bin, &(tcli_how){0}, (char *const[]){"tgraph", "run", "-v",
                                                                 "g.json", NULL});
  cr_expect_eq(r.status, 0, "%s", r.err);
  cr_expect_null(strstr(r.err, "/args["), "%s", r.err);
  cr_expect_not_null(strstr(r.err, "\ntgraph:   all                      worker "), "%s", r.err);
  tcli_result_free(&r);
  r = tcli_run(bin, &(tcli_how){0}, (char *const[]){"tgraph", "run", "--explain", "--no-cache",
                                                     "g.json", NULL});
  cr_expect_eq(r.status, 0, "%s", r.err);
  const char *sum = "102 tasks would run, 0 cached; skipped: 0 below cached results, "
                    "0 not needed by the outputs\n";
  cr_expect_str_eq(r.out + strlen(r.out) - strlen(sum), sum);
  cr_expect_null(strstr(r.out, "/args["), "%s", r.out);
  tcli_result_free(&r);
}

Test(progress, cli_off_under_term_dumb_and_no_progress) {
  tcli_write_file("g.json", "{\"tgraph\": 1, \"tasks\": {\"s\": {\"fn\": \"sleep_ms\", "
                            "\"args\": [400]}}, \"outputs\": [\"s\"]}");
  char *args[] = {(char *)bin, "run", "--no-cache", "g.json", NULL};
  char *tty = run_on_pty(80, "dumb", args);
  cr_expect_null(strstr(tty, "[0/1]"), "%s", tty);
  cr_expect_not_null(strstr(tty, "tgraph: 1 task: 1 run"), "%s", tty);
  free(tty);
  char *off[] = {(char *)bin, "run", "--no-cache", "--no-progress", "g.json", NULL};
  tty = run_on_pty(80, "xterm", off);
  cr_expect_null(strstr(tty, "[0/1]"), "%s", tty);
  free(tty);
}

/* tmux with its own server socket in the test directory. */
static int tmux(const char *args, char *out, size_t size) {
  char cmd[2048];
  snprintf(cmd, sizeof cmd, "tmux -S %s/tmux.sock %s", dir, args);
  FILE *p = popen(cmd, "r");
  cr_assert_not_null(p);
  size_t n = out ? fread(out, 1, size - 1, p) : 0;
  if (out) out[n] = '\0';
  int st = pclose(p);
  return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* 200 short tasks in a 40 x 20 pane: while the run lasts the pane shows
 * the line; when it is over no progress line is left and none ever
 * wrapped (a line wider than the pane wrapped, and each redraw left a
 * row behind: the pane filled with stale lines). */
Test(progress, cli_fits_a_40_column_terminal) {
  if (system("command -v tmux >/dev/null 2>&1") != 0) cr_skip_test("tmux is not installed");
  char *text = sleeps_graph(200, 10, 0, 10);
  tcli_write_file("g.json", text);
  free(text);
  char args[2048], pane[16384];
  snprintf(args, sizeof args,
           "-f /dev/null new-session -d -s p -x 40 -y 20 -c %s "
           "'TERM=xterm %s run --no-cache --workers 2 g.json >/dev/null; echo EXIT:$?; "
           "sleep 60'", dir, bin);
  cr_assert_eq(tmux(args, NULL, 0), 0);
  bool seen = false;
  long widest = 0; /* the widest progress row seen */
  double end = tcli_now() + 60;
  for (;;) {
    tmux("capture-pane -p -t p", pane, sizeof pane);
    if (strstr(pane, "EXIT:")) break;
    if (strstr(pane, "/201] running ")) seen = true;
    for (char *line = pane, *nl; (nl = strchr(line, '\n')); line = nl + 1)
      if (line[0] == '[' && nl - line > widest) widest = nl - line;
    cr_assert_lt(tcli_now(), end, "the run never ended: %s", pane);
    usleep(20000);
  }
  cr_expect(seen, "no progress line was seen while the run lasted");
  cr_expect_lt(widest, 40, "a progress row as wide as the pane");
  cr_expect_not_null(strstr(pane, "EXIT:0\n"), "%s", pane);
  /* joined (-J): the summary may wrap at 40 columns, as any text does */
  tmux("capture-pane -p -J -t p", pane, sizeof pane);
  cr_expect(strncmp(pane, "tgraph: 201 tasks: 201 run, 0 cached, 0 failed in ", 50) == 0,
            "the pane holds more than the summary: %s", pane);
  cr_expect_null(strstr(pane, "/201]"), "a stale progress line: %s", pane);
}
