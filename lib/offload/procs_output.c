/* lib/offload/procs_output.c: forwarding the workers' stdout and stderr
 * to the parent's, one thread for all of them. Each line is written with
 * one write() once complete, so lines of different workers never mix; a
 * line longer than LINE_MAX_BYTES goes out in pieces of that size, and an
 * unfinished last line when its worker ends.
 *
 * Thread safety: tg__pout_add from any thread; start/stop by the owner. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "offload/procs_internal.h"
#include "util/thread.h"

#define LINE_MAX_BYTES ((size_t)1 << 20)

typedef struct source {
  int fd;
  int dest;
  tg__wbuf buf; /* bytes of an unfinished line */
} source;

struct tg__pout {
  pthread_t th;
  int ep, wake;
  _Atomic int stop;
  pthread_mutex_t mu;     /* guards added */
  source **added;
  size_t nadded, added_cap;
  source **all;           /* the thread's */
  size_t n, cap;
};

static void write_all(int fd, const uint8_t *p, size_t n) {
  while (n) {
    ssize_t k = write(fd, p, n);
    if (k > 0) {
      p += k;
      n -= (size_t)k;
    } else if (k < 0 && errno == EINTR) {
      continue;
    } else if (k < 0 && errno == EAGAIN) {
      struct pollfd pf = {fd, POLLOUT, 0};
      poll(&pf, 1, 100);
    } else {
      return; /* the destination is gone: drop the output */
    }
  }
}

/* Write the complete lines of s (all of it when `end`). */
static void emit(source *s, bool end) {
  size_t start = 0;
  for (;;) {
    uint8_t *nl = memchr(s->buf.p + start, '\n', s->buf.len - start);
    size_t len = nl ? (size_t)(nl - (s->buf.p + start)) + 1 : s->buf.len - start;
    if (!nl && len < LINE_MAX_BYTES && !end) break;
    if (!len) break;
    if (len > LINE_MAX_BYTES) len = LINE_MAX_BYTES;
    write_all(s->dest, s->buf.p + start, len);
    start += len;
  }
  if (start) {
    memmove(s->buf.p, s->buf.p + start, s->buf.len - start);
    s->buf.len -= start;
  }
}

/* Room to read into (allocating only while no fork can happen). */
static int reserve(source *s) {
  tg__fork_busy();
  int rc = tg__wbuf_reserve(&s->buf, 16 << 10) ? TG_OK : TG_ENOMEM;
  tg__fork_idle();
  return rc;
}

/* Read what is there; false at end of stream. */
static bool drain(source *s) {
  for (;;) {
    if (reserve(s) != TG_OK) {
      emit(s, true); /* no memory: write what we have, unsplit */
      if (reserve(s) != TG_OK) return false;
    }
    ssize_t k = read(s->fd, s->buf.p + s->buf.len, s->buf.cap - s->buf.len);
    if (k > 0) {
      s->buf.len += (size_t)k;
      emit(s, false);
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    return k < 0 && errno == EAGAIN;
  }
}

static void close_source(tg__pout *o, source *s) {
  emit(s, true);
  tg__fork_busy();
  epoll_ctl(o->ep, EPOLL_CTL_DEL, s->fd, NULL);
  tg__fd_untrack(s->fd);
  close(s->fd);
  tg__wbuf_free(&s->buf);
  for (size_t i = 0; i < o->n; i++)
    if (o->all[i] == s) {
      o->all[i] = o->all[--o->n];
      break;
    }
  tg__free(s);
  tg__fork_idle();
}

static void adopt(tg__pout *o) {
  uint64_t x;
  (void)!read(o->wake, &x, sizeof x);
  tg__fork_busy();
  pthread_mutex_lock(&o->mu);
  for (size_t i = 0; i < o->nadded; i++) {
    source *s = o->added[i];
    if (o->n == o->cap) {
      size_t c = o->cap ? o->cap * 2 : 16;
      source **a = tg__realloc(o->all, c * sizeof *a);
      if (a) {
        o->all = a;
        o->cap = c;
      }
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = s};
    if (o->n == o->cap || epoll_ctl(o->ep, EPOLL_CTL_ADD, s->fd, &ev) != 0) {
      tg__fd_untrack(s->fd); /* cannot watch it: drop its output */
      close(s->fd);
      tg__free(s);
      continue;
    }
    o->all[o->n++] = s;
  }
  o->nadded = 0;
  pthread_mutex_unlock(&o->mu);
  tg__fork_idle();
}

static void *out_main(void *arg) {
  tg__pout *o = arg;
  sigset_t pipe_only;
  sigemptyset(&pipe_only);
  sigaddset(&pipe_only, SIGPIPE); /* a closed stdout must not kill the parent */
  pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
  struct epoll_event evs[32];
  while (!atomic_load(&o->stop)) {
    int k = epoll_wait(o->ep, evs, 32, -1);
    for (int i = 0; i < k; i++) {
      if (!evs[i].data.ptr) {
        adopt(o);
        continue;
      }
      source *s = evs[i].data.ptr;
      if (!drain(s)) close_source(o, s);
    }
  }
  adopt(o);
  while (o->n) { /* last words: what is readable now */
    source *s = o->all[o->n - 1];
    drain(s);
    close_source(o, s);
  }
  return NULL;
}

int tg__pout_start(tg__pout **out, tg_error *err) {
  tg__pout *o = tg__calloc(1, sizeof *o);
  if (!o) return tg__error_set(err, TG_ENOMEM, "out of memory");
  pthread_mutex_init(&o->mu, NULL);
  o->ep = epoll_create1(EPOLL_CLOEXEC);
  o->wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
  int rc = o->ep < 0 || o->wake < 0 || epoll_ctl(o->ep, EPOLL_CTL_ADD, o->wake, &ev) != 0
               ? -errno
               : tg__thread_start(&o->th, out_main, o);
  if (rc != 0) {
    if (rc > 0) rc = -rc;
    if (o->ep >= 0) close(o->ep);
    if (o->wake >= 0) close(o->wake);
    pthread_mutex_destroy(&o->mu);
    tg__free(o);
    return tg__error_set(err, rc, "cannot start the output thread");
  }
  tg__fd_track(o->ep);
  tg__fd_track(o->wake);
  *out = o;
  return TG_OK;
}

void tg__pout_add(tg__pout *o, int fd, int dest) {
  source *s = tg__calloc(1, sizeof *s);
  pthread_mutex_lock(&o->mu);
  if (s && o->nadded == o->added_cap) {
    size_t c = o->added_cap ? o->added_cap * 2 : 8;
    source **a = tg__realloc(o->added, c * sizeof *a);
    if (a) {
      o->added = a;
      o->added_cap = c;
    }
  }
  if (!s || o->nadded == o->added_cap) {
    pthread_mutex_unlock(&o->mu);
    tg__free(s);
    tg__fd_untrack(fd);
    close(fd);
    return;
  }
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  s->fd = fd;
  s->dest = dest;
  o->added[o->nadded++] = s;
  pthread_mutex_unlock(&o->mu);
  uint64_t one = 1;
  (void)!write(o->wake, &one, sizeof one);
}

void tg__pout_stop(tg__pout *o) {
  if (!o) return;
  atomic_store(&o->stop, 1);
  uint64_t one = 1;
  (void)!write(o->wake, &one, sizeof one);
  pthread_join(o->th, NULL);
  tg__fd_untrack(o->ep);
  tg__fd_untrack(o->wake);
  close(o->ep);
  close(o->wake);
  pthread_mutex_destroy(&o->mu);
  tg__free(o->added);
  tg__free(o->all);
  tg__free(o);
}
