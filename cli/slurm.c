/* cli/slurm.c: the batch system under `tgraph run --scheduler=slurm`:
 * worker jobs submitted as ONE job array with sbatch, their states read
 * with squeue at most once per CLI_SLURM_POLL_SECS whatever the caller
 * asks (the controller serves every user of the cluster: a run never
 * polls per task), and the array cancelled with scancel. It knows
 * Slurm's commands, not tgraph's engine: the job script is the caller's
 * (slurm_run.c). Commands run with posix_spawnp; their output is read
 * through pipes, bounded. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"
#include "slurm.h"

extern char **environ;

/* The most bytes kept of a command's stdout (squeue lists a line of
 * ~40 bytes per job: 1 MiB is tens of thousands) and stderr. */
#define OUT_MAX ((size_t)1 << 20)
#define ERR_MAX ((size_t)4096)

typedef struct captured {
  char *out; /* stdout, NUL-terminated (owned) */
  size_t nout;
  char err[ERR_MAX + 1]; /* stderr, NUL-terminated, trailing newlines cut */
  size_t nerr;
  int status; /* exit status; 128 + signal number when killed */
} captured;

static void keep(char *buf, size_t *n, size_t max, const char *data, size_t len) {
  size_t room = max - *n;
  if (len > room) len = room;
  memcpy(buf + *n, data, len);
  *n += len;
  buf[*n] = '\0';
}

/* Read both pipes until both end (a full stderr pipe must not stall a
 * command while stdout is read). */
static void drain(int fo, int fe, captured *c) {
  struct pollfd p[2] = {{fo, POLLIN, 0}, {fe, POLLIN, 0}};
  char chunk[4096];
  while (p[0].fd >= 0 || p[1].fd >= 0) {
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (int i = 0; i < 2; i++) {
      if (p[i].fd < 0 || !p[i].revents) continue;
      ssize_t k = read(p[i].fd, chunk, sizeof chunk);
      if (k < 0 && errno == EINTR) continue;
      if (k <= 0) {
        close(p[i].fd);
        p[i].fd = -1;
      } else if (i == 0) {
        keep(c->out, &c->nout, OUT_MAX, chunk, (size_t)k);
      } else {
        keep(c->err, &c->nerr, ERR_MAX, chunk, (size_t)k);
      }
    }
  }
  if (p[0].fd >= 0) close(p[0].fd);
  if (p[1].fd >= 0) close(p[1].fd);
  while (c->nerr && (c->err[c->nerr - 1] == '\n' || c->err[c->nerr - 1] == '\r'))
    c->err[--c->nerr] = '\0';
}

/* Run argv[0] (looked up in PATH) with stdin from /dev/null; its outputs
 * into *c. 0, or -errno when it could not be started (ENOENT: not in
 * PATH). The caller frees c->out. */
static int run_cmd(char *const argv[], captured *c) {
  memset(c, 0, sizeof *c);
  if (!(c->out = malloc(OUT_MAX + 1))) return -ENOMEM;
  c->out[0] = '\0';
  int po[2], pe[2];
  if (pipe2(po, O_CLOEXEC) != 0) return -errno;
  if (pipe2(pe, O_CLOEXEC) != 0) {
    int e = errno;
    close(po[0]), close(po[1]);
    return -e;
  }
  posix_spawn_file_actions_t fa;
  posix_spawnattr_t at;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&fa, po[1], 1);
  posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
  /* The command gets default signal handling and an empty mask, whatever
   * the run set up for its own threads. */
  posix_spawnattr_init(&at);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&at, &none);
  posix_spawnattr_setsigdefault(&at, &all);
  posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  pid_t pid;
  int rc = posix_spawnp(&pid, argv[0], &fa, &at, argv, environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&at);
  close(po[1]);
  close(pe[1]);
  if (rc != 0) {
    close(po[0]), close(pe[0]);
    return -rc;
  }
  drain(po[0], pe[0], c);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  c->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
  return 0;
}

