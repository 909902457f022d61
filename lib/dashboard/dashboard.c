/* lib/dashboard/dashboard.c: the live dashboard's HTTP server: a
 * libmicrohttpd daemon on a thread of its own, on a socket bound here (so
 * a busy port is a clear error), serving the report's live page and its
 * data to requests that carry the token. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "offload/procs_internal.h"
#include "dashboard/dashboard_internal.h"
#include "report/report_internal.h"
#include "tgraph/dashboard.h"

#define TOKEN_BYTES 16 /* 128 bits */
#define TOKEN_HEX (2 * TOKEN_BYTES)
/* A /data reply is reused for this long: however many pages and clients
 * ask, the report (whose lock its events wait on while the data is
 * gathered) is read at most twice a second. A page asks once a second,
 * so one page always gets fresh data. */
#define DATA_REUSE_SECONDS 0.5
/* Seconds an idle connection is kept: the page asks every second, so a
 * live browser never reaches it; a silent client does not hold a slot. */
#define IDLE_SECONDS 30

struct tg_dashboard {
  struct MHD_Daemon *mhd;
  tg_report *report;        /* borrowed */
  int fd;                   /* the listening socket (MHD closes it) */
  bool loopback;
  unsigned port;
  char token[TOKEN_HEX + 1];
  char data_url[8 + TOKEN_HEX]; /* "data?t=TOKEN", relative to the page */
  char url[128];
  /* Used by the daemon's one thread only (no thread per connection): */
  struct MHD_Response *data; /* the last /data reply, or NULL */
  double data_at;            /* when it was made (CLOCK_MONOTONIC s) */
};

static const char forbidden[] =
    "403 forbidden: open the dashboard with the URL tgraph printed, token included\n";
static const char not_found[] = "404 not found: the dashboard has / and /data\n";
static const char not_allowed[] = "405 method not allowed: GET or HEAD only\n";

/* A request's token against ours, in time independent of where they
 * differ (the length is not secret: every token has the same). */
static bool token_ok(const tg_dashboard *d, const char *given) {
  if (given == NULL || strlen(given) != TOKEN_HEX) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < TOKEN_HEX; i++) diff |= (unsigned char)(given[i] ^ d->token[i]);
  return diff == 0;
}

static int new_token(char *hex) {
  unsigned char raw[TOKEN_BYTES];
  size_t got = 0;
  while (got < sizeof raw) {
    ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return -errno;
    got += (size_t)n;
  }
  for (size_t i = 0; i < sizeof raw; i++) snprintf(hex + 2 * i, 3, "%02x", raw[i]);
  return TG_OK;
}

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void add_headers(struct MHD_Response *r, const char *type) {
  MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, type);
  MHD_add_response_header(r, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
  MHD_add_response_header(r, "Referrer-Policy", "no-referrer");
  MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
  MHD_add_response_header(r, "X-Frame-Options", "DENY");
}

/* Queue buf (len bytes, freed by MHD with tg__free when it is sent, or
 * static when `owned` is false) with status and type. */
static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *type,
                             char *buf, size_t len, bool owned) {
  struct MHD_Response *r =
      owned ? MHD_create_response_from_buffer_with_free_callback(len, buf, tg__free)
            : MHD_create_response_from_buffer(len, buf, MHD_RESPMEM_PERSISTENT);
  if (r == NULL) {
    if (owned) tg__free(buf);
    return MHD_NO;
  }
  add_headers(r, type);
  enum MHD_Result ok = MHD_queue_response(c, status, r);
  MHD_destroy_response(r);
  return ok;
}

static enum MHD_Result text(struct MHD_Connection *c, unsigned status, const char *msg) {
  return reply(c, status, "text/plain; charset=utf-8", (char *)msg, strlen(msg), false);
}

/* The run's data: the last reply while it is recent, else a new one
 * (kept; MHD counts its users, so replacing it never frees one in use). */
static enum MHD_Result data_reply(tg_dashboard *d, struct MHD_Connection *c) {
  double t = now();
  if (d->data == NULL || t - d->data_at >= DATA_REUSE_SECONDS) {
    char *buf = NULL;
    size_t len = 0;
    if (tg__report_json(d->report, &buf, &len) != TG_OK)
      return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "500 the report could not be read\n");
    struct MHD_Response *r =
        MHD_create_response_from_buffer_with_free_callback(len, buf, tg__free);
    if (r == NULL) {
      tg__free(buf);
      return MHD_NO;
    }
    add_headers(r, "application/json");
    if (d->data != NULL) MHD_destroy_response(d->data);
    d->data = r;
    d->data_at = t;
  }
  return MHD_queue_response(c, MHD_HTTP_OK, d->data);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version,
                                  const char *upload, size_t *upload_size, void **state) {
  (void)version, (void)upload, (void)upload_size, (void)state;
  tg_dashboard *d = cls;
  if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
    return text(c, MHD_HTTP_METHOD_NOT_ALLOWED, not_allowed);
  if (!token_ok(d, MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "t")))
    return text(c, MHD_HTTP_FORBIDDEN, forbidden);
  if (strcmp(url, "/data") == 0) return data_reply(d, c);
  if (strcmp(url, "/") != 0) return text(c, MHD_HTTP_NOT_FOUND, not_found);
  char *buf = NULL;
  size_t len = 0;
  if (tg__report_page(d->report, true, d->data_url, &buf, &len) != TG_OK)
    return text(c, MHD_HTTP_INTERNAL_SERVER_ERROR, "500 the page could not be made\n");
  return reply(c, MHD_HTTP_OK, "text/html; charset=utf-8", buf, len, true);
}

