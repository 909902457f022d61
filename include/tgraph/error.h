/* include/tgraph/error.h: status codes and error detail, one pattern for
 * every tgraph module.
 *
 * Every fallible call returns an int: TG_OK (0) on success, a negative code
 * on failure. System failures are -errno (TG_ENOMEM == -ENOMEM, ...);
 * tgraph's own codes live in a private range below -20000 so they never
 * collide with errno values.
 *
 * Calls that can say more than a code take a trailing `tg_error *err`
 * (may be NULL). On failure they fill it with the code, a message that
 * names what is wrong and where, and for byte-oriented input the offset.
 * On success *err is left untouched. Long-lived objects (graphs,
 * executors, caches) also keep their last message, readable through their
 * own *_errmsg() accessor.
 *
 * Thread safety: everything here is thread-safe; tg_error structs belong
 * to the caller.
 */
#ifndef TGRAPH_ERROR_H
#define TGRAPH_ERROR_H

#include <errno.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* XX(name, value, description). The table generates the enum,
 * tg_strerror() and tg_err_name(). */
#define TG_ERR_MAP(XX)                                                     \
  XX(EINVAL, -EINVAL, "invalid argument")                                  \
  XX(ENOMEM, -ENOMEM, "out of memory")                                     \
  XX(ENOENT, -ENOENT, "no such file or directory")                         \
  XX(EACCES, -EACCES, "permission denied")                                 \
  XX(EIO, -EIO, "input/output error")                                      \
  XX(ENOSPC, -ENOSPC, "no space left on device")                           \
  XX(EEXIST, -EEXIST, "already exists")                                    \
  XX(ECANCELED, -ECANCELED, "operation canceled")                          \
  XX(ETIMEDOUT, -ETIMEDOUT, "timed out")                                   \
  XX(ERANGE, -ERANGE, "value out of range")                                \
  XX(EFORMAT, -20001, "malformed serialized data")                         \
  XX(ECHECKSUM, -20002, "checksum mismatch")                               \
  XX(EVERSION, -20003, "unsupported format version")                       \
  XX(ETYPE, -20004, "value has the wrong type")                            \
  XX(EDEPTH, -20005, "value nested too deeply")                            \
  XX(ELIMIT, -20006, "size limit exceeded")                                \
  XX(EJSON, -20007, "invalid JSON")                                        \
  XX(ENOTFOUND, -20008, "not found")                                       \
  XX(ENOFUNC, -20009, "function not found in registry")                    \
  XX(ETASK, -20010, "a task reported failure")                             \
  XX(ECYCLE, -20011, "graph contains a cycle")                             \
  XX(EWORKER, -20012, "a worker died")                                     \
  XX(ECOMPRESS, -20013, "compression error")                               \
  XX(ESTATE, -20014, "object is in the wrong state for this call")         \
  XX(EPROTO, -20015, "protocol error")

typedef enum tg_status {
  TG_OK = 0,
#define TG__ERR_ENUM(name, value, desc) TG_##name = (value),
  TG_ERR_MAP(TG__ERR_ENUM)
#undef TG__ERR_ENUM
} tg_status;

/* Detail of a failure. Caller-owned; fill with tg_error_set() or let a
 * tgraph call fill it. */
typedef struct tg_error {
  int code;          /* a TG_* code, TG_OK when nothing went wrong */
  size_t offset;     /* byte offset into the input, when it applies */
  int has_offset;    /* 1 when `offset` is meaningful */
  char msg[256];     /* NUL-terminated, never longer than 255 bytes */
} tg_error;

/* Static description of `code` ("checksum mismatch"); never NULL. Unknown
 * negative codes are treated as -errno and described by strerror(3). */
const char *tg_strerror(int code);

/* Symbolic name of `code` ("TG_ECHECKSUM"); never NULL ("TG_UNKNOWN"). */
const char *tg_err_name(int code);

/* Reset *err to "no error". err may be NULL. */
void tg_error_clear(tg_error *err);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_ERROR_H */
