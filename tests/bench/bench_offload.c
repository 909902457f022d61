/* tests/bench/bench_offload.c: every figure of the out-of-process engine
 * in one run, each beside sync (and memcpy) measured in the same run, as
 * a markdown table.
 *
 *   bench_offload [--quick] [--reps N] [--backend NAME[:WORKERS][,...]]...
 *                 [--only FIGURE[,...]]
 *
 * Backends: sync (always, first: the baseline), threads, processes and
 * tcp, where tcp:N is N workers serving this program's functions with one
 * thread each through tg_worker_serve, forked by this program on
 * loopback. Default: sync, threads:2, processes:2, tcp:2. Every figure is
 * the median of N repetitions (default 5, at most 64) run in rounds: each
 * round runs every backend once in turn, so all of them see the same
 * machine load; a ratio (to sync, to memcpy) is the median of the
 * rounds' own ratios, which cancels most of the load that moves between
 * rounds (--quick: 2 repetitions unless --reps says otherwise).
 * Executors are started beforehand (pool start-up is not counted).
 *
 * Figures (--only takes these names; --quick shrinks every size for a
 * smoke test):
 *   w2     W2, a chain of 20,000 dependent inc tasks: us per task, x sync.
 *          Target: processes at most 10x sync.
 *   w1     W1, 10,000 independent inc tasks and a sum: us per task.
 *          Targets: processes <= 0.3 us, tcp <= 0.6 us.
 *   w3     W3, a tree of 4,096 leaves (8,191 tasks): us per task.
 *          Target: processes <= 0.3 us.
 *   peak   tree reductions (W3's shape) of 4,096 and 65,536 leaves:
 *          tg_compute_stats.peak_live, median and most over the
 *          repetitions. Target: at most 64 on processes and tcp.
 *   cooc   a co-occurrence job: 24 text files, 20 MiB together, made at
 *          start from the system's plain-text files (the licenses in
 *          /usr/share/common-licenses, as examples/wordcount.json reads
 *          them, then the packages' copyright files and text documents
 *          and vim's help, each content once; read again from the start
 *          while short) -> cooc.count per file (word pairs within a
 *          window of 4: a map of about 100k string keys) -> one
 *          cooc.merge -> cooc.top(20) (the 20 highest counts, found as
 *          Counter.most_common(20) finds them: a heap of 20 over one
 *          pass) and cooc.size: seconds end to end,
 *          speedup over sync. Target: processes at least 1.3x faster than
 *          sync. The top 20 and the number of distinct pairs must be
 *          sync's on every backend, and the sum of the counts what the
 *          text holds (counted here without a map).
 *   json   2,000,000 inc leaves summed in groups of 1,000 (flat refs) and
 *          a total (2,002,001 tasks), written at start as one line as
 *          Python's json.dump writes it and loaded with
 *          tg_graphjson_load(): seconds of the compute alone, x sync.
 *          Targets: processes <= 2x, tcp <= 3x.
 *   wa     WA, a 200 MiB f64 array passed to ident and back: GB/s (array
 *          bytes / round-trip seconds), beside a memcpy of the same bytes
 *          before each repetition. Targets: processes at memcpy speed
 *          (>= 90% of it), tcp >= 2 GB/s. Then, on processes and tcp,
 *          the same sent again as soon as it came back by a new executor
 *          (the second pass of a loop over one large array: its first
 *          went into fresh shared memory): the second send of each of 3
 *          new executors, median, against the same memcpy (no target).
 *
 * Targets are printed "met" or "MISSED" but do not change the exit status;
 * a wrong result or a failed compute does: every figure checks its result
 * (bench_check), so a wrong answer cannot pass as fast. Files are written
 * to a new directory under $TMPDIR (or /tmp), removed at the end.
 */
#include <errno.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tgraph/executor.h"
#include "tgraph/graph.h"
#include "tgraph/graphjson.h"
#include "../test_funcs.h"
#include "workloads.h"

#define MAX_BACKENDS 8
#define MAX_REPS 64

typedef struct backend {
  char name[32];
  unsigned workers;
  tg_executor *ex;   /* NULL for sync: the scheduler in this thread */
  bench_tcp tcp;     /* tcp: the workers it connects to */
} backend;

