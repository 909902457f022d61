/* cli/slurm_run.c: the run of `tgraph run --scheduler=slurm --jobs N`:
 * a run directory (on a filesystem the nodes share) holding per-run keys
 * (keys/, mode 0700, removed at the end), the job script and the jobs'
 * output; a tcp executor that workers join (tg_executor_opts.join_listen);
 * N worker jobs submitted as one array (slurm.c) whose script starts
 * `tgraph worker --join ADDRESS` with those keys, each worker used as soon
 * as it registers; a watcher thread that polls the jobs gently and stops
 * the run when every job has ended with no worker left. At the end the
 * array is cancelled, whatever ended the run (success, failure,
 * SIGINT/SIGTERM).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "slurm.h"
#include "tgraph/remote.h"

/* How long the run waits with no worker connected: the watcher, not a
 * timeout, ends a run whose jobs are all gone; pending jobs may wait for
 * hours. */
#define NO_WORKER_SECS (365 * 86400.0)

/* The watcher's rhythm: it looks at the workers every second; squeue
 * runs only once per CLI_SLURM_POLL_SECS of these (slurm.c). */
#define WATCH_SECS 1.0

/* ---- the run directory ---- */

/* Single quotes for sh: ' becomes '\''. */
static void put_quoted(FILE *f, const char *s) {
  fputc('\'', f);
  for (; *s; s++) {
    if (*s == '\'') fputs("'\\''", f);
    else fputc(*s, f);
  }
  fputc('\'', f);
}

static int make_dir(cli_slurm_run *r, const cli_slurm_run_opts *o) {
  char cwd[PATH_MAX];
  if (!getcwd(cwd, sizeof cwd)) {
    cli_error("--scheduler=slurm: cannot get the current directory: %s", strerror(errno));
    return CLI_USAGE;
  }
  int n;
  if (o->run_dir && o->run_dir[0] == '/') n = snprintf(r->dir, sizeof r->dir, "%s", o->run_dir);
  else if (o->run_dir) n = snprintf(r->dir, sizeof r->dir, "%s/%s", cwd, o->run_dir);
  else n = snprintf(r->dir, sizeof r->dir, "%s/tgraph-slurm-%ld", cwd, (long)getpid());
  if (n < 0 || (size_t)n + 64 >= sizeof r->dir) {
    cli_error("--run-dir: path too long: %s", o->run_dir ? o->run_dir : cwd);
    return CLI_USAGE;
  }
  if (mkdir(r->dir, 0755) != 0 && (errno != EEXIST || !o->run_dir)) {
    cli_error("--scheduler=slurm: cannot create the run directory '%s': %s", r->dir,
              strerror(errno));
    return CLI_USAGE;
  }
  r->made_dir = !o->run_dir;
  snprintf(r->keys, sizeof r->keys, "%s/keys", r->dir);
  if (mkdir(r->keys, 0700) != 0) {
    cli_error("--scheduler=slurm: cannot create '%s': %s%s", r->keys, strerror(errno),
              errno == EEXIST ? " (is another run using this run directory?)" : "");
    return CLI_USAGE;
  }
  r->made_keys = true;
  tg_error err;
  tg_error_clear(&err);
  if (tg_keys_generate(r->keys, &err) != TG_OK) {
    cli_error("--scheduler=slurm: %s", err.msg);
    return CLI_USAGE;
  }
  return -1;
}

/* The job script: the worker runs as a job step (srun), so that Slurm's
 * signals for the job's steps reach it: sbatch --signal=USR1@SECS before
 * the time limit, `scancel --signal=USR1 JOB` by hand (and `scancel
 * --batch`: srun forwards it). It listens on the node's first address. */
