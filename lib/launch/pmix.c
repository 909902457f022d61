/* lib/launch/pmix.c: the rank exchange through the launcher's PMIx
 * server (Open MPI's mpirun, Slurm's srun --mpi=pmix, PRRTE), with the
 * PMIx client library loaded at run time: tgraph needs no MPI or PMIx
 * installed to be built or to run without a launcher.
 *
 * Only the few PMIx types these calls use are declared here, as the
 * PMIx standard fixes them (v3 and later keep this layout). */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../internal.h"
#include "launch.h"

#define PX_SUCCESS 0
#define PX_BOOL 1
#define PX_STRING 3
#define PX_GLOBAL 3

typedef struct px_proc {
  char nspace[256];
  uint32_t rank;
} px_proc;

/* pmix_value_t: a type tag and a union of at most a few words. Values
 * this file makes are only ever read through their tag. */
typedef struct px_value {
  uint16_t type;
  union {
    bool flag;
    char *string;
    uint64_t words[4];
  } data;
} px_value;

typedef struct px_info {
  char key[512];
  uint32_t flags;
  px_value value;
} px_info;

typedef void (*px_op_cb)(int status, void *cbdata);

typedef struct px_lib {
  void *dl;
  int (*init)(px_proc *, px_info *, size_t);
  int (*finalize)(const px_info *, size_t);
  int (*put)(uint8_t, const char *, px_value *);
  int (*commit)(void);
  int (*fence_nb)(const px_proc *, size_t, const px_info *, size_t, px_op_cb, void *);
  int (*get)(const px_proc *, const char *, const px_info *, size_t, px_value **);
  void (*value_destruct)(px_value *);
} px_lib;

typedef struct px {
  px_lib lib;
  px_proc me;
  double timeout;
  unsigned size;
  pthread_mutex_t mu; /* guards done and status: the fence's callback runs
                         on PMIx's progress thread */
  pthread_cond_t cv;
  bool done;
  int status;
  bool abandoned; /* a fence timed out: its callback may still come */
} px;

static int load(px_lib *l, tg_error *err) {
  /* RTLD_GLOBAL: PMIx loads its own plugins, which use its symbols. */
  l->dl = dlopen("libpmix.so.2", RTLD_NOW | RTLD_GLOBAL);
  if (l->dl == NULL)
    return tg__error_set(err, TG_ENOTFOUND, "no PMIx library (libpmix.so.2: %s)", dlerror());
  struct { void *dst; const char *name; } syms[] = {
      {&l->init, "PMIx_Init"},         {&l->finalize, "PMIx_Finalize"},
      {&l->put, "PMIx_Put"},           {&l->commit, "PMIx_Commit"},
      {&l->fence_nb, "PMIx_Fence_nb"}, {&l->get, "PMIx_Get"},
      {&l->value_destruct, "PMIx_Value_destruct"}};
  for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
    void *f = dlsym(l->dl, syms[i].name);
    if (f == NULL)
      return tg__error_set(err, TG_ENOTFOUND, "libpmix.so.2 has no %s", syms[i].name);
    memcpy(syms[i].dst, &f, sizeof f);
  }
  return TG_OK;
}

static int put(void *impl, const char *key, const char *val, tg_error *err) {
  px *p = impl;
  px_value v = {.type = PX_STRING};
  v.data.string = (char *)val; /* PMIx_Put copies it */
  int rc = p->lib.put(PX_GLOBAL, key, &v);
  if (rc != PX_SUCCESS)
    return tg__error_set(err, TG_EIO, "PMIx_Put(%s) failed (status %d)", key, rc);
  return TG_OK;
}

static void fenced(int status, void *cbdata) {
  px *p = cbdata;
  pthread_mutex_lock(&p->mu);
  p->status = status;
  p->done = true;
  pthread_cond_signal(&p->cv);
  pthread_mutex_unlock(&p->mu);
}

/* Non-blocking fence and a bounded wait: a rank that never calls it
 * (not a tgraph, or stuck) is an error after the timeout, not a hang. */
