/* tests/test_dashboard.c: the live dashboard (tgraph run --dashboard and
 * tgraph/dashboard.h), over real sockets: a headless chromium loads the
 * live page while a run goes and again later; requests without the token
 * or with a wrong one, also from another local user (nobody, as setpriv
 * makes one), get 403 and no data; the server ends with the run unless
 * it is asked to stay; every ADDR form; a busy port; the C API.
 *
 * The runs' tasks wait for gate files the test creates, so "mid-run" is
 * a state the test sets, not a moment it hopes to hit. */
#include <arpa/inet.h>
#include <dirent.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "test_cli_util.h"
#include "tgraph.h"
#include "tgraph/builtins.h"
#include "tgraph/dashboard.h"

static char dir[64];

static void setup(void) { tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tg_dash_XXXXXX"); }

static pid_t run_pid; /* the tgraph run of the test, killed if left */

static void teardown(void) {
  if (run_pid > 0) {
    kill(run_pid, SIGKILL);
    waitpid(run_pid, NULL, 0);
    run_pid = 0;
  }
  tcli_leave_tmpdir(dir);
}

TestSuite(dashboard, .init = setup, .fini = teardown, .timeout = 300);

/* ---- HTTP over a plain socket -------------------------------------------------- */

typedef struct http_reply {
  int status;     /* 403, 200...; 0 when no reply came */
  char *head;     /* status line and headers (malloc'd) */
  char *body;     /* what follows them (malloc'd) */
} http_reply;

static void http_reply_free(http_reply *r) {
  free(r->head);
  free(r->body);
}

/* Connect to host:port (numeric, IPv4 or IPv6): the fd, or -errno. */
static int http_connect(const char *host, unsigned port) {
  struct sockaddr_storage ss;
  memset(&ss, 0, sizeof ss);
  socklen_t len;
  if (strchr(host, ':') != NULL) {
    struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
    a->sin6_family = AF_INET6;
    a->sin6_port = htons((in_port_t)port);
    cr_assert_eq(inet_pton(AF_INET6, host, &a->sin6_addr), 1, "host %s", host);
    len = sizeof *a;
  } else {
    struct sockaddr_in *a = (struct sockaddr_in *)&ss;
    a->sin_family = AF_INET;
    a->sin_port = htons((in_port_t)port);
    cr_assert_eq(inet_pton(AF_INET, host, &a->sin_addr), 1, "host %s", host);
    len = sizeof *a;
  }
  int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  cr_assert_geq(fd, 0);
  if (connect(fd, (struct sockaddr *)&ss, len) != 0) {
    int e = errno;
    close(fd);
    return -e;
  }
  return fd;
}

/* `method path` to host:port; the reply read to its end (10 s at most).
 * Returns 0, or -errno when it cannot connect. */
static int http_request(const char *host, unsigned port, const char *method,
                        const char *path, http_reply *r) {
  memset(r, 0, sizeof *r);
  int fd = http_connect(host, port);
  if (fd < 0) return fd;
  char req[512];
  int n = snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\n"
                   "Connection: close\r\n\r\n", method, path);
  cr_assert_eq(write(fd, req, (size_t)n), n);
  char *all = calloc(1, 1), buf[4096];
  size_t len = 0;
  struct pollfd p = {fd, POLLIN, 0};
  ssize_t got;
  while (poll(&p, 1, 10000) > 0 && (got = read(fd, buf, sizeof buf)) > 0)
    tcli_append(&all, &len, buf, (size_t)got);
  close(fd);
  char *end = strstr(all, "\r\n\r\n");
  if (end != NULL) {
    r->body = strdup(end + 4);
    *end = '\0';
  } else {
    r->body = strdup("");
  }
  r->head = all;
  sscanf(all, "HTTP/1.%*d %d", &r->status);
  return 0;
}

/* ---- a tgraph run with a dashboard ---------------------------------------------- */

typedef struct dash_run {
  pid_t pid;
  int out, err;        /* its stdout and stderr */
  char line[512];      /* its "tgraph: dashboard: ..." line */
  char host[64];       /* from the URL, without brackets */
  unsigned port;
  char token[64];
  char url[256];
} dash_run;

/* Pick "http://HOST:PORT/?t=TOKEN" out of r->line. */
static void parse_url(dash_run *r) {
  const char *u = strstr(r->line, "http://");
  cr_assert_not_null(u, "no URL in '%s'", r->line);
  sscanf(u, "%255s", r->url);
  const char *h = u + 7, *slash = strstr(h, "/?t=");
  cr_assert_not_null(slash, "no /?t= in '%s'", r->line);
  const char *colon = slash;
  while (colon > h && *colon != ':') colon--;
  size_t hn = (size_t)(colon - h);
  if (h[0] == '[') h++, hn -= 2;
  cr_assert_lt(hn, sizeof r->host);
  memcpy(r->host, h, hn);
  r->host[hn] = '\0';
  r->port = (unsigned)strtoul(colon + 1, NULL, 10);
  sscanf(slash + 4, "%63[0-9a-f]", r->token);
}

