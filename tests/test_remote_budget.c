/* tests/test_remote_budget.c: memory that workers and clients of the tcp
 * backend let a peer make them use. A fake worker speaking the protocol
 * over ZeroMQ answers tasks with kept results claiming lists of 2^20 and
 * 2^40 items, or a map with a key twice: the client (a child process, so
 * that its peak resident memory is its own) stays under a bound, and its
 * run either completes on an honest `tgraph worker` or fails naming the
 * fake worker and its claim. An honest worker's kept lists of 2^20 items
 * past the run's budget for placeholders come back whole, with the right
 * result. A `tgraph worker --max-message 8M` sent 8 MiB values on 100
 * connections, or as the arguments of tasks queued behind a slow one,
 * refuses what is past its budget for all clients together, stays under
 * a bound, and still serves a run afterwards. Every process
 * started is killed and reaped by the test. */
#include <criterion/criterion.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "wire/proto.h"
#include "wire/stream.h"
#include "wire/wire.h"
#include "registry/registry_internal.h" /* tg__library_build */
#include "tgraph/builtins.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"
#include "tgraph/serial.h"
#include "test_cli_util.h"
#include "test_peer.h"
#include "test_proc.h"

#if defined(__SANITIZE_ADDRESS__)
#define UNDER_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNDER_ASAN 1
#endif
#endif
#ifdef UNDER_ASAN
/* ASan's shadow memory and its quarantine of freed blocks (256 MB) count
 * in VmHWM, and it cannot run under a limit of address space. */
#define MEM_SCALE 3
#else
#define MEM_SCALE 1
#endif

/* ---- processes ---------------------------------------------------------------- */

#define MAXP 4
static pid_t procs[MAXP];
static int nprocs;

static void teardown(void) {
  for (int i = 0; i < nprocs; i++) {
    if (procs[i] <= 0) continue;
    kill(procs[i], SIGKILL);
    int st;
    cr_expect_eq(waitpid(procs[i], &st, 0), procs[i]);
  }
  nprocs = 0;
  cr_expect_eq(waitpid(-1, NULL, WNOHANG), -1, "a child process is left");
}

TestSuite(remote_budget, .fini = teardown, .timeout = 300);

static pid_t track(pid_t pid) {
  cr_assert_lt(nprocs, MAXP);
  procs[nprocs++] = pid;
  return pid;
}

/* `tgraph worker` on a free loopback port with the extra arguments; its
 * address in ep. */
static pid_t cli_worker(const char *const *extra, size_t nextra, char ep[128]) {
  const char *bin = tcli_bin();
  const char *argv[16] = {bin, "worker", "--listen", "tcp://127.0.0.1:0"};
  size_t n = 4;
  for (size_t i = 0; i < nextra; i++) argv[n++] = extra[i];
  argv[n] = NULL;
  return track(tcli_worker(bin, (char *const *)argv, ep, 128));
}

/* A process's VmHWM (peak resident memory) in bytes, from /proc. */
static uint64_t vm_hwm(pid_t pid) {
  char path[64], line[256];
  snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f, "%s", path);
  uint64_t kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "VmHWM: %llu kB", (unsigned long long *)&kb) == 1) break;
  fclose(f);
  cr_assert_gt(kb, 0);
  return kb << 10;
}

/* ---- a worker that lies ------------------------------------------------------------ */

/* Serve the protocol on sock: accept every client, every function, and
 * answer every task with "kept here, a list of `claim` items" (in 16
 * bytes per item, so that sizes agree), or with claim 0 "a map whose keys
 * are 'a' and 'a'". Never returns. */
