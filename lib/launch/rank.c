/* lib/launch/rank.c: a process's rank and its job's size, from the
 * variables its launcher sets. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../internal.h"
#include "launch.h"

/* One launcher's variables; job: a variable naming the job, or NULL. */
typedef struct source {
  const char *by, *rank, *size, *job, *step;
} source;

/* The launcher's own variables before Slurm's: a launcher started inside
 * a Slurm job (mpirun or MPICH's mpiexec in an sbatch script) leaves the
 * batch step's SLURM_PROCID, the same on every rank. srun --mpi=pmix sets
 * both PMIx's and Slurm's, which agree. Open MPI sets PMIx's too. */
static const source sources[] = {
    {"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_MCA_ess_base_jobid",
     NULL},
    {"PMI", "PMI_RANK", "PMI_SIZE", "PMI_KVSNAME", NULL},
    {"PMIx", "PMIX_RANK", "PMIX_SIZE", "PMIX_NAMESPACE", NULL},
    {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_JOB_ID", "SLURM_STEP_ID"},
};

static int number(const char *name, const char *s, unsigned long max, unsigned *out,
                  tg_error *err) {
  char *end;
  errno = 0;
  unsigned long v = strtoul(s, &end, 10);
  if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno != 0 || v > max)
    return tg__error_set(err, TG_EINVAL, "%s='%s' is not a number from 0 to %lu", name,
                         s, max);
  *out = (unsigned)v;
  return TG_OK;
}

int tg__launch_rank(tg__rank *out, tg_error *err) {
  memset(out, 0, sizeof *out);
  for (size_t i = 0; i < sizeof sources / sizeof *sources; i++) {
    const source *s = &sources[i];
    const char *rank = getenv(s->rank), *size = getenv(s->size);
    if (rank == NULL && strcmp(s->by, "PMI") == 0 && getenv("PMI_PORT") != NULL &&
        getenv("PMI_ID") != NULL) {
      int rc = tg__pmi1_port_rank(&out->rank, &out->size, err);
      if (rc != TG_OK) return rc;
      out->by = s->by;
      return TG_OK;
    }
    if (rank == NULL) continue;
    /* PMIx has no standard size variable: Slurm's then says it. */
    if (size == NULL && strcmp(s->by, "PMIx") == 0 && getenv("SLURM_PROCID") != NULL) continue;
    if (size == NULL)
      return tg__error_set(err, TG_EINVAL, "%s is set but not %s: cannot tell the job's "
                           "size", s->rank, s->size);
    int rc = number(s->rank, rank, 1u << 20, &out->rank, err);
    if (rc == TG_OK) rc = number(s->size, size, 1u << 20, &out->size, err);
    if (rc != TG_OK) return rc;
    if (out->size == 0 || out->rank >= out->size)
      return tg__error_set(err, TG_EINVAL, "%s=%u is not below %s=%u", s->rank, out->rank,
                           s->size, out->size);
    out->by = s->by;
    const char *job = s->job ? getenv(s->job) : NULL, *step = s->step ? getenv(s->step) : NULL;
    snprintf(out->job, sizeof out->job, "%s%s%s", job ? job : "", step ? "." : "",
             step ? step : "");
    for (char *p = out->job; *p; p++) /* a file name part */
      if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            *p == '.' || *p == '-'))
        *p = '_';
    return TG_OK;
  }
  return tg__error_set(err, TG_ENOTFOUND,
                       "not started by a parallel launcher (mpirun, mpiexec, srun): none of "
                       "OMPI_COMM_WORLD_RANK, SLURM_PROCID, PMIX_RANK, PMI_RANK is set");
}
