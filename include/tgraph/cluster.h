/* include/tgraph/cluster.h: a program launched as N ranks by mpirun,
 * mpiexec or srun: rank 0 drives, every other rank serves it as a tcp
 * worker (the model of dask-mpi's initialize()).
 *
 *   int main(void) {
 *     tg_registry *reg = ...;             // the same functions on every rank
 *     tg_executor *ex;
 *     tg_error err;
 *     if (tg_cluster_start(reg, NULL, &ex, &err) != TG_OK) { print err; exit(2); }
 *     // only rank 0 gets here: compute with .executor = ex
 *     tg_executor_free(ex);
 *   }
 *
 * How the ranks find each other: rank and size come from the launcher's
 * environment (Open MPI, Slurm, PMIx, MPICH/Hydra PMI); addresses and the
 * run's keys are exchanged through the launcher's PMIx server, whose
 * client library (libpmix.so.2) is loaded at run time (no MPI needed to
 * build or run tgraph), else through its PMI-1 server (MPICH's Hydra,
 * srun --mpi=pmi2: the socket of PMI_FD or PMI_PORT, spoken to directly),
 * or, where the launcher has neither, through files in a run directory
 * every rank sees (opts.run_dir).
 *
 * Security: rank 0 makes a new set of CURVE keys for the run and hands the
 * workers' part to the other ranks through that exchange: traffic is
 * encrypted and both ends authenticated; no key file is left anywhere
 * (they live in a private 0700 temporary directory only while the
 * executor and the workers start).
 *
 * The other ranks serve until rank 0's process ends (normally or not),
 * then exit with status 0. A worker rank that dies costs only its tasks
 * (they are computed again elsewhere) provided the launcher lets the job
 * go on: mpirun --enable-recovery, srun --kill-on-bad-exit=0 or --no-kill.
 *
 * Thread safety: call once, from the main thread, before other threads.
 * Fork: call it before forking; the executor's fork rules apply after.
 */
#ifndef TGRAPH_CLUSTER_H
#define TGRAPH_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "tgraph/error.h"
#include "tgraph/executor.h"
#include "tgraph/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TG_CLUSTER_OPTS_V1 1
typedef struct tg_cluster_opts {
  uint32_t version;        /* TG_CLUSTER_OPTS_V1 */
  const char *run_dir;     /* NULL: PMIx or PMI-1 only; else a directory
                              every rank sees, used when there is neither */
  const char *address;     /* where worker ranks listen: an interface name
                              (eth0), a host name or an IPv4 address;
                              NULL: loopback on rank 0's host, else the
                              host name's address */
  unsigned nthreads;       /* threads per worker rank; 0: the CPUs of the
                              rank's CPU set (sched_getaffinity) */
  unsigned workers;        /* a job of one rank: the threads executor's
                              workers (0: one per CPU) */
  double timeout;          /* seconds to wait for every rank; 0: 60 */
  double heartbeat;        /* seconds of silence after which rank 0 counts
                              a worker rank as lost; 0: the tcp default */
  const char *const *plugins; /* rank 0: plugins the other ranks load into
                              their registry before serving (copied) */
  size_t nplugins;
  int verbose;             /* 1: a line on stderr per rank */
} tg_cluster_opts;

/* Start the job's ranks. On rank 0: *out is an executor whose workers are
 * the other ranks (free it with tg_executor_free; compute with
 * tg_compute_opts.executor), or, in a job of one rank, a threads executor.
 * On every other rank: serves reg's functions (plus opts->plugins of rank
 * 0) until rank 0's process ends, then exits the process with status 0;
 * it returns only for an error before serving.
 * reg is borrowed; opts may be NULL. Errors (err says which and where):
 * TG_ENOTFOUND not started by a launcher, or no way to exchange (no PMIx,
 * no PMI-1 and no run_dir); TG_EPROTO / TG_EIO a PMI-1 server answered
 * badly or refused (the request and its reply); TG_ETIMEDOUT a rank did
 * not show up in time; TG_EINVAL bad options or environment; TG_EWORKER
 * another rank could not start serving (its message); -errno for system
 * failures. */
int tg_cluster_start(tg_registry *reg, const tg_cluster_opts *opts,
                     tg_executor **out /* OUT */, tg_error *err);

/* This process's rank and its job's size, from the launcher's
 * environment, without starting anything (e.g. to read input only on
 * rank 0 before tg_cluster_start). TG_ENOTFOUND when not started by a
 * launcher, TG_EINVAL for malformed variables; err says which. Under
 * MPICH's mpiexec.hydra -pmi-port (PMI_PORT, no PMI_RANK) the PMI-1 server
 * tells them: the first call connects to it (errors as tg_cluster_start's
 * PMI-1 ones) and the connection is kept for tg_cluster_start. */
int tg_cluster_rank(unsigned *rank /* OUT */, unsigned *size /* OUT */, tg_error *err);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_CLUSTER_H */
