/* lib/launch/pmi1.c: the rank exchange through a PMI-1 server, the
 * "simple PMI" wire protocol of MPICH's Hydra (mpiexec.hydra), Slurm's
 * srun --mpi=pmi2 (which answers PMI-1 clients too) and others: text
 * lines of space-separated key=value words over the socket the launcher
 * hands each rank (PMI_FD), or over a tcp connection to PMI_PORT
 * (host:port, with PMI_ID naming the rank). Nothing is linked: tgraph
 * speaks the protocol itself, so no MPI need be installed.
 *
 * Requests and the replies they wait for:
 *   [cmd=initack pmiid=ID     cmd=initack, cmd=set size=, rank=, debug=]
 *    cmd=init pmi_version=1 pmi_subversion=1     cmd=response_to_init
 *    cmd=get_maxes                      cmd=maxes (kvsname_max, keylen_max,
 *                                                   vallen_max)
 *    cmd=get_my_kvsname                 cmd=my_kvsname kvsname=
 *    cmd=put kvsname= key= value=       cmd=put_result
 *    cmd=barrier_in                     cmd=barrier_out
 *    cmd=get kvsname= key=              cmd=get_result value=
 *    cmd=finalize                       cmd=finalize_ack
 * Every reply but initack and set carries rc (0: done) and may carry msg.
 *
 * The key-value space is the job's, not a rank's: rank R's key K is
 * stored as "R.K". Words are split at spaces and '=' separates a word's
 * key: values are sent with every byte outside [A-Za-z0-9._:/,+@-]
 * written as %XX, and decoded on get. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "../internal.h"
#include "launch.h"

#define LINE_MAX_ 65536 /* a reply longer than this is not PMI */

typedef struct p1 {
  int fd;
  unsigned rank, size;
  double timeout;
  char where[96];  /* "PMI_FD=6" or "PMI_PORT=host:port": for messages */
  char kvs[256];   /* the job's key-value space */
  size_t keymax, valmax;
  char *in;        /* bytes read past the last line */
  size_t have;
  bool broken;     /* a request went unanswered: the connection's state is
                      unknown, so no finalize */
} p1;

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* The request's first word, for messages ("cmd=put key=3.tg.ready"). */
static void what_of(const char *req, char *buf, size_t size) {
  const char *key = strstr(req, " key=");
  size_t n = strcspn(req, " \n");
  if (key) {
    size_t k = strcspn(key + 1, " \n");
    snprintf(buf, size, "%.*s %.*s", (int)n, req, (int)k, key + 1);
  } else {
    snprintf(buf, size, "%.*s", (int)n, req);
  }
}

static int send_line(p1 *p, const char *line, tg_error *err) {
  size_t n = strlen(line), off = 0;
  while (off < n) {
    ssize_t w = send(p->fd, line + off, n - off, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      char what[96];
      what_of(line, what, sizeof what);
      p->broken = true;
      return tg__error_set(err, TG_EIO, "rank %u cannot send %s to the PMI server (%s): %s",
                           p->rank, what, p->where, strerror(errno));
    }
    off += (size_t)w;
  }
  return TG_OK;
}

/* The next reply line (without its newline) into *line (free()), waiting
 * until `until`; `req` names the request in messages. */
