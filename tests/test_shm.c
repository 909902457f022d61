/* tests/test_shm.c: large values in shared memory between a tcp run and a
 * keyless worker of the same user (lib/wire/shm.h): round trips over
 * the worker's Unix socket are byte-exact and go in segments (none
 * streamed), again and again through the pools; with TGRAPH_NO_SHM on
 * either side they are streamed as before and still exact; a hostile
 * peer's segment descriptors (a plain file, a pipe, a named pipe, an
 * unsealed memfd, a wrong token, a wrong size, no such descriptor, a
 * reference to no segment) are refused with a clear error and the worker
 * goes on serving, and one swapped while it is opened never blocks;
 * mapped segments count against the worker's budget; a worker lends no
 * more segments at once than its descriptor limit allows (the rest
 * stream); a probe left unanswered goes; no segment stays open while the
 * run goes on; values received stay whole when their worker is killed. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zmq.h>

#include "offload/traffic.h"
#include "wire/buf.h"
#include "wire/proto.h"
#include "wire/seg.h"
#include "wire/shm.h"
#include "wire/stream.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/remote.h"
#include "tgraph/serial.h"
#include "test_funcs.h"
#include "test_proc.h"

#define V(x) tg_arg_value(x)
#define N(x) tg_arg_node(x)

static int fn_identity(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx, (void)n;
  *out = tg_value_ref(a[0]);
  return TG_OK;
}

/* fill(n, v): n f64 values v, v + 0.5, ... made on the worker */
static int fn_fill(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx, (void)n;
  *out = tgt_f64_array(tg_value_int(a[0]), (double)tg_value_int(a[1]));
  return *out ? TG_OK : TG_ENOMEM;
}

static tg_registry *make_reg(void) {
  tg_registry *r = NULL;
  cr_assert_eq(tg_registry_new(&r), TG_OK);
  tg_func_def d1 = {.version = TG_FUNC_DEF_V1, .name = "identity", .fn_version = "1",
                    .fn = fn_identity, .flags = TG_FUNC_PURE, .nargs = 1};
  tg_func_def d2 = {.version = TG_FUNC_DEF_V1, .name = "fill", .fn_version = "1",
                    .fn = fn_fill, .flags = TG_FUNC_PURE, .nargs = 2};
  cr_assert_eq(tg_registry_add(r, &d1, NULL), TG_OK);
  cr_assert_eq(tg_registry_add(r, &d2, NULL), TG_OK);
  return r;
}

/* ---- a worker process ----------------------------------------------------------- */

static pid_t wpid;
static char wep[128];
static tg_registry *reg;

/* Fork a keyless worker on a free loopback port (no_shm: with
 * TGRAPH_NO_SHM=1; max_pending: its budget for large values, 0: the
 * default) and wait until it listens. */
static void start_worker_fds(bool no_shm, uint64_t max_pending, rlim_t nofile) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  pid_t pid = tproc_fork();
  if (pid == 0) {
    close(p[0]);
    if (no_shm) setenv("TGRAPH_NO_SHM", "1", 1);
    if (nofile && setrlimit(RLIMIT_NOFILE, &(struct rlimit){nofile, nofile}) != 0) _exit(3);
    tg_registry *r = make_reg();
    int fd = p[1];
    tg_worker_opts o = {.version = TG_WORKER_OPTS_V2, .listen = "tcp://127.0.0.1:*",
                        .nthreads = 2, .stop = tproc_stop_on_term(),
                        .on_ready = tproc_say_ready, .ctx = &fd,
                        .max_pending = max_pending};
    int rc = tg_worker_serve(r, &o, NULL);
    _exit(rc ? 1 : 0);
  }
  close(p[1]);
  wpid = pid;
  tproc_read_line(p[0], wep, sizeof wep, 10);
  close(p[0]);
  cr_assert(strncmp(wep, "tcp://", 6) == 0, "the worker did not start: %s", wep);
}

static void start_worker_with(bool no_shm, uint64_t max_pending) {
  start_worker_fds(no_shm, max_pending, 0);
}

static void start_worker(bool no_shm) { start_worker_with(no_shm, 0); }

static bool worker_alive(void) { return waitpid(wpid, NULL, WNOHANG) == 0; }

static void setup(void) { reg = make_reg(); }

static void teardown(void) {
  if (wpid > 0) {
    kill(wpid, SIGKILL);
    cr_expect_eq(waitpid(wpid, NULL, 0), wpid);
  }
  wpid = 0;
  tg_registry_free(reg);
}

TestSuite(shm, .init = setup, .fini = teardown, .timeout = 120);

/* ---- round trips ------------------------------------------------------------------ */

static tg_executor *executor(void) {
  const char *addr[1] = {wep};
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp",
                        .connect = addr, .nconnect = 1};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &o, &ex, &err), TG_OK, "%s", err.msg);
  return ex;
}

static void same_f64(const tg_value *v, const tg_value *want, const char *what) {
  cr_assert(v && tg_value_type(v) == TG_NDARRAY, "%s: not an array", what);
  cr_assert_eq(tg_ndarray_nbytes(v), tg_ndarray_nbytes(want), "%s", what);
  cr_assert_eq(memcmp(tg_ndarray_data(v), tg_ndarray_data(want), tg_ndarray_nbytes(want)), 0,
               "%s: the data differs", what);
}