/* Start `tgraph run ARGS...` and wait (30 s at most) for its dashboard
 * line, or for it to end: returns true when the line came. */
static bool dash_start(dash_run *r, const char *const *args) {
  memset(r, 0, sizeof *r);
  const char *argv[32] = {tcli_bin(), "run"};
  int n = 2;
  while (*args && n < 31) argv[n++] = *args++;
  int o[2], e[2];
  cr_assert_eq(pipe(o), 0);
  cr_assert_eq(pipe(e), 0);
  r->pid = run_pid = tproc_fork();
  if (r->pid == 0) {
    dup2(o[1], 1);
    dup2(e[1], 2);
    close(o[0]), close(o[1]), close(e[0]), close(e[1]);
    execv(argv[0], (char *const *)argv);
    _exit(127);
  }
  close(o[1]);
  close(e[1]);
  r->out = o[0];
  r->err = e[0];
  double until = tcli_now() + 30;
  while (tcli_now() < until) {
    tproc_read_line(r->err, r->line, sizeof r->line, 30);
    if (strncmp(r->line, "tgraph: dashboard: http", 23) == 0) {
      parse_url(r);
      return true;
    }
    struct pollfd p = {r->err, POLLIN, 0};
    if (r->line[0] == '\0' && poll(&p, 1, 0) == 1 && (p.revents & POLLHUP)) break;
  }
  return false;
}

/* Read fd to its end (timeout s at most) into a malloc'd string. */
static char *read_to_end(int fd, double timeout) {
  char *all = calloc(1, 1), buf[4096];
  size_t len = 0;
  double until = tcli_now() + timeout;
  struct pollfd p = {fd, POLLIN, 0};
  ssize_t got;
  while (tcli_now() < until && poll(&p, 1, 1000) >= 0) {
    if (p.revents == 0) continue;
    if ((got = read(fd, buf, sizeof buf)) <= 0) break;
    tcli_append(&all, &len, buf, (size_t)got);
  }
  return all;
}

/* Wait for the run to end (60 s at most): its exit status; its stdout and
 * the rest of its stderr into *out and *err (malloc'd) when not NULL. */
static int dash_wait(dash_run *r, char **out, char **err) {
  char *o = read_to_end(r->out, 60), *e = read_to_end(r->err, 10);
  int st;
  double until = tcli_now() + 10;
  pid_t w;
  while ((w = waitpid(r->pid, &st, WNOHANG)) == 0 && tcli_now() < until) usleep(20000);
  cr_assert_eq(w, r->pid, "the run did not end; stderr: %s", e);
  run_pid = 0;
  close(r->out);
  close(r->err);
  if (out) *out = o;
  else free(o);
  if (err) *err = e;
  else free(e);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* GET path?t=TOKEN (token NULL: none; "" as given) from the run's server. */
static int dash_get(const dash_run *r, const char *path, const char *token,
                    http_reply *rep) {
  char p[256];
  if (token == NULL) snprintf(p, sizeof p, "%s", path);
  else snprintf(p, sizeof p, "%s?t=%s", path, token);
  return http_request(r->host, r->port, "GET", p, rep);
}

/* ---- graphs ------------------------------------------------------------------- */

/* A chain of n sh tasks step1 ... stepN (N the output), each waiting for
 * its gate file DIR/goI to exist. */
static void write_gated_graph(int n) {
  char text[8192];
  size_t len = (size_t)snprintf(text, sizeof text, "{\"tgraph\": 1, \"tasks\": {\n");
  for (int i = 1; i <= n; i++) {
    len += (size_t)snprintf(text + len, sizeof text - len,
                            "  \"step%d\": {\"fn\": \"sh\", \"args\": [\"while [ ! -e %s/go%d ]; "
                            "do sleep 0.02; done; echo %d\"",
                            i, dir, i, i);
    if (i > 1)
      len += (size_t)snprintf(text + len, sizeof text - len, ", {\"ref\": \"step%d\"}", i - 1);
    len += (size_t)snprintf(text + len, sizeof text - len, "]}%s\n", i < n ? "," : "");
  }
  snprintf(text + len, sizeof text - len, "}, \"outputs\": [\"step%d\"]}\n", n);
  tcli_write_file("g.json", text);
}

static void open_gate(int i) {
  char p[128];
  snprintf(p, sizeof p, "%s/go%d", dir, i);
  tcli_write_file(p, "");
}

/* One quick task, for the tests about addresses and tokens. */
static void write_quick_graph(void) {
  tcli_write_file("g.json", "{\"tgraph\": 1, \"tasks\": {\"quick_task\": {\"fn\": \"sh\", "
                            "\"args\": [\"echo hi\"]}}, \"outputs\": [\"quick_task\"]}\n");
}

/* A port nothing listens on now (the kernel's pick, released). */
static unsigned free_port(void) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  close(fd);
  return ntohs(a.sin_port);
}