typedef struct sizes {
  int w1_tasks, w2_len, w3_leaves;
  int peak_leaves[2];
  int cooc_files;
  size_t cooc_bytes;
  int cooc_window, cooc_k;
  int json_leaves, json_group;
  int64_t wa_elems;
} sizes;

static const sizes full = {10000, 20000, 4096, {4096, 65536}, 24, 20u << 20, 4, 20,
                           2000000, 1000, 25 << 20};
static const sizes quick = {1000, 2000, 256, {256, 4096}, 4, 1u << 20, 4, 20,
                            20000, 1000, 1 << 20};

static tg_registry *reg;
static backend bs[MAX_BACKENDS];
static int nb;
static int reps = 0; /* 0 until set: 5, or 2 with --quick */
static const sizes *sz = &full;
static char tmpdir[4096];
static char notes[2048]; /* lines printed under the table */

static void note(const char *line) {
  size_t n = strlen(notes);
  snprintf(notes + n, sizeof notes - n, "- %s\n", line);
}

/* ---- rounds and rows --------------------------------------------------------- */

/* One measurement of a figure on backend b. */
typedef double (*measure_fn)(void *arg, backend *b);

/* `warm` rounds not kept, then `reps` rounds into v[backend][round]; each
 * round runs every backend once, in order. */
static void rounds(int warm, measure_fn fn, void *arg, double v[][MAX_REPS]) {
  for (int r = -warm; r < reps; r++)
    for (int i = 0; i < nb; i++) {
      double x = fn(arg, &bs[i]);
      if (r >= 0) v[i][r] = x;
    }
}

static double median_of(const double *v) {
  double c[MAX_REPS];
  memcpy(c, v, (size_t)reps * sizeof *c);
  return bench_median(c, reps);
}

/* The median over the rounds of a[r] / b[r]: each round's backends ran
 * back to back, so a ratio within a round cancels most of the load that
 * moves between rounds. */
static double ratio_of(const double *a, const double *b) {
  double r[MAX_REPS];
  for (int i = 0; i < reps; i++) r[i] = a[i] / b[i];
  /* to the two decimals printed, so a verdict agrees with what it shows */
  return (double)(int64_t)(bench_median(r, reps) * 100 + 0.5) / 100;
}

static double max_of(const double *v) {
  double m = v[0];
  for (int i = 1; i < reps; i++) m = v[i] > m ? v[i] : m;
  return m;
}

static bool is(const backend *b, const char *name) { return strcmp(b->name, name) == 0; }

/* verdict: -1 no target for this backend, else whether it is met. */
static void row(const char *figure, const backend *b, const char *value, const char *vs,
                const char *target, int verdict) {
  printf("| %s | %s:%u | %s | %s | %s | %s |\n", figure, b->name, b->workers, value, vs,
         verdict < 0 ? "-" : target, verdict < 0 ? "" : verdict ? "met" : "MISSED");
  fflush(stdout);
}

/* ---- W1, W2, W3: us per task ------------------------------------------------------ */

typedef struct per_task {
  bench_workload fn;
  int size;
} per_task;

static double measure_per_task(void *arg, backend *b) {
  per_task *p = arg;
  return p->fn(reg, b->ex, p->size);
}

/* Rows of us per task; a target of at most `proc_us` (processes) and
 * `tcp_us` (tcp) us, or `proc_x` times sync (processes); 0: none. */
static void fig_per_task(const char *figure, bench_workload fn, int size, double proc_us,
                         double tcp_us, double proc_x) {
  double v[MAX_BACKENDS][MAX_REPS];
  per_task p = {fn, size};
  rounds(1, measure_per_task, &p, v);
  for (int i = 0; i < nb; i++) {
    double us = median_of(v[i]), x = ratio_of(v[i], v[0]);
    char value[64], vs[64], target[64] = "";
    snprintf(value, sizeof value, "%.3f us/task", us);
    snprintf(vs, sizeof vs, "%.2fx sync", x);
    int verdict = -1;
    if (is(&bs[i], "processes") && proc_x > 0) {
      snprintf(target, sizeof target, "<= %gx sync", proc_x);
      verdict = x <= proc_x;
    } else if (is(&bs[i], "processes") && proc_us > 0) {
      snprintf(target, sizeof target, "<= %g us", proc_us);
      verdict = us <= proc_us;
    } else if (is(&bs[i], "tcp") && tcp_us > 0) {
      snprintf(target, sizeof target, "<= %g us", tcp_us);
      verdict = us <= tcp_us;
    }
    row(figure, &bs[i], value, vs, target, verdict);
  }
}