#define NA ((int64_t)5 << 20) /* 40 MiB of f64 */
#define NB ((int64_t)600000)  /* 4.8 MB: just over the streaming line */

/* Three rounds, each: an array there and back, a list of two arrays
 * there and back, an array made there; every byte checked. Returns the
 * bytes of large values that crossed (both ways). */
static uint64_t round_trips(tg_executor *ex) {
  uint64_t total = 0;
  for (int round = 0; round < 3; round++) {
    tg_graph *g;
    cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
    tg_value *a = tgt_f64_array(NA, round), *b = tgt_f64_array(NB, 10 + round),
             *c = tgt_f64_array(NB, 20 + round);
    tg_value *l = tg_list_of(2, tg_value_ref(b), tg_value_ref(c));
    tg_value *made = tgt_f64_array(NB, 30 + round);
    cr_assert(a && l && made);
    tg_node outs[3] = {tg_call(g, "identity", 1, V(tg_value_ref(a))),
                       tg_call(g, "identity", 1, V(tg_value_ref(l))),
                       tg_call(g, "fill", 2, V(tg_int(NB)), V(tg_int(30 + round)))};
    tg_value *got[3] = {NULL, NULL, NULL};
    tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .executor = ex};
    cr_assert_eq(tg_compute(g, outs, 3, &o, got), TG_OK, "round %d: %s", round,
                 tg_graph_errmsg(g));
    same_f64(got[0], a, "array");
    cr_assert_eq(tg_value_type(got[1]), TG_LIST);
    same_f64(tg_list_get(got[1], 0), b, "list item 0");
    same_f64(tg_list_get(got[1], 1), c, "list item 1");
    same_f64(got[2], made, "made there");
    total += 2 * (tg_ndarray_nbytes(a) + 2 * tg_ndarray_nbytes(b)) + tg_ndarray_nbytes(made);
    for (int k = 0; k < 3; k++) tg_value_unref(got[k]);
    tg_value_unref(a);
    tg_value_unref(b);
    tg_value_unref(c);
    tg_value_unref(l);
    tg_value_unref(made);
    tg_graph_free(g);
  }
  return total;
}

/* Open descriptors of process pid. */
static int nfds(pid_t pid) {
  char path[64];
  snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
  DIR *d = opendir(path);
  cr_assert_not_null(d);
  int n = 0;
  for (struct dirent *e; (e = readdir(d));) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

/* Wait up to 3 s for process pid to have n descriptors open. */
static int settle_fds(pid_t pid, int n) {
  int now = nfds(pid);
  for (int i = 0; i < 300 && now != n; i++) {
    usleep(10 * 1000);
    now = nfds(pid);
  }
  return now;
}

/* Segments of process pid: its memfd descriptors and mappings. */
typedef struct segs {
  int fds, maps;
} segs;

static segs segs_of(pid_t pid) {
  char path[64], link[256];
  segs n = {0, 0};
  snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
  DIR *d = opendir(path);
  cr_assert_not_null(d);
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char p[600];
    snprintf(p, sizeof p, "%s/%s", path, e->d_name);
    ssize_t l = readlink(p, link, sizeof link - 1);
    link[l > 0 ? l : 0] = '\0';
    n.fds += strncmp(link, "/memfd:tgraph (", 15) == 0;
  }
  closedir(d);
  snprintf(path, sizeof path, "/proc/%ld/maps", (long)pid);
  FILE *f = fopen(path, "r");
  cr_assert_not_null(f);
  char line[512];
  while (fgets(line, sizeof line, f)) n.maps += strstr(line, "/memfd:tgraph (") != NULL;
  fclose(f);
  return n;
}

/* Wait up to `secs` seconds for process pid to hold at most fds memfd
 * descriptors and maps such mappings. */
static segs settle_segs(pid_t pid, int fds, int maps, double secs) {
  segs now = segs_of(pid);
  for (int i = 0; i < (int)(secs * 100) && (now.fds > fds || now.maps > maps); i++) {
    usleep(10 * 1000);
    now = segs_of(pid);
  }
  return now;
}

static tg__offload_traffic carried(tg_executor *ex) {
  tg__offload_traffic c;
  cr_assert_eq(tg__offload_traffic_get(ex, &c), TG_OK);
  return c;
}

