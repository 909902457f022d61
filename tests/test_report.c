/* tests/test_report.c: the HTML run report (tgraph/report.h and tgraph run
 * --report), loaded in a real browser: headless chromium renders each page
 * and dumps its DOM (--dump-dom) or a screenshot (--screenshot), which the
 * tests read. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "report/report_internal.h"
#include "test_cli_util.h"
#include "tgraph.h"

/* ---- the browser ---------------------------------------------------------- */

#define BROWSER_TIMEOUT 90.0

/* The browser's output lands here (malloc'd). */
typedef struct page_out {
  char *text;
  size_t len;
} page_out;

/* Run chromium headless with a fresh profile under dir on file path, with
 * `mode` ("--dump-dom" or "--screenshot=FILE"), collecting its stdout.
 * It runs in a process group of its own, killed by its id when it takes
 * longer than BROWSER_TIMEOUT (which fails the test). */
static page_out browse(const char *dir, const char *path, const char *mode) {
  char profile[600], url[700];
  snprintf(profile, sizeof profile, "--user-data-dir=%s/chromium-profile", dir);
  snprintf(url, sizeof url, "file://%s", path);
  cr_assert_eq(access("/usr/bin/chromium", X_OK), 0,
               "chromium is missing: scripts/quickstart.sh test installs it");
  char *args[] = {"chromium", "--headless", "--no-sandbox", "--disable-gpu",
                  "--no-first-run", "--disable-extensions", profile,
                  "--virtual-time-budget=10000", "--window-size=1280,1600",
                  (char *)mode, url, NULL};
  int o[2];
  cr_assert_eq(pipe(o), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    setpgid(0, 0);
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0);
    dup2(o[1], 1);
    dup2(null, 2);
    close(o[0]);
    close(o[1]);
    execv("/usr/bin/chromium", args);
    _exit(127);
  }
  setpgid(pid, pid); /* also here: no window where the group is unset */
  close(o[1]);
  page_out r = {calloc(1, 1), 0};
  double t0 = tcli_now();
  struct pollfd p = {o[0], POLLIN, 0};
  for (;;) {
    int left = (int)((t0 + BROWSER_TIMEOUT - tcli_now()) * 1000);
    if (left <= 0 || poll(&p, 1, left) == 0) {
      kill(-pid, SIGKILL);
      waitpid(pid, NULL, 0);
      close(o[0]);
      cr_assert_fail("chromium %s %s did not finish in %g s", mode, path,
                     BROWSER_TIMEOUT);
    }
    char buf[65536];
    ssize_t n = read(o[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    tcli_append(&r.text, &r.len, buf, (size_t)n);
  }
  close(o[0]);
  int st;
  waitpid(pid, &st, 0);
  kill(-pid, SIGKILL); /* helpers it may have left */
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "chromium %s failed (status %d)",
            mode, st);
  return r;
}

/* The DOM of the page at path after its scripts ran; checks the page
 * said it rendered. */
static page_out dom_of(const char *dir, const char *path) {
  page_out d = browse(dir, path, "--dump-dom");
  cr_assert(strstr(d.text, "data-rendered=\"done\"") != NULL,
            "the page did not render; its DOM ends: %s",
            d.len > 2000 ? d.text + d.len - 2000 : d.text);
  return d;
}

/* Number of times needle occurs in hay. */
static size_t occurrences(const char *hay, const char *needle) {
  size_t n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}

/* ---- PNG: the distinct colours of a screenshot ------------------------------ */

