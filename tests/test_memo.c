/* tests/test_memo.c: computes memoized in a cache: golden node keys,
 * exactly which nodes a change of a function version, a constant or a
 * file's content makes run again, fully cached re-runs that read only the
 * outputs, impure functions, opting out and in, the store threshold and
 * per-function lookups, corrupt entries, the dry run, backends, maps,
 * executors, deep chains and four processes sharing one cache. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <ftw.h>
#include <lmdb.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cache/cache_memo.h"
#include "graph/graph_internal.h"
#include "memo/key.h"
#include "registry/registry_internal.h"
#include "tgraph/cache.h"
#include "tgraph/executor.h"
#include "tgraph/graph.h"

/* ---- task functions: every call counted by its tag (argument 0) ---------- */

#define NTAGS 256
static atomic_long calls[NTAGS];

static long ncalls(int tag) { return atomic_load(&calls[tag]); }

static int count_tag(tg_task_ctx *ctx, tg_value *const *args, size_t n, int64_t *tag) {
  if (n < 1 || tg_value_type(args[0]) != TG_INT)
    return tg_task_fail(ctx, TG_EINVAL, "argument 0 must be an int tag");
  *tag = tg_value_int(args[0]);
  atomic_fetch_add(&calls[*tag & (NTAGS - 1)], 1);
  return TG_OK;
}

/* tag * 1000 + the sum of the int arguments after the tag (wrapping). */
static int fn_sum(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  int64_t tag = 0;
  int rc = count_tag(ctx, args, n, &tag);
  if (rc) return rc;
  uint64_t s = (uint64_t)tag * 1000;
  for (size_t i = 1; i < n; i++)
    if (tg_value_type(args[i]) == TG_INT) s += (uint64_t)tg_value_int(args[i]);
  *out = tg_int((int64_t)s);
  return TG_OK;
}

/* slow(ms, tag, ...): sleeps, then as fn_sum over (tag, ...). */
static int fn_slow(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  struct timespec ts = {0, (long)tg_value_int(args[0]) * 1000000L};
  if (ts.tv_nsec) nanosleep(&ts, NULL);
  return fn_sum(ctx, args + 1, n - 1, out);
}

/* readf(tag, path): the file's text. */
static int fn_readf(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)n;
  char path[512], buf[4096];
  size_t len;
  const char *p = tg_str_data(args[0], &len);
  snprintf(path, sizeof path, "%.*s", (int)len, p);
  atomic_fetch_add(&calls[tg_value_int(args[1]) & (NTAGS - 1)], 1);
  FILE *f = fopen(path, "rb");
  if (!f) return tg_task_fail(ctx, TG_ENOENT, "cannot open %s", path);
  size_t got = fread(buf, 1, sizeof buf, f);
  fclose(f);
  *out = tg_str(buf, got);
  return TG_OK;
}

/* text(tag): a string easy to find in the cache's files. */
static int fn_text(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  int64_t tag = 0;
  int rc = count_tag(ctx, args, n, &tag);
  if (rc) return rc;
  char s[64];
  snprintf(s, sizeof s, "MEMO-PAYLOAD-%03lld-abcdefghijklmnop", (long long)tag);
  *out = tg_str_c(s);
  return TG_OK;
}

/* big(tag, nbytes): bytes i % 251, stored in a blob file. */
static int fn_big(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  int64_t tag = 0;
  int rc = count_tag(ctx, args, n, &tag);
  if (rc) return rc;
  size_t len = (size_t)tg_value_int(args[1]);
  unsigned char *b = malloc(len);
  for (size_t i = 0; i < len; i++) b[i] = (unsigned char)(i % 251);
  *out = tg_bytes(b, len);
  free(b);
  return TG_OK;
}

static int fn_fail(tg_task_ctx *ctx, tg_value *const *args, size_t n, tg_value **out) {
  (void)args, (void)n, (void)out;
  return tg_task_fail(ctx, TG_EIO, "broken");
}

/* A registry whose "f" has version fver. */
static tg_registry *reg_new(const char *fver) {
  tg_registry *reg;
  cr_assert_eq(tg_registry_new(&reg), TG_OK);
  struct {
    const char *name, *ver;
    tg_task_fn fn;
    unsigned flags;
  } defs[] = {
      {"f", fver, fn_sum, TG_FUNC_PURE},
      {"g", "1", fn_sum, TG_FUNC_PURE},
      {"imp", "1", fn_sum, 0},
      {"slow", "1", fn_slow, TG_FUNC_PURE},
      {"readf", "1", fn_readf, TG_FUNC_PURE | TG_FUNC_FILE_SOURCE},
      {"text", "1", fn_text, TG_FUNC_PURE},
      {"big", "1", fn_big, TG_FUNC_PURE},
      {"broken", "1", fn_fail, TG_FUNC_PURE},
  };
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    tg_func_def d = {.version = TG_FUNC_DEF_V1, .name = defs[i].name,
                     .fn_version = defs[i].ver, .fn = defs[i].fn,
                     .flags = defs[i].flags, .nargs = -1};
    cr_assert_eq(tg_registry_add(reg, &d, NULL), TG_OK);
  }
  return reg;
}

/* ---- helpers ---------------------------------------------------------------- */

static char dir[256];
static tg_registry *reg;

static int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)st, (void)flag, (void)f;
  return remove(p);
}

static void setup(void) {
  strcpy(dir, "/tmp/tgmemo.XXXXXX");
  cr_assert_not_null(mkdtemp(dir));
  reg = reg_new("1");
}

static void teardown(void) {
  tg_registry_free(reg);
  nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* No Criterion .timeout: as in test_cache.c. */
TestSuite(memo, .init = setup, .fini = teardown);

static tg_cache *open_cache(double min_seconds) {
  char path[300];
  snprintf(path, sizeof path, "%s/cache", dir);
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V1, .min_compute_seconds = min_seconds};
  tg_cache *c = NULL;
  tg_error err;
  int rc = tg_cache_open(path, &o, &c, &err);
  cr_assert_eq(rc, TG_OK, "%s", err.msg);
  return c;
}

static tg_compute_opts copts(const char *sched, tg_cache *c, tg_compute_stats *st) {
  tg_compute_opts o;
  memset(&o, 0, sizeof o);
  o.version = TG_COMPUTE_OPTS_V1;
  o.scheduler = sched;
  o.workers = 2;
  o.cache = c;
  o.stats = st;
  return o;
}

static tg_node add(tg_graph *g, const char *fn, const char *key, int cache, size_t n,
                   const tg_arg *args) {
  tg_node_opts o = {TG_NODE_OPTS_V1, key, -1, cache, 0, 0};
  tg_node out = TG_NODE_NONE;
  int rc = tg_graph_add(g, fn, args, n, &o, &out);
  cr_assert_eq(rc, TG_OK, "%s", tg_graph_errmsg(g));
  return out;
}

#define A(...) ((tg_arg[]){__VA_ARGS__})
#define NA(...) (sizeof(A(__VA_ARGS__)) / sizeof(tg_arg))
#define ADD(g, fn, key, ...) add(g, fn, key, -1, NA(__VA_ARGS__), A(__VA_ARGS__))
#define INT(x) tg_arg_value(tg_int(x))

