/* lib/offload/processes.c: the processes backend: the out-of-process
 * engine (offload/engine.h) over the local transport, links to N forked
 * worker processes (see offload/procs_internal.h).
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
 * is the I/O thread's. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "offload/engine.h"
#include "offload/procs_internal.h"
#include "worker/worker.h"

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

/* A worker slot's process (I/O thread). */
typedef struct wslot {
  pid_t pid;          /* the worker process, or 0 */
  int pidfd;          /* its pidfd, or -1 */
  bool spawning;      /* asked the spawner for a worker */
  bool killed;        /* we killed its worker on purpose */
  uint32_t spawn;     /* the spawn number wanted */
  uint64_t given_up;  /* a task given up it still calls */
  double given_up_at; /* ... seen since */
} wslot;

/* The transport's state (ofl.tr_data). */
typedef struct procs_state {
  ofl *b;
  tg_registry *reg;
  tg__spawner *spawner;
  tg__pout *out;
  pthread_mutex_t mu;       /* guards born */
  born *born;               /* per slot */
  _Atomic int born_any;
  uint32_t next_spawn;
  _Atomic int start_failed; /* the spawner could not make one */
  tg__wk_running *running;  /* per slot, shared with the workers */
  size_t running_len;
  wslot *slots;             /* per slot (I/O thread) */
} procs_state;

/* ---- the spawner's side ------------------------------------------------------------ */

static void child_entry(void *ctx, int slot, uint32_t spawn, int sock) {
  (void)spawn;
  procs_state *L = ctx;
  tg_worker_opts o = {.version = TG_WORKER_OPTS_V2, .nthreads = 1};
  int rc = tg__worker_serve_fd(L->reg, sock, &o, &L->running[slot], NULL);
  fflush(stdout);
  fflush(stderr);
  _exit(rc == TG_OK ? 0 : TG__PWORKER_ENOMEM);
}