static uint32_t be32(const unsigned char *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int paeth(int a, int b, int c) {
  int p = a + b - c, pa = abs(p - a), pb = abs(p - b), pc = abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/* Distinct RGB colours of an 8-bit RGB or RGBA, non-interlaced PNG
 * (what chromium writes). */
static size_t png_colours(const char *path) {
  FILE *f = fopen(path, "rb");
  cr_assert_not_null(f, "no screenshot %s", path);
  fseek(f, 0, SEEK_END);
  long size = ftell(f);
  fseek(f, 0, SEEK_SET);
  unsigned char *png = malloc((size_t)size);
  cr_assert_eq(fread(png, 1, (size_t)size, f), (size_t)size);
  fclose(f);
  cr_assert(size > 33 && memcmp(png, "\x89PNG\r\n\x1a\n", 8) == 0, "%s is not a PNG", path);
  uint32_t w = be32(png + 16), h = be32(png + 20);
  int depth = png[24], type = png[25], interlace = png[28];
  cr_assert(depth == 8 && (type == 2 || type == 6) && interlace == 0,
            "unexpected PNG format: depth %d type %d interlace %d", depth, type, interlace);
  size_t bpp = type == 6 ? 4 : 3, stride = w * bpp;
  unsigned char *idat = malloc((size_t)size);
  size_t idat_len = 0;
  for (long at = 8; at + 12 <= size;) { /* chunks: length, type, data, crc */
    uint32_t len = be32(png + at);
    if (memcmp(png + at + 4, "IDAT", 4) == 0) {
      memcpy(idat + idat_len, png + at + 8, len);
      idat_len += len;
    }
    at += 12 + (long)len;
  }
  uLongf raw_len = (uLongf)((stride + 1) * h);
  unsigned char *raw = malloc(raw_len);
  cr_assert_eq(uncompress(raw, &raw_len, idat, idat_len), Z_OK);
  cr_assert_eq(raw_len, (stride + 1) * h);
  unsigned char *seen = calloc(1 << 21, 1); /* one bit per RGB colour */
  unsigned char *prev = calloc(stride, 1);
  size_t colours = 0;
  for (uint32_t y = 0; y < h; y++) {
    unsigned char *row = raw + y * (stride + 1) + 1;
    int filter = row[-1];
    for (size_t x = 0; x < stride; x++) {
      int a = x >= bpp ? row[x - bpp] : 0, b = prev[x], c = x >= bpp ? prev[x - bpp] : 0;
      int add = filter == 1 ? a : filter == 2 ? b : filter == 3 ? (a + b) / 2
                : filter == 4 ? paeth(a, b, c) : 0;
      row[x] = (unsigned char)(row[x] + add);
    }
    for (size_t x = 0; x < stride; x += bpp) {
      uint32_t rgb = (uint32_t)row[x] << 16 | (uint32_t)row[x + 1] << 8 | row[x + 2];
      if (!(seen[rgb >> 3] & (1 << (rgb & 7)))) {
        seen[rgb >> 3] |= (unsigned char)(1 << (rgb & 7));
        colours++;
      }
    }
    memcpy(prev, row, stride);
  }
  free(prev);
  free(seen);
  free(raw);
  free(idat);
  free(png);
  return colours;
}

/* ---- runs to report on ------------------------------------------------------- */

static int fail_task(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                     tg_value **out) {
  (void)args, (void)nargs, (void)out;
  return tg_task_fail(ctx, TG_EINVAL, "the input holds no header line");
}

static int pass_task(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                     tg_value **out) {
  (void)ctx;
  int64_t s = 0;
  for (size_t i = 0; i < nargs; i++)
    if (tg_value_type(args[i]) == TG_INT) s += tg_value_int(args[i]);
  usleep(2000); /* long enough to be a bar */
  *out = tg_int(s);
  return TG_OK;
}

/* A small graph: load -> {left, right} -> merge -> out, plus `lonely`,
 * and when `failing` the merge fails. Keys are the user's. */
typedef struct small_run {
  tg_registry *reg;
  tg_graph *g;
  tg_node out, lonely;
} small_run;

static tg_node add(tg_graph *g, const char *fn, const char *key, size_t n,
                   const tg_arg *args) {
  tg_node_opts o = {TG_NODE_OPTS_V1, key, -1, -1, 0, 0};
  tg_node id;
  cr_assert_eq(tg_graph_add(g, fn, args, n, &o, &id), TG_OK, "%s", tg_graph_errmsg(g));
  return id;
}

static small_run small_graph(bool failing, const char *odd_key) {
  small_run s;
  cr_assert_eq(tg_registry_new(&s.reg), TG_OK);
  cr_assert_eq(tg_register(s.reg, "pass", pass_task, TG_FUNC_PURE), TG_OK);
  cr_assert_eq(tg_register(s.reg, "fail", fail_task, TG_FUNC_PURE), TG_OK);
  cr_assert_eq(tg_graph_new(s.reg, &s.g), TG_OK);
  tg_arg one[] = {tg_arg_value(tg_int(1))};
  tg_node load = add(s.g, "pass", "load", 1, one);
  tg_arg l1[] = {tg_arg_node(load)};
  tg_node left = add(s.g, "pass", odd_key ? odd_key : "left", 1, l1);
  /* right adds 0: not the same call as left, which would run once */
  tg_arg r1[] = {tg_arg_node(load), tg_arg_value(tg_int(0))};
  tg_node right = add(s.g, "pass", "right", 2, r1);
  tg_arg m[] = {tg_arg_node(left), tg_arg_node(right)};
  tg_node merge = add(s.g, failing ? "fail" : "pass", "merge", 2, m);
  tg_arg o1[] = {tg_arg_node(merge)};
  s.out = add(s.g, "pass", "out", 1, o1);
  tg_arg z[] = {tg_arg_value(tg_int(7))};
  s.lonely = add(s.g, "pass", "lonely", 1, z);
  return s;
}

/* Compute s's outputs on threads with a report; return tg_compute's code. */
static int run_with_report(small_run *s, tg_report **rep) {
  tg_node outs[] = {s->out, s->lonely};
  cr_assert_eq(tg_report_new(s->g, outs, 2, rep), TG_OK);
  tg_compute_stats st;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "threads",
                       .workers = 2, .stats = &st, .on_event = tg_report_on_event,
                       .event_ctx = *rep};
  tg_value *res[2];
  int rc = tg_compute(s->g, outs, 2, &o, res);
  tg_report_run run = {TG_REPORT_RUN_V1, "small run", "threads", 2, rc,
                       rc != TG_OK ? tg_graph_errmsg(s->g) : NULL, &st};
  cr_assert_eq(tg_report_finish(*rep, &run), TG_OK);
  if (rc == TG_OK) {
    tg_value_unref(res[0]);
    tg_value_unref(res[1]);
  }
  return rc;
}

static void small_free(small_run *s) {
  tg_graph_free(s->g);
  tg_registry_free(s->reg);
}

static char tmp[64];

static void enter(void) { tcli_enter_tmpdir(tmp, sizeof tmp, "/tmp/tg-report-XXXXXX"); }
static void leave(void) { tcli_leave_tmpdir(tmp); }

static const char *in_tmp(const char *name) {
  static char path[2][256];
  static int k;
  k ^= 1;
  snprintf(path[k], sizeof path[k], "%s/%s", tmp, name);
  return path[k];
}

/* ---- tests ------------------------------------------------------------------- */

TestSuite(report, .init = enter, .fini = leave, .timeout = 300);

Test(report, page_shows_every_task_of_a_run) {
  small_run s = small_graph(false, NULL);
  tg_report *r;
  cr_assert_eq(run_with_report(&s, &r), TG_OK);
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_report_write(r, in_tmp("run.html"), &err), TG_OK, "%s", err.msg);
  page_out d = dom_of(tmp, in_tmp("run.html"));
  static const char *const keys[] = {"load", "left", "right", "merge", "out", "lonely"};
  for (size_t i = 0; i < 6; i++) {
    char cell[64];
    snprintf(cell, sizeof cell, "<td class=\"key\">%s</td>", keys[i]);
    cr_expect(strstr(d.text, cell) != NULL, "no row of task %s in the DOM", keys[i]);
  }
  cr_expect(strstr(d.text, "rendered 6 tasks") != NULL);
  cr_expect(strstr(d.text, "<b>6</b><span>tasks run</span>") != NULL);
  cr_expect(strstr(d.text, "<b>0</b><span>tasks failed</span>") != NULL);
  cr_expect(strstr(d.text, "class=\"badge st-ok\">ok<") != NULL);
  /* The critical path is load -> left|right -> merge -> out: 4 tasks. */
  cr_expect(strstr(d.text, "<p>4 tasks, ") != NULL, "critical path: %s",
            strstr(d.text, "crit-body"));
  cr_expect_eq(occurrences(d.text, "<tr class=\"crit\"><td class=\"key\">"), 8,
               "4 rows in the path's table and 4 in the task table");
  cr_expect(strstr(d.text, "id=\"failure\" hidden") != NULL);
  free(d.text);
  tg_report_free(r);
  small_free(&s);
}

