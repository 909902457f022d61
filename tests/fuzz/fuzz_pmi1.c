/* tests/fuzz/fuzz_pmi1.c: libFuzzer target for the PMI-1 client
 * (lib/launch/pmi1.c), whose input is what a launcher's PMI server says.
 *
 * The input is the whole of a server's side of the connection: written
 * into one end of a socketpair (then shut down for writing) whose other
 * end is the rank's PMI_FD. The rank opens the exchange (init,
 * get_maxes, get_my_kvsname), puts a key, fences and gets rank 1's key,
 * then closes, with a short timeout: every step must end cleanly (TG_OK,
 * or an error with a message), whatever the bytes, and a get that
 * succeeds gives a value (any bytes but NUL: a put escapes the rest). A
 * broken property aborts. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "launch/launch.h"

#define REQUIRE(cond, what)                                                          \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      fprintf(stderr, "fuzz_pmi1: %s (%s:%d)\n", what, __FILE__, __LINE__);          \
      abort();                                                                       \
    }                                                                                \
  } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  /* (More than a socket's buffer would block this one thread.) */
  if (size > 60000) return 0;
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return 0;
  if (size && write(sv[1], data, size) != (ssize_t)size) {
    close(sv[0]);
    close(sv[1]);
    return 0;
  }
  shutdown(sv[1], SHUT_WR);
  char fd[16];
  snprintf(fd, sizeof fd, "%d", sv[0]);
  setenv("PMI_FD", fd, 1);
  unsetenv("PMI_PORT");
  tg__rank r = {.rank = 0, .size = 2, .by = "PMI", .job = ""};
  void *impl = NULL;
  const tg__kvx_ops *ops = NULL;
  tg_error err;
  tg_error_clear(&err);
  int rc = tg__pmi1_open(&r, 0.05, &impl, &ops, &err);
  REQUIRE(rc == TG_OK || err.msg[0], "a failed open without a message");
  if (rc == TG_OK) {
    REQUIRE(impl && ops, "an open exchange without its ops");
    tg_error_clear(&err);
    rc = ops->put(impl, "tg.addr", "tcp://127.0.0.1:5 a=b %x", &err);
    REQUIRE(rc == TG_OK || err.msg[0], "a failed put without a message");
    if (rc == TG_OK) {
      tg_error_clear(&err);
      rc = ops->fence(impl, &err);
      REQUIRE(rc == TG_OK || err.msg[0], "a failed fence without a message");
    }
    if (rc == TG_OK) {
      char *v = NULL;
      tg_error_clear(&err);
      rc = ops->get(impl, 1, "tg.addr", &v, &err);
      REQUIRE(rc == TG_OK || err.msg[0], "a failed get without a message");
      REQUIRE(rc != TG_OK || v, "a get without its value");
      free(v);
    }
    ops->close(impl);
  }
  /* A failed connection is left open on purpose (a launcher kills a job
   * whose rank closes it unfinalized): the harness owns both ends. */
  if (fcntl(sv[0], F_GETFD) != -1) close(sv[0]);
  close(sv[1]);
  return 0;
}