/* ---- peak live of tree reductions ------------------------------------------------- */

static double measure_peak(void *arg, backend *b) {
  return (double)bench_tree_peak(reg, b->ex, *(int *)arg);
}

static void fig_peak(int leaves) {
  double v[MAX_BACKENDS][MAX_REPS];
  rounds(0, measure_peak, &leaves, v);
  char figure[96];
  snprintf(figure, sizeof figure, "tree reduction of %d leaves: peak live results", leaves);
  for (int i = 0; i < nb; i++) {
    char value[64], vs[64];
    snprintf(value, sizeof value, "%.0f (most %.0f)", median_of(v[i]), max_of(v[i]));
    snprintf(vs, sizeof vs, "sync %.0f", median_of(v[0]));
    int verdict = is(&bs[i], "processes") || is(&bs[i], "tcp") ? max_of(v[i]) <= 64 : -1;
    row(figure, &bs[i], value, vs, "most <= 64", verdict);
  }
}

/* ---- the co-occurrence job ------------------------------------------------------------ */

typedef struct cooc {
  char **paths;        /* the corpus files */
  int n;
  int64_t pairs;       /* the sum of all counts the text holds */
  tg_value *top;       /* the first run's (sync's) top-k and size */
  tg_value *size;
} cooc;

/* Contents already taken (FNV-1a 64 of each file): many packages ship
 * the same copyright file, and a corpus of copies has few distinct pairs. */
typedef struct seen_set {
  uint64_t *h;
  size_t n, cap;
} seen_set;

/* Whether text was seen before; remembers it. */
static bool seen_before(seen_set *s, const char *text, size_t n) {
  uint64_t h = 14695981039346656037u;
  for (size_t i = 0; i < n; i++) h = (h ^ (unsigned char)text[i]) * 1099511628211u;
  for (size_t i = 0; i < s->n; i++)
    if (s->h[i] == h) return true;
  if (s->n == s->cap) {
    uint64_t *nh = realloc(s->h, (s->cap = s->cap ? 2 * s->cap : 256) * sizeof *nh);
    if (!nh) return false;
    s->h = nh;
  }
  s->h[s->n++] = h;
  return false;
}

/* Append the plain-text files matching pattern (sorted; each content
 * once per pass) to buf until it holds `want` bytes; the bytes added. */
static size_t add_texts(const char *pattern, seen_set *seen, char *buf, size_t *len,
                        size_t want, int *used) {
  glob_t gl;
  size_t added = 0;
  if (glob(pattern, 0, NULL, &gl) != 0) return 0;
  for (size_t i = 0; i < gl.gl_pathc && *len < want; i++) {
    struct stat st;
    size_t n = 0;
    char *t = stat(gl.gl_pathv[i], &st) == 0 && S_ISREG(st.st_mode)
                  ? bench_read_file(gl.gl_pathv[i], &n) : NULL;
    if (t && n > 0 && !memchr(t, '\0', n) && !seen_before(seen, t, n)) { /* text only */
      size_t take = n < want - *len ? n : want - *len;
      memcpy(buf + *len, t, take);
      *len += take;
      added += take;
      ++*used;
    }
    free(t);
  }
  globfree(&gl);
  return added;
}

/* The system's plain-text files the corpus is made of, in this order. */
static const char *const corpus_sources[] = {
    "/usr/share/common-licenses/*", "/usr/share/doc/*/copyright",
    "/usr/share/doc/*/*.txt", "/usr/share/vim/vim*/doc/*.txt"};
#define NSOURCES (sizeof corpus_sources / sizeof corpus_sources[0])