Test(report, page_needs_no_network_and_no_second_file) {
  small_run s = small_graph(false, NULL);
  tg_report *r;
  cr_assert_eq(run_with_report(&s, &r), TG_OK);
  cr_assert_eq(tg_report_write(r, in_tmp("run.html"), NULL), TG_OK);
  const char *page = tcli_read_text(in_tmp("run.html"), true);
  cr_expect(strncmp(page, "<!DOCTYPE html>", 15) == 0);
  /* Nothing loaded from elsewhere: no src/href attributes, no imports. */
  cr_expect(strstr(page, " src=") == NULL);
  cr_expect(strstr(page, "href=") == NULL);
  cr_expect(strstr(page, "@import") == NULL);
  cr_expect(strstr(page, "<link") == NULL);
  /* Only the temporary file's rename: the directory holds the one page. */
  DIR *dir = opendir(tmp);
  size_t files = 0;
  for (struct dirent *e; (e = readdir(dir)) != NULL;)
    if (e->d_name[0] != '.') files++;
  closedir(dir);
  cr_expect_eq(files, 1);
  tg_report_free(r);
  small_free(&s);
}

Test(report, failed_run_shows_the_failure_without_a_click) {
  small_run s = small_graph(true, NULL);
  tg_report *r;
  cr_assert_eq(run_with_report(&s, &r), TG_ETASK);
  cr_assert_eq(tg_report_write(r, in_tmp("failed.html"), NULL), TG_OK);
  page_out d = dom_of(tmp, in_tmp("failed.html"));
  cr_expect(strstr(d.text, "<section id=\"failure\">") != NULL, "the failure is hidden");
  cr_expect(strstr(d.text, "id=\"failed-key\">merge</b>") != NULL);
  cr_expect(strstr(d.text, "the input holds no header line") != NULL);
  cr_expect(strstr(d.text, "<span>It blocked 1 task: </span><span class=\"key\">out</span>") != NULL,
            "blocked: %s", strstr(d.text, "id=\"blocked\""));
  cr_expect(strstr(d.text, "Outputs not computed: out") != NULL);
  cr_expect(strstr(d.text, "class=\"badge st-failed\">failed<") != NULL);
  cr_expect(strstr(d.text, "<b>1</b><span>tasks failed</span>") != NULL);
  free(d.text);
  tg_report_free(r);
  small_free(&s);
}

