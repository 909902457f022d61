/* tests/test_cachekeys.c: cache keys their functions control, with a real
 * LMDB cache: arguments a function declares ignored share entries (also
 * of varargs functions, maps and node arguments) while others do not;
 * refused declarations and their messages; code ids from `tgraph
 * code-id` (blind to comments and blank space, following project
 * includes); a compiled-in function's edit dropping its results; plugins
 * compiled with cc: a rebuild with other flags keeping the results of
 * functions with code ids (and dropping those of functions without), and
 * an edit of one function's source dropping only its results, through the
 * API and through `tgraph run`. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "test_cli_util.h"
#include "tgraph.h"

/* ---- in-process functions ------------------------------------------------ */

static atomic_long nscale, nimp, nvsum;

/* scale(x, verbose): 2 * x; verbose (argument 1) is ignored. */
static int fn_scale(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx, (void)n;
  atomic_fetch_add(&nscale, 1);
  *out = tg_int(2 * tg_value_int(a[0]));
  return *out ? TG_OK : TG_ENOMEM;
}

/* imp(): 7, impure (never cached). */
static int fn_imp(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx, (void)a, (void)n;
  atomic_fetch_add(&nimp, 1);
  *out = tg_int(7);
  return *out ? TG_OK : TG_ENOMEM;
}

/* vsum(threads, x...): the sum of x...; threads (argument 0) is ignored. */
static int fn_vsum(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {
  (void)ctx;
  atomic_fetch_add(&nvsum, 1);
  int64_t s = 0;
  for (size_t i = 1; i < n; i++) s += tg_value_int(a[i]);
  *out = tg_int(s);
  return *out ? TG_OK : TG_ENOMEM;
}

/* A registry with scale, imp and vsum; "twice" has code id `code`. */
static tg_registry *reg_new(const char *code) {
  tg_registry *reg;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  tg_func_def defs[] = {
      {TG_FUNC_DEF_V2, "scale", "1", fn_scale, TG_FUNC_PURE, 2, NULL, NULL,
       TG_IGNORE_ARG(1), NULL, NULL},
      {TG_FUNC_DEF_V2, "imp", "1", fn_imp, 0, 0, NULL, NULL, 0, NULL, NULL},
      {TG_FUNC_DEF_V2, "vsum", "1", fn_vsum, TG_FUNC_PURE, -1, NULL, NULL,
       TG_IGNORE_ARG(0), NULL, NULL},
      {TG_FUNC_DEF_V2, "twice", "1", fn_scale, TG_FUNC_PURE, 1, NULL, NULL, 0, code, NULL},
  };
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
    cr_assert_eq(tg_registry_add(reg, &defs[i], NULL), TG_OK, "%s",
                 tg_registry_errmsg(reg));
  return reg;
}

/* ---- fixture: a temporary directory holding the cache -------------------- */

static char dir[256];

static void setup(void) {
  tcli_enter_tmpdir(dir, sizeof dir, "/tmp/tgkeys.XXXXXX");
  atomic_store(&nscale, 0);
  atomic_store(&nimp, 0);
  atomic_store(&nvsum, 0);
}

static void teardown(void) { tcli_leave_tmpdir(dir); }

TestSuite(cachekeys, .init = setup, .fini = teardown);

static tg_cache *open_cache(void) {
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V1, .min_compute_seconds = TG_CACHE_STORE_ALL};
  tg_cache *c = NULL;
  tg_error err;
  cr_assert_eq(tg_cache_open("cache", &o, &c, &err), TG_OK, "%s", err.msg);
  return c;
}

#define A(...) ((tg_arg[]){__VA_ARGS__})
#define NA(...) (sizeof(A(__VA_ARGS__)) / sizeof(tg_arg))
#define INT(x) tg_arg_value(tg_int(x))
#define ADD(g, fn, ...) add(g, fn, NA(__VA_ARGS__), A(__VA_ARGS__))

static tg_node add(tg_graph *g, const char *fn, size_t n, const tg_arg *args) {
  tg_node out = TG_NODE_NONE;
  cr_assert_eq(tg_graph_add(g, fn, args, n, NULL, &out), TG_OK, "%s", tg_graph_errmsg(g));
  return out;
}

/* What one compute of a graph did. */
typedef struct outcome {
  int64_t value; /* the output's */
  size_t run, cached;
} outcome;

/* Compute node n of g (sync) with cache c. */
static outcome compute(tg_graph *g, tg_node n, tg_cache *c) {
  tg_compute_stats st;
  tg_compute_opts o;
  memset(&o, 0, sizeof o);
  o.version = TG_COMPUTE_OPTS_V1;
  o.scheduler = "sync";
  o.cache = c;
  o.stats = &st;
  tg_value *v = NULL;
  int rc = tg_compute(g, &n, 1, &o, &v);
  cr_assert_eq(rc, TG_OK, "%s: %s", tg_err_name(rc), tg_graph_errmsg(g));
  outcome r = {0, st.tasks_run, st.tasks_cached};
  if (tg_value_type(v) == TG_INT) r.value = tg_value_int(v);
  else if (tg_value_type(v) == TG_LIST) r.value = (int64_t)tg_list_len(v);
  tg_value_unref(v);
  return r;
}

/* One call of fn on args in a new graph over reg, computed with cache c. */
static outcome call(tg_registry *reg, tg_cache *c, const char *fn, size_t n,
                    const tg_arg *args) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  outcome r = compute(g, add(g, fn, n, args), c);
  tg_graph_free(g);
  return r;
}
#define CALL(reg, c, fn, ...) call(reg, c, fn, NA(__VA_ARGS__), A(__VA_ARGS__))