/* "sbatch not found" and the like, for a command that did not start. */
static void not_started(const char *cmd, int rc) {
  if (rc == -ENOENT)
    cli_error("--scheduler=slurm: '%s' is not in PATH: run on a host where Slurm's "
              "commands (sbatch, squeue, scancel) are installed", cmd);
  else
    cli_error("--scheduler=slurm: cannot run '%s': %s", cmd, strerror(-rc));
}

/* ---- submit ---- */

int cli_slurm_submit(cli_slurm *s, const cli_slurm_submit_opts *o) {
  memset(s, 0, sizeof *s);
  s->njobs = o->njobs;
  s->warned = calloc(o->njobs, sizeof *s->warned);
  s->state = calloc(o->njobs, sizeof *s->state);
  if (!s->warned || !s->state) {
    cli_error("out of memory");
    return CLI_USAGE;
  }
  pthread_mutex_init(&s->mu, NULL);
  s->mu_ok = true;
  char array[64], out[4200], err[4200], sig[64];
  snprintf(array, sizeof array, "--array=0-%u", o->njobs - 1);
  snprintf(out, sizeof out, "--output=%s/worker-%%a.out", o->dir);
  snprintf(err, sizeof err, "--error=%s/worker-%%a.err", o->dir);
  snprintf(sig, sizeof sig, "--signal=USR1@%u", o->warn_secs);
  size_t n = 0;
  char **argv = calloc(o->nopts + 12, sizeof *argv);
  if (!argv) {
    cli_error("out of memory");
    return CLI_USAGE;
  }
  argv[n++] = "sbatch";
  argv[n++] = "--parsable";
  argv[n++] = "--job-name=tgraph-worker";
  argv[n++] = array;
  argv[n++] = out;
  argv[n++] = err;
  argv[n++] = sig;
  for (size_t i = 0; i < o->nopts; i++) argv[n++] = (char *)o->opts[i]; /* theirs win */
  argv[n++] = (char *)o->script;
  argv[n] = NULL;
  captured c;
  int rc = run_cmd(argv, &c);
  free(argv);
  if (rc != 0) {
    free(c.out);
    not_started("sbatch", rc);
    return CLI_USAGE;
  }
  /* --parsable: "ID" or "ID;CLUSTER" on the first line. */
  size_t len = strcspn(c.out, ";\r\n");
  bool numeric = len > 0 && len < sizeof s->id && strspn(c.out, "0123456789") == len;
  if (c.status != 0 || !numeric) {
    cli_error("sbatch refused the worker jobs (exit status %d): %s", c.status,
              c.nerr ? c.err : c.nout ? c.out : "no message");
    free(c.out);
    return CLI_USAGE;
  }
  memcpy(s->id, c.out, len);
  s->id[len] = '\0';
  if (c.nerr && cli_verbosity > 0) cli_info("sbatch: %s", c.err);
  free(c.out);
  return -1;
}

/* ---- poll ---- */

static cli_slurm_state state_of(const char *t) {
  if (strcmp(t, "PENDING") == 0 || strcmp(t, "REQUEUED") == 0 ||
      strcmp(t, "REQUEUE_HOLD") == 0 || strcmp(t, "REQUEUE_FED") == 0 ||
      strcmp(t, "SUSPENDED") == 0 || strcmp(t, "RESV_DEL_HOLD") == 0)
    return CLI_SLURM_PENDING;
  if (strcmp(t, "RUNNING") == 0 || strcmp(t, "CONFIGURING") == 0 ||
      strcmp(t, "RESIZING") == 0 || strcmp(t, "SIGNALING") == 0 ||
      strcmp(t, "STAGE_OUT") == 0)
    return CLI_SLURM_RUNNING;
  return CLI_SLURM_ENDED; /* COMPLETING, COMPLETED, FAILED, TIMEOUT, ... */
}

