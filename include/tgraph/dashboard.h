/* include/tgraph/dashboard.h: serving a run's report page live over HTTP
 * while the run goes (the CLI's `tgraph run --dashboard`).
 *
 * Life-cycle:
 *   1. a tg_report recorder (tgraph/report.h) fed by the run's events
 *   2. tg_dashboard_start()   listen (127.0.0.1 and a free port unless an
 *                             address is given) on a thread of its own
 *   3. tg_dashboard_url()     the URL to open, token included
 *   4. tg_compute() ...       the page re-reads the report every second
 *   5. tg_dashboard_stop()    stop listening; before the report is freed
 *
 * What it serves (GET or HEAD only, anything else is 405):
 *   /?t=TOKEN       the report page in its live form
 *   /data?t=TOKEN   the run's data so far, as the page's JSON
 * TOKEN is 128 random bits (getrandom), in hex, new for every start and
 * compared in constant time. A request without it or with a wrong one gets
 * 403 and no data, whoever sends it: on a shared machine other local users
 * can reach a loopback port, so the token in the URL is the access
 * control (as in Jupyter). Responses say Cache-Control: no-store and
 * Referrer-Policy: no-referrer, so the token stays out of caches and of
 * other sites' logs.
 *
 * Addresses (tg_dashboard_opts.addr):
 *   NULL or ""     127.0.0.1, a free port
 *   "PORT"         127.0.0.1:PORT (0: a free port)
 *   "HOST:PORT"    a numeric IPv4 address or "localhost"
 *   "[V6]:PORT"    a numeric IPv6 address, e.g. "[::1]:8080"
 * Only an address given explicitly can be other than loopback; see
 * tg_dashboard_loopback(). A busy port fails the start with an error that
 * names the address.
 *
 * Thread safety: start and stop from one thread; the server thread reads
 *   the report concurrently with the run's events (tg_report's JSON is
 *   thread-safe against them). tg_dashboard_url() is safe from any thread
 *   while the dashboard lives.
 * Fork: workers the processes backend forks close the listening socket
 *   at once; a child of any other fork() keeps a copy until it exits or
 *   execs (the socket is close-on-exec), though it never serves on it.
 */
#ifndef TGRAPH_DASHBOARD_H
#define TGRAPH_DASHBOARD_H

#include <stdbool.h>
#include <stdint.h>

#include "tgraph/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#include "tgraph/report.h" /* tg_report */
typedef struct tg_dashboard tg_dashboard; /* opaque */

#define TG_DASHBOARD_OPTS_V1 1u

/* How many connections a dashboard serves at once by default. */
#define TG_DASHBOARD_MAX_CONNECTIONS 16u

typedef struct tg_dashboard_opts {
  uint32_t version;         /* TG_DASHBOARD_OPTS_V1 */
  const char *addr;         /* see above; NULL: 127.0.0.1, a free port */
  unsigned max_connections; /* 0: TG_DASHBOARD_MAX_CONNECTIONS; one more
                               is closed at once, unanswered */
} tg_dashboard_opts;

/* Check an address as tg_dashboard_start() reads it, without binding
 * anything: TG_OK, or TG_EINVAL with a message naming what is wrong. */
int tg_dashboard_addr_check(const char *addr, tg_error *err);

/* Start serving r's page. r is borrowed: it must outlive the dashboard.
 * opts may be NULL (defaults). On success stores the dashboard in *out;
 * on error *out is NULL and err says why, e.g. the address is in use
 * (-EADDRINUSE), not an address of this machine (-EADDRNOTAVAIL),
 * malformed (TG_EINVAL). Stop with tg_dashboard_stop(). */
int tg_dashboard_start(tg_report *r, const tg_dashboard_opts *opts,
                       tg_dashboard **out /* OUT */, tg_error *err);

/* "http://HOST:PORT/?t=TOKEN", HOST numeric as bound (IPv6 in brackets).
 * Owned by d, valid until tg_dashboard_stop(d). */
const char *tg_dashboard_url(const tg_dashboard *d);

/* The port it listens on (the one chosen when the address said 0). */
unsigned tg_dashboard_port(const tg_dashboard *d);

/* False when d listens on an address other machines may reach (e.g.
 * 0.0.0.0): say so to the user. */
bool tg_dashboard_loopback(const tg_dashboard *d);

/* Stop listening (new connections are refused), finish the requests
 * being served, join the server thread and free d. d may be NULL. */
void tg_dashboard_stop(tg_dashboard *d);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_DASHBOARD_H */
