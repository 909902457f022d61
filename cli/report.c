/* cli/report.c: what a run leaves behind besides its results: the tasks
 * the outputs need, the outputs a failure blocked, the Graphviz picture
 * (--dot), the Chrome trace (--trace) and the HTML report (--report). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* Task index of each output (UINT32_MAX when none), through a node ->
 * task map. Caller frees. */
static uint32_t *output_tasks(const tg_graphjson_info *info) {
  tg_node max = 0;
  for (size_t i = 0; i < info->ntasks; i++)
    if (info->tasks[i].node > max) max = info->tasks[i].node;
  uint32_t *map = malloc(((size_t)max + 1) * sizeof *map);
  uint32_t *out = malloc((info->noutputs + 1) * sizeof *out);
  if (map == NULL || out == NULL) {
    free(map);
    free(out);
    return NULL;
  }
  for (size_t i = 0; i <= max; i++) map[i] = UINT32_MAX;
  for (size_t i = 0; i < info->ntasks; i++) map[info->tasks[i].node] = (uint32_t)i;
  for (size_t o = 0; o < info->noutputs; o++)
    out[o] = info->output_nodes[o] <= max ? map[info->output_nodes[o]]
                                          : UINT32_MAX;
  free(map);
  return out;
}

void cli_mark_needed(const tg_graphjson_info *info, bool *needed) {
  memset(needed, 0, info->ntasks * sizeof *needed);
  uint32_t *stack = malloc((info->ntasks + 1) * sizeof *stack);
  uint32_t *outs = output_tasks(info);
  if (stack == NULL || outs == NULL) { /* cannot tell: all are needed */
    memset(needed, 1, info->ntasks * sizeof *needed);
    free(stack);
    free(outs);
    return;
  }
  size_t top = 0;
  for (size_t o = 0; o < info->noutputs; o++) {
    if (outs[o] == UINT32_MAX || needed[outs[o]]) continue;
    needed[outs[o]] = true;
    stack[top++] = outs[o];
    while (top > 0) {
      const tg_graphjson_task *t = &info->tasks[stack[--top]];
      for (size_t d = 0; d < t->ndeps; d++)
        if (!needed[t->deps[d]]) {
          needed[t->deps[d]] = true;
          stack[top++] = t->deps[d];
        }
    }
  }
  free(stack);
  free(outs);
}

/* ---- blocked outputs ---- */

/* is_out[i]: task i is an output. Caller frees. */
static bool *output_flags(const tg_graphjson_info *info) {
  bool *flags = calloc(info->ntasks + 1, sizeof *flags);
  uint32_t *outs = output_tasks(info);
  if (flags != NULL && outs != NULL)
    for (size_t o = 0; o < info->noutputs; o++)
      if (outs[o] != UINT32_MAX) flags[outs[o]] = true;
  free(outs);
  return flags;
}

/* Users of each task, as compressed rows: users of t are
 * user[first[t] .. first[t + 1]). */
static bool reverse_edges(const tg_graphjson_info *info, size_t **first,
                          uint32_t **user) {
  size_t n = info->ntasks, m = 0;
  for (size_t i = 0; i < n; i++) m += info->tasks[i].ndeps;
  *first = calloc(n + 2, sizeof **first);
  *user = malloc((m + 1) * sizeof **user);
  if (*first == NULL || *user == NULL) return false;
  for (size_t i = 0; i < n; i++)
    for (size_t d = 0; d < info->tasks[i].ndeps; d++)
      (*first)[info->tasks[i].deps[d] + 2]++;
  for (size_t t = 2; t < n + 2; t++) (*first)[t] += (*first)[t - 1];
  for (size_t i = 0; i < n; i++)
    for (size_t d = 0; d < info->tasks[i].ndeps; d++)
      (*user)[(*first)[info->tasks[i].deps[d] + 1]++] = (uint32_t)i;
  return true;
}

/* The line goes out in one write, as cli_error's (cli/util.c says why):
 * it is built in memory first. */
