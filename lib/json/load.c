/* lib/json/load.c: the graph.json reader's entry points: read the file,
 * load its plugins, then parse, resolve and emit into a new graph. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "json/gj_internal.h"
#include "tgraph/plugin.h"

/* The info and the arena its strings live in. */
typedef struct info_impl {
  tg_graphjson_info pub;
  gj_arena arena;
} info_impl;

void tg__gj_release(gj_doc *d) {
  /* Tasks below work_done were emitted: the graph has their constants
   * and their arguments are gone. */
  for (size_t i = d->work_done; i < d->ntasks; i++)
    for (size_t j = 0; j < d->tasks[i].nargs; j++) {
      gj_targ a = d->tasks[i].args[j];
      if (tg__gj_is_value(a)) tg_value_unref(tg__gj_value_of(a));
      else tg__gj_release_arg(tg__gj_arg_of(a));
    }
}

void tg_graphjson_info_free(tg_graphjson_info *info) {
  if (info == NULL) return;
  info_impl *im = (info_impl *)info;
  tg__free(info->tasks);
  tg__free(info->outputs);
  tg__free(info->output_nodes);
  tg__free(info->plugins);
  tg__gj_arena_free(&im->arena);
  tg__free(im);
}

/* ---- plugins ---- */

typedef struct plugins {
  tg_graphjson_plugin *v;
  char **real; /* realpath of each, to load a file once */
  size_t n, cap;
} plugins;

