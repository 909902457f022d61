/* tests/test_interrupt.c: stopping a run leaves nothing behind. Through
 * the tgraph program (TGRAPH_BIN): SIGINT and SIGTERM on each local
 * backend (exit status, the one "interrupted:" line, no process left, the
 * cache keeps what was committed), kill -9 of `tgraph run` and of
 * `tgraph worker` (nothing they started outlives them), Ctrl-C pressed in
 * a real terminal (tmux); and through the C API, a compute cancelled from
 * another thread with a tg_cancel.
 *
 * The commands are `sleep` with unique numbers as their arguments: a scan
 * of /proc for those numbers finds every process a test started. The
 * test process is a subreaper, so what a killed tgraph leaves behind
 * becomes its child and can be seen (and reaped) here. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "test_cli_util.h"
#include "test_proc.h"
#include "tgraph.h"
#include "tgraph/builtins.h"

static char dir[64]; /* a fresh directory per test, also the cwd */
static const char *bin;
static char base[32]; /* this test's marker: a prefix of every sleep's argument */

static void setup(void) {
  static int counter;
  bin = tcli_bin();
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_intr_XXXXXX");
  setenv("TGRAPH_CACHE_DIR", "cache", 1);
  unsetenv("TGRAPH_PLUGIN_PATH");
  cr_assert_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
  snprintf(base, sizeof base, "9%d%03d", (int)getpid(), counter++);
}

static int live_children(pid_t except);
static void reap_adopted(pid_t keep);

/* After a failed check: end what the test started (all of it is our
 * descendants, adopted as subreaper), by pid. */
static void kill_leftovers(void) {
  char cmd[160];
  snprintf(cmd, sizeof cmd, "tmux -S %s/tmux.sock kill-server >/dev/null 2>&1", dir);
  if (access("tmux.sock", F_OK) == 0) (void)system(cmd);
  for (int round = 0; round < 3 && live_children(-1) > 0; round++) {
    DIR *d = opendir("/proc");
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
      pid_t pid = (pid_t)atoi(e->d_name), ppid;
      char state;
      if (pid > 0 && tproc_stat(pid, &state, &ppid) && ppid == getpid()) kill(pid, SIGKILL);
    }
    if (d) closedir(d);
    usleep(100000);
    reap_adopted(-1);
  }
}

static void teardown(void) {
  kill_leftovers();
  tcli_leave_tmpdir(dir);
}

TestSuite(interrupt, .init = setup, .fini = teardown);

static void pause_ms(int ms) {
  struct timespec d = {ms / 1000, (long)(ms % 1000) * 1000000L};
  nanosleep(&d, NULL);
}

/* The text of file path, malloc'd. */
static char *slurp(const char *path) { return strdup(tcli_read_text(path, true)); }

/* ---- processes ---------------------------------------------------------------- */

/* Whether /proc/PID's command line holds `needle` (zombies have none). */
static bool cmdline_has(const char *pid, const char *needle, bool at_start) {
  char path[300], buf[4096];
  snprintf(path, sizeof path, "/proc/%s/cmdline", pid);
  int fd = open(path, O_RDONLY);
  if (fd < 0) return false;
  ssize_t n = read(fd, buf, sizeof buf - 1);
  close(fd);
  if (n <= 0) return false;
  for (ssize_t i = 0; i < n; i++)
    if (buf[i] == '\0') buf[i] = ' ';
  buf[n] = '\0';
  char *at = strstr(buf, needle);
  return at != NULL && (!at_start || at == buf);
}

/* Processes alive whose command line holds `needle` (at its start when
 * `at_start`). */
static int count_where(const char *needle, bool at_start) {
  DIR *d = opendir("/proc");
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] >= '1' && e->d_name[0] <= '9' &&
        cmdline_has(e->d_name, needle, at_start))
      n++;
  closedir(d);
  return n;
}

static int count_alive(const char *needle) { return count_where(needle, false); }

