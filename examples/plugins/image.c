/* examples/plugins/image.c: the image plugin (libimage.so), for the
 * Gaussian blur example over generated PGM images.
 *
 *   img.synth(seed, w, h)    u8 [h, w]: soft blobs plus noise
 *   img.encode_pgm(a)        bytes: a u8 [h, w] array as binary PGM (P5)
 *   img.decode_pgm(data)     u8 [h, w] from binary PGM bytes
 *   img.blur(a, sigma)       u8 [h, w]: separable Gaussian blur, edges
 *                            clamped
 *   img.mean(a)              float: mean pixel value
 *
 * All pure.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tgraph/registry.h"

static bool is_image(const tg_value *a) {
  return tg_value_type(a) == TG_NDARRAY && tg_ndarray_dtype(a) == TG_DT_U8 &&
         tg_ndarray_ndim(a) == 2;
}

static uint64_t next(uint64_t *s) {
  uint64_t z = (*s += 0x9E3779B97F4A7C15u);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9u;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBu;
  return z ^ (z >> 31);
}

static int synth(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                 tg_value **out) {
  for (size_t i = 0; i < nargs; i++)
    if (tg_value_type(args[i]) != TG_INT)
      return tg_task_fail(ctx, TG_ETYPE, "img.synth: needs (seed, w, h)");
  uint64_t s = (uint64_t)tg_value_int(args[0]);
  int64_t w = tg_value_int(args[1]), h = tg_value_int(args[2]);
  if (w < 1 || h < 1 || w > 16384 || h > 16384)
    return tg_task_fail(ctx, TG_ERANGE, "img.synth: bad size %lldx%lld",
                        (long long)w, (long long)h);
  int64_t shape[2] = {h, w};
  tg_value *a = tg_ndarray_new(TG_DT_U8, 2, shape);
  if (a == NULL) return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  uint8_t *p = tg_ndarray_data_mut(a);
  double bx[4], by[4];
  for (int b = 0; b < 4; b++) {
    bx[b] = (double)(next(&s) % (uint64_t)w);
    by[b] = (double)(next(&s) % (uint64_t)h);
  }
  double r2 = (double)(w * w + h * h) / 64.0;
  for (int64_t y = 0; y < h; y++)
    for (int64_t x = 0; x < w; x++) {
      double v = 0;
      for (int b = 0; b < 4; b++) {
        double dx = (double)x - bx[b], dy = (double)y - by[b];
        v += 200.0 * exp(-(dx * dx + dy * dy) / r2);
      }
      v += (double)(next(&s) % 48);
      p[y * w + x] = (uint8_t)(v > 255 ? 255 : v);
    }
  *out = a;
  return TG_OK;
}

static int encode_pgm(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                      tg_value **out) {
  (void)nargs;
  if (!is_image(args[0]))
    return tg_task_fail(ctx, TG_ETYPE, "img.encode_pgm: needs u8 [h, w]");
  const int64_t *shape = tg_ndarray_shape(args[0]);
  char head[64];
  int n = snprintf(head, sizeof head, "P5\n%lld %lld\n255\n",
                   (long long)shape[1], (long long)shape[0]);
  size_t body = tg_ndarray_nbytes(args[0]);
  char *buf = malloc((size_t)n + body);
  if (buf == NULL) return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  memcpy(buf, head, (size_t)n);
  if (body > 0) memcpy(buf + n, tg_ndarray_data(args[0]), body);
  *out = tg_bytes(buf, (size_t)n + body);
  free(buf);
  return *out ? TG_OK : tg_task_fail(ctx, TG_ENOMEM, "out of memory");
}

static int decode_pgm(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                      tg_value **out) {
  (void)nargs;
  if (tg_value_type(args[0]) != TG_BYTES)
    return tg_task_fail(ctx, TG_ETYPE, "img.decode_pgm: needs bytes");
  size_t len;
  const char *p = tg_bytes_data(args[0], &len);
  long w = 0, h = 0, max = 0;
  int used = 0;
  char head[64] = {0};
  memcpy(head, p, len < 63 ? len : 63);
  if (sscanf(head, "P5 %ld %ld %ld%n", &w, &h, &max, &used) != 3 || w < 1 ||
      h < 1 || max != 255 || (size_t)used + 1 + (size_t)(w * h) > len)
    return tg_task_fail(ctx, TG_EFORMAT, "img.decode_pgm: not an 8-bit "
                        "binary PGM");
  int64_t shape[2] = {h, w};
  *out = tg_ndarray_copy(TG_DT_U8, 2, shape, p + used + 1);
  return *out ? TG_OK : tg_task_fail(ctx, TG_ENOMEM, "out of memory");
}

/* One pass of the 1-D kernel along rows (dx = 1) or columns. */
static void pass(const float *in, float *o, int64_t w, int64_t h,
                 const float *k, int r, bool rows) {
  for (int64_t y = 0; y < h; y++)
    for (int64_t x = 0; x < w; x++) {
      float s = 0;
      for (int i = -r; i <= r; i++) {
        int64_t xx = rows ? x + i : x, yy = rows ? y : y + i;
        xx = xx < 0 ? 0 : xx >= w ? w - 1 : xx;
        yy = yy < 0 ? 0 : yy >= h ? h - 1 : yy;
        s += k[i + r] * in[yy * w + xx];
      }
      o[y * w + x] = s;
    }
}