Test(shm, same_user_round_trips_go_in_segments) {
  start_worker(false);
  int ours = nfds(getpid()), theirs = nfds(wpid);
  tg_executor *ex = executor();
  uint64_t total = round_trips(ex);
  tg__offload_traffic c = carried(ex);
  cr_expect_eq(c.large_shm, total, "%llu bytes in segments, %llu carried",
               (unsigned long long)c.large_shm, (unsigned long long)total);
  cr_expect_eq(c.large_streamed, 0, "%llu bytes streamed", (unsigned long long)c.large_streamed);
  tg_remote_stats st;
  cr_assert_eq(tg_remote_stats_get(ex, &st), TG_OK);
  cr_expect_eq(st.workers_lost, 0);
  /* what crossed the connection: descriptors and skeletons, not the
   * hundreds of megabytes carried */
  cr_expect_lt(st.bytes_sent, 4096, "%llu bytes sent", (unsigned long long)st.bytes_sent);
  cr_expect_lt(st.bytes_received, 4096, "%llu bytes received",
               (unsigned long long)st.bytes_received);
  /* with the executor still connected: every value released, each side
   * told the other (SEG_FREE) and its idle pool emptied, so no segment
   * stays open or mapped on either side */
  segs w = settle_segs(wpid, 0, 0, 10), here = settle_segs(getpid(), 0, 0, 10);
  cr_expect_eq(w.fds, 0, "the worker keeps %d segments open", w.fds);
  cr_expect_eq(w.maps, 0, "the worker keeps %d segments mapped", w.maps);
  cr_expect_eq(here.fds, 0, "%d segments open here", here.fds);
  cr_expect_eq(here.maps, 0, "%d segments mapped here", here.maps);
  cr_expect_eq(nfds(wpid), theirs + 1, "the worker's descriptors: its own and the connection");
  tg_executor_free(ex);
  /* every segment closed on both sides once the connection is gone */
  cr_expect_eq(nfds(getpid()), ours, "descriptors left open here");
  cr_expect_eq(settle_fds(wpid, theirs), theirs, "descriptors left open in the worker");
  cr_assert(worker_alive());
}

Test(shm, worker_without_shared_memory_streams) {
  start_worker(true);
  tg_executor *ex = executor();
  uint64_t total = round_trips(ex);
  tg__offload_traffic c = carried(ex);
  cr_expect_eq(c.large_shm, 0);
  cr_expect_eq(c.large_streamed, total, "%llu bytes streamed, %llu carried",
               (unsigned long long)c.large_streamed, (unsigned long long)total);
  tg_executor_free(ex);
  cr_assert(worker_alive());
}

Test(shm, run_without_shared_memory_streams) {
  start_worker(false);
  setenv("TGRAPH_NO_SHM", "1", 1);
  tg_executor *ex = executor();
  uint64_t total = round_trips(ex);
  unsetenv("TGRAPH_NO_SHM");
  tg__offload_traffic c = carried(ex);
  cr_expect_eq(c.large_shm, 0);
  cr_expect_eq(c.large_streamed, total);
  tg_executor_free(ex);
  cr_assert(worker_alive());
}

/* ---- a hostile peer --------------------------------------------------------------- */

/* A memfd segment of ours of `size` bytes with `token` at its end. */
static tg__seg our_seg(size_t size, const uint8_t token[TG__SHM_TOKEN]) {
  tg__seg s;
  cr_assert_eq(tg__seg_create(size, false, &s), TG_OK);
  memcpy((uint8_t *)s.map + size - TG__SHM_TOKEN, token, TG__SHM_TOKEN);
  return s;
}

static const uint8_t TOKEN[TG__SHM_TOKEN] = "0123456789abcdef";

typedef struct peer {
  void *ctx, *sock;
  tg__seg probe;
  bool opened, offered; /* WELCOME's answer */
} peer;

/* Connect to the worker's Unix socket as a client of this user and say
 * HELLO offering probe fd (of `size` bytes with TOKEN at its end). */
