/* lib/cache/opened.c: the cache directories this process has open.
 *
 * LMDB allows one environment per database per process: its locks are
 * POSIX record locks, which the process loses on its first close() of
 * any descriptor of the file, so a second environment on the same
 * directory would silently drop the first one's reader registration and
 * let writers reuse pages it is still reading. Opening a directory twice
 * is therefore refused. This list is the library's one piece of
 * process-wide mutable state, for that reason alone.
 *
 * Entries carry the opener's pid: a child of fork() does not own its
 * parent's environments and may open the same directory itself.
 *
 * Thread safety: guarded by a mutex.
 */
#include <pthread.h>
#include <unistd.h>

#include "cache_internal.h"

typedef struct opened {
  dev_t dev;
  ino_t ino;
  pid_t pid;
} opened;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static opened *list;
static size_t n, cap;

int tg__opened_add(dev_t dev, ino_t ino) {
  pid_t pid = getpid();
  int rc = TG_OK;
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < n && !rc; i++)
    if (list[i].dev == dev && list[i].ino == ino && list[i].pid == pid) rc = TG_EEXIST;
  if (!rc && n == cap) {
    size_t c2 = cap ? 2 * cap : 8;
    opened *p = tg__realloc(list, c2 * sizeof *p);
    if (p) list = p, cap = c2;
    else rc = TG_ENOMEM;
  }
  if (!rc) list[n++] = (opened){dev, ino, pid};
  pthread_mutex_unlock(&mu);
  return rc;
}

void tg__opened_remove(dev_t dev, ino_t ino) {
  pid_t pid = getpid();
  pthread_mutex_lock(&mu);
  for (size_t i = 0; i < n; i++) {
    if (list[i].dev == dev && list[i].ino == ino && list[i].pid == pid) {
      list[i] = list[--n];
      break;
    }
  }
  pthread_mutex_unlock(&mu);
}