static void fake_serve(void *sock, uint64_t claim) {
  tg__link *link = tg__link_zmq(sock); /* sends through the library's codec */
  tg__stream st;
  tg__stream_init(&st, (uint64_t)1 << 62, NULL);
  tg_value *none = tg_list_alloc(0);
  for (;;) {
    zmq_msg_t m[64];
    size_t n = 0;
    for (int more = 1; more;) {
      zmq_msg_init(&m[n < 63 ? n : 63]);
      if (zmq_msg_recv(&m[n < 63 ? n : 63], sock, 0) < 0) _exit(3);
      more = zmq_msg_more(&m[n < 63 ? n : 63]);
      if (n < 63) n++;
      else zmq_msg_close(&m[63]);
    }
    const void *rid = zmq_msg_data(&m[0]);
    size_t rlen = zmq_msg_size(&m[0]);
    tg__rbuf r;
    tg__rbuf_init(&r, zmq_msg_data(&m[1]), zmq_msg_size(&m[1]));
    uint8_t type = tg__rbuf_u8(&r);
    tg__wbuf h = {0};
    tg_value *v = NULL;
    if (type == TG__M_HELLO) {
      tg__wbuf_u8(&h, TG__M_WELCOME);
      tg__wbuf_bytes(&h, TG__PROTO_MAGIC, 4);
      tg__wbuf_varint(&h, TG_REMOTE_PROTOCOL);
      tg__wbuf_u8(&h, 0);
      tg__wbuf_varint(&h, 4);
      tg__wbuf_cstr(&h, "fake");
      tg__wbuf_cstr(&h, "");
      tg__wbuf_varint(&h, (uint64_t)tg__wire_misalign());
    } else if (type == TG__M_FUNCS) {
      uint64_t k = tg__rbuf_varint(&r);
      tg__wbuf_u8(&h, TG__M_FUNCS_OK);
      tg__wbuf_varint(&h, k);
      for (uint64_t i = 0; i < k && !r.bad; i++) {
        size_t len;
        uint64_t id = tg__rbuf_varint(&r);
        tg__rbuf_str(&r, TG__MAX_NAME, &len);
        tg__rbuf_str(&r, TG__MAX_NAME, &len);
        if (tg__rbuf_u8(&r)) tg__rbuf_bytes(&r, 16);
        tg__rbuf_str(&r, TG__MAX_NAME, &len); /* code id */
        tg__wbuf_varint(&h, id);
        tg__wbuf_u8(&h, TG__FN_OK);
        tg__wbuf_cstr(&h, "");
      }
    } else if (type == TG__M_TASKS) {
      (void)tg__rbuf_varint(&r); /* run */
      uint64_t k = tg__rbuf_varint(&r);
      tg__wbuf_u8(&h, TG__M_RESULTS);
      tg__wbuf_varint(&h, k);
      tg__wbuf_varint(&h, 0); /* clock base */
      for (uint64_t i = 0; i < k && !r.bad; i++) {
        size_t len;
        uint64_t id = tg__rbuf_varint(&r);
        tg__rbuf_varint(&r); /* fn */
        tg__rbuf_u8(&r);     /* kind */
        tg__rbuf_varint(&r); /* aux */
        tg__rbuf_varint(&r); /* attempts */
        tg__rbuf_varint(&r); /* timeout */
        tg__rbuf_u8(&r);     /* flags */
        tg__rbuf_varint(&r); /* store */
        tg__rbuf_varint(&r); /* min_us */
        if (tg__rbuf_varint(&r) == 0) tg__rbuf_str(&r, TG__MAX_KEY, &len); /* a user key */
        uint64_t nargs = tg__rbuf_varint(&r);
        for (uint64_t j = 0; j < nargs && !r.bad; j++) {
          uint8_t a = tg__rbuf_u8(&r);
          tg__rbuf_varint(&r);
          if (a == TG__ARG_ELEM) tg__rbuf_svarint(&r);
          if (a == TG__ARG_ENTRY) tg__rbuf_str(&r, TG__MAX_KEY, &len);
        }
        tg__wbuf_varint(&h, id);
        tg__wbuf_varint(&h, 1); /* calls */
        tg__wbuf_varint(&h, 0); /* failed calls */
        tg__wbuf_varint(&h, 10);
        tg__wbuf_varint(&h, 1); /* thread 0 */
        tg__wbuf_svarint(&h, 0); /* received, from the base */
        tg__wbuf_varint(&h, 0); /* waited */
        tg__wbuf_u8(&h, TG__RS_KEPT);
        if (claim) {
          tg__wbuf_varint(&h, claim * 16);
          tg__wbuf_u8(&h, TG__SHAPE_LIST);
          tg__wbuf_varint(&h, claim);
        } else {
          tg__wbuf_varint(&h, 64);
          tg__wbuf_u8(&h, TG__SHAPE_MAP);
          tg__wbuf_varint(&h, 2);
          tg__wbuf_cstr(&h, "a");
          tg__wbuf_cstr(&h, "a");
        }
      }
      v = none;
    } else if (type == TG__M_PING) {
      tg__wbuf_u8(&h, TG__M_PONG);
      tg__wbuf_varint(&h, tg__rbuf_varint(&r));
    } else if (type == TG__M_FETCH) {
      tg__wbuf_u8(&h, TG__M_VALUE);
      tg__wbuf_varint(&h, tg__rbuf_varint(&r));
      tg__wbuf_u8(&h, 1); /* unknown */
    }
    if (h.len) tg__wire_send(link, rid, rlen, &h, v, 0, &st, NULL, NULL);
    tg__wbuf_free(&h);
    for (size_t i = 0; i < n; i++) zmq_msg_close(&m[i]);
  }
}

/* A fake worker process claiming `claim` items; its address in ep. */
static void fake_worker(uint64_t claim, char ep[128]) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    close(p[0]);
    void *ctx = zmq_ctx_new(), *s = as_user(zmq_socket(ctx, ZMQ_ROUTER), true);
    char addr[128];
    size_t len = sizeof addr;
    if (zmq_bind(s, "tcp://127.0.0.1:*") != 0 ||
        zmq_getsockopt(s, ZMQ_LAST_ENDPOINT, addr, &len) != 0)
      _exit(2);
    dprintf(p[1], "%s\n", addr);
    close(p[1]);
    fake_serve(s, claim);
  }
  track(pid);
  close(p[1]);
  tproc_read_line(p[0], ep, 128, 20);
  close(p[0]);
  cr_assert(strncmp(ep, "tcp://", 6) == 0, "fake worker said '%s'", ep);
}