static int fence(void *impl, tg_error *err) {
  px *p = impl;
  int rc = p->lib.commit();
  if (rc != PX_SUCCESS) return tg__error_set(err, TG_EIO, "PMIx_Commit failed (status %d)", rc);
  px_info collect = {.key = "pmix.collect", .value = {.type = PX_BOOL}};
  collect.value.data.flag = true;
  p->done = false;
  rc = p->lib.fence_nb(NULL, 0, &collect, 1, fenced, p);
  if (rc != PX_SUCCESS) return tg__error_set(err, TG_EIO, "PMIx_Fence failed (status %d)", rc);
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)p->timeout;
  until.tv_nsec += (long)((p->timeout - (double)(time_t)p->timeout) * 1e9);
  if (until.tv_nsec >= 1000000000L) until.tv_sec++, until.tv_nsec -= 1000000000L;
  pthread_mutex_lock(&p->mu);
  while (!p->done && pthread_cond_timedwait(&p->cv, &p->mu, &until) != ETIMEDOUT) {}
  bool done = p->done;
  int status = p->status;
  pthread_mutex_unlock(&p->mu);
  if (!done) {
    p->abandoned = true;
    return tg__error_set(err, TG_ETIMEDOUT, "not every one of the %u ranks showed up within "
                         "%g s (are they all tgraph with --scheduler=mpi?)", p->size,
                         p->timeout);
  }
  if (status != PX_SUCCESS)
    return tg__error_set(err, TG_EIO, "the ranks' exchange failed (PMIx fence status %d: "
                         "a rank died?)", status);
  return TG_OK;
}

static int get(void *impl, unsigned r, const char *key, char **out, tg_error *err) {
  px *p = impl;
  px_proc who = p->me;
  who.rank = r;
  px_value *v = NULL;
  int rc = p->lib.get(&who, key, NULL, 0, &v);
  if (rc != PX_SUCCESS || v == NULL)
    return tg__error_set(err, TG_ENOTFOUND, "rank %u has no '%s' (PMIx_Get status %d)", r,
                         key, rc);
  rc = TG_OK;
  if (v->type != PX_STRING || v->data.string == NULL)
    rc = tg__error_set(err, TG_EPROTO, "rank %u's '%s' is not text (PMIx type %u)", r, key,
                       v->type);
  else if ((*out = strdup(v->data.string)) == NULL)
    rc = tg__error_set(err, TG_ENOMEM, "out of memory");
  p->lib.value_destruct(v);
  free(v);
  return rc;
}

static void close_px(void *impl) {
  px *p = impl;
  /* After a timed-out fence the library may still call back into p:
   * leave both to the process's end. */
  if (p->abandoned) return;
  p->lib.finalize(NULL, 0);
  pthread_mutex_destroy(&p->mu);
  pthread_cond_destroy(&p->cv);
  tg__free(p);
  /* The library stays loaded: its threads and atexit handlers may
   * outlive finalize. */
}

static const tg__kvx_ops ops_pmix = {put, fence, get, close_px};

int tg__pmix_open(const tg__rank *r, double timeout, void **impl, const tg__kvx_ops **ops,
                  tg_error *err) {
  /* Without these a PMIx client has no server to talk to; PMIx_Init
   * would then start as a singleton, which cannot exchange anything. */
  if (getenv("PMIX_SERVER_URI") == NULL && getenv("PMIX_SERVER_URI2") == NULL &&
      getenv("PMIX_SERVER_URI21") == NULL && getenv("PMIX_SERVER_URI3") == NULL &&
      getenv("PMIX_SERVER_URI4") == NULL && getenv("PMIX_SERVER_URI41") == NULL)
    return tg__error_set(err, TG_ENOTFOUND, "the launcher runs no PMIx server (no "
                         "PMIX_SERVER_URI*; with srun use --mpi=pmix)");
  px *p = tg__calloc(1, sizeof *p);
  if (p == NULL) return tg__error_set(err, TG_ENOMEM, "out of memory");
  int rc = load(&p->lib, err);
  if (rc != TG_OK) {
    tg__free(p);
    return rc;
  }
  pthread_mutex_init(&p->mu, NULL);
  pthread_cond_init(&p->cv, NULL);
  p->timeout = timeout;
  p->size = r->size;
  rc = p->lib.init(&p->me, NULL, 0);
  if (rc != PX_SUCCESS) {
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    tg__free(p);
    return tg__error_set(err, TG_ENOTFOUND, "PMIx_Init failed (status %d)", rc);
  }
  if (p->me.rank != r->rank) {
    int got = (int)p->me.rank;
    close_px(p);
    return tg__error_set(err, TG_EINVAL, "%s says rank %u but PMIx says %d", r->by, r->rank,
                         got);
  }
  *impl = p;
  *ops = &ops_pmix;
  return TG_OK;
}