/* Compute outputs; every result must be an int. */
static void compute(tg_graph *g, const tg_node *outs, size_t n, const tg_compute_opts *o,
                    int64_t *vals) {
  tg_value *res[128];
  cr_assert_leq(n, 128);
  int rc = tg_compute(g, outs, n, o, res);
  cr_assert_eq(rc, TG_OK, "%s: %s", tg_err_name(rc), tg_graph_errmsg(g));
  for (size_t i = 0; i < n; i++) {
    cr_assert_eq(tg_value_type(res[i]), TG_INT);
    if (vals) vals[i] = tg_value_int(res[i]);
    tg_value_unref(res[i]);
  }
}

static void reset_calls(void) {
  for (int i = 0; i < NTAGS; i++) atomic_store(&calls[i], 0);
}

/* ---- explain as text ------------------------------------------------------------ */

typedef struct lines {
  char buf[8192];
  size_t len;
  bool hex;
  char last_hex[33];
  size_t n;
} lines;

static const char *state_name(tg_explain_state s) {
  static const char *const names[] = {"cached", "run", "input-changed", "func-changed",
                                      "uncacheable"};
  return names[s];
}

static int collect(void *ctx, const tg_explain_task *t) {
  lines *l = ctx;
  l->n++;
  memcpy(l->last_hex, t->cache_key, 33);
  if (l->len < sizeof l->buf)
    l->len += (size_t)snprintf(l->buf + l->len, sizeof l->buf - l->len, "%s %s %s: %s%s%s\n",
                               t->key, t->function, state_name(t->state), t->why,
                               l->hex ? " " : "", l->hex ? t->cache_key : "");
  return 0;
}

static const char *explain(tg_graph *g, const tg_node *outs, size_t n, tg_cache *c,
                           bool hex, lines *l) {
  memset(l, 0, sizeof *l);
  l->hex = hex;
  tg_compute_opts o = copts("sync", c, NULL);
  int rc = tg_compute_explain(g, outs, n, &o, collect, l);
  cr_assert_eq(rc, TG_OK, "%s", tg_graph_errmsg(g));
  return l->buf;
}

/* The Merkle key of node n in hex (via the dry run). */
static void key_hex(tg_graph *g, tg_node n, char out[33]) {
  lines l;
  explain(g, &n, 1, NULL, true, &l);
  memcpy(out, l.last_hex, 33);
}

/* ---- keys ------------------------------------------------------------------------ */

/* f(0); f(1, a); f(2, "s", 2.5); a map of f over 3, 4 with extra a in
 * chunks of one; f(5, item 1 of the map). */
static tg_node golden_graph(tg_graph *g, tg_node *nodes) {
  nodes[0] = ADD(g, "f", NULL, INT(0));
  nodes[1] = ADD(g, "f", NULL, INT(1), tg_arg_node(nodes[0]));
  nodes[2] = ADD(g, "f", NULL, INT(2), tg_arg_value(tg_str_c("s")),
                 tg_arg_value(tg_float(2.5)));
  tg_arg in[2] = {INT(3), INT(4)}, extra[1] = {tg_arg_node(nodes[0])};
  cr_assert_eq(tg_graph_map(g, "f", in, 2, extra, 1, 1, NULL, &nodes[3]), TG_OK);
  nodes[4] = ADD(g, "f", NULL, INT(5), tg_arg_item(nodes[3], 1));
  return nodes[4];
}

Test(memo, golden_node_keys) {
  tg_graph *g;
  tg_node nodes[5];
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node outs[2] = {golden_graph(g, nodes), nodes[2]};
  lines l;
  cr_assert_str_eq(explain(g, outs, 2, NULL, true, &l),
                   "f#0 f run: no cache 33ec890f752a7d20437a48911d01ce97\n"
                   "f.chunk#3 f run: no cache 7273feba0df866cdedf11cd759d019ae\n"
                   "f.chunk#4 f run: no cache 22ee9f4dd78e2260311fd3fda53e6ab0\n"
                   "f.map#5 f run: no cache 011d118b76096a39157c249da4ea551d\n"
                   "f#6 f run: no cache 44e52d5248268daf1831f3735689f3f4\n"
                   "f#2 f run: no cache 63fe51dff8865d4ff12ca012d77a5a24\n");
  /* The definition, recomputed by hand for f(1, a) and the first chunk. */
  tg_digest ka, kb, kc;
  char ha[33], hb[33], hc[33];
  key_hex(g, nodes[0], ha);
  key_hex(g, nodes[1], hb);
  key_hex(g, 3, hc);
  tg_value *zero = tg_int(0), *one = tg_int(1), *three = tg_int(3);
  tg__key_fn f = {"f", "1", NULL};
  tg__key_arg a0[1] = {{TG__KEY_CONST, tg_value_hash(zero), 0, NULL, 0}};
  ka = tg__merkle_key(&f, a0, 1);
  tg__key_arg a1[2] = {{TG__KEY_CONST, tg_value_hash(one), 0, NULL, 0},
                       {TG__KEY_NODE, ka, 0, NULL, 0}};
  kb = tg__merkle_key(&f, a1, 2);
  unsigned char m[16] = "tgchunk1";
  uint64_t aux = 1;
  memcpy(m + 8, &aux, 8);
  XXH128_hash_t mh = XXH3_128bits(m, 16);
  tg__key_arg a2[3] = {{TG__KEY_CONST, {mh.low64, mh.high64}, 0, NULL, 0},
                       {TG__KEY_CONST, tg_value_hash(three), 0, NULL, 0},
                       {TG__KEY_NODE, ka, 0, NULL, 0}};
  kc = tg__merkle_key(&f, a2, 3);
  char want[33];
  tg_digest_hex(ka, want);
  cr_assert_str_eq(ha, want);
  tg_digest_hex(kb, want);
  cr_assert_str_eq(hb, want);
  tg_digest_hex(kc, want);
  cr_assert_str_eq(hc, want);
  tg_value_unref(zero), tg_value_unref(one), tg_value_unref(three);
  tg_graph_free(g);
}

/* 40 arguments: a stream too long for one buffer is hashed in pieces,
 * to the same definition. */
Test(memo, long_argument_lists_keep_the_definition) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_arg args[40];
  for (int i = 0; i < 40; i++) args[i] = INT(i);
  tg_node n = add(g, "f", NULL, -1, 40, args);
  unsigned char buf[1024];
  size_t len = 0;
  uint64_t x;
#define PUT(p, k) (memcpy(buf + len, (p), (k)), len += (k))
  PUT("tgkey1", 6);
  x = 1, PUT(&x, 8), PUT("f", 1);
  x = 1, PUT(&x, 8), PUT("1", 1);
  x = 0, PUT(&x, 8), PUT(&x, 8);
  x = 40, PUT(&x, 8);
  for (int i = 0; i < 40; i++) {
    tg_value *v = tg_int(i);
    tg_digest d = tg_value_hash(v);
    uint8_t kind = TG__KEY_CONST;
    PUT(&kind, 1), PUT(&d.lo, 8), PUT(&d.hi, 8);
    tg_value_unref(v);
  }