/* ---- a client in a child process ---------------------------------------------- */

#define GROUPS 40
#define BIG_GROUPS 12
#define BIG_ITEMS ((int64_t)1 << 20)

typedef struct outcome {
  int rc;
  int wrong;             /* outputs with a wrong value */
  uint64_t received;     /* value bytes received (tg_remote_stats) */
  uint64_t kept;         /* results kept on workers */
  uint64_t hwm;          /* peak resident bytes at the end */
  char msg[2048];        /* tg_graph_errmsg on failure */
  char log[2048];        /* the first log line, "[key] line" */
} outcome;

static void on_log(void *ctx, const char *key, const char *line) {
  outcome *o = ctx;
  if (!o->log[0]) snprintf(o->log, sizeof o->log, "[%s] %s", key, line);
}

enum { SMALL, BIG, MAPS };

/* SMALL: GROUPS lists range(0, 1000 + i), each kept on a worker (about
 * 9 KB), and as outputs item 7 of each plus i: 7 + i. BIG: BIG_GROUPS
 * distinct lists of BIG_ITEMS items and one output, the sum of their last items
 * (so that all of them are needed at once). MAPS: GROUPS maps parsed from
 * JSON (about 5 KB) and as outputs their key "a" (7) plus i. */
static void client(const char *const *addrs, size_t n, int mode, outcome *o) {
  bool big = mode == BIG;
  tg_registry *reg = NULL;
  tg_graph *g = NULL;
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  if (tg_registry_new(&reg) || tg_registry_add_builtins(reg) || tg_graph_new(reg, &g)) _exit(4);
  tg_node outs[GROUPS];
  tg_arg last[BIG_GROUPS];
  int groups = big ? 1 : GROUPS;
  char text[5100];
  for (int i = 0; i < (big ? BIG_GROUPS : GROUPS); i++) {
    tg_node p;
    if (mode == MAPS) {
      snprintf(text, sizeof text, "{\"a\": 7, \"i\": %d, \"pad\": \"%05000d\"}", i, 0);
      p = tg_call(g, "json", 1, tg_arg_value(tg_str_c(text)));
      outs[i] = tg_call(g, "add", 2, tg_arg_key(p, "a"), tg_arg_value(tg_int(i)));
      continue;
    }
    /* BIG: range(i, i + BIG_ITEMS), distinct calls (identical ones would
     * be one task) */
    p = tg_call(g, "range", 2, tg_arg_value(tg_int(big ? i : 0)),
                tg_arg_value(tg_int(big ? i + BIG_ITEMS : 1000 + i)));
    if (big) last[i] = tg_arg_item(p, -1);
    else outs[i] = tg_call(g, "add", 2, tg_arg_item(p, 7), tg_arg_value(tg_int(i)));
  }
  if (big && tg_graph_add(g, "add", last, BIG_GROUPS, NULL, &outs[0])) _exit(5);
  for (int i = 0; i < groups; i++)
    if (outs[i] == TG_NODE_NONE) _exit(5);
  tg_executor_opts xo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addrs,
                         .nconnect = n, .connect_timeout = 20, .log = on_log, .log_ctx = o};
  if (tg_executor_new(reg, &xo, &ex, &err)) _exit(6);
  /* Every worker connected first, so that each is given tasks. */
  tg_remote_stats st = {0};
  for (int i = 0; i < 2000 && st.workers_ready < n; i++) {
    if (tg_remote_stats_get(ex, &st)) _exit(8);
    nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
  }
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  tg_value *res[GROUPS];
  o->rc = tg_compute(g, outs, (size_t)groups, &co, res);
  if (tg_remote_stats_get(ex, &st)) _exit(9);
  o->received = st.bytes_received;
  o->kept = st.results_kept;
  if (o->rc == TG_OK)
    for (int i = 0; i < groups; i++) {
      int64_t want = big ? BIG_GROUPS * (BIG_ITEMS - 1) + BIG_GROUPS * (BIG_GROUPS - 1) / 2
                         : 7 + i;
      o->wrong += tg_value_type(res[i]) != TG_INT || tg_value_int(res[i]) != want;
      tg_value_unref(res[i]);
    }
  else
    snprintf(o->msg, sizeof o->msg, "%s", tg_graph_errmsg(g));
  tg_executor_free(ex);
  tg_graph_free(g);
  tg_registry_free(reg);
}

/* Run client() in a child limited to 2 GiB of address space (a client
 * that allocates per claimed item fails there instead of taking the
 * machine's memory) and return what it saw. */
static outcome run_client(const char *const *addrs, size_t n, int mode) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    close(p[0]);
#ifndef UNDER_ASAN
    struct rlimit rl = {(rlim_t)2 << 30, (rlim_t)2 << 30};
    setrlimit(RLIMIT_AS, &rl);
