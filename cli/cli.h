/* cli/cli.h: what the tgraph program's files share: one entry point per
 * subcommand, the run's event recorder, and small helpers. The program
 * uses only the public API of libtgraph. */
#ifndef TGRAPH_CLI_H
#define TGRAPH_CLI_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "tgraph.h"
#include "tgraph/dashboard.h"
#include "tgraph/graphjson.h"

/* Exit statuses. */
enum { CLI_OK = 0, CLI_TASK_FAILED = 1, CLI_USAGE = 2 };

/* Subcommands: argv[0] is the subcommand's name. Return the exit status. */
int cli_run(int argc, char **argv);
int cli_inspect(int argc, char **argv);
int cli_cache(int argc, char **argv);
int cli_version(int argc, char **argv);
int cli_worker(int argc, char **argv);
int cli_keys(int argc, char **argv);
int cli_code_id(int argc, char **argv);

/* ---- opts.c: the option parser of every subcommand ---- */
/* One option of a command. A table of them ends with an entry whose name
 * is NULL. -h/--help is every command's own and is not listed. */
typedef struct cli_opt {
  int id;             /* handed to the command's set() (non-zero) */
  const char *name;   /* the long name without "--": "workers" */
  char letter;        /* the short name ('j' for -j), or 0 */
  const char *value;  /* NULL: a flag; else the option takes a value,
                         named so in the help ("N", "DIR"); "=ADDR": the
                         value may be left out, and is then given only
                         as --name=ADDR (set() gets NULL without one) */
  const char *help;   /* its help; '\n' starts another line */
} cli_opt;

typedef struct cli_cmd {
  const char *name;     /* "run", "cache prune": messages start "tgraph NAME:" */
  const char *synopsis; /* after "usage: tgraph NAME ": "[options] GRAPH.json" */
  const char *about;    /* help text before the options, or NULL */
  const cli_opt *opts;      /* NULL: none but --help */
  const cli_opt *inherited; /* the parent command's options, accepted here
                               too (cache's --cache-dir after its
                               subcommand), or NULL */
  const char *more;     /* help text after the options, or NULL */
  /* One option given: -1 to go on, or an exit status (after a message,
   * through cli_bad_usage(cmd name, ...) for a bad value). value is NULL
   * for a flag; it points into argv. NULL without options. */
  int (*set)(void *ctx, int id, const char *value);
  bool stop_at_arg;     /* options end at the first argument: a parent
                           command before its subcommand's name */
} cli_cmd;

/* Parse argv[1..argc-1] (argv[0] is the command) by cmd's tables, calling
 * cmd->set(ctx, ...) per option, in order. Options may come anywhere among
 * the arguments (unless stop_at_arg); "--" ends them; "-" is an argument.
 * -1 on success: *args (free() it) holds the *nargs arguments left, in
 * order. Else an exit status: CLI_OK after printing the help for
 * -h/--help, CLI_USAGE after a message "tgraph NAME: unknown option
 * '-x'", "option '--workers' needs a value", "option '--no-cache' takes no
 * value", or set()'s status. Uses getopt_long's globals: one thread. */
int cli_opts_parse(const cli_cmd *cmd, int argc, char **argv, void *ctx,
                   char ***args /* OUT */, int *nargs /* OUT */);
/* The help of cmd, made from its tables, to f. */
void cli_opts_help(const cli_cmd *cmd, FILE *f);
/* -1 when min <= nargs <= max (max -1: no bound); else CLI_USAGE after
 * "missing WHAT" or "unexpected argument 'X'". */
int cli_opts_count(const cli_cmd *cmd, char **args, int nargs, int min, int max,
                   const char *missing);