/* Our children that are not zombies, other than `except`. */
static int live_children(pid_t except) {
  DIR *d = opendir("/proc");
  cr_assert_not_null(d);
  int n = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (e->d_name[0] < '1' || e->d_name[0] > '9') continue;
    pid_t pid = (pid_t)atoi(e->d_name), ppid;
    char state;
    if (pid != except && tproc_stat(pid, &state, &ppid) && ppid == getpid() && state != 'Z')
      n++;
  }
  closedir(d);
  return n;
}

/* Reap the zombies adopted as subreaper (never `keep`). */
static void reap_adopted(pid_t keep) {
  DIR *d = opendir("/proc");
  struct dirent *e;
  while (d && (e = readdir(d)) != NULL) {
    pid_t p = (pid_t)atoi(e->d_name);
    if (p > 0 && p != keep) waitpid(p, NULL, WNOHANG);
  }
  if (d) closedir(d);
}

/* Wait until `want` processes are command `m` (the sleeps run). */
static void wait_running(const char *m, int want) {
  double end = tcli_now() + 60;
  while (count_where(m, true) < want) {
    cr_assert_lt(tcli_now(), end, "the commands holding %s did not start", m);
    pause_ms(20);
  }
}

/* Within `seconds`, nothing holding the marker and no child but `except`
 * is alive; fails naming what is left. */
static void expect_all_gone(double seconds, pid_t except) {
  double end = tcli_now() + seconds;
  int left, kids;
  for (;;) {
    reap_adopted(except);
    left = count_alive(base);
    kids = live_children(except);
    if ((left == 0 && kids == 0) || tcli_now() > end) break;
    pause_ms(20);
  }
  cr_expect_eq(left, 0, "%d processes of the run are alive %.1f s later", left, seconds);
  cr_expect_eq(kids, 0, "%d descendants are alive %.1f s later", kids, seconds);
  if (left || kids) {
    char cmd[128];
    snprintf(cmd, sizeof cmd, "ps -o pid,ppid,pgid,stat,args -e | grep -e %s -e tgraph >&2", base);
    (void)system(cmd);
  }
}

/* Start tgraph with the NULL-terminated arguments, stdout and stderr to
 * out.txt and err.txt, stdin /dev/null. */
static pid_t start_argv(char *const *args) {
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    int in = open("/dev/null", O_RDONLY);
    int out = open("out.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open("err.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, 0), dup2(out, 1), dup2(err, 2);
    execv(bin, args);
    _exit(127);
  }
  return pid;
}
#define start(...) start_argv((char *const[]){"tgraph", __VA_ARGS__, NULL})


