/* tests/test_remote_trust.c: remote workers compute the code a run asked
 * for and serve no one else.
 *   - function identity: a function compiled into the program and a
 *     plugin's function of the same name and version are different code,
 *     refused both ways with a message naming both; builtins pair up by
 *     library build;
 *   - keys: workers and runs each take their own directory of `tgraph keys
 *     generate`, refuse the other's and the old layout, and a worker made
 *     from client material is refused by runs;
 *   - other local users (user nobody, through setpriv, when run as root):
 *     a keyless worker serves only its user, a keyless run talks only to a
 *     worker of its user, the user key is made once and kept private.
 * Workers are real processes on loopback (forked, or the tgraph program);
 * the plugin is tests/trust_plugin.c (libtrustbug.so). */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "registry/registry_internal.h" /* tg__library_build */
#include "wire/buf.h"
#include "wire/proto.h" /* user keys and sockets, the wire */
#include "tgraph/builtins.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/plugin.h"
#include "tgraph/remote.h"
#include "test_cli_util.h"
#include "test_peer.h"
#include "test_proc.h"

/* ---- registries: bug.f compiled in, or from the plugin -------------------------- */

enum { COMPILED, PLUGIN, BUILTINS, COMPILED_IDENTITY, WHOAMI };

static int bug_f(tg_task_ctx *ctx, tg_value *const *args, size_t nargs, tg_value **out) {
  (void)ctx, (void)args, (void)nargs;
  *out = tg_int(1);
  return TG_OK;
}

static int my_identity(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                       tg_value **out) {
  (void)ctx, (void)nargs;
  *out = tg_value_ref(args[0]);
  return TG_OK;
}

/* The worker's pid: which worker ran the task. */
static int whoami_f(tg_task_ctx *ctx, tg_value *const *args, size_t nargs, tg_value **out) {
  (void)ctx, (void)args, (void)nargs;
  *out = tg_int(getpid());
  return TG_OK;
}

static const char *plugin_path(void) {
  const char *p = getenv("TG_TRUST_PLUGIN");
  cr_assert_not_null(p, "TG_TRUST_PLUGIN is not set (run through meson test)");
  return p;
}

static tg_registry *make_reg(int kind) {
  tg_registry *r = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  if (kind == COMPILED) {
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = "bug.f", .fn_version = "1",
                     .fn = bug_f, .flags = TG_FUNC_PURE, .nargs = 0};
    cr_assert_eq(tg_registry_add(r, &d, NULL), TG_OK);
  } else if (kind == PLUGIN) {
    cr_assert_eq(tg_registry_load_plugin(r, plugin_path(), &err), TG_OK, "%s", err.msg);
  } else if (kind == BUILTINS) {
    cr_assert_eq(tg_registry_add_builtins(r), TG_OK);
  } else if (kind == WHOAMI) {
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = "whoami", .fn_version = "1",
                     .fn = whoami_f, .flags = TG_FUNC_PURE, .nargs = 0};
    cr_assert_eq(tg_registry_add(r, &d, NULL), TG_OK);
  } else {
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = "identity", .fn_version = "1",
                     .fn = my_identity, .flags = TG_FUNC_PURE, .nargs = 1};
    cr_assert_eq(tg_registry_add(r, &d, NULL), TG_OK);
  }
  return r;
}

static char plugin_digest[33];

static void digest_setup(void) {
  tg_digest d;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_plugin_digest_of(plugin_path(), &d, &err), TG_OK, "%s", err.msg);
  tg_digest_hex(d, plugin_digest);
}

/* ---- a worker process ---------------------------------------------------------- */

static pid_t wpid;
static char wep[128];

/* Fork a worker serving a registry of `kind` on listen; its endpoint in
 * wep. */
static void start_worker_on(int kind, const char *listen) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  wpid = tproc_fork();
  if (wpid == 0) {
    close(p[0]);
    tg_registry *r = make_reg(kind);
    tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = listen,
                        .nthreads = 1, .stop = tproc_stop_on_term(),
                        .on_ready = tproc_say_ready, .ctx = &p[1]};
    tg_error err;
    tg_error_clear(&err);
    int rc = tg_worker_serve(r, &o, &err);
    if (rc) dprintf(p[1], "ERROR %s\n", err.msg);
    _exit(rc ? 1 : 0);
  }
  close(p[1]);
  tproc_read_line(p[0], wep, sizeof wep, 30);
  close(p[0]);
  cr_assert(strncmp(wep, "tcp://", 6) == 0, "worker did not start: %s", wep);
}

/* ... on a free loopback port. */
static void start_worker(int kind) { start_worker_on(kind, "tcp://127.0.0.1:*"); }

static void stop_worker(void) {
  if (wpid > 0) {
    kill(wpid, SIGTERM);
    int st;
    waitpid(wpid, &st, 0);
    wpid = 0;
  }
}

/* Run fn (no arguments, or one: arg) with the registry of `kind` on the
 * worker; the result in *out (NULL on failure), the message in msg. */