/* Read the run's stderr until a line starting with `prefix` (30 s). */
static void wait_for_line(dash_run *r, const char *prefix) {
  char line[512];
  double until = tcli_now() + 30;
  while (tcli_now() < until) {
    tproc_read_line(r->err, line, sizeof line, 30);
    if (strncmp(line, prefix, strlen(prefix)) == 0) return;
  }
  cr_assert_fail("no line '%s...' from the run", prefix);
}

/* SIGTERM to a run that stays: it exits 0, and its port is closed. */
static void stop_staying_run(dash_run *r, int sig) {
  wait_for_line(r, "tgraph: dashboard: the run is over; still serving");
  cr_assert_eq(kill(r->pid, sig), 0);
  char *err;
  int st = dash_wait(r, NULL, &err);
  cr_expect_eq(st, 0, "exit status %d after signal %d; stderr: %s", st, sig, err);
  cr_expect_eq(strstr(err, "error"), NULL, "stderr: %s", err);
  free(err);
  cr_expect_eq(http_connect(r->host, r->port), -ECONNREFUSED,
               "the server still answers after the run exited");
}

/* ---- the token ------------------------------------------------------------------ */

Test(dashboard, requests_without_the_right_token_get_403_and_no_data) {
  write_quick_graph();
  dash_run r;
  const char *args[] = {"g.json", "--no-cache", "--dashboard-stay", NULL};
  cr_assert(dash_start(&r, args), "no dashboard line");
  cr_assert_eq(strlen(r.token), 32, "token '%s' is not 128 bits in hex", r.token);
  char wrong[64];
  snprintf(wrong, sizeof wrong, "%s", r.token);
  wrong[5] = wrong[5] == '0' ? '1' : '0'; /* one hex digit off */
  char longer[80], shorter[64];
  snprintf(longer, sizeof longer, "%s0", r.token);
  snprintf(shorter, sizeof shorter, "%.31s", r.token);
  const char *bad[] = {NULL, "", wrong, longer, shorter,
                       "00000000000000000000000000000000"};
  const char *paths[] = {"/", "/data"};
  for (size_t p = 0; p < 2; p++)
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
      http_reply rep;
      cr_assert_eq(dash_get(&r, paths[p], bad[i], &rep), 0);
      cr_expect_eq(rep.status, 403, "%s with token '%s': %d", paths[p],
                   bad[i] ? bad[i] : "(none)", rep.status);
      cr_expect_eq(strstr(rep.body, "quick_task"), NULL, "data leaked: %s", rep.body);
      cr_expect_eq(strstr(rep.body, r.token), NULL, "the token leaked");
      http_reply_free(&rep);
    }
  http_reply rep;
  cr_assert_eq(dash_get(&r, "/data", r.token, &rep), 0);
  cr_expect_eq(rep.status, 200, "%s", rep.head);
  cr_expect_neq(strstr(rep.body, "quick_task"), NULL, "%s", rep.body);
  cr_expect_neq(strstr(rep.head, "Cache-Control: no-store"), NULL, "%s", rep.head);
  cr_expect_neq(strstr(rep.head, "Content-Type: application/json"), NULL, "%s", rep.head);
  http_reply_free(&rep);
  cr_assert_eq(dash_get(&r, "/", r.token, &rep), 0);
  cr_expect_eq(rep.status, 200, "%s", rep.head);
  cr_expect_neq(strstr(rep.head, "Content-Type: text/html"), NULL, "%s", rep.head);
  cr_expect_neq(strstr(rep.body, "<html"), NULL);
  http_reply_free(&rep);
  cr_assert_eq(dash_get(&r, "/elsewhere", r.token, &rep), 0);
  cr_expect_eq(rep.status, 404);
  http_reply_free(&rep);
  char path[128];
  snprintf(path, sizeof path, "/data?t=%s", r.token);
  cr_assert_eq(http_request(r.host, r.port, "POST", path, &rep), 0);
  cr_expect_eq(rep.status, 405);
  http_reply_free(&rep);
  stop_staying_run(&r, SIGTERM);
}

/* What user nobody gets from the dashboard's port: the status of each
 * request, written by a child that became nobody as setpriv does. */
static void as_nobody(const dash_run *r, const char *const *tokens, size_t n, int *status) {
  struct passwd *pw = getpwnam("nobody");
  cr_assert_not_null(pw, "no user nobody");
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    close(p[0]);
    if (setgroups(0, NULL) != 0 || setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0 ||
        getuid() != pw->pw_uid)
      _exit(3);
    for (size_t i = 0; i < n; i++) {
      http_reply rep;
      int st = dash_get(r, "/data", tokens[i], &rep) == 0 ? rep.status : -1;
      if (st != 200 && strstr(rep.body, "step1") != NULL) st = -2; /* data with a refusal */
      if (write(p[1], &st, sizeof st) != sizeof st) _exit(4);
      http_reply_free(&rep);
    }
    _exit(0);
  }
  close(p[1]);
  for (size_t i = 0; i < n; i++)
    cr_assert_eq(read(p[0], &status[i], sizeof *status), (ssize_t)sizeof *status,
                 "the child as nobody said nothing");
  close(p[0]);
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child as nobody: status 0x%x", st);
}