/* ---- util.c ---- */
extern int cli_verbosity; /* -1 quiet, 0 normal, 1 verbose */
/* "tgraph: error: ..." / "tgraph: warning: ..." / "tgraph: ..." on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void cli_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "tgraph CMD: <message>\n(see tgraph CMD --help)" on stderr; CLI_USAGE. */
int cli_bad_usage(const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Colour on stderr: it is a terminal, NO_COLOR is unset, TERM is not dumb. */
bool cli_color(void);
/* "123", "10K", "1.5M", "2G", "3GiB" (1024-based) into bytes. */
bool cli_parse_size(const char *s, uint64_t *out);
/* "1.2 MiB" into buf. */
const char *cli_format_size(uint64_t bytes, char *buf, size_t size);
bool cli_parse_uint(const char *s, unsigned long max, unsigned long *out);
bool cli_parse_seconds(const char *s, double *out);
/* The cache directory: TGRAPH_CACHE_DIR, $XDG_CACHE_HOME/tgraph or
 * ~/.cache/tgraph (in that order) into buf; false when none applies. */
bool cli_default_cache_dir(char *buf, size_t size);
/* Write s as a JSON string (quoted, escaped) to f. */
void cli_json_string(FILE *f, const char *s);
/* Directories where plugins named without '/' are looked for besides
 * TGRAPH_PLUGIN_PATH: next to the program (../examples/plugins in a
 * build tree) and the installed plugin directory. */
size_t cli_plugin_dirs(const char *dirs[], size_t max);
/* Seconds on the monotonic clock. */
double cli_now(void);
/* What v is, on one line, into buf: "ndarray f64 [2, 3]", "list of 3",
 * "map of 6", "str of 5 bytes", "bytes, 12", "int", ... */
void cli_describe_value(const tg_value *v, char *buf, size_t size);

/* ---- interrupt.c: SIGINT/SIGTERM during a compute ---- */
/* Catch SIGINT and SIGTERM: the first raises *out (a flag for
 * tg_compute_opts.cancel, lowered; it lives until exit), a second exits
 * at once with 128 + its number. TG_OK or TG_ENOMEM. */
int cli_interrupt_start(tg_cancel **out /* OUT */);
/* Restore the signals' previous handling; the signal caught meanwhile,
 * or 0. */
int cli_interrupt_stop(void);
/* fn (async-signal-safe; NULL: none) runs when a second signal exits at
 * once: what the run started outside this process is stopped there
 * (Slurm jobs: slurm.c). */
void cli_interrupt_last_words(void (*fn)(void));
/* The one line that says how far an interrupted run got. */
void cli_interrupt_report(const tg_compute_stats *st, bool cached);

/* ---- events.c: what happened to each task during a run ---- */
typedef enum cli_state {
  CLI_ST_UNNEEDED = 0, /* not needed by the outputs */
  CLI_ST_PENDING,      /* needed, no event yet */
  CLI_ST_RUNNING,
  CLI_ST_RAN,
  CLI_ST_FAILED,
  CLI_ST_CACHED,       /* served from the cache */
  CLI_ST_SKIPPED,      /* never called: the run stopped */
  CLI_ST_BELOW_CACHED, /* needed only by cached results: not part of the run */
  CLI_ST_CANCELLED,    /* its call gave up when the run stopped */
} cli_state;

/* A task's closing event. */
typedef struct cli_call {
  uint32_t task; /* index in info->tasks, or UINT32_MAX (a node not in the
                    file) */
  tg_event_kind kind; /* FINISHED, FAILED, CANCELLED, CACHED or SKIPPED */
  int worker, status; /* worker -1: not called */
  double start, end; /* seconds since the run's start */
  const char *key;   /* borrowed from the info, or an owned copy */
  bool key_owned;
  int thread;        /* the worker's thread of the calls, -1: none known */
  unsigned attempts; /* calls made */
  char *message;     /* FAILED, CANCELLED: the failure's message (owned),
                        else NULL */
} cli_call;

/* Filled by cli_events_on from any thread. */
typedef struct cli_events {
  const tg_graphjson_info *info;
  pthread_mutex_t mu;     /* guards calls and max_worker */
  double t0;
  _Atomic uint8_t *state; /* per graph node: cli_state */
  uint32_t *task_of;      /* graph node -> index in info->tasks or UINT32_MAX */
  size_t nnodes;
  bool record;            /* keep the closing events in calls */
  cli_call *calls;        /* closing events, in the order they came */
  size_t ncalls, cap;
  int max_worker;
  tg_report *report;      /* --report: fed every event; NULL without */
} cli_events;

/* record: keep every closing event (for -v, --dot, --trace), not only
 * the counts. */
int cli_events_init(cli_events *ev, const tg_graphjson_info *info,
                    const bool *needed, const tg_graph *g, bool record);
void cli_events_free(cli_events *ev);
/* The tg_event_fn of a run: ctx is the cli_events. */
void cli_events_on(void *ctx, const tg_event *e);
/* After the run: needed tasks it did not report were below cached results. */
void cli_events_finish(cli_events *ev);
cli_state cli_events_state(const cli_events *ev, size_t task);
/* The closing event of failed task `task` (index in info->tasks), or
 * NULL when not recorded. */
const cli_call *cli_events_failure(const cli_events *ev, uint32_t task);

/* ---- report.c ---- */
/* Tasks each output needs: needed[i] for every task reachable from the
 * outputs. */
void cli_mark_needed(const tg_graphjson_info *info, bool *needed);
int cli_write_dot(const char *path, const tg_graphjson_info *info,
                  const cli_events *ev);
int cli_write_trace(const char *path, const cli_events *ev);
/* The outputs that depend on task `failed`, each with its chain. */
void cli_print_blocked(const tg_graphjson_info *info, uint32_t failed);
/* --report: ev->report, a recorder over g and the file's outputs, fed by
 * cli_events_on. TG_OK or TG_ENOMEM. */
int cli_report_start(cli_events *ev, const tg_graph *g);
/* What the report says of the run once tg_compute returned. */
typedef struct cli_run_facts {
  const char *graph, *scheduler;   /* the graph file, the backend */
  unsigned workers;                /* --workers (0: one per CPU) */
  int status;                      /* tg_compute's return */
  const tg_compute_stats *stats;
  const tg_graph *g;               /* for its error message */
} cli_run_facts;
void cli_report_finish(cli_events *ev, const cli_run_facts *f);
/* Write the page (also for a failed or interrupted run); says why not. */
int cli_write_report(const char *path, cli_events *ev);

/* ---- connect.c: the workers of --scheduler=tcp ---- */
typedef struct cli_workers {
  char **addr;
  size_t n, cap;
  const char *join; /* --join-listen: where workers may join, or NULL */
} cli_workers;
/* Add a comma-separated list / the lines of a file ('#' comments). 0 or
 * -1 (out of memory, unreadable file: said on stderr). */
int cli_workers_add_list(cli_workers *w, const char *list);
int cli_workers_add_file(cli_workers *w, const char *path);
void cli_workers_free(cli_workers *w);
/* A tcp executor over them: -1 on success, else an exit status (said).
 * With a join address, "joining workers: ADDRESS" goes to stderr. */
int cli_workers_executor(const cli_workers *w, const char *keys, tg_registry *reg,
                         tg_executor **out);
/* With -v: traffic figures of a tcp executor. */
void cli_workers_report(tg_executor *ex);

/* --scheduler=mpi (mpi.c): ranks of mpirun/srun. */
typedef struct cli_mpi {
  const char *run_dir; /* --run-dir */
  const char *address; /* --rank-address */
  double timeout;      /* --rank-timeout; 0: the default */
} cli_mpi;
/* This process's rank; -1 to go on, or an exit status (not launched). */
int cli_mpi_rank(unsigned *rank);
/* A rank other than 0: serve until the driver ends, then exit 0; returns
 * an exit status only when it could not serve. */
int cli_mpi_serve(const cli_mpi *m, unsigned workers, unsigned rank);
/* Rank 0: the executor over the other ranks; -1 or an exit status. */
int cli_mpi_executor(const cli_mpi *m, unsigned workers, tg_registry *reg,
                     const tg_graphjson_info *info, tg_executor **out);

/* ---- make.c: the make-like options of `tgraph run` ---- */
typedef struct cli_make {
  const char **keys;     /* --force KEY, in order */
  size_t nkeys;
  tg_node *force;        /* their nodes (cli_make_resolve) */
  double min_compute;    /* --min-compute, when min_compute_set */
  bool min_compute_set, cache_all, check, json;
} cli_make;
/* Option parsers: -1 to go on, else an exit status (said). max: the
 * most --force options there can be (argc). */
int cli_make_force(cli_make *m, const char *key, int max);
int cli_make_min_compute(cli_make *m, const char *arg);
/* After loading: the forced keys' nodes; -1, or CLI_USAGE for a key the
 * graph has not (said). */
int cli_make_resolve(cli_make *m, const tg_graphjson_info *info);
/* The options for tg_cache_open / the force set for a compute. */
void cli_make_cache_opts(const cli_make *m, tg_cache_opts *co /* OUT */);
void cli_make_compute_opts(const cli_make *m, tg_compute_opts *co);
void cli_make_free(cli_make *m);

/* ---- output.c: run --output DIR ---- */
/* The largest compact JSON, in bytes, of a value that the listing of
 * --output shows in full ("value"); larger ones are only in their file. */
#define CLI_OUTPUT_INLINE_MAX 1024
/* The file name (without DIR/ and .tgv) output `key` is written to: '/'
 * and a leading '.' become '_'; at most size - 1 bytes. */
void cli_output_file_name(const char *key, char *out, size_t size);
/* Write results[i] to DIR/NAME.tgv for each of info's outputs and print
 * one line per output on stdout:
 *   {"key":K,"file":"DIR/NAME.tgv","bytes":FILE_SIZE,"type":T,"value":V}
 * with "value" only when its JSON is at most CLI_OUTPUT_INLINE_MAX bytes.
 * -1 on success, else an exit status (said on stderr). */
int cli_output_write(const char *dir, const tg_graphjson_info *info,
                     tg_value *const *results);

/* ---- explain.c ---- */
typedef enum cli_explain_mode {
  CLI_EXPLAIN_TEXT,  /* --explain */
  CLI_EXPLAIN_JSON,  /* --explain --json */
  CLI_EXPLAIN_CHECK, /* --check: nothing on stdout (-v: what would run) */
} cli_explain_mode;
/* The dry run of g's outputs with cache (may be NULL) and make's force
 * set; the exit status (CHECK: 0 all cached, 1 something would run). */
int cli_explain(const tg_graphjson_info *info, const bool *needed, tg_graph *g,
                tg_cache *cache, const char *cache_dir, const cli_make *make,
                cli_explain_mode mode);

/* ---- dashboard.c: tgraph run --dashboard[=ADDR], --dashboard-stay ---- */
typedef struct cli_dashboard {
  bool on, stay;    /* asked for; serve on after the run */
  const char *addr; /* ADDR, or NULL: 127.0.0.1 and a free port */
  tg_dashboard *d;  /* while it serves */
} cli_dashboard;
/* --dashboard[=arg] (stay false) or --dashboard-stay (which implies
 * --dashboard); checks ADDR. -1 to go on, else an exit status (said). */
int cli_dashboard_option(cli_dashboard *o, bool stay, const char *arg);
/* When arg, taken for the graph, looks like the ADDR of a bare
 * --dashboard: a hint to append to the error ("" otherwise). */
const char *cli_dashboard_hint(const cli_dashboard *o, const char *arg);
/* Serve r when asked to and print the URL: -1, or an exit status (said:
 * e.g. the port is in use). */
int cli_dashboard_start(cli_dashboard *o, tg_report *r);
/* After the run: with --dashboard-stay, serve until SIGINT or SIGTERM;
 * then stop. */
void cli_dashboard_finish(cli_dashboard *o);
/* Stop at once (error paths); nothing when not serving. */
void cli_dashboard_stop(cli_dashboard *o);

#endif /* TGRAPH_CLI_H */