static void peer_hello(peer *p, int fd, size_t size) {
  char path[4096], ep[4200];
  cr_assert_eq(tg__user_socket(wep, path, sizeof path), TG_OK);
  snprintf(ep, sizeof ep, "ipc://%s", path);
  p->ctx = zmq_ctx_new();
  p->sock = zmq_socket(p->ctx, ZMQ_DEALER);
  int linger = 0, tmo = 5000;
  zmq_setsockopt(p->sock, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(p->sock, ZMQ_RCVTIMEO, &tmo, sizeof tmo);
  cr_assert_eq(zmq_connect(p->sock, ep), 0);
  tg__wbuf h = {0};
  tg__wbuf_u8(&h, TG__M_HELLO);
  tg__wbuf_bytes(&h, TG__PROTO_MAGIC, 4);
  tg__wbuf_varint(&h, TG_REMOTE_PROTOCOL);
  tg__wbuf_varint(&h, 0);
  tg__wbuf_cstr(&h, "hostile");
  tg__wbuf_varint(&h, 0);
  tg__wbuf_u8(&h, 1);
  tg__wbuf_varint(&h, (uint64_t)fd);
  tg__wbuf_varint(&h, size);
  tg__wbuf_bytes(&h, TOKEN, TG__SHM_TOKEN);
  cr_assert_eq(zmq_send(p->sock, h.p, h.len, 0), (int)h.len);
  tg__wbuf_free(&h);
  uint8_t buf[1024];
  int got = zmq_recv(p->sock, buf, sizeof buf, 0);
  cr_assert_gt(got, 0, "no WELCOME");
  tg__rbuf r;
  tg__rbuf_init(&r, buf, (size_t)got);
  cr_assert_eq(tg__rbuf_u8(&r), TG__M_WELCOME);
  tg__rbuf_bytes(&r, 4);
  tg__rbuf_varint(&r);
  cr_assert_eq(tg__rbuf_u8(&r), 0, "refused");
  tg__rbuf_varint(&r);
  char s[300];
  tg__rbuf_cstr(&r, s, 255);
  tg__rbuf_cstr(&r, s, 255);
  tg__rbuf_varint(&r);
  p->opened = tg__rbuf_u8(&r) == 1;
  p->offered = tg__rbuf_u8(&r) == 1;
  cr_assert(!r.bad, "WELCOME without the answer to the probe");
}

static void peer_open(peer *p) {
  p->probe = our_seg(4096, TOKEN);
  peer_hello(p, p->probe.fd, 4096);
  cr_assert(p->opened, "the worker could not open the probe");
  cr_assert(p->offered);
}

static void peer_close(peer *p) {
  zmq_close(p->sock);
  zmq_ctx_term(p->ctx);
  tg__seg_destroy(&p->probe, false);
}

/* PUT object id: `len` bytes in a segment, as descriptor desc. */
static void put_desc_as(peer *p, uint64_t id, const tg__wbuf *desc, size_t len) {
  tg__wbuf h = {0}, d = {0};
  tg__wbuf_u8(&h, TG__M_PUT);
  tg__wbuf_varint(&h, id);
  tg__wbuf_u8(&d, 1);     /* a descriptor */
  tg__wbuf_varint(&d, 1); /* of one large leaf: */
  tg__wbuf_u8(&d, 2);     /* in shared memory, */
  tg__wbuf_varint(&d, 0); /* no padding, */
  tg__wbuf_varint(&d, 0); /* the root, */
  tg__wbuf_u8(&d, TG_BYTES);
  tg__wbuf_varint(&d, len);
  void *skel = NULL;
  size_t sl = 0;
  cr_assert_eq(tg_encode(tg_null(), NULL, &skel, &sl, NULL), TG_OK);
  cr_assert_eq(zmq_send(p->sock, h.p, h.len, ZMQ_SNDMORE), (int)h.len);
  cr_assert_eq(zmq_send(p->sock, d.p, d.len, ZMQ_SNDMORE), (int)d.len);
  cr_assert_eq(zmq_send(p->sock, skel, sl, ZMQ_SNDMORE), (int)sl);
  cr_assert_eq(zmq_send(p->sock, desc->p, desc->len, 0), (int)desc->len);
  free(skel);
  tg__wbuf_free(&h);
  tg__wbuf_free(&d);
}

static void put_desc(peer *p, const tg__wbuf *desc, size_t len) {
  put_desc_as(p, 7, desc, len);
}

/* The worker's next message on p: its type, and its text when an ERROR. */
static int next_reply(peer *p, char *msg, size_t size) {
  uint8_t buf[2048];
  int got = zmq_recv(p->sock, buf, sizeof buf, 0);
  while (got >= 0) { /* the rest of a multipart message */
    int more = 0;
    size_t ml = sizeof more;
    zmq_getsockopt(p->sock, ZMQ_RCVMORE, &more, &ml);
    if (!more) break;
    uint8_t skip[64];
    zmq_recv(p->sock, skip, sizeof skip, 0);
  }
  if (got <= 0) return -1;
  msg[0] = '\0';
  if (buf[0] == TG__M_ERROR) {
    tg__rbuf r;
    tg__rbuf_init(&r, buf, (size_t)got < sizeof buf ? (size_t)got : sizeof buf);
    tg__rbuf_u8(&r);
    tg__rbuf_cstr(&r, msg, size - 1);
  }
  return buf[0];
}

/* A new segment descriptor: id, fd, size, token. */
static void seg_desc(tg__wbuf *d, uint64_t id, int fd, size_t size, const uint8_t *token) {
  tg__wbuf_reset(d);
  tg__wbuf_u8(d, 0);
  tg__wbuf_varint(d, id);
  tg__wbuf_varint(d, (uint64_t)fd);
  tg__wbuf_varint(d, size);
  tg__wbuf_bytes(d, token, TG__SHM_TOKEN);
}

/* desc is refused: the worker drops the peer saying why, and lives. */
/* A named pipe open for reading and writing (no writer to wait for), its
 * name already gone: a descriptor a receiver must refuse without
 * blocking. */
static int named_pipe(void) {
  char dir[] = "/tmp/tgraph-shm-fifo-XXXXXX", path[64];
  cr_assert_not_null(mkdtemp(dir));
  snprintf(path, sizeof path, "%s/fifo", dir);
  cr_assert_eq(mkfifo(path, 0600), 0);
  int q = open(path, O_RDWR | O_NONBLOCK);
  cr_assert_geq(q, 0);
  unlink(path);
  rmdir(dir);
  return q;
}

static void refused(const tg__wbuf *desc, size_t len, const char *what) {
  peer p;
  peer_open(&p);
  put_desc(&p, desc, len);
  char msg[TG__MAX_MSG + 1];
  int type = next_reply(&p, msg, sizeof msg);
  cr_assert_eq(type, TG__M_ERROR, "%s: got message type %d", what, type);
  cr_expect(strstr(msg, "malformed message (bad shared-memory segment: ") == msg,
            "%s: %s", what, msg);
  peer_close(&p);
  cr_assert(worker_alive(), "%s: the worker ended", what);
}

Test(shm, hostile_descriptors_refused) {
  start_worker(false);
  const size_t size = (size_t)8 << 20, len = size - 4096;
  cr_assert_eq(tg__seg_class(len + TG__SHM_TOKEN), size);
  tg__wbuf d = {0};

  /* the harness itself: a good segment is taken (PING answered after) */
  {
    peer p;
    peer_open(&p);
    tg__seg s = our_seg(size, TOKEN);
    memset(s.map, 7, len);
    seg_desc(&d, 1, s.fd, size, TOKEN);
    put_desc(&p, &d, len);
    uint8_t ping[2] = {TG__M_PING, 5};
    cr_assert_eq(zmq_send(p.sock, ping, 2, 0), 2);
    char msg[TG__MAX_MSG + 1];
    cr_assert_eq(next_reply(&p, msg, sizeof msg), TG__M_PONG, "%s", msg);
    tg__seg_destroy(&s, false);
    peer_close(&p);
  }

  /* a plain file of the right size */
  char tmpl[] = "/tmp/tgraph-shm-test-XXXXXX";
  int f = mkstemp(tmpl);
  cr_assert_geq(f, 0);
  unlink(tmpl);
  cr_assert_eq(ftruncate(f, (off_t)size), 0);
  seg_desc(&d, 1, f, size, TOKEN);
  refused(&d, len, "a plain file");
  close(f);

  /* a pipe (never opened: that could block) */
  int pp[2];
  cr_assert_eq(pipe(pp), 0);
  seg_desc(&d, 1, pp[0], size, TOKEN);
  refused(&d, len, "a pipe");
  close(pp[0]);
  close(pp[1]);

  /* a segment with another token */
  uint8_t other[TG__SHM_TOKEN];
  memset(other, 'x', sizeof other);
  tg__seg s = our_seg(size, other);
  seg_desc(&d, 1, s.fd, size, TOKEN);
  refused(&d, len, "another token");

  /* an unsealed memfd of the right name, size and token: it could be
   * shrunk under the worker's mapping (SIGBUS there) */
  {
    int u = memfd_create("tgraph", MFD_CLOEXEC);
    cr_assert_geq(u, 0);
    cr_assert_eq(ftruncate(u, (off_t)size), 0);
    cr_assert_eq(pwrite(u, TOKEN, TG__SHM_TOKEN, (off_t)(size - TG__SHM_TOKEN)),
                 TG__SHM_TOKEN);
    seg_desc(&d, 1, u, size, TOKEN);
    refused(&d, len, "an unsealed memfd");
    close(u);
  }

  /* a sealed segment larger than said (the size class fits the value),
   * the token at the said end */
  {
    tg__seg big = our_seg(2 * size, TOKEN);
    memcpy((uint8_t *)big.map + size - TG__SHM_TOKEN, TOKEN, TG__SHM_TOKEN);
    seg_desc(&d, 1, big.fd, size, TOKEN);
    refused(&d, len, "a larger segment");
    tg__seg_destroy(&big, false);
  }

  /* a named pipe (must not block the worker) */
  {
    int q = named_pipe();
    seg_desc(&d, 1, q, size, TOKEN);
    refused(&d, len, "a named pipe");
    close(q);
  }

  /* the right segment said larger than it is, or too small for the value */
  seg_desc(&d, 1, s.fd, 2 * size, other);
  refused(&d, len, "a wrong size");
  seg_desc(&d, 1, s.fd, size, other);
  refused(&d, size, "a value larger than its segment");
  tg__seg_destroy(&s, false);

  /* no such descriptor */
  seg_desc(&d, 1, 100000, size, TOKEN);
  refused(&d, len, "no such descriptor");

  /* a reference to a segment of the worker's it never sent */
  tg__wbuf_reset(&d);
  tg__wbuf_u8(&d, 1);
  tg__wbuf_varint(&d, 12345);
  tg__wbuf_varint(&d, 0);
  refused(&d, len, "a reference to no segment");

  /* garbage */
  tg__wbuf_reset(&d);
  tg__wbuf_u8(&d, 9);
  refused(&d, len, "an unknown kind");
  tg__wbuf_free(&d);

  /* a probe that is not a segment: the worker says so, and refuses
   * segments from that peer */
  f = open("/dev/null", O_RDWR);
  peer p;
  memset(&p, 0, sizeof p);
  p.probe.fd = -1;
  peer_hello(&p, f, 4096);
  cr_expect(!p.opened, "a probe on /dev/null opened");
  peer_close(&p);
  close(f);

  /* and it still serves a run */
  tg_executor *ex = executor();
  round_trips(ex);
  tg_executor_free(ex);
  cr_assert(worker_alive());
}

/* Mapped segments count against the worker's budget for large values
 * held for all clients (--max-pending): past it a value is refused,
 * saying so, and what a dropped client held is given back. */
Test(shm, mapped_segments_count_against_the_budget) {
  const size_t size = (size_t)8 << 20, len = size - 4096;
  start_worker_with(false, 3 * size);
  tg__seg s[4];
  tg__wbuf d = {0};
  for (int i = 0; i < 4; i++) s[i] = our_seg(size, TOKEN);
  char msg[TG__MAX_MSG + 1];
  for (int round = 0; round < 2; round++) {
    peer p;
    peer_open(&p);
    for (int i = 0; i < 4; i++) { /* kept as objects 1..4 */
      seg_desc(&d, (uint64_t)i + 1, s[i].fd, size, TOKEN);
      put_desc_as(&p, (uint64_t)i + 1, &d, len);
    }
    int type = next_reply(&p, msg, sizeof msg);
    cr_assert_eq(type, TG__M_ERROR, "round %d: got message type %d", round, type);
    cr_expect(strstr(msg, "a value of 8388608 bytes would take the large values the worker "
                          "holds to more than its limit of 25165824 bytes for all clients "
                          "(25165824 held; --max-pending): dropped"),
              "round %d: %s", round, msg);
    peer_close(&p);
    /* the worker lets the dropped client's objects go on its loop: the
     * next round needs the budget back */
    segs w = settle_segs(wpid, 0, 0, 10);
    cr_assert_eq(w.maps, 0, "round %d: the worker still maps %d segments", round, w.maps);
  }
  for (int i = 0; i < 4; i++) tg__seg_destroy(&s[i], false);
  tg__wbuf_free(&d);
  cr_assert(worker_alive());
}

/* The receiving end's checks on their own (the run's end uses the same):
 * every bad descriptor is TG_EFORMAT with a reason, nothing is mapped or
 * counted, and a good one maps the bytes and is told back once released. */
Test(shm, descriptors_checked_before_use) {
  tg__shm *sh = tg__shm_new(getpid());
  cr_assert_not_null(sh);
  tg__stream_pool *pool = tg__stream_pool_new((uint64_t)1 << 30);
  const size_t size = (size_t)4 << 20, len = size - 4096;
  cr_assert_eq(tg__seg_class(len + TG__SHM_TOKEN), size);
  tg__seg s = our_seg(size, TOKEN);
  memset(s.map, 3, len);
  tg__wbuf d = {0};
  void *p, *ctx;
  void (*release)(void *, void *);
  tg_error err;

  /* not proven yet: refused */
  seg_desc(&d, 1, s.fd, size, TOKEN);
  tg_error_clear(&err);
  cr_expect_eq(tg__shm_get(sh, d.p, d.len, len, UINT64_MAX, pool, &p, &release, &ctx, &err),
               TG_EFORMAT);
  tg__shm_set_recv(sh, true);

  /* right name, size and token, but not sealed: it could shrink under
   * the mapping */
  int unsealed = memfd_create("tgraph", MFD_CLOEXEC);
  cr_assert_geq(unsealed, 0);
  cr_assert_eq(ftruncate(unsealed, (off_t)size), 0);
  cr_assert_eq(pwrite(unsealed, TOKEN, TG__SHM_TOKEN, (off_t)(size - TG__SHM_TOKEN)),
               TG__SHM_TOKEN);
  /* sealed, the token where the descriptor says the end is, but larger */
  tg__seg big = our_seg(2 * size, TOKEN);
  memcpy((uint8_t *)big.map + size - TG__SHM_TOKEN, TOKEN, TG__SHM_TOKEN);
  int fifo = named_pipe();
  /* sealed, right size and token, but named otherwise */
  int other_name = memfd_create("tgraph-other", MFD_CLOEXEC | MFD_ALLOW_SEALING);
  cr_assert_geq(other_name, 0);
  cr_assert_eq(ftruncate(other_name, (off_t)size), 0);
  cr_assert_eq(pwrite(other_name, TOKEN, TG__SHM_TOKEN, (off_t)(size - TG__SHM_TOKEN)),
               TG__SHM_TOKEN);
  cr_assert_eq(fcntl(other_name, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);

  struct { const char *what; int fd; size_t size, len; bool token; } bad[] = {
      {"wrong token", s.fd, size, len, false},
      {"wrong size", s.fd, size + 4096, len, true},
      {"huge size", s.fd, (size_t)1 << 40, len, true},
      {"small value in a large segment", s.fd, size, 4096, true},
      {"value past the segment", s.fd, size, size, true},
      {"standard input", 0, size, len, true},
      {"unsealed memfd", unsealed, size, len, true},
      {"larger segment", big.fd, size, len, true},
      {"named pipe", fifo, size, len, true},
      {"memfd of another name", other_name, size, len, true},
      {"no such descriptor", 1 << 20, size, len, true},
  };
  uint8_t other[TG__SHM_TOKEN] = {1};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    seg_desc(&d, 1, bad[i].fd, bad[i].size, bad[i].token ? TOKEN : other);
    tg_error_clear(&err);
    cr_expect_eq(tg__shm_get(sh, d.p, d.len, bad[i].len, UINT64_MAX, pool, &p, &release,
                             &ctx, &err), TG_EFORMAT, "%s", bad[i].what);
    cr_expect(strstr(err.msg, "bad shared-memory segment: ") == err.msg, "%s: %s",
              bad[i].what, err.msg);
  }
  close(unsealed);
  close(other_name);
  tg__seg_destroy(&big, false);
  close(fifo);
  /* truncated descriptors */
  seg_desc(&d, 1, s.fd, size, TOKEN);
  for (size_t cut = 0; cut < d.len; cut++) {
    tg_error_clear(&err);
    cr_expect_eq(tg__shm_get(sh, d.p, cut, len, UINT64_MAX, pool, &p, &release, &ctx, &err),
                 TG_EFORMAT, "cut at %zu", cut);
  }
  cr_expect_eq(pool->used, 0, "nothing counted");

  /* over --max-message */
  tg_error_clear(&err);
  cr_expect_eq(tg__shm_get(sh, d.p, d.len, len, len - 1, pool, &p, &release, &ctx, &err),
               TG_ELIMIT);

  /* the good one */
  tg_error_clear(&err);
  cr_assert_eq(tg__shm_get(sh, d.p, d.len, len, UINT64_MAX, pool, &p, &release, &ctx, &err),
               TG_OK, "%s", err.msg);
  cr_expect_neq(p, s.map, "mapped anew");
  cr_expect_eq(((uint8_t *)p)[len - 1], 3);
  cr_expect_eq(pool->used, size);
  tg__wbuf ids = {0};
  cr_expect(!tg__shm_releases(sh, &ids), "nothing let go of yet");
  release(ctx, p);
  cr_expect_eq(pool->used, 0);
  cr_assert(tg__shm_releases(sh, &ids));
  tg__rbuf r;
  tg__rbuf_init(&r, ids.p, ids.len);
  cr_expect_eq(tg__rbuf_u8(&r), TG__M_SEG_FREE);
  cr_expect_eq(tg__rbuf_varint(&r), 1);
  cr_expect_eq(tg__rbuf_varint(&r), 1, "segment 1 let go of");

  /* the peer letting go of segments we never sent */
  tg__rbuf_init(&r, ids.p + 1, ids.len - 1);
  cr_expect_eq(tg__shm_released(sh, &r), TG_EFORMAT);
  tg__wbuf_free(&ids);
  tg__wbuf_free(&d);
  tg__seg_destroy(&s, false);
  tg__shm_free(sh);
  tg__stream_pool_unref(pool);
}

/* A worker killed with SIGKILL: the values it sent in its segments stay
 * whole here (the mapping holds the pages, not the worker), and nothing
 * of it stays open once they are released. */
Test(shm, values_outlive_a_killed_worker) {
  start_worker(false);
  int ours = nfds(getpid());
  tg_executor *ex = executor();
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node out = tg_call(g, "fill", 2, V(tg_int(NA)), V(tg_int(5)));
  tg_value *got = NULL;
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .executor = ex};
  cr_assert_eq(tg_compute(g, &out, 1, &o, &got), TG_OK, "%s", tg_graph_errmsg(g));
  cr_expect_eq(carried(ex).large_shm, (uint64_t)NA * 8);
  kill(wpid, SIGKILL);
  cr_assert_eq(waitpid(wpid, NULL, 0), wpid);
  wpid = 0;
  tg_value *want = tgt_f64_array(NA, 5);
  same_f64(got, want, "after the worker's death");
  tg_value_unref(want);
  tg_value_unref(got);
  tg_graph_free(g);
  tg_executor_free(ex);
  cr_expect_eq(nfds(getpid()), ours, "descriptors left open here");
}