static void print_chain(const tg_graphjson_info *info, const uint32_t *from,
                        uint32_t failed, uint32_t o) {
  char *line = NULL;
  size_t size = 0;
  FILE *f = open_memstream(&line, &size);
  if (f == NULL) f = stderr; /* out of memory: in pieces, but said */
  fprintf(f, "tgraph:   blocked output '%s'", info->tasks[o].key);
  if (o != failed) {
    uint32_t chain[64]; /* from the failed task up to the output */
    size_t len = 0;
    for (uint32_t t = o; len < 64; t = from[t]) {
      chain[len++] = t;
      if (t == failed) break;
    }
    fprintf(f, " (%s", len == 64 ? "... -> " : "");
    for (size_t j = len; j-- > 0;)
      fprintf(f, "%s%s", info->tasks[chain[j]].key, j ? " -> " : ")");
  }
  fputc('\n', f);
  if (f != stderr && fclose(f) == 0) fputs(line, stderr);
  free(line);
}

void cli_print_blocked(const tg_graphjson_info *info, uint32_t failed) {
  size_t n = info->ntasks, *first = NULL;
  uint32_t *user = NULL, *from = malloc((n + 1) * sizeof *from),
           *queue = malloc((n + 1) * sizeof *queue);
  bool *is_out = output_flags(info);
  if (from && queue && is_out && reverse_edges(info, &first, &user)) {
    for (size_t i = 0; i < n; i++) from[i] = UINT32_MAX;
    from[failed] = failed;
    size_t head = 0, tail = 0;
    queue[tail++] = failed;
    while (head < tail) { /* breadth-first: the shortest chains */
      uint32_t t = queue[head++];
      if (is_out[t]) print_chain(info, from, failed, t);
      for (size_t k = first[t]; k < first[t + 1]; k++)
        if (from[user[k]] == UINT32_MAX) {
          from[user[k]] = t;
          queue[tail++] = user[k];
        }
    }
  }
  free(first);
  free(user);
  free(from);
  free(queue);
  free(is_out);
}

/* ---- --dot ---- */

static void dot_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s; s++) {
    if (*s == '\n') {
      fputs("\\n", f);
      continue;
    }
    if (*s == '"' || *s == '\\') fputc('\\', f);
    fputc(*s, f);
  }
  fputc('"', f);
}

/* Per cli_state. */
static const char *const state_name[] = {
    "not needed", "pending", "running", "ran", "failed", "cached", "skipped",
    "not needed: below a cached result", "cancelled"};
static const char *const state_color[] = {"#ffffff", "#d9d9d9", "#d9d9d9", "#a6d96a",
                                          "#f46d43", "#abd9e9", "#fee08b", "#ffffff",
                                          "#fdae61"};

/* The legend's rows: a colour per outcome (state_color's), what it means. */
static const struct {
  cli_state st;
  const char *text;
} legend_rows[] = {
    {CLI_ST_RAN, "ran"},
    {CLI_ST_CACHED, "cached: served from the cache"},
    {CLI_ST_FAILED, "failed"},
    {CLI_ST_CANCELLED, "cancelled: stopped while running"},
    {CLI_ST_SKIPPED, "skipped: the run stopped or an input failed"},
    {CLI_ST_PENDING, "not run"},
    {CLI_ST_UNNEEDED, "not needed (dashed), also below a cached result"},
};

/* A node id for the legend that no task has: "legend", "legend 2", ... */
static void legend_id(const tg_graphjson_info *info, char *id, size_t size) {
  for (unsigned n = 1;; n++) {
    if (n == 1) snprintf(id, size, "legend");
    else snprintf(id, size, "legend %u", n);
    bool taken = false;
    for (size_t i = 0; i < info->ntasks && !taken; i++)
      taken = strcmp(info->tasks[i].key, id) == 0;
    if (!taken) return;
  }
}

/* A box of its own explaining the colours: one table node in a cluster. */
static void dot_legend(FILE *f, const tg_graphjson_info *info) {
  char id[32];
  legend_id(info, id, sizeof id);
  fprintf(f, "  subgraph cluster_legend {\n    label=\"legend\"; fontname=\"Helvetica\";\n"
             "    ");
  dot_string(f, id);
  fprintf(f, " [shape=plain, style=\"\", label=<<table border=\"0\" cellborder=\"1\" "
             "cellspacing=\"2\">");
  for (size_t i = 0; i < sizeof legend_rows / sizeof legend_rows[0]; i++)
    fprintf(f, "<tr><td bgcolor=\"%s\"%s>%s</td></tr>", state_color[legend_rows[i].st],
            legend_rows[i].st == CLI_ST_UNNEEDED ? " style=\"dashed\"" : "",
            legend_rows[i].text);
  fprintf(f, "</table>>];\n  }\n");
}

