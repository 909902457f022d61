/* lib/cache/fstype.c: refusing a cache directory on a network file system.
 *
 * LMDB keeps its reader table in a shared memory map of lock.mdb and its
 * data in a shared map of data.mdb, coordinated by POSIX locks. On NFS,
 * Lustre, GPFS, BeeGFS, CIFS/SMB, CephFS, AFS and FUSE file systems the
 * maps are not coherent between machines (often not even between
 * processes) and the locks are emulated or absent, so two nodes using one
 * cache silently corrupt it. Opening a cache therefore looks at the file
 * system type (statfs f_type) of the directory, or of its nearest existing
 * parent when it does not exist yet (nothing is created before the
 * check), and refuses the types below unless the caller forces it
 * (tg_cache_opts.allow_network_fs, or TGRAPH_CACHE_ON_NETWORK_FS=1).
 *
 * Not refused: 9p (virtio-9p, WSL's drvfs, some container root file
 * systems) and the shared-disk cluster file systems GFS2 and OCFS2: they
 * serve one machine coherently often enough that refusing them would stop
 * ordinary single-machine use.
 *
 * Testing: TGRAPH_TEST_CACHE_FS_TYPE=0xMAGIC makes the check also look at
 * that type as if statfs had returned it. The directory is refused when
 * either type is refused, so the variable can only make the check
 * stricter, never let a network file system through.
 *
 * Thread safety: reentrant (reads the environment, which the caller must
 * not change from another thread meanwhile).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>

#include "cache_internal.h"

#define FUSE_MAGIC 0x65735546UL
#define NET "a network file system"

typedef struct fs_kind {
  unsigned long magic; /* statfs f_type */
  const char *name;    /* as the message says it */
  const char *what;    /* why it is refused, in a few words */
} fs_kind;

/* Magic numbers from <linux/magic.h> and the vendors' clients. */
static const fs_kind refused[] = {
    {0x6969UL, "NFS", NET},
    {0x517BUL, "SMB", NET},
    {0xFF534D42UL, "CIFS/SMB", NET},
    {0xFE534D42UL, "SMB2/3", NET},
    {0x0BD00BD0UL, "Lustre", NET},
    {0x47504653UL, "GPFS", NET},
    {0x19830326UL, "BeeGFS", NET},
    {0x00C36400UL, "CephFS", NET},
    {0x5346414FUL, "AFS", NET},
    {0x6B414653UL, "AFS", NET},
    {0xAAD7AAEAUL, "PanFS", NET},
    {0x20030528UL, "OrangeFS", NET},
    /* sshfs, GlusterFS, s3fs, ceph-fuse and the like */
    {FUSE_MAGIC, "FUSE", "a user-space file system"},
};

static const fs_kind *refused_kind(unsigned long magic) {
  for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++)
    if (refused[i].magic == magic) return &refused[i];
  return NULL;
}

/* statfs of dir, or of its nearest existing parent ("." for a relative
 * name none of whose components exist). -errno on failure. */
static int statfs_nearest(const char *dir, struct statfs *sf, struct stat *st) {
  char path[4096];
  size_t n = strlen(dir);
  if (n >= sizeof path) return -ENAMETOOLONG;
  memcpy(path, dir, n + 1);
  for (;;) {
    if (statfs(path, sf) == 0 && stat(path, st) == 0) return TG_OK;
    int e = errno;
    if (e != ENOENT || !strcmp(path, ".") || !strcmp(path, "/")) return -e;
    while (n > 1 && path[n - 1] == '/') path[--n] = '\0'; /* "a/b/" */
    char *slash = strrchr(path, '/');
    if (!slash) strcpy(path, ".");
    else if (slash == path) strcpy(path, "/");
    else *slash = '\0';
    n = strlen(path);
  }
}

/* The FUSE subtype (e.g. "fuse.sshfs") of the mount holding device dev,
 * from /proc/self/mountinfo, into out; "" when not found. */