static int wait_status(pid_t pid) {
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* q1 and q2 finish at once and are stored; s1 and s2 each run two
 * sleeps that hold the marker (sleep M1 & sleep M2 and M3, M4). */
static void write_graph(const char *path, const char *outputs) {
  char text[1024];
  snprintf(text, sizeof text,
           "{\"tgraph\": 1, \"tasks\": {\n"
           " \"q1\": {\"fn\": \"sh\", \"args\": [\"echo one\"], \"cache\": true},\n"
           " \"q2\": {\"fn\": \"sh\", \"args\": [\"echo two\"], \"cache\": true},\n"
           " \"s1\": {\"fn\": \"sh\", \"args\": [\"sleep %s1 & sleep %s2; echo $1\", "
           "{\"ref\": \"q1\"}]},\n"
           " \"s2\": {\"fn\": \"sh\", \"args\": [\"sleep %s3 & sleep %s4; echo $1\", "
           "{\"ref\": \"q2\"}]}},\n"
           " \"outputs\": [%s]}\n",
           base, base, base, base, outputs);
  tcli_write_file(path, text);
}

/* The marker of sleep number k. */
static const char *marker(int k) {
  static char m[4][40];
  snprintf(m[k % 4], sizeof m[k % 4], "sleep %s%d", base, k);
  return m[k % 4];
}

/* ---- SIGINT and SIGTERM ------------------------------------------------------------- */

static void interrupt_case(char *sched, int sig) {
  write_graph("g.json", "\"s1\", \"s2\"");
  pid_t pid = start("run", "--scheduler", sched, "--workers", "2", "g.json");
  /* sync runs one task at a time: s1 (after q1); the others both */
  bool one = strcmp(sched, "sync") == 0;
  wait_running(marker(1), 1);
  wait_running(marker(2), 1);
  if (!one) wait_running(marker(3), 1), wait_running(marker(4), 1);
  cr_assert_eq(kill(pid, sig), 0);
  double t0 = tcli_now();
  int status = wait_status(pid);
  double took = tcli_now() - t0;
  char *err = slurp("err.txt"), *out = slurp("out.txt");
  char want[256];
  snprintf(want, sizeof want,
           "tgraph: interrupted: %d of 4 tasks done, %d stored in the cache; "
           "run again to resume\n", one ? 1 : 2, one ? 1 : 2);
  cr_expect_eq(status, 128 + sig, "%s: exit status %d, stderr: %s", sched, status, err);
  cr_expect_str_eq(err, want, "%s", sched);
  cr_expect_str_eq(out, "", "%s", sched);
  cr_expect_lt(took, 10.0, "%s: stopping took %.1f s", sched, took);
  /* the commands ended before the run did */
  cr_expect_eq(count_alive(base), 0, "%s: commands left running", sched);
  expect_all_gone(2.0, -1);
  free(err);
  free(out);
  /* what was committed before the signal is served on the next run */
  write_graph("q.json", "\"q1\", \"q2\"");
  pid = start("run", "--scheduler", "sync", "q.json");
  cr_expect_eq(wait_status(pid), 0);
  err = slurp("err.txt");
  const char *counts = one ? "tgraph: 2 tasks: 1 run, 1 cached, 0 failed in "
                           : "tgraph: 2 tasks: 0 run, 2 cached, 0 failed in ";
  cr_expect(strncmp(err, counts, strlen(counts)) == 0, "%s: re-run said: %s", sched, err);
  free(err);
}

Test(interrupt, sigint_on_sync) { interrupt_case("sync", SIGINT); }
Test(interrupt, sigterm_on_sync) { interrupt_case("sync", SIGTERM); }
Test(interrupt, sigint_on_threads) { interrupt_case("threads", SIGINT); }
Test(interrupt, sigterm_on_threads) { interrupt_case("threads", SIGTERM); }
Test(interrupt, sigint_on_processes) { interrupt_case("processes", SIGINT); }
Test(interrupt, sigterm_on_processes) { interrupt_case("processes", SIGTERM); }

/* Start a run on sched of one sh command that ignores SIGTERM, once its
 * two sleeps run. */
static pid_t start_stubborn(char *sched) {
  char text[512];
  snprintf(text, sizeof text,
           "{\"tgraph\": 1, \"tasks\": {\"t\": {\"fn\": \"sh\", \"args\": "
           "[\"trap '' TERM; sleep %s1 & sleep %s2; wait\"]}}}\n", base, base);
  tcli_write_file("g.json", text);
  pid_t pid = start("run", "--scheduler", sched, "--no-cache", "g.json");
  wait_running(marker(1), 1);
  wait_running(marker(2), 1);
  return pid;
}

/* A command that ignores SIGTERM is killed after the grace period; the
 * run still ends with the one line. */
Test(interrupt, command_ignoring_sigterm_is_killed) {
  pid_t pid = start_stubborn("threads");
  cr_assert_eq(kill(pid, SIGINT), 0);
  int status = wait_status(pid);
  char *err = slurp("err.txt");
  cr_expect_eq(status, 130, "stderr: %s", err);
  cr_expect_str_eq(err, "tgraph: interrupted: 0 of 1 tasks done; without a cache "
                        "a new run starts over\n");
  expect_all_gone(1.0, -1);
  free(err);
}

/* While the first Ctrl-C waits for a command that ignores SIGTERM, a
 * second one stops at once, and the commands die with the run. */
Test(interrupt, second_sigint_stops_at_once) {
  pid_t pid = start_stubborn("processes");
  cr_assert_eq(kill(pid, SIGINT), 0);
  pause_ms(300); /* within the 2 s the command is given */
  cr_assert_eq(kill(pid, SIGINT), 0);
  double t0 = tcli_now();
  int status = wait_status(pid);
  double took = tcli_now() - t0;
  char *err = slurp("err.txt");
  cr_expect_eq(status, 130, "stderr: %s", err);
  cr_expect_str_eq(err, "tgraph: interrupted again: stopping at once\n");
  cr_expect_lt(took, 1.0, "the second SIGINT took %.1f s", took);
  expect_all_gone(1.5, -1);
  free(err);
}

/* A run started with SIGINT ignored (a background command of a shell
 * without job control) leaves it ignored; SIGTERM still stops it. */
Test(interrupt, ignored_sigint_stays_ignored) {
  write_graph("g.json", "\"s1\", \"s2\"");
  struct sigaction ign = {.sa_handler = SIG_IGN}, old;
  sigaction(SIGINT, &ign, &old); /* inherited through fork and exec */
  pid_t pid = start("run", "--scheduler", "threads", "--workers", "2", "g.json");
  sigaction(SIGINT, &old, NULL);
  for (int k = 1; k <= 4; k++) wait_running(marker(k), 1);
  char sleeps[48];
  snprintf(sleeps, sizeof sleeps, "sleep %s", base);
  cr_assert_eq(kill(pid, SIGINT), 0);
  pause_ms(500);
  cr_expect_eq(waitpid(pid, NULL, WNOHANG), 0, "SIGINT stopped the run");
  cr_expect_eq(count_where(sleeps, true), 4, "SIGINT reached the commands");
  cr_assert_eq(kill(pid, SIGTERM), 0);
  cr_expect_eq(wait_status(pid), 143);
  expect_all_gone(2.0, -1);
}

/* A command's background processes end with its task: at once when they
 * heed SIGTERM, after the grace period when they ignore it. */
Test(interrupt, sh_leftovers_end_with_the_task) {
  char text[1024];
  snprintf(text, sizeof text,
           "{\"tgraph\": 1, \"tasks\": {\n"
           " \"a\": {\"fn\": \"sh\", \"args\": [\"sleep %s1 >/dev/null 2>&1 & echo a\"]},\n"
           " \"b\": {\"fn\": \"sh\", \"args\": [\"(trap '' TERM; touch ignoring; "
           "exec sleep %s2) >/dev/null 2>&1 & "
           "until [ -e ignoring ]; do sleep 0.01; done; echo b\"]}}}\n", base, base);
  tcli_write_file("g.json", text);
  double t0 = tcli_now();
  pid_t pid = start("run", "-q", "--scheduler", "threads", "--no-cache", "g.json");
  int status = wait_status(pid);
  double took = tcli_now() - t0;
  char *out = slurp("out.txt"), *err = slurp("err.txt");
  cr_expect_eq(status, 0, "stderr: %s", err);
  cr_expect_str_eq(out, "{\"a\":{\"$bytes\":\"YQo=\"},\"b\":{\"$bytes\":\"Ygo=\"}}\n");
  cr_expect_eq(count_alive(base), 0, "a command's background process outlived its task");
  cr_expect_geq(took, 1.9, "the one ignoring SIGTERM was given %.1f s, not 2", took);
  cr_expect_lt(took, 15.0);
  free(out);
  free(err);
}

/* ---- kill -9 -------------------------------------------------------------------- */

static void kill9_case(char *sched) {
  write_graph("g.json", "\"s1\", \"s2\"");
  pid_t pid = start("run", "--scheduler", sched, "--workers", "2", "g.json");
  wait_running(marker(1), 1);
  wait_running(marker(2), 1);
  cr_assert_eq(kill(pid, SIGKILL), 0);
  cr_assert_eq(wait_status(pid), 128 + SIGKILL);
  expect_all_gone(1.5, -1);
}

Test(interrupt, kill9_of_run_on_sync) { kill9_case("sync"); }
Test(interrupt, kill9_of_run_on_threads) { kill9_case("threads"); }
Test(interrupt, kill9_of_run_on_processes) { kill9_case("processes"); }

/* The address a worker printed ("listening on ADDRESS") to out.txt. */
static void worker_address(char *addr, size_t size) {
  double end = tcli_now() + 30;
  for (;;) {
    if (access("worker.txt", F_OK) != 0) { /* not made yet */
      cr_assert_lt(tcli_now(), end, "the worker did not start");
      pause_ms(20);
      continue;
    }
    char *out = slurp("worker.txt");
    char *p = strstr(out, "listening on ");
    if (p && strchr(p, '\n')) {
      p += strlen("listening on ");
      size_t n = (size_t)(strchr(p, '\n') - p);
      cr_assert_lt(n, size);
      memcpy(addr, p, n);
      addr[n] = '\0';
      free(out);
      return;
    }
    free(out);
    cr_assert_lt(tcli_now(), end, "the worker did not start");
    pause_ms(20);
  }
}

/* Start `tgraph worker` on a free loopback port; its address in addr. */
static pid_t start_worker(char *addr, size_t size) {
  pid_t w = fork();
  cr_assert_geq(w, 0);
  if (w == 0) {
    int in = open("/dev/null", O_RDONLY);
    int out = open("worker.txt", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, 0), dup2(out, 1), dup2(out, 2);
    execl(bin, "tgraph", "worker", "--listen", "tcp://127.0.0.1:*", "--nthreads", "2",
          (char *)NULL);
    _exit(127);
  }
  worker_address(addr, size);
  return w;
}

Test(interrupt, kill9_of_worker_running_sh) {
  char addr[128];
  pid_t w = start_worker(addr, sizeof addr);
  write_graph("g.json", "\"s1\", \"s2\"");
  pid_t run = start("run", "--scheduler", "tcp", "--connect", addr, "--no-cache", "g.json");
  wait_running(marker(1), 1);
  wait_running(marker(2), 1);
  cr_assert_eq(kill(w, SIGKILL), 0);
  cr_assert_eq(wait_status(w), 128 + SIGKILL);
  expect_all_gone(1.5, run); /* the run itself waits for another worker */
  kill(run, SIGKILL);
  wait_status(run);
}

/* On tcp the workers are told: their commands end and the run says how
 * far it got. */
Test(interrupt, sigterm_on_tcp) {
  char addr[128];
  pid_t w = start_worker(addr, sizeof addr);
  write_graph("g.json", "\"s1\", \"s2\"");
  pid_t pid = start("run", "--scheduler", "tcp", "--connect", addr, "g.json");
  for (int k = 1; k <= 4; k++) wait_running(marker(k), 1);
  cr_assert_eq(kill(pid, SIGTERM), 0);
  int status = wait_status(pid);
  char *err = slurp("err.txt");
  cr_expect_eq(status, 143, "stderr: %s", err);
  cr_expect_str_eq(err, "tgraph: interrupted: 2 of 4 tasks done, 2 stored in the "
                        "cache; run again to resume\n");
  free(err);
  double end = tcli_now() + 5;
  while (count_alive(base) > 0 && tcli_now() < end) pause_ms(20);
  cr_expect_eq(count_alive(base), 0, "the worker's commands ran on");
  kill(w, SIGTERM);
  wait_status(w);
  expect_all_gone(2.0, -1);
}

/* ---- Ctrl-C in a terminal ----------------------------------------------------------- */

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

/* The pane's text once it holds `want` (within 30 s). */
static void wait_pane(const char *want, char *buf, size_t size) {
  double end = tcli_now() + 30;
  for (;;) {
    tmux("capture-pane -p -t intr", buf, size);
    if (strstr(buf, want) != NULL) return;
    cr_assert_lt(tcli_now(), end, "the terminal never showed '%s': %s", want, buf);
    pause_ms(50);
  }
}

/* A user at an interactive shell starts a run and presses Ctrl-C: the
 * terminal sends SIGINT to the run's process group. */
Test(interrupt, ctrl_c_in_a_terminal) {
  if (system("command -v tmux >/dev/null 2>&1") != 0)
    cr_skip_test("tmux is not installed");
  write_graph("g.json", "\"s1\", \"s2\"");
  char args[2048], buf[8192];
  snprintf(args, sizeof args,
           "-f /dev/null new-session -d -s intr -x 160 -y 40 -c %s "
           "'env -i PATH=/usr/bin:/bin TERM=xterm PS1=READY HOME=%s bash --norc --noprofile -i'",
           dir, dir);
  setenv("TERM", "xterm", 0);
  cr_assert_eq(tmux(args, NULL, 0), 0);
  wait_pane("READY", buf, sizeof buf);
  snprintf(args, sizeof args,
           "send-keys -t intr 'TGRAPH_CACHE_DIR=cache %s run --scheduler threads "
           "--workers 2 g.json; echo EXIT=$? | tr = :' Enter", bin);
  cr_assert_eq(tmux(args, NULL, 0), 0);
  wait_running(marker(1), 1);
  wait_running(marker(2), 1);
  wait_running(marker(3), 1);
  wait_running(marker(4), 1);
  cr_assert_eq(tmux("send-keys -t intr C-c", NULL, 0), 0);
  wait_pane("EXIT:", buf, sizeof buf); /* the typed line has EXIT= */
  cr_expect(strstr(buf, "EXIT:130\n") != NULL, "the terminal shows: %s", buf);
  cr_expect(strstr(buf, "tgraph: interrupted: 2 of 4 tasks done, 2 stored in the "
                        "cache; run again to resume\n") != NULL,
            "the terminal shows: %s", buf);
  cr_expect_eq(count_alive(base), 0, "commands left running after Ctrl-C");
}

/* ---- the C API: tg_cancel -------------------------------------------------------------- */

typedef struct canceller {
  tg_cancel *flag;
  atomic_int started; /* the slow task's STARTED event came */
  double raised_at;
} canceller;

static void on_event(void *ctx, const tg_event *ev) {
  canceller *c = ctx;
  if (ev->kind == TG_EVENT_STARTED && strcmp(ev->key, "slow") == 0)
    atomic_store(&c->started, 1);
}

static void *cancel_when_started(void *arg) {
  canceller *c = arg;
  while (!atomic_load(&c->started)) pause_ms(5);
  wait_running(marker(1), 1); /* its command runs */
  c->raised_at = tcli_now();
  tg_cancel_set(c->flag);
  return NULL;
}

/* fast (stored in the cache) -> slow (an sh sleep); the thread raises the
 * flag once slow's command runs. */
static void api_case(const char *sched) {
  tg_registry *reg;
  tg_graph *g;
  tg_cache *cache;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_OK);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  cr_assert_eq(tg_cache_open("cache", NULL, &cache, NULL), TG_OK);
  tg_node fast, slow;
  tg_arg a = tg_arg_value(tg_str_c("echo fast"));
  tg_node_opts fo = {TG_NODE_OPTS_V1, "fast", -1, 1, 0, 0};
  cr_assert_eq(tg_graph_add(g, "sh", &a, 1, &fo, &fast), TG_OK);
  char cmd[128];
  snprintf(cmd, sizeof cmd, "sleep %s1 & sleep %s2; echo $1", base, base);
  tg_arg b[2] = {tg_arg_value(tg_str_c(cmd)), tg_arg_node(fast)};
  tg_node_opts so = {TG_NODE_OPTS_V1, "slow", -1, -1, 0, 0};
  cr_assert_eq(tg_graph_add(g, "sh", b, 2, &so, &slow), TG_OK);
  canceller c = {0};
  cr_assert_eq(tg_cancel_new(&c.flag), TG_OK);
  cr_assert(!tg_cancel_is_set(c.flag));
  tg_compute_stats st;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V2, .scheduler = sched, .workers = 2,
                       .cache = cache, .stats = &st, .on_event = on_event,
                       .event_ctx = &c, .cancel = c.flag};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, cancel_when_started, &c), 0);
  tg_value *res = (tg_value *)1;
  int rc = tg_compute(g, &slow, 1, &o, &res);
  double took = tcli_now() - c.raised_at;
  pthread_join(th, NULL);
  cr_expect_eq(rc, TG_ECANCELED, "%s: %s", sched, tg_strerror(rc));
  cr_expect_null(res);
  cr_expect_str_eq(tg_graph_errmsg(g), "the compute was cancelled");
  cr_expect_lt(took, 5.0, "%s: returned %.1f s after the flag was raised", sched, took);
  cr_expect_eq(count_alive(base), 0, "%s: the command outlived the compute", sched);
  cr_expect_eq(st.tasks_total, 2);
  cr_expect_eq(st.cache_stores, 1, "%s: fast's result committed", sched);
  /* A raised flag stops the next compute before any task starts; reset,
   * the cached result is served and nothing else runs. */
  rc = tg_compute(g, &fast, 1, &o, &res);
  cr_expect_eq(rc, TG_ECANCELED);
  tg_cancel_reset(c.flag);
  rc = tg_compute(g, &fast, 1, &o, &res);
  cr_expect_eq(rc, TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(st.tasks_cached, 1);
  cr_expect_eq(st.tasks_run, 0);
  tg_value_unref(res);
  tg_cancel_free(c.flag);
  tg_cache_close(cache);
  tg_graph_free(g);
  tg_registry_free(reg);
}