/* Write the corpus: `files` files of about bytes/files each, cut at
 * whitespace; 0 or -1 with a line on stderr. */
static int cooc_corpus(cooc *c, int files, size_t bytes, int window) {
  char *buf = malloc(bytes);
  size_t len = 0, added = 1;
  int used = 0, passes = 0;
  while (buf && len < bytes && added > 0) { /* again from the start while short */
    seen_set seen = {NULL, 0, 0};
    added = 0;
    passes++;
    for (size_t s = 0; s < NSOURCES; s++)
      added += add_texts(corpus_sources[s], &seen, buf, &len, bytes, &used);
    free(seen.h);
  }
  if (!buf || len < bytes) {
    fprintf(stderr, "bench_offload: no plain-text files in %s, %s, %s or %s to build "
            "the co-occurrence corpus from\n", corpus_sources[0], corpus_sources[1],
            corpus_sources[2], corpus_sources[3]);
    free(buf);
    return -1;
  }
  c->paths = calloc((size_t)files, sizeof *c->paths);
  if (!c->paths) {
    fprintf(stderr, "bench_offload: co-occurrence corpus: out of memory\n");
    free(buf);
    return -1;
  }
  c->n = files;
  c->pairs = 0;
  size_t at = 0;
  for (int i = 0; i < files; i++) {
    size_t end = i == files - 1 ? len : (size_t)(i + 1) * (len / (size_t)files);
    while (end < len && buf[end] != ' ' && buf[end] != '\n') end++;
    if (end < at) end = at;
    char path[4200];
    snprintf(path, sizeof path, "%s/text-%02d.txt", tmpdir, i);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf + at, 1, end - at, f) != end - at || fclose(f) != 0) {
      fprintf(stderr, "bench_offload: %s: %s\n", path, strerror(errno));
      free(buf);
      return -1;
    }
    c->paths[i] = strdup(path);
    c->pairs += bench_cooc_pairs(buf + at, end - at, window);
    at = end;
  }
  free(buf);
  char line[256];
  snprintf(line, sizeof line, "co-occurrence corpus: %.1f MB from %d reads of %d pass%s over "
           "the system's text files", (double)len / 1e6, used, passes, passes > 1 ? "es" : "");
  note(line);
  return 0;
}

static void cooc_free(cooc *c) {
  for (int i = 0; i < c->n; i++) {
    if (c->paths[i]) unlink(c->paths[i]);
    free(c->paths[i]);
  }
  free(c->paths);
  tg_value_unref(c->top);
  tg_value_unref(c->size);
}

/* The job's graph in g: outs[0] the top-k, outs[1] the size of the merge. */
static void cooc_graph(const cooc *c, tg_graph *g, tg_node outs[2]) {
  tg_arg *counts = malloc((size_t)c->n * sizeof *counts);
  for (int i = 0; i < c->n; i++)
    counts[i] = tg_arg_node(tg_call(g, "cooc.count", 2, tg_arg_value(tg_str_c(c->paths[i])),
                                    tg_arg_value(tg_int(sz->cooc_window))));
  tg_node merged = TG_NODE_NONE;
  tg_graph_add(g, "cooc.merge", counts, (size_t)c->n, NULL, &merged);
  free(counts);
  outs[0] = tg_call(g, "cooc.top", 2, tg_arg_node(merged), tg_arg_value(tg_int(sz->cooc_k)));
  outs[1] = tg_call(g, "cooc.size", 1, tg_arg_node(merged));
}