Test(report, screenshot_is_not_blank) {
  small_run s = small_graph(true, NULL);
  tg_report *r;
  cr_assert_eq(run_with_report(&s, &r), TG_ETASK);
  cr_assert_eq(tg_report_write(r, in_tmp("failed.html"), NULL), TG_OK);
  char shot[300];
  snprintf(shot, sizeof shot, "--screenshot=%s", in_tmp("shot.png"));
  page_out d = browse(tmp, in_tmp("failed.html"), shot);
  free(d.text);
  size_t colours = png_colours(in_tmp("shot.png"));
  /* A blank or unstyled page has a handful; bars, text and the graph
   * make hundreds. */
  cr_expect_gt(colours, 50, "the screenshot has %zu colours", colours);
  tg_report_free(r);
  small_free(&s);
}

Test(report, markup_in_keys_and_messages_stays_text) {
  small_run s = small_graph(false, "left</script><h1 id=\"injected\">x</h1>");
  tg_report *r;
  cr_assert_eq(run_with_report(&s, &r), TG_OK);
  cr_assert_eq(tg_report_write(r, in_tmp("odd.html"), NULL), TG_OK);
  const char *page = tcli_read_text(in_tmp("odd.html"), true);
  cr_expect(strstr(page, "</script><h1") == NULL, "the key closed the data element");
  page_out d = dom_of(tmp, in_tmp("odd.html"));
  cr_expect(strstr(d.text, "<h1 id=\"injected\"") == NULL);
  cr_expect(strstr(d.text, "<td class=\"key\">left&lt;/script&gt;&lt;h1 id=\"injected\"&gt;x&lt;/h1&gt;</td>") != NULL);
  free(d.text);
  tg_report_free(r);
  small_free(&s);
}