#undef PUT
  cr_assert_gt(len, 512);
  XXH128_hash_t h = XXH3_128bits(buf, len);
  char want[33], got[33];
  tg_digest_hex((tg_digest){h.low64, h.high64}, want);
  key_hex(g, n, got);
  cr_assert_str_eq(got, want);
  tg_graph_free(g);
}

Test(memo, keys_follow_function_identity) {
  tg_registry *r2 = reg_new("2");
  tg_graph *g1, *g2;
  tg_node n1[5], n2[5];
  cr_assert_eq(tg_graph_new(reg, &g1), TG_OK);
  cr_assert_eq(tg_graph_new(r2, &g2), TG_OK);
  golden_graph(g1, n1);
  golden_graph(g2, n2);
  char h1[33], h2[33];
  key_hex(g1, n1[0], h1);
  key_hex(g2, n2[0], h2);
  cr_assert_str_neq(h1, h2, "version");
  /* A plugin's content digest joins the identity. */
  tg__func_set_origin(tg_registry_find(r2, "g"), (tg_digest){1, 2}, NULL);
  tg_node a = ADD(g1, "g", NULL, INT(7)), b = ADD(g2, "g", NULL, INT(7));
  key_hex(g1, a, h1);
  key_hex(g2, b, h2);
  cr_assert_str_neq(h1, h2, "plugin digest");
  tg_graph_free(g1);
  tg_graph_free(g2);
  tg_registry_free(r2);
}

/* A chain of 100,000 nodes: keys are computed without recursion. */
Test(memo, deep_chain_keys_and_hit) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node prev = ADD(g, "g", NULL, INT(1));
  for (int i = 1; i < 99999; i++) prev = ADD(g, "g", NULL, INT(0), tg_arg_node(prev));
  tg_node out = add(g, "g", "out", 1, 2, A(INT(2), tg_arg_node(prev)));
  lines l;
  explain(g, &out, 1, NULL, false, &l);
  cr_assert_eq(l.n, 100000);
  tg_cache *c = open_cache(0.5); /* only "out" (cache = 1) is stored */
  tg_compute_stats st;
  tg_compute_opts o = copts("sync", c, &st);
  int64_t v;
  compute(g, &out, 1, &o, &v);
  cr_assert_eq(v, 2000 + 1000);
  cr_assert_eq(st.cache_stores, 1);
  compute(g, &out, 1, &o, &v);
  cr_assert_eq(v, 3000);
  cr_assert_eq(st.tasks_run, 0);
  cr_assert_eq(st.cache_hits, 1);
  tg_graph_free(g);
  tg_cache_close(c);
}

/* ---- what a change invalidates ---------------------------------------------------- */

/* a = g(0); b = f(1, a, k); c = g(2, b); d = g(3, a); e = g(4);
 * out = g(5, c, d). Outputs out, d, e. */
static void change_graph(tg_registry *r, int64_t k, tg_graph **g, tg_node outs[3]) {
  cr_assert_eq(tg_graph_new(r, g), TG_OK);
  tg_node a = ADD(*g, "g", NULL, INT(0));
  tg_node b = ADD(*g, "f", NULL, INT(1), tg_arg_node(a), INT(k));
  tg_node c = ADD(*g, "g", NULL, INT(2), tg_arg_node(b));
  tg_node d = ADD(*g, "g", NULL, INT(3), tg_arg_node(a));
  tg_node e = ADD(*g, "g", NULL, INT(4));
  outs[0] = ADD(*g, "g", NULL, INT(5), tg_arg_node(c), tg_arg_node(d));
  outs[1] = d;
  outs[2] = e;
}

static tg_compute_stats change_stats;

static void run_change(tg_registry *r, int64_t k, tg_cache *c, int64_t want_out) {
  tg_graph *g;
  tg_node outs[3];
  int64_t v[3];
  change_graph(r, k, &g, outs);
  tg_compute_opts o = copts("threads", c, &change_stats);
  compute(g, outs, 3, &o, v);
  cr_assert_eq(v[0], want_out);
  cr_assert_eq(v[1], 3000);
  cr_assert_eq(v[2], 4000);
  tg_graph_free(g);
}

static void expect_calls(const long *want, int n) {
  for (int i = 0; i < n; i++) cr_expect_eq(ncalls(i), want[i], "tag %d: %ld calls", i, ncalls(i));
}

Test(memo, function_version_invalidates_downstream_only) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  run_change(reg, 7, c, 5000 + 2000 + 1007 + 3000);
  expect_calls((long[]){1, 1, 1, 1, 1, 1}, 6);
  reset_calls();
  run_change(reg, 7, c, 11007);
  expect_calls((long[]){0, 0, 0, 0, 0, 0}, 6);
  tg_registry *r2 = reg_new("2");
  run_change(r2, 7, c, 11007);
  expect_calls((long[]){0, 1, 1, 0, 0, 1}, 6); /* b, c, out */
  /* looked up: out, c, b (misses), then a, d, e (hits: the only values
   * read, a being the input of a task that runs) */
  cr_assert_eq(change_stats.cache_misses, 3);
  cr_assert_eq(change_stats.cache_hits, 3);
  cr_assert_eq(change_stats.tasks_total, 6);
  cr_assert_eq(change_stats.tasks_cached, 3);
  tg_registry_free(r2);
  tg_cache_close(c);
}

Test(memo, constant_change_invalidates_downstream_only) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  run_change(reg, 7, c, 11007);
  reset_calls();
  run_change(reg, 8, c, 11008);
  expect_calls((long[]){0, 1, 1, 0, 0, 1}, 6);
  reset_calls();
  run_change(reg, 7, c, 11007); /* both versions stay cached */
  expect_calls((long[]){0, 0, 0, 0, 0, 0}, 6);
  tg_cache_close(c);
}

static void write_file(const char *path, const char *text) {
  FILE *f = fopen(path, "wb");
  cr_assert_not_null(f);
  fputs(text, f);
  fclose(f);
}

Test(memo, file_content_change_invalidates_downstream_only) {
  char path[300];
  snprintf(path, sizeof path, "%s/input.txt", dir);
  write_file(path, "first");
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  for (int round = 0; round < 3; round++) {
    if (round == 2) write_file(path, "second, longer");
    tg_graph *g;
    cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
    tg_node a = ADD(g, "readf", NULL, tg_arg_value(tg_str_c(path)), INT(0));
    tg_node b = ADD(g, "g", NULL, INT(1), tg_arg_node(a));
    tg_node d = ADD(g, "g", NULL, INT(3));
    tg_node out = ADD(g, "g", NULL, INT(5), tg_arg_node(b), tg_arg_node(d));
    tg_node outs[2] = {out, d};
    tg_value *res[2];
    tg_compute_opts o = copts("sync", c, NULL);
    cr_assert_eq(tg_compute(g, outs, 2, &o, res), TG_OK, "%s", tg_graph_errmsg(g));
    cr_assert_eq(tg_value_int(res[0]), 5000 + 1000 + 3000);
    tg_value_unref(res[0]), tg_value_unref(res[1]);
    if (round == 0) expect_calls((long[]){1, 1, 0, 1, 0, 1}, 6);
    if (round == 1) expect_calls((long[]){0, 0, 0, 0, 0, 0}, 6);
    if (round == 2) expect_calls((long[]){1, 1, 0, 0, 0, 1}, 6); /* not d */
    reset_calls();
    tg_graph_free(g);
  }
  tg_cache_close(c);
}

