/* lib/backends/processes.c: the processes backend: the out-of-process
 * engine (tcp_internal.h) over local links to N forked worker processes
 * (see procs_internal.h).
 *
 * Each connection of the engine is one worker slot. Opening it asks the
 * spawner thread for a child, which serves its end of a socketpair with
 * the worker runtime (tg__worker_serve_fd); the I/O thread adopts the
 * parent's end as the connection's link and says HELLO, as it would to a
 * `tgraph worker`. From there the engine does what it does for tcp:
 * batches, placement, results kept on workers, fetches, retries.
 *
 * What only local workers allow:
 *   - a lost connection is a dead child: it is reaped and its exit status
 *     described ("worker 1 (pid 42) was killed by signal 11 ..."); the
 *     engine opens the connection again after its retry delay, which here
 *     forks a replacement;
 *   - a task past its timeout kills its worker (the engine fails the task
 *     and gives the worker's other tasks to the others);
 *   - at the end every worker is told to go (its link closes), and one
 *     that has not ended after SHUTDOWN_GRACE seconds is killed.
 * Workers die with the parent (the spawner arms PR_SET_PDEATHSIG).
 *
 * Thread safety: `born` under mu (the spawner thread fills it); the rest
 * is the I/O thread's, but for stats (under mu) and deaths (atomic). */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backends/tcp_internal.h"
#include "procs_internal.h"
#include "remote/worker.h"

#define START_TIMEOUT 60.0  /* seconds create waits for every worker */
#define SHUTDOWN_GRACE 1.0  /* seconds a worker has to end when told */
#define REAP_WAIT 2.0       /* seconds a lost worker has to end before a kill */
#define GIVEN_UP_GRACE 0.3  /* seconds a worker may go on calling a task the
                               engine gave up (its run was cancelled) */

typedef struct born {
  int rc;                   /* 0: nothing; 1: sp is a new worker; < 0: why none */
  uint32_t spawn;
  tg__spawned sp;
} born;

struct tg__plocal {
  tcp *b;
  tg_registry *reg;
  tg__spawner *spawner;
  tg__pout *out;
  pthread_mutex_t mu;       /* guards born, pub */
  born *born;               /* per slot */
  _Atomic int born_any;
  uint32_t *spawn_of;       /* per slot: the spawn number wanted (I/O thread) */
  uint32_t next_spawn;
  bool *killed;             /* per slot: we killed its worker on purpose */
  _Atomic uint64_t deaths;  /* workers that ended unasked */
  _Atomic int start_failed; /* the spawner could not make one */
  tg__link_stats closed;    /* totals of closed links (I/O thread) */
  tg__link_stats pub;       /* totals published (under mu) */
  tg__wk_running *running;  /* per slot, shared with the workers */
  uint64_t *given_up;       /* per slot: a task given up it still calls */
  double *given_up_at;      /* ... seen since */
  size_t running_len;
};

/* ---- the spawner's side ------------------------------------------------------------ */

static void child_entry(void *ctx, int slot, uint32_t spawn, int sock) {
  (void)spawn;
  tg__plocal *L = ctx;
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V2, .nthreads = 1};
  int rc = tg__worker_serve_fd(L->reg, sock, &o, &L->running[slot], NULL);
  fflush(stdout);
  fflush(stderr);
  _exit(rc == TG_OK ? 0 : TG__PWORKER_ENOMEM);
}

static void on_spawned(void *ctx, int slot, uint32_t spawn, int rc, const tg__spawned *sp) {
  tg__plocal *L = ctx;
  if (rc == TG_OK) {
    tg__pout_add(L->out, sp->out_fd, 1);
    tg__pout_add(L->out, sp->err_fd, 2);
  }
  pthread_mutex_lock(&L->mu);
  L->born[slot] = (born){rc == TG_OK ? 1 : rc, spawn, rc == TG_OK ? *sp : (tg__spawned){0}};
  pthread_mutex_unlock(&L->mu);
  atomic_store(&L->born_any, 1);
  tg__tcp_wake(L->b);
}

/* Kill and reap a worker nobody will use. */
static void discard(const tg__spawned *sp) {
  kill(sp->pid, SIGKILL);
  while (waitpid(sp->pid, NULL, 0) < 0 && errno == EINTR) {
  }
  tg__fd_untrack(sp->sock);
  close(sp->sock);
  if (sp->pidfd >= 0) {
    tg__fd_untrack(sp->pidfd);
    close(sp->pidfd);
  }
}