static int remote_call(int kind, const char *fn, tg_value *arg, tg_value **out, char *msg,
                       size_t size) {
  tg_registry *r = make_reg(kind);
  const char *addr[1] = {wep};
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addr,
                         .nconnect = 1, .connect_timeout = 30};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(r, &eo, &ex, &err), TG_OK, "%s", err.msg);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(r, &g), TG_OK);
  tg_node n = arg ? tg_call(g, fn, 1, tg_arg_value(arg)) : tg_call(g, fn, 0);
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .executor = ex};
  *out = NULL;
  int rc = tg_compute(g, &n, 1, &o, out);
  snprintf(msg, size, "%s", tg_graph_errmsg(g));
  tg_graph_free(g);
  tg_executor_free(ex);
  tg_registry_free(r);
  return rc;
}

/* ---- function identity ------------------------------------------------------------ */

TestSuite(remote_trust, .init = digest_setup, .fini = stop_worker, .timeout = 120);

Test(remote_trust, compiled_in_here_plugin_there) {
  start_worker(PLUGIN);
  tg_value *v;
  char msg[1024], want[1024];
  cr_assert_eq(remote_call(COMPILED, "bug.f", NULL, &v, msg, sizeof msg), TG_EVERSION,
               "ran: %s", msg);
  cr_expect_null(v);
  snprintf(want, sizeof want, "function 'bug.f' is compiled into this program but comes "
           "from plugin libtrustbug.so (digest %s) on worker %s", plugin_digest, wep);
  cr_expect_str_eq(msg, want);
}

Test(remote_trust, plugin_here_compiled_in_there) {
  start_worker(COMPILED);
  tg_value *v;
  char msg[1024], want[1024];
  cr_assert_eq(remote_call(PLUGIN, "bug.f", NULL, &v, msg, sizeof msg), TG_EVERSION,
               "ran: %s", msg);
  snprintf(want, sizeof want, "function 'bug.f' comes from plugin libtrustbug.so (digest "
           "%s) in this program but is compiled into the program on worker %s",
           plugin_digest, wep);
  cr_expect_str_eq(msg, want);
}

Test(remote_trust, same_code_runs) {
  tg_value *v;
  char msg[1024];
  start_worker(PLUGIN);
  cr_assert_eq(remote_call(PLUGIN, "bug.f", NULL, &v, msg, sizeof msg), TG_OK, "%s", msg);
  cr_expect_eq(tg_value_int(v), 666);
  tg_value_unref(v);
  stop_worker();
  start_worker(COMPILED);
  cr_assert_eq(remote_call(COMPILED, "bug.f", NULL, &v, msg, sizeof msg), TG_OK, "%s", msg);
  cr_expect_eq(tg_value_int(v), 1);
  tg_value_unref(v);
}

Test(remote_trust, builtins_pair_by_library_build) {
  tg_value *v;
  char msg[1024], want[1024];
  start_worker(BUILTINS);
  cr_assert_eq(remote_call(BUILTINS, "identity", tg_int(5), &v, msg, sizeof msg), TG_OK,
               "%s", msg);
  cr_expect_eq(tg_value_int(v), 5);
  tg_value_unref(v);
  stop_worker();
  /* a program's own "identity" is not the builtin */
  start_worker(COMPILED_IDENTITY);
  cr_assert_eq(remote_call(BUILTINS, "identity", tg_int(5), &v, msg, sizeof msg),
               TG_EVERSION, "ran: %s", msg);
  snprintf(want, sizeof want, "function 'identity' is a builtin of tgraph %s in this "
           "program but is compiled into the program on worker %s", tg__library_build(),
           wep);
  cr_expect_str_eq(msg, want);
}

/* ---- key layout ----------------------------------------------------------------- */

static void tmpdir(char *buf, size_t size) {
  snprintf(buf, size, "/tmp/tg_trust_XXXXXX");
  cr_assert_not_null(mkdtemp(buf));
}

static void rm_tree(const char *dir) {
  char cmd[400];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  cr_assert_eq(system(cmd), 0);
}

/* Start a worker with keys_dir in a child; TG_OK and its endpoint in wep,
 * or its error code and message in msg. */
static int try_worker(const char *keys, char *msg, size_t size) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  wpid = tproc_fork();
  if (wpid == 0) {
    close(p[0]);
    tg_registry *r = make_reg(BUILTINS);
    tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                        .nthreads = 1, .keys_dir = keys, .stop = tproc_stop_on_term(),
                        .on_ready = tproc_say_ready, .ctx = &p[1]};
    tg_error err;
    tg_error_clear(&err);
    int rc = tg_worker_serve(r, &o, &err);
    if (rc) dprintf(p[1], "ERROR %d %s\n", rc, err.msg);
    _exit(rc ? 1 : 0);
  }
  close(p[1]);
  char line[1024];
  tproc_read_line(p[0], line, sizeof line, 30);
  close(p[0]);
  size_t n = strlen(line);
  if (strncmp(line, "tcp://", 6) == 0 && n < sizeof wep) {
    memcpy(wep, line, n + 1);
    return TG_OK;
  }
  int code = 0, off = 0;
  cr_assert_eq(sscanf(line, "ERROR %d %n", &code, &off), 1, "worker said: %s", line);
  snprintf(msg, size, "%s", line + off);
  int st;
  waitpid(wpid, &st, 0);
  wpid = 0;
  return code;
}