/* Seconds of the whole job (graph built and computed), results checked. */
static double measure_cooc(void *arg, backend *b) {
  cooc *c = arg;
  double t0 = tgt_now();
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node outs[2];
  cooc_graph(c, g, outs);
  tg_value *res[2] = {NULL, NULL};
  bench_run(g, outs, 2, b->ex, res);
  double dt = tgt_now() - t0;
  tg_graph_free(g);
  bool ok = res[0] && res[1] && tg_list_len(res[0]) == (size_t)sz->cooc_k &&
            tg_value_int(tg_list_get(res[1], 1)) == c->pairs;
  bench_check(ok, "co-occurrence: top-k or the sum of the counts");
  if (ok && !c->top) { /* the first run, sync's: the reference */
    c->top = res[0];
    c->size = res[1];
    return dt;
  }
  if (ok) {
    char what[96];
    snprintf(what, sizeof what, "co-occurrence on %s: top-%d differs from sync's", b->name,
             sz->cooc_k);
    bench_check(tg_value_equal(res[0], c->top), what);
    snprintf(what, sizeof what, "co-occurrence on %s: pairs differ from sync's", b->name);
    bench_check(tg_value_equal(res[1], c->size), what);
  }
  tg_value_unref(res[0]);
  tg_value_unref(res[1]);
  return dt;
}

/* Distinct pairs in the first file's map (on sync, outside the timing). */
static int64_t cooc_file_keys(const cooc *c) {
  tg_graph *g = NULL;
  tg_graph_new(reg, &g);
  tg_node n = tg_call(g, "cooc.count", 2, tg_arg_value(tg_str_c(c->paths[0])),
                      tg_arg_value(tg_int(sz->cooc_window)));
  n = tg_call(g, "cooc.size", 1, tg_arg_node(n));
  tg_value *v = NULL;
  bench_run(g, &n, 1, NULL, &v);
  int64_t keys = v ? tg_value_int(tg_list_get(v, 0)) : -1;
  tg_value_unref(v);
  tg_graph_free(g);
  return keys;
}

static void fig_cooc(void) {
  cooc c = {NULL, 0, 0, NULL, NULL};
  if (cooc_corpus(&c, sz->cooc_files, sz->cooc_bytes, sz->cooc_window) != 0) {
    bench_failed = 1;
    cooc_free(&c);
    return;
  }
  int64_t keys0 = cooc_file_keys(&c);
  double v[MAX_BACKENDS][MAX_REPS];
  rounds(0, measure_cooc, &c, v);
  char figure[160];
  snprintf(figure, sizeof figure, "co-occurrence, %d files of %.1f MB (window %d) -> merge "
           "-> top %d, end to end", c.n, (double)sz->cooc_bytes / c.n / 1e6, sz->cooc_window,
           sz->cooc_k);
  for (int i = 0; i < nb; i++) {
    double s = median_of(v[i]), speedup = ratio_of(v[0], v[i]);
    char value[64], vs[64];
    snprintf(value, sizeof value, "%.3f s", s);
    snprintf(vs, sizeof vs, "speedup %.2fx over sync", speedup);
    row(figure, &bs[i], value, vs, "speedup >= 1.3x", is(&bs[i], "processes") ? speedup >= 1.3 : -1);
  }
  if (c.size) {
    char line[256];
    snprintf(line, sizeof line, "co-occurrence: %lld pairs counted, %lld distinct in the "
             "merged map, %lld in the first file's map", (long long)c.pairs,
             (long long)tg_value_int(tg_list_get(c.size, 0)), (long long)keys0);
    note(line);
  }
  cooc_free(&c);
}

/* ---- 2,000,000 tasks from graph.json ------------------------------------------------ */

/* The graph as Python's json.dump(g, f) writes it (one line, ", " and
 * ": " separators); the number of tasks, 0 when it cannot be written. */
static size_t json_write(const char *path, int leaves, int group) {
  FILE *f = fopen(path, "w");
  if (!f) return 0;
  setvbuf(f, NULL, _IOFBF, 1 << 20);
  fputs("{\"tgraph\": 1, \"tasks\": {", f);
  for (int i = 0; i < leaves; i++)
    fprintf(f, "%s\"l%d\": {\"fn\": \"inc\", \"args\": [%d]}", i ? ", " : "", i, i);
  int groups = (leaves + group - 1) / group;
  for (int gi = 0; gi < groups; gi++) {
    fprintf(f, ", \"g%d\": {\"fn\": \"sum\", \"args\": [", gi);
    for (int i = gi * group; i < leaves && i < (gi + 1) * group; i++)
      fprintf(f, "%s{\"ref\": \"l%d\"}", i > gi * group ? ", " : "", i);
    fputs("]}", f);
  }
  fputs(", \"total\": {\"fn\": \"sum\", \"args\": [", f);
  for (int gi = 0; gi < groups; gi++) fprintf(f, "%s{\"ref\": \"g%d\"}", gi ? ", " : "", gi);
  fputs("]}}, \"outputs\": [\"total\"]}", f);
  return fclose(f) == 0 ? (size_t)leaves + (size_t)groups + 1 : 0;
}