static void expect_outcome(outcome o, int64_t value, size_t run, size_t cached,
                           const char *what) {
  cr_expect_eq(o.value, value, "%s: value %lld", what, (long long)o.value);
  cr_expect_eq(o.run, run, "%s: %zu run (expected %zu)", what, o.run, run);
  cr_expect_eq(o.cached, cached, "%s: %zu cached (expected %zu)", what, o.cached, cached);
}

/* ---- ignored arguments ----------------------------------------------------- */

Test(cachekeys, ignored_argument_shares_entry) {
  tg_registry *reg = reg_new(NULL);
  tg_cache *c = open_cache();
  expect_outcome(CALL(reg, c, "scale", INT(3), INT(0)), 6, 1, 0, "first call");
  expect_outcome(CALL(reg, c, "scale", INT(3), INT(1)), 6, 0, 1, "verbose changed");
  expect_outcome(CALL(reg, c, "scale", INT(3), tg_arg_value(tg_str("loud", 4))), 6, 0, 1,
                 "verbose of another type");
  expect_outcome(CALL(reg, c, "scale", INT(4), INT(1)), 8, 1, 0, "x changed");
  expect_outcome(CALL(reg, c, "scale", INT(4), INT(0)), 8, 0, 1, "x changed, cached");
  cr_expect_eq(atomic_load(&nscale), 2);
  tg_cache_close(c);
  tg_registry_free(reg);
}

/* An ignored argument computed by an impure node neither keeps the call
 * out of the cache nor has to run once the call is cached. */
Test(cachekeys, ignored_node_argument) {
  tg_registry *reg = reg_new(NULL);
  tg_cache *c = open_cache();
  for (int i = 0; i < 2; i++) {
    tg_graph *g;
    cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
    tg_node imp = add(g, "imp", 0, NULL);
    tg_node s = ADD(g, "scale", INT(5), tg_arg_node(imp));
    outcome o = compute(g, s, c);
    expect_outcome(o, 10, i == 0 ? 2 : 0, i == 0 ? 0 : 1, i == 0 ? "first" : "again");
    tg_graph_free(g);
  }
  cr_expect_eq(atomic_load(&nimp), 1);
  /* Not ignored, the impure input makes the call uncacheable. */
  for (int i = 0; i < 2; i++) {
    tg_graph *g;
    cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
    tg_node s = ADD(g, "scale", tg_arg_node(add(g, "imp", 0, NULL)), INT(0));
    expect_outcome(compute(g, s, c), 14, 2, 0, "impure x");
    tg_graph_free(g);
  }
  tg_cache_close(c);
  tg_registry_free(reg);
}

/* nargs = -1: bit i names argument i of each call that has one. */
Test(cachekeys, varargs_ignore) {
  tg_registry *reg = reg_new(NULL);
  tg_cache *c = open_cache();
  expect_outcome(CALL(reg, c, "vsum", INT(1), INT(5), INT(6)), 11, 1, 0, "threads 1");
  expect_outcome(CALL(reg, c, "vsum", INT(8), INT(5), INT(6)), 11, 0, 1, "threads 8");
  expect_outcome(CALL(reg, c, "vsum", INT(8), INT(5), INT(6), INT(0)), 11, 1, 0,
                 "one more argument");
  expect_outcome(CALL(reg, c, "vsum", INT(8), INT(6), INT(5)), 11, 1, 0, "other order");
  expect_outcome(CALL(reg, c, "vsum", INT(2)), 0, 1, 0, "threads alone");
  expect_outcome(CALL(reg, c, "vsum", INT(3)), 0, 0, 1, "threads alone, cached");
  tg_cache_close(c);
  tg_registry_free(reg);
}

/* A map's extras are the function's arguments 1..: the ignored one is
 * left out of every chunk's key. */
Test(cachekeys, map_extras) {
  tg_registry *reg = reg_new(NULL);
  tg_cache *c = open_cache();
  for (int verbose = 0; verbose < 3; verbose++) {
    tg_graph *g;
    cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
    tg_arg in[] = {INT(1), INT(2), INT(3)};
    tg_arg extra[] = {INT(verbose)};
    tg_node m;
    cr_assert_eq(tg_graph_map(g, "scale", in, 3, extra, 1, 1, NULL, &m), TG_OK, "%s",
                 tg_graph_errmsg(g));
    outcome o = compute(g, m, c);
    cr_expect_eq(o.value, 3);
    cr_expect_eq(o.run, verbose == 0 ? 4u : 0u, "verbose %d: %zu run", verbose, o.run);
    tg_graph_free(g);
  }
  cr_expect_eq(atomic_load(&nscale), 3);
  tg_cache_close(c);
  tg_registry_free(reg);
}

/* ---- declarations ---------------------------------------------------------- */

static void expect_refused(tg_registry *reg, tg_func_def d, const char *msg) {
  size_t before = tg_registry_count(reg);
  cr_expect_eq(tg_registry_add(reg, &d, NULL), TG_EINVAL, "%s", msg);
  cr_expect_str_eq(tg_registry_errmsg(reg), msg);
  cr_expect_eq(tg_registry_count(reg), before, "the registry is unchanged");
  cr_expect_null(tg_registry_find(reg, d.name ? d.name : ""));
}