static int read_line(p1 *p, const char *req, double until, char **line, tg_error *err) {
  char what[96];
  for (;;) {
    char *nl = p->have ? memchr(p->in, '\n', p->have) : NULL;
    if (nl != NULL) {
      size_t n = (size_t)(nl - p->in);
      char *l = malloc(n + 1);
      if (l == NULL) return tg__error_set(err, TG_ENOMEM, "out of memory");
      memcpy(l, p->in, n);
      l[n] = '\0';
      p->have -= n + 1;
      memmove(p->in, nl + 1, p->have);
      *line = l;
      return TG_OK;
    }
    what_of(req, what, sizeof what);
    if (p->have >= LINE_MAX_) {
      p->broken = true;
      return tg__error_set(err, TG_EPROTO, "the PMI server (%s) answered %s of rank %u with "
                           "a line of over %d bytes: not a PMI server?", p->where, what,
                           p->rank, LINE_MAX_);
    }
    double left = until - now();
    struct pollfd pf = {.fd = p->fd, .events = POLLIN};
    /* (A long --rank-timeout waits in steps a poll's int can count.) */
    int rc = left > 0 ? poll(&pf, 1, left > 1e6 ? 1000000000 : (int)(left * 1000) + 1) : 0;
    if ((rc < 0 && errno == EINTR) || (rc == 0 && now() < until)) continue;
    if (rc < 0) {
      int e = errno;
      p->broken = true;
      return tg__error_set(err, TG_EIO, "waiting for the PMI server (%s) to answer %s of "
                           "rank %u: %s", p->where, what, p->rank, strerror(e));
    }
    if (rc == 0) {
      p->broken = true;
      return tg__error_set(err, TG_ETIMEDOUT, "the PMI server (%s) did not answer %s of "
                           "rank %u within %g s", p->where, what, p->rank, p->timeout);
    }
    if (p->in == NULL && (p->in = tg__malloc(LINE_MAX_)) == NULL)
      return tg__error_set(err, TG_ENOMEM, "out of memory");
    ssize_t r = read(p->fd, p->in + p->have, LINE_MAX_ - p->have);
    int e = errno;
    if (r < 0 && e == EINTR) continue;
    if (r <= 0) {
      p->broken = true;
      return tg__error_set(err, TG_EIO, "the PMI server (%s) closed the connection before "
                           "answering %s of rank %u%s%s", p->where, what, p->rank,
                           r < 0 ? ": " : "", r < 0 ? strerror(e) : "");
    }
    p->have += (size_t)r;
  }
}

/* The value of word `key` in a reply line, in buf; false when absent or
 * longer than buf holds. */
static bool field(const char *line, const char *key, char *buf, size_t size) {
  size_t k = strlen(key);
  for (const char *w = line; *w;) {
    while (*w == ' ') w++;
    size_t n = strcspn(w, " ");
    if (n > k && strncmp(w, key, k) == 0 && w[k] == '=') {
      if (n - k - 1 >= size) return false; /* cut, it would name something else */
      snprintf(buf, size, "%.*s", (int)(n - k - 1), w + k + 1);
      return true;
    }
    w += n;
  }
  return false;
}

/* Send req and read the reply cmd=`want`; rc other than 0 is the
 * server's refusal, in the message with its msg. *reply: free(). */
static int ask(p1 *p, const char *req, const char *want, char **reply, tg_error *err) {
  *reply = NULL;
  int rc = send_line(p, req, err);
  char *line = NULL, what[96], cmd[64], val[96];
  if (rc == TG_OK) rc = read_line(p, req, now() + p->timeout, &line, err);
  if (rc != TG_OK) return rc;
  what_of(req, what, sizeof what);
  if (!field(line, "cmd", cmd, sizeof cmd) || strcmp(cmd, want) != 0) {
    p->broken = true;
    rc = tg__error_set(err, TG_EPROTO, "the PMI server (%s) answered %s of rank %u with "
                       "'%.60s', not cmd=%s", p->where, what, p->rank, line, want);
  } else if (field(line, "rc", val, sizeof val) && strcmp(val, "0") != 0) {
    char msg[96] = "";
    field(line, "msg", msg, sizeof msg);
    rc = tg__error_set(err, TG_EIO, "the PMI server (%s) refused %s of rank %u: rc=%s%s%s",
                       p->where, what, p->rank, val, msg[0] ? " msg=" : "", msg);
  }
  if (rc != TG_OK) {
    free(line);
    return rc;
  }
  *reply = line;
  return TG_OK;
}

/* A number word of a reply; its absence or a bad one is an error. */
static int number(p1 *p, const char *line, const char *what, const char *key, size_t *out,
                  tg_error *err) {
  char v[32], *end;
  errno = 0;
  if (!field(line, key, v, sizeof v) || v[0] < '0' || v[0] > '9' ||
      (*out = strtoul(v, &end, 10), *end != '\0') || errno == ERANGE) {
    p->broken = true;
    return tg__error_set(err, TG_EPROTO, "the PMI server (%s) answered %s of rank %u with "
                         "'%.60s': no number %s=", p->where, what, p->rank, line, key);
  }
  return TG_OK;
}