static int write_script(cli_slurm_run *r, const tg_graphjson_info *info,
                        const char *join) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) {
    cli_error("--scheduler=slurm: cannot find this program's path: %s", strerror(errno));
    return CLI_USAGE;
  }
  exe[n] = '\0';
  snprintf(r->script, sizeof r->script, "%s/worker.sh", r->dir);
  FILE *f = fopen(r->script, "w");
  if (!f) {
    cli_error("--scheduler=slurm: cannot write '%s': %s", r->script, strerror(errno));
    return CLI_USAGE;
  }
  fprintf(f, "#!/bin/sh\n"
             "# A worker of one `tgraph run --scheduler=slurm`, which wrote this\n"
             "# script, submits it as a job array and cancels the array at its end.\n"
             "# SIGUSR1 (sbatch --signal, scancel --signal=USR1) drains the worker.\n"
             "host=$(hostname -I 2>/dev/null | cut -d' ' -f1)\n"
             "exec srun --ntasks=1 ");
  put_quoted(f, exe);
  fputs(" worker --join ", f);
  put_quoted(f, join);
  fputs(" --keys ", f);
  char kw[PATH_MAX + 16];
  snprintf(kw, sizeof kw, "%s/worker", r->keys);
  put_quoted(f, kw);
  fputs(" --listen \"tcp://${host:-127.0.0.1}:*\" --nthreads \"${SLURM_CPUS_ON_NODE:-0}\"", f);
  /* Warned (sbatch --signal) this long before its time limit, a worker
   * may go on taking tasks that end by then: the same figure for both. */
  fprintf(f, " --drain-time %u", CLI_SLURM_WARN_SECS);
  if (cli_verbosity > 0) fputs(" -v", f);
  for (size_t i = 0; i < info->nplugins; i++) {
    fputs(" --plugin ", f);
    put_quoted(f, info->plugins[i].path);
  }
  fputc('\n', f);
  if (fclose(f) != 0 || chmod(r->script, 0755) != 0) {
    cli_error("--scheduler=slurm: cannot write '%s': %s", r->script, strerror(errno));
    return CLI_USAGE;
  }
  return -1;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
  (void)st, (void)ftw;
  if (flag == FTW_DP) rmdir(path);
  else unlink(path);
  return 0;
}

static void remove_tree(const char *path) {
  nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the join address ---- */

/* Where workers join: --join-listen, else this host's first address that
 * is up and not loopback (the nodes' way back to it), or loopback when
 * there is none; the port is picked when listening. */
static void join_listen(const char *given, char *buf, size_t size) {
  if (given) {
    snprintf(buf, size, "%s", given);
    return;
  }
  char host[INET_ADDRSTRLEN] = "127.0.0.1";
  struct ifaddrs *all = NULL;
  if (getifaddrs(&all) == 0) {
    for (struct ifaddrs *i = all; i; i = i->ifa_next)
      if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_UP) &&
          !(i->ifa_flags & IFF_LOOPBACK)) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)i->ifa_addr)->sin_addr, host, sizeof host);
        break;
      }
    freeifaddrs(all);
  }
  snprintf(buf, size, "tcp://%s:0", host);
}

/* ---- the watcher ---- */

static void *watch(void *arg) {
  cli_slurm_run *r = arg;
  pthread_mutex_lock(&r->mu);
  while (!r->stop) {
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += (time_t)WATCH_SECS;
    pthread_cond_timedwait(&r->cv, &r->mu, &t);
    if (r->stop) break;
    pthread_mutex_unlock(&r->mu);
    cli_slurm_counts c;
    cli_slurm_poll(&r->jobs, cli_now(), &c);
    tg_remote_stats st;
    bool none = tg_remote_stats_get(r->ex, &st) == TG_OK && st.workers_ready == 0;
    pthread_mutex_lock(&r->mu);
    if (none && c.pending + c.running + c.unknown == 0 && !r->stop) {
      r->gave_up = true;
      tg_cancel_set(r->cancel);
      break;
    }
  }
  pthread_mutex_unlock(&r->mu);
  return NULL;
}

/* ---- start and finish ---- */