/* A tcp executor with keys_dir: its error (and message) or a run of
 * identity(7) on the worker, whose message goes to msg. */
static int keyed_call(const char *keys, char *msg, size_t size) {
  tg_registry *r = make_reg(BUILTINS);
  const char *addr[1] = {wep};
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addr,
                         .nconnect = 1, .keys_dir = keys, .connect_timeout = 10};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_executor_new(r, &eo, &ex, &err);
  if (rc != TG_OK) {
    snprintf(msg, size, "%s", err.msg);
    tg_registry_free(r);
    return rc;
  }
  tg_graph *g;
  cr_assert_eq(tg_graph_new(r, &g), TG_OK);
  tg_node n = tg_call(g, "identity", 1, tg_arg_value(tg_int(7)));
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .executor = ex};
  tg_value *v = NULL;
  rc = tg_compute(g, &n, 1, &o, &v);
  snprintf(msg, size, "%s", tg_graph_errmsg(g));
  if (rc == TG_OK) cr_expect_eq(tg_value_int(v), 7);
  tg_value_unref(v);
  tg_graph_free(g);
  tg_executor_free(ex);
  tg_registry_free(r);
  return rc;
}

static void write_file(const char *path, const char *text, mode_t mode) {
  tcli_write_file(path, text);
  cr_assert_eq(chmod(path, mode), 0);
}

static void copy_file(const char *from, const char *to, mode_t mode) {
  write_file(to, tcli_read_text(from, true), mode);
}

Test(remote_trust, keys_each_end_takes_its_own_directory) {
  char d[64], p[300], msg[1024], want[1024];
  tmpdir(d, sizeof d);
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_keys_generate(d, &err), TG_OK, "%s", err.msg);
  /* a worker given the runs' directory, or both */
  snprintf(p, sizeof p, "%s/client", d);
  cr_assert_eq(try_worker(p, msg, sizeof msg), TG_EINVAL);
  snprintf(want, sizeof want, "'%s/client' holds a run's (client) keys, not a worker's: "
           "give the worker the worker/ directory that 'tgraph keys generate' made beside "
           "it", d);
  cr_expect_str_eq(msg, want);
  cr_assert_eq(try_worker(d, msg, sizeof msg), TG_EINVAL);
  snprintf(want, sizeof want, "'%s' holds both key sets: pass '%s/worker' (the workers' "
           "part) instead", d, d);
  cr_expect_str_eq(msg, want);
  /* the right one serves; a run given the workers' directory is refused */
  snprintf(p, sizeof p, "%s/worker", d);
  cr_assert_eq(try_worker(p, msg, sizeof msg), TG_OK, "%s", msg);
  cr_assert_eq(keyed_call(p, msg, sizeof msg), TG_EINVAL);
  snprintf(want, sizeof want, "'%s/worker' holds a worker's keys, not a run's: give the "
           "run the client/ directory that 'tgraph keys generate' made beside it", d);
  cr_expect_str_eq(msg, want);
  snprintf(p, sizeof p, "%s/client", d);
  cr_assert_eq(keyed_call(p, msg, sizeof msg), TG_OK, "%s", msg);
  rm_tree(d);
}

Test(remote_trust, keys_old_layout_is_refused_with_how_to_regenerate) {
  char d[64], p[300], msg[1024], want[1024];
  tmpdir(d, sizeof d);
  char pub[41], sec[41], text[200];
  static const char *const names[] = {"server.pub", "server.key", "client.pub", "client.key",
                                      "authorized_clients"};
  for (int i = 0; i < 5; i++) {
    if (i % 2 == 0 && i < 4) cr_assert_eq(zmq_curve_keypair(pub, sec), 0);
    snprintf(text, sizeof text, "%s\n", i == 4 || i % 2 == 0 ? pub : sec);
    snprintf(p, sizeof p, "%s/%s", d, names[i]);
    write_file(p, text, 0600);
  }
  snprintf(want, sizeof want, "'%s' has the old key layout (server.key and client.key in "
           "one directory, so every host it was copied to could pose as a worker): make new "
           "keys with 'tgraph keys generate NEWDIR', then give workers NEWDIR/worker and "
           "runs NEWDIR/client", d);
  cr_assert_eq(try_worker(d, msg, sizeof msg), TG_EINVAL);
  cr_expect_str_eq(msg, want);
  snprintf(wep, sizeof wep, "tcp://127.0.0.1:9");
  cr_assert_eq(keyed_call(d, msg, sizeof msg), TG_EINVAL);
  cr_expect_str_eq(msg, want);
  rm_tree(d);
}