static void on_spawned(void *ctx, int slot, uint32_t spawn, int rc, const tg__spawned *sp) {
  procs_state *L = ctx;
  if (rc == TG_OK) {
    tg__pout_add(L->out, sp->out_fd, 1);
    tg__pout_add(L->out, sp->err_fd, 2);
  }
  pthread_mutex_lock(&L->mu);
  L->born[slot] = (born){rc == TG_OK ? 1 : rc, spawn, rc == TG_OK ? *sp : (tg__spawned){0}};
  pthread_mutex_unlock(&L->mu);
  atomic_store(&L->born_any, 1);
  tg__ofl_wake(L->b);
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

/* ---- the transport's hooks (I/O thread) ------------------------------------------ */

static int local_open(ofl *b, ofl_conn *c, tg_error *err) {
  (void)err;
  procs_state *L = b->tr_data;
  wslot *s = &L->slots[c->idx];
  c->state = CS_CONNECTING;
  c->last_rx = c->last_ping = tg__now();
  if (s->spawning) return TG_OK; /* asked for already (the first ones) */
  s->spawning = true;
  s->spawn = L->next_spawn++;
  tg__spawner_request(L->spawner, c->idx, s->spawn);
  return TG_OK;
}

static void adopt(ofl *b, ofl_conn *c, const born *x) {
  procs_state *L = b->tr_data;
  wslot *s = &L->slots[c->idx];
  s->spawning = false;
  if (x->rc < 0) {
    char why[200];
    snprintf(why, sizeof why, "cannot start a worker process: %s", tg_strerror(x->rc));
    tg__ofl_conn_lost(b, c, why, true);
    snprintf(b->conns[0]->why, sizeof b->conns[0]->why, "%s", why);
    atomic_store(&L->start_failed, 1);
    return;
  }
  s->pid = x->sp.pid;
  s->pidfd = x->sp.pidfd;
  s->killed = false;
  atomic_store(&L->running[c->idx].id, 0);
  atomic_store(&L->running[c->idx].cancel, 0);
  c->link = tg__link_local(x->sp.sock, true);
  if (!c->link) {
    tg__ofl_conn_lost(b, c, "out of memory", false);
    return;
  }
  tg__ofl_conn_hello(b, c);
}

/* Whether wire id `id` of c is a leaf folded into a record still out
 * (offload/chain.c): such a call has no record of its own. Looked at only
 * once a call looked given up for the grace period. */
static bool folded_in_flight(ofl_conn *c, uint64_t id) {
  uint32_t task;
  return tg__ofl_fold_owner(c, id, &task) != NULL;
}

/* A worker still calling a task the engine gave up (its run was
 * cancelled: a compute's deadline, a failure elsewhere) after the grace
 * period is killed, and replaced: a worker cannot stop a call, and the
 * run it is stuck in is over. */
static void stop_given_up(ofl *b, double now) {
  procs_state *L = b->tr_data;
  for (int i = 0; i < b->nconns; i++) {
    ofl_conn *c = b->conns[i];
    wslot *s = &L->slots[i];
    uint64_t id = atomic_load(&L->running[i].id);
    if (!s->pid || !id || c->state != CS_READY || tg__idmap_get(&c->recs, id)) {
      s->given_up = 0;
      continue;
    }
    if (s->given_up != id) {
      s->given_up = id;
      s->given_up_at = now;
    } else if (now - s->given_up_at > GIVEN_UP_GRACE && !folded_in_flight(c, id)) {
      s->given_up = 0;
      s->killed = true;
      kill(s->pid, SIGKILL);
      tg__ofl_conn_lost(b, c, "it went on calling a task of a cancelled run", false);
    }
  }
}

/* A worker that calls its tasks on its loop thread (worker/worker.h; it
 * says so before its WELCOME) answers no ping meanwhile: one shown
 * calling a task is alive (were it not, its socket would have closed). A
 * call that must stop is the task's timeout's or its cancelled run's
 * business (both kill it). */
static void note_busy(ofl *b, double now) {
  procs_state *L = b->tr_data;
  for (int i = 0; i < b->nconns; i++) {
    ofl_conn *c = b->conns[i];
    if (L->slots[i].pid && c->state == CS_READY && atomic_load(&L->running[i].inline_calls) &&
        atomic_load(&L->running[i].id))
      c->last_rx = now;
  }
}

static void local_cancel(ofl *b, ofl_conn *c, uint64_t seq) {
  procs_state *L = b->tr_data;
  if (L->slots[c->idx].pid) atomic_store(&L->running[c->idx].cancel, seq + 1);
}

/* Adopt the workers the spawner made; keep workers calling a task from
 * looking silent (they answer no ping). */
static void local_turn(ofl *b) {
  procs_state *L = b->tr_data;
  double now = tg__now();
  stop_given_up(b, now);
  note_busy(b, now);
  if (!atomic_exchange(&L->born_any, 0)) return;
  for (int i = 0; i < b->nconns; i++) {
    pthread_mutex_lock(&L->mu);
    born x = L->born[i];
    L->born[i].rc = 0;
    pthread_mutex_unlock(&L->mu);
    if (!x.rc) continue;
    if (x.spawn != L->slots[i].spawn || !L->slots[i].spawning) {
      if (x.rc == 1) discard(&x.sp); /* asked for by an earlier life of the wslot */
      continue;
    }
    adopt(b, b->conns[i], &x);
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

static void forget_pid(wslot *s) {
  if (s->pidfd >= 0) {
    tg__fd_untrack(s->pidfd);
    close(s->pidfd);
  }
  s->pid = 0;
  s->pidfd = -1;
}

/* c's link closed: its worker process is reaped (killed if it does not
 * end); what became of it in why, and the task it was calling. */
static uint64_t local_lost(ofl *b, ofl_conn *c, uint32_t *attempt, char *why, size_t size) {
  procs_state *L = b->tr_data;
  wslot *s = &L->slots[c->idx];
  why[0] = '\0';
  if (s->spawning) { /* its worker is still to come: it will be discarded */
    s->spawning = false;
    s->spawn = 0;
  }
  if (!s->pid) return 0;
  /* The worker is gone or going: what it shows no longer changes once it
   * has ended; a task it finished since is no longer in c's records. */
  tg__wk_running *r = &L->running[c->idx];
  *attempt = atomic_load(&r->attempt);
  uint64_t running = atomic_exchange(&r->id, 0);
  int st = reap(s->pid, REAP_WAIT);
  if (st == -1) { /* its socket closed and it lives on: no use to us */
    kill(s->pid, SIGKILL);
    st = reap(s->pid, 60);
  }
  char how[200];
  tg__describe_status(st, how, sizeof how);
  snprintf(why, size, "worker %d (pid %d) %s", c->idx, (int)s->pid, how);
  if (!s->killed) atomic_fetch_add(&b->st_deaths, 1);
  forget_pid(s);
  return running;
}

static void local_kill(ofl *b, ofl_conn *c, double secs, char *buf, size_t size) {
  procs_state *L = b->tr_data;
  wslot *s = &L->slots[c->idx];
  buf[0] = '\0';
  if (!s->pid) return;
  s->killed = true;
  kill(s->pid, SIGKILL);
  snprintf(buf, size, "its worker %d (pid %d) was killed after %.1f s", c->idx, (int)s->pid,
           secs);
}

/* Every worker was told to go (its link closed): those that have not
 * ended after a grace period are killed, and all are reaped. */
static void local_shutdown(ofl *b) {
  procs_state *L = b->tr_data;
  double until = tg__now() + SHUTDOWN_GRACE;
  for (int i = 0; i < b->nconns; i++) {
    wslot *s = &L->slots[i];
    if (!s->pid) continue;
    double left = until - tg__now();
    if (reap(s->pid, left > 0 ? left : 0) == -1) { /* stuck: killed */
      kill(s->pid, SIGKILL);
      reap(s->pid, 60);
    }
    forget_pid(s);
  }
}

static void local_free(ofl *b) {
  procs_state *L = b->tr_data;
  if (!L) return;
  tg__spawner_stop(L->spawner); /* children it forked die with it: reaped by now */
  for (int i = 0; L->born && i < b->nconns; i++)
    if (L->born[i].rc == 1) discard(&L->born[i].sp); /* born after the I/O thread ended */
  tg__pout_stop(L->out);
  pthread_mutex_destroy(&L->mu);
  if (L->running) munmap(L->running, L->running_len);
  tg__free(L->born);
  tg__free(L->slots);
  tg__free(L);
  b->tr_data = NULL;
}

static const tg__transport tg__transport_local = {
    .caps = TG__TR_CHILDREN | TG__TR_REGISTRY_SNAPSHOT,
    .open = local_open,
    .lost = local_lost,
    .kill = local_kill,
    .cancel = local_cancel,
    .turn = local_turn,
    .shutdown = local_shutdown,
    .free = local_free,
};

/* ---- create and destroy ------------------------------------------------------------ */

static void procs_destroy(tg__backend *be) {
  ofl *b = (ofl *)be;
  if (!b) return;
  tg__ofl_stop(b);
  tg__ofl_free(b);
}

static int configure(ofl *b, unsigned n, tg_error *err) {
  b->connect_timeout = START_TIMEOUT;
  b->heartbeat = 10;
  b->keep_min = 4096;
  procs_state *L = tg__calloc(1, sizeof *L);
  if (!L) return tg__error_set(err, TG_ENOMEM, "out of memory");
  L->b = b;
  pthread_mutex_init(&L->mu, NULL);
  b->tr_data = L;
  L->reg = b->ex->reg;
  L->born = tg__calloc(n, sizeof *L->born);
  L->slots = tg__calloc(n, sizeof *L->slots);
  if (!L->born || !L->slots) return tg__error_set(err, TG_ENOMEM, "out of memory");
  /* Made before any fork: the workers write, we read. */
  L->running_len = n * sizeof *L->running;
  void *sh = mmap(NULL, L->running_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                  -1, 0);
  if (sh == MAP_FAILED) return tg__error_set(err, -errno, "cannot map memory shared with workers");
  L->running = sh;
  for (unsigned i = 0; i < n; i++) {
    char name[32];
    ofl_conn *c;
    snprintf(name, sizeof name, "worker %u", i);
    int rc = tg__ofl_conn_new(b, name, &c, err);
    if (rc != TG_OK) return rc;
    L->slots[i] = (wslot){.pidfd = -1, .spawning = true, .spawn = i + 1}; /* the spawner
                                                                  starts with these */
  }
  L->next_spawn = n + 1;
  return TG_OK;
}

/* Wait until every worker said WELCOME, or one cannot start. */
static int wait_started(ofl *b, tg_error *err) {
  procs_state *L = b->tr_data;
  double until = tg__now() + START_TIMEOUT;
  while (atomic_load(&b->st_ready) < (unsigned)b->nconns) {
    if (tg__now() > until)
      return tg__error_set(err, TG_ETIMEDOUT, "worker processes did not start within %g s",
                           START_TIMEOUT);
    if (atomic_load(&L->start_failed))
      return tg__error_set(err, TG_EWORKER, "cannot start the worker processes: %s",
                           b->conns[0]->why);
    struct timespec ts = {0, 1000000};
    nanosleep(&ts, NULL);
  }
  return TG_OK;
}

static int procs_create(const tg__backend_cfg *cfg, tg__backend **out, tg_error *err) {
  ofl *b = NULL;
  unsigned n = cfg->workers ? cfg->workers : 1;
  int rc = tg__ofl_new(cfg, &tg__backend_processes, &tg__transport_local, &b, err);
  if (rc == TG_OK) rc = configure(b, n, err);
  procs_state *L = b ? b->tr_data : NULL;
  if (rc == TG_OK) rc = tg__pout_start(&L->out, err);
  if (rc == TG_OK) rc = tg__ofl_start(b, err);
  /* Last, with every request queued: from here until the workers' hellos
   * this thread only waits, so it cannot hold an allocator lock that a
   * fork would copy into a child. */
  if (rc == TG_OK) rc = tg__spawner_start(child_entry, on_spawned, L, n, 1, &L->spawner, err);
  if (rc == TG_OK) rc = wait_started(b, err);
  if (rc != TG_OK) {
    if (b) procs_destroy(&b->base);
    return rc;
  }
  *out = &b->base;
  return TG_OK;
}

const tg__backend_ops tg__backend_processes = {
    TG__BACKEND_OPS_V1, "processes", 0, procs_create, tg__ofl_submit, procs_destroy,
};