typedef struct json_job {
  tg_graph *g;
  tg_node out;
  int64_t want;
} json_job;

static double measure_json(void *arg, backend *b) {
  json_job *j = arg;
  double t0 = tgt_now();
  int64_t r = bench_run_int(j->g, j->out, b->ex);
  double dt = tgt_now() - t0;
  bench_check(r == j->want, "graph.json sums");
  return dt;
}

static void fig_json(void) {
  char path[4200];
  snprintf(path, sizeof path, "%s/graph.json", tmpdir);
  int leaves = sz->json_leaves;
  size_t tasks = json_write(path, leaves, sz->json_group);
  json_job j = {NULL, TG_NODE_NONE, (int64_t)leaves * (leaves + 1) / 2};
  tg_error err;
  tg_error_clear(&err);
  double t0 = tgt_now();
  if (!tasks || tg_graphjson_load(path, reg, NULL, &j.g, NULL, &err) != TG_OK) {
    fprintf(stderr, "bench_offload: %s: %s\n", path, tasks ? err.msg : strerror(errno));
    bench_failed = 1;
    unlink(path);
    return;
  }
  double load = tgt_now() - t0;
  unlink(path);
  j.out = tg_graph_find(j.g, "total");
  double v[MAX_BACKENDS][MAX_REPS];
  rounds(0, measure_json, &j, v);
  char figure[160];
  snprintf(figure, sizeof figure, "graph.json, %zu tasks (%d leaves, sums of %d): compute "
           "only (load %.2f s)", tasks, leaves, sz->json_group, load);
  for (int i = 0; i < nb; i++) {
    double s = median_of(v[i]), x = ratio_of(v[i], v[0]);
    char value[64], vs[64];
    snprintf(value, sizeof value, "%.3f s (%.3f us/task)", s, s * 1e6 / (double)tasks);
    snprintf(vs, sizeof vs, "%.2fx sync", x);
    if (is(&bs[i], "processes")) row(figure, &bs[i], value, vs, "<= 2x sync", x <= 2);
    else if (is(&bs[i], "tcp")) row(figure, &bs[i], value, vs, "<= 3x sync", x <= 3);
    else row(figure, &bs[i], value, vs, "", -1);
  }
  tg_graph_free(j.g);
}

/* ---- WA: a large array there and back ---------------------------------------------- */

typedef struct wa_job {
  tg_value *a;
  char *src, *dst;           /* the memcpy baseline's buffers */
  double copy[MAX_BACKENDS][MAX_REPS];
  int round[MAX_BACKENDS];   /* calls so far per backend (warm-up included) */
} wa_job;

/* A memcpy of the same bytes, then WA: the GB/s of the round trip. */
static double measure_wa(void *arg, backend *b) {
  wa_job *w = arg;
  size_t bytes = tg_ndarray_nbytes(w->a);
  int i = (int)(b - bs), r = w->round[i]++ - 1; /* -1: the warm-up */
  double c = bench_memcpy_secs(w->dst, w->src, bytes);
  if (r >= 0) w->copy[i][r] = (double)bytes / c * 1e-9;
  return (double)bytes / bench_wa(reg, b->ex, w->a) * 1e-9;
}