Test(remote_trust, client_material_cannot_serve) {
  /* A host holding only client/ makes itself a worker directory from it:
   * the runs refuse that worker, since it lacks the workers' key. */
  char d[64], fake[100], p[300], q[300], msg[1024], want[1024];
  tmpdir(d, sizeof d);
  cr_assert_eq(tg_keys_generate(d, NULL), TG_OK);
  snprintf(fake, sizeof fake, "%s/fake", d);
  cr_assert_eq(mkdir(fake, 0700), 0);
  snprintf(p, sizeof p, "%s/client/client.key", d);
  snprintf(q, sizeof q, "%s/worker.key", fake);
  copy_file(p, q, 0600);
  snprintf(p, sizeof p, "%s/client/client.pub", d);
  snprintf(q, sizeof q, "%s/authorized_clients", fake);
  copy_file(p, q, 0644);
  cr_assert_eq(try_worker(fake, msg, sizeof msg), TG_OK, "%s", msg);
  snprintf(p, sizeof p, "%s/client", d);
  cr_assert_eq(keyed_call(p, msg, sizeof msg), TG_EWORKER, "%s", msg);
  snprintf(want, sizeof want, "no worker accepts this run; %s: the secure handshake failed "
           "(wrong server key, or the worker runs without keys)", wep);
  cr_expect_str_eq(msg, want);
  stop_worker();
  rm_tree(d);
}

/* ---- other local users ------------------------------------------------------------- */
/* The tgraph program as root (the test) and as user nobody (setpriv),
 * each with a state directory of its own for its user key. */

static pid_t procs[4];
static int nprocs;
static char udir[64]; /* the test's directory: graph, states, markers */

static void users_fini(void) {
  for (int i = 0; i < nprocs; i++) {
    if (procs[i] <= 0) continue;
    kill(procs[i], SIGTERM);
    int st;
    waitpid(procs[i], &st, 0);
  }
  nprocs = 0;
  if (udir[0]) rm_tree(udir);
  udir[0] = '\0';
}

/* Start tgraph args (as nobody if `nobody`), HOME and XDG_STATE_HOME the
 * user's state directory; stdout on a pipe (*out), stderr into errpath. */
static pid_t spawn(bool nobody, const char *const *args, int *out, const char *errpath) {
  const char *bin = tcli_bin();
  const char *argv[32];
  int n = 0;
  if (nobody) {
    argv[n++] = "setpriv";
    argv[n++] = "--reuid=nobody";
    argv[n++] = "--regid=nogroup";
    argv[n++] = "--clear-groups";
  }
  argv[n++] = bin;
  while (*args && n < 31) argv[n++] = *args++;
  argv[n] = NULL;
  char home[200], state[200];
  snprintf(home, sizeof home, "HOME=%s/%s", udir, nobody ? "nobody" : "root");
  snprintf(state, sizeof state, "XDG_STATE_HOME=%s/%s", udir, nobody ? "nobody" : "root");
  char *const envp[] = {home, state, "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL};
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    dup2(p[1], 1);
    int e = open(errpath, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(e, 2);
    close(p[0]);
    execve(nobody ? "/usr/bin/setpriv" : bin, (char *const *)argv, envp);
    _exit(127);
  }
  close(p[1]);
  *out = p[0];
  return pid;
}

static void read_all(int fd, char *buf, size_t size) {
  size_t n = 0;
  ssize_t r;
  while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) > 0) n += (size_t)r;
  buf[n] = '\0';
}

