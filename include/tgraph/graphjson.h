/* include/tgraph/graphjson.h: reading a graph.json file into a graph.
 *
 * The format (docs/graph.schema.json has the JSON Schema):
 *
 *   {
 *     "tgraph": 1,
 *     "plugins": ["wordcount", "lib/libmine.so"],
 *     "tasks": {
 *       "KEY": {"fn": NAME, "args": [ARG...], "cache": BOOL,
 *               "retries": INT, "timeout": SECONDS, "priority": INT},
 *       "KEY": {"map": NAME, "over": OVER, "args": [ARG...],
 *               "chunksize": INT, ...the options above},
 *       ...
 *     },
 *     "outputs": ["KEY", ...]
 *   }
 *
 * Only "tgraph" and "tasks" are required; "args" defaults to [];
 * "retries" is 0 to TG_GRAPHJSON_RETRIES_MAX (1000); "priority" is an int
 * (tg_node_opts.priority, graph.h "Priorities"). An ARG is
 * any JSON value, a constant, except that
 *   {"ref": KEY}                 is the result of task KEY,
 *   {"ref": KEY, "get": I}       element I of it (an int indexes a list,
 *                                negative from the end; a string is a
 *                                map key),
 *   {"const": ANY}               is ANY taken literally (no refs inside),
 * and refs may be nested anywhere inside lists and objects, at most 255
 * levels deep (TG_EDEPTH "nesting deeper than 255 levels around a ref"
 * past that; other values nest up to TG_DEPTH_MAX): such an argument is
 * assembled when the task runs (by the builtin "tg.build", as a node
 * keyed "KEY/args[I]"). Objects with a single "$"-key are read
 * as tg_value_from_json() reads them ({"$bytes": ...}, {"$float": "nan"},
 * {"$ndarray": ...}), literally even when refs appear inside them. Tasks
 * may be listed in any order. "$schema" (a string, the schema's URI for
 * editors) may stand beside "tgraph" and is not read. Wherever an integer
 * is asked for ("tgraph", "retries", "priority", "get"), a number with an
 * integral value such as 1.0 is one, as in JSON Schema.
 *
 * A map task's result is the list of NAME's results over the items of
 * OVER, in order: a list (its items constants or refs), {"range": [START,
 * STOP]} or [START, STOP, STEP] (ints as Python's range, STEP not 0, at
 * most 100000000 items: tg_graph_map over constants), or {"ref": KEY},
 * task KEY's list result (tg_graph_map_node: the calls become tasks when
 * the list is known). Each call gets the item where "args" holds
 * {"item": true} (at most once; first when absent) and the other ARGs.
 * "chunksize" is the calls per chunk task, 0 to 16777215 (0 or absent:
 * picked).
 *
 * A plugin entry without '/' is a name: lib<name>.so is searched in the
 * directories of TGRAPH_PLUGIN_PATH (':'-separated), then in the options'
 * plugin_dirs, then next to the graph file. An entry with '/' is a path,
 * relative to the graph file's directory when not absolute.
 *
 * Errors: every mistake stops the load before anything is added to a
 * registry's graph, with err->msg "FILE:LINE:COLUMN: what is wrong" (lines
 * and columns count from 1, columns in characters) and err->offset the
 * byte offset. Codes: TG_EJSON (not JSON: the position of the first bad
 * character), TG_EFORMAT (valid JSON that is not a graph: a missing or
 * misspelt field, a field of the wrong type, a duplicate key, a ref to a
 * missing task, a cycle (listing its keys), an output that is not a
 * task), TG_ENOFUNC (unknown function, with the closest known name),
 * TG_EINVAL (wrong argument count for a function that declares one), a
 * plugin's error (its entry's position; for opts->plugins the message
 * starts with the plugin instead), and -errno when the file cannot be
 * read.
 *
 * Input: tg_graphjson_load reads a regular file, or a FIFO or pipe (e.g.
 * /dev/stdin; the path "-" is standard input) until its writer closes it, as tg_read_file() does
 * (tgraph/readfile.h): a directory or device is refused ("PATH: a
 * character device, not a regular file or a pipe", TG_EINVAL), more than
 * opts->max_bytes is TG_ELIMIT ("PATH: more than the limit of N bytes"),
 * a FIFO nobody writes to is TG_ETIMEDOUT after 5 seconds. A UTF-8
 * byte-order mark at the start is skipped (columns still count it as
 * none: the first character after it is column 1).
 *
 * Thread safety: a load registers plugins into the registry, so no other
 *   thread may use that registry during the call.
 */
