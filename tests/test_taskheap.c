/* tests/test_taskheap.c: the ready-task queue every backend orders by
 * (lib/sched/taskheap.h): a sorted run beside a binary heap. Pushes in
 * order, in reverse, interleaved with pops, with priorities and several
 * runs, each checked against the order tg__task_before defines. */
#include <criterion/criterion.h>
#include <stdlib.h>

#include "sched/taskheap.h"

#define NT 64

/* Runs with NT tasks each (plan order = array order), prio NULL or set. */
typedef struct fixture {
  tg__run *runs[3];
  int32_t *prio[3];
} fixture;

static void fixture_init(fixture *f, bool with_prio) {
  for (int r = 0; r < 3; r++) {
    f->runs[r] = calloc(1, sizeof *f->runs[r]);
    f->runs[r]->seq = (uint64_t)(10 - r); /* later runs submitted earlier */
    f->runs[r]->plan.tasks = calloc(NT, sizeof(tg__task));
    f->runs[r]->plan.ntasks = NT;
    f->prio[r] = NULL;
    if (with_prio) {
      f->prio[r] = calloc(NT, sizeof(int32_t));
      for (int i = 0; i < NT; i++) f->prio[r][i] = (i * 7 + r) % 3 - 1;
      f->runs[r]->plan.prio = f->prio[r];
    }
    for (int i = 0; i < NT; i++) f->runs[r]->plan.tasks[i].run = f->runs[r];
  }
}

static void fixture_free(fixture *f) {
  for (int r = 0; r < 3; r++) {
    free(f->runs[r]->plan.tasks);
    free(f->prio[r]);
    free(f->runs[r]);
  }
}

/* A reference queue: an unsorted array scanned with tg__task_before. */
typedef struct ref {
  tg__task *v[3 * NT];
  size_t n;
} ref;

static tg__task *ref_pop(ref *q) {
  size_t best = 0;
  for (size_t i = 1; i < q->n; i++)
    if (tg__task_before(q->v[i], q->v[best])) best = i;
  tg__task *t = q->v[best];
  q->v[best] = q->v[--q->n];
  return t;
}

/* Push the tasks of `order` (run * NT + index), popping one after every
 * `pop_every` pushes (0: never), then drain; every pop must match. */
static void check(fixture *f, const int *order, size_t n, size_t pop_every) {
  tg__task_heap h = {0};
  ref q = {.n = 0};
  for (size_t i = 0; i < n; i++) {
    tg__task *t = &f->runs[order[i] / NT]->plan.tasks[order[i] % NT];
    cr_assert(tg__task_heap_push(&h, t));
    q.v[q.n++] = t;
    cr_assert_eq(h.n, q.n);
    if (pop_every && (i + 1) % pop_every == 0) {
      tg__task *want = ref_pop(&q);
      cr_assert_eq(tg__task_heap_top(&h), want, "top after %zu pushes", i + 1);
      cr_assert_eq(tg__task_heap_pop(&h), want, "pop after %zu pushes", i + 1);
    }
  }
  while (q.n) {
    tg__task *want = ref_pop(&q);
    cr_assert_eq(tg__task_heap_top(&h), want);
    cr_assert_eq(tg__task_heap_pop(&h), want, "drain with %zu left", q.n);
  }
  cr_assert_eq(h.n, 0);
  tg__task_heap_free(&h);
}

static void orders(fixture *f) {
  int order[3 * NT];
  size_t n = 3 * NT;
  for (size_t i = 0; i < n; i++) order[i] = (int)i; /* runs in turn, each sorted */
  for (size_t every = 0; every < 5; every++) check(f, order, n, every);
  for (size_t i = 0; i < n; i++) order[i] = (int)(n - 1 - i); /* reversed */
  for (size_t every = 0; every < 5; every++) check(f, order, n, every);
  srand(12);
  for (int round = 0; round < 50; round++) {
    for (size_t i = n - 1; i > 0; i--) { /* shuffled */
      size_t j = (size_t)rand() % (i + 1);
      int x = order[i];
      order[i] = order[j];
      order[j] = x;
    }
    check(f, order, n, (size_t)round % 4);
  }
}

Test(taskheap, plan_and_submission_order) {
  fixture f;
  fixture_init(&f, false);
  orders(&f);
  fixture_free(&f);
}

Test(taskheap, priorities_first) {
  fixture f;
  fixture_init(&f, true);
  orders(&f);
  fixture_free(&f);
}

/* The sorted run slides down instead of growing without bound when it is
 * consumed from the front while appended to at the back. */
Test(taskheap, run_reused_when_consumed) {
  fixture f;
  fixture_init(&f, false);
  tg__task_heap h = {0};
  tg__task *ts = f.runs[0]->plan.tasks;
  for (int lap = 0; lap < 4; lap++) {
    /* Every lap pushes the tasks in order again: the first comes before
     * the run's last, so it starts in the heap; the rest follow it. */
    for (int i = 0; i < NT; i++) cr_assert(tg__task_heap_push(&h, &ts[i]));
    for (int i = 0; i < NT; i++) cr_assert_eq(tg__task_heap_pop(&h), &ts[i]);
  }
  for (int i = 0; i < 1000; i++) { /* one in, one out, always in order */
    cr_assert(tg__task_heap_push(&h, &ts[i % NT]));
    if (i % NT == NT - 1)
      for (int k = 0; k < NT; k++) cr_assert_eq(tg__task_heap_pop(&h), &ts[k]);
  }
  cr_assert_eq(h.n, 1000 % NT);
  cr_assert_leq(h.qcap, 256);
  tg__task_heap_free(&h);
  fixture_free(&f);
}