/* Run tgraph args to its end: its exit status, stdout and stderr. */
static int run_tgraph(bool nobody, const char *const *args, char *out, char *err,
                      size_t size) {
  char errpath[200];
  snprintf(errpath, sizeof errpath, "%s/stderr.%d", udir, nobody);
  int fd;
  pid_t pid = spawn(nobody, args, &fd, errpath);
  read_all(fd, out, size); /* until it exits */
  close(fd);
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  int efd = open(errpath, O_RDONLY);
  cr_assert_geq(efd, 0, "%s", errpath);
  read_all(efd, err, size);
  close(efd);
  return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Start a keyless worker on a free loopback port; its address in ep. */
static void start_cli_worker(bool nobody, char *ep, size_t size) {
  const char *args[] = {"worker", "--listen", "tcp://127.0.0.1:*", "--nthreads", "1", "-v",
                        NULL};
  char errpath[200], line[160];
  snprintf(errpath, sizeof errpath, "%s/worker.%d", udir, nobody);
  int fd;
  cr_assert_lt(nprocs, 4);
  procs[nprocs++] = spawn(nobody, args, &fd, errpath);
  tproc_read_line(fd, line, sizeof line, 30);
  close(fd);
  cr_assert(strncmp(line, "listening on tcp://", 19) == 0, "worker: %s %s", line,
            tcli_read_text(errpath, false));
  snprintf(ep, size, "%s", line + 13);
}

static bool exists_in_udir(const char *name) {
  char p[200];
  struct stat st;
  snprintf(p, sizeof p, "%s/%s", udir, name);
  return stat(p, &st) == 0;
}

/* The test's directory (0755, root's), nobody's state directory, and a
 * graph whose one sh task leaves a marker naming the uid it ran as. */
static void users_init(void) {
  if (geteuid() != 0) cr_skip_test("needs root, to be a second user with setpriv");
  if (access("/usr/bin/setpriv", X_OK) != 0) cr_skip_test("no /usr/bin/setpriv");
  tmpdir(udir, sizeof udir);
  cr_assert_eq(chmod(udir, 0755), 0);
  struct passwd *pw = getpwnam("nobody");
  cr_assert_not_null(pw, "no user nobody");
  char p[200], text[400];
  snprintf(p, sizeof p, "%s/nobody", udir);
  cr_assert_eq(mkdir(p, 0700), 0);
  cr_assert_eq(chown(p, pw->pw_uid, pw->pw_gid), 0);
  snprintf(p, sizeof p, "%s/g.json", udir);
  snprintf(text, sizeof text, "{\"tgraph\": 1, \"tasks\": {\"who\": {\"fn\": \"sh\", \"args\": "
           "[\"touch %s/ran_as_$(id -u); id -u\"]}}, \"outputs\": [\"who\"]}\n", udir);
  write_file(p, text, 0644);
  /* nobody must be able to run the program under test */
  char out[4096], err[4096];
  const char *version[] = {"version", NULL};
  cr_assert_eq(run_tgraph(true, version, out, err, sizeof out), 0,
               "user nobody cannot run %s (make the build directory readable by all): %s",
               getenv("TGRAPH_BIN"), err);
}

#define NOT_OURS                                                                      \
  "the worker does not hold this user's key: it runs as another user (who may have "  \
  "taken the port first), runs with --keys, or is not a tgraph worker; without --keys " \
  "a run uses only workers of its own user"

/* tgraph args (as nobody if `nobody`) is refused by the worker at ep,
 * which is not of its user: exit status 1 before any task runs. */
static void expect_not_ours(bool nobody, const char *const *args, const char *ep) {
  char out[4096], err[4096], want[1024];
  cr_assert_eq(run_tgraph(nobody, args, out, err, sizeof out), 1, "out: %s err: %s", out, err);
  snprintf(want, sizeof want, "tgraph: error: no worker accepts this run; %s: " NOT_OURS "\n",
           ep);
  cr_expect_str_eq(err, want);
  cr_expect_str_eq(out, "");
}

Test(remote_trust, keyless_worker_serves_only_its_user, .init = users_init,
     .fini = users_fini) {
  char ep[200], out[4096], err[4096], graph[200];
  snprintf(graph, sizeof graph, "%s/g.json", udir);
  start_cli_worker(false, ep, sizeof ep);
  const char *args[] = {"run", graph, "--scheduler=tcp", "--connect", ep, "--no-cache", "-q",
                        NULL};
  /* another user's run: refused before any task, so sh never runs */
  expect_not_ours(true, args, ep);
  cr_expect(!exists_in_udir("ran_as_0") && !exists_in_udir("ran_as_65534"),
            "the sh task ran for another user");
  /* the worker's own user is served */
  cr_assert_eq(run_tgraph(false, args, out, err, sizeof out), 0, "err: %s", err);
  cr_expect_str_eq(out, "{\"who\":{\"$bytes\":\"MAo=\"}}\n"); /* "0\n": run as root */
  cr_expect(exists_in_udir("ran_as_0"));
}

Test(remote_trust, run_refuses_a_worker_of_another_user_on_its_port, .init = users_init,
     .fini = users_fini) {
  char ep[200], out[4096], err[4096], graph[200];
  snprintf(graph, sizeof graph, "%s/g.json", udir);
  /* nobody takes a port first and serves there */
  start_cli_worker(true, ep, sizeof ep);
  const char *args[] = {"run", graph, "--scheduler=tcp", "--connect", ep, "--no-cache", "-q",
                        NULL};
  expect_not_ours(false, args, ep);
  cr_expect(!exists_in_udir("ran_as_65534") && !exists_in_udir("ran_as_0"));
  /* and nobody's own run is served by it */
  cr_assert_eq(run_tgraph(true, args, out, err, sizeof out), 0, "err: %s", err);
  cr_expect_str_eq(out, "{\"who\":{\"$bytes\":\"NjU1MzQK\"}}\n"); /* "65534\n" */
}

/* ---- this user's key ------------------------------------------------------------ */


/* Eight processes making the key at once all end up with one key, in a
 * directory of mode 0700 and a file of mode 0600. */
Test(remote_trust, user_key_made_once_by_racing_processes) {
  char d[64], state[100], p[200];
  tmpdir(d, sizeof d);
  snprintf(state, sizeof state, "%s/state", d);
  cr_assert_eq(setenv("XDG_STATE_HOME", state, 1), 0);
  enum { N = 8 };
  int fds[N];
  int go[2];
  cr_assert_eq(pipe(go), 0);
  for (int i = 0; i < N; i++) {
    int p2[2];
    cr_assert_eq(pipe(p2), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
      close(go[1]);
      char c;
      (void)!read(go[0], &c, 1); /* all start together */
      tg__keypair kp;
      tg_error err;
      tg_error_clear(&err);
      int rc = tg__keys_user(&kp, &err);
      dprintf(p2[1], "%s", rc == TG_OK ? kp.pub : err.msg);
      _exit(rc == TG_OK ? 0 : 1);
    }
    close(p2[1]);
    fds[i] = p2[0];
  }
  close(go[0]);
  close(go[1]); /* EOF: go */
  char first[1024] = "";
  for (int i = 0; i < N; i++) {
    char pub[1024];
    read_all(fds[i], pub, sizeof pub);
    close(fds[i]);
    int st;
    cr_assert_gt(wait(&st), 0);
    cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", pub);
    cr_expect_eq(strlen(pub), 40, "%s", pub);
    if (i == 0) snprintf(first, sizeof first, "%s", pub);
    else cr_expect_str_eq(pub, first, "two processes made different keys");
  }
  struct stat st;
  snprintf(p, sizeof p, "%s/tgraph/keys", state);
  cr_assert_eq(stat(p, &st), 0);
  cr_expect_eq(st.st_mode & 0777, 0700);
  snprintf(p, sizeof p, "%s/tgraph/keys/user.key", state);
  cr_assert_eq(stat(p, &st), 0);
  cr_expect_eq(st.st_mode & 0777, 0600);
  rm_tree(d);
}

/* A key directory others can enter is refused, saying what to do; a run
 * without keys stops there rather than trusting it. */
Test(remote_trust, user_key_directory_open_to_others_is_refused) {
  char d[64], state[100], p[200], want[600];
  tmpdir(d, sizeof d);
  snprintf(state, sizeof state, "%s/state", d);
  cr_assert_eq(setenv("XDG_STATE_HOME", state, 1), 0);
  tg__keypair kp;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg__keys_user(&kp, &err), TG_OK, "%s", err.msg);
  snprintf(p, sizeof p, "%s/tgraph/keys", state);
  cr_assert_eq(chmod(p, 0755), 0);
  tg_registry *r = make_reg(BUILTINS);
  const char *addr[1] = {"tcp://127.0.0.1:9"};
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addr,
                         .nconnect = 1};
  tg_executor *ex = NULL;
  cr_assert_eq(tg_executor_new(r, &eo, &ex, &err), TG_EACCES);
  snprintf(want, sizeof want, "'%s' holds this user's worker key but is not a directory of "
           "this user (uid %u) with mode 0700: fix it (chmod 700) or remove it", p,
           (unsigned)geteuid());
  cr_expect_str_eq(err.msg, want);
  tg_registry_free(r);
  rm_tree(d);
}