/* ---- the engine's hooks (I/O thread) ---------------------------------------------- */

int tg__procs_conn_open(tcp *b, tcp_conn *c, tg_error *err) {
  (void)err;
  tg__plocal *L = b->local;
  c->state = CS_CONNECTING;
  c->last_rx = c->last_ping = tg__now();
  if (c->spawning) return TG_OK; /* asked for already (the first ones) */
  c->spawning = true;
  L->spawn_of[c->idx] = L->next_spawn++;
  tg__spawner_request(L->spawner, c->idx, L->spawn_of[c->idx]);
  return TG_OK;
}

static void adopt(tcp *b, tcp_conn *c, const born *x) {
  tg__plocal *L = b->local;
  c->spawning = false;
  if (x->rc < 0) {
    char why[200];
    snprintf(why, sizeof why, "cannot start a worker process: %s", tg_strerror(x->rc));
    tg__tcp_conn_lost(b, c, why, true);
    snprintf(b->conns[0]->why, sizeof b->conns[0]->why, "%s", why);
    atomic_store(&L->start_failed, 1);
    return;
  }
  c->pid = x->sp.pid;
  c->pidfd = x->sp.pidfd;
  atomic_store(&L->running[c->idx].id, 0);
  atomic_store(&L->running[c->idx].cancel, 0);
  L->killed[c->idx] = false;
  c->link = tg__link_local(x->sp.sock, true);
  if (!c->link) {
    tg__tcp_conn_lost(b, c, "out of memory", false);
    return;
  }
  tg__tcp_conn_hello(b, c);
}

static void add_stats(tg__link_stats *to, const tg__link_stats *s) {
  to->sock_out += s->sock_out;
  to->sock_in += s->sock_in;
  to->seg_out += s->seg_out;
  to->seg_in += s->seg_in;
  to->seg_copied += s->seg_copied;
  to->fds_out += s->fds_out;
  to->fds_in += s->fds_in;
}

uint64_t tg__procs_running(tcp *b, tcp_conn *c, uint32_t *attempt) {
  tg__wk_running *r = &b->local->running[c->idx];
  if (!c->pid) return 0;
  /* The worker is gone or going: what it shows no longer changes once it
   * has ended; a task it finished since is no longer in c's records. */
  *attempt = atomic_load(&r->attempt);
  return atomic_exchange(&r->id, 0);
}

void tg__procs_link_closing(tcp *b, tcp_conn *c) {
  if (c->link) add_stats(&b->local->closed, &c->link->st);
}

void tg__procs_publish(tcp *b) {
  tg__plocal *L = b->local;
  tg__link_stats t = L->closed;
  for (int i = 0; i < b->nconns; i++)
    if (b->conns[i]->link) add_stats(&t, &b->conns[i]->link->st);
  pthread_mutex_lock(&L->mu);
  L->pub = t;
  pthread_mutex_unlock(&L->mu);
}

/* A worker still calling a task the engine gave up (its run was
 * cancelled: a compute's deadline, a failure elsewhere) after the grace
 * period is killed, and replaced: a worker cannot stop a call, and the
 * run it is stuck in is over. */
static void stop_given_up(tcp *b, double now) {
  tg__plocal *L = b->local;
  for (int i = 0; i < b->nconns; i++) {
    tcp_conn *c = b->conns[i];
    uint64_t id = atomic_load(&L->running[i].id);
    if (!c->pid || !id || c->state != CS_READY || tg__idmap_get(&c->recs, id)) {
      L->given_up[i] = 0;
      continue;
    }
    if (L->given_up[i] != id) {
      L->given_up[i] = id;
      L->given_up_at[i] = now;
    } else if (now - L->given_up_at[i] > GIVEN_UP_GRACE) {
      L->given_up[i] = 0;
      L->killed[i] = true;
      kill(c->pid, SIGKILL);
      tg__tcp_conn_lost(b, c, "it went on calling a task of a cancelled run", false);
    }
  }
}

/* A worker that calls its tasks on its loop thread (remote/worker.h; it
 * says so before its WELCOME) answers no ping meanwhile: one shown
 * calling a task is alive (were it not, its socket would have closed). A
 * call that must stop is the task's timeout's or its cancelled run's
 * business (both kill it). */
static void note_busy(tcp *b, double now) {
  tg__plocal *L = b->local;
  for (int i = 0; i < b->nconns; i++) {
    tcp_conn *c = b->conns[i];
    if (c->pid && c->state == CS_READY && atomic_load(&L->running[i].inline_calls) &&
        atomic_load(&L->running[i].id))
      c->last_rx = now;
  }
}