Test(dashboard, another_local_user_cannot_read_it_without_the_token) {
  if (geteuid() != 0) cr_skip_test("needs root, to be a second user as setpriv does");
  write_gated_graph(2);
  dash_run r;
  const char *args[] = {"g.json", "--no-cache", "--dashboard", NULL};
  cr_assert(dash_start(&r, args), "no dashboard line");
  const char *tokens[] = {NULL, "0123456789abcdef0123456789abcdef", r.token};
  int status[3];
  as_nobody(&r, tokens, 3, status);
  cr_expect_eq(status[0], 403, "nobody without a token: %d", status[0]);
  cr_expect_eq(status[1], 403, "nobody with a wrong token: %d", status[1]);
  /* The token, not the user, is what opens it: whoever has the URL reads. */
  cr_expect_eq(status[2], 200, "nobody with the token: %d", status[2]);
  open_gate(1);
  open_gate(2);
  cr_expect_eq(dash_wait(&r, NULL, NULL), 0);
}

/* ---- the server's life ---------------------------------------------------------- */

static void stops_case(const char *sched) {
  write_gated_graph(2);
  dash_run r;
  const char *args[] = {"g.json", "--no-cache", sched, "--dashboard", NULL};
  cr_assert(dash_start(&r, args), "no dashboard line");
  http_reply rep;
  cr_assert_eq(dash_get(&r, "/data", r.token, &rep), 0);
  cr_expect_eq(rep.status, 200);
  http_reply_free(&rep);
  open_gate(1);
  open_gate(2);
  char *out, *err;
  cr_expect_eq(dash_wait(&r, &out, &err), 0, "%s", err);
  cr_expect_str_eq(out, "{\"step2\":{\"$bytes\":\"Mgo=\"}}\n"); /* "2\n" */
  cr_expect_eq(http_connect(r.host, r.port), -ECONNREFUSED,
               "the server still answers after the run ended");
  free(out);
  free(err);
}

Test(dashboard, stops_when_the_run_ends) { stops_case("--scheduler=threads"); }
Test(dashboard, stops_when_the_run_ends_on_processes) { stops_case("--scheduler=processes"); }

Test(dashboard, stays_after_the_run_until_sigterm) {
  write_quick_graph();
  dash_run r;
  const char *args[] = {"g.json", "--no-cache", "--dashboard-stay", "-q", NULL};
  cr_assert(dash_start(&r, args), "no dashboard line, even with -q");
  char line[256];
  tproc_read_line(r.out, line, sizeof line, 30);
  cr_expect_str_eq(line, "{\"quick_task\":{\"$bytes\":\"aGkK\"}}"); /* "hi\n" */
  http_reply rep;
  cr_assert_eq(dash_get(&r, "/data", r.token, &rep), 0, "not serving after the run");
  cr_expect_eq(rep.status, 200);
  cr_expect_neq(strstr(rep.body, "quick_task"), NULL);
  http_reply_free(&rep);
  stop_staying_run(&r, SIGTERM);
}

Test(dashboard, stays_after_the_run_until_ctrl_c) {
  write_quick_graph();
  dash_run r;
  const char *args[] = {"g.json", "--no-cache", "--dashboard-stay", NULL};
  cr_assert(dash_start(&r, args), "no dashboard line");
  stop_staying_run(&r, SIGINT);
}

/* ---- addresses ------------------------------------------------------------------ */

/* Run the quick graph with --dashboard=addr staying; its line must be
 * "tgraph: dashboard: http://URLHOST:PORT/?t=TOKEN" followed by `note`;
 * the page answers there. port 0: whatever port it chose. */
static void addr_case(const char *addr, const char *url_host, unsigned port, const char *note) {
  write_quick_graph();
  char opt[128];
  snprintf(opt, sizeof opt, "--dashboard=%s", addr);
  dash_run r;
  const char *args[] = {"g.json", "--no-cache", opt, "--dashboard-stay", NULL};
  cr_assert(dash_start(&r, args), "no dashboard line for %s", addr);
  if (port != 0) cr_expect_eq(r.port, port, "%s: port %u", addr, r.port);
  cr_expect_gt(r.port, 0);
  char want[512];
  snprintf(want, sizeof want, "tgraph: dashboard: http://%s:%u/?t=%s%s", url_host, r.port,
           r.token, note);
  cr_expect_str_eq(r.line, want);
  cr_expect_eq(strlen(r.token), 32);
  http_reply rep;
  if (strcmp(r.host, "0.0.0.0") == 0) strcpy(r.host, "127.0.0.1"); /* all of them */
  cr_assert_eq(http_request(r.host, r.port, "GET", strstr(r.url, "/?t="), &rep), 0);
  cr_expect_eq(rep.status, 200, "%s: %s", addr, rep.head);
  http_reply_free(&rep);
  stop_staying_run(&r, SIGTERM);
}