Test(memo, file_sources_need_a_readable_constant_path) {
  char path[300];
  snprintf(path, sizeof path, "%s/missing.txt", dir);
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node p = add(g, "text", "p", -1, 1, A(INT(1)));
  tg_node a = add(g, "readf", "a", -1, 2, A(tg_arg_node(p), INT(2)));
  tg_node b = add(g, "readf", "b", -1, 2, A(tg_arg_value(tg_str_c(path)), INT(3)));
  tg_node outs[2] = {a, b};
  lines l;
  cr_assert_str_eq(explain(g, outs, 2, c, false, &l),
                   "p text run: not in the cache\n"
                   "a readf uncacheable: reads a file whose path is not a constant string\n"
                   "b readf uncacheable: reads a file that cannot be read\n");
  tg_graph_free(g);
  tg_cache_close(c);
}

/* A large constant is hashed once per graph, however many computes. */
Test(memo, large_constants_are_hashed_once_per_graph) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  int64_t shape[1] = {1 << 17}; /* 1 MB */
  tg_value *arr = tg_ndarray_new(TG_DT_F64, 1, shape);
  memset(tg_ndarray_data_mut(arr), 7, tg_ndarray_nbytes(arr));
  tg_node a = ADD(g, "g", NULL, INT(1), tg_arg_value(arr), INT(2));
  tg_node outs[1] = {a};
  tg_compute_stats st;
  tg_compute_opts o = copts("sync", c, &st);
  cr_assert_eq(tg__graph_chash_count(g), 0, "nothing hashed before a key is needed");
  for (int round = 0; round < 3; round++) {
    int64_t v;
    compute(g, outs, 1, &o, &v);
    cr_assert_eq(v, 1002);
    cr_assert_eq(tg__graph_chash_count(g), 1, "the array alone, once (round %d)", round);
    cr_assert_eq(st.tasks_run, round ? 0 : 1);
  }
  tg_graph_free(g);
  tg_cache_close(c);
}

/* A read-only cache serves hits and stores nothing. */
Test(memo, read_only_cache_serves_hits) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  tg_node outs[3];
  change_graph(reg, 7, &g, outs);
  tg_compute_opts o = copts("sync", c, NULL);
  compute(g, outs, 3, &o, NULL);
  tg_cache_close(c);
  char path[300];
  snprintf(path, sizeof path, "%s/cache", dir);
  tg_cache_opts ro = {.version = TG_CACHE_OPTS_V1, .readonly = true,
                      .min_compute_seconds = TG_CACHE_STORE_ALL};
  cr_assert_eq(tg_cache_open(path, &ro, &c, NULL), TG_OK);
  cr_assert_not_null(tg_cache_warning(c));
  tg_compute_stats st;
  o = copts("threads", c, &st);
  int64_t v[3];
  compute(g, outs, 3, &o, v);
  cr_assert_eq(v[0], 11007);
  cr_assert_eq(st.tasks_run, 0);
  cr_assert_eq(st.cache_hits, 3);
  tg_graph_free(g);
  change_graph(reg, 8, &g, outs); /* b, c and out change */
  compute(g, outs, 3, &o, v);
  cr_assert_eq(v[0], 11008);
  cr_assert_eq(st.tasks_run, 3);
  cr_assert_eq(st.cache_stores, 0);
  compute(g, outs, 3, &o, v);
  cr_assert_eq(st.tasks_run, 3, "still nothing stored");
  tg_graph_free(g);
  tg_cache_close(c);
}

/* ---- re-runs ---------------------------------------------------------------------- */

static uint64_t entry_size_sum;
static char wanted_hex[4][33];
static int nwanted;

static int sum_sizes(void *ctx, const tg_cache_entry_info *e) {
  (void)ctx;
  char hex[33];
  tg_digest_hex(e->key, hex);
  for (int i = 0; i < nwanted; i++)
    if (strcmp(hex, wanted_hex[i]) == 0) entry_size_sum += e->size;
  return 0;
}

Test(memo, fully_cached_rerun_runs_nothing_and_reads_only_outputs) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  tg_node outs[3];
  change_graph(reg, 7, &g, outs);
  tg_compute_stats st;
  tg_compute_opts o = copts("threads", c, &st);
  compute(g, outs, 3, &o, NULL);
  cr_assert_eq(st.tasks_run, 6);
  cr_assert_eq(st.cache_stores, 6);
  cr_assert_eq(st.cache_hits, 0);
  cr_assert_eq(st.cache_misses, 0, "no function had entries: nothing looked up");
  reset_calls();
  int64_t v[3];
  compute(g, outs, 3, &o, v);
  cr_assert_eq(v[0], 11007);
  cr_assert_eq(st.tasks_run, 0);
  cr_assert_eq(st.tasks_total, 3);
  cr_assert_eq(st.tasks_cached, 3);
  cr_assert_eq(st.cache_hits, 3);
  cr_assert_eq(st.cache_misses, 0);
  cr_assert_eq(st.cache_stores, 0);
  expect_calls((long[]){0, 0, 0, 0, 0, 0}, 6);
  /* bytes read: exactly the three outputs' entries */
  nwanted = 3;
  for (int i = 0; i < 3; i++) key_hex(g, outs[i], wanted_hex[i]);
  entry_size_sum = 0;
  cr_assert_eq(tg_cache_list(c, sum_sizes, NULL), TG_OK);
  cr_assert_gt(entry_size_sum, 0);
  cr_assert_eq(st.cache_bytes_read, entry_size_sum);
  tg_graph_free(g);
  tg_cache_close(c);
}

Test(memo, bytes_written_are_the_entries_stored) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = ADD(g, "text", NULL, INT(1));
  tg_node b = ADD(g, "g", NULL, INT(2), tg_arg_node(a));
  tg_compute_stats st;
  tg_compute_opts o = copts("sync", c, &st);
  compute(g, &b, 1, &o, NULL);
  cr_assert_eq(st.cache_stores, 2);
  nwanted = 2;
  key_hex(g, a, wanted_hex[0]);
  key_hex(g, b, wanted_hex[1]);
  entry_size_sum = 0;
  cr_assert_eq(tg_cache_list(c, sum_sizes, NULL), TG_OK);
  cr_assert_eq(st.cache_bytes_written, entry_size_sum);
  cr_assert_gt(entry_size_sum, 40, "the text alone is 41 bytes");
  tg_graph_free(g);
  tg_cache_close(c);
}