/* The executor the workers join; its join address into join. */
static int start_executor(cli_slurm_run *r, const cli_slurm_run_opts *o, tg_registry *reg,
                          tg_executor **out, char *join, size_t size) {
  char listen[300], kc[PATH_MAX + 16];
  join_listen(o->join_listen, listen, sizeof listen);
  snprintf(kc, sizeof kc, "%s/client", r->keys);
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V2, .backend = "tcp",
                         .keys_dir = kc, .join_listen = listen,
                         .connect_timeout = NO_WORKER_SECS};
  tg_error err;
  tg_error_clear(&err);
  if (tg_executor_new(reg, &eo, out, &err) != TG_OK) {
    cli_error("%s", err.msg);
    return CLI_USAGE;
  }
  int rc = tg_remote_join_address(*out, join, size);
  if (rc != TG_OK) {
    cli_error("--scheduler=slurm: no join address: %s", tg_strerror(rc));
    return CLI_USAGE;
  }
  if (cli_verbosity > 0) cli_info("slurm: workers join at %s", join);
  return -1;
}

int cli_slurm_run_start(cli_slurm_run *r, const cli_slurm_run_opts *o,
                        const tg_graphjson_info *info, tg_registry *reg, tg_cancel *cancel,
                        tg_executor **out) {
  memset(r, 0, sizeof *r);
  r->started = true;
  r->cancel = cancel;
  if (o->jobs == 0) {
    cli_error("--scheduler=slurm needs --jobs N: the number of worker jobs to submit");
    return CLI_USAGE;
  }
  char join[512];
  int rc = make_dir(r, o);
  if (rc < 0) rc = start_executor(r, o, reg, out, join, sizeof join);
  if (rc < 0) rc = write_script(r, info, join);
  if (rc >= 0) return rc;
  cli_slurm_submit_opts so = {r->script, r->dir, o->jobs, o->job_opts, o->njob_opts,
                              CLI_SLURM_WARN_SECS};
  if ((rc = cli_slurm_submit(&r->jobs, &so)) >= 0) return rc;
  cli_slurm_arm(&r->jobs);
  cli_info("slurm: submitted %u worker job%s (array %s); run directory %s", o->jobs,
           o->jobs == 1 ? "" : "s", r->jobs.id, r->dir);
  r->ex = *out;
  pthread_mutex_init(&r->mu, NULL);
  pthread_cond_init(&r->cv, NULL);
  if (pthread_create(&r->thread, NULL, watch, r) != 0) {
    cli_error("cannot start a thread: %s", strerror(errno));
    return CLI_USAGE;
  }
  r->watching = true;
  return -1;
}

bool cli_slurm_run_gave_up(cli_slurm_run *r) {
  if (r->watching) {
    pthread_mutex_lock(&r->mu);
    r->stop = true;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    r->watching = false;
  }
  if (r->gave_up && !r->said)
    cli_error("slurm: every worker job has ended and no worker is left (array %s): see "
              "%s/worker-*.err", r->jobs.id, r->dir);
  r->said = true;
  return r->gave_up;
}

void cli_slurm_run_finish(cli_slurm_run *r, bool ok) {
  if (!r->started) return;
  cli_slurm_run_gave_up(r);
  bool submitted = r->jobs.id[0] != '\0'; /* else there are no logs to keep */
  cli_slurm_cancel(&r->jobs);
  if (cli_verbosity > 0 && r->jobs.njobs)
    cli_info("slurm: %u squeue call%s", r->jobs.npolls, r->jobs.npolls == 1 ? "" : "s");
  cli_slurm_free(&r->jobs);
  if (r->made_keys) remove_tree(r->keys);
  if (r->made_dir && (ok || !submitted)) remove_tree(r->dir);
  else if (r->made_dir && r->dir[0]) cli_info("slurm: worker logs kept in %s", r->dir);
  r->started = false;
}