static bool plain(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
         strchr("._:/,+@-", c) != NULL;
}

static int put(void *impl, const char *key, const char *val, tg_error *err) {
  p1 *p = impl;
  char k[96];
  snprintf(k, sizeof k, "%u.%s", p->rank, key);
  size_t n = 0;
  for (const char *c = val; *c; c++) n += plain((unsigned char)*c) ? 1 : 3;
  if (strlen(k) >= p->keymax || n >= p->valmax)
    return tg__error_set(err, TG_ELIMIT, "rank %u's '%s' does not fit the PMI server's "
                         "limits (%s: keys below %zu bytes, values below %zu; this one "
                         "%zu)", p->rank, key, p->where, p->keymax, p->valmax, n);
  char *req = malloc(n + strlen(k) + strlen(p->kvs) + 64);
  if (req == NULL) return tg__error_set(err, TG_ENOMEM, "out of memory");
  char *w = req + sprintf(req, "cmd=put kvsname=%s key=%s value=", p->kvs, k);
  for (const unsigned char *c = (const unsigned char *)val; *c; c++)
    w += plain(*c) ? sprintf(w, "%c", *c) : sprintf(w, "%%%02X", *c);
  strcpy(w, "\n");
  char *reply;
  int rc = ask(p, req, "put_result", &reply, err);
  explicit_bzero(req, strlen(req)); /* it may hold the run's keys */
  free(req);
  free(reply);
  return rc;
}

/* The barrier waits for the slowest rank: a rank that never comes (not
 * a tgraph, or stuck) is an error after the timeout, not a hang. */
static int fence(void *impl, tg_error *err) {
  p1 *p = impl;
  int rc = send_line(p, "cmd=barrier_in\n", err);
  char *line = NULL, cmd[64], val[96];
  if (rc == TG_OK) rc = read_line(p, "cmd=barrier_in", now() + p->timeout, &line, err);
  if (rc == TG_ETIMEDOUT)
    return tg__error_set(err, rc, "not every one of the %u ranks showed up within %g s "
                         "(are they all tgraph with --scheduler=mpi?)", p->size, p->timeout);
  if (rc != TG_OK) return rc;
  if (!field(line, "cmd", cmd, sizeof cmd) || strcmp(cmd, "barrier_out") != 0) {
    p->broken = true;
    rc = tg__error_set(err, TG_EPROTO, "the PMI server (%s) answered cmd=barrier_in of rank "
                       "%u with '%.60s', not cmd=barrier_out", p->where, p->rank, line);
  } else if (field(line, "rc", val, sizeof val) && strcmp(val, "0") != 0) {
    rc = tg__error_set(err, TG_EIO, "the ranks' exchange failed: the PMI server (%s) "
                       "answered cmd=barrier_in of rank %u with rc=%s (a rank died?)",
                       p->where, p->rank, val);
  }
  free(line);
  return rc;
}