/* A socket bound to addr and listening; -errno with err filled on failure. */
static int listen_on(const tg__dash_addr *a, const char *text, tg_error *err) {
  char where[80];
  tg__dash_addr_format((const struct sockaddr *)&a->sa, where, sizeof where);
  int fd = socket(a->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0)
    return tg__error_set(err, -errno, "dashboard: cannot make a socket for %s: %s", where,
                         strerror(errno));
  int one = 1; /* a restart need not wait out the last run's TIME_WAIT */
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (a->sa.ss_family == AF_INET6) setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (bind(fd, (const struct sockaddr *)&a->sa, a->len) != 0 || listen(fd, 64) != 0) {
    int e = errno;
    close(fd);
    if (e == EADDRINUSE)
      return tg__error_set(err, -e, "dashboard: %s ('%s') is in use by another program: "
                           "choose another port, or give none for a free one", where,
                           text ? text : "");
    if (e == EADDRNOTAVAIL)
      return tg__error_set(err, -e, "dashboard: %s ('%s') is not an address of this machine",
                           where, text ? text : "");
    return tg__error_set(err, -e, "dashboard: cannot listen on %s: %s", where, strerror(e));
  }
  return fd;
}

/* The daemon over d->fd; its thread starts with every signal blocked, so
 * that the program's handlers run where it expects them. */
static int start_daemon(tg_dashboard *d, unsigned max_conn, bool v6, tg_error *err) {
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | (v6 ? MHD_USE_IPv6 : 0);
  d->mhd = MHD_start_daemon(flags, 0, NULL, NULL, on_request, d,
                            MHD_OPTION_LISTEN_SOCKET, (MHD_socket)d->fd,
                            MHD_OPTION_CONNECTION_LIMIT, max_conn,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)IDLE_SECONDS,
                            MHD_OPTION_END);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (d->mhd == NULL) return tg__error_set(err, TG_ENOMEM, "dashboard: the HTTP server did not start");
  return TG_OK;
}

int tg_dashboard_start(tg_report *r, const tg_dashboard_opts *opts, tg_dashboard **out,
                       tg_error *err) {
  if (out == NULL) return tg__error_set(err, TG_EINVAL, "dashboard: no place for it (out)");
  *out = NULL;
  if (r == NULL || (opts != NULL && opts->version != TG_DASHBOARD_OPTS_V1))
    return tg__error_set(err, TG_EINVAL, "dashboard: no report, or unknown options version");
  const char *text = opts ? opts->addr : NULL;
  unsigned max_conn = opts && opts->max_connections ? opts->max_connections
                                                    : TG_DASHBOARD_MAX_CONNECTIONS;
  tg__dash_addr a;
  int rc = tg__dash_addr_parse(text, &a, err);
  if (rc != TG_OK) return rc;
  tg_dashboard *d = tg__calloc(1, sizeof *d);
  if (d == NULL) return tg__error_set(err, TG_ENOMEM, "out of memory");
  d->report = r;
  if ((rc = new_token(d->token)) != TG_OK) {
    tg__free(d);
    return tg__error_set(err, rc, "dashboard: no random token: %s", tg_strerror(rc));
  }
  snprintf(d->data_url, sizeof d->data_url, "data?t=%s", d->token);
  if ((d->fd = listen_on(&a, text, err)) < 0) {
    rc = d->fd;
    tg__free(d);
    return rc;
  }
  getsockname(d->fd, (struct sockaddr *)&a.sa, &a.len);
  char where[80];
  tg__dash_addr_format((const struct sockaddr *)&a.sa, where, sizeof where);
  snprintf(d->url, sizeof d->url, "http://%s/?t=%s", where, d->token);
  d->loopback = tg__dash_addr_loopback((const struct sockaddr *)&a.sa);
  d->port = a.sa.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&a.sa)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&a.sa)->sin_port);
  tg__fd_track(d->fd); /* forked workers must not keep the port */
  if ((rc = start_daemon(d, max_conn, a.sa.ss_family == AF_INET6, err)) != TG_OK) {
    tg__fd_untrack(d->fd);
    close(d->fd);
    tg__free(d);
    return rc;
  }
  *out = d;
  return TG_OK;
}

const char *tg_dashboard_url(const tg_dashboard *d) { return d->url; }

unsigned tg_dashboard_port(const tg_dashboard *d) { return d->port; }

bool tg_dashboard_loopback(const tg_dashboard *d) { return d->loopback; }

void tg_dashboard_stop(tg_dashboard *d) {
  if (d == NULL) return;
  /* Untracked while still open, so its number cannot be another fd's yet. */
  tg__fd_untrack(d->fd);
  MHD_stop_daemon(d->mhd); /* closes d->fd and joins the thread */
  if (d->data != NULL) MHD_destroy_response(d->data);
  tg__free(d);
}
