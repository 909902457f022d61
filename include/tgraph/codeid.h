/* include/tgraph/codeid.h: code ids, digests of a function's source that
 * a build passes to tg_func_def.code_id so that cached results do not
 * outlive an edit of the code that made them.
 *
 * The digest covers, in order, the given source files and every file
 * they include with #include "..." that is found next to the including
 * file or in one of the include directories (recursively, each file
 * once); includes not found there (<...> ones, and "..." ones outside
 * the project) are left out, so installed headers do not change ids.
 *
 * Each file is normalized first, so that edits that cannot change the
 * compiled code keep its id: comments, blanks and line ends between
 * tokens go where they separate nothing ("f ( x )" is "f(x)", a reflowed
 * statement is the same) and become one space where they do ("int x",
 * "- -"); preprocessor directives keep their lines and the spaces in
 * them. String and character literals are kept byte for byte. Any other
 * edit changes the id. Line numbers are not part of it: a function whose
 * result depends on __LINE__ should not declare a code id. Paths are not
 * hashed: the same sources give the same id in any directory.
 *
 * The id is the 32 lowercase hex digits of an XXH3-128 over the
 * normalized texts. `tgraph code-id` prints it for builds (a define, a
 * header, a dependency file).
 *
 * Thread safety: none needed (no shared state).
 */
#ifndef TGRAPH_CODEID_H
#define TGRAPH_CODEID_H

#include <stddef.h>
#include <stdint.h>

#include "tgraph/error.h"

#ifdef __cplusplus
extern "C" {
#endif

#define TG_CODE_ID_LEN 32 /* characters of an id, without the NUL */

#define TG_CODE_ID_OPTS_V1 1
typedef struct tg_code_id_opts {
  uint32_t version;                 /* TG_CODE_ID_OPTS_V1 */
  const char *const *include_dirs;  /* searched for "..." includes after
                                       the including file's directory */
  size_t ninclude_dirs;
  /* Called with the path of each file read, sources and headers alike,
   * in order (a build's dependency file); may be NULL. */
  void (*on_file)(void *ctx, const char *path);
  void *ctx;
} tg_code_id_opts;

/* The code id of files[0..nfiles) into out (NUL-terminated). opts may be
 * NULL (no include directories). Errors, with err naming the file: -errno
 * (a file cannot be read), TG_EINVAL (no files, a file that is not a
 * regular file or pipe, a bad opts version), TG_ELIMIT (a file over 64
 * MiB, more than 4096 files), TG_ENOMEM. On error out is "". */
int tg_code_id(const char *const *files, size_t nfiles,
               const tg_code_id_opts *opts, char out[TG_CODE_ID_LEN + 1] /* OUT */,
               tg_error *err);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_CODEID_H */
