/* tests/stress/stress_executor.c: executors and futures used from several
 * threads at once, with exact expected outcomes: concurrent submitters
 * (calls, graph submissions, futures of other threads as arguments),
 * on-done callbacks counted exactly once, cancellation racing the start
 * of the task (the answer must agree with whether the function ran),
 * as-completed iterators yielding each future exactly once, and executors
 * freed while work is still queued.
 *
 * Usage: stress_executor [SCALE]   (SCALE multiplies the sizes; default
 * 1, sized for a ThreadSanitizer debug build on two cores). */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "../test_funcs.h"
#include "check.h"
#include "tgraph/executor.h"

static tg_registry *reg;

/* ---- mark(id, spins): records that call `id` ran --------------------------- */

#define MARKS 4096
static atomic_int ran[MARKS];

static int fn_mark(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                   tg_value **out) {
  (void)ctx;
  (void)nargs;
  int64_t id = tg_value_int(args[0]);
  if (id >= 0 && id < MARKS) atomic_fetch_add(&ran[id], 1);
  volatile int64_t x = 0; /* a little work, so starts and cancels overlap */
  for (int64_t i = 0; i < tg_value_int(args[1]); i++) x += i;
  *out = tg_int(id);
  return *out ? TG_OK : TG_ENOMEM;
}

static void marks_reset(void) {
  for (int i = 0; i < MARKS; i++) atomic_store(&ran[i], 0);
}

/* ---- helpers --------------------------------------------------------------- */

static tg_executor *executor(const char *backend, unsigned workers) {
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = backend, .workers = workers};
  tg_executor *ex = NULL;
  int rc = tg_executor_new(reg, &o, &ex, NULL);
  CHECK_MSG(rc == TG_OK && ex, "executor %s/%u: %s", backend, workers,
            tg_err_name(rc));
  return ex;
}

static tg_future *call(tg_executor *ex, const char *fn, size_t nargs,
                       tg_arg *args) {
  tg_future *f = NULL;
  int rc = tg_executor_call(ex, fn, args, nargs, &f);
  CHECK_MSG(rc == TG_OK && f, "call %s: %s: %s", fn, tg_err_name(rc),
            tg_executor_errmsg(ex));
  return f;
}

static tg_future *mark(tg_executor *ex, int id, int spins) {
  tg_arg a[2] = {tg_arg_value(tg_int(id)), tg_arg_value(tg_int(spins))};
  return call(ex, "mark", 2, a);
}

/* The future's int result; INT64_MIN and *rc on failure. */
static int64_t result_int(tg_future *f, int *rc) {
  tg_value *v = NULL;
  *rc = f ? tg_future_result(f, 30.0, &v) : TG_EINVAL;
  int64_t r = *rc == TG_OK && tg_value_type(v) == TG_INT ? tg_value_int(v) : INT64_MIN;
  tg_value_unref(v);
  return r;
}

/* ---- concurrent submitters ---------------------------------------------------- */

enum { SUB_T = 4 };

typedef struct sub_ctx {
  tg_executor *ex;
  int t, n;
  _Atomic(tg_future *) *pub; /* [SUB_T][n]: futures published for others */
} sub_ctx;

/* Base value of thread t's call i. */
static int64_t sub_base(int t, int i) { return 100000 * (t + 1) + i; }

/* Thread t: calls, futures as arguments (its own and other threads'),
 * graph submissions; checks every result. */