#endif
    static outcome o;
    client(addrs, n, mode, &o);
    o.hwm = vm_hwm(getpid());
    ssize_t w = write(p[1], &o, sizeof o);
    _exit(w == (ssize_t)sizeof o ? 0 : 7);
  }
  close(p[1]);
  outcome o;
  memset(&o, 0, sizeof o);
  size_t got = 0;
  struct pollfd pf = {p[0], POLLIN, 0};
  while (got < sizeof o && poll(&pf, 1, 240 * 1000) > 0) {
    ssize_t r = read(p[0], (char *)&o + got, sizeof o - got);
    if (r <= 0) break;
    got += (size_t)r;
  }
  close(p[0]);
  int st;
  if (got < sizeof o) kill(pid, SIGKILL);
  cr_assert_eq(waitpid(pid, &st, 0), pid);
  cr_assert_eq(got, sizeof o, "the client ended without a report (status %#x)", st);
  cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "client status %#x", st);
  return o;
}

#define CLIENT_BOUND ((uint64_t)200 * MEM_SCALE << 20)

/* The fake worker with an honest one: the run completes, the fake is
 * dropped naming its claim, and the client stays under the bound. */
static void lie_with_honest_worker(uint64_t claim) {
  char fake[128], honest[128], want[256];
  fake_worker(claim, fake);
  cli_worker(NULL, 0, honest);
  const char *addrs[2] = {fake, honest};
  outcome o = run_client(addrs, 2, SMALL);
  cr_log_info("claim %llu with an honest worker: client VmHWM %.1f MiB; log: %s",
              (unsigned long long)claim, o.hwm / 1048576.0, o.log);
  cr_expect_eq(o.rc, TG_OK, "the run failed: %s", o.msg);
  cr_expect_eq(o.wrong, 0);
  cr_expect_lt(o.hwm, CLIENT_BOUND, "client VmHWM %llu bytes", (unsigned long long)o.hwm);
  snprintf(want, sizeof want, "[%s] worker dropped for the rest of this executor's life: ", fake);
  cr_expect(strncmp(o.log, want, strlen(want)) == 0, "log: %s", o.log);
  cr_expect(strstr(o.log, "it claimed that the result of task '") ||
            strstr(o.log, "it kept the result of task '"), "log: %s", o.log);
}

Test(remote_budget, lying_worker_2e20_dropped_run_completes_elsewhere) {
  lie_with_honest_worker((uint64_t)1 << 20);
}

Test(remote_budget, lying_worker_2e40_dropped_run_completes_elsewhere) {
  lie_with_honest_worker((uint64_t)1 << 40);
}

/* A run on a fake worker claiming `claim` items (2^log2) alone: it fails
 * naming the worker ("...; ADDRESS: it " then `said`), never on a task's
 * TG_ENOMEM. */
static outcome alone(int log2, const char *said) {
  char fake[128], want[512];
  fake_worker((uint64_t)1 << log2, fake);
  const char *addrs[1] = {fake};
  outcome o = run_client(addrs, 1, SMALL);
  cr_log_info("claim 2^%d, no other worker: client VmHWM %.1f MiB; error: %s", log2,
              o.hwm / 1048576.0, o.msg);
  cr_expect_eq(o.rc, TG_EWORKER, "rc %d: %s", o.rc, o.msg);
  snprintf(want, sizeof want, "no worker accepts this run; %s: it %s", fake, said);
  cr_expect(strstr(o.msg, want), "error: %s", o.msg);
  cr_expect(!strstr(o.msg, "TG_ENOMEM"), "error: %s", o.msg);
  cr_expect_lt(o.hwm, CLIENT_BOUND);
  return o;
}

/* The fake worker alone: the run fails naming it and what it claimed. */
Test(remote_budget, lying_worker_alone_fails_the_run_naming_it) {
  outcome o = alone(40, "claimed that the result of task '");
  cr_expect(strstr(o.msg, "kept there is a list of 1099511627776 items (a worker sends "
                   "one of more than 1048576 back whole)"), "error: %s", o.msg);
}

/* Claims of 2^20 items where shapes were asked for, from a worker alone:
 * a few fit the run's budget for placeholders, the next come back whole,
 * which the fake does not do: it is dropped and the run fails naming it,
 * never on a task's TG_ENOMEM. */
Test(remote_budget, lying_worker_2e20_alone_fails_the_run_naming_it) { alone(20, ""); }

/* A map claimed with a key twice, from a worker alone: the run fails
 * naming it and its claim (a placeholder map could not be made: this was
 * reported as the task's TG_ENOMEM). With an honest worker beside it the
 * run completes. */
