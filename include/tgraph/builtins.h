/* include/tgraph/builtins.h: the builtin task functions that every
 * graph.json can call without a plugin.
 *
 * tg_registry_add_builtins() registers all of them. Arguments are checked
 * when a task runs; a wrong type fails the task with TG_ETYPE and a
 * message naming the function and the argument. "Pure" functions may be
 * cached and re-run; impure ones are never cached (unless a task says
 * "cache": true) and never retried.
 *
 *   name        args                      result                   purity
 *   file        (path)                    the file's bytes         pure (*)
 *   read_text   (path)                    the file as UTF-8 str    pure (*)
 *   glob        (pattern)                 sorted list of paths     impure
 *                                         (str); [] on no match
 *   lines       (text)                    list of str: text split  pure
 *                                         at "\n" (a final "\r" is
 *                                         dropped from each line;
 *                                         a trailing newline gives
 *                                         no empty last line)
 *   write_file  (path, data)              path (str); data str or  impure,
 *                                         bytes is written as is,  never
 *                                         anything else as JSON    cached
 *                                         (the graph.json reader
 *                                         ignores "cache": true);
 *                                         written atomically (a
 *                                         temporary file renamed
 *                                         into place, mode 0644)
 *   sh          (cmd, arg...)             stdout bytes             impure
 *               or ({"cmd": str,          (a str with "text": true)
 *                    "args": [...],
 *                    "stdin": str|bytes,
 *                    "text": bool})
 *                  runs /bin/sh -c cmd with the arguments as $1, $2, ...
 *                  (str as is, numbers in decimal, others as JSON); a
 *                  non-zero exit or a signal fails the task with the
 *                  last lines of stderr. With "text": true, stdout that
 *                  is not valid UTF-8 fails the task (TG_EINVAL, the
 *                  message gives the first bad byte's offset): it is
 *                  never guessed at or silently returned as bytes.
 *                  The command runs in its own
 *                  process group under a guard process: when the task
 *                  ends (finished or cancelled) whatever is left of the
 *                  group gets SIGTERM, then SIGKILL 2 s later; when the
 *                  process running the task dies, even by SIGKILL, the
 *                  group is killed at once.
 *   json        (text)                    the parsed value         pure
 *   sum         (list)                    sum of numbers: int when pure
 *                                         all are ints, else float
 *   add         (x, y, ...)               sum of the arguments     pure
 *   mul         (x, y, ...)               product of the arguments pure
 *   len         (x)                       items of a list or map,  pure
 *                                         bytes of str/bytes,
 *                                         first dimension of an
 *                                         array
 *   range       (stop) | (start, stop)    list of ints             pure
 *               | (start, stop, step)
 *   concat      (x, y, ...)               lists joined into one    pure
 *                                         list; or strs / bytes
 *                                         joined (all one type)
 *   sleep_ms    (ms)                      ms; sleeps, stops early  impure
 *                                         when cancelled
 *   identity    (x)                       x                        pure
 *   tg.build    (template, input...)      internal: a value built  pure
 *                                         from a template with
 *                                         task results slotted in
 *                                         (see below); flagged
 *                                         TG_FUNC_INTERNAL
 *
 * (*) file and read_text are sources (TG_FUNC_FILE_SOURCE): their cache
 *     keys hold the file's content digest (tg_cache_file_hash), not the
 *     path, so editing the file invalidates exactly what was computed
 *     from it, and an unchanged file keeps its results. A path computed
 *     by another task makes the call uncacheable.
 *
 * Integer arithmetic (sum, add, mul) fails with TG_ERANGE on int64
 * overflow instead of wrapping; any float operand makes the result float.
 *
 * tg.build templates (what the graph.json reader emits for arguments
 * that nest task results inside lists or objects). A template is a
 * two-item list [tag, payload]:
 *   ["c", any]              a constant
 *   ["s", i]                input i (0-based among the inputs)
 *   ["l", [template...]]    a list of the built templates
 *   ["m", {key: template}]  a map of the built templates, same key order
 *
 * Thread safety: every builtin may run on many threads at once.
 */
#ifndef TGRAPH_BUILTINS_H
#define TGRAPH_BUILTINS_H

#include "tgraph/registry.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Register every builtin above in reg. TG_EEXIST when one of the names is
 * already taken (then the builtins before it stay registered). */
int tg_registry_add_builtins(tg_registry *reg);

#ifdef __cplusplus
}
#endif
#endif /* TGRAPH_BUILTINS_H */