static void *submitter(void *arg) {
  sub_ctx *c = arg;
  int n = c->n;
  tg_future **mine = calloc((size_t)n, sizeof *mine);
  tg_future **dep = calloc((size_t)n, sizeof *dep);
  int64_t *want = calloc((size_t)n, sizeof *want);
  tg_graph *g = NULL;
  CHECK_EQ_INT(tg_graph_new(reg, &g), TG_OK);
  for (int i = 0; i < n; i++) {
    tg_arg a[2] = {tg_arg_value(tg_int(sub_base(c->t, i))), tg_arg_value(tg_int(0))};
    mine[i] = call(c->ex, "add", 2, a);
    atomic_store(&c->pub[c->t * n + i], mine[i]);
    /* The neighbour's future of the same index, when it is out already. */
    int o = (c->t + 1) % SUB_T;
    tg_future *other = atomic_load(&c->pub[o * n + i]);
    tg_arg b[2] = {tg_arg_future(mine[i]),
                   other ? tg_arg_future(other) : tg_arg_value(tg_int(sub_base(o, i)))};
    if (i % 7 == 0) { /* a graph submission instead: inc(inc(base)) */
      tg_node x = tg_call(g, "inc", 1, tg_arg_value(tg_int(sub_base(c->t, i))));
      x = tg_call(g, "inc", 1, tg_arg_node(x));
      int rc = tg_executor_submit(c->ex, g, x, &dep[i]);
      CHECK_MSG(rc == TG_OK, "submit: %s", tg_executor_errmsg(c->ex));
      want[i] = sub_base(c->t, i) + 2;
    } else {
      dep[i] = call(c->ex, "add", 2, b);
      want[i] = sub_base(c->t, i) + sub_base(o, i);
    }
  }
  for (int i = 0; i < n; i++) {
    int rc;
    if (i % 3 == 0) { /* poll with short waits first */
      while (tg_future_wait(dep[i], 0.001) == TG_ETIMEDOUT) {
      }
      CHECK(tg_future_done(dep[i]));
    }
    int64_t v = result_int(dep[i], &rc);
    CHECK_MSG(rc == TG_OK && v == want[i], "thread %d call %d: %s, %lld != %lld", c->t,
              i, tg_err_name(rc), (long long)v, (long long)want[i]);
    CHECK_EQ_INT(result_int(mine[i], &rc), sub_base(c->t, i));
    tg_future_free(dep[i]);
  }
  tg_graph_free(g);
  free(want);
  free(dep);
  free(mine); /* the handles are freed by the case, after every thread */
  return NULL;
}

static void submitters_on(const char *backend, unsigned workers) {
  int n = 300 * chk.scale;
  tg_executor *ex = executor(backend, workers);
  if (!ex) return;
  _Atomic(tg_future *) *pub = calloc((size_t)(SUB_T * n), sizeof *pub);
  pthread_t th[SUB_T];
  sub_ctx c[SUB_T];
  for (int t = 0; t < SUB_T; t++) {
    c[t] = (sub_ctx){ex, t, n, pub};
    CHECK_EQ_INT(pthread_create(&th[t], NULL, submitter, &c[t]), 0);
  }
  for (int t = 0; t < SUB_T; t++) pthread_join(th[t], NULL);
  for (int i = 0; i < SUB_T * n; i++) tg_future_free(atomic_load(&pub[i]));
  free(pub);
  tg_executor_free(ex);
}

static void concurrent_submitters(void) {
  submitters_on("threads", 2);
  submitters_on("threads", 8);
  submitters_on("sync", 1);
}

/* ---- callbacks ------------------------------------------------------------------ */

enum { CB_T = 3 };

typedef struct cb_case {
  _Atomic(tg_future *) *fs; /* published by the submitting thread */
  int n;
  atomic_int *count;        /* callbacks run, per future */
  atomic_int wrong;         /* callbacks that saw a pending or other future */
} cb_case;

typedef struct cb_arg {
  cb_case *c;
  int i;
} cb_arg;

static void count_cb(tg_future *f, void *ctx) {
  cb_arg *a = ctx;
  if (!tg_future_done(f) || atomic_load(&a->c->fs[a->i]) != f)
    atomic_fetch_add(&a->c->wrong, 1);
  atomic_fetch_add(&a->c->count[a->i], 1);
}

typedef struct cb_thread {
  cb_case *c;
  cb_arg *args; /* n of them */
  int t;
} cb_thread;

/* Register one callback on every future as soon as it is out, racing its
 * completion (one thread goes backwards, meeting finished ones). */
static void *register_all(void *arg) {
  cb_thread *ct = arg;
  int n = ct->c->n;
  for (int k = 0; k < n; k++) {
    int i = ct->t == 1 ? n - 1 - k : k;
    tg_future *f;
    while (!(f = atomic_load(&ct->c->fs[i]))) {
    }
    ct->args[i] = (cb_arg){ct->c, i};
    CHECK_EQ_INT(tg_future_on_done(f, count_cb, &ct->args[i]), TG_OK);
  }
  return NULL;
}