static int blur(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                tg_value **out) {
  (void)nargs;
  tg_type st = tg_value_type(args[1]);
  double sigma = st == TG_FLOAT ? tg_value_float(args[1])
                 : st == TG_INT ? (double)tg_value_int(args[1]) : -1;
  if (!is_image(args[0]) || !(sigma > 0 && sigma <= 64))
    return tg_task_fail(ctx, TG_ETYPE, "img.blur: needs (u8 [h, w], sigma "
                        "in (0, 64])");
  int64_t h = tg_ndarray_shape(args[0])[0], w = tg_ndarray_shape(args[0])[1];
  int r = (int)ceil(3 * sigma);
  size_t n = (size_t)(w * h);
  float *k = malloc((size_t)(2 * r + 1) * sizeof *k), *a = malloc(n * sizeof *a),
        *b = malloc(n * sizeof *b);
  tg_value *res = tg_ndarray_new(TG_DT_U8, 2, tg_ndarray_shape(args[0]));
  if (!k || !a || !b || !res) {
    free(k), free(a), free(b), tg_value_unref(res);
    return tg_task_fail(ctx, TG_ENOMEM, "out of memory");
  }
  float sum = 0;
  for (int i = -r; i <= r; i++)
    sum += k[i + r] = (float)exp(-(double)(i * i) / (2 * sigma * sigma));
  for (int i = 0; i <= 2 * r; i++) k[i] /= sum;
  const uint8_t *in = tg_ndarray_data(args[0]);
  for (size_t i = 0; i < n; i++) a[i] = in[i];
  pass(a, b, w, h, k, r, true);
  pass(b, a, w, h, k, r, false);
  uint8_t *o = tg_ndarray_data_mut(res);
  for (size_t i = 0; i < n; i++) o[i] = (uint8_t)(a[i] + 0.5f);
  free(k), free(a), free(b);
  *out = res;
  return TG_OK;
}

static int mean(tg_task_ctx *ctx, tg_value *const *args, size_t nargs,
                tg_value **out) {
  (void)nargs;
  if (!is_image(args[0]) || tg_ndarray_size(args[0]) == 0)
    return tg_task_fail(ctx, TG_ETYPE, "img.mean: needs u8 [h, w]");
  const uint8_t *p = tg_ndarray_data(args[0]);
  double s = 0;
  for (size_t i = 0; i < tg_ndarray_size(args[0]); i++) s += p[i];
  *out = tg_float(s / (double)tg_ndarray_size(args[0]));
  return TG_OK;
}

int tg_plugin_init(tg_registry *reg);

int tg_plugin_init(tg_registry *reg) {
#define DEF(NAME, FN, N, DOC)                                              \
  {.version = TG_FUNC_DEF_V1, .name = NAME, .fn_version = "1", .fn = FN, \
   .flags = TG_FUNC_PURE, .nargs = N, .doc = DOC}
  static const tg_func_def defs[] = {
      DEF("img.synth", synth, 3, "img.synth(seed, w, h): a test image"),
      DEF("img.encode_pgm", encode_pgm, 1, "img.encode_pgm(a): PGM bytes"),
      DEF("img.decode_pgm", decode_pgm, 1, "img.decode_pgm(data): u8 image"),
      DEF("img.blur", blur, 2, "img.blur(a, sigma): Gaussian blur"),
      DEF("img.mean", mean, 1, "img.mean(a): mean pixel value"),
  };
#undef DEF
  for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
    int rc = tg_registry_add(reg, &defs[i], NULL);
    if (rc != TG_OK) return rc;
  }
  return TG_OK;
}