Test(dashboard, addr_default_is_loopback_with_a_free_port) {
  write_quick_graph();
  dash_run r;
  const char *args[] = {"g.json", "--no-cache", "--dashboard", "--dashboard-stay", NULL};
  cr_assert(dash_start(&r, args));
  char want[256];
  snprintf(want, sizeof want, "tgraph: dashboard: http://127.0.0.1:%u/?t=%s", r.port, r.token);
  cr_expect_str_eq(r.line, want);
  stop_staying_run(&r, SIGTERM);
}

Test(dashboard, addr_port) {
  unsigned p = free_port();
  char a[16];
  snprintf(a, sizeof a, "%u", p);
  addr_case(a, "127.0.0.1", p, "");
}

Test(dashboard, addr_host_port) {
  unsigned p = free_port();
  char a[32];
  snprintf(a, sizeof a, "127.0.0.1:%u", p);
  addr_case(a, "127.0.0.1", p, "");
}

Test(dashboard, addr_localhost_port) { addr_case("localhost:0", "127.0.0.1", 0, ""); }

Test(dashboard, addr_ipv6_loopback) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT};
  bool v6 = fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) == 0;
  if (fd >= 0) close(fd);
  if (!v6) cr_skip_test("no IPv6 loopback on this machine");
  addr_case("[::1]:0", "[::1]", 0, "");
}

Test(dashboard, addr_not_loopback_only_when_given_and_said) {
  addr_case("0.0.0.0:0", "0.0.0.0", 0,
            " (not loopback: other machines can reach it; the token is its only protection)");
}

Test(dashboard, busy_port_is_a_clear_error_before_anything_runs) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
  cr_assert_eq(listen(fd, 4), 0);
  cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
  unsigned port = ntohs(a.sin_port);
  tcli_write_file("g.json", "{\"tgraph\": 1, \"tasks\": {\"t\": {\"fn\": \"sh\", "
                            "\"args\": [\"touch ran\"]}}, \"outputs\": [\"t\"]}\n");
  char opt[64], want[256];
  snprintf(opt, sizeof opt, "--dashboard=%u", port);
  char *args[] = {"tgraph", "run", "g.json", "--no-cache", opt, NULL};
  tcli_how how = {.timeout = 60};
  tcli_result res = tcli_run(tcli_bin(), &how, args);
  snprintf(want, sizeof want, "tgraph: error: dashboard: 127.0.0.1:%u ('%u') is in use by "
           "another program: choose another port, or give none for a free one\n", port, port);
  tcli_expect(res, 2, "", want);
  cr_expect_neq(access("ran", F_OK), 0, "the task ran although the dashboard failed");
  tcli_result_free(&res);
  close(fd);
}

Test(dashboard, bad_addr_is_a_usage_error) {
  write_quick_graph();
  static const struct {
    const char *addr, *why;
  } cases[] = {
      {"99999", "the port must be a number from 0 to 65535"},
      {"http", "the port must be a number from 0 to 65535"},
      {"127.0.0.1:", "the port must be a number from 0 to 65535"},
      {"127.0.0.1:-1", "the port must be a number from 0 to 65535"},
      {"example.org:80", "the host must be a numeric IPv4 address or localhost"},
      {"::1:8080", "an IPv6 address goes in brackets, e.g. [::1]:8080"},
      {"[::1]8080", "no ']:PORT' after the IPv6 host"},
      {"[nope]:8080", "not a numeric IPv6 address"},
  };
  for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
    char opt[64], want[512];
    snprintf(opt, sizeof opt, "--dashboard=%s", cases[i].addr);
    char *args[] = {"tgraph", "run", "g.json", opt, NULL};
    tcli_how how = {.timeout = 60};
    tcli_result res = tcli_run(tcli_bin(), &how, args);
    snprintf(want, sizeof want, "tgraph run: --dashboard=ADDR: dashboard address '%s': %s "
             "(use PORT, HOST:PORT or [IPv6]:PORT)\n(see tgraph run --help)\n",
             cases[i].addr, cases[i].why);
    tcli_expect(res, 2, "", want);
    tcli_result_free(&res);
  }
}

/* ---- a real browser on the live page -------------------------------------------- */

/* The DOM of url after chromium (headless, a profile in the test's
 * directory) ran the page's scripts for 3 s of virtual time, which lets
 * the page fetch its data and render. */
