/* tests/bench/bench_serial.c: serializer throughput against the machine's
 * own limits, measured in the same run: memcpy into a pre-faulted buffer,
 * raw write(2)/read(2) of the same bytes to a file next to the dump, raw
 * XXH3 (libxxhash's run-time dispatched AVX2/AVX-512 code when it has it). Each figure is the median of REPS runs, baselines and tgraph
 * alternating. Prints a markdown table; exits non-zero if any call fails
 * or a round trip differs.
 *
 * Usage: bench_serial [scale]   scale 1 (default) = a 200 MB f64 array,
 *                               1,000,000 ints, 100,000 map keys; a small
 *                               scale (0.01) is a quick smoke run. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "serial/serial_config.h"
#include "workloads.h"
#include "tgraph/serial.h"
#if TG_HAVE_XXH_DISPATCH && (defined(__x86_64__) || defined(__i386__))
#include <xxh_x86dispatch.h> /* the baseline is the fastest XXH3 here */
/* ...whose wide-vector code leaves the upper vector state dirty, which
 * slows the SSE code of whatever runs next (lib/serial/bulkhash.c). */
#define VECTOR_STATE_CLEAN()                                         \
  do {                                                               \
    if (__builtin_cpu_supports("avx")) __asm__ __volatile__("vzeroupper"); \
  } while (0)
#else
#define VECTOR_STATE_CLEAN() ((void)0)
#endif

#define REPS 7

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void die(const char *what, int rc, const tg_error *e) {
  fprintf(stderr, "bench_serial: %s: %s (%s)\n", what, tg_err_name(rc),
          e && e->code ? e->msg : tg_strerror(rc));
  exit(1);
}

static void check(bool ok, const char *what) {
  if (!ok) {
    fprintf(stderr, "bench_serial: %s\n", what);
    exit(1);
  }
}

/* Keeps the compiler from dropping work whose result is unused. */
static volatile uint64_t sink;

/* ---- the figures --------------------------------------------------------- */

typedef struct ctx {
  tg_value *arr, *ints, *map;
  size_t nbytes;
  void *prefaulted;  /* destination for the memcpy and read baselines */
  void *enc;         /* this round's encoding of arr */
  size_t enc_len;
  char dir[64], raw[96], raw_tmp[96], dump[96];
} ctx;

/* Figures in the order they run each round: every tgraph figure right
 * after its baselines, so both see the same state of memory and page
 * cache (on a VM, fresh pages cost very different amounts depending on
 * what was freed just before). */
enum {
  F_MEMCPY, F_MEMCPY_NEW, F_ENCODE,        /* F_ENCODE keeps its output */
  F_MEMCPY_NEW2, F_DECODE, F_XXH_ENC, F_BORROW, /* ...which these decode */
  F_XXH, F_HASH,
  F_WRITE, F_DUMP_NEW, F_WRITE_REPLACE, F_DUMP,
  F_READ, F_READ_NEW, F_LOAD, F_MMAP, F_MMAP_VERIFY,
  F_LIST_ENC, F_LIST_DEC, F_MAP_ENC, F_MAP_DEC, F_COUNT
};

/* Write the array to a new file: after unlinking the old one, or next to
 * it and then renamed over it, as an atomic dump must. (ext4 starts
 * writing a file back when it is renamed over another, auto_da_alloc, so
 * replacing costs more than writing.) */