static int unhex(int c) {
  return c >= '0' && c <= '9' ? c - '0'
         : c >= 'A' && c <= 'F' ? c - 'A' + 10
         : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static int get(void *impl, unsigned r, const char *key, char **out, tg_error *err) {
  p1 *p = impl;
  char k[96], *req = malloc(strlen(p->kvs) + 160), *reply = NULL;
  if (req == NULL) return tg__error_set(err, TG_ENOMEM, "out of memory");
  snprintf(k, sizeof k, "%u.%s", r, key);
  sprintf(req, "cmd=get kvsname=%s key=%s\n", p->kvs, k);
  int rc = ask(p, req, "get_result", &reply, err);
  free(req);
  if (rc == TG_EIO && !p->broken) { /* the server's rc: no such key */
    char why[256];
    snprintf(why, sizeof why, "%s", err->msg);
    return tg__error_set(err, TG_ENOTFOUND, "rank %u has no '%s' (%s)", r, key, why);
  }
  if (rc != TG_OK) return rc;
  const char *v = strstr(reply, " value=");
  size_t n = v ? strcspn(v + 7, " ") : 0;
  char *s = v ? malloc(n + 1) : NULL;
  size_t len = 0;
  for (size_t i = 0; s != NULL && i < n; i++) {
    const char *c = v + 7 + i;
    int hi, lo;
    if (*c != '%') {
      s[len++] = *c;
    } else if (i + 2 < n && (hi = unhex(c[1])) >= 0 && (lo = unhex(c[2])) >= 0) {
      s[len++] = (char)(hi * 16 + lo);
      i += 2;
    } else {
      free(s);
      s = NULL;
      v = NULL;
      break;
    }
  }
  if (v == NULL) {
    rc = tg__error_set(err, TG_EPROTO, "the PMI server (%s) answered cmd=get key=%s of rank "
                       "%u with '%.60s': no value= as this rank put it", p->where, k, p->rank,
                       reply);
  } else if (s == NULL) {
    rc = tg__error_set(err, TG_ENOMEM, "out of memory");
  } else {
    s[len] = '\0';
    *out = s;
  }
  explicit_bzero(reply, strlen(reply));
  free(reply);
  return rc;
}

static void drop(p1 *p);

static void close_p1(void *impl) {
  p1 *p = impl;
  char *reply = NULL;
  tg_error ignored;
  /* A server that stopped answering would make finalize wait its whole
   * timeout. Nor is the socket closed then: Hydra takes a rank that
   * closes it unfinalized for a dead one and kills the job at once, before
   * this rank could say why it fails. The process's end closes it. */
  if (p->broken) {
    drop(p);
    return;
  }
  p->timeout = p->timeout < 5 ? p->timeout : 5;
  ask(p, "cmd=finalize\n", "finalize_ack", &reply, &ignored);
  free(reply);
  close(p->fd);
  p->fd = -1;
  drop(p);
}

static const tg__kvx_ops ops_pmi1 = {put, fence, get, close_p1};

/* PMI_FD: a socket the launcher opened; it must not reach the ranks'
 * own children (the tasks). */
static int from_fd(p1 *p, const char *s, tg_error *err) {
  char *end;
  errno = 0;
  long fd = strtol(s, &end, 10);
  if (s[0] < '0' || s[0] > '9' || *end != '\0' || errno || fd > 65535)
    return tg__error_set(err, TG_EINVAL, "PMI_FD='%s' is not a file descriptor", s);
  snprintf(p->where, sizeof p->where, "PMI_FD=%ld", fd);
  int sotype;
  socklen_t len = sizeof sotype;
  if (getsockopt((int)fd, SOL_SOCKET, SO_TYPE, &sotype, &len) != 0)
    return tg__error_set(err, TG_EINVAL, "PMI_FD=%ld is not an open socket of this process "
                         "(%s)", fd, strerror(errno));
  p->fd = (int)fd;
  (void)fcntl(p->fd, F_SETFD, FD_CLOEXEC);
  return TG_OK;
}

/* PMI_PORT host:port: connect, then the initack handshake that tells
 * the server which rank this is (PMI_ID) and answers with the job's size
 * and this rank, into p->size and p->rank: with a port, Hydra sets no
 * PMI_RANK or PMI_SIZE. */
static int from_port(p1 *p, const char *s, tg_error *err) {
  snprintf(p->where, sizeof p->where, "PMI_PORT=%.80s", s);
  const char *id = getenv("PMI_ID");
  if (id == NULL || id[0] == '\0' || id[strspn(id, "0123456789")] != '\0' || strlen(id) > 9)
    return tg__error_set(err, TG_EINVAL, "PMI_PORT is set but PMI_ID='%.20s' is not a rank "
                         "number", id ? id : "");
  p->rank = (unsigned)atoi(id); /* for messages, until the server says */
  const char *colon = strrchr(s, ':');
  if (colon == NULL || colon == s || colon[1] == '\0')
    return tg__error_set(err, TG_EINVAL, "PMI_PORT='%.80s' is not host:port", s);
  char host[256];
  snprintf(host, sizeof host, "%.*s", (int)(colon - s), s);
  struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
  int g = getaddrinfo(host, colon + 1, &hints, &res);
  if (g != 0)
    return tg__error_set(err, TG_EINVAL, "PMI_PORT='%.80s': %s", s, gai_strerror(g));
  int fd = -1, e = 0;
  for (struct addrinfo *a = res; a != NULL && fd < 0; a = a->ai_next) {
    fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
    if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) {
      e = errno;
      close(fd);
      fd = -1;
    }
  }
  freeaddrinfo(res);
  if (fd < 0)
    return tg__error_set(err, TG_EIO, "rank %u cannot reach the PMI server (%s): %s",
                         p->rank, p->where, strerror(e));
  p->fd = fd;
  char req[64], *line = NULL, *reply = NULL;
  snprintf(req, sizeof req, "cmd=initack pmiid=%s\n", id);
  int rc = ask(p, req, "initack", &reply, err);
  free(reply);
  /* Then three lines: cmd=set size=, rank=, debug=. */
  static const char *const sets[] = {"size", "rank", "debug"};
  size_t v[3] = {0, 0, 0};
  for (int i = 0; rc == TG_OK && i < 3; i++) {
    rc = read_line(p, "cmd=initack", now() + p->timeout, &line, err);
    char cmd[32];
    if (rc == TG_OK && (!field(line, "cmd", cmd, sizeof cmd) || strcmp(cmd, "set") != 0)) {
      p->broken = true;
      rc = tg__error_set(err, TG_EPROTO, "the PMI server (%s) answered cmd=initack of rank "
                         "%u with '%.60s', not cmd=set %s=", p->where, p->rank, line, sets[i]);
    }
    if (rc == TG_OK) rc = number(p, line, "cmd=initack", sets[i], &v[i], err);
    free(line);
    line = NULL;
  }
  if (rc == TG_OK && (v[0] == 0 || v[0] > (1u << 20) || v[1] >= v[0]))
    rc = tg__error_set(err, TG_EPROTO, "the PMI server (%s) told rank %u size %zu and rank "
                       "%zu", p->where, p->rank, v[0], v[1]);
  p->size = (unsigned)v[0];
  p->rank = (unsigned)v[1];
  return rc;
}