static void callbacks_exactly_once(void) {
  int n = 800 * chk.scale;
  tg_executor *ex = executor("threads", 4);
  if (!ex) return;
  cb_case c = {calloc((size_t)n, sizeof(tg_future *)), n,
               calloc((size_t)n, sizeof(atomic_int)), 0};
  cb_arg *args = calloc((size_t)(CB_T * n), sizeof *args);
  pthread_t th[CB_T];
  cb_thread ct[CB_T];
  for (int t = 0; t < CB_T; t++) {
    ct[t] = (cb_thread){&c, args + t * n, t};
    CHECK_EQ_INT(pthread_create(&th[t], NULL, register_all, &ct[t]), 0);
  }
  for (int i = 0; i < n; i++) {
    tg_future *f;
    if (i % 5 == 4) f = call(ex, "fail", 0, NULL);
    else if (i % 5 == 3) f = call(ex, "sleep_ms", 1, (tg_arg[]){tg_arg_value(tg_int(1))});
    else f = mark(ex, i, 200);
    atomic_store(&c.fs[i], f);
    if (i % 11 == 0) tg_future_cancel(f); /* some are cancelled */
  }
  for (int t = 0; t < CB_T; t++) pthread_join(th[t], NULL);
  /* Freeing the executor waits for every run, and so for every callback
   * registered before its future finished; later ones ran at once. */
  tg_executor_free(ex);
  for (int i = 0; i < n; i++) {
    CHECK_EQ_INT_AT(atomic_load(&c.count[i]), CB_T, "future %d", i);
    CHECK(tg_future_done(atomic_load(&c.fs[i])));
  }
  CHECK_EQ_INT(atomic_load(&c.wrong), 0);
  /* Registered now: at once, in this thread. */
  cb_arg late = {&c, 0};
  CHECK_EQ_INT(tg_future_on_done(atomic_load(&c.fs[0]), count_cb, &late), TG_OK);
  CHECK_EQ_INT(atomic_load(&c.count[0]), CB_T + 1);
  for (int i = 0; i < n; i++) tg_future_free(atomic_load(&c.fs[i]));
  free(args);
  free(c.count);
  free(c.fs);
}

/* ---- cancellation racing the start ---------------------------------------------- */

enum { CANCEL_PER = 40 }; /* futures per round */

typedef struct canceller {
  _Atomic(tg_future *) *fs; /* this round's futures */
  _Atomic int *answer;      /* this thread's answers: 1 true, 0 false */
  uint64_t seed;
  int base;                 /* the round's first mark id */
} canceller;

/* Whether the round's functions that have started number fewer than
 * `at` while some future is still pending (cancelled ones never start). */
static bool before_progress(const canceller *k, int at) {
  int started = 0;
  bool pending = false;
  for (int i = 0; i < CANCEL_PER; i++) {
    started += atomic_load(&ran[k->base + i]) > 0;
    pending |= !tg_future_done(atomic_load(&k->fs[i]));
  }
  return started < at && pending;
}

/* Cancel every future of the round in a random order, each when a random
 * share of the round has started: whatever the speed of the workers,
 * some cancels come before the task starts, some after, some as it does. */
static void *cancel_round(void *arg) {
  canceller *k = arg;
  int order[CANCEL_PER];
  for (int i = 0; i < CANCEL_PER; i++) order[i] = i;
  for (int i = CANCEL_PER - 1; i > 0; i--) {
    int j = (int)tgt_below(&k->seed, (uint64_t)i + 1), x = order[i];
    order[i] = order[j];
    order[j] = x;
  }
  int at[CANCEL_PER]; /* progress to wait for, ascending */
  for (int i = 0; i < CANCEL_PER; i++) {
    int x = (int)tgt_below(&k->seed, CANCEL_PER + 1), j = i;
    for (; j > 0 && at[j - 1] > x; j--) at[j] = at[j - 1];
    at[j] = x;
  }
  for (int i = 0; i < CANCEL_PER; i++) {
    while (before_progress(k, at[i])) sched_yield();
    bool c = tg_future_cancel(atomic_load(&k->fs[order[i]]));
    atomic_store(&k->answer[order[i]], c ? 1 : 0);
  }
  return NULL;
}

/* One round: gate tasks hold every worker while the futures are
 * submitted; the gates open as two threads start cancelling. */