Test(report, write_replaces_the_file_whole_or_not_at_all) {
  small_run s = small_graph(false, NULL);
  tg_report *r;
  cr_assert_eq(run_with_report(&s, &r), TG_OK);
  tg_error err;
  tg_error_clear(&err);
  /* A directory where the file should go: the rename fails, nothing is
   * left behind, the directory is untouched. */
  cr_assert_eq(mkdir(in_tmp("taken"), 0755), 0);
  cr_expect_eq(tg_report_write(r, in_tmp("taken"), &err), -EISDIR);
  char want[400];
  snprintf(want, sizeof want, "cannot rename into place the report '%s': %s",
           in_tmp("taken"), tg_strerror(-EISDIR));
  cr_expect_str_eq(err.msg, want);
  /* A missing directory. */
  tg_error_clear(&err);
  cr_expect_eq(tg_report_write(r, in_tmp("no/such/dir.html"), &err), -ENOENT);
  snprintf(want, sizeof want, "cannot create the report '%s': %s",
           in_tmp("no/such/dir.html"), tg_strerror(-ENOENT));
  cr_expect_str_eq(err.msg, want);
  DIR *dir = opendir(tmp);
  size_t files = 0;
  for (struct dirent *e; (e = readdir(dir)) != NULL;)
    if (e->d_name[0] != '.') files++;
  closedir(dir);
  cr_expect_eq(files, 1, "only 'taken' is left");
  /* An existing file is replaced by the whole page. */
  tcli_write_file(in_tmp("old.html"), "old");
  cr_expect_eq(tg_report_write(r, in_tmp("old.html"), NULL), TG_OK);
  const char *page = tcli_read_text(in_tmp("old.html"), true);
  cr_expect(strncmp(page, "<!DOCTYPE html>", 15) == 0);
  cr_expect_eq(tg_report_write(NULL, in_tmp("x.html"), NULL), TG_EINVAL);
  cr_expect_eq(tg_report_write(r, "", NULL), TG_EINVAL);
  tg_report_free(r);
  small_free(&s);
}

Test(report, new_checks_its_arguments) {
  small_run s = small_graph(false, NULL);
  tg_report *r = (tg_report *)1;
  tg_node bad[] = {999};
  cr_expect_eq(tg_report_new(s.g, bad, 1, &r), TG_EINVAL);
  cr_expect_null(r);
  cr_expect_eq(tg_report_new(NULL, bad, 1, &r), TG_EINVAL);
  cr_expect_eq(tg_report_new(s.g, NULL, 1, &r), TG_EINVAL);
  cr_expect_eq(tg_report_new(s.g, NULL, 0, NULL), TG_EINVAL);
  cr_assert_eq(tg_report_new(NULL, NULL, 0, &r), TG_OK); /* events alone */
  tg_report_run run = {99, NULL, NULL, 0, TG_OK, NULL, NULL};
  cr_expect_eq(tg_report_finish(r, &run), TG_EINVAL);
  cr_expect_eq(tg_report_finish(r, NULL), TG_EINVAL);
  tg_report_free(r);
  tg_report_free(NULL);
  small_free(&s);
}

/* The live data: before tg_report_finish the run is "running", with the
 * tasks seen so far; tasks of keys not in the graph are kept too. */
Test(report, json_reports_the_run_so_far) {
  small_run s = small_graph(false, NULL);
  tg_node outs[] = {s.out};
  tg_report *r;
  cr_assert_eq(tg_report_new(s.g, outs, 1, &r), TG_OK);
  tg_event ev = {TG_EVENT_STARTED, 0, "load", 1, TG_OK, 10.0, 10.0, 6,
                 "pass", 0, 0, NULL};
  tg_report_on_event(r, &ev);
  tg_event other = {TG_EVENT_FAILED, 77, "elsewhere", 0, TG_EINVAL, 10.5, 11.0, 6,
                    "pass", 1, 2, "bad \xff byte"};
  tg_report_on_event(r, &other);
  char *json;
  size_t len;
  cr_assert_eq(tg__report_json(r, &json, &len), TG_OK);
  cr_expect_eq(strlen(json), len);
  tg_value *v;
  cr_assert_eq(tg_value_from_json(json, len, &v, NULL), TG_OK, "%s", json);
  cr_expect(!tg_value_bool(tg_map_get_c(v, "ended")));
  cr_expect_str_eq(tg_str_data(tg_map_get_c(v, "status"), NULL), "running");
  tg_value *tasks = tg_map_get_c(v, "tasks");
  tg_value *keys = tg_map_get_c(tasks, "key"), *states = tg_map_get_c(tasks, "state");
  cr_expect_eq(tg_list_len(keys), 7);
  cr_expect_str_eq(tg_str_data(tg_list_get(keys, 6), NULL), "elsewhere");
  cr_expect_str_eq(tg_str_data(tg_list_get(states, 0), NULL), "running");
  cr_expect_str_eq(tg_str_data(tg_list_get(states, 1), NULL), "");
  cr_expect_str_eq(tg_str_data(tg_list_get(states, 6), NULL), "failed");
  cr_expect_eq(tg_value_int(tg_list_get(tg_map_get_c(tasks, "attempts"), 6)), 2);
  cr_expect_eq(tg_value_int(tg_list_get(tg_map_get_c(tasks, "start"), 0)), 0);
  cr_expect_eq(tg_value_int(tg_list_get(tg_map_get_c(tasks, "end"), 0)), -1);
  cr_expect_eq(tg_value_int(tg_list_get(tg_map_get_c(tasks, "end"), 6)), 1000000);
  tg_value *msg = tg_list_get(tg_map_get_c(v, "messages"), 0);
  cr_expect_eq(tg_value_int(tg_list_get(msg, 0)), 6);
  cr_expect_str_eq(tg_str_data(tg_list_get(msg, 1), NULL), "bad ? byte");
  /* Inputs of merge (task 3): left and right. */
  tg_value *ndeps = tg_map_get_c(tasks, "ndeps");
  cr_expect_eq(tg_value_int(tg_list_get(ndeps, 3)), 2);
  tg_value_unref(v);
  free(json);

  char *page;
  cr_assert_eq(tg__report_page(r, true, "data?t=abc", &page, &len), TG_OK);
  cr_expect(strstr(page, "{\"live\":true,\"data_url\":\"data?t=abc\"}") != NULL);
  cr_expect(strstr(page, "type=\"application/json\">null</script>") != NULL);
  cr_expect(strstr(page, "{{TG_") == NULL);
  free(page);
  cr_expect_eq(tg__report_page(r, true, NULL, &page, &len), TG_EINVAL);
  tg_report_free(r);
  small_free(&s);
}

