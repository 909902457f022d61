/* lib/launch/launch.h: what a parallel launcher (mpirun, srun, mpiexec)
 * tells the processes it starts: their rank and the job's size, and a
 * key-value exchange among the ranks (PMIx loaded at run time, a PMI-1
 * server spoken to over its socket, or files in a run directory on a
 * shared file system).
 *
 * Life-cycle of an exchange:
 *   1. tg__launch_rank()     rank and size from the environment
 *   2. tg__kvx_open()        PMIx when reachable, else PMI-1, else the run
 *                            directory
 *   3. tg__kvx_put()...      this rank's values (copied)
 *   4. tg__kvx_fence()       publish them and wait for every rank's
 *   5. tg__kvx_get()         another rank's value, as of the last fence
 *   6. tg__kvx_close()       leave the exchange (PMIx_Finalize)
 * Steps 3 to 5 may repeat; every rank must call fence the same number of
 * times.
 *
 * Thread safety: an exchange belongs to one thread at a time.
 * Fork: do not use an exchange in a child of fork(). */
#ifndef TG_LAUNCH_H
#define TG_LAUNCH_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>

#include "tgraph/error.h"

/* This process's place in a launched job. */
typedef struct tg__rank {
  unsigned rank, size;
  const char *by; /* the environment it came from: "Open MPI", "PMIx",
                     "Slurm", "PMI" (static) */
  char job[128];  /* the job's id when the environment names one ("" if
                     not): run directory files of different jobs differ */
} tg__rank;

/* Fill *out from the launcher's variables (Open MPI OMPI_COMM_WORLD_*,
 * PMIx PMIX_RANK and PMIX_SIZE or OMPI's size, Slurm SLURM_PROCID and
 * SLURM_NTASKS, MPICH/Hydra PMI_RANK and PMI_SIZE, or the PMI-1 server of
 * PMI_PORT and PMI_ID). TG_ENOTFOUND when no
 * launcher's variables are set (err says which were looked for),
 * TG_EINVAL when they are malformed (err names the variable). */
int tg__launch_rank(tg__rank *out /* OUT */, tg_error *err);

typedef struct tg__kvx tg__kvx;

/* Open the exchange: PMIx through libpmix.so.2 when the launcher runs a
 * PMIx server, else the PMI-1 server of PMI_FD or PMI_PORT, else files in
 * run_dir (may be NULL: then neither is an error saying so). timeout: seconds a fence waits for the other ranks.
 * The rank is copied. */
int tg__kvx_open(const tg__rank *r, const char *run_dir, double timeout,
                 tg__kvx **out /* OUT */, tg_error *err);
/* "PMIx", "PMI-1" or "run directory" (static). */
const char *tg__kvx_kind(const tg__kvx *x);
/* key: up to 63 bytes of [a-z0-9.]; val: text without newlines, copied. */
int tg__kvx_put(tg__kvx *x, const char *key, const char *val, tg_error *err);
/* Publish what was put and wait for every rank to do so; TG_ETIMEDOUT
 * naming the ranks missing after the timeout. */
int tg__kvx_fence(tg__kvx *x, tg_error *err);
/* Rank r's value of key as of the last fence, in *out (free()).
 * TG_ENOTFOUND when r put no such key. */
int tg__kvx_get(tg__kvx *x, unsigned r, const char *key, char **out /* OUT */,
                tg_error *err);
/* Leave the exchange. The run directory's files of this rank are removed:
 * call it after the last fence whose values others read. x may be NULL. */
void tg__kvx_close(tg__kvx *x);

/* ---- the transports (exchange.c dispatches) ---- */
typedef struct tg__kvx_ops {
  int (*put)(void *impl, const char *key, const char *val, tg_error *err);
  int (*fence)(void *impl, tg_error *err);
  int (*get)(void *impl, unsigned r, const char *key, char **out, tg_error *err);
  void (*close)(void *impl);
} tg__kvx_ops;

/* TG_ENOTFOUND (err says why) when no PMIx library or server is there. */
int tg__pmix_open(const tg__rank *r, double timeout, void **impl,
                  const tg__kvx_ops **ops, tg_error *err);
/* TG_ENOTFOUND (err says why) when neither PMI_FD nor PMI_PORT is set;
 * any other failure names the server, the request and its reply. */
int tg__pmi1_open(const tg__rank *r, double timeout, void **impl,
                  const tg__kvx_ops **ops, tg_error *err);
/* With PMI_PORT and PMI_ID (Hydra's -pmi-port: no PMI_RANK or PMI_SIZE)
 * the server tells the rank and size: connect and ask, once; the
 * connection is kept for tg__pmi1_open. */
int tg__pmi1_port_rank(unsigned *rank, unsigned *size, tg_error *err);
int tg__rundir_open(const tg__rank *r, const char *dir, double timeout,
                    void **impl, const tg__kvx_ops **ops, tg_error *err);

/* ---- network addresses and the driver's lifeline ---- */

/* The address this host's workers listen on: `want` (an interface name
 * such as eth0, a host name or an IP address) or, when NULL, the host
 * name's address; loopback when same_host. Written to buf as text. */
int tg__launch_address(const char *want, bool same_host, char *buf, size_t size,
                       tg_error *err);

/* The driver's lifeline: a listening tcp socket whose connections stay
 * open while the driver's process lives. Workers connect and stop
 * serving when theirs ends (the driver exited, normally or not), so no
 * rank outlives the driver. tg__lifeline_listen starts a thread that
 * accepts and holds the connections until the process exits; *port is
 * the port bound on all of this host's addresses. */
int tg__lifeline_listen(unsigned *port /* OUT */, tg_error *err);
/* Connect to host:port and start a thread that sets *stop when the
 * connection ends. */
int tg__lifeline_watch(const char *host, unsigned port, volatile sig_atomic_t *stop,
                       tg_error *err);

#endif /* TG_LAUNCH_H */