int cli_write_dot(const char *path, const tg_graphjson_info *info,
                  const cli_events *ev) {
  FILE *f = fopen(path, "w");
  if (f == NULL) return -errno;
  fprintf(f, "digraph tgraph {\n  rankdir=LR;\n"
             "  node [shape=box, style=filled, fontname=\"Helvetica\"];\n");
  dot_legend(f, info);
  bool *is_out = output_flags(info);
  for (size_t i = 0; i < info->ntasks; i++) {
    const tg_graphjson_task *t = &info->tasks[i];
    cli_state st = cli_events_state(ev, i);
    fprintf(f, "  ");
    dot_string(f, t->key);
    fprintf(f, " [label=");
    char label[600];
    snprintf(label, sizeof label, "%s\n%s", t->key, t->fn);
    dot_string(f, label);
    fprintf(f, ", fillcolor=\"%s\", tooltip=\"%s\"%s%s];\n", state_color[st],
            state_name[st],
            st == CLI_ST_UNNEEDED || st == CLI_ST_BELOW_CACHED ? ", style=\"filled,dashed\"" : "",
            is_out && is_out[i] ? ", peripheries=2" : "");
  }
  for (size_t i = 0; i < info->ntasks; i++)
    for (size_t d = 0; d < info->tasks[i].ndeps; d++) {
      fprintf(f, "  ");
      dot_string(f, info->tasks[info->tasks[i].deps[d]].key);
      fprintf(f, " -> ");
      dot_string(f, info->tasks[i].key);
      fprintf(f, ";\n");
    }
  fprintf(f, "}\n");
  free(is_out);
  /* A failed write (disk full) sets the stream's error flag; fclose alone
   * would report success for it. */
  bool bad = ferror(f) != 0;
  if (fclose(f) != 0 || bad) return errno ? -errno : TG_EIO;
  return TG_OK;
}

/* ---- --trace ---- */

/* A track of the trace: one per (worker, thread) that made calls. */
typedef struct lane {
  int worker, thread;
} lane;

static int lane_cmp(const void *a, const void *b) {
  const lane *x = a, *y = b;
  if (x->worker != y->worker) return x->worker < y->worker ? -1 : 1;
  return x->thread < y->thread ? -1 : x->thread > y->thread;
}

static bool is_slice(const cli_call *c) {
  return (c->kind == TG_EVENT_FINISHED || c->kind == TG_EVENT_FAILED ||
          c->kind == TG_EVENT_CANCELLED) && c->worker >= 0 &&
         c->thread >= 0;
}

/* The distinct lanes of ev's slices, sorted; *n of them. Caller frees. */
static lane *trace_lanes(const cli_events *ev, size_t *n) {
  lane *v = malloc((ev->ncalls + 1) * sizeof *v);
  *n = 0;
  if (v == NULL) return NULL;
  for (size_t i = 0; i < ev->ncalls; i++)
    if (is_slice(&ev->calls[i])) v[(*n)++] = (lane){ev->calls[i].worker, ev->calls[i].thread};
  qsort(v, *n, sizeof *v, lane_cmp);
  size_t k = 0;
  for (size_t i = 0; i < *n; i++)
    if (k == 0 || lane_cmp(&v[k - 1], &v[i]) != 0) v[k++] = v[i];
  *n = k;
  return v;
}

/* tid of c's lane: its index, or idle_tid. */
static int lane_tid(const lane *lanes, size_t n, const cli_call *c, int idle_tid) {
  if (!is_slice(c)) return idle_tid;
  lane key = {c->worker, c->thread};
  const lane *at = bsearch(&key, lanes, n, sizeof key, lane_cmp);
  return at ? (int)(at - lanes) : idle_tid;
}

/* One event per task of the run: a complete event ("X") on the track of
 * the worker thread that made its calls, over the span they took; an
 * instant ("i") on a track of its own for a task without a call slice
 * (served from the cache, skipped, or failed outside a call). */
