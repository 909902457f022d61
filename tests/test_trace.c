/* tests/test_trace.c: what `tgraph run --trace` and `--dot` write, end to
 * end through the built program (TGRAPH_BIN): the Chrome trace parsed
 * with jansson has one named track per worker thread, its slices last
 * what the calls took and never overlap on a track, on threads,
 * processes and tcp (a real `tgraph worker` on loopback); the Graphviz
 * file has a legend for its colours and Graphviz reads it. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_cli_util.h"

static char dir[64]; /* a fresh directory per test, also the cwd */
static const char *bin;
static pid_t worker_pid; /* a `tgraph worker`, 0: none */

static void setup(void) {
  bin = tcli_bin();
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_trace_XXXXXX");
  setenv("TGRAPH_CACHE_DIR", "cache", 1);
  unsetenv("TGRAPH_PLUGIN_PATH");
}

static void teardown(void) {
  if (worker_pid > 0) {
    kill(worker_pid, SIGKILL);
    cr_expect_eq(waitpid(worker_pid, NULL, 0), worker_pid);
    worker_pid = 0;
  }
  tcli_leave_tmpdir(dir);
}

TestSuite(trace, .init = setup, .fini = teardown, .timeout = 120);

#define run(...) tcli_run(bin, &(tcli_how){0}, (char *const[]){"tgraph", __VA_ARGS__, NULL})

/* Start `tgraph worker` with nthreads threads on a free loopback port;
 * its address in ep. */
static void start_worker(const char *nthreads, char *ep, size_t size) {
  char *const args[] = {(char *)bin, "worker", "--listen", "tcp://127.0.0.1:*", "--nthreads",
                        (char *)nthreads, NULL};
  worker_pid = tcli_worker(bin, args, ep, size);
}

/* g.json: n independent sleep_ms(ms) tasks s0..s(n-1) and their sum. */
static void write_sleeps(int n, int ms) {
  char text[4096];
  int at = snprintf(text, sizeof text, "{\"tgraph\": 1, \"tasks\": {\n");
  for (int i = 0; i < n; i++)
    at += snprintf(text + at, sizeof text - (size_t)at,
                   "  \"s%d\": {\"fn\": \"sleep_ms\", \"args\": [%d]},\n", i, ms);
  at += snprintf(text + at, sizeof text - (size_t)at, "  \"all\": {\"fn\": \"sum\", \"args\": [[");
  for (int i = 0; i < n; i++)
    at += snprintf(text + at, sizeof text - (size_t)at, "%s{\"ref\": \"s%d\"}", i ? ", " : "", i);
  snprintf(text + at, sizeof text - (size_t)at, "]]}},\n \"outputs\": [\"all\"]}\n");
  tcli_write_file("g.json", text);
}

/* One slice ("X" event) of a trace. */
typedef struct slice {
  char name[32];
  double ts, dur; /* micro-seconds */
  long long tid;
  int worker, thread;
  unsigned attempts;
  char message[128];
} slice;

typedef struct trace {
  slice x[64];
  size_t nx, ninstant;
  char track[16][64]; /* per tid: its thread_name */
  size_t ntracks;
} trace;

/* Parse path: every event's fields, the track names by tid (dense from
 * 0), the slices. */
static void load_trace(const char *path, trace *t) {
  memset(t, 0, sizeof *t);
  json_error_t je;
  json_t *root = json_load_file(path, 0, &je);
  cr_assert_not_null(root, "%s:%d: %s", path, je.line, je.text);
  json_t *events = json_object_get(root, "traceEvents");
  cr_assert(json_is_array(events));
  size_t i;
  json_t *e;
  json_array_foreach(events, i, e) {
    const char *ph = json_string_value(json_object_get(e, "ph"));
    const char *name = json_string_value(json_object_get(e, "name"));
    cr_assert(ph && name);
    json_int_t tid = json_integer_value(json_object_get(e, "tid"));
    if (strcmp(ph, "M") == 0) {
      if (strcmp(name, "thread_name") != 0) continue;
      cr_assert(tid >= 0 && tid < 16, "track %lld", (long long)tid);
      const char *tn = json_string_value(json_object_get(json_object_get(e, "args"), "name"));
      cr_assert_not_null(tn);
      cr_expect_eq(t->track[tid][0], '\0', "track %lld named twice", (long long)tid);
      snprintf(t->track[tid], sizeof t->track[tid], "%s", tn);
      t->ntracks++;
      continue;
    }
    if (strcmp(ph, "i") == 0) {
      t->ninstant++;
      continue;
    }
    cr_assert_str_eq(ph, "X", "event '%s'", name);
    cr_assert_lt(t->nx, 64);
    slice *s = &t->x[t->nx++];
    json_t *args = json_object_get(e, "args");
    snprintf(s->name, sizeof s->name, "%s", name);
    s->ts = json_number_value(json_object_get(e, "ts"));
    s->dur = json_number_value(json_object_get(e, "dur"));
    s->tid = tid;
    s->worker = (int)json_integer_value(json_object_get(args, "worker"));
    s->thread = (int)json_integer_value(json_object_get(args, "thread"));
    s->attempts = (unsigned)json_integer_value(json_object_get(args, "attempts"));
    const char *m = json_string_value(json_object_get(args, "message"));
    snprintf(s->message, sizeof s->message, "%s", m ? m : "");
  }
  json_decref(root);
  for (size_t k = 0; k < t->ntracks; k++) cr_expect_neq(t->track[k][0], '\0', "no track %zu", k);
}