void tg__procs_cancel(tcp *b, tcp_conn *c, uint64_t seq) {
  if (c->pid) atomic_store(&b->local->running[c->idx].cancel, seq + 1);
}

void tg__procs_turn(tcp *b) {
  tg__plocal *L = b->local;
  double now = tg__now();
  stop_given_up(b, now);
  note_busy(b, now);
  if (atomic_exchange(&L->born_any, 0)) {
    for (int i = 0; i < b->nconns; i++) {
      pthread_mutex_lock(&L->mu);
      born x = L->born[i];
      L->born[i].rc = 0;
      pthread_mutex_unlock(&L->mu);
      if (!x.rc) continue;
      tcp_conn *c = b->conns[i];
      if (x.spawn != L->spawn_of[i] || !c->spawning) {
        if (x.rc == 1) discard(&x.sp); /* asked for by an earlier life of the slot */
        continue;
      }
      adopt(b, c, &x);
    }
  }
}

/* Wait for pid to end, up to `secs`; its wait status, or -1 if it runs. */
static int reap(pid_t pid, double secs) {
  int st;
  double until = tg__now() + secs;
  for (;;) {
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) return st;
    if (r < 0 && errno != EINTR) return 0;
    if (tg__now() >= until) return -1;
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
}

static void forget_pid(tcp_conn *c) {
  if (c->pidfd >= 0) {
    tg__fd_untrack(c->pidfd);
    close(c->pidfd);
  }
  c->pid = 0;
  c->pidfd = -1;
}

void tg__procs_conn_closed(tcp *b, tcp_conn *c, char *why, size_t size) {
  tg__plocal *L = b->local;
  why[0] = '\0';
  if (c->spawning) { /* its worker is still to come: it will be discarded */
    c->spawning = false;
    L->spawn_of[c->idx] = 0;
  }
  if (!c->pid) return;
  int st = reap(c->pid, REAP_WAIT);
  if (st == -1) { /* its socket closed and it lives on: no use to us */
    kill(c->pid, SIGKILL);
    st = reap(c->pid, 60);
  }
  char how[200];
  tg__describe_status(st, how, sizeof how);
  snprintf(why, size, "worker %d (pid %d) %s", c->idx, (int)c->pid, how);
  if (!L->killed[c->idx]) atomic_fetch_add(&L->deaths, 1);
  forget_pid(c);
}

void tg__procs_conn_kill(tcp *b, tcp_conn *c, double secs, char *buf, size_t size) {
  buf[0] = '\0';
  if (!c->pid) return;
  b->local->killed[c->idx] = true;
  kill(c->pid, SIGKILL);
  snprintf(buf, size, "its worker %d (pid %d) was killed after %.1f s", c->idx, (int)c->pid,
           secs);
}

void tg__procs_shutdown(tcp *b) {
  double until = tg__now() + SHUTDOWN_GRACE;
  for (int i = 0; i < b->nconns; i++) {
    tcp_conn *c = b->conns[i];
    if (!c->pid) continue;
    double left = until - tg__now();
    if (reap(c->pid, left > 0 ? left : 0) == -1) { /* stuck: killed */
      kill(c->pid, SIGKILL);
      reap(c->pid, 60);
    }
    forget_pid(c);
  }
  tg__procs_publish(b);
}

/* ---- create and destroy ------------------------------------------------------------ */

static void local_free(tg__plocal *L) {
  if (!L) return;
  tg__spawner_stop(L->spawner); /* children it forked die with it: reaped by now */
  for (int i = 0; L->born && i < L->b->nconns; i++)
    if (L->born[i].rc == 1) discard(&L->born[i].sp); /* born after the I/O thread ended */
  tg__pout_stop(L->out);
  pthread_mutex_destroy(&L->mu);
  if (L->running) munmap(L->running, L->running_len);
  tg__free(L->born);
  tg__free(L->spawn_of);
  tg__free(L->killed);
  tg__free(L->given_up);
  tg__free(L->given_up_at);
  tg__free(L);
}

static void procs_destroy(tg__backend *be) {
  tcp *b = (tcp *)be;
  if (!b) return;
  tg__tcp_stop(b);
  local_free(b->local);
  b->local = NULL;
  tg__tcp_free(b);
}