/* ---- through the tgraph program ---------------------------------------------- */

static tcli_result run_cli(const char *report, const char *graph, const char *extra) {
  char *args[] = {"tgraph", "run", (char *)graph, "--no-cache", "--workers", "2",
                  "--report", (char *)report, (char *)extra, NULL};
  tcli_how how = {.timeout = 60};
  return tcli_run(tcli_bin(), &how, args);
}

Test(report, cli_writes_the_report_of_a_failed_run) {
  tcli_write_file("g.json",
                  "{\"tgraph\": 1, \"tasks\": {\n"
                  "  \"seed\": {\"fn\": \"range\", \"args\": [0, 5]},\n"
                  "  \"total\": {\"fn\": \"sum\", \"args\": [{\"ref\": \"seed\"}]},\n"
                  "  \"check\": {\"fn\": \"sh\", \"args\": [\"echo disk quota exceeded >&2; exit 3\"]},\n"
                  "  \"final\": {\"fn\": \"add\", \"args\": [{\"ref\": \"total\"}, {\"ref\": \"check\"}]}\n"
                  "}, \"outputs\": [\"final\"]}\n");
  tcli_result r = run_cli(in_tmp("cli.html"), "g.json", NULL);
  cr_expect_eq(r.status, 1, "stderr: %s", r.err);
  tcli_result_free(&r);
  page_out d = dom_of(tmp, in_tmp("cli.html"));
  static const char *const keys[] = {"seed", "total", "check", "final"};
  for (size_t i = 0; i < 4; i++) {
    char cell[64];
    snprintf(cell, sizeof cell, "<td class=\"key\">%s</td>", keys[i]);
    cr_expect(strstr(d.text, cell) != NULL, "no row of task %s", keys[i]);
  }
  cr_expect(strstr(d.text, "id=\"failed-key\">check</b>") != NULL);
  cr_expect(strstr(d.text, "disk quota exceeded") != NULL);
  cr_expect(strstr(d.text, "Outputs not computed: final") != NULL);
  cr_expect(strstr(d.text, "<title>g.json \xe2\x80\x94 tgraph report</title>") != NULL);
  free(d.text);
}

Test(report, cli_writes_the_report_of_a_timed_out_run) {
  tcli_write_file("slow.json",
                  "{\"tgraph\": 1, \"tasks\": {\n"
                  "  \"quick\": {\"fn\": \"range\", \"args\": [0, 3]},\n"
                  "  \"slow\": {\"fn\": \"sh\", \"args\": [\"sleep 30\"]}\n"
                  "}, \"outputs\": [\"quick\", \"slow\"]}\n");
  tcli_result r = run_cli(in_tmp("slow.html"), "slow.json", "--timeout=0.5");
  cr_expect_neq(r.status, 0);
  cr_expect_lt(r.seconds, 20);
  tcli_result_free(&r);
  page_out d = dom_of(tmp, in_tmp("slow.html"));
  cr_expect(strstr(d.text, "class=\"badge st-timed\">timed out<") != NULL);
  cr_expect(strstr(d.text, "<td class=\"key\">quick</td>") != NULL);
  cr_expect(strstr(d.text, "<td class=\"key\">slow</td>") != NULL);
  free(d.text);
}