Test(remote_budget, lying_worker_duplicate_map_keys_dropped) {
  char fake[128], honest[128], want[512];
  fake_worker(0, fake);
  const char *addrs[2] = {fake, NULL};
  outcome o = run_client(addrs, 1, MAPS);
  cr_expect_eq(o.rc, TG_EWORKER, "rc %d: %s", o.rc, o.msg);
  snprintf(want, sizeof want, "no worker accepts this run; %s: it claimed that the result "
           "of task 'json#", fake);
  cr_expect(strstr(o.msg, want), "error: %s", o.msg);
  cr_expect(strstr(o.msg, "' kept there is a map of 2 keys, one of them twice"), "error: %s",
            o.msg);
  cli_worker(NULL, 0, honest);
  addrs[1] = honest;
  o = run_client(addrs, 2, MAPS);
  cr_expect_eq(o.rc, TG_OK, "the run failed: %s", o.msg);
  cr_expect_eq(o.wrong, 0);
  snprintf(want, sizeof want, "[%s] worker dropped for the rest of this executor's life: it "
           "claimed that the result of task 'json#", fake);
  cr_expect(strncmp(o.log, want, strlen(want)) == 0, "log: %s", o.log);
}

/* An honest worker keeping lists of 2^20 items whose last items are
 * all used by one task: the placeholders of the first few fit the run's
 * budget, the others come back whole; the result is right and the client
 * stays under the bound (a placeholder per item took about 400 MB a
 * list). */
Test(remote_budget, honest_long_lists_beyond_the_budget_come_back_whole) {
  char honest[128];
  const char *args[] = {"--nthreads", "2"};
  cli_worker(args, 2, honest);
  const char *addrs[1] = {honest};
  outcome o = run_client(addrs, 1, BIG);
  cr_log_info("%d lists of 2^20 items: client VmHWM %.1f MiB, %llu results kept, "
              "%.1f MiB received", BIG_GROUPS, o.hwm / 1048576.0,
              (unsigned long long)o.kept, o.received / 1048576.0);
  cr_expect_eq(o.rc, TG_OK, "the run failed: %s", o.msg);
  cr_expect_eq(o.wrong, 0);
  cr_expect_lt(o.hwm, CLIENT_BOUND, "client VmHWM %llu bytes", (unsigned long long)o.hwm);
  /* 64 MiB of placeholders hold 7 lists at most: 5 or more came back,
   * a byte per item at least. */
  cr_expect_geq(o.received, 5 * (uint64_t)BIG_ITEMS, "%llu bytes received",
                (unsigned long long)o.received);
}

/* ---- a worker's budget for values streamed in ---------------------------------- */

/* A DEALER on ctx connected to ep, past HELLO and WELCOME. */
static void *greeted(void *ctx, const char *ep) {
  void *s = as_user(zmq_socket(ctx, ZMQ_DEALER), false);
  int linger = 0, tmo = 60000;
  zmq_setsockopt(s, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(s, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  cr_assert_eq(zmq_connect(s, ep), 0);
  tg__wbuf b = {0};
  tg__wbuf_u8(&b, TG__M_HELLO);
  tg__wbuf_bytes(&b, TG__PROTO_MAGIC, 4);
  tg__wbuf_varint(&b, TG_REMOTE_PROTOCOL);
  tg__wbuf_varint(&b, 0);
  tg__wbuf_cstr(&b, "streamer");
  tg__wbuf_varint(&b, 0);
  cr_assert_eq(zmq_send(s, b.p, b.len, 0), (int)b.len);
  tg__wbuf_free(&b);
  uint8_t buf[512];
  int got = zmq_recv(s, buf, sizeof buf, 0);
  cr_assert_gt(got, 6, "no WELCOME");
  cr_assert_eq(buf[0], TG__M_WELCOME);
  return s;
}

#define VALUE_BYTES ((size_t)8 << 20)
static uint8_t chunk[TG__STREAM_CHUNK]; /* sent without copies */

/* Stream one VALUE_BYTES value, number seq, on s. */
static void stream_value(void *s, uint64_t seq) {
  for (size_t off = 0; off < VALUE_BYTES; off += TG__STREAM_CHUNK) {
    tg__wbuf h = {0};
    tg__wbuf_u8(&h, TG__M_BULK);
    tg__wbuf_varint(&h, seq);
    tg__wbuf_varint(&h, VALUE_BYTES);
    tg__wbuf_varint(&h, off);
    zmq_msg_t m;
    zmq_msg_init_data(&m, chunk, sizeof chunk, NULL, NULL);
    cr_assert_eq(zmq_send(s, h.p, h.len, ZMQ_SNDMORE), (int)h.len);
    cr_assert_eq(zmq_msg_send(&m, s, 0), (int)sizeof chunk);
    tg__wbuf_free(&h);
  }
}

/* Stream one VALUE_BYTES value (number 0) on s, then a PING. */
static void stream_8m(void *s) {
  stream_value(s, 0);
  uint8_t ping[2] = {TG__M_PING, 5};
  cr_assert_eq(zmq_send(s, ping, 2, 0), 2);
}

/* The first reply on s after its value: 1 PONG (kept), 0 ERROR (refused;
 * its text in msg). */
static int verdict(void *s, char *msg, size_t size) {
  uint8_t buf[2048];
  int got = zmq_recv(s, buf, sizeof buf - 1, 0);
  cr_assert_gt(got, 0, "no reply in 60 s");
  if (buf[0] == TG__M_PONG) return 1;
  cr_assert_eq(buf[0], TG__M_ERROR, "reply type %d", buf[0]);
  tg__rbuf r;
  tg__rbuf_init(&r, buf, (size_t)got);
  tg__rbuf_u8(&r);
  cr_assert(tg__rbuf_cstr(&r, msg, size - 1));
  return 0;
}

/* A run of builtins on worker ep: sum(range(0, 100000)). */
static void honest_run(const char *ep) {
  tg_registry *reg = NULL;
  tg_graph *g = NULL;
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_add_builtins(reg), TG_OK);
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node r = tg_call(g, "range", 2, tg_arg_value(tg_int(0)), tg_arg_value(tg_int(100000)));
  tg_node s = tg_call(g, "sum", 1, tg_arg_node(r));
  const char *addrs[1] = {ep};
  tg_executor_opts xo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addrs,
                         .nconnect = 1, .connect_timeout = 30};
  cr_assert_eq(tg_executor_new(reg, &xo, &ex, &err), TG_OK, "%s", err.msg);
  tg_compute_opts co = {.version = TG_COMPUTE_OPTS_V1, .executor = ex};
  tg_value *out = NULL;
  cr_assert_eq(tg_compute(g, &s, 1, &co, &out), TG_OK, "%s", tg_graph_errmsg(g));
  cr_assert_eq(tg_value_type(out), TG_INT);
  cr_expect_eq(tg_value_int(out), (int64_t)100000 * 99999 / 2);
  tg_value_unref(out);
  tg_executor_free(ex);
  tg_graph_free(g);
  tg_registry_free(reg);
}