static void cancel_round_on(tg_executor *ex, unsigned workers, int base,
                            _Atomic(tg_future *) *fs, tg_future **dep,
                            _Atomic int *answer, int total, uint64_t seed) {
  tg_future *gates[4];
  for (unsigned g = 0; g < workers; g++) {
    atomic_store(&tgt.gate_open[g], 0);
    atomic_store(&tgt.gate_started[g], 0);
    gates[g] = call(ex, "gate", 1, (tg_arg[]){tg_arg_value(tg_int(g))});
  }
  for (unsigned g = 0; g < workers; g++) CHECK(tgt_gate_wait_started((int)g));
  for (int i = base; i < base + CANCEL_PER; i++) {
    tg_future *f = mark(ex, i, 100000);
    tg_arg a = tg_arg_future(f);
    dep[i] = call(ex, "identity", 1, &a);
    atomic_store(&fs[i], f);
  }
  pthread_t th[2];
  canceller k[2] = {{fs + base, answer + base, seed, base},
                    {fs + base, answer + total + base, seed + 1, base}};
  for (int t = 0; t < 2; t++) CHECK_EQ_INT(pthread_create(&th[t], NULL, cancel_round, &k[t]), 0);
  for (unsigned g = 0; g < workers; g++) tgt_gate_open((int)g);
  for (int t = 0; t < 2; t++) pthread_join(th[t], NULL);
  for (unsigned g = 0; g < workers; g++) {
    CHECK_EQ_INT(tg_future_wait(gates[g], 30.0), TG_OK);
    tg_future_free(gates[g]);
  }
}

/* Check future i against the cancellers' answers. */
static bool check_cancelled(tg_future *f, tg_future *dep, int a0, int a1, int i) {
  CHECK_MSG(a0 == a1, "future %d: cancel answered %d and %d", i, a0, a1);
  int frc, drc;
  int64_t v = result_int(f, &frc), dv = result_int(dep, &drc);
  if (!a0) {
    CHECK_EQ_INT_AT(frc, TG_OK, "future %d", i);
    CHECK_EQ_INT(v, i);
    CHECK(!tg_future_cancelled(f));
    CHECK_EQ_INT_AT(dv, i, "dependent of %d", i);
    return false;
  }
  CHECK_EQ_INT_AT(frc, TG_ECANCELED, "future %d", i);
  CHECK(tg_future_cancelled(f));
  CHECK_EQ_STR(tg_future_errmsg(f), "cancelled");
  CHECK_EQ_INT_AT(drc, TG_ETASK, "dependent of %d", i);
  CHECK_EQ_STR(tg_future_errmsg(dep),
               "task 'identity#0' failed: TG_ECANCELED: argument 0: its future "
               "failed: cancelled");
  return true;
}

/* Two threads cancel each future while the workers start them: their
 * answers agree, and true means the function never ran, false that it
 * ran once and the future holds its result. */
static void cancel_on(unsigned workers) {
  int rounds = 8 * chk.scale, n = rounds * CANCEL_PER;
  if (n > MARKS) rounds = MARKS / CANCEL_PER, n = rounds * CANCEL_PER;
  marks_reset();
  tg_executor *ex = executor("threads", workers);
  if (!ex) return;
  _Atomic(tg_future *) *fs = calloc((size_t)n, sizeof *fs);
  _Atomic int *answer = calloc((size_t)(2 * n), sizeof *answer);
  tg_future **dep = calloc((size_t)n, sizeof *dep);
  for (int r = 0; r < rounds; r++)
    cancel_round_on(ex, workers, r * CANCEL_PER, fs, dep, answer, n, 99 + (uint64_t)r);
  int ncancelled = 0;
  for (int i = 0; i < n; i++)
    ncancelled += check_cancelled(atomic_load(&fs[i]), dep[i], atomic_load(&answer[i]),
                                  atomic_load(&answer[n + i]), i);
  /* Freeing waits for everything, so every run has run or not for good. */
  tg_executor_free(ex);
  for (int i = 0; i < n; i++) {
    int a0 = atomic_load(&answer[i]);
    CHECK_EQ_INT_AT(atomic_load(&ran[i]), a0 ? 0 : 1, "future %d (cancel said %d)", i,
                    a0);
    tg_future_free(atomic_load(&fs[i]));
    tg_future_free(dep[i]);
  }
  fprintf(stderr, "     %u workers: %d of %d cancelled\n", workers, ncancelled, n);
  /* Both outcomes must have happened, or the race was not exercised. */
  CHECK_MSG(ncancelled > 0 && ncancelled < n, "%d of %d cancelled", ncancelled, n);
  free(dep);
  free(answer);
  free(fs);
}