Test(cachekeys, bad_declarations) {
  tg_registry *reg;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_expect_str_eq(tg_registry_errmsg(reg), "");
  tg_func_def d = {TG_FUNC_DEF_V2, "f", "1", fn_scale, TG_FUNC_PURE, 2, NULL, NULL,
                   TG_IGNORE_ARG(2), NULL, NULL};
  expect_refused(reg, d, "function 'f': ignore_args names argument 2 but it takes 2 "
                         "arguments (0-based indexes)");
  d.nargs = 1, d.ignore_args = TG_IGNORE_ARG(0) | TG_IGNORE_ARG(63);
  expect_refused(reg, d, "function 'f': ignore_args names argument 63 but it takes 1 "
                         "argument (0-based indexes)");
  d.nargs = 0, d.ignore_args = TG_IGNORE_ARG(0);
  expect_refused(reg, d, "function 'f': ignore_args names argument 0 but it takes 0 "
                         "arguments (0-based indexes)");
  d.ignore_args = 0;
  const char *bad_ids[] = {"", "a b", "tab\there", "caf\xc3\xa9"};
  for (size_t i = 0; i < sizeof bad_ids / sizeof bad_ids[0]; i++) {
    d.code_id = bad_ids[i];
    expect_refused(reg, d, "function 'f': code_id is empty, longer than 255 bytes or not "
                           "printable ASCII without spaces");
  }
  char longid[257];
  memset(longid, 'a', 256);
  longid[256] = '\0';
  d.code_id = longid;
  expect_refused(reg, d, "function 'f': code_id is empty, longer than 255 bytes or not "
                         "printable ASCII without spaces");
  d.code_id = NULL;
  d.version = 3;
  expect_refused(reg, d, "function definition version 3 is unknown (expected "
                         "TG_FUNC_DEF_V1 or TG_FUNC_DEF_V2)");
  /* The limits themselves are accepted. */
  longid[255] = '\0';
  tg_func_def ok = {TG_FUNC_DEF_V2, "ok", "1", fn_scale, TG_FUNC_PURE, 64, NULL, NULL,
                    ~(uint64_t)0, longid, NULL};
  const tg_func *f = NULL;
  cr_expect_eq(tg_registry_add(reg, &ok, &f), TG_OK, "%s", tg_registry_errmsg(reg));
  cr_expect_eq(tg_func_ignore_args(f), ~(uint64_t)0);
  cr_expect_str_eq(tg_func_code_id(f), longid);
  cr_expect_str_eq(tg_registry_errmsg(reg), "");
  tg_func_def dup = ok;
  cr_expect_eq(tg_registry_add(reg, &dup, NULL), TG_EEXIST);
  cr_expect_str_eq(tg_registry_errmsg(reg), "function 'ok' is already registered");
  tg_registry_free(reg);
}

/* A V1 definition's struct ends before the V2 fields: whatever lies
 * there is never read. */
Test(cachekeys, v1_definitions_ignore_v2_fields) {
  tg_registry *reg;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  tg_func_def d = {TG_FUNC_DEF_V1, "old", "1", fn_scale, TG_FUNC_PURE, 1, NULL, NULL,
                   ~(uint64_t)0, "not read", "no such state"};
  const tg_func *f = NULL;
  cr_assert_eq(tg_registry_add(reg, &d, &f), TG_OK, "%s", tg_registry_errmsg(reg));
  cr_expect_eq(tg_func_ignore_args(f), 0);
  cr_expect_null(tg_func_code_id(f));
  tg_registry_free(reg);
}

/* The code id joins the key: equal ids share entries, other ids or none
 * do not. */
Test(cachekeys, code_id_in_key) {
  tg_cache *c = open_cache();
  const char *ids[] = {"aaaa", "aaaa", "bbbb", NULL, NULL, "aaaa"};
  const size_t run[] = {1, 0, 1, 1, 0, 0};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    tg_registry *reg = reg_new(ids[i]);
    char what[64];
    snprintf(what, sizeof what, "registry %zu (code id %s)", i, ids[i] ? ids[i] : "none");
    expect_outcome(CALL(reg, c, "twice", INT(21)), 42, run[i], 1 - run[i], what);
    tg_registry_free(reg);
  }
  tg_cache_close(c);
}

/* ---- tgraph code-id ---------------------------------------------------------- */

/* The id `tgraph code-id ARGS...` prints, into id (33 bytes). */
static void code_id(char *id, char *const *args) {
  tcli_how how = {.timeout = 120};
  tcli_result r = tcli_run(tcli_bin(), &how, args);
  cr_assert_eq(r.status, 0, "tgraph code-id: %s", r.err);
  cr_assert_eq(r.outlen, 33, "output '%s'", r.out);
  memcpy(id, r.out, 32);
  id[32] = '\0';
  for (int i = 0; i < 32; i++) cr_assert(strchr("0123456789abcdef", id[i]), "%s", id);
  tcli_result_free(&r);
}
#define CODE_ID(id, ...) code_id(id, (char *[]){"tgraph", "code-id", __VA_ARGS__, NULL})

static const char src[] =
    "#include \"h.h\"\n"
    "#include <stdio.h>\n"
    "/* doubles */\n"
    "int f(int x) {\n"
    "  return 2 * x; // twice\n"
    "}\n"
    "const char *s = \"a  b\";\n";