Test(interrupt, api_cancel_on_sync) { api_case("sync"); }
Test(interrupt, api_cancel_on_threads) { api_case("threads"); }
Test(interrupt, api_cancel_on_processes) { api_case("processes"); }

Test(interrupt, api_cancel_before_start_and_versions) {
  tg_registry *reg;
  tg_graph *g;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_OK);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "sleep_ms", 1, tg_arg_value(tg_int(60000)));
  cr_assert_neq(n, TG_NODE_NONE);
  tg_cancel *flag;
  cr_assert_eq(tg_cancel_new(&flag), TG_OK);
  tg_cancel_set(flag);
  tg_cancel_set(flag); /* again: still raised once */
  cr_assert(tg_cancel_is_set(flag));
  cr_assert(!tg_cancel_is_set(NULL));
  tg_compute_stats st;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V2, .scheduler = "threads",
                       .stats = &st, .cancel = flag};
  tg_value *res;
  double t0 = tcli_now();
  cr_expect_eq(tg_compute(g, &n, 1, &o, &res), TG_ECANCELED);
  cr_expect_lt(tcli_now() - t0, 5.0);
  cr_expect_eq(st.tasks_run, 0);
  cr_expect_eq(st.tasks_skipped, 1);
  /* version 1 has no flag: the field is not read */
  tg_node quick = tg_call(g, "add", 2, tg_arg_value(tg_int(1)), tg_arg_value(tg_int(2)));
  o.version = TG_COMPUTE_OPTS_V1;
  cr_expect_eq(tg_compute(g, &quick, 1, &o, &res), TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(tg_value_int(res), 3);
  tg_value_unref(res);
  o.version = TG_COMPUTE_OPTS_V4 + 1;
  cr_expect_eq(tg_compute(g, &n, 1, &o, &res), TG_EINVAL);
  cr_expect_str_eq(tg_graph_errmsg(g), "tg_compute_opts.version is 5, expected 1 to 4");
  tg_cancel_free(flag);
  tg_cancel_free(NULL);
  tg_graph_free(g);
  tg_registry_free(reg);
}

