/* lib/launch/exchange.c: the rank exchange, over PMIx when the launcher
 * offers it, else over a PMI-1 server (MPICH's Hydra), else over a run
 * directory (see launch.h). */
#include <stdio.h>
#include <string.h>

#include "../internal.h"
#include "launch.h"

struct tg__kvx {
  const tg__kvx_ops *ops;
  void *impl;
  const char *kind;
};

int tg__kvx_open(const tg__rank *r, const char *run_dir, double timeout, tg__kvx **out,
                 tg_error *err) {
  *out = NULL;
  tg__kvx *x = tg__calloc(1, sizeof *x);
  if (x == NULL) return tg__error_set(err, TG_ENOMEM, "out of memory");
  tg_error why;
  tg_error_clear(&why);
  int rc = tg__pmix_open(r, timeout, &x->impl, &x->ops, &why);
  x->kind = "PMIx";
  if (rc == TG_ENOTFOUND) {
    /* A launcher offers one or the other: a PMI-1 server that is there
     * but fails is an error, not a reason to try the run directory. */
    tg_error why1;
    tg_error_clear(&why1);
    rc = tg__pmi1_open(r, timeout, &x->impl, &x->ops, &why1);
    x->kind = "PMI-1";
    if (rc == TG_ENOTFOUND) {
      char both[2 * sizeof why.msg];
      snprintf(both, sizeof both, "%s %s", why.msg, why1.msg);
      tg__error_set(&why, rc, "%.255s", both);
    } else {
      why = why1;
    }
  }
  if (rc == TG_ENOTFOUND && run_dir != NULL) {
    rc = tg__rundir_open(r, run_dir, timeout, &x->impl, &x->ops, err);
    x->kind = "run directory";
  } else if (rc == TG_ENOTFOUND) {
    tg__error_set(err, rc, "the ranks cannot find each other: %s; name a directory every "
                  "rank sees (--run-dir) instead", why.msg);
  } else if (rc != TG_OK) {
    *err = why;
  }
  if (rc != TG_OK) {
    tg__free(x);
    return rc;
  }
  *out = x;
  return TG_OK;
}

const char *tg__kvx_kind(const tg__kvx *x) { return x->kind; }

int tg__kvx_put(tg__kvx *x, const char *key, const char *val, tg_error *err) {
  if (strchr(val, '\n') != NULL || strlen(key) > 63)
    return tg__error_set(err, TG_EINVAL, "exchange value '%s': a newline or a long key", key);
  return x->ops->put(x->impl, key, val, err);
}

int tg__kvx_fence(tg__kvx *x, tg_error *err) { return x->ops->fence(x->impl, err); }

int tg__kvx_get(tg__kvx *x, unsigned r, const char *key, char **out, tg_error *err) {
  return x->ops->get(x->impl, r, key, out, err);
}

void tg__kvx_close(tg__kvx *x) {
  if (x == NULL) return;
  x->ops->close(x->impl);
  tg__free(x);
}