Test(cachekeys, code_id_normalizes) {
  char base[33], id[33];
  tcli_write_file("h.h", "#define H 1\n");
  tcli_write_file("f.c", src);
  CODE_ID(base, "f.c");
  /* Blank space, blank lines and comments do not count. */
  tcli_write_file("f.c",
                  "// a new comment\n\n#include   \"h.h\"\n#include <stdio.h>\n"
                  "\n\n/* doubles,\n   now at length */\nint   f( int x )  {\n"
                  "\treturn 2 *  x;\n   }   \n"
                  "const char *s = \"a  b\";   /* same */\n\n\n");
  CODE_ID(id, "f.c");
  cr_expect_str_eq(id, base, "blank and comment edits");
  /* A token's edit does. */
  const char *edits[] = {
      "return 2 * x; // twice\n", "return x + x; // twice\n",
      "\"a  b\"", "\"a b\"",
      "int f(int x)", "int f(long x)",
  };
  for (size_t i = 0; i < sizeof edits / sizeof edits[0]; i += 2) {
    char text[512];
    const char *at = strstr(src, edits[i]);
    cr_assert_not_null(at);
    snprintf(text, sizeof text, "%.*s%s%s", (int)(at - src), src, edits[i + 1],
             at + strlen(edits[i]));
    tcli_write_file("f.c", text);
    CODE_ID(id, "f.c");
    cr_expect_str_neq(id, base, "edit %s -> %s", edits[i], edits[i + 1]);
  }
  /* Blanks that keep tokens apart count, and only as one blank. */
  char apart[33], joined[33];
  tcli_write_file("p.c", "int y = a - -b;\n#define F (x)\n");
  CODE_ID(apart, "p.c");
  tcli_write_file("p.c", "int y=a- -b;\n#define   F   (x)\n");
  CODE_ID(id, "p.c");
  cr_expect_str_eq(id, apart, "same tokens");
  tcli_write_file("p.c", "int y = a--b;\n#define F (x)\n");
  CODE_ID(joined, "p.c");
  cr_expect_str_neq(joined, apart, "'- -' is not '--'");
  tcli_write_file("p.c", "int y = a - -b;\n#define F(x)\n");
  CODE_ID(joined, "p.c");
  cr_expect_str_neq(joined, apart, "a function-like macro is not an object-like one");
  /* So does a project header it includes; a header it cannot find is
   * left out. */
  tcli_write_file("f.c", src);
  CODE_ID(id, "f.c");
  cr_expect_str_eq(id, base);
  tcli_write_file("h.h", "#define H 2\n");
  CODE_ID(id, "f.c");
  cr_expect_str_neq(id, base, "included header edited");
  /* -I: a header found in an include directory. */
  char dirid[33];
  cr_assert_eq(mkdir("inc", 0755), 0);
  tcli_write_file("g.c", "#include \"g.h\"\nint g;\n");
  CODE_ID(base, "g.c");
  tcli_write_file("inc/g.h", "int a;\n");
  CODE_ID(id, "g.c");
  cr_expect_str_eq(id, base, "g.h is not found without -I");
  CODE_ID(dirid, "-I", "inc", "g.c");
  cr_expect_str_neq(dirid, base, "g.h found with -I");
  tcli_write_file("inc/g.h", "int b;\n");
  CODE_ID(id, "-I", "inc", "g.c");
  cr_expect_str_neq(id, dirid, "g.h edited");
  /* Where the tree lives does not matter. */
  cr_assert_eq(mkdir("moved", 0755), 0);
  tcli_write_file("moved/f.c", src);
  tcli_write_file("moved/h.h", "#define H 2\n");
  CODE_ID(base, "f.c");
  CODE_ID(id, "moved/f.c");
  cr_expect_str_eq(id, base, "same sources elsewhere");
}

Test(cachekeys, code_id_outputs) {
  char id[33];
  tcli_write_file("f.c", "#include \"h.h\"\nint f;\n");
  tcli_write_file("h.h", "int h;\n");
  CODE_ID(id, "f.c");
  tcli_how how = {.timeout = 120};
  char want[128];
  tcli_result r = tcli_run(tcli_bin(), &how, (char *[]){"tgraph", "code-id", "--cflag", "f.c",
                                                         NULL});
  snprintf(want, sizeof want, "-DTG_CODE_ID=\"%s\"\n", id);
  tcli_expect(r, 0, want, "");
  tcli_result_free(&r);
  r = tcli_run(tcli_bin(), &how, (char *[]){"tgraph", "code-id", "--header", "f_id.h",
                                            "--depfile", "f_id.d", "f.c", NULL});
  tcli_expect(r, 0, "", "");
  tcli_result_free(&r);
  snprintf(want, sizeof want, "/* generated by tgraph code-id: do not edit */\n"
                              "#define TG_CODE_ID \"%s\"\n", id);
  cr_expect_str_eq(tcli_read_text("f_id.h", true), want);
  cr_expect_str_eq(tcli_read_text("f_id.d", true), "f_id.h: \\\n  f.c \\\n  ./h.h\n");
  /* Unchanged: the header is left alone (a rewrite renames a new file
   * over it, which would give it another inode and time). */
  struct stat before, after;
  cr_assert_eq(stat("f_id.h", &before), 0);
  r = tcli_run(tcli_bin(), &how, (char *[]){"tgraph", "code-id", "--header", "f_id.h", "f.c",
                                            NULL});
  tcli_expect(r, 0, "", "");
  tcli_result_free(&r);
  cr_assert_eq(stat("f_id.h", &after), 0);
  cr_expect_eq(after.st_ino, before.st_ino, "the header was rewritten");
}