/* A cancelled compute on threads whose task ignores the cancellation (its
 * command ignores SIGTERM and ends 1.5 s later) returns only once that
 * task has ended: no event (and no cache store) reaches the caller after
 * tg_compute returned. Only a deadline leaves a task behind. */
static atomic_int late_returned, late_events;
static void late_on_event(void *ctx, const tg_event *ev) {
  (void)ctx;
  (void)ev;
  if (atomic_load(&late_returned)) atomic_fetch_add(&late_events, 1);
}
static void *cancel_after_300ms(void *flag) {
  pause_ms(300);
  tg_cancel_set(flag);
  return NULL;
}
Test(interrupt, api_cancel_on_threads_waits_for_a_task_ignoring_it) {
  tg_registry *reg;
  tg_graph *g;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_OK);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_call(g, "sh", 1, tg_arg_value(tg_str_c("trap '' TERM; sleep 1.5")));
  cr_assert_neq(n, TG_NODE_NONE);
  tg_cancel *flag;
  cr_assert_eq(tg_cancel_new(&flag), TG_OK);
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V2, .scheduler = "threads", .workers = 2,
                       .on_event = late_on_event, .cancel = flag};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, cancel_after_300ms, flag), 0);
  tg_value *res;
  double t0 = tcli_now();
  cr_expect_eq(tg_compute(g, &n, 1, &o, &res), TG_ECANCELED);
  atomic_store(&late_returned, 1);
  double took = tcli_now() - t0;
  pthread_join(th, NULL);
  pause_ms(2500); /* the command would have ended and reported by now */
  cr_expect_eq(atomic_load(&late_events), 0, "%d events after tg_compute returned",
               atomic_load(&late_events));
  cr_expect_geq(took, 1.2, "returned after %.2f s, before its task ended", took);
  cr_expect_lt(took, 10.0);
  tg_cancel_free(flag);
  tg_graph_free(g);
  tg_registry_free(reg);
}