Test(report, cli_refuses_an_unwritable_report) {
  tcli_write_file("g.json", "{\"tgraph\": 1, \"tasks\": {\"a\": {\"fn\": \"range\", "
                            "\"args\": [0, 2]}}, \"outputs\": [\"a\"]}\n");
  tcli_result r = run_cli("no/dir/r.html", "g.json", NULL);
  cr_expect_eq(r.status, 2);
  cr_expect_str_eq(r.out, "{\"a\":[0,1]}\n");
  cr_expect(strstr(r.err, "tgraph: error: cannot create the report 'no/dir/r.html': ") != NULL,
            "stderr: %s", r.err);
  tcli_result_free(&r);
  r = run_cli(NULL, "g.json", NULL); /* --report without its file */
  cr_expect_eq(r.status, 2);
  cr_expect(strstr(r.err, "'--report' needs a value") != NULL, "stderr: %s", r.err);
  tcli_result_free(&r);
}

Test(report, cli_writes_the_report_of_an_interrupted_run) {
  tcli_write_file("int.json",
                  "{\"tgraph\": 1, \"tasks\": {\n"
                  "  \"quick\": {\"fn\": \"range\", \"args\": [0, 3]},\n"
                  "  \"slow\": {\"fn\": \"sh\", \"args\": [\"touch started; sleep 30\"]}\n"
                  "}, \"outputs\": [\"quick\", \"slow\"]}\n");
  pid_t pid = tproc_fork();
  if (pid == 0) {
    int null = open("/dev/null", O_RDWR);
    dup2(null, 0), dup2(null, 1), dup2(null, 2);
    execl(tcli_bin(), "tgraph", "run", "int.json", "--no-cache", "--report",
          in_tmp("int.html"), (char *)NULL);
    _exit(127);
  }
  for (int i = 0; i < 400 && access("started", F_OK) != 0; i++) usleep(50000);
  cr_assert_eq(access("started", F_OK), 0, "the slow task never started");
  cr_assert_eq(kill(pid, SIGINT), 0);
  int st = 0;
  bool ended = false;
  for (int i = 0; i < 600 && !(ended = waitpid(pid, &st, WNOHANG) == pid); i++)
    usleep(50000);
  if (!ended) {
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    cr_assert_fail("tgraph run did not stop within 30 s of SIGINT");
  }
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 130, "status %d", st);
  page_out d = dom_of(tmp, in_tmp("int.html"));
  cr_expect(strstr(d.text, "class=\"badge st-cancelled\">cancelled<") != NULL);
  cr_expect(strstr(d.text, "<td class=\"key\">quick</td>") != NULL);
  cr_expect(strstr(d.text, "<td class=\"key\">slow</td>") != NULL);
  free(d.text);
}

/* tg__report_json from another thread while workers report events (what
 * a live server does): every snapshot is whole JSON with every task. */
typedef struct poller {
  tg_report *r;
  _Atomic bool stop;
  size_t polls, bad;
} poller;

static void *poll_json(void *arg) {
  poller *p = arg;
  while (!p->stop) {
    char *json;
    size_t len;
    tg_value *v = NULL;
    if (tg__report_json(p->r, &json, &len) != TG_OK ||
        tg_value_from_json(json, len, &v, NULL) != TG_OK ||
        tg_list_len(tg_map_get_c(tg_map_get_c(v, "tasks"), "key")) != 2000)
      p->bad++;
    p->polls++;
    tg_value_unref(v);
    free(json);
  }
  return NULL;
}

static int quick_task(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                      tg_value **out) {
  (void)ctx, (void)nargs;
  *out = tg_value_ref(args[0]);
  return TG_OK;
}