/* The launcher's one PMI-1 slot of this process, under PMI_PORT: the
 * connection the rank's handshake made (tg_cluster_rank may come first),
 * until the exchange takes it, and the rank and size it told. The one
 * piece of process-wide state here, because the launcher gives each
 * process one such slot (PMI_ID): a second handshake would be a second
 * process to it. The lock lets tg_cluster_rank be called from any thread. */
static struct {
  pthread_mutex_t mu;
  p1 *conn;
  bool known;
  unsigned rank, size;
  pid_t pid; /* the process that made it: a forked child must not use it */
} slot = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Under slot.mu: an error when the slot was filled by the parent of this
 * (forked) process: its replies would go to either. */
static int not_forked(tg_error *err) {
  if (!slot.known || slot.pid == getpid()) return TG_OK;
  return tg__error_set(err, TG_ESTATE, "the PMI-1 connection (PMI_PORT) belongs to process "
                       "%ld, which this one was forked from: a launcher's rank is one process",
                       (long)slot.pid);
}

/* A connection that failed before its exchange began: its memory goes
 * (what was read wiped: replies may hold keys), its socket stays open for
 * the reason close_p1 gives; the process's end closes it. */
static void drop(p1 *p) {
  if (p->in) explicit_bzero(p->in, LINE_MAX_);
  tg__free(p->in);
  tg__free(p);
}

int tg__pmi1_port_rank(unsigned *rank, unsigned *size, tg_error *err) {
  pthread_mutex_lock(&slot.mu);
  int rc = not_forked(err);
  if (rc == TG_OK && !slot.known) {
    p1 *p = tg__calloc(1, sizeof *p);
    if (p == NULL) {
      rc = tg__error_set(err, TG_ENOMEM, "out of memory");
    } else {
      p->fd = -1;
      /* Before any option is known: tg__pmi1_open sets the run's. */
      p->timeout = 60;
      rc = from_port(p, getenv("PMI_PORT"), err);
      if (rc != TG_OK) {
        drop(p);
      } else {
        slot.conn = p;
        slot.known = true;
        slot.pid = getpid();
        slot.rank = p->rank;
        slot.size = p->size;
      }
    }
  }
  *rank = slot.rank;
  *size = slot.size;
  pthread_mutex_unlock(&slot.mu);
  return rc;
}