static char *browser_dom(const char *url) {
  char profile[128];
  snprintf(profile, sizeof profile, "--user-data-dir=%s/chromium", dir);
  char *args[] = {"chromium", "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                  profile, "--virtual-time-budget=3000", "--dump-dom", (char *)url, NULL};
  tcli_how how = {.timeout = 180}; /* chromium is killed by pid past it */
  tcli_result r = tcli_run("/usr/bin/chromium", &how, args);
  cr_assert_eq(r.status, 0, "chromium exited %d: %s", r.status, r.err);
  free(r.err);
  return r.out;
}

/* The page's "N tasks run" figure in dom, -1 when it has none. */
static int dom_tasks_run(const char *dom) {
  const char *label = "</b><span>tasks run</span>", *p = strstr(dom, label);
  if (p == NULL) return -1;
  const char *b = p;
  while (b > dom && b[-1] >= '0' && b[-1] <= '9') b--;
  return b == p ? -1 : atoi(b);
}

/* Occurrences of needle in hay. */
static int count_of(const char *hay, const char *needle) {
  int n = 0;
  for (const char *p = hay; (p = strstr(p, needle)) != NULL; p += strlen(needle)) n++;
  return n;
}

/* Wait (30 s at most) until the run's data says k tasks ran. */
static void wait_ran(const dash_run *r, int k) {
  double until = tcli_now() + 30;
  int ran = -1;
  while (tcli_now() < until) {
    http_reply rep;
    cr_assert_eq(dash_get(r, "/data", r->token, &rep), 0);
    ran = count_of(rep.body, "\"ran\"");
    http_reply_free(&rep);
    if (ran == k) return;
    usleep(50000);
  }
  cr_assert_fail("the data says %d tasks ran, not %d", ran, k);
}

static void expect_keys(const char *dom, int n) {
  for (int i = 1; i <= n; i++) {
    char cell[64];
    snprintf(cell, sizeof cell, "<td class=\"key\">step%d</td>", i);
    cr_expect_neq(strstr(dom, cell), NULL, "no task step%d in the page", i);
  }
}

Test(dashboard, browser_sees_the_running_graph_grow) {
  write_gated_graph(4);
  dash_run r;
  const char *args[] = {"g.json", "--no-cache", "--dashboard", NULL};
  cr_assert(dash_start(&r, args), "no dashboard line");
  open_gate(1);
  wait_ran(&r, 1);
  char *dom = browser_dom(r.url);
  cr_expect_neq(strstr(dom, "data-rendered=\"live\""), NULL, "not a live render: %.2000s", dom);
  expect_keys(dom, 4);
  cr_expect_eq(dom_tasks_run(dom), 1, "mid-run the page says %d tasks ran", dom_tasks_run(dom));
  free(dom);
  open_gate(2);
  open_gate(3);
  wait_ran(&r, 3);
  dom = browser_dom(r.url);
  cr_expect_neq(strstr(dom, "data-rendered=\"live\""), NULL);
  expect_keys(dom, 4);
  cr_expect_eq(dom_tasks_run(dom), 3, "later the page says %d tasks ran", dom_tasks_run(dom));
  free(dom);
  open_gate(4);
  cr_expect_eq(dash_wait(&r, NULL, NULL), 0);
  cr_expect_eq(http_connect(r.host, r.port), -ECONNREFUSED);
}

/* ---- the C API ------------------------------------------------------------------ */

/* A graph of one builtin call, a report over it. */
typedef struct api_run {
  tg_registry *reg;
  tg_graph *g;
  tg_node out;
  tg_report *rep;
} api_run;

static api_run api_setup(void) {
  api_run a;
  cr_assert_eq(tg_registry_new(&a.reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(a.reg), TG_OK);
  cr_assert_eq(tg_graph_new(a.reg, &a.g), TG_OK);
  tg_node_opts o = {TG_NODE_OPTS_V1, "api_task", -1, -1, 0, 0};
  tg_arg arg = tg_arg_value(tg_str_c("echo api"));
  cr_assert_eq(tg_graph_add(a.g, "sh", &arg, 1, &o, &a.out), TG_OK, "%s",
               tg_graph_errmsg(a.g));
  cr_assert_eq(tg_report_new(a.g, &a.out, 1, &a.rep), TG_OK);
  return a;
}

static void api_teardown(api_run *a) {
  tg_report_free(a->rep);
  tg_graph_free(a->g);
  tg_registry_free(a->reg);
}

Test(dashboard, api_serves_a_programs_own_run) {
  api_run a = api_setup();
  tg_dashboard_opts opts = {TG_DASHBOARD_OPTS_V1, NULL, 0};
  tg_dashboard *d = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_dashboard_start(a.rep, &opts, &d, &err), TG_OK, "%s", err.msg);
  cr_expect(tg_dashboard_loopback(d));
  dash_run r;
  memset(&r, 0, sizeof r);
  snprintf(r.line, sizeof r.line, "%s", tg_dashboard_url(d));
  parse_url(&r);
  cr_expect_str_eq(r.host, "127.0.0.1");
  cr_expect_eq(r.port, tg_dashboard_port(d));
  cr_expect_eq(strlen(r.token), 32);
  http_reply rep;
  cr_assert_eq(dash_get(&r, "/data", r.token, &rep), 0);
  cr_expect_eq(rep.status, 200);
  cr_expect_eq(strstr(rep.body, "\"ran\""), NULL, "ran before the compute: %s", rep.body);
  http_reply_free(&rep);
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V2, .scheduler = "threads",
                        .on_event = tg_report_on_event, .event_ctx = a.rep};
  tg_value *res = NULL;
  cr_assert_eq(tg_compute(a.g, &a.out, 1, &co, &res), TG_OK, "%s", tg_graph_errmsg(a.g));
  tg_value_unref(res);
  wait_ran(&r, 1); /* a reply is reused for up to half a second */
  cr_assert_eq(dash_get(&r, "/data", r.token, &rep), 0);
  cr_expect_eq(rep.status, 200);
  cr_expect_neq(strstr(rep.body, "\"api_task\""), NULL, "%s", rep.body);
  http_reply_free(&rep);
  tg_dashboard_stop(d);
  cr_expect_eq(http_connect(r.host, r.port), -ECONNREFUSED, "still served after stop");
  tg_dashboard_stop(NULL); /* a no-op */
  api_teardown(&a);
}