/* A worker may open 96 descriptors: it lends at most 96 / 16 = 6 segments
 * at once. Ten results made there and all held by the run: six come in
 * segments, the other four streamed, every one exact. */
enum { HELD = 10 };

/* HELD results of NB f64 made on the worker by ex, held by the caller in
 * got (checked byte for byte); the bytes that came in segments and
 * streamed in *shm and *streamed. */
static void hold_results(tg_executor *ex, tg_graph *g, tg_value **got, uint64_t *shm,
                         uint64_t *streamed) {
  tg_node outs[HELD];
  for (int i = 0; i < HELD; i++) outs[i] = tg_call(g, "fill", 2, V(tg_int(NB)), V(tg_int(i)));
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .executor = ex};
  cr_assert_eq(tg_compute(g, outs, HELD, &o, got), TG_OK, "%s", tg_graph_errmsg(g));
  for (int i = 0; i < HELD; i++) {
    tg_value *want = tgt_f64_array(NB, i);
    same_f64(got[i], want, "a result");
    tg_value_unref(want);
  }
  tg__offload_traffic c = carried(ex);
  *shm = c.large_shm;
  *streamed = c.large_streamed;
}

Test(shm, lent_segments_bounded_by_the_fd_limit) {
  start_worker_fds(false, 0, 96);
  tg_executor *ex = executor();
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_value *got[HELD] = {NULL};
  uint64_t shm, streamed;
  hold_results(ex, g, got, &shm, &streamed);
  cr_expect_eq(shm, 6 * (uint64_t)NB * 8, "%llu bytes in segments", (unsigned long long)shm);
  cr_expect_eq(streamed, 4 * (uint64_t)NB * 8, "%llu bytes streamed",
               (unsigned long long)streamed);
  for (int i = 0; i < HELD; i++) tg_value_unref(got[i]);
  tg_graph_free(g);
  tg_executor_free(ex);
  cr_assert(worker_alive());
}