Test(cachekeys, code_id_errors) {
  tcli_how how = {.timeout = 120};
  tcli_result r = tcli_run(tcli_bin(), &how, (char *[]){"tgraph", "code-id", "nosuch.c", NULL});
  tcli_expect(r, 1, "", "tgraph: error: source file 'nosuch.c': No such file or directory\n");
  tcli_result_free(&r);
  cr_assert_eq(mkdir("d.c", 0755), 0);
  r = tcli_run(tcli_bin(), &how, (char *[]){"tgraph", "code-id", "d.c", NULL});
  cr_expect_eq(r.status, 1);
  cr_expect(strstr(r.err, "source file 'd.c'") != NULL, "%s", r.err);
  tcli_result_free(&r);
  r = tcli_run(tcli_bin(), &how, (char *[]){"tgraph", "code-id", NULL});
  cr_expect_eq(r.status, 2);
  cr_expect(strstr(r.err, "tgraph code-id: missing FILE") == r.err, "%s", r.err);
  tcli_result_free(&r);
  tcli_write_file("f.c", "int f;\n");
  r = tcli_run(tcli_bin(), &how, (char *[]){"tgraph", "code-id", "--depfile", "x.d", "f.c",
                                            NULL});
  cr_expect_eq(r.status, 2);
  cr_expect(strstr(r.err, "tgraph code-id: --depfile needs --header (the rule's target)") ==
                r.err, "%s", r.err);
  tcli_result_free(&r);
}

/* ---- compiled with cc -------------------------------------------------------- */

/* Run a shell command; fail the test when it fails. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...) {
  char cmd[4096];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(cmd, sizeof cmd, fmt, ap);
  va_end(ap);
  cr_assert_eq(system(cmd), 0, "failed: %s", cmd);
}

static const char *env_or(const char *name, const char *dflt) {
  const char *v = getenv(name);
  return v && *v ? v : dflt;
}

/* -I for tgraph's public headers. */
static const char *inc(void) {
  static char buf[1024];
  const char *root = getenv("TG_SOURCE_ROOT");
  cr_assert_not_null(root, "TG_SOURCE_ROOT is not set");
  snprintf(buf, sizeof buf, "-I'%s/include'", root);
  return buf;
}

/* The flag giving source file f its code id, or "" (with_id false). */
static const char *id_flag(const char *f, bool with_id, char *buf, size_t size) {
  if (!with_id) return "";
  snprintf(buf, size, "$('%s' code-id --cflag %s)", tcli_bin(), f);
  return buf;
}

/* Plugin kp: kp.f(x, verbose) = 2x (verbose ignored) in kp_f.c with its
 * init, kp.g(x) = x + g_add in kp_g.c; each file compiled with its own
 * code id (unless !with_id), at optimization opt, linked into out. */
static void build_plugin(const char *out, const char *opt, int g_add, bool with_id) {
  tcli_write_file("kp_f.c",
                  "#include \"tgraph/registry.h\"\n"
                  "extern const tg_func_def kp_g_def;\n"
                  "static int f(tg_task_ctx *ctx, tg_value *const *a, size_t n,\n"
                  "             tg_value **out) {\n"
                  "  (void)ctx, (void)n;\n"
                  "  *out = tg_int(2 * tg_value_int(a[0]));\n"
                  "  return *out ? TG_OK : TG_ENOMEM;\n"
                  "}\n"
                  "int tg_plugin_init(tg_registry *reg);\n"
                  "int tg_plugin_init(tg_registry *reg) {\n"
                  "  tg_func_def d = {TG_FUNC_DEF_V2, \"kp.f\", \"1\", f, TG_FUNC_PURE, 2,\n"
                  "                   NULL, NULL, TG_IGNORE_ARG(1), TG_CODE_ID_OR_NULL, NULL};\n"
                  "  int rc = tg_registry_add(reg, &d, NULL);\n"
                  "  return rc ? rc : tg_registry_add(reg, &kp_g_def, NULL);\n"
                  "}\n");
  char text[1024];
  snprintf(text, sizeof text,
           "#include \"tgraph/registry.h\"\n"
           "static int g(tg_task_ctx *ctx, tg_value *const *a, size_t n,\n"
           "             tg_value **out) {\n"
           "  (void)ctx, (void)n;\n"
           "  *out = tg_int(tg_value_int(a[0]) + %d);\n"
           "  return *out ? TG_OK : TG_ENOMEM;\n"
           "}\n"
           "const tg_func_def kp_g_def = {TG_FUNC_DEF_V2, \"kp.g\", \"1\", g,\n"
           "  TG_FUNC_PURE, 1, NULL, NULL, 0, TG_CODE_ID_OR_NULL, NULL};\n",
           g_add);
  tcli_write_file("kp_g.c", text);
  const char *cc = env_or("TG_TEST_CC", "cc");
  char fid[512], gid[512];
  sh("%s -fPIC %s %s %s -c kp_f.c -o kp_f.o && %s -fPIC %s %s %s -c kp_g.c -o kp_g.o && "
     "%s -shared -o %s kp_f.o kp_g.o",
     cc, opt, inc(), id_flag("kp_f.c", with_id, fid, sizeof fid), cc, opt, inc(),
     id_flag("kp_g.c", with_id, gid, sizeof gid), cc, out);
}

/* A registry with plugin `path` loaded. */
static tg_registry *reg_plugin(const char *path) {
  tg_registry *reg;
  tg_error err;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_assert_eq(tg_registry_load_plugin(reg, path, &err), TG_OK, "%s", err.msg);
  return reg;
}

static void expect_plugin_digests_differ(const char *a, const char *b) {
  tg_digest da, db;
  cr_assert_eq(tg_plugin_digest_of(a, &da, NULL), TG_OK);
  cr_assert_eq(tg_plugin_digest_of(b, &db, NULL), TG_OK);
  cr_assert_not(tg_digest_equal(da, db), "%s and %s are the same file", a, b);
}