static bool readable(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Look for lib<name>.so in the ':'-separated dirs; true when found. */
static bool search(const char *dirs, const char *name, char *out,
                   size_t size) {
  for (const char *p = dirs; p != NULL && *p != '\0';) {
    const char *colon = strchr(p, ':');
    size_t n = colon ? (size_t)(colon - p) : strlen(p);
    if (n > 0 &&
        (size_t)snprintf(out, size, "%.*s/lib%s.so", (int)n, p, name) < size &&
        readable(out))
      return true;
    p = colon ? colon + 1 : NULL;
  }
  return false;
}

/* Where plugin entry `e` is: out gets the path. */
static int resolve_plugin(const char *e, const char *base,
                          const tg_graphjson_opts *o, char *out, size_t size,
                          char *looked, size_t lsize) {
  if (strchr(e, '/') != NULL) {
    if (e[0] == '/' || base == NULL) snprintf(out, size, "%s", e);
    else snprintf(out, size, "%s/%s", base, e);
    return TG_OK; /* loading says what is wrong with it */
  }
  const char *env = getenv("TGRAPH_PLUGIN_PATH");
  if (search(env, e, out, size)) return TG_OK;
  for (size_t i = 0; o != NULL && i < o->nplugin_dirs; i++)
    if (search(o->plugin_dirs[i], e, out, size)) return TG_OK;
  if (search(base ? base : ".", e, out, size)) return TG_OK;
  size_t n = (size_t)snprintf(looked, lsize, "TGRAPH_PLUGIN_PATH%s",
                              env && *env ? "" : " (unset)");
  for (size_t i = 0; o != NULL && i < o->nplugin_dirs && n < lsize; i++)
    n += (size_t)snprintf(looked + n, lsize - n, ", %s", o->plugin_dirs[i]);
  if (n < lsize) snprintf(looked + n, lsize - n, ", %s", base ? base : ".");
  return TG_ENOTFOUND;
}

static int load_one(gj_doc *d, tg_registry *reg, plugins *pl, const char *e,
                    const char *base, const tg_graphjson_opts *o, tg_error *e2) {
  char path[PATH_MAX], looked[160];
  if (resolve_plugin(e, base, o, path, sizeof path, looked, sizeof looked) !=
      TG_OK)
    return tg__error_set(e2, TG_ENOTFOUND,
                         "plugin '%s' not found: no lib%s.so in %s", e, e,
                         looked);
  char *real = realpath(path, NULL);
  for (size_t i = 0; real != NULL && i < pl->n; i++)
    if (strcmp(pl->real[i], real) == 0) {
      free(real);
      return TG_OK; /* already loaded */
    }
  if (pl->n == pl->cap) {
    size_t cap = pl->cap ? pl->cap * 2 : 4;
    tg_graphjson_plugin *v = tg__realloc(pl->v, cap * sizeof *v);
    if (v != NULL) pl->v = v;
    char **r = v ? tg__realloc(pl->real, cap * sizeof *r) : NULL;
    if (r == NULL) {
      free(real);
      return tg__error_set(e2, TG_ENOMEM, "out of memory");
    }
    pl->real = r;
    pl->cap = cap;
  }
  char *keep = real ? real : strdup(path); /* compared by later loads */
  if (keep == NULL) return tg__error_set(e2, TG_ENOMEM, "out of memory");
  tg_plugin_info info;
  int rc = tg_registry_load_plugin_info(reg, path, &info, e2);
  const char *shown = real ? real : path; /* without "dir/../" detours */
  const char *copy = tg__gj_strdup(&d->arena, shown, strlen(shown));
  if (rc == TG_OK && copy == NULL) rc = tg__error_set(e2, TG_ENOMEM, "out of memory");
  if (rc != TG_OK) {
    free(keep);
    return rc;
  }
  pl->v[pl->n] = (tg_graphjson_plugin){copy, info.digest, info.nfuncs};
  pl->real[pl->n++] = keep;
  return TG_OK;
}

static int load_plugins(gj_doc *d, tg_registry *reg,
                        const tg_graphjson_opts *o, plugins *pl) {
  if (o != NULL && o->no_plugins) return TG_OK;
  tg_error e;
  for (size_t i = 0; o != NULL && i < o->nplugins; i++) {
    tg_error_clear(&e);
    int rc = load_one(d, reg, pl, o->plugins[i], NULL, o, &e);
    if (rc != TG_OK) {
      if (d->err) *d->err = e;
      return rc;
    }
  }
  for (size_t i = 0; i < d->nplugins; i++) {
    tg_error_clear(&e);
    int rc = load_one(d, reg, pl, d->plugins[i].s, d->base_dir, o, &e);
    if (rc != TG_OK) return tg__gj_fail(d, d->plugins[i].off, rc, "%s", e.msg);
  }
  return TG_OK;
}

/* ---- info ---- */

/* The document's tasks become the info's, in place: an info task is
 * smaller than a document task, so task i is read before anything is
 * written over it, and no second array of a million tasks is needed. */
_Static_assert(sizeof(gj_task) >= sizeof(tg_graphjson_task),
               "tasks are converted in place");
static tg_graphjson_task *convert_tasks(gj_doc *d) {
  char *base = (char *)d->tasks;
  for (size_t i = 0; i < d->ntasks; i++) {
    gj_task t;
    memcpy(&t, base + i * sizeof t, sizeof t);
    tg_graphjson_task o = {t.key, t.fn, t.node, t.line, t.col, t.cache,
                           t.retries, t.timeout, t.deps, t.nrefs};
    memcpy(base + i * sizeof o, &o, sizeof o);
  }
  size_t n = d->ntasks ? d->ntasks : 1;
  tg_graphjson_task *out = tg__realloc(base, n * sizeof *out);
  d->tasks = NULL; /* converted: no longer the document's */
  return out ? out : (tg_graphjson_task *)base;
}

static int make_info(gj_doc *d, plugins *pl, tg_graphjson_info **out) {
  tg__gj_arena_free(&d->work); /* the parse's: the info needs none of it */
  info_impl *im = tg__calloc(1, sizeof *im);
  if (im == NULL) return TG_ENOMEM;
  tg_graphjson_info *in = &im->pub;
  in->outputs = tg__calloc(d->noutputs ? d->noutputs : 1, sizeof(char *));
  in->output_nodes = tg__calloc(d->noutputs ? d->noutputs : 1, sizeof(tg_node));
  if (!in->outputs || !in->output_nodes) {
    tg_graphjson_info_free(in);
    return TG_ENOMEM;
  }
  for (size_t i = 0; i < d->noutputs; i++) {
    in->outputs[i] = d->outputs[i].s;
    in->output_nodes[i] = d->tasks[d->output_tasks[i]].node;
  }
  in->ntasks = d->ntasks;
  for (size_t i = 0; i < d->ntasks; i++) in->nmaps += d->tasks[i].map != 0;
  in->tasks = convert_tasks(d); /* the last use of d->tasks */
  in->noutputs = d->noutputs;
  in->plugins = pl->v;
  in->nplugins = pl->n;
  pl->v = NULL;
  /* The strings above live in the document's arena: the info keeps it. */
  im->arena = d->arena;
  memset(&d->arena, 0, sizeof d->arena);
  *out = in;
  return TG_OK;
}

/* ---- entry points ---- */

static void doc_free(gj_doc *d, plugins *pl) {
  if (!d->handed_over) tg__gj_release(d);
  tg__free(d->tasks);
  tg__free(d->table);
  tg__free(d->outputs);
  tg__free(d->plugins);
  tg__free(d->output_tasks);
  tg__free(d->marks);
  tg__gj_arena_free(&d->arena);
  tg__gj_arena_free(&d->work);
  tg__gj_arena_free(&d->ref_keys);
  for (size_t i = 0; i < pl->n; i++) free(pl->real[i]);
  tg__free(pl->real);
  tg__free(pl->v);
}

static int run(gj_doc *d, tg_registry *reg, const tg_graphjson_opts *o,
               plugins *pl, tg_graph **graph, tg_graphjson_info **info) {
  int rc = tg__gj_parse(d);
  if (rc == TG_OK) rc = tg__gj_index(d);
  if (rc == TG_OK) rc = load_plugins(d, reg, o, pl);
  if (rc == TG_OK) rc = tg__gj_resolve(d, reg);
  if (rc != TG_OK) return rc;
  if (!d->slash_keys) { /* the key index is needed only for build names */
    tg__free(d->table);
    d->table = NULL;
  }
  if ((rc = tg_graph_new(reg, graph)) != TG_OK)
    return tg__gj_fail(d, 0, rc, "cannot create a graph: %s", tg_strerror(rc));
  rc = tg__gj_emit(d, *graph);
  d->handed_over = rc == TG_OK; /* every constant now belongs to the graph */
  tg__free(d->marks); /* the emit's: not needed for the info */
  tg__free(d->table);
  d->marks = NULL, d->table = NULL;
  if (rc == TG_OK && info != NULL && make_info(d, pl, info) != TG_OK)
    rc = tg__gj_fail(d, 0, TG_ENOMEM, "out of memory");
  if (rc != TG_OK) {
    tg_graph_free(*graph);
    *graph = NULL;
  }
  return rc;
}

/* Version 1 structs end before max_bytes: read only what the caller's
 * version has. */
static int check_opts(const tg_graphjson_opts *o, tg_error *err) {
  if (o != NULL && o->version != TG_GRAPHJSON_OPTS_V1 && o->version != TG_GRAPHJSON_OPTS_V2)
    return tg__error_set(err, TG_EINVAL, "tg_graphjson_opts.version is %u, expected %d or %d",
                         o->version, TG_GRAPHJSON_OPTS_V1, TG_GRAPHJSON_OPTS_V2);
  return TG_OK;
}

/* tg_graphjson_parse, told whether text is a private mapping of a file
 * (whose passed pages the parser may drop). */
static int parse_text(const char *text, size_t len, const char *name,
                      const char *base_dir, bool mapped, tg_registry *reg,
                      const tg_graphjson_opts *opts, tg_graph **graph,
                      tg_graphjson_info **info, tg_error *err) {
  if (graph) *graph = NULL;
  if (info) *info = NULL;
  if (text == NULL || reg == NULL || graph == NULL)
    return tg__error_set(err, TG_EINVAL, "graph.json: missing argument");
  int rc = check_opts(opts, err);
  if (rc != TG_OK) return rc;
  if (text[len] != '\0') /* the parser relies on a NUL after the text */
    return tg__error_set(err, TG_EINVAL,
                         "graph.json text must be followed by a NUL byte");
  gj_doc d = {.text = text, .len = len, .name = name ? name : "<graph>",
              .base_dir = base_dir, .text_mapped = mapped, .err = err};
  plugins pl = {0};
  rc = run(&d, reg, opts, &pl, graph, info);
  doc_free(&d, &pl);
  return rc;
}

int tg_graphjson_parse(const char *text, size_t len, const char *name,
                       const char *base_dir, tg_registry *reg,
                       const tg_graphjson_opts *opts, tg_graph **graph,
                       tg_graphjson_info **info, tg_error *err) {
  return parse_text(text, len, name, base_dir, false, reg, opts, graph, info,
                    err);
}

/* A mapping of the file followed by a NUL, as the parser wants: the zero
 * fill of the file's last page, or when the file fills its last page, an
 * extra page of zeros reserved with the mapping. NULL when it cannot be
 * mapped (not a regular file, empty); *maplen is what to munmap. */
static char *map_file(int fd, const struct stat *st, size_t *maplen) {
  long page = sysconf(_SC_PAGESIZE);
  if (!S_ISREG(st->st_mode) || st->st_size == 0 || page <= 0) return NULL;
  size_t size = (size_t)st->st_size;
  size_t whole = tg__align_up(size, (size_t)page) + (size_t)page;
  char *p = mmap(NULL, whole, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return NULL;
  if (mmap(p, size, PROT_READ, MAP_PRIVATE | MAP_FIXED, fd, 0) == MAP_FAILED) {
    munmap(p, whole);
    return NULL;
  }
  madvise(p, size, MADV_SEQUENTIAL);
  *maplen = whole;
  return p;
}

/* Pages of a mapped file the parser has passed are dropped, so a big
 * file costs its resident pages only around the parser (they come back
 * from the page cache if an error message needs them). */
void tg__gj_text_done(gj_doc *d, size_t upto) {
  if (!d->text_mapped) return;
  long page = sysconf(_SC_PAGESIZE);
  if (page <= 0) return;
  size_t end = upto / (size_t)page * (size_t)page;
  if (end > 0) madvise((void *)d->text, end, MADV_DONTNEED);
}

/* The whole file with a NUL after it: mapped (*mapped = bytes to munmap)
 * or read into a buffer (tg__free it). At most max bytes; a FIFO or pipe
 * is read as tg__read_fd reads it (see graphjson.h). */
static int read_all(const char *path, const char *what, size_t max,
                    char **out, size_t *len, size_t *mapped, tg_error *err) {
  struct stat st;
  int fd = tg__input_open(path, what, max, 0, &st, err);
  if (fd < 0) return fd;
  if ((*out = map_file(fd, &st, mapped)) != NULL) {
    close(fd);
    *len = (size_t)st.st_size;
    return TG_OK;
  }
  *mapped = 0;
  int rc = tg__read_fd(fd, S_ISREG(st.st_mode) ? (size_t)st.st_size : 1 << 16,
                       max, out, len);
  close(fd);
  return rc == TG_OK ? TG_OK : tg__input_error(rc, path, what, max, err);
}

int tg_graphjson_load(const char *path, tg_registry *reg,
                      const tg_graphjson_opts *opts, tg_graph **graph,
                      tg_graphjson_info **info, tg_error *err) {
  if (graph) *graph = NULL;
  if (info) *info = NULL;
  if (path == NULL) return tg__error_set(err, TG_EINVAL, "no graph.json path");
  char *text = NULL;
  size_t len = 0;
  size_t mapped = 0;
  int rc = check_opts(opts, err);
  if (rc != TG_OK) return rc;
  size_t max = opts && opts->version >= TG_GRAPHJSON_OPTS_V2 && opts->max_bytes
                   ? opts->max_bytes : TG_GRAPHJSON_MAX_BYTES;
  /* "-" is standard input; relative plugin paths then start here. */
  bool std_in = strcmp(path, "-") == 0;
  rc = read_all(std_in ? "/dev/stdin" : path, std_in ? "standard input" : NULL, max, &text,
                &len, &mapped, err);
  if (rc != TG_OK) return rc;
  char *dir = strdup(std_in ? "./-" : path), *slash = dir ? strrchr(dir, '/') : NULL;
  const char *base = dir == NULL ? NULL : slash == NULL ? "." : dir;
  if (slash == dir && dir != NULL) slash[1] = '\0'; /* "/x.json" */
  else if (slash != NULL) *slash = '\0';
  rc = parse_text(text, len, path, base, mapped != 0, reg, opts, graph, info,
                  err);
  free(dir);
  if (mapped) munmap(text, mapped);
  else tg__free(text);
  return rc;
}
