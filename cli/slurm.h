/* cli/slurm.h: `tgraph run --scheduler=slurm`: worker jobs on a Slurm
 * cluster.
 *
 * slurm.c, the batch system: one job array submitted with sbatch, its
 * jobs' states read with squeue (at most one call per
 * CLI_SLURM_POLL_SECS, however often asked), the array cancelled with
 * scancel.
 *   1. cli_slurm_submit()   sbatch --parsable --array=0-(N-1) SCRIPT
 *   2. cli_slurm_poll()     any number of times, from any thread
 *   3. cli_slurm_cancel()   scancel the array (nothing when not submitted)
 *   4. cli_slurm_free()
 *
 * slurm_run.c, the run: a run directory with per-run keys and the job
 * script, the tcp executor the workers join, a watcher thread that
 * reports jobs that do not start and stops the run when every job has
 * ended without a worker left.
 *
 * Thread safety: cli_slurm_poll may be called from several threads;
 * submit, cancel and free from one, when no poll runs.
 */
#ifndef TGRAPH_CLI_SLURM_H
#define TGRAPH_CLI_SLURM_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#include "tgraph.h"
#include "tgraph/graphjson.h"

/* The fewest seconds between two squeue calls of a run. */
#define CLI_SLURM_POLL_SECS 10.0
/* Seconds before their time limit at which worker jobs are sent SIGUSR1
 * (sbatch --signal=USR1@SECS) to drain, unless a --job-opt says. */
#define CLI_SLURM_WARN_SECS 180

typedef enum cli_slurm_state {
  CLI_SLURM_UNKNOWN = 0, /* not listed yet */
  CLI_SLURM_PENDING,
  CLI_SLURM_RUNNING,
  CLI_SLURM_ENDED,       /* completing, completed, failed, cancelled, ... */
} cli_slurm_state;

typedef struct cli_slurm {
  char id[32];              /* the array's job id; "" before submit, after cancel */
  unsigned njobs;
  pthread_mutex_t mu;       /* guards what follows (poll) */
  bool mu_ok, polled, squeue_said;
  double last_poll;         /* cli_now() of the last squeue */
  unsigned npolls;          /* squeue calls made */
  cli_slurm_state *state;   /* per array index, from the last squeue */
  char **warned;            /* per index: the pending reason said, or NULL */
} cli_slurm;

typedef struct cli_slurm_submit_opts {
  const char *script;       /* the job script (a file on a shared filesystem) */
  const char *dir;          /* the run directory: worker-INDEX.out/.err */
  unsigned njobs;           /* >= 1 */
  const char *const *opts;  /* sbatch options (--job-opt), after tgraph's */
  size_t nopts;
  unsigned warn_secs;       /* --signal=USR1@warn_secs */
} cli_slurm_submit_opts;

typedef struct cli_slurm_counts {
  unsigned pending, running, ended, unknown;
  unsigned polls;           /* squeue calls so far */
} cli_slurm_counts;

/* Submit the array. -1 on success (s->id set), else an exit status after
 * a message: sbatch not in PATH, or sbatch's own message when it refused
 * (a bad --job-opt, no such partition, ...). Call cli_slurm_free after
 * either. */
int cli_slurm_submit(cli_slurm *s, const cli_slurm_submit_opts *o);
/* The jobs' states, from squeue when the last call is CLI_SLURM_POLL_SECS
 * old (now: cli_now()), else from that call. Pending reasons other than
 * the queue's usual ones are said on stderr once per job and reason. */
void cli_slurm_poll(cli_slurm *s, double now, cli_slurm_counts *out /* OUT */);
/* After submit: a second SIGINT/SIGTERM, which ends the run at once
 * (interrupt.c), cancels the array on its way out. One array per
 * process. */
void cli_slurm_arm(cli_slurm *s);
/* scancel the array; a failure is said. */
void cli_slurm_cancel(cli_slurm *s);
void cli_slurm_free(cli_slurm *s);

/* A job's time left as squeue prints it (%L): [D-]HH:MM:SS, H:MM:SS or
 * M:SS (minutes and seconds of two digits under 60, hours under 24 after
 * days), or UNLIMITED (INFINITY); surrounding blanks allowed, nothing
 * else. False for anything else (NOT_SET, INVALID, ...). */
bool cli_slurm_parse_left(const char *s, double *secs /* OUT */);
/* Ask Slurm once for job's time left (squeue, at most ~4 s); false with
 * why when that fails. */
bool cli_slurm_time_left(const char *job, double *secs /* OUT */, char *why, size_t size);

/* ---- slurm_run.c ---- */

/* What `tgraph run` was told. */
typedef struct cli_slurm_run_opts {
  unsigned jobs;              /* --jobs N */
  const char *const *job_opts; /* --job-opt OPT, in order */
  size_t njob_opts;
  const char *run_dir;        /* --run-dir DIR, or NULL: ./tgraph-slurm-PID */
  const char *join_listen;    /* --join-listen ADDR, or NULL: this host's
                                 first address, a free port */
} cli_slurm_run_opts;

typedef struct cli_slurm_run {
  cli_slurm jobs;
  char dir[PATH_MAX], keys[PATH_MAX + 8], script[PATH_MAX + 16];
  bool started, made_dir, made_keys, watching, said;
  tg_cancel *cancel;          /* the run's, raised when the watcher gives up */
  tg_executor *ex;            /* borrowed: the caller frees it */
  pthread_t thread;           /* the watcher */
  pthread_mutex_t mu;         /* guards stop and gave_up */
  pthread_cond_t cv;
  bool stop, gave_up;
} cli_slurm_run;

/* Make the run directory and its keys, start the tcp executor that the
 * workers join (*out: the caller frees it, before cli_slurm_run_finish;
 * it may be set on failure too), write the job script, submit the jobs.
 * -1 to go on, else an exit status (said). Call cli_slurm_run_finish
 * after either. */
int cli_slurm_run_start(cli_slurm_run *r, const cli_slurm_run_opts *o,
                        const tg_graphjson_info *info, tg_registry *reg, tg_cancel *cancel,
                        tg_executor **out /* OUT */);
/* After the compute: stop the watcher; true when it stopped the run
 * because every job ended with no worker left (said on stderr). */
bool cli_slurm_run_gave_up(cli_slurm_run *r);
/* Cancel the jobs, remove the keys, and the run directory too when it
 * is the default one and ok (else its path is said, for the logs).
 * Nothing when not started; may be called twice. */
void cli_slurm_run_finish(cli_slurm_run *r, bool ok);

#endif /* TGRAPH_CLI_SLURM_H */