/* Rebuilt with other flags: the functions with code ids keep their
 * results, whatever the file's bytes. */
Test(cachekeys, plugin_rebuilt_with_other_flags_hits) {
  build_plugin("./libkp0.so", "-O0", 100, true);
  build_plugin("./libkp2.so", "-O2 -g", 100, true);
  expect_plugin_digests_differ("./libkp0.so", "./libkp2.so");
  tg_cache *c = open_cache();
  tg_registry *reg = reg_plugin("./libkp0.so");
  expect_outcome(CALL(reg, c, "kp.f", INT(4), INT(0)), 8, 1, 0, "kp.f -O0");
  expect_outcome(CALL(reg, c, "kp.g", INT(4)), 104, 1, 0, "kp.g -O0");
  tg_registry_free(reg);
  reg = reg_plugin("./libkp2.so");
  expect_outcome(CALL(reg, c, "kp.f", INT(4), INT(1)), 8, 0, 1, "kp.f -O2");
  expect_outcome(CALL(reg, c, "kp.g", INT(4)), 104, 0, 1, "kp.g -O2");
  tg_registry_free(reg);
  tg_cache_close(c);
}

/* Without code ids the plugin file's digest is the functions' identity,
 * as before: any rebuild drops their results. */
Test(cachekeys, plugin_without_code_ids_rebuilt_misses) {
  build_plugin("./libkp0.so", "-O0", 100, false);
  build_plugin("./libkp2.so", "-O2", 100, false);
  tg_cache *c = open_cache();
  tg_registry *reg = reg_plugin("./libkp0.so");
  cr_expect_null(tg_func_code_id(tg_registry_find(reg, "kp.g")));
  expect_outcome(CALL(reg, c, "kp.g", INT(4)), 104, 1, 0, "kp.g -O0");
  expect_outcome(CALL(reg, c, "kp.g", INT(4)), 104, 0, 1, "kp.g -O0 again");
  tg_registry_free(reg);
  reg = reg_plugin("./libkp2.so");
  expect_outcome(CALL(reg, c, "kp.g", INT(4)), 104, 1, 0, "kp.g -O2");
  tg_registry_free(reg);
  tg_cache_close(c);
}

/* Two functions, two source files: editing one drops only its results. */
Test(cachekeys, plugin_edit_one_function_misses_only_it) {
  build_plugin("./libkpa.so", "-O1", 100, true);
  build_plugin("./libkpb.so", "-O1", 200, true);
  tg_cache *c = open_cache();
  tg_registry *reg = reg_plugin("./libkpa.so");
  const char *f_id = tg_func_code_id(tg_registry_find(reg, "kp.f"));
  cr_assert_not_null(f_id);
  char fa[33];
  snprintf(fa, sizeof fa, "%s", f_id);
  expect_outcome(CALL(reg, c, "kp.f", INT(4), INT(0)), 8, 1, 0, "kp.f before");
  expect_outcome(CALL(reg, c, "kp.g", INT(4)), 104, 1, 0, "kp.g before");
  tg_registry_free(reg);
  reg = reg_plugin("./libkpb.so");
  cr_expect_str_eq(tg_func_code_id(tg_registry_find(reg, "kp.f")), fa);
  expect_outcome(CALL(reg, c, "kp.f", INT(4), INT(0)), 8, 0, 1, "kp.f after g's edit");
  expect_outcome(CALL(reg, c, "kp.g", INT(4)), 204, 1, 0, "kp.g after its edit");
  tg_registry_free(reg);
  tg_cache_close(c);
}

/* The same through `tgraph run`: the rebuilt plugin's results come from
 * the cache, the edited function's do not, and a graph.json call that
 * differs only in an ignored argument is served too. */
Test(cachekeys, plugin_rebuilds_through_the_cli) {
  build_plugin("./libkp.so", "-O0", 100, true);
  tcli_write_file("g.json",
                  "{\"tgraph\": 1, \"plugins\": [\"./libkp.so\"],\n"
                  " \"tasks\": {\"f\": {\"fn\": \"kp.f\", \"args\": [4, 0]},\n"
                  "           \"g\": {\"fn\": \"kp.g\", \"args\": [4]}},\n"
                  " \"outputs\": [\"f\", \"g\"]}\n");
  tcli_write_file("g2.json",
                  "{\"tgraph\": 1, \"plugins\": [\"./libkp.so\"],\n"
                  " \"tasks\": {\"f\": {\"fn\": \"kp.f\", \"args\": [4, \"verbose\"]},\n"
                  "           \"g\": {\"fn\": \"kp.g\", \"args\": [4]}},\n"
                  " \"outputs\": [\"f\", \"g\"]}\n");
  struct {
    const char *graph, *opt;
    int g_add;
    const char *out, *summary;
  } steps[] = {
      {"g.json", "-O0", 100, "{\"f\":8,\"g\":104}\n", "2 tasks: 2 run, 0 cached, 0 failed"},
      {"g.json", "-O2", 100, "{\"f\":8,\"g\":104}\n", "2 tasks: 0 run, 2 cached, 0 failed"},
      {"g2.json", "-O2", 100, "{\"f\":8,\"g\":104}\n", "2 tasks: 0 run, 2 cached, 0 failed"},
      {"g.json", "-O2", 300, "{\"f\":8,\"g\":304}\n", "2 tasks: 1 run, 1 cached, 0 failed"},
  };
  tcli_how how = {.timeout = 300};
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    if (i) build_plugin("./libkp.so", steps[i].opt, steps[i].g_add, true);
    tcli_result r = tcli_run(tcli_bin(), &how,
                             (char *[]){"tgraph", "run", "--cache-dir", "cache", "--cache-all",
                                        (char *)steps[i].graph, NULL});
    cr_expect_eq(r.status, 0, "step %zu: %s", i, r.err);
    cr_expect_str_eq(r.out, steps[i].out, "step %zu", i);
    cr_expect(strstr(r.err, steps[i].summary) != NULL, "step %zu: expected '%s' in: %s", i,
              steps[i].summary, r.err);
    tcli_result_free(&r);
  }
}

