/* examples/dump_load.c: build a nested value holding a large array, dump
 * it to a file, load it back with mmap (zero copy) and check it.
 *
 *   dump_load [PATH] [MEGABYTES]
 *
 * Prints what it did and how long each step took. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <tgraph.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A measurement record: {"name": str, "samples": f64 array, "tags": [...],
 * "meta": {"rows": int, "scale": float}}. */
static tg_value *make_record(size_t n) {
  int64_t shape[1] = {(int64_t)n};
  tg_value *arr = tg_ndarray_new(TG_DT_F64, 1, shape);
  if (!arr) return NULL;
  double *x = tg_ndarray_data_mut(arr);
  for (size_t i = 0; i < n; i++) x[i] = sin((double)i * 1e-3);

  tg_value *meta = tg_map_new(2);
  if (!meta || tg_map_put_c(meta, "rows", tg_int((int64_t)n)) != TG_OK ||
      tg_map_put_c(meta, "scale", tg_float(0.5)) != TG_OK) {
    tg_value_unref(meta);
    tg_value_unref(arr);
    return NULL;
  }
  tg_value *rec = tg_map_new(4);
  if (!rec || tg_map_put_c(rec, "name", tg_str_c("sine wave")) != TG_OK ||
      tg_map_put_c(rec, "samples", arr) != TG_OK ||
      tg_map_put_c(rec, "tags",
                   tg_list_of(3, tg_str_c("demo"), tg_int(42), tg_null())) != TG_OK ||
      tg_map_put_c(rec, "meta", meta) != TG_OK) {
    tg_value_unref(rec);
    return NULL;
  }
  return rec;
}

int main(int argc, char **argv) {
  char tmp[] = "/tmp/tgraph-example-XXXXXX";
  const char *path = argc > 1 ? argv[1] : NULL;
  size_t mb = argc > 2 ? (size_t)strtoul(argv[2], NULL, 10) : 256;
  char pathbuf[4096];
  if (!path) {
    if (!mkdtemp(tmp)) {
      perror("mkdtemp");
      return 1;
    }
    snprintf(pathbuf, sizeof pathbuf, "%s/record.tgv", tmp);
    path = pathbuf;
  }
  size_t n = mb * 1024 * 1024 / sizeof(double);

  double t0 = now();
  tg_value *rec = make_record(n);
  if (!rec) {
    fprintf(stderr, "dump_load: out of memory building the value\n");
    return 1;
  }
  double t1 = now();
  printf("built    a map with a %zu-element f64 array (%zu MiB) in %.1f ms\n", n,
         mb, (t1 - t0) * 1e3);

  tg_error err;
  int rc = tg_dump(rec, path, NULL, &err);
  double t2 = now();
  if (rc != TG_OK) {
    fprintf(stderr, "dump_load: dump failed: %s\n", err.msg);
    tg_value_unref(rec);
    return 1;
  }
  printf("dumped   to %s in %.1f ms (%.2f GB/s)\n", path, (t2 - t1) * 1e3,
         (double)(n * 8) / (t2 - t1) / 1e9);

  tg_value *back = NULL;
  rc = tg_load(path, TG_LOAD_MMAP, &back, &err);
  double t3 = now();
  if (rc != TG_OK) {
    fprintf(stderr, "dump_load: load failed: %s\n", err.msg);
    tg_value_unref(rec);
    return 1;
  }
  printf("loaded   with mmap in %.3f ms (array data used in place)\n",
         (t3 - t2) * 1e3);

  /* The mapping stays alive while `back` uses it, even after unlink. */
  if (argc <= 1) {
    unlink(path);
    rmdir(tmp);
  }
  bool same = tg_value_equal(rec, back);
  tg_digest h1 = tg_value_hash(rec), h2 = tg_value_hash(back);
  char hex[33];
  tg_digest_hex(h2, hex);
  double t4 = now();
  printf("verified equal=%s hash=%s (%s) in %.1f ms\n", same ? "yes" : "no",
         hex, tg_digest_equal(h1, h2) ? "match" : "MISMATCH", (t4 - t3) * 1e3);

  const tg_value *samples = tg_map_get_c(back, "samples");
  const double *x = tg_ndarray_data(samples);
  printf("sample   samples[1000] = %.6f, name = \"%s\"\n", x[1000],
         tg_str_data(tg_map_get_c(back, "name"), NULL));

  tg_value_unref(back);
  tg_value_unref(rec);
  return same && tg_digest_equal(h1, h2) ? 0 : 1;
}