/* The same worker (96 descriptors) holds at most 96 / 8 = 12 segments of
 * its own over all its clients: two clients holding six each leave none
 * for a third, whose results all stream. */
Test(shm, segments_bounded_over_all_clients) {
  start_worker_fds(false, 0, 96);
  tg_executor *ex[3];
  tg_graph *g[3];
  tg_value *got[3][HELD] = {{NULL}};
  uint64_t shm[3], streamed[3];
  for (int k = 0; k < 3; k++) {
    ex[k] = executor();
    cr_assert_eq(tg_graph_new(reg, &g[k]), TG_OK);
    hold_results(ex[k], g[k], got[k], &shm[k], &streamed[k]);
  }
  cr_expect_eq(shm[0], 6 * (uint64_t)NB * 8);
  cr_expect_eq(shm[1], 6 * (uint64_t)NB * 8);
  cr_expect_eq(shm[2], 0, "%llu bytes in segments", (unsigned long long)shm[2]);
  cr_expect_eq(streamed[2], HELD * (uint64_t)NB * 8);
  for (int k = 0; k < 3; k++) {
    for (int i = 0; i < HELD; i++) tg_value_unref(got[k][i]);
    tg_graph_free(g[k]);
    tg_executor_free(ex[k]);
  }
  cr_assert(worker_alive());
}