/* One line "ID_INDEX|STATE|REASON" of squeue (mu held). */
static void read_line(cli_slurm *s, char *line) {
  char *bar1 = strchr(line, '|'), *bar2 = bar1 ? strchr(bar1 + 1, '|') : NULL;
  char *us = strchr(line, '_');
  if (!bar2 || !us || us > bar1) return;
  *bar1 = *bar2 = '\0';
  char *end;
  unsigned long i = strtoul(us + 1, &end, 10);
  if (end != bar1 || i >= s->njobs) return; /* "123_[0-2]" does not come with -r */
  cli_slurm_state st = state_of(bar1 + 1);
  s->state[i] = st;
  if (st != CLI_SLURM_PENDING) return;
  const char *why = bar2 + 1;
  /* A pending reason once per job and reason: "Priority" and "None"
   * (not looked at yet) are a queue's normal life, said only with -v. */
  bool usual = strcmp(why, "None") == 0 || strcmp(why, "Priority") == 0;
  if ((usual && cli_verbosity < 1) || (s->warned[i] && strcmp(s->warned[i], why) == 0))
    return;
  cli_warn("slurm: worker job %s_%lu is pending: %s", s->id, i, why);
  free(s->warned[i]);
  s->warned[i] = strdup(why);
}

/* squeue over the array (mu held): every job's state. */
static void squeue(cli_slurm *s) {
  char job[80];
  snprintf(job, sizeof job, "--jobs=%s", s->id);
  char *argv[] = {"squeue", "--noheader", "--array", "--states=all", job,
                  "--format=%i|%T|%r", NULL};
  captured c;
  int rc = run_cmd(argv, &c);
  s->npolls++;
  s->polled = true;
  if (rc != 0) {
    if (!s->squeue_said) not_started("squeue", rc);
    s->squeue_said = true;
    free(c.out);
    return;
  }
  /* Jobs gone from the controller's memory are not listed (or, all
   * gone, "Invalid job id"): ended. */
  for (unsigned i = 0; i < s->njobs; i++)
    if (s->state[i] != CLI_SLURM_UNKNOWN) s->state[i] = CLI_SLURM_ENDED;
  if (c.status != 0 && !strstr(c.err, "Invalid job id") && !s->squeue_said) {
    cli_warn("slurm: squeue failed (exit status %d): %s", c.status, c.err);
    s->squeue_said = true;
  }
  for (char *save, *l = strtok_r(c.out, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
    read_line(s, l);
  free(c.out);
}

void cli_slurm_poll(cli_slurm *s, double now, cli_slurm_counts *out) {
  pthread_mutex_lock(&s->mu);
  if (!s->polled || now - s->last_poll >= CLI_SLURM_POLL_SECS) {
    s->last_poll = now;
    squeue(s);
  }
  memset(out, 0, sizeof *out);
  for (unsigned i = 0; i < s->njobs; i++) {
    switch (s->state[i]) {
      case CLI_SLURM_PENDING: out->pending++; break;
      case CLI_SLURM_RUNNING: out->running++; break;
      case CLI_SLURM_ENDED: out->ended++; break;
      default: out->unknown++; break; /* never seen: submitted but not listed yet */
    }
  }
  out->polls = s->npolls;
  pthread_mutex_unlock(&s->mu);
}

/* ---- time left (a worker inside a job) ---- */

/* A run of 1 to 9 digits at *p, and how many. */
static int digits(const char *p, unsigned long *v) {
  int n = 0;
  *v = 0;
  while (p[n] >= '0' && p[n] <= '9' && n < 9) *v = *v * 10 + (unsigned long)(p[n++] - '0');
  return p[n] >= '0' && p[n] <= '9' ? 0 : n;
}

bool cli_slurm_parse_left(const char *s, double *secs) {
  while (*s == ' ' || *s == '\t') s++;
  size_t len = strcspn(s, " \t\r\n");
  if (s[len + strspn(s + len, " \t\r\n")] != '\0') return false; /* one word only */
  if (len == 9 && strncmp(s, "UNLIMITED", 9) == 0) {
    *secs = INFINITY;
    return true;
  }
  unsigned long f[4] = {0}, v;
  int nf = 0, n;
  bool days = false;
  const char *p = s, *end = s + len;
  if ((n = digits(p, &v)) == 0) return false;
  p += n;
  if (*p == '-') { /* D-HH:MM:SS */
    days = true;
    f[nf++] = v;
    p++;
    if ((n = digits(p, &v)) == 0) return false;
    p += n;
  }
  f[nf++] = v;
  while (p < end && *p == ':' && nf < 4) {
    p++;
    /* minutes and seconds after the first field: two digits, under 60 */
    if ((n = digits(p, &v)) != 2 || v >= 60) return false;
    f[nf++] = v;
    p += n;
  }
  if (p != end || (days ? nf != 4 : nf < 2 || nf > 3)) return false;
  double t = 0;
  if (days) t = (double)f[0] * 86400 + (double)f[1] * 3600 + (double)f[2] * 60 + (double)f[3];
  else if (nf == 3) t = (double)f[0] * 3600 + (double)f[1] * 60 + (double)f[2];
  else t = (double)f[0] * 60 + (double)f[1];
  if (days && f[1] >= 24) return false;
  *secs = t;
  return true;
}

bool cli_slurm_time_left(const char *job, double *secs, char *why, size_t size) {
  /* Bounded: the worker serves no message while it waits (coreutils'
   * timeout, as Slurm's hosts have it). */
  char *argv[] = {"timeout", "-k", "1", "3", "squeue", "--noheader", "--jobs", (char *)job,
                  "--format=%L", NULL};
  captured c;
  int rc = run_cmd(argv, &c);
  bool ok = false;
  if (rc != 0)
    snprintf(why, size, "cannot run 'timeout squeue': %s", strerror(-rc));
  else if (c.status == 124 || c.status == 128 + SIGKILL)
    snprintf(why, size, "squeue did not answer within 3 s");
  else if (c.status != 0)
    snprintf(why, size, "squeue failed (exit status %d): %s", c.status, c.err);
  else if (!(ok = cli_slurm_parse_left(c.out, secs)))
    snprintf(why, size, "squeue said '%.60s', not a time left", c.out);
  free(c.out);
  return ok;
}

/* ---- cancel ---- */

/* What cancel_now needs, made before any signal can come: a signal
 * handler may only call async-signal-safe functions (fork, execve). */
static char scancel_path[PATH_MAX], scancel_id[32];
static char *scancel_argv[3] = {"scancel", scancel_id, NULL};
static volatile sig_atomic_t scancel_ready;

static void cancel_now(void) {
  if (!scancel_ready) return;
  pid_t pid = fork();
  if (pid == 0) {
    execve(scancel_path, scancel_argv, environ);
    _exit(127);
  }
}

/* scancel in PATH, into scancel_path; false when not there. */
static bool find_scancel(void) {
  const char *path = getenv("PATH");
  char dirs[4096];
  snprintf(dirs, sizeof dirs, "%s", path ? path : "/usr/bin:/bin");
  for (char *save, *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
    int n = snprintf(scancel_path, sizeof scancel_path, "%s/scancel", *d ? d : ".");
    if (n > 0 && (size_t)n < sizeof scancel_path && access(scancel_path, X_OK) == 0)
      return true;
  }
  return false;
}

void cli_slurm_arm(cli_slurm *s) {
  if (!s->id[0] || !find_scancel()) return;
  snprintf(scancel_id, sizeof scancel_id, "%s", s->id);
  scancel_ready = 1;
  cli_interrupt_last_words(cancel_now);
}

void cli_slurm_cancel(cli_slurm *s) {
  if (!s->id[0]) return;
  scancel_ready = 0; /* cancelled here, said if it fails */
  cli_interrupt_last_words(NULL);
  char *argv[] = {"scancel", s->id, NULL};
  captured c;
  int rc = run_cmd(argv, &c);
  if (rc != 0) not_started("scancel", rc);
  else if (c.status != 0)
    cli_warn("slurm: scancel %s failed (exit status %d): %s; cancel the worker jobs "
             "yourself", s->id, c.status, c.err);
  else if (cli_verbosity > 0)
    cli_info("slurm: cancelled the worker jobs (array %s)", s->id);
  free(c.out);
  s->id[0] = '\0';
}

void cli_slurm_free(cli_slurm *s) {
  for (unsigned i = 0; s->warned && i < s->njobs; i++) free(s->warned[i]);
  free(s->warned);
  free(s->state);
  if (s->mu_ok) pthread_mutex_destroy(&s->mu);
  memset(s, 0, sizeof *s);
}