Test(dashboard, api_errors) {
  api_run a = api_setup();
  tg_dashboard *d = (tg_dashboard *)&a; /* must be reset to NULL */
  tg_error err;
  tg_error_clear(&err);
  cr_expect_eq(tg_dashboard_start(NULL, NULL, &d, &err), TG_EINVAL);
  cr_expect_null(d);
  cr_expect_eq(tg_dashboard_start(a.rep, NULL, NULL, &err), TG_EINVAL);
  tg_dashboard_opts old = {99, NULL, 0};
  cr_expect_eq(tg_dashboard_start(a.rep, &old, &d, &err), TG_EINVAL);
  tg_dashboard_opts bad = {TG_DASHBOARD_OPTS_V1, "[::1", 0};
  cr_expect_eq(tg_dashboard_start(a.rep, &bad, &d, &err), TG_EINVAL);
  cr_expect_str_eq(err.msg, "dashboard address '[::1': no ']:PORT' after the IPv6 host "
                            "(use PORT, HOST:PORT or [IPv6]:PORT)");
  cr_expect_eq(tg_dashboard_addr_check("8080", NULL), TG_OK);
  cr_expect_eq(tg_dashboard_addr_check("localhost:8080", NULL), TG_OK);
  cr_expect_eq(tg_dashboard_addr_check("[::1]:0", NULL), TG_OK);
  cr_expect_eq(tg_dashboard_addr_check("65536", NULL), TG_EINVAL);
  /* Two dashboards: two ports, two tokens; the second cannot take the
   * first one's port. */
  tg_dashboard *d1 = NULL, *d2 = NULL;
  cr_assert_eq(tg_dashboard_start(a.rep, NULL, &d1, &err), TG_OK, "%s", err.msg);
  cr_assert_eq(tg_dashboard_start(a.rep, NULL, &d2, &err), TG_OK, "%s", err.msg);
  cr_expect_neq(tg_dashboard_port(d1), tg_dashboard_port(d2));
  const char *t1 = strstr(tg_dashboard_url(d1), "?t="), *t2 = strstr(tg_dashboard_url(d2), "?t=");
  cr_expect_str_neq(t1, t2);
  char taken[32];
  snprintf(taken, sizeof taken, "%u", tg_dashboard_port(d1));
  tg_dashboard_opts busy = {TG_DASHBOARD_OPTS_V1, taken, 0};
  cr_expect_eq(tg_dashboard_start(a.rep, &busy, &d, &err), -EADDRINUSE);
  cr_expect_null(d);
  cr_expect_neq(strstr(err.msg, "is in use by another program"), NULL, "%s", err.msg);
  tg_dashboard_opts elsewhere = {TG_DASHBOARD_OPTS_V1, "192.0.2.1:0", 0}; /* TEST-NET-1 */
  cr_expect_eq(tg_dashboard_start(a.rep, &elsewhere, &d, &err), -EADDRNOTAVAIL);
  cr_expect_str_eq(err.msg, "dashboard: 192.0.2.1:0 ('192.0.2.1:0') is not an address of "
                            "this machine");
  tg_dashboard_stop(d1);
  tg_dashboard_stop(d2);
  api_teardown(&a);
}