/* The slices of the sleep_ms tasks (named s0, s1, ...). */
static size_t sleeps(const trace *t) {
  size_t n = 0;
  for (size_t i = 0; i < t->nx; i++) n += t->x[i].name[0] == 's' && t->x[i].name[1] != '\0';
  return n;
}

static int by_tid_ts(const void *a, const void *b) {
  const slice *x = a, *y = b;
  if (x->tid != y->tid) return x->tid < y->tid ? -1 : 1;
  return x->ts < y->ts ? -1 : x->ts > y->ts;
}

/* Each slice's track is named after its worker and thread; slices of a
 * track never overlap (timestamps are printed to the nanosecond); the
 * slices named s* last ms to ms + extra milliseconds. Returns the tracks
 * slices are on. */
static size_t check_slices(trace *t, const char *how, int ms, int extra) {
  for (size_t i = 0; i < t->nx; i++) {
    slice *s = &t->x[i];
    cr_assert(s->tid >= 0 && (size_t)s->tid < t->ntracks, "%s: '%s' on track %lld", how,
              s->name, s->tid);
    char want[64];
    snprintf(want, sizeof want, "worker %d thread %d", s->worker, s->thread);
    cr_expect_str_eq(t->track[s->tid], want, "%s: '%s'", how, s->name);
    if (s->name[0] == 's' && s->name[1] != '\0')
      cr_expect(s->dur >= ms * 1e3 && s->dur <= (ms + extra) * 1e3, "%s: '%s' lasts %.3f ms",
                how, s->name, s->dur / 1e3);
  }
  qsort(t->x, t->nx, sizeof t->x[0], by_tid_ts);
  size_t tracks = t->nx ? 1 : 0;
  for (size_t i = 1; i < t->nx; i++) {
    const slice *a = &t->x[i - 1], *b = &t->x[i];
    if (a->tid != b->tid) {
      tracks++;
      continue;
    }
    cr_expect_leq(a->ts + a->dur, b->ts + 0.002, "%s: on '%s', '%s' [%.3f +%.3f] overlaps '%s' "
                  "[%.3f +%.3f]", how, t->track[a->tid], a->name, a->ts, a->dur, b->name, b->ts,
                  b->dur);
  }
  return tracks;
}

/* The sleeps below: each slice lasts its sleep, up to SLEEP_LATE_MS more
 * (a late wake-up on a loaded machine: with six busy loops beside it, a
 * 20 ms sleep's slice lasted up to 88 ms, and a bound of 40 ms failed 4
 * runs of 15). A slice that took in its queueing would overlap the one
 * before it on its track, which check_slices sees. */
#define SLEEP_MS 50
#define SLEEP_LATE_MS 100

/* A one-thread worker runs 3 sleeps one after the other: three slices on
 * its one track, in a row. */
Test(trace, tcp_one_thread_worker) {
  char ep[160];
  start_worker("1", ep, sizeof ep);
  write_sleeps(3, SLEEP_MS);
  tcli_result r = run("run", "-q", "--no-cache", "--scheduler", "tcp", "--connect", ep,
                      "--trace", "t.json", "g.json");
  tcli_expect(r, 0, "{\"all\":150}\n", "");
  tcli_result_free(&r);
  trace t;
  load_trace("t.json", &t);
  cr_expect_eq(sleeps(&t), 3);
  cr_expect_eq(check_slices(&t, "tcp", SLEEP_MS, SLEEP_LATE_MS), 1);
  cr_expect_str_eq(t.track[0], "worker 0 thread 0");
  for (size_t i = 0; i < t.nx; i++) cr_expect_eq(t.x[i].attempts, 1);
}

Test(trace, tcp_two_thread_worker) {
  char ep[160];
  start_worker("2", ep, sizeof ep);
  write_sleeps(8, SLEEP_MS);
  tcli_result r = run("run", "-q", "--no-cache", "--scheduler", "tcp", "--connect", ep,
                      "--trace", "t.json", "g.json");
  tcli_expect(r, 0, "{\"all\":400}\n", "");
  tcli_result_free(&r);
  trace t;
  load_trace("t.json", &t);
  cr_expect_eq(sleeps(&t), 8);
  size_t tracks = check_slices(&t, "tcp", SLEEP_MS, SLEEP_LATE_MS);
  cr_expect(tracks >= 1 && tracks <= 2, "%zu tracks", tracks);
}

/* Two worker processes get batches of tasks whose results come back
 * together; each slice is still where its call ran. */