int tg__pmi1_open(const tg__rank *r, double timeout, void **impl, const tg__kvx_ops **ops,
                  tg_error *err) {
  const char *fd = getenv("PMI_FD"), *port = getenv("PMI_PORT");
  if ((fd == NULL || fd[0] == '\0') && (port == NULL || port[0] == '\0'))
    return tg__error_set(err, TG_ENOTFOUND, "nor a PMI-1 server (no PMI_FD or PMI_PORT)");
  bool by_fd = fd != NULL && fd[0] != '\0';
  pthread_mutex_lock(&slot.mu);
  int forked = by_fd ? TG_OK : not_forked(err);
  p1 *p = by_fd || forked ? NULL : slot.conn;
  bool taken = !by_fd && !forked && p == NULL && slot.known;
  if (!by_fd && !forked) slot.conn = NULL;
  pthread_mutex_unlock(&slot.mu);
  if (forked) return forked;
  if (taken)
    return tg__error_set(err, TG_ESTATE, "this process's PMI-1 connection (PMI_PORT) was "
                         "used by an exchange already");
  int rc = TG_OK;
  if (p == NULL) {
    if ((p = tg__calloc(1, sizeof *p)) == NULL)
      return tg__error_set(err, TG_ENOMEM, "out of memory");
    p->fd = -1;
    p->rank = r->rank;
    p->size = r->size;
    p->timeout = timeout;
    rc = by_fd ? from_fd(p, fd, err) : from_port(p, port, err);
  }
  p->timeout = timeout;
  if (rc == TG_OK && !by_fd && (p->rank != r->rank || p->size != r->size))
    rc = tg__error_set(err, TG_EINVAL, "%s says rank %u of %u but the PMI server (%s) says "
                       "rank %u of %u", r->by, r->rank, r->size, p->where, p->rank, p->size);
  char *reply = NULL;
  if (rc == TG_OK) rc = ask(p, "cmd=init pmi_version=1 pmi_subversion=1\n",
                            "response_to_init", &reply, err);
  char v[32];
  if (rc == TG_OK && (!field(reply, "pmi_version", v, sizeof v) || strcmp(v, "1") != 0)) {
    p->broken = true;
    rc = tg__error_set(err, TG_EPROTO, "the PMI server (%s) answered cmd=init of rank %u "
                       "with '%.60s': not PMI version 1", p->where, p->rank, reply);
  }
  free(reply);
  reply = NULL;
  if (rc == TG_OK) rc = ask(p, "cmd=get_maxes\n", "maxes", &reply, err);
  size_t kvsmax = 0;
  if (rc == TG_OK) rc = number(p, reply, "cmd=get_maxes", "kvsname_max", &kvsmax, err);
  if (rc == TG_OK) rc = number(p, reply, "cmd=get_maxes", "keylen_max", &p->keymax, err);
  if (rc == TG_OK) rc = number(p, reply, "cmd=get_maxes", "vallen_max", &p->valmax, err);
  free(reply);
  reply = NULL;
  if (rc == TG_OK) rc = ask(p, "cmd=get_my_kvsname\n", "my_kvsname", &reply, err);
  if (rc == TG_OK && (!field(reply, "kvsname", p->kvs, sizeof p->kvs) || p->kvs[0] == '\0')) {
    p->broken = true;
    rc = tg__error_set(err, TG_EPROTO, "the PMI server (%s) answered cmd=get_my_kvsname of "
                       "rank %u with '%.60s': no kvsname= (or one over %zu bytes)", p->where, p->rank,
                       reply, sizeof p->kvs - 1);
  }
  free(reply);
  if (rc != TG_OK) {
    /* Half open: no finalize, and the socket left open. */
    drop(p);
    return rc;
  }
  *impl = p;
  *ops = &ops_pmi1;
  return TG_OK;
}