static void fig_wa(void) {
  int64_t n = sz->wa_elems;
  size_t bytes = (size_t)n * 8;
  wa_job w = {tg_ndarray_new(TG_DT_F64, 1, &n), malloc(bytes), malloc(bytes), {{0}}, {0}};
  if (!w.a || !w.src || !w.dst) {
    fprintf(stderr, "bench_offload: WA: out of memory\n");
    bench_failed = 1;
  } else {
    double *d = tg_ndarray_data_mut(w.a);
    for (int64_t i = 0; i < n; i++) d[i] = (double)i * 0.25;
    memset(w.src, 1, bytes);
    memset(w.dst, 2, bytes);
    double v[MAX_BACKENDS][MAX_REPS];
    rounds(1, measure_wa, &w, v);
    char figure[96];
    snprintf(figure, sizeof figure, "WA %.0f MiB f64 array there and back", bytes / 1048576.0);
    for (int i = 0; i < nb; i++) {
      double gbs = median_of(v[i]), copy = median_of(w.copy[i]), x = ratio_of(v[i], w.copy[i]);
      char value[64], vs[64];
      snprintf(value, sizeof value, "%.2f GB/s", gbs);
      snprintf(vs, sizeof vs, "%.0f%% of memcpy (%.2f GB/s)", 100 * x, copy);
      if (is(&bs[i], "processes"))
        row(figure, &bs[i], value, vs, "memcpy speed (>= 90%)", x >= 0.9);
      else if (is(&bs[i], "tcp")) row(figure, &bs[i], value, vs, ">= 2 GB/s", gbs >= 2);
      else row(figure, &bs[i], value, vs, "", -1);
    }
    snprintf(figure, sizeof figure, "WA %.0f MiB sent again as soon as it came back (a new "
             "executor's second send)", bytes / 1048576.0);
    for (int i = 1; i < nb; i++) {
      if (!is(&bs[i], "processes") && !is(&bs[i], "tcp")) continue;
      double again[3];
      int k = 0;
      for (; k < 3; k++) {
        tg_executor *ex = NULL;
        tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = bs[i].name,
                               .workers = bs[i].workers};
        if (is(&bs[i], "tcp") ? bench_tcp_executor(&bs[i].tcp, reg, &ex) != 0
                              : tg_executor_new(reg, &eo, &ex, NULL) != TG_OK) {
          fprintf(stderr, "bench_offload: WA again: no %s executor\n", bs[i].name);
          bench_failed = 1;
          break;
        }
        bench_wa(reg, ex, w.a);
        again[k] = (double)bytes / bench_wa(reg, ex, w.a) * 1e-9;
        tg_executor_free(ex);
      }
      if (k < 3) continue;
      double gbs = bench_median(again, 3), copy = median_of(w.copy[i]);
      char value[64], vs[64];
      snprintf(value, sizeof value, "%.2f GB/s", gbs);
      snprintf(vs, sizeof vs, "%.0f%% of memcpy (%.2f GB/s)", 100 * gbs / copy, copy);
      row(figure, &bs[i], value, vs, "", -1);
    }
  }
  tg_value_unref(w.a);
  free(w.src);
  free(w.dst);
}

/* ---- driver -------------------------------------------------------------------------- */

static int parse_backends(const char *list) {
  char copy[256];
  snprintf(copy, sizeof copy, "%s", list);
  for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
       tok = strtok_r(NULL, ",", &save)) {
    char *colon = strchr(tok, ':');
    if (colon) *colon = '\0';
    unsigned workers = colon ? (unsigned)strtoul(colon + 1, NULL, 10) : 2;
    if (strcmp(tok, "sync") == 0) continue; /* always there */
    if (nb == MAX_BACKENDS || strlen(tok) >= sizeof bs[0].name || workers == 0 ||
        (strcmp(tok, "tcp") == 0 && workers > BENCH_TCP_MAX)) {
      fprintf(stderr, "bench_offload: bad backend '%s'\n", tok);
      return -1;
    }
    snprintf(bs[nb].name, sizeof bs[nb].name, "%s", tok);
    bs[nb++].workers = workers;
  }
  return 0;
}

/* Fork the tcp workers first (a child must not inherit an executor), then
 * start the other executors. */