Test(memo, impure_functions_are_never_cached) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node x = ADD(g, "imp", NULL, INT(0));
  tg_node y = ADD(g, "g", NULL, INT(1), tg_arg_node(x)); /* pure, impure input */
  tg_node p = ADD(g, "g", NULL, INT(2));
  tg_node outs[2] = {y, p};
  tg_compute_stats st;
  tg_compute_opts o = copts("sync", c, &st);
  for (int round = 1; round <= 3; round++) {
    compute(g, outs, 2, &o, NULL);
    cr_assert_eq(ncalls(0), round, "imp runs every time");
    cr_assert_eq(ncalls(1), round, "its consumer too");
    cr_assert_eq(ncalls(2), 1, "the pure branch once");
    cr_assert_eq(st.cache_stores, round == 1 ? 1 : 0);
  }
  tg_graph_free(g);
  tg_cache_close(c);
}

Test(memo, opt_out_and_opt_in) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node x = add(g, "g", "x", 0, 1, A(INT(0)));                 /* pure, opted out */
  tg_node y = add(g, "imp", "y", 1, 1, A(INT(1)));               /* impure, trusted */
  tg_node z = ADD(g, "g", "z", INT(2), tg_arg_node(y));          /* cacheable */
  tg_node w = ADD(g, "g", "w", INT(3), tg_arg_node(x));          /* pure input: fine */
  tg_node outs[3] = {x, z, w};
  tg_compute_stats st;
  tg_compute_opts o = copts("sync", c, &st);
  compute(g, outs, 3, &o, NULL);
  cr_assert_eq(st.cache_stores, 3, "y, z, w");
  compute(g, outs, 3, &o, NULL);
  expect_calls((long[]){2, 1, 1, 1}, 4);
  cr_assert_eq(st.tasks_run, 1, "x only");
  cr_assert_eq(st.cache_hits, 2);
  lines l;
  cr_assert_str_eq(explain(g, outs, 3, c, false, &l),
                   "x g uncacheable: opted out (cache = 0)\n"
                   "z g cached: in the cache\n"
                   "w g cached: in the cache\n");
  tg_graph_free(g);
  tg_cache_close(c);
}

/* ---- the threshold and per-function lookups --------------------------------------- */

static void threshold_graph(tg_graph **g, tg_node *out) {
  cr_assert_eq(tg_graph_new(reg, g), TG_OK);
  tg_node fast = ADD(*g, "g", NULL, INT(0));
  tg_node s = ADD(*g, "slow", NULL, INT(60), INT(1), tg_arg_node(fast));
  *out = ADD(*g, "g", NULL, INT(2), tg_arg_node(s));
}

/* 0 means the default threshold, 1 ms. */
Test(memo, default_threshold_is_one_millisecond) {
  tg_cache *c = open_cache(0);
  cr_assert_eq(tg__cache_min_seconds(c), 0.001);
  cr_assert_eq(TG_CACHE_MIN_SECONDS_DEFAULT, 0.001);
  tg_cache_close(c);
  c = open_cache(-5);
  cr_assert_eq(tg__cache_min_seconds(c), TG_CACHE_STORE_ALL);
  tg_cache_close(c);
  char path[300];
  snprintf(path, sizeof path, "%s/cache", dir);
  tg_cache_opts o = {.version = TG_CACHE_OPTS_V1, .min_compute_seconds = 0.0 / 0.0};
  tg_error err;
  cr_assert_eq(tg_cache_open(path, &o, &c, &err), TG_EINVAL);
  cr_assert_str_eq(err.msg, "cache: min_compute_seconds must be finite");
}

/* A 20 ms threshold (not the default 1 ms, so that a trivial call
 * preempted on a busy machine cannot pass it). */
Test(memo, threshold_stores_slow_results_only) {
  tg_cache *c = open_cache(0.02);
  tg_graph *g;
  tg_node out;
  threshold_graph(&g, &out);
  tg_compute_stats st;
  tg_compute_opts o = copts("threads", c, &st);
  int64_t v;
  compute(g, &out, 1, &o, &v);
  cr_assert_eq(v, 2000 + 1000);
  cr_assert_eq(st.cache_stores, 1, "the 60 ms call alone");
  compute(g, &out, 1, &o, &v);
  cr_assert_eq(v, 3000);
  /* "g" has no entries: its node is not looked up and runs; "slow" is */
  cr_assert_eq(st.cache_hits, 1);
  cr_assert_eq(st.cache_misses, 0);
  cr_assert_eq(st.tasks_run, 1);
  expect_calls((long[]){1, 1, 2}, 3);
  tg_graph_free(g);
  tg_cache_close(c);
}

Test(memo, high_threshold_stores_nothing) {
  tg_cache *c = open_cache(0.5);
  tg_graph *g;
  tg_node out;
  threshold_graph(&g, &out);
  tg_compute_stats st;
  tg_compute_opts o = copts("sync", c, &st);
  compute(g, &out, 1, &o, NULL);
  cr_assert_eq(st.cache_stores, 0);
  compute(g, &out, 1, &o, NULL);
  cr_assert_eq(st.cache_hits + st.cache_misses, 0, "no lookups at all");
  expect_calls((long[]){2, 2, 2}, 3);
  tg_graph_free(g);
  tg_cache_close(c);
}

Test(memo, store_all_threshold_stores_every_result) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  tg_node out;
  threshold_graph(&g, &out);
  tg_compute_stats st;
  tg_compute_opts o = copts("sync", c, &st);
  compute(g, &out, 1, &o, NULL);
  cr_assert_eq(st.cache_stores, 3);
  tg_cache_info info;
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  cr_assert_eq(info.entries, 3);
  tg_graph_free(g);
  tg_cache_close(c);
}

/* The key of threshold_graph's "slow" node (node 1). */
static tg_digest slow_key(tg_graph *g) {
  char hex[33];
  key_hex(g, 1, hex);
  tg_digest d = {0, 0};
  for (int i = 0; i < 32; i++) { /* tg_digest_hex: hi then lo */
    unsigned x = (unsigned)(hex[i] <= '9' ? hex[i] - '0' : hex[i] - 'a' + 10);
    if (i < 16) d.hi = d.hi << 4 | x;
    else d.lo = d.lo << 4 | x;
  }
  return d;
}

/* Counts per function survive reopening: a fresh handle looks "slow" up. */
Test(memo, function_counts_persist) {
  tg_cache *c = open_cache(0.02);
  tg_graph *g;
  tg_node out;
  threshold_graph(&g, &out);
  tg_compute_stats st;
  tg_compute_opts o = copts("sync", c, &st);
  compute(g, &out, 1, &o, NULL);
  tg_cache_close(c);
  c = open_cache(0.02);
  o.cache = c;
  compute(g, &out, 1, &o, NULL);
  cr_assert_eq(st.cache_hits, 1);
  cr_assert_eq(tg_cache_remove(c, slow_key(g)), TG_OK);
  compute(g, &out, 1, &o, NULL);
  cr_assert_eq(st.cache_hits, 0);
  cr_assert_eq(st.cache_misses, 1, "the name stays known: one useless lookup");
  cr_assert_eq(tg_cache_clear(c), TG_OK);
  compute(g, &out, 1, &o, NULL);
  cr_assert_eq(st.cache_hits + st.cache_misses, 0, "a clear forgets the names");
  tg_graph_free(g);
  tg_cache_close(c);
}