/* Stream a value on each of n fresh connections to ep; how many were
 * kept. Every refusal must contain `want`. */
static int stream_on(const char *ep, int n, const char *want) {
  void *ctx = zmq_ctx_new();
  void **socks = calloc((size_t)n, sizeof *socks);
  cr_assert_not_null(socks);
  for (int i = 0; i < n; i++) socks[i] = greeted(ctx, ep);
  for (int i = 0; i < n; i++) stream_8m(socks[i]);
  int kept = 0;
  for (int i = 0; i < n; i++) {
    char msg[2048] = "";
    int v = verdict(socks[i], msg, sizeof msg);
    kept += v;
    if (!v) cr_expect(strstr(msg, want), "connection %d refused with: %s", i, msg);
  }
  for (int i = 0; i < n; i++) zmq_close(socks[i]);
  free(socks);
  zmq_ctx_term(ctx);
  return kept;
}

#define WORKER_BOUND ((uint64_t)300 * MEM_SCALE << 20)

Test(remote_budget, worker_budget_holds_across_100_connections) {
  char ep[128];
  const char *args[] = {"--max-message", "8M"};
  pid_t w = cli_worker(args, 2, ep);
  uint64_t before = vm_hwm(w);
  /* The default budget: 8 x --max-message = 64 MiB, 8 values. */
  int kept = stream_on(ep, 100, "would take the large values the worker holds (received, "
                       "in queued or running tasks, or stored) to more than its limit of "
                       "67108864 bytes for all clients");
  uint64_t after = vm_hwm(w);
  cr_log_info("100 connections x 8 MiB: %d values kept; worker VmHWM %.1f MiB before, "
              "%.1f MiB after", kept, before / 1048576.0, after / 1048576.0);
  cr_expect_leq(kept, 8);
  cr_expect_geq(kept, 1);
  cr_expect_lt(after, WORKER_BOUND, "worker VmHWM %llu bytes", (unsigned long long)after);
  honest_run(ep);
}

Test(remote_budget, max_pending_option_sets_the_budget) {
  char ep[128];
  const char *args[] = {"--max-message", "8M", "--max-pending", "16M"};
  cli_worker(args, 4, ep);
  int kept = stream_on(ep, 3, "a streamed value of 8388608 bytes would take the large "
                       "values the worker holds (received, in queued or running tasks, or "
                       "stored) to more than its limit of 16777216 bytes for all clients "
                       "(16777216 held; --max-pending): dropped");
  cr_expect_eq(kept, 2);
  honest_run(ep);
}

Test(remote_budget, max_pending_option_checked) {
  const char *bin = getenv("TGRAPH_BIN");
  cr_assert_not_null(bin);
  char cmd[1024];
  snprintf(cmd, sizeof cmd, "'%s' worker --max-pending 0 2>&1", bin);
  FILE *f = popen(cmd, "r");
  cr_assert_not_null(f);
  char out[1024] = "";
  size_t n = fread(out, 1, sizeof out - 1, f);
  out[n] = '\0';
  int st = pclose(f);
  cr_expect(WIFEXITED(st) && WEXITSTATUS(st) == 2, "status %#x", st);
  cr_expect(strstr(out, "--max-pending needs a size above 0, not '0'"), "output: %s", out);
}