static void trace_event(FILE *f, const cli_events *ev, const cli_call *c, int tid) {
  static const char *const what[] = {"started", "ran", "failed", "cached", "skipped",
                                     "cancelled"};
  const char *fn = c->task != UINT32_MAX ? ev->info->tasks[c->task].fn : "tg.build";
  fprintf(f, ",\n{\"name\": ");
  cli_json_string(f, c->key);
  fprintf(f, ", \"cat\": ");
  cli_json_string(f, fn);
  if (is_slice(c)) {
    double dur = (c->end - c->start) * 1e6;
    fprintf(f, ", \"ph\": \"X\", \"ts\": %.3f, \"dur\": %.3f", c->start * 1e6,
            dur < 0 ? 0 : dur);
  } else {
    fprintf(f, ", \"ph\": \"i\", \"s\": \"t\", \"ts\": %.3f", c->end * 1e6);
  }
  fprintf(f, ", \"pid\": 1, \"tid\": %d, \"args\": {\"state\": \"%s\", "
             "\"status\": \"%s\", \"worker\": %d, \"thread\": %d, \"attempts\": %u",
          tid, what[c->kind], c->status == TG_OK ? "ok" : tg_err_name(c->status),
          c->worker, c->thread, c->attempts);
  if (c->message) {
    fprintf(f, ", \"message\": ");
    cli_json_string(f, c->message);
  }
  fprintf(f, "}}");
}

int cli_write_trace(const char *path, const cli_events *ev) {
  size_t nlanes = 0;
  lane *lanes = trace_lanes(ev, &nlanes);
  if (lanes == NULL) return TG_ENOMEM;
  FILE *f = fopen(path, "w");
  if (f == NULL) {
    int e = -errno;
    free(lanes);
    return e;
  }
  int idle_tid = (int)nlanes;
  fprintf(f, "{\"displayTimeUnit\": \"ms\", \"traceEvents\": [\n");
  fprintf(f, "{\"name\": \"process_name\", \"ph\": \"M\", \"pid\": 1, "
             "\"args\": {\"name\": \"tgraph run\"}}");
  for (size_t l = 0; l < nlanes; l++)
    fprintf(f, ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, "
               "\"tid\": %zu, \"args\": {\"name\": \"worker %d thread %d\"}}",
            l, lanes[l].worker, lanes[l].thread);
  fprintf(f, ",\n{\"name\": \"thread_name\", \"ph\": \"M\", \"pid\": 1, "
             "\"tid\": %d, \"args\": {\"name\": \"no call: cached, skipped, "
             "failed before a call\"}}", idle_tid);
  for (size_t i = 0; i < ev->ncalls; i++)
    trace_event(f, ev, &ev->calls[i], lane_tid(lanes, nlanes, &ev->calls[i], idle_tid));
  fprintf(f, "\n]}\n");
  free(lanes);
  /* A failed write (disk full) sets the stream's error flag; fclose alone
   * would report success for it. */
  bool bad = ferror(f) != 0;
  if (fclose(f) != 0 || bad) return errno ? -errno : TG_EIO;
  return TG_OK;
}

/* ---- --report ---- */

int cli_report_start(cli_events *ev, const tg_graph *g) {
  return tg_report_new(g, ev->info->output_nodes, ev->info->noutputs, &ev->report);
}

void cli_report_finish(cli_events *ev, const cli_run_facts *f) {
  unsigned workers = f->workers;
  if (workers == 0 && strcmp(f->scheduler, "tcp") != 0) { /* one per CPU */
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    workers = n > 0 ? (unsigned)n : 1;
  }
  tg_report_run run = {TG_REPORT_RUN_V2, f->graph, f->scheduler, workers,
                       f->status, f->status != TG_OK ? tg_graph_errmsg(f->g) : NULL,
                       f->stats};
  if (tg_report_finish(ev->report, &run) != TG_OK)
    cli_warn("out of memory: the report lacks the run's summary");
}

int cli_write_report(const char *path, cli_events *ev) {
  tg_error err;
  tg_error_clear(&err);
  int rc = tg_report_write(ev->report, path, &err);
  if (rc != TG_OK) cli_error("%s", err.msg);
  else if (cli_verbosity > 0) cli_info("wrote %s", path);
  return rc;
}