/* ---- the worker's side of the check, on the wire -------------------------------- */


/* A DEALER speaking as this user's keyless runs do, past HELLO. */
static void *hello_dealer(void *ctx) {
  void *s = as_user(zmq_socket(ctx, ZMQ_DEALER), false);
  int linger = 0, tmo = 10000;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  cr_assert_eq(zmq_connect(s, wep), 0);
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_HELLO);
  tg__wbuf_bytes(&h, TG__PROTO_MAGIC, 4);
  tg__wbuf_varint(&h, TG_REMOTE_PROTOCOL);
  tg__wbuf_varint(&h, 0);
  tg__wbuf_cstr(&h, "raw");
  tg__wbuf_varint(&h, 0);
  cr_assert_eq(zmq_send(s, h.p, h.len, 0), (int)h.len);
  tg__wbuf_free(&h);
  uint8_t buf[512];
  cr_assert_gt(zmq_recv(s, buf, sizeof buf, 0), 0, "no WELCOME");
  cr_assert_eq(buf[0], TG__M_WELCOME);
  return s;
}

/* Builtins of another library build are other code: the worker says so,
 * naming its own build. */
Test(remote_trust, worker_refuses_builtins_of_another_build) {
  start_worker(BUILTINS);
  void *ctx = zmq_ctx_new(), *s = hello_dealer(ctx);
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_FUNCS);
  tg__wbuf_varint(&h, 2);
  tg__wbuf_varint(&h, 0);
  tg__wbuf_cstr(&h, "identity");
  tg__wbuf_cstr(&h, "1");
  tg__wbuf_u8(&h, TG__ORIGIN_BUILTIN);
  tg__wbuf_cstr(&h, "0.0.1+0123456789abcdef");
  tg__wbuf_cstr(&h, ""); /* no code id */
  tg__wbuf_varint(&h, 1);
  tg__wbuf_cstr(&h, "sum");
  tg__wbuf_cstr(&h, "1");
  tg__wbuf_u8(&h, TG__ORIGIN_BUILTIN);
  tg__wbuf_cstr(&h, tg__library_build());
  tg__wbuf_cstr(&h, "");
  cr_assert_eq(zmq_send(s, h.p, h.len, 0), (int)h.len);
  tg__wbuf_free(&h);
  uint8_t buf[2048];
  int got = zmq_recv(s, buf, sizeof buf, 0);
  cr_assert_gt(got, 0);
  tg__rbuf r;
  tg__rbuf_init(&r, buf, (size_t)got);
  cr_assert_eq(tg__rbuf_u8(&r), TG__M_FUNCS_OK);
  cr_assert_eq(tg__rbuf_varint(&r), 2);
  char detail[TG__MAX_MSG + 1], want[300];
  cr_expect_eq(tg__rbuf_varint(&r), 0);
  cr_expect_eq(tg__rbuf_u8(&r), TG__FN_ORIGIN);
  tg__rbuf_cstr(&r, detail, TG__MAX_MSG);
  snprintf(want, sizeof want, "is a builtin of tgraph %s", tg__library_build());
  cr_expect_str_eq(detail, want);
  cr_expect_eq(tg__rbuf_varint(&r), 1);
  cr_expect_eq(tg__rbuf_u8(&r), TG__FN_OK, "the same build pairs up");
  tg__rbuf_cstr(&r, detail, TG__MAX_MSG);
  cr_expect(!r.bad && tg__rbuf_end(&r));
  zmq_close(s);
  zmq_ctx_term(ctx);
}