#ifndef TGRAPH_GRAPHJSON_H
#define TGRAPH_GRAPHJSON_H

#include <stdbool.h>
#include <stddef.h>

#include "tgraph/graph.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One task of the file. */
typedef struct tg_graphjson_task {
  const char *key;     /* the task's key */
  const char *fn;      /* its function's name */
  tg_node node;        /* its node in the graph */
  unsigned line, column; /* where its key is in the file */
  int cache;           /* -1 (not given), 0 or 1 */
  int retries;         /* -1 when not given */
  double timeout;      /* 0 when not given */
  const uint32_t *deps; /* indexes in tasks[] of the tasks it refs, in */
  size_t ndeps;         /* argument order (a task refd twice is twice) */
} tg_graphjson_task;

/* A plugin the load loaded. */
typedef struct tg_graphjson_plugin {
  const char *path;    /* as resolved (canonical: realpath(3)) */
  tg_digest digest;    /* XXH3-128 of the file */
  size_t nfuncs;       /* functions it registered */
} tg_graphjson_plugin;

/* What the file said besides the graph. Strings are owned by the info. */
typedef struct tg_graphjson_info {
  size_t ntasks;
  tg_graphjson_task *tasks;   /* in file order */
  size_t noutputs;
  const char **outputs;       /* output keys in file order */
  tg_node *output_nodes;      /* their nodes */
  size_t nplugins;
  tg_graphjson_plugin *plugins; /* every plugin loaded, in load order */
  /* ---- since 0.3: added at the end (the load allocates the info) ---- */
  size_t nmaps;               /* map tasks ("map"): their chunk tasks are
                                 nodes of the graph, or of each run for a
                                 map over a task's result, not tasks of
                                 the file */
} tg_graphjson_info;

#define TG_GRAPHJSON_OPTS_V1 1
#define TG_GRAPHJSON_OPTS_V2 2 /* adds max_bytes */
typedef struct tg_graphjson_opts {
  uint32_t version;                /* TG_GRAPHJSON_OPTS_V1 or _V2 */
  const char *const *plugin_dirs;  /* extra directories for plugin names */
  size_t nplugin_dirs;
  const char *const *plugins;      /* more plugins (paths or names, as in
                                      the file), loaded before the file's;
                                      a file loaded twice loads once */
  size_t nplugins;
  bool no_plugins;                 /* load no plugin at all (the caller
                                      loaded what the graph needs) */
  /* ---- version 2 (version 1 callers get the default) ---- */
  size_t max_bytes;                /* the most bytes tg_graphjson_load
                                      reads (0: TG_GRAPHJSON_MAX_BYTES) */
} tg_graphjson_opts;

/* The default bound on a graph.json's size: 1 GiB holds about ten
 * million tasks of ~100 bytes, more than a run's memory for the graph
 * (a few hundred bytes per task) comfortably allows, while a FIFO or
 * pipe that never ends fails in a second or two instead of exhausting
 * memory. */
#define TG_GRAPHJSON_MAX_BYTES ((size_t)1 << 30)

/* The most "retries" a task may ask for (tgraph run --retries too). */
#define TG_GRAPHJSON_RETRIES_MAX 1000

/* Read the graph.json at path. On success *graph is a new graph over reg
 * (free with tg_graph_free; reg must outlive it) and *info (may be NULL
 * when not wanted) describes the file (free with tg_graphjson_info_free).
 * The file's plugins are loaded into reg first (unless opts say not).
 * opts may be NULL. On error *graph and *info are NULL and err says what
 * and where (see the header comment). */
int tg_graphjson_load(const char *path, tg_registry *reg,
                      const tg_graphjson_opts *opts, tg_graph **graph /* OUT */,
                      tg_graphjson_info **info /* OUT, may be NULL */,
                      tg_error *err);

/* Same over len bytes of text in memory; `name` is the file name used in
 * messages and `base_dir` the directory that relative plugin paths start
 * from (NULL: the current directory). */
int tg_graphjson_parse(const char *text, size_t len, const char *name,
                       const char *base_dir, tg_registry *reg,
                       const tg_graphjson_opts *opts,
                       tg_graph **graph /* OUT */,
                       tg_graphjson_info **info /* OUT, may be NULL */,
                       tg_error *err);

void tg_graphjson_info_free(tg_graphjson_info *info); /* info may be NULL */

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_GRAPHJSON_H */