static int configure(tcp *b, unsigned n, tg_error *err) {
  b->connect_timeout = START_TIMEOUT;
  b->heartbeat = 10;
  b->keep_min = 4096;
  tg__plocal *L = tg__calloc(1, sizeof *L);
  if (!L) {
    tg__free(L);
    return tg__error_set(err, TG_ENOMEM, "out of memory");
  }
  L->b = b;
  pthread_mutex_init(&L->mu, NULL);
  b->local = L;
  L->reg = b->ex->reg;
  L->born = tg__calloc(n, sizeof *L->born);
  L->spawn_of = tg__calloc(n, sizeof *L->spawn_of);
  L->killed = tg__calloc(n, sizeof *L->killed);
  L->given_up = tg__calloc(n, sizeof *L->given_up);
  L->given_up_at = tg__calloc(n, sizeof *L->given_up_at);
  if (!L->born || !L->spawn_of || !L->killed || !L->given_up || !L->given_up_at)
    return tg__error_set(err, TG_ENOMEM, "out of memory");
  /* Made before any fork: the workers write, we read. */
  L->running_len = n * sizeof *L->running;
  void *sh = mmap(NULL, L->running_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                  -1, 0);
  if (sh == MAP_FAILED) return tg__error_set(err, -errno, "cannot map memory shared with workers");
  L->running = sh;
  for (unsigned i = 0; i < n; i++) {
    char name[32];
    tcp_conn *c;
    snprintf(name, sizeof name, "worker %u", i);
    int rc = tg__tcp_conn_new(b, name, &c, err);
    if (rc != TG_OK) return rc;
    c->spawning = true; /* the spawner starts with these */
    L->spawn_of[i] = i + 1;
  }
  L->next_spawn = n + 1;
  return TG_OK;
}

/* Wait until every worker said WELCOME, or one cannot start. */
static int wait_started(tcp *b, tg_error *err) {
  double until = tg__now() + START_TIMEOUT;
  while (atomic_load(&b->st_ready) < (unsigned)b->nconns) {
    if (tg__now() > until)
      return tg__error_set(err, TG_ETIMEDOUT, "worker processes did not start within %g s",
                           START_TIMEOUT);
    if (atomic_load(&b->local->start_failed))
      return tg__error_set(err, TG_EWORKER, "cannot start the worker processes: %s",
                           b->conns[0]->why);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return TG_OK;
}

static int procs_create(const tg__backend_cfg *cfg, tg__backend **out, tg_error *err) {
  tcp *b = NULL;
  unsigned n = cfg->workers ? cfg->workers : 1;
  int rc = tg__tcp_new(cfg, &tg__backend_processes, &b, err);
  if (rc == TG_OK) rc = configure(b, n, err);
  if (rc == TG_OK) rc = tg__pout_start(&b->local->out, err);
  if (rc == TG_OK) rc = tg__tcp_start(b, err);
  /* Last, with every request queued: from here until the workers' hellos
   * this thread only waits, so it cannot hold an allocator lock that a
   * fork would copy into a child. */
  if (rc == TG_OK)
    rc = tg__spawner_start(child_entry, on_spawned, b->local, n, 1, &b->local->spawner, err);
  if (rc == TG_OK) rc = wait_started(b, err);
  if (rc != TG_OK) {
    if (b) procs_destroy(&b->base);
    return rc;
  }
  *out = &b->base;
  return TG_OK;
}

int tg__processes_stats(const tg_executor *ex, tg__pstats *out) {
  if (!ex || !out || ex->ops != &tg__backend_processes) return TG_EINVAL;
  tcp *b = (tcp *)ex->backend;
  tg__plocal *L = b->local;
  pthread_mutex_lock(&L->mu);
  tg__link_stats s = L->pub;
  pthread_mutex_unlock(&L->mu);
  *out = (tg__pstats){
      .sock_out = s.sock_out,
      .sock_in = s.sock_in,
      .shm_copied = s.seg_copied,
      .shm_passed = s.seg_out + s.seg_in,
      .fds_passed = s.fds_out + s.fds_in,
      .values_moved = atomic_load(&b->st_moved_n),
      .batches = atomic_load(&b->st_batches),
      .tasks = atomic_load(&b->st_tasks),
      .deaths = atomic_load(&L->deaths),
  };
  return TG_OK;
}

const tg__backend_ops tg__backend_processes = {
    TG__BACKEND_OPS_V1, "processes", 0, procs_create, tg__tcp_submit, procs_destroy,
};