/* A function known to be fast (16 timed calls under an eighth of the
 * threshold) is timed one call in 64; a sampled slow call only ends the
 * streak, and the calls after it are timed and stored again. */
Test(memo, fast_functions_are_sampled) {
  tg_cache *c = open_cache(0.008);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node outs[90];
  for (int i = 0; i < 90; i++) /* calls 1..79 fast, 80..90 sleep 10 ms */
    outs[i] = ADD(g, "slow", NULL, INT(i < 79 ? 0 : 10), INT(i));
  tg_compute_stats st;
  tg_compute_opts o = copts("sync", c, &st);
  compute(g, outs, 90, &o, NULL);
  /* call 80 is the 64th after the streak: sampled, slow, not stored;
   * calls 81..90 are timed again and stored */
  cr_assert_eq(st.cache_stores, 10);
  compute(g, outs, 90, &o, NULL);
  cr_assert_eq(st.cache_hits, 10);
  cr_assert_eq(ncalls(78), 2, "fast: not stored");
  cr_assert_eq(ncalls(79), 2, "the sampled slow call: not stored");
  cr_assert_eq(ncalls(80), 1);
  tg_graph_free(g);
  tg_cache_close(c);
}

/* Make the cache in dir look like one written before function counts:
 * no "funcs" or "nodes" database, no marker in "meta". */
static void drop_counts(const char *path) {
  MDB_env *env;
  MDB_txn *txn;
  MDB_dbi funcs, nodes, meta;
  cr_assert_eq(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  cr_assert_eq(mdb_env_open(env, path, 0, 0644), 0);
  cr_assert_eq(mdb_txn_begin(env, NULL, 0, &txn), 0);
  cr_assert_eq(mdb_dbi_open(txn, "funcs", 0, &funcs), 0);
  cr_assert_eq(mdb_dbi_open(txn, "nodes", 0, &nodes), 0);
  cr_assert_eq(mdb_dbi_open(txn, "meta", 0, &meta), 0);
  MDB_val k = {5, "funcs"};
  cr_assert_eq(mdb_del(txn, meta, &k, NULL), 0);
  cr_assert_eq(mdb_drop(txn, funcs, 1), 0);
  cr_assert_eq(mdb_drop(txn, nodes, 1), 0);
  cr_assert_eq(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
}

/* Caches made before the counts: read-only, every function may have
 * entries; writable, the counts are rebuilt from the entries. */
Test(memo, counts_of_older_caches) {
  tg_cache *c = open_cache(0);
  tg_value *v = tg_int(5);
  tg_cache_meta meta = {"slow", 0.5};
  cr_assert_eq(tg_cache_put(c, (tg_digest){1, 2}, v, &meta), TG_OK);
  cr_assert_eq(tg_cache_put(c, (tg_digest){3, 4}, v, &meta), TG_OK);
  tg_value_unref(v);
  tg_cache_close(c);
  char path[300];
  snprintf(path, sizeof path, "%s/cache", dir);
  drop_counts(path);
  tg_cache_opts ro = {.version = TG_CACHE_OPTS_V1, .readonly = true};
  cr_assert_eq(tg_cache_open(path, &ro, &c, NULL), TG_OK);
  tg__cache_funcs_refresh(c);
  cr_assert(tg__cache_fn_has(c, "slow"));
  cr_assert(tg__cache_fn_has(c, "anything"), "unknown: assume entries");
  tg_cache_close(c);
  c = open_cache(0); /* writable: counted again */
  tg__cache_funcs_refresh(c);
  cr_assert(tg__cache_fn_has(c, "slow"));
  cr_assert_not(tg__cache_fn_has(c, "anything"));
  cr_assert_eq(tg_cache_remove(c, (tg_digest){1, 2}), TG_OK);
  tg_cache_close(c);
  c = open_cache(0);
  tg__cache_funcs_refresh(c);
  cr_assert(tg__cache_fn_has(c, "slow"), "one entry left");
  cr_assert_eq(tg_cache_remove(c, (tg_digest){3, 4}), TG_OK);
  tg_cache_close(c);
  c = open_cache(0);
  tg__cache_funcs_refresh(c);
  cr_assert_not(tg__cache_fn_has(c, "slow"), "none left");
  tg_cache_close(c);
}

/* ---- corruption ----------------------------------------------------------------- */

/* Flip one byte of the first occurrence of pat in file path. */
static bool flip_in(const char *path, const char *pat) {
  FILE *f = fopen(path, "r+b");
  if (!f) return false;
  fseek(f, 0, SEEK_END);
  long n = ftell(f);
  char *buf = malloc((size_t)n);
  rewind(f);
  bool ok = fread(buf, 1, (size_t)n, f) == (size_t)n;
  int found = 0; /* every copy: LMDB may keep older pages */
  for (char *at = buf; ok && (at = memmem(at, (size_t)(buf + n - at), pat, strlen(pat)));
       at++, found++) {
    fseek(f, (long)(at - buf) + 3, SEEK_SET);
    fputc(at[3] ^ 0x20, f);
  }
  fclose(f);
  free(buf);
  return found > 0;
}

static int flip_blob(const char *p, const struct stat *st, int flag, struct FTW *f) {
  (void)f;
  if (flag != FTW_F || st->st_size < 50000 || !strstr(p, "/blobs/")) return 0;
  int fd = open(p, O_RDWR);
  unsigned char b;
  cr_assert_eq(pread(fd, &b, 1, 40000), 1);
  b ^= 0x55;
  cr_assert_eq(pwrite(fd, &b, 1, 40000), 1);
  close(fd);
  return 1;
}

Test(memo, corrupt_entries_are_recomputed) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node t = ADD(g, "text", NULL, INT(1));
  tg_node b = ADD(g, "big", NULL, INT(2), INT(100000));
  tg_node outs[2] = {t, b};
  tg_compute_stats st;
  tg_compute_opts o = copts("sync", c, &st);
  tg_value *res[2];
  cr_assert_eq(tg_compute(g, outs, 2, &o, res), TG_OK);
  tg_value_unref(res[0]), tg_value_unref(res[1]);
  tg_cache_close(c);
  char path[300];
  snprintf(path, sizeof path, "%s/cache/data.mdb", dir);
  cr_assert(flip_in(path, "MEMO-PAYLOAD-001"), "the inline value is in data.mdb");
  snprintf(path, sizeof path, "%s/cache", dir);
  cr_assert_eq(nftw(path, flip_blob, 16, FTW_PHYS), 1, "one blob corrupted");
  c = open_cache(TG_CACHE_STORE_ALL);
  o.cache = c;
  for (int round = 0; round < 2; round++) {
    cr_assert_eq(tg_compute(g, outs, 2, &o, res), TG_OK);
    cr_assert_str_eq(tg_str_data(res[0], NULL), "MEMO-PAYLOAD-001-abcdefghijklmnop");
    size_t len;
    const unsigned char *d = tg_bytes_data(res[1], &len);
    cr_assert_eq(len, 100000);
    cr_assert_eq(d[40000 - 30], (40000 - 30) % 251);
    for (size_t i = 0; i < len; i++) cr_assert_eq(d[i], i % 251, "byte %zu", i);
    tg_value_unref(res[0]), tg_value_unref(res[1]);
    /* round 0: both corrupt, recomputed and stored again; round 1: hits */
    cr_assert_eq(st.tasks_run, round ? 0 : 2);
    cr_assert_eq(st.cache_hits, round ? 2 : 0);
    cr_assert_eq(st.cache_misses, round ? 0 : 2);
  }
  expect_calls((long[]){0, 2, 2}, 3);
  tg_cache_counters k;
  tg_cache_get_counters(c, &k);
  cr_assert_eq(k.corrupt, 2);
  tg_graph_free(g);
  tg_cache_close(c);
}

/* ---- explain ------------------------------------------------------------------------ */

/* a = g(0); b = f(1, a); out = g(9, b); x = imp(3); c = g(2, b, x). */
static void explain_graph(tg_registry *r, int64_t a0, tg_graph **g, tg_node outs[2]) {
  cr_assert_eq(tg_graph_new(r, g), TG_OK);
  tg_node a = ADD(*g, "g", "a", INT(a0));
  tg_node b = ADD(*g, "f", "b", INT(1), tg_arg_node(a));
  outs[0] = ADD(*g, "g", "out", INT(9), tg_arg_node(b));
  tg_node x = ADD(*g, "imp", "x", INT(3));
  outs[1] = ADD(*g, "g", "c", INT(2), tg_arg_node(b), tg_arg_node(x));
}

Test(memo, explain_before_and_after_runs) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  tg_node outs[2];
  lines l;
  explain_graph(reg, 0, &g, outs);
  cr_assert_str_eq(explain(g, outs, 2, c, false, &l),
                   "a g run: not in the cache\n"
                   "b f run: not in the cache\n"
                   "out g run: not in the cache\n"
                   "x imp uncacheable: impure function\n"
                   "c g uncacheable: depends on a task that cannot be cached\n");
  cr_assert_eq(ncalls(0) + ncalls(1) + ncalls(9), 0, "nothing ran");
  tg_compute_opts o = copts("sync", c, NULL);
  compute(g, outs, 2, &o, NULL);
  cr_assert_str_eq(explain(g, outs, 2, c, false, &l),
                   "out g cached: in the cache\n"
                   "b f cached: in the cache\n"
                   "x imp uncacheable: impure function\n"
                   "c g uncacheable: depends on a task that cannot be cached\n");
  tg_graph_free(g);
  /* a constant changed */
  explain_graph(reg, 100, &g, outs);
  cr_assert_str_eq(explain(g, outs, 2, c, false, &l),
                   "a g input-changed: an input changed\n"
                   "b f input-changed: an input changed\n"
                   "out g input-changed: an input changed\n"
                   "x imp uncacheable: impure function\n"
                   "c g uncacheable: depends on a task that cannot be cached\n");
  tg_graph_free(g);
  /* the version of f changed */
  tg_registry *r2 = reg_new("2");
  explain_graph(r2, 0, &g, outs);
  cr_assert_str_eq(explain(g, outs, 2, c, false, &l),
                   "a g cached: in the cache\n"
                   "b f func-changed: its function changed (version, code id or plugin)\n"
                   "out g input-changed: an input changed\n"
                   "x imp uncacheable: impure function\n"
                   "c g uncacheable: depends on a task that cannot be cached\n");
  tg_graph_free(g);
  tg_registry_free(r2);
  tg_cache_close(c);
}