/* ---- a forked guard runs no handler of the application ------------------------------- */

static void usr2_handler(int s) {
  (void)s;
  int fd = open("handler-ran", O_WRONLY | O_CREAT, 0644); /* in the test's dir */
  if (fd >= 0) close(fd);
}

/* Where the guard program cannot be put in a memfd (here memfd_create is
 * refused by a seccomp filter), the guard is a fork of the task's
 * process. A signal sent to it (here by its command: `kill -USR2 $PPID`)
 * must meet the default action, not the handler the application set. */
Test(interrupt, forked_guard_runs_no_application_handler) {
  pid_t c = fork();
  cr_assert_geq(c, 0);
  if (c == 0) {
    struct sock_filter f[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_memfd_create, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW)};
    struct sock_fprog prog = {sizeof f / sizeof *f, f};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 ||
        prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0)
      _exit(100);
    struct sigaction sa = {.sa_handler = usr2_handler};
    sigaction(SIGUSR2, &sa, NULL);
    tg_registry *reg;
    tg_graph *g;
    if (tg_registry_new(&reg) != TG_OK || tg_registry_add_builtins(reg) != TG_OK ||
        tg_graph_new(reg, &g) != TG_OK)
      _exit(101);
    tg_node n = tg_call(g, "sh", 1,
                        tg_arg_value(tg_str_c("cat /proc/$PPID/comm > guard.txt; "
                                              "kill -USR2 $PPID; sleep 1; echo on")));
    tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync"};
    tg_value *res = NULL;
    int rc = tg_compute(g, &n, 1, &o, &res);
    FILE *m = fopen("result.txt", "w");
    if (m) fprintf(m, "%d %s\n", rc, rc ? tg_graph_errmsg(g) : "");
    if (m) fclose(m);
    _exit(0);
  }
  cr_assert_eq(wait_status(c), 0);
  char *guard = slurp("guard.txt"), *self = slurp("/proc/self/comm");
  cr_expect_str_eq(guard, self, "the guard was not a fork of the task's process");
  char *result = slurp("result.txt");
  cr_log_info("compute: %s", result);
  cr_expect_neq(access("handler-ran", F_OK), 0, "the application's handler ran in the guard");
  cr_expect(strstr(result, "task 'sh#0' failed: TG_EIO: sh: the process guarding the "
                           "command ended unexpectedly"),
            "the guard outlived a SIGUSR2 at its default action: %s", result);
  free(guard);
  free(self);
  free(result);
}
