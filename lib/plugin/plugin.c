/* lib/plugin/plugin.c: loading plugins with dlopen, calling their
 * tg_plugin_init, and hashing their files. */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "internal.h"
#include "registry/registry_internal.h"
#include "tgraph/plugin.h"

int tg_plugin_digest_of(const char *path, tg_digest *out, tg_error *err) {
  if (path == NULL || out == NULL) return TG_EINVAL;
  /* Only a regular file: hashing /dev/zero or a FIFO would never end,
   * and dlopen would then map something other than what was hashed. */
  struct stat sb;
  int fd = tg__input_open(path, "plugin", 0, TG__INPUT_REGULAR, &sb, err);
  if (fd < 0) return fd;
  XXH3_state_t *st = XXH3_createState();
  if (st == NULL) {
    close(fd);
    return tg__error_set(err, TG_ENOMEM, "out of memory");
  }
  XXH3_128bits_reset(st);
  char buf[1 << 16];
  int rc = TG_OK;
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      rc = tg__error_set(err, -errno, "plugin '%s': %s", path,
                         strerror(errno));
      break;
    }
    if (n == 0) break;
    XXH3_128bits_update(st, buf, (size_t)n);
  }
  if (rc == TG_OK) {
    XXH128_hash_t h = XXH3_128bits_digest(st);
    out->lo = h.low64;
    out->hi = h.high64;
  }
  XXH3_freeState(st);
  close(fd);
  return rc;
}

int tg_registry_load_plugin_info(tg_registry *reg, const char *path,
                                 tg_plugin_info *info, tg_error *err) {
  if (reg == NULL || path == NULL) return TG_EINVAL;
  tg_digest d;
  int rc = tg_plugin_digest_of(path, &d, err);
  if (rc != TG_OK) return rc;
  /* dlopen searches the library path for names without '/': make it
   * open the file we hashed. */
  char local[4096];
  const char *open_path = path;
  if (strchr(path, '/') == NULL) {
    if (strlen(path) + 3 > sizeof local)
      return tg__error_set(err, TG_EINVAL, "plugin path too long");
    snprintf(local, sizeof local, "./%s", path);
    open_path = local;
  }
  /* RTLD_NOW: a missing symbol is an error here, not a crash mid-run. */
  void *h = dlopen(open_path, RTLD_NOW | RTLD_LOCAL);
  if (h == NULL) {
    const char *why = dlerror();
    return tg__error_set(err, TG_ENOTFOUND, "plugin '%s' cannot be loaded: %s",
                         path, why ? why : "unknown error");
  }
  tg_plugin_init_fn init;
  /* POSIX's blessed way to turn a dlsym result into a function pointer. */
  *(void **)(&init) = dlsym(h, "tg_plugin_init");
  if (init == NULL) {
    dlclose(h);
    return tg__error_set(err, TG_ENOTFOUND,
                         "plugin '%s' has no tg_plugin_init function", path);
  }
  size_t before = tg_registry_count(reg);
  rc = init(reg);
  /* What it registered is its: the file's digest joins the identity of
   * those functions that declare no code id, so a rebuilt plugin
   * invalidates their results (those with one are known by it instead). */
  for (size_t i = before; i < tg_registry_count(reg); i++)
    tg__func_set_origin(tg_registry_at(reg, i), d, path);
  if (rc != TG_OK) {
    /* Keep the object mapped: init may have registered functions. The
     * registry's last complaint is most often why init gave up. */
    const char *why = tg_registry_errmsg(reg);
    return tg__error_set(err, rc < 0 ? rc : TG_EINVAL,
                         "plugin '%s': tg_plugin_init failed: %s%s%s", path,
                         rc < 0 ? tg_strerror(rc) : "it returned a positive "
                                                    "value",
                         *why ? ": " : "", why);
  }
  if (info != NULL) {
    info->digest = d;
    info->first_func = before;
    info->nfuncs = tg_registry_count(reg) - before;
  }
  return TG_OK;
}

int tg_registry_load_plugin(tg_registry *reg, const char *path,
                            tg_error *err) {
  return tg_registry_load_plugin_info(reg, path, NULL, err);
}
