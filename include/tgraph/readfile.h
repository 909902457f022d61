/* include/tgraph/readfile.h: reading a small input file whole, bounded,
 * the way tgraph reads its own inputs (graph.json, workers files).
 *
 * Accepted: a regular file, or a FIFO or pipe (e.g. /dev/stdin, <(cmd)).
 * Refused at once with a message naming the file and the reason:
 * directories, character and block devices (/dev/zero, a terminal),
 * sockets, and a regular file larger than the bound. A FIFO or pipe is
 * read until its writer closes it, at most `max` bytes (more fails with
 * TG_ELIMIT without reading on); a FIFO that no process opens for
 * writing fails with TG_ETIMEDOUT after 5 seconds instead of blocking.
 * A writer that stays open without writing is waited for.
 *
 * Thread safety: none needed (no shared state).
 */
#ifndef TGRAPH_READFILE_H
#define TGRAPH_READFILE_H

#include <stddef.h>

#include "tgraph/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Read path whole into a new buffer *out (free() it) with a NUL after
 * its *len bytes. max: the most bytes accepted (0: no bound). what names
 * the input in messages ("workers file" gives "workers file 'PATH': ...";
 * NULL gives "PATH: ..."). On error *out is untouched and err says what
 * and where: -errno, TG_EINVAL (not a file or pipe), TG_ELIMIT,
 * TG_ETIMEDOUT, TG_ENOMEM. */
int tg_read_file(const char *path, const char *what, size_t max,
                 char **out /* OUT */, size_t *len /* OUT */, tg_error *err);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_READFILE_H */