/* ---- this user's Unix socket ---------------------------------------------------- */

/* A keyless worker listens on a socket in its user's private directory
 * too, and removes it when it stops; a run of the user uses it. */
Test(remote_trust, keyless_worker_socket_is_private_and_removed) {
  char sock[4096], msg[1024];
  start_worker(BUILTINS);
  cr_assert_eq(tg__user_socket(wep, sock, sizeof sock), TG_OK);
  struct stat st;
  cr_assert_eq(stat(sock, &st), 0, "no socket %s", sock);
  cr_expect(S_ISSOCK(st.st_mode));
  char dir[4096];
  snprintf(dir, sizeof dir, "%s", sock);
  *strrchr(dir, '/') = '\0';
  cr_assert_eq(stat(dir, &st), 0);
  cr_expect_eq(st.st_mode & 0777, 0700);
  cr_expect_eq(st.st_uid, geteuid());
  cr_expect(tg__user_socket_live(sock));
  tg_value *v;
  cr_assert_eq(remote_call(BUILTINS, "identity", tg_int(3), &v, msg, sizeof msg), TG_OK,
               "%s", msg);
  cr_expect_eq(tg_value_int(v), 3);
  tg_value_unref(v);
  stop_worker();
  cr_expect_neq(stat(sock, &st), 0, "the socket outlived its worker");
}

/* The pid of the worker that runs "whoami" for a run connecting to ep. */
static int64_t run_whoami(const char *ep) {
  char keep[sizeof wep], msg[1024];
  memcpy(keep, wep, sizeof wep);
  snprintf(wep, sizeof wep, "%s", ep);
  tg_value *v;
  int rc = remote_call(WHOAMI, "whoami", NULL, &v, msg, sizeof msg);
  memcpy(wep, keep, sizeof wep);
  cr_assert_eq(rc, TG_OK, "%s", msg);
  int64_t pid = tg_value_int(v);
  tg_value_unref(v);
  return pid;
}

static bool inode_of(const char *path, struct stat *st) { return stat(path, st) == 0; }

/* Keyless workers of one user on the same port of two loopback addresses
 * each keep their own socket: each one's runs reach it, and the first
 * one's end removes only its own. */
Test(remote_trust, keyless_workers_same_port_other_hosts_keep_their_sockets) {
  start_worker_on(WHOAMI, "tcp://127.0.0.1:*");
  pid_t a = wpid;
  char ea[128], eb[128], listen[128], sa[4096], sb[4096];
  snprintf(ea, sizeof ea, "%s", wep);
  snprintf(listen, sizeof listen, "tcp://127.0.0.2:%s", strrchr(ea, ':') + 1);
  start_worker_on(WHOAMI, listen);
  pid_t b = wpid;
  snprintf(eb, sizeof eb, "%s", wep);
  cr_assert_str_eq(eb, listen);
  cr_assert_eq(tg__user_socket(ea, sa, sizeof sa), TG_OK);
  cr_assert_eq(tg__user_socket(eb, sb, sizeof sb), TG_OK);
  cr_expect_str_neq(sa, sb);
  cr_expect(tg__user_socket_live(sa), "no socket %s", sa);
  cr_expect(tg__user_socket_live(sb), "no socket %s", sb);
  cr_expect_eq(run_whoami(ea), a, "a run for %s went to the other worker", ea);
  cr_expect_eq(run_whoami(eb), b, "a run for %s went to the other worker", eb);
  struct stat before, after;
  cr_assert(inode_of(sb, &before));
  wpid = a;
  stop_worker();
  wpid = b;
  cr_expect(!inode_of(sa, &after), "%s outlived its worker", sa);
  cr_assert(inode_of(sb, &after), "the other worker's socket %s was removed", sb);
  cr_expect(after.st_ino == before.st_ino && after.st_dev == before.st_dev);
  cr_expect(tg__user_socket_live(sb));
  cr_expect_eq(run_whoami(eb), b);
}