static void raw_write(ctx *c, bool replace) {
  if (!replace) unlink(c->raw);
  int fd = open(replace ? c->raw_tmp : c->raw, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  check(fd >= 0, "cannot create the raw file");
  const char *p = tg_ndarray_data(c->arr);
  for (size_t done = 0; done < c->nbytes;) {
    ssize_t w = write(fd, p + done, c->nbytes - done);
    check(w > 0, "raw write failed");
    done += (size_t)w;
  }
  close(fd);
  if (replace) check(rename(c->raw_tmp, c->raw) == 0, "rename failed");
}

static void raw_read(ctx *c, void *dst) {
  int fd = open(c->raw, O_RDONLY);
  check(fd >= 0, "cannot open the raw file");
  for (size_t done = 0; done < c->nbytes;) {
    ssize_t r = read(fd, (char *)dst + done, c->nbytes - done);
    check(r > 0, "raw read failed");
    done += (size_t)r;
  }
  close(fd);
}

/* read(2) into memory allocated for it, as any loader must (huge pages
 * asked for, which helps): shown for context. */
static void *new_buffer(size_t n) {
  void *p;
  check(posix_memalign(&p, 64, n) == 0, "out of memory");
  uintptr_t a = ((uintptr_t)p + (2u << 20) - 1) & ~(uintptr_t)((2u << 20) - 1);
  uintptr_t e = ((uintptr_t)p + n) & ~(uintptr_t)((2u << 20) - 1);
  if (e > a) madvise((void *)a, e - a, MADV_HUGEPAGE);
  return p;
}

/* The figures below time the allocation and the copy, not the free
 * (tgraph's figures do not time freeing their results either). */
static double raw_read_new(ctx *c) {
  double t = now();
  void *p = new_buffer(c->nbytes);
  raw_read(c, p);
  t = now() - t;
  sink += ((uint8_t *)p)[c->nbytes / 2];
  free(p);
  return t;
}

/* memcpy into memory allocated for it (huge pages asked for): the price
 * any encoder returning a new buffer pays for fresh pages. */
static double memcpy_new(ctx *c) {
  double t = now();
  void *p = new_buffer(c->nbytes);
  memcpy(p, tg_ndarray_data(c->arr), c->nbytes);
  t = now() - t;
  sink += ((uint8_t *)p)[c->nbytes - 1];
  free(p);
  return t;
}

static double time_encode(tg_value *v, bool check_back) {
  void *buf;
  size_t len;
  tg_error e;
  double t = now();
  int rc = tg_encode(v, NULL, &buf, &len, &e);
  t = now() - t;
  if (rc) die("tg_encode", rc, &e);
  if (check_back) {
    tg_value *back;
    if ((rc = tg_decode(buf, len, &back, &e))) die("tg_decode", rc, &e);
    check(tg_value_equal(back, v), "round trip differs");
    tg_value_unref(back);
  }
  free(buf);
  return t;
}

static double time_decode_buf(void *buf, size_t len, const tg_value *v, bool borrow) {
  tg_value *back;
  tg_error e;
  double t = now();
  int rc = borrow ? tg_decode_borrow(buf, len, NULL, NULL, &back, &e)
                  : tg_decode(buf, len, &back, &e);
  t = now() - t;
  if (rc) die("tg_decode", rc, &e);
  check(tg_value_type(back) == tg_value_type(v), "decoded the wrong type");
  tg_value_unref(back);
  return t;
}

static double time_decode(const tg_value *v) {
  void *buf;
  size_t len;
  tg_error e;
  int rc = tg_encode(v, NULL, &buf, &len, &e);
  if (rc) die("tg_encode", rc, &e);
  double t = time_decode_buf(buf, len, v, false);
  free(buf);
  return t;
}

static double time_encode_array(ctx *c) {
  tg_error e;
  free(c->enc);
  c->enc = NULL;
  double t = now();
  int rc = tg_encode(c->arr, NULL, &c->enc, &c->enc_len, &e);
  t = now() - t;
  if (rc) die("tg_encode", rc, &e);
  return t;
}

static double time_load(ctx *c, unsigned flags) {
  tg_value *v;
  tg_error e;
  double t = now();
  int rc = tg_load(c->dump, flags, &v, &e);
  t = now() - t;
  if (rc) die("tg_load", rc, &e);
  check(tg_ndarray_nbytes(v) == c->nbytes, "loaded array has the wrong size");
  tg_value_unref(v);
  return t;
}

static double run(ctx *c, int f) {
  double t = now();
  tg_error e;
  int rc;
  switch (f) {
    case F_MEMCPY:
      memcpy(c->prefaulted, tg_ndarray_data(c->arr), c->nbytes);
      sink += ((uint8_t *)c->prefaulted)[c->nbytes - 1];
      break;
    case F_MEMCPY_NEW:
    case F_MEMCPY_NEW2: return memcpy_new(c);
    case F_ENCODE: return time_encode_array(c);
    case F_DECODE: return time_decode_buf(c->enc, c->enc_len, c->arr, false);
    case F_XXH_ENC:
      sink += XXH3_64bits(c->enc, c->enc_len);
      VECTOR_STATE_CLEAN();
      break;
    case F_BORROW: {
      double tb = time_decode_buf(c->enc, c->enc_len, c->arr, true);
      free(c->enc);
      c->enc = NULL;
      return tb;
    }
    case F_XXH:
      sink += XXH3_128bits(tg_ndarray_data(c->arr), c->nbytes).low64;
      VECTOR_STATE_CLEAN();
      break;
    case F_HASH: sink += tg_value_hash(c->arr).lo; break;
    case F_WRITE: raw_write(c, false); break;
    case F_WRITE_REPLACE: raw_write(c, true); break;
    case F_DUMP_NEW: /* like F_WRITE: the old file goes first */
      unlink(c->dump);
      /* fall through */
    case F_DUMP:
      if ((rc = tg_dump(c->arr, c->dump, NULL, &e))) die("tg_dump", rc, &e);
      break;
    case F_READ: raw_read(c, c->prefaulted); break;
    case F_READ_NEW: return raw_read_new(c);
    case F_LOAD: return time_load(c, 0);
    case F_MMAP: return time_load(c, TG_LOAD_MMAP);
    case F_MMAP_VERIFY: return time_load(c, TG_LOAD_MMAP | TG_LOAD_VERIFY);
    case F_LIST_ENC: return time_encode(c->ints, false);
    case F_LIST_DEC: return time_decode(c->ints);
    case F_MAP_ENC: return time_encode(c->map, false);
    case F_MAP_DEC: return time_decode(c->map);
  }
  return now() - t;
}

/* ---- setup and report ---------------------------------------------------- */

static void setup(ctx *c, double scale) {
  int64_t n = (int64_t)(25e6 * scale); /* 25e6 f64 = 200 MB */
  if (n < 1024) n = 1024;
  c->arr = tg_ndarray_new(TG_DT_F64, 1, &n);
  check(c->arr != NULL, "out of memory");
  double *d = tg_ndarray_data_mut(c->arr);
  for (int64_t i = 0; i < n; i++) d[i] = (double)i * 1.000001;
  c->nbytes = tg_ndarray_nbytes(c->arr);
  check(posix_memalign(&c->prefaulted, 64, c->nbytes) == 0, "out of memory");
  memset(c->prefaulted, 1, c->nbytes);

  size_t ni = (size_t)(1e6 * scale), nk = (size_t)(1e5 * scale);
  if (ni < 100) ni = 100;
  if (nk < 100) nk = 100;
  c->ints = tg_list_alloc(ni);
  for (size_t i = 0; i < ni; i++)
    check(tg_list_init_item(c->ints, i, tg_int((int64_t)(i * 7919 % 1000003) - 500000)) == TG_OK,
          "list");
  c->map = tg_map_new(nk);
  for (size_t i = 0; i < nk; i++) {
    char key[32];
    int kl = snprintf(key, sizeof key, "key_%zu", i * 2654435761u % 100000007u);
    check(tg_map_put(c->map, key, (size_t)kl, tg_int((int64_t)(i % 1000))) == TG_OK, "map");
  }
  const char *tmp = getenv("TMPDIR");
  snprintf(c->dir, sizeof c->dir, "%s/tgbench_XXXXXX", tmp && *tmp ? tmp : "/tmp");
  check(mkdtemp(c->dir) != NULL, "cannot create a temporary directory");
  snprintf(c->raw, sizeof c->raw, "%s/raw.bin", c->dir);
  snprintf(c->raw_tmp, sizeof c->raw_tmp, "%s/raw.bin.tmp", c->dir);
  snprintf(c->dump, sizeof c->dump, "%s/dump.tgv", c->dir);
}

static void teardown(ctx *c) {
  free(c->enc);
  unlink(c->raw);
  unlink(c->dump);
  rmdir(c->dir);
  tg_value_unref(c->arr);
  tg_value_unref(c->ints);
  tg_value_unref(c->map);
  free(c->prefaulted);
}

/* Round trips of every path once, so the smoke run tests something. */
static void verify(ctx *c) {
  time_encode(c->arr, true);
  time_encode(c->ints, true);
  time_encode(c->map, true);
  tg_error e;
  int rc = tg_dump(c->map, c->dump, NULL, &e);
  if (rc) die("tg_dump", rc, &e);
  for (unsigned flags = 0; flags <= TG_LOAD_MMAP; flags += TG_LOAD_MMAP) {
    tg_value *v;
    if ((rc = tg_load(c->dump, flags, &v, &e))) die("tg_load", rc, &e);
    check(tg_value_equal(v, c->map), "load differs");
    tg_value_unref(v);
  }
}

/* Put the machine in the same state before every figure: dirty file pages
 * written back (no writeback running behind a measurement), and enough
 * memory for the figure freshly touched and freed, so that every figure
 * gets recently used pages. (On a VM that hands freed pages back to the
 * host, pages freed long ago cost ten times more to touch again, and which
 * figure got them would decide the results.) */
static void settle(ctx *c) {
  int fd = open(c->dir, O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    syncfs(fd);
    close(fd);
  }
  size_t n = 2 * c->nbytes + (64u << 20);
  void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  check(p != MAP_FAILED, "out of memory");
  madvise(p, n, MADV_HUGEPAGE);
  memset(p, 1, n);
  munmap(p, n);
}

static void row(const char *what, double gbs, const char *limit, double limit_gbs) {
  printf("| %s | %.2f GB/s | %s: %.2f GB/s | %.0f%% |\n", what, gbs, limit, limit_gbs,
         100 * gbs / limit_gbs);
}

int main(int argc, char **argv) {
  double scale = argc > 1 ? atof(argv[1]) : 1.0;
  if (!(scale > 0 && scale <= 10)) {
    fprintf(stderr, "usage: bench_serial [scale in (0, 10]]\n");
    return 2;
  }
  ctx c = {0};
  setup(&c, scale);
  verify(&c);
  raw_write(&c, false);
  check(tg_dump(c.arr, c.dump, NULL, NULL) == TG_OK, "tg_dump failed");
  double t[F_COUNT][REPS];
  for (int r = 0; r < REPS; r++) /* every figure once per round */
    for (int f = 0; f < F_COUNT; f++) {
      if (f < F_LIST_ENC) settle(&c); /* small figures run warm, back to back */
      t[f][r] = run(&c, f);
    }
  double m[F_COUNT];
  for (int f = 0; f < F_COUNT; f++) m[f] = bench_median(t[f], REPS);

  double gb = (double)c.nbytes / 1e9;
#define GBS(f) (gb / m[f])
  printf("tgraph serializer: f64 array of %.1f MB, list of %zu ints, map of %zu keys; "
         "median of %d rounds; GB/s = 1e9 bytes/s\n\n",
         (double)c.nbytes / 1e6, tg_list_len(c.ints), tg_map_len(c.map), REPS);
  printf("| figure | tgraph | machine limit, same run | ratio |\n|---|---|---|---|\n");
  row("tg_encode", GBS(F_ENCODE), "memcpy, pre-faulted buffer", GBS(F_MEMCPY));
  row("tg_encode", GBS(F_ENCODE), "memcpy, new buffer", GBS(F_MEMCPY_NEW));
  row("tg_decode (copy, verify)", GBS(F_DECODE), "memcpy, pre-faulted buffer", GBS(F_MEMCPY));
  row("tg_decode (copy, verify)", GBS(F_DECODE), "memcpy, new buffer", GBS(F_MEMCPY_NEW2));
  row("tg_decode_borrow (verify)", GBS(F_BORROW), "XXH3-64 of the encoding", GBS(F_XXH_ENC));
  row("tg_dump, new file", GBS(F_DUMP_NEW), "unlink + write()", GBS(F_WRITE));
  row("tg_dump, replacing", GBS(F_DUMP), "write() + rename over", GBS(F_WRITE_REPLACE));
  row("tg_load (copy, verify)", GBS(F_LOAD), "read(), pre-faulted buffer", GBS(F_READ));
  row("tg_load (copy, verify)", GBS(F_LOAD), "read(), new buffer", GBS(F_READ_NEW));
  row("tg_load MMAP+VERIFY", GBS(F_MMAP_VERIFY), "XXH3-64 of the encoding", GBS(F_XXH_ENC));
  row("tg_value_hash", GBS(F_HASH), "XXH3-128", GBS(F_XXH));
  printf("| tg_load MMAP | %.1f us | | |\n", m[F_MMAP] * 1e6);
  printf("| encode list of %zu ints | %.2f ms | | |\n", tg_list_len(c.ints), m[F_LIST_ENC] * 1e3);
  printf("| decode list of %zu ints | %.2f ms | | |\n", tg_list_len(c.ints), m[F_LIST_DEC] * 1e3);
  printf("| encode map of %zu str -> int | %.2f ms | | |\n", tg_map_len(c.map),
         m[F_MAP_ENC] * 1e3);
  printf("| decode map of %zu str -> int | %.2f ms | | |\n", tg_map_len(c.map),
         m[F_MAP_DEC] * 1e3);
  teardown(&c);
  return 0;
}