Test(memo, explain_rejects_bad_arguments) {
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = ADD(g, "g", NULL, INT(0));
  cr_assert_eq(tg_compute_explain(g, &a, 1, NULL, NULL, NULL), TG_EINVAL);
  tg_node bad = 42;
  lines l;
  cr_assert_eq(tg_compute_explain(g, &bad, 1, NULL, collect, &l), TG_EINVAL);
  cr_assert_str_eq(tg_graph_errmsg(g), "output 0 is node 42, but the graph has 1 nodes");
  tg_graph_free(g);
}

/* ---- backends, maps, executors, failures ---------------------------------------------- */

/* 300 nodes: each g(tag, up to three earlier nodes, a constant). */
static void random_graph(tg_graph *g, tg_node *outs, size_t nout) {
  uint64_t s = 12345;
  tg_node nodes[300];
  for (int i = 0; i < 300; i++) {
    tg_arg args[5];
    size_t n = 0;
    args[n++] = INT(i % 200);
    for (int k = 0; k < 3 && i > 0; k++) {
      s = s * 6364136223846793005u + 1442695040888963407u;
      if ((s >> 60) & 1) args[n++] = tg_arg_node(nodes[(s >> 33) % (uint64_t)i]);
    }
    args[n++] = INT((int64_t)(s >> 40) % 97);
    nodes[i] = add(g, "g", NULL, -1, n, args);
  }
  for (size_t o = 0; o < nout; o++) outs[o] = nodes[299 - o * 7];
}

Test(memo, same_results_on_every_backend) {
  tg_graph *g;
  tg_node outs[8];
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  random_graph(g, outs, 8);
  int64_t plain[8], v[8];
  tg_compute_opts o = copts("threads", NULL, NULL);
  compute(g, outs, 8, &o, plain);
  const char *order[4] = {"sync", "threads", "threads", "sync"};
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  for (int i = 0; i < 4; i++) {
    if (i == 2) { /* a fresh cache filled by threads, read by sync */
      tg_cache_close(c);
      char path[300];
      snprintf(path, sizeof path, "%s/cache", dir);
      nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
      c = open_cache(TG_CACHE_STORE_ALL);
    }
    tg_compute_stats st;
    o = copts(order[i], c, &st);
    compute(g, outs, 8, &o, v);
    for (int k = 0; k < 8; k++) cr_assert_eq(v[k], plain[k], "%s, output %d", order[i], k);
    cr_assert_eq(st.tasks_run == 0, i % 2 == 1, "%s round %d", order[i], i);
  }
  tg_cache_close(c);
  tg_graph_free(g);
}

/* Cache reads and writes stay in the calling process: workers of the
 * processes backend compute, the parent looks up and stores. */