Test(trace, processes_two_workers) {
  write_sleeps(8, SLEEP_MS);
  tcli_result r = run("run", "-q", "--no-cache", "--scheduler=processes", "--workers", "2",
                      "--trace", "t.json", "g.json");
  tcli_expect(r, 0, "{\"all\":400}\n", "");
  tcli_result_free(&r);
  trace t;
  load_trace("t.json", &t);
  cr_expect_eq(sleeps(&t), 8);
  size_t tracks = check_slices(&t, "processes", SLEEP_MS, SLEEP_LATE_MS);
  cr_expect(tracks >= 1 && tracks <= 2, "%zu tracks", tracks);
  for (size_t i = 0; i < t.nx; i++) cr_expect_eq(t.x[i].thread, 0);
}

Test(trace, threads_two_workers) {
  write_sleeps(8, SLEEP_MS);
  tcli_result r = run("run", "-q", "--no-cache", "--scheduler=threads", "--workers", "2",
                      "--trace", "t.json", "g.json");
  tcli_expect(r, 0, "{\"all\":400}\n", "");
  tcli_result_free(&r);
  trace t;
  load_trace("t.json", &t);
  cr_expect_eq(sleeps(&t), 8);
  size_t tracks = check_slices(&t, "threads", SLEEP_MS, SLEEP_LATE_MS);
  cr_expect(tracks >= 1 && tracks <= 2, "%zu tracks", tracks);
}

/* A failure after its retries: one slice with the calls made and the
 * message; the task it blocks is an instant on the track of tasks
 * without a call. */
Test(trace, failure_carries_attempts_and_message) {
  tcli_write_file("g.json",
                  "{\"tgraph\": 1, \"tasks\": {\n"
                  "  \"bad\": {\"fn\": \"add\", \"args\": [\"one\", 1], \"retries\": 2},\n"
                  "  \"after\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"bad\"}]}},\n"
                  " \"outputs\": [\"after\"]}\n");
  tcli_result r = run("run", "-q", "--no-cache", "--scheduler=sync", "--trace", "t.json",
                      "g.json");
  cr_expect_eq(r.status, 1, "%s", r.err);
  tcli_result_free(&r);
  trace t;
  load_trace("t.json", &t);
  cr_assert_eq(t.nx, 1);
  cr_expect_str_eq(t.x[0].name, "bad");
  cr_expect_eq(t.x[0].attempts, 3);
  cr_expect_str_eq(t.x[0].message, "add: argument 1 must be an int or float, not str");
  cr_expect_eq(t.ninstant, 1);
  cr_expect_eq(t.ntracks, 2);
  cr_expect_str_eq(t.track[0], "worker 0 thread 0");
  cr_expect_str_eq(t.track[1], "no call: cached, skipped, failed before a call");
}

/* The legend names every colour the nodes can have, and Graphviz reads
 * the file. */
Test(trace, dot_has_a_legend_graphviz_reads) {
  tcli_write_file("g.json",
                  "{\"tgraph\": 1, \"tasks\": {\n"
                  "  \"legend\": {\"fn\": \"identity\", \"args\": [1]},\n"
                  "  \"f\": {\"fn\": \"sh\", \"args\": [\"exit 3\"]},\n"
                  "  \"s\": {\"fn\": \"identity\", \"args\": [{\"ref\": \"f\"}]}},\n"
                  " \"outputs\": [\"legend\", \"s\"]}\n");
  tcli_result r = run("run", "-q", "--scheduler=sync", "--no-cache", "--dot", "g.dot", "g.json");
  cr_expect_eq(r.status, 1);
  tcli_result_free(&r);
  const char *text = tcli_read_text("g.dot", true);
  /* a task named "legend" keeps its name: the legend takes another */
  const char *want =
      "  subgraph cluster_legend {\n    label=\"legend\"; fontname=\"Helvetica\";\n"
      "    \"legend 2\" [shape=plain, style=\"\", label=<<table border=\"0\" "
      "cellborder=\"1\" cellspacing=\"2\">"
      "<tr><td bgcolor=\"#a6d96a\">ran</td></tr>"
      "<tr><td bgcolor=\"#abd9e9\">cached: served from the cache</td></tr>"
      "<tr><td bgcolor=\"#f46d43\">failed</td></tr>"
      "<tr><td bgcolor=\"#fdae61\">cancelled: stopped while running</td></tr>"
      "<tr><td bgcolor=\"#fee08b\">skipped: the run stopped or an input failed</td></tr>"
      "<tr><td bgcolor=\"#d9d9d9\">not run</td></tr>"
      "<tr><td bgcolor=\"#ffffff\" style=\"dashed\">not needed (dashed), also below a "
      "cached result</td></tr></table>>];\n  }\n";
  cr_expect_not_null(strstr(text, want), "%s", text);
  cr_expect_not_null(strstr(text, "\n  \"legend\" [label=\"legend\\nidentity\", "
                                  "fillcolor=\"#a6d96a\""), "%s", text);
  tcli_result d = tcli_run("/usr/bin/dot", &(tcli_how){0},
                           (char *const[]){"dot", "-Tsvg", "-o", "g.svg", "g.dot", NULL});
  tcli_expect(d, 0, "", "");
  tcli_result_free(&d);
  cr_expect_not_null(strstr(tcli_read_text("g.svg", true), ">not run</text>"));
}