/* A live socket already at a worker's path (here a bare listener of the
 * test's) is left alone while the worker runs (it serves over tcp) and
 * when it ends. */
Test(remote_trust, keyless_worker_leaves_a_live_socket_alone) {
  int t = socket(AF_INET, SOCK_STREAM, 0);
  struct sockaddr_in in = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  socklen_t len = sizeof in;
  cr_assert_eq(bind(t, (struct sockaddr *)&in, sizeof in), 0);
  cr_assert_eq(getsockname(t, (struct sockaddr *)&in, &len), 0);
  close(t); /* a free port, for the worker */
  char where[64], path[4096];
  snprintf(where, sizeof where, "tcp://127.0.0.1:%d", ntohs(in.sin_port));
  cr_assert_eq(tg__user_socket(where, path, sizeof path), TG_OK);
  struct sockaddr_un un = {.sun_family = AF_UNIX};
  cr_assert_lt(strlen(path), sizeof un.sun_path);
  strcpy(un.sun_path, path);
  unlink(path);
  int u = socket(AF_UNIX, SOCK_STREAM, 0);
  cr_assert_eq(bind(u, (struct sockaddr *)&un, sizeof un), 0);
  cr_assert_eq(listen(u, 8), 0);
  struct stat mine, st;
  cr_assert(inode_of(path, &mine));
  start_worker_on(WHOAMI, where);
  cr_assert_str_eq(wep, where);
  cr_assert(inode_of(path, &st));
  cr_expect(st.st_ino == mine.st_ino, "the worker took over %s", path);
  stop_worker();
  cr_assert(inode_of(path, &st), "the worker removed %s", path);
  cr_expect(st.st_ino == mine.st_ino, "the worker replaced %s", path);
  close(u);
  unlink(path);
}

/* Even a process of another uid that reaches the socket (here: its
 * directory opened on purpose) is refused by the worker: it checks the
 * peer's uid, so the directory is not the only guard. */
Test(remote_trust, keyless_worker_socket_refuses_other_uids, .init = users_init,
     .fini = users_fini) {
  char ep[200], sock[4096], dir[4096], state[200];
  snprintf(state, sizeof state, "%s/root", udir);
  cr_assert_eq(setenv("XDG_STATE_HOME", state, 1), 0);
  start_cli_worker(false, ep, sizeof ep);
  cr_assert_eq(tg__user_socket(ep, sock, sizeof sock), TG_OK);
  cr_assert(tg__user_socket_live(sock), "no socket %s", sock);
  snprintf(dir, sizeof dir, "%s", sock);
  *strrchr(dir, '/') = '\0';
  /* others may connect, as a mistake would allow: the socket, the key
   * directory and its parents up to the test's */
  cr_assert_eq(chmod(sock, 0777), 0);
  char up[4096];
  snprintf(up, sizeof up, "%s", dir);
  while (strlen(up) > strlen(udir)) {
    cr_assert_eq(chmod(up, 0711), 0, "%s", up);
    *strrchr(up, '/') = '\0';
  }
  struct passwd *pw = getpwnam("nobody");
  cr_assert_not_null(pw);
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = fork();
  cr_assert_geq(pid, 0);
  if (pid == 0) {
    close(p[0]);
    if (setgid(pw->pw_gid) != 0 || setuid(pw->pw_uid) != 0) _exit(2);
    void *ctx = zmq_ctx_new(), *s = zmq_socket(ctx, ZMQ_DEALER);
    int linger = 0, tmo = 3000;
    zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
    char ipc[4200];
    snprintf(ipc, sizeof ipc, "ipc://%s", sock);
    if (zmq_connect(s, ipc) != 0) _exit(3);
    tg__wbuf h = {0};
    tg__wbuf_u8(&h, TG__M_HELLO);
    tg__wbuf_bytes(&h, TG__PROTO_MAGIC, 4);
    tg__wbuf_varint(&h, TG_REMOTE_PROTOCOL);
    tg__wbuf_varint(&h, 0);
    tg__wbuf_cstr(&h, "intruder");
    tg__wbuf_varint(&h, 0);
    zmq_send(s, h.p, h.len, 0);
    uint8_t buf[512];
    int got = zmq_recv(s, buf, sizeof buf, 0);
    dprintf(p[1], "%s", got > 0 && buf[0] == TG__M_WELCOME ? "welcomed" : "refused");
    zmq_close(s);
    zmq_ctx_term(ctx);
    _exit(0);
  }
  close(p[1]);
  char said[64];
  read_all(p[0], said, sizeof said);
  close(p[0]);
  int st;
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child status %d", st);
  cr_expect_str_eq(said, "refused");
  /* refused by its uid, not by the file system */
  char path[300], want[100];
  snprintf(path, sizeof path, "%s/worker.0", udir);
  const char *log = tcli_read_text(path, true);
  snprintf(want, sizeof want, "refused a client from localhost:%u:", (unsigned)pw->pw_uid);
  cr_expect(strstr(log, want) != NULL, "worker log: %s", log);
}