Test(memo, processes_backend_memoizes_in_the_parent) {
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "processes",
                         .workers = 2};
  tg_executor *ex = NULL;
  if (tg_executor_new(reg, &eo, &ex, NULL) != TG_OK) cr_skip_test("no processes backend");
  tg_graph *g;
  tg_node outs[8];
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  random_graph(g, outs, 8);
  int64_t plain[8], v[8];
  tg_compute_opts o = copts("sync", NULL, NULL);
  compute(g, outs, 8, &o, plain);
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  for (int round = 0; round < 3; round++) {
    tg_compute_stats st;
    o = copts(NULL, c, &st);
    o.executor = round < 2 ? ex : NULL; /* then threads reads what it stored */
    o.scheduler = "threads";
    compute(g, outs, 8, &o, v);
    for (int k = 0; k < 8; k++) cr_assert_eq(v[k], plain[k], "round %d, output %d", round, k);
    cr_assert_eq(st.tasks_run == 0, round > 0, "round %d: %zu run", round, st.tasks_run);
    if (round == 0) cr_assert_eq(st.cache_stores, st.tasks_run);
  }
  tg_executor_free(ex);
  tg_cache_close(c);
  tg_graph_free(g);
}

Test(memo, map_results_are_cached) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_arg in[100];
  for (int i = 0; i < 100; i++) in[i] = INT(i);
  tg_node m;
  cr_assert_eq(tg_graph_map(g, "g", in, 100, NULL, 0, 10, NULL, &m), TG_OK);
  tg_compute_stats st;
  tg_compute_opts o = copts("threads", c, &st);
  for (int round = 0; round < 2; round++) {
    tg_value *v;
    cr_assert_eq(tg_compute(g, &m, 1, &o, &v), TG_OK);
    cr_assert_eq(tg_list_len(v), 100);
    cr_assert_eq(tg_value_int(tg_list_get(v, 42)), 42000);
    tg_value_unref(v);
    cr_assert_eq(st.tasks_run, round ? 0 : 11);
    cr_assert_eq(st.cache_stores, round ? 0 : 11);
  }
  cr_assert_eq(ncalls(42), 1);
  tg_graph_free(g);
  tg_cache_close(c);
}

Test(memo, executors_use_their_cache) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_executor_opts eo = {.version = TG_EXECUTOR_OPTS_V1, .backend = "threads", .workers = 2, .cache = c};
  tg_executor *ex;
  cr_assert_eq(tg_executor_new(reg, &eo, &ex, NULL), TG_OK);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = ADD(g, "g", NULL, INT(1));
  tg_node b = ADD(g, "g", NULL, INT(2), tg_arg_node(a));
  for (int round = 0; round < 2; round++) {
    tg_future *f;
    tg_value *v;
    cr_assert_eq(tg_executor_submit(ex, g, b, &f), TG_OK);
    cr_assert_eq(tg_future_result(f, 10, &v), TG_OK);
    cr_assert_eq(tg_value_int(v), 3000);
    tg_value_unref(v);
    tg_future_free(f);
    cr_assert_eq(tg_cache_flush(c), TG_OK);
  }
  expect_calls((long[]){0, 1, 1}, 3);
  /* tg_compute on the executor uses it too */
  tg_compute_stats st;
  tg_compute_opts o = copts(NULL, NULL, &st);
  o.executor = ex;
  compute(g, &b, 1, &o, NULL);
  cr_assert_eq(st.cache_hits, 1);
  tg_executor_free(ex);
  tg_graph_free(g);
  tg_cache_close(c);
}

Test(memo, failures_store_nothing_of_theirs) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL);
  tg_graph *g;
  cr_assert_eq(tg_graph_new(reg, &g), TG_OK);
  tg_node a = ADD(g, "g", NULL, INT(1));
  tg_node bad = ADD(g, "broken", "bad", tg_arg_node(a));
  tg_node out = ADD(g, "g", NULL, INT(2), tg_arg_node(bad));
  tg_compute_stats st;
  tg_compute_opts o = copts("sync", c, &st);
  tg_value *v = NULL;
  cr_assert_eq(tg_compute(g, &out, 1, &o, &v), TG_ETASK);
  cr_assert_str_eq(tg_graph_errmsg(g), "task 'bad' failed: TG_EIO: broken");
  cr_assert_eq(st.cache_stores, 1, "a alone");
  cr_assert_eq(tg_compute(g, &out, 1, &o, &v), TG_ETASK);
  cr_assert_eq(st.cache_hits, 1, "a served from the cache");
  cr_assert_eq(ncalls(1), 1);
  tg_graph_free(g);
  tg_cache_close(c);
}

/* ---- several processes -------------------------------------------------------------- */

/* Child i: nodes g(k) for k in [i*20, i*20+60) and sums of windows of
 * five, overlapping the next children's. */
static int child_run(int i) {
  tg_registry *r = reg_new("1");
  tg_graph *g;
  if (tg_graph_new(r, &g)) return 10;
  tg_node leaf[60], outs[56];
  for (int k = 0; k < 60; k++) {
    int tag = i * 20 + k;
    leaf[k] = tg_call(g, "g", 1, tg_arg_value(tg_int(tag)));
  }
  for (int k = 0; k < 56; k++) {
    tg_arg args[6] = {INT(0)};
    for (int j = 0; j < 5; j++) args[j + 1] = tg_arg_node(leaf[k + j]);
    if (tg_graph_add(g, "g", args, 6, NULL, &outs[k])) return 11;
  }
  char path[300];
  snprintf(path, sizeof path, "%s/cache", dir);
  tg_cache_opts co = {.version = TG_CACHE_OPTS_V1, .min_compute_seconds = TG_CACHE_STORE_ALL};
  tg_cache *c;
  if (tg_cache_open(path, &co, &c, NULL)) return 12;
  for (int round = 0; round < 2; round++) {
    tg_compute_stats st;
    tg_compute_opts o = copts("threads", c, &st);
    tg_value *res[56];
    if (tg_compute(g, outs, 56, &o, res)) return 13;
    for (int k = 0; k < 56; k++) {
      int64_t want = 0;
      for (int j = 0; j < 5; j++) want += (int64_t)(i * 20 + k + j) * 1000;
      if (tg_value_int(res[k]) != want) return 14;
      tg_value_unref(res[k]);
    }
    if (round == 1 && st.tasks_run != 0) return 15;
  }
  tg_cache_close(c);
  tg_graph_free(g);
  tg_registry_free(r);
  return 0;
}

Test(memo, four_processes_share_one_cache) {
  tg_cache *c = open_cache(TG_CACHE_STORE_ALL); /* created before the children */
  tg_cache_close(c);
  pid_t pids[4];
  for (int i = 0; i < 4; i++) {
    pids[i] = fork();
    cr_assert_geq(pids[i], 0);
    if (pids[i] == 0) _exit(child_run(i));
  }
  for (int i = 0; i < 4; i++) {
    int status;
    cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
    cr_assert(WIFEXITED(status), "child %d died", i);
    cr_assert_eq(WEXITSTATUS(status), 0, "child %d failed with %d", i, WEXITSTATUS(status));
  }
  c = open_cache(TG_CACHE_STORE_ALL);
  tg_cache_info info;
  cr_assert_eq(tg_cache_get_info(c, &info), TG_OK);
  /* leaves g(0..119) and 4 x 56 window sums, some shared: (0, tags) keys */
  cr_assert_eq(info.entries, 120 + 56 + 20 * 3);
  tg_cache_close(c);
}