Test(dashboard, api_connection_limit_holds) {
  api_run a = api_setup();
  tg_dashboard_opts opts = {TG_DASHBOARD_OPTS_V1, "127.0.0.1:0", 2};
  tg_dashboard *d = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_dashboard_start(a.rep, &opts, &d, &err), TG_OK, "%s", err.msg);
  dash_run r;
  memset(&r, 0, sizeof r);
  snprintf(r.line, sizeof r.line, "%s", tg_dashboard_url(d));
  parse_url(&r);
  /* Two silent clients take both places; a third client gets no page. */
  int idle[2];
  for (int i = 0; i < 2; i++) cr_assert_geq(idle[i] = http_connect(r.host, r.port), 0);
  usleep(200000); /* the server has accepted them */
  http_reply rep;
  int rc = dash_get(&r, "/data", r.token, &rep);
  cr_expect(rc != 0 || rep.status == 0, "a third connection was served: %d", rep.status);
  if (rc == 0) http_reply_free(&rep);
  /* One leaves: the next client is served. */
  close(idle[0]);
  usleep(200000);
  cr_assert_eq(dash_get(&r, "/data", r.token, &rep), 0);
  cr_expect_eq(rep.status, 200);
  http_reply_free(&rep);
  close(idle[1]);
  tg_dashboard_stop(d);
  api_teardown(&a);
}

/* The inode of the socket listening on 127.0.0.1:port (/proc/net/tcp). */
static unsigned long listen_inode(unsigned port) {
  FILE *f = fopen("/proc/net/tcp", "r");
  cr_assert_not_null(f);
  char line[512];
  unsigned long inode = 0;
  while (inode == 0 && fgets(line, sizeof line, f)) {
    unsigned lport, st;
    unsigned long ino;
    if (sscanf(line, " %*d: 0100007F:%X %*X:%*X %X %*X:%*X %*X:%*X %*X %*u %*u %lu", &lport,
               &st, &ino) == 3 && lport == port && st == 0x0A)
      inode = ino;
  }
  fclose(f);
  cr_assert_neq(inode, 0, "nothing listens on port %u", port);
  return inode;
}

/* How many children of this process hold socket `inode` open. */
static int children_holding(unsigned long inode) {
  char want[64];
  snprintf(want, sizeof want, "socket:[%lu]", inode);
  int n = 0;
  DIR *proc = opendir("/proc");
  cr_assert_not_null(proc);
  struct dirent *e;
  while ((e = readdir(proc)) != NULL) {
    char state;
    pid_t pid = (pid_t)atoi(e->d_name), ppid;
    if (pid <= 0 || !tproc_stat(pid, &state, &ppid) || ppid != getpid()) continue;
    char fds[64];
    snprintf(fds, sizeof fds, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(fds);
    struct dirent *fe;
    while (d != NULL && (fe = readdir(d)) != NULL) {
      char link[384], target[128];
      snprintf(link, sizeof link, "%s/%s", fds, fe->d_name);
      ssize_t len = readlink(link, target, sizeof target - 1);
      if (len > 0 && (target[len] = '\0', strcmp(target, want) == 0)) n++;
    }
    if (d != NULL) closedir(d);
  }
  closedir(proc);
  return n;
}

/* Workers forked while a dashboard serves do not keep its socket (they
 * would hold its port for as long as they live). */
Test(dashboard, api_forked_workers_do_not_keep_the_socket) {
  api_run a = api_setup();
  tg_dashboard *d = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_dashboard_start(a.rep, NULL, &d, &err), TG_OK, "%s", err.msg);
  unsigned long inode = listen_inode(tg_dashboard_port(d));
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "processes", .workers = 2};
  tg_executor *ex = NULL;
  cr_assert_eq(tg_executor_new(a.reg, &eo, &ex, &err), TG_OK, "%s", err.msg);
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V2, .executor = ex,
                        .on_event = tg_report_on_event, .event_ctx = a.rep};
  tg_value *res = NULL;
  cr_assert_eq(tg_compute(a.g, &a.out, 1, &co, &res), TG_OK, "%s", tg_graph_errmsg(a.g));
  tg_value_unref(res);
  cr_expect_eq(children_holding(inode), 0, "forked workers hold the dashboard's socket");
  tg_dashboard_stop(d);
  tg_executor_free(ex);
  api_teardown(&a);
}

/* getopt's optional argument needs '=': a bare --dashboard followed by
 * an address takes that address for the graph; the error says so. */
Test(dashboard, addr_without_equals_is_explained) {
  write_quick_graph();
  char *args[] = {"tgraph", "run", "--dashboard", "8080", "g.json", NULL};
  tcli_how how = {.timeout = 60};
  tcli_result res = tcli_run(tcli_bin(), &how, args);
  tcli_expect(res, 2, "", "tgraph run: one graph at a time ('g.json' is extra); an ADDR for "
              "--dashboard needs '=', as in --dashboard=8080\n(see tgraph run --help)\n");
  tcli_result_free(&res);
  char *plain[] = {"tgraph", "run", "g.json", "other.json", NULL};
  res = tcli_run(tcli_bin(), &how, plain);
  tcli_expect(res, 2, "", "tgraph run: one graph at a time ('other.json' is extra)\n"
              "(see tgraph run --help)\n");
  tcli_result_free(&res);
}