/* A client that does not answer the worker's probe (SEG_OK) before its
 * next message, or at all: the probe (a memfd there) goes, rather than
 * living as long as the session. */
Test(shm, unanswered_probe_dropped) {
  start_worker(false);
  peer p, q;
  peer_open(&p);
  segs w = segs_of(wpid);
  cr_expect_eq(w.fds, 1, "the worker's probe");
  uint8_t ping[2] = {TG__M_PING, 5};
  cr_assert_eq(zmq_send(p.sock, ping, 2, 0), 2);
  char msg[TG__MAX_MSG + 1];
  cr_assert_eq(next_reply(&p, msg, sizeof msg), TG__M_PONG, "%s", msg);
  w = segs_of(wpid); /* the PING was handled: no wait */
  cr_expect_eq(w.fds, 0, "the probe is still open after another message");
  cr_expect_eq(w.maps, 0, "the probe is still mapped after another message");
  /* a late answer changes nothing, and is no error */
  uint8_t ok[2] = {TG__M_SEG_OK, 1};
  cr_assert_eq(zmq_send(p.sock, ok, 2, 0), 2);
  cr_assert_eq(zmq_send(p.sock, ping, 2, 0), 2);
  cr_assert_eq(next_reply(&p, msg, sizeof msg), TG__M_PONG, "%s", msg);

  peer_open(&q); /* silent */
  cr_expect_eq(segs_of(wpid).fds, 1, "the second client's probe");
  w = settle_segs(wpid, 0, 0, 10);
  cr_expect_eq(w.fds, 0, "the probe of a silent client is still open");
  peer_close(&q);
  peer_close(&p);
  cr_assert(worker_alive());
}