/* A plugin whose declaration is refused: the loader says why. */
Test(cachekeys, plugin_bad_declaration_message) {
  tcli_write_file("bad.c",
                  "#include \"tgraph/registry.h\"\n"
                  "static int f(tg_task_ctx *c, tg_value *const *a, size_t n, tg_value **o) {\n"
                  "  (void)c, (void)a, (void)n;\n"
                  "  *o = tg_null();\n"
                  "  return TG_OK;\n"
                  "}\n"
                  "int tg_plugin_init(tg_registry *reg);\n"
                  "int tg_plugin_init(tg_registry *reg) {\n"
                  "  tg_func_def d = {TG_FUNC_DEF_V2, \"bad.f\", \"1\", f, TG_FUNC_PURE, 2,\n"
                  "                   NULL, NULL, TG_IGNORE_ARG(5), NULL, NULL};\n"
                  "  return tg_registry_add(reg, &d, NULL);\n"
                  "}\n");
  sh("%s -fPIC -shared %s bad.c -o libbad.so", env_or("TG_TEST_CC", "cc"), inc());
  tg_registry *reg;
  tg_error err;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  cr_expect_eq(tg_registry_load_plugin(reg, "./libbad.so", &err), TG_EINVAL);
  cr_expect_str_eq(err.msg, "plugin './libbad.so': tg_plugin_init failed: invalid argument: "
                            "function 'bad.f': ignore_args names argument 5 but it takes 2 "
                            "arguments (0-based indexes)");
  cr_expect_eq(tg_registry_count(reg), 0);
  tg_registry_free(reg);
}

/* A compiled-in function: a program built twice, from its source and
 * from an edited one. Blank edits keep its results, code edits drop
 * them. */
Test(cachekeys, compiled_in_edit_misses) {
  const char *libdir = getenv("TG_LIB_DIR");
  cr_assert_not_null(libdir, "TG_LIB_DIR is not set");
  static const char prog[] =
      "#include <stdio.h>\n"
      "#include \"tgraph.h\"\n"
      "static int twice(tg_task_ctx *ctx, tg_value *const *a, size_t n, tg_value **out) {\n"
      "  (void)ctx, (void)n;\n"
      "  *out = tg_int(BODY);\n"
      "  return *out ? TG_OK : TG_ENOMEM;\n"
      "}\n"
      "int main(void) {\n"
      "  tg_registry *reg; tg_graph *g; tg_cache *c; tg_error err;\n"
      "  tg_func_def d = {TG_FUNC_DEF_V2, \"twice\", \"1\", twice, TG_FUNC_PURE, 1,\n"
      "                   NULL, NULL, 0, TG_CODE_ID_OR_NULL, NULL};\n"
      "  tg_cache_opts co = {.version = TG_CACHE_OPTS_V1,\n"
      "                      .min_compute_seconds = TG_CACHE_STORE_ALL};\n"
      "  if (tg_registry_new(&reg) || tg_registry_add(reg, &d, NULL) ||\n"
      "      tg_graph_new(reg, &g) || tg_cache_open(\"cache\", &co, &c, &err)) return 3;\n"
      "  tg_arg a = tg_arg_value(tg_int(21));\n"
      "  tg_node n; tg_value *v; tg_compute_stats st;\n"
      "  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = \"sync\",\n"
      "                       .cache = c, .stats = &st};\n"
      "  if (tg_graph_add(g, \"twice\", &a, 1, NULL, &n) || tg_compute(g, &n, 1, &o, &v))\n"
      "    return 4;\n"
      "  printf(\"%lld run %zu cached %zu\\n\", (long long)tg_value_int(v), st.tasks_run,\n"
      "         st.tasks_cached);\n"
      "  tg_value_unref(v); tg_graph_free(g); tg_cache_close(c); tg_registry_free(reg);\n"
      "  return 0;\n"
      "}\n";
  struct {
    const char *body, *extra, *out;
  } steps[] = {
      {"2 * tg_value_int(a[0])", "", "42 run 1 cached 0\n"},
      {"2 * tg_value_int(a[0])", "", "42 run 0 cached 1\n"},
      {"2  *  tg_value_int( a[0] )", "/* reformatted */\n\n", "42 run 0 cached 1\n"},
      {"tg_value_int(a[0]) + tg_value_int(a[0])", "", "42 run 1 cached 0\n"},
  };
  const char *cc = env_or("TG_TEST_CC", "cc");
  const char *san = env_or("TG_TEST_SANITIZE", "");
  for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
    char text[4096];
    const char *at = strstr(prog, "BODY");
    snprintf(text, sizeof text, "%s%.*s%s%s", steps[i].extra, (int)(at - prog), prog,
             steps[i].body, at + 4);
    tcli_write_file("prog.c", text);
    char idf[512];
    sh("%s %s %s %s prog.c -o prog -L'%s' -Wl,-rpath,'%s' -ltgraph", cc, san, inc(),
       id_flag("prog.c", true, idf, sizeof idf), libdir, libdir);
    tcli_how how = {.timeout = 300};
    tcli_result r = tcli_run("./prog", &how, (char *[]){"prog", NULL});
    cr_expect_eq(r.status, 0, "step %zu: %s", i, r.err);
    cr_expect_str_eq(r.out, steps[i].out, "step %zu", i);
    tcli_result_free(&r);
  }
}