Test(report, json_while_events_arrive) {
  tg_registry *reg;
  tg_graph *g;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_register(reg, "quick", quick_task, 0), TG_OK);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node last = TG_NODE_NONE;
  for (int i = 0; i < 2000; i++)
    last = i % 10 ? tg_call(g, "quick", 1, tg_arg_value(tg_int(i)))
                  : tg_call(g, "quick", 1, i ? tg_arg_node(last) : tg_arg_value(tg_int(0)));
  cr_assert_neq(last, TG_NODE_NONE);
  tg_node outs[2000];
  for (tg_node i = 0; i < 2000; i++) outs[i] = i;
  tg_report *r;
  cr_assert_eq(tg_report_new(g, outs, 2000, &r), TG_OK);
  poller p = {r, false, 0, 0};
  pthread_t th;
  cr_assert_eq(pthread_create(&th, NULL, poll_json, &p), 0);
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "threads",
                       .workers = 2, .on_event = tg_report_on_event, .event_ctx = r};
  static tg_value *res[2000];
  for (int round = 0; round < 5; round++) {
    cr_assert_eq(tg_compute(g, outs, 2000, &o, res), TG_OK);
    for (int i = 0; i < 2000; i++) tg_value_unref(res[i]);
  }
  tg_report_run run = {TG_REPORT_RUN_V1, NULL, NULL, 2, TG_OK, NULL, NULL};
  cr_assert_eq(tg_report_finish(r, &run), TG_OK);
  p.stop = true;
  pthread_join(th, NULL);
  cr_expect_gt(p.polls, 0);
  cr_expect_eq(p.bad, 0, "%zu of %zu snapshots were wrong", p.bad, p.polls);
  char *json;
  size_t len;
  tg_value *v;
  cr_assert_eq(tg__report_json(r, &json, &len), TG_OK);
  cr_assert_eq(tg_value_from_json(json, len, &v, NULL), TG_OK);
  tg_value *states = tg_map_get_c(tg_map_get_c(v, "tasks"), "state");
  for (size_t i = 0; i < 2000; i++)
    cr_assert_str_eq(tg_str_data(tg_list_get(states, i), NULL), "ran", "task %zu", i);
  cr_expect(tg_value_bool(tg_map_get_c(v, "ended")));
  cr_expect_str_eq(tg_str_data(tg_map_get_c(v, "title"), NULL), "tgraph run");
  tg_value_unref(v);
  free(json);
  tg_report_free(r);
  tg_graph_free(g);
  tg_registry_free(reg);
}

/* The nodes the graph.json reader makes for nested refs (tg.build) are
 * parts of a task, not tasks: the report neither counts nor draws them
 * as run, as the progress line and the summary leave them out. */
Test(report, reader_nodes_are_not_tasks) {
  static const char text[] =
      "{\"tgraph\": 1, \"tasks\": {"
      "\"a\": {\"fn\": \"identity\", \"args\": [1]},"
      "\"b\": {\"fn\": \"identity\", \"args\": [2]},"
      "\"both\": {\"fn\": \"identity\", \"args\": [[{\"ref\": \"a\"}, {\"ref\": \"b\"}]]}},"
      "\"outputs\": [\"both\"]}";
  tg_registry *reg;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_OK);
  tg_graph *g;
  tg_graphjson_info *info;
  tg_error e;
  cr_assert_eq(tg_graphjson_parse(text, sizeof text - 1, "g.json", NULL, reg, NULL, &g,
                                  &info, &e), TG_OK, "%s", e.msg);
  cr_assert_eq(info->ntasks, 3);
  cr_assert_gt(tg_graph_size(g), 3, "the nested list is a node of its own");
  tg_report *r;
  cr_assert_eq(tg_report_new(g, info->output_nodes, 1, &r), TG_OK);
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync",
                       .on_event = tg_report_on_event, .event_ctx = r};
  tg_value *res;
  cr_assert_eq(tg_compute(g, info->output_nodes, 1, &o, &res), TG_OK);
  tg_value_unref(res);
  char *json;
  size_t len;
  cr_assert_eq(tg__report_json(r, &json, &len), TG_OK);
  tg_value *v;
  cr_assert_eq(tg_value_from_json(json, len, &v, NULL), TG_OK, "%s", json);
  cr_expect_eq(tg_value_int(tg_map_get_c(v, "run_tasks")), 3);
  tg_value *states = tg_map_get_c(tg_map_get_c(v, "tasks"), "state");
  size_t ran = 0;
  for (size_t i = 0; i < tg_list_len(states); i++)
    ran += strcmp(tg_str_data(tg_list_get(states, i), NULL), "ran") == 0;
  cr_expect_eq(ran, 3, "the file's three tasks ran, and nothing else");
  tg_value_unref(v);
  free(json);
  tg_report_free(r);
  tg_graphjson_info_free(info);
  tg_graph_free(g);
  tg_registry_free(reg);
}