static int start_backends(void) {
  for (int i = 1; i < nb; i++)
    if (is(&bs[i], "tcp") && bench_tcp_start(&bs[i].tcp, (int)bs[i].workers) != 0) return -1;
  for (int i = 1; i < nb; i++) {
    if (is(&bs[i], "tcp")) {
      if (bench_tcp_executor(&bs[i].tcp, reg, &bs[i].ex) != 0) return -1;
      continue;
    }
    tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = bs[i].name,
                           .workers = bs[i].workers};
    tg_error err;
    tg_error_clear(&err);
    if (tg_executor_new(reg, &eo, &bs[i].ex, &err) != TG_OK) {
      fprintf(stderr, "bench_offload: backend %s: %s\n", bs[i].name, err.msg);
      return -1;
    }
  }
  return 0;
}

static void stop_backends(void) {
  for (int i = 0; i < nb; i++) {
    tg_executor_free(bs[i].ex);
    bs[i].ex = NULL;
    bench_tcp_stop(&bs[i].tcp);
  }
}

static bool wanted(const char *only, const char *figure) {
  if (!only) return true;
  size_t n = strlen(figure);
  for (const char *p = only; (p = strstr(p, figure)); p += n)
    if ((p == only || p[-1] == ',') && (p[n] == '\0' || p[n] == ',')) return true;
  return false;
}

static int usage(const char *self) {
  fprintf(stderr, "usage: %s [--quick] [--reps N] [--backend NAME[:WORKERS][,...]]... "
          "[--only w2,w1,w3,peak,cooc,json,wa]\n", self);
  return 2;
}

int main(int argc, char **argv) {
  bench_set_name("bench_offload");
  const char *only = NULL;
  bool chosen = false;
  bs[0] = (backend){.name = "sync", .workers = 1};
  nb = 1;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "--quick") == 0) {
      sz = &quick;
    } else if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc) {
      reps = atoi(argv[++i]);
      if (reps < 1 || reps > MAX_REPS) return usage(argv[0]);
    } else if (strcmp(argv[i], "--backend") == 0 && i + 1 < argc) {
      chosen = true;
      if (parse_backends(argv[++i]) != 0) return usage(argv[0]);
    } else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc) {
      only = argv[++i];
    } else {
      return usage(argv[0]);
    }
  }
  if (!chosen) parse_backends("threads:2,processes:2,tcp:2");
  if (reps == 0) reps = sz == &quick ? 2 : 5;

  const char *t = getenv("TMPDIR");
  snprintf(tmpdir, sizeof tmpdir, "%s/bench_offloadXXXXXX", t && *t ? t : "/tmp");
  if (!mkdtemp(tmpdir)) {
    fprintf(stderr, "bench_offload: mkdtemp %s: %s\n", tmpdir, strerror(errno));
    return 1;
  }
  reg = bench_registry();
  int ok = reg && start_backends() == 0;
  if (ok) {
    printf("## tgraph out-of-process benchmark%s\n\nMedians of %d; each repetition runs "
           "every backend in turn; a ratio is the median of the repetitions' own ratios.\n\n"
           "| figure | backend | median | same run | target | |\n|---|---|---|---|---|---|\n",
           sz == &quick ? " (quick)" : "", reps);
    char f[96];
    if (wanted(only, "w2")) {
      snprintf(f, sizeof f, "W2 chain of %d", sz->w2_len);
      fig_per_task(f, bench_w2, sz->w2_len, 0, 0, 10);
    }
    if (wanted(only, "w1")) {
      snprintf(f, sizeof f, "W1 %d independent + sum", sz->w1_tasks);
      fig_per_task(f, bench_w1, sz->w1_tasks, 0.3, 0.6, 0);
    }
    if (wanted(only, "w3")) {
      snprintf(f, sizeof f, "W3 tree of %d leaves (%d tasks)", sz->w3_leaves,
               2 * sz->w3_leaves - 1);
      fig_per_task(f, bench_w3, sz->w3_leaves, 0.3, 0, 0);
    }
    if (wanted(only, "peak"))
      for (int i = 0; i < 2; i++) fig_peak(sz->peak_leaves[i]);
    if (wanted(only, "cooc")) fig_cooc();
    if (wanted(only, "json")) fig_json();
    if (wanted(only, "wa")) fig_wa();
    if (notes[0]) printf("\n%s", notes);
  } else {
    bench_failed = 1;
  }
  stop_backends();
  tg_registry_free(reg);
  rmdir(tmpdir);
  return bench_failed;
}