/* ---- values held in queued tasks ------------------------------------------------ */

/* FUNCS on s: the builtins sleep_ms (fn 0) and len (fn 1), both accepted. */
static void declare_builtins(void *s) {
  static const char *const names[2] = {"sleep_ms", "len"};
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_FUNCS);
  tg__wbuf_varint(&h, 2);
  for (uint64_t i = 0; i < 2; i++) {
    tg__wbuf_varint(&h, i);
    tg__wbuf_cstr(&h, names[i]);
    tg__wbuf_cstr(&h, "1");
    tg__wbuf_u8(&h, TG__ORIGIN_BUILTIN);
    tg__wbuf_cstr(&h, tg__library_build());
    tg__wbuf_cstr(&h, ""); /* no code id */
  }
  cr_assert_eq(zmq_send(s, h.p, h.len, 0), (int)h.len);
  tg__wbuf_free(&h);
  uint8_t buf[512];
  int got = zmq_recv(s, buf, sizeof buf, 0);
  cr_assert_gt(got, 0, "no FUNCS reply");
  cr_assert_eq(buf[0], TG__M_FUNCS_OK);
  tg__rbuf r;
  tg__rbuf_init(&r, buf, (size_t)got);
  tg__rbuf_u8(&r);
  cr_assert_eq(tg__rbuf_varint(&r), 2);
  for (int i = 0; i < 2; i++) {
    tg__rbuf_varint(&r);
    cr_assert_eq(tg__rbuf_u8(&r), TG__FN_OK, "function %d refused", i);
    char detail[256];
    cr_assert(tg__rbuf_cstr(&r, detail, sizeof detail));
  }
}

/* TASKS of run 1 on s: task `id` calls fn on one argument, the first item
 * of the argument list: the int `n`, or (seq >= 0) streamed value seq as
 * bytes. */
static void send_task(void *s, uint64_t id, uint64_t fn, int64_t n, int64_t seq) {
  tg__wbuf h = {0}, d = {0};
  tg__wbuf_u8(&h, TG__M_TASKS);
  tg__wbuf_varint(&h, 1); /* run */
  tg__wbuf_varint(&h, 1); /* one task */
  tg__wbuf_varint(&h, id);
  tg__wbuf_varint(&h, fn);
  tg__wbuf_u8(&h, 0);     /* a call */
  tg__wbuf_varint(&h, 0); /* aux */
  tg__wbuf_varint(&h, 1); /* attempts */
  tg__wbuf_varint(&h, 0); /* no timeout */
  tg__wbuf_u8(&h, TG__RF_RETURN);
  tg__wbuf_varint(&h, 0); /* not kept */
  tg__wbuf_varint(&h, 0); /* min_us */
  char key[32];
  snprintf(key, sizeof key, "t%llu", (unsigned long long)id);
  tg__wbuf_varint(&h, 0); /* a user key: */
  tg__wbuf_cstr(&h, key);
  tg__wbuf_varint(&h, 1);
  tg__wbuf_u8(&h, TG__ARG_INLINE);
  tg__wbuf_varint(&h, 0);
  tg__wbuf_u8(&d, 1);
  tg__wbuf_varint(&d, seq >= 0 ? 1 : 0);
  if (seq >= 0) { /* leaf [0]: streamed value seq, bytes */
    tg__wbuf_u8(&d, 1);
    tg__wbuf_varint(&d, (uint64_t)seq);
    tg__wbuf_varint(&d, 1);
    tg__wbuf_varint(&d, 0);
    tg__wbuf_u8(&d, TG_BYTES);
    tg__wbuf_varint(&d, VALUE_BYTES);
  }
  tg_value *args = tg_list_of(1, seq >= 0 ? tg_null() : tg_int(n));
  void *enc = NULL;
  size_t el = 0;
  cr_assert_eq(tg_encode(args, NULL, &enc, &el, NULL), TG_OK);
  tg_value_unref(args);
  cr_assert_eq(zmq_send(s, h.p, h.len, ZMQ_SNDMORE), (int)h.len);
  cr_assert_eq(zmq_send(s, d.p, d.len, ZMQ_SNDMORE), (int)d.len);
  cr_assert_eq(zmq_send(s, enc, el, 0), (int)el);
  free(enc);
  tg__wbuf_free(&h);
  tg__wbuf_free(&d);
}

#define QUEUED 48 /* x 8 MiB: 384 MiB, past WORKER_BOUND if all were held */

/* A client queues tasks carrying 8 MiB streamed arguments behind a task
 * that sleeps, on a worker with one thread: the arguments are held until
 * their tasks run, so they count against the budget for all clients
 * (before, only a value still arriving did, and the queue could hold any
 * number of them). The worker refuses the value past the budget, saying
 * so, stays under the bound, and serves an honest client afterwards. */