/* ---- remote workers compare code ids --------------------------------------------- */

static pid_t wpid;
static char wep[128];

/* Fork a worker serving registry r (made in the child by make(arg)). */
static void start_worker(tg_registry *(*make)(const char *), const char *arg) {
  int p[2];
  cr_assert_eq(pipe(p), 0);
  wpid = tproc_fork();
  if (wpid == 0) {
    close(p[0]);
    tg_registry *r = make(arg);
    tg_worker_opts o = {.version = TG_WORKER_OPTS_V1, .listen = "tcp://127.0.0.1:*",
                        .nthreads = 1, .stop = tproc_stop_on_term(),
                        .on_ready = tproc_say_ready, .ctx = &p[1]};
    tg_error err;
    tg_error_clear(&err);
    int rc = tg_worker_serve(r, &o, &err);
    if (rc) dprintf(p[1], "ERROR %s\n", err.msg);
    tg_registry_free(r);
    _exit(rc ? 1 : 0);
  }
  close(p[1]);
  tproc_read_line(p[0], wep, sizeof wep, 60);
  close(p[0]);
  cr_assert(strncmp(wep, "tcp://", 6) == 0, "worker did not start: %s", wep);
}

static void stop_worker(void) {
  if (wpid > 0) {
    kill(wpid, SIGTERM);
    waitpid(wpid, NULL, 0);
    wpid = 0;
  }
}

/* Compute fn(4[, 0 when two arguments]) over reg on the worker; its
 * value, or -1 with the message in msg. */
static int64_t remote(tg_registry *reg, const char *fn, char *msg, size_t size) {
  const char *addr[1] = {wep};
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "tcp", .connect = addr,
                         .nconnect = 1, .connect_timeout = 60};
  tg_executor *ex = NULL;
  tg_error err;
  tg_error_clear(&err);
  cr_assert_eq(tg_executor_new(reg, &eo, &ex, &err), TG_OK, "%s", err.msg);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node n = tg_func_nargs(tg_registry_find(reg, fn)) == 2
                  ? tg_call(g, fn, 2, tg_arg_value(tg_int(4)), tg_arg_value(tg_int(0)))
                  : tg_call(g, fn, 1, tg_arg_value(tg_int(4)));
  tg_compute_opts o = {.version = TG_COMPUTE_OPTS_V1, .scheduler = "sync", .executor = ex};
  tg_value *v = NULL;
  int rc = tg_compute(g, &n, 1, &o, &v);
  snprintf(msg, size, "%s", tg_graph_errmsg(g));
  int64_t r = rc == TG_OK ? tg_value_int(v) : -1;
  if (rc != TG_OK) cr_expect_eq(rc, TG_EVERSION, "%s: %s", tg_err_name(rc), msg);
  tg_value_unref(v);
  tg_graph_free(g);
  tg_executor_free(ex);
  return r;
}

static tg_registry *worker_plugin(const char *path) { return reg_plugin(path); }
static tg_registry *worker_twice(const char *code) { return reg_new(code); }

/* Equal code ids are the same code whatever the plugin file; another
 * code id is refused, naming both. */
Test(cachekeys, workers_compare_code_ids, .fini = stop_worker, .timeout = 600) {
  build_plugin("./libkp0.so", "-O0", 100, true);
  build_plugin("./libkpe.so", "-O2", 500, true);
  start_worker(worker_plugin, "./libkpe.so");
  tg_registry *reg = reg_plugin("./libkp0.so");
  char msg[1024], want[1024];
  cr_expect_eq(remote(reg, "kp.f", msg, sizeof msg), 8, "%s", msg);
  cr_expect_eq(remote(reg, "kp.g", msg, sizeof msg), -1);
  char here[33], there[33];
  snprintf(here, sizeof here, "%s", tg_func_code_id(tg_registry_find(reg, "kp.g")));
  tg_registry *other = reg_plugin("./libkpe.so");
  snprintf(there, sizeof there, "%s", tg_func_code_id(tg_registry_find(other, "kp.g")));
  tg_registry_free(other);
  snprintf(want, sizeof want, "function 'kp.g' has code id '%s' in this program and code id "
           "'%s' on worker %s", here, there, wep);
  cr_expect_str_eq(msg, want);
  tg_registry_free(reg);
  stop_worker();
  /* Compiled in: a code id against none, and the same one. */
  start_worker(worker_twice, NULL);
  reg = reg_new("abcd");
  cr_expect_eq(remote(reg, "twice", msg, sizeof msg), -1);
  snprintf(want, sizeof want, "function 'twice' has code id 'abcd' in this program and no "
           "code id on worker %s", wep);
  cr_expect_str_eq(msg, want);
  tg_registry_free(reg);
  stop_worker();
  start_worker(worker_twice, "abcd");
  reg = reg_new("abcd");
  cr_expect_eq(remote(reg, "twice", msg, sizeof msg), 8, "%s", msg);
  tg_registry_free(reg);
  reg = reg_new(NULL);
  cr_expect_eq(remote(reg, "twice", msg, sizeof msg), -1);
  snprintf(want, sizeof want, "function 'twice' has no code id in this program and code id "
           "'abcd' on worker %s", wep);
  cr_expect_str_eq(msg, want);
  tg_registry_free(reg);
}