/* The peer swaps what its descriptor is (dup2) between a segment and a
 * named pipe while it is opened here, again and again: every attempt
 * maps the whole segment or is refused, and none blocks (the suite's
 * timeout). */
typedef struct swapper {
  int target, a, b;
  atomic_bool stop;
} swapper;

static void *swap_loop(void *p) {
  swapper *w = p;
  for (unsigned i = 0; !atomic_load(&w->stop); i++) dup2(i & 1 ? w->a : w->b, w->target);
  return NULL;
}

Test(shm, swapped_descriptor_never_blocks) {
  tg__shm *sh = tg__shm_new(getpid());
  cr_assert_not_null(sh);
  tg__shm_set_recv(sh, true);
  tg__stream_pool *pool = tg__stream_pool_new((uint64_t)1 << 30);
  const size_t size = (size_t)4 << 20, len = size - 4096;
  tg__seg s = our_seg(size, TOKEN);
  memset(s.map, 3, len);
  int fifo = named_pipe();
  swapper w = {.target = dup(s.fd), .a = s.fd, .b = fifo};
  cr_assert_geq(w.target, 0);
  atomic_init(&w.stop, false);
  pthread_t t;
  cr_assert_eq(pthread_create(&t, NULL, swap_loop, &w), 0);
  tg__wbuf d = {0};
  int mapped = 0, refused = 0;
  for (int i = 0; i < 2000; i++) {
    void *p, *ctx;
    void (*release)(void *, void *);
    tg_error err;
    tg_error_clear(&err);
    seg_desc(&d, (uint64_t)i + 1, w.target, size, TOKEN);
    int rc = tg__shm_get(sh, d.p, d.len, len, UINT64_MAX, pool, &p, &release, &ctx, &err);
    if (rc == TG_OK) {
      cr_assert(((uint8_t *)p)[0] == 3 && ((uint8_t *)p)[len - 1] == 3, "attempt %d", i);
      release(ctx, p);
      mapped++;
    } else {
      cr_assert_eq(rc, TG_EFORMAT, "attempt %d: %s", i, err.msg);
      cr_assert(strstr(err.msg, "bad shared-memory segment: ") == err.msg, "%s", err.msg);
      refused++;
    }
  }
  atomic_store(&w.stop, true);
  pthread_join(t, NULL);
  cr_expect_eq(mapped + refused, 2000);
  cr_log_info("mapped %d, refused %d", mapped, refused);
  cr_expect_eq(pool->used, 0, "every mapping released");
  close(w.target);
  close(fifo);
  tg__wbuf_free(&d);
  tg__seg_destroy(&s, false);
  tg__shm_free(sh);
  tg__stream_pool_unref(pool);
}