Test(remote_budget, values_in_queued_tasks_count_against_the_budget) {
  char ep[128];
  const char *args[] = {"--max-message", "8M", "--nthreads", "1"};
  pid_t w = cli_worker(args, 4, ep);
  void *ctx = zmq_ctx_new(), *s = greeted(ctx, ep);
  declare_builtins(s);
  send_task(s, 1, 0, 60000, -1); /* sleep_ms(60000): the only thread is busy */
  for (int i = 0; i < QUEUED; i++) {
    stream_value(s, (uint64_t)i);
    send_task(s, (uint64_t)i + 2, 1, 0, i); /* len(8 MiB of bytes), queued */
  }
  uint8_t ping[2] = {TG__M_PING, 5};
  cr_assert_eq(zmq_send(s, ping, 2, 0), 2);
  char msg[2048] = "";
  cr_assert_eq(verdict(s, msg, sizeof msg), 0, "all %d values were kept", QUEUED);
  cr_expect(strstr(msg, "a streamed value of 8388608 bytes would take the large values the "
                        "worker holds (received, in queued or running tasks, or stored) to "
                        "more than its limit of 67108864 bytes for all clients ("),
            "refused with: %s", msg);
  zmq_close(s);
  zmq_ctx_term(ctx);
  uint64_t hwm = vm_hwm(w);
  cr_log_info("%d queued tasks x 8 MiB: worker VmHWM %.1f MiB", QUEUED, hwm / 1048576.0);
  cr_expect_lt(hwm, WORKER_BOUND, "worker VmHWM %llu bytes", (unsigned long long)hwm);
  honest_run(ep); /* on the one thread: the dropped client's tasks are gone */
  /* Their values were given back to the budget when released. */
  cr_expect_eq(stream_on(ep, 6, "(none refused)"), 6, "the budget was given back");
}

/* ---- tg_worker_opts versions --------------------------------------------------- */

/* A process serving builtins with tg_worker_serve, passing it a block of
 * exactly `size` bytes (from malloc, so ASan sees any read past it) that
 * holds the start of o (on_ready and ctx are set here); its address in
 * ep. */
static void lib_worker(tg_worker_opts o, size_t size, char ep[128]) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    close(p[0]);
    tg_registry *r = NULL;
    if (tg_registry_new(&r) != TG_OK || tg_registry_add_builtins(r) != TG_OK) _exit(2);
    o.on_ready = tproc_say_ready;
    o.ctx = &p[1];
    void *block = malloc(size);
    if (!block) _exit(2);
    memcpy(block, &o, size);
    tg_error err;
    tg_error_clear(&err);
    if (tg_worker_serve(r, block, &err) != TG_OK) dprintf(p[1], "ERROR %s\n", err.msg);
    _exit(1);
  }
  track(pid);
  close(p[1]);
  char line[256];
  tproc_read_line(p[0], line, sizeof line, 20);
  close(p[0]);
  cr_assert(strncmp(line, "tcp://", 6) == 0, "worker said '%s'", line);
  cr_assert_lt(strlen(line), 128);
  memcpy(ep, line, strlen(line) + 1);
}

/* A caller built against version 1 has a struct that ends before
 * max_pending: the worker must read no further (ASan checks) and use the
 * default budget (8 x max_message = 64 MiB: three 8 MiB values fit). */
Test(remote_budget, worker_opts_v1_exact_size_gets_the_default_budget) {
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:0",
                      .max_message = VALUE_BYTES};
  char ep[128];
  lib_worker(o, offsetof(tg_worker_opts, max_pending), ep);
  cr_expect_eq(stream_on(ep, 3, "(none expected)"), 3);
  honest_run(ep);
}

/* Whatever lies past a version 1 struct is not read as max_pending. */
Test(remote_budget, worker_opts_v1_ignores_max_pending) {
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:0",
                      .max_message = VALUE_BYTES, .max_pending = VALUE_BYTES};
  char ep[128];
  lib_worker(o, sizeof o, ep);
  cr_expect_eq(stream_on(ep, 3, "(none expected)"), 3);
}

Test(remote_budget, worker_opts_v2_sets_max_pending) {
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V2, .listen = "tcp://127.0.0.1:0",
                      .max_message = VALUE_BYTES, .max_pending = VALUE_BYTES};
  char ep[128];
  lib_worker(o, sizeof o, ep);
  cr_expect_eq(stream_on(ep, 3, "to more than its limit of 8388608 bytes for all clients"),
               1);
}

Test(remote_budget, worker_opts_version_5_refused) {
  tg_registry *r = NULL;
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  tg_worker_opts o = {.version = 5, .listen = "tcp://127.0.0.1:0"};
  tg_error err;
  tg_error_clear(&err);
  cr_expect_eq(tg_worker_serve(r, &o, &err), TG_EINVAL);
  cr_expect_str_eq(err.msg, "tg_worker_opts.version is 5, expected 1 to 4");
  tg_registry_free(r);
}