static void cancel_races(void) {
  cancel_on(1);
  cancel_on(2);
  cancel_on(4);
}

/* ---- as completed -------------------------------------------------------------- */

typedef struct ac_reader {
  tg_future **fs;
  int n;
  int delay_ms; /* create the iterator after this */
} ac_reader;

static void *iterate(void *arg) {
  ac_reader *r = arg;
  if (r->delay_ms) tgt_sleep_ms(r->delay_ms);
  tg_as_completed *it = NULL;
  CHECK_EQ_INT(tg_as_completed_new(r->fs, (size_t)r->n, &it), TG_OK);
  if (!it) return NULL;
  int *seen = calloc((size_t)r->n, sizeof *seen);
  for (int k = 0; k < r->n; k++) {
    tg_future *f = NULL;
    int rc = tg_as_completed_next(it, 30.0, &f);
    if (!CHECK_MSG(rc == TG_OK, "step %d: %s", k, tg_err_name(rc))) break;
    CHECK(tg_future_done(f));
    int idx = -1;
    for (int i = 0; i < r->n && idx < 0; i++)
      if (r->fs[i] == f) idx = i;
    if (CHECK(idx >= 0)) seen[idx]++;
  }
  tg_future *f = NULL;
  CHECK_EQ_INT(tg_as_completed_next(it, 0.0, &f), TG_ENOTFOUND);
  for (int i = 0; i < r->n; i++) CHECK_EQ_INT_AT(seen[i], 1, "future %d", i);
  tg_as_completed_free(it);
  free(seen);
  return NULL;
}

/* Three iterators over the same futures (successes, failures, cancelled
 * ones), made before, during and after they finish. */
static void as_completed_once(void) {
  int n = 600 * chk.scale;
  tg_executor *ex = executor("threads", 4);
  if (!ex) return;
  tg_future **fs = calloc((size_t)n, sizeof *fs);
  for (int i = 0; i < n; i++) {
    if (i % 4 == 0) fs[i] = call(ex, "fail", 0, NULL);
    else if (i % 4 == 1) fs[i] = call(ex, "sleep_ms", 1, (tg_arg[]){tg_arg_value(tg_int(i % 3))});
    else fs[i] = mark(ex, i % MARKS, 100);
    if (i % 9 == 0) tg_future_cancel(fs[i]);
  }
  pthread_t th[3];
  ac_reader r[3] = {{fs, n, 0}, {fs, n, 5}, {fs, n, 50}};
  for (int t = 0; t < 3; t++) CHECK_EQ_INT(pthread_create(&th[t], NULL, iterate, &r[t]), 0);
  for (int t = 0; t < 3; t++) pthread_join(th[t], NULL);
  tg_executor_free(ex);
  for (int i = 0; i < n; i++) tg_future_free(fs[i]);
  free(fs);
}

/* ---- freeing an executor with work queued ----------------------------------------- */