static void fuse_subtype(dev_t dev, char *out, size_t size) {
  out[0] = '\0';
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (!f) return;
  char line[4096], want[32];
  snprintf(want, sizeof want, "%u:%u", major(dev), minor(dev));
  while (fgets(line, sizeof line, f)) {
    /* "ID PARENT MAJ:MIN ROOT MOUNT OPTS [TAGS...] - FSTYPE SOURCE SUPEROPTS" */
    char id[32], parent[32], devno[32];
    if (sscanf(line, "%31s %31s %31s", id, parent, devno) != 3 || strcmp(devno, want))
      continue;
    char *sep = strstr(line, " - ");
    char type[256];
    if (sep && sscanf(sep + 3, "%255s", type) == 1) {
      size_t n = strnlen(type, size - 1);
      memcpy(out, type, n);
      out[n] = '\0';
      break;
    }
  }
  fclose(f);
}

#define MSG                                                                     \
  "cache directory %s is on %s (statfs type 0x%lx): LMDB is not safe on %s; "   \
  "use a local --cache-dir or TGRAPH_CACHE_DIR, or force it with "              \
  "--cache-on-network-fs or TGRAPH_CACHE_ON_NETWORK_FS=1"

/* s, or its start and end around "..." when longer than room bytes. */
static void elide(const char *s, size_t room, char *out, size_t size) {
  size_t n = strlen(s);
  if (room > size - 1) room = size - 1;
  if (n <= room || room < 8) {
    snprintf(out, size, "%s", s);
    return;
  }
  size_t head = (room - 3) / 2, tail = room - 3 - head;
  snprintf(out, size, "%.*s...%s", (int)head, s, s + n - tail);
}

/* TGRAPH_CACHE_ON_NETWORK_FS: unset, "" or "0" no, "1" yes, else bad. */
static int env_force(bool *force, tg_error *err) {
  const char *v = getenv("TGRAPH_CACHE_ON_NETWORK_FS");
  *force = v && strcmp(v, "1") == 0;
  if (!v || !*v || !strcmp(v, "0") || !strcmp(v, "1")) return TG_OK;
  return tg__error_set(err, TG_EINVAL,
                       "cache: TGRAPH_CACHE_ON_NETWORK_FS must be 0 or 1, not '%s'", v);
}

/* The injected test type, or 0 for none; a bad value is an error. */
static int env_test_type(unsigned long *magic, tg_error *err) {
  const char *v = getenv("TGRAPH_TEST_CACHE_FS_TYPE");
  *magic = 0;
  if (!v || !*v) return TG_OK;
  char *end;
  errno = 0;
  unsigned long long m = strtoull(v, &end, 0);
  if (errno || *end || v[0] == '-' || m > 0xFFFFFFFFULL)
    return tg__error_set(err, TG_EINVAL,
                         "cache: TGRAPH_TEST_CACHE_FS_TYPE must be a file system "
                         "magic number such as 0x6969, not '%s'", v);
  *magic = (unsigned long)m;
  return TG_OK;
}

int tg__cache_fs_check(const char *dir, bool allow, tg_error *err) {
  bool force;
  unsigned long injected;
  int rc;
  if ((rc = env_force(&force, err)) || (rc = env_test_type(&injected, err))) return rc;
  if (allow || force) return TG_OK;
  struct statfs sf;
  struct stat st;
  /* A directory we cannot even statfs is left to the open, which says
   * why in its own words. */
  if (statfs_nearest(dir, &sf, &st)) return TG_OK;
  /* f_type is signed on some ABIs: compare its low 32 bits. */
  unsigned long real = (unsigned long)sf.f_type & 0xFFFFFFFFUL;
  const fs_kind *k = refused_kind(real);
  unsigned long magic = real;
  if (!k && injected && (k = refused_kind(injected))) magic = injected;
  if (!k) return TG_OK;
  char sub[200] = "", name[sizeof sub + 32];
  if (magic == FUSE_MAGIC && magic == real) fuse_subtype(st.st_dev, sub, sizeof sub);
  if (sub[0]) snprintf(name, sizeof name, "%s (%s)", k->name, sub);
  else snprintf(name, sizeof name, "%s", k->name);
  /* The message must keep the type and the fix within tg_error's 255
   * bytes: a long directory name gives up its middle. */
  char shown[4096];
  int fixed = snprintf(NULL, 0, MSG, "", name, magic, k->what);
  size_t cap = sizeof err->msg - 1;
  size_t room = fixed >= 0 && (size_t)fixed < cap ? cap - (size_t)fixed : 0;
  elide(dir, room, shown, sizeof shown);
  return tg__error_set(err, -EREMOTE, MSG, shown, name, magic, k->what);
}