static void free_while_queued_on(const char *backend, unsigned workers, int rep) {
  int n = 80;
  marks_reset();
  tg_executor *ex = executor(backend, workers);
  /* Odd reps put the dependents on a second executor, which outlives
   * the first: the futures it waits on are cancelled by another's free. */
  tg_executor *other = rep % 2 ? executor("threads", 2) : NULL;
  if (!ex) return;
  tg_future *fs[80], *dep[80];
  for (int i = 0; i < n; i++) {
    fs[i] = mark(ex, i, 500);
    tg_arg a = tg_arg_future(fs[i]);
    dep[i] = call(other ? other : ex, "identity", 1, &a);
  }
  tg_executor_free(ex);
  for (int i = 0; other && i < n; i++) CHECK_EQ_INT(tg_future_wait(dep[i], 30.0), TG_OK);
  tg_executor_free(other);
  int ok = 0;
  for (int i = 0; i < n; i++) {
    CHECK(tg_future_done(fs[i]) && tg_future_done(dep[i]));
    int rc, drc;
    int64_t v = result_int(fs[i], &rc), dv = result_int(dep[i], &drc);
    if (rc == TG_OK) {
      ok++;
      CHECK_EQ_INT(v, i);
      CHECK_EQ_INT_AT(atomic_load(&ran[i]), 1, "%s/%u rep %d future %d", backend,
                      workers, rep, i);
    } else {
      CHECK_EQ_INT_AT(rc, TG_ECANCELED, "%s/%u rep %d future %d", backend, workers, rep,
                      i);
      CHECK_EQ_INT_AT(atomic_load(&ran[i]), 0, "%s/%u rep %d future %d", backend,
                      workers, rep, i);
      CHECK(tg_future_cancelled(fs[i]));
    }
    if (drc == TG_OK) CHECK_MSG(rc == TG_OK && dv == i, "dependent %d: %lld", i, (long long)dv);
    else CHECK_MSG(drc == TG_ECANCELED || drc == TG_ETASK, "dependent %d: %s", i,
                   tg_err_name(drc));
    tg_future_free(fs[i]);
    tg_future_free(dep[i]);
  }
  if (strcmp(backend, "sync") == 0) CHECK_EQ_INT(ok, n); /* ran as submitted */
}

static void free_while_queued(void) {
  for (int rep = 0; rep < 8 * chk.scale; rep++) {
    free_while_queued_on("threads", 1, rep);
    free_while_queued_on("threads", 2, rep);
    free_while_queued_on("threads", 8, rep);
    free_while_queued_on("sync", 1, rep);
  }
}

/* ---- task logs -------------------------------------------------------------------- */

typedef struct log_sink {
  pthread_mutex_t mu;
  int *seen; /* per value logged */
  int n, bad;
} log_sink;

static void sink_line(void *ctx, const char *key, const char *line) {
  log_sink *s = ctx;
  long long v = -1;
  bool ok = strcmp(key, "logline#0") == 0 && sscanf(line, "value %lld", &v) == 1;
  pthread_mutex_lock(&s->mu);
  if (ok && v >= 0 && v < s->n) s->seen[v]++;
  else s->bad++;
  pthread_mutex_unlock(&s->mu);
}

/* tg_task_log from every worker at once reaches the callback once per
 * line, whole. */
static void task_logs(void) {
  log_sink s = {PTHREAD_MUTEX_INITIALIZER, NULL, 500 * chk.scale, 0};
  s.seen = calloc((size_t)s.n, sizeof *s.seen);
  tg_executor_opts o = {.version = TG_EXECUTOR_OPTS_V1, .backend = "threads", .workers = 4,
                        .log = sink_line, .log_ctx = &s};
  tg_executor *ex = NULL;
  CHECK_EQ_INT(tg_executor_new(reg, &o, &ex, NULL), TG_OK);
  tg_future **fs = calloc((size_t)s.n, sizeof *fs);
  for (int i = 0; ex && i < s.n; i++)
    fs[i] = call(ex, "logline", 1, (tg_arg[]){tg_arg_value(tg_int(i))});
  for (int i = 0; i < s.n; i++) { /* a task logs before it finishes */
    int rc;
    CHECK_EQ_INT(result_int(fs[i], &rc), i);
  }
  tg_executor_free(ex);
  for (int i = 0; i < s.n; i++) {
    CHECK_EQ_INT_AT(s.seen[i], 1, "line %d", i);
    tg_future_free(fs[i]);
  }
  CHECK_EQ_INT(s.bad, 0);
  free(fs);
  free(s.seen);
}

int main(int argc, char **argv) {
  chk_init(argc, argv);
  reg = tgt_registry_new();
  if (!CHECK(reg != NULL)) return chk_finish("stress_executor");
  tg_func_def def = {.version = TG_FUNC_DEF_V1, .name = "mark", .fn_version = "1",
                     .fn = fn_mark, .flags = 0, .nargs = 2};
  CHECK_EQ_INT(tg_registry_add(reg, &def, NULL), TG_OK);
  CHK_RUN(concurrent_submitters);
  CHK_RUN(callbacks_exactly_once);
  CHK_RUN(cancel_races);
  CHK_RUN(as_completed_once);
  CHK_RUN(free_while_queued);
  CHK_RUN(task_logs);
  tg_registry_free(reg);
  return chk_finish("stress_executor");
}
